//! Replay: run a capture through one node's pipeline (pcap backend) and
//! collect what the node transmits, per port, with the figures a
//! throughput test reports.

#![warn(missing_docs)]

use crate::config::NodeConfig;
use crate::drop_reason::DropCounters;
use crate::frame::Frame;
use crate::io::pcap::{frame_pool, CapturedPacket, ReplayPort};
use crate::tables::{TableError, Tables};
use crate::worker::{Worker, WorkerStats};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to replay.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Times to replay the capture.
    pub loops: u64,
    /// Port (index) the capture is received on.
    pub rx_port: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            loops: 1,
            rx_port: 0,
        }
    }
}

/// What a replay did.
#[derive(Clone, Debug)]
pub struct ReplayReport {
    /// Node name.
    pub node: String,
    /// Port names, index order.
    pub port_names: Vec<String>,
    /// Counters.
    pub stats: WorkerStats,
    /// Wall time spent in the pipeline loop (including capture writing).
    pub elapsed: Duration,
}

impl ReplayReport {
    /// Packets received.
    pub fn packets_in(&self) -> u64 {
        self.stats.rx_packets()
    }
    /// Packets sent.
    pub fn packets_out(&self) -> u64 {
        self.stats.tx_packets()
    }
    /// Drops by reason.
    pub fn drops(&self) -> &DropCounters {
        &self.stats.drops
    }
    /// Million packets per second received.
    pub fn mpps(&self) -> f64 {
        self.packets_in() as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }
    /// Gigabits per second received (L2 bytes).
    pub fn gbps(&self) -> f64 {
        self.stats.rx_bytes() as f64 * 8.0 / self.elapsed.as_secs_f64().max(1e-9) / 1e9
    }

    /// A compact human-readable report.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "node {}: {} packets in, {} out, {} dropped in {:.3} s ({:.3} Mpps, {:.3} Gbps L2)",
            self.node,
            self.packets_in(),
            self.packets_out(),
            self.stats.drops.total(),
            self.elapsed.as_secs_f64(),
            self.mpps(),
            self.gbps()
        );
        for (i, p) in self.stats.ports.iter().enumerate() {
            if p.rx_packets + p.tx_packets > 0 {
                let _ = writeln!(
                    s,
                    "  port {:<8} rx {:>10} pkts {:>12} B   tx {:>10} pkts {:>12} B",
                    self.port_names.get(i).map(String::as_str).unwrap_or("?"),
                    p.rx_packets,
                    p.rx_bytes,
                    p.tx_packets,
                    p.tx_bytes
                );
            }
        }
        for r in crate::drop_reason::DropReason::ALL {
            let n = self.stats.drops.get(r);
            if n > 0 {
                let _ = writeln!(s, "  drop {:<14} {n}", r.name());
            }
        }
        let h = &self.stats.latency;
        if !h.is_empty() {
            let _ = writeln!(
                s,
                "  latency ns  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.9),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            );
        }
        s
    }
}

/// Replays `input` through the node `cfg` describes. `sink(port, ts,
/// bytes)` receives every transmitted frame in order; an error from it
/// stops the replay. Frames longer than `cfg.io.max_frame()` are counted
/// as received and dropped as `oversize`, as on a device.
pub fn replay<E>(
    cfg: &NodeConfig,
    input: Arc<[CapturedPacket]>,
    opts: &ReplayOptions,
    mut sink: impl FnMut(usize, Duration, &[u8]) -> Result<(), E>,
) -> Result<ReplayReport, ReplayError<E>> {
    let tables = Tables::from_config(cfg, 1).map_err(ReplayError::Tables)?;
    if opts.rx_port >= cfg.ports.len() {
        return Err(ReplayError::NoPort(opts.rx_port, cfg.ports.len()));
    }
    let pool = frame_pool(4096);
    let ports: Vec<ReplayPort> = (0..cfg.ports.len())
        .map(|i| {
            if i == opts.rx_port {
                ReplayPort::source(input.clone(), opts.loops, pool.clone())
                    .with_max_frame(cfg.io.max_frame())
            } else {
                ReplayPort::sink(pool.clone())
            }
        })
        .collect();
    let mut w = Worker::new(ports);
    let start = Instant::now();
    loop {
        let n = w.poll(&tables);
        for (pi, port) in w.ports_mut().iter_mut().enumerate() {
            for (ts, f) in port.sent.drain(..) {
                sink(pi, ts, f.data()).map_err(ReplayError::Sink)?;
                let _ = pool.push(f);
            }
        }
        if n == 0 && w.ports()[opts.rx_port].exhausted() {
            break;
        }
    }
    let elapsed = start.elapsed();
    Ok(ReplayReport {
        node: cfg.name.clone(),
        port_names: cfg.ports.iter().map(|p| p.name.clone()).collect(),
        stats: w.stats,
        elapsed,
    })
}

/// A replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError<E> {
    /// The node's tables could not be built.
    #[error("building tables: {0}")]
    Tables(TableError),
    /// The RX port index is out of range.
    #[error("rx port {0} does not exist (node has {1} ports)")]
    NoPort(usize, usize),
    /// The sink failed.
    #[error("writing output: {0}")]
    Sink(E),
}

/// Replays into memory, returning the frames sent on each port.
pub fn replay_to_memory(
    cfg: &NodeConfig,
    input: Arc<[CapturedPacket]>,
    opts: &ReplayOptions,
) -> Result<(ReplayReport, Vec<Vec<CapturedPacket>>), ReplayError<std::convert::Infallible>> {
    let mut out: Vec<Vec<CapturedPacket>> = vec![Vec::new(); cfg.ports.len()];
    let report = replay(cfg, input, opts, |p, ts, d| {
        out[p].push(CapturedPacket {
            ts,
            data: d.to_vec(),
        });
        Ok::<(), std::convert::Infallible>(())
    })?;
    Ok((report, out))
}
