//! Measures one prepared scenario over one backend: the I/O ceiling, the
//! data plane and the crypto ceiling in the same run (interleaved when
//! repeated, median kept), then optionally an NDR search.

use crate::crypto::crypto_ceiling;
use crate::link::Link;
use crate::report::{drop_map, CryptoFigures, Figures, Latency, Ndr, NdrTrial, ScenarioResult};
use crate::scenario::Prepared;
use crate::trial::{run_trial, Mode, Stop, TrialOutcome, TrialSpec};
use anyhow::Result;
use std::time::Duration;

/// NDR search settings (RFC 2544 §26.1 style binary search).
#[derive(Clone, Copy, Debug)]
pub struct NdrSettings {
    /// Stop when the bracket is narrower than this fraction of its top.
    pub resolution: f64,
    /// Length of each trial.
    pub trial: Duration,
    /// Loss allowed in a passing trial, percent (0 = NDR; > 0 = PDR).
    pub max_loss_pct: f64,
}

/// How to measure.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// End of each measured trial.
    pub stop: Stop,
    /// Offered rate for the data plane trial (`None` = top speed).
    pub rate_pps: Option<f64>,
    /// Unmeasured run before the first trial.
    pub warmup: Duration,
    /// Measure the I/O and crypto ceilings.
    pub baselines: bool,
    /// Repetitions of each measurement; the median counts.
    pub rounds: usize,
    /// NDR search, if wanted.
    pub ndr: Option<NdrSettings>,
}

impl Settings {
    fn trial_time(&self) -> Duration {
        match self.stop {
            Stop::Duration(d) => d,
            Stop::Count(_) => Duration::from_millis(200),
        }
    }
}

fn median(mut v: Vec<TrialOutcome>) -> TrialOutcome {
    v.sort_by(|a, b| {
        let r = |t: &TrialOutcome| t.tx as f64 / t.cpu_secs.unwrap_or(t.secs).max(1e-12);
        r(a).total_cmp(&r(b))
    });
    v.swap_remove(v.len() / 2)
}

/// Measures `prep` over `links`; `step(what)` is called before each part
/// (for a progress display).
pub fn measure<L: Link>(
    prep: &Prepared,
    links: &mut Vec<Vec<L>>,
    backend: &str,
    traffic_label: &str,
    s: &Settings,
    step: &mut dyn FnMut(&str),
) -> Result<ScenarioResult> {
    let bytes = prep.input.mean_wire_bytes();
    let self_fed = links
        .first()
        .and_then(|n| n.get(prep.hops[0].rx_port))
        .is_some_and(|l| l.self_fed());
    if self_fed && prep.fresh_sa_per_pass {
        anyhow::bail!(
            "{backend}: the device replays the same encrypted frames without end, which \
             {}'s anti-replay window rightly drops from the second pass on; measure it over \
             memory, dpdk-ring or dpdk-null",
            prep.role.name()
        );
    }
    let paced = s.rate_pps.is_some() || s.ndr.is_some();
    let ring_known = links
        .first()
        .and_then(|n| n.get(prep.hops[0].rx_port))
        .is_some_and(|l| l.rx_room().is_some());
    if paced && prep.fresh_sa_per_pass && !ring_known {
        anyhow::bail!(
            "{backend}: pacing {} needs to know the receive ring's room to account for the \
             frames due while the anti-replay window is reset between passes; use the memory \
             backend (or top speed)",
            prep.role.name()
        );
    }
    if self_fed && paced {
        anyhow::bail!(
            "{backend}: the device replays the capture itself, so the tester cannot pace it \
             (--rate and --ndr need the memory, dpdk-ring or dpdk-null backend)"
        );
    }
    let trial = |mode, rate_pps, stop, links: &mut Vec<Vec<L>>| {
        run_trial(
            links,
            &prep.hops,
            &prep.input,
            prep.fresh_sa_per_pass,
            &TrialSpec {
                mode,
                rate_pps,
                stop,
            },
        )
    };
    step("warm-up");
    if !s.warmup.is_zero() {
        trial(Mode::Pipeline, None, Stop::Duration(s.warmup), links)?;
        if s.baselines {
            trial(Mode::IoCeiling, None, Stop::Duration(s.warmup / 2), links)?;
        }
    }
    let mut io_runs = Vec::new();
    let mut dp_runs = Vec::new();
    for _ in 0..s.rounds.max(1) {
        if s.baselines {
            step("I/O ceiling");
            io_runs.push(trial(Mode::IoCeiling, None, s.stop, links)?);
        }
        step("data plane");
        dp_runs.push(trial(Mode::Pipeline, s.rate_pps, s.stop, links)?);
    }
    let dp = median(dp_runs);
    let io = (!io_runs.is_empty()).then(|| median(io_runs));
    let pipeline = Figures::new(dp.offered, dp.tx, dp.secs, bytes).on_cpu(dp.cpu_secs);
    let io_ceiling = io.map(|o| Figures::new(o.offered, o.tx, o.secs, bytes).on_cpu(o.cpu_secs));

    let crypto_ceiling = match (&prep.crypto, s.baselines) {
        (Some(w), true) => {
            step("crypto ceiling");
            let mut runs = Vec::new();
            for _ in 0..s.rounds.max(1) {
                runs.push(crypto_ceiling(w, s.trial_time())?);
            }
            let t = |c: &crate::crypto::CryptoOutcome| c.cpu_secs.unwrap_or(c.secs).max(1e-12);
            runs.sort_by(|a, b| (a.frames as f64 / t(a)).total_cmp(&(b.frames as f64 / t(b))));
            let c = runs[runs.len() / 2];
            let mpps = c.frames as f64 / t(&c) / 1e6;
            Some(CryptoFigures {
                ops_per_frame: w.ops_per_frame,
                mpps,
                mpps_wall: c.frames as f64 / c.secs.max(1e-12) / 1e6,
                ns_per_frame: t(&c) * 1e9 / c.frames.max(1) as f64,
                gbps_l2: mpps * bytes * 8.0 / 1e3,
            })
        }
        _ => None,
    };

    let ndr = match s.ndr {
        Some(n) => {
            // Upper bound: what the DUT forwards per core at top speed, plus margin.
            let top = if s.rate_pps.is_none() {
                pipeline.rate()
            } else {
                step("NDR: top speed");
                let t = trial(Mode::Pipeline, None, Stop::Duration(n.trial), links)?;
                t.tx as f64 / t.cpu_secs.unwrap_or(t.secs).max(1e-12) / 1e6
            };
            Some(ndr_search(top * 1.1, &n, bytes, &mut |mpps| {
                step(&format!("NDR: trial at {mpps:.3} Mpps"));
                trial(
                    Mode::Pipeline,
                    Some(mpps * 1e6),
                    Stop::Duration(n.trial),
                    links,
                )
            })?)
        }
        None => None,
    };

    Ok(ScenarioResult {
        scenario: prep.role.name(),
        role: prep.role,
        traffic: traffic_label.to_string(),
        backend: backend.to_string(),
        frames_per_pass: prep.input.len(),
        frame_bytes: bytes,
        lan_frame_bytes: prep.lan_mean_wire_bytes,
        offered_pps: s.rate_pps,
        // A paced trial forwards the offered rate: a ratio to a ceiling
        // would say nothing about the stages.
        ratio_io: io_ceiling
            .as_ref()
            .filter(|_| s.rate_pps.is_none())
            .map(|c| pipeline.rate() / c.rate().max(1e-12)),
        ratio_crypto: crypto_ceiling
            .as_ref()
            .filter(|_| s.rate_pps.is_none())
            .map(|c| pipeline.rate() / c.mpps.max(1e-12)),
        ratio_basis: if pipeline.mpps_on_cpu.is_some() {
            "on-cpu"
        } else {
            "wall"
        },
        pipeline,
        missed: dp.missed,
        drops: drop_map(&dp.drops),
        latency_ns: Latency::from_histogram(&dp.latency),
        io_ceiling,
        crypto_ceiling,
        ndr,
    })
}

/// Binary search for the highest offered rate (Mpps) whose trial loses at
/// most `max_loss_pct`, between 0 and `hi`.
pub fn ndr_search(
    hi: f64,
    n: &NdrSettings,
    frame_bytes: f64,
    trial: &mut dyn FnMut(f64) -> Result<TrialOutcome>,
) -> Result<Ndr> {
    let mut trials = Vec::new();
    let (mut lo, mut hi) = (0.0f64, hi.max(1e-3));
    let mut rate = hi;
    loop {
        let t = trial(rate)?;
        let f = Figures::new(t.offered, t.tx, t.secs, frame_bytes).on_cpu(t.cpu_secs);
        let pass = t.offered > 0 && f.loss_pct <= n.max_loss_pct;
        trials.push(NdrTrial {
            offered_mpps: rate,
            figures: f,
            pass,
        });
        if pass {
            lo = rate;
        } else {
            hi = rate;
        }
        if pass && trials.len() == 1 {
            break; // the top of the range already passes
        }
        if hi - lo <= n.resolution * hi {
            break;
        }
        rate = (lo + hi) / 2.0;
    }
    Ok(Ndr {
        mpps: lo,
        gbps_l1: lo * (frame_bytes + crate::traffic::L1_OVERHEAD as f64) * 8.0 / 1e3,
        max_loss_pct: n.max_loss_pct,
        resolution: n.resolution,
        trial_secs: n.trial.as_secs_f64(),
        trials,
    })
}
