//! A cursor over a sorted run of non-overlapping SSTs (an L0 sub-level or a level).

use std::sync::Arc;

use epoch_mvcc::{Direction, FullKeyRef, Value, cmp_encoded_full_keys};

use super::sst::{SstCursor, SstSource};
use crate::Result;
use crate::version::SstInfo;

/// Walks SSTs one after another, opening each only when reached.
#[derive(Debug)]
pub(crate) struct ConcatCursor {
    ssts: Arc<[SstInfo]>,
    source: SstSource,
    direction: Direction,
    idx: usize,
    current: Option<SstCursor>,
}

impl ConcatCursor {
    pub(crate) fn new(ssts: Arc<[SstInfo]>, source: SstSource, direction: Direction) -> Self {
        ConcatCursor {
            ssts,
            source,
            direction,
            idx: 0,
            current: None,
        }
    }

    async fn open(&mut self, idx: usize, target: Option<&[u8]>) -> Result<()> {
        self.idx = idx;
        if self.direction == Direction::Forward
            && let Some(next) = self.ssts.get(idx + 1)
        {
            self.source.prefetch(next);
        }
        let sst = self.source.open(&self.ssts[idx]).await?;
        let mut cursor = SstCursor::new(sst, self.source.clone(), self.direction);
        cursor.seek(target).await?;
        self.current = Some(cursor);
        Ok(())
    }

    /// Positions at the first entry >= `target` (forward) or the last <= `target` (backward).
    pub(crate) async fn seek(&mut self, target: Option<&[u8]>) -> Result<()> {
        self.current = None;
        let start = match (self.direction, target) {
            (Direction::Forward, None) => Some(0),
            (Direction::Forward, Some(t)) => Some(
                self.ssts
                    .partition_point(|s| cmp_encoded_full_keys(&s.largest_key, t).is_lt()),
            ),
            (Direction::Backward, None) => self.ssts.len().checked_sub(1),
            (Direction::Backward, Some(t)) => self
                .ssts
                .partition_point(|s| cmp_encoded_full_keys(&s.smallest_key, t).is_le())
                .checked_sub(1),
        };
        match start {
            Some(idx) if idx < self.ssts.len() => {
                self.open(idx, target).await?;
                self.skip_exhausted().await
            }
            _ => Ok(()),
        }
    }

    async fn skip_exhausted(&mut self) -> Result<()> {
        while self.current.as_ref().is_some_and(|c| !c.is_valid()) {
            let next = match self.direction {
                Direction::Forward => Some(self.idx + 1).filter(|i| *i < self.ssts.len()),
                Direction::Backward => self.idx.checked_sub(1),
            };
            match next {
                Some(idx) => self.open(idx, None).await?,
                None => self.current = None,
            }
        }
        Ok(())
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.current.as_ref().is_some_and(SstCursor::is_valid)
    }

    pub(crate) fn key(&self) -> FullKeyRef<'_> {
        self.current.as_ref().expect("valid cursor").key()
    }

    pub(crate) fn value(&self) -> Result<Value> {
        self.current.as_ref().expect("valid cursor").value()
    }

    pub(crate) async fn next(&mut self) -> Result<()> {
        self.current.as_mut().expect("valid cursor").next().await?;
        self.skip_exhausted().await
    }
}
