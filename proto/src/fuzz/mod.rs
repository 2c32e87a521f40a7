//! Fuzz target bodies, shared by the cargo-fuzz targets (`engine/fuzz/fuzz_targets/`) and the
//! stable replay of their corpus (`proto/tests/fuzz_corpus.rs`), so both run the same checks.
//!
//! Not part of the API: every function takes arbitrary bytes and panics only when a decoder or a
//! server connection breaks one of its invariants (a panic in the code under test counts too).
//! Each target's input layout is documented on its function; [`seeds`] writes valid inputs of
//! each layout, the corpus the fuzzers start from.

mod codec;
mod conn;
mod seeds;

pub use codec::{ajp_decode, fcgi_params, fcgi_record, scgi_decode};
pub use conn::{ajp_conn, fcgi_conn, scgi_conn};
pub use seeds::seeds;

/// A target's body: any bytes in, a panic when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target of this module by its cargo-fuzz name, for the corpus replay.
pub const TARGETS: [(&str, Target); 7] = [
    ("fcgi_record", fcgi_record),
    ("fcgi_params", fcgi_params),
    ("scgi_decode", scgi_decode),
    ("ajp_decode", ajp_decode),
    ("fcgi_conn", fcgi_conn),
    ("scgi_conn", scgi_conn),
    ("ajp_conn", ajp_conn),
];

/// Reads a fuzz input front to back; past its end every read gives zeros, so any input is a
/// valid one.
#[derive(Debug, Clone)]
pub(crate) struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Input { rest: data }
    }

    pub(crate) fn u8(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => 0,
        }
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// The next `n` bytes (fewer at the end).
    pub(crate) fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = rest;
        head
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }
}

/// The kind of an error (its variant's name), without its details: a decoder may refuse a
/// packet before all of the bytes it names arrived (AJP13's magic, from its first byte), so
/// only the kind is the same however the input was split.
pub(crate) fn error_kind(e: &impl std::fmt::Debug) -> String {
    let text = format!("{e:?}");
    text.split(['{', '(', ' '])
        .next()
        .unwrap_or_default()
        .to_string()
}
