//! SIGTERM and SIGINT: the first one stops gracefully, a second SIGINT exits at once.

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::StopHandle;

/// Exit status when a second SIGINT cuts the graceful shutdown short (128 + SIGINT).
pub const FORCED_EXIT_STATUS: i32 = 130;

/// Starts a thread that turns signals into a graceful stop (and a second SIGINT into an
/// immediate exit).
pub fn install(stop: StopHandle) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("ringfast-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
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
