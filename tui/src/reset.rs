//! Counter resets: a counter that goes down between two scrapes means the engine restarted (or
//! another process now answers on its address). Differences across a reset mean nothing, so the
//! dashboard starts its history over instead of showing them.

use std::fmt;

use crate::snapshot::EngineSnapshot;

/// Why two consecutive scrapes cannot be compared.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Reset {
    /// `process_start_time_seconds` changed: a new process.
    NewProcess,
    /// A counter of a worker went down.
    CounterDecreased {
        /// The worker.
        worker: u32,
        /// Which figure.
        counter: &'static str,
    },
    /// The process CPU time went down.
    CpuDecreased,
    /// The set of workers changed.
    WorkersChanged,
}

impl fmt::Display for Reset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reset::NewProcess => f.write_str("new process (start time changed)"),
            Reset::CounterDecreased { worker, counter } => {
                write!(f, "{counter} of worker {worker} went down")
            }
            Reset::CpuDecreased => f.write_str("process CPU time went down"),
            Reset::WorkersChanged => f.write_str("the set of workers changed"),
        }
    }
}

/// Compares a scrape with the one before it: `Some` when they belong to different runs.
pub fn detect(before: &EngineSnapshot, after: &EngineSnapshot) -> Option<Reset> {
    if let (Some(a), Some(b)) = (before.process.start_time, after.process.start_time) {
        if a != b {
            return Some(Reset::NewProcess);
        }
    }
    if !before.workers.keys().eq(after.workers.keys()) {
        return Some(Reset::WorkersChanged);
    }
    for (id, old) in &before.workers {
        let new = &after.workers[id];
        let checks: [(&'static str, f64, f64); 4] = [
            ("requests", old.requests_total(), new.requests_total()),
            ("request durations", old.duration.count, new.duration.count),
            (
                "connections accepted",
                old.connections_accepted,
                new.connections_accepted,
            ),
            ("protocol errors", old.protocol_errors, new.protocol_errors),
        ];
        for (counter, was, is) in checks {
            if is < was {
                return Some(Reset::CounterDecreased {
                    worker: *id,
                    counter,
                });
            }
        }
        if old.requests.iter().zip(&new.requests).any(|(a, b)| b < a) {
            return Some(Reset::CounterDecreased {
                worker: *id,
                counter: "requests",
            });
        }
        if new.duration.since(&old.duration).is_none() {
            return Some(Reset::CounterDecreased {
                worker: *id,
                counter: "request durations",
            });
        }
    }
    if let (Some(a), Some(b)) = (before.process.cpu_seconds, after.process.cpu_seconds) {
        if b < a {
            return Some(Reset::CpuDecreased);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Histogram;
    use crate::snapshot::WorkerSnapshot;

    fn snap(requests: f64, start: f64) -> EngineSnapshot {
        let mut s = EngineSnapshot::default();
        let mut w = WorkerSnapshot::default();
        w.requests[1] = requests;
        w.duration = Histogram::from_buckets(
            vec![(0.001, requests), (f64::INFINITY, requests)],
            0.0,
            requests,
        );
        s.workers.insert(0, w);
        s.process.start_time = Some(start);
        s.process.cpu_seconds = Some(requests / 100.0);
        s
    }

    #[test]
    fn growing_counters_are_no_reset() {
        assert_eq!(detect(&snap(10.0, 5.0), &snap(10.0, 5.0)), None);
        assert_eq!(detect(&snap(10.0, 5.0), &snap(20.0, 5.0)), None);
    }

    #[test]
    fn a_counter_going_down_is_a_reset() {
        assert_eq!(
            detect(&snap(20.0, 5.0), &snap(3.0, 5.0)),
            Some(Reset::CounterDecreased {
                worker: 0,
                counter: "requests"
            })
        );
    }

    #[test]
    fn a_class_moving_down_while_the_total_grows_is_a_reset() {
        let before = snap(10.0, 5.0);
        let mut after = snap(10.0, 5.0);
        let w = after.workers.get_mut(&0).unwrap();
        w.requests[1] = 0.0;
        w.requests[4] = 12.0;
        assert!(matches!(
            detect(&before, &after),
            Some(Reset::CounterDecreased { .. })
        ));
    }

    #[test]
    fn a_new_start_time_is_a_reset_even_when_counters_grew() {
        assert_eq!(
            detect(&snap(1.0, 5.0), &snap(50.0, 6.0)),
            Some(Reset::NewProcess)
        );
    }

    #[test]
    fn other_workers_are_a_reset() {
        let mut after = snap(10.0, 5.0);
        after.workers.insert(1, WorkerSnapshot::default());
        assert_eq!(
            detect(&snap(10.0, 5.0), &after),
            Some(Reset::WorkersChanged)
        );
    }

    #[test]
    fn cpu_going_down_is_a_reset() {
        let mut after = snap(10.0, 5.0);
        after.process.cpu_seconds = Some(0.0);
        assert_eq!(detect(&snap(10.0, 5.0), &after), Some(Reset::CpuDecreased));
        assert!(!Reset::CpuDecreased.to_string().is_empty());
    }
}
