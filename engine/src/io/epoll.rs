//! The epoll backend of the I/O boundary: tokio's reactor, which tokio-uring runs underneath each
//! worker's ring. SCGI and AJP13 connections live here.
//!
//! The operations keep the owned-buffer shape of the io_uring backend, so drivers do not know
//! which backend a connection is on. Readiness is waited for with `&self` and the syscall is
//! made with `try_read`/`try_write`, so the connection's reader and its writer task can share
//! one stream.

use std::io;

/// An accepted connection driven by epoll readiness.
pub enum EpollStream {
    /// TCP.
    Tcp(tokio::net::TcpStream),
    /// Unix domain socket.
    Unix(tokio::net::UnixStream),
}

impl EpollStream {
    /// Reads into the spare capacity of `buf`, returning how many bytes were added (0: end of
    /// stream, or the read side was shut down).
    pub async fn read(&self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        loop {
            let ready = match self {
                EpollStream::Tcp(s) => s.readable().await,
                EpollStream::Unix(s) => s.readable().await,
            };
            if let Err(e) = ready {
                return (Err(e), buf);
            }
            let res = match self {
                EpollStream::Tcp(s) => s.try_read_buf(&mut buf),
                EpollStream::Unix(s) => s.try_read_buf(&mut buf),
            };
            match res {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return (r, buf),
            }
        }
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let mut written = 0;
        while written < buf.len() {
            let ready = match self {
                EpollStream::Tcp(s) => s.writable().await,
                EpollStream::Unix(s) => s.writable().await,
            };
            if let Err(e) = ready {
                return (Err(e), buf);
            }
            let res = match self {
                EpollStream::Tcp(s) => s.try_write(&buf[written..]),
                EpollStream::Unix(s) => s.try_write(&buf[written..]),
            };
            match res {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => written += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Shuts down one or both directions; a pending read then completes with 0.
    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        match self {
            EpollStream::Tcp(s) => socket2::SockRef::from(s).shutdown(how),
            EpollStream::Unix(s) => socket2::SockRef::from(s).shutdown(how),
        }
    }
}
