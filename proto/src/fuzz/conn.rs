//! The three server connection machines driven as a server drives them: bytes split at
//! arbitrary points, a virtual clock advanced by the input, an application that answers,
//! stalls or stops reading, and the machines' invariants checked after every step.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{error_kind, Input};
use crate::ajp::{self, CgiOptions, PacketSize, ServerOptions};
use crate::fcgi::{self, Decode, Params};
use crate::scgi;
use crate::server::{Event, Expired, Refusal, ServerLimits, Step};
use crate::Status;

/// What the harness saw, with borrowed bytes copied so that two runs can be compared.
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Request(u16, Vec<(Vec<u8>, Vec<u8>)>),
    Body(u16, Vec<u8>),
    BodyEnd(u16),
    Abort(u16),
    Refused(u16, Refusal),
    Error(String),
    Expired(Expired),
    Close,
}

/// How the application behaves from one chunk on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Reads the whole body (AJP: asks for every packet), answers once it ended.
    Answer,
    /// Answers every running request at once, body or not.
    AnswerNow,
    /// Neither reads nor answers.
    Stall,
    /// The engine is stopping (`close_when_idle`), then as [`Mode::Answer`].
    Stop,
}

/// One piece of the schedule: how many wire bytes arrive, then how far the clock moves.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    len: usize,
    advance: Duration,
    mode: Mode,
}

const LENGTHS: [usize; 16] = [
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    13,
    16,
    17,
    64,
    100,
    1000,
    usize::MAX,
];
const ADVANCES: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_millis(10),
    Duration::from_secs(29),
    Duration::from_secs(80),
];

/// The common input layout: `flags, params, reqs, n, ctl[n], wire...`.
struct Plan<'a> {
    flags: u8,
    limits: ServerLimits,
    chunks: Vec<Chunk>,
    wire: &'a [u8],
}

fn plan(data: &[u8]) -> Plan<'_> {
    let mut input = Input::new(data);
    let flags = input.u8();
    let params = input.u8();
    let reqs = input.u8();
    let n = usize::from(input.u8() % 64);
    let mut limits = ServerLimits::default();
    if flags & 2 != 0 {
        limits.max_params_bytes = 16 + usize::from(params) * 8;
        limits.max_reqs_per_conn = 1 + usize::from(reqs % 4);
    }
    let chunks = input
        .take(n)
        .iter()
        .map(|&ctl| Chunk {
            len: LENGTHS[usize::from(ctl & 15)],
            advance: ADVANCES[usize::from(ctl >> 4 & 3)],
            mode: match ctl >> 6 {
                0 => Mode::Answer,
                1 => Mode::AnswerNow,
                2 => Mode::Stall,
                _ => Mode::Stop,
            },
        })
        .collect();
    Plan {
        flags,
        limits,
        chunks,
        wire: input.rest(),
    }
}

/// What the harness needs of a server connection.
trait Machine {
    type Error: Debug;
    /// Request ids are FastCGI's (several at once) rather than always 1.
    const MULTIPLEXED: bool;
    /// Input is left unused while a request with a complete body runs (AJP13).
    const HOLDS_INPUT_WHILE_RUNNING: bool;

    fn handle<'a>(
        &mut self,
        input: &'a [u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<Step<'a>, Self::Error>;
    fn take_params(&mut self, id: u16) -> Params;
    fn recycle_params(&mut self, params: Params);
    /// Answers request `id` (head and body) and ends it.
    fn answer(&mut self, id: u16, status: u16, now: Instant, out: &mut Vec<u8>);
    /// Ends request `id` without a response (after an abort).
    fn end(&mut self, id: u16, now: Instant, out: &mut Vec<u8>);
    fn wants_body(&self) -> bool {
        false
    }
    fn want_body(&mut self, _out: &mut Vec<u8>) -> bool {
        false
    }
    fn in_flight(&self) -> usize;
    fn is_idle(&self) -> bool;
    fn wants_close(&self) -> bool;
    fn close_when_idle(&mut self);
    fn expired(&self, now: Instant) -> Option<Expired>;
    fn poll_timeout(&self) -> Option<(Instant, Expired)>;
    fn reset(&mut self, limits: &ServerLimits, overloaded: bool, now: Instant);
    /// The most input a step may leave unused when nothing holds it back.
    fn max_pending(&self, limits: &ServerLimits) -> usize;
    /// The most bytes of request variables one request may carry.
    fn max_params(&self, limits: &ServerLimits) -> usize;
    /// Decodes everything the connection wrote; panics on a malformed answer.
    fn check_output(&self, out: &[u8]);
}

/// One request the application runs.
#[derive(Debug, Default)]
struct AppReq {
    body_done: bool,
}

struct Harness<M: Machine> {
    m: M,
    limits: ServerLimits,
    now: Instant,
    pending: Vec<u8>,
    out: Vec<u8>,
    events: Vec<Ev>,
    app: BTreeMap<u16, AppReq>,
    mode: Mode,
    refused_overloaded: bool,
    closed: bool,
}

impl<M: Machine> Harness<M> {
    fn new(m: M, limits: ServerLimits, now: Instant) -> Self {
        Harness {
            m,
            limits,
            now,
            pending: Vec::new(),
            out: Vec::new(),
            events: Vec::new(),
            app: BTreeMap::new(),
            mode: Mode::Answer,
            refused_overloaded: false,
            closed: false,
        }
    }

    /// Feeds `wire` on the schedule `chunks` (the rest in one piece after them).
    fn run(&mut self, wire: &[u8], chunks: &[Chunk]) {
        let mut at = 0;
        let mut chunks = chunks.iter().copied();
        while !self.closed {
            let chunk = chunks.next().unwrap_or(Chunk {
                len: usize::MAX,
                advance: Duration::ZERO,
                mode: self.mode,
            });
            let end = at + chunk.len.min(wire.len() - at);
            self.set_mode(chunk.mode);
            self.pending.extend_from_slice(&wire[at..end]);
            at = end;
            self.drive();
            if self.closed {
                break;
            }
            self.tick(chunk.advance);
            if at == wire.len() && chunks.len() == 0 {
                break;
            }
        }
    }

    fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
        match mode {
            Mode::AnswerNow => {
                let ids: Vec<u16> = self.app.keys().copied().collect();
                for id in ids {
                    self.answer(id, 200);
                }
            }
            Mode::Stop => self.m.close_when_idle(),
            Mode::Answer | Mode::Stall => {}
        }
    }

    fn answer(&mut self, id: u16, status: u16) {
        assert!(self.app.remove(&id).is_some());
        self.m.answer(id, status, self.now, &mut self.out);
    }

    /// Moves the clock; a connection whose timer fired is closed.
    fn tick(&mut self, by: Duration) {
        self.now += by;
        if let Some(expired) = self.m.expired(self.now) {
            let (at, kind) = self.m.poll_timeout().expect("a timer that fired was set");
            assert!(at <= self.now && kind == expired);
            self.events.push(Ev::Expired(expired));
            self.closed = true;
        }
    }

    /// Calls the machine until a step uses nothing and yields nothing, as a driver does.
    fn drive(&mut self) {
        let mut without_input = 0;
        loop {
            let step = match self.m.handle(&self.pending, self.now, &mut self.out) {
                Ok(step) => step,
                Err(e) => {
                    self.events.push(Ev::Error(format!("{e:?}")));
                    self.closed = true;
                    return;
                }
            };
            let consumed = step.consumed;
            assert!(
                consumed <= self.pending.len(),
                "used more than it was given"
            );
            let Some(event) = step.event else {
                if consumed == 0 {
                    break;
                }
                self.pending.drain(..consumed);
                without_input = 0;
                continue;
            };
            let event = owned(event);
            self.pending.drain(..consumed);
            if consumed == 0 {
                without_input += 1;
                assert!(without_input <= 2, "events keep coming without input");
            } else {
                without_input = 0;
            }
            self.on_step_event(event);
            if self.m.wants_close() {
                self.events.push(Ev::Close);
                self.closed = true;
                return;
            }
        }
        if self.mode != Mode::Stall && self.m.wants_body() {
            assert!(self.m.want_body(&mut self.out));
            assert!(!self.m.wants_body());
        }
        self.check();
    }

    fn on_event(&mut self, event: Ev) {
        match &event {
            Ev::Request(id, _) => unreachable!("made by take_params below: {id}"),
            Ev::Body(id, data) => {
                assert!(!data.is_empty(), "an empty body event");
                let r = self
                    .app
                    .get(id)
                    .expect("body for a request that does not run");
                assert!(!r.body_done, "body after the end of the body");
            }
            Ev::BodyEnd(id) => {
                let r = self
                    .app
                    .get_mut(id)
                    .expect("body end for a request not running");
                assert!(!r.body_done, "two ends of one body");
                r.body_done = true;
            }
            Ev::Abort(id) => {
                assert!(
                    self.app.remove(id).is_some(),
                    "abort of a request not running"
                );
                self.m.end(*id, self.now, &mut self.out);
            }
            Ev::Refused(id, reason) => {
                assert!(!self.app.contains_key(id), "refused a running request");
                if matches!(reason, Refusal::Overloaded | Refusal::Unavailable) {
                    self.refused_overloaded = true;
                }
                if let Some(status) = reason.http_status() {
                    self.m.answer(*id, status, self.now, &mut self.out);
                }
            }
            Ev::Error(_) | Ev::Expired(_) | Ev::Close => unreachable!(),
        }
        let id = match &event {
            Ev::Body(id, _) | Ev::BodyEnd(id) => Some(*id),
            _ => None,
        };
        self.events.push(event);
        if let Some(id) = id {
            let done = self.app.get(&id).is_some_and(|r| r.body_done);
            if (done && self.mode != Mode::Stall) || self.mode == Mode::AnswerNow {
                self.answer(id, 200);
            } else if self.mode != Mode::Stall && self.m.wants_body() {
                // The application took the bytes and has room for more.
                assert!(self.m.want_body(&mut self.out));
            }
        }
    }

    /// A request head is complete: the application takes its variables and starts.
    fn on_request(&mut self, id: u16) {
        assert!(
            !self.app.contains_key(&id),
            "a second request on a running id"
        );
        if !M::MULTIPLEXED {
            assert!(self.app.is_empty() && id == 1);
        }
        let params = self.m.take_params(id);
        assert!(
            params.is_complete(),
            "a request whose variables did not end"
        );
        assert!(
            params.byte_len() <= self.m.max_params(&self.limits),
            "{} bytes of variables, limit {}",
            params.byte_len(),
            self.m.max_params(&self.limits)
        );
        let pairs = params
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        self.m.recycle_params(params);
        self.events.push(Ev::Request(id, pairs));
        self.app.insert(id, AppReq::default());
        if self.mode == Mode::AnswerNow {
            self.answer(id, 200);
        }
    }

    /// The invariants that hold between two reads.
    fn check(&self) {
        let held = M::HOLDS_INPUT_WHILE_RUNNING && self.app.values().any(|r| r.body_done);
        if !held {
            assert!(
                self.pending.len() <= self.m.max_pending(&self.limits),
                "{} bytes left unused (at most {})",
                self.pending.len(),
                self.m.max_pending(&self.limits)
            );
        }
        assert!(
            self.app.len() <= self.m.in_flight(),
            "a running request is not in flight"
        );
        if M::MULTIPLEXED {
            assert!(self.m.in_flight() <= self.limits.max_reqs_per_conn);
        } else {
            assert!(self.m.in_flight() <= 1);
        }
        if self.refused_overloaded && self.m.is_idle() {
            assert!(self.m.wants_close(), "an overloaded connection stays open");
        }
    }

    /// With nothing left for the application to do, the connection closes or its timer fires.
    fn check_ends(&self) {
        if self.closed || !self.app.is_empty() {
            return;
        }
        let later = self.now + self.limits.params_timeout.max(self.limits.idle_timeout);
        assert!(
            self.m.wants_close() || self.m.expired(later + Duration::from_secs(1)).is_some(),
            "a connection with no running request never closes (in flight: {})",
            self.m.in_flight()
        );
    }

    /// The events with adjacent body pieces merged (how bytes were split is not theirs to show).
    fn merged_events(&self) -> Vec<Ev> {
        let mut merged: Vec<Ev> = Vec::new();
        for e in &self.events {
            match (merged.last_mut(), e) {
                (Some(Ev::Body(a, prev)), Ev::Body(b, more)) if a == b => {
                    prev.extend_from_slice(more)
                }
                (_, Ev::Error(e)) => merged.push(Ev::Error(error_kind(e))),
                (_, e) => merged.push(e.clone()),
            }
        }
        merged
    }
}

fn owned(event: Event<'_>) -> Ev {
    match event {
        // The variables are added by `on_request`, which needs the machine.
        Event::Request { id } => Ev::Request(id, Vec::new()),
        Event::Body { id, data } => Ev::Body(id, data.to_vec()),
        Event::BodyEnd { id } => Ev::BodyEnd(id),
        Event::Abort { id } => Ev::Abort(id),
        Event::Refused { id, reason } => Ev::Refused(id, reason),
    }
}

impl<M: Machine> Harness<M> {
    fn on_step_event(&mut self, event: Ev) {
        match event {
            Ev::Request(id, _) => self.on_request(id),
            other => self.on_event(other),
        }
    }
}

/// Runs one input against a machine made by `make(overloaded, now)`: the wire split on the
/// schedule with the clock moving and the application's modes (invariants checked
/// throughout), then the same wire whole and split on the same points with a fixed clock and an
/// application that answers every request at the end of its body: both must give the same
/// events and the same output. With flag 0x40, the connection is then `reset` and must behave
/// as a new one.
fn exercise<M: Machine>(data: &[u8], make: impl Fn(&ServerLimits, u8, Instant) -> M) {
    let plan = plan(data);
    let overloaded = plan.flags & 1 != 0;
    let start = Instant::now();

    let mut chaos = Harness::new(make(&plan.limits, plan.flags, start), plan.limits, start);
    chaos.run(plan.wire, &plan.chunks);
    chaos.check_ends();
    chaos.m.check_output(&chaos.out);

    let calm: Vec<Chunk> = plan
        .chunks
        .iter()
        .map(|c| Chunk {
            advance: Duration::ZERO,
            mode: Mode::Answer,
            ..*c
        })
        .collect();
    let mut whole = Harness::new(make(&plan.limits, plan.flags, start), plan.limits, start);
    whole.run(plan.wire, &[]);
    whole.check_ends();
    whole.m.check_output(&whole.out);
    let mut split = Harness::new(make(&plan.limits, plan.flags, start), plan.limits, start);
    split.run(plan.wire, &calm);
    assert_eq!(
        whole.merged_events(),
        split.merged_events(),
        "whole vs split"
    );
    assert_eq!(whole.out, split.out, "whole vs split output");

    if plan.flags & 0x40 != 0 {
        let mut m = chaos.m;
        m.reset(&plan.limits, overloaded, start);
        let mut again = Harness::new(m, plan.limits, start);
        again.run(plan.wire, &[]);
        assert_eq!(whole.merged_events(), again.merged_events(), "after reset");
        assert_eq!(whole.out, again.out, "after reset");
    }
}

// ===== FastCGI =====

impl Machine for fcgi::ServerConn {
    type Error = fcgi::DecodeError;
    const MULTIPLEXED: bool = true;
    const HOLDS_INPUT_WHILE_RUNNING: bool = false;

    fn handle<'a>(
        &mut self,
        input: &'a [u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<Step<'a>, Self::Error> {
        self.handle_input(input, now, out)
    }
    fn take_params(&mut self, id: u16) -> Params {
        fcgi::ServerConn::take_params(self, id)
    }
    fn recycle_params(&mut self, params: Params) {
        fcgi::ServerConn::recycle_params(self, params)
    }
    fn answer(&mut self, id: u16, status: u16, now: Instant, out: &mut Vec<u8>) {
        fcgi::encode_response_head(out, id, status, "OK", &text_plain(), b"hi");
        fcgi::ServerConn::end(self, id, now, out);
    }
    fn end(&mut self, id: u16, now: Instant, out: &mut Vec<u8>) {
        fcgi::ServerConn::end(self, id, now, out);
    }
    fn in_flight(&self) -> usize {
        fcgi::ServerConn::in_flight(self)
    }
    fn is_idle(&self) -> bool {
        fcgi::ServerConn::is_idle(self)
    }
    fn wants_close(&self) -> bool {
        fcgi::ServerConn::wants_close(self)
    }
    fn close_when_idle(&mut self) {
        fcgi::ServerConn::close_when_idle(self)
    }
    fn expired(&self, now: Instant) -> Option<Expired> {
        fcgi::ServerConn::expired(self, now)
    }
    fn poll_timeout(&self) -> Option<(Instant, Expired)> {
        fcgi::ServerConn::poll_timeout(self)
    }
    fn reset(&mut self, _: &ServerLimits, overloaded: bool, now: Instant) {
        fcgi::ServerConn::reset(self, overloaded, now)
    }
    fn max_pending(&self, _: &ServerLimits) -> usize {
        fcgi::HEADER_LEN + fcgi::MAX_CONTENT_LEN + fcgi::MAX_PADDING_LEN - 1
    }
    fn max_params(&self, limits: &ServerLimits) -> usize {
        limits.max_params_bytes
    }
    fn check_output(&self, out: &[u8]) {
        let mut at = 0;
        while at < out.len() {
            match fcgi::decode_response_record(&out[at..]) {
                Ok(Decode::Complete(_, used)) => at += used,
                other => panic!("malformed output at {at}: {other:?}"),
            }
        }
    }
}

/// `fcgi_conn`: `flags, params, reqs, n, ctl[n], wire...` (see [`exercise`]): flags 1 =
/// accepted past `--max-conns`, 2 = small limits (`--max-params-bytes` 16 + 8 × params,
/// `--max-reqs-per-conn` 1 + reqs % 4), 0x40 = reuse after `reset`. Each ctl byte is one
/// piece of wire (low 4 bits: 1 to 1000 bytes or the rest), a clock step (bits 4-5: 0, 10 ms,
/// 29 s, 80 s) and the application's mode from then on (bits 6-7: answer at the end of the
/// body, answer at once, stall, engine stopping).
pub fn fcgi_conn(data: &[u8]) {
    exercise(data, |limits, flags, now| {
        fcgi::ServerConn::new(*limits, flags & 1 != 0, now)
    });
}

// ===== SCGI =====

impl Machine for scgi::ServerConn {
    type Error = scgi::Error;
    const MULTIPLEXED: bool = false;
    const HOLDS_INPUT_WHILE_RUNNING: bool = false;

    fn handle<'a>(
        &mut self,
        input: &'a [u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<Step<'a>, Self::Error> {
        self.handle_input(input, now, out)
    }
    fn take_params(&mut self, id: u16) -> Params {
        scgi::ServerConn::take_params(self, id)
    }
    fn recycle_params(&mut self, params: Params) {
        scgi::ServerConn::recycle_params(self, params)
    }
    fn answer(&mut self, _id: u16, status: u16, now: Instant, out: &mut Vec<u8>) {
        self.encode_response_head(out, status, "OK", &text_plain(), b"hi");
        scgi::ServerConn::end(self, now, out);
    }
    fn end(&mut self, _id: u16, now: Instant, out: &mut Vec<u8>) {
        scgi::ServerConn::end(self, now, out);
    }
    fn in_flight(&self) -> usize {
        scgi::ServerConn::in_flight(self)
    }
    fn is_idle(&self) -> bool {
        scgi::ServerConn::is_idle(self)
    }
    fn wants_close(&self) -> bool {
        scgi::ServerConn::wants_close(self)
    }
    fn close_when_idle(&mut self) {
        scgi::ServerConn::close_when_idle(self)
    }
    fn expired(&self, now: Instant) -> Option<Expired> {
        scgi::ServerConn::expired(self, now)
    }
    fn poll_timeout(&self) -> Option<(Instant, Expired)> {
        scgi::ServerConn::poll_timeout(self)
    }
    fn reset(&mut self, limits: &ServerLimits, overloaded: bool, now: Instant) {
        // SCGI has no reset: a new connection's machine reuses the spare variables.
        let spare = self.take_spare();
        *self = scgi::ServerConn::new(*limits, overloaded, now);
        if let Some(p) = spare {
            scgi::ServerConn::recycle_params(self, p);
        }
    }
    fn max_pending(&self, limits: &ServerLimits) -> usize {
        // The length prefix (at most 20 digits), ':', the block and ',', less one byte.
        limits.max_params_bytes + 21
    }
    fn max_params(&self, limits: &ServerLimits) -> usize {
        limits.max_params_bytes
    }
    fn check_output(&self, _out: &[u8]) {}
}

/// `scgi_conn`: the layout of [`fcgi_conn`]; the small limits bound the header block, and
/// `reqs` is unused.
pub fn scgi_conn(data: &[u8]) {
    exercise(data, |limits, flags, now| {
        scgi::ServerConn::new(*limits, flags & 1 != 0, now)
    });
}

// ===== AJP13 =====

impl Machine for ajp::ServerConn {
    type Error = ajp::Error;
    const MULTIPLEXED: bool = false;
    const HOLDS_INPUT_WHILE_RUNNING: bool = true;

    fn handle<'a>(
        &mut self,
        input: &'a [u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<Step<'a>, Self::Error> {
        self.handle_input(input, now, out)
    }
    fn take_params(&mut self, id: u16) -> Params {
        ajp::ServerConn::take_params(self, id)
    }
    fn recycle_params(&mut self, params: Params) {
        ajp::ServerConn::recycle_params(self, params)
    }
    fn answer(&mut self, _id: u16, status: u16, now: Instant, out: &mut Vec<u8>) {
        self.encode_response_head(out, status, "OK", &text_plain(), b"hi")
            .expect("a valid head");
        ajp::ServerConn::end(self, now, out);
    }
    fn end(&mut self, _id: u16, now: Instant, out: &mut Vec<u8>) {
        ajp::ServerConn::end(self, now, out);
    }
    fn wants_body(&self) -> bool {
        ajp::ServerConn::wants_body(self)
    }
    fn want_body(&mut self, out: &mut Vec<u8>) -> bool {
        ajp::ServerConn::want_body(self, out)
    }
    fn in_flight(&self) -> usize {
        ajp::ServerConn::in_flight(self)
    }
    fn is_idle(&self) -> bool {
        ajp::ServerConn::is_idle(self)
    }
    fn wants_close(&self) -> bool {
        ajp::ServerConn::wants_close(self)
    }
    fn close_when_idle(&mut self) {
        ajp::ServerConn::close_when_idle(self)
    }
    fn expired(&self, now: Instant) -> Option<Expired> {
        ajp::ServerConn::expired(self, now)
    }
    fn poll_timeout(&self) -> Option<(Instant, Expired)> {
        ajp::ServerConn::poll_timeout(self)
    }
    fn reset(&mut self, _: &ServerLimits, overloaded: bool, now: Instant) {
        ajp::ServerConn::reset(self, overloaded, now)
    }
    fn max_pending(&self, _: &ServerLimits) -> usize {
        self.packet_size().get() - 1
    }
    fn max_params(&self, _: &ServerLimits) -> usize {
        // AJP13 has no variables limit of its own: they come from one packet. A header's name
        // grows by at most "HTTP_" and a coded one from 2 bytes to at most 20; REQUEST_URI
        // repeats the path and query; the fixed variables are few.
        8 * self.packet_size().get() + 4096
    }
    fn check_output(&self, out: &[u8]) {
        let size = self.packet_size();
        let mut at = 0;
        while at < out.len() {
            match ajp::decode_container_packet(&out[at..], size) {
                Ok(Status::Complete((_, used))) => at += used,
                other => panic!("malformed output at {at}: {other:?}"),
            }
        }
    }
}

/// The secret the `ajp_conn` target configures with flag 4.
pub const AJP_SECRET: &[u8] = b"s3cret";

/// `ajp_conn`: the layout of [`fcgi_conn`], plus flags 4 = `--ajp-secret` [`AJP_SECRET`],
/// 8 = trust REMOTE_USER, bits 4-5 = packet size (8192, 1024, 65536, 2048); the small limits
/// change nothing but timers, which AJP13 shares.
pub fn ajp_conn(data: &[u8]) {
    exercise(data, |limits, flags, now| {
        let packet_size = match flags >> 4 & 3 {
            0 => ajp::DEFAULT_PACKET_SIZE,
            1 => ajp::MIN_PACKET_SIZE,
            2 => ajp::MAX_PACKET_SIZE,
            _ => 2048,
        };
        let options = ServerOptions {
            packet_size: PacketSize::new(packet_size).expect("within bounds"),
            secret: (flags & 4 != 0).then(|| Arc::from(AJP_SECRET)),
            cgi: CgiOptions {
                trust_remote_user: flags & 8 != 0,
            },
        };
        ajp::ServerConn::new(*limits, options, flags & 1 != 0, now)
    });
}

/// The header fields of every answer the fuzzed machines give.
fn text_plain() -> crate::Headers {
    [("Content-Type", "text/plain")].into_iter().collect()
}
