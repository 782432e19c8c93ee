//! The run-to-completion worker loop: load the table snapshot, poll every
//! port (RX burst -> all stages -> TX), note the poll, back off when idle,
//! publish counters now and then. Nothing is held between polls, so when
//! `stop` is seen there is nothing in flight to drain.

use super::hub::StatsHub;
use super::idle::Backoff;
use super::stats_slot::SlotWriter;
use super::table_store::TableStore;
use crate::config::Idle;
use crate::io::Port;
use crate::worker::{now_ns, Worker, WorkerStats};
use std::sync::atomic::{AtomicBool, Ordering};

/// Polls `ports` until `stop`; returns the worker's counters.
pub fn worker_loop<P: Port>(
    mut w: Worker<P>,
    store: &TableStore,
    hub: &StatsHub,
    index: usize,
    idle: Idle,
    stop: &AtomicBool,
) -> WorkerStats {
    // A worker that a frame or the control thread wakes from its nap
    // can nap longer.
    let mut backoff = if P::WAKES_ON_RX && w.hears_injects() {
        Backoff::waking(idle)
    } else {
        Backoff::new(idle)
    };
    let mut writer = SlotWriter::new(hub.slot(index));
    let mut reader = store.reader();
    let mut epoch = store.epoch();
    while !stop.load(Ordering::Relaxed) {
        let n = {
            // One snapshot per round, no lock: a concurrent publish takes
            // effect at the next round.
            let tables = reader.current(store);
            epoch = tables.epoch;
            w.poll(tables)
        };
        // A round that sent frames read the clock last as it sent them.
        let now = match w.last_sent_ns() {
            Some(t) if n > 0 => t,
            _ => now_ns(),
        };
        writer.poll_done(n, now);
        if n > 0 {
            if P::WAKES_ON_RX {
                backoff.traffic_woken(n);
            } else {
                backoff.traffic();
            }
        } else {
            // A nap waits on the ports and the inject queue: a frame
            // ends it (AF_XDP).
            backoff.idle_with(|nap| {
                if P::wait_readable(w.ports(), w.inject_fd(), nap) {
                    w.inject_heard();
                }
            });
        }
        writer.maybe_publish(&w.stats, epoch, now);
    }
    writer.publish_final(&w.stats, epoch);
    w.stats
}
