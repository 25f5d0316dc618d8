//! Remote compaction over S3 (a real S3-compatible server on loopback): a node that publishes
//! tasks, two compactors sharing only the bucket, and a compactor that died holding a claim.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{Model, key, s3_bucket, s3_server, small_options};
use epoch_mvcc::{Epoch, StateStore, Value};
use lsm_store::compaction::remote::{Claim, RemoteCompactor};
use lsm_store::object_store::{
    MemoryObjectStore, ObjectMeta, ObjectResult, ObjectStore, ObjectUpload,
};
use lsm_store::version::sst_id_from_path;
use lsm_store::{CacheOptions, LsmStore};

const KEYS: u8 = 64;

async fn check_reads(store: &LsmStore, model: &Model, epoch: Epoch) {
    for k in 0..KEYS {
        let got = store.get_value(&key(k), epoch).await.unwrap();
        assert_eq!(got, model.get(&key(k), epoch), "key {k} at {epoch:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_compactors_share_only_the_bucket() {
    let server = s3_server();
    let bucket: Arc<dyn ObjectStore> = Arc::new(s3_bucket(&server, "remote", "db").await);
    let mut options = small_options();
    options.compaction.remote = true;
    options.gc.grace_period = Duration::from_secs(3600);
    let node = LsmStore::open(Arc::clone(&bucket), options).await.unwrap();
    let lease = Duration::from_millis(300);
    let mut compactors = Vec::new();
    for name in ["a", "b"] {
        let c = RemoteCompactor::new(Arc::clone(&bucket), &CacheOptions::default(), name, lease)
            .await
            .unwrap();
        compactors.push(c);
    }
    let mut model = Model::default();
    let mut dead_claim: Option<String> = None;
    let mut max_l0 = 0;
    let mut ran = 0;
    let mut epoch = Epoch(0);
    for round in 0..40u8 {
        epoch = Epoch(epoch.0 + 1);
        let batch: Vec<(Bytes, Value)> = (0..6u8)
            .map(|i| {
                let k = (round.wrapping_mul(7).wrapping_add(i * 11)) % KEYS;
                let v = if (round + i) % 9 == 0 {
                    Value::Delete
                } else {
                    Value::Put(Bytes::from(vec![round; 1 + (i as usize * 5)]))
                };
                (key(k), v)
            })
            .collect();
        for (k, v) in &batch {
            model.write(epoch, k.clone(), v.as_put().cloned());
        }
        node.ingest_batch(epoch, batch).await.unwrap();
        node.seal_epoch(epoch).unwrap();
        node.sync(epoch).await.unwrap();
        // Publishes a task, or applies a finished one.
        node.compact().await.unwrap();
        let tasks = bucket.list("compaction/task/").await.unwrap();
        if dead_claim.is_none()
            && let Some(task) = tasks.first()
        {
            // A compactor claims the first task and is killed before it writes a result.
            let id = task.path.rsplit('/').next().unwrap().to_string();
            let claim = Claim {
                compactor: "killed".into(),
                expires_at_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as u64
                    + lease.as_millis() as u64,
            };
            let path = format!("compaction/claim/{id}/{:010}", 0);
            bucket
                .put_if_absent(&path, Bytes::from(serde_json::to_vec(&claim).unwrap()))
                .await
                .unwrap();
            dead_claim = Some(id);
        }
        for c in &compactors {
            ran += usize::from(c.run_once().await.unwrap().is_some());
        }
        node.compact().await.unwrap();
        max_l0 = max_l0.max(node.stats().l0_sub_levels);
        check_reads(&node, &model, epoch).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(dead_claim.is_some(), "a task was published");
    // Settle: the dead compactor's task is taken over once its claim expires.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for c in &compactors {
            ran += usize::from(c.run_once().await.unwrap().is_some());
        }
        let changed = node.compact().await.unwrap();
        let pending = !bucket.list("compaction/task/").await.unwrap().is_empty();
        if !changed && !pending && node.stats().l0_sub_levels < 2 {
            break;
        }
        assert!(Instant::now() < deadline, "compaction did not settle");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = node.stats();
    assert!(ran >= 2 && stats.compactions >= 2, "{ran} ran, {stats:?}");
    // 40 flushes; compaction kept L0 far below that, the dead claim included.
    assert!(max_l0 <= 12, "L0 reached {max_l0} sub-levels");
    check_reads(&node, &model, epoch).await;
    // Every task object is gone; after the grace period, every SST left is live.
    assert!(bucket.list("compaction/").await.unwrap().is_empty());
    let live = node.version().sst_ids();
    node.close().await;
    let mut options = small_options();
    options.gc.grace_period = Duration::ZERO;
    let reopened = LsmStore::open(Arc::clone(&bucket), options).await.unwrap();
    reopened.collect_garbage().await.unwrap();
    let left: HashSet<u64> = bucket
        .list("sst/")
        .await
        .unwrap()
        .iter()
        .filter_map(|m| sst_id_from_path(&m.path))
        .collect();
    assert_eq!(left, live, "only live SSTs remain after garbage collection");
    check_reads(&reopened, &model, epoch).await;
    reopened.close().await;
}

/// An object store whose SST reads are slow, so a task outlives its compactor's lease.
#[derive(Debug)]
struct SlowSstReads(Arc<dyn ObjectStore>);

#[async_trait::async_trait]
impl ObjectStore for SlowSstReads {
    async fn get(&self, path: &str) -> ObjectResult<Bytes> {
        if path.starts_with("sst/") {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        self.0.get(path).await
    }
    async fn get_range(&self, path: &str, range: std::ops::Range<u64>) -> ObjectResult<Bytes> {
        if path.starts_with("sst/") {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        self.0.get_range(path, range).await
    }
    async fn put(&self, path: &str, data: Bytes) -> ObjectResult<()> {
        self.0.put(path, data).await
    }
    async fn put_if_absent(&self, path: &str, data: Bytes) -> ObjectResult<()> {
        self.0.put_if_absent(path, data).await
    }
    async fn upload(&self, path: &str) -> ObjectResult<Box<dyn ObjectUpload>> {
        self.0.upload(path).await
    }
    async fn delete(&self, path: &str) -> ObjectResult<()> {
        self.0.delete(path).await
    }
    async fn list(&self, prefix: &str) -> ObjectResult<Vec<ObjectMeta>> {
        self.0.list(prefix).await
    }
    async fn head(&self, path: &str) -> ObjectResult<ObjectMeta> {
        self.0.head(path).await
    }
}

/// A compactor renews its claim while a task runs longer than the lease, so no other
/// compactor takes the task over meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_compactor_renews_its_claim() {
    let bucket: Arc<dyn ObjectStore> = Arc::new(MemoryObjectStore::new());
    let mut options = small_options();
    options.compaction.remote = true;
    options.gc.grace_period = Duration::from_secs(3600);
    let node = LsmStore::open(Arc::clone(&bucket), options).await.unwrap();
    let mut model = Model::default();
    for e in 1..=4u64 {
        let batch: Vec<(Bytes, Value)> = (0..KEYS)
            .map(|k| (key(k), Value::Put(Bytes::from(vec![e as u8; 20]))))
            .collect();
        for (k, v) in &batch {
            model.write(Epoch(e), k.clone(), v.as_put().cloned());
        }
        node.ingest_batch(Epoch(e), batch).await.unwrap();
        node.seal_epoch(Epoch(e)).unwrap();
        node.sync(Epoch(e)).await.unwrap();
    }
    node.compact().await.unwrap();
    assert!(!bucket.list("compaction/task/").await.unwrap().is_empty());
    let lease = Duration::from_millis(600);
    let slow: Arc<dyn ObjectStore> = Arc::new(SlowSstReads(Arc::clone(&bucket)));
    let cache = CacheOptions::default();
    let holder = RemoteCompactor::new(slow, &cache, "slow", lease)
        .await
        .unwrap();
    let other = RemoteCompactor::new(Arc::clone(&bucket), &cache, "other", lease)
        .await
        .unwrap();
    let running = tokio::spawn(async move { holder.run_once().await.unwrap() });
    let started = Instant::now();
    while bucket.list("compaction/claim/").await.unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "no claim");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut tries = 0;
    while !running.is_finished() {
        assert_eq!(
            other.run_once().await.unwrap(),
            None,
            "the task was taken over"
        );
        tries += 1;
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    assert!(running.await.unwrap().is_some());
    assert!(
        started.elapsed() > lease * 2 && tries > 5,
        "the task outlived its lease ({:?}, {tries} tries)",
        started.elapsed()
    );
    assert!(node.compact().await.unwrap(), "the result was applied");
    check_reads(&node, &model, Epoch(4)).await;
    node.close().await;
}
