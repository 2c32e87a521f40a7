//! End to end through HAProxy 2.6 `fcgi-app` (`path-info ^(/app)(/.*)$`), with `option keep-conn`,
//! `option mpxs-conns` + `option max-reqs 100` + `http-reuse always`: HAProxy multiplexes requests
//! from different clients over the same engine connection, with increasing request ids.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::*;

/// HAProxy 2.6 answers a chunked request body with its own 400 unless the whole body fits in its
/// first 16 KiB buffer (see the research notes), so chunked uploads stay below that.
const CHUNKED_LEN: usize = 8 * 1024;

fn haproxy_stack(label: &str, unix: bool, conf: impl FnOnce(Haproxy) -> Haproxy) -> Stack {
    Stack::fastcgi(label, unix, |dir, backend| {
        conf(Haproxy::new(backend)).start(dir)
    })
}

/// HAProxy with `path-info`: SCRIPT_NAME=/app, PATH_INFO=the rest; CONTENT_LENGTH is the real
/// length (it has the whole body before it sends).
fn check_haproxy_env(stack: &Stack) {
    let env = fetch_env(stack, "/app/sub/env?a=1&b=two%20words", None, false);
    assert_eq!(env_var(&env, "REQUEST_METHOD"), Some("GET"));
    assert_eq!(env_var(&env, "SCRIPT_NAME"), Some("/app"));
    assert_eq!(env_var(&env, "PATH_INFO"), Some("/sub/env"));
    assert_eq!(env_var(&env, "QUERY_STRING"), Some("a=1&b=two%20words"));
    assert_eq!(
        env_var(&env, "REQUEST_URI"),
        Some("/app/sub/env?a=1&b=two%20words")
    );
    assert_eq!(env_var(&env, "REMOTE_ADDR"), Some("127.0.0.1"));

    let body = random_bytes(300_000, 13);
    let env = fetch_env(stack, "/app/env", Some(&body), false);
    assert_eq!(env_var(&env, "REQUEST_METHOD"), Some("POST"));
    assert_eq!(env_var(&env, "CONTENT_LENGTH"), Some("300000"));

    let small = random_bytes(CHUNKED_LEN, 14);
    let env = fetch_env(stack, "/app/env", Some(&small), true);
    assert_eq!(env_var(&env, "REQUEST_METHOD"), Some("POST"));
}

/// ~50 concurrent requests, half of them `/sleep?ms=SLEEP_MS`, the other half hello and echo.
/// All must succeed, and the wall time must be well under the serial sum of the sleeps (they ran
/// concurrently, multiplexed over few engine connections).
fn check_concurrency(stack: &Stack) {
    const N: usize = 50;
    const SLEEP_MS: u64 = 300;
    let port = stack.engine.addr().port();
    let finished = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    let start = Instant::now();
    let results = concurrently(N + 1, |i| {
        if i == N {
            // A watcher: the peak number of connections HAProxy holds to the engine while the
            // requests run.
            while finished.load(Ordering::Relaxed) < N {
                if let Some(port) = port {
                    peak.fetch_max(established_conns_to(port), Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            return Ok(());
        }
        let echo_body = random_bytes(10_000, i as u64);
        let r = match i % 4 {
            0 | 2 => stack.curl(&format!("/app/sleep?ms={SLEEP_MS}")).run(),
            1 => stack.curl("/app/hello").run(),
            _ => stack.curl("/app/echo").post(&echo_body).run(),
        };
        finished.fetch_add(1, Ordering::Relaxed);
        if r.status != 200 {
            return Err(format!(
                "request {i}: status {} body {:?}",
                r.status,
                r.text()
            ));
        }
        if i % 4 == 3 && r.body != echo_body {
            return Err(format!("request {i}: echo body differs"));
        }
        Ok(())
    });
    let elapsed = start.elapsed();
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(errors.is_empty(), "concurrent requests failed: {errors:#?}");
    let sleepers = (0..N).filter(|i| i % 4 == 0 || i % 4 == 2).count() as u64;
    let serial = Duration::from_millis(SLEEP_MS * sleepers);
    assert!(
        elapsed < serial / 2,
        "{N} concurrent requests ({sleepers} sleeping {SLEEP_MS} ms) took {elapsed:?}, serial \
         sum {serial:?}: they did not run concurrently"
    );
    let peak = peak.load(Ordering::Relaxed);
    eprintln!("haproxy: {N} concurrent requests in {elapsed:?}, peak {peak} engine connections");
    if port.is_some() {
        // Without multiplexing HAProxy would need one connection per sleeping request.
        assert!(
            (1..sleepers as usize / 2).contains(&peak),
            "HAProxy held {peak} connections to the engine for {sleepers} concurrent slow \
             requests: they were not multiplexed"
        );
    }
}

#[test]
fn haproxy_tcp_mpxs_keep_conn() {
    let stack = haproxy_stack("haproxy-tcp-mpxs", false, |h| h.mpxs(100));
    check_common(&stack, "/app", CHUNKED_LEN);
    check_haproxy_env(&stack);
    check_concurrency(&stack);
    check_idle_backend_conns(&stack, true);
    check_hello(&stack, "/app");
}

#[test]
fn haproxy_unix_mpxs_keep_conn() {
    let stack = haproxy_stack("haproxy-unix-mpxs", true, |h| h.mpxs(100));
    check_common(&stack, "/app", CHUNKED_LEN);
    check_concurrency(&stack);
}

#[test]
fn haproxy_tcp_get_values() {
    // HAProxy asks FCGI_GET_VALUES on each new connection; the answer (FCGI_MPXS_CONNS=1,
    // FCGI_MAX_REQS) overrides the configured options.
    let stack = haproxy_stack("haproxy-tcp-gv", false, |h| h.mpxs(100).get_values());
    check_hello(&stack, "/app");
    check_echo(&stack, "/app", MIB, false);
    check_stream(&stack, "/app", 5 * MIB, 65536);
    check_concurrency(&stack);
}

#[test]
fn haproxy_tcp_no_mpxs() {
    // The default app options: keep-conn, one request per connection at a time.
    let stack = haproxy_stack("haproxy-tcp-plain", false, |h| h);
    check_common(&stack, "/app", CHUNKED_LEN);
    check_idle_backend_conns(&stack, true);
}
