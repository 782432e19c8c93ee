//! One full snapshot: propagate, build the topology, shortest-path trees to
//! every gateway, and every node's tables. [`Engine`] keeps what does not
//! change between snapshots (SGP4 constants, ISL adjacency, ground
//! positions, scratch space).

use crate::constellation::Constellation;
use crate::ground::GroundStations;
use crate::labels::LabelPlan;
use crate::propagate::Propagator;
use crate::routing::{Path, Router, Spt};
use crate::tables::{self, default_gateway_prefix, Prefix, TableSet};
use crate::topology::{Failures, GslRule, Network, Topology};
use crate::Error;

/// Computes snapshots of one constellation and ground-station set.
pub struct Engine {
    constellation: Constellation,
    stations: GroundStations,
    propagator: Propagator,
    network: Network,
    router: Router,
    plan: LabelPlan,
    prefixes: Vec<Prefix>,
}

/// The network, routes and tables at one instant.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The graph.
    pub topology: Topology,
    /// Shortest-path tree toward each gateway, index = gid.
    pub spts: Vec<Spt>,
    /// Every node's tables (empty when only routes were asked for).
    pub tables: TableSet,
}

impl Snapshot {
    /// The shortest path from gateway `src` to gateway `dst`.
    pub fn path(&self, src: u32, dst: u32) -> Option<Path> {
        if src == dst {
            return None;
        }
        self.spts
            .get(dst as usize)?
            .path_from(self.topology.gs_node(src))
    }

    /// RTT in milliseconds from `src` to `dst`, `None` if unreachable.
    pub fn rtt_ms(&self, src: u32, dst: u32) -> Option<f64> {
        let spt = self.spts.get(dst as usize)?;
        let d = *spt.dist.get(self.topology.gs_node(src) as usize)?;
        (src != dst && d.is_finite()).then(|| 2.0 * d / crate::routing::SPEED_OF_LIGHT_M_S * 1e3)
    }
}

/// Checks that `plan` is valid and has a label for each of `n_sats`
/// satellites and `n_gs` gateways.
fn fits(plan: &LabelPlan, n_sats: usize, n_gs: usize) -> Result<(), Error> {
    plan.validate()?;
    if n_gs > 0 {
        plan.label(0, u32::try_from(n_gs - 1).unwrap_or(u32::MAX))?;
    }
    if n_sats > 0 {
        plan.sat_label(0, u32::try_from(n_sats - 1).unwrap_or(u32::MAX))?;
    }
    Ok(())
}

impl Engine {
    /// An engine with the constellation's GSL range and the default label
    /// plan and gateway prefixes.
    pub fn new(constellation: Constellation, stations: GroundStations) -> Result<Self, Error> {
        let rule = GslRule::MaxRange(constellation.max_gsl_length_m);
        Self::with_gsl_rule(constellation, stations, rule)
    }

    /// As [`Engine::new`] with another GSL rule (e.g. a minimum elevation).
    pub fn with_gsl_rule(
        constellation: Constellation,
        stations: GroundStations,
        rule: GslRule,
    ) -> Result<Self, Error> {
        let propagator = Propagator::new(&constellation)?;
        let network = Network::with_rule(&constellation, &stations, rule);
        let plan = LabelPlan::default();
        fits(&plan, constellation.len(), stations.len())?;
        let prefixes = (0..stations.len() as u32)
            .map(default_gateway_prefix)
            .collect();
        Ok(Self {
            constellation,
            stations,
            propagator,
            network,
            router: Router::new(),
            plan,
            prefixes,
        })
    }

    /// Replaces the label plan (it must hold every gateway and satellite).
    pub fn set_label_plan(&mut self, plan: LabelPlan) -> Result<(), Error> {
        fits(&plan, self.constellation.len(), self.stations.len())?;
        self.plan = plan;
        Ok(())
    }

    /// Replaces the gateway LAN prefixes (index = gid; missing ones keep the default).
    pub fn set_prefixes(&mut self, prefixes: Vec<Prefix>) {
        for (i, p) in prefixes.into_iter().enumerate().take(self.prefixes.len()) {
            self.prefixes[i] = p;
        }
    }

    /// The constellation.
    pub fn constellation(&self) -> &Constellation {
        &self.constellation
    }

    /// The ground stations.
    pub fn stations(&self) -> &GroundStations {
        &self.stations
    }

    /// The label plan.
    pub fn label_plan(&self) -> &LabelPlan {
        &self.plan
    }

    /// The topology at `t_s` seconds after the constellation epoch.
    pub fn topology(&self, t_s: f64, failures: &Failures) -> Result<Topology, Error> {
        let mut pos = Vec::new();
        self.propagator.ecef_all(t_s, &mut pos)?;
        Ok(self.network.at(t_s, pos, failures))
    }

    /// Shortest-path trees toward every gateway.
    pub fn trees(&mut self, topo: &Topology) -> Vec<Spt> {
        let mut out = Vec::with_capacity(topo.n_gs());
        for gid in 0..topo.n_gs() as u32 {
            let mut spt = Spt::default();
            self.router.spt_into(topo, gid, None, &mut spt);
            out.push(spt);
        }
        out
    }

    /// The tree toward one gateway only (cheap, for single-pair queries).
    pub fn tree(&mut self, topo: &Topology, gid: u32) -> Spt {
        self.router.spt(topo, gid)
    }

    /// Up to `k` link-disjoint paths between two gateways, shortest first.
    pub fn disjoint_paths(&mut self, topo: &Topology, src: u32, dst: u32, k: usize) -> Vec<Path> {
        self.router.disjoint_paths(topo, src, dst, k)
    }

    /// Topology and trees, without tables.
    pub fn routes(&mut self, t_s: f64, failures: &Failures) -> Result<Snapshot, Error> {
        let topology = self.topology(t_s, failures)?;
        let spts = self.trees(&topology);
        Ok(Snapshot {
            topology,
            spts,
            tables: TableSet::default(),
        })
    }

    /// The full snapshot for table epoch `epoch`; `prev` is the previous
    /// epoch's tables, whose entries are kept for make-before-break.
    pub fn snapshot(
        &mut self,
        t_s: f64,
        failures: &Failures,
        epoch: u64,
        prev: Option<&TableSet>,
    ) -> Result<Snapshot, Error> {
        let mut s = self.routes(t_s, failures)?;
        let prefixes = &self.prefixes;
        let prefix_of = |gid: u32| {
            prefixes
                .get(gid as usize)
                .copied()
                .unwrap_or_else(|| default_gateway_prefix(gid))
        };
        s.tables = tables::compile(
            &s.topology,
            &s.spts,
            epoch,
            &self.plan,
            &prefix_of,
            prev,
            failures,
        )?;
        Ok(s)
    }
}
