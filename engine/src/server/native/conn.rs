//! Connections on the native loop (FastCGI, SCGI and AJP13): a slab of reusable connection
//! states, each a sans-IO protocol machine ([`Machine`]) plus the buffers and requests around it.
//!
//! Input arrives in the worker's provided buffers and is decoded where it lies; only the bytes
//! of a record that straddles two buffers are copied (into the connection's `pending` buffer).
//! Requests get an [`Exchange`] from the worker's pool and their handler is started inline
//! ([`HandlerSlots::start`]). What handlers write lands in the connection's [`ConnOut`]; the
//! loop sends it once per turn, and a connection that is done sends, shuts down and closes in
//! one linked batch.

use std::future::Future;
use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::app::notify::LocalNotify;
use proto::{Event, Expired, Refusal};

use super::machine::{Counted, Machine, MachineConfig};
use super::slots::HandlerSlots;
use super::{user_data, Op, RECV_GROUP};
use crate::app::exchange::{ConnOut, Exchange};
use crate::app::{Handler, Request, Response};
use crate::io::loop_io::{Completion, LinkMode, LinkedIds, LoopIo, RecvBufs};
use crate::metrics::{ConnectionGuard, Limit, ProtocolErrorKind};
use crate::server::dispatch::{prepare, refuse_request};
use crate::server::listener::Protocol;
use crate::server::worker::WorkerCtx;

/// A connection that has sent nothing yet gets this long to send its first request when the
/// worker stops (it was accepted just before the stop and the client is about to write).
const FRESH_GRACE: Duration = Duration::from_secs(2);
/// Input kept while the connection is paused (a handler is not reading its body) before the
/// receive is cancelled: two maximal records.
const PAUSED_INPUT_CAP: usize = 2 * proto::fcgi::MAX_RECORD_LEN;
/// Finished exchanges and request-variable buffers a worker keeps for reuse.
const EXCHANGE_POOL: usize = 1024;
/// Output buffers kept by a worker for its busy connections, and the size they start at;
/// a buffer that grew past `BUF_KEEP_MAX` is freed rather than kept.
const BUF_POOL: usize = 256;
/// Spare request-variable buffers a busy connection's machine is given before it decodes.
const SPARE_PARAMS: usize = 8;
const BUF_LEN: usize = 16 * 1024;
const BUF_KEEP_MAX: usize = 256 * 1024;
/// How long a closing connection whose peer may still be sending waits for the peer's FIN.
const LINGER: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Open,
    /// Shutting down: no more input is decoded; the slot is freed once every operation on it
    /// has completed.
    Closing,
}

struct Req {
    id: u16,
    /// The request's body ended (empty STDIN): the peer sends nothing more for it.
    body_ended: bool,
    ex: Rc<Exchange>,
    /// The handler's slot while it waits.
    slot: Option<usize>,
}

/// One connection's state; kept in the slab and reused for later connections.
pub(super) struct Conn {
    state: State,
    gen: u32,
    fd: i32,
    id: u64,
    accepted: Instant,
    /// When input last arrived (or the connection was accepted).
    last_active: Instant,
    fresh: bool,
    machine: Machine,
    /// Bytes received but not used yet (a partial record, or input held while paused).
    pending: Vec<u8>,
    out: Rc<ConnOut>,
    /// The bytes of the send in flight.
    sending: Vec<u8>,
    sent: usize,
    send_in_flight: bool,
    /// The send in flight is linked to a shutdown and a close.
    send_linked: bool,
    recv_armed: bool,
    /// The receive was cancelled because too much input waits while paused.
    recv_held: bool,
    close_submitted: bool,
    close_done: bool,
    /// The peer may still send: a request ended before its body did, or was refused. Closing
    /// then half-closes, reads until the peer's FIN (at most [`LINGER`]) and only then closes,
    /// so that the peer's last writes meet no reset (cgi-fcgi sends its empty STDIN after
    /// reading the answer).
    linger: bool,
    /// Since when the connection has been half-closed, waiting for the peer's FIN.
    lingering_since: Option<Instant>,
    /// A handler is not reading its body: input is not decoded until it does.
    paused: bool,
    /// Being handed to another worker process (the worker stops): the receive was cancelled,
    /// and once it completed the descriptor goes to the hand-off socket (see `server/handoff.rs`).
    handing_off: bool,
    reqs: Vec<Req>,
    dirty: bool,
    _counted: Option<ConnectionGuard>,
}

/// Every connection of one worker, on loop I/O `I` (the ring or the epoll poller).
pub(super) struct ConnTable<H, I> {
    ctx: Rc<WorkerCtx<H>>,
    conns: Vec<Conn>,
    free: Vec<usize>,
    open: usize,
    dirty: Vec<usize>,
    now: Instant,
    stopping: bool,
    /// Where idle connections go when this worker stops, in a worker process.
    handoff: Option<RawFd>,
    machines: MachineConfig,
    /// Output buffers lent to connections while they are busy, so that an idle keep-alive
    /// connection holds no buffer of its own.
    buffers: Vec<Vec<u8>>,
    /// Finished exchanges, detached from any connection.
    exchanges: Vec<Rc<Exchange>>,
    /// Request-variable buffers, lent to a connection's state machine before it decodes.
    params: Vec<proto::fcgi::Params>,
    /// What a pooled exchange points to while it belongs to no connection; the `LocalNotify` is
    /// also every exchange's "handler finished" signal, which nothing on this loop waits for
    /// (flushes find finished requests themselves), so one per worker serves them all.
    detached: (Rc<ConnOut>, Rc<LocalNotify>),
    _io: PhantomData<fn(&mut I)>,
}

impl<H: Handler, I: LoopIo> ConnTable<H, I> {
    pub(super) fn new(ctx: Rc<WorkerCtx<H>>, handoff: Option<RawFd>) -> Self {
        let machines = MachineConfig::new(&ctx.limits);
        ConnTable {
            ctx,
            conns: Vec::new(),
            free: Vec::new(),
            open: 0,
            dirty: Vec::new(),
            now: Instant::now(),
            stopping: false,
            handoff,
            machines,
            buffers: Vec::new(),
            exchanges: Vec::new(),
            params: Vec::new(),
            detached: (
                Rc::new(ConnOut::with_buffer(0, Vec::new())),
                Rc::new(LocalNotify::new()),
            ),
            _io: PhantomData,
        }
    }

    /// The loop's clock for this turn (read once per turn).
    pub(super) fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// Open connections (including those closing).
    pub(super) fn len(&self) -> usize {
        self.open
    }

    pub(super) fn is_empty(&self) -> bool {
        self.open == 0
    }

    fn mark_dirty(&mut self, index: usize) {
        let c = &mut self.conns[index];
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(index);
        }
    }

    /// Takes a newly accepted socket.
    pub(super) fn accept(&mut self, ring: &mut I, fd: i32, protocol: Protocol) {
        let total = self.ctx.process_conn_opened();
        let mut overloaded = total > self.ctx.limits.max_conns;
        if overloaded {
            if let Some(victim) = self.least_recently_active_idle() {
                // Room for a connection that wants to send a request: an idle keep-alive
                // connection (no request in flight, nothing half-received) is closed instead,
                // the one that has been quiet longest first.
                let c = &mut self.conns[victim];
                tracing::debug!(
                    worker = self.ctx.index,
                    conn = c.id,
                    "max-conns reached: closing the longest idle connection"
                );
                c.state = State::Closing;
                self.mark_dirty(victim);
                self.ctx
                    .metrics
                    .limit_rejected(protocol, Limit::IdleEvicted);
                overloaded = false;
            }
        }
        if overloaded {
            self.ctx.metrics.limit_rejected(protocol, Limit::MaxConns);
            tracing::warn!(
                worker = self.ctx.index,
                limit = self.ctx.limits.max_conns,
                "max-conns reached: refusing requests on a new connection"
            );
        }
        let now = self.now;
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.conns.push(Conn {
                    state: State::Free,
                    gen: 0,
                    fd: -1,
                    id: 0,
                    accepted: now,
                    last_active: now,
                    fresh: true,
                    machine: Machine::new(protocol, &self.machines, overloaded, now),
                    pending: Vec::new(),
                    out: Rc::new(ConnOut::with_buffer(
                        self.ctx.limits.write_buffer,
                        Vec::new(),
                    )),
                    sending: Vec::new(),
                    sent: 0,
                    send_in_flight: false,
                    send_linked: false,
                    recv_armed: false,
                    recv_held: false,
                    close_submitted: false,
                    close_done: false,
                    linger: false,
                    lingering_since: None,
                    paused: false,
                    handing_off: false,
                    reqs: Vec::new(),
                    dirty: false,
                    _counted: None,
                });
                self.conns.len() - 1
            }
        };
        let id = self.ctx.next_conn_id();
        let counted = self.ctx.metrics.connection_opened(protocol);
        let c = &mut self.conns[index];
        c.state = State::Open;
        c.gen = c.gen.wrapping_add(1);
        c.fd = fd;
        c.id = id;
        c.accepted = now;
        c.last_active = now;
        c.fresh = true;
        c.machine.reset(protocol, &self.machines, overloaded, now);
        c.pending.clear();
        if Rc::strong_count(&c.out) > 1 {
            // A handler of the previous connection still holds it (one that went on running
            // after its response ended): start afresh rather than share its buffer.
            c.out = Rc::new(ConnOut::with_buffer(
                self.ctx.limits.write_buffer,
                Vec::new(),
            ));
        } else {
            c.out.reopen();
        }
        c.sending.clear();
        c.sent = 0;
        c.send_in_flight = false;
        c.recv_held = false;
        c.close_submitted = false;
        c.close_done = false;
        c.linger = false;
        c.lingering_since = None;
        c.paused = false;
        c.handing_off = false;
        c._counted = Some(counted);
        self.open += 1;
        let gen = c.gen;
        match ring.recv_multishot(fd, RECV_GROUP, user_data(Op::Recv, index, gen)) {
            Ok(()) => self.conns[index].recv_armed = true,
            Err(e) => {
                tracing::warn!(conn = id, error = %e, "cannot start receiving; closing");
                self.abort(ring, index);
            }
        }
    }

    /// A receive completed.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_recv<M, F>(
        &mut self,
        ring: &mut I,
        bufs: &mut I::Bufs,
        index: usize,
        gen: u32,
        c: &Completion,
        handlers: &mut HandlerSlots<F>,
        make: &M,
    ) where
        M: Fn(Rc<WorkerCtx<H>>, Request, Response, u64, u16) -> F,
        F: Future<Output = ()>,
    {
        // The buffer is ours from its completion until it is recycled, once, below.
        let bid = c.buffer_id();
        if let Some(bid) = bid {
            if let Err(e) = bufs.claim(bid) {
                tracing::error!(error = %e, "receive buffer claimed twice");
                return;
            }
        }
        let live = self
            .conns
            .get(index)
            .is_some_and(|conn| conn.gen == gen && conn.state != State::Free);
        if live {
            self.received(ring, bufs, index, c, handlers, make);
        }
        if let Some(bid) = bid {
            let _ = bufs.recycle(bid);
        }
    }

    /// Handles a receive completion of a live connection (its buffer, if any, is claimed).
    fn received<M, F>(
        &mut self,
        ring: &mut I,
        bufs: &I::Bufs,
        index: usize,
        c: &Completion,
        handlers: &mut HandlerSlots<F>,
        make: &M,
    ) where
        M: Fn(Rc<WorkerCtx<H>>, Request, Response, u64, u16) -> F,
        F: Future<Output = ()>,
    {
        let conn = &mut self.conns[index];
        if !c.more() {
            conn.recv_armed = false;
        }
        if c.result > 0 {
            let data = c
                .buffer_id()
                .and_then(|bid| bufs.buffer(bid, c.result as usize).ok());
            if let (Some(data), State::Open) = (data, conn.state) {
                conn.fresh = false;
                conn.last_active = self.now;
                self.lend_buffer(index);
                let conn = &mut self.conns[index];
                if conn.pending.is_empty() && !conn.paused {
                    let used = self.feed(ring, index, data, handlers, make);
                    if self.conns[index].state == State::Open && used < data.len() {
                        self.stash(index, &data[used..]);
                    }
                } else {
                    self.stash(index, data);
                    self.feed_pending(ring, index, handlers, make);
                }
            }
        } else if c.result == 0 {
            // The peer closed its side.
            if conn.state == State::Open {
                let idle = conn.reqs.is_empty();
                if !idle {
                    tracing::debug!(conn = conn.id, "peer closed with requests in flight");
                }
                self.cancel_handlers(index, handlers);
                self.close(index);
            } else if conn.lingering_since.is_some() && !conn.close_submitted {
                // The peer's FIN after ours: nothing can meet a reset any more.
                self.submit_shutdown_close(ring, index);
            }
        } else if c.result == -libc::ENOBUFS {
            // Every provided buffer is in use; they are recycled as soon as decoded, so
            // receiving again right away finds one.
        } else if c.result != -libc::ECANCELED {
            let err = std::io::Error::from_raw_os_error(-c.result);
            tracing::debug!(conn = conn.id, error = %err, "receive failed");
            if conn.state == State::Open {
                self.cancel_handlers(index, handlers);
                self.abort(ring, index);
            }
        }
        let conn = &mut self.conns[index];
        if conn.state == State::Open && conn.pending.len() >= PAUSED_INPUT_CAP && !conn.recv_held {
            // A handler is not reading its body and input keeps coming: stop receiving until it
            // catches up (backpressure towards the web server).
            conn.recv_held = true;
            if conn.recv_armed {
                let target = user_data(Op::Recv, index, conn.gen);
                if let Err(e) = ring.cancel(target, user_data(Op::Cancel, index, conn.gen)) {
                    tracing::warn!(conn = conn.id, error = %e, "cannot pause receiving");
                }
            }
        }
        let conn = &mut self.conns[index];
        if conn.handing_off {
            if c.result > 0 || conn.state != State::Open {
                // A request came in before the receive was cancelled: serve it here (the
                // hand-off is tried again once the connection is idle).
                conn.handing_off = false;
            } else if !conn.recv_armed {
                self.finish_handoff(index);
                return;
            }
        }
        let conn = &mut self.conns[index];
        let reading =
            conn.state == State::Open || (conn.lingering_since.is_some() && !conn.close_submitted);
        if reading && !conn.recv_armed && !conn.recv_held && !conn.handing_off {
            self.rearm(ring, index);
        }
        self.mark_dirty(index);
        self.maybe_free(index);
    }

    fn rearm(&mut self, ring: &mut I, index: usize) {
        let c = &mut self.conns[index];
        if c.recv_armed {
            return;
        }
        let ud = user_data(Op::Recv, index, c.gen);
        match ring.recv_multishot(c.fd, RECV_GROUP, ud) {
            Ok(()) => {
                c.recv_armed = true;
                c.recv_held = false;
            }
            Err(e) => {
                tracing::warn!(conn = c.id, error = %e, "cannot receive; closing");
                self.abort(ring, index);
            }
        }
    }

    /// Decodes what is pending on connection `index`.
    fn feed_pending<M, F>(
        &mut self,
        ring: &mut I,
        index: usize,
        handlers: &mut HandlerSlots<F>,
        make: &M,
    ) where
        M: Fn(Rc<WorkerCtx<H>>, Request, Response, u64, u16) -> F,
        F: Future<Output = ()>,
    {
        let pending = std::mem::take(&mut self.conns[index].pending);
        let used = self.feed(ring, index, &pending, handlers, make);
        let c = &mut self.conns[index];
        let mut pending = pending;
        pending.drain(..used);
        if c.state == State::Open {
            // Anything appended meanwhile (nothing is, but keep order if it were) goes after.
            pending.append(&mut c.pending);
        } else {
            pending.clear();
        }
        c.pending = pending;
        if c.state == State::Open && c.recv_held && c.pending.len() < PAUSED_INPUT_CAP {
            c.recv_held = false;
            self.rearm(ring, index);
        }
    }

    /// Decodes records from `input` until it ends inside one, the connection pauses or closes.
    /// Returns the bytes used.
    fn feed<M, F>(
        &mut self,
        ring: &mut I,
        index: usize,
        input: &[u8],
        handlers: &mut HandlerSlots<F>,
        make: &M,
    ) -> usize
    where
        M: Fn(Rc<WorkerCtx<H>>, Request, Response, u64, u16) -> F,
        F: Future<Output = ()>,
    {
        let mut pos = 0;
        let now = self.now;
        // A step may make an event without using input (SCGI and AJP13 end a body that way):
        // call again until a step makes nothing.
        // The first call is made even with no input: a machine may owe an event (a body that
        // ended with the last bytes, while the connection was paused).
        let mut evented = true;
        loop {
            let c = &mut self.conns[index];
            if c.state != State::Open || c.paused || (pos >= input.len() && !evented) {
                return pos;
            }
            let step = {
                let mut out = c.out.buf_mut();
                c.machine.handle_input(&input[pos..], now, &mut out)
            };
            let step = match step {
                Ok(s) => s,
                Err(e) => {
                    let protocol = c.machine.protocol();
                    match e.counted {
                        Counted::Protocol(kind) => self.ctx.metrics.protocol_error(protocol, kind),
                        Counted::Limit(limit) => self.ctx.metrics.limit_rejected(protocol, limit),
                    }
                    let label = match protocol {
                        Protocol::FastCgi => "FastCGI",
                        Protocol::Scgi => "SCGI",
                        Protocol::Ajp => "AJP",
                    };
                    tracing::warn!(
                        conn = c.id,
                        error = %e.message,
                        "{label} protocol error; closing connection"
                    );
                    self.cancel_handlers(index, handlers);
                    self.abort(ring, index);
                    return input.len();
                }
            };
            pos += step.consumed;
            evented = step.event.is_some();
            if let Some(ev) = step.event {
                self.on_event(index, ev, handlers, make);
            } else if step.consumed == 0 {
                return pos;
            }
        }
    }

    fn on_event<M, F>(
        &mut self,
        index: usize,
        ev: Event<'_>,
        handlers: &mut HandlerSlots<F>,
        make: &M,
    ) where
        M: Fn(Rc<WorkerCtx<H>>, Request, Response, u64, u16) -> F,
        F: Future<Output = ()>,
    {
        let protocol = self.conns[index].machine.protocol();
        match ev {
            Event::Request { id } => self.start_request(index, id, handlers, make),
            Event::Body { id, data } => {
                self.ctx.metrics.request_body_bytes(protocol, data.len());
                let c = &mut self.conns[index];
                if let Some(r) = c.reqs.iter().find(|r| r.id == id) {
                    let room = r.ex.push_body_now(data);
                    if c.machine.body_on_request() {
                        // AJP13: the next packet is asked for only while there is room.
                        if room {
                            c.machine.want_body(&mut c.out.buf_mut());
                        }
                    } else if !room {
                        c.paused = true;
                    }
                }
            }
            Event::BodyEnd { id } => {
                let c = &mut self.conns[index];
                if let Some(r) = c.reqs.iter_mut().find(|r| r.id == id) {
                    r.body_ended = true;
                    r.ex.end_body();
                }
            }
            Event::Abort { id } => {
                let c = &mut self.conns[index];
                tracing::debug!(conn = c.id, request = id, "ABORT_REQUEST");
                let conn = (index, c.gen);
                if let Some(r) = c.reqs.iter_mut().find(|r| r.id == id) {
                    match r.slot.take() {
                        // Dropping the handler drops its Response, which ends the request.
                        Some(s) => handlers.cancel(s, conn),
                        None => {
                            let mut resp = Response::new(r.ex.clone());
                            resp.end_now();
                        }
                    }
                }
            }
            Event::Refused { id, reason } => self.refused(index, id, reason),
            _ => {}
        }
        self.mark_dirty(index);
    }

    fn refused(&mut self, index: usize, id: u16, reason: Refusal) {
        // The peer goes on sending the refused request's records.
        self.conns[index].linger = true;
        let protocol = self.conns[index].machine.protocol();
        let metrics = &self.ctx.metrics;
        let conn_id = self.conns[index].id;
        match reason {
            Refusal::MaxReqsPerConn => {
                tracing::warn!(
                    conn = conn_id,
                    request = id,
                    limit = self.ctx.limits.max_reqs_per_conn,
                    "max-reqs-per-conn reached: FCGI_OVERLOADED"
                );
                metrics.limit_rejected(protocol, Limit::MaxReqsPerConn);
            }
            Refusal::UnknownRole(role) => {
                tracing::info!(conn = conn_id, request = id, role, "unknown role");
                metrics.protocol_error(protocol, ProtocolErrorKind::UnknownRole);
            }
            Refusal::ParamsTooLarge => {
                metrics.limit_rejected(protocol, Limit::MaxParamsBytes);
            }
            Refusal::BadParams => {
                metrics.protocol_error(protocol, ProtocolErrorKind::BadParams);
            }
            Refusal::BadSecret => {
                tracing::warn!(
                    conn = conn_id,
                    "AJP request without the right secret; answering 403"
                );
            }
            _ => {}
        }
        if let Some(status) = reason.http_status() {
            tracing::warn!(conn = conn_id, request = id, reason = ?reason, status, "request refused");
            let ex = self.exchange(index, id);
            refuse_request(&self.ctx, &ex, status);
            self.conns[index].machine.finish(id, self.now);
            self.release_exchange(ex);
        }
    }

    /// Returns a finished exchange to the worker's pool, detached from its connection (so the
    /// connection's output buffer is free to be reused).
    fn release_exchange(&mut self, ex: Rc<Exchange>) {
        if self.exchanges.len() < EXCHANGE_POOL {
            let params = ex.take_params();
            if params.has_capacity() {
                self.params.push(params);
            }
            ex.rebind(&self.detached.0, &self.detached.1);
            self.exchanges.push(ex);
        }
    }

    /// An exchange for request `id` of connection `index`, from the worker's pool.
    fn exchange(&mut self, index: usize, id: u16) -> Rc<Exchange> {
        let body_limit = self.ctx.limits.body_buffer;
        let c = &mut self.conns[index];
        let framing = c.machine.framing(id);
        match self.exchanges.pop() {
            Some(ex) => {
                ex.rebind(&c.out, &self.detached.1);
                ex.reset(framing);
                ex
            }
            None => Rc::new(Exchange::new(
                c.out.clone(),
                self.detached.1.clone(),
                framing,
                body_limit,
            )),
        }
    }

    fn start_request<M, F>(
        &mut self,
        index: usize,
        id: u16,
        handlers: &mut HandlerSlots<F>,
        make: &M,
    ) where
        M: Fn(Rc<WorkerCtx<H>>, Request, Response, u64, u16) -> F,
        F: Future<Output = ()>,
    {
        let ex = self.exchange(index, id);
        let c = &mut self.conns[index];
        let params = c.machine.take_params(id);
        let spare = std::mem::replace(&mut *ex.params_mut(), params);
        c.machine.recycle_params(spare);
        let (req, resp) = prepare(&self.ctx, ex.clone());
        let conn_key = (index, c.gen);
        let conn_id = c.id;
        c.reqs.push(Req {
            id,
            body_ended: false,
            ex,
            slot: None,
        });
        let fut = make(self.ctx.clone(), req, resp, conn_id, id);
        let slot = handlers.start(fut, conn_key);
        if let Some(r) = self.conns[index].reqs.iter_mut().find(|r| r.id == id) {
            r.slot = slot;
        }
    }

    /// Drops every running handler of connection `index`.
    fn cancel_handlers<F: Future<Output = ()>>(
        &mut self,
        index: usize,
        handlers: &mut HandlerSlots<F>,
    ) {
        let c = &mut self.conns[index];
        let conn = (index, c.gen);
        c.out.close();
        for r in &mut c.reqs {
            if let Some(s) = r.slot.take() {
                handlers.cancel(s, conn);
            }
            r.ex.wake_reader();
        }
    }

    /// Handles the end of a send.
    pub(super) fn on_send(&mut self, ring: &mut I, index: usize, gen: u32, result: i32) {
        let Some(c) = self.conns.get_mut(index) else {
            return;
        };
        if c.gen != gen || !c.send_in_flight {
            return;
        }
        c.send_in_flight = false;
        if result < 0 {
            if result != -libc::ECANCELED {
                let err = std::io::Error::from_raw_os_error(-result);
                tracing::debug!(conn = c.id, error = %err, "send failed; closing connection");
            }
            c.out.close();
            c.sending.clear();
            if c.send_linked {
                // The linked shutdown and close were cancelled: the descriptor is still open.
                c.close_submitted = false;
            }
            self.abort(ring, index);
            return;
        }
        c.sent += result as usize;
        if c.sent < c.sending.len() {
            if c.send_linked {
                // MSG_WAITALL came back short: the connection failed, and the linked shutdown
                // and close were cancelled, so the descriptor is still ours to close.
                tracing::debug!(conn = c.id, "short final send; closing connection");
                c.out.close();
                c.sending.clear();
                c.close_submitted = false;
                self.abort(ring, index);
                return;
            }
            // A plain short send: the rest goes next.
            self.submit_send(ring, index, false);
            return;
        }
        c.sending.clear();
        c.sent = 0;
        c.out.sent();
        self.mark_dirty(index);
        self.maybe_free(index);
    }

    fn submit_send(&mut self, ring: &mut I, index: usize, then_close: bool) {
        let c = &mut self.conns[index];
        let ud = user_data(Op::Send, index, c.gen);
        let rest = &c.sending[c.sent..];
        let len = u32::try_from(rest.len()).unwrap_or(u32::MAX);
        // SAFETY: `sending` is neither touched nor dropped while the send is in flight: it is
        // only cleared or refilled in `on_send` (after the completion), and a connection slot
        // is never freed or reused while `send_in_flight` is set (`maybe_free`).
        let res = unsafe {
            if then_close {
                let ids = LinkedIds {
                    send: ud,
                    shutdown: user_data(Op::Cancel, index, c.gen),
                    close: user_data(Op::Close, index, c.gen),
                };
                // Soft: a short send cancels the shutdown and close; the rest is sent again
                // and the close follows it (`on_send`, `on_close`).
                ring.send_shutdown_close(c.fd, rest.as_ptr(), len, ids, LinkMode::Soft, false)
            } else {
                ring.send(c.fd, rest.as_ptr(), len, 0, ud)
            }
        };
        match res {
            Ok(()) => {
                c.send_in_flight = true;
                c.send_linked = then_close;
                c.close_submitted |= then_close;
            }
            Err(e) => {
                tracing::warn!(conn = c.id, error = %e, "cannot send; closing");
                c.out.close();
                self.abort(ring, index);
            }
        }
    }

    fn submit_shutdown_close(&mut self, ring: &mut I, index: usize) {
        let c = &mut self.conns[index];
        c.close_submitted = true;
        let ids = LinkedIds {
            send: user_data(Op::Cancel, index, c.gen),
            shutdown: user_data(Op::Cancel, index, c.gen),
            close: user_data(Op::Close, index, c.gen),
        };
        static NOTHING: [u8; 0] = [];
        // SAFETY: an empty send reads no memory; the pointer is to a static. Hard links: the
        // shutdown and the close run whatever the (empty) send returns.
        let res = unsafe {
            ring.send_shutdown_close(c.fd, NOTHING.as_ptr(), 0, ids, LinkMode::Hard, false)
        };
        if let Err(e) = res {
            // The ring refused the submission: close synchronously instead.
            tracing::debug!(conn = c.id, error = %e, "closing without the ring");
            // SAFETY: fd is this connection's socket, owned by it and closed exactly once.
            unsafe {
                libc::shutdown(c.fd, libc::SHUT_RDWR);
                libc::close(c.fd);
            }
            c.close_done = true;
        }
    }

    /// The close (shutdown + close) completed, or was cancelled by a short send before it.
    pub(super) fn on_close(&mut self, index: usize, gen: u32, result: i32) {
        let Some(c) = self.conns.get_mut(index) else {
            return;
        };
        if c.gen != gen || c.state == State::Free {
            return;
        }
        if result == -libc::ECANCELED {
            // The linked send failed (`on_send` closes the descriptor itself).
            return;
        }
        c.close_done = true;
        self.maybe_free(index);
    }

    /// The open connection with no request in flight and no input waiting that has been quiet
    /// the longest (scanned only when `--max-conns` is reached).
    fn least_recently_active_idle(&self) -> Option<usize> {
        self.conns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.state == State::Open && !c.handing_off && idle(c))
            .min_by_key(|(_, c)| c.last_active)
            .map(|(i, _)| i)
    }

    /// Starts handing idle connection `index` to another worker process: its receive is
    /// cancelled, and [`finish_handoff`](ConnTable::finish_handoff) runs once that completed
    /// with no input (input that arrives first is served here).
    fn begin_handoff(&mut self, ring: &mut I, index: usize) {
        let c = &mut self.conns[index];
        if c.handing_off {
            return;
        }
        c.handing_off = true;
        if !c.recv_armed {
            self.finish_handoff(index);
            return;
        }
        let target = user_data(Op::Recv, index, c.gen);
        if let Err(e) = ring.cancel(target, user_data(Op::Cancel, index, c.gen)) {
            tracing::debug!(conn = c.id, error = %e, "cannot cancel the receive; closing instead");
            c.handing_off = false;
            c.state = State::Closing;
            self.mark_dirty(index);
        }
    }

    /// Sends idle connection `index` to the hand-off socket and lets go of it; if that fails,
    /// closes it as a stopping worker always did.
    fn finish_handoff(&mut self, index: usize) {
        let Some(to) = self.handoff else {
            return;
        };
        let c = &mut self.conns[index];
        c.handing_off = false;
        if c.state != State::Open || !idle(c) || c.send_in_flight || !c.out.is_empty() {
            // Something happened meanwhile: the usual paths take it from here.
            self.mark_dirty(index);
            return;
        }
        match super::super::handoff::send(to, c.fd, c.machine.protocol()) {
            Ok(()) => {
                tracing::debug!(
                    conn = c.id,
                    "idle connection handed to another worker process"
                );
                // SAFETY: our descriptor for the socket; the hand-off holds its own reference,
                // so closing ours (without a shutdown) leaves the connection open.
                unsafe { libc::close(c.fd) };
                c.state = State::Closing;
                c.close_submitted = true;
                c.close_done = true;
                c.out.close();
                self.maybe_free(index);
            }
            Err(e) => {
                tracing::debug!(conn = c.id, error = %e, "cannot hand the connection off; closing it");
                c.state = State::Closing;
                self.mark_dirty(index);
            }
        }
    }

    /// Takes a connection handed off by a stopping worker process.
    pub(super) fn adopt(&mut self, ring: &mut I, fd: std::os::fd::OwnedFd, protocol: Protocol) {
        use std::os::fd::IntoRawFd;
        self.accept(ring, fd.into_raw_fd(), protocol);
    }

    /// Closes cleanly: what is queued goes out first, then shutdown and close.
    fn close(&mut self, index: usize) {
        let c = &mut self.conns[index];
        if c.state != State::Open {
            return;
        }
        c.state = State::Closing;
        self.mark_dirty(index);
    }

    /// Closes now, dropping whatever was not sent.
    fn abort(&mut self, ring: &mut I, index: usize) {
        let c = &mut self.conns[index];
        if c.state == State::Free {
            return;
        }
        c.state = State::Closing;
        c.out.close();
        if !c.close_submitted {
            self.submit_shutdown_close(ring, index);
        }
        self.maybe_free(index);
    }

    /// Frees the slot of a closing connection once nothing is in flight on it.
    fn maybe_free(&mut self, index: usize) {
        let c = &mut self.conns[index];
        if c.state != State::Closing || !c.close_done || c.send_in_flight || c.recv_armed {
            return;
        }
        c.state = State::Free;
        c.gen = c.gen.wrapping_add(1);
        c.fd = -1;
        c.pending.clear();
        c.sending.clear();
        c.paused = false;
        let mut reqs = std::mem::take(&mut c.reqs);
        c._counted = None;
        for r in reqs.drain(..) {
            if Rc::strong_count(&r.ex) == 1 {
                self.release_exchange(r.ex);
            }
        }
        self.conns[index].reqs = reqs;
        self.ctx.process_conn_closed();
        self.open -= 1;
        self.free.push(index);
    }

    /// Sends, reaps finished requests, resumes paused input and closes, for every connection
    /// something happened on this turn.
    pub(super) fn flush_all<M, F>(&mut self, ring: &mut I, handlers: &mut HandlerSlots<F>, make: &M)
    where
        M: Fn(Rc<WorkerCtx<H>>, Request, Response, u64, u16) -> F,
        F: Future<Output = ()>,
    {
        let mut i = 0;
        while i < self.dirty.len() {
            let index = self.dirty[i];
            i += 1;
            self.conns[index].dirty = false;
            self.flush(ring, index, handlers, make);
        }
        self.dirty.clear();
    }

    fn flush<M, F>(&mut self, ring: &mut I, index: usize, handlers: &mut HandlerSlots<F>, make: &M)
    where
        M: Fn(Rc<WorkerCtx<H>>, Request, Response, u64, u16) -> F,
        F: Future<Output = ()>,
    {
        let now = self.now;
        let c = &mut self.conns[index];
        if c.state == State::Free {
            return;
        }
        // Reap requests whose response ended.
        let mut reaped = false;
        let mut j = 0;
        while j < self.conns[index].reqs.len() {
            let c = &mut self.conns[index];
            if c.reqs[j].ex.is_done() {
                let r = c.reqs.swap_remove(j);
                c.linger |= !r.body_ended;
                c.machine.finish(r.id, now);
                reaped = true;
                // A handler still running after its response ended keeps its exchange.
                if Rc::strong_count(&r.ex) == 1 {
                    self.release_exchange(r.ex);
                }
            } else {
                j += 1;
            }
        }
        let c = &mut self.conns[index];
        // Resume input once every body buffer has room again; AJP13 asks for the next body
        // packet instead.
        if c.state == State::Open && c.paused && c.reqs.iter().all(|r| r.ex.body_has_room()) {
            c.paused = false;
            self.feed_pending(ring, index, handlers, make);
        } else if c.state == State::Open && c.machine.body_on_request() {
            if c.reqs.iter().all(|r| r.ex.body_has_room()) {
                c.machine.want_body(&mut c.out.buf_mut());
            }
            // AJP13 leaves the next request's bytes unread while one runs.
            if reaped && !c.pending.is_empty() {
                self.feed_pending(ring, index, handlers, make);
            }
        }
        let c = &mut self.conns[index];
        let hand_off = self.stopping
            && self.handoff.is_some()
            && c.state == State::Open
            && idle(c)
            && !c.linger
            && !c.machine.wants_close();
        if c.state == State::Open
            && (c.machine.wants_close() || (self.stopping && !c.fresh && idle(c) && !hand_off))
        {
            c.state = State::Closing;
        }
        if c.send_in_flight || c.close_submitted {
            return;
        }
        let closing = c.state == State::Closing;
        if !c.out.is_empty() {
            debug_assert!(c.sending.is_empty());
            c.out.take(&mut c.sending);
            c.sent = 0;
            let link = closing && !c.linger;
            self.submit_send(ring, index, link);
        } else if closing && c.linger {
            if c.lingering_since.is_none() {
                // Half-close and read on until the peer's FIN (or LINGER passes).
                c.lingering_since = Some(now);
                let ud = user_data(Op::Cancel, index, c.gen);
                if ring.shutdown(c.fd, std::net::Shutdown::Write, ud).is_err() {
                    self.abort(ring, index);
                }
            }
        } else if closing && !c.close_submitted {
            self.submit_shutdown_close(ring, index);
            self.maybe_free(index);
        } else if hand_off {
            self.begin_handoff(ring, index);
        } else if !closing && idle(c) {
            self.reclaim_buffers(index);
        }
    }

    /// Keeps input that could not be decoded yet (a record cut by the end of a receive buffer,
    /// or input held while paused) in the connection's `pending` bytes, in a pooled buffer.
    fn stash(&mut self, index: usize, data: &[u8]) {
        let c = &mut self.conns[index];
        if c.pending.capacity() == 0 {
            if let Some(buf) = self.buffers.pop() {
                c.pending = buf;
            }
        }
        c.pending.extend_from_slice(data);
    }

    /// Gives connection `index` an output buffer from the pool if it has none, before input
    /// that may produce output is decoded (no allocation once the pool is warm).
    fn lend_buffer(&mut self, index: usize) {
        let c = &mut self.conns[index];
        // Enough spare variable buffers for a batch of multiplexed requests.
        for _ in 0..SPARE_PARAMS {
            if c.machine.spare_count() >= SPARE_PARAMS {
                break;
            }
            match self.params.pop() {
                Some(p) => c.machine.recycle_params(p),
                None => break,
            }
        }
        if c.out.capacity() > 0 {
            return;
        }
        let mut buf = self
            .buffers
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUF_LEN));
        c.out.take(&mut buf);
    }

    /// Takes the buffers of an idle connection back into the pool: an idle keep-alive
    /// connection then costs its socket and a few hundred bytes of state.
    fn reclaim_buffers(&mut self, index: usize) {
        let c = &mut self.conns[index];
        if c.send_in_flight || !c.out.is_empty() {
            return;
        }
        let mut out = Vec::new();
        c.out.take(&mut out);
        let sending = std::mem::take(&mut c.sending);
        let pending = if c.pending.is_empty() {
            std::mem::take(&mut c.pending)
        } else {
            Vec::new()
        };
        while let Some(p) = c.machine.take_spare() {
            if self.params.len() < EXCHANGE_POOL {
                self.params.push(p);
            }
        }
        for buf in [out, sending, pending] {
            if buf.capacity() > 0 && buf.capacity() <= BUF_KEEP_MAX && self.buffers.len() < BUF_POOL
            {
                self.buffers.push(buf);
            }
        }
    }

    /// Stops: connections close once idle (`flush`), and one that has sent nothing yet gets a
    /// moment to send its request (`sweep`).
    pub(super) fn begin_stop(&mut self) {
        self.stopping = true;
        for index in 0..self.conns.len() {
            if self.conns[index].state == State::Open {
                self.mark_dirty(index);
            }
        }
    }

    /// Checks every connection's deadline.
    pub(super) fn sweep<F: Future<Output = ()>>(
        &mut self,
        ring: &mut I,
        handlers: &mut HandlerSlots<F>,
    ) {
        let now = self.now;
        for index in 0..self.conns.len() {
            let c = &mut self.conns[index];
            if let Some(since) = c.lingering_since {
                if !c.close_submitted && now - since > LINGER {
                    tracing::debug!(
                        conn = c.id,
                        "peer did not close after FIN; dropping connection"
                    );
                    self.abort(ring, index);
                }
                continue;
            }
            if c.state != State::Open {
                continue;
            }
            if self.stopping && idle(c) && self.handoff.is_some() && !c.linger {
                // Handed off by `flush`, as soon as nothing is being sent.
                if !c.handing_off {
                    self.mark_dirty(index);
                }
                continue;
            }
            if self.stopping && idle(c) && (!c.fresh || now - c.accepted > FRESH_GRACE) {
                c.state = State::Closing;
                self.mark_dirty(index);
                continue;
            }
            match c.machine.expired(now) {
                Some(Expired::Idle) => {
                    tracing::debug!(conn = c.id, "idle timeout");
                    c.state = State::Closing;
                    self.mark_dirty(index);
                }
                Some(Expired::Head) => {
                    tracing::warn!(
                        conn = c.id,
                        timeout = ?self.ctx.limits.params_timeout,
                        "params-timeout: the request head did not arrive in time; closing connection"
                    );
                    self.ctx
                        .metrics
                        .limit_rejected(c.machine.protocol(), Limit::ParamsTimeout);
                    self.cancel_handlers(index, handlers);
                    self.abort(ring, index);
                }
                _ => {}
            }
        }
    }

    /// Cuts every connection off (shutdown timeout): handlers are dropped, sockets shut down.
    pub(super) fn abort_all<F: Future<Output = ()>>(
        &mut self,
        ring: &mut I,
        handlers: &mut HandlerSlots<F>,
    ) {
        for index in 0..self.conns.len() {
            if self.conns[index].state != State::Free {
                self.cancel_handlers(index, handlers);
                self.abort(ring, index);
            }
        }
    }

    /// Marks the connection of a handler that ran as needing a flush.
    pub(super) fn handler_ran(&mut self, conn: (usize, u32)) {
        if self.conns.get(conn.0).is_some_and(|c| c.gen == conn.1) {
            self.mark_dirty(conn.0);
        }
    }
}

/// No request in flight and no input waiting.
fn idle(c: &Conn) -> bool {
    c.reqs.is_empty() && c.machine.is_idle() && c.pending.is_empty()
}
