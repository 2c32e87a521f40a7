//! End to end in a real terminal: a real engine (`target/debug/ringfast --workers 2`) under
//! FastCGI load from a small client in this test, `ringfast-top` running inside a private tmux
//! server, and the screen read with `tmux capture-pane`. Every worker row must show a non-zero
//! rate and latency; after the engine is killed the dashboard must say it is unreachable and
//! keep running; `q` must end it.

mod common;

use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use common::{Engine, Load};

/// A tmux server of our own (`-L`), killed on drop; other tmux servers are never touched.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Tmux {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Tmux {
            socket: format!("ringfast-top-e2e-{}-{nanos}", std::process::id()),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .env("TERM", "xterm-256color")
            .stdin(Stdio::null())
            .output()
            .expect("run tmux (Debian package tmux)")
    }

    fn capture(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", "top"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Captures until `check` accepts the screen, or panics with the last screen.
    fn wait_for(&self, what: &str, timeout: Duration, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.capture();
            if check(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; screen:\n{screen}");
            }
            thread::sleep(Duration::from_millis(250));
        }
    }

    fn pane_alive(&self) -> bool {
        let out = self.run(&["display-message", "-p", "-t", "top", "#{pane_dead}"]);
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "0"
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Worker rows of the captured table: (worker, req/s, p50).
fn worker_rows(screen: &str) -> Vec<(String, String, String)> {
    screen
        .lines()
        .map(|l| {
            l.trim_matches(|c| c == '│' || c == ' ')
                .trim_start_matches("▶ ")
        })
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter(|cells| cells.len() == 8 && cells[0].parse::<u32>().is_ok())
        .map(|cells| (cells[0].clone(), cells[1].clone(), cells[4].clone()))
        .collect()
}

/// A latency cell such as `64µs` or `1.31ms` as seconds.
fn latency(cell: &str) -> Option<f64> {
    for (unit, scale) in [("µs", 1e-6), ("ms", 1e-3), ("s", 1.0)] {
        if let Some(n) = cell.strip_suffix(unit) {
            return n.parse::<f64>().ok().map(|v| v * scale);
        }
    }
    None
}

#[test]
fn dashboard_in_tmux_shows_live_workers_then_the_engine_down() {
    let mut engine = Engine::start();
    let load = Load::start(engine.fastcgi);
    let tmux = Tmux::new();
    let url = format!("http://{}/metrics", engine.metrics);
    let top = env!("CARGO_BIN_EXE_ringfast-top");
    let out = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "160",
        "-y",
        "50",
        top,
        "--interval",
        "0.5",
        &url,
    ]);
    assert!(
        out.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The pane stays (dead) if ringfast-top exits, so an exit is seen rather than a lost session.
    tmux.run(&["set-option", "-t", "top", "remain-on-exit", "on"]);

    let screen = tmux.wait_for(
        "every worker row with a rate and a latency",
        Duration::from_secs(90),
        |screen| {
            let rows = worker_rows(screen);
            rows.len() == 2
                && rows.iter().all(|(_, rps, p50)| {
                    rps.parse::<f64>().is_ok_and(|r| r > 0.0)
                        && latency(p50).is_some_and(|l| l > 0.0)
                })
        },
    );
    assert!(load.done.load(Ordering::Relaxed) > 0);
    assert!(screen.contains(&engine.metrics.to_string()), "{screen}");
    assert!(screen.contains("scrape ok"), "{screen}");
    assert!(screen.contains("version "), "{screen}");
    let workers: Vec<_> = worker_rows(&screen).into_iter().map(|r| r.0).collect();
    assert_eq!(workers, ["0", "1"], "{screen}");
    println!("live dashboard:\n{screen}");

    drop(load);
    engine.kill();
    let screen = tmux.wait_for(
        "the engine shown unreachable",
        Duration::from_secs(30),
        |s| s.contains("UNREACHABLE"),
    );
    println!("engine down:\n{screen}");
    // It keeps running and retrying: the "last ok" age goes on growing.
    thread::sleep(Duration::from_secs(2));
    assert!(
        tmux.pane_alive(),
        "ringfast-top exited:\n{}",
        tmux.capture()
    );
    let later = tmux.capture();
    assert!(later.contains("UNREACHABLE"), "{later}");
    assert!(later.contains("retrying every 500ms"), "{later}");

    // q quits and restores the terminal (the pane's process ends).
    tmux.run(&["send-keys", "-t", "top", "q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tmux.pane_alive() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    assert!(!tmux.pane_alive(), "q did not quit:\n{}", tmux.capture());
}

#[test]
fn sigterm_ends_the_dashboard_and_restores_the_terminal() {
    let tmux = Tmux::new();
    // Nothing listens there: the dashboard shows the engine unreachable and keeps retrying.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let top = env!("CARGO_BIN_EXE_ringfast-top");
    let out = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "120",
        "-y",
        "40",
        top,
        "--interval",
        "0.5",
        &url,
    ]);
    assert!(out.status.success(), "{out:?}");
    // remain-on-exit is a window option: the dead pane stays, to be read.
    tmux.run(&["set-option", "-w", "-t", "top", "remain-on-exit", "on"]);
    tmux.wait_for(
        "the engine shown unreachable",
        Duration::from_secs(20),
        |s| s.contains("UNREACHABLE"),
    );
    let pid = tmux.run(&["display-message", "-p", "-t", "top", "#{pane_pid}"]);
    let pid: i32 = String::from_utf8_lossy(&pid.stdout).trim().parse().unwrap();
    // SAFETY: kill with the pid of the ringfast-top this test started in its own tmux server.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while tmux.pane_alive() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !tmux.pane_alive(),
        "SIGTERM did not end it:\n{}",
        tmux.capture()
    );
    // The alternate screen was left: the dashboard is no longer on the pane.
    let screen = tmux.capture();
    assert!(!screen.contains("UNREACHABLE"), "{screen}");
}
