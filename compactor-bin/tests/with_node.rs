//! A node with `--compaction remote` and two compactor-bin processes on one bucket (the test
//! script's S3-compatible server, else a local directory):
//! the compactors keep L0 bounded under a write load, one of them killed midway, and every
//! row stays readable.

#[path = "../../node-bin/tests/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{NodeProcess, Process, free_port, http_get, metric_value, test_object_store};
use lsm_store::compaction::remote::Claim;
use lsm_store::object_store::{ObjectStore, object_store_from_url};
use lsm_store::version::sst_id_from_path;
use lsm_store::{LsmStore, LsmStoreOptions};

fn compactor(store: &str, name: &str) -> Process {
    Process(
        Command::new(env!("CARGO_BIN_EXE_compactor-bin"))
            .args(["--object-store", store, "--name", name])
            .args(["--lease-secs", "1", "--poll-interval-ms", "100"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start compactor-bin"),
    )
}

/// Whether compactor `name` holds a claim on a task that has no result yet: it is running it.
async fn runs_a_task(objects: &dyn ObjectStore, name: &str) -> bool {
    for claim in objects.list("compaction/claim/").await.unwrap() {
        let task = claim.path.split('/').nth(2).unwrap_or_default();
        if objects
            .head(&format!("compaction/result/{task}"))
            .await
            .is_ok()
        {
            continue;
        }
        if let Ok(data) = objects.get(&claim.path).await
            && serde_json::from_slice::<Claim>(&data).is_ok_and(|c| c.compactor == name)
        {
            return true;
        }
    }
    false
}

/// The value of metric `name` from the node's /metrics.
fn metric(port: u16, name: &str) -> f64 {
    metric_value(&http_get(port, "/metrics"), name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compactors_keep_l0_bounded_for_a_remote_compaction_node() {
    let dir = tempfile::tempdir().unwrap();
    let store = test_object_store(dir.path(), "compactors");
    let metrics_port = free_port();
    let node = NodeProcess::start(&[
        "--object-store",
        &store,
        "--compaction",
        "remote",
        "--metrics-listen",
        &format!("127.0.0.1:{metrics_port}"),
        "--barrier-interval-ms",
        "50",
    ]);
    let objects = object_store_from_url(&store).await.unwrap();
    let mut first = Some(compactor(&store, "first"));
    let second = compactor(&store, "second");
    let client = node.client().await;
    client
        .batch_execute("CREATE TABLE w (id int PRIMARY KEY, v varchar)")
        .await
        .unwrap();
    // Every insert commits its own epoch: one L0 sub-level each, far more than the trigger.
    // L0 depth while both compactors run; killing one mid-task stalls L0 compaction until
    // its claim expires, after which the other takes the task over.
    let mut max_l0: f64 = 0.0;
    for i in 0..120 {
        client
            .execute(
                "INSERT INTO w VALUES ($1, $2)",
                &[&(i % 50), &format!("value {i}")],
            )
            .await
            .unwrap();
        // From the 40th commit on, kill the first compactor once it is running a task (or at
        // the 100th, whatever it does).
        if i >= 40 && first.is_some() && (i == 100 || runs_a_task(objects.as_ref(), "first").await)
        {
            first.take();
        }
        if first.is_some() {
            max_l0 = max_l0.max(metric(metrics_port, "streamdb_lsm_l0_sub_levels"));
        }
    }
    assert!(first.is_none(), "the first compactor was killed");
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(metrics_port, "streamdb_lsm_l0_sub_levels") >= 4.0 {
        assert!(Instant::now() < deadline, "L0 was not compacted");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Results of compactors applied: bytes written come only from a task that merged SSTs.
    assert!(metric(metrics_port, "streamdb_compactions_total") >= 1.0);
    assert!(metric(metrics_port, "streamdb_compaction_written_bytes_total") > 0.0);
    assert!(
        max_l0 < 60.0,
        "L0 reached {max_l0} sub-levels with two compactors"
    );
    let rows = client
        .query("SELECT count(*), max(v) FROM w", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 50);
    assert_eq!(rows[0].get::<_, String>(1), "value 99");

    // Everything stops; a node opening the bucket afterwards retires the tasks left, and
    // garbage collection (past its grace period) leaves exactly the live SSTs.
    drop(second);
    node.kill_9();
    let mut options = LsmStoreOptions::default();
    options.compaction.remote = true;
    options.compaction.background = false;
    options.gc.background = false;
    options.gc.grace_period = Duration::ZERO;
    let reopened = LsmStore::open(Arc::clone(&objects), options).await.unwrap();
    reopened.collect_garbage().await.unwrap();
    let left: HashSet<u64> = objects
        .list("sst/")
        .await
        .unwrap()
        .iter()
        .filter_map(|m| sst_id_from_path(&m.path))
        .collect();
    assert_eq!(left, reopened.version().sst_ids(), "orphaned SSTs remain");
    assert!(objects.list("compaction/").await.unwrap().is_empty());
    reopened.close().await;
}
