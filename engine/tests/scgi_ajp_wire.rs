//! SCGI and AJP13 on the wire, without a front end: raw bytes written by the test to the real
//! `ringfast` binary over TCP and Unix sockets (both served on the epoll backend).
//!
//! Bad input (a broken netstring, lengths past the end, a header block over the limit, bad AJP
//! magic, an oversize packet, an unknown packet type, a truncated Forward Request) closes that
//! connection with a log line and a metric, and the next connection is served normally. Several
//! AJP requests and CPINGs share one connection. A stalled SCGI header block and an idle AJP
//! connection are closed by `--params-timeout` and `--idle-timeout`.

mod metrics_support;
mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use metrics_support::{scrape, sum};
use support::{free_port, Addr, Engine, TempDir};

/// A connection to the engine over TCP or a Unix socket.
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn open(addr: &Addr) -> Conn {
        let c = match addr {
            Addr::Tcp(a) => Conn::Tcp(TcpStream::connect(a).expect("connect tcp")),
            Addr::Unix(p) => Conn::Unix(UnixStream::connect(p).expect("connect unix")),
        };
        let t = Some(Duration::from_secs(15));
        match &c {
            Conn::Tcp(s) => s.set_read_timeout(t).unwrap(),
            Conn::Unix(s) => s.set_read_timeout(t).unwrap(),
        }
        c
    }

    fn send(&mut self, bytes: &[u8]) {
        // The engine may close while we write garbage: a failed write is fine, the read tells.
        let _ = match self {
            Conn::Tcp(s) => s.write_all(bytes),
            Conn::Unix(s) => s.write_all(bytes),
        };
    }

    fn shutdown_write(&self) {
        let _ = match self {
            Conn::Tcp(s) => s.shutdown(Shutdown::Write),
            Conn::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }

    fn read_some(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }

    /// Reads until the engine closes; panics if it does not within the read timeout.
    fn read_to_close(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buf = [0u8; 16384];
        loop {
            match self.read_some(&mut buf) {
                Ok(0) => return all,
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return all,
                Err(e) => panic!("the engine did not close the connection: {e}"),
            }
        }
    }

    fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n];
        let mut got = 0;
        while got < n {
            match self.read_some(&mut out[got..]) {
                Ok(0) => panic!("closed after {got} of {n} bytes: {:?}", &out[..got]),
                Ok(k) => got += k,
                Err(e) => panic!("read failed after {got} of {n} bytes: {e}"),
            }
        }
        out
    }
}

/// The engine serving `diag` over SCGI and AJP13, on TCP and on Unix sockets, with metrics.
struct Rig {
    engine: Engine,
    scgi: [Addr; 2],
    ajp: [Addr; 2],
    metrics: SocketAddr,
    _dir: TempDir,
}

fn rig(label: &str, extra: &[&str]) -> Rig {
    let dir = TempDir::new(label);
    let scgi = [Addr::loopback(), Addr::unix(&dir, "scgi.sock")];
    let ajp = [Addr::loopback(), Addr::unix(&dir, "ajp.sock")];
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut args: Vec<String> = vec![];
    for a in &scgi {
        args.extend(["--scgi".to_string(), a.to_arg()]);
    }
    for a in &ajp {
        args.extend(["--ajp".to_string(), a.to_arg()]);
    }
    args.extend(
        [
            "--app",
            "diag",
            "--workers",
            "2",
            "--max-params-bytes",
            "4096",
            "--metrics",
            &metrics.to_string(),
            "--log-level",
            "info",
        ]
        .map(String::from),
    );
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut listeners: Vec<Addr> = scgi.iter().chain(ajp.iter()).cloned().collect();
    listeners.push(Addr::Tcp(metrics));
    let engine = Engine::start(&dir, &args, &listeners);
    Rig {
        engine,
        scgi,
        ajp,
        metrics,
        _dir: dir,
    }
}

// ---------------------------------------------------------------------------------------------
// SCGI
// ---------------------------------------------------------------------------------------------

/// A netstring around `block`.
fn netstring(block: &[u8]) -> Vec<u8> {
    let mut v = format!("{}:", block.len()).into_bytes();
    v.extend_from_slice(block);
    v.push(b',');
    v
}

/// A well-formed SCGI request for `path` with `body`.
fn scgi_request(path: &str, body: &[u8]) -> Vec<u8> {
    let mut block = Vec::new();
    for (n, v) in [
        ("CONTENT_LENGTH", body.len().to_string()),
        ("SCGI", "1".into()),
        ("REQUEST_METHOD", "POST".into()),
        ("SCRIPT_NAME", path.into()),
        ("REQUEST_URI", path.into()),
        ("SERVER_PROTOCOL", "HTTP/1.1".into()),
    ] {
        block.extend_from_slice(n.as_bytes());
        block.push(0);
        block.extend_from_slice(v.as_bytes());
        block.push(0);
    }
    let mut v = netstring(&block);
    v.extend_from_slice(body);
    v
}

fn check_scgi_serves(addr: &Addr, what: &str) {
    let mut c = Conn::open(addr);
    c.send(&scgi_request("/echo", b"still alive"));
    let resp = c.read_to_close();
    let text = String::from_utf8_lossy(&resp);
    assert!(
        text.starts_with("Status: 200"),
        "after {what}, a good SCGI request on {addr:?} got: {text:?}"
    );
    assert!(text.ends_with("still alive"), "after {what}: {text:?}");
}

/// Bad SCGI inputs: (what, bytes, half-close after sending).
fn bad_scgi_inputs() -> Vec<(&'static str, Vec<u8>, bool)> {
    let cl0 = b"CONTENT_LENGTH\x000\x00".to_vec();
    let mut missing_comma = netstring(&cl0);
    *missing_comma.last_mut().unwrap() = b';';
    vec![
        (
            "a length that is not a number",
            b"x5:hello,".to_vec(),
            false,
        ),
        (
            "a length with a leading zero",
            b"012:CONTENT_LENGTH\x000\x00,".to_vec(),
            false,
        ),
        ("a block not followed by a comma", missing_comma, false),
        (
            "CONTENT_LENGTH not first",
            netstring(b"SCGI\x001\x00CONTENT_LENGTH\x000\x00"),
            false,
        ),
        ("an empty header block", b"0:,".to_vec(), false),
        (
            "a name without a value",
            netstring(b"CONTENT_LENGTH\x000\x00X"),
            false,
        ),
        (
            "a length past the end, then EOF",
            b"200:CONTENT_LENGTH\x000\x00".to_vec(),
            true,
        ),
        (
            "HTTP instead of SCGI",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            false,
        ),
    ]
}

#[test]
fn scgi_bad_input_closes_that_connection_and_the_next_is_served() {
    let rig = rig("scgi-bad-input", &[]);
    let inputs = bad_scgi_inputs();
    for addr in &rig.scgi {
        for (what, bytes, half_close) in &inputs {
            let mut c = Conn::open(addr);
            c.send(bytes);
            if *half_close {
                c.shutdown_write();
            }
            let resp = c.read_to_close();
            assert!(
                !String::from_utf8_lossy(&resp).starts_with("Status: 200"),
                "{what} on {addr:?} was served: {resp:?}"
            );
            check_scgi_serves(addr, what);
        }
        // A header block larger than --max-params-bytes (4096) is refused before it is read.
        let mut c = Conn::open(addr);
        c.send(b"100000:CONTENT_LENGTH\x000\x00");
        c.read_to_close();
        check_scgi_serves(addr, "an oversize header block");
    }
    let log = rig.engine.proc.log();
    let logged = log
        .matches("SCGI protocol error; closing connection")
        .count();
    // Every bad input but the EOF one is a decode error (the EOF one ends as a peer close).
    let expected = 2 * (inputs.len() - 1 + 1);
    assert!(
        logged >= expected,
        "{logged} SCGI protocol error lines, expected {expected}:\n{log}"
    );
    let text = scrape(rig.metrics);
    let errors = sum(
        &text,
        "ringfast_protocol_errors_total",
        &[("protocol", "scgi")],
    );
    assert_eq!(errors as usize, 2 * (inputs.len() - 1), "{text}");
    let limited = sum(
        &text,
        "ringfast_limit_rejections_total",
        &[("protocol", "scgi"), ("limit", "max_params_bytes")],
    );
    assert_eq!(limited, 2.0, "{text}");
}

#[test]
fn scgi_stalled_header_block_is_closed_by_params_timeout() {
    let rig = rig("scgi-params-timeout", &["--params-timeout", "1"]);
    for addr in &rig.scgi {
        let t0 = Instant::now();
        let mut c = Conn::open(addr);
        c.send(b"64:CONTENT_LENGTH\x000\x00SCGI");
        let resp = c.read_to_close();
        assert!(resp.is_empty(), "{resp:?}");
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(900),
            "closed before the timeout: {waited:?}"
        );
        check_scgi_serves(addr, "a params timeout");
    }
    let text = scrape(rig.metrics);
    let limited = sum(
        &text,
        "ringfast_limit_rejections_total",
        &[("protocol", "scgi"), ("limit", "params_timeout")],
    );
    assert_eq!(limited, 2.0, "{text}");
}

// ---------------------------------------------------------------------------------------------
// AJP13
// ---------------------------------------------------------------------------------------------

/// An AJP string: length (excluding the NUL), bytes, NUL.
fn ajp_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// A web-server-to-container packet around `payload`.
fn ajp_packet(payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x12, 0x34];
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A Forward Request: GET `uri` over HTTP/1.1, one coded header (Host), no attributes.
fn ajp_get(uri: &str) -> Vec<u8> {
    let mut p = vec![0x02, 0x02]; // FORWARD_REQUEST, GET
    ajp_string(&mut p, "HTTP/1.1");
    ajp_string(&mut p, uri);
    ajp_string(&mut p, "127.0.0.1");
    ajp_string(&mut p, "localhost");
    ajp_string(&mut p, "localhost");
    p.extend_from_slice(&80u16.to_be_bytes());
    p.push(0); // not SSL
    p.extend_from_slice(&1u16.to_be_bytes());
    p.extend_from_slice(&0xA00Bu16.to_be_bytes()); // Host
    ajp_string(&mut p, "localhost");
    p.push(0xFF);
    ajp_packet(&p)
}

const CPING: [u8; 5] = [0x12, 0x34, 0x00, 0x01, 0x0A];
const CPONG: [u8; 5] = [b'A', b'B', 0x00, 0x01, 0x09];

/// Reads container packets until END_RESPONSE; returns (status, body, reuse).
fn read_ajp_response(c: &mut Conn) -> (u16, Vec<u8>, bool) {
    let mut status = 0;
    let mut body = Vec::new();
    loop {
        let head = c.read_exact(4);
        assert_eq!(&head[..2], b"AB", "container packet magic: {head:?}");
        let len = u16::from_be_bytes([head[2], head[3]]) as usize;
        let payload = c.read_exact(len);
        match payload[0] {
            4 => status = u16::from_be_bytes([payload[1], payload[2]]),
            3 => {
                let n = u16::from_be_bytes([payload[1], payload[2]]) as usize;
                body.extend_from_slice(&payload[3..3 + n]);
            }
            5 => return (status, body, payload.get(1) == Some(&1)),
            t => panic!("unexpected container packet type {t}: {payload:?}"),
        }
    }
}

/// CPING, two GETs and another CPING on one connection.
fn check_ajp_serves(addr: &Addr, what: &str) {
    let mut c = Conn::open(addr);
    c.send(&CPING);
    assert_eq!(c.read_exact(5), CPONG, "after {what}: CPONG");
    for uri in ["/hello", "/status/418"] {
        c.send(&ajp_get(uri));
        let (status, body, reuse) = read_ajp_response(&mut c);
        let want = if uri == "/hello" { 200 } else { 418 };
        assert_eq!(status, want, "after {what}: {uri} on {addr:?}: {body:?}");
        assert!(reuse, "after {what}: END_RESPONSE reuse");
        if uri == "/hello" {
            assert_eq!(body, b"Hello, World!", "after {what}");
        }
    }
    c.send(&CPING);
    assert_eq!(c.read_exact(5), CPONG, "after {what}: CPONG after requests");
}

/// Bad AJP inputs: (what, bytes, half-close after sending).
fn bad_ajp_inputs() -> Vec<(&'static str, Vec<u8>, bool)> {
    let mut oversize = vec![0x12, 0x34, 0x40, 0x00];
    oversize.extend_from_slice(&[0x02; 64]);
    let mut past_end = vec![0x12, 0x34, 0x01, 0x00];
    past_end.extend_from_slice(&[0x02, 0x02]);
    vec![
        (
            "HTTP instead of AJP",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            false,
        ),
        ("bad magic", vec![0x34, 0x12, 0x00, 0x01, 0x0A], false),
        ("a packet over --ajp-packet-size", oversize, false),
        ("an unknown packet type", ajp_packet(&[0x63]), false),
        (
            "a truncated Forward Request",
            ajp_packet(&[0x02, 0x02, 0x00]),
            false,
        ),
        (
            "a bad method code",
            ajp_packet(&[0x02, 0x77, 0x00, 0x00, 0x00]),
            false,
        ),
        ("a length past the end, then EOF", past_end, true),
    ]
}

#[test]
fn ajp_bad_input_closes_that_connection_and_the_next_is_served() {
    let rig = rig("ajp-bad-input", &[]);
    let inputs = bad_ajp_inputs();
    for addr in &rig.ajp {
        check_ajp_serves(addr, "nothing");
        for (what, bytes, half_close) in &inputs {
            let mut c = Conn::open(addr);
            c.send(bytes);
            if *half_close {
                c.shutdown_write();
            }
            let resp = c.read_to_close();
            assert!(
                resp.is_empty(),
                "{what} on {addr:?} got an answer: {resp:?}"
            );
            check_ajp_serves(addr, what);
        }
    }
    let log = rig.engine.proc.log();
    let logged = log
        .matches("AJP protocol error; closing connection")
        .count();
    let expected = 2 * (inputs.len() - 1);
    assert!(
        logged >= expected,
        "{logged} AJP protocol error lines, expected {expected}:\n{log}"
    );
    let text = scrape(rig.metrics);
    let errors = sum(
        &text,
        "ringfast_protocol_errors_total",
        &[("protocol", "ajp")],
    );
    assert_eq!(errors as usize, expected, "{text}");
    let bad_version = sum(
        &text,
        "ringfast_protocol_errors_total",
        &[("protocol", "ajp"), ("kind", "bad_version")],
    );
    assert_eq!(
        bad_version, 4.0,
        "HTTP and bad magic, on TCP and Unix: {text}"
    );
}

#[test]
fn idle_ajp_connection_is_closed_after_idle_timeout() {
    let rig = rig("ajp-idle", &["--idle-timeout", "1"]);
    for addr in &rig.ajp {
        let mut c = Conn::open(addr);
        c.send(&ajp_get("/hello"));
        let (status, _, reuse) = read_ajp_response(&mut c);
        assert_eq!((status, reuse), (200, true));
        let t0 = Instant::now();
        let rest = c.read_to_close();
        assert!(rest.is_empty(), "{rest:?}");
        assert!(
            t0.elapsed() >= Duration::from_millis(900),
            "{:?}",
            t0.elapsed()
        );
        check_ajp_serves(addr, "an idle timeout");
    }
}
