//! The TARGET address: protocol, transport (TCP or a Unix socket), path and query.
//!
//! ```text
//! fcgi://HOST:PORT/PATH?QUERY      fcgi+unix:/abs/path.sock:/PATH?QUERY
//! scgi://…  ajp://…  http://…      scgi+unix:…  ajp+unix:…  http+unix:…
//! ```

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// The protocol spoken to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// FastCGI 1.0, responder role.
    Fcgi,
    /// SCGI (one request per connection).
    Scgi,
    /// AJP13.
    Ajp,
    /// HTTP/1.1.
    Http,
}

impl Protocol {
    /// The name used in TARGET and in the JSON result.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fcgi => "fcgi",
            Self::Scgi => "scgi",
            Self::Ajp => "ajp",
            Self::Http => "http",
        }
    }

    fn from_scheme(scheme: &str) -> Option<Self> {
        Some(match scheme {
            "fcgi" => Self::Fcgi,
            "scgi" => Self::Scgi,
            "ajp" => Self::Ajp,
            "http" => Self::Http,
            _ => return None,
        })
    }
}

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP address (the first the host name resolved to).
    Tcp {
        /// The host as written in TARGET (sent as SERVER_NAME / Host).
        host: String,
        /// The resolved address.
        addr: SocketAddr,
    },
    /// A Unix stream socket.
    Unix(PathBuf),
}

/// A parsed TARGET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The protocol.
    pub protocol: Protocol,
    /// Where to connect.
    pub endpoint: Endpoint,
    /// The request path (starts with `/`).
    pub path: String,
    /// The query string, without `?` (empty when absent).
    pub query: String,
}

/// Why TARGET was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// No `scheme:`.
    #[error(
        "target {0:?} has no scheme (expected fcgi://, scgi://, ajp://, http:// or SCHEME+unix:)"
    )]
    NoScheme(String),
    /// A scheme other than the eight known ones.
    #[error("unknown target scheme {0:?}")]
    UnknownScheme(String),
    /// `HOST:PORT` is missing, has no port, or does not resolve.
    #[error("target address {0:?}: {1}")]
    BadAddress(String, String),
    /// The Unix socket path is not absolute.
    #[error("Unix socket path {0:?} must be absolute")]
    RelativeSocket(String),
}

impl Target {
    /// Parses (and, for TCP, resolves) a TARGET.
    pub fn parse(text: &str) -> Result<Self, TargetError> {
        let (scheme, rest) = text
            .split_once(':')
            .ok_or_else(|| TargetError::NoScheme(text.to_string()))?;
        let (proto, unix) = match scheme.strip_suffix("+unix") {
            Some(p) => (p, true),
            None => (scheme, false),
        };
        let protocol = Protocol::from_scheme(proto)
            .ok_or_else(|| TargetError::UnknownScheme(scheme.to_string()))?;
        let (endpoint, path_query) = if unix {
            parse_unix(rest)?
        } else {
            parse_tcp(rest)?
        };
        let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
        let path = if path.is_empty() { "/" } else { path };
        Ok(Target {
            protocol,
            endpoint,
            path: path.to_string(),
            query: query.to_string(),
        })
    }

    /// `path?query`, or `path` without a query.
    pub fn uri(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }

    /// The server name to send (the TCP host, `localhost` for a Unix socket).
    pub fn server_name(&self) -> &str {
        match &self.endpoint {
            Endpoint::Tcp { host, .. } => host,
            Endpoint::Unix(_) => "localhost",
        }
    }

    /// The server port to send (0 for a Unix socket).
    pub fn server_port(&self) -> u16 {
        match &self.endpoint {
            Endpoint::Tcp { addr, .. } => addr.port(),
            Endpoint::Unix(_) => 0,
        }
    }

    /// `tcp` or `unix`.
    pub fn transport(&self) -> &'static str {
        match self.endpoint {
            Endpoint::Tcp { .. } => "tcp",
            Endpoint::Unix(_) => "unix",
        }
    }
}

fn parse_tcp(rest: &str) -> Result<(Endpoint, &str), TargetError> {
    let bad = |why: &str| TargetError::BadAddress(rest.to_string(), why.to_string());
    let rest = rest
        .strip_prefix("//")
        .ok_or_else(|| bad("expected //HOST:PORT"))?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_query) = rest.split_at(end);
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| bad("missing :PORT"))?;
    let port: u16 = port.parse().map_err(|_| bad("bad port"))?;
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addr = (bare, port)
        .to_socket_addrs()
        .map_err(|e| bad(&e.to_string()))?
        .next()
        .ok_or_else(|| bad("resolves to no address"))?;
    Ok((
        Endpoint::Tcp {
            host: host.to_string(),
            addr,
        },
        path_query,
    ))
}

fn parse_unix(rest: &str) -> Result<(Endpoint, &str), TargetError> {
    // The socket path is absolute; the request path starts at the first ":/" after it.
    let (socket, path_query) = match rest.get(1..).and_then(|r| r.find(":/")) {
        Some(at) => (&rest[..at + 1], &rest[at + 2..]),
        None => (rest, ""),
    };
    if !socket.starts_with('/') {
        return Err(TargetError::RelativeSocket(socket.to_string()));
    }
    let path_query = if path_query.is_empty() {
        ""
    } else {
        // Keep the '/' that ":/" consumed.
        &rest[socket.len() + 1..]
    };
    Ok((Endpoint::Unix(PathBuf::from(socket)), path_query))
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.endpoint {
            Endpoint::Tcp { host, addr } => write!(
                f,
                "{}://{}:{}{}",
                self.protocol.name(),
                host,
                addr.port(),
                self.uri()
            ),
            Endpoint::Unix(path) => write!(
                f,
                "{}+unix:{}:{}",
                self.protocol.name(),
                path.display(),
                self.uri()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_targets() {
        let t = Target::parse("fcgi://127.0.0.1:9000/hello?x=1&y=2").unwrap();
        assert_eq!(t.protocol, Protocol::Fcgi);
        assert_eq!(t.path, "/hello");
        assert_eq!(t.query, "x=1&y=2");
        assert_eq!(t.server_port(), 9000);
        assert_eq!(t.server_name(), "127.0.0.1");
        assert_eq!(t.to_string(), "fcgi://127.0.0.1:9000/hello?x=1&y=2");
        let t = Target::parse("http://[::1]:80").unwrap();
        assert_eq!(t.path, "/");
        assert_eq!(t.transport(), "tcp");
        let t = Target::parse("ajp://localhost:8009?q").unwrap();
        assert_eq!((t.path.as_str(), t.query.as_str()), ("/", "q"));
    }

    #[test]
    fn unix_targets() {
        let t = Target::parse("scgi+unix:/run/app.sock:/hello?a=b").unwrap();
        assert_eq!(t.endpoint, Endpoint::Unix(PathBuf::from("/run/app.sock")));
        assert_eq!(t.path, "/hello");
        assert_eq!(t.query, "a=b");
        assert_eq!(t.to_string(), "scgi+unix:/run/app.sock:/hello?a=b");
        let t = Target::parse("http+unix:/tmp/s").unwrap();
        assert_eq!(t.endpoint, Endpoint::Unix(PathBuf::from("/tmp/s")));
        assert_eq!(t.path, "/");
    }

    #[test]
    fn refused_targets() {
        assert!(matches!(
            Target::parse("hello"),
            Err(TargetError::NoScheme(_))
        ));
        assert!(matches!(
            Target::parse("ftp://a:1/"),
            Err(TargetError::UnknownScheme(_))
        ));
        assert!(matches!(
            Target::parse("fcgi://127.0.0.1/"),
            Err(TargetError::BadAddress(..))
        ));
        assert!(matches!(
            Target::parse("fcgi://127.0.0.1:x/"),
            Err(TargetError::BadAddress(..))
        ));
        assert!(matches!(
            Target::parse("fcgi+unix:rel.sock:/"),
            Err(TargetError::RelativeSocket(_))
        ));
    }
}
