//! The loop every connection driver shares: one pending read at a time, input handed to the
//! protocol's [`Driver`], and, while the read is pending, reactions to handlers finishing,
//! timeouts and the worker stopping.
//!
//! The pending read is never dropped (see [`crate::io`]): to stop waiting, the loop shuts the
//! socket down, which completes the read, and then awaits it.

use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use crate::app::notify::LocalNotify;
use tokio::time::Instant;

use super::shutdown::LocalStop;
use crate::app::exchange::ConnOut;
use crate::io::{Shutdown, Stream, TaskHandle};

/// How long a closing connection waits for the peer to close after our FIN.
const LINGER: Duration = Duration::from_secs(5);

/// On stop, how long a connection that has sent nothing yet is given to send its first request.
/// A peer that connected just before the stop (the kernel accepted for us) then gets its answer
/// instead of an unexplained close; this matters most when a worker process is replaced while
/// its successor is already accepting on the same listener.
const FRESH_GRACE: Duration = Duration::from_secs(2);

/// How the read loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// We closed (done, idle, stop) and the peer closed after our FIN.
    Clean,
    /// The peer closed or reset; requests still running are cancelled.
    PeerGone,
    /// The peer broke the protocol or a timeout hit; the connection is dropped.
    Abort,
}

/// What a protocol driver must tell the shared loop.
pub(crate) trait Driver {
    /// The state every connection has.
    fn base(&mut self) -> &mut ConnBase;

    /// Acts on complete input at the start of `buf` and returns how many bytes it used (0:
    /// needs more input). `Err` is a protocol error: the connection is dropped.
    async fn consume(&mut self, buf: &[u8]) -> Result<usize, ()>;

    /// Forgets finished requests; true when no request is in progress.
    fn reap(&mut self) -> bool;

    /// Since when a request head (FastCGI PARAMS, SCGI header block) has been arriving, if one is.
    fn head_since(&self) -> Option<Instant>;

    /// Cancels every request still in progress.
    fn abort_all(&mut self);

    /// The shared loop closed the connection on a limit (`params_timeout`, `recv_buffer`): the
    /// driver counts it in its metrics.
    fn limit_hit(&mut self, _limit: crate::metrics::Limit) {}
}

/// The state every connection driver has.
pub(crate) struct ConnBase {
    pub(crate) id: u64,
    pub(crate) stream: Rc<Stream>,
    pub(crate) out: Rc<ConnOut>,
    /// Notified (one permit) when a handler finished.
    pub(crate) events: Rc<LocalNotify>,
    /// Close once no request is in progress (no keep-alive asked, SCGI, idle, stopping).
    pub(crate) close_when_idle: bool,
    closing_since: Option<Instant>,
    pub(crate) last_activity: Instant,
    /// No byte has arrived yet.
    fresh: bool,
    idle_timeout: Duration,
    head_timeout: Duration,
    writer: Option<TaskHandle>,
}

impl ConnBase {
    /// State for a new connection; starts its writer task.
    pub(crate) fn new(
        id: u64,
        stream: Stream,
        write_buffer: usize,
        idle_timeout: Duration,
        head_timeout: Duration,
    ) -> Self {
        let stream = Rc::new(stream);
        let out = Rc::new(ConnOut::new(write_buffer));
        let writer = crate::io::spawn(super::writer::run(stream.clone(), out.clone(), id));
        ConnBase {
            id,
            stream,
            out,
            events: Rc::new(LocalNotify::new()),
            close_when_idle: false,
            closing_since: None,
            last_activity: Instant::now(),
            fresh: true,
            idle_timeout,
            head_timeout,
            writer: Some(writer),
        }
    }

    /// State for a new connection with the worker's write buffer and timeouts.
    pub(crate) fn for_worker(id: u64, stream: Stream, limits: &super::Limits) -> Self {
        Self::new(
            id,
            stream,
            limits.write_buffer,
            limits.idle_timeout,
            limits.params_timeout,
        )
    }

    fn begin_close(&mut self) {
        self.closing_since = Some(Instant::now());
        self.out.begin_closing();
    }
}

/// Runs a connection until it closes: the read loop, then cancellation of what is left, the
/// writer's last flush, and the close.
pub(crate) async fn run<D: Driver>(d: &mut D, stop: &LocalStop, read_buf_len: usize) {
    let exit = read_loop(d, stop, read_buf_len).await;
    let base = d.base();
    tracing::debug!(conn = base.id, ?exit, "connection closed");
    if exit != Exit::Clean {
        d.abort_all();
        d.base().out.close();
    }
    let base = d.base();
    if let Some(w) = base.writer.take() {
        let _ = w.await;
    }
    if exit == Exit::Abort {
        let _ = base.stream.shutdown(Shutdown::Both);
    }
}

fn close_if_done<D: Driver>(d: &mut D, stop: &LocalStop) {
    let idle = d.reap();
    let base = d.base();
    // Stopping: a connection that has sent nothing yet gets FRESH_GRACE to send its request.
    let waiting_for_first = base.fresh && base.last_activity.elapsed() < FRESH_GRACE;
    let stop_closes = stop.is_stopped() && !waiting_for_first;
    if base.closing_since.is_none() && (base.close_when_idle || stop_closes) && idle {
        base.begin_close();
    }
}

/// When the current wait should end: linger after our FIN, the head timeout while a request head
/// (or a partial frame) is arriving, the idle timeout between requests, and no limit while
/// handlers run.
fn deadline<D: Driver>(d: &mut D, pending: usize, idle: bool, stopping: bool) -> Instant {
    const NEVER: Duration = Duration::from_secs(86400 * 365);
    let head = d.head_since();
    let base = d.base();
    if let Some(t) = base.closing_since {
        return t + LINGER;
    }
    match head {
        Some(t) => t + base.head_timeout,
        None if pending > 0 => base.last_activity + base.head_timeout,
        None if idle && stopping && base.fresh => base.last_activity + FRESH_GRACE,
        None if idle => base.last_activity + base.idle_timeout,
        None => Instant::now() + NEVER,
    }
}

/// Returns true when the socket was shut down to end the wait.
fn on_timeout<D: Driver>(d: &mut D, pending: usize, idle: bool) -> bool {
    let head = d.head_since().is_some();
    let base = d.base();
    if base.closing_since.is_some() {
        tracing::debug!(
            conn = base.id,
            "peer did not close after FIN; dropping connection"
        );
    } else if idle && pending == 0 {
        tracing::debug!(conn = base.id, "idle timeout");
        base.close_when_idle = true;
        base.begin_close();
        return false;
    } else if head {
        tracing::warn!(
            conn = base.id,
            timeout = ?base.head_timeout,
            "params-timeout: the request head did not arrive in time; closing connection"
        );
    } else {
        tracing::warn!(
            conn = base.id,
            timeout = ?base.head_timeout,
            "params-timeout: the peer stopped in the middle of a record; closing connection"
        );
    }
    if base.closing_since.is_none() {
        d.limit_hit(crate::metrics::Limit::ParamsTimeout);
    }
    let _ = d.base().stream.shutdown(Shutdown::Both);
    true
}

async fn read_loop<D: Driver>(d: &mut D, stop: &LocalStop, read_buf_len: usize) -> Exit {
    let mut buf = Vec::with_capacity(read_buf_len);
    let mut timer = pin!(tokio::time::sleep_until(Instant::now()));
    loop {
        let mut pos = 0;
        while pos < buf.len() {
            match d.consume(&buf[pos..]).await {
                Ok(0) => break,
                Ok(n) => pos += n,
                Err(()) => return Exit::Abort,
            }
        }
        buf.drain(..pos);
        if buf.len() == buf.capacity() {
            tracing::warn!(
                conn = d.base().id,
                "request head larger than the receive buffer; closing connection"
            );
            d.limit_hit(crate::metrics::Limit::RecvBuffer);
            return Exit::Abort;
        }
        let pending = buf.len();
        close_if_done(d, stop);
        // Wait for bytes, reacting to handlers, timeouts and the stop signal meanwhile.
        let stream = d.base().stream.clone();
        let events = d.base().events.clone();
        let read = stream.read(buf);
        let mut read = pin!(read);
        let mut forced = false;
        let mut stop_seen = false;
        let (res, b) = loop {
            let idle = d.reap();
            timer
                .as_mut()
                .reset(deadline(d, pending, idle, stop.is_stopped()));
            tokio::select! {
                r = &mut read => break r,
                _ = events.notified() => close_if_done(d, stop),
                _ = stop.wait(), if !stop_seen => {
                    stop_seen = true;
                    close_if_done(d, stop);
                }
                _ = &mut timer, if !forced => forced = on_timeout(d, pending, idle),
            }
        };
        buf = b;
        let base = d.base();
        match res {
            Ok(0) if forced => return Exit::Abort,
            Ok(0) if base.closing_since.is_some() => return Exit::Clean,
            Ok(0) => return Exit::PeerGone,
            Ok(_) => {
                base.last_activity = Instant::now();
                base.fresh = false;
            }
            Err(e) => {
                tracing::debug!(conn = base.id, error = %e, "read failed");
                return if forced { Exit::Abort } else { Exit::PeerGone };
            }
        }
    }
}
