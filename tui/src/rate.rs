//! Windowed figures: what happened between two scrapes of one engine, as rates and as the
//! histogram of the durations observed in between.

use crate::histogram::Histogram;
use crate::snapshot::WorkerSnapshot;

/// The increase of a counter between two scrapes, `None` when it went down (a reset).
pub fn increase(before: f64, after: f64) -> Option<f64> {
    (after >= before).then_some(after - before)
}

/// Per-second rate of an increase over `seconds`; `None` for an empty or negative span.
pub fn per_second(increase: f64, seconds: f64) -> Option<f64> {
    (seconds > 0.0).then(|| increase / seconds)
}

/// One worker (or a sum of workers) over a window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerWindow {
    /// The window's length, in seconds.
    pub seconds: f64,
    /// Requests that ended in the window.
    pub requests: f64,
    /// Of those, errors (5xx or aborted).
    pub errors: f64,
    /// Protocol errors in the window.
    pub protocol_errors: f64,
    /// Durations observed in the window.
    pub durations: Histogram,
    /// Requests running at the end of the window.
    pub in_flight: f64,
    /// Connections open at the end of the window.
    pub connections_open: f64,
}

impl WorkerWindow {
    /// The figures between two scrapes of one worker `seconds` apart. `None` when a counter went
    /// down (the engine restarted) or the span is empty.
    pub fn between(before: &WorkerSnapshot, after: &WorkerSnapshot, seconds: f64) -> Option<Self> {
        if seconds <= 0.0 {
            return None;
        }
        Some(WorkerWindow {
            seconds,
            requests: increase(before.requests_total(), after.requests_total())?,
            errors: increase(before.requests_failed(), after.requests_failed())?,
            protocol_errors: increase(before.protocol_errors, after.protocol_errors)?,
            durations: after.duration.since(&before.duration)?,
            in_flight: after.in_flight,
            connections_open: after.connections_open,
        })
    }

    /// Requests per second.
    pub fn rps(&self) -> f64 {
        per_second(self.requests, self.seconds).unwrap_or(0.0)
    }

    /// Errors over requests, `None` with no requests.
    pub fn error_ratio(&self) -> Option<f64> {
        (self.requests > 0.0).then(|| self.errors / self.requests)
    }

    /// A latency quantile of the window, `None` when nothing was observed.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.durations.quantile(q)
    }

    /// Adds another window (a sum over workers or engines). Rates add; the length stays the
    /// longest of the two, so `rps` of a sum is the sum of the `rps` only for equal lengths,
    /// which is why sums over engines go through [`WorkerWindow::add_rates`].
    pub fn add(&mut self, other: &WorkerWindow) {
        self.seconds = self.seconds.max(other.seconds);
        self.requests += other.requests;
        self.errors += other.errors;
        self.protocol_errors += other.protocol_errors;
        self.durations.add(&other.durations);
        self.in_flight += other.in_flight;
        self.connections_open += other.connections_open;
    }

    /// Adds another window whose length may differ, keeping rates exact: `other`'s counts are
    /// scaled to this window's length before they are added.
    pub fn add_rates(&mut self, other: &WorkerWindow) {
        if self.seconds <= 0.0 {
            *self = other.clone();
            return;
        }
        let scale = if other.seconds > 0.0 {
            self.seconds / other.seconds
        } else {
            0.0
        };
        self.requests += other.requests * scale;
        self.errors += other.errors * scale;
        self.protocol_errors += other.protocol_errors * scale;
        self.durations.add(&other.durations);
        self.in_flight += other.in_flight;
        self.connections_open += other.connections_open;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(ok: f64, failed: f64, fast: f64, slow: f64) -> WorkerSnapshot {
        let mut w = WorkerSnapshot::default();
        w.requests[1] = ok;
        w.requests[4] = failed;
        let n = fast + slow;
        w.duration =
            Histogram::from_buckets(vec![(0.001, fast), (0.01, n), (f64::INFINITY, n)], 0.0, n);
        w
    }

    #[test]
    fn increase_and_rate() {
        assert_eq!(increase(10.0, 15.0), Some(5.0));
        assert_eq!(increase(10.0, 10.0), Some(0.0));
        assert_eq!(increase(10.0, 2.0), None);
        assert_eq!(per_second(10.0, 4.0), Some(2.5));
        assert_eq!(per_second(10.0, 0.0), None);
    }

    #[test]
    fn window_between_two_scrapes() {
        let before = worker(100.0, 0.0, 100.0, 0.0);
        let after = worker(180.0, 20.0, 100.0, 100.0);
        let w = WorkerWindow::between(&before, &after, 10.0).unwrap();
        assert_eq!(w.requests, 100.0);
        assert_eq!(w.rps(), 10.0);
        assert_eq!(w.errors, 20.0);
        assert_eq!(w.error_ratio(), Some(0.2));
        // Everything new was slow: the window's p50 is in (1 ms, 10 ms], not in the old fast
        // requests' bucket.
        let p50 = w.quantile(0.5).unwrap();
        assert!(p50 > 0.001 && p50 <= 0.01, "{p50}");
    }

    #[test]
    fn a_window_across_a_reset_is_none() {
        let before = worker(100.0, 0.0, 100.0, 0.0);
        let after = worker(5.0, 0.0, 5.0, 0.0);
        assert_eq!(WorkerWindow::between(&before, &after, 10.0), None);
        assert_eq!(WorkerWindow::between(&after, &before, 0.0), None);
    }

    #[test]
    fn an_idle_window_has_no_quantile_or_ratio() {
        let w = WorkerWindow::between(
            &worker(5.0, 0.0, 5.0, 0.0),
            &worker(5.0, 0.0, 5.0, 0.0),
            1.0,
        )
        .unwrap();
        assert_eq!(w.rps(), 0.0);
        assert_eq!(w.error_ratio(), None);
        assert_eq!(w.quantile(0.99), None);
    }

    #[test]
    fn sums_keep_rates() {
        let a = WorkerWindow {
            seconds: 10.0,
            requests: 100.0,
            ..Default::default()
        };
        let b = WorkerWindow {
            seconds: 5.0,
            requests: 100.0,
            ..Default::default()
        };
        let mut same = a.clone();
        same.add(&a);
        assert_eq!(same.rps(), 20.0);
        let mut mixed = a.clone();
        mixed.add_rates(&b);
        assert_eq!(mixed.rps(), 30.0);
        let mut empty = WorkerWindow::default();
        empty.add_rates(&b);
        assert_eq!(empty.rps(), 20.0);
    }
}
