//! Shared counters of a run's progress, for a progress display: how many repositories the
//! run covers, how many are finished, and how many items were deleted. The engine only
//! adds to them; whoever holds a clone reads them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A run's progress counters. Cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct Tracker(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    /// Repositories covered, plus one (0: not known yet).
    total: AtomicU64,
    done: AtomicU64,
    deleted: AtomicU64,
}

/// A reading of a [`Tracker`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tracked {
    /// Repositories the run covers, once the catalog is read.
    pub total: Option<u64>,
    /// Repositories finished.
    pub done: u64,
    /// Tags and manifests deleted (or to be deleted, in a dry run) in finished
    /// repositories.
    pub deleted: u64,
}

impl Tracker {
    /// The run covers `total` repositories.
    pub fn covering(&self, total: usize) {
        self.0.total.store(total as u64 + 1, Ordering::Relaxed);
    }

    /// A repository finished with `deleted` items removed.
    pub fn finished(&self, deleted: u64) {
        self.0.done.fetch_add(1, Ordering::Relaxed);
        self.0.deleted.fetch_add(deleted, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn read(&self) -> Tracked {
        let total = self.0.total.load(Ordering::Relaxed);
        Tracked {
            total: total.checked_sub(1),
            done: self.0.done.load(Ordering::Relaxed),
            deleted: self.0.deleted.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_counters() {
        let tracker = Tracker::default();
        assert_eq!(tracker.read().total, None);
        let engine = tracker.clone();
        engine.covering(0);
        assert_eq!(tracker.read().total, Some(0));
        engine.covering(3);
        engine.finished(2);
        engine.finished(5);
        assert_eq!(
            tracker.read(),
            Tracked {
                total: Some(3),
                done: 2,
                deleted: 7
            }
        );
    }
}
