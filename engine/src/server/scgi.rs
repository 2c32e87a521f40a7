//! The SCGI connection driver: one request per connection. Decode the netstring header block,
//! start the handler, stream exactly CONTENT_LENGTH body bytes to it, send its response
//! (`Status:` line, headers, body), then close.

use std::rc::Rc;

use tokio::time::Instant;

use super::conn::{self, ConnBase, Driver};
use super::dispatch::{refuse_request, spawn_handler};
use super::worker::WorkerCtx;
use crate::app::exchange::{Exchange, Framing};
use crate::app::Handler;
use crate::io::{Stream, TaskHandle};
use crate::metrics::Limit;
use crate::proto::scgi::{self, Status};
use crate::server::Protocol;

enum State {
    /// Waiting for the header block.
    Head,
    /// Streaming the body to the handler.
    Body { remaining: u64 },
    /// The body is complete; anything more from the peer is ignored.
    Done,
}

struct ScgiConn<'a, H> {
    base: ConnBase,
    ctx: &'a Rc<WorkerCtx<H>>,
    state: State,
    accepted: Instant,
    ex: Option<Rc<Exchange>>,
    task: Option<TaskHandle>,
    overloaded: bool,
}

/// Serves one SCGI connection.
pub(crate) async fn serve<H: Handler>(
    stream: Stream,
    ctx: &Rc<WorkerCtx<H>>,
    id: u64,
    overloaded: bool,
) {
    let limits = &ctx.limits;
    let mut base = ConnBase::for_worker(id, stream, limits);
    // SCGI closes the connection after each response.
    base.close_when_idle = true;
    let mut conn = ScgiConn {
        base,
        ctx,
        state: State::Head,
        accepted: Instant::now(),
        ex: None,
        task: None,
        overloaded,
    };
    // The whole header block must fit: the limit, its length prefix, `:` and `,`.
    let buf_len = (limits.max_params_bytes + 32).max(64 * 1024);
    conn::run(&mut conn, &ctx.stop, buf_len).await;
}

impl<H: Handler> Driver for ScgiConn<'_, H> {
    fn base(&mut self) -> &mut ConnBase {
        &mut self.base
    }

    async fn consume(&mut self, buf: &[u8]) -> Result<usize, ()> {
        match self.state {
            State::Head => self.on_head(buf),
            State::Body { remaining } => {
                let n = (buf.len() as u64).min(remaining) as usize;
                let Some(ex) = self.ex.clone() else {
                    return Err(());
                };
                if n > 0 {
                    self.ctx.metrics.request_body_bytes(Protocol::Scgi, n);
                    ex.push_body(&buf[..n]).await;
                }
                let remaining = remaining - n as u64;
                if remaining == 0 {
                    ex.end_body();
                    self.state = State::Done;
                } else {
                    self.state = State::Body { remaining };
                }
                Ok(n)
            }
            State::Done => Ok(buf.len()),
        }
    }

    fn reap(&mut self) -> bool {
        match &self.ex {
            Some(ex) => ex.is_done(),
            None => false,
        }
    }

    fn head_since(&self) -> Option<Instant> {
        matches!(self.state, State::Head).then_some(self.accepted)
    }

    fn limit_hit(&mut self, limit: Limit) {
        self.ctx.metrics.limit_rejected(Protocol::Scgi, limit);
    }

    fn abort_all(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
        if let Some(ex) = &self.ex {
            ex.wake_reader();
        }
    }
}

impl<H: Handler> ScgiConn<'_, H> {
    fn on_head(&mut self, buf: &[u8]) -> Result<usize, ()> {
        let limits = scgi::Limits {
            max_header_block: self.ctx.limits.max_params_bytes,
        };
        let req = match scgi::decode(buf, &limits) {
            Ok(Status::Complete(req)) => req,
            Ok(Status::Partial) => return Ok(0),
            Err(e) => {
                if let scgi::Error::HeaderBlockTooLarge { .. } = e {
                    self.ctx
                        .metrics
                        .limit_rejected(Protocol::Scgi, Limit::MaxParamsBytes);
                } else {
                    self.ctx.metrics.protocol_error(Protocol::Scgi, (&e).into());
                }
                tracing::warn!(conn = self.base.id, error = %e, "SCGI protocol error; closing connection");
                return Err(());
            }
        };
        let ex = Rc::new(Exchange::new(
            self.base.out.clone(),
            self.base.events.clone(),
            Framing::Scgi,
            self.ctx.limits.body_buffer,
        ));
        {
            let mut params = ex.params_mut();
            for (name, value) in req.headers() {
                params.insert(name, value);
            }
            params.mark_complete();
        }
        let remaining = req.content_length();
        if self.overloaded {
            refuse_request(self.ctx, &ex, 503);
        } else {
            self.task = Some(spawn_handler(self.ctx.clone(), ex.clone(), self.base.id, 1));
        }
        if remaining == 0 {
            ex.end_body();
            self.state = State::Done;
        } else {
            self.state = State::Body { remaining };
        }
        self.ex = Some(ex);
        Ok(req.consumed())
    }
}
