//! Per-worker metric cells: what a worker thread records into on the request path.
//!
//! Every worker owns one [`WorkerCells`] and is its only writer. A cell is an `AtomicU64` that
//! its writer bumps with a relaxed load and a relaxed store (a plain `mov` pair on x86, no locked
//! instruction, no contention), and that the metrics thread only reads, when a scrape renders
//! the page (see [`Registry::render`](super::Registry::render)). Because there is one writer,
//! load-then-store loses no update; because the reader only reads, it sees every cell at some
//! value the writer stored, never a torn one. Gauges (in flight, connections open) are cells of
//! their own that the writer adds to and subtracts from (two's complement in a `u64`).
//!
//! The duration histogram is kept here too, as cumulative-ready bucket counts, a count and a sum
//! in nanoseconds, and rendered by [`render_durations`]: recording a duration is a search over
//! [`DURATION_BUCKETS`](super::DURATION_BUCKETS) and three cell bumps, with nothing for a
//! background thread to drain.
//!
//! The single-writer rule is what the API enforces: cells are only written through
//! [`WorkerMetrics`](super::WorkerMetrics) and the guards and timers it hands out, which hold an
//! `Rc` and so never leave the worker thread that made them.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Limit, ProtocolErrorKind, StatusClass, DURATION_BUCKETS};

/// A number one thread writes and others read (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Cell(AtomicU64);

impl Cell {
    /// Adds `n` (wrapping). Only the cell's writer thread calls this.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }

    /// Subtracts `n` (wrapping: a gauge read as `i64`). Only the cell's writer thread calls this.
    #[inline]
    pub(crate) fn sub(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_sub(n), Ordering::Relaxed);
    }

    /// The value as a counter.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// The value as a gauge that went up and down.
    pub(crate) fn get_signed(&self) -> i64 {
        self.get() as i64
    }
}

/// The request duration histogram of one worker and protocol.
#[derive(Debug)]
pub(crate) struct DurationCells {
    /// Per bucket of [`DURATION_BUCKETS`] (not cumulative), then one for above the last bound.
    buckets: Box<[Cell]>,
    count: Cell,
    sum_nanos: Cell,
}

impl Default for DurationCells {
    fn default() -> Self {
        DurationCells {
            buckets: (0..=DURATION_BUCKETS.len())
                .map(|_| Cell::default())
                .collect(),
            count: Cell::default(),
            sum_nanos: Cell::default(),
        }
    }
}

impl DurationCells {
    /// Records one duration.
    #[inline]
    pub(crate) fn record(&self, d: Duration) {
        let secs = d.as_secs_f64();
        // The first bound the duration is not above; past the last, the overflow bucket.
        let i = DURATION_BUCKETS.partition_point(|&le| le < secs);
        self.buckets[i].add(1);
        self.count.add(1);
        self.sum_nanos
            .add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds this histogram's figures into `into`.
    fn read_into(&self, into: &mut DurationTotals) {
        if into.buckets.len() != self.buckets.len() {
            into.buckets = vec![0; self.buckets.len()];
        }
        for (t, c) in into.buckets.iter_mut().zip(self.buckets.iter()) {
            *t += c.get();
        }
        into.count += self.count.get();
        into.sum_nanos += self.sum_nanos.get();
    }
}

/// What one worker records for one protocol.
#[derive(Debug, Default)]
pub(crate) struct ProtocolCells {
    pub(crate) requests: [Cell; StatusClass::ALL.len()],
    pub(crate) duration: DurationCells,
    pub(crate) conns_open: Cell,
    pub(crate) conns_accepted: Cell,
    pub(crate) body_in: Cell,
    pub(crate) body_out: Cell,
    pub(crate) errors: [Cell; ProtocolErrorKind::ALL.len()],
    pub(crate) limits: [Cell; Limit::ALL.len()],
}

/// Everything one worker records.
#[derive(Debug)]
pub(crate) struct WorkerCells {
    /// The worker's index (its `worker` label).
    pub(crate) worker: usize,
    pub(crate) in_flight: Cell,
    /// Indexed by `Protocol as usize`; `None` for protocols the worker does not serve.
    pub(crate) protocols: Vec<Option<ProtocolCells>>,
}

/// A histogram's figures read from one or more workers' cells.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct DurationTotals {
    pub(crate) buckets: Vec<u64>,
    pub(crate) count: u64,
    pub(crate) sum_nanos: u64,
}

/// One protocol's figures read from one or more workers' cells.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ProtocolTotals {
    pub(crate) requests: [u64; StatusClass::ALL.len()],
    pub(crate) duration: DurationTotals,
    pub(crate) conns_open: i64,
    pub(crate) conns_accepted: u64,
    pub(crate) body_in: u64,
    pub(crate) body_out: u64,
    pub(crate) errors: [u64; ProtocolErrorKind::ALL.len()],
    pub(crate) limits: [u64; Limit::ALL.len()],
}

impl ProtocolCells {
    /// Adds these cells' values into `t`.
    pub(crate) fn read_into(&self, t: &mut ProtocolTotals) {
        for (t, c) in t.requests.iter_mut().zip(&self.requests) {
            *t += c.get();
        }
        self.duration.read_into(&mut t.duration);
        t.conns_open += self.conns_open.get_signed();
        t.conns_accepted += self.conns_accepted.get();
        t.body_in += self.body_in.get();
        t.body_out += self.body_out.get();
        for (t, c) in t.errors.iter_mut().zip(&self.errors) {
            *t += c.get();
        }
        for (t, c) in t.limits.iter_mut().zip(&self.limits) {
            *t += c.get();
        }
    }
}

/// Writes one `ringfast_request_duration_seconds` series (cumulative buckets, `+Inf`, sum and
/// count) in the Prometheus text format, with `labels` (already formatted, `k="v",...`).
pub(crate) fn render_durations(out: &mut String, name: &str, labels: &str, t: &DurationTotals) {
    let mut cumulative = 0;
    for (i, le) in DURATION_BUCKETS.iter().enumerate() {
        cumulative += t.buckets.get(i).copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", t.count);
    let sum = t.sum_nanos as f64 / 1e9;
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", t.count);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn buckets_hold_durations_at_and_below_their_bound() {
        let d = DurationCells::default();
        d.record(Duration::from_micros(10)); // exactly the first bound
        d.record(Duration::from_micros(11)); // second bucket
        d.record(Duration::from_secs(61)); // past the last bound
        let mut t = DurationTotals::default();
        d.read_into(&mut t);
        assert_eq!(t.buckets[0], 1);
        assert_eq!(t.buckets[1], 1);
        assert_eq!(t.buckets[DURATION_BUCKETS.len()], 1);
        assert_eq!(t.count, 3);
        assert_eq!(t.sum_nanos, 10_000 + 11_000 + 61_000_000_000);
        let mut out = String::new();
        render_durations(&mut out, "d", "worker=\"0\"", &t);
        assert!(out.contains("d_bucket{worker=\"0\",le=\"0.00001\"} 1\n"));
        assert!(out.contains("d_bucket{worker=\"0\",le=\"0.000025\"} 2\n"));
        assert!(out.contains("d_bucket{worker=\"0\",le=\"60\"} 2\n"));
        assert!(out.contains("d_bucket{worker=\"0\",le=\"+Inf\"} 3\n"));
        assert!(out.contains("d_count{worker=\"0\"} 3\n"));
        assert!(out.contains("d_sum{worker=\"0\"} 61.000021\n"));
    }

    #[test]
    fn a_gauge_goes_below_zero_and_back() {
        let c = Cell::default();
        c.sub(2);
        assert_eq!(c.get_signed(), -2);
        c.add(3);
        assert_eq!(c.get_signed(), 1);
    }

    /// The single-writer invariant: one thread writes, another reads concurrently; the reader
    /// sees every counter only grow, and the final values are exact.
    #[test]
    fn one_writer_and_a_concurrent_reader_see_exact_growing_counts() {
        let cells = Arc::new(ProtocolCells::default());
        let writer = {
            let cells = cells.clone();
            std::thread::spawn(move || {
                for _ in 0..200_000 {
                    cells.requests[1].add(1);
                    cells.body_out.add(3);
                    cells.duration.record(Duration::from_micros(40));
                }
            })
        };
        let mut last = ProtocolTotals::default();
        while !writer.is_finished() {
            let mut t = ProtocolTotals::default();
            cells.read_into(&mut t);
            assert!(t.requests[1] >= last.requests[1]);
            assert!(t.body_out >= last.body_out);
            assert!(t.duration.count >= last.duration.count);
            last = t;
        }
        writer.join().unwrap();
        let mut t = ProtocolTotals::default();
        cells.read_into(&mut t);
        assert_eq!(t.requests[1], 200_000);
        assert_eq!(t.body_out, 600_000);
        assert_eq!(t.duration.count, 200_000);
        assert_eq!(t.duration.buckets[2], 200_000); // 40 us: (25 us, 50 us]
    }
}
