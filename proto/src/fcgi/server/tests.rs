//! The FastCGI server connection driven in memory: a client's raw records in, events and the
//! machine's own answers out, on a virtual clock.

use std::time::{Duration, Instant};

use super::*;
use crate::fcgi::{
    decode_record, encode_begin_request, encode_get_values, encode_nv, encode_record,
    FLAG_KEEP_CONN,
};
use crate::Headers;

/// An event with its borrowed bytes copied, so a test can collect them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Request(u16),
    Body(u16, Vec<u8>),
    BodyEnd(u16),
    Abort(u16),
    Refused(u16, Refusal),
}

struct Peer {
    conn: ServerConn,
    now: Instant,
    /// Bytes the client sent that the machine has not used yet.
    pending: Vec<u8>,
    /// What the machine wrote.
    out: Vec<u8>,
    events: Vec<Ev>,
}

impl Peer {
    fn new(limits: ServerLimits) -> Self {
        let now = Instant::now();
        Peer {
            conn: ServerConn::new(limits, false, now),
            now,
            pending: Vec::new(),
            out: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Feeds `bytes` in pieces of at most `chunk` bytes, as a socket might deliver them.
    fn feed_in(&mut self, bytes: &[u8], chunk: usize) -> Result<(), DecodeError> {
        for piece in bytes.chunks(chunk.max(1)) {
            self.pending.extend_from_slice(piece);
            loop {
                let step = self
                    .conn
                    .handle_input(&self.pending, self.now, &mut self.out)?;
                if let Some(e) = step.event {
                    self.events.push(match e {
                        Event::Request { id } => Ev::Request(id),
                        Event::Body { id, data } => Ev::Body(id, data.to_vec()),
                        Event::BodyEnd { id } => Ev::BodyEnd(id),
                        Event::Abort { id } => Ev::Abort(id),
                        Event::Refused { id, reason } => Ev::Refused(id, reason),
                    });
                }
                if step.consumed == 0 {
                    break;
                }
                self.pending.drain(..step.consumed);
            }
        }
        Ok(())
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.feed_in(bytes, usize::MAX).unwrap()
    }

    fn take_events(&mut self) -> Vec<Ev> {
        std::mem::take(&mut self.events)
    }

    /// Records the machine wrote, as (type, id, content).
    fn take_out(&mut self) -> Vec<(u8, u16, Vec<u8>)> {
        let mut recs = Vec::new();
        let mut pos = 0;
        while pos < self.out.len() {
            let Decode::Complete(rec, used) = decode_record(&self.out[pos..]).unwrap() else {
                panic!("partial record in output")
            };
            recs.push((
                rec.header.rtype,
                rec.header.request_id,
                rec.content.to_vec(),
            ));
            pos += used;
        }
        self.out.clear();
        recs
    }
}

fn begin(id: u16, keep: bool) -> Vec<u8> {
    let mut b = Vec::new();
    encode_begin_request(
        &mut b,
        id,
        role::RESPONDER,
        if keep { FLAG_KEEP_CONN } else { 0 },
    );
    b
}

fn params(id: u16, pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut content = Vec::new();
    for (n, v) in pairs {
        encode_nv(&mut content, n.as_bytes(), v.as_bytes());
    }
    let mut b = Vec::new();
    encode_record(&mut b, rtype::PARAMS, id, &content);
    encode_record(&mut b, rtype::PARAMS, id, &[]);
    b
}

fn stdin(id: u16, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    encode_record(&mut b, rtype::STDIN, id, data);
    b
}

/// A whole request: BEGIN, PARAMS, body, empty STDIN.
fn request(id: u16, keep: bool, body: &[u8]) -> Vec<u8> {
    let mut b = begin(id, keep);
    b.extend(params(
        id,
        &[("REQUEST_METHOD", "POST"), ("SCRIPT_NAME", "/x")],
    ));
    if !body.is_empty() {
        b.extend(stdin(id, body));
    }
    b.extend(stdin(id, &[]));
    b
}

fn end_request_status(content: &[u8]) -> u8 {
    content[4]
}

#[test]
fn one_request_in_any_split_gives_the_same_events() {
    let wire = request(1, false, b"hello");
    for chunk in [1, 3, 8, 9, 17, 1000] {
        let mut p = Peer::new(ServerLimits::default());
        p.feed_in(&wire, chunk).unwrap();
        let events = p.take_events();
        // Body bytes may come in pieces only if records are split; records are whole here.
        assert_eq!(
            events,
            vec![
                Ev::Request(1),
                Ev::Body(1, b"hello".to_vec()),
                Ev::BodyEnd(1)
            ],
            "chunk {chunk}"
        );
        let vars = p.conn.take_params(1);
        assert_eq!(vars.get(b"SCRIPT_NAME"), Some(&b"/x"[..]));
        assert!(p.out.is_empty());
    }
}

#[test]
fn response_then_end_closes_without_keep_conn() {
    let mut p = Peer::new(ServerLimits::default());
    p.feed(&request(1, false, b""));
    assert!(!p.conn.wants_close(), "a request is in flight");
    encode_response_head(
        &mut p.out,
        1,
        200,
        "OK",
        &[("Content-Type", "text/plain")].into_iter().collect(),
        b"hi",
    );
    p.conn.end(1, p.now, &mut p.out);
    let recs = p.take_out();
    assert_eq!(recs.len(), 3);
    assert_eq!(
        recs[0].2,
        b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhi".to_vec()
    );
    assert_eq!((recs[1].0, recs[1].2.len()), (rtype::STDOUT, 0));
    assert_eq!(recs[2].0, rtype::END_REQUEST);
    assert_eq!(
        end_request_status(&recs[2].2),
        protocol_status::REQUEST_COMPLETE
    );
    assert!(p.conn.wants_close());
}

#[test]
fn keep_conn_reuses_the_id() {
    let mut p = Peer::new(ServerLimits::default());
    for _ in 0..3 {
        p.feed(&request(1, true, b"x"));
        assert_eq!(p.take_events()[0], Ev::Request(1));
        let vars = p.conn.take_params(1);
        p.conn.recycle_params(vars);
        p.conn.end(1, p.now, &mut p.out);
        assert!(!p.conn.wants_close());
        assert!(p.conn.is_idle());
    }
}

#[test]
fn multiplexed_requests_interleave() {
    let mut p = Peer::new(ServerLimits::default());
    let mut wire = begin(1, true);
    wire.extend(begin(2, true));
    wire.extend(params(2, &[("A", "2")]));
    wire.extend(params(1, &[("A", "1")]));
    wire.extend(stdin(1, b"one"));
    wire.extend(stdin(2, b"two"));
    wire.extend(stdin(2, &[]));
    wire.extend(stdin(1, &[]));
    p.feed(&wire);
    assert_eq!(
        p.take_events(),
        vec![
            Ev::Request(2),
            Ev::Request(1),
            Ev::Body(1, b"one".to_vec()),
            Ev::Body(2, b"two".to_vec()),
            Ev::BodyEnd(2),
            Ev::BodyEnd(1),
        ]
    );
    assert_eq!(p.conn.take_params(1).get(b"A"), Some(&b"1"[..]));
    assert_eq!(p.conn.take_params(2).get(b"A"), Some(&b"2"[..]));
    assert_eq!(p.conn.in_flight(), 2);
    p.conn.end(2, p.now, &mut p.out);
    assert_eq!(p.conn.in_flight(), 1);
}

#[test]
fn a_pair_may_straddle_params_records() {
    let mut content = Vec::new();
    encode_nv(&mut content, b"HTTP_HOST", b"example.org");
    let (a, b) = content.split_at(5);
    let mut wire = begin(1, false);
    encode_record(&mut wire, rtype::PARAMS, 1, a);
    encode_record(&mut wire, rtype::PARAMS, 1, b);
    encode_record(&mut wire, rtype::PARAMS, 1, &[]);
    let mut p = Peer::new(ServerLimits::default());
    p.feed(&wire);
    assert_eq!(p.take_events(), vec![Ev::Request(1)]);
    assert_eq!(
        p.conn.take_params(1).get(b"HTTP_HOST"),
        Some(&b"example.org"[..])
    );
}

/// Found by fuzzing (`fcgi_conn`): STDIN records after the empty one gave more `Body` and
/// `BodyEnd` events for a body that had ended, while the application still ran.
#[test]
fn stdin_after_the_end_of_the_body_is_ignored() {
    let mut p = Peer::new(ServerLimits::default());
    let mut wire = request(1, true, b"hello");
    wire.extend(stdin(1, b"more"));
    wire.extend(stdin(1, &[]));
    p.feed(&wire);
    assert_eq!(
        p.take_events(),
        vec![
            Ev::Request(1),
            Ev::Body(1, b"hello".to_vec()),
            Ev::BodyEnd(1)
        ]
    );
    // The request still runs: an abort reaches it.
    let mut abort = Vec::new();
    encode_record(&mut abort, rtype::ABORT_REQUEST, 1, &[]);
    p.feed(&abort);
    assert_eq!(p.take_events(), vec![Ev::Abort(1)]);
}

#[test]
fn abort_while_running_is_an_event_and_before_params_end_answers_itself() {
    let mut p = Peer::new(ServerLimits::default());
    let mut wire = begin(1, true);
    wire.extend(params(1, &[]));
    encode_record(&mut wire, rtype::ABORT_REQUEST, 1, &[]);
    p.feed(&wire);
    assert_eq!(p.take_events(), vec![Ev::Request(1), Ev::Abort(1)]);
    // The caller cancels the handler and ends the request.
    p.conn.end(1, p.now, &mut p.out);
    assert_eq!(p.take_out().last().unwrap().0, rtype::END_REQUEST);

    let mut wire = begin(2, true);
    encode_record(&mut wire, rtype::ABORT_REQUEST, 2, &[]);
    p.feed(&wire);
    assert_eq!(p.take_events(), vec![]);
    let recs = p.take_out();
    assert_eq!(recs.last().unwrap().0, rtype::END_REQUEST);
    assert_eq!(recs.last().unwrap().1, 2);
    assert!(p.conn.is_idle());
}

#[test]
fn max_reqs_per_conn_refuses_with_overloaded() {
    let limits = ServerLimits {
        max_reqs_per_conn: 2,
        ..ServerLimits::default()
    };
    let mut p = Peer::new(limits);
    let mut wire = begin(1, true);
    wire.extend(begin(2, true));
    wire.extend(begin(3, true));
    p.feed(&wire);
    assert_eq!(
        p.take_events(),
        vec![Ev::Refused(3, Refusal::MaxReqsPerConn)]
    );
    let recs = p.take_out();
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0].0, recs[0].1), (rtype::END_REQUEST, 3));
    assert_eq!(end_request_status(&recs[0].2), protocol_status::OVERLOADED);
    assert!(!p.conn.wants_close());
}

#[test]
fn overloaded_connection_refuses_everything_then_closes() {
    let now = Instant::now();
    let mut conn = ServerConn::new(ServerLimits::default(), true, now);
    let mut out = Vec::new();
    let wire = begin(1, true);
    let step = conn.handle_input(&wire, now, &mut out).unwrap();
    assert_eq!(
        step.event,
        Some(Event::Refused {
            id: 1,
            reason: Refusal::Overloaded
        })
    );
    assert!(conn.wants_close());
}

#[test]
fn unknown_role_is_refused() {
    let mut wire = Vec::new();
    encode_begin_request(&mut wire, 1, role::AUTHORIZER, FLAG_KEEP_CONN);
    let mut p = Peer::new(ServerLimits::default());
    p.feed(&wire);
    assert_eq!(
        p.take_events(),
        vec![Ev::Refused(1, Refusal::UnknownRole(role::AUTHORIZER))]
    );
    assert_eq!(
        end_request_status(&p.take_out()[0].2),
        protocol_status::UNKNOWN_ROLE
    );
}

#[test]
fn params_over_the_limit_are_refused_with_431_and_the_body_ignored() {
    let limits = ServerLimits {
        max_params_bytes: 64,
        ..ServerLimits::default()
    };
    let mut p = Peer::new(limits);
    let big = "v".repeat(100);
    let mut wire = begin(1, true);
    wire.extend(params(1, &[("HTTP_X", &big)]));
    wire.extend(stdin(1, b"ignored"));
    wire.extend(stdin(1, &[]));
    p.feed(&wire);
    assert_eq!(
        p.take_events(),
        vec![Ev::Refused(1, Refusal::ParamsTooLarge)]
    );
    assert_eq!(Refusal::ParamsTooLarge.http_status(), Some(431));
    assert_eq!(p.conn.in_flight(), 1, "the caller answers, then ends it");
    p.conn.end(1, p.now, &mut p.out);
    assert!(p.conn.is_idle());
}

#[test]
fn get_values_and_unknown_management_records_are_answered() {
    let limits = ServerLimits {
        max_conns: 10,
        max_reqs: 20,
        ..ServerLimits::default()
    };
    let mut p = Peer::new(limits);
    let mut wire = Vec::new();
    encode_get_values(
        &mut wire,
        &[
            values::MAX_CONNS,
            values::MAX_REQS,
            values::MPXS_CONNS,
            b"OTHER",
        ],
    );
    encode_record(&mut wire, 42, 0, &[]);
    p.feed(&wire);
    let recs = p.take_out();
    assert_eq!(recs[0].0, rtype::GET_VALUES_RESULT);
    let answers: Vec<_> = NvIter::new(&recs[0].2).map(Result::unwrap).collect();
    assert_eq!(
        answers,
        vec![
            (values::MAX_CONNS, &b"10"[..]),
            (values::MAX_REQS, &b"20"[..]),
            (values::MPXS_CONNS, &b"1"[..]),
        ]
    );
    assert_eq!((recs[1].0, recs[1].2[0]), (rtype::UNKNOWN_TYPE, 42));
}

#[test]
fn a_malformed_record_is_an_error() {
    let mut p = Peer::new(ServerLimits::default());
    let mut wire = begin(1, true);
    wire[0] = 9; // version
    assert!(p.feed_in(&wire, 100).is_err());
}

#[test]
fn trickled_head_hits_the_params_timeout_from_begin() {
    let limits = ServerLimits {
        params_timeout: Duration::from_secs(30),
        ..ServerLimits::default()
    };
    let mut p = Peer::new(limits);
    let start = p.now;
    let mut wire = begin(1, true);
    wire.extend(params(1, &[("HTTP_X", "slow")]));
    // One byte every 3 s: each byte is progress, but the head as a whole is bounded, from its
    // first byte (inside BEGIN_REQUEST) to the end of PARAMS.
    for (i, b) in wire.iter().enumerate().take(10) {
        p.now = start + Duration::from_secs(3 * i as u64);
        p.feed_in(&[*b], 1).unwrap();
        assert_eq!(p.conn.expired(p.now), None, "byte {i}");
    }
    let (at, kind) = p.conn.poll_timeout().unwrap();
    assert_eq!(kind, Expired::Head);
    assert_eq!(at, start + Duration::from_secs(30));
    assert_eq!(p.conn.expired(at), Some(Expired::Head));
}

#[test]
fn idle_timeout_only_between_requests() {
    let limits = ServerLimits {
        idle_timeout: Duration::from_secs(75),
        ..ServerLimits::default()
    };
    let mut p = Peer::new(limits);
    let start = p.now;
    assert_eq!(
        p.conn.poll_timeout(),
        Some((start + Duration::from_secs(75), Expired::Idle))
    );
    p.now = start + Duration::from_secs(10);
    p.feed(&request(1, true, b""));
    assert_eq!(p.conn.poll_timeout(), None, "the handler runs: no deadline");
    p.now = start + Duration::from_secs(500);
    assert_eq!(p.conn.expired(p.now), None);
    p.conn.end(1, p.now, &mut p.out);
    assert_eq!(
        p.conn.poll_timeout(),
        Some((p.now + Duration::from_secs(75), Expired::Idle))
    );
}

#[test]
fn a_half_sent_record_hits_the_params_timeout() {
    let mut p = Peer::new(ServerLimits::default());
    let start = p.now;
    p.feed(&request(1, true, b""));
    p.conn.end(1, p.now, &mut p.out);
    let wire = begin(2, true);
    p.feed_in(&wire[..3], 100).unwrap();
    assert_eq!(
        p.conn.poll_timeout(),
        Some((start + Duration::from_secs(30), Expired::Head))
    );
}

#[test]
fn reset_keeps_buffers_and_forgets_requests() {
    let mut p = Peer::new(ServerLimits::default());
    p.feed(&begin(1, true));
    assert_eq!(p.conn.in_flight(), 1);
    p.conn.reset(false, p.now);
    assert!(p.conn.is_idle());
    assert!(!p.conn.wants_close());
}

#[test]
fn a_large_body_response_is_split_into_records() {
    let mut out = Vec::new();
    let body = vec![7u8; 200_000];
    encode_response_head(&mut out, 5, 200, "OK", &Headers::new(), &body);
    let mut pos = 0;
    let mut total = 0;
    while pos < out.len() {
        let Decode::Complete(rec, used) = decode_record(&out[pos..]).unwrap() else {
            panic!()
        };
        assert_eq!(rec.header.request_id, 5);
        total += rec.content.len();
        pos += used;
    }
    assert_eq!(total, b"Status: 200 OK\r\n\r\n".len() + body.len());
}
