//! The polling loop of one worker: for each port, RX burst -> stages ->
//! per-port TX bursts; drops counted by reason, unsent frames counted as
//! `TxFull` and freed, RX-to-TX latency recorded.

use crate::control::channel::{PuntClass, PuntPath, Refusal, SLOT};
use crate::drop_reason::{DropCounters, DropReason};
use crate::frame::{Batch, Frame, PortId, Verdict};
use crate::io::Port;
use crate::stage;
use crate::tables::Tables;
use hdrhistogram::Histogram;
use std::sync::OnceLock;

/// Nanoseconds on a monotonic clock shared by the whole process, counted
/// from its first call: the CPU's invariant TSC scaled by a factor
/// calibrated once against the OS clock (about a third of what
/// `Instant::now` costs on a VM), or the OS clock where there is no
/// invariant TSC. The worker reads it twice per burst.
#[inline]
pub fn now_ns() -> u64 {
    static CLOCK: OnceLock<(quanta::Clock, u64)> = OnceLock::new();
    let (clock, base) = CLOCK.get_or_init(|| {
        let clock = quanta::Clock::new();
        let base = clock.raw();
        (clock, base)
    });
    clock.delta_as_nanos(*base, clock.raw())
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
    /// Frames received for the node itself and handed to its control
    /// thread (also in `rx_packets`).
    pub punt_packets: u64,
    /// Frames of the control thread's own sent (also in `tx_packets`).
    pub inject_packets: u64,
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
            a.punt_packets += b.punt_packets;
            a.inject_packets += b.inject_packets;
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
    let (n, bytes) = p.rx_burst_counted(batch);
    batch.set_rx_port(port as PortId);
    if n > 0 {
        let c = &mut stats.ports[port];
        c.rx_packets += n as u64;
        c.rx_bytes += bytes;
        // The frames may be processed and sent on another thread: the stamp
        // travels with them.
        batch.stamp_all(now_ns());
    }
    n
}

/// One worker: its ports (one queue each) and its batches.
pub struct Worker<P: Port> {
    ports: Vec<P>,
    rx: Batch<P::Frame>,
    tx: Batch<P::Frame>,
    /// The channel to the control thread, if the node has one.
    punt: Option<PuntPath>,
    /// The ports with an address (bit per port), from the last poll's
    /// tables: their senders hear of packets dropped for TTL or size.
    lan_ports: u64,
    /// The clock when this round last sent frames (0: not yet).
    sent_ns: u64,
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
            punt: None,
            lan_ports: 0,
            sent_ns: 0,
            stats: WorkerStats::new(n),
        }
    }

    /// Connects the worker to its control thread: frames for the node go
    /// up through `path` (behind its policer), the control thread's own
    /// frames come down. Without it, such frames are dropped as
    /// `punt_full` and nothing is injected.
    pub fn set_punt_path(&mut self, path: PuntPath) {
        self.punt = Some(path);
    }

    /// The ports.
    pub fn ports(&self) -> &[P] {
        &self.ports
    }

    /// What signals a frame queued by the control thread, if the worker
    /// has a channel that signals (see [`Worker::hears_injects`]).
    pub fn inject_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.punt.as_ref()?.channel.wake_fd()
    }

    /// True when nothing the control thread queues goes unnoticed by a
    /// wait on [`Worker::inject_fd`] (or the worker has no channel).
    pub fn hears_injects(&self) -> bool {
        self.punt
            .as_ref()
            .is_none_or(|p| p.channel.wake_fd().is_some())
    }

    /// After a wait that [`Worker::inject_fd`] ended: resets it.
    pub fn inject_heard(&self) {
        if let Some(p) = &self.punt {
            p.channel.clear_wake();
        }
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
        self.lan_ports = tables.addressed_ports;
        self.sent_ns = 0;
        let mut total = 0;
        for rx_port in 0..self.ports.len() {
            let (n, bytes) = self.ports[rx_port].rx_burst_counted(&mut self.rx);
            if n == 0 {
                continue;
            }
            self.rx.set_rx_port(rx_port as PortId);
            // One clock read per burst: every frame of it arrived together.
            let rx_ns = now_ns();
            total += n;
            let c = &mut self.stats.ports[rx_port];
            c.rx_packets += n as u64;
            c.rx_bytes += bytes;
            match stage::process_one_port(&mut self.rx, tables) {
                // Transit swaps keep every frame's length: the bytes sent
                // are the bytes received. The verdicts were not written.
                Some(one) if one.aside == 0 && usize::from(one.port) < self.ports.len() => {
                    self.send_whole(usize::from(one.port), bytes, rx_ns)
                }
                // A few frames were dropped or are for the node: counted
                // or punted, then the rest goes out whole.
                Some(one) if usize::from(one.port) < self.ports.len() => {
                    let aside = self.set_aside_mask(one.aside, rx_ns);
                    if !self.rx.is_empty() {
                        self.send_whole(usize::from(one.port), bytes - aside, rx_ns)
                    }
                }
                Some(one) => {
                    one.write_verdicts(&mut self.rx);
                    self.send_batch(rx_ns)
                }
                None => self.send_batch(rx_ns),
            }
        }
        self.inject_queued();
        total
    }

    /// The clock reading ([`now_ns`]) at which the last [`Worker::poll`]
    /// last sent frames, if it sent any: a polling loop that wants the
    /// time after a busy round need not read the clock again.
    #[inline]
    pub fn last_sent_ns(&self) -> Option<u64> {
        (self.sent_ns != 0).then_some(self.sent_ns)
    }

    /// Sends what the control thread queued for this worker, in order,
    /// grouping runs for one port into bursts. The polling loop calls it
    /// once per round; it costs one test without a control thread.
    #[inline]
    pub fn inject_queued(&mut self) {
        if self.punt.as_ref().is_some_and(|p| p.channel.has_inject()) {
            self.inject();
        }
    }

    #[cold]
    fn inject(&mut self) {
        let Some(path) = &self.punt else {
            return;
        };
        let channel = path.channel.clone();
        let mut port = PortId::MAX;
        while let Some(slot) = channel.next_inject() {
            let p = slot.port;
            if p != port || self.tx.room() == 0 {
                self.flush_injected(port);
                port = p;
            }
            let frame = match self.ports.get_mut(usize::from(p)) {
                Some(dev) => dev.frame_from(slot.bytes()),
                None => None,
            };
            channel.injected(slot);
            match frame {
                Some(f) => {
                    let _ = self.tx.push_with(f, Verdict::Tx(p), 0);
                }
                // No buffer free (or no such port): the control protocols
                // retransmit; counted as the TX path would.
                None => self.stats.drops.bump(DropReason::TxFull),
            }
        }
        self.flush_injected(port);
    }

    /// Sends the injected frames gathered in `tx` on `port`.
    fn flush_injected(&mut self, port: PortId) {
        if self.tx.is_empty() {
            return;
        }
        let p = usize::from(port);
        let n = self.tx.len() as u64;
        let bytes = frame_bytes(self.tx.frames());
        let now = now_ns();
        match self.ports.get_mut(p) {
            Some(dev) => {
                let before = self.stats.ports[p].tx_packets;
                tx_counted(dev, &mut self.stats, p, &mut self.tx, bytes, now, now);
                let sent = self.stats.ports[p].tx_packets - before;
                self.stats.ports[p].inject_packets += sent;
            }
            None => {
                self.stats.drops.0[DropReason::NoRoute.index()] += n;
                self.tx.clear();
            }
        }
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
    /// Latency counts from the first frame's stamp (`receive`,
    /// `Batch::push_with`), or from now if it has none.
    pub fn transmit(&mut self, batch: &mut Batch<P::Frame>) {
        let rx_ns = match batch.stamps().first() {
            Some(&s) if s != 0 => s,
            _ => now_ns(),
        };
        std::mem::swap(&mut self.rx, batch);
        self.send_batch(rx_ns);
        std::mem::swap(&mut self.rx, batch);
    }

    /// Processes frames that are already in `batch` (for drivers that fill
    /// batches themselves) and sends them. Latency counts from the first
    /// frame's stamp (`Batch::push_with`), or from now if it has none.
    pub fn process_batch(&mut self, batch: &mut Batch<P::Frame>, tables: &Tables) {
        stage::process(batch, tables);
        self.transmit(batch);
    }

    /// Sends the processed `rx` batch and counts what happened to it.
    #[inline]
    fn send_batch(&mut self, rx_ns: u64) {
        // The common case, every frame to one port (a transit hop, a gateway
        // direction): the batch goes to the port as it is.
        if let Some((port, bytes)) = self.single_tx_port() {
            self.send_whole(port, bytes, rx_ns);
            return;
        }
        // Next most common: one port, beside frames that are finished
        // otherwise (dropped, or punted to the node): those are counted
        // or handed over, and the rest goes to the port as it is.
        if let Some((port, finished)) = self.one_port_beside_finished() {
            self.set_aside_mask(finished, rx_ns);
            if !self.rx.is_empty() {
                let bytes = frame_bytes(self.rx.frames());
                self.send_whole(port, bytes, rx_ns);
            }
            return;
        }
        self.send_mixed(rx_ns);
    }

    /// The one port the `Tx` frames of `rx` go to, if every other frame
    /// is dropped or punted and this worker has that port, with the mask
    /// of those other frames.
    #[cold]
    fn one_port_beside_finished(&self) -> Option<(usize, u64)> {
        let mut port = None;
        let mut finished = 0u64;
        for (i, v) in self.rx.verdicts().iter().enumerate() {
            match (*v, port) {
                (Verdict::Tx(p), None) => port = Some(p),
                (Verdict::Tx(p), Some(q)) if p != q => return None,
                (Verdict::Tx(_), _) => {}
                (Verdict::Drop(_) | Verdict::Punt, _) => finished |= 1 << i,
                // A verdict no stage consumed: the general path counts it.
                _ => return None,
            }
        }
        let p = usize::from(port.unwrap_or(0));
        (p < self.ports.len()).then_some((p, finished))
    }

    /// Counts or punts the frames of `rx` whose bit is set in `aside`
    /// (their verdicts `Drop` or `Punt`) and removes them; returns their
    /// bytes.
    #[cold]
    fn set_aside_mask(&mut self, aside: u64, rx_ns: u64) -> u64 {
        let rx_port = self.rx.rx_port();
        let mut bytes = 0;
        // Only the frames set aside, by their bits.
        let mut m = aside;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            let (Some(f), Some(v)) = (self.rx.frames().get(i), self.rx.verdicts().get(i)) else {
                break;
            };
            bytes += f.len() as u64;
            match *v {
                Verdict::Punt => punt_counted(
                    &mut self.stats,
                    self.punt.as_mut(),
                    rx_port,
                    rx_ns,
                    f.data(),
                ),
                Verdict::Drop(r) => drop_counted(
                    &mut self.stats,
                    self.punt.as_mut(),
                    self.lan_ports,
                    r,
                    rx_port,
                    rx_ns,
                    f.data(),
                ),
                _ => self.stats.drops.bump(DropReason::Unsupported),
            }
        }
        self.rx.remove_mask(aside);
        bytes
    }

    /// The port every frame of `rx` is sent on, if there is one such port
    /// and this worker has it, with the frames' bytes (summed in the same
    /// walk).
    #[inline]
    fn single_tx_port(&self) -> Option<(usize, u64)> {
        let v = self.rx.verdicts();
        let Some(&Verdict::Tx(p)) = v.first() else {
            return None;
        };
        let mut same = true;
        let mut bytes = 0u64;
        for (f, x) in self.rx.frames().iter().zip(v) {
            same &= *x == Verdict::Tx(p);
            bytes += f.len() as u64;
        }
        let p = usize::from(p);
        (same && p < self.ports.len()).then_some((p, bytes))
    }

    /// Sends all of `rx` (`bytes` in all) on `port`.
    #[inline]
    fn send_whole(&mut self, port: usize, bytes: u64, rx_ns: u64) {
        let now = now_ns();
        self.sent_ns = now;
        tx_counted(
            &mut self.ports[port],
            &mut self.stats,
            port,
            &mut self.rx,
            bytes,
            now,
            rx_ns,
        );
    }

    /// Frames for several ports, or drops among them: count the drops, then
    /// send each port's frames in order.
    fn send_mixed(&mut self, rx_ns: u64) {
        // Count drops and note which ports have traffic.
        let mut ports_mask: u64 = 0;
        let mut many_ports = false;
        let rx_port = self.rx.rx_port();
        for (f, v) in self.rx.frames().iter().zip(self.rx.verdicts()) {
            match *v {
                Verdict::Tx(p) if p < 64 => ports_mask |= 1 << p,
                Verdict::Tx(_) => many_ports = true,
                Verdict::Drop(r) => drop_counted(
                    &mut self.stats,
                    self.punt.as_mut(),
                    self.lan_ports,
                    r,
                    rx_port,
                    rx_ns,
                    f.data(),
                ),
                Verdict::Punt => punt_counted(
                    &mut self.stats,
                    self.punt.as_mut(),
                    rx_port,
                    rx_ns,
                    f.data(),
                ),
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
                self.flush_port(p as PortId, rx_ns);
            }
            p += 1;
        }
        // Whatever is left was dropped (or names a port that does not exist:
        // a table error).
        for v in self.rx.verdicts() {
            if let Verdict::Tx(_) = v {
                self.stats.drops.bump(DropReason::NoRoute);
            }
        }
        self.rx.clear();
    }

    fn flush_port(&mut self, port: PortId, rx_ns: u64) {
        let now = now_ns();
        self.sent_ns = now;
        loop {
            self.rx.take_tx(port, &mut self.tx);
            if self.tx.is_empty() {
                break;
            }
            let bytes = frame_bytes(self.tx.frames());
            let p = usize::from(port);
            tx_counted(
                &mut self.ports[p],
                &mut self.stats,
                p,
                &mut self.tx,
                bytes,
                now,
                rx_ns,
            );
        }
    }
}

/// Sends `batch` (`bytes` in all) on `port` (index `index`) and counts:
/// packets and bytes sent, what the port refused as `TxFull` (freed, so
/// `batch` ends empty), and the latency from `rx_ns` to `now`.
#[inline]
fn tx_counted<P: Port>(
    port: &mut P,
    stats: &mut WorkerStats,
    index: usize,
    batch: &mut Batch<P::Frame>,
    bytes: u64,
    now: u64,
    rx_ns: u64,
) {
    let want = batch.len();
    let sent = port.tx_burst(batch);
    let c = &mut stats.ports[index];
    c.tx_packets += sent as u64;
    if sent == want {
        c.tx_bytes += bytes;
    } else {
        c.tx_bytes += bytes - frame_bytes(batch.frames());
        drop_unsent(stats, batch);
    }
    if sent > 0 {
        let _ = stats
            .latency
            .record_n(now.saturating_sub(rx_ns).max(1), sent as u64);
    }
}

/// Counts a drop; a packet from a LAN port dropped for its TTL or its
/// size also goes to the control thread (policed as ICMP), which tells its
/// sender (RFC 1812 §4.3.2: time exceeded, fragmentation needed).
#[inline]
fn drop_counted(
    stats: &mut WorkerStats,
    path: Option<&mut PuntPath>,
    lan_ports: u64,
    r: DropReason,
    port: PortId,
    now: u64,
    packet: &[u8],
) {
    stats.drops.bump(r);
    let lan = port < 64 && lan_ports >> port & 1 == 1;
    if lan && matches!(r, DropReason::TtlExpired | DropReason::TooBig) {
        report_error(path, r, port, now, packet);
    }
}

/// Hands a copy of a dropped packet to the control thread for an ICMP
/// error, within the policer's ICMP rate; a refusal costs nothing more
/// (the drop is counted already).
#[cold]
fn report_error(path: Option<&mut PuntPath>, r: DropReason, port: PortId, now: u64, packet: &[u8]) {
    let Some(path) = path else {
        return;
    };
    if packet.len() <= SLOT && path.policer.admit(PuntClass::Icmp, now) {
        let _ = path.channel.punt_error(port, now, r, packet);
    }
}

/// [`punt`], counted: per port when handed over, as a drop otherwise.
#[cold]
fn punt_counted(
    stats: &mut WorkerStats,
    path: Option<&mut PuntPath>,
    port: PortId,
    now: u64,
    frame: &[u8],
) {
    match punt(path, port, now, frame) {
        Ok(()) => {
            if let Some(c) = stats.ports.get_mut(usize::from(port)) {
                c.punt_packets += 1;
            }
        }
        Err(r) => stats.drops.bump(r),
    }
}

/// Hands a frame for the node to the control thread through `path`, if
/// its class is within the policer's rate and the queue has room.
#[cold]
fn punt(
    path: Option<&mut PuntPath>,
    port: PortId,
    now: u64,
    frame: &[u8],
) -> Result<(), DropReason> {
    let Some(path) = path else {
        return Err(DropReason::PuntFull);
    };
    if frame.len() > SLOT {
        return Err(DropReason::Oversize);
    }
    if !path.policer.admit(PuntClass::of(frame), now) {
        return Err(DropReason::PuntPoliced);
    }
    match path.channel.punt(port, now, frame) {
        Ok(()) => Ok(()),
        Err(Refusal::Full) => Err(DropReason::PuntFull),
        Err(Refusal::TooLong) => Err(DropReason::Oversize),
    }
}

/// Counts what is left in `batch` after a TX burst as `TxFull` and frees it.
#[cold]
fn drop_unsent<F: Frame>(stats: &mut WorkerStats, batch: &mut Batch<F>) {
    stats.drops.0[DropReason::TxFull.index()] += batch.len() as u64;
    batch.clear();
}

/// Bytes in `frames` (L2, without FCS).
#[inline]
fn frame_bytes<F: Frame>(frames: &[F]) -> u64 {
    frames.iter().map(|f| f.len() as u64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;
    use crate::frame::HeapFrame;
    use crate::io::memory::{ring, MemoryPort};

    /// The burst clock counts real nanoseconds (it is what the latency
    /// percentiles are made of), never goes back, and agrees across threads.
    #[test]
    fn burst_clock_counts_nanoseconds_monotonically() {
        let (t0, w0) = (now_ns(), std::time::Instant::now());
        let mut last = t0;
        while w0.elapsed() < std::time::Duration::from_millis(50) {
            let t = now_ns();
            assert!(t >= last, "clock went back: {last} -> {t}");
            last = t;
        }
        let wall = w0.elapsed().as_nanos() as f64;
        let ours = (now_ns() - t0) as f64;
        assert!(
            (ours / wall - 1.0).abs() < 0.05,
            "50 ms of wall time read as {ours} ns (wall {wall} ns)"
        );
        let before = now_ns();
        let other = std::thread::spawn(now_ns).join().expect("thread");
        assert!(
            other >= before,
            "another thread's reading {other} < {before}"
        );
    }

    /// Label 100 -> port p1, label 101 -> port p0 (both swap).
    const NODE: &str = r#"
[node]
name = "w"
role = "satellite"

[[ports]]
name = "p0"
mac = "02:00:00:00:00:01"

[[ports]]
name = "p1"
mac = "02:00:00:00:00:02"

[[lfib]]
label = 100
action = "swap"
out_label = 200
port = "p1"
next_hop_mac = "02:00:00:00:00:0b"

[[lfib]]
label = 101
action = "swap"
out_label = 201
port = "p0"
next_hop_mac = "02:00:00:00:00:0c"
"#;

    /// A labelled frame sent to port p0.
    fn labelled(label: u32, ttl: u8) -> HeapFrame {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xaa];
        f.extend(0x8847u16.to_be_bytes());
        f.extend(((label << 12) | (1 << 8) | u32::from(ttl)).to_be_bytes());
        f.extend([0x45u8; 42]);
        HeapFrame::from_bytes(&f)
    }

    /// A worker over two memory ports; port 1 can take `cap1` frames.
    fn worker(cap1: usize) -> (Worker<MemoryPort>, Tables) {
        let node = NodeConfig::parse(NODE, "w.toml").expect("config");
        let t = Tables::from_config(&node, 1).expect("tables");
        let p0 = MemoryPort::new(ring(64), ring(64));
        let p1 = MemoryPort::new(ring(64), ring(cap1));
        (Worker::new(vec![p0, p1]), t)
    }

    #[test]
    fn one_port_burst_is_sent_whole_and_counted() {
        let (mut w, t) = worker(64);
        for _ in 0..32 {
            w.ports()[0].rx_ring().push(labelled(100, 9)).expect("room");
        }
        assert_eq!(w.poll(&t), 32);
        assert_eq!(w.ports()[1].tx_ring().len(), 32);
        assert_eq!(w.stats.ports[0].rx_packets, 32);
        assert_eq!(w.stats.ports[0].rx_bytes, 32 * 60);
        assert_eq!(w.stats.ports[1].tx_packets, 32);
        assert_eq!(w.stats.ports[1].tx_bytes, 32 * 60);
        assert_eq!(w.stats.drops.total(), 0);
        assert_eq!(w.stats.latency.len(), 32);
    }

    #[test]
    fn a_full_tx_ring_counts_the_rest_as_tx_full() {
        let (mut w, t) = worker(5);
        for _ in 0..20 {
            w.ports()[0].rx_ring().push(labelled(100, 9)).expect("room");
        }
        w.poll(&t);
        assert_eq!(w.stats.ports[1].tx_packets, 5);
        assert_eq!(w.stats.ports[1].tx_bytes, 5 * 60);
        assert_eq!(w.stats.drops.get(DropReason::TxFull), 15);
        assert_eq!(w.stats.latency.len(), 5);
    }

    /// The NODE above with an address on p0 and a node address.
    fn addressed() -> (
        Worker<MemoryPort>,
        Tables,
        std::sync::Arc<crate::control::channel::WorkerChannel>,
    ) {
        let text = NODE
            .replace(
                "role = \"satellite\"\n",
                "role = \"satellite\"\naddress = \"192.0.2.9\"\n",
            )
            .replacen(
                "mac = \"02:00:00:00:00:01\"\n",
                "mac = \"02:00:00:00:00:01\"\naddress = \"10.9.0.1/24\"\n",
                1,
            );
        let node = NodeConfig::parse(&text, "w.toml").expect("config");
        let t = Tables::from_config(&node, 1).expect("tables");
        let (p0, p1) = (
            MemoryPort::new(ring(64), ring(64)),
            MemoryPort::new(ring(64), ring(64)),
        );
        let mut w = Worker::new(vec![p0, p1]);
        let punt = crate::config::PuntConfig {
            icmp_pps: 10,
            ..node.punt
        };
        let channel = std::sync::Arc::new(crate::control::channel::WorkerChannel::new(4));
        w.set_punt_path(PuntPath {
            channel: channel.clone(),
            policer: crate::control::channel::Policer::new(&punt),
        });
        (w, t, channel)
    }

    fn ipv4_to(dst_mac: [u8; 6], dst: [u8; 4], proto: u8) -> HeapFrame {
        let mut f = dst_mac.to_vec();
        f.extend([2, 0, 0, 0, 0, 0xaa, 0x08, 0x00]);
        let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, proto, 0, 0, 10, 9, 0, 2];
        ip.extend(dst);
        ip.extend([8, 0, 0, 0, 0, 1, 0, 1]);
        let c = crate::packet::checksum::internet_checksum(&ip[..20]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend(ip);
        HeapFrame::from_bytes(&f)
    }

    #[test]
    fn frames_for_the_node_are_punted_as_received_policed_and_bounded() {
        let (mut w, t, channel) = addressed();
        let rx = w.ports()[0].rx_ring().clone();
        let mac = [2, 0, 0, 0, 0, 1];
        // A broadcast ARP request for p0's address, a ping to the node
        // address, a ping to p0's address, a transit frame.
        let mut arp = vec![0xff; 6];
        arp.extend([2, 0, 0, 0, 0, 0xaa, 0x08, 0x06]);
        arp.extend([0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 0xaa, 10, 9, 0, 2]);
        arp.extend([0, 0, 0, 0, 0, 0, 10, 9, 0, 1]);
        let sent = [
            HeapFrame::from_bytes(&arp),
            ipv4_to(mac, [192, 0, 2, 9], 1),
            ipv4_to(mac, [10, 9, 0, 1], 1),
            labelled(100, 9),
        ];
        for f in sent.iter().cloned() {
            rx.push(f).expect("room");
        }
        w.poll(&t);
        let got: Vec<Vec<u8>> = std::iter::from_fn(|| channel.next_punted())
            .map(|s| {
                assert_eq!(s.port, 0);
                let b = s.bytes().to_vec();
                channel.done(s);
                b
            })
            .collect();
        let want: Vec<Vec<u8>> = sent[..3].iter().map(|f| f.data().to_vec()).collect();
        assert_eq!(got, want, "punted frames are the frames received");
        assert_eq!(w.stats.ports[0].punt_packets, 3);
        assert_eq!(w.ports()[1].tx_ring().len(), 1, "transit still forwarded");

        // A flood of pings: the policer (10 pps, burst 8) passes what is
        // left of its burst, the queue (4) holds what it can.
        for _ in 0..30 {
            rx.push(ipv4_to(mac, [192, 0, 2, 9], 1)).expect("room");
        }
        w.poll(&t);
        let policed = w.stats.drops.get(DropReason::PuntPoliced);
        let full = w.stats.drops.get(DropReason::PuntFull);
        assert_eq!(policed + full + 4, 30, "policed {policed} full {full}");
        assert!(policed >= 30 - 8, "policed {policed}");
    }

    #[test]
    fn injected_frames_leave_by_their_port_and_are_counted() {
        let (mut w, t, channel) = addressed();
        let frame = labelled(100, 9);
        channel.inject(1, frame.data()).expect("room");
        channel.inject(0, frame.data()).expect("room");
        channel.inject(7, frame.data()).expect("room");
        assert_eq!(w.poll(&t), 0);
        assert_eq!(
            w.ports()[1].tx_ring().pop().map(|f| f.data().to_vec()),
            Some(frame.data().to_vec())
        );
        assert_eq!(w.ports()[0].tx_ring().len(), 1);
        assert_eq!(w.stats.ports[1].inject_packets, 1);
        assert_eq!(w.stats.ports[1].tx_packets, 1);
        assert_eq!(w.stats.ports[0].inject_packets, 1);
        assert_eq!(
            w.stats.drops.total(),
            1,
            "the frame for a port that does not exist"
        );
        assert!(channel.next_inject().is_none());
    }

    #[test]
    fn mixed_ports_and_drops_keep_order_per_port() {
        let (mut w, t) = worker(64);
        let rx = w.ports()[0].rx_ring().clone();
        // 100 -> p1, 101 -> p0, TTL 1 expires, 999 has no route.
        for (i, (label, ttl)) in [(100, 9), (101, 9), (100, 1), (999, 9), (100, 8), (101, 7)]
            .into_iter()
            .enumerate()
        {
            let mut f = labelled(label, ttl);
            f.data_mut()[30] = i as u8;
            rx.push(f).expect("room");
        }
        w.poll(&t);
        let tags = |p: usize| -> Vec<u8> {
            let r = w.ports()[p].tx_ring();
            std::iter::from_fn(|| r.pop())
                .map(|f| f.data()[30])
                .collect()
        };
        assert_eq!(tags(1), [0, 4]);
        assert_eq!(tags(0), [1, 5]);
        assert_eq!(w.stats.drops.get(DropReason::TtlExpired), 1);
        assert_eq!(w.stats.drops.get(DropReason::NoRoute), 1);
        assert_eq!(w.stats.ports[0].tx_packets + w.stats.ports[1].tx_packets, 4);
    }
}
