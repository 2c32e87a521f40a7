//! The FastCGI connection driver: read records, run one handler task per request id, let the
//! handlers write their responses, close or keep the connection as the peer asked.
//!
//! The driver is a loop around one pending read. Between reads it decodes every complete record
//! in its buffer. While a read is pending it also reacts to handlers finishing (to close a
//! connection whose last request is done), to timeouts and to the worker stopping; it never
//! drops the pending read (see [`crate::io`]): to stop waiting it shuts the socket down, which
//! completes the read.

use std::pin::pin;
use std::rc::Rc;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::worker::WorkerCtx;
use super::writer;
use crate::app::exchange::{ConnOut, Exchange, Framing};
use crate::app::{CatchUnwind, Handler, Request, Response};
use crate::io::{self, Shutdown, Stream, TaskHandle};
use crate::proto::fcgi::{
    self, protocol_status, role, rtype, values, BeginRequest, Decode, NvIter, ParamsError, Record,
    MAX_RECORD_LEN,
};

/// Receive buffer: room for two maximal records, so after compaction a whole record always fits.
const READ_BUF_LEN: usize = 2 * MAX_RECORD_LEN;
/// How long a closing connection waits for the peer to close after our FIN.
const LINGER: std::time::Duration = std::time::Duration::from_secs(5);
/// Finished exchanges kept for reuse per connection.
const POOL_LEN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// BEGIN_REQUEST seen, PARAMS arriving.
    Params,
    /// The handler runs.
    Running,
}

struct Active {
    id: u16,
    ex: Rc<Exchange>,
    stage: Stage,
    since: Instant,
    task: Option<TaskHandle>,
}

/// How the read loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// We closed (no keep-conn, idle, stop) and the peer closed after our FIN.
    Clean,
    /// The peer closed or reset; requests still running are cancelled.
    PeerGone,
    /// The peer broke the protocol or a timeout hit; the connection is dropped.
    Abort,
}

struct Conn<'a, H> {
    ctx: &'a Rc<WorkerCtx<H>>,
    id: u64,
    stream: Rc<Stream>,
    out: Rc<ConnOut>,
    events: Rc<Notify>,
    active: Vec<Active>,
    pool: Vec<Rc<Exchange>>,
    /// A request without FCGI_KEEP_CONN was seen: close once no request is active.
    close_when_idle: bool,
    /// Past max-conns: every request is answered FCGI_OVERLOADED.
    overloaded: bool,
    closing_since: Option<Instant>,
    last_activity: Instant,
}

/// Serves one FastCGI connection until it closes.
pub(crate) async fn serve<H: Handler>(
    stream: Stream,
    ctx: &Rc<WorkerCtx<H>>,
    id: u64,
    overloaded: bool,
) {
    let stream = Rc::new(stream);
    let out = Rc::new(ConnOut::new(ctx.limits.write_buffer));
    let writer = io::spawn(writer::run(stream.clone(), out.clone(), id));
    let mut conn = Conn {
        ctx,
        id,
        stream,
        out,
        events: Rc::new(Notify::new()),
        active: Vec::new(),
        pool: Vec::new(),
        close_when_idle: overloaded,
        overloaded,
        closing_since: None,
        last_activity: Instant::now(),
    };
    let exit = conn.run().await;
    tracing::debug!(conn = id, ?exit, "connection closed");
    if exit != Exit::Clean {
        for a in &conn.active {
            if let Some(t) = &a.task {
                t.abort();
            }
            a.ex.wake_reader();
        }
        conn.out.close();
    }
    let _ = writer.await;
    if exit == Exit::Abort {
        let _ = conn.stream.shutdown(Shutdown::Both);
    }
}

impl<H: Handler> Conn<'_, H> {
    async fn run(&mut self) -> Exit {
        let mut buf = Vec::with_capacity(READ_BUF_LEN);
        let mut timer = pin!(tokio::time::sleep_until(Instant::now()));
        loop {
            let mut pos = 0;
            loop {
                match fcgi::decode_record(&buf[pos..]) {
                    Ok(Decode::Complete(rec, used)) => {
                        self.on_record(rec).await;
                        pos += used;
                    }
                    Ok(Decode::Partial) => break,
                    Err(e) => {
                        tracing::warn!(conn = self.id, error = %e, "FastCGI protocol error; closing connection");
                        return Exit::Abort;
                    }
                }
            }
            buf.drain(..pos);
            let pending = buf.len();
            self.reap();
            if self.closing_since.is_none() && self.should_close() {
                self.begin_close();
            }
            // Wait for bytes, reacting to handlers, timeouts and the stop signal meanwhile.
            let stream = self.stream.clone();
            let read = stream.read(buf);
            let mut read = pin!(read);
            let mut forced = false;
            let (res, b) = loop {
                timer.as_mut().reset(self.deadline(pending));
                tokio::select! {
                    r = &mut read => break r,
                    _ = self.events.notified() => {
                        self.reap();
                        if self.closing_since.is_none() && self.should_close() {
                            self.begin_close();
                        }
                    }
                    _ = self.ctx.stop.wait(), if !self.close_when_idle => {
                        self.close_when_idle = true;
                        if self.closing_since.is_none() && self.should_close() {
                            self.begin_close();
                        }
                    }
                    _ = &mut timer, if !forced => {
                        forced = self.on_timeout(pending);
                    }
                }
            };
            buf = b;
            match res {
                Ok(0) if self.closing_since.is_some() && !forced => return Exit::Clean,
                Ok(0) if forced => return Exit::Abort,
                Ok(0) => return Exit::PeerGone,
                Ok(_) => self.last_activity = Instant::now(),
                Err(e) => {
                    tracing::debug!(conn = self.id, error = %e, "read failed");
                    return if forced { Exit::Abort } else { Exit::PeerGone };
                }
            }
        }
    }

    /// When the current wait should end: linger after our FIN, the params timeout while a
    /// request's variables (or a partial record) are arriving, the idle timeout between
    /// requests, and no limit while handlers run.
    fn deadline(&self, pending: usize) -> Instant {
        const NEVER: std::time::Duration = std::time::Duration::from_secs(86400 * 365);
        let limits = &self.ctx.limits;
        if let Some(t) = self.closing_since {
            return t + LINGER;
        }
        let params_since = self
            .active
            .iter()
            .filter(|a| a.stage == Stage::Params)
            .map(|a| a.since)
            .min();
        match params_since {
            Some(t) => t + limits.params_timeout,
            None if pending > 0 => self.last_activity + limits.params_timeout,
            None if self.active.is_empty() => self.last_activity + limits.idle_timeout,
            None => Instant::now() + NEVER,
        }
    }

    /// Returns true when the socket was shut down to end the wait.
    fn on_timeout(&mut self, pending: usize) -> bool {
        if self.closing_since.is_some() {
            tracing::debug!(
                conn = self.id,
                "peer did not close after FIN; dropping connection"
            );
        } else if self.active.is_empty() && pending == 0 {
            tracing::debug!(conn = self.id, "idle timeout");
            // Nothing in flight: a clean close.
            self.close_when_idle = true;
            self.begin_close();
            return false;
        } else {
            tracing::warn!(
                conn = self.id,
                timeout = ?self.ctx.limits.params_timeout,
                "params-timeout: request variables did not arrive in time; closing connection"
            );
        }
        let _ = self.stream.shutdown(Shutdown::Both);
        true
    }

    fn should_close(&self) -> bool {
        (self.close_when_idle || self.ctx.stop.is_stopped()) && self.active.is_empty()
    }

    fn begin_close(&mut self) {
        self.closing_since = Some(Instant::now());
        self.out.begin_closing();
    }

    /// Drops finished requests from the table, keeping their exchanges for reuse.
    fn reap(&mut self) {
        let mut i = 0;
        while i < self.active.len() {
            if self.active[i].ex.is_done() {
                let a = self.active.swap_remove(i);
                if self.pool.len() < POOL_LEN {
                    self.pool.push(a.ex);
                }
                self.last_activity = Instant::now();
            } else {
                i += 1;
            }
        }
    }

    fn find(&mut self, id: u16) -> Option<&mut Active> {
        self.active
            .iter_mut()
            .find(|a| a.id == id && !a.ex.is_done())
    }

    async fn on_record(&mut self, rec: Record<'_>) {
        let id = rec.header.request_id;
        match rec.header.rtype {
            rtype::BEGIN_REQUEST => {
                if let Some(b) = BeginRequest::parse(rec.content) {
                    self.on_begin(id, b);
                }
            }
            rtype::PARAMS => self.on_params(id, rec.content),
            rtype::STDIN => {
                if let Some(a) = self.find(id) {
                    let ex = a.ex.clone();
                    if rec.content.is_empty() {
                        ex.end_body();
                    } else {
                        ex.push_body(rec.content).await;
                    }
                }
            }
            rtype::ABORT_REQUEST => self.on_abort(id),
            rtype::GET_VALUES => self.on_get_values(rec.content),
            rtype::DATA => {}
            t if rec.is_management() => {
                tracing::debug!(conn = self.id, rtype = t, "unknown management record");
                self.out.push(|o| fcgi::encode_unknown_type(o, t));
            }
            t => {
                tracing::debug!(conn = self.id, request = id, rtype = t, "ignoring record");
            }
        }
    }

    fn refuse(&mut self, id: u16, status: u8, keep_conn: bool) {
        self.out
            .push(|o| fcgi::encode_end_request(o, id, 0, status));
        if !keep_conn {
            self.close_when_idle = true;
        }
    }

    fn on_begin(&mut self, id: u16, begin: BeginRequest) {
        let keep = begin.keep_conn();
        if self.active.iter().any(|a| a.id == id && !a.ex.is_done()) {
            tracing::warn!(
                conn = self.id,
                request = id,
                "BEGIN_REQUEST for an active id; ignored"
            );
            return;
        }
        if self.overloaded {
            return self.refuse(id, protocol_status::OVERLOADED, keep);
        }
        if begin.role != role::RESPONDER {
            tracing::info!(
                conn = self.id,
                request = id,
                role = begin.role,
                "unknown role"
            );
            return self.refuse(id, protocol_status::UNKNOWN_ROLE, keep);
        }
        let in_flight = self.active.iter().filter(|a| !a.ex.is_done()).count();
        if in_flight >= self.ctx.limits.max_reqs_per_conn {
            tracing::warn!(
                conn = self.id,
                request = id,
                limit = self.ctx.limits.max_reqs_per_conn,
                "max-reqs-per-conn reached: FCGI_OVERLOADED"
            );
            return self.refuse(id, protocol_status::OVERLOADED, keep);
        }
        let framing = Framing::Fcgi { id };
        let ex = match self.pool.iter().position(|e| Rc::strong_count(e) == 1) {
            Some(i) => {
                let ex = self.pool.swap_remove(i);
                ex.reset(framing);
                ex
            }
            None => Rc::new(Exchange::new(
                self.out.clone(),
                self.events.clone(),
                framing,
                self.ctx.limits.body_buffer,
            )),
        };
        if !keep {
            self.close_when_idle = true;
        }
        self.active.push(Active {
            id,
            ex,
            stage: Stage::Params,
            since: Instant::now(),
            task: None,
        });
    }

    fn on_params(&mut self, id: u16, content: &[u8]) {
        let limit = self.ctx.limits.max_params_bytes;
        let conn_id = self.id;
        let ctx = self.ctx.clone();
        let Some(a) = self.find(id) else { return };
        if a.stage != Stage::Params {
            return;
        }
        let pushed = a.ex.params_mut().push(content, limit);
        match pushed {
            Ok(()) if content.is_empty() => {
                a.stage = Stage::Running;
                let ex = a.ex.clone();
                let req = Request::new(ex.take_params(), ex.clone());
                let resp = Response::new(ex);
                a.task = Some(io::spawn(run_handler(ctx, req, resp, conn_id, id)));
            }
            Ok(()) => {}
            Err(e) => {
                let status = match e {
                    ParamsError::TooLarge { .. } => 431,
                    _ => 400,
                };
                tracing::warn!(conn = conn_id, request = id, error = %e, status, "request refused");
                let mut resp = Response::new(a.ex.clone());
                let _ = resp.set_status(status);
                resp.end_now();
            }
        }
    }

    fn on_abort(&mut self, id: u16) {
        let conn_id = self.id;
        let Some(a) = self.find(id) else { return };
        tracing::debug!(conn = conn_id, request = id, "ABORT_REQUEST");
        match a.task.take() {
            // Dropping the handler's future drops its Response, which ends the request.
            Some(t) => t.abort(),
            None => {
                let ex = a.ex.clone();
                self.out.push(|o| {
                    fcgi::encode_end_request(o, id, 0, protocol_status::REQUEST_COMPLETE)
                });
                ex.mark_done();
            }
        }
    }

    fn on_get_values(&mut self, content: &[u8]) {
        let limits = &self.ctx.limits;
        let max_conns = limits.max_conns.to_string();
        let max_reqs = limits.max_reqs_total().to_string();
        let mut answers: Vec<(&[u8], &[u8])> = Vec::new();
        for (name, _) in NvIter::new(content).map_while(Result::ok) {
            let value: &[u8] = match name {
                values::MAX_CONNS => max_conns.as_bytes(),
                values::MAX_REQS => max_reqs.as_bytes(),
                values::MPXS_CONNS => b"1",
                _ => continue,
            };
            answers.push((name, value));
        }
        self.out
            .push(|o| fcgi::encode_get_values_result(o, &answers));
    }
}

async fn run_handler<H: Handler>(
    ctx: Rc<WorkerCtx<H>>,
    mut req: Request,
    mut resp: Response,
    conn: u64,
    id: u16,
) {
    let outcome = CatchUnwind::new(ctx.handler.handle(&mut req, &mut resp)).await;
    match outcome {
        Ok(Ok(())) => {
            let _ = resp.finish().await;
        }
        Ok(Err(e)) => {
            tracing::warn!(conn, request = id, error = %e, "handler failed");
            resp.fail();
        }
        Err(()) => {
            tracing::error!(conn, request = id, "handler panicked; request failed");
            resp.fail();
        }
    }
}
