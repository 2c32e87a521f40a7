//! The SCGI server connection driven in memory: a web server's raw bytes in, events out, on a
//! virtual clock.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::scgi::{encode_netstring, encode_request, encode_request_with_body};
use crate::Headers;

/// An event with its borrowed bytes copied, so a test can collect them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Request(u16),
    Body(u16, Vec<u8>),
    BodyEnd(u16),
    Refused(u16, Refusal),
    Other,
}

struct Peer {
    conn: ServerConn,
    now: Instant,
    /// Bytes the web server sent that the machine has not used yet.
    pending: Vec<u8>,
    /// What the machine wrote.
    out: Vec<u8>,
    events: Vec<Ev>,
}

impl Peer {
    fn new(limits: ServerLimits) -> Self {
        Self::with(limits, false)
    }

    fn with(limits: ServerLimits, overloaded: bool) -> Self {
        let now = Instant::now();
        Peer {
            conn: ServerConn::new(limits, overloaded, now),
            now,
            pending: Vec::new(),
            out: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Feeds `bytes` in pieces of at most `chunk` bytes, calling the machine until it neither
    /// uses input nor yields an event, as a driver does.
    fn feed_in(&mut self, bytes: &[u8], chunk: usize) -> Result<(), Error> {
        for piece in bytes.chunks(chunk.max(1)) {
            self.pending.extend_from_slice(piece);
            self.drive()?;
        }
        Ok(())
    }

    fn drive(&mut self) -> Result<(), Error> {
        for _ in 0..10_000 {
            let step = self
                .conn
                .handle_input(&self.pending, self.now, &mut self.out)?;
            assert!(step.consumed <= self.pending.len());
            let done = step.consumed == 0 && step.event.is_none();
            if let Some(e) = step.event {
                self.events.push(match e {
                    Event::Request { id } => Ev::Request(id),
                    Event::Body { id, data } => {
                        assert!(!data.is_empty());
                        Ev::Body(id, data.to_vec())
                    }
                    Event::BodyEnd { id } => Ev::BodyEnd(id),
                    Event::Refused { id, reason } => Ev::Refused(id, reason),
                    _ => Ev::Other,
                });
            }
            self.pending.drain(..step.consumed);
            if done {
                return Ok(());
            }
        }
        panic!("the machine keeps yielding events without input");
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.feed_in(bytes, usize::MAX).unwrap()
    }

    /// The events so far, adjacent body pieces merged (how the bytes were split is not theirs
    /// to show).
    fn take_events(&mut self) -> Vec<Ev> {
        let mut merged: Vec<Ev> = Vec::new();
        for e in std::mem::take(&mut self.events) {
            match (merged.last_mut(), e) {
                (Some(Ev::Body(a, prev)), Ev::Body(b, more)) if *a == b => {
                    prev.extend_from_slice(&more)
                }
                (_, e) => merged.push(e),
            }
        }
        merged
    }
}

fn request(body: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    let pairs: [(&[u8], &[u8]); 3] = [
        (b"REQUEST_METHOD", b"POST"),
        (b"REQUEST_URI", b"/upload?x=1"),
        (b"HTTP_HOST", b"example.org"),
    ];
    encode_request_with_body(pairs, body, &mut wire).unwrap();
    wire
}

#[test]
fn a_request_with_a_body_in_any_split_gives_the_same_events() {
    let body = b"hello, world";
    let wire = request(body);
    for chunk in [1, 2, 3, 7, 40, 1000] {
        let mut p = Peer::new(ServerLimits::default());
        p.feed_in(&wire, chunk).unwrap();
        assert_eq!(
            p.take_events(),
            vec![Ev::Request(1), Ev::Body(1, body.to_vec()), Ev::BodyEnd(1)],
            "chunk {chunk}"
        );
        assert!(p.pending.is_empty());
        assert!(p.out.is_empty());
        let vars = p.conn.take_params(1);
        assert_eq!(vars.get(b"CONTENT_LENGTH"), Some(&b"12"[..]));
        assert_eq!(vars.get(b"SCGI"), Some(&b"1"[..]));
        assert_eq!(vars.get(b"REQUEST_URI"), Some(&b"/upload?x=1"[..]));
        assert_eq!(vars.get(b"HTTP_HOST"), Some(&b"example.org"[..]));
        assert!(vars.is_complete());
        let names: Vec<&[u8]> = vars.iter().map(|(n, _)| n).collect();
        assert_eq!(names[0], b"CONTENT_LENGTH", "wire order is kept");
    }
}

#[test]
fn a_request_without_a_body_ends_it_at_once() {
    let wire = request(b"");
    for chunk in [1, 5, 1000] {
        let mut p = Peer::new(ServerLimits::default());
        p.feed_in(&wire, chunk).unwrap();
        assert_eq!(p.take_events(), vec![Ev::Request(1), Ev::BodyEnd(1)]);
    }
}

#[test]
fn body_pieces_are_borrowed_and_stop_at_content_length() {
    let mut wire = request(b"0123456789");
    let head_len = wire.len() - 10;
    wire.extend_from_slice(b"trailing junk");
    let now = Instant::now();
    let mut conn = ServerConn::new(ServerLimits::default(), false, now);
    let mut out = Vec::new();
    let step = conn.handle_input(&wire, now, &mut out).unwrap();
    assert_eq!(step, Step::event(head_len, Event::Request { id: 1 }));
    let rest = &wire[head_len..];
    let step = conn.handle_input(rest, now, &mut out).unwrap();
    assert_eq!(step.consumed, 10);
    let Some(Event::Body { id: 1, data }) = step.event else {
        panic!("{step:?}")
    };
    assert_eq!(data, b"0123456789");
    assert_eq!(data.as_ptr(), rest.as_ptr(), "no copy");
    let rest = &rest[10..];
    let step = conn.handle_input(rest, now, &mut out).unwrap();
    assert_eq!(step, Step::event(0, Event::BodyEnd { id: 1 }));
    // Input after the body is used and ignored.
    let step = conn.handle_input(rest, now, &mut out).unwrap();
    assert_eq!(step, Step::used(rest.len()));
    assert_eq!(conn.handle_input(&[], now, &mut out), Ok(Step::partial()));
}

#[test]
fn the_response_is_a_cgi_head_and_the_raw_body_and_end_closes() {
    let mut p = Peer::new(ServerLimits::default());
    p.feed(&request(b""));
    assert!(!p.conn.wants_close());
    assert!(!p.conn.is_idle());
    assert_eq!(p.conn.in_flight(), 1);
    p.conn.encode_response_head(
        &mut p.out,
        200,
        "OK",
        &[("Content-Type", "text/plain")].into_iter().collect(),
        b"hi",
    );
    p.conn.encode_response_body(&mut p.out, b" there");
    p.conn.end(p.now, &mut p.out);
    assert_eq!(
        p.out,
        b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhi there".to_vec()
    );
    assert!(p.conn.wants_close());
    assert!(p.conn.is_idle());
    assert_eq!(p.conn.in_flight(), 0);
    assert_eq!(p.conn.poll_timeout(), None);
    // A second end writes nothing and changes nothing.
    p.conn.end(p.now, &mut p.out);
    assert!(p.conn.finish(p.now).is_none());
}

#[test]
fn a_response_ended_before_the_body_drops_the_rest() {
    let body = vec![b'x'; 100];
    let wire = request(&body);
    let mut p = Peer::new(ServerLimits::default());
    p.feed(&wire[..wire.len() - 60]);
    assert_eq!(
        p.take_events(),
        vec![Ev::Request(1), Ev::Body(1, vec![b'x'; 40])]
    );
    let vars = p.conn.finish(p.now).unwrap();
    assert!(!vars.is_empty(), "params not taken are handed back");
    assert!(p.conn.wants_close());
    p.feed(&wire[wire.len() - 60..]);
    assert_eq!(p.take_events(), vec![]);
    assert!(p.pending.is_empty());
}

#[test]
fn end_before_a_head_does_nothing() {
    let mut p = Peer::new(ServerLimits::default());
    p.conn.end(p.now, &mut p.out);
    assert!(!p.conn.wants_close());
    assert_eq!(p.conn.in_flight(), 1, "the connection is its request");
    p.feed(&request(b""));
    assert_eq!(p.take_events(), vec![Ev::Request(1), Ev::BodyEnd(1)]);
}

fn netstring(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_netstring(
        pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        &mut out,
    )
    .unwrap();
    out
}

#[test]
fn every_bad_header_block_is_an_error_in_any_split() {
    let limits = ServerLimits {
        max_params_bytes: 64,
        ..ServerLimits::default()
    };
    let mut oversize = Vec::new();
    encode_request(0, [(&b"HTTP_X"[..], &[b'v'; 100][..])], &mut oversize).unwrap();
    let cases: Vec<(&str, Vec<u8>, Error)> = vec![
        (
            "not a length",
            b"GET / HTTP/1.1\r\n".to_vec(),
            Error::InvalidLength,
        ),
        ("colon first", b":,".to_vec(), Error::InvalidLength),
        ("leading zero", b"01:x,".to_vec(), Error::LeadingZero),
        (
            "no comma",
            b"17:CONTENT_LENGTH\x000\x00;".to_vec(),
            Error::MissingComma,
        ),
        ("empty block", b"0:,".to_vec(), Error::EmptyHeaderBlock),
        (
            "content length not first",
            netstring(&[("A", "1"), ("CONTENT_LENGTH", "0")]),
            Error::ContentLengthNotFirst,
        ),
        (
            "unterminated pair",
            b"16:CONTENT_LENGTH\x000,".to_vec(),
            Error::UnterminatedPair,
        ),
        (
            "empty name",
            b"20:CONTENT_LENGTH\x000\x00\x00v\x00,".to_vec(),
            Error::EmptyName,
        ),
        (
            "bad content length",
            netstring(&[("CONTENT_LENGTH", "-1")]),
            Error::InvalidContentLength,
        ),
        (
            "duplicate content length",
            netstring(&[("CONTENT_LENGTH", "0"), ("CONTENT_LENGTH", "0")]),
            Error::DuplicateContentLength,
        ),
        (
            "bad version",
            netstring(&[("CONTENT_LENGTH", "0"), ("SCGI", "2")]),
            Error::UnsupportedVersion,
        ),
        (
            "oversize block",
            oversize,
            Error::HeaderBlockTooLarge { max: 64 },
        ),
        (
            "oversize length prefix",
            b"99999999999999999999999999:".to_vec(),
            Error::HeaderBlockTooLarge { max: 64 },
        ),
    ];
    for (what, wire, expected) in cases {
        for chunk in [1, 2, 1000] {
            let mut p = Peer::new(limits);
            assert_eq!(
                p.feed_in(&wire, chunk),
                Err(expected),
                "{what}, chunk {chunk}"
            );
            assert_eq!(p.take_events(), vec![], "{what}");
            assert!(p.out.is_empty());
        }
    }
}

#[test]
fn the_oversize_block_is_refused_on_its_length_prefix() {
    let limits = ServerLimits {
        max_params_bytes: 64,
        ..ServerLimits::default()
    };
    let now = Instant::now();
    let mut conn = ServerConn::new(limits, false, now);
    assert_eq!(
        conn.handle_input(b"65", now, &mut Vec::new()),
        Err(Error::HeaderBlockTooLarge { max: 64 })
    );
    let mut conn = ServerConn::new(limits, false, now);
    assert_eq!(
        conn.handle_input(b"64", now, &mut Vec::new()),
        Ok(Step::partial())
    );
}

#[test]
fn an_overloaded_connection_refuses_with_503_and_drops_the_body() {
    let mut p = Peer::with(ServerLimits::default(), true);
    p.feed_in(&request(b"some body"), 3).unwrap();
    assert_eq!(p.take_events(), vec![Ev::Refused(1, Refusal::Unavailable)]);
    assert_eq!(Refusal::Unavailable.http_status(), Some(503));
    assert!(p.pending.is_empty());
    assert!(p.out.is_empty(), "the caller answers");
    assert!(p.conn.take_params(1).is_empty());
    assert!(!p.conn.wants_close());
    p.conn
        .encode_response_head(&mut p.out, 503, "Service Unavailable", &Headers::new(), b"");
    p.conn.end(p.now, &mut p.out);
    assert!(p.conn.wants_close());
}

#[test]
fn the_params_timeout_runs_from_the_accept_until_the_head_is_complete() {
    let limits = ServerLimits {
        params_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(75),
        ..ServerLimits::default()
    };
    let mut p = Peer::new(limits);
    let start = p.now;
    assert_eq!(
        p.conn.poll_timeout(),
        Some((start + Duration::from_secs(30), Expired::Head)),
        "no idle time before the request: the connection is the request"
    );
    let wire = request(b"abc");
    let head_len = wire.len() - 3;
    // Trickled one byte every 2 s: progress does not extend the deadline.
    for (i, b) in wire[..head_len - 1].iter().enumerate().take(14) {
        p.now = start + Duration::from_secs(2 * i as u64);
        p.feed_in(&[*b], 1).unwrap();
        assert_eq!(p.conn.expired(p.now), None, "byte {i}");
    }
    assert_eq!(
        p.conn.expired(start + Duration::from_secs(30)),
        Some(Expired::Head)
    );
    // Once the head is complete, no deadline: the body and the handler take their time.
    let mut p = Peer::new(limits);
    p.feed(&wire[..head_len + 1]);
    assert_eq!(
        p.take_events(),
        vec![Ev::Request(1), Ev::Body(1, b"a".to_vec())]
    );
    assert_eq!(p.conn.poll_timeout(), None);
    assert_eq!(p.conn.expired(start + Duration::from_secs(3600)), None);
}

#[test]
fn reset_serves_a_new_connection_with_the_same_buffers() {
    let mut p = Peer::new(ServerLimits::default());
    p.feed(&request(b"one"));
    p.take_events();
    let vars = p.conn.take_params(1);
    assert_eq!(p.conn.take_params(2).len(), 0);
    p.conn.recycle_params(vars);
    p.conn.end(p.now, &mut p.out);
    assert!(p.conn.wants_close());
    p.now += Duration::from_secs(5);
    p.conn.reset(false, p.now);
    assert!(!p.conn.wants_close());
    assert_eq!(
        p.conn.poll_timeout(),
        Some((p.now + Duration::from_secs(30), Expired::Head))
    );
    p.feed(&request(b"two"));
    assert_eq!(
        p.take_events(),
        vec![Ev::Request(1), Ev::Body(1, b"two".to_vec()), Ev::BodyEnd(1)]
    );
    assert_eq!(
        p.conn.take_params(1).get(b"CONTENT_LENGTH"),
        Some(&b"3"[..])
    );
}

proptest! {
    /// Arbitrary bytes (alone, or after a valid head) in arbitrary splits: no panic, `consumed`
    /// never past the input, and a bounded number of events per call.
    #[test]
    fn arbitrary_input_in_arbitrary_splits_never_panics(
        prefix in any::<bool>(),
        tail in proptest::collection::vec(any::<u8>(), 0..200),
        cuts in proptest::collection::vec(1usize..40, 1..20),
        end_at in proptest::option::of(0usize..20),
        limit in 1usize..300,
    ) {
        let mut wire = if prefix { request(b"0123456789") } else { Vec::new() };
        wire.extend_from_slice(&tail);
        let limits = ServerLimits { max_params_bytes: limit, ..ServerLimits::default() };
        let mut p = Peer::new(limits);
        let mut at = 0;
        for (i, n) in cuts.iter().cycle().take(400).enumerate() {
            if at >= wire.len() {
                break;
            }
            let n = (*n).min(wire.len() - at);
            if p.feed_in(&wire[at..at + n], n).is_err() {
                break;
            }
            at += n;
            if end_at == Some(i) {
                p.conn.end(p.now, &mut p.out);
                prop_assert!(p.conn.wants_close() || p.conn.poll_timeout().is_some());
            }
        }
        let _ = p.conn.poll_timeout();
    }
}
