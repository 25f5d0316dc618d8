//! Row state kept in a [`StateStore`]: the one way operators and tables store rows.
//!
//! A row's key is `table_id | vnode | memcomparable(primary key)`, where the vnode is the hash
//! of the distribution key; its value is the compact encoding of the whole row. Writes of the
//! current epoch are buffered and handed to the store when the epoch's barrier commits them,
//! or earlier when the store's write buffer budget, which counts them, is full
//! ([`StateTable::spill_if_full`]): the store then spills what it cannot keep to the object
//! store. A bounded cache keeps rows recently read from the store, updated when their keys'
//! writes are handed over; the table is its only writer, so the cache never goes stale.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};

use arrow::array::RecordBatch;
use bytes::Bytes;
use epoch_mvcc::memcomparable::{self, OrderType};
use epoch_mvcc::{
    Direction, Epoch, KeyRange, StateStore, StateStoreIter, TABLE_KEY_HEADER_LEN, Value,
    prefix_successor, table_key, table_prefix, vnode_for,
};
use foldhash::HashMap;
use foyer::{Cache, CacheBuilder};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::chunk::{StreamChunk, batch_of, schema_of};
use crate::row_codec::{
    columns_from_rows, decode_value, encode_key_column, encode_keys, encode_value_datums,
    encode_values, key_bytes_len, row_buffers,
};
use crate::types::{DataType, Datum};

/// What a state table stores and how its keys are laid out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDesc {
    /// Unique id; the first four bytes of every key.
    pub table_id: u32,
    /// Types of the row's columns.
    pub types: Vec<DataType>,
    /// Row positions of the primary key columns.
    pub pk: Vec<usize>,
    /// Order of each primary key column.
    pub pk_orders: Vec<OrderType>,
    /// Positions within `pk` of the distribution key columns (empty: everything in vnode 0).
    pub dist_key_in_pk: Vec<usize>,
}

impl TableDesc {
    /// The position, one past the stored columns, that a scan's column list uses for each
    /// row's commit time: when its last change was committed (`_rw_timestamp` in SQL).
    pub fn commit_time_column(&self) -> usize {
        self.types.len()
    }

    /// The type of column `c`, the commit time included.
    pub fn column_type(&self, c: usize) -> DataType {
        self.types.get(c).copied().unwrap_or(DataType::Timestamptz)
    }

    fn dist_key_columns(&self) -> Vec<usize> {
        self.dist_key_in_pk.iter().map(|i| self.pk[*i]).collect()
    }

    fn all_columns(&self) -> Vec<usize> {
        (0..self.types.len()).collect()
    }

    /// The full keys of every row of `batch`, each built in one buffer: the header, then the
    /// primary key, whose leading columns give the vnode when they are the distribution key.
    pub fn keys(&self, batch: &RecordBatch) -> Vec<Bytes> {
        let n = batch.num_rows();
        let mut keys = row_buffers(batch, &self.pk, TABLE_KEY_HEADER_LEN, key_bytes_len);
        for key in &mut keys {
            key.extend_from_slice(&self.table_id.to_be_bytes());
            key.extend_from_slice(&[0; 2]);
        }
        let dist = self.dist_key_in_pk.len();
        let leading_dist = dist > 0
            && (0..dist).eq(self.dist_key_in_pk.iter().copied())
            && self.pk_orders[..dist].iter().all(|o| *o == OrderType::ASC);
        let mut vnodes = None;
        for (i, (c, order)) in self.pk.iter().zip(&self.pk_orders).enumerate() {
            if leading_dist && i == dist {
                vnodes = Some(leading_vnodes(&keys));
            }
            encode_key_column(batch.column(*c), *order, &mut keys);
        }
        let vnodes = match vnodes {
            Some(v) => v,
            None if dist == 0 => vec![0; n],
            None if leading_dist => leading_vnodes(&keys),
            None => {
                let dist_cols = self.dist_key_columns();
                encode_keys(batch, &dist_cols, &vec![OrderType::ASC; dist])
                    .iter()
                    .map(|d| vnode_for(d))
                    .collect()
            }
        };
        keys.into_iter()
            .zip(vnodes)
            .map(|(mut key, vnode)| {
                key[TABLE_KEY_HEADER_LEN - 2..TABLE_KEY_HEADER_LEN]
                    .copy_from_slice(&vnode.to_be_bytes());
                Bytes::from(key.into_boxed_slice())
            })
            .collect()
    }

    /// The full key of the row whose primary key is `pk`.
    pub fn key_of_pk(&self, pk: &[Datum]) -> Bytes {
        let mut encoded = Vec::new();
        for (d, order) in pk.iter().zip(&self.pk_orders) {
            memcomparable::encode_datum(&mut encoded, &d.to_key(), *order);
        }
        let mut dist = Vec::new();
        for i in &self.dist_key_in_pk {
            memcomparable::encode_datum(&mut dist, &pk[*i].to_key(), OrderType::ASC);
        }
        let vnode = if self.dist_key_in_pk.is_empty() {
            0
        } else {
            vnode_for(&dist)
        };
        table_key(self.table_id, vnode, &encoded)
    }

    /// The writes that apply `chunk`: inserts put the row, deletes leave a tombstone.
    pub fn writes(&self, chunk: &StreamChunk) -> Vec<(Bytes, Value)> {
        let keys = self.keys(chunk.data());
        let values = encode_values(chunk.data(), &self.all_columns());
        keys.into_iter()
            .zip(values)
            .zip(chunk.ops())
            .map(|((key, value), op)| {
                let value = if op.is_insert() {
                    Value::Put(Bytes::from(value.into_boxed_slice()))
                } else {
                    Value::Delete
                };
                (key, value)
            })
            .collect()
    }

    /// The key range of the rows whose primary key starts with `prefix`. The distribution
    /// key must lie within the prefix (all such rows share a vnode).
    pub fn prefix_range(&self, prefix: &[Datum]) -> (Bound<Bytes>, Bound<Bytes>) {
        if prefix.is_empty() && !self.dist_key_in_pk.is_empty() {
            return self.key_range();
        }
        assert!(
            self.dist_key_in_pk.iter().all(|i| *i < prefix.len()),
            "a prefix must cover the distribution key"
        );
        let mut encoded = Vec::new();
        for (d, order) in prefix.iter().zip(&self.pk_orders) {
            memcomparable::encode_datum(&mut encoded, &d.to_key(), *order);
        }
        let mut dist = Vec::new();
        for i in &self.dist_key_in_pk {
            memcomparable::encode_datum(&mut dist, &prefix[*i].to_key(), OrderType::ASC);
        }
        let vnode = if self.dist_key_in_pk.is_empty() {
            0
        } else {
            vnode_for(&dist)
        };
        let start = table_key(self.table_id, vnode, &encoded);
        let end =
            prefix_successor(&start).map_or(Bound::Unbounded, |e| Bound::Excluded(Bytes::from(e)));
        (Bound::Included(start), end)
    }

    /// The key range holding every row of the table.
    pub fn key_range(&self) -> (Bound<Bytes>, Bound<Bytes>) {
        let start = Bytes::copy_from_slice(&table_prefix(self.table_id));
        let end =
            prefix_successor(&start).map_or(Bound::Unbounded, |e| Bound::Excluded(Bytes::from(e)));
        (Bound::Included(start), end)
    }
}

/// The vnodes of keys whose bytes after the header are so far their distribution key.
fn leading_vnodes(keys: &[Vec<u8>]) -> Vec<u16> {
    keys.iter()
        .map(|k| vnode_for(&k[TABLE_KEY_HEADER_LEN..]))
        .collect()
}

/// Rows of one table or operator state, written at the current epoch.
pub struct StateTable<S: StateStore> {
    desc: TableDesc,
    store: S,
    epoch: Epoch,
    /// Writes of the current epoch not handed to the store yet.
    pending: Pending,
    /// Whether `pending` starts each epoch in key order (see [`StateTable::read_by_ranges`]).
    read_by_ranges: bool,
    /// Approximate heap bytes of `pending` ([`pending_size`] per entry).
    pending_bytes: usize,
    /// Of those, the bytes the store was told the table holds.
    reported_bytes: usize,
    /// Pending writes smaller than this stay with the table even when the store is full.
    spill_threshold: usize,
    cache: Cache<Bytes, Option<Bytes>>,
}

/// Writes not handed to the store yet: hashed by key while only point reads and writes touch
/// them (a probe each, sorted once at the hand-over), or in key order for a table read by
/// key ranges.
enum Pending {
    Hashed(HashMap<Bytes, Value>),
    Ordered(BTreeMap<Bytes, Value>),
}

impl Pending {
    fn new(ordered: bool) -> Pending {
        if ordered {
            Pending::Ordered(BTreeMap::new())
        } else {
            Pending::Hashed(HashMap::default())
        }
    }

    fn insert(&mut self, key: Bytes, value: Value) -> Option<Value> {
        match self {
            Pending::Hashed(map) => map.insert(key, value),
            Pending::Ordered(map) => map.insert(key, value),
        }
    }

    fn get(&self, key: &Bytes) -> Option<&Value> {
        match self {
            Pending::Hashed(map) => map.get(key),
            Pending::Ordered(map) => map.get(key),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Pending::Hashed(map) => map.is_empty(),
            Pending::Ordered(map) => map.is_empty(),
        }
    }

    /// The writes in `range`, in key order. Sorts the matching writes of a hashed map
    /// (every one is looked at): for the tables that [`StateTable::read_by_ranges`] did not
    /// order, which read a range rarely, if ever.
    fn range(&self, range: &KeyRange) -> PendingRange<'_> {
        match self {
            Pending::Hashed(map) => {
                let mut writes: Vec<_> = map.iter().filter(|(k, _)| range.contains(*k)).collect();
                writes.sort_unstable_by(|a, b| a.0.cmp(b.0));
                PendingRange::Sorted(writes.into_iter())
            }
            Pending::Ordered(map) => PendingRange::Ordered(map.range(range.clone())),
        }
    }

    /// The writes in key order, kept so until `self` is taken.
    fn ordered(&mut self) -> &BTreeMap<Bytes, Value> {
        if let Pending::Hashed(map) = self {
            *self = Pending::Ordered(std::mem::take(map).into_iter().collect());
        }
        match self {
            Pending::Ordered(map) => map,
            Pending::Hashed(_) => unreachable!("ordered above"),
        }
    }

    /// Every write, sorted by key, leaving `self` empty and hashed unless `ordered`.
    fn take_sorted(&mut self, ordered: bool) -> Vec<(Bytes, Value)> {
        match std::mem::replace(self, Pending::new(ordered)) {
            Pending::Hashed(map) => {
                let mut writes: Vec<_> = map.into_iter().collect();
                writes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                writes
            }
            Pending::Ordered(map) => map.into_iter().collect(),
        }
    }

    /// Every write, in no particular order.
    fn iter(&self) -> Box<dyn Iterator<Item = (&Bytes, &Value)> + '_> {
        match self {
            Pending::Hashed(map) => Box::new(map.iter()),
            Pending::Ordered(map) => Box::new(map.iter()),
        }
    }
}

/// The pending writes in a key range, in key order (see [`Pending::range`]).
enum PendingRange<'a> {
    Sorted(std::vec::IntoIter<(&'a Bytes, &'a Value)>),
    Ordered(std::collections::btree_map::Range<'a, Bytes, Value>),
}

impl<'a> Iterator for PendingRange<'a> {
    type Item = (&'a Bytes, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            PendingRange::Sorted(writes) => writes.next(),
            PendingRange::Ordered(writes) => writes.next(),
        }
    }
}

/// Heap bytes a pending write takes: its key and value and a map slot. A slot is two `Bytes`
/// handles (64 bytes); a B-tree's nodes are two thirds to full, and a hash table's buckets
/// seven eighths to seven sixteenths (after it doubles): ~100 bytes on average either way.
fn pending_size(key_len: usize, value: &Value) -> usize {
    key_len + value.as_put().map_or(0, Bytes::len) + 100
}

/// Pending writes a table keeps even when the store's budget is full: handing over smaller
/// ones would give the store many tiny batches (each a sorted run its reads search).
const SPILL_THRESHOLD: usize = 1 << 20;

/// Memory a cache entry takes besides its key and value bytes: foyer's record and hash slot,
/// the two `Bytes` handles and their allocations' rounding. Measured at ~230 bytes (1M
/// entries of 20-byte keys took 262 bytes each under mimalloc), so that small entries, the
/// common kind, keep the cache within its budget.
const CACHE_ENTRY_OVERHEAD: usize = 232;

impl<S: StateStore> StateTable<S> {
    /// A table writing at `epoch`, with a cache of about `cache_bytes`.
    pub fn new(desc: TableDesc, store: S, epoch: Epoch, cache_bytes: usize) -> Self {
        let cache = CacheBuilder::new(cache_bytes.max(1))
            .with_weighter(|k: &Bytes, v: &Option<Bytes>| {
                k.len() + v.as_ref().map_or(0, Bytes::len) + CACHE_ENTRY_OVERHEAD
            })
            .build();
        StateTable {
            desc,
            store,
            epoch,
            pending: Pending::new(false),
            read_by_ranges: false,
            pending_bytes: 0,
            reported_bytes: 0,
            spill_threshold: SPILL_THRESHOLD,
            cache,
        }
    }

    /// Keeps the epoch's writes in key order, for a table read by key ranges
    /// ([`StateTable::rows_with_prefix`]: a join side, a group's sorted values or top rows),
    /// which then merge its own writes without sorting them. Other tables hash their writes
    /// (a point read or write is one probe) and sort them once, when they go to the store.
    pub fn read_by_ranges(mut self) -> Self {
        self.read_by_ranges = true;
        self.pending = Pending::new(true);
        self
    }

    /// The table's layout.
    pub fn desc(&self) -> &TableDesc {
        &self.desc
    }

    /// The epoch being written.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Applies every row of `chunk`: inserts put the row, deletes remove it.
    pub fn write_chunk(&mut self, chunk: &StreamChunk) {
        for (key, value) in self.desc.writes(chunk) {
            self.write(key, value);
        }
    }

    /// Puts one row.
    pub fn insert(&mut self, row: Vec<Datum>) {
        let key = self.row_key(&row);
        let value = encode_value_datums(&row);
        self.write(key, Value::Put(Bytes::from(value)));
    }

    /// Removes the row with `row`'s primary key (`row` is a whole row; only its key matters).
    pub fn delete(&mut self, row: Vec<Datum>) {
        let key = self.row_key(&row);
        self.write(key, Value::Delete);
    }

    /// Removes the row with primary key `pk`.
    pub fn delete_pk(&mut self, pk: &[Datum]) {
        let key = self.desc.key_of_pk(pk);
        self.write(key, Value::Delete);
    }

    /// Buffers one write of the current epoch.
    fn write(&mut self, key: Bytes, value: Value) {
        let key_len = key.len();
        self.pending_bytes += pending_size(key_len, &value);
        if let Some(replaced) = self.pending.insert(key, value) {
            self.pending_bytes -= pending_size(key_len, &replaced);
        }
    }

    /// The storage key of a whole row.
    fn row_key(&self, row: &[Datum]) -> Bytes {
        let pk: Vec<Datum> = self.desc.pk.iter().map(|c| row[*c].clone()).collect();
        self.desc.key_of_pk(&pk)
    }

    /// Puts `row` under `key`, its key as [`TableDesc::keys`] makes it (for an operator that
    /// built a chunk's keys at once).
    pub fn insert_at(&mut self, key: Bytes, row: &[Datum]) {
        let value = encode_value_datums(row);
        self.write(key, Value::Put(Bytes::from(value)));
    }

    /// Removes the row under `key` (see [`StateTable::insert_at`]).
    pub fn delete_at(&mut self, key: Bytes) {
        self.write(key, Value::Delete);
    }

    /// The row with primary key `pk`, as of the current epoch (own writes included).
    pub async fn get_row(&self, pk: &[Datum]) -> Result<Option<Vec<Datum>>> {
        self.get_at(self.desc.key_of_pk(pk)).await
    }

    /// The row under `key` (see [`StateTable::insert_at`]), as of the current epoch (own
    /// writes included).
    pub async fn get_at(&self, key: Bytes) -> Result<Option<Vec<Datum>>> {
        let value = match self.pending.get(&key) {
            Some(v) => v.as_put().cloned(),
            None => match self.cache.get(&key) {
                Some(entry) => entry.value().clone(),
                None => {
                    let v = self.store.get(&key, self.epoch).await?;
                    // A miss is not cached: the operators that read a key write it next
                    // (a new group, a new distinct value), and most such keys are never read
                    // again, so caching their absence cost an insert (and an eviction) and
                    // then another at the hand-over to replace it.
                    if v.is_some() {
                        self.cache_insert(key, v.as_ref());
                    }
                    v
                }
            },
        };
        value
            .map(|v| decode_value(&v, &self.desc.types))
            .transpose()
    }

    /// Caches `key`'s value in an allocation of its own: a value read from an SST is a slice
    /// of its block, which the cache would otherwise keep whole (64 KiB) while it counts
    /// only the value, long after the block cache let the block go.
    fn cache_insert(&self, key: Bytes, value: Option<&Bytes>) {
        self.cache
            .insert(key, value.map(|v| Bytes::copy_from_slice(v)));
    }

    /// Starts writing at `epoch` without handing anything to the store: for an operator's
    /// first barrier, before which it has written nothing.
    pub fn init_epoch(&mut self, epoch: Epoch) {
        assert!(self.pending.is_empty(), "no writes before the first epoch");
        self.epoch = epoch;
    }

    /// Tells the store that this table is read by prefixes of its first `columns` primary
    /// key columns (see [`StateTable::rows_with_prefix`]), when their keys have one length.
    pub fn index_prefix(&self, columns: usize) {
        let widths: Option<usize> = self.desc.pk[..columns]
            .iter()
            .map(|c| self.desc.types[*c].key_width())
            .sum();
        if let Some(width) = widths.filter(|w| *w > 0) {
            self.store
                .set_key_prefix_len(self.desc.table_id, TABLE_KEY_HEADER_LEN + width);
        }
    }

    /// Up to `limit` rows whose primary key starts with `prefix`, in key order, as of the
    /// current epoch (own writes included).
    pub async fn rows_with_prefix(
        &self,
        prefix: &[Datum],
        limit: usize,
    ) -> Result<Vec<Vec<Datum>>> {
        let range = self.desc.prefix_range(prefix);
        let mut pending = self.pending.range(&range).peekable();
        let mut iter = self
            .store
            .iter(range, self.epoch, Direction::Forward)
            .await?;
        let mut stored = iter.next().await?;
        let mut rows = Vec::new();
        while rows.len() < limit {
            // The smaller key next; on equal keys the own write wins over the stored value.
            let take_pending = match (&stored, pending.peek()) {
                (None, None) => break,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some((k, _)), Some((pk, _))) => *pk <= k,
            };
            let value = if take_pending {
                let (k, v) = pending.next().expect("peeked");
                if stored.as_ref().is_some_and(|(sk, _)| sk == k) {
                    stored = iter.next().await?;
                }
                v.as_put().cloned()
            } else {
                let (_, v) = stored.take().expect("checked");
                stored = iter.next().await?;
                Some(v)
            };
            if let Some(v) = value {
                rows.push(decode_value(&v, &self.desc.types)?);
            }
        }
        Ok(rows)
    }

    /// Deletes the rows of vnode `vnode` whose first primary key column (ascending) is below
    /// `bound`, NULLs (which sort last) kept: the state a watermark says no row will need.
    /// Returns how many rows went.
    pub async fn delete_below(&mut self, vnode: u16, bound: &Datum) -> Result<usize> {
        Ok(self.remove_below(vnode, bound).await?.len())
    }

    /// Deletes the rows [`StateTable::delete_below`] does, and returns them.
    pub async fn delete_rows_below(
        &mut self,
        vnode: u16,
        bound: &Datum,
    ) -> Result<Vec<Vec<Datum>>> {
        self.remove_below(vnode, bound)
            .await?
            .iter()
            .map(|v| decode_value(v, &self.desc.types))
            .collect()
    }

    /// Deletes the rows of vnode `vnode` below `bound` (see [`StateTable::delete_below`]);
    /// returns their encoded values.
    async fn remove_below(&mut self, vnode: u16, bound: &Datum) -> Result<Vec<Bytes>> {
        assert!(
            self.desc.pk_orders.first() == Some(&OrderType::ASC),
            "an ascending first key column"
        );
        let mut upper = Vec::new();
        memcomparable::encode_datum(&mut upper, &bound.to_key(), OrderType::ASC);
        let range = (
            Bound::Included(table_key(self.desc.table_id, vnode, &[])),
            Bound::Excluded(table_key(self.desc.table_id, vnode, &upper)),
        );
        // Ordered for the rest of the epoch: a watermark cleans every vnode in turn.
        let pending = self.pending.ordered();
        let mut doomed: Vec<(Bytes, Bytes)> = pending
            .range(range.clone())
            .filter_map(|(k, v)| Some((k.clone(), v.as_put()?.clone())))
            .collect();
        let mut iter = self
            .store
            .iter(range, self.epoch, Direction::Forward)
            .await?;
        while let Some((key, value)) = iter.next().await? {
            if self.pending.get(&key).is_none() {
                doomed.push((key, value));
            }
        }
        Ok(doomed
            .into_iter()
            .map(|(key, value)| {
                self.write(key, Value::Delete);
                value
            })
            .collect())
    }

    /// Every row, in key order, as of the current epoch (own writes included).
    pub async fn rows(&self) -> Result<Vec<Vec<Datum>>> {
        let mut stored = BTreeMap::new();
        let mut iter = self
            .store
            .iter(self.desc.key_range(), self.epoch, Direction::Forward)
            .await?;
        while let Some((k, v)) = iter.next().await? {
            stored.insert(k, v);
        }
        for (k, v) in self.pending.iter() {
            match v {
                Value::Put(bytes) => stored.insert(k.clone(), bytes.clone()),
                Value::Delete => stored.remove(k),
            };
        }
        stored
            .values()
            .map(|v| decode_value(v, &self.desc.types))
            .collect()
    }

    /// Hands the epoch's writes to the store and starts writing `next`.
    pub async fn commit(&mut self, next: Epoch) -> Result<()> {
        assert!(next > self.epoch, "epochs move forward");
        self.hand_over().await?;
        self.epoch = next;
        Ok(())
    }

    /// Tells the store how much the table's pending writes take, and when its write buffer
    /// budget (which counts them) is full, hands them over rather than at the barrier: the
    /// store spills what it cannot keep to the object store, so an epoch's writes stay within
    /// the budget. Operators call this between chunks.
    pub async fn spill_if_full(&mut self) -> Result<()> {
        let grown = self.pending_bytes as isize - self.reported_bytes as isize;
        if grown != 0 {
            self.store.note_held_writes(grown);
            self.reported_bytes = self.pending_bytes;
        }
        if self.pending_bytes >= self.spill_threshold && self.store.write_buffer_full() {
            self.hand_over().await?;
        }
        Ok(())
    }

    /// Takes back what the store was told the table holds.
    fn release_reported(&mut self) {
        if self.reported_bytes > 0 {
            self.store.note_held_writes(-(self.reported_bytes as isize));
            self.reported_bytes = 0;
        }
    }

    /// Hands the pending writes to the store, at the current epoch.
    async fn hand_over(&mut self) -> Result<()> {
        self.release_reported();
        self.pending_bytes = 0;
        let writes = self.pending.take_sorted(self.read_by_ranges);
        // Cached keys get their new values; others are read from the store when asked for
        // (most written rows are never read back: a view's rows, appended state).
        for (k, v) in &writes {
            if self.cache.contains(k) {
                self.cache_insert(k.clone(), v.as_put());
            }
        }
        if !writes.is_empty() {
            self.store.ingest_batch(self.epoch, writes).await?;
        }
        Ok(())
    }
}

impl<S: StateStore> Drop for StateTable<S> {
    fn drop(&mut self) {
        self.release_reported();
    }
}

/// Reads a whole table as of a committed epoch, a batch of rows at a time.
pub struct TableScan<S: StateStore> {
    types: Vec<DataType>,
    iter: S::Iter,
    batch_rows: usize,
    commit_time: bool,
}

impl<S: StateStore> TableScan<S> {
    /// Starts a scan of `desc`'s rows as of `epoch`.
    pub async fn new(store: &S, desc: &TableDesc, epoch: Epoch, batch_rows: usize) -> Result<Self> {
        let iter = store
            .iter(desc.key_range(), epoch, Direction::Forward)
            .await?;
        Ok(TableScan {
            types: desc.types.clone(),
            iter,
            batch_rows: batch_rows.max(1),
            commit_time: false,
        })
    }

    /// Each row followed by its commit time (see [`TableDesc::commit_time_column`]).
    pub fn with_commit_time(mut self) -> Self {
        self.commit_time = true;
        self.types.push(DataType::Timestamptz);
        self
    }

    /// The next batch, or `None` at the end.
    pub async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        // Reads of cached blocks never wait, so without this a long scan would never give the
        // runtime a chance to run other tasks or to cancel it.
        tokio::task::yield_now().await;
        let mut rows = Vec::with_capacity(self.batch_rows);
        while rows.len() < self.batch_rows {
            match self.iter.next().await? {
                Some((key, value)) => {
                    debug_assert!(key.len() >= TABLE_KEY_HEADER_LEN);
                    if self.commit_time {
                        let stored = &self.types[..self.types.len() - 1];
                        let mut row = decode_value(&value, stored)?;
                        let ms = i64::try_from(self.iter.epoch().unix_ms()).unwrap_or(i64::MAX);
                        row.push(Datum::Timestamptz(ms.saturating_mul(1000)));
                        rows.push(row);
                    } else {
                        rows.push(decode_value(&value, &self.types)?);
                    }
                }
                None => break,
            }
        }
        if rows.is_empty() {
            return Ok(None);
        }
        let columns = columns_from_rows(&rows, &self.types);
        Ok(Some(batch_of(schema_of(&self.types), columns, rows.len())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use proptest::prelude::*;

    use lsm_store::object_store::MemoryObjectStore;
    use lsm_store::{LsmStore, LsmStoreOptions};

    fn desc() -> TableDesc {
        TableDesc {
            table_id: 42,
            types: vec![DataType::Int64, DataType::Varchar, DataType::Float64],
            pk: vec![1, 0],
            pk_orders: vec![OrderType::ASC, OrderType::DESC],
            dist_key_in_pk: vec![0],
        }
    }

    /// Keys built a column at a time for a whole batch are the keys of each row's primary
    /// key, however the distribution key sits in it.
    #[test]
    fn batch_keys_are_each_rows_key() {
        let chunk = StreamChunk::from_pretty(
            " I T F
             + 1 a 1.5
             + -7 a-rather-long-string-of-text 2.5
             + . b .
             + 3 . 0.25",
        );
        let batch = chunk.data();
        let (asc, desc_order) = (OrderType::ASC, OrderType::DESC);
        for (pk_orders, dist_key_in_pk) in [
            (vec![asc, desc_order], vec![0]),
            (vec![asc, desc_order], vec![1]),
            (vec![asc, desc_order], vec![0, 1]),
            (vec![desc_order, asc], vec![0]),
            (vec![asc, asc], vec![1, 0]),
            (vec![asc, asc], vec![]),
        ] {
            let desc = TableDesc {
                pk_orders,
                dist_key_in_pk,
                ..desc()
            };
            let keys = desc.keys(batch);
            for (r, key) in keys.iter().enumerate() {
                let row = chunk.row(r);
                let pk: Vec<Datum> = desc.pk.iter().map(|c| row[*c].clone()).collect();
                assert_eq!(*key, desc.key_of_pk(&pk), "{desc:?} row {r}");
            }
        }
    }

    #[tokio::test]
    async fn writes_reads_commits_and_scans() {
        let store = LsmStore::open(
            Arc::new(MemoryObjectStore::new()),
            LsmStoreOptions::default(),
        )
        .await
        .unwrap();
        let e1 = Epoch(1);
        let mut table = StateTable::new(desc(), store.clone(), e1, 1 << 20);
        table.write_chunk(&StreamChunk::from_pretty(
            " I T F
             + 1 a 1.5
             + 2 a 2.5
             + 3 b .",
        ));
        let pk = |a: &str, n: i64| vec![Datum::Varchar(a.into()), Datum::Int64(n)];
        assert_eq!(
            table.get_row(&pk("a", 2)).await.unwrap(),
            Some(vec![
                Datum::Int64(2),
                Datum::Varchar("a".into()),
                Datum::Float64(2.5)
            ])
        );
        table.commit(Epoch(2)).await.unwrap();
        table.delete(vec![
            Datum::Int64(2),
            Datum::Varchar("a".into()),
            Datum::Null,
        ]);
        table.insert(vec![
            Datum::Int64(3),
            Datum::Varchar("b".into()),
            Datum::Float64(9.0),
        ]);
        assert_eq!(table.get_row(&pk("a", 2)).await.unwrap(), None);
        // Key order: pk (name ASC, id DESC) within each vnode; rows() merges own writes.
        let rows = table.rows().await.unwrap();
        assert_eq!(rows.len(), 2);
        table.commit(Epoch(3)).await.unwrap();
        store.seal_epoch(Epoch(2)).unwrap();
        store.sync(Epoch(2)).await.unwrap();

        // A scan at the committed epoch 1 sees the first chunk only; at 2, the update.
        let mut at1 = TableScan::new(&store, &desc(), e1, 2).await.unwrap();
        let mut count = 0;
        while let Some(b) = at1.next_batch().await.unwrap() {
            assert!(b.num_rows() <= 2);
            count += b.num_rows();
        }
        assert_eq!(count, 3);
        let mut at2 = TableScan::new(&store, &desc(), Epoch(2), 100)
            .await
            .unwrap();
        let batch = at2.next_batch().await.unwrap().unwrap();
        assert_eq!(batch.num_rows(), 2);
        let fresh = StateTable::new(desc(), store.clone(), Epoch(3), 1 << 20);
        assert_eq!(
            fresh.get_row(&pk("b", 3)).await.unwrap(),
            Some(vec![
                Datum::Int64(3),
                Datum::Varchar("b".into()),
                Datum::Float64(9.0)
            ])
        );
    }

    /// An epoch of ~4 MiB of rows with a 256 KiB store buffer: the table hands its writes
    /// over mid-epoch and the store spills them, the epoch's reads see every row, and the
    /// store no longer counts what the table held once it is committed.
    #[tokio::test]
    async fn an_epoch_bigger_than_the_buffer_leaves_the_table_before_its_barrier() {
        let options = LsmStoreOptions {
            write_buffer_bytes: 256 << 10,
            ..LsmStoreOptions::default()
        };
        let store = LsmStore::open(Arc::new(MemoryObjectStore::new()), options)
            .await
            .unwrap();
        let mut table = StateTable::new(desc(), store.clone(), Epoch(1), 1 << 20);
        for id in 0..40_000 {
            table.insert(row(id, (id % 3) as u8, (id % 100) as i8));
            if id % 500 == 499 {
                table.spill_if_full().await.unwrap();
            }
        }
        let stats = store.stats();
        assert!(
            stats.ingested_bytes > 0,
            "nothing was handed over mid-epoch"
        );
        assert!(stats.spills > 0, "the store did not spill");
        assert!(table.pending_bytes < 2 * SPILL_THRESHOLD);
        for id in (0..40_000).step_by(997) {
            let pk = [Datum::Varchar(format!("n{}", id % 3)), Datum::Int64(id)];
            assert_eq!(
                table.get_row(&pk).await.unwrap(),
                Some(row(id, (id % 3) as u8, (id % 100) as i8))
            );
        }
        assert_eq!(table.rows().await.unwrap().len(), 40_000);
        table.commit(Epoch(2)).await.unwrap();
        store.seal_epoch(Epoch(1)).unwrap();
        store.sync(Epoch(1)).await.unwrap();
        assert!(!store.write_buffer_full(), "held writes still counted");
        let mut scan = TableScan::new(&store, &desc(), Epoch(1), 10_000)
            .await
            .unwrap();
        let mut count = 0;
        while let Some(b) = scan.next_batch().await.unwrap() {
            count += b.num_rows();
        }
        assert_eq!(count, 40_000);
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Rows `(id, name, value)`: a value puts the row, none deletes it.
        Write(Vec<(i64, u8, Option<i8>)>),
        Commit,
        Get(i64, u8),
        Prefix(u8, usize),
        All,
        /// Deletes the rows whose name is below `n{bound}`, every vnode in turn.
        DeleteBelow(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => prop::collection::vec((0i64..12, 0u8..3, prop::option::weighted(0.8, any::<i8>())), 1..20)
                .prop_map(Op::Write),
            2 => Just(Op::Commit),
            3 => (0i64..12, 0u8..3).prop_map(|(id, name)| Op::Get(id, name)),
            2 => (0u8..3, 1usize..15).prop_map(|(name, limit)| Op::Prefix(name, limit)),
            1 => Just(Op::All),
            1 => (0u8..4).prop_map(Op::DeleteBelow),
        ]
    }

    fn row(id: i64, name: u8, value: i8) -> Vec<Datum> {
        vec![
            Datum::Int64(id),
            Datum::Varchar(format!("n{name}")),
            Datum::Float64(f64::from(value)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

        /// With a store budget of a few rows, pending writes go to the store mid-epoch (whose
        /// buffer spills to SSTs): every read of the epoch still sees the table's writes in
        /// order, as a map does, before and after commits, whether the table keeps its
        /// writes hashed or in key order.
        #[test]
        fn spilled_writes_read_as_a_map(
            ops in prop::collection::vec(op(), 1..60),
            read_by_ranges: bool,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let options = LsmStoreOptions {
                    write_buffer_bytes: 2 << 10,
                    ..LsmStoreOptions::default()
                };
                let store = LsmStore::open(Arc::new(MemoryObjectStore::new()), options)
                    .await
                    .unwrap();
                let mut table = StateTable::new(desc(), store.clone(), Epoch(1), 1 << 20);
                if read_by_ranges {
                    table = table.read_by_ranges();
                }
                table.spill_threshold = 400;
                // Rows by primary key in key order: name ascending, id descending.
                let mut model: BTreeMap<(u8, std::cmp::Reverse<i64>), Vec<Datum>> = BTreeMap::new();
                for op in ops {
                    match op {
                        Op::Write(rows) => {
                            for (id, name, value) in rows {
                                let key = (name, std::cmp::Reverse(id));
                                match value {
                                    Some(v) => {
                                        table.insert(row(id, name, v));
                                        model.insert(key, row(id, name, v));
                                    }
                                    None => {
                                        table.delete(row(id, name, 0));
                                        model.remove(&key);
                                    }
                                }
                            }
                            table.spill_if_full().await.unwrap();
                        }
                        Op::Commit => {
                            let epoch = table.epoch();
                            table.commit(Epoch(epoch.0 + 1)).await.unwrap();
                            store.seal_epoch(epoch).unwrap();
                            store.sync(epoch).await.unwrap();
                        }
                        Op::Get(id, name) => {
                            let pk = [Datum::Varchar(format!("n{name}")), Datum::Int64(id)];
                            let expected = model.get(&(name, std::cmp::Reverse(id))).cloned();
                            assert_eq!(table.get_row(&pk).await.unwrap(), expected);
                        }
                        Op::Prefix(name, limit) => {
                            let prefix = [Datum::Varchar(format!("n{name}"))];
                            let expected: Vec<Vec<Datum>> = model
                                .range((name, std::cmp::Reverse(i64::MAX))..=(name, std::cmp::Reverse(i64::MIN)))
                                .map(|(_, r)| r.clone())
                                .take(limit)
                                .collect();
                            assert_eq!(table.rows_with_prefix(&prefix, limit).await.unwrap(), expected);
                        }
                        Op::All => {
                            let mut got = table.rows().await.unwrap();
                            let mut expected: Vec<Vec<Datum>> = model.values().cloned().collect();
                            // rows() is in storage key order (vnode first).
                            let by_key = |r: &Vec<Datum>| format!("{:?}", r);
                            got.sort_by_key(by_key);
                            expected.sort_by_key(by_key);
                            assert_eq!(got, expected);
                        }
                        Op::DeleteBelow(bound) => {
                            let mut deleted = 0;
                            for vnode in 0..epoch_mvcc::VNODE_COUNT as u16 {
                                let below = Datum::Varchar(format!("n{bound}"));
                                deleted += table.delete_below(vnode, &below).await.unwrap();
                            }
                            let before = model.len();
                            model.retain(|(name, _), _| *name >= bound);
                            assert_eq!(deleted, before - model.len());
                        }
                    }
                }
            });
        }
    }
}
