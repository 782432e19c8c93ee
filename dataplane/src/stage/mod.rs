//! Pipeline stages. Each walks a whole batch and acts on the frames whose
//! verdict names it (vector processing, as in VPP), so each stage's code
//! stays hot in the i-cache while it runs over up to 32 frames.
//!
//! Order: `dispatch` -> `classify` -> `esp::encrypt` -> `mpls::push`
//! (ingress), `mpls::lfib` (transit and egress), `esp::decrypt` ->
//! `deliver` (egress). A frame that fails gets `Verdict::Drop(reason)`.

pub mod classify;
pub mod deliver;
pub mod dispatch;
pub mod esp;
pub mod mpls;

use crate::frame::{Batch, Frame};
use crate::tables::Tables;

/// Runs every stage over `batch` against one table snapshot. Afterwards
/// each frame's verdict is `Tx(port)` or `Drop(reason)`.
#[inline]
pub fn process<F: Frame>(batch: &mut Batch<F>, t: &Tables) {
    process_front(batch, t);
    process_crypto(batch, t);
}

/// The stages before the AEAD: dispatch, LFIB, classify. Frames leave with
/// `Tx`, `Drop`, `Encrypt(fec)` or `Decrypt`. With [`process_crypto`]
/// under the same snapshot this equals [`process`] (the runtime's pipeline
/// mode runs the two halves on different cores).
#[inline]
pub fn process_front<F: Frame>(batch: &mut Batch<F>, t: &Tables) {
    dispatch::run(batch, t);
    mpls::lfib(batch, t);
    classify::run(batch, t);
}

/// The AEAD stages and what follows them: encrypt, push, decrypt, deliver.
/// Must see the snapshot [`process_front`] used: verdicts carry its indices.
#[inline]
pub fn process_crypto<F: Frame>(batch: &mut Batch<F>, t: &Tables) {
    esp::encrypt(batch, t);
    mpls::push(batch, t);
    esp::decrypt(batch, t);
    deliver::run(batch, t);
}
