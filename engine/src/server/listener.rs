//! Binding listeners before any worker starts: one SO_REUSEPORT socket per worker for each TCP
//! address, one shared socket for each Unix path.
//!
//! SO_REUSEPORT lets any socket of the same user join a port's group, so a second ringfast
//! started on a port already in use would silently take part of the traffic. Before binding its
//! group, [`bind`] therefore binds a probe socket *without* SO_REUSEPORT: the kernel refuses it
//! when anything else holds the port (a listener of another process, with or without
//! SO_REUSEPORT), and then ringfast refuses to start, as it does for a live Unix socket. Only the
//! engine's own worker sockets share a port. Prefork reloads and recycles never bind again (the
//! worker processes inherit the supervisor's sockets), nor do inherited (`fd:N`) listeners.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use socket2::{Domain, Socket, Type};

use super::ServerError;
use crate::config::ListenAddr;

pub use proto::Protocol;

/// A bound listening address, ready to be split among workers.
#[derive(Debug)]
pub(crate) enum Bound {
    /// One listener per worker, all bound to the same address with SO_REUSEPORT.
    Tcp {
        addr: SocketAddr,
        per_worker: Vec<std::net::TcpListener>,
    },
    /// One listener shared by all workers.
    Unix {
        path: PathBuf,
        listener: std::os::unix::net::UnixListener,
    },
    /// An inherited listening socket (`fd:N`), shared by all workers.
    Inherited { fd: i32, listener: WorkerListener },
}

/// A listener as one worker receives it.
#[derive(Debug)]
pub(crate) enum WorkerListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

impl Bound {
    /// The address actually bound (the real port when 0 was asked for).
    pub(crate) fn addr(&self) -> ListenAddr {
        match self {
            Bound::Tcp { addr, .. } => ListenAddr::Tcp(*addr),
            Bound::Unix { path, .. } => ListenAddr::Unix(path.clone()),
            Bound::Inherited { fd, .. } => ListenAddr::Fd(*fd),
        }
    }

    /// The Unix socket file this process created (and removes on exit), if any.
    pub(crate) fn owned_path(&self) -> Option<&Path> {
        match self {
            Bound::Unix { path, .. } => Some(path),
            _ => None,
        }
    }

    /// True when every worker has a socket of its own (SO_REUSEPORT TCP); Unix and inherited
    /// sockets are one socket that every worker shares.
    pub(crate) fn is_per_worker(&self) -> bool {
        matches!(self, Bound::Tcp { .. })
    }

    /// The listener worker `index` accepts on.
    pub(crate) fn for_worker(&self, index: usize) -> io::Result<WorkerListener> {
        match self {
            Bound::Tcp { per_worker, .. } => per_worker[index].try_clone().map(WorkerListener::Tcp),
            Bound::Unix { listener, .. } => listener.try_clone().map(WorkerListener::Unix),
            Bound::Inherited { listener, .. } => listener.try_clone(),
        }
    }
}

impl WorkerListener {
    fn try_clone(&self) -> io::Result<WorkerListener> {
        match self {
            WorkerListener::Tcp(l) => l.try_clone().map(WorkerListener::Tcp),
            WorkerListener::Unix(l) => l.try_clone().map(WorkerListener::Unix),
        }
    }
}

/// Takes ownership of the inherited descriptor `fd`, which must be a listening stream socket.
fn adopt(fd: i32) -> io::Result<WorkerListener> {
    use std::os::fd::FromRawFd;
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
    // SAFETY: fcntl only queries the descriptor.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is open (checked above) and named by the user as ours to take;
    // `bind` refuses to take the same number twice.
    let socket = unsafe { Socket::from_raw_fd(fd) };
    let checked = (|| {
        if socket.r#type()? != Type::STREAM {
            return Err(invalid("not a stream socket"));
        }
        if !socket.is_listener()? {
            return Err(invalid("not a listening socket"));
        }
        socket.set_cloexec(true)?;
        Ok(socket.local_addr()?.domain())
    })();
    match checked {
        Ok(Domain::UNIX) => Ok(WorkerListener::Unix(socket.into())),
        Ok(_) => Ok(WorkerListener::Tcp(socket.into())),
        Err(e) => {
            // Not ours to close: give the descriptor back untouched.
            std::mem::forget(socket);
            Err(e)
        }
    }
}

/// Binds `addr` for `workers` workers.
pub(crate) fn bind(
    addr: &ListenAddr,
    workers: usize,
    backlog: u32,
    socket_mode: u32,
) -> Result<Bound, ServerError> {
    let err = |source| ServerError::Bind {
        addr: addr.to_string(),
        source,
    };
    match addr {
        ListenAddr::Tcp(a) => {
            // Port 0 asks the kernel for a port nobody uses; any other port is probed first.
            if a.port() != 0 {
                probe_tcp(*a).map_err(err)?;
            }
            let first = bind_tcp(*a, backlog).map_err(err)?;
            // With port 0, the kernel picked a port: the other workers bind that one.
            let actual = first.local_addr().map_err(err)?;
            let mut per_worker = vec![first];
            for _ in 1..workers {
                per_worker.push(bind_tcp(actual, backlog).map_err(err)?);
            }
            Ok(Bound::Tcp {
                addr: actual,
                per_worker,
            })
        }
        ListenAddr::Unix(path) => {
            let listener = bind_unix(path, backlog, socket_mode).map_err(err)?;
            Ok(Bound::Unix {
                path: path.clone(),
                listener,
            })
        }
        ListenAddr::Fd(fd) => {
            let listener = adopt(*fd).map_err(err)?;
            Ok(Bound::Inherited { fd: *fd, listener })
        }
    }
}

/// Binds (and closes) a socket without SO_REUSEPORT on `addr`: fails with `AddrInUse` when
/// another socket holds the port, even one in a SO_REUSEPORT group that ringfast's own sockets
/// could otherwise join. SO_REUSEADDR is set, as on the real sockets, so connections of a
/// previous run in TIME_WAIT do not count.
fn probe_tcp(addr: SocketAddr) -> io::Result<()> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    match socket.bind(&addr.into()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another process is listening on this port (is ringfast already running?)",
        )),
        Err(e) => Err(e),
    }
}

fn bind_tcp(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(socket.into())
}

fn bind_unix(path: &Path, backlog: u32, mode: u32) -> io::Result<std::os::unix::net::UnixListener> {
    remove_if_stale(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&socket2::SockAddr::unix(path)?)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(socket.into())
}

/// Removes a socket file left by a dead server; a live server's socket is an error.
fn remove_if_stale(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "path exists and is not a socket",
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another server is listening on this socket",
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing stale socket file");
            std::fs::remove_file(path)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_socket_replaced_live_socket_refused() {
        let dir = std::env::temp_dir().join(format!("ringfast-lt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let addr = ListenAddr::Unix(path.clone());
        {
            let live = bind(&addr, 2, 16, 0o600).unwrap();
            assert!(
                bind(&addr, 2, 16, 0o600).is_err(),
                "a live socket must not be taken"
            );
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            drop(live);
        }
        // The file remains after the listener closed: stale, so it is replaced.
        assert!(path.exists());
        bind(&addr, 1, 16, 0o660).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_port_in_use_is_refused_even_with_reuseport() {
        // Another server's SO_REUSEPORT group, as a second ringfast would find it.
        let first = bind(&"127.0.0.1:0".parse().unwrap(), 2, 16, 0).unwrap();
        let taken = first.addr();
        let e = bind(&taken, 2, 16, 0).expect_err("the port is in use");
        assert!(
            e.to_string().contains("another process is listening"),
            "{e}"
        );
        // A plain listener without SO_REUSEPORT.
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ListenAddr::Tcp(plain.local_addr().unwrap());
        assert!(bind(&addr, 1, 16, 0).is_err());
        // Once both are closed, the ports are free again.
        drop((first, plain));
        bind(&taken, 2, 16, 0).unwrap();
        bind(&addr, 1, 16, 0).unwrap();
    }

    #[test]
    fn reuseport_binds_one_port_per_worker() {
        let b = bind(&"127.0.0.1:0".parse().unwrap(), 3, 16, 0).unwrap();
        let Bound::Tcp { addr, per_worker } = &b else {
            panic!()
        };
        assert_eq!(per_worker.len(), 3);
        assert_ne!(addr.port(), 0);
        for l in per_worker {
            assert_eq!(l.local_addr().unwrap(), *addr);
        }
    }
}
