//! The error type of the [`StateStore`](crate::StateStore) interface.

use crate::Epoch;

/// Why a state store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A read asked for an epoch whose old versions compaction may already have dropped.
    #[error("epoch {read} is older than the safe epoch {safe}; pin a snapshot to keep it readable")]
    EpochTooOld {
        /// The epoch asked for.
        read: Epoch,
        /// The oldest epoch still readable.
        safe: Epoch,
    },
    /// A write or seal for an epoch that is already sealed.
    #[error("epoch {epoch} is already sealed (sealed up to {sealed})")]
    EpochSealed {
        /// The epoch of the rejected call.
        epoch: Epoch,
        /// The newest sealed epoch.
        sealed: Epoch,
    },
    /// A sync for an epoch that has not been sealed yet.
    #[error("epoch {epoch} is not sealed yet (sealed up to {sealed})")]
    EpochNotSealed {
        /// The epoch of the rejected call.
        epoch: Epoch,
        /// The newest sealed epoch.
        sealed: Epoch,
    },
    /// The store cannot take writes any more (fenced by another writer, or closed).
    #[error("the store is read-only: {0}")]
    ReadOnly(String),
    /// A failure inside the storage implementation (object store, corruption, ...).
    #[error(transparent)]
    Storage(Box<dyn std::error::Error + Send + Sync>),
}

/// Result of state store calls.
pub type StoreResult<T> = Result<T, StoreError>;
