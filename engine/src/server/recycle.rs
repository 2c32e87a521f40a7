//! `--max-requests`: the request budget of one worker process (plus a random share of
//! `--max-requests-jitter`), and the supervisor's checks of `--max-rss` and `--max-lifetime`.
//!
//! Every worker thread of the process counts against one shared budget, but only when the option
//! is set: without it nothing is counted and the request path touches nothing shared. When the
//! budget is spent, the process tells the supervisor (which starts its replacement at once) and
//! stops gracefully: it accepts no more, finishes what it has, and exits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::StopHandle;

/// Called once when the budget is spent, before the process stops.
pub(crate) type OnSpent = Arc<dyn Fn() + Send + Sync>;

/// The shared request budget of a worker process.
#[derive(Clone)]
pub(crate) struct Budget {
    served: Arc<AtomicU64>,
    max: u64,
    stop: StopHandle,
    on_spent: OnSpent,
}

impl Budget {
    /// A budget of `max` requests; `on_spent` runs when it is spent, then `stop` is raised.
    pub(crate) fn new(max: u64, stop: StopHandle, on_spent: OnSpent) -> Self {
        Budget {
            served: Arc::new(AtomicU64::new(0)),
            max: max.max(1),
            stop,
            on_spent,
        }
    }

    /// Counts one request started; the request that spends the budget still runs.
    pub(crate) fn count(&self) {
        let n = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        if n == self.max {
            tracing::info!(
                requests = n,
                "max-requests reached: recycling this worker process"
            );
            (self.on_spent)();
            self.stop.stop();
        }
    }
}

/// A random number from 0 to `n` (`--max-requests-jitter`), different in each process: the
/// process id and the clock, mixed (splitmix64). Spreading restarts needs no better randomness.
pub(crate) fn jitter(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut z = nanos ^ (u64::from(std::process::id()) << 32);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z % (n.saturating_add(1)).max(1)
}

/// The resident memory of process `pid` in bytes (`/proc/PID/statm`), if it can be read.
pub(crate) fn rss_bytes(pid: libc::pid_t) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096))
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("served", &self.served)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn jitter_stays_in_range_and_varies() {
        assert_eq!(jitter(0), 0);
        let seen: std::collections::HashSet<u64> = (0..200)
            .map(|_| {
                let j = jitter(10);
                assert!(j <= 10);
                j
            })
            .collect();
        assert!(seen.len() > 1, "{seen:?}");
        let _ = jitter(u64::MAX);
    }

    #[test]
    fn rss_of_this_process() {
        let rss = rss_bytes(std::process::id() as libc::pid_t).unwrap();
        assert!(rss > 1 << 20, "{rss}");
        assert_eq!(rss_bytes(-1), None);
    }

    #[test]
    fn spends_once_at_the_limit() {
        let stop = StopHandle::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let b = Budget::new(
            3,
            stop.clone(),
            Arc::new(move || {
                c.fetch_add(1, Ordering::Relaxed);
            }),
        );
        b.count();
        b.count();
        assert!(!stop.is_stopped());
        b.count();
        assert!(stop.is_stopped());
        b.count();
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}
