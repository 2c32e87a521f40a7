//! Property tests of the FastCGI codec, through its public API only.
//!
//! - records of every type (known and unknown), any request id, content 0-65535 bytes and any
//!   padding 0-255, written by an encoder local to this file, decode back to the same records
//!   whatever the points where the byte stream is cut;
//! - name-value pairs with 1- and 4-byte lengths, split across PARAMS records anywhere, come out
//!   of [`Params`] whole and in order;
//! - arbitrary bytes never make a decoder panic or claim more input than it was given;
//! - a request written by [`encode_request`] decodes into its records, its pairs and its body.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::SizeRange;
use proto::fcgi::{
    decode_record, encode_nv, encode_record, encode_request, nv_len, role, rtype, BeginRequest,
    Decode, NvIter, Params, ParamsError, RecordHeader, RequestSpec, HEADER_LEN, MAX_CONTENT_LEN,
};

/// A record as the test expects it back: header fields and content, padding dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    header: RecordHeader,
    content: Vec<u8>,
}

/// A record to write: [`Rec`] plus what the wire carries but the decoder must ignore.
#[derive(Debug, Clone)]
struct WireRec {
    rec: Rec,
    /// The value of every padding byte.
    pad_byte: u8,
    /// The header's reserved byte.
    reserved: u8,
}

/// Writes a record with exactly the padding asked for (`encode_record` always pads to 8).
fn write_record(out: &mut Vec<u8>, w: &WireRec) {
    let h = w.rec.header;
    assert_eq!(usize::from(h.content_length), w.rec.content.len());
    let id = h.request_id.to_be_bytes();
    let len = h.content_length.to_be_bytes();
    out.extend_from_slice(&[
        1,
        h.rtype,
        id[0],
        id[1],
        len[0],
        len[1],
        h.padding_length,
        w.reserved,
    ]);
    out.extend_from_slice(&w.rec.content);
    out.resize(out.len() + usize::from(h.padding_length), w.pad_byte);
}

/// A streaming decoder as a connection driver would run it: bytes arrive in `pieces`, are
/// appended to a buffer, and complete records are taken from its front; `Partial` waits for more.
fn decode_pieces(pieces: &[&[u8]]) -> Vec<Rec> {
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        let mut pos = 0;
        loop {
            let avail = &buf[pos..];
            match decode_record(avail) {
                Ok(Decode::Complete(r, used)) => {
                    assert!(used <= avail.len(), "used {used} of {} bytes", avail.len());
                    assert_eq!(used, r.header.record_len());
                    assert_eq!(r.content, &avail[HEADER_LEN..HEADER_LEN + r.content.len()]);
                    out.push(Rec {
                        header: r.header,
                        content: r.content.to_vec(),
                    });
                    pos += used;
                }
                Ok(Decode::Partial) => {
                    // Partial must really mean "the record is not all here".
                    if let Some(h) = avail.first_chunk::<HEADER_LEN>() {
                        let h = RecordHeader::parse(h).expect("valid header");
                        assert!(avail.len() < h.record_len());
                    }
                    break;
                }
                Err(e) => panic!("valid stream refused: {e}"),
            }
        }
        buf.drain(..pos);
    }
    assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
    out
}

/// Cuts `bytes` at the given points (any order, any range; clamped and sorted).
fn cut<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = points.iter().map(|&p| p % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for p in points {
        pieces.push(&bytes[start..p]);
        start = p;
    }
    pieces.push(&bytes[start..]);
    pieces
}

/// Content of `len` bytes derived from `seed` (for sizes where a random vector is too slow).
fn filled(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i as u8).wrapping_mul(31)) ^ (i >> 8) as u8)
        .collect()
}

fn bytes(size: impl Into<SizeRange>) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), size)
}

/// Stream content: mostly small, sometimes large, with the 65535 boundary itself.
fn stream_content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        12 => bytes(0..=64),
        4 => bytes(0..=1200),
        1 => (65400usize..=MAX_CONTENT_LEN, any::<u8>()).prop_map(|(n, s)| filled(n, s)),
        1 => any::<u8>().prop_map(|s| filled(MAX_CONTENT_LEN, s)),
    ]
}

fn unknown_type() -> impl Strategy<Value = u8> {
    prop_oneof![Just(0u8), 12u8..=255]
}

/// Any record the decoder must accept: the fixed-size types get their 8 bytes, request types a
/// non-zero id, management types id 0, unknown types either.
fn wire_record() -> impl Strategy<Value = WireRec> {
    let request_id = 1u16..=u16::MAX;
    let fixed = (
        prop_oneof![
            Just(rtype::BEGIN_REQUEST),
            Just(rtype::END_REQUEST),
            Just(rtype::UNKNOWN_TYPE)
        ],
        bytes(8),
    );
    let kind = prop_oneof![
        // BEGIN_REQUEST, END_REQUEST (request ids), UNKNOWN_TYPE (management): 8 bytes.
        (fixed, request_id.clone()).prop_map(|((t, c), id)| {
            let id = if t == rtype::UNKNOWN_TYPE { 0 } else { id };
            (t, id, c)
        }),
        // ABORT_REQUEST: no content, though a padded one is tolerated.
        (
            request_id.clone(),
            prop_oneof![3 => Just(Vec::new()), 1 => bytes(0..=16)]
        )
            .prop_map(|(id, c)| (rtype::ABORT_REQUEST, id, c)),
        // Streams.
        (4u8..=8, request_id.clone(), stream_content()).prop_map(|(t, id, c)| (t, id, c)),
        // GET_VALUES, GET_VALUES_RESULT.
        (9u8..=10, stream_content()).prop_map(|(t, c)| (t, 0, c)),
        // Types FastCGI 1.0 does not define: management (id 0) or not.
        (
            unknown_type(),
            prop_oneof![Just(0u16), request_id],
            stream_content()
        )
            .prop_map(|(t, id, c)| (t, id, c)),
    ];
    (kind, any::<u8>(), any::<u8>(), any::<u8>()).prop_map(
        |((rtype, request_id, content), padding_length, pad_byte, reserved)| WireRec {
            rec: Rec {
                header: RecordHeader {
                    rtype,
                    request_id,
                    content_length: content.len() as u16,
                    padding_length,
                },
                content,
            },
            pad_byte,
            reserved,
        },
    )
}

/// Name or value lengths around the 1-byte/4-byte boundary, and up to ~1000 bytes.
fn nv_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => 0usize..=12,
        2 => Just(127usize),
        2 => Just(128usize),
        1 => 125usize..=130,
        2 => 0usize..=1000,
    ]
    .prop_flat_map(bytes)
}

fn pairs() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    vec((nv_bytes(), nv_bytes()), 0..=12)
}

fn encode_pairs(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in pairs {
        let before = out.len();
        encode_nv(&mut out, n, v);
        assert_eq!(out.len() - before, nv_len(n, v));
    }
    out
}

fn owned(
    pairs: impl Iterator<Item = (impl AsRef<[u8]>, impl AsRef<[u8]>)>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    pairs
        .map(|(n, v)| (n.as_ref().to_vec(), v.as_ref().to_vec()))
        .collect()
}

/// Is `inner` a sub-slice of `outer` (same memory)?
fn within(outer: &[u8], inner: &[u8]) -> bool {
    let o = outer.as_ptr_range();
    let i = inner.as_ptr_range();
    o.start <= i.start && i.end <= o.end
}

/// Arbitrary bytes, half of them starting like a real record header so that the checks past
/// the version byte run too.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        bytes(0..=600),
        (any::<u8>(), any::<[u8; 6]>(), bytes(0..=600)).prop_map(|(t, h, rest)| {
            let mut v = vec![1, t];
            v.extend_from_slice(&h);
            v.extend(rest);
            v
        }),
    ]
}

/// Name-value bytes with length prefixes that are often large, truncated or non-minimal.
fn hostile_nv_bytes() -> impl Strategy<Value = Vec<u8>> {
    let len_prefix = prop_oneof![
        any::<u8>().prop_map(|b| vec![b & 0x7f]),
        any::<[u8; 4]>().prop_map(|b| vec![b[0] | 0x80, b[1], b[2], b[3]]),
        any::<u8>().prop_map(|b| vec![0x80, 0, 0, b]),
        (1usize..=3).prop_map(|n| vec![0xff; n]),
    ];
    vec(prop_oneof![len_prefix, bytes(0..=40)], 0..=12).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (a) Records of any type, id, length and padding survive encoding and a decoder fed in
    /// two or three pieces cut anywhere; small streams are also cut at every single point.
    #[test]
    fn records_round_trip_across_pieces(
        recs in vec(wire_record(), 0..=8),
        cuts in vec(any::<usize>(), 1..=2),
    ) {
        let mut wire = Vec::new();
        for r in &recs {
            write_record(&mut wire, r);
        }
        let expected: Vec<Rec> = recs.iter().map(|w| w.rec.clone()).collect();

        prop_assert_eq!(&decode_pieces(&[&wire]), &expected);
        prop_assert_eq!(&decode_pieces(&cut(&wire, &cuts)), &expected);
        if wire.len() <= 1024 {
            for at in 0..=wire.len() {
                let (a, b) = wire.split_at(at);
                prop_assert_eq!(&decode_pieces(&[a, b]), &expected, "cut at {}", at);
            }
        }
    }

    /// (b) Pairs with 1- and 4-byte lengths, carried by PARAMS records cut anywhere (so pairs
    /// and even their length prefixes straddle records), come back whole and in order.
    #[test]
    fn params_round_trip_across_records(
        pairs in pairs(),
        cuts in vec(any::<usize>(), 0..=6),
        request_id in 1u16..=u16::MAX,
    ) {
        let stream = encode_pairs(&pairs);

        // The whole stream in one buffer, through NvIter.
        let direct: Result<Vec<_>, _> = NvIter::new(&stream).collect();
        prop_assert_eq!(owned(direct.expect("well-formed pairs").into_iter()), pairs.clone());

        // The stream carried by PARAMS records (empty pieces dropped: an empty record would end
        // the stream), followed by the empty PARAMS.
        let mut wire = Vec::new();
        for piece in cut(&stream, &cuts) {
            if !piece.is_empty() {
                encode_record(&mut wire, rtype::PARAMS, request_id, piece);
            }
        }
        encode_record(&mut wire, rtype::PARAMS, request_id, &[]);

        let mut params = Params::new();
        for rec in decode_pieces(&[&wire]) {
            prop_assert_eq!(rec.header.rtype, rtype::PARAMS);
            prop_assert_eq!(rec.header.request_id, request_id);
            prop_assert!(!params.is_complete());
            params.push(&rec.content, stream.len()).expect("within the limit");
        }
        prop_assert!(params.is_complete());
        prop_assert_eq!(params.byte_len(), stream.len());
        prop_assert_eq!(params.len(), pairs.len());
        prop_assert_eq!(owned(params.iter()), pairs.clone());
        for (name, _) in &pairs {
            let last = pairs.iter().rev().find(|(n, _)| n == name).map(|(_, v)| &v[..]);
            prop_assert_eq!(params.get(name), last);
        }

        // One byte under the total is refused, whatever the cuts.
        if !stream.is_empty() {
            let mut params = Params::new();
            let refused = cut(&stream, &cuts)
                .into_iter()
                .filter(|p| !p.is_empty())
                .map(|p| params.push(p, stream.len() - 1))
                .find_map(Result::err);
            prop_assert_eq!(refused, Some(ParamsError::TooLarge { limit: stream.len() - 1 }));
        }
    }

    /// (c) Arbitrary bytes: decode_record never panics, never claims more than its input, and
    /// what it returns is the input's own bytes.
    #[test]
    fn decode_record_survives_arbitrary_bytes(input in hostile_bytes()) {
        let mut pos = 0;
        while let Ok(Decode::Complete(rec, used)) = decode_record(&input[pos..]) {
            let avail = &input[pos..];
            prop_assert!(used >= HEADER_LEN && used <= avail.len());
            prop_assert_eq!(used, rec.header.record_len());
            prop_assert!(within(avail, rec.content));
            prop_assert_eq!(rec.content, &avail[HEADER_LEN..HEADER_LEN + rec.content.len()]);
            pos += used;
        }
        // Decoding is prefix-stable: a prefix of the input gives Partial while the record (or,
        // for a bad header, the header) is incomplete, and the full input's verdict after that.
        let full = decode_record(&input);
        let needed = match &full {
            Ok(Decode::Complete(_, used)) => *used,
            Ok(Decode::Partial) => input.len() + 1,
            Err(_) => HEADER_LEN,
        };
        for end in 0..=input.len() {
            let got = decode_record(&input[..end]);
            if end < needed {
                prop_assert_eq!(got, Ok(Decode::Partial), "prefix of {} bytes", end);
            } else {
                prop_assert_eq!(&got, &full, "prefix of {} bytes", end);
            }
        }
    }

    /// (c) Arbitrary bytes: NvIter never panics, yields slices of its input only, in order, never
    /// more bytes than there are, and stops after an error.
    #[test]
    fn nv_iter_survives_arbitrary_bytes(input in prop_oneof![hostile_nv_bytes(), bytes(0..=300)]) {
        let mut consumed = 0usize;
        let mut last_end = input.as_ptr();
        let mut items = 0usize;
        let mut it = NvIter::new(&input);
        for item in &mut it {
            items += 1;
            prop_assert!(items <= input.len(), "more items than bytes");
            match item {
                Ok((name, value)) => {
                    prop_assert!(within(&input, name) && within(&input, value));
                    prop_assert!(name.as_ptr() >= last_end);
                    prop_assert!(value.as_ptr() >= name.as_ptr_range().end);
                    last_end = value.as_ptr_range().end;
                    consumed += nv_len(name, value);
                    prop_assert!(consumed <= input.len());
                }
                Err(_) => break,
            }
        }
        prop_assert!(it.next().is_none(), "NvIter yields nothing after an error");
    }

    /// (c) Arbitrary chunks pushed into Params with any limit: no panic, never more stored than
    /// the limit allows, and every indexed pair lies within what was stored.
    #[test]
    fn params_push_survives_arbitrary_chunks(
        chunks in vec(prop_oneof![hostile_nv_bytes(), bytes(0..=200)], 0..=8),
        limit in prop_oneof![0usize..=64, 0usize..=4096, Just(usize::MAX)],
    ) {
        let mut params = Params::new();
        let mut pushed = 0usize;
        for chunk in &chunks {
            let before = params.byte_len();
            let result = params.push(chunk, limit);
            pushed += chunk.len();
            prop_assert!(params.byte_len() <= pushed);
            prop_assert!(params.byte_len() <= limit);
            if let Err(ParamsError::TooLarge { limit: l }) = result {
                prop_assert_eq!(l, limit);
            }
            if result.is_ok() && !chunk.is_empty() {
                prop_assert_eq!(params.byte_len(), before + chunk.len());
            }
            let stored: usize = params.iter().map(|(n, v)| n.len() + v.len()).sum();
            prop_assert!(stored <= params.byte_len());
            for (name, _) in params.iter() {
                prop_assert!(params.get(name).is_some());
            }
        }
        let _ = params.push(&[], limit);
    }

    /// (d) A whole request from encode_request decodes, cut anywhere, into BEGIN_REQUEST, the
    /// PARAMS records and their terminator, the STDIN records and theirs, and nothing else.
    #[test]
    fn encoded_request_decodes(
        request_id in 1u16..=u16::MAX,
        keep_conn in any::<bool>(),
        mut pairs in pairs(),
        big_value in prop_oneof![3 => Just(None), 1 => (65000usize..=140_000, any::<u8>()).prop_map(Some)],
        body in prop_oneof![
            4 => bytes(0..=2000),
            1 => (0usize..=3 * MAX_CONTENT_LEN, any::<u8>()).prop_map(|(n, s)| filled(n, s)),
            1 => prop_oneof![Just(MAX_CONTENT_LEN), Just(MAX_CONTENT_LEN + 1), Just(2 * MAX_CONTENT_LEN)]
                .prop_map(|n| filled(n, 7)),
        ],
        cuts in vec(any::<usize>(), 0..=2),
    ) {
        if let Some((n, seed)) = big_value {
            // A value longer than one record: the pair must straddle PARAMS records.
            pairs.insert(pairs.len() / 2, (b"HTTP_COOKIE".to_vec(), filled(n, seed)));
        }
        let borrowed: Vec<(&[u8], &[u8])> =
            pairs.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        let spec = RequestSpec { request_id, keep_conn, params: &borrowed, body: &body };
        let mut wire = vec![0xAA; 3]; // encode_request appends: what was there stays.
        encode_request(&mut wire, &spec);
        prop_assert_eq!(&wire[..3], &[0xAA; 3]);
        let wire = &wire[3..];

        let recs = decode_pieces(&cut(wire, &cuts));
        let mut it = recs.iter().peekable();
        for r in &recs {
            prop_assert_eq!(r.header.request_id, request_id);
            prop_assert_eq!(r.header.record_len() % 8, 0, "padded to 8");
        }

        let begin = it.next().expect("BEGIN_REQUEST");
        prop_assert_eq!(begin.header.rtype, rtype::BEGIN_REQUEST);
        let b = BeginRequest::parse(&begin.content).expect("8-byte body");
        prop_assert_eq!(b.role, role::RESPONDER);
        prop_assert_eq!(b.keep_conn(), keep_conn);

        let mut params = Params::new();
        loop {
            let r = it.next().expect("PARAMS");
            prop_assert_eq!(r.header.rtype, rtype::PARAMS);
            params.push(&r.content, usize::MAX).expect("well-formed PARAMS");
            if r.content.is_empty() {
                break;
            }
        }
        prop_assert!(params.is_complete());
        prop_assert_eq!(owned(params.iter()), pairs.clone());

        let mut got_body = Vec::new();
        loop {
            let r = it.next().expect("STDIN");
            prop_assert_eq!(r.header.rtype, rtype::STDIN);
            if r.content.is_empty() {
                break;
            }
            got_body.extend_from_slice(&r.content);
        }
        prop_assert!(got_body == body, "body differs ({} vs {} bytes)", got_body.len(), body.len());
        prop_assert!(it.next().is_none(), "records after the empty STDIN");
    }
}

/// (a) Exhaustively: a small stream with every defined type, unknown types, zero and maximal
/// padding, cut into three pieces at every pair of points.
#[test]
fn every_pair_of_cut_points() {
    let recs = [
        (rtype::BEGIN_REQUEST, 1, vec![0, 1, 1, 0, 0, 0, 0, 0], 0),
        (rtype::PARAMS, 1, b"\x0b\x02SERVER_PORT80".to_vec(), 5),
        (rtype::PARAMS, 1, vec![], 0),
        (rtype::STDIN, 1, b"body".to_vec(), 255),
        (rtype::STDIN, 1, vec![], 3),
        (rtype::ABORT_REQUEST, 65535, vec![], 0),
        (rtype::GET_VALUES, 0, b"\x0e\x00FCGI_MAX_CONNS".to_vec(), 2),
        (rtype::GET_VALUES_RESULT, 0, vec![], 0),
        (rtype::UNKNOWN_TYPE, 0, vec![200, 0, 0, 0, 0, 0, 0, 0], 1),
        (rtype::STDOUT, 2, b"Status: 200 OK\r\n\r\n".to_vec(), 6),
        (rtype::STDERR, 2, b"x".to_vec(), 0),
        (rtype::DATA, 3, vec![], 0),
        (rtype::END_REQUEST, 2, vec![0, 0, 0, 0, 0, 0, 0, 0], 0),
        (0, 0, vec![], 0),
        (200, 7, b"??".to_vec(), 4),
    ];
    let recs: Vec<WireRec> = recs
        .into_iter()
        .map(|(t, id, content, pad)| WireRec {
            rec: Rec {
                header: RecordHeader {
                    rtype: t,
                    request_id: id,
                    content_length: content.len() as u16,
                    padding_length: pad,
                },
                content,
            },
            pad_byte: 0xEE,
            reserved: 0x5A,
        })
        .collect();
    let mut wire = Vec::new();
    for r in &recs {
        write_record(&mut wire, r);
    }
    let expected: Vec<Rec> = recs.into_iter().map(|w| w.rec).collect();
    for a in 0..=wire.len() {
        for b in a..=wire.len() {
            let got = decode_pieces(&[&wire[..a], &wire[a..b], &wire[b..]]);
            assert_eq!(got, expected, "cuts at {a} and {b}");
        }
    }
}

/// (a) The largest record: 65535 bytes of content and 255 of padding, cut at a few places
/// around its header, content and padding boundaries.
#[test]
fn largest_record_at_boundaries() {
    let rec = WireRec {
        rec: Rec {
            header: RecordHeader {
                rtype: rtype::STDIN,
                request_id: u16::MAX,
                content_length: u16::MAX,
                padding_length: u8::MAX,
            },
            content: filled(MAX_CONTENT_LEN, 3),
        },
        pad_byte: 0xFF,
        reserved: 0xFF,
    };
    let mut wire = Vec::new();
    write_record(&mut wire, &rec);
    write_record(&mut wire, &rec);
    let one = HEADER_LEN + MAX_CONTENT_LEN + 255;
    assert_eq!(wire.len(), 2 * one);
    let expected = vec![rec.rec.clone(), rec.rec];
    for at in [
        1,
        7,
        8,
        9,
        HEADER_LEN + MAX_CONTENT_LEN - 1,
        HEADER_LEN + MAX_CONTENT_LEN,
        one - 1,
        one,
        one + 1,
        2 * one - 1,
    ] {
        assert_eq!(
            decode_pieces(&[&wire[..at], &wire[at..]]),
            expected,
            "cut at {at}"
        );
    }
}
