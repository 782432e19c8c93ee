//! Static node configuration (TOML): ports, SAs, FECs, LFIB and delivery
//! prefixes. A node configured this way runs without the control plane.
//!
//! Errors name the file, the line and what is wrong.

#![warn(missing_docs)]

use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use zeroize::Zeroizing;

mod bfd;
mod flood;
pub mod ike;
pub mod ike_credentials;
mod lifetime;
pub use bfd::{BfdConfig, BfdPeerConfig};
pub use flood::FloodConfig;
pub use ike::{IkeConfig, IkeCredentials, IkePeerConfig};

/// A configuration error with its location.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {msg}")]
pub struct ConfigError {
    /// The file (or `<inline>`).
    pub file: String,
    /// 1-based line number (0 when unknown).
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

/// Role of a node in the mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Ground gateway: encrypts and labels LAN traffic, terminates tunnels.
    Gateway,
    /// Satellite: label-switches transit traffic.
    Satellite,
}

/// SA direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaDir {
    /// Encrypt (outbound).
    Out,
    /// Decrypt (inbound).
    In,
}

/// AEAD algorithm of an SA (RFC 4106).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum AeadAlg {
    /// AES-128-GCM with a 16-byte ICV.
    #[serde(rename = "aes-128-gcm")]
    Aes128Gcm,
    /// AES-256-GCM with a 16-byte ICV.
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
}

impl AeadAlg {
    /// The name the configuration uses.
    pub fn name(self) -> &'static str {
        match self {
            AeadAlg::Aes128Gcm => "aes-128-gcm",
            AeadAlg::Aes256Gcm => "aes-256-gcm",
        }
    }

    /// Key length in bytes (without the 4-byte salt).
    pub fn key_len(self) -> usize {
        match self {
            AeadAlg::Aes128Gcm => 16,
            AeadAlg::Aes256Gcm => 32,
        }
    }
}

/// LFIB action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LfibAction {
    /// Replace the top label and forward.
    Swap,
    /// Remove the top label; forward if a port is given, else terminate locally.
    Pop,
}

/// Polling policy of the workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Idle {
    /// Spin on the RX queues (lowest latency, one full core per worker).
    #[default]
    Busy,
    /// Back off to short sleeps after empty polls.
    Adaptive,
}

/// How a node's cores share the work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Every worker runs RX -> all stages -> TX on its own core.
    #[default]
    RunToCompletion,
    /// Cores work in pairs: one polls the ports, classifies, labels and
    /// transmits; the other runs the ESP AEAD. For when crypto, not I/O,
    /// is the bottleneck.
    Pipeline,
}

impl Mode {
    /// The name the configuration uses.
    pub fn name(self) -> &'static str {
        match self {
            Mode::RunToCompletion => "run-to-completion",
            Mode::Pipeline => "pipeline",
        }
    }
}

/// A MAC address.
pub type Mac = [u8; 6];

/// One port of the node.
#[derive(Clone, Debug)]
pub struct PortConfig {
    /// Port name (referenced by FEC/LFIB/deliver entries).
    pub name: String,
    /// The port's own MAC (source of frames it sends).
    pub mac: Mac,
    /// DPDK device string (`net_ring0`, `net_pcap0,rx_pcap=..`, a PCI address).
    pub dpdk: Option<String>,
    /// Kernel interface for AF_XDP.
    pub iface: Option<String>,
    /// MAC of the node at the other end of this (point-to-point) link, the
    /// destination of frames sent on routes the control plane installs;
    /// broadcast when not given.
    pub peer_mac: Option<Mac>,
    /// AF_XDP settings (used with `iface`).
    pub afxdp: AfXdpPortConfig,
    /// The port's own IPv4 address and prefix length (`address =
    /// "10.0.0.1/24"`, a LAN port): answered by ARP and ICMP.
    pub address: Option<(Ipv4Addr, u8)>,
    /// The port's own IPv6 address and prefix length (`address6 =
    /// "fd00:1::1/64"`, a LAN port): the source of the ICMPv6 errors the
    /// gateway sends its LAN hosts (RFC 4443).
    pub address6: Option<(Ipv6Addr, u8)>,
    /// The largest Ethernet payload the port sends or receives (`mtu`, as
    /// iproute2 counts it: the IP packet on a LAN port, the label stack
    /// and the tunnelled packet on a backbone link; VLAN tag and FCS not
    /// counted). Defaults: `[io] mtu` on a LAN port (one with `address` or
    /// `address6`), `[io] mtu` plus [`IoConfig::TUNNEL_OVERHEAD`] on any
    /// other port, so that a backbone link carries a LAN-sized packet
    /// with the tunnel around it.
    pub mtu: u16,
}

impl PortConfig {
    /// The longest frame the port receives or sends: `mtu` plus the
    /// Ethernet header and one VLAN tag. Longer frames received are
    /// dropped as `oversize`.
    pub fn max_frame(&self) -> usize {
        usize::from(self.mtu) + IoConfig::L2_OVERHEAD
    }

    /// True for a LAN port: one with an address of its own.
    pub fn is_lan(&self) -> bool {
        self.address.is_some() || self.address6.is_some()
    }
}

/// How a port's AF_XDP sockets bind (`mode` of a port).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// Zero-copy where the driver supports it, else copy.
    #[default]
    Auto,
    /// Zero-copy or fail (needs native XDP and driver support).
    Zerocopy,
    /// Kernel copies (any interface, generic XDP allowed).
    Copy,
}

/// Default entries of an AF_XDP RX or TX ring.
pub const DEFAULT_XDP_RING: u32 = 4096;

/// A port's AF_XDP settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfXdpPortConfig {
    /// Interface queues, one per worker (default `0..workers`).
    pub queues: Option<Vec<u32>>,
    /// Bind mode.
    pub mode: XdpMode,
    /// RX (and fill) ring entries, a power of two.
    pub rx_ring: u32,
    /// TX (and completion) ring entries, a power of two.
    pub tx_ring: u32,
}

impl Default for AfXdpPortConfig {
    fn default() -> Self {
        AfXdpPortConfig {
            queues: None,
            mode: XdpMode::Auto,
            rx_ring: DEFAULT_XDP_RING,
            tx_ring: DEFAULT_XDP_RING,
        }
    }
}

/// One security association.
#[derive(Clone)]
pub struct SaConfig {
    /// Security parameter index.
    pub spi: u32,
    /// Direction.
    pub dir: SaDir,
    /// Algorithm.
    pub aead: AeadAlg,
    /// Key bytes followed by the 4-byte salt; zeroized on drop.
    pub key: Zeroizing<Vec<u8>>,
    /// Outer source address (this gateway for `out`).
    pub tunnel_src: Ipv4Addr,
    /// Outer destination address.
    pub tunnel_dst: Ipv4Addr,
    /// 64-bit extended sequence numbers.
    pub esn: bool,
    /// ESP in UDP (RFC 3948, port 4500 at both ends) rather than as IP
    /// protocol 50: what a peer behind NAT, or one whose ESP only travels
    /// over its IKE sockets, sends and expects. Inbound, both forms are
    /// accepted whatever this says (RFC 7296 §2.23).
    pub udp_encap: bool,
    /// Soft and hard limits (`lifetime = { ... }`; none by default).
    pub lifetime: crate::sa::Lifetime,
    /// For an outbound SA on a node with `[control]`: the egress gateway
    /// (ground-station name or id) whose traffic it protects.
    pub peer: Option<String>,
    /// Negotiated by IKE (`[ike]`), not read from the file.
    pub negotiated: bool,
}

impl std::fmt::Debug for SaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaConfig")
            .field("spi", &self.spi)
            .field("dir", &self.dir)
            .field("aead", &self.aead)
            .field("key", &"<redacted>")
            .field("tunnel_src", &self.tunnel_src)
            .field("tunnel_dst", &self.tunnel_dst)
            .field("esn", &self.esn)
            .field("udp_encap", &self.udp_encap)
            .field("lifetime", &self.lifetime)
            .field("peer", &self.peer)
            .field("negotiated", &self.negotiated)
            .finish()
    }
}

/// An IP prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// Network address (no host bits set).
    pub addr: IpAddr,
    /// Prefix length.
    pub len: u8,
}

impl Prefix {
    /// Parses `ADDR/LEN` where ADDR is the network's own address: host bits
    /// set (`10.2.3.4/16`) are refused rather than cleared, since in a
    /// table entry they usually mean a typo. Configurations use this.
    pub fn parse_network(s: &str) -> Result<Prefix, String> {
        let (p, written) = Self::parse_any(s)?;
        if p.addr != written {
            return Err(format!(
                "prefix {}: host bits are set (the network is {p})",
                echo(s)
            ));
        }
        Ok(p)
    }

    /// The prefix with host bits cleared, and the address as written.
    fn parse_any(s: &str) -> Result<(Prefix, IpAddr), String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("prefix {} needs a length, e.g. 10.2.0.0/16", echo(s)))?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("prefix {}: {} is not an IP address", echo(s), echo(a)))?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        // u8::from_str alone would take a sign ("+16").
        let len: u8 = Some(l)
            .filter(|l| (1..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| {
                format!(
                    "prefix {}: {} is not a prefix length (0 to {max})",
                    echo(s),
                    echo(l)
                )
            })?;
        if len > max {
            return Err(format!("prefix {}: length {len} exceeds {max}", echo(s)));
        }
        let net = match addr {
            IpAddr::V4(v) => {
                let m = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                IpAddr::V4(Ipv4Addr::from(u32::from(v) & m))
            }
            IpAddr::V6(v) => {
                let m = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                IpAddr::V6((u128::from(v) & m).into())
            }
        };
        Ok((Prefix { addr: net, len }, addr))
    }
}

impl std::str::FromStr for Prefix {
    type Err = String;
    /// Parses `ADDR/LEN` (decimal digits only), clearing host bits: the
    /// prefix a host address lies in, as traffic generators take it.
    /// Table entries use [`Prefix::parse_network`].
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse_any(s).map(|(p, _)| p)
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// A FEC: LAN traffic to `prefix` is encrypted under `sa` and labelled.
#[derive(Clone, Debug)]
pub struct FecConfig {
    /// Inner destination prefix.
    pub prefix: Prefix,
    /// SPI of the outbound SA (0 when `peer` names a negotiated one).
    pub sa: u32,
    /// The `[[ike.peer]]` (its tunnel address) whose negotiated Child SA
    /// is the outbound SA, instead of a static `sa`.
    pub peer: Option<Ipv4Addr>,
    /// Label to push; `None`: the ESP packet leaves as it is, plain RFC
    /// 4303 tunnel mode toward an IPsec gateway outside the mesh (a
    /// partner port).
    pub label: Option<u32>,
    /// Port name to send on.
    pub port: String,
    /// Next hop's MAC.
    pub next_hop_mac: Mac,
}

/// An LFIB entry.
#[derive(Clone, Debug)]
pub struct LfibConfig {
    /// Incoming label.
    pub label: u32,
    /// Action.
    pub action: LfibAction,
    /// Outgoing label (swap).
    pub out_label: Option<u32>,
    /// Port (swap, or pop towards a next hop); `None` with pop = local termination.
    pub port: Option<String>,
    /// Next hop's MAC.
    pub next_hop_mac: Option<Mac>,
    /// Labels a swap pushes above the swapped label, outermost first (a
    /// local repair steering the frame through node segments): at most
    /// [`MAX_LFIB_PUSH`].
    pub push: Vec<u32>,
}

/// Most labels an LFIB swap pushes (`push` of an `[[lfib]]` entry).
pub const MAX_LFIB_PUSH: usize = 3;

/// A delivery prefix: decrypted traffic to `prefix` leaves on `port`.
#[derive(Clone, Debug)]
pub struct DeliverConfig {
    /// Inner destination prefix.
    pub prefix: Prefix,
    /// Port name.
    pub port: String,
    /// Next hop's MAC.
    pub next_hop_mac: Mac,
}

/// I/O backend selection.
#[derive(Clone, Debug)]
pub struct IoConfig {
    /// `pcap` (files), `memory`, `dpdk`, `afxdp` or `auto`.
    pub backend: String,
    /// Extra EAL arguments for the DPDK backend.
    pub eal_args: Vec<String>,
    /// AF_XDP: put the UMEM on 2 MiB hugepages when some are free.
    pub hugepages: bool,
    /// Largest IP packet a port carries (`[io] mtu`, `MIN_MTU..=MAX_MTU`,
    /// default `DEFAULT_MTU`); see [`IoConfig::max_frame`].
    pub mtu: u16,
    /// Packet buffers of the node (`[io] buffers`,
    /// `MIN_BUFFERS..=MAX_BUFFERS`): the DPDK mbuf pool, or over AF_XDP
    /// the frames of the workers' UMEMs, split evenly. `None`: sized from
    /// the ports, queues and ring sizes.
    pub buffers: Option<u32>,
}

impl IoConfig {
    /// `[io] mtu` when the file does not say.
    pub const DEFAULT_MTU: u16 = 1500;
    /// Smallest `[io] mtu` (IPv4's minimum).
    pub const MIN_MTU: u16 = 68;
    /// Largest `[io] mtu`: jumbo frames.
    pub const MAX_MTU: u16 = 9000;
    /// Ethernet header and one 802.1Q tag around the IP packet.
    pub const L2_OVERHEAD: usize = 18;
    /// What the tunnel adds to a packet of `mtu` bytes on the backbone:
    /// outer IPv4, ESP header and IV (36), padding, trailer and ICV (up to
    /// 21) and up to five MPLS labels (20), rounded up.
    pub const TUNNEL_OVERHEAD: usize = 80;
    /// Fewest `[io] buffers`: one RX and one TX ring of a small device.
    pub const MIN_BUFFERS: u32 = 512;
    /// Most `[io] buffers`: 2^24 - 1, some 40 GiB of mbufs at the default
    /// mtu (DPDK's mempools and the UMEM's 32-bit frame count hold it).
    pub const MAX_BUFFERS: u32 = (1 << 24) - 1;

    /// Largest `[[ports]] mtu`: a jumbo LAN packet with the tunnel's
    /// overhead around it.
    pub const MAX_PORT_MTU: u16 = Self::MAX_MTU + Self::TUNNEL_OVERHEAD as u16;

    /// The largest frame a port receives at the default port MTUs: `mtu`
    /// plus Ethernet and the tunnel's overhead (a backbone port's). A node
    /// sizes its buffers with [`NodeConfig::max_frame`], which reads the
    /// ports' own MTUs.
    pub fn max_frame(&self) -> usize {
        usize::from(self.mtu) + Self::L2_OVERHEAD + Self::TUNNEL_OVERHEAD
    }

    /// The default MTU of a port: `[io] mtu` on a LAN port, with the
    /// tunnel's overhead on a backbone link.
    pub fn default_port_mtu(&self, lan: bool) -> u16 {
        if lan {
            self.mtu
        } else {
            self.mtu + Self::TUNNEL_OVERHEAD as u16
        }
    }
}

impl Default for IoConfig {
    fn default() -> Self {
        IoConfig {
            backend: String::new(),
            eal_args: Vec::new(),
            hugepages: false,
            mtu: Self::DEFAULT_MTU,
            buffers: None,
        }
    }
}

/// Which node of the constellation this is (`[control] node`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeRef {
    /// Satellite by id (`"sat:17"`).
    Satellite(u32),
    /// Ground station by name or id (`"gs:London"`, `"gs:12"`).
    Gateway(String),
}

impl std::str::FromStr for NodeRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("sat", id)) => id
                .parse()
                .map(NodeRef::Satellite)
                .map_err(|_| format!("node {}: {} is not a satellite id", echo(s), echo(id))),
            Some(("gs", name)) if !name.is_empty() => Ok(NodeRef::Gateway(name.to_string())),
            _ => Err(format!(
                "node {}: want \"sat:ID\" or \"gs:NAME\" (or \"gs:ID\")",
                echo(s)
            )),
        }
    }
}

/// Routes computed on the node from the constellation's geometry
/// (`[control]`): the control thread installs them next to the static
/// FEC/LFIB entries.
#[derive(Clone, Debug)]
pub struct ControlConfig {
    /// Constellation preset (`starlink-550`, `kuiper-630`, `telesat-1015`).
    pub constellation: String,
    /// Ground stations CSV (`None`: the embedded 100 most populous cities).
    pub ground_stations: Option<PathBuf>,
    /// This node.
    pub node: NodeRef,
    /// Geometry time at the clock anchor, seconds after the constellation epoch.
    pub start_s: f64,
    /// Geometry seconds per wall-clock second.
    pub time_scale: f64,
    /// Wall-clock instant (Unix ms) at which geometry time is `start_s`;
    /// nodes sharing it share one clock. `None`: when the node starts.
    pub anchor_unix_ms: Option<u64>,
    /// Interval between table epochs, geometry milliseconds.
    pub step_ms: u64,
    /// How long before activation tables are computed, geometry milliseconds.
    pub lead_ms: u64,
    /// Route only over these satellites (an emulated subset); `None`: all.
    pub satellites: Option<Vec<u32>>,
    /// A file of failure events (`isl-down A B`, `isl-up A B`,
    /// `sat-down S`, `sat-up S`, one per line) the control thread follows.
    pub failures_file: Option<PathBuf>,
    /// The constellation's node addresses (`node_prefix = "100.64.0.0/10"`):
    /// node id `N` has address [`node_address`]`(prefix, N)`.
    pub node_prefix: Option<(Ipv4Addr, u8)>,
}

/// The address of constellation node `id` (satellites `0..n_sats`, ground
/// station `gid` as `n_sats + gid`) in the node prefix `(network, len)`:
/// the network's address plus `id + 1`, or None when it does not fit.
pub fn node_address(prefix: (Ipv4Addr, u8), id: u32) -> Option<Ipv4Addr> {
    let (net, len) = prefix;
    let host_bits = 32 - u32::from(len.min(32));
    let hosts: u64 = 1u64 << host_bits;
    let n = u64::from(id) + 1;
    // The last address of the prefix is left out (a broadcast address).
    (n < hosts.saturating_sub(1)).then(|| Ipv4Addr::from(u32::from(net).wrapping_add(n as u32)))
}

/// The node id whose [`node_address`] in `prefix` is `addr`.
pub fn node_of_address(prefix: (Ipv4Addr, u8), addr: Ipv4Addr) -> Option<u32> {
    let (net, _) = prefix;
    let n = u32::from(addr)
        .checked_sub(u32::from(net))?
        .checked_sub(1)?;
    (node_address(prefix, n) == Some(addr)).then_some(n)
}

/// Rates of the control-plane policer (`[punt]`): packets per second
/// each worker hands to the control thread, per protocol class, and the
/// depth of each worker's punt queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PuntConfig {
    /// ARP requests and replies.
    pub arp_pps: u32,
    /// ICMP to a node address.
    pub icmp_pps: u32,
    /// MPLS echo (LSP ping and traceroute, UDP 3503).
    pub lsp_ping_pps: u32,
    /// BFD (UDP 3784, 4784).
    pub bfd_pps: u32,
    /// IKE (UDP 500, 4500).
    pub ike_pps: u32,
    /// Link-state notices and their acks (flooding, UDP 7784).
    pub flood_pps: u32,
    /// Anything else addressed to the node.
    pub other_pps: u32,
    /// Frames each worker's punt queue holds.
    pub queue: u32,
}

impl Default for PuntConfig {
    fn default() -> Self {
        PuntConfig {
            arp_pps: 1000,
            icmp_pps: 1000,
            lsp_ping_pps: 1000,
            bfd_pps: 10_000,
            ike_pps: 1000,
            flood_pps: 10_000,
            other_pps: 1000,
            queue: 1024,
        }
    }
}

impl PuntConfig {
    /// Highest rate a class may have (packets per second per worker).
    pub const MAX_PPS: u32 = 10_000_000;
    /// Deepest punt queue.
    pub const MAX_QUEUE: u32 = 65_536;
}

/// A control packet's route to a remote node, as data to it would go:
/// the label it is sent under as if it had arrived with it (looked up in
/// the LFIB), filled in by the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeRouteConfig {
    /// The remote node's address.
    pub address: Ipv4Addr,
    /// The label that leads to it.
    pub label: u32,
}

/// A whole node's configuration, validated.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Node name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Worker cores (empty: one worker on the current core).
    pub cores: Vec<usize>,
    /// Polling policy.
    pub idle: Idle,
    /// How the cores share the work.
    pub mode: Mode,
    /// I/O backend.
    pub io: IoConfig,
    /// Ports in index order.
    pub ports: Vec<PortConfig>,
    /// Security associations.
    pub sa: Vec<SaConfig>,
    /// FEC entries.
    pub fec: Vec<FecConfig>,
    /// LFIB entries.
    pub lfib: Vec<LfibConfig>,
    /// Delivery prefixes.
    pub deliver: Vec<DeliverConfig>,
    /// Routes from the constellation (`None`: static tables only).
    pub control: Option<ControlConfig>,
    /// The node address (`[node] address`; see [`NodeConfig::node_address`]).
    pub address: Option<Ipv4Addr>,
    /// The control-plane policer (`[punt]`).
    pub punt: PuntConfig,
    /// Link liveness (`[bfd]`).
    pub bfd: BfdConfig,
    /// Link-state notices (`[flood]`); `None`: the node applies its own
    /// link events alone.
    pub flood: Option<FloodConfig>,
    /// Labels toward remote node addresses (the control plane's; not read
    /// from the file).
    pub node_routes: Vec<NodeRouteConfig>,
    /// The management socket `meshplane ctl` talks to (`[node] socket`,
    /// default [`default_socket`] of the name); `None`: none (`socket = ""`).
    pub socket: Option<PathBuf>,
    /// IKEv2 with peer gateways (`[ike]`); `None`: static SAs only.
    pub ike: Option<IkeConfig>,
}

// ---- raw (as written) ----
//
// Numbers the validator checks are read as `i64` (any TOML integer), so an
// out-of-range value gets the field's own message and range rather than
// serde's "expected u32".

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    node: Spanned<RawNode>,
    #[serde(default)]
    io: Option<Spanned<RawIo>>,
    #[serde(default)]
    ports: Vec<Spanned<RawPort>>,
    #[serde(default)]
    sa: Vec<Spanned<RawSa>>,
    #[serde(default)]
    fec: Vec<Spanned<RawFec>>,
    #[serde(default)]
    lfib: Vec<Spanned<RawLfib>>,
    #[serde(default)]
    deliver: Vec<Spanned<RawDeliver>>,
    #[serde(default)]
    control: Option<Spanned<RawControl>>,
    #[serde(default)]
    punt: Option<Spanned<RawPunt>>,
    #[serde(default)]
    // Not spanned: `[[bfd.peer]]` alone creates the table implicitly,
    // which a span cannot describe.
    bfd: Option<bfd::RawBfd>,
    #[serde(default)]
    flood: Option<Spanned<flood::RawFlood>>,
    #[serde(default)]
    // Not spanned, as `[bfd]`: `[[ike.peer]]` may come first.
    ike: Option<ike::RawIke>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPunt {
    #[serde(default)]
    arp_pps: Option<Spanned<i64>>,
    #[serde(default)]
    icmp_pps: Option<Spanned<i64>>,
    #[serde(default)]
    lsp_ping_pps: Option<Spanned<i64>>,
    #[serde(default)]
    bfd_pps: Option<Spanned<i64>>,
    #[serde(default)]
    ike_pps: Option<Spanned<i64>>,
    #[serde(default)]
    flood_pps: Option<Spanned<i64>>,
    #[serde(default)]
    other_pps: Option<Spanned<i64>>,
    #[serde(default)]
    queue: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    constellation: Spanned<String>,
    #[serde(default)]
    ground_stations: Option<PathBuf>,
    node: Spanned<String>,
    #[serde(default)]
    start_s: Option<Spanned<f64>>,
    #[serde(default)]
    time_scale: Option<Spanned<f64>>,
    #[serde(default)]
    anchor_unix_ms: Option<u64>,
    #[serde(default)]
    step_ms: Option<Spanned<u64>>,
    #[serde(default)]
    lead_ms: Option<Spanned<u64>>,
    #[serde(default)]
    satellites: Option<Vec<u32>>,
    #[serde(default)]
    failures_file: Option<PathBuf>,
    #[serde(default)]
    node_prefix: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Spanned<String>,
    role: Role,
    #[serde(default)]
    cores: Vec<Spanned<i64>>,
    #[serde(default)]
    idle: Idle,
    #[serde(default)]
    mode: Option<Spanned<Mode>>,
    #[serde(default)]
    address: Option<Spanned<String>>,
    socket: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIo {
    #[serde(default)]
    backend: Option<Spanned<String>>,
    #[serde(default)]
    eal_args: Vec<String>,
    #[serde(default)]
    hugepages: bool,
    #[serde(default)]
    mtu: Option<Spanned<i64>>,
    #[serde(default)]
    buffers: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: Spanned<String>,
    mac: Spanned<String>,
    #[serde(default)]
    dpdk: Option<Spanned<String>>,
    #[serde(default)]
    iface: Option<Spanned<String>>,
    #[serde(default)]
    queues: Option<Spanned<Vec<u32>>>,
    #[serde(default)]
    mode: Option<XdpMode>,
    #[serde(default)]
    rx_ring: Option<Spanned<i64>>,
    #[serde(default)]
    tx_ring: Option<Spanned<i64>>,
    #[serde(default)]
    peer_mac: Option<Spanned<String>>,
    #[serde(default)]
    address: Option<Spanned<String>>,
    #[serde(default)]
    address6: Option<Spanned<String>>,
    #[serde(default)]
    mtu: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSa {
    spi: Spanned<i64>,
    dir: SaDir,
    aead: AeadAlg,
    key: Spanned<String>,
    tunnel_src: Spanned<Ipv4Addr>,
    tunnel_dst: Spanned<Ipv4Addr>,
    #[serde(default)]
    esn: bool,
    #[serde(default)]
    udp_encap: bool,
    #[serde(default)]
    peer: Option<Spanned<String>>,
    #[serde(default)]
    lifetime: Option<lifetime::RawLifetime>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFec {
    prefix: Spanned<String>,
    #[serde(default)]
    sa: Option<Spanned<i64>>,
    #[serde(default)]
    peer: Option<Spanned<String>>,
    #[serde(default)]
    label: Option<Spanned<i64>>,
    port: Spanned<String>,
    next_hop_mac: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLfib {
    label: Spanned<i64>,
    action: LfibAction,
    #[serde(default)]
    out_label: Option<Spanned<i64>>,
    #[serde(default)]
    port: Option<Spanned<String>>,
    #[serde(default)]
    next_hop_mac: Option<Spanned<String>>,
    #[serde(default)]
    push: Option<Spanned<Vec<Spanned<i64>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeliver {
    prefix: Spanned<String>,
    port: Spanned<String>,
    next_hop_mac: Spanned<String>,
}

/// Smallest label a FEC or LFIB may use (0..=15 are reserved, RFC 3032).
pub const MIN_LABEL: u32 = 16;
/// Largest 20-bit label.
pub const MAX_LABEL: u32 = (1 << 20) - 1;
/// Smallest SPI an SA may use: 0 is invalid and 1-255 are reserved
/// (RFC 4303 §2.1).
pub const MIN_SPI: u32 = 256;
/// The I/O backends `[io] backend` may name.
pub const BACKENDS: &[&str] = &["pcap", "memory", "dpdk", "afxdp", "auto"];
/// Longest node, port or SA peer name, in characters.
pub const MAX_NAME: usize = 64;
/// Longest kernel interface name (`IFNAMSIZ` - 1 bytes).
pub const MAX_IFACE: usize = 15;
/// Longest DPDK device string, in characters.
pub const MAX_DEVICE: usize = 1024;
/// Most ports a node may have.
pub const MAX_PORTS: usize = 256;
/// Highest core id `[node] cores` may list (`CPU_SETSIZE` - 1).
pub const MAX_CORE: u32 = 1023;
/// Largest `[control] start_s`: about 31 years of geometry time, where an
/// `f64` still resolves well below a microsecond.
pub const MAX_START_S: f64 = 1e9;
/// Smallest `[control] time_scale`.
pub const MIN_TIME_SCALE: f64 = 1e-6;
/// Largest `[control] time_scale`.
pub const MAX_TIME_SCALE: f64 = 1e6;
/// Longest value a message repeats from the file, in characters; longer
/// ones are cut and end in an ellipsis.
pub const ECHO_MAX: usize = 64;
/// Longest error message, in characters (a safety net behind [`ECHO_MAX`]).
pub const MAX_MESSAGE: usize = 512;
/// Where a node's management socket lives unless `[node] socket` says
/// otherwise: `DIR/NAME.sock`.
pub const DEFAULT_SOCKET_DIR: &str = "/run/meshplane";
/// Longest Unix socket path, in bytes (`sun_path` less its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The management socket of node `name` when its configuration names none.
pub fn default_socket(name: &str) -> PathBuf {
    Path::new(DEFAULT_SOCKET_DIR).join(format!("{name}.sock"))
}

/// Why `path` cannot be a Unix socket's path.
pub fn bad_socket_path(path: &Path) -> Option<String> {
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.len() > MAX_SOCKET_PATH {
        Some(format!(
            "is {} bytes long; a Unix socket path has at most {MAX_SOCKET_PATH}",
            bytes.len()
        ))
    } else if bytes.ends_with(b"/") || path.file_name().is_none() {
        Some("names a directory, not a socket file".into())
    } else {
        None
    }
}

/// `s` quoted (control characters escaped) for a message, cut to
/// [`ECHO_MAX`] characters with an ellipsis.
pub fn echo(s: &str) -> String {
    match s.char_indices().nth(ECHO_MAX) {
        None => format!("{s:?}"),
        Some((i, _)) => format!("{:?}…", &s[..i]),
    }
}

/// `s` cut to `max` characters, with an ellipsis when cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

/// Parses a MAC written as `02:00:00:00:00:01` (or with `-`).
pub fn parse_mac(s: &str) -> Result<Mac, String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(format!(
            "{} is not a MAC address (want 02:00:00:00:00:01)",
            echo(s)
        ));
    }
    let mut m = [0u8; 6];
    for (o, p) in m.iter_mut().zip(parts) {
        // from_str_radix alone would take a sign ("+f").
        let hex = (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_hexdigit());
        *o = u8::from_str_radix(p, 16)
            .ok()
            .filter(|_| hex)
            .ok_or_else(|| format!("{} is not a MAC address (bad byte {})", echo(s), echo(p)))?;
    }
    Ok(m)
}

/// Why `m` cannot be the address of one station: the zero, broadcast and
/// multicast (group bit set) addresses.
pub fn not_unicast(m: &Mac) -> Option<&'static str> {
    if *m == [0; 6] {
        Some("is the all-zero address")
    } else if *m == [0xff; 6] {
        Some("is the broadcast address")
    } else if m[0] & 1 == 1 {
        Some("is a multicast (group) address")
    } else {
        None
    }
}

/// Why `a` cannot be a host's own IPv4 address.
pub fn not_host(a: Ipv4Addr) -> Option<&'static str> {
    if a.is_unspecified() {
        Some("is the unspecified address")
    } else if a.is_broadcast() {
        Some("is the broadcast address")
    } else if a.is_multicast() {
        Some("is a multicast address")
    } else if a.is_loopback() {
        Some("is a loopback address")
    } else {
        None
    }
}

/// Formats a MAC as `02:00:00:00:00:01`.
pub fn format_mac(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Rewrites a TOML/serde message for a reader: values between backticks
/// cut to [`ECHO_MAX`], and serde's "invalid value: integer `-3`, expected
/// u32" as the range the field takes.
fn readable_toml_message(msg: &str) -> String {
    let ranges = [
        ("u8", u64::from(u8::MAX)),
        ("u16", u64::from(u16::MAX)),
        ("u32", u64::from(u32::MAX)),
        ("u64", u64::MAX),
        ("usize", usize::MAX as u64),
    ];
    if let Some(rest) = msg.strip_prefix("invalid value: integer `") {
        if let Some((v, ty)) = rest.split_once("`, expected ") {
            if let Some((_, max)) = ranges.iter().find(|(t, _)| *t == ty) {
                return format!("{} is out of range: want 0 to {max}", cut(v, ECHO_MAX));
            }
        }
    }
    msg.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                cut(part, ECHO_MAX)
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("`")
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    /// 1-based line of byte offset `at`.
    fn line_at(&self, at: usize) -> usize {
        let end = at.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }
    fn line(&self, span: Range<usize>) -> usize {
        self.line_at(span.start)
    }
    fn err(&self, span: Range<usize>, msg: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: self.line(span),
            msg: cut(&msg.into(), MAX_MESSAGE),
        }
    }

    /// A TOML syntax or type error, with its line, the key it is about
    /// and a reason even where the parser gives none.
    fn toml_err(&self, e: &toml::de::Error) -> ConfigError {
        let span = e.span().unwrap_or(0..0);
        let at = span.start.min(self.text.len());
        let here = self.text.get(at..).and_then(|t| t.chars().next());
        let mut msg = match here {
            Some(c) if c.is_control() && !matches!(c, '\t' | '\n') => format!(
                "control character U+{:04X} is not allowed in TOML (only tab, in strings and comments)",
                u32::from(c)
            ),
            _ => readable_toml_message(e.message().trim()),
        };
        if msg.is_empty() {
            msg = "not valid TOML here".into();
        }
        // The key whose value this is: `key = value` on the error's line.
        let line_start = self.text.as_bytes()[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let before = self.text.get(line_start..at).unwrap_or_default();
        if let Some((k, _)) = before.split_once('=') {
            let k = k.trim();
            let bare = !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if bare && !msg.contains(&format!("`{k}`")) {
                msg = format!("{k}: {msg}");
            }
        }
        self.err(span, msg)
    }

    /// A unicast IPv4 host address (`[node] address`).
    fn host_address(&self, v: &Spanned<String>, field: &str) -> Result<Ipv4Addr, ConfigError> {
        let a: Ipv4Addr = v.get_ref().parse().map_err(|_| {
            self.err(
                v.span(),
                format!("{field} {} is not an IPv4 address", echo(v.get_ref())),
            )
        })?;
        if let Some(why) = not_host(a) {
            return Err(self.err(v.span(), format!("{field} {a} {why}")));
        }
        Ok(a)
    }

    /// An interface address with its prefix length (`10.0.0.1/24`): the
    /// host part may be neither all zeros nor all ones.
    fn interface_address(
        &self,
        v: &Spanned<String>,
        field: &str,
    ) -> Result<(Ipv4Addr, u8), ConfigError> {
        let bad = |m: String| self.err(v.span(), format!("{field}: {m}"));
        let (p, written) = Prefix::parse_any(v.get_ref()).map_err(bad)?;
        let IpAddr::V4(a) = written else {
            return Err(bad(format!(
                "{} is not an IPv4 address with a prefix length, e.g. \"10.0.0.1/24\"",
                echo(v.get_ref())
            )));
        };
        if let Some(why) = not_host(a) {
            return Err(bad(format!("{a} {why}")));
        }
        if p.len < 31
            && (IpAddr::V4(a) == p.addr || u32::from(a) | (u32::MAX >> p.len) == u32::from(a))
        {
            return Err(bad(format!(
                "{a} is the network's or its broadcast address in {p}: give a host address"
            )));
        }
        Ok((a, p.len))
    }

    /// An IPv6 interface address with its prefix length (`fd00:1::1/64`):
    /// a unicast address (not unspecified, loopback or multicast).
    fn interface_address6(
        &self,
        v: &Spanned<String>,
        field: &str,
    ) -> Result<(Ipv6Addr, u8), ConfigError> {
        let bad = |m: String| self.err(v.span(), format!("{field}: {m}"));
        let (p, written) = Prefix::parse_any(v.get_ref()).map_err(bad)?;
        let IpAddr::V6(a) = written else {
            return Err(bad(format!(
                "{} is not an IPv6 address with a prefix length, e.g. \"fd00:1::1/64\"",
                echo(v.get_ref())
            )));
        };
        let why = if a.is_unspecified() {
            Some("is the unspecified address")
        } else if a.is_loopback() {
            Some("is the loopback address")
        } else if a.is_multicast() {
            Some("is a multicast address")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(bad(format!("{a} {why}; give the port's unicast address")));
        }
        Ok((a, p.len))
    }

    /// An integer field within `lo..=hi`; `why` explains the range.
    fn int(
        &self,
        v: &Spanned<i64>,
        field: &str,
        lo: u32,
        hi: u32,
        why: &str,
    ) -> Result<u32, ConfigError> {
        let x = *v.get_ref();
        u32::try_from(x)
            .ok()
            .filter(|x| (lo..=hi).contains(x))
            .ok_or_else(|| {
                self.err(
                    v.span(),
                    format!("{field} = {x} is out of range: want {lo} to {hi}{why}"),
                )
            })
    }

    /// A name: not empty, no control characters, at most `max` characters.
    fn name(&self, v: &Spanned<String>, field: &str, max: usize) -> Result<String, ConfigError> {
        let s = v.get_ref();
        let why = if s.trim().is_empty() {
            Some("is empty".to_string())
        } else if let Some(c) = s.chars().find(|c| c.is_control()) {
            Some(format!(
                "contains the control character U+{:04X}",
                u32::from(c)
            ))
        } else if s.chars().count() > max {
            Some(format!("is longer than {max} characters"))
        } else {
            None
        };
        match why {
            Some(why) => Err(self.err(v.span(), format!("{field} {} {why}", echo(s)))),
            None => Ok(s.clone()),
        }
    }

    /// A kernel interface name (what `ip link` accepts).
    fn iface(&self, v: &Spanned<String>, field: &str) -> Result<String, ConfigError> {
        let s = self.name(v, field, MAX_IFACE)?;
        if s.len() > MAX_IFACE {
            return Err(self.err(
                v.span(),
                format!("{field} {} is longer than {MAX_IFACE} bytes", echo(&s)),
            ));
        }
        if s == "." || s == ".." || s.contains(['/', ':']) || s.contains(char::is_whitespace) {
            return Err(self.err(
                v.span(),
                format!(
                    "{field} {} is not an interface name (no '/', ':' or spaces)",
                    echo(&s)
                ),
            ));
        }
        Ok(s)
    }

    /// The MAC of one station: parsed, and not zero, broadcast or multicast.
    fn mac(&self, v: &Spanned<String>, field: &str) -> Result<Mac, ConfigError> {
        let m = parse_mac(v.get_ref()).map_err(|e| self.err(v.span(), format!("{field}: {e}")))?;
        match not_unicast(&m) {
            Some(why) => Err(self.err(
                v.span(),
                format!(
                    "{field} {} {why}; it must be the unicast address of one station",
                    format_mac(&m)
                ),
            )),
            None => Ok(m),
        }
    }

    /// A tunnel end: a unicast IPv4 address.
    fn tunnel(
        &self,
        v: &Spanned<Ipv4Addr>,
        field: &str,
        spi: u32,
    ) -> Result<Ipv4Addr, ConfigError> {
        let a = *v.get_ref();
        let why = if a.is_unspecified() {
            Some("is the unspecified address")
        } else if a.is_broadcast() {
            Some("is the broadcast address")
        } else if a.is_multicast() {
            Some("is a multicast address")
        } else {
            None
        };
        match why {
            Some(why) => Err(self.err(
                v.span(),
                format!("SA {spi}: {field} {a} {why}; a tunnel end needs a unicast address"),
            )),
            None => Ok(a),
        }
    }

    /// The text of `span` as written in the file, cut for a message.
    fn src(&self, span: Range<usize>) -> String {
        cut(self.text.get(span).unwrap_or_default(), ECHO_MAX)
    }

    /// A duplicate of what line `first` (byte offset) already defined.
    fn dup(&self, span: Range<usize>, what: String, first: usize) -> ConfigError {
        let l = self.line_at(first);
        self.err(span, format!("{what} (first defined at line {l})"))
    }
}

/// `[node] socket`: a path, `""` for none, or by default
/// [`default_socket`] of the node's name (which must then make a file name).
fn node_socket(cx: &Ctx<'_>, node: &RawNode, name: &str) -> Result<Option<PathBuf>, ConfigError> {
    let Some(s) = &node.socket else {
        let path = default_socket(name);
        let why = if name.contains('/') || name == "." || name == ".." {
            Some(format!(
                "the default management socket is {DEFAULT_SOCKET_DIR}/NAME.sock, \
                 and this name is not a file name"
            ))
        } else {
            bad_socket_path(&path).map(|why| {
                format!(
                    "the default management socket {} {why}",
                    echo(&path.display().to_string())
                )
            })
        };
        return match why {
            Some(why) => Err(cx.err(
                node.name.span(),
                format!(
                    "[node] name {}: {why}; set [node] socket = \"PATH\" (or \"\" for none)",
                    echo(name)
                ),
            )),
            None => Ok(Some(path)),
        };
    };
    let text = s.get_ref();
    if text.is_empty() {
        return Ok(None);
    }
    let why = match text.chars().find(|c| c.is_control()) {
        Some(c) => Some(format!(
            "contains the control character U+{:04X}",
            u32::from(c)
        )),
        None => bad_socket_path(Path::new(text)),
    };
    match why {
        Some(why) => Err(cx.err(
            s.span(),
            format!(
                "[node] socket {} {why} (\"\" runs the node without one)",
                echo(text)
            ),
        )),
        None => Ok(Some(PathBuf::from(text))),
    }
}

/// The CPUs this host has, from `/sys/devices/system/cpu/present`
/// (`0-3`, `0,2-5`): their count and the list as the kernel writes it.
fn host_cpus() -> Option<(usize, String)> {
    let text = crate::file_read::read_text(
        Path::new("/sys/devices/system/cpu/present"),
        crate::file_read::SYSTEM_LIMIT,
    )
    .ok()?;
    let list = text.trim().to_string();
    let mut count = 0usize;
    for part in list.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
        count = count.checked_add(b.checked_sub(a)?.checked_add(1)?)?;
    }
    Some((count, list))
}

/// A worker core must be one a thread can be pinned to: below
/// `CPU_SETSIZE` (the affinity mask's size) and present on this host.
fn check_core(core: usize) -> Result<(), String> {
    let setsize = libc::CPU_SETSIZE as usize;
    if core >= setsize {
        return Err(format!(
            "core {core}: cores must be below {setsize} (the CPU affinity mask's size)"
        ));
    }
    if let Some((count, list)) = host_cpus() {
        let present = list.split(',').any(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            matches!((a.parse::<usize>(), b.parse::<usize>()), (Ok(a), Ok(b)) if (a..=b).contains(&core))
        });
        if !present {
            return Err(format!("core {core}: this host has {count} CPUs ({list})"));
        }
    }
    Ok(())
}

impl NodeConfig {
    /// The longest frame any of the node's ports receives (its buffers
    /// hold it): the largest [`PortConfig::max_frame`], or
    /// [`IoConfig::max_frame`] for a node without ports.
    pub fn max_frame(&self) -> usize {
        self.ports
            .iter()
            .map(PortConfig::max_frame)
            .max()
            .unwrap_or_else(|| self.io.max_frame())
    }

    /// Reads and validates a node configuration file.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let bytes =
            crate::file_read::read_bytes(path, crate::file_read::CONFIG_LIMIT).map_err(|e| {
                ConfigError {
                    file: path.display().to_string(),
                    line: 0,
                    msg: e.to_string(),
                }
            })?;
        Self::parse_bytes(&bytes, &path.display().to_string())
    }

    /// Parses and validates configuration bytes, which must be UTF-8 (the
    /// error names the line and byte offset of the first invalid byte).
    pub fn parse_bytes(bytes: &[u8], file: &str) -> Result<NodeConfig, ConfigError> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let at = e.valid_up_to();
            let before = &bytes[..at];
            let line_start = before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            ConfigError {
                file: file.to_string(),
                line: before.iter().filter(|&&b| b == b'\n').count() + 1,
                msg: format!(
                    "not UTF-8: byte 0x{:02x} at byte offset {at} (column {}) is not valid UTF-8",
                    bytes.get(at).copied().unwrap_or_default(),
                    at - line_start + 1
                ),
            }
        })?;
        Self::parse(text, file)
    }

    /// Parses and validates configuration text; `file` names it in errors.
    ///
    /// Runs in time linear in the number of entries (duplicate and
    /// reference checks go through hash maps): it runs again on every
    /// reload.
    pub fn parse(text: &str, file: &str) -> Result<NodeConfig, ConfigError> {
        let cx = Ctx { file, text };
        let raw: RawFile = toml::from_str(text).map_err(|e| cx.toml_err(&e))?;

        let node = raw.node.get_ref();
        let name = cx.name(&node.name, "[node] name", MAX_NAME)?;
        let mut cores = Vec::with_capacity(node.cores.len());
        let mut seen_cores: HashMap<u32, usize> = HashMap::new();
        for c in &node.cores {
            let v = cx.int(c, "[node] cores entry", 0, MAX_CORE, " (CPU_SETSIZE)")?;
            check_core(v as usize).map_err(|m| cx.err(c.span(), m))?;
            if let Some(&first) = seen_cores.get(&v) {
                return Err(cx.dup(
                    c.span(),
                    format!(
                        "[node] cores: core {v} is listed twice: each worker needs its own core"
                    ),
                    first,
                ));
            }
            seen_cores.insert(v, c.span().start);
            cores.push(v as usize);
        }
        let socket = node_socket(&cx, node, &name)?;
        let mode = node.mode.as_ref().map(|m| *m.get_ref()).unwrap_or_default();
        if let Some(m) = &node.mode {
            if mode == Mode::Pipeline && !cores.len().is_multiple_of(2) {
                return Err(cx.err(
                    m.span(),
                    format!(
                        "mode = \"pipeline\" runs cores in pairs (I/O, crypto), but [node] cores lists {}: list an even number",
                        cores.len()
                    ),
                ));
            }
        }

        let mut io = IoConfig {
            backend: "pcap".into(),
            eal_args: vec![],
            hugepages: false,
            mtu: IoConfig::DEFAULT_MTU,
            buffers: None,
        };
        let mut backend_span = raw.node.span();
        if let Some(rio) = &raw.io {
            backend_span = rio.span();
            let rio = rio.get_ref();
            if let Some(b) = &rio.backend {
                if !BACKENDS.contains(&b.get_ref().as_str()) {
                    return Err(cx.err(
                        b.span(),
                        format!(
                            "unknown io backend {} (one of: {})",
                            echo(b.get_ref()),
                            BACKENDS.join(", ")
                        ),
                    ));
                }
                io.backend = b.get_ref().clone();
                backend_span = b.span();
            }
            io.eal_args = rio.eal_args.clone();
            io.hugepages = rio.hugepages;
            if let Some(m) = &rio.mtu {
                let range = i64::from(IoConfig::MIN_MTU)..=i64::from(IoConfig::MAX_MTU);
                io.mtu = match u16::try_from(*m.get_ref()) {
                    Ok(v) if range.contains(m.get_ref()) => v,
                    _ => {
                        return Err(cx.err(
                            m.span(),
                            format!(
                                "[io] mtu {}: out of range (the largest IP packet a port \
                                 carries, {}..={} bytes)",
                                m.get_ref(),
                                IoConfig::MIN_MTU,
                                IoConfig::MAX_MTU
                            ),
                        ))
                    }
                };
            }
            if let Some(b) = &rio.buffers {
                let range = i64::from(IoConfig::MIN_BUFFERS)..=i64::from(IoConfig::MAX_BUFFERS);
                io.buffers = match u32::try_from(*b.get_ref()) {
                    Ok(v) if range.contains(b.get_ref()) => Some(v),
                    _ => {
                        return Err(cx.err(
                            b.span(),
                            format!(
                                "[io] buffers {}: out of range (the node's packet buffers, \
                                 {}..={})",
                                b.get_ref(),
                                IoConfig::MIN_BUFFERS,
                                IoConfig::MAX_BUFFERS
                            ),
                        ))
                    }
                };
            }
        }

        if let Some(p) = raw.ports.get(MAX_PORTS) {
            return Err(cx.err(p.span(), format!("more than {MAX_PORTS} [[ports]]")));
        }
        let mut ports: Vec<PortConfig> = Vec::with_capacity(raw.ports.len());
        // Name -> index, MAC -> index, interface -> index.
        let mut port_index: HashMap<String, usize> = HashMap::new();
        let mut port_macs: HashMap<Mac, usize> = HashMap::new();
        let mut ifaces: HashMap<String, usize> = HashMap::new();
        for sp in &raw.ports {
            let p = sp.get_ref();
            let pname = cx.name(&p.name, "port name", MAX_NAME)?;
            if let Some(&i) = port_index.get(&pname) {
                return Err(cx.dup(
                    p.name.span(),
                    format!("duplicate port name {}", echo(&pname)),
                    raw.ports[i].get_ref().name.span().start,
                ));
            }
            let what = format!("port {}", echo(&pname));
            let mac = cx.mac(&p.mac, &format!("{what} mac"))?;
            if let Some(&i) = port_macs.get(&mac) {
                return Err(cx.dup(
                    p.mac.span(),
                    format!(
                        "{what} mac {} is already port {}'s: each port needs its own MAC",
                        format_mac(&mac),
                        echo(&ports[i].name)
                    ),
                    raw.ports[i].get_ref().mac.span().start,
                ));
            }
            let dpdk = p
                .dpdk
                .as_ref()
                .map(|d| cx.name(d, &format!("{what} dpdk"), MAX_DEVICE))
                .transpose()?;
            let iface = p
                .iface
                .as_ref()
                .map(|i| cx.iface(i, &format!("{what} iface")))
                .transpose()?;
            if io.backend == "afxdp" && iface.is_none() {
                return Err(cx.err(
                    p.name.span(),
                    format!(
                        "{what}: [io] backend = \"afxdp\" needs the port's interface, e.g. iface = \"eth1\""
                    ),
                ));
            }
            if io.backend == "dpdk" && dpdk.is_none() {
                return Err(cx.err(
                    p.name.span(),
                    format!(
                        "{what}: [io] backend = \"dpdk\" needs the port's device, e.g. dpdk = \"0000:3b:00.0\" or \"net_ring0\""
                    ),
                ));
            }
            let ring = |r: &Option<Spanned<i64>>, field: &str| -> Result<u32, ConfigError> {
                let Some(r) = r else {
                    return Ok(DEFAULT_XDP_RING);
                };
                let v = *r.get_ref();
                match u32::try_from(v) {
                    Ok(v) if (64..=32768).contains(&v) && v.is_power_of_two() => Ok(v),
                    _ => Err(cx.err(
                        r.span(),
                        format!("{what} {field} = {v}: want a power of two from 64 to 32768"),
                    )),
                }
            };
            let queues = match &p.queues {
                Some(q) if q.get_ref().is_empty() => {
                    return Err(cx.err(
                        q.span(),
                        format!("{what} queues is empty: list one queue per worker"),
                    ))
                }
                Some(q) => {
                    let mut seen = HashSet::new();
                    if let Some(d) = q.get_ref().iter().find(|x| !seen.insert(**x)) {
                        return Err(cx.err(
                            q.span(),
                            format!("{what}: queue {d} listed twice: each worker needs its own"),
                        ));
                    }
                    Some(q.get_ref().clone())
                }
                None => None,
            };
            let afxdp = AfXdpPortConfig {
                queues,
                mode: p.mode.unwrap_or_default(),
                rx_ring: ring(&p.rx_ring, "rx_ring")?,
                tx_ring: ring(&p.tx_ring, "tx_ring")?,
            };
            if let Some(i) = &iface {
                if let Some(&o) = ifaces.get(i) {
                    return Err(cx.dup(
                        p.name.span(),
                        format!(
                            "{what}: interface {} is already port {}",
                            echo(i),
                            echo(&ports[o].name)
                        ),
                        raw.ports[o].get_ref().name.span().start,
                    ));
                }
                ifaces.insert(i.clone(), ports.len());
            }
            let peer_mac = p
                .peer_mac
                .as_ref()
                .map(|m| cx.mac(m, &format!("{what} peer_mac")))
                .transpose()?;
            let address = p
                .address
                .as_ref()
                .map(|a| cx.interface_address(a, &format!("{what} address")))
                .transpose()?;
            let address6 = p
                .address6
                .as_ref()
                .map(|a| cx.interface_address6(a, &format!("{what} address6")))
                .transpose()?;
            let lan = address.is_some() || address6.is_some();
            let mtu = match &p.mtu {
                None => io.default_port_mtu(lan),
                Some(m) => {
                    let range = i64::from(IoConfig::MIN_MTU)..=i64::from(IoConfig::MAX_PORT_MTU);
                    match u16::try_from(*m.get_ref()) {
                        Ok(v) if range.contains(m.get_ref()) => v,
                        _ => {
                            return Err(cx.err(
                                m.span(),
                                format!(
                                    "{what} mtu {}: out of range (the largest Ethernet payload \
                                     the port carries, {}..={} bytes)",
                                    m.get_ref(),
                                    IoConfig::MIN_MTU,
                                    IoConfig::MAX_PORT_MTU
                                ),
                            ))
                        }
                    }
                }
            };
            port_index.insert(pname.clone(), ports.len());
            port_macs.insert(mac, ports.len());
            ports.push(PortConfig {
                name: pname,
                mac,
                dpdk,
                iface,
                afxdp,
                peer_mac,
                address,
                address6,
                mtu,
            });
        }
        if matches!(io.backend.as_str(), "dpdk" | "afxdp" | "auto") && ports.is_empty() {
            return Err(cx.err(
                backend_span,
                format!(
                    "[io] backend = {:?} drives the ports' devices, but no [[ports]] is defined",
                    io.backend
                ),
            ));
        }
        if io.backend == "auto" {
            if let Some(nodev) = ports.iter().find(|p| p.dpdk.is_none()) {
                if let Some(i) = ports.iter().position(|p| p.iface.is_none()) {
                    return Err(cx.err(
                        raw.ports[i].get_ref().name.span(),
                        format!(
                            "port {}: [io] backend = \"auto\" falls back to AF_XDP (port {} names no dpdk device), which needs the port's interface, e.g. iface = \"eth1\"",
                            echo(&ports[i].name),
                            echo(&nodev.name)
                        ),
                    ));
                }
            }
        }
        let port_ref = |s: &Spanned<String>| -> Result<String, ConfigError> {
            if port_index.contains_key(s.get_ref()) {
                return Ok(s.get_ref().clone());
            }
            let mut names: Vec<String> = ports.iter().take(8).map(|p| echo(&p.name)).collect();
            if ports.len() > 8 {
                names.push("…".into());
            }
            Err(cx.err(
                s.span(),
                format!(
                    "unknown port {} (ports: {})",
                    echo(s.get_ref()),
                    if names.is_empty() {
                        "none defined".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            ))
        };
        let label_ref = |s: &Spanned<i64>, field: &str| {
            cx.int(
                s,
                field,
                MIN_LABEL,
                MAX_LABEL,
                " (0-15 are reserved, RFC 3032)",
            )
        };
        let prefix_ref = |s: &Spanned<String>| {
            Prefix::parse_network(s.get_ref()).map_err(|m| cx.err(s.span(), m))
        };

        let mut sa = Vec::with_capacity(raw.sa.len());
        // (SPI, outbound) -> offset of its first definition.
        let mut sa_seen: HashMap<(u32, bool), usize> = HashMap::new();
        for s in &raw.sa {
            let r = s.get_ref();
            let spi = cx.int(
                &r.spi,
                "spi",
                MIN_SPI,
                u32::MAX,
                " (0 is invalid and 1-255 are reserved, RFC 4303 §2.1)",
            )?;
            let key_of = (spi, r.dir == SaDir::Out);
            if let Some(&first) = sa_seen.get(&key_of) {
                return Err(cx.dup(
                    r.spi.span(),
                    format!("duplicate SA with SPI {spi} in the same direction"),
                    first,
                ));
            }
            sa_seen.insert(key_of, r.spi.span().start);
            // Whitespace may separate the key from the salt for readability.
            let compact: Zeroizing<String> = Zeroizing::new(
                r.key
                    .get_ref()
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect(),
            );
            let key = Zeroizing::new(hex::decode(compact.as_str()).map_err(|_| {
                cx.err(
                    r.key.span(),
                    format!("SA {spi}: key is not hex (key bytes then 4 salt bytes)"),
                )
            })?);
            let want = r.aead.key_len() + 4;
            if key.len() != want {
                return Err(cx.err(
                    r.key.span(),
                    format!(
                        "SA {spi}: key has {} bytes, {} needs {} key bytes + 4 salt bytes = {want}",
                        key.len(),
                        r.aead.name(),
                        r.aead.key_len()
                    ),
                ));
            }
            let tunnel_src = cx.tunnel(&r.tunnel_src, "tunnel_src", spi)?;
            let tunnel_dst = cx.tunnel(&r.tunnel_dst, "tunnel_dst", spi)?;
            if tunnel_src == tunnel_dst {
                return Err(cx.err(
                    r.tunnel_dst.span(),
                    format!(
                        "SA {spi}: tunnel_src and tunnel_dst are both {tunnel_src}; a tunnel needs two ends"
                    ),
                ));
            }
            let peer = r
                .peer
                .as_ref()
                .map(|p| cx.name(p, &format!("SA {spi}: peer"), MAX_NAME))
                .transpose()?;
            let lifetime = match &r.lifetime {
                Some(l) => lifetime::parse_lifetime(&cx, spi, r.esn, l)?,
                None => crate::sa::Lifetime::NONE,
            };
            sa.push(SaConfig {
                spi,
                dir: r.dir,
                aead: r.aead,
                key,
                tunnel_src,
                tunnel_dst,
                esn: r.esn,
                udp_encap: r.udp_encap,
                lifetime,
                peer,
                negotiated: false,
            });
        }

        let ike = raw
            .ike
            .as_ref()
            .map(|i| ike::parse_ike(&cx, i))
            .transpose()?;

        let mut fec = Vec::with_capacity(raw.fec.len());
        let mut fec_seen: HashMap<Prefix, usize> = HashMap::new();
        for f in &raw.fec {
            let r = f.get_ref();
            let (spi, peer) = match (&r.sa, &r.peer) {
                (Some(sa), None) => {
                    let spi = *sa.get_ref();
                    let Some(spi) = u32::try_from(spi)
                        .ok()
                        .filter(|s| sa_seen.contains_key(&(*s, true)))
                    else {
                        return Err(cx.err(
                            sa.span(),
                            format!(
                                "fec refers to SA {spi}, but no [[sa]] with dir = \"out\" has that SPI"
                            ),
                        ));
                    };
                    (spi, None)
                }
                (None, Some(p)) => {
                    let a = cx.host_address(p, "fec peer")?;
                    let Some(ike) = &ike else {
                        return Err(cx.err(
                            p.span(),
                            format!(
                                "fec peer = \"{a}\" needs an [ike] section: the SA to a peer is negotiated"
                            ),
                        ));
                    };
                    if ike.peer(a).is_none() {
                        return Err(cx.err(
                            p.span(),
                            format!("fec peer = \"{a}\": no [[ike.peer]] has that address"),
                        ));
                    }
                    (0, Some(a))
                }
                (Some(sa), Some(_)) => {
                    return Err(cx.err(
                        sa.span(),
                        "fec gives both sa and peer: give either a static SA's SPI or the IKE peer",
                    ))
                }
                (None, None) => return Err(cx.err(
                    f.span(),
                    "fec needs sa (a static outbound SA's SPI) or peer (an [[ike.peer]] address)",
                )),
            };
            let prefix = prefix_ref(&r.prefix)?;
            if let Some(&first) = fec_seen.get(&prefix) {
                return Err(cx.dup(
                    r.prefix.span(),
                    format!("duplicate FEC prefix {prefix}"),
                    first,
                ));
            }
            fec_seen.insert(prefix, r.prefix.span().start);
            let port = port_ref(&r.port)?;
            if let Some(p) = port_index.get(&port).map(|&i| &ports[i]) {
                // What a packet to the prefix may be (RFC 791, RFC 8200 §5).
                let least = if prefix.addr.is_ipv4() { 68 } else { 1280 };
                let room = crate::tables::tunnel_mtu(p.mtu, r.label.is_some(), false);
                if room < least {
                    return Err(cx.err(
                        r.port.span(),
                        format!(
                            "fec {prefix}: port {} has mtu {}, which leaves {room} B for a \
                             packet through the tunnel; {} needs {least} (raise the port's mtu \
                             to at least {})",
                            echo(&p.name),
                            p.mtu,
                            if least == 68 { "IPv4" } else { "IPv6" },
                            usize::from(p.mtu) + least - room
                        ),
                    ));
                }
            }
            fec.push(FecConfig {
                prefix,
                sa: spi,
                peer,
                label: r
                    .label
                    .as_ref()
                    .map(|l| label_ref(l, "fec label"))
                    .transpose()?,
                port,
                next_hop_mac: cx.mac(&r.next_hop_mac, &format!("fec {prefix} next_hop_mac"))?,
            });
        }

        let mut lfib: Vec<LfibConfig> = Vec::with_capacity(raw.lfib.len());
        let mut lfib_seen: HashMap<u32, usize> = HashMap::new();
        for l in &raw.lfib {
            let r = l.get_ref();
            let label = label_ref(&r.label, "lfib label")?;
            if let Some(&first) = lfib_seen.get(&label) {
                return Err(cx.dup(
                    r.label.span(),
                    format!("duplicate LFIB label {label}"),
                    first,
                ));
            }
            lfib_seen.insert(label, r.label.span().start);
            let port = r.port.as_ref().map(port_ref).transpose()?;
            let next_hop_mac = r
                .next_hop_mac
                .as_ref()
                .map(|m| cx.mac(m, &format!("LFIB label {label}: next_hop_mac")))
                .transpose()?;
            let out_label = r
                .out_label
                .as_ref()
                .map(|o| label_ref(o, "out_label"))
                .transpose()?;
            match r.action {
                LfibAction::Swap => {
                    if out_label.is_none() || port.is_none() || next_hop_mac.is_none() {
                        return Err(cx.err(
                            l.span(),
                            format!(
                                "LFIB label {label}: swap needs out_label, port and next_hop_mac"
                            ),
                        ));
                    }
                }
                LfibAction::Pop => {
                    if let Some(p) = &r.push {
                        return Err(cx.err(
                            p.span(),
                            format!("LFIB label {label}: pop pushes nothing (push goes with swap)"),
                        ));
                    }
                    if out_label.is_some() {
                        return Err(cx.err(
                            l.span(),
                            format!("LFIB label {label}: pop takes no out_label"),
                        ));
                    }
                    if port.is_some() != next_hop_mac.is_some() {
                        return Err(cx.err(
                            l.span(),
                            format!(
                                "LFIB label {label}: pop towards a next hop needs both port and next_hop_mac (neither = local termination)"
                            ),
                        ));
                    }
                }
            }
            let mut push = Vec::new();
            if let Some(p) = &r.push {
                if p.get_ref().len() > MAX_LFIB_PUSH {
                    return Err(cx.err(
                        p.span(),
                        format!(
                            "LFIB label {label}: push lists {} labels, at most {MAX_LFIB_PUSH}",
                            p.get_ref().len()
                        ),
                    ));
                }
                for x in p.get_ref() {
                    push.push(label_ref(x, "push label")?);
                }
            }
            lfib.push(LfibConfig {
                label,
                action: r.action,
                out_label,
                port,
                next_hop_mac,
                push,
            });
        }

        let mut deliver = Vec::with_capacity(raw.deliver.len());
        let mut deliver_seen: HashMap<Prefix, usize> = HashMap::new();
        for d in &raw.deliver {
            let r = d.get_ref();
            let prefix = prefix_ref(&r.prefix)?;
            if let Some(&first) = deliver_seen.get(&prefix) {
                return Err(cx.dup(
                    r.prefix.span(),
                    format!("duplicate deliver prefix {prefix}"),
                    first,
                ));
            }
            deliver_seen.insert(prefix, r.prefix.span().start);
            deliver.push(DeliverConfig {
                prefix,
                port: port_ref(&r.port)?,
                next_hop_mac: cx.mac(&r.next_hop_mac, &format!("deliver {prefix} next_hop_mac"))?,
            });
        }

        let control = raw
            .control
            .as_ref()
            .map(|c| parse_control(&cx, c))
            .transpose()?;

        let address = node
            .address
            .as_ref()
            .map(|a| cx.host_address(a, "[node] address"))
            .transpose()?;
        let punt = raw
            .punt
            .as_ref()
            .map(|p| parse_punt(&cx, p.get_ref()))
            .transpose()?
            .unwrap_or_default();
        let bfd = raw
            .bfd
            .as_ref()
            .map(|b| bfd::parse_bfd(&cx, b, &port_ref))
            .transpose()?
            .unwrap_or_default();
        let flood = raw
            .flood
            .as_ref()
            .map(|f| flood::parse_flood(&cx, f.get_ref()))
            .transpose()?;

        let cfg = NodeConfig {
            name,
            role: node.role,
            cores,
            idle: node.idle,
            mode,
            io,
            ports,
            sa,
            fec,
            lfib,
            deliver,
            control,
            address,
            punt,
            bfd,
            flood,
            node_routes: Vec::new(),
            socket,
            ike,
        };
        // A BFD peer's packets need a source address.
        if let Some(b) = &raw.bfd {
            for (p, raw_peer) in cfg.bfd.peers.iter().zip(b.peers()) {
                let port_addr = cfg
                    .ports
                    .iter()
                    .find(|q| q.name == p.port)
                    .and_then(|q| q.address);
                if p.local.is_none() && port_addr.is_none() && cfg.node_address().is_none() {
                    return Err(cx.err(
                        raw_peer.span(),
                        format!(
                            "[[bfd.peer]] {} on port {}: no source address (give it `local`, the port an `address`, or the node one)",
                            p.address,
                            echo(&p.port)
                        ),
                    ));
                }
            }
        }
        Ok(cfg)
    }

    /// The node address: `[node] address`; otherwise a gateway's tunnel
    /// address (the local end of its first inbound SA), or a satellite's
    /// address in `[control] node_prefix` ([`node_address`] of its id).
    pub fn node_address(&self) -> Option<Ipv4Addr> {
        if let Some(a) = self.address {
            return Some(a);
        }
        match self.role {
            Role::Gateway => self
                .sa
                .iter()
                .find(|s| s.dir == SaDir::In)
                .map(|s| s.tunnel_dst)
                .or_else(|| self.sa.first().map(|s| s.tunnel_src))
                .or_else(|| self.ike.as_ref().map(|i| i.address)),
            Role::Satellite => {
                let c = self.control.as_ref()?;
                match (&c.node, c.node_prefix) {
                    (NodeRef::Satellite(id), Some(p)) => node_address(p, *id),
                    _ => None,
                }
            }
        }
    }

    /// Index of the port called `name`.
    pub fn port_index(&self, name: &str) -> Option<u16> {
        self.ports
            .iter()
            .position(|p| p.name == name)
            .map(|i| i as u16)
    }
}

/// Largest `step_ms` / `lead_ms` (one day of geometry time): the control
/// thread works in nanoseconds, and a step longer than a day is no schedule.
pub const MAX_CONTROL_MS: u64 = 86_400_000;

fn parse_control(cx: &Ctx<'_>, c: &Spanned<RawControl>) -> Result<ControlConfig, ConfigError> {
    let r = c.get_ref();
    let presets = ["starlink-550", "kuiper-630", "telesat-1015"];
    if !presets.contains(&r.constellation.get_ref().as_str()) {
        return Err(cx.err(
            r.constellation.span(),
            format!(
                "unknown constellation {} (one of: {})",
                echo(r.constellation.get_ref()),
                presets.join(", ")
            ),
        ));
    }
    let node = r
        .node
        .get_ref()
        .parse::<NodeRef>()
        .map_err(|m| cx.err(r.node.span(), m))?;
    let time_scale = match &r.time_scale {
        Some(t) if !(MIN_TIME_SCALE..=MAX_TIME_SCALE).contains(t.get_ref()) => {
            return Err(cx.err(
                t.span(),
                format!(
                    "time_scale = {}: want a number from {MIN_TIME_SCALE:e} to {MAX_TIME_SCALE:e} (geometry seconds per wall-clock second)",
                    cx.src(t.span())
                ),
            ))
        }
        Some(t) => *t.get_ref(),
        None => 1.0,
    };
    let step_ms = match &r.step_ms {
        Some(s) if *s.get_ref() == 0 => return Err(cx.err(s.span(), "step_ms must be at least 1")),
        Some(s) if *s.get_ref() > MAX_CONTROL_MS => {
            return Err(cx.err(
                s.span(),
                format!("step_ms must be at most {MAX_CONTROL_MS} (one day)"),
            ))
        }
        Some(s) => *s.get_ref(),
        None => 100,
    };
    let lead_ms = match &r.lead_ms {
        Some(l) if *l.get_ref() == 0 => {
            return Err(cx.err(
                l.span(),
                "lead_ms must be at least 1: satellites install the next tables up to \
                 lead_ms (at most step_ms / 2) before gateways switch to them",
            ))
        }
        Some(l) if *l.get_ref() > MAX_CONTROL_MS => {
            return Err(cx.err(
                l.span(),
                format!("lead_ms must be at most {MAX_CONTROL_MS} (one day)"),
            ))
        }
        Some(l) => *l.get_ref(),
        None => 100,
    };
    let start_s = match &r.start_s {
        Some(t) if !(0.0..=MAX_START_S).contains(t.get_ref()) => {
            return Err(cx.err(
                t.span(),
                format!(
                    "start_s must be a non-negative number of seconds, at most {MAX_START_S:e} (about 31 years), not {}",
                    cx.src(t.span())
                ),
            ))
        }
        Some(t) => *t.get_ref(),
        None => 0.0,
    };
    let node_prefix = match &r.node_prefix {
        None => None,
        Some(p) => {
            let v = Prefix::parse_network(p.get_ref())
                .map_err(|m| cx.err(p.span(), format!("[control] node_prefix: {m}")))?;
            match v.addr {
                IpAddr::V4(a) if v.len <= 30 => Some((a, v.len)),
                _ => {
                    return Err(cx.err(
                        p.span(),
                        format!(
                            "[control] node_prefix = {}: want an IPv4 prefix of length 30 or less, e.g. \"100.64.0.0/10\"",
                            echo(p.get_ref())
                        ),
                    ))
                }
            }
        }
    };
    Ok(ControlConfig {
        constellation: r.constellation.get_ref().clone(),
        ground_stations: r.ground_stations.clone(),
        node,
        start_s,
        time_scale,
        anchor_unix_ms: r.anchor_unix_ms,
        step_ms,
        lead_ms,
        satellites: r.satellites.clone(),
        failures_file: r.failures_file.clone(),
        node_prefix,
    })
}

fn parse_punt(cx: &Ctx<'_>, r: &RawPunt) -> Result<PuntConfig, ConfigError> {
    let d = PuntConfig::default();
    let pps = |v: &Option<Spanned<i64>>, field: &str, default: u32| -> Result<u32, ConfigError> {
        match v {
            None => Ok(default),
            Some(v) => cx.int(v, &format!("[punt] {field}"), 0, PuntConfig::MAX_PPS, ""),
        }
    };
    Ok(PuntConfig {
        arp_pps: pps(&r.arp_pps, "arp_pps", d.arp_pps)?,
        icmp_pps: pps(&r.icmp_pps, "icmp_pps", d.icmp_pps)?,
        lsp_ping_pps: pps(&r.lsp_ping_pps, "lsp_ping_pps", d.lsp_ping_pps)?,
        bfd_pps: pps(&r.bfd_pps, "bfd_pps", d.bfd_pps)?,
        ike_pps: pps(&r.ike_pps, "ike_pps", d.ike_pps)?,
        flood_pps: pps(&r.flood_pps, "flood_pps", d.flood_pps)?,
        other_pps: pps(&r.other_pps, "other_pps", d.other_pps)?,
        queue: match &r.queue {
            None => d.queue,
            Some(v) => cx.int(v, "[punt] queue", 1, PuntConfig::MAX_QUEUE, "")?,
        },
    })
}

/// What [`NodeConfig::parse_bytes`] promises about any input, checked on
/// `bytes`: it returns (never panics, which the caller sees), an error has
/// a reason, a bounded message and a line inside the text, and an accepted
/// configuration holds only what validation admits (unicast, distinct port
/// MACs; labels and SPIs outside the reserved ranges; distinct cores).
/// `Some` describes the first broken promise. The fuzz target
/// `parse_config` and the property tests run it.
pub fn broken_promise(bytes: &[u8]) -> Option<String> {
    let lines = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
    match NodeConfig::parse_bytes(bytes, "f.toml") {
        Err(e) => {
            let n = e.msg.chars().count();
            if e.msg.trim().is_empty() {
                Some(format!("error without a reason: {e}"))
            } else if n > MAX_MESSAGE + 1 {
                Some(format!("message of {n} characters"))
            } else if e.line > lines {
                Some(format!("line {} of a {lines}-line text: {e}", e.line))
            } else {
                None
            }
        }
        Ok(c) => {
            let mut macs = HashSet::new();
            let mut cores = HashSet::new();
            let labels = c.fec.iter().filter_map(|f| f.label).chain(
                c.lfib
                    .iter()
                    .flat_map(|l| [Some(l.label), l.out_label])
                    .flatten(),
            );
            if let Some(p) = c
                .ports
                .iter()
                .find(|p| not_unicast(&p.mac).is_some() || !macs.insert(p.mac))
            {
                Some(format!(
                    "port {:?} accepted with mac {}",
                    p.name,
                    format_mac(&p.mac)
                ))
            } else if let Some(l) = labels
                .into_iter()
                .find(|l| !(MIN_LABEL..=MAX_LABEL).contains(l))
            {
                Some(format!("label {l} accepted"))
            } else if let Some(s) =
                c.sa.iter()
                    .find(|s| s.spi < MIN_SPI || s.tunnel_src == s.tunnel_dst)
            {
                Some(format!("SA {} accepted", s.spi))
            } else if let Some(k) = c.cores.iter().find(|k| !cores.insert(**k)) {
                Some(format!("core {k} accepted twice"))
            } else if c.name.is_empty() || c.ports.iter().any(|p| p.name.is_empty()) {
                Some("empty name accepted".into())
            } else {
                None
            }
        }
    }
}

/// Where a config came from, for messages.
pub fn describe(path: Option<&PathBuf>) -> String {
    path.map(|p| p.display().to_string())
        .unwrap_or_else(|| "<embedded>".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[node]
name = "gw-a"
role = "gateway"

[[ports]]
name = "lan0"
mac = "02:00:00:00:00:01"

[[ports]]
name = "up0"
mac = "02:00:00:00:00:02"

[[sa]]
spi = 4097
dir = "out"
aead = "aes-128-gcm"
key = "000102030405060708090a0b0c0d0e0f01020304"
tunnel_src = "192.0.2.1"
tunnel_dst = "192.0.2.2"
esn = false

[[fec]]
prefix = "10.2.0.0/16"
sa = 4097
label = 1002
port = "up0"
next_hop_mac = "02:00:00:00:00:10"

[[lfib]]
label = 1002
action = "swap"
out_label = 1003
port = "up0"
next_hop_mac = "02:00:00:00:00:20"

[[lfib]]
label = 1005
action = "pop"

[[deliver]]
prefix = "10.1.0.0/16"
port = "lan0"
next_hop_mac = "02:00:00:00:00:30"
"#;

    #[test]
    fn parses_the_documented_example() {
        let c = NodeConfig::parse(GOOD, "gw-a.toml").unwrap();
        assert_eq!(c.name, "gw-a");
        assert_eq!(c.role, Role::Gateway);
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.sa[0].key.len(), 20);
        assert_eq!(c.fec[0].prefix.to_string(), "10.2.0.0/16");
        assert_eq!(c.lfib[1].action, LfibAction::Pop);
        assert_eq!(c.port_index("up0"), Some(1));
        assert!(!format!("{:?}", c.sa[0]).contains("0001020304"));
    }

    fn err_of(text: &str) -> ConfigError {
        NodeConfig::parse(text, "n.toml").unwrap_err()
    }

    #[test]
    fn bfd_and_flood_sections_parse_with_defaults_and_name_what_is_wrong() {
        let c = NodeConfig::parse(GOOD, "n.toml").expect("no [bfd]");
        assert_eq!(c.bfd, BfdConfig::default());
        assert_eq!(c.flood, None);
        let with = |extra: &str| format!("{GOOD}\n{extra}");
        let c = NodeConfig::parse(
            &with(
                "[bfd]\ndesired_min_tx_ms = 50\ndetect_mult = 5\nkey_id = 3\nkey = \"00112233\"\n\n\
                 [[bfd.peer]]\nport = \"lan0\"\naddress = \"10.9.0.2\"\n\n\
                 [flood]\nkey = \"k\"\ntrust = \"t\"\n",
            ),
            "n.toml",
        )
        .expect("valid");
        assert_eq!(c.bfd.desired_min_tx_us, 50_000);
        assert_eq!(c.bfd.required_min_rx_us, 10_000);
        assert_eq!(c.bfd.detect_mult, 5);
        assert_eq!(
            c.bfd.auth.as_ref().map(|(id, k)| (*id, k.len())),
            Some((3, 4))
        );
        assert_eq!(c.bfd.peers.len(), 1);
        assert_eq!(c.flood.as_ref().map(|f| f.bound_ms), Some(200));
        for (extra, want) in [
            (
                "[bfd]\ndetect_mult = 0\n",
                "detect_mult = 0 is out of range",
            ),
            ("[bfd]\nkey = \"00\"\n", "key without key_id"),
            ("[bfd]\nkey_id = 1\nkey = \"zz\"\n", "not hex"),
            (
                &format!("[bfd]\nkey_id = 1\nkey = \"{}\"\n", "00".repeat(21)),
                "21 bytes",
            ),
            (
                "[[bfd.peer]]\nport = \"up9\"\naddress = \"10.9.0.2\"\n",
                "unknown port",
            ),
            (
                "[[bfd.peer]]\nport = \"lan0\"\naddress = \"10.9.0.2\"\nlocal = \"10.9.0.2\"\n",
                "its own local address",
            ),
            (
                "[flood]\nkey = \"k\"\ntrust = \"t\"\nbound_ms = 0\n",
                "bound_ms = 0",
            ),
            ("[flood]\nkey = \"k\"\n", "trust"),
        ] {
            let e = err_of(&with(extra));
            assert!(e.msg.contains(want), "{extra:?}: {e}");
        }
        // A peer with no address to send from: a satellite without one.
        let sat = "[node]\nname = \"s\"\nrole = \"satellite\"\n\n[[ports]]\nname = \"p\"\nmac = \"02:00:00:00:00:01\"\n\n\
                   [[bfd.peer]]\nport = \"p\"\naddress = \"10.9.0.2\"\n";
        assert!(
            err_of(sat).msg.contains("no source address"),
            "{}",
            err_of(sat)
        );
    }

    #[test]
    fn sa_lifetimes_parse_inline_or_as_a_table_and_name_what_is_wrong() {
        let c = NodeConfig::parse(GOOD, "n.toml").expect("no lifetime");
        assert!(c.sa[0].lifetime.is_none());
        let inline = GOOD.replace(
            "esn = false",
            "esn = false\nlifetime = { soft_packets = 900, hard_packets = 1_000, hard_seconds = 3600 }",
        );
        let c = NodeConfig::parse(&inline, "n.toml").expect("inline");
        let l = c.sa[0].lifetime;
        assert_eq!(
            (l.soft.packets, l.hard.packets, l.hard.seconds, l.soft.bytes),
            (Some(900), Some(1000), Some(3600), None)
        );
        let table = GOOD.replace(
            "esn = false",
            "esn = true\n\n[sa.lifetime]\nsoft_bytes = 5000\nhard_bytes = 6000\nsoft_seconds = 10",
        );
        let c = NodeConfig::parse(&table, "n.toml").expect("table");
        let l = c.sa[0].lifetime;
        assert_eq!(
            (l.soft.bytes, l.hard.bytes, l.soft.seconds, l.hard.seconds),
            (Some(5000), Some(6000), Some(10), None)
        );
        // ESN lifts the 32-bit sequence space off the packet limits.
        let c = NodeConfig::parse(
            &GOOD.replace(
                "esn = false",
                "esn = true\nlifetime = { hard_packets = 10_000_000_000 }",
            ),
            "n.toml",
        )
        .expect("esn");
        assert_eq!(c.sa[0].lifetime.hard.packets, Some(10_000_000_000));

        let with = |l: &str| GOOD.replace("esn = false", &format!("esn = false\n{l}"));
        for (lifetime, line, want) in [
            (
                "lifetime = { soft_packets = 1000, hard_packets = 1000 }",
                22,
                "SA 4097: lifetime soft_packets = 1000 must be below hard_packets = 1000",
            ),
            (
                "[sa.lifetime]\nsoft_seconds = 100\nhard_seconds = 50",
                23,
                "SA 4097: lifetime soft_seconds = 100 must be below hard_seconds = 50",
            ),
            (
                "[sa.lifetime]\nsoft_bytes = 10\nhard_bytes = 0",
                24,
                "SA 4097: lifetime hard_bytes = 0: a lifetime limit is at least 1 (leave it out for none)",
            ),
            (
                "lifetime = { hard_seconds = -5 }",
                22,
                "SA 4097: lifetime hard_seconds = -5 is out of range: want 1 to 9223372036854775807",
            ),
            (
                "lifetime = { hard_packets = 5_000_000_000 }",
                22,
                "SA 4097: lifetime hard_packets = 5000000000 is more packets than 32-bit sequence numbers can number (4294967295): set esn = true (on both ends of the SA) or lower it",
            ),
        ] {
            let e = err_of(&with(lifetime));
            assert_eq!(e.msg, want, "{lifetime}");
            assert_eq!(e.line, line, "{lifetime}: {e}");
        }
        let e = err_of(&with("lifetime = { hard_pkts = 5 }"));
        assert!(e.msg.contains("unknown field `hard_pkts`"), "{e}");
        assert!(e.msg.contains("hard_packets"), "names what it takes: {e}");
    }

    #[test]
    fn errors_name_file_line_and_problem() {
        let e = err_of(&GOOD.replace(
            "port = \"up0\"\nnext_hop_mac = \"02:00:00:00:00:10\"",
            "port = \"up9\"\nnext_hop_mac = \"02:00:00:00:00:10\"",
        ));
        assert_eq!(e.file, "n.toml");
        assert_eq!(e.line, 27, "{e}");
        assert!(e.msg.contains("unknown port \"up9\""), "{e}");

        let e = err_of(&GOOD.replace("02:00:00:00:00:30", "02:00:00:00:30"));
        assert!(e.msg.contains("not a MAC"), "{e}");
        assert_eq!(e.line, 44);

        let e = err_of(&GOOD.replace("0c0d0e0f01020304", "0c0d0e0f0102"));
        assert!(e.msg.contains("needs 16 key bytes + 4 salt bytes"), "{e}");

        let e = err_of(&GOOD.replace("label = 1005", "label = 3"));
        assert!(e.msg.contains("reserved"), "{e}");

        let e = err_of(&GOOD.replace("role = \"gateway\"", "role = \"moon\""));
        assert!(e.msg.contains("unknown variant"), "{e}");
        assert_eq!(e.line, 4);

        let e = err_of(&GOOD.replace("esn = false", "esn = false\nwindow_size = 3"));
        assert!(e.msg.contains("window_size"), "{e}");

        let e = err_of(&GOOD.replace("10.2.0.0/16", "10.2.0.0/40"));
        assert!(e.msg.contains("exceeds 32"), "{e}");

        let e = err_of(&GOOD.replace("sa = 4097", "sa = 4098"));
        assert!(e.msg.contains("no [[sa]]"), "{e}");

        let dup = GOOD.to_string()
            + "\n[[deliver]]\nprefix = \"10.1.0.0/16\"\nport = \"lan0\"\nnext_hop_mac = \"02:00:00:00:00:31\"\n";
        let e = err_of(&dup);
        assert!(
            e.msg.contains("duplicate deliver prefix 10.1.0.0/16"),
            "{e}"
        );
        assert_eq!(e.line, dup.lines().count() - 2, "{e}");

        let e = err_of(&GOOD.replace("action = \"pop\"", "action = \"pop\"\nport = \"up0\""));
        assert!(e.msg.contains("both port and next_hop_mac"), "{e}");
    }

    #[test]
    fn afxdp_port_keys_parse_and_are_checked() {
        let text = GOOD
            .replace(
                "role = \"gateway\"",
                "role = \"gateway\"\n[io]\nbackend = \"afxdp\"\nhugepages = true",
            )
            .replace(
                "mac = \"02:00:00:00:00:01\"",
                "mac = \"02:00:00:00:00:01\"\niface = \"veth0\"\nqueues = [0, 2]\nmode = \"copy\"\nrx_ring = 1024",
            )
            .replace(
                "mac = \"02:00:00:00:00:02\"",
                "mac = \"02:00:00:00:00:02\"\niface = \"veth1\"",
            );
        let c = NodeConfig::parse(&text, "n.toml").unwrap();
        assert!(c.io.hugepages);
        let a = &c.ports[0].afxdp;
        assert_eq!(a.queues.as_deref(), Some(&[0, 2][..]));
        assert_eq!(a.mode, XdpMode::Copy);
        assert_eq!((a.rx_ring, a.tx_ring), (1024, DEFAULT_XDP_RING));
        assert_eq!(c.ports[1].afxdp, AfXdpPortConfig::default());

        let e = err_of(&text.replace("rx_ring = 1024", "rx_ring = 1000"));
        assert!(e.msg.contains("rx_ring = 1000: want a power of two"), "{e}");
        let e = err_of(&text.replace("queues = [0, 2]", "queues = [1, 1]"));
        assert!(e.msg.contains("queue 1 listed twice"), "{e}");
        let e = err_of(&text.replace("mode = \"copy\"", "mode = \"fast\""));
        assert!(e.msg.contains("unknown variant"), "{e}");
        let e = err_of(&text.replace("iface = \"veth1\"", "iface = \"veth0\""));
        assert!(
            e.msg
                .contains("interface \"veth0\" is already port \"lan0\""),
            "{e}"
        );
        let e = err_of(&text.replace("iface = \"veth1\"\n", ""));
        assert!(e.msg.contains("needs the port's interface"), "{e}");
        assert_eq!(e.line, 18, "{e}");
    }

    #[test]
    fn ports_take_an_mtu_lan_ports_default_to_io_mtu_links_to_more() {
        let c = NodeConfig::parse(GOOD, "n.toml").unwrap();
        // Neither port has an address: both are links, with room for a
        // 1500-byte packet and the tunnel.
        assert_eq!((c.ports[0].mtu, c.ports[1].mtu), (1580, 1580));
        let lan = GOOD.replacen(
            "mac = \"02:00:00:00:00:01\"",
            "mac = \"02:00:00:00:00:01\"\naddress = \"10.1.0.1/16\"",
            1,
        );
        let c = NodeConfig::parse(&lan, "n.toml").unwrap();
        assert!(c.ports[0].is_lan() && !c.ports[1].is_lan());
        assert_eq!((c.ports[0].mtu, c.ports[1].mtu), (1500, 1580));
        assert_eq!((c.ports[0].max_frame(), c.max_frame()), (1518, 1598));
        let jumbo = lan.replace("role = \"gateway\"", "role = \"gateway\"\n[io]\nmtu = 9000");
        let c = NodeConfig::parse(&jumbo, "n.toml").unwrap();
        assert_eq!((c.ports[0].mtu, c.ports[1].mtu), (9000, 9080));
        let up = |m: &str| {
            lan.replacen(
                "mac = \"02:00:00:00:00:02\"",
                &format!("mac = \"02:00:00:00:00:02\"\nmtu = {m}"),
                1,
            )
        };
        let c = NodeConfig::parse(&up("1500"), "n.toml").unwrap();
        assert_eq!(c.ports[1].mtu, 1500);
        assert_eq!(crate::tables::tunnel_mtu(1500, true, false), 1442);
        // Without the label, 4 B more; in UDP (RFC 3948), 8 B less.
        assert_eq!(crate::tables::tunnel_mtu(1500, false, false), 1446);
        assert_eq!(crate::tables::tunnel_mtu(1500, false, true), 1438);
        for bad in ["67", "9081", "-1", "1e3"] {
            let e = err_of(&up(bad));
            assert!(e.line == 14 || bad == "1e3", "{e}");
            if bad != "1e3" {
                assert!(e.msg.contains(&format!("mtu {bad}: out of range")), "{e}");
                assert!(e.msg.contains("68..=9080"), "{e}");
            }
        }
        // A link too narrow for the tunnel to carry the FEC's packets.
        let e = err_of(&up("100"));
        assert!(
            e.msg
                .contains("fec 10.2.0.0/16: port \"up0\" has mtu 100, which leaves 42 B")
                && e.msg.contains("at least 126"),
            "{e}"
        );
    }

    #[test]
    fn io_mtu_sets_the_largest_frame_and_is_range_checked() {
        let c = NodeConfig::parse(GOOD, "n.toml").unwrap();
        assert_eq!((c.io.mtu, c.io.max_frame()), (1500, 1598));
        let with = |m: &str| {
            GOOD.replace(
                "role = \"gateway\"",
                &format!("role = \"gateway\"\n[io]\nmtu = {m}"),
            )
        };
        let c = NodeConfig::parse(&with("9000"), "n.toml").unwrap();
        assert_eq!((c.io.mtu, c.io.max_frame()), (9000, 9098));
        for bad in ["9001", "67", "-1", "70000"] {
            let e = err_of(&with(bad));
            assert!(
                e.msg.contains(&format!("[io] mtu {bad}: out of range")),
                "{e}"
            );
            assert!(e.msg.contains("68..=9000"), "{e}");
            assert_eq!(e.line, 6, "{e}");
        }
    }

    #[test]
    fn io_buffers_is_optional_and_range_checked_with_its_line() {
        let c = NodeConfig::parse(GOOD, "n.toml").unwrap();
        assert_eq!(c.io.buffers, None);
        let with = |b: &str| {
            GOOD.replace(
                "role = \"gateway\"",
                &format!("role = \"gateway\"\n[io]\nbuffers = {b}"),
            )
        };
        let c = NodeConfig::parse(&with("12000"), "n.toml").unwrap();
        assert_eq!(c.io.buffers, Some(12000));
        for bad in ["511", "0", "-1", "16777216", "99999999999"] {
            let e = err_of(&with(bad));
            assert!(
                e.msg.contains(&format!("[io] buffers {bad}: out of range")),
                "{e}"
            );
            assert!(e.msg.contains("512..=16777215"), "{e}");
            assert_eq!(e.line, 6, "{e}");
        }
        let e = err_of(&with("\"many\""));
        assert_eq!(e.line, 6, "{e}");
    }

    #[test]
    fn control_step_and_lead_beyond_a_day_are_refused_with_their_line() {
        let with = |extra: &str| {
            format!(
                "{GOOD}\n[control]\nconstellation = \"kuiper-630\"\nnode = \"gs:Tokyo\"\n{extra}\n"
            )
        };
        let ok = NodeConfig::parse(&with("step_ms = 86400000\nlead_ms = 50"), "n.toml")
            .expect("a day is allowed");
        let c = ok.control.expect("control");
        assert_eq!((c.step_ms, c.lead_ms), (86_400_000, 50));

        let text = with("lead_ms = 0");
        let e = err_of(&text);
        assert!(e.msg.contains("lead_ms must be at least 1"), "{e}");
        assert_eq!(e.line, text.lines().count(), "{e}");

        let text = with("start_s = -1.0");
        let e = err_of(&text);
        assert!(e.msg.contains("start_s must be a non-negative"), "{e}");
        assert_eq!(e.line, text.lines().count(), "{e}");

        let text = with("step_ms = 20000000000000");
        let e = err_of(&text);
        assert!(e.msg.contains("step_ms must be at most 86400000"), "{e}");
        assert_eq!(e.line, text.lines().count(), "{e}");

        let text = with("lead_ms = 9000000000000000000");
        let e = err_of(&text);
        assert!(e.msg.contains("lead_ms must be at most 86400000"), "{e}");
        assert_eq!(e.line, text.lines().count(), "{e}");
    }

    #[test]
    fn mac_bytes_are_one_or_two_hex_digits() {
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Ok([2, 0, 0, 0, 0, 10]));
        assert_eq!(parse_mac("2-0-0-0-0-A"), Ok([2, 0, 0, 0, 0, 10]));
        for bad in [
            "02:00:00:00:00:+a",
            "02:00:00:00:00:",
            "02:00:00:00:00:0a0",
            "02:00:00:00:00:0g",
        ] {
            let e = parse_mac(bad).expect_err(bad);
            assert!(e.contains("bad byte"), "{e}");
        }
    }

    #[test]
    fn prefix_with_host_bits_or_a_signed_length_is_refused() {
        let p: Prefix = "10.2.0.0/16".parse().unwrap();
        assert_eq!(p.to_string(), "10.2.0.0/16");
        let p: Prefix = "2001:db8::/32".parse().unwrap();
        assert_eq!(p.to_string(), "2001:db8::/32");
        assert!("10.0.0.0".parse::<Prefix>().is_err());
        let e = Prefix::parse_network("10.2.3.4/16").unwrap_err();
        assert!(
            e.contains("host bits are set (the network is 10.2.0.0/16)"),
            "{e}"
        );
        // The prefix a host lies in, as generators take it: bits cleared.
        let p: Prefix = "10.2.3.4/16".parse().unwrap();
        assert_eq!(p.to_string(), "10.2.0.0/16");
        let e = Prefix::parse_network("2001:db8::1/32").unwrap_err();
        assert!(e.contains("the network is 2001:db8::/32"), "{e}");
        for bad in [
            "10.2.0.0/+16",
            "10.2.0.0/-0",
            "10.2.0.0/ 16",
            "10.2.0.0/",
            "10.2.0.0/0016",
        ] {
            let e = bad.parse::<Prefix>().unwrap_err();
            assert!(e.contains("is not a prefix length (0 to 32)"), "{bad}: {e}");
            assert!(Prefix::parse_network(bad).is_err(), "{bad}");
        }
    }
    #[test]
    fn the_management_socket_defaults_by_name_and_can_be_moved_or_turned_off() {
        let c = NodeConfig::parse(GOOD, "n.toml").expect("good");
        assert_eq!(c.socket, Some(PathBuf::from("/run/meshplane/gw-a.sock")));
        let with =
            |line: &str| GOOD.replace("role = \"gateway\"", &format!("role = \"gateway\"\n{line}"));
        let c = NodeConfig::parse(&with("socket = \"/tmp/x/gw.sock\""), "n.toml").expect("path");
        assert_eq!(c.socket, Some(PathBuf::from("/tmp/x/gw.sock")));
        let c = NodeConfig::parse(&with("socket = \"\""), "n.toml").expect("none");
        assert_eq!(c.socket, None);

        let long = format!("socket = \"/tmp/{}.sock\"", "s".repeat(120));
        let e = err_of(&with(&long));
        assert_eq!(e.line, 5, "{e}");
        assert!(
            e.msg.contains("[node] socket") && e.msg.contains("at most 107"),
            "{e}"
        );
        let e = err_of(&with("socket = \"/tmp/dir/\""));
        assert!(e.msg.contains("names a directory"), "{e}");
        let e = err_of(&with("socket = \"/tmp/a\\u0001b\""));
        assert!(e.msg.contains("control character U+0001"), "{e}");

        // A name that cannot make the default path says how to name one.
        let e = err_of(&GOOD.replace("name = \"gw-a\"", "name = \"gw/a\""));
        assert_eq!(e.line, 3, "{e}");
        assert!(
            e.msg.contains("not a file name") && e.msg.contains("[node] socket = \"PATH\""),
            "{e}"
        );
        let named = GOOD.replace(
            "name = \"gw-a\"",
            "name = \"gw/a\"\nsocket = \"/tmp/gw-a.sock\"",
        );
        assert!(NodeConfig::parse(&named, "n.toml").is_ok());
        let wide = GOOD.replace("name = \"gw-a\"", &format!("name = \"{}\"", "é".repeat(60)));
        let e = err_of(&wide);
        assert!(
            e.msg.contains("the default management socket") && e.msg.contains("at most 107"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod scale_tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A satellite with `n` LFIB entries, labels 16.. (the last one
    /// repeats the first when `dup`).
    fn many_labels(n: usize, dup: bool) -> String {
        let mut t = String::from(
            "[node]\nname = \"sat\"\nrole = \"satellite\"\n\n[[ports]]\nname = \"isl0\"\nmac = \"02:00:00:00:00:01\"\n",
        );
        for i in 0..n {
            let label = if dup && i == n - 1 { 16 } else { 16 + i };
            t.push_str(&format!(
                "\n[[lfib]]\nlabel = {label}\naction = \"swap\"\nout_label = {}\nport = \"isl0\"\nnext_hop_mac = \"02:00:00:00:00:02\"\n",
                label + 1
            ));
        }
        t
    }

    fn best_of(runs: usize, text: &str) -> Duration {
        (0..runs)
            .map(|_| {
                let t0 = Instant::now();
                let c = NodeConfig::parse(text, "big.toml").expect("valid");
                let d = t0.elapsed();
                assert!(c.lfib.len() > 1000);
                d
            })
            .min()
            .unwrap_or_default()
    }

    #[test]
    fn validation_is_linear_in_the_number_of_entries() {
        let small = many_labels(10_001, false);
        let large = many_labels(100_001, false);
        // Best of several runs: the machine is shared, noise only adds.
        let t_small = best_of(5, &small);
        let t_large = best_of(2, &large);
        // Ten times the entries: about ten times the time when linear, a
        // hundred times when every entry is compared with every other.
        let ratio = t_large.as_secs_f64() / t_small.as_secs_f64().max(1e-6);
        assert!(
            ratio < 30.0,
            "10k entries {t_small:?}, 100k entries {t_large:?}: ratio {ratio:.1}"
        );
    }

    #[test]
    fn a_duplicate_among_many_names_both_lines() {
        let text = many_labels(100_001, true);
        let e = NodeConfig::parse(&text, "big.toml").expect_err("duplicate");
        let last = text.rfind("label = 16\n").expect("dup");
        assert_eq!(e.line, text[..last].lines().count() + 1, "{e}");
        let first = text.find("label = 16\n").expect("first");
        let first_line = text[..first].lines().count() + 1;
        assert!(
            e.msg == format!("duplicate LFIB label 16 (first defined at line {first_line})"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod fuzz_props {
    use super::*;
    use proptest::prelude::*;

    const BASE: &str = include_str!("../configs/gw-a.toml");

    /// Bytes TOML gives meaning to, and some it refuses.
    const ALPHABET: &[u8] = b"\"'=[]{}#,.:-+_/ \n\t\r\\0123456789abcdefxyzAZ\x00\x01\x7f\xc3\xff";

    fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
        match broken_promise(bytes) {
            None => Ok(()),
            Some(p) => Err(TestCaseError::fail(format!(
                "{p}\ninput: {:?}",
                String::from_utf8_lossy(bytes)
            ))),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_parse_or_are_refused(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            check(&data)?;
        }

        #[test]
        fn mutated_configs_parse_or_are_refused(
            edits in proptest::collection::vec(
                (any::<prop::sample::Index>(), 0usize..3, prop::sample::select(ALPHABET), 1usize..4),
                1..8,
            ),
        ) {
            let mut t = BASE.as_bytes().to_vec();
            for (at, op, b, n) in edits {
                let i = at.index(t.len() + 1);
                match op {
                    0 => t.splice(i..i, std::iter::repeat_n(b, n)).for_each(drop),
                    1 => t.drain(i..(i + n).min(t.len())).for_each(drop),
                    _ => {
                        if let Some(x) = t.get_mut(i) {
                            *x = b;
                        }
                    }
                }
            }
            check(&t)?;
        }

        #[test]
        fn any_value_on_any_line_parses_or_is_refused(
            line in any::<prop::sample::Index>(),
            value in "\\PC{0,80}",
        ) {
            let lines: Vec<&str> = BASE.lines().collect();
            let i = line.index(lines.len());
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            if let Some((k, _)) = lines[i].split_once('=') {
                out[i] = format!("{k}= {value}");
            }
            check(out.join("\n").as_bytes())?;
        }
    }

    #[test]
    fn the_base_config_keeps_its_promises() {
        assert_eq!(broken_promise(BASE.as_bytes()), None);
        assert!(NodeConfig::parse(BASE, "gw-a.toml").is_ok());
    }
}
