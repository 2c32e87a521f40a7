//! End to end through Apache httpd 2.4 mod_proxy_fcgi (`ProxyPass /app/ fcgi://...`), with
//! `enablereuse=on` (FCGI_KEEP_CONN, pooled connections) and without, over TCP, and over a Unix
//! socket with reuse.

mod support;

use support::*;

fn apache_stack(label: &str, unix: bool, reuse: bool) -> Stack {
    // Apache's children run as www-data: let them connect to the engine's Unix socket.
    Stack::fastcgi_with_args(label, unix, &["--socket-mode", "0666"], |dir, backend| {
        let mut conf = Apache::new(backend);
        if reuse {
            conf = conf.enablereuse();
        }
        conf.start(dir)
    })
}

/// mod_proxy_fcgi: SCRIPT_NAME is the whole path, no PATH_INFO, SCRIPT_FILENAME is
/// `proxy:fcgi://...`; a chunked upload is streamed with no CONTENT_LENGTH at all.
fn check_apache_env(stack: &Stack) {
    let env = fetch_env(stack, "/app/env?a=1&b=two%20words", None, false);
    assert_eq!(env_var(&env, "REQUEST_METHOD"), Some("GET"));
    assert_eq!(env_var(&env, "SCRIPT_NAME"), Some("/app/env"));
    assert_eq!(
        env_var(&env, "PATH_INFO"),
        None,
        "Apache sends no PATH_INFO"
    );
    assert_eq!(env_var(&env, "QUERY_STRING"), Some("a=1&b=two%20words"));
    assert_eq!(
        env_var(&env, "REQUEST_URI"),
        Some("/app/env?a=1&b=two%20words")
    );
    let script_filename = env_var(&env, "SCRIPT_FILENAME").unwrap_or("");
    assert!(
        script_filename.starts_with("proxy:fcgi://"),
        "SCRIPT_FILENAME {script_filename:?}"
    );
    assert_eq!(env_var(&env, "SERVER_PROTOCOL"), Some("HTTP/1.1"));
    assert_eq!(env_var(&env, "REMOTE_ADDR"), Some("127.0.0.1"));

    let body = random_bytes(300_000, 11);
    let env = fetch_env(stack, "/app/env", Some(&body), false);
    assert_eq!(env_var(&env, "REQUEST_METHOD"), Some("POST"));
    assert_eq!(env_var(&env, "CONTENT_LENGTH"), Some("300000"));

    let env = fetch_env(stack, "/app/env", Some(&body), true);
    assert_eq!(
        env_var(&env, "CONTENT_LENGTH"),
        None,
        "Apache streams a chunked upload without CONTENT_LENGTH"
    );
    assert_eq!(env_var(&env, "HTTP_TRANSFER_ENCODING"), Some("chunked"));
}

fn run(label: &str, unix: bool, reuse: bool) {
    let stack = apache_stack(label, unix, reuse);
    check_common(&stack, "/app", MIB);
    check_apache_env(&stack);
    for _ in 0..20 {
        check_hello(&stack, "/app");
    }
    check_idle_backend_conns(&stack, reuse);
    if reuse {
        check_echo(&stack, "/app", 200_000, false);
        check_hello(&stack, "/app");
    }
}

#[test]
fn apache_tcp() {
    run("apache-tcp", false, false);
}

#[test]
fn apache_tcp_enablereuse() {
    run("apache-tcp-reuse", false, true);
}

#[test]
fn apache_unix_enablereuse() {
    // `ProxyPass /app/ unix:/path|fcgi://localhost/app/`; the engine's socket is made 0666.
    run("apache-unix-reuse", true, true);
}
