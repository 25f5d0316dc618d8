//! The crate's error type.

use epoch_mvcc::StoreError;

use crate::object_store::ObjectError;

/// Why an lsm-store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object store failed after retries, or reported a permanent error.
    #[error(transparent)]
    ObjectStore(#[from] ObjectError),
    /// An object's contents fail verification: a checksum mismatch, truncation or bad format.
    /// Corrupt data is never returned as data.
    #[error("corrupt object {object}: {detail}")]
    Corruption {
        /// The object's path in the bucket.
        object: String,
        /// What failed to verify.
        detail: String,
    },
    /// Another writer committed a manifest version this writer expected to write: this store
    /// is fenced off and takes no more writes.
    #[error("fenced: {0}")]
    Fenced(String),
    /// A violation of the epoch protocol (write to a sealed epoch, sync of an unsealed one, ...).
    #[error(transparent)]
    Epoch(StoreError),
    /// Options that cannot work.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// A background task ended unexpectedly.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// A corruption error for `object`.
    pub fn corruption(object: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Corruption {
            object: object.into(),
            detail: detail.into(),
        }
    }
}

/// Result of lsm-store operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for StoreError {
    fn from(e: Error) -> StoreError {
        match e {
            Error::Epoch(e) => e,
            Error::Fenced(msg) => StoreError::ReadOnly(format!("fenced: {msg}")),
            other => StoreError::Storage(Box::new(other)),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        Error::Epoch(e)
    }
}
