//! The io_uring backend of the I/O boundary (tokio-uring): the worker's event loop, task spawning,
//! and the reads and writes of FastCGI connections.
//!
//! Accepting is not done here: a pending io_uring accept cannot be cancelled through tokio-uring
//! (tokio-rs/tokio-uring#207), so a worker process that stops (reload, recycling) would keep a
//! hidden accept on a listener it shares with its successor and take, then drop, a connection
//! meant for it. Listeners accept on epoll ([`super::Listener`]) and hand FastCGI connections to
//! the ring.

use std::future::Future;
use std::io;

use tokio_uring::buf::BoundedBuf;

/// A handle to a spawned task; [`abort`](TaskHandle::abort) drops its future.
pub type TaskHandle = tokio::task::JoinHandle<()>;

/// Spawns a task on the current worker's event loop.
pub fn spawn(f: impl Future<Output = ()> + 'static) -> TaskHandle {
    tokio_uring::spawn(f)
}

/// Runs `f` on a new io_uring event loop on the current thread until it completes. tokio's
/// epoll reactor runs underneath, so `tokio::net` works inside `f` as well.
pub fn run_worker<F: Future>(ring_entries: u32, f: F) -> F::Output {
    tokio_uring::builder().entries(ring_entries).start(f)
}

/// An accepted connection whose reads and writes go through io_uring.
pub enum UringStream {
    /// TCP.
    Tcp(tokio_uring::net::TcpStream),
    /// Unix domain socket.
    Unix(tokio_uring::net::UnixStream),
}

impl UringStream {
    /// Reads into the spare capacity of `buf` (after its initialised bytes), returning how many
    /// bytes were added; 0 means end of stream. `buf` must have spare capacity.
    pub async fn read(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        let start = buf.len();
        let slice = buf.slice(start..);
        let (res, slice) = match self {
            UringStream::Tcp(s) => s.read(slice).await,
            UringStream::Unix(s) => s.read(slice).await,
        };
        (res, slice.into_inner())
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        match self {
            UringStream::Tcp(s) => s.write_all(buf).await,
            UringStream::Unix(s) => s.write_all(buf).await,
        }
    }

    /// Shuts down one or both directions; a pending read completes (with 0) after `Read`/`Both`.
    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        match self {
            UringStream::Tcp(s) => s.shutdown(how),
            UringStream::Unix(s) => s.shutdown(how),
        }
    }

    /// Hands an accepted TCP connection to io_uring.
    pub fn tcp(s: std::net::TcpStream) -> io::Result<Self> {
        // io_uring drives the socket from here; it must not be in non-blocking mode.
        s.set_nonblocking(false)?;
        Ok(UringStream::Tcp(tokio_uring::net::TcpStream::from_std(s)))
    }

    /// Hands an accepted Unix connection to io_uring.
    pub fn unix(s: std::os::unix::net::UnixStream) -> io::Result<Self> {
        // io_uring drives the socket from here; it must not be in non-blocking mode.
        s.set_nonblocking(false)?;
        Ok(UringStream::Unix(tokio_uring::net::UnixStream::from_std(s)))
    }
}
