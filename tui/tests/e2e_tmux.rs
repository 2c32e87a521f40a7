//! End to end in a real terminal: a real engine (`target/debug/ringfast --workers 2`) under
//! FastCGI load from a small client in this test, `ringfast-top` running inside a private tmux
//! server, and the screen read with `tmux capture-pane`. Every worker row must show a non-zero
//! rate and latency; after the engine is killed the dashboard must say it is unreachable and
//! keep running; `q` must end it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The engine binary: next to this test's target directory, built if missing.
fn engine_binary() -> PathBuf {
    let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("debug"),
        None => {
            // target/debug/deps/e2e_tmux-HASH -> target/debug
            let exe = std::env::current_exe().expect("test executable path");
            exe.parent()
                .and_then(Path::parent)
                .expect("target/debug")
                .to_path_buf()
        }
    };
    let binary = target_dir.join("ringfast");
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
        let status = Command::new(cargo)
            .args(["build", "-p", "engine", "--bin", "ringfast"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("run cargo build");
        assert!(
            status.success(),
            "cargo build -p engine --bin ringfast failed"
        );
    }
    assert!(binary.exists(), "{} missing", binary.display());
    binary
}

/// The engine process, killed on drop.
struct Engine {
    child: Child,
    fastcgi: SocketAddr,
    metrics: SocketAddr,
}

impl Engine {
    fn start() -> Engine {
        let mut child = Command::new(engine_binary())
            .args([
                "--fastcgi",
                "127.0.0.1:0",
                "--metrics",
                "127.0.0.1:0",
                "--workers",
                "2",
                "--app",
                "hello",
                "--log-level",
                "info",
            ])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ringfast");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                let _ = tx.send(line);
            }
        });
        let mut guard = Engine {
            child,
            fastcgi: "0.0.0.0:0".parse().unwrap(),
            metrics: "0.0.0.0:0".parse().unwrap(),
        };
        let (mut fastcgi, mut metrics) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while fastcgi.is_none() || metrics.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("ringfast did not log its addresses in time");
            let line = strip_ansi(&line);
            let addr = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("addr="))
                .and_then(|a| a.trim_matches('"').parse::<SocketAddr>().ok());
            if line.contains("metrics at") {
                metrics = addr;
            } else if line.contains("listening") && line.contains("fastcgi") {
                fastcgi = addr;
            }
        }
        // Keep draining the log so the engine never blocks on a full pipe.
        thread::spawn(move || while rx.recv().is_ok() {});
        guard.fastcgi = fastcgi.unwrap();
        guard.metrics = metrics.unwrap();
        guard
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.kill();
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A FastCGI record: version 1, `kind`, request id 1, `content`, no padding.
fn record(kind: u8, content: &[u8]) -> Vec<u8> {
    let len = u16::try_from(content.len()).expect("small record");
    let mut out = vec![1, kind, 0, 1];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(content);
    out
}

/// One GET over a new connection (so SO_REUSEPORT spreads requests over both workers).
fn fastcgi_get(addr: SocketAddr) -> std::io::Result<()> {
    const BEGIN_REQUEST: u8 = 1;
    const END_REQUEST: u8 = 3;
    const PARAMS: u8 = 4;
    const STDIN: u8 = 5;
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut params = Vec::new();
    for (k, v) in [("REQUEST_METHOD", "GET"), ("SCRIPT_NAME", "/hello")] {
        params.push(k.len() as u8);
        params.push(v.len() as u8);
        params.extend_from_slice(k.as_bytes());
        params.extend_from_slice(v.as_bytes());
    }
    let mut out = record(BEGIN_REQUEST, &[0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend(record(PARAMS, &params));
    out.extend(record(PARAMS, &[]));
    out.extend(record(STDIN, &[]));
    conn.write_all(&out)?;
    // Read records until END_REQUEST.
    let mut header = [0u8; 8];
    loop {
        conn.read_exact(&mut header)?;
        let len = usize::from(u16::from_be_bytes([header[4], header[5]])) + usize::from(header[6]);
        let mut body = vec![0u8; len];
        conn.read_exact(&mut body)?;
        if header[1] == END_REQUEST {
            return Ok(());
        }
    }
}

/// Threads sending requests until dropped.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    done: Arc<AtomicU64>,
}

impl Load {
    fn start(addr: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let threads = (0..2)
            .map(|_| {
                let stop = stop.clone();
                let done = done.clone();
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if fastcgi_get(addr).is_ok() {
                            done.fetch_add(1, Ordering::Relaxed);
                        } else {
                            thread::sleep(Duration::from_millis(50));
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            threads,
            done,
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

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
