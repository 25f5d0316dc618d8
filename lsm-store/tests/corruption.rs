//! Corrupt, truncated and missing objects are reported as typed errors naming the object,
//! never read as data.

mod common;

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use common::{collect, key, small_options};
use epoch_mvcc::{Direction, Epoch, Value};
use lsm_store::object_store::{MemoryObjectStore, ObjectStore};
use lsm_store::version::sst_path;
use lsm_store::{Error, LsmStore};

/// A store with one SST of several blocks; returns its object path and layout.
async fn one_sst() -> (MemoryObjectStore, String, u64, u64) {
    let objects = MemoryObjectStore::new();
    let store = LsmStore::open(Arc::new(objects.clone()), small_options())
        .await
        .unwrap();
    let batch = (0..30u8)
        .map(|k| (key(k), Value::Put(Bytes::from(vec![k; 30]))))
        .collect();
    store.ingest(Epoch(1), batch).await.unwrap();
    store.seal(Epoch(1)).unwrap();
    store.sync_epoch(Epoch(1)).await.unwrap();
    let version = store.version();
    let sst = &version.l0[0].ssts[0];
    let out = (
        objects.clone(),
        sst_path(sst.id),
        sst.tail_offset,
        sst.file_size,
    );
    store.close().await;
    out
}

async fn read_all(objects: &MemoryObjectStore) -> Result<Vec<(Bytes, Bytes)>, Error> {
    let store = LsmStore::open(Arc::new(objects.clone()), small_options()).await?;
    for k in 0..30u8 {
        store.get_value(&key(k), Epoch(1)).await?;
    }
    collect(
        &store,
        (Bound::Unbounded, Bound::Unbounded),
        Epoch(1),
        Direction::Forward,
    )
    .await
}

fn assert_corruption(result: Result<Vec<(Bytes, Bytes)>, Error>, path: &str) {
    match result {
        Err(Error::Corruption { object, .. }) => assert_eq!(object, path),
        other => panic!("expected corruption of {path}, got {other:?}"),
    }
}

async fn flip_byte_at(objects: &MemoryObjectStore, path: &str, at: u64) {
    let mut data = objects.get(path).await.unwrap().to_vec();
    data[at as usize] ^= 0x40;
    objects.overwrite_raw(path, Bytes::from(data));
}

#[tokio::test]
async fn intact_store_reads_everything() {
    let (objects, ..) = one_sst().await;
    assert_eq!(read_all(&objects).await.unwrap().len(), 30);
}

#[tokio::test]
async fn flipped_byte_in_data_block() {
    let (objects, path, ..) = one_sst().await;
    flip_byte_at(&objects, &path, 10).await;
    assert_corruption(read_all(&objects).await, &path);
}

#[tokio::test]
async fn flipped_byte_in_index_filter_and_footer() {
    let (objects, path, tail, size) = one_sst().await;
    for at in [tail + 2, (tail + size) / 2, size - 30, size - 3] {
        let (objects, path) = {
            let fresh = MemoryObjectStore::new();
            for meta in objects.list("").await.unwrap() {
                fresh.overwrite_raw(&meta.path, objects.get(&meta.path).await.unwrap());
            }
            (fresh, path.clone())
        };
        flip_byte_at(&objects, &path, at).await;
        assert_corruption(read_all(&objects).await, &path);
    }
}

#[tokio::test]
async fn truncated_and_missing_objects() {
    let (objects, path, _, size) = one_sst().await;
    let whole = objects.get(&path).await.unwrap();
    objects.overwrite_raw(&path, whole.slice(..(size as usize - 10)));
    assert_corruption(read_all(&objects).await, &path);
    objects.delete(&path).await.unwrap();
    assert_corruption(read_all(&objects).await, &path);
}

#[tokio::test]
async fn corrupt_manifest_is_an_error_not_an_empty_store() {
    let (objects, ..) = one_sst().await;
    let newest = objects.list("manifest/").await.unwrap().pop().unwrap().path;
    flip_byte_at(&objects, &newest, 20).await;
    match LsmStore::open(Arc::new(objects.clone()), small_options()).await {
        Err(Error::Corruption { object, .. }) => assert_eq!(object, newest),
        other => panic!("expected manifest corruption, got {other:?}"),
    }
}
