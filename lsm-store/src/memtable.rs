//! The write buffer: a mutable memtable per unsealed epoch, frozen into immutable sorted
//! batches when the epoch is sealed (the shared buffer), until a sync uploads them.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;
use epoch_mvcc::{Epoch, KeyRange, Value};
use parking_lot::Mutex;

/// Approximate heap bytes of one entry.
pub(crate) fn entry_size(key: &Bytes, value: &Value) -> usize {
    key.len() + value.encoded_len() + 48
}

/// Writes of one unsealed epoch; later writes to a key replace earlier ones.
#[derive(Debug)]
pub(crate) struct Memtable {
    pub(crate) epoch: Epoch,
    inner: Mutex<MemtableInner>,
}

#[derive(Debug, Default)]
struct MemtableInner {
    map: BTreeMap<Bytes, Value>,
    size: usize,
    /// Write-budget units this memtable holds (released when its data is committed).
    charged: usize,
}

impl Memtable {
    pub(crate) fn new(epoch: Epoch) -> Self {
        Memtable {
            epoch,
            inner: Mutex::default(),
        }
    }

    pub(crate) fn insert(&self, batch: Vec<(Bytes, Value)>, charged: usize) {
        let mut inner = self.inner.lock();
        inner.charged += charged;
        for (k, v) in batch {
            let added = entry_size(&k, &v);
            if let Some(old) = inner.map.insert(k.clone(), v) {
                inner.size -= entry_size(&k, &old);
            }
            inner.size += added;
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<Value> {
        self.inner.lock().map.get(key).cloned()
    }

    /// A copy of the entries in `range`, for an iterator that must not hold the lock.
    pub(crate) fn snapshot(&self, range: &KeyRange) -> ImmBatch {
        let inner = self.inner.lock();
        let bounds = (as_slice_bound(&range.0), as_slice_bound(&range.1));
        let entries: Vec<_> = inner
            .map
            .range::<[u8], _>(bounds)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        ImmBatch {
            epoch: self.epoch,
            entries,
            size: 0,
            charged: 0,
        }
    }

    /// Freezes the memtable into an immutable batch.
    pub(crate) fn freeze(&self) -> ImmBatch {
        let inner = std::mem::take(&mut *self.inner.lock());
        ImmBatch {
            epoch: self.epoch,
            entries: inner.map.into_iter().collect(),
            size: inner.size,
            charged: inner.charged,
        }
    }

    pub(crate) fn size(&self) -> usize {
        self.inner.lock().size
    }
}

fn as_slice_bound(b: &Bound<Bytes>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_ref()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Sorted, immutable writes of one epoch.
#[derive(Debug, Default)]
pub(crate) struct ImmBatch {
    pub(crate) epoch: Epoch,
    /// Sorted by user key, one entry per key.
    pub(crate) entries: Vec<(Bytes, Value)>,
    pub(crate) size: usize,
    pub(crate) charged: usize,
}

impl ImmBatch {
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Value> {
        self.entries
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| &self.entries[i].1)
    }
}
