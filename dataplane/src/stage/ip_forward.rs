//! The checks a router makes on an IP packet it forwards (RFC 1812 §5.2.2,
//! §5.3.1, §5.3.7; RFC 4291 §2.5.6; RFC 4301 §5.1.2.1), shared by the two
//! places an IP packet crosses the boundary of the tunnel: `classify` at
//! the ingress gateway (before encryption) and `deliver` at the egress
//! (after decryption). The frame starts at the IP header.
//!
//! In order: the header is checked (version, lengths, IPv4 header
//! checksum), the addresses are checked against those no router forwards,
//! link-layer padding behind the packet is trimmed, the destination is
//! looked up, and only a packet with a route has its TTL or hop limit
//! checked and decremented (RFC 1812 §5.3.1: the TTL is checked when
//! forwarding, after the route is known).

use crate::drop_reason::DropReason;
use crate::frame::Frame;
use crate::packet::{ipv4::Ipv4Packet, ipv6::Ipv6Packet};
use crate::tables::lpm::{Lpm4, Lpm6};

/// Validates the IP packet at the start of `f`, looks its destination up
/// in `v4`/`v6` and, when there is a match, decrements its TTL (IPv4, the
/// checksum patched) or hop limit (IPv6). Returns the match, None when
/// there is no route, or why the packet must not be forwarded. The caller
/// then checks the packet against the MTU of where it goes ([`fits`]).
#[inline]
pub(crate) fn route<F: Frame>(f: &mut F, v4: &Lpm4, v6: &Lpm6) -> Result<Option<u32>, DropReason> {
    match f.data().first().map(|b| b >> 4) {
        Some(4) => route_v4(f, v4),
        Some(6) => route_v6(f, v6),
        _ => Err(DropReason::Malformed),
    }
}

/// After [`route`] (the TTL first, as RFC 1812 orders them): a packet of
/// `len` bytes, padding already trimmed, longer than `mtu` (a FEC's tunnel
/// MTU, a LAN port's MTU) is `too_big`.
#[inline(always)]
pub(crate) fn fits(len: usize, mtu: usize) -> Result<(), DropReason> {
    if len > mtu {
        return Err(DropReason::TooBig);
    }
    Ok(())
}

#[inline]
fn route_v4<F: Frame>(f: &mut F, v4: &Lpm4) -> Result<Option<u32>, DropReason> {
    let (dst, total) = {
        let ip = Ipv4Packet::new_checked(f.data()).map_err(|_| DropReason::Malformed)?;
        if !ip.verify_checksum() {
            return Err(DropReason::BadChecksum);
        }
        let (src, dst) = (ip.src_addr().octets(), ip.dst_addr().octets());
        if martian_v4_src(src) || martian_v4_dst(dst) {
            return Err(DropReason::Martian);
        }
        (dst, usize::from(ip.total_len()))
    };
    trim_to(f, total)?;
    let Some(hit) = v4.lookup_v4(dst) else {
        return Ok(None);
    };
    // The header was checked above: TTL at byte 8, beside the protocol in
    // one checksum word, the checksum at 10..12 (RFC 1624 update).
    let h = f
        .data_mut()
        .first_chunk_mut::<{ crate::packet::ipv4::MIN_HEADER_LEN }>()
        .ok_or(DropReason::Malformed)?;
    if h[8] <= 1 {
        return Err(DropReason::TtlExpired);
    }
    let old = u16::from_be_bytes([h[8], h[9]]);
    h[8] -= 1;
    let sum = u16::from_be_bytes([h[10], h[11]]);
    let c = crate::packet::checksum::incremental_update(sum, old, old - 0x100);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    Ok(Some(hit))
}

#[inline]
fn route_v6<F: Frame>(f: &mut F, v6: &Lpm6) -> Result<Option<u32>, DropReason> {
    let (dst, total) = {
        let ip = Ipv6Packet::new_checked(f.data()).map_err(|_| DropReason::Malformed)?;
        let (src, dst) = (ip.src_addr().octets(), ip.dst_addr().octets());
        if martian_v6_src(&src) || martian_v6_dst(&dst) {
            return Err(DropReason::Martian);
        }
        (
            dst,
            crate::packet::ipv6::HEADER_LEN + usize::from(ip.payload_len()),
        )
    };
    trim_to(f, total)?;
    let Some(hit) = v6.lookup_v6(dst) else {
        return Ok(None);
    };
    let mut ip = Ipv6Packet::new_checked(f.data_mut()).map_err(|_| DropReason::Malformed)?;
    if !ip.decrement_hop_limit() {
        return Err(DropReason::TtlExpired);
    }
    Ok(Some(hit))
}

/// Trims anything behind the packet's own length (Ethernet padding, or
/// traffic-flow-confidentiality padding inside ESP, RFC 4303 §2.7).
#[inline]
fn trim_to<F: Frame>(f: &mut F, total: usize) -> Result<(), DropReason> {
    let extra = f.len().saturating_sub(total);
    if extra > 0 && !f.trim(extra) {
        return Err(DropReason::Malformed);
    }
    Ok(())
}

/// An IPv4 source no router forwards from: "this network" 0/8, loopback
/// 127/8, link-local 169.254/16, multicast 224/4, reserved 240/4 and the
/// limited broadcast address within it.
#[inline]
fn martian_v4_src(a: [u8; 4]) -> bool {
    let a = u32::from_be_bytes(a);
    let first = a >> 24;
    first == 0 || first == 127 || a >= 0xe000_0000 || a >> 16 == 0xa9fe
}

/// An IPv4 destination this unicast tunnel never carries: "this network"
/// 0/8, loopback, link-local, multicast (no multicast routing here),
/// reserved 240/4 and the limited broadcast address.
#[inline]
fn martian_v4_dst(a: [u8; 4]) -> bool {
    martian_v4_src(a)
}

/// An IPv6 source no router forwards from: unspecified `::`, loopback
/// `::1`, multicast ff00::/8, link-local fe80::/10 (RFC 4291 §2.5.6: never
/// forwarded), and IPv4-mapped `::ffff:0:0/96` (RFC 4291 §2.5.5.2, not
/// for the wire).
#[inline]
fn martian_v6_src(a: &[u8; 16]) -> bool {
    let head_zero = a[..10].iter().all(|&b| b == 0);
    let unspecified_or_loopback = a[..15].iter().all(|&b| b == 0) && a[15] <= 1;
    let mapped = head_zero && a[10] == 0xff && a[11] == 0xff;
    unspecified_or_loopback || mapped || a[0] == 0xff || (a[0] == 0xfe && a[1] & 0xc0 == 0x80)
}

/// An IPv6 destination this unicast tunnel never carries: the same set as
/// for sources (multicast included: no multicast routing here).
#[inline]
fn martian_v6_dst(a: &[u8; 16]) -> bool {
    martian_v6_src(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn martian_addresses_match_the_standard_library_classes() {
        for a in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "169.254.1.1",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            let ip: Ipv4Addr = a.parse().expect("address");
            assert!(martian_v4_src(ip.octets()), "{a}");
        }
        for a in [
            "10.1.0.1",
            "192.0.2.1",
            "169.253.0.1",
            "223.255.255.254",
            "1.1.1.1",
        ] {
            let ip: Ipv4Addr = a.parse().expect("address");
            assert!(!martian_v4_dst(ip.octets()), "{a}");
        }
        for a in [
            "::",
            "::1",
            "ff02::1",
            "fe80::1",
            "febf::1",
            "::ffff:10.0.0.1",
        ] {
            let ip: Ipv6Addr = a.parse().expect("address");
            assert!(martian_v6_src(&ip.octets()), "{a}");
        }
        for a in ["fd00:2::1", "2001:db8::1", "fec0::1", "::2", "64:ff9b::1"] {
            let ip: Ipv6Addr = a.parse().expect("address");
            assert!(!martian_v6_dst(&ip.octets()), "{a}");
        }
    }
}
