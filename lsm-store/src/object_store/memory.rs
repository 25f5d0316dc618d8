//! An in-memory object store, for tests and ephemeral nodes.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use super::{ObjectError, ObjectMeta, ObjectResult, ObjectStore, ObjectUpload, validate_path};

/// Objects kept in a map in memory; clones share the same objects.
#[derive(Clone, Debug, Default)]
pub struct MemoryObjectStore {
    objects: Arc<Mutex<BTreeMap<String, (Bytes, SystemTime)>>>,
}

impl MemoryObjectStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces an object's bytes without any check; tests use it to simulate corruption.
    pub fn overwrite_raw(&self, path: &str, data: Bytes) {
        self.objects
            .lock()
            .insert(path.to_string(), (data, SystemTime::now()));
    }
}

fn slice_range(data: &Bytes, range: Range<u64>) -> Bytes {
    let len = data.len() as u64;
    let start = range.start.min(len) as usize;
    let end = range.end.min(len).max(range.start.min(len)) as usize;
    data.slice(start..end)
}

#[async_trait]
impl ObjectStore for MemoryObjectStore {
    async fn get(&self, path: &str) -> ObjectResult<Bytes> {
        validate_path("get", path)?;
        let objects = self.objects.lock();
        let (data, _) = objects.get(path).ok_or_else(|| ObjectError::NotFound {
            path: path.to_string(),
        })?;
        Ok(data.clone())
    }

    async fn get_range(&self, path: &str, range: Range<u64>) -> ObjectResult<Bytes> {
        Ok(slice_range(&self.get(path).await?, range))
    }

    async fn put(&self, path: &str, data: Bytes) -> ObjectResult<()> {
        validate_path("put", path)?;
        self.objects
            .lock()
            .insert(path.to_string(), (data, SystemTime::now()));
        Ok(())
    }

    async fn put_if_absent(&self, path: &str, data: Bytes) -> ObjectResult<()> {
        validate_path("put", path)?;
        let mut objects = self.objects.lock();
        if objects.contains_key(path) {
            return Err(ObjectError::AlreadyExists {
                path: path.to_string(),
            });
        }
        objects.insert(path.to_string(), (data, SystemTime::now()));
        Ok(())
    }

    async fn upload(&self, path: &str) -> ObjectResult<Box<dyn ObjectUpload>> {
        validate_path("upload", path)?;
        Ok(Box::new(MemoryUpload {
            store: self.clone(),
            path: path.to_string(),
            buf: Vec::new(),
        }))
    }

    async fn delete(&self, path: &str) -> ObjectResult<()> {
        validate_path("delete", path)?;
        self.objects.lock().remove(path);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> ObjectResult<Vec<ObjectMeta>> {
        let objects = self.objects.lock();
        Ok(objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (v, t))| ObjectMeta {
                path: k.clone(),
                size: v.len() as u64,
                last_modified: *t,
            })
            .collect())
    }

    async fn head(&self, path: &str) -> ObjectResult<ObjectMeta> {
        validate_path("head", path)?;
        let objects = self.objects.lock();
        let (data, t) = objects.get(path).ok_or_else(|| ObjectError::NotFound {
            path: path.to_string(),
        })?;
        Ok(ObjectMeta {
            path: path.to_string(),
            size: data.len() as u64,
            last_modified: *t,
        })
    }
}

struct MemoryUpload {
    store: MemoryObjectStore,
    path: String,
    buf: Vec<u8>,
}

#[async_trait]
impl ObjectUpload for MemoryUpload {
    async fn write(&mut self, data: Bytes) -> ObjectResult<()> {
        self.buf.extend_from_slice(&data);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> ObjectResult<()> {
        self.store
            .put_if_absent(&self.path, Bytes::from(self.buf))
            .await
    }

    async fn abort(self: Box<Self>) -> ObjectResult<()> {
        Ok(())
    }
}
