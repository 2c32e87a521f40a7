//! Helpers for the metrics tests: FastCGI requests over a std `TcpStream`, scraping `/metrics`
//! with a plain HTTP GET, and reading samples out of the text format.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use engine::proto::fcgi::{encode_request, RequestSpec};

/// Sends one request per `(path?query, body)` on a new connection (keep-alive between them), reads
/// until each END_REQUEST, and returns each request's STDOUT bytes.
pub fn fcgi_requests(addr: SocketAddr, reqs: &[(&str, &[u8])]) -> Vec<Vec<u8>> {
    let mut s = TcpStream::connect(addr).expect("connect to the FastCGI listener");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut answers = Vec::new();
    let mut pending = Vec::new();
    for (i, (uri, body)) in reqs.iter().enumerate() {
        let len = body.len().to_string();
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let params: Vec<(&[u8], &[u8])> = vec![
            (b"REQUEST_METHOD", b"POST"),
            (b"SCRIPT_NAME", path.as_bytes()),
            (b"REQUEST_URI", uri.as_bytes()),
            (b"DOCUMENT_URI", path.as_bytes()),
            (b"QUERY_STRING", query.as_bytes()),
            (b"CONTENT_LENGTH", len.as_bytes()),
            (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        ];
        let mut out = Vec::new();
        let id = 1;
        encode_request(
            &mut out,
            &RequestSpec {
                request_id: id,
                keep_conn: i + 1 < reqs.len(),
                params: &params,
                body,
            },
        );
        s.write_all(&out).unwrap();
        answers.push(read_until_end(&mut s, &mut pending, id));
    }
    answers
}

fn read_until_end(s: &mut TcpStream, buf: &mut Vec<u8>, id: u16) -> Vec<u8> {
    let mut stdout = Vec::new();
    loop {
        while buf.len() >= 8 {
            let len = u16::from_be_bytes([buf[4], buf[5]]) as usize;
            let total = 8 + len + buf[6] as usize;
            if buf.len() < total {
                break;
            }
            let rtype = buf[1];
            let rid = u16::from_be_bytes([buf[2], buf[3]]);
            assert_eq!(rid, id, "record for another request");
            if rtype == 6 {
                stdout.extend_from_slice(&buf[8..8 + len]);
            }
            buf.drain(..total);
            if rtype == 3 {
                return stdout;
            }
        }
        let mut chunk = [0u8; 16384];
        let n = s.read(&mut chunk).expect("read FastCGI answer");
        assert!(n > 0, "connection closed before END_REQUEST");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `GET /metrics` over a plain TCP connection; returns the body (panics unless 200).
pub fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to /metrics");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_string()
}

/// One sample: name, labels, value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Every sample in a text-format page.
pub fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').expect("label=value");
                (k.to_string(), v.trim_matches('"').to_string())
            })
            .collect();
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().expect("a number"),
        };
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    out
}

/// The sum of every sample named `name` whose labels include all of `labels`.
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text)
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
        })
        .map(|s| s.value)
        .sum()
}

/// Asserts that `promtool check metrics` accepts `text` without a complaint.
pub fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("/usr/bin/promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool (Debian package prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts the `diag` app with two workers serving FastCGI on a loopback port and `/metrics` as
/// `metrics` says (an address, or `off`); waits until both accept. Returns the engine and its
/// FastCGI address.
pub fn start_diag_with_metrics(
    dir: &crate::support::TempDir,
    metrics: &str,
) -> (crate::support::Engine, SocketAddr) {
    use crate::support::{Addr, Engine};
    let fcgi = Addr::loopback();
    let args: Vec<String> = [
        "--fastcgi",
        &fcgi.to_arg(),
        "--metrics",
        metrics,
        "--app",
        "diag",
        "--workers",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut listeners = vec![fcgi.clone()];
    if let Ok(m) = metrics.parse::<SocketAddr>() {
        listeners.push(Addr::Tcp(m));
    }
    let engine = Engine::start(dir, &args, &listeners);
    let Addr::Tcp(a) = fcgi else { unreachable!() };
    (engine, a)
}
