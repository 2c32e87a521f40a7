//! The tokio-uring backend of the I/O boundary.
//!
//! TCP listeners accept through io_uring (one SO_REUSEPORT listener per worker). tokio-uring has
//! no way to wrap an existing Unix listener, so the Unix listener, shared by all workers, accepts
//! on tokio's epoll reactor (the same runtime underneath) and the accepted stream is handed to
//! io_uring for all its reads and writes.

use std::future::Future;
use std::io;
use std::os::fd::{FromRawFd, IntoRawFd};

use tokio_uring::buf::BoundedBuf;

/// A handle to a spawned task; [`abort`](TaskHandle::abort) drops its future.
pub type TaskHandle = tokio::task::JoinHandle<()>;

/// Spawns a task on the current worker's event loop.
pub fn spawn(f: impl Future<Output = ()> + 'static) -> TaskHandle {
    tokio_uring::spawn(f)
}

/// Runs `f` on a new io_uring event loop on the current thread until it completes.
pub fn run_worker<F: Future>(ring_entries: u32, f: F) -> F::Output {
    tokio_uring::builder().entries(ring_entries).start(f)
}

/// An accepted connection.
pub enum Stream {
    /// TCP.
    Tcp(tokio_uring::net::TcpStream),
    /// Unix domain socket.
    Unix(tokio_uring::net::UnixStream),
}

impl Stream {
    /// Reads into the spare capacity of `buf` (after its initialised bytes), returning how many
    /// bytes were added; 0 means end of stream. `buf` must have spare capacity.
    pub async fn read(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        let start = buf.len();
        let slice = buf.slice(start..);
        let (res, slice) = match self {
            Stream::Tcp(s) => s.read(slice).await,
            Stream::Unix(s) => s.read(slice).await,
        };
        (res, slice.into_inner())
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        match self {
            Stream::Tcp(s) => s.write_all(buf).await,
            Stream::Unix(s) => s.write_all(buf).await,
        }
    }

    /// Shuts down one or both directions; a pending read completes (with 0) after `Read`/`Both`.
    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }
}

/// A listening socket owned by one worker's event loop.
pub enum Listener {
    /// A TCP listener, accepting through io_uring.
    Tcp(tokio_uring::net::TcpListener),
    /// A Unix listener (shared between workers), accepting through epoll.
    Unix(tokio::net::UnixListener),
}

impl Listener {
    /// Wraps a bound, listening TCP socket. Must be called on the worker's event loop.
    pub fn tcp(l: std::net::TcpListener) -> io::Result<Self> {
        l.set_nonblocking(false)?;
        Ok(Listener::Tcp(tokio_uring::net::TcpListener::from_std(l)))
    }

    /// Wraps a bound, listening Unix socket. Must be called on the worker's event loop.
    pub fn unix(l: std::os::unix::net::UnixListener) -> io::Result<Self> {
        l.set_nonblocking(true)?;
        Ok(Listener::Unix(tokio::net::UnixListener::from_std(l)?))
    }

    /// Accepts one connection.
    pub async fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                let fd = {
                    use std::os::fd::AsRawFd;
                    s.as_raw_fd()
                };
                set_nodelay(fd);
                Ok(Stream::Tcp(s))
            }
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                let s = s.into_std()?;
                // io_uring drives the socket from here; it must not be in non-blocking mode.
                s.set_nonblocking(false)?;
                // SAFETY: the descriptor comes straight out of a std UnixStream we own.
                let s = unsafe { std::os::unix::net::UnixStream::from_raw_fd(s.into_raw_fd()) };
                Ok(Stream::Unix(tokio_uring::net::UnixStream::from_std(s)))
            }
        }
    }
}

/// Disables Nagle's algorithm: responses are written whole, and delayed ACKs against Nagle cost
/// 40 ms a request (flup's famous TCP stall).
fn set_nodelay(fd: std::os::fd::RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on a valid socket descriptor with a correctly sized int option.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
