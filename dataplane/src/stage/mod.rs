//! Pipeline stages over a batch, as VPP runs its graph: every frame carries
//! its next stage in its verdict, and each stage runs once per batch over
//! the frames that name it, so its code stays hot in the i-cache while it
//! works through up to 32 frames.
//!
//! Graph: `dispatch` -> `mpls::switch` (transit and tunnel end) ->
//! `esp::decrypt` -> `deliver` (egress); `dispatch` -> `classify` ->
//! `esp::encrypt` -> `mpls::push` (ingress). A frame that fails gets
//! `Verdict::Drop(reason)`. Each stage module exports its per-frame step;
//! `process` owns the order.
//!
//! The first pass dispatches and label-switches in one walk (a transit
//! frame is finished there, its header still in L1). It leaves a
//! bitmask of the frames that still need a later stage; each later stage
//! visits only those bits, so a stage with nothing to do costs one test and
//! no stage compares verdicts it cannot act on.

pub mod classify;
pub mod deliver;
pub mod dispatch;
pub mod esp;
pub mod mpls;

use crate::frame::{Batch, Frame, Verdict, BURST};
use crate::tables::Tables;

/// One bit per batch slot.
type Mask = u64;
const _: () = assert!(BURST <= Mask::BITS as usize);

/// Runs every stage over `batch` against one table snapshot. Afterwards
/// each frame's verdict is `Tx(port)` or `Drop(reason)`. Frames may enter
/// at any stage (their verdict says which).
#[inline]
pub fn process<F: Frame>(batch: &mut Batch<F>, t: &Tables) {
    let (frames, verdicts) = batch.frames_verdicts_mut();
    let mut later: Mask = 0;
    for (i, (f, v)) in frames.iter_mut().zip(verdicts.iter_mut()).enumerate() {
        // Only the tag is read unless a stage runs: a frame that entered at
        // a later stage is left as it is. One call site for the switch, so
        // it inlines.
        let label = match *v {
            Verdict::Input => {
                let next = dispatch::dispatch(f, t);
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
        return;
    }
    // Ingress: classify -> encrypt -> push.
    visit(frames, verdicts, &mut later, |f, v| {
        (v == Verdict::Classify).then(|| classify::classify(f, t))
    });
    visit(frames, verdicts, &mut later, |f, v| match v {
        Verdict::Encrypt(fec) => Some(esp::encrypt(f, t, fec)),
        _ => None,
    });
    visit(frames, verdicts, &mut later, |f, v| match v {
        Verdict::Push(fec) => Some(mpls::push(f, t, fec)),
        _ => None,
    });
    // Egress: decrypt -> deliver.
    visit(frames, verdicts, &mut later, |f, v| {
        (v == Verdict::Decrypt).then(|| esp::decrypt(f, t))
    });
    visit(frames, verdicts, &mut later, |f, v| {
        (v == Verdict::Deliver).then(|| deliver::deliver(f, t))
    });
    // Anything still pending named a stage out of order (e.g. `Lfib` after
    // decryption cannot happen); the worker counts such verdicts.
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
