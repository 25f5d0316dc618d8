//! LSM store benchmark: prints one JSON line per workload.
//!
//! `cargo run --release -p benches --bin lsm-bench -- --quick` for a short run;
//! without `--quick` for the full one.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use epoch_mvcc::{Direction, Epoch, StateStore, Value, table_key};
use lsm_store::object_store::LocalObjectStore;
use lsm_store::{CacheOptions, LsmStats, LsmStore, LsmStoreOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

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
    /// Directory for the object store (default: a temporary directory).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

const TABLE: u32 = 1;
/// Key = table id (4) + vnode (2) + group (4) + member (6): 16 bytes.
const PREFIX_LEN: usize = 10;
const VALUE_LEN: usize = 100;
const KEYS_PER_EPOCH: u64 = 10_000;
const MEMBERS_PER_GROUP: u64 = 16;

fn user_key(group: u32, member: u64) -> Bytes {
    let mut pk = group.to_be_bytes().to_vec();
    pk.extend_from_slice(&member.to_be_bytes()[2..]);
    table_key(TABLE, (group % 256) as u16, &pk)
}

/// The i-th key of the data set; groups hold about [`MEMBERS_PER_GROUP`] keys each.
fn nth_key(i: u64, keys: u64) -> Bytes {
    let groups = (keys / MEMBERS_PER_GROUP).max(1);
    let h = xorshift(i);
    user_key((h % groups) as u32, i)
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^ (x << 17)
}

fn options(bloom: bool, cached: bool) -> LsmStoreOptions {
    let mut o = LsmStoreOptions::default();
    if bloom {
        o.table_prefix_lens = BTreeMap::from([(TABLE, PREFIX_LEN)]);
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

struct Latencies(Vec<u64>);

impl Latencies {
    fn percentile_us(&mut self, p: f64) -> f64 {
        self.0.sort_unstable();
        let idx = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0.get(idx).map_or(0.0, |ns| *ns as f64 / 1000.0)
    }
}

fn report(
    workload: &str,
    ops: u64,
    elapsed: Duration,
    lat: &mut Latencies,
    before: &LsmStats,
    after: &LsmStats,
    extra: serde_json::Value,
) {
    let requests = after.object_store.requests() - before.object_store.requests();
    let block_requests = after.block_cache.requests - before.block_cache.requests;
    let block_hits = (after.block_cache.memory_hits + after.block_cache.disk_hits)
        - (before.block_cache.memory_hits + before.block_cache.disk_hits);
    let mut line = json!({
        "bench": "lsm",
        "workload": workload,
        "ops": ops,
        "seconds": elapsed.as_secs_f64(),
        "ops_per_sec": ops as f64 / elapsed.as_secs_f64(),
        "p50_us": lat.percentile_us(0.5),
        "p99_us": lat.percentile_us(0.99),
        "object_store_requests_per_op": requests as f64 / ops.max(1) as f64,
        "block_cache_hit_ratio": if block_requests == 0 { 0.0 } else { block_hits as f64 / block_requests as f64 },
        "write_amplification": after.write_amplification,
        "l0_sub_levels": after.l0_sub_levels,
        "level_files": after.levels.iter().map(|l| l.file_count).collect::<Vec<_>>(),
    });
    if let (Some(obj), serde_json::Value::Object(more)) = (line.as_object_mut(), extra) {
        obj.extend(more);
    }
    println!("{line}");
}

async fn fill(dir: &Path, keys: u64, bloom: bool) -> (LsmStore, Epoch) {
    let store = LsmStore::open(
        Arc::new(LocalObjectStore::open(dir).unwrap()),
        options(bloom, true),
    )
    .await
    .unwrap();
    let before = store.stats();
    let mut epoch = store.committed_epoch();
    let mut lat = Latencies(Vec::new());
    let start = Instant::now();
    let mut i = 0;
    while i < keys {
        epoch = epoch.next();
        let n = KEYS_PER_EPOCH.min(keys - i);
        let batch: Vec<_> = (i..i + n)
            .map(|j| {
                (
                    nth_key(j, keys),
                    Value::Put(Bytes::from(vec![(j % 251) as u8; VALUE_LEN])),
                )
            })
            .collect();
        let t = Instant::now();
        store.ingest_batch(epoch, batch).await.unwrap();
        store.seal_epoch(epoch).unwrap();
        store.sync(epoch).await.unwrap();
        lat.0.push(t.elapsed().as_nanos() as u64);
        i += n;
    }
    let elapsed = start.elapsed();
    store.compact_until_settled().await.unwrap();
    let after = store.stats();
    if bloom {
        report(
            "fill_random",
            keys,
            elapsed,
            &mut lat,
            &before,
            &after,
            json!({
                "key_bytes": 16, "value_bytes": VALUE_LEN, "keys_per_epoch": KEYS_PER_EPOCH,
                "latency_unit": "epoch (ingest + seal + sync)",
            }),
        );
    }
    (store, epoch)
}

async fn reads(
    store: &LsmStore,
    epoch: Epoch,
    workload: &str,
    ops: u64,
    keys: u64,
    mut key: impl FnMut(&mut StdRng) -> Bytes,
    expect_hit: bool,
) {
    let mut rng = StdRng::seed_from_u64(7);
    let before = store.stats();
    let mut lat = Latencies(Vec::with_capacity(ops as usize));
    let start = Instant::now();
    for _ in 0..ops {
        let k = key(&mut rng);
        let t = Instant::now();
        let v = store.get(&k, epoch).await.unwrap();
        lat.0.push(t.elapsed().as_nanos() as u64);
        assert_eq!(v.is_some(), expect_hit, "{workload}: unexpected result");
    }
    let elapsed = start.elapsed();
    report(
        workload,
        ops,
        elapsed,
        &mut lat,
        &before,
        &store.stats(),
        json!({ "keys": keys }),
    );
}

async fn prefix_scans(store: &LsmStore, epoch: Epoch, ops: u64, keys: u64) {
    let groups = (keys / MEMBERS_PER_GROUP).max(1);
    let mut rng = StdRng::seed_from_u64(11);
    let before = store.stats();
    let mut lat = Latencies(Vec::with_capacity(ops as usize));
    let mut rows = 0u64;
    let start = Instant::now();
    for _ in 0..ops {
        let group = rng.random_range(0..groups) as u32;
        let prefix = user_key(group, 0).slice(..PREFIX_LEN);
        let end = epoch_mvcc::prefix_successor(&prefix).unwrap();
        let t = Instant::now();
        let mut it = store
            .iter(
                (Bound::Included(prefix), Bound::Excluded(Bytes::from(end))),
                epoch,
                Direction::Forward,
            )
            .await
            .unwrap();
        while epoch_mvcc::StateStoreIter::next(&mut it)
            .await
            .unwrap()
            .is_some()
        {
            rows += 1;
        }
        lat.0.push(t.elapsed().as_nanos() as u64);
    }
    let elapsed = start.elapsed();
    report(
        "prefix_scan",
        ops,
        elapsed,
        &mut lat,
        &before,
        &store.stats(),
        json!({ "rows_per_scan": rows as f64 / ops as f64 }),
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = Args::parse();
    let keys = args
        .keys
        .unwrap_or(if args.quick { 200_000 } else { 2_000_000 });
    let ops = args
        .reads
        .unwrap_or(if args.quick { 20_000 } else { 200_000 });
    let tmp = tempfile::tempdir().unwrap();
    let root = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let groups = (keys / MEMBERS_PER_GROUP).max(1);
    let existing = |rng: &mut StdRng| nth_key(rng.random_range(0..keys), keys);
    // Absent keys: existing groups for half (prefix bloom cannot help), absent groups for
    // the other half (it can).
    let absent = move |rng: &mut StdRng| {
        let member = keys + rng.random_range(0..keys);
        let group = if rng.random_bool(0.5) {
            rng.random_range(0..groups)
        } else {
            groups + rng.random_range(0..groups)
        };
        user_key(group as u32, member)
    };

    let with_bloom = root.join("with-bloom");
    let (store, epoch) = fill(&with_bloom, keys, true).await;
    reads(
        &store,
        epoch,
        "read_random_cached",
        ops,
        keys,
        existing,
        true,
    )
    .await;
    // The same reads again now that the cache is warm.
    reads(
        &store,
        epoch,
        "read_random_cached",
        ops,
        keys,
        existing,
        true,
    )
    .await;
    prefix_scans(&store, epoch, ops / 10, keys).await;
    reads(
        &store,
        epoch,
        "point_miss_prefix_bloom",
        ops,
        keys,
        absent,
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
        "read_random_cold",
        ops / 4,
        keys,
        existing,
        true,
    )
    .await;
    cold.close().await;

    let (no_bloom, epoch) = fill(&root.join("without-bloom"), keys, false).await;
    reads(
        &no_bloom,
        epoch,
        "point_miss_no_bloom",
        ops,
        keys,
        absent,
        false,
    )
    .await;
    no_bloom.close().await;
}
