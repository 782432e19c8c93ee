//! Test traffic: UDP flows inside Ethernet, as the LAN behind a gateway
//! would send them, at the frame sizes throughput tests use.

#![warn(missing_docs)]

use crate::config::{Mac, Prefix};
use crate::io::pcap::CapturedPacket;
use crate::packet::{ethernet, ipv4, ipv6, udp};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Frame size of generated traffic, counted on the wire including the
/// 4-byte FCS (RFC 2544); the capture holds the frame without FCS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameSize {
    /// Every frame this size.
    Fixed(usize),
    /// 64/576/1500 in the ratio 7:4:1.
    Imix,
}

/// Sizes of one IMIX cycle (7 x 64, 4 x 576, 1 x 1500), interleaved.
pub const IMIX_CYCLE: [usize; 12] = [64, 576, 64, 576, 64, 1500, 64, 576, 64, 576, 64, 64];

impl std::str::FromStr for FrameSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("imix") {
            return Ok(FrameSize::Imix);
        }
        let n: usize = s
            .parse()
            .map_err(|_| format!("frame size {s:?}: want 64, 512, 1420, imix or a number"))?;
        if !(64..=9018).contains(&n) {
            return Err(format!("frame size {n} outside 64..=9018"));
        }
        Ok(FrameSize::Fixed(n))
    }
}

impl std::fmt::Display for FrameSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameSize::Fixed(n) => write!(f, "{n}"),
            FrameSize::Imix => write!(f, "imix"),
        }
    }
}

impl FrameSize {
    /// Wire size (with FCS) of packet `i`.
    pub fn wire_size(self, i: u64) -> usize {
        match self {
            FrameSize::Fixed(n) => n,
            FrameSize::Imix => IMIX_CYCLE[(i % IMIX_CYCLE.len() as u64) as usize],
        }
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenSpec {
    /// Number of packets.
    pub count: u64,
    /// Frame size.
    pub size: FrameSize,
    /// Distinct flows (destination address and source port vary per flow).
    pub flows: u32,
    /// Destination prefix (IPv4 or IPv6).
    pub dst: Prefix,
    /// Source prefix (same family as `dst`).
    pub src: Prefix,
    /// Destination MAC (the gateway's LAN port).
    pub dst_mac: Mac,
    /// Source MAC (the host).
    pub src_mac: Mac,
    /// UDP destination port.
    pub dst_port: u16,
    /// Gap between packet timestamps.
    pub gap: Duration,
}

impl Default for GenSpec {
    fn default() -> Self {
        GenSpec {
            count: 1000,
            size: FrameSize::Fixed(64),
            flows: 16,
            dst: Prefix {
                addr: IpAddr::V4(Ipv4Addr::new(10, 2, 0, 0)),
                len: 16,
            },
            src: Prefix {
                addr: IpAddr::V4(Ipv4Addr::new(10, 1, 0, 0)),
                len: 16,
            },
            // The embedded gateway A's LAN port, and a host behind it (the
            // defaults of `meshplane gen`).
            dst_mac: [0x02, 0, 0, 0, 0x0a, 0x01],
            src_mac: [0x02, 0, 0, 0, 0x0a, 0xaa],
            dst_port: 9,
            gap: Duration::from_micros(1),
        }
    }
}

/// Start of generated timestamps: 2026-01-01T00:00:00Z.
const T0: Duration = Duration::from_secs(1_767_225_600);

/// Host number `n` (wrapping) inside prefix `p`. IPv4 skips the network
/// and broadcast addresses where the prefix has them (not in a /31, RFC 3021,
/// nor a /32); IPv6 skips the subnet-router anycast address. Lengths beyond
/// the family's width count as a host route.
fn host_in(p: Prefix, n: u32) -> IpAddr {
    match p.addr {
        IpAddr::V4(a) => {
            let host_bits = 32u32.saturating_sub(u32::from(p.len));
            let off = match host_bits {
                0 | 1 => u64::from(n) % (1u64 << host_bits),
                _ => 1 + u64::from(n) % ((1u64 << host_bits) - 2),
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(off as u32)))
        }
        IpAddr::V6(a) => {
            let host_bits = 128u32.saturating_sub(u32::from(p.len));
            let off = match host_bits {
                0 => 0,
                _ => 1 + u128::from(n) % ((1u128 << host_bits.min(127)) - 1),
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(off)))
        }
    }
}

/// Builds packet `i` of `spec`: Ethernet / IP / UDP with valid checksums;
/// the UDP payload starts with the packet index and the flow id (8 bytes
/// each, big-endian), so a receiver can check order and loss.
pub fn build_packet(spec: &GenSpec, i: u64) -> Result<Vec<u8>, String> {
    let flow = (i % u64::from(spec.flows.max(1))) as u32;
    let dst = host_in(spec.dst, flow);
    let src = host_in(spec.src, 0);
    let v6 = dst.is_ipv6();
    if src.is_ipv6() != v6 {
        return Err("source and destination prefixes must be the same IP family".into());
    }
    let l3 = if v6 {
        ipv6::HEADER_LEN
    } else {
        ipv4::MIN_HEADER_LEN
    };
    let min_payload = 16;
    let len = (spec.size.wire_size(i).saturating_sub(4))
        .max(ethernet::HEADER_LEN + l3 + udp::HEADER_LEN + min_payload);
    let mut buf = vec![0u8; len];
    let payload_len = len - ethernet::HEADER_LEN - l3 - udp::HEADER_LEN;
    let et = if v6 {
        ethernet::ethertype::IPV6
    } else {
        ethernet::ethertype::IPV4
    };
    ethernet::write_header(&mut buf, spec.dst_mac, spec.src_mac, et).map_err(|e| e.to_string())?;
    let ip_off = ethernet::HEADER_LEN;
    let udp_off = ip_off + l3;
    {
        let pl = &mut buf[udp_off + udp::HEADER_LEN..];
        pl[..8].copy_from_slice(&i.to_be_bytes());
        pl[8..16].copy_from_slice(&u64::from(flow).to_be_bytes());
        for (k, b) in pl[16..].iter_mut().enumerate() {
            *b = (k as u8).wrapping_mul(31).wrapping_add(7);
        }
    }
    let sport = 1024 + (flow % 60000) as u16;
    udp::write_header(&mut buf[udp_off..], sport, spec.dst_port, payload_len)
        .map_err(|e| e.to_string())?;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            ipv4::write_header(
                &mut buf[ip_off..],
                s,
                d,
                ipv4::protocol::UDP,
                udp::HEADER_LEN + payload_len,
                64,
                i as u16,
                0,
            )
            .map_err(|e| e.to_string())?;
            let mut u =
                udp::UdpPacket::new_checked(&mut buf[udp_off..]).map_err(|e| e.to_string())?;
            u.fill_checksum_v4(s, d);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            ipv6::write_header(
                &mut buf[ip_off..],
                s,
                d,
                ipv4::protocol::UDP,
                udp::HEADER_LEN + payload_len,
                64,
                0,
            )
            .map_err(|e| e.to_string())?;
            let mut u =
                udp::UdpPacket::new_checked(&mut buf[udp_off..]).map_err(|e| e.to_string())?;
            u.fill_checksum_v6(s, d);
        }
        _ => unreachable!("families checked above"),
    }
    Ok(buf)
}

/// Timestamp of packet `i`: `T0 + i * gap`, or an error if that does not
/// fit a `Duration`.
fn timestamp(gap: Duration, i: u64) -> Result<Duration, String> {
    const NS_PER_S: u128 = 1_000_000_000;
    let ns = gap
        .as_nanos()
        .checked_mul(u128::from(i))
        .ok_or_else(|| format!("timestamp of packet {i} overflows (gap {gap:?})"))?;
    u64::try_from(ns / NS_PER_S)
        .ok()
        .and_then(|secs| T0.checked_add(Duration::new(secs, (ns % NS_PER_S) as u32)))
        .ok_or_else(|| format!("timestamp of packet {i} overflows (gap {gap:?})"))
}

/// The capture's packets one at a time, for writing captures of any
/// size with one packet in memory.
pub fn packets(spec: &GenSpec) -> impl Iterator<Item = Result<CapturedPacket, String>> + '_ {
    (0..spec.count).map(|i| {
        Ok(CapturedPacket {
            ts: timestamp(spec.gap, i)?,
            data: build_packet(spec, i)?,
        })
    })
}

/// Most packets [`generate`] holds in memory; larger captures are
/// written with [`packets`].
pub const MAX_IN_MEMORY: u64 = 10_000_000;

/// Generates the whole capture in memory (at most [`MAX_IN_MEMORY`]
/// packets).
pub fn generate(spec: &GenSpec) -> Result<Vec<CapturedPacket>, String> {
    if spec.count > MAX_IN_MEMORY {
        return Err(format!(
            "{} packets: at most {MAX_IN_MEMORY} are generated in memory (stream them with `packets`)",
            spec.count
        ));
    }
    packets(spec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(s: &str) -> Prefix {
        s.parse().expect("prefix")
    }

    #[test]
    fn host_routes_and_point_to_point_prefixes_stay_inside_the_prefix() {
        for flow in [0, 1, 2, 7, u32::MAX] {
            assert_eq!(
                host_in(prefix("10.2.3.4/32"), flow),
                "10.2.3.4".parse::<IpAddr>().unwrap()
            );
            let a = host_in(prefix("10.2.3.4/31"), flow);
            assert!(
                a == "10.2.3.4".parse::<IpAddr>().unwrap()
                    || a == "10.2.3.5".parse::<IpAddr>().unwrap(),
                "{a}"
            );
            assert_eq!(
                host_in(prefix("2001:db8::1/128"), flow),
                "2001:db8::1".parse::<IpAddr>().unwrap()
            );
        }
        // A /30 has two hosts: .1 and .2, never the network or broadcast.
        let hosts: Vec<_> = (0..4).map(|f| host_in(prefix("10.0.0.0/30"), f)).collect();
        assert_eq!(
            hosts,
            ["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.2"].map(|a| a.parse::<IpAddr>().unwrap())
        );
        // A /0 and an out-of-range length built by hand do not panic either.
        let _ = host_in(prefix("0.0.0.0/0"), u32::MAX);
        let _ = host_in(
            Prefix {
                addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                len: 40,
            },
            3,
        );
    }

    #[test]
    fn generates_to_a_single_host_with_valid_packets() {
        let spec = GenSpec {
            count: 4,
            dst: prefix("10.2.3.4/32"),
            src: prefix("10.1.0.1/32"),
            ..GenSpec::default()
        };
        for p in generate(&spec).expect("generates") {
            let l2 = ethernet::EthernetFrame::new_checked(&p.data[..]).expect("eth");
            let ip = ipv4::Ipv4Packet::new_checked(l2.payload()).expect("ipv4");
            assert_eq!(ip.dst_addr(), Ipv4Addr::new(10, 2, 3, 4));
            assert_eq!(ip.src_addr(), Ipv4Addr::new(10, 1, 0, 1));
            assert!(ip.verify_checksum());
        }
    }

    #[test]
    fn tiny_fixed_size_and_huge_gap_are_errors_or_clamped_not_panics() {
        let spec = GenSpec {
            count: 2,
            size: FrameSize::Fixed(0),
            ..GenSpec::default()
        };
        let pkts = generate(&spec).expect("clamped to the minimum frame");
        assert_eq!(pkts[0].data.len(), 14 + 20 + 8 + 16);
        let spec = GenSpec {
            count: 2,
            gap: Duration::MAX,
            ..GenSpec::default()
        };
        let e = generate(&spec).expect_err("overflowing timestamps");
        assert!(e.contains("timestamp of packet 1 overflows"), "{e}");
        assert_eq!(
            timestamp(Duration::from_micros(1), 5_000_000_000).expect("fits"),
            T0 + Duration::from_secs(5_000)
        );
    }
}
