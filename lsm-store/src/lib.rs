#![doc = include_str!("../README.md")]

mod codec;
pub mod compaction;
mod error;
mod iterator;
mod key_filter;
pub mod manifest;
mod memtable;
pub mod object_store;
mod sst_writer;
mod sstable;
mod sstable_store;
mod stats;
mod store;
pub mod version;

pub use error::{Error, Result};
pub use sstable::{Compression, SstOptions};
pub use sstable_store::CacheOptions;
pub use stats::{CacheStats, LevelStats, LsmStats};
pub use store::{GcOptions, GcReport, LsmIter, LsmStore, LsmStoreOptions};
