//! Reloads under constant keep-alive load fail no request: the stopping worker processes hand
//! their idle connections to the new ones (`server/handoff.rs`) instead of closing them under
//! a client that may have just sent a request.
//!
//! The clients never re-send: a request that fails is counted. Directly over FastCGI with
//! KEEP_CONN (the client reuses each connection the moment its answer arrived), and as POSTs
//! through nginx with an upstream `keepalive` pool (nginx does not retry a POST; a lost one is
//! a 502).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use engine::proto::fcgi::{self, Decode, RequestSpec};
use support::{Addr, Backend, Engine, Nginx, TempDir};

/// Reloads per test, and the pause between two.
const RELOADS: usize = 10;
const BETWEEN: Duration = Duration::from_millis(400);

fn start_engine(dir: &TempDir) -> (Engine, Addr) {
    let tcp = Addr::loopback();
    let args: Vec<String> = [
        "--fastcgi",
        &tcp.to_arg(),
        "--processes",
        "2",
        "--workers",
        "1",
        "--metrics",
        "off",
        "--app",
        "diag",
        "--keepalive-handoff",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let engine = Engine::start(dir, &args, std::slice::from_ref(&tcp));
    (engine, tcp)
}

/// Counts of one load: answered and failed requests.
#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

/// Runs `clients` threads of `one` (a connection's life: requests until it fails or `stop`)
/// while the engine is reloaded [`RELOADS`] times; returns the counts and checks the worker
/// processes were replaced.
fn under_reloads(
    engine: &Engine,
    clients: usize,
    one: impl Fn(&AtomicBool, &Counts) + Send + Sync + 'static,
) -> Arc<Counts> {
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let one = Arc::new(one);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (counts, stop, one) = (counts.clone(), stop.clone(), one.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    one(&stop, &counts);
                }
            })
        })
        .collect();
    let pid = engine.proc.pid();
    std::thread::sleep(BETWEEN);
    let first: Vec<u32> = support::child_pids(pid);
    for _ in 0..RELOADS {
        engine.proc.signal(libc::SIGHUP);
        std::thread::sleep(BETWEEN);
    }
    std::thread::sleep(BETWEEN);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let last = support::child_pids(pid);
    assert!(
        !last.is_empty() && last.iter().all(|p| !first.contains(p)),
        "the worker processes were not replaced: {first:?} then {last:?}\n{}",
        engine.proc.log()
    );
    counts
}

fn fcgi_request(keep_conn: bool) -> Vec<u8> {
    let params: Vec<(&[u8], &[u8])> = vec![
        (b"REQUEST_METHOD", b"GET"),
        (b"SCRIPT_NAME", b"/app/hello"),
        (b"REQUEST_URI", b"/app/hello"),
        (b"QUERY_STRING", b""),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    ];
    let mut out = Vec::new();
    fcgi::encode_request(
        &mut out,
        &RequestSpec {
            request_id: 1,
            keep_conn,
            params: &params,
            body: b"",
        },
    );
    out
}

/// One keep-alive FastCGI connection: requests back to back, each sent the moment the previous
/// answer is complete, until a failure (counted; the connection is dropped) or `stop`.
fn fcgi_connection(addr: SocketAddr, stop: &AtomicBool, counts: &Counts) {
    let request = fcgi_request(true);
    let Ok(mut s) = TcpStream::connect(addr) else {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
        return;
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        if s.write_all(&request).is_err() {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut filled = 0;
        let answered = 'read: loop {
            let n = match s.read(&mut buf[filled..]) {
                Ok(0) | Err(_) => break 'read false,
                Ok(n) => n,
            };
            filled += n;
            let mut pos = 0;
            while let Ok(Decode::Complete(rec, used)) = fcgi::decode_record(&buf[pos..filled]) {
                pos += used;
                if rec.header.rtype == fcgi::rtype::END_REQUEST {
                    break 'read true;
                }
            }
        };
        if !answered {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        counts.ok.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn fastcgi_keep_alive_requests_survive_reloads() {
    let dir = TempDir::new("reload-keepalive");
    let (engine, tcp) = start_engine(&dir);
    let Addr::Tcp(addr) = tcp else { unreachable!() };
    let counts = under_reloads(&engine, 8, move |stop, counts| {
        fcgi_connection(addr, stop, counts)
    });
    let (ok, failed) = (
        counts.ok.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
    );
    println!("FastCGI keep-alive, {RELOADS} reloads: {ok} requests answered, {failed} failed");
    assert!(ok > 1000, "too few requests to mean anything: {ok}");
    assert_eq!(failed, 0, "{}", support::tail(&engine.proc.log(), 40));
}

/// One HTTP/1.1 keep-alive connection to nginx: POSTs until a failure or `stop`.
fn http_posts(port: u16, stop: &AtomicBool, counts: &Counts) {
    let body = b"x=1&y=two";
    let request = format!(
        "POST /app/echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut request = request.into_bytes();
    request.extend_from_slice(body);
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
        return;
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    while !stop.load(Ordering::Relaxed) {
        if s.write_all(&request).is_err() {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Read one response: its head, then Content-Length bytes of body.
        let mut filled = 0;
        let status = loop {
            let n = match s.read(&mut buf[filled..]) {
                Ok(0) | Err(_) => break None,
                Ok(n) => n,
            };
            filled += n;
            let text = String::from_utf8_lossy(&buf[..filled]);
            let Some(head_end) = text.find("\r\n\r\n") else {
                continue;
            };
            let head = &text[..head_end];
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            let close = head.lines().any(|l| {
                l.split_once(':').is_some_and(|(k, v)| {
                    k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close")
                })
            });
            if filled >= head_end + 4 + len {
                break Some((status, close));
            }
        };
        match status {
            Some((200, close)) => {
                counts.ok.fetch_add(1, Ordering::Relaxed);
                if close {
                    // nginx ends a client connection after `keepalive_requests` (1000).
                    return;
                }
            }
            other => {
                eprintln!("POST failed: {other:?}");
                counts.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

#[test]
fn posts_through_nginx_keepalive_survive_reloads() {
    support::require_binary("/usr/sbin/nginx", "nginx");
    let dir = TempDir::new("reload-keepalive-nginx");
    let (engine, tcp) = start_engine(&dir);
    let nginx = Nginx::new(Backend::fastcgi(&tcp)).keepalive(8).start(&dir);
    let port = nginx.port;
    let counts = under_reloads(&engine, 4, move |stop, counts| {
        http_posts(port, stop, counts)
    });
    let (ok, failed) = (
        counts.ok.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
    );
    println!("POSTs through nginx keepalive, {RELOADS} reloads: {ok} answered, {failed} failed");
    assert!(ok > 300, "too few requests to mean anything: {ok}");
    assert_eq!(
        failed,
        0,
        "{}\n{}",
        support::tail(&engine.proc.log(), 40),
        support::tail(&support::read_lossy(&nginx.error_log), 40)
    );
}
