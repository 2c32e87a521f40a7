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
