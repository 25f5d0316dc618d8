//! Builds an SST from versions in full-key order, handing its bytes over a part at a time
//! (so an SST is uploaded while it is built, and never held whole in memory).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use epoch_mvcc::{FullKeyRef, Value, table_id_of};

use super::block::BlockBuilder;
use super::compression::{BlockCompressor, Compression};
use super::filter::FilterBuilder;
use super::format::{
    BlockHandle, FORMAT_VERSION, Footer, SstProperties, encode_footer, encode_index,
    encode_properties,
};

/// How SSTs are laid out.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SstOptions {
    /// Target size of a data block before it is closed.
    pub block_size: usize,
    /// Target size of an SST; outputs are split at user-key boundaries past it.
    pub target_file_size: usize,
    /// Also add every whole user key to the bloom filter (helps point reads of tables without
    /// a prefix length; costs filter space).
    pub whole_key_filter: bool,
    /// Target false positive rate of the bloom filter.
    pub bloom_false_positive_rate: f64,
    /// How data blocks are compressed.
    #[serde(default)]
    pub compression: Compression,
}

impl Default for SstOptions {
    fn default() -> Self {
        SstOptions {
            block_size: 64 << 10,
            target_file_size: 64 << 20,
            whole_key_filter: true,
            bloom_false_positive_rate: 0.01,
            compression: Compression::default(),
        }
    }
}

/// The end of a built SST: its bytes not taken yet (the tail among them) and what the
/// manifest records of it.
#[derive(Debug)]
pub(crate) struct BuiltSst {
    /// The SST's last bytes: everything after the parts taken with
    /// [`SstBuilder::take_ready`].
    pub(crate) last: Bytes,
    pub(crate) properties: SstProperties,
    /// Where the tail (filter, index, meta, footer) starts.
    pub(crate) tail_offset: u64,
    /// The whole SST's size.
    pub(crate) file_size: u64,
}

/// Accumulates versions into blocks and, at the end, the tail.
#[derive(Debug)]
pub(crate) struct SstBuilder {
    block_size: usize,
    /// Bytes of finished blocks handed over at once (see [`SstBuilder::take_ready`]).
    part_size: usize,
    /// Bytes written and not taken yet.
    out: Vec<u8>,
    /// Bytes taken before `out`.
    taken: u64,
    block: BlockBuilder,
    compressor: BlockCompressor,
    block_first_key: Vec<u8>,
    last_key: Vec<u8>,
    last_user_key: Option<Vec<u8>>,
    index: Vec<BlockHandle>,
    filter: FilterBuilder,
    props: SstProperties,
    table_ids: BTreeSet<u32>,
    smallest_key: Option<Vec<u8>>,
}

impl SstBuilder {
    /// A builder handing its bytes over in parts of `part_size`.
    pub(crate) fn new(
        options: &SstOptions,
        prefix_lens: BTreeMap<u32, usize>,
        part_size: usize,
    ) -> Self {
        let block_size = options.block_size.max(1);
        SstBuilder {
            block_size,
            part_size,
            out: Self::part_buffer(part_size.min(options.target_file_size), block_size),
            taken: 0,
            block: BlockBuilder::default(),
            compressor: BlockCompressor::new(options.compression),
            block_first_key: Vec::new(),
            last_key: Vec::new(),
            last_user_key: None,
            index: Vec::new(),
            filter: FilterBuilder::new(
                prefix_lens,
                options.whole_key_filter,
                options.bloom_false_positive_rate,
            ),
            props: SstProperties {
                min_epoch: u64::MAX,
                ..SstProperties::default()
            },
            table_ids: BTreeSet::new(),
            smallest_key: None,
        }
    }

    /// Adds a version; versions must arrive in full-key order.
    pub(crate) fn add(&mut self, key: FullKeyRef<'_>, value: &Value) {
        let encoded = key.encode();
        if self.block.is_empty() {
            self.block_first_key.clone_from(&encoded);
        }
        if self.smallest_key.is_none() {
            self.smallest_key = Some(encoded.clone());
        }
        if self.last_user_key.as_deref() != Some(key.user_key) {
            self.filter.add(key.user_key);
            if let Some(t) = table_id_of(key.user_key) {
                self.table_ids.insert(t);
            }
            self.last_user_key = Some(key.user_key.to_vec());
        }
        self.block.add(&encoded, value);
        self.last_key = encoded;
        self.props.min_epoch = self.props.min_epoch.min(key.epoch.0);
        self.props.max_epoch = self.props.max_epoch.max(key.epoch.0);
        self.props.key_count += 1;
        self.props.tombstone_count += u64::from(value.is_delete());
        if self.block.estimated_size() >= self.block_size {
            self.finish_block();
        }
    }

    /// The user key of the last version added.
    pub(crate) fn last_user_key(&self) -> Option<&[u8]> {
        self.last_user_key.as_deref()
    }

    fn finish_block(&mut self) {
        let offset = self.written();
        self.block.finish_into(&mut self.out, &mut self.compressor);
        self.index.push(BlockHandle {
            offset,
            len: (self.written() - offset) as u32,
            first_key: Bytes::from(std::mem::take(&mut self.block_first_key)),
            last_key: Bytes::copy_from_slice(&self.last_key),
        });
    }

    /// Bytes written so far, about.
    pub(crate) fn estimated_size(&self) -> usize {
        self.written() as usize + self.block.estimated_size()
    }

    /// Bytes of finished blocks so far.
    fn written(&self) -> u64 {
        self.taken + self.out.len() as u64
    }

    /// Room for a part and the block that crosses its end, so that the buffer never grows
    /// (growing would copy it and fault in fresh pages at each doubling).
    fn part_buffer(part_size: usize, block_size: usize) -> Vec<u8> {
        Vec::with_capacity(part_size + 2 * block_size)
    }

    /// The finished blocks' bytes not taken yet, once there are at least a part of them: the
    /// SST's next part, to upload while the rest is built.
    pub(crate) fn take_ready(&mut self) -> Option<Bytes> {
        if self.out.len() < self.part_size {
            return None;
        }
        let next = Self::part_buffer(self.part_size, self.block_size);
        let part = std::mem::replace(&mut self.out, next);
        self.taken += part.len() as u64;
        Some(Bytes::from(part))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.props.key_count == 0
    }

    /// Writes the tail and returns the end of the SST.
    pub(crate) fn finish(mut self) -> BuiltSst {
        if !self.block.is_empty() {
            self.finish_block();
        }
        let tail_offset = self.written();
        let mut part = |bytes: Vec<u8>| {
            let at = self.taken + self.out.len() as u64;
            self.out.extend_from_slice(&bytes);
            (at, bytes.len() as u32)
        };
        let filter = part(self.filter.finish());
        let index = part(encode_index(&self.index));
        self.props.smallest_key = Bytes::from(self.smallest_key.unwrap_or_default());
        self.props.largest_key = Bytes::from(self.last_key);
        self.props.table_ids = self.table_ids.into_iter().collect();
        let meta = part(encode_properties(&self.props));
        let footer = encode_footer(&Footer {
            filter,
            index,
            meta,
            version: FORMAT_VERSION,
        });
        self.out.extend_from_slice(&footer);
        let file_size = self.taken + self.out.len() as u64;
        BuiltSst {
            file_size,
            last: Bytes::from(self.out),
            properties: self.props,
            tail_offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use epoch_mvcc::Epoch;

    use super::*;
    use crate::sstable::format::SstTail;

    /// Builds an SST of `keys` versions, taking parts of `part_size` bytes as they are
    /// ready when set; returns the parts, then the end.
    fn build(keys: u32, part_size: Option<usize>) -> (Vec<Bytes>, BuiltSst) {
        let options = SstOptions {
            block_size: 512,
            compression: Compression::None,
            ..SstOptions::default()
        };
        let mut builder =
            SstBuilder::new(&options, BTreeMap::new(), part_size.unwrap_or(usize::MAX));
        let mut parts = Vec::new();
        for k in 0..keys {
            let key = format!("key{k:08}");
            let value = Value::Put(Bytes::from(vec![k as u8; 40]));
            builder.add(FullKeyRef::new(key.as_bytes(), Epoch(7)), &value);
            if let Some(part) = builder.take_ready() {
                parts.push(part);
            }
        }
        (parts, builder.finish())
    }

    #[test]
    fn an_sst_taken_in_parts_is_the_sst_built_whole() {
        let (none, whole) = build(2000, None);
        assert!(none.is_empty());
        let (parts, end) = build(2000, Some(4096));
        assert!(parts.len() > 10, "{} parts", parts.len());
        let mut joined: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        joined.extend_from_slice(&end.last);
        assert_eq!(joined, whole.last.to_vec());
        assert_eq!(
            (end.file_size, end.tail_offset),
            (whole.file_size, whole.tail_offset)
        );
        assert_eq!(end.file_size, joined.len() as u64);
        // The tail's block handles point into the whole object.
        let tail =
            SstTail::decode(&joined[end.tail_offset as usize..], end.tail_offset, "test").unwrap();
        let last = tail.index.last().unwrap();
        assert_eq!(last.offset + u64::from(last.len), end.tail_offset);
    }
}
