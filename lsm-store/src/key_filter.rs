//! A blocked bloom filter over 64-bit key hashes, used by the memtable's runs and by SSTs.
//!
//! Each key sets up to [`MAX_PROBES`] bits in one 512-bit block (a cache line) chosen by its
//! hash, so a check touches one cache line, whatever the filter's size. A point read hashes
//! its key once ([`key_hash`]) and checks that hash against every run and SST it passes.

use xxhash_rust::xxh3::xxh3_64;

/// The hash of a key (or key prefix) that [`KeyFilter`]s hold and check.
pub(crate) fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// Most bits a key sets in its block: 9 bits of its hash pick each (63 of its 64 bits).
pub(crate) const MAX_PROBES: u8 = 7;

/// Bytes of one block.
const BLOCK_BYTES: usize = 64;

/// A blocked bloom filter of key hashes.
#[derive(Debug)]
pub(crate) struct KeyFilter {
    blocks: Box<[[u64; 8]]>,
    probes: u8,
}

impl KeyFilter {
    /// A filter of `keys` hashes at about 10 bits per key and [`MAX_PROBES`] probes (~1%
    /// false positives).
    pub(crate) fn new(hashes: impl Iterator<Item = u64>, keys: usize) -> KeyFilter {
        Self::with_bits_per_key(hashes, keys, 10.0, MAX_PROBES)
    }

    /// A filter of `keys` hashes sized for a false positive rate `fpr` (clamped to what a
    /// blocked filter reaches: 0.01% to 50%).
    pub(crate) fn for_false_positive_rate(
        hashes: impl Iterator<Item = u64>,
        keys: usize,
        fpr: f64,
    ) -> KeyFilter {
        let fpr = if fpr.is_nan() {
            0.01
        } else {
            fpr.clamp(1e-4, 0.5)
        };
        let ln2 = std::f64::consts::LN_2;
        let bits_per_key = -fpr.ln() / (ln2 * ln2);
        // Blocking loses a little to uneven blocks: a tenth more bits than a plain filter.
        let probes = (bits_per_key * ln2)
            .round()
            .clamp(1.0, f64::from(MAX_PROBES)) as u8;
        Self::with_bits_per_key(hashes, keys, bits_per_key * 1.1, probes)
    }

    fn with_bits_per_key(
        hashes: impl Iterator<Item = u64>,
        keys: usize,
        bits_per_key: f64,
        probes: u8,
    ) -> KeyFilter {
        let count = ((keys as f64 * bits_per_key) as usize).div_ceil(512).max(1);
        let mut blocks = vec![[0u64; 8]; count].into_boxed_slice();
        for h in hashes {
            let block = &mut blocks[block_of(h, count)];
            for bit in probe_bits(h, probes) {
                block[bit >> 6] |= 1 << (bit & 63);
            }
        }
        KeyFilter { blocks, probes }
    }

    /// Whether a key of hash `hash` may have been added (`false`: it was not).
    pub(crate) fn may_contain(&self, hash: u64) -> bool {
        let block = &self.blocks[block_of(hash, self.blocks.len())];
        probe_bits(hash, self.probes).all(|bit| block[bit >> 6] & (1 << (bit & 63)) != 0)
    }

    /// Heap bytes of the filter.
    pub(crate) fn size(&self) -> usize {
        self.blocks.len() * BLOCK_BYTES
    }

    /// Appends the filter: its probe count, then its blocks (little-endian words).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.probes);
        out.reserve(self.size());
        for word in self.blocks.iter().flatten() {
            out.extend_from_slice(&word.to_le_bytes());
        }
    }

    /// Parses what [`KeyFilter::encode`] wrote; `None` when it is malformed.
    pub(crate) fn decode(bytes: &[u8]) -> Option<KeyFilter> {
        let (&probes, body) = bytes.split_first()?;
        if !(1..=MAX_PROBES).contains(&probes)
            || body.is_empty()
            || !body.len().is_multiple_of(BLOCK_BYTES)
        {
            return None;
        }
        let blocks = body
            .chunks_exact(BLOCK_BYTES)
            .map(|block| {
                let mut words = [0u64; 8];
                for (word, bytes) in words.iter_mut().zip(block.chunks_exact(8)) {
                    *word = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
                }
                words
            })
            .collect();
        Some(KeyFilter { blocks, probes })
    }
}

/// The bits of its block a hash sets: successive 9-bit pieces of it.
fn probe_bits(hash: u64, probes: u8) -> impl Iterator<Item = usize> {
    (0..u32::from(probes)).map(move |i| ((hash >> (i * 9)) & 511) as usize)
}

/// The block of a key's hash among `blocks`: from bits mixed apart from those its probes use.
fn block_of(hash: u64, blocks: usize) -> usize {
    let mixed = hash.rotate_left(32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((u128::from(mixed) * blocks as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys of one table and vnode differing only in their last bytes, as state tables write
    /// them.
    fn key(i: u32) -> Vec<u8> {
        let mut k = b"\0\0\0\x07\0\x2agroup-key-".to_vec();
        k.extend_from_slice(&i.to_be_bytes());
        k
    }

    /// Absent keys of 100000 that pass a filter of `keys` keys, checking that every added
    /// key passes.
    fn false_positives(filter: &KeyFilter, keys: u32) -> usize {
        assert!((0..keys).all(|i| filter.may_contain(key_hash(&key(i)))));
        (keys..keys + 100_000)
            .filter(|i| filter.may_contain(key_hash(&key(*i))))
            .count()
    }

    #[test]
    fn filters_pass_their_keys_and_few_others() {
        for keys in [1, 40, 10_000] {
            let filter = KeyFilter::new((0..keys).map(|i| key_hash(&key(i))), keys as usize);
            let passed = false_positives(&filter, keys);
            assert!(
                passed < 2_000,
                "{passed} of 100000 pass {keys} keys' filter"
            );
        }
    }

    #[test]
    fn the_false_positive_rate_follows_the_target() {
        let keys = 50_000;
        let rate = |fpr: f64| {
            let hashes = (0..keys).map(|i| key_hash(&key(i)));
            let filter = KeyFilter::for_false_positive_rate(hashes, keys as usize, fpr);
            false_positives(&filter, keys) as f64 / 100_000.0
        };
        let (loose, default, tight) = (rate(0.1), rate(0.01), rate(0.001));
        assert!(loose < 0.15, "{loose} at a target of 10%");
        assert!(default < 0.015, "{default} at a target of 1%");
        assert!(tight < 0.003, "{tight} at a target of 0.1%");
        assert!(tight < default && default < loose);
        // Targets out of reach are clamped, not a panic or an empty filter.
        for fpr in [0.0, -1.0, 1.0, f64::NAN] {
            let filter = KeyFilter::for_false_positive_rate(0..10u64, 10, fpr);
            assert!((0..10).all(|h| filter.may_contain(h)));
        }
    }

    #[test]
    fn encoding_round_trips_and_rejects_malformed_bytes() {
        let filter = KeyFilter::new((0..1000).map(|i| key_hash(&key(i))), 1000);
        let mut bytes = Vec::new();
        filter.encode(&mut bytes);
        assert_eq!(bytes.len(), 1 + filter.size());
        let decoded = KeyFilter::decode(&bytes).expect("round trip");
        assert_eq!(decoded.blocks, filter.blocks);
        assert_eq!(decoded.probes, filter.probes);
        assert!(KeyFilter::decode(&bytes[..bytes.len() - 1]).is_none());
        assert!(KeyFilter::decode(&bytes[..1]).is_none());
        bytes[0] = 0;
        assert!(KeyFilter::decode(&bytes).is_none());
        bytes[0] = MAX_PROBES + 1;
        assert!(KeyFilter::decode(&bytes).is_none());
    }
}
