//! A bounds-checked cursor over one packet's payload, and the matching writers.

use super::{EncodeError, Error};

/// The null AJP string's length.
pub(super) const NULL_LEN: u16 = 0xFFFF;

/// Reads AJP types from a payload; every read is checked and fails with [`Error::Truncated`].
#[derive(Debug, Clone)]
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes read so far.
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub(super) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The payload between two positions of this reader.
    pub(super) fn slice(&self, from: usize, to: usize) -> &'a [u8] {
        self.buf.get(from..to).unwrap_or_default()
    }

    pub(super) fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated { field })?;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or(Error::Truncated { field })?;
        self.pos = end;
        Ok(bytes)
    }

    pub(super) fn u8(&mut self, field: &'static str) -> Result<u8, Error> {
        let [b] = *self.bytes(1, field)? else {
            return Err(Error::Truncated { field });
        };
        Ok(b)
    }

    pub(super) fn u16(&mut self, field: &'static str) -> Result<u16, Error> {
        let [a, b] = *self.bytes(2, field)? else {
            return Err(Error::Truncated { field });
        };
        Ok(u16::from_be_bytes([a, b]))
    }

    /// An AJP string: `None` for the null string.
    pub(super) fn string(&mut self, field: &'static str) -> Result<Option<&'a [u8]>, Error> {
        let len = self.u16(field)?;
        self.string_body(len, field)
    }

    /// The rest of an AJP string whose length was already read.
    pub(super) fn string_body(
        &mut self,
        len: u16,
        field: &'static str,
    ) -> Result<Option<&'a [u8]>, Error> {
        if len == NULL_LEN {
            return Ok(None);
        }
        let bytes = self.bytes(usize::from(len), field)?;
        if self.u8(field)? != 0 {
            return Err(Error::MissingNul { field });
        }
        Ok(Some(bytes))
    }
}

pub(super) fn put_u16(out: &mut Vec<u8>, n: u16) {
    out.extend_from_slice(&n.to_be_bytes());
}

/// Append an AJP string (never the null form for `Some`).
pub(super) fn put_string(
    out: &mut Vec<u8>,
    s: Option<&[u8]>,
    field: &'static str,
) -> Result<(), EncodeError> {
    let Some(s) = s else {
        put_u16(out, NULL_LEN);
        return Ok(());
    };
    let len = u16::try_from(s.len())
        .ok()
        .filter(|&l| l != NULL_LEN)
        .ok_or(EncodeError::StringTooLong { field })?;
    put_u16(out, len);
    out.extend_from_slice(s);
    out.push(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        let mut r = Reader::new(b"\x00\x02hi\x00\xff\xff\x00\x00\x00\x00\x01x!");
        assert_eq!(r.string("a"), Ok(Some(&b"hi"[..])));
        assert_eq!(r.string("b"), Ok(None));
        assert_eq!(r.string("c"), Ok(Some(&b""[..])));
        assert_eq!(r.string("d"), Err(Error::MissingNul { field: "d" }));
        assert_eq!(r.remaining(), 0);
        assert_eq!(
            Reader::new(b"\x00\x05ab").string("e"),
            Err(Error::Truncated { field: "e" })
        );
        assert_eq!(
            Reader::new(b"\x00\x02ab").string("f"),
            Err(Error::Truncated { field: "f" })
        );
        assert_eq!(
            Reader::new(b"\x00").u16("g"),
            Err(Error::Truncated { field: "g" })
        );
        assert_eq!(
            Reader::new(b"").u8("h"),
            Err(Error::Truncated { field: "h" })
        );
    }

    #[test]
    fn put_strings() {
        let mut out = Vec::new();
        put_string(&mut out, Some(b"hi"), "a").unwrap();
        put_string(&mut out, None, "a").unwrap();
        put_string(&mut out, Some(b""), "a").unwrap();
        assert_eq!(out, b"\x00\x02hi\x00\xff\xff\x00\x00\x00");
        let long = vec![b'x'; 0xFFFF];
        assert_eq!(
            put_string(&mut out, Some(&long), "z"),
            Err(EncodeError::StringTooLong { field: "z" })
        );
    }
}
