//! The DPDK side of the runtime: a node's ethdevs opened with one RX/TX
//! queue pair per worker over one mempool, worker threads registered with
//! EAL (an lcore id and a mempool cache each), and the devices' own
//! counters (`imissed`, `ierrors`, `rx_nombuf`).

use super::eal::Eal;
use super::error::DpdkError;
use super::ethdev::DpdkPort;
use super::mempool::Mempool;
use super::node::NodePorts;
use crate::config::NodeConfig;
use crate::runtime::{Backend, BufferPool, DeviceCounters};

/// Mbufs per queue pair when the caller does not size the pool: a full RX
/// ring, a TX ring, the pipeline's batches in flight and the per-lcore cache.
pub const MBUFS_PER_QUEUE: u32 = 8191;

/// The mbuf data room for a node: its `[io] mtu`'s largest frame in one
/// segment, with room for the stages' in-place encapsulation.
pub fn node_data_room(cfg: &NodeConfig) -> Result<u16, DpdkError> {
    let max = cfg.io.max_frame();
    Mempool::data_room_for(max).ok_or_else(|| {
        DpdkError::Config(format!(
            "node {}: frames of {max} B ([io] mtu {}) do not fit an mbuf",
            cfg.name, cfg.io.mtu
        ))
    })
}

/// A node's DPDK devices, ready for the runtime.
#[derive(Debug)]
pub struct DpdkBackend {
    eal: Eal,
    pool: Mempool,
    ports: Option<NodePorts>,
}

impl DpdkBackend {
    /// Opens every port `cfg` names (EAL must have been initialised with
    /// them, e.g. by `EalBuilder::for_node(cfg, true)`) with `queues` queue
    /// pairs, over a pool of `pool_size` mbufs (0: `MBUFS_PER_QUEUE` per
    /// queue).
    pub fn open(
        eal: &Eal,
        cfg: &NodeConfig,
        queues: usize,
        pool_size: u32,
    ) -> Result<Self, DpdkError> {
        let q = u16::try_from(queues)
            .map_err(|_| DpdkError::Config(format!("{queues} queues: too many")))?;
        let size = if pool_size == 0 {
            MBUFS_PER_QUEUE.saturating_mul(u32::from(q.max(1)))
        } else {
            pool_size
        };
        let pool = Mempool::with_data_room(
            eal,
            &format!("node_{}", cfg.name),
            size,
            256,
            node_data_room(cfg)?,
        )?;
        let ports = NodePorts::open(eal, cfg, q, &pool)?;
        Ok(DpdkBackend {
            eal: *eal,
            pool,
            ports: Some(ports),
        })
    }

    /// The node's mbuf pool.
    pub fn pool(&self) -> &Mempool {
        &self.pool
    }
}

impl Backend for DpdkBackend {
    type Port = DpdkPort;
    type Error = DpdkError;

    fn name(&self) -> &'static str {
        "dpdk"
    }

    fn port_count(&self) -> usize {
        self.ports.as_ref().map_or(0, |p| p.devices().len())
    }

    fn worker_ports(&self, worker: usize) -> Result<Vec<DpdkPort>, DpdkError> {
        let ports = self
            .ports
            .as_ref()
            .ok_or_else(|| DpdkError::Config("ports already closed".into()))?;
        let q = u16::try_from(worker)
            .map_err(|_| DpdkError::Config(format!("queue {worker}: out of range")))?;
        ports.queues(q)
    }

    fn thread_start(&self, _worker: usize) -> Result<(), DpdkError> {
        self.eal.register_thread().map(|_| ())
    }

    fn thread_stop(&self, _worker: usize) {
        self.eal.unregister_thread();
    }

    fn device_counters(&self) -> Vec<DeviceCounters> {
        let Some(ports) = &self.ports else {
            return Vec::new();
        };
        ports
            .devices()
            .iter()
            .map(|d| match d.stats() {
                Ok(s) => DeviceCounters {
                    rx_packets: s.ipackets,
                    tx_packets: s.opackets,
                    rx_missed: s.imissed,
                    rx_errors: s.ierrors,
                    rx_nombuf: s.rx_nombuf,
                    tx_errors: s.oerrors,
                },
                Err(e) => {
                    tracing::warn!("{e}");
                    DeviceCounters::default()
                }
            })
            .collect()
    }

    fn buffers(&self) -> Option<BufferPool> {
        Some(BufferPool {
            size: u64::from(self.pool.size()),
            available: u64::from(self.pool.available()),
        })
    }

    fn finish(&mut self) -> Result<(), DpdkError> {
        match self.ports.take() {
            Some(p) => p.close(),
            None => Ok(()),
        }
    }
}
