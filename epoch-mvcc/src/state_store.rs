//! The interface stateful operators use to keep their state.

use std::future::Future;

use bytes::Bytes;

use crate::{Direction, Epoch, KeyRange, PinnedSnapshot, StoreResult, Value};

/// Writes of one batch: user keys with a new value or a tombstone.
pub type WriteBatch = Vec<(Bytes, Value)>;

/// A versioned key-value store with epoch-based snapshots.
///
/// Writers write into an epoch, seal it when the epoch's barrier passes, and sync it to make
/// it durable; readers read "as of" an epoch. A read at an epoch that is written but not yet
/// committed sees the writes of this process (read-your-writes for operators); a read at a
/// committed epoch sees exactly the committed data.
pub trait StateStore: Clone + Send + Sync + 'static {
    /// The iterator [`StateStore::iter`] returns.
    type Iter: StateStoreIter;

    /// The newest value of `key` at or below `read_epoch`, if it is not deleted.
    fn get(
        &self,
        key: &[u8],
        read_epoch: Epoch,
    ) -> impl Future<Output = StoreResult<Option<Bytes>>> + Send;

    /// Iterates the visible key-value pairs in `range` as of `read_epoch`, in `direction`.
    fn iter(
        &self,
        range: KeyRange,
        read_epoch: Epoch,
        direction: Direction,
    ) -> impl Future<Output = StoreResult<Self::Iter>> + Send;

    /// Writes a batch at `epoch`, which must not be sealed yet. May wait when the write buffer
    /// is over its memory budget (backpressure) until a sync frees memory.
    fn ingest_batch(
        &self,
        epoch: Epoch,
        batch: WriteBatch,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Seals every epoch up to `epoch`: no more writes to them.
    fn seal_epoch(&self, epoch: Epoch) -> StoreResult<()>;

    /// Makes every sealed epoch up to `epoch` durable and commits it. Returns once the commit is
    /// durable; from then on [`StateStore::committed_epoch`] is at least `epoch`.
    fn sync(&self, epoch: Epoch) -> impl Future<Output = StoreResult<()>> + Send;

    /// The newest durable, committed epoch.
    fn committed_epoch(&self) -> Epoch;

    /// Pins the committed epoch so reads at it stay correct while the guard lives.
    fn pin_snapshot(&self) -> PinnedSnapshot;

    /// Tells the store that writers hold `delta` more (fewer, when negative) bytes of writes
    /// of the epoch being written that they have not ingested yet, so that its write buffer
    /// budget covers them too (see [`StateStore::write_buffer_full`]).
    fn note_held_writes(&self, delta: isize) {
        let _ = delta;
    }

    /// Whether the write buffer and the writes writers hold are over the store's budget: a
    /// writer holding writes should then ingest them (the store spills what it cannot keep)
    /// rather than hold more.
    fn write_buffer_full(&self) -> bool {
        false
    }

    /// A hint: table `table_id` is read by ranges of keys sharing their first `len` bytes
    /// (the table key header included), which the store may index (prefix bloom filters).
    fn set_key_prefix_len(&self, table_id: u32, len: usize) {
        let _ = (table_id, len);
    }
}

/// A streaming iterator over visible `(user key, value)` pairs.
pub trait StateStoreIter: Send {
    /// The next pair, or `None` at the end.
    fn next(&mut self) -> impl Future<Output = StoreResult<Option<(Bytes, Bytes)>>> + Send;

    /// The epoch that wrote the pair `next` returned last: when its row was last changed.
    fn epoch(&self) -> Epoch;
}
