//! A cloud-native LSM tree whose durable state lives entirely in object storage (a local
//! directory, memory, or S3), implementing [`epoch_mvcc::StateStore`].
//!
//! Writes go into a per-epoch memtable, are sealed into the shared buffer when the epoch's
//! barrier passes, and are uploaded as SSTs (one L0 sub-level per checkpoint) by
//! [`LsmStore::sync_epoch`], which then commits a new manifest version. Reads merge memtables,
//! sealed batches and SSTs through block and metadata caches. Leveled compaction and garbage
//! collection run in the background.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use epoch_mvcc::{Epoch, StateStore, Value};
//! use lsm_store::{LsmStore, LsmStoreOptions, object_store::MemoryObjectStore};
//!
//! let store = LsmStore::open(Arc::new(MemoryObjectStore::new()), LsmStoreOptions::default())
//!     .await
//!     .unwrap();
//! let epoch = store.committed_epoch().next();
//! store.ingest_batch(epoch, vec![(Bytes::from("k"), Value::Put(Bytes::from("v")))]).await.unwrap();
//! store.seal_epoch(epoch).unwrap();
//! store.sync(epoch).await.unwrap();
//! assert_eq!(store.get(b"k", epoch).await.unwrap(), Some(Bytes::from("v")));
//! # });
//! ```

mod codec;
pub mod compaction;
mod error;
mod iterator;
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
pub use sstable::SstOptions;
pub use sstable_store::CacheOptions;
pub use stats::{CacheStats, LevelStats, LsmStats};
pub use store::{GcOptions, GcReport, LsmIter, LsmStore, LsmStoreOptions};
