//! `--user`, `--group` and `--socket-owner` on the real binary, as root: the listeners are
//! bound and the socket file created as root, then the process that loads the application
//! (the server itself, or each worker process under a supervisor) runs as `nobody`, with no
//! supplementary groups, while the supervisor stays root. Running as root without `--user` is
//! logged. Checked through /proc/PID/status.

mod metrics_support;
mod support;

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use support::{wait_until, Addr, Engine, TempDir};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The uid, gid and supplementary groups of a process, from /proc/PID/status.
fn credentials(pid: u32) -> (String, String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    (field("Uid:"), field("Gid:"), field("Groups:"))
}

/// A FastCGI GET of /hello over a Unix socket; the response as text.
fn hello_over_unix(path: &std::path::Path) -> String {
    let mut s = UnixStream::connect(path).unwrap();
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
    s.write_all(&req).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

fn start(dir: &TempDir, sock: &Addr, extra: &[&str]) -> Engine {
    let mut args: Vec<String> = [
        "--fastcgi",
        &sock.to_arg(),
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
    Engine::start(dir, &args, std::slice::from_ref(sock))
}

#[test]
fn a_single_process_binds_as_root_then_serves_as_nobody() {
    if !is_root() {
        eprintln!("skipped: needs root (the project's tests and CI run as root)");
        return;
    }
    let dir = TempDir::new("privileges-single");
    let sock = Addr::unix(&dir, "app.sock");
    let Addr::Unix(path) = &sock else {
        unreachable!()
    };
    let mut engine = start(
        &dir,
        &sock,
        &[
            "--user",
            "nobody",
            "--socket-owner",
            "nobody:www-data",
            "--socket-mode",
            "0660",
        ],
    );
    let pid = engine.proc.pid();
    let (uid, gid, groups) = credentials(pid);
    assert_eq!(uid, "65534 65534 65534 65534", "{}", engine.proc.log());
    assert_eq!(gid, "65534 65534 65534 65534");
    assert_eq!(groups, "", "supplementary groups cleared");
    let meta = std::fs::metadata(path).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (65534, 33),
        "--socket-owner nobody:www-data"
    );
    assert_eq!(meta.mode() & 0o777, 0o660);
    assert!(hello_over_unix(path).contains("Hello, World!"));
    let log = engine.proc.log();
    assert!(log.contains("running as this user"), "{log}");
    assert!(!log.contains("running as root"), "{log}");
    engine.proc.signal(libc::SIGTERM);
    let st = engine.proc.wait_timeout(Duration::from_secs(20)).unwrap();
    assert!(st.success(), "{st:?}\n{}", engine.proc.log());
}

#[test]
fn worker_processes_run_as_the_user_and_group_and_the_supervisor_stays_root() {
    if !is_root() {
        eprintln!("skipped: needs root (the project's tests and CI run as root)");
        return;
    }
    let dir = TempDir::new("privileges-prefork");
    let sock = Addr::unix(&dir, "app.sock");
    let Addr::Unix(path) = &sock else {
        unreachable!()
    };
    let mut engine = start(
        &dir,
        &sock,
        &["--processes", "2", "--user", "nobody", "--group", "daemon"],
    );
    let sup = engine.proc.pid();
    assert!(wait_until(Duration::from_secs(20), || engine
        .proc
        .log()
        .contains("all worker processes ready")));
    assert_eq!(credentials(sup).0, "0 0 0 0", "the supervisor stays root");
    let check_workers = |what: &str| {
        let kids = support::child_pids(sup);
        assert_eq!(kids.len(), 2, "{what}: {kids:?}");
        for kid in kids {
            let (uid, gid, groups) = credentials(kid);
            assert_eq!(uid, "65534 65534 65534 65534", "{what}: worker {kid}");
            assert_eq!(gid, "1 1 1 1", "{what}: --group daemon");
            assert_eq!(groups, "", "{what}: supplementary groups cleared");
        }
    };
    check_workers("first start");
    for _ in 0..10 {
        assert!(hello_over_unix(path).contains("Hello, World!"));
    }
    // A reload's new worker processes switch too.
    let before = support::child_pids(sup);
    engine.proc.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(20), || {
            let now = support::child_pids(sup);
            engine.proc.log().contains("reload complete")
                && now.len() == 2
                && now.iter().all(|p| !before.contains(p))
        }),
        "{}",
        engine.proc.log()
    );
    check_workers("after a reload");
    assert!(hello_over_unix(path).contains("Hello, World!"));
    engine.proc.signal(libc::SIGTERM);
    let st = engine.proc.wait_timeout(Duration::from_secs(30)).unwrap();
    assert!(st.success(), "{st:?}\n{}", engine.proc.log());
    assert!(
        !path.exists(),
        "the root supervisor removes the socket file"
    );
}

#[test]
fn root_without_user_is_warned_and_unknown_names_stop_the_start() {
    if !is_root() {
        eprintln!("skipped: needs root (the project's tests and CI run as root)");
        return;
    }
    let dir = TempDir::new("privileges-warn");
    let sock = Addr::loopback();
    let mut engine = start(&dir, &sock, &[]);
    assert!(
        wait_until(Duration::from_secs(10), || engine
            .proc
            .log()
            .contains("running as root")),
        "{}",
        engine.proc.log()
    );
    // SIGTERM only once the signal handlers are installed (the workers log "listening" after).
    assert!(
        wait_until(Duration::from_secs(10), || engine
            .proc
            .log()
            .contains("listening")),
        "{}",
        engine.proc.log()
    );
    engine.proc.signal(libc::SIGTERM);
    assert!(engine
        .proc
        .wait_timeout(Duration::from_secs(20))
        .unwrap()
        .success());

    let tcp = Addr::loopback();
    for (args, wanted) in [
        (
            &["--user", "no-such-user-ringfast"][..],
            "--user \"no-such-user-ringfast\": no such user",
        ),
        (
            &["--user", "nobody", "--group", "no-such-group-ringfast"][..],
            "no such group",
        ),
        (&["--group", "daemon"][..], "--group needs --user"),
        (
            &["--socket-owner", "nobody:no-such-group-ringfast"][..],
            "--socket-owner",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ringfast"))
            .args(["--fastcgi", &tcp.to_arg(), "--metrics", "off"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(wanted),
            "{args:?}: {wanted:?} missing from {err}"
        );
        assert!(!tcp.accepts());
    }
}
