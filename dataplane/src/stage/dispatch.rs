//! First stage: sorts received frames by ethertype into the label path,
//! the tunnel-termination path and the LAN (classify) path.

use crate::drop_reason::DropReason;
use crate::frame::{Frame, Verdict};
use crate::packet::{ethernet::ethertype, ipv4, vlan};
use crate::tables::Tables;

/// The next stage of a just-received frame (verdict `Input`), by its
/// ethertype after any VLAN tags. An IP frame loses its L2 header (it then
/// starts at the IP header); a labelled frame keeps it for the LFIB stage,
/// which rewrites it in place.
#[inline]
pub fn dispatch<F: Frame>(f: &mut F, t: &Tables) -> Verdict {
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
            let tunnel = match ipv4::Ipv4Packet::new_checked(&f.data()[l2.header_len..]) {
                Ok(ip) => {
                    ip.protocol() == ipv4::protocol::ESP && t.is_local(ip.dst_addr().octets())
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
            if !f.adj(l2.header_len) {
                return Verdict::Drop(DropReason::Malformed);
            }
            Verdict::Classify
        }
        _ => Verdict::Drop(DropReason::Unsupported),
    }
}
