//! A remote compactor: shares only the object store with the node, claims the compaction
//! tasks the node publishes there (`node-bin --compaction remote`), runs them and writes their
//! results. Several can run at once; a killed one's task is taken over when its claim expires.

use std::time::Duration;

use clap::Parser;
use lsm_store::CacheOptions;
use lsm_store::compaction::remote::RemoteCompactor;
use lsm_store::object_store::object_store_from_url;

/// The node's allocator (see node-bin), as in a node.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Runs compaction tasks a node publishes in the shared object store"
)]
struct Args {
    /// Object store URL the node uses: file://DIR or s3://bucket/prefix (AWS_* environment).
    #[arg(long)]
    object_store: String,
    /// Name in claims and logs (default: `compactor-<process id>`).
    #[arg(long)]
    name: Option<String>,
    /// Milliseconds between looks for work when there was none.
    #[arg(long, default_value_t = 500)]
    poll_interval_ms: u64,
    /// Seconds a claim lasts; it is renewed every third of that while the task runs, so
    /// only a compactor that died (or stalled that long) loses its task to another.
    #[arg(long, default_value_t = 60)]
    lease_secs: u64,
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
    let store = object_store_from_url(&args.object_store).await?;
    let name = args
        .name
        .unwrap_or_else(|| format!("compactor-{}", std::process::id()));
    let compactor = RemoteCompactor::new(
        store,
        &CacheOptions::default(),
        name.clone(),
        Duration::from_secs(args.lease_secs.max(1)),
    )
    .await?;
    tracing::info!(%name, object_store = %args.object_store, "compactor started");
    let idle = Duration::from_millis(args.poll_interval_ms.max(1));
    loop {
        let pause = match compactor.run_once().await {
            Ok(Some(task)) => {
                tracing::info!(task, "compaction task done");
                Duration::ZERO
            }
            Ok(None) => idle,
            Err(e) => {
                tracing::warn!(error = %e, "compaction task failed");
                idle
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(pause) => {}
        }
    }
}
