//! The label forwarding table: a two-level array indexed by the 20-bit
//! label, so a lookup is two loads and memory grows only with the label
//! blocks actually used. Both levels are fixed-size arrays indexed by bits
//! of the label, so a lookup needs no bounds check beyond the label's own
//! range.

use crate::config::Mac;
use crate::frame::PortId;
use std::sync::{Arc, OnceLock};

/// What to do with a labelled frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LfibOp {
    /// Replace the top label with this one and forward.
    Swap(u32),
    /// Replace the top label with the first, push the labels of stack
    /// [`Lfib::stack`]`(.1)` above it and forward (a local repair steering
    /// the frame through node segments).
    SwapPush(u32, u16),
    /// Remove the top label and forward (penultimate-hop pop).
    Pop,
    /// Remove the top label and terminate here (ESP decapsulation).
    PopLocal,
}

/// One LFIB entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LfibEntry {
    /// The operation.
    pub op: LfibOp,
    /// Port to forward on (unused for `PopLocal`).
    pub port: PortId,
    /// The first 16 bytes of the header a swapped frame leaves with: the
    /// next hop's MAC, the port's MAC, the MPLS ethertype and the top 16
    /// bits of the new label entry (the out label's upper bits), written
    /// in one copy.
    head: [u8; 16],
    /// For a swap, the out label in place in a label entry (`label << 12`);
    /// [`NOT_SWAP`] for any other operation, and in a vacant slot.
    swap: u32,
    /// False only in the filler of a label that has no entry (kept here,
    /// not beside the entry, so that a slot stays 32 bytes).
    used: bool,
}

/// `LfibEntry::swap` of an entry that does not swap: no shifted 20-bit
/// label has its low 12 bits set.
const NOT_SWAP: u32 = u32::MAX;

impl LfibEntry {
    /// An entry forwarding to `dst_mac` out of `port`, whose MAC is `src_mac`.
    pub fn new(op: LfibOp, port: PortId, dst_mac: Mac, src_mac: Mac) -> Self {
        // Only a plain swap takes the transit fast path.
        let swap = match op {
            LfibOp::Swap(out) => (out & LABEL_MAX) << 12,
            LfibOp::SwapPush(..) | LfibOp::Pop | LfibOp::PopLocal => NOT_SWAP,
        };
        let mut head = [0; 16];
        head[..6].copy_from_slice(&dst_mac);
        head[6..12].copy_from_slice(&src_mac);
        head[12..14].copy_from_slice(&crate::packet::ethernet::ethertype::MPLS.to_be_bytes());
        if swap != NOT_SWAP {
            head[14..].copy_from_slice(&swap.to_be_bytes()[..2]);
        }
        LfibEntry {
            op,
            port,
            head,
            swap,
            used: true,
        }
    }

    /// The next hop's MAC.
    #[inline]
    pub fn dst_mac(&self) -> Mac {
        let mut m = [0; 6];
        m.copy_from_slice(&self.head[..6]);
        m
    }

    /// The port's MAC.
    #[inline]
    pub fn src_mac(&self) -> Mac {
        let mut m = [0; 6];
        m.copy_from_slice(&self.head[6..12]);
        m
    }

    /// For a swap: the Ethernet header and the upper half of the label
    /// entry the frame leaves with (see [`LfibEntry::swapped_entry`] for
    /// the rest).
    #[inline(always)]
    pub fn swap_head(&self) -> &[u8; 16] {
        &self.head
    }

    /// For a swap: the label entry that replaces `top` (its TTL must be 2
    /// or more): the out label, `top`'s traffic class and bottom-of-stack
    /// bit, and its TTL less one.
    #[inline(always)]
    pub fn swapped_entry(&self, top: u32) -> u32 {
        // TTL >= 2, so taking one off borrows nothing from the bits above.
        self.swap | (top.wrapping_sub(1) & 0xfff)
    }

    /// The slot content of a label with no entry.
    const VACANT: LfibEntry = LfibEntry {
        op: LfibOp::PopLocal,
        port: 0,
        head: [0; 16],
        swap: NOT_SWAP,
        used: false,
    };
}

const PAGE_BITS: u32 = 10;
const PAGE: usize = 1 << PAGE_BITS;
const PAGES: usize = 1 << (20 - PAGE_BITS);

/// One page of labels sharing their upper bits.
type Page = [LfibEntry; PAGE];
const _: () = assert!(std::mem::size_of::<LfibEntry>() == 32);

/// The vacant page every table shares where it has no entry.
fn vacant_page() -> &'static Arc<Page> {
    static VACANT: OnceLock<Arc<Page>> = OnceLock::new();
    VACANT.get_or_init(|| Arc::new([LfibEntry::VACANT; PAGE]))
}

/// Largest label (20 bits, RFC 3032).
const LABEL_MAX: u32 = (1 << 20) - 1;

/// Label -> entry.
///
/// Pages without an entry all share one vacant page, so a lookup never
/// tests for a missing page; a page is copied when it is first written
/// (and when a clone shares it), so clones are cheap.
#[derive(Clone)]
pub struct Lfib {
    pages: Box<[Arc<Page>; PAGES]>,
    len: usize,
    /// The label stacks `SwapPush` entries push, outermost first.
    stacks: Vec<Vec<u32>>,
}

impl Default for Lfib {
    fn default() -> Self {
        Self::new()
    }
}

impl Lfib {
    /// An empty LFIB. Every table of the process shares one vacant page
    /// (a node installs tables every control step, and the emulator a
    /// thousand nodes' a step: none allocates and fills its own).
    pub fn new() -> Self {
        let vacant = vacant_page();
        Lfib {
            pages: Box::new(std::array::from_fn(|_| Arc::clone(vacant))),
            len: 0,
            stacks: Vec::new(),
        }
    }

    /// Empties the table, keeping its pages for the entries to come: a
    /// table about to be replaced, refilled instead of a new one built,
    /// costs no page allocated, copied or freed (nor the reference counts
    /// of the shared vacant page). `held` names the labels it holds (any
    /// it does not hold are passed over); if some label is left, every
    /// page of its own is swept. Afterwards every lookup finds what it
    /// finds in [`Lfib::new`]: nothing.
    pub fn clear(&mut self, held: impl IntoIterator<Item = u32>) {
        for label in held {
            if self.len == 0 {
                break;
            }
            self.remove(label);
        }
        if self.len > 0 {
            let vacant = vacant_page();
            for page in self.pages.iter_mut() {
                if !Arc::ptr_eq(page, vacant) && page.iter().any(|e| e.used) {
                    Arc::make_mut(page).fill(LfibEntry::VACANT);
                }
            }
            self.len = 0;
        }
        self.stacks.clear();
    }

    /// Removes `label`'s entry, if it has one.
    pub fn remove(&mut self, label: u32) {
        if self.get(label).is_none() {
            return;
        }
        let (p, i) = ((label >> PAGE_BITS) as usize, label as usize & (PAGE - 1));
        if let Some(page) = self.pages.get_mut(p) {
            Arc::make_mut(page)[i] = LfibEntry::VACANT;
            self.len -= 1;
        }
    }

    /// Keeps `labels` (outermost first) for a `SwapPush` entry; its index,
    /// or None when the table holds as many stacks as an index counts.
    pub fn add_stack(&mut self, labels: &[u32]) -> Option<u16> {
        let i = u16::try_from(self.stacks.len()).ok()?;
        self.stacks
            .push(labels.iter().map(|l| l & LABEL_MAX).collect());
        Some(i)
    }

    /// The labels stack `i` pushes, outermost first (empty if unknown).
    #[inline]
    pub fn stack(&self, i: u16) -> &[u32] {
        self.stacks.get(usize::from(i)).map_or(&[], Vec::as_slice)
    }

    /// Number of labels installed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Installs `label` (labels above 20 bits are ignored).
    pub fn insert(&mut self, label: u32, e: LfibEntry) {
        if label > LABEL_MAX {
            return;
        }
        let (p, i) = ((label >> PAGE_BITS) as usize, label as usize & (PAGE - 1));
        let Some(page) = self.pages.get_mut(p) else {
            return;
        };
        let slot = &mut Arc::make_mut(page)[i];
        if !slot.used {
            self.len += 1;
        }
        *slot = e;
    }

    /// Every installed label with its entry, in label order. It walks the
    /// whole label space: for display (the management socket), never per
    /// packet.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &LfibEntry)> + '_ {
        self.pages.iter().enumerate().flat_map(|(p, page)| {
            page.iter()
                .enumerate()
                .filter(|(_, e)| e.used)
                .map(move |(i, e)| (((p << PAGE_BITS) | i) as u32, e))
        })
    }

    /// The entry for `label`.
    #[inline]
    pub fn get(&self, label: u32) -> Option<&LfibEntry> {
        let e = self.slot(label)?;
        e.used.then_some(e)
    }

    /// The entry for `label` if it swaps: one test covers both a vacant
    /// label and another operation (the transit fast path).
    #[inline(always)]
    pub fn get_swap(&self, label: u32) -> Option<&LfibEntry> {
        let e = self.slot(label)?;
        (e.swap != NOT_SWAP).then_some(e)
    }

    #[inline(always)]
    fn slot(&self, label: u32) -> Option<&LfibEntry> {
        // A label read from a header is below 2^20, so the page index is
        // below PAGES and the check folds away; larger values find nothing.
        let page = self.pages.get((label >> PAGE_BITS) as usize)?;
        Some(&page[label as usize & (PAGE - 1)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn insert_and_get() {
        let mut l = Lfib::new();
        let e = LfibEntry::new(LfibOp::Swap(2000), 1, [1; 6], [2; 6]);
        assert_eq!((e.dst_mac(), e.src_mac()), ([1; 6], [2; 6]));
        l.insert(1002, e);
        l.insert(0xFFFFF, e);
        l.insert(0x100000, e);
        assert_eq!(l.len(), 2);
        assert_eq!(l.get(1002).unwrap().op, LfibOp::Swap(2000));
        assert!(l.get(1003).is_none());
        assert!(l.get(u32::MAX).is_none());
        // A clone is a snapshot: writing one leaves the other as it was.
        let snapshot = l.clone();
        l.insert(1003, e);
        assert!(snapshot.get(1003).is_none() && l.get(1003).is_some());
        assert_eq!((snapshot.len(), l.len()), (2, 3));
        let labels: Vec<u32> = l.iter().map(|(label, _)| label).collect();
        assert_eq!(labels, [1002, 1003, 0xFFFFF]);
        // Vacant slots in a used page, other operations: no swap.
        assert!(l.get_swap(1001).is_none());
        l.insert(1004, LfibEntry::new(LfibOp::Pop, 1, [1; 6], [2; 6]));
        assert!(l.get(1004).is_some() && l.get_swap(1004).is_none());
        let s = l.get_swap(1002).unwrap();
        // Label 1002 -> 2000 with TC 5, bottom of stack, TTL 64 -> 63.
        let top = (1002 << 12) | (5 << 9) | (1 << 8) | 64;
        assert_eq!(
            s.swapped_entry(top),
            (2000 << 12) | (5 << 9) | (1 << 8) | 63
        );
        let mut head = [1u8; 16];
        head[6..12].fill(2);
        head[12..14].copy_from_slice(&[0x88, 0x47]);
        head[14..].copy_from_slice(&((2000u32 << 12).to_be_bytes()[..2]));
        assert_eq!(s.swap_head(), &head);
    }

    /// A table cleared and refilled holds exactly what a new table given
    /// the same entries holds, whatever it held before, whether or not
    /// the labels named to `clear` are the ones it held, and leaves a
    /// clone taken before it untouched.
    #[test]
    fn a_cleared_table_refilled_is_a_new_table_so_filled() {
        let mut rng = 0x0dd_ba11_u64;
        let mut next = move || crate::emulate::next_random(&mut rng);
        let label = |x: u64| match x % 4 {
            0 => 1000 + (x >> 8) as u32 % 200,
            1 => 20_000 + (x >> 8) as u32 % 4000,
            2 => (x >> 8) as u32 % (LABEL_MAX + 2),
            _ => 6000 + (x >> 8) as u32 % 100,
        };
        let mut reused = Lfib::new();
        let mut held: Vec<u32> = Vec::new();
        for round in 0..200 {
            let n = next() % 300;
            let fill: Vec<(u32, LfibEntry)> = (0..n)
                .map(|_| {
                    let x = next();
                    let op = match x % 3 {
                        0 => LfibOp::Swap((x >> 20) as u32 & LABEL_MAX),
                        1 => LfibOp::Pop,
                        _ => LfibOp::PopLocal,
                    };
                    (
                        label(next()),
                        LfibEntry::new(op, (x % 7) as u16, [x as u8; 6], [3; 6]),
                    )
                })
                .collect();
            let before = reused.clone();
            let before_entries: Vec<_> =
                before.iter().map(|(l, e)| (l, format!("{e:?}"))).collect();
            // Sometimes the wrong labels, or only some of them.
            match round % 4 {
                0 => reused.clear(held.iter().copied().take(held.len() / 2)),
                1 => reused.clear((0..50).map(|_| label(next()))),
                _ => reused.clear(held.iter().copied()),
            }
            assert!(reused.is_empty() && reused.iter().next().is_none());
            let mut fresh = Lfib::new();
            for &(l, e) in &fill {
                fresh.insert(l, e);
                reused.insert(l, e);
            }
            if round % 5 == 0 {
                let i = reused.add_stack(&[1, 2]);
                assert_eq!(i, fresh.add_stack(&[1, 2]));
            }
            held = fill.iter().map(|&(l, _)| l).collect();
            let show = |t: &Lfib| -> Vec<(u32, String)> {
                t.iter().map(|(l, e)| (l, format!("{e:?}"))).collect()
            };
            assert_eq!(show(&reused), show(&fresh), "round {round}");
            assert_eq!(reused.len(), fresh.len());
            assert_eq!(reused.stacks, fresh.stacks);
            for _ in 0..200 {
                let l = label(next());
                assert_eq!(
                    reused.get(l).map(|e| format!("{e:?}")),
                    fresh.get(l).map(|e| format!("{e:?}"))
                );
                assert_eq!(
                    reused.get_swap(l).map(|e| format!("{e:?}")),
                    fresh.get_swap(l).map(|e| format!("{e:?}"))
                );
            }
            let after: Vec<_> = before.iter().map(|(l, e)| (l, format!("{e:?}"))).collect();
            assert_eq!(after, before_entries, "a clone is a snapshot");
        }
    }
}
