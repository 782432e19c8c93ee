//! The part of a constellation the traffic between a set of gateways
//! crosses over a window: every satellite on the shortest path in either
//! direction between every pair of them at every control step, plus link-disjoint backups wherever the path
//! changes, the repair path around every inter-satellite link of the
//! shortest paths (the post-convergence path from the link's near end with
//! the link down: what a node's local repair sends along when BFD takes
//! that link down), and every link among them that exists at some step.
//!
//! Nodes route only over this subset (the rest is administratively down in
//! their `[control]`), so every route they compute has a link to use. At the
//! control steps the subset contains the global shortest path, so the
//! routes are the constellation's own.

use meshplane_control::routing::Path;
use meshplane_control::{Constellation, Engine, Failures, GroundStations, NodeId, Preset};
use std::collections::BTreeSet;

/// What to plan.
#[derive(Clone, Debug)]
pub struct MeshSpec {
    /// Constellation preset.
    pub preset: Preset,
    /// The gateways (ground-station names or ids), at least two: every
    /// pair of them carries traffic.
    pub gateways: Vec<String>,
    /// Start of the window, seconds after the constellation epoch.
    pub at_s: f64,
    /// Length of the window, seconds.
    pub window_s: f64,
    /// Control step, milliseconds (the routes are sampled at every step).
    pub step_ms: u64,
    /// Link-disjoint paths kept wherever the path changes (1 = no backup).
    pub disjoint_paths: usize,
    /// Keep the repair path around every inter-satellite link of the
    /// shortest paths, so the nodes' local repair has a way around a cut.
    pub repairs: bool,
}

/// The nodes and links to emulate.
#[derive(Clone, Debug)]
pub struct MeshPlan {
    /// The preset.
    pub preset: Preset,
    /// Satellites in the constellation.
    pub n_sats: usize,
    /// The gateways, in the order the spec names them: (gid, name).
    pub gateways: Vec<(u32, String)>,
    /// Satellites to emulate, ascending.
    pub satellites: Vec<u32>,
    /// Links `(a, b)` with `a < b` (node ids), ascending.
    pub links: Vec<(NodeId, NodeId)>,
    /// For every pair of gateways `i < j`, in order (`(0, 1)` first), the
    /// path from `i` to `j` at the start and at every change.
    pub paths: Vec<PairPaths>,
}

/// The path from one gateway to another over the window.
#[derive(Clone, Debug)]
pub struct PairPaths {
    /// Index of the source gateway in [`MeshPlan::gateways`].
    pub from: usize,
    /// Index of the destination gateway.
    pub to: usize,
    /// The path at the start and at every change: (t_s, nodes).
    pub changes: Vec<(f64, Vec<NodeId>)>,
}

impl MeshPlan {
    /// Node id of gateway `i` (its index in [`MeshPlan::gateways`]).
    pub fn gateway_node(&self, i: usize) -> NodeId {
        self.n_sats as NodeId + self.gateways[i].0
    }

    /// Node ids of every gateway, in order.
    pub fn gateway_nodes(&self) -> Vec<NodeId> {
        (0..self.gateways.len())
            .map(|i| self.gateway_node(i))
            .collect()
    }
}

/// Why a mesh cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Geometry failed.
    #[error(transparent)]
    Geometry(#[from] meshplane_control::Error),
    /// A gateway name did not resolve.
    #[error("{0}")]
    Station(String),
    /// The gateways are not connected at some instant of the window.
    #[error("{from} and {to} are not connected at t = {t_s:.1} s (pick another window)")]
    Unreachable {
        /// From.
        from: String,
        /// To.
        to: String,
        /// When.
        t_s: f64,
    },
    /// Bad parameters.
    #[error("{0}")]
    Spec(String),
}

fn add_path(path: &Path, sats: &mut BTreeSet<u32>, n_sats: usize) {
    for &n in &path.nodes {
        if (n as usize) < n_sats {
            sats.insert(n);
        }
    }
}

/// Adds, for every link between two satellites of `path` (toward ground
/// station `to`), the shortest path from the link's near end to `to` with
/// that link down: the path a node's local repair needs to find in the mesh.
fn add_repairs(
    engine: &mut Engine,
    t_s: f64,
    path: &Path,
    to: u32,
    sats: &mut BTreeSet<u32>,
    n_sats: usize,
) -> Result<(), PlanError> {
    for hop in path.nodes.windows(2) {
        let (x, y) = (hop[0], hop[1]);
        if x as usize >= n_sats || y as usize >= n_sats {
            continue;
        }
        let mut down = Failures::new();
        down.fail_isl(x, y);
        let topo = engine.topology(t_s, &down)?;
        if let Some(p) = engine.tree(&topo, to).path_from(x) {
            add_path(&p, sats, n_sats);
        }
    }
    Ok(())
}

/// Steps between two samples of the repair paths (besides every path change).
const REPAIR_SAMPLE_STEPS: u64 = 50;

/// Most gateways one mesh emulates (every pair of them is routed at every
/// step, and each gateway is one process).
pub const MAX_GATEWAYS: usize = 16;

/// Most control steps one plan walks (a day at 100 ms steps).
pub const MAX_PLAN_STEPS: u64 = 1_000_000;

/// Plans the mesh for `spec` over `stations`.
pub fn plan(spec: &MeshSpec, stations: GroundStations) -> Result<MeshPlan, PlanError> {
    if !(spec.window_s.is_finite()
        && spec.window_s >= 0.0
        && spec.at_s.is_finite()
        && spec.at_s >= 0.0)
    {
        return Err(PlanError::Spec(
            "window and start must be non-negative numbers of seconds".into(),
        ));
    }
    if spec.step_ms == 0 {
        return Err(PlanError::Spec("step must be at least 1 ms".into()));
    }
    if spec.step_ms > crate::config::MAX_CONTROL_MS {
        return Err(PlanError::Spec(format!(
            "step must be at most {} ms (what a node's [control] accepts)",
            crate::config::MAX_CONTROL_MS
        )));
    }
    let steps = (spec.window_s * 1000.0 / spec.step_ms as f64).floor();
    if steps > MAX_PLAN_STEPS as f64 {
        return Err(PlanError::Spec(format!(
            "a {} s window at {} ms steps is {steps} steps; at most {MAX_PLAN_STEPS}",
            spec.window_s, spec.step_ms
        )));
    }
    let steps = steps as u64;
    let find = |q: &str| {
        stations
            .find(q)
            .map_err(|e| PlanError::Station(format!("{q:?}: {e}")))
    };
    if spec.gateways.len() < 2 {
        return Err(PlanError::Spec("a mesh needs at least two gateways".into()));
    }
    if spec.gateways.len() > MAX_GATEWAYS {
        return Err(PlanError::Spec(format!(
            "{} gateways; a mesh emulates at most {MAX_GATEWAYS}",
            spec.gateways.len()
        )));
    }
    let mut gids = Vec::with_capacity(spec.gateways.len());
    for q in &spec.gateways {
        let g = find(q)?;
        if gids.contains(&g) {
            return Err(PlanError::Spec(format!(
                "gateway {q:?} is named twice (station {g})"
            )));
        }
        gids.push(g);
    }
    let names: Vec<String> = gids
        .iter()
        .map(|&g| {
            stations
                .stations
                .get(g as usize)
                .map(|s| s.name.clone())
                .unwrap_or_default()
        })
        .collect();
    let mut engine = Engine::new(Constellation::preset(spec.preset), stations)?;
    let none = Failures::new();
    let n_sats = engine.constellation().len();
    let time = |k: u64| spec.at_s + k as f64 * spec.step_ms as f64 / 1000.0;

    let mut sats = BTreeSet::new();
    let mut paths: Vec<PairPaths> = Vec::new();
    for i in 0..gids.len() {
        for j in i + 1..gids.len() {
            paths.push(PairPaths {
                from: i,
                to: j,
                changes: Vec::new(),
            });
        }
    }
    for k in 0..=steps {
        let t = time(k);
        let topo = engine.topology(t, &none)?;
        for pair in &mut paths {
            let (a, b) = (gids[pair.from], gids[pair.to]);
            let unreachable = || PlanError::Unreachable {
                from: names[pair.from].clone(),
                to: names[pair.to].clone(),
                t_s: t,
            };
            let fwd = engine
                .tree(&topo, b)
                .path_from(topo.gs_node(a))
                .ok_or_else(unreachable)?;
            let back = engine
                .tree(&topo, a)
                .path_from(topo.gs_node(b))
                .ok_or_else(unreachable)?;
            add_path(&fwd, &mut sats, n_sats);
            add_path(&back, &mut sats, n_sats);
            let changed = pair.changes.last().is_none_or(|(_, p)| *p != fwd.nodes);
            if spec.repairs && (changed || k % REPAIR_SAMPLE_STEPS == 0) {
                add_repairs(&mut engine, t, &fwd, b, &mut sats, n_sats)?;
                add_repairs(&mut engine, t, &back, a, &mut sats, n_sats)?;
            }
            if changed {
                pair.changes.push((t, fwd.nodes));
                if spec.disjoint_paths > 1 {
                    for p in engine.disjoint_paths(&topo, a, b, spec.disjoint_paths) {
                        add_path(&p, &mut sats, n_sats);
                    }
                }
            }
        }
    }

    // Every link among the chosen nodes that exists at some step (none
    // between two gateways).
    let first_gw = n_sats as NodeId;
    let nodes: Vec<NodeId> = sats
        .iter()
        .copied()
        .chain(gids.iter().map(|&g| first_gw + g))
        .collect();
    let mut links = BTreeSet::new();
    for k in 0..=steps {
        let topo = engine.topology(time(k), &none)?;
        for (i, &x) in nodes.iter().enumerate() {
            for &y in &nodes[i + 1..] {
                if x >= first_gw && y >= first_gw {
                    continue;
                }
                if topo.link_length(x, y).is_some() {
                    links.insert((x.min(y), x.max(y)));
                }
            }
        }
    }
    Ok(MeshPlan {
        preset: spec.preset,
        n_sats,
        gateways: gids.into_iter().zip(names).collect(),
        satellites: sats.into_iter().collect(),
        links: links.into_iter().collect(),
        paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(at_s: f64, window_s: f64, step_ms: u64) -> MeshSpec {
        MeshSpec {
            preset: Preset::Kuiper630,
            gateways: vec!["London".into(), "Paris".into()],
            at_s,
            window_s,
            step_ms,
            disjoint_paths: 1,
            repairs: false,
        }
    }

    fn spec_error(s: &MeshSpec) -> String {
        match plan(s, GroundStations::top100()) {
            Err(PlanError::Spec(m)) => m,
            other => panic!("want a spec error, got {:?}", other.map(|p| p.satellites)),
        }
    }

    #[test]
    fn three_gateways_route_every_pair_through_the_plan() {
        let mut s = spec(0.0, 2.0, 1000);
        s.gateways = vec!["London".into(), "Paris".into(), "Madrid".into()];
        let p = plan(&s, GroundStations::top100()).expect("plan");
        assert_eq!(p.gateways.len(), 3);
        let pairs: Vec<(usize, usize)> = p.paths.iter().map(|q| (q.from, q.to)).collect();
        assert_eq!(pairs, [(0, 1), (0, 2), (1, 2)]);
        let gw = p.gateway_nodes();
        for q in &p.paths {
            assert!(!q.changes.is_empty());
            for (_, path) in &q.changes {
                assert_eq!(path.first(), Some(&gw[q.from]));
                assert_eq!(path.last(), Some(&gw[q.to]));
                // Every hop of the path is an emulated node and link.
                for w in path.windows(2) {
                    let l = (w[0].min(w[1]), w[0].max(w[1]));
                    assert!(p.links.contains(&l), "{l:?} not planned");
                }
            }
        }
        // No link joins two gateways.
        assert!(p
            .links
            .iter()
            .all(|&(a, b)| a < gw[0].min(gw[1]).min(gw[2]) || b < gw[0].min(gw[1]).min(gw[2])));
    }

    #[test]
    fn a_gateway_named_twice_or_alone_is_refused() {
        let mut s = spec(0.0, 0.0, 100);
        s.gateways = vec!["London".into()];
        assert!(spec_error(&s).contains("at least two gateways"));
        s.gateways = vec!["London".into(), "Paris".into(), "london".into()];
        assert!(spec_error(&s).contains("named twice"), "{}", spec_error(&s));
    }

    #[test]
    fn endless_or_infinite_windows_are_refused_before_any_geometry() {
        assert!(spec_error(&spec(0.0, 1e300, 1)).contains("at most 1000000"));
        assert!(spec_error(&spec(f64::INFINITY, 60.0, 100)).contains("non-negative numbers"));
        assert!(spec_error(&spec(f64::NAN, 60.0, 100)).contains("non-negative numbers"));
        assert!(spec_error(&spec(0.0, 60.0, 0)).contains("at least 1 ms"));
        assert!(spec_error(&spec(0.0, 60.0, 86_400_001)).contains("at most 86400000 ms"));
    }
}
