//! The memory backend for the runtime: each worker's queue of each port is
//! a pair of in-process rings (as a NIC with one RX/TX queue pair per
//! worker, where the test decides which queue a frame lands on, like RSS).

use super::backend::Backend;
use crate::io::memory::{ring, MemoryPort, Ring};
use std::sync::Mutex;

/// A worker asked for queues it does not have, or twice.
#[derive(Debug, thiserror::Error)]
#[error("memory backend: worker {0}: {1}")]
pub struct MemoryBackendError(pub usize, pub &'static str);

/// `ports` x `workers` queue pairs over rings.
pub struct MemoryBackend {
    ports: usize,
    /// `rx[worker][port]`: what the worker receives (tests push here).
    rx: Vec<Vec<Ring>>,
    /// `tx[worker][port]`: what the worker sends (tests pop here).
    tx: Vec<Vec<Ring>>,
    taken: Mutex<Vec<bool>>,
}

impl MemoryBackend {
    /// `ports` ports with one queue pair per worker, each ring holding up
    /// to `cap` frames.
    pub fn new(ports: usize, workers: usize, cap: usize) -> Self {
        let mk = || {
            (0..workers)
                .map(|_| (0..ports).map(|_| ring(cap)).collect())
                .collect()
        };
        MemoryBackend {
            ports,
            rx: mk(),
            tx: mk(),
            taken: Mutex::new(vec![false; workers]),
        }
    }

    /// The ring worker `worker` receives from on port `port` (push frames
    /// here to send them into the node).
    pub fn rx_ring(&self, port: usize, worker: usize) -> Ring {
        self.rx[worker][port].clone()
    }

    /// The ring worker `worker` transmits into on port `port` (pop frames
    /// here to see what the node sent).
    pub fn tx_ring(&self, port: usize, worker: usize) -> Ring {
        self.tx[worker][port].clone()
    }

    /// Number of workers this backend has queues for.
    pub fn workers(&self) -> usize {
        self.rx.len()
    }
}

impl Backend for MemoryBackend {
    type Port = MemoryPort;
    type Error = MemoryBackendError;

    fn name(&self) -> &'static str {
        "memory"
    }

    fn port_count(&self) -> usize {
        self.ports
    }

    fn worker_ports(&self, worker: usize) -> Result<Vec<MemoryPort>, MemoryBackendError> {
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        match taken.get_mut(worker) {
            None => Err(MemoryBackendError(worker, "no such queue")),
            Some(true) => Err(MemoryBackendError(worker, "queues already taken")),
            Some(t) => {
                *t = true;
                Ok((0..self.ports)
                    .map(|p| {
                        MemoryPort::new(self.rx[worker][p].clone(), self.tx[worker][p].clone())
                    })
                    .collect())
            }
        }
    }
}
