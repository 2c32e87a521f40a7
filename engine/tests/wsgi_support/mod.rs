//! Helpers shared by the WSGI end-to-end tests: the test virtualenv, the fixtures, starting
//! `ringfast --wsgi` behind a front end, cookies, multipart bodies and raw HTTP.

#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;

/// The test virtualenv with Django and Flask: `$RINGFAST_TEST_VENV`, else `<workspace>/.venv`
/// (what scripts/test.sh creates from engine/tests/fixtures/requirements.txt).
pub fn venv() -> PathBuf {
    let p = std::env::var_os("RINGFAST_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"));
    assert!(
        p.join("pyvenv.cfg").is_file(),
        "no test virtualenv at {}: run scripts/test.sh (it creates it and pip-installs \
         engine/tests/fixtures/requirements.txt)",
        p.display()
    );
    p
}

/// engine/tests/fixtures.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Django's admin static files inside the virtualenv (`.../django/contrib/admin/static/admin`).
pub fn django_admin_static() -> PathBuf {
    let lib = venv().join("lib");
    let entries = std::fs::read_dir(&lib).unwrap_or_else(|e| panic!("{}: {e}", lib.display()));
    for e in entries.flatten() {
        let p = e
            .path()
            .join("site-packages/django/contrib/admin/static/admin");
        if p.is_dir() {
            return p;
        }
    }
    panic!("no Django admin static files under {}", lib.display());
}

/// Which protocol flag the engine listens with.
pub fn proto_flag(proto: Proto) -> &'static str {
    match proto {
        Proto::FastCgi => "--fastcgi",
        Proto::Scgi => "--scgi",
        Proto::Ajp => "--ajp",
    }
}

/// Starts `ringfast --wsgi APP` on a loopback port for `proto`, with the test virtualenv, `chdir`
/// as the working directory, two workers, metrics off unless `extra` sets `--metrics`.
pub fn start_wsgi(
    dir: &TempDir,
    proto: Proto,
    app: &str,
    chdir: &Path,
    extra: &[&str],
) -> (Engine, Backend) {
    let addr = Addr::loopback();
    let mut args: Vec<String> = vec![
        proto_flag(proto).into(),
        addr.to_arg(),
        "--wsgi".into(),
        app.into(),
        "--chdir".into(),
        chdir.display().to_string(),
        "--venv".into(),
        venv().display().to_string(),
        "--workers".into(),
        "2".into(),
    ];
    if !extra.contains(&"--metrics") {
        args.extend(["--metrics".into(), "off".into()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let engine = Engine::start(dir, &args, std::slice::from_ref(&addr));
    (engine, Backend { proto, addr })
}

/// A front end built by `front` in front of `ringfast --wsgi APP`.
pub fn wsgi_stack(
    label: &str,
    proto: Proto,
    app: &str,
    chdir: &Path,
    extra: &[&str],
    front: impl FnOnce(&TempDir, Backend) -> FrontEnd,
) -> Stack {
    let dir = TempDir::new(label);
    let (engine, backend) = start_wsgi(&dir, proto, app, chdir, extra);
    let front = front(&dir, backend);
    Stack { front, engine, dir }
}

/// Every `Set-Cookie` of a response as `name=value` pairs, joined for a `Cookie:` header.
pub fn cookies(r: &Response) -> String {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The value of the first `name="..."` attribute in an HTML text (`value="..."` after
/// `name="csrfmiddlewaretoken"`, say).
pub fn html_input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + 7;
    let end = tag[v..].find('"')?;
    Some(tag[v..v + end].to_string())
}

/// The `href` of the element with `id="ID"`.
pub fn html_href(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag = &html[tag_start..at + html[at..].find('>')?];
    let v = tag.find("href=\"")? + 6;
    let end = tag[v..].find('"')?;
    Some(tag[v..v + end].to_string())
}

/// A multipart/form-data body with one file field; returns (content type, body).
pub fn multipart_file(field: &str, filename: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "ringfast-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::with_capacity(data.len() + 512);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; \
             filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// SHA-256 of `data` as hex, computed by `sha256sum` (coreutils).
pub fn sha256_hex(dir: &TempDir, data: &[u8]) -> String {
    let p = dir.write("sha-input.bin", data);
    let out = std::process::Command::new("sha256sum")
        .arg(&p)
        .output()
        .expect("run sha256sum");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().next().unwrap_or("").to_string()
}

/// Sends a raw HTTP/1.1 GET for `path` to 127.0.0.1:`port`, reads until `want` bytes of the
/// response arrived (or 10 s passed), then drops the connection (the client going away).
pub fn get_then_hang_up(port: u16, path: &str, want: usize) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the front end");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < want {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}
