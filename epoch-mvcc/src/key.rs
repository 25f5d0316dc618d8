//! The full key codec: a user key followed by its version's epoch, newest version first.

use std::cmp::Ordering;

use bytes::{BufMut, Bytes};

use crate::Epoch;

/// Bytes the epoch suffix takes in an encoded full key.
pub const EPOCH_LEN: usize = 8;
/// Bytes of the `table_id | vnode` header of a table key.
pub const TABLE_KEY_HEADER_LEN: usize = 6;
/// Virtual nodes per table: the unit of data distribution among parallel actors.
pub const VNODE_COUNT: usize = 256;

/// A borrowed full key: one version of a user key.
///
/// Full keys order by user key ascending, then by epoch descending, so that for one user key
/// the newest version comes first. The encoded form is `user_key ++ inverted big-endian epoch`;
/// compare encoded keys with [`cmp_encoded_full_keys`], never bytewise (a user key may be a
/// prefix of another).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FullKeyRef<'a> {
    /// The key as the application wrote it.
    pub user_key: &'a [u8],
    /// The epoch this version was written at.
    pub epoch: Epoch,
}

impl<'a> FullKeyRef<'a> {
    /// A full key from its parts.
    pub fn new(user_key: &'a [u8], epoch: Epoch) -> Self {
        FullKeyRef { user_key, epoch }
    }

    /// Splits an encoded full key; `None` if it is shorter than the epoch suffix.
    pub fn decode(encoded: &'a [u8]) -> Option<Self> {
        let split = encoded.len().checked_sub(EPOCH_LEN)?;
        let (user_key, epoch) = encoded.split_at(split);
        let epoch = Epoch::from_inverted_be_bytes(epoch.try_into().ok()?);
        Some(FullKeyRef { user_key, epoch })
    }

    /// Appends the encoded form to `buf`.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        buf.reserve(self.user_key.len() + EPOCH_LEN);
        buf.put_slice(self.user_key);
        buf.put_slice(&self.epoch.to_inverted_be_bytes());
    }

    /// The encoded form.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.user_key.len() + EPOCH_LEN);
        self.encode_into(&mut buf);
        buf
    }
}

impl Ord for FullKeyRef<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.user_key
            .cmp(other.user_key)
            .then_with(|| other.epoch.cmp(&self.epoch))
    }
}

impl PartialOrd for FullKeyRef<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Compares two encoded full keys in full-key order (user key ascending, epoch descending).
///
/// Keys too short to hold an epoch compare as plain bytes; they never occur in valid data.
pub fn cmp_encoded_full_keys(a: &[u8], b: &[u8]) -> Ordering {
    match (FullKeyRef::decode(a), FullKeyRef::decode(b)) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => a.cmp(b),
    }
}

/// Builds a table key: `table_id (u32 BE) | vnode (u16 BE) | encoded primary key`.
pub fn table_key(table_id: u32, vnode: u16, encoded_pk: &[u8]) -> Bytes {
    let mut buf = Vec::with_capacity(TABLE_KEY_HEADER_LEN + encoded_pk.len());
    buf.put_u32(table_id);
    buf.put_u16(vnode);
    buf.put_slice(encoded_pk);
    buf.into()
}

/// The smallest key of a table: the start of its key range.
pub fn table_prefix(table_id: u32) -> [u8; 4] {
    table_id.to_be_bytes()
}

/// The table id of a table key, if it is long enough to have one.
pub fn table_id_of(user_key: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(user_key.get(..4)?.try_into().ok()?))
}

/// The vnode of a table key, if it is long enough to have one.
pub fn vnode_of(user_key: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(user_key.get(4..6)?.try_into().ok()?))
}

/// The vnode a distribution key hashes to (xxh3 of its encoded form, modulo [`VNODE_COUNT`]).
pub fn vnode_for(encoded_dist_key: &[u8]) -> u16 {
    (xxhash_rust::xxh3::xxh3_64(encoded_dist_key) % VNODE_COUNT as u64) as u16
}

/// The smallest key strictly greater than every key that starts with `prefix`, or `None`
/// when no such key exists (the prefix is all `0xff`).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_version_sorts_first() {
        let new = FullKeyRef::new(b"k", Epoch(9)).encode();
        let old = FullKeyRef::new(b"k", Epoch(3)).encode();
        assert_eq!(cmp_encoded_full_keys(&new, &old), Ordering::Less);
    }

    #[test]
    fn prefix_user_keys_order_by_user_key() {
        // Bytewise, "a"+epoch would sort after "ab"+epoch; full-key order must not.
        let a = FullKeyRef::new(b"a", Epoch(1)).encode();
        let ab = FullKeyRef::new(b"ab", Epoch(1)).encode();
        assert_eq!(cmp_encoded_full_keys(&a, &ab), Ordering::Less);
    }

    #[test]
    fn decode_roundtrip_and_short_input() {
        let enc = FullKeyRef::new(b"user", Epoch(42)).encode();
        let dec = FullKeyRef::decode(&enc).unwrap();
        assert_eq!(dec.user_key, b"user");
        assert_eq!(dec.epoch, Epoch(42));
        assert!(FullKeyRef::decode(b"short").is_none());
    }

    #[test]
    fn table_key_layout() {
        let k = table_key(7, 300, b"pk");
        assert_eq!(table_id_of(&k), Some(7));
        assert_eq!(vnode_of(&k), Some(300));
        assert_eq!(&k[TABLE_KEY_HEADER_LEN..], b"pk");
        assert!(usize::from(vnode_for(b"anything")) < VNODE_COUNT);
    }

    #[test]
    fn successor() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xff, 0xff]), None);
    }
}
