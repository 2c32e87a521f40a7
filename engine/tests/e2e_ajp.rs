//! End to end over AJP13: lighttpd mod_ajp13 and Apache httpd mod_proxy_ajp, each in front of
//! `ringfast --ajp ADDR --app diag` on loopback.
//!
//! Each drives hello, a 1 MiB POST echo (byte-exact), a chunked POST sent by curl, `/env` and a
//! 5 MiB stream. Apache runs with `secret=` matching `--ajp-secret`; a second ProxyPass worker
//! with another secret must be refused with 403. Apache keeps its AJP connections pooled: many
//! sequential requests go over far fewer engine connections.

mod support;

use std::collections::HashSet;

use support::*;

const SECRET: &str = "s3cret-ringfast";

/// The engine serving the `diag` app over AJP on a loopback port (with `--ajp-secret` when
/// given), and the front end `start` builds for it.
fn ajp_stack(
    label: &str,
    secret: Option<&str>,
    start: impl FnOnce(&TempDir, Backend) -> FrontEnd,
) -> Stack {
    let extra: Vec<&str> = secret
        .map(|s| ["--ajp-secret", s])
        .into_iter()
        .flatten()
        .collect();
    Stack::loopback(label, Proto::Ajp, &extra, start)
}

/// Apache `/env`: REQUEST_METHOD, QUERY_STRING and the path as the engine derives it from the AJP
/// request URI (PATH_INFO = the whole path, SCRIPT_NAME empty).
fn check_apache_env(stack: &Stack) {
    let kind = stack.front.kind;
    let env = fetch_env(stack, "/app/sub/env?a=1&b=two%20words", None, false);
    assert_eq!(
        env_var(&env, "REQUEST_METHOD"),
        Some("GET"),
        "{kind}: {env:?}"
    );
    assert_eq!(
        env_var(&env, "QUERY_STRING"),
        Some("a=1&b=two%20words"),
        "{kind}: {env:?}"
    );
    assert_eq!(
        env_var(&env, "REMOTE_ADDR"),
        Some("127.0.0.1"),
        "{kind}: {env:?}"
    );
    assert_eq!(env_var(&env, "PATH_INFO"), Some("/app/sub/env"), "{env:?}");
    assert_eq!(env_var(&env, "SCRIPT_NAME"), Some(""), "{env:?}");
    assert_eq!(
        env_var(&env, "REQUEST_URI"),
        Some("/app/sub/env?a=1&b=two%20words"),
        "{env:?}"
    );

    let body = random_bytes(300_000, 19);
    let env = fetch_env(stack, "/app/env", Some(&body), false);
    assert_eq!(
        env_var(&env, "REQUEST_METHOD"),
        Some("POST"),
        "{kind}: {env:?}"
    );
    assert_eq!(
        env_var(&env, "CONTENT_LENGTH"),
        Some("300000"),
        "{kind}: {env:?}"
    );
}

/// Local ports of the ESTABLISHED loopback connections whose remote end is `port`.
fn client_ports_to(port: u16) -> HashSet<u16> {
    let mut ports = HashSet::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 4 || cols[3] != "01" {
                continue;
            }
            let port_of = |c: &str| {
                c.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            if port_of(cols[2]) == Some(port) {
                if let Some(local) = port_of(cols[1]) {
                    ports.insert(local);
                }
            }
        }
    }
    ports
}

#[test]
fn lighttpd_ajp13() {
    // lighttpd 1.4.69 splits the path at the first segment after a prefix mount (the rest becomes
    // PATH_INFO, even for a mount of `/`) and mod_ajp13 sends only the part before as the AJP
    // request URI: `/app/sub/hello` reaches the backend as `/app` (seen on the wire). So it is
    // mounted at `/` and driven with single-segment paths (`/hello`, `/echo`, `/env`, ...).
    let stack = ajp_stack("lighttpd-ajp", None, |dir, backend| {
        Lighttpd::new(backend).mount("/").start(dir)
    });
    check_hello(&stack, "");
    check_echo(&stack, "", MIB, false);
    // lighttpd buffers a chunked upload and sends it with its Content-Length.
    check_echo(&stack, "", MIB, true);
    check_echo(&stack, "", 0, false);
    check_stream(&stack, "", 5 * MIB, 65536);
    check_stream(&stack, "", 100_000, 1000);

    let env = fetch_env(&stack, "/env?a=1&b=two%20words", None, false);
    assert_eq!(env_var(&env, "REQUEST_METHOD"), Some("GET"), "{env:?}");
    assert_eq!(
        env_var(&env, "QUERY_STRING"),
        Some("a=1&b=two%20words"),
        "{env:?}"
    );
    assert_eq!(env_var(&env, "PATH_INFO"), Some("/env"), "{env:?}");
    let body = random_bytes(300_000, 23);
    let env = fetch_env(&stack, "/env", Some(&body), true);
    assert_eq!(env_var(&env, "REQUEST_METHOD"), Some("POST"), "{env:?}");
    assert_eq!(env_var(&env, "CONTENT_LENGTH"), Some("300000"), "{env:?}");
    for _ in 0..10 {
        check_hello(&stack, "");
    }
}

fn apache_ajp_stack(label: &str) -> Stack {
    ajp_stack(label, Some(SECRET), |dir, backend| {
        let port = backend.addr.port().expect("tcp");
        let mut conf = Apache::new(backend).secret(SECRET);
        // A separate worker (another host spelling, so Apache does not merge it with the main
        // one and reuse its secret) with the wrong secret.
        conf.extra.push(format!(
            "ProxyPass \"/bad/\" \"ajp://localhost:{port}{MOUNT}/\" secret=wrong-secret"
        ));
        conf.start(dir)
    })
}

#[test]
fn apache_ajp_secret() {
    let stack = apache_ajp_stack("apache-ajp");
    // Hello, 1 MiB echo, 1 MiB chunked echo (mod_proxy_ajp streams it), 5 MiB stream, 404, 418.
    check_common(&stack, "/app", MIB);
    check_apache_env(&stack);
}

#[test]
fn apache_ajp_wrong_secret_is_refused() {
    let stack = apache_ajp_stack("apache-ajp-bad");
    check_hello(&stack, "/app");
    let r = stack.curl("/bad/hello").run();
    assert_eq!(r.status, 403, "wrong AJP secret: {r:?}");
    assert_ne!(r.text(), "Hello, World!");
    // The engine keeps serving the right secret afterwards.
    check_hello(&stack, "/app");
}

#[test]
fn apache_ajp_connection_reuse() {
    let stack = apache_ajp_stack("apache-ajp-reuse");
    let port = stack.engine.addr().port().expect("tcp");
    let mut seen = HashSet::new();
    for i in 0..20 {
        check_hello(&stack, "/app");
        let now = client_ports_to(port);
        assert!(
            !now.is_empty(),
            "request {i}: Apache closed its AJP connection after the response"
        );
        seen.extend(now);
    }
    // Large bodies both ways on the pooled connections too.
    check_echo(&stack, "/app", 200_000, false);
    check_hello(&stack, "/app");
    seen.extend(client_ports_to(port));
    assert!(
        seen.len() < 10,
        "22 sequential requests used {} AJP connections: {seen:?}",
        seen.len()
    );
}
