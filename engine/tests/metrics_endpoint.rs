//! The `/metrics` endpoint of the real `ringfast` binary: exact counts after N FastCGI requests,
//! `promtool check metrics` on the output, bounded label values, `--metrics off`.

mod metrics_support;
mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use metrics_support::{
    fcgi_requests, promtool_check, samples, scrape, start_diag_with_metrics, sum,
};
use support::{free_port, require_binary, Addr, Engine, TempDir};

fn start(dir: &TempDir, metrics: &str) -> (Engine, SocketAddr) {
    start_diag_with_metrics(dir, metrics)
}

/// A secret-looking path: it must never appear in the metrics.
const PATH: &str = "/users/4711/secret-path/echo";

#[test]
fn counts_are_exact_and_promtool_accepts_the_page() {
    require_binary("/usr/bin/promtool", "prometheus");
    let dir = TempDir::new("metrics-endpoint");
    let metrics_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (_engine, fcgi) = start(&dir, &metrics_addr.to_string());

    // The start-up probe's connection to the FastCGI port is counted asynchronously: wait for it
    // so it does not land between the two scrapes.
    assert!(support::wait_until(Duration::from_secs(10), || {
        sum(
            &scrape(metrics_addr),
            "ringfast_connections_accepted_total",
            &[],
        ) >= 1.0
    }));
    let before = scrape(metrics_addr);
    assert_eq!(sum(&before, "ringfast_requests_total", &[]), 0.0);
    assert_eq!(sum(&before, "ringfast_workers", &[]), 2.0);

    // N requests over several connections: keep-alive runs of 5, echo with a 10-byte body, plus
    // a 404 and a 503 on each connection.
    const CONNS: usize = 8;
    const ECHO_PER_CONN: usize = 5;
    let body = b"0123456789";
    let mut echoed = 0;
    for _ in 0..CONNS {
        let mut reqs: Vec<(&str, &[u8])> = vec![(PATH, body); ECHO_PER_CONN];
        reqs.push(("/x/status/404", b""));
        reqs.push(("/x/status/503", b""));
        for (i, answer) in fcgi_requests(fcgi, &reqs).iter().enumerate() {
            if i < ECHO_PER_CONN {
                assert!(
                    answer.ends_with(body),
                    "{}",
                    String::from_utf8_lossy(answer)
                );
                echoed += 1;
            }
        }
    }
    let n = CONNS * (ECHO_PER_CONN + 2);
    // One connection that is not FastCGI at all: a protocol error of kind bad_version.
    let mut junk = TcpStream::connect(fcgi).unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let _ = std::io::Read::read(&mut junk, &mut [0u8; 64]);

    let text = scrape(metrics_addr);
    let delta =
        |name: &str, labels: &[(&str, &str)]| sum(&text, name, labels) - sum(&before, name, labels);
    let fastcgi = ("protocol", "fastcgi");
    assert_eq!(delta("ringfast_requests_total", &[fastcgi]), n as f64);
    assert_eq!(
        delta(
            "ringfast_requests_total",
            &[fastcgi, ("status_class", "2xx")]
        ),
        (CONNS * ECHO_PER_CONN) as f64
    );
    assert_eq!(
        delta("ringfast_requests_total", &[("status_class", "4xx")]),
        CONNS as f64
    );
    assert_eq!(
        delta("ringfast_requests_total", &[("status_class", "5xx")]),
        CONNS as f64
    );
    assert_eq!(
        delta("ringfast_requests_total", &[("status_class", "aborted")]),
        0.0
    );
    assert_eq!(
        delta("ringfast_request_duration_seconds_count", &[fastcgi]),
        n as f64
    );
    assert_eq!(
        delta(
            "ringfast_request_duration_seconds_bucket",
            &[fastcgi, ("le", "+Inf")]
        ),
        n as f64
    );
    assert!(delta("ringfast_request_duration_seconds_sum", &[fastcgi]) > 0.0);
    assert_eq!(
        delta("ringfast_request_body_bytes_total", &[fastcgi]),
        (echoed * body.len()) as f64
    );
    assert!(
        delta("ringfast_response_body_bytes_total", &[fastcgi]) >= (echoed * body.len()) as f64
    );
    assert_eq!(
        delta("ringfast_connections_accepted_total", &[fastcgi]),
        (CONNS + 1) as f64
    );
    assert_eq!(
        delta("ringfast_protocol_errors_total", &[("kind", "bad_version")]),
        1.0
    );
    assert_eq!(sum(&text, "ringfast_requests_in_flight", &[]), 0.0);
    // Every worker has its own series.
    for w in ["0", "1"] {
        assert!(
            text.contains(&format!("ringfast_requests_in_flight{{worker=\"{w}\"}}")),
            "no in-flight series for worker {w}"
        );
    }
    let info = samples(&text)
        .into_iter()
        .find(|s| s.name == "ringfast_build_info")
        .expect("ringfast_build_info");
    assert_eq!(info.value, 1.0);
    // The native ring, unless the suite runs on tokio-uring or epoll.
    let backend = match std::env::var("RINGFAST_IO").as_deref() {
        Ok("tokio-uring") => engine::metrics::IO_BACKEND_TOKIO,
        Ok("epoll") => <engine::io::poller::Poller as engine::io::loop_io::LoopIo>::NAME,
        _ => engine::metrics::IO_BACKEND_RING,
    };
    assert!(info
        .labels
        .contains(&("io_backend".to_string(), backend.to_string())));
    assert!(samples(&text)
        .iter()
        .any(|s| s.name == "process_cpu_seconds_total"));
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(sum(&text, name, &[]) > 0.0, "{name}");
    }

    // No label value is a path (or any value from the request).
    assert!(
        !text.contains("secret-path"),
        "a request path leaked into a label"
    );
    for s in samples(&text) {
        for (k, v) in &s.labels {
            assert!(
                !v.contains('/'),
                "{}{{{k}={v:?}}} looks like a path",
                s.name
            );
        }
    }

    // promtool agrees that this is valid exposition format following the naming conventions.
    promtool_check(&text);
}

#[test]
fn metrics_off_serves_nothing_and_requests_still_work() {
    let dir = TempDir::new("metrics-off");
    let (engine, fcgi) = start(&dir, "off");
    let answers = fcgi_requests(fcgi, &[(PATH, b"abc")]);
    assert!(answers[0].ends_with(b"abc"));
    assert!(!engine.proc.log().contains("metrics at http://"));
}

#[test]
fn params_timeout_is_counted_as_a_limit_rejection() {
    let dir = TempDir::new("metrics-timeout");
    let fcgi = Addr::loopback();
    let metrics_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let args: Vec<String> = [
        "--fastcgi",
        &fcgi.to_arg(),
        "--metrics",
        &metrics_addr.to_string(),
        "--params-timeout",
        "0.3",
        "--workers",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _engine = Engine::start(&dir, &args, &[fcgi.clone(), Addr::Tcp(metrics_addr)]);
    let Addr::Tcp(fcgi) = fcgi else {
        unreachable!()
    };
    // BEGIN_REQUEST, then no PARAMS: the head never completes.
    let mut s = TcpStream::connect(fcgi).unwrap();
    s.write_all(&[1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0])
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut rest); // closed by the engine
    let rejected = || {
        sum(
            &scrape(metrics_addr),
            "ringfast_limit_rejections_total",
            &[("limit", "params_timeout")],
        )
    };
    support::wait_until(Duration::from_secs(5), || rejected() >= 1.0);
    assert_eq!(rejected(), 1.0);
    let text = scrape(metrics_addr);
    assert_eq!(sum(&text, "ringfast_requests_total", &[]), 0.0);
}
