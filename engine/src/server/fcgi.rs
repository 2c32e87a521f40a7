//! The FastCGI connection driver: decode records, run one handler task per request id, keep or
//! close the connection as the peer asked. The read loop itself is [`super::conn`]'s.

use std::rc::Rc;

use tokio::time::Instant;

use super::conn::{self, ConnBase, Driver};
use super::dispatch::{refuse_request, spawn_handler};
use super::listener::Protocol;
use super::worker::WorkerCtx;
use crate::app::exchange::{Exchange, Framing};
use crate::app::Handler;
use crate::io::{Stream, TaskHandle};
use crate::metrics::{Limit, ProtocolErrorKind};
use crate::proto::fcgi::{
    self, protocol_status, role, rtype, values, BeginRequest, Decode, NvIter, ParamsError, Record,
    MAX_RECORD_LEN,
};

/// Receive buffer: room for two maximal records, so after compaction a whole record always fits.
const READ_BUF_LEN: usize = 2 * MAX_RECORD_LEN;
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

struct FcgiConn<'a, H> {
    base: ConnBase,
    ctx: &'a Rc<WorkerCtx<H>>,
    active: Vec<Active>,
    pool: Vec<Rc<Exchange>>,
    /// Past max-conns: every request is answered FCGI_OVERLOADED.
    overloaded: bool,
}

/// Serves one FastCGI connection until it closes.
pub(crate) async fn serve<H: Handler>(
    stream: Stream,
    ctx: &Rc<WorkerCtx<H>>,
    id: u64,
    overloaded: bool,
) {
    let limits = &ctx.limits;
    let base = ConnBase::for_worker(id, stream, limits);
    let mut conn = FcgiConn {
        base,
        ctx,
        active: Vec::new(),
        pool: Vec::new(),
        overloaded,
    };
    conn::run(&mut conn, &ctx.stop, READ_BUF_LEN).await;
}

impl<H: Handler> Driver for FcgiConn<'_, H> {
    fn base(&mut self) -> &mut ConnBase {
        &mut self.base
    }

    async fn consume(&mut self, buf: &[u8]) -> Result<usize, ()> {
        match fcgi::decode_record(buf) {
            Ok(Decode::Complete(rec, used)) => {
                self.on_record(rec).await;
                Ok(used)
            }
            Ok(Decode::Partial) => Ok(0),
            Err(e) => {
                self.ctx
                    .metrics
                    .protocol_error(Protocol::FastCgi, (&e).into());
                tracing::warn!(conn = self.base.id, error = %e, "FastCGI protocol error; closing connection");
                Err(())
            }
        }
    }

    fn reap(&mut self) -> bool {
        let mut i = 0;
        while i < self.active.len() {
            if self.active[i].ex.is_done() {
                let a = self.active.swap_remove(i);
                if self.pool.len() < POOL_LEN {
                    self.pool.push(a.ex);
                }
                self.base.last_activity = Instant::now();
            } else {
                i += 1;
            }
        }
        self.active.is_empty()
    }

    fn head_since(&self) -> Option<Instant> {
        self.active
            .iter()
            .filter(|a| a.stage == Stage::Params)
            .map(|a| a.since)
            .min()
    }

    fn limit_hit(&mut self, limit: Limit) {
        self.ctx.metrics.limit_rejected(Protocol::FastCgi, limit);
    }

    fn abort_all(&mut self) {
        for a in &self.active {
            if let Some(t) = &a.task {
                t.abort();
            }
            a.ex.wake_reader();
        }
    }
}

impl<H: Handler> FcgiConn<'_, H> {
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
                    self.ctx
                        .metrics
                        .request_body_bytes(Protocol::FastCgi, rec.content.len());
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
                tracing::debug!(conn = self.base.id, rtype = t, "unknown management record");
                self.base.out.push(|o| fcgi::encode_unknown_type(o, t));
            }
            t => {
                tracing::debug!(
                    conn = self.base.id,
                    request = id,
                    rtype = t,
                    "ignoring record"
                );
            }
        }
    }

    fn refuse(&mut self, id: u16, status: u8, keep_conn: bool) {
        self.base
            .out
            .push(|o| fcgi::encode_end_request(o, id, 0, status));
        if !keep_conn {
            self.base.close_when_idle = true;
        }
    }

    fn on_begin(&mut self, id: u16, begin: BeginRequest) {
        let keep = begin.keep_conn();
        let conn_id = self.base.id;
        if self.active.iter().any(|a| a.id == id && !a.ex.is_done()) {
            tracing::warn!(
                conn = conn_id,
                request = id,
                "BEGIN_REQUEST for an active id; ignored"
            );
            return;
        }
        if self.overloaded {
            // Past max-conns: answer, then close whatever keep-conn asked.
            return self.refuse(id, protocol_status::OVERLOADED, false);
        }
        if begin.role != role::RESPONDER {
            tracing::info!(
                conn = conn_id,
                request = id,
                role = begin.role,
                "unknown role"
            );
            self.ctx
                .metrics
                .protocol_error(Protocol::FastCgi, ProtocolErrorKind::UnknownRole);
            return self.refuse(id, protocol_status::UNKNOWN_ROLE, keep);
        }
        let in_flight = self.active.iter().filter(|a| !a.ex.is_done()).count();
        if in_flight >= self.ctx.limits.max_reqs_per_conn {
            tracing::warn!(
                conn = conn_id,
                request = id,
                limit = self.ctx.limits.max_reqs_per_conn,
                "max-reqs-per-conn reached: FCGI_OVERLOADED"
            );
            self.ctx
                .metrics
                .limit_rejected(Protocol::FastCgi, Limit::MaxReqsPerConn);
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
                self.base.out.clone(),
                self.base.events.clone(),
                framing,
                self.ctx.limits.body_buffer,
            )),
        };
        if !keep {
            self.base.close_when_idle = true;
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
        let conn_id = self.base.id;
        let ctx = self.ctx.clone();
        let Some(a) = self.find(id) else { return };
        if a.stage != Stage::Params {
            return;
        }
        let pushed = a.ex.params_mut().push(content, limit);
        match pushed {
            Ok(()) if content.is_empty() => {
                a.stage = Stage::Running;
                a.task = Some(spawn_handler(ctx, a.ex.clone(), conn_id, id));
            }
            Ok(()) => {}
            Err(e) => {
                let status = match e {
                    ParamsError::TooLarge { .. } => {
                        ctx.metrics
                            .limit_rejected(Protocol::FastCgi, Limit::MaxParamsBytes);
                        431
                    }
                    _ => {
                        ctx.metrics
                            .protocol_error(Protocol::FastCgi, ProtocolErrorKind::BadParams);
                        400
                    }
                };
                tracing::warn!(conn = conn_id, request = id, error = %e, status, "request refused");
                refuse_request(&ctx, &a.ex, status);
            }
        }
    }

    fn on_abort(&mut self, id: u16) {
        let conn_id = self.base.id;
        let Some(a) = self.find(id) else { return };
        tracing::debug!(conn = conn_id, request = id, "ABORT_REQUEST");
        match a.task.take() {
            // Dropping the handler's future drops its Response, which ends the request.
            Some(t) => t.abort(),
            None => {
                let ex = a.ex.clone();
                self.base.out.push(|o| {
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
        self.base
            .out
            .push(|o| fcgi::encode_get_values_result(o, &answers));
    }
}
