//! A version of the LSM tree: which SSTs are live, at which level, and the committed epoch.
//!
//! Versions are immutable values. Flushes and compactions derive the next version from the
//! current one; the manifest store persists each as a numbered object.

use std::collections::HashSet;

use bytes::Bytes;
use epoch_mvcc::{Epoch, FullKeyRef};
use serde::{Deserialize, Serialize};

/// Number of levels below L0 (L1..=L6).
pub const MAX_LEVEL: usize = 6;

/// Object path of an SST.
pub fn sst_path(id: u64) -> String {
    format!("sst/{id:016x}.sst")
}

/// Parses [`sst_path`] back to an id.
pub fn sst_id_from_path(path: &str) -> Option<u64> {
    let name = path.strip_prefix("sst/")?.strip_suffix(".sst")?;
    u64::from_str_radix(name, 16).ok()
}

/// What the manifest records of one SST.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SstInfo {
    /// Unique id; the object is at [`sst_path`].
    pub id: u64,
    /// Object size in bytes.
    pub file_size: u64,
    /// Where the tail (filter, index, meta, footer) starts.
    pub tail_offset: u64,
    /// Smallest encoded full key.
    #[serde(with = "hex_bytes")]
    pub smallest_key: Bytes,
    /// Largest encoded full key.
    #[serde(with = "hex_bytes")]
    pub largest_key: Bytes,
    /// Oldest epoch of any version.
    pub min_epoch: u64,
    /// Newest epoch of any version.
    pub max_epoch: u64,
    /// Versions stored.
    pub key_count: u64,
    /// Tombstones among them.
    pub tombstone_count: u64,
    /// Tables with keys in this SST.
    pub table_ids: Vec<u32>,
}

impl SstInfo {
    /// Smallest user key.
    pub fn smallest_user_key(&self) -> &[u8] {
        FullKeyRef::decode(&self.smallest_key).map_or(&[], |k| k.user_key)
    }

    /// Largest user key.
    pub fn largest_user_key(&self) -> &[u8] {
        FullKeyRef::decode(&self.largest_key).map_or(&[], |k| k.user_key)
    }

    /// Whether the user-key spans of two SSTs intersect.
    pub fn overlaps(&self, other: &SstInfo) -> bool {
        self.smallest_user_key() <= other.largest_user_key()
            && other.smallest_user_key() <= self.largest_user_key()
    }

    /// Whether the SST may hold `user_key`.
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.smallest_user_key() <= user_key && user_key <= self.largest_user_key()
    }
}

/// One L0 sub-level: the SSTs of one flush (or an L0 compaction), non-overlapping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubLevel {
    /// Unique, increasing: a higher id holds newer data.
    pub id: u64,
    /// SSTs in key order.
    pub ssts: Vec<SstInfo>,
}

/// The state of the tree at one manifest version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The manifest version number.
    pub id: u64,
    /// Every epoch up to this one is durable.
    pub committed_epoch: u64,
    /// Compaction may have dropped versions that only reads below this epoch would see.
    pub safe_epoch: u64,
    /// L0 sub-levels, newest first.
    pub l0: Vec<SubLevel>,
    /// L1..=L6, each a list of non-overlapping SSTs in key order.
    pub levels: Vec<Vec<SstInfo>>,
    /// Id for the next L0 sub-level.
    pub next_sub_level_id: u64,
}

impl Version {
    /// The empty tree before anything was written.
    pub fn empty() -> Version {
        Version {
            id: 0,
            committed_epoch: 0,
            safe_epoch: 0,
            l0: Vec::new(),
            levels: vec![Vec::new(); MAX_LEVEL],
            next_sub_level_id: 1,
        }
    }

    /// The committed epoch.
    pub fn committed_epoch(&self) -> Epoch {
        Epoch(self.committed_epoch)
    }

    /// SSTs of level `level` (1..=6).
    pub fn level(&self, level: usize) -> &[SstInfo] {
        &self.levels[level - 1]
    }

    /// Every live SST.
    pub fn ssts(&self) -> impl Iterator<Item = &SstInfo> {
        self.l0
            .iter()
            .flat_map(|s| s.ssts.iter())
            .chain(self.levels.iter().flatten())
    }

    /// Ids of every live SST.
    pub fn sst_ids(&self) -> HashSet<u64> {
        self.ssts().map(|s| s.id).collect()
    }

    /// Total bytes of a level (0 for L0).
    pub fn level_bytes(&self, level: usize) -> u64 {
        if level == 0 {
            self.l0
                .iter()
                .flat_map(|s| &s.ssts)
                .map(|s| s.file_size)
                .sum()
        } else {
            self.level(level).iter().map(|s| s.file_size).sum()
        }
    }

    /// The next version with a commit's SSTs as new, newest L0 sub-levels: `sub_levels`
    /// lists them oldest first (an epoch's spills, then the flush of its sealed writes).
    pub fn with_flush(&self, sub_levels: Vec<Vec<SstInfo>>, committed_epoch: Epoch) -> Version {
        let mut next = self.clone();
        next.id += 1;
        next.committed_epoch = committed_epoch.0.max(self.committed_epoch);
        for ssts in sub_levels.into_iter().filter(|s| !s.is_empty()) {
            next.l0.insert(
                0,
                SubLevel {
                    id: next.next_sub_level_id,
                    ssts,
                },
            );
            next.next_sub_level_id += 1;
        }
        next
    }

    /// Checks the level invariants; a version that fails them is corrupt.
    pub fn validate(&self) -> Result<(), String> {
        if self.levels.len() != MAX_LEVEL {
            return Err(format!(
                "{} levels instead of {MAX_LEVEL}",
                self.levels.len()
            ));
        }
        let mut seen = HashSet::new();
        if let Some(dup) = self.ssts().find(|s| !seen.insert(s.id)) {
            return Err(format!("SST {:016x} listed twice", dup.id));
        }
        let sorted = |ssts: &[SstInfo]| {
            ssts.windows(2)
                .all(|w| w[0].largest_user_key() < w[1].smallest_user_key())
        };
        for sub in &self.l0 {
            if !sorted(&sub.ssts) {
                return Err(format!("L0 sub-level {} has overlapping SSTs", sub.id));
            }
        }
        if !self.l0.windows(2).all(|w| w[0].id > w[1].id) {
            return Err("L0 sub-levels out of order".into());
        }
        for (i, level) in self.levels.iter().enumerate() {
            if !sorted(level) {
                return Err(format!("L{} has overlapping SSTs", i + 1));
            }
        }
        Ok(())
    }
}

mod hex_bytes {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(b.len() * 2);
        for byte in b.iter() {
            out.push_str(&format!("{byte:02x}"));
        }
        s.serialize_str(&out)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() % 2 != 0 {
            return Err(D::Error::custom("odd hex length"));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(D::Error::custom))
            .collect::<Result<Vec<u8>, _>>()
            .map(Bytes::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sst(id: u64, lo: &[u8], hi: &[u8]) -> SstInfo {
        SstInfo {
            id,
            file_size: 100,
            tail_offset: 50,
            smallest_key: Bytes::from(FullKeyRef::new(lo, Epoch(9)).encode()),
            largest_key: Bytes::from(FullKeyRef::new(hi, Epoch(1)).encode()),
            min_epoch: 1,
            max_epoch: 9,
            key_count: 2,
            tombstone_count: 0,
            table_ids: vec![],
        }
    }

    #[test]
    fn flush_adds_newest_sub_level_and_serde_roundtrips() {
        let v = Version::empty()
            .with_flush(vec![vec![sst(1, b"a", b"c"), sst(2, b"d", b"f")]], Epoch(5));
        let v = v.with_flush(
            vec![vec![sst(3, b"b", b"e")], vec![], vec![sst(4, b"a", b"b")]],
            Epoch(6),
        );
        assert_eq!(v.id, 2);
        assert_eq!(v.l0[0].ssts[0].id, 4);
        assert_eq!(v.l0[1].ssts[0].id, 3);
        assert_eq!(v.committed_epoch(), Epoch(6));
        v.validate().unwrap();
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<Version>(&json).unwrap(), v);
        assert!(sst(1, b"a", b"c").overlaps(&sst(3, b"b", b"e")));
        assert!(!sst(1, b"a", b"c").overlaps(&sst(2, b"d", b"f")));
        assert_eq!(sst_id_from_path(&sst_path(0xabc)), Some(0xabc));
    }

    #[test]
    fn validate_rejects_overlap() {
        let mut v = Version::empty();
        v.levels[0] = vec![sst(1, b"a", b"d"), sst(2, b"c", b"f")];
        assert!(v.validate().is_err());
    }
}
