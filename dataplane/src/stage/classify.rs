//! Classify: longest-prefix match of the inner destination (IPv4 or IPv6)
//! to a FEC, after the router checks of [`super::ip_forward`] (the inner
//! TTL is decremented here, before encryption, RFC 4301 §5.1.2.1). The
//! frame starts at the IP header (L2 already removed).

use crate::drop_reason::DropReason;
use crate::frame::{Frame, Verdict};
use crate::tables::Tables;

/// Classifies a frame with verdict `Classify` (an IP packet from the LAN)
/// into `Encrypt(fec)`.
#[inline]
pub fn classify<F: Frame>(f: &mut F, t: &Tables) -> Verdict {
    let fec = match super::ip_forward::route(f, &t.fec4, &t.fec6) {
        Ok(Some(fec)) => fec,
        Ok(None) => return Verdict::Drop(DropReason::NoRoute),
        Err(r) => return Verdict::Drop(r),
    };
    let mtu = t.fecs.get(fec as usize).map_or(0, |e| e.mtu);
    match super::ip_forward::fits(f.len(), mtu) {
        Ok(()) => Verdict::Encrypt(fec),
        Err(r) => Verdict::Drop(r),
    }
}
