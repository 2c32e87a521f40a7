//! `--daemonize`, `--pidfile`, `--log-file` and `--umask` (the seed guide's `runfcgi` options):
//! the command returns once the listeners are bound, the daemon runs in its own session, writes
//! its pid and its log where it was told, serves, and stops on `kill $(cat PIDFILE)`.

mod metrics_support;
mod support;

use std::process::Command;
use std::time::Duration;

use metrics_support::fcgi_requests;
use support::{free_port, wait_until, TempDir};

/// Kills the daemon if the test fails before stopping it.
struct DaemonGuard(Option<i32>);

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: kill with the pid of the daemon this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[test]
fn daemonize_writes_pid_and_log_serves_and_stops_on_kill() {
    let dir = TempDir::new("daemon");
    let pidfile = dir.join("ringfast.pid");
    let log = dir.join("ringfast.log");
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_ringfast"))
        .args(["--fastcgi", &format!("127.0.0.1:{port}")])
        .args(["--app", "diag", "--workers", "1", "--metrics", "off"])
        .args(["--umask", "027", "--daemonize"])
        .arg("--pidfile")
        .arg(&pidfile)
        .arg("--log-file")
        .arg(&log)
        .output()
        .expect("run ringfast --daemonize");
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    let pid: i32 = said
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {said:?}"));
    let mut guard = DaemonGuard(Some(pid));

    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&pidfile).is_ok_and(|p| p.trim() == pid.to_string())
    }));
    assert!(alive(pid));
    // A new session: the daemon leads it (field 6 of /proc/PID/stat).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let session: i32 = after_name.split(' ').nth(3).unwrap().parse().unwrap();
    assert_eq!(session, pid, "{stat}");

    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let answer = fcgi_requests(addr, &[("/hello", b"")]);
    assert!(String::from_utf8_lossy(&answer[0]).ends_with("Hello, World!"));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("listening"), "{text}");
    assert!(!text.contains('\u{1b}'), "no colour codes in a log file");
    // The log file was created under the umask (0640 & !027).
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);

    // SAFETY: kill with the daemon's pid.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(
        wait_until(Duration::from_secs(20), || !alive(pid)),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    guard.0 = None;
    assert!(!pidfile.exists(), "the pidfile is removed on exit");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("stopped"), "{text}");
}
