//! Client side (what a web server or the load generator does): the request body sent packet by
//! packet as the container asks for it, and a reader that decodes the container's answer and
//! checks its order (SEND_HEADERS, then SEND_BODY_CHUNK and GET_BODY_CHUNK, then END_RESPONSE).
//!
//! The Forward Request itself is encoded by [`encode_forward_request`](super::encode_forward_request);
//! [`first_body_packet`] appends the body packet a web server sends unasked right after it.

use super::{
    decode_container_packet, encode_body_chunk, ContainerPacket, Error, PacketSize, SendHeaders,
    Status,
};

/// Append the body packet sent unasked right after the Forward Request: the first bytes of
/// `body` (at most [`PacketSize::max_request_body_chunk`]). Nothing is appended for an empty
/// body. Returns how many body bytes it carries: the position of a [`BodySender`].
pub fn first_body_packet(body: &[u8], size: PacketSize, out: &mut Vec<u8>) -> usize {
    if body.is_empty() {
        return 0;
    }
    encode_body_chunk(body, usize::MAX, size, out)
}

/// Answers the container's GET_BODY_CHUNK requests from a request body held by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodySender {
    sent: usize,
    size: PacketSize,
}

impl BodySender {
    /// A sender that already sent `sent` bytes (the value [`first_body_packet`] returned).
    pub fn new(sent: usize, size: PacketSize) -> Self {
        Self { sent, size }
    }

    /// Body bytes sent so far.
    pub fn sent(&self) -> usize {
        self.sent
    }

    /// Append the answer to GET_BODY_CHUNK(`requested`): the next bytes of `body`, or the empty
    /// packet `12 34 00 02 00 00` once all of it was sent. Returns the data bytes appended.
    pub fn answer(&mut self, body: &[u8], requested: u16, out: &mut Vec<u8>) -> usize {
        let rest = body.get(self.sent..).unwrap_or_default();
        let n = encode_body_chunk(rest, usize::from(requested), self.size, out);
        self.sent += n;
        n
    }
}

/// What the container said, in order, as decoded by [`ResponseReader::decode`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseEvent<'a> {
    /// Status and headers (exactly once, first).
    Headers(SendHeaders<'a>),
    /// Response body bytes (possibly empty: a flush).
    Body(&'a [u8]),
    /// The container asks for up to this many more request-body bytes (see [`BodySender`]).
    GetBodyChunk(u16),
    /// The response is complete; `reuse` says whether the connection may carry another request.
    End {
        /// Whether the container keeps the connection.
        reuse: bool,
    },
}

/// Why the container's answer was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The packet itself is malformed.
    #[error(transparent)]
    Packet(#[from] Error),
    /// A packet that is valid but not at this point of a response.
    #[error("AJP {packet} {when}")]
    OutOfOrder {
        /// The packet received.
        packet: &'static str,
        /// Where the response was.
        when: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitHeaders,
    Body,
    Done,
}

/// Decodes one response, packet by packet, checking the order of packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseReader {
    size: PacketSize,
    phase: Phase,
}

impl ResponseReader {
    /// A reader for one response on a connection with packet size `size`.
    pub fn new(size: PacketSize) -> Self {
        Self {
            size,
            phase: Phase::AwaitHeaders,
        }
    }

    /// Ready for the next response on the same connection.
    pub fn reset(&mut self) {
        self.phase = Phase::AwaitHeaders;
    }

    /// Whether END_RESPONSE was decoded.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Decode the packet at the start of `buf`: the event and the bytes it took, or
    /// [`Status::Partial`] until the whole packet is there.
    pub fn decode<'a>(
        &mut self,
        buf: &'a [u8],
    ) -> Result<Status<(ResponseEvent<'a>, usize)>, ResponseError> {
        let (packet, used) = match decode_container_packet(buf, self.size)? {
            Status::Complete(decoded) => decoded,
            Status::Partial => return Ok(Status::Partial),
        };
        let out_of_order = |packet| {
            let when = match self.phase {
                Phase::AwaitHeaders => "before SEND_HEADERS",
                Phase::Body => "after SEND_HEADERS",
                Phase::Done => "after END_RESPONSE",
            };
            Err(ResponseError::OutOfOrder { packet, when })
        };
        let event = match (packet, self.phase) {
            (ContainerPacket::SendHeaders(head), Phase::AwaitHeaders) => {
                self.phase = Phase::Body;
                ResponseEvent::Headers(head)
            }
            (ContainerPacket::SendBodyChunk(data), Phase::Body) => ResponseEvent::Body(data),
            (ContainerPacket::GetBodyChunk(n), Phase::AwaitHeaders | Phase::Body) => {
                ResponseEvent::GetBodyChunk(n)
            }
            (ContainerPacket::EndResponse { reuse }, Phase::Body) => {
                self.phase = Phase::Done;
                ResponseEvent::End { reuse }
            }
            (ContainerPacket::SendHeaders(_), _) => return out_of_order("SEND_HEADERS"),
            (ContainerPacket::SendBodyChunk(_), _) => return out_of_order("SEND_BODY_CHUNK"),
            (ContainerPacket::GetBodyChunk(_), _) => return out_of_order("GET_BODY_CHUNK"),
            (ContainerPacket::EndResponse { .. }, _) => return out_of_order("END_RESPONSE"),
            (_, _) => return out_of_order("CPONG"),
        };
        Ok(Status::Complete((event, used)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ajp::{encode_forward_request, RequestHead};

    const S: PacketSize = PacketSize::DEFAULT;

    /// A 200 with `Content-Type: text/plain`, body "hi", END_RESPONSE reuse, as ringfast and
    /// Tomcat send it.
    const RESPONSE: &[u8] =
        b"AB\x00\x19\x04\x00\xc8\x00\x02OK\x00\x00\x01\xa0\x01\x00\x0atext/plain\x00\
AB\x00\x06\x03\x00\x02hi\x00\
AB\x00\x02\x05\x01";

    fn decode_all(wire: &[u8]) -> Result<Vec<String>, ResponseError> {
        let mut reader = ResponseReader::new(S);
        let mut at = 0;
        let mut seen = Vec::new();
        while let Status::Complete((event, used)) = reader.decode(&wire[at..])? {
            at += used;
            seen.push(match event {
                ResponseEvent::Headers(h) => {
                    let headers: Vec<String> = h
                        .headers()
                        .map(|(n, v)| {
                            format!(
                                "{}={}",
                                String::from_utf8_lossy(n),
                                String::from_utf8_lossy(v)
                            )
                        })
                        .collect();
                    format!("headers {} {}", h.status(), headers.join(","))
                }
                ResponseEvent::Body(b) => format!("body {}", String::from_utf8_lossy(b)),
                ResponseEvent::GetBodyChunk(n) => format!("get {n}"),
                ResponseEvent::End { reuse } => format!("end {reuse}"),
            });
        }
        assert_eq!(at, wire.len(), "every byte decoded");
        Ok(seen)
    }

    #[test]
    fn decodes_a_whole_response() {
        assert_eq!(
            decode_all(RESPONSE).unwrap(),
            ["headers 200 Content-Type=text/plain", "body hi", "end true"]
        );
    }

    #[test]
    fn partial_at_every_cut() {
        for cut in 0..0x1d {
            let mut reader = ResponseReader::new(S);
            assert_eq!(
                reader.decode(&RESPONSE[..cut]),
                Ok(Status::Partial),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn body_before_headers_is_refused() {
        let wire = b"AB\x00\x06\x03\x00\x02hi\x00";
        assert_eq!(
            decode_all(wire),
            Err(ResponseError::OutOfOrder {
                packet: "SEND_BODY_CHUNK",
                when: "before SEND_HEADERS"
            })
        );
    }

    #[test]
    fn anything_after_the_end_is_refused_until_reset() {
        let mut reader = ResponseReader::new(S);
        let mut at = 0;
        while !reader.is_done() {
            let Status::Complete((_, used)) = reader.decode(&RESPONSE[at..]).unwrap() else {
                panic!("partial");
            };
            at += used;
        }
        assert!(matches!(
            reader.decode(RESPONSE),
            Err(ResponseError::OutOfOrder {
                packet: "SEND_HEADERS",
                when: "after END_RESPONSE"
            })
        ));
        reader.reset();
        assert!(matches!(
            reader.decode(RESPONSE),
            Ok(Status::Complete((ResponseEvent::Headers(_), 0x1d)))
        ));
    }

    #[test]
    fn malformed_packets_are_packet_errors() {
        assert_eq!(
            decode_all(b"XY\x00\x01\x05"),
            Err(ResponseError::Packet(Error::BadMagic { found: *b"XY" }))
        );
    }

    #[test]
    fn a_body_is_sent_first_unasked_then_on_request() {
        let body: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let headers: [(&[u8], &[u8]); 1] = [(b"Content-Length", b"10000")];
        let head = RequestHead {
            method: b"POST",
            protocol: Some(b"HTTP/1.1"),
            req_uri: Some(b"/up"),
            remote_addr: Some(b"127.0.0.1"),
            server_name: Some(b"localhost"),
            server_port: 80,
            headers: &headers,
            ..RequestHead::default()
        };
        let mut wire = Vec::new();
        encode_forward_request(&head, S, &mut wire).unwrap();
        let fwd = wire.len();
        let first = first_body_packet(&body, S, &mut wire);
        assert_eq!(first, 8186);
        assert_eq!(&wire[fwd..fwd + 6], b"\x12\x34\x1f\xfc\x1f\xfa");
        assert_eq!(&wire[fwd + 6..], &body[..8186]);

        let mut sender = BodySender::new(first, S);
        let mut out = Vec::new();
        assert_eq!(sender.answer(&body, 1000, &mut out), 1000);
        assert_eq!(&out[..6], b"\x12\x34\x03\xea\x03\xe8");
        out.clear();
        assert_eq!(sender.answer(&body, 8186, &mut out), 814);
        assert_eq!(&out[6..], &body[9186..]);
        out.clear();
        assert_eq!(sender.answer(&body, 8186, &mut out), 0);
        assert_eq!(out, b"\x12\x34\x00\x02\x00\x00");
        assert_eq!(sender.sent(), 10_000);
    }

    #[test]
    fn no_first_packet_without_a_body() {
        let mut out = Vec::new();
        assert_eq!(first_body_packet(b"", S, &mut out), 0);
        assert!(out.is_empty());
    }

    #[test]
    fn get_body_chunk_is_passed_on() {
        let wire = b"AB\x00\x03\x06\x1f\xfa\
AB\x00\x08\x04\x00\xc8\x00\x00\x00\x00\x00\
AB\x00\x02\x05\x00";
        assert_eq!(
            decode_all(wire).unwrap(),
            ["get 8186", "headers 200 ", "end false"]
        );
    }
}
