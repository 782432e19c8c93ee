//! Traffic between the gateways' LAN hosts: constant-rate or Poisson
//! flows of fixed size or IMIX, with a DSCP, one way or as request/response
//! pings, as the Ethernet frames a host behind each gateway would send.
//!
//! The host behind gateway `gid` is `10.<gid/256>.<gid%256>.2` (the
//! gateway's LAN is `.0/24`, as the control plane routes it). Each UDP
//! payload starts with the flow id, the sequence number, the send time
//! (virtual ns) and the packet kind; the receiving host reads them from
//! the bytes the gateway delivered, and a ping's responder answers at
//! once with the same size.

use crate::gen::{FrameSize, IMIX_CYCLE};
use std::net::Ipv4Addr;

/// UDP port of emulated traffic (both ends).
pub const UDP_PORT: u16 = 9;

/// Ethernet + IPv4 + UDP.
const HEADERS: usize = 14 + 20 + 8;

/// Bytes of the payload the hosts read.
pub const PAYLOAD_LEN: usize = 17;

/// What a flow sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowKind {
    /// Requests answered by the destination's host (RTT).
    Ping,
    /// Packets one way only.
    Oneway,
}

impl std::str::FromStr for FlowKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ping" => Ok(FlowKind::Ping),
            "oneway" | "cbr" => Ok(FlowKind::Oneway),
            _ => Err(format!("flow kind {s:?}: want ping or oneway")),
        }
    }
}

/// When a flow's packets leave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrivals {
    /// At a constant rate.
    #[default]
    Cbr,
    /// As a Poisson process of that mean rate (exponential gaps).
    Poisson,
}

impl Arrivals {
    /// The gap before the next packet of a flow at `rate_pps`: the period,
    /// or an exponential sample drawn from `rng` (advanced), in ns (at
    /// least 1).
    pub fn gap_ns(self, rate_pps: f64, rng: &mut u64) -> u64 {
        let mean = 1e9 / rate_pps;
        let ns = match self {
            Arrivals::Cbr => mean,
            Arrivals::Poisson => {
                let z = super::next_random(rng);
                // Uniform in [0, 1) from 53 bits; 1 - u is in (0, 1].
                let u = (z >> 11) as f64 / (1u64 << 53) as f64;
                -(1.0 - u).ln() * mean
            }
        };
        (ns as u64).max(1)
    }
}

/// One flow between two gateways (indices into the emulated gateways).
#[derive(Clone, Copy, Debug)]
pub struct FlowSpec {
    /// Source gateway (index among the emulated ones).
    pub src: u32,
    /// Destination gateway.
    pub dst: u32,
    /// Packets per second.
    pub rate_pps: f64,
    /// Frame size on the LAN (with FCS, as `meshplane gen` counts it).
    pub size: FrameSize,
    /// Ping or one way.
    pub kind: FlowKind,
    /// Constant rate or Poisson.
    pub arrivals: Arrivals,
    /// DSCP of its packets (0..=63; a ping's reply carries the same).
    pub dscp: u8,
}

/// Packet kinds in the payload.
pub mod kind {
    /// One-way data.
    pub const DATA: u8 = 0;
    /// A ping request.
    pub const REQUEST: u8 = 1;
    /// A ping response.
    pub const REPLY: u8 = 2;
}

/// What a host reads from a packet it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payload {
    /// Flow id.
    pub flow: u32,
    /// Sequence number.
    pub seq: u32,
    /// When the packet (for a reply: its request) was sent, virtual ns.
    pub sent_ns: u64,
    /// [`kind`].
    pub kind: u8,
}

/// The LAN host address behind gateway `gid` (engine numbering).
pub fn host_addr(gid: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, ((gid >> 8) & 0xff) as u8, (gid & 0xff) as u8, 2)
}

/// The frame length (without FCS) of packet `seq` of a flow of `size`.
pub fn frame_len(size: FrameSize, seq: u32) -> usize {
    let on_wire = match size {
        FrameSize::Fixed(n) => n,
        FrameSize::Imix => IMIX_CYCLE[seq as usize % IMIX_CYCLE.len()],
    };
    (on_wire.saturating_sub(4)).max(HEADERS + PAYLOAD_LEN)
}

/// The longest frame (without FCS) a flow of `size` sends.
pub fn max_frame_len(size: FrameSize) -> usize {
    match size {
        FrameSize::Fixed(_) => frame_len(size, 0),
        FrameSize::Imix => (0..IMIX_CYCLE.len() as u32)
            .map(|seq| frame_len(size, seq))
            .max()
            .unwrap_or(0),
    }
}

/// The RFC 1071 checksum of an IPv4 header.
fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in h.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes into `buf` the frame of `len` bytes a host sends: Ethernet from
/// `src_mac` to `dst_mac`, IPv4 from `src` to `dst` (TTL 64, DSCP `dscp`),
/// UDP, payload.
#[allow(clippy::too_many_arguments)]
pub fn build(
    buf: &mut Vec<u8>,
    len: usize,
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    dscp: u8,
    p: &Payload,
) {
    let len = len.max(HEADERS + PAYLOAD_LEN);
    buf.clear();
    buf.resize(len, 0);
    buf[..6].copy_from_slice(&dst_mac);
    buf[6..12].copy_from_slice(&src_mac);
    buf[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (len - 14) as u16;
    let ip = &mut buf[14..34];
    ip[0] = 0x45;
    ip[1] = (dscp & 0x3f) << 2;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[4..6].copy_from_slice(&(p.seq as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = ipv4_checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let udp = &mut buf[34..42];
    udp[0..2].copy_from_slice(&UDP_PORT.to_be_bytes());
    udp[2..4].copy_from_slice(&UDP_PORT.to_be_bytes());
    udp[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
    let pl = &mut buf[42..42 + PAYLOAD_LEN];
    pl[0..4].copy_from_slice(&p.flow.to_be_bytes());
    pl[4..8].copy_from_slice(&p.seq.to_be_bytes());
    pl[8..16].copy_from_slice(&p.sent_ns.to_be_bytes());
    pl[16] = p.kind;
}

/// Reads what a host receives: an untagged IPv4 UDP frame to `me` on
/// [`UDP_PORT`]; the sender's address and the payload. None for anything
/// else.
pub fn parse(frame: &[u8], me: Ipv4Addr) -> Option<(Ipv4Addr, Payload)> {
    if frame.get(12..14)? != 0x0800u16.to_be_bytes() {
        return None;
    }
    let ip = frame.get(14..)?;
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    if ip.get(9)? != &17 || ip.get(16..20)? != me.octets() {
        return None;
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let udp = ip.get(ihl..ihl + 8)?;
    if udp[2..4] != UDP_PORT.to_be_bytes() {
        return None;
    }
    let pl = ip.get(ihl + 8..ihl + 8 + PAYLOAD_LEN)?;
    let u32_at = |i: usize| u32::from_be_bytes([pl[i], pl[i + 1], pl[i + 2], pl[i + 3]]);
    let mut sent = [0u8; 8];
    sent.copy_from_slice(&pl[8..16]);
    Some((
        src,
        Payload {
            flow: u32_at(0),
            seq: u32_at(4),
            sent_ns: u64::from_be_bytes(sent),
            kind: pl[16],
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_frame_reads_back_and_has_a_valid_header_checksum() {
        let p = Payload {
            flow: 7,
            seq: 123_456,
            sent_ns: 9_876_543_210,
            kind: kind::REQUEST,
        };
        let mut buf = Vec::new();
        let (a, b) = (host_addr(3), host_addr(300));
        build(
            &mut buf,
            frame_len(FrameSize::Fixed(64), 0),
            [2; 6],
            [4; 6],
            a,
            b,
            46,
            &p,
        );
        assert_eq!(buf.len(), 60);
        assert_eq!(buf[15], 46 << 2, "DSCP EF");
        assert_eq!(ipv4_checksum(&buf[14..34]), 0);
        assert_eq!(parse(&buf, b), Some((a, p)));
        assert_eq!(parse(&buf, a), None, "not to this host");
    }

    #[test]
    fn poisson_gaps_average_the_period_and_vary_as_exponential_ones_do() {
        let mut rng = 7;
        let n = 20_000;
        let gaps: Vec<f64> = (0..n)
            .map(|_| Arrivals::Poisson.gap_ns(1000.0, &mut rng) as f64)
            .collect();
        let mean = gaps.iter().sum::<f64>() / n as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / n as f64;
        // Mean 1 ms, standard deviation equal to the mean (within 3 %).
        assert!((mean - 1e6).abs() < 3e4, "mean {mean}");
        assert!((var.sqrt() - 1e6).abs() < 3e4, "sd {}", var.sqrt());
        let mut r = 0;
        assert_eq!(Arrivals::Cbr.gap_ns(1000.0, &mut r), 1_000_000);
        assert_eq!(r, 0, "a constant rate draws nothing");
    }

    #[test]
    fn imix_follows_the_cycle_of_meshplane_gen() {
        let lens: Vec<usize> = (0..12).map(|s| frame_len(FrameSize::Imix, s)).collect();
        assert_eq!(lens.iter().filter(|&&l| l == 60).count(), 7);
        assert_eq!(lens.iter().filter(|&&l| l == 572).count(), 4);
        assert_eq!(lens.iter().filter(|&&l| l == 1496).count(), 1);
    }
}
