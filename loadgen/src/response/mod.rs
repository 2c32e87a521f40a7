//! Reading responses, one reader per protocol: bytes in, completed requests out. The FastCGI,
//! SCGI and AJP readers use the engine's client-side codecs; HTTP/1.1 uses httparse with
//! Content-Length, chunked and read-until-close bodies.

use std::rc::Rc;

mod fcgi;
mod http;

use proto::{ajp, scgi};

pub use fcgi::FcgiReader;
pub use http::HttpReader;

use crate::request::Encoded;
use crate::target::Protocol;

/// Largest response head accepted (CGI head or HTTP head).
const MAX_HEAD: usize = 64 * 1024;

/// A response read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    /// The request id (FastCGI; 1 otherwise).
    pub id: u16,
    /// The HTTP status.
    pub status: u16,
    /// The body matched `--expect-body` (always true without it).
    pub body_ok: bool,
    /// The connection may carry another request.
    pub reuse: bool,
}

/// The server broke the protocol: the connection is closed and its requests count as protocol
/// errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProtoError(pub String);

fn perr(e: impl std::fmt::Display) -> ProtoError {
    ProtoError(e.to_string())
}

/// Compares a body, piece by piece, with the expected one.
#[derive(Debug, Clone)]
struct BodyCheck {
    expected: Option<Rc<[u8]>>,
    pos: usize,
    ok: bool,
}

impl BodyCheck {
    fn new(expected: Option<Rc<[u8]>>) -> Self {
        Self {
            expected,
            pos: 0,
            ok: true,
        }
    }

    fn reset(&mut self) {
        self.pos = 0;
        self.ok = true;
    }

    fn feed(&mut self, data: &[u8]) {
        if let Some(expected) = &self.expected {
            let end = self.pos + data.len();
            self.ok = self.ok && expected.get(self.pos..end) == Some(data);
            self.pos = end;
        }
    }

    fn finish(&self) -> bool {
        match &self.expected {
            Some(expected) => self.ok && self.pos == expected.len(),
            None => true,
        }
    }
}

/// The response reader of one connection.
#[derive(Debug)]
pub enum Reader {
    /// FastCGI, several requests by id.
    Fcgi(FcgiReader),
    /// SCGI: the response ends with the connection.
    Scgi(CgiStream),
    /// AJP13.
    Ajp(AjpReader),
    /// HTTP/1.1.
    Http(HttpReader),
}

impl Reader {
    /// A reader for `protocol` with up to `mux` requests in flight. `head`: the requests are
    /// HEAD requests (an HTTP answer to them has no body, whatever its headers say).
    pub fn new(
        protocol: Protocol,
        mux: usize,
        keepalive: bool,
        head: bool,
        expect: Option<Rc<[u8]>>,
        ajp_size: ajp::PacketSize,
    ) -> Self {
        match protocol {
            Protocol::Fcgi => Reader::Fcgi(FcgiReader::new(mux, keepalive, expect)),
            Protocol::Scgi => Reader::Scgi(CgiStream {
                cgi: scgi::ResponseReader::new(MAX_HEAD),
                body: BodyCheck::new(expect),
            }),
            Protocol::Ajp => Reader::Ajp(AjpReader {
                reader: ajp::ResponseReader::new(ajp_size),
                status: 0,
                sender: ajp::BodySender::new(0, ajp_size),
                body: BodyCheck::new(expect),
                keepalive,
            }),
            Protocol::Http => {
                Reader::Http(HttpReader::new(keepalive, head, BodyCheck::new(expect)))
            }
        }
    }

    /// Request `id` was sent (ids are 1..=mux).
    pub fn start(&mut self, id: u16, request: &Encoded) {
        match self {
            Reader::Fcgi(r) => r.start(id),
            Reader::Scgi(r) => {
                r.cgi.reset();
                r.body.reset();
            }
            Reader::Ajp(r) => {
                r.reader.reset();
                r.status = 0;
                r.sender = ajp::BodySender::new(request.ajp_first_sent, request.ajp_packet_size);
                r.body.reset();
            }
            Reader::Http(r) => r.start(),
        }
    }

    /// Decodes what it can of `buf`: returns the bytes used; completed responses go to `done`,
    /// bytes to send back (AJP body packets) to `out`.
    pub fn read(
        &mut self,
        buf: &[u8],
        request: &Encoded,
        done: &mut Vec<Done>,
        out: &mut Vec<u8>,
    ) -> Result<usize, ProtoError> {
        match self {
            Reader::Fcgi(r) => r.read(buf, done),
            Reader::Scgi(r) => {
                let body = &mut r.body;
                r.cgi.feed(buf, |b| body.feed(b)).map_err(perr)?;
                Ok(buf.len())
            }
            Reader::Ajp(r) => r.read(buf, request, done, out),
            Reader::Http(r) => r.read(buf, done),
        }
    }

    /// The server closed the connection: completes a response that ends with it (SCGI, HTTP
    /// without a length); a response cut short is a protocol error.
    pub fn eof(&mut self, done: &mut Vec<Done>) -> Result<(), ProtoError> {
        match self {
            Reader::Scgi(r) => {
                let finished = r.cgi.finish().map_err(perr)?;
                done.push(Done {
                    id: 1,
                    status: finished.status,
                    body_ok: r.body.finish(),
                    reuse: false,
                });
                Ok(())
            }
            Reader::Http(r) if r.ends_with_the_connection() => {
                r.complete(done);
                Ok(())
            }
            _ => Err(ProtoError(
                "connection closed before the response ended".into(),
            )),
        }
    }
}

/// SCGI: the CGI response runs to the end of the connection.
#[derive(Debug)]
pub struct CgiStream {
    cgi: scgi::ResponseReader,
    body: BodyCheck,
}

/// AJP13.
#[derive(Debug)]
pub struct AjpReader {
    reader: ajp::ResponseReader,
    status: u16,
    sender: ajp::BodySender,
    body: BodyCheck,
    keepalive: bool,
}

impl AjpReader {
    fn read(
        &mut self,
        buf: &[u8],
        request: &Encoded,
        done: &mut Vec<Done>,
        out: &mut Vec<u8>,
    ) -> Result<usize, ProtoError> {
        let mut at = 0;
        loop {
            let rest = buf.get(at..).unwrap_or_default();
            let (event, used) = match self.reader.decode(rest).map_err(perr)? {
                ajp::Status::Complete(decoded) => decoded,
                ajp::Status::Partial => return Ok(at),
            };
            at += used;
            match event {
                ajp::ResponseEvent::Headers(head) => self.status = head.status(),
                ajp::ResponseEvent::Body(data) => self.body.feed(data),
                ajp::ResponseEvent::GetBodyChunk(n) => {
                    self.sender.answer(&request.body, n, out);
                }
                ajp::ResponseEvent::End { reuse } => {
                    done.push(Done {
                        id: 1,
                        status: self.status,
                        body_ok: self.body.finish(),
                        reuse: reuse && self.keepalive,
                    });
                    return Ok(at);
                }
                _ => return Err(ProtoError("unexpected AJP event".into())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::fcgi as codec;

    fn encoded() -> Encoded {
        Encoded {
            bytes: Vec::new(),
            fcgi_slots: None,
            body: Vec::new(),
            ajp_first_sent: 0,
            ajp_packet_size: ajp::PacketSize::DEFAULT,
        }
    }

    /// Feeds `wire` in pieces of `piece` bytes, keeping unread bytes, as a connection does.
    fn run(reader: &mut Reader, wire: &[u8], piece: usize) -> Result<Vec<Done>, ProtoError> {
        let req = encoded();
        let mut done = Vec::new();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for chunk in wire.chunks(piece) {
            buf.extend_from_slice(chunk);
            let used = reader.read(&buf, &req, &mut done, &mut out)?;
            buf.drain(..used);
        }
        Ok(done)
    }

    /// A reader for `protocol` with `mux` slots, keep-alive or not, for HEAD or not, checking
    /// the body against `expect`.
    fn reader(
        protocol: Protocol,
        mux: usize,
        keepalive: bool,
        head: bool,
        expect: Option<&[u8]>,
    ) -> Reader {
        Reader::new(
            protocol,
            mux,
            keepalive,
            head,
            expect.map(Rc::from),
            ajp::PacketSize::DEFAULT,
        )
    }

    fn http(expect: Option<&[u8]>) -> Reader {
        let mut r = reader(Protocol::Http, 1, true, false, expect);
        r.start(1, &encoded());
        r
    }

    #[test]
    fn http_content_length_and_chunked_at_every_piece_size() {
        let length = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\nX-T: 1\r\n\r\n";
        for wire in [&length[..], &chunked[..]] {
            for piece in 1..=wire.len() {
                let done = run(&mut http(Some(b"hello")), wire, piece).unwrap();
                assert_eq!(
                    done,
                    [Done {
                        id: 1,
                        status: 200,
                        body_ok: true,
                        reuse: true
                    }],
                    "piece {piece} of {:?}",
                    String::from_utf8_lossy(wire)
                );
            }
        }
    }

    #[test]
    fn http_wrong_body_and_close() {
        let wire = b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 3\r\n\r\nnop";
        let done = run(&mut http(Some(b"hello")), wire, 7).unwrap();
        assert_eq!(
            done,
            [Done {
                id: 1,
                status: 404,
                body_ok: false,
                reuse: false
            }]
        );
    }

    #[test]
    fn http_head_responses_have_no_body() {
        let mut r = reader(Protocol::Http, 1, true, true, None);
        r.start(1, &encoded());
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        let done = run(&mut r, wire, 9).unwrap();
        assert_eq!(done.len(), 2);
    }

    #[test]
    fn http_until_close() {
        let mut r = http(None);
        let done = run(&mut r, b"HTTP/1.0 200 OK\r\n\r\nabc", 4).unwrap();
        assert!(done.is_empty());
        let mut done = Vec::new();
        r.eof(&mut done).unwrap();
        assert_eq!(
            done,
            [Done {
                id: 1,
                status: 200,
                body_ok: true,
                reuse: false
            }]
        );
    }

    #[test]
    fn http_garbage_is_a_protocol_error() {
        assert!(run(&mut http(None), b"SSH-2.0-OpenSSH\r\n\r\n", 100).is_err());
    }

    #[test]
    fn fcgi_interleaved_requests() {
        let mut r = reader(Protocol::Fcgi, 2, true, false, Some(&b"ok"[..]));
        r.start(1, &encoded());
        r.start(2, &encoded());
        let mut wire = Vec::new();
        codec::encode_stream(&mut wire, codec::rtype::STDOUT, 2, b"Status: 201\r\n\r\nok");
        codec::encode_stream(
            &mut wire,
            codec::rtype::STDOUT,
            1,
            b"Content-Type: a\r\n\r\nno",
        );
        codec::encode_end_request(&mut wire, 2, 0, 0);
        codec::encode_end_request(&mut wire, 1, 0, 0);
        for piece in [1, 5, wire.len()] {
            let mut r2 = reader(Protocol::Fcgi, 2, true, false, Some(&b"ok"[..]));
            r2.start(1, &encoded());
            r2.start(2, &encoded());
            let done = run(&mut r2, &wire, piece).unwrap();
            assert_eq!(
                done,
                [
                    Done {
                        id: 2,
                        status: 201,
                        body_ok: true,
                        reuse: true
                    },
                    Done {
                        id: 1,
                        status: 200,
                        body_ok: false,
                        reuse: true
                    },
                ]
            );
        }
        // A record for an id not in flight is a protocol error.
        let mut stray = Vec::new();
        codec::encode_end_request(&mut stray, 9, 0, 0);
        assert!(run(&mut r, &stray, 100).is_err());
    }

    #[test]
    fn fcgi_overloaded_is_a_protocol_error() {
        let mut r = reader(Protocol::Fcgi, 1, true, false, None);
        r.start(1, &encoded());
        let mut wire = Vec::new();
        codec::encode_end_request(&mut wire, 1, 0, codec::protocol_status::OVERLOADED);
        assert!(run(&mut r, &wire, 100).is_err());
    }

    #[test]
    fn scgi_ends_with_the_connection() {
        let mut r = reader(Protocol::Scgi, 1, false, false, Some(&b"hi"[..]));
        r.start(1, &encoded());
        assert!(run(&mut r, b"Status: 200 OK\r\n\r\nhi", 3)
            .unwrap()
            .is_empty());
        let mut done = Vec::new();
        r.eof(&mut done).unwrap();
        assert_eq!(
            done,
            [Done {
                id: 1,
                status: 200,
                body_ok: true,
                reuse: false
            }]
        );
    }

    #[test]
    fn ajp_answers_get_body_chunk_and_completes() {
        let mut r = reader(Protocol::Ajp, 1, true, false, None);
        let mut req = encoded();
        req.body = b"0123456789".to_vec();
        req.ajp_first_sent = 4;
        r.start(1, &req);
        let wire =
            b"AB\x00\x03\x06\x1f\xfaAB\x00\x08\x04\x00\xc8\x00\x00\x00\x00\x00AB\x00\x02\x05\x01";
        let mut done = Vec::new();
        let mut out = Vec::new();
        let used = r.read(wire, &req, &mut done, &mut out).unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(out, b"\x12\x34\x00\x08\x00\x06456789");
        assert_eq!(
            done,
            [Done {
                id: 1,
                status: 200,
                body_ok: true,
                reuse: true
            }]
        );
    }
}
