//! Shortest paths by propagation distance. Ground stations are endpoints
//! only: a path is `gs - sat - ... - sat - gs`, never relayed through a
//! third ground station (Hypatia's `free_one_only_over_isls`).
//!
//! Two views of the same shortest paths: [`Spt`], the tree toward one
//! egress gateway (for every node, its next hop there), and
//! [`FirstHops`], one node's own neighbour toward every satellite. The
//! second is what a node computes for itself for the satellites' node
//! labels: links are symmetric, so a node's first hop toward `S` on a
//! shortest path from it is a next hop toward `S`; each hop strictly
//! shortens the distance left, so when every node computes its own first
//! hops over the same graph, hop-by-hop forwarding reaches `S` without a
//! loop, along a shortest path.

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

/// One node's first hops toward every satellite (see the module
/// documentation): index = satellite id.
#[derive(Clone, Debug, Default)]
pub struct FirstHops {
    /// The node they start from (a satellite or a ground station).
    pub from: NodeId,
    /// Distance in metres from `from` to each satellite, `INFINITY` if
    /// unreachable.
    pub dist: Vec<f64>,
    /// The neighbour of `from` on a shortest path to each satellite
    /// ([`NO_HOP`] if unreachable; `from` itself for its own entry): of
    /// several equally short paths, the one whose first hop has the lowest
    /// node id.
    pub hop: Vec<NodeId>,
}

/// The first hops of node `from` toward every satellite over `topo`, as
/// [`Router::first_hops_into`] computes them; index = satellite id.
pub fn first_hops(topo: &Topology, from: NodeId) -> Vec<NodeId> {
    let mut out = FirstHops::default();
    Router::new().first_hops_into(topo, from, &mut out);
    out.hop
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

    /// Computes node `from`'s first hops toward every satellite into `out`
    /// (reusing its buffers): one Dijkstra from `from` over the ISLs (and,
    /// from a ground station, its GSLs; ground stations never relay).
    /// Failures are part of `topo` (a failed ISL or satellite has no
    /// usable link), so every node that computes over the same topology
    /// agrees. Deterministic: the result depends on `topo` and `from`
    /// only, ties going to the lowest first hop.
    pub fn first_hops_into(&mut self, topo: &Topology, from: NodeId, out: &mut FirstHops) {
        let n = topo.n_sats();
        out.from = from;
        out.dist.clear();
        out.dist.resize(n, f64::INFINITY);
        out.hop.clear();
        out.hop.resize(n, NO_HOP);
        self.settled.clear();
        self.settled.resize(n, false);
        let heap = &mut self.heap;
        heap.clear();
        let (dist, hop) = (&mut out.dist, &mut out.hop);
        if (from as usize) < n {
            dist[from as usize] = 0.0;
            hop[from as usize] = from;
            heap.push(Reverse((0f64.to_bits(), from)));
        } else if (from as usize) < topo.n_nodes() {
            let (sats, lens) = topo.gsl_of(from as usize - n);
            for (&s, &l) in sats.iter().zip(lens) {
                let i = s as usize;
                if l < dist[i] || (l == dist[i] && s < hop[i]) {
                    dist[i] = l;
                    hop[i] = s;
                    heap.push(Reverse((l.to_bits(), s)));
                }
            }
        }
        // Non-negative f64 order like their bit patterns; equal keys pop
        // by node id, so the order is a function of the graph alone.
        while let Some(Reverse((bits, u))) = heap.pop() {
            let ui = u as usize;
            if self.settled[ui] || f64::from_bits(bits) > dist[ui] {
                continue;
            }
            self.settled[ui] = true;
            let du = dist[ui];
            let via = if u == from { None } else { Some(hop[ui]) };
            let (nb, len) = topo.isl_neighbors(ui);
            for (&v, &l) in nb.iter().zip(len) {
                let vi = v as usize;
                if self.settled[vi] {
                    continue;
                }
                let dv = du + l;
                let h = via.unwrap_or(v);
                if dv < dist[vi] {
                    dist[vi] = dv;
                    hop[vi] = h;
                    heap.push(Reverse((dv.to_bits(), v)));
                } else if dv == dist[vi] && dv.is_finite() && h < hop[vi] {
                    // An equally short path: every predecessor of `v` is
                    // settled before `v`, so `v` ends with the lowest.
                    hop[vi] = h;
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constellation::{Constellation, Preset, WalkerParams};
    use crate::ground::GroundStations;
    use crate::topology::{Failures, GslRule, Network};
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use std::sync::OnceLock;

    /// Follows each node's own first hops from `x` toward satellite `s`;
    /// the nodes visited, or why the walk failed.
    fn walk(
        topo: &Topology,
        tables: &[FirstHops],
        x: NodeId,
        s: NodeId,
    ) -> Result<Vec<NodeId>, String> {
        let n = topo.n_sats() as NodeId;
        let mut nodes = vec![x];
        let mut cur = x;
        while cur != s {
            let next = tables[cur as usize].hop[s as usize];
            if next == NO_HOP {
                return Err(format!("{nodes:?}: {cur} has no first hop toward {s}"));
            }
            if next >= n {
                return Err(format!("{nodes:?}: relayed through ground station {next}"));
            }
            if topo.link_length(cur, next).is_none() {
                return Err(format!("{nodes:?}: {cur}-{next} is no link"));
            }
            if nodes.contains(&next) {
                return Err(format!("{nodes:?}: loop back to {next}"));
            }
            nodes.push(next);
            cur = next;
        }
        Ok(nodes)
    }

    fn all_first_hops(topo: &Topology) -> Vec<FirstHops> {
        let mut r = Router::new();
        (0..topo.n_nodes() as NodeId)
            .map(|x| {
                let mut f = FirstHops::default();
                r.first_hops_into(topo, x, &mut f);
                f
            })
            .collect()
    }

    /// A `w` x `h` grid of satellites 1000 km apart (far above the Earth,
    /// so every chord clears it), ISLs between grid neighbours: every
    /// distance is an exact multiple of 1000 km, so equal paths tie exactly.
    fn grid(w: usize, h: usize, failures: &Failures) -> Topology {
        let params = WalkerParams {
            planes: w,
            sats_per_plane: h,
            ..Preset::Telesat1015.params()
        };
        let mut c = Constellation::walker(&params).expect("walker grid");
        let id = |i: usize, j: usize| (i * h + j) as u32;
        c.isls.clear();
        for i in 0..w {
            for j in 0..h {
                if i + 1 < w {
                    c.isls.push((id(i, j), id(i + 1, j)));
                }
                if j + 1 < h {
                    c.isls.push((id(i, j), id(i, j + 1)));
                }
            }
        }
        let pos = (0..w * h)
            .map(|k| [(k / h) as f64 * 1e6, (k % h) as f64 * 1e6, 1e8])
            .collect();
        let net = Network::with_rule(&c, &GroundStations::default(), GslRule::MaxRange(1.0));
        net.at(0.0, pos, failures)
    }

    /// Hop counts from `x` over the usable ISLs (`usize::MAX`: unreachable).
    fn bfs(topo: &Topology, x: NodeId) -> Vec<usize> {
        let mut d = vec![usize::MAX; topo.n_sats()];
        d[x as usize] = 0;
        let mut q = VecDeque::from([x as usize]);
        while let Some(u) = q.pop_front() {
            let (nb, len) = topo.isl_neighbors(u);
            for (&v, l) in nb.iter().zip(len) {
                if l.is_finite() && d[v as usize] == usize::MAX {
                    d[v as usize] = d[u] + 1;
                    q.push_back(v as usize);
                }
            }
        }
        d
    }

    proptest! {
        #[test]
        fn first_hops_on_a_grid_reach_every_satellite_by_a_shortest_path_lowest_hop_first(
            w in 3usize..8,
            h in 3usize..8,
            down_isls in prop::collection::vec((0u32..64, 0usize..4), 0..12),
            down_sats in prop::collection::vec(0u32..64, 0..3),
        ) {
            let n = (w * h) as u32;
            let mut failures = Failures::new();
            let full = grid(w, h, &failures);
            for (a, k) in down_isls {
                let (nb, _) = full.isl_neighbors((a % n) as usize);
                if let Some(&b) = nb.get(k % nb.len().max(1)) {
                    failures.fail_isl(a % n, b);
                }
            }
            for s in down_sats {
                failures.fail_satellite(s % n);
            }
            let topo = grid(w, h, &failures);
            let tables = all_first_hops(&topo);
            for x in 0..n {
                let hops = bfs(&topo, x);
                for s in 0..n {
                    let f = &tables[x as usize];
                    if hops[s as usize] == usize::MAX {
                        prop_assert_eq!(f.hop[s as usize], NO_HOP);
                        prop_assert!(f.dist[s as usize].is_infinite());
                        continue;
                    }
                    prop_assert_eq!(f.dist[s as usize], hops[s as usize] as f64 * 1e6);
                    let path = walk(&topo, &tables, x, s).map_err(TestCaseError::fail)?;
                    prop_assert_eq!(path.len() - 1, hops[s as usize]);
                    if x != s {
                        // Of the neighbours one hop closer to S, the lowest.
                        let to_s = bfs(&topo, s);
                        let (nb, len) = topo.isl_neighbors(x as usize);
                        let best = nb
                            .iter()
                            .zip(len)
                            .filter(|(&y, l)| l.is_finite() && to_s[y as usize] + 1 == to_s[x as usize])
                            .map(|(&y, _)| y)
                            .min();
                        prop_assert_eq!(Some(f.hop[s as usize]), best);
                    }
                }
            }
        }
    }

    /// Telesat-1015 and the top-100 cities, with the topology at t = 0
    /// (for the fixed ISL adjacency).
    fn telesat() -> &'static (Network, crate::propagate::Propagator, Topology) {
        static NET: OnceLock<(Network, crate::propagate::Propagator, Topology)> = OnceLock::new();
        NET.get_or_init(|| {
            let c = Constellation::preset(Preset::Telesat1015);
            let p = crate::propagate::Propagator::new(&c).expect("propagator");
            let net = Network::new(&c, &GroundStations::top100());
            let topo = at(&net, &p, 0.0, &Failures::new());
            (net, p, topo)
        })
    }

    fn at(net: &Network, p: &crate::propagate::Propagator, t: f64, f: &Failures) -> Topology {
        let mut pos = Vec::new();
        p.ecef_all(t, &mut pos).expect("propagate");
        net.at(t, pos, f)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        #[test]
        fn every_node_following_its_own_first_hops_reaches_every_satellite_along_a_shortest_path(
            t in 0.0f64..6000.0,
            down_isls in prop::collection::vec((0u32..351, 0usize..4), 0..20),
            down_sats in prop::collection::vec(0u32..351, 0..6),
        ) {
            let (net, prop, base) = telesat();
            let mut failures = Failures::new();
            for s in down_sats {
                failures.fail_satellite(s);
            }
            for (a, k) in down_isls {
                let (nb, _) = base.isl_neighbors(a as usize);
                failures.fail_isl(a, nb[k % nb.len()]);
            }
            let topo = at(net, prop, t, &failures);
            let n = topo.n_sats() as NodeId;
            let tables = all_first_hops(&topo);
            for x in 0..topo.n_nodes() as NodeId {
                let f = &tables[x as usize];
                // Bellman's condition: no link shortens any distance.
                for (a, b, l) in topo.isls() {
                    let (da, db) = (f.dist[a as usize], f.dist[b as usize]);
                    prop_assert!(db <= da + l + 1e-3 && da <= db + l + 1e-3, "{x}: {a}-{b}");
                }
                if x >= n {
                    let (sats, lens) = topo.gsl_of((x - n) as usize);
                    for (&s, &l) in sats.iter().zip(lens) {
                        prop_assert!(f.dist[s as usize] <= l);
                    }
                }
                for s in 0..n {
                    let d = f.dist[s as usize];
                    if !d.is_finite() {
                        prop_assert_eq!(f.hop[s as usize], NO_HOP);
                        continue;
                    }
                    if x < n {
                        // Links are symmetric, so are distances.
                        let back = tables[s as usize].dist[x as usize];
                        prop_assert!((back - d).abs() <= 1e-3, "{x} <-> {s}: {d} vs {back}");
                    }
                    let path = walk(&topo, &tables, x, s).map_err(TestCaseError::fail)?;
                    let len: f64 = path
                        .windows(2)
                        .map(|w| topo.link_length(w[0], w[1]).unwrap_or(f64::INFINITY))
                        .sum();
                    prop_assert!((len - d).abs() <= 1e-3, "{x} -> {s}: walked {len}, shortest {d}");
                }
            }
        }
    }

    #[test]
    fn a_gateway_reaches_directly_the_satellites_whose_shortest_way_to_it_is_direct() {
        let (net, prop, _) = telesat();
        let topo = at(net, prop, 100.0, &Failures::new());
        let spt = Router::new().spt(&topo, 0);
        let hops = first_hops(&topo, topo.gs_node(0));
        let (sats, _) = topo.gsl_of(0);
        assert!(!sats.is_empty());
        for (s, &h) in hops.iter().enumerate() {
            if spt.next_hop[s] == spt.root {
                assert_eq!(h, s as NodeId);
            }
        }
        assert_eq!(hops.len(), topo.n_sats());
        // Unknown nodes have no first hops.
        assert!(first_hops(&topo, topo.n_nodes() as NodeId)
            .iter()
            .all(|&h| h == NO_HOP));
    }
}
