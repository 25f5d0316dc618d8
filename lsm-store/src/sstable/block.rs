//! Data blocks: prefix-compressed entries with restart points, stored compressed (see
//! [`super::compression`]) and sealed by an xxh3 checksum.
//!
//! ```text
//! block = stored(body)  checksum(u64 LE)
//! body  = entry*  restart_offset(u32 LE)*  restart_count(u32 LE)
//! entry = shared_len varint | unshared_len varint | value_len varint | key suffix | value
//! ```
//! A restart entry stores its whole key (`shared_len = 0`), so a seek binary-searches the
//! restart points and then scans at most one restart interval. SSTs of format version 1 store
//! the body as it is, without the compression tag.

use std::cmp::Ordering;

use bytes::Bytes;
use epoch_mvcc::{FullKeyRef, Value, cmp_encoded_full_keys};

use super::compression::{BlockCompressor, decompress};
use crate::codec::{Reader, checksum, put_varint, verify_checksum};
use crate::{Error, Result};

/// Entries between restart points.
pub(crate) const RESTART_INTERVAL: usize = 16;

/// Accumulates entries of one block.
#[derive(Debug, Default)]
pub(crate) struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    last_key: Vec<u8>,
    entries: usize,
}

impl BlockBuilder {
    /// Adds an entry; keys must arrive in full-key order.
    pub(crate) fn add(&mut self, full_key: &[u8], value: &Value) {
        let shared = if self.entries.is_multiple_of(RESTART_INTERVAL) {
            self.restarts.push(self.buf.len() as u32);
            0
        } else {
            self.last_key
                .iter()
                .zip(full_key)
                .take_while(|(a, b)| a == b)
                .count()
        };
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, (full_key.len() - shared) as u64);
        put_varint(&mut self.buf, value.encoded_len() as u64);
        self.buf.extend_from_slice(&full_key[shared..]);
        value.encode_into(&mut self.buf);
        self.last_key.clear();
        self.last_key.extend_from_slice(full_key);
        self.entries += 1;
    }

    /// Bytes the finished block will take, about.
    pub(crate) fn estimated_size(&self) -> usize {
        self.buf.len() + self.restarts.len() * 4 + 12
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Finishes the block into `out`, stored by `compressor`, and resets the builder.
    pub(crate) fn finish_into(&mut self, out: &mut Vec<u8>, compressor: &mut BlockCompressor) {
        for r in &self.restarts {
            self.buf.extend_from_slice(&r.to_le_bytes());
        }
        self.buf
            .extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        let start = out.len();
        compressor.put(&self.buf, out);
        let sum = checksum(&out[start..]);
        out.extend_from_slice(&sum.to_le_bytes());
        self.buf.clear();
        self.restarts.clear();
        self.last_key.clear();
        self.entries = 0;
    }
}

/// A verified, parsed block.
#[derive(Clone, Debug)]
pub(crate) struct Block {
    /// Entries and restart array, checksum stripped.
    data: Bytes,
    restarts_start: usize,
    restart_count: usize,
}

impl Block {
    /// Verifies the checksum of a raw block of an SST of format `version`, decompresses it
    /// and parses its trailer.
    pub(crate) fn decode(raw: Bytes, object: &str, version: u32) -> Result<Block> {
        let stored = verify_checksum(&raw, object, "data block")?;
        if version < 2 {
            let len = stored.len();
            return Self::from_verified(raw.slice(..len), object);
        }
        let data = match decompress(stored, object)? {
            Some(body) => Bytes::from(body),
            // Stored as it is, before its tag.
            None => raw.slice(..stored.len() - 1),
        };
        Self::from_verified(data, object)
    }

    /// Parses a block body whose checksum was already verified (or stripped by a cache).
    pub(crate) fn from_verified(data: Bytes, object: &str) -> Result<Block> {
        let bad = || Error::corruption(object, "data block trailer is malformed");
        let count_at = data.len().checked_sub(4).ok_or_else(bad)?;
        let restart_count =
            u32::from_le_bytes(data[count_at..].try_into().expect("4 bytes")) as usize;
        let restarts_start = restart_count
            .checked_mul(4)
            .and_then(|n| count_at.checked_sub(n))
            .ok_or_else(bad)?;
        if restart_count == 0 {
            return Err(bad());
        }
        let block = Block {
            data,
            restarts_start,
            restart_count,
        };
        if (0..restart_count).any(|i| block.restart(i) >= restarts_start) {
            return Err(bad());
        }
        Ok(block)
    }

    /// The body (entries and restarts), as kept in caches.
    pub(crate) fn body(&self) -> &Bytes {
        &self.data
    }

    fn restart(&self, i: usize) -> usize {
        let at = self.restarts_start + i * 4;
        u32::from_le_bytes(self.data[at..at + 4].try_into().expect("4 bytes")) as usize
    }

    /// Heap bytes this block holds, for cache weighing.
    pub(crate) fn size(&self) -> usize {
        self.data.len()
    }
}

/// A position inside a block.
#[derive(Debug)]
pub(crate) struct BlockCursor {
    block: Block,
    object: std::sync::Arc<str>,
    /// Start of the current entry; `restarts_start` when invalid.
    offset: usize,
    next_offset: usize,
    key: Vec<u8>,
    value: std::ops::Range<usize>,
}

impl BlockCursor {
    pub(crate) fn new(block: Block, object: std::sync::Arc<str>) -> Self {
        let end = block.restarts_start;
        BlockCursor {
            block,
            object,
            offset: end,
            next_offset: end,
            key: Vec::new(),
            value: 0..0,
        }
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.offset < self.block.restarts_start
    }

    pub(crate) fn key(&self) -> FullKeyRef<'_> {
        FullKeyRef::decode(&self.key).expect("validated when decoded")
    }

    pub(crate) fn value(&self) -> Result<Value> {
        Value::decode(&self.block.data.slice(self.value.clone()))
            .ok_or_else(|| Error::corruption(&*self.object, "malformed value in data block"))
    }

    fn invalidate(&mut self) {
        self.offset = self.block.restarts_start;
        self.next_offset = self.offset;
    }

    /// Decodes the entry at `offset`, whose predecessor's key is in `self.key`.
    fn decode_at(&mut self, offset: usize) -> Result<()> {
        let end = self.block.restarts_start;
        let mut r = Reader::new(&self.block.data[offset..end], &self.object, "data block");
        let shared = r.len()?;
        let unshared = r.len()?;
        let value_len = r.len()?;
        let suffix = r.bytes(unshared)?;
        if shared > self.key.len() {
            return Err(Error::corruption(
                &*self.object,
                "data block key prefix out of range",
            ));
        }
        self.key.truncate(shared);
        self.key.extend_from_slice(suffix);
        if self.key.len() < epoch_mvcc::EPOCH_LEN {
            return Err(Error::corruption(
                &*self.object,
                "data block key shorter than an epoch",
            ));
        }
        let value_start = offset + r.position();
        let value_end = value_start
            .checked_add(value_len)
            .filter(|e| *e <= end)
            .ok_or_else(|| Error::corruption(&*self.object, "data block value out of range"))?;
        self.offset = offset;
        self.value = value_start..value_end;
        self.next_offset = value_end;
        Ok(())
    }

    pub(crate) fn seek_to_first(&mut self) -> Result<()> {
        self.key.clear();
        self.decode_at(self.block.restart(0))
    }

    pub(crate) fn seek_to_last(&mut self) -> Result<()> {
        let last = self.block.restart_count - 1;
        self.key.clear();
        self.decode_at(self.block.restart(last))?;
        while self.next_offset < self.block.restarts_start {
            self.decode_at(self.next_offset)?;
        }
        Ok(())
    }

    pub(crate) fn next(&mut self) -> Result<()> {
        if self.next_offset >= self.block.restarts_start {
            self.invalidate();
            return Ok(());
        }
        self.decode_at(self.next_offset)
    }

    pub(crate) fn prev(&mut self) -> Result<()> {
        let current = self.offset;
        // The restart interval holding the previous entry: the last restart before `current`.
        let interval = (0..self.block.restart_count)
            .rev()
            .find(|&i| self.block.restart(i) < current);
        let Some(interval) = interval else {
            self.invalidate();
            return Ok(());
        };
        self.key.clear();
        self.decode_at(self.block.restart(interval))?;
        while self.next_offset < current {
            self.decode_at(self.next_offset)?;
        }
        Ok(())
    }

    /// Moves to the first entry with key >= `target` (invalid if none).
    pub(crate) fn seek(&mut self, target: &[u8]) -> Result<()> {
        // Last restart whose key is < target; scanning from there finds the first key >= target.
        let (mut lo, mut hi) = (0, self.block.restart_count);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            self.key.clear();
            self.decode_at(self.block.restart(mid))?;
            if cmp_encoded_full_keys(&self.key, target) == Ordering::Less {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        self.key.clear();
        self.decode_at(self.block.restart(lo))?;
        while self.is_valid() && cmp_encoded_full_keys(&self.key, target) == Ordering::Less {
            self.next()?;
        }
        Ok(())
    }

    /// Moves to the last entry with key <= `target` (invalid if none).
    pub(crate) fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        self.seek(target)?;
        if !self.is_valid() {
            return self.seek_to_last();
        }
        if cmp_encoded_full_keys(&self.key, target) == Ordering::Greater {
            self.prev()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sstable::Compression;
    use epoch_mvcc::Epoch;
    use std::sync::Arc;

    fn build(n: usize, compression: Compression) -> (Block, Vec<Vec<u8>>) {
        let mut b = BlockBuilder::default();
        let mut keys = Vec::new();
        for i in 0..n {
            let k = FullKeyRef::new(format!("key{i:05}").as_bytes(), Epoch(7)).encode();
            b.add(&k, &Value::Put(Bytes::from(format!("v{i}"))));
            keys.push(k);
        }
        let mut out = Vec::new();
        b.finish_into(&mut out, &mut BlockCompressor::new(compression));
        (Block::decode(Bytes::from(out), "t", 2).unwrap(), keys)
    }

    #[test]
    fn every_compression_reads_back_the_same_block() {
        let (plain, _) = build(300, Compression::None);
        for compression in [Compression::Lz4, Compression::Zstd] {
            assert_eq!(build(300, compression).0.body(), plain.body());
        }
    }

    #[test]
    fn version_1_blocks_have_no_compression_tag() {
        let (plain, keys) = build(50, Compression::None);
        let mut v1 = plain.body().to_vec();
        crate::codec::seal_with_checksum(&mut v1);
        let block = Block::decode(Bytes::from(v1), "t", 1).unwrap();
        let mut c = BlockCursor::new(block, Arc::from("t"));
        c.seek_to_last().unwrap();
        assert_eq!(c.key().encode().as_slice(), keys[49].as_slice());
    }

    #[test]
    fn forward_backward_and_seek() {
        let (block, keys) = build(100, Compression::Zstd);
        let mut c = BlockCursor::new(block, Arc::from("t"));
        c.seek_to_first().unwrap();
        for k in &keys {
            assert_eq!(c.key().encode().as_slice(), k.as_slice());
            c.next().unwrap();
        }
        assert!(!c.is_valid());
        c.seek_to_last().unwrap();
        for k in keys.iter().rev() {
            assert_eq!(c.key().encode().as_slice(), k.as_slice());
            c.prev().unwrap();
        }
        assert!(!c.is_valid());
        c.seek(&keys[37]).unwrap();
        assert_eq!(c.key().encode().as_slice(), keys[37].as_slice());
        assert_eq!(c.value().unwrap(), Value::Put(Bytes::from("v37")));
        let between = FullKeyRef::new(b"key00037x", Epoch(7)).encode();
        c.seek(&between).unwrap();
        assert_eq!(c.key().encode().as_slice(), keys[38].as_slice());
        c.seek_for_prev(&between).unwrap();
        assert_eq!(c.key().encode().as_slice(), keys[37].as_slice());
        c.seek(&FullKeyRef::new(b"zzz", Epoch(7)).encode()).unwrap();
        assert!(!c.is_valid());
        c.seek_for_prev(&FullKeyRef::new(b"a", Epoch(7)).encode())
            .unwrap();
        assert!(!c.is_valid());
    }

    #[test]
    fn flipped_byte_is_detected() {
        for compression in [Compression::None, Compression::Zstd] {
            let mut b = BlockBuilder::default();
            for i in 0..50 {
                let key = FullKeyRef::new(format!("k{i:03}").as_bytes(), Epoch(1)).encode();
                b.add(&key, &Value::Delete);
            }
            let mut out = Vec::new();
            b.finish_into(&mut out, &mut BlockCompressor::new(compression));
            for i in 0..out.len() {
                let mut bad = out.clone();
                bad[i] ^= 0x10;
                assert!(matches!(
                    Block::decode(Bytes::from(bad), "o", 2),
                    Err(Error::Corruption { .. })
                ));
            }
        }
    }
}
