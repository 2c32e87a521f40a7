//! `--io ring` where no ring can be set up: the workers run the native loop on epoll, a log
//! line says why, every protocol is served and `ringfast_build_info{io_backend}` says `epoll`.
//!
//! The ring's failure is simulated with `RINGFAST_TEST_NO_IO_URING` (the engine then reports
//! io_uring as refused, as it is with `kernel.io_uring_disabled`), so the test runs on a machine
//! that has io_uring.

mod metrics_support;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use metrics_support::{fcgi_requests, samples, scrape};
use support::{free_port, Addr, Proc, TempDir};

/// The switch the engine reads (`server::native::NO_RING_ENV`).
const NO_RING_ENV: &str = "RINGFAST_TEST_NO_IO_URING";

fn tcp(addr: &Addr) -> SocketAddr {
    match addr {
        Addr::Tcp(a) => *a,
        other => panic!("not TCP: {other:?}"),
    }
}

/// One SCGI request on its own connection; returns the whole answer.
fn scgi_request(addr: SocketAddr, uri: &str) -> String {
    let head = format!("CONTENT_LENGTH\x000\x00SCGI\x001\x00REQUEST_METHOD\x00GET\x00REQUEST_URI\x00{uri}\x00SCRIPT_NAME\x00{uri}\x00");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "{}:{head},", head.len()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn a_ring_that_cannot_be_set_up_falls_back_to_epoll() {
    let dir = TempDir::new("io-fallback");
    let fcgi = Addr::loopback();
    let scgi = Addr::loopback();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringfast"));
    cmd.args(["--io", "ring", "--app", "diag", "--workers", "2"])
        .args(["--fastcgi", &fcgi.to_arg(), "--scgi", &scgi.to_arg()])
        .args(["--metrics", &metrics.to_string(), "--log-level", "info"])
        .env(NO_RING_ENV, "1")
        .env_remove("RINGFAST_IO");
    let mut proc = Proc::spawn("ringfast", cmd, dir.join("engine.log"));
    proc.wait_listening(&fcgi);
    proc.wait_listening(&scgi);
    proc.wait_listening(&Addr::Tcp(metrics));

    let log = proc.log();
    let line = log
        .lines()
        .find(|l| l.contains("cannot set up the native ring"))
        .unwrap_or_else(|| panic!("no fallback line in the log:\n{log}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("epoll"),
        "the line says where the workers run: {line}"
    );
    assert!(line.contains(NO_RING_ENV), "the line says why: {line}");

    // Served, keep-alive and a connection per request, on both protocols.
    let body: &[u8] = b"0123456789";
    let answers = fcgi_requests(tcp(&fcgi), &[("/echo", body), ("/echo", body)]);
    assert!(answers.iter().all(|a| a.ends_with(body)), "{answers:?}");
    for _ in 0..20 {
        let a = fcgi_requests(tcp(&fcgi), &[("/x/status/404", b"")]);
        assert!(String::from_utf8_lossy(&a[0]).contains("404"), "{a:?}");
    }
    let answer = scgi_request(tcp(&scgi), "/x/status/404");
    assert!(answer.starts_with("Status: 404"), "{answer}");

    let text = scrape(metrics);
    let info = samples(&text)
        .into_iter()
        .find(|s| s.name == "ringfast_build_info")
        .expect("ringfast_build_info");
    assert!(
        info.labels
            .contains(&("io_backend".to_string(), "epoll".to_string())),
        "{:?}",
        info.labels
    );

    proc.signal(libc::SIGTERM);
    let status = proc
        .wait_timeout(Duration::from_secs(10))
        .expect("stopped on SIGTERM");
    assert!(status.success(), "{status}");
}
