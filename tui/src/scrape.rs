//! Fetching `/metrics`: a plain HTTP/1.1 GET over a `TcpStream` with timeouts, and the scraper
//! threads that fetch every engine on their own so a slow or dead engine never blocks drawing.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc::Sender;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use thiserror::Error;

use crate::prom::{self, ParseError};
use crate::snapshot::EngineSnapshot;

/// The engine's default metrics address (`engine::metrics::DEFAULT_ADDR`).
pub const DEFAULT_URL: &str = "http://127.0.0.1:9191/metrics";

/// Largest page accepted, in bytes (the engine's page is about 10 KiB per worker).
pub const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;

/// Where an engine's metrics are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port`.
    pub authority: String,
    /// The path, starting with `/`.
    pub path: String,
}

impl Target {
    /// Reads `http://HOST:PORT/PATH`, `HOST:PORT/PATH` or `HOST:PORT` (path `/metrics`).
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let rest = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some((scheme, _)) => return Err(UrlError::Scheme(scheme.to_owned())),
            None => url,
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/metrics"),
        };
        let port = authority
            .rsplit_once(':')
            .map(|(_, p)| p)
            .ok_or_else(|| UrlError::Port(url.to_owned()))?;
        if authority.starts_with(':') || port.parse::<u16>().is_err() {
            return Err(UrlError::Port(url.to_owned()));
        }
        Ok(Target {
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }

    /// `http://authority/path`.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.authority, self.path)
    }
}

/// A metrics URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Only `http` is spoken.
    #[error("unsupported scheme {0:?} (only http)")]
    Scheme(String),
    /// No `:PORT`, or not a port number.
    #[error("{0:?}: expected HOST:PORT")]
    Port(String),
}

/// Why a scrape failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ScrapeError {
    /// The host name does not resolve.
    #[error("cannot resolve {0}")]
    Resolve(String),
    /// No connection (refused, unreachable, timed out).
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// The connection failed or timed out after it was made.
    #[error("read: {0}")]
    Io(std::io::Error),
    /// The answer is not HTTP, or not a 200.
    #[error("bad response: {0}")]
    Http(String),
    /// The page is larger than [`MAX_PAGE_BYTES`].
    #[error("page larger than {MAX_PAGE_BYTES} bytes")]
    TooLarge,
    /// The page is not in the text format.
    #[error("bad page: {0}")]
    Parse(#[from] ParseError),
}

/// Fetches the page at `target`, giving up after `timeout` (connecting, then all the reading).
pub fn fetch(target: &Target, timeout: Duration) -> Result<String, ScrapeError> {
    let deadline = Instant::now() + timeout;
    let addrs: Vec<_> = target
        .authority
        .to_socket_addrs()
        .map_err(|_| ScrapeError::Resolve(target.authority.clone()))?
        .collect();
    let mut last = None;
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut stream = match (stream, last) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(ScrapeError::Connect(e)),
        (None, None) => return Err(ScrapeError::Resolve(target.authority.clone())),
    };
    stream
        .set_write_timeout(Some(timeout))
        .map_err(ScrapeError::Io)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/plain\r\nUser-Agent: ringfast-top\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    stream
        .write_all(request.as_bytes())
        .map_err(ScrapeError::Io)?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ScrapeError::Io(std::io::ErrorKind::TimedOut.into()));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(ScrapeError::Io)?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if raw.len() > MAX_PAGE_BYTES + 64 * 1024 {
                    return Err(ScrapeError::TooLarge);
                }
                if response_complete(&raw) {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ScrapeError::Io(e)),
        }
    }
    decode_response(&raw)
}

/// Whether `raw` holds a whole response with a `Content-Length` body (so the read can stop
/// before the server closes).
fn response_complete(raw: &[u8]) -> bool {
    let Some(head_end) = find(raw, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..head_end]);
    match header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(len) => raw.len() >= head_end + 4 + len,
        None => false,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The body of a complete HTTP/1.x response, which must be a 200.
fn decode_response(raw: &[u8]) -> Result<String, ScrapeError> {
    let head_end =
        find(raw, b"\r\n\r\n").ok_or_else(|| ScrapeError::Http("no end of headers".into()))?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let status_line = head.lines().next().unwrap_or("");
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(ScrapeError::Http(format!("not HTTP: {status_line:?}")));
    }
    if code != "200" {
        return Err(ScrapeError::Http(format!("status {status_line:?}")));
    }
    let body = &raw[head_end + 4..];
    let body = if header(&head, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        dechunk(body)?
    } else if let Some(len) = header(&head, "content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| ScrapeError::Http(format!("bad Content-Length {len:?}")))?;
        if body.len() < len {
            return Err(ScrapeError::Http("body shorter than Content-Length".into()));
        }
        body[..len].to_vec()
    } else {
        body.to_vec()
    };
    if body.len() > MAX_PAGE_BYTES {
        return Err(ScrapeError::TooLarge);
    }
    String::from_utf8(body).map_err(|_| ScrapeError::Http("body is not UTF-8".into()))
}

/// Decodes a chunked body.
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, ScrapeError> {
    let bad = || ScrapeError::Http("bad chunked body".into());
    let mut out = Vec::new();
    loop {
        let line_end = find(body, b"\r\n").ok_or_else(bad)?;
        let size_text = std::str::from_utf8(&body[..line_end]).map_err(|_| bad())?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad())?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 || out.len() + size > MAX_PAGE_BYTES {
            return Err(bad());
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// Fetches and reduces one engine's page.
pub fn scrape(target: &Target, timeout: Duration) -> Result<EngineSnapshot, ScrapeError> {
    let page = fetch(target, timeout)?;
    let parsed = prom::parse(&page)?;
    Ok(EngineSnapshot::from_exposition(&parsed))
}

/// What a scraper thread reports after each attempt.
#[derive(Debug)]
pub struct ScrapeEvent {
    /// Index of the engine in the command line's list.
    pub engine: usize,
    /// When the attempt ended (monotonic clock).
    pub at: Instant,
    /// When the attempt ended, seconds since the Unix epoch.
    pub wall: f64,
    /// The snapshot, or why there is none.
    pub result: Result<EngineSnapshot, ScrapeError>,
}

/// Seconds since the Unix epoch now.
pub fn wall_clock() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Starts a thread scraping `target` every `interval` until the receiver of `events` is
/// dropped. Each attempt times out after `interval` (at most 5 s, at least 200 ms).
pub fn spawn_scraper(
    engine: usize,
    target: Target,
    interval: Duration,
    events: Sender<ScrapeEvent>,
) -> std::io::Result<JoinHandle<()>> {
    let timeout = interval.clamp(Duration::from_millis(200), Duration::from_secs(5));
    thread::Builder::new()
        .name(format!("scrape-{engine}"))
        .spawn(move || loop {
            let started = Instant::now();
            let result = scrape(&target, timeout);
            let event = ScrapeEvent {
                engine,
                at: Instant::now(),
                wall: wall_clock(),
                result,
            };
            if events.send(event).is_err() {
                return;
            }
            let next = started + interval;
            thread::sleep(next.saturating_duration_since(Instant::now()));
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn targets() {
        let t = Target::parse("127.0.0.1:9191").unwrap();
        assert_eq!(t.url(), "http://127.0.0.1:9191/metrics");
        let t = Target::parse("http://localhost:8080/m").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("localhost:8080", "/m")
        );
        let t = Target::parse("http://[::1]:9191/metrics").unwrap();
        assert_eq!(t.authority, "[::1]:9191");
        assert_eq!(Target::parse(DEFAULT_URL).unwrap().url(), DEFAULT_URL);
        assert!(matches!(
            Target::parse("https://h:1/"),
            Err(UrlError::Scheme(_))
        ));
        assert!(matches!(Target::parse("host"), Err(UrlError::Port(_))));
        assert!(matches!(Target::parse("host:http"), Err(UrlError::Port(_))));
        assert!(matches!(Target::parse(":80"), Err(UrlError::Port(_))));
    }

    #[test]
    fn responses() {
        // Bytes past Content-Length are not part of the body.
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\na 1\nnext";
        assert!(response_complete(ok));
        assert!(!response_complete(&ok[..20]));
        assert_eq!(decode_response(ok).unwrap(), "a 1\n");
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\na 1\n\r\n3;x=y\r\nb 2\r\n0\r\n\r\n";
        assert_eq!(decode_response(chunked).unwrap(), "a 1\nb 2");
        let eof = b"HTTP/1.0 200 OK\r\n\r\nc 3\n";
        assert!(!response_complete(eof));
        assert_eq!(decode_response(eof).unwrap(), "c 3\n");
        assert!(matches!(
            decode_response(b"HTTP/1.1 404 Not Found\r\n\r\n"),
            Err(ScrapeError::Http(_))
        ));
        assert!(matches!(
            decode_response(b"SSH-2.0\r\n\r\n"),
            Err(ScrapeError::Http(_))
        ));
        assert!(matches!(
            decode_response(b"HTTP/1.1 200"),
            Err(ScrapeError::Http(_))
        ));
        assert!(matches!(
            decode_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            Err(ScrapeError::Http(_))
        ));
        assert!(matches!(
            decode_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab"),
            Err(ScrapeError::Http(_))
        ));
    }

    #[test]
    fn fetch_from_a_local_server() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut req = [0u8; 1024];
            let n = conn.read(&mut req).unwrap();
            let body = "ringfast_workers 3\n";
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            String::from_utf8_lossy(&req[..n]).into_owned()
        });
        let target = Target::parse(&addr.to_string()).unwrap();
        let snap = scrape(&target, Duration::from_secs(5)).unwrap();
        assert_eq!(snap.workers_started, Some(3.0));
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /metrics HTTP/1.1\r\n"),
            "{request}"
        );
    }

    #[test]
    fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = Target::parse(&listener.local_addr().unwrap().to_string()).unwrap();
        let started = Instant::now();
        let err = fetch(&target, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, ScrapeError::Io(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(listener);
    }

    #[test]
    fn a_closed_port_is_a_connect_error() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let target = Target::parse(&format!("127.0.0.1:{port}")).unwrap();
        let err = fetch(&target, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, ScrapeError::Connect(_)), "{err}");
    }
}
