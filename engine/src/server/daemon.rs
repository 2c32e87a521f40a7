//! `--daemonize` and `--log-file`: the classic Unix daemon the seed guide's `runfcgi` started
//! (its `daemonize=true` default), for hosts without a service manager.
//!
//! Binding happens first, in the foreground, so an address in use or a bad socket path is
//! reported on the terminal with a non-zero status. Then the process forks: the parent prints
//! the daemon's pid and exits 0; the daemon starts a new session (no controlling terminal),
//! reads from /dev/null, writes its log to `--log-file` (or /dev/null), and rewrites the pidfile
//! with its own pid. Under systemd or another supervisor, do not daemonize.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Which side of the fork the caller is on.
#[derive(Debug, PartialEq, Eq)]
pub enum Daemonized {
    /// The original process: exit now (the daemon runs on).
    Parent {
        /// The daemon's process id.
        pid: u32,
    },
    /// The daemon: go on serving.
    Daemon,
}

/// Points stdout and stderr at `path` (appending, created 0640 if missing).
pub fn redirect_output(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)?;
    dup_onto(file.as_raw_fd(), libc::STDOUT_FILENO)?;
    dup_onto(file.as_raw_fd(), libc::STDERR_FILENO)
}

fn dup_onto(from: libc::c_int, to: libc::c_int) -> io::Result<()> {
    // SAFETY: dup2 on descriptors we own; `to` is one of the standard descriptors.
    if unsafe { libc::dup2(from, to) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Forks into the background (see the module docs). Call before any thread is started.
pub(crate) fn daemonize(log_file: Option<&Path>) -> io::Result<Daemonized> {
    // SAFETY: called while the process is single-threaded.
    let pid = unsafe { super::fork::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid > 0 {
        return Ok(Daemonized::Parent { pid: pid as u32 });
    }
    // SAFETY: setsid in the freshly forked child, which is not a process group leader.
    if unsafe { libc::setsid() } < 0 {
        return Err(io::Error::last_os_error());
    }
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    dup_onto(null.as_raw_fd(), libc::STDIN_FILENO)?;
    match log_file {
        Some(path) => redirect_output(path)?,
        None => {
            dup_onto(null.as_raw_fd(), libc::STDOUT_FILENO)?;
            dup_onto(null.as_raw_fd(), libc::STDERR_FILENO)?;
        }
    }
    Ok(Daemonized::Daemon)
}
