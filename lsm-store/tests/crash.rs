//! Crash tests: the process "dies" after every possible number of object store mutations
//! (inside flush uploads, manifest commits, compaction and garbage collection); a restart on
//! what reached the bucket must hold exactly the acknowledged commits, and garbage collection
//! must then leave nothing unreferenced behind.

mod common;

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use common::{Model, collect, key, small_options, workload};
use epoch_mvcc::{Direction, Epoch, StateStore, Value};
use lsm_store::LsmStore;
use lsm_store::object_store::{
    FaultInjectingObjectStore, FaultPlan, MemoryObjectStore, ObjectStore,
};
use lsm_store::version::sst_id_from_path;

async fn check_recovered(objects: &MemoryObjectStore, model: &Model, synced: Epoch) {
    let store = LsmStore::open(Arc::new(objects.clone()), small_options())
        .await
        .unwrap();
    let all = (Bound::<Bytes>::Unbounded, Bound::<Bytes>::Unbounded);
    let got = collect(
        &store,
        all.clone(),
        Epoch(synced.0.max(store.committed_epoch().0)),
        Direction::Forward,
    )
    .await
    .unwrap();
    assert_eq!(
        got,
        model.scan(&all, synced, Direction::Forward),
        "recovered state differs from acknowledged commits"
    );
    // The recovered store keeps working.
    let epoch = Epoch(synced.0.max(store.committed_epoch().0) + 1);
    store
        .ingest(
            epoch,
            vec![(key(1), Value::Put(Bytes::from_static(b"after")))],
        )
        .await
        .unwrap();
    store.seal(epoch).unwrap();
    store.sync(epoch).await.unwrap();
    assert_eq!(
        store.get_value(&key(1), epoch).await.unwrap(),
        Some(Bytes::from_static(b"after"))
    );
    assert_collects_every_orphan(&store, objects).await;
    store.close().await;
}

/// Garbage collection leaves exactly the SSTs the current version references.
async fn assert_collects_every_orphan(store: &LsmStore, objects: &MemoryObjectStore) {
    store.collect_garbage().await.unwrap();
    let live = store.version().sst_ids();
    let listed: HashSet<u64> = objects
        .list("sst/")
        .await
        .unwrap()
        .iter()
        .filter_map(|m| sst_id_from_path(&m.path))
        .collect();
    assert_eq!(
        listed, live,
        "unreferenced SSTs left after garbage collection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_mutation_loses_nothing_acknowledged() {
    // Count the mutations of a whole run first.
    let objects = MemoryObjectStore::new();
    let faulty = Arc::new(FaultInjectingObjectStore::new(Arc::new(objects.clone())));
    let store = LsmStore::open(faulty.clone(), small_options())
        .await
        .unwrap();
    let (mut model, mut synced) = (Model::default(), Epoch(0));
    workload(&store, &mut model, &mut synced).await.unwrap();
    store.close().await;
    let total = objects.list("").await.unwrap().len() as u64 * 3;

    let mut crashed_runs = 0;
    for crash_after in 0..total {
        let objects = MemoryObjectStore::new();
        let faulty = Arc::new(FaultInjectingObjectStore::new(Arc::new(objects.clone())));
        faulty.set_plan(FaultPlan {
            crash_after_mutations: Some(crash_after),
            ..FaultPlan::default()
        });
        let (mut model, mut synced) = (Model::default(), Epoch(0));
        match LsmStore::open(faulty.clone(), small_options()).await {
            Ok(store) => {
                let outcome = workload(&store, &mut model, &mut synced).await;
                assert_eq!(
                    outcome.is_err(),
                    faulty.crashed(),
                    "errors only from the injected crash: {outcome:?}"
                );
                store.close().await;
            }
            Err(_) => assert!(faulty.crashed()),
        }
        crashed_runs += u64::from(faulty.crashed());
        check_recovered(&objects, &model, synced).await;
    }
    assert!(
        crashed_runs > 20,
        "the workload must be cut at many points ({crashed_runs})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_flush_leaves_garbage_that_the_same_process_collects() {
    let objects = MemoryObjectStore::new();
    let faulty = Arc::new(FaultInjectingObjectStore::new(Arc::new(objects.clone())));
    let store = LsmStore::open(faulty.clone(), small_options())
        .await
        .unwrap();
    let batch: Vec<_> = (0..40u8)
        .map(|k| (key(k), Value::Put(Bytes::from(vec![k; 30]))))
        .collect();
    store.ingest(Epoch(1), batch).await.unwrap();
    store.seal(Epoch(1)).unwrap();
    // The first SST upload goes through, the rest of the flush fails.
    faulty.set_plan(FaultPlan {
        crash_after_mutations: Some(1),
        ..FaultPlan::default()
    });
    assert!(store.sync_epoch(Epoch(1)).await.is_err());
    faulty.set_plan(FaultPlan::default());
    store.sync_epoch(Epoch(1)).await.unwrap();
    assert_collects_every_orphan(&store, &objects).await;
    assert_eq!(
        store.get_value(&key(3), Epoch(1)).await.unwrap(),
        Some(Bytes::from(vec![3; 30]))
    );
}
