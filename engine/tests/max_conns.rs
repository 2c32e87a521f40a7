//! The connection limit and slow clients, against the real binary (issue 13):
//! - at `--max-conns`, an idle keep-alive connection (no request in flight) is closed, the one
//!   quiet longest first, to admit a new connection that wants to send a request (the native
//!   loop; `--io tokio-uring` only refuses, and is skipped);
//! - a burst of connections queued on a shared (Unix) listener at once is accepted whole: the
//!   loop takes every queued connection per readiness wake-up, not a few;
//! - a FastCGI request head trickled one byte at a time is cut off at `--params-timeout`
//!   counted from its first byte, however regularly the bytes come, and normal requests are
//!   served meanwhile (the native loop; `--io tokio-uring` times the head from its last byte
//!   and is skipped).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use engine::proto::fcgi::{self, protocol_status, Decode, RequestSpec};
use support::{Addr, Engine, TempDir};

fn on_tokio_uring() -> bool {
    std::env::var("RINGFAST_IO").as_deref() == Ok("tokio-uring")
}

fn start(dir: &TempDir, extra: &[&str]) -> (Engine, SocketAddr) {
    let tcp = Addr::loopback();
    let mut args: Vec<String> = [
        "--fastcgi",
        &tcp.to_arg(),
        "--app",
        "diag",
        "--workers",
        "1",
        "--metrics",
        "off",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let engine = Engine::start(dir, &args, std::slice::from_ref(&tcp));
    let Addr::Tcp(addr) = tcp else { unreachable!() };
    (engine, addr)
}

fn hello_request() -> Vec<u8> {
    let params: Vec<(&[u8], &[u8])> = vec![
        (b"REQUEST_METHOD", b"GET"),
        (b"SCRIPT_NAME", b"/app/hello"),
        (b"REQUEST_URI", b"/app/hello"),
        (b"QUERY_STRING", b""),
    ];
    let mut out = Vec::new();
    fcgi::encode_request(
        &mut out,
        &RequestSpec {
            request_id: 1,
            keep_conn: true,
            params: &params,
            body: b"",
        },
    );
    out
}

/// One keep-alive request; the END_REQUEST's protocol status, or `None` if the connection
/// ended first.
fn request(s: &mut TcpStream) -> Option<u8> {
    s.write_all(&hello_request()).ok()?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut filled = 0;
    loop {
        let n = s.read(&mut buf[filled..]).ok()?;
        if n == 0 {
            return None;
        }
        filled += n;
        let mut pos = 0;
        while let Ok(Decode::Complete(rec, used)) = fcgi::decode_record(&buf[pos..filled]) {
            pos += used;
            if rec.header.rtype == fcgi::rtype::END_REQUEST {
                return Some(rec.content[4]);
            }
        }
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// A connection that got its hello served (the engine may still count the start-up probe's
/// connection for a moment).
fn admitted(addr: SocketAddr) -> TcpStream {
    for _ in 0..100 {
        let mut s = connect(addr);
        if request(&mut s) == Some(protocol_status::REQUEST_COMPLETE) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no connection was admitted");
}

/// True when the peer closed `s` (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn at_max_conns_the_longest_idle_connection_makes_room() {
    if on_tokio_uring() {
        eprintln!("skipped: --io tokio-uring does not evict idle connections");
        return;
    }
    let dir = TempDir::new("max-conns-evict");
    let (_engine, addr) = start(&dir, &["--max-conns", "3"]);
    // Let the start-up probe's connection go, so that it does not count against the limit.
    std::thread::sleep(Duration::from_millis(300));
    let mut oldest = admitted(addr);
    std::thread::sleep(Duration::from_millis(30));
    let mut b = admitted(addr);
    std::thread::sleep(Duration::from_millis(30));
    let mut c = admitted(addr);
    // A fourth connection is served, not refused...
    let mut d = connect(addr);
    assert_eq!(request(&mut d), Some(protocol_status::REQUEST_COMPLETE));
    // ...because the connection quiet longest was closed for it.
    assert!(closed_within(&mut oldest, Duration::from_secs(2)));
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(request(&mut b), Some(protocol_status::REQUEST_COMPLETE));
    assert_eq!(request(&mut c), Some(protocol_status::REQUEST_COMPLETE));
}

#[test]
fn a_trickled_fastcgi_head_is_cut_off_at_the_params_timeout() {
    if on_tokio_uring() {
        eprintln!("skipped: --io tokio-uring times the head from its last byte");
        return;
    }
    let dir = TempDir::new("slowloris");
    let (_engine, addr) = start(&dir, &["--params-timeout", "2"]);
    let head = hello_request();
    let mut slow = connect(addr);
    slow.set_nodelay(true).unwrap();
    let started = Instant::now();
    let mut cut_off = None;
    // One byte every 250 ms: never idle for long, but the head never completes in time.
    for &byte in head.iter().take(60) {
        if slow.write_all(&[byte]).is_err() {
            cut_off = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
        let mut probe = [0u8; 16];
        slow.set_nonblocking(true).unwrap();
        let r = slow.read(&mut probe);
        slow.set_nonblocking(false).unwrap();
        match r {
            Ok(0) => {
                cut_off = Some(started.elapsed());
                break;
            }
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => {
                cut_off = Some(started.elapsed());
                break;
            }
            _ => {}
        }
        // Normal requests are served meanwhile.
        if started.elapsed() > Duration::from_secs(1) && cut_off.is_none() {
            let mut other = admitted(addr);
            assert_eq!(request(&mut other), Some(protocol_status::REQUEST_COMPLETE));
        }
    }
    let cut_off = cut_off.expect("the trickling connection was never closed");
    assert!(
        cut_off >= Duration::from_millis(1900) && cut_off < Duration::from_secs(5),
        "closed after {cut_off:?}, expected about 2 s (the params timeout)"
    );
}

#[test]
fn a_burst_of_unix_connections_is_accepted_whole() {
    let dir = TempDir::new("unix-burst");
    let unix = Addr::unix(&dir, "burst.sock");
    let args: Vec<String> = [
        "--fastcgi",
        &unix.to_arg(),
        "--app",
        "diag",
        "--workers",
        "1",
        "--metrics",
        "off",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _engine = Engine::start(&dir, &args, std::slice::from_ref(&unix));
    let Addr::Unix(path) = &unix else {
        unreachable!()
    };
    // Every connection is queued before any request is sent.
    let mut conns: Vec<std::os::unix::net::UnixStream> = (0..100)
        .map(|_| std::os::unix::net::UnixStream::connect(path).unwrap())
        .collect();
    let request = hello_request();
    for c in &mut conns {
        c.write_all(&request).unwrap();
    }
    let mut answered = 0;
    for c in &mut conns {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = vec![0u8; 16 * 1024];
        let mut filled = 0;
        let done = loop {
            match c.read(&mut buf[filled..]) {
                Ok(0) | Err(_) => break false,
                Ok(n) => filled += n,
            }
            let mut pos = 0;
            let mut end = false;
            while let Ok(Decode::Complete(rec, used)) = fcgi::decode_record(&buf[pos..filled]) {
                pos += used;
                end |= rec.header.rtype == fcgi::rtype::END_REQUEST;
            }
            if end {
                break true;
            }
        };
        answered += usize::from(done);
    }
    assert_eq!(
        answered, 100,
        "connections left unanswered in the accept queue"
    );
}
