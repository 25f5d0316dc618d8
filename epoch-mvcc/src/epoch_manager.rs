//! Which epochs are being written, sealed, committed, and which snapshots readers hold.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::{Epoch, StoreError, StoreResult};

/// Tracks the life of epochs: written (in flight) → sealed (no more writes) → committed
/// (durable and visible), and the snapshots that readers pin.
///
/// The safe epoch is the oldest epoch any reader may still read: the oldest pinned snapshot,
/// or the committed epoch when nothing is pinned. Compaction may drop versions that no read at
/// or above the safe epoch can see.
#[derive(Debug)]
pub struct EpochManager {
    state: Mutex<EpochState>,
}

#[derive(Debug)]
struct EpochState {
    max_written: Epoch,
    sealed: Epoch,
    committed: Epoch,
    pinned: BTreeMap<Epoch, usize>,
}

impl EpochManager {
    /// A manager whose committed (and sealed) epoch is `committed`, as recovered from storage.
    pub fn new(committed: Epoch) -> Arc<Self> {
        Arc::new(EpochManager {
            state: Mutex::new(EpochState {
                max_written: committed,
                sealed: committed,
                committed,
                pinned: BTreeMap::new(),
            }),
        })
    }

    /// Records a write at `epoch`; fails if that epoch is already sealed.
    pub fn on_write(&self, epoch: Epoch) -> StoreResult<()> {
        let mut s = self.state.lock();
        if epoch <= s.sealed {
            return Err(StoreError::EpochSealed {
                epoch,
                sealed: s.sealed,
            });
        }
        s.max_written = s.max_written.max(epoch);
        Ok(())
    }

    /// Seals every epoch up to `epoch`; fails if `epoch` is not newer than the sealed epoch.
    pub fn seal(&self, epoch: Epoch) -> StoreResult<()> {
        let mut s = self.state.lock();
        if epoch <= s.sealed {
            return Err(StoreError::EpochSealed {
                epoch,
                sealed: s.sealed,
            });
        }
        s.sealed = epoch;
        s.max_written = s.max_written.max(epoch);
        Ok(())
    }

    /// Checks that `epoch` may be synced: sealed, and not older than the committed epoch.
    pub fn check_syncable(&self, epoch: Epoch) -> StoreResult<()> {
        let s = self.state.lock();
        if epoch > s.sealed {
            return Err(StoreError::EpochNotSealed {
                epoch,
                sealed: s.sealed,
            });
        }
        Ok(())
    }

    /// Marks every epoch up to `epoch` committed. Committing an older epoch is a no-op.
    pub fn commit(&self, epoch: Epoch) {
        let mut s = self.state.lock();
        debug_assert!(epoch <= s.sealed, "commit of unsealed epoch {epoch:?}");
        s.committed = s.committed.max(epoch);
    }

    /// The newest epoch any write has used.
    pub fn max_written(&self) -> Epoch {
        self.state.lock().max_written
    }

    /// The newest sealed epoch.
    pub fn sealed(&self) -> Epoch {
        self.state.lock().sealed
    }

    /// The newest committed epoch.
    pub fn committed(&self) -> Epoch {
        self.state.lock().committed
    }

    /// The oldest epoch a reader may still read.
    pub fn safe_epoch(&self) -> Epoch {
        let s = self.state.lock();
        s.pinned
            .keys()
            .next()
            .copied()
            .unwrap_or(s.committed)
            .min(s.committed)
    }

    /// Pins the committed epoch: until the returned guard drops, its versions stay readable.
    pub fn pin(self: &Arc<Self>) -> PinnedSnapshot {
        let mut s = self.state.lock();
        let epoch = s.committed;
        *s.pinned.entry(epoch).or_default() += 1;
        PinnedSnapshot {
            epoch,
            manager: Arc::clone(self),
        }
    }

    fn unpin(&self, epoch: Epoch) {
        let mut s = self.state.lock();
        if let Some(count) = s.pinned.get_mut(&epoch) {
            *count -= 1;
            if *count == 0 {
                s.pinned.remove(&epoch);
            }
        }
    }
}

/// A pinned snapshot: reads at [`PinnedSnapshot::epoch`] stay correct until this is dropped,
/// because the safe epoch cannot pass it. Dropping it unpins.
#[derive(Debug)]
pub struct PinnedSnapshot {
    epoch: Epoch,
    manager: Arc<EpochManager>,
}

impl PinnedSnapshot {
    /// The committed epoch this snapshot reads at.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }
}

impl Drop for PinnedSnapshot {
    fn drop(&mut self) {
        self.manager.unpin(self.epoch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_and_safe_epoch() {
        let m = EpochManager::new(Epoch(10));
        assert!(m.on_write(Epoch(10)).is_err());
        m.on_write(Epoch(11)).unwrap();
        assert!(m.check_syncable(Epoch(11)).is_err());
        m.seal(Epoch(11)).unwrap();
        assert!(m.seal(Epoch(11)).is_err());
        assert!(m.on_write(Epoch(11)).is_err());
        let pin = m.pin();
        assert_eq!(pin.epoch(), Epoch(10));
        m.check_syncable(Epoch(11)).unwrap();
        m.commit(Epoch(11));
        assert_eq!(m.committed(), Epoch(11));
        assert_eq!(m.safe_epoch(), Epoch(10));
        let pin2 = m.pin();
        drop(pin);
        assert_eq!(m.safe_epoch(), Epoch(11));
        drop(pin2);
        assert_eq!(m.safe_epoch(), Epoch(11));
    }
}
