//! One connection's protocol state machine, whichever protocol its listener speaks: the three
//! sans-IO server connections of `proto` behind one interface for the native loop.

use std::sync::Arc;
use std::time::Instant;

use proto::fcgi::Params;
use proto::{ajp, fcgi, scgi, Expired, ServerLimits, Step};

use crate::app::exchange::Framing;
use crate::metrics::{Limit, ProtocolErrorKind};
use crate::server::listener::Protocol;
use crate::server::Limits;

/// Why input was refused: what the metrics count, and the message for the log.
pub(super) struct InputError {
    /// A protocol error of this kind, or a limit that was hit.
    pub(super) counted: Counted,
    /// The decoder's own message.
    pub(super) message: String,
}

/// How an input error is counted.
pub(super) enum Counted {
    Protocol(ProtocolErrorKind),
    Limit(Limit),
}

/// A connection's state machine.
pub(super) enum Machine {
    Fcgi(fcgi::ServerConn),
    Scgi(scgi::ServerConn),
    Ajp(ajp::ServerConn),
}

/// What every machine of a worker is made with.
#[derive(Clone)]
pub(super) struct MachineConfig {
    pub(super) limits: ServerLimits,
    pub(super) ajp: ajp::ServerOptions,
}

impl MachineConfig {
    pub(super) fn new(l: &Limits) -> Self {
        MachineConfig {
            limits: ServerLimits {
                max_params_bytes: l.max_params_bytes,
                max_reqs_per_conn: l.max_reqs_per_conn,
                params_timeout: l.params_timeout,
                idle_timeout: l.idle_timeout,
                max_conns: l.max_conns,
                max_reqs: l.max_reqs_total(),
            },
            ajp: ajp::ServerOptions {
                packet_size: l.ajp_packet_size,
                secret: l.ajp_secret.as_deref().map(Arc::from),
                cgi: ajp::CgiOptions::default(),
            },
        }
    }
}

impl Machine {
    pub(super) fn new(
        protocol: Protocol,
        cfg: &MachineConfig,
        overloaded: bool,
        now: Instant,
    ) -> Self {
        match protocol {
            Protocol::FastCgi => Machine::Fcgi(fcgi::ServerConn::new(cfg.limits, overloaded, now)),
            Protocol::Scgi => Machine::Scgi(scgi::ServerConn::new(cfg.limits, overloaded, now)),
            Protocol::Ajp => Machine::Ajp(ajp::ServerConn::new(
                cfg.limits,
                cfg.ajp.clone(),
                overloaded,
                now,
            )),
        }
    }

    pub(super) fn protocol(&self) -> Protocol {
        match self {
            Machine::Fcgi(_) => Protocol::FastCgi,
            Machine::Scgi(_) => Protocol::Scgi,
            Machine::Ajp(_) => Protocol::Ajp,
        }
    }

    /// Ready for a new connection of `protocol`, reusing this one's buffers when it is the same
    /// protocol.
    pub(super) fn reset(
        &mut self,
        protocol: Protocol,
        cfg: &MachineConfig,
        overloaded: bool,
        now: Instant,
    ) {
        match self {
            Machine::Fcgi(m) if protocol == Protocol::FastCgi => m.reset(overloaded, now),
            Machine::Scgi(m) if protocol == Protocol::Scgi => m.reset(overloaded, now),
            Machine::Ajp(m) if protocol == Protocol::Ajp => m.reset(overloaded, now),
            _ => *self = Machine::new(protocol, cfg, overloaded, now),
        }
    }

    pub(super) fn handle_input<'a>(
        &mut self,
        input: &'a [u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<Step<'a>, InputError> {
        match self {
            Machine::Fcgi(m) => m.handle_input(input, now, out).map_err(|e| InputError {
                counted: Counted::Protocol((&e).into()),
                message: e.to_string(),
            }),
            Machine::Scgi(m) => m.handle_input(input, now, out).map_err(|e| InputError {
                counted: match e {
                    scgi::Error::HeaderBlockTooLarge { .. } => {
                        Counted::Limit(Limit::MaxParamsBytes)
                    }
                    _ => Counted::Protocol((&e).into()),
                },
                message: e.to_string(),
            }),
            Machine::Ajp(m) => m.handle_input(input, now, out).map_err(|e| InputError {
                counted: Counted::Protocol((&e).into()),
                message: e.to_string(),
            }),
        }
    }

    /// How request `id`'s response is framed.
    pub(super) fn framing(&self, id: u16) -> Framing {
        match self {
            Machine::Fcgi(_) => Framing::Fcgi { id },
            Machine::Scgi(_) => Framing::Scgi,
            Machine::Ajp(m) => Framing::Ajp {
                size: m.packet_size(),
            },
        }
    }

    pub(super) fn take_params(&mut self, id: u16) -> Params {
        match self {
            Machine::Fcgi(m) => m.take_params(id),
            Machine::Scgi(m) => m.take_params(id),
            Machine::Ajp(m) => m.take_params(id),
        }
    }

    pub(super) fn recycle_params(&mut self, p: Params) {
        match self {
            Machine::Fcgi(m) => m.recycle_params(p),
            Machine::Scgi(m) => m.recycle_params(p),
            Machine::Ajp(m) => m.recycle_params(p),
        }
    }

    /// Spare variable buffers the machine holds (SCGI and AJP13 need one at a time).
    pub(super) fn spare_count(&self) -> usize {
        match self {
            Machine::Fcgi(m) => m.spare_count(),
            Machine::Scgi(m) => usize::from(m.has_spare()) * 8,
            Machine::Ajp(m) => usize::from(m.has_spare()) * 8,
        }
    }

    pub(super) fn take_spare(&mut self) -> Option<Params> {
        match self {
            Machine::Fcgi(m) => m.take_spare(),
            Machine::Scgi(m) => m.take_spare(),
            Machine::Ajp(m) => m.take_spare(),
        }
    }

    /// Request `id`'s response was encoded to its end by the exchange's framing: the machine
    /// forgets the request.
    pub(super) fn finish(&mut self, id: u16, now: Instant) {
        let spare = match self {
            Machine::Fcgi(m) => m.finish(id, now),
            Machine::Scgi(m) => m.finish(now),
            Machine::Ajp(m) => m.finish(now),
        };
        if let Some(p) = spare {
            self.recycle_params(p);
        }
    }

    /// AJP13: asks the web server for the next body packet when the request wants one (the
    /// other protocols stream their body unasked).
    pub(super) fn want_body(&mut self, out: &mut Vec<u8>) {
        if let Machine::Ajp(m) = self {
            if m.wants_body() {
                m.want_body(out);
            }
        }
    }

    /// True when the body flows only when asked for (AJP13): the loop then never pauses
    /// reading, it just asks for less.
    pub(super) fn body_on_request(&self) -> bool {
        matches!(self, Machine::Ajp(_))
    }

    pub(super) fn wants_close(&self) -> bool {
        match self {
            Machine::Fcgi(m) => m.wants_close(),
            Machine::Scgi(m) => m.wants_close(),
            Machine::Ajp(m) => m.wants_close(),
        }
    }

    pub(super) fn is_idle(&self) -> bool {
        match self {
            Machine::Fcgi(m) => m.is_idle(),
            Machine::Scgi(m) => m.is_idle(),
            Machine::Ajp(m) => m.is_idle(),
        }
    }

    pub(super) fn expired(&self, now: Instant) -> Option<Expired> {
        match self {
            Machine::Fcgi(m) => m.expired(now),
            Machine::Scgi(m) => m.expired(now),
            Machine::Ajp(m) => m.expired(now),
        }
    }
}
