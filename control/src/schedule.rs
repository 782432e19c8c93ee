//! When tables are computed and published: a pure state machine that the
//! runtime's control thread drives with the current time and failure events.
//!
//! Time is nanoseconds since the run started (`now_ns`); geometry time is
//! `start_s + now_ns / 1e9` seconds after the constellation epoch. Table
//! epoch `e` becomes active at `e * step` (for the scheduled ones) and is
//! computed `lead` ahead of that, for the geometry at its activation time.
//! Each epoch's tables keep the previous epoch's label block (see
//! [`crate::tables`]), so a transit node forwards packets labelled under the
//! previous epoch after the switch, but only until it installs the epoch
//! after next, which reuses that block: satellites install half a step
//! early, so a packet labelled under epoch `e` keeps `e`'s tree for about
//! half a step after the gateways switch to `e + 1`. A packet still in
//! flight after that (one-way paths longer than half a step) finishes on
//! `e + 2`'s tree under the same label: delivered, by another path
//! (measured with `meshplane emulate`, README).
//!
//! Scheduled epochs are numbered by their activation time, `epoch =
//! activation / step`, so that nodes driven by one shared clock agree on
//! every epoch's label block whenever each of them started.
//!
//! A failure event recomputes at once, for the current geometry, and
//! publishes immediately under the *active* epoch: its labels stay, only
//! next hops change (the failed link is gone, so there is nothing to make
//! before breaking), and the previous epoch's entries are carried again.
//!
//! ```text
//! loop {
//!     if let Some(p) = sched.tick(now_ns())? { install(p.tables) }
//!     sleep_until(sched.next_wakeup_ns()) or a failure event -> sched.fail(now_ns(), ev)
//! }
//! ```

use crate::snapshot::Engine;
use crate::tables::TableSet;
use crate::topology::{Failures, Topology};
use crate::Error;
use std::sync::Arc;

/// Timing of the schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScheduleConfig {
    /// How long before activation the tables are computed (default 100 ms).
    pub lead_ns: u64,
    /// Interval between scheduled epochs (default 100 ms).
    pub step_ns: u64,
    /// Geometry time at `now_ns = 0`, seconds after the constellation epoch.
    pub start_s: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            lead_ns: 100_000_000,
            step_ns: 100_000_000,
            start_s: 0.0,
        }
    }
}

/// An administrative change of the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureEvent {
    /// The ISL between two satellites went down.
    IslDown(u32, u32),
    /// The ISL between two satellites is back.
    IslUp(u32, u32),
    /// A satellite went down.
    SatelliteDown(u32),
    /// A satellite is back.
    SatelliteUp(u32),
    /// The link between a satellite and a ground station (gid) went down.
    GslDown(u32, u32),
    /// The link between a satellite and a ground station (gid) is back.
    GslUp(u32, u32),
}

impl FailureEvent {
    /// The event for the link between nodes `x` and `y` going down or
    /// coming back, in a constellation of `n_sats` satellites (node ids
    /// from `n_sats` on are ground stations): an ISL or a ground link;
    /// None between two ground stations.
    pub fn of_link(x: u32, y: u32, up: bool, n_sats: u32) -> Option<FailureEvent> {
        let (a, b) = (x.min(y), x.max(y));
        Some(match (b < n_sats, a < n_sats, up) {
            (true, _, false) => FailureEvent::IslDown(a, b),
            (true, _, true) => FailureEvent::IslUp(a, b),
            (false, true, false) => FailureEvent::GslDown(a, b - n_sats),
            (false, true, true) => FailureEvent::GslUp(a, b - n_sats),
            (false, false, _) => return None,
        })
    }

    /// The two nodes of the link the event is about (None for a
    /// satellite's own event).
    pub fn link_ends(&self, n_sats: u32) -> Option<(u32, u32)> {
        match *self {
            FailureEvent::IslDown(a, b) | FailureEvent::IslUp(a, b) => Some((a, b)),
            FailureEvent::GslDown(s, gid) | FailureEvent::GslUp(s, gid) => {
                Some((s, n_sats.saturating_add(gid)))
            }
            FailureEvent::SatelliteDown(_) | FailureEvent::SatelliteUp(_) => None,
        }
    }
}

/// Tables ready to install.
#[derive(Clone, Debug)]
pub struct Publication {
    /// Table epoch.
    pub epoch: u64,
    /// When they take effect (`now_ns` scale).
    pub activate_at_ns: u64,
    /// Every node's tables.
    pub tables: Arc<TableSet>,
    /// The graph they were computed over (with the failures then known),
    /// for what each node computes from it for itself (its first hops
    /// toward every satellite, [`crate::routing::first_hops`]).
    pub topology: Arc<Topology>,
    /// The shortest-path tree toward each gateway over that graph (by
    /// gid), for what a node derives from the epoch's routes (its
    /// repairs, [`crate::repair`]).
    pub spts: Arc<Vec<crate::routing::Spt>>,
}

/// How long after a restore's instant the epochs computed from then on
/// take it in: every node has heard of it by then, so every node decides
/// alike which epoch is the first with the link (or satellite) back.
pub const RESTORE_GUARD_NS: u64 = 20_000_000;

/// The schedule state machine.
pub struct Scheduler {
    engine: Engine,
    cfg: ScheduleConfig,
    failures: Failures,
    /// Restores waiting for the first epoch computed at or after their
    /// instant plus [`RESTORE_GUARD_NS`].
    restores: Vec<(u64, FailureEvent)>,
    next_epoch: u64,
    next_activation_ns: u64,
    pending: Option<Publication>,
    active: Option<Arc<TableSet>>,
    previous: Option<Arc<TableSet>>,
}

impl Scheduler {
    /// A schedule whose first tables activate at `now_ns = 0`.
    pub fn new(engine: Engine, cfg: ScheduleConfig) -> Self {
        Self {
            engine,
            cfg,
            failures: Failures::new(),
            restores: Vec::new(),
            next_epoch: 0,
            next_activation_ns: 0,
            pending: None,
            active: None,
            previous: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ScheduleConfig {
        &self.cfg
    }

    /// The engine (for path queries against the same state).
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Starts from these administrative failures (e.g. every satellite
    /// outside an emulated subset) without computing anything now; the
    /// next epoch takes them into account.
    pub fn set_failures(&mut self, failures: Failures) {
        self.failures = failures;
        self.pending = None;
    }

    /// Current administrative failures.
    pub fn failures(&self) -> &Failures {
        &self.failures
    }

    /// Tables computed ahead and waiting for their activation time. A node
    /// that only switches labels (a satellite) may install them early: they
    /// carry the active epoch's entries unchanged.
    pub fn pending(&self) -> Option<&Publication> {
        self.pending.as_ref()
    }

    /// The tables currently active.
    pub fn active(&self) -> Option<&Arc<TableSet>> {
        self.active.as_ref()
    }

    /// When [`Scheduler::tick`] has something to do next: the computation
    /// deadline, or the pending tables' activation.
    pub fn next_wakeup_ns(&self) -> u64 {
        match &self.pending {
            Some(p) => p.activate_at_ns,
            None => self.next_activation_ns.saturating_sub(self.cfg.lead_ns),
        }
    }

    fn geometry_s(&self, ns: u64) -> f64 {
        self.cfg.start_s + ns as f64 / 1e9
    }

    fn compute(
        &mut self,
        epoch: u64,
        at_ns: u64,
        prev: Option<Arc<TableSet>>,
    ) -> Result<Publication, Error> {
        let t = self.geometry_s(at_ns);
        let snap = self
            .engine
            .snapshot(t, &self.failures, epoch, prev.as_deref())?;
        Ok(Publication {
            epoch,
            activate_at_ns: at_ns,
            tables: Arc::new(snap.tables),
            topology: Arc::new(snap.topology),
            spts: Arc::new(snap.spts),
        })
    }

    /// When the epoch activating at `activation_ns` is computed.
    fn compute_instant(&self, activation_ns: u64) -> u64 {
        activation_ns.saturating_sub(self.cfg.lead_ns)
    }

    /// Applies the restores due for a computation at `instant_ns`.
    fn take_restores(&mut self, instant_ns: u64) {
        let due = |t: u64| t.saturating_add(RESTORE_GUARD_NS) <= instant_ns;
        for &(t, ev) in &self.restores {
            if !due(t) {
                continue;
            }
            match ev {
                FailureEvent::IslUp(a, b) => self.failures.restore_isl(a, b),
                FailureEvent::SatelliteUp(s) => self.failures.restore_satellite(s),
                FailureEvent::GslUp(s, gid) => self.failures.restore_gsl(s, gid),
                _ => {}
            }
        }
        self.restores.retain(|&(t, _)| !due(t));
    }

    fn activate(&mut self, p: &Publication) {
        self.previous = self.active.replace(Arc::clone(&p.tables));
        self.next_epoch = p.epoch + 1;
    }

    /// Advances to `now_ns`: computes the next tables once their lead time
    /// has come, and returns them once their activation time has come. A
    /// driver that fell behind skips the missed steps rather than
    /// publishing stale tables.
    pub fn tick(&mut self, now_ns: u64) -> Result<Option<Publication>, Error> {
        let step = self.cfg.step_ns.max(1);
        if self.pending.is_none() && now_ns >= self.next_activation_ns.saturating_add(step) {
            let behind = (now_ns - self.next_activation_ns) / step;
            self.next_activation_ns += behind * step;
            self.next_epoch += behind;
        }
        if self.pending.is_none()
            && now_ns.saturating_add(self.cfg.lead_ns) >= self.next_activation_ns
        {
            self.take_restores(self.compute_instant(self.next_activation_ns));
            let prev = self.active.clone();
            let p = self.compute(self.next_epoch, self.next_activation_ns, prev)?;
            self.pending = Some(p);
        }
        match &self.pending {
            Some(p) if now_ns >= p.activate_at_ns => {
                let p = p.clone();
                self.pending = None;
                self.activate(&p);
                self.next_activation_ns = p.activate_at_ns + step;
                Ok(Some(p))
            }
            _ => Ok(None),
        }
    }

    /// Applies a failure event at `now_ns` (see [`Scheduler::fail_at`],
    /// with the event's instant now).
    pub fn fail(&mut self, now_ns: u64, ev: FailureEvent) -> Result<Option<Publication>, Error> {
        self.fail_at(now_ns, now_ns, ev)
    }

    /// Applies a failure event that every node applies at `instant_ns`
    /// (a flooded notice's apply instant on this clock). A link or
    /// satellite going down recomputes at once for the current geometry
    /// and returns tables to install now. A restore is taken up by the
    /// first epoch computed at or after `instant_ns` plus
    /// [`RESTORE_GUARD_NS`] (the same epoch at every node); an epoch
    /// computed ahead before then stays, so satellites that installed it
    /// early keep it and make-before-break holds.
    pub fn fail_at(
        &mut self,
        now_ns: u64,
        instant_ns: u64,
        ev: FailureEvent,
    ) -> Result<Option<Publication>, Error> {
        self.fail_all(now_ns, &[(ev, instant_ns)])
    }

    /// Applies several failure events, each with the instant every node
    /// applies it at, in order, as [`Scheduler::fail_at`] would one after
    /// the other, but with one recomputation for all of them: the tables
    /// that the last of a run of `fail_at` calls would return. A burst of
    /// notices (a flapping link, a satellite's links all at once) then
    /// costs one route computation, not one per notice.
    pub fn fail_all(
        &mut self,
        now_ns: u64,
        events: &[(FailureEvent, u64)],
    ) -> Result<Option<Publication>, Error> {
        let mut urgent = false;
        for &(ev, instant_ns) in events {
            urgent |= self.record(instant_ns, ev);
        }
        if !urgent {
            return Ok(None);
        }
        // Whatever was precomputed ignored these events.
        self.pending = None;
        let p = match &self.active {
            Some(active) => {
                let epoch = active.epoch;
                let prev = self.previous.clone();
                let p = self.compute(epoch, now_ns, prev)?;
                self.active = Some(Arc::clone(&p.tables));
                p
            }
            None => {
                let p = self.compute(self.next_epoch, now_ns, None)?;
                self.activate(&p);
                p
            }
        };
        if self.next_activation_ns <= now_ns {
            let step = self.cfg.step_ns.max(1);
            self.next_activation_ns = (now_ns / step + 1) * step;
            self.next_epoch = self.next_activation_ns / step;
        }
        Ok(Some(p))
    }

    /// Records a failure event applied at `instant_ns`; true when it takes
    /// something down (the tables in force must be recomputed now).
    fn record(&mut self, instant_ns: u64, ev: FailureEvent) -> bool {
        match ev {
            FailureEvent::IslDown(a, b) => self.failures.fail_isl(a, b),
            FailureEvent::SatelliteDown(s) => self.failures.fail_satellite(s),
            FailureEvent::GslDown(s, gid) => self.failures.fail_gsl(s, gid),
            FailureEvent::IslUp(..) | FailureEvent::SatelliteUp(_) | FailureEvent::GslUp(..) => {
                self.restores.push((instant_ns, ev));
                let due = instant_ns.saturating_add(RESTORE_GUARD_NS);
                if self
                    .pending
                    .as_ref()
                    .is_some_and(|p| self.compute_instant(p.activate_at_ns) >= due)
                {
                    // Computed ahead without a restore it must hold.
                    self.pending = None;
                }
                return false;
            }
        }
        // A restore still waiting for the element that failed again is void.
        self.restores.retain(|(_, r)| !same_element(r, &ev));
        self.take_restores(instant_ns);
        true
    }
}

/// True if two events are about the same link or satellite.
fn same_element(x: &FailureEvent, y: &FailureEvent) -> bool {
    use FailureEvent::*;
    let key = |e: &FailureEvent| match *e {
        IslDown(a, b) | IslUp(a, b) => (0, a.min(b), a.max(b)),
        SatelliteDown(s) | SatelliteUp(s) => (1, s, 0),
        GslDown(s, g) | GslUp(s, g) => (2, s, g),
    };
    key(x) == key(y)
}
