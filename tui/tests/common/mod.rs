//! Shared by the end-to-end tests: the real engine binary started on free ports, and a small
//! FastCGI client that loads it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The engine binary: next to this test's target directory, built if missing.
pub fn engine_binary() -> PathBuf {
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
pub struct Engine {
    child: Child,
    /// Its FastCGI listener.
    pub fastcgi: SocketAddr,
    /// Its metrics endpoint.
    pub metrics: SocketAddr,
}

impl Engine {
    /// Starts `ringfast --workers 2 --app hello` on free loopback ports.
    pub fn start() -> Engine {
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

    /// Kills the engine and waits for it.
    pub fn kill(&mut self) {
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
pub fn fastcgi_get(addr: SocketAddr) -> std::io::Result<()> {
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
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Requests answered so far.
    pub done: Arc<AtomicU64>,
}

impl Load {
    /// Starts two threads sending GETs to `addr`.
    pub fn start(addr: SocketAddr) -> Load {
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
