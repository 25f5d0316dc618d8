//! The server through a real PostgreSQL driver (tokio-postgres): simple and extended protocol,
//! typed parameters, binary results, errors with SQLSTATEs, and durability across a restart.

use std::sync::Arc;
use std::time::Duration;

use lsm_store::object_store::{LocalObjectStore, ObjectStore};
use lsm_store::{LsmStore, LsmStoreOptions};
use pg_server::{Auth, Database, DatabaseOptions};
use rust_decimal::Decimal;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

struct Node {
    client: Client,
    db: Database,
    store: LsmStore,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// A node on a fresh local directory (deleted when the returned guard goes), and its object
/// store, to start the node again on.
async fn start_fresh() -> (tempfile::TempDir, Arc<dyn ObjectStore>, Node) {
    let dir = tempfile::tempdir().unwrap();
    let objects: Arc<dyn ObjectStore> = Arc::new(LocalObjectStore::open(dir.path()).unwrap());
    let node = start(Arc::clone(&objects)).await;
    (dir, objects, node)
}

async fn start(objects: Arc<dyn ObjectStore>) -> Node {
    start_with(
        objects,
        LsmStoreOptions::default(),
        DatabaseOptions {
            barrier_interval: Duration::from_millis(100),
            ..DatabaseOptions::default()
        },
    )
    .await
}

async fn start_with(
    objects: Arc<dyn ObjectStore>,
    store_options: LsmStoreOptions,
    options: DatabaseOptions,
) -> Node {
    let store = LsmStore::open(objects, store_options).await.unwrap();
    let db = Database::open(store.clone(), options).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(pg_server::serve(listener, db.clone(), Auth::Trust));
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=root dbname=dev"),
        NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    Node {
        client,
        db,
        store,
        server,
    }
}

impl Node {
    async fn stop(self) {
        self.server.abort();
        self.db.shutdown();
        self.store.close().await;
    }
}

/// The rows `sql` returns, each as its values (NULL as empty text) joined by `|`.
async fn texts(c: &Client, sql: &str) -> Vec<String> {
    simple_rows(c.simple_query(sql).await.unwrap())
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(Option::unwrap_or_default)
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

fn simple_rows(messages: Vec<SimpleQueryMessage>) -> Vec<Vec<Option<String>>> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_round_trip_and_restart() {
    let (_dir, objects, node) = start_fresh().await;
    let c = &node.client;
    c.batch_execute(
        "CREATE TABLE t (id bigint PRIMARY KEY, name varchar, score double precision, day date)",
    )
    .await
    .unwrap();
    // Extended protocol with typed parameters (inferred from the target columns).
    let insert = c
        .prepare("INSERT INTO t VALUES ($1, $2, $3, $4)")
        .await
        .unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    for (id, name, score) in [(1i64, "ann", 1.5f64), (2, "bob", 2.0), (3, "cy", -0.5)] {
        assert_eq!(
            c.execute(&insert, &[&id, &name, &score, &day])
                .await
                .unwrap(),
            1
        );
    }
    // Binary results and a parameter compared with a column.
    let rows = c
        .query(
            "SELECT id, name, score, day FROM t WHERE score > $1 ORDER BY id",
            &[&0.0f64],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].get::<_, i64>(0), 2);
    assert_eq!(rows[1].get::<_, &str>(1), "bob");
    assert_eq!(rows[1].get::<_, f64>(2), 2.0);
    assert_eq!(rows[1].get::<_, chrono::NaiveDate>(3), day);
    let n: i64 = c
        .query_one("SELECT count(*) FROM t WHERE name = $1", &[&"cy"])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);

    // Errors carry SQLSTATEs and leave the session usable.
    let err = c.simple_query("SELECT 1/0").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22012");
    let err = c.query("SELECT * FROM missing", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P01");
    let rows = simple_rows(
        c.simple_query(
            "UPDATE t SET score = score * 10 WHERE id = 1; SELECT score FROM t WHERE id = 1",
        )
        .await
        .unwrap(),
    );
    assert_eq!(rows, vec![vec![Some("15".to_string())]]);

    let rows = simple_rows(c.simple_query("UPDATE t SET (name, score) = ('bobby', score + 1) WHERE id = 2; SELECT name, score FROM t WHERE id = 2").await.unwrap());
    assert_eq!(
        rows,
        vec![vec![Some("bobby".to_string()), Some("3".to_string())]]
    );
    c.batch_execute("UPDATE t SET name = 'bob' WHERE id = 2")
        .await
        .unwrap();

    // Column defaults fill omitted columns and `SET c = DEFAULT`.
    c.batch_execute("CREATE TABLE d (k int PRIMARY KEY, v int DEFAULT 7, w varchar DEFAULT 'x'); INSERT INTO d (k) VALUES (1)").await.unwrap();
    c.batch_execute("UPDATE d SET w = 'y'; UPDATE d SET w = DEFAULT, v = v + 1")
        .await
        .unwrap();
    let rows = simple_rows(c.simple_query("SELECT k, v, w FROM d").await.unwrap());
    assert_eq!(
        rows,
        vec![vec![Some("1".into()), Some("8".into()), Some("x".into())]]
    );

    // Schemas: tables in them, qualified names, no dropping a non-empty one.
    c.batch_execute("CREATE SCHEMA s; CREATE TABLE s.t (x int); INSERT INTO s.t VALUES (42)")
        .await
        .unwrap();
    let err = c.batch_execute("DROP SCHEMA s").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "2BP01");

    // Acknowledged writes survive a restart.
    c.batch_execute("DELETE FROM t WHERE id = 3").await.unwrap();
    node.stop().await;
    let node = start(objects).await;
    let rows = simple_rows(
        node.client
            .simple_query("SELECT id, name FROM t ORDER BY id")
            .await
            .unwrap(),
    );
    assert_eq!(
        rows,
        vec![
            vec![Some("1".into()), Some("ann".into())],
            vec![Some("2".into()), Some("bob".into())]
        ]
    );
    let rows = simple_rows(
        node.client
            .simple_query("SELECT x FROM s.t; DROP TABLE s.t; DROP SCHEMA s")
            .await
            .unwrap(),
    );
    assert_eq!(rows, vec![vec![Some("42".into())]]);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_in_a_multi_statement_query_commits_unsynchronized_writes() {
    let (_dir, _, node) = start_fresh().await;
    let c = &node.client;
    c.batch_execute("CREATE TABLE k (v int); SET synchronous_commit = off; INSERT INTO k VALUES (1), (2); FLUSH;").await.unwrap();
    let rows = simple_rows(c.simple_query("SELECT sum(v) FROM k").await.unwrap());
    assert_eq!(rows, vec![vec![Some("3".into())]]);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_is_an_error_not_a_hang() {
    use lsm_store::object_store::{FaultInjectingObjectStore, FaultPlan, MemoryObjectStore};
    let faulty = Arc::new(FaultInjectingObjectStore::new(Arc::new(
        MemoryObjectStore::new(),
    )));
    let node = start(faulty.clone()).await;
    node.client
        .batch_execute("CREATE TABLE f (v int)")
        .await
        .unwrap();
    // From now on the object store refuses every write: the INSERT's epoch cannot commit.
    faulty.set_plan(FaultPlan {
        crash_after_mutations: Some(0),
        ..FaultPlan::default()
    });
    let insert = node.client.simple_query("INSERT INTO f VALUES (1)");
    let err = tokio::time::timeout(Duration::from_secs(30), insert)
        .await
        .expect("a statement waiting for a failed commit must not hang")
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "58030", "{err}");
    // The session is still usable for reads.
    assert!(node.client.simple_query("SELECT 1").await.is_ok());
    node.stop().await;
}

/// A node on an object store that can be told to refuse requests, without caches to speak
/// of (block, meta and operator caches), so that reads reach the object store.
async fn start_uncached_on_faulty_store() -> (
    Arc<lsm_store::object_store::FaultInjectingObjectStore>,
    Node,
) {
    use lsm_store::object_store::{FaultInjectingObjectStore, MemoryObjectStore};
    let faulty = Arc::new(FaultInjectingObjectStore::new(Arc::new(
        MemoryObjectStore::new(),
    )));
    let mut store_options = LsmStoreOptions::default();
    store_options.cache.block_cache_bytes = 0;
    store_options.cache.meta_cache_bytes = 0;
    let node = start_with(
        faulty.clone(),
        store_options,
        DatabaseOptions {
            barrier_interval: Duration::from_millis(50),
            state_cache_bytes: 0,
            ..DatabaseOptions::default()
        },
    )
    .await;
    (faulty, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_recovers_and_its_epoch_is_never_acknowledged() {
    use lsm_store::object_store::FaultPlan;
    // The aggregation reads its groups from the SSTs (several blocks of them, so that at
    // least one is not cached).
    let (faulty, node) = start_uncached_on_faulty_store().await;
    let c = &node.client;
    c.batch_execute(
        "CREATE TABLE t (k int, v int);
         CREATE MATERIALIZED VIEW m AS SELECT k, count(*) AS n, sum(v) AS s FROM t GROUP BY k;
         INSERT INTO t SELECT g, g FROM generate_series(1, 5000) AS g;",
    )
    .await
    .unwrap();
    // The object store refuses everything: the aggregation fails to read its groups, the
    // node recovers (and keeps retrying), and the INSERT's epoch is abandoned.
    faulty.set_plan(FaultPlan {
        crash_after_mutations: Some(0),
        ..FaultPlan::default()
    });
    let insert = c.simple_query("INSERT INTO t SELECT g, 10 FROM generate_series(1, 5000) AS g");
    let err = tokio::time::timeout(Duration::from_secs(30), insert)
        .await
        .expect("a statement of a failed epoch must not hang")
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "40001", "{err}");
    faulty.set_plan(FaultPlan::default());
    // Writes are refused (57P03) until the recovery is done, then commit again.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match c.simple_query("INSERT INTO t VALUES (1, 100)").await {
            Ok(_) => break,
            Err(e) if std::time::Instant::now() < deadline => {
                let code = e.code().unwrap().code().to_string();
                assert!(code == "57P03" || code == "40001", "{e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the node did not recover: {e}"),
        }
    }
    c.batch_execute("FLUSH").await.unwrap();
    let some = |v: &str| Some(v.to_string());
    let view = simple_rows(
        c.simple_query("SELECT k, n, s FROM m WHERE k <= 2 ORDER BY k")
            .await
            .unwrap(),
    );
    assert_eq!(
        view,
        vec![
            vec![some("1"), some("2"), some("101")],
            vec![some("2"), some("1"), some("2")]
        ]
    );
    // Neither the table nor the view has any of the abandoned statement's rows.
    let totals = "SELECT (SELECT count(*) FROM t), (SELECT sum(v) FROM t), \
                  (SELECT count(*) FROM m), (SELECT sum(n) FROM m), (SELECT sum(s) FROM m)";
    let totals = simple_rows(c.simple_query(totals).await.unwrap());
    assert_eq!(
        totals,
        vec![vec![
            some("5001"),
            some("12502600"),
            some("5000"),
            some("5001"),
            some("12502600")
        ]]
    );
    assert!(
        node.db
            .metrics_text()
            .lines()
            .any(|l| l.starts_with("streamdb_recoveries_total ") && !l.ends_with(" 0")),
        "the recovery is counted"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_created_across_a_recovery_is_whole_or_absent() {
    use lsm_store::object_store::FaultPlan;
    // The backfill reads the table from the object store.
    let (faulty, node) = start_uncached_on_faulty_store().await;
    let c = &node.client;
    c.batch_execute(
        "CREATE TABLE t (k int, v int);
         INSERT INTO t SELECT g, g FROM generate_series(1, 200000) AS g;",
    )
    .await
    .unwrap();
    // The backfill fails while the object store refuses everything; the node recovers
    // until the store is back. The statement either waits for the restarted job (its
    // catalog row was sealed) or fails as a whole.
    let create = c.simple_query("CREATE MATERIALIZED VIEW w AS SELECT k, v FROM t WHERE v > 10");
    let outage = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        faulty.set_plan(FaultPlan {
            crash_after_mutations: Some(0),
            ..FaultPlan::default()
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        faulty.set_plan(FaultPlan::default());
    };
    let (created, ()) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(create, outage)
    })
    .await
    .expect("a view's creation must not hang across a recovery");
    assert!(
        node.db
            .metrics_text()
            .lines()
            .any(|l| l.starts_with("streamdb_recoveries_total ") && !l.ends_with(" 0")),
        "the backfill failed and the node recovered"
    );
    let count = "SELECT count(*), sum(v) FROM w";
    eprintln!(
        "TMP outcome {:?}",
        created.as_ref().map(|_| ()).map_err(|e| e.to_string())
    );
    match created {
        Ok(_) => {
            let rows = simple_rows(c.simple_query(count).await.unwrap());
            assert_eq!(
                rows,
                vec![vec![Some("199990".into()), Some("20000099945".into())]]
            );
        }
        Err(e) => {
            assert_eq!(e.code().unwrap().code(), "40001", "{e}");
            let err = c.simple_query(count).await.unwrap_err();
            assert_eq!(err.code().unwrap().code(), "42P01", "{err}");
        }
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_stdin_loads_rows_atomically() {
    use futures::SinkExt;
    let (_dir, _, node) = start_fresh().await;
    let c = &node.client;
    c.batch_execute(
        "CREATE TABLE c (id int PRIMARY KEY, name varchar, score double precision DEFAULT 0.5)",
    )
    .await
    .unwrap();
    let sink = c.copy_in("COPY c (id, name) FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"1\tann\n2\t\\N\n"))
        .await
        .unwrap();
    sink.send(bytes::Bytes::from_static(b"3\tc\\td\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 3);
    let rows = simple_rows(
        c.simple_query("SELECT id, name, score FROM c ORDER BY id")
            .await
            .unwrap(),
    );
    assert_eq!(
        rows,
        vec![
            vec![Some("1".into()), Some("ann".into()), Some("0.5".into())],
            vec![Some("2".into()), None, Some("0.5".into())],
            vec![Some("3".into()), Some("c\td".into()), Some("0.5".into())],
        ]
    );
    // CSV with a header; a bad value rejects the whole COPY.
    let sink = c
        .copy_in("COPY c FROM STDIN WITH (FORMAT csv, HEADER true)")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(
        b"id,name,score\n10,\"x, y\",1.25\n11,z,not-a-number\n",
    ))
    .await
    .unwrap();
    let err = sink.finish().await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22P02", "{err}");
    let rows = simple_rows(c.simple_query("SELECT count(*) FROM c").await.unwrap());
    assert_eq!(rows, vec![vec![Some("3".into())]]);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_password_authentication() {
    let objects: Arc<dyn ObjectStore> = Arc::new(lsm_store::object_store::MemoryObjectStore::new());
    let store = LsmStore::open(objects, LsmStoreOptions::default())
        .await
        .unwrap();
    let db = Database::open(store, DatabaseOptions::default())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(pg_server::serve(
        listener,
        db.clone(),
        Auth::Password("s3cret".into()),
    ));
    let connect = |password: &str| {
        let config = format!("host=127.0.0.1 port={port} user=root dbname=dev password={password}");
        async move { tokio_postgres::connect(&config, NoTls).await }
    };
    let err = connect("wrong")
        .await
        .err()
        .expect("a wrong password is refused");
    assert_eq!(err.code().map(|c| c.code()), Some("28P01"), "{err}");
    let (client, connection) = connect("s3cret").await.unwrap();
    tokio::spawn(connection);
    assert_eq!(
        client
            .query_one("SELECT 1 + 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );
    server.abort();
    db.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_query_can_be_cancelled() {
    use futures::SinkExt;
    let node = start(Arc::new(lsm_store::object_store::MemoryObjectStore::new())).await;
    let c = &node.client;
    c.batch_execute("CREATE TABLE big (id int PRIMARY KEY, v varchar)")
        .await
        .unwrap();
    let sink = c.copy_in("COPY big FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    let data: String = (0..150_000).map(|i| format!("{i}\tvalue {i}\n")).collect();
    sink.send(bytes::Bytes::from(data)).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 150_000);

    // Cancel requests keep coming until the scan ends; one lands while it runs.
    let token = c.cancel_token();
    let canceller = tokio::spawn(async move {
        loop {
            let _ = token.cancel_query(NoTls).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let result = c
        .query("SELECT count(*) FROM big WHERE id % 7 = 3", &[])
        .await;
    canceller.abort();
    let err = result.expect_err("the query must be cancelled");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
    // The connection outlives the cancelled query.
    let mut ok = None;
    for _ in 0..20 {
        match c.query_one("SELECT 1 + 1", &[]).await {
            Ok(row) => {
                ok = Some(row.get::<_, i32>(0));
                break;
            }
            // A cancel sent just before this query may still land on it.
            Err(e) if e.code().map(|c| c.code()) == Some("57014") => continue,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, Some(2));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialized_views_through_the_driver() {
    let (_dir, _, node) = start_fresh().await;
    let c = &node.client;
    c.batch_execute(
        "CREATE TABLE orders (id int PRIMARY KEY, customer varchar, amount bigint); \
         INSERT INTO orders VALUES (1, 'ann', 10), (2, 'bob', 5), (3, 'ann', 7); \
         CREATE MATERIALIZED VIEW spend AS \
           SELECT customer, sum(amount) AS total, count(*) AS n FROM orders GROUP BY customer",
    )
    .await
    .unwrap();
    c.execute(
        "UPDATE orders SET amount = $1 WHERE id = $2",
        &[&20i64, &2i32],
    )
    .await
    .unwrap();
    c.execute("DELETE FROM orders WHERE id = 1", &[])
        .await
        .unwrap();
    let rows = c
        .query(
            "SELECT customer, total, n FROM spend ORDER BY customer",
            &[],
        )
        .await
        .unwrap();
    // sum(bigint) is numeric, read here through the driver's own binary numeric decoder.
    let got: Vec<(String, Decimal, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        vec![
            ("ann".into(), Decimal::from(7), 1),
            ("bob".into(), Decimal::from(20), 1)
        ]
    );

    let describe = simple_rows(c.simple_query("DESCRIBE spend").await.unwrap());
    assert_eq!(describe[0][0].as_deref(), Some("customer"));
    assert!(
        describe
            .iter()
            .any(|r| r[..2] == [Some("primary key".into()), Some("customer".into())])
    );
    assert_eq!(
        describe.last().unwrap()[..2],
        [Some("table description".into()), Some("spend".into())]
    );
    let views = simple_rows(c.simple_query("SHOW MATERIALIZED VIEWS").await.unwrap());
    assert_eq!(views, vec![vec![Some("spend".to_string())]]);
    let plan = simple_rows(
        c.simple_query("EXPLAIN CREATE MATERIALIZED VIEW x AS SELECT count(*) FROM orders")
            .await
            .unwrap(),
    );
    assert!(
        plan.iter()
            .any(|l| l[0].as_deref().unwrap().contains("StreamHashAgg"))
    );

    let err = c.batch_execute("DROP TABLE orders").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "2BP01");
    // An index is dropped with DROP INDEX or with its table, never as a table or a view.
    c.batch_execute("CREATE INDEX by_customer ON orders (customer)")
        .await
        .unwrap();
    for wrong in [
        "DROP TABLE by_customer",
        "DROP MATERIALIZED VIEW by_customer",
        "DROP INDEX spend",
    ] {
        let err = c.batch_execute(wrong).await.unwrap_err();
        assert_eq!(err.code().unwrap().code(), "42809", "{wrong}");
    }
    let indexed = simple_rows(
        c.simple_query("SELECT customer FROM by_customer")
            .await
            .unwrap(),
    );
    assert_eq!(indexed.len(), 2);
    let err = c
        .batch_execute("INSERT INTO spend VALUES ('x', 1, 1)")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42809");
    c.batch_execute("DROP MATERIALIZED VIEW spend; DROP TABLE orders")
        .await
        .unwrap();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_through_binary_and_text() {
    let (_dir, _, node) = start_fresh().await;
    let c = &node.client;
    c.batch_execute("CREATE TABLE m (id int PRIMARY KEY, amount numeric)")
        .await
        .unwrap();
    let values = ["12.50", "-0.001", "79228162514264337593543950335", "0"];
    for (i, v) in values.iter().enumerate() {
        let d: Decimal = v.parse().unwrap();
        c.execute("INSERT INTO m VALUES ($1, $2)", &[&(i as i32), &d])
            .await
            .unwrap();
    }
    // Binary results (the driver decodes PostgreSQL's base-10000 form), scales intact.
    let rows = c
        .query("SELECT amount FROM m ORDER BY amount", &[])
        .await
        .unwrap();
    let got: Vec<String> = rows
        .iter()
        .map(|r| r.get::<_, Decimal>(0).to_string())
        .collect();
    assert_eq!(
        got,
        ["-0.001", "0", "12.50", "79228162514264337593543950335"]
    );
    // Text results, exact arithmetic, special values and equality across scales.
    let text = simple_rows(
        c.simple_query(
            "SELECT amount * 2, amount = 12.5, 'NaN'::numeric > amount \
             FROM m WHERE id = 0; SELECT 0.1 + 0.2, 1.0 / 3, -'-Infinity'::numeric",
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        text,
        vec![
            vec![Some("25.00".into()), Some("t".into()), Some("t".into())],
            vec![
                Some("0.3".into()),
                Some("0.3333333333333333333333333333".into()),
                Some("Infinity".into())
            ],
        ]
    );
    // Equal values of different scales are one group, shown normalized.
    c.execute("INSERT INTO m VALUES (9, 12.5000)", &[])
        .await
        .unwrap();
    let groups = simple_rows(
        c.simple_query(
            "SELECT amount, count(*) FROM m WHERE amount > 1 AND amount < 13 GROUP BY amount",
        )
        .await
        .unwrap(),
    );
    assert_eq!(groups, vec![vec![Some("12.5".into()), Some("2".into())]]);
    let overflow = c
        .simple_query("SELECT sum(amount) + amount FROM m GROUP BY amount HAVING amount > 1000")
        .await
        .unwrap_err();
    assert_eq!(overflow.code().unwrap().code(), "22003");
    let bad = c.simple_query("SELECT 'abc'::numeric").await.unwrap_err();
    assert_eq!(bad.code().unwrap().code(), "22P02");
    node.stop().await;
}

/// A jsonb value as the binary protocol sends it: a version byte (1), then the text.
#[derive(Debug, PartialEq)]
struct BinaryJsonb(String);

impl<'a> postgres_types::FromSql<'a> for BinaryJsonb {
    fn from_sql(
        _ty: &postgres_types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        match raw.split_first() {
            Some((1, text)) => Ok(BinaryJsonb(String::from_utf8(text.to_vec())?)),
            _ => Err("bad jsonb version".into()),
        }
    }

    postgres_types::accepts!(JSONB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytea_and_jsonb_through_binary_and_text() {
    let (_dir, _, node) = start_fresh().await;
    let c = &node.client;
    c.batch_execute("CREATE TABLE d (id int PRIMARY KEY, b bytea, j jsonb)")
        .await
        .unwrap();
    let bytes: &[u8] = &[0, 1, 255, b'\\'];
    c.execute(
        "INSERT INTO d VALUES (1, $1, '{\"b\": [1, 2.50], \"a\": null, \"a\": \"x\"}')",
        &[&bytes],
    )
    .await
    .unwrap();
    c.execute("INSERT INTO d VALUES (2, '\\x6869', '3')", &[])
        .await
        .unwrap();
    // Binary results: raw bytes, and the normalized document after its version byte.
    let rows = c
        .query("SELECT b, j FROM d ORDER BY id", &[])
        .await
        .unwrap();
    let got: Vec<(Vec<u8>, BinaryJsonb)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        [
            (
                bytes.to_vec(),
                BinaryJsonb(r#"{"a": "x", "b": [1, 2.50]}"#.into())
            ),
            (b"hi".to_vec(), BinaryJsonb("3".into())),
        ]
    );
    // Text results, operators, casts, and bad input with its SQLSTATE.
    let text = simple_rows(
        c.simple_query(
            "SELECT b, j -> 'b' ->> 1, jsonb_typeof(j), j::varchar FROM d ORDER BY id; \
             SELECT j::int + 1 FROM d WHERE id = 2",
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        text,
        vec![
            vec![
                Some("\\x0001ff5c".into()),
                Some("2.50".into()),
                Some("object".into()),
                Some(r#"{"a": "x", "b": [1, 2.50]}"#.into())
            ],
            vec![
                Some("\\x6869".into()),
                None,
                Some("number".into()),
                Some("3".into())
            ],
            vec![Some("4".into())],
        ]
    );
    for (bad, code) in [
        ("SELECT '{\"a\":}'::jsonb", "22P02"),
        ("SELECT '\\x1'::bytea", "22P02"),
        ("SELECT j::int FROM d WHERE id = 1", "22023"),
    ] {
        let e = c.simple_query(bad).await.unwrap_err();
        assert_eq!(e.code().unwrap().code(), code, "{bad}");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrays_and_subqueries_in_dml() {
    let (_dir, _, node) = start_fresh().await;
    let c = &node.client;
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, g int, v int, tags varchar[]);
         INSERT INTO t VALUES (1, 1, 0, '{a,b}'), (2, 1, 0, ARRAY['c']), (3, 2, 0, NULL);
         CREATE TABLE s (g int, w int);
         INSERT INTO s VALUES (1, 10), (1, 20), (2, 5);
         UPDATE t SET v = (SELECT sum(w) FROM s WHERE s.g = t.g) WHERE id < 3;
         UPDATE t SET (g, v) = (SELECT 7, max(w) FROM s) WHERE id = 3;",
    )
    .await
    .unwrap();
    // Binary results: the driver decodes PostgreSQL's array form.
    let rows = c
        .query(
            "SELECT id, g, v, tags, ARRAY[id, NULL] FROM t ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    type Row = (i32, i32, i32, Option<Vec<Option<String>>>, Vec<Option<i32>>);
    let got: Vec<Row> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    let text = |v: &[&str]| Some(v.iter().map(|s| Some(s.to_string())).collect());
    assert_eq!(
        got,
        vec![
            (1, 1, 30, text(&["a", "b"]), vec![Some(1), None]),
            (2, 1, 30, text(&["c"]), vec![Some(2), None]),
            (3, 7, 20, None, vec![Some(3), None]),
        ]
    );
    // Row 3 (v = 20 = 4 * 5) goes by EXISTS, row 2 (30 - 10 = 20) by IN.
    c.batch_execute(
        "DELETE FROM t WHERE EXISTS (SELECT 1 FROM s WHERE s.w * 4 = t.v);
         DELETE FROM t WHERE v - 10 IN (SELECT w FROM s) AND id = 2;",
    )
    .await
    .unwrap();
    let left = c.query("SELECT id FROM t ORDER BY id", &[]).await.unwrap();
    assert_eq!(
        left.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(),
        vec![1]
    );
    let err = c
        .batch_execute("UPDATE t SET v = (SELECT w FROM s WHERE s.g = t.g)")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("21000"));
    node.stop().await;
}

/// A view that reads no table is computed once, with everything batch queries support
/// (aggregates without a streaming form, window functions, functions in FROM).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constant_views_hold_their_rows() {
    let (_dir, _, node) = start_fresh().await;
    let c = &node.client;
    c.batch_execute(
        "CREATE MATERIALIZED VIEW agg AS SELECT min(1) AS m, string_agg('abc', ',') AS s;
         CREATE MATERIALIZED VIEW w AS
           SELECT x, lag(x) OVER (PARTITION BY 0::int) AS l FROM (VALUES (1), (2)) AS t(x);
         CREATE MATERIALIZED VIEW f AS SELECT * FROM abs(-1);",
    )
    .await
    .unwrap();
    let rows = simple_rows(
        c.simple_query("SELECT m, s FROM agg; SELECT x, l FROM w ORDER BY x; SELECT * FROM f")
            .await
            .unwrap(),
    );
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        rows,
        vec![
            vec![some("1"), some("abc")],
            vec![some("1"), None],
            vec![some("2"), some("1")],
            vec![some("1")],
        ]
    );
    node.stop().await;
}

/// SQL functions: inlined into queries and views, persisted with the catalog, dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_functions_are_inlined_and_persisted() {
    let (_dir, objects, node) = start_fresh().await;
    let c = &node.client;
    c.batch_execute(
        "CREATE FUNCTION count_char(s varchar, c varchar) RETURNS int LANGUAGE SQL AS
           $$SELECT LENGTH(s) - LENGTH(REPLACE(s, c, ''))$$;
         CREATE FUNCTION twice(x int) RETURNS int RETURN x * 2;
         CREATE TABLE words (w varchar);
         CREATE MATERIALIZED VIEW counts AS SELECT w, twice(count_char(w, 'a')) AS n FROM words;
         INSERT INTO words VALUES ('banana'), ('kiwi');",
    )
    .await
    .unwrap();
    let err = c
        .batch_execute("CREATE FUNCTION twice(x int) RETURNS int RETURN x")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42723"));
    let err = c
        .batch_execute("CREATE FUNCTION bad(x int) RETURNS int RETURN y")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42703"));
    node.stop().await;

    let node = start(Arc::clone(&objects)).await;
    let c = &node.client;
    let rows = simple_rows(
        c.simple_query(
            "SELECT w, n FROM counts ORDER BY w; SELECT twice('21'), count_char(NULL, 'a')",
        )
        .await
        .unwrap(),
    );
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        rows,
        vec![
            vec![some("banana"), some("6")],
            vec![some("kiwi"), some("0")],
            vec![some("42"), None],
        ]
    );
    c.batch_execute("DROP FUNCTION twice; INSERT INTO words VALUES ('aa')")
        .await
        .unwrap();
    let err = c.batch_execute("SELECT twice(1)").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42883"));
    // The view inlined the call: it keeps working.
    let rows = c
        .query("SELECT n FROM counts WHERE w = 'aa'", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i32>(0), 4);
    node.stop().await;
}

/// `SHOW CREATE` gives back the statement that made a table or view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_create_returns_the_definition() {
    let (_dir, _, node) = start_fresh().await;
    let c = &node.client;
    c.batch_execute(
        "create table t(v int, w varchar); create materialized view m as select sum(v) from t",
    )
    .await
    .unwrap();
    let rows = simple_rows(
        c.simple_query("SHOW CREATE TABLE t; SHOW CREATE MATERIALIZED VIEW m")
            .await
            .unwrap(),
    );
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        rows,
        vec![
            vec![some("public.t"), some("CREATE TABLE t (v INT, w VARCHAR)")],
            vec![
                some("public.m"),
                some("CREATE MATERIALIZED VIEW m AS SELECT sum(v) FROM t")
            ],
        ]
    );
    let err = c.batch_execute("SHOW CREATE TABLE m").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42P01"));
    node.stop().await;
}

/// Waits (bounded) until `query`'s first value is `want`.
async fn wait_for(c: &tokio_postgres::Client, query: &str, want: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let got: i64 = c.query_one(query, &[]).await.unwrap().get(0);
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{query} stayed at {got}, not {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A nexmark source of three splits feeds views, its actors sharing the splits; a restart in
/// the middle neither loses nor repeats an event (each split's offset commits with the views'
/// state), and a view created afterwards reads the same events from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexmark_source_resumes_exactly_after_a_restart() {
    let (_dir, objects, node) = start_fresh().await;
    let c = &node.client;
    // 2000 events, 1840 of them bids, one every half millisecond.
    c.batch_execute(
        "CREATE SOURCE bid (auction BIGINT, bidder BIGINT, price BIGINT, date_time TIMESTAMP)
           WITH (connector = 'nexmark', nexmark.table.type = 'Bid', nexmark.event.num = '2000',
                 nexmark.min.event.gap.in.ns = '500000', nexmark.max.chunk.size = '64',
                 nexmark.split.num = '3');
         CREATE MATERIALIZED VIEW totals AS
           SELECT count(*) AS n, sum(price) AS s, max(_row_id) AS last FROM bid;",
    )
    .await
    .unwrap();
    let err = c.batch_execute("SELECT * FROM bid").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("0A000"));
    let err = c
        .batch_execute("INSERT INTO bid VALUES (1, 1, 1, now())")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42809"));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before: i64 = c
        .query_one("SELECT n FROM totals", &[])
        .await
        .unwrap()
        .get(0);
    assert!(before < 1840, "the restart comes before the end ({before})");
    node.stop().await;

    let node = start(Arc::clone(&objects)).await;
    let c = &node.client;
    wait_for(c, "SELECT n FROM totals", 1840).await;
    // Counts, sums, min and max over the split source run in two phases (each source actor's
    // partial results by group, combined by the group's actor); with a distinct count, every
    // row goes to its group's actor. Both see the same rows.
    let two_phase = [
        "CREATE MATERIALIZED VIEW again AS \
         SELECT count(*) AS n, sum(price) AS s, min(price) AS lo, max(price) AS hi FROM bid",
        "CREATE MATERIALIZED VIEW by_auction AS \
         SELECT auction, count(*) AS n, sum(price) AS s, max(price) AS hi FROM bid GROUP BY 1",
    ];
    let one_phase = [
        "CREATE MATERIALIZED VIEW grouped AS SELECT bidder >= 0 AS k, count(*) AS n, \
         sum(price) AS s, min(price) AS lo, max(price) AS hi, count(DISTINCT bidder) AS d \
         FROM bid GROUP BY 1",
        "CREATE MATERIALIZED VIEW by_auction_1 AS SELECT auction, count(*) AS n, \
         sum(price) AS s, max(price) AS hi, count(DISTINCT bidder) AS d FROM bid GROUP BY 1",
    ];
    for (view, local) in two_phase
        .iter()
        .zip([true; 2])
        .chain(one_phase.iter().zip([false; 2]))
    {
        let plan = simple_rows(c.simple_query(&format!("EXPLAIN {view}")).await.unwrap());
        let has_local = plan
            .iter()
            .any(|l| l[0].as_deref().unwrap().contains("StreamLocalAgg"));
        assert_eq!(has_local, local, "{view}: {plan:?}");
        c.batch_execute(view).await.unwrap();
    }
    wait_for(c, "SELECT n FROM again", 1840).await;
    wait_for(c, "SELECT n FROM grouped", 1840).await;
    for view in ["by_auction", "by_auction_1"] {
        wait_for(
            c,
            &format!("SELECT coalesce(sum(n), 0)::bigint FROM {view}"),
            1840,
        )
        .await;
    }
    let row = c
        .query_one(
            "SELECT t.s = a.s, t.last, (a.s, a.lo, a.hi) = (g.s, g.lo, g.hi), \
             (SELECT count(*) FROM (SELECT auction, n, s, hi FROM by_auction \
                EXCEPT SELECT auction, n, s, hi FROM by_auction_1) AS x) \
             + (SELECT count(*) FROM (SELECT auction, n, s, hi FROM by_auction_1 \
                EXCEPT SELECT auction, n, s, hi FROM by_auction) AS y) \
             FROM totals t, again a, grouped g",
            &[],
        )
        .await
        .unwrap();
    assert!(
        row.get::<_, bool>(0),
        "the events differ between the two reads"
    );
    assert_eq!(row.get::<_, i64>(1), 1839);
    assert!(row.get::<_, bool>(2), "two phases and one disagree");
    assert_eq!(
        row.get::<_, i64>(3),
        0,
        "per auction, two phases and one disagree"
    );
    node.stop().await;
}

/// A datagen source's sequences and seeded random values: a restart in the middle neither
/// loses nor repeats a row, the source ends with its sequence, and a second view reads the
/// same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagen_source_resumes_exactly_after_a_restart() {
    let (_dir, objects, node) = start_fresh().await;
    let c = &node.client;
    c.batch_execute(
        "CREATE SOURCE gen (v INT, r BIGINT, name VARCHAR)
           WITH (connector = 'datagen', fields.v.kind = 'sequence', fields.v.start = '1',
                 fields.v.end = '1000', fields.r.min = '-5', fields.r.max = '5',
                 fields.r.seed = '9', fields.name.length = '3',
                 datagen.rows.per.second = '2000') FORMAT PLAIN ENCODE JSON;
         CREATE MATERIALIZED VIEW totals AS
           SELECT count(*) AS n, sum(v) AS s, sum(r) AS rs, count(DISTINCT v) AS d,
                  min(r) AS lo, max(r) AS hi, min(length(name)) AS len FROM gen;",
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let before: i64 = c
        .query_one("SELECT n FROM totals", &[])
        .await
        .unwrap()
        .get(0);
    assert!(before < 1000, "the restart comes before the end ({before})");
    node.stop().await;

    let node = start(Arc::clone(&objects)).await;
    let c = &node.client;
    wait_for(c, "SELECT n FROM totals", 1000).await;
    c.batch_execute(
        "CREATE MATERIALIZED VIEW again AS SELECT count(*) AS n, sum(r) AS rs FROM gen",
    )
    .await
    .unwrap();
    wait_for(c, "SELECT n FROM again", 1000).await;
    let row = c
        .query_one(
            "SELECT t.s, t.d, t.rs = a.rs, t.lo >= -5 AND t.hi <= 5 AND t.lo < t.hi, t.len \
             FROM totals t, again a",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i64>>(0), Some(500_500));
    assert_eq!(row.get::<_, i64>(1), 1000);
    assert!(
        row.get::<_, bool>(2),
        "the rows differ between the two reads"
    );
    assert!(
        row.get::<_, bool>(3),
        "random values out of range or constant"
    );
    assert_eq!(row.get::<_, i32>(4), 3);
    // The source cannot go while views read it.
    let in_use = node
        .client
        .batch_execute("DROP SOURCE gen")
        .await
        .unwrap_err();
    assert_eq!(in_use.code().unwrap().code(), "2BP01");
    // Each DROP takes only its own kind of relation.
    node.client
        .batch_execute("CREATE TABLE plain (v INT)")
        .await
        .unwrap();
    for (wrong, message) in [
        ("DROP TABLE gen", "use DROP SOURCE"),
        ("DROP SOURCE plain", "use DROP TABLE"),
        ("DROP VIEW gen", "use DROP SOURCE"),
    ] {
        let err = node.client.batch_execute(wrong).await.unwrap_err();
        let err = err.as_db_error().expect("a database error");
        assert_eq!(err.code().code(), "42809", "{wrong}");
        assert!(
            err.message().contains(message),
            "{wrong}: {}",
            err.message()
        );
    }
    let err = node
        .client
        .batch_execute("DROP STREAM gen")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42601");
    node.stop().await;
}

/// Watermarks: an append-only table's late rows are dropped (also after a restart, which
/// keeps the watermark), `SHOW CREATE TABLE` gives the clause back, and tumbling and hopping
/// window aggregations, windowed and interval joins over such tables, which drop state behind
/// the watermark, still equal their queries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermarks_drop_late_rows_and_windowed_views_stay_right() {
    let (_dir, objects, node) = start_fresh().await;
    let c = &node.client;
    let err = c
        .batch_execute("CREATE TABLE x (ts TIMESTAMP, WATERMARK FOR ts AS ts)")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("0A000"));
    c.batch_execute(
        "CREATE TABLE a (ts TIMESTAMP, k INT, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
           APPEND ONLY;
         CREATE TABLE b (ts TIMESTAMP, k INT, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
           APPEND ONLY;
         CREATE MATERIALIZED VIEW per_window AS
           SELECT window_start, count(*) AS n, sum(k) AS s
           FROM tumble(a, ts, INTERVAL '10' SECOND) GROUP BY window_start;
         CREATE MATERIALIZED VIEW hopping AS
           SELECT window_start, count(*) AS n, max(k) AS top
           FROM hop(a, ts, INTERVAL '5' SECOND, INTERVAL '10' SECOND) GROUP BY window_start;
         CREATE MATERIALIZED VIEW joined AS
           SELECT x.window_start, x.k, count(*) AS n
           FROM tumble(a, ts, INTERVAL '10' SECOND) AS x
           JOIN tumble(b, ts, INTERVAL '10' SECOND) AS y
             ON x.window_start = y.window_start AND x.k = y.k
           GROUP BY x.window_start, x.k;
         CREATE MATERIALIZED VIEW ranked AS
           SELECT * FROM (SELECT window_start, ts, k,
                                 row_number() OVER (PARTITION BY window_start ORDER BY k DESC, ts) AS r
                          FROM tumble(a, ts, INTERVAL '10' SECOND)) AS t
           WHERE r <= 2;
         CREATE MATERIALIZED VIEW running AS
           SELECT window_start, ts, k,
                  sum(k) OVER (PARTITION BY window_start ORDER BY ts, k) AS s
           FROM tumble(a, ts, INTERVAL '10' SECOND);",
    )
    .await
    .unwrap();
    // Interval joins: each side's rows leave the state once the other side's watermark
    // says no row to come is in their range.
    const WITHIN: &str = "SELECT x.k, x.ts AS xts, y.ts AS yts
         FROM a AS x JOIN b AS y
           ON x.k = y.k AND y.ts BETWEEN x.ts - INTERVAL '3' SECOND AND x.ts + INTERVAL '2' SECOND";
    const WITHIN_LEFT: &str = "SELECT x.k, x.ts AS xts, y.ts AS yts
         FROM a AS x LEFT JOIN b AS y
           ON x.k = y.k AND y.ts >= x.ts - INTERVAL '3' SECOND AND y.ts < x.ts";
    // A window aggregation over an interval join: the join passes on watermarks of its
    // bounded time columns (here y.ts, which x.ts - 3 s bounds), so the aggregation drops
    // closed windows' state.
    const WITHIN_PER_WINDOW: &str = "SELECT window_start, count(*) AS n, max(xts) AS last
         FROM tumble(within, yts, INTERVAL '10' SECOND) GROUP BY window_start";
    c.batch_execute(&format!(
        "CREATE MATERIALIZED VIEW within AS {WITHIN};
         CREATE MATERIALIZED VIEW within_left AS {WITHIN_LEFT};
         CREATE MATERIALIZED VIEW within_per_window AS {WITHIN_PER_WINDOW};"
    ))
    .await
    .unwrap();
    for query in [WITHIN, WITHIN_LEFT] {
        let plan: Vec<String> = c
            .simple_query(&format!("EXPLAIN CREATE MATERIALIZED VIEW e AS {query}"))
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .collect();
        let join = plan.iter().find(|l| l.contains("StreamHashJoin")).unwrap();
        assert!(
            join.contains("clean left by right watermark $0")
                && join.contains("clean right by left watermark $0"),
            "{plan:#?}"
        );
    }
    let definition: String = c
        .query_one("SHOW CREATE TABLE a", &[])
        .await
        .unwrap()
        .get(1);
    assert!(
        definition.contains("k INT, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)"),
        "{definition}"
    );
    // A minute of rows, a few per second into each table, each batch also carrying some
    // rows that are late by then.
    for second in 0..60i64 {
        let at = |s: i64| format!("TIMESTAMP '2026-01-01 00:00:00' + INTERVAL '{s}' SECOND");
        let late = at((second - 9).max(0));
        c.batch_execute(&format!(
            "INSERT INTO a VALUES ({}, {}), ({}, {}), ({late}, 1000);
             INSERT INTO b VALUES ({}, {}), ({late}, 1000);",
            at(second),
            second % 3,
            at(second),
            second % 2,
            at(second),
            second % 3,
        ))
        .await
        .unwrap();
    }
    c.batch_execute("FLUSH").await.unwrap();
    let count =
        |sql: &'static str| async move { c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) };
    // The rows 9 seconds back were late from second 15 on (the watermark trails by 5).
    let late_kept = count("SELECT count(*) FROM a WHERE k = 1000").await;
    assert!(late_kept < 20, "{late_kept} late rows kept");
    assert_eq!(count("SELECT count(*) FROM a WHERE k <> 1000").await, 120);
    let views_match = |view: &'static str, query: &'static str| async move {
        let rows = |sql: String| async move {
            let mut rows: Vec<String> = c
                .simple_query(&sql)
                .await
                .unwrap()
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                        (0..r.len())
                            .map(|i| r.get(i).unwrap_or("NULL").to_string())
                            .collect::<Vec<_>>()
                            .join(" "),
                    ),
                    _ => None,
                })
                .collect();
            rows.sort();
            rows
        };
        assert_eq!(
            rows(format!("SELECT * FROM {view}")).await,
            rows(query.to_string()).await,
            "{view}"
        );
    };
    views_match(
        "per_window",
        "SELECT window_start, count(*) AS n, sum(k) AS s
         FROM tumble(a, ts, INTERVAL '10' SECOND) GROUP BY window_start",
    )
    .await;
    views_match(
        "hopping",
        "SELECT window_start, count(*) AS n, max(k) AS top
         FROM hop(a, ts, INTERVAL '5' SECOND, INTERVAL '10' SECOND) GROUP BY window_start",
    )
    .await;
    views_match(
        "joined",
        "SELECT x.window_start, x.k, count(*) AS n
         FROM tumble(a, ts, INTERVAL '10' SECOND) AS x
         JOIN tumble(b, ts, INTERVAL '10' SECOND) AS y
           ON x.window_start = y.window_start AND x.k = y.k
         GROUP BY x.window_start, x.k",
    )
    .await;
    // Group top-N and window functions by window drop the state of closed windows.
    views_match(
        "ranked",
        "SELECT * FROM (SELECT window_start, ts, k,
                               row_number() OVER (PARTITION BY window_start ORDER BY k DESC, ts) AS r
                        FROM tumble(a, ts, INTERVAL '10' SECOND)) AS t
         WHERE r <= 2",
    )
    .await;
    views_match(
        "running",
        "SELECT window_start, ts, k, sum(k) OVER (PARTITION BY window_start ORDER BY ts, k) AS s
         FROM tumble(a, ts, INTERVAL '10' SECOND)",
    )
    .await;
    views_match("within", WITHIN).await;
    views_match("within_left", WITHIN_LEFT).await;
    views_match("within_per_window", WITHIN_PER_WINDOW).await;
    node.stop().await;

    // The watermark survives a restart: a row behind it is still late.
    let node = start(Arc::clone(&objects)).await;
    let c = &node.client;
    c.batch_execute(
        "INSERT INTO a VALUES (TIMESTAMP '2026-01-01 00:00:10', 2000),
                              (TIMESTAMP '2026-01-01 00:01:10', 3000);
         FLUSH;",
    )
    .await
    .unwrap();
    let kept: i64 = c
        .query_one("SELECT count(*) FROM a WHERE k >= 2000", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 1);
    let n: i64 = c
        .query_one(
            "SELECT n FROM per_window WHERE window_start = TIMESTAMP '2026-01-01 00:01:10'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    node.stop().await;
}

/// information_schema's tables, columns, schemata and views, as ORMs and drivers read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn information_schema_describes_tables_and_columns() {
    let (_dir, _, node) = start_fresh().await;
    let c = &node.client;
    c.batch_execute(
        "CREATE TABLE t (a int PRIMARY KEY, b varchar DEFAULT 'x', c int[]);
         CREATE MATERIALIZED VIEW v AS SELECT a FROM t;",
    )
    .await
    .unwrap();
    let text = |rows: Vec<tokio_postgres::Row>| -> Vec<Vec<Option<String>>> {
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.get::<_, Option<String>>(i))
                    .collect()
            })
            .collect()
    };
    let s = |v: &str| Some(v.to_string());
    let tables = c
        .query(
            "SELECT table_name, table_type FROM information_schema.tables \
             WHERE table_schema = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        text(tables),
        [
            vec![s("t"), s("BASE TABLE")],
            vec![s("v"), s("MATERIALIZED VIEW")]
        ]
    );
    let columns = c
        .query(
            "SELECT column_name, data_type, is_nullable, column_default, udt_name \
             FROM information_schema.columns WHERE table_name = 't' ORDER BY ordinal_position",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        text(columns),
        [
            vec![s("a"), s("integer"), s("NO"), None, s("int4")],
            vec![
                s("b"),
                s("character varying"),
                s("YES"),
                s("'x'::character varying"),
                s("varchar")
            ],
            vec![s("c"), s("ARRAY"), s("YES"), None, s("_int4")],
        ]
    );
    let schemata: Vec<String> = c
        .query("SELECT schema_name FROM information_schema.schemata", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(schemata.contains(&"public".to_string()));
    // A view's definition is its query, as PostgreSQL gives it (tools ask by regclass).
    let row = c
        .query_one(
            "SELECT view_definition, pg_get_viewdef('v'::regclass) \
             FROM information_schema.views WHERE table_name = 'v'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "SELECT a FROM t");
    assert_eq!(row.get::<_, String>(1), "SELECT a FROM t;");
    // Without its schema, the name is a user table's (here: none).
    let err = c.query("SELECT * FROM columns", &[]).await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42P01"));
    node.stop().await;
}

/// Scalar functions and operators answer as PostgreSQL's do, a domain error carries
/// PostgreSQL's SQLSTATE and leaves the session usable, and CASE and COALESCE evaluate a
/// branch only for the rows that reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_functions_answer_as_postgres_does() {
    let (_dir, _, node) = start_fresh().await;
    let c = &node.client;
    let cases = [
        (
            "SELECT position('b' IN 'abc'), strpos('héllo', 'llo'), position('x' IN 'a')",
            "2|3|0",
        ),
        (
            "SELECT trim('  a '), trim(LEADING 'x' FROM 'xxaxx'), trim(BOTH 'xy' FROM 'xyaxy'), \
             btrim('xax', 'x'), ltrim('  a'), rtrim('a  ') || '|'",
            "a|axx|a|a|a|a|",
        ),
        (
            "SELECT left('abcde', 2), left('abcde', -2), right('abcde', 2), repeat('ab', 3), \
             reverse('abc'), lpad('hi', 5, 'xy'), rpad('hi', 4), initcap('hi THOMAS')",
            "ab|abc|de|ababab|cba|xyxhi|hi  |Hi Thomas",
        ),
        (
            "SELECT octet_length('héllo'), bit_length('a'), starts_with('abc', 'ab'), \
             ascii('A'), chr(66), translate('12345', '143', 'ax'), md5('a')",
            "6|8|t|65|B|a2x5|0cc175b9c0f1b6a831c399e269772661",
        ),
        (
            "SELECT regexp_replace('foobarbaz', 'b(..)', 'X\\1Y', 'g'), \
             regexp_replace('abc', 'B', 'x', 'i'), string_to_array('a,b,,c', ','), \
             concat_ws(',', 'a', NULL, 2), concat_ws(NULL, 'a') IS NULL",
            "fooXarYXazY|axc|{a,b,\"\",c}|a,2|t",
        ),
        (
            "SELECT mod(7, 3), power(2, 10), 2 ^ 3, |/ 16, ||/ 27, @ -5, sqrt(2.25), \
             log(100), log(2, 8), ln(1), exp(0), sign(-3), trunc(2.77, 1), trunc(-2.7), \
             round(pi()::numeric, 4)",
            "1|1024|8|4|3|5|1.5|2|3|0|1|-1|2.7|-2|3.1416",
        ),
        (
            "SELECT greatest(1, NULL, 3), least(2.5, 1), greatest('a', 'b'), nullif(1, 1), \
             nullif(1, 2), to_timestamp(86400)",
            "3|1|b||1|1970-01-02 00:00:00+00:00",
        ),
        (
            "SELECT current_user, session_user, current_database(), current_schema(), \
             version() LIKE 'PostgreSQL 15%'",
            "root|root|dev|public|t",
        ),
        (
            "SELECT CASE WHEN x <> 0 THEN 12 / x ELSE -1 END, coalesce(x, 1 / x) \
             FROM (VALUES (0), (4)) AS t(x)",
            "-1|0",
        ),
    ];
    for (query, want) in cases {
        let rows = simple_rows(c.simple_query(query).await.unwrap());
        let got: Vec<String> = rows[0]
            .iter()
            .map(|v| v.clone().unwrap_or_default())
            .collect();
        assert_eq!(got.join("|"), want, "{query}");
    }
    let errors = [
        ("SELECT sqrt(-1)", "2201F"),
        ("SELECT ln(0)", "2201E"),
        ("SELECT log(-2)", "2201E"),
        ("SELECT power(0, -1)", "2201F"),
        ("SELECT exp(1000)", "22003"),
        ("SELECT repeat('x', 2000000000)", "54000"),
        ("SELECT chr(0)", "22023"),
        ("SELECT bool_and(1)", "42883"),
        ("SELECT stddev('a'::varchar)", "42883"),
    ];
    for (query, code) in errors {
        let err = c.simple_query(query).await.unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some(code), "{query}: {err}");
    }
    node.stop().await;
}

/// INSERT, UPDATE and DELETE ... RETURNING give the rows they wrote (through prepared
/// statements too, which describe the columns beforehand) with their row counts; TRUNCATE
/// empties a table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dml_returning_gives_the_written_rows() {
    let (_dir, _, node) = start_fresh().await;
    let c = &node.client;
    c.batch_execute(
        "CREATE TABLE r (k int PRIMARY KEY, v varchar DEFAULT 'd'); CREATE TABLE n (x int);",
    )
    .await
    .unwrap();
    let rows = c
        .query(
            "INSERT INTO r (k) VALUES ($1), (2) RETURNING k, v, k * 10 AS ten",
            &[&1i32],
        )
        .await
        .unwrap();
    let inserted: Vec<(i32, String, i32)> = rows
        .iter()
        .map(|r| (r.get("k"), r.get("v"), r.get("ten")))
        .collect();
    assert_eq!(
        inserted,
        vec![(1, "d".to_string(), 10), (2, "d".to_string(), 20)]
    );
    let count = |messages: &[SimpleQueryMessage]| {
        messages.iter().find_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
    };
    let updated = c
        .simple_query("UPDATE r SET v = 'u' WHERE k = 2 RETURNING *")
        .await
        .unwrap();
    assert_eq!(count(&updated), Some(1));
    assert_eq!(
        simple_rows(updated),
        vec![vec![Some("2".to_string()), Some("u".to_string())]]
    );
    let deleted = c.simple_query("DELETE FROM r RETURNING k").await.unwrap();
    assert_eq!(count(&deleted), Some(2));
    assert_eq!(simple_rows(deleted).len(), 2);
    // A table's hidden row id is not among `*`.
    let plain = c
        .simple_query("INSERT INTO n VALUES (5) RETURNING *")
        .await
        .unwrap();
    assert_eq!(simple_rows(plain), vec![vec![Some("5".to_string())]]);
    let left: i64 = c
        .query_one("SELECT count(*) FROM r", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    // TRUNCATE deletes every row, and views see the deletes.
    c.batch_execute(
        "CREATE MATERIALIZED VIEW nv AS SELECT count(*) AS c FROM n; TRUNCATE n; FLUSH;",
    )
    .await
    .unwrap();
    let in_view: i64 = c.query_one("SELECT c FROM nv", &[]).await.unwrap().get(0);
    assert_eq!(in_view, 0);
    node.stop().await;
}

/// Views that are not materialized: their query runs where they are read (with their own
/// column names, not seeing the reader's CTEs), views read views, materialized views read
/// them, they cannot be written, what they read cannot be dropped while they exist, they
/// survive a restart, and the catalog shows them as views.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_expand_where_they_are_read() {
    let (_dir, objects, node) = start_fresh().await;
    let c = &node.client;
    c.batch_execute(
        "CREATE TABLE t (k int PRIMARY KEY, v int);
         INSERT INTO t VALUES (1, 10), (2, 20), (3, 30);
         CREATE VIEW big (key, val) AS SELECT k, v FROM t WHERE v > 15;
         CREATE VIEW bigger AS SELECT key FROM big WHERE val > 25;
         CREATE MATERIALIZED VIEW n_bigger AS SELECT count(*) AS n FROM bigger;",
    )
    .await
    .unwrap();
    let query = |sql: &'static str| texts(c, sql);
    assert_eq!(
        query("SELECT * FROM big ORDER BY key").await,
        ["2|20", "3|30"]
    );
    assert_eq!(
        query("WITH t AS (SELECT 9 AS k, 9 AS v) SELECT b.key FROM big AS b ORDER BY 1").await,
        ["2", "3"]
    );
    assert_eq!(query("SELECT * FROM bigger").await, ["3"]);
    c.batch_execute("INSERT INTO t VALUES (4, 40); FLUSH;")
        .await
        .unwrap();
    assert_eq!(query("SELECT n FROM n_bigger").await, ["2"]);
    let code = |sql: &'static str| async move {
        let err = c.simple_query(sql).await.unwrap_err();
        err.code().map(|c| c.code().to_string())
    };
    assert_eq!(
        code("INSERT INTO big VALUES (5, 50)").await.as_deref(),
        Some("42809")
    );
    assert_eq!(code("DROP VIEW big").await.as_deref(), Some("2BP01"));
    assert_eq!(code("DROP TABLE big").await.as_deref(), Some("42809"));
    // OR REPLACE: a new query under the same columns (more may follow), never reading
    // itself through another view, and not under a materialized view (which would keep
    // maintaining the old query).
    let replace =
        "CREATE OR REPLACE VIEW big (key, val, twice) AS SELECT k, v, 2 * v FROM t WHERE v > 25";
    assert_eq!(code(replace).await.as_deref(), Some("2BP01"));
    c.batch_execute("DROP MATERIALIZED VIEW n_bigger")
        .await
        .unwrap();
    c.batch_execute(replace).await.unwrap();
    c.batch_execute("CREATE MATERIALIZED VIEW n_bigger AS SELECT count(*) AS n FROM bigger")
        .await
        .unwrap();
    assert_eq!(query("SELECT n FROM n_bigger").await, ["2"]);
    assert_eq!(query("SELECT * FROM bigger ORDER BY 1").await, ["3", "4"]);
    assert_eq!(
        code("CREATE OR REPLACE VIEW big AS SELECT v FROM t")
            .await
            .as_deref(),
        Some("22023")
    );
    assert_eq!(
        code("CREATE OR REPLACE VIEW big (key, val, twice) AS SELECT key, key, key FROM bigger")
            .await
            .as_deref(),
        Some("22023")
    );
    c.batch_execute("CREATE OR REPLACE VIEW big (key, val) AS SELECT k, v FROM t WHERE v > 15")
        .await
        .unwrap_err();
    assert_eq!(
        query(
            "SELECT c.relname, c.relkind, v.view_definition FROM pg_class AS c \
             JOIN information_schema.views AS v ON v.table_name = c.relname \
             WHERE c.relname LIKE 'big%' ORDER BY 1"
        )
        .await,
        [
            "big|v|SELECT k, v, 2 * v FROM t WHERE v > 25",
            "bigger|v|SELECT key FROM big WHERE val > 25"
        ]
    );
    node.stop().await;

    let node = start(Arc::clone(&objects)).await;
    let c = &node.client;
    assert_eq!(
        texts(c, "SELECT * FROM bigger ORDER BY 1").await,
        ["3", "4"]
    );
    // Neither the views a materialized view was defined through nor the table it reads go
    // while it exists.
    for drop in ["DROP VIEW bigger", "DROP TABLE t"] {
        let err = c.batch_execute(drop).await.unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some("2BP01"), "{drop}");
    }
    c.batch_execute(
        "DROP MATERIALIZED VIEW n_bigger; DROP VIEW bigger; DROP VIEW big; DROP TABLE t;",
    )
    .await
    .unwrap();
    node.stop().await;
}

/// `EMIT ON WINDOW CLOSE`: a window aggregation's view takes each window once the watermark
/// has passed it, with its final values; windows held when the node stops come out after
/// the restart, once the watermark passes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_on_window_close_takes_only_closed_windows() {
    let (_dir, objects, node) = start_fresh().await;
    let c = &node.client;
    const WINDOWS: &str = "SELECT window_start, count(*) AS n, sum(v) AS s \
         FROM tumble(e, ts, INTERVAL '10' SECOND) GROUP BY window_start";
    c.batch_execute(&format!(
        "CREATE TABLE e (ts TIMESTAMP, v INT, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
           APPEND ONLY;
         CREATE MATERIALIZED VIEW closed AS {WINDOWS} EMIT ON WINDOW CLOSE;"
    ))
    .await
    .unwrap();
    let plan = simple_rows(
        c.simple_query(&format!(
            "EXPLAIN CREATE MATERIALIZED VIEW x AS {WINDOWS} EMIT ON WINDOW CLOSE"
        ))
        .await
        .unwrap(),
    );
    assert!(
        plan.iter().any(|r| r[0]
            .as_deref()
            .is_some_and(|l| l.contains("StreamEowcSort"))),
        "{plan:?}"
    );
    const CLOSED: &str = "SELECT window_start, n, s FROM closed ORDER BY 1";
    let at = |s: u32| format!("TIMESTAMP '2026-01-01 00:00:00' + INTERVAL '{s}' SECOND");
    c.batch_execute(&format!(
        "INSERT INTO e VALUES ({}, 1), ({}, 2), ({}, 3); FLUSH;",
        at(1),
        at(3),
        at(12)
    ))
    .await
    .unwrap();
    // The watermark is at 7 s: no window has closed.
    assert!(texts(c, CLOSED).await.is_empty());
    c.batch_execute(&format!("INSERT INTO e VALUES ({}, 4); FLUSH;", at(16)))
        .await
        .unwrap();
    assert_eq!(texts(c, CLOSED).await, ["2026-01-01 00:00:00|2|3"]);
    node.stop().await;

    let node = start(Arc::clone(&objects)).await;
    let c = &node.client;
    c.batch_execute(&format!("INSERT INTO e VALUES ({}, 5); FLUSH;", at(31)))
        .await
        .unwrap();
    assert_eq!(
        texts(c, CLOSED).await,
        ["2026-01-01 00:00:00|2|3", "2026-01-01 00:00:10|2|7"]
    );
    let err = c
        .batch_execute("CREATE MATERIALIZED VIEW bad AS SELECT v FROM e EMIT ON WINDOW CLOSE")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("0A000"));
    node.stop().await;
}
