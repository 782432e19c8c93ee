//! Per-node forwarding tables compiled from the shortest-path trees, in the
//! plain form the data plane's static configuration uses.
//!
//! * Gateways get a FEC table: for every other reachable gateway, its LAN
//!   prefix -> push that gateway's node label, send out of the port toward
//!   the first satellite.
//! * Satellites get an LFIB: for every reachable egress gateway, its label
//!   -> swap to the same label, send toward the next hop.
//! * Gateways get an LFIB entry popping their own label (the packet then
//!   goes to ESP decryption and the LAN; `next_hop` is the gateway itself).
//!
//! Entries name the neighbour node, not a port string (a million strings
//! per snapshot with 1000 gateways). Port naming: a node's port toward
//! neighbour node `X` is `"isl{X}"` when
//! `X` is a satellite (`X < N`) and `"gsl{X}"` when `X` is a ground station
//! (`X >= N`, the node id, not the gid). So a satellite reaches gateway
//! node 1590 via `"gsl1590"`, and that gateway reaches satellite 12 via
//! `"isl12"` (see [`port_name`]).
//!
//! * Every node also switches the satellites' node labels, from its own
//!   first hops toward each satellite ([`sat_label_lfib`]; the node
//!   computes them for itself, [`crate::routing::first_hops`], rather than
//!   the snapshot for all of them), and a satellite pops its own.
//!
//! Make-before-break: the tables of epoch `e` carry the node labels of
//! epoch `e` and, unchanged, the entries of epoch `e - 1` (the other label
//! block), so packets labelled under `e - 1` keep following the old tree
//! while they drain. An old entry keeps its link even when the geometry at
//! `e` no longer lists it (a link fading out of range between two samples
//! still carries the last packets for the few milliseconds they drain);
//! only where the link or its satellite is administratively down (a
//! failure) does the entry swap to the new label and follow the new tree.

use crate::labels::{LabelError, LabelPlan};
use crate::routing::{Spt, NO_HOP};
use crate::topology::{Failures, NodeId, Topology};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr};

/// An IP prefix: address and length.
pub type Prefix = (IpAddr, u8);

/// The default LAN prefix of gateway `gid`: `10.<gid / 256>.<gid % 256>.0/24`.
pub fn default_gateway_prefix(gid: u32) -> Prefix {
    (
        IpAddr::V4(Ipv4Addr::new(
            10,
            ((gid >> 8) & 0xff) as u8,
            (gid & 0xff) as u8,
            0,
        )),
        24,
    )
}

/// The name of a node's port toward neighbour `neighbor` in a network of
/// `n_sats` satellites: `"isl{X}"` toward satellite `X`, `"gsl{X}"` toward
/// ground-station node `X`.
pub fn port_name(n_sats: usize, neighbor: NodeId) -> String {
    let mut s = String::with_capacity(10);
    s.push_str(if (neighbor as usize) < n_sats {
        "isl"
    } else {
        "gsl"
    });
    push_decimal(&mut s, neighbor);
    s
}

fn push_decimal(s: &mut String, mut v: u32) {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        s.push(char::from(b));
    }
}

/// Ingress classification: traffic to `prefix` goes to egress gateway
/// `egress_gid` under `label`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FecRoute {
    /// Destination prefix (the egress gateway's LAN).
    pub prefix: Prefix,
    /// The egress gateway.
    pub egress_gid: u32,
    /// The MPLS label to push (the egress gateway's node label).
    pub label: u32,
    /// Neighbour node to send to (the port is [`port_name`] of it).
    pub next_hop: NodeId,
}

/// What an LFIB entry does to the top label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum LfibAction {
    /// Replace the label and forward.
    Swap {
        /// The outgoing label.
        out_label: u32,
    },
    /// Remove the label: this node is the egress.
    Pop,
}

/// Label switching: packets arriving with `label` get `action`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LfibRoute {
    /// Incoming label.
    pub label: u32,
    /// Swap or pop.
    pub action: LfibAction,
    /// Neighbour node to send to (the port is [`port_name`] of it); the
    /// node itself for a pop to the local LAN.
    pub next_hop: NodeId,
}

/// The tables of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NodeTables {
    /// The node.
    pub node: NodeId,
    /// FEC table (gateways only; empty on satellites).
    pub fec: Vec<FecRoute>,
    /// LFIB: current epoch's labels first (by gid), then the previous epoch's.
    pub lfib: Vec<LfibRoute>,
}

/// The tables of every node for one epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TableSet {
    /// Table epoch (selects the label block).
    pub epoch: u64,
    /// Geometry time the tables were computed for, seconds since the
    /// constellation epoch.
    pub t_s: f64,
    /// Number of satellites (node ids below are satellites).
    pub n_sats: usize,
    /// One entry per node, index = node id.
    pub nodes: Vec<NodeTables>,
}

impl TableSet {
    /// The tables of one node.
    pub fn node(&self, id: NodeId) -> Option<&NodeTables> {
        self.nodes.get(id as usize)
    }

    /// Total FEC and LFIB entries.
    pub fn entry_count(&self) -> (usize, usize) {
        self.nodes
            .iter()
            .fold((0, 0), |(f, l), n| (f + n.fec.len(), l + n.lfib.len()))
    }
}

/// Compiles every node's tables for `epoch` from the trees toward each egress
/// gateway. `prefix_of(gid)` gives gateway LANs; `prev` (the tables of the
/// previous epoch) supplies the entries kept for make-before-break, except
/// over links `failures` takes down.
pub fn compile(
    topo: &Topology,
    spts: &[Spt],
    epoch: u64,
    plan: &LabelPlan,
    prefix_of: &dyn Fn(u32) -> Prefix,
    prev: Option<&TableSet>,
    failures: &Failures,
) -> Result<TableSet, LabelError> {
    plan.validate()?;
    let n = topo.n_sats();
    let total = topo.n_nodes();
    let mut nodes: Vec<NodeTables> = (0..total)
        .map(|i| NodeTables {
            node: i as NodeId,
            fec: Vec::new(),
            lfib: Vec::with_capacity(if i < n { spts.len() } else { 1 }),
        })
        .collect();
    let mut labels = Vec::with_capacity(spts.len());
    for spt in spts {
        labels.push(plan.label(epoch, spt.gid)?);
    }
    for (spt, &label) in spts.iter().zip(&labels) {
        let root = spt.root;
        if root == NO_HOP {
            continue;
        }
        for (s, tables) in nodes.iter_mut().enumerate().take(n) {
            let nh = spt.next_hop[s];
            if nh == NO_HOP {
                continue;
            }
            tables.lfib.push(LfibRoute {
                label,
                action: LfibAction::Swap { out_label: label },
                next_hop: nh,
            });
        }
        nodes[root as usize].lfib.push(LfibRoute {
            label,
            action: LfibAction::Pop,
            next_hop: root,
        });
        let prefix = prefix_of(spt.gid);
        for (g, tables) in nodes.iter_mut().enumerate().skip(n) {
            let nh = spt.next_hop[g];
            if g as NodeId == root || nh == NO_HOP {
                continue;
            }
            tables.fec.push(FecRoute {
                prefix,
                egress_gid: spt.gid,
                label,
                next_hop: nh,
            });
        }
    }
    if let Some(prev) = prev {
        carry_previous(topo, spts, epoch, plan, prev, failures, &mut nodes)?;
    }
    Ok(TableSet {
        epoch,
        t_s: topo.t_s,
        n_sats: n,
        nodes,
    })
}

/// Appends the previous epoch's LFIB entries (its own label block only).
fn carry_previous(
    topo: &Topology,
    spts: &[Spt],
    epoch: u64,
    plan: &LabelPlan,
    prev: &TableSet,
    failures: &Failures,
    nodes: &mut [NodeTables],
) -> Result<(), LabelError> {
    let n = topo.n_sats();
    let prev_block = LabelPlan::block_of(prev.epoch);
    if prev.n_sats != n || prev_block == LabelPlan::block_of(epoch) {
        return Ok(());
    }
    let spt_of = |gid: u32| spts.iter().find(|s| s.gid == gid);
    for (id, old) in prev.nodes.iter().enumerate().take(nodes.len()) {
        for r in &old.lfib {
            let Some((block, gid)) = plan.decode(r.label) else {
                continue;
            };
            if block != prev_block {
                continue;
            }
            let keep = match r.action {
                LfibAction::Pop => true,
                LfibAction::Swap { .. } => !link_failed(n, failures, id as NodeId, r.next_hop),
            };
            if keep {
                nodes[id].lfib.push(r.clone());
            } else if let Some(spt) = spt_of(gid) {
                let nh = spt.next_hop.get(id).copied().unwrap_or(NO_HOP);
                if nh != NO_HOP {
                    nodes[id].lfib.push(LfibRoute {
                        label: r.label,
                        action: LfibAction::Swap {
                            out_label: plan.label(epoch, gid)?,
                        },
                        next_hop: nh,
                    });
                }
            }
        }
    }
    Ok(())
}

/// One node's first hops toward every satellite under one table epoch
/// (from [`crate::routing::first_hops`] over that epoch's topology).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SatHops {
    /// The node.
    pub node: NodeId,
    /// The table epoch (selects the satellite label block).
    pub epoch: u64,
    /// First hop toward each satellite ([`NO_HOP`] where unreachable);
    /// index = satellite id.
    pub hops: Vec<NodeId>,
}

/// One node's LFIB entries for the satellites' node labels in epoch
/// `current.epoch`: toward every other satellite `S` it reaches, swap
/// `S`'s label to the same label toward its first hop; on a satellite,
/// pop its own label of both blocks (local termination, `next_hop` the
/// node itself). Current block first, by satellite id.
///
/// Make-before-break, as for gateway labels: when `previous` holds the
/// node's first hops of the epoch before or after (the other label
/// block), its entries are kept unchanged, except where the link or its
/// satellite is administratively down in `failures`: those swap to the
/// current label and follow the current first hop.
pub fn sat_label_lfib(
    plan: &LabelPlan,
    n_sats: usize,
    current: &SatHops,
    previous: Option<&SatHops>,
    failures: &Failures,
) -> Result<Vec<LfibRoute>, LabelError> {
    let me = current.node;
    let e = current.epoch;
    let n = n_sats.min(current.hops.len());
    let mut out = Vec::with_capacity(2 * n + 2);
    for (s, &nh) in current.hops.iter().enumerate().take(n) {
        let s = s as NodeId;
        if s == me || nh == NO_HOP {
            continue;
        }
        let label = plan.sat_label(e, s)?;
        out.push(LfibRoute {
            label,
            action: LfibAction::Swap { out_label: label },
            next_hop: nh,
        });
    }
    let own_pop = |epoch: u64| -> Result<Option<LfibRoute>, LabelError> {
        if (me as usize) >= n_sats {
            return Ok(None);
        }
        Ok(Some(LfibRoute {
            label: plan.sat_label(epoch, me)?,
            action: LfibAction::Pop,
            next_hop: me,
        }))
    };
    out.extend(own_pop(e)?);
    let prev = previous.filter(|p| {
        p.node == me
            && p.epoch.abs_diff(e) == 1
            && p.hops.len() == current.hops.len()
            && LabelPlan::block_of(p.epoch) != LabelPlan::block_of(e)
    });
    if let Some(p) = prev {
        for (s, &old) in p.hops.iter().enumerate().take(n) {
            let s = s as NodeId;
            if s == me || old == NO_HOP {
                continue;
            }
            let label = plan.sat_label(p.epoch, s)?;
            if !link_failed(n_sats, failures, me, old) {
                out.push(LfibRoute {
                    label,
                    action: LfibAction::Swap { out_label: label },
                    next_hop: old,
                });
            } else if current.hops[s as usize] != NO_HOP {
                out.push(LfibRoute {
                    label,
                    action: LfibAction::Swap {
                        out_label: plan.sat_label(e, s)?,
                    },
                    next_hop: current.hops[s as usize],
                });
            }
        }
    }
    // The other block (epoch parity flipped).
    out.extend(own_pop(e ^ 1)?);
    Ok(out)
}

/// True when the link `a`-`b` is administratively down: a failed ISL or
/// a failed satellite at either end.
fn link_failed(n_sats: usize, failures: &Failures, a: NodeId, b: NodeId) -> bool {
    let sat = |x: NodeId| (x as usize) < n_sats;
    (sat(a) && failures.satellite_down(a))
        || (sat(b) && failures.satellite_down(b))
        || (sat(a) && sat(b) && failures.isl_down(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(label, out_label or None for a pop, next hop)` of each entry.
    fn entries(v: &[LfibRoute]) -> Vec<(u32, Option<u32>, NodeId)> {
        v.iter()
            .map(|r| match r.action {
                LfibAction::Swap { out_label } => (r.label, Some(out_label), r.next_hop),
                LfibAction::Pop => (r.label, None, r.next_hop),
            })
            .collect()
    }

    #[test]
    fn satellite_labels_follow_the_first_hops_and_keep_the_previous_block() {
        let plan = LabelPlan::default();
        let none = Failures::new();
        // Satellite 1 of 4: toward 0 and 2 via 2, 3 unreachable.
        let e5 = SatHops {
            node: 1,
            epoch: 5,
            hops: vec![2, 1, 2, NO_HOP],
        };
        let alone = sat_label_lfib(&plan, 4, &e5, None, &none).expect("labels");
        assert_eq!(
            entries(&alone),
            [
                (40_000, Some(40_000), 2),
                (40_002, Some(40_002), 2),
                (40_001, None, 1),
                (20_001, None, 1),
            ]
        );
        // Epoch 6 carries epoch 5's block as it was.
        let e6 = SatHops {
            node: 1,
            epoch: 6,
            hops: vec![0, 1, 2, 2],
        };
        let both = sat_label_lfib(&plan, 4, &e6, Some(&e5), &none).expect("labels");
        assert_eq!(
            entries(&both),
            [
                (20_000, Some(20_000), 0),
                (20_002, Some(20_002), 2),
                (20_003, Some(20_003), 2),
                (20_001, None, 1),
                (40_000, Some(40_000), 2),
                (40_002, Some(40_002), 2),
                (40_001, None, 1),
            ]
        );
        // The link to 2 fails: the old entries over it take the new label
        // and the new first hop, or go where there is none.
        let mut down = Failures::new();
        down.fail_isl(1, 2);
        let e6 = SatHops {
            node: 1,
            epoch: 6,
            hops: vec![0, 1, 0, NO_HOP],
        };
        let rerouted = sat_label_lfib(&plan, 4, &e6, Some(&e5), &down).expect("labels");
        assert_eq!(
            entries(&rerouted),
            [
                (20_000, Some(20_000), 0),
                (20_002, Some(20_002), 0),
                (20_001, None, 1),
                (40_000, Some(20_000), 0),
                (40_002, Some(20_002), 0),
                (40_001, None, 1),
            ]
        );
        // Not the other block, or another node's: nothing carried.
        for prev in [
            SatHops {
                epoch: 4,
                ..e6.clone()
            },
            SatHops {
                epoch: 6,
                ..e6.clone()
            },
            SatHops {
                node: 2,
                ..e5.clone()
            },
        ] {
            let v = sat_label_lfib(&plan, 4, &e6, Some(&prev), &down).expect("labels");
            assert_eq!(entries(&v).len(), 4, "{prev:?}");
        }
        // A gateway (node 4 of 4 satellites) swaps and pops nothing.
        let gw = SatHops {
            node: 4,
            epoch: 0,
            hops: vec![1, 1, 2, NO_HOP],
        };
        let v = sat_label_lfib(&plan, 4, &gw, None, &none).expect("labels");
        assert_eq!(
            entries(&v),
            [
                (20_000, Some(20_000), 1),
                (20_001, Some(20_001), 1),
                (20_002, Some(20_002), 2),
            ]
        );
    }

    #[test]
    fn names_and_prefixes() {
        assert_eq!(port_name(1584, 12), "isl12");
        assert_eq!(port_name(1584, 1590), "gsl1590");
        assert_eq!(port_name(10, 0), "isl0");
        assert_eq!(
            default_gateway_prefix(300),
            ("10.1.44.0".parse().expect("addr"), 24)
        );
    }
}
