//! Statistics an operator can read from a running store.

use serde::Serialize;

use crate::object_store::ObjectStoreStatsSnapshot;

/// Files and bytes of one level.
#[derive(Clone, Debug, Serialize)]
pub struct LevelStats {
    /// 1..=6.
    pub level: usize,
    /// SSTs in the level.
    pub file_count: usize,
    /// Bytes in the level.
    pub bytes: u64,
}

/// Block cache effectiveness.
#[derive(Clone, Debug, Serialize)]
pub struct CacheStats {
    /// Block reads.
    pub requests: u64,
    /// Served from memory.
    pub memory_hits: u64,
    /// Served from the disk cache.
    pub disk_hits: u64,
    /// (memory + disk hits) / requests.
    pub hit_ratio: f64,
}

/// A snapshot of an [`LsmStore`](crate::LsmStore)'s state and counters.
#[derive(Clone, Debug, Serialize)]
pub struct LsmStats {
    /// Manifest version in effect.
    pub version_id: u64,
    /// Newest committed epoch.
    pub committed_epoch: u64,
    /// Oldest readable epoch.
    pub safe_epoch: u64,
    /// L0 sub-levels (one per flush until compacted).
    pub l0_sub_levels: usize,
    /// SSTs in L0.
    pub l0_files: usize,
    /// Bytes in L0.
    pub l0_bytes: u64,
    /// L1..=L6.
    pub levels: Vec<LevelStats>,
    /// Memory held by memtables, sealed batches and spills not uploaded yet.
    pub write_buffer_bytes: usize,
    /// Unsealed memtables uploaded early because the write buffer was full.
    pub spills: u64,
    /// Bytes of keys and values written by callers.
    pub ingested_bytes: u64,
    /// Bytes of SSTs written by flushes (spills included).
    pub flushed_bytes: u64,
    /// Bytes read by compactions.
    pub compaction_read_bytes: u64,
    /// Bytes of SSTs written by compactions.
    pub compaction_written_bytes: u64,
    /// (flushed + compaction written) / ingested.
    pub write_amplification: f64,
    /// Compactions applied.
    pub compactions: u64,
    /// Of those, trivial moves.
    pub trivial_moves: u64,
    /// Data block cache.
    pub block_cache: CacheStats,
    /// SST metadata cache hit ratio.
    pub meta_cache_hit_ratio: f64,
    /// Bloom filter probes.
    pub bloom_checks: u64,
    /// Probes that ruled an SST out.
    pub bloom_negatives: u64,
    /// Object store requests.
    pub object_store: ObjectStoreStatsSnapshot,
}
