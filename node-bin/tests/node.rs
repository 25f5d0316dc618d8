//! The node binary as a user runs it: psql against it, and kill -9 in the middle of a write
//! load, after which every acknowledged write is still there and every materialized view is
//! consistent with its table and keeps updating.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{NodeProcess, free_port, http_get, metric_value};
use tokio_postgres::Client;

/// A node on the local directory `data_dir`, with `extra` options.
fn start_node(data_dir: &std::path::Path, extra: &[&str]) -> NodeProcess {
    let dir = data_dir.to_str().unwrap();
    let mut args = vec!["--data-dir", dir, "--barrier-interval-ms", "200"];
    args.extend_from_slice(extra);
    NodeProcess::start(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), &[]);
    let client = node.client().await;
    client
        .batch_execute(
            "CREATE TABLE acked (id int PRIMARY KEY, v varchar); \
             CREATE MATERIALIZED VIEW acked_total AS SELECT count(*) AS n, sum(id) AS s FROM acked; \
             CREATE MATERIALIZED VIEW acked_even AS SELECT id, v FROM acked WHERE id % 2 = 0",
        )
        .await
        .unwrap();
    // A writer inserts rows one statement at a time; we remember which were acknowledged.
    let writer = tokio::spawn(async move {
        let mut acknowledged = Vec::new();
        for id in 0..10_000i32 {
            match client
                .execute(
                    "INSERT INTO acked VALUES ($1, $2)",
                    &[&id, &format!("row {id}")],
                )
                .await
            {
                Ok(1) => acknowledged.push(id),
                _ => break,
            }
        }
        acknowledged
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    node.kill_9();
    let acknowledged = writer.await.unwrap();
    assert!(
        acknowledged.len() > 5,
        "the load must have run before the kill"
    );

    let node = start_node(dir.path(), &[]);
    let client = node.client().await;
    let rows = client
        .query("SELECT id, v FROM acked ORDER BY id", &[])
        .await
        .unwrap();
    let present: std::collections::HashSet<i32> = rows.iter().map(|r| r.get::<_, i32>(0)).collect();
    for id in &acknowledged {
        assert!(
            present.contains(id),
            "acknowledged row {id} lost after kill -9"
        );
    }
    for row in &rows {
        let id: i32 = row.get(0);
        assert_eq!(row.get::<_, &str>(1), format!("row {id}"));
    }
    views_match_their_queries(&client).await;
    // Still writable after recovery, and the views keep up.
    client
        .execute("INSERT INTO acked VALUES (-2, 'after')", &[])
        .await
        .unwrap();
    assert_eq!(
        client
            .query("SELECT v FROM acked WHERE id = -2", &[])
            .await
            .unwrap()
            .len(),
        1
    );
    views_match_their_queries(&client).await;
}

async fn views_match_their_queries(client: &Client) {
    let total = client
        .query_one("SELECT n, s FROM acked_total", &[])
        .await
        .unwrap();
    let expected = client
        .query_one("SELECT count(*), sum(id) FROM acked", &[])
        .await
        .unwrap();
    assert_eq!(total.get::<_, i64>(0), expected.get::<_, i64>(0));
    assert_eq!(
        total.get::<_, Option<i64>>(1),
        expected.get::<_, Option<i64>>(1)
    );
    let ids =
        |rows: Vec<tokio_postgres::Row>| -> Vec<i32> { rows.iter().map(|r| r.get(0)).collect() };
    let even = client
        .query("SELECT id FROM acked_even ORDER BY id", &[])
        .await
        .unwrap();
    let expected = client
        .query("SELECT id FROM acked WHERE id % 2 = 0 ORDER BY id", &[])
        .await
        .unwrap();
    assert_eq!(ids(even), ids(expected));
}

/// Whether psql is installed (CI must have it; elsewhere its tests are skipped).
fn has_psql() -> bool {
    if Command::new("psql").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install psql (postgresql-client)"
        );
        eprintln!("psql is not installed; skipping");
        return false;
    }
    true
}

/// Runs `script` through psql (with `extra` options) against the node on `port`; returns
/// its stdout and stderr.
fn run_psql(port: u16, extra: &[&str], script: &str) -> (String, String) {
    let output = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "root", "-d", "dev", "-X"])
        .args(extra)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(script.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn psql_works_against_the_node() {
    if !has_psql() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), &[]);
    let script = "CREATE TABLE p (id int PRIMARY KEY, name varchar);\n\
                  INSERT INTO p VALUES (1, 'one'), (2, 'two');\n\
                  SELECT name FROM p WHERE id = 2;\n\
                  SELECT 1/0;\n\
                  SELECT count(*) FROM p;\n\
                  COPY p FROM STDIN;\n\
                  3\tthree\n\
                  4\tfour\n\
                  \\.\n\
                  SELECT name FROM p WHERE id = 4;\n\
                  CREATE MATERIALIZED VIEW pm AS SELECT count(*) AS n FROM p;\n\
                  SELECT n FROM pm;\n\
                  CREATE SOURCE s (v int) WITH (connector = 'datagen');\n\
                  DROP SOURCE s;\n\
                  \\dt\n\
                  \\dm\n";
    let (stdout, stderr) = run_psql(node.port, &["-A", "-t"], script);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        vec![
            "CREATE TABLE",
            "INSERT 0 2",
            "two",
            "2",
            "COPY 2",
            "four",
            "CREATE_MATERIALIZED_VIEW",
            "4",
            "CREATE SOURCE",
            "DROP SOURCE",
            "public|p|table|root",
            "public|pm|materialized view|root"
        ],
        "stderr: {stderr}"
    );
    assert!(
        stderr.to_lowercase().contains("division by zero"),
        "{stderr}"
    );
}

/// psql's describe commands run the catalog queries psql 15 sends (correlated subqueries,
/// arrays, regclass casts, `OPERATOR(pg_catalog.~)`, ...) and print what PostgreSQL would.
#[test]
fn psql_describes_tables_views_indexes_databases_roles_and_functions() {
    if !has_psql() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), &[]);
    let script = "CREATE TABLE p (id int PRIMARY KEY, name varchar, tags varchar[]);\n\
                  CREATE MATERIALIZED VIEW pm AS SELECT count(*) AS n FROM p;\n\
                  CREATE INDEX pi ON p(name);\n\
                  CREATE FUNCTION add1(x int) RETURNS int LANGUAGE SQL AS 'SELECT x + 1';\n\
                  \\d p\n\
                  \\d+ pm\n\
                  \\d pi\n\
                  \\l\n\
                  \\du\n\
                  \\df\n\
                  \\dn+\n\
                  \\dT\n";
    let (stdout, stderr) = run_psql(node.port, &["-A"], script);
    let lines: Vec<&str> = stdout.lines().collect();
    for expected in [
        "Table \"public.p\"",
        "id|integer||not null|",
        "name|character varying|||",
        "tags|character varying[]|||",
        "Indexes:",
        "    \"pi\" btree (name)",
        "Materialized view \"public.pm\"",
        "n|bigint||||plain|||",
        "View definition:",
        // The query only, as PostgreSQL's pg_get_viewdef gives it.
        "SELECT count(*) AS n FROM p;",
        "Index \"public.pi\"",
        "name|character varying|yes|name",
        "btree, for table \"public.p\"",
        "dev|root|UTF8|C|C||libc|",
        "root|Superuser, Create role, Create DB, Bypass RLS|{}",
        "public|add1|integer|x integer|func",
        "public|root||",
        "Schema|Name|Description",
    ] {
        assert!(
            lines.contains(&expected),
            "no line {expected:?} in:\n{stdout}\nstderr: {stderr}"
        );
    }
    assert!(stderr.is_empty(), "{stderr}");
}

/// `GET /metrics` on the metrics port: Prometheus text with checkpoint and storage metrics
/// that move as the node works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_in_prometheus_format() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let node = start_node(
        dir.path(),
        &["--metrics-listen", &format!("127.0.0.1:{metrics_port}")],
    );
    let c = node.client().await;
    c.batch_execute(
        "CREATE TABLE m (id int); CREATE MATERIALIZED VIEW mv AS SELECT id FROM m;
         INSERT INTO m VALUES (1), (2); FLUSH;",
    )
    .await
    .unwrap();
    let response = http_get(metrics_port, "/metrics");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    let value = |name: &str| metric_value(&response, name);
    assert!(value("streamdb_epochs_committed_total") >= 1.0);
    assert!(value("streamdb_barrier_latency_seconds_count") >= 1.0);
    assert!(value("streamdb_lsm_ingested_bytes_total") > 0.0);
    assert_eq!(value("streamdb_view_changes_total{view=\"mv\"}"), 2.0);
    assert!(value("streamdb_object_store_requests_total{op=\"put\"}") > 0.0);
    // The process's own allocator: a live heap, and at least that much resident.
    let allocated = value("streamdb_memory_allocated_bytes");
    assert!(allocated > 0.0);
    assert!(value("streamdb_memory_resident_bytes") >= allocated);
    assert!(response.contains("# TYPE streamdb_barrier_latency_seconds histogram"));
    assert!(http_get(metrics_port, "/other").starts_with("HTTP/1.1 404"));
}

#[test]
fn non_loopback_listen_requires_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_node-bin"))
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--listen",
            "0.0.0.0:0",
        ])
        .env_remove("STREAMDB_PASSWORD")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("requires a password"));
}

#[test]
fn psycopg_works_against_the_node() {
    let has_psycopg = Command::new("python3")
        .args(["-c", "import psycopg"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_psycopg {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install psycopg (psycopg[binary])"
        );
        eprintln!("psycopg is not installed; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), &[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/psycopg_client.py"
    );
    let output = Command::new("python3")
        .args([script, &node.port.to_string()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
