//! Builds an SST in memory from versions in full-key order.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use epoch_mvcc::{FullKeyRef, Value, table_id_of};

use super::block::BlockBuilder;
use super::filter::FilterBuilder;
use super::format::{
    BlockHandle, Footer, SstProperties, encode_footer, encode_index, encode_properties,
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
}

impl Default for SstOptions {
    fn default() -> Self {
        SstOptions {
            block_size: 64 << 10,
            target_file_size: 64 << 20,
            whole_key_filter: true,
            bloom_false_positive_rate: 0.01,
        }
    }
}

/// An SST built in memory, ready to upload.
#[derive(Debug)]
pub(crate) struct BuiltSst {
    pub(crate) data: Bytes,
    pub(crate) properties: SstProperties,
    /// Where the tail (filter, index, meta, footer) starts.
    pub(crate) tail_offset: u64,
}

/// Accumulates versions into blocks and, at the end, the tail.
#[derive(Debug)]
pub(crate) struct SstBuilder {
    block_size: usize,
    out: Vec<u8>,
    block: BlockBuilder,
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
    pub(crate) fn new(options: &SstOptions, prefix_lens: BTreeMap<u32, usize>) -> Self {
        SstBuilder {
            block_size: options.block_size.max(1),
            out: Vec::new(),
            block: BlockBuilder::default(),
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
        let offset = self.out.len();
        self.block.finish_into(&mut self.out);
        self.index.push(BlockHandle {
            offset: offset as u64,
            len: (self.out.len() - offset) as u32,
            first_key: Bytes::from(std::mem::take(&mut self.block_first_key)),
            last_key: Bytes::copy_from_slice(&self.last_key),
        });
    }

    /// Bytes written so far, about.
    pub(crate) fn estimated_size(&self) -> usize {
        self.out.len() + self.block.estimated_size()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.props.key_count == 0
    }

    /// Writes the tail and returns the SST.
    pub(crate) fn finish(mut self) -> BuiltSst {
        if !self.block.is_empty() {
            self.finish_block();
        }
        let tail_offset = self.out.len() as u64;
        let mut part = |bytes: Vec<u8>| {
            let at = self.out.len() as u64;
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
        });
        self.out.extend_from_slice(&footer);
        BuiltSst {
            data: Bytes::from(self.out),
            properties: self.props,
            tail_offset,
        }
    }
}
