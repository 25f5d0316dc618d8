//! The write buffer: a mutable memtable per unsealed epoch, frozen into immutable sorted
//! batches when the epoch is sealed (the shared buffer), until a sync uploads them.

use std::ops::{Bound, Deref};
use std::sync::Arc;

use bytes::Bytes;
use epoch_mvcc::{Epoch, KeyRange, Value};
use parking_lot::Mutex;

use crate::key_filter::{KeyFilter, key_hash};

/// Approximate heap bytes of one entry (with its share of its run's [`KeyFilter`]).
pub(crate) fn entry_size(key: &Bytes, value: &Value) -> usize {
    key.len() + value.encoded_len() + 50
}

/// Writes of one unsealed epoch; later writes to a key replace earlier ones.
///
/// Each ingested batch is kept as a sorted run (state tables hand over their writes sorted,
/// so most batches are taken as they come), rather than inserted entry by entry into one
/// ordered map: an insert costs a check of the order instead of a tree descent and node
/// allocations per entry. Reads look through the runs newest first, skipping those whose key
/// range cannot hold the key; past [`MAX_RUNS`] runs, the adjacent pair with the fewest
/// entries is merged, which keeps many small batches (single-row statements) cheap to read.
#[derive(Debug)]
pub(crate) struct Memtable {
    pub(crate) epoch: Epoch,
    inner: Mutex<MemtableInner>,
}

/// Runs a memtable keeps before merging two.
const MAX_RUNS: usize = 16;

/// Entries sorted by key, one per key.
type Entries = Vec<(Bytes, Value)>;

/// A sorted run, with a filter of its keys for point reads (none in a read's snapshot, which
/// is only iterated).
#[derive(Debug, Default)]
pub(crate) struct Run {
    entries: Entries,
    filter: Option<KeyFilter>,
}

impl Run {
    fn filtered(entries: Entries) -> Run {
        let filter = KeyFilter::new(entries.iter().map(|(k, _)| key_hash(k)), entries.len());
        Run {
            entries,
            filter: Some(filter),
        }
    }

    fn unfiltered(entries: Entries) -> Run {
        Run {
            entries,
            filter: None,
        }
    }

    /// The run's entries, copied if another holder shares it.
    fn into_entries(run: Arc<Run>) -> Entries {
        Arc::try_unwrap(run).map_or_else(|shared| shared.entries.clone(), |run| run.entries)
    }
}

impl Deref for Run {
    type Target = [(Bytes, Value)];

    fn deref(&self) -> &Self::Target {
        &self.entries
    }
}

#[derive(Debug, Default)]
struct MemtableInner {
    /// Oldest first: a later run's entry for a key replaces an earlier run's. Shared with
    /// the batches [`Memtable::freeze`] made.
    runs: Vec<Arc<Run>>,
    /// Approximate heap bytes of every entry held (replaced ones until their run merges).
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

    /// Write-budget units this memtable holds.
    pub(crate) fn charged(&self) -> usize {
        self.inner.lock().charged
    }

    pub(crate) fn insert(&self, batch: Vec<(Bytes, Value)>, charged: usize) {
        let run = Run::filtered(sorted_run(batch));
        if run.is_empty() {
            self.inner.lock().charged += charged;
            return;
        }
        let added: usize = run.iter().map(|(k, v)| entry_size(k, v)).sum();
        let mut inner = self.inner.lock();
        inner.charged += charged;
        inner.size += added;
        inner.runs.push(Arc::new(run));
        while inner.runs.len() > MAX_RUNS {
            let runs = &mut inner.runs;
            let i = (0..runs.len() - 1)
                .min_by_key(|i| runs[*i].len() + runs[i + 1].len())
                .expect("more than one run");
            let newer = Run::into_entries(runs.remove(i + 1));
            let older = Run::into_entries(std::mem::take(&mut runs[i]));
            let (merged, dropped) = merge_runs(vec![older.into_iter(), newer.into_iter()]);
            runs[i] = Arc::new(Run::filtered(merged));
            inner.size -= dropped;
        }
    }

    /// The value of `key` (of hash [`key_hash`]) written here last.
    pub(crate) fn get(&self, key: &[u8], hash: u64) -> Option<Value> {
        let inner = self.inner.lock();
        inner
            .runs
            .iter()
            .rev()
            .find_map(|run| run_get(run, key, hash).cloned())
    }

    /// A copy of the entries in `range`, for an iterator that must not hold the lock.
    pub(crate) fn snapshot(&self, range: &KeyRange) -> ImmBatch {
        let inner = self.inner.lock();
        let bounds = (as_slice_bound(&range.0), as_slice_bound(&range.1));
        let parts = inner
            .runs
            .iter()
            .map(|run| run_slice(run, bounds))
            .collect();
        ImmBatch {
            epoch: self.epoch,
            runs: vec![Arc::new(Run::unfiltered(merge_runs(parts).0))],
            size: 0,
            charged: 0,
        }
    }

    /// An immutable batch of the memtable's runs, for the store to take over once it stops
    /// writing here: the runs are shared, not copied (a reader still holding the memtable
    /// reads them as before), and merged by whoever reads the batch (a flush's merge of
    /// every sealed batch), not here, under the store's lock.
    pub(crate) fn freeze(&self) -> ImmBatch {
        let inner = self.inner.lock();
        ImmBatch {
            epoch: self.epoch,
            runs: inner.runs.clone(),
            size: inner.size,
            charged: inner.charged,
        }
    }

    pub(crate) fn size(&self) -> usize {
        self.inner.lock().size
    }
}

/// `batch` sorted by key with one entry per key, the last written of each.
fn sorted_run(mut batch: Entries) -> Entries {
    if batch.windows(2).all(|w| w[0].0 < w[1].0) {
        return batch;
    }
    // Stable: of equal keys, the last written stays last.
    batch.sort_by(|a, b| a.0.cmp(&b.0));
    let mut run: Entries = Vec::with_capacity(batch.len());
    for entry in batch {
        match run.last_mut() {
            Some(last) if last.0 == entry.0 => *last = entry,
            _ => run.push(entry),
        }
    }
    run
}

/// The entry for `key` (of hash `hash`) in `run`.
fn run_get<'a>(run: &'a Run, key: &[u8], hash: u64) -> Option<&'a Value> {
    let (first, last) = (&run.first()?.0, &run.last()?.0);
    if key < first.as_ref() || key > last.as_ref() {
        return None;
    }
    if run.filter.as_ref().is_some_and(|f| !f.may_contain(hash)) {
        return None;
    }
    run.binary_search_by(|(k, _)| k.as_ref().cmp(key))
        .ok()
        .map(|i| &run[i].1)
}

/// The entries of `run` within `bounds`.
fn run_slice<'a>(run: &'a Run, bounds: (Bound<&[u8]>, Bound<&[u8]>)) -> &'a [(Bytes, Value)] {
    let start = match bounds.0 {
        Bound::Included(s) => run.partition_point(|(k, _)| k.as_ref() < s),
        Bound::Excluded(s) => run.partition_point(|(k, _)| k.as_ref() <= s),
        Bound::Unbounded => 0,
    };
    let end = match bounds.1 {
        Bound::Included(e) => run.partition_point(|(k, _)| k.as_ref() <= e),
        Bound::Excluded(e) => run.partition_point(|(k, _)| k.as_ref() < e),
        Bound::Unbounded => run.len(),
    };
    &run[start..end.max(start)]
}

/// Merges sorted runs, oldest first, into one: of entries with equal keys, the newest run's
/// stays. Returns the run and the [`entry_size`] of the entries replaced.
///
/// Entries go over in stretches: those of the run with the smallest next key that are below
/// every other run's next key are found by a galloping search and moved together, so runs that
/// interleave by ranges (two actors' writes to one table, by vnode) or do not overlap at all
/// cost a search per stretch rather than comparisons per entry.
fn merge_runs<R: RunCursor>(mut runs: Vec<R>) -> (Entries, usize) {
    let mut merged: Entries = Vec::with_capacity(runs.iter().map(|r| r.rest().len()).sum());
    let mut dropped = 0;
    loop {
        runs.retain(|r| !r.rest().is_empty());
        // The smallest next key, and of equal ones the newest run's (the last).
        let Some(first) = (0..runs.len()).min_by(|a, b| {
            runs[*a].rest()[0]
                .0
                .cmp(&runs[*b].rest()[0].0)
                .then(b.cmp(a))
        }) else {
            break;
        };
        let bound = (0..runs.len())
            .filter(|r| *r != first)
            .map(|r| &runs[r].rest()[0].0)
            .min()
            .cloned();
        let Some(bound) = bound else {
            let rest = runs[first].rest().len();
            runs[first].move_to(rest, &mut merged);
            break;
        };
        let below = count_below(runs[first].rest(), &bound);
        if below > 0 {
            runs[first].move_to(below, &mut merged);
            continue;
        }
        // Equal next keys: the newest run's entry stays, the others are replaced.
        runs[first].move_to(1, &mut merged);
        for run in &mut runs {
            if let Some((k, v)) = run.rest().first()
                && *k == bound
            {
                dropped += entry_size(k, v);
                run.skip_one();
            }
        }
    }
    (merged, dropped)
}

/// How many of `run`'s first entries have keys below `bound`: a galloping search, whose cost
/// grows with the answer, not with the run.
fn count_below(run: &[(Bytes, Value)], bound: &Bytes) -> usize {
    let mut end = 1;
    while end < run.len() && run[end].0 < *bound {
        end *= 2;
    }
    let start = end / 2;
    let end = end.min(run.len());
    start + run[start..end].partition_point(|(k, _)| k < bound)
}

/// A sorted run being merged: owned (its entries move) or borrowed (they are cloned).
trait RunCursor {
    /// The entries not merged yet.
    fn rest(&self) -> &[(Bytes, Value)];
    /// Appends the next `n` entries to `out`.
    fn move_to(&mut self, n: usize, out: &mut Entries);
    /// Passes over the next entry.
    fn skip_one(&mut self);
}

impl RunCursor for std::vec::IntoIter<(Bytes, Value)> {
    fn rest(&self) -> &[(Bytes, Value)] {
        self.as_slice()
    }

    fn move_to(&mut self, n: usize, out: &mut Entries) {
        out.extend(self.by_ref().take(n));
    }

    fn skip_one(&mut self) {
        self.next();
    }
}

impl RunCursor for &[(Bytes, Value)] {
    fn rest(&self) -> &[(Bytes, Value)] {
        self
    }

    fn move_to(&mut self, n: usize, out: &mut Entries) {
        out.extend_from_slice(&self[..n]);
        *self = &self[n..];
    }

    fn skip_one(&mut self) {
        *self = &self[1..];
    }
}

fn as_slice_bound(b: &Bound<Bytes>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_ref()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Immutable writes of one epoch: sorted runs, each with one entry per key, a later run's
/// entry replacing an earlier one's.
#[derive(Debug, Default)]
pub(crate) struct ImmBatch {
    pub(crate) epoch: Epoch,
    /// Oldest first.
    pub(crate) runs: Vec<Arc<Run>>,
    pub(crate) size: usize,
    pub(crate) charged: usize,
}

impl ImmBatch {
    /// The value of `key` (of hash [`key_hash`]) in the batch.
    pub(crate) fn get(&self, key: &[u8], hash: u64) -> Option<&Value> {
        self.runs
            .iter()
            .rev()
            .find_map(|run| run_get(run, key, hash))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.runs.iter().all(|run| run.is_empty())
    }
}

/// At most this many ranges per flush, each holding an SST being built and a part being
/// uploaded (~16 MiB).
const MAX_FLUSH_RANGES: usize = 8;

/// User keys cutting `batches` into key ranges to flush in parallel: up to `threads`
/// ranges (at most [`MAX_FLUSH_RANGES`]) of at least `min_range_bytes` (smaller ones would
/// cost more in SSTs and uploads than the parallel build saves), of about as many entries
/// each (quantiles of keys sampled at even steps from every run). Empty when one range will
/// do.
pub(crate) fn flush_bounds(
    batches: &[Arc<ImmBatch>],
    threads: usize,
    min_range_bytes: usize,
) -> Vec<Bytes> {
    let size: usize = batches.iter().map(|b| b.size).sum();
    let ranges = (size / min_range_bytes.max(1))
        .min(threads)
        .min(MAX_FLUSH_RANGES);
    if ranges < 2 {
        return Vec::new();
    }
    let runs = || batches.iter().flat_map(|b| &b.runs);
    let entries: usize = runs().map(|run| run.len()).sum();
    let step = (entries / (ranges * 16)).max(1);
    let mut samples: Vec<&Bytes> = runs()
        .flat_map(|run| run.iter().skip(step - 1).step_by(step).map(|(k, _)| k))
        .collect();
    samples.sort_unstable();
    let mut bounds: Vec<Bytes> = (1..ranges)
        .filter_map(|i| {
            samples
                .get(samples.len() * i / ranges)
                .map(|k| (*k).clone())
        })
        .collect();
    bounds.dedup();
    bounds
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn key(k: u8) -> Bytes {
        Bytes::from(vec![b'k', k])
    }

    fn value(v: Option<u8>) -> Value {
        v.map_or(Value::Delete, |v| Value::Put(Bytes::from(vec![v])))
    }

    proptest! {
        /// Batches in any order, with repeated keys, read as one map written in order: every
        /// key, every range, and the frozen batch; the size counts what is held.
        #[test]
        fn runs_read_as_the_writes_in_order(
            batches in prop::collection::vec(
                prop::collection::vec((0u8..40, prop::option::of(any::<u8>())), 0..30),
                0..40,
            ),
            sorted in prop::collection::vec(any::<bool>(), 40),
            bounds in (0u8..42, 0u8..42),
        ) {
            let memtable = Memtable::new(Epoch(7));
            let mut model = BTreeMap::new();
            for (batch, sorted) in batches.into_iter().zip(sorted) {
                let mut batch: Vec<(Bytes, Value)> =
                    batch.into_iter().map(|(k, v)| (key(k), value(v))).collect();
                if sorted {
                    batch = sorted_run(batch);
                }
                for (k, v) in &batch {
                    model.insert(k.clone(), v.clone());
                }
                memtable.insert(batch, 1);
                prop_assert!(memtable.inner.lock().runs.len() <= MAX_RUNS);
                for k in 0..42 {
                    prop_assert_eq!(memtable.get(&key(k), key_hash(&key(k))), model.get(&key(k)).cloned());
                }
            }
            let (lo, hi) = (key(bounds.0.min(bounds.1)), key(bounds.0.max(bounds.1)));
            let range = (Bound::Excluded(lo.clone()), Bound::Included(hi.clone()));
            let expected: Vec<_> = model
                .range((Bound::Excluded(lo), Bound::Included(hi)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let snapshot = memtable.snapshot(&range);
            prop_assert_eq!(snapshot.runs.len(), 1);
            prop_assert_eq!(&snapshot.runs[0][..], &expected[..]);
            let frozen = memtable.freeze();
            let held: usize = frozen
                .runs
                .iter()
                .flat_map(|run| run.iter())
                .map(|(k, v)| entry_size(k, v))
                .sum();
            prop_assert_eq!(frozen.size, held);
            for k in 0..42 {
                prop_assert_eq!(frozen.get(&key(k), key_hash(&key(k))), model.get(&key(k)));
            }
            let runs = frozen.runs.iter().map(|r| &r[..]).collect();
            let expected: Vec<_> = model.into_iter().collect();
            prop_assert_eq!(merge_runs(runs).0, expected);
        }
    }

    /// A batch of the keys `keys` (as big-endian u32s), in runs of `run` keys.
    fn batch_of(epoch: u64, keys: impl Iterator<Item = u32>, run: usize) -> Arc<ImmBatch> {
        let memtable = Memtable::new(Epoch(epoch));
        let keys: Vec<u32> = keys.collect();
        for chunk in keys.chunks(run) {
            let entries = chunk
                .iter()
                .map(|k| (Bytes::copy_from_slice(&k.to_be_bytes()), value(Some(1))))
                .collect();
            memtable.insert(sorted_run(entries), 1);
        }
        Arc::new(memtable.freeze())
    }

    #[test]
    fn flush_bounds_split_entries_evenly() {
        // Two epochs' batches of interleaved keys, in runs of different lengths.
        let batches = [
            batch_of(1, (0..3000).map(|k| k * 2), 700),
            batch_of(2, (0..1000).map(|k| k * 6 + 1), 90),
        ];
        let size: usize = batches.iter().map(|b| b.size).sum();
        let all: Vec<Bytes> = {
            let mut keys: Vec<Bytes> = batches
                .iter()
                .flat_map(|b| {
                    b.runs
                        .iter()
                        .flat_map(|run| run.iter())
                        .map(|(k, _)| k.clone())
                })
                .collect();
            keys.sort();
            keys
        };
        let bounds = flush_bounds(&batches, 4, size / 8);
        assert_eq!(bounds.len(), 3);
        assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        let mut cuts: Vec<usize> = bounds
            .iter()
            .map(|b| all.partition_point(|k| k < b))
            .collect();
        cuts.insert(0, 0);
        cuts.push(all.len());
        for range in cuts.windows(2) {
            let share = (range[1] - range[0]) as f64 / all.len() as f64;
            assert!(
                (0.2..0.3).contains(&share),
                "a range took {share} of the entries"
            );
        }
        // Ranges are at least the minimum size, and never more than the threads.
        assert_eq!(flush_bounds(&batches, 4, size / 2).len(), 1);
        assert_eq!(flush_bounds(&batches, 1, 1), Vec::<Bytes>::new());
        assert_eq!(flush_bounds(&batches, 4, size + 1), Vec::<Bytes>::new());
    }
}
