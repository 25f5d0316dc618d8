//! Differential test of incremental view maintenance: random inserts, updates and deletes
//! into several tables with views over them (filters, aggregates, joins of every kind, views
//! on views, top-N, union); after each `FLUSH`, every view must equal its query run as a
//! batch SELECT — also after restarts in the middle, and for a view created while another
//! session keeps writing. An index is checked against its table the same way.

use std::sync::Arc;
use std::time::Duration;

use dataflow::chunk::rows_of;
use lsm_store::object_store::{LocalObjectStore, ObjectStore};
use lsm_store::{LsmStore, LsmStoreOptions};
use pg_server::{Database, DatabaseOptions, Session, StatementResult};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const VIEWS: &[(&str, &str)] = &[
    ("v_filter", "SELECT k, a, b FROM t1 WHERE a > 3"),
    (
        "v_agg",
        "SELECT a, count(*) AS n, sum(b) AS s, min(b) AS mn, max(b) AS mx, \
         count(DISTINCT b) AS d, avg(b) AS av, \
         count(DISTINCT b) FILTER (WHERE k % 2 = 0) AS de, \
         sum(DISTINCT b) FILTER (WHERE k > 10) AS sd FROM t1 GROUP BY a",
    ),
    // Aggregates of ordered values, recomputed from each group's rows in order.
    (
        "v_ordered_agg",
        "SELECT a, array_agg(b ORDER BY b, k) AS arr, \
         string_agg(CAST(k AS varchar), ',' ORDER BY k DESC) AS ks, \
         first_value(k ORDER BY b DESC NULLS LAST, k) AS f, last_value(b ORDER BY k) AS l \
         FROM t1 GROUP BY a",
    ),
    // Aggregates written with others: variance through count, sum and sum of squares,
    // bool_and and bool_or through counts.
    (
        "v_statistics",
        "SELECT a, stddev(b) AS sd, var_pop(b) AS vp, variance(k) AS vk, \
         bool_and(b > k) AS ba, bool_or(b > 5) AS bo FROM t1 GROUP BY a",
    ),
    // Over an append-only table: min and max keep only the extreme so far, distinct values
    // are written once.
    (
        "v_append_agg",
        "SELECT g, count(*) AS n, min(x) AS mn, max(s) AS mx, count(DISTINCT x) AS d, \
         sum(x) AS sx, min(DISTINCT x) AS mdx, \
         count(DISTINCT x) FILTER (WHERE s > 's2') AS dx FROM t4 GROUP BY g",
    ),
    (
        "v_append_union_agg",
        "SELECT g, max(x) AS mx, count(*) AS n FROM \
         (SELECT g, x FROM t4 UNION ALL SELECT g, x + 1 AS x FROM t4 WHERE x > 3) AS u GROUP BY g",
    ),
    // Top-N over an append-only table keeps only the kept rows of each group.
    (
        "v_append_top",
        "SELECT g, x, s FROM t4 ORDER BY x DESC NULLS LAST, s, g LIMIT 3",
    ),
    (
        "v_append_group_top",
        "SELECT * FROM (SELECT g, x, s, row_number() OVER (PARTITION BY g ORDER BY x, s) AS n \
         FROM t4) AS t WHERE n <= 2",
    ),
    (
        "v_append_group_rank",
        "SELECT * FROM (SELECT g, x, s, rank() OVER (PARTITION BY g ORDER BY x DESC) AS r \
         FROM t4) AS t WHERE r <= 2",
    ),
    (
        "v_distinct_on",
        "SELECT DISTINCT ON (a) a, k, b FROM t1 ORDER BY a, b, k DESC",
    ),
    (
        "v_total",
        "SELECT count(*) AS n, sum(a) AS s, min(k) AS mn, max(b) AS mx FROM t1",
    ),
    (
        "v_inner",
        "SELECT t1.k AS k1, t2.k AS k2, t1.b, t2.c FROM t1 JOIN t2 ON t1.a = t2.a",
    ),
    (
        "v_left",
        "SELECT t1.k AS k1, t2.k AS k2 FROM t1 LEFT JOIN t2 ON t1.a = t2.a AND t1.b < t2.k",
    ),
    (
        "v_right",
        "SELECT t1.k AS k1, t2.k AS k2, t2.c FROM t1 RIGHT JOIN t2 ON t1.a = t2.a",
    ),
    (
        "v_full",
        "SELECT t1.k AS k1, t1.a AS a1, t2.k AS k2, t2.a AS a2 FROM t1 FULL JOIN t2 ON t1.a = t2.a",
    ),
    (
        "v_on_view",
        "SELECT k2, count(*) AS n, max(b) AS mb FROM v_inner GROUP BY k2",
    ),
    ("v_top", "SELECT k, b FROM t1 ORDER BY b DESC, k LIMIT 3"),
    ("v_union", "SELECT a FROM t1 UNION ALL SELECT a FROM t2"),
    ("v_distinct", "SELECT DISTINCT x FROM t3"),
    (
        "v_nopk",
        "SELECT x, sum(y) AS s, count(*) AS n FROM t3 GROUP BY x",
    ),
    // Join conditions written in WHERE: the optimizer makes them hash keys and input filters.
    (
        "v_where_join",
        "SELECT t1.k AS k1, t2.k AS k2, t2.c FROM t1, t2 \
         WHERE t1.a = t2.a AND t1.b > t2.k AND t2.k % 2 = 0",
    ),
    (
        "v_left_where",
        "SELECT t1.k AS k1, t2.k AS k2 FROM t1 LEFT JOIN t2 ON t1.a = t2.a AND t2.k > 2 \
         WHERE (t2.c IS NULL OR t2.k > 4) AND (t2.k IS NULL OR t1.b > 0)",
    ),
    // Subqueries, unnested into joins.
    (
        "v_exists",
        "SELECT k, a FROM t1 WHERE EXISTS (SELECT 1 FROM t2 WHERE t2.a = t1.a AND t2.k > 3) \
         AND NOT EXISTS (SELECT 1 FROM t3 WHERE t3.x = t1.b)",
    ),
    (
        "v_semi_condition",
        "SELECT k, b FROM t1 WHERE EXISTS (SELECT 1 FROM t2 WHERE t2.a = t1.a AND t2.k < t1.b) \
         AND NOT EXISTS (SELECT 1 FROM t3 WHERE t3.x = t1.a AND t3.y > t1.b) \
         AND a IN (SELECT x FROM t3)",
    ),
    (
        "v_in",
        "SELECT k, a IN (SELECT a FROM t2) AS i1, b NOT IN (SELECT y FROM t3) AS i2, \
         a IN (SELECT x FROM t3 WHERE t3.y = t1.b) AS i3 FROM t1",
    ),
    (
        "v_scalar",
        "SELECT k, (SELECT count(*) FROM t2 WHERE t2.a = t1.a) AS n, \
         (SELECT max(y) FROM t3) AS my FROM t1 WHERE b > (SELECT min(a) FROM t2)",
    ),
    // Ranking: group top-N with row numbers (ties broken by the key) and ranks (ties kept).
    (
        "v_group_top",
        "SELECT * FROM (SELECT k, a, b, row_number() OVER (PARTITION BY a ORDER BY b DESC, k) AS r \
         FROM t1) AS ranked WHERE r <= 2",
    ),
    (
        "v_rank",
        "SELECT k, a, b, r FROM (SELECT k, a, b, rank() OVER (PARTITION BY a % 3 ORDER BY b) AS r \
         FROM t1) AS ranked WHERE r <= 2 AND r > 0",
    ),
    (
        "v_nopk_join",
        "SELECT t3.x, t3.y, t1.b FROM t3 JOIN t1 ON t3.x = t1.k",
    ),
    // Unnest: a row per element, equal elements kept apart by their position.
    (
        "v_unnest",
        "SELECT k, x FROM t1, unnest(ARRAY[a, b, a]) AS x",
    ),
    // Hopping windows over a time made from the key.
    (
        "v_hop",
        "SELECT window_start, count(*) AS n, sum(a) AS s FROM HOP((SELECT k, a, \
         TIMESTAMP '2020-01-01 00:00:00' + k * INTERVAL '1 minute' AS t FROM t1) AS x, t, \
         INTERVAL '2 minutes', INTERVAL '6 minutes') GROUP BY window_start",
    ),
    // Window functions over partitions (orders are total, so results are deterministic).
    (
        "v_window",
        "SELECT k, a, sum(b) OVER (PARTITION BY a ORDER BY k) AS s, \
         avg(b) OVER (PARTITION BY a ORDER BY k ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS m, \
         lag(b) OVER (PARTITION BY a ORDER BY k) AS l, count(*) OVER () AS n FROM t1",
    ),
];

async fn open(objects: Arc<dyn ObjectStore>) -> (Database, LsmStore) {
    let store = LsmStore::open(objects, LsmStoreOptions::default())
        .await
        .unwrap();
    let db = Database::open(
        store.clone(),
        DatabaseOptions {
            barrier_interval: Duration::from_millis(50),
            parallelism: 2,
            ..DatabaseOptions::default()
        },
    )
    .await
    .unwrap();
    (db, store)
}

async fn run(db: &Database, session: &mut Session, sql: &str) -> Vec<String> {
    let results = db
        .execute(session, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rows = Vec::new();
    for result in results {
        if let StatementResult::Rows { batches, .. } = result {
            rows.extend(rows_of(&batches).iter().map(|r| format!("{r:?}")));
        }
    }
    rows.sort();
    rows
}

fn random_statement(rng: &mut StdRng) -> String {
    let k = rng.random_range(0..30);
    let v = |rng: &mut StdRng| {
        if rng.random_bool(0.1) {
            "NULL".to_string()
        } else {
            rng.random_range(0..8).to_string()
        }
    };
    match rng.random_range(0..11) {
        0..=2 => format!(
            "INSERT INTO t1 VALUES ({k}, {}, {}), ({}, {}, {})",
            v(rng),
            v(rng),
            rng.random_range(0..30),
            v(rng),
            v(rng)
        ),
        3 => format!(
            "DELETE FROM t1 WHERE k = {k} OR a = {}",
            rng.random_range(0..8)
        ),
        4 => format!("UPDATE t1 SET a = {}, b = {} WHERE k = {k}", v(rng), v(rng)),
        5 => format!("INSERT INTO t2 VALUES ({k}, {}, 'c{k}')", v(rng)),
        6 => format!("UPDATE t2 SET a = {} WHERE k % 5 = {}", v(rng), k % 5),
        7 => format!("DELETE FROM t2 WHERE k = {k}"),
        8 => format!(
            "INSERT INTO t3 VALUES ({}, {})",
            rng.random_range(0..10),
            v(rng)
        ),
        9 => format!("DELETE FROM t3 WHERE x = {}", rng.random_range(0..10)),
        _ => format!(
            "INSERT INTO t4 VALUES ({}, {}, 's{}'), ({}, {}, NULL)",
            rng.random_range(0..4),
            v(rng),
            rng.random_range(0..50),
            rng.random_range(0..4),
            v(rng)
        ),
    }
}

async fn check_views(db: &Database, session: &mut Session, views: &[(&str, &str)], when: &str) {
    run(db, session, "FLUSH").await;
    // An index is a view of its table's columns, index columns first.
    let index = run(db, session, "SELECT * FROM t1_b").await;
    let table = run(db, session, "SELECT b, k, a FROM t1").await;
    assert_eq!(index, table, "index t1_b differs from its table {when}");
    for (name, query) in views {
        let view = run(db, session, &format!("SELECT * FROM {name}")).await;
        let batch = run(db, session, query).await;
        assert_eq!(view, batch, "{name} differs from its query {when}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_equal_their_queries_under_random_changes_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let objects: Arc<dyn ObjectStore> = Arc::new(LocalObjectStore::open(dir.path()).unwrap());
    let (mut db, mut store) = open(Arc::clone(&objects)).await;
    let mut session = Session::default();
    let mut rng = StdRng::seed_from_u64(0x5eed);
    run(
        &db,
        &mut session,
        "CREATE TABLE t1 (k int PRIMARY KEY, a int, b int); \
         CREATE TABLE t2 (k int PRIMARY KEY, a int, c varchar); \
         CREATE TABLE t3 (x int, y int); \
         CREATE TABLE t4 (g int, x int, s varchar) APPEND ONLY; \
         SET synchronous_commit = off",
    )
    .await;
    // Rows before the views exist: they are backfilled.
    for _ in 0..40 {
        run(&db, &mut session, &random_statement(&mut rng)).await;
    }
    // Most views now; the last two while another session writes.
    run(&db, &mut session, "CREATE INDEX t1_b ON t1 (b)").await;
    let (now, later) = VIEWS.split_at(VIEWS.len() - 2);
    for (name, query) in now {
        run(
            &db,
            &mut session,
            &format!("CREATE MATERIALIZED VIEW {name} AS {query}"),
        )
        .await;
    }
    check_views(&db, &mut session, now, "after the backfill").await;
    let writer = {
        let db = db.clone();
        let mut rng = StdRng::seed_from_u64(7);
        tokio::spawn(async move {
            let mut session = Session::default();
            for _ in 0..60 {
                run(&db, &mut session, &random_statement(&mut rng)).await;
            }
        })
    };
    for (name, query) in later {
        run(
            &db,
            &mut session,
            &format!("CREATE MATERIALIZED VIEW {name} AS {query}"),
        )
        .await;
    }
    writer.await.unwrap();
    check_views(&db, &mut session, VIEWS, "after a backfill under writes").await;
    for round in 0..6 {
        for _ in 0..25 {
            run(&db, &mut session, &random_statement(&mut rng)).await;
        }
        check_views(&db, &mut session, VIEWS, &format!("in round {round}")).await;
        if round % 3 == 1 {
            // Restart with unflushed writes in flight: what was committed comes back, views
            // included, and they keep up with new changes.
            for _ in 0..10 {
                run(&db, &mut session, &random_statement(&mut rng)).await;
            }
            db.shutdown();
            store.close().await;
            (db, store) = open(Arc::clone(&objects)).await;
            session = Session::default();
            run(&db, &mut session, "SET synchronous_commit = off").await;
            check_views(&db, &mut session, VIEWS, &format!("after restart {round}")).await;
        }
    }
    run(&db, &mut session, "DROP MATERIALIZED VIEW v_on_view").await;
    run(&db, &mut session, "DROP MATERIALIZED VIEW v_inner").await;
    let left: Vec<_> = VIEWS
        .iter()
        .filter(|(n, _)| !n.starts_with("v_inner") && *n != "v_on_view")
        .copied()
        .collect();
    run(&db, &mut session, &random_statement(&mut rng)).await;
    check_views(&db, &mut session, &left, "after dropping views").await;
    db.shutdown();
    store.close().await;
}
