//! Response header fields, kept as (name, value) pairs until a protocol encodes them.
//!
//! FastCGI and SCGI write them as CGI header lines (`Name: value` and CRLF); AJP13 writes each
//! pair into its SEND_HEADERS packet, with a one-byte code for the common names. Keeping the
//! pairs structured means no protocol has to parse header text back into pairs. The pairs live
//! in one byte buffer with an index of offsets, so a `Headers` reused across requests allocates
//! nothing once warm.

/// Where one field sits in [`Headers`]' buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    start: u32,
    name_len: u32,
    value_len: u32,
}

/// Response header fields in the order they were added. Names and values are stored as given:
/// the caller validates them (names are tokens, values hold no CR, LF or NUL).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Headers {
    bytes: Vec<u8>,
    fields: Vec<Field>,
}

impl Headers {
    /// No field.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field.
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(value);
        self.fields.push(Field {
            start: start as u32,
            name_len: name.len() as u32,
            value_len: value.len() as u32,
        });
    }

    /// Forgets every field, keeping the allocations.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.fields.clear();
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when there is no field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The fields, as (name, value), in the order they were added.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + Clone + '_ {
        self.fields.iter().map(|f| {
            let start = f.start as usize;
            let mid = start + f.name_len as usize;
            (
                &self.bytes[start..mid],
                &self.bytes[mid..mid + f.value_len as usize],
            )
        })
    }

    /// Appends the fields as CGI header lines (`Name: value\r\n` each), without the blank line
    /// that ends a header block.
    pub fn write_cgi(&self, out: &mut Vec<u8>) {
        out.reserve(self.bytes.len() + 4 * self.fields.len());
        for (name, value) in self.iter() {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
    }
}

impl<'a> FromIterator<(&'a [u8], &'a [u8])> for Headers {
    fn from_iter<I: IntoIterator<Item = (&'a [u8], &'a [u8])>>(iter: I) -> Self {
        let mut h = Headers::new();
        for (name, value) in iter {
            h.push(name, value);
        }
        h
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Headers {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(iter: I) -> Self {
        iter.into_iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_come_back_in_order_and_as_cgi_lines() {
        let mut h: Headers = [("Content-Type", "text/plain"), ("X-Empty", "")]
            .into_iter()
            .collect();
        h.push(b"Set-Cookie", b"a=1");
        let pairs: Vec<_> = h.iter().collect();
        assert_eq!(
            pairs,
            [
                (&b"Content-Type"[..], &b"text/plain"[..]),
                (b"X-Empty", b""),
                (b"Set-Cookie", b"a=1"),
            ]
        );
        let mut out = Vec::new();
        h.write_cgi(&mut out);
        assert_eq!(
            out,
            b"Content-Type: text/plain\r\nX-Empty: \r\nSet-Cookie: a=1\r\n"
        );
        let cap = h.bytes.capacity();
        h.clear();
        assert!(h.is_empty() && h.iter().next().is_none());
        h.push(b"A", b"b");
        assert_eq!(h.bytes.capacity(), cap);
        assert_eq!(h.len(), 1);
    }
}
