//! Streaming execution: operators that turn changes of their inputs into changes of their
//! output, run as actors (tokio tasks) joined by bounded channels.
//!
//! Every message is a [`StreamChunk`] of changes or a [`Barrier`]. The coordinator injects
//! barriers into every source; an operator with several inputs aligns them (waits for the
//! barrier on every input before passing it on). On a barrier, stateful operators hand the
//! epoch's state changes to the store and move on to the next epoch; materialize actors then
//! report the barrier collected. Once every materialize actor has reported, the epoch holds a
//! consistent state of every view and can be committed.
//!
//! An actor's first message is always a barrier: it tells the actor the epoch it writes.

mod agg;
mod align;
mod backfill;
mod dispatch;
mod eowc;
mod grouped;
mod job;
mod join;
mod materialize;
mod over_window;
pub mod plan;
mod simple;
mod top_n;
mod values;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use epoch_mvcc::Epoch;
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use crate::Result;
use crate::chunk::StreamChunk;

pub use agg::{combining_call, splits_in_two};
pub use job::{BuiltJob, JobOptions, UpstreamInput, build_job};

/// Messages an actor's channel buffers before its sender waits (backpressure).
pub const CHANNEL_CAPACITY: usize = 16;

/// The epoch a barrier closes and the one it opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochPair {
    /// The epoch whose changes precede the barrier.
    pub prev: Epoch,
    /// The epoch whose changes follow it.
    pub curr: Epoch,
}

/// Outputs added to the materialize actors of an upstream view: for each new job, one sender
/// per upstream actor (actor `i` takes the `i`-th).
#[derive(Clone, Debug)]
pub struct NewOutputs {
    /// The downstream job.
    pub job: u32,
    /// One sender per upstream actor.
    pub senders: Vec<Sender>,
}

/// A change of the dataflow graph carried by a barrier, applied exactly at that barrier.
#[derive(Debug, Default)]
pub struct Mutation {
    /// Outputs to add, by upstream view id (jobs created at this barrier read those views).
    pub add: HashMap<u32, Vec<NewOutputs>>,
    /// Jobs that stop after this barrier.
    pub stop: HashSet<u32>,
}

/// A barrier: everything before it belongs to `epoch.prev`, everything after to `epoch.curr`.
#[derive(Clone, Debug)]
pub struct Barrier {
    /// The epochs it separates.
    pub epoch: EpochPair,
    /// The graph change it carries, if any.
    pub mutation: Option<Arc<Mutation>>,
}

impl Barrier {
    /// Whether job `job` stops at this barrier.
    pub fn stops(&self, job: u32) -> bool {
        self.mutation
            .as_ref()
            .is_some_and(|m| m.stop.contains(&job))
    }
}

/// What flows between actors.
#[derive(Clone, Debug)]
pub enum Message {
    /// Changes.
    Chunk(StreamChunk),
    /// An epoch boundary.
    Barrier(Barrier),
    /// A promise about the rows that follow.
    Watermark(Watermark),
}

/// No row after this message has a value below `value` in column `column` (rows that would
/// were dropped as late where the watermark was made), so state kept for smaller values can
/// go.
#[derive(Clone, Debug, PartialEq)]
pub struct Watermark {
    /// The column's position in the stream's rows.
    pub column: usize,
    /// The least value rows may still have.
    pub value: crate::types::Datum,
}

impl Watermark {
    /// The same promise about the column at position `column`.
    pub fn at(&self, column: usize) -> Watermark {
        Watermark {
            column,
            value: self.value.clone(),
        }
    }
}

/// The combined watermarks of several inputs of one stream (a merge of upstream actors, a
/// union): per column, the least of the inputs' newest, once every input has one.
pub(crate) struct WatermarkMin {
    /// Per input, its newest watermark of each column.
    newest: Vec<HashMap<usize, crate::types::Datum>>,
    /// Per column, the combined watermark last emitted.
    emitted: HashMap<usize, crate::types::Datum>,
}

impl WatermarkMin {
    pub(crate) fn new(inputs: usize) -> Self {
        WatermarkMin {
            newest: vec![HashMap::new(); inputs],
            emitted: HashMap::new(),
        }
    }

    /// Records `watermark` of input `input`; returns the combined one when it advanced.
    pub(crate) fn update(&mut self, input: usize, watermark: Watermark) -> Option<Watermark> {
        self.newest[input].insert(watermark.column, watermark.value);
        let column = watermark.column;
        let least = self
            .newest
            .iter()
            .map(|w| w.get(&column))
            .try_fold(None::<&crate::types::Datum>, |least, v| {
                let v = v?;
                Some(Some(match least {
                    Some(l) if crate::batch::agg::cmp_datums(l, v).is_le() => l,
                    _ => v,
                }))
            })??
            .clone();
        let advanced = self
            .emitted
            .get(&column)
            .is_none_or(|e| crate::batch::agg::cmp_datums(&least, e).is_gt());
        advanced.then(|| {
            self.emitted.insert(column, least.clone());
            Watermark {
                column,
                value: least,
            }
        })
    }
}

/// The sending side of an actor's input channel.
pub type Sender = mpsc::Sender<Message>;
/// The receiving side of an actor's input channel.
pub type Receiver = mpsc::Receiver<Message>;
/// An operator's output.
pub type MessageStream = BoxStream<'static, Result<Message>>;

/// A channel with the standard capacity.
pub fn channel() -> (Sender, Receiver) {
    mpsc::channel(CHANNEL_CAPACITY)
}

/// What actors report to the coordinator.
#[derive(Debug)]
pub enum Collected {
    /// A materialize actor of `job` has written everything up to the barrier that closed
    /// `epoch`.
    Barrier {
        /// The job.
        job: u32,
        /// The closed epoch (the barrier's `prev`).
        epoch: Epoch,
    },
    /// An actor of `job` failed; the job produces nothing more.
    Failed {
        /// The job.
        job: u32,
        /// Why.
        error: String,
    },
}

/// How far a job's backfill has come, for `SHOW JOBS` and for `CREATE MATERIALIZED VIEW`
/// to wait on, and how many changes it has written (its throughput, for metrics).
#[derive(Debug, Default)]
pub struct JobProgress {
    rows: AtomicU64,
    scans_pending: AtomicUsize,
    changes: AtomicU64,
    /// Events the job's sources have generated.
    pub(crate) source_events: AtomicU64,
    /// The job's sources that have events left.
    pub(crate) sources_running: AtomicUsize,
}

impl JobProgress {
    /// Snapshot rows read so far.
    pub fn rows_read(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// Events the job's sources have generated so far.
    pub fn source_events(&self) -> u64 {
        self.source_events.load(Ordering::Relaxed)
    }

    /// Whether the job's sources have all generated every event they have (a job without
    /// sources has none left).
    pub fn sources_exhausted(&self) -> bool {
        self.sources_running.load(Ordering::Acquire) == 0
    }

    /// Row changes the job's materialize actors have written to its view.
    pub fn changes_written(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// Whether every snapshot read is done: the view is complete.
    pub fn is_backfilled(&self) -> bool {
        self.scans_pending.load(Ordering::Acquire) == 0
    }
}

/// Helpers for operator tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Barrier, EpochPair, Message};
    use epoch_mvcc::Epoch;

    /// The barrier from epoch `e` to `e + 1`, without graph changes.
    pub(crate) fn barrier(e: u64) -> Message {
        Message::Barrier(Barrier {
            epoch: EpochPair {
                prev: Epoch(e),
                curr: Epoch(e + 1),
            },
            mutation: None,
        })
    }

    /// An empty store in memory.
    pub(crate) async fn memory_store() -> lsm_store::LsmStore {
        lsm_store::LsmStore::open(
            std::sync::Arc::new(lsm_store::object_store::MemoryObjectStore::new()),
            lsm_store::LsmStoreOptions::default(),
        )
        .await
        .expect("a store in memory opens")
    }
}
