//! Full snapshot cost: propagate every satellite, build the topology, the
//! shortest-path trees to every gateway and every node's label tables.
//!
//! `cargo bench -p meshplane-control --bench snapshot [-- RUNS]`
//! prints the median and spread of RUNS (default 21) snapshots per case,
//! each stage timed separately, on the calling thread only.

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
        if i >= 2 {
            prop.push(t1 - t0);
            trees.push(t2 - t1);
            tabs.push(t3 - t2);
            total.push(t3 - t0);
        }
    }
    println!(
        "{label:<28} {n_gs:>5} GS  total {:>7.2} ms (min {:>6.2}, max {:>6.2})  \
         = topology {:>6.2} + trees {:>6.2} + tables {:>6.2}   [{} FEC, {} LFIB entries]",
        ms(median(&mut total)),
        ms(*total.first().unwrap_or(&Duration::ZERO)),
        ms(*total.last().unwrap_or(&Duration::ZERO)),
        ms(median(&mut prop)),
        ms(median(&mut trees)),
        ms(median(&mut tabs)),
        entries.0,
        entries.1,
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
    println!("median of {runs} full snapshots (propagate + topology, SPTs to every gateway, all tables), one core");
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
