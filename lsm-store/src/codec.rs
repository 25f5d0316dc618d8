//! Little binary encoding helpers shared by the on-object formats.

use crate::{Error, Result};

/// Appends `v` as an unsigned LEB128 varint.
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends a length-prefixed byte string.
pub(crate) fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// xxh3 checksum of `data`.
pub(crate) fn checksum(data: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(data)
}

/// Appends the xxh3 checksum of everything in `buf` so far.
pub(crate) fn seal_with_checksum(buf: &mut Vec<u8>) {
    let sum = checksum(buf);
    buf.extend_from_slice(&sum.to_le_bytes());
}

/// Verifies and strips a trailing checksum added by [`seal_with_checksum`].
pub(crate) fn verify_checksum<'a>(data: &'a [u8], object: &str, what: &str) -> Result<&'a [u8]> {
    let split = data
        .len()
        .checked_sub(8)
        .ok_or_else(|| Error::corruption(object, format!("{what} is truncated")))?;
    let (body, sum) = data.split_at(split);
    let expected = u64::from_le_bytes(sum.try_into().expect("8 bytes"));
    if checksum(body) != expected {
        return Err(Error::corruption(
            object,
            format!("{what} checksum mismatch"),
        ));
    }
    Ok(body)
}

/// A bounds-checked reader over a byte slice; every short read is a corruption error.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    object: &'a str,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8], object: &'a str, what: &'static str) -> Self {
        Reader {
            data,
            pos: 0,
            object,
            what,
        }
    }

    fn err(&self, detail: &str) -> Error {
        Error::corruption(
            self.object,
            format!("{}: {detail} at offset {}", self.what, self.pos),
        )
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub(crate) fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self
                .data
                .get(self.pos)
                .ok_or_else(|| self.err("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint too long"))
    }

    pub(crate) fn len(&mut self) -> Result<usize> {
        let v = self.varint()?;
        usize::try_from(v).map_err(|_| self.err("length overflow"))
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| self.err("length overflow"))?;
        let out = self
            .data
            .get(self.pos..end)
            .ok_or_else(|| self.err("truncated"))?;
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn len_prefixed(&mut self) -> Result<&'a [u8]> {
        let n = self.len()?;
        self.bytes(n)
    }

    pub(crate) fn u32_le(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.bytes(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub(crate) fn u64_le(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.bytes(8)?.try_into().expect("8 bytes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_roundtrip_and_truncation() {
        let mut buf = Vec::new();
        for v in [0, 1, 127, 128, 300, u64::MAX] {
            put_varint(&mut buf, v);
        }
        let mut r = Reader::new(&buf, "obj", "test");
        for v in [0, 1, 127, 128, 300, u64::MAX] {
            assert_eq!(r.varint().unwrap(), v);
        }
        assert!(r.is_empty());
        assert!(matches!(
            Reader::new(&[0x80], "obj", "t").varint(),
            Err(Error::Corruption { .. })
        ));
    }

    #[test]
    fn checksum_detects_flip() {
        let mut buf = b"hello".to_vec();
        seal_with_checksum(&mut buf);
        assert_eq!(verify_checksum(&buf, "o", "x").unwrap(), b"hello");
        buf[1] ^= 1;
        assert!(verify_checksum(&buf, "o", "x").is_err());
        assert!(verify_checksum(&buf[..3], "o", "x").is_err());
    }
}
