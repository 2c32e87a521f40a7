//! The harness's error type.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can stop a benchmark run or one contender.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Another benchmark run holds the lock file.
    #[error("another benchmark run holds the lock {0} (runs must never overlap)")]
    Locked(PathBuf),
    /// The machine was busy before the run and `--allow-busy` was not given.
    #[error("the machine is busy ({0}); wait for it to go quiet, or pass --allow-busy to run anyway with the report marked noisy")]
    Busy(String),
    /// A server did not start accepting connections in time.
    #[error("{name} did not accept connections within {timeout:?}; its log ends with:\n{log}")]
    NotReady {
        /// The service.
        name: String,
        /// How long we waited.
        timeout: Duration,
        /// The tail of its log.
        log: String,
    },
    /// A server exited while it should be running.
    #[error("{name} exited ({status}); its log ends with:\n{log}")]
    Exited {
        /// The service.
        name: String,
        /// Its exit status.
        status: String,
        /// The tail of its log.
        log: String,
    },
    /// The load generator failed or wrote no result.
    #[error("load generator {client} failed: {detail}")]
    Load {
        /// `ringfast-load` or `wrk`.
        client: String,
        /// What went wrong (exit status, stderr tail).
        detail: String,
    },
    /// The load generator's output could not be understood.
    #[error("cannot parse the {client} result: {detail}")]
    Parse {
        /// `ringfast-load` or `wrk`.
        client: String,
        /// What was wrong.
        detail: String,
    },
    /// Installing a package or the Python environment failed.
    #[error("installing {what} failed: {detail}")]
    Install {
        /// The package(s).
        what: String,
        /// The tail of the installer's output.
        detail: String,
    },
    /// A command-line value is unusable.
    #[error("{0}")]
    Usage(String),
}

impl BenchError {
    /// An [`BenchError::Io`] with its context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> BenchError {
        BenchError::Io {
            context: context.into(),
            source,
        }
    }
}

/// `map_err` helper: `.map_err(io_ctx("reading x"))`.
pub fn io_ctx(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let context = context.into();
    move |source| BenchError::Io { context, source }
}
