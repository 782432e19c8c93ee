//! Precomputed local repair: what a node does with the traffic of one of
//! its links the moment that link fails, before any failure notice has
//! reached the other nodes.
//!
//! A node `N` computes, for each of its links `L = (N, M)` and each of its
//! current-epoch forwarding entries whose next hop is `M` (a gateway's FEC
//! entry or a satellite's LFIB swap toward an egress gateway, and the
//! satellites' node labels), a [`Repair`]: a neighbour to send to instead
//! of `M`, and labels to push on top of the entry's own outgoing label.
//!
//! * Loop-free alternate (LFA): a neighbour `Q` (over a link other than
//!   `L`) whose own shortest path to the destination avoids `N`, so it
//!   avoids `L` too; nothing is pushed. The cheapest such `Q` is preferred.
//! * Otherwise a TI-LFA-like repair: along the post-convergence path (the
//!   shortest path from `N` with `L` removed), `N` sends to that path's
//!   first hop `Q` and pushes the node labels of one or more release
//!   satellites `P1, P2, ...` on that path: each segment (from `Q` to `P1`
//!   under `P1`'s label, from `P1` to `P2`, ..., and from the last release
//!   point to the destination under the entry's own label) is forwarded by
//!   the other nodes as they forward today and avoids `N`. The release
//!   points are as far along the path as that allows, so the stack is
//!   short; at most [`MAX_PUSH`] labels.
//!
//! The invariant every repair keeps: *the other nodes forward by their
//! pre-failure tables*. A satellite's node label is switched by each node
//! along its own first hops toward that satellite over the pre-failure
//! topology ([`crate::routing::Router::first_hops_into`]); a gateway's
//! label along the pre-failure tree toward that gateway ([`Spt`]). A
//! segment is accepted only if *every* shortest path of the pre-failure
//! graph from its start to its end avoids `N` (by at least [`MARGIN_M`]):
//! whichever of equally short paths a node's own computation picks, and
//! whatever its rounding, the packet cannot come back to `N` and cannot
//! cross `L`. Gateway-label segments are checked exactly, by walking the
//! tree. [`check`] holds a plain reference walk of a repair through every
//! node's pre-failure forwarding.
//!
//! A gateway's repairs are always plain LFAs: ground stations never
//! relay, so no walk from another satellite in view can come back to it.
//!
//! Use by a node's agent: per install, [`Repairer::node_repairs`] with the
//! node's id, the epoch's topology and gateway trees, the label plan and
//! the epoch (the same inputs its tables came from). When the link toward
//! neighbour `M` goes down (its own BFD), every entry of
//! [`RepairTable::link`]`(M)` switches at once: a satellite's LFIB entry
//! for `label` keeps swapping to `label` and then pushes
//! [`Repair::push`] (outermost first) and sends to [`Repair::next_hop`];
//! a gateway's FEC entry pushes the same stack over its label. Nothing in
//! any other node changes.
//!
//! What a repair needs of the data plane: a release point pops its own
//! node label and forwards by the label below it (segment routing's
//! node-segment "continue"). The data plane's local pop accepts only a
//! bottom-of-stack label so far; repairs that push labels need that, plain
//! LFAs do not.
//!
//! Not covered: the failure of a satellite (its neighbours' repairs
//! protect each link separately, not the node), two failures at once,
//! the previous epoch's label block (its packets drain within
//! milliseconds), and a packet that met the failure elsewhere and reached
//! `N` already repaired. An entry with no repair is one of two kinds
//! ([`NoRepair`]): no path at all avoids `L`, or the path exists but no
//! stack of at most [`MAX_PUSH`] node labels steers today's forwarding
//! along it.

use crate::labels::{LabelError, LabelPlan};
use crate::routing::{link, FirstHops, Link, Router, Spt, NO_HOP};
use crate::topology::{NodeId, Topology};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

pub mod check;

/// Most labels a repair pushes above the entry's own label.
pub const MAX_PUSH: usize = 3;

/// How much shorter, in metres, a segment's shortest path must be than any
/// path through the repairing node: far above floating-point rounding
/// (micrometres over a constellation), far below any real difference of
/// two paths.
pub const MARGIN_M: f64 = 1e-3;

/// Labels a repair pushes, outermost first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LabelStack {
    len: u8,
    labels: [u32; MAX_PUSH],
}

impl LabelStack {
    /// The labels, outermost first.
    pub fn as_slice(&self) -> &[u32] {
        &self.labels[..self.len as usize]
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when nothing is pushed (a plain LFA).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `label` below the ones already there; false when full.
    fn push(&mut self, label: u32) -> bool {
        match self.labels.get_mut(self.len as usize) {
            Some(slot) => {
                *slot = label;
                self.len += 1;
                true
            }
            None => false,
        }
    }
}

/// Where an entry's traffic goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    /// Egress gateway `gid` (its label in the gateway block).
    Gateway(u32),
    /// Satellite node id (its label in the satellite block).
    Satellite(NodeId),
}

/// What to do with an entry's packets while its link is down: send to
/// `next_hop` (a neighbour over another link) with `push` on top of the
/// entry's own outgoing label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repair {
    /// The neighbour to send to (its port is [`crate::tables::port_name`]).
    pub next_hop: NodeId,
    /// Labels pushed above the entry's label, outermost first: node labels
    /// of release satellites. Empty for a plain LFA.
    pub push: LabelStack,
}

/// Why an entry has no repair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoRepair {
    /// No path from the node to the destination avoids the link.
    Unreachable,
    /// A path avoids the link, but no stack of at most [`MAX_PUSH`] node
    /// labels makes today's forwarding follow a way that avoids the node.
    NoStack,
}

/// One forwarding entry over a link, and its repair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtectedEntry {
    /// Where the entry's traffic goes.
    pub destination: Destination,
    /// The entry's outgoing label (the destination's node label of the
    /// epoch); a repair pushes its labels above it.
    pub label: u32,
    /// The repair, or why there is none.
    pub repair: Result<Repair, NoRepair>,
}

/// The repairs of one link of the node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkRepairs {
    /// The neighbour at the other end of the link.
    pub neighbor: NodeId,
    /// The entries whose next hop is `neighbor`: gateways by gid, then
    /// satellites by id.
    pub entries: Vec<ProtectedEntry>,
}

/// Counts over a [`RepairTable`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepairCounts {
    /// Entries protected (over all links).
    pub entries: usize,
    /// Repaired by a plain LFA (nothing pushed).
    pub lfa: usize,
    /// Repaired with a label stack.
    pub stacked: usize,
    /// No path avoids the link.
    pub unreachable: usize,
    /// A path exists but no short enough stack steers onto it.
    pub no_stack: usize,
}

/// One node's repairs for each of its links, for one table epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairTable {
    /// The node.
    pub node: NodeId,
    /// The table epoch whose labels the repairs use.
    pub epoch: u64,
    /// One per usable link of the node: its ISLs by neighbour id, then its
    /// GSLs by ground-station node id.
    pub links: Vec<LinkRepairs>,
}

impl RepairTable {
    /// The repairs of the link toward `neighbor`.
    pub fn link(&self, neighbor: NodeId) -> Option<&LinkRepairs> {
        self.links.iter().find(|l| l.neighbor == neighbor)
    }

    /// How many entries are repaired, and how.
    pub fn counts(&self) -> RepairCounts {
        let mut c = RepairCounts::default();
        for e in self.links.iter().flat_map(|l| &l.entries) {
            c.entries += 1;
            match e.repair {
                Ok(r) if r.push.is_empty() => c.lfa += 1,
                Ok(_) => c.stacked += 1,
                Err(NoRepair::Unreachable) => c.unreachable += 1,
                Err(NoRepair::NoStack) => c.no_stack += 1,
            }
        }
        c
    }
}

/// Errors computing repairs.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// The node is not in the topology.
    #[error("node {0} is not in the topology")]
    UnknownNode(NodeId),
    /// A destination has no label in the plan.
    #[error(transparent)]
    Label(#[from] LabelError),
}

/// Shortest ISL distances from one source (ground stations never relay).
#[derive(Clone, Debug, Default)]
struct Tree {
    /// Distance in metres, index = satellite; an upper bound beyond the
    /// search radius, `INFINITY` where not reached.
    dist: Vec<f64>,
    /// Predecessor on a shortest path (the source for its first hops).
    parent: Vec<NodeId>,
    /// The source's neighbour on that path.
    first: Vec<NodeId>,
}

/// From a ground station: for every satellite, the two shortest ISL paths
/// whose first satellites differ (a gateway's alternates, all links at
/// once).
#[derive(Clone, Debug, Default)]
struct TwoBest {
    /// Lengths, shortest first; `INFINITY` where there is none.
    dist: Vec<[f64; 2]>,
    /// First satellite of each ([`NO_HOP`] where there is none).
    first: Vec<[NodeId; 2]>,
}

impl TwoBest {
    /// The first satellite of the shortest path whose first hop is not
    /// `m`, if any.
    fn avoiding(&self, s: NodeId, m: NodeId) -> Option<NodeId> {
        let (d, h) = (self.dist.get(s as usize)?, self.first.get(s as usize)?);
        let k = usize::from(h[0] == m);
        (d[k].is_finite() && h[k] != m && h[k] != NO_HOP).then_some(h[k])
    }

    /// Offers satellite `v` a path of length `d` whose first satellite is
    /// `h`; the slots that changed.
    fn offer(&mut self, v: usize, d: f64, h: NodeId) -> [bool; 2] {
        let (dist, first) = (&mut self.dist[v], &mut self.first[v]);
        if h == first[0] {
            if d < dist[0] {
                dist[0] = d;
                return [true, false];
            }
            [false, false]
        } else if d < dist[0] {
            dist[1] = dist[0];
            first[1] = first[0];
            dist[0] = d;
            first[0] = h;
            [true, first[1] != NO_HOP]
        } else if d < dist[1] {
            dist[1] = d;
            first[1] = h;
            [false, true]
        } else {
            [false, false]
        }
    }
}

/// Dijkstra scratch space.
#[derive(Debug, Default)]
struct Search {
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    done: Vec<bool>,
    /// For [`Search::run_two`]: distance bits, satellite, slot.
    heap2: BinaryHeap<Reverse<(u64, u32, u8)>>,
    done2: Vec<[bool; 2]>,
}

impl Search {
    /// Grows `out` from `src` (a satellite, or a ground station through its
    /// GSLs) over the ISLs, never over `excluded`, settling every satellite
    /// within `radius` metres.
    fn run(
        &mut self,
        topo: &Topology,
        src: NodeId,
        excluded: Option<Link>,
        radius: f64,
        out: &mut Tree,
    ) {
        let n = topo.n_sats();
        out.dist.clear();
        out.dist.resize(n, f64::INFINITY);
        out.parent.clear();
        out.parent.resize(n, NO_HOP);
        out.first.clear();
        out.first.resize(n, NO_HOP);
        self.done.clear();
        self.done.resize(n, false);
        self.heap.clear();
        let blocked = |a: NodeId, b: NodeId| excluded == Some(link(a, b));
        if (src as usize) < n {
            out.dist[src as usize] = 0.0;
            out.parent[src as usize] = src;
            out.first[src as usize] = src;
            self.heap.push(Reverse((0f64.to_bits(), src)));
        } else if (src as usize) < topo.n_nodes() {
            let (sats, lens) = topo.gsl_of(src as usize - n);
            for (&s, &l) in sats.iter().zip(lens) {
                let i = s as usize;
                if i < n && !blocked(s, src) && l < out.dist[i] {
                    out.dist[i] = l;
                    out.parent[i] = src;
                    out.first[i] = s;
                    self.heap.push(Reverse((l.to_bits(), s)));
                }
            }
        }
        // Non-negative f64 order like their bit patterns.
        while let Some(Reverse((bits, u))) = self.heap.pop() {
            let (ui, du) = (u as usize, f64::from_bits(bits));
            if self.done[ui] || du > out.dist[ui] {
                continue;
            }
            if du > radius {
                break;
            }
            self.done[ui] = true;
            let via = if u == src { None } else { Some(out.first[ui]) };
            let (nb, len) = topo.isl_neighbors(ui);
            for (&v, &l) in nb.iter().zip(len) {
                let (vi, dv) = (v as usize, du + l);
                if dv < out.dist[vi] && !blocked(u, v) {
                    out.dist[vi] = dv;
                    out.parent[vi] = u;
                    out.first[vi] = via.unwrap_or(v);
                    self.heap.push(Reverse((dv.to_bits(), v)));
                }
            }
        }
    }
}

impl Search {
    /// Grows `out` from ground station node `src` through its GSLs over
    /// the ISLs: Dijkstra over two slots per satellite. The shortest path
    /// to `v` whose first hop differs from that of `v`'s shortest runs
    /// through a neighbour `u` along `u`'s shortest or, when that starts
    /// the same way, `u`'s second: both are settled before it.
    fn run_two(&mut self, topo: &Topology, src: NodeId, out: &mut TwoBest) {
        let n = topo.n_sats();
        out.dist.clear();
        out.dist.resize(n, [f64::INFINITY; 2]);
        out.first.clear();
        out.first.resize(n, [NO_HOP; 2]);
        self.done2.clear();
        self.done2.resize(n, [false; 2]);
        self.heap2.clear();
        if (src as usize) < n || src as usize >= topo.n_nodes() {
            return;
        }
        let (sats, lens) = topo.gsl_of(src as usize - n);
        for (&s, &l) in sats.iter().zip(lens) {
            if (s as usize) < n {
                offer_and_queue(&mut self.heap2, out, s, l, s);
            }
        }
        while let Some(Reverse((bits, u, k))) = self.heap2.pop() {
            let (ui, k) = (u as usize, usize::from(k).min(1));
            let du = f64::from_bits(bits);
            if self.done2[ui][k] || du != out.dist[ui][k] {
                continue;
            }
            self.done2[ui][k] = true;
            let h = out.first[ui][k];
            let (nb, len) = topo.isl_neighbors(ui);
            for (&v, &l) in nb.iter().zip(len) {
                if l.is_finite() {
                    offer_and_queue(&mut self.heap2, out, v, du + l, h);
                }
            }
        }
    }
}

/// [`TwoBest::offer`], queueing the slots that changed.
fn offer_and_queue(
    heap: &mut BinaryHeap<Reverse<(u64, u32, u8)>>,
    out: &mut TwoBest,
    v: u32,
    d: f64,
    h: NodeId,
) {
    let changed = out.offer(v as usize, d, h);
    for (k, c) in changed.into_iter().enumerate() {
        if c {
            heap.push(Reverse((out.dist[v as usize][k].to_bits(), v, k as u8)));
        }
    }
}

/// Computes nodes' repair tables; keeps its scratch space between calls.
#[derive(Debug, Default)]
pub struct Repairer {
    router: Router,
    /// The node's own first hops and pre-failure distances toward every
    /// satellite (what its tables switch the node labels by).
    own: FirstHops,
    search: Search,
    /// From the node without the link to `post_for`.
    post: Tree,
    post_for: Option<NodeId>,
    /// From the node, a gateway: two ways to each satellite.
    two: TwoBest,
    /// From the destination being repaired, up to its post-failure distance.
    to_dest: Tree,
    /// Full trees from neighbours and release points, by source.
    cached: HashMap<NodeId, usize>,
    pool: Vec<Tree>,
    used: usize,
    path: Vec<NodeId>,
}

/// The inputs of one node's computation.
struct Ctx<'a> {
    topo: &'a Topology,
    spts: &'a [Spt],
    plan: &'a LabelPlan,
    epoch: u64,
    node: NodeId,
}

impl Ctx<'_> {
    fn is_sat(&self, x: NodeId) -> bool {
        (x as usize) < self.topo.n_sats()
    }

    fn label(&self, d: Destination) -> Result<u32, LabelError> {
        match d {
            Destination::Gateway(g) => self.plan.label(self.epoch, g),
            Destination::Satellite(s) => self.plan.sat_label(self.epoch, s),
        }
    }

    /// True if the pre-failure walk from `x` along `spt` reaches its root
    /// without passing through the node (and reaches it at all).
    fn tree_walk_avoids_node(&self, spt: &Spt, x: NodeId) -> bool {
        let mut cur = x;
        for _ in 0..spt.next_hop.len() {
            if cur == self.node {
                return false;
            }
            if cur == spt.root {
                return true;
            }
            match spt.next_hop.get(cur as usize) {
                Some(&nh) if nh != NO_HOP => cur = nh,
                _ => return false,
            }
        }
        false
    }
}

/// One node's repair table: see the module documentation. `spts` are the
/// pre-failure trees toward every gateway (index = gid), `epoch` selects
/// the label blocks.
pub fn node_repairs(
    topo: &Topology,
    spts: &[Spt],
    plan: &LabelPlan,
    epoch: u64,
    node: NodeId,
) -> Result<RepairTable, RepairError> {
    Repairer::new().node_repairs(topo, spts, plan, epoch, node)
}

impl Repairer {
    /// A repairer with empty scratch space.
    pub fn new() -> Self {
        Self::default()
    }

    /// As [`node_repairs`], reusing this repairer's allocations.
    pub fn node_repairs(
        &mut self,
        topo: &Topology,
        spts: &[Spt],
        plan: &LabelPlan,
        epoch: u64,
        node: NodeId,
    ) -> Result<RepairTable, RepairError> {
        if node as usize >= topo.n_nodes() {
            return Err(RepairError::UnknownNode(node));
        }
        let ctx = Ctx {
            topo,
            spts,
            plan,
            epoch,
            node,
        };
        self.cached.clear();
        self.used = 0;
        self.router.first_hops_into(topo, node, &mut self.own);
        let n = topo.n_sats();
        // The node's links, ISLs then GSLs.
        let mut links: Vec<(NodeId, f64)> = Vec::new();
        if ctx.is_sat(node) {
            let (nb, len) = topo.isl_neighbors(node as usize);
            links.extend(
                nb.iter()
                    .zip(len)
                    .filter(|(_, l)| l.is_finite())
                    .map(|(&m, &l)| (m, l)),
            );
            links.sort_by_key(|&(m, _)| m);
            for gid in 0..topo.n_gs() {
                let (sats, lens) = topo.gsl_of(gid);
                if let Some(i) = sats.iter().position(|&s| s == node) {
                    links.push((topo.gs_node(gid as u32), lens[i]));
                }
            }
            for &(q, _) in &links {
                if ctx.is_sat(q) {
                    self.tree_from(topo, q);
                }
            }
        } else {
            let (sats, lens) = topo.gsl_of(node as usize - n);
            links.extend(sats.iter().copied().zip(lens.iter().copied()));
            links.sort_by_key(|&(m, _)| m);
            self.search.run_two(topo, node, &mut self.two);
        }
        let mut table = RepairTable {
            node,
            epoch,
            links: Vec::with_capacity(links.len()),
        };
        for &(m, _) in &links {
            let mut affected = Vec::new();
            for (gid, spt) in spts.iter().enumerate() {
                if spt.root != NO_HOP
                    && spt.root != node
                    && spt.next_hop.get(node as usize) == Some(&m)
                {
                    affected.push(Destination::Gateway(gid as u32));
                }
            }
            for (s, &h) in self.own.hop.iter().enumerate().take(n) {
                if h == m && s as NodeId != node {
                    affected.push(Destination::Satellite(s as NodeId));
                }
            }
            let mut entries = Vec::with_capacity(affected.len());
            // The post-convergence tree, grown when an entry first needs it.
            self.post_for = None;
            for d in affected {
                let repair = if ctx.is_sat(node) {
                    self.at_satellite(&ctx, &links, m, d)
                } else {
                    self.at_gateway(&ctx, &links, m, d)
                };
                entries.push(ProtectedEntry {
                    destination: d,
                    label: ctx.label(d)?,
                    repair: repair?,
                });
            }
            table.links.push(LinkRepairs {
                neighbor: m,
                entries,
            });
        }
        Ok(table)
    }

    /// Grows `post`, the tree from the node without its link to `m`,
    /// unless it is grown already.
    fn post_without(&mut self, ctx: &Ctx, m: NodeId) {
        if self.post_for == Some(m) {
            return;
        }
        // From a satellite, a GSL carries no path to anything but its
        // gateway: the ISL tree is the pre-failure one.
        let excluded = (ctx.is_sat(m) || !ctx.is_sat(ctx.node)).then(|| link(ctx.node, m));
        self.search
            .run(ctx.topo, ctx.node, excluded, f64::INFINITY, &mut self.post);
        self.post_for = Some(m);
    }

    /// The index in `pool` of a full tree from satellite `src`.
    fn tree_from(&mut self, topo: &Topology, src: NodeId) -> usize {
        if let Some(&i) = self.cached.get(&src) {
            return i;
        }
        let i = self.used;
        if i == self.pool.len() {
            self.pool.push(Tree::default());
        }
        self.used += 1;
        self.search
            .run(topo, src, None, f64::INFINITY, &mut self.pool[i]);
        self.cached.insert(src, i);
        i
    }

    /// A gateway's repair: ground stations never relay, so no walk from a
    /// satellite comes back through it, and the best other satellite in
    /// view is a loop-free alternate.
    fn at_gateway(
        &mut self,
        ctx: &Ctx,
        links: &[(NodeId, f64)],
        m: NodeId,
        d: Destination,
    ) -> Result<Result<Repair, NoRepair>, LabelError> {
        let q = match d {
            Destination::Gateway(g) => {
                let Some(spt) = ctx.spts.get(g as usize) else {
                    return Ok(Err(NoRepair::Unreachable));
                };
                best_of(links.iter().filter(|&&(q, _)| q != m).map(|&(q, l)| {
                    let dq = spt.dist.get(q as usize).copied().unwrap_or(f64::INFINITY);
                    (q, l + dq)
                }))
            }
            Destination::Satellite(s) => self.two.avoiding(s, m),
        };
        Ok(match q {
            Some(q) => Ok(Repair {
                next_hop: q,
                push: LabelStack::default(),
            }),
            None => Err(NoRepair::Unreachable),
        })
    }

    /// A satellite's repair: an LFA if a neighbour has one, else a label
    /// stack along the post-convergence path.
    fn at_satellite(
        &mut self,
        ctx: &Ctx,
        links: &[(NodeId, f64)],
        m: NodeId,
        d: Destination,
    ) -> Result<Result<Repair, NoRepair>, LabelError> {
        if let Some(q) = self.lfa(ctx, links, m, d) {
            return Ok(Ok(Repair {
                next_hop: q,
                push: LabelStack::default(),
            }));
        }
        // The post-convergence path, into `self.path`.
        self.post_without(ctx, m);
        self.path.clear();
        let end = match d {
            Destination::Satellite(s) => {
                if !self
                    .post
                    .dist
                    .get(s as usize)
                    .is_some_and(|x| x.is_finite())
                {
                    return Ok(Err(NoRepair::Unreachable));
                }
                s
            }
            Destination::Gateway(g) => {
                if g as usize >= ctx.topo.n_gs() {
                    return Ok(Err(NoRepair::Unreachable));
                }
                let root = ctx.topo.gs_node(g);
                let (sats, lens) = ctx.topo.gsl_of(g as usize);
                let best = best_of(
                    sats.iter()
                        .zip(lens)
                        .filter(|&(&s, _)| !(s == ctx.node && m == root))
                        .map(|(&s, &l)| (s, self.post.dist[s as usize] + l)),
                );
                let Some(s) = best else {
                    return Ok(Err(NoRepair::Unreachable));
                };
                self.path.push(root);
                s
            }
        };
        let mut cur = end;
        while cur != ctx.node {
            self.path.push(cur);
            cur = self.post.parent[cur as usize];
            if cur == NO_HOP || self.path.len() > ctx.topo.n_nodes() {
                return Ok(Err(NoRepair::Unreachable));
            }
        }
        self.path.push(ctx.node);
        self.path.reverse();
        let Some(&q) = self.path.get(1) else {
            return Ok(Err(NoRepair::Unreachable));
        };
        if !ctx.is_sat(q) {
            // Straight to the destination gateway (an LFA would have found it).
            return Ok(Ok(Repair {
                next_hop: q,
                push: LabelStack::default(),
            }));
        }
        if let Destination::Satellite(s) = d {
            let radius = self.post.dist[s as usize] + MARGIN_M;
            self.search
                .run(ctx.topo, s, None, radius, &mut self.to_dest);
        }
        // Release points: the last satellite before the destination.
        // (the path ends at the destination; for a gateway, after the
        // satellite that delivers to it).
        let last = self.path.len() - 2;
        let mut push = LabelStack::default();
        let mut at = 1;
        loop {
            let c = self.path[at];
            if self.final_segment_safe(ctx, c, d) {
                return Ok(Ok(Repair { next_hop: q, push }));
            }
            if push.len() == MAX_PUSH {
                return Ok(Err(NoRepair::NoStack));
            }
            let tc = self.tree_from(ctx.topo, c);
            let mut furthest = None;
            for j in (at + 1..=last).rev() {
                let p = self.path[j];
                let dcp = self.pool[tc].dist[p as usize];
                let through = self.own.dist[c as usize] + self.own.dist[p as usize];
                let avoids_node = dcp.is_finite() && dcp + MARGIN_M < through;
                if !avoids_node {
                    continue;
                }
                if furthest.is_none() {
                    furthest = Some(j);
                }
                if self.final_segment_safe(ctx, p, d) {
                    push.push(ctx.plan.sat_label(ctx.epoch, p)?);
                    return Ok(Ok(Repair { next_hop: q, push }));
                }
            }
            match furthest {
                Some(j) if push.len() + 1 < MAX_PUSH => {
                    push.push(ctx.plan.sat_label(ctx.epoch, self.path[j])?);
                    at = j;
                }
                _ => return Ok(Err(NoRepair::NoStack)),
            }
        }
    }

    /// The cheapest neighbour, over a link other than the one to `m`,
    /// whose pre-failure forwarding toward `d` avoids the node.
    fn lfa(&self, ctx: &Ctx, links: &[(NodeId, f64)], m: NodeId, d: Destination) -> Option<NodeId> {
        let candidates = links
            .iter()
            .filter(|&&(q, _)| q != m)
            .filter_map(|&(q, l)| {
                let dq = match d {
                    Destination::Gateway(g) => {
                        let spt = ctx.spts.get(g as usize)?;
                        if q == spt.root {
                            0.0
                        } else if !ctx.is_sat(q) || !ctx.tree_walk_avoids_node(spt, q) {
                            return None;
                        } else {
                            *spt.dist.get(q as usize)?
                        }
                    }
                    Destination::Satellite(s) => {
                        if !ctx.is_sat(q) {
                            return None;
                        }
                        let t = &self.pool[*self.cached.get(&q)?];
                        let dq = t.dist[s as usize];
                        let through = self.own.dist[q as usize] + self.own.dist[s as usize];
                        let avoids_node = dq + MARGIN_M < through;
                        avoids_node.then_some(dq)?
                    }
                };
                Some((q, l + dq))
            });
        best_of(candidates)
    }

    /// True if the pre-failure forwarding of `d`'s own label from
    /// satellite `c` reaches `d` without passing through the node.
    fn final_segment_safe(&self, ctx: &Ctx, c: NodeId, d: Destination) -> bool {
        match d {
            Destination::Gateway(g) => ctx
                .spts
                .get(g as usize)
                .is_some_and(|spt| ctx.tree_walk_avoids_node(spt, c)),
            Destination::Satellite(s) => {
                if c == s {
                    return true;
                }
                let dcs = self.to_dest.dist[c as usize];
                dcs.is_finite()
                    && dcs + MARGIN_M < self.own.dist[c as usize] + self.own.dist[s as usize]
            }
        }
    }
}

/// The candidate with the least finite cost (the lowest id on a tie).
fn best_of(candidates: impl Iterator<Item = (NodeId, f64)>) -> Option<NodeId> {
    candidates
        .filter(|(_, c)| c.is_finite())
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
        .map(|(q, _)| q)
}

#[cfg(test)]
mod tests {
    use super::check::{reachable_without, PreFailure};
    use super::*;
    use crate::constellation::{Constellation, Preset, WalkerParams};
    use crate::ground::GroundStations;
    use crate::routing::Router;
    use crate::tables::{compile, default_gateway_prefix, sat_label_lfib, SatHops, TableSet};
    use crate::topology::{Failures, GslRule, Network};
    use crate::Engine;
    use proptest::prelude::*;

    /// Satellites `0..pos.len()` at `pos` joined by `isls`, and `stations`.
    fn hand_built(
        pos: Vec<[f64; 3]>,
        isls: &[(u32, u32)],
        stations: &str,
        range_m: f64,
        failures: &Failures,
    ) -> Topology {
        // Only the number of element sets matters: positions are given.
        let params = WalkerParams {
            planes: 3,
            sats_per_plane: pos.len().div_ceil(3).max(3),
            ..Preset::Telesat1015.params()
        };
        let mut c = Constellation::walker(&params).expect("walker");
        c.tles.truncate(pos.len());
        c.grid = None;
        c.isls = isls.to_vec();
        let g = if stations.is_empty() {
            GroundStations::default()
        } else {
            GroundStations::parse_csv(stations).expect("stations")
        };
        Network::with_rule(&c, &g, GslRule::MaxRange(range_m)).at(0.0, pos, failures)
    }

    fn trees(topo: &Topology) -> Vec<Spt> {
        let mut r = Router::new();
        (0..topo.n_gs() as u32).map(|g| r.spt(topo, g)).collect()
    }

    /// Every node's gateway tables of `epoch`.
    fn tables(topo: &Topology, spts: &[Spt], plan: &LabelPlan, epoch: u64) -> TableSet {
        let none = Failures::new();
        compile(
            topo,
            spts,
            epoch,
            plan,
            &default_gateway_prefix,
            None,
            &none,
        )
        .expect("tables")
    }

    /// What a user checks of a node's table: it protects every one of the
    /// node's entries over each link, every repair arrives (walked
    /// through the other nodes' pre-failure forwarding) and every entry
    /// without one is unreachable or, for `NoStack`, at least reachable.
    fn verify(
        topo: &Topology,
        tabs: &TableSet,
        plan: &LabelPlan,
        fwd: &mut PreFailure,
        table: &RepairTable,
    ) -> Result<(), String> {
        let node = table.node;
        // Every entry of the node's own tables with another node as next
        // hop, by next hop.
        let own = tabs.node(node).ok_or("no tables")?;
        if tabs.epoch != table.epoch {
            return Err(format!(
                "tables of epoch {}, repairs of {}",
                tabs.epoch, table.epoch
            ));
        }
        let hops = SatHops {
            node,
            epoch: table.epoch,
            hops: crate::routing::first_hops(topo, node),
        };
        let sat = sat_label_lfib(plan, topo.n_sats(), &hops, None, &Failures::new())
            .map_err(|e| e.to_string())?;
        let mut expected: Vec<(NodeId, u32)> = own
            .fec
            .iter()
            .map(|f| (f.next_hop, f.label))
            .chain(
                own.lfib
                    .iter()
                    .chain(&sat)
                    .filter(|r| r.next_hop != node)
                    .map(|r| (r.next_hop, r.label)),
            )
            .collect();
        let mut got: Vec<(NodeId, u32)> = table
            .links
            .iter()
            .flat_map(|l| l.entries.iter().map(|e| (l.neighbor, e.label)))
            .collect();
        expected.sort_unstable();
        got.sort_unstable();
        if expected != got {
            return Err(format!(
                "{node}: protects {got:?}, its entries are {expected:?}"
            ));
        }
        for l in &table.links {
            if topo.link_length(node, l.neighbor).is_none() {
                return Err(format!("{node}: no link to {}", l.neighbor));
            }
            for e in &l.entries {
                let reachable = || reachable_without(topo, node, l.neighbor, e.destination);
                match e.repair {
                    Ok(r) => {
                        fwd.walk(node, l.neighbor, e.destination, e.label, &r)
                            .map_err(|f| format!("{node} -/- {}: {e:?}: {f}", l.neighbor))?;
                    }
                    Err(NoRepair::Unreachable) if reachable() => {
                        return Err(format!("{node} -/- {}: {e:?} is reachable", l.neighbor));
                    }
                    Err(NoRepair::NoStack) if !reachable() => {
                        return Err(format!("{node} -/- {}: {e:?} is unreachable", l.neighbor));
                    }
                    Err(_) => {}
                }
            }
        }
        Ok(())
    }

    /// A ring of five satellites (0-1-2-3-4-0, equal links) and one
    /// gateway (node 5) in view of satellite 0 only.
    fn ring() -> Topology {
        let pos = (0..5)
            .map(|k| {
                let a = f64::from(k) * 72f64.to_radians();
                [1e8 * a.cos(), 1e8 * a.sin(), 0.0]
            })
            .collect();
        let isls = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)];
        hand_built(pos, &isls, "0,gw,0,0,0\n", 9.6e7, &Failures::new())
    }

    #[test]
    fn on_a_ring_repairs_are_lfas_release_points_or_none() {
        let topo = ring();
        assert_eq!((topo.n_sats(), topo.n_gs()), (5, 1));
        assert_eq!(topo.gsl_of(0).0, &[0]);
        let spts = trees(&topo);
        let plan = LabelPlan::default();
        let (e, gw) = (3, 5);
        let sat = |s| plan.sat_label(e, s).expect("label");
        let gw_label = plan.label(e, 0).expect("label");
        let lfa = |q| {
            Ok(Repair {
                next_hop: q,
                push: LabelStack::default(),
            })
        };
        let via = |q, p: &[u32]| {
            let mut push = LabelStack::default();
            for &l in p {
                assert!(push.push(l));
            }
            Ok(Repair { next_hop: q, push })
        };
        let t0 = node_repairs(&topo, &spts, &plan, e, 0).expect("repairs");
        let neighbors: Vec<_> = t0.links.iter().map(|l| l.neighbor).collect();
        assert_eq!(neighbors, [1, 4, gw]);
        // 0 -/- 1: satellite 2 through 4 and 3 (4's way to 2 avoids 0),
        // satellite 1 only by pushing 2's label (4's way to 1 is over 0).
        let l1: Vec<_> = t0.links[0]
            .entries
            .iter()
            .map(|x| (x.destination, x.label, x.repair))
            .collect();
        assert_eq!(
            l1,
            [
                (Destination::Satellite(1), sat(1), via(4, &[sat(2)])),
                (Destination::Satellite(2), sat(2), lfa(4)),
            ]
        );
        // 0 -/- gateway: no other satellite sees it.
        let lg = t0.link(gw).expect("gsl");
        assert_eq!(lg.entries.len(), 1);
        assert_eq!(lg.entries[0].label, gw_label);
        assert_eq!(lg.entries[0].repair, Err(NoRepair::Unreachable));
        // 1 -/- 0: toward the gateway by 4's label (2's own way is over 1).
        let t1 = node_repairs(&topo, &spts, &plan, e, 1).expect("repairs");
        let l0 = t1.link(0).expect("isl");
        assert_eq!(l0.entries[0].destination, Destination::Gateway(0));
        assert_eq!(l0.entries[0].repair, via(2, &[sat(4)]));
        // The gateway's only link: nothing else to send to.
        let tg = node_repairs(&topo, &spts, &plan, e, gw).expect("repairs");
        let c = tg.counts();
        assert_eq!((c.entries, c.unreachable), (5, 5));
        // All checked by walking them.
        let mut fwd = PreFailure::new(&topo, &spts, &plan, e);
        let tabs = tables(&topo, &spts, &plan, e);
        for node in 0..6 {
            let t = node_repairs(&topo, &spts, &plan, e, node).expect("repairs");
            verify(&topo, &tabs, &plan, &mut fwd, &t).unwrap_or_else(|m| panic!("{m}"));
        }
        assert!(matches!(
            node_repairs(&topo, &spts, &plan, e, 6),
            Err(RepairError::UnknownNode(6))
        ));
    }

    #[test]
    fn a_gateway_with_no_satellite_in_view_has_no_links_to_repair() {
        // Station 1 at the antipode of the ring's plane normal sees nothing.
        let pos = (0..3)
            .map(|k| {
                let a = f64::from(k) * 120f64.to_radians();
                [1e8 * a.cos(), 1e8 * a.sin(), 0.0]
            })
            .collect();
        let topo = hand_built(
            pos,
            &[(0, 1), (1, 2), (2, 0)],
            "0,a,0,0,0\n1,b,0,180,0\n",
            9.5e7,
            &Failures::new(),
        );
        let spts = trees(&topo);
        let plan = LabelPlan::default();
        let lonely = topo.gs_node(1);
        assert!(topo.gsl_of(1).0.is_empty());
        let t = node_repairs(&topo, &spts, &plan, 0, lonely).expect("repairs");
        assert!(t.links.is_empty());
        let mut fwd = PreFailure::new(&topo, &spts, &plan, 0);
        let tabs = tables(&topo, &spts, &plan, 0);
        for node in 0..topo.n_nodes() as NodeId {
            let t = node_repairs(&topo, &spts, &plan, 0, node).expect("repairs");
            verify(&topo, &tabs, &plan, &mut fwd, &t).unwrap_or_else(|m| panic!("{m}"));
        }
    }

    /// A `w` x `h` grid of satellites 1000 km apart, ISLs between grid
    /// neighbours: equal paths tie exactly, the hard case for "which of
    /// the shortest paths does a node take". Two gateways, near the north
    /// pole under the grid's corner, see the satellites within about
    /// 1700 km of it.
    fn grid(w: usize, h: usize, failures: &Failures) -> Topology {
        let id = |i: usize, j: usize| (i * h + j) as u32;
        let mut isls = Vec::new();
        for i in 0..w {
            for j in 0..h {
                if i + 1 < w {
                    isls.push((id(i, j), id(i + 1, j)));
                }
                if j + 1 < h {
                    isls.push((id(i, j), id(i, j + 1)));
                }
            }
        }
        let pos = (0..w * h)
            .map(|k| [(k / h) as f64 * 1e6, (k % h) as f64 * 1e6, 1e8])
            .collect();
        let stations = "0,a,90,0,0\n1,b,89.99,0,0\n";
        // 1e8 m above the pole, less the polar radius, plus 15 km.
        hand_built(pos, &isls, stations, 1e8 - 6_356_750.0 + 15_000.0, failures)
    }

    /// A `w` x `h` grid with the ISLs `down` names failed: each `(a, k)`
    /// is satellite `a` (modulo the grid) and its `k`-th neighbour.
    fn grid_with_failures(w: usize, h: usize, down: &[(u32, usize)]) -> Topology {
        let n = (w * h) as u32;
        let full = grid(w, h, &Failures::new());
        let mut failures = Failures::new();
        for &(a, k) in down {
            let (nb, _) = full.isl_neighbors((a % n) as usize);
            if let Some(&b) = nb.get(k % nb.len().max(1)) {
                failures.fail_isl(a % n, b);
            }
        }
        grid(w, h, &failures)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn on_grids_with_failures_every_repair_arrives_over_the_pre_failure_forwarding(
            w in 2usize..7,
            h in 2usize..7,
            down in prop::collection::vec((0u32..64, 0usize..4), 0..10),
        ) {
            let topo = grid_with_failures(w, h, &down);
            prop_assert!(!topo.gsl_of(0).0.is_empty());
            let spts = trees(&topo);
            let plan = LabelPlan::default();
            let mut fwd = PreFailure::new(&topo, &spts, &plan, 1);
            let tabs = tables(&topo, &spts, &plan, 1);
            let mut r = Repairer::new();
            for node in 0..topo.n_nodes() as NodeId {
                let t = r
                    .node_repairs(&topo, &spts, &plan, 1, node)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                verify(&topo, &tabs, &plan, &mut fwd, &t).map_err(TestCaseError::fail)?;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn a_gateways_two_ways_are_the_shortest_without_each_link(
            w in 2usize..7,
            h in 2usize..7,
            down in prop::collection::vec((0u32..64, 0usize..4), 0..10),
        ) {
            let n = (w * h) as u32;
            let topo = grid_with_failures(w, h, &down);
            let mut search = Search::default();
            let (mut two, mut post) = (TwoBest::default(), Tree::default());
            for gid in 0..topo.n_gs() as u32 {
                let gw = topo.gs_node(gid);
                search.run_two(&topo, gw, &mut two);
                for &m in topo.gsl_of(gid as usize).0 {
                    search.run(&topo, gw, Some(link(gw, m)), f64::INFINITY, &mut post);
                    for s in 0..n {
                        let want = post.dist[s as usize];
                        match two.avoiding(s, m) {
                            None => prop_assert!(want.is_infinite(), "{gw} -/- {m} to {s}"),
                            Some(q) => {
                                let k = usize::from(two.first[s as usize][0] != q);
                                prop_assert_eq!(two.first[s as usize][k], q);
                                let got = two.dist[s as usize][k];
                                prop_assert!((got - want).abs() < 1e-6, "{gw} -/- {m} to {s}: {got} vs {want}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// Starlink-550 and the top-100 cities at t = 0: every node, every
    /// link, every entry over it, walked through the pre-failure
    /// forwarding.
    #[test]
    fn starlink_every_repair_of_every_link_arrives_without_it() {
        let mut engine = Engine::new(
            Constellation::preset(Preset::Starlink550),
            GroundStations::top100(),
        )
        .expect("engine");
        let topo = engine.topology(0.0, &Failures::new()).expect("topology");
        let spts = engine.trees(&topo);
        let plan = *engine.label_plan();
        let mut fwd = PreFailure::new(&topo, &spts, &plan, 0);
        let tabs = tables(&topo, &spts, &plan, 0);
        let mut r = Repairer::new();
        let mut total = RepairCounts::default();
        let mut nodes = 0;
        let started = std::time::Instant::now();
        let mut in_repairs = std::time::Duration::ZERO;
        let mut depth = [0usize; MAX_PUSH + 1];
        for node in 0..topo.n_nodes() as NodeId {
            let t0 = std::time::Instant::now();
            let t = r
                .node_repairs(&topo, &spts, &plan, 0, node)
                .expect("repairs");
            in_repairs += t0.elapsed();
            verify(&topo, &tabs, &plan, &mut fwd, &t).unwrap_or_else(|m| panic!("{m}"));
            let c = t.counts();
            for e in t.links.iter().flat_map(|l| &l.entries) {
                if let Ok(r) = e.repair {
                    depth[r.push.len()] += 1;
                }
            }
            total.entries += c.entries;
            total.lfa += c.lfa;
            total.stacked += c.stacked;
            total.unreachable += c.unreachable;
            total.no_stack += c.no_stack;
            nodes += 1;
        }
        eprintln!(
            "{nodes} nodes in {:?} ({in_repairs:?} computing repairs): {total:?}, \
             repairs by labels pushed {depth:?}",
            started.elapsed()
        );
        assert_eq!(nodes, 1684);
        assert!(total.entries > 2_000_000, "{total:?}");
        assert!(total.stacked > 0, "{total:?}");
        assert_eq!(total.no_stack, 0, "{total:?}");
        // Every gateway sees two satellites or more, so every entry has a
        // way around any one link (`verify` checked each `Unreachable`).
        assert!((0..topo.n_gs()).all(|g| topo.gsl_of(g).0.len() >= 2));
        assert_eq!(total.unreachable, 0, "{total:?}");
    }
}
