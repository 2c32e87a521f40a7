//! The command line (clap derive) and its validation into a [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::target::{Protocol, Target, TargetError};

/// ringfast-load: a FastCGI, SCGI, AJP13 and HTTP/1.1 load generator with honest latencies.
#[derive(Debug, Parser)]
#[command(name = "ringfast-load", version, about)]
pub struct Args {
    /// fcgi://HOST:PORT/PATH?QUERY, fcgi+unix:/abs/path.sock:/PATH?QUERY; likewise scgi, ajp,
    /// http.
    pub target: String,
    /// Connections (closed loop: each has one request outstanding, or --mux).
    #[arg(short = 'c', long, default_value_t = 16)]
    pub connections: usize,
    /// Open loop at R requests/s in total; latency from the intended send time.
    #[arg(long)]
    pub rate: Option<f64>,
    /// FastCGI only: N requests in flight per connection (distinct request ids).
    #[arg(long, default_value_t = 1)]
    pub mux: usize,
    /// A new connection per request (FastCGI without KEEP_CONN, HTTP Connection: close, AJP
    /// closed after END_RESPONSE).
    #[arg(long)]
    pub no_keepalive: bool,
    /// Measured duration in seconds (float). Default 10 unless --requests is given.
    #[arg(short = 'd', long)]
    pub duration: Option<f64>,
    /// Stop after N measured requests instead of a duration.
    #[arg(short = 'n', long)]
    pub requests: Option<u64>,
    /// Warm-up seconds before measuring, not counted.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Load threads [default: number of CPUs].
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Request method.
    #[arg(short = 'm', long, default_value = "GET")]
    pub method: String,
    /// 'Name: value', repeatable (HTTP_NAME for fcgi/scgi, a header for ajp/http).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// NAME=VALUE FastCGI/SCGI request variable, repeatable (overrides the derived ones).
    #[arg(long = "param")]
    pub params: Vec<String>,
    /// A request body of BYTES pattern bytes.
    #[arg(long, conflicts_with = "body_file")]
    pub body_size: Option<usize>,
    /// A request body read from a file.
    #[arg(long)]
    pub body_file: Option<PathBuf>,
    /// The status every response must have.
    #[arg(long, default_value_t = 200)]
    pub expect_status: u16,
    /// The body every response must have (exact).
    #[arg(long)]
    pub expect_body: Option<String>,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// AJP: the shared secret to send (Apache `secret=`; ringfast --ajp-secret).
    #[arg(long)]
    pub ajp_secret: Option<String>,
    /// AJP: the packet size in bytes, header included (must match the server's).
    #[arg(long, default_value_t = 8192)]
    pub ajp_packet_size: usize,
    /// Write the result as JSON to PATH ('-' = stdout; the human summary then goes to stderr).
    #[arg(long)]
    pub json: Option<String>,
    /// No human summary.
    #[arg(long)]
    pub quiet: bool,
    /// No live progress line, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

/// How long the measurement lasts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// A measured duration.
    After(Duration),
    /// A number of successful measured requests.
    Requests(u64),
}

/// A validated run configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where and what.
    pub target: Target,
    /// Connections over all threads.
    pub connections: usize,
    /// Open-loop rate in requests/s over all threads (closed loop when `None`).
    pub rate: Option<f64>,
    /// Requests in flight per connection.
    pub mux: usize,
    /// Reuse connections.
    pub keepalive: bool,
    /// When the measurement ends.
    pub stop: Stop,
    /// Warm-up before measuring.
    pub warmup: Duration,
    /// Load threads (at most one per connection).
    pub threads: usize,
    /// Request method.
    pub method: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Request-variable overrides (FastCGI/SCGI).
    pub params: Vec<(String, String)>,
    /// The request body.
    pub body: Vec<u8>,
    /// The expected status.
    pub expect_status: u16,
    /// The expected body.
    pub expect_body: Option<Vec<u8>>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// AJP secret attribute.
    pub ajp_secret: Option<String>,
    /// AJP packet size.
    pub ajp_packet_size: proto::ajp::PacketSize,
    /// Where the JSON goes.
    pub json: Option<String>,
    /// No human summary.
    pub quiet: bool,
    /// Live progress line allowed (still only on a terminal).
    pub progress: bool,
}

/// Why the command line was refused (exit status 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// TARGET is malformed.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// An option value out of range or malformed.
    #[error("{0}")]
    Invalid(String),
    /// The body file cannot be read.
    #[error("cannot read --body-file {path}: {source}")]
    BodyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn seconds(name: &str, value: f64, allow_zero: bool) -> Result<Duration, UsageError> {
    let ok = value.is_finite() && (value > 0.0 || (allow_zero && value == 0.0));
    if !ok {
        return Err(UsageError::Invalid(format!(
            "--{name} {value}: must be a positive number of seconds"
        )));
    }
    Duration::try_from_secs_f64(value)
        .map_err(|_| UsageError::Invalid(format!("--{name} {value}: out of range")))
}

/// The byte pattern of `--body-size` bodies: printable, repeating, easy to spot in a dump.
pub fn pattern_body(len: usize) -> Vec<u8> {
    const PATTERN: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    PATTERN.iter().copied().cycle().take(len).collect()
}

impl Config {
    /// Validates `args`; reads the body file.
    pub fn from_args(args: Args) -> Result<Self, UsageError> {
        let invalid = |m: String| Err(UsageError::Invalid(m));
        let target = Target::parse(&args.target)?;
        if args.connections == 0 {
            return invalid("--connections must be at least 1".into());
        }
        if args.mux == 0 || args.mux > 65535 {
            return invalid("--mux must be within 1..=65535".into());
        }
        if args.mux > 1 && target.protocol != Protocol::Fcgi {
            return invalid("--mux is FastCGI only".into());
        }
        if args.mux > 1 && args.no_keepalive {
            return invalid("--mux needs keep-alive (drop --no-keepalive)".into());
        }
        if let Some(rate) = args.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return invalid(format!("--rate {rate}: must be a positive number"));
            }
        }
        let stop = match (args.duration, args.requests) {
            (Some(_), Some(_)) => {
                return invalid("--duration and --requests exclude each other".into())
            }
            (_, Some(0)) => return invalid("--requests must be at least 1".into()),
            (_, Some(n)) => Stop::Requests(n),
            (Some(d), None) => Stop::After(seconds("duration", d, false)?),
            (None, None) => Stop::After(Duration::from_secs(10)),
        };
        let warmup = seconds("warmup", args.warmup, true)?;
        let timeout = seconds("timeout", args.timeout, false)?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = args.threads.unwrap_or(cpus);
        if threads == 0 {
            return invalid("--threads must be at least 1".into());
        }
        if args.method.is_empty() || !args.method.bytes().all(|b| b.is_ascii_graphic()) {
            return invalid(format!("--method {:?} is not a token", args.method));
        }
        let mut headers = Vec::new();
        for h in &args.headers {
            let Some((name, value)) = h.split_once(':') else {
                return invalid(format!("--header {h:?}: expected 'Name: value'"));
            };
            let name = name.trim();
            let bad = |s: &str| s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0));
            if name.is_empty() || name.contains(' ') || bad(name) || bad(value) {
                return invalid(format!("--header {h:?}: bad name or value"));
            }
            headers.push((name.to_string(), value.trim().to_string()));
        }
        let mut params = Vec::new();
        for p in &args.params {
            match p.split_once('=') {
                Some((n, v)) if !n.is_empty() && !p.contains('\0') => {
                    params.push((n.to_string(), v.to_string()))
                }
                _ => return invalid(format!("--param {p:?}: expected NAME=VALUE")),
            }
        }
        let body = match (&args.body_file, args.body_size) {
            (Some(path), _) => std::fs::read(path).map_err(|source| UsageError::BodyFile {
                path: path.clone(),
                source,
            })?,
            (None, Some(n)) => pattern_body(n),
            (None, None) => Vec::new(),
        };
        let ajp_packet_size = proto::ajp::PacketSize::new(args.ajp_packet_size)
            .map_err(|e| UsageError::Invalid(format!("--ajp-packet-size: {e}")))?;
        if !(100..=999).contains(&args.expect_status) {
            return invalid("--expect-status must be a three-digit code".into());
        }
        Ok(Config {
            threads: threads.min(args.connections),
            connections: args.connections,
            rate: args.rate,
            mux: args.mux,
            // SCGI has no keep-alive: every request has its own connection.
            keepalive: !args.no_keepalive && target.protocol != Protocol::Scgi,
            stop,
            warmup,
            method: args.method,
            headers,
            params,
            body,
            expect_status: args.expect_status,
            expect_body: args.expect_body.map(String::into_bytes),
            timeout,
            ajp_secret: args.ajp_secret,
            ajp_packet_size,
            json: args.json,
            quiet: args.quiet,
            progress: !args.no_progress,
            target,
        })
    }

    /// `closed` or `open`.
    pub fn model(&self) -> &'static str {
        if self.rate.is_some() {
            "open"
        } else {
            "closed"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(argv: &[&str]) -> Result<Config, UsageError> {
        let mut full = vec!["ringfast-load"];
        full.extend_from_slice(argv);
        Config::from_args(Args::try_parse_from(full).expect("parses"))
    }

    #[test]
    fn defaults() {
        let c = config(&["fcgi://127.0.0.1:9000/hello"]).unwrap();
        assert_eq!(c.connections, 16);
        assert_eq!(c.stop, Stop::After(Duration::from_secs(10)));
        assert_eq!(c.warmup, Duration::from_secs(1));
        assert_eq!(c.expect_status, 200);
        assert!(c.keepalive);
        assert_eq!(c.model(), "closed");
    }

    #[test]
    fn options() {
        let c = config(&[
            "-c",
            "4",
            "--rate",
            "100.5",
            "-n",
            "50",
            "-t",
            "9",
            "-H",
            "X-A: b c",
            "--param",
            "SCRIPT_FILENAME=/x.php",
            "--body-size",
            "40",
            "--no-keepalive",
            "fcgi://127.0.0.1:9000/",
        ])
        .unwrap();
        assert_eq!(c.threads, 4, "never more threads than connections");
        assert_eq!(c.stop, Stop::Requests(50));
        assert_eq!(c.headers, [("X-A".to_string(), "b c".to_string())]);
        assert_eq!(
            c.params,
            [("SCRIPT_FILENAME".to_string(), "/x.php".to_string())]
        );
        assert_eq!(&c.body[..38], b"abcdefghijklmnopqrstuvwxyz0123456789ab");
        assert!(!c.keepalive);
        assert_eq!(c.model(), "open");
    }

    #[test]
    fn refusals() {
        for argv in [
            &["--mux", "2", "http://127.0.0.1:1/"][..],
            &["-c", "0", "fcgi://127.0.0.1:1/"],
            &["--rate", "0", "fcgi://127.0.0.1:1/"],
            &["-d", "1", "-n", "5", "fcgi://127.0.0.1:1/"],
            &["-d", "0", "fcgi://127.0.0.1:1/"],
            &["--mux", "2", "--no-keepalive", "fcgi://127.0.0.1:1/"],
            &["-H", "novalue", "fcgi://127.0.0.1:1/"],
            &["--param", "=x", "fcgi://127.0.0.1:1/"],
            &["nope"],
        ] {
            assert!(config(argv).is_err(), "{argv:?}");
        }
    }
}
