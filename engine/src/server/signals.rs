//! Signals of a process that serves: SIGTERM and SIGINT stop gracefully (a second SIGINT exits
//! at once), and SIGHUP, which would otherwise kill the process, is logged and ignored.
//!
//! A reload needs a supervisor (`--processes N`, `--touch-reload`, `--max-requests`: see
//! `prefork.rs`), which handles SIGHUP itself and starts new worker processes. A single process
//! cannot load a new application while it serves, so SIGHUP there says so in the log and the
//! server keeps serving. A worker process under a supervisor ignores SIGHUP too (it arrives there
//! when sent to the whole process group, and the supervisor reloads).

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::{Server, StopHandle};

/// Exit status when a second SIGINT cuts the graceful shutdown short (128 + SIGINT).
pub const FORCED_EXIT_STATUS: i32 = 130;

/// What this process is, for the SIGHUP message.
#[derive(Debug, Clone, Copy)]
enum Role {
    /// A server without a supervisor.
    Single,
    /// A worker process forked by the supervisor with this pid.
    WorkerProcess { supervisor: u32 },
}

/// Starts a thread that turns signals into a graceful stop (and a second SIGINT into an
/// immediate exit); SIGHUP is logged and ignored, as a process without a supervisor cannot
/// reload.
pub fn install(stop: StopHandle) -> std::io::Result<()> {
    install_as(stop, Role::Single)
}

impl Server {
    /// [`install`] for this server: in a worker process forked by the supervisor, SIGHUP's log
    /// line names the supervisor to send it to.
    pub fn install_signals(&self) -> std::io::Result<()> {
        let role = match self.child {
            Some(_) => Role::WorkerProcess {
                // SAFETY: getppid has no preconditions.
                supervisor: unsafe { libc::getppid() } as u32,
            },
            None => Role::Single,
        };
        install_as(self.stop_handle(), role)
    }
}

fn install_as(stop: StopHandle, role: Role) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("ringfast-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    on_sighup(role);
                    continue;
                }
                if stop.is_stopped() && sig == SIGINT {
                    tracing::warn!("second SIGINT: exiting without waiting for requests");
                    std::process::exit(FORCED_EXIT_STATUS);
                }
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                tracing::info!(
                    signal = name,
                    "stopping: no new connections, finishing requests"
                );
                stop.stop();
            }
        })?;
    Ok(())
}

fn on_sighup(role: Role) {
    match role {
        Role::Single => tracing::warn!(
            "SIGHUP: cannot reload without a supervisor; still serving the application loaded at \
             start (run with --processes N or --touch-reload FILE to reload on SIGHUP)"
        ),
        Role::WorkerProcess { supervisor } => tracing::info!(
            supervisor,
            "SIGHUP to a worker process: ignored (send it to the supervisor to reload)"
        ),
    }
}
