//! Accumulates a request's PARAMS stream and indexes its pairs as offsets into one buffer.

use super::nv::decode_lens;
use super::Decode;

/// Why a request's parameters were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// The parameters exceed the configured limit (`--max-params-bytes`).
    #[error("request parameters exceed the limit of {limit} bytes")]
    TooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The PARAMS stream ended inside a name-value pair.
    #[error("PARAMS stream ended inside a name-value pair")]
    Truncated,
}

/// Offsets of one pair inside [`Params`]' buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PairIndex {
    name: (u32, u32),
    value: (u32, u32),
}

/// The parameters of one request: the raw PARAMS bytes plus an index of complete pairs.
///
/// Pairs may straddle PARAMS records: [`push`](Params::push) appends a record's content and
/// indexes every pair that is now complete, leaving a partial one for the next record. The
/// buffer and the index are kept across [`clear`](Params::clear), so a reused `Params` allocates
/// nothing once warmed up. A pair's declared lengths are checked against the limit before any of
/// its bytes are stored.
#[derive(Debug, Default, Clone)]
pub struct Params {
    raw: Vec<u8>,
    pairs: Vec<PairIndex>,
    parsed: usize,
    complete: bool,
}

impl Params {
    /// An empty set, ready for a new request.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when the buffers hold an allocation worth keeping for reuse.
    pub fn has_capacity(&self) -> bool {
        self.raw.capacity() > 0
    }

    /// Forgets all pairs, keeping the allocations.
    pub fn clear(&mut self) {
        self.raw.clear();
        self.pairs.clear();
        self.parsed = 0;
        self.complete = false;
    }

    /// Adds the content of one PARAMS record. An empty `content` ends the stream.
    pub fn push(&mut self, content: &[u8], limit: usize) -> Result<(), ParamsError> {
        if content.is_empty() {
            if self.parsed != self.raw.len() {
                return Err(ParamsError::Truncated);
            }
            self.complete = true;
            return Ok(());
        }
        if self.raw.len() + content.len() > limit {
            return Err(ParamsError::TooLarge { limit });
        }
        self.raw.extend_from_slice(content);
        self.index_complete_pairs(limit)
    }

    fn index_complete_pairs(&mut self, limit: usize) -> Result<(), ParamsError> {
        loop {
            let rest = &self.raw[self.parsed..];
            let Decode::Complete(lens, header_len) = decode_lens(rest) else {
                return Ok(());
            };
            let total = header_len as u64 + u64::from(lens.name_len) + u64::from(lens.value_len);
            if self.parsed as u64 + total > limit as u64 {
                return Err(ParamsError::TooLarge { limit });
            }
            if (rest.len() as u64) < total {
                return Ok(());
            }
            let name_start = (self.parsed + header_len) as u32;
            let value_start = name_start + lens.name_len;
            self.pairs.push(PairIndex {
                name: (name_start, lens.name_len),
                value: (value_start, lens.value_len),
            });
            self.parsed += total as usize;
        }
    }

    /// True once the empty PARAMS record has been received.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Bytes of parameters received so far.
    pub fn byte_len(&self) -> usize {
        self.raw.len()
    }

    /// Number of complete pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    fn slice(&self, (start, len): (u32, u32)) -> &[u8] {
        &self.raw[start as usize..(start + len) as usize]
    }

    /// All pairs in the order received (duplicates included).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.pairs
            .iter()
            .map(|p| (self.slice(p.name), self.slice(p.value)))
    }

    /// The value of `name`; when a name repeats, the last one wins (as a CGI environment would).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.pairs
            .iter()
            .rev()
            .find(|p| self.slice(p.name) == name)
            .map(|p| self.slice(p.value))
    }

    /// Adds a pair directly (used by protocols whose variables do not arrive as FastCGI PARAMS).
    pub fn insert(&mut self, name: &[u8], value: &[u8]) {
        let name_start = self.raw.len() as u32;
        self.raw.extend_from_slice(name);
        let value_start = self.raw.len() as u32;
        self.raw.extend_from_slice(value);
        self.parsed = self.raw.len();
        self.pairs.push(PairIndex {
            name: (name_start, name.len() as u32),
            value: (value_start, value.len() as u32),
        });
    }

    /// Marks the set complete (for variables added with [`insert`](Params::insert)).
    pub fn mark_complete(&mut self) {
        self.complete = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fcgi::encode_nv;

    #[test]
    fn pairs_straddling_records_at_every_split() {
        let mut stream = Vec::new();
        encode_nv(&mut stream, b"SCRIPT_NAME", b"/app");
        encode_nv(&mut stream, b"QUERY_STRING", &[b'z'; 200]);
        encode_nv(&mut stream, b"HTTP_HOST", b"example");
        for a in 0..=stream.len() {
            for b in a..=stream.len() {
                let mut p = Params::new();
                for part in [&stream[..a], &stream[a..b], &stream[b..]] {
                    if !part.is_empty() {
                        p.push(part, 1 << 20).unwrap();
                    }
                }
                p.push(&[], 1 << 20).unwrap();
                assert_eq!(p.len(), 3);
                assert_eq!(p.get(b"SCRIPT_NAME"), Some(&b"/app"[..]));
                assert_eq!(p.get(b"HTTP_HOST"), Some(&b"example"[..]));
                assert_eq!(p.get(b"QUERY_STRING").map(<[u8]>::len), Some(200));
            }
        }
    }

    #[test]
    fn declared_length_past_the_limit_fails_before_the_bytes_arrive() {
        let mut p = Params::new();
        // name length 1, value length 1 GiB: refused on the 8 header bytes alone.
        let head = [1, 0xc0, 0, 0, 0];
        assert_eq!(
            p.push(&head, 4096),
            Err(ParamsError::TooLarge { limit: 4096 })
        );
        assert!(p.raw.capacity() < 4096);
    }

    #[test]
    fn truncated_stream_and_total_limit() {
        let mut p = Params::new();
        p.push(&[3, 3, b'a'], 100).unwrap();
        assert_eq!(p.push(&[], 100), Err(ParamsError::Truncated));
        let mut p = Params::new();
        assert!(p.push(&[0; 50], 60).is_ok());
        assert_eq!(
            p.push(&[0; 50], 60),
            Err(ParamsError::TooLarge { limit: 60 })
        );
    }

    #[test]
    fn clear_keeps_capacity_and_last_duplicate_wins() {
        let mut stream = Vec::new();
        encode_nv(&mut stream, b"A", b"1");
        encode_nv(&mut stream, b"A", b"2");
        let mut p = Params::new();
        p.push(&stream, 100).unwrap();
        assert_eq!(p.get(b"A"), Some(&b"2"[..]));
        let cap = p.raw.capacity();
        p.clear();
        assert!(p.is_empty() && !p.is_complete());
        assert_eq!(p.raw.capacity(), cap);
        p.insert(b"REQUEST_METHOD", b"GET");
        assert_eq!(p.get(b"REQUEST_METHOD"), Some(&b"GET"[..]));
    }
}
