//! Sans-IO protocol codecs: bytes in, events out; encoders write into a caller's buffer.
//!
//! Nothing in this crate touches a socket, a runtime or a clock, so every codec is tested on raw
//! bytes and reused by the load generator for the client side.

pub mod ajp;
pub mod fcgi;
pub mod scgi;

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
