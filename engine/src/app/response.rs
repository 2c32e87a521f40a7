//! What a handler writes: status, headers and a streamed body.

use std::rc::Rc;

use super::exchange::{Closed, Exchange};
use crate::metrics::{RequestTimer, StatusClass};

/// Why a response operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The peer closed the connection or aborted the request.
    #[error("the request was aborted by the peer")]
    Aborted,
    /// Headers can no longer change: body bytes were already sent.
    #[error("response headers were already sent")]
    HeadersSent,
    /// A header name or value contains a character that would break the header block.
    #[error("invalid response header {0:?}")]
    InvalidHeader(String),
    /// Status codes are three digits, 100-999.
    #[error("invalid status code {0}")]
    InvalidStatus(u16),
}

impl From<Closed> for ResponseError {
    fn from(_: Closed) -> Self {
        ResponseError::Aborted
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Head,
    Body,
    Done,
}

/// The response to one request. Status and headers are held until the first body write (or
/// [`finish`](Response::finish)); the body is streamed with backpressure, never buffered whole.
/// Dropping an unfinished response finishes it (a 500 if nothing was sent yet).
#[derive(Debug)]
pub struct Response {
    ex: Rc<Exchange>,
    status: u16,
    stage: Stage,
    /// Counts the request in the metrics when the response ends.
    timer: RequestTimer,
}

impl Response {
    pub(crate) fn new(ex: Rc<Exchange>) -> Self {
        Response {
            ex,
            status: 200,
            stage: Stage::Head,
            timer: RequestTimer::off(),
        }
    }

    /// Times this request for the metrics; it is counted when the response ends.
    pub(crate) fn set_timer(&mut self, timer: RequestTimer) {
        self.timer = timer;
    }

    /// Sets the status code (default 200).
    pub fn set_status(&mut self, status: u16) -> Result<(), ResponseError> {
        if self.stage != Stage::Head {
            return Err(ResponseError::HeadersSent);
        }
        if !(100..=999).contains(&status) {
            return Err(ResponseError::InvalidStatus(status));
        }
        self.status = status;
        Ok(())
    }

    /// The status code that is or will be sent.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Adds a header line. Names must be tokens and values must not contain CR or LF.
    pub fn add_header(&mut self, name: &str, value: &str) -> Result<(), ResponseError> {
        self.push_header(name, value.as_bytes())
    }

    /// Adds a header whose value is Latin-1 text (one byte per char, as WSGI headers are): the
    /// value goes on the wire as those bytes. Chars past U+00FF are refused.
    #[cfg_attr(not(feature = "wsgi"), allow(dead_code))]
    pub(crate) fn add_header_latin1(
        &mut self,
        name: &str,
        value: &str,
    ) -> Result<(), ResponseError> {
        if value.is_ascii() {
            // The common case: ASCII is its own Latin-1, with nothing to convert or allocate.
            return self.push_header(name, value.as_bytes());
        }
        let bytes: Option<Vec<u8>> = value.chars().map(|c| u8::try_from(c).ok()).collect();
        let bytes = bytes.ok_or_else(|| ResponseError::InvalidHeader(name.to_owned()))?;
        self.push_header(name, &bytes)
    }

    fn push_header(&mut self, name: &str, value: &[u8]) -> Result<(), ResponseError> {
        if self.stage != Stage::Head {
            return Err(ResponseError::HeadersSent);
        }
        let name_ok = !name.is_empty() && name.bytes().all(|b| TOKEN[b as usize]);
        let value_ok = !value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0);
        if !name_ok || !value_ok {
            return Err(ResponseError::InvalidHeader(name.to_owned()));
        }
        self.ex.head_mut().push(name.as_bytes(), value);
        Ok(())
    }

    /// True once status and headers went out.
    pub fn headers_sent(&self) -> bool {
        self.stage != Stage::Head
    }

    /// Writes body bytes, sending the header block first if needed. Waits while the
    /// connection's send buffer is full.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), ResponseError> {
        if self.stage == Stage::Done {
            return Err(ResponseError::Aborted);
        }
        // Cap what one call queues so a huge write still respects the high-water mark.
        const SLICE: usize = 256 * 1024;
        let mut rest = data;
        loop {
            {
                let out = self.ex.out().clone();
                out.writable().await?;
            }
            let (now, later) = rest.split_at(rest.len().min(SLICE));
            self.emit(now);
            rest = later;
            if rest.is_empty() {
                return Ok(());
            }
        }
    }

    fn emit(&mut self, data: &[u8]) {
        self.timer.add_body_out(data.len());
        let framing = self.ex.framing();
        if self.stage == Stage::Head {
            let head = self.ex.head_mut();
            let status = self.status;
            self.ex
                .out()
                .push(|out| framing.encode_head(out, status, &head, data));
            self.stage = Stage::Body;
        } else if !data.is_empty() {
            self.ex.out().push(|out| framing.encode_body(out, data));
        }
    }

    /// Ends the response: header block if not sent yet, then the protocol's end marker.
    pub async fn finish(&mut self) -> Result<(), ResponseError> {
        if self.stage == Stage::Done {
            return Ok(());
        }
        if self.ex.out().is_closed() {
            self.end_now();
            return Err(ResponseError::Aborted);
        }
        self.end_now();
        Ok(())
    }

    /// Sends whatever is missing to end the response, without waiting.
    pub(crate) fn end_now(&mut self) {
        if self.stage == Stage::Done {
            return;
        }
        if self.stage == Stage::Head {
            self.emit(&[]);
        }
        let framing = self.ex.framing();
        self.ex.out().push(|out| framing.encode_end(out));
        self.stage = Stage::Done;
        self.ex.mark_done();
        let class = if self.ex.out().is_closed() {
            StatusClass::Aborted
        } else {
            StatusClass::of(self.status)
        };
        self.timer.finish(class);
    }

    /// Fails the request: a bare 500 if no header was sent, otherwise just the end marker (the
    /// client sees a truncated body, which is the honest outcome).
    pub(crate) fn fail(&mut self) {
        if self.stage == Stage::Head {
            self.ex.head_mut().clear();
            self.status = 500;
        }
        self.end_now();
    }
}

/// The bytes of an HTTP token (RFC 9110 `tchar`): what a header name may hold. A table, since
/// every header of every response is checked byte by byte.
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let extra = b"!#$%&'*+-.^_`|~";
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric();
        i += 1;
    }
    let mut j = 0;
    while j < extra.len() {
        t[extra[j] as usize] = true;
        j += 1;
    }
    t
};

impl Drop for Response {
    fn drop(&mut self) {
        if self.stage != Stage::Done {
            // Dropped unfinished: the handler was cancelled (peer abort, connection gone).
            self.timer.finish(StatusClass::Aborted);
            self.fail();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TOKEN;

    #[test]
    fn token_table_is_rfc9110_tchar() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(TOKEN[b as usize], expected, "byte {b}");
        }
        assert!(!TOKEN[b':' as usize] && !TOKEN[b' ' as usize] && !TOKEN[0x80]);
    }
}
