//! RFC 4303 §3.4.3 anti-replay window, with RFC 4303 Appendix A inference
//! of the high 32 bits of extended sequence numbers.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Window size in packets (RFC 4303 asks for at least 32; we keep 2048).
pub const WINDOW: u64 = 2048;
const WORDS: usize = (WINDOW / 64) as usize;

/// A sliding anti-replay window over 64-bit sequence numbers.
///
/// Lock-free for readers and one writer: an inbound SA is processed by one
/// worker at a time (RSS keeps a tunnel's outer flow on one queue). Atomics
/// make sharing the SA between snapshots and threads sound; they are not a
/// multi-writer protocol.
pub struct ReplayWindow {
    top: AtomicU64,
    bits: [AtomicU64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// An empty window (nothing received; the highest seen is 0).
    pub fn new() -> Self {
        ReplayWindow {
            top: AtomicU64::new(0),
            bits: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// The highest authenticated sequence number so far.
    pub fn top(&self) -> u64 {
        self.top.load(Relaxed)
    }

    #[inline]
    fn bit(seq: u64) -> (usize, u64) {
        let pos = seq % WINDOW;
        ((pos / 64) as usize, 1u64 << (pos % 64))
    }

    /// Full 64-bit sequence number for a received low half (ESN), per RFC
    /// 4303 Appendix A.2.2. Without ESN the low half is the number.
    #[inline]
    pub fn infer_esn(&self, seq_lo: u32) -> u64 {
        let top = self.top();
        let tl = top as u32;
        let th = (top >> 32) as u32;
        let w = WINDOW as u32;
        let seq_hi = if tl >= w - 1 {
            // Case A: window within one subspace. Its bottom is
            // Tl - W + 1, which is 0 (not -1) when Tl = W - 1.
            if seq_lo >= tl - (w - 1) {
                th
            } else {
                th.wrapping_add(1)
            }
        } else {
            // Case B: window spans two subspaces.
            if seq_lo >= tl.wrapping_sub(w - 1) {
                th.wrapping_sub(1)
            } else {
                th
            }
        };
        // A wrap below zero in the first subspace cannot be valid.
        if th == 0 && seq_hi == u32::MAX {
            return u64::from(seq_lo);
        }
        (u64::from(seq_hi) << 32) | u64::from(seq_lo)
    }

    /// True when `seq` may be accepted (before authentication): new, or in
    /// the window and not yet seen. Sequence number 0 is never valid.
    #[inline]
    pub fn check(&self, seq: u64) -> bool {
        if seq == 0 {
            return false;
        }
        let top = self.top();
        if seq > top {
            return true;
        }
        if top - seq >= WINDOW {
            return false;
        }
        let (w, m) = Self::bit(seq);
        self.bits[w].load(Relaxed) & m == 0
    }

    /// Records `seq` after its ICV verified; slides the window if it is new.
    /// Returns false (and records nothing) if it was a replay after all.
    #[inline]
    pub fn accept(&self, seq: u64) -> bool {
        if !self.check(seq) {
            return false;
        }
        let top = self.top();
        if seq > top {
            let gap = seq - top;
            if gap >= WINDOW {
                for b in &self.bits {
                    b.store(0, Relaxed);
                }
            } else {
                // Clear the slots of the numbers skipped over (top+1 ..= seq).
                let mut s = top + 1;
                while s <= seq {
                    let (w, _) = Self::bit(s);
                    if s.is_multiple_of(64) && seq - s >= 63 {
                        self.bits[w].store(0, Relaxed);
                        s += 64;
                    } else {
                        let (w, m) = Self::bit(s);
                        let b = &self.bits[w];
                        b.store(b.load(Relaxed) & !m, Relaxed);
                        s += 1;
                    }
                }
            }
            self.top.store(seq, Relaxed);
        }
        // One writer (see the type's doc): a plain load and store, no
        // locked read-modify-write on the per-packet path.
        let (w, m) = Self::bit(seq);
        let b = &self.bits[w];
        b.store(b.load(Relaxed) | m, Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With the window's top exactly W - 1 the window starts at 0: every
    /// low half belongs to the same subspace (computing its bottom as
    /// Tl - W wrapped below zero and put every packet in the next one).
    #[test]
    fn esn_inference_at_a_top_of_window_minus_one() {
        let w = ReplayWindow::new();
        assert!(w.accept(WINDOW - 1));
        assert_eq!(w.infer_esn(0), 0);
        assert_eq!(w.infer_esn(5), 5);
        assert_eq!(w.infer_esn(WINDOW as u32 + 7), WINDOW + 7);
        let w = ReplayWindow::new();
        assert!(w.accept((3 << 32) | (WINDOW - 1)));
        assert_eq!(w.infer_esn(1), (3 << 32) | 1);
        assert_eq!(w.infer_esn(u32::MAX), (3 << 32) | u64::from(u32::MAX));
    }

    #[test]
    fn rejects_duplicates_and_too_old() {
        let w = ReplayWindow::new();
        assert!(!w.check(0));
        assert!(w.accept(1));
        assert!(!w.accept(1));
        assert!(w.accept(5));
        assert!(w.accept(3), "late but inside the window");
        assert!(!w.accept(3));
        assert!(w.accept(5000));
        assert!(!w.check(5000 - WINDOW), "just outside the window");
        assert!(w.check(5000 - WINDOW + 1));
        assert!(w.accept(5000 - WINDOW + 1));
        assert!(!w.check(5000 - WINDOW + 1));
        // Slots reused after a slide are clear again.
        assert!(w.accept(4999));
        assert!(w.accept(5001));
    }

    #[test]
    fn reordering_within_window_is_accepted_once() {
        let w = ReplayWindow::new();
        let mut order: Vec<u64> = (1..=3000).collect();
        // A deterministic shuffle confined to blocks of 1000 (< WINDOW).
        for chunk in order.chunks_mut(1000) {
            chunk.reverse();
        }
        for &s in &order {
            assert!(w.accept(s), "{s}");
        }
        for &s in &order[2000..] {
            assert!(!w.accept(s));
        }
    }

    #[test]
    fn esn_inference_crosses_the_32_bit_boundary() {
        let w = ReplayWindow::new();
        assert_eq!(w.infer_esn(7), 7);
        assert!(w.accept(0xffff_fff0));
        assert_eq!(w.infer_esn(0xffff_fff5), 0xffff_fff5);
        assert_eq!(w.infer_esn(3), 0x1_0000_0003);
        assert!(w.accept(0x1_0000_0003));
        // Late packet from before the wrap, now in case B.
        assert_eq!(w.infer_esn(0xffff_fff8), 0xffff_fff8);
        assert_eq!(w.infer_esn(10), 0x1_0000_000a);
    }
}
