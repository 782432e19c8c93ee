//! Replay over DPDK: a capture enters a node through `net_pcap`, runs
//! through the same worker and stages as with the heap backend, over mbufs
//! and without a copy from RX to TX, and what each port transmits is
//! captured through a `net_ring` loopback and handed to a sink in the order
//! the heap backend would hand it.
//!
//! The packets are those meshplane's own reader (`io::pcap::read_file`)
//! found, written to a plain pcap file for `net_pcap`: libpcap alone would
//! stop early on a pcapng it cannot follow (several sections or
//! interfaces) and replay fewer packets than `--io pcap` does.

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
use crate::io::pcap::{CaptureWriter, CapturedPacket, PcapFileError};
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
    /// The capture handed to `net_pcap` could not be written.
    #[error("writing the capture for net_pcap: {0}")]
    Staging(PcapFileError),
    /// The node's `[io] mtu` needs a larger mbuf than DPDK has.
    #[error("frames of {0} B (the ports' largest mtu) do not fit an mbuf")]
    Mtu(usize),
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
        self.rx_burst_counted(batch).0
    }

    fn rx_burst_counted(&mut self, batch: &mut Batch<Mbuf>) -> (usize, u64) {
        let Some(rx) = self.rx.as_mut() else {
            return (0, 0);
        };
        let max = usize::try_from(self.rx_left).unwrap_or(usize::MAX);
        // The device's own count: whole frames, every segment of a chain.
        let (n, bytes) = rx.rx_burst_max_counted(batch, max);
        self.rx_left -= n as u64;
        (n, bytes)
    }

    fn tx_burst(&mut self, batch: &mut Batch<Mbuf>) -> usize {
        self.tx.tx_burst(batch)
    }
}

/// A file that is removed when dropped.
struct Staged(std::path::PathBuf);

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes `input` to a fresh pcap file under `dir` for `net_pcap`.
fn stage(dir: &Path, id: u32, input: &[CapturedPacket]) -> Result<Staged, PcapFileError> {
    let staged = Staged(dir.join(format!("meshplane-replay-{}-{id}.pcap", std::process::id())));
    let mut w = CaptureWriter::create(&staged.0)?;
    for p in input {
        w.write(p.ts, &p.data)?;
    }
    w.finish()?;
    Ok(staged)
}

/// Replays `input` (as `io::pcap::read_file` read it) `opts.loops` times
/// through the node `cfg` describes, over DPDK: the packets enter through
/// `net_pcap` from a pcap file written to the system's temporary directory
/// for the run. `sink(port, ts, bytes)` receives every transmitted frame,
/// per port in order, as with `crate::replay::replay`; frames longer than
/// the receiving port's `max_frame()` are dropped as `oversize` there as here.
pub fn replay_dpdk<E>(
    eal: &Eal,
    cfg: &NodeConfig,
    input: &[CapturedPacket],
    opts: &ReplayOptions,
    mut sink: impl FnMut(usize, Duration, &[u8]) -> Result<(), E>,
) -> Result<ReplayReport, DpdkReplayError<E>> {
    let tables = Tables::from_config(cfg, 1).map_err(DpdkReplayError::Tables)?;
    let nports = cfg.ports.len();
    if opts.rx_port >= nports {
        return Err(DpdkReplayError::NoPort(opts.rx_port, nports));
    }
    let data_room =
        Mempool::data_room_for(cfg.max_frame()).ok_or(DpdkReplayError::Mtu(cfg.max_frame()))?;
    let id = REPLAY_ID.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir();
    let dir_s = dir.to_string_lossy();
    if dir_s.contains(',') || dir_s.contains('=') {
        return Err(DpdkReplayError::Path(dir_s.into_owned()));
    }
    let staged = stage(&dir, id, input).map_err(DpdkReplayError::Staging)?;
    let path = staged.0.to_string_lossy().into_owned();
    let packets = input.len() as u64;
    let looped = opts.loops > 1;
    // A looped capture is held in mbufs by the PMD for the whole run.
    let extra = if looped {
        u32::try_from(packets).unwrap_or(u32::MAX - POOL_BASE)
    } else {
        0
    };
    let pool = Mempool::with_data_room(
        eal,
        &format!("replay{id}"),
        POOL_BASE.saturating_add(extra),
        256,
        data_room,
    )?;
    let dev_cfg = EthDevConfig {
        max_frame: cfg
            .ports
            .get(opts.rx_port)
            .map_or(cfg.max_frame(), |p| p.max_frame()),
        ..EthDevConfig::default()
    };

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
    // The SA lifetime levels the replay reached, logged once.
    crate::runtime::lifetimes::watch(&tables, Instant::now());
    let stats = w.stats.clone();
    drop(w);
    drop(devs);
    drop(staged);
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
