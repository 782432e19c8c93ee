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
    /// Million frames forwarded per second (see [`forwarded_rates`]).
    pub fn mpps(&self) -> f64 {
        self.rates().0
    }
    /// Gigabits per second forwarded, layer 2 with the FCS (see
    /// [`forwarded_rates`]).
    pub fn gbps(&self) -> f64 {
        self.rates().1
    }

    fn rates(&self) -> (f64, f64) {
        let s = &self.stats;
        forwarded_rates(
            s.rx_packets(),
            s.rx_bytes(),
            s.tx_packets(),
            self.elapsed.as_secs_f64(),
        )
    }

    /// A compact human-readable report.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "node {}: {} packets in, {} out, {} dropped in {:.3} s: forwarded {:.3} Mpps, {:.3} Gbps L2 incl. FCS",
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

/// Bytes of the Ethernet FCS: left out of captures and of the devices'
/// byte counts, counted in a frame's size by RFC 2544 (a "64 B" frame is
/// 60 bytes + FCS) and by `meshplane-bench`.
pub const FCS_BYTES: u64 = 4;

/// The rates every report states, as `meshplane-bench` and RFC 2544 do:
/// frames *forwarded* per second, in millions, and the gigabits per second
/// of those frames at layer 2 at the mean size they were received, FCS
/// included: `(Mpps, Gbps)` of `tx_packets` forwarded in `secs` while
/// `rx_packets` frames of `rx_bytes` (without FCS) were received.
pub fn forwarded_rates(rx_packets: u64, rx_bytes: u64, tx_packets: u64, secs: f64) -> (f64, f64) {
    let secs = secs.max(1e-9);
    let frame = if rx_packets == 0 {
        0.0
    } else {
        rx_bytes.saturating_add(rx_packets.saturating_mul(FCS_BYTES)) as f64 / rx_packets as f64
    };
    let pps = tx_packets as f64 / secs;
    (pps / 1e6, pps * frame * 8.0 / 1e9)
}

/// Bursts between two looks at the SAs' lifetimes during a replay.
const LIFETIME_POLLS: u32 = 1024;

/// Replays `input` through the node `cfg` describes. `sink(port, ts,
/// bytes)` receives every transmitted frame in order; an error from it
/// stops the replay. Frames longer than the receiving port's `max_frame()` are counted
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
                    .with_max_frame(cfg.ports[i].max_frame())
            } else {
                ReplayPort::sink(pool.clone())
            }
        })
        .collect();
    let mut w = Worker::new(ports);
    let start = Instant::now();
    let mut polls = 0u32;
    loop {
        let n = w.poll(&tables);
        // SA lifetimes: time limits ticked and levels reached logged, as
        // a running node's supervisor does, every so many bursts.
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(LIFETIME_POLLS) {
            crate::runtime::lifetimes::watch(&tables, Instant::now());
        }
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
    crate::runtime::lifetimes::watch(&tables, Instant::now());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_count_frames_forwarded_at_their_size_with_fcs() {
        // 17.5 M frames of 60 B (64 B on the wire) received in a second,
        // half of them forwarded.
        let (mpps, gbps) = forwarded_rates(17_500_000, 17_500_000 * 60, 8_750_000, 1.0);
        assert!((mpps - 8.75).abs() < 1e-9, "{mpps}");
        assert!((gbps - 8.75 * 64.0 * 8.0 / 1e3).abs() < 1e-9, "{gbps}");
        assert_eq!(forwarded_rates(0, 0, 0, 1.0), (0.0, 0.0));
    }

    #[test]
    fn the_summary_says_what_it_counts() {
        let mut stats = WorkerStats::new(2);
        stats.ports[0].rx_packets = 2_000;
        stats.ports[0].rx_bytes = 2_000 * 60;
        stats.ports[1].tx_packets = 1_000;
        stats.ports[1].tx_bytes = 1_000 * 60;
        let r = ReplayReport {
            node: "sat".into(),
            port_names: vec!["a".into(), "b".into()],
            stats,
            elapsed: Duration::from_millis(1),
        };
        let line = r.render().lines().next().unwrap_or_default().to_string();
        assert!(
            line.contains("forwarded 1.000 Mpps, 0.512 Gbps L2 incl. FCS"),
            "{line}"
        );
    }
}
