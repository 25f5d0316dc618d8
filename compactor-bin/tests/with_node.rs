//! A node with `--compaction remote` and two compactor-bin processes on one local bucket:
//! the compactors keep L0 bounded under a write load, one of them killed midway, and every
//! row stays readable.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// node-bin, built beside this package's binary by the workspace build.
fn node_bin() -> PathBuf {
    let compactor = PathBuf::from(env!("CARGO_BIN_EXE_compactor-bin"));
    let node = compactor.with_file_name("node-bin");
    assert!(
        node.exists(),
        "build node-bin first (cargo build -p node-bin)"
    );
    node
}

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
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {response}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compactors_keep_l0_bounded_for_a_remote_compaction_node() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file://{}", dir.path().display());
    let (port, metrics_port) = (free_port(), free_port());
    let _node = Process(
        Command::new(node_bin())
            .args(["--object-store", &store, "--compaction", "remote"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .args(["--barrier-interval-ms", "50"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node-bin"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "node did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut first = Some(compactor(&store, "first"));
    let _second = compactor(&store, "second");
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=root dbname=dev"),
        NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
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
