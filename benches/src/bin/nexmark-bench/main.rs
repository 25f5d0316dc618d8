//! Nexmark: for each query, a fresh node (in this process, on a local directory) gets the
//! sources `person`, `auction` and `bid` generating `--events` events as fast as the view
//! takes them, and the query as a materialized view; once the sources have generated every
//! event and a checkpoint after the last is committed, one JSON line reports the query's
//! throughput (the `--events` of the Nexmark stream per second; each source generates only
//! its own kind, so `source_rows` counts the rows the view's sources produced), freshness
//! (barrier latency), peak memory (resident, and the live heap sampled every 10 ms) and bytes
//! written to the object store.
//!
//!     cargo run --release -p benches --bin nexmark-bench -- --events 1000000 --queries q0,q1
//!
//! `--view 'CREATE MATERIALIZED VIEW v AS ...'` measures a view of one's own over the sources.

mod queries;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use lsm_store::object_store::{LocalObjectStore, ObjectStore};
use lsm_store::{Compression, LsmStore, LsmStoreOptions};
use pg_server::{Database, DatabaseOptions, Session};
use queries::QUERIES;

/// The node's allocator (see node-bin), so that measurements match a node's.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(about = "Runs Nexmark queries as materialized views and prints one JSON line each")]
struct Args {
    /// Events (persons, auctions and bids together) each source generation covers.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Comma-separated queries (q0 ... q22); all when not given.
    #[arg(long, value_delimiter = ',')]
    queries: Vec<String>,
    /// Milliseconds between checkpoints.
    #[arg(long, default_value_t = 1000)]
    barrier_interval_ms: u64,
    /// MiB of unsynced writes the store buffers (as `node-bin --write-buffer-bytes`).
    #[arg(long, default_value_t = 256)]
    write_buffer_mib: usize,
    /// MiB of data blocks the store caches in memory.
    #[arg(long, default_value_t = 256)]
    block_cache_mib: usize,
    /// MiB of SST indexes and filters the store caches.
    #[arg(long, default_value_t = 64)]
    meta_cache_mib: usize,
    /// MiB each operator's state table caches, per actor (as `--operator-cache-bytes`).
    #[arg(long, default_value_t = 4)]
    operator_cache_mib: usize,
    /// How SST data blocks are compressed: none, lz4 or zstd.
    #[arg(long, default_value = "zstd")]
    compression: Compression,
    /// Events per second of the stream (persons, auctions and bids together; the sources'
    /// `nexmark.min.event.gap.in.ns`), to measure freshness at a load the view keeps up
    /// with; as fast as the view takes them when not given.
    #[arg(long)]
    rate: Option<u64>,
    /// Splits of each source (`nexmark.split.num`), read by parallel actors; one per core
    /// when not given.
    #[arg(long)]
    splits: Option<u32>,
    /// A `CREATE MATERIALIZED VIEW` statement over the sources to run instead of the
    /// suite's queries (reported as query `custom`).
    #[arg(long, conflicts_with = "queries")]
    view: Option<String>,
}

impl Args {
    fn store_options(&self) -> LsmStoreOptions {
        let mut options = LsmStoreOptions {
            write_buffer_bytes: self.write_buffer_mib << 20,
            ..LsmStoreOptions::default()
        };
        options.sst.compression = self.compression;
        options.cache.block_cache_bytes = self.block_cache_mib << 20;
        options.cache.meta_cache_bytes = self.meta_cache_mib << 20;
        options
    }

    /// The store's memory budget: its write buffer and caches.
    fn store_budget_bytes(&self) -> usize {
        (self.write_buffer_mib + self.block_cache_mib + self.meta_cache_mib) << 20
    }
}

/// The sources, each covering `events` events of all kinds in `splits` splits, at `rate`
/// events per second (as fast as the view takes them when `None`).
fn sources(events: u64, splits: u32, rate: Option<u64>) -> String {
    let gap_ns = rate.map_or(0, |r| 1_000_000_000 / r.max(1));
    let with = |table: &str| {
        format!(
            "WITH (connector = 'nexmark', nexmark.table.type = '{table}', \
             nexmark.event.num = '{events}', nexmark.min.event.gap.in.ns = '{gap_ns}', \
             nexmark.max.chunk.size = '1024', nexmark.split.num = '{splits}')"
        )
    };
    format!(
        "CREATE SOURCE person (id BIGINT, name VARCHAR, email_address VARCHAR, \
           credit_card VARCHAR, city VARCHAR, state VARCHAR, date_time TIMESTAMP, extra VARCHAR) {};
         CREATE SOURCE auction (id BIGINT, item_name VARCHAR, description VARCHAR, \
           initial_bid BIGINT, reserve BIGINT, date_time TIMESTAMP, expires TIMESTAMP, \
           seller BIGINT, category BIGINT, extra VARCHAR) {};
         CREATE SOURCE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, \
           url VARCHAR, date_time TIMESTAMP, extra VARCHAR) {};",
        with("Person"),
        with("Auction"),
        with("Bid")
    )
}

/// This process's peak resident memory in bytes (`VmHWM`), if the system tells.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The live heap in bytes (allocated and not yet freed, as the allocator counts), if it
/// tells.
fn heap_bytes() -> Option<u64> {
    // The statistics are a snapshot, refreshed by advancing the allocator's epoch.
    tikv_jemalloc_ctl::epoch::advance().ok()?;
    let bytes = tikv_jemalloc_ctl::stats::allocated::read().ok()?;
    Some(bytes as u64)
}

/// Starts measuring peak memory afresh (Linux: clear_refs 5 resets `VmHWM`).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The `q` quantile of the barrier latency histogram in `metrics` (the upper bound of the
/// bucket it falls in), in milliseconds.
fn latency_quantile(metrics: &str, q: f64) -> Option<f64> {
    let buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("streamdb_barrier_latency_seconds_bucket{le=\"")?;
            let (bound, count) = rest.split_once("\"} ")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound, count.parse().ok()?))
        })
        .collect();
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    buckets
        .iter()
        .find(|(_, count)| *count >= q * total)
        .map(|(bound, _)| bound * 1000.0)
}

/// The mean barrier latency in `metrics` (the histogram's sum over its count), in
/// milliseconds.
fn latency_mean(metrics: &str) -> Option<f64> {
    let value = |name: &str| -> Option<f64> {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    let count = value("streamdb_barrier_latency_seconds_count")?;
    (count > 0.0)
        .then(|| value("streamdb_barrier_latency_seconds_sum").map(|s| s / count * 1000.0))?
}

fn view_name(statements: &str) -> &str {
    let after = statements
        .split("MATERIALIZED VIEW")
        .nth(1)
        .expect("a query creates a view");
    after
        .split_whitespace()
        .next()
        .expect("the view has a name")
}

async fn run_query(
    args: &Args,
    name: &str,
    statements: &str,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let objects: Arc<dyn ObjectStore> = Arc::new(LocalObjectStore::open(dir.path())?);
    let store = LsmStore::open(objects, args.store_options()).await?;
    let db = Database::open(
        store.clone(),
        DatabaseOptions {
            barrier_interval: Duration::from_millis(args.barrier_interval_ms.max(1)),
            state_cache_bytes: args.operator_cache_mib << 20,
            ..DatabaseOptions::default()
        },
    )
    .await?;
    let mut session = Session::default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let splits = args
        .splits
        .unwrap_or_else(|| u32::try_from(cores).unwrap_or(1));
    db.execute(&mut session, &sources(args.events, splits, args.rate))
        .await?;
    let written_before = store.stats().object_store.bytes_written;
    reset_peak_rss();
    let start = Instant::now();
    db.execute(&mut session, statements).await?;
    let view = view_name(statements);
    let progress = db
        .view_progress(view)
        .ok_or_else(|| format!("no job for view {view}"))?;
    // The live heap's peak, sampled while the view runs.
    let mut peak_heap = 0;
    while !progress.sources_exhausted() {
        tokio::time::sleep(Duration::from_millis(10)).await;
        peak_heap = peak_heap.max(heap_bytes().unwrap_or(0));
    }
    // A checkpoint after the last event: the view has taken every event.
    db.flush().await?;
    peak_heap = peak_heap.max(heap_bytes().unwrap_or(0));
    let seconds = start.elapsed().as_secs_f64();
    let generated = progress.source_events();
    let events = args.events;
    let cores = cores as f64;
    let metrics = db.metrics_text();
    let lsm = store.stats();
    let written = lsm.object_store.bytes_written - written_before;
    db.shutdown();
    store.close().await;
    Ok(serde_json::json!({
        "query": name,
        "events": events,
        "source_rows": generated,
        "source_splits": splits,
        "rate": args.rate,
        "compression": format!("{:?}", args.compression).to_lowercase(),
        "seconds": seconds,
        "events_per_sec": events as f64 / seconds,
        "events_per_sec_per_core": events as f64 / seconds / cores,
        "barrier_latency_mean_ms": latency_mean(&metrics),
        "barrier_latency_p50_ms": latency_quantile(&metrics, 0.5),
        "barrier_latency_p99_ms": latency_quantile(&metrics, 0.99),
        "peak_rss_bytes": peak_rss(),
        "peak_heap_bytes": peak_heap,
        "store_memory_budget_bytes": args.store_budget_bytes(),
        "operator_cache_bytes": args.operator_cache_mib << 20,
        "object_store_bytes_written": written,
        "lsm": lsm,
    }))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let custom;
    let selected: Vec<&(&str, &str)> = match &args.view {
        Some(view) => {
            custom = ("custom", view.as_str());
            vec![&custom]
        }
        None => QUERIES
            .iter()
            .filter(|(name, _)| args.queries.is_empty() || args.queries.iter().any(|q| q == name))
            .collect(),
    };
    if selected.is_empty() {
        eprintln!(
            "no such query; the queries are {}",
            QUERIES
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        );
        std::process::exit(2);
    }
    for (name, statements) in selected {
        match run_query(&args, name, statements).await {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("{name} failed: {e}");
                std::process::exit(1);
            }
        }
    }
}
