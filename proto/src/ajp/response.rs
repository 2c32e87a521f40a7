//! Container-bound packets: SEND_HEADERS, SEND_BODY_CHUNK, END_RESPONSE, GET_BODY_CHUNK, CPONG.

use std::fmt;

use super::reader::{put_string, put_u16, Reader};
use super::{
    decode_frame, encode_packet, prefix, EncodeError, Error, PacketSize, Status, CONTAINER_MAGIC,
};

/// Coded response header names (code = 0xA000 + index + 1).
const RESPONSE_HEADERS: [&[u8]; 11] = [
    b"Content-Type",
    b"Content-Language",
    b"Content-Length",
    b"Date",
    b"Last-Modified",
    b"Location",
    b"Set-Cookie",
    b"Set-Cookie2",
    b"Servlet-Engine",
    b"Status",
    b"WWW-Authenticate",
];

/// The name of a coded response header (0xA001..=0xA00B), e.g. 0xA001 -> `Content-Type`.
pub fn response_header_name(code: u16) -> Option<&'static [u8]> {
    let i = code.checked_sub(0xA001)?;
    RESPONSE_HEADERS.get(usize::from(i)).copied()
}

/// The code of a response header name (ASCII case-insensitive), e.g. `location` -> 0xA006.
pub fn response_header_code(name: &[u8]) -> Option<u16> {
    let i = RESPONSE_HEADERS
        .iter()
        .position(|h| h.eq_ignore_ascii_case(name))?;
    u16::try_from(i).ok().map(|i| 0xA001 + i)
}

// ===== server side: encoders =====

/// Append a SEND_HEADERS packet: `status`, `reason` and `headers` (well-known names coded).
///
/// The reason is never sent null or empty (Apache cannot read a null string and mod_jk needs a
/// phrase): an empty `reason` sends the status digits, as Tomcat does. Names must be non-empty
/// and free of CR, LF, NUL and `:`; values and the reason free of CR, LF and NUL. The whole
/// head must fit in one packet of `size` (the web servers require it).
pub fn encode_send_headers<'h, I>(
    status: u16,
    reason: &[u8],
    headers: I,
    size: PacketSize,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError>
where
    I: IntoIterator<Item = (&'h [u8], &'h [u8])>,
{
    if !(100..=999).contains(&status) {
        return Err(EncodeError::InvalidStatus(status));
    }
    if has_forbidden(reason) {
        return Err(EncodeError::ForbiddenByte { field: "reason" });
    }
    let digits = [
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ];
    let reason = if reason.is_empty() {
        &digits[..]
    } else {
        reason
    };
    encode_packet(out, CONTAINER_MAGIC, size, |out| {
        out.push(prefix::SEND_HEADERS);
        put_u16(out, status);
        put_string(out, Some(reason), "reason")?;
        let count_at = out.len();
        put_u16(out, 0);
        let mut count: u16 = 0;
        for (name, value) in headers {
            if name.is_empty() {
                return Err(EncodeError::Empty {
                    field: "header name",
                });
            }
            if has_forbidden(name) || name.contains(&b':') {
                return Err(EncodeError::ForbiddenByte {
                    field: "header name",
                });
            }
            if has_forbidden(value) {
                return Err(EncodeError::ForbiddenByte {
                    field: "header value",
                });
            }
            match response_header_code(name) {
                Some(code) => put_u16(out, code),
                None if name.len() >= 0xA000 => {
                    return Err(EncodeError::StringTooLong {
                        field: "header name",
                    })
                }
                None => put_string(out, Some(name), "header name")?,
            }
            put_string(out, Some(value), "header value")?;
            count = count.checked_add(1).ok_or(EncodeError::TooManyHeaders)?;
        }
        if let Some(slot) = out.get_mut(count_at..count_at + 2) {
            slot.copy_from_slice(&count.to_be_bytes());
        }
        Ok(())
    })
}

fn has_forbidden(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0))
}

/// Append `data` as SEND_BODY_CHUNK packets of at most [`PacketSize::max_send_body_chunk`]
/// bytes each, each with its trailing NUL (Apache requires it). Writes nothing for empty
/// `data`; see [`encode_flush`].
pub fn encode_send_body(data: &[u8], size: PacketSize, out: &mut Vec<u8>) {
    for chunk in data.chunks(size.max_send_body_chunk()) {
        put_body_chunk(chunk, out);
    }
}

/// Append an empty SEND_BODY_CHUNK (`41 42 00 04 03 00 00 00`): the web server flushes what it
/// has to the client.
pub fn encode_flush(out: &mut Vec<u8>) {
    put_body_chunk(&[], out);
}

/// `chunk.len()` <= 65528 (callers split by the packet size).
fn put_body_chunk(chunk: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&CONTAINER_MAGIC);
    put_u16(out, (chunk.len() + 4) as u16);
    out.push(prefix::SEND_BODY_CHUNK);
    put_u16(out, chunk.len() as u16);
    out.extend_from_slice(chunk);
    out.push(0);
}

/// Append GET_BODY_CHUNK asking for up to `requested` body bytes (usually
/// [`PacketSize::max_request_body_chunk`], 8186 by default).
pub fn encode_get_body_chunk(requested: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&[b'A', b'B', 0x00, 0x03, prefix::GET_BODY_CHUNK]);
    put_u16(out, requested);
}

/// Append END_RESPONSE. `reuse` = true (`41 42 00 02 05 01`) keeps the connection for the next
/// request; false asks the web server to close it.
pub fn encode_end_response(reuse: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(&[
        b'A',
        b'B',
        0x00,
        0x02,
        prefix::END_RESPONSE,
        u8::from(reuse),
    ]);
}

/// Append CPONG (`41 42 00 01 09`), the answer to CPING.
pub fn encode_cpong(out: &mut Vec<u8>) {
    out.extend_from_slice(&[b'A', b'B', 0x00, 0x01, prefix::CPONG]);
}

// ===== client side: decoder =====

/// A packet from the container to the web server.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerPacket<'a> {
    /// Status and headers.
    SendHeaders(SendHeaders<'a>),
    /// Body bytes (empty: flush).
    SendBodyChunk(&'a [u8]),
    /// End of the response; `reuse` says whether the connection stays open.
    EndResponse {
        /// Whether the container keeps the connection for another request.
        reuse: bool,
    },
    /// The container asks for up to this many more request-body bytes.
    GetBodyChunk(u16),
    /// Answer to CPING.
    Cpong,
}

/// Decode the container-bound packet at the start of `buf`: the packet and the bytes it took.
///
/// Strict, to check ringfast's own output: SEND_BODY_CHUNK must have its trailing NUL and a
/// length matching the packet, strings must be terminated, nothing may trail a packet's
/// content.
pub fn decode_container_packet(
    buf: &[u8],
    size: PacketSize,
) -> Result<Status<(ContainerPacket<'_>, usize)>, Error> {
    let (payload, consumed) = match decode_frame(buf, CONTAINER_MAGIC, size)? {
        Status::Complete(frame) => frame,
        Status::Partial => return Ok(Status::Partial),
    };
    let mut r = Reader::new(payload);
    let kind = r.u8("packet type").map_err(|_| Error::EmptyPacket)?;
    let packet = match kind {
        prefix::SEND_HEADERS => ContainerPacket::SendHeaders(SendHeaders::decode(&mut r)?),
        prefix::SEND_BODY_CHUNK => {
            let n = r.u16("chunk length")?;
            let declared = usize::from(n);
            if r.remaining() != declared + 1 {
                return Err(Error::LengthMismatch {
                    declared,
                    payload: payload.len(),
                });
            }
            let data = r.bytes(declared, "chunk")?;
            if r.u8("chunk")? != 0 {
                return Err(Error::MissingNul { field: "chunk" });
            }
            ContainerPacket::SendBodyChunk(data)
        }
        prefix::END_RESPONSE => ContainerPacket::EndResponse {
            reuse: r.u8("reuse")? != 0,
        },
        prefix::GET_BODY_CHUNK => ContainerPacket::GetBodyChunk(r.u16("requested length")?),
        prefix::CPONG => ContainerPacket::Cpong,
        other => return Err(Error::UnknownPacketType(other)),
    };
    if r.remaining() > 0 {
        return Err(Error::TrailingBytes {
            count: r.remaining(),
        });
    }
    Ok(Status::Complete((packet, consumed)))
}

/// A decoded SEND_HEADERS packet, borrowing its buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendHeaders<'a> {
    status: u16,
    reason: Option<&'a [u8]>,
    num_headers: u16,
    headers: &'a [u8],
}

impl<'a> SendHeaders<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, Error> {
        let status = r.u16("status")?;
        let reason = r.string("reason")?;
        let num_headers = r.u16("num_headers")?;
        let start = r.pos();
        for _ in 0..num_headers {
            read_header(r)?;
        }
        Ok(Self {
            status,
            reason,
            num_headers,
            headers: r.slice(start, r.pos()),
        })
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The reason phrase (`None` if sent null).
    pub fn reason(&self) -> Option<&'a [u8]> {
        self.reason
    }

    /// How many headers were sent.
    pub fn num_headers(&self) -> u16 {
        self.num_headers
    }

    /// The headers as (name, value); coded names come back in their usual spelling
    /// (`Content-Type`), null values as empty.
    pub fn headers(&self) -> ResponseHeaders<'a> {
        ResponseHeaders {
            reader: Reader::new(self.headers),
            left: self.num_headers,
        }
    }
}

impl fmt::Debug for SendHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendHeaders")
            .field("status", &self.status)
            .field("reason", &self.reason.map(String::from_utf8_lossy))
            .field("num_headers", &self.num_headers)
            .finish()
    }
}

fn read_header<'a>(r: &mut Reader<'a>) -> Result<(&'a [u8], Option<&'a [u8]>), Error> {
    let first = r.u16("header name")?;
    let name = if first >> 8 == 0xA0 {
        response_header_name(first).ok_or(Error::UnknownHeaderCode(first))?
    } else {
        match r.string_body(first, "header name")? {
            Some(name) if !name.is_empty() => name,
            _ => return Err(Error::InvalidHeaderName),
        }
    };
    Ok((name, r.string("header value")?))
}

/// Iterator over the headers of a [`SendHeaders`].
#[derive(Debug, Clone)]
pub struct ResponseHeaders<'a> {
    reader: Reader<'a>,
    left: u16,
}

impl<'a> Iterator for ResponseHeaders<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        self.left = self.left.checked_sub(1)?;
        // Validated when the packet was decoded: this cannot fail.
        let (name, value) = read_header(&mut self.reader).ok()?;
        Some((name, value.unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: PacketSize = PacketSize::DEFAULT;

    fn dec(buf: &[u8]) -> Result<Status<(ContainerPacket<'_>, usize)>, Error> {
        decode_container_packet(buf, S)
    }

    #[test]
    fn cheat_sheet_bytes() {
        let mut out = Vec::new();
        encode_cpong(&mut out);
        assert_eq!(out, b"\x41\x42\x00\x01\x09");
        out.clear();
        encode_end_response(true, &mut out);
        assert_eq!(out, b"\x41\x42\x00\x02\x05\x01");
        out.clear();
        encode_get_body_chunk(8186, &mut out);
        assert_eq!(out, b"\x41\x42\x00\x03\x06\x1f\xfa");
        out.clear();
        encode_send_body(b"hi", S, &mut out);
        assert_eq!(out, b"\x41\x42\x00\x06\x03\x00\x02hi\x00");
        out.clear();
        encode_send_body(b"", S, &mut out);
        assert!(out.is_empty());
        encode_flush(&mut out);
        assert_eq!(out, b"AB\x00\x04\x03\x00\x00\x00");
    }

    #[test]
    fn send_headers_bytes() {
        let mut out = Vec::new();
        encode_send_headers(
            200,
            b"OK",
            [(&b"content-type"[..], &b"text/plain"[..]), (b"X-A", b"")],
            S,
            &mut out,
        )
        .unwrap();
        let want: &[u8] = b"AB\x00\x22\x04\x00\xc8\x00\x02OK\x00\x00\x02\
\xa0\x01\x00\x0atext/plain\x00\x00\x03X-A\x00\x00\x00\x00";
        assert_eq!(out, want);
        let (packet, n) = dec(&out).unwrap().complete().unwrap();
        assert_eq!(n, out.len());
        let ContainerPacket::SendHeaders(h) = packet else {
            panic!("{packet:?}")
        };
        assert_eq!(h.status(), 200);
        assert_eq!(h.reason(), Some(&b"OK"[..]));
        assert_eq!(
            h.headers().collect::<Vec<_>>(),
            vec![(&b"Content-Type"[..], &b"text/plain"[..]), (b"X-A", b"")]
        );

        // An empty reason goes out as the code.
        out.clear();
        encode_send_headers(404, b"", std::iter::empty(), S, &mut out).unwrap();
        assert_eq!(out, b"AB\x00\x0b\x04\x01\x94\x00\x03404\x00\x00\x00");
    }

    #[test]
    fn send_headers_errors_restore_buffer() {
        let mut out = b"x".to_vec();
        let none = std::iter::empty::<(&[u8], &[u8])>;
        assert_eq!(
            encode_send_headers(1000, b"", none(), S, &mut out),
            Err(EncodeError::InvalidStatus(1000))
        );
        assert_eq!(
            encode_send_headers(200, b"O\nK", none(), S, &mut out),
            Err(EncodeError::ForbiddenByte { field: "reason" })
        );
        let cases: &[(&[u8], &[u8], EncodeError)] = &[
            (
                b"",
                b"v",
                EncodeError::Empty {
                    field: "header name",
                },
            ),
            (
                b"A:",
                b"v",
                EncodeError::ForbiddenByte {
                    field: "header name",
                },
            ),
            (
                b"A\r",
                b"v",
                EncodeError::ForbiddenByte {
                    field: "header name",
                },
            ),
            (
                b"A",
                b"v\r\nB: c",
                EncodeError::ForbiddenByte {
                    field: "header value",
                },
            ),
            (
                b"A",
                b"\0",
                EncodeError::ForbiddenByte {
                    field: "header value",
                },
            ),
        ];
        for &(n, v, e) in cases {
            assert_eq!(
                encode_send_headers(200, b"OK", [(n, v)], S, &mut out),
                Err(e)
            );
        }
        let big = vec![b'v'; 9000];
        assert_eq!(
            encode_send_headers(200, b"OK", [(&b"X"[..], &big[..])], S, &mut out),
            Err(EncodeError::PacketTooLarge {
                len: 9017,
                max: 8188
            })
        );
        assert_eq!(out, b"x");
    }

    #[test]
    fn send_body_splits_by_packet_size() {
        let data = vec![1u8; 8184 * 2 + 5];
        let mut out = Vec::new();
        encode_send_body(&data, S, &mut out);
        let mut got = Vec::new();
        let mut rest = &out[..];
        let mut packets = 0;
        while !rest.is_empty() {
            let (p, n) = dec(rest).unwrap().complete().unwrap();
            assert!(n <= 8192);
            let ContainerPacket::SendBodyChunk(chunk) = p else {
                panic!("{p:?}")
            };
            got.extend_from_slice(chunk);
            rest = &rest[n..];
            packets += 1;
        }
        assert_eq!(packets, 3);
        assert_eq!(got, data);
        assert_eq!(&out[..4], b"AB\x1f\xfc");
    }

    #[test]
    fn decode_errors() {
        assert_eq!(dec(b"AB\x00\x00"), Err(Error::EmptyPacket));
        assert_eq!(dec(b"AB\x00\x01\x07"), Err(Error::UnknownPacketType(7)));
        assert_eq!(
            dec(b"\x12\x34\x00\x01\x09"),
            Err(Error::BadMagic {
                found: [0x12, 0x34]
            })
        );
        // SEND_BODY_CHUNK without its trailing NUL (what Apache refuses).
        assert_eq!(
            dec(b"AB\x00\x05\x03\x00\x02hi"),
            Err(Error::LengthMismatch {
                declared: 2,
                payload: 5
            })
        );
        assert_eq!(
            dec(b"AB\x00\x06\x03\x00\x02hix"),
            Err(Error::MissingNul { field: "chunk" })
        );
        assert_eq!(
            dec(b"AB\x00\x03\x05\x01\x00"),
            Err(Error::TrailingBytes { count: 1 })
        );
        assert_eq!(
            dec(b"AB\x00\x01\x05"),
            Err(Error::Truncated { field: "reuse" })
        );
        assert_eq!(
            dec(b"AB\x00\x09\x04\x00\xc8\xff\xff\x00\x01\xa0\x0c"),
            Err(Error::UnknownHeaderCode(0xA00C))
        );
        assert_eq!(
            dec(b"AB\x00\x0b\x04\x00\xc8\xff\xff\x00\x01\xff\xff\x00\x00"),
            Err(Error::InvalidHeaderName)
        );
        let (p, _) = dec(b"AB\x00\x07\x04\x00\xc8\xff\xff\x00\x00")
            .unwrap()
            .complete()
            .unwrap();
        let ContainerPacket::SendHeaders(h) = p else {
            panic!()
        };
        assert_eq!(h.reason(), None);
        assert_eq!(
            dec(b"AB\x00\x02\x05\x00"),
            Ok(Status::Complete((
                ContainerPacket::EndResponse { reuse: false },
                6
            )))
        );
        assert_eq!(
            dec(b"AB\x00\x03\x06\x1f\xfa"),
            Ok(Status::Complete((ContainerPacket::GetBodyChunk(8186), 7)))
        );
        assert_eq!(
            dec(b"AB\x00\x01\x09"),
            Ok(Status::Complete((ContainerPacket::Cpong, 5)))
        );
    }

    #[test]
    fn header_codes() {
        assert_eq!(response_header_code(b"www-authenticate"), Some(0xA00B));
        assert_eq!(response_header_name(0xA00A), Some(&b"Status"[..]));
        assert_eq!(response_header_name(0xA000), None);
        assert_eq!(response_header_name(0xA00C), None);
        assert_eq!(response_header_code(b"X-Other"), None);
    }

    proptest! {
        #[test]
        fn send_headers_round_trip(
            status in 100u16..=999,
            reason in "[ -~]{0,20}",
            headers in proptest::collection::vec(
                (prop_oneof![
                    Just("Content-Type".to_string()),
                    Just("Set-Cookie".to_string()),
                    Just("WWW-Authenticate".to_string()),
                    "[A-Za-z][A-Za-z0-9-]{0,12}",
                ], "[ -~]{0,16}"), 0..10),
        ) {
            let mut out = Vec::new();
            encode_send_headers(
                status,
                reason.as_bytes(),
                headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
                S,
                &mut out,
            ).unwrap();
            encode_end_response(true, &mut out);
            let (p, n) = dec(&out).unwrap().complete().unwrap();
            for cut in 0..n {
                prop_assert_eq!(dec(&out[..cut]), Ok(Status::Partial));
            }
            let ContainerPacket::SendHeaders(h) = p else { panic!() };
            prop_assert_eq!(h.status(), status);
            let want_reason = if reason.is_empty() { status.to_string() } else { reason.clone() };
            prop_assert_eq!(h.reason(), Some(want_reason.as_bytes()));
            let got: Vec<_> = h.headers().collect();
            prop_assert_eq!(got.len(), headers.len());
            for ((gn, gv), (n, v)) in got.iter().zip(&headers) {
                prop_assert!(gn.eq_ignore_ascii_case(n.as_bytes()));
                prop_assert_eq!(*gv, v.as_bytes());
            }
            prop_assert_eq!(
                dec(&out[n..]),
                Ok(Status::Complete((ContainerPacket::EndResponse { reuse: true }, 6)))
            );
        }

        #[test]
        fn arbitrary_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            let _ = dec(&bytes);
            let mut framed = vec![b'A', b'B', 0, bytes.len() as u8];
            framed.extend_from_slice(&bytes);
            if let Ok(Status::Complete((ContainerPacket::SendHeaders(h), _))) = dec(&framed) {
                prop_assert_eq!(h.headers().count(), usize::from(h.num_headers()));
            }
        }
    }
}
