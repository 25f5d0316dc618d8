//! The store handle: write path, read path, and the background compactor and collector.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use epoch_mvcc::{
    Direction, Epoch, EpochManager, FullKeyRef, KeyRange, MvccIter, PinnedSnapshot, StateStore,
    StateStoreIter, StoreResult, Value, WriteBatch, physical_now_ms, prefix_successor, table_id_of,
};
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::compaction::{self, CompactionOptions};
use crate::iterator::{BatchCursor, ConcatCursor, MergeCursor, SourceCursor, SstCursor, SstSource};
use crate::key_filter::key_hash;
use crate::manifest::ManifestStore;
use crate::memtable::{ImmBatch, Memtable, entry_size, flush_bounds};
use crate::object_store::{InstrumentedObjectStore, ObjectError, ObjectStore, ObjectStoreStats};
use crate::sst_writer::{SplitPolicy, write_ssts};
use crate::sstable::SstOptions;
use crate::sstable_store::{CacheOptions, SstStore};
use crate::stats::{CacheStats, LevelStats, LsmStats};
use crate::version::{MAX_LEVEL, SstInfo, Version, sst_id_from_path};
use crate::{Error, Result};

/// When obsolete objects are deleted.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Objects younger than this are never deleted, whoever wrote them: an upload of another
    /// process or an in-flight commit may still need them.
    pub grace_period: Duration,
    /// How often the background collector runs.
    pub interval: Duration,
    /// Manifest versions kept behind the newest.
    pub keep_manifests: u64,
    /// Run the collector in the background of the store.
    pub background: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace_period: Duration::from_secs(600),
            interval: Duration::from_secs(60),
            keep_manifests: 8,
            background: true,
        }
    }
}

/// Everything an [`LsmStore`] can be configured with.
#[derive(Clone, Debug)]
pub struct LsmStoreOptions {
    /// SST layout.
    pub sst: SstOptions,
    /// Cache sizes and the optional disk cache.
    pub cache: CacheOptions,
    /// Memory for unsynced writes, including those writers hold before ingesting them
    /// ([`StateStore::note_held_writes`]); writers wait (backpressure) while sealed data over
    /// this budget waits for a sync, and unsealed epochs spill to SSTs.
    pub write_buffer_bytes: usize,
    /// Compaction settings.
    pub compaction: CompactionOptions,
    /// Garbage collection settings.
    pub gc: GcOptions,
    /// Prefix length (bytes of the user key) per table id for the prefix bloom filter.
    pub table_prefix_lens: BTreeMap<u32, usize>,
}

impl Default for LsmStoreOptions {
    fn default() -> Self {
        LsmStoreOptions {
            sst: SstOptions::default(),
            cache: CacheOptions::default(),
            write_buffer_bytes: 256 << 20,
            compaction: CompactionOptions::default(),
            gc: GcOptions::default(),
            table_prefix_lens: BTreeMap::new(),
        }
    }
}

/// What garbage collection removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// SST objects deleted.
    pub deleted_ssts: usize,
    /// Manifest objects deleted.
    pub deleted_manifests: usize,
}

/// What readers see: unsealed memtables, spills of unsealed epochs, sealed batches awaiting
/// upload, and the version.
struct ReadState {
    memtables: BTreeMap<Epoch, Arc<Memtable>>,
    /// Writes of epochs not committed yet that left the write buffer early to free memory
    /// (see [`LsmStore::spill`]), oldest first within an epoch; they join the version when
    /// their epoch commits.
    spills: BTreeMap<Epoch, Vec<Spill>>,
    /// Ascending epoch.
    sealed: Vec<Arc<ImmBatch>>,
    version: Arc<Version>,
    /// A follower's earlier versions by committed epoch, kept while a snapshot at their epoch
    /// is pinned: the writer compacts without knowing a follower's readers, so a newer
    /// version may no longer hold what an older epoch saw.
    followed: BTreeMap<u64, Arc<Version>>,
}

/// One spill: a memtable's writes taken out of the write buffer before their epoch was
/// sealed.
enum Spill {
    /// Not uploaded yet (or its upload failed and is retried by the next spill or sync).
    Pending(Arc<ImmBatch>),
    /// Uploaded SSTs, one L0 sub-level once committed; their ids stay in flight till then.
    Uploaded(Arc<Vec<SstInfo>>),
}

/// One L0 sub-level a commit adds.
enum CommitPart {
    /// A spill's uploaded SSTs.
    Spilled(Arc<Vec<SstInfo>>),
    /// Sealed batches, flushed together at the commit.
    Flush(Vec<Arc<ImmBatch>>),
}

/// One source of a read besides the version's levels.
enum Layer {
    Memtable(Arc<Memtable>),
    Batch(Arc<ImmBatch>),
    /// Non-overlapping SSTs in key order.
    Ssts(Arc<Vec<SstInfo>>),
}

/// The layers a read at one epoch consults: unsealed, spilled and sealed writes, newest
/// first, then the version.
struct ReadSnapshot {
    layers: Vec<Layer>,
    version: Arc<Version>,
}

#[derive(Default)]
struct Counters {
    ingested_bytes: AtomicU64,
    flushed_bytes: AtomicU64,
    compaction_read_bytes: AtomicU64,
    compaction_written_bytes: AtomicU64,
    compactions: AtomicU64,
    trivial_moves: AtomicU64,
    spills: AtomicU64,
}

struct StoreInner {
    options: LsmStoreOptions,
    object_store: Arc<dyn ObjectStore>,
    object_stats: Arc<ObjectStoreStats>,
    sst_store: Arc<SstStore>,
    manifest: ManifestStore,
    state: RwLock<ReadState>,
    epochs: Arc<EpochManager>,
    /// Serializes manifest commits (flushes and compactions).
    commit_lock: tokio::sync::Mutex<()>,
    /// Held while spills upload: one spill at a time, and a sync waits for the spills of
    /// the epochs it commits.
    spill_lock: tokio::sync::Mutex<()>,
    buffer_used: AtomicUsize,
    /// Bytes of unsealed writes writers hold and have not ingested yet.
    held_writes: AtomicIsize,
    buffer_freed: Notify,
    prefix_lens: RwLock<BTreeMap<u32, usize>>,
    fenced: Mutex<Option<String>>,
    /// Opened with [`LsmStore::open_follower`]: reads what a writer commits, never writes.
    follower: bool,
    /// When a follower last listed the manifest (it otherwise only probes the next id).
    last_manifest_list: Mutex<Instant>,
    /// SSTs no version references any more, with when this process first saw that.
    unreferenced_since: Mutex<BTreeMap<u64, Instant>>,
    counters: Counters,
    /// Every version installed; the ones still alive (held by readers) keep their SSTs.
    installed_versions: Mutex<Vec<Weak<Version>>>,
    /// SSTs uploaded but not yet in a committed version.
    in_flight: Mutex<HashSet<u64>>,
    next_task_id: AtomicU64,
    /// The tasks published for remote compactors, with when.
    remote_tasks: Mutex<Vec<(compaction::CompactionTask, Instant)>>,
    wake_compactor: Arc<Notify>,
    shutdown: Arc<AtomicBool>,
    shutdown_signal: Arc<Notify>,
    background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// A cloud-native LSM tree on an object store; implements [`StateStore`].
///
/// Cloning is cheap and shares the store. Opening a store takes ownership of the bucket:
/// a writer that still writes there afterwards is fenced off.
#[derive(Clone)]
pub struct LsmStore {
    inner: Arc<StoreInner>,
}

impl std::fmt::Debug for LsmStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LsmStore")
            .field("object_store", &self.inner.object_store)
            .finish()
    }
}

/// How often a follower lists the manifest to catch up past versions already collected.
const FOLLOWER_LIST_INTERVAL: Duration = Duration::from_secs(10);

/// A fresh SST id: milliseconds in the high bits, randomness below; uploads are create-only,
/// so the rare collision is detected and retried with another id.
pub(crate) fn new_sst_id() -> u64 {
    (physical_now_ms() << 22) | u64::from(rand::random::<u32>() & 0x3f_ffff)
}

impl LsmStore {
    /// Opens the store on `object_store`: loads the newest manifest version (or starts empty)
    /// and commits the next version to take ownership, fencing any older writer.
    pub async fn open(
        object_store: Arc<dyn ObjectStore>,
        options: LsmStoreOptions,
    ) -> Result<Self> {
        if options.sst.block_size == 0 || options.sst.target_file_size == 0 {
            return Err(Error::InvalidOptions(
                "block and file sizes must be positive".into(),
            ));
        }
        let instrumented = InstrumentedObjectStore::new(object_store);
        let object_stats = instrumented.stats();
        let object_store: Arc<dyn ObjectStore> = Arc::new(instrumented);
        let manifest = ManifestStore::new(Arc::clone(&object_store));
        let latest = manifest.load_latest().await?.unwrap_or_else(Version::empty);
        let owned = Version {
            id: latest.id + 1,
            ..latest
        };
        manifest.commit(&owned).await?;
        let store =
            Self::with_version(object_store, object_stats, manifest, owned, options, false).await?;
        if store.inner.options.compaction.remote {
            // Tasks of an earlier process: never applied; their outputs become garbage.
            compaction::remote::retire_all(store.inner.object_store.as_ref()).await?;
        }
        store.spawn_background();
        Ok(store)
    }

    /// Opens a read-only follower of the writer that owns `object_store`: it serves reads at
    /// the newest version it has seen and moves to newer ones on [`LsmStore::refresh`]. It
    /// never writes to the bucket (no commits, compaction or garbage collection), so any
    /// number of followers can run beside one writer.
    pub async fn open_follower(
        object_store: Arc<dyn ObjectStore>,
        options: LsmStoreOptions,
    ) -> Result<Self> {
        if options.sst.block_size == 0 || options.sst.target_file_size == 0 {
            return Err(Error::InvalidOptions(
                "block and file sizes must be positive".into(),
            ));
        }
        let instrumented = InstrumentedObjectStore::new(object_store);
        let object_stats = instrumented.stats();
        let object_store: Arc<dyn ObjectStore> = Arc::new(instrumented);
        let manifest = ManifestStore::new(Arc::clone(&object_store));
        let latest = manifest.load_latest().await?.unwrap_or_else(Version::empty);
        Self::with_version(object_store, object_stats, manifest, latest, options, true).await
    }

    async fn with_version(
        object_store: Arc<dyn ObjectStore>,
        object_stats: Arc<ObjectStoreStats>,
        manifest: ManifestStore,
        version: Version,
        options: LsmStoreOptions,
        follower: bool,
    ) -> Result<Self> {
        let sst_store = Arc::new(SstStore::new(Arc::clone(&object_store), &options.cache).await?);
        let version = Arc::new(version);
        let inner = Arc::new(StoreInner {
            epochs: EpochManager::new(version.committed_epoch()),
            prefix_lens: RwLock::new(options.table_prefix_lens.clone()),
            installed_versions: Mutex::new(vec![Arc::downgrade(&version)]),
            state: RwLock::new(ReadState {
                memtables: BTreeMap::new(),
                spills: BTreeMap::new(),
                sealed: Vec::new(),
                version,
                followed: BTreeMap::new(),
            }),
            options,
            object_store,
            object_stats,
            sst_store,
            manifest,
            commit_lock: tokio::sync::Mutex::new(()),
            spill_lock: tokio::sync::Mutex::new(()),
            buffer_used: AtomicUsize::new(0),
            held_writes: AtomicIsize::new(0),
            buffer_freed: Notify::new(),
            fenced: Mutex::new(None),
            follower,
            last_manifest_list: Mutex::new(Instant::now()),
            unreferenced_since: Mutex::new(BTreeMap::new()),
            counters: Counters::default(),
            in_flight: Mutex::new(HashSet::new()),
            // Task ids of this process start after any an earlier one may have published.
            next_task_id: AtomicU64::new(physical_now_ms() << 12),
            remote_tasks: Mutex::new(Vec::new()),
            wake_compactor: Arc::new(Notify::new()),
            shutdown: Arc::new(AtomicBool::new(false)),
            shutdown_signal: Arc::new(Notify::new()),
            background: Mutex::new(Vec::new()),
        });
        Ok(LsmStore { inner })
    }

    /// Whether this store is a read-only follower.
    pub fn is_follower(&self) -> bool {
        self.inner.follower
    }

    /// A follower moves to the newest version the writer committed; returns whether its
    /// committed epoch advanced. Probes the next manifest id (one GET) and lists the
    /// manifest only now and then, in case it fell behind garbage collection.
    pub async fn refresh(&self) -> Result<bool> {
        if !self.inner.follower {
            return Err(Error::InvalidOptions(
                "only a follower refreshes; a writer owns its versions".into(),
            ));
        }
        let current = self.version();
        let mut newest = None;
        let mut next = current.id + 1;
        while let Some(v) = self.inner.manifest.load(next).await? {
            next += 1;
            newest = Some(v);
        }
        let listed_long_ago =
            self.inner.last_manifest_list.lock().elapsed() > FOLLOWER_LIST_INTERVAL;
        if newest.is_none() && listed_long_ago {
            *self.inner.last_manifest_list.lock() = Instant::now();
            newest = self
                .inner
                .manifest
                .load_latest()
                .await?
                .filter(|v| v.id > current.id);
        }
        let Some(newest) = newest else {
            return Ok(false);
        };
        let epoch = Epoch(newest.committed_epoch);
        let advanced = epoch > self.inner.epochs.committed();
        {
            let mut state = self.inner.state.write();
            if advanced {
                self.inner.epochs.seal(epoch)?;
                self.inner.epochs.commit(epoch);
            }
            let previous = Arc::clone(&state.version);
            state.followed.insert(previous.committed_epoch, previous);
            self.install(&mut state, newest);
            // Keep the versions a pinned snapshot may still read at, and none below.
            let oldest_pinned = self.inner.epochs.safe_epoch().0;
            let keep_from = state
                .followed
                .range(..=oldest_pinned)
                .next_back()
                .map_or(oldest_pinned, |(e, _)| *e);
            state.followed = state.followed.split_off(&keep_from);
            let newest_epoch = state.version.committed_epoch;
            state.followed.remove(&newest_epoch);
        }
        Ok(advanced)
    }

    fn spawn_background(&self) {
        let inner = &self.inner;
        let mut handles = inner.background.lock();
        if inner.options.compaction.background {
            let weak = Arc::downgrade(inner);
            let (wake, stop, stopped) = (
                inner.wake_compactor.clone(),
                inner.shutdown_signal.clone(),
                inner.shutdown.clone(),
            );
            let interval = inner.options.compaction.interval;
            handles.push(tokio::spawn(async move {
                loop {
                    if stopped.load(Relaxed) {
                        return;
                    }
                    let Some(inner) = weak.upgrade() else { return };
                    let store = LsmStore { inner };
                    let outcome = store.compact().await;
                    drop(store);
                    match outcome {
                        Ok(true) => continue,
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "background compaction failed"),
                    }
                    tokio::select! {
                        _ = wake.notified() => {}
                        _ = stop.notified() => return,
                        _ = tokio::time::sleep(interval) => {}
                    }
                }
            }));
        }
        if inner.options.gc.background {
            let weak = Arc::downgrade(inner);
            let (stop, stopped) = (inner.shutdown_signal.clone(), inner.shutdown.clone());
            let interval = inner.options.gc.interval;
            handles.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.notified() => return,
                        _ = tokio::time::sleep(interval) => {}
                    }
                    if stopped.load(Relaxed) {
                        return;
                    }
                    let Some(inner) = weak.upgrade() else { return };
                    if let Err(e) = (LsmStore { inner }).collect_garbage().await {
                        tracing::warn!(error = %e, "garbage collection failed");
                    }
                }
            }));
        }
    }

    /// Stops the background tasks, waits for a commit in flight and flushes the disk cache.
    /// Unsynced writes are dropped.
    pub async fn close(&self) {
        self.inner.shutdown.store(true, Relaxed);
        self.inner.shutdown_signal.notify_waiters();
        // A commit in flight finishes first; later ones see the store closed. So once this
        // returns, no manifest version of this writer can follow another writer's.
        drop(self.inner.commit_lock.lock().await);
        let handles = std::mem::take(&mut *self.inner.background.lock());
        for h in handles {
            let _ = h.await;
        }
        self.inner.sst_store.close().await;
    }

    /// Sets the prefix length of `table_id`'s keys (the distribution key) used by the prefix
    /// bloom filters of SSTs written from now on.
    pub fn set_table_prefix_len(&self, table_id: u32, prefix_len: usize) {
        self.inner.prefix_lens.write().insert(table_id, prefix_len);
    }

    /// The current version (for inspection and tests).
    pub fn version(&self) -> Arc<Version> {
        Arc::clone(&self.inner.state.read().version)
    }

    fn check_writable(&self) -> Result<()> {
        if self.inner.follower {
            return Err(Error::Epoch(epoch_mvcc::StoreError::ReadOnly(
                "a follower only reads what the writer commits".into(),
            )));
        }
        match &*self.inner.fenced.lock() {
            Some(msg) => Err(Error::Fenced(msg.clone())),
            None if self.inner.shutdown.load(Relaxed) => Err(Error::Epoch(
                epoch_mvcc::StoreError::ReadOnly("store is closed".into()),
            )),
            None => Ok(()),
        }
    }

    fn note_commit_error(&self, e: Error) -> Error {
        if let Error::Fenced(msg) = &e {
            tracing::error!(%msg, "fenced by another writer; this store no longer writes");
            *self.inner.fenced.lock() = Some(msg.clone());
        }
        e
    }

    fn install(&self, state: &mut ReadState, version: Version) {
        let version = Arc::new(version);
        let mut installed = self.inner.installed_versions.lock();
        installed.retain(|w| w.strong_count() > 0);
        installed.push(Arc::downgrade(&version));
        state.version = version;
    }

    // ---- write path ----

    /// Writes `batch` at `epoch` (see [`StateStore::ingest_batch`]).
    pub async fn ingest(&self, epoch: Epoch, batch: WriteBatch) -> Result<()> {
        self.check_writable()?;
        let charged: usize = batch.iter().map(|(k, v)| entry_size(k, v)).sum();
        self.wait_for_buffer(charged).await?;
        let mut batch = Some(batch);
        let result = loop {
            {
                let state = self.inner.state.read();
                // Checked under the state lock: a seal takes the write lock, so it cannot slip
                // between this check and the insert.
                if let Err(e) = self.inner.epochs.on_write(epoch) {
                    break Err(e.into());
                }
                if let Some(memtable) = state.memtables.get(&epoch) {
                    let batch = batch.take().expect("inserted once");
                    let logical: usize = batch.iter().map(|(k, v)| k.len() + v.encoded_len()).sum();
                    memtable.insert(batch, charged);
                    self.inner
                        .counters
                        .ingested_bytes
                        .fetch_add(logical as u64, Relaxed);
                    break Ok(());
                }
            }
            let mut state = self.inner.state.write();
            if let Err(e) = self.inner.epochs.on_write(epoch) {
                break Err(e.into());
            }
            state
                .memtables
                .entry(epoch)
                .or_insert_with(|| Arc::new(Memtable::new(epoch)));
        };
        if result.is_err() {
            self.release_buffer(charged);
        }
        result
    }

    /// Waits while the write buffer is over budget and memory can be freed: for a sync of
    /// the sealed epochs or the spill in flight, when there is one (an upload under way
    /// frees memory without more work); otherwise spills the unsealed epochs' writes when
    /// they hold a good part of the budget (or an earlier spill's upload failed).
    async fn wait_for_buffer(&self, bytes: usize) -> Result<()> {
        let budget = self.inner.options.write_buffer_bytes;
        loop {
            let freed = self.inner.buffer_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let used = self.inner.buffer_used.load(Relaxed);
            if used + bytes <= budget || self.inner.shutdown.load(Relaxed) {
                break;
            }
            let (unsealed, sealed, failed_spill) = {
                let state = self.inner.state.read();
                let unsealed: usize = state.memtables.values().map(|m| m.charged()).sum();
                let failed_spill = state
                    .spills
                    .values()
                    .flatten()
                    .any(|s| matches!(s, Spill::Pending(_)));
                (unsealed, !state.sealed.is_empty(), failed_spill)
            };
            let spill = if sealed {
                None
            } else {
                self.inner.spill_lock.try_lock().ok()
            };
            match spill {
                Some(guard) if unsealed >= budget / 8 || failed_spill => {
                    self.spill(guard).await?;
                    continue;
                }
                // Nothing to free but the epoch being written, too little of it to spill.
                Some(_) => break,
                None => freed.await,
            }
        }
        self.inner.buffer_used.fetch_add(bytes, Relaxed);
        Ok(())
    }

    fn release_buffer(&self, bytes: usize) {
        self.inner.buffer_used.fetch_sub(bytes, Relaxed);
        self.inner.buffer_freed.notify_waiters();
    }

    /// Takes every unsealed memtable out of the write buffer and uploads it as SSTs (a
    /// spill), as RisingWave spills its shared buffer: an epoch bigger than the write buffer
    /// then streams to the object store instead of growing memory. The SSTs are read in
    /// place of the memtable at once, and join the version (each spill one L0 sub-level,
    /// below the epoch's later writes) when the epoch commits; a crash before that leaves
    /// them unreferenced, for garbage collection.
    async fn spill(&self, _spilling: tokio::sync::MutexGuard<'_, ()>) -> Result<()> {
        {
            let mut state = self.inner.state.write();
            for (epoch, memtable) in std::mem::take(&mut state.memtables) {
                // Writers insert under the read lock, so nothing lands in it after this; a
                // reader holding it still reads the same runs.
                let batch = memtable.freeze();
                if batch.is_empty() {
                    self.release_buffer(batch.charged);
                    continue;
                }
                let spill = Spill::Pending(Arc::new(batch));
                state.spills.entry(epoch).or_default().push(spill);
                self.inner.counters.spills.fetch_add(1, Relaxed);
            }
        }
        self.upload_spills(Epoch::MAX).await
    }

    /// Uploads the pending spills of epochs up to `epoch`, oldest first, each freeing its
    /// memory once its SSTs are readable. The caller holds the spill lock.
    async fn upload_spills(&self, epoch: Epoch) -> Result<()> {
        loop {
            let next = {
                let state = self.inner.state.read();
                state
                    .spills
                    .range(..=epoch)
                    .flat_map(|(_, spills)| spills)
                    .find_map(|s| match s {
                        Spill::Pending(batch) => Some(Arc::clone(batch)),
                        Spill::Uploaded(_) => None,
                    })
            };
            let Some(batch) = next else {
                return Ok(());
            };
            let registered = Mutex::new(Vec::new());
            let uploaded = self.flush(std::slice::from_ref(&batch), &registered).await;
            let registered = registered.into_inner();
            let ssts = match uploaded {
                Ok(ssts) => ssts,
                Err(e) => {
                    self.forget_in_flight(&registered);
                    return Err(e);
                }
            };
            let replaced = {
                let mut state = self.inner.state.write();
                let slot = state.spills.get_mut(&batch.epoch).and_then(|spills| {
                    spills
                        .iter_mut()
                        .find(|s| matches!(s, Spill::Pending(b) if Arc::ptr_eq(b, &batch)))
                });
                slot.map(|slot| *slot = Spill::Uploaded(Arc::new(ssts)))
                    .is_some()
            };
            if replaced {
                self.release_buffer(batch.charged);
            } else {
                // Discarded while uploading: the SSTs are garbage.
                self.forget_in_flight(&registered);
            }
        }
    }

    /// Uploads that will never be committed (or just were): garbage collection may consider
    /// them.
    fn forget_in_flight(&self, ids: &[u64]) {
        self.inner.in_flight.lock().retain(|id| !ids.contains(id));
    }

    /// The newest sealed epoch: its writes and every earlier one's commit with the next syncs.
    pub fn sealed_epoch(&self) -> Epoch {
        self.inner.epochs.sealed()
    }

    /// Drops every unsealed write (the memtables and spills of epochs after the sealed one),
    /// for a writer abandoning the epochs it had not sealed when something failed: it
    /// resumes writing at a newer epoch, and reads see the sealed data as before. The caller
    /// stops its writers first; a write racing with this lands in an epoch that is gone.
    pub fn discard_unsealed(&self) {
        let sealed = self.inner.epochs.sealed();
        let (memtables, spills) = {
            let mut state = self.inner.state.write();
            let spills = state.spills.split_off(&Epoch(sealed.0 + 1));
            (std::mem::take(&mut state.memtables), spills)
        };
        let mut charged: usize = memtables.values().map(|m| m.charged()).sum();
        for spill in spills.into_values().flatten() {
            match spill {
                Spill::Pending(batch) => charged += batch.charged,
                Spill::Uploaded(ssts) => {
                    self.forget_in_flight(&ssts.iter().map(|s| s.id).collect::<Vec<_>>());
                }
            }
        }
        self.release_buffer(charged);
    }

    /// Seals every epoch up to `epoch` (see [`StateStore::seal_epoch`]).
    pub fn seal(&self, epoch: Epoch) -> Result<()> {
        let mut state = self.inner.state.write();
        self.inner.epochs.seal(epoch)?;
        let epochs: Vec<Epoch> = state.memtables.range(..=epoch).map(|(e, _)| *e).collect();
        for e in epochs {
            let memtable = state.memtables.remove(&e).expect("listed");
            let batch = memtable.freeze();
            if batch.is_empty() {
                self.release_buffer(batch.charged);
            } else {
                state.sealed.push(Arc::new(batch));
            }
        }
        Ok(())
    }

    /// Uploads every sealed epoch up to `epoch` and commits it (see [`StateStore::sync`]).
    pub async fn sync_epoch(&self, epoch: Epoch) -> Result<()> {
        self.inner.epochs.check_syncable(epoch)?;
        let _commit = self.inner.commit_lock.lock().await;
        // Under the commit lock: a closed store commits nothing more.
        self.check_writable()?;
        if epoch <= self.inner.epochs.committed() {
            return Ok(());
        }
        {
            // A spill that took a memtable of these epochs before they were sealed finishes
            // first; no later one takes any (sealed epochs have no memtables).
            let _spilling = self.inner.spill_lock.lock().await;
            self.upload_spills(epoch).await?;
        }
        let plan = self.commit_plan(epoch);
        let registered = Mutex::new(Vec::new());
        let result = async {
            let mut sub_levels = Vec::with_capacity(plan.len());
            for part in &plan {
                sub_levels.push(match part {
                    CommitPart::Spilled(ssts) => ssts.as_ref().clone(),
                    CommitPart::Flush(batches) => self.flush(batches, &registered).await?,
                });
            }
            self.commit_flush(&plan, sub_levels, epoch).await
        }
        .await;
        // Committed or not, these uploads are no longer in flight: they are either in the
        // version or garbage.
        self.forget_in_flight(&registered.into_inner());
        result
    }

    /// What committing every epoch up to `epoch` adds to L0, oldest first: each epoch's
    /// spills, below the flush of its sealed batch (written after them). Sealed batches of
    /// consecutive epochs share one flush unless a later one has spills: a spill of epoch
    /// `e` holds keys newer than any sealed batch before `e`, so it goes above their flush,
    /// and a read stops at the first sub-level holding a key.
    fn commit_plan(&self, epoch: Epoch) -> Vec<CommitPart> {
        let state = self.inner.state.read();
        let mut plan = Vec::new();
        let mut group: Vec<Arc<ImmBatch>> = Vec::new();
        let mut sealed = state.sealed.iter().filter(|b| b.epoch <= epoch).peekable();
        for (spill_epoch, spills) in state.spills.range(..=epoch) {
            while let Some(b) = sealed.next_if(|b| b.epoch < *spill_epoch) {
                group.push(Arc::clone(b));
            }
            if !group.is_empty() {
                plan.push(CommitPart::Flush(std::mem::take(&mut group)));
            }
            plan.extend(spills.iter().map(|s| match s {
                Spill::Uploaded(ssts) => CommitPart::Spilled(Arc::clone(ssts)),
                Spill::Pending(_) => unreachable!("uploaded under the spill lock first"),
            }));
        }
        group.extend(sealed.cloned());
        if !group.is_empty() {
            plan.push(CommitPart::Flush(group));
        }
        plan
    }

    /// Commits `epoch` with `sub_levels`, the SSTs of `plan`'s parts (oldest first).
    async fn commit_flush(
        &self,
        plan: &[CommitPart],
        sub_levels: Vec<Vec<SstInfo>>,
        epoch: Epoch,
    ) -> Result<()> {
        let current = self.version();
        let next = if sub_levels.iter().all(Vec::is_empty) {
            // Nothing to persist: the epoch is committed in memory only. A restart resumes at
            // an older committed epoch that holds exactly the same data.
            Version {
                committed_epoch: epoch.0.max(current.committed_epoch),
                ..(*current).clone()
            }
        } else {
            let flushed: u64 = sub_levels.iter().flatten().map(|s| s.file_size).sum();
            let next = current.with_flush(sub_levels, epoch);
            self.inner
                .manifest
                .commit(&next)
                .await
                .map_err(|e| self.note_commit_error(e))?;
            self.inner
                .counters
                .flushed_bytes
                .fetch_add(flushed, Relaxed);
            next
        };
        {
            let mut state = self.inner.state.write();
            self.install(&mut state, next);
            state.sealed.retain(|b| b.epoch > epoch);
            state.spills = state.spills.split_off(&Epoch(epoch.0 + 1));
        }
        let mut spilled_ids = Vec::new();
        let mut charged = 0;
        for part in plan {
            match part {
                CommitPart::Spilled(ssts) => spilled_ids.extend(ssts.iter().map(|s| s.id)),
                CommitPart::Flush(batches) => {
                    charged += batches.iter().map(|b| b.charged).sum::<usize>()
                }
            }
        }
        self.forget_in_flight(&spilled_ids);
        self.inner.epochs.commit(epoch);
        self.release_buffer(charged);
        self.inner.wake_compactor.notify_one();
        Ok(())
    }

    /// Builds SSTs (one L0 sub-level) from sealed batches and uploads them as they are
    /// built, registering each id as in flight (and in `registered`) before its upload
    /// starts. Should an id be taken by another writer, the batches are built again.
    async fn flush(
        &self,
        batches: &[Arc<ImmBatch>],
        registered: &Mutex<Vec<u64>>,
    ) -> Result<Vec<SstInfo>> {
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        loop {
            match self.flush_once(batches, registered).await {
                Err(Error::ObjectStore(ObjectError::AlreadyExists { path })) => {
                    tracing::warn!(%path, "an SST id was taken; flushing again");
                }
                other => return other,
            }
        }
    }

    async fn flush_once(
        &self,
        batches: &[Arc<ImmBatch>],
        registered: &Mutex<Vec<u64>>,
    ) -> Result<Vec<SstInfo>> {
        let options = &self.inner.options.sst;
        let prefix_lens = self.inner.prefix_lens.read().clone();
        let split = SplitPolicy {
            target_file_size: options.target_file_size,
            split_by_table: false,
        };
        let new_id = || {
            let id = new_sst_id();
            self.inner.in_flight.lock().insert(id);
            registered.lock().push(id);
            id
        };
        // Key ranges built and uploaded in parallel, each of at least a sixteenth of a target
        // SST; their SSTs, in key order, are one L0 sub-level (the ranges split between user
        // keys, so no two overlap).
        let bounds = flush_bounds(
            batches,
            rayon::current_num_threads(),
            options.target_file_size / 16,
        );
        let starts = std::iter::once(None).chain(bounds.iter().map(|b| Some(b.as_ref())));
        let ends = bounds
            .iter()
            .map(|b| Some(b.as_ref()))
            .chain(std::iter::once(None));
        let builds = starts.zip(ends).map(|(start, end)| {
            let cursors = batches
                .iter()
                .rev()
                .flat_map(|b| BatchCursor::over_key_range(b, start, end))
                .map(SourceCursor::Batch)
                .collect();
            let merge = MergeCursor::new(cursors, Direction::Forward);
            let (options, prefix_lens, split) =
                (options.clone(), prefix_lens.clone(), split.clone());
            async move {
                write_ssts(
                    &self.inner.sst_store,
                    merge?,
                    options,
                    prefix_lens,
                    split,
                    |_, _| true,
                    new_id,
                )
                .await
            }
        });
        let ranges = futures::future::try_join_all(builds).await?;
        Ok(ranges.into_iter().flatten().collect())
    }

    // ---- read path ----

    fn read_snapshot(&self, read_epoch: Epoch) -> Result<ReadSnapshot> {
        let state = self.inner.state.read();
        let mut version = Arc::clone(&state.version);
        if read_epoch.0 < version.safe_epoch
            && let Some((_, older)) = state.followed.range(..=read_epoch.0).next_back()
        {
            version = Arc::clone(older);
        }
        if read_epoch.0 < version.safe_epoch {
            return Err(Error::Epoch(epoch_mvcc::StoreError::EpochTooOld {
                read: read_epoch,
                safe: Epoch(version.safe_epoch),
            }));
        }
        let mut epochs: Vec<Epoch> = state
            .memtables
            .range(..=read_epoch)
            .map(|(e, _)| *e)
            .chain(state.spills.range(..=read_epoch).map(|(e, _)| *e))
            .chain(
                state
                    .sealed
                    .iter()
                    .map(|b| b.epoch)
                    .filter(|e| *e <= read_epoch),
            )
            .collect();
        epochs.sort_unstable_by(|a, b| b.cmp(a));
        epochs.dedup();
        // Newest first: by epoch, and within one the memtable, then the sealed batch, then
        // the spills from the newest.
        let mut layers = Vec::new();
        for epoch in epochs {
            if let Some(m) = state.memtables.get(&epoch) {
                layers.push(Layer::Memtable(Arc::clone(m)));
            }
            for b in state.sealed.iter().filter(|b| b.epoch == epoch) {
                layers.push(Layer::Batch(Arc::clone(b)));
            }
            for spill in state.spills.get(&epoch).into_iter().flatten().rev() {
                layers.push(match spill {
                    Spill::Pending(b) => Layer::Batch(Arc::clone(b)),
                    Spill::Uploaded(ssts) => Layer::Ssts(Arc::clone(ssts)),
                });
            }
        }
        Ok(ReadSnapshot { layers, version })
    }

    /// The value of `key` as of `read_epoch` (see [`StateStore::get`]).
    pub async fn get_value(&self, key: &[u8], read_epoch: Epoch) -> Result<Option<Bytes>> {
        let ReadSnapshot { layers, version } = self.read_snapshot(read_epoch)?;
        let hash = key_hash(key);
        for layer in &layers {
            let found = match layer {
                Layer::Memtable(m) => m.get(key, hash),
                Layer::Batch(b) => b.get(key, hash).cloned(),
                Layer::Ssts(ssts) => self.get_from_run(ssts, key, hash, read_epoch).await?,
            };
            if let Some(v) = found {
                return Ok(v.as_put().cloned());
            }
        }
        let runs = version
            .l0
            .iter()
            .map(|s| s.ssts.as_slice())
            .chain(version.levels.iter().map(Vec::as_slice));
        for run in runs {
            if let Some(v) = self.get_from_run(run, key, hash, read_epoch).await? {
                return Ok(v.as_put().cloned());
            }
        }
        Ok(None)
    }

    /// The newest version of `key` (of [`key_hash`] `hash`) at or below `read_epoch` in
    /// `run`, non-overlapping SSTs in key order.
    async fn get_from_run(
        &self,
        run: &[SstInfo],
        key: &[u8],
        hash: u64,
        read_epoch: Epoch,
    ) -> Result<Option<Value>> {
        let idx = run.partition_point(|s| s.largest_user_key() < key);
        match run.get(idx).filter(|s| s.may_contain(key)) {
            Some(info) => self.get_from_sst(info, key, hash, read_epoch).await,
            None => Ok(None),
        }
    }

    async fn get_from_sst(
        &self,
        info: &SstInfo,
        key: &[u8],
        hash: u64,
        read_epoch: Epoch,
    ) -> Result<Option<Value>> {
        if info.min_epoch > read_epoch.0 {
            return Ok(None);
        }
        let store = &self.inner.sst_store;
        let sst = store.sstable(info).await?;
        store.counters.bloom_checks.fetch_add(1, Relaxed);
        if !sst.tail.filter.may_contain_key(key, hash) {
            store.counters.bloom_negatives.fetch_add(1, Relaxed);
            return Ok(None);
        }
        SstCursor::get(sst, &SstSource::Store(Arc::clone(store)), key, read_epoch).await
    }

    /// The prefix every key in `range` shares, when it is a whole bloom prefix of its table.
    fn bloom_prefix(&self, range: &KeyRange) -> Option<Vec<u8>> {
        let start = match &range.0 {
            Bound::Included(s) | Bound::Excluded(s) => s,
            Bound::Unbounded => return None,
        };
        let len = *self.inner.prefix_lens.read().get(&table_id_of(start)?)?;
        let prefix = start.get(..len)?;
        let end_ok = match (&range.1, prefix_successor(prefix)) {
            (Bound::Included(e), Some(succ)) => e.as_ref() < succ.as_slice(),
            (Bound::Excluded(e), Some(succ)) => e.as_ref() <= succ.as_slice(),
            _ => false,
        };
        end_ok.then(|| prefix.to_vec())
    }

    /// Iterates `range` as of `read_epoch` (see [`StateStore::iter`]).
    pub async fn scan(
        &self,
        range: KeyRange,
        read_epoch: Epoch,
        direction: Direction,
    ) -> Result<LsmIter> {
        let ReadSnapshot { layers, version } = self.read_snapshot(read_epoch)?;
        let target = match direction {
            Direction::Forward => match &range.0 {
                Bound::Included(s) | Bound::Excluded(s) => {
                    Some(FullKeyRef::new(s, Epoch::MAX).encode())
                }
                Bound::Unbounded => None,
            },
            Direction::Backward => match &range.1 {
                Bound::Included(e) | Bound::Excluded(e) => {
                    Some(FullKeyRef::new(e, Epoch::MIN).encode())
                }
                Bound::Unbounded => None,
            },
        };
        let target_key = target.as_deref().and_then(FullKeyRef::decode);
        let prefix = self.bloom_prefix(&range);
        let seek = (target.as_deref(), direction);
        let mut cursors = Vec::new();
        for layer in &layers {
            match layer {
                Layer::Memtable(m) => {
                    let snapshot = Arc::new(m.snapshot(&range));
                    cursors.extend(
                        BatchCursor::over_runs(&snapshot, direction, None).map(SourceCursor::Batch),
                    );
                }
                Layer::Batch(b) => cursors.extend(
                    BatchCursor::over_runs(b, direction, target_key).map(SourceCursor::Batch),
                ),
                Layer::Ssts(ssts) => {
                    let cursor = self
                        .run_cursor(ssts, &range, read_epoch, prefix.as_deref(), seek)
                        .await?;
                    cursors.extend(cursor);
                }
            }
        }
        let runs = version
            .l0
            .iter()
            .map(|s| &s.ssts)
            .chain(version.levels.iter());
        for run in runs {
            let cursor = self
                .run_cursor(run, &range, read_epoch, prefix.as_deref(), seek)
                .await?;
            cursors.extend(cursor);
        }
        let merge = MergeCursor::new(cursors, direction)?;
        Ok(LsmIter {
            inner: MvccIter::new(merge, read_epoch, direction, range),
            _version: version,
        })
    }

    /// A cursor over the SSTs of `run` (non-overlapping, in key order) that may hold keys of
    /// `range` at or below `read_epoch` (and `prefix`, by their bloom filters), sought to
    /// `target` in `direction`; `None` when no SST qualifies.
    async fn run_cursor(
        &self,
        run: &[SstInfo],
        range: &KeyRange,
        read_epoch: Epoch,
        prefix: Option<&[u8]>,
        (target, direction): (Option<&[u8]>, Direction),
    ) -> Result<Option<SourceCursor>> {
        let store = &self.inner.sst_store;
        let mut ssts = Vec::new();
        for info in run
            .iter()
            .filter(|s| overlaps_range(s, range) && s.min_epoch <= read_epoch.0)
        {
            if let Some(prefix) = prefix {
                let sst = store.sstable(info).await?;
                store.counters.bloom_checks.fetch_add(1, Relaxed);
                if !sst.tail.filter.may_contain_prefix(prefix) {
                    store.counters.bloom_negatives.fetch_add(1, Relaxed);
                    continue;
                }
            }
            ssts.push(info.clone());
        }
        if ssts.is_empty() {
            return Ok(None);
        }
        let mut cursor =
            ConcatCursor::new(ssts.into(), SstSource::Store(Arc::clone(store)), direction);
        cursor.seek(target).await?;
        Ok(Some(SourceCursor::Concat(cursor)))
    }

    // ---- compaction and garbage collection ----

    /// The most urgent compaction task that touches no SST in `busy`, if any.
    fn pick_task(&self, busy: &HashSet<u64>) -> Option<compaction::CompactionTask> {
        let options = &self.inner.options;
        compaction::pick(
            &self.version(),
            &options.compaction,
            self.inner.epochs.safe_epoch().0,
            options.sst.target_file_size,
            self.inner.next_task_id.fetch_add(1, Relaxed),
            busy,
        )
    }

    /// Runs the most urgent compaction, if any (or with remote compaction, applies a
    /// finished task or publishes the next); returns whether it changed the tree.
    pub async fn compact(&self) -> Result<bool> {
        self.check_writable()?;
        if self.inner.options.compaction.remote {
            return self.compact_remotely().await;
        }
        let Some(task) = self.pick_task(&HashSet::new()) else {
            return Ok(false);
        };
        let options = &self.inner.options;
        let prefix_lens = self.inner.prefix_lens.read().clone();
        let uploaded = Mutex::new(Vec::new());
        let result = compaction::run(
            &task,
            &self.inner.sst_store,
            &options.sst,
            &prefix_lens,
            new_sst_id,
            |id| {
                self.inner.in_flight.lock().insert(id);
                uploaded.lock().push(id);
            },
        )
        .await;
        let applied = match result {
            Ok(result) => self.apply_compaction(&task, result).await,
            Err(e) => Err(e),
        };
        let uploaded = uploaded.into_inner();
        self.inner
            .in_flight
            .lock()
            .retain(|id| !uploaded.contains(id));
        applied
    }

    /// One step of remote compaction: applies the results compactors have written for the
    /// published tasks, then publishes the most urgent tasks that share no SST with those
    /// still out, up to [`CompactionOptions::max_remote_tasks`] (trivial moves are applied at
    /// once). A result must arrive within half the garbage collection grace period, so that
    /// its outputs (which the collector spares only while they are young) are still there
    /// when it is applied; a task that takes longer is withdrawn and picked anew. Returns
    /// whether the tree changed.
    async fn compact_remotely(&self) -> Result<bool> {
        let objects = self.inner.object_store.as_ref();
        let deadline = self.inner.options.gc.grace_period / 2;
        let pending = self.inner.remote_tasks.lock().clone();
        let mut changed = false;
        for (task, published) in pending {
            let result = compaction::remote::result(objects, task.id).await?;
            if result.is_none() && published.elapsed() < deadline {
                continue;
            }
            self.inner
                .remote_tasks
                .lock()
                .retain(|(t, _)| t.id != task.id);
            changed |= match result {
                Some(result) if published.elapsed() < deadline => {
                    self.apply_compaction(&task, result).await?
                }
                _ => {
                    tracing::warn!(task = task.id, "remote compaction task timed out");
                    false
                }
            };
            compaction::remote::retire(objects, task.id).await?;
        }
        loop {
            let busy: HashSet<u64> = {
                let tasks = self.inner.remote_tasks.lock();
                if tasks.len() >= self.inner.options.compaction.max_remote_tasks.max(1) {
                    break;
                }
                tasks
                    .iter()
                    .flat_map(|(t, _)| t.input_ssts().map(|s| s.id))
                    .collect()
            };
            let Some(task) = self.pick_task(&busy) else {
                break;
            };
            if task.trivial_move {
                let moved = compaction::CompactionResult {
                    task_id: task.id,
                    outputs: vec![],
                    bytes_read: 0,
                    bytes_written: 0,
                };
                changed |= self.apply_compaction(&task, moved).await?;
                continue;
            }
            let remote = compaction::remote::RemoteTask {
                task: task.clone(),
                prefix_lens: self.inner.prefix_lens.read().clone(),
                sst: self.inner.options.sst.clone(),
            };
            compaction::remote::publish(objects, &remote).await?;
            tracing::debug!(task = task.id, "published a compaction task");
            self.inner.remote_tasks.lock().push((task, Instant::now()));
        }
        Ok(changed)
    }

    async fn apply_compaction(
        &self,
        task: &compaction::CompactionTask,
        result: compaction::CompactionResult,
    ) -> Result<bool> {
        let _commit = self.inner.commit_lock.lock().await;
        self.check_writable()?;
        let (read, written) = (result.bytes_read, result.bytes_written);
        let Some(next) = compaction::apply(&self.version(), task, result.outputs) else {
            tracing::info!(
                task = task.id,
                "compaction inputs changed; result discarded"
            );
            return Ok(false);
        };
        self.inner
            .manifest
            .commit(&next)
            .await
            .map_err(|e| self.note_commit_error(e))?;
        let c = &self.inner.counters;
        c.compactions.fetch_add(1, Relaxed);
        c.trivial_moves
            .fetch_add(u64::from(task.trivial_move), Relaxed);
        c.compaction_read_bytes.fetch_add(read, Relaxed);
        c.compaction_written_bytes.fetch_add(written, Relaxed);
        self.install(&mut self.inner.state.write(), next);
        Ok(true)
    }

    /// Compacts until no level is over its trigger.
    pub async fn compact_until_settled(&self) -> Result<()> {
        while self.compact().await? {}
        Ok(())
    }

    fn live_sst_ids(&self) -> HashSet<u64> {
        let mut live: HashSet<u64> = self.inner.in_flight.lock().clone();
        live.extend(self.version().sst_ids());
        for v in self
            .inner
            .installed_versions
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
        {
            live.extend(v.sst_ids());
        }
        live
    }

    /// Deletes SSTs that no live version or in-flight upload has referenced for the grace
    /// period (followers may still read an older version that does), and old manifest
    /// versions older than the grace period.
    pub async fn collect_garbage(&self) -> Result<GcReport> {
        if self.check_writable().is_err() {
            // A fenced writer no longer owns the bucket and must not delete anything.
            return Ok(GcReport::default());
        }
        let grace = self.inner.options.gc.grace_period;
        let old_enough =
            |t: SystemTime| SystemTime::now().duration_since(t).unwrap_or_default() >= grace;
        let mut report = GcReport::default();
        // List first, then read what is live: anything listed is either still in flight or
        // already in the version read afterwards.
        let listed = self.inner.object_store.list("sst/").await?;
        let live = self.live_sst_ids();
        let now = Instant::now();
        let mut deletable = Vec::new();
        {
            let mut unreferenced = self.inner.unreferenced_since.lock();
            let mut seen = BTreeMap::new();
            for obj in listed {
                let Some(id) = sst_id_from_path(&obj.path) else {
                    continue;
                };
                if live.contains(&id) {
                    continue;
                }
                let since = unreferenced.get(&id).copied().unwrap_or(now);
                seen.insert(id, since);
                if old_enough(obj.last_modified) && now.duration_since(since) >= grace {
                    deletable.push((id, obj.path));
                }
            }
            *unreferenced = seen;
        }
        for (id, path) in deletable {
            self.inner.object_store.delete(&path).await?;
            self.inner.sst_store.forget(id);
            self.inner.unreferenced_since.lock().remove(&id);
            report.deleted_ssts += 1;
        }
        let current = self.version().id;
        let keep = self.inner.options.gc.keep_manifests;
        for (id, meta) in self.inner.manifest.list().await? {
            if id + keep < current && old_enough(meta.last_modified) {
                self.inner.manifest.delete(id).await?;
                report.deleted_manifests += 1;
            }
        }
        Ok(report)
    }

    // ---- stats ----

    /// Counters and the shape of the tree.
    pub fn stats(&self) -> LsmStats {
        let version = self.version();
        let write_buffer_bytes = {
            let state = self.inner.state.read();
            let spilling = state.spills.values().flatten().filter_map(|s| match s {
                Spill::Pending(b) => Some(b.size),
                Spill::Uploaded(_) => None,
            });
            state.memtables.values().map(|m| m.size()).sum::<usize>()
                + state.sealed.iter().map(|b| b.size).sum::<usize>()
                + spilling.sum::<usize>()
        };
        let levels = (1..=MAX_LEVEL)
            .map(|l| LevelStats {
                level: l,
                file_count: version.level(l).len(),
                bytes: version.level_bytes(l),
            })
            .collect();
        let c = &self.inner.counters;
        let cc = &self.inner.sst_store.counters;
        let ingested = c.ingested_bytes.load(Relaxed);
        let flushed = c.flushed_bytes.load(Relaxed);
        let compacted = c.compaction_written_bytes.load(Relaxed);
        let ratio = |hits: u64, total: u64| {
            if total == 0 {
                0.0
            } else {
                hits as f64 / total as f64
            }
        };
        let block_requests = cc.block_requests.load(Relaxed);
        let memory_hits = cc.block_memory_hits.load(Relaxed);
        let disk_hits = cc.block_disk_hits.load(Relaxed);
        LsmStats {
            version_id: version.id,
            committed_epoch: self.inner.epochs.committed().0,
            safe_epoch: self.inner.epochs.safe_epoch().0,
            l0_sub_levels: version.l0.len(),
            l0_files: version.l0.iter().map(|s| s.ssts.len()).sum(),
            l0_bytes: version.level_bytes(0),
            levels,
            write_buffer_bytes,
            spills: c.spills.load(Relaxed),
            ingested_bytes: ingested,
            flushed_bytes: flushed,
            compaction_read_bytes: c.compaction_read_bytes.load(Relaxed),
            compaction_written_bytes: compacted,
            write_amplification: ratio(flushed + compacted, ingested),
            compactions: c.compactions.load(Relaxed),
            trivial_moves: c.trivial_moves.load(Relaxed),
            block_cache: CacheStats {
                requests: block_requests,
                memory_hits,
                disk_hits,
                hit_ratio: ratio(memory_hits + disk_hits, block_requests),
            },
            meta_cache_hit_ratio: ratio(cc.meta_hits.load(Relaxed), cc.meta_requests.load(Relaxed)),
            bloom_checks: cc.bloom_checks.load(Relaxed),
            bloom_negatives: cc.bloom_negatives.load(Relaxed),
            object_store: self.inner.object_stats.snapshot(),
        }
    }
}

fn overlaps_range(sst: &SstInfo, range: &KeyRange) -> bool {
    let after_start = match &range.0 {
        Bound::Included(s) => sst.largest_user_key() >= s.as_ref(),
        Bound::Excluded(s) => sst.largest_user_key() > s.as_ref(),
        Bound::Unbounded => true,
    };
    let before_end = match &range.1 {
        Bound::Included(e) => sst.smallest_user_key() <= e.as_ref(),
        Bound::Excluded(e) => sst.smallest_user_key() < e.as_ref(),
        Bound::Unbounded => true,
    };
    after_start && before_end
}

/// A streaming iterator over a consistent snapshot; it keeps the SSTs it reads alive.
pub struct LsmIter {
    inner: MvccIter<MergeCursor>,
    _version: Arc<Version>,
}

impl LsmIter {
    /// The next visible `(key, value)`, or `None` at the end.
    pub async fn next_kv(&mut self) -> Result<Option<(Bytes, Bytes)>> {
        self.inner.next().await
    }
}

impl StateStoreIter for LsmIter {
    async fn next(&mut self) -> StoreResult<Option<(Bytes, Bytes)>> {
        Ok(self.inner.next().await?)
    }

    fn epoch(&self) -> Epoch {
        self.inner.epoch()
    }
}

impl StateStore for LsmStore {
    type Iter = LsmIter;

    async fn get(&self, key: &[u8], read_epoch: Epoch) -> StoreResult<Option<Bytes>> {
        Ok(self.get_value(key, read_epoch).await?)
    }

    async fn iter(
        &self,
        range: KeyRange,
        read_epoch: Epoch,
        direction: Direction,
    ) -> StoreResult<LsmIter> {
        Ok(self.scan(range, read_epoch, direction).await?)
    }

    async fn ingest_batch(&self, epoch: Epoch, batch: WriteBatch) -> StoreResult<()> {
        Ok(self.ingest(epoch, batch).await?)
    }

    fn seal_epoch(&self, epoch: Epoch) -> StoreResult<()> {
        Ok(self.seal(epoch)?)
    }

    async fn sync(&self, epoch: Epoch) -> StoreResult<()> {
        Ok(self.sync_epoch(epoch).await?)
    }

    fn committed_epoch(&self) -> Epoch {
        self.inner.epochs.committed()
    }

    fn pin_snapshot(&self) -> PinnedSnapshot {
        self.inner.epochs.pin()
    }

    fn set_key_prefix_len(&self, table_id: u32, len: usize) {
        self.set_table_prefix_len(table_id, len);
    }

    fn note_held_writes(&self, delta: isize) {
        self.inner.held_writes.fetch_add(delta, Relaxed);
    }

    fn write_buffer_full(&self) -> bool {
        let held = self.inner.held_writes.load(Relaxed).max(0).unsigned_abs();
        self.inner.buffer_used.load(Relaxed) + held > self.inner.options.write_buffer_bytes
    }
}
