//! The parser against the engine's real exporter output: `fixtures/engine_metrics.txt` is the
//! body of `GET /metrics` from `ringfast --workers 2 --app diag` with a FastCGI and an SCGI
//! listener, after requests through `cgi-fcgi` (2xx, 3xx, 4xx, 5xx and slow ones) and SCGI;
//! `fixtures/engine_metrics_prefork.txt` is the supervisor's merged page of `ringfast
//! --processes 2 --workers 1 --app diag` after 30 requests, one worker process killed and
//! replaced, then 20 requests and a 500.

use tui::prom::{self, MetricType};
use tui::snapshot::{names, EngineSnapshot};

const PAGE: &str = include_str!("fixtures/engine_metrics.txt");
const PREFORK_PAGE: &str = include_str!("fixtures/engine_metrics_prefork.txt");

#[test]
fn every_line_of_the_real_page_parses() {
    let page = prom::parse(PAGE).expect("the engine's page parses");
    let sample_lines = PAGE
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(page.samples.len(), sample_lines);
    assert_eq!(page.type_of(names::REQUESTS), MetricType::Counter);
    assert_eq!(page.type_of(names::REQUEST_DURATION), MetricType::Histogram);
    assert_eq!(page.type_of(names::REQUESTS_IN_FLIGHT), MetricType::Gauge);
    // Every name the dashboard reads is on the page.
    for name in [
        names::REQUESTS,
        names::REQUESTS_IN_FLIGHT,
        names::CONNECTIONS_OPEN,
        names::CONNECTIONS_ACCEPTED,
        names::PROTOCOL_ERRORS,
        names::BUILD_INFO,
        names::WORKERS,
        names::PROCESS_CPU_SECONDS,
        names::PROCESS_RESIDENT_MEMORY,
        names::PROCESS_OPEN_FDS,
        names::PROCESS_MAX_FDS,
        names::PROCESS_START_TIME,
    ] {
        assert!(page.named(name).next().is_some(), "{name} missing");
    }
    let buckets = format!("{}_bucket", names::REQUEST_DURATION);
    let inf = page
        .named(&buckets)
        .filter(|s| s.label("le") == Some("+Inf"))
        .count();
    assert_eq!(inf, 4, "two workers x two protocols");
}

#[test]
fn the_snapshot_of_the_real_page_adds_up() {
    let snap = EngineSnapshot::from_exposition(&prom::parse(PAGE).unwrap());
    assert_eq!(snap.workers.keys().copied().collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(snap.workers_started, Some(2.0));
    let build = snap.build.as_ref().expect("build info");
    assert!(build.io_backend.starts_with("tokio-uring"), "{build:?}");
    assert!(!build.version.is_empty());
    assert!(snap.process.start_time.unwrap() > 1.0e9);
    assert!(snap.process.resident_bytes.unwrap() > 0.0);
    for (id, w) in &snap.workers {
        // docs/metrics.md: the histogram's _count equals the sum of ringfast_requests_total.
        assert_eq!(w.duration.count, w.requests_total(), "worker {id}");
        assert_eq!(w.duration.total(), w.duration.count, "worker {id}");
        assert_eq!(w.duration.bounds.len(), 25, "24 bounds and +Inf");
        assert_eq!(w.duration.bounds.last(), Some(&f64::INFINITY));
        let p50 = w.duration.quantile(0.5).expect("requests were made");
        let p99 = w.duration.quantile(0.99).unwrap();
        assert!(p50 > 0.0 && p50 <= p99, "worker {id}: p50 {p50} p99 {p99}");
    }
    let total = snap.total();
    // 40 hello + 3 status + 3 sleep over FastCGI, 5 over SCGI.
    assert_eq!(total.requests_total(), 51.0);
    // The 503.
    assert_eq!(total.requests_failed(), 1.0);
    // The 120 ms sleep is the slowest request: the total p99.9 lies in its bucket (0.1, 0.25].
    let p999 = total.duration.quantile(0.999).unwrap();
    assert!(p999 > 0.1 && p999 <= 0.25, "{p999}");
}

#[test]
fn the_merged_prefork_page_parses_and_adds_up() {
    let page = prom::parse(PREFORK_PAGE).expect("the supervisor's merged page parses");
    let snap = EngineSnapshot::from_exposition(&page);
    assert_eq!(snap.workers.keys().copied().collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(snap.worker_processes, Some(2.0));
    assert_eq!(snap.process_restarts, Some(1.0));
    for (id, w) in &snap.workers {
        assert_eq!(w.duration.count, w.requests_total(), "worker {id}");
        assert_eq!(w.duration.total(), w.duration.count, "worker {id}");
    }
    // The replaced process's worker lost its first requests: 50 hello and the 500 were sent,
    // the page counts what the live processes saw.
    let total = snap.total();
    assert_eq!(total.requests_total(), 36.0);
    assert_eq!(total.requests_failed(), 1.0);
    assert!(total.duration.quantile(0.5).unwrap() > 0.0);
}
