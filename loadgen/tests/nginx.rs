//! ringfast-load's HTTP/1.1 client against nginx: keep-alive and a connection per request,
//! Content-Length and chunked bodies, TCP and a Unix socket.

mod support;

use support::{load, Nginx, TempDir};

const EXTRA: &str = r#"
        location = /hello { default_type text/plain; return 200 "hello from nginx\n"; }
        location = /gone { return 410; }
        location /ssi/ { ssi on; default_type text/html; }
"#;

fn nginx() -> (TempDir, Nginx) {
    let dir = TempDir::new("nginx");
    dir.write("www/static.txt", "a static file\n");
    // SSI output has no Content-Length: nginx sends it chunked.
    dir.write(
        "www/ssi/page.html",
        "<p><!--# echo var=\"no_such_var\" default=\"chunked\" --></p>\n",
    );
    let nginx = Nginx::start(&dir, EXTRA);
    (dir, nginx)
}

#[test]
fn keepalive_and_a_connection_per_request_over_tcp_and_unix() {
    let (_dir, nginx) = nginx();
    for addr in [&nginx.tcp, &nginx.unix] {
        for keepalive in [true, false] {
            let target = addr.target("http", "/hello");
            let mut args = vec!["-n", "300", "--warmup", "0.1", "-c", "4", "-t", "2"];
            if !keepalive {
                args.push("--no-keepalive");
            }
            args.extend(["--expect-body", "hello from nginx\n", &target]);
            let run = load(&args);
            run.assert_clean(300);
            assert_eq!(run.json["protocol"], "http");
            assert_eq!(run.json["keepalive"], keepalive);
        }
    }
}

#[test]
fn static_files_and_chunked_bodies() {
    let (_dir, nginx) = nginx();
    let file = nginx.tcp.target("http", "/static.txt");
    load(&[
        "-n",
        "200",
        "--warmup",
        "0",
        "-c",
        "2",
        "--expect-body",
        "a static file\n",
        &file,
    ])
    .assert_clean(200);
    // HEAD: Content-Length is announced, no body follows.
    load(&[
        "-n",
        "200",
        "--warmup",
        "0",
        "-c",
        "2",
        "-m",
        "HEAD",
        "--expect-body",
        "",
        &file,
    ])
    .assert_clean(200);
    let chunked = nginx.tcp.target("http", "/ssi/page.html");
    load(&[
        "-n",
        "200",
        "--warmup",
        "0",
        "-c",
        "2",
        "--expect-body",
        "<p>chunked</p>\n",
        &chunked,
    ])
    .assert_clean(200);
}

#[test]
fn unexpected_status_is_an_error() {
    let (_dir, nginx) = nginx();
    let gone = nginx.tcp.target("http", "/gone");
    let run = load(&["-n", "100", "--warmup", "0", "-c", "2", &gone]);
    assert_eq!(run.u64("requests"), 0);
    assert_eq!(run.errors("status"), 100, "{}", run.json);
    load(&[
        "-n",
        "100",
        "--warmup",
        "0",
        "-c",
        "2",
        "--expect-status",
        "410",
        &gone,
    ])
    .assert_clean(100);
}
