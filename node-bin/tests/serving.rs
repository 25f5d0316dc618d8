//! A writer and a read-only serving node on one bucket (the S3-compatible server the test
//! script started, else a local directory): the serving node sees each committed epoch within
//! a bounded time, never half of one, follows DDL, and refuses writes and DDL.

mod common;

use std::time::{Duration, Instant};

use common::{NodeProcess, test_object_store};
use tokio_postgres::Client;

async fn start_node(store: &str, role: &str) -> (NodeProcess, Client) {
    let node = NodeProcess::start(&[
        "--object-store",
        store,
        "--role",
        role,
        "--barrier-interval-ms",
        "100",
    ]);
    let client = node.client().await;
    (node, client)
}

/// Waits (bounded) until `query` on `client` succeeds with a first value satisfying `done`.
async fn eventually(client: &Client, query: &str, done: impl Fn(i64) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if let Ok(rows) = client.query(query, &[]).await
            && let Some(v) = rows.first().and_then(|r| r.get::<_, Option<i64>>(0))
            && done(v)
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the serving node never answered {query} as expected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serving_node_follows_the_writer_on_one_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let store = test_object_store(dir.path(), "serving");
    let (_writer_process, writer) = start_node(&store, "writer").await;
    writer
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, batch int);
             CREATE MATERIALIZED VIEW c AS SELECT count(*) AS n FROM t;",
        )
        .await
        .unwrap();
    let (_serving_process, serving) = start_node(&store, "serving").await;
    eventually(&serving, "SELECT count(*) FROM t", |_| true).await;

    // Writes and DDL are refused with a clear error; the session stays usable.
    for statement in [
        "INSERT INTO t VALUES (0, 0)",
        "UPDATE t SET batch = 1",
        "CREATE TABLE u (a int)",
        "DROP MATERIALIZED VIEW c",
    ] {
        let err = serving.batch_execute(statement).await.unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some("25006"), "{statement}");
        assert!(
            err.as_db_error()
                .unwrap()
                .message()
                .contains("serving node"),
            "{err}"
        );
    }

    // Each INSERT is one epoch of ten rows; the serving node sees whole epochs only, with
    // the view consistent with its table.
    let writes = tokio::spawn(async move {
        for batch in 0..30 {
            let values: Vec<String> = (0..10)
                .map(|i| format!("({}, {batch})", batch * 10 + i))
                .collect();
            writer
                .batch_execute(&format!("INSERT INTO t VALUES {}", values.join(", ")))
                .await
                .unwrap();
        }
        writer
    });
    let mut observed = 0;
    while !writes.is_finished() {
        let row = serving
            .query_one("SELECT (SELECT count(*) FROM t), (SELECT n FROM c)", &[])
            .await
            .unwrap();
        let (rows, counted): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(rows % 10, 0, "half of an epoch is visible");
        assert_eq!(
            rows, counted,
            "the view and its table are at different epochs"
        );
        assert!(rows >= observed, "the serving node went back in time");
        observed = rows;
    }
    let writer = writes.await.unwrap();
    // Acknowledged on the writer, so visible on the serving node within a bounded time.
    eventually(&serving, "SELECT count(*) FROM t", |n| n == 300).await;

    // DDL on the writer reaches the serving node too.
    writer
        .batch_execute("CREATE MATERIALIZED VIEW top AS SELECT max(id) AS m FROM t")
        .await
        .unwrap();
    eventually(&serving, "SELECT m::bigint FROM top", |m| m == 299).await;
    writer
        .batch_execute("DELETE FROM t WHERE id >= 100")
        .await
        .unwrap();
    eventually(&serving, "SELECT n FROM c", |n| n == 100).await;
    eventually(&serving, "SELECT m::bigint FROM top", |m| m == 99).await;
}
