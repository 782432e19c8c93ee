//! A node's ports over DPDK, as its configuration names them: `[io]
//! eal_args`, the worker cores, and each port's `dpdk` device string
//! (`net_ring0`, `net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap`,
//! `net_af_xdp0,iface=veth0`, or a PCI address).

use super::eal::{Eal, EalBuilder};
use super::error::DpdkError;
use super::ethdev::{device_name, DpdkPort, EthDev, EthDevConfig};
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

/// The `key=value` device arguments of a device string, in order.
fn devargs(spec: &str) -> impl Iterator<Item = (&str, &str)> {
    spec.split(',')
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
}

/// Whether `spec` is a pcap vdev (`net_pcap0,...`).
fn is_pcap(spec: &str) -> bool {
    let name = device_name(spec);
    name.starts_with("net_pcap") || name.starts_with("eth_pcap")
}

/// What is wrong with the files a `net_pcap` device string names (an
/// `rx_pcap` that does not exist, a `tx_pcap` in a directory that does
/// not), or `None`. DPDK itself only logs such a device and leaves it out,
/// so the port would later be missing without a word about the file.
pub fn device_files_problem(spec: &str) -> Option<String> {
    if !is_pcap(spec) {
        return None;
    }
    for (key, value) in devargs(spec) {
        let path = std::path::Path::new(value);
        match key {
            "rx_pcap" if !path.is_file() => {
                return Some(match std::fs::metadata(path) {
                    Err(e) => format!("rx_pcap file {value:?}: {e}"),
                    Ok(_) => format!("rx_pcap {value:?} is not a regular file"),
                });
            }
            "tx_pcap" => {
                let dir = match path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => std::path::Path::new("."),
                };
                if !dir.is_dir() {
                    return Some(format!(
                        "tx_pcap {value:?}: directory {} does not exist",
                        dir.display()
                    ));
                }
            }
            _ => {}
        }
    }
    None
}

/// Whether `spec` is a `net_null` device whose RX side generates frames
/// (as it does unless `no-rx=1`): a node polling it receives junk at line
/// rate, drops it all and forwards less.
pub fn null_device_generates(spec: &str) -> bool {
    let name = device_name(spec);
    (name.starts_with("net_null") || name.starts_with("eth_null"))
        && !devargs(spec).any(|(k, v)| k == "no-rx" && v == "1")
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
        let mut devs = Vec::with_capacity(cfg.ports.len());
        for p in &cfg.ports {
            let spec = p.dpdk.as_deref().ok_or_else(|| {
                DpdkError::Config(format!(
                    "node {}: port {:?} has no `dpdk` device",
                    cfg.name, p.name
                ))
            })?;
            if null_device_generates(spec) {
                let name = device_name(spec);
                tracing::warn!(
                    "port {:?}: {name} generates frames on RX, which this node polls and drops \
                     at line rate; write dpdk = \"{name},no-rx=1\" for a device that only \
                     absorbs what it is sent",
                    p.name
                );
            }
            let dev_cfg = EthDevConfig {
                rx_queues: queues,
                tx_queues: queues,
                max_frame: p.max_frame(),
                ..EthDevConfig::default()
            };
            // The device was passed to EAL (`for_node`): if it is not
            // there, its driver refused it at probe time.
            let dev = EthDev::open(eal, spec, &dev_cfg, pool).map_err(|e| match e {
                DpdkError::NoSuchPort(name) => DpdkError::NotProbed(name),
                e => e,
            })?;
            devs.push(dev);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_null_device_generates_unless_told_no_rx() {
        assert!(null_device_generates("net_null0"));
        assert!(null_device_generates("net_null0,copy=1"));
        assert!(null_device_generates("net_null0,no-rx=0"));
        assert!(!null_device_generates("net_null0,no-rx=1"));
        assert!(!null_device_generates("net_null1, no-rx = 1"));
        assert!(!null_device_generates("net_ring0"));
        assert!(!null_device_generates("0000:01:00.0"));
    }

    #[test]
    fn a_missing_rx_pcap_is_named() {
        let dir = std::env::temp_dir();
        let missing = dir.join(format!("mp-no-such-{}.pcap", std::process::id()));
        let spec = format!("net_pcap0,rx_pcap={}", missing.display());
        let why = device_files_problem(&spec).expect("a problem");
        assert!(why.contains(&missing.display().to_string()), "{why}");
        assert!(why.contains("rx_pcap"), "{why}");
        let spec = format!(
            "net_pcap0,rx_pcap=x.pcap,tx_pcap={}/out.pcap",
            missing.display()
        );
        assert!(device_files_problem(&spec).is_some());
        let out = dir.join("out.pcap");
        let spec = format!("net_pcap0,tx_pcap={}", out.display());
        assert_eq!(device_files_problem(&spec), None);
        assert_eq!(device_files_problem("net_null0,rx_pcap=/nope"), None);
    }
}
