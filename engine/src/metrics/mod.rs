//! Metrics: every metric name and label in one place, the per-worker handles protocol drivers
//! record with, and the Prometheus endpoint (`--metrics ADDR`, see [`Exporter`]).
//!
//! Each worker builds one [`WorkerMetrics`] when it starts: the cells of every counter, gauge
//! and histogram it will ever update are made then and added to the [`Registry`]. The worker is
//! the only writer of its cells, so the request path bumps them with plain relaxed loads and
//! stores (no locked instruction, no lock, no map lookup, no allocation), and nothing needs to
//! drain them: a scrape reads every worker's cells, hands the counters and gauges to the
//! `metrics-exporter-prometheus` recorder, which renders them, and renders the duration
//! histograms itself (see `cells`). With `--metrics off` a [`WorkerMetrics`] is empty and every
//! call is one branch on `None`.
//!
//! A protocol driver records with one call per event:
//!
//! | event | call |
//! | --- | --- |
//! | request head complete, handler starts | [`WorkerMetrics::request_started`] (a [`RequestTimer`]) |
//! | response ended | [`RequestTimer::finish`] (done by [`Response`](crate::app::Response)) |
//! | connection accepted / closed | [`WorkerMetrics::connection_opened`] (a guard) |
//! | request body bytes received | [`WorkerMetrics::request_body_bytes`] |
//! | malformed input | [`WorkerMetrics::protocol_error`] |
//! | a limit refused something | [`WorkerMetrics::limit_rejected`] |
//!
//! `docs/metrics.md` describes every metric for users.

mod cells;
mod exporter;
mod merge;
mod process;

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use metrics::{Level, Metadata};

use cells::{ProtocolCells, WorkerCells};

pub(crate) use exporter::answer_http;
pub use exporter::{Endpoint, Exporter, Registry, DEFAULT_ADDR};
pub use merge::Merger;

use proto::Protocol;

/// Metric names. Every name starts with `ringfast_`, uses base units and ends in `_total` for
/// counters; the `process_*` names are the Prometheus client libraries' standard ones.
pub mod names {
    /// Counter: requests that ended, by worker, protocol and status class.
    pub const REQUESTS: &str = "ringfast_requests_total";
    /// Histogram: seconds from the end of the request head to the end of the response.
    pub const REQUEST_DURATION: &str = "ringfast_request_duration_seconds";
    /// Gauge: requests whose handler is running, by worker.
    pub const REQUESTS_IN_FLIGHT: &str = "ringfast_requests_in_flight";
    /// Gauge: connections open, by worker and protocol.
    pub const CONNECTIONS_OPEN: &str = "ringfast_connections_open";
    /// Counter: connections accepted, by worker and protocol.
    pub const CONNECTIONS_ACCEPTED: &str = "ringfast_connections_accepted_total";
    /// Counter: request body bytes received, by worker and protocol.
    pub const REQUEST_BODY_BYTES: &str = "ringfast_request_body_bytes_total";
    /// Counter: response body bytes sent by handlers, by worker and protocol.
    pub const RESPONSE_BODY_BYTES: &str = "ringfast_response_body_bytes_total";
    /// Counter: connections dropped for malformed input, by worker, protocol and kind.
    pub const PROTOCOL_ERRORS: &str = "ringfast_protocol_errors_total";
    /// Counter: requests or connections refused by a configured limit, by worker, protocol and
    /// limit.
    pub const LIMIT_REJECTIONS: &str = "ringfast_limit_rejections_total";
    /// Gauge (always 1): version, git revision and I/O backend as labels.
    pub const BUILD_INFO: &str = "ringfast_build_info";
    /// Gauge: worker threads started (in all worker processes).
    pub const WORKERS: &str = "ringfast_workers";
    /// Gauge (supervisor only): worker processes ready.
    pub const WORKER_PROCESSES: &str = "ringfast_worker_processes";
    /// Counter (supervisor only): worker processes replaced after dying.
    pub const PROCESS_RESTARTS: &str = "ringfast_process_restarts_total";
    /// Counter (supervisor only): worker processes recycled after `--max-requests`.
    pub const PROCESS_RECYCLES: &str = "ringfast_process_recycles_total";
    /// Counter (supervisor only): reloads (`--touch-reload`, SIGHUP).
    pub const RELOADS: &str = "ringfast_reloads_total";
    /// Counter (supervisor only): reloads that failed (a new worker process exited before the
    /// new generation was ready); the old generation kept serving.
    pub const RELOAD_FAILURES: &str = "ringfast_reload_failures_total";
    /// Counter (process): user and system CPU time, in seconds.
    pub const PROCESS_CPU_SECONDS: &str = "process_cpu_seconds_total";
    /// Gauge (process): resident memory, in bytes.
    pub const PROCESS_RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
    /// Gauge (process): virtual memory, in bytes.
    pub const PROCESS_VIRTUAL_MEMORY: &str = "process_virtual_memory_bytes";
    /// Gauge (process): open file descriptors.
    pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
    /// Gauge (process): the open file descriptor limit.
    pub const PROCESS_MAX_FDS: &str = "process_max_fds";
    /// Gauge (process): start time since the Unix epoch, in seconds.
    pub const PROCESS_START_TIME: &str = "process_start_time_seconds";
}

/// The supervisor's figures for [`supervisor_page`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SupervisorCounts {
    /// Worker processes ready.
    pub ready: usize,
    /// Worker processes replaced after dying.
    pub restarts: u64,
    /// Worker processes recycled after `--max-requests`.
    pub recycles: u64,
    /// Reloads started.
    pub reloads: u64,
    /// Reloads that failed, the old generation still serving.
    pub reload_failures: u64,
}

/// The supervisor's own part of the merged `/metrics` page: the worker processes ready, the
/// replacements, recycles, reloads and failed reloads so far, and the supervisor's process
/// figures (summed with the worker processes' by the merge, so `process_*` cover the whole
/// service).
pub fn supervisor_page(counts: &SupervisorCounts) -> String {
    let mut out = String::new();
    let families: [(&str, &str, &str, f64); 5] = [
        (
            names::WORKER_PROCESSES,
            "gauge",
            "Worker processes ready (supervisor).",
            counts.ready as f64,
        ),
        (
            names::PROCESS_RESTARTS,
            "counter",
            "Worker processes replaced after dying.",
            counts.restarts as f64,
        ),
        (
            names::PROCESS_RECYCLES,
            "counter",
            "Worker processes recycled after --max-requests.",
            counts.recycles as f64,
        ),
        (
            names::RELOADS,
            "counter",
            "Reloads (--touch-reload, SIGHUP).",
            counts.reloads as f64,
        ),
        (
            names::RELOAD_FAILURES,
            "counter",
            "Reloads that failed: a new worker process exited before the new generation was ready; the old one kept serving.",
            counts.reload_failures as f64,
        ),
    ];
    for (name, kind, help, value) in families {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n\n"
        ));
    }
    process::render(&mut out);
    out
}

/// Label names. Every label takes a value from a fixed, small set: never a path or a URI.
pub mod labels {
    /// The worker index, `0`..`workers-1`.
    pub const WORKER: &str = "worker";
    /// The protocol: `fastcgi`, `scgi` or `ajp`.
    pub const PROTOCOL: &str = "protocol";
    /// The status class: `1xx`..`5xx`, or `aborted` (see [`StatusClass`](super::StatusClass)).
    pub const STATUS_CLASS: &str = "status_class";
    /// The kind of protocol error (see [`ProtocolErrorKind`](super::ProtocolErrorKind)).
    pub const KIND: &str = "kind";
    /// The limit that refused (see [`Limit`](super::Limit)).
    pub const LIMIT: &str = "limit";
    /// `ringfast_build_info`: the crate version.
    pub const VERSION: &str = "version";
    /// `ringfast_build_info`: the git revision built, or `unknown`.
    pub const REVISION: &str = "revision";
    /// `ringfast_build_info`: the I/O backend.
    pub const IO_BACKEND: &str = "io_backend";
}

/// Upper bounds of the request duration histogram's buckets, in seconds: fine from 10 µs to
/// 1 ms (so 50 µs and 100 µs fall in different buckets), then roughly 1-2.5-5 per decade up to
/// 60 s (1 s and 2 s too).
pub const DURATION_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_075, 0.000_1, 0.000_15, 0.000_25, 0.000_5, 0.000_75,
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

/// The crate version, as `ringfast_build_info{version}` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision built (`git rev-parse` at build time, or `unknown`).
pub const REVISION: &str = env!("RINGFAST_GIT_REVISION");
/// `ringfast_build_info{io_backend}` when the workers run on tokio-uring: FastCGI on
/// tokio-uring, SCGI and AJP13 on tokio's epoll reactor.
pub const IO_BACKEND_TOKIO: &str = "tokio-uring+epoll";
/// `ringfast_build_info{io_backend}` when the workers run the native ring (`--io ring`).
pub const IO_BACKEND_RING: &str = "ring";

static IO_BACKEND: std::sync::RwLock<&str> = std::sync::RwLock::new(IO_BACKEND_TOKIO);

/// Records which I/O loop this process's workers run, for `ringfast_build_info`. Called once
/// by [`Server::bind`](crate::server::Server::bind), before any registry is made.
pub fn set_io_backend(name: &'static str) {
    *IO_BACKEND.write().unwrap_or_else(|e| e.into_inner()) = name;
}

/// The I/O loop `ringfast_build_info{io_backend}` reports.
pub fn io_backend() -> &'static str {
    *IO_BACKEND.read().unwrap_or_else(|e| e.into_inner())
}

/// How a request ended, as the `status_class` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatusClass {
    /// 100-199.
    Informational,
    /// 200-299.
    Success,
    /// 300-399.
    Redirection,
    /// 400-499.
    ClientError,
    /// 500-999 (a handler error or panic is a 500).
    ServerError,
    /// The request was cancelled before its response ended: the peer aborted it or went away,
    /// or the shutdown timeout cut it short.
    Aborted,
}

impl StatusClass {
    /// Every class, in label order.
    pub const ALL: [StatusClass; 6] = [
        StatusClass::Informational,
        StatusClass::Success,
        StatusClass::Redirection,
        StatusClass::ClientError,
        StatusClass::ServerError,
        StatusClass::Aborted,
    ];

    /// The class of an HTTP status code.
    pub fn of(status: u16) -> StatusClass {
        match status {
            0..=199 => StatusClass::Informational,
            200..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirection,
            400..=499 => StatusClass::ClientError,
            _ => StatusClass::ServerError,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
            StatusClass::Aborted => "aborted",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a connection was dropped as malformed, as the `kind` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolErrorKind {
    /// A record or packet with an unsupported version or magic (often: not this protocol at all).
    BadVersion,
    /// A record or packet whose length is wrong for its type.
    BadLength,
    /// A FastCGI record with a request id its type cannot use.
    BadRequestId,
    /// Request variables that do not decode (a truncated name-value pair, a bad header block).
    BadParams,
    /// A FastCGI role other than RESPONDER.
    UnknownRole,
    /// Anything else the decoder refused.
    Malformed,
}

impl ProtocolErrorKind {
    /// Every kind, in label order.
    pub const ALL: [ProtocolErrorKind; 6] = [
        ProtocolErrorKind::BadVersion,
        ProtocolErrorKind::BadLength,
        ProtocolErrorKind::BadRequestId,
        ProtocolErrorKind::BadParams,
        ProtocolErrorKind::UnknownRole,
        ProtocolErrorKind::Malformed,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolErrorKind::BadVersion => "bad_version",
            ProtocolErrorKind::BadLength => "bad_length",
            ProtocolErrorKind::BadRequestId => "bad_request_id",
            ProtocolErrorKind::BadParams => "bad_params",
            ProtocolErrorKind::UnknownRole => "unknown_role",
            ProtocolErrorKind::Malformed => "malformed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl From<&crate::proto::fcgi::DecodeError> for ProtocolErrorKind {
    fn from(e: &crate::proto::fcgi::DecodeError) -> Self {
        use crate::proto::fcgi::DecodeError;
        match e {
            DecodeError::BadVersion(_) => ProtocolErrorKind::BadVersion,
            DecodeError::BadLength { .. } => ProtocolErrorKind::BadLength,
            DecodeError::BadRequestId { .. } => ProtocolErrorKind::BadRequestId,
            _ => ProtocolErrorKind::Malformed,
        }
    }
}

impl From<&crate::proto::scgi::Error> for ProtocolErrorKind {
    fn from(e: &crate::proto::scgi::Error) -> Self {
        use crate::proto::scgi::Error;
        match e {
            Error::UnsupportedVersion => ProtocolErrorKind::BadVersion,
            Error::InvalidLength
            | Error::LeadingZero
            | Error::MissingComma
            | Error::HeaderBlockTooLarge { .. } => ProtocolErrorKind::BadLength,
            Error::EmptyHeaderBlock
            | Error::UnterminatedPair
            | Error::EmptyName
            | Error::ContentLengthNotFirst
            | Error::InvalidContentLength
            | Error::DuplicateContentLength => ProtocolErrorKind::BadParams,
            _ => ProtocolErrorKind::Malformed,
        }
    }
}

impl From<&crate::proto::ajp::Error> for ProtocolErrorKind {
    fn from(e: &crate::proto::ajp::Error) -> Self {
        use crate::proto::ajp::Error;
        match e {
            Error::BadMagic { .. } => ProtocolErrorKind::BadVersion,
            Error::PacketTooLarge { .. }
            | Error::EmptyPacket
            | Error::Truncated { .. }
            | Error::TrailingBytes { .. }
            | Error::LengthMismatch { .. } => ProtocolErrorKind::BadLength,
            Error::MissingNul { .. }
            | Error::UnknownMethod(_)
            | Error::MissingStoredMethod
            | Error::UnknownHeaderCode(_)
            | Error::InvalidHeaderName
            | Error::UnknownAttribute(_)
            | Error::DuplicateAttribute(_)
            | Error::InvalidContentLength
            | Error::DuplicateContentLength => ProtocolErrorKind::BadParams,
            _ => ProtocolErrorKind::Malformed,
        }
    }
}

/// A configured limit that refused a request or a connection, as the `limit` label says it
/// (the label value is the option's name with `_` for `-`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// `--max-conns`: a connection past it had its requests answered "overloaded".
    MaxConns,
    /// `--max-reqs-per-conn`: a multiplexed request past it was answered "overloaded".
    MaxReqsPerConn,
    /// `--max-params-bytes`: request variables past it were answered 431.
    MaxParamsBytes,
    /// `--params-timeout`: a request head did not arrive in time; the connection was closed.
    ParamsTimeout,
    /// A request head larger than the connection's receive buffer; the connection was closed.
    RecvBuffer,
    /// `--max-conns` was reached and an idle connection (no request in flight) was closed to
    /// admit a new one, the one quiet longest first.
    IdleEvicted,
}

impl Limit {
    /// Every limit, in label order.
    pub const ALL: [Limit; 6] = [
        Limit::MaxConns,
        Limit::MaxReqsPerConn,
        Limit::MaxParamsBytes,
        Limit::ParamsTimeout,
        Limit::RecvBuffer,
        Limit::IdleEvicted,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::MaxConns => "max_conns",
            Limit::MaxReqsPerConn => "max_reqs_per_conn",
            Limit::MaxParamsBytes => "max_params_bytes",
            Limit::ParamsTimeout => "params_timeout",
            Limit::RecvBuffer => "recv_buffer",
            Limit::IdleEvicted => "idle_evicted",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One worker's cells and what the request path needs to find them.
#[derive(Debug)]
struct Handles {
    cells: Arc<WorkerCells>,
}

impl Handles {
    #[inline]
    fn protocol(&self, p: Protocol) -> Option<&ProtocolCells> {
        self.cells
            .protocols
            .get(p as usize)
            .and_then(Option::as_ref)
    }
}

/// One worker's metric cells, created once when the worker starts (see the module docs).
/// Cloning is cheap (an `Rc`); it is not `Send`: it belongs to its worker thread, the only
/// writer of its cells.
#[derive(Debug, Clone, Default)]
pub struct WorkerMetrics {
    handles: Option<Rc<Handles>>,
}

const METADATA: Metadata<'static> = Metadata::new("ringfast", Level::INFO, Some(module_path!()));

impl WorkerMetrics {
    /// Metrics disabled: every call does nothing.
    pub fn off() -> Self {
        WorkerMetrics { handles: None }
    }

    /// Creates the cells of worker `worker` for the `protocols` it serves and adds them to
    /// `registry`, which reads them when it renders. Every series exists (at 0) from now on.
    pub fn new(registry: &Registry, worker: usize, protocols: &[Protocol]) -> Self {
        let mut by_protocol: Vec<Option<ProtocolCells>> = Vec::new();
        for &p in protocols {
            let i = p as usize;
            if by_protocol.len() <= i {
                by_protocol.resize_with(i + 1, || None);
            }
            if by_protocol[i].is_none() {
                by_protocol[i] = Some(ProtocolCells::default());
            }
        }
        let cells = Arc::new(WorkerCells {
            worker,
            in_flight: cells::Cell::default(),
            protocols: by_protocol,
        });
        registry.add_worker(cells.clone());
        // quanta calibrates its clock on first use: do it now, not on the first request.
        let _ = quanta::Instant::now();
        WorkerMetrics {
            handles: Some(Rc::new(Handles { cells })),
        }
    }

    /// True unless built with [`off`](WorkerMetrics::off).
    pub fn is_enabled(&self) -> bool {
        self.handles.is_some()
    }

    /// A request's head is complete and its handler starts: counts it in flight and starts its
    /// timer. The request is counted (`ringfast_requests_total`, the duration histogram) when the
    /// timer is [finished](RequestTimer::finish), or dropped (as aborted).
    #[inline]
    pub fn request_started(&self, protocol: Protocol) -> RequestTimer {
        let Some(h) = &self.handles else {
            return RequestTimer::off();
        };
        if h.protocol(protocol).is_none() {
            return RequestTimer::off();
        }
        h.cells.in_flight.add(1);
        RequestTimer {
            live: Some(LiveTimer {
                handles: h.clone(),
                protocol,
                start: quanta::Instant::now(),
                body_out: 0,
            }),
        }
    }

    /// Counts a request that ended after `duration`, outside a [`RequestTimer`] (which calls
    /// this itself). Does not touch the in-flight gauge.
    #[inline]
    pub fn request_finished(&self, protocol: Protocol, class: StatusClass, duration: Duration) {
        if let Some(p) = self.handles.as_ref().and_then(|h| h.protocol(protocol)) {
            record_finished(p, class, duration, 0);
        }
    }

    /// A connection was accepted: counts it and keeps it in `ringfast_connections_open` until
    /// the returned guard is dropped.
    pub fn connection_opened(&self, protocol: Protocol) -> ConnectionGuard {
        let Some(h) = &self.handles else {
            return ConnectionGuard { open: None };
        };
        let Some(p) = h.protocol(protocol) else {
            return ConnectionGuard { open: None };
        };
        p.conns_accepted.add(1);
        p.conns_open.add(1);
        ConnectionGuard {
            open: Some((h.clone(), protocol)),
        }
    }

    /// `n` request body bytes were received.
    #[inline]
    pub fn request_body_bytes(&self, protocol: Protocol, n: usize) {
        if let Some(p) = self.handles.as_ref().and_then(|h| h.protocol(protocol)) {
            p.body_in.add(n as u64);
        }
    }

    /// `n` response body bytes were sent outside a [`RequestTimer`].
    #[inline]
    pub fn response_body_bytes(&self, protocol: Protocol, n: usize) {
        if let Some(p) = self.handles.as_ref().and_then(|h| h.protocol(protocol)) {
            p.body_out.add(n as u64);
        }
    }

    /// The peer sent malformed input of this `kind`.
    pub fn protocol_error(&self, protocol: Protocol, kind: ProtocolErrorKind) {
        if let Some(p) = self.handles.as_ref().and_then(|h| h.protocol(protocol)) {
            p.errors[kind.index()].add(1);
        }
    }

    /// `limit` refused a request or a connection.
    pub fn limit_rejected(&self, protocol: Protocol, limit: Limit) {
        if let Some(p) = self.handles.as_ref().and_then(|h| h.protocol(protocol)) {
            p.limits[limit.index()].add(1);
        }
    }
}

#[inline]
fn record_finished(p: &ProtocolCells, class: StatusClass, duration: Duration, body_out: u64) {
    p.requests[class.index()].add(1);
    p.duration.record(duration);
    if body_out > 0 {
        p.body_out.add(body_out);
    }
}

/// Keeps a connection counted as open; dropping it counts the connection closed.
#[derive(Debug)]
#[must_use = "the connection counts as closed when the guard is dropped"]
pub struct ConnectionGuard {
    open: Option<(Rc<Handles>, Protocol)>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Some((h, p)) = &self.open {
            if let Some(p) = h.protocol(*p) {
                p.conns_open.sub(1);
            }
        }
    }
}

#[derive(Debug)]
struct LiveTimer {
    handles: Rc<Handles>,
    protocol: Protocol,
    /// quanta's TSC clock: a read costs about half of `std::time::Instant::now` here (18 ns
    /// against 31 ns, the `clock` group of `benches/metrics_record.rs`); a timer reads it twice.
    start: quanta::Instant,
    body_out: u64,
}

/// One request from its start to its end (see [`WorkerMetrics::request_started`]). Counts the
/// request exactly once: at [`finish`](RequestTimer::finish), or as
/// [`Aborted`](StatusClass::Aborted) when dropped unfinished.
#[derive(Debug, Default)]
pub struct RequestTimer {
    live: Option<LiveTimer>,
}

impl RequestTimer {
    /// A timer that records nothing.
    pub fn off() -> Self {
        RequestTimer { live: None }
    }

    /// Adds response body bytes, counted when the request ends.
    #[inline]
    pub fn add_body_out(&mut self, n: usize) {
        if let Some(t) = &mut self.live {
            t.body_out += n as u64;
        }
    }

    /// Ends the request with this status class; later calls do nothing.
    #[inline]
    pub fn finish(&mut self, class: StatusClass) {
        if let Some(t) = self.live.take() {
            t.handles.cells.in_flight.sub(1);
            if let Some(p) = t.handles.protocol(t.protocol) {
                record_finished(p, class, t.start.elapsed(), t.body_out);
            }
        }
    }

    /// True until finished (and never for a timer that records nothing).
    pub fn is_running(&self) -> bool {
        self.live.is_some()
    }
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        self.finish(StatusClass::Aborted);
    }
}

#[cfg(test)]
mod tests;
