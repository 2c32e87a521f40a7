//! Client side: encoding a whole request, as a web server or the load generator sends it.

use super::{
    encode_begin_request, encode_nv, encode_record, encode_stream, role, rtype, FLAG_KEEP_CONN,
};

/// What one FastCGI request carries.
#[derive(Debug, Clone, Copy)]
pub struct RequestSpec<'a> {
    /// The request id (1-65535).
    pub request_id: u16,
    /// Ask the application to keep the connection open afterwards.
    pub keep_conn: bool,
    /// The request variables, in order.
    pub params: &'a [(&'a [u8], &'a [u8])],
    /// The request body.
    pub body: &'a [u8],
}

/// Appends BEGIN_REQUEST (responder), PARAMS records (split at 65535 bytes, so pairs may straddle
/// records) and the empty PARAMS, then STDIN records and the empty STDIN.
pub fn encode_request(out: &mut Vec<u8>, spec: &RequestSpec<'_>) {
    let flags = if spec.keep_conn { FLAG_KEEP_CONN } else { 0 };
    encode_begin_request(out, spec.request_id, role::RESPONDER, flags);
    let mut params = Vec::new();
    for (name, value) in spec.params {
        encode_nv(&mut params, name, value);
    }
    encode_stream(out, rtype::PARAMS, spec.request_id, &params);
    encode_record(out, rtype::PARAMS, spec.request_id, &[]);
    encode_stream(out, rtype::STDIN, spec.request_id, spec.body);
    encode_record(out, rtype::STDIN, spec.request_id, &[]);
}
