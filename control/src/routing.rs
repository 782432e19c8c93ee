//! Shortest paths by propagation distance. Ground stations are endpoints
//! only: a path is `gs - sat - ... - sat - gs`, never relayed through a
//! third ground station (Hypatia's `free_one_only_over_isls`).

use crate::topology::{NodeId, Topology};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

/// Speed of light in vacuum, m/s.
pub const SPEED_OF_LIGHT_M_S: f64 = 299_792_458.0;

/// "No next hop" marker in [`Spt::next_hop`].
pub const NO_HOP: NodeId = NodeId::MAX;

/// A link between two nodes, stored as `(min, max)`.
pub type Link = (NodeId, NodeId);

/// Normalises a link so that `(a, b)` and `(b, a)` compare equal.
pub fn link(a: NodeId, b: NodeId) -> Link {
    (a.min(b), a.max(b))
}

/// The shortest-path tree toward one egress gateway: for every node, the
/// distance to the gateway and the next hop on a shortest path.
#[derive(Clone, Debug, Default)]
pub struct Spt {
    /// The egress gateway's gid.
    pub gid: u32,
    /// The gateway's node id.
    pub root: NodeId,
    /// Distance in metres to the gateway, `INFINITY` if unreachable; index = node id.
    pub dist: Vec<f64>,
    /// Next hop toward the gateway, [`NO_HOP`] if unreachable; the gateway's
    /// own entry is itself.
    pub next_hop: Vec<NodeId>,
}

impl Spt {
    /// The path from `node` to the gateway, if it is reachable.
    pub fn path_from(&self, node: NodeId) -> Option<Path> {
        let len = *self.dist.get(node as usize)?;
        if !len.is_finite() {
            return None;
        }
        let mut nodes = vec![node];
        let mut cur = node;
        while cur != self.root {
            cur = *self.next_hop.get(cur as usize)?;
            if cur == NO_HOP || nodes.len() > self.next_hop.len() {
                return None;
            }
            nodes.push(cur);
        }
        Some(Path {
            nodes,
            length_m: len,
        })
    }
}

/// A path through the network.
#[derive(Clone, Debug, PartialEq)]
pub struct Path {
    /// Node ids from source to destination.
    pub nodes: Vec<NodeId>,
    /// Total length in metres.
    pub length_m: f64,
}

impl Path {
    /// Number of links.
    pub fn hops(&self) -> usize {
        self.nodes.len().saturating_sub(1)
    }

    /// One-way propagation delay in milliseconds.
    pub fn one_way_ms(&self) -> f64 {
        self.length_m / SPEED_OF_LIGHT_M_S * 1e3
    }

    /// Round-trip time in milliseconds (`2 * length / c`).
    pub fn rtt_ms(&self) -> f64 {
        2.0 * self.one_way_ms()
    }

    /// The links of the path, normalised.
    pub fn links(&self) -> impl Iterator<Item = Link> + '_ {
        self.nodes.windows(2).map(|w| link(w[0], w[1]))
    }
}

/// Reusable shortest-path state (allocations are kept between runs).
///
/// Trees are grown with a bucket queue whose bucket width is the shortest
/// edge that can be relaxed (the shortest usable ISL or the root's shortest
/// GSL): no node can improve another node of its own bucket, so each bucket
/// is final once reached and the result is exactly Dijkstra's, in O(edges +
/// buckets) without a heap. Degenerate geometry (an edge under 1 km) falls
/// back to a binary heap.
#[derive(Debug, Default)]
pub struct Router {
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    buckets: Vec<Vec<u32>>,
    settled: Vec<bool>,
}

/// Narrowest bucket the bucket queue accepts, in metres.
const MIN_BUCKET_M: f64 = 1_000.0;
/// Most buckets the bucket queue may use before falling back to the heap.
const MAX_BUCKETS: usize = 1 << 16;

impl Router {
    /// A router with empty scratch space.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shortest-path tree toward ground station `gid`.
    pub fn spt(&mut self, topo: &Topology, gid: u32) -> Spt {
        let mut out = Spt::default();
        self.spt_into(topo, gid, None, &mut out);
        out
    }

    /// Computes the tree toward `gid` into `out` (reusing its buffers),
    /// ignoring the links in `excluded`.
    pub fn spt_into(
        &mut self,
        topo: &Topology,
        gid: u32,
        excluded: Option<&HashSet<Link>>,
        out: &mut Spt,
    ) {
        let n = topo.n_sats();
        let total = topo.n_nodes();
        out.gid = gid;
        out.root = NO_HOP;
        out.dist.clear();
        out.dist.resize(total, f64::INFINITY);
        out.next_hop.clear();
        out.next_hop.resize(total, NO_HOP);
        if gid as usize >= topo.n_gs() {
            return;
        }
        let root = topo.gs_node(gid);
        out.root = root;
        out.dist[root as usize] = 0.0;
        out.next_hop[root as usize] = root;
        let dist = &mut out.dist;
        let next = &mut out.next_hop;
        let (sats, lens) = topo.gsl_of(gid as usize);
        let root_min = lens.iter().copied().fold(f64::INFINITY, f64::min);
        let delta = topo.min_isl_m().min(root_min);
        let bucketed = delta >= MIN_BUCKET_M
            && self.grow_buckets(topo, gid, root, delta, excluded, dist, next);
        if !bucketed {
            for (d, h) in dist.iter_mut().zip(next.iter_mut()).take(n) {
                *d = f64::INFINITY;
                *h = NO_HOP;
            }
            self.grow_heap(topo, root, sats, lens, excluded, dist, next);
        }
        // Other ground stations are leaves: best satellite in view.
        for g in 0..topo.n_gs() {
            if g == gid as usize {
                continue;
            }
            let node = n + g;
            let (sats, lens) = topo.gsl_of(g);
            let mut best = f64::INFINITY;
            let mut hop = NO_HOP;
            for (&s, &l) in sats.iter().zip(lens) {
                let d = l + dist[s as usize];
                if d < best {
                    if excluded.is_some_and(|x| x.contains(&link(s, node as NodeId))) {
                        continue;
                    }
                    best = d;
                    hop = s;
                }
            }
            dist[node] = best;
            next[node] = hop;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn grow_heap(
        &mut self,
        topo: &Topology,
        root: NodeId,
        sats: &[u32],
        lens: &[f64],
        excluded: Option<&HashSet<Link>>,
        dist: &mut [f64],
        next: &mut [NodeId],
    ) {
        let heap = &mut self.heap;
        heap.clear();
        for (&s, &l) in sats.iter().zip(lens) {
            if excluded.is_some_and(|x| x.contains(&link(s, root))) {
                continue;
            }
            if l < dist[s as usize] {
                dist[s as usize] = l;
                next[s as usize] = root;
                heap.push(Reverse((l.to_bits(), s)));
            }
        }
        // Non-negative f64 order like their bit patterns.
        while let Some(Reverse((bits, u))) = heap.pop() {
            let du = f64::from_bits(bits);
            if du > dist[u as usize] {
                continue;
            }
            let (nb, len) = topo.isl_neighbors(u as usize);
            for (&v, &l) in nb.iter().zip(len) {
                let dv = du + l;
                if dv < dist[v as usize] {
                    if excluded.is_some_and(|x| x.contains(&link(u, v))) {
                        continue;
                    }
                    dist[v as usize] = dv;
                    next[v as usize] = u;
                    heap.push(Reverse((dv.to_bits(), v)));
                }
            }
        }
    }

    /// Bucket-queue growth; false if it needed too many buckets (the caller
    /// then resets the satellites and uses the heap).
    #[allow(clippy::too_many_arguments)]
    fn grow_buckets(
        &mut self,
        topo: &Topology,
        gid: u32,
        root: NodeId,
        delta: f64,
        excluded: Option<&HashSet<Link>>,
        dist: &mut [f64],
        next: &mut [NodeId],
    ) -> bool {
        let n = topo.n_sats();
        let inv = 1.0 / delta;
        self.settled.clear();
        self.settled.resize(n, false);
        let buckets = &mut self.buckets;
        let mut top = 0usize;
        fn push(buckets: &mut Vec<Vec<u32>>, top: &mut usize, i: usize, v: u32) -> bool {
            if i >= MAX_BUCKETS {
                return false;
            }
            if i >= buckets.len() {
                buckets.resize_with(i + 1, Vec::new);
            }
            buckets[i].push(v);
            *top = (*top).max(i);
            true
        }
        let (sats, lens) = topo.gsl_of(gid as usize);
        let mut ok = true;
        for (&s, &l) in sats.iter().zip(lens) {
            if excluded.is_some_and(|x| x.contains(&link(s, root))) {
                continue;
            }
            if l < dist[s as usize] {
                dist[s as usize] = l;
                next[s as usize] = root;
                ok &= push(buckets, &mut top, (l * inv) as usize, s);
            }
        }
        let mut cur = 0;
        while ok && cur <= top && cur < buckets.len() {
            while let Some(u) = buckets[cur].pop() {
                if self.settled[u as usize] {
                    continue;
                }
                self.settled[u as usize] = true;
                let du = dist[u as usize];
                let (nb, len) = topo.isl_neighbors(u as usize);
                for (&v, &l) in nb.iter().zip(len) {
                    let dv = du + l;
                    if dv < dist[v as usize] {
                        if excluded.is_some_and(|x| x.contains(&link(u, v))) {
                            continue;
                        }
                        dist[v as usize] = dv;
                        next[v as usize] = u;
                        ok &= push(buckets, &mut top, (dv * inv) as usize, v);
                    }
                }
            }
            cur += 1;
        }
        for b in buckets.iter_mut().take(top + 1) {
            b.clear();
        }
        ok
    }

    /// The shortest path from ground station `src` to ground station `dst`.
    pub fn path(&mut self, topo: &Topology, src: u32, dst: u32) -> Option<Path> {
        self.path_excluding(topo, src, dst, None)
    }

    fn path_excluding(
        &mut self,
        topo: &Topology,
        src: u32,
        dst: u32,
        excluded: Option<&HashSet<Link>>,
    ) -> Option<Path> {
        if src == dst || src as usize >= topo.n_gs() {
            return None;
        }
        let mut spt = Spt::default();
        self.spt_into(topo, dst, excluded, &mut spt);
        spt.path_from(topo.gs_node(src))
    }

    /// Up to `k` pairwise link-disjoint paths from `src` to `dst`, shortest
    /// first: each is the shortest path avoiding every link (ISL and GSL) of
    /// the ones before it. The first is the primary path.
    pub fn disjoint_paths(&mut self, topo: &Topology, src: u32, dst: u32, k: usize) -> Vec<Path> {
        let mut used = HashSet::new();
        let mut out = Vec::new();
        while out.len() < k {
            let Some(p) = self.path_excluding(topo, src, dst, Some(&used)) else {
                break;
            };
            used.extend(p.links());
            out.push(p);
        }
        out
    }
}
