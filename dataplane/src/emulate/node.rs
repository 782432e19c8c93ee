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
//! before, it compiles that one first, so that the previous satellite-label
//! block it carries is the one the agent would carry.
//!
//! Keys: each ordered gateway pair has its own AES-128-GCM key and salt,
//! derived from the two gateway ids inside the emulator (a static key per
//! SA; no IKE, no rekeying). Tunnel endpoints are the gateways' node
//! addresses, 64-bit sequence numbers, as `meshplane mesh-plan` renders them.

use crate::config::{AfXdpPortConfig, Mac, NodeConfig, PortConfig};
use crate::control::agent::early_install_ns;
use crate::control::{ControlError, PublicationInstaller, RouteInstaller};
use crate::frame::PortId;
use crate::mesh::render::node_addr;
use crate::tables::{SaStore, Tables};
use meshplane_control::labels::LabelPlan;
use meshplane_control::schedule::Publication;
use meshplane_control::tables::{default_gateway_prefix, port_name};
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
    /// The tables in force and the epoch they belong to.
    tables: Option<(u64, Tables)>,
    committed: Option<u64>,
    /// Tables built.
    pub installs: u64,
}

/// What the neighbours of every node are over the run.
pub type Neighbours = Vec<BTreeSet<NodeId>>;

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
        Ok(Node {
            id,
            gateway,
            port_peer,
            port_of,
            link_base: 0,
            base: cfg,
            installer: PublicationInstaller::new(installer),
            store: SaStore::default(),
            tables: None,
            committed: None,
            installs: 0,
        })
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
    /// first if they are new.
    pub fn tables(
        &mut self,
        pubs: &[Publication],
        now_ns: u64,
        step_ns: u64,
        plan: &LabelPlan,
        failures: &Failures,
    ) -> Result<Option<&Tables>, ControlError> {
        let Some((p, prev)) = self.due(pubs, now_ns, step_ns) else {
            return Ok(None);
        };
        if self.tables.as_ref().map(|(e, _)| *e) != Some(p.epoch) {
            if let Some(prev) = prev {
                if self.committed != Some(prev.epoch) {
                    let c = self.installer.compile(&self.base, prev, plan, failures)?;
                    self.installer.commit(c.sat_hops);
                }
            }
            let c = self.installer.compile(&self.base, p, plan, failures)?;
            self.installs += 1;
            let t = Tables::from_config_with(&c.cfg, self.installs, &mut self.store)?;
            self.installer.commit(c.sat_hops);
            self.committed = Some(p.epoch);
            self.tables = Some((p.epoch, t));
        }
        Ok(self.tables.as_ref().map(|(_, t)| t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ordered_gateway_pair_has_its_own_key_and_spi() {
        assert_ne!(sa_key(1, 2), sa_key(2, 1));
        assert_ne!(spi(1, 2), spi(2, 1));
        assert_eq!(mac(0x0102, 0x0304, 1), [2, 1, 2, 3, 4, 1]);
    }
}
