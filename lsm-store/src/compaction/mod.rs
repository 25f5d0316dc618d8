//! Leveled compaction: a picker that decides what to compact, an executor that does it, and
//! plain-data tasks and results between them so the executor can run in another process.

mod executor;
mod picker;
pub mod remote;

use serde::{Deserialize, Serialize};

use crate::version::SstInfo;

pub(crate) use executor::run;
pub(crate) use picker::apply;
pub use picker::{LevelTargets, level_targets, pick};

/// When and how to compact.
#[derive(Clone, Debug)]
pub struct CompactionOptions {
    /// Compact L0 once it has this many sub-levels.
    pub l0_sub_level_trigger: usize,
    /// Target size of the base level (the level L0 compacts into); deeper levels grow by
    /// [`CompactionOptions::level_multiplier`] each.
    pub max_bytes_for_base_level: u64,
    /// Size ratio between adjacent levels.
    pub level_multiplier: u64,
    /// Run compaction in the background of the store.
    pub background: bool,
    /// How often the background compactor looks for work when not woken by a flush.
    pub interval: std::time::Duration,
    /// Publish tasks for remote compactors (see [`remote`]) instead of running them here.
    pub remote: bool,
    /// At most this many remote tasks are out at once (they never share an SST).
    pub max_remote_tasks: usize,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        CompactionOptions {
            l0_sub_level_trigger: 4,
            max_bytes_for_base_level: 256 << 20,
            level_multiplier: 10,
            background: true,
            interval: std::time::Duration::from_secs(1),
            remote: false,
            max_remote_tasks: 4,
        }
    }
}

/// The SSTs of one input level of a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputLevel {
    /// 0 for L0, else 1..=6.
    pub level: usize,
    /// For L0: the ids of the sub-levels taken, newest first (each taken whole).
    pub sub_level_ids: Vec<u64>,
    /// Runs of non-overlapping SSTs, newest first (one per L0 sub-level, one for a level).
    pub runs: Vec<Vec<SstInfo>>,
}

/// One unit of compaction work, as plain data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionTask {
    /// Unique id.
    pub id: u64,
    /// Inputs, newest level first.
    pub inputs: Vec<InputLevel>,
    /// Where outputs go.
    pub target_level: usize,
    /// Versions only reads below this epoch could see may be dropped.
    pub safe_epoch: u64,
    /// Outputs are cut at about this size.
    pub target_file_size: usize,
    /// Tombstones at or below the safe epoch may be dropped (nothing older lies below).
    pub drop_tombstones: bool,
    /// Nothing overlaps: move the inputs to the target level without rewriting them.
    pub trivial_move: bool,
}

impl CompactionTask {
    /// Every input SST.
    pub fn input_ssts(&self) -> impl Iterator<Item = &SstInfo> {
        self.inputs.iter().flat_map(|l| l.runs.iter().flatten())
    }

    /// Bytes of input.
    pub fn input_bytes(&self) -> u64 {
        self.input_ssts().map(|s| s.file_size).sum()
    }
}

/// What a finished task produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionResult {
    /// The task's id.
    pub task_id: u64,
    /// New SSTs for the target level, in key order.
    pub outputs: Vec<SstInfo>,
    /// Bytes read from inputs.
    pub bytes_read: u64,
    /// Bytes written to outputs.
    pub bytes_written: u64,
}
