//! Full snapshot cost: propagate every satellite, build the topology, the
//! shortest-path trees to every gateway and every node's label tables;
//! and, against it, what each node adds per install for the satellites'
//! node labels: one Dijkstra from itself (its first hops toward every
//! satellite), from a satellite and from a gateway; and its precomputed
//! repairs for the failure of each of its links (each node computes its
//! own, so the snapshot carries none), from a satellite and from a
//! gateway, with the snapshot plus one node's repairs.
//!
//! `cargo bench -p meshplane-control --bench snapshot [-- RUNS]`
//! prints the median and spread of RUNS (default 21) snapshots per case,
//! each stage timed separately, on the calling thread only.

use meshplane_control::repair::{RepairTable, Repairer};
use meshplane_control::routing::{FirstHops, Router};
use meshplane_control::tables;
use meshplane_control::{Constellation, Engine, Failures, GroundStations, Preset};
use std::hint::black_box;
use std::time::{Duration, Instant};

const TOP1000: &str = include_str!("../data/ground_stations_top1000.csv");

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn case(preset: Preset, stations: GroundStations, label: &str, runs: usize) {
    let n_gs = stations.len();
    let mut e = match Engine::new(Constellation::preset(preset), stations) {
        Ok(e) => e,
        Err(err) => {
            eprintln!("{label}: {err}");
            return;
        }
    };
    let none = Failures::new();
    let plan = *e.label_plan();
    let (mut prop, mut trees, mut tabs, mut total) = (vec![], vec![], vec![], vec![]);
    let mut entries = (0, 0);
    let (mut hops_sat, mut hops_gs) = (vec![], vec![]);
    let (mut rep_sat, mut rep_gs, mut with_rep) = (vec![], vec![], vec![]);
    let mut repaired = (0, 0);
    let mut repairer = Repairer::new();
    let mut router = Router::new();
    let mut fh = FirstHops::default();
    for i in 0..runs + 2 {
        let t = i as f64 * 0.1;
        let t0 = Instant::now();
        let topo = match e.topology(t, &none) {
            Ok(x) => x,
            Err(err) => {
                eprintln!("{label}: {err}");
                return;
            }
        };
        let t1 = Instant::now();
        let spts = e.trees(&topo);
        let t2 = Instant::now();
        let tb = tables::compile(
            &topo,
            &spts,
            i as u64,
            &plan,
            &tables::default_gateway_prefix,
            None,
            &none,
        );
        let t3 = Instant::now();
        entries = tb.as_ref().map(|t| t.entry_count()).unwrap_or_default();
        black_box(&tb);
        // One node's own first hops, as its agent computes them per install.
        let sat = (i * 97 % topo.n_sats()) as u32;
        let t4 = Instant::now();
        router.first_hops_into(&topo, sat, &mut fh);
        let t5 = Instant::now();
        black_box(&fh);
        let gs = topo.gs_node((i % n_gs.max(1)) as u32);
        let t6 = Instant::now();
        router.first_hops_into(&topo, gs, &mut fh);
        let t7 = Instant::now();
        black_box(&fh);
        // One node's repairs, as its agent computes them per install.
        let r_sat = repairer.node_repairs(&topo, &spts, &plan, i as u64, sat);
        let t8 = Instant::now();
        let r_gs = repairer.node_repairs(&topo, &spts, &plan, i as u64, gs);
        let t9 = Instant::now();
        let entries = |r: &Result<RepairTable, _>| r.as_ref().map_or(0, |t| t.counts().entries);
        repaired = (entries(&r_sat), entries(&r_gs));
        black_box((&r_sat, &r_gs));
        if i >= 2 {
            rep_sat.push(t8 - t7);
            rep_gs.push(t9 - t8);
            // A deployed node is one or the other: the dearer one.
            with_rep.push(t3 - t0 + (t8 - t7).max(t9 - t8));
            prop.push(t1 - t0);
            trees.push(t2 - t1);
            tabs.push(t3 - t2);
            total.push(t3 - t0);
            hops_sat.push(t5 - t4);
            hops_gs.push(t7 - t6);
        }
    }
    let snapshot = median(&mut total);
    let (hs, hg) = (median(&mut hops_sat), median(&mut hops_gs));
    let (rs, rg) = (median(&mut rep_sat), median(&mut rep_gs));
    let with = median(&mut with_rep);
    println!(
        "{label:<28} {n_gs:>5} GS  total {:>7.2} ms (min {:>6.2}, max {:>6.2})  \
         = topology {:>6.2} + trees {:>6.2} + tables {:>6.2}   [{} FEC, {} LFIB entries]",
        ms(snapshot),
        ms(*total.first().unwrap_or(&Duration::ZERO)),
        ms(*total.last().unwrap_or(&Duration::ZERO)),
        ms(median(&mut prop)),
        ms(median(&mut trees)),
        ms(median(&mut tabs)),
        entries.0,
        entries.1,
    );
    println!(
        "{:<28} {:>9}  first hops {:>6.3} ms from a satellite, {:>6.3} ms from a gateway \
         ({:.1}% / {:.1}% of a snapshot)",
        "",
        "",
        ms(hs),
        ms(hg),
        100.0 * hs.as_secs_f64() / snapshot.as_secs_f64(),
        100.0 * hg.as_secs_f64() / snapshot.as_secs_f64(),
    );
    println!(
        "{:<28} {:>9}  repairs    {:>6.3} ms for a satellite ({} entries), {:>6.3} ms for a gateway \
         ({} entries); snapshot + one node's repairs {:>6.2} ms ({:.2}x the snapshot)",
        "",
        "",
        ms(rs),
        repaired.0,
        ms(rg),
        repaired.1,
        ms(with),
        with.as_secs_f64() / snapshot.as_secs_f64(),
    );
}

fn main() {
    let runs = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(21)
        .max(1);
    let top1000 = match GroundStations::parse_csv(TOP1000) {
        Ok(g) => g,
        Err(err) => {
            eprintln!("top1000: {err}");
            return;
        }
    };
    println!(
        "median of {runs} full snapshots (propagate + topology, SPTs to every gateway, all tables), \
         and of one node's first hops toward every satellite and its link repairs, one core"
    );
    case(
        Preset::Starlink550,
        GroundStations::top100(),
        "starlink-550 / top100",
        runs,
    );
    case(
        Preset::Starlink550,
        top1000.clone(),
        "starlink-550 / top1000",
        runs.min(7),
    );
    case(
        Preset::Kuiper630,
        GroundStations::top100(),
        "kuiper-630 / top100",
        runs,
    );
    case(
        Preset::Telesat1015,
        GroundStations::top100(),
        "telesat-1015 / top100",
        runs,
    );
}
