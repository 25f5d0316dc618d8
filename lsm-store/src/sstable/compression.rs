//! Data block compression. A block is stored as its body, or compressed, followed by a tag
//! byte naming which:
//!
//! ```text
//! stored = body 0x00 | uncompressed_len(u32 LE) lz4_block 0x01 | uncompressed_len(u32 LE) zstd_frame 0x02
//! ```
//! A block compressed by less than an eighth is stored as it is, so incompressible data costs
//! no decompression on reads. The block's checksum covers the stored bytes: corruption is
//! found before anything is decompressed.

use std::cell::RefCell;

use crate::{Error, Result};

/// How data blocks are compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Stored as they are.
    None,
    /// LZ4: the fastest to compress and decompress, about half the size on typical rows.
    Lz4,
    /// Zstandard at level 1: about as fast to compress as LZ4 and a third smaller again.
    #[default]
    Zstd,
}

impl std::str::FromStr for Compression {
    type Err = String;

    /// `none`, `lz4` or `zstd`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Compression::None),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            other => Err(format!("unknown compression '{other}' (none, lz4 or zstd)")),
        }
    }
}

const TAG_NONE: u8 = 0;
const TAG_LZ4: u8 = 1;
const TAG_ZSTD: u8 = 2;

/// The Zstandard level: the fastest, which already beats LZ4's ratio on rows.
const ZSTD_LEVEL: i32 = 1;

/// Bytes of the uncompressed length before a compressed payload.
const LEN_BYTES: usize = 4;

/// Compresses blocks with one algorithm, keeping its context and scratch space between blocks.
pub(crate) struct BlockCompressor {
    kind: Compression,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for BlockCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCompressor")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl BlockCompressor {
    pub(crate) fn new(kind: Compression) -> Self {
        // A context that cannot be made (out of memory) leaves blocks uncompressed.
        let zstd = match kind {
            Compression::Zstd => zstd::bulk::Compressor::new(ZSTD_LEVEL).ok(),
            _ => None,
        };
        BlockCompressor {
            kind,
            zstd,
            scratch: Vec::new(),
        }
    }

    /// Appends `body` to `out` as stored (see the module docs).
    pub(crate) fn put(&mut self, body: &[u8], out: &mut Vec<u8>) {
        let tag = match self.compress(body) {
            Some(tag) if self.scratch.len() + LEN_BYTES < body.len() - body.len() / 8 => tag,
            _ => {
                out.extend_from_slice(body);
                out.push(TAG_NONE);
                return;
            }
        };
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.scratch);
        out.push(tag);
    }

    /// Compresses `body` into the scratch space; the tag, if compressed.
    fn compress(&mut self, body: &[u8]) -> Option<u8> {
        self.scratch.clear();
        match self.kind {
            Compression::None => None,
            Compression::Lz4 => {
                let bound = lz4::block::compress_bound(body.len()).ok()?;
                self.scratch.resize(bound, 0);
                let len =
                    lz4::block::compress_to_buffer(body, None, false, &mut self.scratch).ok()?;
                self.scratch.truncate(len);
                Some(TAG_LZ4)
            }
            Compression::Zstd => {
                let zstd = self.zstd.as_mut()?;
                self.scratch
                    .reserve(zstd::zstd_safe::compress_bound(body.len()));
                zstd.compress_to_buffer(body, &mut self.scratch).ok()?;
                Some(TAG_ZSTD)
            }
        }
    }
}

thread_local! {
    static ZSTD_DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// Blocks are never larger than this uncompressed; a larger length is corruption.
const MAX_BLOCK_BYTES: usize = 1 << 30;

/// The body of a block stored as `stored` (checksum already verified and stripped): the
/// stored bytes themselves when uncompressed (`Ok(None)`), else the decompressed body.
pub(crate) fn decompress(stored: &[u8], object: &str) -> Result<Option<Vec<u8>>> {
    let bad = |what: String| Error::corruption(object, format!("data block: {what}"));
    let Some((&tag, payload)) = stored.split_last() else {
        return Err(bad("empty".into()));
    };
    if tag == TAG_NONE {
        return Ok(None);
    }
    if payload.len() < LEN_BYTES {
        return Err(bad("compressed payload is truncated".into()));
    }
    let (len, compressed) = payload.split_at(LEN_BYTES);
    let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
    if len > MAX_BLOCK_BYTES {
        return Err(bad(format!("uncompressed length {len} is too large")));
    }
    let body = match tag {
        TAG_LZ4 => {
            let mut body = vec![0; len];
            let size = i32::try_from(len).expect("bounded above");
            let n = lz4::block::decompress_to_buffer(compressed, Some(size), &mut body)
                .map_err(|e| bad(format!("lz4: {e}")))?;
            body.truncate(n);
            body
        }
        TAG_ZSTD => ZSTD_DECOMPRESSOR.with(|cell| {
            let mut cell = cell.borrow_mut();
            let decompressor = match &mut *cell {
                Some(d) => d,
                None => cell.insert(
                    zstd::bulk::Decompressor::new().map_err(|e| bad(format!("zstd: {e}")))?,
                ),
            };
            let mut body = Vec::with_capacity(len);
            decompressor
                .decompress_to_buffer(compressed, &mut body)
                .map_err(|e| bad(format!("zstd: {e}")))?;
            Ok::<_, Error>(body)
        })?,
        other => return Err(bad(format!("unknown compression {other}"))),
    };
    if body.len() != len {
        return Err(bad(format!(
            "decompressed to {} bytes, expected {len}",
            body.len()
        )));
    }
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(kind: Compression, body: &[u8]) -> Vec<u8> {
        let mut out = vec![9, 9];
        BlockCompressor::new(kind).put(body, &mut out);
        let stored = &out[2..];
        let back = decompress(stored, "t")
            .unwrap()
            .unwrap_or_else(|| stored[..stored.len() - 1].to_vec());
        assert_eq!(back, body, "{kind:?}");
        stored.to_vec()
    }

    #[test]
    fn blocks_come_back_as_they_went_in() {
        let repetitive: Vec<u8> = (0..20_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        let random: Vec<u8> = (0..4096u64)
            .map(|i| xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()) as u8)
            .collect();
        for kind in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let stored = round_trip(kind, &repetitive);
            assert_eq!(
                stored.len() < repetitive.len() / 4,
                kind != Compression::None,
                "{kind:?} stored {} bytes",
                stored.len()
            );
            // Incompressible bodies are stored as they are.
            assert_eq!(round_trip(kind, &random).len(), random.len() + 1);
            round_trip(kind, b"");
        }
    }

    #[test]
    fn damaged_payloads_are_errors_not_data() {
        let body: Vec<u8> = (0..8000u32).flat_map(|i| (i % 13).to_le_bytes()).collect();
        for kind in [Compression::Lz4, Compression::Zstd] {
            let mut stored = Vec::new();
            BlockCompressor::new(kind).put(&body, &mut stored);
            // A wrong length, a cut payload, an unknown tag.
            let mut long = stored.clone();
            long[0] ^= 0x01;
            let mut cut = stored[..stored.len() / 2].to_vec();
            cut.push(*stored.last().unwrap());
            let mut unknown = stored.clone();
            *unknown.last_mut().unwrap() = 7;
            for bad in [long, cut, unknown, vec![TAG_ZSTD]] {
                assert!(matches!(
                    decompress(&bad, "o"),
                    Err(Error::Corruption { .. })
                ));
            }
        }
    }
}
