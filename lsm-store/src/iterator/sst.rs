//! A cursor over one SST, loading blocks as it crosses them.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use epoch_mvcc::{Direction, FullKeyRef, Value};

use crate::sstable::{Block, BlockCursor, block_at_or_after, block_at_or_before};
use crate::sstable_store::{SstStore, Sstable};
use crate::version::{SstInfo, sst_path};
use crate::{Error, Result};

/// Where SST contents come from: the object store through the caches, or whole objects
/// already in memory (compaction inputs, which are read once from end to end).
#[derive(Clone, Debug)]
pub(crate) enum SstSource {
    Store(Arc<SstStore>),
    Preloaded(Arc<HashMap<u64, Bytes>>),
}

impl SstSource {
    pub(crate) async fn open(&self, info: &SstInfo) -> Result<Arc<Sstable>> {
        match self {
            SstSource::Store(store) => store.sstable(info).await,
            SstSource::Preloaded(objects) => {
                let whole = preloaded(objects, info.id)?;
                let tail = whole.get(info.tail_offset as usize..).unwrap_or_default();
                Ok(Arc::new(Sstable::from_tail(info, tail)?))
            }
        }
    }

    async fn block(&self, sst: &Sstable, idx: usize) -> Result<Block> {
        match self {
            SstSource::Store(store) => store.block(sst, idx).await,
            SstSource::Preloaded(objects) => {
                let whole = preloaded(objects, sst.id)?;
                let range = sst.block_range(idx);
                let raw = whole.slice(range.start as usize..range.end as usize);
                Block::decode(raw, &sst.path)
            }
        }
    }
}

fn preloaded(objects: &HashMap<u64, Bytes>, id: u64) -> Result<&Bytes> {
    objects
        .get(&id)
        .ok_or_else(|| Error::Internal(format!("compaction input {} not loaded", sst_path(id))))
}

/// A position in one SST.
#[derive(Debug)]
pub(crate) struct SstCursor {
    sst: Arc<Sstable>,
    source: SstSource,
    direction: Direction,
    block_idx: usize,
    block: Option<BlockCursor>,
}

impl SstCursor {
    pub(crate) fn new(sst: Arc<Sstable>, source: SstSource, direction: Direction) -> Self {
        SstCursor {
            sst,
            source,
            direction,
            block_idx: 0,
            block: None,
        }
    }

    async fn load(&mut self, idx: usize) -> Result<&mut BlockCursor> {
        let block = self.source.block(&self.sst, idx).await?;
        self.block_idx = idx;
        Ok(self
            .block
            .insert(BlockCursor::new(block, Arc::clone(&self.sst.path))))
    }

    /// Positions at the first entry >= `target` (forward) or the last <= `target` (backward).
    pub(crate) async fn seek(&mut self, target: Option<&[u8]>) -> Result<()> {
        self.block = None;
        let count = self.sst.block_count();
        match self.direction {
            Direction::Forward => {
                let idx = target.map_or(0, |t| block_at_or_after(&self.sst.tail.index, t));
                if idx >= count {
                    return Ok(());
                }
                let cursor = self.load(idx).await?;
                match target {
                    Some(t) => cursor.seek(t)?,
                    None => cursor.seek_to_first()?,
                }
            }
            Direction::Backward => {
                let idx = match target {
                    Some(t) => block_at_or_before(&self.sst.tail.index, t),
                    None => count.checked_sub(1),
                };
                let Some(idx) = idx else { return Ok(()) };
                let cursor = self.load(idx).await?;
                match target {
                    Some(t) => cursor.seek_for_prev(t)?,
                    None => cursor.seek_to_last()?,
                }
            }
        }
        self.skip_exhausted_blocks().await
    }

    /// Moves past blocks the cursor has run off the end of.
    async fn skip_exhausted_blocks(&mut self) -> Result<()> {
        while self.block.as_ref().is_some_and(|b| !b.is_valid()) {
            let next = match self.direction {
                Direction::Forward => {
                    Some(self.block_idx + 1).filter(|i| *i < self.sst.block_count())
                }
                Direction::Backward => self.block_idx.checked_sub(1),
            };
            let Some(idx) = next else {
                self.block = None;
                return Ok(());
            };
            let direction = self.direction;
            let cursor = self.load(idx).await?;
            match direction {
                Direction::Forward => cursor.seek_to_first()?,
                Direction::Backward => cursor.seek_to_last()?,
            }
        }
        Ok(())
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.block.as_ref().is_some_and(BlockCursor::is_valid)
    }

    pub(crate) fn key(&self) -> FullKeyRef<'_> {
        self.block.as_ref().expect("valid cursor").key()
    }

    pub(crate) fn value(&self) -> Result<Value> {
        self.block.as_ref().expect("valid cursor").value()
    }

    pub(crate) async fn next(&mut self) -> Result<()> {
        let block = self.block.as_mut().expect("valid cursor");
        match self.direction {
            Direction::Forward => block.next()?,
            Direction::Backward => block.prev()?,
        }
        self.skip_exhausted_blocks().await
    }

    /// Reads the newest version of `user_key` at or below `read_epoch`, if this SST has one.
    pub(crate) async fn get(
        sst: Arc<Sstable>,
        source: &SstSource,
        user_key: &[u8],
        read_epoch: epoch_mvcc::Epoch,
    ) -> Result<Option<Value>> {
        let target = FullKeyRef::new(user_key, read_epoch).encode();
        let mut cursor = SstCursor::new(sst, source.clone(), Direction::Forward);
        cursor.seek(Some(&target)).await?;
        if cursor.is_valid() && cursor.key().user_key == user_key {
            return Ok(Some(cursor.value()?));
        }
        Ok(None)
    }
}
