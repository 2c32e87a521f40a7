//! The server (container) side of one AJP13 connection as a state machine: Forward Request,
//! request body packets, CPING, several requests in sequence.
//!
//! [`ServerConn::handle_input`] decodes one packet from the front of the input and returns a
//! [`Step`]: the bytes it used and at most one [`Event`] (request id 1), whose body bytes borrow
//! the input. CPONG and GET_BODY_CHUNK are appended to the caller's output buffer. The response
//! is SEND_HEADERS ([`ServerConn::encode_response_head`]), SEND_BODY_CHUNK packets
//! ([`ServerConn::encode_response_body`]) and END_RESPONSE with reuse ([`ServerConn::end`]).
//!
//! What the engine's AJP13 driver did, kept here:
//!
//! - a malformed packet is an [`Error`] after which the connection is closed (a protocol error
//!   in the metrics); AJP13 has no params limit of its own (a Forward Request is one packet);
//! - CPING is answered with CPONG, SHUTDOWN and a stray empty body packet are ignored;
//! - with a secret configured ([`ServerOptions::secret`]), a request without it is
//!   [`Refusal::BadSecret`] (the caller answers 403); otherwise a connection accepted past
//!   `--max-conns` refuses with [`Refusal::Unavailable`] (503) and closes after it;
//! - the body: when Content-Length > 0 the web server sends the first packet unasked; a chunked
//!   body (Transfer-Encoding, no Content-Length) is asked for at once with GET_BODY_CHUNK; after
//!   each body packet that does not complete it, the next one is asked for only when the caller
//!   calls [`ServerConn::want_body`] (it has room for more: the old driver asked once the
//!   handler's buffer took the packet) and only while the response has not ended. A refused
//!   request's first packet is read and dropped, and nothing more is asked for;
//! - while a request runs with its body complete, input is left unused until the response
//!   ends: the web server sends nothing before END_RESPONSE;
//! - the params timeout bounds a packet left half-sent (and input waiting while a request
//!   runs), from the first call that saw it; the idle timeout runs while no request is in
//!   flight, from the end of the last one or the last packet between requests (a CPING keeps the
//!   connection alive).

use std::sync::Arc;
use std::time::Instant;

use super::{
    decode_body_packet, decode_server_packet, encode_cpong, encode_end_response,
    encode_get_body_chunk, encode_send_body, encode_send_headers, BodyFraming, BodyPacket,
    CgiOptions, EncodeError, Error, ForwardRequest, PacketSize, ServerPacket, Status,
};
use crate::fcgi::Params;
use crate::server::{Event, Expired, Refusal, ServerLimits, Step, Timers};
use crate::Headers;

/// The request id of AJP13 events.
const ID: u16 = 1;

/// The AJP13 options of a server connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerOptions {
    /// The packet size agreed with the web server (`--ajp-packet-size`).
    pub packet_size: PacketSize,
    /// The shared secret every request must carry (`--ajp-secret`); `None` checks nothing.
    pub secret: Option<Arc<[u8]>>,
    /// How a Forward Request becomes CGI variables.
    pub cgi: CgiOptions,
}

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Between requests: server packets (Forward Request, CPING, SHUTDOWN) are decoded.
    Idle,
    /// Body packets are decoded. `remaining` is None for a chunked body; `due` is true while a
    /// packet is on its way (the unasked first one, or one asked for with GET_BODY_CHUNK).
    Body { remaining: Option<u64>, due: bool },
    /// The body is complete: `BodyEnd` is the next event.
    BodyEnd,
    /// The body is complete (or no longer wanted); the response has not ended.
    Running,
}

/// The server side of one AJP13 connection. Allocates nothing per request once warmed up: the
/// [`Params`] buffers and the working space for CGI names are reused.
#[derive(Debug)]
pub struct ServerConn {
    limits: ServerLimits,
    options: ServerOptions,
    /// Accepted past `--max-conns`: every request is refused with 503, then the connection
    /// closes.
    overloaded: bool,
    stage: Stage,
    /// The current request is refused or its response ended: its body makes no events and no
    /// more of it is asked for.
    unwanted: bool,
    /// The current request's response ended; the request is only waiting for a body packet
    /// that was already due.
    ended: bool,
    /// When the response ended: a body packet still due must come within the params timeout
    /// from then (a peer that never sends it would hold the connection forever).
    ended_at: Option<Instant>,
    close_when_idle: bool,
    timers: Timers,
    params: Option<Params>,
    spare: Vec<Params>,
    scratch: Vec<u8>,
}

impl ServerConn {
    /// A new connection, accepted at `now`.
    pub fn new(
        limits: ServerLimits,
        options: ServerOptions,
        overloaded: bool,
        now: Instant,
    ) -> Self {
        ServerConn {
            limits,
            options,
            overloaded,
            stage: Stage::Idle,
            unwanted: false,
            ended: false,
            ended_at: None,
            close_when_idle: false,
            timers: Timers::new(now),
            params: None,
            spare: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Makes a finished connection's state ready for a new connection, keeping its buffers.
    pub fn reset(&mut self, overloaded: bool, now: Instant) {
        if let Some(p) = self.params.take() {
            self.recycle_params(p);
        }
        self.overloaded = overloaded;
        self.stage = Stage::Idle;
        self.unwanted = false;
        self.ended = false;
        self.close_when_idle = false;
        self.timers = Timers::new(now);
    }

    /// The packet size in force.
    pub fn packet_size(&self) -> PacketSize {
        self.options.packet_size
    }

    /// Decodes one packet from the front of `input`. A malformed packet is an error after which
    /// the connection must be closed.
    ///
    /// Events, per request: `Request` (or `Refused`), then `Body` per body packet and
    /// `BodyEnd` (none for a refused request). `BodyEnd` after the last body bytes, or right
    /// after a request without a body, uses no input: keep calling until a step uses nothing
    /// and yields nothing. While the request runs with its body complete, the input is left
    /// unused (`Step::partial()`): call again once the response ended.
    pub fn handle_input<'a>(
        &mut self,
        input: &'a [u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<Step<'a>, Error> {
        match self.stage {
            Stage::Idle => self.on_packet(input, now, out),
            Stage::Body { remaining, .. } => self.on_body(input, remaining, now),
            Stage::BodyEnd => {
                self.stage = Stage::Running;
                Ok(Step::event(0, Event::BodyEnd { id: ID }))
            }
            Stage::Running => {
                self.timers.input_seen(now, !input.is_empty());
                Ok(Step::partial())
            }
        }
    }

    fn on_packet<'a>(
        &mut self,
        input: &'a [u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<Step<'a>, Error> {
        let (packet, used) = match decode_server_packet(input, self.options.packet_size)? {
            Status::Partial => {
                self.timers.input_seen(now, !input.is_empty());
                return Ok(Step::partial());
            }
            Status::Complete(p) => p,
        };
        self.timers.input_seen(now, false);
        let event = match packet {
            ServerPacket::ForwardRequest(fr) => Some(self.on_forward_request(&fr, out)),
            ServerPacket::Cping => {
                encode_cpong(out);
                None
            }
            // SHUTDOWN is never honoured; lighttpd may send an empty body packet after a
            // request without a body.
            _ => None,
        };
        if event.is_none() {
            // Traffic between requests keeps the connection alive.
            self.timers.idle_since = Some(now);
        }
        Ok(Step {
            consumed: used,
            event,
        })
    }

    fn on_forward_request<'a>(&mut self, fr: &ForwardRequest<'_>, out: &mut Vec<u8>) -> Event<'a> {
        self.timers.idle_since = None;
        self.ended = false;
        let secret_ok = match &self.options.secret {
            Some(secret) => fr.secret_matches(secret),
            None => true,
        };
        let refusal = if !secret_ok {
            Some(Refusal::BadSecret)
        } else if self.overloaded {
            self.close_when_idle = true;
            Some(Refusal::Unavailable)
        } else {
            None
        };
        self.unwanted = refusal.is_some();
        if refusal.is_none() {
            let mut params = self.spare.pop().unwrap_or_default();
            params.clear();
            fr.for_each_cgi_var(&self.options.cgi, &mut self.scratch, |n, v| {
                params.insert(n, v)
            });
            params.mark_complete();
            if let Some(old) = self.params.replace(params) {
                self.recycle_params(old);
            }
        }
        self.stage = if fr.expects_first_body_packet() {
            // Sent unasked, even to a refused request: read (and drop) it.
            Stage::Body {
                remaining: fr.content_length(),
                due: true,
            }
        } else if fr.has_transfer_encoding() && !self.unwanted {
            self.ask(None, out);
            Stage::Body {
                remaining: None,
                due: true,
            }
        } else if self.unwanted {
            Stage::Running
        } else {
            Stage::BodyEnd
        };
        match refusal {
            Some(reason) => Event::Refused { id: ID, reason },
            None => Event::Request { id: ID },
        }
    }

    /// Writes GET_BODY_CHUNK for the next packet: a full one, or what is left of the body.
    fn ask(&self, remaining: Option<u64>, out: &mut Vec<u8>) {
        let max = self.options.packet_size.max_request_body_chunk() as u64;
        let want = remaining.map_or(max, |r| r.min(max));
        // max <= 65530.
        encode_get_body_chunk(want as u16, out);
    }

    fn on_body<'a>(
        &mut self,
        input: &'a [u8],
        remaining: Option<u64>,
        now: Instant,
    ) -> Result<Step<'a>, Error> {
        let size = self.options.packet_size;
        let (packet, used) = match decode_body_packet(input, size, BodyFraming::Detect)? {
            Status::Partial => {
                self.timers.input_seen(now, !input.is_empty());
                return Ok(Step::partial());
            }
            Status::Complete(p) => p,
        };
        self.timers.input_seen(now, false);
        let wanted = !self.unwanted;
        match packet {
            BodyPacket::Data(data) => {
                let left = remaining.map(|r| r.saturating_sub(data.len() as u64));
                if left == Some(0) {
                    if wanted {
                        self.stage = Stage::BodyEnd;
                    } else {
                        self.body_over(now);
                    }
                } else if wanted {
                    // The caller asks for the next packet with `want_body` once it has room.
                    self.stage = Stage::Body {
                        remaining: left,
                        due: false,
                    };
                } else {
                    // Refused, or the response already ended: ask for nothing more.
                    self.body_over(now);
                }
                Ok(if wanted {
                    Step::event(used, Event::Body { id: ID, data })
                } else {
                    Step::used(used)
                })
            }
            BodyPacket::End => {
                if wanted {
                    self.stage = Stage::Running;
                    Ok(Step::event(used, Event::BodyEnd { id: ID }))
                } else {
                    self.body_over(now);
                    Ok(Step::used(used))
                }
            }
        }
    }

    /// No more body is read for a request that does not want it: it runs until its response
    /// ends, or is over if it already did.
    fn body_over(&mut self, now: Instant) {
        if self.ended {
            self.go_idle(now);
        } else {
            self.stage = Stage::Running;
        }
    }

    fn go_idle(&mut self, now: Instant) {
        self.stage = Stage::Idle;
        self.ended = false;
        self.unwanted = false;
        self.timers.idle_since = Some(now);
    }

    /// True when the body is wanted and the next packet has not been asked for: the caller
    /// calls [`want_body`](ServerConn::want_body) once it has room for more.
    pub fn wants_body(&self) -> bool {
        matches!(self.stage, Stage::Body { due: false, .. }) && !self.unwanted
    }

    /// The application has room for more body: asks the web server for the next packet
    /// (GET_BODY_CHUNK for at most what is left of the body) if one is needed and not asked
    /// for yet. Returns true when it wrote the request into `out`.
    pub fn want_body(&mut self, out: &mut Vec<u8>) -> bool {
        let Stage::Body {
            remaining,
            due: false,
        } = self.stage
        else {
            return false;
        };
        if self.unwanted {
            return false;
        }
        self.ask(remaining, out);
        self.stage = Stage::Body {
            remaining,
            due: true,
        };
        true
    }

    /// Moves the request variables out, for the application: the CGI variables
    /// [`ForwardRequest::for_each_cgi_var`] makes with [`ServerOptions::cgi`]. Empty for any
    /// `id` other than 1 and for a refused request. Give the buffer back with
    /// [`recycle_params`](ServerConn::recycle_params).
    pub fn take_params(&mut self, id: u16) -> Params {
        match id {
            ID => self.params.take().unwrap_or_default(),
            _ => Params::default(),
        }
    }

    /// Returns a [`Params`] buffer for reuse by a later request.
    pub fn recycle_params(&mut self, mut params: Params) {
        params.clear();
        if params.has_capacity() && self.spare.len() < 2 {
            self.spare.push(params);
        }
    }

    /// Encodes the response head as SEND_HEADERS (`headers` are lines `Name: value\r\n`) and
    /// the first body bytes as SEND_BODY_CHUNK packets; see [`encode_response_head`].
    pub fn encode_response_head(
        &self,
        out: &mut Vec<u8>,
        status: u16,
        reason: &str,
        headers: &Headers,
        body: &[u8],
    ) -> Result<(), EncodeError> {
        encode_response_head(out, self.options.packet_size, status, reason, headers, body)
    }

    /// Encodes body bytes as SEND_BODY_CHUNK packets (nothing for an empty slice).
    pub fn encode_response_body(&self, out: &mut Vec<u8>, body: &[u8]) {
        encode_send_body(body, self.options.packet_size, out);
    }

    /// Ends the response: END_RESPONSE with reuse goes into `out`. The connection is ready for
    /// the next request, or, when a body packet is still on its way, once it arrived (it is
    /// read and dropped). Without a request this writes nothing.
    pub fn end(&mut self, now: Instant, out: &mut Vec<u8>) {
        if let Some(p) = self.finish(now) {
            encode_end_response(true, out);
            self.recycle_params(p);
        }
    }

    /// Ends the request without writing anything, for a caller that encoded END_RESPONSE
    /// itself (as [`end`](ServerConn::end) would), and hands back its [`Params`] if they were
    /// not taken. `None` without a request, or when it already ended.
    pub fn finish(&mut self, now: Instant) -> Option<Params> {
        if self.stage == Stage::Idle || self.ended {
            return None;
        }
        self.ended = true;
        self.ended_at = Some(now);
        self.unwanted = true;
        if let Stage::Body { due: true, .. } = self.stage {
            // The packet comes anyway; it is read before the next request.
        } else {
            self.go_idle(now);
        }
        Some(self.params.take().unwrap_or_default())
    }

    /// True when a spare [`Params`] buffer is ready for the next request.
    pub fn has_spare(&self) -> bool {
        !self.spare.is_empty()
    }

    /// Takes a spare [`Params`] buffer back (a worker pools them).
    pub fn take_spare(&mut self) -> Option<Params> {
        self.spare.pop()
    }

    /// Asks the connection to close once no request is in flight (the engine is stopping).
    pub fn close_when_idle(&mut self) {
        self.close_when_idle = true;
    }

    /// Requests in flight: 1 from the Forward Request until its response ended (and a body
    /// packet still due arrived), else 0.
    pub fn in_flight(&self) -> usize {
        usize::from(self.stage != Stage::Idle)
    }

    /// True while no request is in flight.
    pub fn is_idle(&self) -> bool {
        self.stage == Stage::Idle
    }

    /// True when the connection should close now: it refused a request as overloaded (or was
    /// asked to close) and no request is in flight.
    pub fn wants_close(&self) -> bool {
        self.close_when_idle && self.is_idle()
    }

    /// The next deadline and what it is for: the params timeout while a packet is half-sent
    /// (or input waits for a running request) and from the end of a response whose body packet
    /// is still due, the idle timeout while no request is in flight, none while a request runs
    /// or waits for a body packet.
    pub fn poll_timeout(&self) -> Option<(Instant, Expired)> {
        let due_since = self.ended_at.filter(|_| self.ended);
        self.timers
            .deadline(due_since, self.is_idle(), &self.limits)
    }

    /// Which timer has expired at `now`, if any.
    pub fn expired(&self, now: Instant) -> Option<Expired> {
        crate::server::due(self.poll_timeout(), now)
    }
}

/// Encodes a response head as one SEND_HEADERS packet (`headers` are lines `Name: value\r\n`,
/// as the engine writes them) followed by `body` as SEND_BODY_CHUNK packets of `size`.
///
/// When the head cannot be encoded (it does not fit one packet, or the status or a header is
/// invalid), a bare `500 Internal Server Error` head is written in its place and the error is
/// returned for the caller to log; `body` is written either way.
pub fn encode_response_head(
    out: &mut Vec<u8>,
    size: PacketSize,
    status: u16,
    reason: &str,
    headers: &Headers,
    body: &[u8],
) -> Result<(), EncodeError> {
    let start = out.len();
    let result = encode_send_headers(status, reason.as_bytes(), headers.iter(), size, out);
    if result.is_err() {
        out.truncate(start);
        // Always fits: no header, a short reason.
        let _ = encode_send_headers(500, b"Internal Server Error", [], size, out);
    }
    encode_send_body(body, size, out);
    result
}

#[cfg(test)]
mod tests;
