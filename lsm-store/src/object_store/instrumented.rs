//! A layer that counts requests, bytes, errors and latency.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;

use super::{ObjectMeta, ObjectResult, ObjectStore, ObjectUpload};

/// Live counters of an [`InstrumentedObjectStore`].
#[derive(Debug, Default)]
pub struct ObjectStoreStats {
    gets: AtomicU64,
    puts: AtomicU64,
    deletes: AtomicU64,
    lists: AtomicU64,
    heads: AtomicU64,
    errors: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    latency_us: AtomicU64,
}

/// A point-in-time copy of [`ObjectStoreStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ObjectStoreStatsSnapshot {
    /// GET requests (whole and ranged).
    pub gets: u64,
    /// PUT requests (plain, create-only and finished uploads).
    pub puts: u64,
    /// DELETE requests.
    pub deletes: u64,
    /// LIST requests.
    pub lists: u64,
    /// HEAD requests.
    pub heads: u64,
    /// Requests that failed (after retries).
    pub errors: u64,
    /// Bytes received.
    pub bytes_read: u64,
    /// Bytes sent.
    pub bytes_written: u64,
    /// Total time spent in requests, in microseconds.
    pub latency_us: u64,
}

impl ObjectStoreStatsSnapshot {
    /// Every request counted.
    pub fn requests(&self) -> u64 {
        self.gets + self.puts + self.deletes + self.lists + self.heads
    }
}

impl ObjectStoreStats {
    /// The current counts.
    pub fn snapshot(&self) -> ObjectStoreStatsSnapshot {
        ObjectStoreStatsSnapshot {
            gets: self.gets.load(Relaxed),
            puts: self.puts.load(Relaxed),
            deletes: self.deletes.load(Relaxed),
            lists: self.lists.load(Relaxed),
            heads: self.heads.load(Relaxed),
            errors: self.errors.load(Relaxed),
            bytes_read: self.bytes_read.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            latency_us: self.latency_us.load(Relaxed),
        }
    }

    fn record<T>(&self, counter: &AtomicU64, start: Instant, result: &ObjectResult<T>) {
        counter.fetch_add(1, Relaxed);
        self.latency_us
            .fetch_add(start.elapsed().as_micros() as u64, Relaxed);
        if result.is_err() {
            self.errors.fetch_add(1, Relaxed);
        }
    }
}

/// Counts what passes through to the wrapped store.
#[derive(Debug)]
pub struct InstrumentedObjectStore {
    inner: Arc<dyn ObjectStore>,
    stats: Arc<ObjectStoreStats>,
}

impl InstrumentedObjectStore {
    /// Wraps `inner` with fresh counters.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        InstrumentedObjectStore {
            inner,
            stats: Arc::default(),
        }
    }

    /// The counters, shared.
    pub fn stats(&self) -> Arc<ObjectStoreStats> {
        Arc::clone(&self.stats)
    }
}

#[async_trait]
impl ObjectStore for InstrumentedObjectStore {
    async fn get(&self, path: &str) -> ObjectResult<Bytes> {
        let start = Instant::now();
        let r = self.inner.get(path).await;
        self.stats.record(&self.stats.gets, start, &r);
        if let Ok(b) = &r {
            self.stats.bytes_read.fetch_add(b.len() as u64, Relaxed);
        }
        r
    }

    async fn get_range(&self, path: &str, range: Range<u64>) -> ObjectResult<Bytes> {
        let start = Instant::now();
        let r = self.inner.get_range(path, range).await;
        self.stats.record(&self.stats.gets, start, &r);
        if let Ok(b) = &r {
            self.stats.bytes_read.fetch_add(b.len() as u64, Relaxed);
        }
        r
    }

    async fn put(&self, path: &str, data: Bytes) -> ObjectResult<()> {
        let (start, len) = (Instant::now(), data.len() as u64);
        let r = self.inner.put(path, data).await;
        self.stats.record(&self.stats.puts, start, &r);
        self.stats.bytes_written.fetch_add(len, Relaxed);
        r
    }

    async fn put_if_absent(&self, path: &str, data: Bytes) -> ObjectResult<()> {
        let (start, len) = (Instant::now(), data.len() as u64);
        let r = self.inner.put_if_absent(path, data).await;
        self.stats.record(&self.stats.puts, start, &r);
        self.stats.bytes_written.fetch_add(len, Relaxed);
        r
    }

    async fn upload(&self, path: &str) -> ObjectResult<Box<dyn ObjectUpload>> {
        let inner = self.inner.upload(path).await?;
        Ok(Box::new(InstrumentedUpload {
            inner,
            stats: Arc::clone(&self.stats),
        }))
    }

    async fn delete(&self, path: &str) -> ObjectResult<()> {
        let start = Instant::now();
        let r = self.inner.delete(path).await;
        self.stats.record(&self.stats.deletes, start, &r);
        r
    }

    async fn list(&self, prefix: &str) -> ObjectResult<Vec<ObjectMeta>> {
        let start = Instant::now();
        let r = self.inner.list(prefix).await;
        self.stats.record(&self.stats.lists, start, &r);
        r
    }

    async fn head(&self, path: &str) -> ObjectResult<ObjectMeta> {
        let start = Instant::now();
        let r = self.inner.head(path).await;
        self.stats.record(&self.stats.heads, start, &r);
        r
    }
}

struct InstrumentedUpload {
    inner: Box<dyn ObjectUpload>,
    stats: Arc<ObjectStoreStats>,
}

#[async_trait]
impl ObjectUpload for InstrumentedUpload {
    async fn write(&mut self, data: Bytes) -> ObjectResult<()> {
        self.stats
            .bytes_written
            .fetch_add(data.len() as u64, Relaxed);
        self.inner.write(data).await
    }

    async fn finish(self: Box<Self>) -> ObjectResult<()> {
        let start = Instant::now();
        let stats = Arc::clone(&self.stats);
        let r = self.inner.finish().await;
        stats.record(&stats.puts, start, &r);
        r
    }

    async fn abort(self: Box<Self>) -> ObjectResult<()> {
        self.inner.abort().await
    }
}
