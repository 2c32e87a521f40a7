//! What the three server connection state machines share: the events they yield, the limits they
//! enforce, the reasons they refuse a request and the timers they ask for.
//!
//! A server connection ([`crate::fcgi::ServerConn`], [`crate::scgi::ServerConn`],
//! [`crate::ajp::ServerConn`]) is fed the bytes a socket delivered and yields at most one
//! [`Event`] per call, borrowing body bytes from the input (no copy). Answers the protocol gives
//! on its own (FastCGI GET_VALUES, a refused request's END_REQUEST, AJP CPONG and
//! GET_BODY_CHUNK) are encoded into a buffer the caller owns. Time is passed in: the machine
//! never reads a clock, so its timeouts are tested on a virtual one.

use std::time::{Duration, Instant};

/// The limits a server connection enforces, each a documented engine option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Bytes of request variables per request (`--max-params-bytes`).
    pub max_params_bytes: usize,
    /// Requests in flight on one connection (`--max-reqs-per-conn`).
    pub max_reqs_per_conn: usize,
    /// How long a request head may take to arrive, however it trickles in (`--params-timeout`);
    /// it also bounds a record or packet left half-sent.
    pub params_timeout: Duration,
    /// How long a connection may stay open with no request (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// Answered to FastCGI GET_VALUES as FCGI_MAX_CONNS.
    pub max_conns: usize,
    /// Answered to FastCGI GET_VALUES as FCGI_MAX_REQS.
    pub max_reqs: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_params_bytes: 128 * 1024,
            max_reqs_per_conn: 128,
            params_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            max_conns: 4096,
            max_reqs: 4096 * 128,
        }
    }
}

/// What a server connection yields from its input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The head of request `id` is complete: its variables are taken with `take_params(id)`
    /// and the application can start.
    Request {
        /// The request id (FastCGI's; 1 for SCGI and AJP13).
        id: u16,
    },
    /// Body bytes of request `id`, borrowed from the input.
    Body {
        /// The request id.
        id: u16,
        /// The bytes, never empty.
        data: &'a [u8],
    },
    /// The body of request `id` ended.
    BodyEnd {
        /// The request id.
        id: u16,
    },
    /// The peer gave up on request `id` (FastCGI ABORT_REQUEST): its handler is cancelled, and
    /// the response must still be ended (`encode_end`).
    Abort {
        /// The request id.
        id: u16,
    },
    /// Request `id` is refused before reaching the application. When
    /// [`Refusal::http_status`] is `Some`, the caller answers with that status through the
    /// normal response path (and ends it); otherwise the machine already encoded the protocol's
    /// own refusal into the output.
    Refused {
        /// The request id.
        id: u16,
        /// Why.
        reason: Refusal,
    },
}

/// Why a request was refused before reaching the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The connection was accepted past the process's connection limit (`--max-conns`); FastCGI
    /// answers it itself (END_REQUEST with OVERLOADED). SCGI and AJP13 use
    /// [`Refusal::Unavailable`].
    Overloaded,
    /// Too many requests in flight on the connection (`--max-reqs-per-conn`).
    MaxReqsPerConn,
    /// A FastCGI role other than Responder.
    UnknownRole(u16),
    /// The request variables passed `--max-params-bytes`.
    ParamsTooLarge,
    /// The request variables were malformed.
    BadParams,
    /// An AJP13 request without the shared secret (`--ajp-secret`).
    BadSecret,
    /// The connection was accepted past the process's connection limit (`--max-conns`) on a
    /// protocol with no refusal of its own (SCGI, AJP13): the caller answers 503 through the
    /// normal response path. The limit itself was counted when the connection was accepted.
    Unavailable,
}

impl Refusal {
    /// The HTTP status the caller must answer with, or `None` when the machine already encoded
    /// the protocol's own refusal (FastCGI END_REQUEST with OVERLOADED or UNKNOWN_ROLE).
    pub fn http_status(self) -> Option<u16> {
        match self {
            Refusal::ParamsTooLarge => Some(431),
            Refusal::BadParams => Some(400),
            Refusal::BadSecret => Some(403),
            Refusal::Unavailable => Some(503),
            Refusal::Overloaded | Refusal::MaxReqsPerConn | Refusal::UnknownRole(_) => None,
        }
    }
}

/// One step of input handling: how many bytes were used, and the event they made, if any.
/// `consumed == 0` with no event means the input ends inside a record or packet (or, for AJP13,
/// that the machine waits for the running request to end): call again with more bytes
/// appended.
///
/// A step may carry an event without using any byte (SCGI and AJP13 yield `BodyEnd` right after
/// the request or its last body bytes): the caller keeps calling, with whatever input is left
/// (possibly none), until a step uses nothing and yields nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step<'a> {
    /// Bytes of the input used; the caller drops them before the next call.
    pub consumed: usize,
    /// What they made.
    pub event: Option<Event<'a>>,
}

impl<'a> Step<'a> {
    /// Bytes used, no event.
    pub fn used(consumed: usize) -> Self {
        Step {
            consumed,
            event: None,
        }
    }

    /// Bytes used, making `event`.
    pub fn event(consumed: usize, event: Event<'a>) -> Self {
        Step {
            consumed,
            event: Some(event),
        }
    }

    /// Nothing could be used: more input is needed.
    pub fn partial() -> Self {
        Step::used(0)
    }
}

/// Which timer of a connection fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// A request head (or a record or packet) did not arrive within `params_timeout`: close
    /// the connection, and count it.
    Head,
    /// No request for `idle_timeout`: close the connection cleanly.
    Idle,
}

/// The clock state shared by the machines: when the connection went idle, when an unfinished
/// frame started arriving. Requests' own head times are kept by each machine.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timers {
    /// Since when no request has been in flight (None while one is).
    pub(crate) idle_since: Option<Instant>,
    /// Since when the input has ended inside a frame.
    pub(crate) partial_since: Option<Instant>,
}

impl Timers {
    pub(crate) fn new(now: Instant) -> Self {
        Timers {
            idle_since: Some(now),
            partial_since: None,
        }
    }

    /// Records whether the last input call stopped inside a frame.
    pub(crate) fn input_seen(&mut self, now: Instant, partial: bool) {
        if !partial {
            self.partial_since = None;
        } else if self.partial_since.is_none() {
            self.partial_since = Some(now);
        }
    }

    /// The next deadline, given the earliest head still arriving and whether no request is in
    /// flight (the idle timeout only runs then).
    pub(crate) fn deadline(
        &self,
        head_since: Option<Instant>,
        idle: bool,
        limits: &ServerLimits,
    ) -> Option<(Instant, Expired)> {
        let head = match (head_since, self.partial_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(t) = head {
            return Some((t + limits.params_timeout, Expired::Head));
        }
        self.idle_since
            .filter(|_| idle)
            .map(|t| (t + limits.idle_timeout, Expired::Idle))
    }
}

/// Which timer of `deadline` (a machine's `poll_timeout`) has expired at `now`, if any.
pub(crate) fn due(deadline: Option<(Instant, Expired)>, now: Instant) -> Option<Expired> {
    deadline.filter(|(at, _)| *at <= now).map(|(_, k)| k)
}
