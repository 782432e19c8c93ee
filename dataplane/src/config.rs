//! Static node configuration (TOML): ports, SAs, FECs, LFIB and delivery
//! prefixes. A node configured this way runs without the control plane.
//!
//! Errors name the file, the line and what is wrong.

#![warn(missing_docs)]

use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use zeroize::Zeroizing;

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
    /// For an outbound SA on a node with `[control]`: the egress gateway
    /// (ground-station name or id) whose traffic it protects.
    pub peer: Option<String>,
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
            .field("peer", &self.peer)
            .finish()
    }
}

/// An IP prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    /// Network address (host bits cleared).
    pub addr: IpAddr,
    /// Prefix length.
    pub len: u8,
}

impl std::str::FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("prefix {s:?} needs a length, e.g. 10.2.0.0/16"))?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("prefix {s:?}: {a:?} is not an IP address"))?;
        let len: u8 = l
            .parse()
            .map_err(|_| format!("prefix {s:?}: {l:?} is not a prefix length"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(format!("prefix {s:?}: length {len} exceeds {max}"));
        }
        let addr = match addr {
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
        Ok(Prefix { addr, len })
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
    /// SPI of the outbound SA.
    pub sa: u32,
    /// Label to push.
    pub label: u32,
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
}

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

    /// The largest frame a port receives: `mtu` plus Ethernet and the
    /// tunnel's overhead. Longer frames are dropped as `oversize`.
    pub fn max_frame(&self) -> usize {
        usize::from(self.mtu) + Self::L2_OVERHEAD + Self::TUNNEL_OVERHEAD
    }
}

impl Default for IoConfig {
    fn default() -> Self {
        IoConfig {
            backend: String::new(),
            eal_args: Vec::new(),
            hugepages: false,
            mtu: Self::DEFAULT_MTU,
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
                .map_err(|_| format!("node {s:?}: {id:?} is not a satellite id")),
            Some(("gs", name)) if !name.is_empty() => Ok(NodeRef::Gateway(name.to_string())),
            _ => Err(format!(
                "node {s:?}: want \"sat:ID\" or \"gs:NAME\" (or \"gs:ID\")"
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
}

// ---- raw (as written) ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    node: RawNode,
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: String,
    role: Role,
    #[serde(default)]
    cores: Option<Spanned<Vec<usize>>>,
    #[serde(default)]
    idle: Idle,
    #[serde(default)]
    mode: Mode,
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: Spanned<String>,
    mac: Spanned<String>,
    #[serde(default)]
    dpdk: Option<String>,
    #[serde(default)]
    iface: Option<String>,
    #[serde(default)]
    queues: Option<Spanned<Vec<u32>>>,
    #[serde(default)]
    mode: Option<XdpMode>,
    #[serde(default)]
    rx_ring: Option<Spanned<u32>>,
    #[serde(default)]
    tx_ring: Option<Spanned<u32>>,
    #[serde(default)]
    peer_mac: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSa {
    spi: Spanned<u32>,
    dir: SaDir,
    aead: AeadAlg,
    key: Spanned<String>,
    tunnel_src: Ipv4Addr,
    tunnel_dst: Ipv4Addr,
    #[serde(default)]
    esn: bool,
    #[serde(default)]
    peer: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFec {
    prefix: Spanned<String>,
    sa: Spanned<u32>,
    label: Spanned<u32>,
    port: Spanned<String>,
    next_hop_mac: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLfib {
    label: Spanned<u32>,
    action: LfibAction,
    #[serde(default)]
    out_label: Option<Spanned<u32>>,
    #[serde(default)]
    port: Option<Spanned<String>>,
    #[serde(default)]
    next_hop_mac: Option<Spanned<String>>,
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

/// Parses a MAC written as `02:00:00:00:00:01` (or with `-`).
pub fn parse_mac(s: &str) -> Result<Mac, String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(format!(
            "{s:?} is not a MAC address (want 02:00:00:00:00:01)"
        ));
    }
    let mut m = [0u8; 6];
    for (o, p) in m.iter_mut().zip(parts) {
        // from_str_radix alone would take a sign ("+f").
        let hex = (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_hexdigit());
        *o = u8::from_str_radix(p, 16)
            .ok()
            .filter(|_| hex)
            .ok_or_else(|| format!("{s:?} is not a MAC address (bad byte {p:?})"))?;
    }
    Ok(m)
}

/// Formats a MAC as `02:00:00:00:00:01`.
pub fn format_mac(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }
    fn err(&self, span: Range<usize>, msg: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: self.line(span),
            msg: msg.into(),
        }
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
    /// Reads and validates a node configuration file.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text =
            crate::file_read::read_text(path, crate::file_read::CONFIG_LIMIT).map_err(|e| {
                ConfigError {
                    file: path.display().to_string(),
                    line: 0,
                    msg: e.to_string(),
                }
            })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<NodeConfig, ConfigError> {
        let cx = Ctx { file, text };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| cx.line(s)).unwrap_or(0);
            ConfigError {
                file: file.to_string(),
                line,
                msg: e.message().to_string(),
            }
        })?;

        let mut io = IoConfig {
            backend: "pcap".into(),
            eal_args: vec![],
            hugepages: false,
            mtu: IoConfig::DEFAULT_MTU,
        };
        if let Some(rio) = raw.io {
            let rio = rio.into_inner();
            if let Some(b) = rio.backend {
                let known = ["pcap", "memory", "dpdk", "afxdp", "auto"];
                if !known.contains(&b.get_ref().as_str()) {
                    return Err(cx.err(
                        b.span(),
                        format!(
                            "unknown io backend {:?} (one of: {})",
                            b.get_ref(),
                            known.join(", ")
                        ),
                    ));
                }
                io.backend = b.into_inner();
            }
            io.eal_args = rio.eal_args;
            io.hugepages = rio.hugepages;
            if let Some(m) = rio.mtu {
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
        }

        let mut ports: Vec<PortConfig> = Vec::new();
        for p in &raw.ports {
            let p = p.get_ref();
            if ports.iter().any(|q| q.name == *p.name.get_ref()) {
                return Err(cx.err(
                    p.name.span(),
                    format!("duplicate port name {:?}", p.name.get_ref()),
                ));
            }
            let mac = parse_mac(p.mac.get_ref()).map_err(|m| cx.err(p.mac.span(), m))?;
            if io.backend == "afxdp" && p.iface.is_none() {
                return Err(cx.err(
                    p.name.span(),
                    format!(
                        "port {:?}: [io] backend = \"afxdp\" needs the port's interface, e.g. iface = \"eth1\"",
                        p.name.get_ref()
                    ),
                ));
            }
            let ring = |r: &Option<Spanned<u32>>, what: &str| -> Result<u32, ConfigError> {
                let Some(r) = r else {
                    return Ok(DEFAULT_XDP_RING);
                };
                let v = *r.get_ref();
                if !(64..=32768).contains(&v) || !v.is_power_of_two() {
                    return Err(cx.err(
                        r.span(),
                        format!("{what} = {v}: want a power of two from 64 to 32768"),
                    ));
                }
                Ok(v)
            };
            let queues = match &p.queues {
                Some(q) if q.get_ref().is_empty() => {
                    return Err(cx.err(q.span(), "queues is empty: list one queue per worker"))
                }
                Some(q) => {
                    let v = q.get_ref();
                    if let Some(d) = v.iter().enumerate().find(|(i, x)| v[..*i].contains(x)) {
                        return Err(cx.err(
                            q.span(),
                            format!("queue {} listed twice: each worker needs its own", d.1),
                        ));
                    }
                    Some(v.clone())
                }
                None => None,
            };
            let afxdp = AfXdpPortConfig {
                queues,
                mode: p.mode.unwrap_or_default(),
                rx_ring: ring(&p.rx_ring, "rx_ring")?,
                tx_ring: ring(&p.tx_ring, "tx_ring")?,
            };
            if let Some(other) = p
                .iface
                .as_ref()
                .and_then(|i| ports.iter().find(|q| q.iface.as_ref() == Some(i)))
            {
                return Err(cx.err(
                    p.name.span(),
                    format!(
                        "port {:?}: interface {:?} is already port {:?}",
                        p.name.get_ref(),
                        other.iface.as_deref().unwrap_or_default(),
                        other.name
                    ),
                ));
            }
            let peer_mac = p
                .peer_mac
                .as_ref()
                .map(|m| parse_mac(m.get_ref()).map_err(|e| cx.err(m.span(), e)))
                .transpose()?;
            ports.push(PortConfig {
                name: p.name.get_ref().clone(),
                mac,
                dpdk: p.dpdk.clone(),
                iface: p.iface.clone(),
                afxdp,
                peer_mac,
            });
        }
        if ports.len() > usize::from(u16::MAX) {
            return Err(cx.err(0..0, "too many ports"));
        }
        let port_ref = |s: &Spanned<String>| -> Result<String, ConfigError> {
            if ports.iter().any(|p| p.name == *s.get_ref()) {
                Ok(s.get_ref().clone())
            } else {
                let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
                Err(cx.err(
                    s.span(),
                    format!(
                        "unknown port {:?} (ports: {})",
                        s.get_ref(),
                        if names.is_empty() {
                            "none defined".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                ))
            }
        };
        let mac_ref = |s: &Spanned<String>| parse_mac(s.get_ref()).map_err(|m| cx.err(s.span(), m));
        let label_ref = |s: &Spanned<u32>| {
            let l = *s.get_ref();
            if (MIN_LABEL..=MAX_LABEL).contains(&l) {
                Ok(l)
            } else {
                Err(cx.err(
                    s.span(),
                    format!("label {l} outside {MIN_LABEL}..={MAX_LABEL} (0-15 are reserved)"),
                ))
            }
        };
        let prefix_ref = |s: &Spanned<String>| {
            s.get_ref()
                .parse::<Prefix>()
                .map_err(|m| cx.err(s.span(), m))
        };

        let mut sa = Vec::new();
        for s in &raw.sa {
            let r = s.get_ref();
            let spi = *r.spi.get_ref();
            if spi < 256 {
                return Err(cx.err(
                    r.spi.span(),
                    format!("SPI {spi} is reserved (RFC 4303: 1-255 are reserved, 0 is invalid)"),
                ));
            }
            if sa.iter().any(|o: &SaConfig| o.spi == spi && o.dir == r.dir) {
                return Err(cx.err(
                    r.spi.span(),
                    format!("duplicate SA with SPI {spi} in the same direction"),
                ));
            }
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
                    "SA key is not hex (key bytes then 4 salt bytes)",
                )
            })?);
            let want = r.aead.key_len() + 4;
            if key.len() != want {
                return Err(cx.err(
                    r.key.span(),
                    format!(
                        "SA {spi}: key has {} bytes, {:?} needs {} key bytes + 4 salt bytes = {want}",
                        key.len(),
                        r.aead,
                        r.aead.key_len()
                    ),
                ));
            }
            sa.push(SaConfig {
                spi,
                dir: r.dir,
                aead: r.aead,
                key,
                tunnel_src: r.tunnel_src,
                tunnel_dst: r.tunnel_dst,
                esn: r.esn,
                peer: r.peer.clone(),
            });
        }

        let mut fec = Vec::new();
        for f in &raw.fec {
            let r = f.get_ref();
            let spi = *r.sa.get_ref();
            if !sa.iter().any(|s| s.spi == spi && s.dir == SaDir::Out) {
                return Err(cx.err(
                    r.sa.span(),
                    format!(
                        "fec refers to SA {spi}, but no [[sa]] with dir = \"out\" has that SPI"
                    ),
                ));
            }
            let prefix = prefix_ref(&r.prefix)?;
            if fec.iter().any(|o: &FecConfig| o.prefix == prefix) {
                return Err(cx.err(r.prefix.span(), format!("duplicate FEC prefix {prefix}")));
            }
            fec.push(FecConfig {
                prefix,
                sa: spi,
                label: label_ref(&r.label)?,
                port: port_ref(&r.port)?,
                next_hop_mac: mac_ref(&r.next_hop_mac)?,
            });
        }

        let mut lfib: Vec<LfibConfig> = Vec::new();
        for l in &raw.lfib {
            let r = l.get_ref();
            let label = label_ref(&r.label)?;
            if lfib.iter().any(|o| o.label == label) {
                return Err(cx.err(r.label.span(), format!("duplicate LFIB label {label}")));
            }
            let port = r.port.as_ref().map(port_ref).transpose()?;
            let next_hop_mac = r.next_hop_mac.as_ref().map(mac_ref).transpose()?;
            let out_label = r.out_label.as_ref().map(label_ref).transpose()?;
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
            lfib.push(LfibConfig {
                label,
                action: r.action,
                out_label,
                port,
                next_hop_mac,
            });
        }

        let mut deliver = Vec::new();
        for d in &raw.deliver {
            let r = d.get_ref();
            let prefix = prefix_ref(&r.prefix)?;
            if deliver.iter().any(|o: &DeliverConfig| o.prefix == prefix) {
                return Err(cx.err(
                    r.prefix.span(),
                    format!("duplicate deliver prefix {prefix}"),
                ));
            }
            deliver.push(DeliverConfig {
                prefix,
                port: port_ref(&r.port)?,
                next_hop_mac: mac_ref(&r.next_hop_mac)?,
            });
        }

        let control = raw
            .control
            .as_ref()
            .map(|c| parse_control(&cx, c))
            .transpose()?;

        let cores = match raw.node.cores {
            Some(c) => {
                let span = c.span();
                let cores = c.into_inner();
                for &core in &cores {
                    check_core(core).map_err(|m| cx.err(span.clone(), m))?;
                }
                cores
            }
            None => Vec::new(),
        };

        Ok(NodeConfig {
            name: raw.node.name,
            role: raw.node.role,
            cores,
            idle: raw.node.idle,
            mode: raw.node.mode,
            io,
            ports,
            sa,
            fec,
            lfib,
            deliver,
            control,
        })
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
                "unknown constellation {:?} (one of: {})",
                r.constellation.get_ref(),
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
        Some(t) if !(t.get_ref().is_finite() && *t.get_ref() > 0.0) => {
            return Err(cx.err(t.span(), "time_scale must be a positive number"))
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
        Some(t) if !(t.get_ref().is_finite() && *t.get_ref() >= 0.0) => {
            return Err(cx.err(t.span(), "start_s must be a non-negative number of seconds"))
        }
        Some(t) => *t.get_ref(),
        None => 0.0,
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
    })
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
            + "\n[[deliver]]\nprefix = \"10.1.9.9/16\"\nport = \"lan0\"\nnext_hop_mac = \"02:00:00:00:00:31\"\n";
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
    fn prefix_clears_host_bits() {
        let p: Prefix = "10.2.3.4/16".parse().unwrap();
        assert_eq!(p.to_string(), "10.2.0.0/16");
        let p: Prefix = "2001:db8::1/32".parse().unwrap();
        assert_eq!(p.to_string(), "2001:db8::/32");
        assert!("10.0.0.0".parse::<Prefix>().is_err());
    }
}
