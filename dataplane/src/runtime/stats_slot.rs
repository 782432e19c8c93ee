//! How a worker hands out its counters without slowing down: it counts in
//! its own `WorkerStats` (plain integers, no atomics) and every
//! [`PUBLISH_EVERY`] copies them into its slot under `try_lock`. If a
//! reader holds the slot at that moment the worker skips the copy and
//! tries again on the next poll; it never waits. Readers (the stats
//! thread, the metrics server) lock the slot briefly to copy it out.

use crate::worker::WorkerStats;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::Duration;

/// How often a worker publishes its counters.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// What a worker last published.
#[derive(Clone, Debug)]
pub struct Published {
    /// Its counters.
    pub stats: WorkerStats,
    /// Table epoch of its last burst.
    pub epoch: u64,
    /// Polls so far.
    pub polls: u64,
    /// Polls that received nothing.
    pub empty_polls: u64,
}

/// One worker's published counters.
#[derive(Debug)]
pub struct StatsSlot {
    published: Mutex<Published>,
    /// `now_ns()` of the worker's last non-empty poll (0: none yet). Written
    /// by the worker only.
    last_rx_ns: AtomicU64,
}

impl StatsSlot {
    /// An empty slot for a worker with `ports` ports.
    pub fn new(ports: usize) -> Self {
        StatsSlot {
            published: Mutex::new(Published {
                stats: WorkerStats::new(ports),
                epoch: 0,
                polls: 0,
                empty_polls: 0,
            }),
            last_rx_ns: AtomicU64::new(0),
        }
    }

    /// A copy of what the worker last published.
    pub fn read(&self) -> Published {
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// When the worker last received a frame (`now_ns()`, 0 = never).
    pub fn last_rx_ns(&self) -> u64 {
        self.last_rx_ns.load(Ordering::Relaxed)
    }
}

/// The worker's side of its slot: counts polls and publishes on time.
#[derive(Debug)]
pub struct SlotWriter<'a> {
    slot: &'a StatsSlot,
    next_ns: u64,
    /// Polls so far.
    pub polls: u64,
    /// Polls that received nothing.
    pub empty_polls: u64,
}

impl<'a> SlotWriter<'a> {
    /// Writes into `slot`.
    pub fn new(slot: &'a StatsSlot) -> Self {
        SlotWriter {
            slot,
            next_ns: 0,
            polls: 0,
            empty_polls: 0,
        }
    }

    /// Notes one poll that received `n` frames at time `now` (ns).
    #[inline]
    pub fn poll_done(&mut self, n: usize, now: u64) {
        self.polls += 1;
        if n == 0 {
            self.empty_polls += 1;
        } else {
            self.slot.last_rx_ns.store(now, Ordering::Relaxed);
        }
    }

    /// Publishes `stats` if the interval is up and no reader holds the slot.
    #[inline]
    pub fn maybe_publish(&mut self, stats: &WorkerStats, epoch: u64, now: u64) {
        if now < self.next_ns {
            return;
        }
        // A reader that panicked while holding the slot leaves it poisoned:
        // the counters in it are still whole copies, so keep publishing.
        let guard = match self.slot.published.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        if let Some(mut g) = guard {
            g.stats.copy_from(stats);
            g.epoch = epoch;
            g.polls = self.polls;
            g.empty_polls = self.empty_polls;
            self.next_ns = now + PUBLISH_EVERY.as_nanos() as u64;
        }
    }

    /// Publishes the final counters (may wait for a reader).
    pub fn publish_final(&mut self, stats: &WorkerStats, epoch: u64) {
        let mut g = self
            .slot
            .published
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        g.stats.copy_from(stats);
        g.epoch = epoch;
        g.polls = self.polls;
        g.empty_polls = self.empty_polls;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_that_panicked_holding_the_slot_does_not_stop_publishing() {
        let slot = StatsSlot::new(1);
        std::thread::scope(|s| {
            let r = s.spawn(|| {
                let _g = slot.published.lock().expect("first lock");
                panic!("reader fails while holding the slot");
            });
            assert!(r.join().is_err());
        });
        assert!(slot.published.is_poisoned());
        let mut w = SlotWriter::new(&slot);
        let mut stats = WorkerStats::new(1);
        stats.ports[0].rx_packets = 7;
        w.poll_done(1, 10);
        w.maybe_publish(&stats, 3, 10);
        let p = slot.read();
        assert_eq!((p.stats.ports[0].rx_packets, p.epoch, p.polls), (7, 3, 1));
    }
}
