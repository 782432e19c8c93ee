//! A reference check of repairs, plain and slow: walk the packet hop by
//! hop through every other node's pre-failure forwarding, exactly as the
//! network forwards it until the failure is flooded, and see where it
//! goes.
//!
//! Every node's forwarding comes from its own computation: a satellite's
//! node label from that node's first hops
//! ([`Router::first_hops_into`], computed here for each node the walk
//! visits), a gateway's label from the tree toward that gateway. A
//! satellite pops its own label and goes on with the label below (a
//! release point); a gateway pops its own label, which must be the last.

use super::{Destination, Repair};
use crate::labels::{LabelPlan, NodeLabel};
use crate::routing::{link, FirstHops, Router, Spt, NO_HOP};
use crate::topology::{NodeId, Topology};
use std::collections::{HashMap, HashSet, VecDeque};

/// Every node's forwarding before the failure, for one table epoch.
pub struct PreFailure<'a> {
    topo: &'a Topology,
    spts: &'a [Spt],
    plan: &'a LabelPlan,
    epoch: u64,
    router: Router,
    hops: HashMap<NodeId, Vec<NodeId>>,
}

/// What a node does with a packet's top label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The label is the node's own: it pops it.
    Pop,
    /// It sends the packet, label unchanged, to this neighbour.
    Forward(NodeId),
}

/// Why a repaired packet does not arrive.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// A hop over a link the topology does not have.
    #[error("{0} -> {1} is no link")]
    NoLink(NodeId, NodeId),
    /// A hop over the failed link.
    #[error("{0} -> {1} crosses the failed link")]
    FailedLink(NodeId, NodeId),
    /// The packet came back to the repairing node.
    #[error("back at the repairing node {0}")]
    BackAtNode(NodeId),
    /// A node met the same label stack twice: forwarding loops.
    #[error("loop at {0}")]
    Loop(NodeId),
    /// A node has no entry for the top label.
    #[error("{node} has no entry for label {label}")]
    NoEntry {
        /// The node.
        node: NodeId,
        /// The label.
        label: u32,
    },
    /// The packet left the network somewhere other than its destination.
    #[error("delivered at {0}, not at the destination")]
    WrongEgress(NodeId),
}

impl<'a> PreFailure<'a> {
    /// The forwarding of epoch `epoch` over `topo` (before the failure)
    /// with the gateway trees `spts` (index = gid).
    pub fn new(topo: &'a Topology, spts: &'a [Spt], plan: &'a LabelPlan, epoch: u64) -> Self {
        Self {
            topo,
            spts,
            plan,
            epoch,
            router: Router::new(),
            hops: HashMap::new(),
        }
    }

    /// What node `at` does with a packet whose top label is `label`.
    pub fn step(&mut self, at: NodeId, label: u32) -> Result<Step, Fault> {
        let topo = self.topo;
        let block = LabelPlan::block_of(self.epoch);
        let no_entry = Fault::NoEntry { node: at, label };
        match self.plan.node_label(label) {
            Some(NodeLabel::Satellite { block: b, sat }) if b == block => {
                if at == sat {
                    return Ok(Step::Pop);
                }
                let router = &mut self.router;
                let hops = self.hops.entry(at).or_insert_with(|| {
                    let mut f = FirstHops::default();
                    router.first_hops_into(topo, at, &mut f);
                    f.hop
                });
                match hops.get(sat as usize) {
                    Some(&nh) if nh != NO_HOP => Ok(Step::Forward(nh)),
                    _ => Err(no_entry),
                }
            }
            Some(NodeLabel::Gateway { block: b, gid }) if b == block => {
                let spt = self.spts.get(gid as usize).ok_or(no_entry.clone())?;
                if at == spt.root {
                    return Ok(Step::Pop);
                }
                if topo.is_ground(at) {
                    // A gateway switches no other gateway's label.
                    return Err(no_entry);
                }
                match spt.next_hop.get(at as usize) {
                    Some(&nh) if nh != NO_HOP => Ok(Step::Forward(nh)),
                    _ => Err(no_entry),
                }
            }
            _ => Err(no_entry),
        }
    }

    /// Walks a packet of `node`'s entry toward `destination` (outgoing
    /// label `label`) repaired by `repair` while the link from `node` to
    /// `failed` is down; the nodes it visits from `node` to where it is
    /// delivered, or why it is not.
    pub fn walk(
        &mut self,
        node: NodeId,
        failed: NodeId,
        destination: Destination,
        label: u32,
        repair: &Repair,
    ) -> Result<Vec<NodeId>, Fault> {
        let down = link(node, failed);
        let mut stack: Vec<u32> = repair.push.as_slice().to_vec();
        stack.push(label);
        stack.reverse(); // top of stack last
        let mut path = vec![node];
        let mut seen = HashSet::new();
        let mut cur = node;
        let mut next = repair.next_hop;
        loop {
            if self.topo.link_length(cur, next).is_none() {
                return Err(Fault::NoLink(cur, next));
            }
            if link(cur, next) == down {
                return Err(Fault::FailedLink(cur, next));
            }
            if next == node {
                return Err(Fault::BackAtNode(node));
            }
            cur = next;
            path.push(cur);
            loop {
                let Some(&top) = stack.last() else {
                    return Err(Fault::WrongEgress(cur));
                };
                if !seen.insert((cur, stack.len())) {
                    return Err(Fault::Loop(cur));
                }
                match self.step(cur, top)? {
                    Step::Forward(nh) => {
                        next = nh;
                        break;
                    }
                    Step::Pop => {
                        stack.pop();
                        let egress = match destination {
                            Destination::Gateway(g) => self.topo.gs_node(g),
                            Destination::Satellite(s) => s,
                        };
                        if stack.is_empty() {
                            return if cur == egress {
                                Ok(path)
                            } else {
                                Err(Fault::WrongEgress(cur))
                            };
                        }
                        if self.topo.is_ground(cur) {
                            // A gateway's label ends the tunnel.
                            return Err(Fault::WrongEgress(cur));
                        }
                    }
                }
            }
        }
    }
}

/// True if any path from `node` reaches `destination` without the link
/// from `node` to `failed` (ground stations never relay): a plain
/// breadth-first search.
pub fn reachable_without(
    topo: &Topology,
    node: NodeId,
    failed: NodeId,
    destination: Destination,
) -> bool {
    let n = topo.n_sats();
    let down = link(node, failed);
    let mut seen = vec![false; n];
    let mut queue = VecDeque::new();
    if topo.is_ground(node) {
        if (node as usize) < topo.n_nodes() {
            let (sats, _) = topo.gsl_of(node as usize - n);
            for &s in sats {
                if link(s, node) != down && !seen[s as usize] {
                    seen[s as usize] = true;
                    queue.push_back(s);
                }
            }
        }
    } else if (node as usize) < n {
        seen[node as usize] = true;
        queue.push_back(node);
    }
    while let Some(u) = queue.pop_front() {
        let (nb, len) = topo.isl_neighbors(u as usize);
        for (&v, l) in nb.iter().zip(len) {
            if l.is_finite() && link(u, v) != down && !seen[v as usize] {
                seen[v as usize] = true;
                queue.push_back(v);
            }
        }
    }
    match destination {
        Destination::Satellite(s) => seen.get(s as usize).copied().unwrap_or(false),
        Destination::Gateway(g) => {
            if g as usize >= topo.n_gs() {
                return false;
            }
            let root = topo.gs_node(g);
            let (sats, _) = topo.gsl_of(g as usize);
            sats.iter()
                .any(|&s| seen[s as usize] && link(s, root) != down)
        }
    }
}
