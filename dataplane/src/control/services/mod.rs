//! The node's own services on the punt path: ARP responder, ICMP echo
//! responder, LSP ping responder, and the initiators the node probes
//! with: LSP ping / trace and ICMP echo ([`Probes`]).
//!
//! Sans-IO: [`handle`] takes one punted frame (exactly as received,
//! starting at the Ethernet header), the port it arrived on, what the
//! services know of their node and the time, and returns at most one
//! packet to send; echo replies to the node's own probes go to their
//! initiator ([`Probes`]). No socket, no thread, no clock read: the control
//! thread feeds frames from the punt queue and injects what comes back.
//!
//! Time (`now_ns`) is nanoseconds since the Unix epoch: the LSP ping
//! timestamps are NTP wall-clock times (RFC 8029 §3), and round-trip
//! times are differences of the caller's values.
//!
//! Every frame that is not answered says why as an [`Ignored`], which
//! the caller counts ([`IgnoredCounters`]).

#![warn(missing_docs)]

pub mod arp;
pub mod icmp;
pub mod icmp_error;
pub mod lsp;
pub mod ping;

pub use crate::config::Mac;
pub use crate::frame::PortId;
pub use lsp::{
    EchoToSend, Hop, LspProbes, LspStats, ProbeDone, ProbeError, ProbeId, ProbeKind, StrayReply,
};
pub use ping::{IcmpProbes, IcmpStats, PingDone, PingEcho, PingError, PingPoll, StrayEchoReply};

use crate::packet::ethernet;
use crate::packet::ipv4::{self, protocol, Ipv4Packet};
use crate::packet::punted::{L3Kind, PuntError, PuntedFrame};
use std::net::Ipv4Addr;

/// What the services know of their node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name (for logs).
    pub name: String,
    /// Constellation node id, when the node has one.
    pub id: Option<u32>,
    /// The node address (first) and every other address of the node
    /// (tunnel addresses...).
    pub addresses: Vec<Ipv4Addr>,
    /// Per port (index = [`PortId`]): MAC and optional interface address.
    pub ports: Vec<PortInfo>,
}

/// One port of the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortInfo {
    /// The port's MAC address.
    pub mac: Mac,
    /// Interface address and prefix length (LAN ports).
    pub address: Option<(Ipv4Addr, u8)>,
    /// IPv6 interface address and prefix length (LAN ports).
    pub address6: Option<(std::net::Ipv6Addr, u8)>,
}

impl NodeInfo {
    /// The node address (the first of `addresses`).
    pub fn node_address(&self) -> Option<Ipv4Addr> {
        self.addresses.first().copied()
    }

    /// True if `addr` is one of the node's addresses or a port's address.
    pub fn owns(&self, addr: Ipv4Addr) -> bool {
        self.addresses.contains(&addr)
            || self
                .ports
                .iter()
                .any(|p| p.address.is_some_and(|(a, _)| a == addr))
    }

    /// True if `addr` is the directed broadcast address of a port's
    /// subnet (prefixes shorter than /31 have one).
    pub fn is_subnet_broadcast(&self, addr: Ipv4Addr) -> bool {
        self.ports.iter().any(|p| match p.address {
            Some((a, len)) if len < 31 => {
                let host = u32::MAX >> len;
                u32::from(addr) == u32::from(a) | host
            }
            _ => false,
        })
    }

    /// The port `id`, if the node has it.
    pub fn port(&self, id: PortId) -> Option<&PortInfo> {
        self.ports.get(usize::from(id))
    }
}

/// A packet a service wants sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// A complete Ethernet frame, sent as it is on this port (answers to
    /// a neighbour on the link: ARP replies, ICMP replies to a frame that
    /// arrived unlabelled — to its source MAC from the receiving port's
    /// MAC, with the VLAN tags it came with).
    Frame {
        /// The port to send on (the one the request came in on).
        port: PortId,
        /// The frame, from the Ethernet header, padded to 60 bytes.
        frame: Vec<u8>,
    },
    /// An IPv4 packet (starting at its IP header, checksums filled) for a
    /// remote node: the caller adds the label stack and L2 header toward
    /// `dst` as data would get them.
    Remote {
        /// Destination (the packet's IP destination).
        dst: Ipv4Addr,
        /// The IPv4 packet.
        packet: Vec<u8>,
    },
}

/// Why a punted packet was not answered (each counted by the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Ignored {
    /// A header or the packet ends early.
    Truncated,
    /// A field holds a value its protocol does not allow.
    Malformed,
    /// An IPv4, ICMP or UDP checksum is wrong.
    BadChecksum,
    /// A protocol, message type or mode the services do not answer
    /// (IPv6, other ethertypes, ICMP other than echo request and echo
    /// reply to a node address, ARP replies, too many tags or labels...).
    Unsupported,
    /// Addressed to someone else (another address, a gratuitous ARP, a
    /// unicast MAC that is not the port's).
    NotForUs,
    /// Sent to a broadcast or multicast address (MAC or IP).
    Broadcast,
    /// From an address nothing is sent to: a group or zero MAC, or an
    /// unspecified, loopback, multicast, broadcast or reserved IPv4
    /// source.
    BadSource,
    /// An IPv4 fragment (the services answer whole packets only).
    Fragment,
    /// IPv4 options other than what the service expects (Router Alert
    /// for LSP ping, none for ICMP).
    IpOptions,
    /// An LSP echo request that asks for no reply (reply mode 1, or the
    /// T flag without an expired TTL).
    NoReplyRequested,
    /// An LSP or ICMP echo reply no outstanding probe matches (stray,
    /// duplicate, late or forged; [`LspStats`] and [`IcmpStats`] say
    /// which).
    StrayReply,
    /// The receiving port is not in [`NodeInfo::ports`].
    UnknownPort,
    /// The node has no address to answer from.
    NoAddress,
}

impl Ignored {
    /// Number of reasons (size of a counter array).
    pub const COUNT: usize = 13;
    /// All reasons in counter order.
    pub const ALL: [Ignored; Self::COUNT] = [
        Ignored::Truncated,
        Ignored::Malformed,
        Ignored::BadChecksum,
        Ignored::Unsupported,
        Ignored::NotForUs,
        Ignored::Broadcast,
        Ignored::BadSource,
        Ignored::Fragment,
        Ignored::IpOptions,
        Ignored::NoReplyRequested,
        Ignored::StrayReply,
        Ignored::UnknownPort,
        Ignored::NoAddress,
    ];

    /// Stable snake_case name for counters.
    pub fn name(self) -> &'static str {
        match self {
            Ignored::Truncated => "truncated",
            Ignored::Malformed => "malformed",
            Ignored::BadChecksum => "bad_checksum",
            Ignored::Unsupported => "unsupported",
            Ignored::NotForUs => "not_for_us",
            Ignored::Broadcast => "broadcast",
            Ignored::BadSource => "bad_source",
            Ignored::Fragment => "fragment",
            Ignored::IpOptions => "ip_options",
            Ignored::NoReplyRequested => "no_reply_requested",
            Ignored::StrayReply => "stray_reply",
            Ignored::UnknownPort => "unknown_port",
            Ignored::NoAddress => "no_address",
        }
    }

    /// Index into a counter array.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Ignored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for Ignored {}

impl From<PuntError> for Ignored {
    fn from(e: PuntError) -> Self {
        match e {
            PuntError::Truncated => Ignored::Truncated,
            PuntError::BadChecksum => Ignored::BadChecksum,
            PuntError::BadIpLength => Ignored::Malformed,
            PuntError::TooManyTags
            | PuntError::BadEthertype(_)
            | PuntError::TooManyLabels
            | PuntError::BadIpVersion(_) => Ignored::Unsupported,
        }
    }
}

impl From<crate::packet::Error> for Ignored {
    fn from(e: crate::packet::Error) -> Self {
        match e {
            crate::packet::Error::Truncated => Ignored::Truncated,
            crate::packet::Error::Malformed => Ignored::Malformed,
        }
    }
}

/// One counter per [`Ignored`] reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IgnoredCounters(pub [u64; Ignored::COUNT]);

impl IgnoredCounters {
    /// Counts one ignored packet.
    pub fn bump(&mut self, r: Ignored) {
        self.0[r.index()] += 1;
    }

    /// The count for one reason.
    pub fn get(&self, r: Ignored) -> u64 {
        self.0[r.index()]
    }

    /// All ignored packets.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// The node's own probes, whose replies arrive punted: LSP pings and
/// traces, ICMP pings.
#[derive(Clone, Debug)]
pub struct Probes {
    /// LSP ping / trace initiator.
    pub lsp: LspProbes,
    /// ICMP echo initiator.
    pub icmp: IcmpProbes,
}

impl Probes {
    /// Both initiators: LSP echoes from `source` (the node address), the
    /// LSP sender's handles from `lsp_seed`, the ICMP identifiers from
    /// `icmp_seed` (pass random values).
    pub fn new(source: Ipv4Addr, lsp_seed: u32, icmp_seed: u64) -> Self {
        Probes {
            lsp: LspProbes::new(source, lsp_seed),
            icmp: IcmpProbes::new(icmp_seed),
        }
    }
}

/// Answers one punted frame: `frame` as received on `rx_port`, at
/// `now_ns` (Unix ns). Returns the packet to send, `Ok(None)` when the
/// frame was consumed without an answer (an LSP or ICMP echo reply
/// matched to one of `probes`), or why it was ignored.
pub fn handle(
    frame: &[u8],
    rx_port: PortId,
    node: &NodeInfo,
    now_ns: u64,
    probes: &mut Probes,
) -> Result<Option<Outgoing>, Ignored> {
    let port = node.port(rx_port).ok_or(Ignored::UnknownPort)?;
    let p = PuntedFrame::parse(frame)?;
    if is_group_or_zero(&p.src_mac) {
        return Err(Ignored::BadSource);
    }
    match p.kind {
        L3Kind::Arp => arp::respond(&p, rx_port, port),
        L3Kind::Ipv4 => {
            if p.dst_mac != port.mac {
                return Err(if is_group(&p.dst_mac) {
                    Ignored::Broadcast
                } else {
                    Ignored::NotForUs
                });
            }
            let ip = p.ipv4().ok_or(Ignored::Malformed)?;
            if ip.is_fragment() {
                return Err(Ignored::Fragment);
            }
            match ip.protocol() {
                protocol::ICMP => icmp::on_icmp(&p, rx_port, port, node, now_ns, &mut probes.icmp),
                protocol::UDP => lsp::on_udp(&p, node, now_ns, &mut probes.lsp),
                _ => Err(Ignored::Unsupported),
            }
        }
    }
}

/// True for a group (multicast or broadcast) MAC.
fn is_group(m: &Mac) -> bool {
    m[0] & 1 == 1
}

/// True for a group or all-zero MAC: nothing is ever sent to one.
fn is_group_or_zero(m: &Mac) -> bool {
    is_group(m) || *m == [0; 6]
}

/// True for an IPv4 source nothing is answered to: unspecified (0/8),
/// loopback, multicast, limited broadcast or reserved (240/4).
fn is_bad_source(a: Ipv4Addr) -> bool {
    let o = a.octets();
    o[0] == 0 || a.is_loopback() || a.is_multicast() || o[0] >= 240
}

/// Smallest Ethernet frame without FCS (shorter ones are padded).
const MIN_FRAME_LEN: usize = 60;

/// A frame back to the sender of `p` on its link: the same tags, the
/// sender's MAC as destination, `src` as source, then `l3` with
/// `ethertype`, zero-padded to 60 bytes.
fn link_reply(p: &PuntedFrame<'_>, src: Mac, ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let l2 = p.l2_header();
    let mut f = Vec::with_capacity((l2.len() + l3.len()).max(MIN_FRAME_LEN));
    f.extend_from_slice(l2);
    let mut eth = ethernet::EthernetFrame::new_unchecked(&mut f[..]);
    eth.set_dst(p.src_mac);
    eth.set_src(src);
    if let Some(et) = f.len().checked_sub(2).and_then(|i| f.get_mut(i..)) {
        et.copy_from_slice(&ethertype.to_be_bytes());
    }
    f.extend_from_slice(l3);
    if f.len() < MIN_FRAME_LEN {
        f.resize(MIN_FRAME_LEN, 0);
    }
    f
}

/// The IPv4 Router Alert option (RFC 2113, value 0: "examine packet").
const ROUTER_ALERT: [u8; 4] = [0x94, 0x04, 0x00, 0x00];

/// True if `options` hold only a Router Alert, NOPs and an end of list.
fn only_router_alert(options: &[u8]) -> bool {
    let mut rest = options;
    loop {
        match rest {
            [] | [0, ..] => return true,
            [1, tail @ ..] => rest = tail,
            [0x94, 0x04, _, _, tail @ ..] => rest = tail,
            _ => return false,
        }
    }
}

/// The header fields of an IPv4 packet a service sends.
#[derive(Clone, Copy, Debug)]
struct Ipv4Spec {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ttl: u8,
    ident: u16,
    dscp_ecn: u8,
    router_alert: bool,
}

/// An IPv4 packet with `payload` and its header checksum filled (with
/// the Router Alert option if asked); `None` if it would exceed 65535
/// bytes.
fn ipv4_packet(spec: Ipv4Spec, payload: &[u8]) -> Option<Vec<u8>> {
    let hl = ipv4::MIN_HEADER_LEN + if spec.router_alert { 4 } else { 0 };
    let mut v = vec![0u8; hl + payload.len()];
    ipv4::write_header(
        &mut v,
        spec.src,
        spec.dst,
        spec.protocol,
        hl - ipv4::MIN_HEADER_LEN + payload.len(),
        spec.ttl,
        spec.ident,
        spec.dscp_ecn,
    )
    .ok()?;
    if spec.router_alert {
        v[0] = 0x46;
        v[ipv4::MIN_HEADER_LEN..hl].copy_from_slice(&ROUTER_ALERT);
    }
    v[hl..].copy_from_slice(payload);
    Ipv4Packet::new_unchecked(&mut v[..]).fill_checksum();
    Some(v)
}

#[cfg(test)]
mod tests;
