//! SCGI: the netstring header block, the client-side encoder and the CGI response head.
//!
//! An SCGI request is one netstring holding NUL-separated name/value pairs, then the body:
//!
//! ```text
//! request   := len ":" headers "," body
//! len       := decimal digits, no leading zero
//! headers   := 1*(name NUL value NUL)       ; first pair is CONTENT_LENGTH, digits only
//! body      := exactly CONTENT_LENGTH bytes
//! ```
//!
//! [`decode`] reads the header block from the start of a buffer and returns
//! [`Status::Partial`] until the whole block (up to and including the `,`) is there. The length
//! prefix is checked against [`Limits::max_header_block`] as soon as its digits are read, so a peer
//! cannot make the caller buffer more than the limit. Nothing is allocated: the decoded
//! [`Request`] borrows the caller's buffer, and [`Request::headers`] walks the pairs in place.
//!
//! `SCGI=1` is accepted but not required (nginx sends it only through `scgi_params`). Duplicate
//! names other than `CONTENT_LENGTH` are passed through in order, because nginx repeats `HTTP_*`
//! pairs for repeated request headers; [`Request::get`] returns the first.
//!
//! The response is not framed by SCGI: it is a CGI header block (`Status: 200 OK`, headers, blank
//! line) and the body, and the connection close ends it. [`encode_response_head`] writes the head
//! (with `Status:`, never an HTTP status line, which Apache rejects) and is usable for FastCGI
//! too; [`decode_response_head`] is its client-side counterpart for the load generator.

use std::fmt;
use std::ops::Range;

mod client;
mod server;
pub use client::{encode_request_with_body, Finished, ReadError, ResponseReader};
pub use server::ServerConn;

/// Default for [`Limits::max_header_block`]: 64 KiB of name/value pairs.
pub const DEFAULT_MAX_HEADER_BLOCK: usize = 64 * 1024;

/// Default for [`decode_response_head`]'s `max` argument: 64 KiB of response head.
pub const DEFAULT_MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Limits applied by [`decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted header block (the netstring's declared length, without the length prefix,
    /// the `:` and the `,`). Default [`DEFAULT_MAX_HEADER_BLOCK`].
    pub max_header_block: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_block: DEFAULT_MAX_HEADER_BLOCK,
        }
    }
}

pub use super::Status;

/// Why an SCGI header block was refused. Each of these closes the connection.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The netstring length has a character other than a decimal digit before the `:`.
    #[error("SCGI netstring length is not a decimal number followed by ':'")]
    InvalidLength,
    /// The netstring length starts with `0` and has more digits.
    #[error("SCGI netstring length has a leading zero")]
    LeadingZero,
    /// The declared header block is larger than [`Limits::max_header_block`].
    #[error("SCGI header block is larger than the limit of {max} bytes")]
    HeaderBlockTooLarge {
        /// The limit in force.
        max: usize,
    },
    /// The header block is not followed by `,`.
    #[error("SCGI header block is not followed by ','")]
    MissingComma,
    /// The header block is empty (`0:,`), so it lacks CONTENT_LENGTH.
    #[error("SCGI header block is empty (CONTENT_LENGTH is required)")]
    EmptyHeaderBlock,
    /// The header block does not end with a NUL byte, or ends with a name that has no value.
    #[error("SCGI header block does not end with a complete name NUL value NUL pair")]
    UnterminatedPair,
    /// A pair has an empty name.
    #[error("SCGI header block has an empty name")]
    EmptyName,
    /// The first pair is not CONTENT_LENGTH.
    #[error("the first SCGI header is not CONTENT_LENGTH")]
    ContentLengthNotFirst,
    /// CONTENT_LENGTH is empty, has a character other than a digit, or overflows 64 bits.
    #[error("SCGI CONTENT_LENGTH is not a decimal number")]
    InvalidContentLength,
    /// CONTENT_LENGTH appears more than once.
    #[error("SCGI CONTENT_LENGTH appears more than once")]
    DuplicateContentLength,
    /// The `SCGI` header is present with a value other than `1`.
    #[error("SCGI version header is not \"1\"")]
    UnsupportedVersion,
}

/// Why an encoder refused its input. Nothing is written to the output buffer when it fails.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A header name is empty.
    #[error("header name is empty")]
    EmptyName,
    /// A header name or value contains a byte the format cannot carry (NUL in SCGI; CR, LF,
    /// NUL, or `:` in a name, in a CGI response head).
    #[error("header name or value contains a forbidden byte")]
    ForbiddenByte,
    /// The caller passed CONTENT_LENGTH or SCGI, which [`encode_request`] writes itself.
    #[error("CONTENT_LENGTH and SCGI are written by the encoder")]
    ReservedName,
    /// The response status is not a three-digit number (100..=999).
    #[error("status {0} is not a three-digit code")]
    InvalidStatus(u16),
}

/// Why a CGI response head was refused by [`decode_response_head`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// No blank line within the first `max` bytes.
    #[error("response head is larger than {max} bytes")]
    HeadTooLarge {
        /// The limit in force.
        max: usize,
    },
    /// A header line has no `:` or an empty name.
    #[error("malformed response header line")]
    MalformedHeader,
    /// The `Status:` header does not start with a three-digit code.
    #[error("malformed Status header")]
    InvalidStatus,
}

// ===== decoding =====

/// A decoded SCGI request head, borrowing the buffer given to [`decode`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    block: &'a [u8],
    block_start: usize,
    content_length: u64,
    consumed: usize,
}

impl<'a> Request<'a> {
    /// The value of CONTENT_LENGTH: how many body bytes follow the header block.
    pub fn content_length(&self) -> u64 {
        self.content_length
    }

    /// How many bytes of the buffer the head took (length prefix, `:`, block and `,`): the body
    /// starts at this offset.
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// The name/value pairs, in wire order, CONTENT_LENGTH first.
    pub fn headers(&self) -> Pairs<'a> {
        Pairs::new(self.block)
    }

    /// The value of the first pair named `name` (exact, case-sensitive match).
    pub fn get(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The raw header block (the pairs, without prefix and comma).
    pub fn header_block(&self) -> &'a [u8] {
        self.block
    }

    /// Where [`Self::header_block`] sits in the decoded buffer, for callers that keep offsets
    /// instead of borrows. [`Pairs::new`] iterates a copy of those bytes.
    pub fn header_block_range(&self) -> Range<usize> {
        self.block_start..self.block_start + self.block.len()
    }
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("content_length", &self.content_length)
            .field("consumed", &self.consumed)
            .field("headers", &self.headers().count())
            .finish()
    }
}

/// Iterator over the name/value pairs of an SCGI header block.
///
/// Over a block accepted by [`decode`] it yields every pair. Over any other bytes it yields the
/// well-formed pairs up to the first malformed one and stops; it never panics.
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    rest: &'a [u8],
}

impl<'a> Pairs<'a> {
    /// Iterate the pairs of `block` (NUL-separated `name NUL value NUL` sequences).
    pub fn new(block: &'a [u8]) -> Self {
        Self { rest: block }
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (name, after_name) = split_nul(self.rest)?;
        let (value, rest) = split_nul(after_name)?;
        self.rest = rest;
        Some((name, value))
    }
}

/// Split `bytes` at its first NUL: (before, after). `None` when there is no NUL.
fn split_nul(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == 0)?;
    let (head, tail) = bytes.split_at(at);
    Some((head, tail.get(1..)?))
}

/// Decode the SCGI header block at the start of `buf`.
///
/// Returns [`Status::Partial`] while the block is incomplete; the caller reads more and calls
/// again with the whole buffer. No more than `limits.max_header_block` plus the length prefix
/// (at most 22 bytes) is ever needed, and an oversized length prefix is refused as soon as its
/// digits exceed the limit. Bytes after the head (the body, or anything else) are not looked at.
pub fn decode<'a>(buf: &'a [u8], limits: &Limits) -> Result<Status<Request<'a>>, Error> {
    // Length prefix: digits up to ':'.
    let mut len: usize = 0;
    let mut digits = 0usize;
    let mut colon = None;
    for (i, &b) in buf.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                if digits == 1 && len == 0 {
                    return Err(Error::LeadingZero);
                }
                len = len
                    .checked_mul(10)
                    .and_then(|l| l.checked_add(usize::from(b - b'0')))
                    .ok_or(Error::HeaderBlockTooLarge {
                        max: limits.max_header_block,
                    })?;
                if len > limits.max_header_block {
                    return Err(Error::HeaderBlockTooLarge {
                        max: limits.max_header_block,
                    });
                }
                digits += 1;
            }
            b':' if digits > 0 => {
                colon = Some(i);
                break;
            }
            _ => return Err(Error::InvalidLength),
        }
    }
    let Some(colon) = colon else {
        return Ok(Status::Partial);
    };
    let block_start = colon + 1;
    // len <= max_header_block, so these cannot overflow for any sane limit; stay checked anyway.
    let block_end = block_start
        .checked_add(len)
        .ok_or(Error::HeaderBlockTooLarge {
            max: limits.max_header_block,
        })?;
    let (Some(block), Some(&comma)) = (buf.get(block_start..block_end), buf.get(block_end)) else {
        return Ok(Status::Partial);
    };
    if comma != b',' {
        return Err(Error::MissingComma);
    }
    let content_length = validate_block(block)?;
    Ok(Status::Complete(Request {
        block,
        block_start,
        content_length,
        consumed: block_end + 1,
    }))
}

/// Check the pairs of a complete header block; return CONTENT_LENGTH.
fn validate_block(block: &[u8]) -> Result<u64, Error> {
    if block.is_empty() {
        return Err(Error::EmptyHeaderBlock);
    }
    if block.last() != Some(&0) {
        return Err(Error::UnterminatedPair);
    }
    let mut rest = block;
    let mut content_length = None;
    while !rest.is_empty() {
        let (name, after_name) = split_nul(rest).ok_or(Error::UnterminatedPair)?;
        let (value, after_value) = split_nul(after_name).ok_or(Error::UnterminatedPair)?;
        rest = after_value;
        if name.is_empty() {
            return Err(Error::EmptyName);
        }
        match name {
            b"CONTENT_LENGTH" => {
                if content_length.is_some() {
                    return Err(Error::DuplicateContentLength);
                }
                content_length = Some(parse_content_length(value)?);
            }
            _ if content_length.is_none() => return Err(Error::ContentLengthNotFirst),
            b"SCGI" if value != b"1" => return Err(Error::UnsupportedVersion),
            _ => {}
        }
    }
    // The loop ran at least once and its first pair either set content_length or returned.
    content_length.ok_or(Error::ContentLengthNotFirst)
}

/// Digits only, at least one, no sign or space, fits in u64.
fn parse_content_length(value: &[u8]) -> Result<u64, Error> {
    if value.is_empty() {
        return Err(Error::InvalidContentLength);
    }
    value.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return Err(Error::InvalidContentLength);
        }
        acc.checked_mul(10)
            .and_then(|a| a.checked_add(u64::from(b - b'0')))
            .ok_or(Error::InvalidContentLength)
    })
}

// ===== encoding (client side) =====

/// Append a complete SCGI request head to `out`: `CONTENT_LENGTH`, `SCGI=1`, then `pairs` in
/// order, as one netstring. The caller writes the `content_length` body bytes after it.
///
/// `pairs` must not contain CONTENT_LENGTH or SCGI; names must be non-empty; no name or value
/// may contain NUL. On error `out` is left as it was.
pub fn encode_request<'p, I>(
    content_length: u64,
    pairs: I,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError>
where
    I: IntoIterator<Item = (&'p [u8], &'p [u8])>,
{
    let mut digits = [0u8; 20];
    let cl = crate::decimal(content_length, &mut digits);
    let fixed: [(&[u8], &[u8]); 2] = [(b"CONTENT_LENGTH", cl), (b"SCGI", b"1")];
    let start = out.len();
    let pairs = pairs.into_iter().map(|(n, v)| {
        if n == b"CONTENT_LENGTH" || n == b"SCGI" {
            Err(EncodeError::ReservedName)
        } else {
            Ok((n, v))
        }
    });
    let result = encode_block(fixed.into_iter().map(Ok).chain(pairs), out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Append `pairs` to `out` as one netstring (`len:` block `,`) with no check of SCGI rules:
/// CONTENT_LENGTH is not added and its place is not enforced. For tests and for peers that need
/// exact control of the pair order (nginx sends no `SCGI` pair without `scgi_params`).
///
/// Names must be non-empty and no name or value may contain NUL. On error `out` is left as it
/// was.
pub fn encode_netstring<'p, I>(pairs: I, out: &mut Vec<u8>) -> Result<(), EncodeError>
where
    I: IntoIterator<Item = (&'p [u8], &'p [u8])>,
{
    let start = out.len();
    let result = encode_block(pairs.into_iter().map(Ok), out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_block<'p, I>(pairs: I, out: &mut Vec<u8>) -> Result<(), EncodeError>
where
    I: Iterator<Item = Result<(&'p [u8], &'p [u8]), EncodeError>>,
{
    let start = out.len();
    for pair in pairs {
        let (name, value) = pair?;
        if name.is_empty() {
            return Err(EncodeError::EmptyName);
        }
        if name.contains(&0) || value.contains(&0) {
            return Err(EncodeError::ForbiddenByte);
        }
        out.extend_from_slice(name);
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    let len = out.len() - start;
    let mut digits = [0u8; 20];
    let prefix = crate::decimal(len as u64, &mut digits);
    out.extend_from_slice(prefix);
    out.push(b':');
    // Move "len:" in front of the block.
    if let Some(tail) = out.get_mut(start..) {
        tail.rotate_right(prefix.len() + 1);
    }
    out.push(b',');
    Ok(())
}

// ===== CGI response head (server side and client side) =====

/// Append a CGI response head to `out`: `Status: NNN reason`, each header as `Name: value`, all
/// CRLF-terminated, then the blank line. The body follows, written raw.
///
/// This is the answer format of SCGI (and the content of FastCGI STDOUT). `status` must be in
/// 100..=999; an empty `reason` writes just the code. Names must be non-empty and free of CR,
/// LF, NUL, `:` and spaces; values and the reason must be free of CR, LF and NUL. On error `out`
/// is left as it was.
pub fn encode_response_head<'h, I>(
    status: u16,
    reason: &[u8],
    headers: I,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError>
where
    I: IntoIterator<Item = (&'h [u8], &'h [u8])>,
{
    if !(100..=999).contains(&status) {
        return Err(EncodeError::InvalidStatus(status));
    }
    if has_line_break(reason) {
        return Err(EncodeError::ForbiddenByte);
    }
    let start = out.len();
    let mut digits = [0u8; 20];
    out.extend_from_slice(b"Status: ");
    out.extend_from_slice(crate::decimal(u64::from(status), &mut digits));
    if !reason.is_empty() {
        out.push(b' ');
        out.extend_from_slice(reason);
    }
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        let bad_name = name.is_empty()
            || name
                .iter()
                .any(|&b| matches!(b, b'\r' | b'\n' | 0 | b':' | b' ' | b'\t'));
        if bad_name || has_line_break(value) {
            out.truncate(start);
            return Err(if name.is_empty() {
                EncodeError::EmptyName
            } else {
                EncodeError::ForbiddenByte
            });
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

fn has_line_break(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0))
}

/// A CGI response head decoded by [`decode_response_head`], borrowing its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead<'a> {
    status: u16,
    reason: &'a [u8],
    head: &'a [u8],
    consumed: usize,
}

impl<'a> ResponseHead<'a> {
    /// The status: from `Status:`, else 302 when a `Location:` header is present, else 200
    /// (the rule nginx and lighttpd apply).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The reason phrase from `Status:` (empty when absent).
    pub fn reason(&self) -> &'a [u8] {
        self.reason
    }

    /// How many bytes the head took, blank line included: the body starts here.
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// Every header line as (name, value), `Status` included, value trimmed of spaces and tabs.
    pub fn headers(&self) -> ResponseHeaders<'a> {
        ResponseHeaders { rest: self.head }
    }

    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn get(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// Iterator over the header lines of a [`ResponseHead`].
#[derive(Debug, Clone)]
pub struct ResponseHeaders<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for ResponseHeaders<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (line, rest) = match self.rest.iter().position(|&b| b == b'\n') {
                Some(at) => (self.rest.get(..at)?, self.rest.get(at + 1..)?),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                if self.rest.is_empty() {
                    return None;
                }
                continue;
            }
            let colon = line.iter().position(|&b| b == b':')?;
            let (name, value) = line.split_at(colon);
            return Some((name, trim(value.get(1..)?)));
        }
    }
}

fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// Decode a CGI response head (header lines up to a blank line; CRLF or bare LF) at the start
/// of `buf`, as an SCGI client reads it. Returns [`Status::Partial`] until the blank line is in
/// the buffer, and [`ResponseError::HeadTooLarge`] when it is not within the first `max` bytes
/// (see [`DEFAULT_MAX_RESPONSE_HEAD`]).
pub fn decode_response_head(
    buf: &[u8],
    max: usize,
) -> Result<Status<ResponseHead<'_>>, ResponseError> {
    let window = buf.get(..max).unwrap_or(buf);
    let mut line_start = 0;
    let mut end = None;
    for (i, &b) in window.iter().enumerate() {
        if b != b'\n' {
            continue;
        }
        let line = window.get(line_start..i).unwrap_or_default();
        if line.is_empty() || line == b"\r" {
            end = Some((line_start, i + 1));
            break;
        }
        line_start = i + 1;
    }
    let Some((head_end, consumed)) = end else {
        if buf.len() >= max {
            return Err(ResponseError::HeadTooLarge { max });
        }
        return Ok(Status::Partial);
    };
    let head = buf.get(..head_end).unwrap_or_default();
    let mut status = None;
    let mut reason: &[u8] = b"";
    let mut location = false;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(ResponseError::MalformedHeader)?;
        let (name, value) = line.split_at(colon);
        if name.is_empty() {
            return Err(ResponseError::MalformedHeader);
        }
        let value = trim(value.get(1..).unwrap_or_default());
        if name.eq_ignore_ascii_case(b"Status") && status.is_none() {
            let (code, rest) = value.split_at(value.len().min(3));
            let ok = code.len() == 3
                && code.iter().all(u8::is_ascii_digit)
                && matches!(rest.first(), None | Some(b' '));
            if !ok {
                return Err(ResponseError::InvalidStatus);
            }
            status = Some(
                code.iter()
                    .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0')),
            );
            reason = trim(rest);
        } else if name.eq_ignore_ascii_case(b"Location") {
            location = true;
        }
    }
    let status = status.unwrap_or(if location { 302 } else { 200 });
    Ok(Status::Complete(ResponseHead {
        status,
        reason,
        head,
        consumed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(buf: &[u8]) -> Result<Status<Request<'_>>, Error> {
        decode(buf, &Limits::default())
    }

    fn complete(buf: &[u8]) -> Request<'_> {
        match dec(buf) {
            Ok(Status::Complete(r)) => r,
            other => panic!("expected a complete request, got {other:?}"),
        }
    }

    /// The example of the SCGI spec (nascheme `doc/protocol.txt`).
    const SPEC_EXAMPLE: &[u8] =
        b"70:CONTENT_LENGTH\x0027\x00SCGI\x001\x00REQUEST_METHOD\x00POST\x00\
REQUEST_URI\x00/deepthought\x00,What is the answer to life?";

    /// What nginx 1.22 `scgi_pass` with `include scgi_params` sends for `GET /hello?x=1`: the
    /// module writes CONTENT_LENGTH itself, then scgi_params (SCGI=1 in the middle), then HTTP_*.
    const NGINX: &[u8] = b"372:CONTENT_LENGTH\x000\x00REQUEST_METHOD\x00GET\x00\
REQUEST_URI\x00/hello?x=1\x00QUERY_STRING\x00x=1\x00CONTENT_TYPE\x00\x00\
DOCUMENT_URI\x00/hello\x00DOCUMENT_ROOT\x00/usr/share/nginx/html\x00SCGI\x001\x00\
SERVER_PROTOCOL\x00HTTP/1.1\x00REQUEST_SCHEME\x00http\x00REMOTE_ADDR\x00127.0.0.1\x00\
REMOTE_PORT\x0045678\x00SERVER_PORT\x008080\x00SERVER_NAME\x00localhost\x00\
HTTP_HOST\x00127.0.0.1:8080\x00HTTP_USER_AGENT\x00curl/7.88.1\x00HTTP_ACCEPT\x00*/*\x00\
HTTP_X_DUP\x00a\x00HTTP_X_DUP\x00b\x00,";

    /// nginx without `scgi_params`: only what the module adds (no SCGI pair).
    const NGINX_BARE: &[u8] = b"17:CONTENT_LENGTH\x005\x00,hello";

    /// lighttpd 1.4.69 mod_scgi: CGI env with CONTENT_LENGTH first, SCGI=1 appended last.
    const LIGHTTPD: &[u8] =
        b"147:CONTENT_LENGTH\x003\x00QUERY_STRING\x00\x00REQUEST_URI\x00/echo\x00\
REQUEST_METHOD\x00POST\x00SERVER_PROTOCOL\x00HTTP/1.1\x00CONTENT_TYPE\x00text/plain\x00\
REMOTE_ADDR\x00127.0.0.1\x00SCGI\x001\x00,abc";

    /// Apache mod_proxy_scgi: CONTENT_LENGTH, then SCGI=1 second, then subprocess_env.
    const APACHE: &[u8] = b"152:CONTENT_LENGTH\x000\x00SCGI\x001\x00HTTP_HOST\x00localhost\x00\
SERVER_SOFTWARE\x00Apache/2.4.71 (Debian)\x00REQUEST_METHOD\x00GET\x00\
REQUEST_URI\x00/a%20b\x00SCRIPT_NAME\x00/a b\x00QUERY_STRING\x00\x00,";

    #[test]
    fn fixture_lengths_are_right() {
        // Keep the hand-written prefixes honest.
        for fixture in [SPEC_EXAMPLE, NGINX, NGINX_BARE, LIGHTTPD, APACHE] {
            let colon = fixture.iter().position(|&b| b == b':').unwrap();
            let len: usize = std::str::from_utf8(&fixture[..colon])
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(
                fixture[colon + 1 + len],
                b',',
                "{:?}",
                String::from_utf8_lossy(fixture)
            );
        }
    }

    #[test]
    fn spec_example() {
        let r = complete(SPEC_EXAMPLE);
        assert_eq!(r.content_length(), 27);
        assert_eq!(
            &SPEC_EXAMPLE[r.consumed()..],
            b"What is the answer to life?"
        );
        let pairs: Vec<_> = r.headers().collect();
        assert_eq!(
            pairs,
            vec![
                (&b"CONTENT_LENGTH"[..], &b"27"[..]),
                (b"SCGI", b"1"),
                (b"REQUEST_METHOD", b"POST"),
                (b"REQUEST_URI", b"/deepthought"),
            ]
        );
        assert_eq!(r.get(b"REQUEST_URI"), Some(&b"/deepthought"[..]));
        assert_eq!(r.get(b"request_uri"), None);
        assert_eq!(&SPEC_EXAMPLE[r.header_block_range()], r.header_block());
        assert_eq!(r.header_block_range().start, 3);
    }

    #[test]
    fn nginx_lighttpd_apache_captures() {
        let r = complete(NGINX);
        assert_eq!(r.content_length(), 0);
        assert_eq!(r.consumed(), NGINX.len());
        assert_eq!(r.get(b"CONTENT_TYPE"), Some(&b""[..]));
        assert_eq!(r.get(b"HTTP_X_DUP"), Some(&b"a"[..]));
        assert_eq!(r.headers().filter(|(n, _)| *n == b"HTTP_X_DUP").count(), 2);
        assert_eq!(r.headers().count(), 19);

        let r = complete(NGINX_BARE);
        assert_eq!(r.content_length(), 5);
        assert_eq!(r.get(b"SCGI"), None);
        assert_eq!(&NGINX_BARE[r.consumed()..], b"hello");

        let r = complete(LIGHTTPD);
        assert_eq!(r.content_length(), 3);
        assert_eq!(r.headers().last(), Some((&b"SCGI"[..], &b"1"[..])));
        assert_eq!(&LIGHTTPD[r.consumed()..], b"abc");

        let r = complete(APACHE);
        assert_eq!(r.get(b"SCRIPT_NAME"), Some(&b"/a b"[..]));
        assert_eq!(r.consumed(), APACHE.len());
    }

    #[test]
    fn partial_at_every_split_point() {
        for fixture in [SPEC_EXAMPLE, NGINX, NGINX_BARE, LIGHTTPD, APACHE] {
            let full = complete(fixture);
            for cut in 0..full.consumed() {
                assert_eq!(dec(&fixture[..cut]), Ok(Status::Partial), "cut at {cut}");
            }
            for cut in full.consumed()..=fixture.len() {
                assert_eq!(dec(&fixture[..cut]), Ok(Status::Complete(full)));
            }
        }
    }

    #[test]
    fn length_prefix_errors() {
        assert_eq!(dec(b""), Ok(Status::Partial));
        assert_eq!(dec(b"12"), Ok(Status::Partial));
        assert_eq!(dec(b":"), Err(Error::InvalidLength));
        assert_eq!(dec(b"x1:"), Err(Error::InvalidLength));
        assert_eq!(dec(b"1x:"), Err(Error::InvalidLength));
        assert_eq!(dec(b" 1:"), Err(Error::InvalidLength));
        assert_eq!(dec(b"-1:"), Err(Error::InvalidLength));
        assert_eq!(dec(b"+1:"), Err(Error::InvalidLength));
        assert_eq!(dec(b"01:"), Err(Error::LeadingZero));
        assert_eq!(dec(b"00"), Err(Error::LeadingZero));
        assert_eq!(dec(b"0:,"), Err(Error::EmptyHeaderBlock));
        assert_eq!(dec(b"0:"), Ok(Status::Partial));
        assert_eq!(dec(b"0:x"), Err(Error::MissingComma));
    }

    #[test]
    fn limit_is_checked_from_the_digits() {
        let limits = Limits {
            max_header_block: 100,
        };
        let too_large = Err(Error::HeaderBlockTooLarge { max: 100 });
        assert_eq!(decode(b"100", &limits), Ok(Status::Partial));
        assert_eq!(decode(b"101", &limits), too_large);
        // Refused before the colon arrives.
        assert_eq!(decode(b"1000", &limits), too_large);
        assert_eq!(decode(b"99999999999999999999999999999", &limits), too_large);
        let huge = Limits {
            max_header_block: usize::MAX,
        };
        assert_eq!(
            decode(b"99999999999999999999999999999:", &huge),
            Err(Error::HeaderBlockTooLarge { max: usize::MAX })
        );
        assert_eq!(
            dec(b"65537:"),
            Err(Error::HeaderBlockTooLarge {
                max: DEFAULT_MAX_HEADER_BLOCK
            })
        );
        assert_eq!(dec(b"65536:"), Ok(Status::Partial));
    }

    #[test]
    fn block_errors() {
        let cases: &[(&[u8], Error)] = &[
            (b"17:CONTENT_LENGTH\x005\x00;", Error::MissingComma),
            (b"16:CONTENT_LENGTH\x005\x00,", Error::MissingComma),
            (b"18:CONTENT_LENGTH\x005\x00x,", Error::UnterminatedPair),
            (b"15:CONTENT_LENGTH\x00,", Error::UnterminatedPair),
            (b"19:CONTENT_LENGTH\x005\x00A\x00,", Error::UnterminatedPair),
            (b"1:\x00,", Error::UnterminatedPair),
            (b"2:\x00\x00,", Error::EmptyName),
            (b"20:CONTENT_LENGTH\x005\x00\x00x\x00,", Error::EmptyName),
            (b"7:SCGI\x001\x00,", Error::ContentLengthNotFirst),
            (
                b"24:SCGI\x001\x00CONTENT_LENGTH\x005\x00,",
                Error::ContentLengthNotFirst,
            ),
            (b"16:CONTENT_LENGTH\x00\x00,", Error::InvalidContentLength),
            (b"18:CONTENT_LENGTH\x00-5\x00,", Error::InvalidContentLength),
            (b"18:CONTENT_LENGTH\x00 5\x00,", Error::InvalidContentLength),
            (b"18:CONTENT_LENGTH\x005 \x00,", Error::InvalidContentLength),
            (b"18:CONTENT_LENGTH\x00+5\x00,", Error::InvalidContentLength),
            (
                b"36:CONTENT_LENGTH\x0018446744073709551616\x00,",
                Error::InvalidContentLength,
            ),
            (
                b"34:CONTENT_LENGTH\x005\x00CONTENT_LENGTH\x005\x00,",
                Error::DuplicateContentLength,
            ),
            (
                b"24:CONTENT_LENGTH\x005\x00SCGI\x002\x00,",
                Error::UnsupportedVersion,
            ),
            (
                b"23:CONTENT_LENGTH\x005\x00SCGI\x00\x00,",
                Error::UnsupportedVersion,
            ),
        ];
        for (input, error) in cases {
            assert_eq!(
                dec(input),
                Err(*error),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // u64::MAX itself is a number; leading zeros in the value are digits too.
        let r = complete(b"36:CONTENT_LENGTH\x0018446744073709551615\x00,");
        assert_eq!(r.content_length(), u64::MAX);
        assert_eq!(
            complete(b"19:CONTENT_LENGTH\x00007\x00,").content_length(),
            7
        );
        // Empty values and bytes >= 0x80 are fine.
        let r = complete(b"24:CONTENT_LENGTH\x000\x00X\x00\x00\xff\x00\xfe\x00,");
        assert_eq!(r.headers().nth(1), Some((&b"X"[..], &b""[..])));
        assert_eq!(r.headers().nth(2), Some((&b"\xff"[..], &b"\xfe"[..])));
    }

    #[test]
    fn pairs_over_arbitrary_bytes_stop_quietly() {
        assert_eq!(
            Pairs::new(b"a\0b\0c\0").collect::<Vec<_>>(),
            vec![(&b"a"[..], &b"b"[..])]
        );
        assert_eq!(Pairs::new(b"abc").count(), 0);
        assert_eq!(Pairs::new(b"").count(), 0);
    }

    #[test]
    fn encode_request_matches_spec_example() {
        let mut out = b"junk".to_vec();
        encode_request(
            27,
            [
                (&b"REQUEST_METHOD"[..], &b"POST"[..]),
                (b"REQUEST_URI", b"/deepthought"),
            ],
            &mut out,
        )
        .unwrap();
        assert_eq!(&out[..4], b"junk");
        assert_eq!(&out[4..], &SPEC_EXAMPLE[..SPEC_EXAMPLE.len() - 27]);
    }

    #[test]
    fn encode_errors_leave_the_buffer_alone() {
        let mut out = b"x".to_vec();
        let cases: &[(&[u8], &[u8], EncodeError)] = &[
            (b"", b"v", EncodeError::EmptyName),
            (b"A\0", b"v", EncodeError::ForbiddenByte),
            (b"A", b"v\0", EncodeError::ForbiddenByte),
            (b"CONTENT_LENGTH", b"1", EncodeError::ReservedName),
            (b"SCGI", b"1", EncodeError::ReservedName),
        ];
        for &(n, v, e) in cases {
            assert_eq!(
                encode_request(0, [(&b"OK"[..], &b"1"[..]), (n, v)], &mut out),
                Err(e)
            );
            assert_eq!(out, b"x");
        }
        assert_eq!(
            encode_netstring([(&b""[..], &b""[..])], &mut out),
            Err(EncodeError::EmptyName)
        );
        assert_eq!(out, b"x");
    }

    #[test]
    fn encode_netstring_raw() {
        let mut out = Vec::new();
        encode_netstring([(&b"CONTENT_LENGTH"[..], &b"5"[..])], &mut out).unwrap();
        assert_eq!(out, &NGINX_BARE[..21]);
        out.clear();
        encode_netstring(std::iter::empty(), &mut out).unwrap();
        assert_eq!(out, b"0:,");
    }

    #[test]
    fn response_head_round_trip() {
        let mut out = Vec::new();
        encode_response_head(
            404,
            b"Not Found",
            [
                (&b"Content-Type"[..], &b"text/plain"[..]),
                (b"X-Empty", b""),
            ],
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nX-Empty: \r\n\r\n"
        );
        out.extend_from_slice(b"body");
        let head = decode_response_head(&out, DEFAULT_MAX_RESPONSE_HEAD)
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(head.status(), 404);
        assert_eq!(head.reason(), b"Not Found");
        assert_eq!(&out[head.consumed()..], b"body");
        assert_eq!(head.get(b"content-type"), Some(&b"text/plain"[..]));
        assert_eq!(head.get(b"x-empty"), Some(&b""[..]));
        assert_eq!(head.headers().count(), 3);
        for cut in 0..head.consumed() {
            assert_eq!(decode_response_head(&out[..cut], 1000), Ok(Status::Partial));
        }

        out.clear();
        encode_response_head(200, b"", std::iter::empty(), &mut out).unwrap();
        assert_eq!(out, b"Status: 200\r\n\r\n");
    }

    #[test]
    fn response_head_encode_errors() {
        let mut out = b"x".to_vec();
        let none = std::iter::empty::<(&[u8], &[u8])>;
        assert_eq!(
            encode_response_head(99, b"", none(), &mut out),
            Err(EncodeError::InvalidStatus(99))
        );
        assert_eq!(
            encode_response_head(1000, b"", none(), &mut out),
            Err(EncodeError::InvalidStatus(1000))
        );
        assert_eq!(
            encode_response_head(200, b"O\r\nK", none(), &mut out),
            Err(EncodeError::ForbiddenByte)
        );
        for (n, v) in [
            (&b"A:B"[..], &b"v"[..]),
            (b"A B", b"v"),
            (b"A\n", b"v"),
            (b"A", b"v\r\nX: y"),
            (b"A", b"v\0"),
        ] {
            assert_eq!(
                encode_response_head(200, b"OK", [(n, v)], &mut out),
                Err(EncodeError::ForbiddenByte)
            );
        }
        assert_eq!(
            encode_response_head(200, b"OK", [(&b""[..], &b"v"[..])], &mut out),
            Err(EncodeError::EmptyName)
        );
        assert_eq!(out, b"x");
    }

    #[test]
    fn response_head_decode_rules() {
        let max = DEFAULT_MAX_RESPONSE_HEAD;
        let get = |b: &'static [u8]| decode_response_head(b, max).unwrap().complete().unwrap();
        assert_eq!(get(b"Location: /x\r\n\r\n").status(), 302);
        assert_eq!(get(b"Content-Type: a\n\nbody").status(), 200);
        assert_eq!(get(b"Content-Type: a\n\nbody").consumed(), 17);
        assert_eq!(get(b"\r\n").status(), 200);
        assert_eq!(get(b"status:  201 Created \r\n\r\n").reason(), b"Created");
        assert_eq!(get(b"Status: 204\r\n\r\n").status(), 204);
        assert_eq!(
            decode_response_head(b"Status: 20x\r\n\r\n", max),
            Err(ResponseError::InvalidStatus)
        );
        assert_eq!(
            decode_response_head(b"Status: 2000\r\n\r\n", max),
            Err(ResponseError::InvalidStatus)
        );
        assert_eq!(
            decode_response_head(b"HTTP/1.1 200 OK\r\n\r\n", max),
            Err(ResponseError::MalformedHeader)
        );
        assert_eq!(
            decode_response_head(b": x\r\n\r\n", max),
            Err(ResponseError::MalformedHeader)
        );
        assert_eq!(
            decode_response_head(b"A: b\r\nC: d\r\n", 8),
            Err(ResponseError::HeadTooLarge { max: 8 })
        );
        assert_eq!(decode_response_head(b"A: b\r\n", 8), Ok(Status::Partial));
    }

    fn name() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(1u8..=255, 1..12).prop_filter("reserved", |n| {
            n.as_slice() != b"CONTENT_LENGTH" && n.as_slice() != b"SCGI"
        })
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(1u8..=255, 0..12)
    }

    proptest! {
        #[test]
        fn encode_then_decode_at_every_split(
            content_length in any::<u64>(),
            pairs in proptest::collection::vec((name(), value()), 0..8),
            body in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let mut wire = Vec::new();
            encode_request(
                content_length,
                pairs.iter().map(|(n, v)| (n.as_slice(), v.as_slice())),
                &mut wire,
            ).unwrap();
            let head_len = wire.len();
            wire.extend_from_slice(&body);
            for cut in 0..head_len {
                prop_assert_eq!(dec(&wire[..cut]), Ok(Status::Partial));
            }
            let r = complete(&wire);
            prop_assert_eq!(r.consumed(), head_len);
            prop_assert_eq!(r.content_length(), content_length);
            let decoded: Vec<_> = r.headers().skip(2).collect();
            let expected: Vec<_> = pairs.iter().map(|(n, v)| (n.as_slice(), v.as_slice())).collect();
            prop_assert_eq!(decoded, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64), max in 0usize..80) {
            let _ = decode(&bytes, &Limits { max_header_block: max });
            let _ = Pairs::new(&bytes).count();
            let _ = decode_response_head(&bytes, max);
        }

        #[test]
        fn arbitrary_netstrings_never_panic(
            block in proptest::collection::vec(prop_oneof![Just(0u8), Just(b'0'), any::<u8>()], 0..48),
        ) {
            let mut wire = format!("{}:", block.len()).into_bytes();
            wire.extend_from_slice(&block);
            wire.push(b',');
            if let Ok(Status::Complete(r)) = dec(&wire) {
                prop_assert_eq!(r.headers().next().map(|(n, _)| n), Some(&b"CONTENT_LENGTH"[..]));
                prop_assert_eq!(r.consumed(), wire.len());
            }
        }

        #[test]
        fn response_head_round_trip_prop(
            status in 100u16..=999,
            headers in proptest::collection::vec(
                ("[A-Za-z][A-Za-z0-9-]{0,10}", "[ -~]{0,10}"), 0..6),
        ) {
            let headers: Vec<_> = headers.into_iter()
                .filter(|(n, _)| !n.eq_ignore_ascii_case("status"))
                .map(|(n, v)| (n, v.trim_matches(' ').to_string()))
                .collect();
            let mut out = Vec::new();
            encode_response_head(
                status,
                b"Reason",
                headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
                &mut out,
            ).unwrap();
            let head = decode_response_head(&out, out.len() + 1).unwrap().complete().unwrap();
            prop_assert_eq!(head.status(), status);
            prop_assert_eq!(head.consumed(), out.len());
            let got: Vec<_> = head.headers().skip(1).collect();
            let want: Vec<_> = headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
            prop_assert_eq!(got, want);
        }
    }
}
