//! The Prometheus endpoint: the recorder every worker registers its handles with, and a tiny
//! HTTP/1.1 server on its own thread (`ringfast-metrics`) that answers `GET /metrics`.
//!
//! The endpoint runs on a plain blocking thread, never on a worker's ring: a scrape reads every
//! worker's cells, renders the recorder's snapshot (the only place that takes the recorder's
//! internal locks) and reads the process figures from `/proc`, so they are as fresh as the
//! scrape. Between scrapes the thread sleeps in `accept`: nothing needs draining.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metrics::{Key, KeyName, Label, Recorder, SharedString};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use super::cells::{render_durations, ProtocolTotals, WorkerCells};
use super::{
    io_backend, labels, names, process, Limit, ProtocolErrorKind, StatusClass, METADATA, REVISION,
    VERSION,
};
use proto::Protocol;

/// Where `/metrics` is served when `--metrics` is not given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9191";

/// How long a scrape may take to send its request or read its answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
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

/// The metrics registry: the Prometheus recorder, and the cells every worker records into.
/// Cheap to clone (shared).
#[derive(Clone)]
pub struct Registry {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    workers: Arc<Mutex<Vec<Arc<WorkerCells>>>>,
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
    /// A registry with every metric described and `ringfast_build_info` set.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let registry = Registry {
            recorder: Arc::new(recorder),
            handle,
            workers: Arc::default(),
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

    /// Adds a worker's cells: they are read at every render from now on (a render syncs them
    /// into the recorder first, so their series exist at 0 from the first scrape).
    pub(crate) fn add_worker(&self, cells: Arc<WorkerCells>) {
        self.workers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(cells);
    }

    /// Reads every worker's cells: sets the recorder's counters and gauges to their totals (per
    /// worker and protocol) and returns the duration histograms, rendered.
    fn sync_workers(&self) -> String {
        let workers = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
        // Totals per worker index (a worker index registered twice is summed).
        let mut totals: Vec<(usize, i64, Vec<Option<ProtocolTotals>>)> = Vec::new();
        for w in workers.iter() {
            let pos = match totals.iter().position(|t| t.0 == w.worker) {
                Some(pos) => pos,
                None => {
                    totals.push((w.worker, 0, Vec::new()));
                    totals.len() - 1
                }
            };
            let entry = &mut totals[pos];
            entry.1 += w.in_flight.get_signed();
            if entry.2.len() < w.protocols.len() {
                entry.2.resize(w.protocols.len(), None);
            }
            for (i, p) in w.protocols.iter().enumerate() {
                if let Some(p) = p {
                    p.read_into(entry.2[i].get_or_insert_with(ProtocolTotals::default));
                }
            }
        }
        drop(workers);
        totals.sort_by_key(|t| t.0);
        let mut histograms = String::new();
        for (worker, in_flight, protocols) in &totals {
            let w = worker.to_string();
            let worker_label = [Label::new(labels::WORKER, w.clone())];
            self.gauge(names::REQUESTS_IN_FLIGHT, &worker_label)
                .set(*in_flight as f64);
            for (i, t) in protocols.iter().enumerate() {
                let (Some(t), Some(&p)) = (t, Protocol::ALL.get(i)) else {
                    continue;
                };
                self.sync_protocol(&w, p, t);
                let labels = format!(
                    "{}=\"{w}\",{}=\"{}\"",
                    labels::WORKER,
                    labels::PROTOCOL,
                    p.name()
                );
                render_durations(
                    &mut histograms,
                    names::REQUEST_DURATION,
                    &labels,
                    &t.duration,
                );
            }
        }
        histograms
    }

    /// Sets one worker's counters and gauges of one protocol.
    fn sync_protocol(&self, w: &str, p: Protocol, t: &ProtocolTotals) {
        let base = || {
            vec![
                Label::new(labels::WORKER, w.to_string()),
                Label::new(labels::PROTOCOL, p.name()),
            ]
        };
        let with = |label: &'static str, value: &'static str| {
            let mut l = base();
            l.push(Label::new(label, value));
            l
        };
        for (c, n) in StatusClass::ALL.iter().zip(t.requests) {
            self.counter(names::REQUESTS, &with(labels::STATUS_CLASS, c.as_str()))
                .absolute(n);
        }
        self.gauge(names::CONNECTIONS_OPEN, &base())
            .set(t.conns_open as f64);
        self.counter(names::CONNECTIONS_ACCEPTED, &base())
            .absolute(t.conns_accepted);
        self.counter(names::REQUEST_BODY_BYTES, &base())
            .absolute(t.body_in);
        self.counter(names::RESPONSE_BODY_BYTES, &base())
            .absolute(t.body_out);
        for (k, n) in ProtocolErrorKind::ALL.iter().zip(t.errors) {
            self.counter(names::PROTOCOL_ERRORS, &with(labels::KIND, k.as_str()))
                .absolute(n);
        }
        for (l, n) in Limit::ALL.iter().zip(t.limits) {
            self.counter(names::LIMIT_REJECTIONS, &with(labels::LIMIT, l.as_str()))
                .absolute(n);
        }
    }

    fn counter(&self, name: &'static str, labels: &[Label]) -> metrics::Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels.to_vec()), &METADATA)
    }

    fn gauge(&self, name: &'static str, labels: &[Label]) -> metrics::Gauge {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels.to_vec()), &METADATA)
    }

    /// Sets `ringfast_workers`.
    pub fn set_workers(&self, n: usize) {
        self.recorder
            .register_gauge(&Key::from_static_name(names::WORKERS), &METADATA)
            .set(n as f64);
    }

    /// The whole `/metrics` page: the workers' figures as they are now, the recorder's other
    /// metrics and the process figures.
    pub fn render(&self) -> String {
        let histograms = self.sync_workers();
        let mut out = self.handle.render();
        if !histograms.is_empty() {
            let name = names::REQUEST_DURATION;
            out.push_str(&format!(
                "# HELP {name} Seconds from the end of the request head to the end of the response.\n# TYPE {name} histogram\n"
            ));
            out.push_str(&histograms);
            out.push('\n');
        }
        process::render(&mut out);
        out
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
        std::thread::Builder::new()
            .name("ringfast-metrics".into())
            .spawn(move || serve(self.listener, self.registry))?;
        tracing::info!(%addr, "metrics at http://{addr}/metrics");
        Ok(registry)
    }
}

fn serve(listener: TcpListener, registry: Registry) {
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
