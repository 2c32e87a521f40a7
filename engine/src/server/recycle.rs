//! `--max-requests`: the request budget of one worker process.
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
