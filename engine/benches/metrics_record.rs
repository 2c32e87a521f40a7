//! Criterion benchmark of what metrics cost one request on a worker: the timer started when the
//! head is complete, response bytes added, the timer finished (status class, duration histogram)
//! and a connection opened and closed, against the same calls with `--metrics off`.
//!
//! The `clock` group times one read of each clock a timer could use.
//!
//! Run: `cargo bench -p engine --bench metrics_record -- --quick`. Compare `on` with `off`, and
//! both with the CPU a request costs (bench/scripts/loops.sh): the difference is what metrics add.

use criterion::{black_box, criterion_main, Criterion};
use engine::metrics::{Registry, StatusClass, WorkerMetrics};
use engine::server::Protocol;

fn one_request(m: &WorkerMetrics) {
    let mut t = m.request_started(black_box(Protocol::FastCgi));
    t.add_body_out(black_box(13));
    t.finish(StatusClass::of(black_box(200)));
}

fn one_connection(m: &WorkerMetrics) {
    let g = m.connection_opened(black_box(Protocol::FastCgi));
    drop(black_box(g));
}

fn benches() {
    let mut c = Criterion::default().configure_from_args();
    let registry = Registry::new();
    let on = WorkerMetrics::new(&registry, 0, &[Protocol::FastCgi]);
    let off = WorkerMetrics::off();
    let mut g = c.benchmark_group("metrics");
    g.bench_function("request/on", |b| b.iter(|| one_request(&on)));
    g.bench_function("request/off", |b| b.iter(|| one_request(&off)));
    g.bench_function("connection/on", |b| b.iter(|| one_connection(&on)));
    g.bench_function("connection/off", |b| b.iter(|| one_connection(&off)));
    g.finish();
    // The clock a request timer reads twice: quanta's TSC clock against std's (the reason the
    // timers use quanta; docs/metrics.md, "Cost").
    let mut g = c.benchmark_group("clock");
    g.bench_function("quanta", |b| b.iter(|| black_box(quanta::Instant::now())));
    g.bench_function("std", |b| b.iter(|| black_box(std::time::Instant::now())));
    g.finish();
    // A scrape now and then, as Prometheus does, so the page stays exact under load.
    assert!(registry.render().contains("ringfast_requests_total"));
}

criterion_main!(benches);
