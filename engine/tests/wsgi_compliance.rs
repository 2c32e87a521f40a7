//! PEP 3333 from the application's side: engine/tests/fixtures/wsgi_compliance.py checks the
//! environ and the input/output rules from inside Python and answers "OK" or what is wrong; the
//! tests drive it through nginx (FastCGI). Also: load failures exit non-zero with the traceback
//! before serving, a slow view does not hold up other requests, and a CPU-bound one does not
//! hold up /metrics.

#![cfg(feature = "wsgi")]

mod support;
mod wsgi_support;

use std::time::{Duration, Instant};

use support::*;
use wsgi_support::*;

fn compliance_stack(label: &str) -> Stack {
    wsgi_stack(
        label,
        Proto::FastCgi,
        "wsgi_compliance:application",
        &fixtures(),
        &["--script-name", "/app", "--threads", "4"],
        |dir, backend| Nginx::new(backend).keepalive(4).start(dir),
    )
}

fn ok(stack: &Stack, path: &str) {
    let r = stack.curl(path).run();
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    assert_eq!(r.text(), "OK", "{path}: the compliance app found problems");
}

/// What the compliance app expects on /input: n lines of growing length.
fn expected_body(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        out.extend_from_slice(format!("line {i} {}\n", "x".repeat(i % 300)).as_bytes());
    }
    out
}

#[test]
fn environ_input_and_output_rules() {
    let stack = compliance_stack("wsgi-compliance");
    ok(
        &stack,
        "/app/environ?multithread=true&multiprocess=false&script_name=/app&path_info=/environ",
    );
    ok(&stack, "/app/sub/environ?path_info=/sub/environ");
    let log = || stack.engine.proc.log();
    assert!(
        log().contains("compliance: environ checked"),
        "wsgi.errors lines reach the log"
    );

    // wsgi.input, each reading style, with Content-Length and chunked (nginx unbuffered: empty
    // CONTENT_LENGTH, the body ends where the stream ends).
    let n = 4000;
    let body = expected_body(n);
    for mode in ["read", "readn", "readline", "readlines", "iter"] {
        for (prefix, chunked) in [("/app", false), ("/unbuf", true)] {
            let path = format!("{prefix}/input?mode={mode}&n={n}");
            let mut c = stack.curl(&path).post(&body);
            if chunked {
                c = c.chunked();
            }
            let r = c.run();
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(r.text(), "OK", "{path} (chunked={chunked})");
        }
    }
    ok(&stack, "/app/input?mode=read&n=0");

    // write() then an iterable with an empty chunk; close() is called.
    let r = stack.curl("/app/write").run();
    assert_eq!((r.status, r.text().as_str()), (200, "written;yielded"));

    // start_response with exc_info before any body replaces the status.
    let r = stack.curl("/app/exc_info").run();
    assert_eq!((r.status, r.text().as_str()), (503, "replaced"));

    // After the headers went out, exc_info re-raises: the body is cut short.
    let r = stack.curl("/app/exc_after").run();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "first chunk;");

    // An exception before start_response: 500 and the traceback in the log.
    let r = stack.curl("/app/raise").run();
    assert_eq!(r.status, 500);
    assert!(
        wait_until(Duration::from_secs(5), || {
            let l = log();
            l.contains("Traceback (most recent call last)")
                && l.contains("ZeroDivisionError: compliance app raised on purpose")
        }),
        "traceback of /raise not logged:\n{}",
        log()
    );

    // wsgi.file_wrapper.
    let r = stack.curl("/app/file").run();
    assert_eq!(r.status, 200);
    let file = std::fs::read(fixtures().join("wsgi_compliance.py")).unwrap();
    assert!(r.body == file, "file_wrapper body differs");

    // Header values are Latin-1: "caf\xe9" goes out as 4 bytes, the last one 0xE9 (which the
    // lossy UTF-8 reading of the headers shows as U+FFFD), not as UTF-8 "café".
    let r = stack.curl("/app/latin1").run();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Latin1"), Some("caf\u{fffd}"));

    // wsgiref.validate finds nothing wrong.
    let r = stack.curl("/app/validate").run();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "validated"),
        "{}",
        log()
    );

    // The client goes away in the middle of a streamed response: close() is still called.
    let got = get_then_hang_up(stack.front.port, "/app/hang", 400);
    assert!(String::from_utf8_lossy(&got).contains("tick"), "{got:?}");
    let closed = |what: &str| {
        let r = stack.curl("/app/closed").run();
        r.text().split(' ').any(|kv| kv == what)
    };
    assert!(
        wait_until(Duration::from_secs(20), || closed("hang=1")),
        "close() not called after the client went away: {}",
        stack.curl("/app/closed").run().text()
    );
    assert!(closed("write=1"));
    assert!(closed("exc_after_reraised=1"));
}

#[test]
fn prefork_processes_each_load_the_app() {
    let stack = wsgi_stack(
        "wsgi-prefork",
        Proto::FastCgi,
        "wsgi_compliance:application",
        &fixtures(),
        &[
            "--script-name",
            "/app",
            "--threads",
            "1",
            "--processes",
            "2",
        ],
        |dir, backend| Nginx::new(backend).start(dir),
    );
    // wsgi.multithread and wsgi.multiprocess tell the truth.
    for _ in 0..4 {
        ok(
            &stack,
            "/app/environ?multithread=false&multiprocess=true&path_info=/environ",
        );
    }
    let loaded = stack
        .engine
        .proc
        .log()
        .matches("WSGI application loaded")
        .count();
    assert_eq!(
        loaded,
        2,
        "each process loads the app:\n{}",
        stack.engine.proc.log()
    );
}

/// Starts ringfast with `--wsgi app` (no front end) and expects it to exit non-zero with
/// `needle` in its output.
fn check_load_failure(app: &str, needle: &str) {
    check_load_failure_with(app, needle, &[]);
}

fn check_load_failure_with(app: &str, needle: &str, extra: &[&str]) {
    let dir = TempDir::new("wsgi-load-fail");
    let addr = Addr::loopback();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ringfast"));
    cmd.args([
        "--fastcgi",
        &addr.to_arg(),
        "--metrics",
        "off",
        "--wsgi",
        app,
    ])
    .arg("--chdir")
    .arg(fixtures())
    .arg("--venv")
    .arg(venv())
    .args(extra);
    let mut proc = Proc::spawn("ringfast", cmd, dir.join("engine.log"));
    let status = proc
        .wait_timeout(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("ringfast --wsgi {app} did not exit: {}", proc.log()));
    assert!(!status.success(), "--wsgi {app} exited 0: {}", proc.log());
    assert!(
        proc.log().contains(needle),
        "--wsgi {app}: expected {needle:?} in:\n{}",
        proc.log()
    );
    // Neither a single process nor a prefork worker started serving.
    let log = proc.log();
    assert!(
        !log.contains("engine::server: listening") && !log.contains("worker process ready"),
        "--wsgi {app}: served before failing:\n{log}"
    );
}

#[test]
fn load_failures_exit_with_the_traceback() {
    check_load_failure(
        "no_such_module:application",
        "ModuleNotFoundError: No module named 'no_such_module'",
    );
    check_load_failure(
        "wsgi_compliance:no_such_callable",
        "AttributeError: module 'wsgi_compliance' has no attribute 'no_such_callable'",
    );
    check_load_failure("broken_app:application", "json.decoder.JSONDecodeError");
    check_load_failure("wsgi_compliance:REQUIRED", "list object is not callable");
    check_load_failure("not a spec", "expected MODULE:CALLABLE");
    // With prefork, a worker process that cannot load the app stops the whole server.
    check_load_failure_with(
        "no_such_module:application",
        "No module named 'no_such_module'",
        &["--processes", "2"],
    );
}

/// Runs `f` on a thread, returning its result and when it finished.
fn timed<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<(T, Instant)> {
    std::thread::spawn(move || {
        let v = f();
        (v, Instant::now())
    })
}

fn curl_status(url: String) -> (u16, String) {
    let out = std::process::Command::new("/usr/bin/curl")
        .args(["-sS", "--noproxy", "*", "--max-time", "120", "-o", "-"])
        .args(["-w", "\n%{http_code}"])
        .arg(&url)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn slow_and_cpu_bound_views_do_not_block_others() {
    let metrics_port = free_port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let stack = wsgi_stack(
        "wsgi-threads",
        Proto::FastCgi,
        "djsite.wsgi:application",
        &fixtures().join("djsite"),
        &[
            "--script-name",
            "/app",
            "--threads",
            "4",
            "--metrics",
            &metrics,
        ],
        |dir, backend| Nginx::new(backend).keepalive(8).start(dir),
    );
    // Warm up (Django imports views lazily).
    assert_eq!(stack.curl("/app/whereami/").run().status, 200);

    // Two 4-second sleeps hold two Python threads; a quick request still gets through.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let url = stack.front.url("/app/slow/?s=4");
            timed(move || curl_status(url))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let quick = timed({
        let url = stack.front.url("/app/whereami/");
        move || curl_status(url)
    });
    let (quick_result, quick_done) = quick.join().unwrap();
    assert_eq!(quick_result.0, 200, "quick request: {}", quick_result.1);
    for s in slow {
        let ((status, body), done) = s.join().unwrap();
        assert_eq!(status, 200, "slow: {body}");
        assert!(
            quick_done < done,
            "the quick request waited for a slow one to finish"
        );
    }

    // A CPU-bound view holds the GIL; /metrics (no Python) answers while it spins.
    let cpu = timed({
        let url = stack.front.url("/app/cpu/?s=4");
        move || curl_status(url)
    });
    std::thread::sleep(Duration::from_millis(500));
    let (metrics_result, metrics_done) =
        timed(move || curl_status(format!("http://127.0.0.1:{metrics_port}/metrics")))
            .join()
            .unwrap();
    assert_eq!(metrics_result.0, 200);
    assert!(metrics_result.1.contains("ringfast_requests_total"));
    let ((status, body), cpu_done) = cpu.join().unwrap();
    assert_eq!(status, 200, "cpu: {body}");
    assert!(body.starts_with("spun "), "{body}");
    assert!(
        metrics_done < cpu_done,
        "/metrics waited for the CPU-bound view"
    );
}
