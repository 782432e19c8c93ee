//! The tester's side of the ports of the node under test.
//!
//! A [`Link`] is a DUT port (it implements [`Port`], so a `Worker` polls it
//! like any other) that the tester can also reach from the wire side: the
//! source link takes fresh copies of the test frames into the DUT's receive
//! ring, the sink link takes what the DUT transmitted and hands the buffers
//! back. The tester runs on the same core as the DUT, between polls, so its
//! cost is in every figure alike, the baselines included.

use crate::traffic::Traffic;
use meshplane::frame::{Batch, HeapFrame, BURST};
use meshplane::io::memory::{ring, MemoryPort, Ring};
use meshplane::io::Port;
use std::cell::RefCell;
use std::rc::Rc;

/// What the tester does with a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkRole {
    /// The tester sends into this port's receive side.
    Source,
    /// The tester receives what the DUT sends out of this port; nothing
    /// arrives on its receive side.
    Sink,
    /// Between two nodes of a chain: an ordinary port.
    Inner,
}

/// Walks the test frames in order, pass after pass.
pub struct Cursor<'a> {
    traffic: &'a Traffic,
    next: usize,
    /// Stop at the end of each pass until `next_pass` is called.
    pub stop_at_wrap: bool,
    at_wrap: bool,
    /// Passes completed.
    pub passes: u64,
}

impl<'a> Cursor<'a> {
    /// A cursor at the first frame.
    pub fn new(traffic: &'a Traffic, stop_at_wrap: bool) -> Self {
        Cursor {
            traffic,
            next: 0,
            stop_at_wrap,
            at_wrap: false,
            passes: 0,
        }
    }

    /// The next frame, or `None` while held at the end of a pass.
    #[inline]
    pub fn peek(&self) -> Option<&'a [u8]> {
        if self.at_wrap || self.traffic.is_empty() {
            None
        } else {
            Some(self.traffic.frame(self.next))
        }
    }

    /// Moves past the frame `peek` returned.
    #[inline]
    pub fn advance(&mut self) {
        self.next += 1;
        if self.next == self.traffic.len() {
            self.next = 0;
            self.passes += 1;
            self.at_wrap = self.stop_at_wrap;
        }
    }

    /// True while held at the end of a pass.
    pub fn at_wrap(&self) -> bool {
        self.at_wrap
    }

    /// Releases the hold at the end of a pass.
    pub fn next_pass(&mut self) {
        self.at_wrap = false;
    }
}

/// A DUT port with a tester behind it.
pub trait Link: Port {
    /// Puts fresh copies of up to `n` frames from `src` on this port's
    /// receive ring; returns how many the ring took (fewer when it is full).
    fn offer(&mut self, src: &mut Cursor<'_>, n: usize) -> usize;

    /// Frames the tester received from this port so far.
    fn received(&self) -> u64;

    /// Frames waiting in this port's receive ring.
    fn rx_pending(&self) -> usize;

    /// Free slots in this port's receive ring, when the tester can tell.
    fn rx_room(&self) -> Option<usize>;

    /// How long frames may still be on their way after the last one moved
    /// (a kernel path delivers after the send returns): draining waits
    /// this long without progress before it calls the pipeline empty.
    fn settle(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// True when the port's device makes its own traffic (a PMD replaying
    /// a file): the tester then cannot offer or pace, and what the DUT
    /// received is what was offered.
    fn self_fed(&self) -> bool {
        false
    }
}

/// Free heap frames shared by the source and the sink of one DUT.
pub type FreeList = Rc<RefCell<Vec<HeapFrame>>>;

/// A memory-backend port (lock-free rings, as DPDK's `net_ring`).
pub struct MemLink {
    port: MemoryPort,
    role: LinkRole,
    free: FreeList,
    room: usize,
    received: u64,
}

impl MemLink {
    /// A link over `port`.
    pub fn new(port: MemoryPort, role: LinkRole, free: FreeList, room: usize) -> Self {
        MemLink {
            port,
            role,
            free,
            room,
            received: 0,
        }
    }
}

impl Port for MemLink {
    type Frame = HeapFrame;

    #[inline]
    fn rx_burst(&mut self, batch: &mut Batch<HeapFrame>) -> usize {
        if self.role == LinkRole::Sink {
            return 0;
        }
        self.port.rx_burst(batch)
    }

    #[inline]
    fn tx_burst(&mut self, batch: &mut Batch<HeapFrame>) -> usize {
        let sent = self.port.tx_burst(batch);
        if self.role == LinkRole::Sink {
            let mut free = self.free.borrow_mut();
            while let Some(f) = self.port.tx_ring().pop() {
                self.received += 1;
                free.push(f);
            }
        }
        sent
    }
}

impl Link for MemLink {
    #[inline]
    fn offer(&mut self, src: &mut Cursor<'_>, n: usize) -> usize {
        let rx = self.port.rx_ring();
        let mut free = self.free.borrow_mut();
        let mut done = 0;
        while done < n {
            let Some(bytes) = src.peek() else { break };
            let mut f = free
                .pop()
                .unwrap_or_else(|| HeapFrame::with_room(self.room));
            f.reset_from(bytes);
            if let Err(f) = rx.push(f) {
                free.push(f);
                break;
            }
            src.advance();
            done += 1;
        }
        done
    }

    fn received(&self) -> u64 {
        self.received
    }

    fn rx_pending(&self) -> usize {
        self.port.rx_ring().len()
    }

    fn rx_room(&self) -> Option<usize> {
        let r = self.port.rx_ring();
        Some(r.capacity() - r.len())
    }
}

/// Builds the memory-backend ports of a chain of nodes: `ports[k]` has one
/// link per port of node `k`; node `k`'s `tx` port feeds node `k + 1`'s `rx`
/// port; the tester feeds the first node's `rx` port and drains the last
/// node's `tx` port. `depth` is every receive ring's size (a NIC's RX
/// descriptor ring), `room` the data room of each heap frame.
pub fn memory_links(
    nodes: &[(usize, usize, usize)],
    depth: usize,
    room: usize,
) -> Vec<Vec<MemLink>> {
    // Frames for a full receive ring and a few bursts per node, allocated
    // (and so faulted in) now rather than during a trial; more are made on
    // demand if the rings between chained nodes fill as well.
    let prealloc = depth + 8 * BURST * nodes.len();
    let mut frames = Vec::with_capacity(depth * (nodes.len() + 1) + 8 * BURST);
    frames.extend((0..prealloc).map(|_| HeapFrame::with_room(room)));
    let free: FreeList = Rc::new(RefCell::new(frames));
    let rings: Vec<Ring> = (0..=nodes.len()).map(|_| ring(depth)).collect();
    let last = nodes.len().saturating_sub(1);
    nodes
        .iter()
        .enumerate()
        .map(|(k, &(n_ports, rx, tx))| {
            (0..n_ports)
                .map(|p| {
                    let (rx_ring, role_rx) = if p == rx {
                        (
                            rings[k].clone(),
                            if k == 0 {
                                LinkRole::Source
                            } else {
                                LinkRole::Inner
                            },
                        )
                    } else {
                        (ring(BURST), LinkRole::Inner)
                    };
                    let (tx_ring, role) = if p == tx {
                        (
                            rings[k + 1].clone(),
                            if k == last { LinkRole::Sink } else { role_rx },
                        )
                    } else {
                        (ring(depth), role_rx)
                    };
                    MemLink::new(MemoryPort::new(rx_ring, tx_ring), role, free.clone(), room)
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshplane::frame::Frame;

    #[test]
    fn cursor_holds_at_wrap_when_asked() {
        let t = Traffic::from_frames([&[1u8][..], &[2u8][..]]);
        let mut c = Cursor::new(&t, true);
        assert_eq!(c.peek(), Some(&[1u8][..]));
        c.advance();
        c.advance();
        assert!(c.at_wrap());
        assert_eq!(c.peek(), None);
        assert_eq!(c.passes, 1);
        c.next_pass();
        assert_eq!(c.peek(), Some(&[1u8][..]));
    }

    #[test]
    fn source_to_sink_through_one_node() {
        let t = Traffic::from_frames([&[7u8; 60][..]]);
        let mut links = memory_links(&[(2, 0, 1)], 8, 2048);
        let mut node = links.remove(0);
        let mut c = Cursor::new(&t, false);
        // The ring takes 8, then refuses.
        assert_eq!(node[0].offer(&mut c, 20), 8);
        assert_eq!(node[0].rx_pending(), 8);
        let mut b = Batch::new();
        assert_eq!(node[0].rx_burst(&mut b), 8);
        assert_eq!(b.frames()[0].data(), &[7u8; 60][..]);
        assert_eq!(node[1].tx_burst(&mut b), 8);
        assert_eq!(node[1].received(), 8);
        assert_eq!(node[1].rx_burst(&mut b), 0);
    }
}
