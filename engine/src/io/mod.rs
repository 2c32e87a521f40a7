//! The I/O boundary: everything the server needs from the runtime, and nothing more.
//!
//! Connection drivers, codecs and apps see only these operations: accept a connection, read into
//! an owned buffer (appending to its initialised part), write an owned buffer whole, shut a
//! direction down, sleep, spawn a task on this worker, and run a worker's event loop.
//!
//! Two backends share each worker thread: every worker runs a tokio-uring event loop, which runs
//! tokio's epoll reactor underneath. [`Backend::IoUring`] ([`uring`]) drives FastCGI
//! connections: every read and write goes through the ring. [`Backend::Epoll`] ([`epoll`])
//! drives SCGI and AJP13 connections through tokio's readiness-based sockets. Every listener
//! accepts on epoll, because a pending accept must be droppable: a worker that stops must not
//! leave an accept in flight on a listener its successor process shares (see [`uring`]). An
//! accepted FastCGI connection is handed to the ring. A backend built directly on the
//! `io-uring` crate (cancellable multishot accept, multishot receive, buffer rings,
//! DEFER_TASKRUN) can replace [`uring`] without touching anything above this module.
//!
//! One caveat shapes the callers: tokio-uring does not cancel an in-flight operation when its
//! future is dropped (tokio-rs/tokio-uring#207). The drivers therefore never drop a pending read
//! to implement a timeout: they [`shutdown`](Stream::shutdown) the socket, which completes the
//! read, and then await it, so the descriptor is closed promptly and never leaks. The epoll
//! backend keeps the same contract.

mod epoll;
/// The shape both implementations of the per-core loop's I/O share ([`loop_io::LoopIo`]).
pub mod loop_io;
/// The epoll implementation of the per-core loop's I/O: the ring's operations on readiness.
pub mod poller;
/// The native io_uring layer (multishot accept and receive, buffer rings, linked ops) the per-core event loop sits on.
pub mod ring;
pub(crate) mod timers;
mod uring;
pub mod wake;

use std::io;

pub use epoll::EpollStream;
pub use std::net::Shutdown;
pub use uring::{run_worker, spawn, TaskHandle, UringStream};

/// Which backend drives a listener's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// io_uring (tokio-uring): completion-based reads and writes.
    IoUring,
    /// tokio's epoll reactor: readiness, then a non-blocking syscall.
    Epoll,
}

impl Backend {
    /// The name metrics and logs use.
    pub fn name(self) -> &'static str {
        match self {
            Backend::IoUring => "io_uring",
            Backend::Epoll => "epoll",
        }
    }
}

/// Sleeps without blocking the worker, on whichever loop runs this thread.
pub async fn sleep(d: std::time::Duration) {
    if timers::is_active() {
        timers::Sleep::new(d).await
    } else {
        tokio::time::sleep(d).await
    }
}

/// An accepted connection, on either backend.
pub enum Stream {
    /// Driven by io_uring.
    Uring(UringStream),
    /// Driven by epoll readiness.
    Epoll(EpollStream),
}

impl Stream {
    /// Reads into the spare capacity of `buf` (after its initialised bytes), returning how many
    /// bytes were added; 0 means end of stream. `buf` must have spare capacity.
    pub async fn read(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        match self {
            Stream::Uring(s) => s.read(buf).await,
            Stream::Epoll(s) => s.read(buf).await,
        }
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        match self {
            Stream::Uring(s) => s.write_all(buf).await,
            Stream::Epoll(s) => s.write_all(buf).await,
        }
    }

    /// Shuts down one or both directions; a pending read completes (with 0) after `Read`/`Both`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Uring(s) => s.shutdown(how),
            Stream::Epoll(s) => s.shutdown(how),
        }
    }

    /// The backend driving this connection.
    pub fn backend(&self) -> Backend {
        match self {
            Stream::Uring(_) => Backend::IoUring,
            Stream::Epoll(_) => Backend::Epoll,
        }
    }
}

/// A listening socket owned by one worker's event loop, accepting on epoll; its connections go
/// to one backend.
pub enum Listener {
    /// A TCP listener.
    Tcp(tokio::net::TcpListener, Backend),
    /// A Unix listener (often shared between workers and processes).
    Unix(tokio::net::UnixListener, Backend),
}

impl Listener {
    /// Wraps a bound, listening TCP socket. Must be called on the worker's event loop.
    pub fn tcp(l: std::net::TcpListener, backend: Backend) -> io::Result<Self> {
        l.set_nonblocking(true)?;
        Ok(Listener::Tcp(
            tokio::net::TcpListener::from_std(l)?,
            backend,
        ))
    }

    /// Wraps a bound, listening Unix socket. Must be called on the worker's event loop.
    pub fn unix(l: std::os::unix::net::UnixListener, backend: Backend) -> io::Result<Self> {
        l.set_nonblocking(true)?;
        Ok(Listener::Unix(
            tokio::net::UnixListener::from_std(l)?,
            backend,
        ))
    }

    /// Accepts one connection. Dropping the future leaves nothing in flight.
    pub async fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l, backend) => {
                let (s, _) = l.accept().await?;
                // A failure only costs latency.
                let _ = s.set_nodelay(true);
                match backend {
                    Backend::Epoll => Ok(Stream::Epoll(EpollStream::Tcp(s))),
                    Backend::IoUring => UringStream::tcp(s.into_std()?).map(Stream::Uring),
                }
            }
            Listener::Unix(l, backend) => {
                let (s, _) = l.accept().await?;
                match backend {
                    Backend::Epoll => Ok(Stream::Epoll(EpollStream::Unix(s))),
                    Backend::IoUring => UringStream::unix(s.into_std()?).map(Stream::Uring),
                }
            }
        }
    }
}
