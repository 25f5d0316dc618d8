//! A cursor over an immutable, sorted batch of writes of one epoch.

use std::sync::Arc;

use epoch_mvcc::{Direction, FullKeyRef, Value};

use crate::memtable::ImmBatch;

/// Positions over an [`ImmBatch`]; every entry has the batch's epoch.
#[derive(Debug)]
pub(crate) struct BatchCursor {
    batch: Arc<ImmBatch>,
    direction: Direction,
    /// Index of the current entry; `entries.len()` when invalid.
    pos: usize,
}

impl BatchCursor {
    /// A cursor at the first entry >= `target` (forward) or the last <= `target` (backward);
    /// `None` starts at the respective end.
    pub(crate) fn new(
        batch: Arc<ImmBatch>,
        direction: Direction,
        target: Option<FullKeyRef<'_>>,
    ) -> Self {
        let epoch = batch.epoch;
        let len = batch.entries.len();
        let pos = match (direction, target) {
            (Direction::Forward, None) => 0,
            (Direction::Forward, Some(t)) => batch
                .entries
                .partition_point(|(k, _)| FullKeyRef::new(k, epoch) < t),
            (Direction::Backward, None) => len.wrapping_sub(1),
            (Direction::Backward, Some(t)) => batch
                .entries
                .partition_point(|(k, _)| FullKeyRef::new(k, epoch) <= t)
                .wrapping_sub(1),
        };
        let pos = if pos < len { pos } else { len };
        BatchCursor {
            batch,
            direction,
            pos,
        }
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.pos < self.batch.entries.len()
    }

    pub(crate) fn key(&self) -> FullKeyRef<'_> {
        FullKeyRef::new(&self.batch.entries[self.pos].0, self.batch.epoch)
    }

    pub(crate) fn value(&self) -> Value {
        self.batch.entries[self.pos].1.clone()
    }

    pub(crate) fn next(&mut self) {
        let len = self.batch.entries.len();
        self.pos = match self.direction {
            Direction::Forward => (self.pos + 1).min(len),
            Direction::Backward if self.pos == 0 => len,
            Direction::Backward => self.pos - 1,
        };
    }
}
