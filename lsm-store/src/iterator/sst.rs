//! A cursor over one SST, loading blocks as it crosses them.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use epoch_mvcc::{Direction, FullKeyRef, Value};

use crate::object_store::{ObjectError, ObjectStore};
use crate::sstable::{Block, BlockCursor, block_at_or_after, block_at_or_before};
use crate::sstable_store::{SstStore, Sstable};
use crate::version::{SstInfo, sst_path};
use crate::{Error, Result};

/// Where SST contents come from: the object store through the caches, or (compaction inputs,
/// read once from end to end) the object store directly, in windows.
#[derive(Clone, Debug)]
pub(crate) enum SstSource {
    Store(Arc<SstStore>),
    Streamed(Arc<StreamedSsts>),
}

impl SstSource {
    /// Starts reading `info` ahead of its `open` (a run's next SST), where that helps.
    pub(crate) fn prefetch(&self, info: &SstInfo) {
        if let SstSource::Streamed(streamed) = self {
            StreamedSsts::prefetch(streamed, info);
        }
    }

    pub(crate) async fn open(&self, info: &SstInfo) -> Result<Arc<Sstable>> {
        match self {
            SstSource::Store(store) => store.sstable(info).await,
            SstSource::Streamed(streamed) => streamed.open(info).await,
        }
    }

    async fn block(&self, sst: &Sstable, idx: usize) -> Result<Block> {
        match self {
            SstSource::Store(store) => store.block(sst, idx).await,
            SstSource::Streamed(streamed) => streamed.block(sst, idx).await,
        }
    }
}

/// Bytes a streamed SST is read in at a time.
const WINDOW_BYTES: u64 = 4 << 20;

/// An SST opened ahead: its index and filter, and the whole object when it fits a window.
type Opened = (Arc<Sstable>, Option<Bytes>);

/// SSTs read front to back by ranged reads of about [`WINDOW_BYTES`] (several blocks),
/// bypassing the caches: a compaction's memory stays a window per input being read, however
/// large its inputs. An SST no larger than a window is read whole, in one request, and a
/// run's next SST is read while the current one is merged.
#[derive(Debug)]
pub(crate) struct StreamedSsts {
    objects: Arc<dyn ObjectStore>,
    /// Per SST, the window read last: its start offset and bytes.
    windows: parking_lot::Mutex<HashMap<u64, (u64, Bytes)>>,
    /// SSTs being opened ahead.
    ahead: parking_lot::Mutex<HashMap<u64, tokio::task::JoinHandle<Result<Opened>>>>,
}

impl StreamedSsts {
    pub(crate) fn new(objects: Arc<dyn ObjectStore>) -> Self {
        StreamedSsts {
            objects,
            windows: parking_lot::Mutex::new(HashMap::new()),
            ahead: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    fn prefetch(this: &Arc<Self>, info: &SstInfo) {
        let mut ahead = this.ahead.lock();
        if ahead.contains_key(&info.id) {
            return;
        }
        let (this2, info2) = (Arc::clone(this), info.clone());
        ahead.insert(
            info.id,
            tokio::spawn(async move { this2.fetch_open(&info2).await }),
        );
    }

    async fn fetch_open(&self, info: &SstInfo) -> Result<Opened> {
        let path = sst_path(info.id);
        if info.file_size <= WINDOW_BYTES {
            let whole = self.read(&path, 0..info.file_size).await?;
            let tail = whole.slice(info.tail_offset as usize..);
            return Ok((Arc::new(Sstable::from_tail(info, &tail)?), Some(whole)));
        }
        let tail = self.read(&path, info.tail_offset..info.file_size).await?;
        Ok((Arc::new(Sstable::from_tail(info, &tail)?), None))
    }

    async fn read(&self, path: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        let expected = (range.end - range.start) as usize;
        let bytes = self
            .objects
            .get_range(path, range)
            .await
            .map_err(|e| match e {
                ObjectError::NotFound { .. } => Error::corruption(
                    path,
                    "compaction input referenced by the manifest is missing",
                ),
                other => other.into(),
            })?;
        if bytes.len() != expected {
            return Err(Error::corruption(
                path,
                "object is shorter than its index says",
            ));
        }
        Ok(bytes)
    }

    async fn open(&self, info: &SstInfo) -> Result<Arc<Sstable>> {
        let ahead = self.ahead.lock().remove(&info.id);
        let (sst, whole) = match ahead {
            Some(task) => task
                .await
                .map_err(|e| Error::Internal(format!("reading an SST ahead failed: {e}")))??,
            None => self.fetch_open(info).await?,
        };
        if let Some(whole) = whole {
            self.windows.lock().insert(info.id, (0, whole));
        }
        Ok(sst)
    }

    async fn block(&self, sst: &Sstable, idx: usize) -> Result<Block> {
        let range = sst.block_range(idx);
        let last = idx + 1 == sst.block_count();
        let cached = self.windows.lock().get(&sst.id).and_then(|(start, bytes)| {
            (range.start >= *start && range.end <= start + bytes.len() as u64)
                .then(|| bytes.slice((range.start - start) as usize..(range.end - start) as usize))
        });
        let raw = match cached {
            Some(raw) => raw,
            None => {
                // This block and the ones after it, up to a window.
                let mut end = range.end;
                let mut next = idx + 1;
                while next < sst.block_count()
                    && sst.block_range(next).end - range.start <= WINDOW_BYTES
                {
                    end = sst.block_range(next).end;
                    next += 1;
                }
                let window = self.read(&sst.path, range.start..end).await?;
                let raw = window.slice(0..(range.end - range.start) as usize);
                self.windows.lock().insert(sst.id, (range.start, window));
                raw
            }
        };
        // An SST read to its end is done with.
        if last {
            self.windows.lock().remove(&sst.id);
        }
        Block::decode(raw, &sst.path, sst.tail.format_version)
    }
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
