//! Floods one link-state notice over Starlink-550's ISLs at t = 0 (all 1584
//! satellites, one flooder each, delays from the link lengths at the speed
//! of light plus 100 us per datagram) and prints how long it took and how
//! many messages it cost: once on a loss-free mesh, once with links that
//! silently lose everything and 10% of all datagrams lost (with the default
//! flood bound and with a wider one).
//!
//! `cargo run -p meshplane-control --example flood_sim [-- SEED]`
//!
//! Signatures here are a keyed-hash stand-in (the simulation measures the
//! protocol, not the cryptography); it is not a signature and not for use
//! anywhere else.

use meshplane_control::flood_sim::{simulate, SimConfig, SimReport};
use meshplane_control::notice::Link;
use meshplane_control::signing::{NoticeSigner, NoticeVerifier, SIGNATURE_LEN};
use meshplane_control::topology::Topology;
use meshplane_control::{Constellation, Engine, Failures, GroundStations, NodeId, Preset};
use std::hash::{DefaultHasher, Hash, Hasher};

/// Keyed-hash stand-in for Ed25519 (see the module comment).
#[derive(Clone, Copy)]
struct StandIn(NodeId);

fn mac(node: NodeId, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
    let mut out = [0; SIGNATURE_LEN];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        let mut h = DefaultHasher::new();
        (0x5eedu64, node, i, msg).hash(&mut h);
        chunk.copy_from_slice(&h.finish().to_be_bytes());
    }
    out
}

impl NoticeSigner for StandIn {
    fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        mac(self.0, msg)
    }
}

impl NoticeVerifier for StandIn {
    fn verify(&self, origin: NodeId, msg: &[u8], sig: &[u8; SIGNATURE_LEN]) -> bool {
        mac(origin, msg) == *sig
    }
}

fn run(topo: &Topology, label: &str, cfg: &SimConfig) -> SimReport {
    let r = simulate(topo, cfg, StandIn, StandIn);
    println!("== {label}");
    println!("{r}");
    println!();
    r
}

fn main() {
    let seed = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<u64>().ok())
        .unwrap_or(7);
    let topo = match Engine::new(
        Constellation::preset(Preset::Starlink550),
        GroundStations::default(),
    )
    .and_then(|e| e.topology(0.0, &Failures::new()))
    {
        Ok(t) => t,
        Err(err) => {
            eprintln!("starlink-550: {err}");
            return;
        }
    };
    let base = SimConfig::default();
    println!(
        "starlink-550 at t = 0, flood bound {} ms, retransmit {} ms doubling to {} ms, \
         {} us per datagram",
        base.flood.flood_bound_ns / 1_000_000,
        base.flood.retransmit_initial_ns / 1_000_000,
        base.flood.retransmit_max_ns / 1_000_000,
        base.processing_ns / 1000,
    );
    println!();
    run(
        &topo,
        "satellite 0 reports its first ISL down; no loss",
        &base,
    );
    run(
        &topo,
        "satellite 800 (mid-constellation) reports its first ISL down; no loss",
        &SimConfig {
            origin: 800,
            ..base.clone()
        },
    );
    // The origin keeps one working link; its others and three links
    // elsewhere lose everything while both ends believe them up.
    let origin = 100;
    let nbrs = topo.isl_neighbors(origin as usize).0.to_vec();
    let mut lost: Vec<Link> = nbrs
        .iter()
        .skip(1)
        .take(nbrs.len().saturating_sub(2))
        .filter_map(|&m| Link::new(origin, m))
        .collect();
    for s in [500usize, 900, 1300] {
        if let Some(&m) = topo.isl_neighbors(s).0.first() {
            lost.extend(Link::new(s as NodeId, m));
        }
    }
    let label = format!(
        "satellite {origin} reports its first ISL down; {} links silently lost, 10% of datagrams lost (seed {seed})",
        lost.len()
    );
    let lossy = SimConfig {
        origin,
        drop_rate: 0.10,
        lost_links: lost,
        seed,
        ..base.clone()
    };
    run(&topo, &label, &lossy);
    // The mesh's delay diameter leaves the default bound little slack for
    // a retransmission; with room for two, every node applies on time.
    let mut roomy = lossy;
    roomy.flood.flood_bound_ns = 300_000_000;
    run(&topo, &format!("{label}, flood bound 300 ms"), &roomy);
}
