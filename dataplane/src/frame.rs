//! The `Frame` trait every backend's buffer implements, a heap-backed frame
//! for files and tests, and `Batch`, the burst of frames that stages process.

use crate::drop_reason::DropReason;

/// Frames moved per burst, as in DPDK's and VPP's vectors.
pub const BURST: usize = 32;

/// Bytes reserved in front of the packet so encapsulation never copies
/// (Ethernet + MPLS stack + outer IPv4/IPv6 + ESP header + IV fit easily).
pub const HEADROOM: usize = 128;

/// Largest frame a heap frame carries by default (data room after headroom).
pub const DEFAULT_DATA_ROOM: usize = 2048;

/// One packet buffer with headroom and tailroom.
///
/// The contract follows `rte_pktmbuf_{prepend,adj,trim,append}`: each call
/// either succeeds and moves the data window, or fails and changes nothing.
/// The payload is never copied by any of these.
pub trait Frame: Send {
    /// The packet bytes.
    fn data(&self) -> &[u8];
    /// The packet bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Free bytes in front of the packet.
    fn headroom(&self) -> usize;
    /// Free bytes after the packet.
    fn tailroom(&self) -> usize;
    /// Grows the packet at the front by `n` bytes (contents unspecified).
    #[must_use]
    fn prepend(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front.
    #[must_use]
    fn adj(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the end.
    #[must_use]
    fn trim(&mut self, n: usize) -> bool;
    /// Grows the packet at the end by `n` bytes (contents unspecified).
    #[must_use]
    fn append(&mut self, n: usize) -> bool;

    /// Packet length in bytes.
    fn len(&self) -> usize {
        self.data().len()
    }
    /// True for a zero-length packet.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A frame in an ordinary heap buffer: pcap files, the memory backend, tests.
#[derive(Clone, PartialEq, Eq)]
pub struct HeapFrame {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl HeapFrame {
    /// An empty frame with `HEADROOM` bytes of headroom and `room` bytes of data room.
    pub fn with_room(room: usize) -> Self {
        HeapFrame {
            buf: vec![0u8; HEADROOM + room].into_boxed_slice(),
            start: HEADROOM,
            end: HEADROOM,
        }
    }

    /// A frame holding a copy of `bytes` (the one copy, at load time).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut f = Self::with_room(bytes.len().max(DEFAULT_DATA_ROOM));
        f.buf[HEADROOM..HEADROOM + bytes.len()].copy_from_slice(bytes);
        f.end = HEADROOM + bytes.len();
        f
    }

    /// Replaces the contents with `bytes`, resetting headroom; reuses the
    /// buffer when it is large enough.
    pub fn reset_from(&mut self, bytes: &[u8]) {
        if self.buf.len() < HEADROOM + bytes.len() {
            *self = Self::from_bytes(bytes);
            return;
        }
        self.start = HEADROOM;
        self.end = HEADROOM + bytes.len();
        self.buf[self.start..self.end].copy_from_slice(bytes);
    }
}

impl std::fmt::Debug for HeapFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeapFrame")
            .field("len", &(self.end - self.start))
            .field("headroom", &self.start)
            .finish()
    }
}

impl Frame for HeapFrame {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }
    #[inline]
    fn headroom(&self) -> usize {
        self.start
    }
    #[inline]
    fn tailroom(&self) -> usize {
        self.buf.len() - self.end
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }
    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.end -= n;
        true
    }
    #[inline]
    fn append(&mut self, n: usize) -> bool {
        if n > self.buf.len() - self.end {
            return false;
        }
        self.end += n;
        true
    }
}

/// Index of a port within a node (the order of `[[ports]]` in the config).
pub type PortId = u16;

/// Where a frame goes next. Stages act on the frames whose verdict names
/// them and leave the others untouched (VPP's next-node, flattened). A
/// stage's verdict also says where the frame's data starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Just received, not yet dispatched by ethertype.
    Input,
    /// Plain IP from the LAN: look up the FEC.
    Classify,
    /// Encrypt under the FEC's SA, push the FEC's label and send (index
    /// into the FEC table).
    Encrypt(u32),
    /// Labelled frame (still with its L2 header): look up the LFIB.
    Lfib,
    /// Outer IPv4 with ESP addressed to this node: decrypt.
    Decrypt,
    /// Decrypted inner IP packet: look up the delivery table.
    Deliver,
    /// Ready to send on this port.
    Tx(PortId),
    /// Dropped for this reason (counted by the worker).
    Drop(DropReason),
    /// Addressed to the node itself: handed to the control thread as it
    /// was received (the stages leave its bytes untouched).
    Punt,
}

impl Verdict {
    /// True for `Tx`, `Drop` and `Punt`: no stage acts on the frame any more.
    #[inline]
    pub fn is_final(self) -> bool {
        matches!(self, Verdict::Tx(_) | Verdict::Drop(_) | Verdict::Punt)
    }
}

/// A burst of up to `BURST` frames with one verdict each.
pub struct Batch<F> {
    frames: Vec<F>,
    verdicts: [Verdict; BURST],
    stamps: [u64; BURST],
    /// The port every frame of the batch was received on.
    rx_port: PortId,
}

impl<F> Default for Batch<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F> Batch<F> {
    /// An empty batch; its storage is allocated once, here.
    pub fn new() -> Self {
        Batch {
            frames: Vec::with_capacity(BURST),
            verdicts: [Verdict::Input; BURST],
            stamps: [0; BURST],
            rx_port: 0,
        }
    }

    /// The port the frames were received on (0 until set): the stages
    /// accept only frames addressed to its MAC.
    #[inline]
    pub fn rx_port(&self) -> PortId {
        self.rx_port
    }

    /// Records the port the frames were received on; whoever fills a batch
    /// from a port sets it before the stages run.
    #[inline]
    pub fn set_rx_port(&mut self, port: PortId) {
        self.rx_port = port;
    }

    /// Number of frames held.
    #[inline]
    pub fn len(&self) -> usize {
        self.frames.len()
    }
    /// True when no frame is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
    /// Free slots.
    #[inline]
    pub fn room(&self) -> usize {
        BURST - self.frames.len()
    }

    /// Adds a frame with verdict `Input`; gives it back when the batch is full.
    #[inline]
    pub fn push(&mut self, frame: F) -> Result<(), F> {
        self.push_with(frame, Verdict::Input, 0)
    }

    /// Adds a frame with a verdict and an RX timestamp (ns).
    #[inline]
    pub fn push_with(&mut self, frame: F, verdict: Verdict, stamp: u64) -> Result<(), F> {
        let i = self.frames.len();
        if i == BURST {
            return Err(frame);
        }
        self.frames.push(frame);
        self.verdicts[i] = verdict;
        self.stamps[i] = stamp;
        Ok(())
    }

    /// Removes and returns the last frame with its verdict.
    #[inline]
    pub fn pop(&mut self) -> Option<(F, Verdict)> {
        let f = self.frames.pop()?;
        Some((f, self.verdicts[self.frames.len()]))
    }

    /// The frames.
    #[inline]
    pub fn frames(&self) -> &[F] {
        &self.frames
    }
    /// The frames, writable.
    #[inline]
    pub fn frames_mut(&mut self) -> &mut [F] {
        &mut self.frames
    }
    /// The verdicts, one per frame.
    #[inline]
    pub fn verdicts(&self) -> &[Verdict] {
        &self.verdicts[..self.frames.len()]
    }
    /// The RX timestamps (ns), one per frame.
    #[inline]
    pub fn stamps(&self) -> &[u64] {
        &self.stamps[..self.frames.len()]
    }
    /// Sets every frame's RX timestamp.
    pub fn stamp_all(&mut self, ns: u64) {
        let n = self.frames.len();
        self.stamps[..n].fill(ns);
    }

    /// Frames and verdicts side by side, for a stage to walk.
    #[inline]
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&mut F, &mut Verdict)> {
        let n = self.frames.len();
        self.frames.iter_mut().zip(self.verdicts[..n].iter_mut())
    }

    /// Frames and verdicts as two slices of equal length, for a pipeline
    /// that visits frames by index.
    #[inline]
    pub fn frames_verdicts_mut(&mut self) -> (&mut [F], &mut [Verdict]) {
        let n = self.frames.len();
        (&mut self.frames, &mut self.verdicts[..n])
    }

    /// Direct access to the frame vector for backends that fill it in bulk
    /// (capacity is always `BURST`). New frames get verdict `Input`.
    pub fn frames_vec_mut(&mut self) -> &mut Vec<F> {
        &mut self.frames
    }

    /// Resets verdicts of all frames to `v`.
    #[inline]
    pub fn set_all(&mut self, v: Verdict) {
        // The whole array: a fixed length is a few vector stores, where
        // the frames' count would be a call to `memset` per burst. Slots
        // past the frames hold nothing anyone reads.
        self.verdicts.fill(v);
    }

    /// Removes every frame, dropping it (which frees backend buffers).
    pub fn clear(&mut self) {
        self.frames.clear();
    }

    /// Removes the first `n` frames (those a port has sent), keeping the
    /// order, verdicts and stamps of the rest.
    pub fn consume_front(&mut self, n: usize) -> std::vec::Drain<'_, F> {
        let n = n.min(self.frames.len());
        let len = self.frames.len();
        self.verdicts.copy_within(n..len, 0);
        self.stamps.copy_within(n..len, 0);
        self.frames.drain(..n)
    }

    /// Drops the frames whose bit is set in `mask` (slot `i` = bit `i`),
    /// freeing their buffers, and keeps the order, verdicts and stamps of
    /// the rest.
    pub fn remove_mask(&mut self, mask: u64) {
        // A few frames among many: one move of the tail per frame removed,
        // from the last one back, rather than a visit of every frame.
        let mut m = mask;
        while m != 0 {
            let i = (u64::BITS - 1 - m.leading_zeros()) as usize;
            m &= !(1u64 << i);
            let len = self.frames.len();
            if i >= len {
                continue;
            }
            drop(self.frames.remove(i));
            self.verdicts.copy_within(i + 1..len, i);
            self.stamps.copy_within(i + 1..len, i);
        }
    }

    /// Moves every frame whose verdict is `Tx(port)` into `out` (up to its
    /// room), together with its stamp. Order within the port is preserved.
    pub fn take_tx(&mut self, port: PortId, out: &mut Batch<F>) {
        // One stable pass: matching frames leave in order, the rest (with
        // their verdicts and stamps) close ranks behind them. No per-frame
        // memmove, unlike removing frames one at a time.
        let mut room = out.room();
        let mut taken = [0u64; BURST];
        let mut n_taken = 0;
        let (mut read, mut write) = (0usize, 0usize);
        let verdicts = &mut self.verdicts;
        let stamps = &mut self.stamps;
        let moved = self.frames.extract_if(.., |_| {
            let take = room > 0 && verdicts[read] == Verdict::Tx(port);
            if take {
                room -= 1;
                taken[n_taken] = stamps[read];
                n_taken += 1;
            } else {
                verdicts[write] = verdicts[read];
                stamps[write] = stamps[read];
                write += 1;
            }
            read += 1;
            take
        });
        let base = out.len();
        for f in moved {
            let _ = out.push_with(f, Verdict::Tx(port), 0);
        }
        let end = out.len();
        out.stamps[base..end].copy_from_slice(&taken[..end - base]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_frame_moves_window_without_copy() {
        let mut f = HeapFrame::from_bytes(&[1, 2, 3, 4]);
        assert_eq!(f.headroom(), HEADROOM);
        assert!(f.prepend(2));
        f.data_mut()[..2].copy_from_slice(&[9, 9]);
        assert_eq!(f.data(), &[9, 9, 1, 2, 3, 4]);
        assert!(f.adj(3));
        assert!(f.trim(1));
        assert_eq!(f.data(), &[2, 3]);
        assert!(f.append(1));
        assert_eq!(f.len(), 3);
        assert!(!f.adj(4));
        assert!(!f.trim(4));
        assert!(!f.prepend(HEADROOM + 100));
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn batch_take_tx_keeps_order_and_rest() {
        let mut b: Batch<u32> = Batch::new();
        for i in 0..6 {
            b.push_with(i, Verdict::Tx((i % 2) as PortId), i as u64)
                .unwrap();
        }
        let mut out = Batch::new();
        b.take_tx(1, &mut out);
        assert_eq!(out.frames(), &[1, 3, 5]);
        assert_eq!(out.stamps(), &[1, 3, 5]);
        assert_eq!(b.frames(), &[0, 2, 4]);
        assert_eq!(b.verdicts(), &[Verdict::Tx(0); 3]);
        assert_eq!(b.stamps(), &[0, 2, 4]);
        let sent: Vec<u32> = b.consume_front(2).collect();
        assert_eq!(sent, vec![0, 2]);
        assert_eq!(b.frames(), &[4]);
        assert_eq!(b.stamps(), &[4]);
    }

    #[test]
    fn removing_by_mask_keeps_the_order_verdicts_and_stamps_of_the_rest() {
        let mut b: Batch<u32> = Batch::new();
        for i in 0..BURST as u32 {
            b.push_with(i, Verdict::Tx(i as PortId), u64::from(i))
                .unwrap();
        }
        let mask: u64 = (1 << 0) | (1 << 5) | (1 << 6) | (1 << 31) | (1 << 40);
        b.remove_mask(mask);
        let want: Vec<u32> = (0..BURST as u32).filter(|i| mask >> i & 1 == 0).collect();
        assert_eq!(b.frames(), &want[..]);
        let stamps: Vec<u64> = want.iter().map(|&i| u64::from(i)).collect();
        assert_eq!(b.stamps(), &stamps[..]);
        let verdicts: Vec<Verdict> = want.iter().map(|&i| Verdict::Tx(i as PortId)).collect();
        assert_eq!(b.verdicts(), &verdicts[..]);
    }

    #[test]
    fn batch_refuses_past_burst() {
        let mut b: Batch<u8> = Batch::new();
        for i in 0..BURST {
            b.push(i as u8).unwrap();
        }
        assert_eq!(b.push(0), Err(0));
    }
}
