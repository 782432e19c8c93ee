//! One trial: the tester offers frames to the node(s) under test for a
//! duration or a count, at top speed or paced to a rate, and counts what
//! comes out; everything on one core, in one loop.
//!
//! Per loop iteration: the tester puts the frames due on the first node's
//! receive ring (a full ring refuses them: they are lost, as a NIC's
//! `imissed`), then every node polls once (the production `Worker::poll`,
//! or for the I/O ceiling a bare RX -> TX forward of the same ports), and
//! the sink port hands what it sent to the tester.

use crate::cputime::CpuClock;
use crate::link::{Cursor, Link};
use crate::traffic::Traffic;
use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use meshplane::chain::Hop;
use meshplane::drop_reason::{DropCounters, DropReason};
use meshplane::frame::{Batch, BURST};
use meshplane::tables::Tables;
use meshplane::worker::{Worker, WorkerStats};
use std::time::{Duration, Instant};

/// What runs between the tester's ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The data plane: `Worker::poll` with every stage.
    Pipeline,
    /// The I/O ceiling: the same ports and frames, RX burst straight to TX
    /// burst, no stage, no counter.
    IoCeiling,
}

/// When a trial ends.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// After this much time (pauses for anti-replay resets excluded).
    Duration(Duration),
    /// After this many frames were offered.
    Count(u64),
}

/// How to run one trial.
#[derive(Clone, Copy, Debug)]
pub struct TrialSpec {
    /// What forwards.
    pub mode: Mode,
    /// Offered rate in frames per second; `None` = as fast as the first
    /// node's receive ring takes them (no frame is refused then).
    pub rate_pps: Option<f64>,
    /// End of the trial.
    pub stop: Stop,
}

/// What one trial counted.
#[derive(Clone, Debug)]
pub struct TrialOutcome {
    /// Frames the tester offered (sent on the wire).
    pub offered: u64,
    /// Frames the tester received back (the DUT's forwarded frames).
    pub tx: u64,
    /// Offered frames refused by a full receive ring (part of the loss).
    pub missed: u64,
    /// Drops inside the DUT, by reason.
    pub drops: DropCounters,
    /// Measured time in seconds (offering and draining, resets excluded).
    pub secs: f64,
    /// Of which the thread ran on a CPU (resets included), if known.
    pub cpu_secs: Option<f64>,
    /// DUT latency in ns (RX burst to TX burst), merged over the nodes;
    /// empty for the I/O ceiling.
    pub latency: Histogram<u64>,
    /// Passes over the test frames.
    pub passes: u64,
}

impl TrialOutcome {
    /// Frames offered but not received.
    pub fn lost(&self) -> u64 {
        self.offered.saturating_sub(self.tx)
    }
}

/// Runs one trial over `links` (one vector per hop, port order), which are
/// given back afterwards for the next trial.
pub fn run_trial<L: Link>(
    links: &mut Vec<Vec<L>>,
    hops: &[Hop],
    traffic: &Traffic,
    fresh_sa_per_pass: bool,
    spec: &TrialSpec,
) -> Result<TrialOutcome> {
    let mut tables: Vec<Tables> = hops
        .iter()
        .map(|h| Tables::from_config(&h.node, 1).with_context(|| format!("node {}", h.node.name)))
        .collect::<Result<_>>()?;
    let mut workers: Vec<Worker<L>> = links.drain(..).map(Worker::new).collect();
    let last = hops.len() - 1;
    let (src, sink) = (hops[0].rx_port, hops[last].tx_port);
    let self_fed = workers[0].ports()[src].self_fed();
    let reset_sa = fresh_sa_per_pass && spec.mode == Mode::Pipeline;
    let mut cursor = Cursor::new(traffic, reset_sa);
    let tx0 = workers[last].ports()[sink].received();
    let mut bare = Bare::default();
    let mut offered = 0u64;
    let mut missed = 0u64;
    let limit = match spec.stop {
        Stop::Count(n) => n,
        Stop::Duration(_) => u64::MAX,
    };
    // When the schedule falls behind (the core was taken away), every frame
    // due is offered at once: what the ring cannot hold is lost, as on a
    // real port whose poller stalls. The bound only keeps one call finite.
    let catch_up = 1u64 << 24;

    let cpu = CpuClock::start();
    let t0 = Instant::now();
    let mut paused = Duration::ZERO;
    let mut iter = 0u64;
    loop {
        iter += 1;
        let timed = spec.rate_pps.is_some() || iter.is_multiple_of(8);
        let active = if timed {
            t0.elapsed().saturating_sub(paused)
        } else {
            Duration::ZERO
        };
        if timed {
            if let Stop::Duration(d) = spec.stop {
                if active >= d {
                    break;
                }
            }
        }
        let fed = if self_fed {
            bare.rx[0] + workers[0].stats.ports[src].rx_packets
        } else {
            offered
        };
        if fed >= limit {
            break;
        }
        if !self_fed {
            let remaining = limit - offered;
            let port = &mut workers[0].ports_mut()[src];
            match spec.rate_pps {
                None => offered += port.offer(&mut cursor, BURST.min(remaining as usize)) as u64,
                Some(pps) => {
                    let due = (active.as_secs_f64() * pps) as u64;
                    let want = due.saturating_sub(offered).min(remaining);
                    if want > 0 {
                        let try_n = want.min(catch_up) as usize;
                        let took = port.offer(&mut cursor, try_n) as u64;
                        if took < try_n as u64 && cursor.at_wrap() {
                            offered += took;
                        } else {
                            offered += want;
                            missed += want - took;
                        }
                    }
                }
            }
        }
        if cursor.at_wrap() {
            // The same encrypted frames come again: let the pipeline empty,
            // then give the node a fresh anti-replay window (untimed). When
            // paced, the frames that fall due meanwhile would queue in the
            // receive ring; what it could not hold is lost.
            let spill =
                |workers: &[Worker<L>], paused: Duration, offered: &mut u64, missed: &mut u64| {
                    let Some(pps) = spec.rate_pps else { return };
                    let active = t0.elapsed().saturating_sub(paused).as_secs_f64();
                    let due = ((active * pps) as u64).min(limit);
                    let room = workers[0].ports()[src].rx_room().unwrap_or(0) as u64;
                    let lost = due.saturating_sub(*offered).saturating_sub(room);
                    *offered += lost;
                    *missed += lost;
                };
            spill(&workers, paused, &mut offered, &mut missed);
            paused += drain(&mut workers, &tables, hops, spec.mode, &mut bare);
            spill(&workers, paused, &mut offered, &mut missed);
            let p0 = Instant::now();
            tables[0] = Tables::from_config(&hops[0].node, 1)?;
            cursor.next_pass();
            paused += p0.elapsed();
        }
        step(&mut workers, &tables, hops, spec.mode, &mut bare);
    }
    paused += drain(&mut workers, &tables, hops, spec.mode, &mut bare);
    let secs = t0.elapsed().saturating_sub(paused).as_secs_f64();
    // The untimed resets ran on the CPU too: take them out in proportion.
    let cpu_secs = cpu
        .secs()
        .map(|c| c * secs / (secs + paused.as_secs_f64()).max(1e-12));

    if self_fed {
        offered = bare.rx[0] + workers[0].stats.ports[src].rx_packets;
    }
    let tx = workers[last].ports()[sink].received() - tx0;
    let mut stats = WorkerStats::new(0);
    for w in &workers {
        stats.merge(&w.stats);
    }
    for _ in 0..bare.tx_full {
        stats.drops.bump(DropReason::TxFull);
    }
    *links = workers.into_iter().map(Worker::into_ports).collect();
    Ok(TrialOutcome {
        offered,
        tx,
        missed,
        drops: stats.drops,
        secs,
        cpu_secs,
        latency: stats.latency,
        passes: cursor.passes,
    })
}

/// State of the bare forwarding loop.
struct Bare<F> {
    batch: Batch<F>,
    rx: [u64; 3],
    tx_full: u64,
}

impl<F> Default for Bare<F> {
    fn default() -> Self {
        Bare {
            batch: Batch::new(),
            rx: [0; 3],
            tx_full: 0,
        }
    }
}

/// One poll of every node; returns the frames received.
#[inline]
fn step<L: Link>(
    workers: &mut [Worker<L>],
    tables: &[Tables],
    hops: &[Hop],
    mode: Mode,
    bare: &mut Bare<L::Frame>,
) -> usize {
    let mut n = 0;
    for (k, w) in workers.iter_mut().enumerate() {
        match mode {
            Mode::Pipeline => n += w.poll(&tables[k]),
            Mode::IoCeiling => {
                let ports = w.ports_mut();
                let got = ports[hops[k].rx_port].rx_burst(&mut bare.batch);
                if got > 0 {
                    n += got;
                    if let Some(c) = bare.rx.get_mut(k) {
                        *c += got as u64;
                    }
                    ports[hops[k].tx_port].tx_burst(&mut bare.batch);
                    bare.tx_full += bare.batch.len() as u64;
                    bare.batch.clear();
                }
            }
        }
    }
    n
}

/// Polls until no node has anything left to receive. Returns the time
/// spent waiting, after the last frame moved, for the link to settle (the
/// harness's time, not the data plane's: it is left out of the figures).
fn drain<L: Link>(
    workers: &mut [Worker<L>],
    tables: &[Tables],
    hops: &[Hop],
    mode: Mode,
    bare: &mut Bare<L::Frame>,
) -> Duration {
    // A self-fed port never runs dry: nothing is in flight beyond one poll.
    if workers[0].ports()[hops[0].rx_port].self_fed() {
        return Duration::ZERO;
    }
    let settle = workers[0].ports()[hops[0].rx_port].settle();
    let (last, sink) = (hops.len() - 1, hops[hops.len() - 1].tx_port);
    let mut quiet: Option<Instant> = None;
    loop {
        let before = workers[last].ports()[sink].received();
        let n = step(workers, tables, hops, mode, bare);
        let pending: usize = workers
            .iter()
            .zip(hops)
            .map(|(w, h)| w.ports()[h.rx_port].rx_pending())
            .sum();
        if n > 0 || pending > 0 || workers[last].ports()[sink].received() != before {
            quiet = None;
            continue;
        }
        let idle = quiet.get_or_insert_with(Instant::now).elapsed();
        if idle >= settle {
            return idle;
        }
    }
}
