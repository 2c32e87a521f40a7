//! End to end through `cgi-fcgi -bind -connect` (libfcgi-bin), the reference CGI-to-FastCGI
//! bridge: it sends its whole process environment as PARAMS (in 8 KiB records, so pairs straddle
//! records), CONTENT_LENGTH bytes of its stdin as STDIN, and writes the STDOUT stream (a CGI
//! response starting with `Status:`) to its own stdout. It is strict: a wrong request id or a
//! malformed END_REQUEST makes it exit with an error.

mod support;

use std::io::Write as _;
use std::process::{Command, Stdio};
use support::*;

const CGI_FCGI: &str = "/usr/bin/cgi-fcgi";

/// A parsed CGI response from cgi-fcgi's stdout.
struct CgiResponse {
    status_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl CgiResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Runs `cgi-fcgi -bind -connect ADDR` with exactly `env` as its environment and `stdin` as its
/// input; asserts it exits 0 and that its output is a CGI response starting with `Status:`.
fn cgi_fcgi(addr: &Addr, env: &[(&str, &str)], stdin: &[u8]) -> CgiResponse {
    require_binary(CGI_FCGI, "libfcgi-bin");
    let target = match addr {
        Addr::Tcp(a) => a.to_string(),
        Addr::Unix(p) => p.display().to_string(),
    };
    let mut child = Command::new(CGI_FCGI)
        .args(["-bind", "-connect", &target])
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cgi-fcgi");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // cgi-fcgi reads only CONTENT_LENGTH bytes; it may exit before taking the rest.
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait for cgi-fcgi");
    writer.join().expect("stdin writer");
    assert!(
        out.status.success(),
        "cgi-fcgi {env:?} exited with {}; stderr: {}; stdout starts {:?}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(300)])
    );
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no header block in cgi-fcgi output {:?}",
                String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(300)])
            )
        });
    let head = String::from_utf8_lossy(&out.stdout[..split]).into_owned();
    let body = out.stdout[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("").to_string();
    assert!(
        status_line.starts_with("Status: "),
        "the response must start with a Status: line, got {head:?}"
    );
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    CgiResponse {
        status_line,
        headers,
        body,
    }
}

fn get<'a>(script: &'a str, path_info: &'a str, query: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_METHOD", "GET"),
        ("SCRIPT_NAME", script),
        ("PATH_INFO", path_info),
        ("QUERY_STRING", query),
        ("CONTENT_LENGTH", ""),
    ]
}

fn run(addr: &Addr) {
    // hello
    let r = cgi_fcgi(addr, &get("/app", "/hello", ""), b"");
    assert!(
        r.status_line.starts_with("Status: 200"),
        "{}",
        r.status_line
    );
    assert_eq!(r.body, b"Hello, World!");
    assert!(r
        .header("Content-Type")
        .unwrap_or("")
        .starts_with("text/plain"));

    // POST echo of 1 MiB
    let body = random_bytes(MIB, 21);
    let len = body.len().to_string();
    let env = [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_METHOD", "POST"),
        ("SCRIPT_NAME", "/app"),
        ("PATH_INFO", "/echo"),
        ("QUERY_STRING", ""),
        ("CONTENT_TYPE", "application/x-ringfast-test"),
        ("CONTENT_LENGTH", len.as_str()),
    ];
    let r = cgi_fcgi(addr, &env, &body);
    assert!(
        r.status_line.starts_with("Status: 200"),
        "{}",
        r.status_line
    );
    if let Some(i) = first_difference(&r.body, &body) {
        panic!(
            "cgi-fcgi echo differs at byte {i} (got {} bytes)",
            r.body.len()
        );
    }
    assert_eq!(
        r.header("Content-Type"),
        Some("application/x-ringfast-test")
    );

    // env: exactly the variables cgi-fcgi had in its environment
    let vars = get("/app", "/sub/env", "a=1&b=two%20words");
    let r = cgi_fcgi(addr, &vars, b"");
    assert!(
        r.status_line.starts_with("Status: 200"),
        "{}",
        r.status_line
    );
    let env: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&r.body).expect("env JSON");
    for (name, value) in &vars {
        assert_eq!(env_var(&env, name), Some(*value), "{name}");
    }
    assert_eq!(env.len(), vars.len(), "unexpected variables in {env:?}");

    // 404 and an explicit status
    let r = cgi_fcgi(addr, &get("/app", "/nothing-here", ""), b"");
    assert!(
        r.status_line.starts_with("Status: 404"),
        "{}",
        r.status_line
    );
    let r = cgi_fcgi(addr, &get("/app", "/status/503", ""), b"");
    assert!(
        r.status_line.starts_with("Status: 503"),
        "{}",
        r.status_line
    );

    // stream of 5 MiB
    let n = 5 * MIB;
    let q = format!("bytes={n}&chunk=65536");
    let r = cgi_fcgi(addr, &get("/app", "/stream", &q), b"");
    assert!(
        r.status_line.starts_with("Status: 200"),
        "{}",
        r.status_line
    );
    if let Err(e) = check_stream_body(&r.body, n) {
        panic!("cgi-fcgi stream: {e}");
    }
}

#[test]
fn cgi_fcgi_tcp() {
    let dir = TempDir::new("cgi-fcgi-tcp");
    let addr = Addr::loopback();
    let engine = Engine::fastcgi_diag(&dir, &addr, &[]);
    run(&addr);
    drop(engine);
}

#[test]
fn cgi_fcgi_unix() {
    let dir = TempDir::new("cgi-fcgi-unix");
    let addr = Addr::unix(&dir, "ringfast.sock");
    let engine = Engine::fastcgi_diag(&dir, &addr, &[]);
    run(&addr);
    drop(engine);
}
