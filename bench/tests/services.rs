//! The harness's service layer against real servers: nginx (`return 200`, and in front of the
//! floor over a Unix socket) started from the generated configs, answered over HTTP, and stopped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use bench::cli::{Options, Plan};
use bench::contender::catalog;
use bench::endpoint::Endpoint;
use bench::services::{layout, Running, TempDir};
use bench::tools::{build_floor, Tools};
use clap::Parser;

fn http_get(ep: &Endpoint) -> String {
    let Endpoint::Tcp(addr) = ep else {
        panic!("nginx listens on TCP")
    };
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn nginx_return_200_and_nginx_in_front_of_the_floor() {
    if !Path::new("/usr/sbin/nginx").exists() || !Path::new("/usr/bin/gcc").exists() {
        eprintln!("nginx or gcc missing (scripts/test.sh installs them): skipped");
        return;
    }
    let work = TempDir::new("services-test", false).unwrap();
    let tools = Tools {
        nginx: Some("/usr/sbin/nginx".into()),
        floor: Some(build_floor(work.path()).unwrap()),
        ..Tools::default()
    };
    let plan = Plan::from_options(&Options::parse_from(["ringfast-bench", "--quick"])).unwrap();
    for name in ["nginx return 200", "nginx > floor fcgi unix"] {
        let c = catalog().into_iter().find(|c| c.name == name).unwrap();
        let dir = TempDir::new("services-test-c", false).unwrap();
        let l = layout(&c, &tools, &plan, dir.path()).unwrap();
        let mut running = Running::start(&l, dir.path(), None).unwrap();
        let answer = http_get(&l.target);
        assert!(answer.starts_with("HTTP/1.1 200"), "{name}: {answer}");
        assert!(answer.ends_with("Hello, World!"), "{name}: {answer}");
        running.check_alive().unwrap();
        let roots = running.roots();
        assert_eq!(roots.len(), if c.via_nginx { 2 } else { 1 });
        running.stop();
        std::thread::sleep(Duration::from_millis(100));
        assert!(roots.iter().all(|&p| !alive(p)), "{name}: stopped");
    }
}

#[test]
fn idle_connections_to_the_floor_stay_open_and_cost_memory() {
    if !Path::new("/usr/bin/gcc").exists() {
        eprintln!("gcc missing (scripts/test.sh installs it): skipped");
        return;
    }
    let n = 300;
    let limit = bench::idle::raise_nofile(n as u64 + bench::idle::FD_MARGIN).unwrap();
    assert!(limit > n as u64, "RLIMIT_NOFILE {limit}");
    let work = TempDir::new("idle-test", false).unwrap();
    let tools = Tools {
        floor: Some(build_floor(work.path()).unwrap()),
        ..Tools::default()
    };
    let plan = Plan::from_options(&Options::parse_from(["ringfast-bench", "--quick"])).unwrap();
    let rows = bench::idle::contenders(&["idle floor".to_string()], &[]);
    assert_eq!(rows.len(), 1);
    let rec = bench::idle::measure(&rows[0], &tools, &plan, None, n);
    assert_eq!(rec.error, None, "{rec:?}");
    assert_eq!((rec.connections, rec.closed_by_server), (n, 0));
    // The floor allocates a 16 KiB input buffer per connection and touches its first page.
    let kib = rec.rss_kib_per_conn().unwrap();
    assert!(
        kib > 1.0 && kib < 100.0,
        "{kib} KiB per connection: {rec:?}"
    );
}
