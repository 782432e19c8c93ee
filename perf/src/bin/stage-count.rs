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
use meshplane::frame::{Batch, HeapFrame, Verdict, BURST};
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

/// One batch walk per stage: the frames whose verdict names the stage go
/// through its per-frame step (as `stage::process` runs them, without the
/// bitmask that lets it skip finished frames).
macro_rules! stages {
    ($($fn_name:ident => |$f:ident, $v:ident, $t:ident, $mac:ident| $step:expr),* $(,)?) => {
        $(
            #[inline(never)]
            fn $fn_name(b: &mut Batch<HeapFrame>, $t: &Tables) {
                // The receiving port's MAC, as `stage::process` finds it.
                let $mac = &$t.port_macs[usize::from(b.rx_port())];
                for ($f, $v) in b.iter_mut() {
                    if let Some(next) = $step {
                        *$v = next;
                    }
                }
            }
        )*
    };
}

stages! {
    dispatch => |f, v, t, mac| (*v == Verdict::Input).then(|| stage::dispatch::dispatch(f, t, 0, mac)),
    // The transit swap first, then the general switch, as `stage::process`;
    // a fresh memo per frame counts a frame that needs its own lookup.
    lfib => |f, v, t, mac| (*v == Verdict::Lfib).then(|| {
        stage::mpls::swap_untagged(f, t, mac, &mut stage::mpls::SwapMemo::default())
            .map_or_else(|| stage::mpls::switch(f, t), Verdict::Tx)
    }),
    classify => |f, v, t, _mac| (*v == Verdict::Classify).then(|| stage::classify::classify(f, t)),
    deliver => |f, v, t, _mac| (*v == Verdict::Deliver).then(|| stage::deliver::deliver(f, t)),
}

/// Encryption reserves the batch's sequence numbers once, as the pipeline does.
#[inline(never)]
fn encrypt(b: &mut Batch<HeapFrame>, t: &Tables) {
    let n = b
        .verdicts()
        .iter()
        .filter(|v| matches!(v, Verdict::Encrypt(_)))
        .count() as u64;
    let mut seqs = stage::esp::SeqCache::new(n);
    for (f, v) in b.iter_mut() {
        if let Verdict::Encrypt(fec) = *v {
            *v = stage::esp::encrypt(f, t, fec, &mut seqs);
        }
    }
}

/// Decryption looks each run of frames' SA up once, as the pipeline does.
#[inline(never)]
fn decrypt(b: &mut Batch<HeapFrame>, t: &Tables) {
    let mut sas = stage::esp::InboundCache::default();
    for (f, v) in b.iter_mut() {
        if *v == Verdict::Decrypt {
            *v = stage::esp::decrypt(f, t, &mut sas);
        }
    }
}

/// The stages in `stage::process`'s order.
const STAGES: [fn(&mut Batch<HeapFrame>, &Tables); 6] =
    [dispatch, lfib, classify, encrypt, decrypt, deliver];

/// Every stage over the role's frames, one batch at a time.
fn run_stages(p: &Prepared, n: usize) -> Result<u64> {
    let tables = Tables::from_config(&p.hops[0].node, 1)?;
    let mut pool: Vec<HeapFrame> = (0..BURST).map(|_| HeapFrame::with_room(4096)).collect();
    let mut batch = Batch::new();
    batch.set_rx_port(p.hops[0].rx_port as u16);
    let mut sent = 0u64;
    for first in (0..n).step_by(BURST) {
        refill(&mut batch, &mut pool, &p.input, first);
        for f in STAGES {
            f(&mut batch, &tables);
        }
        sent += batch
            .verdicts()
            .iter()
            .filter(|v| matches!(v, Verdict::Tx(_)))
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
    // As `meshplane run` does: the channel to the control thread, whose
    // inject queue the worker looks at every poll.
    let channels = meshplane::runtime::Channels::new(1, meshplane::config::PuntConfig::default());
    if let Some(path) = channels.path(0) {
        w.set_punt_path(path);
    }
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
        // The worker's burst clock calibrates itself on its first reading:
        // take that here, outside the counted calls.
        black_box(meshplane::worker::now_ns());
        let staged = black_box(run_stages(&p, n)?);
        let polled = black_box(run_worker(&p, n)?);
        println!(
            "{:<18} {n} frames: {staged} sent by the stages, {polled} by Worker::poll",
            role.name()
        );
    }
    Ok(())
}
