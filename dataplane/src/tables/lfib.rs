//! The label forwarding table: a two-level array indexed by the 20-bit
//! label, so a lookup is two loads and memory grows only with the label
//! blocks actually used. Both levels are fixed-size arrays indexed by bits
//! of the label, so a lookup needs no bounds check beyond the label's own
//! range.

use crate::config::Mac;
use crate::frame::PortId;

/// What to do with a labelled frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LfibOp {
    /// Replace the top label with this one and forward.
    Swap(u32),
    /// Remove the top label and forward (penultimate-hop pop).
    Pop,
    /// Remove the top label and terminate here (ESP decapsulation).
    PopLocal,
}

/// One LFIB entry.
#[derive(Clone, Copy, Debug)]
pub struct LfibEntry {
    /// The operation.
    pub op: LfibOp,
    /// Port to forward on (unused for `PopLocal`).
    pub port: PortId,
    /// The next hop's MAC then the port's: the first 12 bytes of the
    /// Ethernet header the frame leaves with, written in one copy.
    pub macs: [u8; 12],
}

impl LfibEntry {
    /// An entry forwarding to `dst_mac` out of `port`, whose MAC is `src_mac`.
    pub fn new(op: LfibOp, port: PortId, dst_mac: Mac, src_mac: Mac) -> Self {
        let mut macs = [0; 12];
        macs[..6].copy_from_slice(&dst_mac);
        macs[6..].copy_from_slice(&src_mac);
        LfibEntry { op, port, macs }
    }

    /// The next hop's MAC.
    #[inline]
    pub fn dst_mac(&self) -> Mac {
        let mut m = [0; 6];
        m.copy_from_slice(&self.macs[..6]);
        m
    }

    /// The port's MAC.
    #[inline]
    pub fn src_mac(&self) -> Mac {
        let mut m = [0; 6];
        m.copy_from_slice(&self.macs[6..]);
        m
    }
}

const PAGE_BITS: u32 = 10;
const PAGE: usize = 1 << PAGE_BITS;
const PAGES: usize = 1 << (20 - PAGE_BITS);

/// One page of labels sharing their upper bits.
type Page = [Option<LfibEntry>; PAGE];

/// Largest label (20 bits, RFC 3032).
const LABEL_MAX: u32 = (1 << 20) - 1;

/// Label -> entry.
#[derive(Clone)]
pub struct Lfib {
    pages: Box<[Option<Box<Page>>; PAGES]>,
    len: usize,
}

impl Default for Lfib {
    fn default() -> Self {
        Self::new()
    }
}

impl Lfib {
    /// An empty LFIB.
    pub fn new() -> Self {
        Lfib {
            pages: Box::new([const { None }; PAGES]),
            len: 0,
        }
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
        let page = page.get_or_insert_with(|| Box::new([None; PAGE]));
        if page[i].replace(e).is_none() {
            self.len += 1;
        }
    }

    /// The entry for `label`.
    #[inline]
    pub fn get(&self, label: u32) -> Option<&LfibEntry> {
        // A label read from a header is below 2^20, so the page index is
        // below PAGES and the check folds away; larger values find nothing.
        let page = self.pages.get((label >> PAGE_BITS) as usize)?.as_deref()?;
        page[label as usize & (PAGE - 1)].as_ref()
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
    }
}
