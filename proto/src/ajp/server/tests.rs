//! The AJP13 server connection driven in memory: a web server's raw packets in, events and the
//! machine's own packets out, on a virtual clock.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::ajp::{
    decode_container_packet, encode_body_chunk, encode_body_end, encode_cping,
    encode_forward_request, encode_shutdown, first_body_packet, Attribute, BodySender,
    ContainerPacket, RequestHead,
};
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

/// A packet the machine wrote, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Headers(u16, Vec<(Vec<u8>, Vec<u8>)>),
    Body(Vec<u8>),
    End(bool),
    GetBodyChunk(u16),
    Cpong,
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
    fn new(limits: ServerLimits, options: ServerOptions) -> Self {
        Self::with(limits, options, false)
    }

    fn default() -> Self {
        Self::new(ServerLimits::default(), ServerOptions::default())
    }

    fn with(limits: ServerLimits, options: ServerOptions, overloaded: bool) -> Self {
        let now = Instant::now();
        Peer {
            conn: ServerConn::new(limits, options, overloaded, now),
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

    fn take_events(&mut self) -> Vec<Ev> {
        std::mem::take(&mut self.events)
    }

    /// Packets the machine wrote.
    fn take_out(&mut self) -> Vec<Out> {
        let size = self.conn.packet_size();
        let mut packets = Vec::new();
        let mut pos = 0;
        while pos < self.out.len() {
            let Status::Complete((p, used)) =
                decode_container_packet(&self.out[pos..], size).unwrap()
            else {
                panic!("partial packet in output")
            };
            packets.push(match p {
                ContainerPacket::SendHeaders(h) => Out::Headers(
                    h.status(),
                    h.headers().map(|(n, v)| (n.to_vec(), v.to_vec())).collect(),
                ),
                ContainerPacket::SendBodyChunk(d) => Out::Body(d.to_vec()),
                ContainerPacket::EndResponse { reuse } => Out::End(reuse),
                ContainerPacket::GetBodyChunk(n) => Out::GetBodyChunk(n),
                ContainerPacket::Cpong => Out::Cpong,
            });
            pos += used;
        }
        self.out.clear();
        packets
    }
}

fn forward(
    method: &str,
    headers: &[(&[u8], &[u8])],
    attributes: &[Attribute<'_>],
    size: PacketSize,
) -> Vec<u8> {
    let head = RequestHead {
        method: method.as_bytes(),
        protocol: Some(b"HTTP/1.1"),
        req_uri: Some(b"/app/x"),
        remote_addr: Some(b"10.0.0.1"),
        remote_host: None,
        server_name: Some(b"example.org"),
        server_port: 443,
        is_ssl: true,
        headers,
        attributes,
    };
    let mut out = Vec::new();
    encode_forward_request(&head, size, &mut out).unwrap();
    out
}

fn get() -> Vec<u8> {
    forward(
        "GET",
        &[(b"Host", b"example.org")],
        &[Attribute::QueryString(Some(b"a=1"))],
        PacketSize::DEFAULT,
    )
}

/// A POST with Content-Length and its first body packet, sent unasked.
fn post(body: &[u8], size: PacketSize) -> (Vec<u8>, BodySender) {
    let len = body.len().to_string();
    let mut wire = forward("POST", &[(b"Content-Length", len.as_bytes())], &[], size);
    let sent = first_body_packet(body, size, &mut wire);
    (wire, BodySender::new(sent, size))
}

#[test]
fn a_get_in_any_split_gives_the_same_events() {
    let wire = get();
    for chunk in [1, 2, 5, 17, 1000] {
        let mut p = Peer::default();
        p.feed_in(&wire, chunk).unwrap();
        assert_eq!(
            p.take_events(),
            vec![Ev::Request(1), Ev::BodyEnd(1)],
            "chunk {chunk}"
        );
        assert!(p.out.is_empty(), "nothing asked for");
        let vars = p.conn.take_params(1);
        assert_eq!(vars.get(b"REQUEST_METHOD"), Some(&b"GET"[..]));
        assert_eq!(vars.get(b"REQUEST_URI"), Some(&b"/app/x?a=1"[..]));
        assert_eq!(vars.get(b"QUERY_STRING"), Some(&b"a=1"[..]));
        assert_eq!(vars.get(b"HTTPS"), Some(&b"on"[..]));
        assert_eq!(vars.get(b"HTTP_HOST"), Some(&b"example.org"[..]));
        assert!(vars.is_complete());
    }
}

#[test]
fn params_are_what_for_each_cgi_var_makes_with_the_options() {
    let wire = forward(
        "GET",
        &[],
        &[Attribute::RemoteUser(Some(b"alice"))],
        PacketSize::DEFAULT,
    );
    let options = ServerOptions {
        cgi: CgiOptions {
            trust_remote_user: true,
        },
        ..ServerOptions::default()
    };
    let mut p = Peer::new(ServerLimits::default(), options);
    p.feed(&wire);
    let vars = p.conn.take_params(1);
    assert_eq!(vars.get(b"REMOTE_USER"), Some(&b"alice"[..]));
    let Status::Complete((ServerPacket::ForwardRequest(fr), _)) =
        decode_server_packet(&wire, PacketSize::DEFAULT).unwrap()
    else {
        panic!()
    };
    let mut expected = Vec::new();
    fr.for_each_cgi_var(&options_cgi(), &mut Vec::new(), |n, v| {
        expected.push((n.to_vec(), v.to_vec()))
    });
    let got: Vec<_> = vars.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
    assert_eq!(got, expected);
}

fn options_cgi() -> CgiOptions {
    CgiOptions {
        trust_remote_user: true,
    }
}

#[test]
fn a_post_whose_body_fits_the_first_packet_asks_for_nothing() {
    let (wire, _) = post(b"name=value", PacketSize::DEFAULT);
    for chunk in [1, 3, 1000] {
        let mut p = Peer::default();
        p.feed_in(&wire, chunk).unwrap();
        assert_eq!(
            p.take_events(),
            vec![
                Ev::Request(1),
                Ev::Body(1, b"name=value".to_vec()),
                Ev::BodyEnd(1)
            ]
        );
        assert!(!p.conn.wants_body());
        assert!(!p.conn.want_body(&mut p.out));
        assert!(p.out.is_empty());
        assert_eq!(
            p.conn.take_params(1).get(b"CONTENT_LENGTH"),
            Some(&b"10"[..])
        );
    }
}

#[test]
fn a_large_body_is_asked_for_packet_by_packet_only_when_wanted() {
    let size = PacketSize::DEFAULT;
    let body: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
    let (wire, mut sender) = post(&body, size);
    let mut p = Peer::default();
    p.feed(&wire);
    assert_eq!(
        p.take_events(),
        vec![Ev::Request(1), Ev::Body(1, body[..8186].to_vec())]
    );
    // Nothing is asked for until the caller has room.
    assert!(p.out.is_empty());
    assert!(p.conn.wants_body());
    let mut got = body[..8186].to_vec();
    let mut asked = Vec::new();
    loop {
        assert!(p.conn.want_body(&mut p.out));
        assert!(!p.conn.wants_body());
        assert!(!p.conn.want_body(&mut p.out), "asked once");
        let [Out::GetBodyChunk(n)] = p.take_out()[..] else {
            panic!()
        };
        asked.push(n);
        let mut answer = Vec::new();
        sender.answer(&body, n, &mut answer);
        p.feed_in(&answer, 100).unwrap();
        let events = p.take_events();
        let Ev::Body(1, data) = &events[0] else {
            panic!("{events:?}")
        };
        got.extend_from_slice(data);
        if events.len() == 2 {
            assert_eq!(events[1], Ev::BodyEnd(1));
            break;
        }
        assert_eq!(events.len(), 1);
    }
    assert_eq!(got, body);
    assert_eq!(
        asked,
        vec![8186, 20_000 - 2 * 8186],
        "the last ask is what is left"
    );
    assert!(p.out.is_empty(), "nothing more is asked for");
    p.conn.end(p.now, &mut p.out);
    assert_eq!(p.take_out(), vec![Out::End(true)]);
    assert!(p.conn.is_idle());
}

#[test]
fn a_chunked_body_is_asked_for_at_once_and_ends_with_an_empty_packet() {
    let wire = forward(
        "POST",
        &[(b"Transfer-Encoding", b"chunked")],
        &[],
        PacketSize::DEFAULT,
    );
    let mut p = Peer::default();
    p.feed(&wire);
    assert_eq!(p.take_events(), vec![Ev::Request(1)]);
    assert_eq!(p.take_out(), vec![Out::GetBodyChunk(8186)]);
    let mut answer = Vec::new();
    encode_body_chunk(b"part one", 8186, PacketSize::DEFAULT, &mut answer);
    p.feed(&answer);
    assert_eq!(p.take_events(), vec![Ev::Body(1, b"part one".to_vec())]);
    assert!(p.conn.want_body(&mut p.out));
    assert_eq!(p.take_out(), vec![Out::GetBodyChunk(8186)]);
    let mut answer = Vec::new();
    encode_body_chunk(b"", 8186, PacketSize::DEFAULT, &mut answer);
    p.feed(&answer);
    assert_eq!(p.take_events(), vec![Ev::BodyEnd(1)]);
    // lighttpd's short end packet works too.
    p.conn.end(p.now, &mut p.out);
    p.take_out();
    p.feed(&wire);
    p.take_out();
    let mut end = Vec::new();
    encode_body_end(&mut end);
    p.feed(&end);
    assert_eq!(p.take_events(), vec![Ev::Request(1), Ev::BodyEnd(1)]);
}

#[test]
fn several_requests_and_cpings_share_one_connection() {
    let mut p = Peer::default();
    let mut wire = Vec::new();
    encode_cping(&mut wire);
    encode_shutdown(&mut wire);
    encode_body_end(&mut wire);
    wire.extend(get());
    p.feed_in(&wire, 3).unwrap();
    assert_eq!(p.take_events(), vec![Ev::Request(1), Ev::BodyEnd(1)]);
    assert_eq!(p.take_out(), vec![Out::Cpong]);
    p.conn
        .encode_response_head(
            &mut p.out,
            200,
            "OK",
            &[("Content-Type", "text/plain")].into_iter().collect(),
            b"hi",
        )
        .unwrap();
    p.conn.end(p.now, &mut p.out);
    assert_eq!(
        p.take_out(),
        vec![
            Out::Headers(
                200,
                vec![(b"Content-Type".to_vec(), b"text/plain".to_vec())]
            ),
            Out::Body(b"hi".to_vec()),
            Out::End(true),
        ]
    );
    assert!(p.conn.is_idle());
    assert!(!p.conn.wants_close());
    for round in 0..3 {
        let mut wire = Vec::new();
        encode_cping(&mut wire);
        let (post, _) = post(format!("body {round}").as_bytes(), PacketSize::DEFAULT);
        wire.extend(post);
        p.feed(&wire);
        assert_eq!(
            p.take_events(),
            vec![
                Ev::Request(1),
                Ev::Body(1, format!("body {round}").into_bytes()),
                Ev::BodyEnd(1)
            ]
        );
        assert_eq!(p.conn.in_flight(), 1);
        let vars = p.conn.take_params(1);
        p.conn.recycle_params(vars);
        p.conn.end(p.now, &mut p.out);
        assert_eq!(p.take_out(), vec![Out::Cpong, Out::End(true)]);
        assert_eq!(p.conn.in_flight(), 0);
    }
}

#[test]
fn input_waits_while_a_request_runs() {
    let mut p = Peer::default();
    p.feed(&get());
    p.take_events();
    let mut cping = Vec::new();
    encode_cping(&mut cping);
    p.feed(&cping);
    assert_eq!(p.pending, cping, "left for after the response");
    assert!(p.out.is_empty());
    p.conn.end(p.now, &mut p.out);
    p.drive().unwrap();
    assert!(p.pending.is_empty());
    assert_eq!(p.take_out(), vec![Out::End(true), Out::Cpong]);
}

#[test]
fn a_response_ended_while_a_packet_is_due_reads_and_drops_it() {
    let body = vec![1u8; 10_000];
    let (wire, mut sender) = post(&body, PacketSize::DEFAULT);
    let mut p = Peer::default();
    p.feed(&wire);
    p.take_events();
    assert!(p.conn.want_body(&mut p.out));
    let [Out::GetBodyChunk(n)] = p.take_out()[..] else {
        panic!()
    };
    // The handler answers without reading the rest.
    p.conn.end(p.now, &mut p.out);
    assert_eq!(p.take_out(), vec![Out::End(true)]);
    assert_eq!(p.conn.in_flight(), 1, "the asked-for packet is still due");
    let limits = ServerLimits::default();
    assert_eq!(
        p.conn.poll_timeout(),
        Some((p.now + limits.params_timeout, Expired::Head)),
        "it must come within the params timeout"
    );
    let mut answer = Vec::new();
    sender.answer(&body, n, &mut answer);
    answer.extend(get());
    p.feed(&answer);
    assert_eq!(
        p.take_events(),
        vec![Ev::Request(1), Ev::BodyEnd(1)],
        "the packet is dropped, the next request served"
    );
    assert!(p.out.is_empty(), "nothing more asked for");
}

/// Found by fuzzing (`ajp_conn`): a POST answered before its unasked first body packet came
/// waited for that packet with no deadline, so a peer that never sent it held the connection
/// forever.
#[test]
fn a_body_packet_that_never_comes_after_the_response_times_out() {
    let (wire, _) = post(b"hello", PacketSize::DEFAULT);
    let len = usize::from(u16::from_be_bytes([wire[2], wire[3]])) + 4;
    let mut p = Peer::default();
    p.feed(&wire[..len]);
    assert_eq!(p.take_events(), vec![Ev::Request(1)]);
    p.conn.end(p.now, &mut p.out);
    assert_eq!(p.conn.in_flight(), 1, "the first body packet is still due");
    let later = p.now + ServerLimits::default().params_timeout;
    assert_eq!(p.conn.expired(later - Duration::from_millis(1)), None);
    assert_eq!(p.conn.expired(later), Some(Expired::Head));
    // When it comes, it is dropped and the idle timer runs again.
    p.feed(&wire[len..]);
    assert!(p.conn.is_idle());
    assert_eq!(
        p.conn.poll_timeout(),
        Some((p.now + ServerLimits::default().idle_timeout, Expired::Idle))
    );
}

#[test]
fn a_response_ended_before_asking_asks_for_nothing() {
    let body = vec![1u8; 10_000];
    let (wire, _) = post(&body, PacketSize::DEFAULT);
    let mut p = Peer::default();
    p.feed(&wire);
    assert!(p.conn.wants_body());
    p.conn.end(p.now, &mut p.out);
    assert!(!p.conn.wants_body());
    assert!(!p.conn.want_body(&mut p.out));
    assert_eq!(p.take_out(), vec![Out::End(true)]);
    assert!(p.conn.is_idle());
    p.feed(&get());
    assert_eq!(
        p.take_events(),
        vec![
            Ev::Request(1),
            Ev::Body(1, body[..8186].to_vec()),
            Ev::Request(1),
            Ev::BodyEnd(1)
        ]
    );
}

#[test]
fn malformed_packets_are_errors() {
    let mut too_big = vec![0x12, 0x34, 0x1f, 0xfd];
    too_big.resize(8193, 0);
    let cases: Vec<(&str, Vec<u8>, Error)> = vec![
        (
            "http",
            b"GET / HTTP/1.1\r\n".to_vec(),
            Error::BadMagic { found: *b"GE" },
        ),
        (
            "container magic",
            b"AB\x00\x01\x09".to_vec(),
            Error::BadMagic { found: *b"AB" },
        ),
        (
            "oversize",
            too_big,
            Error::PacketTooLarge {
                len: 8189,
                max: 8188,
            },
        ),
        (
            "unknown type",
            b"\x12\x34\x00\x01\x03".to_vec(),
            Error::UnknownPacketType(3),
        ),
        (
            "old ping",
            b"\x12\x34\x00\x01\x08".to_vec(),
            Error::UnknownPacketType(8),
        ),
        (
            "cping with bytes",
            b"\x12\x34\x00\x02\x0a\x00".to_vec(),
            Error::TrailingBytes { count: 1 },
        ),
        (
            "truncated forward request",
            b"\x12\x34\x00\x02\x02\x02".to_vec(),
            Error::Truncated { field: "protocol" },
        ),
    ];
    for (what, wire, expected) in cases {
        for chunk in [1, 3, 10_000] {
            let mut p = Peer::default();
            let got = p.feed_in(&wire, chunk).unwrap_err();
            // A bad magic is refused on its first byte: the second may not be there yet.
            assert_eq!(
                std::mem::discriminant(&got),
                std::mem::discriminant(&expected),
                "{what}, chunk {chunk}"
            );
            if chunk > wire.len() {
                assert_eq!(got, expected, "{what}");
            }
            assert_eq!(p.take_events(), vec![]);
        }
    }
    // In a body too.
    let (wire, _) = post(&[5u8; 9000], PacketSize::DEFAULT);
    let mut p = Peer::default();
    p.feed(&wire);
    assert!(p.conn.want_body(&mut p.out));
    assert_eq!(
        p.feed_in(b"AB\x00\x00", 4),
        Err(Error::BadMagic { found: *b"AB" })
    );
}

#[test]
fn the_packet_size_option_bounds_packets_and_asks() {
    let size = PacketSize::new(65536).unwrap();
    let options = ServerOptions {
        packet_size: size,
        ..ServerOptions::default()
    };
    let body = vec![9u8; 100_000];
    let (wire, _) = post(&body, size);
    let mut p = Peer::new(ServerLimits::default(), options);
    p.feed(&wire);
    assert_eq!(
        p.take_events(),
        vec![Ev::Request(1), Ev::Body(1, body[..65530].to_vec())]
    );
    assert!(p.conn.want_body(&mut p.out));
    assert_eq!(p.take_out(), vec![Out::GetBodyChunk(34_470)]);
    // The default size refuses that first packet.
    let mut p = Peer::default();
    let forward_len = wire.len() - 65536;
    assert_eq!(
        p.feed_in(&wire, 70_000),
        Err(Error::PacketTooLarge {
            len: 65532,
            max: 8188
        })
    );
    assert_eq!(p.take_events(), vec![Ev::Request(1)]);
    assert_eq!(p.pending.len(), wire.len() - forward_len);
    // A large response is split by the packet size.
    let mut out = Vec::new();
    encode_response_head(&mut out, size, 200, "OK", &Headers::new(), &body).unwrap();
    let mut p = Peer::new(
        ServerLimits::default(),
        ServerOptions {
            packet_size: size,
            ..ServerOptions::default()
        },
    );
    p.out = out;
    let packets = p.take_out();
    assert_eq!(packets.len(), 3);
    assert_eq!(packets[1], Out::Body(body[..65528].to_vec()));
}

#[test]
fn a_head_too_large_for_a_packet_becomes_a_500() {
    let big: Headers = [("X-Big", "v".repeat(9000).as_str())].into_iter().collect();
    let mut p = Peer::default();
    p.feed(&get());
    let r = p
        .conn
        .encode_response_head(&mut p.out, 200, "OK", &big, b"body");
    assert!(matches!(r, Err(EncodeError::PacketTooLarge { .. })));
    assert_eq!(
        p.take_out(),
        vec![Out::Headers(500, vec![]), Out::Body(b"body".to_vec())]
    );
}

fn secret_options(secret: &[u8]) -> ServerOptions {
    ServerOptions {
        secret: Some(Arc::from(secret)),
        ..ServerOptions::default()
    }
}

#[test]
fn a_request_without_the_secret_is_refused_with_403() {
    let size = PacketSize::DEFAULT;
    let mut p = Peer::new(ServerLimits::default(), secret_options(b"s3cret"));
    for attributes in [
        &[][..],
        &[Attribute::Secret(Some(b"wrong!"))][..],
        &[Attribute::Secret(None)][..],
    ] {
        p.feed(&forward("GET", &[], attributes, size));
        assert_eq!(p.take_events(), vec![Ev::Refused(1, Refusal::BadSecret)]);
        assert_eq!(Refusal::BadSecret.http_status(), Some(403));
        assert!(p.conn.take_params(1).is_empty());
        p.conn
            .encode_response_head(&mut p.out, 403, "Forbidden", &Headers::new(), b"")
            .unwrap();
        p.conn.end(p.now, &mut p.out);
        assert_eq!(p.take_out().last(), Some(&Out::End(true)));
        assert!(!p.conn.wants_close(), "a bad secret does not close");
    }
    // A refused request's first body packet is read and dropped; nothing more is asked for.
    let mut wire = forward(
        "POST",
        &[(b"Content-Length", b"20000")],
        &[Attribute::Secret(Some(b"nope"))],
        size,
    );
    first_body_packet(&[0u8; 20_000], size, &mut wire);
    p.feed(&wire);
    assert_eq!(p.take_events(), vec![Ev::Refused(1, Refusal::BadSecret)]);
    assert!(!p.conn.wants_body());
    assert!(p.out.is_empty());
    p.conn.end(p.now, &mut p.out);
    assert!(p.conn.is_idle());
    // A chunked refused request asks for nothing either.
    p.take_out();
    p.feed(&forward(
        "POST",
        &[(b"Transfer-Encoding", b"chunked")],
        &[],
        size,
    ));
    assert_eq!(p.take_events(), vec![Ev::Refused(1, Refusal::BadSecret)]);
    assert!(p.out.is_empty());
    p.conn.end(p.now, &mut p.out);
    // The right secret passes.
    p.take_out();
    p.feed(&forward(
        "GET",
        &[],
        &[Attribute::Secret(Some(b"s3cret"))],
        size,
    ));
    assert_eq!(p.take_events(), vec![Ev::Request(1), Ev::BodyEnd(1)]);
}

#[test]
fn an_overloaded_connection_refuses_with_503_then_closes() {
    let mut p = Peer::with(ServerLimits::default(), ServerOptions::default(), true);
    let mut cping = Vec::new();
    encode_cping(&mut cping);
    p.feed(&cping);
    assert_eq!(p.take_out(), vec![Out::Cpong]);
    p.feed(&get());
    assert_eq!(p.take_events(), vec![Ev::Refused(1, Refusal::Unavailable)]);
    assert!(!p.conn.wants_close(), "the caller answers first");
    p.conn.end(p.now, &mut p.out);
    assert!(p.conn.wants_close());
    // The secret is checked first.
    let mut p = Peer::with(ServerLimits::default(), secret_options(b"k"), true);
    p.feed(&get());
    assert_eq!(p.take_events(), vec![Ev::Refused(1, Refusal::BadSecret)]);
    p.conn.end(p.now, &mut p.out);
    assert!(!p.conn.wants_close());
}

#[test]
fn idle_timeout_between_requests_and_none_while_one_runs() {
    let limits = ServerLimits {
        idle_timeout: Duration::from_secs(75),
        params_timeout: Duration::from_secs(30),
        ..ServerLimits::default()
    };
    let mut p = Peer::new(limits, ServerOptions::default());
    let start = p.now;
    assert_eq!(
        p.conn.poll_timeout(),
        Some((start + Duration::from_secs(75), Expired::Idle))
    );
    // A CPING keeps the connection alive.
    p.now = start + Duration::from_secs(60);
    let mut cping = Vec::new();
    encode_cping(&mut cping);
    p.feed(&cping);
    assert_eq!(
        p.conn.poll_timeout(),
        Some((p.now + Duration::from_secs(75), Expired::Idle))
    );
    p.feed(&get());
    assert_eq!(p.conn.poll_timeout(), None, "the handler runs");
    p.now = start + Duration::from_secs(1000);
    assert_eq!(p.conn.expired(p.now), None);
    p.conn.end(p.now, &mut p.out);
    assert_eq!(
        p.conn.poll_timeout(),
        Some((p.now + Duration::from_secs(75), Expired::Idle)),
        "from the end of the request"
    );
    assert_eq!(
        p.conn.expired(p.now + Duration::from_secs(75)),
        Some(Expired::Idle)
    );
}

#[test]
fn a_trickled_packet_hits_the_params_timeout_from_its_first_byte() {
    let limits = ServerLimits {
        params_timeout: Duration::from_secs(30),
        ..ServerLimits::default()
    };
    let mut p = Peer::new(limits, ServerOptions::default());
    let start = p.now;
    let wire = get();
    for (i, b) in wire.iter().enumerate().take(14) {
        p.now = start + Duration::from_secs(2 * i as u64);
        p.feed_in(&[*b], 1).unwrap();
        assert_eq!(p.conn.expired(p.now), None, "byte {i}");
    }
    assert_eq!(
        p.conn.poll_timeout(),
        Some((start + Duration::from_secs(30), Expired::Head))
    );
    // A body packet left half-sent, too.
    let (wire, _) = post(&[3u8; 100], PacketSize::DEFAULT);
    let mut p = Peer::new(limits, ServerOptions::default());
    p.feed(&wire[..wire.len() - 10]);
    assert_eq!(p.take_events(), vec![Ev::Request(1)]);
    assert_eq!(
        p.conn.poll_timeout(),
        Some((p.now + Duration::from_secs(30), Expired::Head))
    );
    p.feed(&wire[wire.len() - 10..]);
    assert_eq!(p.conn.poll_timeout(), None);
    // Input waiting for a running request, as the old driver did.
    let mut cping = Vec::new();
    encode_cping(&mut cping);
    p.feed(&cping);
    assert_eq!(
        p.conn.poll_timeout(),
        Some((p.now + Duration::from_secs(30), Expired::Head))
    );
}

#[test]
fn reset_forgets_the_request_and_keeps_the_options() {
    let mut p = Peer::with(ServerLimits::default(), secret_options(b"k"), true);
    p.feed(&forward(
        "GET",
        &[],
        &[Attribute::Secret(Some(b"k"))],
        PacketSize::DEFAULT,
    ));
    assert_eq!(p.take_events(), vec![Ev::Refused(1, Refusal::Unavailable)]);
    p.conn.reset(false, p.now);
    assert!(p.conn.is_idle());
    assert!(!p.conn.wants_close());
    p.feed(&forward(
        "GET",
        &[],
        &[Attribute::Secret(Some(b"k"))],
        PacketSize::DEFAULT,
    ));
    assert_eq!(p.take_events(), vec![Ev::Request(1), Ev::BodyEnd(1)]);
    assert_eq!(p.conn.take_params(2).len(), 0);
    assert!(!p.conn.take_params(1).is_empty());
}

proptest! {
    /// Arbitrary bytes (alone, or after valid packets) in arbitrary splits, with the caller
    /// asking for body and ending responses at arbitrary points: no panic, `consumed` never past
    /// the input, and a bounded number of events per call.
    #[test]
    fn arbitrary_input_in_arbitrary_splits_never_panics(
        prefix in 0u8..4,
        tail in proptest::collection::vec(any::<u8>(), 0..200),
        cuts in proptest::collection::vec(1usize..40, 1..20),
        actions in proptest::collection::vec(0u8..4, 1..20),
        secret in any::<bool>(),
    ) {
        let size = PacketSize::new(1024).unwrap();
        let mut wire = Vec::new();
        match prefix {
            1 => wire.extend(forward("GET", &[], &[], size)),
            2 => wire.extend(post(&[7u8; 3000], size).0),
            3 => wire.extend(forward("PUT", &[(b"Transfer-Encoding", b"chunked")], &[], size)),
            _ => {}
        }
        wire.extend_from_slice(&tail);
        let options = ServerOptions {
            packet_size: size,
            secret: secret.then(|| Arc::from(&b"k"[..])),
            ..ServerOptions::default()
        };
        let mut p = Peer::new(ServerLimits::default(), options);
        let mut at = 0;
        for (n, action) in cuts.iter().cycle().zip(actions.iter().cycle()).take(400) {
            if at >= wire.len() {
                break;
            }
            let n = (*n).min(wire.len() - at);
            if p.feed_in(&wire[at..at + n], n).is_err() {
                break;
            }
            at += n;
            match action {
                1 => { p.conn.want_body(&mut p.out); }
                2 => p.conn.end(p.now, &mut p.out),
                3 => { let _ = p.conn.finish(p.now); }
                _ => {}
            }
            if p.drive().is_err() {
                break;
            }
        }
        let _ = p.conn.poll_timeout();
        // Whatever the machine wrote is well-formed.
        p.take_out();
    }
}
