//! The node's metrics in Prometheus' text exposition format: checkpoint (barrier) latency and
//! epochs committed, measured here, and the storage engine's gauges and counters.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lsm_store::LsmStats;

/// Upper bounds (seconds) of the barrier latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Counters the checkpoint loop updates.
#[derive(Default)]
pub(crate) struct BarrierMetrics {
    /// Epochs committed to the store.
    epochs_committed: AtomicU64,
    /// Epoch commits that failed.
    commit_failures: AtomicU64,
    /// Recoveries of the streaming jobs after a failure.
    recoveries: AtomicU64,
    /// Barriers whose latency (injection to commit) fell in each bucket, then above all.
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// Sum of those latencies, in microseconds.
    latency_sum_us: AtomicU64,
}

impl BarrierMetrics {
    /// Records a committed epoch whose barrier was injected `latency` ago.
    pub(crate) fn committed(&self, latency: Duration) {
        self.epochs_committed.fetch_add(1, Ordering::Relaxed);
        let secs = latency.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// Records a failed epoch commit.
    pub(crate) fn commit_failed(&self) {
        self.commit_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a recovery of the streaming jobs.
    pub(crate) fn recovering(&self) {
        self.recoveries.fetch_add(1, Ordering::Relaxed);
    }
}

/// `value` escaped for a label value: backslash, double quote and newline.
fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: its help and type lines, then its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// The text of every metric.
pub(crate) fn render(
    barriers: &BarrierMetrics,
    views: &[(String, std::sync::Arc<dataflow::stream::JobProgress>)],
    store: &LsmStats,
) -> String {
    let mut out = String::new();
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
    family(
        &mut out,
        "streamdb_epochs_committed_total",
        "counter",
        "Epochs (checkpoints) committed to the object store.",
        &[("", load(&barriers.epochs_committed))],
    );
    family(
        &mut out,
        "streamdb_epoch_commit_failures_total",
        "counter",
        "Epoch commits that failed (retried by the next one).",
        &[("", load(&barriers.commit_failures))],
    );
    family(
        &mut out,
        "streamdb_recoveries_total",
        "counter",
        "Recoveries after a streaming job failed: every job restarted from the last sealed epoch, later epochs abandoned.",
        &[("", load(&barriers.recoveries))],
    );
    let _ = writeln!(
        out,
        "# HELP streamdb_barrier_latency_seconds From a barrier's injection to its epoch's commit: how fresh views and acknowledged writes are.\n# TYPE streamdb_barrier_latency_seconds histogram"
    );
    let mut cumulative = 0.0;
    for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
        cumulative += load(&barriers.latency_buckets[i]);
        let _ = writeln!(
            out,
            "streamdb_barrier_latency_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    cumulative += load(&barriers.latency_buckets[LATENCY_BUCKETS.len()]);
    let _ = writeln!(
        out,
        "streamdb_barrier_latency_seconds_bucket{{le=\"+Inf\"}} {cumulative}\nstreamdb_barrier_latency_seconds_sum {}\nstreamdb_barrier_latency_seconds_count {cumulative}",
        load(&barriers.latency_sum_us) / 1e6
    );
    let per_view = |value: &dyn Fn(&dataflow::stream::JobProgress) -> f64| -> Vec<(String, f64)> {
        views
            .iter()
            .map(|(view, p)| (format!("{{view=\"{}\"}}", label_value(view)), value(p)))
            .collect()
    };
    for (name, kind, help, samples) in [
        (
            "streamdb_view_changes_total",
            "counter",
            "Row changes each materialized view's job has written (its throughput).",
            per_view(&|p| p.changes_written() as f64),
        ),
        (
            "streamdb_source_events_total",
            "counter",
            "Events the sources of each materialized view's job have generated.",
            per_view(&|p| p.source_events() as f64),
        ),
    ] {
        let samples: Vec<(&str, f64)> = samples.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        family(&mut out, name, kind, help, &samples);
    }
    let gauge = |out: &mut String, name: &str, help: &str, value: f64| {
        family(out, name, "gauge", help, &[("", value)]);
    };
    let counter = |out: &mut String, name: &str, help: &str, value: f64| {
        family(out, name, "counter", help, &[("", value)]);
    };
    gauge(
        &mut out,
        "streamdb_committed_epoch",
        "Newest committed epoch.",
        store.committed_epoch as f64,
    );
    gauge(
        &mut out,
        "streamdb_lsm_l0_sub_levels",
        "L0 sub-levels waiting for compaction.",
        store.l0_sub_levels as f64,
    );
    gauge(
        &mut out,
        "streamdb_lsm_l0_files",
        "SSTs in L0.",
        store.l0_files as f64,
    );
    let levels: Vec<(String, f64)> = std::iter::once(("0".to_string(), store.l0_bytes as f64))
        .chain(
            store
                .levels
                .iter()
                .map(|l| (l.level.to_string(), l.bytes as f64)),
        )
        .map(|(l, b)| (format!("{{level=\"{l}\"}}"), b))
        .collect();
    let levels: Vec<(&str, f64)> = levels.iter().map(|(l, b)| (l.as_str(), *b)).collect();
    family(
        &mut out,
        "streamdb_lsm_level_bytes",
        "gauge",
        "Bytes of SSTs per level.",
        &levels,
    );
    gauge(
        &mut out,
        "streamdb_lsm_write_buffer_bytes",
        "Memory held by memtables.",
        store.write_buffer_bytes as f64,
    );
    counter(
        &mut out,
        "streamdb_lsm_spills_total",
        "Unsealed memtables uploaded early because the write buffer was full.",
        store.spills as f64,
    );
    counter(
        &mut out,
        "streamdb_lsm_ingested_bytes_total",
        "Bytes of keys and values written.",
        store.ingested_bytes as f64,
    );
    counter(
        &mut out,
        "streamdb_lsm_flushed_bytes_total",
        "Bytes of SSTs written by flushes.",
        store.flushed_bytes as f64,
    );
    counter(
        &mut out,
        "streamdb_compaction_read_bytes_total",
        "Bytes read by compactions.",
        store.compaction_read_bytes as f64,
    );
    counter(
        &mut out,
        "streamdb_compaction_written_bytes_total",
        "Bytes of SSTs written by compactions.",
        store.compaction_written_bytes as f64,
    );
    counter(
        &mut out,
        "streamdb_compactions_total",
        "Compactions applied.",
        store.compactions as f64,
    );
    gauge(
        &mut out,
        "streamdb_block_cache_hit_ratio",
        "Share of block reads served from the memory or disk cache.",
        store.block_cache.hit_ratio,
    );
    counter(
        &mut out,
        "streamdb_block_cache_requests_total",
        "Block reads.",
        store.block_cache.requests as f64,
    );
    gauge(
        &mut out,
        "streamdb_meta_cache_hit_ratio",
        "Share of SST metadata reads served from memory.",
        store.meta_cache_hit_ratio,
    );
    let os = &store.object_store;
    family(
        &mut out,
        "streamdb_object_store_requests_total",
        "counter",
        "Object store requests by kind.",
        &[
            ("{op=\"get\"}", os.gets as f64),
            ("{op=\"put\"}", os.puts as f64),
            ("{op=\"delete\"}", os.deletes as f64),
            ("{op=\"list\"}", os.lists as f64),
            ("{op=\"head\"}", os.heads as f64),
        ],
    );
    counter(
        &mut out,
        "streamdb_object_store_errors_total",
        "Object store requests that failed after retries.",
        os.errors as f64,
    );
    counter(
        &mut out,
        "streamdb_object_store_read_bytes_total",
        "Bytes read from the object store.",
        os.bytes_read as f64,
    );
    counter(
        &mut out,
        "streamdb_object_store_written_bytes_total",
        "Bytes written to the object store.",
        os.bytes_written as f64,
    );
    out
}
