//! A node's statistics at one instant, and how they are shown: the compact
//! table printed once a second and at exit, and the JSON of `--stats-json`.

use super::backend::{BufferPool, DeviceCounters};
use super::hub::WorkerInfo;
use crate::config::Mode;
use crate::drop_reason::DropReason;
use crate::worker::WorkerStats;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::fmt::Write;
use std::time::Duration;

/// One worker's counters at one instant.
#[derive(Clone, Debug)]
pub struct WorkerSnapshot {
    /// Which worker.
    pub info: WorkerInfo,
    /// Its counters.
    pub stats: WorkerStats,
    /// Table epoch of its last burst.
    pub epoch: u64,
    /// Polls so far.
    pub polls: u64,
    /// Polls that received nothing.
    pub empty_polls: u64,
}

/// A node's statistics at one instant.
#[derive(Clone, Debug)]
pub struct NodeSnapshot {
    /// Node name.
    pub node: String,
    /// How the cores share the work.
    pub mode: Mode,
    /// Time since the node started.
    pub elapsed: Duration,
    /// Epoch of the installed table snapshot.
    pub table_epoch: u64,
    /// Port names, in port order.
    pub port_names: Vec<String>,
    /// Per worker thread.
    pub workers: Vec<WorkerSnapshot>,
    /// All workers merged.
    pub total: WorkerStats,
    /// The devices' own counters, in port order (may be empty).
    pub devices: Vec<DeviceCounters>,
    /// The buffer pool, when the backend has one.
    pub buffers: Option<BufferPool>,
}

/// Latency quantiles reported everywhere.
pub const QUANTILES: [(f64, &str); 4] =
    [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99.9")];

fn us(ns: u64) -> String {
    let us = ns as f64 / 1000.0;
    if us >= 100.0 {
        format!("{us:.0}")
    } else {
        format!("{us:.1}")
    }
}

fn latency_cell(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "-".into();
    }
    let mut parts: Vec<String> = QUANTILES
        .iter()
        .map(|(q, _)| us(h.value_at_quantile(*q)))
        .collect();
    parts.push(us(h.max()));
    parts.join("/")
}

fn drops_cell(s: &WorkerStats) -> String {
    let parts: Vec<String> = DropReason::ALL
        .iter()
        .filter(|r| s.drops.get(**r) > 0)
        .map(|r| format!("{} {}", r.name(), s.drops.get(*r)))
        .collect();
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join(", ")
    }
}

impl NodeSnapshot {
    /// The compact table: one line per worker and a total with packet
    /// rates since `prev` (or since the start), cumulative drops by reason
    /// and RX-to-TX latency; then one line per port with the workers' and
    /// the device's counters.
    pub fn render_table(&self, prev: Option<&NodeSnapshot>) -> String {
        let mut s = String::new();
        let dt = match prev {
            Some(p) => self.elapsed.saturating_sub(p.elapsed),
            None => self.elapsed,
        }
        .as_secs_f64()
        .max(1e-9);
        let _ = writeln!(
            s,
            "[{:8.1} s] node {}  {}  table epoch {}",
            self.elapsed.as_secs_f64(),
            self.node,
            self.mode.name(),
            self.table_epoch
        );
        let _ = writeln!(
            s,
            "  {:<7} {:>4} {:>5} {:>12} {:>12} {:>8} {:>8} {:>10}  {:<30} drops",
            "worker",
            "core",
            "busy%",
            "rx pps",
            "tx pps",
            "fwd Mpps",
            "fwd Gbps",
            "epoch",
            "latency us p50/p90/p99/p99.9/max"
        );
        let row = |s: &mut String,
                   name: &str,
                   core: String,
                   busy: String,
                   cur: &WorkerStats,
                   old: Option<&WorkerStats>,
                   epoch: String| {
            let (rx0, tx0, b0) = old.map_or((0, 0, 0), |o| {
                (o.rx_packets(), o.tx_packets(), o.rx_bytes())
            });
            let (rx_n, tx_n) = (
                cur.rx_packets().saturating_sub(rx0),
                cur.tx_packets().saturating_sub(tx0),
            );
            let (rx, tx) = (rx_n as f64 / dt, tx_n as f64 / dt);
            // Forwarded, L2 with FCS: as the final report and the bench.
            let (mpps, gbps) =
                crate::replay::forwarded_rates(rx_n, cur.rx_bytes().saturating_sub(b0), tx_n, dt);
            let _ = writeln!(
                s,
                "  {:<7} {:>4} {:>5} {:>12.0} {:>12.0} {:>8.3} {:>8.3} {:>10}  {:<30} {}",
                name,
                core,
                busy,
                rx,
                tx,
                mpps,
                gbps,
                epoch,
                latency_cell(&cur.latency),
                drops_cell(cur)
            );
        };
        for (i, w) in self.workers.iter().enumerate() {
            let old = prev.and_then(|p| p.workers.get(i)).map(|o| &o.stats);
            let name = match w.info.role {
                super::hub::WorkerRole::Crypto => format!("c{}", w.info.index),
                _ => format!("w{}", w.info.index),
            };
            let core = w.info.core.map_or("-".into(), |c| c.to_string());
            // Share of polls that found work since the previous table.
            let (p0, e0) = prev
                .and_then(|p| p.workers.get(i))
                .map_or((0, 0), |o| (o.polls, o.empty_polls));
            let polls = w.polls.saturating_sub(p0);
            let busy = if polls == 0 {
                "-".to_string()
            } else {
                let full = polls.saturating_sub(w.empty_polls.saturating_sub(e0));
                format!("{:.1}", full as f64 * 100.0 / polls as f64)
            };
            row(
                &mut s,
                &name,
                core,
                busy,
                &w.stats,
                old,
                w.epoch.to_string(),
            );
        }
        row(
            &mut s,
            "total",
            String::new(),
            String::new(),
            &self.total,
            prev.map(|p| &p.total),
            self.table_epoch.to_string(),
        );
        for (i, name) in self.port_names.iter().enumerate() {
            let p = self.total.ports.get(i).copied().unwrap_or_default();
            let _ = write!(
                s,
                "  port {:<10} rx {:>12} tx {:>12}",
                name, p.rx_packets, p.tx_packets
            );
            if let Some(d) = self.devices.get(i) {
                let _ = write!(
                    s,
                    "  missed {} rx_errors {} rx_nombuf {} tx_errors {}",
                    d.rx_missed, d.rx_errors, d.rx_nombuf, d.tx_errors
                );
            }
            s.push('\n');
        }
        if let Some(b) = self.buffers {
            let _ = writeln!(
                s,
                "  buffers {}/{} free{}",
                b.available,
                b.size,
                if b.is_full() { " (all returned)" } else { "" }
            );
        }
        s
    }

    /// Everything as JSON (`final` marks the report written at exit).
    pub fn to_json(&self, is_final: bool) -> Value {
        let stats = |st: &WorkerStats| {
            let drops: serde_json::Map<String, Value> = DropReason::ALL
                .iter()
                .map(|r| (r.name().to_string(), json!(st.drops.get(*r))))
                .collect();
            let ports: Vec<Value> = st
                .ports
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    json!({
                        "port": self.port_names.get(i),
                        "rx_packets": p.rx_packets, "rx_bytes": p.rx_bytes,
                        "tx_packets": p.tx_packets, "tx_bytes": p.tx_bytes,
                        "punt_packets": p.punt_packets, "inject_packets": p.inject_packets,
                    })
                })
                .collect();
            let h = &st.latency;
            let mut lat = serde_json::Map::new();
            lat.insert("samples".into(), json!(h.len()));
            for (q, name) in QUANTILES {
                lat.insert(
                    format!("{name}_ns"),
                    json!(if h.is_empty() {
                        0
                    } else {
                        h.value_at_quantile(q)
                    }),
                );
            }
            lat.insert("max_ns".into(), json!(h.max()));
            json!({
                "rx_packets": st.rx_packets(), "rx_bytes": st.rx_bytes(),
                "tx_packets": st.tx_packets(), "tx_bytes": st.tx_bytes(),
                "drops": drops, "drops_total": st.drops.total(),
                "ports": ports, "latency": lat,
            })
        };
        let workers: Vec<Value> = self
            .workers
            .iter()
            .map(|w| {
                json!({
                    "index": w.info.index, "core": w.info.core, "role": w.info.role,
                    "epoch": w.epoch, "polls": w.polls, "empty_polls": w.empty_polls,
                    "stats": stats(&w.stats),
                })
            })
            .collect();
        let devices: Vec<Value> = self
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let mut v = json!(d);
                v["port"] = json!(self.port_names.get(i));
                v
            })
            .collect();
        json!({
            "node": self.node,
            "mode": self.mode.name(),
            "final": is_final,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "table_epoch": self.table_epoch,
            "workers": workers,
            "total": stats(&self.total),
            "devices": devices,
            "buffers": self.buffers,
        })
    }
}
