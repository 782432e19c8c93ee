//! Computed routes -> this node's tables: the control plane's FEC and LFIB
//! entries of one node, turned into the same entries a static configuration
//! holds, so the data plane installs them unchanged.
//!
//! A port is tied to its neighbour by name: `isl{X}` leads to satellite
//! node `X`, `gsl{X}` to ground-station node `X` (see
//! [`meshplane_control::tables::port_name`]); frames on it go to the port's
//! `peer_mac`. An outbound SA serves the egress gateway its `peer` names;
//! on a gateway with `[ike]`, a `[[ike.peer]]` whose address is a
//! gateway's node address (`[control] node_prefix`) serves that gateway:
//! its FECs name the peer, and use the Child SA negotiated with it once
//! there is one (until then their packets drop as `sa_pending`).
//! Routes over a link this node has no port for, or toward a gateway it
//! has neither an SA nor an IKE peer for, are left out and counted.
//!
//! Besides the snapshot's entries (gateway labels), a node installs the
//! satellites' node labels from its own first hops
//! ([`meshplane_control::tables::sat_label_lfib`]), handed in by the agent.

use super::ControlError;
use crate::config::{FecConfig, LfibAction, LfibConfig, Mac, NodeConfig, Prefix, SaDir};
use meshplane_control::labels::LabelPlan;
use meshplane_control::routing::{FirstHops, Router};
use meshplane_control::schedule::Publication;
use meshplane_control::tables::{self as ctables, sat_label_lfib, NodeTables, SatHops, TableSet};
use meshplane_control::{Failures, GroundStations, NodeId};
use std::collections::{BTreeMap, HashMap};

/// Frames on a link without a configured peer MAC go to broadcast (the
/// link is point to point).
const BROADCAST: Mac = [0xff; 6];

/// What one installation left out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InstallCounts {
    /// FEC entries installed.
    pub fec: usize,
    /// LFIB entries installed.
    pub lfib: usize,
    /// Of those, entries for satellites' node labels.
    pub sat_lfib: usize,
    /// Routes over a link this node has no port for.
    pub no_port: usize,
    /// FEC routes toward a gateway without an outbound SA or IKE peer here.
    pub no_sa: usize,
}

/// Where one node sends traffic toward each egress gateway: gid -> the
/// port it leaves by (`isl6`), for the routes it installs.
pub type NextHops = BTreeMap<u32, String>;

/// A change of the port toward one egress gateway between two installs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteChange {
    /// The egress gateway.
    pub egress_gid: u32,
    /// The port before, `None` when there was no route.
    pub old: Option<String>,
    /// The port now, `None` when the route is gone.
    pub new: Option<String>,
}

impl std::fmt::Display for RouteChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let port = |p: &Option<String>| p.clone().unwrap_or_else(|| "none".into());
        write!(
            f,
            "egress gateway {}: next hop {} -> {}",
            self.egress_gid,
            port(&self.old),
            port(&self.new)
        )
    }
}

/// The egress gateways whose next hop differs from `old` to `new`, in gid
/// order.
pub fn route_changes(old: &NextHops, new: &NextHops) -> Vec<RouteChange> {
    let gids: std::collections::BTreeSet<u32> = old.keys().chain(new.keys()).copied().collect();
    gids.into_iter()
        .filter_map(|g| {
            let (o, n) = (old.get(&g), new.get(&g));
            (o != n).then(|| RouteChange {
                egress_gid: g,
                old: o.cloned(),
                new: n.cloned(),
            })
        })
        .collect()
}

/// Turns one node's computed tables into its configuration.
#[derive(Debug)]
pub struct RouteInstaller {
    node: NodeId,
    /// Neighbour node -> (port name, destination MAC).
    ports: HashMap<NodeId, (String, Mac)>,
    /// Egress gateway id -> outbound SA (SPI).
    sa_by_gid: HashMap<u32, u32>,
    /// Egress gateways keyed by IKE: gid -> the peer's tunnel address.
    peer_by_gid: HashMap<u32, std::net::Ipv4Addr>,
}

/// The neighbour a port named `isl{X}` / `gsl{X}` leads to.
fn neighbor_of(port: &str) -> Option<NodeId> {
    let id = port
        .strip_prefix("isl")
        .or_else(|| port.strip_prefix("gsl"))?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

impl RouteInstaller {
    /// The installer of node `node` (a node id: satellites `0..n_sats`,
    /// ground station `gid` as `n_sats + gid`) configured by `cfg`.
    pub fn new(
        cfg: &NodeConfig,
        node: NodeId,
        n_sats: usize,
        stations: &GroundStations,
    ) -> Result<Self, ControlError> {
        let mut ports = HashMap::new();
        for p in &cfg.ports {
            if let Some(nb) = neighbor_of(&p.name) {
                let is_sat = (nb as usize) < n_sats;
                let named_sat = p.name.starts_with("isl");
                if is_sat != named_sat || (nb as usize) >= n_sats + stations.len() {
                    return Err(ControlError::Config(format!(
                        "port {:?}: node {nb} is not a {} of this constellation ({n_sats} satellites, {} ground stations)",
                        p.name,
                        if named_sat { "satellite" } else { "ground station" },
                        stations.len()
                    )));
                }
                ports.insert(nb, (p.name.clone(), p.peer_mac.unwrap_or(BROADCAST)));
            }
        }
        let mut sa_by_gid = HashMap::new();
        for s in cfg.sa.iter().filter(|s| s.dir == SaDir::Out) {
            if let Some(peer) = &s.peer {
                let gid = stations.find(peer).map_err(|e| {
                    ControlError::Config(format!("SA {}: peer {peer:?}: {e}", s.spi))
                })?;
                sa_by_gid.insert(gid, s.spi);
            }
        }
        // IKE peers that are the constellation's gateways (by node
        // address); a static SA to the same gateway wins.
        let mut peer_by_gid = HashMap::new();
        let prefix = cfg.control.as_ref().and_then(|c| c.node_prefix);
        if let (Some(ike), Some(prefix)) = (&cfg.ike, prefix) {
            for p in &ike.peers {
                let gid = crate::config::node_of_address(prefix, p.address)
                    .and_then(|id| id.checked_sub(n_sats as u32))
                    .filter(|&gid| (gid as usize) < stations.len());
                match gid {
                    Some(gid) if !sa_by_gid.contains_key(&gid) => {
                        peer_by_gid.insert(gid, p.address);
                    }
                    Some(_) => {}
                    None => tracing::warn!(
                        peer = %p.address,
                        "[[ike.peer]] is no gateway's node address: no route is keyed by it"
                    ),
                }
            }
        }
        Ok(RouteInstaller {
            node,
            ports,
            sa_by_gid,
            peer_by_gid,
        })
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Whether traffic toward gateway `gid` has an SA, or an IKE peer to
    /// negotiate one with.
    fn keyed(&self, gid: u32) -> bool {
        self.sa_by_gid.contains_key(&gid) || self.peer_by_gid.contains_key(&gid)
    }

    /// The port this node sends on toward each egress gateway under `set`,
    /// for the routes [`RouteInstaller::node_config`] installs: a
    /// gateway's FEC, a satellite's LFIB entries of the set's own label
    /// block (`plan` tells their gateway; the previous epoch's entries,
    /// kept while they drain, are not where new traffic goes).
    pub fn next_hops(&self, set: &TableSet, plan: &LabelPlan) -> NextHops {
        let mut out = NextHops::new();
        let Some(mine) = set.node(self.node) else {
            return out;
        };
        for r in &mine.fec {
            if let (Some((port, _)), true) = (self.ports.get(&r.next_hop), self.keyed(r.egress_gid))
            {
                out.entry(r.egress_gid).or_insert_with(|| port.clone());
            }
        }
        let block = LabelPlan::block_of(set.epoch);
        for r in &mine.lfib {
            if !matches!(r.action, ctables::LfibAction::Swap { .. }) {
                continue;
            }
            let (Some((b, gid)), Some((port, _))) =
                (plan.decode(r.label), self.ports.get(&r.next_hop))
            else {
                continue;
            };
            if b == block {
                out.entry(gid).or_insert_with(|| port.clone());
            }
        }
        out
    }

    /// `cfg` with this node's routes from `set` and its satellite-label
    /// entries `sat_labels` added before its static FEC and LFIB entries
    /// (a static entry for the same prefix or label wins).
    pub fn node_config(
        &self,
        cfg: &NodeConfig,
        set: &TableSet,
        sat_labels: &[ctables::LfibRoute],
    ) -> (NodeConfig, InstallCounts) {
        let mut out = cfg.clone();
        let mut counts = InstallCounts::default();
        let empty = NodeTables::default();
        let mine = set.node(self.node).unwrap_or(&empty);
        let mut fec = Vec::with_capacity(mine.fec.len() + cfg.fec.len());
        for r in &mine.fec {
            let Some((port, mac)) = self.ports.get(&r.next_hop) else {
                counts.no_port += 1;
                continue;
            };
            // A static SA, else the IKE peer (its SA merged in later).
            let (sa, peer) = match (
                self.sa_by_gid.get(&r.egress_gid),
                self.peer_by_gid.get(&r.egress_gid),
            ) {
                (Some(&sa), _) => (sa, None),
                (None, Some(&peer)) => (0, Some(peer)),
                (None, None) => {
                    counts.no_sa += 1;
                    continue;
                }
            };
            fec.push(FecConfig {
                prefix: Prefix {
                    addr: r.prefix.0,
                    len: r.prefix.1,
                },
                sa,
                peer,
                label: Some(r.label),
                port: port.clone(),
                next_hop_mac: *mac,
            });
        }
        let mut lfib = Vec::with_capacity(mine.lfib.len() + sat_labels.len() + cfg.lfib.len());
        for r in &mine.lfib {
            if let Some(entry) = self.lfib_entry(r, &mut counts) {
                lfib.push(entry);
            }
        }
        let gateway_labels = lfib.len();
        for r in sat_labels {
            if let Some(entry) = self.lfib_entry(r, &mut counts) {
                lfib.push(entry);
            }
        }
        counts.sat_lfib = lfib.len() - gateway_labels;
        counts.fec = fec.len();
        counts.lfib = lfib.len();
        fec.append(&mut out.fec);
        lfib.append(&mut out.lfib);
        out.fec = fec;
        out.lfib = lfib;
        (out, counts)
    }

    /// The configuration of one computed LFIB entry, `None` (counted)
    /// when it leaves by a link this node has no port for. A pop whose
    /// next hop is the node itself terminates here.
    fn lfib_entry(&self, r: &ctables::LfibRoute, counts: &mut InstallCounts) -> Option<LfibConfig> {
        Some(match r.action {
            ctables::LfibAction::Pop if r.next_hop == self.node => LfibConfig {
                label: r.label,
                action: LfibAction::Pop,
                out_label: None,
                port: None,
                next_hop_mac: None,
                push: Vec::new(),
            },
            action => {
                let Some((port, mac)) = self.ports.get(&r.next_hop) else {
                    counts.no_port += 1;
                    return None;
                };
                let (action, out_label) = match action {
                    ctables::LfibAction::Swap { out_label } => (LfibAction::Swap, Some(out_label)),
                    ctables::LfibAction::Pop => (LfibAction::Pop, None),
                };
                LfibConfig {
                    label: r.label,
                    action,
                    out_label,
                    port: Some(port.clone()),
                    next_hop_mac: Some(*mac),
                    push: Vec::new(),
                }
            }
        })
    }
}

/// One node's share of each publication, in the order a node installs
/// them: its gateway-label routes from the snapshot and the satellites'
/// node labels from its own first hops over the epoch's graph (one
/// Dijkstra from itself), the previous block as the last install of that
/// block had it (make-before-break). The control agent and the emulator
/// both install through this.
#[derive(Debug)]
pub struct PublicationInstaller {
    installer: RouteInstaller,
    /// Scratch space for this node's first hops toward every satellite.
    router: Router,
    /// The first hops last computed (their buffers are reused).
    first: FirstHops,
    /// The first hops the last install of each satellite-label block
    /// used (index = block), to carry into the next epoch's tables.
    sat_hops: [Option<SatHops>; 2],
}

/// A node's configuration for one publication, before it is committed.
#[derive(Debug)]
pub struct Compiled {
    /// The node's configuration with the computed routes.
    pub cfg: NodeConfig,
    /// What went in and what was left out.
    pub counts: InstallCounts,
    /// Where the node sends traffic toward each egress gateway.
    pub hops: NextHops,
    /// The first hops toward the satellites it used, to
    /// [`PublicationInstaller::commit`] once its tables are in place.
    pub sat_hops: SatHops,
}

impl PublicationInstaller {
    /// Installs through `installer`.
    pub fn new(installer: RouteInstaller) -> Self {
        PublicationInstaller {
            installer,
            router: Router::new(),
            first: FirstHops::default(),
            sat_hops: [None, None],
        }
    }

    /// The node's route installer.
    pub fn installer(&self) -> &RouteInstaller {
        &self.installer
    }

    /// `base` with this node's routes of publication `p` (labels from
    /// `plan`; `failures` as the schedule knows them).
    pub fn compile(
        &mut self,
        base: &NodeConfig,
        p: &Publication,
        plan: &LabelPlan,
        failures: &Failures,
    ) -> Result<Compiled, ControlError> {
        let (sat, current) = self.sat_labels(p, plan, failures)?;
        let (cfg, counts) = self.installer.node_config(base, &p.tables, &sat);
        let hops = self.installer.next_hops(&p.tables, plan);
        Ok(Compiled {
            cfg,
            counts,
            hops,
            sat_hops: current,
        })
    }

    /// The LFIB entries of the satellites' node labels that
    /// [`PublicationInstaller::compile`] adds to this node's routes of
    /// publication `p` (its first hops over `p`'s graph, the other block's
    /// as last committed), and those first hops, to
    /// [`PublicationInstaller::commit`] once the tables are in place.
    pub fn sat_labels(
        &mut self,
        p: &Publication,
        plan: &LabelPlan,
        failures: &Failures,
    ) -> Result<(Vec<ctables::LfibRoute>, SatHops), ControlError> {
        let node = self.installer.node();
        let epoch = p.tables.epoch;
        self.router
            .first_hops_into(&p.topology, node, &mut self.first);
        let current = SatHops {
            node,
            epoch,
            hops: self.first.hop.clone(),
        };
        let previous = self.sat_hops[LabelPlan::block_of(epoch ^ 1)].as_ref();
        let sat = sat_label_lfib(plan, p.topology.n_sats(), &current, previous, failures)
            .map_err(meshplane_control::Error::from)?;
        Ok((sat, current))
    }

    /// Records the first hops of an install that took effect: the next
    /// epoch of the other label block carries them.
    pub fn commit(&mut self, hops: SatHops) {
        let block = LabelPlan::block_of(hops.epoch);
        self.sat_hops[block] = Some(hops);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hops(v: &[(u32, &str)]) -> NextHops {
        v.iter().map(|&(g, p)| (g, p.to_string())).collect()
    }

    #[test]
    fn route_changes_name_each_egress_whose_port_moved() {
        let old = hops(&[(1, "isl6"), (2, "isl6"), (3, "isl7")]);
        let new = hops(&[(1, "isl6"), (2, "isl7"), (4, "isl6")]);
        let shown: Vec<String> = route_changes(&old, &new)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "egress gateway 2: next hop isl6 -> isl7",
                "egress gateway 3: next hop isl7 -> none",
                "egress gateway 4: next hop none -> isl6",
            ]
        );
        assert_eq!(route_changes(&new, &new), []);
    }

    #[test]
    fn ports_name_their_neighbours() {
        assert_eq!(neighbor_of("isl12"), Some(12));
        assert_eq!(neighbor_of("gsl1590"), Some(1590));
        assert_eq!(neighbor_of("lan0"), None);
        assert_eq!(neighbor_of("isl"), None);
        assert_eq!(neighbor_of("isl+1"), None);
    }
}
