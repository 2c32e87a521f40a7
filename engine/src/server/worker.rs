//! One worker thread: its own io_uring event loop, its own listeners, its own connections.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::listener::{Protocol, WorkerListener};
use super::shutdown::LocalStop;
use super::{ajp, fcgi, scgi, Limits, StopHandle};
use crate::app::Handler;
use crate::io::{self, Listener};

/// What every task on one worker shares.
pub(crate) struct WorkerCtx<H> {
    pub(crate) index: usize,
    pub(crate) handler: H,
    pub(crate) limits: Limits,
    pub(crate) stop: LocalStop,
    /// This worker's metric handles (empty with `--metrics off`).
    pub(crate) metrics: crate::metrics::WorkerMetrics,
    /// Connections open on this worker.
    open: Cell<usize>,
    all_closed: Notify,
    /// The process's `--max-requests` budget, when one is set.
    pub(crate) budget: Option<super::recycle::Budget>,
    /// Connections open in the whole process (checked once per accept, never per request).
    process_conns: Arc<AtomicUsize>,
    next_conn_id: Arc<AtomicU64>,
}

impl<H> WorkerCtx<H> {
    /// The context of a worker that runs its own loop (the native ring), which counts its
    /// connections itself.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn for_native(
        index: usize,
        handler: H,
        limits: Limits,
        metrics: crate::metrics::WorkerMetrics,
        budget: Option<super::recycle::Budget>,
        process_conns: Arc<AtomicUsize>,
        next_conn_id: Arc<AtomicU64>,
    ) -> Self {
        WorkerCtx {
            index,
            handler,
            limits,
            stop: LocalStop::default(),
            metrics,
            open: Cell::new(0),
            all_closed: Notify::new(),
            budget,
            process_conns,
            next_conn_id,
        }
    }

    /// Counts a new connection in the process; returns the process's total.
    pub(crate) fn process_conn_opened(&self) -> usize {
        self.process_conns.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Uncounts a closed connection.
    pub(crate) fn process_conn_closed(&self) {
        self.process_conns.fetch_sub(1, Ordering::Relaxed);
    }

    /// A process-wide unique connection number, for logs.
    pub(crate) fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    fn conn_opened(&self) -> ConnGuard<'_, H> {
        self.open.set(self.open.get() + 1);
        ConnGuard { ctx: self }
    }
}

/// Counts a connection as open until dropped.
struct ConnGuard<'a, H> {
    ctx: &'a WorkerCtx<H>,
}

impl<H> Drop for ConnGuard<'_, H> {
    fn drop(&mut self) {
        let ctx = self.ctx;
        ctx.open.set(ctx.open.get() - 1);
        ctx.process_conns.fetch_sub(1, Ordering::Relaxed);
        if ctx.open.get() == 0 {
            ctx.all_closed.notify_waiters();
        }
    }
}

/// Everything a worker thread is started with.
pub(crate) struct WorkerSpec<H> {
    pub(crate) index: usize,
    /// For each listener, whether this worker is the only one accepting on it (its own
    /// SO_REUSEPORT socket in a single process). Elsewhere a pending accept must never be left
    /// on it, and the native loop accepts on readiness.
    pub(crate) exclusive: Vec<bool>,
    pub(crate) handler: H,
    pub(crate) limits: Limits,
    pub(crate) listeners: Vec<(Protocol, WorkerListener)>,
    pub(crate) stop: StopHandle,
    pub(crate) process_conns: Arc<AtomicUsize>,
    pub(crate) next_conn_id: Arc<AtomicU64>,
    pub(crate) ring_entries: u32,
    pub(crate) shutdown_timeout: Duration,
    /// The metrics registry, unless metrics are off.
    pub(crate) metrics: Option<crate::metrics::Registry>,
    /// The process's `--max-requests` budget, when one is set.
    pub(crate) budget: Option<super::recycle::Budget>,
    /// In a worker process: the hand-off socket (connections of stopping processes come in
    /// there, and this worker's go out there when it stops). Native loop only.
    pub(crate) handoff: Option<super::handoff::HandoffFds>,
}

/// Runs a worker until it is stopped and its connections are closed (or the shutdown timeout
/// passed). Blocks the calling thread.
pub(crate) fn run<H: Handler>(spec: WorkerSpec<H>) -> std::io::Result<()> {
    let ring_entries = spec.ring_entries;
    io::run_worker(ring_entries, async move {
        let protocols: Vec<Protocol> = spec.listeners.iter().map(|(p, _)| *p).collect();
        let metrics = match &spec.metrics {
            Some(r) => crate::metrics::WorkerMetrics::new(r, spec.index, &protocols),
            None => crate::metrics::WorkerMetrics::off(),
        };
        let ctx = Rc::new(WorkerCtx {
            index: spec.index,
            handler: spec.handler,
            limits: spec.limits,
            stop: LocalStop::default(),
            metrics,
            open: Cell::new(0),
            all_closed: Notify::new(),
            budget: spec.budget,
            process_conns: spec.process_conns,
            next_conn_id: spec.next_conn_id,
        });
        let mut accepting = Vec::new();
        for (protocol, l) in spec.listeners {
            let listener = match l {
                WorkerListener::Tcp(l) => Listener::tcp(l, backend_of(protocol))?,
                WorkerListener::Unix(l) => Listener::unix(l, backend_of(protocol))?,
            };
            accepting.push(io::spawn(accept_loop(ctx.clone(), protocol, listener)));
        }
        let follow = {
            let ctx = ctx.clone();
            let rx = spec.stop.subscribe();
            io::spawn(async move { ctx.stop.follow(rx).await })
        };
        ctx.stop.wait().await;
        for a in accepting {
            let _ = a.await;
        }
        drop(follow);
        let drained = async {
            while ctx.open.get() > 0 {
                let n = ctx.all_closed.notified();
                if ctx.open.get() == 0 {
                    break;
                }
                n.await;
            }
        };
        if tokio::time::timeout(spec.shutdown_timeout, drained)
            .await
            .is_err()
        {
            tracing::warn!(
                worker = ctx.index,
                open = ctx.open.get(),
                "shutdown timeout: closing connections with requests in flight"
            );
        }
        Ok(())
    })
}

async fn accept_loop<H: Handler>(ctx: Rc<WorkerCtx<H>>, protocol: Protocol, listener: Listener) {
    loop {
        // On stop, the pending accept is dropped: it waits on epoll readiness, so nothing is left
        // in flight and the next connection goes to a process that still accepts.
        let accepted = tokio::select! {
            biased;
            _ = ctx.stop.wait() => return,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(worker = ctx.index, error = %e, "accept failed");
                // Out of descriptors or memory: back off instead of spinning.
                io::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let total = ctx.process_conns.fetch_add(1, Ordering::Relaxed) + 1;
        let overloaded = total > ctx.limits.max_conns;
        if overloaded {
            ctx.metrics
                .limit_rejected(protocol, crate::metrics::Limit::MaxConns);
            tracing::warn!(
                worker = ctx.index,
                limit = ctx.limits.max_conns,
                "max-conns reached: refusing requests on a new connection"
            );
        }
        let conn_id = ctx.next_conn_id.fetch_add(1, Ordering::Relaxed);
        let ctx = ctx.clone();
        io::spawn(async move {
            let _guard = ctx.conn_opened();
            let _counted = ctx.metrics.connection_opened(protocol);
            match protocol {
                Protocol::FastCgi => fcgi::serve(stream, &ctx, conn_id, overloaded).await,
                Protocol::Scgi => scgi::serve(stream, &ctx, conn_id, overloaded).await,
                Protocol::Ajp => ajp::serve(stream, &ctx, conn_id, overloaded).await,
            }
        });
    }
}

/// The backend that drives a protocol's connections on the tokio-uring loop: FastCGI, the hot
/// path, on io_uring; SCGI and AJP13 on tokio's epoll reactor in the same worker threads.
fn backend_of(protocol: Protocol) -> crate::io::Backend {
    match protocol {
        Protocol::FastCgi => crate::io::Backend::IoUring,
        Protocol::Scgi | Protocol::Ajp => crate::io::Backend::Epoll,
    }
}
