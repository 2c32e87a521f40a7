//! Sans-IO protocol codecs: bytes in, events out; encoders write into a caller's buffer.
//!
//! Nothing in this module touches a socket, a runtime or a clock, so every codec is tested on raw
//! bytes and reused by the load generator for the client side.

pub mod ajp;
pub mod fcgi;
pub mod scgi;
