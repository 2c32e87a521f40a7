//! Reading responses, one reader per protocol: bytes in, completed requests out. The FastCGI,
//! SCGI and AJP readers use the engine's client-side codecs; HTTP/1.1 uses httparse with
//! Content-Length, chunked and read-until-close bodies.

use std::rc::Rc;

use engine::proto::{ajp, fcgi, scgi};

use crate::request::Encoded;
use crate::target::Protocol;

/// Largest response head accepted (CGI head or HTTP head).
const MAX_HEAD: usize = 64 * 1024;
/// Most HTTP response headers parsed.
const MAX_HTTP_HEADERS: usize = 64;

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
            Protocol::Fcgi => Reader::Fcgi(FcgiReader {
                slots: (0..mux).map(|_| None).collect(),
                keepalive,
                expect,
            }),
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
            Protocol::Http => Reader::Http(HttpReader {
                state: HttpState::Head,
                status: 0,
                reuse: false,
                body: BodyCheck::new(expect),
                keepalive,
                head,
            }),
        }
    }

    /// Request `id` was sent (ids are 1..=mux).
    pub fn start(&mut self, id: u16, request: &Encoded) {
        match self {
            Reader::Fcgi(r) => {
                if let Some(slot) = r.slots.get_mut(usize::from(id) - 1) {
                    let mut cgi = match slot.take() {
                        Some(old) => old.cgi,
                        None => scgi::ResponseReader::new(MAX_HEAD),
                    };
                    cgi.reset();
                    *slot = Some(FcgiSlot {
                        cgi,
                        body: BodyCheck::new(r.expect.clone()),
                    });
                }
            }
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
            Reader::Http(r) => {
                r.state = HttpState::Head;
                r.status = 0;
                r.body.reset();
            }
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
            Reader::Http(r) if matches!(r.state, HttpState::UntilClose) => {
                done.push(Done {
                    id: 1,
                    status: r.status,
                    body_ok: r.body.finish(),
                    reuse: false,
                });
                Ok(())
            }
            _ => Err(ProtoError(
                "connection closed before the response ended".into(),
            )),
        }
    }
}

/// FastCGI: one CGI reader per request id.
#[derive(Debug)]
pub struct FcgiReader {
    slots: Vec<Option<FcgiSlot>>,
    keepalive: bool,
    expect: Option<Rc<[u8]>>,
}

#[derive(Debug)]
struct FcgiSlot {
    cgi: scgi::ResponseReader,
    body: BodyCheck,
}

impl FcgiReader {
    fn read(&mut self, buf: &[u8], done: &mut Vec<Done>) -> Result<usize, ProtoError> {
        let mut at = 0;
        loop {
            let rest = buf.get(at..).unwrap_or_default();
            let (record, used) = match fcgi::decode_response_record(rest).map_err(perr)? {
                fcgi::Decode::Complete(record, used) => (record, used),
                fcgi::Decode::Partial => return Ok(at),
            };
            at += used;
            match record {
                fcgi::ResponseRecord::Stdout { request_id, data } => {
                    let slot = self.slot(request_id)?;
                    let body = &mut slot.body;
                    slot.cgi.feed(data, |b| body.feed(b)).map_err(perr)?;
                }
                fcgi::ResponseRecord::EndRequest { request_id, end } => {
                    let slot = self.slot(request_id)?;
                    if end.protocol_status != fcgi::protocol_status::REQUEST_COMPLETE {
                        return Err(ProtoError(format!(
                            "END_REQUEST with protocol status {}",
                            end.protocol_status
                        )));
                    }
                    let finished = slot.cgi.finish().map_err(perr)?;
                    let body_ok = slot.body.finish();
                    if let Some(s) = self.slots.get_mut(usize::from(request_id) - 1) {
                        // Keep the reader's memory for the next request on this id.
                        if let Some(mut old) = s.take() {
                            old.cgi.reset();
                            *s = Some(old);
                        }
                    }
                    done.push(Done {
                        id: request_id,
                        status: finished.status,
                        body_ok,
                        reuse: self.keepalive,
                    });
                }
                _ => {}
            }
        }
    }

    fn slot(&mut self, id: u16) -> Result<&mut FcgiSlot, ProtoError> {
        usize::from(id)
            .checked_sub(1)
            .and_then(|i| self.slots.get_mut(i))
            .and_then(Option::as_mut)
            .ok_or_else(|| {
                ProtoError(format!(
                    "record for request id {id}, which is not in flight"
                ))
            })
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HttpState {
    Head,
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkCrlf,
    Trailer,
    UntilClose,
}

/// HTTP/1.1.
#[derive(Debug)]
pub struct HttpReader {
    state: HttpState,
    status: u16,
    reuse: bool,
    body: BodyCheck,
    keepalive: bool,
    head: bool,
}

impl HttpReader {
    fn read(&mut self, buf: &[u8], done: &mut Vec<Done>) -> Result<usize, ProtoError> {
        let mut at = 0;
        loop {
            let rest = buf.get(at..).unwrap_or_default();
            match self.state {
                HttpState::Head => {
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HTTP_HEADERS];
                    let mut resp = httparse::Response::new(&mut headers);
                    let used = match resp.parse(rest).map_err(perr)? {
                        httparse::Status::Complete(n) => n,
                        httparse::Status::Partial if rest.len() > MAX_HEAD => {
                            return Err(ProtoError("HTTP response head too large".into()))
                        }
                        httparse::Status::Partial => return Ok(at),
                    };
                    at += used;
                    let status = resp.code.unwrap_or(0);
                    let version = resp.version.unwrap_or(1);
                    let mut length = None;
                    let mut chunked = false;
                    let mut close = version == 0;
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            let text = std::str::from_utf8(h.value).map_err(perr)?;
                            length = Some(text.trim().parse::<u64>().map_err(perr)?);
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            chunked = h.value.eq_ignore_ascii_case(b"chunked")
                                || h.value.ends_with(b"chunked");
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            let v = h.value.to_ascii_lowercase();
                            if v.windows(5).any(|w| w == b"close") {
                                close = true;
                            } else if v.windows(10).any(|w| w == b"keep-alive") {
                                close = false;
                            }
                        }
                    }
                    self.status = status;
                    self.reuse = self.keepalive && !close;
                    let no_body = self.head || matches!(status, 100..=199 | 204 | 304);
                    self.state = if no_body {
                        HttpState::Length(0)
                    } else if chunked {
                        HttpState::ChunkSize
                    } else if let Some(n) = length {
                        HttpState::Length(n)
                    } else {
                        self.reuse = false;
                        HttpState::UntilClose
                    };
                    if self.state == HttpState::Length(0) {
                        self.complete(done);
                        return Ok(at);
                    }
                }
                HttpState::Length(left) => {
                    let n = (rest.len() as u64).min(left);
                    self.body.feed(rest.get(..n as usize).unwrap_or_default());
                    at += n as usize;
                    self.state = HttpState::Length(left - n);
                    if left == n {
                        self.complete(done);
                        return Ok(at);
                    }
                    return Ok(at);
                }
                HttpState::UntilClose => {
                    self.body.feed(rest);
                    return Ok(at + rest.len());
                }
                HttpState::ChunkSize => match httparse::parse_chunk_size(rest)
                    .map_err(|_| ProtoError("bad HTTP chunk size".into()))?
                {
                    httparse::Status::Complete((used, 0)) => {
                        at += used;
                        self.state = HttpState::Trailer;
                    }
                    httparse::Status::Complete((used, size)) => {
                        at += used;
                        self.state = HttpState::ChunkData(size);
                    }
                    httparse::Status::Partial => return Ok(at),
                },
                HttpState::ChunkData(left) => {
                    if rest.is_empty() {
                        return Ok(at);
                    }
                    let n = (rest.len() as u64).min(left);
                    self.body.feed(rest.get(..n as usize).unwrap_or_default());
                    at += n as usize;
                    self.state = if left == n {
                        HttpState::ChunkCrlf
                    } else {
                        HttpState::ChunkData(left - n)
                    };
                }
                HttpState::ChunkCrlf => match rest {
                    [b'\r', b'\n', ..] => {
                        at += 2;
                        self.state = HttpState::ChunkSize;
                    }
                    [] | [b'\r'] => return Ok(at),
                    _ => return Err(ProtoError("HTTP chunk not followed by CRLF".into())),
                },
                HttpState::Trailer => {
                    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                        return Ok(at);
                    };
                    let line = rest.get(..nl).unwrap_or_default();
                    at += nl + 1;
                    if line.is_empty() || line == b"\r" {
                        self.complete(done);
                        return Ok(at);
                    }
                }
            }
        }
    }

    fn complete(&mut self, done: &mut Vec<Done>) {
        done.push(Done {
            id: 1,
            status: self.status,
            body_ok: self.body.finish(),
            reuse: self.reuse,
        });
        self.state = HttpState::Head;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn http(expect: Option<&[u8]>) -> Reader {
        let mut r = Reader::new(
            Protocol::Http,
            1,
            true,
            false,
            expect.map(Rc::from),
            ajp::PacketSize::DEFAULT,
        );
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
        let mut r = Reader::new(
            Protocol::Http,
            1,
            true,
            true,
            None,
            ajp::PacketSize::DEFAULT,
        );
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
        let mut r = Reader::new(
            Protocol::Fcgi,
            2,
            true,
            false,
            Some(Rc::from(&b"ok"[..])),
            ajp::PacketSize::DEFAULT,
        );
        r.start(1, &encoded());
        r.start(2, &encoded());
        let mut wire = Vec::new();
        fcgi::encode_stream(&mut wire, fcgi::rtype::STDOUT, 2, b"Status: 201\r\n\r\nok");
        fcgi::encode_stream(
            &mut wire,
            fcgi::rtype::STDOUT,
            1,
            b"Content-Type: a\r\n\r\nno",
        );
        fcgi::encode_end_request(&mut wire, 2, 0, 0);
        fcgi::encode_end_request(&mut wire, 1, 0, 0);
        for piece in [1, 5, wire.len()] {
            let mut r2 = Reader::new(
                Protocol::Fcgi,
                2,
                true,
                false,
                Some(Rc::from(&b"ok"[..])),
                ajp::PacketSize::DEFAULT,
            );
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
        fcgi::encode_end_request(&mut stray, 9, 0, 0);
        assert!(run(&mut r, &stray, 100).is_err());
    }

    #[test]
    fn fcgi_overloaded_is_a_protocol_error() {
        let mut r = Reader::new(
            Protocol::Fcgi,
            1,
            true,
            false,
            None,
            ajp::PacketSize::DEFAULT,
        );
        r.start(1, &encoded());
        let mut wire = Vec::new();
        fcgi::encode_end_request(&mut wire, 1, 0, fcgi::protocol_status::OVERLOADED);
        assert!(run(&mut r, &wire, 100).is_err());
    }

    #[test]
    fn scgi_ends_with_the_connection() {
        let mut r = Reader::new(
            Protocol::Scgi,
            1,
            false,
            false,
            Some(Rc::from(&b"hi"[..])),
            ajp::PacketSize::DEFAULT,
        );
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
        let mut r = Reader::new(
            Protocol::Ajp,
            1,
            true,
            false,
            None,
            ajp::PacketSize::DEFAULT,
        );
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
