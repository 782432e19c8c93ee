//! A discrete-event simulation of one notice flooding over a topology's
//! ISLs: one [`Flooder`] per satellite, datagrams delayed by the link's
//! length at the speed of light plus a processing delay, optionally lost
//! at random or on links that silently stopped carrying anything (their
//! ends still believe them up, so only retransmission gets around them).
//! Virtual time only; deterministic for a seed.

use crate::flood::{Event, FloodConfig, Flooder};
use crate::notice::{Link, Message, MessageType};
use crate::routing::SPEED_OF_LIGHT_M_S;
use crate::signing::{NoticeSigner, NoticeVerifier};
use crate::topology::{NodeId, Topology};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The flooders' configuration.
    pub flood: FloodConfig,
    /// The node that originates the notice.
    pub origin: NodeId,
    /// The other end of the link it reports; `None` for the origin's first
    /// ISL neighbour.
    pub peer: Option<NodeId>,
    /// The state it reports. A link reported down carries nothing and its
    /// ends know it (their neighbour is down).
    pub up: bool,
    /// Handling time of a datagram at its receiver.
    pub processing_ns: u64,
    /// Probability that any datagram is lost.
    pub drop_rate: f64,
    /// Links that lose everything while both ends still believe them up.
    pub lost_links: Vec<Link>,
    /// Seed of the loss draws.
    pub seed: u64,
    /// Wall-clock time (Unix ns) of the origination.
    pub start_unix_ns: u64,
    /// How long to run after the origination.
    pub horizon_ns: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            flood: FloodConfig::default(),
            origin: 0,
            peer: None,
            up: false,
            processing_ns: 100_000,
            drop_rate: 0.0,
            lost_links: Vec::new(),
            seed: 1,
            start_unix_ns: 1_700_000_000_000_000_000,
            horizon_ns: 3_000_000_000,
        }
    }
}

/// What happened.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimReport {
    /// Time of the origination (Unix ns).
    pub start_unix_ns: u64,
    /// Satellites simulated.
    pub nodes: usize,
    /// Links the notice could cross (usable ISLs, less the reported one
    /// when it is down).
    pub links: usize,
    /// The link reported.
    pub link: Option<Link>,
    /// The light-and-processing bound: the largest, over nodes, of the
    /// shortest path's delay from the origin (link delays plus the
    /// processing delay per hop). No flood can beat it.
    pub shortest_ns: u64,
    /// Per node, time from origination until it held the notice.
    pub reached_ns: Vec<Option<u64>>,
    /// Per node, the apply instant it reported (Unix ns) and when it did.
    pub applied: Vec<Option<(u64, u64)>>,
    /// Notice records sent (flooded and sync, first sends and retransmissions).
    pub notice_records: u64,
    /// Datagrams carrying notices.
    pub notice_datagrams: u64,
    /// Ack records sent.
    pub ack_records: u64,
    /// Datagrams carrying acks.
    pub ack_datagrams: u64,
    /// Retransmitted notice records.
    pub retransmits: u64,
    /// Sends abandoned unacknowledged.
    pub gave_up: u64,
    /// Datagrams lost (at random or on a lost link).
    pub lost: u64,
    /// Clock-skew events reported.
    pub skew_events: u64,
    /// Time from origination to the last datagram sent.
    pub quiet_ns: u64,
}

impl SimReport {
    /// Nodes that held the notice by the end.
    pub fn reached(&self) -> usize {
        self.reached_ns.iter().flatten().count()
    }

    /// Time until the last node held it (if all did).
    pub fn all_reached_ns(&self) -> Option<u64> {
        self.reached_ns
            .iter()
            .try_fold(0, |m, r| r.map(|r| r.max(m)))
    }

    /// The distinct apply instants reported (one when all agree).
    pub fn apply_instants(&self) -> BTreeSet<u64> {
        self.applied.iter().flatten().map(|&(at, _)| at).collect()
    }

    /// Nodes that applied after the apply instant (the notice reached them
    /// too late).
    pub fn applied_late(&self) -> usize {
        self.applied
            .iter()
            .flatten()
            .filter(|&&(at, when)| when > at)
            .count()
    }

    /// Latest time (Unix ns) at which a node applied.
    pub fn last_applied_ns(&self) -> Option<u64> {
        self.applied.iter().flatten().map(|&(_, when)| when).max()
    }
}

impl std::fmt::Display for SimReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |ns: u64| ns as f64 / 1e6;
        let mut reach: Vec<u64> = self.reached_ns.iter().flatten().copied().collect();
        reach.sort_unstable();
        let median = reach.get(reach.len() / 2).copied().unwrap_or(0);
        let instants = self.apply_instants();
        writeln!(
            f,
            "{} nodes, {} links; reached {} of {}: all after {}, median {:.1} ms \
             (shortest paths: {:.1} ms)",
            self.nodes,
            self.links,
            self.reached(),
            self.nodes,
            self.all_reached_ns()
                .map_or("(not all)".to_string(), |t| format!("{:.1} ms", ms(t))),
            ms(median),
            ms(self.shortest_ns),
        )?;
        let rel = |t: u64| ms(t.saturating_sub(self.start_unix_ns));
        let list: Vec<String> = instants
            .iter()
            .map(|&t| format!("+{:.1} ms", rel(t)))
            .collect();
        writeln!(
            f,
            "applied by {} nodes at {} distinct instant(s) [{}], {} of them late, \
             the last application at +{:.1} ms",
            self.applied.iter().flatten().count(),
            instants.len(),
            list.join(", "),
            self.applied_late(),
            self.last_applied_ns().map_or(0.0, rel),
        )?;
        write!(
            f,
            "messages: {} notices in {} datagrams ({} retransmitted), {} acks in {} datagrams; \
             {} datagrams lost, {} sends given up, {} clock-skew reports; quiet after {:.1} ms",
            self.notice_records,
            self.notice_datagrams,
            self.retransmits,
            self.ack_records,
            self.ack_datagrams,
            self.lost,
            self.gave_up,
            self.skew_events,
            ms(self.quiet_ns),
        )
    }
}

enum Ev {
    Deliver {
        to: NodeId,
        from: NodeId,
        payload: Vec<u8>,
    },
    Timer(NodeId),
}

/// splitmix64: a small, seedable generator for the loss draws.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Sim<S, V> {
    cfg: SimConfig,
    nodes: Vec<Flooder<S, V>>,
    /// Neighbours and one-way delays.
    adj: Vec<Vec<(NodeId, u64)>>,
    lost: BTreeSet<Link>,
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    evs: Vec<Option<Ev>>,
    timer_at: Vec<Option<u64>>,
    rng: Rng,
    report: SimReport,
    watched: Option<Link>,
}

impl<S: NoticeSigner, V: NoticeVerifier> Sim<S, V> {
    fn push(&mut self, at: u64, ev: Ev) {
        let i = self.evs.len() as u64;
        self.evs.push(Some(ev));
        self.heap.push(Reverse((at, i)));
    }

    /// Sends what node `v` has to send, takes its events, and keeps its
    /// timer scheduled.
    fn drain(&mut self, v: NodeId, now: u64) {
        let t0 = self.cfg.start_unix_ns;
        let vi = v as usize;
        while let Some(t) = self.nodes[vi].poll_transmit() {
            self.report.quiet_ns = now.saturating_sub(t0);
            if let Ok(m) = Message::parse(&t.payload) {
                match m.msg_type() {
                    MessageType::Acks => {
                        self.report.ack_datagrams += 1;
                        self.report.ack_records += m.len() as u64;
                    }
                    MessageType::Notices | MessageType::Sync => {
                        self.report.notice_datagrams += 1;
                        self.report.notice_records += m.len() as u64;
                    }
                }
            }
            let delay = self.adj[vi]
                .iter()
                .find(|&&(n, _)| n == t.to)
                .map(|&(_, d)| d);
            let on_lost = Link::new(v, t.to).is_some_and(|l| self.lost.contains(&l));
            match delay {
                Some(d) if !on_lost && self.rng.unit() >= self.cfg.drop_rate => {
                    let at = now + d + self.cfg.processing_ns;
                    self.push(
                        at,
                        Ev::Deliver {
                            to: t.to,
                            from: v,
                            payload: t.payload,
                        },
                    );
                }
                _ => self.report.lost += 1,
            }
        }
        while let Some(ev) = self.nodes[vi].poll_event() {
            match ev {
                Event::Apply { notice, at_ns } if Some(notice.link) == self.watched => {
                    self.report.applied[vi] = Some((at_ns, now));
                }
                Event::Apply { .. } => {}
                Event::ClockSkew { .. } => self.report.skew_events += 1,
            }
        }
        if self.report.reached_ns[vi].is_none() {
            if let Some(l) = self.watched {
                if self.nodes[vi].notice(self.cfg.origin, l).is_some() {
                    self.report.reached_ns[vi] = Some(now.saturating_sub(t0));
                }
            }
        }
        if let Some(nt) = self.nodes[vi].next_timeout() {
            let nt = nt.max(now);
            if self.timer_at[vi].is_none_or(|s| nt < s) {
                self.timer_at[vi] = Some(nt);
                self.push(nt, Ev::Timer(v));
            }
        }
    }
}

/// The largest shortest-path delay from `src` (Dijkstra over `adj`, each
/// hop costing its delay plus `per_hop`); 0 for a node out of range.
fn eccentricity(adj: &[Vec<(NodeId, u64)>], src: NodeId, per_hop: u64) -> u64 {
    let mut dist = vec![u64::MAX; adj.len()];
    let mut heap = BinaryHeap::new();
    if let Some(d) = dist.get_mut(src as usize) {
        *d = 0;
        heap.push(Reverse((0u64, src)));
    }
    while let Some(Reverse((d, u))) = heap.pop() {
        if d > dist[u as usize] {
            continue;
        }
        for &(v, w) in &adj[u as usize] {
            let nd = d + w + per_hop;
            if nd < dist[v as usize] {
                dist[v as usize] = nd;
                heap.push(Reverse((nd, v)));
            }
        }
    }
    dist.into_iter()
        .filter(|&d| d != u64::MAX)
        .max()
        .unwrap_or(0)
}

/// Floods one notice from `cfg.origin` over the ISLs of `topo` (every
/// satellite a flooder, signing with `signer(node)` and verifying with
/// `verifier(node)`) and reports how it went.
pub fn simulate<S: NoticeSigner, V: NoticeVerifier>(
    topo: &Topology,
    cfg: &SimConfig,
    signer: impl Fn(NodeId) -> S,
    verifier: impl Fn(NodeId) -> V,
) -> SimReport {
    let n = topo.n_sats();
    let mut adj: Vec<Vec<(NodeId, u64)>> = vec![Vec::new(); n];
    let mut link = None;
    for (a, b, len) in topo.isls() {
        let d = (len / SPEED_OF_LIGHT_M_S * 1e9).round() as u64;
        adj[a as usize].push((b, d));
        adj[b as usize].push((a, d));
    }
    if let Some(first) = adj.get(cfg.origin as usize).and_then(|v| v.first()) {
        link = Link::new(cfg.origin, cfg.peer.unwrap_or(first.0));
    }
    if let (Some(l), false) = (link, cfg.up) {
        for (x, y) in [(l.a(), l.b()), (l.b(), l.a())] {
            if let Some(v) = adj.get_mut(x as usize) {
                v.retain(|&(m, _)| m != y);
            }
        }
    }
    let links = adj.iter().map(Vec::len).sum::<usize>() / 2;
    let shortest_ns = eccentricity(&adj, cfg.origin, cfg.processing_ns);
    let t0 = cfg.start_unix_ns;
    let nodes = (0..n as NodeId)
        .map(|v| Flooder::new(v, cfg.flood, signer(v), verifier(v)))
        .collect();
    let mut sim = Sim {
        cfg: cfg.clone(),
        nodes,
        adj,
        lost: cfg.lost_links.iter().copied().collect(),
        heap: BinaryHeap::new(),
        evs: Vec::new(),
        timer_at: vec![None; n],
        rng: Rng(cfg.seed),
        report: SimReport {
            start_unix_ns: t0,
            shortest_ns,
            nodes: n,
            links,
            link,
            reached_ns: vec![None; n],
            applied: vec![None; n],
            ..SimReport::default()
        },
        watched: link,
    };
    // Every BFD session up well before the change.
    let up_at = t0.saturating_sub(1_000_000_000);
    for v in 0..n {
        for k in 0..sim.adj[v].len() {
            let m = sim.adj[v][k].0;
            sim.nodes[v].neighbor_up(up_at, m);
        }
        sim.drain(v as NodeId, up_at);
    }
    if let Some(l) = link {
        let o = cfg.origin as usize;
        if sim.nodes[o].originate(t0, l, cfg.up).is_ok() {
            sim.drain(cfg.origin, t0);
        }
    }
    let end = t0.saturating_add(cfg.horizon_ns);
    while let Some(Reverse((at, i))) = sim.heap.pop() {
        if at > end {
            break;
        }
        let Some(ev) = sim.evs.get_mut(i as usize).and_then(Option::take) else {
            continue;
        };
        match ev {
            Ev::Deliver { to, from, payload } => {
                sim.nodes[to as usize].receive(at, from, &payload);
                sim.drain(to, at);
            }
            Ev::Timer(v) => {
                let vi = v as usize;
                if sim.timer_at[vi] == Some(at) {
                    sim.timer_at[vi] = None;
                }
                sim.nodes[vi].poll(at);
                sim.drain(v, at);
            }
        }
    }
    for f in &sim.nodes {
        let c = f.counters();
        sim.report.retransmits += c.retransmits;
        sim.report.gave_up += c.gave_up;
    }
    sim.report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::stand_in::{Keys, NodeSigner};
    use crate::{Constellation, Engine, Failures, GroundStations, Preset};

    const KEYS: Keys = Keys::new(0x51a7);

    fn starlink_at_0() -> Topology {
        let e = Engine::new(
            Constellation::preset(Preset::Starlink550),
            GroundStations::default(),
        )
        .expect("engine");
        e.topology(0.0, &Failures::new()).expect("topology")
    }

    fn run(topo: &Topology, cfg: &SimConfig) -> SimReport {
        simulate(topo, cfg, |v| NodeSigner::new(&KEYS, v), |_| KEYS)
    }

    #[test]
    fn one_notice_reaches_all_of_starlink_within_the_bound_and_applies_at_one_instant() {
        let topo = starlink_at_0();
        let cfg = SimConfig::default();
        let r = run(&topo, &cfg);
        eprintln!("{r}");
        assert_eq!(r.nodes, 1584);
        assert_eq!(r.reached(), 1584);
        let all = r.all_reached_ns().expect("everyone");
        assert!(all < cfg.flood.flood_bound_ns, "{all} ns");
        // Without loss, the flood is as fast as light and processing allow.
        assert_eq!(all, r.shortest_ns);
        let at = cfg.start_unix_ns + cfg.flood.flood_bound_ns;
        assert_eq!(r.apply_instants(), BTreeSet::from([at]));
        assert_eq!(r.last_applied_ns(), Some(at));
        assert_eq!(r.applied.iter().flatten().count(), 1584);
        // Every notice record is acked once, and nothing is given up.
        assert_eq!(r.ack_records, r.notice_records);
        assert_eq!((r.gave_up, r.lost, r.skew_events), (0, 0, 0));
    }

    #[test]
    fn lost_links_and_random_loss_are_recovered_by_retransmission() {
        let topo = starlink_at_0();
        let (origin, peer) = (100, None);
        // Of the origin's links, the reported one is down and all others
        // but one silently lose everything; and a few more elsewhere.
        let nbrs: Vec<u32> = topo.isl_neighbors(origin as usize).0.to_vec();
        let mut lost: Vec<Link> = nbrs[1..nbrs.len() - 1]
            .iter()
            .filter_map(|&m| Link::new(origin, m))
            .collect();
        for s in [500u32, 900, 1300] {
            let m = topo.isl_neighbors(s as usize).0[0];
            lost.extend(Link::new(s, m));
        }
        let cfg = SimConfig {
            origin,
            peer,
            drop_rate: 0.10,
            lost_links: lost,
            seed: 7,
            ..SimConfig::default()
        };
        let r = run(&topo, &cfg);
        eprintln!("{r}");
        assert_eq!(r.reached(), 1584);
        assert!(r.retransmits > 0 && r.lost > 0);
        // Lost links give up after the last attempt, nothing else does.
        assert!(r.gave_up >= 1);
        let at = cfg.start_unix_ns + cfg.flood.flood_bound_ns;
        assert_eq!(r.applied.iter().flatten().count(), 1584);
        assert_eq!(r.apply_instants(), BTreeSet::from([at]));
        // Whoever the notice reached after the instant applied it at once.
        let all = r.all_reached_ns().expect("everyone");
        let last = r.last_applied_ns().expect("applied");
        assert_eq!(last, at.max(cfg.start_unix_ns + all));
        assert_eq!(r.applied_late() == 0, all <= cfg.flood.flood_bound_ns);
    }

    #[test]
    fn with_room_for_two_retransmissions_a_lossy_flood_still_applies_at_one_instant() {
        let topo = starlink_at_0();
        let flood = FloodConfig {
            flood_bound_ns: 300_000_000,
            ..FloodConfig::default()
        };
        for seed in 1..=3 {
            let cfg = SimConfig {
                flood,
                origin: 100,
                drop_rate: 0.10,
                seed,
                ..SimConfig::default()
            };
            let r = run(&topo, &cfg);
            eprintln!("{r}");
            assert_eq!(r.reached(), 1584);
            assert_eq!(r.applied_late(), 0, "seed {seed}");
            assert_eq!(r.skew_events, 0);
        }
    }
}
