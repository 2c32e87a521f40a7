//! End to end through nginx 1.22 `fastcgi_pass`: over TCP and over a Unix socket, with
//! `fastcgi_keep_conn on` + upstream `keepalive 8` and without. Each test starts its own engine
//! (`--app diag`) and nginx on loopback and drives them with curl.

mod support;

use support::*;

fn nginx_stack(label: &str, unix: bool, keepalive: bool) -> Stack {
    Stack::fastcgi(label, unix, |dir, backend| {
        let mut conf = Nginx::new(backend);
        if keepalive {
            conf = conf.keepalive(8);
        }
        conf.start(dir)
    })
}

/// What nginx sends with the stock `fastcgi_params`: SCRIPT_NAME is the whole path, no PATH_INFO;
/// with `fastcgi_split_path_info` the path is split; with request buffering off a chunked upload
/// arrives with an empty CONTENT_LENGTH (buffered: the real length).
fn check_nginx_env(stack: &Stack) {
    let env = fetch_env(stack, "/app/env?a=1&b=two%20words", None, false);
    assert_eq!(env_var(&env, "REQUEST_METHOD"), Some("GET"));
    assert_eq!(env_var(&env, "SCRIPT_NAME"), Some("/app/env"));
    assert_eq!(
        env_var(&env, "PATH_INFO"),
        None,
        "nginx sends no PATH_INFO by default"
    );
    assert_eq!(env_var(&env, "QUERY_STRING"), Some("a=1&b=two%20words"));
    assert_eq!(
        env_var(&env, "REQUEST_URI"),
        Some("/app/env?a=1&b=two%20words")
    );
    assert_eq!(env_var(&env, "SERVER_PROTOCOL"), Some("HTTP/1.1"));
    assert_eq!(env_var(&env, "GATEWAY_INTERFACE"), Some("CGI/1.1"));
    assert_eq!(env_var(&env, "REMOTE_ADDR"), Some("127.0.0.1"));
    assert_eq!(
        env_var(&env, "SERVER_PORT"),
        Some(stack.front.port.to_string().as_str())
    );
    assert_eq!(env_var(&env, "CONTENT_LENGTH"), Some(""));

    let env = fetch_env(stack, "/split/sub/env?x=y", None, false);
    assert_eq!(env_var(&env, "SCRIPT_NAME"), Some("/split"));
    assert_eq!(env_var(&env, "PATH_INFO"), Some("/sub/env"));
    assert_eq!(env_var(&env, "QUERY_STRING"), Some("x=y"));

    let body = random_bytes(3000, 7);
    let env = fetch_env(stack, "/app/env", Some(&body), false);
    assert_eq!(env_var(&env, "REQUEST_METHOD"), Some("POST"));
    assert_eq!(env_var(&env, "CONTENT_LENGTH"), Some("3000"));
    assert_eq!(
        env_var(&env, "CONTENT_TYPE"),
        Some("application/octet-stream")
    );

    // Buffered (the default): nginx reads the chunked body first and sends its real length.
    let env = fetch_env(stack, "/app/env", Some(&body), true);
    assert_eq!(env_var(&env, "CONTENT_LENGTH"), Some("3000"));
    // Unbuffered: streamed, CONTENT_LENGTH empty (when the body did not arrive with the headers).
    let big = random_bytes(256 * 1024, 8);
    let env = fetch_env(stack, "/unbuf/env", Some(&big), true);
    assert_eq!(
        env_var(&env, "CONTENT_LENGTH"),
        Some(""),
        "nginx unbuffered chunked upload"
    );
    assert_eq!(env_var(&env, "HTTP_TRANSFER_ENCODING"), Some("chunked"));
}

fn run(label: &str, unix: bool, keepalive: bool) {
    let stack = nginx_stack(label, unix, keepalive);
    check_common(&stack, "/app", MIB);
    // Streamed chunked upload: CONTENT_LENGTH is empty, the body ends with the empty STDIN.
    check_echo(&stack, "/unbuf", MIB, true);
    check_echo(&stack, "/split/x", 100_000, false);
    check_nginx_env(&stack);
    // Several requests in a row, then see whether nginx holds an idle connection to the engine.
    for _ in 0..20 {
        check_hello(&stack, "/app");
    }
    check_idle_backend_conns(&stack, keepalive);
    if keepalive {
        // The kept connection keeps working (the engine did not drop it).
        check_echo(&stack, "/app", 200_000, false);
        check_hello(&stack, "/app");
    }
}

#[test]
fn nginx_tcp() {
    run("nginx-tcp", false, false);
}

#[test]
fn nginx_tcp_keepalive() {
    run("nginx-tcp-ka", false, true);
}

#[test]
fn nginx_unix() {
    run("nginx-unix", true, false);
}

#[test]
fn nginx_unix_keepalive() {
    run("nginx-unix-ka", true, true);
}
