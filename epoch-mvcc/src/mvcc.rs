//! MVCC visibility over a merged stream of versions.
//!
//! Storage layers expose their contents as a [`VersionCursor`]: every version of every key in
//! full-key order (user key ascending, newest version first), or the exact reverse. On top of
//! one merged cursor, [`MvccIter`] yields what a reader at an epoch sees and
//! [`CompactionFilter`] decides which versions compaction must keep.

use std::future::Future;
use std::ops::Bound;

use bytes::Bytes;

use crate::{Epoch, FullKeyRef, Value};

/// Which way an iteration walks the key space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Ascending user keys; for one user key, newest version first.
    #[default]
    Forward,
    /// Descending user keys; for one user key, oldest version first.
    Backward,
}

/// A positioned cursor over versions, already placed on its first entry.
pub trait VersionCursor: Send {
    /// The error a step can fail with (I/O, corruption).
    type Error: Send;

    /// Whether the cursor points at an entry.
    fn is_valid(&self) -> bool;

    /// The current entry's key. Only called while [`VersionCursor::is_valid`].
    fn key(&self) -> FullKeyRef<'_>;

    /// The current entry's value. Only called while [`VersionCursor::is_valid`].
    fn value(&self) -> Value;

    /// Moves to the next entry in the cursor's direction.
    fn next(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// A user-key range: start and end bounds on user keys.
pub type KeyRange = (Bound<Bytes>, Bound<Bytes>);

/// Whether `key` is below the end of `range` (forward) or above its start (backward).
pub fn within_end(range: &KeyRange, key: &[u8], direction: Direction) -> bool {
    match direction {
        Direction::Forward => match &range.1 {
            Bound::Included(end) => key <= end.as_ref(),
            Bound::Excluded(end) => key < end.as_ref(),
            Bound::Unbounded => true,
        },
        Direction::Backward => match &range.0 {
            Bound::Included(start) => key >= start.as_ref(),
            Bound::Excluded(start) => key > start.as_ref(),
            Bound::Unbounded => true,
        },
    }
}

/// Whether `key` lies within `range`.
pub fn range_contains(range: &KeyRange, key: &[u8]) -> bool {
    within_end(range, key, Direction::Forward) && within_end(range, key, Direction::Backward)
}

/// Yields, for each user key in range, the newest version with epoch at most the read epoch,
/// skipping keys whose visible version is a tombstone.
///
/// The cursor should be positioned at (or just before) the first entry of the range in
/// `direction`; keys before the range are skipped and iteration stops when the user key
/// leaves it.
pub struct MvccIter<C> {
    cursor: C,
    read_epoch: Epoch,
    direction: Direction,
    range: KeyRange,
    last_user_key: Option<Vec<u8>>,
    last_epoch: Epoch,
}

impl<C: VersionCursor> MvccIter<C> {
    /// An iterator reading `cursor` as of `read_epoch`, bounded by `range`.
    pub fn new(cursor: C, read_epoch: Epoch, direction: Direction, range: KeyRange) -> Self {
        MvccIter {
            cursor,
            read_epoch,
            direction,
            range,
            last_user_key: None,
            last_epoch: Epoch(0),
        }
    }

    /// The epoch that wrote the value `next` returned last.
    pub fn epoch(&self) -> Epoch {
        self.last_epoch
    }

    /// The next visible `(user key, value)`, or `None` at the end of the range.
    pub async fn next(&mut self) -> Result<Option<(Bytes, Bytes)>, C::Error> {
        match self.direction {
            Direction::Forward => self.next_forward().await,
            Direction::Backward => self.next_backward().await,
        }
    }

    async fn next_forward(&mut self) -> Result<Option<(Bytes, Bytes)>, C::Error> {
        while self.cursor.is_valid() {
            let key = self.cursor.key();
            if !within_end(&self.range, key.user_key, Direction::Forward) {
                return Ok(None);
            }
            let newer_than_read = key.epoch > self.read_epoch;
            let shadowed = self.last_user_key.as_deref() == Some(key.user_key);
            let before_start = !within_end(&self.range, key.user_key, Direction::Backward);
            if newer_than_read || shadowed || before_start {
                self.cursor.next().await?;
                continue;
            }
            // First visible version of a new user key: it decides what the reader sees.
            let user_key = key.user_key.to_vec();
            let epoch = key.epoch;
            let value = self.cursor.value();
            self.last_user_key = Some(user_key.clone());
            self.cursor.next().await?;
            if let Value::Put(v) = value {
                self.last_epoch = epoch;
                return Ok(Some((Bytes::from(user_key), v)));
            }
        }
        Ok(None)
    }

    async fn next_backward(&mut self) -> Result<Option<(Bytes, Bytes)>, C::Error> {
        // Backward, a user key's versions arrive oldest first: the last one at or below the
        // read epoch is the visible one.
        while self.cursor.is_valid() {
            let user_key = self.cursor.key().user_key.to_vec();
            if !within_end(&self.range, &user_key, Direction::Backward) {
                return Ok(None);
            }
            let after_end = !within_end(&self.range, &user_key, Direction::Forward);
            let mut visible = None;
            while self.cursor.is_valid() && self.cursor.key().user_key == user_key.as_slice() {
                let epoch = self.cursor.key().epoch;
                if epoch <= self.read_epoch {
                    visible = Some((self.cursor.value(), epoch));
                }
                self.cursor.next().await?;
            }
            if let (Some((Value::Put(v), epoch)), false) = (visible, after_end) {
                self.last_epoch = epoch;
                return Ok(Some((Bytes::from(user_key), v)));
            }
        }
        Ok(None)
    }
}

/// Decides, for a forward stream of versions, which ones compaction keeps.
///
/// Readers never read below the safe epoch, so for each user key compaction keeps every version
/// newer than the safe epoch plus the newest version at or below it (which a reader at the safe
/// epoch sees). That newest version is dropped too when it is a tombstone and nothing older can
/// exist below the output (`drop_tombstones`, set for the bottommost level).
#[derive(Debug)]
pub struct CompactionFilter {
    safe_epoch: Epoch,
    drop_tombstones: bool,
    last_user_key: Vec<u8>,
    kept_at_or_below_safe: bool,
    started: bool,
}

impl CompactionFilter {
    /// A filter for one compaction's merged input.
    pub fn new(safe_epoch: Epoch, drop_tombstones: bool) -> Self {
        CompactionFilter {
            safe_epoch,
            drop_tombstones,
            last_user_key: Vec::new(),
            kept_at_or_below_safe: false,
            started: false,
        }
    }

    /// Whether to keep this version. Call once per version, in forward full-key order.
    pub fn keep(&mut self, key: FullKeyRef<'_>, is_delete: bool) -> bool {
        if !self.started || key.user_key != self.last_user_key.as_slice() {
            self.started = true;
            self.last_user_key.clear();
            self.last_user_key.extend_from_slice(key.user_key);
            self.kept_at_or_below_safe = false;
        }
        if key.epoch > self.safe_epoch {
            return true;
        }
        if self.kept_at_or_below_safe {
            return false;
        }
        self.kept_at_or_below_safe = true;
        !(is_delete && self.drop_tombstones)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::convert::Infallible;

    /// A cursor over an in-memory sorted list of versions.
    struct VecCursor {
        entries: Vec<(Vec<u8>, Epoch, Value)>,
        pos: usize,
    }

    impl VecCursor {
        fn new(mut entries: Vec<(Vec<u8>, Epoch, Value)>, direction: Direction) -> Self {
            entries.sort_by(|a, b| FullKeyRef::new(&a.0, a.1).cmp(&FullKeyRef::new(&b.0, b.1)));
            if direction == Direction::Backward {
                entries.reverse();
            }
            VecCursor { entries, pos: 0 }
        }
    }

    impl VersionCursor for VecCursor {
        type Error = Infallible;
        fn is_valid(&self) -> bool {
            self.pos < self.entries.len()
        }
        fn key(&self) -> FullKeyRef<'_> {
            let (k, e, _) = &self.entries[self.pos];
            FullKeyRef::new(k, *e)
        }
        fn value(&self) -> Value {
            self.entries[self.pos].2.clone()
        }
        async fn next(&mut self) -> Result<(), Infallible> {
            self.pos += 1;
            Ok(())
        }
    }

    fn collect(
        entries: Vec<(Vec<u8>, Epoch, Value)>,
        read: Epoch,
        dir: Direction,
    ) -> Vec<(Bytes, Bytes)> {
        let cursor = VecCursor::new(entries, dir);
        let mut it = MvccIter::new(cursor, read, dir, (Bound::Unbounded, Bound::Unbounded));
        let mut out = Vec::new();
        futures::executor::block_on(async {
            while let Some(kv) = it.next().await.unwrap() {
                out.push(kv);
            }
        });
        out
    }

    fn put(k: &str, e: u64, v: &str) -> (Vec<u8>, Epoch, Value) {
        (
            k.as_bytes().to_vec(),
            Epoch(e),
            Value::Put(Bytes::copy_from_slice(v.as_bytes())),
        )
    }

    fn del(k: &str, e: u64) -> (Vec<u8>, Epoch, Value) {
        (k.as_bytes().to_vec(), Epoch(e), Value::Delete)
    }

    #[test]
    fn reads_newest_visible_version_both_directions() {
        let data = vec![
            put("a", 1, "a1"),
            put("a", 3, "a3"),
            del("b", 2),
            put("b", 1, "b1"),
            put("c", 5, "c5"),
        ];
        let kv = |k: &str, v: &str| {
            (
                Bytes::copy_from_slice(k.as_bytes()),
                Bytes::copy_from_slice(v.as_bytes()),
            )
        };
        assert_eq!(
            collect(data.clone(), Epoch(1), Direction::Forward),
            vec![kv("a", "a1"), kv("b", "b1")]
        );
        assert_eq!(
            collect(data.clone(), Epoch(4), Direction::Forward),
            vec![kv("a", "a3")]
        );
        assert_eq!(
            collect(data.clone(), Epoch(9), Direction::Backward),
            vec![kv("c", "c5"), kv("a", "a3")]
        );
        assert_eq!(
            collect(data, Epoch(1), Direction::Backward),
            vec![kv("b", "b1"), kv("a", "a1")]
        );
    }

    #[test]
    fn reports_the_epoch_that_wrote_each_visible_value() {
        let data = vec![put("a", 1, "a1"), put("a", 3, "a3"), put("b", 2, "b2")];
        for (dir, expected) in [
            (Direction::Forward, vec![3, 2]),
            (Direction::Backward, vec![2, 3]),
        ] {
            let cursor = VecCursor::new(data.clone(), dir);
            let mut it = MvccIter::new(cursor, Epoch(9), dir, (Bound::Unbounded, Bound::Unbounded));
            let mut epochs = Vec::new();
            futures::executor::block_on(async {
                while it.next().await.unwrap().is_some() {
                    epochs.push(it.epoch().0);
                }
            });
            assert_eq!(epochs, expected);
        }
    }

    #[test]
    fn compaction_keeps_what_safe_epoch_needs() {
        let mut f = CompactionFilter::new(Epoch(5), false);
        assert!(f.keep(FullKeyRef::new(b"a", Epoch(7)), false));
        assert!(f.keep(FullKeyRef::new(b"a", Epoch(5)), true));
        assert!(!f.keep(FullKeyRef::new(b"a", Epoch(2)), false));
        assert!(f.keep(FullKeyRef::new(b"b", Epoch(1)), false));
        let mut bottom = CompactionFilter::new(Epoch(5), true);
        assert!(!bottom.keep(FullKeyRef::new(b"a", Epoch(4)), true));
        assert!(!bottom.keep(FullKeyRef::new(b"a", Epoch(3)), false));
        assert!(
            bottom.keep(FullKeyRef::new(b"b", Epoch(6)), true),
            "tombstones above the safe epoch stay"
        );
    }

    proptest::proptest! {
        /// Compacting with any safe epoch leaves every read at or above it unchanged.
        #[test]
        fn compaction_preserves_reads_above_safe_epoch(
            ops in proptest::collection::vec((0u8..6, 1u64..20, proptest::option::of(0u8..100)), 0..60),
            safe in 0u64..22,
            bottom: bool,
        ) {
            let mut versions = BTreeMap::new();
            for (k, e, v) in ops {
                let value = v.map_or(Value::Delete, |v| Value::Put(Bytes::from(vec![v])));
                versions.insert((vec![k], e), value);
            }
            let entries: Vec<_> = versions.into_iter().map(|((k, e), v)| (k, Epoch(e), v)).collect();
            let sorted = VecCursor::new(entries.clone(), Direction::Forward).entries;
            let mut filter = CompactionFilter::new(Epoch(safe), bottom);
            let compacted: Vec<_> = sorted
                .into_iter()
                .filter(|(k, e, v)| filter.keep(FullKeyRef::new(k, *e), v.is_delete()))
                .collect();
            for read in safe..22 {
                proptest::prop_assert_eq!(
                    collect(entries.clone(), Epoch(read), Direction::Forward),
                    collect(compacted.clone(), Epoch(read), Direction::Forward)
                );
            }
        }
    }
}
