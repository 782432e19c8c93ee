//! `meshplane emulate`: the constellation in one process, every node on
//! the production data plane, in virtual time (see [`crate::emulate`]).
//!
//! ```text
//! meshplane emulate --constellation starlink-550 --gateways all --pairs 500 --rate 10 --duration 10 --json out.json
//! ```

use crate::control::failures;
use crate::emulate::{self, traffic::FlowKind, Options};
use crate::file_read;
use crate::gen::FrameSize;
use anyhow::{bail, Context};
use meshplane_control::schedule::FailureEvent;
use meshplane_control::{GroundStations, Preset};
use std::path::PathBuf;

/// Arguments of `meshplane emulate`.
#[derive(clap::Args, Debug)]
pub struct EmulateArgs {
    /// Constellation preset: starlink-550, kuiper-630 or telesat-1015.
    #[arg(long, default_value = "starlink-550")]
    pub constellation: String,
    /// Ground stations CSV (default: the embedded top-100 cities).
    #[arg(long, value_name = "FILE")]
    pub ground_stations: Option<PathBuf>,
    /// The gateways: `all`, the first N stations, or a comma-separated
    /// list of names or gids.
    #[arg(long, default_value = "all", value_name = "all|N|LIST")]
    pub gateways: String,
    /// Seconds of traffic.
    #[arg(long, value_name = "SECONDS")]
    pub duration: f64,
    /// Geometry time at the start, seconds after the constellation epoch.
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    pub at: f64,
    /// Flows between `all` unordered gateway pairs, or N of them spread
    /// evenly over that list.
    #[arg(long, default_value = "all", value_name = "all|N")]
    pub pairs: String,
    /// Packets per second of each flow.
    #[arg(long, default_value_t = 10.0, value_name = "PPS")]
    pub rate: f64,
    /// Frame size on the LAN (with FCS): bytes, or imix (64/576/1500, 7:4:1).
    #[arg(long, default_value = "64", value_name = "B|imix")]
    pub size: FrameSize,
    /// `ping` (requests answered by the far host: RTT) or `oneway`.
    #[arg(long, default_value = "ping", value_name = "ping|oneway")]
    pub kind: FlowKind,
    /// The flows, from a TOML file (`[[flow]]` with from, to, rate_pps,
    /// size, kind, arrivals = cbr|poisson, dscp), instead of --pairs,
    /// --rate, --size and --kind.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pairs", "rate", "size", "kind"])]
    pub traffic: Option<PathBuf>,
    /// Write the report as JSON (schema in README.md).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Scheduled failures and repairs, one a line: seconds after the
    /// start, then `isl-down A B`, `isl-up A B`, `sat-down S` or
    /// `sat-up S` (satellite ids); `#` starts a comment. The element goes
    /// dark at that instant and every node applies the event at once, as
    /// with a planned outage in a failures file.
    #[arg(long, value_name = "FILE")]
    pub fail: Option<PathBuf>,
    /// Draw the RTT over time of chosen ping flows (`--svg-flows`) and a
    /// world map of the links' load into an SVG file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// The ping flows `--svg` draws: their numbers in the report's order,
    /// from 0, comma-separated (default: the first four ping flows).
    #[arg(long, value_name = "N,N,...", value_delimiter = ',', requires = "svg")]
    pub svg_flows: Vec<usize>,
    /// ISL capacity, Gbit/s.
    #[arg(long, default_value_t = 20.0, value_name = "GBPS")]
    pub isl_gbps: f64,
    /// GSL capacity, Gbit/s.
    #[arg(long, default_value_t = 10.0, value_name = "GBPS")]
    pub gsl_gbps: f64,
    /// Frames that may wait for a link's transmitter (then tail drop).
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub queue_frames: usize,
    /// Seconds after the traffic stops for the last packets to arrive.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    pub drain: f64,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Build every install with the satellites' node labels, as the agent
    /// does (by default a node builds them once a frame may need one: the
    /// same verdicts, sooner).
    #[arg(long)]
    pub all_labels: bool,
}

/// The scheduled failures of `--fail`: `SECONDS EVENT` a line.
pub fn parse_failures(text: &str) -> Result<Vec<(f64, FailureEvent)>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (t, ev) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let t: f64 = t
            .parse()
            .ok()
            .filter(|t: &f64| t.is_finite() && *t >= 0.0)
            .ok_or_else(|| format!("line {}: {t:?} is not a time in seconds", i + 1))?;
        match failures::parse_line(ev) {
            Ok(Some(ev)) => out.push((t, ev)),
            Ok(None) => return Err(format!("line {}: a time and no event", i + 1)),
            Err(e) => return Err(format!("line {}: {e}", i + 1)),
        }
    }
    Ok(out)
}

fn stations(path: &Option<PathBuf>) -> anyhow::Result<GroundStations> {
    Ok(match path {
        None => GroundStations::top100(),
        Some(p) => {
            let text = file_read::read_text(p, file_read::DATA_LIMIT)
                .with_context(|| format!("reading ground stations {}", p.display()))?;
            GroundStations::parse_csv(&text)
                .with_context(|| format!("in ground stations {}", p.display()))?
        }
    })
}

/// The gids `--gateways` names, ascending.
pub fn parse_gateways(spec: &str, st: &GroundStations) -> anyhow::Result<Vec<u32>> {
    let n = st.len() as u32;
    let mut out: Vec<u32> = if spec == "all" {
        (0..n).collect()
    } else if let Ok(k) = spec.parse::<u32>() {
        if k < 2 || k > n {
            bail!("--gateways {k}: want 2 to {n}");
        }
        (0..k).collect()
    } else {
        spec.split(',')
            .map(|q| {
                st.find(q.trim())
                    .with_context(|| format!("--gateways {q:?}"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    out.sort_unstable();
    out.dedup();
    if out.len() < 2 {
        bail!("--gateways: at least two gateways");
    }
    Ok(out)
}

/// Runs `meshplane emulate`.
pub fn run(a: &EmulateArgs) -> anyhow::Result<()> {
    let preset: Preset = a.constellation.parse()?;
    let st = stations(&a.ground_stations)?;
    let gateways = parse_gateways(&a.gateways, &st)?;
    let k = match a.pairs.as_str() {
        "all" => None,
        s => Some(
            s.parse::<usize>()
                .ok()
                .filter(|&k| k > 0)
                .with_context(|| format!("--pairs {s:?}: want all or a positive number"))?,
        ),
    };
    if !(a.isl_gbps > 0.0 && a.gsl_gbps > 0.0) {
        bail!("--isl-gbps and --gsl-gbps must be positive");
    }
    let pairs = emulate::pairs(gateways.len() as u32, k);
    let mut o = Options::new(preset, st, gateways);
    o.at_s = a.at;
    o.duration_s = a.duration;
    o.drain_s = a.drain;
    o.flows = match &a.traffic {
        None => emulate::flows_for(&pairs, a.rate, a.size, a.kind),
        Some(p) => {
            let text = file_read::read_text(p, file_read::DATA_LIMIT)
                .with_context(|| format!("reading traffic {}", p.display()))?;
            emulate::traffic_file::parse(&text, &o.stations, &o.gateways)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
    };
    o.isl_bps = a.isl_gbps * 1e9;
    o.gsl_bps = a.gsl_gbps * 1e9;
    o.queue_frames = a.queue_frames;
    o.progress = !a.quiet;
    if let Some(p) = &a.fail {
        let text = file_read::read_text(p, file_read::DATA_LIMIT)
            .with_context(|| format!("reading failures {}", p.display()))?;
        o.failures = parse_failures(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    }
    if a.svg.is_some() {
        o.map = true;
        if let Some(&bad) = a.svg_flows.iter().find(|&&f| f >= o.flows.len()) {
            bail!(
                "--svg-flows {bad}: there are {} flows (0 to {})",
                o.flows.len(),
                o.flows.len().saturating_sub(1)
            );
        }
        o.chart_flows = if a.svg_flows.is_empty() {
            (0..o.flows.len())
                .filter(|&f| o.flows[f].kind == FlowKind::Ping)
                .take(4)
                .collect()
        } else {
            a.svg_flows.clone()
        };
    }
    if a.all_labels {
        o.sat_labels = emulate::node::SatLabels::Always;
    }
    let mut r = emulate::run(&o)?;
    let t = &r.totals;
    crate::outln!(
        "{} satellites, {} gateways, {} flows, {} s of traffic from t = {} s (+{} s drain)",
        r.satellites,
        r.gateways.len(),
        t.flows,
        r.duration_s,
        r.at_s,
        a.drain
    )?;
    crate::outln!(
        "sent {}  received {}  replies {}  lost {}  dropped {}",
        t.sent,
        t.received,
        t.replies,
        t.lost,
        t.dropped
    )?;
    for d in &r.drops {
        crate::outln!(
            "  drop at {} ({}): {} x {}",
            d.name,
            d.node,
            d.reason,
            d.count
        )?;
    }
    let worst = r
        .flows
        .iter()
        .filter_map(|f| f.rtt_vs_routes_max_ms)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    if let Some(w) = worst {
        crate::outln!("largest RTT difference from the routes at send time: {w:.6} ms")?;
    }
    let changes: u64 = r.flows.iter().map(|f| f.path_changes).sum();
    crate::outln!(
        "path changes {changes}  epochs {}  installs {}  packet-hops {}",
        t.epochs,
        t.installs,
        t.packet_hops
    )?;
    crate::outln!(
        "wall {:.2} s (setup {:.2} s) for {:.1} s: {:.3} wall s per simulated s, {:.0} packet-hops/s",
        t.wall_s,
        t.setup_s,
        t.sim_s,
        t.wall_per_sim_s,
        t.packet_hops_per_s
    )?;
    if let Some(file) = &a.svg {
        let map = r.map.take().unwrap_or_default();
        let picture = emulate::svg::render(&r, &o.chart_flows, &map);
        std::fs::write(file, picture).with_context(|| format!("writing {}", file.display()))?;
    }
    if let Some(file) = &a.json {
        // The pings drawn are in the picture, not the report.
        r.pings.clear();
        let text = serde_json::to_string_pretty(&r)?;
        std::fs::write(file, text).with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(())
}
