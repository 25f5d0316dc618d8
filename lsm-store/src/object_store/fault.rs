//! A layer that injects failures, for crash and retry tests.
//!
//! A "crash" is simulated by a budget of mutations: after that many puts and deletes have
//! gone through, every request fails, as if the process had died at that point. The objects
//! written so far stay in the wrapped store, so a test can reopen on it and check recovery.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use super::{ObjectError, ObjectMeta, ObjectResult, ObjectStore, ObjectUpload};

/// Which failures to inject.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    /// After this many successful mutations, every request fails permanently ("crashed").
    pub crash_after_mutations: Option<u64>,
    /// The next this many requests fail with a transient error.
    pub transient_failures: u32,
    /// The next this many mutations take effect but report a transient error (lost reply).
    pub lose_replies: u32,
}

#[derive(Debug, Default)]
struct FaultState {
    plan: FaultPlan,
    mutations: u64,
    crashed: bool,
}

/// Wraps a store and fails requests according to a [`FaultPlan`].
#[derive(Debug)]
pub struct FaultInjectingObjectStore {
    inner: Arc<dyn ObjectStore>,
    state: Mutex<FaultState>,
}

impl FaultInjectingObjectStore {
    /// Wraps `inner` with no faults planned.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        FaultInjectingObjectStore {
            inner,
            state: Mutex::default(),
        }
    }

    /// Replaces the plan and resets the mutation count.
    pub fn set_plan(&self, plan: FaultPlan) {
        *self.state.lock() = FaultState {
            plan,
            mutations: 0,
            crashed: false,
        };
    }

    /// Whether the simulated crash has happened: a request was refused because of it.
    pub fn crashed(&self) -> bool {
        self.state.lock().crashed
    }

    fn before(&self, op: &'static str, path: &str, mutation: bool) -> ObjectResult<()> {
        let mut s = self.state.lock();
        if s.plan
            .crash_after_mutations
            .is_some_and(|n| s.mutations >= n)
        {
            s.crashed = true;
            return Err(ObjectError::Permanent {
                op,
                path: path.to_string(),
                message: "injected crash".into(),
            });
        }
        if s.plan.transient_failures > 0 {
            s.plan.transient_failures -= 1;
            return Err(ObjectError::Transient {
                op,
                path: path.to_string(),
                message: "injected transient failure".into(),
            });
        }
        if mutation {
            s.mutations += 1;
        }
        Ok(())
    }

    fn after<T>(&self, op: &'static str, path: &str, r: ObjectResult<T>) -> ObjectResult<T> {
        let mut s = self.state.lock();
        if r.is_ok() && s.plan.lose_replies > 0 {
            s.plan.lose_replies -= 1;
            return Err(ObjectError::Transient {
                op,
                path: path.to_string(),
                message: "injected lost reply".into(),
            });
        }
        r
    }
}

#[async_trait]
impl ObjectStore for FaultInjectingObjectStore {
    async fn get(&self, path: &str) -> ObjectResult<Bytes> {
        self.before("get", path, false)?;
        self.inner.get(path).await
    }

    async fn get_range(&self, path: &str, range: Range<u64>) -> ObjectResult<Bytes> {
        self.before("get", path, false)?;
        self.inner.get_range(path, range).await
    }

    async fn put(&self, path: &str, data: Bytes) -> ObjectResult<()> {
        self.before("put", path, true)?;
        let r = self.inner.put(path, data).await;
        self.after("put", path, r)
    }

    async fn put_if_absent(&self, path: &str, data: Bytes) -> ObjectResult<()> {
        self.before("put", path, true)?;
        let r = self.inner.put_if_absent(path, data).await;
        self.after("put", path, r)
    }

    async fn upload(&self, path: &str) -> ObjectResult<Box<dyn ObjectUpload>> {
        self.before("upload", path, true)?;
        self.inner.upload(path).await
    }

    async fn delete(&self, path: &str) -> ObjectResult<()> {
        self.before("delete", path, true)?;
        let r = self.inner.delete(path).await;
        self.after("delete", path, r)
    }

    async fn list(&self, prefix: &str) -> ObjectResult<Vec<ObjectMeta>> {
        self.before("list", prefix, false)?;
        self.inner.list(prefix).await
    }

    async fn head(&self, path: &str) -> ObjectResult<ObjectMeta> {
        self.before("head", path, false)?;
        self.inner.head(path).await
    }
}
