//! The native per-core loop (`--io ring`, the default, and `--io epoll`): one loop per worker
//! thread, written once against [`LoopIo`] and monomorphised for its two implementations: the
//! io_uring [`Ring`] and the epoll [`Poller`] (`io/poller/`), which emulates the ring's
//! operations on readiness.
//!
//! One turn of the loop: submit everything queued and wait for at least one completion (one
//! `io_uring_enter`, or at most one `epoll_wait`), handle the completions, poll the handlers that
//! were woken, start the sends that became due, and, a few times a second, sweep the
//! connections' deadlines. There are no tasks: a connection is a [`conn::Conn`] in a slab, fed by
//! a multishot receive into the worker's receive buffers and decoded by its sans-IO machine; a
//! handler is polled inline when its request's head is complete and only stays in a slot
//! ([`slots`]) if it returns `Pending`. Handlers write into the connection's output buffer; the
//! loop sends what is there once per turn. Connections, their buffers and the handler slots are
//! reused, so a warmed-up worker allocates nothing per request or per connection.
//!
//! Accepting is a multishot accept on each listener; on stop it is cancelled, and the loop waits
//! for the cancellation to complete before draining, so a stopping worker process never keeps a
//! pending accept on a listener it shares with its successor.

mod conn;
mod machine;
mod slots;

use std::future::Future;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::listener::{Protocol, WorkerListener};
use super::worker::{WorkerCtx, WorkerSpec};
use crate::app::{Handler, Request, Response};
use crate::io::loop_io::LoopIo;
use crate::io::poller::Poller;
use crate::io::ring::{BufRing, Ring};
use crate::io::wake::ReadyQueue;

use conn::ConnTable;
use slots::HandlerSlots;

/// After the shutdown timeout, how long the loop waits for the operations of the connections it
/// cut off to complete.
const CUT_OFF_DRAIN: Duration = Duration::from_secs(1);
/// How often connection deadlines (params, idle, linger) and the stop signal are checked.
const SWEEP: Duration = Duration::from_millis(100);
/// Provided receive buffers per worker, and their size.
const RECV_BUFS: u32 = 256;
const RECV_BUF_LEN: u32 = 16 * 1024;
/// The buffer group of the receive buffers.
const RECV_GROUP: u16 = 0;

/// What a completion is for: the top byte of its user data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Op {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Close = 4,
    Wake = 5,
    Cancel = 6,
    /// Readiness of the hand-off socket: connections of a stopping worker process.
    Handoff = 7,
}

/// Packs an operation, a slot index and the slot's generation into a completion's user data.
pub(crate) fn user_data(op: Op, index: usize, gen: u32) -> u64 {
    ((op as u64) << 56) | (((index as u64) & 0xff_ffff) << 32) | gen as u64
}

/// The operation, slot index and generation packed by [`user_data`]; `None` for a top byte
/// that is no operation (it never is: every submission is packed by `user_data`).
fn unpack(ud: u64) -> Option<(Op, usize, u32)> {
    let op = match (ud >> 56) as u8 {
        1 => Op::Accept,
        2 => Op::Recv,
        3 => Op::Send,
        4 => Op::Close,
        5 => Op::Wake,
        6 => Op::Cancel,
        7 => Op::Handoff,
        _ => return None,
    };
    Some((op, ((ud >> 32) & 0xff_ffff) as usize, ud as u32))
}

/// Which implementation of [`LoopIo`] a worker's loop runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// The io_uring [`Ring`] (`--io ring`).
    Ring,
    /// The epoll [`Poller`] (`--io epoll`, and `--io ring` where no ring can be set up).
    Epoll,
}

impl Backend {
    /// The name `ringfast_build_info{io_backend}` and the logs use.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Ring => <Ring as LoopIo>::NAME,
            Backend::Epoll => <Poller as LoopIo>::NAME,
        }
    }
}

/// Set in the environment (to any value), the native ring's setup check fails as it does where
/// io_uring is disabled (`kernel.io_uring_disabled`), so that the fallback to epoll can be
/// tested on a machine that has io_uring. Not a user option.
pub(crate) const NO_RING_ENV: &str = "RINGFAST_TEST_NO_IO_URING";

/// `Ok` when the native ring can be set up on this machine (a kernel with io_uring enabled
/// and the features the loop needs). Checked once at bind; on failure `--io ring` runs the
/// loop on epoll, with a log line saying why.
pub(crate) fn available(entries: u32) -> std::io::Result<()> {
    if std::env::var_os(NO_RING_ENV).is_some() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("io_uring refused ({NO_RING_ENV} is set)"),
        ));
    }
    let ring = Ring::new(entries)?;
    BufRing::new(&ring, RECV_GROUP, 2, 4096)?;
    Ok(())
}

/// Runs a worker on `backend` until it is stopped and drained.
pub(crate) fn run_on<H, M, F>(backend: Backend, spec: WorkerSpec<H>, make: M) -> std::io::Result<()>
where
    H: Handler,
    M: Fn(Rc<WorkerCtx<H>>, Request, Response, u64, u16) -> F,
    F: Future<Output = ()>,
{
    match backend {
        Backend::Ring => run::<Ring, H, M, F>(spec, make),
        Backend::Epoll => run::<Poller, H, M, F>(spec, make),
    }
}

/// How a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AcceptMode {
    /// A multishot accept: for a socket only this worker accepts on (its own SO_REUSEPORT
    /// TCP socket in a single process). Cancelled on stop.
    Multishot,
    /// A multishot poll for readiness, then `accept4` until EAGAIN: for a socket shared with
    /// other workers or processes (Unix sockets, prefork). io_uring's accept waits
    /// exclusively, so the ring that armed first would get every connection, and a connection
    /// whose wake-up went to a ring that was being cancelled would wait for the next one; a
    /// readiness wake reaches every ring, the first to call `accept4` wins, and no accept is
    /// ever pending in the kernel.
    Readiness,
}

struct ListenerState {
    listener: WorkerListener,
    protocol: Protocol,
    mode: AcceptMode,
    armed: bool,
}

impl ListenerState {
    fn arm<I: LoopIo>(&mut self, ring: &mut I, index: usize) -> std::io::Result<()> {
        let ud = user_data(Op::Accept, index, 0);
        match self.mode {
            AcceptMode::Multishot => ring.accept_multishot(self.fd(), ud)?,
            AcceptMode::Readiness => ring.poll_multishot(self.fd(), libc::POLLIN as u32, ud)?,
        }
        self.armed = true;
        Ok(())
    }

    fn fd(&self) -> i32 {
        match &self.listener {
            WorkerListener::Tcp(l) => l.as_raw_fd(),
            WorkerListener::Unix(l) => l.as_raw_fd(),
        }
    }
}

/// Runs a worker on loop I/O `I` until it is stopped and drained.
fn run<I, H, M, F>(spec: WorkerSpec<H>, make: M) -> std::io::Result<()>
where
    I: LoopIo,
    H: Handler,
    M: Fn(Rc<WorkerCtx<H>>, Request, Response, u64, u16) -> F,
    F: Future<Output = ()>,
{
    crate::io::timers::activate();
    tracing::debug!(
        bytes = std::mem::size_of::<F>(),
        "handler future size (moved into its slot once per request)"
    );
    let (mut ring, mut bufs) = I::open(spec.ring_entries, RECV_GROUP, RECV_BUFS, RECV_BUF_LEN)?;
    let ready = ReadyQueue::new()?;
    let protocols: Vec<Protocol> = spec.listeners.iter().map(|(p, _)| *p).collect();
    let metrics = match &spec.metrics {
        Some(r) => crate::metrics::WorkerMetrics::new(r, spec.index, &protocols),
        None => crate::metrics::WorkerMetrics::off(),
    };
    let ctx = Rc::new(WorkerCtx::for_native(
        spec.index,
        spec.handler,
        spec.limits,
        metrics,
        spec.budget,
        spec.process_conns,
        spec.next_conn_id,
    ));
    let mut listeners: Vec<ListenerState> = spec
        .listeners
        .into_iter()
        .zip(spec.exclusive)
        .map(|((protocol, listener), exclusive)| {
            if let WorkerListener::Tcp(l) = &listener {
                // Accepted sockets inherit TCP_NODELAY from their listener.
                let _ = socket2::SockRef::from(l).set_nodelay(true);
            }
            let mode = match &listener {
                WorkerListener::Tcp(_) if exclusive => AcceptMode::Multishot,
                _ => AcceptMode::Readiness,
            };
            if mode == AcceptMode::Readiness {
                // accept4 must never block: another worker may have taken the connection.
                let _ = match &listener {
                    WorkerListener::Tcp(l) => l.set_nonblocking(true),
                    WorkerListener::Unix(l) => l.set_nonblocking(true),
                };
            }
            ListenerState {
                listener,
                protocol,
                mode,
                armed: false,
            }
        })
        .collect();
    let handoff = spec.handoff;
    let mut table = ConnTable::<H, I>::new(ctx.clone(), handoff.map(|h| h.send));
    let mut handlers = HandlerSlots::new(ready.clone());
    ring.poll_multishot(
        ready.eventfd(),
        libc::POLLIN as u32,
        user_data(Op::Wake, 0, 0),
    )?;
    for (i, l) in listeners.iter_mut().enumerate() {
        l.arm(&mut ring, i)?;
    }
    // Connections handed off by stopping worker processes arrive like accepted ones.
    let mut handoff_armed = false;
    if let Some(h) = handoff {
        ring.poll_multishot(h.recv, libc::POLLIN as u32, user_data(Op::Handoff, 0, 0))?;
        handoff_armed = true;
    }

    let mut completions = Vec::with_capacity(256);
    let mut woken = Vec::with_capacity(64);
    let mut now = Instant::now();
    let mut next_sweep = now + SWEEP;
    let mut stopping: Option<Instant> = None;
    let mut cut_off = false;
    loop {
        let timeout = next_sweep.saturating_duration_since(now);
        let timeout = match crate::io::timers::fire(now) {
            Some(t) => timeout.min(t.saturating_duration_since(now)),
            None => timeout,
        };
        let wait = if ready.is_empty() { 1 } else { 0 };
        ring.submit_and_wait(wait, Some(timeout))?;
        now = Instant::now();
        table.set_now(now);
        ring.drain_completions(&mut completions);
        for c in completions.drain(..) {
            let Some((op, index, gen)) = unpack(c.user_data) else {
                continue;
            };
            match op {
                Op::Accept => {
                    let l = &mut listeners[index];
                    if !c.more() {
                        l.armed = false;
                    }
                    if c.result >= 0 && l.mode == AcceptMode::Multishot {
                        table.accept(&mut ring, c.result, l.protocol);
                    } else if c.result >= 0 && stopping.is_none() {
                        // Readable: take everything queued. The multishot poll reports a new
                        // arrival, not a non-empty queue, so connections left queued here would
                        // wait for the next one to arrive (a burst of 100 Unix connections left
                        // 19 unanswered when this took 16 per wake-up).
                        loop {
                            // SAFETY: plain accept4 on our listening socket; no address asked.
                            let fd = unsafe {
                                libc::accept4(
                                    l.fd(),
                                    std::ptr::null_mut(),
                                    std::ptr::null_mut(),
                                    libc::SOCK_CLOEXEC,
                                )
                            };
                            if fd < 0 {
                                let err = std::io::Error::last_os_error();
                                if err.kind() != std::io::ErrorKind::WouldBlock {
                                    tracing::warn!(worker = ctx.index, error = %err, "accept failed");
                                }
                                break;
                            }
                            table.accept(&mut ring, fd, l.protocol);
                        }
                    } else if c.result < 0 && c.result != -libc::ECANCELED {
                        let err = std::io::Error::from_raw_os_error(-c.result);
                        tracing::warn!(worker = ctx.index, error = %err, "accept failed");
                    }
                    if !l.armed && stopping.is_none() {
                        l.arm(&mut ring, index)?;
                    }
                }
                Op::Recv => {
                    table.on_recv(&mut ring, &mut bufs, index, gen, &c, &mut handlers, &make)
                }
                Op::Send => table.on_send(&mut ring, index, gen, c.result),
                Op::Close => table.on_close(index, gen, c.result),
                Op::Wake => {
                    ready.clear_eventfd();
                    if !c.more() {
                        ring.poll_multishot(
                            ready.eventfd(),
                            libc::POLLIN as u32,
                            user_data(Op::Wake, 0, 0),
                        )?;
                    }
                }
                Op::Handoff => {
                    if !c.more() {
                        handoff_armed = false;
                    }
                    if let (Some(h), true) = (handoff, c.result >= 0 && stopping.is_none()) {
                        loop {
                            match super::handoff::recv(h.recv) {
                                Ok(Some((fd, protocol))) => table.adopt(&mut ring, fd, protocol),
                                Ok(None) => break,
                                Err(e) => {
                                    tracing::warn!(worker = ctx.index, error = %e, "hand-off failed");
                                    // A malformed datagram was consumed: read on. Anything
                                    // else would fail again.
                                    if e.kind() != std::io::ErrorKind::InvalidData {
                                        break;
                                    }
                                }
                            }
                        }
                        if !handoff_armed {
                            ring.poll_multishot(
                                h.recv,
                                libc::POLLIN as u32,
                                user_data(Op::Handoff, 0, 0),
                            )?;
                            handoff_armed = true;
                        }
                    }
                }
                // Cancellations and the shutdowns of linked closes: nothing to do.
                Op::Cancel => {}
            }
        }
        ready.drain_into(&mut woken);
        for key in woken.drain(..) {
            if let Some(conn) = handlers.poll_woken(key) {
                table.handler_ran(conn);
            }
        }
        table.flush_all(&mut ring, &mut handlers, &make);
        // The stop flag is read every turn: a spent --max-requests budget must stop accepting
        // at once, not at the next sweep.
        let stop_now = stopping.is_none() && spec.stop.is_stopped();
        if stop_now || now >= next_sweep {
            next_sweep = now + SWEEP;
            if stop_now {
                stopping = Some(now);
                for (i, l) in listeners.iter().enumerate() {
                    if l.armed {
                        ring.cancel(user_data(Op::Accept, i, 0), user_data(Op::Cancel, i, 0))?;
                    }
                }
                // A stopping worker takes no more handed-off connections: it hands its own on.
                if handoff_armed {
                    ring.cancel(user_data(Op::Handoff, 0, 0), user_data(Op::Cancel, 0, 0))?;
                }
                table.begin_stop();
            }
            table.sweep(&mut ring, &mut handlers);
            if let Some(since) = stopping {
                let accepts_done = listeners.iter().all(|l| !l.armed) && !handoff_armed;
                if accepts_done && table.is_empty() {
                    return Ok(());
                }
                let overdue = now
                    .duration_since(since)
                    .saturating_sub(spec.shutdown_timeout);
                if overdue > Duration::ZERO && !cut_off {
                    tracing::warn!(
                        worker = ctx.index,
                        open = table.len(),
                        "shutdown timeout: closing connections with requests in flight"
                    );
                    table.abort_all(&mut ring, &mut handlers);
                    cut_off = true;
                }
                // The cut-off connections' sends and closes complete within a few turns; their
                // buffers must outlive them, so the loop runs on briefly before it returns.
                if overdue > CUT_OFF_DRAIN {
                    return Ok(());
                }
            }
        }
    }
}
