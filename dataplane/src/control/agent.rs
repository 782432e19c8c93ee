//! The control agent of one node: runs the constellation's schedule on the
//! node's clock and turns each publication into this node's tables.
//!
//! Timing, for make-before-break: every epoch's tables carry the previous
//! epoch's label block unchanged, so a node that only switches labels
//! (a satellite) installs the next epoch's tables half a step *before*
//! their activation; gateways switch their FEC (the labels they push) at
//! the activation instant. By the time any ingress pushes a new label,
//! every transit node already forwards it; packets labelled under the
//! previous epoch keep their old path until they have drained.
//!
//! On a gateway with `[ike]`, every table the agent builds holds the SAs
//! IKE negotiated (merged as the static runtime's publisher merges them,
//! [`super::ike::IkeMerge`]), and a change of that set is published at
//! once over the routes in force ([`InstallReason::Keys`]).
//!
//! Satellites' node labels are switched by every node (gateways too, for
//! their own packets) from its own first hops toward each satellite: one
//! Dijkstra from itself per install, over the topology the epoch was
//! computed for. Each install keeps the previous epoch's satellite-label
//! block as the install before it had it, the same make-before-break.

use super::armed_repairs::ArmedRepairs;
use super::clock::GeometryClock;
use super::failures::FailureFeed;
use super::install::{
    route_changes, InstallCounts, NextHops, PublicationInstaller, RouteChange, RouteInstaller,
};
use super::ControlError;
use crate::config::{node_address, NodeConfig, NodeRef, NodeRouteConfig, Role};
use crate::tables::{SaStore, Tables};
use meshplane_control::labels::LabelPlan;
use meshplane_control::repair::{Destination, RepairTable, Repairer};
use meshplane_control::schedule::{FailureEvent, Publication, ScheduleConfig, Scheduler};
use meshplane_control::{Constellation, Engine, Failures, GroundStations, NodeId, Preset};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the service thread tells the agent of links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkNews {
    /// One of the node's own links went down or came back (its BFD).
    Local(super::bfd::LinkEvent),
    /// A link change that every node applies now (a flooded notice whose
    /// instant has come, the node's own included), and that instant (Unix
    /// ns, the same at every node).
    Apply(FailureEvent, u64),
}

/// Tables to publish, and why.
pub struct Install {
    /// The node's new snapshot.
    pub tables: Tables,
    /// Label epoch of the computed routes.
    pub epoch: u64,
    /// Geometry time they were computed for (s after the constellation epoch).
    pub t_s: f64,
    /// What went in and what was left out.
    pub counts: InstallCounts,
    /// Why they are published now.
    pub reason: InstallReason,
    /// Egress gateways whose next hop differs from the previous install
    /// (empty for the first).
    pub changes: Vec<RouteChange>,
}

/// Why an [`Install`] is published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallReason {
    /// The next epoch, at its activation time.
    Scheduled,
    /// The next epoch, half a step ahead of its activation (satellites).
    Early,
    /// The active epoch recomputed after a link or satellite failed.
    Failure,
    /// The tables in force with the precomputed repairs of a link of the
    /// node's own that went down (no route computation).
    Repair,
    /// The routes in force with a new set of IKE-negotiated SAs.
    Keys,
}

impl InstallReason {
    /// The name used in logs: `scheduled`, `early`, `failure`, `repair`
    /// or `keys`.
    pub fn name(self) -> &'static str {
        match self {
            InstallReason::Scheduled => "scheduled",
            InstallReason::Early => "early",
            InstallReason::Failure => "failure",
            InstallReason::Repair => "repair",
            InstallReason::Keys => "keys",
        }
    }
}

impl std::fmt::Display for InstallReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// When a node that only switches labels (a satellite) installs the
/// tables that activate at `activate_at_ns`: half a step ahead.
pub fn early_install_ns(activate_at_ns: u64, step_ns: u64) -> u64 {
    activate_at_ns.saturating_sub(step_ns / 2)
}

/// One node's control plane.
pub struct ControlAgent {
    cfg: NodeConfig,
    installer: PublicationInstaller,
    sched: Scheduler,
    store: SaStore,
    early: bool,
    early_done: Option<(u64, u64)>,
    /// Next hops of the last install, to tell the next one's changes.
    hops: Option<NextHops>,
    version: u64,
    feed: Option<FailureFeed>,
    /// Links the node's own BFD sessions saw go down or come back, and
    /// flooded notices due.
    links: Option<crossbeam::channel::Receiver<LinkNews>>,
    /// News that woke the agent, to handle at its next poll.
    pushed_back: Option<LinkNews>,
    /// Neighbours whose link to this node is down by its own BFD and not
    /// yet by the constellation's (its notice has not applied): their
    /// entries take their repairs at every install.
    locally_down: std::collections::BTreeSet<NodeId>,
    /// Repairs of the tables of each label block's last install, and the
    /// scratch space that computes them.
    repairs: [Option<RepairTable>; 2],
    repairer: Repairer,
    /// The last install's configuration before repairs, to repair at once.
    last: Option<LastInstall>,
    step_ns: u64,
    clock: GeometryClock,
    /// Satellites in the constellation (gateway `gid` is node `n_sats + gid`).
    n_sats: u32,
    /// Names and addresses of the constellation's nodes.
    book: super::address_book::AddressBook,
    /// The SAs IKE negotiates (a gateway with `[ike]`).
    ike: Option<super::ike::IkeMerge>,
    /// What the tables in force were built from, before IKE's SAs.
    in_force: Option<LastInstall>,
    /// Where the repaired tables of each link wait for the service thread.
    armed: Option<Arc<ArmedRepairs>>,
}

/// What the last install was made of.
struct LastInstall {
    cfg: NodeConfig,
    epoch: u64,
    t_s: f64,
    counts: InstallCounts,
}

/// Entries switched to repairs, and those left as they were.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepairCounts {
    /// Entries that now leave by their repair.
    pub repaired: usize,
    /// Entries whose repair pushes labels (not supported by the data
    /// plane yet) or leaves by a port the node does not have.
    pub unsupported: usize,
    /// Entries with no repair (nothing reaches their destination without
    /// the link).
    pub none: usize,
}

/// Loads the ground stations a `[control]` section names.
fn stations_of(path: Option<&std::path::Path>) -> Result<GroundStations, ControlError> {
    match path {
        None => Ok(GroundStations::top100()),
        Some(p) => {
            let text =
                crate::file_read::read_text(p, crate::file_read::DATA_LIMIT).map_err(|e| {
                    ControlError::File {
                        path: p.display().to_string(),
                        msg: e.to_string(),
                    }
                })?;
            GroundStations::parse_csv(&text).map_err(|e| ControlError::File {
                path: p.display().to_string(),
                msg: e.to_string(),
            })
        }
    }
}

impl ControlAgent {
    /// The agent of the node `cfg` describes (it must have `[control]`).
    pub fn new(cfg: &NodeConfig) -> Result<Self, ControlError> {
        let c = cfg
            .control
            .as_ref()
            .ok_or_else(|| ControlError::NotConfigured(cfg.name.clone()))?;
        let preset: Preset = c
            .constellation
            .parse()
            .map_err(|e| ControlError::Config(format!("constellation: {e}")))?;
        let constellation = Constellation::preset(preset);
        let n_sats = constellation.len();
        let stations = stations_of(c.ground_stations.as_deref())?;
        let node: NodeId = match (&c.node, cfg.role) {
            (NodeRef::Satellite(s), Role::Satellite) if (*s as usize) < n_sats => *s,
            (NodeRef::Satellite(s), Role::Satellite) => {
                return Err(ControlError::Config(format!(
                    "node sat:{s}: {} has satellites 0..{}",
                    c.constellation,
                    n_sats - 1
                )))
            }
            (NodeRef::Gateway(name), Role::Gateway) => {
                let gid = stations
                    .find(name)
                    .map_err(|e| ControlError::Config(format!("node gs:{name}: {e}")))?;
                (n_sats as u32) + gid
            }
            (r, role) => {
                return Err(ControlError::Config(format!(
                    "node {r:?} does not fit role {role:?} (a gateway is \"gs:NAME\", a satellite \"sat:ID\")"
                )))
            }
        };
        let installer = RouteInstaller::new(cfg, node, n_sats, &stations)?;
        let mut failures = Failures::new();
        if let Some(subset) = &c.satellites {
            if let Some(bad) = subset.iter().find(|&&s| s as usize >= n_sats) {
                return Err(ControlError::Config(format!(
                    "satellites: {bad} is not a satellite of {}",
                    c.constellation
                )));
            }
            let mut keep = vec![false; n_sats];
            for &s in subset {
                keep[s as usize] = true;
            }
            for (s, k) in keep.iter().enumerate() {
                if !k {
                    failures.fail_satellite(s as u32);
                }
            }
        }
        let book =
            super::address_book::AddressBook::new(stations.clone(), n_sats as u32, c.node_prefix);
        let engine = Engine::new(constellation, stations)?;
        // The config caps both at a day; saturate for configs built in code.
        let step_ns = c.step_ms.max(1).saturating_mul(1_000_000);
        let mut sched = Scheduler::new(
            engine,
            ScheduleConfig {
                lead_ns: c.lead_ms.saturating_mul(1_000_000),
                step_ns,
                start_s: c.start_s,
            },
        );
        sched.set_failures(failures);
        Ok(ControlAgent {
            cfg: cfg.clone(),
            installer: PublicationInstaller::new(installer),
            sched,
            store: SaStore::default(),
            early: cfg.role == Role::Satellite,
            early_done: None,
            hops: None,
            version: 0,
            feed: c.failures_file.as_deref().map(FailureFeed::new),
            links: None,
            pushed_back: None,
            locally_down: std::collections::BTreeSet::new(),
            repairs: [None, None],
            repairer: Repairer::new(),
            last: None,
            step_ns,
            clock: GeometryClock::new(c.anchor_unix_ms, c.time_scale),
            n_sats: n_sats as u32,
            book,
            ike: None,
            in_force: None,
            armed: None,
        })
    }

    /// Arms `armed`, after every install, with the tables of each of the
    /// node's links repaired, for the service thread to publish the
    /// instant BFD takes that link down ([`ArmedRepairs`]).
    pub fn with_armed_repairs(mut self, armed: Arc<ArmedRepairs>) -> Self {
        self.armed = Some(armed);
        self
    }

    /// Merges the SAs IKE negotiates (left in `share` by the node's IKE
    /// driver) into every table built from now on, and publishes the
    /// routes in force again whenever that set changes.
    pub fn with_ike(mut self, share: std::sync::Arc<super::ike::IkeShare>) -> Self {
        self.ike = Some(super::ike::IkeMerge::new(share));
        self
    }

    /// The tables of `cfg` (the routes of label epoch `epoch`, computed
    /// for `t_s`) with IKE's SAs merged in, as the next version; `cfg` is
    /// then the configuration in force.
    fn build(
        &mut self,
        cfg: NodeConfig,
        epoch: u64,
        t_s: f64,
        counts: InstallCounts,
        reason: InstallReason,
    ) -> Result<Tables, ControlError> {
        let merged = match &mut self.ike {
            Some(m) => m.apply(&cfg),
            None => cfg.clone(),
        };
        let tables = self.tables_of(&merged, epoch, t_s, reason)?;
        self.in_force = Some(LastInstall {
            cfg,
            epoch,
            t_s,
            counts,
        });
        Ok(tables)
    }

    /// The tables of `merged` (IKE's SAs already in it) as the next
    /// version, marked with where their routes came from.
    fn tables_of(
        &mut self,
        merged: &NodeConfig,
        epoch: u64,
        t_s: f64,
        reason: InstallReason,
    ) -> Result<Tables, ControlError> {
        self.version += 1;
        let mut tables = Tables::from_config_with(merged, self.version, &mut self.store)?;
        tables.routes = Some(crate::tables::RouteOrigin {
            label_epoch: epoch,
            t_s,
            reason: reason.name(),
        });
        Ok(tables)
    }

    /// Arms, against the snapshot just published as `table_epoch`, the
    /// tables with the repairs of each of the node's links that are up
    /// and carry entries to repair. Costs one table build per such link.
    fn arm_repairs(&mut self, table_epoch: u64) {
        let Some(armed) = self.armed.clone() else {
            return;
        };
        let Some(last) = &self.last else {
            return;
        };
        let (base, epoch, t_s) = (last.cfg.clone(), last.epoch, last.t_s);
        let mut neighbors: Vec<NodeId> = self
            .repairs
            .iter()
            .flatten()
            .flat_map(|t| t.links.iter().map(|l| l.neighbor))
            .filter(|n| !self.locally_down.contains(n))
            .collect();
        neighbors.sort_unstable();
        neighbors.dedup();
        let mut by_neighbor = Vec::with_capacity(neighbors.len());
        for n in neighbors {
            // The links down already stay repaired; `n` joins them.
            let mut cfg = base.clone();
            self.locally_down.insert(n);
            let c = self.apply_repairs(&mut cfg);
            self.locally_down.remove(&n);
            if c.repaired == 0 {
                continue;
            }
            // IKE's set as it is now, without taking it as seen: a change
            // still publishes the routes in force again.
            let merged = match &self.ike {
                Some(m) => m.peek(&cfg),
                None => cfg,
            };
            match self.tables_of(&merged, epoch, t_s, InstallReason::Repair) {
                Ok(t) => by_neighbor.push((n, t)),
                Err(e) => tracing::warn!(neighbor = n, "link repair not armed: {e}"),
            }
        }
        tracing::debug!(table_epoch, links = by_neighbor.len(), "link repairs armed");
        armed.arm(table_epoch, by_neighbor);
    }

    /// The routes in force again, when IKE's SA set changed since the
    /// last tables were built.
    fn keys_install(&mut self) -> Result<Option<Install>, ControlError> {
        if !self.ike.as_ref().is_some_and(|m| m.changed()) {
            return Ok(None);
        }
        let Some(f) = &self.in_force else {
            return Ok(None);
        };
        let (cfg, epoch, t_s, counts) = (f.cfg.clone(), f.epoch, f.t_s, f.counts);
        let reason = InstallReason::Keys;
        let tables = self.build(cfg, epoch, t_s, counts, reason)?;
        Ok(Some(Install {
            tables,
            epoch,
            t_s,
            counts,
            reason,
            changes: Vec::new(),
        }))
    }

    /// Follows what the service thread hears of links: a link of the
    /// node's own that BFD takes down is repaired at once from the
    /// precomputed repairs; a notice that applies is recomputed for the
    /// active epoch, as a failure event is. Without `[flood]` the node's
    /// own link events apply to this node alone, at once.
    pub fn with_link_events(mut self, rx: crossbeam::channel::Receiver<LinkNews>) -> Self {
        self.links = Some(rx);
        self
    }

    /// The failure event a link event of this node's means, if any: an
    /// ISL, or a link between a satellite and a ground station.
    fn link_failure(&self, e: &super::bfd::LinkEvent) -> Option<FailureEvent> {
        FailureEvent::of_link(self.node(), e.peer_node?, e.up, self.n_sats)
    }

    /// Satellites in the constellation.
    pub fn n_sats(&self) -> u32 {
        self.n_sats
    }

    /// The node id this agent installs tables for.
    pub fn node(&self) -> NodeId {
        self.installer.installer().node()
    }

    /// Names and addresses of the constellation's nodes.
    pub fn address_book(&self) -> &super::address_book::AddressBook {
        &self.book
    }

    /// The node's geometry clock.
    pub fn clock(&self) -> GeometryClock {
        self.clock
    }

    fn install(&mut self, p: &Publication, reason: InstallReason) -> Result<Install, ControlError> {
        let plan = *self.sched.engine_mut().label_plan();
        let epoch = p.tables.epoch;
        // Gateway labels from the snapshot; satellite labels from this
        // node's own first hops over the epoch's graph, the previous block
        // as the last install of it had it.
        let compiled = self
            .installer
            .compile(&self.cfg, p, &plan, self.sched.failures())?;
        let current = compiled.sat_hops;
        let (mut cfg, counts, hops) = (compiled.cfg, compiled.counts, compiled.hops);
        let node = self.installer.installer().node();
        // A satellite's own packets toward a gateway's address take that
        // gateway's label, as data does (a gateway reaches its peers
        // through the FEC of its SA to them): the label of the epoch that
        // is active, which every node holds. Installed early, the new
        // epoch is not active yet (the gateways have not switched); the
        // tables still carry the active one's block. Every node's packets
        // toward a satellite's address take that satellite's label, of
        // the active epoch likewise.
        let prefix = self.cfg.control.as_ref().and_then(|c| c.node_prefix);
        let active = match reason {
            InstallReason::Early => epoch.saturating_sub(1),
            _ => epoch,
        };
        if let (Some(prefix), Role::Satellite) = (prefix, self.cfg.role) {
            for &gid in hops.keys() {
                let address = node_address(prefix, self.n_sats.saturating_add(gid));
                if let (Some(address), Ok(label)) = (address, plan.label(active, gid)) {
                    cfg.node_routes.push(NodeRouteConfig { address, label });
                }
            }
        }
        if let Some(prefix) = prefix {
            for s in (0..self.n_sats).filter(|&s| s != node) {
                if let (Some(address), Ok(label)) =
                    (node_address(prefix, s), plan.sat_label(active, s))
                {
                    cfg.node_routes.push(NodeRouteConfig { address, label });
                }
            }
        }
        if self.cfg.bfd.links {
            // What to do at once if one of the node's links fails: its
            // repairs over this epoch's graph (well under a millisecond).
            let block = LabelPlan::block_of(epoch);
            self.repairs[block] =
                match self
                    .repairer
                    .node_repairs(&p.topology, &p.spts, &plan, epoch, node)
                {
                    Ok(t) => Some(t),
                    Err(e) => {
                        tracing::warn!("no link repairs for epoch {epoch}: {e}");
                        None
                    }
                };
            self.last = Some(LastInstall {
                cfg: cfg.clone(),
                epoch: p.epoch,
                t_s: p.tables.t_s,
                counts,
            });
            if !self.locally_down.is_empty() {
                let c = self.apply_repairs(&mut cfg);
                tracing::debug!(?c, "link repairs carried into the install");
            }
        }
        let tables = self.build(cfg, p.epoch, p.tables.t_s, counts, reason)?;
        let changes = self
            .hops
            .as_ref()
            .map_or_else(Vec::new, |old| route_changes(old, &hops));
        self.hops = Some(hops);
        self.installer.commit(current);
        Ok(Install {
            tables,
            epoch: p.epoch,
            t_s: p.tables.t_s,
            counts,
            reason,
            changes,
        })
    }

    /// The node's own link to `peer` is no longer only locally known to
    /// be down (or up): every node now applies `ev`.
    fn forget_local(&mut self, ev: FailureEvent) {
        let me = self.node();
        match ev.link_ends(self.n_sats) {
            Some((a, b)) if a == me => self.locally_down.remove(&b),
            Some((a, b)) if b == me => self.locally_down.remove(&a),
            _ => false,
        };
    }

    /// Switches, in `cfg`, every entry that leaves over a link in
    /// [`Self::locally_down`] to its precomputed repair (both label blocks'
    /// tables): a satellite's swap keeps its label and pushes the repair's
    /// node labels above it; a gateway's repairs push nothing (plain LFAs),
    /// and a FEC entry with a stack to push would be counted unsupported.
    fn apply_repairs(&self, cfg: &mut NodeConfig) -> RepairCounts {
        use crate::config::LfibAction;
        let mut c = RepairCounts::default();
        let n_sats = self.n_sats as usize;
        for &peer in &self.locally_down {
            for table in self.repairs.iter().flatten() {
                let Some(link) = table.link(peer) else {
                    continue;
                };
                for e in &link.entries {
                    let Ok(r) = &e.repair else {
                        c.none += 1;
                        continue;
                    };
                    let port = meshplane_control::tables::port_name(n_sats, r.next_hop);
                    let mac = cfg
                        .ports
                        .iter()
                        .find(|p| p.name == port)
                        .map(|p| p.peer_mac.unwrap_or([0xff; 6]));
                    let Some(mac) = mac else {
                        c.unsupported += 1;
                        continue;
                    };
                    let push = r.push.as_slice();
                    let dest = match e.destination {
                        Destination::Gateway(gid) => self.n_sats.saturating_add(gid),
                        Destination::Satellite(s) => s,
                    };
                    let mut hit = false;
                    for f in cfg.lfib.iter_mut().filter(|f| f.label == e.label) {
                        if f.port.is_none() {
                            continue;
                        }
                        // A label popped for its destination (the
                        // penultimate hop) is swapped on toward another,
                        // and so is one a stack goes above.
                        if f.action == LfibAction::Pop && (r.next_hop != dest || !push.is_empty()) {
                            f.action = LfibAction::Swap;
                            f.out_label = Some(e.label);
                        }
                        f.push = push.to_vec();
                        f.port = Some(port.clone());
                        f.next_hop_mac = Some(mac);
                        hit = true;
                    }
                    for f in cfg.fec.iter_mut().filter(|f| f.label == Some(e.label)) {
                        if !push.is_empty() {
                            c.unsupported += 1;
                            continue;
                        }
                        f.port = port.clone();
                        f.next_hop_mac = mac;
                        hit = true;
                    }
                    if hit {
                        c.repaired += 1;
                    }
                }
            }
        }
        c
    }

    /// The tables in force with the repairs of every link locally down.
    fn repaired_install(&mut self) -> Result<Option<Install>, ControlError> {
        let Some(last) = &self.last else {
            return Ok(None);
        };
        let mut cfg = last.cfg.clone();
        let (epoch, t_s, counts) = (last.epoch, last.t_s, last.counts);
        let c = self.apply_repairs(&mut cfg);
        tracing::warn!(
            repaired = c.repaired,
            unsupported = c.unsupported,
            no_repair = c.none,
            links_down = ?self.locally_down,
            "link repairs in place"
        );
        let tables = self.build(cfg, epoch, t_s, counts, InstallReason::Repair)?;
        Ok(Some(Install {
            tables,
            epoch,
            t_s,
            counts,
            reason: InstallReason::Repair,
            changes: Vec::new(),
        }))
    }

    /// Applies a failure event at geometry time `now_ns`.
    pub fn fail(&mut self, now_ns: u64, ev: FailureEvent) -> Result<Option<Install>, ControlError> {
        self.fail_at(now_ns, now_ns, ev)
    }

    /// Applies a failure event at geometry time `now_ns` that every node
    /// applies at `instant_ns` ([`Scheduler::fail_at`]).
    pub fn fail_at(
        &mut self,
        now_ns: u64,
        instant_ns: u64,
        ev: FailureEvent,
    ) -> Result<Option<Install>, ControlError> {
        self.fail_all(now_ns, &[(ev, instant_ns)])
    }

    /// Applies failure events, each with its instant, with one route
    /// computation and one install for all of them
    /// ([`Scheduler::fail_all`]).
    fn fail_all(
        &mut self,
        now_ns: u64,
        events: &[(FailureEvent, u64)],
    ) -> Result<Option<Install>, ControlError> {
        let ahead = self.sched.pending().map(|p| (p.epoch, p.activate_at_ns));
        let r = self.sched.fail_all(now_ns, events);
        // Tables computed ahead that the event dropped (they ignored it):
        // the next epoch, recomputed, must be installed again (early or on
        // time), even if this recompute fails or there is none. Tables
        // computed ahead that a restore leaves alone stay installed.
        if self.sched.pending().map(|p| (p.epoch, p.activate_at_ns)) != ahead || r.is_err() {
            self.early_done = None;
        }
        match r? {
            Some(p) => Ok(Some(self.install(&p, InstallReason::Failure)?)),
            None => Ok(None),
        }
    }

    /// Everything due at geometry time `now_ns`, in the order to publish.
    pub fn poll(&mut self, now_ns: u64) -> Result<Vec<Install>, ControlError> {
        let mut out = Vec::new();
        // Each event with the instant every node applies it at.
        let mut events: Vec<(FailureEvent, u64)> = self
            .feed
            .as_mut()
            .map(|f| f.poll())
            .unwrap_or_default()
            .into_iter()
            .map(|ev| (ev, now_ns))
            .collect();
        let mut news: Vec<_> = self.pushed_back.take().into_iter().collect();
        if let Some(rx) = &self.links {
            news.extend(rx.try_iter());
        }
        let flooding = self.cfg.flood.is_some();
        let mut repair = false;
        for n in news {
            match n {
                LinkNews::Apply(ev, at_unix_ns) => {
                    self.forget_local(ev);
                    events.push((ev, self.clock.at_unix_ns(at_unix_ns)));
                }
                LinkNews::Local(e) => {
                    let Some(peer) = e.peer_node else { continue };
                    let event = self.link_failure(&e);
                    if !e.up {
                        // Repaired at once; the constellation follows
                        // when the notice applies (or, without flooding,
                        // this node alone reroutes now).
                        repair |= self.locally_down.insert(peer);
                        if !flooding {
                            events.extend(event.map(|ev| (ev, now_ns)));
                        }
                    } else if !flooding || event.is_none() {
                        // Nothing network-wide to wait for.
                        repair |= self.locally_down.remove(&peer);
                        events.extend(event.map(|ev| (ev, now_ns)));
                    }
                }
            }
        }
        if repair && events.is_empty() {
            match self.repaired_install() {
                Ok(Some(i)) => out.push(i),
                Ok(None) => {}
                Err(e) => tracing::error!("repairing: {e}"),
            }
        }
        for (ev, _) in &events {
            tracing::info!(?ev, "failure event");
        }
        // All the events due now, in one computation: a burst of notices
        // (a flapping link, a satellite's every link) costs one. The
        // schedule records the events before it recomputes, so a
        // recompute that fails loses nothing: the next one includes them.
        if !events.is_empty() {
            match self.fail_all(now_ns, &events) {
                Ok(Some(i)) => out.push(i),
                Ok(None) => {}
                Err(e) => tracing::error!(
                    events = events.len(),
                    "rerouting after failures: {e}; the next step retries"
                ),
            }
        }
        if let Some(p) = self.sched.tick(now_ns)? {
            if self.early_done != Some((p.epoch, p.activate_at_ns)) {
                out.push(self.install(&p, InstallReason::Scheduled)?);
            }
        }
        if self.early {
            if let Some(p) = self.sched.pending() {
                let key = (p.epoch, p.activate_at_ns);
                if self.early_done != Some(key)
                    && now_ns >= early_install_ns(p.activate_at_ns, self.step_ns)
                {
                    let p = p.clone();
                    out.push(self.install(&p, InstallReason::Early)?);
                    self.early_done = Some(key);
                }
            }
        }
        // IKE's SAs changed and nothing above took the change in.
        out.extend(self.keys_install()?);
        Ok(out)
    }

    /// When [`ControlAgent::poll`] next has something to do (geometry ns).
    pub fn next_wakeup_ns(&self, now_ns: u64) -> u64 {
        let mut at = self.sched.next_wakeup_ns();
        if self.early {
            if let Some(p) = self.sched.pending() {
                if self.early_done != Some((p.epoch, p.activate_at_ns)) {
                    at = at.min(early_install_ns(p.activate_at_ns, self.step_ns));
                }
            }
        }
        if self.feed.is_some() {
            // The failure file is read at least once a step.
            at = at.min(now_ns.saturating_add(self.step_ns));
        }
        at
    }

    /// Runs on the node's clock until `stop`, handing every install to
    /// `publish`, which returns the table epoch it published under, and
    /// arms the link repairs of the last. Errors in one computation are logged and retried at the
    /// next wakeup; the tables in force stay.
    pub fn run(&mut self, stop: &AtomicBool, mut publish: impl FnMut(Install) -> u64) {
        while !stop.load(Ordering::Relaxed) {
            let now = self.clock.now_ns();
            match self.poll(now) {
                Ok(installs) => {
                    // `publish` gives each install's table epoch.
                    let last = installs.into_iter().map(&mut publish).last();
                    if let Some(table_epoch) = last {
                        self.arm_repairs(table_epoch);
                    }
                }
                Err(e) => tracing::error!("control: {e}; keeping the tables in force"),
            }
            let wake = self.next_wakeup_ns(now).max(now.saturating_add(1));
            // IKE's datagrams wait for their SAs' publication: look often.
            let most = if self.ike.is_some() {
                super::ike::PUBLISH_POLL
            } else {
                Duration::from_millis(50)
            };
            let wait = self
                .clock
                .wall_until(wake)
                .min(most)
                .max(Duration::from_micros(100));
            match &self.links {
                // A link event wakes the agent at once.
                Some(rx) => match rx.recv_timeout(wait) {
                    Ok(e) => self.pushed_back = Some(e),
                    Err(crossbeam::channel::RecvTimeoutError::Timeout) => {}
                    Err(crossbeam::channel::RecvTimeoutError::Disconnected) => {
                        // No BFD on this node: nothing will come.
                        self.links = None;
                        std::thread::sleep(wait);
                    }
                },
                None => std::thread::sleep(wait),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::mpls::MplsEntry;
    use crate::tables::NodeRoute;
    use meshplane_control::routing::{FirstHops, Router};
    use std::net::Ipv4Addr;

    const SATELLITE: &str = r#"
[node]
name = "sat5"
role = "satellite"

[[ports]]
name = "isl6"
mac = "02:00:00:00:00:01"

[control]
constellation = "kuiper-630"
node = "sat:5"
"#;

    fn epochs(installs: &[Install]) -> Vec<(u64, InstallReason)> {
        installs.iter().map(|i| (i.epoch, i.reason)).collect()
    }

    #[test]
    fn a_failure_after_an_early_install_does_not_skip_the_next_epoch() {
        let cfg = NodeConfig::parse(SATELLITE, "sat5.toml").expect("config");
        let mut agent = ControlAgent::new(&cfg).expect("agent");
        let ms = 1_000_000;
        assert_eq!(
            epochs(&agent.poll(0).expect("poll")),
            [(0, InstallReason::Scheduled)]
        );
        // Half a step before activation, the satellite installs epoch 1.
        assert_eq!(
            epochs(&agent.poll(60 * ms).expect("poll")),
            [(1, InstallReason::Early)]
        );
        // A failure replaces it with the active epoch's tables, rerouted.
        let f = agent
            .fail(70 * ms, FailureEvent::IslDown(5, 6))
            .expect("fail")
            .expect("installs at once");
        assert_eq!((f.epoch, f.reason), (0, InstallReason::Failure));
        // Epoch 1, recomputed without the link, must come back before or
        // at its activation.
        let mut again = epochs(&agent.poll(75 * ms).expect("poll"));
        again.extend(epochs(&agent.poll(100 * ms).expect("poll")));
        assert_eq!(again.len(), 1, "{again:?}");
        assert_eq!(again[0].0, 1, "{again:?}");
    }

    #[test]
    fn an_install_reports_the_next_hops_that_changed() {
        let cfg = NodeConfig::parse(SATELLITE, "sat5.toml").expect("config");
        let mut agent = ControlAgent::new(&cfg).expect("agent");
        let ms = 1_000_000;
        let first = agent.poll(0).expect("poll");
        assert_eq!(first.len(), 1);
        assert!(first[0].changes.is_empty(), "{:?}", first[0].changes);
        let via_isl6 = first[0].counts.lfib;
        assert!(via_isl6 > 0, "sat 5 routes nothing over isl6");
        // The link of its only port goes down: every route over it is gone.
        let f = agent
            .fail(10 * ms, FailureEvent::IslDown(5, 6))
            .expect("fail")
            .expect("installs at once");
        assert!(!f.changes.is_empty());
        for c in &f.changes {
            assert_eq!((c.old.as_deref(), c.new.as_deref()), (Some("isl6"), None));
        }
        // And back: the same gateways return to isl6, in the first epoch
        // computed 20 ms or more after the restore (epoch 2, computed at
        // 100 ms).
        let up = agent
            .fail(20 * ms, FailureEvent::IslUp(5, 6))
            .expect("repair");
        let mut back = up.map(|i| i.changes).unwrap_or_default();
        for t in [60, 100, 160, 200] {
            for i in agent.poll(t * ms).expect("poll") {
                back.extend(i.changes);
            }
        }
        let gone: Vec<u32> = f.changes.iter().map(|c| c.egress_gid).collect();
        let returned: Vec<u32> = back
            .iter()
            .filter(|c| c.new.as_deref() == Some("isl6"))
            .map(|c| c.egress_gid)
            .collect();
        assert_eq!(returned, gone, "{back:?}");
    }

    #[test]
    fn a_repair_after_an_early_install_keeps_that_epoch_and_takes_the_link_in_the_next() {
        let cfg = NodeConfig::parse(SATELLITE, "sat5.toml").expect("config");
        let mut agent = ControlAgent::new(&cfg).expect("agent");
        let ms = 1_000_000;
        agent.poll(0).expect("poll");
        agent
            .fail(10 * ms, FailureEvent::IslDown(5, 6))
            .expect("fail")
            .expect("installs at once");
        assert_eq!(
            epochs(&agent.poll(60 * ms).expect("poll")),
            [(1, InstallReason::Early)]
        );
        // A repair publishes nothing at once and leaves epoch 1, installed
        // early, as it is (make-before-break): nothing is installed again
        // at its activation; epoch 2 is installed early with the link.
        assert!(agent
            .fail(70 * ms, FailureEvent::IslUp(5, 6))
            .expect("repair")
            .is_none());
        let mut again = epochs(&agent.poll(75 * ms).expect("poll"));
        again.extend(epochs(&agent.poll(100 * ms).expect("poll")));
        assert!(again.is_empty(), "{again:?}");
        let next = agent.poll(160 * ms).expect("poll");
        assert_eq!(epochs(&next), [(2, InstallReason::Early)]);
        assert!(
            next[0]
                .changes
                .iter()
                .any(|c| c.new.as_deref() == Some("isl6")),
            "{:?}",
            next[0].changes
        );
    }

    /// sat5 of the SATELLITE config, with node addresses.
    fn satellite_with_addresses() -> NodeConfig {
        let text = SATELLITE.replace(
            "node = \"sat:5\"",
            "node = \"sat:5\"\nnode_prefix = \"100.64.0.0/10\"",
        );
        NodeConfig::parse(&text, "sat5.toml").expect("config")
    }

    /// `(label, out label, port)` of every satellite-label swap in `t`,
    /// and the satellite-label pops (local terminations) in `t`.
    fn sat_entries(t: &Tables, plan: &LabelPlan) -> (Vec<(u32, u32, String)>, Vec<u32>) {
        use crate::tables::lfib::LfibOp;
        let (mut swaps, mut pops) = (Vec::new(), Vec::new());
        for block in 0..2 {
            for s in 0..plan.sat_block_size {
                let label = plan.sat_base[block] + s;
                match t.lfib.get(label).map(|e| (e.op, e.port)) {
                    Some((LfibOp::Swap(out) | LfibOp::SwapPush(out, _), port)) => {
                        swaps.push((label, out, t.port_names[usize::from(port)].clone()))
                    }
                    Some((LfibOp::PopLocal, _)) => pops.push(label),
                    Some((LfibOp::Pop, _)) => panic!("label {label}: penultimate-hop pop"),
                    None => {}
                }
            }
        }
        (swaps, pops)
    }

    #[test]
    fn satellite_labels_keep_the_previous_block_and_their_own_label_ends_here() {
        let cfg = satellite_with_addresses();
        let mut agent = ControlAgent::new(&cfg).expect("agent");
        let plan = LabelPlan::default();
        let ms = 1_000_000;
        let first = agent.poll(0).expect("poll").pop().expect("epoch 0");
        let (swaps0, pops0) = sat_entries(&first.tables, &plan);
        // Sat 5 pops its own label of both blocks, and sends every other
        // satellite it reaches through isl6 (its only port) under block 0.
        assert_eq!(pops0, [20_005, 40_005]);
        assert!(!swaps0.is_empty());
        assert!(swaps0
            .iter()
            .all(|(l, out, port)| l == out && (20_000..21_156).contains(l) && port == "isl6"));
        assert!(swaps0.iter().any(|(l, ..)| *l == 20_006));
        assert_eq!(first.counts.sat_lfib, swaps0.len() + 2);
        assert!(
            first.counts.no_port > 0,
            "routes over the ports sat 5 lacks"
        );
        // Every other satellite's address takes its label of the epoch.
        let prefix = (Ipv4Addr::new(100, 64, 0, 0), 10);
        let route = |t: &Tables, s: u32| {
            t.node_routes
                .get(&node_address(prefix, s).expect("a"))
                .copied()
        };
        assert_eq!(route(&first.tables, 6), Some(NodeRoute::Label(20_006)));
        assert_eq!(route(&first.tables, 1155), Some(NodeRoute::Label(21_155)));
        assert_eq!(route(&first.tables, 5), None, "its own address");
        assert_eq!(route(&first.tables, 1156), None, "no such satellite");

        // Installed early, epoch 1 adds block 1 and keeps block 0 as it was;
        // the satellite's own packets still take the active epoch's labels.
        let early = agent.poll(60 * ms).expect("poll").pop().expect("epoch 1");
        assert_eq!(early.reason, InstallReason::Early);
        let (swaps1, pops1) = sat_entries(&early.tables, &plan);
        assert_eq!(pops1, [20_005, 40_005]);
        let (old, new): (Vec<_>, Vec<_>) = swaps1.into_iter().partition(|(l, ..)| *l < 40_000);
        assert_eq!(old, swaps0);
        assert!(!new.is_empty() && new.iter().all(|(l, out, _)| l == out));
        assert_eq!(route(&early.tables, 6), Some(NodeRoute::Label(20_006)));
        let (_, out) = crate::control::inject::frame_to_node(
            &early.tables,
            node_address(prefix, 6).expect("a"),
            64,
            &[0x45; 20],
        )
        .expect("a path to sat 6");
        assert_eq!(
            out[14..17],
            MplsEntry::new(20_006, 0, true, 64).0.to_be_bytes()[..3]
        );

        // The ISL fails under both epochs' entries: nothing leaves by it,
        // the old block's entries are re-pointed where there is a way.
        let f = agent
            .fail(70 * ms, FailureEvent::IslDown(5, 6))
            .expect("fail")
            .expect("installs at once");
        let (swaps, pops) = sat_entries(&f.tables, &plan);
        assert_eq!(pops, [20_005, 40_005]);
        assert!(swaps.is_empty(), "{swaps:?}");
        assert_eq!(f.counts.sat_lfib, 2);
    }

    /// A MAC for node `a`'s port toward node `b` (unique per direction).
    fn mac(a: NodeId, b: NodeId) -> String {
        format!(
            "02:{:02x}:{:02x}:{:02x}:{:02x}:01",
            a >> 8,
            a & 0xff,
            b >> 8,
            b & 0xff
        )
    }

    /// Node `id` of Starlink-550 (top-100 gateways) at geometry time `T0`
    /// with a port toward each neighbour `topo` gives it (ISLs, and GSLs
    /// to the gateways in view).
    fn starlink_node(id: NodeId, topo: &meshplane_control::topology::Topology) -> NodeConfig {
        let n = topo.n_sats() as NodeId;
        let neighbours: Vec<NodeId> = if id < n {
            let gateways_in_view = (0..topo.n_gs())
                .filter(|&g| topo.gsl_of(g).0.contains(&id))
                .map(|g| n + g as NodeId);
            let isls = topo.isl_neighbors(id as usize).0.iter().copied();
            isls.chain(gateways_in_view).collect()
        } else {
            topo.gsl_of((id - n) as usize).0.to_vec()
        };
        let prefix = (Ipv4Addr::new(100, 64, 0, 0), 10);
        let (name, role, node, address) = if id < n {
            (
                format!("sat{id}"),
                "satellite",
                format!("sat:{id}"),
                String::new(),
            )
        } else {
            let a = node_address(prefix, id).expect("address");
            (
                format!("gw{id}"),
                "gateway",
                format!("gs:{}", id - n),
                format!("address = \"{a}\"\n"),
            )
        };
        let mut text = format!("[node]\nname = \"{name}\"\nrole = \"{role}\"\n{address}\n");
        for &nb in &neighbours {
            text += &format!(
                "[[ports]]\nname = \"{}\"\nmac = \"{}\"\npeer_mac = \"{}\"\n\n",
                meshplane_control::tables::port_name(n as usize, nb),
                mac(id, nb),
                mac(nb, id)
            );
        }
        text += &format!(
            "[control]\nconstellation = \"starlink-550\"\nnode = \"{node}\"\nstart_s = {T0:?}\n\
             node_prefix = \"100.64.0.0/10\"\n"
        );
        NodeConfig::parse(&text, &format!("{name}.toml")).expect("config")
    }

    const T0: f64 = 1234.5;

    /// Satellite 700 of Starlink-550 at `T0`, flooding its notices (the
    /// network-wide change waits for them), and the topology it sees.
    fn flooding_satellite() -> (NodeId, meshplane_control::topology::Topology, NodeConfig) {
        let stations = GroundStations::top100();
        let engine = Engine::new(Constellation::preset(Preset::Starlink550), stations).expect("e");
        let topo = engine.topology(T0, &Failures::new()).expect("topology");
        let me: NodeId = 700;
        let mut cfg = starlink_node(me, &topo);
        cfg.flood = Some(crate::config::FloodConfig {
            key: "node.key".into(),
            trust: "trust".into(),
            bound_ms: 200,
        });
        (me, topo, cfg)
    }

    #[test]
    fn armed_repairs_publish_what_the_agent_would_repair_to() {
        let (me, topo, cfg) = flooding_satellite();
        let (tx, rx) = crossbeam::channel::bounded(16);
        let armed = Arc::new(ArmedRepairs::default());
        let mut agent = ControlAgent::new(&cfg)
            .expect("agent")
            .with_link_events(rx)
            .with_armed_repairs(armed.clone());
        let first = agent.poll(0).expect("poll").pop().expect("epoch 0");
        let store = crate::runtime::TableStore::new(first.tables);
        agent.arm_repairs(store.epoch());
        let neighbors = armed.armed();
        let isls = topo.isl_neighbors(me as usize).0;
        assert!(!neighbors.is_empty(), "nothing armed");
        assert!(
            neighbors.iter().all(|n| isls.contains(n)),
            "{neighbors:?} not all neighbours of {me} ({isls:?})"
        );
        let peer = neighbors[0];
        let lfib = |t: &Tables| -> Vec<String> {
            t.lfib.iter().map(|(l, e)| format!("{l} {e:?}")).collect()
        };
        let before = lfib(&store.load());
        assert!(matches!(
            armed.fire(peer, &store),
            super::super::armed_repairs::Fired::Published(_)
        ));
        let fired = lfib(&store.load());
        assert_ne!(fired, before, "the armed tables change nothing");
        // The agent's own repair, when it hears of the link, is the same.
        let port_name = meshplane_control::tables::port_name(topo.n_sats(), peer);
        let port = store
            .load()
            .port_names
            .iter()
            .position(|p| *p == port_name)
            .expect("port") as u16;
        tx.send(LinkNews::Local(super::super::bfd::LinkEvent {
            port,
            port_name,
            peer_node: Some(peer),
            peer: Ipv4Addr::UNSPECIFIED,
            up: false,
            diag: 1,
        }))
        .expect("send");
        let installs = agent.poll(1_000_000).expect("poll");
        let repaired = installs
            .iter()
            .find(|i| i.reason == InstallReason::Repair)
            .expect("a repair install");
        assert_eq!(fired, lfib(&repaired.tables));
    }

    #[test]
    fn a_link_down_by_bfd_is_repaired_at_once_and_held_until_its_notice_applies() {
        use crate::tables::lfib::LfibOp;
        let (me, topo, cfg) = flooding_satellite();
        let (tx, rx) = crossbeam::channel::bounded(16);
        let mut agent = ControlAgent::new(&cfg).expect("agent").with_link_events(rx);
        let first = agent.poll(0).expect("poll").pop().expect("epoch 0");
        // The neighbour whose link carries the most entries.
        let port_of = |t: &Tables, name: &str| {
            t.port_names
                .iter()
                .position(|p| p == name)
                .map(|p| p as u16)
        };
        let leaving = |t: &Tables, port: u16| {
            t.lfib
                .iter()
                .filter(|(_, e)| !matches!(e.op, LfibOp::PopLocal) && e.port == port)
                .count()
        };
        let n_sats = topo.n_sats();
        let (peer, before) = topo
            .isl_neighbors(me as usize)
            .0
            .iter()
            .map(|&nb| {
                let port = port_of(
                    &first.tables,
                    &meshplane_control::tables::port_name(n_sats, nb),
                )
                .expect("port");
                (nb, leaving(&first.tables, port))
            })
            .max_by_key(|&(_, c)| c)
            .expect("a neighbour");
        assert!(before > 0);
        let port = port_of(
            &first.tables,
            &meshplane_control::tables::port_name(n_sats, peer),
        )
        .expect("port");
        let event = super::super::bfd::LinkEvent {
            port,
            port_name: String::new(),
            peer_node: Some(peer),
            peer: Ipv4Addr::UNSPECIFIED,
            up: false,
            diag: 1,
        };
        // The node's own BFD: repaired tables at once, no recompute.
        tx.send(LinkNews::Local(event)).expect("send");
        let ms = 1_000_000;
        let installs = agent.poll(ms).expect("poll");
        let repaired = installs
            .iter()
            .find(|i| i.reason == InstallReason::Repair)
            .expect("a repair install");
        let c = agent.apply_repairs(&mut agent.last.as_ref().expect("last").cfg.clone());
        eprintln!("link {me}-{peer}: {before} entries; {c:?}");
        assert!(c.repaired > 0, "{c:?}");
        assert_eq!(
            c.unsupported, 0,
            "a satellite installs every repair, stacks too"
        );
        let after = leaving(&repaired.tables, port);
        assert_eq!(
            after,
            before - c.repaired,
            "every repaired entry left the dead link, and only those"
        );
        // Every install before the notice applies keeps the repairs.
        let later = agent.poll(150 * ms).expect("poll");
        for i in &later {
            let p = port_of(
                &i.tables,
                &meshplane_control::tables::port_name(n_sats, peer),
            )
            .expect("port");
            assert!(
                leaving(&i.tables, p) <= before - c.repaired,
                "{:?}",
                i.reason
            );
        }
        // The notice applies: the link is gone from the routes themselves.
        tx.send(LinkNews::Apply(
            FailureEvent::IslDown(me.min(peer), me.max(peer)),
            0,
        ))
        .expect("send");
        let applied = agent.poll(200 * ms).expect("poll");
        let fail = applied
            .iter()
            .find(|i| i.reason == InstallReason::Failure)
            .expect("a failure install");
        assert!(agent.locally_down.is_empty());
        let p = port_of(
            &fail.tables,
            &meshplane_control::tables::port_name(n_sats, peer),
        )
        .expect("port");
        let carried = leaving(&fail.tables, p);
        eprintln!("after the notice: {carried} entries still leave by the link (previous block)");
    }

    /// `[ike]` of a gateway at `me` with one peer at `peer`.
    fn ike_of(me: Ipv4Addr, peer: Ipv4Addr) -> crate::config::IkeConfig {
        let text = format!(
            "[node]\nname = \"gw\"\nrole = \"gateway\"\n\n\
             [ike]\naddress = \"{me}\"\nidentity = \"gw\"\npsk_file = \"psk\"\n\n\
             [[ike.peer]]\naddress = \"{peer}\"\nidentity = \"peer\"\ninitiate = true\n"
        );
        NodeConfig::parse(&text, "ike.toml")
            .expect("config")
            .ike
            .expect("[ike]")
    }

    /// A negotiated SA from `src` to `dst`.
    fn negotiated(
        spi: u32,
        dir: crate::config::SaDir,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> crate::config::SaConfig {
        crate::config::SaConfig {
            spi,
            dir,
            aead: crate::config::AeadAlg::Aes128Gcm,
            key: zeroize::Zeroizing::new(vec![spi as u8; 20]),
            tunnel_src: src,
            tunnel_dst: dst,
            esn: true,
            udp_encap: false,
            lifetime: crate::sa::Lifetime::NONE,
            peer: None,
            negotiated: true,
        }
    }

    #[test]
    fn a_gateway_with_ike_routes_toward_its_peer_under_the_negotiated_sa() {
        use crate::config::SaDir;
        use crate::control::ike::{IkeShare, NegotiatedSas};
        use crate::tables::SA_PENDING;
        let stations = GroundStations::top100();
        let engine =
            Engine::new(Constellation::preset(Preset::Starlink550), stations.clone()).expect("e");
        let topo = engine.topology(T0, &Failures::new()).expect("topology");
        let n = topo.n_sats() as NodeId;
        let prefix = (Ipv4Addr::new(100, 64, 0, 0), 10);
        let me = n + stations.find("Tokyo").expect("Tokyo");
        let peer_gid = if me == n { 1 } else { 0 };
        let (my_addr, peer) = (
            node_address(prefix, me).expect("a"),
            node_address(prefix, n + peer_gid).expect("a"),
        );
        let mut cfg = starlink_node(me, &topo);
        cfg.ike = Some(ike_of(my_addr, peer));
        let step_ns = cfg.control.as_ref().expect("control").step_ms * 1_000_000;
        let share = std::sync::Arc::new(IkeShare::default());
        let mut agent = ControlAgent::new(&cfg)
            .expect("agent")
            .with_ike(share.clone());

        // Before any SA: only the peer's gateway has a FEC, pending.
        let first = agent.poll(0).expect("poll").pop().expect("epoch 0");
        assert_eq!(first.counts.fec, 1, "{:?}", first.counts);
        assert!(
            first.counts.no_sa > 0,
            "the other gateways are keyed by nothing"
        );
        let fec_of = |t: &Tables| match t.node_routes.get(&peer) {
            Some(crate::tables::NodeRoute::Fec(i)) => t.fecs[*i as usize],
            r => panic!("no FEC toward the peer: {r:?}"),
        };
        assert_eq!(fec_of(&first.tables).sa, SA_PENDING);
        assert!(agent.poll(1).expect("poll").is_empty(), "nothing changed");

        // IKE made a Child SA: the routes in force are published again
        // with it, the FEC under its outbound SA.
        let pair = |i: u32, o: u32| NegotiatedSas {
            sas: vec![
                negotiated(i, SaDir::In, peer, my_addr),
                negotiated(o, SaDir::Out, my_addr, peer),
            ],
            out: [(peer, o)].into(),
        };
        share.set(pair(0x1111, 0x2222));
        let keys = agent.poll(2).expect("poll").pop().expect("a keys install");
        assert_eq!(keys.reason, InstallReason::Keys);
        assert_eq!(keys.epoch, first.epoch, "the same routes");
        assert_eq!(keys.tables.routes.as_ref().map(|r| r.reason), Some("keys"));
        let out = keys.tables.sa_out[fec_of(&keys.tables).sa as usize].clone();
        assert_eq!(out.spi, 0x2222);
        assert!(keys.tables.sa_in.contains_key(&0x1111));
        let _ = out.reserve_seq(5);

        // The next epoch's routes keep the SA and its state.
        let next = agent
            .poll(step_ns)
            .expect("poll")
            .into_iter()
            .find(|i| i.reason == InstallReason::Scheduled)
            .expect("epoch 1");
        assert_eq!(next.epoch, first.epoch + 1);
        let kept = &next.tables.sa_out[fec_of(&next.tables).sa as usize];
        assert!(std::sync::Arc::ptr_eq(kept, &out), "the same SA");
        assert_eq!(kept.sent(), 5, "its sequence goes on");

        // A rekey: the new pair in use, the old inbound SA draining; then
        // drained away.
        let mut rekeyed = pair(0x3333, 0x4444);
        rekeyed
            .sas
            .push(negotiated(0x1111, SaDir::In, peer, my_addr));
        share.set(rekeyed);
        let t = agent
            .poll(step_ns + 1)
            .expect("poll")
            .pop()
            .expect("keys")
            .tables;
        assert_eq!(t.sa_out[fec_of(&t).sa as usize].spi, 0x4444);
        assert!(t.sa_in.contains_key(&0x1111) && t.sa_in.contains_key(&0x3333));
        share.set(pair(0x3333, 0x4444));
        let t = agent
            .poll(step_ns + 2)
            .expect("poll")
            .pop()
            .expect("keys")
            .tables;
        assert!(!t.sa_in.contains_key(&0x1111) && t.sa_in.contains_key(&0x3333));
        assert_eq!(t.sa_out.len(), 1, "the old outbound SA is gone");
    }

    /// The tables node `id` installs first, each node computing them itself.
    fn first_tables(id: NodeId, topo: &meshplane_control::topology::Topology) -> Install {
        let cfg = starlink_node(id, topo);
        let mut agent = ControlAgent::new(&cfg).expect("agent");
        agent.poll(0).expect("poll").pop().expect("epoch 0")
    }

    /// An IPv4 ICMP echo request header from `src` to `dst` (checksums right).
    fn echo(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 1, 0, 0];
        p.extend(src.octets());
        p.extend(dst.octets());
        p.extend([8, 0, 0xf7, 0xff, 0, 0, 0, 0]);
        let sum = crate::packet::checksum::internet_checksum(&p[..20]);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p
    }

    #[test]
    fn each_node_s_own_install_carries_a_satellite_s_label_to_it_along_the_shortest_path() {
        use crate::frame::{Batch, Frame, HeapFrame, Verdict};
        use std::collections::HashMap;
        let stations = GroundStations::top100();
        let engine =
            Engine::new(Constellation::preset(Preset::Starlink550), stations.clone()).expect("e");
        let topo = engine.topology(T0, &Failures::new()).expect("topology");
        let n = topo.n_sats() as NodeId;
        let plan = LabelPlan::default();
        let prefix = (Ipv4Addr::new(100, 64, 0, 0), 10);
        let mut installs: HashMap<NodeId, Install> = HashMap::new();
        let tokyo = n + stations.find("Tokyo").expect("Tokyo");
        for (src, dst) in [(0, 1583), (700, 37), (tokyo, 900)] {
            let mut shortest = FirstHops::default();
            Router::new().first_hops_into(&topo, src, &mut shortest);
            let i = installs
                .entry(src)
                .or_insert_with(|| first_tables(src, &topo));
            let from = node_address(prefix, src).expect("a");
            let to = node_address(prefix, dst).expect("a");
            // The node's own packet, as its service thread would send it.
            let (port, frame) =
                crate::control::inject::frame_to_node(&i.tables, to, 64, &echo(from, to))
                    .expect("a route to the satellite");
            let label = u32::from_be_bytes([frame[14], frame[15], frame[16], frame[17]]) >> 12;
            assert_eq!(label, plan.sat_label(0, dst).expect("label"));
            let mut path = vec![src];
            let mut port_name = i.tables.port_names[usize::from(port)].clone();
            let mut frame = frame;
            loop {
                let prev = *path.last().expect("path");
                let next: NodeId = port_name[3..].parse().expect("isl{X} / gsl{X}");
                assert!(next < n, "{path:?}: relayed through a ground station");
                assert!(!path.contains(&next), "{path:?}: loop back to {next}");
                path.push(next);
                let t = &installs
                    .entry(next)
                    .or_insert_with(|| first_tables(next, &topo))
                    .tables;
                // Received on its port toward the previous node, by the stages.
                let rx = t
                    .port_names
                    .iter()
                    .position(|p| *p == meshplane_control::tables::port_name(n as usize, prev))
                    .expect("a port back");
                let mut b: Batch<HeapFrame> = Batch::new();
                b.set_rx_port(rx as u16);
                b.push(HeapFrame::from_bytes(&frame)).expect("room");
                crate::stage::process(&mut b, t);
                match b.verdicts()[0] {
                    Verdict::Punt => {
                        assert_eq!(next, dst, "{path:?}: punted short of {dst}");
                        break;
                    }
                    Verdict::Tx(p) => {
                        frame = b.frames()[0].data().to_vec();
                        let top = u32::from_be_bytes([frame[14], frame[15], frame[16], frame[17]]);
                        assert_eq!(top >> 12, label, "the label stays the satellite's");
                        port_name = t.port_names[usize::from(p)].clone();
                    }
                    v => panic!("{path:?}: {v:?}"),
                }
            }
            let walked: f64 = path
                .windows(2)
                .map(|w| topo.link_length(w[0], w[1]).expect("a link"))
                .sum();
            let d = shortest.dist[dst as usize];
            assert!(
                (walked - d).abs() < 1e-3,
                "{path:?}: {walked} m, shortest {d} m"
            );
            // Neighbours agree: each hop is the previous node's first hop,
            // and the rest of the way is the next one's own shortest path.
            assert_eq!(path[1], shortest.hop[dst as usize]);
        }
        // What satellite labels add to a satellite's LFIB.
        let sat = &installs[&700];
        eprintln!(
            "sat 700, first install: {} LFIB entries, {} of them satellite labels ({} without)",
            sat.counts.lfib,
            sat.counts.sat_lfib,
            sat.counts.lfib - sat.counts.sat_lfib
        );
    }

    /// Median of `f`'s wall time over `runs` calls.
    fn median_time(runs: usize, mut f: impl FnMut()) -> Duration {
        let mut v: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed()
            })
            .collect();
        v.sort();
        v[runs / 2]
    }

    #[test]
    fn what_satellite_labels_cost_an_install_on_starlink() {
        // Printed, not asserted (a shared machine's wall clock): the time
        // of a whole install next to the extra Dijkstra and next to the
        // install's work without satellite labels, in the same run; and
        // the LFIB entries with both epochs' blocks in place.
        let stations = GroundStations::top100();
        let engine =
            Engine::new(Constellation::preset(Preset::Starlink550), stations.clone()).expect("e");
        let topo = engine.topology(T0, &Failures::new()).expect("topology");
        let n = topo.n_sats() as NodeId;
        let tokyo = n + stations.find("Tokyo").expect("Tokyo");
        for id in [700, tokyo] {
            let cfg = starlink_node(id, &topo);
            let mut agent = ControlAgent::new(&cfg).expect("agent");
            let p0 = agent.sched.tick(0).expect("tick").expect("epoch 0");
            let first = agent
                .install(&p0, InstallReason::Scheduled)
                .expect("install");
            assert!(agent.sched.tick(0).expect("tick").is_none());
            let p1 = agent
                .sched
                .pending()
                .cloned()
                .expect("epoch 1 computed ahead");
            let second = agent.install(&p1, InstallReason::Early).expect("install");
            assert_eq!(
                second.counts.sat_lfib,
                first.counts.sat_lfib * 2 - 2 * usize::from(id < n)
            );
            let runs = 15;
            let install = median_time(runs, || {
                agent.install(&p1, InstallReason::Early).expect("install");
            });
            let mut hops = FirstHops::default();
            let mut router = Router::new();
            let dijkstra =
                median_time(runs, || router.first_hops_into(&p1.topology, id, &mut hops));
            let mut store = SaStore::default();
            let without = median_time(runs, || {
                let (cfg, _) = agent
                    .installer
                    .installer()
                    .node_config(&agent.cfg, &p1.tables, &[]);
                Tables::from_config_with(&cfg, 1, &mut store).expect("tables");
            });
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            let c = second.counts;
            eprintln!(
                "{} node {id}: install {:.3} ms, of which first hops {:.3} ms; \
                 without satellite labels {:.3} ms; LFIB {} entries = {} gateway labels + {} satellite labels",
                if id < n { "satellite" } else { "gateway" },
                ms(install),
                ms(dijkstra),
                ms(without),
                c.lfib,
                c.lfib - c.sat_lfib,
                c.sat_lfib,
            );
        }
    }
}
