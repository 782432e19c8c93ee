//! One direction of a link as a delay line: a bounded FIFO in front of a
//! transmitter of fixed capacity, then the propagation delay of the link
//! at the instant the frame is sent.
//!
//! A frame that finds `capacity` frames already waiting (the one on the
//! wire not counted) is dropped at the tail and counted. On the wire a
//! frame takes its length plus 24 bytes (preamble, start delimiter, FCS
//! and the inter-frame gap) at the link's rate. The propagation delay is
//! the link's length in the geometry in force when the frame is sent
//! (refreshed every route step); a link is FIFO, so when the delay
//! shrinks between two steps a frame never overtakes the one before it.

use crate::frame::{HeapFrame, PortId};
use meshplane_control::NodeId;
use std::collections::VecDeque;

/// Bytes a frame occupies on the wire beyond its own (preamble 7, SFD 1,
/// FCS 4, inter-frame gap 12).
pub const WIRE_OVERHEAD: usize = 24;

/// What travels with a frame through the emulator (never read by a node).
#[derive(Clone, Copy, Debug, Default)]
pub struct Meta {
    /// The flow it belongs to.
    pub flow: u32,
    /// Nodes it has been through.
    pub hops: u16,
    /// A hash of those nodes, in order: the path it took.
    pub path: u64,
}

impl Meta {
    /// Records a visit of `node`.
    #[inline]
    pub fn visit(&mut self, node: NodeId) {
        self.hops = self.hops.saturating_add(1);
        self.path = (self.path ^ u64::from(node))
            .wrapping_mul(0x100_0000_01b3)
            .rotate_left(5);
    }
}

/// A frame on its way over a link.
#[derive(Debug)]
pub struct InFlight {
    /// When its last bit reaches the far end.
    pub arrive_ns: u64,
    /// The frame.
    pub frame: HeapFrame,
    /// Its bookkeeping.
    pub meta: Meta,
}

/// One direction of a link.
#[derive(Debug)]
pub struct Link {
    /// Sending node.
    pub from: NodeId,
    /// Receiving node.
    pub to: NodeId,
    /// The receiving node's port on this link.
    pub to_port: PortId,
    /// Capacity, bits per second.
    pub bps: f64,
    /// Frames that may wait for the transmitter.
    pub capacity: usize,
    /// The transmitter is busy until then (picoseconds).
    busy_ps: u64,
    /// Start times (ps) of the frames waiting, in order.
    waiting: VecDeque<u64>,
    /// Frames in flight, in arrival order.
    pub in_flight: VecDeque<InFlight>,
    last_arrival_ns: u64,
    /// Propagation delay and the publication (epoch, activation ns)
    /// whose geometry gave it.
    delay: Option<(u64, (u64, u64))>,
    /// Frames sent.
    pub frames: u64,
    /// Bytes sent (frames only).
    pub bytes: u64,
    /// Frames dropped at the tail.
    pub tail_drops: u64,
    /// Most frames waiting at once.
    pub max_waiting: usize,
    /// Longest wait for the transmitter, ns.
    pub max_wait_ns: u64,
}

/// Where a frame went.
#[derive(Debug)]
pub enum Sent {
    /// On its way; the link had nothing in flight, so its arrival (ns)
    /// must be scheduled.
    First(u64),
    /// On its way behind others.
    Queued,
    /// The queue was full: the frame comes back to be counted and freed.
    TailDrop(HeapFrame, Meta),
}

impl Link {
    /// An idle link.
    pub fn new(from: NodeId, to: NodeId, to_port: PortId, bps: f64, capacity: usize) -> Self {
        Link {
            from,
            to,
            to_port,
            bps,
            capacity,
            busy_ps: 0,
            waiting: VecDeque::new(),
            in_flight: VecDeque::new(),
            last_arrival_ns: 0,
            delay: None,
            frames: 0,
            bytes: 0,
            tail_drops: 0,
            max_waiting: 0,
            max_wait_ns: 0,
        }
    }

    /// The propagation delay cached for the geometry of the publication
    /// `epoch` (its epoch and activation ns), if any.
    #[inline]
    pub fn delay_for(&self, epoch: (u64, u64)) -> Option<u64> {
        self.delay.filter(|&(_, e)| e == epoch).map(|(d, _)| d)
    }

    /// Bits sent (frames with their preamble, FCS and gap) over what the
    /// link could carry in `duration_s`.
    pub fn utilisation(&self, duration_s: f64) -> f64 {
        ((self.bytes + self.frames * WIRE_OVERHEAD as u64) * 8) as f64
            / (self.bps * duration_s).max(1e-9)
    }

    /// Caches the propagation delay of the publication `epoch`'s geometry.
    pub fn set_delay(&mut self, epoch: (u64, u64), delay_ns: u64) {
        self.delay = Some((delay_ns, epoch));
    }

    /// Frames waiting for the transmitter at `now_ns`.
    pub fn waiting(&mut self, now_ns: u64) -> usize {
        let now_ps = now_ns.saturating_mul(1000);
        while self.waiting.front().is_some_and(|&s| s <= now_ps) {
            self.waiting.pop_front();
        }
        self.waiting.len()
    }

    /// Sends `frame` at `now_ns` with propagation delay `delay_ns`.
    pub fn send(&mut self, now_ns: u64, delay_ns: u64, frame: HeapFrame, meta: Meta) -> Sent {
        use crate::frame::Frame;
        if self.waiting(now_ns) >= self.capacity {
            self.tail_drops += 1;
            return Sent::TailDrop(frame, meta);
        }
        let now_ps = now_ns.saturating_mul(1000);
        let start = now_ps.max(self.busy_ps);
        let bits = ((frame.len() + WIRE_OVERHEAD) * 8) as f64;
        let ser_ps = (bits * 1e12 / self.bps).ceil() as u64;
        self.busy_ps = start + ser_ps;
        if start > now_ps {
            self.waiting.push_back(start);
            self.max_waiting = self.max_waiting.max(self.waiting.len());
            self.max_wait_ns = self.max_wait_ns.max((start - now_ps) / 1000);
        }
        let arrive_ns = (self.busy_ps.div_ceil(1000) + delay_ns).max(self.last_arrival_ns);
        self.last_arrival_ns = arrive_ns;
        self.frames += 1;
        self.bytes += frame.len() as u64;
        let first = self.in_flight.is_empty();
        self.in_flight.push_back(InFlight {
            arrive_ns,
            frame,
            meta,
        });
        if first {
            Sent::First(arrive_ns)
        } else {
            Sent::Queued
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> HeapFrame {
        HeapFrame::from_bytes(&vec![0u8; len])
    }

    #[test]
    fn a_frame_arrives_after_serialisation_and_propagation() {
        // 1 Gbit/s: 976 bytes + 24 on the wire = 8 us.
        let mut l = Link::new(0, 1, 0, 1e9, 4);
        match l.send(1_000, 5_000_000, frame(976), Meta::default()) {
            Sent::First(t) => assert_eq!(t, 1_000 + 8_000 + 5_000_000),
            other => panic!("{other:?}"),
        }
        // The next one waits for the transmitter.
        assert!(matches!(
            l.send(1_000, 5_000_000, frame(976), Meta::default()),
            Sent::Queued
        ));
        assert_eq!(l.in_flight[1].arrive_ns, 1_000 + 16_000 + 5_000_000);
        assert_eq!(l.max_wait_ns, 8_000);
    }

    #[test]
    fn a_full_queue_drops_at_the_tail_and_drains_with_time() {
        let mut l = Link::new(0, 1, 0, 1e9, 2);
        let mut drops = 0;
        for _ in 0..5 {
            if let Sent::TailDrop(..) = l.send(0, 0, frame(976), Meta::default()) {
                drops += 1;
            }
        }
        // One on the wire, two waiting, two dropped.
        assert_eq!((drops, l.tail_drops, l.frames), (2, 2, 3));
        // After 8 us the first is sent and one place is free.
        assert_eq!(l.waiting(8_000), 1);
        assert!(!matches!(
            l.send(8_000, 0, frame(976), Meta::default()),
            Sent::TailDrop(..)
        ));
    }

    #[test]
    fn a_shorter_delay_never_overtakes_the_frame_before() {
        let mut l = Link::new(0, 1, 0, 1e12, 8);
        let _ = l.send(0, 10_000, frame(60), Meta::default());
        let _ = l.send(1, 2_000, frame(60), Meta::default());
        assert!(l.in_flight[1].arrive_ns >= l.in_flight[0].arrive_ns);
    }
}
