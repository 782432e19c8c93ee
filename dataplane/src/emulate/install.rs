//! A node's tables for each install, built straight from the snapshot's
//! entries into the tables they replace.
//!
//! The agent's install path ([`crate::control::PublicationInstaller`],
//! then [`Tables::from_config_with`]) turns a node's routes into a
//! configuration (a port name per entry), then builds every table anew
//! from it: ports looked up by name, each SA found again in the SA store
//! by its key's fingerprint, the inbound policy and the node routes
//! derived from the FECs. In the emulator only the routes change from one
//! install to the next; the ports, SAs, delivery prefixes and addresses
//! come from the node's own configuration, which never changes. So
//! [`Direct`] resolves those once (each neighbour's port and MAC, each
//! egress gateway's outbound SA), and an install rewrites only what the
//! routes decide: the LFIB, the FECs and, when the FECs lead to other
//! prefixes or SAs than before, their prefix tables, the inbound SAs'
//! allowed sources and the node routes. The LFIB is updated in place:
//! an entry that an install leaves as it was is not written again (half
//! of them from one epoch to the next: the block carried over), and
//! only the labels the new routes no longer hold are removed.
//!
//! The result is the agent's tables, entry for entry: `emulate::node`'s
//! tests build every install both ways and compare them.

use crate::config::{Mac, NodeConfig, Prefix, SaDir};
use crate::frame::PortId;
use crate::tables::lfib::{LfibEntry, LfibOp};
use crate::tables::lpm::{Lpm4, Lpm6};
use crate::tables::{insert_prefix, Fec, InboundSa, NodeRoute, Tables};
use meshplane_control::tables::{FecRoute, LfibAction, LfibRoute, NodeTables};
use meshplane_control::{GroundStations, NodeId};
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// How a node builds the tables of each install.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InstallPath {
    /// Through the agent's install path: the routes as a configuration,
    /// the tables built from it (the tests' reference).
    Agent,
    /// Straight from the snapshot's entries ([`Direct`]).
    #[default]
    Direct,
}

/// What a node's configuration fixes for all its installs, resolved once.
#[derive(Debug)]
pub struct Direct {
    node: NodeId,
    /// The neighbours a port leads to, ascending.
    neighbours: Vec<NodeId>,
    /// For each of `neighbours`: the port and the next hop's MAC.
    hops: Vec<(PortId, Mac)>,
    /// Each port's MTU, in port order.
    port_mtu: Vec<u16>,
    /// Egress gateway id -> index of its outbound SA in the tables.
    sa_of_gid: Vec<Option<u32>>,
    /// The FECs' (prefix, SA index) of the last install: while they stay
    /// the same, so do the prefix tables, inbound policy and node routes.
    keys: Vec<(Prefix, u32)>,
    /// Scratch space for the next install's keys.
    next_keys: Vec<(Prefix, u32)>,
    /// Scratch space for the next install's labels, sorted.
    sorted: Vec<u32>,
}

/// Frames on a link without a configured peer MAC go to broadcast, as the
/// agent's installer sends them.
const BROADCAST: Mac = [0xff; 6];

impl Direct {
    /// The installs of node `node`, whose configuration `cfg` has a port
    /// toward `port_peer[i]` at index `i` (a node id, or something that is
    /// none: a LAN), over the gateways `stations`. `None` when the
    /// configuration holds what only the agent's path handles: static FEC
    /// or LFIB entries or node routes, IKE peers.
    pub fn new(
        cfg: &NodeConfig,
        node: NodeId,
        port_peer: &[u32],
        n_nodes: usize,
        stations: &GroundStations,
    ) -> Option<Direct> {
        if !cfg.fec.is_empty()
            || !cfg.lfib.is_empty()
            || !cfg.node_routes.is_empty()
            || cfg.ike.is_some()
            || port_peer.len() != cfg.ports.len()
        {
            return None;
        }
        let mut by_peer: Vec<(NodeId, PortId, Mac)> = Vec::new();
        for (i, (&peer, p)) in port_peer.iter().zip(&cfg.ports).enumerate() {
            if (peer as usize) >= n_nodes {
                continue;
            }
            // A second port toward the same neighbour: the agent's
            // installer keeps the last, then finds the first by name.
            if by_peer.iter().any(|&(nb, ..)| nb == peer) {
                return None;
            }
            by_peer.push((peer, i as PortId, p.peer_mac.unwrap_or(BROADCAST)));
        }
        by_peer.sort_by_key(|&(nb, ..)| nb);
        // Outbound SAs in table order; the last with an SPI is the one a
        // FEC naming it gets, and the last toward a gateway serves it.
        let mut index_of_spi = HashMap::new();
        let mut spi_of_gid = HashMap::new();
        for (i, s) in cfg.sa.iter().filter(|s| s.dir == SaDir::Out).enumerate() {
            index_of_spi.insert(s.spi, i as u32);
            if let Some(peer) = &s.peer {
                spi_of_gid.insert(stations.find(peer).ok()?, s.spi);
            }
        }
        let mut sa_of_gid = vec![None; stations.len()];
        for (gid, spi) in spi_of_gid {
            *sa_of_gid.get_mut(gid as usize)? = index_of_spi.get(&spi).copied();
        }
        Some(Direct {
            node,
            neighbours: by_peer.iter().map(|&(nb, ..)| nb).collect(),
            hops: by_peer.iter().map(|&(_, p, m)| (p, m)).collect(),
            port_mtu: cfg.ports.iter().map(|p| p.mtu).collect(),
            sa_of_gid,
            keys: Vec::new(),
            next_keys: Vec::new(),
            sorted: Vec::new(),
        })
    }

    /// The port toward neighbour `nb` and the next hop's MAC.
    fn hop(&self, nb: NodeId) -> Option<(PortId, Mac)> {
        let i = self.neighbours.binary_search(&nb).ok()?;
        self.hops.get(i).copied()
    }

    /// Makes `t` (tables this node built before, from its configuration
    /// and earlier routes) the tables of install `epoch` with the routes
    /// `mine` (the snapshot's entries for this node) and the satellites'
    /// node labels `sat`. `labels` holds the labels of the LFIB entries
    /// `t` has, and then those of the new ones, sorted.
    pub fn install(
        &mut self,
        t: &mut Tables,
        epoch: u64,
        mine: Option<&NodeTables>,
        sat: &[LfibRoute],
        labels: &mut Vec<u32>,
    ) {
        t.epoch = epoch;
        let (fec, lfib) = mine.map_or((&[][..], &[][..]), |m| (&m.fec[..], &m.lfib[..]));
        // The new entries over the old ones (in order: a later entry for
        // a label wins, as in a table built anew), then the old labels
        // that have no new entry removed.
        self.sorted.clear();
        for r in lfib.iter().chain(sat) {
            if let Some(e) = self.lfib_entry(r, &t.port_macs) {
                self.sorted.push(r.label);
                if t.lfib.get(r.label) != Some(&e) {
                    t.lfib.insert(r.label, e);
                }
            }
        }
        // Both lists sorted (an install leaves its labels so), one walk.
        self.sorted.sort_unstable();
        if !labels.is_sorted() {
            labels.sort_unstable();
        }
        let mut new = self.sorted.iter().peekable();
        for &old in labels.iter() {
            while new.next_if(|&&l| l < old).is_some() {}
            if new.peek() != Some(&&old) {
                t.lfib.remove(old);
            }
        }
        std::mem::swap(labels, &mut self.sorted);
        self.fecs(t, fec);
    }

    /// The LFIB entry of route `r`, `None` when it leaves by a link this
    /// node has no port for. A pop whose next hop is the node itself
    /// terminates here.
    fn lfib_entry(&self, r: &LfibRoute, port_macs: &[Mac]) -> Option<LfibEntry> {
        let src_mac = |p: PortId| port_macs.get(usize::from(p)).copied().unwrap_or([0; 6]);
        match r.action {
            LfibAction::Pop if r.next_hop == self.node => {
                Some(LfibEntry::new(LfibOp::PopLocal, 0, [0; 6], src_mac(0)))
            }
            action => {
                let (port, mac) = self.hop(r.next_hop)?;
                let op = match action {
                    LfibAction::Swap { out_label } => LfibOp::Swap(out_label),
                    LfibAction::Pop => LfibOp::Pop,
                };
                Some(LfibEntry::new(op, port, mac, src_mac(port)))
            }
        }
    }

    /// The FECs of `routes` in `t`, skipping those over a link without a
    /// port or toward a gateway without an outbound SA; and what follows
    /// from them, when they lead to other prefixes or SAs than before.
    fn fecs(&mut self, t: &mut Tables, routes: &[FecRoute]) {
        if routes.is_empty() && t.fecs.is_empty() && self.keys.is_empty() {
            return;
        }
        t.fecs.clear();
        self.next_keys.clear();
        for r in routes {
            let Some((port, dst_mac)) = self.hop(r.next_hop) else {
                continue;
            };
            let Some(sa) = self.sa_of_gid.get(r.egress_gid as usize).copied().flatten() else {
                continue;
            };
            let p = usize::from(port);
            t.fecs.push(Fec::new(
                sa,
                Some(r.label),
                port,
                dst_mac,
                t.port_macs[p],
                self.port_mtu[p],
                t.sa_out.get(sa as usize).map(|s| &**s),
            ));
            let prefix = Prefix {
                addr: r.prefix.0,
                len: r.prefix.1,
            };
            self.next_keys.push((prefix, sa));
        }
        std::mem::swap(&mut self.keys, &mut self.next_keys);
        if self.keys != self.next_keys {
            Self::derived(t, &self.keys);
        }
    }

    /// What follows from the FECs' prefixes and SAs `keys` (in FEC order):
    /// the prefix tables, each inbound SA's allowed sources (the prefixes
    /// of the FECs whose outbound SA leads to its tunnel source) and the
    /// node routes (toward each peer, its first FEC).
    fn derived(t: &mut Tables, keys: &[(Prefix, u32)]) {
        t.fec4 = Lpm4::new();
        t.fec6 = Lpm6::new();
        t.fec_prefixes.clear();
        t.node_routes.clear();
        let mut by_peer: HashMap<Ipv4Addr, Vec<Prefix>> = HashMap::new();
        for (i, &(prefix, sa)) in keys.iter().enumerate() {
            let idx = i as u32;
            insert_prefix(&mut t.fec4, &mut t.fec6, prefix, idx);
            t.fec_prefixes.push((prefix, idx));
            if let Some(s) = t.sa_out.get(sa as usize) {
                by_peer.entry(s.tunnel_dst).or_default().push(prefix);
                t.node_routes
                    .entry(s.tunnel_dst)
                    .or_insert(NodeRoute::Fec(idx));
            }
        }
        for inbound in t.sa_in.values_mut() {
            let sources = by_peer
                .get(&inbound.sa.tunnel_src)
                .map_or(&[][..], Vec::as_slice);
            if *inbound.sources != *sources {
                *inbound = InboundSa::new(std::sync::Arc::clone(&inbound.sa), sources.to_vec());
            }
        }
    }
}
