//! Runs exactly `--packets` frames through each stage of one role, one
//! `#[inline(never)]` function per stage, for instruction counting
//! under `valgrind --tool=callgrind`: a function's inclusive count divided
//! by the packet count is that stage's instructions per packet.
//! `perf/callgrind.sh` builds, runs and tabulates it.
//!
//! The stages run in `stage::process`'s order over batches of 32, each
//! against its node's tables, so a stage that has nothing to do for a role
//! still costs its walk over the verdicts, as in the pipeline. `*_poll`
//! is the production loop (`Worker::poll` over memory ports: RX burst,
//! every stage, counters, latency stamps, TX burst) for the same frames.

use anyhow::{Context, Result};
use clap::Parser;
use meshplane::frame::{Batch, HeapFrame, BURST};
use meshplane::gen::FrameSize;
use meshplane::io::memory::MemoryPort;
use meshplane::stage;
use meshplane::tables::Tables;
use meshplane::worker::Worker;
use meshplane_perf::scenario::{prepare, Prepared, Role};
use meshplane_perf::traffic::{Traffic, TrafficSource};
use std::hint::black_box;

#[derive(Parser)]
#[command(about = "Fixed packet counts through each stage, for callgrind")]
struct Args {
    /// Frames per role (a multiple of 32 divides cleanly).
    #[arg(long, default_value_t = 3200)]
    packets: u64,
    /// Frame size: 64, 512, 1420, imix or a number.
    #[arg(long, default_value = "64")]
    size: FrameSize,
    /// Role: gateway-ingress, satellite-transit or gateway-egress.
    #[arg(long, default_value = "gateway-ingress")]
    role: Role,
}

/// Copies the next templates into the batch's frames (the NIC's DMA).
#[inline(never)]
fn refill(batch: &mut Batch<HeapFrame>, pool: &mut Vec<HeapFrame>, t: &Traffic, first: usize) {
    for i in first..(first + BURST).min(t.len()) {
        let mut f = pool.pop().unwrap_or_else(|| HeapFrame::with_room(4096));
        f.reset_from(t.frame(i));
        let _ = batch.push(f);
    }
}

macro_rules! stages {
    ($($fn_name:ident => $stage:path),* $(,)?) => {
        $(
            #[inline(never)]
            fn $fn_name(b: &mut Batch<HeapFrame>, t: &Tables) {
                $stage(b, t);
            }
        )*
    };
}

// One function per stage. Functions with identical bodies are merged by the
// compiler, so each process counts one role (`--role`).
stages! {
    dispatch => stage::dispatch::run,
    lfib => stage::mpls::lfib,
    classify => stage::classify::run,
    encrypt => stage::esp::encrypt,
    push => stage::mpls::push,
    decrypt => stage::esp::decrypt,
    deliver => stage::deliver::run,
}

/// The stages in `stage::process`'s order.
const STAGES: [fn(&mut Batch<HeapFrame>, &Tables); 7] =
    [dispatch, lfib, classify, encrypt, push, decrypt, deliver];

/// Every stage over the role's frames, one batch at a time.
fn run_stages(p: &Prepared, n: usize) -> Result<u64> {
    let tables = Tables::from_config(&p.hops[0].node, 1)?;
    let mut pool: Vec<HeapFrame> = (0..BURST).map(|_| HeapFrame::with_room(4096)).collect();
    let mut batch = Batch::new();
    let mut sent = 0u64;
    for first in (0..n).step_by(BURST) {
        refill(&mut batch, &mut pool, &p.input, first);
        for f in STAGES {
            f(&mut batch, &tables);
        }
        sent += batch
            .verdicts()
            .iter()
            .filter(|v| matches!(v, meshplane::frame::Verdict::Tx(_)))
            .count() as u64;
        pool.append(batch.frames_vec_mut());
    }
    Ok(sent)
}

/// The production loop's one poll.
#[inline(never)]
fn poll(w: &mut Worker<MemoryPort>, t: &Tables) -> usize {
    w.poll(t)
}

/// The production loop over the same frames.
fn run_worker(p: &Prepared, n: usize) -> Result<u64> {
    let tables = Tables::from_config(&p.hops[0].node, 1)?;
    let hop = &p.hops[0];
    let ports: Vec<MemoryPort> = (0..hop.node.ports.len())
        .map(|_| {
            MemoryPort::new(
                meshplane::io::memory::ring(BURST),
                meshplane::io::memory::ring(4 * BURST),
            )
        })
        .collect();
    let (rx_ring, tx_ring) = (
        ports[hop.rx_port].rx_ring().clone(),
        ports[hop.tx_port].tx_ring().clone(),
    );
    let mut w = Worker::new(ports);
    let mut pool: Vec<HeapFrame> = (0..2 * BURST).map(|_| HeapFrame::with_room(4096)).collect();
    let mut batch = Batch::new();
    for first in (0..n).step_by(BURST) {
        refill(&mut batch, &mut pool, &p.input, first);
        for f in batch.frames_vec_mut().drain(..) {
            let _ = rx_ring.push(f);
        }
        poll(&mut w, &tables);
        while let Some(f) = tx_ring.pop() {
            pool.push(f);
        }
    }
    Ok(w.stats.tx_packets())
}

fn main() -> Result<()> {
    let a = Args::parse();
    let lan = TrafficSource::Generator {
        size: a.size,
        frames: a.packets,
        flows: 16,
    }
    .load()?;
    let n = lan.len();
    {
        let role = a.role;
        if role == Role::Chain {
            anyhow::bail!("--role chain: count the three roles one by one");
        }
        let p = prepare(role, &lan).with_context(|| role.name())?;
        let staged = black_box(run_stages(&p, n)?);
        let polled = black_box(run_worker(&p, n)?);
        println!(
            "{:<18} {n} frames: {staged} sent by the stages, {polled} by Worker::poll",
            role.name()
        );
    }
    Ok(())
}
