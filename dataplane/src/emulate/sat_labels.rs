//! When a node needs the satellites' node labels in its tables.
//!
//! A node's tables hold, besides its gateway-label routes, an LFIB entry
//! for every satellite's node label (both blocks), from a shortest-path
//! computation of its own over the epoch's graph. Those entries are most
//! of an install's cost, and only a frame whose label stack carries a
//! satellite label ever looks one up: tables built without them give any
//! other frame exactly the verdict the full tables give (the LFIB is the
//! only table they differ in, and only at satellite labels).
//!
//! So the emulator builds a node's tables without them, and builds the
//! full tables, as the agent installs them, before it hands the node a
//! batch with a frame [`needs_sat_labels`] says may need them. The test
//! below and `emulate::node`'s check both ways over real epochs.

use crate::packet::{ethernet, mpls::MplsEntry, vlan};
use meshplane_control::labels::LabelPlan;

/// Label entries the MPLS stage reads at most below the top (its
/// `MAX_STACK`), and one more: a deeper stack counts as needing them.
const STACK_LOOK: usize = 9;

/// MPLS unicast ethertype, the only one the stages label-switch.
const MPLS: u16 = 0x8847;

/// True unless `frame` is sure to need no satellite label from the LFIB:
/// a frame that is not MPLS unicast (after any VLAN tags) is never
/// label-switched, and one whose label stack, read to its bottom, holds
/// no satellite label (of either block) looks up only other labels.
/// Anything it cannot read to the end counts as needing them.
pub fn needs_sat_labels(frame: &[u8], plan: &LabelPlan) -> bool {
    let l2 = if frame.get(12..14) == Some(&MPLS.to_be_bytes()[..]) {
        ethernet::HEADER_LEN
    } else {
        match vlan::parse_l2(frame) {
            Ok(l2) if l2.ethertype != MPLS => return false,
            Ok(l2) => l2.header_len,
            Err(_) => return true,
        }
    };
    let mut at = l2;
    for _ in 0..STACK_LOOK {
        let Some(b) = frame.get(at..at + 4) else {
            return true;
        };
        let e = MplsEntry::from_bytes([b[0], b[1], b[2], b[3]]);
        if plan.decode_sat(e.label()).is_some() {
            return true;
        }
        if e.bos() {
            return false;
        }
        at += 4;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ethertype: &[u8], labels: &[(u32, bool)]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(ethertype);
        for &(l, bos) in labels {
            let e = (l << 12) | (u32::from(bos) << 8) | 64;
            f.extend_from_slice(&e.to_be_bytes());
        }
        f.extend_from_slice(&[0x45; 20]);
        f
    }

    #[test]
    fn only_stacks_with_a_satellite_label_or_unreadable_need_them() {
        let p = LabelPlan::default();
        let mpls = [0x88, 0x47];
        // Gateway labels of both blocks, and labels of no block.
        assert!(!needs_sat_labels(&frame(&mpls, &[(1007, true)]), &p));
        assert!(!needs_sat_labels(&frame(&mpls, &[(6007, true)]), &p));
        assert!(!needs_sat_labels(&frame(&mpls, &[(99, true)]), &p));
        assert!(!needs_sat_labels(
            &frame(&mpls, &[(1007, false), (6001, true)]),
            &p
        ));
        // A satellite label anywhere in the stack, of either block.
        assert!(needs_sat_labels(&frame(&mpls, &[(20_005, true)]), &p));
        assert!(needs_sat_labels(&frame(&mpls, &[(40_005, true)]), &p));
        assert!(needs_sat_labels(
            &frame(&mpls, &[(1007, false), (40_005, true)]),
            &p
        ));
        // Behind a VLAN tag too.
        let mut tagged = frame(&[0x81, 0x00], &[]);
        tagged.truncate(14);
        tagged.extend_from_slice(&[0, 5, 0x88, 0x47]);
        tagged.extend_from_slice(&((20_005u32 << 12) | 0x100 | 64).to_be_bytes());
        assert!(needs_sat_labels(&tagged, &p));
        // A stack without its bottom, or cut short, or a frame too short
        // to tell.
        let deep: Vec<(u32, bool)> = (0..12).map(|_| (1007, false)).collect();
        assert!(needs_sat_labels(&frame(&mpls, &deep), &p));
        let mut cut = frame(&mpls, &[(1007, false)]);
        cut.truncate(18);
        assert!(needs_sat_labels(&cut, &p));
        assert!(needs_sat_labels(&[0u8; 6], &p));
        // Not label-switched at all.
        assert!(!needs_sat_labels(&frame(&[0x08, 0x00], &[]), &p));
        assert!(!needs_sat_labels(&frame(&[0x86, 0xdd], &[]), &p));
        assert!(!needs_sat_labels(&frame(&[0x08, 0x06], &[]), &p));
    }
}
