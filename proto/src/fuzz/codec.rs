//! The decoders on their own: FastCGI records and PARAMS, the SCGI header block and CGI
//! response head, AJP13 packets of both directions.

use super::{error_kind, Input};
use crate::ajp::{self, BodyFraming, BodyPacket, CgiOptions, PacketSize, ServerPacket};
use crate::fcgi::{self, decode_record, rtype, Decode, NvIter, Params, ParamsError, HEADER_LEN};
use crate::scgi;
use crate::Status;

/// What the record decoder reported for one record, or how the stream ended.
#[derive(Debug, PartialEq)]
enum RecordEvent {
    Record {
        rtype: u8,
        request_id: u16,
        content: Vec<u8>,
        used: usize,
    },
    Error(String),
}

fn walk_pairs(content: &[u8]) {
    let mut seen = 0usize;
    for pair in NvIter::new(content) {
        let Ok((name, value)) = pair else { break };
        seen += name.len() + value.len();
        assert!(seen <= content.len());
    }
}

/// Decodes every complete record at the front of `buf`; returns the bytes used, or `None`
/// after an error.
fn drain_records(buf: &[u8], events: &mut Vec<RecordEvent>) -> Option<usize> {
    let mut pos = 0;
    loop {
        match decode_record(&buf[pos..]) {
            Ok(Decode::Complete(rec, used)) => {
                assert!(used >= HEADER_LEN && used <= buf.len() - pos);
                assert_eq!(used, rec.header.record_len());
                if matches!(
                    rec.header.rtype,
                    rtype::PARAMS | rtype::GET_VALUES | rtype::GET_VALUES_RESULT
                ) {
                    walk_pairs(rec.content);
                }
                // The client side reads the same records; it must not panic either.
                let _ = fcgi::decode_response_record(&buf[pos..]);
                events.push(RecordEvent::Record {
                    rtype: rec.header.rtype,
                    request_id: rec.header.request_id,
                    content: rec.content.to_vec(),
                    used,
                });
                pos += used;
            }
            Ok(Decode::Partial) => {
                assert!(buf.len() - pos < HEADER_LEN + fcgi::MAX_CONTENT_LEN + 256);
                return Some(pos);
            }
            Err(e) => {
                events.push(RecordEvent::Error(e.to_string()));
                return None;
            }
        }
    }
}

/// `fcgi_record`: `split: u8, stream...`. Decodes the stream as FastCGI records twice, all at
/// once and in two pieces through a buffer as a driver would (cut at `split`/255 of the
/// length): both must agree, and never claim more input than given. Name-value contents are
/// walked with `NvIter`, and each record goes through the client-side decoder too.
pub fn fcgi_record(data: &[u8]) {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let mut whole = Vec::new();
    drain_records(data, &mut whole);

    let split = usize::from(split) * data.len() / 255;
    let mut streamed = Vec::new();
    let mut buf = Vec::new();
    for piece in [&data[..split], &data[split..]] {
        buf.extend_from_slice(piece);
        match drain_records(&buf, &mut streamed) {
            Some(used) => {
                buf.drain(..used);
            }
            None => break,
        }
    }
    assert_eq!(whole, streamed);
}

/// `fcgi_params`: `limit: u32 (big-endian), then chunks, each a length byte and that many
/// bytes`. Pushes the chunks into `Params` as PARAMS records would deliver them (a zero length
/// is the empty record that ends the stream), under `limit` (`u32::MAX` is no limit, any other
/// value is taken modulo 1 MiB): never a panic, never more stored than the limit, every pair
/// inside the buffer, and the pairs equal to what `NvIter` reads from the concatenation.
pub fn fcgi_params(data: &[u8]) {
    let mut input = Input::new(data);
    let limit = u32::from_be_bytes([input.u8(), input.u8(), input.u8(), input.u8()]);
    let limit = if limit == u32::MAX {
        usize::MAX
    } else {
        limit as usize % (1 << 20)
    };
    let mut params = Params::new();
    let mut pushed = Vec::new();
    let mut failed = false;
    loop {
        let len = usize::from(input.u8());
        let chunk = input.take(len);
        if chunk.len() < len {
            break;
        }
        let before = params.byte_len();
        let result = params.push(chunk, limit);
        if params.byte_len() != before {
            // Stored whole (a pair declared too large is refused after its bytes are in).
            assert_eq!(params.byte_len(), before + chunk.len());
            pushed.extend_from_slice(chunk);
        }
        assert!(params.byte_len() == pushed.len() && params.byte_len() <= limit);
        match result {
            Err(ParamsError::TooLarge { limit: l }) => {
                assert_eq!(l, limit);
                failed = true;
            }
            Err(_) => failed = true,
            Ok(()) if chunk.is_empty() => {
                assert!(params.is_complete());
                break;
            }
            Ok(()) => {}
        }
        let stored: usize = params.iter().map(|(n, v)| n.len() + v.len()).sum();
        assert!(stored <= params.byte_len());
        if let Some((name, _)) = params.iter().last() {
            assert!(params.get(name).is_some());
        }
        if failed {
            break;
        }
    }
    if !failed {
        // The pairs indexed so far are the complete pairs at the front of what was pushed.
        let expected: Vec<(&[u8], &[u8])> = NvIter::new(&pushed).map_while(Result::ok).collect();
        let got: Vec<(&[u8], &[u8])> = params.iter().collect();
        assert!(got.len() <= expected.len());
        assert_eq!(got, expected[..got.len()]);
    }
    params.clear();
    assert!(params.is_empty() && params.byte_len() == 0);
}

/// The shape of an SCGI decode, to compare results of different buffers.
fn scgi_shape(r: &Result<Status<scgi::Request<'_>>, scgi::Error>) -> Result<Option<usize>, ()> {
    match r {
        Ok(Status::Complete(req)) => Ok(Some(req.consumed())),
        Ok(Status::Partial) => Ok(None),
        Err(_) => Err(()),
    }
}

/// Prefix lengths worth checking for an input of `len` bytes (all of them for short inputs).
fn prefixes(len: usize) -> Vec<usize> {
    if len <= 64 {
        return (0..len).collect();
    }
    let mut v: Vec<usize> = (0..16).chain(len - 16..len).collect();
    v.extend([len / 4, len / 2, 3 * len / 4]);
    v
}

/// `scgi_decode`: `limit: u16 (big-endian; 0xFFFF is the default 64 KiB), split: u8,
/// bytes...`. Decodes the bytes as an SCGI request head under that header-block limit and as a
/// CGI response head (the client side), and feeds them to the client's response reader in two
/// pieces. Checks: a complete head lies inside the buffer, its pairs are the block's, it
/// re-encodes to the same bytes, and every shorter prefix is `Partial`; a partial input has
/// only partial prefixes, and no prefix of a refused input is complete; the reader gives the
/// same status, body and error however the response is split.
pub fn scgi_decode(data: &[u8]) {
    let mut input = Input::new(data);
    let limit = match input.u16() {
        u16::MAX => scgi::DEFAULT_MAX_HEADER_BLOCK,
        n => usize::from(n),
    };
    let split = input.u8();
    let data = input.rest();
    let limits = scgi::Limits {
        max_header_block: limit,
    };
    let result = scgi::decode(data, &limits);
    let shape = scgi_shape(&result);
    match &result {
        Ok(Status::Complete(req)) => {
            let consumed = req.consumed();
            assert!(consumed <= data.len());
            let range = req.header_block_range();
            assert!(range.end < consumed && range.len() <= limit);
            assert_eq!(&data[range], req.header_block());
            let pairs: Vec<(&[u8], &[u8])> = req.headers().collect();
            let (first, value) = pairs.first().copied().expect("CONTENT_LENGTH is first");
            assert_eq!(first, b"CONTENT_LENGTH");
            assert_eq!(
                value.len(),
                value.iter().filter(|b| b.is_ascii_digit()).count()
            );
            assert_eq!(req.get(b"CONTENT_LENGTH"), Some(value));
            let stored: usize = pairs.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
            assert_eq!(stored, req.header_block().len(), "every byte is in a pair");
            let mut again = Vec::new();
            scgi::encode_netstring(pairs.iter().copied(), &mut again)
                .expect("decoded pairs encode");
            assert_eq!(again, &data[..consumed], "re-encoding gives the same head");
            for n in prefixes(consumed) {
                assert_eq!(scgi_shape(&scgi::decode(&data[..n], &limits)), Ok(None));
            }
        }
        Ok(Status::Partial) => {
            for n in prefixes(data.len()) {
                assert_eq!(scgi_shape(&scgi::decode(&data[..n], &limits)), Ok(None));
            }
        }
        Err(_) => {
            for n in prefixes(data.len()) {
                let prefix = scgi_shape(&scgi::decode(&data[..n], &limits));
                assert!(
                    matches!(prefix, Ok(None) | Err(())),
                    "{prefix:?} vs {shape:?}"
                );
            }
        }
    }

    let max = limit.max(1);
    if let Ok(Status::Complete(head)) = scgi::decode_response_head(data, max) {
        assert!(head.consumed() <= data.len() && head.consumed() <= max);
        assert!(head.status() <= 999);
        for (name, _) in head.headers() {
            assert!(!name.contains(&b'\n'));
        }
    }
    let read = |pieces: &[&[u8]]| {
        let mut reader = scgi::ResponseReader::new(max);
        let mut body = Vec::new();
        for piece in pieces {
            if let Err(e) = reader.feed(piece, |b| body.extend_from_slice(b)) {
                return (Err(e), body);
            }
        }
        (reader.finish().map(|f| (f.status, f.body_len)), body)
    };
    let at = usize::from(split) * data.len() / 255;
    let whole = read(&[data]);
    let split = read(&[&data[..at], &data[at..]]);
    // After an error, the body bytes of the pieces before it have been delivered.
    assert_eq!(whole.0, split.0);
    if let (Ok((_, len)), body) = &whole {
        assert_eq!(*len, body.len() as u64);
        assert_eq!(body, &split.1);
    }
}

fn packet_size(selector: u8) -> PacketSize {
    let bytes = match selector & 3 {
        0 => ajp::DEFAULT_PACKET_SIZE,
        1 => ajp::MIN_PACKET_SIZE,
        2 => ajp::MAX_PACKET_SIZE,
        _ => ajp::MIN_PACKET_SIZE + usize::from(selector) * 17,
    };
    PacketSize::new(bytes).expect("within bounds")
}

/// Everything a server does with a decoded Forward Request: every accessor, the CGI variables
/// (bounded by the packet), the secret check.
fn use_forward_request(fr: &ajp::ForwardRequest<'_>, packet: usize) {
    let _ = (fr.method(), fr.method_code(), fr.protocol(), fr.req_uri());
    let _ = (fr.remote_addr(), fr.remote_host(), fr.server_name());
    let _ = (fr.server_port(), fr.is_ssl(), fr.content_type());
    let _ = (fr.expects_first_body_packet(), fr.has_transfer_encoding());
    assert_eq!(fr.headers().count(), usize::from(fr.num_headers()));
    let _ = fr.attributes().count();
    assert!(!fr.secret_matches(b""));
    if let Some(secret) = fr.secret().filter(|s| !s.is_empty()) {
        assert!(fr.secret_matches(secret));
    }
    let _ = fr.req_attribute(b"AJP_REMOTE_PORT");
    if fr.expects_first_body_packet() {
        assert!(fr.content_length().is_some_and(|n| n > 0));
    }
    for trust_remote_user in [false, true] {
        let options = CgiOptions { trust_remote_user };
        let mut scratch = Vec::new();
        let mut total = 0usize;
        let mut count = 0usize;
        fr.for_each_cgi_var(&options, &mut scratch, |name, value| {
            assert!(!name.is_empty());
            assert!(!name.contains(&0));
            total += name.len() + value.len();
            count += 1;
        });
        // Each header of the packet gives one variable whose value is in the packet and whose
        // name is at most 5 + 255 bytes (a coded name is short); the fixed variables are few.
        assert!(count <= usize::from(fr.num_headers()) + 64);
        assert!(
            total <= 4 * packet + 4096,
            "{total} bytes of variables from {packet}"
        );
    }
}

/// `ajp_decode`: `size: u8 (packet size selector), split: u8, bytes...`. Decodes the bytes as a
/// web server's packet between requests (and uses the Forward Request as a server would), as a
/// request-body packet in each framing, as a container packet and as a response through the
/// client's reader. Checks: a complete packet lies inside the buffer and within the packet
/// size, every shorter prefix is `Partial`, and no prefix of a refused packet is complete.
pub fn ajp_decode(data: &[u8]) {
    let mut input = Input::new(data);
    let size = packet_size(input.u8());
    let split = input.u8();
    let data = input.rest();

    let server = ajp::decode_server_packet(data, size);
    let used = match &server {
        Ok(Status::Complete((packet, used))) => {
            assert!(*used <= data.len() && *used <= size.get());
            if let ServerPacket::ForwardRequest(fr) = packet {
                use_forward_request(fr, *used);
            }
            Some(*used)
        }
        _ => None,
    };
    for n in prefixes(used.unwrap_or(data.len())) {
        let prefix = ajp::decode_server_packet(&data[..n], size);
        match (&server, prefix) {
            (_, Ok(Status::Partial)) => {}
            (Err(_), Err(_)) => {}
            (full, prefix) => panic!("prefix {n}: {prefix:?}, whole: {full:?}"),
        }
    }

    for framing in [
        BodyFraming::Standard,
        BodyFraming::Bare,
        BodyFraming::Detect,
    ] {
        match ajp::decode_body_packet(data, size, framing) {
            Ok(Status::Complete((packet, used))) => {
                assert!(used <= data.len() && used <= size.get());
                if let BodyPacket::Data(d) = packet {
                    assert!(!d.is_empty() && d.len() <= size.max_payload());
                }
                for n in prefixes(used) {
                    let prefix = ajp::decode_body_packet(&data[..n], size, framing);
                    assert!(
                        matches!(prefix, Ok(Status::Partial)),
                        "prefix {n}: {prefix:?}"
                    );
                }
            }
            Ok(Status::Partial) => {}
            Err(_) => {}
        }
    }

    if let Ok(Status::Complete((_, used))) = ajp::decode_container_packet(data, size) {
        assert!(used <= data.len() && used <= size.get());
    }
    // A response read packet by packet, whole and from two pieces, gives the same events.
    let read = |pieces: &[&[u8]]| {
        let mut reader = ajp::ResponseReader::new(size);
        let mut buf = Vec::new();
        let mut events = Vec::new();
        for piece in pieces {
            buf.extend_from_slice(piece);
            loop {
                match reader.decode(&buf) {
                    Ok(Status::Complete((event, used))) => {
                        assert!(used > 0 && used <= buf.len());
                        events.push(format!("{event:?}"));
                        buf.drain(..used);
                    }
                    Ok(Status::Partial) => break,
                    Err(e) => {
                        events.push(format!("error {}", error_kind(&e)));
                        return events;
                    }
                }
            }
        }
        events
    };
    let at = usize::from(split) * data.len() / 255;
    assert_eq!(read(&[data]), read(&[&data[..at], &data[at..]]));
}
