//! The AJP13 connection driver: Forward Request, the request body in data packets (the first one
//! unasked when Content-Length > 0, the rest requested with GET_BODY_CHUNK), the response as
//! SEND_HEADERS + SEND_BODY_CHUNK + END_RESPONSE with reuse, then the next request on the same
//! connection. CPING is answered with CPONG; SHUTDOWN is ignored.

use std::rc::Rc;

use tokio::time::Instant;

use super::conn::{self, ConnBase, Driver};
use super::dispatch::{refuse_request, spawn_handler};
use super::worker::WorkerCtx;
use crate::app::exchange::{Exchange, Framing};
use crate::app::Handler;
use crate::io::{Stream, TaskHandle};
use crate::proto::ajp::{self, BodyFraming, BodyPacket, CgiOptions, ServerPacket, Status};
use crate::server::Protocol;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between requests.
    Idle,
    /// Reading body packets; `remaining` is None for a chunked body (until the empty packet).
    Body { remaining: Option<u64> },
    /// The body is complete; the handler is running.
    Running,
}

struct AjpConn<'a, H> {
    base: ConnBase,
    ctx: &'a Rc<WorkerCtx<H>>,
    state: State,
    ex: Option<Rc<Exchange>>,
    task: Option<TaskHandle>,
    scratch: Vec<u8>,
    overloaded: bool,
}

/// Serves one AJP13 connection.
pub(crate) async fn serve<H: Handler>(
    stream: Stream,
    ctx: &Rc<WorkerCtx<H>>,
    id: u64,
    overloaded: bool,
) {
    let limits = &ctx.limits;
    let base = ConnBase::for_worker(id, stream, limits);
    let mut conn = AjpConn {
        base,
        ctx,
        state: State::Idle,
        ex: None,
        task: None,
        scratch: Vec::new(),
        overloaded,
    };
    let buf_len = 2 * limits.ajp_packet_size.get();
    conn::run(&mut conn, &ctx.stop, buf_len).await;
}

impl<H: Handler> Driver for AjpConn<'_, H> {
    fn base(&mut self) -> &mut ConnBase {
        &mut self.base
    }

    async fn consume(&mut self, buf: &[u8]) -> Result<usize, ()> {
        if self.state == State::Running && self.ex.as_ref().is_none_or(|e| e.is_done()) {
            self.state = State::Idle;
        }
        match self.state {
            State::Idle => self.on_packet(buf),
            State::Body { remaining } => self.on_body(buf, remaining).await,
            // The web server sends nothing before END_RESPONSE; wait for the handler.
            State::Running => Ok(0),
        }
    }

    fn reap(&mut self) -> bool {
        let done = self.ex.as_ref().is_none_or(|e| e.is_done());
        if done && self.state == State::Running {
            self.state = State::Idle;
        }
        done && self.state == State::Idle
    }

    fn head_since(&self) -> Option<Instant> {
        None
    }

    fn limit_hit(&mut self, limit: crate::metrics::Limit) {
        self.ctx.metrics.limit_rejected(Protocol::Ajp, limit);
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

impl<H: Handler> AjpConn<'_, H> {
    fn packet_size(&self) -> ajp::PacketSize {
        self.ctx.limits.ajp_packet_size
    }

    fn on_packet(&mut self, buf: &[u8]) -> Result<usize, ()> {
        let (packet, used) = match ajp::decode_server_packet(buf, self.packet_size()) {
            Ok(Status::Complete(p)) => p,
            Ok(Status::Partial) => return Ok(0),
            Err(e) => {
                self.ctx.metrics.protocol_error(Protocol::Ajp, (&e).into());
                tracing::warn!(conn = self.base.id, error = %e, "AJP protocol error; closing connection");
                return Err(());
            }
        };
        match packet {
            ServerPacket::ForwardRequest(fr) => self.on_forward_request(&fr),
            ServerPacket::Cping => self.base.out.push(ajp::encode_cpong),
            ServerPacket::Shutdown => {
                tracing::info!(conn = self.base.id, "AJP SHUTDOWN ignored");
            }
            // lighttpd may send an empty body packet after a request without a body.
            ServerPacket::EmptyBody => {}
            _ => {
                tracing::debug!(conn = self.base.id, "AJP packet ignored");
            }
        }
        Ok(used)
    }

    fn on_forward_request(&mut self, fr: &ajp::ForwardRequest<'_>) {
        let ex = Rc::new(Exchange::new(
            self.base.out.clone(),
            self.base.events.clone(),
            Framing::Ajp {
                size: self.packet_size(),
            },
            self.ctx.limits.body_buffer,
        ));
        {
            let mut params = ex.params_mut();
            fr.for_each_cgi_var(&CgiOptions::default(), &mut self.scratch, |n, v| {
                params.insert(n, v)
            });
            params.mark_complete();
        }
        let secret_ok = match &self.ctx.limits.ajp_secret {
            Some(secret) => fr.secret_matches(secret),
            None => true,
        };
        self.task = None;
        if !secret_ok {
            tracing::warn!(
                conn = self.base.id,
                "AJP request without the right secret; answering 403"
            );
            refuse_request(self.ctx, &ex, 403);
        } else if self.overloaded {
            refuse_request(self.ctx, &ex, 503);
            self.base.close_when_idle = true;
        } else {
            self.task = Some(spawn_handler(self.ctx.clone(), ex.clone(), self.base.id, 1));
        }
        self.state = if fr.expects_first_body_packet() {
            State::Body {
                remaining: fr.content_length(),
            }
        } else if fr.has_transfer_encoding() && !ex.is_done() {
            self.request_chunk(None);
            State::Body { remaining: None }
        } else {
            ex.end_body();
            State::Running
        };
        self.ex = Some(ex);
    }

    /// Asks the web server for the next body packet.
    fn request_chunk(&self, remaining: Option<u64>) {
        let max = self.packet_size().max_request_body_chunk() as u64;
        let want = remaining.map_or(max, |r| r.min(max)) as u16;
        self.base.out.push(|o| ajp::encode_get_body_chunk(want, o));
    }

    async fn on_body(&mut self, buf: &[u8], remaining: Option<u64>) -> Result<usize, ()> {
        let decoded = ajp::decode_body_packet(buf, self.packet_size(), BodyFraming::Detect);
        let (packet, used) = match decoded {
            Ok(Status::Complete(p)) => p,
            Ok(Status::Partial) => return Ok(0),
            Err(e) => {
                self.ctx.metrics.protocol_error(Protocol::Ajp, (&e).into());
                tracing::warn!(conn = self.base.id, error = %e, "AJP body error; closing connection");
                return Err(());
            }
        };
        let Some(ex) = self.ex.clone() else {
            return Err(());
        };
        match packet {
            BodyPacket::Data(data) => {
                self.ctx
                    .metrics
                    .request_body_bytes(Protocol::Ajp, data.len());
                ex.push_body(data).await;
                let left = remaining.map(|r| r.saturating_sub(data.len() as u64));
                if left == Some(0) {
                    ex.end_body();
                    self.state = State::Running;
                } else if ex.is_done() {
                    // The handler is finished: ask for nothing more.
                    self.state = State::Running;
                } else {
                    self.request_chunk(left);
                    self.state = State::Body { remaining: left };
                }
            }
            BodyPacket::End => {
                ex.end_body();
                self.state = State::Running;
            }
        }
        Ok(used)
    }
}
