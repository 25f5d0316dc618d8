//! A layer that retries transient failures with exponential backoff and bounds each attempt
//! with a timeout.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{ObjectError, ObjectMeta, ObjectResult, ObjectStore, ObjectUpload};

/// How [`RetryingObjectStore`] retries.
#[derive(Clone, Debug)]
pub struct RetryOptions {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Backoff before the first retry; doubles with each retry.
    pub initial_backoff: Duration,
    /// Upper bound of one backoff.
    pub max_backoff: Duration,
    /// Upper bound of one attempt; a slower attempt counts as a transient failure.
    pub attempt_timeout: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(60),
        }
    }
}

/// Retries transient failures of the wrapped store.
#[derive(Debug)]
pub struct RetryingObjectStore {
    inner: Arc<dyn ObjectStore>,
    options: RetryOptions,
}

impl RetryingObjectStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>, options: RetryOptions) -> Self {
        RetryingObjectStore { inner, options }
    }

    async fn retry<T, F, Fut>(
        &self,
        op: &'static str,
        path: &str,
        mut attempt: F,
    ) -> ObjectResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ObjectResult<T>>,
    {
        let mut backoff = self.options.initial_backoff;
        let mut tries = 0;
        loop {
            tries += 1;
            let result = match tokio::time::timeout(self.options.attempt_timeout, attempt()).await {
                Ok(r) => r,
                Err(_) => Err(ObjectError::Transient {
                    op,
                    path: path.to_string(),
                    message: format!("attempt timed out after {:?}", self.options.attempt_timeout),
                }),
            };
            match result {
                Err(e) if e.is_retryable() && tries < self.options.max_attempts => {
                    tracing::debug!(op, path, tries, error = %e, "retrying object store request");
                    let jitter = rand::random::<f64>() * 0.5 + 0.75;
                    tokio::time::sleep(backoff.mul_f64(jitter)).await;
                    backoff = (backoff * 2).min(self.options.max_backoff);
                }
                other => return other,
            }
        }
    }
}

#[async_trait]
impl ObjectStore for RetryingObjectStore {
    async fn get(&self, path: &str) -> ObjectResult<Bytes> {
        self.retry("get", path, || self.inner.get(path)).await
    }

    async fn get_range(&self, path: &str, range: Range<u64>) -> ObjectResult<Bytes> {
        self.retry("get", path, || self.inner.get_range(path, range.clone()))
            .await
    }

    async fn put(&self, path: &str, data: Bytes) -> ObjectResult<()> {
        self.retry("put", path, || self.inner.put(path, data.clone()))
            .await
    }

    async fn put_if_absent(&self, path: &str, data: Bytes) -> ObjectResult<()> {
        let mut attempts = 0;
        let result = self
            .retry("put", path, || {
                attempts += 1;
                self.inner.put_if_absent(path, data.clone())
            })
            .await;
        match result {
            // An earlier attempt may have succeeded with its reply lost: then the object that
            // "already exists" is ours.
            Err(ObjectError::AlreadyExists { .. }) if attempts > 1 => {
                match self.retry("get", path, || self.inner.get(path)).await {
                    Ok(existing) if existing == data => Ok(()),
                    _ => result,
                }
            }
            other => other,
        }
    }

    async fn upload(&self, path: &str) -> ObjectResult<Box<dyn ObjectUpload>> {
        self.retry("upload", path, || self.inner.upload(path)).await
    }

    async fn delete(&self, path: &str) -> ObjectResult<()> {
        self.retry("delete", path, || self.inner.delete(path)).await
    }

    async fn list(&self, prefix: &str) -> ObjectResult<Vec<ObjectMeta>> {
        self.retry("list", prefix, || self.inner.list(prefix)).await
    }

    async fn head(&self, path: &str) -> ObjectResult<ObjectMeta> {
        self.retry("head", path, || self.inner.head(path)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object_store::{FaultInjectingObjectStore, FaultPlan, MemoryObjectStore};

    fn fast() -> RetryOptions {
        RetryOptions {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            attempt_timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_then_surfaced() {
        let faulty = Arc::new(FaultInjectingObjectStore::new(Arc::new(
            MemoryObjectStore::new(),
        )));
        let store = RetryingObjectStore::new(faulty.clone(), fast());
        faulty.set_plan(FaultPlan {
            transient_failures: 3,
            ..FaultPlan::default()
        });
        store.put("x", Bytes::from_static(b"1")).await.unwrap();
        faulty.set_plan(FaultPlan {
            transient_failures: 10,
            ..FaultPlan::default()
        });
        let err = store.get("x").await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
    }

    #[tokio::test]
    async fn lost_reply_of_create_only_put_is_recognised() {
        let faulty = Arc::new(FaultInjectingObjectStore::new(Arc::new(
            MemoryObjectStore::new(),
        )));
        let store = RetryingObjectStore::new(faulty.clone(), fast());
        faulty.set_plan(FaultPlan {
            lose_replies: 1,
            ..FaultPlan::default()
        });
        store
            .put_if_absent("m", Bytes::from_static(b"mine"))
            .await
            .unwrap();
        let other = store
            .put_if_absent("m", Bytes::from_static(b"theirs"))
            .await;
        assert!(matches!(other, Err(ObjectError::AlreadyExists { .. })));
    }
}
