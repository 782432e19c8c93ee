//! Computed routes -> this node's tables: the control plane's FEC and LFIB
//! entries of one node, turned into the same entries a static configuration
//! holds, so the data plane installs them unchanged.
//!
//! A port is tied to its neighbour by name: `isl{X}` leads to satellite
//! node `X`, `gsl{X}` to ground-station node `X` (see
//! [`meshplane_control::tables::port_name`]); frames on it go to the port's
//! `peer_mac`. An outbound SA serves the egress gateway its `peer` names.
//! Routes over a link this node has no port for, or toward a gateway it
//! has no SA for, are left out and counted.

use super::ControlError;
use crate::config::{FecConfig, LfibAction, LfibConfig, Mac, NodeConfig, Prefix, SaDir};
use meshplane_control::tables::{self as ctables, NodeTables, TableSet};
use meshplane_control::{GroundStations, NodeId};
use std::collections::HashMap;

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
    /// Routes over a link this node has no port for.
    pub no_port: usize,
    /// FEC routes toward a gateway without an outbound SA here.
    pub no_sa: usize,
}

/// Turns one node's computed tables into its configuration.
#[derive(Debug)]
pub struct RouteInstaller {
    node: NodeId,
    /// Neighbour node -> (port name, destination MAC).
    ports: HashMap<NodeId, (String, Mac)>,
    /// Egress gateway id -> outbound SA (SPI).
    sa_by_gid: HashMap<u32, u32>,
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
        Ok(RouteInstaller {
            node,
            ports,
            sa_by_gid,
        })
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// `cfg` with this node's routes from `set` added before its static
    /// FEC and LFIB entries (a static entry for the same prefix or label
    /// wins).
    pub fn node_config(&self, cfg: &NodeConfig, set: &TableSet) -> (NodeConfig, InstallCounts) {
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
            let Some(&sa) = self.sa_by_gid.get(&r.egress_gid) else {
                counts.no_sa += 1;
                continue;
            };
            fec.push(FecConfig {
                prefix: Prefix {
                    addr: r.prefix.0,
                    len: r.prefix.1,
                },
                sa,
                label: r.label,
                port: port.clone(),
                next_hop_mac: *mac,
            });
        }
        let mut lfib = Vec::with_capacity(mine.lfib.len() + cfg.lfib.len());
        for r in &mine.lfib {
            let entry = match r.action {
                ctables::LfibAction::Pop if r.next_hop == self.node => LfibConfig {
                    label: r.label,
                    action: LfibAction::Pop,
                    out_label: None,
                    port: None,
                    next_hop_mac: None,
                },
                action => {
                    let Some((port, mac)) = self.ports.get(&r.next_hop) else {
                        counts.no_port += 1;
                        continue;
                    };
                    let (action, out_label) = match action {
                        ctables::LfibAction::Swap { out_label } => {
                            (LfibAction::Swap, Some(out_label))
                        }
                        ctables::LfibAction::Pop => (LfibAction::Pop, None),
                    };
                    LfibConfig {
                        label: r.label,
                        action,
                        out_label,
                        port: Some(port.clone()),
                        next_hop_mac: Some(*mac),
                    }
                }
            };
            lfib.push(entry);
        }
        counts.fec = fec.len();
        counts.lfib = lfib.len();
        fec.append(&mut out.fec);
        lfib.append(&mut out.lfib);
        out.fec = fec;
        out.lfib = lfib;
        (out, counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_name_their_neighbours() {
        assert_eq!(neighbor_of("isl12"), Some(12));
        assert_eq!(neighbor_of("gsl1590"), Some(1590));
        assert_eq!(neighbor_of("lan0"), None);
        assert_eq!(neighbor_of("isl"), None);
        assert_eq!(neighbor_of("isl+1"), None);
    }
}
