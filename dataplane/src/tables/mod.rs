//! The forwarding tables a worker reads: FEC LPM, LFIB, SA database and
//! delivery LPM, published together as one immutable snapshot.

pub mod encap;
pub mod lfib;
pub mod lpm;

use crate::config::{LfibAction, Mac, NodeConfig, Prefix};
use crate::frame::PortId;
use crate::sa::{Sa, SaError, SaIn, SaOut};
use lfib::{Lfib, LfibEntry, LfibOp};
use lpm::{Lpm4, Lpm6};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// The SA index of a FEC whose outbound SA is to be negotiated with its
/// IKE peer and is not there yet: its packets drop as `sa_pending`.
pub const SA_PENDING: u32 = u32::MAX;

/// A FEC: how LAN traffic to one prefix leaves the ingress gateway.
#[derive(Clone, Copy, Debug)]
pub struct Fec {
    /// Index into `Tables::sa_out` ([`SA_PENDING`]: none yet).
    pub sa: u32,
    /// Label to push; `None`: plain ESP out of the port (a partner port,
    /// RFC 4303 tunnel mode toward a gateway outside the mesh).
    pub label: Option<u32>,
    /// Port to send on.
    pub port: PortId,
    /// Next hop's MAC.
    pub dst_mac: Mac,
    /// The port's MAC.
    pub src_mac: Mac,
    /// The tunnel MTU: the largest IP packet that, encrypted and labelled,
    /// fits the port's MTU ([`tunnel_mtu`]). Larger packets are dropped as
    /// `too_big`, and a LAN sender is told this figure (RFC 1191, RFC 8201).
    pub mtu: usize,
    /// The headers in front of each of its packets, fixed fields filled
    /// in; None while the SA is pending.
    pub encap: Option<encap::EncapTemplate>,
}

impl Fec {
    /// The FEC that pushes `label` (None: none) and sends out of `port`
    /// (MAC `src_mac`, MTU `port_mtu`) to `dst_mac`, under outbound SA
    /// index `sa`, which is `out` (None while pending): its tunnel MTU and
    /// header template follow from them.
    pub fn new(
        sa: u32,
        label: Option<u32>,
        port: PortId,
        dst_mac: Mac,
        src_mac: Mac,
        port_mtu: u16,
        out: Option<&SaOut>,
    ) -> Fec {
        Fec {
            sa,
            label,
            port,
            dst_mac,
            src_mac,
            mtu: tunnel_mtu(port_mtu, label.is_some(), out.is_some_and(|s| s.udp_encap)),
            encap: out.map(|s| encap::EncapTemplate::new(label, dst_mac, src_mac, s)),
        }
    }
}

/// The largest inner IP packet that fits a port of MTU `port_mtu` once
/// tunnelled: one MPLS label when `labelled`, outer IPv4, a UDP header
/// when `udp_encap` (RFC 3948), the ESP header and IV, the trailer padded
/// to four bytes, and the ICV (RFC 4303, RFC 4106).
pub fn tunnel_mtu(port_mtu: u16, labelled: bool, udp_encap: bool) -> usize {
    let fixed = if labelled {
        crate::packet::mpls::ENTRY_LEN
    } else {
        0
    } + if udp_encap {
        crate::packet::udp::HEADER_LEN
    } else {
        0
    } + crate::packet::ipv4::MIN_HEADER_LEN
        + crate::packet::esp::HEADER_LEN
        + crate::packet::esp::IV_LEN
        + crate::packet::esp::ICV_LEN;
    (usize::from(port_mtu).saturating_sub(fixed) & !3)
        .saturating_sub(crate::packet::esp::TRAILER_LEN)
}

/// Where decrypted traffic to one prefix leaves the egress gateway.
#[derive(Clone, Copy, Debug)]
pub struct Deliver {
    /// Port to send on.
    pub port: PortId,
    /// Next hop's MAC.
    pub dst_mac: Mac,
    /// The port's MAC.
    pub src_mac: Mac,
    /// The port's MTU: the largest packet delivered on it.
    pub mtu: usize,
}

/// An inbound SA and its inbound policy (RFC 4301 §5.2): the prefixes
/// the inner packets it carries may come from.
pub struct InboundSa {
    /// The SA (its replay window lives across publications).
    pub sa: Arc<SaIn>,
    /// The peer's prefixes: those of the FECs whose outbound SA goes to
    /// this SA's tunnel source (the traffic selectors of a symmetric
    /// tunnel). Empty when no FEC leads to that peer: any source.
    pub sources: Box<[Prefix]>,
    /// The IPv4 ones as (network, mask), for the per-packet test.
    v4: Box<[(u32, u32)]>,
    /// The IPv6 ones as (network, mask).
    v6: Box<[(u128, u128)]>,
}

impl InboundSa {
    /// The SA `sa` admitting inner sources from `sources` (any when empty).
    pub fn new(sa: Arc<SaIn>, sources: Vec<Prefix>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for p in &sources {
            match p.addr {
                IpAddr::V4(n) => {
                    let len = u32::from(p.len.min(32));
                    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                    v4.push((u32::from(n) & mask, mask));
                }
                IpAddr::V6(n) => {
                    let len = u32::from(p.len.min(128));
                    let mask = if len == 0 {
                        0
                    } else {
                        u128::MAX << (128 - len)
                    };
                    v6.push((u128::from(n) & mask, mask));
                }
            }
        }
        InboundSa {
            sa,
            sources: sources.into_boxed_slice(),
            v4: v4.into_boxed_slice(),
            v6: v6.into_boxed_slice(),
        }
    }

    /// True when an inner IPv4 packet from `src` may arrive on this SA.
    #[inline]
    pub fn admits_v4(&self, src: [u8; 4]) -> bool {
        let a = u32::from_be_bytes(src);
        self.sources.is_empty() || self.v4.iter().any(|&(n, m)| a & m == n)
    }

    /// True when an inner IPv6 packet from `src` may arrive on this SA.
    #[inline]
    pub fn admits_v6(&self, src: [u8; 16]) -> bool {
        let a = u128::from_be_bytes(src);
        self.sources.is_empty() || self.v6.iter().any(|&(n, m)| a & m == n)
    }
}

/// A table could not be built from its description.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// An SA's key was unusable.
    #[error(transparent)]
    Sa(#[from] SaError),
    /// A reference to something that does not exist.
    #[error("{0}")]
    Reference(String),
}

/// One immutable snapshot of everything a worker looks up.
pub struct Tables {
    /// Increases with every publication.
    pub epoch: u64,
    /// Largest IP packet that enters or leaves the tunnel (`[io] mtu`).
    pub mtu: usize,
    /// Port names, in index order.
    pub port_names: Vec<String>,
    /// Port MACs, in index order.
    pub port_macs: Vec<Mac>,
    /// The longest untagged frame each port sends (its MTU plus the
    /// Ethernet header), in index order: a label-switched frame that is
    /// longer is dropped as `too_big`.
    pub port_tx_max: Vec<usize>,
    /// IPv4 FEC prefixes -> index into `fecs`.
    pub fec4: Lpm4,
    /// IPv6 FEC prefixes -> index into `fecs`.
    pub fec6: Lpm6,
    /// FECs.
    pub fecs: Vec<Fec>,
    /// Each FEC prefix with its index into `fecs`, as configured: what
    /// the management socket shows (lookups go through `fec4`/`fec6`).
    pub fec_prefixes: Vec<(Prefix, u32)>,
    /// Label forwarding table.
    pub lfib: Lfib,
    /// Outbound SAs.
    pub sa_out: Vec<Arc<SaOut>>,
    /// Inbound SAs by SPI, with the inner sources each may carry.
    pub sa_in: HashMap<u32, InboundSa>,
    /// Tunnel endpoint addresses of this node (outer destinations to decrypt).
    pub local_addrs: Vec<Ipv4Addr>,
    /// IPv4 delivery prefixes -> index into `delivers`.
    pub deliver4: Lpm4,
    /// IPv6 delivery prefixes -> index into `delivers`.
    pub deliver6: Lpm6,
    /// Delivery entries.
    pub delivers: Vec<Deliver>,
    /// The node address ([`NodeConfig::node_address`]).
    pub node_addr: Option<Ipv4Addr>,
    /// Every address of this node: the node address, tunnel endpoints and
    /// port addresses. Non-ESP packets to them are punted.
    pub own_addrs: Vec<Ipv4Addr>,
    /// `own_addrs` as integers, for the per-packet test.
    own_u32: Box<[u32]>,
    /// Bit `a % 64` set for each own address `a`: most packets (to
    /// anywhere else) are told apart with one test.
    own_filter: u64,
    /// Each port's own address and prefix length, in port order (LAN
    /// ports that answer ARP).
    pub port_addrs: Vec<Option<(Ipv4Addr, u8)>>,
    /// Each port's own IPv6 address and prefix length, in port order (the
    /// source of ICMPv6 errors to its hosts).
    pub port_addrs6: Vec<Option<(std::net::Ipv6Addr, u8)>>,
    /// How the node's own packets reach remote node addresses.
    pub node_routes: HashMap<Ipv4Addr, NodeRoute>,
    /// One bit per port (of the first 64) that has an address of either
    /// family: the LAN ports, whose senders hear of a packet dropped for
    /// its TTL or size.
    pub addressed_ports: u64,
    /// Each delivery prefix with its index into `delivers`.
    pub deliver_prefixes: Vec<(Prefix, u32)>,
    /// The computed routes these tables carry, when the control plane
    /// built them (`None`: from the configuration file only).
    pub routes: Option<RouteOrigin>,
    /// SPIs of the SAs negotiated by IKE (both directions).
    pub negotiated: std::collections::HashSet<u32>,
}

/// How a control packet reaches a remote node, as data to it would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeRoute {
    /// Pushed as the FEC of this index pushes (a gateway toward the
    /// gateway at the other end of the FEC's SA).
    Fec(u32),
    /// Switched as a frame arriving with this label would be.
    Label(u32),
}

/// Which computed routes a snapshot holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RouteOrigin {
    /// Label epoch of the routes.
    pub label_epoch: u64,
    /// Geometry time they were computed for (s after the constellation epoch).
    pub t_s: f64,
    /// Why they were installed (`scheduled`, `early`, `failure`).
    pub reason: &'static str,
}

fn key_fingerprint(c: &crate::config::SaConfig) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        c.spi,
        c.dir as u8,
        c.aead as u8,
        c.esn,
        c.tunnel_src,
        c.tunnel_dst,
    )
        .hash(&mut h);
    c.key.as_slice().hash(&mut h);
    h.finish()
}

/// SA state that survives table publications: an SA whose SPI, direction
/// and key are unchanged keeps its sequence counter, replay window, counts
/// and age (its lifetime limits are the ones configured now).
#[derive(Clone, Default)]
pub struct SaStore {
    out: HashMap<u64, Arc<SaOut>>,
    inb: HashMap<u64, Arc<SaIn>>,
}

impl Tables {
    /// Builds a snapshot from a node configuration, creating fresh SAs.
    pub fn from_config(cfg: &NodeConfig, epoch: u64) -> Result<Tables, TableError> {
        Self::from_config_with(cfg, epoch, &mut SaStore::default())
    }

    /// Builds a snapshot, reusing SA state from `store` where the SA is
    /// unchanged and recording the SAs used in it.
    pub fn from_config_with(
        cfg: &NodeConfig,
        epoch: u64,
        store: &mut SaStore,
    ) -> Result<Tables, TableError> {
        Self::from_config_into(cfg, epoch, store, Lfib::new())
    }

    /// [`Tables::from_config_with`], filling `lfib` (emptied first if it
    /// is not: see [`Lfib::clear`]) instead of a new label table: the
    /// same tables, built into the pages of tables going out of force.
    pub fn from_config_into(
        cfg: &NodeConfig,
        epoch: u64,
        store: &mut SaStore,
        mut lfib: Lfib,
    ) -> Result<Tables, TableError> {
        lfib.clear([]);
        let port = |name: &str| -> Result<PortId, TableError> {
            cfg.port_index(name)
                .ok_or_else(|| TableError::Reference(format!("unknown port {name:?}")))
        };
        let port_macs: Vec<Mac> = cfg.ports.iter().map(|p| p.mac).collect();

        let mut sa_out = Vec::new();
        let mut out_index = HashMap::new();
        let mut sa_in = HashMap::new();
        let mut local_addrs = Vec::new();
        let mut new_store = SaStore::default();
        // SAs kept from the previous tables take the lifetimes configured
        // now, once these tables are built.
        let mut relimit_out = Vec::new();
        let mut relimit_in = Vec::new();
        let mut negotiated = std::collections::HashSet::new();
        for c in &cfg.sa {
            if c.negotiated {
                negotiated.insert(c.spi);
            }
            let fp = key_fingerprint(c);
            match c.dir {
                crate::config::SaDir::Out => {
                    let sa = match store.out.get(&fp) {
                        Some(s) => {
                            relimit_out.push((s.clone(), c.lifetime));
                            s.clone()
                        }
                        None => match Sa::from_config(c)? {
                            Sa::Out(s) => Arc::new(s),
                            Sa::In(_) => unreachable!("dir is out"),
                        },
                    };
                    new_store.out.insert(fp, sa.clone());
                    out_index.insert(c.spi, sa_out.len() as u32);
                    sa_out.push(sa);
                }
                crate::config::SaDir::In => {
                    let sa = match store.inb.get(&fp) {
                        Some(s) => {
                            relimit_in.push((s.clone(), c.lifetime));
                            s.clone()
                        }
                        None => match Sa::from_config(c)? {
                            Sa::In(s) => Arc::new(s),
                            Sa::Out(_) => unreachable!("dir is in"),
                        },
                    };
                    new_store.inb.insert(fp, sa.clone());
                    if !local_addrs.contains(&c.tunnel_dst) {
                        local_addrs.push(c.tunnel_dst);
                    }
                    sa_in.insert(c.spi, sa);
                }
            }
        }
        *store = new_store;
        // A gateway with [ike]: its tunnel address, before any SA exists
        // (IKE arrives there, and ESP will).
        if let Some(ike) = &cfg.ike {
            if !local_addrs.contains(&ike.address) {
                local_addrs.push(ike.address);
            }
        }

        let mut fec4 = Lpm4::new();
        let mut fec6 = Lpm6::new();
        let mut fecs = Vec::new();
        let mut fec_prefixes = Vec::with_capacity(cfg.fec.len());
        for f in &cfg.fec {
            let sa = if f.sa == 0 && f.peer.is_some() {
                SA_PENDING
            } else {
                *out_index.get(&f.sa).ok_or_else(|| {
                    TableError::Reference(format!("FEC {}: no outbound SA {}", f.prefix, f.sa))
                })?
            };
            let p = port(&f.port)?;
            let idx = fecs.len() as u32;
            fecs.push(Fec::new(
                sa,
                f.label,
                p,
                f.next_hop_mac,
                port_macs[usize::from(p)],
                cfg.ports[usize::from(p)].mtu,
                sa_out.get(sa as usize).map(|s| &**s),
            ));
            insert_prefix(&mut fec4, &mut fec6, f.prefix, idx);
            fec_prefixes.push((f.prefix, idx));
        }

        // The inbound policy of each SA: the prefixes of the FECs whose
        // outbound SA leads to the same peer.
        let out_peer: HashMap<u32, Ipv4Addr> = cfg
            .sa
            .iter()
            .filter(|o| o.dir == crate::config::SaDir::Out)
            .map(|o| (o.spi, o.tunnel_dst))
            .collect();
        // A FEC to an IKE peer leads to it before its SA exists.
        let fec_peer =
            |f: &crate::config::FecConfig| f.peer.or_else(|| out_peer.get(&f.sa).copied());
        let mut by_peer: HashMap<Ipv4Addr, Vec<Prefix>> = HashMap::new();
        for f in &cfg.fec {
            if let Some(peer) = fec_peer(f) {
                by_peer.entry(peer).or_default().push(f.prefix);
            }
        }
        let sa_in = sa_in
            .into_iter()
            .map(|(spi, sa): (u32, Arc<SaIn>)| {
                let sources = by_peer.get(&sa.tunnel_src).cloned().unwrap_or_default();
                (spi, InboundSa::new(sa, sources))
            })
            .collect();

        for l in &cfg.lfib {
            let (port_id, dst_mac) = match (&l.port, l.next_hop_mac) {
                (Some(p), Some(m)) => (port(p)?, m),
                _ => (0, [0; 6]),
            };
            let op = match (l.action, l.out_label, &l.port) {
                (LfibAction::Swap, Some(out), Some(_)) if l.push.is_empty() => LfibOp::Swap(out),
                (LfibAction::Swap, Some(out), Some(_)) => {
                    let i = lfib.add_stack(&l.push).ok_or_else(|| {
                        TableError::Reference(format!("LFIB {}: too many label stacks", l.label))
                    })?;
                    LfibOp::SwapPush(out, i)
                }
                (LfibAction::Swap, _, _) => {
                    return Err(TableError::Reference(format!(
                        "LFIB {}: swap needs out_label and port",
                        l.label
                    )))
                }
                (LfibAction::Pop, _, Some(_)) => LfibOp::Pop,
                (LfibAction::Pop, _, None) => LfibOp::PopLocal,
            };
            lfib.insert(
                l.label,
                LfibEntry::new(
                    op,
                    port_id,
                    dst_mac,
                    port_macs
                        .get(usize::from(port_id))
                        .copied()
                        .unwrap_or([0; 6]),
                ),
            );
        }

        let mut deliver4 = Lpm4::new();
        let mut deliver6 = Lpm6::new();
        let mut delivers = Vec::new();
        let mut deliver_prefixes = Vec::with_capacity(cfg.deliver.len());
        for d in &cfg.deliver {
            let p = port(&d.port)?;
            let idx = delivers.len() as u32;
            delivers.push(Deliver {
                port: p,
                dst_mac: d.next_hop_mac,
                src_mac: port_macs[usize::from(p)],
                mtu: usize::from(cfg.ports[usize::from(p)].mtu),
            });
            insert_prefix(&mut deliver4, &mut deliver6, d.prefix, idx);
            deliver_prefixes.push((d.prefix, idx));
        }

        let node_addr = cfg.node_address();
        let port_addrs: Vec<Option<(Ipv4Addr, u8)>> = cfg.ports.iter().map(|p| p.address).collect();
        let port_addrs6: Vec<Option<(std::net::Ipv6Addr, u8)>> =
            cfg.ports.iter().map(|p| p.address6).collect();
        let mut own_addrs: Vec<Ipv4Addr> = Vec::new();
        for a in node_addr
            .into_iter()
            .chain(local_addrs.iter().copied())
            .chain(port_addrs.iter().flatten().map(|&(a, _)| a))
        {
            if !own_addrs.contains(&a) {
                own_addrs.push(a);
            }
        }
        // Toward each remote gateway: the first FEC whose SA leads there;
        // then whatever the control plane names (a static FEC wins).
        let mut node_routes = HashMap::new();
        for (i, f) in cfg.fec.iter().enumerate() {
            if let Some(peer) = fec_peer(f) {
                node_routes.entry(peer).or_insert(NodeRoute::Fec(i as u32));
            }
        }
        for r in &cfg.node_routes {
            node_routes
                .entry(r.address)
                .or_insert(NodeRoute::Label(r.label));
        }

        for (sa, l) in &relimit_out {
            sa.life.set_lifetime(l);
        }
        for (sa, l) in &relimit_in {
            sa.life.set_lifetime(l);
        }
        Ok(Tables {
            epoch,
            mtu: usize::from(cfg.io.mtu),
            port_names: cfg.ports.iter().map(|p| p.name.clone()).collect(),
            port_macs,
            port_tx_max: cfg
                .ports
                .iter()
                .map(|p| usize::from(p.mtu) + crate::packet::ethernet::HEADER_LEN)
                .collect(),
            fec4,
            fec6,
            fecs,
            fec_prefixes,
            lfib,
            sa_out,
            sa_in,
            local_addrs,
            deliver4,
            deliver6,
            delivers,
            node_addr,
            own_u32: own_addrs.iter().map(|&a| u32::from(a)).collect(),
            addressed_ports: port_addrs
                .iter()
                .zip(&port_addrs6)
                .take(64)
                .enumerate()
                .fold(0, |m, (i, (a, a6))| {
                    m | (u64::from(a.is_some() || a6.is_some()) << i)
                }),
            own_filter: own_addrs
                .iter()
                .fold(0, |m, &a| m | 1 << (u32::from(a) % 64)),
            own_addrs,
            port_addrs,
            port_addrs6,
            node_routes,
            deliver_prefixes,
            routes: None,
            negotiated,
        })
    }

    /// The tunnel MTU toward the destination of the IP packet `packet`
    /// (the MTU a "fragmentation needed" or "packet too big" answer
    /// carries): its FEC's, or `[io] mtu` when no FEC matches.
    pub fn tunnel_mtu_to(&self, packet: &[u8]) -> usize {
        let fec = match packet.first().map(|b| b >> 4) {
            Some(4) => packet
                .get(16..20)
                .and_then(|d| self.fec4.lookup_v4(d.try_into().ok()?)),
            Some(6) => packet
                .get(24..40)
                .and_then(|d| self.fec6.lookup_v6(d.try_into().ok()?)),
            _ => None,
        };
        fec.and_then(|i| self.fecs.get(i as usize))
            .map_or(self.mtu, |e| e.mtu)
    }

    /// True when `addr` is one of this node's own addresses (not only a
    /// tunnel endpoint): packets to it other than ESP are for the node.
    #[inline]
    pub fn is_own(&self, addr: [u8; 4]) -> bool {
        let a = u32::from_be_bytes(addr);
        self.own_filter >> (a % 64) & 1 == 1 && self.own_u32.contains(&a)
    }

    /// True when port `port` has an address (answers ARP for it).
    #[inline]
    pub fn port_has_address(&self, port: PortId) -> bool {
        matches!(self.port_addrs.get(usize::from(port)), Some(Some(_)))
    }

    /// True when `addr` is one of this node's tunnel endpoints.
    #[inline]
    pub fn is_local(&self, addr: [u8; 4]) -> bool {
        let a = Ipv4Addr::from(addr);
        self.local_addrs.contains(&a)
    }
}

/// Inserts prefix `p` into the table of its family, pointing at `idx`.
pub(crate) fn insert_prefix(v4: &mut Lpm4, v6: &mut Lpm6, p: Prefix, idx: u32) {
    match p.addr {
        IpAddr::V4(a) => v4.insert_v4(a, p.len, idx),
        IpAddr::V6(a) => v6.insert_v6(a, p.len, idx),
    }
}
