//! The figures of a run, their arithmetic, the terminal table and the JSON
//! document (`--json`).

use crate::scenario::Role;
use crate::traffic::L1_OVERHEAD;
use hdrhistogram::Histogram;
use meshplane::drop_reason::{DropCounters, DropReason};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Throughput figures of one measurement. Rates count the frames the DUT
/// forwarded, at the size it received them on the wire (FCS included, as
/// RFC 2544 does; `meshplane run` and `replay` state theirs the same way).
#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    /// Frames offered by the tester.
    pub offered: u64,
    /// Frames forwarded back to the tester.
    pub tx: u64,
    /// `offered - tx`.
    pub lost: u64,
    /// `lost / offered`, in percent.
    pub loss_pct: f64,
    /// Measured seconds.
    pub secs: f64,
    /// Forwarded frames per second, in millions.
    pub mpps: f64,
    /// `mpps * frame_bytes * 8`, in Gbit/s (layer 2, FCS included).
    pub gbps_l2: f64,
    /// `mpps * (frame_bytes + 20) * 8`, in Gbit/s (on the wire: preamble,
    /// SFD and inter-frame gap included).
    pub gbps_l1: f64,
    /// Seconds of `secs` the thread ran on a CPU (the rest it was
    /// preempted), when the kernel reports it.
    pub cpu_secs: Option<f64>,
    /// `tx / cpu_secs`, in millions: frames per second of one core, the
    /// figure that holds on a shared machine.
    pub mpps_on_cpu: Option<f64>,
}

impl Figures {
    /// Figures from counts, time and the mean frame size (L2 with FCS).
    pub fn new(offered: u64, tx: u64, secs: f64, frame_bytes: f64) -> Figures {
        let lost = offered.saturating_sub(tx);
        let mpps = if secs > 0.0 {
            tx as f64 / secs / 1e6
        } else {
            0.0
        };
        Figures {
            offered,
            tx,
            lost,
            loss_pct: if offered > 0 {
                lost as f64 * 100.0 / offered as f64
            } else {
                0.0
            },
            secs,
            mpps,
            gbps_l2: mpps * frame_bytes * 8.0 / 1e3,
            gbps_l1: mpps * (frame_bytes + L1_OVERHEAD as f64) * 8.0 / 1e3,
            cpu_secs: None,
            mpps_on_cpu: None,
        }
    }

    /// Adds the on-CPU time of the measurement.
    pub fn on_cpu(mut self, cpu_secs: Option<f64>) -> Figures {
        if let Some(c) = cpu_secs.filter(|c| *c > 0.0) {
            // The CPU clock is read just outside the wall-clock window.
            let c = c.min(self.secs);
            self.cpu_secs = Some(c);
            self.mpps_on_cpu = Some(self.tx as f64 / c / 1e6);
        }
        self
    }

    /// The per-core rate ratios are taken on: on-CPU when known, else wall.
    pub fn rate(&self) -> f64 {
        self.mpps_on_cpu.unwrap_or(self.mpps)
    }

    /// Share of the measured time the thread was on a CPU, percent.
    pub fn cpu_share_pct(&self) -> Option<f64> {
        self.cpu_secs.map(|c| c * 100.0 / self.secs.max(1e-12))
    }
}

/// Latency percentiles in nanoseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    /// Frames recorded.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p99_9: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
    /// (percentile, ns) pairs from 0 to 100 for plots.
    pub distribution: Vec<(f64, u64)>,
}

impl Latency {
    /// Summarises a histogram; `None` when it is empty.
    pub fn from_histogram(h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        let qs = [
            0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99999,
        ];
        let mut distribution: Vec<(f64, u64)> = qs
            .iter()
            .map(|&q| (q * 100.0, h.value_at_quantile(q)))
            .collect();
        distribution.push((100.0, h.max()));
        Some(Latency {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
            distribution,
        })
    }
}

/// The crypto ceiling's figures.
#[derive(Clone, Debug, Serialize)]
pub struct CryptoFigures {
    /// AEAD operations per frame.
    pub ops_per_frame: usize,
    /// Frames per on-CPU second (wall second without schedstat), in millions.
    pub mpps: f64,
    /// Frames per wall-clock second, in millions.
    pub mpps_wall: f64,
    /// Nanoseconds (on a CPU) per frame.
    pub ns_per_frame: f64,
    /// Gbit/s at layer 2 of the scenario's input frames.
    pub gbps_l2: f64,
}

/// One trial of an NDR search.
#[derive(Clone, Debug, Serialize)]
pub struct NdrTrial {
    /// Offered rate, million frames/s.
    pub offered_mpps: f64,
    /// The trial's figures.
    pub figures: Figures,
    /// Loss within the allowed loss ratio.
    pub pass: bool,
}

/// Result of an NDR (or PDR) search.
#[derive(Clone, Debug, Serialize)]
pub struct Ndr {
    /// Highest offered rate that passed, million frames/s.
    pub mpps: f64,
    /// The same in Gbit/s on the wire (L1).
    pub gbps_l1: f64,
    /// Loss ratio allowed (0 for NDR).
    pub max_loss_pct: f64,
    /// Search resolution, relative to the upper bound.
    pub resolution: f64,
    /// Seconds per trial.
    pub trial_secs: f64,
    /// Every trial, in search order.
    pub trials: Vec<NdrTrial>,
}

/// Everything measured for one scenario.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioResult {
    /// Scenario name.
    pub scenario: &'static str,
    /// Role.
    pub role: Role,
    /// Traffic (frame size or capture file name).
    pub traffic: String,
    /// Backend name.
    pub backend: String,
    /// Distinct frames in one replay pass.
    pub frames_per_pass: usize,
    /// Mean size of the frames the DUT receives (L2 with FCS).
    pub frame_bytes: f64,
    /// Mean size of the LAN frames at gateway A (L2 with FCS).
    pub lan_frame_bytes: f64,
    /// Offered rate (frames/s) or `None` for top speed.
    pub offered_pps: Option<f64>,
    /// The data plane's figures.
    pub pipeline: Figures,
    /// Frames refused by the full receive ring.
    pub missed: u64,
    /// Drops inside the DUT, by reason (non-zero only).
    pub drops: BTreeMap<&'static str, u64>,
    /// DUT latency (RX burst to TX burst).
    pub latency_ns: Option<Latency>,
    /// The I/O ceiling: same backend and frames, no stage.
    pub io_ceiling: Option<Figures>,
    /// The crypto ceiling: the AEAD alone over the same frames.
    pub crypto_ceiling: Option<CryptoFigures>,
    /// `pipeline.rate() / io_ceiling.rate()` (on-CPU rates when known).
    pub ratio_io: Option<f64>,
    /// `pipeline.rate() / crypto_ceiling.mpps`.
    pub ratio_crypto: Option<f64>,
    /// What the ratios compare: "on-cpu" or "wall" rates.
    pub ratio_basis: &'static str,
    /// NDR search, when asked for.
    pub ndr: Option<Ndr>,
}

/// Non-zero drop counters by name.
pub fn drop_map(d: &DropCounters) -> BTreeMap<&'static str, u64> {
    DropReason::ALL
        .iter()
        .filter(|r| d.get(**r) > 0)
        .map(|r| (r.name(), d.get(*r)))
        .collect()
}

/// The machine a run was made on.
#[derive(Clone, Debug, Serialize)]
pub struct Host {
    /// CPU model name.
    pub cpu: String,
    /// Logical CPUs online.
    pub cpus: usize,
    /// Kernel release.
    pub kernel: String,
}

impl Host {
    /// Reads /proc.
    pub fn probe() -> Host {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Host {
            cpu,
            // Online CPUs, not this thread's affinity (EAL pins it to one).
            cpus: std::fs::read_to_string("/proc/cpuinfo")
                .map(|s| s.lines().filter(|l| l.starts_with("processor")).count())
                .unwrap_or(0)
                .max(1),
            kernel,
        }
    }
}

/// The whole run, as `--json` writes it.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Producer and version.
    pub tool: String,
    /// The machine.
    pub host: Host,
    /// Seconds per measured trial (or `None` when stopping on a count).
    pub duration_secs: Option<f64>,
    /// Frames per trial when stopping on a count.
    pub count: Option<u64>,
    /// Receive ring depth.
    pub ring_depth: usize,
    /// One entry per scenario, traffic and backend.
    pub results: Vec<ScenarioResult>,
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}"))
        .unwrap_or_else(|| "-".into())
}

fn ns(v: u64) -> String {
    if v >= 10_000_000 {
        format!("{:.1}ms", v as f64 / 1e6)
    } else if v >= 10_000 {
        format!("{:.1}us", v as f64 / 1e3)
    } else {
        format!("{v}ns")
    }
}

impl Report {
    /// The human table.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<18} {:<8} {:<10} {:>7} {:>11} {:>11} {:>8} {:>7} {:>8} {:>8} {:>5} {:>8} {:>8} {:>5} {:>9} {:>6} {:>8}",
            "scenario",
            "traffic",
            "backend",
            "B/frame",
            "offered",
            "tx",
            "loss%",
            "Mpps",
            "Gbps L2",
            "Gbps L1",
            "CPU%",
            "Mpps/CPU",
            "I/O Mpps",
            "xI/O",
            "AEAD Mpps",
            "xAEAD",
            "NDR Mpps"
        );
        for r in &self.results {
            let p = &r.pipeline;
            let _ = writeln!(
                s,
                "{:<18} {:<8} {:<10} {:>7.1} {:>11} {:>11} {:>8.4} {:>7.3} {:>8.3} {:>8.3} {:>5} {:>8} {:>8} {:>5} {:>9} {:>6} {:>8}",
                r.scenario,
                r.traffic,
                r.backend,
                r.frame_bytes,
                p.offered,
                p.tx,
                p.loss_pct,
                p.mpps,
                p.gbps_l2,
                p.gbps_l1,
                opt(p.cpu_share_pct(), 0),
                opt(p.mpps_on_cpu, 3),
                opt(r.io_ceiling.as_ref().map(|f| f.rate()), 3),
                opt(r.ratio_io, 2),
                opt(r.crypto_ceiling.as_ref().map(|c| c.mpps), 3),
                opt(r.ratio_crypto, 2),
                opt(r.ndr.as_ref().map(|n| n.mpps), 3),
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<18} {:<8} {:<10} {:>9} {:>9} {:>9} {:>9} {:>9}  drops",
            "latency", "traffic", "backend", "p50", "p90", "p99", "p99.9", "max"
        );
        for r in &self.results {
            let mut drops: Vec<String> = r.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if r.missed > 0 {
                drops.push(format!("rx_ring_full={}", r.missed));
            }
            let drops = if drops.is_empty() {
                "none".to_string()
            } else {
                drops.join(" ")
            };
            match &r.latency_ns {
                Some(l) => {
                    let _ = writeln!(
                        s,
                        "{:<18} {:<8} {:<10} {:>9} {:>9} {:>9} {:>9} {:>9}  {drops}",
                        r.scenario,
                        r.traffic,
                        r.backend,
                        ns(l.p50),
                        ns(l.p90),
                        ns(l.p99),
                        ns(l.p99_9),
                        ns(l.max)
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "{:<18} {:<8} {:<10} {:>9} {:>9} {:>9} {:>9} {:>9}  {drops}",
                        r.scenario, r.traffic, r.backend, "-", "-", "-", "-", "-"
                    );
                }
            }
        }
        let _ = writeln!(
            s,
            "\nMpps/Gbps: frames forwarded per wall-clock second at the size the DUT receives them \
             (L2 with FCS; L1 adds 20 B preamble + gap).\nCPU%: share of the time the thread ran \
             (the rest the scheduler gave to others); Mpps/CPU: frames per on-CPU second, one core.\n\
             I/O, AEAD: ceilings in frames per on-CPU second; xI/O, xAEAD: Mpps/CPU over them (same \
             backend and frames without stages; the AEAD alone over the same frames).\nLatency: from \
             the DUT's RX burst to its TX burst, per frame."
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_arithmetic() {
        let f = Figures::new(1000, 990, 0.5, 64.0);
        assert_eq!(f.lost, 10);
        assert!((f.loss_pct - 1.0).abs() < 1e-12);
        assert!((f.mpps - 0.00198).abs() < 1e-12);
        assert!((f.gbps_l2 - 0.00198 * 512.0 / 1e3).abs() < 1e-12);
        assert!((f.gbps_l1 - 0.00198 * 672.0 / 1e3).abs() < 1e-12);
        // 14.88 Mpps of 64 B frames fill 10 Gbit/s on the wire.
        let line = Figures::new(14_880_952, 14_880_952, 1.0, 64.0);
        assert!((line.gbps_l1 - 10.0).abs() < 1e-5);
    }
}
