//! ICMP errors for packets a gateway drops at its LAN edge (RFC 792,
//! RFC 1812 §4.3.2): time exceeded for a TTL that ran out, and
//! destination unreachable / fragmentation needed, with the usable MTU,
//! for a packet with DF too large for the tunnel (RFC 1191); for IPv6
//! (RFC 4443), time exceeded for a hop limit that ran out and packet too
//! big with the MTU (RFC 8201). The worker hands the dropped packet over
//! with its reason; this builds the answer, or says why none is due.

use super::Ignored;
use crate::drop_reason::DropReason;
use crate::packet::checksum::internet_checksum;
use crate::packet::icmp::msg_type;
use crate::packet::ipv4::{protocol, Ipv4Packet};
use crate::packet::ipv6::Ipv6Packet;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Largest ICMPv6 error datagram: the IPv6 minimum MTU (RFC 4443 §2.4 (c)).
pub const MAX_ERROR_LEN_V6: usize = 1280;

/// ICMPv6 message types the node sends (RFC 4443 §3).
pub mod icmp6_type {
    /// Packet too big.
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time exceeded (code 0: hop limit exceeded in transit).
    pub const TIME_EXCEEDED: u8 = 3;
}

/// The ICMPv6 next-header value.
pub const NEXT_HEADER_ICMPV6: u8 = 58;

/// Largest ICMP error datagram (RFC 1812 §4.3.2.3: at most 576 bytes).
pub const MAX_ERROR_LEN: usize = 576;

/// Code of "fragmentation needed and DF set" (destination unreachable).
pub const FRAG_NEEDED: u8 = 4;

/// TTL of the errors the node sends.
pub const ERROR_TTL: u8 = 64;

/// True for an ICMP type that is itself an error (no error answers one).
fn is_icmp_error(t: u8) -> bool {
    matches!(t, 3 | 4 | 5 | 11 | 12)
}

/// True for an address no error is sent to (RFC 1812 §4.3.2.7).
fn not_unicast(a: Ipv4Addr) -> bool {
    a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || a.is_broadcast()
        || a.octets()[0] >= 240
        || a.octets()[0] == 0
}

/// The ICMP error (an IPv4 packet from `from` to the dropped packet's
/// source) for `packet` (from its IP header), dropped for `reason` where
/// the tunnel takes packets of at most `mtu` bytes. A packet dropped as
/// too big has had its TTL decremented already (the stages forward before
/// they measure): the quote puts it back as it arrived.
pub fn answer(
    packet: &[u8],
    reason: DropReason,
    from: Ipv4Addr,
    mtu: usize,
) -> Result<Vec<u8>, Ignored> {
    let ip = Ipv4Packet::new_checked(packet)?;
    if ip.version() != 4 {
        return Err(Ignored::Unsupported);
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if not_unicast(src) || dst.is_broadcast() || dst.is_multicast() {
        return Err(Ignored::BadSource);
    }
    // Only the first fragment of a datagram is answered.
    if ip.frag_offset() != 0 {
        return Err(Ignored::Fragment);
    }
    if ip.protocol() == protocol::ICMP {
        match ip.payload().first() {
            Some(&t) if is_icmp_error(t) => return Err(Ignored::Unsupported),
            None => return Err(Ignored::Truncated),
            _ => {}
        }
    }
    let (kind, code, rest) = match reason {
        DropReason::TtlExpired => (msg_type::TIME_EXCEEDED, 0, [0u8; 4]),
        // A router fragments what DF allows; this one does not, so only
        // packets with DF learn the MTU (what PMTUD needs).
        DropReason::TooBig if ip.dont_frag() => {
            let m = u16::try_from(mtu).unwrap_or(u16::MAX).to_be_bytes();
            (msg_type::DEST_UNREACHABLE, FRAG_NEEDED, [0, 0, m[0], m[1]])
        }
        DropReason::TooBig => return Err(Ignored::Unsupported),
        _ => return Err(Ignored::Unsupported),
    };
    // As much of the datagram as fits in 576 bytes (RFC 1812 §4.3.2.3).
    let quoted = packet
        .len()
        .min(usize::from(ip.total_len()))
        .min(MAX_ERROR_LEN - 28);
    let mut icmp = Vec::with_capacity(8 + quoted);
    icmp.extend([kind, code, 0, 0]);
    icmp.extend(rest);
    icmp.extend_from_slice(&packet[..quoted]);
    if reason == DropReason::TooBig {
        // The stages decrement the TTL before they test the size: quote
        // the header as it arrived (its TTL back, its checksum again).
        let ihl = ip.header_len();
        if let Some(h) = icmp.get_mut(8..8 + ihl) {
            h[8] = h[8].saturating_add(1);
            h[10..12].copy_from_slice(&[0, 0]);
            let c = internet_checksum(h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
        }
    }
    let c = internet_checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = 20 + icmp.len();
    let mut out = Vec::with_capacity(total);
    out.extend([0x45, 0xc0]);
    out.extend((total as u16).to_be_bytes());
    out.extend([0, 0, 0, 0, ERROR_TTL, protocol::ICMP, 0, 0]);
    out.extend(from.octets());
    out.extend(src.octets());
    let c = internet_checksum(&out[..20]);
    out[10..12].copy_from_slice(&c.to_be_bytes());
    out.extend(icmp);
    Ok(out)
}

/// True for an IPv6 source no error is sent to (RFC 4443 §2.4 (e)): one
/// that does not name a single node.
fn not_unicast_v6(a: Ipv6Addr) -> bool {
    a.is_unspecified() || a.is_loopback() || a.is_multicast()
}

/// The ICMPv6 error (an IPv6 packet from `from` to the dropped packet's
/// source) for `packet` (from its IPv6 header), dropped for `reason` where
/// the tunnel takes packets of at most `mtu` bytes. As for IPv4, a packet
/// dropped as too big has had its hop limit decremented already; the quote
/// puts it back.
pub fn answer_v6(
    packet: &[u8],
    reason: DropReason,
    from: Ipv6Addr,
    mtu: usize,
) -> Result<Vec<u8>, Ignored> {
    let ip = Ipv6Packet::new_checked(packet)?;
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if not_unicast_v6(src) {
        return Err(Ignored::BadSource);
    }
    // No error about an ICMPv6 error (types below 128).
    if ip.next_header() == NEXT_HEADER_ICMPV6 {
        match packet.get(crate::packet::ipv6::HEADER_LEN) {
            Some(&t) if t < 128 => return Err(Ignored::Unsupported),
            None => return Err(Ignored::Truncated),
            _ => {}
        }
    }
    let (kind, rest) = match reason {
        // Not about a packet to a multicast address, except packet too
        // big (RFC 4443 §2.4 (e.2), (e.3)).
        DropReason::TtlExpired if dst.is_multicast() => return Err(Ignored::Broadcast),
        DropReason::TtlExpired => (icmp6_type::TIME_EXCEEDED, [0u8; 4]),
        DropReason::TooBig => (
            icmp6_type::PACKET_TOO_BIG,
            u32::try_from(mtu).unwrap_or(u32::MAX).to_be_bytes(),
        ),
        _ => return Err(Ignored::Unsupported),
    };
    // As much of the packet as fits in the minimum MTU (RFC 4443 §2.4 (c)).
    let hdr = crate::packet::ipv6::HEADER_LEN;
    let own = hdr + usize::from(ip.payload_len());
    let quoted = packet.len().min(own).min(MAX_ERROR_LEN_V6 - hdr - 8);
    let mut icmp = Vec::with_capacity(8 + quoted);
    icmp.extend([kind, 0, 0, 0]);
    icmp.extend(rest);
    icmp.extend_from_slice(&packet[..quoted]);
    if reason == DropReason::TooBig {
        // Quote the header as it arrived: its hop limit back.
        if let Some(h) = icmp.get_mut(8 + 7) {
            *h = h.saturating_add(1);
        }
    }
    let len = icmp.len() as u32;
    let mut pseudo = Vec::with_capacity(40 + icmp.len());
    pseudo.extend(from.octets());
    pseudo.extend(src.octets());
    pseudo.extend(len.to_be_bytes());
    pseudo.extend([0, 0, 0, NEXT_HEADER_ICMPV6]);
    pseudo.extend_from_slice(&icmp);
    let c = internet_checksum(&pseudo);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut out = Vec::with_capacity(hdr + icmp.len());
    out.extend([0x60, 0, 0, 0]);
    out.extend((icmp.len() as u16).to_be_bytes());
    out.extend([NEXT_HEADER_ICMPV6, ERROR_TTL]);
    out.extend(from.octets());
    out.extend(src.octets());
    out.extend(icmp);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(ttl: u8, df: bool, len: usize, src: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[6] = if df { 0x40 } else { 0 };
        p[8] = ttl;
        p[9] = protocol::UDP;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&[10, 2, 0, 5]);
        let c = internet_checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn time_exceeded_and_fragmentation_needed_quote_the_packet() {
        let from = Ipv4Addr::new(10, 1, 0, 1);
        let p = udp(1, false, 60, [10, 1, 0, 9]);
        let e = answer(&p, DropReason::TtlExpired, from, 1500).expect("answer");
        assert_eq!(internet_checksum(&e[..20]), 0);
        assert_eq!(&e[12..16], &[10, 1, 0, 1]);
        assert_eq!(&e[16..20], &[10, 1, 0, 9]);
        assert_eq!((e[20], e[21]), (11, 0));
        assert_eq!(internet_checksum(&e[20..]), 0);
        assert_eq!(&e[28..], &p[..]);

        let big = udp(64, true, 1600, [10, 1, 0, 9]);
        let e = answer(&big, DropReason::TooBig, from, 1500).expect("answer");
        assert_eq!((e[20], e[21]), (3, 4));
        assert_eq!(u16::from_be_bytes([e[26], e[27]]), 1500);
        assert_eq!(e.len(), MAX_ERROR_LEN, "at most 576 bytes");
        assert_eq!(internet_checksum(&e[20..]), 0);
    }

    #[test]
    fn no_error_where_rfc_1812_forbids_one() {
        let from = Ipv4Addr::new(10, 1, 0, 1);
        // Without DF the sender cannot be told of the MTU.
        let p = udp(64, false, 1600, [10, 1, 0, 9]);
        assert!(answer(&p, DropReason::TooBig, from, 1500).is_err());
        // From a non-unicast source.
        for src in [
            [0, 0, 0, 0],
            [127, 0, 0, 1],
            [224, 0, 0, 1],
            [255, 255, 255, 255],
        ] {
            assert!(answer(&udp(1, false, 60, src), DropReason::TtlExpired, from, 1500).is_err());
        }
        // A non-initial fragment.
        let mut f = udp(1, false, 60, [10, 1, 0, 9]);
        f[7] = 8;
        f[10..12].copy_from_slice(&[0, 0]);
        let c = internet_checksum(&f[..20]);
        f[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            answer(&f, DropReason::TtlExpired, from, 1500),
            Err(Ignored::Fragment)
        );
        // An ICMP error about an ICMP error.
        let mut e = udp(1, false, 60, [10, 1, 0, 9]);
        e[9] = protocol::ICMP;
        e[20] = 11;
        e[10..12].copy_from_slice(&[0, 0]);
        let c = internet_checksum(&e[..20]);
        e[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(answer(&e, DropReason::TtlExpired, from, 1500).is_err());
        // Other reasons, garbage.
        assert!(answer(
            &udp(1, false, 60, [10, 1, 0, 9]),
            DropReason::NoRoute,
            from,
            1500
        )
        .is_err());
        assert!(answer(&[0x45, 0, 0], DropReason::TtlExpired, from, 1500).is_err());
        assert!(answer(&[], DropReason::TtlExpired, from, 1500).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_answers_parse(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..700)) {
            for r in [DropReason::TtlExpired, DropReason::TooBig] {
                if let Ok(e) = answer(&bytes, r, Ipv4Addr::new(10, 1, 0, 1), 1500) {
                    proptest::prop_assert!(e.len() <= MAX_ERROR_LEN);
                    proptest::prop_assert_eq!(internet_checksum(&e[..20]), 0);
                    proptest::prop_assert_eq!(internet_checksum(&e[20..]), 0);
                }
            }
        }
    }

    fn udp6(hop_limit: u8, src: &str, dst: &str, next: u8, first: u8) -> Vec<u8> {
        let mut p = vec![0u8; 60];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&20u16.to_be_bytes());
        p[6] = next;
        p[7] = hop_limit;
        p[8..24].copy_from_slice(&src.parse::<Ipv6Addr>().expect("v6").octets());
        p[24..40].copy_from_slice(&dst.parse::<Ipv6Addr>().expect("v6").octets());
        p[40] = first;
        p
    }

    #[test]
    fn packet_too_big_carries_the_mtu_and_restores_the_hop_limit() {
        let from: Ipv6Addr = "fd00:1::1".parse().expect("v6");
        // The stages had decremented 64 to 63 before measuring the size.
        let p = udp6(63, "fd00:1::9", "fd00:2::5", 17, 0);
        let e = answer_v6(&p, DropReason::TooBig, from, 1400).expect("answer");
        assert_eq!(e[6], NEXT_HEADER_ICMPV6);
        assert_eq!(&e[8..24], &from.octets());
        assert_eq!(&e[24..40], &p[8..24], "back to the source");
        let icmp = &e[40..];
        assert_eq!((icmp[0], icmp[1]), (icmp6_type::PACKET_TOO_BIG, 0));
        assert_eq!(&icmp[4..8], &1400u32.to_be_bytes());
        assert_eq!(icmp[8 + 7], 64, "the hop limit as it arrived");
        assert_eq!(&icmp[8 + 8..], &p[8..], "the rest as it was");
        // To a multicast group: still told (RFC 4443 §2.4 (e.3)).
        let m = udp6(63, "fd00:1::9", "ff0e::1", 17, 0);
        assert!(answer_v6(&m, DropReason::TooBig, from, 1400).is_ok());
    }

    #[test]
    fn no_icmpv6_error_where_rfc_4443_forbids_one() {
        let from: Ipv6Addr = "fd00:1::1".parse().expect("v6");
        let cases = [
            // About an ICMPv6 error (destination unreachable, type 1).
            (
                udp6(1, "fd00:1::9", "fd00:2::5", 58, 1),
                DropReason::TtlExpired,
            ),
            // From an address that names no single node.
            (udp6(1, "::", "fd00:2::5", 17, 0), DropReason::TtlExpired),
            (
                udp6(1, "ff02::1", "fd00:2::5", 17, 0),
                DropReason::TtlExpired,
            ),
            // Time exceeded about a packet to a group.
            (
                udp6(1, "fd00:1::9", "ff0e::1", 17, 0),
                DropReason::TtlExpired,
            ),
            // A reason with no ICMPv6 error.
            (
                udp6(9, "fd00:1::9", "fd00:2::5", 17, 0),
                DropReason::NoRoute,
            ),
        ];
        for (p, r) in cases {
            assert!(
                answer_v6(&p, r, from, 1500).is_err(),
                "{r:?} {:02x?}",
                &p[..41]
            );
        }
        // An ICMPv6 informational message (echo request, 128) is answered.
        let echo = udp6(1, "fd00:1::9", "fd00:2::5", 58, 128);
        assert!(answer_v6(&echo, DropReason::TtlExpired, from, 1500).is_ok());
        // Truncated input is refused, not a panic.
        assert!(answer_v6(&echo[..30], DropReason::TtlExpired, from, 1500).is_err());
    }
}
