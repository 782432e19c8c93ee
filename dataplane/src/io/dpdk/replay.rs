//! Replay over DPDK: a capture file enters a node through `net_pcap`,
//! runs through the same worker and stages as with the heap backend, over
//! mbufs and without a copy from RX to TX, and what each port transmits is
//! captured through a `net_ring` loopback and handed to a sink in the order
//! the heap backend would hand it.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::eal::Eal;
use super::error::DpdkError;
use super::ethdev::{DpdkPort, EthDev, EthDevConfig};
use super::mbuf::{free_batch, Mbuf};
use super::mempool::Mempool;
use crate::config::NodeConfig;
use crate::frame::{Batch, Frame};
use crate::io::Port;
use crate::replay::{ReplayOptions, ReplayReport};
use crate::tables::{TableError, Tables};
use crate::worker::Worker;

/// Distinguishes the vdevs and pools of successive replays in one process.
static REPLAY_ID: AtomicU32 = AtomicU32::new(0);

/// Mbufs per replay pool besides a looped capture's own frames.
const POOL_BASE: u32 = 8191;

/// Why a DPDK replay failed.
#[derive(Debug, thiserror::Error)]
pub enum DpdkReplayError<E> {
    /// The node's tables could not be built.
    #[error("building tables: {0}")]
    Tables(TableError),
    /// The RX port index is out of range.
    #[error("rx port {0} does not exist (node has {1} ports)")]
    NoPort(usize, usize),
    /// The capture path cannot be handed to DPDK's device arguments.
    #[error("capture path {0:?} cannot be a DPDK device argument (it holds ',' or '=')")]
    Path(String),
    /// DPDK failed.
    #[error(transparent)]
    Dpdk(#[from] DpdkError),
    /// The sink failed.
    #[error("writing output: {0}")]
    Sink(E),
    /// Mbufs did not come back to the pool: a bug, reported rather than hidden.
    #[error("{0} mbufs were not returned to the pool after the replay")]
    Leaked(u32),
}

/// One node port during a replay: RX from the capture (the RX port only),
/// TX into a loopback ring the driver drains.
struct ReplayDpdkPort {
    rx: Option<DpdkPort>,
    /// Frames still to receive (a looped capture is read endlessly by the PMD).
    rx_left: u64,
    tx: DpdkPort,
}

impl Port for ReplayDpdkPort {
    type Frame = Mbuf;

    fn rx_burst(&mut self, batch: &mut Batch<Mbuf>) -> usize {
        let Some(rx) = self.rx.as_mut() else {
            return 0;
        };
        let max = usize::try_from(self.rx_left).unwrap_or(usize::MAX);
        let n = rx.rx_burst_max(batch, max);
        self.rx_left -= n as u64;
        n
    }

    fn tx_burst(&mut self, batch: &mut Batch<Mbuf>) -> usize {
        self.tx.tx_burst(batch)
    }
}

/// Replays the capture at `input` (`packets` frames; pcap, or pcapng as
/// far as libpcap reads it) `opts.loops` times through the node `cfg`
/// describes, over DPDK. `sink(port, ts, bytes)` receives every transmitted
/// frame, per port in order, as with `crate::replay::replay`.
pub fn replay_dpdk<E>(
    eal: &Eal,
    cfg: &NodeConfig,
    input: &Path,
    packets: u64,
    opts: &ReplayOptions,
    mut sink: impl FnMut(usize, Duration, &[u8]) -> Result<(), E>,
) -> Result<ReplayReport, DpdkReplayError<E>> {
    let tables = Tables::from_config(cfg, 1).map_err(DpdkReplayError::Tables)?;
    let nports = cfg.ports.len();
    if opts.rx_port >= nports {
        return Err(DpdkReplayError::NoPort(opts.rx_port, nports));
    }
    let path = input.to_string_lossy().into_owned();
    if path.contains(',') || path.contains('=') {
        return Err(DpdkReplayError::Path(path));
    }
    let id = REPLAY_ID.fetch_add(1, Ordering::Relaxed);
    let looped = opts.loops > 1;
    // A looped capture is held in mbufs by the PMD for the whole run.
    let extra = if looped {
        u32::try_from(packets).unwrap_or(u32::MAX - POOL_BASE)
    } else {
        0
    };
    let pool = Mempool::new(
        eal,
        &format!("replay{id}"),
        POOL_BASE.saturating_add(extra),
        256,
    )?;
    let dev_cfg = EthDevConfig::default();

    // Devices first, then the queues: dropping `ports` before `devs`
    // releases the queues, then the devices close and their vdevs go.
    let mut devs = Vec::with_capacity(nports * 2);
    let mut ports = Vec::with_capacity(nports);
    for p in 0..nports {
        let rx = if p == opts.rx_port {
            let spec = format!(
                "net_pcap_mp{id}p{p},rx_pcap={path}{}",
                if looped { ",infinite_rx=1" } else { "" }
            );
            let dev = EthDev::hotplug(eal, &spec, &dev_cfg, &pool)?;
            let q = dev.queue(0)?;
            devs.push(dev);
            Some(q)
        } else {
            None
        };
        let ring = EthDev::hotplug(eal, &format!("net_ring_mp{id}p{p}"), &dev_cfg, &pool)?;
        let tx = ring.queue(0)?;
        devs.push(ring);
        ports.push(ReplayDpdkPort {
            rx,
            rx_left: packets.saturating_mul(opts.loops),
            tx,
        });
    }

    let mut w = Worker::new(ports);
    let mut out: Batch<Mbuf> = Batch::new();
    let start = Instant::now();
    let result = loop {
        let n = w.poll(&tables);
        let mut failed = None;
        for (pi, port) in w.ports_mut().iter_mut().enumerate() {
            // The ring is the port's wire: read back what was sent on it.
            while port.tx.rx_burst(&mut out) > 0 {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                for f in out.frames() {
                    if failed.is_none() {
                        if let Err(e) = sink(pi, now, f.data()) {
                            failed = Some(e);
                        }
                    }
                }
                free_batch(&mut out);
            }
        }
        if let Some(e) = failed {
            break Err(DpdkReplayError::Sink(e));
        }
        // net_pcap reads the file synchronously: an empty burst is the end.
        if n == 0 {
            break Ok(());
        }
    };
    let elapsed = start.elapsed();
    let stats = w.stats.clone();
    drop(w);
    drop(devs);
    result?;
    let leaked = pool.in_use();
    if leaked != 0 {
        return Err(DpdkReplayError::Leaked(leaked));
    }
    Ok(ReplayReport {
        node: cfg.name.clone(),
        port_names: cfg.ports.iter().map(|p| p.name.clone()).collect(),
        stats,
        elapsed,
    })
}
