//! The database node: one process running the PostgreSQL front end, the dataflow and the
//! storage engine over a local directory (the default) or an object store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use lsm_store::object_store::object_store_from_url;
use lsm_store::{CacheOptions, Compression, LsmStore, LsmStoreOptions, SstOptions};
use pg_server::{Auth, Database, DatabaseOptions};

/// jemalloc: streaming operators allocate many small, short-lived rows and keys, where
/// glibc's allocator spends much of its time consolidating and fragmenting; its background
/// threads give freed pages back to the system within the decay time, which keeps resident
/// memory near the live heap (see `docs/benchmarks.md`, "Memory as the state grows").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "A streaming database node; connect with psql -h 127.0.0.1 -p 4566 -U root -d dev"
)]
struct Args {
    /// Directory for all durable state (the object store), unless --object-store is given.
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Object store URL: file://DIR, memory:// or s3://bucket/prefix (AWS_* environment).
    #[arg(long)]
    object_store: Option<String>,
    /// Address to accept PostgreSQL connections on.
    #[arg(long, default_value = "127.0.0.1:4566")]
    listen: SocketAddr,
    /// Milliseconds between checkpoints when no statement waits for one.
    #[arg(long, default_value_t = 1000)]
    barrier_interval_ms: u64,
    /// Actors per hash-distributed fragment of a materialized view (default: core count).
    #[arg(long)]
    parallelism: Option<usize>,
    /// Local directory for the disk tier of the block cache (off when not given).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Bytes of memory for data blocks.
    #[arg(long, default_value_t = 256 << 20)]
    block_cache_bytes: usize,
    /// Bytes of memory for SST indexes and bloom filters.
    #[arg(long, default_value_t = 64 << 20)]
    meta_cache_bytes: usize,
    /// Bytes of memory for writes not yet synced to the object store; writers wait while
    /// more than this waits for a checkpoint.
    #[arg(long, default_value_t = LsmStoreOptions::default().write_buffer_bytes)]
    write_buffer_bytes: usize,
    /// How SST data blocks are compressed: none, lz4 or zstd.
    #[arg(long, default_value = "zstd")]
    compression: Compression,
    /// Bytes of disk the block cache's disk tier may use (with --cache-dir).
    #[arg(long, default_value_t = 1 << 30)]
    disk_cache_bytes: usize,
    /// Bytes of memory for each streaming operator's cache of its state (per state table
    /// and actor).
    #[arg(long, default_value_t = DatabaseOptions::default().state_cache_bytes)]
    operator_cache_bytes: usize,
    /// Require this password (SCRAM-SHA-256) from every client; needed to listen on a
    /// non-loopback address.
    #[arg(long, env = "STREAMDB_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Address to serve Prometheus metrics on, at /metrics (off when not given).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Where compaction runs: in this process, or in compactor-bin processes sharing the
    /// object store (this node then publishes tasks and applies their results).
    #[arg(long, value_enum, default_value_t = Compaction::InProcess)]
    compaction: Compaction,
    /// What this node does: the one writer of its object store, or a read-only serving node
    /// that follows the writer's commits on the same object store.
    #[arg(long, value_enum, default_value_t = Role::Writer)]
    role: Role,
}

/// What a node does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Role {
    /// Takes writes and DDL, runs the materialized views and commits epochs.
    Writer,
    /// Serves queries at the newest epoch the writer committed; refuses writes and DDL.
    Serving,
}

/// Where compaction runs.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Compaction {
    /// In the node.
    InProcess,
    /// In remote compactors (compactor-bin).
    Remote,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    if let Err(e) = run(Args::parse()).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if !args.listen.ip().is_loopback() && args.password.is_none() {
        return Err(
            "listening on a non-loopback address requires a password: pass --password \
                    or set STREAMDB_PASSWORD"
                .into(),
        );
    }
    let auth = args.password.clone().map_or(Auth::Trust, Auth::Password);
    let url = match &args.object_store {
        Some(url) => url.clone(),
        None => {
            std::fs::create_dir_all(&args.data_dir)?;
            format!("file://{}", args.data_dir.canonicalize()?.display())
        }
    };
    if args.role == Role::Serving && url.starts_with("memory://") {
        return Err(
            "a serving node follows a writer through a shared object store; memory:// is \
                    private to one process"
                .into(),
        );
    }
    let object_store = object_store_from_url(&url).await?;
    let defaults = LsmStoreOptions::default();
    let options = LsmStoreOptions {
        cache: CacheOptions {
            block_cache_bytes: args.block_cache_bytes,
            meta_cache_bytes: args.meta_cache_bytes,
            disk_cache_dir: args.cache_dir.clone(),
            disk_cache_bytes: args.disk_cache_bytes,
        },
        compaction: lsm_store::compaction::CompactionOptions {
            remote: matches!(args.compaction, Compaction::Remote),
            ..defaults.compaction.clone()
        },
        write_buffer_bytes: args.write_buffer_bytes,
        sst: SstOptions {
            compression: args.compression,
            ..defaults.sst.clone()
        },
        ..defaults
    };
    let store = match args.role {
        Role::Writer => LsmStore::open(object_store, options).await?,
        Role::Serving => LsmStore::open_follower(object_store, options).await?,
    };
    let db = Database::open(
        store.clone(),
        DatabaseOptions {
            barrier_interval: Duration::from_millis(args.barrier_interval_ms.max(1)),
            parallelism: args
                .parallelism
                .unwrap_or(DatabaseOptions::default().parallelism),
            state_cache_bytes: args.operator_cache_bytes,
            ..DatabaseOptions::default()
        },
    )
    .await?;
    if let Some(addr) = args.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(listen = %addr, "serving metrics at /metrics");
        tokio::spawn(serve_metrics(metrics, db.clone()));
    }
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(listen = %args.listen, object_store = %url, role = ?args.role, committed_epoch = %db.committed_epoch(), "node started");
    tokio::select! {
        served = pg_server::serve(listener, db.clone(), auth) => served?,
        _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
    }
    db.flush().await?;
    db.shutdown();
    store.close().await;
    Ok(())
}

/// The allocator's gauges, in Prometheus' text format: the live heap, and the memory kept
/// resident for it (what the allocator keeps of freed memory included).
fn memory_metrics() -> String {
    // The statistics are a snapshot, refreshed by advancing the allocator's epoch.
    let _ = tikv_jemalloc_ctl::epoch::advance();
    let gauges = [
        (
            "streamdb_memory_allocated_bytes",
            "Bytes of memory allocated and not yet freed: the live heap.",
            tikv_jemalloc_ctl::stats::allocated::read(),
        ),
        (
            "streamdb_memory_resident_bytes",
            "Bytes of the allocator's resident pages: the live heap and what it keeps of freed memory.",
            tikv_jemalloc_ctl::stats::resident::read(),
        ),
    ];
    let mut out = String::new();
    for (name, help, value) in gauges {
        if let Ok(value) = value {
            out += &format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n");
        }
    }
    out
}

/// Answers `GET /metrics` with the node's metrics in Prometheus' text format (anything else
/// with 404), one request per connection.
async fn serve_metrics(listener: tokio::net::TcpListener, db: Database) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        let db = db.clone();
        tokio::spawn(async move {
            // The request head, up to a bound and a deadline.
            let mut head = vec![0u8; 8192];
            let mut n = 0;
            while n < head.len() && !head[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut head[n..]))
                    .await
                {
                    Ok(Ok(read)) if read > 0 => n += read,
                    _ => return,
                }
            }
            let request_line = String::from_utf8_lossy(&head[..n]);
            let path = request_line.split_whitespace().nth(1).unwrap_or("");
            let get = request_line.starts_with("GET ");
            let (status, body) = if get && path.split('?').next() == Some("/metrics") {
                ("200 OK", db.metrics_text() + &memory_metrics())
            } else {
                ("404 Not Found", "metrics are at GET /metrics\n".to_string())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}
