//! K-way merge of cursors by full key.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;

use epoch_mvcc::{Direction, FullKeyRef, Value, VersionCursor};

use super::{BatchCursor, ConcatCursor};
use crate::{Error, Result};

/// One input of a merge.
#[derive(Debug)]
pub(crate) enum SourceCursor {
    Batch(BatchCursor),
    Concat(ConcatCursor),
}

impl SourceCursor {
    fn is_valid(&self) -> bool {
        match self {
            SourceCursor::Batch(c) => c.is_valid(),
            SourceCursor::Concat(c) => c.is_valid(),
        }
    }

    fn key(&self) -> FullKeyRef<'_> {
        match self {
            SourceCursor::Batch(c) => c.key(),
            SourceCursor::Concat(c) => c.key(),
        }
    }

    fn value(&self) -> Result<Value> {
        match self {
            SourceCursor::Batch(c) => Ok(c.value()),
            SourceCursor::Concat(c) => c.value(),
        }
    }

    async fn next(&mut self) -> Result<()> {
        match self {
            SourceCursor::Batch(c) => {
                c.next();
                Ok(())
            }
            SourceCursor::Concat(c) => c.next().await,
        }
    }
}

#[derive(Debug)]
struct HeapItem {
    cursor: SourceCursor,
    /// Position in the read path; lower is newer and wins ties.
    rank: usize,
    direction: Direction,
}

impl Ord for HeapItem {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap pops the greatest: forward wants the smallest key on top, backward the
        // largest; of equal keys, the newest source (lowest rank) either way.
        let by_key = self.cursor.key().cmp(&other.cursor.key());
        match self.direction {
            Direction::Forward => by_key.then(self.rank.cmp(&other.rank)).reverse(),
            Direction::Backward => by_key.then(other.rank.cmp(&self.rank)),
        }
    }
}

impl PartialOrd for HeapItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for HeapItem {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for HeapItem {}

/// Merges positioned cursors, newest source first on ties: of entries with one full key
/// (the runs of one epoch's batch may each have the key), only the newest source's is seen.
#[derive(Debug)]
pub(crate) struct MergeCursor {
    heap: BinaryHeap<HeapItem>,
    /// The value of the current entry, read when the cursor moved there so that corruption
    /// surfaces as an error from `next` rather than from an accessor.
    current_value: Option<Value>,
    /// The user key of the entry being left by `next` (a buffer kept between calls).
    left: Vec<u8>,
}

impl MergeCursor {
    /// Merges `cursors`, listed newest first, all positioned in `direction`.
    pub(crate) fn new(cursors: Vec<SourceCursor>, direction: Direction) -> Result<Self> {
        let heap = cursors
            .into_iter()
            .enumerate()
            .filter(|(_, c)| c.is_valid())
            .map(|(rank, cursor)| HeapItem {
                cursor,
                rank,
                direction,
            })
            .collect();
        let mut merge = MergeCursor {
            heap,
            current_value: None,
            left: Vec::new(),
        };
        merge.load_value()?;
        Ok(merge)
    }

    /// Moves the top source to its next entry.
    async fn advance_top(&mut self) -> Result<()> {
        if let Some(mut top) = self.heap.peek_mut() {
            if let Err(e) = top.cursor.next().await {
                // A failed read leaves the cursor without a position: out of the heap,
                // whose order needs its key (the merge is not to be read on after an error).
                PeekMut::pop(top);
                return Err(e);
            }
            if !top.cursor.is_valid() {
                PeekMut::pop(top);
            }
        }
        Ok(())
    }

    fn load_value(&mut self) -> Result<()> {
        self.current_value = match self.heap.peek() {
            Some(top) => Some(top.cursor.value()?),
            None => None,
        };
        Ok(())
    }
}

impl VersionCursor for MergeCursor {
    type Error = Error;

    fn is_valid(&self) -> bool {
        !self.heap.is_empty()
    }

    fn key(&self) -> FullKeyRef<'_> {
        self.heap.peek().expect("valid cursor").cursor.key()
    }

    fn value(&self) -> Value {
        self.current_value.clone().expect("valid cursor")
    }

    async fn next(&mut self) -> Result<()> {
        let Some(top) = self.heap.peek() else {
            return Ok(());
        };
        let key = top.cursor.key();
        let epoch = key.epoch;
        self.left.clear();
        self.left.extend_from_slice(key.user_key);
        self.advance_top().await?;
        // Older sources' entries of the full key just left go with it.
        while self
            .heap
            .peek()
            .is_some_and(|top| top.cursor.key() == FullKeyRef::new(&self.left, epoch))
        {
            self.advance_top().await?;
        }
        self.load_value()
    }
}
