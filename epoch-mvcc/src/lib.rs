//! Epochs, a versioned key codec, MVCC snapshot visibility and the [`StateStore`] trait.
//!
//! Every write in the system happens at an [`Epoch`]. Storage keeps several versions of a key,
//! each under a full key (`user_key ++ inverted epoch`, see [`FullKeyRef`]), so that a reader
//! can see a consistent snapshot "as of" any readable epoch ([`MvccIter`]) and compaction knows
//! which old versions it may drop ([`CompactionFilter`]). [`EpochManager`] tracks which epochs
//! are in flight, sealed and committed, and which snapshots readers pin.
//!
//! ```
//! use epoch_mvcc::{Epoch, FullKeyRef, cmp_encoded_full_keys};
//! let e1 = Epoch::now();
//! let e2 = e1.next();
//! let newer = FullKeyRef::new(b"k", e2).encode();
//! let older = FullKeyRef::new(b"k", e1).encode();
//! assert!(cmp_encoded_full_keys(&newer, &older).is_lt());
//! ```

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
