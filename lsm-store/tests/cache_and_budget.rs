//! The disk tier of the block cache serves reads, and the write budget holds: writers wait
//! until a sync frees sealed data (or the writer discards its unsealed epochs), and an
//! unsealed epoch bigger than the buffer spills to SSTs that commit with it.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_epoch_bigger_than_the_write_buffer_spills_and_commits_whole() {
    let objects = MemoryObjectStore::new();
    let mut options = small_options();
    options.write_buffer_bytes = 8 << 10;
    let store = LsmStore::open(Arc::new(objects.clone()), options.clone())
        .await
        .unwrap();
    store.ingest(Epoch(1), batch(0, 50, 10)).await.unwrap();
    store.seal(Epoch(1)).unwrap();
    store.sync_epoch(Epoch(1)).await.unwrap();
    // Epoch 2 writes every key many times over (~70 KiB in 2 KiB batches), deleting some
    // keys and putting others back, while the buffer holds 8 KiB.
    let mut expected: Vec<Option<Bytes>> =
        (0..50).map(|k| Some(Bytes::from(vec![k; 10]))).collect();
    for round in 0..40u8 {
        let writes: Vec<(Bytes, Value)> = (0..50u8)
            .filter(|k| (k + round) % 3 == 0)
            .map(|k| {
                let value = if (k + round) % 2 == 0 {
                    Value::Delete
                } else {
                    Value::Put(Bytes::from(vec![round; 60]))
                };
                (key(k), value)
            })
            .collect();
        for (k, v) in &writes {
            expected[usize::from(k[k.len() - 1] + 4 * k[k.len() - 2])] = v.as_put().cloned();
        }
        store.ingest(Epoch(2), writes).await.unwrap();
        assert!(
            store.stats().write_buffer_bytes <= 16 << 10,
            "the buffer grew to {} bytes",
            store.stats().write_buffer_bytes
        );
        for k in (0..50u8).step_by(7) {
            let got = store.get_value(&key(k), Epoch(2)).await.unwrap();
            assert_eq!(got, expected[usize::from(k)], "key {k} in round {round}");
        }
    }
    assert!(store.stats().spills >= 4, "{} spills", store.stats().spills);
    let check = |store: LsmStore, expected: Vec<Option<Bytes>>| async move {
        for k in 0..50u8 {
            let got = store.get_value(&key(k), Epoch(2)).await.unwrap();
            assert_eq!(got, expected[usize::from(k)], "key {k}");
            // The epoch before still reads as it was (until a compaction drops it).
            if store.version().safe_epoch <= 1 {
                let before = store.get_value(&key(k), Epoch(1)).await.unwrap();
                assert_eq!(before, Some(Bytes::from(vec![k; 10])));
            }
        }
        let live: Vec<Bytes> = common::collect(
            &store,
            (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
            Epoch(2),
            epoch_mvcc::Direction::Forward,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
        let wanted: Vec<Bytes> = expected.iter().flatten().cloned().collect();
        assert_eq!(live, wanted);
    };
    check(store.clone(), expected.clone()).await;
    store.seal(Epoch(2)).unwrap();
    store.sync_epoch(Epoch(2)).await.unwrap();
    assert!(store.version().l0.len() > 2, "spills commit as sub-levels");
    assert_eq!(store.stats().write_buffer_bytes, 0);
    check(store.clone(), expected.clone()).await;
    store.close().await;
    let reopened = LsmStore::open(Arc::new(objects), options).await.unwrap();
    check(reopened.clone(), expected.clone()).await;
    reopened.compact_until_settled().await.unwrap();
    check(reopened, expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spills_of_an_uncommitted_epoch_are_lost_with_the_process_and_collected() {
    let objects = MemoryObjectStore::new();
    let mut options = small_options();
    options.write_buffer_bytes = 4 << 10;
    let store = LsmStore::open(Arc::new(objects.clone()), options.clone())
        .await
        .unwrap();
    store.ingest(Epoch(1), batch(0, 20, 10)).await.unwrap();
    store.seal(Epoch(1)).unwrap();
    store.sync_epoch(Epoch(1)).await.unwrap();
    for round in 0..20u8 {
        store
            .ingest(Epoch(2), batch(20 + round, 21 + round, 2000))
            .await
            .unwrap();
    }
    assert!(store.stats().spills > 0);
    let ssts = |objects: MemoryObjectStore| async move {
        lsm_store::object_store::ObjectStore::list(&objects, "sst/")
            .await
            .unwrap()
            .len()
    };
    let uploaded = ssts(objects.clone()).await;
    assert!(uploaded > store.version().ssts().count());
    // Nothing collects the spilled SSTs while their epoch may still commit.
    store.collect_garbage().await.unwrap();
    assert_eq!(ssts(objects.clone()).await, uploaded);

    // The process dies before epoch 2 commits; a new writer takes over.
    drop(store);
    let reopened = LsmStore::open(Arc::new(objects.clone()), options)
        .await
        .unwrap();
    assert_eq!(reopened.version().committed_epoch(), Epoch(1));
    for k in 20..40u8 {
        assert_eq!(reopened.get_value(&key(k), Epoch(3)).await.unwrap(), None);
    }
    reopened.collect_garbage().await.unwrap();
    reopened.collect_garbage().await.unwrap();
    assert_eq!(ssts(objects).await, reopened.version().ssts().count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discarding_an_unsealed_epoch_drops_its_spills() {
    let mut options = small_options();
    options.write_buffer_bytes = 4 << 10;
    let store = LsmStore::open(Arc::new(MemoryObjectStore::new()), options)
        .await
        .unwrap();
    store.ingest(Epoch(1), batch(0, 10, 10)).await.unwrap();
    store.seal(Epoch(1)).unwrap();
    store.sync_epoch(Epoch(1)).await.unwrap();
    for round in 0..10u8 {
        store
            .ingest(Epoch(2), batch(0, 10, 300 + usize::from(round)))
            .await
            .unwrap();
    }
    assert!(store.stats().spills > 0);
    assert_eq!(
        store.get_value(&key(3), Epoch(2)).await.unwrap(),
        Some(Bytes::from(vec![3; 309]))
    );
    store.discard_unsealed();
    assert_eq!(store.stats().write_buffer_bytes, 0);
    assert_eq!(
        store.get_value(&key(3), Epoch(3)).await.unwrap(),
        Some(Bytes::from(vec![3; 10]))
    );
    store.ingest(Epoch(3), batch(5, 6, 4)).await.unwrap();
    store.seal(Epoch(3)).unwrap();
    store.sync_epoch(Epoch(3)).await.unwrap();
    assert_eq!(
        store.get_value(&key(3), Epoch(3)).await.unwrap(),
        Some(Bytes::from(vec![3; 10]))
    );
    assert_eq!(
        store.get_value(&key(5), Epoch(3)).await.unwrap(),
        Some(Bytes::from(vec![5; 4]))
    );
}
