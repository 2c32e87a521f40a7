//! AJP13 (Apache JServ Protocol 1.3): packet framing, Forward Request, body packets and the
//! container's answers, for both the server side (ringfast) and the client side (the load
//! generator).
//!
//! ```text
//! web server -> ringfast:  0x12 0x34 | len(2) | payload[len]
//! ringfast -> web server:  'A'  'B'  | len(2) | payload[len]
//! ```
//!
//! `payload[0]` is the packet type ([`prefix`]), except for request-body data packets, which have
//! none: `12 34 | n+2 | n(2) | data[n]` (Apache, Tomcat) or, from lighttpd, `12 34 | n | data[n]`.
//! A packet with an empty payload, or with a zero inner length, ends the request body. Which of
//! the two a packet from the web server is depends on the connection's state, so there are two
//! decoders: [`decode_server_packet`] between requests (Forward Request, CPING, SHUTDOWN) and
//! [`decode_body_packet`] while a body is expected.
//!
//! Integers are big-endian `u16`; an AJP string is `len(2) bytes NUL` where `len` excludes the
//! NUL, and `len = 0xFFFF` is the null string with no bytes and no NUL (decoded as `None`). The
//! packet size ([`PacketSize`], default 8192, at most 65536) counts the 4-byte header.
//!
//! Decoders take the start of a buffer and return [`Status::Partial`] until a whole packet is
//! there; the declared length is checked against the packet size before anything else, and
//! decoded values borrow the buffer. Encoders append to a caller's `Vec<u8>` and leave it
//! unchanged when they fail.
//!
//! Security (Ghostcat, CVE-2020-1938): [`ForwardRequest::secret_matches`] compares the `secret`
//! attribute in constant time; [`ForwardRequest::for_each_cgi_var`] passes on only the
//! attributes that Apache always sends (`AJP_REMOTE_PORT`, `AJP_LOCAL_ADDR`,
//! `AJP_SSL_PROTOCOL`) and the TLS details, so no attribute can select what is served.

mod body;
mod cgi;
mod client;
mod reader;
mod request;
mod response;
mod server;

pub use body::{decode_body_packet, encode_body_chunk, encode_body_end, BodyFraming, BodyPacket};
pub use cgi::CgiOptions;
pub use client::{first_body_packet, BodySender, ResponseError, ResponseEvent, ResponseReader};
pub use request::{
    decode_server_packet, encode_cping, encode_forward_request, encode_shutdown, method_code,
    method_name, request_header_code, request_header_name, Attribute, Attributes, ForwardRequest,
    RequestHead, RequestHeaders, ServerPacket,
};
pub use response::{
    decode_container_packet, encode_cpong, encode_end_response, encode_flush,
    encode_get_body_chunk, encode_send_body, encode_send_headers, response_header_code,
    response_header_name, ContainerPacket, ResponseHeaders, SendHeaders,
};
pub use server::{encode_response_head, ServerConn, ServerOptions};

/// Default packet size, header included (Apache `ProxyIOBufferSize`, Tomcat `packetSize`).
pub const DEFAULT_PACKET_SIZE: usize = 8192;
/// Smallest packet size [`PacketSize::new`] accepts.
pub const MIN_PACKET_SIZE: usize = 1024;
/// Largest packet size [`PacketSize::new`] accepts (the payload length must fit in a `u16`).
pub const MAX_PACKET_SIZE: usize = 65536;
/// Bytes of the packet header: magic (2) and payload length (2).
pub const HEADER_LEN: usize = 4;
/// Magic of packets from the web server to the container (ringfast).
pub const SERVER_MAGIC: [u8; 2] = [0x12, 0x34];
/// Magic of packets from the container (ringfast) to the web server.
pub const CONTAINER_MAGIC: [u8; 2] = *b"AB";

/// Packet type codes (the first payload byte).
pub mod prefix {
    /// Web server -> container: a request.
    pub const FORWARD_REQUEST: u8 = 0x02;
    /// Container -> web server: a piece of the response body.
    pub const SEND_BODY_CHUNK: u8 = 0x03;
    /// Container -> web server: status and response headers.
    pub const SEND_HEADERS: u8 = 0x04;
    /// Container -> web server: the response is complete.
    pub const END_RESPONSE: u8 = 0x05;
    /// Container -> web server: send the next piece of the request body.
    pub const GET_BODY_CHUNK: u8 = 0x06;
    /// Web server -> container: shut down (never honoured).
    pub const SHUTDOWN: u8 = 0x07;
    /// Web server -> container: the old PING (unsupported: Tomcat closes the connection).
    pub const PING: u8 = 0x08;
    /// Container -> web server: answer to CPING.
    pub const CPONG: u8 = 0x09;
    /// Web server -> container: are you alive? (answered with CPONG between requests).
    pub const CPING: u8 = 0x0A;
}

pub use super::Status;

/// The largest AJP packet, header included, that a connection accepts and produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PacketSize(u32);

impl PacketSize {
    /// [`DEFAULT_PACKET_SIZE`] (8192).
    pub const DEFAULT: Self = Self(DEFAULT_PACKET_SIZE as u32);

    /// A packet size of `bytes`, which must be within
    /// [`MIN_PACKET_SIZE`]`..=`[`MAX_PACKET_SIZE`]. It must match the web server's
    /// (`ProxyIOBufferSize` for Apache; lighttpd uses 8192).
    pub fn new(bytes: usize) -> Result<Self, InvalidPacketSize> {
        if !(MIN_PACKET_SIZE..=MAX_PACKET_SIZE).contains(&bytes) {
            return Err(InvalidPacketSize(bytes));
        }
        u32::try_from(bytes)
            .map(Self)
            .map_err(|_| InvalidPacketSize(bytes))
    }

    /// The size in bytes, header included.
    pub fn get(self) -> usize {
        self.0 as usize
    }

    /// The largest payload (packet minus its 4-byte header).
    pub fn max_payload(self) -> usize {
        self.get() - HEADER_LEN
    }

    /// The most response bytes one SEND_BODY_CHUNK carries: the packet minus header (4),
    /// prefix (1), chunk length (2) and trailing NUL (1). 8184 by default.
    pub fn max_send_body_chunk(self) -> usize {
        self.get() - 8
    }

    /// The most request bytes one body packet carries: the packet minus header (4) and inner
    /// length (2). 8186 by default; the usual GET_BODY_CHUNK request.
    pub fn max_request_body_chunk(self) -> usize {
        self.get() - 6
    }
}

impl Default for PacketSize {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A packet size outside [`MIN_PACKET_SIZE`]`..=`[`MAX_PACKET_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("AJP packet size {0} is outside {MIN_PACKET_SIZE}..={MAX_PACKET_SIZE}")]
pub struct InvalidPacketSize(pub usize);

/// Why an AJP packet was refused. Each of these closes the connection: after a framing error
/// the next packet boundary is unknown.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The packet does not start with the magic of its direction.
    #[error("bad AJP packet magic {found:02x?}")]
    BadMagic {
        /// The two bytes found.
        found: [u8; 2],
    },
    /// The declared payload length exceeds the packet size.
    #[error("AJP packet of {len} payload bytes exceeds the limit of {max}")]
    PacketTooLarge {
        /// Declared payload length.
        len: usize,
        /// Largest payload allowed by the packet size.
        max: usize,
    },
    /// A packet type this decoder does not accept here.
    #[error("unexpected AJP packet type {0:#04x}")]
    UnknownPacketType(u8),
    /// A container-bound packet with an empty payload.
    #[error("AJP packet has an empty payload")]
    EmptyPacket,
    /// The packet ends inside a field.
    #[error("AJP packet ends inside {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// A string is not followed by its NUL byte.
    #[error("AJP string {field} is not NUL-terminated")]
    MissingNul {
        /// The field being read.
        field: &'static str,
    },
    /// A Forward Request method code outside 1..=27 and 0xFF.
    #[error("unknown AJP method code {0}")]
    UnknownMethod(u8),
    /// Method code 0xFF without a non-empty stored method attribute (0x0D).
    #[error("AJP method 0xFF without a stored method name")]
    MissingStoredMethod,
    /// A coded header name (0xA0xx) that the spec does not define.
    #[error("unknown AJP header code {0:#06x}")]
    UnknownHeaderCode(u16),
    /// A header name that is null or empty.
    #[error("AJP header name is null or empty")]
    InvalidHeaderName,
    /// An attribute code the spec does not define (its length is unknown).
    #[error("unknown AJP attribute code {0:#04x}")]
    UnknownAttribute(u8),
    /// A single-valued attribute sent twice.
    #[error("AJP attribute {0:#04x} appears more than once")]
    DuplicateAttribute(u8),
    /// Bytes after the end of the packet's content (after the 0xFF terminator).
    #[error("{count} bytes after the end of the AJP packet content")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A Content-Length request header that is not a decimal number.
    #[error("AJP Content-Length header is not a decimal number")]
    InvalidContentLength,
    /// More than one Content-Length request header (request smuggling guard).
    #[error("AJP request has more than one Content-Length header")]
    DuplicateContentLength,
    /// A data packet whose inner length disagrees with its payload length.
    #[error("AJP data length {declared} does not match the packet ({payload} payload bytes)")]
    LengthMismatch {
        /// The inner length.
        declared: usize,
        /// The packet's payload length.
        payload: usize,
    },
}

/// Why an encoder refused its input. The output buffer is left as it was.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The packet would exceed the packet size.
    #[error("AJP packet of {len} payload bytes exceeds the limit of {max}")]
    PacketTooLarge {
        /// Payload length the packet would have.
        len: usize,
        /// Largest payload allowed by the packet size.
        max: usize,
    },
    /// A string is too long for an AJP string (0xFFFF and more; header names 0xA000 and more).
    #[error("AJP string {field} is too long")]
    StringTooLong {
        /// The field.
        field: &'static str,
    },
    /// A CR, LF or NUL in a response header or reason phrase (or `:` in a header name).
    #[error("forbidden byte in {field}")]
    ForbiddenByte {
        /// The field.
        field: &'static str,
    },
    /// An empty header name or method.
    #[error("empty {field}")]
    Empty {
        /// The field.
        field: &'static str,
    },
    /// A status outside 100..=999.
    #[error("status {0} is not a three-digit code")]
    InvalidStatus(u16),
    /// More headers than fit in the u16 count.
    #[error("too many headers")]
    TooManyHeaders,
}

/// Split off one packet with `magic` from the start of `buf`: (payload, bytes consumed).
fn decode_frame(
    buf: &[u8],
    magic: [u8; 2],
    size: PacketSize,
) -> Result<Status<(&[u8], usize)>, Error> {
    let [m0, m1, l0, l1, ..] = *buf else {
        // Refuse a wrong magic as early as its first byte shows it.
        if let Some(&b) = buf.first() {
            if b != magic[0] {
                return Err(Error::BadMagic {
                    found: [b, buf.get(1).copied().unwrap_or(0)],
                });
            }
        }
        if let Some(&b) = buf.get(1) {
            if b != magic[1] {
                return Err(Error::BadMagic {
                    found: [magic[0], b],
                });
            }
        }
        return Ok(Status::Partial);
    };
    if [m0, m1] != magic {
        return Err(Error::BadMagic { found: [m0, m1] });
    }
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    if len > size.max_payload() {
        return Err(Error::PacketTooLarge {
            len,
            max: size.max_payload(),
        });
    }
    match buf.get(HEADER_LEN..HEADER_LEN + len) {
        Some(payload) => Ok(Status::Complete((payload, HEADER_LEN + len))),
        None => Ok(Status::Partial),
    }
}

/// Append a packet with `magic` whose payload is written by `fill`, patching in its length.
/// On error (from `fill` or because the payload exceeds `size`) `out` is restored.
fn encode_packet(
    out: &mut Vec<u8>,
    magic: [u8; 2],
    size: PacketSize,
    fill: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&magic);
    out.extend_from_slice(&[0, 0]);
    if let Err(e) = fill(out) {
        out.truncate(start);
        return Err(e);
    }
    let len = out.len() - start - HEADER_LEN;
    if len > size.max_payload() {
        out.truncate(start);
        return Err(EncodeError::PacketTooLarge {
            len,
            max: size.max_payload(),
        });
    }
    // len <= 65532 here.
    let len = (len as u16).to_be_bytes();
    if let Some(slot) = out.get_mut(start + 2..start + HEADER_LEN) {
        slot.copy_from_slice(&len);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_size_bounds() {
        assert_eq!(PacketSize::default().get(), 8192);
        assert_eq!(PacketSize::DEFAULT.max_payload(), 8188);
        assert_eq!(PacketSize::DEFAULT.max_send_body_chunk(), 8184);
        assert_eq!(PacketSize::DEFAULT.max_request_body_chunk(), 8186);
        assert_eq!(
            PacketSize::new(65536).map(PacketSize::max_payload),
            Ok(65532)
        );
        assert_eq!(PacketSize::new(1024).map(PacketSize::get), Ok(1024));
        assert_eq!(PacketSize::new(1023), Err(InvalidPacketSize(1023)));
        assert_eq!(PacketSize::new(65537), Err(InvalidPacketSize(65537)));
    }

    #[test]
    fn framing() {
        let s = PacketSize::DEFAULT;
        assert_eq!(decode_frame(b"", SERVER_MAGIC, s), Ok(Status::Partial));
        assert_eq!(decode_frame(b"\x12", SERVER_MAGIC, s), Ok(Status::Partial));
        assert_eq!(
            decode_frame(b"\x12\x34\x00", SERVER_MAGIC, s),
            Ok(Status::Partial)
        );
        assert_eq!(
            decode_frame(b"\x12\x34\x00\x01", SERVER_MAGIC, s),
            Ok(Status::Partial)
        );
        assert_eq!(
            decode_frame(b"\x12\x34\x00\x01\x0a\xff", SERVER_MAGIC, s),
            Ok(Status::Complete((&b"\x0a"[..], 5)))
        );
        assert_eq!(
            decode_frame(b"G", SERVER_MAGIC, s),
            Err(Error::BadMagic { found: *b"G\0" })
        );
        assert_eq!(
            decode_frame(b"GET / HTTP/1.1", SERVER_MAGIC, s),
            Err(Error::BadMagic { found: *b"GE" })
        );
        assert_eq!(
            decode_frame(b"\x12\x35", SERVER_MAGIC, s),
            Err(Error::BadMagic {
                found: [0x12, 0x35]
            })
        );
        assert_eq!(
            decode_frame(b"AB\x00\x01\x09", SERVER_MAGIC, s),
            Err(Error::BadMagic { found: *b"AB" })
        );
        assert_eq!(
            decode_frame(b"\x12\x34\x1f\xfd", SERVER_MAGIC, s),
            Err(Error::PacketTooLarge {
                len: 8189,
                max: 8188
            })
        );
        assert_eq!(
            decode_frame(
                b"\x12\x34\xff\xff",
                SERVER_MAGIC,
                PacketSize::new(65536).unwrap()
            ),
            Err(Error::PacketTooLarge {
                len: 65535,
                max: 65532
            })
        );
        assert_eq!(
            decode_frame(b"\x12\x34\x1f\xfc", SERVER_MAGIC, s),
            Ok(Status::Partial)
        );
    }

    #[test]
    fn encode_packet_restores_on_overflow() {
        let mut out = b"x".to_vec();
        let r = encode_packet(&mut out, CONTAINER_MAGIC, PacketSize::DEFAULT, |o| {
            o.resize(o.len() + 8189, 0);
            Ok(())
        });
        assert_eq!(
            r,
            Err(EncodeError::PacketTooLarge {
                len: 8189,
                max: 8188
            })
        );
        assert_eq!(out, b"x");
    }
}
