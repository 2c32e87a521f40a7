//! FastCGI name-value pairs: each length is one byte (< 128) or four bytes with the top bit set.

use super::Decode;

/// A malformed name-value pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NvError {
    /// The content ends inside a pair (only an error where the content must hold whole pairs,
    /// such as GET_VALUES; PARAMS pairs may continue in the next record).
    #[error("name-value pair truncated")]
    Truncated,
}

/// The lengths that open a pair, and how many bytes they took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NvLens {
    pub name_len: u32,
    pub value_len: u32,
    pub header_len: usize,
}

fn decode_len(buf: &[u8]) -> Decode<u32> {
    match buf.first() {
        None => Decode::Partial,
        Some(&b) if b < 0x80 => Decode::Complete(u32::from(b), 1),
        Some(_) => match buf.first_chunk::<4>() {
            None => Decode::Partial,
            Some(b) => Decode::Complete(u32::from_be_bytes(*b) & 0x7fff_ffff, 4),
        },
    }
}

/// Decodes the two lengths at the start of a pair, without looking at its bytes.
pub(crate) fn decode_lens(buf: &[u8]) -> Decode<NvLens> {
    let Decode::Complete(name_len, a) = decode_len(buf) else {
        return Decode::Partial;
    };
    let Decode::Complete(value_len, b) = decode_len(&buf[a..]) else {
        return Decode::Partial;
    };
    Decode::Complete(
        NvLens {
            name_len,
            value_len,
            header_len: a + b,
        },
        a + b,
    )
}

/// Iterates over the complete pairs of one content buffer, borrowing it.
#[derive(Debug, Clone)]
pub struct NvIter<'a> {
    buf: &'a [u8],
}

impl<'a> NvIter<'a> {
    /// Iterates over the pairs in `buf`, which must hold whole pairs only.
    pub fn new(buf: &'a [u8]) -> Self {
        NvIter { buf }
    }
}

impl<'a> Iterator for NvIter<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), NvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let Decode::Complete(lens, _) = decode_lens(self.buf) else {
            self.buf = &[];
            return Some(Err(NvError::Truncated));
        };
        let name_end = lens.header_len as u64 + u64::from(lens.name_len);
        let value_end = name_end + u64::from(lens.value_len);
        if value_end > self.buf.len() as u64 {
            self.buf = &[];
            return Some(Err(NvError::Truncated));
        }
        let (name_end, value_end) = (name_end as usize, value_end as usize);
        let name = &self.buf[lens.header_len..name_end];
        let value = &self.buf[name_end..value_end];
        self.buf = &self.buf[value_end..];
        Some(Ok((name, value)))
    }
}

fn encode_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes());
    }
}

/// Appends one pair, with 1-byte lengths below 128 and 4-byte lengths otherwise.
///
/// # Panics
/// If a length does not fit in 31 bits.
pub fn encode_nv(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    assert!(name.len() <= 0x7fff_ffff && value.len() <= 0x7fff_ffff);
    encode_len(out, name.len());
    encode_len(out, value.len());
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

/// Bytes [`encode_nv`] appends for this pair.
pub fn nv_len(name: &[u8], value: &[u8]) -> usize {
    let l = |n: usize| if n < 0x80 { 1 } else { 4 };
    l(name.len()) + l(value.len()) + name.len() + value.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_and_four_byte_lengths() {
        let raw = [
            11, 2, b'S', b'E', b'R', b'V', b'E', b'R', b'_', b'P', b'O', b'R', b'T', b'8', b'0',
        ];
        let pairs: Vec<_> = NvIter::new(&raw).collect::<Result<_, _>>().unwrap();
        assert_eq!(pairs, vec![(&b"SERVER_PORT"[..], &b"80"[..])]);

        let mut raw = vec![1, 0x80, 0, 0, 200, b'X'];
        raw.extend(std::iter::repeat_n(b'v', 200));
        let pairs: Vec<_> = NvIter::new(&raw).collect::<Result<_, _>>().unwrap();
        assert_eq!(pairs[0].1.len(), 200);
    }

    #[test]
    fn non_minimal_four_byte_length_is_accepted() {
        let raw = [0x80, 0, 0, 1, 0x80, 0, 0, 0, b'A'];
        let pairs: Vec<_> = NvIter::new(&raw).collect::<Result<_, _>>().unwrap();
        assert_eq!(pairs, vec![(&b"A"[..], &b""[..])]);
    }

    #[test]
    fn truncated_pairs_are_errors_not_panics() {
        for raw in [
            &[5u8][..],
            &[0x80, 0],
            &[2, 2, b'a'],
            &[0xff, 0xff, 0xff, 0xff, 0],
        ] {
            let r: Result<Vec<_>, _> = NvIter::new(raw).collect();
            assert_eq!(r, Err(NvError::Truncated), "{raw:?}");
        }
    }

    #[test]
    fn encode_round_trips() {
        let long = vec![b'q'; 300];
        let mut out = Vec::new();
        encode_nv(&mut out, b"QUERY_STRING", &long);
        encode_nv(&mut out, b"", b"");
        assert_eq!(out.len(), nv_len(b"QUERY_STRING", &long) + 2);
        let pairs: Vec<_> = NvIter::new(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            pairs,
            vec![(&b"QUERY_STRING"[..], &long[..]), (&b""[..], &b""[..])]
        );
    }
}
