//! `ringfast-top` in a real pseudo-terminal, ended from outside: when the terminal goes away
//! (the pty's master side closes, as when an SSH session or a tmux session dies) it must exit
//! within a couple of seconds instead of spinning on a read that returns nothing; SIGTERM must
//! end it and restore the terminal (raw mode off, the alternate screen left).
//!
//! The dashboard watches an address where nothing listens, so it runs and retries until ended.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Enter and leave the alternate screen.
const ENTER_ALT: &[u8] = b"\x1b[?1049h";
const LEAVE_ALT: &[u8] = b"\x1b[?1049l";

/// A pseudo-terminal: the master side, kept by the test, and the slave's path.
struct Pty {
    master: OwnedFd,
    slave: String,
}

fn check(rc: libc::c_int, what: &str) {
    assert!(rc >= 0, "{what}: {}", std::io::Error::last_os_error());
}

impl Pty {
    fn open() -> Pty {
        // SAFETY: posix_openpt returns a new descriptor we own; grantpt, unlockpt, ptsname_r and
        // the window-size ioctl act on it and write into buffers we own.
        unsafe {
            let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            check(fd, "posix_openpt");
            let master = OwnedFd::from_raw_fd(fd);
            check(libc::grantpt(fd), "grantpt");
            check(libc::unlockpt(fd), "unlockpt");
            let mut name = [0 as libc::c_char; 128];
            assert_eq!(libc::ptsname_r(fd, name.as_mut_ptr(), name.len()), 0);
            let slave = std::ffi::CStr::from_ptr(name.as_ptr())
                .to_string_lossy()
                .into_owned();
            let size = libc::winsize {
                ws_row: 30,
                ws_col: 100,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            check(libc::ioctl(fd, libc::TIOCSWINSZ, &size), "TIOCSWINSZ");
            Pty { master, slave }
        }
    }

    /// Whether the terminal is in canonical (cooked) mode with echo, as a shell leaves it.
    fn cooked(&self) -> bool {
        // SAFETY: termios is plain data that tcgetattr fills.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            check(
                libc::tcgetattr(self.master.as_raw_fd(), &mut t),
                "tcgetattr",
            );
            t.c_lflag & libc::ICANON != 0 && t.c_lflag & libc::ECHO != 0
        }
    }
}

/// Everything the dashboard writes to the terminal, read on a thread (a full pty buffer would
/// block it). Dropping the reader closes the master side: the terminal goes away.
struct Screen {
    bytes: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Screen {
    fn read(master: OwnedFd) -> Screen {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (bytes, stop) = (bytes.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut file = File::from(master);
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let mut pfd = libc::pollfd {
                        fd: file.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    if unsafe { libc::poll(&mut pfd, 1, 50) } <= 0 {
                        continue;
                    }
                    match file.read(&mut buf) {
                        Ok(0) | Err(_) => std::thread::sleep(Duration::from_millis(20)),
                        Ok(n) => bytes.lock().unwrap().extend_from_slice(&buf[..n]),
                    }
                }
                // `file` is dropped here: the master side closes.
            })
        };
        Screen {
            bytes,
            stop,
            thread: Some(thread),
        }
    }

    fn contains(&self, what: &[u8]) -> bool {
        self.bytes
            .lock()
            .unwrap()
            .windows(what.len())
            .any(|w| w == what)
    }

    fn wait_for(&self, what: &[u8], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.contains(what) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Closes the master side (the terminal goes away).
    fn close(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        self.close();
    }
}

/// `ringfast-top` killed on drop if still running.
struct Top(Child);

impl Top {
    /// Starts the dashboard on the pty's slave side. With `controlling`, the slave becomes its
    /// controlling terminal in a new session (as a login shell's is), so a hang-up also sends
    /// SIGHUP; without, only reads and polls tell it the terminal is gone.
    fn start(pty: &Pty, controlling: bool) -> Top {
        // A port nothing listens on: the dashboard shows the engine unreachable and retries.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&pty.slave)
                .unwrap()
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringfast-top"));
        cmd.args(["--interval", "0.5", &format!("127.0.0.1:{port}")])
            .env("TERM", "xterm-256color")
            .stdin(Stdio::from(open()))
            .stdout(Stdio::from(open()))
            .stderr(Stdio::from(open()));
        if controlling {
            // SAFETY: setsid and ioctl are async-signal-safe; they act on the child only.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        Top(cmd.spawn().expect("start ringfast-top"))
    }

    fn exited_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// CPU time used so far (user + system), in clock ticks, from /proc.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0.id())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }
}

impl Drop for Top {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn terminal_closed_ends_it(controlling: bool) {
    let pty = Pty::open();
    let mut top = Top::start(&pty, controlling);
    let Pty { master, .. } = pty;
    let mut screen = Screen::read(master);
    assert!(
        screen.wait_for(b"UNREACHABLE", Duration::from_secs(20)),
        "the dashboard did not draw"
    );
    let before = top.cpu_ticks();
    screen.close();
    let status = top.exited_within(Duration::from_secs(2));
    if status.is_none() {
        std::thread::sleep(Duration::from_secs(1));
        panic!(
            "ringfast-top still runs 2 s after its terminal went away ({} CPU ticks in the last \
             second and more)",
            top.cpu_ticks() - before
        );
    }
    let status = status.unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_terminal_that_goes_away_ends_it() {
    // The controlling terminal of its session hangs up: SIGHUP and a hung-up terminal.
    terminal_closed_ends_it(true);
}

#[test]
fn end_of_input_ends_it_without_a_signal() {
    // Not its controlling terminal: no SIGHUP, only the terminal failing under it.
    terminal_closed_ends_it(false);
}

#[test]
fn sigterm_ends_it_and_restores_the_terminal() {
    let pty = Pty::open();
    let mut top = Top::start(&pty, true);
    // Keep a second master descriptor to read the terminal's modes while the screen is read.
    let modes = Pty {
        master: pty.master.try_clone().unwrap(),
        slave: pty.slave.clone(),
    };
    let Pty { master, .. } = pty;
    let screen = Screen::read(master);
    assert!(
        screen.wait_for(b"UNREACHABLE", Duration::from_secs(20)),
        "the dashboard did not draw"
    );
    assert!(screen.contains(ENTER_ALT));
    assert!(!modes.cooked(), "the dashboard runs in raw mode");
    // SAFETY: kill with the pid of the child this test started.
    unsafe { libc::kill(top.0.id() as libc::pid_t, libc::SIGTERM) };
    let status = top
        .exited_within(Duration::from_secs(2))
        .expect("SIGTERM ends it within 2 s");
    assert!(status.success(), "{status:?}");
    assert!(
        screen.wait_for(LEAVE_ALT, Duration::from_secs(2)),
        "the alternate screen was left"
    );
    assert!(modes.cooked(), "raw mode is off again");
}
