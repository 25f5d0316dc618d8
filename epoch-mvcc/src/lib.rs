#![doc = include_str!("../README.md")]

mod epoch;
mod epoch_manager;
mod error;
mod key;
pub mod memcomparable;
mod mvcc;
mod state_store;
mod value;

pub use epoch::{EPOCH_BASE_UNIX_MS, EPOCH_SEQ_BITS, Epoch, physical_now_ms};
pub use epoch_manager::{EpochManager, PinnedSnapshot};
pub use error::{StoreError, StoreResult};
pub use key::{
    EPOCH_LEN, FullKeyRef, TABLE_KEY_HEADER_LEN, VNODE_COUNT, cmp_encoded_full_keys,
    prefix_successor, table_id_of, table_key, table_prefix, vnode_for, vnode_of,
};
pub use mvcc::{
    CompactionFilter, Direction, KeyRange, MvccIter, VersionCursor, range_contains, within_end,
};
pub use state_store::{StateStore, StateStoreIter, WriteBatch};
pub use value::Value;
