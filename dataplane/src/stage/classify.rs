//! Classify: longest-prefix match of the inner destination (IPv4 or IPv6)
//! to a FEC. The frame starts at the IP header (L2 already removed).

use crate::drop_reason::DropReason;
use crate::frame::{Frame, Verdict};
use crate::packet::{ipv4::Ipv4Packet, ipv6::Ipv6Packet};
use crate::tables::Tables;

/// Parses the IP packet at the start of `f`, trims any link-layer padding
/// behind it, and returns its destination's LPM match in the given tables.
#[inline]
pub(crate) fn lookup_ip<F: Frame>(
    f: &mut F,
    v4: &crate::tables::lpm::Lpm4,
    v6: &crate::tables::lpm::Lpm6,
) -> Result<Option<u32>, DropReason> {
    let (hit, total) = match f.data().first().map(|b| b >> 4) {
        Some(4) => {
            let ip = Ipv4Packet::new_checked(f.data()).map_err(|_| DropReason::Malformed)?;
            (
                v4.lookup_v4(ip.dst_addr().octets()),
                usize::from(ip.total_len()),
            )
        }
        Some(6) => {
            let ip = Ipv6Packet::new_checked(f.data()).map_err(|_| DropReason::Malformed)?;
            (
                v6.lookup_v6(ip.dst_addr().octets()),
                crate::packet::ipv6::HEADER_LEN + usize::from(ip.payload_len()),
            )
        }
        _ => return Err(DropReason::Malformed),
    };
    let extra = f.len() - total;
    if extra > 0 && !f.trim(extra) {
        return Err(DropReason::Malformed);
    }
    Ok(hit)
}

/// Classifies a frame with verdict `Classify` (an IP packet from the LAN)
/// into `Encrypt(fec)`.
#[inline]
pub fn classify<F: Frame>(f: &mut F, t: &Tables) -> Verdict {
    match lookup_ip(f, &t.fec4, &t.fec6) {
        Ok(Some(fec)) => Verdict::Encrypt(fec),
        Ok(None) => Verdict::Drop(DropReason::NoRoute),
        Err(r) => Verdict::Drop(r),
    }
}
