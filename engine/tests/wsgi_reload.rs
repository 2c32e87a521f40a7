//! A reload must never take the site down, with a real Python application under the real
//! supervisor (`ringfast --wsgi --processes 2`):
//!
//! 1. the module is broken (it raises while being imported) and SIGHUP reloads: the new worker
//!    processes fail to load, the old generation keeps serving every request of a client that
//!    never stops (0 failed), the traceback is in the log and
//!    `ringfast_reload_failures_total` counts it;
//! 2. while the module is still broken, a killed worker process's replacement fails to load:
//!    the supervisor does not stop, the other process serves, and the slot is tried again;
//! 3. the module is fixed and SIGHUP reloads again: the new generation takes over (the new
//!    answer, new pids), with 0 failed requests.

#![cfg(feature = "wsgi")]

mod metrics_support;
mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use metrics_support::{fcgi_requests, scrape};
use support::{free_port, wait_until, Addr, Engine, Proc, TempDir};

fn app_source(answer: &str) -> String {
    format!(
        "def application(environ, start_response):\n    \
         start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
         return [b'{answer}']\n"
    )
}

const BROKEN: &str = "raise RuntimeError('broken on purpose: the deploy left a typo')\n";

fn children(pid: u32) -> HashSet<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The body of one request on a new connection.
fn answer(tcp: SocketAddr) -> String {
    let out = fcgi_requests(tcp, &[("/", b"")]);
    let text = String::from_utf8_lossy(&out[0]).into_owned();
    assert!(text.starts_with("Status: 200"), "{text}");
    text.rsplit("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A client sending one request after the other, each on a new connection, until stopped; it
/// never re-sends, and panics (failing the join) at the first request that is not answered
/// with one of `allowed`. Returns how many were answered.
struct Client {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl Client {
    fn start(tcp: SocketAddr, allowed: &'static [&'static str]) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let body = answer(tcp);
                    assert!(allowed.contains(&body.as_str()), "answer {body:?}");
                    done.fetch_add(1, Ordering::Relaxed);
                }
                done.load(Ordering::Relaxed)
            })
        };
        Client { stop, thread }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .expect("a request failed while the site should have served it")
    }
}

#[test]
fn a_reload_whose_application_fails_to_import_keeps_the_old_generation_serving() {
    let dir = TempDir::new("wsgi-reload");
    let app_dir = dir.subdir("site");
    let module = app_dir.join("site_app.py");
    std::fs::write(&module, app_source("v1")).unwrap();
    let addr = Addr::loopback();
    let Addr::Tcp(tcp) = addr else { unreachable!() };
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringfast"));
    cmd.args([
        "--fastcgi",
        &addr.to_arg(),
        "--wsgi",
        "site_app:application",
        "--chdir",
        &app_dir.display().to_string(),
        "--processes",
        "2",
        "--workers",
        "1",
        "--metrics",
        &metrics.to_string(),
    ])
    // Each import reads the source as it is now (no stale bytecode in __pycache__).
    .env("PYTHONDONTWRITEBYTECODE", "1");
    let mut proc = Proc::spawn("ringfast", cmd, dir.join("engine.log"));
    proc.wait_listening(&addr);
    proc.wait_listening(&Addr::Tcp(metrics));
    let mut engine = Engine {
        proc,
        listeners: vec![addr.clone()],
    };
    let pid = engine.proc.pid();
    assert!(
        wait_until(Duration::from_secs(20), || scrape(metrics)
            .contains("ringfast_worker_processes 2\n")),
        "{}",
        engine.proc.log()
    );
    assert_eq!(answer(tcp), "v1");
    let old = children(pid);
    assert_eq!(old.len(), 2);

    // 1. A broken deploy, then SIGHUP, under a client that never stops.
    std::fs::write(&module, BROKEN).unwrap();
    let client = Client::start(tcp, &["v1"]);
    std::thread::sleep(Duration::from_millis(200));
    engine.proc.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(20), || scrape(metrics)
            .contains("ringfast_reload_failures_total 1\n")),
        "the failed reload is counted:\n{}\n{}",
        scrape(metrics),
        engine.proc.log()
    );
    // The new processes are gone; the old ones still serve.
    assert!(
        wait_until(Duration::from_secs(10), || children(pid) == old),
        "old {old:?}, now {:?}",
        children(pid)
    );
    std::thread::sleep(Duration::from_millis(300));
    let served = client.finish();
    assert!(served > 0);
    let log = engine.proc.log();
    assert!(
        log.contains("Traceback") && log.contains("broken on purpose"),
        "the traceback is logged:\n{log}"
    );
    assert!(log.contains("reload failed"), "{log}");
    assert!(!log.contains("; stopping"), "{log}");
    let text = scrape(metrics);
    assert!(text.contains("ringfast_reloads_total 1\n"), "{text}");
    assert!(text.contains("ringfast_worker_processes 2\n"), "{text}");
    assert!(engine.proc.exit_status().is_none());

    // 2. A worker process dies while the module is broken: its replacement cannot load, the
    // supervisor keeps going and the other process serves.
    let victim = *old.iter().next().unwrap();
    // SAFETY: kill with the pid of a child of the engine this test started.
    unsafe { libc::kill(victim as libc::pid_t, libc::SIGKILL) };
    assert!(
        wait_until(Duration::from_secs(20), || engine.proc.log().contains(
            "worker process exited before it was ready (see its error above)"
        )),
        "{}",
        engine.proc.log()
    );
    for _ in 0..20 {
        assert_eq!(answer(tcp), "v1");
    }
    assert!(engine.proc.exit_status().is_none(), "{}", engine.proc.log());

    // 3. The fix, then SIGHUP: the new generation takes over everywhere.
    std::fs::write(&module, app_source("v2")).unwrap();
    let client = Client::start(tcp, &["v1", "v2"]);
    engine.proc.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(30), || {
            let now = children(pid);
            now.len() == 2
                && now.is_disjoint(&old)
                && scrape(metrics).contains("ringfast_worker_processes 2\n")
        }),
        "old {old:?}, now {:?}\n{}",
        children(pid),
        engine.proc.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    client.finish();
    for _ in 0..20 {
        assert_eq!(answer(tcp), "v2");
    }
    let text = scrape(metrics);
    assert!(text.contains("ringfast_reloads_total 2\n"), "{text}");
    assert!(
        text.contains("ringfast_reload_failures_total 1\n"),
        "{text}"
    );
    assert!(engine.proc.log().contains("reload complete"));

    engine.proc.signal(libc::SIGTERM);
    let status = engine.proc.wait_timeout(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "{status:?}\n{}", engine.proc.log());
}
