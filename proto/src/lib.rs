//! Sans-IO protocol codecs: bytes in, events out; encoders write into a caller's buffer.
//!
//! Nothing in this crate touches a socket, a runtime or a clock, so every codec is tested on raw
//! bytes and reused by the load generator for the client side.

pub mod ajp;
pub mod fcgi;
#[doc(hidden)]
pub mod fuzz;
mod headers;
mod protocol;
pub mod scgi;
pub mod server;

pub use headers::Headers;
pub use protocol::Protocol;
pub use server::{Event, Expired, Refusal, ServerLimits, Step};

/// Writes `n` in decimal into `buf` and returns the digits (no allocation).
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Appends a CGI `Status:` line (`Status: 200 OK\r\n`), the first line of the header block
/// FastCGI and SCGI responses carry.
pub fn cgi_status_line(out: &mut Vec<u8>, status: u16, reason: &str) {
    out.extend_from_slice(b"Status: ");
    let mut digits = [b'0'; 3];
    let mut n = status.min(999);
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits);
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Result of the SCGI and AJP decoders, which may need more input (as httparse's `Status`):
/// "need more bytes" is a normal result, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// The value was decoded completely.
    Complete(T),
    /// The buffer ends before the value does: read more bytes and call again with the whole
    /// buffer.
    Partial,
}

impl<T> Status<T> {
    /// The complete value, or `None` if more input is needed.
    pub fn complete(self) -> Option<T> {
        match self {
            Self::Complete(value) => Some(value),
            Self::Partial => None,
        }
    }

    /// Whether more input is needed.
    pub fn is_partial(&self) -> bool {
        matches!(self, Self::Partial)
    }
}
