//! Repaired tables built ahead, one per link of the node, that the
//! service thread publishes the instant BFD takes that link down.
//!
//! The control agent computes a node's repairs with every install, but the
//! agent runs below BFD's priority and may be in the middle of a route
//! computation when a link fails: on a busy host it took up to 12 ms to
//! wake and build the repaired tables. So after each install it also
//! builds, for every link still up, the tables with that link's repairs
//! applied, and arms them here against the snapshot they repair. The
//! service thread, which runs BFD, publishes the armed tables of the link
//! that went down with one pointer swap, no computation. Armed tables
//! whose snapshot has been replaced since (a newer install, a rekey) are
//! never published: the agent's own repair follows instead.

use crate::runtime::TableStore;
use crate::tables::Tables;
use meshplane_control::NodeId;
use std::sync::Mutex;

/// The repaired tables of each of the node's links, armed against one
/// published snapshot.
#[derive(Default)]
pub struct ArmedRepairs {
    slot: Mutex<Armed>,
}

#[derive(Default)]
struct Armed {
    /// Table epoch of the snapshot the tables repair.
    base_epoch: u64,
    /// Per neighbour: the snapshot with the link to it repaired.
    by_neighbor: Vec<(NodeId, Tables)>,
}

impl std::fmt::Debug for ArmedRepairs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmedRepairs")
            .field("neighbors", &self.armed())
            .finish()
    }
}

/// What [`ArmedRepairs::fire`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fired {
    /// Published under this table epoch.
    Published(u64),
    /// Nothing armed for that link.
    NotArmed,
    /// Armed against a snapshot that is no longer in force.
    Stale,
}

impl ArmedRepairs {
    /// Replaces what is armed with `by_neighbor`, the repairs of the
    /// snapshot published as `base_epoch`.
    pub fn arm(&self, base_epoch: u64, by_neighbor: Vec<(NodeId, Tables)>) {
        let mut a = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        // The old tables are freed here, on the agent's thread.
        let old = std::mem::replace(
            &mut *a,
            Armed {
                base_epoch,
                by_neighbor,
            },
        );
        drop(a);
        drop(old);
    }

    /// The link to `neighbor` went down: publishes its armed tables if the
    /// snapshot they repair is still the one in force. Whatever else was
    /// armed repairs a snapshot that this replaces, so it is disarmed.
    pub fn fire(&self, neighbor: NodeId, store: &TableStore) -> Fired {
        let (base, by_neighbor) = {
            let mut a = self.slot.lock().unwrap_or_else(|p| p.into_inner());
            (a.base_epoch, std::mem::take(&mut a.by_neighbor))
        };
        let Some((_, tables)) = by_neighbor.into_iter().find(|(n, _)| *n == neighbor) else {
            return Fired::NotArmed;
        };
        match store.publish_if_current(base, tables) {
            Some(epoch) => Fired::Published(epoch),
            None => Fired::Stale,
        }
    }

    /// Neighbours whose links have tables armed.
    pub fn armed(&self) -> Vec<NodeId> {
        let a = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        a.by_neighbor.iter().map(|(n, _)| *n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;

    fn tables(name: &str) -> Tables {
        let cfg = NodeConfig::parse(
            &format!("[node]\nname = \"t\"\nrole = \"satellite\"\n[[ports]]\nname = \"{name}\"\nmac = \"02:00:00:00:00:01\"\n"),
            "<t>",
        )
        .expect("config");
        Tables::from_config(&cfg, 1).expect("tables")
    }

    #[test]
    fn fires_the_link_that_went_down_once() {
        let store = TableStore::new(tables("base"));
        let base = store.epoch();
        let armed = ArmedRepairs::default();
        armed.arm(
            base,
            vec![(5, tables("without-5")), (6, tables("without-6"))],
        );
        assert_eq!(armed.armed(), vec![5, 6]);
        let Fired::Published(e) = armed.fire(6, &store) else {
            panic!("not published");
        };
        assert_eq!(store.epoch(), e);
        assert_eq!(store.load().port_names[0], "without-6");
        // The rest repaired the old snapshot: disarmed.
        assert!(armed.armed().is_empty());
        assert_eq!(armed.fire(5, &store), Fired::NotArmed);
        assert_eq!(store.load().port_names[0], "without-6");
    }

    #[test]
    fn never_rolls_back_a_newer_snapshot() {
        let store = TableStore::new(tables("base"));
        let armed = ArmedRepairs::default();
        armed.arm(store.epoch(), vec![(5, tables("without-5"))]);
        store.publish(tables("newer"));
        assert_eq!(armed.fire(5, &store), Fired::Stale);
        assert_eq!(store.load().port_names[0], "newer");
    }

    #[test]
    fn an_unknown_link_publishes_nothing() {
        let store = TableStore::new(tables("base"));
        let armed = ArmedRepairs::default();
        armed.arm(store.epoch(), vec![(5, tables("without-5"))]);
        assert_eq!(armed.fire(9, &store), Fired::NotArmed);
        assert_eq!(store.load().port_names[0], "base");
    }
}
