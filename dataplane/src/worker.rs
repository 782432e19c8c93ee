//! The polling loop of one worker: for each port, RX burst -> stages ->
//! per-port TX bursts; drops counted by reason, unsent frames counted as
//! `TxFull` and freed, RX-to-TX latency recorded.

use crate::drop_reason::{DropCounters, DropReason};
use crate::frame::{Batch, Frame, PortId, Verdict};
use crate::io::Port;
use crate::stage;
use crate::tables::Tables;
use hdrhistogram::Histogram;
use std::sync::OnceLock;
use std::time::Instant;

/// Nanoseconds on a monotonic clock shared by the whole process.
#[inline]
pub fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Per-port packet and byte counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received (L2, without FCS).
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes sent (L2, without FCS).
    pub tx_bytes: u64,
}

/// Everything one worker counts.
#[derive(Clone, Debug)]
pub struct WorkerStats {
    /// Per-port counters, in port order.
    pub ports: Vec<PortCounters>,
    /// Drops by reason.
    pub drops: DropCounters,
    /// RX-to-TX latency in nanoseconds.
    pub latency: Histogram<u64>,
}

impl WorkerStats {
    /// Zeroed stats for `ports` ports.
    pub fn new(ports: usize) -> Self {
        WorkerStats {
            ports: vec![PortCounters::default(); ports],
            drops: DropCounters::default(),
            // 1 ns .. 60 s at 3 significant digits.
            latency: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .expect("static histogram bounds are valid"),
        }
    }

    /// Frames received on all ports.
    pub fn rx_packets(&self) -> u64 {
        self.ports.iter().map(|p| p.rx_packets).sum()
    }
    /// Frames sent on all ports.
    pub fn tx_packets(&self) -> u64 {
        self.ports.iter().map(|p| p.tx_packets).sum()
    }
    /// Bytes received on all ports.
    pub fn rx_bytes(&self) -> u64 {
        self.ports.iter().map(|p| p.rx_bytes).sum()
    }
    /// Bytes sent on all ports.
    pub fn tx_bytes(&self) -> u64 {
        self.ports.iter().map(|p| p.tx_bytes).sum()
    }

    /// Overwrites these stats with `o`'s without allocating (both must
    /// count the same ports), so a worker can publish a copy from its loop.
    pub fn copy_from(&mut self, o: &WorkerStats) {
        if self.ports.len() == o.ports.len() {
            self.ports.copy_from_slice(&o.ports);
        } else {
            self.ports.clone_from(&o.ports);
        }
        self.drops = o.drops;
        self.latency.reset();
        let _ = self.latency.add(&o.latency);
    }

    /// Adds another worker's stats.
    pub fn merge(&mut self, o: &WorkerStats) {
        if self.ports.len() < o.ports.len() {
            self.ports.resize(o.ports.len(), PortCounters::default());
        }
        for (a, b) in self.ports.iter_mut().zip(&o.ports) {
            a.rx_packets += b.rx_packets;
            a.rx_bytes += b.rx_bytes;
            a.tx_packets += b.tx_packets;
            a.tx_bytes += b.tx_bytes;
        }
        self.drops.add(&o.drops);
        let _ = self.latency.add(&o.latency);
    }
}

#[inline]
fn rx_counted<P: Port>(
    ports: &mut [P],
    stats: &mut WorkerStats,
    port: usize,
    batch: &mut Batch<P::Frame>,
) -> usize {
    let Some(p) = ports.get_mut(port) else {
        return 0;
    };
    let n = p.rx_burst(batch);
    if n > 0 {
        let c = &mut stats.ports[port];
        c.rx_packets += n as u64;
        c.rx_bytes += batch.frames().iter().map(|f| f.len() as u64).sum::<u64>();
        batch.stamp_all(now_ns());
    }
    n
}

/// One worker: its ports (one queue each) and its batches.
pub struct Worker<P: Port> {
    ports: Vec<P>,
    rx: Batch<P::Frame>,
    tx: Batch<P::Frame>,
    /// What this worker has counted.
    pub stats: WorkerStats,
}

impl<P: Port> Worker<P> {
    /// A worker polling `ports` (index = `PortId`).
    pub fn new(ports: Vec<P>) -> Self {
        let n = ports.len();
        Worker {
            ports,
            rx: Batch::new(),
            tx: Batch::new(),
            stats: WorkerStats::new(n),
        }
    }

    /// The ports.
    pub fn ports(&self) -> &[P] {
        &self.ports
    }

    /// The ports, writable (for draining captures, statistics).
    pub fn ports_mut(&mut self) -> &mut [P] {
        &mut self.ports
    }

    /// Gives the ports back.
    pub fn into_ports(self) -> Vec<P> {
        self.ports
    }

    /// One polling round over every port against one table snapshot.
    /// Returns the number of frames received.
    pub fn poll(&mut self, tables: &Tables) -> usize {
        let mut total = 0;
        for rx_port in 0..self.ports.len() {
            let n = rx_counted(&mut self.ports, &mut self.stats, rx_port, &mut self.rx);
            if n == 0 {
                continue;
            }
            total += n;
            stage::process(&mut self.rx, tables);
            self.send_batch();
        }
        total
    }

    /// Receives one burst from port `port` into `batch` (which should be
    /// empty), counts it and stamps each frame with the RX time. Returns
    /// the number of frames received. For drivers that run the stages
    /// elsewhere (the runtime's pipeline mode).
    #[inline]
    pub fn receive(&mut self, port: usize, batch: &mut Batch<P::Frame>) -> usize {
        rx_counted(&mut self.ports, &mut self.stats, port, batch)
    }

    /// Sends a batch whose stages have run: `Tx(port)` frames go out per
    /// port, drops are counted by reason, frames a port could not take are
    /// counted as `TxFull` and freed. Leaves `batch` empty.
    pub fn transmit(&mut self, batch: &mut Batch<P::Frame>) {
        std::mem::swap(&mut self.rx, batch);
        self.send_batch();
        std::mem::swap(&mut self.rx, batch);
    }

    /// Processes frames that are already in `batch` (for drivers that fill
    /// batches themselves) and sends them.
    pub fn process_batch(&mut self, batch: &mut Batch<P::Frame>, tables: &Tables) {
        stage::process(batch, tables);
        self.transmit(batch);
    }

    fn send_batch(&mut self) {
        // Count drops and note which ports have traffic.
        let mut ports_mask: u64 = 0;
        let mut many_ports = false;
        for v in self.rx.verdicts() {
            match *v {
                Verdict::Tx(p) if p < 64 => ports_mask |= 1 << p,
                Verdict::Tx(_) => many_ports = true,
                Verdict::Drop(r) => self.stats.drops.bump(r),
                // A verdict no stage consumed is a pipeline bug; count it.
                _ => self.stats.drops.bump(DropReason::Unsupported),
            }
        }
        let nports = self.ports.len();
        let mut p = 0usize;
        while p < nports {
            let wanted = if p < 64 {
                ports_mask & (1 << p) != 0
            } else {
                many_ports
            };
            if wanted {
                // A TX verdict naming a port this worker lacks is a table error.
                self.flush_port(p as PortId);
            }
            p += 1;
        }
        // Whatever is left was dropped (or names a port that does not exist).
        for v in self.rx.verdicts() {
            if let Verdict::Tx(_) = v {
                self.stats.drops.bump(DropReason::NoRoute);
            }
        }
        self.rx.clear();
    }

    fn flush_port(&mut self, port: PortId) {
        let now = now_ns();
        loop {
            self.rx.take_tx(port, &mut self.tx);
            if self.tx.is_empty() {
                break;
            }
            let stamp = self.tx.stamps()[0];
            let bytes: u64 = self.tx.frames().iter().map(|f| f.len() as u64).sum();
            let want = self.tx.len();
            let sent = self.ports[usize::from(port)].tx_burst(&mut self.tx);
            let c = &mut self.stats.ports[usize::from(port)];
            c.tx_packets += sent as u64;
            if sent == want {
                c.tx_bytes += bytes;
            } else {
                let unsent: u64 = self.tx.frames().iter().map(|f| f.len() as u64).sum();
                c.tx_bytes += bytes - unsent;
                for _ in 0..self.tx.len() {
                    self.stats.drops.bump(DropReason::TxFull);
                }
                self.tx.clear();
            }
            if sent > 0 {
                let _ = self
                    .stats
                    .latency
                    .record_n(now.saturating_sub(stamp).max(1), sent as u64);
            }
        }
    }
}
