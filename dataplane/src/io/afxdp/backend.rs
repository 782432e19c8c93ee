//! The AF_XDP side of the runtime: a node's sockets, one per worker and
//! port, handed to the workers; the sockets' kernel counters and the
//! interfaces' packet counts as device counters; the UMEMs as the buffer pool.

use std::sync::Mutex;

use super::error::AfXdpError;
use super::node::AfXdpNode;
use super::port::AfXdpPort;
use super::socket::XskStatsHandle;
use super::umem::Umem;
use crate::config::NodeConfig;
use crate::runtime::{Backend, BufferPool, DeviceCounters};

/// Reads `/sys/class/net/IFACE/statistics/NAME` (0 when it cannot).
fn iface_counter(iface: &str, name: &str) -> u64 {
    let path = format!("/sys/class/net/{iface}/statistics/{name}");
    crate::file_read::read_text(std::path::Path::new(&path), crate::file_read::SYSTEM_LIMIT)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// One port as the stats thread sees it.
#[derive(Debug)]
struct PortCounters {
    iface: String,
    /// The interface's packet counts when the node opened.
    rx_base: u64,
    tx_base: u64,
    /// Every worker's socket on this port.
    sockets: Vec<XskStatsHandle>,
}

/// A node's AF_XDP sockets, ready for the runtime.
#[derive(Debug)]
pub struct AfXdpBackend {
    workers: Mutex<Vec<Option<Vec<AfXdpPort>>>>,
    ports: Vec<PortCounters>,
    /// One handle per distinct UMEM, with the number of sockets using it.
    umems: Vec<(Umem, usize)>,
    /// Counters as they were at `finish` (the sockets are closed then).
    last: Option<Vec<DeviceCounters>>,
}

impl AfXdpBackend {
    /// Attaches the redirect program to every port's interface and opens
    /// `queues` sockets per port (one per worker).
    pub fn open(cfg: &NodeConfig, queues: usize) -> Result<Self, AfXdpError> {
        let node = AfXdpNode::open(cfg, queues)?;
        let mut ports: Vec<PortCounters> = cfg
            .ports
            .iter()
            .map(|p| {
                let iface = p.iface.clone().unwrap_or_default();
                PortCounters {
                    rx_base: iface_counter(&iface, "rx_packets"),
                    tx_base: iface_counter(&iface, "tx_packets"),
                    iface,
                    sockets: Vec::new(),
                }
            })
            .collect();
        let mut umems: Vec<(Umem, usize)> = Vec::new();
        for w in node.workers() {
            for (i, p) in w.iter().enumerate() {
                ports[i].sockets.push(p.stats_handle()?);
                match umems.iter_mut().find(|(u, _)| u.same(p.umem())) {
                    Some((_, n)) => *n += 1,
                    None => umems.push((p.umem().clone(), 1)),
                }
            }
        }
        Ok(AfXdpBackend {
            workers: Mutex::new(node.into_workers().into_iter().map(Some).collect()),
            ports,
            umems,
            last: None,
        })
    }

    fn counters(&self) -> Vec<DeviceCounters> {
        self.ports
            .iter()
            .map(|p| {
                let mut c = DeviceCounters {
                    rx_packets: iface_counter(&p.iface, "rx_packets").saturating_sub(p.rx_base),
                    tx_packets: iface_counter(&p.iface, "tx_packets").saturating_sub(p.tx_base),
                    ..DeviceCounters::default()
                };
                for s in &p.sockets {
                    let k = s.stats();
                    // rx_dropped counts the frames lost to an empty fill
                    // ring too; rx_ring_full those lost to a full RX ring.
                    c.rx_missed += k.rx_dropped + k.rx_ring_full;
                    c.rx_nombuf += k.rx_fill_ring_empty_descs;
                    c.rx_errors += k.rx_invalid_descs;
                    c.tx_errors += k.tx_invalid_descs;
                }
                c
            })
            .collect()
    }
}

impl Backend for AfXdpBackend {
    type Port = AfXdpPort;
    type Error = AfXdpError;

    fn name(&self) -> &'static str {
        "afxdp"
    }

    fn port_count(&self) -> usize {
        self.ports.len()
    }

    fn worker_ports(&self, worker: usize) -> Result<Vec<AfXdpPort>, AfXdpError> {
        let mut w = self
            .workers
            .lock()
            .map_err(|_| AfXdpError::Config("a worker panicked while taking its sockets".into()))?;
        w.get_mut(worker).and_then(Option::take).ok_or_else(|| {
            AfXdpError::Config(format!(
                "worker {worker}: no sockets (opened for {} workers, or already taken)",
                w.len()
            ))
        })
    }

    fn device_counters(&self) -> Vec<DeviceCounters> {
        match &self.last {
            Some(l) => l.clone(),
            None => self.counters(),
        }
    }

    /// Frames of the node's UMEMs; "available" are those not held in user
    /// space (free, or lent to the kernel in a fill or TX ring), so frames
    /// in batches, and at the end any frame leaked, count as taken.
    fn buffers(&self) -> Option<BufferPool> {
        let size: u64 = self.umems.iter().map(|(u, _)| u64::from(u.frames())).sum();
        // A UMEM's references: our handle, one per socket still open and
        // one per frame outside the rings.
        let held: u64 = self
            .umems
            .iter()
            .map(|(u, sockets)| {
                let handles = 1 + if self.last.is_some() { 0 } else { *sockets };
                u.references().saturating_sub(handles) as u64
            })
            .sum();
        Some(BufferPool {
            size,
            available: size.saturating_sub(held),
        })
    }

    fn finish(&mut self) -> Result<(), AfXdpError> {
        self.last = Some(self.counters());
        // Sockets no worker took, then our second descriptors: the sockets
        // close and their queues go back to the kernel stack.
        if let Ok(mut w) = self.workers.lock() {
            w.clear();
        }
        for p in &mut self.ports {
            p.sockets.clear();
        }
        Ok(())
    }
}
