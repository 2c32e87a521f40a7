//! Client side: a whole request (netstring head and body) and a reader of the CGI response that
//! comes back. The same response format is the content of FastCGI STDOUT, so the reader serves
//! both protocols: it is fed the bytes as they come, in pieces of any size.

use super::{decode_response_head, encode_request, EncodeError, ResponseError, Status};

/// Append a complete SCGI request to `out`: the netstring head (`CONTENT_LENGTH` = the body's
/// length, `SCGI=1`, then `pairs`) followed by `body`. On error `out` is left as it was.
pub fn encode_request_with_body<'p, I>(
    pairs: I,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError>
where
    I: IntoIterator<Item = (&'p [u8], &'p [u8])>,
{
    encode_request(body.len() as u64, pairs, out)?;
    out.extend_from_slice(body);
    Ok(())
}

/// Why a response was refused by a [`ResponseReader`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The head is malformed or too large.
    #[error(transparent)]
    Head(#[from] ResponseError),
    /// A Content-Length header that is not a decimal number.
    #[error("response Content-Length is not a decimal number")]
    InvalidContentLength,
    /// More body bytes than the Content-Length header announced.
    #[error("response body is longer than its Content-Length {declared}")]
    BodyTooLong {
        /// The Content-Length.
        declared: u64,
    },
    /// The response ended before its head did.
    #[error("response ended before its head was complete")]
    NoHead,
    /// The response ended before the Content-Length bytes of body arrived.
    #[error("response body ended after {received} of {declared} bytes")]
    Truncated {
        /// The Content-Length.
        declared: u64,
        /// Body bytes received.
        received: u64,
    },
}

/// A response that was read to its end, as returned by [`ResponseReader::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// The HTTP status (see [`ResponseHead::status`](super::ResponseHead::status)).
    pub status: u16,
    /// Body bytes received.
    pub body_len: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head,
    Body {
        status: u16,
        content_length: Option<u64>,
        received: u64,
    },
}

/// Reads one CGI response (`Status:` and header lines, a blank line, the body) from pieces of
/// any size. The head is collected in an internal buffer only when it spans several pieces; the
/// body is handed to the caller piece by piece and never stored.
#[derive(Debug, Clone)]
pub struct ResponseReader {
    max_head: usize,
    head: Vec<u8>,
    phase: Phase,
}

impl ResponseReader {
    /// A reader that refuses heads larger than `max_head` bytes
    /// (see [`DEFAULT_MAX_RESPONSE_HEAD`](super::DEFAULT_MAX_RESPONSE_HEAD)).
    pub fn new(max_head: usize) -> Self {
        Self {
            max_head,
            head: Vec::new(),
            phase: Phase::Head,
        }
    }

    /// Ready for another response (keeps the head buffer's memory).
    pub fn reset(&mut self) {
        self.head.clear();
        self.phase = Phase::Head;
    }

    /// The status, once the head is complete.
    pub fn status(&self) -> Option<u16> {
        match self.phase {
            Phase::Head => None,
            Phase::Body { status, .. } => Some(status),
        }
    }

    /// Whether the head was read and the body reached its Content-Length (always false without
    /// a Content-Length: then only the end of the stream ends the body).
    pub fn is_complete(&self) -> bool {
        matches!(self.phase, Phase::Body { content_length: Some(n), received, .. } if received == n)
    }

    /// Feed the next piece of the response; `on_body` receives the body bytes it contains.
    pub fn feed(&mut self, data: &[u8], mut on_body: impl FnMut(&[u8])) -> Result<(), ReadError> {
        if let Phase::Body { .. } = self.phase {
            return self.body(data, &mut on_body);
        }
        if self.head.is_empty() {
            match decode_response_head(data, self.max_head)? {
                Status::Complete(head) => {
                    let status = head.status();
                    let content_length =
                        head.get(b"Content-Length").map(parse_length).transpose()?;
                    let rest = data.get(head.consumed()..).unwrap_or_default();
                    self.phase = Phase::Body {
                        status,
                        content_length,
                        received: 0,
                    };
                    return self.body(rest, &mut on_body);
                }
                Status::Partial => {
                    self.head.extend_from_slice(data);
                    return Ok(());
                }
            }
        }
        self.head.extend_from_slice(data);
        let (status, content_length, consumed) =
            match decode_response_head(&self.head, self.max_head)? {
                Status::Complete(head) => (
                    head.status(),
                    head.get(b"Content-Length").map(parse_length).transpose()?,
                    head.consumed(),
                ),
                Status::Partial => return Ok(()),
            };
        self.phase = Phase::Body {
            status,
            content_length,
            received: 0,
        };
        let head = std::mem::take(&mut self.head);
        let result = self.body(head.get(consumed..).unwrap_or_default(), &mut on_body);
        self.head = head;
        self.head.clear();
        result
    }

    fn body(&mut self, data: &[u8], on_body: &mut impl FnMut(&[u8])) -> Result<(), ReadError> {
        if let Phase::Body {
            content_length,
            received,
            ..
        } = &mut self.phase
        {
            *received += data.len() as u64;
            if let Some(declared) = *content_length {
                if *received > declared {
                    return Err(ReadError::BodyTooLong { declared });
                }
            }
            if !data.is_empty() {
                on_body(data);
            }
        }
        Ok(())
    }

    /// The response is over (end of stream, or FastCGI's end of STDOUT): its status and body
    /// length, or why it is incomplete.
    pub fn finish(&self) -> Result<Finished, ReadError> {
        match self.phase {
            Phase::Head => Err(ReadError::NoHead),
            Phase::Body {
                content_length: Some(declared),
                received,
                ..
            } if received < declared => Err(ReadError::Truncated { declared, received }),
            Phase::Body {
                status, received, ..
            } => Ok(Finished {
                status,
                body_len: received,
            }),
        }
    }
}

fn parse_length(value: &[u8]) -> Result<u64, ReadError> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(ReadError::InvalidContentLength);
    }
    Ok(value
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scgi::DEFAULT_MAX_RESPONSE_HEAD;

    const RESPONSE: &[u8] =
        b"Status: 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";

    fn read_in_pieces(wire: &[u8], piece: usize) -> (Result<Finished, ReadError>, Vec<u8>) {
        let mut reader = ResponseReader::new(DEFAULT_MAX_RESPONSE_HEAD);
        let mut body = Vec::new();
        for chunk in wire.chunks(piece) {
            if let Err(e) = reader.feed(chunk, |b| body.extend_from_slice(b)) {
                return (Err(e), body);
            }
        }
        (reader.finish(), body)
    }

    #[test]
    fn request_with_body_on_the_wire() {
        let mut out = Vec::new();
        let pairs: [(&[u8], &[u8]); 1] = [(b"REQUEST_METHOD", b"POST")];
        encode_request_with_body(pairs, b"abc", &mut out).unwrap();
        assert_eq!(
            out,
            b"44:CONTENT_LENGTH\x003\x00SCGI\x001\x00REQUEST_METHOD\x00POST\x00,abc"
        );
    }

    #[test]
    fn request_with_reserved_name_leaves_out_unchanged() {
        let mut out = b"keep".to_vec();
        let pairs: [(&[u8], &[u8]); 1] = [(b"SCGI", b"1")];
        assert_eq!(
            encode_request_with_body(pairs, b"abc", &mut out),
            Err(EncodeError::ReservedName)
        );
        assert_eq!(out, b"keep");
    }

    #[test]
    fn same_result_for_every_piece_size() {
        for piece in 1..=RESPONSE.len() {
            let (finished, body) = read_in_pieces(RESPONSE, piece);
            assert_eq!(
                finished,
                Ok(Finished {
                    status: 201,
                    body_len: 5
                }),
                "piece {piece}"
            );
            assert_eq!(body, b"hello", "piece {piece}");
        }
    }

    #[test]
    fn complete_once_content_length_is_reached() {
        let mut reader = ResponseReader::new(DEFAULT_MAX_RESPONSE_HEAD);
        reader
            .feed(&RESPONSE[..RESPONSE.len() - 1], |_| {})
            .unwrap();
        assert!(!reader.is_complete());
        assert_eq!(reader.status(), Some(201));
        reader
            .feed(&RESPONSE[RESPONSE.len() - 1..], |_| {})
            .unwrap();
        assert!(reader.is_complete());
        reader.reset();
        assert_eq!(reader.status(), None);
        assert_eq!(reader.finish(), Err(ReadError::NoHead));
    }

    #[test]
    fn without_content_length_the_end_of_stream_ends_the_body() {
        let (finished, body) = read_in_pieces(b"Content-Type: text/plain\n\nabc", 4);
        assert_eq!(
            finished,
            Ok(Finished {
                status: 200,
                body_len: 3
            })
        );
        assert_eq!(body, b"abc");
    }

    #[test]
    fn short_and_long_bodies_are_errors() {
        let wire = b"Content-Length: 5\r\n\r\nhel";
        assert_eq!(
            read_in_pieces(wire, 7).0,
            Err(ReadError::Truncated {
                declared: 5,
                received: 3
            })
        );
        let wire = b"Content-Length: 2\r\n\r\nhel";
        assert_eq!(
            read_in_pieces(wire, 100).0,
            Err(ReadError::BodyTooLong { declared: 2 })
        );
        let wire = b"Content-Length: x\r\n\r\n";
        assert_eq!(
            read_in_pieces(wire, 3).0,
            Err(ReadError::InvalidContentLength)
        );
    }

    #[test]
    fn malformed_and_oversized_heads_are_errors() {
        assert_eq!(
            read_in_pieces(b"no colon here\r\n\r\n", 5).0,
            Err(ReadError::Head(ResponseError::MalformedHeader))
        );
        let mut reader = ResponseReader::new(16);
        let r = reader.feed(b"X-Long: aaaaaaaaaaaaaaaaaaaa", |_| {});
        assert_eq!(
            r,
            Err(ReadError::Head(ResponseError::HeadTooLarge { max: 16 }))
        );
    }
}
