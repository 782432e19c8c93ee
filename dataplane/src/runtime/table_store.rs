//! Publication of the forwarding tables: one immutable snapshot that
//! workers load once per burst without a lock, replaced whole by
//! `publish` from any thread (the control thread, a `SIGHUP` reload).

use crate::tables::Tables;
use arc_swap::{ArcSwap, Guard};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The current table snapshot of a node, shared by its workers and the
/// threads that publish new tables.
///
/// Readers call [`TableStore::load`] once per burst: an `arc-swap` load is
/// a few atomic operations on thread-local debt slots, no lock, no
/// system call. A publisher builds a complete `Tables` off the hot path
/// and swaps it in. The old snapshot is kept here until no burst (and no
/// batch in a pipeline queue) uses it, and freed by a publisher or
/// [`TableStore::reclaim`]: a worker never frees a table, so never pays
/// for deallocating an LPM in the middle of a burst.
pub struct TableStore {
    current: ArcSwap<Tables>,
    /// Epoch of `current`, set after each swap: what a [`TableReader`]
    /// checks per burst instead of loading the snapshot.
    published: AtomicU64,
    /// Next epoch to hand out; epochs only grow.
    next_epoch: AtomicU64,
    /// Serialises publishers so epochs are installed in order; holds the
    /// replaced snapshots until only this store refers to them.
    retired: Mutex<Vec<Arc<Tables>>>,
}

impl std::fmt::Debug for TableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableStore")
            .field("epoch", &self.epoch())
            .finish()
    }
}

impl TableStore {
    /// A store whose first snapshot is `tables` (its epoch is kept).
    pub fn new(tables: Tables) -> Self {
        let next = tables.epoch.saturating_add(1);
        TableStore {
            published: AtomicU64::new(tables.epoch),
            current: ArcSwap::from_pointee(tables),
            next_epoch: AtomicU64::new(next),
            retired: Mutex::new(Vec::new()),
        }
    }

    /// The current snapshot, for one burst (hot path: no lock).
    #[inline]
    pub fn load(&self) -> Guard<Arc<Tables>> {
        self.current.load()
    }

    /// The current snapshot as an owned `Arc`, for work that outlives a
    /// burst on one thread (a batch handed to another core).
    #[inline]
    pub fn load_full(&self) -> Arc<Tables> {
        self.current.load_full()
    }

    /// A reader for one worker thread that keeps the snapshot between
    /// bursts (see [`TableReader`]).
    pub fn reader(&self) -> TableReader {
        TableReader {
            tables: self.load_full(),
        }
    }

    /// Epoch of the current snapshot.
    pub fn epoch(&self) -> u64 {
        self.current.load().epoch
    }

    /// Installs `tables` as the current snapshot under the next epoch
    /// (whatever epoch it was built with) and returns that epoch. Workers
    /// pick it up at their next burst; bursts in flight finish on the old
    /// snapshot.
    pub fn publish(&self, tables: Tables) -> u64 {
        // A poisoned lock only means another publisher panicked; the
        // store itself is always consistent.
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        self.swap_in(&mut retired, tables)
    }

    /// Installs `tables` under the next epoch; the caller holds `retired`.
    fn swap_in(&self, retired: &mut Vec<Arc<Tables>>, mut tables: Tables) -> u64 {
        let epoch = self.next_epoch.fetch_add(1, Ordering::Relaxed);
        tables.epoch = epoch;
        // `swap` returns once every reader's borrow of the old snapshot is
        // a counted reference, so its strong count is exact from here on.
        let old = self.current.swap(Arc::new(tables));
        // After the swap: a reader that sees this epoch loads the new
        // snapshot, never the one it replaced.
        self.published.store(epoch, Ordering::Release);
        retired.push(old);
        Self::free_unused(retired);
        epoch
    }

    /// Like [`TableStore::publish`], only while the snapshot in force is
    /// still the one published as `expected`; otherwise drops `tables`
    /// and returns `None`. Tables built as a change of one snapshot (a
    /// link's repair) never replace a newer one.
    pub fn publish_if_current(&self, expected: u64, tables: Tables) -> Option<u64> {
        // Every publisher holds this lock, so nothing is published between
        // the check and the swap.
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        if self.current.load().epoch != expected {
            return None;
        }
        Some(self.swap_in(&mut retired, tables))
    }

    /// Frees replaced snapshots that no reader holds any more (the
    /// supervising thread calls this on its tick).
    pub fn reclaim(&self) {
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        Self::free_unused(&mut retired);
    }

    fn free_unused(retired: &mut Vec<Arc<Tables>>) {
        retired.retain(|t| Arc::strong_count(t) > 1);
    }

    /// The epoch the next `publish` will install (for building tables whose
    /// label block depends on it).
    pub fn next_epoch(&self) -> u64 {
        self.next_epoch.load(Ordering::Relaxed)
    }
}

/// One worker's hold on the current snapshot: per burst it reads the
/// store's published epoch (one atomic load) and loads the snapshot again
/// only when that changed, where [`TableStore::load`] would take and give
/// back a reference every burst. It holds the snapshot between bursts, so
/// the store keeps a replaced one until the reader's next burst (the store
/// frees it, never the reader).
pub struct TableReader {
    tables: Arc<Tables>,
}

impl std::fmt::Debug for TableReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableReader")
            .field("epoch", &self.tables.epoch)
            .finish()
    }
}

impl TableReader {
    /// The snapshot in force for the next burst: the same as
    /// `store.load()` at this instant.
    #[inline]
    pub fn current(&mut self, store: &TableStore) -> &Tables {
        if store.published.load(Ordering::Acquire) != self.tables.epoch {
            self.reload(store);
        }
        &self.tables
    }

    #[cold]
    fn reload(&mut self, store: &TableStore) {
        self.tables = store.load_full();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;

    fn tables() -> Tables {
        let cfg = NodeConfig::parse(
            "[node]\nname = \"t\"\nrole = \"satellite\"\n[[ports]]\nname = \"a\"\nmac = \"02:00:00:00:00:01\"\n",
            "<t>",
        )
        .expect("config");
        Tables::from_config(&cfg, 7).expect("tables")
    }

    #[test]
    fn publish_installs_increasing_epochs() {
        let store = TableStore::new(tables());
        assert_eq!(store.epoch(), 7);
        let held = store.load_full();
        assert_eq!(store.publish(tables()), 8);
        assert_eq!(store.publish(tables()), 9);
        assert_eq!(store.load().epoch, 9);
        // A reader holding the old snapshot keeps it intact.
        assert_eq!(held.epoch, 7);
    }

    /// The reader's kept snapshot against a plain load after every kind of
    /// publication (the shortcut may never serve a replaced snapshot).
    #[test]
    fn a_reader_sees_what_a_load_sees_after_every_publication() {
        let store = TableStore::new(tables());
        let mut reader = store.reader();
        assert_eq!(reader.current(&store).epoch, store.load().epoch);
        for round in 0..6 {
            match round % 3 {
                0 => {
                    store.publish(tables());
                }
                1 => {
                    let e = store.epoch();
                    assert!(store.publish_if_current(e, tables()).is_some());
                }
                _ => {
                    // Refused: nothing changes, the reader keeps its own.
                    assert!(store.publish_if_current(0, tables()).is_none());
                }
            }
            let held = reader.current(&store) as *const Tables;
            assert_eq!(held, Arc::as_ptr(&store.load_full()), "round {round}");
        }
        // A replaced snapshot the reader still holds is the store's to free.
        let old = Arc::downgrade(&store.load_full());
        let _ = reader.current(&store);
        store.publish(tables());
        store.reclaim();
        assert!(
            old.upgrade().is_some(),
            "held by the reader until its next burst"
        );
        let _ = reader.current(&store);
        store.reclaim();
        assert!(old.upgrade().is_none());
    }

    #[test]
    fn the_last_reference_to_a_replaced_snapshot_is_the_stores() {
        let store = TableStore::new(tables());
        let held = store.load_full();
        store.publish(tables());
        store.publish(tables());
        // The store still holds epoch 7 for the reader; epoch 8 nobody
        // held, so the second publish freed it.
        assert_eq!(Arc::strong_count(&held), 2);
        assert_eq!(store.retired.lock().expect("lock").len(), 1);
        // The reader lets go: dropping its Arc frees nothing ...
        let weak = Arc::downgrade(&held);
        drop(held);
        assert!(weak.upgrade().is_some());
        // ... the store frees it.
        store.reclaim();
        assert!(weak.upgrade().is_none());
        assert!(store.retired.lock().expect("lock").is_empty());
    }
}
