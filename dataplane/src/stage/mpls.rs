//! MPLS label switching (RFC 3032): push at the ingress gateway (written
//! with the ESP headers from the FEC's `tables::encap` template), swap at
//! transit satellites, pop at the penultimate hop or for local termination,
//! with TTL decrement and the Ethernet rewrite to the next hop.

use crate::config::Mac;
use crate::drop_reason::DropReason;
use crate::frame::{Frame, PortId, Verdict};
use crate::packet::ethernet::{self, ethertype};
use crate::packet::mpls::{MplsEntry, ENTRY_LEN};
use crate::packet::vlan;
use crate::tables::lfib::{LfibEntry, LfibOp};
use crate::tables::Tables;

/// TTL of a pushed label.
pub use crate::tables::encap::PUSH_TTL;

/// Ethernet header plus one label entry.
const HEAD: usize = ethernet::HEADER_LEN + ENTRY_LEN;

/// Writes an Ethernet header (type MPLS) and `label` at the start of `d`.
#[inline(always)]
fn write_head(
    d: &mut [u8],
    dst: [u8; 6],
    src: [u8; 6],
    label: MplsEntry,
) -> Result<(), DropReason> {
    let h = d.get_mut(..HEAD).ok_or(DropReason::Malformed)?;
    let (eth, entry) = h.split_at_mut(ethernet::HEADER_LEN);
    ethernet::write_header(eth, dst, src, ethertype::MPLS).map_err(|_| DropReason::Malformed)?;
    label.write(entry).map_err(|_| DropReason::Malformed)
}

/// Looks up the top label of a frame with verdict `Lfib` (it starts at its
/// Ethernet header) and swaps or pops it; the frame becomes `Tx(port)` with
/// the next hop's Ethernet header, or `Decrypt` when the tunnel ends here.
#[inline(always)]
pub fn switch<F: Frame>(f: &mut F, t: &Tables) -> Verdict {
    match switch_one(f, t) {
        Ok(v) => v,
        Err(r) => Verdict::Drop(r),
    }
}

/// Length of the L2 header in front of the label stack: an untagged frame
/// (the transit case) is recognised without the general VLAN parse.
#[inline(always)]
fn l2_len(d: &[u8]) -> Result<usize, DropReason> {
    if d.get(12..14) == Some(&ethertype::MPLS.to_be_bytes()[..]) {
        return Ok(ethernet::HEADER_LEN);
    }
    let l2 = vlan::parse_l2(d).map_err(|_| DropReason::Malformed)?;
    if l2.ethertype != ethertype::MPLS {
        return Err(DropReason::Unsupported);
    }
    Ok(l2.header_len)
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

/// The outcome of the last transit swap in a burst, kept so that the next
/// frame with the same label entry (label, traffic class, bottom of
/// stack and TTL: frames of one flow toward one gateway, the common case
/// in a burst) is rewritten without another LFIB lookup. Valid for one
/// table snapshot: make a new one per batch.
#[derive(Clone, Copy, Debug)]
pub struct SwapMemo {
    /// The label entry the frame arrived with, widened: [`SwapMemo::EMPTY`]
    /// until a swap has been looked up, a value no 32-bit entry read from
    /// a frame can equal (every entry, `00 00 00 00` included, can arrive).
    top: u64,
    /// The label entry it leaves with.
    new: [u8; ENTRY_LEN],
    /// The first 16 bytes of the header it leaves with.
    head: [u8; 16],
    /// The port it leaves by.
    port: PortId,
    /// The longest frame that port sends ([`Tables::port_tx_max`]).
    tx_max: usize,
}

impl SwapMemo {
    /// `top` of a memo that holds no lookup yet.
    const EMPTY: u64 = u64::MAX;
}

impl Default for SwapMemo {
    /// A memo that matches no frame.
    fn default() -> Self {
        SwapMemo {
            top: Self::EMPTY,
            new: [0; ENTRY_LEN],
            head: [0; 16],
            port: 0,
            tx_max: 0,
        }
    }
}

/// The transit fast path: an untagged labelled frame (starting at its
/// Ethernet header) whose top label is swapped, with TTL to spare, gets
/// both headers rewritten where they lie and its output port returned.
/// Anything else (VLAN tags, a pop, no route, TTL expiry, a short frame) is
/// left untouched and returns None: the general path gives it its verdict.
/// A frame with the label entry of the one `memo` holds reuses its lookup.
/// Only a frame sent to `rx_mac` (the receiving port's) from an individual
/// source is taken.
#[inline(always)]
pub fn swap_untagged<F: Frame>(
    f: &mut F,
    t: &Tables,
    rx_mac: &Mac,
    memo: &mut SwapMemo,
) -> Option<PortId> {
    let d = f.data_mut();
    let len = d.len();
    let h = d.first_chunk_mut::<HEAD>()?;
    // The link-layer checks of `dispatch::check_l2`: a frame they refuse
    // is left for the general path, which drops it with the reason.
    let eth = h.first_chunk::<{ ethernet::HEADER_LEN }>()?;
    if !super::dispatch::is_for(eth, rx_mac) || super::dispatch::is_bad_source(eth) {
        return None;
    }
    if h[12..14] != ethertype::MPLS.to_be_bytes() {
        return None;
    }
    let top = MplsEntry::from_bytes([h[14], h[15], h[16], h[17]]);
    if u64::from(top.0) != memo.top {
        let e = t.lfib.get_swap(top.label())?;
        if top.ttl() <= 1 {
            return None;
        }
        *memo = SwapMemo {
            top: u64::from(top.0),
            new: e.swapped_entry(top.0).to_be_bytes(),
            head: *e.swap_head(),
            port: e.port,
            tx_max: t.port_tx_max.get(usize::from(e.port)).copied().unwrap_or(0),
        };
    }
    // Too long for the port it would leave by: the general path drops it.
    if len > memo.tx_max {
        return None;
    }
    // MACs, ethertype and the label's upper half in one copy, then the
    // whole label entry (its upper half again, equal).
    h[..16].copy_from_slice(&memo.head);
    h[ethernet::HEADER_LEN..].copy_from_slice(&memo.new);
    Some(memo.port)
}

/// The general path: any L2 header, any operation. A received frame gets
/// here only when [`swap_untagged`] (run first by `stage::process`) left it.
#[inline(always)]
fn switch_one<F: Frame>(f: &mut F, t: &Tables) -> Result<Verdict, DropReason> {
    let d = f.data();
    let l2 = l2_len(d)?;
    let mut top = MplsEntry::read(d.get(l2..).unwrap_or(&[])).map_err(|_| DropReason::Malformed)?;
    // A node segment that ends here continues with the label below it, a
    // few times at most.
    for _ in 0..MAX_STACK {
        let e = t.lfib.get(top.label()).ok_or(DropReason::NoRoute)?;
        match apply(f, t, l2, top, e)? {
            Step::Done(v) => return Ok(v),
            Step::Continue(next) => top = next,
        }
    }
    Err(DropReason::Unsupported)
}

/// What one LFIB entry did with a frame.
enum Step {
    /// The frame's verdict.
    Done(Verdict),
    /// The node's own label was popped from above another: switch the
    /// frame again by this entry, now on top.
    Continue(MplsEntry),
}

/// UDP port of MPLS echo (RFC 8029 §4.3).
pub const MPLS_ECHO_PORT: u16 = 3503;

/// Most label entries looked through to find the packet under a stack.
const MAX_STACK: usize = 8;

/// The offset of the IPv4 packet under the label stack that starts at
/// `at` in `d`, if the stack ends (S=1) within [`MAX_STACK`] entries and
/// an IPv4 header follows.
#[inline]
fn ipv4_below_stack(d: &[u8], at: usize) -> Option<usize> {
    let mut off = at;
    for _ in 0..MAX_STACK {
        let e = MplsEntry::read(d.get(off..)?).ok()?;
        off += ENTRY_LEN;
        if e.bos() {
            return (d.get(off)? >> 4 == 4).then_some(off);
        }
    }
    None
}

/// True when the IPv4 packet at `ip` in `d` is UDP to the MPLS echo port
/// (an LSP ping or traceroute probe).
#[inline]
fn is_mpls_echo(d: &[u8], ip: usize) -> bool {
    let (Some(&vihl), Some(&proto)) = (d.get(ip), d.get(ip + 9)) else {
        return false;
    };
    let ihl = usize::from(vihl & 0x0f) * 4;
    let port = d.get(ip + ihl + 2..ip + ihl + 4);
    proto == crate::packet::ipv4::protocol::UDP
        && ihl >= 20
        && port == Some(&MPLS_ECHO_PORT.to_be_bytes()[..])
}

/// A frame whose label TTL runs out here: an MPLS echo probe (LSP
/// traceroute) is punted to be answered, anything else dropped.
#[cold]
fn ttl_expired(d: &[u8], l2: usize) -> Result<Verdict, DropReason> {
    match ipv4_below_stack(d, l2) {
        Some(ip) if is_mpls_echo(d, ip) => Ok(Verdict::Punt),
        _ => Err(DropReason::TtlExpired),
    }
}

/// A frame under this node's own label that is not ESP: punted when it
/// is IPv4 to one of the node's addresses or to 127.0.0.0/8 (where an
/// LSP ping addresses the egress); None leaves it to decryption.
#[inline]
fn local_control(d: &[u8], t: &Tables, l2: usize) -> Option<Verdict> {
    let ip = l2 + ENTRY_LEN;
    let h = d.get(ip..ip + 20)?;
    if h[0] >> 4 != 4 || h[9] == crate::packet::ipv4::protocol::ESP {
        return None;
    }
    let dst = [h[16], h[17], h[18], h[19]];
    (dst[0] == 127 || t.is_own(dst)).then_some(Verdict::Punt)
}

/// `Tx(port)` for a switched frame that fits `port`'s MTU; `too_big`
/// otherwise (MPLS has no fragmentation: RFC 3032 §3).
#[inline]
fn fits<F: Frame>(f: &F, t: &Tables, port: PortId) -> Result<Verdict, DropReason> {
    match t.port_tx_max.get(usize::from(port)) {
        Some(&max) if f.len() > max => Err(DropReason::TooBig),
        _ => Ok(Verdict::Tx(port)),
    }
}

/// Carries out `e`'s operation on a frame whose top label `top` follows
/// `l2` bytes of L2 header.
#[inline]
fn apply<F: Frame>(
    f: &mut F,
    t: &Tables,
    l2: usize,
    top: MplsEntry,
    e: &LfibEntry,
) -> Result<Step, DropReason> {
    let d = f.data_mut();
    match e.op {
        LfibOp::Swap(out) => {
            if top.ttl() <= 1 {
                return ttl_expired(d, l2).map(Step::Done);
            }
            let new = top.with_label(out).with_ttl(top.ttl() - 1);
            // Any VLAN tags are dropped: the new header ends at the label.
            if !f.adj(l2 - ethernet::HEADER_LEN) {
                return Err(DropReason::Malformed);
            }
            write_head(f.data_mut(), e.dst_mac(), e.src_mac(), new)?;
            fits(f, t, e.port).map(Step::Done)
        }
        LfibOp::SwapPush(out, i) => {
            if top.ttl() <= 1 {
                return ttl_expired(d, l2).map(Step::Done);
            }
            let new = top.with_label(out).with_ttl(top.ttl() - 1);
            let stack = t.lfib.stack(i);
            // The swapped entry where the old one was; above it the pushed
            // labels (not bottom of stack; the frame's traffic class and
            // the new TTL, as the uniform model copies them) and a fresh
            // Ethernet header, any VLAN tags dropped.
            new.write(d.get_mut(l2..).unwrap_or(&mut []))
                .map_err(|_| DropReason::Malformed)?;
            let head = ethernet::HEADER_LEN + ENTRY_LEN * stack.len();
            if l2 >= head {
                if !f.adj(l2 - head) {
                    return Err(DropReason::Malformed);
                }
            } else if !f.prepend(head - l2) {
                return Err(DropReason::NoRoom);
            }
            let d = f.data_mut();
            ethernet::write_header(d, e.dst_mac(), e.src_mac(), ethertype::MPLS)
                .map_err(|_| DropReason::Malformed)?;
            for (k, &label) in stack.iter().enumerate() {
                let at = ethernet::HEADER_LEN + ENTRY_LEN * k;
                MplsEntry::new(label, new.tc(), false, new.ttl())
                    .write(d.get_mut(at..).unwrap_or(&mut []))
                    .map_err(|_| DropReason::Malformed)?;
            }
            fits(f, t, e.port).map(Step::Done)
        }
        LfibOp::Pop => {
            if top.ttl() <= 1 {
                return ttl_expired(d, l2).map(Step::Done);
            }
            let below = l2 + ENTRY_LEN;
            let et = if top.bos() {
                match d.get(below).map(|b| b >> 4) {
                    Some(4) => ethertype::IPV4,
                    Some(6) => ethertype::IPV6,
                    _ => return Err(DropReason::Malformed),
                }
            } else {
                // Uniform TTL: the next entry inherits the lower TTL.
                let next = d.get_mut(below..).unwrap_or(&mut []);
                let e2 = MplsEntry::read(next).map_err(|_| DropReason::Malformed)?;
                e2.with_ttl(e2.ttl().min(top.ttl() - 1))
                    .write(next)
                    .map_err(|_| DropReason::Malformed)?;
                ethertype::MPLS
            };
            rewrite_l2(f, l2, ENTRY_LEN, e.dst_mac(), e.src_mac(), et)?;
            fits(f, t, e.port).map(Step::Done)
        }
        LfibOp::PopLocal => {
            // The tunnel ends here: any TTL that arrived is enough, but a
            // TTL of 0 was never legally sent (RFC 3032 §2.4.1).
            if top.ttl() == 0 {
                return Err(DropReason::TtlExpired);
            }
            if !top.bos() {
                // The node's own label above another: a node segment ends
                // here and the frame goes on by the label below (segment
                // routing's "continue"), which takes the lower TTL.
                let next = d.get_mut(l2 + ENTRY_LEN..).ok_or(DropReason::Malformed)?;
                let below = MplsEntry::read(next).map_err(|_| DropReason::Malformed)?;
                let below = below.with_ttl(below.ttl().min(top.ttl()));
                below.write(next).map_err(|_| DropReason::Malformed)?;
                // The L2 header moves over the popped entry.
                d.copy_within(..l2, ENTRY_LEN);
                if !f.adj(ENTRY_LEN) {
                    return Err(DropReason::Malformed);
                }
                return Ok(Step::Continue(below));
            }
            if let Some(v) = local_control(d, t, l2) {
                return Ok(Step::Done(v));
            }
            if !f.adj(l2 + ENTRY_LEN) {
                return Err(DropReason::Malformed);
            }
            Ok(Step::Done(Verdict::Decrypt))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::NodeConfig;
    use crate::drop_reason::DropReason;
    use crate::frame::{Batch, HeapFrame, Verdict};
    use crate::stage::process;
    use crate::tables::Tables;

    const NODE: &str = r#"
[node]
name = "t"
role = "satellite"

[[ports]]
name = "p0"
mac = "02:00:00:00:00:01"

[[ports]]
name = "p1"
mac = "02:00:00:00:00:02"

[[lfib]]
label = 100
action = "swap"
out_label = 200
port = "p1"
next_hop_mac = "02:00:00:00:00:0b"

[[lfib]]
label = 101
action = "pop"
port = "p0"
next_hop_mac = "02:00:00:00:00:0c"

# A local repair: swap, then push two node labels (outermost first).
[[lfib]]
label = 102
action = "swap"
out_label = 102
push = [500, 600]
port = "p1"
next_hop_mac = "02:00:00:00:00:0b"

# This node's own label: a segment that ends here.
[[lfib]]
label = 600
action = "pop"
"#;

    const DST: [u8; 6] = [2, 0, 0, 0, 0, 0x0b];
    const SRC1: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn entry(label: u32, bos: bool, ttl: u8) -> [u8; 4] {
        ((label << 12) | (u32::from(bos) << 8) | u32::from(ttl)).to_be_bytes()
    }

    /// Ethernet (to port p0, with the given VLAN tags) + `labels` + a
    /// 20-byte IPv4 stub.
    fn frame(vlans: &[u16], labels: &[[u8; 4]]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xaa];
        for v in vlans {
            f.extend(0x8100u16.to_be_bytes());
            f.extend(v.to_be_bytes());
        }
        f.extend(0x8847u16.to_be_bytes());
        for l in labels {
            f.extend(l);
        }
        f.push(0x45);
        f.extend([0u8; 19]);
        f
    }

    fn run(frames: &[Vec<u8>]) -> Vec<(Vec<u8>, Verdict)> {
        let node = NodeConfig::parse(NODE, "t.toml").expect("config");
        let t = Tables::from_config(&node, 1).expect("tables");
        let mut b: Batch<HeapFrame> = Batch::new();
        for f in frames {
            b.push(HeapFrame::from_bytes(f)).expect("room");
        }
        process(&mut b, &t);
        let v = b.verdicts().to_vec();
        b.frames()
            .iter()
            .zip(v)
            .map(|(f, v)| (crate::frame::Frame::data(f).to_vec(), v))
            .collect()
    }

    #[test]
    fn swap_rewrites_l2_and_label_and_drops_vlan_tags() {
        for vlans in [&[][..], &[7], &[7, 8]] {
            let out = run(&[frame(vlans, &[entry(100, true, 10)])]);
            let (d, v) = &out[0];
            assert_eq!(*v, Verdict::Tx(1), "vlans {vlans:?}");
            assert_eq!(d, &{
                let mut want = frame(&[], &[entry(200, true, 9)]);
                want[..6].copy_from_slice(&DST);
                want[6..12].copy_from_slice(&SRC1);
                want
            });
        }
    }

    #[test]
    fn pop_reveals_ip_or_the_next_label_with_the_lower_ttl() {
        let out = run(&[
            frame(&[5], &[entry(101, true, 10)]),
            frame(&[], &[entry(101, false, 10), entry(300, true, 50)]),
        ]);
        assert_eq!(out[0].1, Verdict::Tx(0));
        assert_eq!(&out[0].0[12..14], &[0x08, 0x00], "IPv4 after the pop");
        assert_eq!(out[0].0[14], 0x45);
        assert_eq!(out[0].0.len(), 14 + 20);
        assert_eq!(out[1].1, Verdict::Tx(0));
        assert_eq!(&out[1].0[12..14], &[0x88, 0x47]);
        assert_eq!(&out[1].0[14..18], &entry(300, true, 9));
    }

    #[test]
    fn a_repair_swaps_then_pushes_its_labels_above() {
        for vlans in [&[][..], &[7], &[7, 8]] {
            let f = frame(vlans, &[(entry(102, true, 10))]);
            let out = run(&[f]);
            let (d, v) = &out[0];
            assert_eq!(*v, Verdict::Tx(1), "vlans {vlans:?}");
            let mut want = frame(
                &[],
                &[
                    entry(500, false, 9),
                    entry(600, false, 9),
                    entry(102, true, 9),
                ],
            );
            want[..6].copy_from_slice(&DST);
            want[6..12].copy_from_slice(&SRC1);
            assert_eq!(d, &want, "vlans {vlans:?}");
        }
        // The traffic class stays with every entry pushed.
        let tc = |e: [u8; 4]| (u32::from_be_bytes(e) | 5 << 9).to_be_bytes();
        let out = run(&[frame(&[], &[tc(entry(102, true, 10))])]);
        assert!(out[0].0[14..26].chunks(4).all(|e| e[2] >> 1 & 7 == 5));
        // TTL 1: expires here, nothing pushed.
        let out = run(&[frame(&[], &[entry(102, true, 1)])]);
        assert_eq!(out[0].1, Verdict::Drop(DropReason::TtlExpired));
    }

    #[test]
    fn a_segment_ending_here_continues_with_the_label_below() {
        let out = run(&[
            // 600 (ours) above 100: popped, then 100 swapped to 200 with
            // the lower TTL less one.
            frame(&[], &[entry(600, false, 5), entry(100, true, 64)]),
            frame(&[9], &[entry(600, false, 64), entry(100, true, 7)]),
            // Ours twice, then a repair: every step on one frame.
            frame(
                &[],
                &[
                    entry(600, false, 30),
                    entry(600, false, 30),
                    entry(102, true, 30),
                ],
            ),
            // Ours above a label with no entry, and above nothing.
            frame(&[], &[entry(600, false, 5), entry(777, true, 5)]),
            frame(&[], &[entry(600, false, 5)])[..18].to_vec(),
        ]);
        let mut want = frame(&[], &[entry(200, true, 4)]);
        want[..6].copy_from_slice(&DST);
        want[6..12].copy_from_slice(&SRC1);
        assert_eq!((&out[0].0, out[0].1), (&want, Verdict::Tx(1)));
        want[14..18].copy_from_slice(&entry(200, true, 6));
        assert_eq!((&out[1].0, out[1].1), (&want, Verdict::Tx(1)));
        assert_eq!(out[2].1, Verdict::Tx(1));
        assert_eq!(
            &out[2].0[14..26],
            [
                entry(500, false, 29),
                entry(600, false, 29),
                entry(102, true, 29)
            ]
            .concat()
        );
        assert_eq!(out[3].1, Verdict::Drop(DropReason::NoRoute));
        assert_eq!(out[4].1, Verdict::Drop(DropReason::Malformed));
        // A stack of nothing but this node's own label ends after eight.
        let own = vec![entry(600, false, 9); 12];
        assert_eq!(
            run(&[frame(&[], &own)])[0].1,
            Verdict::Drop(DropReason::Unsupported)
        );
    }

    /// The one-port summary is given only when every frame was swapped out
    /// of the same port, which leaves every length as it was; any other
    /// batch gets none.
    #[test]
    fn one_port_summary_only_for_a_batch_of_swaps_to_one_port() {
        let node = NodeConfig::parse(NODE, "t.toml").expect("config");
        let t = Tables::from_config(&node, 1).expect("tables");
        let summary = |frames: &[Vec<u8>]| {
            let mut b: Batch<HeapFrame> = Batch::new();
            for f in frames {
                b.push(HeapFrame::from_bytes(f)).expect("room");
            }
            crate::stage::process_one_port(&mut b, &t)
        };
        let swap = frame(&[], &[entry(100, true, 10)]);
        let mut b: Batch<HeapFrame> = Batch::new();
        for _ in 0..3 {
            b.push(HeapFrame::from_bytes(&swap)).expect("room");
        }
        let one = crate::stage::process_one_port(&mut b, &t);
        assert_eq!(one, Some(crate::stage::OnePort { port: 1, aside: 0 }));
        for f in b.frames() {
            assert_eq!(crate::frame::Frame::len(f), swap.len());
        }
        // A pop to port 0 beside a swap to port 1, an expired TTL, no frame.
        assert_eq!(
            summary(&[swap.clone(), frame(&[], &[entry(101, true, 10)])]),
            None
        );
        // A frame that expires beside the swaps is set aside with its drop.
        assert_eq!(
            summary(&[swap.clone(), frame(&[], &[entry(100, true, 1)])]),
            Some(crate::stage::OnePort {
                port: 1,
                aside: 0b10
            })
        );
        assert_eq!(summary(&[]), None);
    }

    /// The fast walk writes no verdict while every frame goes out of the
    /// first one's port; wherever that stops (another port, a pop, a frame
    /// already finished, a drop), every frame still ends with its own
    /// verdict and bytes, as if each had been switched alone.
    #[test]
    fn verdicts_are_right_wherever_the_one_port_walk_stops() {
        let to1 = frame(&[], &[entry(100, true, 10)]);
        let to0 = frame(&[], &[entry(101, true, 10)]);
        let expired = frame(&[], &[entry(100, true, 1)]);
        // The same label with another traffic class or TTL, or behind a
        // VLAN tag: not the memo's frame, whatever came before.
        let tc5 = frame(
            &[],
            &[((100 << 12) | (5 << 9) | (1 << 8) | 10u32).to_be_bytes()],
        );
        let ttl9 = frame(&[], &[entry(100, true, 9)]);
        let tagged = frame(&[7], &[entry(100, true, 10)]);
        let alone = |f: &Vec<u8>| run(std::slice::from_ref(f)).remove(0);
        let cases: [&[&Vec<u8>]; 7] = [
            &[&to1, &to1, &to1, &to0, &to1],
            &[&to1, &to1, &expired, &to1],
            &[&to0, &to1, &to1],
            &[&expired, &to1, &to1],
            &[&to1; 32],
            &[&to1, &tc5, &to1, &ttl9, &ttl9, &to1],
            &[&to1, &tagged, &to1, &tagged],
        ];
        for case in cases {
            let frames: Vec<Vec<u8>> = case.iter().map(|f| (*f).clone()).collect();
            let want: Vec<_> = case.iter().map(|f| alone(f)).collect();
            assert_eq!(run(&frames), want, "batch of {} frames", case.len());
        }
        // A frame that entered finished keeps its verdict, even in the
        // middle of one-port swaps.
        let node = NodeConfig::parse(NODE, "t.toml").expect("config");
        let t = Tables::from_config(&node, 1).expect("tables");
        let mut b: Batch<HeapFrame> = Batch::new();
        b.push(HeapFrame::from_bytes(&to1)).expect("room");
        b.push_with(
            HeapFrame::from_bytes(&to1),
            Verdict::Drop(DropReason::Replay),
            0,
        )
        .expect("room");
        b.push(HeapFrame::from_bytes(&to1)).expect("room");
        process(&mut b, &t);
        assert_eq!(
            b.verdicts(),
            [
                Verdict::Tx(1),
                Verdict::Drop(DropReason::Replay),
                Verdict::Tx(1)
            ]
        );
        assert_eq!(crate::frame::Frame::data(&b.frames()[1]), &to1[..]);
    }

    proptest::proptest! {
        /// Any batch of labelled frames (labels that swap to either port,
        /// pop, or have no entry; any TC, TTL, bottom-of-stack bit; VLAN
        /// tags or none) leaves as each frame would alone: the one-port
        /// walk and the swap memo change no byte and no verdict.
        #[test]
        fn a_batch_switches_as_its_frames_would_alone(
            kinds in proptest::collection::vec(
                (
                    0usize..4,
                    0u32..8,
                    proptest::bool::ANY,
                    proptest::sample::select(vec![0u8, 1, 2, 9, 10, 255]),
                    0usize..3,
                ),
                3,
            ),
            // A few kinds of frame, so that runs of equal label entries
            // (the memo's case) are common.
            order in proptest::collection::vec(0usize..3, 1..=crate::frame::BURST),
        ) {
            let labels = [100, 101, 999, 100];
            let kinds: Vec<Vec<u8>> = kinds
                .iter()
                .map(|&(l, tc, bos, ttl, tags)| {
                    let e = (labels[l] << 12) | (tc << 9) | (u32::from(bos) << 8) | u32::from(ttl);
                    frame(&[7, 8][..tags], &[e.to_be_bytes()])
                })
                .collect();
            let frames: Vec<Vec<u8>> = order.iter().map(|&k| kinds[k].clone()).collect();
            let want: Vec<_> = frames.iter().map(|f| run(std::slice::from_ref(f)).remove(0)).collect();
            proptest::prop_assert_eq!(run(&frames), want);
        }
    }

    /// A frame whose top label entry is all zeros (label 0, TTL 0) has no
    /// lookup to reuse at the start of a batch: every node drops it, alone,
    /// first in a batch or after frames the swap left, and sends nothing.
    #[test]
    fn an_all_zero_label_entry_is_dropped_by_every_node() {
        let hops = crate::chain::default_chain().expect("embedded configs");
        let zero = frame(&[], &[[0, 0, 0, 0]]);
        let pop = frame(&[], &[entry(1001, true, 10)]);
        for hop in &hops {
            let t = Tables::from_config(&hop.node, 1).expect("tables");
            for batch in [
                vec![zero.clone()],
                vec![zero.clone(); 3],
                vec![pop.clone(), zero.clone()],
            ] {
                let mut b: Batch<HeapFrame> = Batch::new();
                for f in &batch {
                    b.push(HeapFrame::from_bytes(f)).expect("room");
                }
                process(&mut b, &t);
                for (f, v) in b.frames().iter().zip(b.verdicts()).skip(batch.len() - 1) {
                    assert!(
                        matches!(v, Verdict::Drop(_)),
                        "{}: zero entry got {v:?}, leaving as {:02x?}",
                        hop.node.name,
                        &crate::frame::Frame::data(f)[..18]
                    );
                }
            }
        }
    }

    #[test]
    fn bad_label_frames_are_counted_drops() {
        let out = run(&[
            frame(&[], &[entry(100, true, 1)]),
            frame(&[], &[entry(999, true, 10)]),
            frame(&[], &[])[..14].to_vec(),
            frame(&[], &[entry(101, false, 0)]),
        ]);
        let v: Vec<Verdict> = out.iter().map(|o| o.1).collect();
        assert_eq!(
            v,
            [
                Verdict::Drop(DropReason::TtlExpired),
                Verdict::Drop(DropReason::NoRoute),
                Verdict::Drop(DropReason::Malformed),
                Verdict::Drop(DropReason::TtlExpired),
            ]
        );
    }
}
