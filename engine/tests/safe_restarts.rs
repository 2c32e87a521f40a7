//! Starts and signals that must never take the site down, on the real `ringfast` binary:
//!
//! - a second ringfast on a TCP port already in use refuses to start with a clear error, whether
//!   the first one runs alone or with `--processes` (SO_REUSEPORT would otherwise let it join the
//!   first one's group and take part of its traffic), and so does one on a port another program
//!   holds with SO_REUSEPORT; the first one keeps every request;
//! - SIGHUP to a ringfast without a supervisor is logged and ignored: it keeps serving;
//! - SIGHUP to a supervisor's whole process group reloads once, and the worker processes, which
//!   get it too, ignore it instead of dying.
//!
//! A reload whose new application fails to load is tested in `wsgi_reload.rs` (feature `wsgi`).

mod metrics_support;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use metrics_support::{fcgi_requests, scrape};
use support::{free_port, wait_until, Addr, Engine, Proc, TempDir};

/// The `diag` app with two workers on FastCGI `addr`, plus `extra` (metrics off unless `extra`
/// sets them: the default port would be shared by the tests running in parallel).
fn engine_args(addr: &Addr, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--fastcgi",
        &addr.to_arg(),
        "--app",
        "diag",
        "--workers",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !extra.contains(&"--metrics") {
        args.extend(["--metrics".to_string(), "off".to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Starts a second engine that must fail: returns its log once it has exited, non-zero.
fn refused(dir: &TempDir, args: &[String]) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ringfast"));
    cmd.args(args);
    let mut second = Proc::spawn("second ringfast", cmd, dir.join("second.log"));
    let status = second
        .wait_timeout(Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "the second ringfast is still running; its output:\n{}",
                second.log()
            )
        });
    assert!(!status.success(), "{status:?}\n{}", second.log());
    second.log()
}

/// `n` requests, each on a new connection, all answered. (The second engine has exited, so
/// the first one answers them; before the fix, the second joined the port's SO_REUSEPORT group
/// and took a share of them.)
fn all_answered(tcp: SocketAddr, n: usize) {
    for _ in 0..n {
        let out = fcgi_requests(tcp, &[("/hello", b"")]);
        let text = String::from_utf8_lossy(&out[0]);
        assert!(text.ends_with("Hello, World!"), "{text}");
    }
}

#[test]
fn a_second_engine_on_a_tcp_port_in_use_refuses_to_start() {
    let dir = TempDir::new("safe-port");
    let addr = Addr::loopback();
    let Addr::Tcp(tcp) = addr else { unreachable!() };
    let _first = Engine::start(&dir, &engine_args(&addr, &[]), std::slice::from_ref(&addr));
    let log = refused(&dir, &engine_args(&addr, &[]));
    assert!(
        log.contains("cannot listen on")
            && log.contains("another process is listening on this port"),
        "a clear error:\n{log}"
    );
    all_answered(tcp, 30);

    // The same against a supervisor with two worker processes, and with --processes itself.
    let addr = Addr::loopback();
    let Addr::Tcp(tcp) = addr else { unreachable!() };
    let first = Engine::start(
        &dir,
        &engine_args(&addr, &["--processes", "2"]),
        std::slice::from_ref(&addr),
    );
    let log = refused(&dir, &engine_args(&addr, &["--processes", "2"]));
    assert!(log.contains("another process is listening"), "{log}");
    let pid = first.proc.pid();
    assert!(wait_until(Duration::from_secs(10), || support::child_pids(
        pid
    )
    .len()
        == 2));
    all_answered(tcp, 30);
}

#[test]
fn a_port_held_by_another_programs_reuseport_group_is_refused() {
    let dir = TempDir::new("safe-reuseport");
    let port = free_port();
    // Another program listening with SO_REUSEPORT, as a second ringfast used to join.
    // SAFETY: plain socket calls on a descriptor this test owns; closed at the end.
    let fd = unsafe {
        // CLOEXEC: the other tests spawn processes meanwhile, which must not inherit it.
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let one: libc::c_int = 1;
        for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::bind(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        assert_eq!(libc::listen(fd, 16), 0);
        fd
    };
    let addr = Addr::Tcp(SocketAddr::from(([127, 0, 0, 1], port)));
    let log = refused(&dir, &engine_args(&addr, &[]));
    assert!(log.contains("another process is listening"), "{log}");
    // SAFETY: closes the descriptor opened above.
    unsafe { libc::close(fd) };
    // Free again: it starts.
    let _engine = Engine::start(&dir, &engine_args(&addr, &[]), std::slice::from_ref(&addr));
    all_answered(addr_tcp(&addr), 3);
}

fn addr_tcp(addr: &Addr) -> SocketAddr {
    match addr {
        Addr::Tcp(a) => *a,
        Addr::Unix(_) => unreachable!(),
    }
}

#[test]
fn sighup_without_a_supervisor_is_logged_and_the_engine_keeps_serving() {
    let dir = TempDir::new("safe-sighup");
    let addr = Addr::loopback();
    let tcp = addr_tcp(&addr);
    let mut engine = Engine::start(&dir, &engine_args(&addr, &[]), std::slice::from_ref(&addr));
    all_answered(tcp, 3);
    for round in 1..=3 {
        engine.proc.signal(libc::SIGHUP);
        assert!(
            wait_until(Duration::from_secs(5), || engine
                .proc
                .log()
                .matches("SIGHUP: cannot reload without a supervisor")
                .count()
                == round),
            "{}",
            engine.proc.log()
        );
        assert!(engine.proc.exit_status().is_none(), "{}", engine.proc.log());
        all_answered(tcp, 5);
    }
    assert_eq!(
        engine
            .proc
            .log()
            .matches("cannot reload without a supervisor")
            .count(),
        3,
        "one line per SIGHUP"
    );
    engine.proc.signal(libc::SIGTERM);
    let status = engine.proc.wait_timeout(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn sighup_to_the_process_group_reloads_once_and_no_worker_process_dies() {
    let dir = TempDir::new("safe-sighup-group");
    let addr = Addr::loopback();
    let tcp = addr_tcp(&addr);
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let args = engine_args(
        &addr,
        &["--processes", "2", "--metrics", &metrics.to_string()],
    );
    let mut engine = Engine::start(&dir, &args, &[addr.clone(), Addr::Tcp(metrics)]);
    let pid = engine.proc.pid();
    assert!(wait_until(Duration::from_secs(10), || scrape(metrics)
        .contains("ringfast_worker_processes 2\n")));
    let before = support::child_pids(pid);
    // As a closing terminal or `kill -HUP -PGID` would: the supervisor and its worker processes.
    // SAFETY: the engine runs in a process group of its own (support::Proc).
    unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGHUP) };
    assert!(
        wait_until(Duration::from_secs(15), || {
            let now = support::child_pids(pid);
            now.len() == 2 && before.iter().all(|p| !now.contains(p))
        }),
        "the new generation took over: before {before:?}, now {:?}\n{}",
        support::child_pids(pid),
        engine.proc.log()
    );
    all_answered(tcp, 10);
    let text = scrape(metrics);
    assert!(text.contains("ringfast_reloads_total 1\n"), "{text}");
    assert!(
        text.contains("ringfast_process_restarts_total 0\n"),
        "{text}"
    );
    assert!(
        text.contains("ringfast_reload_failures_total 0\n"),
        "{text}"
    );
    let log = engine.proc.log();
    assert!(log.contains("SIGHUP to a worker process: ignored"), "{log}");
    assert!(!log.contains("worker process died"), "{log}");
    engine.proc.signal(libc::SIGTERM);
    let status = engine.proc.wait_timeout(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "{status:?}");
}
