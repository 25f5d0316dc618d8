//! A writer and a read-only serving node on one bucket (the S3-compatible server the test
//! script started, else a local directory): the serving node sees each committed epoch within
//! a bounded time, never half of one, follows DDL, and refuses writes and DDL.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

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

async fn start_node(store: &str, role: &str) -> (Process, Client) {
    let port = free_port();
    let process = Process(
        Command::new(env!("CARGO_BIN_EXE_node-bin"))
            .args(["--object-store", store, "--role", role])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--barrier-interval-ms", "100"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node-bin"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the {role} node did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=root dbname=dev"),
        NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    (process, client)
}

/// A fresh bucket on the S3-compatible server at `AWS_ENDPOINT_URL` (the test script's
/// moto, which takes an unsigned `PUT /bucket`), as an `s3://` URL.
fn s3_bucket(endpoint: &str) -> String {
    let authority = endpoint
        .strip_prefix("http://")
        .expect("a plain-http test endpoint")
        .trim_end_matches('/');
    let bucket = format!("serving-{}", std::process::id());
    let mut s = std::net::TcpStream::connect(authority).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "creating bucket {bucket}: {response}"
    );
    format!("s3://{bucket}/db")
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
    let store = match std::env::var("AWS_ENDPOINT_URL") {
        Ok(endpoint) => s3_bucket(&endpoint),
        Err(_) => format!("file://{}", dir.path().display()),
    };
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
