//! The Prometheus endpoint: the recorder every worker registers its handles with, and a tiny
//! HTTP/1.1 server on its own thread (`ringfast-metrics`) that answers `GET /metrics`.
//!
//! The endpoint runs on a plain blocking thread, never on a worker's ring: a scrape renders the
//! recorder's snapshot (the only place that takes the recorder's internal locks) and reads the
//! process figures from `/proc`, so they are as fresh as the scrape. The thread also runs the
//! recorder's upkeep (draining histogram samples) ten times a second, scraped or not.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{Key, KeyName, Label, Recorder, SharedString};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use super::{io_backend, labels, names, process, DURATION_BUCKETS, METADATA, REVISION, VERSION};

/// Where `/metrics` is served when `--metrics` is not given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9191";

/// How long a scrape may take to send its request or read its answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the recorder's upkeep runs: it drains the histogram samples the workers pushed
/// into their lock-free buckets. Every 5 s was too rare: at 60k requests/s the buckets grew by
/// 300k samples between drains and the worker spent about 15 % more CPU per request than with
/// `--metrics off`; every 100 ms the difference is within the noise (measured with
/// `ringfast-load -c 32` against `--workers 1`, both pinned; see docs/metrics.md, "Cost").
const UPKEEP_EVERY: Duration = Duration::from_millis(100);
/// The largest request head accepted.
const MAX_HEAD: usize = 8 * 1024;

/// The `--metrics` option: an address to serve `/metrics` on, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// No endpoint and no metrics recorded.
    Off,
    /// Serve `/metrics` on this TCP address.
    Addr(SocketAddr),
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if matches!(s, "off" | "none" | "false" | "no") {
            return Ok(Endpoint::Off);
        }
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(Endpoint::Addr(a));
        }
        use std::net::ToSocketAddrs;
        s.to_socket_addrs()
            .map_err(|e| format!("{s:?} is not HOST:PORT, [V6]:PORT or off ({e})"))?
            .next()
            .map(Endpoint::Addr)
            .ok_or_else(|| format!("{s:?} resolves to no address"))
    }
}

/// The metrics registry: the Prometheus recorder every worker registers its handles with.
/// Cheap to clone (shared).
#[derive(Clone)]
pub struct Registry {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// A registry with every metric described, the duration histogram's buckets set (so it is
    /// exported as a Prometheus histogram, not a summary) and `ringfast_build_info` set.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(names::REQUEST_DURATION.to_string()),
                DURATION_BUCKETS,
            )
            .expect("DURATION_BUCKETS is not empty")
            .build_recorder();
        let handle = recorder.handle();
        let registry = Registry {
            recorder: Arc::new(recorder),
            handle,
        };
        registry.describe();
        let info = Key::from_parts(
            names::BUILD_INFO,
            vec![
                Label::new(labels::VERSION, VERSION),
                Label::new(labels::REVISION, REVISION),
                Label::new(labels::IO_BACKEND, io_backend()),
            ],
        );
        registry.recorder.register_gauge(&info, &METADATA).set(1.0);
        registry
    }

    fn describe(&self) {
        let r = &*self.recorder;
        let d = |s: &'static str| SharedString::const_str(s);
        let n = KeyName::from_const_str;
        r.describe_counter(
            n(names::REQUESTS),
            None,
            d("Requests that ended, by status class (aborted: cancelled before the response ended)."),
        );
        r.describe_histogram(
            n(names::REQUEST_DURATION),
            None,
            d("Seconds from the end of the request head to the end of the response."),
        );
        r.describe_gauge(
            n(names::REQUESTS_IN_FLIGHT),
            None,
            d("Requests whose handler is running."),
        );
        r.describe_gauge(n(names::CONNECTIONS_OPEN), None, d("Connections open."));
        r.describe_counter(
            n(names::CONNECTIONS_ACCEPTED),
            None,
            d("Connections accepted."),
        );
        r.describe_counter(
            n(names::REQUEST_BODY_BYTES),
            None,
            d("Request body bytes received."),
        );
        r.describe_counter(
            n(names::RESPONSE_BODY_BYTES),
            None,
            d("Response body bytes written by handlers (counted when each response ends)."),
        );
        r.describe_counter(
            n(names::PROTOCOL_ERRORS),
            None,
            d("Malformed input from the peer, by kind."),
        );
        r.describe_counter(
            n(names::LIMIT_REJECTIONS),
            None,
            d("Requests or connections refused by a configured limit."),
        );
        r.describe_gauge(
            n(names::BUILD_INFO),
            None,
            d("Always 1: the version, git revision and I/O backend of this build."),
        );
        r.describe_gauge(n(names::WORKERS), None, d("Worker threads started."));
    }

    /// The recorder, to register handles with.
    pub(crate) fn recorder(&self) -> &PrometheusRecorder {
        &self.recorder
    }

    /// Sets `ringfast_workers`.
    pub fn set_workers(&self, n: usize) {
        self.recorder
            .register_gauge(&Key::from_static_name(names::WORKERS), &METADATA)
            .set(n as f64);
    }

    /// The whole `/metrics` page: the recorder's metrics and the process figures.
    pub fn render(&self) -> String {
        let mut out = self.handle.render();
        process::render(&mut out);
        out
    }

    /// Drains recorded histogram samples into their buckets (done by every render too).
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// A bound `/metrics` endpoint, not serving yet (see [`spawn`](Exporter::spawn)).
#[derive(Debug)]
pub struct Exporter {
    registry: Registry,
    listener: TcpListener,
}

impl Exporter {
    /// Binds `addr` and creates the registry.
    pub fn bind(addr: SocketAddr) -> io::Result<Exporter> {
        let listener = TcpListener::bind(addr)?;
        Ok(Exporter {
            registry: Registry::new(),
            listener,
        })
    }

    /// Applies the `--metrics` option: `Off` gives `None`; an address is bound (an error if it
    /// cannot be); no option binds [`DEFAULT_ADDR`], and if that fails (another ringfast has it)
    /// logs a warning and runs without metrics.
    pub fn from_option(option: Option<Endpoint>) -> Result<Option<Exporter>, (String, io::Error)> {
        match option {
            Some(Endpoint::Off) => Ok(None),
            Some(Endpoint::Addr(a)) => Exporter::bind(a).map(Some).map_err(|e| (a.to_string(), e)),
            None => {
                let a: SocketAddr = DEFAULT_ADDR.parse().expect("DEFAULT_ADDR is an address");
                match Exporter::bind(a) {
                    Ok(e) => Ok(Some(e)),
                    Err(e) => {
                        tracing::warn!(
                            addr = DEFAULT_ADDR,
                            error = %e,
                            "cannot serve metrics on the default address; metrics are off \
                             (use --metrics ADDR or --metrics off)"
                        );
                        Ok(None)
                    }
                }
            }
        }
    }

    /// The address bound (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The bound listener, for a prefork supervisor that serves the merged page itself.
    pub(crate) fn into_listener(self) -> TcpListener {
        self.listener
    }

    /// The registry workers register with.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Starts serving on the `ringfast-metrics` thread, which runs until the process exits.
    pub fn spawn(self) -> io::Result<Registry> {
        let registry = self.registry.clone();
        let addr = self.local_addr();
        socket2::SockRef::from(&self.listener).set_read_timeout(Some(UPKEEP_EVERY))?;
        std::thread::Builder::new()
            .name("ringfast-metrics".into())
            .spawn(move || serve(self.listener, self.registry))?;
        tracing::info!(%addr, "metrics at http://{addr}/metrics");
        Ok(registry)
    }
}

fn serve(listener: TcpListener, registry: Registry) {
    let mut last_upkeep = Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = answer_http(stream, &mut || registry.render()) {
                    tracing::debug!(error = %e, "metrics request failed");
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if last_upkeep.elapsed() >= UPKEEP_EVERY {
            registry.upkeep();
            last_upkeep = Instant::now();
        }
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics { head_only: bool },
    Index { head_only: bool },
    MethodNotAllowed,
    NotFound,
    BadRequest,
}

fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    let path = target.split('?').next().unwrap_or_default();
    let head_only = method == "HEAD";
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => Route::Metrics { head_only },
        ("GET" | "HEAD", "/") => Route::Index { head_only },
        (_, "/metrics" | "/") => Route::MethodNotAllowed,
        _ => Route::NotFound,
    }
}

/// Answers one HTTP request on the metrics endpoint: `/metrics` with the page `render` gives,
/// `/` with a pointer to it, an error status otherwise.
pub(crate) fn answer_http(
    mut stream: TcpStream,
    render: &mut dyn FnMut() -> String,
) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"",
                false,
            );
        }
    }
    match route(&head) {
        Route::Metrics { head_only } => {
            let body = render();
            respond(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                body.as_bytes(),
                head_only,
            )
        }
        Route::Index { head_only } => respond(
            &mut stream,
            "200 OK",
            "text/plain; charset=utf-8",
            b"ringfast: Prometheus metrics at /metrics\n",
            head_only,
        ),
        Route::MethodNotAllowed => respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"",
            false,
        ),
        Route::NotFound => respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            b"not found\n",
            false,
        ),
        Route::BadRequest => respond(&mut stream, "400 Bad Request", "text/plain", b"", false),
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()?;
    stream.shutdown(std::net::Shutdown::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_option() {
        assert_eq!("off".parse::<Endpoint>().unwrap(), Endpoint::Off);
        assert_eq!(
            "127.0.0.1:9191".parse::<Endpoint>().unwrap(),
            Endpoint::Addr("127.0.0.1:9191".parse().unwrap())
        );
        assert!("nonsense".parse::<Endpoint>().is_err());
        assert!(DEFAULT_ADDR.parse::<SocketAddr>().is_ok());
    }

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            route(b"HEAD /metrics HTTP/1.1\r\n\r\n"),
            Route::Metrics { head_only: true }
        );
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(route(b"GET /etc/passwd HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"garbage\r\n\r\n"), Route::BadRequest);
    }

    #[test]
    fn serves_metrics_over_http() {
        let e = Exporter::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = e.local_addr();
        e.spawn().unwrap();
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("ringfast_build_info{"), "{text}");
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
    }
}
