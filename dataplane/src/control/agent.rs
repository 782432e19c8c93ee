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

use super::clock::GeometryClock;
use super::failures::FailureFeed;
use super::install::{route_changes, InstallCounts, NextHops, RouteChange, RouteInstaller};
use super::ControlError;
use crate::config::{node_address, NodeConfig, NodeRef, NodeRouteConfig, Role};
use crate::tables::{SaStore, Tables};
use meshplane_control::schedule::{FailureEvent, Publication, ScheduleConfig, Scheduler};
use meshplane_control::{Constellation, Engine, Failures, GroundStations, NodeId, Preset};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
}

impl InstallReason {
    /// The name used in logs: `scheduled`, `early` or `failure`.
    pub fn name(self) -> &'static str {
        match self {
            InstallReason::Scheduled => "scheduled",
            InstallReason::Early => "early",
            InstallReason::Failure => "failure",
        }
    }
}

impl std::fmt::Display for InstallReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One node's control plane.
pub struct ControlAgent {
    cfg: NodeConfig,
    installer: RouteInstaller,
    sched: Scheduler,
    store: SaStore,
    early: bool,
    early_done: Option<(u64, u64)>,
    /// Next hops of the last install, to tell the next one's changes.
    hops: Option<NextHops>,
    version: u64,
    feed: Option<FailureFeed>,
    step_ns: u64,
    clock: GeometryClock,
    /// Satellites in the constellation (gateway `gid` is node `n_sats + gid`).
    n_sats: u32,
    /// Names and addresses of the constellation's nodes.
    book: super::address_book::AddressBook,
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
            installer,
            sched,
            store: SaStore::default(),
            early: cfg.role == Role::Satellite,
            early_done: None,
            hops: None,
            version: 0,
            feed: c.failures_file.as_deref().map(FailureFeed::new),
            step_ns,
            clock: GeometryClock::new(c.anchor_unix_ms, c.time_scale),
            n_sats: n_sats as u32,
            book,
        })
    }

    /// The node id this agent installs tables for.
    pub fn node(&self) -> NodeId {
        self.installer.node()
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
        let (mut cfg, counts) = self.installer.node_config(&self.cfg, &p.tables);
        let plan = *self.sched.engine_mut().label_plan();
        let hops = self.installer.next_hops(&p.tables, &plan);
        // A satellite's own packets toward a gateway's address take that
        // gateway's label, as data does (a gateway reaches its peers
        // through the FEC of its SA to them): the label of the epoch that
        // is active, which every node holds. Installed early, the new
        // epoch is not active yet (the gateways have not switched); the
        // tables still carry the active one's block.
        let prefix = self.cfg.control.as_ref().and_then(|c| c.node_prefix);
        let active = match reason {
            InstallReason::Early => p.tables.epoch.saturating_sub(1),
            _ => p.tables.epoch,
        };
        if let (Some(prefix), Role::Satellite) = (prefix, self.cfg.role) {
            for &gid in hops.keys() {
                let address = node_address(prefix, self.n_sats.saturating_add(gid));
                if let (Some(address), Ok(label)) = (address, plan.label(active, gid)) {
                    cfg.node_routes.push(NodeRouteConfig { address, label });
                }
            }
        }
        self.version += 1;
        let mut tables = Tables::from_config_with(&cfg, self.version, &mut self.store)?;
        tables.routes = Some(crate::tables::RouteOrigin {
            label_epoch: p.epoch,
            t_s: p.tables.t_s,
            reason: reason.name(),
        });
        let changes = self
            .hops
            .as_ref()
            .map_or_else(Vec::new, |old| route_changes(old, &hops));
        self.hops = Some(hops);
        Ok(Install {
            tables,
            epoch: p.epoch,
            t_s: p.tables.t_s,
            counts,
            reason,
            changes,
        })
    }

    /// Applies a failure event at geometry time `now_ns`.
    pub fn fail(&mut self, now_ns: u64, ev: FailureEvent) -> Result<Option<Install>, ControlError> {
        // Any event drops the tables computed ahead (they ignored it): the
        // next epoch, recomputed, must be installed again (early or on
        // time), even if this recompute fails or there is none (a repair).
        self.early_done = None;
        match self.sched.fail(now_ns, ev)? {
            Some(p) => Ok(Some(self.install(&p, InstallReason::Failure)?)),
            None => Ok(None),
        }
    }

    /// Everything due at geometry time `now_ns`, in the order to publish.
    pub fn poll(&mut self, now_ns: u64) -> Result<Vec<Install>, ControlError> {
        let mut out = Vec::new();
        let events = self.feed.as_mut().map(|f| f.poll()).unwrap_or_default();
        for ev in events {
            tracing::info!(?ev, "failure event");
            // The schedule records the event before it recomputes, so a
            // recompute that fails loses nothing: the next one includes it.
            // The other events of the batch still apply.
            match self.fail(now_ns, ev) {
                Ok(Some(i)) => out.push(i),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(?ev, "rerouting after a failure: {e}; the next step retries")
                }
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
                    && now_ns.saturating_add(self.step_ns / 2) >= p.activate_at_ns
                {
                    let p = p.clone();
                    out.push(self.install(&p, InstallReason::Early)?);
                    self.early_done = Some(key);
                }
            }
        }
        Ok(out)
    }

    /// When [`ControlAgent::poll`] next has something to do (geometry ns).
    pub fn next_wakeup_ns(&self, now_ns: u64) -> u64 {
        let mut at = self.sched.next_wakeup_ns();
        if self.early {
            if let Some(p) = self.sched.pending() {
                if self.early_done != Some((p.epoch, p.activate_at_ns)) {
                    at = at.min(p.activate_at_ns.saturating_sub(self.step_ns / 2));
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
    /// `publish`. Errors in one computation are logged and retried at the
    /// next wakeup; the tables in force stay.
    pub fn run(&mut self, stop: &AtomicBool, mut publish: impl FnMut(Install)) {
        while !stop.load(Ordering::Relaxed) {
            let now = self.clock.now_ns();
            match self.poll(now) {
                Ok(installs) => installs.into_iter().for_each(&mut publish),
                Err(e) => tracing::error!("control: {e}; keeping the tables in force"),
            }
            let wake = self.next_wakeup_ns(now).max(now.saturating_add(1));
            let wait = self
                .clock
                .wall_until(wake)
                .min(Duration::from_millis(50))
                .max(Duration::from_micros(100));
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // And back: the same gateways return to isl6.
        let up = agent
            .fail(20 * ms, FailureEvent::IslUp(5, 6))
            .expect("repair");
        let mut back = up.map(|i| i.changes).unwrap_or_default();
        for i in agent.poll(60 * ms).expect("poll") {
            back.extend(i.changes);
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
    fn a_repair_after_an_early_install_still_installs_the_next_epoch() {
        let cfg = NodeConfig::parse(SATELLITE, "sat5.toml").expect("config");
        let mut agent = ControlAgent::new(&cfg).expect("agent");
        let ms = 1_000_000;
        agent.poll(0).expect("poll");
        assert_eq!(
            epochs(&agent.poll(60 * ms).expect("poll")),
            [(1, InstallReason::Early)]
        );
        // A repair publishes nothing at once but drops the precomputed
        // epoch 1; its recomputation must still be installed.
        assert!(agent
            .fail(70 * ms, FailureEvent::IslUp(5, 6))
            .expect("repair")
            .is_none());
        let mut again = epochs(&agent.poll(75 * ms).expect("poll"));
        again.extend(epochs(&agent.poll(100 * ms).expect("poll")));
        assert_eq!(again.len(), 1, "{again:?}");
        assert_eq!(again[0].0, 1, "{again:?}");
    }
}
