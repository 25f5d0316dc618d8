//! The SST file layout around the data blocks: filter, index, meta block and footer.
//!
//! ```text
//! data block*  filter block  index block  meta block  footer (56 bytes)
//! footer = filter_offset u64 | filter_len u32 | index_offset u64 | index_len u32 |
//!          meta_offset u64 | meta_len u32 | format_version u32 | magic u64 | checksum u64
//! ```
//! Format version 3 filters with a blocked bloom filter (see [`super::filter`]); version 2
//! compresses data blocks (see [`super::compression`]). Versions 1 (blocks stored as they
//! are) and 2 (a `bloomfilter` crate filter) are still read.
//! Everything after the data blocks (the "tail") is read with one ranged GET when an SST is
//! opened; each part carries its own xxh3 checksum, and the footer checksums itself.

use std::cmp::Ordering;

use bytes::Bytes;
use epoch_mvcc::cmp_encoded_full_keys;

use super::filter::SstFilter;
use crate::codec::{Reader, checksum, put_bytes, put_varint, seal_with_checksum, verify_checksum};
use crate::{Error, Result};

/// Bytes of the fixed footer.
pub(crate) const FOOTER_LEN: usize = 56;
/// The format version this code writes (it reads this one and the ones before).
pub(crate) const FORMAT_VERSION: u32 = 3;
const MAGIC: u64 = 0x4c53_4d53_5354_0001;

/// Where one data block lives and which keys it spans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BlockHandle {
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) first_key: Bytes,
    pub(crate) last_key: Bytes,
}

/// Statistics of an SST, stored in it and mirrored in the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct SstProperties {
    pub(crate) smallest_key: Bytes,
    pub(crate) largest_key: Bytes,
    pub(crate) min_epoch: u64,
    pub(crate) max_epoch: u64,
    pub(crate) key_count: u64,
    pub(crate) tombstone_count: u64,
    pub(crate) table_ids: Vec<u32>,
}

pub(crate) fn encode_index(index: &[BlockHandle]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, index.len() as u64);
    for h in index {
        put_varint(&mut out, h.offset);
        put_varint(&mut out, u64::from(h.len));
        put_bytes(&mut out, &h.first_key);
        put_bytes(&mut out, &h.last_key);
    }
    seal_with_checksum(&mut out);
    out
}

fn decode_index(block: &[u8], object: &str) -> Result<Vec<BlockHandle>> {
    let body = verify_checksum(block, object, "index block")?;
    let mut r = Reader::new(body, object, "index block");
    let count = r.len()?;
    let mut index = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        let offset = r.varint()?;
        let len = u32::try_from(r.varint()?)
            .map_err(|_| Error::corruption(object, "index block: block length overflow"))?;
        let first_key = Bytes::copy_from_slice(r.len_prefixed()?);
        let last_key = Bytes::copy_from_slice(r.len_prefixed()?);
        index.push(BlockHandle {
            offset,
            len,
            first_key,
            last_key,
        });
    }
    if !r.is_empty() {
        return Err(Error::corruption(object, "index block has trailing bytes"));
    }
    Ok(index)
}

pub(crate) fn encode_properties(p: &SstProperties) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes(&mut out, &p.smallest_key);
    put_bytes(&mut out, &p.largest_key);
    put_varint(&mut out, p.min_epoch);
    put_varint(&mut out, p.max_epoch);
    put_varint(&mut out, p.key_count);
    put_varint(&mut out, p.tombstone_count);
    put_varint(&mut out, p.table_ids.len() as u64);
    for t in &p.table_ids {
        put_varint(&mut out, u64::from(*t));
    }
    seal_with_checksum(&mut out);
    out
}

fn decode_properties(block: &[u8], object: &str) -> Result<SstProperties> {
    let body = verify_checksum(block, object, "meta block")?;
    let mut r = Reader::new(body, object, "meta block");
    let smallest_key = Bytes::copy_from_slice(r.len_prefixed()?);
    let largest_key = Bytes::copy_from_slice(r.len_prefixed()?);
    let min_epoch = r.varint()?;
    let max_epoch = r.varint()?;
    let key_count = r.varint()?;
    let tombstone_count = r.varint()?;
    let n = r.len()?;
    let mut table_ids = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        table_ids.push(
            u32::try_from(r.varint()?)
                .map_err(|_| Error::corruption(object, "meta block: table id overflow"))?,
        );
    }
    if !r.is_empty() {
        return Err(Error::corruption(object, "meta block has trailing bytes"));
    }
    Ok(SstProperties {
        smallest_key,
        largest_key,
        min_epoch,
        max_epoch,
        key_count,
        tombstone_count,
        table_ids,
    })
}

/// Offsets of the tail parts, as the footer records them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Footer {
    pub(crate) filter: (u64, u32),
    pub(crate) index: (u64, u32),
    pub(crate) meta: (u64, u32),
    /// The format version the SST was written in.
    pub(crate) version: u32,
}

pub(crate) fn encode_footer(f: &Footer) -> Vec<u8> {
    let mut out = Vec::with_capacity(FOOTER_LEN);
    for (offset, len) in [f.filter, f.index, f.meta] {
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
    }
    out.extend_from_slice(&f.version.to_le_bytes());
    out.extend_from_slice(&MAGIC.to_le_bytes());
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    debug_assert_eq!(out.len(), FOOTER_LEN);
    out
}

fn decode_footer(bytes: &[u8], object: &str) -> Result<Footer> {
    if bytes.len() != FOOTER_LEN {
        return Err(Error::corruption(object, "footer is truncated"));
    }
    let body = verify_checksum(bytes, object, "footer")?;
    let mut r = Reader::new(body, object, "footer");
    let mut part = || -> Result<(u64, u32)> { Ok((r.u64_le()?, r.u32_le()?)) };
    let (filter, index, meta) = (part()?, part()?, part()?);
    let version = r.u32_le()?;
    let magic = r.u64_le()?;
    if magic != MAGIC {
        return Err(Error::corruption(
            object,
            "footer magic mismatch: not an SST",
        ));
    }
    if !(1..=FORMAT_VERSION).contains(&version) {
        return Err(Error::corruption(
            object,
            format!("unsupported SST format version {version}"),
        ));
    }
    Ok(Footer {
        filter,
        index,
        meta,
        version,
    })
}

/// The parsed tail of an SST: everything a reader needs besides the data blocks.
#[derive(Debug)]
pub(crate) struct SstTail {
    pub(crate) index: Vec<BlockHandle>,
    pub(crate) filter: SstFilter,
    pub(crate) properties: SstProperties,
    /// The format version the SST was written in: how its blocks are read.
    pub(crate) format_version: u32,
}

impl SstTail {
    /// Parses the tail, which starts at `tail_offset` of the object.
    pub(crate) fn decode(tail: &[u8], tail_offset: u64, object: &str) -> Result<SstTail> {
        let footer_at = tail
            .len()
            .checked_sub(FOOTER_LEN)
            .ok_or_else(|| Error::corruption(object, "SST is shorter than its footer"))?;
        let footer = decode_footer(&tail[footer_at..], object)?;
        let part = |(offset, len): (u64, u32), what: &str| -> Result<&[u8]> {
            let start = offset
                .checked_sub(tail_offset)
                .ok_or_else(|| Error::corruption(object, format!("{what} offset before tail")))?
                as usize;
            let end = start + len as usize;
            if end > footer_at {
                return Err(Error::corruption(
                    object,
                    format!("{what} extends past the footer"),
                ));
            }
            Ok(&tail[start..end])
        };
        let filter =
            SstFilter::decode(part(footer.filter, "filter block")?, object, footer.version)?;
        let index = decode_index(part(footer.index, "index block")?, object)?;
        let properties = decode_properties(part(footer.meta, "meta block")?, object)?;
        if index
            .iter()
            .any(|h| h.offset + u64::from(h.len) > tail_offset)
        {
            return Err(Error::corruption(
                object,
                "index points past the data blocks",
            ));
        }
        Ok(SstTail {
            index,
            filter,
            properties,
            format_version: footer.version,
        })
    }
}

/// The first block whose last key is >= `target`.
pub(crate) fn block_at_or_after(index: &[BlockHandle], target: &[u8]) -> usize {
    index.partition_point(|h| cmp_encoded_full_keys(&h.last_key, target) == Ordering::Less)
}

/// The last block whose first key is <= `target`, if any.
pub(crate) fn block_at_or_before(index: &[BlockHandle], target: &[u8]) -> Option<usize> {
    index
        .partition_point(|h| cmp_encoded_full_keys(&h.first_key, target) != Ordering::Greater)
        .checked_sub(1)
}
