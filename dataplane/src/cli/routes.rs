//! `meshplane routes`: paths and RTTs between ground stations, computed by
//! the control plane from the constellation's geometry.
//!
//! ```text
//! meshplane routes --constellation kuiper-630 --at 32.9 --from "Rio de Janeiro" --to "Saint Petersburg"
//! meshplane routes --all --at 10 --csv                     # src_gid,dst_gid,rtt_ms
//! meshplane routes --series --from Manila --to Dalian --step-ms 100 --duration-s 200 --svg rtt.svg
//! ```
//!
//! Node ids: satellites `0..N-1`, ground station `gid` is `N + gid`.
//! RTT is `2 * path length / c`. Ground stations default to the embedded
//! 100 most populous cities (Hypatia's `top_100`).

use crate::file_read;
use crate::world_map;
use anyhow::{bail, Context};
use meshplane_control::constellation::Preset;
use meshplane_control::propagate::Ecef;
use meshplane_control::routing::Path;
use meshplane_control::topology::{GslRule, Topology};
use meshplane_control::{tle, Constellation, Engine, Failures, GroundStations};
use serde_json::json;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Most backup paths `--backups` asks for (a ground station rarely has
/// more disjoint ways out than satellites in view).
pub const MAX_BACKUPS: usize = 64;
// `--backups`'s help says 64: keep the two in step.
const _: () = assert!(MAX_BACKUPS == 64);

/// Arguments of `meshplane routes`.
#[derive(clap::Args, Debug)]
pub struct RoutesArgs {
    /// Constellation preset: starlink-550, kuiper-630 or telesat-1015.
    #[arg(long, default_value = "starlink-550")]
    pub constellation: String,
    /// Satellites from a TLE file (Celestrak 3-line, or Hypatia's tles.txt)
    /// instead of the preset's generated ones; the preset still gives the
    /// GSL range and, when the count matches, the +Grid ISLs.
    #[arg(long, value_name = "FILE")]
    pub tle: Option<PathBuf>,
    /// Ground stations CSV `id,name,latitude_deg,longitude_deg,elevation_m`
    /// (default: the embedded top-100 cities).
    #[arg(long, value_name = "FILE")]
    pub ground_stations: Option<PathBuf>,
    /// Time in seconds after the constellation epoch.
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    pub at: f64,
    /// Source ground station: name (loosely matched) or gid.
    #[arg(long, value_name = "NAME|ID")]
    pub from: Option<String>,
    /// Destination ground station: name (loosely matched) or gid.
    #[arg(long, value_name = "NAME|ID")]
    pub to: Option<String>,
    /// Print one JSON object (single path) or array (series).
    #[arg(long)]
    pub json: bool,
    /// Write an SVG: a world map with the path, or the RTT plot with --series.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Every ground-station pair at --at.
    #[arg(long, conflicts_with_all = ["series", "from", "to"])]
    pub all: bool,
    /// With --all: CSV `src_gid,dst_gid,rtt_ms` (unreachable pairs: `inf`).
    #[arg(long)]
    pub csv: bool,
    /// RTT from --from to --to over time, starting at --at.
    #[arg(long)]
    pub series: bool,
    /// Time step of --series in milliseconds.
    #[arg(long, default_value_t = 100, value_name = "MS")]
    pub step_ms: u64,
    /// Length of --series in seconds.
    #[arg(long, default_value_t = 200.0, value_name = "SECONDS")]
    pub duration_s: f64,
    /// Use GSLs above this elevation angle instead of the preset's slant range.
    #[arg(long, value_name = "DEGREES")]
    pub min_elevation_deg: Option<f64>,
    /// Also show up to this many link-disjoint backup paths (single path),
    /// 0 to 64 (`MAX_BACKUPS`).
    #[arg(long, default_value_t = 0, value_name = "K",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=MAX_BACKUPS as u64))]
    pub backups: usize,
}

/// Runs `meshplane routes`.
pub fn run(args: &RoutesArgs) -> anyhow::Result<()> {
    if !args.at.is_finite() {
        bail!("--at must be a number of seconds, got {}", args.at);
    }
    if args.series {
        series_steps(args)?;
    }
    let mut engine = build_engine(args)?;
    if args.all {
        return all_pairs(&mut engine, args);
    }
    let (Some(from), Some(to)) = (&args.from, &args.to) else {
        bail!("--from and --to are required (or use --all for every pair)");
    };
    let src = engine.stations().find(from)?;
    let dst = engine.stations().find(to)?;
    if src == dst {
        bail!(
            "--from and --to are the same ground station ({})",
            station_label(&engine, src)
        );
    }
    if args.series {
        series(&mut engine, args, src, dst)
    } else {
        single(&mut engine, args, src, dst)
    }
}

fn build_engine(args: &RoutesArgs) -> anyhow::Result<Engine> {
    let preset: Preset = args.constellation.parse()?;
    let params = preset.params();
    let constellation = match &args.tle {
        None => Constellation::preset(preset),
        Some(path) => {
            let text = file_read::read_text(path, file_read::DATA_LIMIT)
                .with_context(|| format!("reading TLE file {}", path.display()))?;
            let set =
                tle::parse(&text).with_context(|| format!("in TLE file {}", path.display()))?;
            let grid = (set.grid.is_none()
                && set.tles.len() == params.planes * params.sats_per_plane)
                .then_some((params.planes, params.sats_per_plane));
            if grid.is_none() && set.grid.is_none() {
                eprintln!(
                    "note: {} satellites do not form the {} grid ({} x {}): no ISLs, paths use single satellites",
                    set.tles.len(),
                    preset,
                    params.planes,
                    params.sats_per_plane
                );
            }
            Constellation::from_tles(set, grid, params.max_gsl_length_m)
                .with_context(|| format!("in TLE file {}", path.display()))?
        }
    };
    let stations = match &args.ground_stations {
        None => GroundStations::top100(),
        Some(path) => {
            let text = file_read::read_text(path, file_read::DATA_LIMIT)
                .with_context(|| format!("reading ground stations {}", path.display()))?;
            GroundStations::parse_csv(&text)
                .with_context(|| format!("in ground stations {}", path.display()))?
        }
    };
    let engine = match args.min_elevation_deg {
        Some(el) if (0.0..90.0).contains(&el) => {
            Engine::with_gsl_rule(constellation, stations, GslRule::MinElevationDeg(el))?
        }
        Some(el) => bail!("--min-elevation-deg must be in [0, 90), got {el}"),
        None => Engine::new(constellation, stations)?,
    };
    Ok(engine)
}

fn station_label(e: &Engine, gid: u32) -> String {
    let name = e
        .stations()
        .stations
        .get(gid as usize)
        .map(|s| s.name.as_str())
        .unwrap_or("?");
    format!(
        "{name} (gid {gid}, node {})",
        e.constellation().len() + gid as usize
    )
}

fn why_unreachable(topo: &Topology, e: &Engine, src: u32, dst: u32) -> String {
    let mut why = Vec::new();
    for g in [src, dst] {
        if topo.gsl_of(g as usize).0.is_empty() {
            why.push(format!("{} has no satellite in view", station_label(e, g)));
        }
    }
    if why.is_empty() {
        why.push("the satellites in view are not connected".into());
    }
    why.join("; ")
}

fn single(e: &mut Engine, args: &RoutesArgs, src: u32, dst: u32) -> anyhow::Result<()> {
    let topo = e.topology(args.at, &Failures::new())?;
    let paths = e.disjoint_paths(&topo, src, dst, args.backups.saturating_add(1));
    let Some(path) = paths.first() else {
        bail!(
            "no path from {} to {} at t = {} s: {}",
            station_label(e, src),
            station_label(e, dst),
            args.at,
            why_unreachable(&topo, e, src, dst)
        );
    };
    if args.json {
        let backups: Vec<_> = paths[1..]
            .iter()
            .map(|p| json!({"path": p.nodes, "hops": p.hops(), "distance_m": p.length_m, "rtt_ms": p.rtt_ms()}))
            .collect();
        let obj = json!({
            "constellation": e.constellation().name,
            "t_s": args.at,
            "src": {"gid": src, "node": topo.gs_node(src), "name": e.stations().stations[src as usize].name},
            "dst": {"gid": dst, "node": topo.gs_node(dst), "name": e.stations().stations[dst as usize].name},
            "path": path.nodes,
            "hops": path.hops(),
            "distance_m": path.length_m,
            "one_way_ms": path.one_way_ms(),
            "rtt_ms": path.rtt_ms(),
            "backups": backups,
        });
        crate::outln!("{}", serde_json::to_string_pretty(&obj)?)?;
    } else {
        crate::outln!(
            "{} -> {} at t = {} s ({})",
            station_label(e, src),
            station_label(e, dst),
            args.at,
            e.constellation().name
        )?;
        print_path("path", path)?;
        for (i, p) in paths[1..].iter().enumerate() {
            print_path(&format!("backup {}", i + 1), p)?;
        }
    }
    if let Some(file) = &args.svg {
        let svg = map_svg(e, &topo, &paths, src, dst, args.at);
        std::fs::write(file, svg).with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(())
}

fn print_path(what: &str, p: &Path) -> Result<(), crate::cli::stdout::StdoutError> {
    let nodes: Vec<String> = p.nodes.iter().map(u32::to_string).collect();
    crate::outln!("{what}: {}", nodes.join(" -> "))?;
    crate::outln!(
        "  hops {}   one-way {:.3} km, {:.6} ms   RTT {:.6} ms",
        p.hops(),
        p.length_m / 1e3,
        p.one_way_ms(),
        p.rtt_ms()
    )
}

fn all_pairs(e: &mut Engine, args: &RoutesArgs) -> anyhow::Result<()> {
    let snap = e.routes(args.at, &Failures::new())?;
    let n = e.stations().len() as u32;
    let mut out = String::with_capacity(n as usize * n as usize * 16);
    if args.csv {
        out.push_str("src_gid,dst_gid,rtt_ms\n");
    }
    for s in 0..n {
        for d in 0..n {
            if s == d {
                continue;
            }
            let rtt = snap.rtt_ms(s, d);
            if args.csv {
                match rtt {
                    Some(r) => writeln!(out, "{s},{d},{r:.6}")?,
                    None => writeln!(out, "{s},{d},inf")?,
                }
            } else {
                let name = |g: u32| e.stations().stations[g as usize].name.as_str();
                match rtt {
                    Some(r) => writeln!(
                        out,
                        "{s:>4} {:<36} {d:>4} {:<36} {r:>10.3} ms",
                        name(s),
                        name(d)
                    )?,
                    None => writeln!(
                        out,
                        "{s:>4} {:<36} {d:>4} {:<36} unreachable",
                        name(s),
                        name(d)
                    )?,
                }
            }
        }
    }
    crate::out!("{out}")?;
    Ok(())
}

struct Sample {
    t_s: f64,
    path: Option<Path>,
}

/// Most samples one `--series` computes (a million: a day at 100 ms steps).
pub const MAX_SERIES_STEPS: u64 = 1_000_000;

/// The number of samples `--series` takes, or why the arguments are refused.
fn series_steps(args: &RoutesArgs) -> anyhow::Result<u64> {
    if args.step_ms == 0 {
        bail!("--step-ms must be positive");
    }
    if !(args.duration_s.is_finite() && args.duration_s > 0.0) {
        bail!("--duration-s must be a positive number of seconds");
    }
    let steps = (args.duration_s * 1000.0 / args.step_ms as f64)
        .round()
        .max(1.0);
    if steps > MAX_SERIES_STEPS as f64 {
        bail!(
            "--duration-s {} at --step-ms {} is {steps} samples; at most {MAX_SERIES_STEPS}",
            args.duration_s,
            args.step_ms
        );
    }
    Ok(steps as u64)
}

fn series(e: &mut Engine, args: &RoutesArgs, src: u32, dst: u32) -> anyhow::Result<()> {
    let steps = series_steps(args)?;
    let mut samples = Vec::with_capacity(steps as usize);
    for i in 0..steps {
        let t = args.at + i as f64 * args.step_ms as f64 / 1000.0;
        let topo = e.topology(t, &Failures::new())?;
        let spt = e.tree(&topo, dst);
        samples.push(Sample {
            t_s: t,
            path: spt.path_from(topo.gs_node(src)),
        });
    }
    let changed = |i: usize| {
        i == 0
            || samples[i].path.as_ref().map(|p| &p.nodes)
                != samples[i - 1].path.as_ref().map(|p| &p.nodes)
    };
    if args.json {
        let arr: Vec<_> = samples
            .iter()
            .enumerate()
            .map(|(i, s)| {
                json!({
                    "t_s": s.t_s,
                    "rtt_ms": s.path.as_ref().map(Path::rtt_ms),
                    "hops": s.path.as_ref().map(Path::hops),
                    "path_changed": changed(i),
                    "path": s.path.as_ref().map(|p| &p.nodes),
                })
            })
            .collect();
        crate::outln!("{}", serde_json::to_string_pretty(&arr)?)?;
    } else {
        crate::outln!(
            "{} -> {} ({}), t = {} s + {} x {} ms",
            station_label(e, src),
            station_label(e, dst),
            e.constellation().name,
            args.at,
            steps,
            args.step_ms
        )?;
        crate::outln!("{:>10}  {:>12}  {:>4}", "t_s", "rtt_ms", "hops")?;
        let mut out = String::new();
        for (i, s) in samples.iter().enumerate() {
            match &s.path {
                Some(p) => writeln!(
                    out,
                    "{:>10.3}  {:>12.6}  {:>4}",
                    s.t_s,
                    p.rtt_ms(),
                    p.hops()
                )?,
                None => writeln!(out, "{:>10.3}  {:>12}  {:>4}", s.t_s, "unreachable", "-")?,
            }
            if changed(i) && i > 0 {
                match &s.path {
                    Some(p) => {
                        let nodes: Vec<String> = p.nodes.iter().map(u32::to_string).collect();
                        writeln!(out, "            path change: {}", nodes.join(" -> "))?;
                    }
                    None => writeln!(out, "            path change: disconnected")?,
                }
            } else if i == 0 {
                if let Some(p) = &s.path {
                    let nodes: Vec<String> = p.nodes.iter().map(u32::to_string).collect();
                    writeln!(out, "            path: {}", nodes.join(" -> "))?;
                }
            }
        }
        crate::out!("{out}")?;
        let changes = (1..samples.len()).filter(|&i| changed(i)).count();
        let rtts: Vec<f64> = samples
            .iter()
            .filter_map(|s| s.path.as_ref().map(Path::rtt_ms))
            .collect();
        if let (Some(lo), Some(hi)) = (
            rtts.iter().copied().reduce(f64::min),
            rtts.iter().copied().reduce(f64::max),
        ) {
            crate::outln!(
                "RTT {lo:.3} .. {hi:.3} ms, {changes} path changes, unreachable in {} of {} steps",
                samples.len() - rtts.len(),
                samples.len()
            )?;
        }
    }
    if let Some(file) = &args.svg {
        let svg = series_svg(e, &samples, src, dst);
        std::fs::write(file, svg).with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(())
}

/// Colours of the path and of each backup (cycled).
const PATH_COLOURS: [&str; 6] = [
    "#ff5a4e", "#4ee0ff", "#b07cff", "#5dff8a", "#ffa24e", "#ff7ce0",
];

/// Equirectangular world map at time `t`: land, graticule, every ISL of
/// the topology, satellites and gateways, then `paths` (the first is the
/// path, the rest backups) with their ISL and GSL hops, and a legend.
fn map_svg(e: &Engine, topo: &Topology, paths: &[Path], src: u32, dst: u32, t: f64) -> String {
    const W: f64 = 1440.0;
    const H: f64 = 720.0;
    const FOOT: f64 = 40.0;
    let x = |lon: f64| (lon + 180.0) / 360.0 * W;
    let y = |lat: f64| (90.0 - lat) / 180.0 * H;
    let n = topo.n_sats();
    let pos = |node: u32| -> Ecef {
        if (node as usize) < n {
            topo.sat_pos[node as usize]
        } else {
            e.stations().stations[node as usize - n].ecef
        }
    };
    // A segment between two points, split where it crosses the antimeridian.
    let segment = |s: &mut String, (la0, lo0): (f64, f64), (la1, lo1): (f64, f64), style: &str| {
        if (lo1 - lo0).abs() > 180.0 {
            let lo1 = lo1 + if lo1 < lo0 { 360.0 } else { -360.0 };
            for shift in [0.0, if lo1 > 180.0 { -360.0 } else { 360.0 }] {
                let _ = writeln!(
                    s,
                    r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" {style}/>"##,
                    x(lo0 + shift),
                    y(la0),
                    x(lo1 + shift),
                    y(la1)
                );
            }
        } else {
            let _ = writeln!(
                s,
                r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" {style}/>"##,
                x(lo0),
                y(la0),
                x(lo1),
                y(la1)
            );
        }
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{}" viewBox="0 0 {W} {}" font-family="sans-serif">"##,
        H + FOOT,
        H + FOOT
    );
    let _ = writeln!(
        s,
        r##"<rect width="{W}" height="{}" fill="#ffffff"/>"##,
        H + FOOT
    );
    let _ = writeln!(s, r##"<rect width="{W}" height="{H}" fill="#0b1d33"/>"##);
    s.push_str(r##"<g fill="#1f3b2a" stroke="#3d6b4c" stroke-width="0.6">"##);
    world_map::land(&mut s, x, y);
    s.push_str("</g>\n");
    for lon in (-180..=180).step_by(30) {
        let _ = writeln!(
            s,
            r##"<line x1="{0}" y1="0" x2="{0}" y2="{H}" stroke="#23405f" stroke-width="1"/>"##,
            x(lon as f64)
        );
    }
    for lat in (-90..=90).step_by(30) {
        let _ = writeln!(
            s,
            r##"<line x1="0" y1="{0}" x2="{W}" y2="{0}" stroke="#23405f" stroke-width="1"/>"##,
            y(lat as f64)
        );
    }
    let sat_ll: Vec<(f64, f64)> = topo.sat_pos.iter().map(world_map::lat_lon).collect();
    s.push_str(r##"<g stroke="#4d6b8a" stroke-width="0.4" opacity="0.7">"##);
    for (a, b, _) in topo.isls() {
        if let (Some(&p), Some(&q)) = (sat_ll.get(a as usize), sat_ll.get(b as usize)) {
            segment(&mut s, p, q, "");
        }
    }
    s.push_str("</g>\n");
    for &(la, lo) in &sat_ll {
        let _ = writeln!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="1.6" fill="#8aa4bf"/>"##,
            x(lo),
            y(la)
        );
    }
    for g in &e.stations().stations {
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="5" height="5" fill="#3fa7ff"><title>{} (gid {})</title></rect>"##,
            x(g.longitude_deg) - 2.5,
            y(g.latitude_deg) - 2.5,
            world_map::escape(&g.name),
            g.gid
        );
    }
    // Backups first, so the path is drawn on top: ISL hops solid, GSL hops
    // (to or from a gateway) dashed; backups thinner.
    for (k, path) in paths.iter().enumerate().rev() {
        let colour = PATH_COLOURS[k % PATH_COLOURS.len()];
        let width = if k == 0 { 2.5 } else { 1.6 };
        let pts: Vec<(f64, f64)> = path
            .nodes
            .iter()
            .map(|&v| world_map::lat_lon(&pos(v)))
            .collect();
        for (w, nodes) in pts.windows(2).zip(path.nodes.windows(2)) {
            let gsl = nodes.iter().any(|&v| v as usize >= n);
            let dash = if gsl {
                r#" stroke-dasharray="6 3""#
            } else {
                ""
            };
            let style = format!(r#"stroke="{colour}" stroke-width="{width}"{dash}"#);
            segment(&mut s, w[0], w[1], &style);
        }
        for (&v, &(la, lo)) in path.nodes.iter().zip(&pts) {
            let (r, fill) = if (v as usize) < n {
                (if k == 0 { 3.5 } else { 2.5 }, colour)
            } else {
                (6.0, colour)
            };
            let _ = writeln!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="{r}" fill="{fill}" stroke="#0b1d33" stroke-width="0.8"><title>node {v}</title></circle>"##,
                x(lo),
                y(la)
            );
        }
    }
    // Legend, bottom left over the ocean.
    let rows = 4 + paths.len();
    let (lx, ly) = (12.0, H - 12.0 - 18.0 * rows as f64);
    let _ = writeln!(
        s,
        r##"<rect x="{lx}" y="{:.1}" width="330" height="{:.1}" fill="#0b1d33" fill-opacity="0.85" stroke="#8aa4bf" stroke-width="0.6"/>"##,
        ly - 8.0,
        18.0 * rows as f64 + 8.0
    );
    let mut row = 0.0;
    let mut entry = |s: &mut String, mark: String, text: &str| {
        let yy = ly + 10.0 + 18.0 * row;
        let _ = writeln!(
            s,
            "{}",
            mark.replace("{Y}", &format!("{yy:.1}"))
                .replace("{X}", &format!("{:.1}", lx + 10.0))
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="12" fill="#e8eef5">{}</text>"##,
            lx + 44.0,
            yy + 4.0,
            world_map::escape(text)
        );
        row += 1.0;
    };
    entry(&mut s, r##"<rect x="{X}" y="{Y}" width="24" height="8" transform="translate(0,-4)" fill="#1f3b2a" stroke="#3d6b4c"/>"##.into(), "land (Natural Earth 1:110m)");
    entry(
        &mut s,
        format!(
            r##"<line x1="{{X}}" y1="{{Y}}" x2="{:.1}" y2="{{Y}}" stroke="#4d6b8a" stroke-width="1"/>"##,
            lx + 34.0
        ),
        &format!("ISLs at t = {t} s ({})", topo.isls().count()),
    );
    entry(
        &mut s,
        r##"<circle cx="{X}" cy="{Y}" r="2" fill="#8aa4bf" transform="translate(12,0)"/>"##.into(),
        &format!("{} satellites", n),
    );
    entry(&mut s, r##"<rect x="{X}" y="{Y}" width="5" height="5" transform="translate(10,-2.5)" fill="#3fa7ff"/>"##.into(), "ground stations");
    for (k, p) in paths.iter().enumerate() {
        let colour = PATH_COLOURS[k % PATH_COLOURS.len()];
        let what = if k == 0 {
            "path".to_string()
        } else {
            format!("backup {k}")
        };
        entry(
            &mut s,
            format!(
                r##"<line x1="{{X}}" y1="{{Y}}" x2="{:.1}" y2="{{Y}}" stroke="{colour}" stroke-width="2.5"/>"##,
                lx + 34.0
            ),
            &format!(
                "{what}: {} hops, RTT {:.2} ms (GSLs dashed)",
                p.hops(),
                p.rtt_ms()
            ),
        );
    }
    let stations = &e.stations().stations;
    let path = &paths[0];
    let _ = writeln!(
        s,
        r##"<text x="8" y="{}" font-size="16" fill="#222">{} -> {} at t = {t} s ({}): {} hops, RTT {:.3} ms{}</text>"##,
        H + 26.0,
        world_map::escape(&stations[src as usize].name),
        world_map::escape(&stations[dst as usize].name),
        world_map::escape(&e.constellation().name),
        path.hops(),
        path.rtt_ms(),
        match paths.len() {
            1 => String::new(),
            k => format!(", {} backups", k - 1),
        }
    );
    s.push_str("</svg>\n");
    s
}

/// RTT over time with path changes marked.
fn series_svg(e: &Engine, samples: &[Sample], src: u32, dst: u32) -> String {
    const W: f64 = 1000.0;
    const H: f64 = 480.0;
    const L: f64 = 70.0;
    const R: f64 = 20.0;
    const T: f64 = 40.0;
    const B: f64 = 50.0;
    let rtts: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.path.as_ref().map(Path::rtt_ms))
        .collect();
    let lo = rtts.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = rtts.iter().copied().fold(0.0, f64::max);
    let (lo, hi) = if lo.is_finite() {
        ((lo - 5.0).max(0.0).floor(), (hi + 5.0).ceil())
    } else {
        (0.0, 1.0)
    };
    let t0 = samples.first().map_or(0.0, |s| s.t_s);
    let t1 = samples.last().map_or(1.0, |s| s.t_s).max(t0 + 1e-9);
    let x = |t: f64| L + (t - t0) / (t1 - t0) * (W - L - R);
    let y = |r: f64| T + (hi - r) / (hi - lo) * (H - T - B);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"##
    );
    let _ = writeln!(s, r##"<rect width="{W}" height="{H}" fill="white"/>"##);
    let stations = &e.stations().stations;
    let _ = writeln!(
        s,
        r##"<text x="{L}" y="24" font-size="15">RTT {} -> {} ({})</text>"##,
        world_map::escape(&stations[src as usize].name),
        world_map::escape(&stations[dst as usize].name),
        world_map::escape(&e.constellation().name)
    );
    for k in 0..=5 {
        let r = lo + (hi - lo) * k as f64 / 5.0;
        let _ = writeln!(
            s,
            r##"<line x1="{L}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#ddd"/><text x="{2}" y="{3:.1}" text-anchor="end">{r:.1}</text>"##,
            y(r),
            W - R,
            L - 6.0,
            y(r) + 4.0
        );
        let t = t0 + (t1 - t0) * k as f64 / 5.0;
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{}" text-anchor="middle">{t:.1}</text>"##,
            x(t),
            H - B + 18.0
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{}" text-anchor="middle">time since epoch (s)</text>"##,
        (L + W - R) / 2.0,
        H - 12.0
    );
    let _ = writeln!(
        s,
        r##"<text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">RTT (ms)</text>"##,
        H / 2.0,
        H / 2.0
    );
    for (i, smp) in samples.iter().enumerate().skip(1) {
        if smp.path.as_ref().map(|p| &p.nodes) != samples[i - 1].path.as_ref().map(|p| &p.nodes) {
            let _ = writeln!(
                s,
                r##"<line x1="{0:.1}" y1="{T}" x2="{0:.1}" y2="{1}" stroke="#f0a0a0" stroke-dasharray="3,3"/>"##,
                x(smp.t_s),
                H - B
            );
        }
    }
    let mut d = String::new();
    let mut pen_down = false;
    for smp in samples {
        match &smp.path {
            Some(p) => {
                let _ = write!(
                    d,
                    "{}{:.2},{:.2} ",
                    if pen_down { "L" } else { "M" },
                    x(smp.t_s),
                    y(p.rtt_ms())
                );
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    let _ = writeln!(
        s,
        r##"<path d="{d}" fill="none" stroke="#1f5fbf" stroke-width="1.5"/>"##
    );
    let _ = writeln!(
        s,
        r##"<rect x="{L}" y="{T}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
        W - L - R,
        H - T - B
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        routes: RoutesArgs,
    }
    /// The map of a path with backups draws land, the ISLs, each path and
    /// a legend naming them, with the time.
    #[test]
    fn the_route_map_draws_land_links_backups_and_a_legend() {
        let mut a = args(&[]);
        a.series = false;
        a.at = 100.0;
        a.backups = 2;
        let mut e = build_engine(&a).expect("engine");
        let (src, dst) = (
            e.stations().find("London").expect("London"),
            e.stations().find("Paris").expect("Paris"),
        );
        let topo = e.topology(a.at, &Failures::new()).expect("topology");
        let paths = e.disjoint_paths(&topo, src, dst, 3);
        assert!(paths.len() >= 2, "backups exist");
        let svg = map_svg(&e, &topo, &paths, src, dst, a.at);
        assert!(svg.matches("<path d=").count() > 100, "land drawn");
        assert!(svg.contains("land (Natural Earth 1:110m)"));
        assert!(svg.contains(&format!("ISLs at t = 100 s ({})", topo.isls().count())));
        assert!(svg.contains("path: ") && svg.contains("backup 1: "));
        assert!(svg.contains("stroke-dasharray"), "GSL hops dashed");
        assert!(svg.contains("at t = 100 s"));
    }

    fn args(extra: &[&str]) -> RoutesArgs {
        let mut argv = vec!["routes", "--series", "--from", "London", "--to", "Paris"];
        argv.extend_from_slice(extra);
        Cli::parse_from(argv).routes
    }

    #[test]
    fn series_longer_than_the_limit_is_refused_before_any_work() {
        let e =
            run(&args(&["--duration-s", "1e300", "--step-ms", "1"])).expect_err("too many samples");
        assert!(e.to_string().contains("at most 1000000"), "{e}");
        let e = run(&args(&[
            "--step-ms",
            "18446744073709551615",
            "--duration-s",
            "1e30",
        ]))
        .expect_err("too many samples");
        assert!(e.to_string().contains("at most 1000000"), "{e}");
        let e = run(&args(&["--step-ms", "0"])).expect_err("zero step");
        assert!(e.to_string().contains("--step-ms must be positive"), "{e}");
        assert_eq!(series_steps(&args(&[])).expect("defaults"), 2000);
    }
}
