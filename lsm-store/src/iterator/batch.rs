//! A cursor over one sorted run of an immutable batch of writes of one epoch.

use std::sync::Arc;

use epoch_mvcc::{Direction, FullKeyRef, Value};

use crate::memtable::ImmBatch;

/// Positions over one run of an [`ImmBatch`]; every entry has the batch's epoch.
#[derive(Debug)]
pub(crate) struct BatchCursor {
    batch: Arc<ImmBatch>,
    /// The run, by index in the batch's runs.
    run: usize,
    direction: Direction,
    /// Index of the current entry; `entries.len()` when invalid.
    pos: usize,
    /// Index past the last entry a forward cursor visits (the run's length unless bounded).
    end: usize,
}

impl BatchCursor {
    /// Cursors over every run of `batch`, newest first (as a merge ranks its inputs), each at
    /// its first entry >= `target` (forward) or its last <= `target` (backward); `None`
    /// starts at the respective end.
    pub(crate) fn over_runs(
        batch: &Arc<ImmBatch>,
        direction: Direction,
        target: Option<FullKeyRef<'_>>,
    ) -> impl Iterator<Item = BatchCursor> {
        (0..batch.runs.len())
            .rev()
            .map(move |run| BatchCursor::new(Arc::clone(batch), run, direction, target))
    }

    fn new(
        batch: Arc<ImmBatch>,
        run: usize,
        direction: Direction,
        target: Option<FullKeyRef<'_>>,
    ) -> Self {
        let epoch = batch.epoch;
        let entries = &batch.runs[run];
        let len = entries.len();
        let pos = match (direction, target) {
            (Direction::Forward, None) => 0,
            (Direction::Forward, Some(t)) => {
                entries.partition_point(|(k, _)| FullKeyRef::new(k, epoch) < t)
            }
            (Direction::Backward, None) => len.wrapping_sub(1),
            (Direction::Backward, Some(t)) => entries
                .partition_point(|(k, _)| FullKeyRef::new(k, epoch) <= t)
                .wrapping_sub(1),
        };
        let pos = if pos < len { pos } else { len };
        BatchCursor {
            batch,
            run,
            direction,
            pos,
            end: len,
        }
    }

    /// Forward cursors over every run of `batch`, newest first, visiting only the entries
    /// whose user keys are in `[start, end)` (unbounded where `None`).
    pub(crate) fn over_key_range(
        batch: &Arc<ImmBatch>,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
    ) -> impl Iterator<Item = BatchCursor> {
        let bound = |run: &[(bytes::Bytes, Value)], key: Option<&[u8]>| {
            key.map_or(run.len(), |key| {
                run.partition_point(|(k, _)| k.as_ref() < key)
            })
        };
        (0..batch.runs.len()).rev().map(move |run| {
            let entries = &batch.runs[run];
            let end = bound(entries, end);
            let pos = start.map_or(0, |s| bound(entries, Some(s)).min(end));
            BatchCursor {
                batch: Arc::clone(batch),
                run,
                direction: Direction::Forward,
                // An empty range is an invalid cursor.
                pos: if pos < end { pos } else { entries.len() },
                end,
            }
        })
    }

    fn entries(&self) -> &[(bytes::Bytes, Value)] {
        &self.batch.runs[self.run]
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.pos < self.end
    }

    pub(crate) fn key(&self) -> FullKeyRef<'_> {
        FullKeyRef::new(&self.entries()[self.pos].0, self.batch.epoch)
    }

    pub(crate) fn value(&self) -> Value {
        self.entries()[self.pos].1.clone()
    }

    pub(crate) fn next(&mut self) {
        let len = self.entries().len();
        self.pos = match self.direction {
            Direction::Forward if self.pos + 1 >= self.end => len,
            Direction::Forward => self.pos + 1,
            Direction::Backward if self.pos == 0 => len,
            Direction::Backward => self.pos - 1,
        };
    }
}
