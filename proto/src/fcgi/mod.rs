//! FastCGI 1.0 codec, sans-IO: record framing, name-value pairs, request parameters, and encoders
//! for both the server (responder) side and the client side.
//!
//! Decoding never allocates: [`decode_record`] returns a [`Record`] whose content borrows the
//! caller's buffer, and [`NvIter`] yields name-value pairs as slices of it. Parameters that arrive
//! over several PARAMS records are accumulated by [`Params`], which indexes pairs as offsets into
//! one buffer (pairs may straddle records). Encoders append to a caller's `Vec<u8>`.

mod client;
mod nv;
mod params;
mod record;
mod server;

pub use client::{
    decode_response_record, encode_request, RequestIdSlots, RequestSpec, ResponseRecord,
    ResponseRecordError, SlotsError,
};
pub use nv::{encode_nv, nv_len, NvError, NvIter};
pub use params::{Params, ParamsError};
pub use record::{
    decode_record, encode_begin_request, encode_end_request, encode_get_values,
    encode_get_values_result, encode_record, encode_stream, encode_unknown_type, BeginRequest,
    DecodeError, EndRequest, Record, RecordHeader, StreamRecord,
};
pub use server::{encode_response_body, encode_response_head, ServerConn};

/// Result of a decoder that may need more input: "need more bytes" is not an error. Defined
/// here, above the record and name-value decoders that both return it, so neither imports the
/// other for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode<T> {
    /// A complete item and the number of input bytes it used.
    Complete(T, usize),
    /// The input ends before the item does; call again with more bytes.
    Partial,
}

/// The only protocol version FastCGI defines.
pub const VERSION_1: u8 = 1;
/// Size of a record header on the wire.
pub const HEADER_LEN: usize = 8;
/// Largest content a single record can carry.
pub const MAX_CONTENT_LEN: usize = 65535;
/// Largest padding a single record can carry.
pub const MAX_PADDING_LEN: usize = 255;
/// Largest record on the wire: header, content and padding.
pub const MAX_RECORD_LEN: usize = HEADER_LEN + MAX_CONTENT_LEN + MAX_PADDING_LEN;
/// The request id of management records.
pub const NULL_REQUEST_ID: u16 = 0;

/// Record types of FastCGI 1.0.
pub mod rtype {
    /// Starts a request (client to application).
    pub const BEGIN_REQUEST: u8 = 1;
    /// Aborts a request (client to application).
    pub const ABORT_REQUEST: u8 = 2;
    /// Ends a request (application to client).
    pub const END_REQUEST: u8 = 3;
    /// Request parameters, a stream of name-value pairs.
    pub const PARAMS: u8 = 4;
    /// Request body stream.
    pub const STDIN: u8 = 5;
    /// Response stream.
    pub const STDOUT: u8 = 6;
    /// Error stream.
    pub const STDERR: u8 = 7;
    /// Extra data stream (Filter role).
    pub const DATA: u8 = 8;
    /// Management query for variables.
    pub const GET_VALUES: u8 = 9;
    /// Management answer to GET_VALUES.
    pub const GET_VALUES_RESULT: u8 = 10;
    /// Management answer to a management record of unknown type.
    pub const UNKNOWN_TYPE: u8 = 11;
    /// The largest type defined by FastCGI 1.0.
    pub const MAX_KNOWN: u8 = UNKNOWN_TYPE;
}

/// Roles carried by BEGIN_REQUEST.
pub mod role {
    /// The application produces the response.
    pub const RESPONDER: u16 = 1;
    /// The application decides whether a request is authorized.
    pub const AUTHORIZER: u16 = 2;
    /// The application filters a data stream.
    pub const FILTER: u16 = 3;
}

/// Protocol status carried by END_REQUEST.
pub mod protocol_status {
    /// The request completed normally.
    pub const REQUEST_COMPLETE: u8 = 0;
    /// The application refuses a second concurrent request on a connection.
    pub const CANT_MPX_CONN: u8 = 1;
    /// The application ran out of a resource (for example connections or requests).
    pub const OVERLOADED: u8 = 2;
    /// The application does not serve the requested role.
    pub const UNKNOWN_ROLE: u8 = 3;
}

/// BEGIN_REQUEST flag: keep the connection open after this request.
pub const FLAG_KEEP_CONN: u8 = 1;

/// Variable names a client may ask for with GET_VALUES.
pub mod values {
    /// Maximum concurrent connections the application accepts.
    pub const MAX_CONNS: &[u8] = b"FCGI_MAX_CONNS";
    /// Maximum concurrent requests the application accepts.
    pub const MAX_REQS: &[u8] = b"FCGI_MAX_REQS";
    /// "1" if the application multiplexes requests on one connection.
    pub const MPXS_CONNS: &[u8] = b"FCGI_MPXS_CONNS";
}
