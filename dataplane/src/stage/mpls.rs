//! MPLS label switching (RFC 3032): push at the ingress gateway, swap at
//! transit satellites, pop at the penultimate hop or for local termination,
//! with TTL decrement and the Ethernet rewrite to the next hop.

use crate::drop_reason::DropReason;
use crate::frame::{Batch, Frame, Verdict};
use crate::packet::ethernet::{self, ethertype};
use crate::packet::mpls::{MplsEntry, ENTRY_LEN};
use crate::packet::vlan;
use crate::tables::lfib::LfibOp;
use crate::tables::Tables;

/// TTL of a pushed label.
pub const PUSH_TTL: u8 = 64;

/// Pushes the FEC's label and Ethernet header on frames with verdict
/// `Push(fec)` (the frame holds the outer IPv4 packet); they become `Tx`.
pub fn push<F: Frame>(batch: &mut Batch<F>, t: &Tables) {
    for (f, v) in batch.iter_mut() {
        if let Verdict::Push(fec) = *v {
            *v = push_one(f, t, fec);
        }
    }
}

#[inline]
fn push_one<F: Frame>(f: &mut F, t: &Tables, fec: u32) -> Verdict {
    let Some(e) = t.fecs.get(fec as usize) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    if !f.prepend(ethernet::HEADER_LEN + ENTRY_LEN) {
        return Verdict::Drop(DropReason::NoRoom);
    }
    let d = f.data_mut();
    if ethernet::write_header(d, e.dst_mac, e.src_mac, ethertype::MPLS).is_err()
        || MplsEntry::new(e.label, 0, true, PUSH_TTL)
            .write(&mut d[ethernet::HEADER_LEN..])
            .is_err()
    {
        return Verdict::Drop(DropReason::Malformed);
    }
    Verdict::Tx(e.port)
}

/// Looks up the top label of frames with verdict `Lfib` and swaps or pops
/// it; they become `Tx(port)`, or `Decrypt` when the tunnel ends here.
pub fn lfib<F: Frame>(batch: &mut Batch<F>, t: &Tables) {
    for (f, v) in batch.iter_mut() {
        if *v == Verdict::Lfib {
            *v = match lfib_one(f, t) {
                Ok(v) => v,
                Err(r) => Verdict::Drop(r),
            };
        }
    }
}

/// Replaces the L2 header (`l2_len` bytes, possibly VLAN-tagged) plus
/// `strip` more bytes with an untagged Ethernet header, moving no payload.
#[inline]
fn rewrite_l2<F: Frame>(
    f: &mut F,
    l2_len: usize,
    strip: usize,
    dst: [u8; 6],
    src: [u8; 6],
    et: u16,
) -> Result<(), DropReason> {
    let remove = l2_len + strip;
    if remove >= ethernet::HEADER_LEN {
        // Shrink in front: adj the excess, then overwrite the header in place.
        if !f.adj(remove - ethernet::HEADER_LEN) {
            return Err(DropReason::Malformed);
        }
    } else if !f.prepend(ethernet::HEADER_LEN - remove) {
        return Err(DropReason::NoRoom);
    }
    ethernet::write_header(f.data_mut(), dst, src, et).map_err(|_| DropReason::Malformed)
}

#[inline]
fn lfib_one<F: Frame>(f: &mut F, t: &Tables) -> Result<Verdict, DropReason> {
    let l2 = vlan::parse_l2(f.data()).map_err(|_| DropReason::Malformed)?;
    let d = f.data();
    let top = MplsEntry::read(&d[l2.header_len..]).map_err(|_| DropReason::Malformed)?;
    let e = t.lfib.get(top.label()).ok_or(DropReason::NoRoute)?;
    match e.op {
        LfibOp::Swap(out) => {
            if top.ttl() <= 1 {
                return Err(DropReason::TtlExpired);
            }
            let new = top.with_label(out).with_ttl(top.ttl() - 1);
            rewrite_l2(f, l2.header_len, 0, e.dst_mac, e.src_mac, ethertype::MPLS)?;
            new.write(&mut f.data_mut()[ethernet::HEADER_LEN..])
                .map_err(|_| DropReason::Malformed)?;
            Ok(Verdict::Tx(e.port))
        }
        LfibOp::Pop => {
            if top.ttl() <= 1 {
                return Err(DropReason::TtlExpired);
            }
            let below = l2.header_len + ENTRY_LEN;
            let et = if top.bos() {
                match d.get(below).map(|b| b >> 4) {
                    Some(4) => ethertype::IPV4,
                    Some(6) => ethertype::IPV6,
                    _ => return Err(DropReason::Malformed),
                }
            } else {
                // Uniform TTL: the next entry inherits the lower TTL.
                let next = MplsEntry::read(&d[below..]).map_err(|_| DropReason::Malformed)?;
                let ttl = next.ttl().min(top.ttl() - 1);
                let f_data = f.data_mut();
                next.with_ttl(ttl)
                    .write(&mut f_data[below..])
                    .map_err(|_| DropReason::Malformed)?;
                ethertype::MPLS
            };
            rewrite_l2(f, l2.header_len, ENTRY_LEN, e.dst_mac, e.src_mac, et)?;
            Ok(Verdict::Tx(e.port))
        }
        LfibOp::PopLocal => {
            if !top.bos() {
                // Only a single tunnel label terminates here.
                return Err(DropReason::Unsupported);
            }
            if !f.adj(l2.header_len + ENTRY_LEN) {
                return Err(DropReason::Malformed);
            }
            Ok(Verdict::Decrypt)
        }
    }
}
