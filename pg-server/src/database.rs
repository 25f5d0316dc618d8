//! The database facade: runs SQL statements over the store, owns the catalog and the epochs.
//!
//! Writes (rows and catalog changes) go to the store at the writable epoch. A barrier loop
//! seals the writable epoch every `barrier_interval` — sooner when a statement waits for its
//! commit — and a sync task makes sealed epochs durable in order. A statement that must be
//! durable before it returns waits for the commit of the epoch it wrote, so concurrent
//! statements share one commit (group commit).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use bytes::Bytes;
use dataflow::batch::plan::BatchPlan;
use dataflow::batch::{BatchContext, execute};
use dataflow::chunk::{Op, StreamChunk, batch_of, schema_of};
use dataflow::row_codec::{columns_from_rows, decode_value};
use dataflow::state_table::TableDesc;
use dataflow::stream::{JobOptions, Message, Watermark, build_job};
use dataflow::types::{DataType, Datum};
use epoch_mvcc::{Direction, Epoch, StateStore, StateStoreIter, Value, physical_now_ms, table_key};
use futures::TryStreamExt;
use lsm_store::LsmStore;
use parking_lot::RwLock;
use sql_planner::{
    Catalog, DEFAULT_SCHEMA, FunctionCatalog, Plan, PlanError, RelationKind, Returning,
    TableCatalog, ViewCatalog,
};
use sqlparser::ast::{ObjectType, SchemaName, Statement};
use tokio::sync::{Mutex, Notify, mpsc, watch};

use crate::copy::CopyFormat;
use crate::error::{Error, Result};
use crate::streaming::Streams;

/// Table id of the catalog itself.
const CATALOG_TABLE_ID: u32 = 0;
/// User tables get ids from here on.
const FIRST_TABLE_ID: u32 = 1;

/// The longest pause between attempts of a recovery that keeps failing.
const MAX_RECOVERY_PAUSE: Duration = Duration::from_secs(10);

/// Settings of the database facade.
#[derive(Clone, Debug)]
pub struct DatabaseOptions {
    /// How often the writable epoch is sealed and committed when nobody waits.
    pub barrier_interval: Duration,
    /// Actors per hash-distributed fragment of a materialized view's job.
    pub parallelism: usize,
    /// Cache budget of each streaming operator's state table, in bytes.
    pub state_cache_bytes: usize,
    /// On a serving node (a database over a follower store): how often to look for an epoch
    /// the writer committed since.
    pub follow_interval: Duration,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        DatabaseOptions {
            barrier_interval: Duration::from_secs(1),
            parallelism: std::thread::available_parallelism().map_or(1, |n| n.get()),
            state_cache_bytes: 4 << 20,
            follow_interval: Duration::from_millis(200),
        }
    }
}

/// What a statement returns.
#[derive(Debug)]
pub enum StatementResult {
    /// Rows with named, typed columns.
    Rows {
        /// Column names and types.
        columns: Vec<(String, DataType)>,
        /// The rows.
        batches: Vec<RecordBatch>,
        /// The command tag before the row count when the statement is not a query (a DML
        /// statement with `RETURNING`: `INSERT 0`, `UPDATE`, `DELETE`).
        tag: Option<String>,
    },
    /// A command tag such as `INSERT 0 3`.
    Command {
        /// The command (`INSERT`, `CREATE TABLE`, ...).
        tag: String,
        /// Rows affected, for commands that report them.
        rows: Option<usize>,
    },
}

/// What a statement takes and returns, for the extended protocol's `Describe`.
#[derive(Clone, Debug, PartialEq)]
pub struct Description {
    /// Types of the `$n` parameters, in order.
    pub params: Vec<DataType>,
    /// Names and types of the result columns (empty for commands).
    pub columns: Vec<(String, DataType)>,
}

/// What `CREATE MATERIALIZED VIEW` or `CREATE INDEX` creates.
struct ViewSpec {
    schema: String,
    name: String,
    query: BatchPlan,
    columns: Vec<(String, DataType)>,
    definition: String,
    /// For an index: its table and the columns it is ordered by.
    index: Option<(u32, Vec<usize>)>,
    /// `EMIT ON WINDOW CLOSE`.
    emit_on_window_close: bool,
    /// The views (not materialized) its query named.
    views_read: Vec<u32>,
}

/// Changes of one table that a statement sends to the views reading it.
struct TableChanges {
    table: u32,
    chunks: Vec<StreamChunk>,
    /// Set for inserts into a table with a declared primary key: an insert replaces the row
    /// with its key, if any, which readers must see as an update.
    upsert: Option<TableDesc>,
    /// The table's watermark after the changes, when they raised it.
    watermark: Option<Watermark>,
}

impl TableChanges {
    fn of(table: &TableCatalog, chunks: Vec<StreamChunk>, op: Op) -> Option<TableChanges> {
        Some(TableChanges {
            table: table.id,
            chunks,
            upsert: (op == Op::Insert && !table.has_row_id()).then(|| table.desc()),
            watermark: None,
        })
    }
}

/// Where a `COPY ... FROM STDIN` writes, and how its input is formatted.
#[derive(Clone, Debug)]
pub struct CopyIn {
    table: Arc<TableCatalog>,
    /// Table positions of the input's fields, in input order.
    columns: Vec<usize>,
    format: CopyFormat,
}

impl CopyIn {
    /// Fields per input row.
    pub fn width(&self) -> usize {
        self.columns.len()
    }
}

/// A command PostgreSQL's grammar (and so the parser) does not cover.
enum SpecialCommand {
    Flush,
    ShowMaterializedViews,
    /// `DESCRIBE name` (`keys`: with the keys and the name) or `SHOW COLUMNS FROM name`.
    Describe {
        name: String,
        keys: bool,
    },
    /// `SHOW CREATE kind name`.
    ShowCreate {
        kind: String,
        name: String,
    },
    ShowJobs,
}

impl SpecialCommand {
    fn parse(sql: &str) -> Option<SpecialCommand> {
        let words: Vec<String> = sql
            .trim()
            .trim_end_matches(';')
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        Some(match words.as_slice() {
            ["flush"] => SpecialCommand::Flush,
            ["show", "materialized", "views"] => SpecialCommand::ShowMaterializedViews,
            ["describe" | "desc", name] => SpecialCommand::Describe {
                name: name.to_string(),
                keys: true,
            },
            ["show", "columns", "from" | "in", name] => SpecialCommand::Describe {
                name: name.to_string(),
                keys: false,
            },
            ["show", "create", kind @ .., name] if !kind.is_empty() => SpecialCommand::ShowCreate {
                kind: kind.join(" "),
                name: name.to_string(),
            },
            ["show", "jobs"] => SpecialCommand::ShowJobs,
            _ => return None,
        })
    }

    /// The columns of its result.
    fn columns(&self) -> Vec<(String, DataType)> {
        let text = |names: &[&str]| {
            names
                .iter()
                .map(|n| (n.to_string(), DataType::Varchar))
                .collect()
        };
        match self {
            SpecialCommand::Flush => vec![],
            SpecialCommand::ShowMaterializedViews => text(&["Name"]),
            SpecialCommand::Describe { .. } => text(&["Name", "Type", "Is Hidden", "Description"]),
            SpecialCommand::ShowCreate { .. } => text(&["Name", "Create Sql"]),
            SpecialCommand::ShowJobs => vec![
                ("Id".into(), DataType::Int64),
                ("Statement".into(), DataType::Varchar),
                ("Progress".into(), DataType::Varchar),
            ],
        }
    }
}

/// Per-connection settings (`SET` / `SHOW`).
#[derive(Clone, Debug)]
pub struct Session {
    settings: BTreeMap<String, String>,
}

impl Default for Session {
    fn default() -> Self {
        let settings = [
            ("synchronous_commit", "on"),
            ("rw_implicit_flush", "false"),
            ("application_name", ""),
            ("client_encoding", "UTF8"),
            ("datestyle", "ISO, MDY"),
            ("server_version", sql_planner::PG_VERSION),
            ("standard_conforming_strings", "on"),
            ("timezone", "UTC"),
            ("transaction_isolation", "read committed"),
        ];
        Session {
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

impl Session {
    fn waits_for_commit(&self) -> bool {
        let on = |k: &str| {
            self.settings.get(k).is_some_and(|v| {
                matches!(
                    v.to_lowercase().as_str(),
                    "on" | "true" | "1" | "local" | "remote_write" | "remote_apply"
                )
            })
        };
        on("synchronous_commit") || on("rw_implicit_flush")
    }
}

/// A failed epoch commit, reported to the statements waiting for it.
#[derive(Clone, Debug)]
struct CommitFailure {
    epoch: Epoch,
    sqlstate: &'static str,
    message: String,
}

struct CatalogState {
    /// Tables by qualified name (`schema.name`).
    tables: HashMap<String, Arc<TableCatalog>>,
    /// SQL functions by qualified name.
    functions: HashMap<String, Arc<FunctionCatalog>>,
    schemas: BTreeSet<String>,
    next_table_id: u32,
    /// The watermark of each table that declares one, as its inserts have raised it.
    watermarks: HashMap<u32, Datum>,
}

impl Catalog for CatalogState {
    fn table(&self, name: &str) -> Option<Arc<TableCatalog>> {
        self.tables.get(name).cloned()
    }

    fn tables(&self) -> Vec<Arc<TableCatalog>> {
        self.tables.values().cloned().collect()
    }

    fn schemas(&self) -> Vec<String> {
        self.schemas.iter().cloned().collect()
    }

    fn function(&self, name: &str) -> Option<Arc<FunctionCatalog>> {
        self.functions.get(name).cloned()
    }

    fn functions(&self) -> Vec<Arc<FunctionCatalog>> {
        self.functions.values().cloned().collect()
    }
}

struct Inner {
    store: LsmStore,
    catalog: RwLock<CatalogState>,
    /// The writable epoch; writers hold the read side while writing, the barrier the write
    /// side while sealing.
    writable: tokio::sync::RwLock<Epoch>,
    committed: watch::Receiver<Epoch>,
    /// The newest epoch whose commit failed, with the error, until a later commit succeeds.
    commit_failure: Arc<parking_lot::Mutex<Option<CommitFailure>>>,
    barrier_requested: Notify,
    /// Statements that change the catalog, or read and then write, run one at a time (see
    /// [`Database::lock_dml`]).
    dml: Mutex<()>,
    next_row_id: AtomicU64,
    shutdown: watch::Sender<bool>,
    streams: Streams,
    job_options: JobOptions,
    /// Why the streaming jobs are recovering, while they do (see [`Database::recover`]):
    /// writes are refused meanwhile.
    recovering: parking_lot::Mutex<Option<String>>,
    /// The epochs recoveries abandoned, each as (last sealed, last abandoned): statements
    /// that wrote in them failed, and later commits must not acknowledge them.
    abandoned: parking_lot::Mutex<Vec<(Epoch, Epoch)>>,
    /// Checkpoint counters for `/metrics`.
    barrier_metrics: Arc<crate::metrics::BarrierMetrics>,
}

/// A running database over an [`LsmStore`].
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

impl Inner {
    /// Whether a recovery abandoned `epoch`.
    fn abandoned(&self, epoch: Epoch) -> bool {
        self.abandoned
            .lock()
            .iter()
            .any(|(sealed, last)| *sealed < epoch && epoch <= *last)
    }

    /// The error of a statement whose epoch a recovery abandoned (or is abandoning).
    fn abandoned_error(&self) -> Error {
        let reason = self.recovering.lock().clone().unwrap_or_default();
        Error::sql(
            "40001",
            format!(
                "the statement was rolled back: a streaming job failed and the node recovered \
                 from the last checkpoint{}; retry it",
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({reason})")
                }
            ),
        )
    }
}

/// The error of a write refused while the streaming jobs recover.
fn recovering_error(reason: &str) -> Error {
    Error::sql(
        "57P03",
        format!("the node is recovering from a streaming job's failure ({reason}); retry"),
    )
}

/// Catalog rows: tables under vnode 0 keyed by id, schemas under vnode 1 keyed by name,
/// SQL functions under vnode 2 keyed by qualified name, table watermarks under vnode 3 keyed
/// by table id.
fn catalog_key(id: u32) -> Bytes {
    table_key(CATALOG_TABLE_ID, 0, &id.to_be_bytes())
}

/// The write that stores `table`'s catalog entry.
fn catalog_put(table: &TableCatalog) -> (Bytes, Value) {
    let value = serde_json::to_vec(table).expect("catalog entries serialize");
    (catalog_key(table.id), Value::Put(Bytes::from(value)))
}

fn watermark_key(table: u32) -> Bytes {
    table_key(CATALOG_TABLE_ID, 3, &table.to_be_bytes())
}

fn schema_key(name: &str) -> Bytes {
    table_key(CATALOG_TABLE_ID, 1, name.as_bytes())
}

fn function_key(qualified: &str) -> Bytes {
    table_key(CATALOG_TABLE_ID, 2, qualified.as_bytes())
}

/// A statement's command for messages: `INSERT`, `CREATE MATERIALIZED VIEW`, ...
fn command_name(stmt: &Statement) -> String {
    let text = stmt.to_string().to_uppercase();
    let mut words = text.split_whitespace();
    let first = words.next().unwrap_or_default().to_string();
    if !matches!(first.as_str(), "CREATE" | "DROP" | "ALTER") {
        return first;
    }
    let mut name = vec![first];
    for word in words {
        let modifier = matches!(word, "OR" | "REPLACE" | "UNIQUE" | "MATERIALIZED");
        if !modifier || word == "MATERIALIZED" {
            name.push(word.to_string());
        }
        if !modifier {
            break;
        }
    }
    name.join(" ")
}

/// The catalog as of `epoch`.
async fn load_catalog(store: &LsmStore, epoch: Epoch) -> Result<CatalogState> {
    let mut tables = HashMap::new();
    let mut next_table_id = FIRST_TABLE_ID;
    let start = Bytes::copy_from_slice(&epoch_mvcc::table_prefix(CATALOG_TABLE_ID));
    let end = Bytes::copy_from_slice(&epoch_mvcc::table_prefix(CATALOG_TABLE_ID + 1));
    let mut iter = store
        .iter(
            (
                std::ops::Bound::Included(start),
                std::ops::Bound::Excluded(end),
            ),
            epoch,
            Direction::Forward,
        )
        .await?;
    let mut schemas = BTreeSet::from([DEFAULT_SCHEMA.to_string()]);
    let mut functions = HashMap::new();
    let mut watermarks = HashMap::new();
    let corrupt = |e: serde_json::Error| Error::sql("XX001", format!("corrupt catalog entry: {e}"));
    while let Some((key, value)) = iter.next().await? {
        match epoch_mvcc::vnode_of(&key) {
            Some(1) => {
                schemas.insert(serde_json::from_slice(&value).map_err(corrupt)?);
                continue;
            }
            Some(2) => {
                let function: FunctionCatalog = serde_json::from_slice(&value).map_err(corrupt)?;
                functions.insert(function.qualified_name(), Arc::new(function));
                continue;
            }
            Some(3) => {
                let id = key
                    .get(key.len().saturating_sub(4)..)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map(u32::from_be_bytes)
                    .ok_or_else(|| Error::sql("XX001", "corrupt watermark key"))?;
                watermarks.insert(id, serde_json::from_slice(&value).map_err(corrupt)?);
                continue;
            }
            _ => {}
        }
        let table: TableCatalog = serde_json::from_slice(&value).map_err(corrupt)?;
        next_table_id = next_table_id.max(table.id + 1);
        if let Some(view) = &table.view {
            next_table_id = next_table_id.max(view.next_table_id);
        }
        tables.insert(table.qualified_name(), Arc::new(table));
    }
    Ok(CatalogState {
        tables,
        functions,
        watermarks,
        schemas,
        next_table_id,
    })
}

impl Database {
    /// Recovers the catalog at the store's committed epoch and starts the barrier loop, or
    /// over a follower store ([`LsmStore::open_follower`]) runs a read-only serving node that
    /// moves to each epoch the writer commits.
    pub async fn open(store: LsmStore, options: DatabaseOptions) -> Result<Database> {
        let committed = store.committed_epoch();
        let catalog = load_catalog(&store, committed).await?;
        let writable = committed.next();
        let (committed_tx, committed_rx) = watch::channel(committed);
        let (shutdown, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            store,
            catalog: RwLock::new(catalog),
            writable: tokio::sync::RwLock::new(writable),
            committed: committed_rx,
            commit_failure: Arc::default(),
            barrier_requested: Notify::new(),
            dml: Mutex::new(()),
            next_row_id: AtomicU64::new(physical_now_ms() << 22),
            shutdown,
            streams: Streams::new(),
            job_options: JobOptions {
                parallelism: options.parallelism,
                cache_bytes: options.state_cache_bytes,
            },
            recovering: parking_lot::Mutex::new(None),
            abandoned: parking_lot::Mutex::new(Vec::new()),
            barrier_metrics: Arc::default(),
        });
        let database = Database { inner };
        if database.is_serving() {
            Self::spawn_follow_loop(&database.inner, options.follow_interval, committed_tx);
        } else {
            database.recover_jobs(committed, writable).await?;
            Self::spawn_barrier_loop(&database.inner, options.barrier_interval, committed_tx);
        }
        Ok(database)
    }

    /// Whether this is a read-only serving node.
    pub fn is_serving(&self) -> bool {
        self.inner.store.is_follower()
    }

    /// A serving node's error for a statement that would write.
    fn check_writer(&self, command: &str) -> Result<()> {
        if self.is_serving() {
            return Err(Error::sql(
                "25006",
                format!(
                    "cannot execute {command} on a serving node: it only reads what the writer \
                     commits; send writes and DDL to the writer"
                ),
            ));
        }
        Ok(())
    }

    /// Moves a serving node to the newest epoch the writer committed, with the catalog as of
    /// it; returns whether it moved.
    async fn follow(inner: &Inner, committed: &watch::Sender<Epoch>) -> Result<bool> {
        if !inner.store.refresh().await? {
            return Ok(false);
        }
        let epoch = inner.store.committed_epoch();
        let catalog = load_catalog(&inner.store, epoch).await?;
        *inner.catalog.write() = catalog;
        committed.send_replace(epoch);
        Ok(true)
    }

    /// A serving node looks for newly committed epochs every `interval`.
    fn spawn_follow_loop(inner: &Arc<Inner>, interval: Duration, committed: watch::Sender<Epoch>) {
        let weak = Arc::downgrade(inner);
        let mut stop = inner.shutdown.subscribe();
        tokio::spawn(async move {
            loop {
                {
                    let Some(inner) = weak.upgrade() else { return };
                    if let Err(e) = Self::follow(&inner, &committed).await {
                        tracing::warn!(error = %e, "following the writer failed; retrying");
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.changed() => return,
                }
            }
        });
    }

    /// Restarts the job of every view from its state at the committed epoch: one barrier
    /// from `committed` to `writable` connects them all.
    async fn recover_jobs(&self, committed: Epoch, writable: Epoch) -> Result<()> {
        let mut views: Vec<Arc<TableCatalog>> = self
            .inner
            .catalog
            .read()
            .tables
            .values()
            .filter(|t| t.view.is_some())
            .cloned()
            .collect();
        // A view's upstream views have smaller ids and must be connected first.
        views.sort_by_key(|v| v.id);
        for view in &views {
            let _ = self.start_job(view, vec![]);
        }
        if views.is_empty() {
            return Ok(());
        }
        let prepared = self.inner.streams.prepare_barrier(committed, writable);
        for target in &prepared.targets {
            let _ = target
                .send(Message::Barrier(prepared.barrier.clone()))
                .await;
        }
        self.inner
            .streams
            .collect(committed, prepared.expected)
            .await
            .map_err(|e| Error::sql("XX000", format!("recovering views failed: {e}")))?;
        self.inner.streams.barrier_collected(&prepared.barrier);
        Ok(())
    }

    /// Spawns the actors of `view`'s job and registers it for the next barrier, which also
    /// writes `catalog_writes`.
    fn start_job(
        &self,
        view: &TableCatalog,
        catalog_writes: Vec<(Bytes, Value)>,
    ) -> watch::Receiver<Option<Epoch>> {
        let plan = &view.view.as_ref().expect("a view").plan;
        let streams = &self.inner.streams;
        let built = build_job(
            view.id,
            plan,
            view.desc(),
            self.inner.store.clone(),
            &self.inner.job_options,
            &|id| streams.upstream_actors(id),
            streams.collector(),
        );
        streams.add_job(view.id, view.name.clone(), built, catalog_writes)
    }

    /// Seals the writable epoch on every tick or request; a separate task syncs sealed epochs
    /// in order, so sealing never waits behind an upload.
    fn spawn_barrier_loop(inner: &Arc<Inner>, interval: Duration, committed: watch::Sender<Epoch>) {
        // Sealed epochs with the time their barrier was injected.
        let (sealed_tx, mut sealed_rx) = mpsc::unbounded_channel::<(Epoch, Instant)>();
        let store = inner.store.clone();
        let failure = Arc::clone(&inner.commit_failure);
        let metrics = Arc::clone(&inner.barrier_metrics);
        tokio::spawn(async move {
            while let Some((epoch, injected)) = sealed_rx.recv().await {
                match store.sync(epoch).await {
                    Ok(()) => {
                        *failure.lock() = None;
                        committed.send_replace(epoch);
                        metrics.committed(injected.elapsed());
                    }
                    Err(e) => {
                        metrics.commit_failed();
                        tracing::error!(error = %e, ?epoch, "epoch commit failed");
                        // A later sync retries the same sealed data; until one succeeds,
                        // statements waiting for these epochs get the error.
                        let e = Error::from(e);
                        *failure.lock() = Some(CommitFailure {
                            epoch,
                            sqlstate: e.sqlstate(),
                            message: format!("commit failed: {e}"),
                        });
                    }
                }
            }
        });
        let weak = Arc::downgrade(inner);
        let mut stop = inner.shutdown.subscribe();
        tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = inner.barrier_requested.notified() => {}
                    _ = stop.changed() => return,
                }
                match Self::checkpoint(&inner).await {
                    Ok(sealed) => {
                        if sealed_tx.send(sealed).is_err() {
                            return;
                        }
                    }
                    Err(reason) => {
                        let database = Database { inner };
                        if !database.recover(reason, &mut stop).await {
                            return;
                        }
                    }
                }
            }
        });
    }

    /// One checkpoint: injects the barrier that closes the writable epoch and opens the next,
    /// and seals the closed epoch once every job has processed it; returns that epoch and
    /// when its barrier went out, or why it could not be sealed.
    async fn checkpoint(inner: &Inner) -> std::result::Result<(Epoch, Instant), String> {
        let mut writable = inner.writable.write().await;
        let injected = Instant::now();
        let sealed = *writable;
        let prepared = inner.streams.prepare_barrier(sealed, sealed.next());
        *writable = sealed.next();
        if !prepared.catalog_writes.is_empty() {
            inner
                .store
                .ingest_batch(*writable, prepared.catalog_writes)
                .await
                .map_err(|e| format!("writing the catalog failed: {e}"))?;
        }
        for target in &prepared.targets {
            let _ = target
                .send(Message::Barrier(prepared.barrier.clone()))
                .await;
        }
        drop(writable);
        inner.streams.collect(sealed, prepared.expected).await?;
        inner.streams.barrier_collected(&prepared.barrier);
        inner
            .store
            .seal_epoch(sealed)
            .map_err(|e| format!("sealing failed: {e}"))?;
        Ok((sealed, injected))
    }

    /// Brings the streaming jobs back after one failed, or an epoch could not be sealed or
    /// its catalog changes written (`reason`): every job's actors stop, the epochs after the
    /// last sealed one are abandoned (nothing written in them was acknowledged; statements
    /// waiting for them fail with 40001), the catalog is reloaded as of the sealed epoch, and
    /// every view's job restarts from its state there. Writes are refused meanwhile. Retried
    /// with a growing pause until it succeeds; false when the node shuts down first.
    async fn recover(&self, reason: String, stop: &mut watch::Receiver<bool>) -> bool {
        tracing::error!(%reason, "a streaming job failed; recovering from the last checkpoint");
        self.inner.barrier_metrics.recovering();
        *self.inner.recovering.lock() = Some(reason);
        let mut pause = Duration::from_millis(100);
        loop {
            match self.restart_jobs().await {
                Ok(()) => {
                    *self.inner.recovering.lock() = None;
                    tracing::info!("recovered: the streaming jobs run again");
                    return true;
                }
                Err(e) => tracing::error!(error = %e, ?pause, "recovery failed; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => return false,
            }
            pause = (pause * 2).min(MAX_RECOVERY_PAUSE);
        }
    }

    /// One attempt of [`Database::recover`].
    async fn restart_jobs(&self) -> Result<()> {
        // Every statement that changes the catalog holds this: those in flight finish or
        // fail first (waits for epochs being abandoned fail while recovering), so none is
        // half done when the catalog is reloaded.
        let _dml = self.inner.dml.lock().await;
        let mut writable = self.inner.writable.write().await;
        self.inner.streams.abort_all().await;
        let store = &self.inner.store;
        store.discard_unsealed();
        let sealed = store.sealed_epoch();
        self.inner.abandoned.lock().push((sealed, *writable));
        *writable = writable.next();
        *self.inner.catalog.write() = load_catalog(store, sealed).await?;
        self.recover_jobs(sealed, *writable).await
    }

    /// Stops the barrier loop (after which writes no longer commit) and the views' jobs.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        self.inner.streams.shutdown();
    }

    /// The node's metrics in Prometheus' text format.
    pub fn metrics_text(&self) -> String {
        crate::metrics::render(
            &self.inner.barrier_metrics,
            &self.inner.streams.progress(),
            &self.inner.store.stats(),
        )
    }

    /// The progress of the job maintaining view `name` (in any schema): its backfill, the
    /// changes it wrote, and its sources' events.
    pub fn view_progress(&self, name: &str) -> Option<Arc<dataflow::stream::JobProgress>> {
        self.inner
            .streams
            .progress()
            .into_iter()
            .find(|(view, _)| view == name)
            .map(|(_, progress)| progress)
    }

    /// The newest committed epoch.
    pub fn committed_epoch(&self) -> Epoch {
        *self.inner.committed.borrow()
    }

    /// Waits until everything written so far is committed (at once on a serving node,
    /// which writes nothing).
    pub async fn flush(&self) -> Result<()> {
        if self.is_serving() {
            return Ok(());
        }
        let epoch = *self.inner.writable.read().await;
        self.wait_committed(epoch).await
    }

    async fn wait_committed(&self, epoch: Epoch) -> Result<()> {
        let mut committed = self.inner.committed.clone();
        loop {
            self.inner.barrier_requested.notify_one();
            // A later epoch's commit must not acknowledge an abandoned one.
            if self.inner.abandoned(epoch) {
                return Err(self.inner.abandoned_error());
            }
            if *committed.borrow_and_update() >= epoch {
                return Ok(());
            }
            if self.inner.recovering.lock().is_some() && epoch > self.inner.store.sealed_epoch() {
                return Err(self.inner.abandoned_error());
            }
            if let Some(f) = self.inner.commit_failure.lock().clone()
                && f.epoch >= epoch
            {
                return Err(Error::sql(f.sqlstate, f.message));
            }
            tokio::select! {
                changed = committed.changed() => {
                    if changed.is_err() {
                        return Err(Error::sql("57P01", "the database is shutting down"));
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }

    /// Takes the lock of the statements that change the catalog or read and then write (so
    /// they run one at a time); refused while the streaming jobs recover, which takes it to
    /// reload the catalog.
    async fn lock_dml(&self) -> Result<tokio::sync::MutexGuard<'_, ()>> {
        let guard = self.inner.dml.lock().await;
        if let Some(reason) = self.inner.recovering.lock().clone() {
            return Err(recovering_error(&reason));
        }
        Ok(guard)
    }

    /// Writes at the writable epoch and sends `changes` (of table `.0`) to the views reading
    /// it, in the same epoch; returns the epoch written.
    async fn write(
        &self,
        writes: Vec<(Bytes, Value)>,
        changes: Option<TableChanges>,
    ) -> Result<Epoch> {
        if let Some(reason) = self.inner.recovering.lock().clone() {
            return Err(recovering_error(&reason));
        }
        let writable = self.inner.writable.read().await;
        // Readers change only at barriers, which wait for this lock.
        let changes = match changes {
            Some(c) if self.inner.streams.has_readers(c.table) => {
                let chunks = match &c.upsert {
                    Some(desc) => self.upserts(desc, c.chunks, *writable).await?,
                    None => c.chunks,
                };
                Some((c.table, chunks, c.watermark))
            }
            _ => None,
        };
        if !writes.is_empty() {
            self.inner.store.ingest_batch(*writable, writes).await?;
        }
        if let Some((table, chunks, watermark)) = changes {
            self.inner.streams.dispatch(table, chunks, watermark).await;
        }
        Ok(*writable)
    }

    /// Inserts as readers see them: one that replaces a row with the same primary key (an
    /// earlier row or one inserted earlier by the same statement) is an update of that row.
    async fn upserts(
        &self,
        desc: &TableDesc,
        chunks: Vec<StreamChunk>,
        epoch: Epoch,
    ) -> Result<Vec<StreamChunk>> {
        let mut inserted: HashMap<Bytes, Vec<Datum>> = HashMap::new();
        let mut out = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let mut ops = Vec::with_capacity(chunk.cardinality());
            let mut rows = Vec::with_capacity(chunk.cardinality());
            for (r, key) in desc.keys(chunk.data()).into_iter().enumerate() {
                let new = chunk.row(r);
                let old = match inserted.get(&key) {
                    Some(row) => Some(row.clone()),
                    None => match self.inner.store.get(&key, epoch).await? {
                        Some(value) => Some(decode_value(&value, &desc.types)?),
                        None => None,
                    },
                };
                match old {
                    Some(old) => {
                        ops.extend([Op::UpdateDelete, Op::UpdateInsert]);
                        rows.push(old);
                    }
                    None => ops.push(Op::Insert),
                }
                rows.push(new.clone());
                inserted.insert(key, new);
            }
            let columns = columns_from_rows(&rows, &desc.types);
            let data = batch_of(schema_of(&desc.types), columns, rows.len())?;
            out.push(StreamChunk::new(ops, data));
        }
        Ok(out)
    }

    /// The result columns of `sql` when it is a command PostgreSQL's grammar does not cover
    /// (`DESCRIBE`, `SHOW CREATE ...`, `FLUSH`, ...), for the extended protocol's `Describe`.
    pub fn describe_special(&self, sql: &str) -> Option<Description> {
        SpecialCommand::parse(sql).map(|command| Description {
            params: vec![],
            columns: command.columns(),
        })
    }

    /// The types of a statement's `$n` parameters and the columns it returns (for the
    /// extended protocol's `Describe`).
    pub fn describe(&self, stmt: &Statement) -> Result<Description> {
        let columns_only = |columns| {
            Ok(Description {
                params: vec![],
                columns,
            })
        };
        match stmt {
            Statement::ShowVariable { variable } => {
                columns_only(vec![(variable_name(variable), DataType::Varchar)])
            }
            Statement::ShowTables { .. } => columns_only(vec![("Name".into(), DataType::Varchar)]),
            Statement::Set(_) | Statement::Copy { .. } => columns_only(vec![]),
            _ => {
                let (plan, params) =
                    sql_planner::plan_with_parameters(stmt, &*self.inner.catalog.read())?;
                let columns = match plan {
                    Plan::Query { columns, .. } => columns,
                    Plan::Insert {
                        returning: Some(r), ..
                    }
                    | Plan::Delete {
                        returning: Some(r), ..
                    }
                    | Plan::Update {
                        returning: Some(r), ..
                    } => r.columns,
                    Plan::Explain(_) => vec![("QUERY PLAN".into(), DataType::Varchar)],
                    _ => vec![],
                };
                Ok(Description { params, columns })
            }
        }
    }

    /// Runs every statement of `sql`, in order; stops at the first error.
    pub async fn execute(&self, session: &mut Session, sql: &str) -> Result<Vec<StatementResult>> {
        if let Some(result) = self.special_command(session, sql).await? {
            return Ok(vec![result]);
        }
        let statements = sql_planner::parse_sql(sql)?;
        let mut results = Vec::with_capacity(statements.len());
        for stmt in &statements {
            results.push(self.execute_statement(session, stmt).await?);
        }
        Ok(results)
    }

    /// Runs a command PostgreSQL's grammar (and so the parser) does not cover.
    async fn special_command(
        &self,
        _session: &mut Session,
        sql: &str,
    ) -> Result<Option<StatementResult>> {
        let Some(command) = SpecialCommand::parse(sql) else {
            return Ok(None);
        };
        let columns = command.columns();
        Ok(Some(match command {
            SpecialCommand::Flush => {
                self.flush().await?;
                StatementResult::Command {
                    tag: "FLUSH".into(),
                    rows: None,
                }
            }
            SpecialCommand::ShowMaterializedViews => {
                let mut names: Vec<String> = self
                    .inner
                    .catalog
                    .read()
                    .tables
                    .values()
                    .filter(|t| t.schema == DEFAULT_SCHEMA && t.is_view())
                    .map(|t| t.name.clone())
                    .collect();
                names.sort();
                let rows = names.into_iter().map(|n| vec![Datum::Varchar(n)]).collect();
                rows_of(columns, rows)
            }
            SpecialCommand::Describe { name, keys } => {
                rows_of(columns, self.describe_relation(&name, keys)?)
            }
            SpecialCommand::ShowCreate { kind, name } => {
                rows_of(columns, self.show_create(&kind, &name)?)
            }
            SpecialCommand::ShowJobs => {
                let rows = self
                    .inner
                    .streams
                    .creating()
                    .into_iter()
                    .map(|j| {
                        vec![
                            Datum::Int64(i64::from(j.id)),
                            Datum::Varchar(format!("CREATE MATERIALIZED VIEW {}", j.name)),
                            Datum::Varchar(format!("{} rows read", j.rows_read)),
                        ]
                    })
                    .collect();
                rows_of(columns, rows)
            }
        }))
    }

    /// `SHOW CREATE TABLE | MATERIALIZED VIEW | VIEW | INDEX name`: the name and the
    /// statement that created it.
    fn show_create(&self, kind: &str, name: &str) -> Result<Vec<Vec<Datum>>> {
        let (schema, bare) = match name.split_once('.') {
            Some((schema, bare)) => (schema, bare),
            None => (DEFAULT_SCHEMA, name),
        };
        let qualified = sql_planner::qualified(schema, bare);
        let table = self.inner.catalog.read().table(&qualified);
        let definition = match (kind, table.as_deref()) {
            ("table", Some(t)) if t.is_stored_table() => t.definition.clone(),
            ("view", Some(t)) if t.logical.is_some() => t.definition.clone(),
            ("source", Some(t)) if t.source.is_some() => t.definition.clone(),
            ("materialized view" | "view", Some(t)) if t.is_view() => t
                .view
                .as_ref()
                .map(|v| v.definition.clone())
                .unwrap_or_default(),
            ("index", Some(t)) if t.index_of().is_some() => t
                .view
                .as_ref()
                .map(|v| v.definition.clone())
                .unwrap_or_default(),
            ("table" | "source" | "materialized view" | "view" | "index", _) => {
                return Err(PlanError::UndefinedTable(bare.to_string()).into());
            }
            _ => {
                return Err(Error::sql(
                    "42601",
                    format!("SHOW CREATE {} is not supported", kind.to_uppercase()),
                ));
            }
        };
        Ok(vec![vec![
            Datum::Varchar(qualified),
            Datum::Varchar(definition),
        ]])
    }

    /// `DESCRIBE name` and `SHOW COLUMNS FROM name`, as RisingWave prints them: each column
    /// (hidden ones too, with the row id as `serial` and the commit-time pseudo-column), then
    /// for `DESCRIBE` (`keys`) the primary and distribution keys and the relation's name.
    fn describe_relation(&self, name: &str, keys: bool) -> Result<Vec<Vec<Datum>>> {
        let (schema, bare) = match name.split_once('.') {
            Some((schema, bare)) => (schema, bare),
            None => (DEFAULT_SCHEMA, name),
        };
        let table = self
            .inner
            .catalog
            .read()
            .table(&sql_planner::qualified(schema, bare))
            .ok_or_else(|| PlanError::UndefinedTable(bare.to_string()))?;
        let text = |s: &str| Datum::Varchar(s.to_string());
        let row =
            |name: &str, ty: &str, hidden: Datum| vec![text(name), text(ty), hidden, Datum::Null];
        let flag = |hidden: bool| text(if hidden { "true" } else { "false" });
        let row_id = table.has_row_id().then(|| table.columns.len() - 1);
        let mut rows: Vec<Vec<Datum>> = table
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let ty = if Some(i) == row_id {
                    "serial".to_string()
                } else {
                    c.ty.pg_name()
                };
                row(&c.name, &ty, flag(c.hidden))
            })
            .collect();
        if table.source.is_none() && table.logical.is_none() {
            rows.push(row(
                sql_planner::catalog::COMMIT_TIME_COLUMN,
                &DataType::Timestamptz.pg_name(),
                flag(true),
            ));
        }
        if keys {
            let names = |columns: &[usize]| -> String {
                columns
                    .iter()
                    .map(|i| table.columns[*i].name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if !table.pk.is_empty() {
                rows.push(row("primary key", &names(&table.pk), Datum::Null));
            }
            let desc = table.desc();
            let dist: Vec<usize> = desc.dist_key_in_pk.iter().map(|i| desc.pk[*i]).collect();
            if !dist.is_empty() {
                rows.push(row("distribution key", &names(&dist), Datum::Null));
            }
            rows.push(row("table description", &table.name, Datum::Null));
        }
        Ok(rows)
    }

    /// Runs one parsed statement.
    pub async fn execute_statement(
        &self,
        session: &mut Session,
        stmt: &Statement,
    ) -> Result<StatementResult> {
        let writes = matches!(
            stmt,
            Statement::CreateTable(_)
                | Statement::CreateView(_)
                | Statement::CreateIndex(_)
                | Statement::CreateSchema { .. }
                | Statement::CreateFunction(_)
                | Statement::DropFunction(_)
                | Statement::AlterTable { .. }
                | Statement::Drop { .. }
                | Statement::Insert(_)
                | Statement::Update(_)
                | Statement::Delete(_)
                | Statement::Truncate(_)
        );
        if writes {
            self.check_writer(&command_name(stmt))?;
        }
        match stmt {
            Statement::Set(set) => return self.set(session, set),
            Statement::ShowVariable { variable } => {
                let name = variable_name(variable);
                let value = session.settings.get(&name).cloned().ok_or_else(|| {
                    Error::sql(
                        "42704",
                        format!("unrecognized configuration parameter \"{name}\""),
                    )
                })?;
                return Ok(rows_of(
                    vec![(name, DataType::Varchar)],
                    vec![vec![Datum::Varchar(value)]],
                ));
            }
            Statement::ShowTables { .. } => {
                let mut names: Vec<String> = self
                    .inner
                    .catalog
                    .read()
                    .tables
                    .values()
                    .filter(|t| {
                        t.schema == DEFAULT_SCHEMA && t.view.is_none() && t.logical.is_none()
                    })
                    .map(|t| t.name.clone())
                    .collect();
                names.sort();
                let rows = names.into_iter().map(|n| vec![Datum::Varchar(n)]).collect();
                return Ok(rows_of(vec![("Name".into(), DataType::Varchar)], rows));
            }
            Statement::CreateSchema {
                schema_name: SchemaName::Simple(name),
                if_not_exists,
                ..
            } => {
                return self
                    .create_schema(session, name.to_string().to_lowercase(), *if_not_exists)
                    .await;
            }
            Statement::Drop {
                object_type: ObjectType::Schema,
                names,
                if_exists,
                ..
            } => {
                let names = names.iter().map(|n| n.to_string().to_lowercase()).collect();
                return self.drop_schemas(session, names, *if_exists).await;
            }
            _ => {}
        }
        let plan = sql_planner::plan_statement(stmt, &*self.inner.catalog.read())?;
        match plan {
            Plan::Query { plan, columns } => {
                let pin = self.inner.store.pin_snapshot();
                let batches = self.run(plan, pin.epoch()).await?;
                Ok(StatementResult::Rows {
                    columns,
                    batches,
                    tag: None,
                })
            }
            Plan::Explain(lines) => Ok(rows_of(
                vec![("QUERY PLAN".into(), DataType::Varchar)],
                lines.into_iter().map(|l| vec![Datum::Varchar(l)]).collect(),
            )),
            Plan::CreateTable {
                schema,
                name,
                columns,
                pk,
                if_not_exists,
                append_only,
                definition,
                source,
                watermark,
            } => {
                let table = TableCatalog {
                    id: 0,
                    schema,
                    name,
                    columns,
                    pk,
                    view: None,
                    append_only,
                    definition,
                    source,
                    watermark,
                    logical: None,
                };
                self.create_table(session, table, if_not_exists).await
            }
            Plan::CreateLogicalView {
                schema,
                name,
                columns,
                view,
                if_not_exists,
                or_replace,
                definition,
            } => {
                let table = TableCatalog {
                    id: 0,
                    schema,
                    name,
                    columns: columns
                        .into_iter()
                        .map(|(name, ty)| sql_planner::ColumnCatalog::new(name, ty))
                        .collect(),
                    pk: vec![],
                    view: None,
                    append_only: false,
                    definition,
                    source: None,
                    watermark: None,
                    logical: Some(view),
                };
                if or_replace {
                    self.replace_view(session, table).await
                } else {
                    self.create_table(session, table, if_not_exists).await
                }
            }
            Plan::DropTable {
                names,
                if_exists,
                kind,
            } => self.drop_tables(session, names, if_exists, kind).await,
            Plan::CreateView {
                schema,
                name,
                query,
                columns,
                if_not_exists,
                definition,
                index,
                emit_on_window_close,
                views_read,
            } => {
                // A view of no table is constant: its rows, computed once, are its input.
                let query = if query.reads_tables() {
                    query
                } else {
                    let types = query.output_types();
                    let batches = self.run(query, self.committed_epoch()).await?;
                    BatchPlan::Values {
                        rows: dataflow::chunk::rows_of(&batches)
                            .into_iter()
                            .map(|row| {
                                row.into_iter()
                                    .zip(&types)
                                    .map(|(d, t)| dataflow::expr::Expr::literal(d, *t))
                                    .collect()
                            })
                            .collect(),
                        types,
                    }
                };
                let spec = ViewSpec {
                    schema,
                    name,
                    query,
                    columns,
                    definition,
                    index,
                    emit_on_window_close,
                    views_read,
                };
                self.create_view(session, spec, if_not_exists).await
            }
            Plan::DropView {
                names,
                if_exists,
                index,
            } => self.drop_views(session, names, if_exists, index).await,
            Plan::Insert {
                table,
                source,
                returning,
            } => self.insert(session, &table, source, returning).await,
            Plan::Delete {
                table,
                rows,
                returning,
            } => {
                let deleted = self.delete(session, &table, rows, returning).await?;
                Ok(match stmt {
                    Statement::Truncate(_) => StatementResult::Command {
                        tag: "TRUNCATE TABLE".into(),
                        rows: None,
                    },
                    _ => deleted,
                })
            }
            Plan::Update {
                table,
                rows,
                returning,
            } => self.update(session, &table, rows, returning).await,
            Plan::CreateFunction {
                function,
                or_replace,
            } => self.create_function(session, function, or_replace).await,
            Plan::DropFunction { names, if_exists } => {
                self.drop_functions(session, names, if_exists).await
            }
            Plan::Transaction => {
                let tag = stmt
                    .to_string()
                    .split_whitespace()
                    .next()
                    .unwrap_or("BEGIN")
                    .to_uppercase();
                let tag = if tag == "START" {
                    "BEGIN".to_string()
                } else {
                    tag
                };
                Ok(StatementResult::Command { tag, rows: None })
            }
        }
    }

    fn set(&self, session: &mut Session, set: &sqlparser::ast::Set) -> Result<StatementResult> {
        use sqlparser::ast::Set as S;
        match set {
            S::SingleAssignment {
                variable, values, ..
            } => {
                let name = variable.to_string().to_lowercase();
                let value = values
                    .iter()
                    .map(|v| v.to_string().trim_matches('\'').to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                // Settings this system has no use for (many RisingWave ones) are accepted.
                session.settings.insert(name, value);
            }
            S::SetTimeZone { value, .. } => {
                session.settings.insert(
                    "timezone".into(),
                    value.to_string().trim_matches('\'').to_string(),
                );
            }
            _ => {}
        }
        Ok(StatementResult::Command {
            tag: "SET".into(),
            rows: None,
        })
    }

    async fn run(&self, plan: BatchPlan, epoch: Epoch) -> Result<Vec<RecordBatch>> {
        let ctx = Arc::new(BatchContext {
            store: self.inner.store.clone(),
            epoch,
        });
        Ok(execute(plan, ctx).try_collect().await?)
    }

    /// Writes at the writable epoch (and sends the table's `changes` to its readers) and, if
    /// the session asks for it, waits for the commit.
    async fn commit_writes(
        &self,
        session: &Session,
        writes: Vec<(Bytes, Value)>,
        changes: Option<TableChanges>,
        tag: &str,
        rows: Option<usize>,
    ) -> Result<StatementResult> {
        let epoch = self.write(writes, changes).await?;
        self.finish_write(session, epoch).await?;
        Ok(StatementResult::Command {
            tag: tag.into(),
            rows,
        })
    }

    async fn finish_write(&self, session: &Session, epoch: Epoch) -> Result<()> {
        if session.waits_for_commit() {
            self.wait_committed(epoch).await
        } else {
            Ok(())
        }
    }

    /// `CREATE OR REPLACE VIEW`: `view` replaces the view of its name (keeping its id, so
    /// what depends on it still does), or is created.
    async fn replace_view(&self, session: &Session, view: TableCatalog) -> Result<StatementResult> {
        let existing = self
            .inner
            .catalog
            .read()
            .tables
            .get(&view.qualified_name())
            .cloned();
        let Some(old) = existing else {
            return self.create_table(session, view, false).await;
        };
        if old.logical.is_none() {
            return Err(
                PlanError::WrongObjectType(format!("\"{}\" is not a view", old.name)).into(),
            );
        }
        let _dml = self.lock_dml().await?;
        let view = Arc::new(TableCatalog { id: old.id, ..view });
        {
            let mut catalog = self.inner.catalog.write();
            // Replaced meanwhile by another session: its check of the columns no longer holds.
            if catalog.tables.get(&view.qualified_name()) != Some(&old) {
                return Err(Error::sql("40001", "the view changed meanwhile; try again"));
            }
            check_reads_exist(&catalog, &view)?;
            // A materialized view keeps the plan of the query it was created with: replacing
            // a view it reads would leave it maintaining the old one.
            if let Some(reader) = catalog
                .tables
                .values()
                .find(|t| t.view.is_some() && t.dependencies().contains(&old.id))
            {
                return Err(Error::sql(
                    "2BP01",
                    format!(
                        "cannot replace view {} because materialized view {} depends on it; \
                         drop the materialized view first",
                        old.name, reader.name
                    ),
                ));
            }
            catalog
                .tables
                .insert(view.qualified_name(), Arc::clone(&view));
        }
        let writes = vec![catalog_put(&view)];
        self.commit_writes(session, writes, None, "CREATE VIEW", None)
            .await
    }

    /// Creates `table` (a table, source or view) under a fresh id.
    async fn create_table(
        &self,
        session: &Session,
        mut table: TableCatalog,
        if_not_exists: bool,
    ) -> Result<StatementResult> {
        let _dml = self.lock_dml().await?;
        let tag = if table.source.is_some() {
            "CREATE SOURCE"
        } else if table.logical.is_some() {
            "CREATE VIEW"
        } else {
            "CREATE TABLE"
        };
        let table = {
            let mut catalog = self.inner.catalog.write();
            if !catalog.schemas.contains(&table.schema) {
                return Err(Error::sql(
                    "3F000",
                    format!("schema \"{}\" does not exist", table.schema),
                ));
            }
            if catalog.tables.contains_key(&table.qualified_name()) {
                if if_not_exists {
                    return Ok(StatementResult::Command {
                        tag: tag.into(),
                        rows: None,
                    });
                }
                return Err(PlanError::DuplicateTable(table.name).into());
            }
            check_reads_exist(&catalog, &table)?;
            table.id = catalog.next_table_id;
            catalog.next_table_id += 1;
            let table = Arc::new(table);
            catalog
                .tables
                .insert(table.qualified_name(), Arc::clone(&table));
            table
        };
        let writes = vec![catalog_put(&table)];
        self.commit_writes(session, writes, None, tag, None).await
    }

    async fn create_schema(
        &self,
        session: &Session,
        name: String,
        if_not_exists: bool,
    ) -> Result<StatementResult> {
        let _dml = self.lock_dml().await?;
        if !self.inner.catalog.write().schemas.insert(name.clone()) {
            if if_not_exists {
                return Ok(StatementResult::Command {
                    tag: "CREATE SCHEMA".into(),
                    rows: None,
                });
            }
            return Err(Error::sql(
                "42P06",
                format!("schema \"{name}\" already exists"),
            ));
        }
        let value = serde_json::to_vec(&name).expect("names serialize");
        let writes = vec![(schema_key(&name), Value::Put(Bytes::from(value)))];
        self.commit_writes(session, writes, None, "CREATE SCHEMA", None)
            .await
    }

    async fn create_function(
        &self,
        session: &Session,
        function: FunctionCatalog,
        or_replace: bool,
    ) -> Result<StatementResult> {
        let _dml = self.lock_dml().await?;
        let name = function.qualified_name();
        {
            let mut catalog = self.inner.catalog.write();
            if !catalog.schemas.contains(&function.schema) {
                return Err(Error::sql(
                    "3F000",
                    format!("schema \"{}\" does not exist", function.schema),
                ));
            }
            if !or_replace && catalog.functions.contains_key(&name) {
                return Err(Error::sql(
                    "42723",
                    format!("function \"{}\" already exists", function.name),
                ));
            }
            catalog
                .functions
                .insert(name.clone(), Arc::new(function.clone()));
        }
        let value = serde_json::to_vec(&function).expect("functions serialize");
        let writes = vec![(function_key(&name), Value::Put(Bytes::from(value)))];
        self.commit_writes(session, writes, None, "CREATE FUNCTION", None)
            .await
    }

    /// Drops SQL functions. Views that call one keep working: calls are inlined into them.
    async fn drop_functions(
        &self,
        session: &Session,
        names: Vec<String>,
        if_exists: bool,
    ) -> Result<StatementResult> {
        let _dml = self.lock_dml().await?;
        let mut writes = Vec::new();
        {
            let mut catalog = self.inner.catalog.write();
            if let Some(missing) = names.iter().find(|n| !catalog.functions.contains_key(*n))
                && !if_exists
            {
                let bare = missing.rsplit('.').next().unwrap_or(missing);
                return Err(Error::sql(
                    "42883",
                    format!("function {bare} does not exist"),
                ));
            }
            for name in names {
                if catalog.functions.remove(&name).is_some() {
                    writes.push((function_key(&name), Value::Delete));
                }
            }
        }
        self.commit_writes(session, writes, None, "DROP FUNCTION", None)
            .await
    }

    async fn drop_schemas(
        &self,
        session: &Session,
        names: Vec<String>,
        if_exists: bool,
    ) -> Result<StatementResult> {
        let _dml = self.lock_dml().await?;
        let mut writes = Vec::new();
        {
            let mut catalog = self.inner.catalog.write();
            for name in &names {
                if name == DEFAULT_SCHEMA {
                    return Err(Error::sql("2BP01", format!("cannot drop schema {name}")));
                }
                if !catalog.schemas.contains(name) && !if_exists {
                    return Err(Error::sql(
                        "3F000",
                        format!("schema \"{name}\" does not exist"),
                    ));
                }
                if catalog.tables.values().any(|t| t.schema == *name)
                    || catalog.functions.values().any(|f| f.schema == *name)
                {
                    return Err(Error::sql(
                        "2BP01",
                        format!("cannot drop schema {name} because other objects depend on it"),
                    ));
                }
            }
            for name in names {
                if catalog.schemas.remove(&name) {
                    writes.push((schema_key(&name), Value::Delete));
                }
            }
        }
        self.commit_writes(session, writes, None, "DROP SCHEMA", None)
            .await
    }

    /// The target of `stmt` if it is `COPY table [(columns)] FROM STDIN`.
    pub fn copy_in_target(&self, stmt: &Statement) -> Result<Option<CopyIn>> {
        use sqlparser::ast::{CopyLegacyOption, CopyOption, CopySource, CopyTarget};
        let Statement::Copy {
            source,
            to: false,
            target: CopyTarget::Stdin,
            options,
            legacy_options,
            ..
        } = stmt
        else {
            return Ok(None);
        };
        self.check_writer("COPY FROM")?;
        let CopySource::Table {
            table_name,
            columns,
        } = source
        else {
            return Err(Error::sql("0A000", "COPY FROM STDIN into a query"));
        };
        let parts: Vec<String> = table_name
            .0
            .iter()
            .map(|p| p.to_string().to_lowercase())
            .collect();
        let (schema, name) = match parts.as_slice() {
            [.., schema, name] => (schema.clone(), name.clone()),
            [name] => (DEFAULT_SCHEMA.to_string(), name.clone()),
            [] => return Err(Error::sql("42601", "COPY without a table")),
        };
        let table = self
            .inner
            .catalog
            .read()
            .table(&sql_planner::qualified(&schema, &name))
            .ok_or(PlanError::UndefinedTable(name))?;
        let columns = if columns.is_empty() {
            (0..table.columns.len())
                .filter(|i| !table.columns[*i].hidden)
                .collect()
        } else {
            columns
                .iter()
                .map(|c| {
                    let n = c.value.to_lowercase();
                    table
                        .column_index(&n)
                        .filter(|i| !table.columns[*i].hidden)
                        .ok_or(PlanError::UndefinedColumn(n))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let csv = options
            .iter()
            .any(|o| matches!(o, CopyOption::Format(f) if f.value.eq_ignore_ascii_case("csv")))
            || legacy_options
                .iter()
                .any(|o| matches!(o, CopyLegacyOption::Csv(_)));
        let delimiter = options.iter().find_map(|o| match o {
            CopyOption::Delimiter(d) => Some(*d),
            _ => None,
        });
        let null = options.iter().find_map(|o| match o {
            CopyOption::Null(n) => Some(n.clone()),
            _ => None,
        });
        let header = options
            .iter()
            .any(|o| matches!(o, CopyOption::Header(true)));
        let format = if csv {
            CopyFormat::Csv {
                delimiter: delimiter.unwrap_or(','),
                header,
                null: null.unwrap_or_default(),
            }
        } else {
            CopyFormat::Text {
                delimiter: delimiter.unwrap_or('\t'),
                null: null.unwrap_or_else(|| "\\N".into()),
            }
        };
        Ok(Some(CopyIn {
            table,
            columns,
            format,
        }))
    }

    /// Inserts the rows of COPY input `data` as one statement: all of them or, on any bad
    /// row, none.
    pub async fn copy_in(
        &self,
        session: &Session,
        target: &CopyIn,
        data: &[u8],
    ) -> Result<StatementResult> {
        let rows = crate::copy::parse_rows(data, &target.format)?;
        let width = target.columns.len();
        if let Some((line, row)) = rows.iter().enumerate().find(|(_, r)| r.len() != width) {
            let what = if row.len() < width {
                "missing data for a column"
            } else {
                "extra data after last expected column"
            };
            return Err(Error::sql("22P04", format!("{what} (row {})", line + 1)));
        }
        let table = &target.table;
        let n = rows.len();
        let empty = batch_of(schema_of(&[]), vec![], n)?;
        // One array per table column: the parsed text cast like SQL would, or the default.
        let mut columns = Vec::with_capacity(table.columns.len());
        for (i, column) in table.columns.iter().enumerate() {
            if column.hidden {
                continue;
            }
            let array = match target.columns.iter().position(|c| *c == i) {
                Some(field) => {
                    let text: arrow::array::StringArray =
                        rows.iter().map(|r| r[field].as_deref()).collect();
                    let text: arrow::array::ArrayRef = Arc::new(text);
                    dataflow::expr::cast(&text, DataType::Varchar, column.ty)?
                }
                None => column.default_value().eval(&empty)?,
            };
            columns.push(array);
        }
        let _dml = self.lock_dml().await?;
        self.append_row_ids(table, &mut columns, n);
        let data = batch_of(schema_of(&table.types()), columns, n)?;
        self.insert_batches(session, table, vec![data], "COPY", None)
            .await
    }

    /// Drops tables, sources, or views that are not materialized: each statement only its
    /// own `kind`.
    async fn drop_tables(
        &self,
        session: &Session,
        names: Vec<String>,
        if_exists: bool,
        kind: RelationKind,
    ) -> Result<StatementResult> {
        let _dml = self.lock_dml().await?;
        let mut writes = Vec::new();
        let stopping;
        let tag = match kind {
            RelationKind::Table => "DROP TABLE",
            RelationKind::Source => "DROP SOURCE",
            RelationKind::View => "DROP VIEW",
        };
        {
            let mut catalog = self.inner.catalog.write();
            let what = match kind {
                RelationKind::Table => "a table",
                RelationKind::Source => "a source",
                RelationKind::View => "a view",
            };
            let dropped = droppable(&catalog, &names, if_exists, what, tag)?;
            let indexes = catalog
                .tables
                .values()
                .filter(|t| t.index_of().is_some_and(|of| dropped.contains(&of)))
                .map(|t| t.id)
                .collect();
            stopping = self.stop_jobs(&mut catalog, indexes);
            for name in &names {
                if let Some(table) = catalog.tables.remove(name) {
                    // The rows become unreachable: table ids are never reused.
                    writes.push((catalog_key(table.id), Value::Delete));
                    if catalog.watermarks.remove(&table.id).is_some() {
                        writes.push((watermark_key(table.id), Value::Delete));
                    }
                }
            }
        }
        self.wait_stopped(stopping).await?;
        self.commit_writes(session, writes, None, tag, None).await
    }

    /// Creates a materialized view: plans its job, starts it, and waits until the view holds
    /// every existing row (and, if the session asks for it, until that is committed).
    async fn create_view(
        &self,
        session: &Session,
        spec: ViewSpec,
        if_not_exists: bool,
    ) -> Result<StatementResult> {
        let ViewSpec {
            schema,
            name,
            query,
            columns,
            definition,
            index,
            emit_on_window_close,
            views_read,
        } = spec;
        let tag = if index.is_some() {
            "CREATE_INDEX"
        } else {
            "CREATE_MATERIALIZED_VIEW"
        };
        let done = || StatementResult::Command {
            tag: tag.into(),
            rows: None,
        };
        let (view, mut created) = {
            let _dml = self.lock_dml().await?;
            let view = {
                let mut catalog = self.inner.catalog.write();
                if !catalog.schemas.contains(&schema) {
                    return Err(Error::sql(
                        "3F000",
                        format!("schema \"{schema}\" does not exist"),
                    ));
                }
                if catalog
                    .tables
                    .contains_key(&sql_planner::qualified(&schema, &name))
                {
                    if if_not_exists {
                        return Ok(done());
                    }
                    return Err(PlanError::DuplicateTable(name).into());
                }
                let id = catalog.next_table_id;
                let order = index.as_ref().map(|(_, o)| o.clone()).unwrap_or_default();
                let upstreams = sql_planner::Catalog::upstreams(&*catalog);
                let planned = sql_planner::stream::plan_view(
                    query,
                    &columns,
                    &order,
                    id + 1,
                    upstreams,
                    emit_on_window_close,
                )?;
                catalog.next_table_id = planned.next_table_id;
                let view = Arc::new(TableCatalog {
                    id,
                    schema,
                    name,
                    columns: planned.columns,
                    pk: planned.pk,
                    view: Some(ViewCatalog {
                        definition,
                        plan: planned.plan,
                        next_table_id: planned.next_table_id,
                        index_of: index.map(|(table, _)| table),
                        singleton: planned.singleton,
                        views_read,
                    }),
                    append_only: false,
                    definition: String::new(),
                    source: None,
                    watermark: None,
                    logical: None,
                });
                check_reads_exist(&catalog, &view)?;
                catalog
                    .tables
                    .insert(view.qualified_name(), Arc::clone(&view));
                view
            };
            // Started under the lock: a recovery, which reloads the catalog, finds both the
            // view and its job or neither.
            let created = self.start_job(&view, vec![catalog_put(&view)]);
            (view, created)
        };
        let epoch = loop {
            match self.wait_for_job(&mut created, |e| *e).await {
                Ok(epoch) => break epoch,
                // Interrupted by a recovery: the view survived it if its catalog row was
                // sealed, and its job then resumed from there.
                Err(e) => match self.resumed_job(view.id).await {
                    Some(resumed) => created = resumed,
                    None => return Err(e),
                },
            }
        };
        self.finish_write(session, epoch).await?;
        Ok(done())
    }

    /// After a recovery, the creation state of view `id`'s job, if the view survived it.
    async fn resumed_job(&self, id: u32) -> Option<watch::Receiver<Option<Epoch>>> {
        let mut stop = self.inner.shutdown.subscribe();
        while self.inner.recovering.lock().is_some() {
            if *stop.borrow_and_update() {
                return None;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = stop.changed() => return None,
            }
        }
        self.inner.streams.created(id)
    }

    async fn drop_views(
        &self,
        session: &Session,
        names: Vec<String>,
        if_exists: bool,
        index: bool,
    ) -> Result<StatementResult> {
        let _dml = self.lock_dml().await?;
        let (kind, tag) = if index {
            ("an index", "DROP_INDEX")
        } else {
            ("a materialized view", "DROP_MATERIALIZED_VIEW")
        };
        let stopping = {
            let mut catalog = self.inner.catalog.write();
            let ids = droppable(&catalog, &names, if_exists, kind, &tag.replace('_', " "))?;
            self.stop_jobs(&mut catalog, ids)
        };
        if let Some(epoch) = self.wait_stopped(stopping).await? {
            self.finish_write(session, epoch).await?;
        }
        Ok(StatementResult::Command {
            tag: tag.into(),
            rows: None,
        })
    }

    /// Removes views `ids` from the catalog and stops their jobs at the next barrier (which
    /// also deletes their catalog rows). Their rows become unreachable: ids are never reused.
    fn stop_jobs(
        &self,
        catalog: &mut CatalogState,
        ids: Vec<u32>,
    ) -> Vec<watch::Receiver<Option<Epoch>>> {
        let mut stopping = Vec::new();
        catalog.tables.retain(|_, t| {
            if !ids.contains(&t.id) {
                return true;
            }
            let writes = vec![(catalog_key(t.id), Value::Delete)];
            stopping.extend(self.inner.streams.stop_job(t.id, writes));
            false
        });
        stopping
    }

    /// Waits until the jobs of `stopping` have stopped; returns the newest epoch holding
    /// their catalog changes.
    async fn wait_stopped(
        &self,
        stopping: Vec<watch::Receiver<Option<Epoch>>>,
    ) -> Result<Option<Epoch>> {
        let mut newest = None;
        for mut stopped in stopping {
            let epoch = self.wait_for_job(&mut stopped, |s| *s).await?;
            newest = newest.max(Some(epoch));
        }
        Ok(newest)
    }

    /// Pulls barriers forward until `ready` finds what it waits for in a job's state (or
    /// streaming has failed).
    async fn wait_for_job<T, R>(
        &self,
        state: &mut watch::Receiver<T>,
        ready: impl Fn(&T) -> Option<R>,
    ) -> Result<R> {
        loop {
            self.inner.barrier_requested.notify_one();
            if let Some(r) = ready(&state.borrow_and_update()) {
                return Ok(r);
            }
            if self.inner.recovering.lock().is_some() {
                return Err(self.inner.abandoned_error());
            }
            // A job that went away unready was stopped by a recovery (or the shutdown).
            if let Ok(Err(_)) =
                tokio::time::timeout(Duration::from_millis(50), state.changed()).await
            {
                return Err(self.inner.abandoned_error());
            }
        }
    }

    /// DML reads at the writable epoch, so it sees every earlier statement's writes.
    async fn dml_rows(&self, plan: BatchPlan) -> Result<Vec<RecordBatch>> {
        let epoch = *self.inner.writable.read().await;
        self.run(plan, epoch).await
    }

    async fn insert(
        &self,
        session: &Session,
        table: &TableCatalog,
        source: BatchPlan,
        returning: Option<Returning>,
    ) -> Result<StatementResult> {
        let _dml = self.lock_dml().await?;
        let types = table.types();
        let mut batches = Vec::new();
        for batch in self.dml_rows(source).await? {
            let mut columns = batch.columns().to_vec();
            self.append_row_ids(table, &mut columns, batch.num_rows());
            batches.push(batch_of(schema_of(&types), columns, batch.num_rows())?);
        }
        self.insert_batches(session, table, batches, "INSERT", returning)
            .await
    }

    /// Inserts `batches` (whole rows) into `table`, its late rows dropped and its watermark
    /// raised (in the same epoch) when it declares one; `returning` gives the rows inserted.
    async fn insert_batches(
        &self,
        session: &Session,
        table: &TableCatalog,
        mut batches: Vec<RecordBatch>,
        tag: &str,
        returning: Option<Returning>,
    ) -> Result<StatementResult> {
        let mut raised = None;
        if let Some(desc) = &table.watermark {
            let mut current = self.inner.catalog.read().watermarks.get(&table.id).cloned();
            for batch in &mut batches {
                let (kept, new) = desc.apply(batch, current.as_ref())?;
                *batch = kept;
                if new.is_some() {
                    current = new.clone();
                    raised = new;
                }
            }
        }
        let returned_rows = match &returning {
            Some(r) => returned(r, &batches)?,
            None => Vec::new(),
        };
        let (mut writes, mut changes, count) = Self::writes_of(table, batches, Op::Insert)?;
        if let (Some(value), Some(desc)) = (&raised, &table.watermark) {
            let stored = serde_json::to_vec(value).expect("values serialize");
            writes.push((watermark_key(table.id), Value::Put(Bytes::from(stored))));
            if let Some(c) = &mut changes {
                c.watermark = Some(Watermark {
                    column: desc.column,
                    value: value.clone(),
                });
            }
        }
        let result = self
            .commit_writes(session, writes, changes, tag, Some(count))
            .await;
        // The DML lock is held: no other insert raced this one.
        if let (Some(value), Ok(_)) = (raised, &result) {
            self.inner
                .catalog
                .write()
                .watermarks
                .insert(table.id, value);
        }
        Ok(with_returning(result?, returning, returned_rows))
    }

    /// Fresh row ids for `rows` new rows of a table without a primary key.
    fn append_row_ids(
        &self,
        table: &TableCatalog,
        columns: &mut Vec<arrow::array::ArrayRef>,
        rows: usize,
    ) {
        if table.has_row_id() {
            let first = self
                .inner
                .next_row_id
                .fetch_add(rows as u64, Ordering::Relaxed);
            let ids: Vec<Datum> = (0..rows as u64)
                .map(|i| Datum::Int64((first + i) as i64))
                .collect();
            columns.push(dataflow::types::array_from_datums(
                DataType::Int64,
                ids.iter(),
            ));
        }
    }

    /// The writes that apply `op` to every whole row of `batches`, the same as changes for
    /// the table's readers, and the row count.
    #[allow(clippy::type_complexity)]
    fn writes_of(
        table: &TableCatalog,
        batches: Vec<RecordBatch>,
        op: Op,
    ) -> Result<(Vec<(Bytes, Value)>, Option<TableChanges>, usize)> {
        let desc = table.desc();
        let schema = schema_of(&desc.types);
        let mut writes = Vec::new();
        let mut chunks = Vec::new();
        let mut count = 0;
        for batch in batches {
            let n = batch.num_rows();
            count += n;
            let data = batch_of(schema.clone(), batch.columns().to_vec(), n)?;
            let chunk = StreamChunk::new(vec![op; n], data);
            writes.extend(desc.writes(&chunk));
            chunks.push(chunk);
        }
        Ok((writes, TableChanges::of(table, chunks, op), count))
    }

    async fn delete(
        &self,
        session: &Session,
        table: &TableCatalog,
        rows: BatchPlan,
        returning: Option<Returning>,
    ) -> Result<StatementResult> {
        let _dml = self.lock_dml().await?;
        let deleted = self.dml_rows(rows).await?;
        let returned_rows = match &returning {
            Some(r) => returned(r, &deleted)?,
            None => Vec::new(),
        };
        let (writes, changes, count) = Self::writes_of(table, deleted, Op::Delete)?;
        let result = self
            .commit_writes(session, writes, changes, "DELETE", Some(count))
            .await?;
        Ok(with_returning(result, returning, returned_rows))
    }

    /// `rows` holds each row's old values, then its new ones. The new rows keep their keys
    /// (key columns cannot be updated), so putting them replaces the old ones; readers see
    /// each update as an old/new pair.
    async fn update(
        &self,
        session: &Session,
        table: &TableCatalog,
        rows: BatchPlan,
        returning: Option<Returning>,
    ) -> Result<StatementResult> {
        let _dml = self.lock_dml().await?;
        let desc = table.desc();
        let mut returned_rows = Vec::new();
        let width = desc.types.len();
        let schema = schema_of(&desc.types);
        let mut writes = Vec::new();
        let mut chunks = Vec::new();
        let mut count = 0;
        for batch in self.dml_rows(rows).await? {
            let n = batch.num_rows();
            count += n;
            let old = batch_of(schema.clone(), batch.columns()[..width].to_vec(), n)?;
            let new = batch_of(schema.clone(), batch.columns()[width..].to_vec(), n)?;
            if let Some(r) = &returning {
                returned_rows.extend(returned(r, std::slice::from_ref(&new))?);
            }
            writes.extend(desc.writes(&StreamChunk::inserts(new.clone())));
            // Rows old0, new0, old1, new1, ...: each update as a pair.
            let both = arrow::compute::concat_batches(&schema, [&old, &new])
                .map_err(dataflow::Error::from)?;
            let order: arrow::array::UInt32Array =
                (0..n as u32).flat_map(|i| [i, i + n as u32]).collect();
            let paired =
                arrow::compute::take_record_batch(&both, &order).map_err(dataflow::Error::from)?;
            let ops: Vec<Op> = (0..n)
                .flat_map(|_| [Op::UpdateDelete, Op::UpdateInsert])
                .collect();
            chunks.push(StreamChunk::new(ops, paired));
        }
        let changes = TableChanges::of(table, chunks, Op::UpdateInsert);
        let result = self
            .commit_writes(session, writes, changes, "UPDATE", Some(count))
            .await?;
        Ok(with_returning(result, returning, returned_rows))
    }
}

/// The ids of the relations `names` that exist, after checking each is of the kind the
/// statement drops (`kind` says what it must be otherwise) and that no view reads it.
/// The statement that drops `t`.
fn drop_statement(t: &TableCatalog) -> &'static str {
    if t.index_of().is_some() {
        "DROP INDEX"
    } else if t.view.is_some() {
        "DROP MATERIALIZED VIEW"
    } else if t.logical.is_some() {
        "DROP VIEW"
    } else if t.source.is_some() {
        "DROP SOURCE"
    } else {
        "DROP TABLE"
    }
}

/// The ids of the relations `names` that `statement` drops (`what` they must be), after
/// checking that nothing depends on them.
fn droppable(
    catalog: &CatalogState,
    names: &[String],
    if_exists: bool,
    what: &str,
    statement: &str,
) -> Result<Vec<u32>> {
    let mut ids = Vec::new();
    for name in names {
        let bare = name.rsplit('.').next().unwrap_or(name);
        match catalog.tables.get(name) {
            None if if_exists => {}
            None => return Err(PlanError::UndefinedTable(bare.to_string()).into()),
            Some(t) => {
                let actual = drop_statement(t);
                if actual != statement {
                    return Err(PlanError::WrongObjectType(format!(
                        "\"{bare}\" is not {what}; use {actual} to remove it"
                    ))
                    .into());
                }
                check_no_dependents(catalog, t)?;
                ids.push(t.id);
            }
        }
    }
    Ok(ids)
}

/// Refuses a view whose reads, found when it was planned (outside the catalog lock), were
/// dropped since.
fn check_reads_exist(catalog: &CatalogState, view: &TableCatalog) -> Result<()> {
    let gone = view
        .dependencies()
        .into_iter()
        .any(|id| !catalog.tables.values().any(|t| t.id == id));
    if gone {
        return Err(Error::sql(
            "42P01",
            "a relation the view reads was dropped meanwhile",
        ));
    }
    Ok(())
}

/// Refuses to drop `table` while a view reads it (its indexes go with it).
fn check_no_dependents(catalog: &CatalogState, table: &TableCatalog) -> Result<()> {
    match catalog
        .tables
        .values()
        .find(|t| t.dependencies().contains(&table.id) && t.index_of() != Some(table.id))
    {
        Some(dependent) => Err(Error::sql(
            "2BP01",
            format!(
                "cannot drop {} because {} {} depends on it",
                table.name,
                if dependent.logical.is_some() {
                    "view"
                } else {
                    "materialized view"
                },
                dependent.name
            ),
        )),
        None => Ok(()),
    }
}

fn variable_name(variable: &[sqlparser::ast::Ident]) -> String {
    variable
        .iter()
        .map(|i| i.value.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}

fn rows_of(columns: Vec<(String, DataType)>, rows: Vec<Vec<Datum>>) -> StatementResult {
    let types: Vec<DataType> = columns.iter().map(|c| c.1).collect();
    let arrays = types
        .iter()
        .enumerate()
        .map(|(c, t)| dataflow::types::array_from_datums(*t, rows.iter().map(|r| &r[c])))
        .collect();
    let batch = batch_of(schema_of(&types), arrays, rows.len()).expect("rows match their columns");
    StatementResult::Rows {
        columns,
        batches: vec![batch],
        tag: None,
    }
}

/// `RETURNING`'s values over the whole rows `written`.
fn returned(returning: &Returning, written: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
    let types: Vec<DataType> = returning.columns.iter().map(|c| c.1).collect();
    written
        .iter()
        .map(|batch| {
            let arrays = returning
                .exprs
                .iter()
                .map(|e| e.eval(batch))
                .collect::<dataflow::Result<Vec<_>>>()?;
            Ok(batch_of(schema_of(&types), arrays, batch.num_rows())?)
        })
        .collect()
}

/// A DML statement's committed `result` as its `RETURNING` rows, `rows`, when it has one.
fn with_returning(
    result: StatementResult,
    returning: Option<Returning>,
    rows: Vec<RecordBatch>,
) -> StatementResult {
    match (result, returning) {
        (StatementResult::Command { tag, .. }, Some(returning)) => StatementResult::Rows {
            columns: returning.columns,
            batches: rows,
            // PostgreSQL's INSERT tag carries an oid (always 0) before the count.
            tag: Some(if tag == "INSERT" {
                "INSERT 0".into()
            } else {
                tag
            }),
        },
        (result, _) => result,
    }
}
