//! A node with `--compaction remote` and two compactor-bin processes on one bucket (the test
//! script's S3-compatible server, else a local directory):
//! the compactors keep L0 bounded under a write load, one of them killed midway, and every
//! row stays readable.

#[path = "../../node-bin/tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{NodeProcess, Process, free_port, http_get, metric_value, test_object_store};

fn compactor(store: &str, name: &str) -> Process {
    Process(
        Command::new(env!("CARGO_BIN_EXE_compactor-bin"))
            .args(["--object-store", store, "--name", name])
            .args(["--lease-secs", "2", "--poll-interval-ms", "100"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start compactor-bin"),
    )
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
    let mut first = Some(compactor(&store, "first"));
    let _second = compactor(&store, "second");
    let client = node.client().await;
    client
        .batch_execute("CREATE TABLE w (id int PRIMARY KEY, v varchar)")
        .await
        .unwrap();
    // Every insert commits its own epoch: one L0 sub-level each, far more than the trigger.
    let mut max_l0: f64 = 0.0;
    for i in 0..120 {
        client
            .execute(
                "INSERT INTO w VALUES ($1, $2)",
                &[&(i % 50), &format!("value {i}")],
            )
            .await
            .unwrap();
        if i == 40 {
            first.take(); // killed
        }
        max_l0 = max_l0.max(metric(metrics_port, "streamdb_lsm_l0_sub_levels"));
    }
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
        "L0 reached {max_l0} sub-levels over 120 commits"
    );
    let rows = client
        .query("SELECT count(*), max(v) FROM w", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 50);
    assert_eq!(rows[0].get::<_, String>(1), "value 99");
}
