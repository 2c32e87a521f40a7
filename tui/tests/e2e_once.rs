//! `ringfast-top --once` against a real engine: a plain-text snapshot with every worker, exit 0;
//! and against an engine that is gone: UNREACHABLE, exit 1.

mod common;

use std::process::Command;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use common::{fastcgi_get, Engine};

fn once(url: &str) -> (String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringfast-top"))
        .args(["--once", "--interval", "0.5", url])
        .output()
        .expect("run ringfast-top");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn once_prints_a_snapshot_then_reports_a_dead_engine() {
    let mut engine = Engine::start();
    // Requests over new connections until both workers have answered some.
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("http://{}/metrics", engine.metrics);
    let load = common::Load::start(engine.fastcgi);
    let (text, code) = loop {
        let (text, code) = once(&url);
        let busy_rows = text
            .lines()
            .filter(|l| l.starts_with("0 ") || l.starts_with("1 "))
            .filter(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|r| r.parse::<f64>().ok())
                    .is_some_and(|r| r > 0.0)
            })
            .count();
        if busy_rows == 2 || Instant::now() > deadline {
            break (text, code);
        }
        thread::sleep(Duration::from_millis(200));
    };
    assert!(load.done.load(Ordering::Relaxed) > 0);
    drop(load);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&format!("ringfast-top · {url}")), "{text}");
    assert!(text.contains("scrape ok"), "{text}");
    assert!(text.contains("worker▼  req/s"), "{text}");
    for worker in ["0 ", "1 ", "all "] {
        assert!(
            text.lines().any(|l| l.starts_with(worker)),
            "no row {worker:?}:\n{text}"
        );
    }
    assert!(text.contains("latency of all workers"), "{text}");
    fastcgi_get(engine.fastcgi).expect("the engine still answers");

    engine.kill();
    let (text, code) = once(&url);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("UNREACHABLE"), "{text}");
}
