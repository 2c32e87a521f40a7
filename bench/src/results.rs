//! The raw results: one record per load run, written to results.json beside the report.

use serde::{Deserialize, Serialize};

use crate::load::LoadResult;

/// What kind of load run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunKind {
    /// Closed loop with ringfast-load (or wrk when ringfast-load is missing): the peak.
    Peak,
    /// Open loop at a fraction of this round's peak.
    Open,
    /// wrk closed loop, the cross-check of an HTTP server.
    WrkCheck,
}

/// One load run and what the harness measured around it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// Contender name.
    pub contender: String,
    /// Round (0-based).
    pub round: usize,
    /// Peak, open or wrk cross-check.
    pub kind: RunKind,
    /// `ringfast-load` or `wrk`.
    pub client: String,
    /// Open loop: the fraction of the peak offered.
    pub fraction: Option<f64>,
    /// Open loop: requests per second offered.
    pub target_rps: Option<f64>,
    /// The load generator's result (absent when it failed).
    pub result: Option<LoadResult>,
    /// Why this run is not valid (failed, errors, no requests).
    pub error: Option<String>,
    /// Seconds of the harness's sampling window (inside the measured window).
    pub window_s: f64,
    /// CPU seconds (utime + stime) of every process of the contender in the window.
    pub server_cpu_s: f64,
    /// CPU seconds of the load generator in the window.
    pub load_cpu_s: f64,
    /// CPU seconds of every other process (kernel threads aside) in the window.
    pub foreign_cpu_s: f64,
    /// CPU seconds the hypervisor stole from the machine (all CPUs) in the window.
    #[serde(default)]
    pub steal_s: f64,
    /// The biggest foreign consumers (command, CPU seconds).
    pub foreign_top: Vec<(String, f64)>,
    /// Processes of the contender.
    pub server_procs: usize,
    /// The distinct CPU affinities of every thread of the contender (peak runs).
    #[serde(default)]
    pub server_cpus: Vec<String>,
    /// Proportional set size of the contender after the peak run, KiB.
    pub pss_kib: Option<u64>,
    /// Resident set size summed over its processes, KiB.
    pub rss_kib: Option<u64>,
    /// Foreign CPU plus steal above the threshold: the machine was not quiet.
    pub noisy: bool,
}

impl RunRecord {
    /// Server CPU microseconds per successful request.
    pub fn cpu_us_per_req(&self) -> Option<f64> {
        let r = self.result.as_ref()?;
        let reqs = r.rps * self.window_s;
        // No tick sampled while requests were answered: the sample missed, not a free server.
        (reqs > 0.0 && self.window_s > 0.0 && self.server_cpu_s > 0.0)
            .then(|| self.server_cpu_s * 1e6 / reqs)
    }

    /// Server CPU busy share of one CPU.
    pub fn server_util(&self) -> f64 {
        ratio(self.server_cpu_s, self.window_s)
    }

    /// Load generator CPU busy share of one CPU.
    pub fn load_util(&self) -> f64 {
        ratio(self.load_cpu_s, self.window_s)
    }

    /// A usable measurement.
    pub fn valid(&self) -> bool {
        self.error.is_none() && self.result.is_some()
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// A contender that could not run at all.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Skipped {
    /// Contender name.
    pub contender: String,
    /// Why.
    pub reason: String,
}

/// A contender that failed to start or died in a round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    /// Contender name.
    pub contender: String,
    /// Round.
    pub round: usize,
    /// The error.
    pub error: String,
}

/// Everything a run produced: written as results.json, read back by the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawResults {
    /// The plan (durations, rounds, connections, ...).
    pub plan: serde_json::Value,
    /// The environment.
    pub env: Vec<(String, String)>,
    /// Contender names in report order, with their group.
    pub contenders: Vec<crate::contender::Contender>,
    /// Every load run.
    pub runs: Vec<RunRecord>,
    /// Contenders not run.
    pub skipped: Vec<Skipped>,
    /// Start failures.
    pub failures: Vec<Failure>,
    /// Whether the machine was busy before the run started.
    pub busy_at_start: Option<String>,
    /// Notes from preparation (installs, missing binaries).
    pub notes: Vec<String>,
    /// Wall seconds of the whole run.
    pub elapsed_s: f64,
    /// When the run ended (`YYYY-MM-DD HH:MM UTC`).
    #[serde(default)]
    pub date: String,
    /// Idle keep-alive connections: memory per connection of the floor and ringfast.
    #[serde(default)]
    pub idle: Vec<crate::idle::IdleRecord>,
}
