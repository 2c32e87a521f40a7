//! systemd's readiness protocol (`Type=notify`, sd_notify(3)), spoken directly: one datagram
//! per message to the Unix socket named by `$NOTIFY_SOCKET` (a path, or `@name` in the abstract
//! namespace), no libsystemd.
//!
//! What ringfast says, and when (the process that says it is the one systemd started: the
//! supervisor under `--processes`, else the server itself):
//!
//! - `READY=1` with `STATUS=`: the listeners are bound and the application is loaded (every
//!   worker process ready, under a supervisor; the worker threads started, without one).
//! - `RELOADING=1` with `MONOTONIC_USEC=` at the start of a reload (SIGHUP, `--touch-reload`),
//!   then `READY=1` when the new generation serves, or when the reload failed and the old one
//!   goes on serving (its `STATUS=` says so).
//! - `STOPPING=1` when a graceful stop begins.
//! - `WATCHDOG=1` every half of `$WATCHDOG_USEC` (`WatchdogSec=`), from the loop that supervises
//!   (the supervisor's poll loop, or the thread that waits for the workers), when
//!   `$WATCHDOG_PID` is unset or names this process.
//!
//! Errors sending are logged once at debug level and otherwise ignored: a missing listener must
//! not stop the server.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// The environment variable naming systemd's notification socket.
const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Where to send notifications, and the watchdog's period.
#[derive(Debug)]
pub(crate) struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// Half of `WATCHDOG_USEC`: how often to send `WATCHDOG=1`.
    watchdog: Option<Duration>,
    last_ping: Instant,
    failed: std::sync::atomic::AtomicBool,
}

/// Why `$NOTIFY_SOCKET` cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotifyError {
    /// Neither an absolute path nor `@name`.
    #[error("NOTIFY_SOCKET={0:?} is neither an absolute path nor @name")]
    BadAddress(String),
    /// The socket could not be made, or the address is too long.
    #[error("NOTIFY_SOCKET: {0}")]
    Io(#[from] std::io::Error),
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` asks for, if it is set (with the watchdog period from
    /// `$WATCHDOG_USEC` when `$WATCHDOG_PID` is unset or this process).
    pub(crate) fn from_env() -> Result<Option<Notifier>, NotifyError> {
        let Some(target) = std::env::var_os(NOTIFY_SOCKET) else {
            return Ok(None);
        };
        let target = target.to_string_lossy().into_owned();
        if target.is_empty() {
            return Ok(None);
        }
        let watchdog = watchdog_period(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        Notifier::new(&target, watchdog).map(Some)
    }

    /// A notifier for `target` (a path or `@name`).
    pub(crate) fn new(target: &str, watchdog: Option<Duration>) -> Result<Notifier, NotifyError> {
        let addr = if let Some(name) = target.strip_prefix('@') {
            SocketAddr::from_abstract_name(name.as_bytes())?
        } else if target.starts_with('/') {
            SocketAddr::from_pathname(target)?
        } else {
            return Err(NotifyError::BadAddress(target.to_string()));
        };
        let socket = UnixDatagram::unbound()?;
        Ok(Notifier {
            socket,
            addr,
            watchdog,
            last_ping: Instant::now(),
            failed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Sends `message` (lines `NAME=value`).
    pub(crate) fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            if !self.failed.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::debug!(error = %e, "cannot notify systemd (NOTIFY_SOCKET)");
            }
        }
    }

    /// `READY=1` with a status line.
    pub(crate) fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// `RELOADING=1` with the monotonic time systemd wants with it, and a status line.
    pub(crate) fn reloading(&self, status: &str) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS={}",
            monotonic_usec(),
            one_line(status)
        ));
    }

    /// `STOPPING=1` with a status line.
    pub(crate) fn stopping(&self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }

    /// The longest the caller may wait before calling [`Notifier::ping_if_due`] again.
    pub(crate) fn next_ping_in(&self) -> Option<Duration> {
        self.watchdog
            .map(|p| p.saturating_sub(self.last_ping.elapsed()))
    }

    /// Sends `WATCHDOG=1` if half the watchdog period has passed since the last one.
    pub(crate) fn ping_if_due(&mut self) {
        let Some(period) = self.watchdog else { return };
        if self.last_ping.elapsed() >= period {
            self.last_ping = Instant::now();
            self.send("WATCHDOG=1");
        }
    }
}

/// Half of `WATCHDOG_USEC` when the watchdog is meant for `pid`.
fn watchdog_period(usec: Option<&str>, for_pid: Option<&str>, pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    if let Some(p) = for_pid {
        if p.trim().parse::<u32>().ok() != Some(pid) {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

/// A status without line breaks (each line of a notification is one assignment).
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// CLOCK_MONOTONIC in microseconds, as `MONOTONIC_USEC=` wants it.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_only_for_this_process() {
        let half = Some(Duration::from_millis(500));
        assert_eq!(watchdog_period(Some("1000000"), None, 7), half);
        assert_eq!(watchdog_period(Some("1000000"), Some("7"), 7), half);
        assert_eq!(watchdog_period(Some("1000000"), Some("8"), 7), None);
        assert_eq!(watchdog_period(Some("0"), None, 7), None);
        assert_eq!(watchdog_period(Some("x"), None, 7), None);
        assert_eq!(watchdog_period(None, None, 7), None);
    }

    #[test]
    fn messages_reach_a_path_and_an_abstract_socket() {
        let path = std::env::temp_dir().join(format!("ringfast-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(path.to_str().unwrap(), None).unwrap();
        n.ready("serving\nnow");
        let mut buf = [0u8; 256];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=serving now");
        std::fs::remove_file(&path).unwrap();

        let name = format!("ringfast-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        let mut n = Notifier::new(&format!("@{name}"), Some(Duration::ZERO)).unwrap();
        n.stopping("bye");
        n.ping_if_due();
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STOPPING=1\nSTATUS=bye");
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
        assert!(matches!(
            Notifier::new("relative", None),
            Err(NotifyError::BadAddress(_))
        ));
    }
}
