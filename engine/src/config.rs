//! The command line: every option, its default, and what it limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;

use crate::app::{BuiltinApp, WsgiOptions};

/// Where a listener binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// `HOST:PORT` or `[V6]:PORT`.
    Tcp(SocketAddr),
    /// `unix:PATH`.
    Unix(PathBuf),
    /// `fd:N`: a listening socket inherited as descriptor N (a web server that spawns the
    /// application passes it as descriptor 0, FCGI_LISTENSOCK_FILENO).
    Fd(i32),
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a path, as in unix:/run/app.sock".into());
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        if let Some(n) = s.strip_prefix("fd:") {
            return n
                .parse::<i32>()
                .ok()
                .filter(|n| *n >= 0)
                .map(ListenAddr::Fd)
                .ok_or_else(|| format!("{s:?}: fd: needs a descriptor number, as in fd:0"));
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(ListenAddr::Tcp(addr));
        }
        use std::net::ToSocketAddrs;
        s.to_socket_addrs()
            .map_err(|e| format!("{s:?} is not HOST:PORT, [V6]:PORT or unix:PATH ({e})"))?
            .next()
            .map(ListenAddr::Tcp)
            .ok_or_else(|| format!("{s:?} resolves to no address"))
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            ListenAddr::Fd(n) => write!(f, "fd:{n}"),
        }
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a number of seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("{s:?} is not an octal file mode such as 0660"))
}

/// ringfast: a thread-per-core FastCGI application server on io_uring.
#[derive(Debug, Clone, Parser)]
#[command(name = "ringfast", version, about)]
pub struct Config {
    /// Read options from this TOML file: each key is an option's long name (`max-requests =
    /// 1000`, `fastcgi = ["unix:/run/app.sock"]`). Options on the command line (or in their
    /// environment variables) win over the file. See docs/configuration.md.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the effective configuration (defaults, the --config file, the command line) as a
    /// TOML file that --config accepts, and exit.
    #[arg(long)]
    pub print_config: bool,

    /// FastCGI listener: HOST:PORT, [V6]:PORT, unix:PATH or fd:N (an inherited listening
    /// socket). Repeatable. Default when no listener is given: descriptor 0 if it is a listening
    /// socket (spawned by a web server: lighttpd bin-path, mod_fcgid, cgi-fcgi -start), else
    /// 127.0.0.1:9000.
    #[arg(long = "fastcgi", value_name = "ADDR")]
    pub fastcgi: Vec<ListenAddr>,

    /// SCGI listener: HOST:PORT, [V6]:PORT or unix:PATH. Repeatable.
    #[arg(long = "scgi", value_name = "ADDR")]
    pub scgi: Vec<ListenAddr>,

    /// AJP13 listener: HOST:PORT, [V6]:PORT or unix:PATH. Repeatable. A non-loopback address
    /// needs --ajp-secret (or --ajp-allow-insecure).
    #[arg(long = "ajp", value_name = "ADDR")]
    pub ajp: Vec<ListenAddr>,

    /// Shared secret AJP peers must send (Apache `secret=`, Tomcat `secret`); requests without
    /// it, or with another, get 403.
    #[arg(
        long,
        value_name = "SECRET",
        env = "RINGFAST_AJP_SECRET",
        hide_env_values = true
    )]
    pub ajp_secret: Option<String>,

    /// Allow AJP on a non-loopback address without a secret (Ghostcat, CVE-2020-1938: only
    /// behind a firewall you trust).
    #[arg(long)]
    pub ajp_allow_insecure: bool,

    /// Largest AJP packet, in bytes (Apache `ProxyIOBufferSize`, lighttpd's fixed 8192).
    #[arg(long, value_name = "BYTES", default_value_t = 8192,
          value_parser = clap::value_parser!(u32).range(8192..=65536))]
    pub ajp_packet_size: u32,

    /// Built-in application to serve.
    #[arg(long, value_enum, default_value = "hello")]
    pub app: BuiltinApp,

    /// Worker threads, each with its own io_uring and event loop. Default: number of CPUs.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Pin worker i to CPU i (modulo the CPU count).
    #[arg(long)]
    pub pin: bool,

    /// Recycle a worker process after it has served about N requests (flup's maxrequests,
    /// uWSGI's max-requests): it stops accepting, finishes what it has, exits, and the
    /// supervisor starts a fresh one. Runs a supervisor even with --processes 1.
    #[arg(long, value_name = "N")]
    pub max_requests: Option<u64>,

    /// When a worker process stops for a reload or a recycle, hand its idle keep-alive
    /// connections to the running worker processes instead of closing them, so that a request
    /// a web server sends at that moment is not lost (docs/reliability.md). Off by default
    /// until a stopping process can only hand to a newer generation and passes on input it
    /// already received: today a sibling of the same generation may take a connection, and a
    /// request that arrives while the hand-off starts is served by the stopping process.
    #[arg(long)]
    pub keepalive_handoff: bool,

    /// Spread --max-requests recycling: each worker process gets a budget of --max-requests
    /// plus a random number of requests from 0 to N, so that processes started together do not
    /// all restart together (uWSGI's max-requests-delta). Ignored without --max-requests.
    #[arg(long, value_name = "N")]
    pub max_requests_jitter: Option<u64>,

    /// Recycle a worker process whose resident memory (RSS) passes this many MiB, as
    /// --max-requests does (its successor starts at once; it finishes its requests and exits).
    /// The supervisor checks every second. Runs a supervisor even with --processes 1.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_rss: Option<u64>,

    /// Recycle a worker process once it has run this many seconds, as --max-requests does.
    /// Runs a supervisor even with --processes 1.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub max_lifetime: Option<Duration>,

    /// Reload the application when this file's modification time changes (`touch FILE`), as
    /// the spawned-FastCGI setups of the seed guide do: new worker processes start and the old
    /// ones finish their requests; no request is refused. SIGHUP does the same. Runs a
    /// supervisor even with --processes 1.
    #[arg(long, value_name = "FILE")]
    pub touch_reload: Option<PathBuf>,

    /// Write the process id (the supervisor's, when there is one) to FILE after binding;
    /// removed on exit. `kill $(cat FILE)` stops the server gracefully.
    #[arg(long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,

    /// Run in the background once the listeners are bound (flup's daemonize): new session, no
    /// terminal, log to --log-file (else discarded), pidfile rewritten with the daemon's pid.
    #[arg(long)]
    pub daemonize: bool,

    /// Append the log (stdout and stderr) to FILE instead of the terminal.
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,

    /// File mode creation mask (octal), applied at start: it governs the files the application
    /// creates. Unix sockets get --socket-mode regardless.
    #[arg(long, value_name = "MASK", value_parser = parse_mode)]
    pub umask: Option<u32>,

    /// Worker processes (prefork). Each process runs `--workers` threads on the same listeners;
    /// a process that dies is replaced. Use more than one for applications that need separate
    /// interpreters, such as Python's (one GIL per process).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub processes: usize,

    /// Run as this user (a name or a number) once the listeners are bound: the process that
    /// loads the application (each worker process under a supervisor) switches to it, with its
    /// group (or --group) and no supplementary groups, before it loads the application or
    /// reads a request. Needs root. The supervisor stays root, as PHP-FPM's master does.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Run as this group (a name or a number) once the listeners are bound; default: the
    /// primary group of --user. Needs root.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,

    /// Owner of the Unix socket files ringfast creates, as USER or USER:GROUP (names or
    /// numbers), set when they are bound (as root): the web server's user needs to reach them.
    #[arg(long, value_name = "USER[:GROUP]")]
    pub socket_owner: Option<String>,

    /// File mode of Unix sockets, in octal.
    #[arg(long, value_name = "MODE", default_value = "0660", value_parser = parse_mode)]
    pub socket_mode: u32,

    /// Listen backlog of each listening socket.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub backlog: u32,

    /// Most connections open at once, over all workers. Past it, the worker closes its idle
    /// connection that has been quiet longest to admit the new one; with none idle, each
    /// request on the new connection is answered FCGI_OVERLOADED (503 for SCGI and AJP13) and
    /// the connection closed.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub max_conns: usize,

    /// Most requests in flight on one connection (FastCGI multiplexing). Past it, a new request
    /// is answered FCGI_OVERLOADED.
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub max_reqs_per_conn: usize,

    /// Most bytes of request variables (FastCGI PARAMS) per request. Past it, the request is
    /// answered 431 Request Header Fields Too Large.
    #[arg(long, value_name = "BYTES", default_value_t = 128 * 1024)]
    pub max_params_bytes: usize,

    /// Body bytes buffered per request between the connection and the handler (at least 65535).
    /// When full, the connection stops reading until the handler catches up.
    #[arg(long, value_name = "BYTES", default_value_t = 128 * 1024)]
    pub body_buffer: usize,

    /// Response bytes queued per connection before handlers wait for the socket.
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024)]
    pub write_buffer: usize,

    /// Close a keep-alive connection after this many seconds without a request (longer than
    /// nginx's 60 s keepalive_timeout, so nginx closes first).
    #[arg(long, value_name = "SECS", default_value = "75", value_parser = parse_secs)]
    pub idle_timeout: Duration,

    /// Close a connection whose request variables (or a partial record) take longer than this
    /// to arrive.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub params_timeout: Duration,

    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish before exit.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub shutdown_timeout: Duration,

    /// io_uring submission queue entries per worker.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub ring_entries: u32,

    /// The I/O loop of each worker: `ring` (the native loop on io_uring: multishot accept and
    /// receive, provided buffers, handlers polled inline), `epoll` (the same native loop on
    /// epoll readiness) or `tokio-uring` (tokio-uring for FastCGI, tokio's epoll reactor for
    /// SCGI and AJP13). Where a ring cannot be set up (an old kernel,
    /// `kernel.io_uring_disabled`, a seccomp filter), `ring` runs on `epoll`, with a log line
    /// saying why.
    #[arg(long = "io", env = "RINGFAST_IO", value_name = "LOOP", value_enum, default_value_t = IoLoop::Ring)]
    pub io: IoLoop,

    /// Prometheus endpoint: HOST:PORT serving /metrics (see docs/metrics.md), or `off` (no
    /// metrics recorded at all). Default: 127.0.0.1:9191 (if taken, ringfast runs without metrics).
    #[arg(long, value_name = "ADDR|off")]
    pub metrics: Option<crate::metrics::Endpoint>,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,

    /// Python WSGI hosting (needs a build with the `wsgi` feature).
    #[command(flatten)]
    pub wsgi: WsgiOptions,
}

/// Which I/O loop the workers run (`--io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IoLoop {
    /// The native loop (engine/src/server/native) on io_uring.
    Ring,
    /// The native loop on epoll (engine/src/io/poller).
    Epoll,
    /// tokio-uring for FastCGI and tokio's epoll reactor for SCGI and AJP13.
    TokioUring,
}

impl IoLoop {
    /// The name `--io` takes and the metrics report.
    pub fn name(self) -> &'static str {
        match self {
            IoLoop::Ring => "ring",
            IoLoop::Epoll => "epoll",
            IoLoop::TokioUring => "tokio-uring",
        }
    }
}

impl Config {
    /// The number of workers to start.
    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }

    /// The FastCGI listeners, with the default applied (only when no listener of any protocol
    /// was given): the sockets systemd passed (socket activation: `LISTEN_FDS` for this
    /// process), else descriptor 0 when it is a listening socket, else 127.0.0.1:9000.
    pub fn fastcgi_listeners(&self) -> Vec<ListenAddr> {
        if self.fastcgi.is_empty() && self.scgi.is_empty() && self.ajp.is_empty() {
            let activated = systemd_listen_fds();
            if !activated.is_empty() {
                return activated;
            }
            if stdin_is_listening_socket() {
                return vec![ListenAddr::Fd(0)];
            }
            vec![ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 9000)))]
        } else {
            self.fastcgi.clone()
        }
    }

    /// Whether a supervisor process runs: prefork, recycling or reloading need one.
    pub fn supervised(&self) -> bool {
        self.processes > 1
            || self.max_requests.is_some()
            || self.touch_reload.is_some()
            || self.max_rss.is_some()
            || self.max_lifetime.is_some()
    }

    /// Defaults, as if run with no arguments (for embedding and tests).
    pub fn defaults() -> Self {
        Config::parse_from(["ringfast"])
    }
}

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const SD_LISTEN_FDS_START: i32 = 3;

/// The sockets passed by systemd socket activation: `LISTEN_FDS` descriptors from 3 on, when
/// `LISTEN_PID` names this process.
fn systemd_listen_fds() -> Vec<ListenAddr> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .filter(|n| (1..=64).contains(n));
    match (for_us, count) {
        (true, Some(n)) => (0..n)
            .map(|i| ListenAddr::Fd(SD_LISTEN_FDS_START + i))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether descriptor 0 is a listening socket (FCGI_LISTENSOCK_FILENO: the web server spawned
/// this process and passes the socket to accept on).
fn stdin_is_listening_socket() -> bool {
    let mut listening: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes one int we own; on a descriptor that is not a socket it fails.
    let rc = unsafe {
        libc::getsockopt(
            0,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut listening as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0 && listening != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            "127.0.0.1:9000".parse::<ListenAddr>().unwrap(),
            ListenAddr::Tcp("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(
            "[::1]:9000".parse::<ListenAddr>().unwrap(),
            ListenAddr::Tcp("[::1]:9000".parse().unwrap())
        );
        assert_eq!(
            "unix:/tmp/a.sock".parse::<ListenAddr>().unwrap(),
            ListenAddr::Unix("/tmp/a.sock".into())
        );
        assert!("unix:".parse::<ListenAddr>().is_err());
        assert_eq!("fd:0".parse::<ListenAddr>().unwrap(), ListenAddr::Fd(0));
        assert_eq!(ListenAddr::Fd(3).to_string(), "fd:3");
        assert!("fd:".parse::<ListenAddr>().is_err());
        assert!("fd:-1".parse::<ListenAddr>().is_err());
        assert!("nonsense".parse::<ListenAddr>().is_err());
    }

    #[test]
    fn options_parse() {
        let c = Config::parse_from([
            "ringfast",
            "--fastcgi",
            "127.0.0.1:1",
            "--fastcgi",
            "unix:/x",
            "--socket-mode",
            "0600",
            "--idle-timeout",
            "0.5",
            "--app",
            "diag",
        ]);
        assert_eq!(c.fastcgi.len(), 2);
        assert_eq!(c.socket_mode, 0o600);
        assert_eq!(c.idle_timeout, Duration::from_millis(500));
        assert_eq!(c.app, BuiltinApp::Diag);
        assert_eq!(Config::defaults().fastcgi_listeners().len(), 1);
    }
}
