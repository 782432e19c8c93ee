//! First stage: takes only frames addressed to the receiving port, then
//! sorts them by ethertype into the label path, the tunnel-termination path
//! and the LAN (classify) path.

use crate::config::Mac;
use crate::drop_reason::DropReason;
use crate::frame::{Frame, PortId, Verdict};
use crate::packet::{ethernet, ethernet::ethertype, ipv4, udp, vlan};
use crate::tables::Tables;

/// The link-layer checks of a router (RFC 1812 §5.3.4): a frame is taken
/// only when it is sent to the receiving port's own MAC `rx_mac`, from an
/// individual address (not a group address, not zero).
#[inline(always)]
pub fn check_l2(d: &[u8], rx_mac: &Mac) -> Result<(), DropReason> {
    let Some(h) = d.first_chunk::<{ ethernet::HEADER_LEN }>() else {
        return Err(DropReason::Malformed);
    };
    if !is_for(h, rx_mac) {
        return Err(DropReason::NotForUs);
    }
    if is_bad_source(h) {
        return Err(DropReason::BadSourceMac);
    }
    Ok(())
}

/// True when the Ethernet header `h` is addressed to `rx_mac`.
#[inline(always)]
pub fn is_for(h: &[u8; ethernet::HEADER_LEN], rx_mac: &Mac) -> bool {
    h[..6] == rx_mac[..]
}

/// True when the source MAC of the Ethernet header `h` is a group address
/// or all zeros: no station sends from either.
#[inline(always)]
pub fn is_bad_source(h: &[u8; ethernet::HEADER_LEN]) -> bool {
    h[6] & 1 != 0 || h[6..12] == [0; 6]
}

/// True for a broadcast ARP frame (any VLAN tags) from an individual
/// source, received on port `rx` that has an address to answer for.
#[cold]
fn is_arp_broadcast(d: &[u8], t: &Tables, rx: PortId) -> bool {
    let Some(h) = d.first_chunk::<{ ethernet::HEADER_LEN }>() else {
        return false;
    };
    h[..6] == [0xff; 6]
        && !is_bad_source(h)
        && t.port_has_address(rx)
        && vlan::parse_l2(d).is_ok_and(|l2| l2.ethertype == ethertype::ARP)
}

/// True for ESP in UDP (RFC 3948): an unfragmented UDP datagram to port
/// 4500 whose first four bytes, the SPI, are not zero (zero is the
/// non-ESP marker of IKE on that port, RFC 3948 §2.2; a one-byte NAT
/// keepalive is too short). Everything else on the port is the control
/// thread's.
#[inline]
fn is_esp_in_udp(ip: &ipv4::Ipv4Packet<&[u8]>) -> bool {
    if ip.protocol() != ipv4::protocol::UDP || ip.is_fragment() {
        return false;
    }
    let p = ip.payload();
    p.len() >= udp::HEADER_LEN + 8
        && p[2..4] == super::esp::NAT_T_PORT.to_be_bytes()
        && p[udp::HEADER_LEN..udp::HEADER_LEN + 4] != [0; 4]
}

/// Removes the UDP header of ESP in UDP in place (RFC 3948 §3.2): the
/// outer IPv4 header, its checksum verified first, moves up over it and
/// becomes the header of a plain ESP packet, which goes on to `Decrypt`
/// (the frame then starts at that header). The UDP checksum is not
/// checked: over IPv4 it is zero or unchecked, and the ICV covers the ESP.
#[cold]
fn unwrap_udp<F: Frame>(f: &mut F, l2_len: usize, ihl: usize) -> Verdict {
    let d = f.data_mut();
    let Some(h) = d.get_mut(l2_len..l2_len + ihl) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    if crate::packet::checksum::internet_checksum(h) != 0 {
        return Verdict::Drop(DropReason::BadChecksum);
    }
    {
        let Ok(mut ip) = ipv4::Ipv4Packet::new_checked(&mut d[l2_len..]) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let total = ip.total_len().saturating_sub(udp::HEADER_LEN as u16);
        ip.set_total_len(total);
        ip.set_protocol(ipv4::protocol::ESP);
        ip.fill_checksum();
    }
    d.copy_within(l2_len..l2_len + ihl, l2_len + udp::HEADER_LEN);
    if !f.adj(l2_len + udp::HEADER_LEN) {
        return Verdict::Drop(DropReason::Malformed);
    }
    Verdict::Decrypt
}

/// The next stage of a frame just received on port `rx`, whose MAC is
/// `rx_mac` (verdict `Input`), by its ethertype after any VLAN tags. An IP
/// frame loses its L2 header (it then starts at the IP header); a labelled
/// frame keeps it for the LFIB stage, which rewrites it in place. A frame
/// for the node itself (ARP on a port with an address, IPv4 other than
/// ESP to one of the node's addresses) is punted as it is.
#[inline]
pub fn dispatch<F: Frame>(f: &mut F, t: &Tables, rx: PortId, rx_mac: &Mac) -> Verdict {
    if let Err(r) = check_l2(f.data(), rx_mac) {
        if r == DropReason::NotForUs && is_arp_broadcast(f.data(), t, rx) {
            return Verdict::Punt;
        }
        return Verdict::Drop(r);
    }
    // An untagged label stack (the transit case) needs no VLAN parse.
    if f.data().get(12..14) == Some(&ethertype::MPLS.to_be_bytes()[..]) {
        return Verdict::Lfib;
    }
    let Ok(l2) = vlan::parse_l2(f.data()) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    match l2.ethertype {
        ethertype::MPLS => Verdict::Lfib,
        ethertype::IPV4 => {
            // The header is read here only to pick the path; the stage
            // that consumes it (decrypt or classify) checks it whole.
            let tunnel = match ipv4::Ipv4Packet::new_checked(&f.data()[l2.header_len..]) {
                Ok(ip) => {
                    let dst = ip.dst_addr().octets();
                    let esp = ip.protocol() == ipv4::protocol::ESP;
                    if !esp && t.is_own(dst) {
                        // Tunnel addresses are among the node's own: only
                        // a frame to one of those can be ESP in UDP.
                        if is_esp_in_udp(&ip) && t.is_local(dst) {
                            return unwrap_udp(f, l2.header_len, ip.header_len());
                        }
                        return Verdict::Punt;
                    }
                    esp && t.is_local(dst)
                }
                Err(_) => return Verdict::Drop(DropReason::Malformed),
            };
            if !f.adj(l2.header_len) {
                return Verdict::Drop(DropReason::Malformed);
            }
            if tunnel {
                Verdict::Decrypt
            } else {
                Verdict::Classify
            }
        }
        ethertype::IPV6 => {
            // The ethertype and the packet must agree on the version.
            if f.data().get(l2.header_len).map(|b| b >> 4) != Some(6) {
                return Verdict::Drop(DropReason::Malformed);
            }
            if !f.adj(l2.header_len) {
                return Verdict::Drop(DropReason::Malformed);
            }
            Verdict::Classify
        }
        ethertype::ARP if t.port_has_address(rx) => Verdict::Punt,
        _ => Verdict::Drop(DropReason::Unsupported),
    }
}
