//! The disk tier of the block cache serves reads, and the write budget holds writers back
//! until a sync frees sealed data (or the writer discards its unsealed epochs).

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{key, small_options};
use epoch_mvcc::{Epoch, Value};
use lsm_store::object_store::MemoryObjectStore;
use lsm_store::{CacheOptions, LsmStore};

fn batch(from: u8, to: u8, len: usize) -> Vec<(Bytes, Value)> {
    (from..to)
        .map(|k| (key(k), Value::Put(Bytes::from(vec![k; len]))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_cache_serves_blocks_evicted_from_memory() {
    let cache_dir = tempfile::tempdir().unwrap();
    let mut options = small_options();
    options.cache = CacheOptions {
        block_cache_bytes: 256,
        meta_cache_bytes: 1 << 20,
        disk_cache_dir: Some(cache_dir.path().to_path_buf()),
        disk_cache_bytes: 64 << 20,
    };
    let store = LsmStore::open(Arc::new(MemoryObjectStore::new()), options)
        .await
        .unwrap();
    store.ingest(Epoch(1), batch(0, 200, 40)).await.unwrap();
    store.seal(Epoch(1)).unwrap();
    store.sync_epoch(Epoch(1)).await.unwrap();
    let mut disk_hits = 0;
    for _ in 0..50 {
        for k in 0..200u8 {
            let v = store.get_value(&key(k), Epoch(1)).await.unwrap();
            assert_eq!(v, Some(Bytes::from(vec![k; 40])));
        }
        disk_hits = store.stats().block_cache.disk_hits;
        if disk_hits > 0 {
            break;
        }
        // Evicted blocks reach the disk tier through foyer's background flushers.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(disk_hits > 0, "no read was served by the disk cache");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_wait_for_sync_when_the_buffer_is_full() {
    let mut options = small_options();
    options.write_buffer_bytes = 4 << 10;
    let store = LsmStore::open(Arc::new(MemoryObjectStore::new()), options)
        .await
        .unwrap();
    // One epoch may exceed the budget: nothing sealed could be freed, so it must not block.
    store.ingest(Epoch(1), batch(0, 100, 100)).await.unwrap();
    store.seal(Epoch(1)).unwrap();
    assert!(store.stats().write_buffer_bytes > 4 << 10);

    let writer = {
        let store = store.clone();
        tokio::spawn(async move { store.ingest(Epoch(2), batch(100, 110, 100)).await })
    };
    let waited = tokio::time::timeout(Duration::from_millis(300), async {
        while !writer.is_finished() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        waited.is_err(),
        "the writer went ahead although the buffer was over budget"
    );
    store.sync_epoch(Epoch(1)).await.unwrap();
    writer.await.unwrap().unwrap();
    store.seal(Epoch(2)).unwrap();
    store.sync_epoch(Epoch(2)).await.unwrap();
    assert_eq!(
        store.get_value(&key(105), Epoch(2)).await.unwrap(),
        Some(Bytes::from(vec![105; 100]))
    );
    assert_eq!(store.stats().write_buffer_bytes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discarding_unsealed_epochs_keeps_sealed_data_and_frees_the_buffer() {
    let store = LsmStore::open(Arc::new(MemoryObjectStore::new()), small_options())
        .await
        .unwrap();
    store.ingest(Epoch(1), batch(0, 10, 8)).await.unwrap();
    store.seal(Epoch(1)).unwrap();
    // Epochs 2 and 3 are written but never sealed, then abandoned.
    store.ingest(Epoch(2), batch(5, 20, 9)).await.unwrap();
    store.ingest(Epoch(3), batch(30, 40, 9)).await.unwrap();
    let sealed_bytes = {
        let all = store.stats().write_buffer_bytes;
        store.discard_unsealed();
        let left = store.stats().write_buffer_bytes;
        assert!(left < all);
        left
    };
    for epoch in [Epoch(1), Epoch(3)] {
        assert_eq!(
            store.get_value(&key(5), epoch).await.unwrap(),
            Some(Bytes::from(vec![5; 8]))
        );
        assert_eq!(store.get_value(&key(15), epoch).await.unwrap(), None);
        assert_eq!(store.get_value(&key(35), epoch).await.unwrap(), None);
    }
    // Writing resumes at a newer epoch and commits with the sealed one.
    store.ingest(Epoch(4), batch(35, 36, 7)).await.unwrap();
    store.seal(Epoch(4)).unwrap();
    store.sync_epoch(Epoch(4)).await.unwrap();
    assert_eq!(
        store.get_value(&key(35), Epoch(4)).await.unwrap(),
        Some(Bytes::from(vec![35; 7]))
    );
    assert_eq!(store.get_value(&key(36), Epoch(4)).await.unwrap(), None);
    assert!(sealed_bytes > 0);
    assert_eq!(store.stats().write_buffer_bytes, 0);
}
