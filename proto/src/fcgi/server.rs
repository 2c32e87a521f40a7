//! The server (responder) side of one FastCGI connection as a state machine: records in, events
//! out, multiplexed request ids, KEEP_CONN, ABORT_REQUEST, the limits and the timers.
//!
//! [`ServerConn::handle_input`] decodes one record from the front of the input and returns a
//! [`Step`]: the bytes it used and at most one [`Event`], whose body bytes borrow the input.
//! Management answers (GET_VALUES_RESULT, UNKNOWN_TYPE) and refusals that FastCGI expresses
//! itself (END_REQUEST with OVERLOADED or UNKNOWN_ROLE) are appended to the caller's output
//! buffer. Responses are encoded with [`encode_response_head`], [`encode_response_body`] and
//! [`ServerConn::end`].

use std::time::Instant;

use super::{
    decode_record, encode_end_request, encode_get_values_result, encode_record, encode_stream,
    encode_unknown_type, protocol_status, role, rtype, values, BeginRequest, Decode, DecodeError,
    NvIter, Params, ParamsError, Record, StreamRecord, MAX_CONTENT_LEN,
};
use crate::server::{Event, Expired, Refusal, ServerLimits, Step, Timers};
use crate::Headers;

/// Where one request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// BEGIN_REQUEST seen; PARAMS arriving.
    Params,
    /// The application runs; STDIN may still arrive.
    Running,
    /// The application runs; STDIN ended (further STDIN records are ignored).
    BodyDone,
    /// Refused with an HTTP status the caller answers; further input for it is ignored.
    Answering,
}

#[derive(Debug)]
struct Req {
    id: u16,
    stage: Stage,
    since: Instant,
    params: Params,
}

/// The server side of one FastCGI connection. Allocates nothing per request once warmed up:
/// request slots and their [`Params`] buffers are reused.
#[derive(Debug)]
pub struct ServerConn {
    limits: ServerLimits,
    /// Accepted past `--max-conns`: every request is answered OVERLOADED, then the connection
    /// closes.
    overloaded: bool,
    reqs: Vec<Req>,
    spare: Vec<Params>,
    close_when_idle: bool,
    timers: Timers,
}

impl ServerConn {
    /// A new connection, accepted at `now`.
    pub fn new(limits: ServerLimits, overloaded: bool, now: Instant) -> Self {
        ServerConn {
            limits,
            overloaded,
            reqs: Vec::new(),
            spare: Vec::new(),
            close_when_idle: false,
            timers: Timers::new(now),
        }
    }

    /// Makes a finished connection's state ready for a new connection, keeping its buffers.
    pub fn reset(&mut self, overloaded: bool, now: Instant) {
        for r in self.reqs.drain(..) {
            let mut p = r.params;
            p.clear();
            self.spare.push(p);
        }
        self.overloaded = overloaded;
        self.close_when_idle = false;
        self.timers = Timers::new(now);
    }

    /// Decodes one record from the front of `input`. A malformed record is an error after which
    /// the connection must be closed.
    pub fn handle_input<'a>(
        &mut self,
        input: &'a [u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<Step<'a>, DecodeError> {
        match decode_record(input)? {
            Decode::Partial => {
                self.timers.input_seen(now, !input.is_empty());
                Ok(Step::partial())
            }
            Decode::Complete(rec, used) => {
                self.timers.input_seen(now, false);
                Ok(Step {
                    consumed: used,
                    event: self.on_record(rec, now, out),
                })
            }
        }
    }

    fn on_record<'a>(
        &mut self,
        rec: Record<'a>,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Option<Event<'a>> {
        let id = rec.header.request_id;
        match rec.header.rtype {
            rtype::BEGIN_REQUEST => self.on_begin(id, BeginRequest::parse(rec.content)?, now, out),
            rtype::PARAMS => self.on_params(id, rec.content),
            rtype::STDIN => {
                let r = self.find(id)?;
                if r.stage != Stage::Running {
                    return None;
                }
                Some(if rec.content.is_empty() {
                    r.stage = Stage::BodyDone;
                    Event::BodyEnd { id }
                } else {
                    Event::Body {
                        id,
                        data: rec.content,
                    }
                })
            }
            rtype::ABORT_REQUEST => {
                let r = self.find(id)?;
                match r.stage {
                    Stage::Running | Stage::BodyDone => Some(Event::Abort { id }),
                    // Nothing runs yet: the request ends here.
                    Stage::Params => {
                        self.end(id, now, out);
                        None
                    }
                    Stage::Answering => None,
                }
            }
            rtype::GET_VALUES => {
                self.answer_get_values(rec.content, out);
                None
            }
            t if rec.is_management() => {
                encode_unknown_type(out, t);
                None
            }
            // DATA (Filter role, never accepted), and unknown types on a request id.
            _ => None,
        }
    }

    fn find(&mut self, id: u16) -> Option<&mut Req> {
        self.reqs.iter_mut().find(|r| r.id == id)
    }

    fn on_begin<'a>(
        &mut self,
        id: u16,
        begin: BeginRequest,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Option<Event<'a>> {
        if self.reqs.iter().any(|r| r.id == id) {
            // A BEGIN_REQUEST for an id in use: the client is confused; ignore it.
            return None;
        }
        let keep = begin.keep_conn();
        let refusal = if self.overloaded {
            Some((Refusal::Overloaded, protocol_status::OVERLOADED, false))
        } else if begin.role != role::RESPONDER {
            Some((
                Refusal::UnknownRole(begin.role),
                protocol_status::UNKNOWN_ROLE,
                keep,
            ))
        } else if self.reqs.len() >= self.limits.max_reqs_per_conn {
            Some((Refusal::MaxReqsPerConn, protocol_status::OVERLOADED, keep))
        } else {
            None
        };
        if !keep {
            self.close_when_idle = true;
        }
        if let Some((reason, status, keep)) = refusal {
            encode_end_request(out, id, 0, status);
            if !keep {
                self.close_when_idle = true;
            }
            return Some(Event::Refused { id, reason });
        }
        let params = self.spare.pop().unwrap_or_default();
        self.reqs.push(Req {
            id,
            stage: Stage::Params,
            since: now,
            params,
        });
        self.timers.idle_since = None;
        None
    }

    fn on_params<'a>(&mut self, id: u16, content: &[u8]) -> Option<Event<'a>> {
        let limit = self.limits.max_params_bytes;
        let r = self.find(id)?;
        if r.stage != Stage::Params {
            return None;
        }
        match r.params.push(content, limit) {
            Ok(()) if content.is_empty() => {
                r.stage = Stage::Running;
                Some(Event::Request { id })
            }
            Ok(()) => None,
            Err(e) => {
                r.stage = Stage::Answering;
                r.params.clear();
                let reason = match e {
                    ParamsError::TooLarge { .. } => Refusal::ParamsTooLarge,
                    _ => Refusal::BadParams,
                };
                Some(Event::Refused { id, reason })
            }
        }
    }

    fn answer_get_values(&self, content: &[u8], out: &mut Vec<u8>) {
        let (mut conns, mut reqs) = ([0u8; 20], [0u8; 20]);
        let conns = crate::decimal(self.limits.max_conns as u64, &mut conns);
        let reqs = crate::decimal(self.limits.max_reqs as u64, &mut reqs);
        let mut answers: [(&[u8], &[u8]); 3] = [(&[], &[]); 3];
        let mut n = 0;
        for (name, _) in NvIter::new(content).map_while(Result::ok) {
            let value: &[u8] = match name {
                values::MAX_CONNS => conns,
                values::MAX_REQS => reqs,
                values::MPXS_CONNS => b"1",
                _ => continue,
            };
            if n < answers.len() && !answers[..n].iter().any(|(k, _)| *k == name) {
                answers[n] = (name, value);
                n += 1;
            }
        }
        encode_get_values_result(out, &answers[..n]);
    }

    /// Moves the variables of request `id` out, for the application. Give the buffer back with
    /// [`recycle_params`](ServerConn::recycle_params) when the request is done with it.
    pub fn take_params(&mut self, id: u16) -> Params {
        self.find(id)
            .map(|r| std::mem::take(&mut r.params))
            .unwrap_or_default()
    }

    /// Returns a [`Params`] buffer for reuse by a later request.
    pub fn recycle_params(&mut self, mut params: Params) {
        params.clear();
        if params.has_capacity() && self.spare.len() < 8 {
            self.spare.push(params);
        }
    }

    /// Ends request `id`: an empty STDOUT and END_REQUEST (REQUEST_COMPLETE) go into `out` and
    /// the id is free again. Call it once per request the application (or a refusal with an
    /// HTTP status, or an abort) answered; an unknown id writes nothing.
    pub fn end(&mut self, id: u16, now: Instant, out: &mut Vec<u8>) {
        let Some(i) = self.reqs.iter().position(|r| r.id == id) else {
            return;
        };
        let r = self.reqs.swap_remove(i);
        self.recycle_params(r.params);
        encode_record(out, rtype::STDOUT, id, &[]);
        encode_end_request(out, id, 0, protocol_status::REQUEST_COMPLETE);
        if self.reqs.is_empty() {
            self.timers.idle_since = Some(now);
        }
    }

    /// True when a spare [`Params`] buffer is ready for the next request.
    pub fn has_spare(&self) -> bool {
        !self.spare.is_empty()
    }

    /// How many spare [`Params`] buffers are ready (one per request that can begin without
    /// allocating).
    pub fn spare_count(&self) -> usize {
        self.spare.len()
    }

    /// Takes a spare [`Params`] buffer back (a worker pools them, so an idle connection keeps
    /// none).
    pub fn take_spare(&mut self) -> Option<Params> {
        self.spare.pop()
    }

    /// Frees request `id` without writing anything, for a caller that encoded the end of the
    /// response itself (empty STDOUT and END_REQUEST, as [`end`](ServerConn::end) would).
    pub fn finish(&mut self, id: u16, now: Instant) -> Option<Params> {
        let i = self.reqs.iter().position(|r| r.id == id)?;
        let r = self.reqs.swap_remove(i);
        if self.reqs.is_empty() {
            self.timers.idle_since = Some(now);
        }
        Some(r.params)
    }

    /// Asks the connection to close once no request is in flight (the engine is stopping).
    pub fn close_when_idle(&mut self) {
        self.close_when_idle = true;
    }

    /// Requests in flight (head arriving, running, or being answered).
    pub fn in_flight(&self) -> usize {
        self.reqs.len()
    }

    /// True when the connection should close now: a request without KEEP_CONN (or a refusal
    /// that closes) was seen and no request remains in flight.
    pub fn wants_close(&self) -> bool {
        self.close_when_idle && self.reqs.is_empty()
    }

    /// True while no request is in flight.
    pub fn is_idle(&self) -> bool {
        self.reqs.is_empty()
    }

    /// The next deadline and what it is for: the params timeout while a request head or a
    /// record is arriving, the idle timeout while no request is in flight, none while the
    /// application runs.
    pub fn poll_timeout(&self) -> Option<(Instant, Expired)> {
        let head = self
            .reqs
            .iter()
            .filter(|r| r.stage == Stage::Params)
            .map(|r| r.since)
            .min();
        self.timers
            .deadline(head, self.reqs.is_empty(), &self.limits)
    }

    /// Which timer has expired at `now`, if any.
    pub fn expired(&self, now: Instant) -> Option<Expired> {
        crate::server::due(self.poll_timeout(), now)
    }
}

/// Encodes a response's header block (`Status:` line, then `headers` as CGI header lines, then
/// the blank line) and its first body bytes as STDOUT records of request `id`; the header and a
/// small body share one record.
pub fn encode_response_head(
    out: &mut Vec<u8>,
    id: u16,
    status: u16,
    reason: &str,
    headers: &Headers,
    body: &[u8],
) {
    let rec = StreamRecord::start(out, rtype::STDOUT, id);
    crate::cgi_status_line(out, status, reason);
    headers.write_cgi(out);
    out.extend_from_slice(b"\r\n");
    let room = MAX_CONTENT_LEN.saturating_sub(rec.content_len(out));
    let (first, rest) = body.split_at(body.len().min(room));
    out.extend_from_slice(first);
    rec.finish(out);
    encode_stream(out, rtype::STDOUT, id, rest);
}

/// Encodes body bytes as STDOUT records of request `id` (nothing for an empty slice).
pub fn encode_response_body(out: &mut Vec<u8>, id: u16, body: &[u8]) {
    encode_stream(out, rtype::STDOUT, id, body);
}

#[cfg(test)]
mod tests;
