//! `meshplane-bench`: throughput of meshplane's node roles over its I/O
//! backends, with the I/O and crypto ceilings measured in the same run,
//! optional NDR search, and a table, JSON and SVG report.
//!
//! ```text
//! meshplane-bench --scenario all --size 64,1420,imix --backend memory,dpdk-ring
//! meshplane-bench --scenario transit --pcap lan.pcap --rate 5mpps --duration 10
//! meshplane-bench --scenario ingress --size 64 --ndr --json out.json --svg out.svg
//! ```

use anyhow::{bail, Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use meshplane::gen::FrameSize;
use meshplane_perf::link::memory_links;
use meshplane_perf::measure::{measure, NdrSettings, Settings};
use meshplane_perf::report::{Host, Report, ScenarioResult};
use meshplane_perf::scenario::{prepare, Prepared, Role};
use meshplane_perf::traffic::{TrafficSource, L1_OVERHEAD};
use meshplane_perf::trial::Stop;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "meshplane-bench",
    about = "Throughput, loss and latency of meshplane's node roles, against the I/O and crypto ceilings of the same run"
)]
struct Args {
    /// Scenarios, comma-separated: gateway-ingress, satellite-transit,
    /// gateway-egress, chain (or ingress, transit, egress), or all.
    #[arg(long, short = 'S', default_value = "all", value_delimiter = ',')]
    scenario: Vec<String>,
    /// Generated frame sizes, comma-separated: 64, 512, 1420, imix or any
    /// size 64..=9018 (bytes on the wire, FCS included).
    #[arg(long, short, default_value = "64,512,1420,imix", value_delimiter = ',')]
    size: Vec<FrameSize>,
    /// Replay this capture of LAN traffic into gateway A instead of
    /// generated frames (read once into memory; the later roles receive
    /// what the earlier hops made of it).
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// Backends, comma-separated: memory, dpdk-ring, dpdk-null, dpdk-pcap, afxdp.
    #[arg(long, short, default_value = "memory", value_delimiter = ',')]
    backend: Vec<String>,
    /// Seconds per measured trial.
    #[arg(long, short, default_value_t = 1.0)]
    duration: f64,
    /// Offer this many frames per trial instead of running for --duration.
    #[arg(long, short)]
    count: Option<u64>,
    /// Offered rate: e.g. 2mpps, 500kpps, 100000pps, or 10gbps (on the
    /// wire, L1: 10gbps of 64 B frames is 14.88 Mpps). Default: top speed.
    #[arg(long, short)]
    rate: Option<Rate>,
    /// Unmeasured seconds before each scenario's first trial.
    #[arg(long, default_value_t = 0.3)]
    warmup: f64,
    /// Repeat each measurement this many times (interleaved); medians count.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Skip the I/O and crypto ceilings.
    #[arg(long)]
    no_baselines: bool,
    /// Search the no-drop rate (binary search on the offered rate).
    #[arg(long)]
    ndr: bool,
    /// NDR search resolution, as a fraction of the bracket's top.
    #[arg(long, default_value_t = 0.02)]
    ndr_resolution: f64,
    /// Seconds per NDR trial.
    #[arg(long, default_value_t = 1.0)]
    ndr_trial: f64,
    /// Loss allowed in a passing NDR trial, percent (> 0 makes it a PDR search).
    #[arg(long, default_value_t = 0.0)]
    ndr_loss: f64,
    /// Distinct generated frames in one replay pass.
    #[arg(long, default_value_t = 4096)]
    frames: u64,
    /// Distinct generated flows.
    #[arg(long, default_value_t = 16)]
    flows: u32,
    /// Receive ring depth of the memory backend (frames).
    #[arg(long, default_value_t = 1024)]
    ring: usize,
    /// Pin the run to this CPU core.
    #[arg(long)]
    core: Option<usize>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write plots (rate per scenario, latency distribution) as SVG here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// DPDK: run without hugepages.
    #[arg(long)]
    no_huge: bool,
    /// No progress display.
    #[arg(long, short)]
    quiet: bool,
}

/// An offered rate as given on the command line.
#[derive(Clone, Copy, Debug)]
enum Rate {
    Pps(f64),
    /// Bits per second on the wire (L1).
    Bps(f64),
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Rate, String> {
        let l = s.trim().to_ascii_lowercase();
        let split = l
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'e'))
            .unwrap_or(l.len());
        let (num, unit) = l.split_at(split);
        let v: f64 = num
            .parse()
            .map_err(|_| format!("rate {s:?}: want a number and a unit, e.g. 2mpps or 10gbps"))?;
        if v.is_nan() || v <= 0.0 {
            return Err(format!("rate {s:?} must be positive"));
        }
        Ok(match unit {
            "pps" | "" => Rate::Pps(v),
            "kpps" => Rate::Pps(v * 1e3),
            "mpps" => Rate::Pps(v * 1e6),
            "kbps" => Rate::Bps(v * 1e3),
            "mbps" => Rate::Bps(v * 1e6),
            "gbps" => Rate::Bps(v * 1e9),
            _ => {
                return Err(format!(
                    "rate {s:?}: unit {unit:?}: want pps, kpps, mpps, kbps, mbps or gbps"
                ))
            }
        })
    }
}

impl Rate {
    fn pps(self, frame_bytes: f64) -> f64 {
        match self {
            Rate::Pps(p) => p,
            Rate::Bps(b) => b / ((frame_bytes + L1_OVERHEAD as f64) * 8.0),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Memory,
    AfXdp,
    #[cfg(feature = "dpdk")]
    Dpdk(meshplane_perf::link_dpdk::DpdkKind),
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::AfXdp => "afxdp",
            #[cfg(feature = "dpdk")]
            Backend::Dpdk(k) => k.name(),
        }
    }
}

fn parse_backend(s: &str) -> Result<Backend> {
    #[cfg(feature = "dpdk")]
    use meshplane_perf::link_dpdk::DpdkKind;
    Ok(match s {
        "memory" => Backend::Memory,
        #[cfg(feature = "dpdk")]
        "dpdk-ring" | "net_ring" => Backend::Dpdk(DpdkKind::Ring),
        #[cfg(feature = "dpdk")]
        "dpdk-null" | "net_null" => Backend::Dpdk(DpdkKind::Null),
        #[cfg(feature = "dpdk")]
        "dpdk-pcap" | "net_pcap" => Backend::Dpdk(DpdkKind::Pcap),
        #[cfg(not(feature = "dpdk"))]
        "dpdk-ring" | "dpdk-null" | "dpdk-pcap" => {
            bail!("backend {s}: this build has no DPDK (feature `dpdk`)")
        }
        "afxdp" | "af_xdp" => Backend::AfXdp,
        _ => bail!("backend {s:?}: want memory, dpdk-ring, dpdk-null, dpdk-pcap or afxdp"),
    })
}

/// A time option as a `Duration`, refusing what makes no sense.
fn seconds(name: &str, v: f64, zero_ok: bool) -> Result<Duration> {
    let ok = v.is_finite() && (v > 0.0 || (zero_ok && v == 0.0));
    match ok.then(|| Duration::try_from_secs_f64(v)) {
        Some(Ok(d)) => Ok(d),
        _ => bail!(
            "{name} {v}: want a number of seconds {}",
            if zero_ok { ">= 0" } else { "> 0" }
        ),
    }
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();

    let mut roles: Vec<Role> = Vec::new();
    for s in &a.scenario {
        if s == "all" {
            roles.extend(Role::ALL);
        } else {
            roles.push(s.parse().map_err(anyhow::Error::msg)?);
        }
    }
    roles.dedup();
    let backends: Vec<Backend> = a
        .backend
        .iter()
        .map(|b| parse_backend(b))
        .collect::<Result<_>>()?;
    let duration = seconds("--duration", a.duration, false)?;
    let warmup = seconds("--warmup", a.warmup, true)?;
    let ndr_trial = seconds("--ndr-trial", a.ndr_trial, false)?;
    if !(a.ndr_resolution > 0.0 && a.ndr_resolution < 1.0) {
        bail!("--ndr-resolution must be between 0 and 1");
    }
    if a.ring == 0 || a.frames == 0 {
        bail!("--ring and --frames must be > 0");
    }
    let sources: Vec<TrafficSource> = match &a.pcap {
        Some(p) => vec![TrafficSource::Pcap(p.clone())],
        None => a
            .size
            .iter()
            .map(|&size| TrafficSource::Generator {
                size,
                frames: a.frames,
                flows: a.flows,
            })
            .collect(),
    };
    let stop = match a.count {
        Some(n) => Stop::Count(n),
        None => Stop::Duration(duration),
    };
    if let Some(c) = a.core {
        if !backends.iter().any(|b| *b != Backend::Memory)
            && !core_affinity::set_for_current(core_affinity::CoreId { id: c })
        {
            bail!("could not pin to core {c}");
        }
    }

    // Prepare every scenario's frames before measuring anything.
    let mut prepared: Vec<(String, Prepared)> = Vec::new();
    for src in &sources {
        let lan = src.load()?;
        for &role in &roles {
            let p = prepare(role, &lan)
                .with_context(|| format!("preparing {} over {}", role.name(), src.label()))?;
            prepared.push((src.label(), p));
        }
    }

    let total = (prepared.len() * backends.len()) as u64;
    let pb = if a.quiet {
        ProgressBar::hidden()
    } else {
        let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb.enable_steady_tick(Duration::from_millis(200));
        pb
    };

    let mut results: Vec<ScenarioResult> = Vec::new();
    let mut afxdp_runs = 0u32;
    #[cfg(feature = "dpdk")]
    let mut dpdk: Option<meshplane_perf::link_dpdk::DpdkBench> = None;
    for &backend in &backends {
        for (label, prep) in &prepared {
            let settings = Settings {
                stop,
                rate_pps: a.rate.map(|r| r.pps(prep.input.mean_wire_bytes())),
                warmup,
                baselines: !a.no_baselines,
                rounds: a.rounds,
                ndr: a.ndr.then_some(NdrSettings {
                    resolution: a.ndr_resolution,
                    trial: ndr_trial,
                    max_loss_pct: a.ndr_loss,
                }),
            };
            let what = format!("{} {} {}", prep.role.name(), label, backend.name());
            let mut step = |s: &str| pb.set_message(format!("{what}: {s}"));
            let r = match backend {
                Backend::Memory => {
                    let nodes: Vec<(usize, usize, usize)> = prep
                        .hops
                        .iter()
                        .map(|h| (h.node.ports.len(), h.rx_port, h.tx_port))
                        .collect();
                    let room =
                        (prep.input.max_len() + 256).max(meshplane::frame::DEFAULT_DATA_ROOM);
                    let mut links = memory_links(&nodes, a.ring, room);
                    measure(
                        prep,
                        &mut links,
                        backend.name(),
                        label,
                        &settings,
                        &mut step,
                    )
                }
                Backend::AfXdp => {
                    if prep.hops.len() != 1 {
                        pb.suspend(|| {
                            eprintln!(
                                "skipping {what}: AF_XDP runs one node; the chain runs over memory"
                            )
                        });
                        pb.inc(1);
                        continue;
                    }
                    afxdp_runs += 1;
                    let (mut links, veths) = meshplane_perf::link_afxdp::links(prep, afxdp_runs)?;
                    let r = measure(
                        prep,
                        &mut links,
                        backend.name(),
                        label,
                        &settings,
                        &mut step,
                    );
                    drop(links);
                    drop(veths);
                    r
                }
                #[cfg(feature = "dpdk")]
                Backend::Dpdk(kind) => {
                    if dpdk.is_none() {
                        dpdk = Some(meshplane_perf::link_dpdk::DpdkBench::init(
                            a.core, a.no_huge,
                        )?);
                    }
                    let d = dpdk.as_mut().context("DPDK")?;
                    if let Some(why) = meshplane_perf::link_dpdk::unsupported(prep, kind) {
                        pb.suspend(|| eprintln!("skipping {what}: {why}"));
                        pb.inc(1);
                        continue;
                    }
                    let (mut links, extra) = d.links(prep, kind)?;
                    let r = measure(
                        prep,
                        &mut links,
                        backend.name(),
                        label,
                        &settings,
                        &mut step,
                    );
                    drop(links);
                    d.release(extra)?;
                    r
                }
            };
            let r = r.with_context(|| what.clone())?;
            pb.inc(1);
            results.push(r);
        }
    }
    pb.finish_and_clear();

    let report = Report {
        tool: format!("meshplane-bench {}", env!("CARGO_PKG_VERSION")),
        host: Host::probe(),
        duration_secs: a.count.is_none().then_some(a.duration),
        count: a.count,
        ring_depth: a.ring,
        results,
    };
    println!(
        "meshplane-bench on {} ({} CPUs), one core, {}",
        report.host.cpu,
        report.host.cpus,
        match a.count {
            Some(n) => format!("{n} frames per trial"),
            None => format!("{} s per trial", a.duration),
        }
    );
    print!("{}", report.render());
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &a.svg {
        std::fs::write(p, meshplane_perf::svg::render(&report))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
