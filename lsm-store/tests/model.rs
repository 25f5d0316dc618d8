//! Property test: the store against a BTreeMap model of every version, through random writes,
//! seals, syncs, compactions, garbage collection, restarts and pinned snapshots; once with
//! room for every epoch in the write buffer, once with a buffer so small that unsealed
//! epochs spill to SSTs.

mod common;

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Model, collect, key, small_options};
use epoch_mvcc::{Direction, Epoch, PinnedSnapshot, StateStore, Value};
use lsm_store::object_store::MemoryObjectStore;
use lsm_store::{Error, LsmStore, LsmStoreOptions};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Write(Vec<(u8, Option<u8>)>),
    Seal,
    Sync,
    Compact,
    Gc,
    Reopen,
    Pin,
    Unpin,
    Get(u8, usize),
    Scan {
        lo: u8,
        hi: u8,
        epoch: usize,
        backward: bool,
    },
    ScanPrefix {
        group: u8,
        epoch: usize,
        backward: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => proptest::collection::vec((0u8..32, proptest::option::weighted(0.8, any::<u8>())), 1..12).prop_map(Op::Write),
        3 => Just(Op::Seal),
        3 => Just(Op::Sync),
        2 => Just(Op::Compact),
        1 => Just(Op::Gc),
        1 => Just(Op::Reopen),
        1 => Just(Op::Pin),
        1 => Just(Op::Unpin),
        6 => (0u8..32, any::<usize>()).prop_map(|(k, e)| Op::Get(k, e)),
        3 => (0u8..32, 0u8..32, any::<usize>(), any::<bool>()).prop_map(|(lo, hi, epoch, backward)| Op::Scan { lo, hi, epoch, backward }),
        2 => (0u8..8, any::<usize>(), any::<bool>()).prop_map(|(group, epoch, backward)| Op::ScanPrefix { group, epoch, backward }),
    ]
}

struct Harness {
    options: LsmStoreOptions,
    objects: MemoryObjectStore,
    store: LsmStore,
    model: Model,
    /// The epoch being written (unsealed).
    writing: Epoch,
    sealed: Epoch,
    synced: Epoch,
    /// Epochs a reader may read: synced ones, plus the current in-process ones.
    readable: Vec<Epoch>,
    pins: Vec<PinnedSnapshot>,
}

impl Harness {
    async fn new(options: LsmStoreOptions) -> Self {
        let objects = MemoryObjectStore::new();
        let store = LsmStore::open(Arc::new(objects.clone()), options.clone())
            .await
            .unwrap();
        Harness {
            options,
            objects,
            store,
            model: Model::default(),
            writing: Epoch(1),
            sealed: Epoch(0),
            synced: Epoch(0),
            readable: vec![Epoch(0)],
            pins: Vec::new(),
        }
    }

    fn pick_epoch(&self, i: usize) -> Epoch {
        // Mostly recent epochs, sometimes any readable one, sometimes the unsealed one.
        match i % 4 {
            0 => self.writing,
            1 => *self.readable.last().unwrap(),
            _ => self.readable[i % self.readable.len()],
        }
    }

    /// Reads that must succeed: at a pinned epoch, the newest synced epoch, or the epoch being
    /// written. Reads at older epochs may fail with EpochTooOld after compaction.
    fn must_succeed(&self, epoch: Epoch) -> bool {
        epoch >= self.synced || self.pins.iter().any(|p| p.epoch() == epoch)
    }

    async fn check_get(&self, k: u8, epoch: Epoch) {
        let expected = self.model.get(&key(k), epoch);
        match self.store.get_value(&key(k), epoch).await {
            Ok(v) => assert_eq!(v, expected, "get {k} at {epoch:?}"),
            Err(Error::Epoch(epoch_mvcc::StoreError::EpochTooOld { .. }))
                if !self.must_succeed(epoch) => {}
            Err(e) => panic!("get {k} at {epoch:?}: {e}"),
        }
    }

    async fn check_scan(&self, range: (Bound<Bytes>, Bound<Bytes>), epoch: Epoch, dir: Direction) {
        let expected = self.model.scan(&range, epoch, dir);
        match collect(&self.store, range.clone(), epoch, dir).await {
            Ok(got) => assert_eq!(got, expected, "scan {range:?} at {epoch:?} {dir:?}"),
            Err(Error::Epoch(epoch_mvcc::StoreError::EpochTooOld { .. }))
                if !self.must_succeed(epoch) => {}
            Err(e) => panic!("scan {range:?} at {epoch:?}: {e}"),
        }
    }

    async fn sync_sealed(&mut self) {
        if self.sealed > self.synced {
            self.store.sync(self.sealed).await.unwrap();
            self.synced = self.sealed;
            assert!(self.store.committed_epoch() >= self.synced);
        }
    }

    async fn apply(&mut self, op: Op) {
        match op {
            Op::Write(writes) => {
                let batch = writes
                    .iter()
                    .map(|(k, v)| {
                        (
                            key(*k),
                            v.map_or(Value::Delete, |v| {
                                Value::Put(Bytes::from(vec![v; 1 + (v % 40) as usize]))
                            }),
                        )
                    })
                    .collect::<Vec<_>>();
                // Within one batch the last write to a key wins, as in the memtable.
                for (k, v) in &batch {
                    self.model
                        .write(self.writing, k.clone(), v.as_put().cloned());
                }
                let store = self.store.clone();
                let ingest = store.ingest_batch(self.writing, batch);
                tokio::pin!(ingest);
                match tokio::time::timeout(Duration::from_millis(20), &mut ingest).await {
                    Ok(ingested) => ingested.unwrap(),
                    Err(_) => {
                        // The buffer is full of sealed epochs: the sync a barrier would run
                        // next frees them.
                        self.sync_sealed().await;
                        ingest.await.unwrap();
                    }
                }
            }
            Op::Seal => {
                self.store.seal_epoch(self.writing).unwrap();
                self.sealed = self.writing;
                self.readable.push(self.writing);
                self.writing = Epoch(self.writing.0 + 1);
            }
            Op::Sync => self.sync_sealed().await,
            Op::Compact => {
                self.store.compact_until_settled().await.unwrap();
            }
            Op::Gc => {
                self.store.collect_garbage().await.unwrap();
                // Nothing live may be gone: every live SST still reads.
                let live: HashSet<u64> = self.store.version().sst_ids();
                let objects: HashSet<u64> =
                    lsm_store::object_store::ObjectStore::list(&self.objects, "sst/")
                        .await
                        .unwrap()
                        .iter()
                        .filter_map(|m| lsm_store::version::sst_id_from_path(&m.path))
                        .collect();
                assert!(live.is_subset(&objects), "GC deleted a live SST");
            }
            Op::Reopen => {
                self.pins.clear();
                self.store.close().await;
                self.store = LsmStore::open(Arc::new(self.objects.clone()), self.options.clone())
                    .await
                    .unwrap();
                self.model.truncate_after(self.synced);
                self.readable.retain(|e| *e <= self.synced);
                self.sealed = self.synced;
                self.writing = Epoch(self.synced.0.max(self.writing.0) + 1);
                assert!(self.store.committed_epoch() <= self.synced);
            }
            Op::Pin => self.pins.push(self.store.pin_snapshot()),
            Op::Unpin => {
                self.pins.pop();
            }
            Op::Get(k, e) => {
                let epoch = self.pick_epoch(e);
                self.check_get(k, epoch).await;
                self.check_get(k, self.writing).await;
                if let Some(pin) = self.pins.first() {
                    self.check_get(k, pin.epoch()).await;
                }
            }
            Op::Scan {
                lo,
                hi,
                epoch,
                backward,
            } => {
                let (lo, hi) = (lo.min(hi), lo.max(hi));
                let epoch = self.pick_epoch(epoch);
                let dir = if backward {
                    Direction::Backward
                } else {
                    Direction::Forward
                };
                let bounds = [
                    (Bound::Included(key(lo)), Bound::Excluded(key(hi))),
                    (Bound::Excluded(key(lo)), Bound::Included(key(hi))),
                    (Bound::Unbounded, Bound::Included(key(hi))),
                    (Bound::Included(key(lo)), Bound::Unbounded),
                ];
                self.check_scan(bounds[usize::from(lo % 4)].clone(), epoch, dir)
                    .await;
            }
            Op::ScanPrefix {
                group,
                epoch,
                backward,
            } => {
                let epoch = self.pick_epoch(epoch);
                let dir = if backward {
                    Direction::Backward
                } else {
                    Direction::Forward
                };
                let start = key(group * 4).slice(..common::PREFIX_LEN);
                let end = key(group * 4 + 4).slice(..common::PREFIX_LEN);
                self.check_scan((Bound::Included(start), Bound::Excluded(end)), epoch, dir)
                    .await;
            }
        }
    }
}

/// Runs `ops`, then makes everything durable and checks it reads back after a restart.
fn run(ops: Vec<Op>, options: LsmStoreOptions) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut h = Harness::new(options).await;
        for op in ops {
            h.apply(op).await;
        }
        h.apply(Op::Seal).await;
        h.apply(Op::Sync).await;
        h.apply(Op::Compact).await;
        if std::env::var_os("MODEL_DEBUG").is_some() {
            eprintln!("{}", serde_json::to_string(&h.store.stats()).unwrap());
        }
        h.apply(Op::Reopen).await;
        let all = (Bound::Unbounded, Bound::Unbounded);
        h.check_scan(all, h.synced, Direction::Forward).await;
        h.store.close().await;
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..200)) {
        run(ops, small_options());
    }

    /// A write buffer of a few batches: most epochs spill, some several times, with
    /// overwrites and deletes of spilled keys in the same epoch.
    #[test]
    fn store_spilling_unsealed_epochs_matches_model(ops in proptest::collection::vec(op(), 1..200)) {
        let mut options = small_options();
        options.write_buffer_bytes = 600;
        run(ops, options);
    }
}
