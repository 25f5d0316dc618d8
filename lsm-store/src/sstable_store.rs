//! Reads and writes SSTs on the object store through the caches.
//!
//! Read path of a block: memory cache → disk cache (when enabled) → ranged GET of exactly that
//! block. Opened SST tails (index, filter, properties) live in their own memory cache, so an
//! SST costs one GET to open and is then navigated without I/O.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytes::Bytes;
use foyer::{
    BlockEngineConfig, Cache, CacheBuilder, Code, DeviceBuilder, FsDeviceBuilder, HybridCache,
    HybridCacheBuilder,
};

use crate::object_store::{ObjectError, ObjectStore, ObjectUpload};
use crate::sst_writer::SstPart;
use crate::sstable::{Block, BuiltSst, SstTail};
use crate::version::{SstInfo, sst_path};
use crate::{Error, Result};

/// Sizes of the caches in front of the object store.
#[derive(Clone, Debug)]
pub struct CacheOptions {
    /// Bytes of data blocks kept in memory.
    pub block_cache_bytes: usize,
    /// Bytes of SST tails (index, filter) kept in memory.
    pub meta_cache_bytes: usize,
    /// A local directory for the disk tier of the block cache; `None` turns it off.
    pub disk_cache_dir: Option<PathBuf>,
    /// Bytes the disk tier may use.
    pub disk_cache_bytes: usize,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            block_cache_bytes: 256 << 20,
            meta_cache_bytes: 64 << 20,
            disk_cache_dir: None,
            disk_cache_bytes: 1 << 30,
        }
    }
}

/// An opened SST: its parsed tail.
#[derive(Debug)]
pub(crate) struct Sstable {
    pub(crate) id: u64,
    pub(crate) path: Arc<str>,
    pub(crate) tail: SstTail,
    tail_bytes: usize,
}

impl Sstable {
    /// Parses an SST's tail, fetched from `tail_offset` to the end of the object.
    pub(crate) fn from_tail(info: &SstInfo, tail: &[u8]) -> Result<Sstable> {
        let path: Arc<str> = Arc::from(sst_path(info.id));
        let expected = info.file_size.saturating_sub(info.tail_offset) as usize;
        if tail.len() != expected || info.tail_offset > info.file_size {
            return Err(Error::corruption(
                &*path,
                format!(
                    "object is truncated: tail has {} bytes, expected {expected}",
                    tail.len()
                ),
            ));
        }
        let tail_bytes = tail.len();
        let tail = SstTail::decode(tail, info.tail_offset, &path)?;
        let p = &tail.properties;
        if p.smallest_key != info.smallest_key || p.largest_key != info.largest_key {
            return Err(Error::corruption(
                &*path,
                "SST key range differs from the manifest",
            ));
        }
        Ok(Sstable {
            id: info.id,
            path,
            tail,
            tail_bytes,
        })
    }

    /// Byte range of block `idx` in the object.
    pub(crate) fn block_range(&self, idx: usize) -> std::ops::Range<u64> {
        let h = &self.tail.index[idx];
        h.offset..h.offset + u64::from(h.len)
    }

    pub(crate) fn block_count(&self) -> usize {
        self.tail.index.len()
    }
}

/// A block body as the caches hold it (checksum verified on the way in).
#[derive(Clone, Debug)]
pub(crate) struct CachedBlock(Block);

impl Code for CachedBlock {
    fn encode(&self, writer: &mut impl std::io::Write) -> foyer::Result<()> {
        let body = self.0.body();
        writer
            .write_all(&(body.len() as u32).to_le_bytes())
            .map_err(foyer::Error::io_error)?;
        writer.write_all(body).map_err(foyer::Error::io_error)
    }

    fn decode(reader: &mut impl std::io::Read) -> foyer::Result<Self> {
        let mut len = [0; 4];
        reader
            .read_exact(&mut len)
            .map_err(foyer::Error::io_error)?;
        let mut body = vec![0; u32::from_le_bytes(len) as usize];
        reader
            .read_exact(&mut body)
            .map_err(foyer::Error::io_error)?;
        let block = Block::from_verified(Bytes::from(body), "disk cache").map_err(|e| {
            foyer::Error::io_error(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })?;
        Ok(CachedBlock(block))
    }

    fn estimated_size(&self) -> usize {
        4 + self.0.body().len()
    }
}

/// Cache counters.
#[derive(Debug, Default)]
pub(crate) struct CacheCounters {
    pub(crate) block_requests: AtomicU64,
    pub(crate) block_memory_hits: AtomicU64,
    pub(crate) block_disk_hits: AtomicU64,
    pub(crate) meta_requests: AtomicU64,
    pub(crate) meta_hits: AtomicU64,
    pub(crate) bloom_checks: AtomicU64,
    pub(crate) bloom_negatives: AtomicU64,
}

/// SSTs on the object store, behind the caches.
pub(crate) struct SstStore {
    object_store: Arc<dyn ObjectStore>,
    meta_cache: Cache<u64, Arc<Sstable>>,
    block_cache: HybridCache<u128, CachedBlock>,
    pub(crate) counters: CacheCounters,
}

impl std::fmt::Debug for SstStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SstStore")
            .field("object_store", &self.object_store)
            .finish()
    }
}

fn block_key(sst: u64, idx: usize) -> u128 {
    (u128::from(sst) << 32) | idx as u128
}

impl SstStore {
    pub(crate) async fn new(
        object_store: Arc<dyn ObjectStore>,
        options: &CacheOptions,
    ) -> Result<SstStore> {
        let meta_cache = CacheBuilder::new(options.meta_cache_bytes.max(1))
            .with_weighter(|_: &u64, t: &Arc<Sstable>| t.tail_bytes + 64)
            .build();
        let builder = HybridCacheBuilder::new()
            .with_name("lsm-store-blocks")
            .memory(options.block_cache_bytes.max(1))
            .with_weighter(|_: &u128, b: &CachedBlock| b.0.size() + 32)
            .storage();
        let cache_err = |e: foyer::Error| Error::InvalidOptions(format!("block cache: {e}"));
        let block_cache = match &options.disk_cache_dir {
            Some(dir) => {
                let device = FsDeviceBuilder::new(dir)
                    .with_capacity(options.disk_cache_bytes)
                    .build()
                    .map_err(cache_err)?;
                builder
                    .with_engine_config(BlockEngineConfig::new(device).with_block_size(16 << 20))
                    .build()
                    .await
                    .map_err(cache_err)?
            }
            None => builder.build().await.map_err(cache_err)?,
        };
        Ok(SstStore {
            object_store,
            meta_cache,
            block_cache,
            counters: CacheCounters::default(),
        })
    }

    pub(crate) fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.object_store
    }

    /// Opens an SST (cached).
    pub(crate) async fn sstable(&self, info: &SstInfo) -> Result<Arc<Sstable>> {
        self.counters.meta_requests.fetch_add(1, Relaxed);
        if let Some(entry) = self.meta_cache.get(&info.id) {
            self.counters.meta_hits.fetch_add(1, Relaxed);
            return Ok(Arc::clone(entry.value()));
        }
        let path = sst_path(info.id);
        let tail = self
            .object_store
            .get_range(&path, info.tail_offset..info.file_size)
            .await
            .map_err(|e| missing_is_corruption(e, &path))?;
        let sst = Arc::new(Sstable::from_tail(info, &tail)?);
        self.meta_cache.insert(info.id, Arc::clone(&sst));
        Ok(sst)
    }

    /// Reads block `idx` of `sst` (cached).
    pub(crate) async fn block(&self, sst: &Sstable, idx: usize) -> Result<Block> {
        self.counters.block_requests.fetch_add(1, Relaxed);
        let key = block_key(sst.id, idx);
        if let Some(entry) = self.block_cache.memory().get(&key) {
            self.counters.block_memory_hits.fetch_add(1, Relaxed);
            return Ok(entry.value().0.clone());
        }
        if self.block_cache.is_hybrid()
            && let Ok(Some(entry)) = self.block_cache.get(&key).await
        {
            self.counters.block_disk_hits.fetch_add(1, Relaxed);
            return Ok(entry.value().0.clone());
        }
        let range = sst.block_range(idx);
        let expected = (range.end - range.start) as usize;
        let raw = self
            .object_store
            .get_range(&sst.path, range)
            .await
            .map_err(|e| missing_is_corruption(e, &sst.path))?;
        if raw.len() != expected {
            return Err(Error::corruption(
                &*sst.path,
                "object is truncated inside a data block",
            ));
        }
        let block = Block::decode(raw, &sst.path, sst.tail.format_version)?;
        self.block_cache.insert(key, CachedBlock(block.clone()));
        Ok(block)
    }

    /// Uploads the SSTs a build sends as `parts`, each streamed create-only to an id from
    /// `new_id` (which registers it as in flight before anything is written) while it is
    /// built. An id someone else took fails the upload with [`ObjectError::AlreadyExists`]
    /// (the caller may build again); a failed upload is aborted.
    pub(crate) async fn upload_parts(
        &self,
        parts: &mut tokio::sync::mpsc::Receiver<SstPart>,
        mut new_id: impl FnMut() -> u64,
    ) -> Result<Vec<SstInfo>> {
        let mut outputs = Vec::new();
        let mut current: Option<(u64, Box<dyn ObjectUpload>)> = None;
        while let Some(part) = parts.recv().await {
            let (id, upload) = match &mut current {
                Some(c) => c,
                None => {
                    let id = new_id();
                    let upload = self.object_store.upload(&sst_path(id)).await?;
                    current.insert((id, upload))
                }
            };
            let id = *id;
            let (bytes, end) = match part {
                SstPart::Data(bytes) => (bytes, None),
                SstPart::End(built) => (built.last.clone(), Some(built)),
            };
            if let Err(e) = upload.write(bytes).await {
                let (_, upload) = current.take().expect("started");
                let _ = upload.abort().await;
                return Err(e.into());
            }
            if let Some(built) = end {
                let (_, upload) = current.take().expect("started");
                upload.finish().await?;
                outputs.push(sst_info(id, &built));
            }
        }
        if let Some((_, upload)) = current {
            // The build stopped inside an SST (it failed): nothing of it becomes visible.
            let _ = upload.abort().await;
        }
        Ok(outputs)
    }

    /// Drops cached state of SSTs that are gone.
    pub(crate) fn forget(&self, id: u64) {
        self.meta_cache.remove(&id);
    }

    /// Flushes and closes the disk tier.
    pub(crate) async fn close(&self) {
        let _ = self.block_cache.close().await;
    }
}

/// What the manifest records of SST `id`, built as `built`.
fn sst_info(id: u64, built: &BuiltSst) -> SstInfo {
    let p = &built.properties;
    SstInfo {
        id,
        file_size: built.file_size,
        tail_offset: built.tail_offset,
        smallest_key: p.smallest_key.clone(),
        largest_key: p.largest_key.clone(),
        min_epoch: p.min_epoch,
        max_epoch: p.max_epoch,
        key_count: p.key_count,
        tombstone_count: p.tombstone_count,
        table_ids: p.table_ids.clone(),
    }
}

/// A live SST whose object is missing is data loss, reported as corruption of that object.
fn missing_is_corruption(e: ObjectError, path: &str) -> Error {
    match e {
        ObjectError::NotFound { .. } => {
            Error::corruption(path, "object referenced by the manifest is missing")
        }
        other => other.into(),
    }
}
