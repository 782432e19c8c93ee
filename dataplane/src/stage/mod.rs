//! Pipeline stages over a batch, as VPP runs its graph: every frame carries
//! its next stage in its verdict, and each stage runs once per batch over
//! the frames that name it, so its code stays hot in the i-cache while it
//! works through up to 32 frames.
//!
//! Graph: `dispatch` -> `mpls::switch` (transit and tunnel end) ->
//! `esp::decrypt` -> `deliver` (egress); `dispatch` -> `classify` ->
//! `esp::encrypt`, which writes the label push with the ESP headers
//! (ingress). A frame that fails gets
//! `Verdict::Drop(reason)`. Each stage module exports its per-frame step;
//! `process` owns the order.
//!
//! The first pass finishes transit frames (an untagged label swap) in one
//! tight walk that, while every frame so far went out of the same port,
//! writes no verdict at all; the frames it leaves are dispatched and
//! label-switched in a second walk, run only when there are any. That
//! leaves a bitmask of the frames that still need a later stage; each
//! later stage visits only those bits, so a stage with nothing to do costs one test and
//! no stage compares verdicts it cannot act on.

pub mod classify;
pub mod deliver;
pub mod dispatch;
pub mod esp;
pub mod ip_forward;
pub mod mpls;

use crate::frame::{Batch, Frame, PortId, Verdict, BURST};
use crate::tables::Tables;

/// One bit per batch slot.
type Mask = u64;
const _: () = assert!(BURST <= Mask::BITS as usize);

/// Runs every stage over `batch` against one table snapshot. Afterwards
/// each frame's verdict is `Tx(port)` or `Drop(reason)`. Frames may enter
/// at any stage (their verdict says which).
#[inline]
pub fn process<F: Frame>(batch: &mut Batch<F>, t: &Tables) {
    if let Some(one) = process_one_port(batch, t) {
        one.write_verdicts(batch);
    }
}

/// A batch the first walk finished as transit swaps out of one port,
/// beside frames it set aside as finished otherwise (dropped, or punted
/// to the node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnePort {
    /// The port every swapped frame leaves by.
    pub port: PortId,
    /// The frames set aside, one bit per slot: their verdicts are written
    /// (`Drop` or `Punt`); the others' are not.
    pub aside: u64,
}

impl OnePort {
    /// Writes `Tx(port)` as the verdict of every frame not set aside, as
    /// [`process`] leaves them.
    pub fn write_verdicts<F>(&self, batch: &mut Batch<F>) {
        let (_, verdicts) = batch.frames_verdicts_mut();
        fill_tx_except(verdicts, self.port, self.aside);
    }
}

/// Writes `Tx(port)` as the verdict of every slot whose bit is clear in
/// `aside`.
#[inline]
fn fill_tx_except(verdicts: &mut [Verdict], port: PortId, aside: Mask) {
    if aside == 0 {
        verdicts.fill(Verdict::Tx(port));
        return;
    }
    for (i, v) in verdicts.iter_mut().enumerate() {
        if aside >> i & 1 == 0 {
            *v = Verdict::Tx(port);
        }
    }
}

/// As [`process`], except when the first walk finished every frame as a
/// transit swap out of one port (the common case at a satellite), or as
/// such a swap and a few frames finished otherwise (dropped, or punted to
/// the node: [`OnePort::aside`]): then it returns that port and leaves the
/// verdicts of the swapped frames as they were, and the caller sends the
/// batch whole, less the frames set aside. Such a swap rewrites headers in
/// place, so each frame keeps the length it was received with. With None
/// every verdict is final, as after [`process`].
#[inline]
pub fn process_one_port<F: Frame>(batch: &mut Batch<F>, t: &Tables) -> Option<OnePort> {
    let (later, one) = front(batch, t);
    if later != 0 {
        crypto(batch, t, later);
    }
    one
}

/// The stages before the AEAD: dispatch, LFIB, classify. Frames leave with
/// `Tx`, `Drop`, `Encrypt(fec)` or `Decrypt`. With [`process_crypto`]
/// under the same snapshot this equals [`process`] (the runtime's pipeline
/// mode runs the two halves on different cores).
#[inline]
pub fn process_front<F: Frame>(batch: &mut Batch<F>, t: &Tables) {
    if let (_, Some(one)) = front(batch, t) {
        one.write_verdicts(batch);
    }
}

/// The AEAD stages and what follows them: encrypt, push, decrypt, deliver.
/// Must see the snapshot [`process_front`] used: verdicts carry its indices.
#[inline]
pub fn process_crypto<F: Frame>(batch: &mut Batch<F>, t: &Tables) {
    let mut later: Mask = 0;
    for (i, v) in batch.verdicts().iter().enumerate() {
        later |= Mask::from(!v.is_final()) << i;
    }
    if later != 0 {
        crypto(batch, t, later);
    }
}

/// Dispatch and label switching, then classify; returns the frames that
/// still need a later stage.
///
/// A first tight walk finishes the transit case (a received untagged
/// frame whose label is swapped) with one look at each header; a frame
/// with the label entry of the one before reuses its lookup. While
/// every frame so far went out of the port the first one did, it writes
/// no verdict; when the whole batch did, that port comes back and the
/// verdicts are left as they were. Otherwise the frames it swapped get
/// their `Tx` verdicts and those it left go through the general dispatch
/// and label switch in a second walk, which a batch of transit frames
/// never runs.
#[inline]
fn front<F: Frame>(batch: &mut Batch<F>, t: &Tables) -> (Mask, Option<OnePort>) {
    // Frames are taken only when sent to the receiving port's MAC; a batch
    // from a port the snapshot does not know is addressed to no port.
    let Some(rx_mac) = t.port_macs.get(usize::from(batch.rx_port())).copied() else {
        batch.set_all(Verdict::Drop(crate::drop_reason::DropReason::NotForUs));
        return (0, None);
    };
    let rx_mac = &rx_mac;
    let rx = batch.rx_port();
    let (frames, verdicts) = batch.frames_verdicts_mut();
    let mut memo = mpls::SwapMemo::default();
    // Frames [0, done) were swapped out of `port`, their verdicts unwritten,
    // except those set aside in `aside` (finished otherwise, with theirs).
    let (mut done, mut port, mut aside) = (0, 0, 0 as Mask);
    if let (Some(f), Some(&v)) = (frames.first_mut(), verdicts.first()) {
        if let Some(p) = swap_received(f, v, t, rx_mac, &mut memo) {
            (done, port) = (1, p);
        }
    }
    if let (1, Some(fs), Some(vs)) = (done, frames.get_mut(1..), verdicts.get_mut(1..)) {
        // The first frame that did not go out of `port`, if any.
        let stop = fs
            .iter_mut()
            .zip(vs.iter_mut())
            .enumerate()
            .position(|(i, (f, v))| {
                match swap_received(f, *v, t, rx_mac, &mut memo) {
                    Some(p) if p == port => false,
                    Some(p) => {
                        // Another port: this frame is finished, with its verdict.
                        *v = Verdict::Tx(p);
                        true
                    }
                    None => {
                        // Not a swap: its own way now. Dropped or punted, it
                        // is set aside and the walk goes on; anything else
                        // ends the walk, its verdict written.
                        *v = dispatch_and_switch(f, *v, t, rx, rx_mac);
                        let finished = matches!(*v, Verdict::Drop(_) | Verdict::Punt);
                        aside |= Mask::from(finished) << (i + 1);
                        !finished
                    }
                }
            });
        match stop {
            None => return (0, Some(OnePort { port, aside })),
            Some(i) => done += i,
        }
    }
    if let Some(swapped) = verdicts.get_mut(..done) {
        fill_tx_except(swapped, port, aside);
    }
    // Frame `done`, if any, ended the walk above: it has been tried (and,
    // if no swap, dispatched and switched), and is finished or left for the
    // later stages. The rest take the transit swap first, now writing
    // verdicts.
    let mut rest = verdicts.get(done).is_some_and(|v| !v.is_final());
    for (f, v) in frames.iter_mut().zip(verdicts.iter_mut()).skip(done + 1) {
        match swap_received(f, *v, t, rx_mac, &mut memo) {
            Some(p) => *v = Verdict::Tx(p),
            None => rest |= !v.is_final(),
        }
    }
    if !rest {
        return (0, None);
    }
    let mut later: Mask = 0;
    for (i, (f, v)) in frames.iter_mut().zip(verdicts.iter_mut()).enumerate() {
        // Only the tag is read unless a stage runs: a frame that entered at
        // a later stage, or that the first walk finished (`Tx`), is left as
        // it is. One call site for the switch, so it inlines.
        let label = match *v {
            Verdict::Input => {
                let next = dispatch::dispatch(f, t, rx, rx_mac);
                let label = matches!(next, Verdict::Lfib);
                if !label {
                    *v = next;
                }
                label
            }
            Verdict::Lfib => true,
            _ => false,
        };
        if label {
            *v = mpls::switch(f, t);
        }
        later |= Mask::from(!v.is_final()) << i;
    }
    if later == 0 {
        return (0, None);
    }
    // Ingress: classify (encrypt and push follow in `crypto`).
    visit(frames, verdicts, &mut later, |f, v| {
        (v == Verdict::Classify).then(|| classify::classify(f, t))
    });
    (later, None)
}

/// The general dispatch and label switch of a frame with verdict `v`
/// (`Input`: just received); its next verdict.
#[inline(never)]
fn dispatch_and_switch<F: Frame>(
    f: &mut F,
    v: Verdict,
    t: &Tables,
    rx: PortId,
    rx_mac: &crate::config::Mac,
) -> Verdict {
    let next = match v {
        Verdict::Input => dispatch::dispatch(f, t, rx, rx_mac),
        other => other,
    };
    match next {
        Verdict::Lfib => mpls::switch(f, t),
        other => other,
    }
}

/// The transit swap of a frame just received (verdict `Input`); None for
/// any other frame, and for one the swap leaves to the general path.
#[inline(always)]
fn swap_received<F: Frame>(
    f: &mut F,
    v: Verdict,
    t: &Tables,
    rx_mac: &crate::config::Mac,
    memo: &mut mpls::SwapMemo,
) -> Option<PortId> {
    match v {
        Verdict::Input => mpls::swap_untagged(f, t, rx_mac, memo),
        _ => None,
    }
}

/// Encrypt, with the label push (ingress), and decrypt -> deliver
/// (egress) over the frames of `later`.
#[inline]
fn crypto<F: Frame>(batch: &mut Batch<F>, t: &Tables, mut later: Mask) {
    let (frames, verdicts) = batch.frames_verdicts_mut();
    let to_encrypt = count(verdicts, later, |v| matches!(v, Verdict::Encrypt(_)));
    if to_encrypt > 0 {
        // Two passes (see `esp::PendingSeal`): frame every packet, then
        // encrypt them all.
        let mut seqs = esp::SeqCache::new(to_encrypt);
        two_passes(
            frames,
            verdicts,
            &mut later,
            &mut seqs,
            |f, v, seqs| match v {
                Verdict::Encrypt(fec) => {
                    Some(esp::encapsulate(f, t, fec, seqs).map_err(Verdict::Drop))
                }
                _ => None,
            },
            |f, job, _| esp::seal(f, t, job),
        );
    }
    // Egress: decrypt -> deliver, in two passes again: check every packet
    // up to its ICV, then open them.
    let mut sas = esp::InboundCache::default();
    two_passes(
        frames,
        verdicts,
        &mut later,
        &mut sas,
        |f, v, sas| (v == Verdict::Decrypt).then(|| esp::unwrap(f, t, sas).map_err(Verdict::Drop)),
        |f, job, sas| esp::open(f, t, sas, job),
    );
    visit(frames, verdicts, &mut later, |f, v| {
        (v == Verdict::Deliver).then(|| deliver::deliver(f, t))
    });
    // Anything still pending named a stage out of order (e.g. `Lfib` after
    // decryption cannot happen); the worker counts such verdicts.
}

/// A stage in two passes over the frames of `pending` (see
/// `esp::PendingSeal`): `first` takes each frame it acts on and returns
/// its job for the second pass or the verdict it ends with; `second` then
/// finishes every queued frame, in order. `state` is shared by both.
#[inline(always)]
fn two_passes<F: Frame, J: Copy + Default, S>(
    frames: &mut [F],
    verdicts: &mut [Verdict],
    pending: &mut Mask,
    state: &mut S,
    mut first: impl FnMut(&mut F, Verdict, &mut S) -> Option<Result<J, Verdict>>,
    mut second: impl FnMut(&mut F, &J, &mut S) -> Verdict,
) {
    // Nothing left (an ingress batch at the egress step): not even the
    // queue's zeroing.
    if *pending == 0 {
        return;
    }
    let mut queue = esp::BatchQueue::<J>::default();
    let mut m = *pending;
    while m != 0 {
        let i = m.trailing_zeros() as usize;
        m &= m - 1;
        let (Some(f), Some(v)) = (frames.get_mut(i), verdicts.get_mut(i)) else {
            break;
        };
        let Some(done) = first(f, *v, state) else {
            continue;
        };
        match done.map(|job| queue.push(i, job)) {
            Ok(Ok(())) => {}
            // More frames than a batch holds: finish this one now.
            Ok(Err(job)) => *v = second(f, &job, state),
            Err(verdict) => *v = verdict,
        }
        if v.is_final() {
            *pending &= !(1 << i);
        }
    }
    for (i, job) in queue.iter() {
        let (Some(f), Some(v)) = (frames.get_mut(i), verdicts.get_mut(i)) else {
            break;
        };
        *v = second(f, job, state);
        if v.is_final() {
            *pending &= !(1 << i);
        }
    }
}

/// How many frames whose bit is set in `mask` have a verdict `want` accepts.
#[inline]
fn count(verdicts: &[Verdict], mask: Mask, want: impl Fn(Verdict) -> bool) -> u64 {
    let mut m = mask;
    let mut n = 0;
    while m != 0 {
        let i = m.trailing_zeros() as usize;
        m &= m - 1;
        n += u64::from(verdicts.get(i).is_some_and(|v| want(*v)));
    }
    n
}

/// Applies `step` to the frames whose bit is set in `pending`; `step`
/// returns the new verdict of a frame it acts on (None: not its stage).
/// Frames that reach a final verdict leave `pending`.
#[inline(always)]
fn visit<F: Frame>(
    frames: &mut [F],
    verdicts: &mut [Verdict],
    pending: &mut Mask,
    mut step: impl FnMut(&mut F, Verdict) -> Option<Verdict>,
) {
    let mut m = *pending;
    while m != 0 {
        let i = m.trailing_zeros() as usize;
        m &= m - 1;
        let (Some(f), Some(v)) = (frames.get_mut(i), verdicts.get_mut(i)) else {
            break;
        };
        if let Some(next) = step(f, *v) {
            *v = next;
            if next.is_final() {
                *pending &= !(1 << i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::default_chain;
    use crate::drop_reason::DropReason;
    use crate::frame::HeapFrame;
    use crate::gen::{generate, FrameSize, GenSpec};

    /// ESP sequence numbers, reserved per batch, still count up in frame
    /// order across batches; a frame that cannot be encrypted (no tailroom)
    /// is dropped and costs at most one number.
    #[test]
    fn ingress_sequence_numbers_follow_frame_order_across_batches() {
        let hops = default_chain().expect("embedded configs");
        let t = Tables::from_config(&hops[0].node, 1).expect("tables");
        let input = generate(&GenSpec {
            count: 40,
            size: FrameSize::Fixed(64),
            ..GenSpec::default()
        })
        .expect("generate");
        let mut seqs = Vec::new();
        for (n, chunk) in input.chunks(BURST).enumerate() {
            let mut b: Batch<HeapFrame> = Batch::new();
            for (i, p) in chunk.iter().enumerate() {
                let f = if n == 1 && i == 2 {
                    // No tailroom for padding, trailer and ICV.
                    let mut f = HeapFrame::with_room(p.data.len());
                    f.reset_from(&p.data);
                    f
                } else {
                    HeapFrame::from_bytes(&p.data)
                };
                b.push(f).expect("room");
            }
            process(&mut b, &t);
            for (f, v) in b.frames().iter().zip(b.verdicts()) {
                match v {
                    Verdict::Tx(_) => {
                        // Ethernet 14 + MPLS 4 + IPv4 20 + SPI 4 = sequence number.
                        let d = f.data();
                        seqs.push(u32::from_be_bytes([d[42], d[43], d[44], d[45]]));
                    }
                    v => assert_eq!(*v, Verdict::Drop(DropReason::NoRoom)),
                }
            }
        }
        assert_eq!(seqs.len(), 39);
        let first: Vec<u32> = (1..=BURST as u32).collect();
        assert_eq!(seqs[..BURST], first[..], "one batch: 1, 2, 3, ...");
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "frame order: {seqs:?}"
        );
        assert!(seqs[38] <= 40, "at most the failed frame's number skipped");
    }
}
