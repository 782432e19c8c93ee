//! A flood of packets to the node's own address next to transit traffic on
//! the same worker: the control thread must see no more than the policed
//! rate, and transit must keep its rate.
//!
//! One worker (`Worker::poll` over memory ports, as `meshplane run` polls)
//! runs satellite sat-1 of the embedded chain, whose node address is
//! 192.0.2.11, with its channel to a control thread
//! (`runtime::Channels`, the node's `[punt]` policer). The tester, on the
//! worker's thread between polls as in `meshplane-bench`, puts one burst
//! of 32 frames on the receive ring of port gsl-a per poll: transit frames
//! (what gateway A sends sat-1, which swaps their label out of gsl-b) as
//! fast as the worker takes them and, in flood rounds, ICMP echo requests
//! to the node address at an offered rate measured on the run's own clock
//! (`--pace cpu`: on the worker thread's CPU clock, so that a worker that
//! gets a fraction of a shared core meets the flood a dedicated core
//! would, per second it runs).
//!
//! How the flood is mixed in: before each burst the tester reads the
//! clock; `elapsed x rate` flood frames are due since the round began, and
//! those not yet sent (at most 32) take that many of the burst's slots,
//! spread evenly over it (slot `j` holds a flood frame when
//! `floor((j + 1) k / 32) > floor(j k / 32)`); transit frames fill the
//! rest. After a preemption the frames due are caught up in whole flood
//! bursts, as a receive ring that filled during the pause would deliver
//! them. Each flood frame is a fresh buffer (the worker frees the frames it
//! drops, as a PMD returns an mbuf to its pool), transit buffers are
//! recycled from the transmit ring.
//!
//! A consumer thread plays the control thread: it drains the punt queue
//! (`WorkerChannel::next_punted`, `done`), counts the frames and their
//! class, and sleeps `--consumer-idle-us` whenever the queue is empty.
//!
//! Rounds alternate without and with the flood, `--rounds` of each;
//! transit rates count frames forwarded per second the worker's thread was
//! on a CPU (`cputime`), and the ratio is the median over rounds of flood
//! round / the no-flood round before it. Checks, each a non-zero exit:
//! every flood frame punted, policed (`punt_policed`) or refused by a full
//! queue (`punt_full`), every transit frame forwarded, the consumer got
//! what was punted and, per flood round, no more than the policer's rule
//! allows (`icmp_pps x round time + burst`), and the ratio at least
//! `--min-ratio`.
//!
//! `--flood-kind` takes the cost apart, each run against its own no-flood
//! rounds: `not-for-us` floods frames to another station's MAC, which the
//! worker drops at its first check (what any frame that is not transit
//! costs the bursts it lands in, without the punt path); `tester-only`
//! has the tester make and free each flood frame without offering it,
//! its slot left empty (the tester's work and the shorter bursts: what
//! of the figure is not the worker handling the flood).

use anyhow::{bail, Context, Result};
use clap::Parser;
use meshplane::config::PuntConfig;
use meshplane::control::channel::{PuntClass, WorkerChannel};
use meshplane::drop_reason::DropReason;
use meshplane::frame::{HeapFrame, BURST};
use meshplane::gen::FrameSize;
use meshplane::io::memory::{ring, MemoryPort, Ring};
use meshplane::tables::Tables;
use meshplane::worker::{now_ns, Worker};
use meshplane_perf::cputime::CpuClock;
use meshplane_perf::report::{drop_map, Host};
use meshplane_perf::scenario::{prepare, Role};
use meshplane_perf::traffic::{Traffic, TrafficSource, FCS};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "punt_flood",
    about = "ICMP flood to the node address beside transit on one worker: policed punts, transit rate kept"
)]
struct Args {
    /// Seconds per round.
    #[arg(long, default_value_t = 0.5)]
    seconds: f64,
    /// Rounds of each kind (no flood, flood), interleaved; medians count.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// What the flood is: icmp (echo requests to the node address, the
    /// benchmark), not-for-us (frames to another MAC, dropped at the first
    /// check) or tester-only (made and freed by the tester, never offered;
    /// the slots they would take stay empty).
    #[arg(long, value_enum, default_value_t = FloodKind::Icmp)]
    flood_kind: FloodKind,
    /// What `--min-ratio` compares the flood rounds with: `harness`, the
    /// rounds where the tester makes and frees the same flood frames but
    /// does not offer them (the node's own share of the cost), or
    /// `no-flood`.
    #[arg(long, value_enum, default_value_t = Against::Harness)]
    against: Against,
    /// The clock the flood's rate is paced on: wall (the run's clock, as a
    /// link delivers it; on a shared machine the worker then meets more
    /// flood per second it runs) or cpu (the worker thread's CPU clock, read
    /// every 32 bursts in every round: what a dedicated core would meet).
    #[arg(long, value_enum, default_value_t = Pace::Wall)]
    pace: Pace,
    /// Offered flood rate: e.g. 1mpps, 500kpps, 20000pps, 1e6.
    #[arg(long, default_value = "1mpps", value_parser = parse_pps)]
    rate: f64,
    /// Frame size of the LAN traffic behind the transit frames: 64, 512,
    /// 1420, imix or a number (sat-1 receives it with MPLS and ESP added).
    #[arg(long, default_value = "64")]
    size: FrameSize,
    /// Distinct transit frames in one pass.
    #[arg(long, default_value_t = 4096)]
    frames: u64,
    /// ICMP echo payload bytes (56: 98 bytes of frame, as `ping` sends).
    #[arg(long, default_value_t = 56)]
    payload: usize,
    /// The policer's ICMP rate, packets per second (default: the node's
    /// `[punt] icmp_pps`).
    #[arg(long)]
    icmp_pps: Option<u32>,
    /// Punt queue depth, frames (default: the node's `[punt] queue`).
    #[arg(long)]
    queue: Option<u32>,
    /// The consumer sleeps this long when the punt queue is empty (0: it spins).
    #[arg(long, default_value_t = 100)]
    consumer_idle_us: u64,
    /// Unmeasured seconds of each kind of round before the first.
    #[arg(long, default_value_t = 0.3)]
    warmup: f64,
    /// Exit non-zero when transit with the flood runs below this fraction of
    /// its rate without (median over rounds); 0 turns the check off.
    #[arg(long, default_value_t = 0.95)]
    min_ratio: f64,
    /// Pin the worker's thread to this CPU core (default: not pinned).
    #[arg(long)]
    core: Option<usize>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// What `--min-ratio` compares the flood rounds with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Against {
    /// The harness-only rounds.
    Harness,
    /// The rounds without any flood.
    NoFlood,
}

/// What the flood rounds add to the bursts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum FloodKind {
    /// ICMP echo requests to the node address: punted behind the policer.
    Icmp,
    /// The same frames sent to another station's MAC: dropped at dispatch.
    NotForUs,
    /// The same frames made and freed by the tester, never offered; their
    /// slots in the burst stay empty.
    TesterOnly,
}

/// The clock the flood is paced on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Pace {
    /// The run's clock (`worker::now_ns`).
    Wall,
    /// The worker thread's CPU clock.
    Cpu,
}

/// A rate in packets per second: a number with an optional unit (pps, kpps, mpps).
fn parse_pps(s: &str) -> Result<f64, String> {
    let l = s.trim().to_ascii_lowercase();
    let (num, mult) = if let Some(n) = l.strip_suffix("mpps") {
        (n, 1e6)
    } else if let Some(n) = l.strip_suffix("kpps") {
        (n, 1e3)
    } else if let Some(n) = l.strip_suffix("pps") {
        (n, 1.0)
    } else {
        (l.as_str(), 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("rate {s:?}: want a number of packets per second, e.g. 1mpps"))?;
    let v = v * mult;
    if !(v.is_finite() && v > 0.0 && v <= 1e9) {
        return Err(format!(
            "rate {s:?}: want more than 0 and at most 1000 Mpps"
        ));
    }
    Ok(v)
}

/// The policer's burst for a class rate, by `channel::Bucket::new`'s rule:
/// a tenth of a second's worth, at least 8 packets, at most the rate.
fn policer_burst(rate_pps: u32) -> u64 {
    let rate = u64::from(rate_pps);
    (rate / 10).max(8).min(rate.max(1))
}

/// What a token bucket of `rate_pps` and `burst` can admit within `span_ns`:
/// the burst saved up before, plus the tokens earned during the span.
fn policer_bound(rate_pps: u32, burst: u64, span_ns: u64) -> u64 {
    burst + (u128::from(span_ns) * u128::from(rate_pps) / 1_000_000_000) as u64
}

/// An Ethernet + IPv4 + ICMP echo request from `src` to `dst`, both
/// checksums valid.
fn echo_request(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payload: usize,
) -> Vec<u8> {
    use meshplane::packet::checksum::internet_checksum;
    let mut icmp = vec![8u8, 0, 0, 0, 0x4d, 0x50, 0, 1];
    icmp.extend((0..payload).map(|i| i as u8));
    let c = internet_checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend(total.to_be_bytes());
    ip.extend([0x12, 0x34, 0x40, 0x00, 64, 1, 0, 0]);
    ip.extend(src.octets());
    ip.extend(dst.octets());
    let c = internet_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = dst_mac.to_vec();
    f.extend(src_mac);
    f.extend(0x0800u16.to_be_bytes());
    f.extend(ip);
    f.extend(icmp);
    f
}

/// Bursts between two reads of the thread's CPU clock with `--pace cpu`.
const CPU_READ_EVERY: u64 = 32;

/// True when slot `j` of a burst of `BURST` holds one of its `k` flood frames.
#[inline]
fn flood_slot(j: usize, k: usize) -> bool {
    (j + 1) * k / BURST > j * k / BURST
}

/// The control thread's stand-in: what it took from the punt queue.
#[derive(Default)]
struct Consumer {
    /// Frames taken (and their slots returned).
    received: AtomicU64,
    /// Of those, frames the policer would not class as ICMP.
    not_icmp: AtomicU64,
    /// Set to end the thread.
    stop: AtomicBool,
}

/// Drains `ch` until told to stop; sleeps `idle` when the queue is empty.
fn consume(ch: &WorkerChannel, c: &Consumer, idle: Duration) {
    while !c.stop.load(Ordering::Relaxed) {
        let (mut got, mut odd) = (0u64, 0u64);
        while let Some(s) = ch.next_punted() {
            odd += u64::from(PuntClass::of(s.bytes()) != PuntClass::Icmp);
            ch.done(s);
            got += 1;
        }
        if got > 0 {
            c.not_icmp.fetch_add(odd, Ordering::Relaxed);
            c.received.fetch_add(got, Ordering::Release);
        } else if idle.is_zero() {
            std::hint::spin_loop();
        } else {
            std::thread::sleep(idle);
        }
    }
}

/// One round's figures (counts are this round's).
#[derive(Clone, Debug, Serialize)]
struct RoundResult {
    /// Round number (0-based, per kind).
    round: usize,
    /// With the flood.
    flood: bool,
    /// Length on the worker's clock, seconds.
    secs: f64,
    /// Seconds of it the worker's thread was on a CPU.
    cpu_secs: Option<f64>,
    /// Polls (bursts of 32 frames offered).
    bursts: u64,
    /// Transit frames put on the receive ring.
    transit_offered: u64,
    /// Transit frames the worker sent out of gsl-b.
    transit_forwarded: u64,
    /// `transit_forwarded / secs`, millions.
    transit_mpps: f64,
    /// `transit_forwarded / cpu_secs`, millions: the rate the ratio uses.
    transit_mpps_on_cpu: Option<f64>,
    /// Flood frames made at the flood's rate.
    flood_frames: u64,
    /// Of those, put on the receive ring (all but with `tester-only`).
    flood_offered: u64,
    /// `flood_frames / secs`: the flood's rate on the run's clock.
    flood_pps: f64,
    /// `flood_frames / cpu_secs`: the flood per second the worker ran.
    flood_pps_on_cpu: Option<f64>,
    /// Mean flood frames per burst.
    flood_per_burst: f64,
    /// Flood frames the worker queued for the control thread.
    punted: u64,
    /// Refused by the policer.
    punt_policed: u64,
    /// Refused by a full punt queue.
    punt_full: u64,
    /// Dropped as not addressed to the port (`not-for-us` floods).
    flood_dropped: u64,
    /// Any other drop, by reason (none expected).
    other_drops: BTreeMap<&'static str, u64>,
    /// Frames the consumer took from the queue for this round.
    consumer_received: u64,
    /// `consumer_received / secs`.
    consumer_pps: f64,
    /// Most the policer may admit in the round: `icmp_pps x secs + burst`.
    policer_bound: u64,
}

impl RoundResult {
    /// The per-core transit rate: on-CPU when known, else wall.
    fn rate(&self) -> f64 {
        self.transit_mpps_on_cpu.unwrap_or(self.transit_mpps)
    }
}

/// The flood's frames and the policer they meet.
#[derive(Clone, Debug, Serialize)]
struct FloodSpec {
    /// What the flood is.
    kind: FloodKind,
    /// The clock its rate is paced on.
    pace: Pace,
    /// Offered rate asked for, packets per second.
    rate_pps: f64,
    /// Flood frame size on the wire (FCS included).
    frame_bytes: usize,
    /// Destination: the node address.
    dst: Ipv4Addr,
    /// The policer's ICMP rate.
    icmp_pps: u32,
    /// The policer's ICMP burst.
    icmp_burst: u64,
    /// Punt queue depth.
    queue: u32,
}

/// Medians and totals over the measured rounds.
#[derive(Clone, Debug, Serialize)]
struct Summary {
    /// Transit Mpps per on-CPU second without the flood, median.
    transit_mpps_no_flood: f64,
    /// The same with the flood, median.
    transit_mpps_flood: f64,
    /// Flood round / the no-flood round before it: median, lowest, highest.
    ratio: f64,
    /// Transit Mpps per on-CPU second with the flood made and freed by the
    /// tester but not offered (NaN when the flood kind is that already).
    transit_mpps_harness: f64,
    /// Flood round / the harness-only round before it, median: the node's
    /// own share of what the flood costs transit.
    node_ratio: f64,
    /// Lowest round ratio.
    ratio_low: f64,
    /// Highest round ratio.
    ratio_high: f64,
    /// Ratios are per on-CPU second ("on-cpu") or per wall second ("wall").
    ratio_basis: &'static str,
    /// The flood's rate, median of flood rounds, packets per second.
    flood_pps: f64,
    /// The flood per second the worker ran, median of flood rounds.
    flood_pps_on_cpu: f64,
    /// Frames the consumer got over all flood rounds.
    consumer_received: u64,
    /// Their rate over the flood rounds' time, packets per second.
    consumer_pps: f64,
    /// The policer's sum of per-round bounds.
    policer_bound: u64,
    /// Policed over all flood rounds.
    punt_policed: u64,
    /// Refused by a full queue over all flood rounds.
    punt_full: u64,
}

/// The JSON document.
#[derive(Serialize)]
struct Report {
    /// This program and its version.
    tool: String,
    /// The machine.
    host: Host,
    /// The node under test.
    node: String,
    /// The I/O backend.
    backend: &'static str,
    /// Mean transit frame size on the wire (FCS included).
    transit_frame_bytes: f64,
    /// Distinct transit frames, replayed in a loop.
    transit_frames_per_pass: usize,
    /// The flood.
    flood: FloodSpec,
    /// Length of each round asked for.
    seconds_per_round: f64,
    /// The consumer's sleep when the queue is empty (0: it spins).
    consumer_idle_us: u64,
    /// The ratio the run must reach (0: not checked).
    min_ratio: f64,
    /// Every measured round, in the order run.
    rounds: Vec<RoundResult>,
    /// Medians and totals.
    summary: Summary,
    /// Failed checks (empty when the run passed).
    failures: Vec<String>,
}

/// The worker under test, its tester and its control thread's channel.
struct Bench {
    worker: Worker<MemoryPort>,
    tables: Tables,
    rx: Ring,
    tx: Ring,
    tx_port: usize,
    pool: Vec<HeapFrame>,
    transit: Traffic,
    next: usize,
    flood: Vec<u8>,
    kind: FloodKind,
    pace: Pace,
    rate_pps: f64,
    icmp_pps: u32,
    burst: u64,
    consumer: Arc<Consumer>,
}

impl Bench {
    /// Runs one round of `secs` seconds, with the flood or without.
    fn round(&mut self, round: usize, flood: bool, secs: f64) -> Result<RoundResult> {
        let before = self.worker.stats.clone();
        let got_before = self.consumer.received.load(Ordering::Acquire);
        let room = (self.flood.len() + 64).max(128);
        let dur_ns = (secs * 1e9) as u64;
        let (mut bursts, mut transit, mut flooded, mut offered) = (0u64, 0u64, 0u64, 0u64);
        let offer = self.kind != FloodKind::TesterOnly;
        let rate = if flood { self.rate_pps } else { 0.0 };
        let cpu = CpuClock::start();
        let cpu0 = match self.pace {
            Pace::Cpu => Some(cpu_time::ThreadTime::try_now().context("the thread's CPU clock")?),
            Pace::Wall => None,
        };
        // The CPU clock's last reading and the run's clock then.
        let mut cpu_at = (0u64, 0u64);
        let t0 = now_ns();
        let span_ns = loop {
            // The same clocks read every burst, flood or not.
            let el = now_ns() - t0;
            if el >= dur_ns {
                break el;
            }
            let paced_ns = match &cpu0 {
                Some(c) => {
                    // A read of the thread's CPU clock is a system call
                    // (~0.4 us here): every CPU_READ_EVERY bursts, the
                    // run's clock in between.
                    if bursts % CPU_READ_EVERY == 0 {
                        if let Ok(d) = c.try_elapsed() {
                            cpu_at = (d.as_nanos() as u64, el);
                        }
                    }
                    cpu_at.0 + (el - cpu_at.1)
                }
                None => el,
            };
            let due = (paced_ns as f64 * 1e-9 * rate) as u64;
            let k = (due.saturating_sub(flooded) as usize).min(BURST);
            for j in 0..BURST {
                let f = if k > 0 && flood_slot(j, k) {
                    let mut f = HeapFrame::with_room(room);
                    f.reset_from(&self.flood);
                    if !offer {
                        // Made and freed here; the burst is a frame shorter.
                        drop(std::hint::black_box(f));
                        continue;
                    }
                    offered += 1;
                    f
                } else {
                    let mut f = self
                        .pool
                        .pop()
                        .unwrap_or_else(|| HeapFrame::with_room(self.transit.max_len() + 256));
                    f.reset_from(self.transit.frame(self.next));
                    self.next = (self.next + 1) % self.transit.len();
                    transit += 1;
                    f
                };
                if let Err(f) = self.rx.push(f) {
                    drop(f);
                    bail!("the receive ring refused a frame: it holds less than a burst");
                }
            }
            flooded += k as u64;
            bursts += 1;
            self.worker.poll(&self.tables);
            while let Some(f) = self.tx.pop() {
                self.pool.push(f);
            }
        };
        let cpu_secs = cpu.secs();
        // Everything punted reaches the consumer before the round is read.
        let after = &self.worker.stats;
        let punted = after.ports.iter().map(|p| p.punt_packets).sum::<u64>()
            - before.ports.iter().map(|p| p.punt_packets).sum::<u64>();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let got = loop {
            let got = self.consumer.received.load(Ordering::Acquire) - got_before;
            if got >= punted || std::time::Instant::now() > deadline {
                break got;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        let mut drops = after.drops;
        for (d, b) in drops.0.iter_mut().zip(before.drops.0) {
            *d -= b;
        }
        let policed = drops.get(DropReason::PuntPoliced);
        let full = drops.get(DropReason::PuntFull);
        drops.0[DropReason::PuntPoliced.index()] = 0;
        drops.0[DropReason::PuntFull.index()] = 0;
        let dropped = if self.kind == FloodKind::NotForUs {
            std::mem::take(&mut drops.0[DropReason::NotForUs.index()])
        } else {
            0
        };
        let forwarded =
            after.ports[self.tx_port].tx_packets - before.ports[self.tx_port].tx_packets;
        let secs = span_ns as f64 * 1e-9;
        let cpu_secs = cpu_secs.map(|c| c.min(secs));
        Ok(RoundResult {
            round,
            flood,
            secs,
            cpu_secs,
            bursts,
            transit_offered: transit,
            transit_forwarded: forwarded,
            transit_mpps: forwarded as f64 / secs.max(1e-12) / 1e6,
            transit_mpps_on_cpu: cpu_secs.map(|c| forwarded as f64 / c / 1e6),
            flood_frames: flooded,
            flood_offered: offered,
            flood_pps: flooded as f64 / secs.max(1e-12),
            flood_pps_on_cpu: cpu_secs.map(|c| flooded as f64 / c),
            flood_per_burst: flooded as f64 / bursts.max(1) as f64,
            punted,
            punt_policed: policed,
            punt_full: full,
            flood_dropped: dropped,
            other_drops: drop_map(&drops),
            consumer_received: got,
            consumer_pps: got as f64 / secs.max(1e-12),
            policer_bound: if flood {
                policer_bound(self.icmp_pps, self.burst, span_ns)
            } else {
                0
            },
        })
    }
}

/// What a round's counts must satisfy; each failure as a sentence.
fn check_round(r: &RoundResult, failures: &mut Vec<String>) {
    let kind = if r.flood { "flood" } else { "no-flood" };
    let name = format!("{kind} round {}", r.round);
    let seen = r.punted + r.punt_policed + r.punt_full + r.flood_dropped;
    if seen != r.flood_offered {
        failures.push(format!(
            "{name}: {} flood frames offered, but {} punted + {} policed + {} refused by a full \
             queue + {} dropped as not for the port = {seen}",
            r.flood_offered, r.punted, r.punt_policed, r.punt_full, r.flood_dropped
        ));
    }
    if r.transit_forwarded != r.transit_offered {
        failures.push(format!(
            "{name}: {} transit frames offered, {} forwarded",
            r.transit_offered, r.transit_forwarded
        ));
    }
    if !r.other_drops.is_empty() {
        failures.push(format!("{name}: unexpected drops {:?}", r.other_drops));
    }
    if r.consumer_received != r.punted {
        failures.push(format!(
            "{name}: the worker punted {} frames, the consumer received {}",
            r.punted, r.consumer_received
        ));
    }
    if r.consumer_received > r.policer_bound {
        failures.push(format!(
            "{name}: the consumer received {} frames in {:.3} s, more than the policer allows ({})",
            r.consumer_received, r.secs, r.policer_bound
        ));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> Result<()> {
    let a = Args::parse();
    let ok_secs = |v: f64, zero: bool| v.is_finite() && (v > 0.0 || (zero && v == 0.0)) && v < 1e6;
    if !ok_secs(a.seconds, false) || !ok_secs(a.warmup, true) {
        bail!("--seconds must be > 0 and --warmup >= 0");
    }
    if a.rounds == 0 || a.frames == 0 {
        bail!("--rounds and --frames must be > 0");
    }
    if !(a.min_ratio.is_finite() && a.min_ratio >= 0.0) {
        bail!("--min-ratio must be a number >= 0");
    }
    if let Some(c) = a.core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
            bail!("could not pin to core {c}");
        }
    }

    // sat-1 and what gateway A sends it.
    let lan = TrafficSource::Generator {
        size: a.size,
        frames: a.frames,
        flows: 16,
    }
    .load()?;
    let prep = prepare(Role::SatelliteTransit, &lan).context("preparing sat-1's transit input")?;
    let hop = prep.hops[0].clone();
    let node = hop.node.clone();
    let Some(address) = node.address else {
        bail!("node {} has no [node] address to flood", node.name);
    };
    let punt = PuntConfig {
        icmp_pps: a.icmp_pps.unwrap_or(node.punt.icmp_pps),
        queue: a.queue.unwrap_or(node.punt.queue),
        ..node.punt
    };
    if punt.icmp_pps > PuntConfig::MAX_PPS || !(1..=PuntConfig::MAX_QUEUE).contains(&punt.queue) {
        bail!(
            "--icmp-pps at most {} and --queue 1..={}",
            PuntConfig::MAX_PPS,
            PuntConfig::MAX_QUEUE
        );
    }
    let tables = Tables::from_config(&node, 1).context("sat-1's tables")?;
    let rx_mac = node.ports[hop.rx_port].mac;
    let src_mac: [u8; 6] = prep.input.frame(0)[6..12]
        .try_into()
        .context("a transit frame shorter than its Ethernet header")?;
    // Another station on gsl-a's link: an individual MAC, not the port's.
    let other_mac = [0x02, 0, 0, 0, 0x01, 0xfe];
    let flood = echo_request(
        if a.flood_kind == FloodKind::NotForUs {
            other_mac
        } else {
            rx_mac
        },
        src_mac,
        Ipv4Addr::new(203, 0, 113, 7),
        address,
        a.payload,
    );
    if flood.len() > meshplane::control::channel::SLOT {
        bail!("--payload {}: longer than a punt slot", a.payload);
    }

    let ports: Vec<MemoryPort> = (0..node.ports.len())
        .map(|_| MemoryPort::new(ring(2 * BURST), ring(4 * BURST)))
        .collect();
    let rx = ports[hop.rx_port].rx_ring().clone();
    let tx = ports[hop.tx_port].tx_ring().clone();
    let mut worker = Worker::new(ports);
    let channels = meshplane::runtime::Channels::new(1, punt);
    worker.set_punt_path(channels.path(0).context("the worker's punt path")?);
    let channel = channels.workers[0].clone();
    let consumer = Arc::new(Consumer::default());
    let idle = Duration::from_micros(a.consumer_idle_us);
    let control = {
        let (ch, c) = (channel.clone(), consumer.clone());
        std::thread::Builder::new()
            .name("control".into())
            .spawn(move || consume(&ch, &c, idle))
            .context("starting the consumer thread")?
    };

    // The burst clock calibrates itself on its first reading: not in a round.
    now_ns();
    let room = prep.input.max_len() + 256;
    let mut bench = Bench {
        worker,
        tables,
        rx,
        tx,
        tx_port: hop.tx_port,
        pool: (0..8 * BURST).map(|_| HeapFrame::with_room(room)).collect(),
        transit: prep.input.clone(),
        next: 0,
        flood,
        kind: a.flood_kind,
        pace: a.pace,
        rate_pps: a.rate,
        icmp_pps: punt.icmp_pps,
        burst: policer_burst(punt.icmp_pps),
        consumer: consumer.clone(),
    };

    type Rounds = (Vec<RoundResult>, Vec<RoundResult>);
    let run = (|| -> Result<Rounds> {
        if a.warmup > 0.0 {
            bench.round(0, false, a.warmup)?;
            bench.round(0, true, a.warmup)?;
        }
        let mut rounds = Vec::new();
        let mut harness = Vec::new();
        for i in 0..a.rounds {
            rounds.push(bench.round(i, false, a.seconds)?);
            // The harness alone: the same flood frames made and freed by
            // the tester, not offered (what the memory backend's buffers
            // cost the run itself, whatever the node does with them).
            if bench.kind != FloodKind::TesterOnly {
                let kind = bench.kind;
                bench.kind = FloodKind::TesterOnly;
                let r = bench.round(i, true, a.seconds);
                bench.kind = kind;
                harness.push(r?);
            }
            rounds.push(bench.round(i, true, a.seconds)?);
        }
        Ok((rounds, harness))
    })();
    consumer.stop.store(true, Ordering::Relaxed);
    let _ = control.join();
    let (rounds, harness) = run?;

    let mut failures = Vec::new();
    for r in &rounds {
        check_round(r, &mut failures);
    }
    let not_icmp = consumer.not_icmp.load(Ordering::Relaxed);
    if not_icmp > 0 {
        failures.push(format!(
            "the consumer received {not_icmp} frames that are not ICMP"
        ));
    }
    let (quiet, flooded): (Vec<&RoundResult>, Vec<&RoundResult>) =
        rounds.iter().partition(|r| !r.flood);
    let ratios: Vec<f64> = quiet
        .iter()
        .zip(&flooded)
        .map(|(q, f)| f.rate() / q.rate().max(1e-12))
        .collect();
    // Flood round / the harness-only round before it.
    let node_ratios: Vec<f64> = harness
        .iter()
        .zip(&flooded)
        .map(|(h, f)| f.rate() / h.rate().max(1e-12))
        .collect();
    let flood_secs: f64 = flooded.iter().map(|r| r.secs).sum();
    let consumer_received: u64 = flooded.iter().map(|r| r.consumer_received).sum();
    let summary = Summary {
        transit_mpps_no_flood: median(quiet.iter().map(|r| r.rate()).collect()),
        transit_mpps_flood: median(flooded.iter().map(|r| r.rate()).collect()),
        ratio: median(ratios.clone()),
        transit_mpps_harness: median(harness.iter().map(|r| r.rate()).collect()),
        node_ratio: median(node_ratios.clone()),
        ratio_low: ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratio_high: ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        ratio_basis: if rounds.iter().all(|r| r.cpu_secs.is_some()) {
            "on-cpu"
        } else {
            "wall"
        },
        flood_pps: median(flooded.iter().map(|r| r.flood_pps).collect()),
        flood_pps_on_cpu: median(
            flooded
                .iter()
                .map(|r| r.flood_pps_on_cpu.unwrap_or(r.flood_pps))
                .collect(),
        ),
        consumer_received,
        consumer_pps: consumer_received as f64 / flood_secs.max(1e-12),
        policer_bound: flooded.iter().map(|r| r.policer_bound).sum(),
        punt_policed: flooded.iter().map(|r| r.punt_policed).sum(),
        punt_full: flooded.iter().map(|r| r.punt_full).sum(),
    };
    // The gate: the node's own share (against the harness-only rounds)
    // unless asked for the rate without any flood, or there is no such
    // round (the tester-only kind).
    let (gated, against) = match (a.against, summary.node_ratio.is_nan()) {
        (Against::Harness, false) => (
            summary.node_ratio,
            "with the flood frames made but not offered",
        ),
        _ => (summary.ratio, "without the flood"),
    };
    if a.min_ratio > 0.0 && (gated.is_nan() || gated < a.min_ratio) {
        failures.push(format!(
            "transit with the flood ran at {gated:.3}x its rate {against} (median of {} rounds), below --min-ratio {}",
            ratios.len(),
            a.min_ratio
        ));
    }

    let transit_frame_bytes = prep.input.mean_wire_bytes();
    println!(
        "punt_flood: {} ({address}), one worker over memory ports; transit {:.0} B frames \
         ({} B at gateway A's LAN) on gsl-a, out of gsl-b; flood ICMP echo {} B to {address} \
         {}at {:.3} Mpps per {} second; policer icmp {} pps, burst {}, queue {}",
        node.name,
        transit_frame_bytes,
        a.size,
        bench.flood.len() + FCS,
        match a.flood_kind {
            FloodKind::Icmp => "",
            FloodKind::NotForUs => "to another MAC (dropped at dispatch) ",
            FloodKind::TesterOnly => "made and freed by the tester, not offered, ",
        },
        a.rate / 1e6,
        match a.pace {
            Pace::Wall => "wall-clock",
            Pace::Cpu => "on-CPU",
        },
        punt.icmp_pps,
        bench.burst,
        punt.queue
    );
    println!(
        "{:<9} {:>5} {:>6} {:>5} {:>12} {:>10} {:>10} {:>10} {:>8} {:>6} {:>9} {:>5} {:>9} {:>7} {:>7}",
        "round",
        "",
        "secs",
        "CPU%",
        "transit Mpps",
        "Mpps/core",
        "flood Mpps",
        "flood/core",
        "per burst",
        "punted",
        "policed",
        "full",
        "consumer",
        "pps",
        "bound"
    );
    for r in &rounds {
        println!(
            "{:<9} {:>5} {:>6.3} {:>5.0} {:>12.3} {:>10.3} {:>10.3} {:>10.3} {:>8.2} {:>6} {:>9} {:>5} {:>9} {:>7.0} {:>7}",
            if r.flood { "flood" } else { "no flood" },
            r.round,
            r.secs,
            r.cpu_secs.map_or(f64::NAN, |c| 100.0 * c / r.secs),
            r.transit_mpps,
            r.rate(),
            r.flood_pps / 1e6,
            r.flood_pps_on_cpu.map_or(f64::NAN, |p| p / 1e6),
            r.flood_per_burst,
            r.punted,
            r.punt_policed,
            r.punt_full,
            r.consumer_received,
            r.consumer_pps,
            r.policer_bound
        );
    }
    let s = &summary;
    println!(
        "transit Mpps/core ({}, median): {:.3} without the flood, {:.3} with it; \
         ratio {:.3} ({:.3}-{:.3}) over {} rounds",
        s.ratio_basis,
        s.transit_mpps_no_flood,
        s.transit_mpps_flood,
        s.ratio,
        s.ratio_low,
        s.ratio_high,
        ratios.len()
    );
    if !s.node_ratio.is_nan() {
        println!(
            "transit Mpps/core with the flood frames made and freed by the tester but not offered: \
             {:.3}; with the flood / that: {:.3} (the node's own share)",
            s.transit_mpps_harness, s.node_ratio
        );
    }
    println!(
        "flood {:.3} Mpps, {:.3} Mpps per on-CPU second (medians); the consumer received {} frames in {:.2} s of flood \
         = {:.0} pps against icmp_pps {} (bound {}: rate x time + burst {} per round); \
         policed {}, queue full {}",
        s.flood_pps / 1e6,
        s.flood_pps_on_cpu / 1e6,
        s.consumer_received,
        flood_secs,
        s.consumer_pps,
        punt.icmp_pps,
        s.policer_bound,
        bench.burst,
        s.punt_policed,
        s.punt_full
    );

    let report = Report {
        tool: format!("punt_flood {}", env!("CARGO_PKG_VERSION")),
        host: Host::probe(),
        node: node.name.clone(),
        backend: "memory",
        transit_frame_bytes,
        transit_frames_per_pass: prep.input.len(),
        flood: FloodSpec {
            kind: a.flood_kind,
            pace: a.pace,
            rate_pps: a.rate,
            frame_bytes: bench.flood.len() + FCS,
            dst: address,
            icmp_pps: punt.icmp_pps,
            icmp_burst: bench.burst,
            queue: punt.queue,
        },
        seconds_per_round: a.seconds,
        consumer_idle_us: a.consumer_idle_us,
        min_ratio: a.min_ratio,
        rounds,
        summary,
        failures: failures.clone(),
    };
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("FAIL: {f}");
        }
        bail!("{} check(s) failed", failures.len());
    }
    println!("PASS");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flood_frame_is_a_valid_icmp_echo_request() {
        let f = echo_request(
            [2, 0, 0, 0, 1, 1],
            [2, 0, 0, 0, 10, 2],
            Ipv4Addr::new(203, 0, 113, 7),
            Ipv4Addr::new(192, 0, 2, 11),
            56,
        );
        assert_eq!(f.len() + FCS, 98 + FCS);
        assert_eq!(PuntClass::of(&f), PuntClass::Icmp);
        let ip: &[u8; 20] = f[14..34].try_into().expect("IPv4 header");
        assert!(meshplane::packet::checksum::sum20_is_valid(ip));
        assert_eq!(meshplane::packet::checksum::internet_checksum(&f[34..]), 0);
        assert_eq!(f[34], 8, "echo request");
    }

    #[test]
    fn flood_frames_spread_over_the_burst() {
        for k in 0..=BURST {
            let slots: Vec<usize> = (0..BURST).filter(|&j| flood_slot(j, k)).collect();
            assert_eq!(slots.len(), k);
        }
        let two: Vec<usize> = (0..BURST).filter(|&j| flood_slot(j, 2)).collect();
        assert_eq!(two, [15, 31]);
    }

    #[test]
    fn the_bound_follows_the_policer() {
        assert_eq!(policer_burst(1000), 100);
        assert_eq!(policer_burst(10), 8);
        assert_eq!(policer_burst(5), 5);
        assert_eq!(policer_bound(1000, 100, 500_000_000), 600);
        assert_eq!(parse_pps("1mpps"), Ok(1e6));
        assert_eq!(parse_pps("500kpps"), Ok(5e5));
        assert_eq!(parse_pps("2e4"), Ok(2e4));
        assert!(parse_pps("0").is_err());
    }
}
