//! Epochs: the logical timestamps that version every write.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch of the epoch base, 2021-01-01T00:00:00Z.
///
/// Counting from a recent base leaves 48 bits of physical time (about 8900 years).
pub const EPOCH_BASE_UNIX_MS: u64 = 1_609_459_200_000;

/// How many low bits of an [`Epoch`] hold the sequence within one millisecond.
pub const EPOCH_SEQ_BITS: u32 = 16;

/// A logical timestamp: physical milliseconds since [`EPOCH_BASE_UNIX_MS`] shifted left by
/// [`EPOCH_SEQ_BITS`], plus a sequence number.
///
/// Epochs totally order every write in the system. Readers see a consistent snapshot by reading
/// "as of" an epoch: for each key, the newest version whose epoch is at most the read epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The smallest epoch; nothing is ever written at it, so it reads as "empty".
    pub const MIN: Epoch = Epoch(0);
    /// The largest epoch; reading at it sees every version.
    pub const MAX: Epoch = Epoch(u64::MAX);

    /// The epoch that starts at the given physical time (milliseconds since the epoch base).
    pub fn from_physical_ms(physical_ms: u64) -> Epoch {
        Epoch(physical_ms << EPOCH_SEQ_BITS)
    }

    /// The epoch for the current wall-clock time, sequence zero.
    pub fn now() -> Epoch {
        Epoch::from_physical_ms(physical_now_ms())
    }

    /// The physical time part, in milliseconds since the epoch base.
    pub fn physical_ms(self) -> u64 {
        self.0 >> EPOCH_SEQ_BITS
    }

    /// The physical time part, in milliseconds since the Unix epoch.
    pub fn unix_ms(self) -> u64 {
        self.physical_ms() + EPOCH_BASE_UNIX_MS
    }

    /// The next epoch after `self` by the wall clock.
    ///
    /// Always greater than `self`, even if the clock stepped back: then the sequence part is
    /// incremented instead.
    pub fn next(self) -> Epoch {
        self.next_at(physical_now_ms())
    }

    /// [`Epoch::next`] with an explicit clock reading, so tests can replay clock steps.
    pub fn next_at(self, physical_now_ms: u64) -> Epoch {
        let by_clock = Epoch::from_physical_ms(physical_now_ms);
        if by_clock > self {
            by_clock
        } else {
            Epoch(self.0.checked_add(1).expect("epoch space exhausted"))
        }
    }

    /// The epoch encoded so that newer epochs sort first bytewise (inverted, big-endian).
    pub fn to_inverted_be_bytes(self) -> [u8; 8] {
        (!self.0).to_be_bytes()
    }

    /// Decodes [`Epoch::to_inverted_be_bytes`].
    pub fn from_inverted_be_bytes(bytes: [u8; 8]) -> Epoch {
        Epoch(!u64::from_be_bytes(bytes))
    }
}

/// Milliseconds since [`EPOCH_BASE_UNIX_MS`] by the wall clock (zero if the clock is before it).
pub fn physical_now_ms() -> u64 {
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    unix_ms.saturating_sub(EPOCH_BASE_UNIX_MS)
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Epoch({}:{})",
            self.physical_ms(),
            self.0 & ((1 << EPOCH_SEQ_BITS) - 1)
        )
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_monotonic_when_clock_steps_back() {
        let e = Epoch::from_physical_ms(1_000);
        let stepped_back = e.next_at(500);
        assert_eq!(stepped_back, Epoch(e.0 + 1));
        let same_ms = stepped_back.next_at(1_000);
        assert_eq!(same_ms, Epoch(e.0 + 2));
        let forward = same_ms.next_at(1_001);
        assert_eq!(forward, Epoch::from_physical_ms(1_001));
    }

    #[test]
    fn unix_time_adds_the_base() {
        assert_eq!(Epoch::from_physical_ms(5).unix_ms(), EPOCH_BASE_UNIX_MS + 5);
    }

    #[test]
    fn now_is_after_base() {
        let e = Epoch::now();
        assert!(e.physical_ms() > 0);
        assert!(e.next() > e);
    }

    #[test]
    fn inverted_bytes_sort_newest_first() {
        let old = Epoch(5).to_inverted_be_bytes();
        let new = Epoch(6).to_inverted_be_bytes();
        assert!(new < old);
        assert_eq!(Epoch::from_inverted_be_bytes(old), Epoch(5));
    }
}
