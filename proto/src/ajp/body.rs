//! Request-body data packets (web server -> container), which carry no prefix byte.

use super::reader::put_u16;
use super::Error;
use super::{decode_frame, PacketSize, Status, SERVER_MAGIC};

/// How request-body packets are framed by the web server.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyFraming {
    /// `12 34 | n+2 | n(2) | data[n]` only (Apache mod_proxy_ajp, Tomcat's peers, ajpy): the
    /// inner length must equal the payload length minus 2.
    Standard,
    /// `12 34 | n | data[n]` with no inner length (lighttpd 1.4.69 mod_ajp13).
    Bare,
    /// Standard when the first two payload bytes equal the payload length minus 2, bare
    /// otherwise. Serves both peers; the cost is that a bare packet whose data happens to
    /// start with that value (binary data starting with two bytes below 0x20 0x00) is read as
    /// standard. Use [`Self::Bare`] behind lighttpd when bodies are binary.
    #[default]
    Detect,
}

/// A request-body packet.
#[allow(clippy::exhaustive_enums)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyPacket<'a> {
    /// Body bytes (never empty).
    Data(&'a [u8]),
    /// The end of the body: `12 34 00 00`, or `12 34 00 02 00 00` (Standard and Detect).
    End,
}

/// Decode the request-body packet at the start of `buf` (when the first unasked packet or an
/// answer to GET_BODY_CHUNK is due). Returns the packet and the bytes it took.
pub fn decode_body_packet(
    buf: &[u8],
    size: PacketSize,
    framing: BodyFraming,
) -> Result<Status<(BodyPacket<'_>, usize)>, Error> {
    let (payload, consumed) = match decode_frame(buf, SERVER_MAGIC, size)? {
        Status::Complete(frame) => frame,
        Status::Partial => return Ok(Status::Partial),
    };
    if payload.is_empty() {
        return Ok(Status::Complete((BodyPacket::End, consumed)));
    }
    let inner = match payload {
        [a, b, data @ ..] if usize::from(u16::from_be_bytes([*a, *b])) == data.len() => Some(data),
        _ => None,
    };
    let data = match (framing, inner) {
        (BodyFraming::Bare, _) | (BodyFraming::Detect, None) => payload,
        (_, Some(data)) => data,
        (BodyFraming::Standard, None) => {
            let declared = match payload {
                [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
                _ => 0,
            };
            return Err(Error::LengthMismatch {
                declared,
                payload: payload.len(),
            });
        }
    };
    let packet = if data.is_empty() {
        BodyPacket::End
    } else {
        BodyPacket::Data(data)
    };
    Ok(Status::Complete((packet, consumed)))
}

/// Append one standard body packet with the first bytes of `data` (at most
/// [`PacketSize::max_request_body_chunk`], and at most `max` when the container asked for
/// less); return how many bytes of `data` it carries. An empty `data` writes the 6-byte empty
/// packet `12 34 00 02 00 00` (Apache's end of body).
pub fn encode_body_chunk(data: &[u8], max: usize, size: PacketSize, out: &mut Vec<u8>) -> usize {
    let n = data.len().min(max).min(size.max_request_body_chunk());
    let chunk = data.get(..n).unwrap_or_default();
    // n <= 65530 since the packet size is at most 65536.
    out.extend_from_slice(&SERVER_MAGIC);
    put_u16(out, (n + 2) as u16);
    put_u16(out, n as u16);
    out.extend_from_slice(chunk);
    n
}

/// Append the 4-byte empty body packet `12 34 00 00` (end of body, as lighttpd and the spec
/// send it).
pub fn encode_body_end(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x12, 0x34, 0x00, 0x00]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: PacketSize = PacketSize::DEFAULT;

    fn dec(buf: &[u8], f: BodyFraming) -> Result<Status<(BodyPacket<'_>, usize)>, Error> {
        decode_body_packet(buf, S, f)
    }

    #[test]
    fn both_empty_forms() {
        for f in [
            BodyFraming::Standard,
            BodyFraming::Bare,
            BodyFraming::Detect,
        ] {
            assert_eq!(
                dec(b"\x12\x34\x00\x00", f),
                Ok(Status::Complete((BodyPacket::End, 4)))
            );
        }
        for f in [BodyFraming::Standard, BodyFraming::Detect] {
            assert_eq!(
                dec(b"\x12\x34\x00\x02\x00\x00", f),
                Ok(Status::Complete((BodyPacket::End, 6)))
            );
        }
        assert_eq!(
            dec(b"\x12\x34\x00\x02\x00\x00", BodyFraming::Bare),
            Ok(Status::Complete((BodyPacket::Data(b"\0\0"), 6)))
        );
    }

    #[test]
    fn apache_and_lighttpd_data() {
        // Apache: inner length; a following packet stays in the buffer.
        let apache = b"\x12\x34\x00\x07\x00\x05hello\x12\x34";
        for f in [BodyFraming::Standard, BodyFraming::Detect] {
            assert_eq!(
                dec(apache, f),
                Ok(Status::Complete((BodyPacket::Data(b"hello"), 11)))
            );
        }
        // lighttpd: no inner length.
        let lighttpd = b"\x12\x34\x00\x05hello";
        for f in [BodyFraming::Bare, BodyFraming::Detect] {
            assert_eq!(
                dec(lighttpd, f),
                Ok(Status::Complete((BodyPacket::Data(b"hello"), 9)))
            );
        }
        assert_eq!(
            dec(lighttpd, BodyFraming::Standard),
            Err(Error::LengthMismatch {
                declared: 0x6865,
                payload: 5
            })
        );
        assert_eq!(
            dec(b"\x12\x34\x00\x01x", BodyFraming::Standard),
            Err(Error::LengthMismatch {
                declared: 0,
                payload: 1
            })
        );
        assert_eq!(
            dec(b"\x12\x34\x00\x01x", BodyFraming::Detect),
            Ok(Status::Complete((BodyPacket::Data(b"x"), 5)))
        );
    }

    #[test]
    fn partial_and_errors() {
        let apache = b"\x12\x34\x00\x07\x00\x05hello";
        for cut in 0..apache.len() {
            assert_eq!(
                dec(&apache[..cut], BodyFraming::Detect),
                Ok(Status::Partial)
            );
        }
        assert_eq!(
            dec(b"AB\x00\x00", BodyFraming::Detect),
            Err(Error::BadMagic { found: *b"AB" })
        );
        assert_eq!(
            dec(b"\x12\x34\x20\x00", BodyFraming::Detect),
            Err(Error::PacketTooLarge {
                len: 0x2000,
                max: 8188
            })
        );
    }

    #[test]
    fn encode_chunks() {
        let mut out = Vec::new();
        assert_eq!(encode_body_chunk(b"hello", usize::MAX, S, &mut out), 5);
        assert_eq!(out, b"\x12\x34\x00\x07\x00\x05hello");
        out.clear();
        assert_eq!(encode_body_chunk(b"hello", 2, S, &mut out), 2);
        assert_eq!(out, b"\x12\x34\x00\x04\x00\x02he");
        out.clear();
        assert_eq!(encode_body_chunk(b"", 10, S, &mut out), 0);
        assert_eq!(out, b"\x12\x34\x00\x02\x00\x00");
        out.clear();
        let big = vec![7u8; 10_000];
        assert_eq!(encode_body_chunk(&big, usize::MAX, S, &mut out), 8186);
        assert_eq!(out.len(), 8192);
        out.clear();
        encode_body_end(&mut out);
        assert_eq!(out, b"\x12\x34\x00\x00");
    }

    proptest! {
        #[test]
        fn chunk_round_trip(data in proptest::collection::vec(any::<u8>(), 1..300), max in 1usize..400) {
            let mut out = Vec::new();
            let n = encode_body_chunk(&data, max, S, &mut out);
            prop_assert_eq!(n, data.len().min(max));
            for cut in 0..out.len() {
                prop_assert_eq!(dec(&out[..cut], BodyFraming::Standard), Ok(Status::Partial));
            }
            for f in [BodyFraming::Standard, BodyFraming::Detect] {
                prop_assert_eq!(
                    dec(&out, f),
                    Ok(Status::Complete((BodyPacket::Data(&data[..n]), out.len())))
                );
            }
        }

        #[test]
        fn arbitrary_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            for f in [BodyFraming::Standard, BodyFraming::Bare, BodyFraming::Detect] {
                let _ = dec(&bytes, f);
                let mut framed = vec![0x12, 0x34, 0, bytes.len() as u8];
                framed.extend_from_slice(&bytes);
                let _ = dec(&framed, f);
            }
        }
    }
}
