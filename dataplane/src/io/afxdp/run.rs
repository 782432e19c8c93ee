//! Running a node over AF_XDP: one worker per configured core, each
//! polling its own socket on every port, all reading one table snapshot.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::error::AfXdpError;
use super::node::AfXdpNode;
use super::port::AfXdpPort;
use super::socket::{BindMode, XskStats};
use crate::config::{Idle, NodeConfig};
use crate::replay::ReplayReport;
use crate::tables::{TableError, Tables};
use crate::worker::{now_ns, Worker, WorkerStats};

/// When a run ends.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop once nothing has been received for this long (after the first frame).
    pub until_idle: Option<Duration>,
}

/// One socket's state at the end of a run.
#[derive(Clone, Debug)]
pub struct SocketReport {
    /// Port name.
    pub port: String,
    /// Interface and queue.
    pub iface: String,
    /// Queue id.
    pub queue: u32,
    /// Bind mode.
    pub mode: BindMode,
    /// The kernel's counters.
    pub stats: XskStats,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Counters of all workers, merged, with wall time.
    pub report: ReplayReport,
    /// Every socket's kernel counters.
    pub sockets: Vec<SocketReport>,
    /// Workers that ran.
    pub workers: usize,
}

impl RunReport {
    /// A compact human-readable report.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = format!("{} worker(s)\n{}", self.workers, self.report.render());
        for k in &self.sockets {
            let t = &k.stats;
            let _ = writeln!(
                s,
                "  xsk  {:<8} {}:{} {} rx_dropped {} rx_ring_full {} fill_empty {} rx_invalid {} tx_invalid {}",
                k.port,
                k.iface,
                k.queue,
                k.mode,
                t.rx_dropped,
                t.rx_ring_full,
                t.rx_fill_ring_empty_descs,
                t.rx_invalid_descs,
                t.tx_invalid_descs
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
    /// AF_XDP failed.
    #[error(transparent)]
    AfXdp(#[from] AfXdpError),
    /// A worker thread could not be started or panicked.
    #[error("worker {0}: {1}")]
    Worker(usize, String),
}

/// Runs the node `cfg` describes over AF_XDP sockets on its ports'
/// interfaces until `opts` says stop. Worker 0 runs on the calling thread
/// (pinned to the node's first core, if any), the others on threads
/// pinned to the following cores.
pub fn run_node(cfg: &NodeConfig, opts: &RunOptions) -> Result<RunReport, RunError> {
    let tables = Tables::from_config(cfg, 1)?;
    let workers = cfg.cores.len().max(1);
    let node = AfXdpNode::open(cfg, workers)?;
    let per_worker = node.into_workers();
    if let Some(&c) = cfg.cores.first() {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
            tracing::warn!(worker = 0, core = c, "could not pin the worker");
        }
    }

    let stop = AtomicBool::new(false);
    let last_rx = AtomicU64::new(0);
    let start = Instant::now();
    let _ = now_ns();
    let idle = cfg.idle;
    let tables = &tables;
    let (stop, last_rx) = (&stop, &last_rx);
    tracing::info!(node = %cfg.name, workers, "AF_XDP workers polling");

    type Out = Result<(WorkerStats, Vec<AfXdpPort>), RunError>;
    let results: Vec<Out> = std::thread::scope(|scope| {
        let mut queues = per_worker.into_iter();
        let mine = queues.next().unwrap_or_default();
        let mut handles = Vec::new();
        for (i, q) in queues.enumerate() {
            let w = i + 1;
            let core = cfg.cores.get(w).copied();
            let spawned = std::thread::Builder::new()
                .name(format!("worker{w}"))
                .spawn_scoped(scope, move || -> Out {
                    if let Some(c) = core {
                        if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
                            tracing::warn!(worker = w, core = c, "could not pin the worker");
                        }
                    }
                    let mut worker = Worker::new(q);
                    poll_loop(&mut worker, tables, idle, stop, last_rx, None);
                    let s = worker.stats.clone();
                    Ok((s, worker.into_ports()))
                });
            match spawned {
                Ok(h) => handles.push((w, h)),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
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
        let mut out = vec![Ok((worker.stats.clone(), worker.into_ports()))];
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
    let mut sockets = Vec::new();
    for r in results {
        let (s, ports) = r?;
        merged.merge(&s);
        for p in &ports {
            sockets.push(SocketReport {
                port: p.name().to_string(),
                iface: p.iface().to_string(),
                queue: p.queue(),
                mode: p.mode(),
                stats: p.stats(),
            });
        }
    }
    Ok(RunReport {
        report: ReplayReport {
            node: cfg.name.clone(),
            port_names: cfg.ports.iter().map(|p| p.name.clone()).collect(),
            stats: merged,
            elapsed,
        },
        sockets,
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
            _ => false,
        }
    }
}

/// Polls until `stop`; worker 0 (with `control`) raises it.
fn poll_loop(
    w: &mut Worker<AfXdpPort>,
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
                // Let the kernel send what is still queued.
                let deadline = Instant::now() + Duration::from_millis(100);
                while w.ports().iter().any(|p| p.tx_pending() > 0) && Instant::now() < deadline {
                    w.poll(tables);
                }
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
