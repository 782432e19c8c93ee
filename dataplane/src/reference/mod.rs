//! A reference forwarder: the forwarding rules of one node written out
//! plainly, one frame at a time, straight from its configuration, with no
//! fast path, no cache, no trie and none of the production crypto code.
//! It exists to be compared with the stages (`stage::process`) frame by
//! frame: [`diff`] drives both with the same batches and reports the first
//! frame whose verdict or bytes differ; [`cases`] builds those batches.
//!
//! The rules, in the order they are applied (the first that fails names
//! the drop):
//!
//! 1. Link layer (RFC 1812 §5.3.4): at least an Ethernet header
//!    (`malformed`), sent to the receiving port's MAC (`not_for_us`), from
//!    an individual non-zero MAC (`bad_source_mac`); up to two VLAN tags.
//! 2. By ethertype: MPLS to the label rules; IPv4 to decryption when it is
//!    ESP to one of the node's tunnel endpoints, else to the ingress
//!    rules; IPv6 (whose packet must say version 6) to the ingress rules;
//!    anything else `unsupported`.
//! 3. Labels (RFC 3032): the top entry's label must have an LFIB entry
//!    (`no_route`). Swap and pop need a TTL of 2 or more (`ttl_expired`)
//!    and leave with the next hop's Ethernet header, within the out port's
//!    MTU (`too_big`); a swap may push labels above the swapped one (a
//!    local repair: not bottom of stack, same traffic class and TTL); a
//!    pop reveals IPv4, IPv6 or the next entry (uniform TTL). The node's
//!    own label (a pop without a port) needs a TTL above 0; above another
//!    entry it is popped and that entry, with the lower TTL, is switched
//!    by the same rules (at most eight lookups, else `unsupported`); at
//!    the bottom of the stack it hands the packet below to decryption.
//! 4. IP forwarding at either end of the tunnel (RFC 1812): a valid header
//!    and IPv4 checksum, no martian address, a route, then a TTL or hop
//!    limit of 2 or more, decremented, and a length within the MTU of where
//!    it goes: at ingress, the packet once tunnelled (label, outer IPv4,
//!    ESP) must fit the FEC's port MTU; at egress, the packet must fit the
//!    LAN port's MTU (`too_big`).
//! 5. Ingress: the FEC's outbound SA seals the packet in tunnel mode
//!    (RFC 4303, RFC 4106), and the FEC's label and next hop are pushed.
//! 6. Egress: outer IPv4 checked, SA by SPI and bound to its endpoints,
//!    anti-replay (RFC 4303 §3.4.3, Appendix A for ESN), the ICV, default
//!    padding, the next header agreeing with the inner version, the inner
//!    source inside the peer's prefixes (RFC 4301 §5.2), then the IP
//!    forwarding rules over the delivery table.
//!
//! SA lifetimes (`sa::lifetime`) are not modelled: the stages check them
//! once per run of frames, not per frame, and the configurations the
//! differential test drives carry none (nor does a 32-bit SA there come
//! near the end of its sequence space). `tests/sa_lifetimes.rs` checks
//! them against the stages directly.

pub mod cases;
pub mod diff;

use crate::config::{AeadAlg, LfibAction, Mac, NodeConfig, SaConfig, SaDir};
use crate::drop_reason::DropReason;
use crate::frame::PortId;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the reference forwarder does with one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Sent on `port` as `frame`.
    Tx {
        /// The port.
        port: PortId,
        /// The bytes sent.
        frame: Vec<u8>,
    },
    /// Dropped for this reason.
    Drop(DropReason),
    /// Handed to the control thread as it arrived.
    Punt {
        /// The bytes handed over.
        frame: Vec<u8>,
    },
    /// Left with a verdict that is neither (only the stages can; the
    /// reference never does, so it is always a mismatch).
    Unfinished,
}

/// The room of the buffer a frame arrived in: bytes free in front of it,
/// and bytes from its start to the end of the buffer. Encapsulation that
/// does not fit is `no_room`, as in any backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Room {
    /// Bytes in front of the frame.
    pub headroom: usize,
    /// Bytes from the frame's first byte to the end of the buffer.
    pub size: usize,
}

/// Chooses the sequence number of an ESP packet the node seals: called
/// with the SA's SPI and the lowest number the rules allow (one above the
/// last used). Sequence numbers only have to grow, so any number at or
/// above it is legal; the caller picks (a test picks what the node under
/// test used, so that both seal the same bytes).
pub type SeqChooser<'a> = dyn FnMut(u32, u64) -> u64 + 'a;

/// Anti-replay state of one inbound SA, kept as a set of the sequence
/// numbers seen inside the window.
#[derive(Clone, Debug, Default)]
struct Window {
    top: u64,
    seen: BTreeSet<u64>,
}

/// Width of the anti-replay window (the stages' too: RFC 4303 asks for at
/// least 32, the design for at least 1024).
pub const WINDOW: u64 = crate::sa::replay::WINDOW;

impl Window {
    fn check(&self, seq: u64) -> bool {
        if seq == 0 {
            return false;
        }
        if seq > self.top {
            return true;
        }
        self.top - seq < WINDOW && !self.seen.contains(&seq)
    }

    fn accept(&mut self, seq: u64) {
        if seq > self.top {
            self.top = seq;
        }
        self.seen.insert(seq);
        let floor = self.top.saturating_sub(WINDOW - 1);
        self.seen = self.seen.split_off(&floor);
    }

    /// RFC 4303 Appendix A2.2: the high half of an extended sequence
    /// number, inferred from the low half and the window.
    fn infer_esn(&self, seq_lo: u32) -> u64 {
        let (th, tl) = ((self.top >> 32) as u32, self.top as u32);
        let w = WINDOW as u32;
        let hi = if tl >= w - 1 {
            // Case A: the window lies within one subspace.
            if seq_lo >= tl - (w - 1) {
                th
            } else {
                th.wrapping_add(1)
            }
        } else if seq_lo >= tl.wrapping_sub(w - 1) {
            // Case B: the window spans two subspaces.
            th.wrapping_sub(1)
        } else {
            th
        };
        if th == 0 && hi == u32::MAX {
            // Before the first wrap there is no earlier subspace.
            return u64::from(seq_lo);
        }
        (u64::from(hi) << 32) | u64::from(seq_lo)
    }
}

/// One node's forwarding rules and the state they keep (sequence numbers
/// sent, anti-replay windows).
pub struct Reference {
    cfg: NodeConfig,
    last_sent: HashMap<u32, u64>,
    windows: HashMap<u32, Window>,
    /// The frame to punt when it is not the one received: the node's own
    /// label popped from above the stack that reached the node.
    punted: Option<Vec<u8>>,
}

const ETH: usize = 14;
const ET_IPV4: u16 = 0x0800;
const ET_IPV6: u16 = 0x86dd;
const ET_MPLS: u16 = 0x8847;
const ET_ARP: u16 = 0x0806;
const ESP: u8 = 50;
/// IP protocol UDP.
const UDP: u8 = 17;
/// Outer IPv4 + ESP header + IV in front of the inner packet.
const ENCAP: usize = 20 + 8 + 8;
const ICV: usize = 16;

impl Reference {
    /// The rules of the node `cfg` describes, with fresh SA state.
    pub fn new(cfg: &NodeConfig) -> Reference {
        Reference {
            cfg: cfg.clone(),
            last_sent: HashMap::new(),
            windows: HashMap::new(),
            punted: None,
        }
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    /// Forwards one frame received on `rx_port` in a buffer with `room`.
    pub fn forward(
        &mut self,
        rx_port: PortId,
        frame: &[u8],
        room: Room,
        seq: &mut SeqChooser<'_>,
    ) -> Outcome {
        self.punted = None;
        match self.forward_inner(rx_port, frame, room, seq) {
            Ok(Some((port, frame))) => Outcome::Tx { port, frame },
            Ok(None) => Outcome::Punt {
                frame: self.punted.take().unwrap_or_else(|| frame.to_vec()),
            },
            Err(r) => Outcome::Drop(r),
        }
    }

    fn port_mac(&self, port: PortId) -> Option<Mac> {
        self.cfg.ports.get(usize::from(port)).map(|p| p.mac)
    }

    fn port_id(&self, name: &str) -> PortId {
        self.cfg.port_index(name).unwrap_or(PortId::MAX)
    }

    /// True when `rx_port` has an address of its own (answers ARP).
    fn port_has_address(&self, rx_port: PortId) -> bool {
        self.cfg
            .ports
            .get(usize::from(rx_port))
            .is_some_and(|p| p.address.is_some())
    }

    /// True when `a` is one of the node's addresses: the node address, an
    /// inbound SA's tunnel end, a port's address.
    fn is_own(&self, a: Ipv4Addr) -> bool {
        self.cfg.node_address() == Some(a)
            || self
                .cfg
                .sa
                .iter()
                .any(|s| s.dir == SaDir::In && s.tunnel_dst == a)
            || self
                .cfg
                .ports
                .iter()
                .any(|p| p.address.is_some_and(|(pa, _)| pa == a))
    }

    /// The ethertype after up to two VLAN tags and the L2 header's length.
    fn ethertype(d: &[u8]) -> Result<(u16, usize), DropReason> {
        let mut l2 = ETH;
        let mut et = be16(d, 12).ok_or(DropReason::Malformed)?;
        if et != ET_MPLS {
            for _ in 0..2 {
                if et != 0x8100 && et != 0x88a8 {
                    break;
                }
                et = be16(d, l2 + 2).ok_or(DropReason::Malformed)?;
                l2 += 4;
            }
            if et == 0x8100 || et == 0x88a8 {
                return Err(DropReason::Malformed);
            }
        }
        Ok((et, l2))
    }

    /// True when the label stack at `at` ends within eight entries and an
    /// IPv4 UDP packet to port 3503 (MPLS echo) follows it.
    fn carries_mpls_echo(d: &[u8], at: usize) -> bool {
        for i in 0..8 {
            let Some(e) = be32(d, at + 4 * i) else {
                return false;
            };
            if e & 0x100 != 0 {
                let ip = at + 4 * (i + 1);
                let Some(&vihl) = d.get(ip) else {
                    return false;
                };
                let ihl = usize::from(vihl & 15) * 4;
                return vihl >> 4 == 4
                    && ihl >= 20
                    && d.get(ip + 9) == Some(&17)
                    && be16(d, ip + ihl + 2) == Some(3503);
            }
        }
        false
    }

    fn forward_inner(
        &mut self,
        rx_port: PortId,
        d: &[u8],
        room: Room,
        seq: &mut SeqChooser<'_>,
    ) -> Result<Option<(PortId, Vec<u8>)>, DropReason> {
        // A frame from a port the node does not have is for no port of it.
        let Some(mac) = self.port_mac(rx_port) else {
            return Err(DropReason::NotForUs);
        };
        if d.len() < ETH {
            return Err(DropReason::Malformed);
        }
        let src = &d[6..12];
        let bad_src = src[0] & 1 == 1 || src.iter().all(|&b| b == 0);
        if d[..6] != mac {
            // ARP requests are broadcast: taken on a port with an address.
            let arp = Self::ethertype(d).is_ok_and(|(et, _)| et == ET_ARP);
            if d[..6] == [0xff; 6] && !bad_src && arp && self.port_has_address(rx_port) {
                return Ok(None);
            }
            return Err(DropReason::NotForUs);
        }
        if bad_src {
            return Err(DropReason::BadSourceMac);
        }
        // Up to two VLAN tags, either TPID at either place.
        let (et, l2) = Self::ethertype(d)?;
        match et {
            ET_MPLS => self.label(d, l2),
            ET_ARP if self.port_has_address(rx_port) => Ok(None),
            ET_IPV4 => {
                let ip = &d[l2..];
                let h = Ipv4View::parse(ip).ok_or(DropReason::Malformed)?;
                let dst = Ipv4Addr::from(h.dst);
                let local = self
                    .cfg
                    .sa
                    .iter()
                    .any(|s| s.dir == SaDir::In && s.tunnel_dst == dst);
                if h.proto == UDP && local && esp_in_udp(ip, h.ihl, h.flags_frag) {
                    // RFC 3948: the UDP header between IPv4 and ESP goes.
                    if checksum(&ip[..h.ihl]) != 0 {
                        return Err(DropReason::BadChecksum);
                    }
                    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
                    let mut plain = ip[..h.ihl].to_vec();
                    plain[2..4].copy_from_slice(&((total - 8) as u16).to_be_bytes());
                    plain[9] = ESP;
                    plain[10..12].fill(0);
                    let c = checksum(&plain);
                    plain[10..12].copy_from_slice(&c.to_be_bytes());
                    plain.extend(&ip[h.ihl + 8..total]);
                    self.decrypt(&plain).map(Some)
                } else if h.proto != ESP && self.is_own(dst) {
                    Ok(None)
                } else if h.proto == ESP && local {
                    self.decrypt(ip).map(Some)
                } else {
                    self.ingress(
                        ip,
                        Room {
                            headroom: room.headroom + l2,
                            size: room.size - l2,
                        },
                        seq,
                    )
                    .map(Some)
                }
            }
            ET_IPV6 => {
                if d.get(l2).map(|b| b >> 4) != Some(6) {
                    return Err(DropReason::Malformed);
                }
                self.ingress(
                    &d[l2..],
                    Room {
                        headroom: room.headroom + l2,
                        size: room.size - l2,
                    },
                    seq,
                )
                .map(Some)
            }
            _ => Err(DropReason::Unsupported),
        }
    }

    /// The label rules for a frame whose label stack starts at `l2`.
    fn label(&mut self, d: &[u8], l2: usize) -> Result<Option<(PortId, Vec<u8>)>, DropReason> {
        self.label_at(d, l2, 1)
    }

    /// [`Self::label`] for the `lookup`-th label looked up in this frame
    /// (a node segment that ends here continues with the label below, at
    /// most eight lookups in all).
    fn label_at(
        &mut self,
        d: &[u8],
        l2: usize,
        lookup: usize,
    ) -> Result<Option<(PortId, Vec<u8>)>, DropReason> {
        let top = be32(d, l2).ok_or(DropReason::Malformed)?;
        let (label, tc, bos, ttl) = (top >> 12, (top >> 9) & 7, top & 0x100 != 0, top as u8);
        let entry = self
            .cfg
            .lfib
            .iter()
            .rev()
            .find(|e| e.label == label)
            .ok_or(DropReason::NoRoute)?;
        let below = l2 + 4;
        match (entry.action, &entry.port) {
            (LfibAction::Swap, Some(port)) => {
                if ttl <= 1 {
                    // An LSP traceroute probe is answered where it expires.
                    return match Self::carries_mpls_echo(d, l2) {
                        true => Ok(None),
                        false => Err(DropReason::TtlExpired),
                    };
                }
                let out = entry.out_label.ok_or(DropReason::NoRoute)? & 0xf_ffff;
                let port = self.port_id(port);
                let new = (out << 12) | (tc << 9) | (u32::from(bos) << 8) | u32::from(ttl - 1);
                let mut f = self.eth(entry.next_hop_mac.unwrap_or([0; 6]), port, ET_MPLS);
                // A repair's labels above the swapped one: not bottom of
                // stack, the same traffic class and new TTL.
                for &p in &entry.push {
                    f.extend(
                        (((p & 0xf_ffff) << 12) | (tc << 9) | u32::from(ttl - 1)).to_be_bytes(),
                    );
                }
                f.extend(new.to_be_bytes());
                f.extend(&d[below..]);
                self.fits(port, f).map(Some)
            }
            (LfibAction::Swap, None) => Err(DropReason::NoRoute),
            (LfibAction::Pop, Some(port)) => {
                if ttl <= 1 {
                    return match Self::carries_mpls_echo(d, l2) {
                        true => Ok(None),
                        false => Err(DropReason::TtlExpired),
                    };
                }
                let port = self.port_id(port);
                let mut rest = d[below..].to_vec();
                let et = if bos {
                    match rest.first().map(|b| b >> 4) {
                        Some(4) => ET_IPV4,
                        Some(6) => ET_IPV6,
                        _ => return Err(DropReason::Malformed),
                    }
                } else {
                    // Uniform model: the next entry takes the lower TTL.
                    let next = be32(&rest, 0).ok_or(DropReason::Malformed)?;
                    let t = (next as u8).min(ttl - 1);
                    rest[3] = t;
                    ET_MPLS
                };
                let mut f = self.eth(entry.next_hop_mac.unwrap_or([0; 6]), port, et);
                f.extend(rest);
                self.fits(port, f).map(Some)
            }
            (LfibAction::Pop, None) => {
                if ttl == 0 {
                    return Err(DropReason::TtlExpired);
                }
                if !bos {
                    // The node's own segment ends: the label below goes
                    // on, with the lower of the two TTLs.
                    if lookup >= 8 {
                        return Err(DropReason::Unsupported);
                    }
                    let next = be32(d, below).ok_or(DropReason::Malformed)?;
                    let next = (next & !0xff) | u32::from((next as u8).min(ttl));
                    let mut f = d[..l2].to_vec();
                    f.extend(next.to_be_bytes());
                    f.extend(&d[below + 4..]);
                    let r = self.label_at(&f, l2, lookup + 1);
                    if matches!(r, Ok(None)) && self.punted.is_none() {
                        self.punted = Some(f);
                    }
                    return r;
                }
                // Not ESP, to the node or to 127/8 (an LSP ping's egress):
                // for the node itself.
                let ip = &d[below..];
                if ip.len() >= 20 && ip[0] >> 4 == 4 && ip[9] != ESP {
                    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
                    if dst.octets()[0] == 127 || self.is_own(dst) {
                        return Ok(None);
                    }
                }
                self.decrypt(ip).map(Some)
            }
        }
    }

    /// `port` and the Ethernet frame `f` when its payload fits the port's
    /// MTU; `too_big` otherwise.
    fn fits(&self, port: PortId, f: Vec<u8>) -> Result<(PortId, Vec<u8>), DropReason> {
        let mtu = self
            .cfg
            .ports
            .get(usize::from(port))
            .map_or(usize::MAX, |p| usize::from(p.mtu));
        match f.len() - 14 > mtu {
            true => Err(DropReason::TooBig),
            false => Ok((port, f)),
        }
    }

    /// An Ethernet header to `dst` from `port`'s MAC.
    fn eth(&self, dst: Mac, port: PortId, et: u16) -> Vec<u8> {
        let mut f = Vec::with_capacity(1600);
        f.extend(dst);
        f.extend(self.port_mac(port).unwrap_or([0; 6]));
        f.extend(et.to_be_bytes());
        f
    }

    /// Ingress: IP forwarding over the FECs, then seal and push.
    fn ingress(
        &mut self,
        ip: &[u8],
        room: Room,
        seq: &mut SeqChooser<'_>,
    ) -> Result<(PortId, Vec<u8>), DropReason> {
        let prefixes: Vec<_> = self.cfg.fec.iter().map(|f| f.prefix).collect();
        // The packet once tunnelled: label (if the FEC has one), outer
        // IPv4, UDP (if the SA is ESP in UDP), ESP header, IV, the packet,
        // padding to four bytes with the trailer, the ICV.
        let udp_of = |i: usize| {
            let spi = self.cfg.fec[i].sa;
            self.cfg
                .sa
                .iter()
                .rev()
                .find(|s| s.dir == SaDir::Out && s.spi == spi)
                .is_some_and(|s| s.udp_encap)
        };
        let tunnelled = |i: usize, n: usize| {
            let label = if self.cfg.fec[i].label.is_some() {
                4
            } else {
                0
            };
            let udp = if udp_of(i) { 8 } else { 0 };
            label + 20 + udp + 8 + 8 + (n + 2).div_ceil(4) * 4 + ICV
        };
        let port_mtu = |i: usize| {
            let port = usize::from(self.port_id(&self.cfg.fec[i].port));
            self.cfg.ports.get(port).map_or(0, |p| usize::from(p.mtu))
        };
        let (fec_idx, inner) = ip_forward(ip, &prefixes, |i, n| tunnelled(i, n) <= port_mtu(i))?;
        let fec = &self.cfg.fec[fec_idx];
        let sa = self
            .cfg
            .sa
            .iter()
            .rev()
            .find(|s| s.dir == SaDir::Out && s.spi == fec.sa)
            .ok_or(if fec.peer.is_some() {
                DropReason::SaPending
            } else {
                DropReason::NoRoute
            })?
            .clone();
        let (next_header, tos) = match inner[0] >> 4 {
            4 => (4u8, inner[1]),
            _ => (41u8, (inner[0] << 4) | (inner[1] >> 4)),
        };
        let pad = (4 - (inner.len() + 2) % 4) % 4;
        let body_len = inner.len() + pad + 2;
        let esp_len = 8 + 8 + body_len + ICV;
        let udp = if sa.udp_encap { 8 } else { 0 };
        if 20 + udp + esp_len > 65535 {
            return Err(DropReason::NoRoom);
        }
        // The inner packet lies at `room.headroom`; the outer headers, the
        // label and the Ethernet header go in front, the trailer behind.
        let tail = pad + 2 + ICV;
        if room.headroom < ENCAP + udp || room.size < inner.len() + tail {
            return Err(DropReason::NoRoom);
        }
        let min = self.last_sent.get(&sa.spi).copied().unwrap_or(0) + 1;
        let s = seq(sa.spi, min).max(min);
        let limit = if sa.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        if s > limit {
            return Err(DropReason::SeqExhausted);
        }
        self.last_sent.insert(sa.spi, s);
        let label = if fec.label.is_some() { 4 } else { 0 };
        if room.headroom < ENCAP + udp + ETH + label {
            return Err(DropReason::NoRoom);
        }
        let mut plain = inner.clone();
        plain.extend((1..=pad).map(|i| i as u8));
        plain.push(pad as u8);
        plain.push(next_header);
        let mut packet = outer_ipv4(&sa, udp + esp_len, s as u16, tos);
        if sa.udp_encap {
            packet.extend(4500u16.to_be_bytes());
            packet.extend(4500u16.to_be_bytes());
            packet.extend(((8 + esp_len) as u16).to_be_bytes());
            packet.extend([0, 0]);
        }
        packet.extend(sa.spi.to_be_bytes());
        packet.extend((s as u32).to_be_bytes());
        packet.extend(s.to_be_bytes());
        let icv = seal(&sa, s, &mut plain);
        packet.extend(plain);
        packet.extend(icv);
        let port = self.port_id(&fec.port);
        let mut f = match fec.label {
            Some(l) => {
                let mut f = self.eth(fec.next_hop_mac, port, ET_MPLS);
                f.extend(((l & 0xf_ffff) << 12 | 1 << 8 | 64).to_be_bytes());
                f
            }
            None => self.eth(fec.next_hop_mac, port, ET_IPV4),
        };
        f.extend(packet);
        Ok((port, f))
    }

    /// Egress: a tunnel packet (outer IPv4) addressed to this node.
    fn decrypt(&mut self, ip: &[u8]) -> Result<(PortId, Vec<u8>), DropReason> {
        let h = Ipv4View::parse(ip).ok_or(DropReason::Malformed)?;
        if checksum(&ip[..h.ihl]) != 0 {
            return Err(DropReason::BadChecksum);
        }
        if h.proto != ESP {
            return Err(DropReason::Unsupported);
        }
        if h.flags_frag & 0x3fff != 0 {
            return Err(DropReason::Unsupported);
        }
        let esp = &ip[h.ihl..h.total];
        if esp.len() < 8 + 8 + 2 + ICV {
            return Err(DropReason::Malformed);
        }
        let spi = be32(esp, 0).ok_or(DropReason::Malformed)?;
        let seq_lo = be32(esp, 4).ok_or(DropReason::Malformed)?;
        let sa = self
            .cfg
            .sa
            .iter()
            .rev()
            .find(|s| s.dir == SaDir::In && s.spi == spi)
            .ok_or(DropReason::UnknownSpi)?
            .clone();
        if Ipv4Addr::from(h.dst) != sa.tunnel_dst || Ipv4Addr::from(h.src) != sa.tunnel_src {
            return Err(DropReason::UnknownSpi);
        }
        let window = self.windows.entry(spi).or_default();
        let seq = if sa.esn {
            window.infer_esn(seq_lo)
        } else {
            u64::from(seq_lo)
        };
        if !window.check(seq) {
            return Err(DropReason::Replay);
        }
        let iv: [u8; 8] = esp[8..16].try_into().map_err(|_| DropReason::Malformed)?;
        let mut body = esp[16..esp.len() - ICV].to_vec();
        let icv = &esp[esp.len() - ICV..];
        if !open(&sa, seq, iv, &mut body, icv) {
            return Err(DropReason::AuthFailed);
        }
        window.accept(seq);
        let n = body.len();
        let (pad, next_header) = (usize::from(body[n - 2]), body[n - 1]);
        let payload_len = n.checked_sub(2 + pad).ok_or(DropReason::Malformed)?;
        if (0..pad).any(|i| usize::from(body[payload_len + i]) != i + 1) {
            return Err(DropReason::Malformed);
        }
        match (next_header, body[0] >> 4) {
            (4, 4) | (41, 6) => {}
            (4 | 41, _) => return Err(DropReason::Malformed),
            _ => return Err(DropReason::Unsupported),
        }
        if payload_len == 0 {
            return Err(DropReason::Malformed);
        }
        // Inbound policy: the inner source must lie in a prefix of a FEC
        // whose outbound SA goes back to this SA's peer (any source when
        // there is none); a packet too short to say is left to the IP rules.
        let inner = &body[..payload_len];
        let src = match inner[0] >> 4 {
            4 => inner
                .get(12..16)
                .map(|a| IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))),
            _ => inner
                .get(8..24)
                .and_then(|a| <[u8; 16]>::try_from(a).ok())
                .map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        };
        let peer_prefixes: Vec<crate::config::Prefix> = self
            .cfg
            .fec
            .iter()
            .filter(|f| {
                self.cfg
                    .sa
                    .iter()
                    .rev()
                    .find(|o| o.dir == SaDir::Out && o.spi == f.sa)
                    .is_some_and(|o| o.tunnel_dst == sa.tunnel_src)
            })
            .map(|f| f.prefix)
            .collect();
        if let Some(src) = src {
            if !peer_prefixes.is_empty() && !peer_prefixes.iter().any(|p| prefix_contains(p, src)) {
                return Err(DropReason::PolicyMismatch);
            }
        }
        let prefixes: Vec<_> = self.cfg.deliver.iter().map(|d| d.prefix).collect();
        let lan_mtu = |i: usize| {
            let port = usize::from(self.port_id(&self.cfg.deliver[i].port));
            self.cfg.ports.get(port).map_or(0, |p| usize::from(p.mtu))
        };
        let (idx, inner) = ip_forward(&body[..payload_len], &prefixes, |i, n| n <= lan_mtu(i))?;
        let dl = &self.cfg.deliver[idx];
        let et = if inner[0] >> 4 == 4 { ET_IPV4 } else { ET_IPV6 };
        let port = self.port_id(&dl.port);
        let mut f = self.eth(dl.next_hop_mac, port, et);
        f.extend(inner);
        Ok((port, f))
    }
}

/// The fields of an IPv4 header the rules read, from a header that is
/// version 4 with IHL >= 5 and header length <= total length <= buffer.
struct Ipv4View {
    ihl: usize,
    total: usize,
    flags_frag: u16,
    ttl: u8,
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
}

impl Ipv4View {
    fn parse(p: &[u8]) -> Option<Ipv4View> {
        if p.len() < 20 || p[0] >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(p[0] & 0xf) * 4;
        let total = usize::from(be16(p, 2)?);
        if ihl < 20 || ihl > p.len() || total < ihl || total > p.len() {
            return None;
        }
        Some(Ipv4View {
            ihl,
            total,
            flags_frag: be16(p, 6)?,
            ttl: p[8],
            proto: p[9],
            src: p[12..16].try_into().ok()?,
            dst: p[16..20].try_into().ok()?,
        })
    }
}

/// RFC 1812 forwarding of the IP packet `ip` (padding behind it allowed)
/// against `prefixes`: the index of the longest (last among equals)
/// matching prefix and the packet as it leaves, TTL or hop limit less one;
/// a packet of `n` bytes for prefix `i` that `fits(i, n)` refuses is
/// `too_big`.
fn ip_forward(
    ip: &[u8],
    prefixes: &[crate::config::Prefix],
    fits: impl Fn(usize, usize) -> bool,
) -> Result<(usize, Vec<u8>), DropReason> {
    let (dst, mut p) = match ip.first().map(|b| b >> 4) {
        Some(4) => {
            let h = Ipv4View::parse(ip).ok_or(DropReason::Malformed)?;
            if checksum(&ip[..h.ihl]) != 0 {
                return Err(DropReason::BadChecksum);
            }
            let (src, dst) = (Ipv4Addr::from(h.src), Ipv4Addr::from(h.dst));
            if martian4(src) || martian4(dst) {
                return Err(DropReason::Martian);
            }
            let _ = h.ttl;
            (IpAddr::V4(dst), ip[..h.total].to_vec())
        }
        Some(6) => {
            if ip.len() < 40 {
                return Err(DropReason::Malformed);
            }
            let total = 40 + usize::from(be16(ip, 4).ok_or(DropReason::Malformed)?);
            if total > ip.len() {
                return Err(DropReason::Malformed);
            }
            let src = Ipv6Addr::from(
                <[u8; 16]>::try_from(&ip[8..24]).map_err(|_| DropReason::Malformed)?,
            );
            let dst = Ipv6Addr::from(
                <[u8; 16]>::try_from(&ip[24..40]).map_err(|_| DropReason::Malformed)?,
            );
            if martian6(src) || martian6(dst) {
                return Err(DropReason::Martian);
            }
            (IpAddr::V6(dst), ip[..total].to_vec())
        }
        _ => return Err(DropReason::Malformed),
    };
    let mut best: Option<(usize, u8)> = None;
    for (i, pre) in prefixes.iter().enumerate() {
        if prefix_contains(pre, dst) && best.is_none_or(|(_, len)| pre.len >= len) {
            best = Some((i, pre.len));
        }
    }
    let (idx, _) = best.ok_or(DropReason::NoRoute)?;
    if p[0] >> 4 == 4 {
        if p[8] <= 1 {
            return Err(DropReason::TtlExpired);
        }
        p[8] -= 1;
        let ihl = usize::from(p[0] & 0xf) * 4;
        p[10] = 0;
        p[11] = 0;
        let c = checksum(&p[..ihl]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    } else {
        if p[7] <= 1 {
            return Err(DropReason::TtlExpired);
        }
        p[7] -= 1;
    }
    if !fits(idx, p.len()) {
        return Err(DropReason::TooBig);
    }
    Ok((idx, p))
}

fn prefix_contains(p: &crate::config::Prefix, a: IpAddr) -> bool {
    match (p.addr, a) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let len = u32::from(p.len.min(32));
            len == 0 || (u32::from(n) ^ u32::from(a)) >> (32 - len) == 0
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let len = u32::from(p.len.min(128));
            len == 0 || (u128::from(n) ^ u128::from(a)) >> (128 - len) == 0
        }
        _ => false,
    }
}

/// IPv4 addresses a router never forwards to or from.
fn martian4(a: Ipv4Addr) -> bool {
    a.octets()[0] == 0
        || a.is_loopback()
        || a.is_link_local()
        || a.is_multicast()
        || a.is_broadcast()
        || a.octets()[0] >= 240
}

/// IPv6 addresses a router never forwards to or from.
fn martian6(a: Ipv6Addr) -> bool {
    a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || a.is_unicast_link_local()
        || a.to_ipv4_mapped().is_some()
}

/// True for ESP in UDP (RFC 3948): unfragmented UDP to port 4500 holding
/// at least an SPI and a sequence number, the SPI not zero (zero is IKE's
/// non-ESP marker).
fn esp_in_udp(ip: &[u8], ihl: usize, flags_frag: u16) -> bool {
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let Some(u) = ip.get(ihl..total) else {
        return false;
    };
    flags_frag & 0x3fff == 0 && u.len() >= 16 && u[2..4] == [0x11, 0x94] && u[8..12] != [0; 4]
}

/// The outer IPv4 header of a tunnel packet (DF clear, TTL 64, checksum)
/// carrying `len` bytes: ESP, or ESP in UDP when the SA says so.
fn outer_ipv4(sa: &SaConfig, len: usize, id: u16, tos: u8) -> Vec<u8> {
    let mut h = vec![0x45, tos];
    h.extend(((20 + len) as u16).to_be_bytes());
    h.extend(id.to_be_bytes());
    h.extend([0, 0, 64, if sa.udp_encap { UDP } else { ESP }, 0, 0]);
    h.extend(sa.tunnel_src.octets());
    h.extend(sa.tunnel_dst.octets());
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// The internet checksum (RFC 1071): 0 over a header that carries its own.
fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in b.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// RFC 4106 associated data: SPI and the sequence number (64 bits with ESN).
fn aad(sa: &SaConfig, seq: u64) -> Vec<u8> {
    let mut a = sa.spi.to_be_bytes().to_vec();
    if sa.esn {
        a.extend(seq.to_be_bytes());
    } else {
        a.extend((seq as u32).to_be_bytes());
    }
    a
}

/// RFC 4106 nonce: the salt (the last 4 key bytes) and the IV.
fn nonce(sa: &SaConfig, iv: [u8; 8]) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&sa.key[sa.key.len() - 4..]);
    n[4..].copy_from_slice(&iv);
    n
}

/// Encrypts `buf` in place under `sa` with IV = `seq`; returns the ICV.
pub fn seal(sa: &SaConfig, seq: u64, buf: &mut [u8]) -> [u8; 16] {
    let key = &sa.key[..sa.key.len() - 4];
    let n = nonce(sa, seq.to_be_bytes());
    let a = aad(sa, seq);
    let tag = match sa.aead {
        AeadAlg::Aes128Gcm => aes_gcm::Aes128Gcm::new_from_slice(key)
            .ok()
            .and_then(|c| c.encrypt_in_place_detached(&n.into(), &a, buf).ok()),
        AeadAlg::Aes256Gcm => aes_gcm::Aes256Gcm::new_from_slice(key)
            .ok()
            .and_then(|c| c.encrypt_in_place_detached(&n.into(), &a, buf).ok()),
    };
    tag.map(|t| t.into()).unwrap_or([0; 16])
}

/// Decrypts `buf` in place under `sa`; false if the ICV does not verify.
fn open(sa: &SaConfig, seq: u64, iv: [u8; 8], buf: &mut [u8], icv: &[u8]) -> bool {
    let key = &sa.key[..sa.key.len() - 4];
    let n = nonce(sa, iv);
    let a = aad(sa, seq);
    let Ok(tag) = <[u8; 16]>::try_from(icv) else {
        return false;
    };
    match sa.aead {
        AeadAlg::Aes128Gcm => aes_gcm::Aes128Gcm::new_from_slice(key).is_ok_and(|c| {
            c.decrypt_in_place_detached(&n.into(), &a, buf, &tag.into())
                .is_ok()
        }),
        AeadAlg::Aes256Gcm => aes_gcm::Aes256Gcm::new_from_slice(key).is_ok_and(|c| {
            c.decrypt_in_place_detached(&n.into(), &a, buf, &tag.into())
                .is_ok()
        }),
    }
}

/// A complete tunnel packet (outer IPv4 + ESP) under `sa` carrying `inner`
/// with next header `next_header`, as the peer gateway would send it: for
/// building test traffic.
pub fn tunnel_packet(sa: &SaConfig, seq: u64, inner: &[u8], next_header: u8) -> Vec<u8> {
    let pad = (4 - (inner.len() + 2) % 4) % 4;
    let mut plain = inner.to_vec();
    plain.extend((1..=pad).map(|i| i as u8));
    plain.push(pad as u8);
    plain.push(next_header);
    let esp_len = 8 + 8 + plain.len() + ICV;
    let tos = inner.get(1).copied().unwrap_or(0);
    let mut p = outer_ipv4(sa, esp_len, seq as u16, tos);
    p.extend(sa.spi.to_be_bytes());
    p.extend((seq as u32).to_be_bytes());
    p.extend(seq.to_be_bytes());
    let icv = seal(sa, seq, &mut plain);
    p.extend(plain);
    p.extend(icv);
    p
}

fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

fn be32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(d.get(at..at + 4)?.try_into().ok()?))
}
