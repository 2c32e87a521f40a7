//! The scrapes of one engine kept for the windows and the sparkline, started over when the
//! engine restarts.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::rate::{per_second, WorkerWindow};
use crate::reset::{self, Reset};
use crate::snapshot::EngineSnapshot;

/// One successful scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Scrape {
    /// When it was taken (monotonic clock).
    pub at: Instant,
    /// When it was taken, seconds since the Unix epoch (for the uptime).
    pub wall: f64,
    /// What it said.
    pub snapshot: EngineSnapshot,
}

/// Which workers a figure is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Every worker summed.
    All,
    /// One worker.
    Worker(u32),
}

/// Most scrapes kept per engine: memory stays bounded whatever the interval and the number of
/// workers.
pub const MAX_SCRAPES: usize = 1024;

/// The newest scrapes, never thinned: the sparkline and the short windows see every scrape.
pub const RECENT_SCRAPES: usize = 512;

/// The scrapes of one engine, oldest first, spanning at most `retain` (plus one older scrape,
/// so a window as long as `retain` has a start). Past [`MAX_SCRAPES`] the scrapes older than the
/// newest [`RECENT_SCRAPES`] are thinned to an even spacing, so long windows keep a start at a
/// coarser resolution (a window starts at the newest kept scrape at least its length back, and
/// its rates divide by the time actually covered).
#[derive(Debug, Clone)]
pub struct History {
    scrapes: VecDeque<Scrape>,
    retain: Duration,
}

impl History {
    /// An empty history keeping `retain` worth of scrapes.
    pub fn new(retain: Duration) -> Self {
        History {
            scrapes: VecDeque::new(),
            retain,
        }
    }

    /// Adds a scrape. When its counters do not continue the previous scrape's (the engine
    /// restarted), the history starts over from it and the reason is returned.
    pub fn push(&mut self, scrape: Scrape) -> Option<Reset> {
        let reset = self
            .scrapes
            .back()
            .and_then(|last| reset::detect(&last.snapshot, &scrape.snapshot));
        if reset.is_some() {
            self.scrapes.clear();
        }
        let cutoff = scrape.at.checked_sub(self.retain);
        self.scrapes.push_back(scrape);
        if let Some(cutoff) = cutoff {
            while self.scrapes.len() > 2 && self.scrapes[1].at <= cutoff {
                self.scrapes.pop_front();
            }
        }
        if self.scrapes.len() > MAX_SCRAPES {
            self.thin();
        }
        reset
    }

    /// Drops older scrapes (all but the newest [`RECENT_SCRAPES`]) that follow the previous
    /// kept one by less than `retain / (MAX_SCRAPES - RECENT_SCRAPES - 2)`: the older part then
    /// holds evenly spread scrapes, and fewer than its share of [`MAX_SCRAPES`].
    fn thin(&mut self) {
        let slots = (MAX_SCRAPES - RECENT_SCRAPES - 2) as u32;
        let spacing = self.retain / slots;
        let old = self.scrapes.len().saturating_sub(RECENT_SCRAPES);
        let mut last: Option<Instant> = None;
        self.scrapes = std::mem::take(&mut self.scrapes)
            .into_iter()
            .enumerate()
            .filter(|(i, s)| {
                let keep = *i >= old || last.is_none_or(|l| s.at.duration_since(l) >= spacing);
                if keep {
                    last = Some(s.at);
                }
                keep
            })
            .map(|(_, s)| s)
            .collect();
    }

    /// The newest scrape.
    pub fn latest(&self) -> Option<&Scrape> {
        self.scrapes.back()
    }

    /// Scrapes kept.
    pub fn len(&self) -> usize {
        self.scrapes.len()
    }

    /// Whether no scrape is kept.
    pub fn is_empty(&self) -> bool {
        self.scrapes.is_empty()
    }

    /// The window ending at the newest scrape and starting at the newest scrape at least
    /// `window` older (or the oldest kept, while the history is shorter than `window`).
    /// `None` before two scrapes.
    pub fn window(&self, window: Duration) -> Option<(&Scrape, &Scrape)> {
        let end = self.scrapes.back()?;
        if self.scrapes.len() < 2 {
            return None;
        }
        let start = match end.at.checked_sub(window) {
            Some(from) => self
                .scrapes
                .iter()
                .rev()
                .skip(1)
                .find(|s| s.at <= from)
                .unwrap_or(&self.scrapes[0]),
            None => &self.scrapes[0],
        };
        Some((start, end))
    }

    /// The figures of `selection` over `window`: `None` before two scrapes, or when the
    /// selected worker is not in both.
    pub fn worker_window(&self, window: Duration, selection: Selection) -> Option<WorkerWindow> {
        let (start, end) = self.window(window)?;
        let seconds = end.at.duration_since(start.at).as_secs_f64();
        match selection {
            Selection::All => {
                WorkerWindow::between(&start.snapshot.total(), &end.snapshot.total(), seconds)
            }
            Selection::Worker(id) => WorkerWindow::between(
                start.snapshot.workers.get(&id)?,
                end.snapshot.workers.get(&id)?,
                seconds,
            ),
        }
    }

    /// Process CPU use over `window`, in cores (1.0 = one core busy).
    pub fn cpu_cores(&self, window: Duration) -> Option<f64> {
        let (start, end) = self.window(window)?;
        let used = end.snapshot.process.cpu_seconds? - start.snapshot.process.cpu_seconds?;
        per_second(used, end.at.duration_since(start.at).as_secs_f64()).filter(|c| *c >= 0.0)
    }

    /// Requests per second of `selection` between each pair of consecutive scrapes, oldest
    /// first, each with the length of time it covers.
    pub fn rps_series(&self, selection: Selection) -> Vec<(Duration, f64)> {
        let total = |s: &Scrape| match selection {
            Selection::All => Some(s.snapshot.total().requests_total()),
            Selection::Worker(id) => s.snapshot.workers.get(&id).map(|w| w.requests_total()),
        };
        self.scrapes
            .iter()
            .zip(self.scrapes.iter().skip(1))
            .filter_map(|(a, b)| {
                let increase = total(b)? - total(a)?;
                let span = b.at.duration_since(a.at);
                let rate = per_second(increase, span.as_secs_f64())?;
                Some((span, rate.max(0.0)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Histogram;
    use crate::snapshot::WorkerSnapshot;

    fn scrape(base: Instant, secs: u64, requests: f64) -> Scrape {
        let mut snapshot = EngineSnapshot::default();
        for id in 0..2 {
            let mut w = WorkerSnapshot::default();
            w.requests[1] = requests;
            w.duration = Histogram::from_buckets(
                vec![(0.001, requests), (f64::INFINITY, requests)],
                0.0,
                requests,
            );
            snapshot.workers.insert(id, w);
        }
        Scrape {
            at: base + Duration::from_secs(secs),
            wall: secs as f64,
            snapshot,
        }
    }

    #[test]
    fn windows_pick_the_scrape_window_seconds_back() {
        let base = Instant::now();
        let mut h = History::new(Duration::from_secs(60));
        assert!(h
            .worker_window(Duration::from_secs(10), Selection::All)
            .is_none());
        for t in 0..=30 {
            // Ten requests per second per worker.
            assert_eq!(h.push(scrape(base, t, 10.0 * t as f64)), None);
        }
        assert!(!h.is_empty());
        let (start, end) = h.window(Duration::from_secs(10)).unwrap();
        assert_eq!(end.at.duration_since(start.at), Duration::from_secs(10));
        let all = h
            .worker_window(Duration::from_secs(10), Selection::All)
            .unwrap();
        assert_eq!(all.rps(), 20.0);
        let one = h
            .worker_window(Duration::from_secs(10), Selection::Worker(1))
            .unwrap();
        assert_eq!(one.rps(), 10.0);
        assert!(h
            .worker_window(Duration::from_secs(10), Selection::Worker(7))
            .is_none());
        // A window longer than the history uses all of it.
        let (start, _) = h.window(Duration::from_secs(600)).unwrap();
        assert_eq!(start.at, base);
        let series = h.rps_series(Selection::All);
        assert_eq!(series.len(), 30);
        assert!(series
            .iter()
            .all(|(d, r)| *r == 20.0 && *d == Duration::from_secs(1)));
    }

    #[test]
    fn old_scrapes_are_dropped() {
        let base = Instant::now();
        let mut h = History::new(Duration::from_secs(5));
        for t in 0..100 {
            h.push(scrape(base, t, t as f64));
        }
        assert!(h.len() <= 7, "{}", h.len());
        let (start, end) = h.window(Duration::from_secs(5)).unwrap();
        assert_eq!(end.at.duration_since(start.at), Duration::from_secs(5));
    }

    #[test]
    fn a_long_history_is_thinned_but_keeps_its_windows() {
        let base = Instant::now();
        let mut h = History::new(Duration::from_secs(3600));
        for t in 0..5000 {
            h.push(scrape(base, t, 10.0 * t as f64));
        }
        assert!(h.len() <= MAX_SCRAPES, "{}", h.len());
        // Recent scrapes are all there: short windows are exact.
        let (start, end) = h.window(Duration::from_secs(10)).unwrap();
        assert_eq!(end.at.duration_since(start.at), Duration::from_secs(10));
        // An hour back still has a start: the newest kept scrape at least an hour old, at most
        // one thinned spacing (3600 s / 510) more, and the rate is right.
        let (start, end) = h.window(Duration::from_secs(3600)).unwrap();
        let span = end.at.duration_since(start.at);
        assert!(
            span >= Duration::from_secs(3600) && span <= Duration::from_secs(3608),
            "{span:?}"
        );
        let w = h
            .worker_window(Duration::from_secs(3600), Selection::All)
            .unwrap();
        assert!((w.rps() - 20.0).abs() < 1e-9, "{}", w.rps());
        assert!(h
            .rps_series(Selection::All)
            .iter()
            .all(|(_, r)| (*r - 20.0).abs() < 1e-9));
    }

    #[test]
    fn a_restart_starts_the_history_over() {
        let base = Instant::now();
        let mut h = History::new(Duration::from_secs(60));
        h.push(scrape(base, 0, 0.0));
        h.push(scrape(base, 1, 1000.0));
        let reset = h.push(scrape(base, 2, 3.0));
        assert!(matches!(reset, Some(Reset::CounterDecreased { .. })));
        assert_eq!(h.len(), 1);
        // No window, so no nonsense rate, until the next scrape.
        assert!(h
            .worker_window(Duration::from_secs(10), Selection::All)
            .is_none());
        h.push(scrape(base, 3, 13.0));
        let w = h
            .worker_window(Duration::from_secs(10), Selection::All)
            .unwrap();
        assert_eq!(w.rps(), 20.0);
    }
}
