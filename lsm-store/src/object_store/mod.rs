//! Object storage: one trait, several backends, and layers that wrap any backend.
//!
//! The engine only ever sees `Arc<dyn ObjectStore>`; whether retries, metrics or fault
//! injection sit in front of the backend is decided where the store is built.

mod fault;
mod instrumented;
mod local;
mod memory;
mod retry;
mod s3;

use std::fmt::Debug;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

pub use fault::{FaultInjectingObjectStore, FaultPlan};
pub use instrumented::{InstrumentedObjectStore, ObjectStoreStats, ObjectStoreStatsSnapshot};
pub use local::LocalObjectStore;
pub use memory::MemoryObjectStore;
pub use retry::{RetryOptions, RetryingObjectStore};
pub use s3::{S3ObjectStore, S3Options};

/// What an object store reports about one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Path relative to the store's root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time.
    pub last_modified: SystemTime,
}

/// Why an object store request failed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The object does not exist.
    #[error("object {path} not found")]
    NotFound {
        /// The object's path.
        path: String,
    },
    /// A create-only put found the object already there.
    #[error("object {path} already exists")]
    AlreadyExists {
        /// The object's path.
        path: String,
    },
    /// A failure that may go away when retried (network, throttling, server error).
    #[error("{op} {path}: transient failure: {message}")]
    Transient {
        /// The request kind.
        op: &'static str,
        /// The object's path.
        path: String,
        /// What the backend said.
        message: String,
    },
    /// A failure that retrying will not fix (permissions, bad request, local I/O error).
    #[error("{op} {path}: {message}")]
    Permanent {
        /// The request kind.
        op: &'static str,
        /// The object's path.
        path: String,
        /// What the backend said.
        message: String,
    },
}

impl ObjectError {
    /// Whether retrying the request may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ObjectError::Transient { .. })
    }

    /// Classifies a local I/O error.
    pub(crate) fn from_io(op: &'static str, path: &str, e: std::io::Error) -> ObjectError {
        use std::io::ErrorKind::*;
        let path = path.to_string();
        match e.kind() {
            NotFound => ObjectError::NotFound { path },
            AlreadyExists => ObjectError::AlreadyExists { path },
            Interrupted | TimedOut | WouldBlock => ObjectError::Transient {
                op,
                path,
                message: e.to_string(),
            },
            _ => ObjectError::Permanent {
                op,
                path,
                message: e.to_string(),
            },
        }
    }
}

/// Result of object store requests.
pub type ObjectResult<T> = Result<T, ObjectError>;

/// A flat namespace of immutable objects addressed by `/`-separated paths.
#[async_trait]
pub trait ObjectStore: Send + Sync + Debug + 'static {
    /// Reads a whole object.
    async fn get(&self, path: &str) -> ObjectResult<Bytes>;

    /// Reads a byte range of an object. A range past the end returns only the bytes that
    /// exist, as S3 does; callers check lengths.
    async fn get_range(&self, path: &str, range: Range<u64>) -> ObjectResult<Bytes>;

    /// Writes an object, replacing any object at the same path. Atomic: readers see the old
    /// object or the whole new one.
    async fn put(&self, path: &str, data: Bytes) -> ObjectResult<()>;

    /// Writes an object only if none exists at the path (create-only); otherwise fails with
    /// [`ObjectError::AlreadyExists`]. Exactly one of several concurrent writers succeeds.
    async fn put_if_absent(&self, path: &str, data: Bytes) -> ObjectResult<()>;

    /// Starts a streaming, create-only write of a large object (an SST, written once under a
    /// fresh name): it becomes visible at `finish`, which fails with
    /// [`ObjectError::AlreadyExists`] if an object exists at the path by then.
    async fn upload(&self, path: &str) -> ObjectResult<Box<dyn ObjectUpload>>;

    /// Deletes an object; deleting a missing object succeeds.
    async fn delete(&self, path: &str) -> ObjectResult<()>;

    /// Lists every object whose path starts with `prefix`, in path order.
    async fn list(&self, prefix: &str) -> ObjectResult<Vec<ObjectMeta>>;

    /// Size and modification time of one object.
    async fn head(&self, path: &str) -> ObjectResult<ObjectMeta>;
}

/// A streaming write started by [`ObjectStore::upload`].
#[async_trait]
pub trait ObjectUpload: Send {
    /// Appends bytes to the object.
    async fn write(&mut self, data: Bytes) -> ObjectResult<()>;
    /// Completes the write; the object becomes visible atomically.
    async fn finish(self: Box<Self>) -> ObjectResult<()>;
    /// Abandons the write; nothing becomes visible.
    async fn abort(self: Box<Self>) -> ObjectResult<()>;
}

/// Builds the object store a URL names: `file://DIR`, `memory://` or `s3://bucket/prefix`,
/// wrapped in retries. ([`crate::LsmStore`] adds the metrics layer itself.)
pub async fn object_store_from_url(url: &str) -> crate::Result<Arc<dyn ObjectStore>> {
    let backend: Arc<dyn ObjectStore> = if let Some(dir) = url.strip_prefix("file://") {
        Arc::new(LocalObjectStore::open(dir)?)
    } else if url == "memory://" || url.starts_with("memory://") {
        Arc::new(MemoryObjectStore::new())
    } else if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(crate::Error::InvalidOptions(format!("no bucket in {url}")));
        }
        Arc::new(S3ObjectStore::from_env(bucket, prefix).await)
    } else {
        return Err(crate::Error::InvalidOptions(format!(
            "unsupported object store URL {url:?}: expected file://DIR, memory:// or s3://bucket/prefix"
        )));
    };
    Ok(Arc::new(RetryingObjectStore::new(
        backend,
        RetryOptions::default(),
    )))
}

/// Rejects paths that could escape a store's root or name nothing.
pub(crate) fn validate_path(op: &'static str, path: &str) -> ObjectResult<()> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(ObjectError::Permanent {
            op,
            path: path.to_string(),
            message: "invalid object path".into(),
        });
    }
    Ok(())
}
