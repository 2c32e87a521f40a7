//! systemd's side of `Type=notify`, played by the test: a datagram socket named by
//! `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace) receives READY=1 once the
//! listeners serve, RELOADING=1 then READY=1 around a reload, STOPPING=1 on SIGTERM, STATUS=
//! lines, and WATCHDOG=1 when WATCHDOG_USEC is set; also under socket activation (LISTEN_FDS).

mod metrics_support;
mod support;

use std::net::{SocketAddr, TcpListener};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use metrics_support::fcgi_requests;
use support::{Proc, TempDir};

/// systemd's end: the notifications ringfast sends, one datagram each.
struct Systemd {
    socket: UnixDatagram,
    /// What `NOTIFY_SOCKET` is set to.
    target: String,
}

impl Systemd {
    fn at_path(dir: &TempDir) -> Systemd {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        Systemd {
            socket,
            target: path.to_str().unwrap().to_string(),
        }
    }

    fn abstract_name(label: &str) -> Systemd {
        let name = format!("ringfast-test-{label}-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        Systemd {
            socket,
            target: format!("@{name}"),
        }
    }

    /// The next notification, within `timeout`.
    fn next(&self, timeout: Duration) -> Option<String> {
        self.socket.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 4096];
        let n = self.socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Waits for a notification with the line `line` (skipping watchdog pings and anything
    /// else in between, which are returned).
    fn expect(&self, line: &str, engine: &Proc) -> (String, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut skipped = Vec::new();
        while Instant::now() < deadline {
            if let Some(msg) = self.next(Duration::from_millis(500)) {
                if msg.lines().any(|l| l == line) {
                    return (msg, skipped);
                }
                skipped.push(msg);
            }
        }
        panic!(
            "no {line} within 30 s; got {skipped:?}\n--- ringfast ---\n{}",
            engine.log()
        );
    }
}

fn command(systemd: &Systemd, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringfast"));
    cmd.args(["--app", "diag", "--workers", "2", "--metrics", "off"])
        .args(args)
        .env("NOTIFY_SOCKET", &systemd.target)
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID");
    cmd
}

fn serves(addr: SocketAddr) -> bool {
    let out = fcgi_requests(addr, &[("/hello", b"")]);
    String::from_utf8_lossy(&out[0]).ends_with("Hello, World!")
}

#[test]
fn a_single_process_says_ready_pings_the_watchdog_and_says_stopping() {
    let dir = TempDir::new("notify-single");
    let systemd = Systemd::at_path(&dir);
    let port = support::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut cmd = command(&systemd, &["--fastcgi", &addr.to_string()]);
    cmd.env("WATCHDOG_USEC", "400000");
    let mut engine = Proc::spawn("ringfast", cmd, dir.join("engine.log"));
    let (ready, before) = systemd.expect("READY=1", &engine);
    assert!(before.is_empty(), "READY=1 comes first: {before:?}");
    // By the time it says so, the listener serves.
    assert!(serves(addr), "{}", engine.log());
    let status = ready.lines().find(|l| l.starts_with("STATUS=")).unwrap();
    assert!(
        status.contains(&format!("fastcgi on 127.0.0.1:{port}")) && status.contains("2 worker"),
        "{status}"
    );
    // WatchdogSec=0.4s: a ping every 0.2 s.
    for _ in 0..3 {
        systemd.expect("WATCHDOG=1", &engine);
    }
    engine.signal(libc::SIGTERM);
    systemd.expect("STOPPING=1", &engine);
    let st = engine.wait_timeout(Duration::from_secs(20)).unwrap();
    assert!(st.success(), "{st:?}");
}

#[test]
fn a_supervisor_says_ready_reloading_ready_stopping_on_an_abstract_socket() {
    let dir = TempDir::new("notify-prefork");
    let systemd = Systemd::abstract_name("prefork");
    let port = support::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cmd = command(
        &systemd,
        &["--fastcgi", &addr.to_string(), "--processes", "2"],
    );
    let mut engine = Proc::spawn("ringfast", cmd, dir.join("engine.log"));
    let (ready, before) = systemd.expect("READY=1", &engine);
    assert!(before.is_empty(), "{before:?}");
    assert!(
        engine.log().contains("all worker processes ready"),
        "READY=1 only once every worker process is: {}",
        engine.log()
    );
    assert!(ready.contains("2 process(es)"), "{ready}");
    assert!(serves(addr));
    engine.signal(libc::SIGHUP);
    let (reloading, _) = systemd.expect("RELOADING=1", &engine);
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading}"
    );
    let (ready, _) = systemd.expect("READY=1", &engine);
    assert!(ready.contains("reloads 1"), "{ready}");
    assert!(engine.log().contains("reload complete"), "{}", engine.log());
    assert!(serves(addr));
    engine.signal(libc::SIGTERM);
    systemd.expect("STOPPING=1", &engine);
    let st = engine.wait_timeout(Duration::from_secs(30)).unwrap();
    assert!(st.success(), "{st:?}");
}

#[test]
fn socket_activation_with_notify() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let dir = TempDir::new("notify-activation");
    let systemd = Systemd::at_path(&dir);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fd = listener.as_raw_fd();
    // As systemd starts a socket-activated Type=notify service: the socket as descriptor 3,
    // LISTEN_FDS=1, LISTEN_PID = the service's pid (`exec` keeps the shell's), NOTIFY_SOCKET.
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_ringfast"))
        .args([
            "--app",
            "diag",
            "--workers",
            "2",
            "--metrics",
            "off",
            "--processes",
            "2",
        ])
        .env("NOTIFY_SOCKET", &systemd.target)
        .env_remove("WATCHDOG_USEC");
    // SAFETY: dup2/fcntl only, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let rc = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut engine = Proc::spawn("ringfast", cmd, dir.join("engine.log"));
    drop(listener);
    let (ready, _) = systemd.expect("READY=1", &engine);
    assert!(ready.contains("fastcgi on fd:3"), "{ready}");
    for _ in 0..10 {
        assert!(serves(addr), "{}", engine.log());
    }
    engine.signal(libc::SIGTERM);
    systemd.expect("STOPPING=1", &engine);
    let st = engine.wait_timeout(Duration::from_secs(30)).unwrap();
    assert!(st.success(), "{st:?}");
}
