//! Everything a node's stats readers see: each worker's slot, what the
//! worker is (core, role), the devices' own counters and the table epoch.
//! Shared (`Arc`) between the runtime, the stats printer and the metrics
//! server; reading it never touches a worker's hot path.

use super::backend::{BufferPool, DeviceCounters};
use super::snapshot::{NodeSnapshot, WorkerSnapshot};
use super::stats_slot::StatsSlot;
use crate::config::Mode;
use crate::worker::WorkerStats;
use crossbeam::utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// What a worker thread does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerRole {
    /// RX -> every stage -> TX.
    RunToCompletion,
    /// Pipeline: RX, classify/label, TX (counts every frame).
    Io,
    /// Pipeline: the AEAD stages for one I/O worker (counts nothing itself).
    Crypto,
}

/// One worker thread as reports name it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WorkerInfo {
    /// Index among the node's worker threads.
    pub index: usize,
    /// Core it is pinned to (`None`: not pinned).
    pub core: Option<usize>,
    /// What it does.
    pub role: WorkerRole,
}

/// The node's live statistics.
#[derive(Debug)]
pub struct StatsHub {
    node: String,
    mode: Mode,
    port_names: Vec<String>,
    workers: Vec<WorkerInfo>,
    /// Cache-line padded: each is written by a different core.
    slots: Vec<CachePadded<StatsSlot>>,
    start: Instant,
    table_epoch: AtomicU64,
    devices: Mutex<(Vec<DeviceCounters>, Option<BufferPool>)>,
}

impl StatsHub {
    /// A hub for `workers` over ports named `port_names`.
    pub fn new(node: &str, mode: Mode, port_names: Vec<String>, workers: Vec<WorkerInfo>) -> Self {
        let slots = workers
            .iter()
            .map(|_| CachePadded::new(StatsSlot::new(port_names.len())))
            .collect();
        StatsHub {
            node: node.to_string(),
            mode,
            port_names,
            workers,
            slots,
            start: Instant::now(),
            table_epoch: AtomicU64::new(0),
            devices: Mutex::new((Vec::new(), None)),
        }
    }

    /// Worker `i`'s slot.
    pub fn slot(&self, i: usize) -> &StatsSlot {
        &self.slots[i]
    }

    /// The worker threads.
    pub fn workers(&self) -> &[WorkerInfo] {
        &self.workers
    }

    /// The port names, in port order.
    pub fn port_names(&self) -> &[String] {
        &self.port_names
    }

    /// Records the epoch of the table snapshot now installed.
    pub fn set_table_epoch(&self, epoch: u64) {
        self.table_epoch.store(epoch, Ordering::Relaxed);
    }

    /// Records the devices' own counters and the buffer pool's occupancy.
    pub fn set_devices(&self, devices: Vec<DeviceCounters>, buffers: Option<BufferPool>) {
        *self.devices.lock().unwrap_or_else(|p| p.into_inner()) = (devices, buffers);
    }

    /// The latest `now_ns()` at which any worker received a frame (0: none).
    pub fn last_rx_ns(&self) -> u64 {
        self.slots.iter().map(|s| s.last_rx_ns()).max().unwrap_or(0)
    }

    /// Everything as of now: each worker's last publication, merged.
    pub fn snapshot(&self) -> NodeSnapshot {
        let mut total = WorkerStats::new(self.port_names.len());
        let workers: Vec<WorkerSnapshot> = self
            .workers
            .iter()
            .zip(&self.slots)
            .map(|(info, slot)| {
                let p = slot.read();
                total.merge(&p.stats);
                WorkerSnapshot {
                    info: info.clone(),
                    stats: p.stats,
                    epoch: p.epoch,
                    polls: p.polls,
                    empty_polls: p.empty_polls,
                }
            })
            .collect();
        let (devices, buffers) = self
            .devices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        NodeSnapshot {
            node: self.node.clone(),
            mode: self.mode,
            elapsed: self.start.elapsed(),
            table_epoch: self.table_epoch.load(Ordering::Relaxed),
            port_names: self.port_names.clone(),
            workers,
            total,
            devices,
            buffers,
        }
    }
}
