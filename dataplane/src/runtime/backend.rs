//! What the runtime needs from an I/O backend: each worker's own queue of
//! every port, hooks on the worker threads, and the devices' own counters.
//!
//! A backend is opened by its own code (DPDK: EAL, a mempool and the
//! ethdevs with one queue pair per worker; AF_XDP: one socket per port and
//! queue; memory: rings) with as many queues as the runtime will start
//! workers ([`queues_for`](super::queues_for) says how many), then handed
//! to [`run`](super::run).

use crate::io::Port;

/// Counters a device keeps itself, beside what the workers count: what
/// never reached a worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeviceCounters {
    /// Frames the device received.
    pub rx_packets: u64,
    /// Frames the device sent.
    pub tx_packets: u64,
    /// Frames dropped because an RX queue was full (DPDK `imissed`).
    pub rx_missed: u64,
    /// Erroneous frames received (DPDK `ierrors`).
    pub rx_errors: u64,
    /// RX failures for lack of buffers (DPDK `rx_nombuf`).
    pub rx_nombuf: u64,
    /// Failed transmissions (DPDK `oerrors`).
    pub tx_errors: u64,
}

/// Occupancy of a backend's buffer pool (DPDK mempool, AF_XDP UMEM).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BufferPool {
    /// Buffers in the pool.
    pub size: u64,
    /// Buffers free (in the pool or a per-core cache).
    pub available: u64,
}

impl BufferPool {
    /// True when every buffer is back.
    pub fn is_full(&self) -> bool {
        self.available == self.size
    }
}

/// An opened backend the runtime drives.
///
/// The runtime calls, in this order: [`worker_ports`](Backend::worker_ports)
/// once per worker on the starting thread; on each worker's own thread
/// [`thread_start`](Backend::thread_start) before its first poll and
/// [`thread_stop`](Backend::thread_stop) after it has dropped its ports;
/// [`device_counters`](Backend::device_counters) and
/// [`buffers`](Backend::buffers) from the stats thread at any time; and
/// [`finish`](Backend::finish) once every worker has ended.
///
/// A backend whose queues are opened up front (one socket per port and
/// queue, say) can keep each worker's `Vec` in a
/// `Mutex<Vec<Option<Vec<Port>>>>` and hand it out once, as
/// [`MemoryBackend`](super::MemoryBackend) does; only `Port` needs to be
/// `Send`, and the backend itself `Sync` for the thread hooks.
pub trait Backend: Sync {
    /// One queue pair of one port, owned by one worker.
    type Port: Port + Send;
    /// What can go wrong.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Short name for logs and reports (`dpdk`, `afxdp`, `memory`).
    fn name(&self) -> &'static str;

    /// Number of ports (a worker's `Vec` has this length).
    fn port_count(&self) -> usize;

    /// Worker `worker`'s own queue of every port, index = `PortId`. Each
    /// worker index is asked for once; the ports are moved to the worker.
    fn worker_ports(&self, worker: usize) -> Result<Vec<Self::Port>, Self::Error>;

    /// Runs on a worker's thread before it polls (DPDK registers the
    /// thread with EAL for an lcore id and a mempool cache).
    fn thread_start(&self, _worker: usize) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Runs on a worker's thread after it has dropped its ports and every
    /// frame.
    fn thread_stop(&self, _worker: usize) {}

    /// Each port's device counters, in port order (empty when the backend
    /// keeps none).
    fn device_counters(&self) -> Vec<DeviceCounters> {
        Vec::new()
    }

    /// The buffer pool's occupancy, when the backend has one.
    fn buffers(&self) -> Option<BufferPool> {
        None
    }

    /// Stops the devices once all workers have ended (flushing output
    /// files, returning buffers the devices held). Counters stay readable.
    fn finish(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}
