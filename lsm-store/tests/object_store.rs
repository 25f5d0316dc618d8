//! Every object store backend behaves the same, the S3 one against a real S3-compatible
//! server on loopback; a second writer on the same bucket fences the first.

mod common;

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use common::{Model, check_object_store, collect, s3_bucket, s3_server, small_options, workload};
use epoch_mvcc::{Direction, Epoch, Value};
use lsm_store::object_store::{LocalObjectStore, MemoryObjectStore, ObjectError, ObjectStore};
use lsm_store::{Error, LsmStore};

#[tokio::test]
async fn memory_backend() {
    check_object_store(&MemoryObjectStore::new()).await;
}

#[tokio::test]
async fn local_backend() {
    let dir = tempfile::tempdir().unwrap();
    check_object_store(&LocalObjectStore::open(dir.path()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend() {
    let server = s3_server();
    let store = s3_bucket(&server, "conformance", "some/prefix").await;
    check_object_store(&store).await;
    // Large objects go up as multipart uploads, create-only included.
    let big = Bytes::from(
        (0..20 << 20)
            .map(|i: u32| (i % 251) as u8)
            .collect::<Vec<_>>(),
    );
    store.put_if_absent("large/one", big.clone()).await.unwrap();
    assert!(matches!(
        store.put_if_absent("large/one", big.clone()).await,
        Err(ObjectError::AlreadyExists { .. })
    ));
    assert_eq!(store.get("large/one").await.unwrap(), big);
    let mut up = store.upload("large/streamed").await.unwrap();
    for chunk in big.chunks(3 << 20) {
        up.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    up.finish().await.unwrap();
    assert_eq!(
        store
            .get_range("large/streamed", 9 << 20..(9 << 20) + 10)
            .await
            .unwrap(),
        big.slice(9 << 20..(9 << 20) + 10)
    );
}

/// The store through `object_store_from_url("s3://...")`, configured only by the `AWS_*`
/// environment the test script exports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_from_environment() {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must export AWS_ENDPOINT_URL for this test"
        );
        eprintln!("AWS_ENDPOINT_URL is not set; run the test script to cover the environment path");
        return;
    }
    let server = s3_server();
    s3_bucket(&server, "from-env", "").await;
    let store = lsm_store::object_store::object_store_from_url("s3://from-env/p")
        .await
        .unwrap();
    check_object_store(store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_on_s3_survives_restart() {
    let server = s3_server();
    let bucket: Arc<dyn ObjectStore> = Arc::new(s3_bucket(&server, "store", "node-1").await);
    let store = LsmStore::open(Arc::clone(&bucket), small_options())
        .await
        .unwrap();
    let (mut model, mut synced) = (Model::default(), Epoch(0));
    workload(&store, &mut model, &mut synced).await.unwrap();
    assert!(store.stats().compactions > 0);
    store.close().await;
    let reopened = LsmStore::open(bucket, small_options()).await.unwrap();
    let all = (Bound::<Bytes>::Unbounded, Bound::<Bytes>::Unbounded);
    let got = collect(&reopened, all.clone(), synced, Direction::Forward)
        .await
        .unwrap();
    assert_eq!(got, model.scan(&all, synced, Direction::Forward));
    assert!(reopened.stats().object_store.requests() > 0);
}

async fn second_writer_fences_the_first(bucket: Arc<dyn ObjectStore>) {
    let first = LsmStore::open(Arc::clone(&bucket), small_options())
        .await
        .unwrap();
    let put =
        |v: &'static str| vec![(common::key(1), Value::Put(Bytes::from_static(v.as_bytes())))];
    first.ingest(Epoch(1), put("one")).await.unwrap();
    first.seal(Epoch(1)).unwrap();
    first.sync_epoch(Epoch(1)).await.unwrap();

    let second = LsmStore::open(Arc::clone(&bucket), small_options())
        .await
        .unwrap();
    first.ingest(Epoch(2), put("stale")).await.unwrap();
    first.seal(Epoch(2)).unwrap();
    assert!(matches!(
        first.sync_epoch(Epoch(2)).await,
        Err(Error::Fenced(_))
    ));
    assert!(matches!(
        first.ingest(Epoch(3), put("x")).await,
        Err(Error::Fenced(_))
    ));
    assert_eq!(
        first.collect_garbage().await.unwrap(),
        lsm_store::GcReport::default()
    );

    assert_eq!(
        second.get_value(&common::key(1), Epoch(1)).await.unwrap(),
        Some(Bytes::from_static(b"one"))
    );
    second.ingest(Epoch(2), put("two")).await.unwrap();
    second.seal(Epoch(2)).unwrap();
    second.sync_epoch(Epoch(2)).await.unwrap();
    assert_eq!(
        second.get_value(&common::key(1), Epoch(2)).await.unwrap(),
        Some(Bytes::from_static(b"two"))
    );
}

#[tokio::test]
async fn fencing_on_memory() {
    second_writer_fences_the_first(Arc::new(MemoryObjectStore::new())).await;
}

#[tokio::test]
async fn fencing_on_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    second_writer_fences_the_first(Arc::new(LocalObjectStore::open(dir.path()).unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_on_s3() {
    let server = s3_server();
    second_writer_fences_the_first(Arc::new(s3_bucket(&server, "fencing", "").await)).await;
}
