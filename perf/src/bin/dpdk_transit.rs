//! Transit label swap over DPDK against a bare RX->TX loop, in one run.
//!
//! Over `net_ring` (a loopback ring pre-filled with frames that circulate)
//! and `net_null` (RX allocates frames from a pool primed with the test
//! frame, TX frees them), on one core at 64-byte frames:
//!
//! - `bare`: `rx_burst` -> `tx_burst`, the I/O ceiling (the RX walk
//!   included: it reads each mbuf header for the segment count and
//!   prefetches the frame's first line);
//! - `touch`: `rx_burst` -> read each frame's Ethernet type -> `tx_burst`,
//!   the least any forwarder does (brings every frame into the cache);
//! - `min swap`: a minimal inline MPLS label swap (LFIB lookup, TTL - 1,
//!   next-hop MAC rewrite), the least a transit hop can do;
//! - `transit`: the data plane's own stages (`stage::process_one_port`)
//!   against a satellite's tables, the batch sent whole when they say it
//!   went out of one port, as a worker does;
//! - `worker`: the production loop, `Worker::poll` (the same stages plus
//!   counters, latency stamps and per-port TX batching).
//!
//! Prints Mpps of each, per backend, and the ratios transit / bare,
//! transit / touch, transit / min swap and worker / bare (the figures that
//! matter on a shared, noisy machine). Rates count frames per second the
//! thread spent on a CPU (the scheduler's pauses are the neighbours', not
//! ours); every round runs each loop once, back to back, and a ratio is
//! the median over rounds of the ratio within a round, with the lowest and
//! highest beside it, so a noisy spell hits both sides of a ratio alike.
//!
//! Reading them: on `net_ring` the bare loop only moves mbuf pointers
//! between two rings and reads their headers, about 26 instructions a
//! frame, so even `touch` (one byte of each frame read) runs at about
//! 0.7x of it; there transit / touch and transit / min swap say how close
//! the stages come to what any forwarder must do. `net_null` allocates
//! and frees an mbuf per frame, a per-frame cost closer to a NIC's. The
//! frames circulate, so their TTL runs out every 254 hops; the bench then
//! re-injects them with a fresh TTL as a traffic generator would
//! (counted, about 0.4 % of frames).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use meshplane::config::NodeConfig;
use meshplane::drop_reason::DropReason;
use meshplane::frame::{Batch, Frame, PortId, Verdict};
use meshplane::io::dpdk::{DpdkPort, EalBuilder, EthDev, EthDevConfig, Mbuf, MemoryMode, Mempool};
use meshplane::io::Port;
use meshplane::stage;
use meshplane::tables::Tables;
use meshplane::worker::Worker;
use meshplane_perf::cputime::CpuClock;

#[derive(Parser)]
#[command(about = "DPDK transit label swap vs bare RX->TX loop (net_ring, net_null)")]
struct Args {
    /// Core to run on (the EAL main lcore).
    #[arg(long)]
    core: Option<usize>,
    /// Seconds per loop and round.
    #[arg(long, default_value_t = 0.5)]
    seconds: f64,
    /// Rounds per backend, each running every loop once; medians count.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Frames circulating in the net_ring loop.
    #[arg(long, default_value_t = 512)]
    inflight: usize,
    /// Backends to measure: ring, null or both.
    #[arg(long, default_value = "both")]
    backend: String,
    /// Force running without hugepages.
    #[arg(long)]
    no_huge: bool,
    /// Run only this loop (bare, touch, min-swap, transit or worker) for --seconds
    /// and print its rate: for profilers such as `perf record`.
    #[arg(long)]
    only: Option<String>,
}

/// Ethernet (14) + MPLS (4) + IPv4 (20) + UDP (8) + 14 bytes payload: a
/// 64-byte frame on the wire with its FCS.
const FRAME_LEN: usize = 60;
const LABEL_A: u32 = 1002;
const LABEL_B: u32 = 2001;
const INITIAL_TTL: u8 = 255;
/// The MAC of the bench satellite's one port (`SAT_CONFIG`). Frames go
/// round through the port's loop back to it, so each swap addresses the
/// next hop by that MAC again and the frame is taken the next time round.
const PORT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x02];

fn test_frame(label: u32, ttl: u8) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    // To the bench satellite's one port, which takes only its own MAC.
    f[0..6].copy_from_slice(&PORT_MAC);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0x0a, 0x02]);
    f[12..14].copy_from_slice(&0x8847u16.to_be_bytes());
    let entry = (label << 12) | (1 << 8) | ttl as u32;
    f[14..18].copy_from_slice(&entry.to_be_bytes());
    // IPv4: version/IHL, total length 42, TTL 64, UDP, 10.1.0.1 -> 10.2.0.1.
    let ip = &mut f[18..38];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&42u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 1, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 2, 0, 1]);
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = &mut f[38..46];
    udp[0..2].copy_from_slice(&5000u16.to_be_bytes());
    udp[2..4].copy_from_slice(&4789u16.to_be_bytes());
    udp[4..6].copy_from_slice(&22u16.to_be_bytes());
    f
}

/// One LFIB entry of the inline swap: out label, next hop, port.
#[derive(Clone, Copy)]
struct SwapEntry {
    out_label: u32,
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    port: PortId,
}

/// A label-indexed LFIB (direct array, as the data plane's).
struct InlineLfib {
    entries: Vec<Option<SwapEntry>>,
}

impl InlineLfib {
    /// A <-> B, both out of port 0: circulating frames keep being swapped.
    fn ping_pong() -> Self {
        let mut entries = vec![None; 1 << 12];
        let e = |out_label| SwapEntry {
            out_label,
            dst_mac: PORT_MAC,
            src_mac: PORT_MAC,
            port: 0,
        };
        entries[LABEL_A as usize] = Some(e(LABEL_B));
        entries[LABEL_B as usize] = Some(e(LABEL_A));
        InlineLfib { entries }
    }
}

/// A satellite with one port and the same A <-> B swaps, for the real stages.
const SAT_CONFIG: &str = r#"
[node]
name = "bench-sat"
role = "satellite"

[[ports]]
name = "isl0"
mac = "02:00:00:00:01:02"

[[lfib]]
label = 1002
action = "swap"
out_label = 2001
port = "isl0"
next_hop_mac = "02:00:00:00:01:02"

[[lfib]]
label = 2001
action = "swap"
out_label = 1002
port = "isl0"
next_hop_mac = "02:00:00:00:01:02"
"#;

/// A minimal MPLS label swap, the floor for what a transit hop costs: for
/// each frame, check the Ethernet type, look up the top label, drop on TTL
/// expiry, write the new label with TTL - 1 and the next hop's MACs, and
/// set `Tx(port)`.
#[inline]
fn mpls_swap_inline<F: Frame>(batch: &mut Batch<F>, lfib: &InlineLfib) {
    for (f, v) in batch.iter_mut() {
        *v = swap_one(f.data_mut(), lfib);
    }
}

#[inline(always)]
fn swap_one(d: &mut [u8], lfib: &InlineLfib) -> Verdict {
    let Some(hdr) = d.get_mut(..18) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    if hdr[12..14] != [0x88, 0x47] {
        return Verdict::Drop(DropReason::Unsupported);
    }
    let entry = u32::from_be_bytes([hdr[14], hdr[15], hdr[16], hdr[17]]);
    let Some(Some(e)) = lfib.entries.get((entry >> 12) as usize) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    let ttl = entry & 0xff;
    if ttl <= 1 {
        return Verdict::Drop(DropReason::TtlExpired);
    }
    let new = (e.out_label << 12) | (entry & 0xf00) | (ttl - 1);
    hdr[14..18].copy_from_slice(&new.to_be_bytes());
    hdr[0..6].copy_from_slice(&e.dst_mac);
    hdr[6..12].copy_from_slice(&e.src_mac);
    Verdict::Tx(e.port)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bare,
    Touch,
    MinSwap,
    Transit,
}

#[derive(Default, Clone, Copy)]
struct Round {
    packets: u64,
    reinjected: u64,
    dropped: u64,
    /// Wall-clock seconds.
    secs: f64,
    /// Seconds on a CPU (None without a thread CPU clock).
    cpu_secs: Option<f64>,
}

impl Round {
    /// Million frames per on-CPU second (per wall second without a CPU clock).
    fn mpps(&self) -> f64 {
        self.packets as f64 / self.cpu_secs.unwrap_or(self.secs) / 1e6
    }

    /// Stops the clocks of a round that started at `wall` and `cpu`.
    fn finish(&mut self, wall: Instant, cpu: CpuClock) {
        self.secs = wall.elapsed().as_secs_f64();
        self.cpu_secs = cpu.secs();
    }
}

/// Polls `port` for `dur`: RX, then (Swap) the label swap, then TX back
/// out of the same port.
fn run<P: Port<Frame = Mbuf>>(
    port: &mut P,
    mode: Mode,
    lfib: &InlineLfib,
    tables: &Tables,
    dur: Duration,
) -> Round {
    let mut batch: Batch<Mbuf> = Batch::new();
    let mut r = Round::default();
    let cpu = CpuClock::start();
    let start = Instant::now();
    let mut iter = 0u32;
    loop {
        iter = iter.wrapping_add(1);
        if iter & 1023 == 0 && start.elapsed() >= dur {
            break;
        }
        let n = port.rx_burst(&mut batch);
        if n == 0 {
            continue;
        }
        r.packets += n as u64;
        let all_out = match mode {
            Mode::Bare => true,
            Mode::Touch => {
                touch(&batch);
                true
            }
            Mode::MinSwap => {
                mpls_swap_inline(&mut batch, lfib);
                batch.verdicts().iter().all(|v| *v == Verdict::Tx(0))
            }
            // As the worker does: a batch the stages finished as swaps out
            // of one port is sent whole, without reading its verdicts.
            Mode::Transit => {
                stage::process_one_port(&mut batch, tables)
                    == Some(stage::OnePort { port: 0, aside: 0 })
            }
        };
        if !all_out {
            fix_up(&mut batch, &mut r);
        }
        port.tx_burst(&mut batch);
        if !batch.is_empty() {
            r.dropped += batch.len() as u64;
            batch.clear();
        }
    }
    r.finish(start, cpu);
    r
}

/// Reads every frame's Ethernet type, so the frame's first cache line and
/// its mbuf header are loaded as any forwarder would.
#[inline]
fn touch(batch: &Batch<Mbuf>) {
    let mut acc = 0u8;
    for f in batch.frames() {
        acc ^= f.data().get(12).copied().unwrap_or(0);
    }
    std::hint::black_box(acc);
}

/// Re-injects TTL-expired frames as fresh ones (as the generator would
/// send new ones): the whole test frame is written again, wherever the
/// stage left the frame's start. Anything else not switched is dropped.
#[cold]
fn fix_up(batch: &mut Batch<Mbuf>, r: &mut Round) {
    let fresh = test_frame(LABEL_A, INITIAL_TTL);
    for (f, v) in batch.iter_mut() {
        if *v == Verdict::Drop(DropReason::TtlExpired) {
            let len = f.len();
            let ok = if len < FRAME_LEN {
                f.prepend(FRAME_LEN - len)
            } else {
                f.trim(len - FRAME_LEN)
            };
            if ok {
                f.data_mut().copy_from_slice(&fresh);
                *v = Verdict::Tx(0);
                r.reinjected += 1;
            }
        }
    }
    let mut keep = Batch::new();
    batch.take_tx(0, &mut keep);
    r.dropped += batch.len() as u64;
    batch.clear();
    std::mem::swap(batch, &mut keep);
}

/// The production loop for `dur`: `Worker::poll`. The worker
/// drops frames whose TTL ran out (and frees them); fresh frames from the
/// generator replace them so the ring stays full.
fn run_worker(
    w: &mut Worker<DpdkPort>,
    tables: &Tables,
    pool: &Mempool,
    frame: &[u8],
    dur: Duration,
) -> Result<Round> {
    let rx0 = w.stats.rx_packets();
    let mut drops_seen = w.stats.drops.total();
    let mut refill: Batch<Mbuf> = Batch::new();
    let mut r = Round::default();
    let cpu = CpuClock::start();
    let start = Instant::now();
    let mut iter = 0u32;
    loop {
        iter = iter.wrapping_add(1);
        if iter & 1023 == 0 && start.elapsed() >= dur {
            break;
        }
        w.poll(tables);
        let d = w.stats.drops.total();
        if d != drops_seen {
            for _ in drops_seen..d {
                if refill.push(pool.mbuf_from_bytes(frame)?).is_err() {
                    break;
                }
            }
            r.reinjected += refill.len() as u64;
            drops_seen = d;
            if let Some(p) = w.ports_mut().first_mut() {
                p.tx_burst(&mut refill);
            }
            r.dropped += refill.len() as u64;
            refill.clear();
        }
    }
    r.finish(start, cpu);
    r.packets = w.stats.rx_packets() - rx0;
    Ok(r)
}

fn mode_by_name(name: &str) -> Option<Mode> {
    match name {
        "bare" => Some(Mode::Bare),
        "touch" => Some(Mode::Touch),
        "min-swap" => Some(Mode::MinSwap),
        "transit" => Some(Mode::Transit),
        _ => None,
    }
}

fn median(v: &[Round]) -> Round {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.mpps().total_cmp(&b.mpps()));
    v[v.len() / 2]
}

/// A ratio of two loops' rates over rounds: the median and the range.
#[derive(Clone, Copy)]
struct Ratio {
    median: f64,
    low: f64,
    high: f64,
}

impl Ratio {
    /// `num[i] / den[i]` for each round `i` (both ran in the same round).
    fn of(num: &[Round], den: &[Round]) -> Ratio {
        let mut r: Vec<f64> = num
            .iter()
            .zip(den)
            .map(|(n, d)| n.mpps() / d.mpps())
            .collect();
        r.sort_by(f64::total_cmp);
        Ratio {
            median: r.get(r.len() / 2).copied().unwrap_or(f64::NAN),
            low: r.first().copied().unwrap_or(f64::NAN),
            high: r.last().copied().unwrap_or(f64::NAN),
        }
    }
}

impl std::fmt::Display for Ratio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = format!("{:.3} ({:.2}-{:.2})", self.median, self.low, self.high);
        f.pad(&s)
    }
}

struct Row {
    backend: &'static str,
    bare: Round,
    touch: Round,
    min_swap: Round,
    transit: Round,
    worker: Round,
    /// transit / bare, transit / touch, transit / min swap, worker / bare.
    ratios: [Ratio; 4],
}

/// All loops over one port, interleaved round by round; the worker loop
/// owns the port, the others borrow it from the worker. With `--only`,
/// runs that loop once, prints its rate and returns no row.
fn measure(
    backend: &'static str,
    w: &mut Worker<DpdkPort>,
    pool: &Mempool,
    frame: &[u8],
    lfib: &InlineLfib,
    tables: &Tables,
    a: &Args,
) -> Result<Option<Row>> {
    let dur = Duration::from_secs_f64(a.seconds);
    let one = |w: &mut Worker<DpdkPort>, m: Option<Mode>, dur| -> Result<Round> {
        match m {
            Some(m) => {
                let port = w
                    .ports_mut()
                    .first_mut()
                    .ok_or_else(|| anyhow::anyhow!("worker has no port"))?;
                Ok(run(port, m, lfib, tables, dur))
            }
            None => run_worker(w, tables, pool, frame, dur),
        }
    };
    if let Some(name) = a.only.as_deref() {
        let r = one(w, mode_by_name(name), dur)?;
        println!(
            "{backend} {name}: {:.2} Mpps ({} frames)",
            r.mpps(),
            r.packets
        );
        return Ok(None);
    }
    // None = the worker loop.
    let modes = [
        Some(Mode::Bare),
        Some(Mode::Touch),
        Some(Mode::MinSwap),
        Some(Mode::Transit),
        None,
    ];
    // Warm-up: caches, TLB, branch predictors.
    for m in modes {
        one(w, m, dur / 4)?;
    }
    // Interleaved rounds, so that a noisy neighbour hits every loop alike.
    let mut rounds: [Vec<Round>; 5] = Default::default();
    for _ in 0..a.rounds.max(1) {
        for (i, m) in modes.iter().enumerate() {
            rounds[i].push(one(w, *m, dur)?);
        }
    }
    let [bare, touch, min_swap, transit, worker] = &rounds;
    Ok(Some(Row {
        backend,
        bare: median(bare),
        touch: median(touch),
        min_swap: median(min_swap),
        transit: median(transit),
        worker: median(worker),
        ratios: [
            Ratio::of(transit, bare),
            Ratio::of(transit, touch),
            Ratio::of(transit, min_swap),
            Ratio::of(worker, bare),
        ],
    }))
}

fn main() -> Result<()> {
    tracing_subscriber_init();
    let a = Args::parse();
    let (ring, null) = match a.backend.as_str() {
        "both" => (true, true),
        "ring" => (true, false),
        "null" => (false, true),
        b => bail!("--backend {b}: want ring, null or both"),
    };
    let mut eal = EalBuilder::new()
        .file_prefix(format!("mp-bench-{}", std::process::id()))
        .vdev("net_ring0")
        .vdev(format!("net_null0,size={FRAME_LEN}"))
        .log_level("notice")
        .args(["--no-telemetry"]);
    if let Some(c) = a.core {
        eal = eal.cores(&[c]);
    }
    if a.no_huge {
        eal = eal.memory(MemoryMode::NoHuge);
    }
    if let Some(m) = a.only.as_deref() {
        if mode_by_name(m).is_none() && m != "worker" {
            bail!("--only {m}: want bare, touch, min-swap, transit or worker");
        }
    }
    let eal = eal.init().context("EAL")?;
    let lfib = InlineLfib::ping_pong();
    let node = NodeConfig::parse(SAT_CONFIG, "<bench satellite>")?;
    let tables = Tables::from_config(&node, 1)?;
    let frame = test_frame(LABEL_A, INITIAL_TTL);
    let mut rows = Vec::new();

    if ring {
        let pool = Mempool::new(&eal, "ring_pool", 4095, 256)?;
        let dev = EthDev::open(&eal, "net_ring0", &EthDevConfig::default(), &pool)?;
        let mut port = dev.queue(0)?;
        // Fill the loopback ring with the frames that will circulate.
        let mut b = Batch::new();
        let mut filled = 0;
        while filled < a.inflight {
            while b.room() > 0 && filled + b.len() < a.inflight {
                b.push(pool.mbuf_from_bytes(&frame)?)
                    .map_err(|_| anyhow::anyhow!("batch full"))?;
            }
            let sent = port.tx_burst(&mut b);
            if sent == 0 {
                bail!("net_ring0 is full after {filled} frames; lower --inflight");
            }
            filled += sent;
        }
        let mut w = Worker::new(vec![port]);
        let row = measure("net_ring", &mut w, &pool, &frame, &lfib, &tables, &a)?;
        rows.extend(row);
        let mut port = w
            .into_ports()
            .pop()
            .ok_or_else(|| anyhow::anyhow!("worker lost its port"))?;
        // Drain and check that every mbuf came back.
        while port.rx_burst(&mut b) > 0 {
            b.clear();
        }
        drop(port);
        drop(dev);
        if pool.available() != pool.size() {
            bail!(
                "net_ring: {} of {} mbufs missing",
                pool.size() - pool.available(),
                pool.size()
            );
        }
    }
    if null {
        let pool = Mempool::new(&eal, "null_pool", 8191, 256)?;
        // Prime every mbuf with the test frame: net_null hands out pool
        // buffers without writing them.
        let mut all = Vec::new();
        while let Some(mut m) = pool.alloc() {
            if m.append(FRAME_LEN) {
                m.data_mut().copy_from_slice(&frame);
            }
            all.push(m);
        }
        drop(all);
        let dev = EthDev::open(&eal, "net_null0", &EthDevConfig::default(), &pool)?;
        let port = dev.queue(0)?;
        let mut w = Worker::new(vec![port]);
        rows.extend(measure(
            "net_null", &mut w, &pool, &frame, &lfib, &tables, &a,
        )?);
        drop(w);
        drop(dev);
        if pool.available() != pool.size() {
            bail!("net_null: mbufs missing");
        }
    }

    if a.only.is_some() {
        return Ok(());
    }
    println!(
        "DPDK transit on one core (lcore {}), {FRAME_LEN}+4 B frames, memory {:?}, {} rounds x {:.1} s per loop",
        eal.main_lcore(),
        eal.memory(),
        a.rounds,
        a.seconds
    );
    println!(
        "Mpps per on-CPU second (median of rounds); ratios within a round: median (lowest-highest)"
    );
    println!(
        "{:<9} {:>9} {:>10} {:>9} {:>9} {:>8} {:>19} {:>19} {:>19} {:>19} {:>11} {:>7}",
        "backend",
        "bare Mpps",
        "touch Mpps",
        "min swap",
        "transit",
        "worker",
        "transit/bare",
        "transit/touch",
        "transit/swap",
        "worker/bare",
        "reinjected",
        "dropped"
    );
    for r in &rows {
        let dropped: u64 = [r.bare, r.touch, r.min_swap, r.transit, r.worker]
            .iter()
            .map(|x| x.dropped)
            .sum();
        println!(
            "{:<9} {:>9.2} {:>10.2} {:>9.2} {:>9.2} {:>8.2} {:>19} {:>19} {:>19} {:>19} {:>11} {:>7}",
            r.backend,
            r.bare.mpps(),
            r.touch.mpps(),
            r.min_swap.mpps(),
            r.transit.mpps(),
            r.worker.mpps(),
            r.ratios[0],
            r.ratios[1],
            r.ratios[2],
            r.ratios[3],
            r.transit.reinjected,
            dropped
        );
    }
    println!("targets: transit >= 20 Mpps, transit/bare >= 0.8 (Mpps columns: million frames/s)");
    Ok(())
}

fn tracing_subscriber_init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}
