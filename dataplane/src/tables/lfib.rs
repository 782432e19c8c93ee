//! The label forwarding table: a two-level array indexed by the 20-bit
//! label, so a lookup is two loads and memory grows only with the label
//! blocks actually used.

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
    /// Next hop's MAC.
    pub dst_mac: Mac,
    /// The port's MAC.
    pub src_mac: Mac,
}

const PAGE_BITS: u32 = 10;
const PAGE: usize = 1 << PAGE_BITS;
const PAGES: usize = 1 << (20 - PAGE_BITS);

/// Label -> entry.
#[derive(Clone)]
pub struct Lfib {
    pages: Vec<Option<Box<[Option<LfibEntry>]>>>,
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
            pages: vec![None; PAGES],
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
        let (p, i) = ((label >> PAGE_BITS) as usize, label as usize & (PAGE - 1));
        let Some(page) = self.pages.get_mut(p) else {
            return;
        };
        let page = page.get_or_insert_with(|| vec![None; PAGE].into_boxed_slice());
        if page[i].replace(e).is_none() {
            self.len += 1;
        }
    }

    /// The entry for `label`.
    #[inline]
    pub fn get(&self, label: u32) -> Option<&LfibEntry> {
        let page = self.pages.get((label >> PAGE_BITS) as usize)?.as_ref()?;
        page[label as usize & (PAGE - 1)].as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn insert_and_get() {
        let mut l = Lfib::new();
        let e = LfibEntry {
            op: LfibOp::Swap(2000),
            port: 1,
            dst_mac: [1; 6],
            src_mac: [2; 6],
        };
        l.insert(1002, e);
        l.insert(0xFFFFF, e);
        l.insert(0x100000, e);
        assert_eq!(l.len(), 2);
        assert_eq!(l.get(1002).unwrap().op, LfibOp::Swap(2000));
        assert!(l.get(1003).is_none());
        assert!(l.get(u32::MAX).is_none());
    }
}
