//! Driving a contender: the load generator's command line and its result.

pub mod ringfast_load;
pub mod wrk;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::error::{io_ctx, BenchError};

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Maximum.
    pub max: f64,
}

/// What one load run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadResult {
    /// Successful requests in the measured window.
    pub requests: u64,
    /// Failed requests (connect, protocol, timeout, status, body), summed.
    pub errors: u64,
    /// Successful requests per second.
    pub rps: f64,
    /// Measured wall time.
    pub duration_s: f64,
    /// Latency.
    pub latency_us: Latency,
}

/// The two load generators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientKind {
    /// ringfast-load (every protocol; closed and open loop).
    RingfastLoad,
    /// wrk (HTTP, closed loop): the cross-check.
    Wrk,
}

impl ClientKind {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::RingfastLoad => "ringfast-load",
            ClientKind::Wrk => "wrk",
        }
    }
}

/// One load run to make.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The ringfast-load target (`fcgi://...`, `http+unix:...`).
    pub target: String,
    /// Connections.
    pub connections: u32,
    /// Measured seconds.
    pub duration: f64,
    /// Warm-up seconds (ringfast-load only).
    pub warmup: f64,
    /// Open loop at this total rate; closed loop when `None`.
    pub rate: Option<f64>,
    /// Keep-alive (FastCGI KEEP_CONN, HTTP keep-alive).
    pub keepalive: bool,
    /// FastCGI requests in flight per connection (`--mux`, ringfast-load only); 1: none.
    pub mux: u32,
    /// `--param NAME=VALUE`.
    pub params: Vec<String>,
    /// `--expect-body`.
    pub expect_body: Option<String>,
}

/// A started load generator.
#[derive(Debug)]
pub struct LoadRun {
    /// Which one.
    pub kind: ClientKind,
    child: Child,
    json: PathBuf,
}

impl LoadRun {
    /// Starts `kind` on `spec`, pinned to `cpus` when given, writing its JSON in `dir`.
    pub fn start(
        kind: ClientKind,
        program: &Path,
        spec: &LoadSpec,
        dir: &Path,
        cpus: Option<&str>,
    ) -> Result<LoadRun, BenchError> {
        let json = dir.join(format!("{}-result.json", kind.name()));
        let _ = std::fs::remove_file(&json);
        let args = match kind {
            ClientKind::RingfastLoad => ringfast_load::args(spec, &json),
            ClientKind::Wrk => {
                let script = dir.join("wrk-report.lua");
                std::fs::write(&script, wrk::REPORT_LUA).map_err(io_ctx("writing wrk script"))?;
                wrk::args(spec, &script)?
            }
        };
        let mut cmd = match cpus {
            Some(c) => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(c).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        cmd.args(&args)
            .env("WRK_JSON", &json)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .map_err(io_ctx(format!("starting {}", program.display())))?;
        Ok(LoadRun { kind, child, json })
    }

    /// Its pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for it to finish and parses its result.
    pub fn finish(self) -> Result<LoadResult, BenchError> {
        let name = self.kind.name().to_string();
        let out = self
            .child
            .wait_with_output()
            .map_err(io_ctx(format!("waiting for {name}")))?;
        let text = std::fs::read_to_string(&self.json).map_err(|_| {
            let err = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = err.lines().collect();
            BenchError::Load {
                client: name.clone(),
                detail: format!(
                    "{}, no result written; stderr: {}",
                    out.status,
                    lines[lines.len().saturating_sub(5)..].join(" / ")
                ),
            }
        })?;
        match self.kind {
            ClientKind::RingfastLoad => ringfast_load::parse(&text),
            ClientKind::Wrk => wrk::parse(&text),
        }
    }
}
