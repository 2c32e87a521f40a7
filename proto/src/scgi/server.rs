//! The server side of one SCGI connection as a state machine: the netstring header block in,
//! exactly CONTENT_LENGTH body bytes, one request per connection.
//!
//! [`ServerConn::handle_input`] takes the bytes the socket delivered and returns a [`Step`]: the
//! bytes it used and at most one [`Event`] (request id 1), whose body bytes borrow the input.
//! The response is a CGI header block and the raw body ([`ServerConn::encode_response_head`],
//! [`ServerConn::encode_response_body`]); SCGI has no end marker: after
//! [`ServerConn::end`] the connection wants to close, and closing it ends the response.
//!
//! What the engine's SCGI driver did, kept here:
//!
//! - a malformed header block is an [`Error`] after which the connection is closed with no
//!   answer; [`Error::HeaderBlockTooLarge`] is the `--max-params-bytes` limit (counted as
//!   `limit=max_params_bytes`), every other variant a protocol error;
//! - a connection accepted past `--max-conns` yields [`Refusal::Unavailable`] for its request
//!   (the caller answers 503), and its body is read and dropped;
//! - the params timeout runs from the moment the connection was accepted until the header block
//!   is complete (the connection is the request: there is no idle time before it); after the
//!   head there is no deadline;
//! - input after the body, or after the response ended, is used and ignored.

use std::time::Instant;

use super::{decode, Error, Limits, Status};
use crate::fcgi::Params;
use crate::server::{Event, Expired, Refusal, ServerLimits, Step};
use crate::Headers;

/// The request id of SCGI events.
const ID: u16 = 1;

/// Where the one request of the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The header block is arriving.
    Head,
    /// `remaining` body bytes are still due.
    Body { remaining: u64 },
    /// The body is complete: `BodyEnd` is the next event.
    BodyEnd,
    /// Nothing more is expected; anything the peer sends is ignored.
    Done,
}

/// The server side of one SCGI connection. Allocates nothing per request once warmed up: the
/// [`Params`] buffer is reused across [`reset`](ServerConn::reset).
#[derive(Debug)]
pub struct ServerConn {
    limits: ServerLimits,
    /// Accepted past `--max-conns`: the request is refused with 503.
    overloaded: bool,
    stage: Stage,
    /// The request was refused: its body is used without events.
    refused: bool,
    /// The response ended ([`end`](ServerConn::end) or [`finish`](ServerConn::finish)).
    ended: bool,
    /// When the connection was accepted: the params timeout runs from here.
    accepted: Instant,
    params: Option<Params>,
    spare: Option<Params>,
}

impl ServerConn {
    /// A new connection, accepted at `now`. SCGI has no protocol options: the header block limit
    /// is `limits.max_params_bytes`.
    pub fn new(limits: ServerLimits, overloaded: bool, now: Instant) -> Self {
        ServerConn {
            limits,
            overloaded,
            stage: Stage::Head,
            refused: false,
            ended: false,
            accepted: now,
            params: None,
            spare: None,
        }
    }

    /// Makes a finished connection's state ready for a new connection, keeping its buffers.
    pub fn reset(&mut self, overloaded: bool, now: Instant) {
        if let Some(p) = self.params.take() {
            self.recycle_params(p);
        }
        self.overloaded = overloaded;
        self.stage = Stage::Head;
        self.refused = false;
        self.ended = false;
        self.accepted = now;
    }

    /// Uses the header block, then body bytes, from the front of `input`. A malformed header
    /// block is an error after which the connection must be closed (with no answer):
    /// [`Error::HeaderBlockTooLarge`] is the `--max-params-bytes` limit, the others are protocol
    /// errors.
    ///
    /// Events, in order: `Request` (or `Refused` with [`Refusal::Unavailable`]), `Body` pieces
    /// adding up to CONTENT_LENGTH bytes, `BodyEnd` (not for a refused request). `BodyEnd` uses
    /// no input: keep calling until a step uses nothing and yields nothing.
    pub fn handle_input<'a>(
        &mut self,
        input: &'a [u8],
        _now: Instant,
        _out: &mut Vec<u8>,
    ) -> Result<Step<'a>, Error> {
        if self.ended {
            // The response is over: whatever still comes is dropped, as the body of a request
            // whose handler finished was.
            return Ok(Step::used(input.len()));
        }
        match self.stage {
            Stage::Head => self.on_head(input),
            Stage::Body { remaining } => {
                if input.is_empty() {
                    return Ok(Step::partial());
                }
                let n = usize::try_from(remaining).map_or(input.len(), |r| r.min(input.len()));
                let remaining = remaining - n as u64;
                self.stage = match remaining {
                    0 if self.refused => Stage::Done,
                    0 => Stage::BodyEnd,
                    _ => Stage::Body { remaining },
                };
                if self.refused {
                    return Ok(Step::used(n));
                }
                let data = &input[..n];
                Ok(Step::event(n, Event::Body { id: ID, data }))
            }
            Stage::BodyEnd => {
                self.stage = Stage::Done;
                Ok(Step::event(0, Event::BodyEnd { id: ID }))
            }
            Stage::Done => Ok(Step::used(input.len())),
        }
    }

    fn on_head<'a>(&mut self, input: &'a [u8]) -> Result<Step<'a>, Error> {
        let limits = Limits {
            max_header_block: self.limits.max_params_bytes,
        };
        let req = match decode(input, &limits)? {
            Status::Partial => return Ok(Step::partial()),
            Status::Complete(req) => req,
        };
        let remaining = req.content_length();
        if self.overloaded {
            self.refused = true;
            self.stage = match remaining {
                0 => Stage::Done,
                _ => Stage::Body { remaining },
            };
            let reason = Refusal::Unavailable;
            return Ok(Step::event(
                req.consumed(),
                Event::Refused { id: ID, reason },
            ));
        }
        let mut params = self.spare.take().unwrap_or_default();
        params.clear();
        for (name, value) in req.headers() {
            params.insert(name, value);
        }
        params.mark_complete();
        if let Some(old) = self.params.replace(params) {
            self.recycle_params(old);
        }
        self.stage = match remaining {
            0 => Stage::BodyEnd,
            _ => Stage::Body { remaining },
        };
        Ok(Step::event(req.consumed(), Event::Request { id: ID }))
    }

    /// Moves the request variables out, for the application: the SCGI header block's pairs in
    /// wire order (CONTENT_LENGTH first, `SCGI` included). Empty for any `id` other than 1 or
    /// before the head. Give the buffer back with
    /// [`recycle_params`](ServerConn::recycle_params).
    pub fn take_params(&mut self, id: u16) -> Params {
        match id {
            ID => self.params.take().unwrap_or_default(),
            _ => Params::default(),
        }
    }

    /// Returns a [`Params`] buffer for reuse by the next connection's request.
    pub fn recycle_params(&mut self, mut params: Params) {
        params.clear();
        if params.has_capacity() && self.spare.as_ref().is_none_or(|s| !s.has_capacity()) {
            self.spare = Some(params);
        }
    }

    /// Encodes the response head: the `Status:` line, `headers` as CGI header lines, the blank
    /// line, then the first body bytes.
    pub fn encode_response_head(
        &self,
        out: &mut Vec<u8>,
        status: u16,
        reason: &str,
        headers: &Headers,
        body: &[u8],
    ) {
        crate::cgi_status_line(out, status, reason);
        headers.write_cgi(out);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }

    /// Encodes body bytes: SCGI sends them as they are.
    pub fn encode_response_body(&self, out: &mut Vec<u8>, body: &[u8]) {
        out.extend_from_slice(body);
    }

    /// Ends the response. SCGI writes nothing: closing the connection ends the response, and
    /// from now on [`wants_close`](ServerConn::wants_close) is true. Before a request head this
    /// does nothing.
    pub fn end(&mut self, now: Instant, _out: &mut Vec<u8>) {
        if let Some(p) = self.finish(now) {
            self.recycle_params(p);
        }
    }

    /// Ends the response without writing anything (for SCGI the same as
    /// [`end`](ServerConn::end)) and hands back the request's [`Params`] if they were not taken.
    /// `None` before a request head or once ended.
    pub fn finish(&mut self, _now: Instant) -> Option<Params> {
        if self.stage == Stage::Head || self.ended {
            return None;
        }
        self.ended = true;
        Some(self.params.take().unwrap_or_default())
    }

    /// True when a spare [`Params`] buffer is ready for the next request.
    pub fn has_spare(&self) -> bool {
        self.spare.is_some()
    }

    /// Takes the spare [`Params`] buffer back (a worker pools them).
    pub fn take_spare(&mut self) -> Option<Params> {
        self.spare.take()
    }

    /// Asks the connection to close once no request is in flight. SCGI always does.
    pub fn close_when_idle(&mut self) {}

    /// Requests in flight: 1 from the moment the connection is accepted (the connection is its
    /// request) until the response ended, 0 after.
    pub fn in_flight(&self) -> usize {
        usize::from(!self.ended)
    }

    /// True once the response ended.
    pub fn is_idle(&self) -> bool {
        self.ended
    }

    /// True once the response ended: SCGI serves one request per connection.
    pub fn wants_close(&self) -> bool {
        self.ended
    }

    /// The next deadline and what it is for: the params timeout from the accept until the
    /// header block is complete; none after it.
    pub fn poll_timeout(&self) -> Option<(Instant, Expired)> {
        (self.stage == Stage::Head && !self.ended)
            .then(|| (self.accepted + self.limits.params_timeout, Expired::Head))
    }

    /// Which timer has expired at `now`, if any.
    pub fn expired(&self, now: Instant) -> Option<Expired> {
        crate::server::due(self.poll_timeout(), now)
    }
}

#[cfg(test)]
mod tests;
