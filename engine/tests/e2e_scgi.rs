//! End to end over SCGI: nginx `scgi_pass` (+ `include scgi_params`), lighttpd mod_scgi and Apache
//! httpd mod_proxy_scgi, each in front of `ringfast --scgi ADDR --app diag` on loopback.
//!
//! Each drives hello, a 1 MiB POST echo (byte-exact), a chunked POST sent by curl, `/env` and a
//! 5 MiB stream. Apache mod_proxy_scgi refuses a chunked request body itself with 411 (it needs a
//! Content-Length for the CONTENT_LENGTH header SCGI requires), which is asserted instead.

mod support;

use support::*;

/// The engine serving the `diag` app over SCGI on a loopback port, and the front end `start`
/// builds for it.
fn scgi_stack(label: &str, start: impl FnOnce(&TempDir, Backend) -> FrontEnd) -> Stack {
    Stack::loopback(label, Proto::Scgi, &[], start)
}

/// Hello, 1 MiB echo with Content-Length, an empty echo, 5 MiB and small-chunk streams, 404 and
/// `/status/NNN`.
fn check_basics(stack: &Stack) {
    check_hello(stack, "/app");
    check_echo(stack, "/app", MIB, false);
    check_echo(stack, "/app", 0, false);
    check_stream(stack, "/app", 5 * MIB, 65536);
    check_stream(stack, "/app", 100_000, 1000);
    let r = stack.curl("/app/no-such-route").run();
    assert_eq!(r.status, 404, "{} unknown route", stack.front.kind);
    let r = stack.curl("/app/status/418").run();
    assert_eq!(r.status, 418, "{} /status/418", stack.front.kind);
}

/// The variables every SCGI front end sends the same way (SCGI=1 is mandatory).
fn check_env_common(env: &serde_json::Map<String, serde_json::Value>, kind: &str) {
    assert_eq!(env_var(env, "SCGI"), Some("1"), "{kind} SCGI: {env:?}");
    assert_eq!(
        env_var(env, "REQUEST_METHOD"),
        Some("GET"),
        "{kind}: {env:?}"
    );
    assert_eq!(
        env_var(env, "QUERY_STRING"),
        Some("a=1&b=two%20words"),
        "{kind}: {env:?}"
    );
    assert_eq!(
        env_var(env, "SERVER_PROTOCOL"),
        Some("HTTP/1.1"),
        "{kind}: {env:?}"
    );
    assert_eq!(
        env_var(env, "REMOTE_ADDR"),
        Some("127.0.0.1"),
        "{kind}: {env:?}"
    );
}

/// POSTs a body and checks REQUEST_METHOD and CONTENT_LENGTH (always present in SCGI).
fn check_post_env(stack: &Stack, chunked: bool) {
    let body = random_bytes(300_000, 13);
    let env = fetch_env(stack, "/app/env", Some(&body), chunked);
    let kind = stack.front.kind;
    assert_eq!(
        env_var(&env, "REQUEST_METHOD"),
        Some("POST"),
        "{kind}: {env:?}"
    );
    assert_eq!(
        env_var(&env, "CONTENT_LENGTH"),
        Some("300000"),
        "{kind} (chunked={chunked}) buffers the body and sends its length: {env:?}"
    );
}

#[test]
fn nginx_scgi() {
    let stack = scgi_stack("nginx-scgi", |dir, backend| Nginx::new(backend).start(dir));
    check_basics(&stack);
    // nginx buffers a chunked upload and sends it with its CONTENT_LENGTH.
    check_echo(&stack, "/app", MIB, true);

    // scgi_params: no SCRIPT_NAME/PATH_INFO; DOCUMENT_URI is the path, REQUEST_URI the raw target.
    let env = fetch_env(&stack, "/app/sub/env?a=1&b=two%20words", None, false);
    check_env_common(&env, "nginx");
    assert_eq!(env_var(&env, "DOCUMENT_URI"), Some("/app/sub/env"));
    assert_eq!(
        env_var(&env, "REQUEST_URI"),
        Some("/app/sub/env?a=1&b=two%20words")
    );
    assert_eq!(env_var(&env, "CONTENT_LENGTH"), Some("0"));
    check_post_env(&stack, false);
    check_post_env(&stack, true);
}

#[test]
fn lighttpd_scgi() {
    let stack = scgi_stack("lighttpd-scgi", |dir, backend| {
        Lighttpd::new(backend).start(dir)
    });
    check_basics(&stack);
    // lighttpd buffers a chunked upload and sends it with its CONTENT_LENGTH.
    check_echo(&stack, "/app", MIB, true);

    // mod_scgi splits at the mount like mod_fastcgi: SCRIPT_NAME=/app, PATH_INFO=the rest.
    let env = fetch_env(&stack, "/app/sub/env?a=1&b=two%20words", None, false);
    check_env_common(&env, "lighttpd");
    assert_eq!(env_var(&env, "SCRIPT_NAME"), Some("/app"));
    assert_eq!(env_var(&env, "PATH_INFO"), Some("/sub/env"));
    assert_eq!(
        env_var(&env, "REQUEST_URI"),
        Some("/app/sub/env?a=1&b=two%20words")
    );
    assert_eq!(env_var(&env, "CONTENT_LENGTH"), Some("0"));
    check_post_env(&stack, false);
    check_post_env(&stack, true);
}

#[test]
fn apache_scgi() {
    let stack = scgi_stack("apache-scgi", |dir, backend| {
        Apache::new(backend).start(dir)
    });
    check_basics(&stack);

    // mod_proxy_scgi answers a chunked request body with 411 Length Required itself (it never
    // reaches the engine).
    let body = random_bytes(100_000, 17);
    let r = stack.curl("/app/echo").post(&body).chunked().run();
    assert_eq!(
        r.status, 411,
        "Apache mod_proxy_scgi and a chunked body: {r:?}"
    );
    check_hello(&stack, "/app");

    let env = fetch_env(&stack, "/app/sub/env?a=1&b=two%20words", None, false);
    check_env_common(&env, "apache2");
    // mod_proxy_scgi: SCRIPT_NAME is the whole path, no PATH_INFO (unless proxy-scgi-pathinfo).
    assert_eq!(env_var(&env, "SCRIPT_NAME"), Some("/app/sub/env"));
    assert_eq!(
        env_var(&env, "PATH_INFO"),
        None,
        "Apache sends no PATH_INFO"
    );
    let script_filename = env_var(&env, "SCRIPT_FILENAME").unwrap_or("");
    assert!(
        script_filename.starts_with("proxy:scgi://"),
        "SCRIPT_FILENAME {script_filename:?}"
    );
    assert_eq!(
        env_var(&env, "REQUEST_URI"),
        Some("/app/sub/env?a=1&b=two%20words")
    );
    check_post_env(&stack, false);
}
