//! Deliver: decrypted inner packets pass the router checks of
//! [`super::ip_forward`] (TTL decremented as it is forwarded onto the LAN),
//! are looked up by destination in the delivery table and leave with a
//! fresh Ethernet header.

use crate::drop_reason::DropReason;
use crate::frame::{Frame, Verdict};
use crate::packet::ethernet;
use crate::tables::Tables;

/// Sends a frame with verdict `Deliver` (a decrypted inner IP packet)
/// towards its LAN next hop: `Tx(port)` with a fresh Ethernet header.
#[inline]
pub fn deliver<F: Frame>(f: &mut F, t: &Tables) -> Verdict {
    let idx = match super::ip_forward::route(f, &t.deliver4, &t.deliver6) {
        Ok(Some(i)) => i,
        Ok(None) => return Verdict::Drop(DropReason::NoRoute),
        Err(r) => return Verdict::Drop(r),
    };
    let Some(d) = t.delivers.get(idx as usize) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    if let Err(r) = super::ip_forward::fits(f.len(), d.mtu) {
        return Verdict::Drop(r);
    }
    let et = if f.data()[0] >> 4 == 4 {
        ethernet::ethertype::IPV4
    } else {
        ethernet::ethertype::IPV6
    };
    if !f.prepend(ethernet::HEADER_LEN) {
        return Verdict::Drop(DropReason::NoRoom);
    }
    if ethernet::write_header(f.data_mut(), d.dst_mac, d.src_mac, et).is_err() {
        return Verdict::Drop(DropReason::Malformed);
    }
    Verdict::Tx(d.port)
}
