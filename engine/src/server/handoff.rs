//! Handing idle keep-alive connections from a stopping worker process to a running one.
//!
//! A reload (or a `--max-requests` recycle) stops the old worker processes. Closing their idle
//! keep-alive connections would race the web server: nginx and HAProxy reuse a connection the
//! moment its last response arrived, so a request may already be on its way when the close
//! goes out, and it meets a reset (nginx retries a GET, a POST comes back as 502). Instead, a
//! stopping process passes each idle connection's descriptor (`SCM_RIGHTS`) to the process
//! group's hand-off socket, and a running worker takes it from there as if it had accepted it;
//! a request already sent waits in the socket's receive queue and is read by the new owner.
//!
//! The hand-off socket is a datagram socket pair the supervisor makes before it forks: every
//! worker process inherits both ends, sends into one and receives from the other, so any
//! running worker may take any connection. One datagram is one connection: a one-byte protocol
//! tag and the descriptor.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::listener::Protocol;

/// The two ends of the process group's hand-off socket pair.
#[derive(Debug)]
pub(crate) struct Handoff {
    send: OwnedFd,
    recv: OwnedFd,
}

/// The raw descriptors a worker thread uses (the [`Handoff`] outlives every worker).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HandoffFds {
    /// Where a stopping worker sends connections.
    pub(crate) send: RawFd,
    /// Where a running worker takes them from (non-blocking).
    pub(crate) recv: RawFd,
}

impl Handoff {
    /// A new socket pair (non-blocking, close-on-exec).
    pub(crate) fn new() -> io::Result<Handoff> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: socketpair writes two descriptors into `fds` on success.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned by nothing else.
        let (send, recv) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Handoff { send, recv })
    }

    /// The descriptors, for the worker threads.
    pub(crate) fn fds(&self) -> HandoffFds {
        HandoffFds {
            send: self.send.as_raw_fd(),
            recv: self.recv.as_raw_fd(),
        }
    }
}

fn tag(p: Protocol) -> u8 {
    match p {
        Protocol::FastCgi => b'f',
        Protocol::Scgi => b's',
        Protocol::Ajp => b'a',
    }
}

fn untag(b: u8) -> Option<Protocol> {
    match b {
        b'f' => Some(Protocol::FastCgi),
        b's' => Some(Protocol::Scgi),
        b'a' => Some(Protocol::Ajp),
        _ => None,
    }
}

/// Space for one descriptor's control message.
#[repr(C)]
union CmsgSpace {
    header: libc::cmsghdr,
    bytes: [u8; 32],
}

/// Sends connection `fd` of `protocol` into the hand-off socket, without waiting. On success the
/// caller still owns its own `fd` and closes it (without a shutdown: the socket lives on).
pub(crate) fn send(on: RawFd, fd: RawFd, protocol: Protocol) -> io::Result<()> {
    let mut byte = [tag(protocol)];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut space = CmsgSpace { bytes: [0; 32] };
    // SAFETY: msghdr is plain data; every pointer set below outlives the sendmsg call, and the
    // control buffer is large and aligned enough for one cmsghdr carrying one int (checked by
    // CMSG_SPACE against its size).
    unsafe {
        let space_len = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        debug_assert!(space_len <= std::mem::size_of::<CmsgSpace>());
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = (&mut space as *mut CmsgSpace).cast();
        msg.msg_controllen = space_len as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        if libc::sendmsg(on, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Takes one handed-off connection, without waiting: `Ok(None)` when there is none.
pub(crate) fn recv(on: RawFd) -> io::Result<Option<(OwnedFd, Protocol)>> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut space = CmsgSpace { bytes: [0; 32] };
    // SAFETY: as in `send`; the kernel writes at most `msg_controllen` bytes of control data,
    // and a descriptor it passes is ours (close-on-exec) from the moment recvmsg returns.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = (&mut space as *mut CmsgSpace).cast();
        msg.msg_controllen = std::mem::size_of::<CmsgSpace>() as _;
        let n = libc::recvmsg(on, &mut msg, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                return Ok(None);
            }
            return Err(e);
        }
        let mut received: Option<OwnedFd> = None;
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
                received = Some(OwnedFd::from_raw_fd(fd));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        let Some(fd) = received else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a hand-off datagram without a descriptor",
            ));
        };
        match untag(byte[0]).filter(|_| n == 1) {
            Some(p) => Ok(Some((fd, p))),
            // `fd` is dropped (closed): not a connection we know how to serve.
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a hand-off datagram with an unknown protocol tag",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::IntoRawFd;

    #[test]
    fn a_connection_and_its_unread_bytes_reach_the_taker() {
        let h = Handoff::new().unwrap();
        let fds = h.fds();
        assert!(recv(fds.recv).unwrap().is_none(), "nothing handed off yet");
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        // A request already sent when the connection changes hands.
        client.write_all(b"ping").unwrap();
        let raw = server.into_raw_fd();
        send(fds.send, raw, Protocol::Ajp).unwrap();
        // SAFETY: `raw` is ours; the hand-off holds its own reference to the socket.
        unsafe { libc::close(raw) };
        let (taken, p) = recv(fds.recv).unwrap().expect("one connection");
        assert_eq!(p, Protocol::Ajp);
        let mut taken = TcpStream::from(taken);
        let mut buf = [0u8; 4];
        taken.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        taken.write_all(b"pong").unwrap();
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
        assert!(recv(fds.recv).unwrap().is_none());
    }

    #[test]
    fn a_datagram_without_a_descriptor_is_an_error_not_a_panic() {
        let h = Handoff::new().unwrap();
        let fds = h.fds();
        // SAFETY: a plain one-byte send on our own socket.
        let n = unsafe { libc::send(fds.send, b"f".as_ptr().cast(), 1, 0) };
        assert_eq!(n, 1);
        assert_eq!(
            recv(fds.recv).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert!(recv(fds.recv).unwrap().is_none());
    }
}
