//! One scrape of one engine, reduced to what the dashboard shows: per worker (summed over
//! protocols) and per process. The metric names are the engine's (`engine/src/metrics/mod.rs`,
//! documented in `docs/metrics.md`); the tui reads the page and nothing else.

use std::collections::BTreeMap;

use crate::histogram::Histogram;
use crate::prom::Exposition;

/// The metric and label names the dashboard reads.
pub mod names {
    /// Counter: requests that ended, by worker, protocol and status class.
    pub const REQUESTS: &str = "ringfast_requests_total";
    /// Histogram: request duration in seconds, by worker and protocol.
    pub const REQUEST_DURATION: &str = "ringfast_request_duration_seconds";
    /// Gauge: requests whose handler is running, by worker.
    pub const REQUESTS_IN_FLIGHT: &str = "ringfast_requests_in_flight";
    /// Gauge: connections open, by worker and protocol.
    pub const CONNECTIONS_OPEN: &str = "ringfast_connections_open";
    /// Counter: connections accepted, by worker and protocol.
    pub const CONNECTIONS_ACCEPTED: &str = "ringfast_connections_accepted_total";
    /// Counter: malformed input, by worker, protocol and kind.
    pub const PROTOCOL_ERRORS: &str = "ringfast_protocol_errors_total";
    /// Gauge (1): version, revision and I/O backend.
    pub const BUILD_INFO: &str = "ringfast_build_info";
    /// Gauge: worker threads started.
    pub const WORKERS: &str = "ringfast_workers";
    /// Gauge (prefork only): worker processes ready.
    pub const WORKER_PROCESSES: &str = "ringfast_worker_processes";
    /// Counter (prefork only): worker processes replaced after dying.
    pub const PROCESS_RESTARTS: &str = "ringfast_process_restarts_total";
    /// Counter (supervisor only): worker processes recycled after `--max-requests`.
    pub const PROCESS_RECYCLES: &str = "ringfast_process_recycles_total";
    /// Counter (supervisor only): reloads (`--touch-reload`, SIGHUP).
    pub const RELOADS: &str = "ringfast_reloads_total";
    /// Counter: process CPU seconds.
    pub const PROCESS_CPU_SECONDS: &str = "process_cpu_seconds_total";
    /// Gauge: resident memory in bytes.
    pub const PROCESS_RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
    /// Gauge: open file descriptors.
    pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
    /// Gauge: the file descriptor limit.
    pub const PROCESS_MAX_FDS: &str = "process_max_fds";
    /// Gauge: process start, seconds since the Unix epoch.
    pub const PROCESS_START_TIME: &str = "process_start_time_seconds";
}

/// Status classes the `status_class` label takes, in display order.
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "aborted"];

/// The status classes counted as errors: a server error, or a request cut off before its
/// response ended.
pub const ERROR_CLASSES: [&str; 2] = ["5xx", "aborted"];

/// What the build info gauge says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildInfo {
    /// Crate version.
    pub version: String,
    /// Git revision, or `unknown`.
    pub revision: String,
    /// I/O backend.
    pub io_backend: String,
}

/// One worker's figures, summed over its protocols.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerSnapshot {
    /// Requests ended, per status class (indexed like [`STATUS_CLASSES`]).
    pub requests: [f64; 6],
    /// Request duration histogram.
    pub duration: Histogram,
    /// Requests running now.
    pub in_flight: f64,
    /// Connections open now.
    pub connections_open: f64,
    /// Connections accepted since start.
    pub connections_accepted: f64,
    /// Malformed-input errors since start.
    pub protocol_errors: f64,
}

impl WorkerSnapshot {
    /// Requests ended, every class.
    pub fn requests_total(&self) -> f64 {
        self.requests.iter().sum()
    }

    /// Requests that ended as errors ([`ERROR_CLASSES`]).
    pub fn requests_failed(&self) -> f64 {
        STATUS_CLASSES
            .iter()
            .zip(&self.requests)
            .filter(|(class, _)| ERROR_CLASSES.contains(class))
            .map(|(_, n)| n)
            .sum()
    }

    /// Adds another worker's figures (for totals over workers or engines).
    pub fn add(&mut self, other: &WorkerSnapshot) {
        for (mine, theirs) in self.requests.iter_mut().zip(&other.requests) {
            *mine += theirs;
        }
        self.duration.add(&other.duration);
        self.in_flight += other.in_flight;
        self.connections_open += other.connections_open;
        self.connections_accepted += other.connections_accepted;
        self.protocol_errors += other.protocol_errors;
    }
}

/// Process-wide figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessSnapshot {
    /// CPU seconds used.
    pub cpu_seconds: Option<f64>,
    /// Resident memory, bytes.
    pub resident_bytes: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<f64>,
    /// File descriptor limit.
    pub max_fds: Option<f64>,
    /// Start time, seconds since the Unix epoch.
    pub start_time: Option<f64>,
}

/// Everything one scrape of one engine says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineSnapshot {
    /// Build info, when the page has it.
    pub build: Option<BuildInfo>,
    /// Worker threads started, when the page says.
    pub workers_started: Option<f64>,
    /// Worker processes ready (prefork only).
    pub worker_processes: Option<f64>,
    /// Worker processes replaced after dying (supervisor only).
    pub process_restarts: Option<f64>,
    /// Worker processes recycled after `--max-requests` (supervisor only).
    pub process_recycles: Option<f64>,
    /// Reloads (supervisor only).
    pub reloads: Option<f64>,
    /// Per worker index.
    pub workers: BTreeMap<u32, WorkerSnapshot>,
    /// Process figures.
    pub process: ProcessSnapshot,
}

impl EngineSnapshot {
    /// Reduces a parsed page. Series without a numeric `worker` label are skipped; a page with
    /// none of the engine's metrics gives an empty snapshot.
    pub fn from_exposition(page: &Exposition) -> Self {
        let mut snap = EngineSnapshot::default();
        let mut buckets: BTreeMap<u32, BTreeMap<u64, (f64, f64)>> = BTreeMap::new();
        let mut sums: BTreeMap<u32, (f64, f64)> = BTreeMap::new();
        let bucket_name = format!("{}_bucket", names::REQUEST_DURATION);
        let sum_name = format!("{}_sum", names::REQUEST_DURATION);
        let count_name = format!("{}_count", names::REQUEST_DURATION);

        for s in &page.samples {
            let worker = s.label("worker").and_then(|w| w.parse::<u32>().ok());
            let name = s.name.as_str();
            match (name, worker) {
                (names::BUILD_INFO, _) => {
                    snap.build = Some(BuildInfo {
                        version: s.label("version").unwrap_or("?").to_owned(),
                        revision: s.label("revision").unwrap_or("?").to_owned(),
                        io_backend: s.label("io_backend").unwrap_or("?").to_owned(),
                    });
                }
                (names::WORKERS, _) => snap.workers_started = Some(s.value),
                (names::WORKER_PROCESSES, _) => snap.worker_processes = Some(s.value),
                (names::PROCESS_RESTARTS, _) => snap.process_restarts = Some(s.value),
                (names::PROCESS_RECYCLES, _) => snap.process_recycles = Some(s.value),
                (names::RELOADS, _) => snap.reloads = Some(s.value),
                (names::PROCESS_CPU_SECONDS, _) => snap.process.cpu_seconds = Some(s.value),
                (names::PROCESS_RESIDENT_MEMORY, _) => snap.process.resident_bytes = Some(s.value),
                (names::PROCESS_OPEN_FDS, _) => snap.process.open_fds = Some(s.value),
                (names::PROCESS_MAX_FDS, _) => snap.process.max_fds = Some(s.value),
                (names::PROCESS_START_TIME, _) => snap.process.start_time = Some(s.value),
                (_, None) => {}
                (names::REQUESTS, Some(w)) => {
                    let class = s.label("status_class").unwrap_or("");
                    if let Some(i) = STATUS_CLASSES.iter().position(|c| *c == class) {
                        snap.workers.entry(w).or_default().requests[i] += s.value;
                    }
                }
                (names::REQUESTS_IN_FLIGHT, Some(w)) => {
                    snap.workers.entry(w).or_default().in_flight += s.value;
                }
                (names::CONNECTIONS_OPEN, Some(w)) => {
                    snap.workers.entry(w).or_default().connections_open += s.value;
                }
                (names::CONNECTIONS_ACCEPTED, Some(w)) => {
                    snap.workers.entry(w).or_default().connections_accepted += s.value;
                }
                (names::PROTOCOL_ERRORS, Some(w)) => {
                    snap.workers.entry(w).or_default().protocol_errors += s.value;
                }
                (n, Some(w)) if n == bucket_name => {
                    let Some(le) = s.label("le").and_then(parse_le) else {
                        continue;
                    };
                    snap.workers.entry(w).or_default();
                    let slot = buckets
                        .entry(w)
                        .or_default()
                        .entry(le.to_bits())
                        .or_insert((le, 0.0));
                    slot.1 += s.value;
                }
                (n, Some(w)) if n == sum_name => sums.entry(w).or_default().0 += s.value,
                (n, Some(w)) if n == count_name => sums.entry(w).or_default().1 += s.value,
                _ => {}
            }
        }
        for (w, by_le) in buckets {
            let (sum, count) = sums.get(&w).copied().unwrap_or_default();
            let hist = Histogram::from_buckets(by_le.into_values().collect(), sum, count);
            snap.workers.entry(w).or_default().duration = hist;
        }
        snap
    }

    /// Every worker summed.
    pub fn total(&self) -> WorkerSnapshot {
        let mut total = WorkerSnapshot::default();
        for w in self.workers.values() {
            total.add(w);
        }
        total
    }
}

/// A bucket bound: a number, or `+Inf`.
fn parse_le(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        _ => text.parse::<f64>().ok().filter(|v| !v.is_nan()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prom::parse;

    const PAGE: &str = r#"
ringfast_requests_total{worker="0",protocol="fastcgi",status_class="2xx"} 10
ringfast_requests_total{worker="0",protocol="scgi",status_class="2xx"} 5
ringfast_requests_total{worker="0",protocol="fastcgi",status_class="5xx"} 2
ringfast_requests_total{worker="1",protocol="fastcgi",status_class="aborted"} 1
ringfast_requests_total{worker="x",protocol="fastcgi",status_class="2xx"} 99
ringfast_requests_in_flight{worker="0"} 3
ringfast_connections_open{worker="0",protocol="fastcgi"} 2
ringfast_connections_open{worker="0",protocol="scgi"} 1
ringfast_request_duration_seconds_bucket{worker="0",protocol="fastcgi",le="0.001"} 9
ringfast_request_duration_seconds_bucket{worker="0",protocol="fastcgi",le="+Inf"} 12
ringfast_request_duration_seconds_bucket{worker="0",protocol="scgi",le="0.001"} 5
ringfast_request_duration_seconds_bucket{worker="0",protocol="scgi",le="+Inf"} 5
ringfast_request_duration_seconds_sum{worker="0",protocol="fastcgi"} 0.5
ringfast_request_duration_seconds_count{worker="0",protocol="fastcgi"} 12
ringfast_request_duration_seconds_count{worker="0",protocol="scgi"} 5
ringfast_build_info{version="1.2.3",revision="abc",io_backend="tokio-uring"} 1
ringfast_workers 2
process_start_time_seconds 1700000000.5
"#;

    #[test]
    fn sums_protocols_per_worker() {
        let snap = EngineSnapshot::from_exposition(&parse(PAGE).unwrap());
        assert_eq!(snap.workers.len(), 2);
        let w0 = &snap.workers[&0];
        assert_eq!(w0.requests_total(), 17.0);
        assert_eq!(w0.requests_failed(), 2.0);
        assert_eq!(w0.in_flight, 3.0);
        assert_eq!(w0.connections_open, 3.0);
        assert_eq!(w0.duration.bounds, vec![0.001, f64::INFINITY]);
        assert_eq!(w0.duration.counts, vec![14.0, 17.0]);
        assert_eq!(w0.duration.count, 17.0);
        assert_eq!(snap.workers[&1].requests_failed(), 1.0);
        assert_eq!(snap.build.as_ref().unwrap().version, "1.2.3");
        assert_eq!(snap.workers_started, Some(2.0));
        assert_eq!(snap.process.start_time, Some(1_700_000_000.5));
        assert_eq!(snap.total().requests_total(), 18.0);
    }

    #[test]
    fn a_page_without_engine_metrics_is_empty() {
        let snap = EngineSnapshot::from_exposition(&parse("up 1\n").unwrap());
        assert_eq!(snap, EngineSnapshot::default());
    }
}
