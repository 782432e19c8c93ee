//! Run-to-completion vs pipeline, through the real runtime, in one run.
//!
//! Gateway A (LPM classify, ESP AES-GCM encrypt, MPLS push) over a
//! self-feeding in-process backend: its LAN port hands out copies of one
//! test frame as fast as it is polled (like DPDK's `net_null,copy=1`), its
//! uplink recycles what it is sent. No feeder thread competes for the
//! cores. At 64 B and 1420 B frames it runs, for the same time each:
//!
//! - `rtc x1`: one worker, run-to-completion (the baseline);
//! - `rtc x2`: two workers on two cores, each with its own queue (RSS);
//! - `pipeline`: one I/O core + one crypto core sharing one queue.
//!
//! and prints Mpps and the ratios to the baseline. Pipeline wins where the
//! AEAD dominates and flows cannot be spread over queues; run-to-completion
//! on every core wins where RSS can spread them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use crossbeam::queue::ArrayQueue;
use meshplane::chain::default_chain;
use meshplane::config::{Idle, Mode};
use meshplane::frame::{Batch, HeapFrame};
use meshplane::gen::{build_packet, FrameSize, GenSpec};
use meshplane::io::Port;
use meshplane::runtime::{run, Backend, Layout, RunOptions, StatsHub, TableStore};
use meshplane::tables::Tables;

#[derive(Parser)]
#[command(about = "Run-to-completion vs pipeline through the runtime (gateway encrypt)")]
struct Args {
    /// Two cores to run on (default: the first two this process may use).
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Idle policy of the workers: busy or adaptive.
    #[arg(long, default_value = "busy")]
    idle: String,
}

/// Frames in circulation per queue.
const POOL: usize = 4096;

/// One queue of one port: the source hands out copies of `template`; every
/// port's TX returns frames to the queue's pool.
struct LoopPort {
    pool: Arc<ArrayQueue<HeapFrame>>,
    template: Option<Arc<[u8]>>,
}

impl Port for LoopPort {
    type Frame = HeapFrame;

    fn rx_burst(&mut self, batch: &mut Batch<HeapFrame>) -> usize {
        let Some(t) = &self.template else { return 0 };
        let mut n = 0;
        while batch.room() > 0 {
            let Some(mut f) = self.pool.pop() else { break };
            f.reset_from(t);
            let _ = batch.push(f);
            n += 1;
        }
        n
    }

    fn tx_burst(&mut self, batch: &mut Batch<HeapFrame>) -> usize {
        let n = batch.len();
        for f in batch.consume_front(n) {
            let _ = self.pool.push(f);
        }
        n
    }
}

/// `queues` self-feeding queue sets of a two-port node (port 0 the source).
struct LoopBackend {
    sets: Mutex<Vec<Option<Vec<LoopPort>>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("queue {0} does not exist or is taken")]
struct NoQueue(usize);

impl LoopBackend {
    fn new(queues: usize, template: &[u8]) -> Self {
        let t: Arc<[u8]> = template.into();
        let sets = (0..queues)
            .map(|_| {
                let pool = Arc::new(ArrayQueue::new(POOL));
                for _ in 0..POOL {
                    let _ = pool.push(HeapFrame::from_bytes(template));
                }
                Some(vec![
                    LoopPort {
                        pool: pool.clone(),
                        template: Some(t.clone()),
                    },
                    LoopPort {
                        pool,
                        template: None,
                    },
                ])
            })
            .collect();
        LoopBackend {
            sets: Mutex::new(sets),
        }
    }
}

impl Backend for LoopBackend {
    type Port = LoopPort;
    type Error = NoQueue;
    fn name(&self) -> &'static str {
        "loop"
    }
    fn port_count(&self) -> usize {
        2
    }
    fn worker_ports(&self, worker: usize) -> Result<Vec<LoopPort>, NoQueue> {
        let mut sets = self.sets.lock().map_err(|_| NoQueue(worker))?;
        sets.get_mut(worker)
            .and_then(Option::take)
            .ok_or(NoQueue(worker))
    }
}

fn measure(
    cores: &[usize],
    mode: Mode,
    idle: Idle,
    size: usize,
    seconds: f64,
) -> Result<(f64, f64)> {
    let hops = default_chain().context("embedded chain")?;
    let cfg = &hops[0].node;
    let spec = GenSpec {
        size: FrameSize::Fixed(size),
        ..GenSpec::default()
    };
    let frame = build_packet(&spec, 0).map_err(anyhow::Error::msg)?;
    let layout = Layout::new(cores, mode)?;
    let mut backend = LoopBackend::new(layout.queues(), &frame);
    let store = TableStore::new(Tables::from_config(cfg, 1)?);
    let names = cfg.ports.iter().map(|p| p.name.clone()).collect();
    let hub = StatsHub::new(&cfg.name, mode, names, layout.threads().to_vec());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let opts = RunOptions {
        idle,
        duration: Some(Duration::from_secs_f64(seconds)),
        ..RunOptions::default()
    };
    let s = run(&mut backend, &layout, &store, &hub, &stop, &opts, |_| {})?;
    let t = &s.snapshot.total;
    if t.drops.total() > 0 {
        bail!(
            "{mode:?} at {size} B: {} drops: {:?}",
            t.drops.total(),
            t.drops
        );
    }
    let secs = s.elapsed.as_secs_f64();
    let mpps = t.tx_packets() as f64 / secs / 1e6;
    let p99 = if t.latency.is_empty() {
        0.0
    } else {
        t.latency.value_at_quantile(0.99) as f64 / 1000.0
    };
    Ok((mpps, p99))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cores: Vec<usize> = if args.cores.is_empty() {
        core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .take(2)
            .collect()
    } else {
        args.cores.clone()
    };
    if cores.len() != 2 {
        bail!("needs two cores, have {cores:?}");
    }
    let idle = match args.idle.as_str() {
        "busy" => Idle::Busy,
        "adaptive" => Idle::Adaptive,
        other => bail!("--idle {other}: busy or adaptive"),
    };
    println!(
        "gateway A encrypt through the runtime, {:.1} s each, cores {cores:?}, idle {}",
        args.seconds, args.idle
    );
    println!(
        "{:>6}  {:<10} {:>8} {:>9} {:>12}",
        "size", "mode", "Mpps", "x rtc1", "p99 lat us"
    );
    for size in [64usize, 1420] {
        let (base, p99) = measure(&cores[..1], Mode::RunToCompletion, idle, size, args.seconds)?;
        println!(
            "{size:>6}  {:<10} {base:>8.3} {:>9.2} {p99:>12.1}",
            "rtc x1", 1.0
        );
        for (name, c, mode) in [
            ("rtc x2", &cores[..], Mode::RunToCompletion),
            ("pipeline", &cores[..], Mode::Pipeline),
        ] {
            let (mpps, p99) = measure(c, mode, idle, size, args.seconds)?;
            println!(
                "{size:>6}  {name:<10} {mpps:>8.3} {:>9.2} {p99:>12.1}",
                mpps / base.max(1e-9)
            );
        }
    }
    Ok(())
}
