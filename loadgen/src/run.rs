//! The run: one thread per `--threads`, each with its own tokio current-thread runtime and its
//! share of the connections; warm-up, then the measured window; a live progress line on a
//! terminal; the threads' statistics merged at the end.

use std::cell::RefCell;
use std::io::{IsTerminal as _, Write as _};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::{Config, Stop};
use crate::conn;
use crate::request::Encoded;
use crate::stats::{ErrorKind, Stats};

/// When things happen, shared by every thread.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// The first intended send time.
    pub start: Instant,
    /// The end of the warm-up: requests meant to be sent from here on are measured.
    pub measure_start: Instant,
    /// The end of the measured window (`None` with `--requests`).
    pub end: Option<Instant>,
}

/// Counters a thread updates for the progress line (one cache line each).
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Progress {
    ok: AtomicU64,
    errors: AtomicU64,
}

/// State shared by all threads.
#[derive(Debug)]
pub struct Shared {
    stop: AtomicBool,
    /// Set by SIGINT or SIGTERM: stop early and report what was measured.
    interrupted: Arc<AtomicBool>,
    /// Measured outcomes so far, successes and errors (only counted with `--requests`).
    measured: AtomicU64,
    /// Nanoseconds from `measure_start` to the last counted request (`--requests`).
    finished_ns: AtomicU64,
    progress: Vec<Progress>,
}

/// What a thread's connections share.
pub struct ThreadCtx {
    /// The run's configuration.
    pub config: Arc<Config>,
    /// The encoded request.
    pub request: Encoded,
    /// The timeline.
    pub plan: Plan,
    /// This thread's statistics.
    pub stats: RefCell<Stats>,
    shared: Arc<Shared>,
    thread: usize,
    limit: Option<u64>,
}

impl ThreadCtx {
    fn measuring(&self, now: Instant) -> bool {
        now >= self.plan.measure_start && self.plan.end.is_none_or(|end| now < end)
    }

    /// Whether the run is over.
    pub fn stopped(&self, now: Instant) -> bool {
        self.plan.end.is_some_and(|end| now >= end)
            || self.shared.stop.load(Ordering::Relaxed)
            || self.shared.interrupted.load(Ordering::Relaxed)
    }

    /// Counts an error of `kind` that happened at `now`.
    pub fn error(&self, kind: ErrorKind, now: Instant) {
        if self.measuring(now) && !self.stopped(now) && self.count_toward_limit(now) {
            self.stats.borrow_mut().errors.add(kind);
        }
        self.shared.progress[self.thread]
            .errors
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A successful response at `now` to a request meant to be sent at `intended`. Latency runs
    /// from the intended send time (in closed loop: the actual send time).
    pub fn success(&self, intended: Instant, now: Instant) {
        self.shared.progress[self.thread]
            .ok
            .fetch_add(1, Ordering::Relaxed);
        if intended < self.plan.measure_start || !self.measuring(now) {
            return;
        }
        if !self.count_toward_limit(now) {
            return;
        }
        let us = now.duration_since(intended).as_micros();
        self.stats
            .borrow_mut()
            .record(u64::try_from(us).unwrap_or(u64::MAX));
    }

    /// With `--requests N`: counts one measured outcome (success or error) and says whether it
    /// is among the first N; the N-th stops the run. Always true without `--requests`.
    fn count_toward_limit(&self, now: Instant) -> bool {
        let Some(limit) = self.limit else {
            return true;
        };
        let n = self.shared.measured.fetch_add(1, Ordering::Relaxed);
        if n + 1 == limit {
            let ns = now.duration_since(self.plan.measure_start).as_nanos();
            self.shared
                .finished_ns
                .store(u64::try_from(ns).unwrap_or(u64::MAX), Ordering::Relaxed);
            self.shared.stop.store(true, Ordering::Relaxed);
        }
        n < limit
    }

    /// `n` bytes written at `now`.
    pub fn sent(&self, n: usize, now: Instant) {
        if self.measuring(now) {
            self.stats.borrow_mut().bytes_sent += n as u64;
        }
    }

    /// `n` bytes read at `now`.
    pub fn received(&self, n: usize, now: Instant) {
        if self.measuring(now) {
            self.stats.borrow_mut().bytes_received += n as u64;
        }
    }
}

/// The merged result of a run.
#[derive(Debug)]
pub struct Outcome {
    /// Everything measured.
    pub stats: Stats,
    /// The measured wall time.
    pub duration: Duration,
    /// Threads used.
    pub threads: usize,
    /// The run was cut short by SIGINT or SIGTERM.
    pub interrupted: bool,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The request could not be encoded.
    #[error(transparent)]
    Encode(#[from] crate::request::EncodeError),
    /// A thread, its runtime or the signal handlers could not start.
    #[error("cannot start a load thread: {0}")]
    Thread(std::io::Error),
    /// A load thread panicked.
    #[error("a load thread panicked")]
    Panicked,
}

/// Runs the load described by `config`.
pub fn run(config: Config) -> Result<Outcome, RunError> {
    let request = crate::request::encode(&config)?;
    let config = Arc::new(config);
    let threads = config.threads;
    let start = Instant::now() + Duration::from_millis(20);
    let measure_start = start + config.warmup;
    let (end, limit) = match config.stop {
        Stop::After(d) => (Some(measure_start + d), None),
        Stop::Requests(n) => (None, Some(n)),
    };
    let plan = Plan {
        start,
        measure_start,
        end,
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal exits at once (status 130); the first stops the run and reports.
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&interrupted))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&interrupted)))
            .map_err(RunError::Thread)?;
    }
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        interrupted,
        measured: AtomicU64::new(0),
        finished_ns: AtomicU64::new(0),
        progress: (0..threads).map(|_| Progress::default()).collect(),
    });
    let mut handles = Vec::new();
    for thread in 0..threads {
        let config = Arc::clone(&config);
        let shared = Arc::clone(&shared);
        let request = request.clone();
        let handle = std::thread::Builder::new()
            .name(format!("load-{thread}"))
            .spawn(move || load_thread(config, request, plan, shared, thread, limit))
            .map_err(RunError::Thread)?;
        handles.push(handle);
    }
    let show = config.progress && !config.quiet && std::io::stderr().is_terminal();
    if show {
        progress_line(&shared, &plan, &handles);
    }
    let mut stats = Stats::new();
    for handle in handles {
        let thread_stats = handle
            .join()
            .map_err(|_| RunError::Panicked)?
            .map_err(RunError::Thread)?;
        stats.merge(&thread_stats);
    }
    let interrupted = shared.interrupted.load(Ordering::Relaxed);
    let duration = match end {
        Some(end) if interrupted => Instant::now()
            .min(end)
            .saturating_duration_since(measure_start),
        Some(end) => end.duration_since(measure_start),
        None => {
            let ns = shared.finished_ns.load(Ordering::Relaxed);
            if shared.stop.load(Ordering::Relaxed) {
                Duration::from_nanos(ns)
            } else {
                Instant::now().saturating_duration_since(measure_start)
            }
        }
    };
    Ok(Outcome {
        stats,
        duration,
        threads,
        interrupted,
    })
}

fn load_thread(
    config: Arc<Config>,
    request: Encoded,
    plan: Plan,
    shared: Arc<Shared>,
    thread: usize,
    limit: Option<u64>,
) -> std::io::Result<Stats> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let threads = config.threads;
    let connections = config.connections;
    let ctx = Rc::new(ThreadCtx {
        config,
        request,
        plan,
        stats: RefCell::new(Stats::new()),
        shared,
        thread,
        limit,
    });
    let local = tokio::task::LocalSet::new();
    let watcher_ctx = Rc::clone(&ctx);
    local.block_on(&runtime, async move {
        let mut tasks = Vec::new();
        for index in (thread..connections).step_by(threads) {
            tasks.push(tokio::task::spawn_local(conn::run(
                Rc::clone(&watcher_ctx),
                index,
            )));
        }
        // Stop at the end of the window, or when another thread reached --requests.
        loop {
            let now = Instant::now();
            if watcher_ctx.stopped(now) || tasks.iter().all(|t| t.is_finished()) {
                break;
            }
            let tick = now + Duration::from_millis(5);
            let wake = watcher_ctx.plan.end.map_or(tick, |end| end.min(tick));
            tokio::time::sleep_until(wake.into()).await;
        }
        for task in &tasks {
            task.abort();
        }
    });
    drop(local);
    let stats = ctx.stats.borrow().clone();
    Ok(stats)
}

/// Redraws one status line on stderr every second until every thread is done.
fn progress_line<T>(shared: &Shared, plan: &Plan, handles: &[std::thread::JoinHandle<T>]) {
    let mut last = (Instant::now(), 0u64);
    let mut stderr = std::io::stderr();
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
        let now = Instant::now();
        if now.duration_since(last.0) < Duration::from_secs(1) {
            continue;
        }
        let ok: u64 = shared
            .progress
            .iter()
            .map(|p| p.ok.load(Ordering::Relaxed))
            .sum();
        let errors: u64 = shared
            .progress
            .iter()
            .map(|p| p.errors.load(Ordering::Relaxed))
            .sum();
        let rate = (ok - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        let phase = if now < plan.measure_start {
            "warm-up"
        } else {
            "measuring"
        };
        let elapsed = now.saturating_duration_since(plan.start).as_secs_f64();
        let _ = write!(
            stderr,
            "\r\x1b[K{elapsed:6.1}s {phase:9} {ok:>10} ok {errors:>8} errors {rate:>10.0} req/s"
        );
        let _ = stderr.flush();
        last = (now, ok);
    }
    let _ = write!(stderr, "\r\x1b[K");
    let _ = stderr.flush();
}
