//! The supervisor of the real `ringfast` binary: `--processes N` worker processes sharing its
//! TCP and Unix listeners, `--max-requests` recycling, `--touch-reload` and SIGHUP reloads,
//! `--pidfile`. Requests are served by every process; `/metrics` merges the processes' pages
//! with unique worker labels and exact counts; a killed worker process is replaced; a reload
//! lets in-flight requests finish and refuses nothing; SIGTERM stops them all and exits 0,
//! removing the Unix socket and the pidfile.

mod metrics_support;
mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use metrics_support::{fcgi_requests, promtool_check, samples, scrape, sum};
use support::{free_port, wait_until, Addr, Engine, TempDir};

fn start(dir: &TempDir, processes: usize) -> (Engine, SocketAddr, Addr, SocketAddr) {
    start_with(dir, processes, &[])
}

fn start_with(
    dir: &TempDir,
    processes: usize,
    extra: &[String],
) -> (Engine, SocketAddr, Addr, SocketAddr) {
    let tcp = Addr::loopback();
    let unix = Addr::unix(dir, "prefork.sock");
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let args: Vec<String> = [
        "--fastcgi",
        &tcp.to_arg(),
        "--fastcgi",
        &unix.to_arg(),
        "--processes",
        &processes.to_string(),
        "--workers",
        "2",
        "--metrics",
        &metrics.to_string(),
        "--app",
        "diag",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(extra.iter().cloned())
    .collect();
    let engine = Engine::start(dir, &args, &[tcp.clone(), unix.clone(), Addr::Tcp(metrics)]);
    let Addr::Tcp(tcp_addr) = tcp else {
        unreachable!()
    };
    (engine, tcp_addr, unix, metrics)
}

fn ok_requests(text: &str) -> f64 {
    sum(
        text,
        "ringfast_requests_total",
        &[("status_class", "2xx"), ("protocol", "fastcgi")],
    )
}

#[test]
fn worker_processes_share_the_listeners_and_metrics_are_merged() {
    let dir = TempDir::new("prefork-share");
    let (engine, tcp, _unix, metrics) = start(&dir, 3);
    assert!(
        wait_until(Duration::from_secs(10), || {
            support::child_pids(engine.proc.pid()).len() == 3
                && scrape(metrics).contains("ringfast_worker_processes 3")
        }),
        "3 worker processes: {:?}\n{}",
        support::child_pids(engine.proc.pid()),
        engine.proc.log()
    );
    let before = ok_requests(&scrape(metrics));
    // Many short connections, so the kernel spreads them over every process.
    let n = 300;
    for _ in 0..n {
        let out = fcgi_requests(tcp, &[("/hello", b"")]);
        assert!(
            String::from_utf8_lossy(&out[0]).ends_with("Hello, World!"),
            "{:?}",
            String::from_utf8_lossy(&out[0])
        );
    }
    let text = scrape(metrics);
    assert_eq!(
        ok_requests(&text) - before,
        n as f64,
        "exact count:\n{text}"
    );
    let workers: HashSet<String> = samples(&text)
        .into_iter()
        .filter(|s| s.name == "ringfast_requests_total")
        .filter_map(|s| {
            s.labels
                .iter()
                .find(|(k, _)| k == "worker")
                .map(|(_, v)| v.clone())
        })
        .collect();
    let expected: HashSet<String> = (0..6).map(|i| i.to_string()).collect();
    assert_eq!(workers, expected, "worker labels across 3x2 workers");
    assert!(text.contains("ringfast_workers 6\n"), "{text}");
    promtool_check(&text);
    assert_eq!(
        text.matches("# TYPE ringfast_requests_total counter")
            .count(),
        1,
        "one family header:\n{text}"
    );
    // Requests reached more than one process.
    let busy = (0..3)
        .filter(|p| {
            (0..2).any(|w| {
                let worker = (p * 2 + w).to_string();
                sum(
                    &text,
                    "ringfast_requests_total",
                    &[("worker", worker.as_str()), ("status_class", "2xx")],
                ) > 0.0
            })
        })
        .count();
    assert!(busy >= 2, "only {busy} process(es) served:\n{text}");
}

#[test]
fn a_killed_worker_process_is_replaced_and_sigterm_stops_everything() {
    let dir = TempDir::new("prefork-replace");
    let (mut engine, tcp, unix, metrics) = start(&dir, 2);
    let pid = engine.proc.pid();
    // Both ready (a process that dies before it is ready stops everything instead).
    assert!(wait_until(Duration::from_secs(10), || {
        support::child_pids(pid).len() == 2
            && scrape(metrics).contains("ringfast_worker_processes 2\n")
    }));
    let first = support::child_pids(pid);
    let victim = first[0];
    // SAFETY: kill with a pid this test started (a child of the engine it spawned).
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    assert!(
        wait_until(Duration::from_secs(10), || {
            let now = support::child_pids(pid);
            now.len() == 2 && !now.contains(&victim)
        }),
        "no replacement: {:?}\n{}",
        support::child_pids(pid),
        engine.proc.log()
    );
    assert!(
        wait_until(Duration::from_secs(10), || {
            let t = scrape(metrics);
            t.contains("ringfast_process_restarts_total 1\n")
                && t.contains("ringfast_worker_processes 2\n")
        }),
        "{}",
        scrape(metrics)
    );
    for _ in 0..50 {
        let out = fcgi_requests(tcp, &[("/hello", b"")]);
        assert!(String::from_utf8_lossy(&out[0]).ends_with("Hello, World!"));
    }
    assert!(engine
        .proc
        .log()
        .contains("worker process died; replacing it"));

    let kids = support::child_pids(pid);
    engine.proc.signal(libc::SIGTERM);
    let status = engine
        .proc
        .wait_timeout(Duration::from_secs(20))
        .expect("the supervisor exits after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", engine.proc.log());
    for k in kids {
        assert!(
            !std::path::Path::new(&format!("/proc/{k}")).exists()
                || std::fs::read_to_string(format!("/proc/{k}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "worker process {k} still running"
        );
    }
    let Addr::Unix(path) = unix else {
        unreachable!()
    };
    assert!(!path.exists(), "the Unix socket is removed");
}

fn hello_ok(tcp: SocketAddr) {
    let out = fcgi_requests(tcp, &[("/hello", b"")]);
    assert!(
        String::from_utf8_lossy(&out[0]).ends_with("Hello, World!"),
        "{:?}",
        String::from_utf8_lossy(&out[0])
    );
}

#[test]
fn max_requests_recycles_the_worker_process_without_failing_a_request() {
    let dir = TempDir::new("prefork-recycle");
    let extra = ["--max-requests".to_string(), "10".to_string()];
    let (engine, tcp, _unix, metrics) = start_with(&dir, 1, &extra);
    let pid = engine.proc.pid();
    let mut seen = HashSet::new();
    for _ in 0..45 {
        hello_ok(tcp);
        seen.extend(support::child_pids(pid));
    }
    assert!(
        wait_until(Duration::from_secs(10), || scrape(metrics)
            .contains("ringfast_process_recycles_total 4\n")),
        "45 requests at 10 per process: 4 recycles\n{}",
        scrape(metrics)
    );
    assert!(seen.len() >= 4, "worker processes seen: {seen:?}");
    let text = scrape(metrics);
    assert!(
        text.contains("ringfast_process_restarts_total 0\n"),
        "{text}"
    );
    assert!(engine.proc.log().contains("max-requests reached"));
}

#[test]
fn touch_reload_and_sighup_replace_the_processes_and_let_requests_finish() {
    let dir = TempDir::new("prefork-reload");
    let touch = dir.write("reload.touch", "");
    let pidfile = dir.join("ringfast.pid");
    let extra = [
        "--touch-reload".to_string(),
        touch.display().to_string(),
        "--pidfile".to_string(),
        pidfile.display().to_string(),
    ];
    let (mut engine, tcp, _unix, metrics) = start_with(&dir, 2, &extra);
    let pid = engine.proc.pid();
    assert!(wait_until(Duration::from_secs(5), || pidfile.exists()));
    let written = std::fs::read_to_string(&pidfile).expect("the pidfile is written");
    assert_eq!(written.trim(), pid.to_string());
    assert!(wait_until(Duration::from_secs(10), || scrape(metrics)
        .contains("ringfast_worker_processes 2\n")));

    for (round, reload) in ["touch", "SIGHUP"].iter().enumerate() {
        let before: HashSet<u32> = support::child_pids(pid).into_iter().collect();
        // A slow request in flight on an old process, and a stream of requests meanwhile.
        let slow = std::thread::spawn(move || fcgi_requests(tcp, &[("/sleep?ms=1500", b"")]));
        std::thread::sleep(Duration::from_millis(200));
        if *reload == "touch" {
            // Make sure the modification time differs from the one seen at start.
            std::thread::sleep(Duration::from_millis(1100));
            std::fs::write(&touch, "again").unwrap();
        } else {
            engine.proc.signal(libc::SIGHUP);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            hello_ok(tcp);
            let now: HashSet<u32> = support::child_pids(pid).into_iter().collect();
            if now.len() == 2 && now.is_disjoint(&before) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{reload}: old {before:?}, now {now:?}\n{}",
                engine.proc.log()
            );
        }
        let out = slow.join().unwrap();
        assert!(
            String::from_utf8_lossy(&out[0]).starts_with("Status: 200")
                || String::from_utf8_lossy(&out[0]).contains("200"),
            "{reload}: the in-flight request finished: {:?}",
            String::from_utf8_lossy(&out[0])
        );
        let want = format!("ringfast_reloads_total {}\n", round + 1);
        assert!(scrape(metrics).contains(&want), "{}", scrape(metrics));
    }

    engine.proc.signal(libc::SIGTERM);
    let status = engine.proc.wait_timeout(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!pidfile.exists(), "the pidfile is removed on exit");
}
