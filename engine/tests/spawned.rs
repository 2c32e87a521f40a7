//! Spawned by the web server: the listening socket arrives as descriptor 0
//! (FCGI_LISTENSOCK_FILENO), as lighttpd's `bin-path`, Apache mod_fcgid and `cgi-fcgi -start`
//! pass it; or from systemd socket activation (`LISTEN_FDS`, descriptors from 3). The engine serves FastCGI on it when no listener is given (or with `--fastcgi fd:0`),
//! shares it between its workers, and leaves the socket file to its owner on exit. Touching the
//! `--touch-reload` file reloads a lighttpd-spawned engine without a lighttpd restart.

mod metrics_support;
mod support;

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use metrics_support::fcgi_requests;
use support::{wait_until, Addr, Backend, Curl, Lighttpd, Proc, Proto, TempDir};

fn engine_with_stdin(dir: &TempDir, stdin: OwnedFd, args: &[&str]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringfast"));
    cmd.args(["--app", "diag", "--workers", "2", "--metrics", "off"])
        .args(args);
    Proc::spawn_with_stdin("ringfast", cmd, dir.join("engine.log"), Stdio::from(stdin))
}

#[test]
fn an_inherited_tcp_socket_on_descriptor_0_is_served_by_every_worker() {
    let dir = TempDir::new("spawned-tcp");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut engine = engine_with_stdin(&dir, listener.into(), &[]);
    for _ in 0..40 {
        let out = fcgi_requests(addr, &[("/hello", b"")]);
        assert!(
            String::from_utf8_lossy(&out[0]).ends_with("Hello, World!"),
            "{:?}\n{}",
            String::from_utf8_lossy(&out[0]),
            engine.log()
        );
    }
    assert!(engine.log().contains("addr=fd:0"), "{}", engine.log());
    engine.signal(libc::SIGTERM);
    let status = engine.wait_timeout(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn an_inherited_unix_socket_is_served_and_its_file_is_left_to_its_owner() {
    let dir = TempDir::new("spawned-unix");
    let path = dir.join("app.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let mut engine = engine_with_stdin(&dir, listener.into(), &["--fastcgi", "fd:0"]);
    let addr = Addr::Unix(path.clone());
    assert!(wait_until(Duration::from_secs(10), || addr.accepts()));
    // A FastCGI request over the Unix socket, by hand: BEGIN_REQUEST, PARAMS, STDIN.
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = Vec::new();
    engine::proto::fcgi::encode_request(
        &mut req,
        &engine::proto::fcgi::RequestSpec {
            request_id: 1,
            keep_conn: false,
            params: &[
                (b"REQUEST_METHOD", b"GET"),
                (b"SCRIPT_NAME", b"/hello"),
                (b"REQUEST_URI", b"/hello"),
            ],
            body: b"",
        },
    );
    use std::io::{Read, Write};
    s.write_all(&req).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    assert!(
        answer.windows(13).any(|w| w == b"Hello, World!"),
        "{:?}\n{}",
        String::from_utf8_lossy(&answer),
        engine.log()
    );
    engine.signal(libc::SIGTERM);
    let status = engine.wait_timeout(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "{status:?}");
    assert!(path.exists(), "the socket file belongs to whoever bound it");
}

#[test]
fn naming_a_descriptor_that_is_not_a_listening_socket_fails_at_start() {
    let dir = TempDir::new("spawned-bad-fd");
    let file = std::fs::File::open("/dev/null").unwrap();
    let mut engine = engine_with_stdin(&dir, file.into(), &["--fastcgi", "fd:0"]);
    let status = engine
        .wait_timeout(Duration::from_secs(10))
        .expect("the engine exits");
    assert!(!status.success());
    assert!(engine.log().contains("fd:0"), "{}", engine.log());
}

#[test]
fn lighttpd_bin_path_spawns_the_engine_on_its_socket() {
    let dir = TempDir::new("spawned-lighttpd");
    let sock = dir.join("spawned.sock");
    let touch = dir.write("reload.touch", "");
    let command = format!(
        "{} --app diag --workers 2 --metrics off --touch-reload {}",
        env!("CARGO_BIN_EXE_ringfast"),
        touch.display()
    );
    let front = Lighttpd::new(Backend {
        proto: Proto::FastCgi,
        addr: Addr::Unix(sock.clone()),
    })
    .spawn_backend(&command)
    .start(&dir);
    for _ in 0..10 {
        let r = Curl::new(&dir, front.url("/app/hello")).run();
        assert_eq!(r.status, 200, "{}", front.diagnostics());
        assert_eq!(r.body, b"Hello, World!");
    }
    let r = Curl::new(&dir, front.url("/app/env")).run();
    assert_eq!(r.status, 200, "{}", front.diagnostics());
    let env = String::from_utf8_lossy(&r.body);
    assert!(env.contains("SCRIPT_NAME"), "{env}");

    // `touch` reloads the spawned application without restarting lighttpd (the seed guide's
    // `touch mysite.fcgi`). The engine's output goes where lighttpd's does.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&touch, "reload").unwrap();
    let reloaded = || {
        let log = front.proc.log();
        log.contains("reload: the touch-reload file changed")
            && log.matches("worker process ready").count() >= 2
    };
    assert!(
        wait_until(Duration::from_secs(15), reloaded),
        "{}",
        front.diagnostics()
    );
    for _ in 0..10 {
        let r = Curl::new(&dir, front.url("/app/hello")).run();
        assert_eq!(r.status, 200, "{}", front.diagnostics());
    }
}

#[test]
fn systemd_socket_activation_serves_the_passed_sockets() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let dir = TempDir::new("spawned-systemd");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fd = listener.as_raw_fd();
    // As systemd does: the socket as descriptor 3, LISTEN_FDS=1, LISTEN_PID = the service's pid
    // (`exec` keeps the shell's pid).
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_ringfast"))
        .args(["--app", "diag", "--workers", "2", "--metrics", "off"]);
    // SAFETY: dup2 only, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 clears close-on-exec on the copy; a socket that already is descriptor 3
            // needs it cleared by hand.
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
    for _ in 0..20 {
        let out = fcgi_requests(addr, &[("/hello", b"")]);
        assert!(
            String::from_utf8_lossy(&out[0]).ends_with("Hello, World!"),
            "{}",
            engine.log()
        );
    }
    assert!(engine.log().contains("addr=fd:3"), "{}", engine.log());
    engine.signal(libc::SIGTERM);
    let status = engine.wait_timeout(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "{status:?}");
}
