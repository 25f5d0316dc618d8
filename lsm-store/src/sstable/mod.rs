//! The SST format: data blocks, a prefix bloom filter, a sparse block index, properties and a
//! footer, each protected by an xxh3 checksum.

mod block;
mod builder;
mod compression;
mod filter;
mod format;

pub(crate) use block::{Block, BlockCursor};
pub use builder::SstOptions;
pub(crate) use builder::{BuiltSst, SstBuilder};
pub use compression::Compression;
pub(crate) use format::{SstTail, block_at_or_after, block_at_or_before};
