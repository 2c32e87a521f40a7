//! A real Prometheus (Debian package `prometheus`) scrapes the engine on loopback every second
//! while FastCGI requests run; then every query of the Grafana dashboard
//! (`docs/grafana/ringfast.json`) is evaluated through Prometheus's HTTP API and must return
//! data.

mod metrics_support;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_support::{fcgi_requests, start_diag_with_metrics};
use support::{free_port, require_binary, wait_until, Addr, Proc, TempDir};

/// What the Grafana variables stand for in the test. `$__rate_interval` is at least four scrape
/// intervals in Grafana; 10s covers ten 1 s scrapes.
const VARIABLES: &[(&str, &str)] = &[
    ("$__rate_interval", "10s"),
    ("$__interval", "1s"),
    ("$__range", "1m"),
    ("$job", "ringfast"),
    ("$instance", ".*"),
];

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /api/v1/query?query=...` on Prometheus; returns the parsed JSON answer.
fn query(prom: SocketAddr, expr: &str) -> serde_json::Value {
    let mut s = TcpStream::connect(prom).expect("connect to Prometheus");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET /api/v1/query?query={} HTTP/1.1\r\nHost: {prom}\r\nConnection: close\r\n\r\n",
        percent_encode(expr)
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    if !head.starts_with("HTTP/1.1 200 ") {
        // Still starting (503), or a bad query (400: the caller sees no "success").
        return serde_json::json!({ "status": head.lines().next().unwrap_or_default(), "body": body });
    }
    // Prometheus answers small JSON without chunking; tolerate chunking anyway.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{expr}: {e}: {head}\n{body}"))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

fn result_len(v: &serde_json::Value) -> usize {
    match &v["data"]["result"] {
        serde_json::Value::Array(a) => a.len(),
        serde_json::Value::Null => 0,
        _ => 1, // scalar or string
    }
}

/// Every target `expr` of every panel (rows' nested panels included).
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    fn walk(panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((title.clone(), e.to_string()));
                }
            }
            walk(&p["panels"], out);
        }
    }
    walk(&dashboard["panels"], &mut out);
    out
}

fn substitute(expr: &str) -> String {
    let mut e = expr.to_string();
    for (var, value) in VARIABLES {
        e = e.replace(var, value);
    }
    assert!(!e.contains('$'), "unsubstituted Grafana variable in {e}");
    e
}

#[test]
fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    require_binary("/usr/bin/prometheus", "prometheus");
    let dashboard_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/grafana/ringfast.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dashboard_path).unwrap()).unwrap();
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 10, "only {} queries", queries.len());

    let dir = TempDir::new("e2e-prometheus");
    let metrics_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (_engine, fcgi_addr) = start_diag_with_metrics(&dir, &metrics_addr.to_string());

    let config = dir.write(
        "prometheus.yml",
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: ringfast\n    static_configs:\n      - targets: ['{metrics_addr}']\n"
        ),
    );
    let prom_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut cmd = Command::new("/usr/bin/prometheus");
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.subdir("tsdb").display()
        ))
        .arg(format!("--web.listen-address={prom_addr}"))
        .arg("--log.level=warn");
    let mut prom = Proc::spawn("prometheus", cmd, dir.join("prometheus.log"));
    prom.wait_listening(&Addr::Tcp(prom_addr));

    // Traffic until the queries are done (bounded: at most 90 s, at most 200 000 requests).
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut sent = 0usize;
            while !stop.load(Ordering::Relaxed)
                && started.elapsed() < Duration::from_secs(90)
                && sent < 200_000
            {
                let reqs: Vec<(&str, &[u8])> = vec![
                    ("/x/echo", b"hello metrics"),
                    ("/x/hello", b""),
                    ("/x/sleep?ms=2", b""),
                    ("/x/status/503", b""),
                    ("/x/status/404", b""),
                ];
                fcgi_requests(fcgi_addr, &reqs);
                sent += reqs.len();
                std::thread::sleep(Duration::from_millis(5));
            }
            sent
        })
    };

    // Wait until Prometheus has scraped enough for a 10 s rate window.
    let ready = wait_until(Duration::from_secs(60), || {
        let v = query(
            prom_addr,
            "count_over_time(ringfast_workers{job=\"ringfast\"}[1m]) >= 6",
        );
        result_len(&v) > 0
    });
    assert!(
        ready,
        "Prometheus did not scrape the engine: {}",
        prom.log()
    );

    let mut empty = Vec::new();
    for (title, expr) in &queries {
        let e = substitute(expr);
        let v = query(prom_addr, &e);
        assert_eq!(v["status"], "success", "{title}: {e}: {v}");
        if result_len(&v) == 0 {
            empty.push(format!("{title}: {e}"));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let sent = traffic.join().unwrap();
    assert!(sent > 0);
    assert!(
        empty.is_empty(),
        "dashboard queries with no data:\n{}",
        empty.join("\n")
    );
}
