//! One emulated node: the configuration its operator would give it (ports
//! toward every neighbour it has during the run, and on a gateway its LAN,
//! its SAs and its delivery prefix), and the tables its control agent
//! installs from each publication of the schedule, built by the same code
//! ([`PublicationInstaller`] then [`Tables::from_config_with`], SA state
//! kept across installs).
//!
//! A node installs an epoch's tables when it first handles a frame under
//! that epoch: a satellite from half a step before the epoch activates
//! ([`early_install_ns`]), a gateway from its activation, as the agent
//! does. A node that no frame reaches in an epoch has nothing to forward
//! with its tables, so it does not build them; when it skipped the epoch
//! before, it commits that one first, so that the previous satellite-label
//! block it carries is the one the agent would carry.
//!
//! The satellites' node labels ([`SatLabels`]): by default a node's tables
//! are built without them until a frame that may look one up reaches it
//! ([`super::sat_labels`]), and the first hops toward the satellites that
//! an install commits are computed only when tables with those labels
//! need them; those tables are then the agent's, entry for entry (checked
//! below against the plain path, which [`SatLabels::Always`] keeps).
//!
//! Keys: each ordered gateway pair has its own AES-128-GCM key and salt,
//! derived from the two gateway ids inside the emulator (a static key per
//! SA; no IKE, no rekeying). Tunnel endpoints are the gateways' node
//! addresses, 64-bit sequence numbers, as `meshplane mesh-plan` renders them.

use super::install::{Direct, InstallPath};
use crate::config::{AfXdpPortConfig, Mac, NodeConfig, PortConfig};
use crate::control::agent::early_install_ns;
use crate::control::{ControlError, PublicationInstaller, RouteInstaller};
use crate::frame::PortId;
use crate::mesh::render::node_addr;
use crate::tables::lfib::Lfib;
use crate::tables::{SaStore, Tables};
use meshplane_control::labels::LabelPlan;
use meshplane_control::routing::first_hops;
use meshplane_control::schedule::Publication;
use meshplane_control::tables::{default_gateway_prefix, port_name, LfibRoute, SatHops};
use meshplane_control::topology::Topology;
use meshplane_control::{Failures, GroundStations, NodeId};
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

/// The port index of a gateway's LAN.
pub const LAN_PORT: PortId = 0;

/// MAC of node `a`'s port toward node `b` (`b = 0xffff`: its LAN port,
/// `last = 2`: the host there), as `mesh-plan` numbers them.
pub fn mac(a: NodeId, b: u32, last: u8) -> Mac {
    [0x02, (a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8, last]
}

/// The LAN "node" a gateway's port 0 leads to.
pub const LAN: u32 = 0xffff;

/// The static key and salt of the SA from gateway `from` to `to`.
fn sa_key(from: u32, to: u32) -> [u8; 20] {
    let mut x = (u64::from(from) << 32 | u64::from(to)) ^ 0x6d65_7368_706c_616e;
    let mut out = [0u8; 20];
    for chunk in out.chunks_mut(8) {
        // splitmix64
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let b = z.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    out
}

/// The SPI of the SA from gateway `from` to `to`.
pub fn spi(from: u32, to: u32) -> u32 {
    0x1000 + (from << 12) + to
}

/// One emulated node.
pub struct Node {
    /// Node id (satellites `0..n_sats`, gateway `gid` is `n_sats + gid`).
    pub id: NodeId,
    /// A gateway (else a satellite).
    pub gateway: bool,
    /// Where each port leads: a neighbour node, or [`LAN`].
    pub port_peer: Vec<u32>,
    /// Port index toward each neighbour.
    pub port_of: HashMap<NodeId, PortId>,
    /// Index of the link leaving by port 0 (the others follow).
    pub link_base: u32,
    base: NodeConfig,
    installer: PublicationInstaller,
    store: SaStore,
    /// When the satellites' node labels are built.
    sat_labels: SatLabels,
    /// The tables in force.
    tables: Option<Installed>,
    /// The last publication committed (installed, or passed over).
    committed: Option<u64>,
    /// The first hops each satellite-label block carries (index = block).
    carried: [Carried; 2],
    /// Tables built.
    pub installs: u64,
    /// Tables are built into the LFIB of those they replace (else each
    /// into a new one, as the agent builds them: the tests' reference).
    reuse_lfib: bool,
    /// How installs are built.
    path: InstallPath,
    /// The direct install's resolution of this node's configuration
    /// (`None`: the configuration needs the agent's path).
    direct: Option<Direct>,
}

impl Installed {
    /// True if these are the tables of publication `p`.
    fn is(&self, p: &Publication) -> bool {
        self.epoch == p.epoch && self.activate_at_ns == p.activate_at_ns
    }
}

/// When a node's tables get the satellites' node labels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SatLabels {
    /// With every install, as the agent builds them.
    Always,
    /// Only once a frame may look one up ([`super::sat_labels`]); the
    /// first hops they need are computed then.
    #[default]
    OnDemand,
}

/// Tables in force.
struct Installed {
    /// The publication's epoch.
    epoch: u64,
    /// When it activates: a failure's publication keeps the epoch of the
    /// tables it replaces, and is told apart by this.
    activate_at_ns: u64,
    tables: Tables,
    /// Built with the satellites' node labels.
    sat_labels: bool,
    /// The labels of the LFIB entries configured (what to clear when the
    /// next tables are built into this LFIB).
    labels: Vec<u32>,
}

/// The first hops toward the satellites that the last publication of a
/// label block committed at a node stand for.
#[derive(Default)]
enum Carried {
    /// None committed yet.
    #[default]
    Empty,
    /// Those the node's installer holds.
    Committed,
    /// Those of the node over this epoch's graph, not computed yet.
    Deferred(u64, std::sync::Arc<Topology>),
}

/// What the neighbours of every node are over the run.
pub type Neighbours = Vec<BTreeSet<NodeId>>;

/// Adds the links of `topo` to `nb` (indexed by node id: the `n_sats`
/// satellites, then the `n_gw` gateways): every ISL in range and every
/// gateway's ground links.
pub fn add_neighbours(nb: &mut Neighbours, topo: &Topology, n_sats: usize, n_gw: usize) {
    for (s, set) in nb.iter_mut().enumerate().take(n_sats) {
        let (ids, lens) = topo.isl_neighbors(s);
        for (&x, l) in ids.iter().zip(lens) {
            if l.is_finite() {
                set.insert(x);
            }
        }
    }
    for g in 0..n_gw {
        let gnode = (n_sats + g) as NodeId;
        for &s in topo.gsl_of(g).0 {
            nb[s as usize].insert(gnode);
            nb[gnode as usize].insert(s);
        }
    }
}

impl Node {
    /// Satellite `id` with a port toward each of `neighbours`.
    pub fn satellite(
        id: NodeId,
        n_sats: usize,
        neighbours: &BTreeSet<NodeId>,
        stations: &GroundStations,
    ) -> Result<Node, ControlError> {
        let text = format!(
            "[node]\nname = \"sat{id}\"\nrole = \"satellite\"\n\n[io]\nbackend = \"memory\"\n"
        );
        let cfg = NodeConfig::parse(&text, &format!("sat{id}"))
            .map_err(|e| ControlError::Config(e.to_string()))?;
        Self::with_ports(id, false, cfg, n_sats, neighbours, stations)
    }

    /// Gateway `gid` (engine numbering) with a port toward each of
    /// `neighbours` and an SA pair with each of `peers`.
    pub fn gateway(
        gid: u32,
        n_sats: usize,
        neighbours: &BTreeSet<NodeId>,
        peers: &[u32],
        stations: &GroundStations,
    ) -> Result<Node, ControlError> {
        let id = n_sats as NodeId + gid;
        let hex_mac = |m: Mac| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        };
        let lan = match default_gateway_prefix(gid).0 {
            std::net::IpAddr::V4(a) => a,
            std::net::IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
        };
        let o = lan.octets();
        let mut t = String::new();
        let _ = writeln!(
            t,
            "[node]\nname = \"gw{gid}\"\nrole = \"gateway\"\n\n[io]\nbackend = \"memory\"\n"
        );
        let _ = writeln!(
            t,
            "[[ports]]\nname = \"lan0\"\nmac = \"{}\"\naddress = \"{}.{}.{}.1/24\"\n",
            hex_mac(mac(id, LAN, 1)),
            o[0],
            o[1],
            o[2]
        );
        for &p in peers.iter().filter(|&&p| p != gid) {
            let peer_node = n_sats as NodeId + p;
            let _ = writeln!(
                t,
                "[[sa]]\nspi = {}\ndir = \"out\"\naead = \"aes-128-gcm\"\nkey = \"{}\"\ntunnel_src = \"{}\"\ntunnel_dst = \"{}\"\nesn = true\npeer = \"{p}\"\n",
                spi(gid, p),
                hex::encode(sa_key(gid, p)),
                node_addr(id),
                node_addr(peer_node),
            );
            let _ = writeln!(
                t,
                "[[sa]]\nspi = {}\ndir = \"in\"\naead = \"aes-128-gcm\"\nkey = \"{}\"\ntunnel_src = \"{}\"\ntunnel_dst = \"{}\"\nesn = true\n",
                spi(p, gid),
                hex::encode(sa_key(p, gid)),
                node_addr(peer_node),
                node_addr(id),
            );
        }
        let _ = writeln!(
            t,
            "[[deliver]]\nprefix = \"{}.{}.{}.0/24\"\nport = \"lan0\"\nnext_hop_mac = \"{}\"\n",
            o[0],
            o[1],
            o[2],
            hex_mac(mac(id, LAN, 2))
        );
        let cfg = NodeConfig::parse(&t, &format!("gw{gid}"))
            .map_err(|e| ControlError::Config(e.to_string()))?;
        Self::with_ports(id, true, cfg, n_sats, neighbours, stations)
    }

    fn with_ports(
        id: NodeId,
        gateway: bool,
        mut cfg: NodeConfig,
        n_sats: usize,
        neighbours: &BTreeSet<NodeId>,
        stations: &GroundStations,
    ) -> Result<Node, ControlError> {
        let mtu = cfg.io.default_port_mtu(false);
        let mut port_peer: Vec<u32> = cfg.ports.iter().map(|_| LAN).collect();
        let mut port_of = HashMap::new();
        for &nb in neighbours {
            port_of.insert(nb, cfg.ports.len() as PortId);
            port_peer.push(nb);
            cfg.ports.push(PortConfig {
                name: port_name(n_sats, nb),
                mac: mac(id, nb, 1),
                dpdk: None,
                iface: None,
                peer_mac: Some(mac(nb, id, 1)),
                afxdp: AfXdpPortConfig::default(),
                address: None,
                address6: None,
                mtu,
            });
        }
        let installer = RouteInstaller::new(&cfg, id, n_sats, stations)?;
        let direct = Direct::new(&cfg, id, &port_peer, n_sats + stations.len(), stations);
        Ok(Node {
            id,
            gateway,
            port_peer,
            port_of,
            link_base: 0,
            base: cfg,
            installer: PublicationInstaller::new(installer),
            store: SaStore::default(),
            sat_labels: SatLabels::default(),
            tables: None,
            committed: None,
            carried: [Carried::Empty, Carried::Empty],
            installs: 0,
            reuse_lfib: true,
            path: InstallPath::default(),
            direct,
        })
    }

    /// When this node's tables get the satellites' node labels.
    pub fn set_sat_labels(&mut self, when: SatLabels) {
        self.sat_labels = when;
    }

    /// How this node builds the tables of each install.
    pub fn set_install_path(&mut self, path: InstallPath) {
        self.path = path;
    }

    /// The publication in force at this node at `now_ns` among `pubs`
    /// (oldest first), and the one before it.
    fn due<'a>(
        &self,
        pubs: &'a [Publication],
        now_ns: u64,
        step_ns: u64,
    ) -> Option<(&'a Publication, Option<&'a Publication>)> {
        let i = pubs.iter().rposition(|p| {
            let at = if self.gateway {
                p.activate_at_ns
            } else {
                early_install_ns(p.activate_at_ns, step_ns)
            };
            at <= now_ns
        })?;
        Some((&pubs[i], i.checked_sub(1).map(|j| &pubs[j])))
    }

    /// The tables this node forwards with at `now_ns`, installing them
    /// first if they are new. With [`SatLabels::OnDemand`], tables built
    /// without the satellites' node labels serve until `need_sat` says a
    /// frame of the batch may look one up; then the full tables are built
    /// (see [`super::sat_labels`]).
    pub fn tables(
        &mut self,
        pubs: &[Publication],
        now_ns: u64,
        step_ns: u64,
        plan: &LabelPlan,
        failures: &Failures,
        need_sat: bool,
    ) -> Result<Option<&Tables>, ControlError> {
        let Some((p, prev)) = self.due(pubs, now_ns, step_ns) else {
            return Ok(None);
        };
        let full = need_sat || self.sat_labels == SatLabels::Always;
        match &self.tables {
            Some(t) if t.is(p) && (t.sat_labels || !full) => {}
            Some(t) if t.is(p) => {
                // The same publication again, now with the satellite
                // labels: the other block's carried entries are the same.
                let sat = self.sat_entries(p, plan, failures)?;
                self.build(p, Some(&sat))?;
            }
            _ => {
                if let Some(prev) = prev {
                    if self.committed != Some(prev.epoch) {
                        self.commit(prev, plan, failures)?;
                    }
                }
                let sat = if full {
                    Some(self.sat_entries(p, plan, failures)?)
                } else {
                    self.defer(p);
                    None
                };
                self.build(p, sat.as_deref())?;
                self.committed = Some(p.epoch);
            }
        }
        Ok(self.tables.as_ref().map(|t| &t.tables))
    }

    /// Records `p` as installed without building its tables (no frame
    /// reached the node under it), as the agent's install path commits
    /// it: its first hops toward the satellites are the block's carried
    /// entries in the next epoch.
    fn commit(
        &mut self,
        p: &Publication,
        plan: &LabelPlan,
        failures: &Failures,
    ) -> Result<(), ControlError> {
        match self.sat_labels {
            SatLabels::Always => {
                let (_, hops) = self.installer.sat_labels(p, plan, failures)?;
                self.installer.commit(hops);
            }
            SatLabels::OnDemand => self.defer(p),
        }
        self.committed = Some(p.epoch);
        Ok(())
    }

    /// Commits `p`'s first hops toward the satellites without computing
    /// them: they are computed from its graph if tables with satellite
    /// labels ever carry them.
    fn defer(&mut self, p: &Publication) {
        self.carried[LabelPlan::block_of(p.epoch)] =
            Carried::Deferred(p.epoch, std::sync::Arc::clone(&p.topology));
    }

    /// The satellites' node-label entries the agent compiles into this
    /// node's tables for `p` (and commits): the other block's first hops
    /// are those of the last publication of that block committed here,
    /// computed now if they were deferred.
    fn sat_entries(
        &mut self,
        p: &Publication,
        plan: &LabelPlan,
        failures: &Failures,
    ) -> Result<Vec<LfibRoute>, ControlError> {
        let other = LabelPlan::block_of(p.epoch ^ 1);
        if let Carried::Deferred(epoch, topo) = &self.carried[other] {
            self.installer.commit(SatHops {
                node: self.id,
                epoch: *epoch,
                hops: first_hops(topo, self.id),
            });
            self.carried[other] = Carried::Committed;
        }
        let (sat, hops) = self.installer.sat_labels(p, plan, failures)?;
        self.installer.commit(hops);
        self.carried[LabelPlan::block_of(p.epoch)] = Carried::Committed;
        Ok(sat)
    }

    /// Builds and puts in force this node's tables of `p`, with the
    /// satellites' node-label entries `sat` if given, into the tables
    /// they replace (which nothing else holds): directly from the
    /// snapshot's entries ([`Direct`]), or through the agent's path, the
    /// configuration [`PublicationInstaller`] compiles and the tables
    /// [`Tables::from_config_with`] builds from it (into the LFIB
    /// replaced, without allocating and copying its pages again).
    fn build(&mut self, p: &Publication, sat: Option<&[LfibRoute]>) -> Result<(), ControlError> {
        self.installs += 1;
        let sat_labels = sat.is_some();
        let sat = sat.unwrap_or(&[]);
        let old = self.tables.take();
        let (tables, labels) = match (&mut self.direct, self.path) {
            (Some(direct), InstallPath::Direct) => {
                let (mut tables, mut labels) = match old {
                    Some(old) => (old.tables, old.labels),
                    None => (
                        Tables::from_config_with(&self.base, 0, &mut self.store)?,
                        Vec::new(),
                    ),
                };
                let mine = p.tables.node(self.id);
                direct.install(&mut tables, self.installs, mine, sat, &mut labels);
                (tables, labels)
            }
            _ => {
                let cfg = self
                    .installer
                    .installer()
                    .node_config(&self.base, &p.tables, sat)
                    .0;
                let (mut lfib, mut labels) = match old {
                    Some(old) if self.reuse_lfib => (old.tables.lfib, old.labels),
                    _ => (Lfib::new(), Vec::new()),
                };
                lfib.clear(labels.iter().copied());
                labels.clear();
                labels.extend(cfg.lfib.iter().map(|l| l.label));
                let tables = Tables::from_config_into(&cfg, self.installs, &mut self.store, lfib)?;
                (tables, labels)
            }
        };
        self.tables = Some(Installed {
            epoch: p.epoch,
            activate_at_ns: p.activate_at_ns,
            tables,
            sat_labels,
            labels,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Batch, Frame, HeapFrame};
    use meshplane_control::schedule::{ScheduleConfig, Scheduler};
    use meshplane_control::{Constellation, Engine, Preset};

    #[test]
    fn every_ordered_gateway_pair_has_its_own_key_and_spi() {
        assert_ne!(sa_key(1, 2), sa_key(2, 1));
        assert_ne!(spi(1, 2), spi(2, 1));
        assert_eq!(mac(0x0102, 0x0304, 1), [2, 1, 2, 3, 4, 1]);
    }

    const STEP: u64 = 100_000_000;

    /// A schedule's publications over Starlink-550 with `n_gw` gateways
    /// spread over the top-100 list, every node's neighbours over them,
    /// the label plan and the stations.
    fn schedule(
        n_gw: usize,
        epochs: usize,
    ) -> (
        Vec<Publication>,
        Neighbours,
        LabelPlan,
        usize,
        GroundStations,
    ) {
        let all = GroundStations::top100();
        let mut st = GroundStations::default();
        for (i, s) in all
            .stations
            .iter()
            .step_by(all.len() / n_gw)
            .take(n_gw)
            .enumerate()
        {
            let mut s = s.clone();
            s.gid = i as u32;
            st.stations.push(s);
        }
        let engine =
            Engine::new(Constellation::preset(Preset::Starlink550), st.clone()).expect("engine");
        let n_sats = engine.constellation().len();
        let plan = *engine.label_plan();
        let mut sched = Scheduler::new(
            engine,
            ScheduleConfig {
                lead_ns: STEP,
                step_ns: STEP,
                start_s: 40.0,
            },
        );
        let mut pubs: Vec<Publication> = Vec::new();
        let mut now = 0;
        while pubs.len() < epochs {
            let r = sched.tick(now).expect("tick");
            for p in sched.pending().cloned().into_iter().chain(r) {
                if !pubs
                    .iter()
                    .any(|q| q.epoch == p.epoch && q.activate_at_ns == p.activate_at_ns)
                {
                    pubs.push(p);
                }
            }
            now = sched.next_wakeup_ns().max(now + 1);
        }
        let mut nb: Neighbours = vec![BTreeSet::new(); n_sats + n_gw];
        for p in &pubs {
            add_neighbours(&mut nb, &p.topology, n_sats, n_gw);
        }
        (pubs, nb, plan, n_sats, st)
    }

    /// The node `id` twice: as the agent installs (every install with the
    /// satellite labels) and on demand.
    fn pair(id: usize, n_sats: usize, nb: &Neighbours, st: &GroundStations) -> (Node, Node) {
        let make = || {
            if id < n_sats {
                Node::satellite(id as NodeId, n_sats, &nb[id], st)
            } else {
                let peers: Vec<u32> = (0..st.len() as u32).collect();
                Node::gateway((id - n_sats) as u32, n_sats, &nb[id], &peers, st)
            }
            .expect("node")
        };
        let (mut plain, lazy) = (make(), make());
        plain.set_sat_labels(SatLabels::Always);
        plain.set_install_path(InstallPath::Agent);
        plain.reuse_lfib = false;
        (plain, lazy)
    }

    /// Tables built into the LFIB of those they replace are the ones
    /// built anew, entry for entry, at every install, with and without
    /// the satellite labels on demand, over epochs some of which a node
    /// skips.
    #[test]
    fn tables_built_into_the_ones_replaced_are_the_ones_built_anew() {
        let (pubs, nb, plan, n_sats, st) = schedule(5, 12);
        let failures = Failures::new();
        let last = pubs.last().map_or(0, |p| p.activate_at_ns);
        let gw0 = n_sats;
        let mut ids: Vec<usize> = nb[gw0].iter().take(2).map(|&x| x as usize).collect();
        ids.extend([11, 900, gw0, n_sats + 2]);
        let mut rng = 0xfeed_u64;
        let mut compared = 0;
        for &id in &ids {
            for mode in [SatLabels::Always, SatLabels::OnDemand] {
                let (mut fresh, mut reused) = pair(id, n_sats, &nb, &st);
                fresh.set_sat_labels(mode);
                reused.set_sat_labels(mode);
                reused.set_install_path(InstallPath::Agent);
                assert!(!fresh.reuse_lfib && reused.reuse_lfib);
                let mut now = 0;
                while now <= last {
                    now += super::super::next_random(&mut rng) % (STEP * 2);
                    let need = super::super::next_random(&mut rng).is_multiple_of(3);
                    let a = fresh
                        .tables(&pubs, now, STEP, &plan, &failures, need)
                        .expect("fresh")
                        .map(|t| (entries(t, |_| true), rest(t), t.lfib.len()));
                    let b = reused
                        .tables(&pubs, now, STEP, &plan, &failures, need)
                        .expect("reused")
                        .map(|t| (entries(t, |_| true), rest(t), t.lfib.len()));
                    match (a, b) {
                        (Some((ea, ra, la)), Some((eb, rb, lb))) => {
                            same(&ea, &eb, &format!("node {id} {mode:?} at {now}"));
                            assert_eq!((ra, la), (rb, lb), "node {id} {mode:?} at {now}");
                            compared += 1;
                        }
                        (None, None) => {}
                        _ => panic!("node {id} at {now}: tables in force differ"),
                    }
                }
                assert_eq!(fresh.installs, reused.installs);
            }
        }
        assert!(compared >= 60, "{compared}");
    }

    /// Each used LFIB slot (label, entry) of `t`, those `keep` accepts.
    fn entries(t: &Tables, keep: impl Fn(u32) -> bool) -> Vec<(u32, String)> {
        t.lfib
            .iter()
            .filter(|&(l, _)| keep(l))
            .map(|(l, e)| (l, format!("{e:?}")))
            .collect()
    }

    /// Panics with the first entry where `a` and `b` differ.
    fn same(a: &[(u32, String)], b: &[(u32, String)], what: &str) {
        if let Some((x, y)) = a.iter().zip(b).find(|(x, y)| x != y) {
            panic!("{what}: {x:?} != {y:?}");
        }
        assert_eq!(a.len(), b.len(), "{what}: entries");
    }

    /// Everything but the LFIB that a frame's verdict depends on, or
    /// that the management socket shows (the tables' install number
    /// aside).
    fn rest(t: &Tables) -> String {
        // Where the FEC prefix tables send each prefix's first, middle
        // and last address, and the addresses just outside it.
        let mut fec4 = Vec::new();
        for (p, _) in &t.fec_prefixes {
            if let std::net::IpAddr::V4(a) = p.addr {
                let a = u32::from(a);
                let span = 1u32.checked_shl(32 - u32::from(p.len)).unwrap_or(0);
                let ends = [0, span / 2, span.wrapping_sub(1), span];
                for x in ends
                    .map(|d| a.wrapping_add(d))
                    .into_iter()
                    .chain([a.wrapping_sub(1)])
                {
                    fec4.push(t.fec4.lookup_v4(x.to_be_bytes()));
                }
            }
        }
        let mut sa_in: Vec<_> = t
            .sa_in
            .iter()
            .map(|(spi, i)| {
                let admits: Vec<bool> = t
                    .fec_prefixes
                    .iter()
                    .filter_map(|(p, _)| match p.addr {
                        std::net::IpAddr::V4(a) => Some(i.admits_v4(a.octets())),
                        std::net::IpAddr::V6(_) => None,
                    })
                    .collect();
                (
                    *spi,
                    i.sa.tunnel_src,
                    i.sa.tunnel_dst,
                    i.sources.to_vec(),
                    admits,
                )
            })
            .collect();
        sa_in.sort_by_key(|x| x.0);
        let mut node_routes: Vec<_> = t.node_routes.iter().collect();
        node_routes.sort_by_key(|x| *x.0);
        let mut negotiated: Vec<_> = t.negotiated.iter().collect();
        negotiated.sort();
        let sa_out: Vec<_> = t
            .sa_out
            .iter()
            .map(|s| (s.spi, s.tunnel_src, s.tunnel_dst, s.esn, s.udp_encap))
            .collect();
        format!(
            "{:?} {:?} {fec4:?} {:?} {:?} {:?} {:?} {sa_out:?} {sa_in:?} {node_routes:?} {:?} {:?} {:?} {:?} {} {:?} {:?} {:?} {:?} {:?}",
            t.fecs,
            t.fec_prefixes,
            t.delivers,
            t.own_addrs,
            t.port_tx_max,
            t.local_addrs,
            t.port_names,
            t.port_macs,
            t.deliver_prefixes,
            t.node_addr,
            t.mtu,
            t.port_addrs,
            t.addressed_ports,
            t.routes,
            negotiated,
            t.lfib.stack(0),
        )
    }

    /// Tables built straight from the snapshot's entries are the ones the
    /// agent's install path builds, entry for entry and install for
    /// install, with the satellite labels always and on demand, over
    /// epochs some of which a node skips; and the outbound SAs they hold
    /// keep their state across installs, as the SA store keeps it.
    #[test]
    fn direct_installs_are_the_agents() {
        let (pubs, nb, plan, n_sats, st) = schedule(6, 12);
        let failures = Failures::new();
        let last = pubs.last().map_or(0, |p| p.activate_at_ns);
        let gw0 = n_sats;
        let mut ids: Vec<usize> = nb[gw0].iter().take(2).map(|&x| x as usize).collect();
        ids.extend([3, 1000, gw0, n_sats + 1, n_sats + 5]);
        let mut rng = 0xd1_7ec7_u64;
        let mut compared = [0; 2];
        for &id in &ids {
            for mode in [SatLabels::Always, SatLabels::OnDemand] {
                let (mut agent, mut direct) = pair(id, n_sats, &nb, &st);
                agent.set_sat_labels(mode);
                direct.set_sat_labels(mode);
                assert!(direct.direct.is_some() && direct.path == InstallPath::Direct);
                let mut now = 0;
                let mut sa_out: Vec<*const crate::sa::SaOut> = Vec::new();
                while now <= last {
                    now += super::super::next_random(&mut rng) % (STEP * 2);
                    let need = super::super::next_random(&mut rng).is_multiple_of(3);
                    let a = agent
                        .tables(&pubs, now, STEP, &plan, &failures, need)
                        .expect("agent")
                        .map(|t| (entries(t, |_| true), rest(t), t.lfib.len(), t.epoch));
                    let b = direct
                        .tables(&pubs, now, STEP, &plan, &failures, need)
                        .expect("direct");
                    if let Some(t) = b {
                        let now_out: Vec<_> = t.sa_out.iter().map(std::sync::Arc::as_ptr).collect();
                        if !sa_out.is_empty() {
                            assert_eq!(sa_out, now_out, "node {id}: the same SAs");
                        }
                        sa_out = now_out;
                    }
                    let b = b.map(|t| (entries(t, |_| true), rest(t), t.lfib.len(), t.epoch));
                    match (a, b) {
                        (Some((ea, ra, la, xa)), Some((eb, rb, lb, xb))) => {
                            same(&ea, &eb, &format!("node {id} {mode:?} at {now}"));
                            assert_eq!((ra, la, xa), (rb, lb, xb), "node {id} {mode:?} at {now}");
                            compared[usize::from(id >= n_sats)] += 1;
                        }
                        (None, None) => {}
                        _ => panic!("node {id} at {now}: tables in force differ"),
                    }
                }
                assert_eq!(agent.installs, direct.installs);
            }
        }
        assert!(compared[0] >= 40 && compared[1] >= 40, "{compared:?}");
    }

    /// Tables built on demand are the agent's wherever a frame without a
    /// satellite label can look, and all of the agent's once a frame may
    /// need one, whichever epochs a node skips before (the first hops it
    /// carries are then computed late, from the graph of the epoch that
    /// committed them).
    #[test]
    fn tables_on_demand_are_the_agents_wherever_a_frame_looks() {
        let (pubs, nb, plan, n_sats, st) = schedule(6, 14);
        let failures = Failures::new();
        let last = pubs.last().map_or(0, |p| p.activate_at_ns);
        // Satellites that carry gateway traffic (a gateway's neighbours),
        // satellites elsewhere, and gateways.
        let gw0 = n_sats;
        let mut ids: Vec<usize> = nb[gw0].iter().take(2).map(|&x| x as usize).collect();
        ids.extend([7, 800, n_sats - 1, gw0, n_sats + 3]);
        let mut rng = 0x1234_5678_u64;
        let mut checked = (0, 0);
        for &id in &ids {
            let (mut plain, mut lazy) = pair(id, n_sats, &nb, &st);
            let mut now = 0;
            while now <= last {
                // Steps of up to 2.5 epochs: some epochs pass unseen.
                now += super::super::next_random(&mut rng) % (STEP * 5 / 2);
                let need = super::super::next_random(&mut rng).is_multiple_of(4);
                let a = plain
                    .tables(&pubs, now, STEP, &plan, &failures, false)
                    .expect("plain")
                    .map(|t| (entries(t, |_| true), rest(t)));
                let b = lazy
                    .tables(&pubs, now, STEP, &plan, &failures, need)
                    .expect("on demand")
                    .map(|t| (entries(t, |_| true), rest(t)));
                let (Some((full, rest_a)), Some((part, rest_b))) = (a, b) else {
                    continue;
                };
                assert_eq!(rest_a, rest_b, "node {id} at {now}");
                if need {
                    same(&full, &part, &format!("node {id} at {now}: all labels"));
                    checked.0 += 1;
                } else if part != full {
                    // Built without them (not yet needed in this epoch).
                    let gw_only: Vec<_> = full
                        .iter()
                        .filter(|(l, _)| plan.decode_sat(*l).is_none())
                        .cloned()
                        .collect();
                    same(
                        &gw_only,
                        &part,
                        &format!("node {id} at {now}: all but satellite labels"),
                    );
                    checked.1 += 1;
                }
            }
        }
        assert!(checked.0 >= 10 && checked.1 >= 10, "{checked:?}");
    }

    /// The frames [`super::super::sat_labels::needs_sat_labels`] passes
    /// get the same verdict and leave with the same bytes from tables
    /// without the satellite labels as from the agent's.
    #[test]
    fn frames_that_need_no_satellite_label_fare_alike_without_them() {
        let (pubs, nb, plan, n_sats, st) = schedule(4, 4);
        let failures = Failures::new();
        let now = pubs[3].activate_at_ns;
        let mut rng = 0x5eed_u64;
        let mut passed = 0;
        let first = nb[n_sats].iter().next().map_or(0, |&s| s as usize);
        for id in [first, 100, n_sats, n_sats + 2] {
            let (mut plain, mut lazy) = pair(id, n_sats, &nb, &st);
            let full = plain
                .tables(&pubs, now, STEP, &plan, &failures, false)
                .expect("plain")
                .expect("in force");
            let part = lazy
                .tables(&pubs, now, STEP, &plan, &failures, false)
                .expect("on demand")
                .expect("in force");
            let ports = full.port_macs.len() as u64;
            for _ in 0..3000 {
                let r = |rng: &mut u64| super::super::next_random(rng);
                let port = (r(&mut rng) % ports) as u16;
                let mut d = Vec::with_capacity(128);
                d.extend_from_slice(&full.port_macs[usize::from(port)]);
                d.extend_from_slice(&[0x02, 0, 0, 0, 0, 9]);
                let et: &[u8] = match r(&mut rng) % 8 {
                    0 => &[0x08, 0x00],
                    1 => &[0x81, 0x00, 0x00, 0x05, 0x88, 0x47],
                    _ => &[0x88, 0x47],
                };
                d.extend_from_slice(et);
                let depth = 1 + r(&mut rng) % 3;
                for k in 0..depth {
                    let label = match r(&mut rng) % 6 {
                        0 => plan.sat_label(r(&mut rng), (r(&mut rng) % n_sats as u64) as u32),
                        1 => Ok((r(&mut rng) % 70_000) as u32),
                        _ => plan.label(r(&mut rng), (r(&mut rng) % st.len() as u64) as u32),
                    }
                    .expect("label");
                    let bos = u32::from(k + 1 == depth);
                    let ttl = (r(&mut rng) % 4) as u32 * 40;
                    d.extend_from_slice(&(label << 12 | bos << 8 | ttl).to_be_bytes());
                }
                let body = 20 + r(&mut rng) % 80;
                d.push(0x45);
                d.extend((1..body).map(|_| r(&mut rng) as u8));
                if super::super::sat_labels::needs_sat_labels(&d, &plan) {
                    continue;
                }
                let run = |t: &Tables| {
                    let mut b: Batch<HeapFrame> = Batch::new();
                    let mut f = HeapFrame::with_room(256);
                    f.reset_from(&d);
                    let _ = b.push(f);
                    b.set_rx_port(port);
                    crate::stage::process(&mut b, t);
                    (b.verdicts()[0], b.frames()[0].data().to_vec())
                };
                assert_eq!(run(full), run(part), "node {id}, frame {d:02x?}");
                passed += 1;
            }
        }
        assert!(passed > 5000, "{passed}");
    }
}
