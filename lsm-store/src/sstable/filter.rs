//! The per-SST filter over key prefixes (and optionally whole keys).
//!
//! Each table has a prefix length: the bytes of its keys that hold the distribution key (the
//! join or group key). Point and prefix reads check the filter before touching an SST's data,
//! so an SST without the prefix costs no I/O. The filter records which prefix length it used
//! for each table; a read whose table has another length (or none) cannot use it.
//!
//! Format version 3 SSTs hold a blocked filter ([`KeyFilter`]) of the keys' [`key_hash`]es,
//! the hash a point read computes once for every run and SST it passes; versions 1 and 2
//! hold a `bloomfilter` crate filter of seeded hashes, still read.

use std::collections::BTreeMap;

use bloomfilter::Bloom;
use epoch_mvcc::table_id_of;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::codec::{Reader, put_bytes, put_varint, seal_with_checksum, verify_checksum};
use crate::key_filter::{KeyFilter, key_hash};
use crate::{Error, Result};

/// Seeds of the hashes of format version 1 and 2 filters.
const LEGACY_PREFIX_SEED: u64 = 0x5052_4546;
const LEGACY_WHOLE_KEY_SEED: u64 = 0x4b45_5953;
/// The first format version whose filters are [`KeyFilter`]s.
const BLOCKED_FILTER_VERSION: u32 = 3;
const FLAG_WHOLE_KEY: u8 = 1;

/// Hashes per chunk of a [`Hashes`] (64 KiB).
const HASH_CHUNK: usize = 8 << 10;

/// The hashes of an SST's keys, held until the filter is sized at the end, in chunks of a
/// fixed size: an SST holds millions of keys, and a growing `Vec` would hold up to twice
/// their 8 bytes each (and three times while it moves to a larger allocation).
#[derive(Debug, Default)]
struct Hashes {
    full: Vec<Box<[u64]>>,
    last: Vec<u64>,
}

impl Hashes {
    fn push(&mut self, h: u64) {
        if self.last.len() == HASH_CHUNK {
            self.full
                .push(std::mem::take(&mut self.last).into_boxed_slice());
        }
        if self.last.capacity() == 0 {
            self.last.reserve_exact(HASH_CHUNK);
        }
        self.last.push(h);
    }

    fn len(&self) -> usize {
        self.full.len() * HASH_CHUNK + self.last.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn iter(&self) -> impl Iterator<Item = &u64> {
        self.full.iter().flat_map(|c| c.iter()).chain(&self.last)
    }
}

/// Collects hashes while an SST is built.
#[derive(Debug)]
pub(crate) struct FilterBuilder {
    prefix_lens: BTreeMap<u32, usize>,
    whole_key: bool,
    false_positive_rate: f64,
    hashes: Hashes,
    last_prefix_hash: Option<u64>,
    last_key_hash: Option<u64>,
    /// The table of the last key added, and its prefix length.
    last_table: Option<(u32, Option<usize>)>,
    used_prefix_lens: BTreeMap<u32, usize>,
}

impl FilterBuilder {
    pub(crate) fn new(prefix_lens: BTreeMap<u32, usize>, whole_key: bool, fpr: f64) -> Self {
        FilterBuilder {
            prefix_lens,
            whole_key,
            false_positive_rate: fpr,
            hashes: Hashes::default(),
            last_prefix_hash: None,
            last_key_hash: None,
            last_table: None,
            used_prefix_lens: BTreeMap::new(),
        }
    }

    /// Records a user key (versions of one key arrive together; duplicates are skipped).
    pub(crate) fn add(&mut self, user_key: &[u8]) {
        if let Some(len) = self.prefix_len(user_key)
            && user_key.len() >= len
        {
            let h = key_hash(&user_key[..len]);
            if self.last_prefix_hash != Some(h) {
                self.hashes.push(h);
                self.last_prefix_hash = Some(h);
            }
        }
        if self.whole_key {
            let h = key_hash(user_key);
            if self.last_key_hash != Some(h) {
                self.hashes.push(h);
                self.last_key_hash = Some(h);
            }
        }
    }

    /// The prefix length of `user_key`'s table, recorded as used; keys arrive in order, so
    /// the table's is looked up when the table changes.
    fn prefix_len(&mut self, user_key: &[u8]) -> Option<usize> {
        let table = table_id_of(user_key)?;
        match self.last_table {
            Some((last, len)) if last == table => len,
            _ => {
                let len = self.prefix_lens.get(&table).copied();
                if let Some(len) = len {
                    self.used_prefix_lens.insert(table, len);
                }
                self.last_table = Some((table, len));
                len
            }
        }
    }

    /// Encodes the filter block.
    pub(crate) fn finish(self) -> Vec<u8> {
        let mut out = Vec::new();
        out.push(if self.whole_key { FLAG_WHOLE_KEY } else { 0 });
        put_varint(&mut out, self.used_prefix_lens.len() as u64);
        for (table, len) in &self.used_prefix_lens {
            put_varint(&mut out, u64::from(*table));
            put_varint(&mut out, *len as u64);
        }
        let mut filter = Vec::new();
        if !self.hashes.is_empty() {
            KeyFilter::for_false_positive_rate(
                self.hashes.iter().copied(),
                self.hashes.len(),
                self.false_positive_rate,
            )
            .encode(&mut filter);
        }
        put_bytes(&mut out, &filter);
        seal_with_checksum(&mut out);
        out
    }
}

/// The bits of a decoded filter.
#[derive(Debug)]
enum Bits {
    /// Format version 3 on.
    Blocked(KeyFilter),
    /// Format versions 1 and 2.
    Legacy(Bloom<u64>),
}

impl Bits {
    /// Whether a key or prefix of [`key_hash`] `hash` may have been added.
    fn check(&self, bytes: &[u8], hash: u64, legacy_seed: u64) -> bool {
        match self {
            Bits::Blocked(filter) => filter.may_contain(hash),
            Bits::Legacy(bloom) => bloom.check(&xxh3_64_with_seed(bytes, legacy_seed)),
        }
    }
}

/// A decoded filter.
#[derive(Debug)]
pub(crate) struct SstFilter {
    /// `None` when the SST recorded no hashes.
    bits: Option<Bits>,
    whole_key: bool,
    prefix_lens: BTreeMap<u32, usize>,
}

impl SstFilter {
    /// Parses the filter block of an SST of format version `version`.
    pub(crate) fn decode(block: &[u8], object: &str, version: u32) -> Result<SstFilter> {
        let body = verify_checksum(block, object, "filter block")?;
        let mut r = Reader::new(body, object, "filter block");
        let flags = r.bytes(1)?[0];
        let mut prefix_lens = BTreeMap::new();
        for _ in 0..r.len()? {
            let table = u32::try_from(r.varint()?)
                .map_err(|_| Error::corruption(object, "filter block: table id overflow"))?;
            prefix_lens.insert(table, r.len()?);
        }
        let bytes = r.len_prefixed()?;
        if !r.is_empty() {
            return Err(Error::corruption(object, "filter block has trailing bytes"));
        }
        let bits = if bytes.is_empty() {
            None
        } else if version >= BLOCKED_FILTER_VERSION {
            let filter = KeyFilter::decode(bytes)
                .ok_or_else(|| Error::corruption(object, "filter block: malformed filter"))?;
            Some(Bits::Blocked(filter))
        } else {
            let bloom = Bloom::from_bytes(bytes.to_vec()).map_err(|e| {
                Error::corruption(object, format!("filter block: bad bloom filter: {e}"))
            })?;
            Some(Bits::Legacy(bloom))
        };
        Ok(SstFilter {
            bits,
            whole_key: flags & FLAG_WHOLE_KEY != 0,
            prefix_lens,
        })
    }

    /// Whether the SST may hold `user_key`, of [`key_hash`] `hash`. Uses the whole-key
    /// filter, else the prefix filter.
    pub(crate) fn may_contain_key(&self, user_key: &[u8], hash: u64) -> bool {
        let Some(bits) = &self.bits else {
            return !self.whole_key && self.prefix_lens.is_empty();
        };
        if self.whole_key {
            return bits.check(user_key, hash, LEGACY_WHOLE_KEY_SEED);
        }
        match table_id_of(user_key).and_then(|t| self.prefix_lens.get(&t)) {
            Some(&len) if user_key.len() >= len => {
                let prefix = &user_key[..len];
                bits.check(prefix, key_hash(prefix), LEGACY_PREFIX_SEED)
            }
            _ => true,
        }
    }

    /// Whether the SST may hold keys starting with `prefix`, when `prefix` is exactly the
    /// prefix length the filter used for its table; `true` when the filter cannot tell.
    pub(crate) fn may_contain_prefix(&self, prefix: &[u8]) -> bool {
        let usable = table_id_of(prefix)
            .and_then(|t| self.prefix_lens.get(&t))
            .is_some_and(|&len| len == prefix.len());
        match (&self.bits, usable) {
            (Some(bits), true) => bits.check(prefix, key_hash(prefix), LEGACY_PREFIX_SEED),
            // The table's keys were all recorded and none had this prefix.
            (None, true) => false,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sstable::format::FORMAT_VERSION;
    use bytes::Bytes;
    use epoch_mvcc::table_key;

    fn decode(block: &[u8]) -> SstFilter {
        SstFilter::decode(block, "o", FORMAT_VERSION).unwrap()
    }

    fn may_contain_key(f: &SstFilter, key: &[u8]) -> bool {
        f.may_contain_key(key, key_hash(key))
    }

    #[test]
    fn prefix_and_whole_key_checks() {
        let mut b = FilterBuilder::new(BTreeMap::from([(1, 10)]), false, 0.01);
        for i in 0..1000u32 {
            b.add(&table_key(1, 0, &[&i.to_be_bytes()[..], b"rest"].concat()));
        }
        let f = decode(&b.finish());
        assert!(f.may_contain_prefix(&table_key(1, 0, &5u32.to_be_bytes())));
        let other = table_key(1, 0, &[&5u32.to_be_bytes()[..], b"other"].concat());
        assert!(may_contain_key(&f, &other));
        let misses = (1000..3000u32)
            .filter(|i| f.may_contain_prefix(&table_key(1, 0, &i.to_be_bytes())))
            .count();
        assert!(misses < 100, "false positive rate too high: {misses}/2000");
        // Another table, or a prefix of another length: the filter cannot tell.
        assert!(f.may_contain_prefix(&table_key(2, 0, &1u32.to_be_bytes())));
        assert!(f.may_contain_prefix(&table_key(1, 0, &[1])));

        let mut w = FilterBuilder::new(BTreeMap::new(), true, 0.01);
        w.add(b"exact");
        let f = decode(&w.finish());
        assert!(may_contain_key(&f, b"exact"));
        assert!(!may_contain_key(&f, b"absent-key-1") || !may_contain_key(&f, b"absent-key-2"));
    }

    #[test]
    fn every_key_of_many_chunks_is_found() {
        let keys = 3 * HASH_CHUNK + 17;
        let mut b = FilterBuilder::new(BTreeMap::new(), true, 0.01);
        for i in 0..keys as u64 {
            b.add(&i.to_be_bytes());
        }
        assert_eq!(b.hashes.len(), keys);
        let f = decode(&b.finish());
        assert!((0..keys as u64).all(|i| may_contain_key(&f, &i.to_be_bytes())));
        let misses = (keys as u64..2 * keys as u64)
            .filter(|i| may_contain_key(&f, &i.to_be_bytes()))
            .count();
        assert!(
            misses < keys / 50,
            "false positive rate too high: {misses}/{keys}"
        );
    }

    /// A filter block as format versions 1 and 2 wrote it: a `bloomfilter` crate filter of
    /// seeded hashes of the prefixes of table 1 (10 bytes long) and of the whole keys.
    fn legacy_block(keys: &[Bytes]) -> Vec<u8> {
        let mut bloom = Bloom::new_for_fp_rate_with_seed(
            2 * keys.len(),
            0.01,
            b"lsm-store prefix bloom filter v1",
        )
        .unwrap();
        for key in keys {
            bloom.set(&xxh3_64_with_seed(&key[..10], LEGACY_PREFIX_SEED));
            bloom.set(&xxh3_64_with_seed(key, LEGACY_WHOLE_KEY_SEED));
        }
        let mut out = vec![FLAG_WHOLE_KEY];
        put_varint(&mut out, 1);
        put_varint(&mut out, 1);
        put_varint(&mut out, 10);
        put_bytes(&mut out, &bloom.to_bytes());
        seal_with_checksum(&mut out);
        out
    }

    #[test]
    fn filters_of_older_format_versions_are_still_read() {
        let key = |i: u32| table_key(1, 0, &[&i.to_be_bytes()[..], b"rest"].concat());
        let keys: Vec<_> = (0..1000).map(key).collect();
        let block = legacy_block(&keys);
        for version in [1, 2] {
            let f = SstFilter::decode(&block, "o", version).unwrap();
            assert!(keys.iter().all(|k| may_contain_key(&f, k)));
            assert!((0..1000u32).all(|i| f.may_contain_prefix(&key(i)[..10])));
            let misses = (1000..3000)
                .filter(|i| may_contain_key(&f, &key(*i)))
                .count();
            assert!(misses < 100, "false positive rate too high: {misses}/2000");
        }
    }

    #[test]
    fn corrupt_filter_is_an_error() {
        let mut b = FilterBuilder::new(BTreeMap::new(), true, 0.01);
        b.add(b"k");
        let mut block = b.finish();
        block[3] ^= 1;
        assert!(matches!(
            SstFilter::decode(&block, "o", FORMAT_VERSION),
            Err(Error::Corruption { .. })
        ));
    }
}
