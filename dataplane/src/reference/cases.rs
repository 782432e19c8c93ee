//! Structure-aware test traffic for the differential check: batches of
//! frames built from a plain byte string (what a fuzzer or a property
//! test hands in), so that most frames are nearly right for the node
//! under test: its own MACs, its labels, its FEC and delivery prefixes,
//! ESP under its inbound SAs with plausible sequence numbers, and then
//! one field wrong, or several kinds mixed in one batch.

use super::tunnel_packet;
use crate::config::{LfibAction, Mac, NodeConfig, Prefix, SaConfig, SaDir};
use crate::frame::{PortId, BURST};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Reads choices from a byte string; past its end every choice is 0.
pub struct Choices<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Choices<'a> {
    /// Choices drawn from `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Choices { bytes, at: 0 }
    }

    /// True once every byte has been used.
    pub fn is_empty(&self) -> bool {
        self.at >= self.bytes.len()
    }

    /// The next byte.
    pub fn u8(&mut self) -> u8 {
        let b = self.bytes.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    /// The next two bytes.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// The next four bytes.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::from(self.u16()) % n
    }

    /// True about one time in `n`.
    pub fn one_in(&mut self, n: u8) -> bool {
        self.u8().is_multiple_of(n.max(1))
    }

    /// One of `items` (the first when there is none to choose).
    pub fn pick<T: Copy>(&mut self, items: &[T], or: T) -> T {
        if items.is_empty() {
            return or;
        }
        items[self.below(items.len())]
    }
}

/// One batch to send: the port it arrives on, and each frame with the
/// room of its buffer (None: the backend's usual buffer).
#[derive(Clone, Debug)]
pub struct BatchCase {
    /// The receiving port.
    pub rx_port: PortId,
    /// The frames, and for some a tight buffer size (data room).
    pub frames: Vec<(Vec<u8>, Option<usize>)>,
}

/// Builds traffic for one node, remembering the sequence numbers it has
/// used on each inbound SA so that later frames can be new, late or
/// replayed.
pub struct Traffic {
    cfg: NodeConfig,
    inbound: Vec<SaConfig>,
    sent: Vec<u64>,
    history: Vec<Vec<u8>>,
}

/// A host MAC behind a port (an individual, locally administered address).
const HOST_MAC: Mac = [0x02, 0, 0, 0, 0xee, 0x01];

impl Traffic {
    /// Traffic for the node `cfg`.
    pub fn new(cfg: &NodeConfig) -> Traffic {
        let inbound: Vec<SaConfig> = cfg
            .sa
            .iter()
            .filter(|s| s.dir == SaDir::In)
            .cloned()
            .collect();
        let sent = vec![0; inbound.len()];
        Traffic {
            cfg: cfg.clone(),
            inbound,
            sent,
            history: Vec::new(),
        }
    }

    /// The batches `c` describes (at least one, each of 1..=32 frames).
    pub fn batches(&mut self, c: &mut Choices<'_>) -> Vec<BatchCase> {
        let mut out = Vec::new();
        loop {
            out.push(self.batch(c));
            if c.is_empty() || out.len() >= 8 {
                return out;
            }
        }
    }

    fn batch(&mut self, c: &mut Choices<'_>) -> BatchCase {
        let ports = self.cfg.ports.len().max(1);
        let rx_port = if c.one_in(32) {
            // Now and then a port the node does not have.
            (ports + c.below(2)) as PortId
        } else {
            c.below(ports) as PortId
        };
        let n = 1 + c.below(BURST);
        let mut frames = Vec::with_capacity(n);
        // A few kinds of frame repeated, so runs of one kind are common.
        let mut kinds: Vec<Vec<u8>> = Vec::new();
        for _ in 0..n {
            if c.is_empty() && !frames.is_empty() {
                break;
            }
            let f = if !kinds.is_empty() && c.one_in(2) {
                let k = c.below(kinds.len());
                kinds[k].clone()
            } else {
                let f = self.frame(c, rx_port);
                kinds.push(f.clone());
                f
            };
            let room = c.one_in(12).then(|| f.len() + c.below(64));
            frames.push((f, room));
        }
        BatchCase { rx_port, frames }
    }

    fn port_mac(&self, port: PortId) -> Mac {
        self.cfg
            .ports
            .get(usize::from(port))
            .map_or([0x02, 0, 0, 0, 0, 0x99], |p| p.mac)
    }

    /// One frame for port `rx`.
    fn frame(&mut self, c: &mut Choices<'_>, rx: PortId) -> Vec<u8> {
        let body = match c.below(8) {
            0 | 1 => {
                let (et, ip) = self.ip_packet(c);
                (et, ip)
            }
            2..=4 => (0x8847, self.labelled(c)),
            5 => (0x0800, self.tunnel(c)),
            6 => {
                // A replayed frame of an earlier batch, as it was.
                if let Some(h) = self.history.get(c.below(self.history.len().max(1))) {
                    let mut h = h.clone();
                    // Mostly re-addressed to this batch's port.
                    if h.len() >= 6 && !c.one_in(4) {
                        h[..6].copy_from_slice(&self.port_mac(rx));
                    }
                    return h;
                }
                (0x0800, self.tunnel(c))
            }
            _ if c.one_in(3) => (0x0806, self.arp(c)),
            _ => {
                let n = c.below(80);
                let any = c.u16();
                let et = c.pick(&[0x0800u16, 0x86dd, 0x8847, 0x0806, 0x8100, any], 0);
                (et, (0..n).map(|_| c.u8()).collect())
            }
        };
        let mut f = self.ethernet(c, rx, body.0);
        f.extend(body.1);
        self.mutate(c, &mut f);
        if self.history.len() < 64 {
            self.history.push(f.clone());
        } else {
            let i = c.below(64);
            self.history[i] = f.clone();
        }
        f
    }

    /// An ARP request or reply body, mostly for one of the ports' addresses.
    fn arp(&self, c: &mut Choices<'_>) -> Vec<u8> {
        let ports: Vec<Ipv4Addr> = self
            .cfg
            .ports
            .iter()
            .filter_map(|p| p.address.map(|a| a.0))
            .collect();
        let target = if c.one_in(4) {
            Ipv4Addr::from(c.u32())
        } else {
            c.pick(&ports, Ipv4Addr::new(10, 1, 0, 1))
        };
        let mut a = vec![0, 1, 8, 0, 6, 4, 0, c.pick(&[1u8, 1, 2, 3], 1)];
        a.extend(HOST_MAC);
        a.extend([10, 1, 0, 9]);
        a.extend([0; 6]);
        a.extend(target.octets());
        a
    }

    /// An Ethernet header (and perhaps VLAN tags) for ethertype `et`.
    fn ethernet(&self, c: &mut Choices<'_>, rx: PortId, et: u16) -> Vec<u8> {
        let dst = match c.below(32) {
            0 => [0xff; 6],
            1 => self.port_mac(c.below(self.cfg.ports.len() + 1) as PortId),
            2 => [0x01, 0x00, 0x5e, 0, 0, 1],
            _ => self.port_mac(rx),
        };
        let src = match c.below(48) {
            0 => [0xff; 6],
            1 => [0; 6],
            2 => [0x03, 0, 0, 0, 0, 1],
            _ => HOST_MAC,
        };
        let mut f = Vec::with_capacity(1600);
        f.extend(dst);
        f.extend(src);
        for _ in 0..c.pick(&[0usize, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3], 0) {
            f.extend(c.pick(&[0x8100u16, 0x88a8], 0x8100).to_be_bytes());
            f.extend((c.u16() & 0x0fff | 0x0100).to_be_bytes());
        }
        f.extend(et.to_be_bytes());
        f
    }

    /// An IP packet (ethertype, bytes), mostly well formed, toward the
    /// node's prefixes.
    fn ip_packet(&self, c: &mut Choices<'_>) -> (u16, Vec<u8>) {
        let prefixes: Vec<Prefix> = self
            .cfg
            .fec
            .iter()
            .map(|f| f.prefix)
            .chain(self.cfg.deliver.iter().map(|d| d.prefix))
            .collect();
        let v6 = c.one_in(3);
        // Now and then to one of the node's own addresses (or loopback,
        // where an LSP ping ends): a packet for the node itself.
        let own: Vec<Ipv4Addr> = self
            .cfg
            .node_address()
            .into_iter()
            .chain(self.cfg.ports.iter().filter_map(|p| p.address.map(|a| a.0)))
            .chain(self.cfg.sa.iter().map(|s| s.tunnel_dst))
            .chain([Ipv4Addr::new(127, 0, 0, 1)])
            .collect();
        let dst = if !v6 && c.one_in(6) {
            IpAddr::V4(c.pick(&own, Ipv4Addr::LOCALHOST))
        } else {
            address(c, &prefixes, v6)
        };
        let src = address(c, &prefixes, v6);
        let payload = c.pick(&[0usize, 8, 18, 26, 100, 512, 1400, 1472, 1473, 1600], 26);
        let ttl = c.pick(&[64u8, 64, 64, 64, 0, 1, 2, 255], 64);
        let ip = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => ipv4(c, s, d, ttl, payload),
            (IpAddr::V6(s), IpAddr::V6(d)) => ipv6(s, d, ttl, payload, c.u8()),
            _ => ipv4(
                c,
                Ipv4Addr::new(10, 1, 0, 1),
                Ipv4Addr::new(10, 2, 0, 1),
                ttl,
                payload,
            ),
        };
        let et = match (c.below(16), ip[0] >> 4) {
            (0, 4) => 0x86dd,
            (0, _) => 0x0800,
            (_, 4) => 0x0800,
            _ => 0x86dd,
        };
        (et, ip)
    }

    /// A label stack over an IP or tunnel packet, mostly with the node's
    /// labels.
    fn labelled(&mut self, c: &mut Choices<'_>) -> Vec<u8> {
        let labels: Vec<u32> = self.cfg.lfib.iter().map(|l| l.label).collect();
        let local: Vec<u32> = self
            .cfg
            .lfib
            .iter()
            .filter(|l| l.action == LfibAction::Pop && l.port.is_none())
            .map(|l| l.label)
            .collect();
        let depth = c.pick(&[1usize, 1, 1, 1, 2, 3], 1);
        let mut stack = Vec::new();
        for i in 0..depth {
            let label = match c.below(8) {
                0 => c.u32() & 0xf_ffff,
                1 => c.below(16) as u32,
                2 if !local.is_empty() => c.pick(&local, 0),
                _ => {
                    let any = c.u32() & 0xf_ffff;
                    c.pick(&labels, any)
                }
            };
            let tc = u32::from(c.u8() % 8);
            let bos = if c.one_in(10) {
                c.one_in(2)
            } else {
                i + 1 == depth
            };
            let ttl = c.pick(&[64u8, 64, 63, 2, 1, 0, 255, 10], 64);
            let e = (label << 12) | (tc << 9) | (u32::from(bos) << 8) | u32::from(ttl);
            // Now and then an entry made of edge values, all zeros first.
            let raw = c.u32();
            let e = match c.below(8) {
                0 => c.pick(&[0, u32::MAX, 0x100, 0xff, raw], 0),
                _ => e,
            };
            stack.extend(e.to_be_bytes());
        }
        let below = match c.below(4) {
            0 | 1 => self.tunnel(c),
            2 => self.ip_packet(c).1,
            _ => (0..c.below(40)).map(|_| c.u8()).collect(),
        };
        stack.extend(below);
        stack
    }

    /// A tunnel packet (outer IPv4 + ESP) under one of the node's inbound
    /// SAs, mostly valid, with a sequence number that is mostly new.
    fn tunnel(&mut self, c: &mut Choices<'_>) -> Vec<u8> {
        if self.inbound.is_empty() {
            return self.ip_packet(c).1;
        }
        let i = c.below(self.inbound.len());
        let last = self.sent[i];
        let w = super::WINDOW;
        let seq = match c.below(12) {
            1 => last,                                               // replay of the last
            2 => last.saturating_sub(1 + c.below(8) as u64),         // late, inside
            3 => last.saturating_sub(w + c.below(8) as u64),         // too old
            4 => last + w + c.below(4) as u64,                       // a jump
            5 if self.inbound[i].esn => last.max((1 << 32) - 2) + 1, // across 2^32
            6 => 0,
            _ => last + 1 + c.below(3) as u64,
        };
        self.sent[i] = self.sent[i].max(seq);
        let (et, mut inner) = self.ip_packet(c);
        let mut nh = if et == 0x86dd && inner[0] >> 4 == 6 {
            41
        } else {
            4
        };
        match c.below(16) {
            1 => nh = c.pick(&[4u8, 41, 59, 17, 0], 4),
            2 => inner.truncate(c.below(inner.len() + 1)),
            _ => {}
        }
        let sa = &self.inbound[i];
        let mut p = tunnel_packet(sa, seq, &inner, nh);
        match c.below(24) {
            5 => {
                // A forged ICV.
                let n = p.len();
                p[n - 1 - c.below(16)] ^= 1 << (c.u8() % 8);
            }
            1 => {
                // Another SPI.
                p[20 + 3] ^= 1 + c.u8() % 255;
            }
            2 => {
                // A forged outer checksum.
                p[10] ^= 0x10;
            }
            3 => {
                // Another endpoint.
                p[19] ^= 1;
                fix_ipv4_checksum(&mut p);
            }
            4 => {
                // A fragment.
                p[6] = 0x20;
                fix_ipv4_checksum(&mut p);
            }
            _ => {}
        }
        // Now and then in UDP (RFC 3948), as a partner sends it, or
        // something else on port 4500 (IKE's zero marker, a keepalive).
        if c.one_in(4) {
            p = in_udp(c, &p);
        }
        p
    }

    /// Now and then one byte changed, the frame cut short or lengthened.
    fn mutate(&self, c: &mut Choices<'_>, f: &mut Vec<u8>) {
        match c.below(24) {
            4 if !f.is_empty() => {
                let at = c.below(f.len());
                f[at] ^= 1 << (c.u8() % 8);
            }
            1 => f.truncate(c.below(f.len() + 1)),
            2 => f.extend((0..c.below(24)).map(|_| c.u8())),
            3 if !f.is_empty() => {
                let at = c.below(f.len());
                f[at] = c.u8();
            }
            _ => {}
        }
    }
}

/// An address inside one of `prefixes` (of the family), or now and then
/// any address or a martian one.
fn address(c: &mut Choices<'_>, prefixes: &[Prefix], v6: bool) -> IpAddr {
    let fam: Vec<Prefix> = prefixes
        .iter()
        .copied()
        .filter(|p| p.addr.is_ipv6() == v6)
        .collect();
    match c.below(10) {
        0 => {
            if v6 {
                IpAddr::V6(c.pick(
                    &[
                        "::".parse().unwrap_or(Ipv6Addr::UNSPECIFIED),
                        Ipv6Addr::LOCALHOST,
                        "ff02::1".parse().unwrap_or(Ipv6Addr::UNSPECIFIED),
                        "fe80::1".parse().unwrap_or(Ipv6Addr::UNSPECIFIED),
                        "::ffff:10.2.0.1".parse().unwrap_or(Ipv6Addr::UNSPECIFIED),
                    ],
                    Ipv6Addr::LOCALHOST,
                ))
            } else {
                IpAddr::V4(c.pick(
                    &[
                        Ipv4Addr::UNSPECIFIED,
                        Ipv4Addr::LOCALHOST,
                        Ipv4Addr::BROADCAST,
                        Ipv4Addr::new(224, 0, 0, 1),
                        Ipv4Addr::new(169, 254, 0, 1),
                        Ipv4Addr::new(240, 0, 0, 1),
                        Ipv4Addr::new(0, 1, 2, 3),
                    ],
                    Ipv4Addr::LOCALHOST,
                ))
            }
        }
        1 => {
            if v6 {
                IpAddr::V6(Ipv6Addr::from(
                    u128::from(c.u32()) << 96 | u128::from(c.u32()),
                ))
            } else {
                IpAddr::V4(Ipv4Addr::from(c.u32()))
            }
        }
        _ => {
            let Some(p) = fam.get(c.below(fam.len())) else {
                return if v6 {
                    IpAddr::V6(Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 1))
                } else {
                    IpAddr::V4(Ipv4Addr::new(10, 2, 0, 1))
                };
            };
            let host = u128::from(c.u16()) + 1;
            match p.addr {
                IpAddr::V4(a) => {
                    let bits = 32 - u32::from(p.len.min(32));
                    let mask = if bits == 0 {
                        0
                    } else {
                        (1u32 << bits.min(31)) - 1
                    };
                    IpAddr::V4(Ipv4Addr::from(u32::from(a) | (host as u32 & mask)))
                }
                IpAddr::V6(a) => {
                    let bits = 128 - u32::from(p.len.min(128));
                    let mask = if bits == 0 {
                        0
                    } else {
                        (1u128 << bits.min(127)) - 1
                    };
                    IpAddr::V6(Ipv6Addr::from(u128::from(a) | (host & mask)))
                }
            }
        }
    }
}

/// The tunnel packet `p` (outer IPv4 + ESP) as ESP in UDP (RFC 3948):
/// a UDP header to port 4500 between the two, mostly right; now and then
/// the ESP replaced by IKE's zero marker or a one-byte keepalive, another
/// port, or a bad outer checksum.
fn in_udp(c: &mut Choices<'_>, p: &[u8]) -> Vec<u8> {
    if p.len() < 20 || p[0] != 0x45 {
        return p.to_vec();
    }
    let mut esp = p[20..].to_vec();
    match c.below(8) {
        1 => esp = [0, 0, 0, 0].into_iter().chain(esp).collect(),
        2 => esp = vec![0xff],
        _ => {}
    }
    let dport: u16 = if c.one_in(8) { 500 } else { 4500 };
    let mut q = p[..20].to_vec();
    q[9] = 17;
    q[2..4].copy_from_slice(&((20 + 8 + esp.len()) as u16).to_be_bytes());
    q.extend(4500u16.to_be_bytes());
    q.extend(dport.to_be_bytes());
    q.extend(((8 + esp.len()) as u16).to_be_bytes());
    q.extend([0, 0]);
    q.extend(esp);
    fix_ipv4_checksum(&mut q);
    if c.one_in(10) {
        q[10] ^= 0x04;
    }
    q
}

/// An IPv4/UDP packet, sometimes with options, a bad checksum or fragment
/// flags.
fn ipv4(c: &mut Choices<'_>, src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, payload: usize) -> Vec<u8> {
    let opts = if c.one_in(8) { 4 * (1 + c.below(2)) } else { 0 };
    let ihl = 20 + opts;
    let total = ihl + 8 + payload;
    let mut p = vec![0u8; total];
    p[0] = 0x40 | (ihl / 4) as u8;
    p[1] = c.u8() & 0xfc;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&c.u16().to_be_bytes());
    if c.one_in(10) {
        p[6] = 0x20;
    } else if c.one_in(4) {
        p[6] = 0x40;
    }
    p[8] = ttl;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    for b in &mut p[20..ihl] {
        *b = 1; // NOP options
    }
    p[ihl..ihl + 2].copy_from_slice(&4000u16.to_be_bytes());
    // Now and then to the MPLS echo port (an LSP ping probe).
    let port = if c.one_in(6) { 3503u16 } else { 9 };
    p[ihl + 2..ihl + 4].copy_from_slice(&port.to_be_bytes());
    p[ihl + 4..ihl + 6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    for (i, b) in p[ihl + 8..].iter_mut().enumerate() {
        *b = i as u8;
    }
    fix_ipv4_checksum(&mut p);
    if c.one_in(12) {
        p[10] ^= 0x01;
    }
    p
}

/// An IPv6/UDP packet.
fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, payload: usize, tc: u8) -> Vec<u8> {
    let mut p = vec![0u8; 40 + 8 + payload];
    p[0] = 0x60 | (tc >> 4);
    p[1] = tc << 4;
    p[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    p[6] = 17;
    p[7] = hop_limit;
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    p[40..42].copy_from_slice(&4000u16.to_be_bytes());
    p[42..44].copy_from_slice(&9u16.to_be_bytes());
    p[44..46].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    p
}

/// Recomputes the checksum of the IPv4 header at the start of `p`.
fn fix_ipv4_checksum(p: &mut [u8]) {
    let ihl = usize::from(p[0] & 0x0f) * 4;
    if p.len() < ihl || ihl < 20 {
        return;
    }
    p[10] = 0;
    p[11] = 0;
    let c = crate::packet::checksum::internet_checksum(&p[..ihl]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
}
