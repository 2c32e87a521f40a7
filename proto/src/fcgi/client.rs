//! Client side: encoding a whole request, as a web server or the load generator sends it, patching
//! its request id, and decoding the records an application answers with.

use super::{
    decode_record, encode_begin_request, encode_nv, encode_record, encode_stream, role, rtype,
    Decode, DecodeError, EndRequest, FLAG_KEEP_CONN,
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

/// Where the request ids sit in an encoded request, so one encoding serves every request id
/// (the load generator encodes a request once and patches only the id per request).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestIdSlots {
    offsets: Vec<usize>,
}

/// Why [`RequestIdSlots::find`] refused a buffer.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotsError {
    /// The buffer ends inside a record.
    #[error("encoded request ends inside a record at byte {offset}")]
    Truncated {
        /// Where the incomplete record starts.
        offset: usize,
    },
    /// A record header is not valid FastCGI.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl RequestIdSlots {
    /// Walks the records of `encoded` (whole records only) and remembers where each header's
    /// request id is.
    pub fn find(encoded: &[u8]) -> Result<Self, SlotsError> {
        let mut offsets = Vec::new();
        let mut at = 0;
        while at < encoded.len() {
            let rest = encoded.get(at..).unwrap_or_default();
            match decode_record(rest)? {
                Decode::Complete(_, used) => {
                    offsets.push(at + 2);
                    at += used;
                }
                Decode::Partial => return Err(SlotsError::Truncated { offset: at }),
            }
        }
        Ok(Self { offsets })
    }

    /// How many records the request has.
    pub fn records(&self) -> usize {
        self.offsets.len()
    }

    /// Writes `request_id` into every record header of `encoded`, which must be the buffer
    /// given to [`find`](Self::find) (or a copy of it).
    pub fn apply(&self, encoded: &mut [u8], request_id: u16) {
        let id = request_id.to_be_bytes();
        for &at in &self.offsets {
            if let Some(slot) = encoded.get_mut(at..at + 2) {
                slot.copy_from_slice(&id);
            }
        }
    }
}

/// A record an application sends to a client, decoded by [`decode_response_record`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseRecord<'a> {
    /// STDOUT content (empty: the end of the stream).
    Stdout {
        /// The request it belongs to.
        request_id: u16,
        /// The content, borrowing the input.
        data: &'a [u8],
    },
    /// STDERR content (empty: the end of the stream).
    Stderr {
        /// The request it belongs to.
        request_id: u16,
        /// The content, borrowing the input.
        data: &'a [u8],
    },
    /// END_REQUEST: the request is over.
    EndRequest {
        /// The request it belongs to.
        request_id: u16,
        /// Application and protocol status.
        end: EndRequest,
    },
    /// GET_VALUES_RESULT: name-value pairs (see [`NvIter`](super::NvIter)).
    GetValuesResult(&'a [u8]),
    /// UNKNOWN_TYPE: the application did not understand a management record of this type.
    UnknownType(u8),
}

/// Why a record from the application was refused by [`decode_response_record`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseRecordError {
    /// The record framing is invalid.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A record type an application never sends to a client (BEGIN_REQUEST, PARAMS, ...).
    #[error("record type {0} is not sent by an application")]
    UnexpectedType(u8),
}

/// Decodes one record an application sent, from the start of `buf`: the record and the bytes it
/// took, or [`Decode::Partial`] until the whole record is there.
pub fn decode_response_record(
    buf: &[u8],
) -> Result<Decode<ResponseRecord<'_>>, ResponseRecordError> {
    let (record, used) = match decode_record(buf)? {
        Decode::Complete(record, used) => (record, used),
        Decode::Partial => return Ok(Decode::Partial),
    };
    let request_id = record.header.request_id;
    let data = record.content;
    let decoded = match record.header.rtype {
        rtype::STDOUT => ResponseRecord::Stdout { request_id, data },
        rtype::STDERR => ResponseRecord::Stderr { request_id, data },
        rtype::END_REQUEST => ResponseRecord::EndRequest {
            request_id,
            // decode_record checked the 8-byte length.
            end: EndRequest::parse(data).ok_or(DecodeError::BadLength {
                rtype: rtype::END_REQUEST,
                len: record.header.content_length,
                expected: 8,
            })?,
        },
        rtype::GET_VALUES_RESULT => ResponseRecord::GetValuesResult(data),
        rtype::UNKNOWN_TYPE => ResponseRecord::UnknownType(data.first().copied().unwrap_or(0)),
        other => return Err(ResponseRecordError::UnexpectedType(other)),
    };
    Ok(Decode::Complete(decoded, used))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fcgi::{encode_end_request, protocol_status};

    fn request(id: u16, body: &[u8]) -> Vec<u8> {
        let params: [(&[u8], &[u8]); 1] = [(b"REQUEST_METHOD", b"GET")];
        let mut out = Vec::new();
        encode_request(
            &mut out,
            &RequestSpec {
                request_id: id,
                keep_conn: true,
                params: &params,
                body,
            },
        );
        out
    }

    #[test]
    fn request_bytes_on_the_wire() {
        let out = request(1, b"");
        let expected: &[u8] = b"\x01\x01\x00\x01\x00\x08\x00\x00\x00\x01\x01\x00\x00\x00\x00\x00\
\x01\x04\x00\x01\x00\x13\x05\x00\x0e\x03REQUEST_METHODGET\x00\x00\x00\x00\x00\
\x01\x04\x00\x01\x00\x00\x00\x00\
\x01\x05\x00\x01\x00\x00\x00\x00";
        assert_eq!(out, expected);
    }

    #[test]
    fn patched_ids_equal_a_fresh_encoding() {
        let mut encoded = request(1, b"hello body");
        let slots = RequestIdSlots::find(&encoded).unwrap();
        assert_eq!(slots.records(), 5);
        for id in [2u16, 258, 65535] {
            slots.apply(&mut encoded, id);
            assert_eq!(encoded, request(id, b"hello body"), "id {id}");
        }
    }

    #[test]
    fn slots_refuse_a_truncated_request() {
        let encoded = request(1, b"");
        let cut = &encoded[..encoded.len() - 3];
        assert_eq!(
            RequestIdSlots::find(cut),
            Err(SlotsError::Truncated {
                offset: encoded.len() - 8
            })
        );
        assert!(matches!(
            RequestIdSlots::find(b"\x02\x01\x00\x01\x00\x00\x00\x00"),
            Err(SlotsError::Decode(DecodeError::BadVersion(2)))
        ));
    }

    #[test]
    fn decodes_what_an_application_sends() {
        let mut wire = Vec::new();
        wire.extend_from_slice(b"\x01\x06\x00\x07\x00\x05\x03\x00Hello\x00\x00\x00");
        wire.extend_from_slice(b"\x01\x07\x00\x07\x00\x02\x00\x00e!");
        wire.extend_from_slice(b"\x01\x06\x00\x07\x00\x00\x00\x00");
        encode_end_request(&mut wire, 7, 3, protocol_status::REQUEST_COMPLETE);
        let mut at = 0;
        let mut seen = Vec::new();
        while let Decode::Complete(record, used) = decode_response_record(&wire[at..]).unwrap() {
            seen.push(record);
            at += used;
        }
        assert_eq!(at, wire.len());
        assert_eq!(
            seen,
            [
                ResponseRecord::Stdout {
                    request_id: 7,
                    data: b"Hello"
                },
                ResponseRecord::Stderr {
                    request_id: 7,
                    data: b"e!"
                },
                ResponseRecord::Stdout {
                    request_id: 7,
                    data: b""
                },
                ResponseRecord::EndRequest {
                    request_id: 7,
                    end: EndRequest {
                        app_status: 3,
                        protocol_status: 0
                    }
                },
            ]
        );
    }

    #[test]
    fn partial_until_the_padding_is_in() {
        let wire = b"\x01\x06\x00\x01\x00\x05\x03\x00Hello\x00\x00\x00";
        for cut in 0..wire.len() {
            assert_eq!(decode_response_record(&wire[..cut]), Ok(Decode::Partial));
        }
    }

    #[test]
    fn refuses_records_only_a_client_sends() {
        let params = b"\x01\x04\x00\x01\x00\x00\x00\x00";
        assert_eq!(
            decode_response_record(params),
            Err(ResponseRecordError::UnexpectedType(rtype::PARAMS))
        );
        let bad_end = b"\x01\x03\x00\x01\x00\x04\x00\x00\x00\x00\x00\x00";
        assert!(matches!(
            decode_response_record(bad_end),
            Err(ResponseRecordError::Decode(DecodeError::BadLength { .. }))
        ));
    }
}
