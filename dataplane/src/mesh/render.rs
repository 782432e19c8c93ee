//! A [`MeshPlan`] rendered as node configurations (TOML, the same files
//! `meshplane run --config` reads) and the link table a script turns into
//! veth pairs.
//!
//! Conventions, all derived from node ids so that every file agrees:
//! * the port of node `A` toward `B` is `isl{B}`/`gsl{B}` (as the control
//!   plane names it), its interface `v{A}-{B}`, its MAC
//!   `02:AA:AA:BB:BB:01` (ids in hex);
//! * gateway `gid` serves the LAN `10.<gid/256>.<gid%256>.0/24` on port
//!   `lan0` (interface `v{A}-lan`, MAC `02:AA:AA:ff:ff:01`); its host is
//!   `.2` with MAC `02:AA:AA:ff:ff:02`; the gateway's own LAN address is
//!   `.1`;
//! * every node's address is its node id in [`NODE_PREFIX`] (see
//!   [`crate::config::node_address`]): a gateway's is its tunnel address.
//!
//! No node file holds a key: the gateways negotiate their SAs with IKEv2
//! (`[ike]`), authenticating with the certificates in
//! [`RenderOptions::ike_dir`] (`NAME.pem`, `NAME.key`, `NAME.ca.pem`, as
//! `meshplane keys --ike-ca` issues them), every gateway with every other,
//! the one named first in the plan initiating; the routes the control
//! agent computes toward another gateway take the Child SA negotiated with
//! it.

use super::plan::MeshPlan;
use meshplane_control::tables::{default_gateway_prefix, port_name};
use meshplane_control::NodeId;
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// How to render.
#[derive(Clone, Debug)]
pub struct RenderOptions {
    /// `[io] backend` of every node (`afxdp`, `dpdk`, `memory`).
    pub backend: String,
    /// Polling policy (`adaptive` lets many nodes share a host).
    pub idle: String,
    /// Geometry time at the anchor: the window's start.
    pub start_s: f64,
    /// Geometry seconds per wall second.
    pub time_scale: f64,
    /// Shared clock anchor (Unix ms); `None` leaves each node its own start.
    pub anchor_unix_ms: Option<u64>,
    /// Control step, ms.
    pub step_ms: u64,
    /// A planned-outage file every node follows (an operator's input; the
    /// mesh itself writes none).
    pub failures_file: Option<PathBuf>,
    /// Where each node's notice key (`NAME.key`) and its copy of the trust
    /// file (`NAME.trust`) are: the nodes flood link-state notices
    /// (`[flood]`). `None`: no flooding.
    pub keys_dir: Option<PathBuf>,
    /// BFD's transmit and receive interval on every link, ms, and its
    /// detect multiplier.
    pub bfd: (u32, u8),
    /// Ground-station CSV (`None`: embedded top 100).
    pub ground_stations: Option<PathBuf>,
    /// Where each gateway's IKE credentials are: `NAME.pem` (its
    /// certificate, naming it), `NAME.key` (its private key) and
    /// `NAME.ca.pem` (its own copy of the CA).
    pub ike_dir: PathBuf,
    /// The hard lifetime of every Child SA the gateways negotiate,
    /// seconds (`[ike] lifetime = { hard_seconds = N }`; the soft one,
    /// which asks for the rekey, defaults below it). `None`: `[ike]`'s
    /// default.
    pub ike_child_lifetime_s: Option<u64>,
}

/// One node to start.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Node id.
    pub node: NodeId,
    /// Node (and namespace) name: `sat{ID}` or `gw{GID}`.
    pub name: String,
    /// Its configuration file text.
    pub config: String,
}

/// One link (a veth pair).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSpec {
    /// Node names of both ends.
    pub nodes: [String; 2],
    /// Interface names of both ends.
    pub ifaces: [String; 2],
    /// MACs of both ends.
    pub macs: [String; 2],
}

/// One LAN host behind a gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSpec {
    /// Host (namespace) name.
    pub name: String,
    /// The gateway's node name.
    pub gateway: String,
    /// Host-side interface, its MAC and address (`/24`).
    pub iface: String,
    /// Host MAC.
    pub mac: String,
    /// Host address.
    pub addr: Ipv4Addr,
    /// Gateway-side interface and MAC.
    pub gw_iface: String,
    /// Gateway LAN MAC (the host's next hop).
    pub gw_mac: String,
    /// The gateway's LAN address the host routes through (`.1`).
    pub gw_addr: Ipv4Addr,
}

/// Everything to bring a mesh up.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// Nodes.
    pub nodes: Vec<NodeSpec>,
    /// Links between nodes.
    pub links: Vec<LinkSpec>,
    /// One LAN host behind each gateway, in the gateways' order.
    pub hosts: Vec<HostSpec>,
}

/// Name of node `id`.
pub fn node_name(plan: &MeshPlan, id: NodeId) -> String {
    if (id as usize) < plan.n_sats {
        format!("sat{id}")
    } else {
        format!("gw{}", id as usize - plan.n_sats)
    }
}

/// MAC of node `a`'s port toward `b` (`b = 0xffff`: its LAN port; the
/// host behind it uses last byte 2).
pub fn mac(a: NodeId, b: u32, last: u8) -> String {
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{last:02x}",
        (a >> 8) & 0xff,
        a & 0xff,
        (b >> 8) & 0xff,
        b & 0xff
    )
}

fn iface(a: NodeId, b: NodeId) -> String {
    format!("v{a}-{b}")
}

fn lan_net(gid: u32) -> Ipv4Addr {
    match default_gateway_prefix(gid).0 {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

fn with_last(a: Ipv4Addr, last: u8) -> Ipv4Addr {
    let o = a.octets();
    Ipv4Addr::new(o[0], o[1], o[2], last)
}

/// The constellation's node addresses (`[control] node_prefix`).
pub const NODE_PREFIX: (Ipv4Addr, u8) = (Ipv4Addr::new(100, 64, 0, 0), 10);

/// The address of node `id` in [`NODE_PREFIX`].
pub fn node_addr(id: NodeId) -> Ipv4Addr {
    crate::config::node_address(NODE_PREFIX, id).unwrap_or(Ipv4Addr::UNSPECIFIED)
}

const LAN: u32 = 0xffff;

/// `s` as a TOML basic string, quoted and escaped (paths and option values
/// may hold quotes or backslashes).
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Renders every node's configuration, the links and the hosts.
pub fn render(plan: &MeshPlan, o: &RenderOptions) -> Rendered {
    let gw_nodes = plan.gateway_nodes();
    let all: Vec<NodeId> = plan
        .satellites
        .iter()
        .copied()
        .chain(gw_nodes.iter().copied())
        .collect();
    let sats = plan
        .satellites
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut nodes = Vec::new();
    for &id in &all {
        let name = node_name(plan, id);
        let gw = gw_nodes.iter().position(|&g| g == id);
        let mut t = String::new();
        let _ = writeln!(t, "# {name}: generated by `meshplane mesh-plan`");
        let _ = writeln!(t, "[node]\nname = \"{name}\"");
        let _ = writeln!(
            t,
            "role = \"{}\"\nidle = {}\n",
            if gw.is_some() { "gateway" } else { "satellite" },
            toml_str(&o.idle)
        );
        let _ = writeln!(t, "[io]\nbackend = {}\n", toml_str(&o.backend));
        if gw.is_some() {
            let gid = plan.gateways[gw.unwrap_or(0)].0;
            let _ = writeln!(
                t,
                "[[ports]]\nname = \"lan0\"\nmac = \"{}\"\niface = \"v{id}-lan\"\naddress = \"{}/24\"\n",
                mac(id, LAN, 1),
                with_last(lan_net(gid), 1)
            );
        }
        for &(x, y) in &plan.links {
            let peer = match (x == id, y == id) {
                (true, _) => y,
                (_, true) => x,
                _ => continue,
            };
            let _ = writeln!(
                t,
                "[[ports]]\nname = \"{}\"\nmac = \"{}\"\npeer_mac = \"{}\"\niface = \"{}\"\n",
                port_name(plan.n_sats, peer),
                mac(id, peer, 1),
                mac(peer, id, 1),
                iface(id, peer)
            );
        }
        if let Some(i) = gw {
            let me = plan.gateways[i].0;
            let others: Vec<usize> = (0..gw_nodes.len()).filter(|&j| j != i).collect();
            let other_names = others
                .iter()
                .map(|&j| plan.gateways[j].1.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let cred = |f: String| toml_str(&o.ike_dir.join(f).display().to_string());
            // Keys negotiated in-band; ESP with 64-bit extended sequence
            // numbers (RFC 4303 §2.2.1): with 32 bits an SA runs out after
            // 2^32-1 packets, 7 minutes at 10 Mpps.
            let _ = writeln!(
                t,
                "# SAs with {other_names} negotiated by IKEv2, authenticated by certificates.\n\
                 [ike]\naddress = \"{}\"\nidentity = \"{name}\"\ncertificate = {}\n\
                 private_key = {}\nca = {}\nesp_proposals = [\"aes128gcm16-esn\"]\n{}",
                node_addr(id),
                cred(format!("{name}.pem")),
                cred(format!("{name}.key")),
                cred(format!("{name}.ca.pem")),
                o.ike_child_lifetime_s
                    .map(|s| format!("lifetime = {{ hard_seconds = {s} }}\n"))
                    .unwrap_or_default(),
            );
            // Of each pair, the gateway named first initiates.
            for &j in &others {
                let _ = writeln!(
                    t,
                    "[[ike.peer]]\naddress = \"{}\"\nidentity = \"{}\"\ninitiate = {}\n",
                    node_addr(gw_nodes[j]),
                    node_name(plan, gw_nodes[j]),
                    i < j
                );
            }
            let _ = writeln!(
                t,
                "# The other gateways' LANs are routed by the control plane; ours is delivered here.\n[[deliver]]\nprefix = \"{}/24\"\nport = \"lan0\"\nnext_hop_mac = \"{}\"\n",
                lan_net(me),
                mac(id, LAN, 2)
            );
        }
        let _ = writeln!(t, "[control]\nconstellation = \"{}\"", plan.preset.name());
        let node_ref = match gw {
            Some(i) => format!("gs:{}", plan.gateways[i].0),
            None => format!("sat:{id}"),
        };
        let _ = writeln!(t, "node = \"{node_ref}\"\nstart_s = {:?}", o.start_s);
        let _ = writeln!(t, "node_prefix = \"{}/{}\"", NODE_PREFIX.0, NODE_PREFIX.1);
        let _ = writeln!(
            t,
            "time_scale = {:?}\nstep_ms = {}",
            o.time_scale, o.step_ms
        );
        if let Some(a) = o.anchor_unix_ms {
            let _ = writeln!(t, "anchor_unix_ms = {a}");
        }
        let _ = writeln!(t, "satellites = [{sats}]");
        if let Some(f) = &o.failures_file {
            let _ = writeln!(t, "failures_file = {}", toml_str(&f.display().to_string()));
        }
        if let Some(g) = &o.ground_stations {
            let _ = writeln!(
                t,
                "ground_stations = {}",
                toml_str(&g.display().to_string())
            );
        }
        let _ = writeln!(
            t,
            "\n# Link liveness on every ISL and GSL (RFC 5880/5881).\n[bfd]\ndesired_min_tx_ms = {0}\nrequired_min_rx_ms = {0}\ndetect_mult = {1}",
            o.bfd.0, o.bfd.1
        );
        if let Some(k) = &o.keys_dir {
            let _ = writeln!(
                t,
                "\n# Link-state notices, signed with this node's own key.\n[flood]\nkey = {}\ntrust = {}",
                toml_str(&k.join(format!("{name}.key")).display().to_string()),
                toml_str(&k.join(format!("{name}.trust")).display().to_string())
            );
        }
        nodes.push(NodeSpec {
            node: id,
            name,
            config: t,
        });
    }
    let links = plan
        .links
        .iter()
        .map(|&(x, y)| LinkSpec {
            nodes: [node_name(plan, x), node_name(plan, y)],
            ifaces: [iface(x, y), iface(y, x)],
            macs: [mac(x, y, 1), mac(y, x, 1)],
        })
        .collect();
    let host = |i: usize| {
        let gid = plan.gateways[i].0;
        let id = gw_nodes[i];
        HostSpec {
            name: format!("host{gid}"),
            gateway: node_name(plan, id),
            iface: format!("h{gid}"),
            mac: mac(id, LAN, 2),
            addr: with_last(lan_net(gid), 2),
            gw_iface: format!("v{id}-lan"),
            gw_mac: mac(id, LAN, 1),
            gw_addr: with_last(lan_net(gid), 1),
        }
    };
    Rendered {
        nodes,
        links,
        hosts: (0..gw_nodes.len()).map(host).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;
    use meshplane_control::Preset;

    #[test]
    fn paths_with_quotes_and_backslashes_survive_into_the_node_files() {
        let n_sats = Preset::Kuiper630.params().planes * Preset::Kuiper630.params().sats_per_plane;
        let (g0, g1, g2) = (n_sats as NodeId, n_sats as NodeId + 1, n_sats as NodeId + 2);
        let pair = |from, to, a, b| crate::mesh::PairPaths {
            from,
            to,
            changes: vec![(0.0, vec![a, 5, b])],
        };
        let plan = MeshPlan {
            preset: Preset::Kuiper630,
            n_sats,
            gateways: vec![(0, "A".into()), (1, "B".into()), (2, "C".into())],
            satellites: vec![5],
            links: vec![(5, g0), (5, g1), (5, g2)],
            paths: vec![pair(0, 1, g0, g1), pair(0, 2, g0, g2), pair(1, 2, g1, g2)],
        };
        let weird = PathBuf::from("/tmp/a \"quoted\" dir\\x/failures");
        let r = render(
            &plan,
            &RenderOptions {
                backend: "memory".into(),
                idle: "adaptive".into(),
                start_s: 9.0,
                time_scale: 1.0,
                anchor_unix_ms: Some(1),
                step_ms: 100,
                failures_file: Some(weird.clone()),
                keys_dir: Some(weird.clone()),
                bfd: (10, 3),
                ground_stations: Some(PathBuf::from("/tmp/st\"ations.csv")),
                ike_dir: weird.clone(),
                ike_child_lifetime_s: Some(6),
            },
        );
        assert_eq!(r.nodes.len(), 4);
        assert_eq!(r.hosts.len(), 3);
        for n in &r.nodes {
            let cfg = NodeConfig::parse(&n.config, &n.name)
                .unwrap_or_else(|e| panic!("{e}\n{}", n.config));
            let c = cfg.control.expect("control");
            assert_eq!(c.failures_file.as_deref(), Some(weird.as_path()));
            assert_eq!(
                c.ground_stations.as_deref(),
                Some(std::path::Path::new("/tmp/st\"ations.csv"))
            );
            // No key in any file: no SA, and the gateways negotiate theirs
            // with ESN, by certificates in the IKE directory.
            assert!(cfg.sa.is_empty(), "{}", n.config);
            if let Some(ike) = &cfg.ike {
                assert!(ike.esp_proposals.iter().all(|p| p.esn), "{}", n.config);
                assert_eq!(
                    ike.credentials,
                    crate::config::IkeCredentials::Certificate {
                        certificate: weird.join(format!("{}.pem", n.name)),
                        private_key: weird.join(format!("{}.key", n.name)),
                        ca: weird.join(format!("{}.ca.pem", n.name)),
                    }
                );
                assert_eq!(ike.identity, n.name);
                // The Child SA lifetime asked for, rekeyed below it.
                assert_eq!(ike.lifetime.hard.seconds, Some(6), "{}", n.config);
                assert_eq!(ike.lifetime.soft.seconds, Some(5), "{}", n.config);
                // Every other gateway is a peer; of each pair, the first
                // initiates.
                assert_eq!(ike.peers.len(), 2, "{}", n.config);
                let me: u32 = n.name[2..].parse().expect("gwN");
                for p in &ike.peers {
                    let other: u32 = p.identity[2..].parse().expect("gwN");
                    assert_ne!(other, me);
                    assert_eq!(p.initiate, me < other, "{}", n.config);
                }
            }
        }
        let gateways: Vec<_> = r
            .nodes
            .iter()
            .filter_map(|n| NodeConfig::parse(&n.config, &n.name).ok()?.ike)
            .collect();
        assert_eq!(gateways.len(), 3);
        for (i, g) in gateways.iter().enumerate() {
            let mut peers: Vec<_> = g.peers.iter().map(|p| p.address).collect();
            let mut others: Vec<_> = gateways
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, o)| o.address)
                .collect();
            peers.sort();
            others.sort();
            assert_eq!(peers, others);
        }
    }
}
