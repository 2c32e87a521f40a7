//! Recycling worker processes on the real binary: `--max-lifetime` and `--max-rss` (checked by
//! the supervisor every second) replace a worker process while requests keep coming, and not
//! one of them fails; `--max-requests-jitter` gives each process a budget between
//! `--max-requests` and `--max-requests` + N.

mod metrics_support;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use metrics_support::fcgi_requests;
use support::{wait_until, Addr, Engine, TempDir};

fn start(dir: &TempDir, extra: &[&str]) -> (Engine, SocketAddr) {
    let tcp = Addr::loopback();
    let mut args: Vec<String> = [
        "--fastcgi",
        &tcp.to_arg(),
        "--app",
        "diag",
        "--workers",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--metrics", "off"].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    let engine = Engine::start(dir, &args, std::slice::from_ref(&tcp));
    let Addr::Tcp(addr) = tcp else { unreachable!() };
    (engine, addr)
}

/// Requests one after the other (a new connection each) for `how_long`, each of which must be
/// answered; returns how many, and every worker process pid seen meanwhile.
fn requests_for(engine: &Engine, addr: SocketAddr, how_long: Duration) -> (usize, Vec<u32>) {
    let sup = engine.proc.pid();
    let until = Instant::now() + how_long;
    let mut served = 0;
    let mut pids = Vec::new();
    while Instant::now() < until {
        let out = fcgi_requests(addr, &[("/hello", b"")]);
        assert!(
            String::from_utf8_lossy(&out[0]).ends_with("Hello, World!"),
            "request {served}: {:?}\n{}",
            String::from_utf8_lossy(&out[0]),
            engine.proc.log()
        );
        served += 1;
        for p in support::child_pids(sup) {
            if !pids.contains(&p) {
                pids.push(p);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (served, pids)
}

fn stop(mut engine: Engine) {
    engine.proc.signal(libc::SIGTERM);
    let st = engine.proc.wait_timeout(Duration::from_secs(30)).unwrap();
    assert!(st.success(), "{st:?}\n{}", engine.proc.log());
}

#[test]
fn max_lifetime_recycles_without_failing_a_request() {
    let dir = TempDir::new("recycle-lifetime");
    let (engine, addr) = start(&dir, &["--processes", "2", "--max-lifetime", "1"]);
    let (served, pids) = requests_for(&engine, addr, Duration::from_secs(5));
    let log = engine.proc.log();
    assert!(served > 50, "{served}");
    assert!(log.contains("max-lifetime reached"), "{log}");
    assert!(
        pids.len() >= 4,
        "new worker processes replaced the old ones: {pids:?}\n{log}"
    );
    stop(engine);
}

#[test]
fn max_rss_recycles_a_process_over_the_limit_and_spares_one_under_it() {
    let dir = TempDir::new("recycle-rss");
    // Every process has more than 1 MiB resident: each is recycled about once a second.
    let (engine, addr) = start(&dir, &["--processes", "1", "--max-rss", "1"]);
    let (served, pids) = requests_for(&engine, addr, Duration::from_secs(4));
    let log = engine.proc.log();
    assert!(served > 50, "{served}");
    assert!(log.contains("max-rss passed"), "{log}");
    assert!(pids.len() >= 3, "{pids:?}\n{log}");
    stop(engine);

    // Far above what a process uses: nothing is recycled.
    let dir = TempDir::new("recycle-rss-spared");
    let (engine, addr) = start(&dir, &["--processes", "1", "--max-rss", "100000"]);
    assert!(wait_until(Duration::from_secs(10), || engine
        .proc
        .log()
        .contains("all worker processes ready")));
    let (_, pids) = requests_for(&engine, addr, Duration::from_secs(3));
    assert_eq!(pids.len(), 1, "{pids:?}\n{}", engine.proc.log());
    assert!(!engine.proc.log().contains("max-rss passed"));
    stop(engine);
}

#[test]
fn max_requests_jitter_spreads_the_budgets() {
    let dir = TempDir::new("recycle-jitter");
    let (engine, addr) = start(
        &dir,
        &[
            "--processes",
            "1",
            "--max-requests",
            "5",
            "--max-requests-jitter",
            "20",
        ],
    );
    let (served, _) = requests_for(&engine, addr, Duration::from_secs(4));
    assert!(served > 60, "{served}");
    let log = engine.proc.log();
    let budgets: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("max-requests reached"))
        .filter_map(|l| {
            let at = l.find("requests=")? + "requests=".len();
            l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(budgets.len() >= 3, "{log}");
    assert!(budgets.iter().all(|b| (5..=25).contains(b)), "{budgets:?}");
    assert!(
        budgets.iter().any(|b| *b != budgets[0]),
        "budgets differ between processes: {budgets:?}"
    );
    stop(engine);
}
