//! The terminal the dashboard reads its keys from, watched so that a terminal that goes away (a
//! closed SSH session, `tmux kill-session`) ends the dashboard.
//!
//! crossterm reads keys from standard input when it is a terminal, else from `/dev/tty`. Once
//! that terminal is hung up, every read returns 0 (end of input) or fails with EIO at once, and
//! crossterm's reader retries without end: it never returns to the caller, spins a core, and
//! never looks at the flag SIGTERM sets. So [`Input::wait`] asks the kernel first (`poll`, then
//! `FIONREAD` for the bytes waiting) and the dashboard calls crossterm only when there are bytes
//! to read. A hang-up, an error or end of input is [`Waited::Gone`]: a quit.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

/// What waiting for input found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waited {
    /// Bytes are waiting: crossterm can read them without blocking.
    Input,
    /// Nothing within the timeout, or a signal arrived (the caller checks its flags).
    Idle,
    /// The terminal is gone: hung up, closed, at end of input or failing. The reason, for a
    /// message.
    Gone(String),
}

/// The descriptor keys come from (the same one crossterm reads).
#[derive(Debug)]
pub struct Input {
    fd: RawFd,
    /// `/dev/tty` when standard input is not a terminal; kept open while watched.
    _owned: Option<File>,
}

impl Input {
    /// Standard input when it is a terminal, else `/dev/tty`, as crossterm chooses.
    pub fn open() -> io::Result<Input> {
        // SAFETY: isatty only queries the descriptor.
        if unsafe { libc::isatty(libc::STDIN_FILENO) } == 1 {
            return Ok(Input {
                fd: libc::STDIN_FILENO,
                _owned: None,
            });
        }
        let tty = File::options().read(true).open("/dev/tty")?;
        Ok(Input {
            fd: tty.as_raw_fd(),
            _owned: Some(tty),
        })
    }

    /// Watches `fd`, which the caller keeps open for as long as this lives.
    pub fn watch(fd: BorrowedFd<'_>) -> Input {
        Input {
            fd: fd.as_raw_fd(),
            _owned: None,
        }
    }

    /// Waits up to `timeout` for input.
    pub fn wait(&self, timeout: Duration) -> Waited {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(libc::c_int::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Waited::Idle
            } else {
                Waited::Gone(format!("cannot wait for the terminal: {e}"))
            };
        }
        if rc == 0 {
            return Waited::Idle;
        }
        if pfd.revents & libc::POLLNVAL != 0 {
            return Waited::Gone("the terminal is closed".into());
        }
        if pfd.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            return Waited::Gone("the terminal hung up".into());
        }
        // Readable: bytes are waiting, or it is the end of input (a read would return 0).
        let mut waiting: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int we own.
        if unsafe { libc::ioctl(self.fd, libc::FIONREAD, &mut waiting) } < 0 {
            let e = io::Error::last_os_error();
            return Waited::Gone(format!("the terminal failed: {e}"));
        }
        if waiting == 0 {
            return Waited::Gone("end of input".into());
        }
        Waited::Input
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};

    fn pipe() -> (OwnedFd, File) {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two descriptors we then own.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors are fresh and ours.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
    }

    #[test]
    fn bytes_waiting_are_input_and_nothing_is_idle() {
        let (r, mut w) = pipe();
        let input = Input::watch(r.as_fd());
        assert_eq!(input.wait(Duration::from_millis(10)), Waited::Idle);
        w.write_all(b"q").unwrap();
        assert_eq!(input.wait(Duration::from_millis(10)), Waited::Input);
    }

    #[test]
    fn end_of_input_is_gone_at_once() {
        let (r, w) = pipe();
        let input = Input::watch(r.as_fd());
        drop(w);
        let started = std::time::Instant::now();
        assert!(matches!(
            input.wait(Duration::from_secs(5)),
            Waited::Gone(_)
        ));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_closed_descriptor_is_gone() {
        // A number no test opens (a closed one could be reused by a test running meanwhile).
        let input = Input {
            fd: 1_000_000,
            _owned: None,
        };
        assert!(matches!(
            input.wait(Duration::from_millis(10)),
            Waited::Gone(_)
        ));
    }
}
