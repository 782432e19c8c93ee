//! In-process backend: ports joined by bounded lock-free rings, as DPDK's
//! `net_ring` joins ports with `rte_ring`s. Used to chain nodes in tests and
//! benchmarks without a kernel or a file in the way.

use crate::frame::{Batch, HeapFrame};
use crate::io::Port;
use crossbeam::queue::ArrayQueue;
use std::sync::Arc;

/// A ring of frames between two ports.
pub type Ring = Arc<ArrayQueue<HeapFrame>>;

/// A new ring holding at most `cap` frames.
pub fn ring(cap: usize) -> Ring {
    Arc::new(ArrayQueue::new(cap.max(1)))
}

/// A port that receives from one ring and transmits into another.
pub struct MemoryPort {
    rx: Ring,
    tx: Ring,
}

impl MemoryPort {
    /// A port reading `rx` and writing `tx`.
    pub fn new(rx: Ring, tx: Ring) -> Self {
        MemoryPort { rx, tx }
    }

    /// Two ports joined back to back (what one sends the other receives).
    pub fn pair(cap: usize) -> (MemoryPort, MemoryPort) {
        let (a, b) = (ring(cap), ring(cap));
        (MemoryPort::new(a.clone(), b.clone()), MemoryPort::new(b, a))
    }

    /// The ring this port receives from (to inject frames).
    pub fn rx_ring(&self) -> &Ring {
        &self.rx
    }

    /// The ring this port transmits into (to collect frames).
    pub fn tx_ring(&self) -> &Ring {
        &self.tx
    }
}

impl Port for MemoryPort {
    type Frame = HeapFrame;

    fn rx_burst(&mut self, batch: &mut Batch<HeapFrame>) -> usize {
        let mut n = 0;
        while batch.room() > 0 {
            match self.rx.pop() {
                Some(f) => {
                    let _ = batch.push(f);
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    fn tx_burst(&mut self, batch: &mut Batch<HeapFrame>) -> usize {
        // Each ring has one producer (this port), so the free space can only
        // grow while we push: the first `n` frames are sure to fit.
        let n = (self.tx.capacity() - self.tx.len()).min(batch.len());
        let mut sent = 0;
        for f in batch.consume_front(n) {
            if self.tx.push(f).is_ok() {
                sent += 1;
            }
        }
        sent
    }

    fn frame_from(&mut self, bytes: &[u8]) -> Option<HeapFrame> {
        // Test and benchmark backend: a fresh heap buffer.
        Some(HeapFrame::from_bytes(bytes))
    }
}
