//! A node's ports over DPDK, as its configuration names them: `[io]
//! eal_args`, the worker cores, and each port's `dpdk` device string
//! (`net_ring0`, `net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap`,
//! `net_af_xdp0,iface=veth0`, or a PCI address).

use super::eal::{Eal, EalBuilder};
use super::error::DpdkError;
use super::ethdev::{DpdkPort, EthDev, EthDevConfig};
use super::mempool::Mempool;
use crate::config::NodeConfig;

impl EalBuilder {
    /// EAL for one node: its worker cores, its `[io] eal_args` and a
    /// `--file-prefix` named after it. With `with_ports`, every port's
    /// `dpdk` device joins: vdev strings (`net_...`) as `--vdev`, anything
    /// else (a PCI address) as `-a`.
    pub fn for_node(cfg: &NodeConfig, with_ports: bool) -> Self {
        let mut b = EalBuilder::new()
            .cores(&cfg.cores)
            .file_prefix(format!("meshplane-{}", cfg.name))
            .args(cfg.io.eal_args.iter().cloned());
        if with_ports {
            for p in &cfg.ports {
                match &p.dpdk {
                    Some(d) if d.starts_with("net_") || d.starts_with("eth_") => {
                        b = b.vdev(d.clone())
                    }
                    Some(d) => b = b.pci(d.clone()),
                    None => {}
                }
            }
        }
        b
    }
}

/// The ethdevs of one node, in port order (index = `PortId`).
#[derive(Debug)]
pub struct NodePorts {
    devs: Vec<EthDev>,
}

impl NodePorts {
    /// Opens and starts every port of `cfg` by its `dpdk` device (passed
    /// to EAL by `EalBuilder::for_node(cfg, true)`), each with `queues`
    /// RX/TX queue pairs (one per worker) and RX buffers from `pool`.
    pub fn open(
        eal: &Eal,
        cfg: &NodeConfig,
        queues: u16,
        pool: &Mempool,
    ) -> Result<Self, DpdkError> {
        let dev_cfg = EthDevConfig {
            rx_queues: queues,
            tx_queues: queues,
            max_frame: cfg.io.max_frame(),
            ..EthDevConfig::default()
        };
        let mut devs = Vec::with_capacity(cfg.ports.len());
        for p in &cfg.ports {
            let spec = p.dpdk.as_deref().ok_or_else(|| {
                DpdkError::Config(format!(
                    "node {}: port {:?} has no `dpdk` device",
                    cfg.name, p.name
                ))
            })?;
            devs.push(EthDev::open(eal, spec, &dev_cfg, pool)?);
        }
        Ok(NodePorts { devs })
    }

    /// The devices, in port order.
    pub fn devices(&self) -> &[EthDev] {
        &self.devs
    }

    /// Queue `queue` of every port, in port order: one worker's ports.
    pub fn queues(&self, queue: u16) -> Result<Vec<DpdkPort>, DpdkError> {
        self.devs.iter().map(|d| d.queue(queue)).collect()
    }

    /// Stops and closes every port (flushing e.g. net_pcap output files).
    /// Fails if a queue is still held by a worker.
    pub fn close(self) -> Result<(), DpdkError> {
        for d in self.devs {
            d.close()?;
        }
        Ok(())
    }
}
