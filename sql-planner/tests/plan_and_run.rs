//! Plans SQL against a catalog and runs the plans over real tables.

use std::collections::HashMap;
use std::sync::Arc;

use dataflow::batch::{BatchContext, execute};
use dataflow::chunk::StreamChunk;
use dataflow::state_table::StateTable;
use dataflow::types::{DataType, Datum};
use epoch_mvcc::Epoch;
use futures::TryStreamExt;
use lsm_store::object_store::MemoryObjectStore;
use lsm_store::{LsmStore, LsmStoreOptions};
use sql_planner::{Catalog, ColumnCatalog, Plan, PlanError, TableCatalog, plan_sql};

struct Tables(HashMap<String, Arc<TableCatalog>>);

impl Catalog for Tables {
    fn table(&self, name: &str) -> Option<Arc<TableCatalog>> {
        self.0.get(name).cloned()
    }

    fn tables(&self) -> Vec<Arc<TableCatalog>> {
        self.0.values().cloned().collect()
    }

    fn schemas(&self) -> Vec<String> {
        vec!["public".into()]
    }
}

fn col(name: &str, ty: DataType) -> ColumnCatalog {
    ColumnCatalog::new(name, ty)
}

async fn setup() -> (LsmStore, Tables) {
    let store = LsmStore::open(
        Arc::new(MemoryObjectStore::new()),
        LsmStoreOptions::default(),
    )
    .await
    .unwrap();
    let t = TableCatalog {
        id: 1,
        schema: "public".into(),
        name: "t".into(),
        columns: vec![
            col("id", DataType::Int64),
            col("name", DataType::Varchar),
            col("v", DataType::Int64),
        ],
        pk: vec![0],
        view: None,
        append_only: false,
        definition: String::new(),
        source: None,
        watermark: None,
        logical: None,
    };
    let u = TableCatalog {
        id: 2,
        schema: "public".into(),
        name: "u".into(),
        columns: vec![col("id", DataType::Int64), col("tag", DataType::Varchar)],
        pk: vec![0],
        view: None,
        append_only: false,
        definition: String::new(),
        source: None,
        watermark: None,
        logical: None,
    };
    for (table, rows) in [
        (&t, " I T I\n + 1 a 10\n + 2 b 20\n + 3 a 30\n + 4 c ."),
        (&u, " I T\n + 1 x\n + 3 y\n + 5 z"),
    ] {
        let mut st = StateTable::new(table.desc(), store.clone(), Epoch(1), 1 << 20);
        st.write_chunk(&StreamChunk::from_pretty(rows));
        st.commit(Epoch(2)).await.unwrap();
    }
    let tables = Tables(
        [
            ("public.t".to_string(), Arc::new(t)),
            ("public.u".to_string(), Arc::new(u)),
        ]
        .into(),
    );
    (store, tables)
}

/// The error running query `sql` fails with.
async fn execution_error(store: &LsmStore, tables: &Tables, sql: &str) -> dataflow::Error {
    let Plan::Query { plan, .. } = plan_sql(sql, tables).unwrap().remove(0) else {
        panic!("not a query")
    };
    let ctx = Arc::new(BatchContext {
        store: store.clone(),
        epoch: Epoch(1),
    });
    execute(plan, ctx)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err()
}

async fn query(store: &LsmStore, tables: &Tables, sql: &str) -> (Vec<String>, Vec<Vec<Datum>>) {
    let mut plans = plan_sql(sql, tables).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let Plan::Query { plan, columns } = plans.remove(0) else {
        panic!("not a query")
    };
    let ctx = Arc::new(BatchContext {
        store: store.clone(),
        epoch: Epoch(1),
    });
    let batches: Vec<_> = execute(plan, ctx).try_collect().await.unwrap();
    let rows = dataflow::chunk::rows_of(&batches);
    (columns.into_iter().map(|(n, _)| n).collect(), rows)
}

fn i(v: i64) -> Datum {
    Datum::Int64(v)
}

/// A numeric (sums of bigint, averages of integers and decimal literals are numeric).
fn dec(v: &str) -> Datum {
    Datum::Decimal(v.parse().unwrap())
}

fn s(v: &str) -> Datum {
    Datum::Varchar(v.into())
}

#[tokio::test]
async fn queries() {
    let (store, tables) = setup().await;
    let (names, rows) = query(&store, &tables, "SELECT name, count(*) AS n, sum(v) FROM t WHERE id > 1 GROUP BY name HAVING count(*) >= 1 ORDER BY name DESC").await;
    assert_eq!(names, vec!["name", "n", "sum"]);
    assert_eq!(
        rows,
        vec![
            vec![s("c"), i(1), Datum::Null],
            vec![s("b"), i(1), dec("20")],
            vec![s("a"), i(1), dec("30")]
        ]
    );

    // GROUP BY a select-list position or output name, as in PostgreSQL; an input
    // column's name means the input column.
    for sql in [
        "SELECT v > 15 AS big, count(*) FROM t GROUP BY 1 ORDER BY 1",
        "SELECT v > 15 AS big, count(*) FROM t GROUP BY big ORDER BY 1",
    ] {
        let (_, rows) = query(&store, &tables, sql).await;
        assert_eq!(
            rows,
            vec![
                vec![Datum::Bool(false), i(1)],
                vec![Datum::Bool(true), i(2)],
                vec![Datum::Null, i(1)],
            ],
            "{sql}"
        );
    }
    let (_, rows) = query(
        &store,
        &tables,
        "SELECT v % 10 AS v, count(*) FROM t GROUP BY v",
    )
    .await;
    assert_eq!(rows.len(), 4, "grouped by the input's v, not the output's");

    let (_, rows) = query(
        &store,
        &tables,
        "SELECT t.id, u.tag FROM t LEFT JOIN u ON t.id = u.id ORDER BY 1",
    )
    .await;
    assert_eq!(
        rows,
        vec![
            vec![i(1), s("x")],
            vec![i(2), Datum::Null],
            vec![i(3), s("y")],
            vec![i(4), Datum::Null]
        ]
    );

    let (names, rows) = query(
        &store,
        &tables,
        "SELECT round(v / 7.0, 1), floor(-1.5), abs(id - 3), upper(name), length(name) FROM t WHERE id = 2",
    )
    .await;
    assert_eq!(names, vec!["round", "floor", "abs", "upper", "length"]);
    assert_eq!(
        rows,
        vec![vec![dec("2.9"), dec("-2"), i(1), s("B"), Datum::Int32(1)]]
    );

    let (names, rows) = query(
        &store,
        &tables,
        "SELECT * FROM generate_series(1, 9, 2) AS s(v) ORDER BY v DESC LIMIT 1 + 1 OFFSET 1.4",
    )
    .await;
    assert_eq!(names, vec!["v"]);
    assert_eq!(rows, vec![vec![Datum::Int32(7)], vec![Datum::Int32(5)]]);
    let (_, rows) = query(&store, &tables, "SELECT count(*) FROM range(10, 0, -3)").await;
    assert_eq!(rows, vec![vec![i(4)]]);

    let (_, rows) = query(&store, &tables, "WITH big AS (SELECT * FROM t WHERE v >= 20) SELECT id FROM big UNION ALL SELECT id FROM u ORDER BY id LIMIT 3 OFFSET 1").await;
    assert_eq!(rows, vec![vec![i(2)], vec![i(3)], vec![i(3)]]);

    let (_, rows) = query(&store, &tables, "SELECT DISTINCT name FROM t ORDER BY name").await;
    assert_eq!(rows, vec![vec![s("a")], vec![s("b")], vec![s("c")]]);

    // Ordering by an expression that is not selected; arithmetic with implicit casts.
    let (_, rows) = query(&store, &tables, "SELECT id + 1, CASE WHEN v IS NULL THEN 'none' ELSE 'some' END FROM t ORDER BY v DESC NULLS LAST, id").await;
    assert_eq!(rows[0], vec![i(4), s("some")]);
    assert_eq!(rows[3], vec![i(5), s("none")]);

    let (_, rows) = query(
        &store,
        &tables,
        "SELECT count(*), count(DISTINCT name), min(name), max(v), avg(v) FROM t",
    )
    .await;
    assert_eq!(rows, vec![vec![i(4), i(3), s("a"), i(30), dec("20")]]);

    let (_, rows) = query(
        &store,
        &tables,
        "SELECT 1 + 2, 'x' || 'y', 7 / 2, coalesce(NULL, 5)",
    )
    .await;
    assert_eq!(
        rows,
        vec![vec![
            Datum::Int32(3),
            s("xy"),
            Datum::Int32(3),
            Datum::Int32(5)
        ]]
    );

    let (_, rows) = query(
        &store,
        &tables,
        "SELECT x.a FROM (SELECT id AS a FROM t WHERE id IN (1, 4)) AS x WHERE x.a BETWEEN 2 AND 9",
    )
    .await;
    assert_eq!(rows, vec![vec![i(4)]]);
}

#[tokio::test]
async fn errors_carry_sqlstates() {
    let (_store, tables) = setup().await;
    let cases = [
        ("SELECT * FROM missing", "42P01"),
        ("SELECT nope FROM t", "42703"),
        ("SELECT id FROM t JOIN u ON t.id = u.id", "42702"),
        ("SELECT name, count(*) FROM t", "42803"),
        ("SELECT count(*) FROM t GROUP BY 1", "42803"),
        ("SELECT name FROM t GROUP BY 2", "42P10"),
        ("SELECT name FROM t GROUP BY 0", "42P10"),
        ("SELECT 1 + 'abc'", "22P02"),
        ("SELECT name + 1 FROM t", "42883"),
        ("SELEC 1", "42601"),
        ("SELECT * FROM t WHERE id", "42804"),
        ("UPDATE t SET (name, v) = ('x')", "0A000"),
        ("UPDATE t SET (name, v) = ('x', 1, 2)", "42601"),
        ("UPDATE t SET v = 1, v = 2", "42601"),
        ("UPDATE t SET id = 5", "0A000"),
        ("SELECT 1 IS UNKNOWN", "42804"),
        ("SELECT * FROM t, u AS t", "42712"),
        (
            "CREATE TABLE a (k int PRIMARY KEY, v int) APPEND ONLY",
            "0A000",
        ),
        ("SELECT NULL + '1'", "42725"),
        ("SELECT 1 LIMIT '-2'", "22023"),
        ("SELECT '{\"a\":}'::jsonb", "22P02"),
        ("SELECT '\\x1'::bytea", "22P02"),
    ];
    for (sql, state) in cases {
        let err: PlanError = plan_sql(sql, &tables).expect_err(sql);
        assert_eq!(err.sqlstate(), state, "{sql}: {err}");
    }
}

/// The rewrites keep results: filters move into joins only where the join kind allows.
#[tokio::test]
async fn optimized_plans_keep_results() {
    let (store, tables) = setup().await;
    let n = Datum::Null;
    let cases: Vec<(&str, Vec<Vec<Datum>>)> = vec![
        (
            "SELECT t.name, u.tag FROM t, u WHERE t.id = u.id AND t.v > 15 ORDER BY 1",
            vec![vec![s("a"), s("y")]],
        ),
        // A WHERE on the padded side of a left join stays above it.
        (
            "SELECT t.id, u.tag FROM t LEFT JOIN u ON t.id = u.id WHERE u.tag IS NULL ORDER BY 1",
            vec![vec![i(2), n.clone()], vec![i(4), n.clone()]],
        ),
        // An ON condition on the kept side of a left join does not filter that side.
        (
            "SELECT t.id, u.tag FROM t LEFT JOIN u ON t.id = u.id AND t.v > 15 ORDER BY 1",
            vec![
                vec![i(1), n.clone()],
                vec![i(2), n.clone()],
                vec![i(3), s("y")],
                vec![i(4), n.clone()],
            ],
        ),
        (
            "SELECT t.id, u.tag FROM t LEFT JOIN u ON t.id = u.id AND u.tag <> 'x' ORDER BY 1",
            vec![
                vec![i(1), n.clone()],
                vec![i(2), n.clone()],
                vec![i(3), s("y")],
                vec![i(4), n.clone()],
            ],
        ),
        (
            "SELECT t.id, u.id FROM t FULL JOIN u ON t.id = u.id WHERE t.id IS NULL",
            vec![vec![n.clone(), i(5)]],
        ),
        (
            "SELECT name, count(*) FROM t GROUP BY name HAVING name > 'a' ORDER BY 1",
            vec![vec![s("b"), i(1)], vec![s("c"), i(1)]],
        ),
        (
            "SELECT name, count(*) FROM t GROUP BY name HAVING count(*) > 1",
            vec![vec![s("a"), i(2)]],
        ),
        ("SELECT count(*) FROM t WHERE 1 = 2", vec![vec![i(0)]]),
        (
            "SELECT x FROM (SELECT id * 2 AS x, v FROM t) AS d WHERE x > 4 AND v IS NULL",
            vec![vec![i(8)]],
        ),
        (
            "SELECT count(*) FROM t WHERE random() < 2",
            vec![vec![i(4)]],
        ),
        // A function both the filter and the projection compute is computed once below.
        (
            "SELECT upper(name) || '!', v FROM t WHERE upper(name) = 'A' OR v IS NULL ORDER BY 2",
            vec![
                vec![s("A!"), i(10)],
                vec![s("A!"), i(30)],
                vec![s("C!"), n.clone()],
            ],
        ),
        (
            "SELECT CASE WHEN v > 15 THEN upper(name) END FROM t \
             WHERE CASE WHEN v > 15 THEN upper(name) = 'B' END",
            vec![vec![s("B")]],
        ),
    ];
    for (sql, expected) in cases {
        assert_eq!(query(&store, &tables, sql).await.1, expected, "{sql}");
    }
    // The comma join runs as a hash join on the equality, scans read only what is used.
    let Plan::Explain(plan) =
        plan_sql("EXPLAIN SELECT t.name FROM t, u WHERE t.id = u.id", &tables)
            .unwrap()
            .remove(0)
    else {
        panic!("not an explain")
    };
    let plan: Vec<String> = plan.iter().map(|l| l.trim().to_string()).collect();
    assert!(
        plan.contains(&"BatchHashJoin { kind: Inner, keys: [0] = [0] }".to_string()),
        "{plan:?}"
    );
    assert!(
        plan.contains(&"BatchScan { table_id: 1, columns: [0, 1] }".to_string()),
        "{plan:?}"
    );
    assert!(
        plan.contains(&"BatchScan { table_id: 2, columns: [0] }".to_string()),
        "{plan:?}"
    );
    let explain = |sql: &str| {
        let Plan::Explain(plan) = plan_sql(sql, &tables).unwrap().remove(0) else {
            panic!("not an explain")
        };
        plan.join("\n")
    };
    // upper(name) is computed in a projection below the filter, once per row.
    let plan = explain("EXPLAIN SELECT upper(name) || '!' FROM t WHERE upper(name) = 'A'");
    assert_eq!(plan.matches("BatchProject").count(), 2, "{plan}");
    // Only some rows reach a CASE's value: the filter's is not computed for every row.
    let plan = explain(
        "EXPLAIN SELECT CASE WHEN v > 15 THEN upper(name) END FROM t \
         WHERE CASE WHEN v > 15 THEN upper(name) = 'B' END",
    );
    assert_eq!(plan.matches("BatchProject").count(), 1, "{plan}");
}

/// Subqueries unnest into joins; IN keeps SQL's three-valued answer.
#[tokio::test]
async fn subqueries() {
    let (store, tables) = setup().await;
    let n = Datum::Null;
    let b = Datum::Bool;
    let cases: Vec<(&str, Vec<Vec<Datum>>)> = vec![
        (
            "SELECT id, (SELECT count(*) FROM u WHERE u.id = t.id), (SELECT max(tag) FROM u) FROM t ORDER BY id",
            vec![
                vec![i(1), i(1), s("z")],
                vec![i(2), i(0), s("z")],
                vec![i(3), i(1), s("z")],
                vec![i(4), i(0), s("z")],
            ],
        ),
        (
            "SELECT id FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id AND u.tag <> 'x') ORDER BY id",
            vec![vec![i(3)]],
        ),
        (
            "SELECT id FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = t.id) ORDER BY id",
            vec![vec![i(2)], vec![i(4)]],
        ),
        (
            "SELECT id FROM t WHERE v > (SELECT min(v) FROM t) + 5 ORDER BY id",
            vec![vec![i(2)], vec![i(3)]],
        ),
        // v IN (10, 30, NULL): a miss is NULL, not false.
        (
            "SELECT id, v IN (SELECT v FROM t WHERE name = 'a' OR v IS NULL), \
             v NOT IN (SELECT v FROM t WHERE name = 'a') FROM t ORDER BY id",
            vec![
                vec![i(1), b(true), b(false)],
                vec![i(2), n.clone(), b(true)],
                vec![i(3), b(true), b(false)],
                vec![i(4), n.clone(), n.clone()],
            ],
        ),
        (
            "SELECT id FROM t WHERE v / 10 IN (SELECT id FROM u WHERE u.id = t.id) ORDER BY id",
            vec![vec![i(1)], vec![i(3)]],
        ),
    ];
    for (sql, expected) in cases {
        assert_eq!(query(&store, &tables, sql).await.1, expected, "{sql}");
    }
    let err = execution_error(&store, &tables, "SELECT (SELECT id FROM u)").await;
    assert_eq!(err.sqlstate(), "21000");
    // In WHERE, any correlation becomes the condition of a semi or anti join.
    for (sql, expected) in [
        (
            "SELECT id FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id < t.id) ORDER BY id",
            vec![vec![i(2)], vec![i(3)], vec![i(4)]],
        ),
        (
            "SELECT id FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = t.id AND u.tag <> 'x') ORDER BY id",
            vec![vec![i(1)], vec![i(2)], vec![i(4)]],
        ),
        (
            "SELECT id FROM t WHERE name IN (SELECT tag FROM u WHERE u.id = t.id) OR id = 4",
            vec![vec![i(4)]],
        ),
    ] {
        assert_eq!(query(&store, &tables, sql).await.1, expected, "{sql}");
    }
}

/// Correlation the WHERE equalities do not cover is planned by the outer rows' values.
#[tokio::test]
async fn correlated_subqueries_of_any_shape() {
    let (store, tables) = setup().await;
    let (n, b) = (Datum::Null, Datum::Bool);
    let list = |v: Vec<Datum>| Datum::List(v);
    let cases: Vec<(&str, Vec<Vec<Datum>>)> = vec![
        (
            "SELECT id, EXISTS (SELECT 1 FROM u WHERE u.id < t.id) FROM t ORDER BY id",
            vec![
                vec![i(1), b(false)],
                vec![i(2), b(true)],
                vec![i(3), b(true)],
                vec![i(4), b(true)],
            ],
        ),
        (
            "SELECT id, (SELECT tag FROM u WHERE u.id = t.id) FROM t ORDER BY id",
            vec![
                vec![i(1), s("x")],
                vec![i(2), n.clone()],
                vec![i(3), s("y")],
                vec![i(4), n.clone()],
            ],
        ),
        (
            "SELECT id, (SELECT max(u.id) FROM u WHERE u.id < t.id) FROM t ORDER BY id",
            vec![
                vec![i(1), n.clone()],
                vec![i(2), i(1)],
                vec![i(3), i(1)],
                vec![i(4), i(3)],
            ],
        ),
        (
            "SELECT id, ARRAY(SELECT tag FROM u WHERE u.id <= t.id ORDER BY tag DESC) FROM t \
             WHERE id <> 2 ORDER BY id",
            vec![
                vec![i(1), list(vec![s("x")])],
                vec![i(3), list(vec![s("y"), s("x")])],
                vec![i(4), list(vec![s("y"), s("x")])],
            ],
        ),
        // Correlation two levels out, and in a join's ON inside the subquery.
        (
            "SELECT id FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id \
             AND u.tag IN (SELECT tag FROM u AS u2 WHERE u2.id = t.id)) ORDER BY id",
            vec![vec![i(1)], vec![i(3)]],
        ),
        (
            "SELECT id FROM t WHERE EXISTS \
             (SELECT 1 FROM u JOIN u AS u2 ON u.id = u2.id AND u.id = t.id) ORDER BY id",
            vec![vec![i(1)], vec![i(3)]],
        ),
        // A derived table referring to the enclosing query.
        (
            "SELECT id FROM t WHERE EXISTS \
             (SELECT 1 FROM (SELECT id FROM u WHERE u.id = t.id) AS x) ORDER BY id",
            vec![vec![i(1)], vec![i(3)]],
        ),
        // IN by a condition other than equalities: NULL where nothing matched but NULL was
        // compared.
        (
            "SELECT id, v IN (SELECT u.id * 10 FROM u WHERE u.id <= t.id) FROM t ORDER BY id",
            vec![
                vec![i(1), b(true)],
                vec![i(2), b(false)],
                vec![i(3), b(true)],
                vec![i(4), n.clone()],
            ],
        ),
        // LATERAL: an aggregate gives every left row one row, others as many as they find.
        (
            "SELECT t.id, x.n FROM t, LATERAL (SELECT count(*) AS n FROM u WHERE u.id < t.id) \
             AS x ORDER BY 1",
            vec![
                vec![i(1), i(0)],
                vec![i(2), i(1)],
                vec![i(3), i(1)],
                vec![i(4), i(2)],
            ],
        ),
        (
            "SELECT t.id, x.tag FROM t CROSS JOIN LATERAL \
             (SELECT tag FROM u WHERE u.id = t.id) AS x ORDER BY 1",
            vec![vec![i(1), s("x")], vec![i(3), s("y")]],
        ),
        (
            "SELECT t.id, x.tag FROM t LEFT JOIN LATERAL \
             (SELECT tag FROM u WHERE u.id = t.id) AS x ON TRUE WHERE t.id < 3 ORDER BY 1",
            vec![vec![i(1), s("x")], vec![i(2), n.clone()]],
        ),
        // An outer row with a NULL still meets its own subquery rows.
        (
            "SELECT id, (SELECT count(*) FROM u WHERE t.v IS NULL) FROM t ORDER BY id",
            vec![
                vec![i(1), i(0)],
                vec![i(2), i(0)],
                vec![i(3), i(0)],
                vec![i(4), i(3)],
            ],
        ),
    ];
    for (sql, expected) in cases {
        assert_eq!(query(&store, &tables, sql).await.1, expected, "{sql}");
    }
    let other_cases: Vec<(&str, Vec<Vec<Datum>>)> = vec![
        (
            "SELECT * EXCEPT (name), t.* EXCEPT (t.id, v) FROM t WHERE id = 1",
            vec![vec![i(1), i(10), s("a")]],
        ),
        (
            "SELECT id FROM t WHERE v IS DISTINCT FROM 10 ORDER BY id",
            vec![vec![i(2)], vec![i(3)], vec![i(4)]],
        ),
        (
            "SELECT id FROM t WHERE v IS NOT DISTINCT FROM NULL",
            vec![vec![i(4)]],
        ),
        // Each row's commit time: the rows were written in epoch 1.
        (
            "SELECT _rw_timestamp FROM t WHERE id = 1",
            vec![vec![Datum::Timestamptz(
                i64::try_from(Epoch(1).unix_ms()).unwrap() * 1000,
            )]],
        ),
    ];
    for (sql, expected) in other_cases {
        assert_eq!(query(&store, &tables, sql).await.1, expected, "{sql}");
    }
    let sql = "SELECT (SELECT tag FROM u WHERE u.id > t.id) FROM t";
    assert_eq!(
        execution_error(&store, &tables, sql).await.sqlstate(),
        "21000"
    );
}

#[tokio::test]
async fn arrays_set_functions_and_set_operations() {
    let (store, tables) = setup().await;
    let list = |v: Vec<Datum>| Datum::List(v);
    let cases: Vec<(&str, Vec<Vec<Datum>>)> = vec![
        (
            "SELECT name, array_agg(id), string_agg(CAST(id AS varchar), '-') FROM t \
             GROUP BY name ORDER BY name",
            vec![
                vec![s("a"), list(vec![i(1), i(3)]), s("1-3")],
                vec![s("b"), list(vec![i(2)]), s("2")],
                vec![s("c"), list(vec![i(4)]), s("4")],
            ],
        ),
        // Ordered aggregates; FILTER drops rows from an array (which keeps NULLs).
        (
            "SELECT string_agg(name, '-' ORDER BY id DESC), \
             array_agg(v ORDER BY id DESC) FILTER (WHERE id > 1), \
             string_agg(name, CAST(id AS varchar) ORDER BY id DESC) FROM t",
            vec![vec![
                s("c-a-b-a"),
                list(vec![Datum::Null, i(30), i(20)]),
                s("c3a2b1a"),
            ]],
        ),
        (
            "SELECT id, x FROM t, unnest(ARRAY[t.id, t.id * 10]) x WHERE id <= 2 ORDER BY id, x",
            vec![
                vec![i(1), i(1)],
                vec![i(1), i(10)],
                vec![i(2), i(2)],
                vec![i(2), i(20)],
            ],
        ),
        (
            "SELECT id, unnest(ARRAY['p', 'q']) FROM t WHERE id = 1",
            vec![vec![i(1), s("p")], vec![i(1), s("q")]],
        ),
        (
            "SELECT a[2], a || 7, cardinality(a), 3 = ANY(a), array_to_string(a, ',') \
             FROM (SELECT CAST('{1,3,NULL}' AS int[]) AS a) AS s",
            vec![vec![
                Datum::Int32(3),
                list(vec![
                    Datum::Int32(1),
                    Datum::Int32(3),
                    Datum::Null,
                    Datum::Int32(7),
                ]),
                Datum::Int32(3),
                Datum::Bool(true),
                s("1,3"),
            ]],
        ),
        (
            "SELECT id FROM t INTERSECT SELECT id FROM u ORDER BY 1",
            vec![vec![i(1)], vec![i(3)]],
        ),
        (
            "SELECT id FROM t EXCEPT SELECT id FROM u ORDER BY 1",
            vec![vec![i(2)], vec![i(4)]],
        ),
    ];
    for (sql, expected) in cases {
        assert_eq!(query(&store, &tables, sql).await.1, expected, "{sql}");
    }
}

#[tokio::test]
async fn dates_times_and_intervals() {
    let (store, tables) = setup().await;
    let (names, rows) = query(
        &store,
        &tables,
        "SELECT date '2020-01-31' + interval '1 month', date '2020-03-01' - date '2020-01-01', \
         date '2020-01-01' - 1, timestamp '2020-01-02 03:00:00' - timestamp '2020-01-01 00:00:00', \
         interval '1 month' * 1.5, extract(year from date '2024-02-29'), \
         date_trunc('month', timestamp '2024-02-29 13:45:30'), date '1998-12-01' - interval '90' day",
    )
    .await;
    assert_eq!(names[5], "extract");
    let day = 86_400_000_000i64;
    assert_eq!(
        rows,
        vec![vec![
            Datum::Timestamp(18_321 * day),
            Datum::Int32(60),
            Datum::Date(18_261),
            Datum::Interval {
                months: 0,
                days: 1,
                nanos: 3 * 3_600_000_000_000
            },
            Datum::Interval {
                months: 1,
                days: 15,
                nanos: 0
            },
            dec("2024"),
            Datum::Timestamp(19_754 * day),
            Datum::Timestamp(10_471 * day),
        ]]
    );
    // now() cannot be frozen into a view.
    let view = plan_sql(
        "CREATE MATERIALIZED VIEW v AS SELECT id FROM t WHERE now() > date '2020-01-01'",
        &tables,
    )
    .unwrap()
    .remove(0);
    let Plan::CreateView { query, columns, .. } = view else {
        panic!("not a view")
    };
    assert!(matches!(
        sql_planner::stream::plan_view(query, &columns, &[], 100, Default::default(), false),
        Err(PlanError::NotSupported(_))
    ));
}

/// CASE, COALESCE and VALUES take the common type of all their typed values, whatever order.
#[tokio::test]
async fn branches_share_the_common_type() {
    let (store, tables) = setup().await;
    let (_, rows) = query(
        &store,
        &tables,
        "SELECT CASE WHEN id = 1 THEN 1.5 ELSE 0 END, CASE WHEN id = 1 THEN NULL ELSE 0 END, \
         coalesce(NULL, 1, 2.5) FROM t WHERE id = 1",
    )
    .await;
    assert_eq!(rows, vec![vec![dec("1.5"), Datum::Null, dec("1")]]);
    let (_, rows) = query(&store, &tables, "VALUES (1), (2.5)").await;
    assert_eq!(rows, vec![vec![dec("1")], vec![dec("2.5")]]);
}

#[tokio::test]
async fn window_functions() {
    let (store, tables) = setup().await;
    // t: (1 a 10) (2 b 20) (3 a 30) (4 c NULL); NULLs sort last ascending.
    let (names, rows) = query(
        &store,
        &tables,
        "SELECT id, row_number() OVER (PARTITION BY name ORDER BY v DESC), \
         rank() OVER (ORDER BY name), dense_rank() OVER (ORDER BY name) AS d FROM t ORDER BY id",
    )
    .await;
    assert_eq!(names, vec!["id", "row_number", "rank", "d"]);
    assert_eq!(
        rows,
        vec![
            vec![i(1), i(2), i(1), i(1)],
            vec![i(2), i(1), i(3), i(2)],
            vec![i(3), i(1), i(1), i(1)],
            vec![i(4), i(1), i(4), i(3)],
        ]
    );
    let (_, rows) = query(
        &store,
        &tables,
        "SELECT id FROM (SELECT id, row_number() OVER (ORDER BY v) AS r FROM t) AS x WHERE r <= 2 ORDER BY id",
    )
    .await;
    assert_eq!(rows, vec![vec![i(1)], vec![i(2)]]);
    // Aggregates over frames: the default (partition start to the row's last peer), ROWS
    // offsets, the whole partition; count(*).
    let (_, rows) = query(
        &store,
        &tables,
        "SELECT id, sum(v) OVER (ORDER BY name), \
         max(v) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW), \
         count(*) OVER (PARTITION BY name), min(id) OVER () FROM t ORDER BY id",
    )
    .await;
    assert_eq!(
        rows,
        vec![
            vec![i(1), dec("40"), i(10), i(2), i(1)],
            vec![i(2), dec("60"), i(20), i(1), i(1)],
            vec![i(3), dec("40"), i(30), i(2), i(1)],
            vec![i(4), dec("60"), i(30), i(1), i(1)],
        ]
    );
    // WHERE filters the rows before the window numbers them.
    let (_, rows) = query(
        &store,
        &tables,
        "SELECT id, row_number() OVER (ORDER BY id) FROM t WHERE id > 2 ORDER BY id",
    )
    .await;
    assert_eq!(rows, vec![vec![i(3), i(1)], vec![i(4), i(2)]]);
    // lag and lead within partitions, in order; NULL past the partition's ends.
    let (_, rows) = query(
        &store,
        &tables,
        "SELECT id, lag(id) OVER (PARTITION BY name ORDER BY id), \
         lead(v, 2) OVER (ORDER BY id) FROM t ORDER BY id",
    )
    .await;
    let n = Datum::Null;
    assert_eq!(
        rows,
        vec![
            vec![i(1), n.clone(), i(30)],
            vec![i(2), n.clone(), n.clone()],
            vec![i(3), i(1), n.clone()],
            vec![i(4), n.clone(), n.clone()],
        ]
    );
    // A scalar function in FROM is one row.
    let (names, rows) = query(&store, &tables, "SELECT * FROM abs(-3) AS a").await;
    assert_eq!(
        (names, rows),
        (vec!["a".to_string()], vec![vec![Datum::Int32(3)]])
    );
}

#[tokio::test]
async fn fetch_first_rows() {
    let (store, tables) = setup().await;
    // names: a, b, a, c — the first two by name tie at 'a'.
    let (_, rows) = query(
        &store,
        &tables,
        "SELECT id FROM t ORDER BY name FETCH FIRST 1 ROWS WITH TIES",
    )
    .await;
    let mut ids: Vec<Datum> = rows.into_iter().map(|r| r[0].clone()).collect();
    ids.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    assert_eq!(ids, vec![i(1), i(3)]);
    let (_, rows) = query(
        &store,
        &tables,
        "SELECT id FROM t ORDER BY id FETCH FIRST 2 ROWS ONLY",
    )
    .await;
    assert_eq!(rows, vec![vec![i(1)], vec![i(2)]]);
}

/// An interval join whose bound on a side is that side's time column shifted by a constant
/// (`y.ts <= x.ts + INTERVAL '2' SECOND`) passes on watermarks of both time columns: the
/// planner moves the shift to the other side of the comparison.
#[test]
fn interval_joins_give_both_time_columns_watermarks() {
    let table = |id: u32, name: &str| {
        Arc::new(TableCatalog {
            id,
            schema: "public".into(),
            name: name.into(),
            columns: vec![col("k", DataType::Int64), col("ts", DataType::Timestamp)],
            pk: vec![],
            view: None,
            append_only: true,
            definition: String::new(),
            source: None,
            watermark: None,
            logical: None,
        })
    };
    let tables = Tables(
        [
            ("public.a".to_string(), table(10, "a")),
            ("public.b".to_string(), table(11, "b")),
        ]
        .into(),
    );
    let view = plan_sql(
        "CREATE MATERIALIZED VIEW v AS SELECT x.k, x.ts AS xts, y.ts AS yts \
         FROM a AS x JOIN b AS y ON x.k = y.k \
         AND y.ts BETWEEN x.ts - INTERVAL '3' SECOND AND x.ts + INTERVAL '2' SECOND",
        &tables,
    )
    .unwrap()
    .remove(0);
    let Plan::CreateView { query, columns, .. } = view else {
        panic!("not a view")
    };
    let upstreams = sql_planner::stream::Upstreams {
        append_only: vec![10, 11],
        watermarks: [(10, vec![1]), (11, vec![1])].into(),
    };
    let planned =
        sql_planner::stream::plan_view(query, &columns, &[], 100, upstreams, false).unwrap();
    let marked = planned.plan.watermark_columns(&|id| match id {
        10 | 11 => vec![1],
        _ => vec![],
    });
    // xts and yts (columns 1 and 2 of the view).
    assert!(
        marked.contains(&1) && marked.contains(&2),
        "{marked:?}\n{:#?}",
        planned.plan.explain()
    );
}
