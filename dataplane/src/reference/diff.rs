//! The differential check: the production stages and the reference
//! forwarder over the same batches, frame by frame, verdict and bytes.

use super::cases::BatchCase;
use super::{Outcome, Reference, Room};
use crate::frame::{Batch, Frame, PortId, Verdict};
use crate::stage;
use crate::tables::Tables;

/// Which entry to the stages a batch goes through: the three a caller
/// has (`process`, the one-port summary the worker uses, the two halves
/// pipeline mode runs on different cores).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// `stage::process`.
    Process,
    /// `stage::process_one_port`, its summary applied as the worker does.
    OnePort,
    /// `stage::process_front` then `stage::process_crypto`.
    Split,
}

/// A frame on which the stages and the reference forwarder disagree.
#[derive(Clone, Debug)]
pub struct Mismatch {
    /// The receiving port.
    pub rx_port: PortId,
    /// Index of the frame in its batch.
    pub index: usize,
    /// The frame as received.
    pub input: Vec<u8>,
    /// What the reference forwarder does with it.
    pub want: Outcome,
    /// What the stages did.
    pub got: Outcome,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |o: &Outcome| match o {
            Outcome::Tx { port, frame } => format!("Tx({port}) {:02x?}", frame),
            Outcome::Drop(r) => format!("Drop({})", r.name()),
            Outcome::Punt { frame } => format!("Punt {:02x?}", frame),
            Outcome::Unfinished => "unfinished".to_string(),
        };
        write!(
            f,
            "frame {} on port {}: {:02x?}\n  reference: {}\n  stages:    {}",
            self.index,
            self.rx_port,
            self.input,
            show(&self.want),
            show(&self.got)
        )
    }
}

/// Totals of a differential run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Frames compared.
    pub frames: u64,
    /// Of those, sent by both.
    pub sent: u64,
    /// Of those, punted by both.
    pub punted: u64,
}

/// The ESP sequence number (low half) of a sealed ingress frame as the
/// stages write it: Ethernet, one label entry unless the FEC has none,
/// outer IPv4, the UDP header of ESP in UDP, and the SPI before it.
fn sealed_seq(frame: &[u8]) -> Option<u32> {
    let mut at = 14;
    if frame.get(12..14)? == [0x88, 0x47] {
        at += 4;
    }
    let proto = *frame.get(at + 9)?;
    at += 20;
    if proto == 17 {
        at += 8;
    }
    let s = frame.get(at + 4..at + 8)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// The smallest number at or above `min` whose low 32 bits are `lo`.
fn lift(min: u64, lo: u32) -> u64 {
    let c = (min & !0xffff_ffff) | u64::from(lo);
    if c < min {
        c.wrapping_add(1 << 32)
    } else {
        c
    }
}

/// Makes a backend's frame from bytes and, if given, a tight data room;
/// None when the backend has no buffer for it.
pub type MakeFrame<'a, F> = dyn FnMut(&[u8], Option<usize>) -> Option<F> + 'a;

/// Runs one batch through the stages (frames made by `make` from bytes
/// and a tight data room, if any) and through `model`, and compares them.
/// `t` and `model` must describe the same node and carry their SA state
/// from batch to batch.
pub fn check_batch<F: Frame>(
    t: &Tables,
    model: &mut Reference,
    case: &BatchCase,
    entry: Entry,
    make: &mut MakeFrame<'_, F>,
    tally: &mut Tally,
) -> Result<(), Mismatch> {
    let mut b: Batch<F> = Batch::new();
    b.set_rx_port(case.rx_port);
    let mut inputs = Vec::with_capacity(case.frames.len());
    for (bytes, room) in &case.frames {
        let Some(f) = make(bytes, *room) else {
            continue;
        };
        let r = Room {
            headroom: f.headroom(),
            size: f.len() + f.tailroom(),
        };
        // A backend's buffer may be smaller than the frame: it then
        // arrives cut, as a port would deliver it.
        inputs.push((f.data().to_vec(), r));
        if b.push(f).is_err() {
            break;
        }
    }
    match entry {
        Entry::Process => stage::process(&mut b, t),
        Entry::OnePort => {
            if let Some(one) = stage::process_one_port(&mut b, t) {
                // Frames set aside carry their own verdict (a drop or a
                // punt); the worker sends every other one out of the port.
                for (i, v) in b.verdicts().iter().enumerate() {
                    let aside = one.aside >> i & 1 == 1;
                    assert_eq!(
                        aside,
                        matches!(v, Verdict::Drop(_) | Verdict::Punt),
                        "slot {i}: set aside {aside}, verdict {v:?}"
                    );
                }
                one.write_verdicts(&mut b);
            }
        }
        Entry::Split => {
            stage::process_front(&mut b, t);
            stage::process_crypto(&mut b, t);
        }
    }
    for (i, ((input, room), (f, v))) in inputs
        .iter()
        .zip(b.frames().iter().zip(b.verdicts()))
        .enumerate()
    {
        let got = match *v {
            Verdict::Tx(port) => Outcome::Tx {
                port,
                frame: f.data().to_vec(),
            },
            Verdict::Drop(r) => Outcome::Drop(r),
            Verdict::Punt => Outcome::Punt {
                frame: f.data().to_vec(),
            },
            _ => Outcome::Unfinished,
        };
        // The reference seals with the number the stages used, if they
        // sealed; the rule it checks is that numbers only grow.
        let used = match &got {
            Outcome::Tx { frame, .. } => sealed_seq(frame),
            Outcome::Drop(_) | Outcome::Punt { .. } | Outcome::Unfinished => None,
        };
        let mut choose = |_spi: u32, min: u64| used.map_or(min, |lo| lift(min, lo));
        let want = model.forward(case.rx_port, input, *room, &mut choose);
        tally.frames += 1;
        if want != got {
            return Err(Mismatch {
                rx_port: case.rx_port,
                index: i,
                input: input.clone(),
                want,
                got,
            });
        }
        tally.sent += u64::from(matches!(got, Outcome::Tx { .. }));
        tally.punted += u64::from(matches!(got, Outcome::Punt { .. }));
    }
    Ok(())
}

/// A heap frame holding `bytes`, in a buffer of `room` bytes when given
/// (no tailroom to encapsulate into), else the usual one.
pub fn heap_frame(bytes: &[u8], room: Option<usize>) -> Option<crate::frame::HeapFrame> {
    use crate::frame::HeapFrame;
    Some(match room {
        Some(r) => {
            let mut f = HeapFrame::with_room(r.max(bytes.len()));
            f.reset_from(bytes);
            f
        }
        None => HeapFrame::from_bytes(bytes),
    })
}

/// Reads `bytes` as traffic for each node of the embedded chain (fresh SA
/// state for each) and checks every batch, rotating through the entries
/// to the stages, with frames from `make`. Returns the first disagreement,
/// named by node and batch.
pub fn check_chain<F: Frame>(
    bytes: &[u8],
    make: &mut MakeFrame<'_, F>,
    tally: &mut Tally,
) -> Result<(), String> {
    // Parsed once: the configurations never change, and parsing them for
    // every input was most of a fuzzer's execution.
    static CHAIN: std::sync::OnceLock<Result<Vec<crate::chain::Hop>, String>> =
        std::sync::OnceLock::new();
    let hops = CHAIN
        .get_or_init(|| crate::chain::default_chain().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)?;
    for (n, hop) in hops.iter().enumerate() {
        let pick = bytes.get(n).copied().unwrap_or(0);
        let node = with_partner(&with_pushes(&with_port_mtus(&hop.node, pick), pick), pick);
        let t = Tables::from_config(&node, 1).map_err(|e| e.to_string())?;
        let mut model = Reference::new(&node);
        let mut traffic = super::cases::Traffic::new(&node);
        let mut c = super::cases::Choices::new(bytes);
        for (i, case) in traffic.batches(&mut c).iter().enumerate() {
            let entry = [Entry::Process, Entry::OnePort, Entry::Split][(i + n) % 3];
            check_batch(&t, &mut model, case, entry, make, tally)
                .map_err(|m| format!("{}: batch {i} ({entry:?}): {m}", hop.node.name))?;
        }
    }
    Ok(())
}

/// `node`, its port MTUs chosen by `pick`: half the time as configured,
/// else each port's from MTUs about the sizes the traffic has (so that
/// some frames fit a port exactly and some miss by a byte).
fn with_port_mtus(node: &crate::config::NodeConfig, pick: u8) -> crate::config::NodeConfig {
    const MTUS: [u16; 8] = [68, 576, 1280, 1455, 1456, 1500, 1522, 1620];
    let mut node = node.clone();
    if pick & 1 == 1 {
        for (k, p) in node.ports.iter_mut().enumerate() {
            p.mtu = MTUS[(usize::from(pick >> 1) + 3 * k) % MTUS.len()];
        }
    }
    node
}

/// `node`, its label swaps made to push a stack when `pick` says so (as
/// a local repair does): the first swap pushes one label, the next two,
/// the next three, the labels taken from the node's own LFIB, so that a
/// pushed label also ends a segment here and the frame continues by the
/// label below.
/// `node`, for some `pick`s, with every other FEC unlabelled (plain ESP out
/// of its port, as toward a partner gateway) and its SAs in UDP (RFC 3948).
fn with_partner(node: &crate::config::NodeConfig, pick: u8) -> crate::config::NodeConfig {
    let mut node = node.clone();
    if pick & 0x04 == 0 {
        return node;
    }
    for (k, f) in node.fec.iter_mut().enumerate() {
        if k % 2 == 0 {
            f.label = None;
        }
    }
    for s in &mut node.sa {
        s.udp_encap = pick & 0x08 != 0;
    }
    node
}

fn with_pushes(node: &crate::config::NodeConfig, pick: u8) -> crate::config::NodeConfig {
    let mut node = node.clone();
    if pick & 0x40 == 0 {
        return node;
    }
    let labels: Vec<u32> = node.lfib.iter().map(|l| l.label).collect();
    let mut k = 0;
    for l in node
        .lfib
        .iter_mut()
        .filter(|l| l.action == crate::config::LfibAction::Swap)
    {
        k = k % crate::config::MAX_LFIB_PUSH + 1;
        l.push = (0..k)
            .map(|j| labels[(usize::from(pick) + j) % labels.len()])
            .collect();
    }
    node
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::default_chain;
    use crate::frame::HeapFrame;
    use crate::reference::cases::{Choices, Traffic};

    #[test]
    fn lift_finds_the_next_number_with_those_low_bits() {
        assert_eq!(lift(1, 1), 1);
        assert_eq!(lift(5, 7), 7);
        assert_eq!(lift(5, 3), (1 << 32) + 3);
        assert_eq!(lift((1 << 32) + 9, 10), (1 << 32) + 10);
    }

    /// Runs `bytes` as traffic for every embedded node, through every
    /// entry, and returns the first disagreement.
    fn differ(bytes: &[u8]) -> Result<Tally, String> {
        let mut tally = Tally::default();
        check_chain(bytes, &mut heap_frame, &mut tally)?;
        Ok(tally)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 256,
            .. proptest::prelude::ProptestConfig::default()
        })]

        /// Whatever the batches hold, every frame leaves the stages with
        /// the verdict and the bytes the reference forwarder gives it.
        #[test]
        fn the_stages_forward_as_the_reference_does(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)
        ) {
            if let Err(e) = differ(&bytes) {
                proptest::prop_assert!(false, "{}", e);
            }
        }
    }

    /// The traffic is rich enough to mean something: across many seeds,
    /// every kind of outcome the rules have appears.
    #[test]
    fn the_traffic_reaches_every_outcome() {
        use crate::drop_reason::DropReason;
        let hops = default_chain().expect("chain");
        let mut seen = std::collections::HashSet::new();
        let mut sent = 0;
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..300 {
            let bytes: Vec<u8> = (0..2048)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            for hop in &hops {
                let t = Tables::from_config(&hop.node, 1).expect("tables");
                let mut traffic = Traffic::new(&hop.node);
                let mut c = Choices::new(&bytes);
                for case in traffic.batches(&mut c) {
                    let mut b: Batch<HeapFrame> = Batch::new();
                    b.set_rx_port(case.rx_port);
                    for (f, room) in &case.frames {
                        if let Some(f) = heap_frame(f, *room) {
                            let _ = b.push(f);
                        }
                    }
                    stage::process(&mut b, &t);
                    for v in b.verdicts() {
                        match v {
                            Verdict::Drop(r) => {
                                seen.insert(*r);
                            }
                            _ => sent += 1,
                        }
                    }
                }
            }
        }
        assert!(sent > 1000, "only {sent} frames forwarded");
        for r in [
            DropReason::Malformed,
            DropReason::NoRoute,
            DropReason::TtlExpired,
            DropReason::AuthFailed,
            DropReason::Replay,
            DropReason::UnknownSpi,
            DropReason::NoRoom,
            DropReason::Unsupported,
            DropReason::NotForUs,
            DropReason::BadSourceMac,
            DropReason::BadChecksum,
            DropReason::Martian,
            DropReason::PolicyMismatch,
            DropReason::TooBig,
        ] {
            assert!(seen.contains(&r), "no frame was dropped as {}", r.name());
        }
    }
}
