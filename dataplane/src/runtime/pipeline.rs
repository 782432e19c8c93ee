//! Pipeline mode: one I/O thread and one crypto thread share a set of port
//! queues.
//!
//! The I/O thread receives a burst, runs the stages before the AEAD
//! (dispatch, LFIB, classify) and hands the batch, with the table snapshot
//! it was classified under, to the crypto thread over a bounded lock-free
//! queue. The crypto thread runs the AEAD stages (encrypt, push, decrypt,
//! deliver) under that same snapshot and hands the batch back; the I/O
//! thread transmits it and counts every verdict. Only the I/O thread
//! touches the ports, so a backend's one-owner-per-queue rule holds.
//!
//! No loss, no reordering: a fixed set of [`IN_FLIGHT`] batches circulates
//! (free list -> crypto -> back), so neither queue can overflow; when all
//! are out the I/O thread stops receiving and the device's RX ring absorbs
//! (or counts as missed) the excess. Batches come back in the order they
//! left, and while any batch is out even batches that need no crypto take
//! the same path, so frames leave in arrival order.
//!
//! When it wins: a pair's rate is bounded by its slower side, so pipeline
//! beats one run-to-completion core by at most (I/O + classify + AEAD) /
//! max(I/O + classify, AEAD). At 1420 B through a gateway the AEAD is most
//! of the cost (~1.1 of ~1.3-1.7 us per frame here), so the bound is only
//! ~1.15-1.3x, while two run-to-completion cores with RSS approach 2x.
//! Pipeline is for traffic RSS cannot spread (one elephant flow, one SA
//! whose packets must stay in order on one queue) with large frames. It
//! loses whenever the cores are not dedicated: a pair stalls whenever
//! either side is preempted. `perf/src/bin/runtime_modes.rs` measures all
//! three; on the shared two-vCPU development host (other jobs running)
//! it gave rtc x2 ~1.0x, pipeline 0.15-0.6x with millisecond p99 latency
//! (adaptive idle, which yields while waiting, doing better than busy).

use super::hub::StatsHub;
use super::idle::Backoff;
use super::stats_slot::SlotWriter;
use super::table_store::TableStore;
use crate::config::Idle;
use crate::frame::{Batch, Verdict};
use crate::io::Port;
use crate::stage;
use crate::tables::Tables;
use crate::worker::{now_ns, Worker, WorkerStats};
use crossbeam::queue::ArrayQueue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Batches circulating between one I/O thread and its crypto thread.
pub const IN_FLIGHT: usize = 32;

/// A batch on its way through the crypto thread, with the snapshot its
/// verdicts refer to.
pub struct InFlight<F> {
    batch: Batch<F>,
    tables: Arc<Tables>,
}

/// The two queues between an I/O thread and its crypto thread.
pub struct PipeQueues<F> {
    to_crypto: ArrayQueue<InFlight<F>>,
    back: ArrayQueue<InFlight<F>>,
    /// Raised by the I/O thread once it has stopped receiving and every
    /// batch is back: the crypto thread may end.
    io_done: AtomicBool,
    /// Raised when the crypto thread has ended (or never started, or
    /// panicked): the I/O thread then finishes batches itself.
    crypto_gone: AtomicBool,
}

/// Raises a flag when a thread's loop ends, however it ends (a panic
/// included), so that its partner never waits for it forever.
struct RaiseOnDrop<'a>(&'a AtomicBool);

impl Drop for RaiseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

impl<F> PipeQueues<F> {
    /// Lets the crypto thread end now (its I/O thread failed to start).
    pub fn io_done_now(&self) {
        self.io_done.store(true, Ordering::Release);
    }

    /// Tells the I/O thread it has no crypto thread (it failed to start).
    pub fn crypto_gone_now(&self) {
        self.crypto_gone.store(true, Ordering::Release);
    }
}

impl<F> Default for PipeQueues<F> {
    fn default() -> Self {
        PipeQueues {
            to_crypto: ArrayQueue::new(IN_FLIGHT),
            back: ArrayQueue::new(IN_FLIGHT),
            io_done: AtomicBool::new(false),
            crypto_gone: AtomicBool::new(false),
        }
    }
}

fn needs_crypto(v: &Verdict) -> bool {
    matches!(v, Verdict::Encrypt(_) | Verdict::Decrypt)
}

/// The I/O thread's loop: runs until `stop`, then drains what is in flight
/// and returns its counters.
pub fn io_loop<P: Port>(
    mut w: Worker<P>,
    q: &PipeQueues<P::Frame>,
    store: &TableStore,
    hub: &StatsHub,
    index: usize,
    idle: Idle,
    stop: &AtomicBool,
) -> WorkerStats {
    let _done = RaiseOnDrop(&q.io_done);
    let nports = w.ports().len();
    let mut free: Vec<Batch<P::Frame>> = (0..IN_FLIGHT).map(|_| Batch::new()).collect();
    let mut out = 0usize;
    let mut backoff = Backoff::new(idle);
    let mut writer = SlotWriter::new(hub.slot(index));
    let mut epoch = store.epoch();
    loop {
        // The control thread's own frames, then whatever came back, in order.
        w.inject_queued();
        let mut moved = 0;
        while let Some(mut f) = q.back.pop() {
            w.transmit(&mut f.batch);
            free.push(f.batch);
            out -= 1;
            moved += 1;
        }
        if q.crypto_gone.load(Ordering::Acquire) {
            // No crypto thread (any more): finish what it left here.
            while let Some(mut f) = q.to_crypto.pop() {
                stage::process_crypto(&mut f.batch, &f.tables);
                w.transmit(&mut f.batch);
                free.push(f.batch);
                out -= 1;
                moved += 1;
            }
        }
        let stopping = stop.load(Ordering::Relaxed);
        // Done when every batch is back, or when the crypto thread is gone
        // and nothing is left in the queues (a batch it was holding when it
        // panicked is lost with it; its frames were freed).
        if stopping
            && (out == 0
                || (q.crypto_gone.load(Ordering::Acquire)
                    && q.to_crypto.is_empty()
                    && q.back.is_empty()))
        {
            break;
        }
        let mut received = 0;
        if !stopping {
            let tables = store.load();
            epoch = tables.epoch;
            for port in 0..nports {
                let Some(mut b) = free.pop() else { break };
                let n = w.receive(port, &mut b);
                if n == 0 {
                    free.push(b);
                    continue;
                }
                received += n;
                stage::process_front(&mut b, &tables);
                if (out == 0 && !b.verdicts().iter().any(needs_crypto))
                    || q.crypto_gone.load(Ordering::Relaxed)
                {
                    // Nothing for the crypto core (or no crypto core).
                    stage::process_crypto(&mut b, &tables);
                    w.transmit(&mut b);
                    free.push(b);
                } else {
                    let f = InFlight {
                        batch: b,
                        tables: Arc::clone(&tables),
                    };
                    match q.to_crypto.push(f) {
                        Ok(()) => out += 1,
                        // Only IN_FLIGHT batches exist, so the queue always
                        // has room; were it ever full, finish here.
                        Err(mut f) => {
                            stage::process_crypto(&mut f.batch, &f.tables);
                            w.transmit(&mut f.batch);
                            free.push(f.batch);
                        }
                    }
                }
            }
        }
        let now = now_ns();
        writer.poll_done(received, now);
        if received + moved > 0 {
            backoff.traffic();
        } else {
            backoff.idle();
        }
        writer.maybe_publish(&w.stats, epoch, now);
    }
    writer.publish_final(&w.stats, epoch);
    w.stats
}

/// The crypto thread's loop: runs the AEAD stages over every batch the I/O
/// thread hands over, until the I/O thread is done.
pub fn crypto_loop<F: crate::frame::Frame>(
    q: &PipeQueues<F>,
    hub: &StatsHub,
    index: usize,
    idle: Idle,
    ports: usize,
) -> WorkerStats {
    let _gone = RaiseOnDrop(&q.crypto_gone);
    let mut backoff = Backoff::new(idle);
    let mut writer = SlotWriter::new(hub.slot(index));
    // Counts nothing itself (the I/O thread counts every frame); its slot
    // shows how busy it is.
    let stats = WorkerStats::new(ports);
    let mut epoch = 0;
    loop {
        let now = now_ns();
        match q.to_crypto.pop() {
            Some(mut f) => {
                epoch = f.tables.epoch;
                stage::process_crypto(&mut f.batch, &f.tables);
                let n = f.batch.len();
                // Only IN_FLIGHT batches exist, so there is always room.
                let mut f = f;
                while let Err(again) = q.back.push(f) {
                    f = again;
                    std::hint::spin_loop();
                }
                writer.poll_done(n, now);
                backoff.traffic();
            }
            None => {
                if q.io_done.load(Ordering::Acquire) {
                    break;
                }
                writer.poll_done(0, now);
                backoff.idle();
            }
        }
        writer.maybe_publish(&stats, epoch, now);
    }
    writer.publish_final(&stats, epoch);
    stats
}
