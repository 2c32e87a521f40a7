//! The supervisor: `--processes N` worker processes sharing the listeners it bound (prefork),
//! recycled after `--max-requests`, reloaded on `--touch-reload` or SIGHUP.
//!
//! The supervisor binds every listener, then forks the worker processes. Each one loads the
//! application itself (so each Python worker has its own interpreter and GIL), starts
//! `--workers` threads on the inherited listeners, and tells the supervisor it is ready over its
//! control channel ([`super::control`]). The supervisor stays single-threaded, so forking a
//! replacement later is safe: one `poll` loop over a signalfd, the `/metrics` listener and the
//! control channels of processes still starting.
//!
//! - A process that dies after it was ready is replaced (at most once a second per slot).
//! - A process that spent its `--max-requests` budget says so and stops; its replacement is
//!   started at once, so the slot is never empty for long.
//! - Reload (`--touch-reload FILE` touched, or SIGHUP): every slot gets a new process (the next
//!   generation) while the old ones keep serving. Once every new process is ready, the old ones
//!   are stopped gracefully. The listeners stay open throughout, so connections wait in the
//!   backlog at worst and no request is refused.
//! - A reload whose new process exits before it was ready (the application fails to load: a
//!   syntax error, a missing module) fails as a whole: the new processes are stopped, the old
//!   generation keeps serving, the failure is logged and counted in
//!   `ringfast_reload_failures_total`, and the next reload tries again. A reload during a reload
//!   replaces the generation still starting.
//! - A process that exits before it was ready at the first start (the application cannot load)
//!   stops everything: the supervisor exits non-zero, as a single process would. Once the site
//!   has served, a replacement that fails to load does not stop the others: it is retried,
//!   waiting twice as long after each failure (up to 30 s). One killed by a signal before it was
//!   ready is replaced.
//! - SIGTERM or SIGINT: the supervisor forwards SIGTERM to every process, which stops
//!   gracefully; after the shutdown timeout (plus a margin) what is left is killed. A second
//!   SIGINT kills at once and exits 130.
//! - `/metrics` is served by the supervisor: it asks each ready process for its page and merges
//!   them (worker labels are unique across processes), adding `ringfast_worker_processes`,
//!   `ringfast_process_restarts_total`, `ringfast_reloads_total` and
//!   `ringfast_reload_failures_total`.
//! - Each process has PR_SET_PDEATHSIG, so it stops if the supervisor dies.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::control::{self, Event, SupervisorEnd, WorkerEnd};
use super::signals::FORCED_EXIT_STATUS;
use super::{Server, ServerError};

/// What [`Server::fork_processes`] returns in each process.
#[derive(Debug)]
pub enum Forked {
    /// This process serves: load the application, then [`Server::run`].
    Serve(Box<Server>),
    /// This was the supervisor; it has finished. Exit with this status.
    Exit(i32),
}

/// The child's side of a fork: which slot it is and its control channel.
#[derive(Debug)]
pub(crate) struct ChildRole {
    /// The slot (0-based); its workers are numbered from `slot * workers`.
    pub(crate) slot: usize,
    /// The channel to the supervisor.
    pub(crate) channel: WorkerEnd,
    /// Whether metrics are recorded (the supervisor serves them).
    pub(crate) metrics: bool,
}

/// The smallest gap between two starts of the same slot.
const RESPAWN_GAP: Duration = Duration::from_secs(1);
/// The longest wait before starting a slot again whose processes keep failing to load.
const MAX_RESPAWN_GAP: Duration = Duration::from_secs(30);
/// How long the supervisor waits for a process's metrics page.
const PAGE_TIMEOUT: Duration = Duration::from_secs(2);
/// Extra time after the shutdown timeout before the remaining processes are killed.
const KILL_MARGIN: Duration = Duration::from_secs(3);

/// Whether a worker process has said it is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Forked; waiting for its ready frame.
    Starting,
    /// Serving.
    Ready,
}

/// Where a freshly forked process goes in its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// It serves the slot (first start, replacement, recycle).
    Current,
    /// It belongs to the generation a reload is starting.
    Next,
}

/// One worker process the supervisor forked.
#[derive(Debug)]
struct Child {
    pid: libc::pid_t,
    phase: Phase,
    channel: Option<SupervisorEnd>,
    /// When it was forked (`--max-lifetime`).
    born: Instant,
}

#[derive(Debug)]
struct Slot {
    /// The process serving the slot (or starting to), if any.
    current: Option<Child>,
    /// A reload's new process, kept apart until the whole new generation is ready.
    next: Option<Child>,
    /// When `current` was last started: the respawn gap counts from it.
    started: Instant,
    /// When to start a replacement for a missing `current`.
    respawn_at: Option<Instant>,
    /// Processes of this slot in a row that exited before they were ready.
    load_failures: u32,
    /// Predecessors stopping (signalled, or recycling themselves).
    retiring: Vec<libc::pid_t>,
}

impl Slot {
    fn empty() -> Slot {
        Slot {
            current: None,
            next: None,
            started: Instant::now(),
            respawn_at: None,
            load_failures: 0,
            retiring: Vec::new(),
        }
    }

    fn child_mut(&mut self, place: Place) -> Option<&mut Child> {
        match place {
            Place::Current => self.current.as_mut(),
            Place::Next => self.next.as_mut(),
        }
    }

    /// Every live process of the slot: current, next and predecessors.
    fn pids(&self) -> impl Iterator<Item = libc::pid_t> + '_ {
        self.current
            .iter()
            .chain(self.next.iter())
            .map(|c| c.pid)
            .chain(self.retiring.iter().copied())
    }

    /// Moves `child` to the predecessors and asks it to stop gracefully.
    fn retire(&mut self, child: Child) {
        signal(child.pid, libc::SIGTERM);
        self.retiring.push(child.pid);
    }
}

/// Sends `sig` to one of the supervisor's children.
fn signal(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill with the pid of a child not yet reaped (so not reused) and a valid signal.
    unsafe { libc::kill(pid, sig) };
}

/// The supervisor's state.
struct Supervisor {
    server: Server,
    old_mask: libc::sigset_t,
    signals: OwnedFd,
    http: Option<TcpListener>,
    metrics: bool,
    slots: Vec<Slot>,
    restarts: u64,
    recycles: u64,
    reloads: u64,
    reload_failures: u64,
    touch_file: Option<(std::path::PathBuf, Option<std::time::SystemTime>)>,
    /// When `--max-rss` and `--max-lifetime` were last checked.
    limits_checked: Instant,
    stopping: Option<Instant>,
    failed: bool,
    /// Every slot had a ready process at some point: the application loads, so a later load
    /// failure is not a reason to stop.
    served: bool,
}

/// Forks the worker processes (see the module docs). Returns [`Forked::Serve`] in each worker
/// process and [`Forked::Exit`] in the supervisor once it has stopped.
pub(crate) fn supervise(mut server: Server) -> Result<Forked, ServerError> {
    let n = server.config.processes.max(1);
    let (old_mask, signals) = block_signals().map_err(supervisor_error)?;
    let metrics = server.metrics.is_some();
    let http = match server.metrics.take() {
        Some(exporter) => {
            let l = exporter.into_listener();
            l.set_nonblocking(true).map_err(supervisor_error)?;
            tracing::info!(addr = %l.local_addr().map_err(supervisor_error)?, "metrics of all worker processes at /metrics");
            Some(l)
        }
        None => None,
    };
    let mut sup = Supervisor {
        server,
        old_mask,
        signals,
        http,
        metrics,
        slots: Vec::with_capacity(n),
        restarts: 0,
        recycles: 0,
        reloads: 0,
        reload_failures: 0,
        touch_file: None,
        limits_checked: Instant::now(),
        stopping: None,
        failed: false,
        served: false,
    };
    for (p, b) in &sup.server.bound {
        tracing::info!(protocol = p.name(), addr = %b.addr(), processes = n, "listening");
    }
    if let Some(path) = sup.server.config.touch_reload.clone() {
        let mtime = modified(&path);
        tracing::info!(file = %path.display(), "reloading when this file is touched");
        sup.touch_file = Some((path, mtime));
    }
    for slot in 0..n {
        sup.slots.push(Slot::empty());
        if let Some(child) = sup.spawn(slot, Place::Current)? {
            return Ok(Forked::Serve(Box::new(sup.into_child(child))));
        }
    }
    sup.run()
}

/// The modification time of `path`, if it exists.
fn modified(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn supervisor_error(source: std::io::Error) -> ServerError {
    ServerError::Process {
        what: "supervisor",
        source,
    }
}

/// Blocks SIGINT, SIGTERM, SIGCHLD and SIGHUP and returns the previous mask and a signalfd for them.
fn block_signals() -> std::io::Result<(libc::sigset_t, OwnedFd)> {
    // SAFETY: sigset_t is plain data initialised by sigemptyset; sigprocmask and signalfd read
    // the sets we own and write only `old`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGCHLD, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        let mut old: libc::sigset_t = std::mem::zeroed();
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((old, OwnedFd::from_raw_fd(fd)))
    }
}

impl Supervisor {
    /// Forks a process for `slot`, to go in `place`. Returns `Some` in the child.
    fn spawn(
        &mut self,
        slot: usize,
        place: Place,
    ) -> Result<Option<(usize, WorkerEnd)>, ServerError> {
        let (sup_end, worker_end) = control::pair().map_err(supervisor_error)?;
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the supervisor is single-threaded, so the child starts in a consistent state.
        let pid = unsafe { super::fork::fork() };
        if pid < 0 {
            return Err(supervisor_error(std::io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: restores the mask saved before blocking; prctl with a signal number.
            unsafe {
                libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut());
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                // The supervisor died between fork and prctl: do not run as an orphan.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
            }
            drop(sup_end);
            return Ok(Some((slot, worker_end)));
        }
        drop(worker_end);
        let child = Child {
            pid,
            phase: Phase::Starting,
            channel: Some(sup_end),
            born: Instant::now(),
        };
        let s = &mut self.slots[slot];
        match place {
            Place::Current => {
                tracing::info!(slot, pid, "worker process started");
                s.current = Some(child);
                s.started = Instant::now();
                s.respawn_at = None;
            }
            Place::Next => {
                tracing::info!(slot, pid, reload = true, "worker process started");
                s.next = Some(child);
            }
        }
        Ok(None)
    }

    /// In a freshly forked child: drops everything only the supervisor uses (descriptors
    /// included) and returns the server to run.
    fn into_child(self, (slot, channel): (usize, WorkerEnd)) -> Server {
        let Supervisor {
            mut server,
            signals,
            http,
            slots,
            metrics,
            ..
        } = self;
        drop((signals, http, slots));
        server.owns_files = false;
        server.notify = None;
        server.child = Some(ChildRole {
            slot,
            channel,
            metrics,
        });
        server
    }

    fn live(&self) -> usize {
        self.slots.iter().map(|s| s.pids().count()).sum()
    }

    fn run(mut self) -> Result<Forked, ServerError> {
        loop {
            if self.stopping.is_some() && self.live() == 0 {
                break;
            }
            if let Some(since) = self.stopping {
                if since.elapsed() > self.server.config.shutdown_timeout + KILL_MARGIN {
                    tracing::warn!("worker processes did not stop in time; killing them");
                    self.kill_all(libc::SIGKILL);
                    self.reap_blocking();
                    break;
                }
            }
            if let Some(n) = self.server.notify.as_mut() {
                n.ping_if_due();
            }
            if self.touched() {
                tracing::info!("reload: the touch-reload file changed");
                if let Some(child) = self.reload()? {
                    return Ok(Forked::Serve(Box::new(self.into_child(child))));
                }
            }
            if let Some(child) = self.respawn_due()? {
                return Ok(Forked::Serve(Box::new(self.into_child(child))));
            }
            if let Some(child) = self.recycle_over_limits()? {
                return Ok(Forked::Serve(Box::new(self.into_child(child))));
            }
            if let Some(child) = self.wait_and_handle()? {
                return Ok(Forked::Serve(Box::new(self.into_child(child))));
            }
        }
        self.server.cleanup();
        tracing::info!(
            restarts = self.restarts,
            recycles = self.recycles,
            reloads = self.reloads,
            reload_failures = self.reload_failures,
            "supervisor stopped"
        );
        Ok(Forked::Exit(i32::from(self.failed)))
    }

    /// Whether the touch-reload file's modification time changed since last seen.
    fn touched(&mut self) -> bool {
        if self.stopping.is_some() {
            return false;
        }
        let Some((path, seen)) = &mut self.touch_file else {
            return false;
        };
        let now = modified(path);
        if now == *seen {
            return false;
        }
        *seen = now;
        now.is_some()
    }

    /// Starts the next generation: a new process for every slot, next to the one serving it
    /// (an empty slot gets its process at once). The old processes are stopped when the whole
    /// generation is ready ([`Supervisor::commit_if_ready`]). Returns `Some` in a child.
    fn reload(&mut self) -> Result<Option<(usize, WorkerEnd)>, ServerError> {
        self.reloads += 1;
        if let Some(n) = &self.server.notify {
            n.reloading(&format!(
                "reloading: starting {} new worker process(es)",
                self.slots.len()
            ));
        }
        for slot in 0..self.slots.len() {
            let s = &mut self.slots[slot];
            // A generation still starting is superseded by this one.
            if let Some(stale) = s.next.take() {
                tracing::info!(
                    slot,
                    pid = stale.pid,
                    "stopping a new worker process of the previous, unfinished reload"
                );
                s.retire(stale);
            }
            let place = if s.current.is_some() {
                Place::Next
            } else {
                Place::Current
            };
            if let Some(child) = self.spawn(slot, place)? {
                return Ok(Some(child));
            }
        }
        Ok(None)
    }

    /// Once every process of the new generation is ready, it takes over: each old process is
    /// stopped gracefully.
    fn commit_if_ready(&mut self) {
        let mut pending = self.slots.iter().filter_map(|s| s.next.as_ref()).peekable();
        if pending.peek().is_none() || pending.any(|c| c.phase != Phase::Ready) {
            return;
        }
        for s in &mut self.slots {
            let Some(next) = s.next.take() else {
                continue;
            };
            if let Some(old) = s.current.take() {
                s.retire(old);
            }
            s.current = Some(next);
            s.respawn_at = None;
            s.load_failures = 0;
        }
        tracing::info!(
            processes = self.slots.len(),
            "reload complete: the new worker processes serve; the previous ones finish their requests"
        );
        self.notify_ready("");
        self.note_all_ready();
    }

    /// A process of the new generation exited before the generation took over: the reload
    /// failed. The rest of the new generation is stopped and the old one keeps serving.
    fn abort_reload(&mut self) {
        self.reload_failures += 1;
        self.notify_ready("; the last reload failed, the previous worker processes serve");
        for slot in 0..self.slots.len() {
            let s = &mut self.slots[slot];
            if let Some(next) = s.next.take() {
                s.retire(next);
            }
            // Its old process died meanwhile: start one (it loads what is there now).
            if s.current.is_none() && s.respawn_at.is_none() {
                self.schedule_respawn(slot);
            }
        }
    }

    /// Logs once that every slot is served.
    fn note_all_ready(&mut self) {
        let all = self
            .slots
            .iter()
            .all(|s| s.current.as_ref().is_some_and(|c| c.phase == Phase::Ready));
        if all && !self.served {
            self.served = true;
            tracing::info!(processes = self.slots.len(), "all worker processes ready");
            self.notify_ready("");
        }
    }

    /// Tells systemd the server is ready (again), with a status line ending in `note`.
    fn notify_ready(&self, note: &str) {
        if let Some(n) = &self.server.notify {
            n.ready(&format!(
                "{}; restarts {}, recycles {}, reloads {}{note}",
                self.server.status_line(self.slots.len()),
                self.restarts,
                self.recycles,
                self.reloads
            ));
        }
    }

    /// Plans the start of a process for an empty slot: a second after the last start at the
    /// soonest, twice as long after each load failure in a row (up to [`MAX_RESPAWN_GAP`]).
    fn schedule_respawn(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        let doublings = s.load_failures.saturating_sub(1).min(5);
        let gap = (RESPAWN_GAP * (1u32 << doublings)).min(MAX_RESPAWN_GAP);
        s.respawn_at = Some((s.started + gap).max(Instant::now()));
    }

    /// `--max-rss` and `--max-lifetime`, checked at most once a second: a serving process past
    /// either is recycled as `--max-requests` recycles one (its successor starts now; it stops
    /// accepting, finishes its requests and exits). A slot a reload is replacing is left to the
    /// reload. Returns `Some` in a child.
    fn recycle_over_limits(&mut self) -> Result<Option<(usize, WorkerEnd)>, ServerError> {
        let (max_rss, max_lifetime) = (self.server.config.max_rss, self.server.config.max_lifetime);
        if self.stopping.is_some()
            || (max_rss.is_none() && max_lifetime.is_none())
            || self.limits_checked.elapsed() < Duration::from_secs(1)
        {
            return Ok(None);
        }
        self.limits_checked = Instant::now();
        for slot in 0..self.slots.len() {
            let s = &self.slots[slot];
            if s.next.is_some() {
                continue;
            }
            let Some(child) = s.current.as_ref().filter(|c| c.phase == Phase::Ready) else {
                continue;
            };
            let pid = child.pid;
            let age = child.born.elapsed();
            let rss = max_rss.and_then(|_| super::recycle::rss_bytes(pid));
            let over_rss = match (rss, max_rss) {
                (Some(rss), Some(max)) if rss > max.saturating_mul(1 << 20) => Some(rss >> 20),
                _ => None,
            };
            let over_age = max_lifetime.is_some_and(|max| age >= max);
            if over_rss.is_none() && !over_age {
                continue;
            }
            if let Some(mib) = over_rss {
                tracing::info!(
                    slot,
                    pid,
                    rss_mib = mib,
                    max_rss_mib = max_rss.unwrap_or(0),
                    "max-rss passed: recycling this worker process"
                );
            } else {
                tracing::info!(
                    slot,
                    pid,
                    age_secs = age.as_secs(),
                    "max-lifetime reached: recycling this worker process"
                );
            }
            let s = &mut self.slots[slot];
            if let Some(old) = s.current.take() {
                s.retire(old);
            }
            self.recycles += 1;
            if let Some(child) = self.spawn(slot, Place::Current)? {
                return Ok(Some(child));
            }
        }
        Ok(None)
    }

    /// Starts the replacements whose time has come. Returns `Some` in a child.
    fn respawn_due(&mut self) -> Result<Option<(usize, WorkerEnd)>, ServerError> {
        if self.stopping.is_some() {
            return Ok(None);
        }
        let now = Instant::now();
        for slot in 0..self.slots.len() {
            let s = &mut self.slots[slot];
            if s.respawn_at.is_none_or(|t| t > now) {
                continue;
            }
            s.respawn_at = None;
            if s.current.is_some() {
                continue;
            }
            if let Some(child) = self.spawn(slot, Place::Current)? {
                return Ok(Some(child));
            }
        }
        Ok(None)
    }

    /// One poll: signals, a scrape, events from the worker processes; at most a second.
    /// Returns `Some` in a child forked to replace a retiring process.
    fn wait_and_handle(&mut self) -> Result<Option<(usize, WorkerEnd)>, ServerError> {
        let mut fds = vec![libc::pollfd {
            fd: self.signals.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(l) = &self.http {
            fds.push(libc::pollfd {
                fd: l.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let first_channel = fds.len();
        let mut polled = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            for (place, child) in [(Place::Current, &s.current), (Place::Next, &s.next)] {
                if let Some(ch) = child.as_ref().and_then(|c| c.channel.as_ref()) {
                    fds.push(libc::pollfd {
                        fd: ch.as_fd().as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    });
                    polled.push((i, place));
                }
            }
        }
        let timeout = self.poll_timeout();
        // SAFETY: fds is a valid array of pollfd of the given length.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(None);
            }
            return Err(supervisor_error(e));
        }
        for (k, &(slot, place)) in polled.iter().enumerate() {
            if fds[first_channel + k].revents != 0 {
                if let Some(child) = self.on_channel(slot, place)? {
                    return Ok(Some(child));
                }
            }
        }
        if self.http.is_some() && fds[1].revents != 0 {
            self.serve_scrapes();
            // A retirement notice may have arrived during a query.
            for slot in 0..self.slots.len() {
                let noticed = self.slots[slot]
                    .current
                    .as_mut()
                    .and_then(|c| c.channel.as_mut())
                    .is_some_and(|c| c.take_retiring());
                if noticed {
                    if let Some(child) = self.on_retiring(slot, Place::Current)? {
                        return Ok(Some(child));
                    }
                }
            }
        }
        if fds[0].revents != 0 {
            if let Some(child) = self.on_signals()? {
                return Ok(Some(child));
            }
        }
        Ok(None)
    }

    fn poll_timeout(&self) -> libc::c_int {
        let now = Instant::now();
        let next = self
            .slots
            .iter()
            .filter_map(|s| s.respawn_at)
            .min()
            .map_or(Duration::from_secs(1), |t| t.saturating_duration_since(now));
        let ping = self
            .server
            .notify
            .as_ref()
            .and_then(|n| n.next_ping_in())
            .unwrap_or(Duration::MAX);
        next.min(ping).min(Duration::from_secs(1)).as_millis() as libc::c_int
    }

    fn on_channel(
        &mut self,
        slot: usize,
        place: Place,
    ) -> Result<Option<(usize, WorkerEnd)>, ServerError> {
        let s = &mut self.slots[slot];
        let Some(child) = s.child_mut(place) else {
            return Ok(None);
        };
        let Some(ch) = child.channel.as_mut() else {
            return Ok(None);
        };
        match ch.read_event() {
            Event::Ready => {
                child.phase = Phase::Ready;
                let pid = child.pid;
                match place {
                    Place::Current => {
                        s.load_failures = 0;
                        tracing::info!(slot, pid, "worker process ready");
                        self.note_all_ready();
                    }
                    Place::Next => {
                        tracing::info!(slot, pid, reload = true, "worker process ready");
                        self.commit_if_ready();
                    }
                }
                Ok(None)
            }
            Event::Retiring => self.on_retiring(slot, place),
            Event::Stale => Ok(None),
            // Its exit arrives as SIGCHLD; stop polling the closed channel.
            Event::Closed => {
                child.channel = None;
                Ok(None)
            }
        }
    }

    /// The process spent its request budget and is stopping: start its successor now.
    fn on_retiring(
        &mut self,
        slot: usize,
        place: Place,
    ) -> Result<Option<(usize, WorkerEnd)>, ServerError> {
        if self.stopping.is_some() {
            return Ok(None);
        }
        let s = &mut self.slots[slot];
        let child = match place {
            Place::Current => s.current.take(),
            Place::Next => s.next.take(),
        };
        let Some(child) = child else {
            return Ok(None);
        };
        // It stops by itself.
        s.retiring.push(child.pid);
        self.recycles += 1;
        self.spawn(slot, place)
    }

    fn on_signals(&mut self) -> Result<Option<(usize, WorkerEnd)>, ServerError> {
        loop {
            // SAFETY: signalfd_siginfo is plain data; read fills at most its size.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            let n = unsafe {
                libc::read(
                    self.signals.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if n != size as isize {
                return Ok(None);
            }
            match info.ssi_signo as libc::c_int {
                libc::SIGCHLD => self.reap(),
                sig @ (libc::SIGINT | libc::SIGTERM) => self.on_stop_signal(sig),
                libc::SIGHUP if self.stopping.is_none() => {
                    tracing::info!("reload: SIGHUP");
                    if let Some(child) = self.reload()? {
                        return Ok(Some(child));
                    }
                }
                _ => {}
            }
        }
    }

    fn on_stop_signal(&mut self, sig: libc::c_int) {
        if self.stopping.is_some() {
            if sig == libc::SIGINT {
                tracing::warn!("second SIGINT: killing the worker processes");
                self.kill_all(libc::SIGKILL);
                self.server.cleanup();
                std::process::exit(FORCED_EXIT_STATUS);
            }
            return;
        }
        let name = if sig == libc::SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        tracing::info!(
            signal = name,
            "stopping: worker processes finish their requests"
        );
        self.begin_stop();
    }

    fn begin_stop(&mut self) {
        self.stopping = Some(Instant::now());
        if let Some(n) = &self.server.notify {
            n.stopping("stopping: the worker processes finish their requests");
        }
        for s in &mut self.slots {
            s.respawn_at = None;
        }
        self.kill_all(libc::SIGTERM);
    }

    fn kill_all(&mut self, sig: libc::c_int) {
        for s in &self.slots {
            for pid in s.pids() {
                signal(pid, sig);
            }
        }
    }

    /// Collects exited children without blocking.
    fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes the status we own.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            self.on_exit(pid, status);
        }
    }

    fn reap_blocking(&mut self) {
        while self.live() > 0 {
            let mut status = 0;
            // SAFETY: waitpid writes the status we own.
            let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
            if pid <= 0 {
                return;
            }
            self.on_exit(pid, status);
        }
    }

    fn on_exit(&mut self, pid: libc::pid_t, status: libc::c_int) {
        let how = describe_status(status);
        for (slot, s) in self.slots.iter_mut().enumerate() {
            let before = s.retiring.len();
            s.retiring.retain(|p| *p != pid);
            if s.retiring.len() != before {
                tracing::info!(slot, pid, status = %how, "previous worker process exited");
                return;
            }
        }
        let stopping = self.stopping.is_some();
        // A process of the generation a reload is starting.
        if let Some(slot) = self
            .slots
            .iter()
            .position(|s| s.next.as_ref().is_some_and(|c| c.pid == pid))
        {
            let next = self.slots[slot].next.take();
            if stopping {
                tracing::info!(slot, pid, status = %how, "worker process stopped");
                return;
            }
            let when = match next.map(|c| c.phase) {
                Some(Phase::Ready) => "before the reload completed",
                _ => "before it was ready (see its error above)",
            };
            tracing::error!(
                slot,
                pid,
                status = %how,
                "reload failed: a new worker process exited {when}; the previous worker \
                 processes keep serving, and the next reload (SIGHUP, --touch-reload) tries again"
            );
            self.abort_reload();
            return;
        }
        let Some(slot) = self
            .slots
            .iter()
            .position(|s| s.current.as_ref().is_some_and(|c| c.pid == pid))
        else {
            return;
        };
        let Some(child) = self.slots[slot].current.take() else {
            return;
        };
        if stopping {
            tracing::info!(slot, pid, status = %how, "worker process stopped");
            return;
        }
        // It exited on its own before it was ready: the application failed to load. (Killed
        // by a signal: replaced below.)
        let failed_load = child.phase == Phase::Starting && libc::WIFEXITED(status);
        if failed_load && !self.served {
            // At the first start every replacement would fail the same way.
            tracing::error!(
                slot,
                pid,
                status = %how,
                "worker process exited before it was ready; stopping"
            );
            self.failed = true;
            self.begin_stop();
            return;
        }
        self.restarts += 1;
        let s = &mut self.slots[slot];
        if failed_load {
            s.load_failures += 1;
            tracing::error!(
                slot,
                pid,
                status = %how,
                failures = s.load_failures,
                "worker process exited before it was ready (see its error above); the other \
                 worker processes keep serving; trying again"
            );
        } else {
            tracing::warn!(slot, pid, status = %how, "worker process died; replacing it");
        }
        // A reload under way fills the slot (or starts it again if it fails).
        if s.next.is_none() {
            self.schedule_respawn(slot);
        }
    }

    /// Answers every pending `/metrics` request with the merged page.
    fn serve_scrapes(&mut self) {
        loop {
            let Some(http) = &self.http else { return };
            match http.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = stream.set_nonblocking(false) {
                        tracing::debug!(error = %e, "metrics connection");
                        continue;
                    }
                    let mut render = || self.merged_page();
                    if let Err(e) = crate::metrics::answer_http(stream, &mut render) {
                        tracing::debug!(error = %e, "metrics request failed");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    return;
                }
            }
        }
    }

    /// The serving processes' pages merged with the supervisor's own. A new generation's
    /// processes are left out until they take over: their worker labels are the same as their
    /// predecessors'.
    fn merged_page(&mut self) -> String {
        let mut merger = crate::metrics::Merger::new();
        let mut ready = 0;
        for s in &mut self.slots {
            let Some(child) = s.current.as_mut() else {
                continue;
            };
            if child.phase != Phase::Ready {
                continue;
            }
            let Some(ch) = child.channel.as_mut() else {
                continue;
            };
            match ch.query_page(PAGE_TIMEOUT) {
                Ok(page) => {
                    merger.add(&page);
                    ready += 1;
                }
                Err(e) => {
                    tracing::warn!(pid = child.pid, error = %e, "no metrics from worker process")
                }
            }
        }
        if self.metrics {
            merger.add(&crate::metrics::supervisor_page(
                &crate::metrics::SupervisorCounts {
                    ready,
                    restarts: self.restarts,
                    recycles: self.recycles,
                    reloads: self.reloads,
                    reload_failures: self.reload_failures,
                },
            ));
        }
        merger.render()
    }
}

/// "exit 3", "signal 9".
fn describe_status(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exit {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("status {status}")
    }
}
