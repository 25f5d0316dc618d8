//! LSM store benchmark: prints one JSON line per workload and engine.
//!
//! `cargo run --release -p benches --bin lsm-bench -- --quick` for a short run, without
//! `--quick` for the full one; with `--features peers` the same workloads also run against
//! SlateDB on the same local object store layout.

#[cfg(feature = "peers")]
mod slatedb_peer;
mod workload;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use epoch_mvcc::{Direction, Epoch, StateStore, StateStoreIter, Value};
use lsm_store::object_store::LocalObjectStore;
use lsm_store::{CacheOptions, LsmStats, LsmStore, LsmStoreOptions};
use serde_json::json;
use workload::{Latencies, Measurement, Workload};

/// The node's allocator (see node-bin), so that measurements match a node's.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(about = "Benchmarks the LSM store on a local object store directory")]
struct Args {
    /// A short run (seconds) instead of the full one (minutes).
    #[arg(long)]
    quick: bool,
    /// Keys to fill (defaults: 200k quick, 2M full).
    #[arg(long)]
    keys: Option<u64>,
    /// Operations per read workload (defaults: 20k quick, 200k full).
    #[arg(long)]
    reads: Option<u64>,
    /// Directory for the object stores (default: a temporary directory).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

fn options(bloom: bool, cached: bool) -> LsmStoreOptions {
    let mut o = LsmStoreOptions::default();
    if bloom {
        o.table_prefix_lens = BTreeMap::from([(workload::TABLE, workload::PREFIX_LEN)]);
    } else {
        o.sst.whole_key_filter = false;
    }
    if !cached {
        o.cache = CacheOptions {
            block_cache_bytes: 1,
            meta_cache_bytes: 64 << 20,
            ..CacheOptions::default()
        };
    }
    o.compaction.max_bytes_for_base_level = 64 << 20;
    o.sst.target_file_size = 16 << 20;
    o
}

/// Fields only this engine can report, from the stats before and after a workload.
fn lsm_fields(before: &LsmStats, after: &LsmStats, ops: u64) -> serde_json::Value {
    let requests = after.object_store.requests() - before.object_store.requests();
    let block_requests = after.block_cache.requests - before.block_cache.requests;
    let block_hits = (after.block_cache.memory_hits + after.block_cache.disk_hits)
        - (before.block_cache.memory_hits + before.block_cache.disk_hits);
    json!({
        "object_store_requests_per_op": requests as f64 / ops.max(1) as f64,
        "block_cache_hit_ratio": if block_requests == 0 { 0.0 } else { block_hits as f64 / block_requests as f64 },
        "write_amplification": after.write_amplification,
        "l0_sub_levels": after.l0_sub_levels,
        "level_files": after.levels.iter().map(|l| l.file_count).collect::<Vec<_>>(),
    })
}

async fn fill(dir: &Path, w: &Workload, bloom: bool) -> (LsmStore, Epoch) {
    let store = LsmStore::open(
        Arc::new(LocalObjectStore::open(dir).unwrap()),
        options(bloom, true),
    )
    .await
    .unwrap();
    let before = store.stats();
    let mut epoch = store.committed_epoch();
    let mut lat = Latencies::default();
    let start = Instant::now();
    for chunk in w.epochs() {
        epoch = epoch.next();
        let batch = chunk.map(|j| (w.key(j), Value::Put(w.value(j)))).collect();
        let t = Instant::now();
        store.ingest_batch(epoch, batch).await.unwrap();
        store.seal_epoch(epoch).unwrap();
        store.sync(epoch).await.unwrap();
        lat.record(t);
    }
    let elapsed = start.elapsed();
    store.compact_until_settled().await.unwrap();
    if bloom {
        let mut extra = lsm_fields(&before, &store.stats(), w.keys);
        extra["latency_unit"] = json!("epoch (ingest + seal + sync)");
        Measurement::new("lsm-store", "fill_random", w.keys, elapsed, lat, extra).print(w);
    }
    (store, epoch)
}

async fn reads(
    store: &LsmStore,
    epoch: Epoch,
    w: &Workload,
    name: &str,
    ops: u64,
    keys: impl Fn(u64) -> Bytes,
    expect_hit: bool,
) {
    let before = store.stats();
    let mut lat = Latencies::default();
    let start = Instant::now();
    for i in 0..ops {
        let k = keys(i);
        let t = Instant::now();
        let v = store.get(&k, epoch).await.unwrap();
        lat.record(t);
        assert_eq!(v.is_some(), expect_hit, "{name}: unexpected result");
    }
    let elapsed = start.elapsed();
    Measurement::new(
        "lsm-store",
        name,
        ops,
        elapsed,
        lat,
        lsm_fields(&before, &store.stats(), ops),
    )
    .print(w);
}

async fn prefix_scans(store: &LsmStore, epoch: Epoch, w: &Workload, ops: u64) {
    let before = store.stats();
    let mut lat = Latencies::default();
    let mut rows = 0u64;
    let start = Instant::now();
    for i in 0..ops {
        let (prefix, end) = w.prefix_range(i);
        let t = Instant::now();
        let mut it = store
            .iter(
                (Bound::Included(prefix), Bound::Excluded(end)),
                epoch,
                Direction::Forward,
            )
            .await
            .unwrap();
        while it.next().await.unwrap().is_some() {
            rows += 1;
        }
        lat.record(t);
    }
    let elapsed = start.elapsed();
    let mut extra = lsm_fields(&before, &store.stats(), ops);
    extra["rows_per_scan"] = json!(rows as f64 / ops as f64);
    Measurement::new("lsm-store", "prefix_scan", ops, elapsed, lat, extra).print(w);
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = Args::parse();
    let w = Workload::new(
        args.keys
            .unwrap_or(if args.quick { 200_000 } else { 2_000_000 }),
        args.reads
            .unwrap_or(if args.quick { 20_000 } else { 200_000 }),
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());

    let with_bloom = root.join("lsm-store-with-bloom");
    let (store, epoch) = fill(&with_bloom, &w, true).await;
    reads(
        &store,
        epoch,
        &w,
        "read_random_cached",
        w.reads,
        |i| w.existing_key(i),
        true,
    )
    .await;
    // Again, now that the cache is warm.
    reads(
        &store,
        epoch,
        &w,
        "read_random_cached",
        w.reads,
        |i| w.existing_key(i),
        true,
    )
    .await;
    prefix_scans(&store, epoch, &w, w.reads / 10).await;
    reads(
        &store,
        epoch,
        &w,
        "point_miss_prefix_bloom",
        w.reads,
        |i| w.absent_key(i),
        false,
    )
    .await;
    store.close().await;
    drop(store);

    let cold = LsmStore::open(
        Arc::new(LocalObjectStore::open(&with_bloom).unwrap()),
        options(true, false),
    )
    .await
    .unwrap();
    reads(
        &cold,
        epoch,
        &w,
        "read_random_cold",
        w.reads / 4,
        |i| w.existing_key(i),
        true,
    )
    .await;
    cold.close().await;

    let (no_bloom, epoch) = fill(&root.join("lsm-store-without-bloom"), &w, false).await;
    reads(
        &no_bloom,
        epoch,
        &w,
        "point_miss_no_bloom",
        w.reads,
        |i| w.absent_key(i),
        false,
    )
    .await;
    no_bloom.close().await;

    #[cfg(feature = "peers")]
    slatedb_peer::run(&root.join("slatedb"), &w).await;
}
