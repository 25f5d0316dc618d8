//! A read-only follower beside the writer on one bucket: it sees exactly the committed epochs,
//! keeps serving a pinned older epoch correctly after the writer compacted the versions it
//! read, refuses writes, and the writer's garbage collection waits the grace period after an
//! SST left the tree before deleting it.

mod common;

use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Model, collect, key, small_options};
use epoch_mvcc::{Direction, Epoch, StateStore, Value};
use lsm_store::LsmStore;
use lsm_store::object_store::{MemoryObjectStore, ObjectStore};

async fn write_epoch(writer: &LsmStore, model: &mut Model, epoch: Epoch, round: u8) {
    let mut batch = Vec::new();
    for k in 0..24u8 {
        let value = (k % 5 != round % 5).then(|| Bytes::from(format!("{k}@{round}")));
        model.write(epoch, key(k), value.clone());
        batch.push((key(k), value.map_or(Value::Delete, Value::Put)));
    }
    writer.ingest(epoch, batch).await.unwrap();
    writer.seal(epoch).unwrap();
    writer.sync(epoch).await.unwrap();
}

#[tokio::test]
async fn a_follower_reads_committed_epochs_and_keeps_pinned_ones() {
    let objects: Arc<dyn ObjectStore> = Arc::new(MemoryObjectStore::new());
    let writer = LsmStore::open(Arc::clone(&objects), small_options())
        .await
        .unwrap();
    let follower = LsmStore::open_follower(Arc::clone(&objects), small_options())
        .await
        .unwrap();
    assert!(follower.is_follower());
    let all = (Bound::<Bytes>::Unbounded, Bound::<Bytes>::Unbounded);
    let mut model = Model::default();

    write_epoch(&writer, &mut model, Epoch(10), 0).await;
    assert!(follower.refresh().await.unwrap());
    assert!(!follower.refresh().await.unwrap(), "nothing new committed");
    let pinned = follower.pin_snapshot();
    assert_eq!(pinned.epoch(), Epoch(10));

    // The writer moves on and compacts everything the follower's version referenced.
    for round in 1..6u8 {
        write_epoch(&writer, &mut model, Epoch(10 + u64::from(round)), round).await;
    }
    writer.compact_until_settled().await.unwrap();
    assert!(follower.refresh().await.unwrap());
    assert_eq!(follower.committed_epoch(), Epoch(15));
    assert!(
        follower.version().safe_epoch > 10,
        "the writer compacted past the pinned epoch"
    );

    // The pinned epoch still reads exactly what was committed at it; the newest too.
    for epoch in [Epoch(10), Epoch(15)] {
        let got = collect(&follower, all.clone(), epoch, Direction::Forward)
            .await
            .unwrap();
        assert_eq!(
            got,
            model.scan(&all, epoch, Direction::Forward),
            "{epoch:?}"
        );
    }
    drop(pinned);

    // A follower never writes.
    let write = follower
        .ingest(
            Epoch(16),
            vec![(key(1), Value::Put(Bytes::from_static(b"x")))],
        )
        .await;
    assert!(write.is_err());
    assert!(follower.refresh().await.is_ok());
    assert!(writer.refresh().await.is_err(), "a writer does not follow");
    writer.close().await;
    follower.close().await;
}

#[tokio::test]
async fn garbage_waits_the_grace_period_after_an_sst_left_the_tree() {
    let objects = MemoryObjectStore::new();
    let mut options = small_options();
    options.gc.grace_period = Duration::from_millis(300);
    let writer = LsmStore::open(Arc::new(objects.clone()), options)
        .await
        .unwrap();
    let mut model = Model::default();
    for round in 0..4u8 {
        write_epoch(&writer, &mut model, Epoch(1 + u64::from(round)), round).await;
    }
    // Every SST is older than the grace period before any leaves the tree.
    tokio::time::sleep(Duration::from_millis(400)).await;
    writer.compact_until_settled().await.unwrap();
    let ssts = || async { objects.list("sst/").await.unwrap().len() };
    let before = ssts().await;
    let live = writer.version().sst_ids().len();
    assert!(before > live, "compaction left obsolete SSTs");
    // The first collection only notes what became unreferenced.
    assert_eq!(writer.collect_garbage().await.unwrap().deleted_ssts, 0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let report = writer.collect_garbage().await.unwrap();
    assert_eq!(report.deleted_ssts, before - live);
    assert_eq!(ssts().await, live);
    writer.close().await;
}
