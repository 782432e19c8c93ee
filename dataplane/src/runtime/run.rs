//! Starting a node's threads on their cores, watching them, and stopping
//! them: the runtime's entry point, [`run`].

use super::backend::Backend;
use super::hub::{StatsHub, WorkerRole};
use super::layout::Layout;
use super::pipeline::{self, PipeQueues};
use super::run_to_completion::worker_loop;
use super::snapshot::NodeSnapshot;
use super::table_store::TableStore;
use crate::config::Idle;
use crate::worker::{now_ns, Worker, WorkerStats};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How a run proceeds and when it ends (besides `stop`).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Polling policy of every thread.
    pub idle: Idle,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop once nothing has been received for this long (counted from the
    /// first frame).
    pub until_idle: Option<Duration>,
    /// How often the supervisor refreshes device counters and calls
    /// `on_tick` (zero: every [`TICK`]).
    pub tick_every: Duration,
    /// The channel to the node's control thread (`None`: frames for the
    /// node are dropped as `punt_full`).
    pub channels: Option<std::sync::Arc<Channels>>,
    /// The node's last words: asked for when the run ends, the workers
    /// still running (at most [`super::FAREWELL_MAX`]).
    pub farewell: Option<std::sync::Arc<super::Farewell>>,
}

/// Every worker's end of the channel to the control thread, in worker
/// order (pipeline pairs share their I/O worker's), and the policer's rates.
#[derive(Debug)]
pub struct Channels {
    /// One per worker thread index.
    pub workers: Vec<std::sync::Arc<crate::control::channel::WorkerChannel>>,
    /// Rates of each worker's policer.
    pub punt: crate::config::PuntConfig,
}

impl Channels {
    /// Channels for `threads` worker threads under `punt`'s settings.
    pub fn new(threads: usize, punt: crate::config::PuntConfig) -> Self {
        Channels {
            workers: (0..threads)
                .map(|_| {
                    std::sync::Arc::new(crate::control::channel::WorkerChannel::new(
                        punt.queue as usize,
                    ))
                })
                .collect(),
            punt,
        }
    }

    /// Worker `index`'s handle: its queues and a fresh policer.
    pub fn path(&self, index: usize) -> Option<crate::control::channel::PuntPath> {
        Some(crate::control::channel::PuntPath {
            channel: self.workers.get(index)?.clone(),
            policer: crate::control::channel::Policer::new(&self.punt),
        })
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The backend failed (opening queues, registering a thread, closing).
    #[error("{backend} backend: {source}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// What went wrong.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The backend's ports do not match the tables'.
    #[error("the backend has {backend} ports, the tables name {tables}")]
    Ports {
        /// Ports the backend opened.
        backend: usize,
        /// Ports the tables use.
        tables: usize,
    },
    /// A thread could not be started.
    #[error("starting worker {0}: {1}")]
    Spawn(usize, std::io::Error),
    /// A thread panicked.
    #[error("worker {0} panicked")]
    Panicked(usize),
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// Final counters of every thread (exact: taken after they ended),
    /// the devices' counters and, after `finish`, the buffer pool.
    pub snapshot: NodeSnapshot,
    /// Time from start to the last thread's end.
    pub elapsed: Duration,
}

/// How often the supervising thread looks at the clock, the stop flag and
/// the hub.
pub const TICK: Duration = Duration::from_millis(10);

fn backend_err<B: Backend>(b: &B, e: B::Error) -> RuntimeError {
    RuntimeError::Backend {
        backend: b.name(),
        source: Box::new(e),
    }
}

fn pin(core: Option<usize>, index: usize) {
    if let Some(c) = core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
            tracing::warn!(
                worker = index,
                core = c,
                "could not pin the worker to its core"
            );
        }
    }
}

/// Runs the threads `layout` describes over `backend` (opened with
/// `layout.queues()` queue pairs per port) until `stop` is raised (by a
/// signal handler, by the caller) or `opts` says the time is up.
///
/// The calling thread supervises: every [`TICK`] it checks the end
/// conditions and the SAs' lifetimes ([`super::lifetimes::watch`]), and
/// about every `opts.tick_every` refreshes the hub's device counters and
/// table epoch and calls `on_tick` (print stats, apply a reload). On
/// stop, the node's last words are said first if `opts.farewell` asks for
/// them (the workers still carry them); then each thread stops receiving,
/// hands back what is in flight
/// (pipeline queues drain through TX) and publishes its final counters;
/// the backend then finishes (closing devices, returning buffers) and the
/// final snapshot is returned.
pub fn run<B: Backend>(
    backend: &mut B,
    layout: &Layout,
    store: &TableStore,
    hub: &StatsHub,
    stop: &AtomicBool,
    opts: &RunOptions,
    mut on_tick: impl FnMut(&StatsHub),
) -> Result<RunSummary, RuntimeError> {
    let nports = backend.port_count();
    let tables_ports = store.load().port_names.len();
    if nports != tables_ports {
        return Err(RuntimeError::Ports {
            backend: nports,
            tables: tables_ports,
        });
    }
    // Start the process-wide clock so that 0 means "nothing received yet".
    let _ = now_ns();
    let mut queue_sets = Vec::with_capacity(layout.queues());
    for q in 0..layout.queues() {
        queue_sets.push(
            backend
                .worker_ports(q)
                .map_err(|e| backend_err(backend, e))?,
        );
    }
    let b: &B = backend;
    let idle = opts.idle;
    let channels = opts.channels.as_deref();
    let start = Instant::now();
    hub.set_table_epoch(store.epoch());

    let pipes: Vec<PipeQueues<<B::Port as crate::io::Port>::Frame>> = (0..queue_sets.len())
        .map(|_| PipeQueues::default())
        .collect();
    let pipes = &pipes;
    // The workers' own stop: after the node's last words.
    let halt = AtomicBool::new(false);
    let halt = &halt;
    let results: Vec<(usize, Result<WorkerStats, RuntimeError>)> = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        let threads = layout.threads();
        let mut queue_sets = queue_sets.into_iter();
        for info in threads {
            let (index, core, role) = (info.index, info.core, info.role);
            let ports = match role {
                WorkerRole::Crypto => None,
                _ => queue_sets.next(),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("worker{index}"))
                .spawn_scoped(scope, move || -> Result<WorkerStats, RuntimeError> {
                    pin(core, index);
                    if let Err(e) = b.thread_start(index) {
                        stop.store(true, Ordering::Relaxed);
                        halt.store(true, Ordering::Relaxed);
                        // Do not leave a pipeline partner waiting.
                        match role {
                            WorkerRole::Io => pipes[index / 2].io_done_now(),
                            WorkerRole::Crypto => pipes[index / 2].crypto_gone_now(),
                            WorkerRole::RunToCompletion => {}
                        }
                        return Err(backend_err(b, e));
                    }
                    // The worker that owns the ports owns their channel.
                    let worker = ports.map(|p| {
                        let mut w = Worker::new(p);
                        if let Some(path) = channels.and_then(|c| c.path(index)) {
                            w.set_punt_path(path);
                        }
                        w
                    });
                    let stats = match (role, worker) {
                        (WorkerRole::RunToCompletion, Some(w)) => {
                            worker_loop(w, store, hub, index, idle, halt)
                        }
                        (WorkerRole::Io, Some(w)) => {
                            pipeline::io_loop(w, &pipes[index / 2], store, hub, index, idle, halt)
                        }
                        _ => pipeline::crypto_loop(&pipes[index / 2], hub, index, idle, nports),
                    };
                    b.thread_stop(index);
                    Ok(stats)
                });
            match spawned {
                Ok(h) => handles.push((index, h)),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    halt.store(true, Ordering::Relaxed);
                    for p in pipes {
                        p.io_done_now();
                        p.crypto_gone_now();
                    }
                    let mut out: Vec<_> = handles
                        .into_iter()
                        .map(|(i, h)| (i, h.join().unwrap_or(Err(RuntimeError::Panicked(i)))))
                        .collect();
                    out.push((index, Err(RuntimeError::Spawn(index, e))));
                    return out;
                }
            }
        }

        // Supervise.
        let mut next_tick = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) || handles.iter().any(|(_, h)| h.is_finished()) {
                break;
            }
            if opts.duration.is_some_and(|d| start.elapsed() >= d) {
                break;
            }
            if let Some(idle_for) = opts.until_idle {
                let last = hub.last_rx_ns();
                if last > 0 && now_ns().saturating_sub(last) >= idle_for.as_nanos() as u64 {
                    break;
                }
            }
            // SA lifetimes: time limits ticked, levels reached logged once.
            super::lifetimes::watch(&store.load(), Instant::now());
            if Instant::now() >= next_tick {
                hub.set_devices(b.device_counters(), b.buffers());
                hub.set_table_epoch(store.epoch());
                store.reclaim();
                on_tick(hub);
                next_tick += opts.tick_every.max(TICK);
            }
            std::thread::sleep(TICK);
        }
        stop.store(true, Ordering::Relaxed);
        if let Some(f) = &opts.farewell {
            let workers_up = !handles.iter().any(|(_, h)| h.is_finished());
            if workers_up && !f.ask_and_wait(super::FAREWELL_MAX) {
                tracing::warn!(
                    "the node's last words were not said within {:?}",
                    super::FAREWELL_MAX
                );
            }
        }
        halt.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|(i, h)| (i, h.join().unwrap_or(Err(RuntimeError::Panicked(i)))))
            .collect()
    });
    let elapsed = start.elapsed();
    // What the last bursts reached.
    super::lifetimes::watch(&store.load(), Instant::now());
    let mut first_err = None;
    for (_, r) in results {
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    let devices = b.device_counters();
    backend.finish().map_err(|e| backend_err(backend, e))?;
    hub.set_devices(devices, backend.buffers());
    hub.set_table_epoch(store.epoch());
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(RunSummary {
        snapshot: hub.snapshot(),
        elapsed,
    })
}
