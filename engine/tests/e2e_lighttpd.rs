//! End to end through lighttpd 1.4 mod_fastcgi (`check-local` disabled, mounted at `/app`), over
//! TCP and over a Unix socket. lighttpd never sets FCGI_KEEP_CONN: one connection per request.

mod support;

use support::*;

fn lighttpd_stack(label: &str, unix: bool) -> Stack {
    Stack::fastcgi(label, unix, |dir, backend| {
        Lighttpd::new(backend).start(dir)
    })
}

/// lighttpd splits at the mount: SCRIPT_NAME=/app, PATH_INFO=the rest; CONTENT_LENGTH is always
/// sent ("0" without a body) and is the real length for chunked uploads (it buffers them).
fn check_lighttpd_env(stack: &Stack) {
    let env = fetch_env(stack, "/app/sub/env?a=1&b=two%20words", None, false);
    assert_eq!(env_var(&env, "REQUEST_METHOD"), Some("GET"));
    assert_eq!(env_var(&env, "SCRIPT_NAME"), Some("/app"));
    assert_eq!(env_var(&env, "PATH_INFO"), Some("/sub/env"));
    assert_eq!(env_var(&env, "QUERY_STRING"), Some("a=1&b=two%20words"));
    assert_eq!(
        env_var(&env, "REQUEST_URI"),
        Some("/app/sub/env?a=1&b=two%20words")
    );
    assert_eq!(env_var(&env, "SERVER_PROTOCOL"), Some("HTTP/1.1"));
    assert_eq!(env_var(&env, "REMOTE_ADDR"), Some("127.0.0.1"));
    assert_eq!(env_var(&env, "CONTENT_LENGTH"), Some("0"));

    let body = random_bytes(300_000, 9);
    let env = fetch_env(stack, "/app/env", Some(&body), true);
    assert_eq!(env_var(&env, "REQUEST_METHOD"), Some("POST"));
    assert_eq!(
        env_var(&env, "CONTENT_LENGTH"),
        Some("300000"),
        "lighttpd buffers a chunked upload and sends its length"
    );
    assert_eq!(env_var(&env, "PATH_INFO"), Some("/env"));
}

fn run(label: &str, unix: bool) {
    let stack = lighttpd_stack(label, unix);
    check_common(&stack, "/app", MIB);
    check_lighttpd_env(&stack);
    for _ in 0..10 {
        check_hello(&stack, "/app");
    }
    check_idle_backend_conns(&stack, false);
}

#[test]
fn lighttpd_tcp() {
    run("lighttpd-tcp", false);
}

#[test]
fn lighttpd_unix() {
    run("lighttpd-unix", true);
}
