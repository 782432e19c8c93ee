//! The DPDK side of the runtime: a node's ethdevs opened with one RX/TX
//! queue pair per worker over one mempool, worker threads registered with
//! EAL (an lcore id and a mempool cache each), and the devices' own
//! counters (`imissed`, `ierrors`, `rx_nombuf`).

use super::eal::Eal;
use super::error::DpdkError;
use super::ethdev::{DpdkPort, EthDevConfig};
use super::mempool::Mempool;
use super::node::NodePorts;
use crate::config::NodeConfig;
use crate::runtime::{Backend, BufferPool, DeviceCounters};

/// Fewest mbufs a node's pool holds when `[io] buffers` does not say
/// (what every pool held before the default followed the ports).
pub const MBUFS_PER_QUEUE: u32 = 8191;

/// Mbufs a mempool may keep in one lcore's cache (1.5 x its size of 256).
const CACHE_HELD: u32 = 384;

/// RX and TX descriptors asked of each queue (`EthDevConfig`'s default).
fn ring_mbufs() -> u32 {
    let d = EthDevConfig::default();
    u32::from(d.rx_desc) + u32::from(d.tx_desc)
}

/// Mbufs the node's rings and workers hold at most: every port's RX and
/// TX rings full on every queue, every worker's batches in flight (the
/// pipeline's ring of batches bounds both modes) and its mempool cache.
pub fn ring_buffers(cfg: &NodeConfig, queues: usize) -> u32 {
    let ports = u32::try_from(cfg.ports.len().max(1)).unwrap_or(u32::MAX);
    let q = u32::try_from(queues.max(1)).unwrap_or(u32::MAX);
    let in_flight = (crate::runtime::pipeline::IN_FLIGHT * crate::frame::BURST) as u32;
    ports
        .saturating_mul(ring_mbufs())
        .saturating_add(in_flight)
        .saturating_add(CACHE_HELD)
        .saturating_mul(q)
}

/// The pool's size when `[io] buffers` does not say: [`ring_buffers`],
/// at least [`MBUFS_PER_QUEUE`], rounded up to 2^n - 1 (DPDK's mempools
/// are most compact at that size).
pub fn default_buffers(cfg: &NodeConfig, queues: usize) -> u32 {
    let need = ring_buffers(cfg, queues).max(MBUFS_PER_QUEUE);
    need.checked_add(1)
        .and_then(u32::checked_next_power_of_two)
        .map_or(u32::MAX, |n| n - 1)
}

/// Mbufs a device holds for the whole run besides its rings: net_pcap with
/// `infinite_rx=1` reads every frame of its `rx_pcap` files into mbufs at
/// queue setup (one per segment) and replays them from there. `None` for
/// any other device, or when the capture cannot be read here (DPDK then
/// reports it as it probes the device).
pub fn preloaded_buffers(spec: &str, data_room: u16) -> Option<(u64, Vec<String>)> {
    let mut args = spec.split(',').map(str::trim);
    let name = args.next()?;
    if !(name.starts_with("net_pcap") || name.starts_with("eth_pcap")) {
        return None;
    }
    let (mut infinite, mut files) = (false, Vec::new());
    for a in args {
        match a.split_once('=') {
            Some(("infinite_rx", v)) => infinite = v.trim() == "1",
            Some(("rx_pcap", f)) => files.push(f.trim().to_string()),
            _ => {}
        }
    }
    if !infinite || files.is_empty() {
        return None;
    }
    let seg = u64::from(data_room.saturating_sub(dpdk_sys::RTE_PKTMBUF_HEADROOM as u16)).max(1);
    let mut mbufs = 0u64;
    for f in &files {
        let (packets, _) = crate::io::pcap::read_file(std::path::Path::new(f)).ok()?;
        for p in &packets {
            mbufs += (p.data.len() as u64).div_ceil(seg).max(1);
        }
    }
    Some((mbufs, files))
}

/// The size of the node's pool: `[io] buffers`, else [`default_buffers`];
/// refused, saying how many it needs, when a device keeps more mbufs than
/// that leaves beside the rings.
pub fn pool_size(cfg: &NodeConfig, queues: usize) -> Result<u32, DpdkError> {
    let size = cfg
        .io
        .buffers
        .unwrap_or_else(|| default_buffers(cfg, queues));
    let room = node_data_room(cfg)?;
    let rings = u64::from(ring_buffers(cfg, queues));
    let mut held = 0u64;
    for p in &cfg.ports {
        let Some(spec) = p.dpdk.as_deref() else {
            continue;
        };
        let Some((mbufs, files)) = preloaded_buffers(spec, room) else {
            continue;
        };
        held += mbufs;
        let need = held + rings;
        if need > u64::from(size) {
            let said = match cfg.io.buffers {
                Some(_) => String::new(),
                None => " (the default)".into(),
            };
            return Err(DpdkError::Config(format!(
                "port {} ({}): infinite_rx keeps all {mbufs} frames of {} in mbufs, but [io] \
                 buffers is {size}{said}: set [io] buffers >= {need}",
                p.name,
                super::ethdev::device_name(spec),
                files.join(", ")
            )));
        }
    }
    Ok(size)
}

/// The mbuf data room for a node: its `[io] mtu`'s largest frame in one
/// segment, with room for the stages' in-place encapsulation.
pub fn node_data_room(cfg: &NodeConfig) -> Result<u16, DpdkError> {
    let max = cfg.max_frame();
    Mempool::data_room_for(max).ok_or_else(|| {
        DpdkError::Config(format!(
            "node {}: frames of {max} B (the ports' largest mtu) do not fit an mbuf",
            cfg.name
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
    /// pairs, over a pool of `pool_size` mbufs (0: [`pool_size`], from
    /// `[io] buffers` or the ports).
    pub fn open(
        eal: &Eal,
        cfg: &NodeConfig,
        queues: usize,
        pool_size: u32,
    ) -> Result<Self, DpdkError> {
        let q = u16::try_from(queues)
            .map_err(|_| DpdkError::Config(format!("{queues} queues: too many")))?;
        let size = if pool_size == 0 {
            self::pool_size(cfg, queues)?
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
