//! Record framing: the 8-byte header, typed bodies of the fixed-size records, and encoders.

use super::{
    nv, rtype, Decode, HEADER_LEN, MAX_CONTENT_LEN, MAX_PADDING_LEN, NULL_REQUEST_ID, VERSION_1,
};

/// Why a record could not be decoded. Every variant means the stream cannot be trusted any more:
/// the connection should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The version byte is not 1 (typically: this is not FastCGI at all).
    #[error("unsupported FastCGI version {0} (expected 1)")]
    BadVersion(u8),
    /// A fixed-size record body has the wrong length.
    #[error("record type {rtype} has content length {len}, expected {expected}")]
    BadLength {
        /// The record type.
        rtype: u8,
        /// The content length received.
        len: u16,
        /// The content length that type requires.
        expected: u16,
    },
    /// A request record was sent with request id 0, or a management record with a non-zero id.
    #[error("record type {rtype} cannot use request id {request_id}")]
    BadRequestId {
        /// The record type.
        rtype: u8,
        /// The request id received.
        request_id: u16,
    },
}

/// The fixed 8-byte header every record starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// The record type (see [`rtype`](super::rtype)).
    pub rtype: u8,
    /// The request this record belongs to; 0 for management records.
    pub request_id: u16,
    /// Bytes of content that follow the header.
    pub content_length: u16,
    /// Bytes of padding that follow the content.
    pub padding_length: u8,
}

impl RecordHeader {
    /// Decodes a header from the first 8 bytes of `buf`, checking only the version.
    pub fn parse(buf: &[u8; HEADER_LEN]) -> Result<Self, DecodeError> {
        if buf[0] != VERSION_1 {
            return Err(DecodeError::BadVersion(buf[0]));
        }
        Ok(RecordHeader {
            rtype: buf[1],
            request_id: u16::from_be_bytes([buf[2], buf[3]]),
            content_length: u16::from_be_bytes([buf[4], buf[5]]),
            padding_length: buf[6],
        })
    }

    /// The header's wire form.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let id = self.request_id.to_be_bytes();
        let len = self.content_length.to_be_bytes();
        [
            VERSION_1,
            self.rtype,
            id[0],
            id[1],
            len[0],
            len[1],
            self.padding_length,
            0,
        ]
    }

    /// Size of the whole record on the wire.
    pub fn record_len(self) -> usize {
        HEADER_LEN + self.content_length as usize + self.padding_length as usize
    }
}

/// One decoded record; its content borrows the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The record's header.
    pub header: RecordHeader,
    /// The record's content, without padding.
    pub content: &'a [u8],
}

impl Record<'_> {
    /// True for management records (request id 0).
    pub fn is_management(&self) -> bool {
        self.header.request_id == NULL_REQUEST_ID
    }
}

/// Decodes one record from the start of `buf`.
///
/// Returns [`Decode::Partial`] until the whole record, padding included, is in `buf`. Checks the
/// version, the length of fixed-size records, and request id 0 against the record type.
pub fn decode_record(buf: &[u8]) -> Result<Decode<Record<'_>>, DecodeError> {
    let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(Decode::Partial);
    };
    let header = RecordHeader::parse(head)?;
    check_header(&header)?;
    let total = header.record_len();
    if buf.len() < total {
        return Ok(Decode::Partial);
    }
    let content = &buf[HEADER_LEN..HEADER_LEN + header.content_length as usize];
    Ok(Decode::Complete(Record { header, content }, total))
}

fn check_header(h: &RecordHeader) -> Result<(), DecodeError> {
    let fixed = match h.rtype {
        rtype::BEGIN_REQUEST | rtype::END_REQUEST | rtype::UNKNOWN_TYPE => Some(8),
        rtype::ABORT_REQUEST => Some(0),
        _ => None,
    };
    if let Some(expected) = fixed {
        // ABORT_REQUEST carries no content in the spec, but tolerate peers that pad it.
        if h.content_length != expected && h.rtype != rtype::ABORT_REQUEST {
            return Err(DecodeError::BadLength {
                rtype: h.rtype,
                len: h.content_length,
                expected,
            });
        }
    }
    let management = matches!(
        h.rtype,
        rtype::GET_VALUES | rtype::GET_VALUES_RESULT | rtype::UNKNOWN_TYPE
    );
    let request = matches!(
        h.rtype,
        rtype::BEGIN_REQUEST
            | rtype::ABORT_REQUEST
            | rtype::END_REQUEST
            | rtype::PARAMS
            | rtype::STDIN
            | rtype::STDOUT
            | rtype::STDERR
            | rtype::DATA
    );
    if (management && h.request_id != NULL_REQUEST_ID)
        || (request && h.request_id == NULL_REQUEST_ID)
    {
        return Err(DecodeError::BadRequestId {
            rtype: h.rtype,
            request_id: h.request_id,
        });
    }
    Ok(())
}

/// The body of a BEGIN_REQUEST record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeginRequest {
    /// The role (see [`role`](super::role)).
    pub role: u16,
    /// Flags; bit 0 is [`FLAG_KEEP_CONN`](super::FLAG_KEEP_CONN).
    pub flags: u8,
}

impl BeginRequest {
    /// Parses the 8-byte body (the length was checked by [`decode_record`]).
    pub fn parse(content: &[u8]) -> Option<Self> {
        let c = content.first_chunk::<8>()?;
        Some(BeginRequest {
            role: u16::from_be_bytes([c[0], c[1]]),
            flags: c[2],
        })
    }

    /// True when the client asks to keep the connection open after this request.
    pub fn keep_conn(&self) -> bool {
        self.flags & super::FLAG_KEEP_CONN != 0
    }
}

/// The body of an END_REQUEST record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndRequest {
    /// The application's exit status (CGI-style).
    pub app_status: u32,
    /// The protocol status (see [`protocol_status`](super::protocol_status)).
    pub protocol_status: u8,
}

impl EndRequest {
    /// Parses the 8-byte body (the length was checked by [`decode_record`]).
    pub fn parse(content: &[u8]) -> Option<Self> {
        let c = content.first_chunk::<8>()?;
        Some(EndRequest {
            app_status: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
            protocol_status: c[4],
        })
    }
}

/// Padding that brings `content_len` to a multiple of 8, as the spec recommends.
fn padding_for(content_len: usize) -> u8 {
    ((8 - content_len % 8) % 8) as u8
}

/// Appends one record with `content` (at most 65535 bytes), padded to a multiple of 8.
///
/// # Panics
/// If `content` is longer than [`MAX_CONTENT_LEN`]; callers with streams use [`encode_stream`].
pub fn encode_record(out: &mut Vec<u8>, rtype: u8, request_id: u16, content: &[u8]) {
    assert!(content.len() <= MAX_CONTENT_LEN, "record content too long");
    let padding = padding_for(content.len());
    let header = RecordHeader {
        rtype,
        request_id,
        content_length: content.len() as u16,
        padding_length: padding,
    };
    out.reserve(HEADER_LEN + content.len() + padding as usize);
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(content);
    out.extend_from_slice(&[0u8; 8][..padding as usize]);
}

/// Appends `data` as records of a stream type (PARAMS, STDIN, STDOUT, STDERR, DATA), split into
/// records of at most 65535 bytes. Empty `data` appends nothing: the empty record that ends a
/// stream is written with `encode_record(out, rtype, id, &[])`.
pub fn encode_stream(out: &mut Vec<u8>, rtype: u8, request_id: u16, data: &[u8]) {
    for chunk in data.chunks(MAX_CONTENT_LEN) {
        encode_record(out, rtype, request_id, chunk);
    }
}

/// A stream record being written in place: reserve its header, append content to the buffer
/// directly, then [`finish`](StreamRecord::finish) fills in the lengths. This lets a response
/// encode its header block straight into the connection's buffer without a staging copy.
#[derive(Debug)]
#[must_use = "a started record must be finished"]
pub struct StreamRecord {
    start: usize,
    rtype: u8,
    request_id: u16,
}

impl StreamRecord {
    /// Reserves a record header at the end of `out`.
    pub fn start(out: &mut Vec<u8>, rtype: u8, request_id: u16) -> Self {
        let start = out.len();
        out.extend_from_slice(&[0u8; HEADER_LEN]);
        StreamRecord {
            start,
            rtype,
            request_id,
        }
    }

    /// Bytes of content written since [`start`](StreamRecord::start).
    pub fn content_len(&self, out: &[u8]) -> usize {
        out.len() - self.start - HEADER_LEN
    }

    /// Fills in the header and pads. Content longer than 65535 bytes is split into several
    /// records (moving the tail), so the result is always valid framing. An empty record is
    /// removed rather than written, since it would end the stream.
    pub fn finish(self, out: &mut Vec<u8>) {
        let content_len = self.content_len(out);
        if content_len == 0 {
            out.truncate(self.start);
            return;
        }
        if content_len > MAX_CONTENT_LEN {
            let content = out.split_off(self.start + HEADER_LEN);
            out.truncate(self.start);
            encode_stream(out, self.rtype, self.request_id, &content);
            return;
        }
        let padding = padding_for(content_len);
        let header = RecordHeader {
            rtype: self.rtype,
            request_id: self.request_id,
            content_length: content_len as u16,
            padding_length: padding,
        };
        out[self.start..self.start + HEADER_LEN].copy_from_slice(&header.to_bytes());
        out.extend_from_slice(&[0u8; 8][..padding as usize]);
    }
}

/// Appends a BEGIN_REQUEST record.
pub fn encode_begin_request(out: &mut Vec<u8>, request_id: u16, role: u16, flags: u8) {
    let r = role.to_be_bytes();
    encode_record(
        out,
        rtype::BEGIN_REQUEST,
        request_id,
        &[r[0], r[1], flags, 0, 0, 0, 0, 0],
    );
}

/// Appends an END_REQUEST record.
pub fn encode_end_request(
    out: &mut Vec<u8>,
    request_id: u16,
    app_status: u32,
    protocol_status: u8,
) {
    let s = app_status.to_be_bytes();
    encode_record(
        out,
        rtype::END_REQUEST,
        request_id,
        &[s[0], s[1], s[2], s[3], protocol_status, 0, 0, 0],
    );
}

/// Appends an UNKNOWN_TYPE management record answering a record of type `unknown`.
pub fn encode_unknown_type(out: &mut Vec<u8>, unknown: u8) {
    encode_record(
        out,
        rtype::UNKNOWN_TYPE,
        NULL_REQUEST_ID,
        &[unknown, 0, 0, 0, 0, 0, 0, 0],
    );
}

/// Appends a GET_VALUES management record asking for `names` (client side).
pub fn encode_get_values(out: &mut Vec<u8>, names: &[&[u8]]) {
    let rec = StreamRecord::start(out, rtype::GET_VALUES, NULL_REQUEST_ID);
    for name in names {
        nv::encode_nv(out, name, b"");
    }
    finish_management(rec, out);
}

/// Appends a GET_VALUES_RESULT management record with the given pairs.
pub fn encode_get_values_result(out: &mut Vec<u8>, pairs: &[(&[u8], &[u8])]) {
    let rec = StreamRecord::start(out, rtype::GET_VALUES_RESULT, NULL_REQUEST_ID);
    for (name, value) in pairs {
        nv::encode_nv(out, name, value);
    }
    finish_management(rec, out);
}

/// Management records are single records, empty content included.
fn finish_management(rec: StreamRecord, out: &mut Vec<u8>) {
    let content_len = rec.content_len(out);
    let content = out.split_off(rec.start + HEADER_LEN);
    out.truncate(rec.start);
    debug_assert!(content_len <= MAX_CONTENT_LEN);
    encode_record(
        out,
        rec.rtype,
        rec.request_id,
        &content[..content_len.min(MAX_CONTENT_LEN)],
    );
}

const _: () = assert!(MAX_PADDING_LEN == u8::MAX as usize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_begin_request_from_raw_bytes() {
        let raw = [1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0];
        let Decode::Complete(rec, used) = decode_record(&raw).unwrap() else {
            panic!("partial")
        };
        assert_eq!(used, 16);
        assert_eq!(rec.header.rtype, rtype::BEGIN_REQUEST);
        assert_eq!(rec.header.request_id, 1);
        let b = BeginRequest::parse(rec.content).unwrap();
        assert_eq!(b.role, 1);
        assert!(b.keep_conn());
    }

    #[test]
    fn partial_until_padding_arrives() {
        // STDIN, id 3, 5 bytes content, 3 bytes padding.
        let raw = [
            1, 5, 0, 3, 0, 5, 3, 0, b'h', b'e', b'l', b'l', b'o', 0, 0, 0,
        ];
        for cut in 0..raw.len() {
            assert_eq!(
                decode_record(&raw[..cut]).unwrap(),
                Decode::Partial,
                "cut {cut}"
            );
        }
        let Decode::Complete(rec, used) = decode_record(&raw).unwrap() else {
            panic!()
        };
        assert_eq!((rec.content, used), (&b"hello"[..], 16));
    }

    #[test]
    fn max_content_and_max_padding() {
        let mut raw = vec![1, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0];
        raw.resize(8 + 65535 + 255, 7);
        let Decode::Complete(rec, used) = decode_record(&raw).unwrap() else {
            panic!()
        };
        assert_eq!(rec.header.request_id, 65535);
        assert_eq!(rec.content.len(), 65535);
        assert_eq!(used, 8 + 65535 + 255);
    }

    #[test]
    fn rejects_bad_version_and_lengths() {
        assert_eq!(
            decode_record(b"GET / HTTP/1.1\r\n"),
            Err(DecodeError::BadVersion(b'G'))
        );
        assert!(matches!(
            decode_record(&[1, 1, 0, 1, 0, 7, 0, 0]),
            Err(DecodeError::BadLength { .. })
        ));
        assert!(matches!(
            decode_record(&[1, 4, 0, 0, 0, 0, 0, 0]),
            Err(DecodeError::BadRequestId { .. })
        ));
        assert!(matches!(
            decode_record(&[1, 9, 0, 1, 0, 0, 0, 0]),
            Err(DecodeError::BadRequestId { .. })
        ));
    }

    #[test]
    fn unknown_types_decode_for_the_caller_to_answer() {
        let raw = [1, 200, 0, 0, 0, 0, 0, 0];
        let Decode::Complete(rec, _) = decode_record(&raw).unwrap() else {
            panic!()
        };
        assert!(rec.is_management());
        let mut out = Vec::new();
        encode_unknown_type(&mut out, rec.header.rtype);
        assert_eq!(out, [1, 11, 0, 0, 0, 8, 0, 0, 200, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn stream_records_split_at_65535() {
        let data = vec![b'x'; 65535 * 2 + 10];
        let mut out = Vec::new();
        encode_stream(&mut out, rtype::STDOUT, 1, &data);
        let mut pos = 0;
        let mut total = 0;
        let mut count = 0;
        while pos < out.len() {
            let Decode::Complete(rec, used) = decode_record(&out[pos..]).unwrap() else {
                panic!()
            };
            assert!(rec.content.len() <= MAX_CONTENT_LEN);
            total += rec.content.len();
            pos += used;
            count += 1;
        }
        assert_eq!((total, count), (data.len(), 3));
    }

    #[test]
    fn stream_record_in_place() {
        let mut out = vec![9, 9];
        let rec = StreamRecord::start(&mut out, rtype::STDOUT, 2);
        out.extend_from_slice(b"Status: 200 OK\r\n\r\n");
        rec.finish(&mut out);
        assert_eq!(&out[..2], &[9, 9]);
        let Decode::Complete(r, used) = decode_record(&out[2..]).unwrap() else {
            panic!()
        };
        assert_eq!(r.content, b"Status: 200 OK\r\n\r\n");
        assert_eq!(used % 8, 0);
        assert_eq!(used + 2, out.len());

        let mut out = Vec::new();
        let rec = StreamRecord::start(&mut out, rtype::STDOUT, 2);
        rec.finish(&mut out);
        assert!(out.is_empty(), "an empty in-place record must vanish");

        let mut out = Vec::new();
        let rec = StreamRecord::start(&mut out, rtype::STDOUT, 2);
        out.resize(HEADER_LEN + 70000, b'z');
        rec.finish(&mut out);
        let Decode::Complete(a, used) = decode_record(&out).unwrap() else {
            panic!()
        };
        let Decode::Complete(b, _) = decode_record(&out[used..]).unwrap() else {
            panic!()
        };
        assert_eq!(a.content.len() + b.content.len(), 70000);
    }

    #[test]
    fn get_values_result_encodes_pairs() {
        let mut out = Vec::new();
        encode_get_values_result(&mut out, &[(b"FCGI_MPXS_CONNS", b"1")]);
        let Decode::Complete(rec, _) = decode_record(&out).unwrap() else {
            panic!()
        };
        assert_eq!(rec.header.rtype, rtype::GET_VALUES_RESULT);
        let pairs: Vec<_> = nv::NvIter::new(rec.content)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(pairs, vec![(&b"FCGI_MPXS_CONNS"[..], &b"1"[..])]);
        let mut empty = Vec::new();
        encode_get_values(&mut empty, &[]);
        assert_eq!(empty, [1, 9, 0, 0, 0, 0, 0, 0]);
    }
}
