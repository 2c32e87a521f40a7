//! The server: binds listeners, starts one worker thread per core, stops gracefully.
//!
//! The supervisor (the thread calling [`Server::run`]) binds every listener before any worker
//! starts, then starts the workers, each with its own io_uring event loop and its own copy of
//! the handler, and waits for them. [`StopHandle::stop`] (wired to SIGTERM/SIGINT by
//! [`signals::install`]) stops accepting, lets in-flight requests finish within the shutdown
//! timeout, and returns.

mod ajp;
mod conn;
mod control;
pub mod daemon;
mod dispatch;
mod fcgi;
pub mod fork;
mod handoff;
mod listener;
mod native;
mod prefork;
mod privileges;
mod recycle;
mod scgi;
mod sd_notify;
mod shutdown;
pub mod signals;
mod worker;
mod writer;

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

pub use listener::Protocol;
pub use prefork::Forked;
pub use privileges::PrivilegeError;
pub use shutdown::StopHandle;

use crate::app::Handler;
use crate::config::{Config, ListenAddr};
use listener::Bound;

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address as given.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// AJP on a non-loopback address without a secret (Ghostcat, CVE-2020-1938).
    #[error("refusing AJP on {addr} without --ajp-secret: anyone who can reach it could forge requests (CVE-2020-1938); use a loopback address, set --ajp-secret, or pass --ajp-allow-insecure")]
    InsecureAjp {
        /// The address as given.
        addr: String,
    },
    /// The pidfile could not be written.
    #[error("cannot write the pidfile {}: {source}", path.display())]
    Pidfile {
        /// The path given.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The process model failed: daemonizing, or the prefork supervisor's forks, signals or
    /// polling.
    #[error("{what}: {source}")]
    Process {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// `--user`, `--group` or `--socket-owner` cannot be used.
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    /// A worker thread could not start or failed.
    #[error("worker {index}: {source}")]
    Worker {
        /// The worker's index.
        index: usize,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The limits every connection driver enforces (see [`Config`] for what each one means).
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max_conns: usize,
    pub(crate) max_reqs_per_conn: usize,
    pub(crate) max_params_bytes: usize,
    pub(crate) body_buffer: usize,
    pub(crate) write_buffer: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) params_timeout: Duration,
    pub(crate) ajp_secret: Option<Vec<u8>>,
    pub(crate) ajp_packet_size: crate::proto::ajp::PacketSize,
}

impl Limits {
    fn from_config(c: &Config) -> Self {
        Limits {
            max_conns: c.max_conns.max(1),
            max_reqs_per_conn: c.max_reqs_per_conn.max(1),
            max_params_bytes: c.max_params_bytes,
            body_buffer: c.body_buffer,
            write_buffer: c.write_buffer.max(1024),
            idle_timeout: c.idle_timeout,
            params_timeout: c.params_timeout,
            ajp_secret: c.ajp_secret.as_ref().map(|s| s.as_bytes().to_vec()),
            ajp_packet_size: crate::proto::ajp::PacketSize::new(c.ajp_packet_size as usize)
                .unwrap_or(crate::proto::ajp::PacketSize::DEFAULT),
        }
    }

    /// The most requests in flight in the process: what FCGI_MAX_REQS reports.
    pub(crate) fn max_reqs_total(&self) -> usize {
        self.max_conns.saturating_mul(self.max_reqs_per_conn)
    }
}

/// A server with its listeners bound, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    config: Config,
    bound: Vec<(Protocol, Bound)>,
    stop: StopHandle,
    /// The `/metrics` endpoint, bound; serving starts with [`run`](Server::run).
    metrics: Option<crate::metrics::Exporter>,
    /// systemd's notification socket (`$NOTIFY_SOCKET`), in the process systemd started (not
    /// in a forked worker process).
    notify: Option<sd_notify::Notifier>,
    /// `--user` and `--group`: who the process that loads the application runs as.
    identity: Option<privileges::Identity>,
    /// Set in a worker process forked by the prefork supervisor.
    child: Option<prefork::ChildRole>,
    /// This process removes the Unix socket files it bound and the pidfile when it is done
    /// (not a forked worker process, not the parent left behind by `--daemonize`).
    owns_files: bool,
    /// The native loop the workers run, and on which I/O (see [`native_loop`]); `None`:
    /// tokio-uring.
    native: Option<native::Backend>,
    /// The process group's hand-off socket for idle connections of stopping worker processes
    /// (prefork only; see `server/handoff.rs`).
    handoff: Option<handoff::Handoff>,
}

impl Server {
    /// Binds every listener the configuration names. Nothing is accepted until
    /// [`run`](Server::run).
    pub fn bind(config: Config) -> Result<Self, ServerError> {
        if let Some(mask) = config.umask {
            // SAFETY: umask only sets the process's file creation mask.
            unsafe { libc::umask(mask as libc::mode_t) };
        }
        // Names are looked up before anything is bound: a typo stops the start.
        let identity = privileges::resolve(config.user.as_deref(), config.group.as_deref())?;
        let socket_owner = match &config.socket_owner {
            Some(spec) => Some(privileges::resolve_owner(spec)?),
            None => None,
        };
        if identity.is_none() && privileges::euid() == 0 {
            tracing::warn!(
                "running as root: the application will run as root too; give --user USER (and \
                 --group GROUP) to switch to an unprivileged user once the listeners are bound"
            );
        }
        let workers = config.worker_count();
        let mut bound = Vec::new();
        for addr in &config.ajp {
            let loopback = match addr {
                ListenAddr::Tcp(a) => a.ip().is_loopback(),
                ListenAddr::Unix(_) => true,
                // Its address is not ours to check: treat it as reachable from anywhere.
                ListenAddr::Fd(_) => false,
            };
            if !loopback && config.ajp_secret.is_none() && !config.ajp_allow_insecure {
                return Err(ServerError::InsecureAjp {
                    addr: addr.to_string(),
                });
            }
        }
        let all = [
            (Protocol::FastCgi, config.fastcgi_listeners()),
            (Protocol::Scgi, config.scgi.clone()),
            (Protocol::Ajp, config.ajp.clone()),
        ];
        let mut inherited = std::collections::HashSet::new();
        for (protocol, addrs) in all {
            for addr in addrs {
                if let ListenAddr::Fd(fd) = addr {
                    if !inherited.insert(fd) {
                        return Err(ServerError::Bind {
                            addr: addr.to_string(),
                            source: std::io::Error::new(
                                std::io::ErrorKind::InvalidInput,
                                "the same descriptor is named twice",
                            ),
                        });
                    }
                }
                let b = listener::bind(&addr, workers, config.backlog, config.socket_mode)?;
                if let (Some((uid, gid)), Some(path)) = (socket_owner, b.owned_path()) {
                    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|source| {
                        ServerError::Bind {
                            addr: addr.to_string(),
                            source,
                        }
                    })?;
                }
                bound.push((protocol, b));
            }
        }
        let native = native_loop(&config);
        crate::metrics::set_io_backend(match native {
            Some(backend) => backend.name(),
            None => crate::metrics::IO_BACKEND_TOKIO,
        });
        let metrics = crate::metrics::Exporter::from_option(config.metrics)
            .map_err(|(addr, source)| ServerError::Bind { addr, source })?;
        let notify = sd_notify::Notifier::from_env().unwrap_or_else(|e| {
            tracing::warn!("not notifying systemd: {e}");
            None
        });
        if let Some(path) = &config.pidfile {
            std::fs::write(path, format!("{}\n", std::process::id())).map_err(|source| {
                ServerError::Pidfile {
                    path: path.clone(),
                    source,
                }
            })?;
        }
        Ok(Server {
            config,
            bound,
            native,
            stop: StopHandle::new(),
            metrics,
            notify,
            identity,
            child: None,
            owns_files: true,
            handoff: None,
        })
    }

    /// With `--daemonize`, forks into the background (see [`daemon`]): returns
    /// [`daemon::Daemonized::Parent`] in the original process, which should exit, and
    /// [`daemon::Daemonized::Daemon`] in the daemon, whose pidfile now holds its own pid.
    /// Without the option, returns `Daemon` at once. Call right after [`bind`](Server::bind).
    pub fn daemonize(&mut self) -> Result<daemon::Daemonized, ServerError> {
        if !self.config.daemonize {
            return Ok(daemon::Daemonized::Daemon);
        }
        let forked = daemon::daemonize(self.config.log_file.as_deref()).map_err(|source| {
            ServerError::Process {
                what: "cannot daemonize",
                source,
            }
        })?;
        if let daemon::Daemonized::Parent { .. } = forked {
            // The files are the daemon's now.
            self.owns_files = false;
        }
        if forked == daemon::Daemonized::Daemon {
            if let Some(path) = &self.config.pidfile {
                if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
                    tracing::error!(path = %path.display(), error = %e, "cannot rewrite the pidfile");
                }
            }
        }
        Ok(forked)
    }

    /// With `--processes N` (N > 1), `--max-requests` or `--touch-reload`, forks the worker
    /// processes and supervises them: returns
    /// [`Forked::Serve`] in each worker process, which then loads its application and calls
    /// [`run`](Server::run), and [`Forked::Exit`] in the supervisor once it has stopped (see
    /// `server/prefork.rs`). With one process, returns [`Forked::Serve`] at once, unchanged.
    ///
    /// Call it before any thread is started (signal handlers included): the supervisor forks.
    pub fn fork_processes(self) -> Result<Forked, ServerError> {
        let forked = if !self.config.supervised() {
            Forked::Serve(Box::new(self))
        } else {
            let mut server = self;
            if server.config.keepalive_handoff {
                let pair = handoff::Handoff::new().map_err(|source| ServerError::Process {
                    what: "cannot make the connection hand-off socket",
                    source,
                })?;
                server.handoff = Some(pair);
            }
            prefork::supervise(server)?
        };
        // The process that loads the application gives up root here (--user), before the
        // application is loaded and before any request is read; the supervisor stays as it is.
        if let Forked::Serve(server) = &forked {
            if let Some(id) = &server.identity {
                privileges::switch_to(id, server.child.is_some())?;
            }
        }
        Ok(forked)
    }

    /// The bound addresses (with the real port where port 0 was asked for).
    pub fn local_addrs(&self) -> Vec<(Protocol, ListenAddr)> {
        self.bound.iter().map(|(p, b)| (*p, b.addr())).collect()
    }

    /// The address `/metrics` is served on, unless metrics are off.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().map(|m| m.local_addr())
    }

    /// A handle that stops the server from any thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Starts the workers, each with the handler `make_handler(worker_index)` returns, and
    /// blocks until the server is stopped and the workers have finished.
    pub fn run<H, F>(mut self, make_handler: F) -> Result<(), ServerError>
    where
        H: Handler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let workers = self.config.worker_count();
        let limits = Limits::from_config(&self.config);
        let process_conns = Arc::new(AtomicUsize::new(0));
        let next_conn_id = Arc::new(AtomicU64::new(1));
        let make_handler = Arc::new(make_handler);
        let child = self.child.take();
        // Only a server without a supervisor notifies systemd from here.
        let mut notify = self.notify.take().filter(|_| child.is_none());
        let registry = match self.metrics.take() {
            Some(exporter) => {
                let addr = exporter.local_addr().to_string();
                let registry = exporter
                    .spawn()
                    .map_err(|source| ServerError::Bind { addr, source })?;
                registry.set_workers(workers);
                Some(registry)
            }
            // A worker process records; the supervisor serves the page.
            None if child.as_ref().is_some_and(|c| c.metrics) => {
                let registry = crate::metrics::Registry::new();
                registry.set_workers(workers);
                Some(registry)
            }
            None => None,
        };
        // --max-requests: a budget shared by this process's workers; when it is spent the
        // supervisor is told (the notice is set once the control channel is up) and we stop.
        let budget_notice: Arc<std::sync::OnceLock<control::RetireNotice>> = Arc::default();
        let budget = match (self.config.max_requests, &child) {
            (Some(max), Some(_)) => {
                let notice = budget_notice.clone();
                let jitter = self.config.max_requests_jitter.unwrap_or(0);
                let max = max.saturating_add(recycle::jitter(jitter));
                tracing::debug!(requests = max, "max-requests budget of this worker process");
                Some(recycle::Budget::new(
                    max,
                    self.stop.clone(),
                    Arc::new(move || {
                        if let Some(n) = notice.get() {
                            n.send();
                        }
                    }),
                ))
            }
            _ => None,
        };
        // Worker numbers are unique across worker processes (the `worker` label).
        let first_worker = child.as_ref().map_or(0, |c| c.slot * workers);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if child.is_none() {
            for (p, b) in &self.bound {
                tracing::info!(protocol = p.name(), addr = %b.addr(), workers, "listening");
            }
        }
        let native = self.native;
        // Only worker processes hand connections over (a single process has nobody to take them).
        let handoff = match child {
            Some(_) => self.handoff.as_ref().map(handoff::Handoff::fds),
            None => None,
        };
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        for index in 0..workers {
            let mut listeners = Vec::new();
            let mut exclusive = Vec::new();
            for (p, b) in &self.bound {
                let l = b
                    .for_worker(index)
                    .map_err(|source| ServerError::Worker { index, source })?;
                listeners.push((*p, l));
                // Only this worker of this process accepts on it: a worker process's
                // sockets are shared with its predecessor and successor.
                exclusive.push(b.is_per_worker() && child.is_none());
            }
            let make_handler = make_handler.clone();
            let spec_parts = (
                limits.clone(),
                self.stop.clone(),
                process_conns.clone(),
                next_conn_id.clone(),
            );
            let ring_entries = self.config.ring_entries;
            let shutdown_timeout = self.config.shutdown_timeout;
            let pin = self.config.pin;
            let done_tx = done_tx.clone();
            let metrics = registry.clone();
            let budget = budget.clone();
            let number = first_worker + index;
            std::thread::Builder::new()
                .name(format!("ringfast-w{number}"))
                .spawn(move || {
                    if pin {
                        pin_to_cpu(number % cpus);
                    }
                    let (limits, stop, process_conns, next_conn_id) = spec_parts;
                    let spec = worker::WorkerSpec {
                        index: number,
                        exclusive,
                        handler: make_handler(number),
                        limits,
                        listeners,
                        stop,
                        process_conns,
                        next_conn_id,
                        ring_entries,
                        shutdown_timeout,
                        metrics,
                        budget,
                        handoff,
                    };
                    let result = match native {
                        Some(backend) => native::run_on(backend, spec, dispatch::run_handler::<H>),
                        None => worker::run(spec),
                    };
                    let _ = done_tx.send((index, result));
                })
                .map_err(|source| ServerError::Worker { index, source })?;
        }
        drop(done_tx);
        if let Some(child) = child {
            let registry = registry.clone();
            let render = move || registry.as_ref().map(|r| r.render()).unwrap_or_default();
            match child.channel.serve(render) {
                Ok(notice) => {
                    let _ = budget_notice.set(notice);
                }
                Err(source) => {
                    tracing::error!(error = %source, "cannot reach the supervisor");
                    self.stop.stop();
                }
            }
        }
        if let Some(n) = &notify {
            n.ready(&self.status_line(1));
        }
        let mut stopping_said = false;
        let mut first_error = None;
        let mut finished = 0;
        while finished < workers {
            if let Some(n) = notify.as_mut() {
                if self.stop.is_stopped() && !stopping_said {
                    stopping_said = true;
                    n.stopping("stopping: finishing the requests in flight");
                }
                n.ping_if_due();
            }
            let waited = if self.stop.is_stopped() {
                // Workers give up on requests at the shutdown timeout; allow a margin.
                match done_rx.recv_timeout(self.config.shutdown_timeout + Duration::from_secs(2)) {
                    Ok(v) => Some(v),
                    Err(_) => break,
                }
            } else {
                match done_rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(v) => Some(v),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                    Err(_) => break,
                }
            };
            if let Some((index, result)) = waited {
                finished += 1;
                if let Err(source) = result {
                    tracing::error!(worker = index, error = %source, "worker failed");
                    first_error.get_or_insert(ServerError::Worker { index, source });
                    self.stop.stop();
                }
            }
        }
        // The supervisor owns the Unix socket paths of a worker process.
        self.cleanup();
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// One line for systemd's `STATUS=`: the listeners, processes and workers.
    fn status_line(&self, processes: usize) -> String {
        let listeners: Vec<String> = self
            .bound
            .iter()
            .map(|(p, b)| format!("{} on {}", p.name(), b.addr()))
            .collect();
        format!(
            "serving {}; {processes} process(es) x {} worker(s)",
            listeners.join(", "),
            self.config.worker_count()
        )
    }

    /// Removes the Unix socket files and the pidfile, once, if this process owns them. Also
    /// runs on drop, so a server that never ran (an application that failed to load) leaves
    /// nothing behind.
    fn cleanup(&mut self) {
        if !std::mem::take(&mut self.owns_files) {
            return;
        }
        if let Some(path) = &self.config.pidfile {
            let _ = std::fs::remove_file(path);
        }
        for (_, b) in &self.bound {
            if let Some(path) = b.owned_path() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// The native loop's I/O the workers run: `--io ring` (the default) where a ring with the
/// features the loop needs can be set up, epoll otherwise (the reason is logged) or with
/// `--io epoll`; `None` for `--io tokio-uring`.
fn native_loop(config: &Config) -> Option<native::Backend> {
    use crate::config::IoLoop;
    match config.io {
        IoLoop::TokioUring => None,
        IoLoop::Epoll => Some(native::Backend::Epoll),
        IoLoop::Ring => match native::available(config.ring_entries) {
            Ok(()) => Some(native::Backend::Ring),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "cannot set up the native ring (io_uring); the workers run the native loop on epoll"
                );
                Some(native::Backend::Epoll)
            }
        },
    }
}

/// Pins the calling thread to one CPU; failures are logged, not fatal.
fn pin_to_cpu(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it; sched_setaffinity reads it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        tracing::warn!(cpu, error = %std::io::Error::last_os_error(), "cannot pin worker");
    }
}
