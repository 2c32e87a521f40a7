//! Command line of `ringfast-bench`, and the measurement plan it selects.

use std::path::PathBuf;

use clap::Parser;

/// Runs every contender on loopback, pinned, drives each with ringfast-load (and wrk as a
/// cross-check for the HTTP servers), and writes REPORT.md, results.json and SVG plots.
#[derive(Debug, Clone, Parser)]
#[command(name = "ringfast-bench", version)]
pub struct Options {
    /// Smoke-test mode: every contender once, short runs (under 3 minutes). Implies
    /// --allow-busy. The numbers are not meant to be read.
    #[arg(long)]
    pub quick: bool,
    /// Directory the report is written to.
    #[arg(long, default_value = "docs/bench")]
    pub out: PathBuf,
    /// Repetitions of the whole matrix (interleaved: each round runs every contender once,
    /// in a rotated order). Default: 3, or 1 with --quick.
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Measured seconds of each load run. Default: 1.5, or 0.5 with --quick.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Warm-up seconds before each measured window. Default: 0.5, or 0.25 with --quick.
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Connections of the load generator. Default 32.
    #[arg(long, default_value_t = 32)]
    pub connections: u32,
    /// Open-loop runs at these fractions of the contender's closed-loop peak (comma-separated).
    /// Default: 0.5,0.9, or 0.5 with --quick.
    #[arg(long, value_delimiter = ',')]
    pub fractions: Option<Vec<f64>>,
    /// Only contenders whose name contains one of these strings (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Directory holding the `ringfast` and `ringfast-load` binaries.
    #[arg(long, default_value = "target/release")]
    pub bin_dir: PathBuf,
    /// The ringfast-load binary (default: BIN_DIR/ringfast-load).
    #[arg(long)]
    pub loadgen: Option<PathBuf>,
    /// Where the harness keeps what it builds and installs (floor binary, Python venv).
    #[arg(long, default_value = "target/bench")]
    pub work_dir: PathBuf,
    /// Never install missing packages (contenders that need them are skipped, with the reason).
    #[arg(long)]
    pub no_install: bool,
    /// Run even when the machine is busy, marking the report noisy.
    #[arg(long)]
    pub allow_busy: bool,
    /// Lock file shared by every benchmark run on the machine.
    #[arg(long, default_value = crate::lock::DEFAULT_LOCK)]
    pub lock: PathBuf,
    /// Measure nothing: rewrite the report (REPORT.md and the plots) in --out from a
    /// results.json written by an earlier run.
    #[arg(long, value_name = "RESULTS_JSON")]
    pub from_json: Option<PathBuf>,
    /// Keep each contender's temporary directory (configs and logs) instead of removing it.
    #[arg(long)]
    pub keep_temp: bool,
    /// Do not pin the server and the load generator to CPUs.
    #[arg(long)]
    pub no_pin: bool,
    /// Run every ringfast row once per value, with `--io VALUE` added to ringfast's command
    /// line and `io=VALUE` to the row name (comma-separated, e.g. `ring,tokio-uring`;
    /// `default` is the row without `--io`). Default: no `--io` flag at all.
    #[arg(long, value_delimiter = ',', value_name = "IO")]
    pub engine_io: Vec<String>,
    /// Idle keep-alive connections opened to the floor and to ringfast for the memory table
    /// (0: none). Default: 10000, or 500 with --quick.
    #[arg(long, value_name = "N")]
    pub idle_conns: Option<usize>,
}

/// The numbers a run uses, resolved from [`Options`] and the mode.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    /// Quick (smoke) mode.
    pub quick: bool,
    /// Rounds of the whole matrix.
    pub rounds: usize,
    /// Measured seconds per load run.
    pub duration: f64,
    /// Warm-up seconds per load run.
    pub warmup: f64,
    /// Load generator connections.
    pub connections: u32,
    /// Open-loop fractions of the peak.
    pub fractions: Vec<f64>,
    /// Seconds to wait for the machine to go quiet before each contender.
    pub quiet_wait: f64,
    /// Share of the machine's CPU used by foreign processes above which a run is noisy.
    pub noisy_share: f64,
    /// Process and thread counts for the Python servers (and PHP-FPM's children).
    pub py_procs: u32,
    /// Threads per Python process, for the servers that have threads.
    pub py_threads: u32,
    /// Whether server and load generator are pinned.
    pub pin: bool,
    /// Keep the temporary directories.
    pub keep_temp: bool,
    /// `--engine-io` values: one ringfast row per value.
    pub engine_io: Vec<String>,
    /// Idle connections of the memory table.
    pub idle_conns: usize,
}

impl Plan {
    /// The plan for these options.
    pub fn from_options(o: &Options) -> Result<Plan, crate::error::BenchError> {
        let q = o.quick;
        let plan = Plan {
            quick: q,
            rounds: o.rounds.unwrap_or(if q { 1 } else { 3 }),
            duration: o.duration.unwrap_or(if q { 0.5 } else { 1.5 }),
            warmup: o.warmup.unwrap_or(if q { 0.25 } else { 0.5 }),
            connections: o.connections,
            fractions: o.fractions.clone().unwrap_or_else(|| {
                if q {
                    vec![0.5]
                } else {
                    vec![0.5, 0.9]
                }
            }),
            quiet_wait: if q { 0.0 } else { 10.0 },
            noisy_share: 0.05,
            py_procs: 2,
            py_threads: 4,
            pin: !o.no_pin && crate::procfs::cpus() >= 2,
            keep_temp: o.keep_temp,
            engine_io: o.engine_io.clone(),
            idle_conns: o.idle_conns.unwrap_or(if q { 500 } else { 10_000 }),
        };
        if plan.rounds == 0 || plan.duration <= 0.0 || plan.connections == 0 {
            return Err(crate::error::BenchError::Usage(
                "--rounds, --duration and --connections must be positive".into(),
            ));
        }
        crate::contender::check_engine_io(&plan.engine_io)
            .map_err(crate::error::BenchError::Usage)?;
        if plan.fractions.iter().any(|f| !(*f > 0.0 && *f <= 1.0)) {
            return Err(crate::error::BenchError::Usage(
                "--fractions must be in (0, 1]".into(),
            ));
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_mode_is_short() {
        let o = Options::parse_from(["ringfast-bench", "--quick"]);
        let p = Plan::from_options(&o).unwrap();
        assert_eq!(p.rounds, 1);
        assert!(p.duration <= 0.5);
        assert_eq!(p.fractions, vec![0.5]);
        assert_eq!(p.idle_conns, 500);
        assert!(p.engine_io.is_empty());
        let full = Plan::from_options(&Options::parse_from(["ringfast-bench"])).unwrap();
        assert_eq!(full.idle_conns, 10_000);
    }

    #[test]
    fn engine_io_values() {
        let o = Options::parse_from(["ringfast-bench", "--engine-io", "ring,tokio-uring"]);
        let p = Plan::from_options(&o).unwrap();
        assert_eq!(p.engine_io, vec!["ring", "tokio-uring"]);
        let o = Options::parse_from(["ringfast-bench", "--engine-io", "ring,ring"]);
        assert!(Plan::from_options(&o).is_err());
    }

    #[test]
    fn bad_fractions_are_refused() {
        let o = Options::parse_from(["ringfast-bench", "--fractions", "0.5,1.5"]);
        assert!(Plan::from_options(&o).is_err());
    }
}
