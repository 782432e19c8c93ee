//! Running a node over DPDK: one worker per configured core, each polling
//! its own RX/TX queue pair of every port (RSS spreads the flows where the
//! device can), all reading one table snapshot.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::eal::Eal;
use super::error::DpdkError;
use super::ethdev::PortStats;
use super::mempool::Mempool;
use super::node::NodePorts;
use crate::config::{Idle, NodeConfig};
use crate::replay::ReplayReport;
use crate::tables::{TableError, Tables};
use crate::worker::{now_ns, Worker, WorkerStats};

/// When a run ends.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop once no worker has received anything for this long (after the
    /// first frame; handy with `net_pcap` inputs).
    pub until_idle: Option<Duration>,
    /// Mbufs in the node's pool (0: 8191 per worker).
    pub pool_size: u32,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Counters of all workers, merged, with wall time, as a replay reports them.
    pub report: ReplayReport,
    /// Each port's own counters (including `imissed`, `ierrors`, `rx_nombuf`).
    pub devices: Vec<PortStats>,
    /// Workers that ran.
    pub workers: usize,
}

impl RunReport {
    /// A compact human-readable report.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = format!("{} worker(s)\n{}", self.workers, self.report.render());
        for (name, d) in self.report.port_names.iter().zip(&self.devices) {
            let _ = writeln!(
                s,
                "  dev  {name:<8} ipackets {} opackets {} imissed {} ierrors {} oerrors {} rx_nombuf {}",
                d.ipackets, d.opackets, d.imissed, d.ierrors, d.oerrors, d.rx_nombuf
            );
        }
        s
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The node's tables could not be built.
    #[error("building tables: {0}")]
    Tables(#[from] TableError),
    /// DPDK failed.
    #[error(transparent)]
    Dpdk(#[from] DpdkError),
    /// A worker thread could not be started or panicked.
    #[error("worker {0}: {1}")]
    Worker(usize, String),
}

/// Runs the node `cfg` describes over the DPDK devices its ports name (EAL
/// must have been initialised with them, e.g. by
/// `EalBuilder::for_node(cfg, true)`), until `opts` says stop.
///
/// Worker 0 runs on the calling thread (the EAL main lcore, pinned to the
/// node's first core); the others on threads pinned to the following
/// cores and registered with EAL.
pub fn run_node(eal: &Eal, cfg: &NodeConfig, opts: &RunOptions) -> Result<RunReport, RunError> {
    let tables = Tables::from_config(cfg, 1)?;
    let workers = cfg.cores.len().max(1);
    let queues = u16::try_from(workers)
        .map_err(|_| DpdkError::Config(format!("{workers} workers: too many queues")))?;
    let size = if opts.pool_size == 0 {
        8191u32.saturating_mul(workers as u32)
    } else {
        opts.pool_size
    };
    let pool = Mempool::new(eal, &format!("node_{}", cfg.name), size, 256)?;
    let ports = NodePorts::open(eal, cfg, queues, &pool)?;
    let mut per_worker = Vec::with_capacity(workers);
    for w in 0..workers {
        per_worker.push(ports.queues(w as u16)?);
    }

    let stop = AtomicBool::new(false);
    let last_rx = AtomicU64::new(0);
    let start = Instant::now();
    // Starts the process-wide clock now_ns() counts from, so that 0 means
    // "nothing received yet".
    let _ = now_ns();
    let idle = cfg.idle;
    let tables = &tables;
    let (stop, last_rx) = (&stop, &last_rx);

    tracing::info!(node = %cfg.name, workers, "DPDK workers polling");
    let stats: Vec<Result<WorkerStats, RunError>> = std::thread::scope(|scope| {
        let mut queues = per_worker.into_iter();
        let mine = queues.next().unwrap_or_default();
        let mut handles = Vec::new();
        for (i, q) in queues.enumerate() {
            let w = i + 1;
            let core = cfg.cores.get(w).copied();
            let eal = *eal;
            let spawned = std::thread::Builder::new()
                .name(format!("worker{w}"))
                .spawn_scoped(scope, move || -> Result<WorkerStats, RunError> {
                    if let Some(c) = core {
                        if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
                            tracing::warn!(worker = w, core = c, "could not pin the worker");
                        }
                    }
                    eal.register_thread()?;
                    let mut worker = Worker::new(q);
                    poll_loop(&mut worker, tables, idle, stop, last_rx, None);
                    let s = worker.stats.clone();
                    drop(worker);
                    eal.unregister_thread();
                    Ok(s)
                });
            match spawned {
                Ok(h) => handles.push((w, h)),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    handles.clear();
                    return vec![Err(RunError::Worker(w, e.to_string()))];
                }
            }
        }
        let mut worker = Worker::new(mine);
        let control = Control {
            start,
            duration: opts.duration,
            until_idle: opts.until_idle,
        };
        poll_loop(&mut worker, tables, idle, stop, last_rx, Some(&control));
        let mut out = vec![Ok(worker.stats.clone())];
        drop(worker);
        for (w, h) in handles {
            out.push(
                h.join()
                    .unwrap_or_else(|_| Err(RunError::Worker(w, "panicked".into()))),
            );
        }
        out
    });
    let elapsed = start.elapsed();

    let mut merged = WorkerStats::new(cfg.ports.len());
    for s in stats {
        merged.merge(&s?);
    }
    let devices = ports
        .devices()
        .iter()
        .map(|d| d.stats())
        .collect::<Result<Vec<_>, _>>()?;
    ports.close()?;
    Ok(RunReport {
        report: ReplayReport {
            node: cfg.name.clone(),
            port_names: cfg.ports.iter().map(|p| p.name.clone()).collect(),
            stats: merged,
            elapsed,
        },
        devices,
        workers,
    })
}

/// What worker 0 checks to end the run.
struct Control {
    start: Instant,
    duration: Option<Duration>,
    until_idle: Option<Duration>,
}

impl Control {
    fn should_stop(&self, last_rx: u64) -> bool {
        if self.duration.is_some_and(|d| self.start.elapsed() >= d) {
            return true;
        }
        match self.until_idle {
            Some(idle) if last_rx > 0 => now_ns().saturating_sub(last_rx) >= idle.as_nanos() as u64,
            // Nothing received yet: keep waiting for the first frame.
            _ => false,
        }
    }
}

/// Polls until `stop`; worker 0 (with `control`) raises it.
fn poll_loop(
    w: &mut Worker<super::ethdev::DpdkPort>,
    tables: &Tables,
    idle: Idle,
    stop: &AtomicBool,
    last_rx: &AtomicU64,
    control: Option<&Control>,
) {
    let mut empty = 0u32;
    let mut polls = 0u32;
    loop {
        polls = polls.wrapping_add(1);
        if polls & 1023 == 0 {
            if let Some(c) = control {
                if c.should_stop(last_rx.load(Ordering::Relaxed)) {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
        }
        if w.poll(tables) > 0 {
            last_rx.store(now_ns(), Ordering::Relaxed);
            empty = 0;
        } else {
            empty = empty.saturating_add(1);
            if idle == Idle::Adaptive && empty > 256 {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }
}
