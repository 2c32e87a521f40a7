//! Where a server listens and how a load generator names it.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The protocol a client speaks to a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// FastCGI.
    Fcgi,
    /// SCGI.
    Scgi,
    /// AJP13.
    Ajp,
    /// HTTP/1.1.
    Http,
    /// uWSGI's own protocol (only nginx's `uwsgi_pass` speaks it here).
    Uwsgi,
}

impl Proto {
    /// The scheme of a `ringfast-load` target.
    pub fn scheme(self) -> &'static str {
        match self {
            Proto::Fcgi => "fcgi",
            Proto::Scgi => "scgi",
            Proto::Ajp => "ajp",
            Proto::Http => "http",
            Proto::Uwsgi => "uwsgi",
        }
    }
}

/// TCP on loopback or a Unix stream socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP on 127.0.0.1.
    Tcp,
    /// A Unix stream socket in the contender's temporary directory.
    Unix,
}

/// A listening address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// TCP.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl Endpoint {
    /// A free loopback TCP port, or a socket `name` in `dir`.
    pub fn new(transport: Transport, dir: &Path, name: &str) -> std::io::Result<Endpoint> {
        Ok(match transport {
            Transport::Tcp => Endpoint::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?))),
            Transport::Unix => Endpoint::Unix(dir.join(format!("{name}.sock"))),
        })
    }

    /// `127.0.0.1:PORT` or `unix:/path` (ringfast, nginx `server`, the floor, uWSGI's prefix-less form aside).
    pub fn arg(&self) -> String {
        match self {
            Endpoint::Tcp(a) => a.to_string(),
            Endpoint::Unix(p) => format!("unix:{}", p.display()),
        }
    }

    /// `127.0.0.1:PORT` or `/path` (uWSGI, gunicorn's TCP form, php-fpm `listen`).
    pub fn plain(&self) -> String {
        match self {
            Endpoint::Tcp(a) => a.to_string(),
            Endpoint::Unix(p) => p.display().to_string(),
        }
    }

    /// The TCP port, if any.
    pub fn port(&self) -> Option<u16> {
        match self {
            Endpoint::Tcp(a) => Some(a.port()),
            Endpoint::Unix(_) => None,
        }
    }

    /// The `ringfast-load` target for `proto` and `path` (see loadgen-contract.md).
    pub fn url(&self, proto: Proto, path: &str) -> String {
        match self {
            Endpoint::Tcp(a) => format!("{}://{a}{path}", proto.scheme()),
            Endpoint::Unix(p) => format!("{}+unix:{}:{path}", proto.scheme(), p.display()),
        }
    }

    /// Whether a connection succeeds now.
    pub fn accepts(&self) -> bool {
        match self {
            Endpoint::Tcp(a) => TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok(),
            Endpoint::Unix(p) => UnixStream::connect(p).is_ok(),
        }
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_loadgen_contract() {
        let tcp = Endpoint::Tcp("127.0.0.1:9000".parse().unwrap());
        assert_eq!(
            tcp.url(Proto::Fcgi, "/hello"),
            "fcgi://127.0.0.1:9000/hello"
        );
        let unix = Endpoint::Unix(PathBuf::from("/tmp/x/a.sock"));
        assert_eq!(
            unix.url(Proto::Scgi, "/hello"),
            "scgi+unix:/tmp/x/a.sock:/hello"
        );
        assert_eq!(unix.arg(), "unix:/tmp/x/a.sock");
        assert_eq!(unix.plain(), "/tmp/x/a.sock");
        assert_eq!(tcp.port(), Some(9000));
    }
}
