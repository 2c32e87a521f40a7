//! HTTP/1.1 responses: the head parsed with httparse, bodies framed by Content-Length, chunked
//! transfer coding, or the end of the connection.

use super::{perr, BodyCheck, Done, ProtoError, MAX_HEAD};

/// Most HTTP response headers parsed.
const MAX_HTTP_HEADERS: usize = 64;

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
    pub(super) fn new(keepalive: bool, head: bool, body: BodyCheck) -> Self {
        Self {
            state: HttpState::Head,
            status: 0,
            reuse: false,
            body,
            keepalive,
            head,
        }
    }

    /// A request was sent.
    pub(super) fn start(&mut self) {
        self.state = HttpState::Head;
        self.status = 0;
        self.body.reset();
    }

    /// Whether the body in progress ends with the connection (no length, not chunked).
    pub(super) fn ends_with_the_connection(&self) -> bool {
        self.state == HttpState::UntilClose
    }

    pub(super) fn read(&mut self, buf: &[u8], done: &mut Vec<Done>) -> Result<usize, ProtoError> {
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

    pub(super) fn complete(&mut self, done: &mut Vec<Done>) {
        done.push(Done {
            id: 1,
            status: self.status,
            body_ok: self.body.finish(),
            reuse: self.reuse,
        });
        self.state = HttpState::Head;
    }
}
