//! The same workloads against SlateDB (default settings, its foyer block cache), on a local
//! directory object store. A fill epoch is one write batch followed by a durable flush.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use slatedb::object_store::ObjectStore;
use slatedb::object_store::local::LocalFileSystem;
use slatedb::{Db, WriteBatch};

use crate::workload::{Latencies, Measurement, Workload};

const ENGINE: &str = "slatedb";

async fn reads(
    db: &Db,
    w: &Workload,
    name: &str,
    ops: u64,
    keys: impl Fn(u64) -> bytes::Bytes,
    expect_hit: bool,
) {
    let mut lat = Latencies::default();
    let start = Instant::now();
    for i in 0..ops {
        let k = keys(i);
        let t = Instant::now();
        let v = db.get(&k).await.unwrap();
        lat.record(t);
        assert_eq!(v.is_some(), expect_hit, "{name}: unexpected result");
    }
    Measurement::new(ENGINE, name, ops, start.elapsed(), lat, json!({})).print(w);
}

pub async fn run(dir: &Path, w: &Workload) {
    std::fs::create_dir_all(dir).unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap());
    let db = Db::builder("db", Arc::clone(&store)).build().await.unwrap();
    let mut lat = Latencies::default();
    let start = Instant::now();
    for chunk in w.epochs() {
        let mut batch = WriteBatch::new();
        for j in chunk {
            batch.put(w.key(j), w.value(j));
        }
        let t = Instant::now();
        db.write(batch).await.unwrap();
        db.flush().await.unwrap();
        lat.record(t);
    }
    let extra = json!({ "latency_unit": "epoch (write batch + durable flush)" });
    Measurement::new(ENGINE, "fill_random", w.keys, start.elapsed(), lat, extra).print(w);

    reads(
        &db,
        w,
        "read_random_cached",
        w.reads,
        |i| w.existing_key(i),
        true,
    )
    .await;
    reads(
        &db,
        w,
        "read_random_cached",
        w.reads,
        |i| w.existing_key(i),
        true,
    )
    .await;
    let mut lat = Latencies::default();
    let mut rows = 0u64;
    let ops = w.reads / 10;
    let start = Instant::now();
    for i in 0..ops {
        let (prefix, end) = w.prefix_range(i);
        let t = Instant::now();
        let mut it = db.scan(prefix..end).await.unwrap();
        while it.next().await.unwrap().is_some() {
            rows += 1;
        }
        lat.record(t);
    }
    let extra = json!({ "rows_per_scan": rows as f64 / ops as f64 });
    Measurement::new(ENGINE, "prefix_scan", ops, start.elapsed(), lat, extra).print(w);
    reads(&db, w, "point_miss", w.reads, |i| w.absent_key(i), false).await;
    db.close().await.unwrap();

    let cold = Db::builder("db", store)
        .with_db_cache_disabled()
        .build()
        .await
        .unwrap();
    reads(
        &cold,
        w,
        "read_random_cold",
        w.reads / 4,
        |i| w.existing_key(i),
        true,
    )
    .await;
    cold.close().await.unwrap();
}
