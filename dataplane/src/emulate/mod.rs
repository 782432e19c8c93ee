//! The in-process constellation emulator: every satellite and every chosen
//! gateway is a node with the tables its control agent installs, and every
//! frame goes through the production stages ([`stage::process`] over a
//! [`Batch`]) at every node it crosses, in virtual time.
//!
//! * One schedule ([`Scheduler`], the agent's state machine, at the agent's
//!   step and lead) computes each epoch's snapshot once; every node
//!   installs its own share from it through the agent's install path
//!   ([`node`]), satellites half a step early, gateways at activation:
//!   make-before-break with alternating label blocks, as deployed. The
//!   snapshot is shared only because every node would compute the same
//!   one from the same ephemeris and clock. The satellites' node labels
//!   (a shortest-path computation per node and epoch) go into a node's
//!   tables once a frame may look one up ([`sat_labels`]); no frame can
//!   tell the difference.
//! * Links ([`link`]) are delay lines: the propagation delay of the link in
//!   the geometry of the epoch in force when a frame is sent (refreshed
//!   every step), the link's capacity, a bounded FIFO with tail drop.
//! * Gateways' LAN hosts ([`traffic`]) send constant-rate or Poisson
//!   flows with a DSCP, one way or as pings answered at once by the far
//!   host, between all pairs or as a TOML file describes ([`traffic_file`]).
//! * Discrete events ([`events`]) in virtual nanoseconds: the run takes as
//!   long as the CPU needs, not as long as it emulates. Nodes take no time
//!   to forward.
//!
//! * Scheduled failures and repairs of ISLs and satellites (`--fail`):
//!   the element goes dark at its instant (what is on its links is lost)
//!   and every node applies the event then, as a planned outage.
//!
//! Not modelled yet: failures found by BFD and flooded (detection, local
//! repair and notices in virtual time), IKE (each gateway pair has static
//! SAs), control packets (ARP, ICMP, LSP ping).

pub mod events;
pub mod install;
pub mod link;
pub mod node;
pub mod report;
pub mod sat_labels;
pub mod svg;
pub mod traffic;
pub mod traffic_file;

use crate::control::agent::early_install_ns;
use crate::control::ControlError;
use crate::frame::{Batch, Frame, HeapFrame, Verdict, BURST};
use crate::gen::FrameSize;
use crate::stage;
use events::{Event, Events};
use link::{Link, Meta, Sent};
use meshplane_control::labels::LabelPlan;
use meshplane_control::routing::SPEED_OF_LIGHT_M_S;
use meshplane_control::schedule::{FailureEvent, Publication, ScheduleConfig, Scheduler};
use meshplane_control::{Constellation, Engine, Failures, GroundStations, NodeId, Preset};
use node::{Node, SatLabels, LAN, LAN_PORT};
use report::{DropCounts, DropReport, FlowReport, LinkReport, Report, Samples, Totals};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Instant;
use traffic::{kind, FlowKind, FlowSpec, Payload};

/// What to emulate.
#[derive(Clone, Debug)]
pub struct Options {
    /// Constellation preset.
    pub preset: Preset,
    /// The ground-station file's stations.
    pub stations: GroundStations,
    /// The gateways to emulate (gids in `stations`, ascending).
    pub gateways: Vec<u32>,
    /// Geometry time at the start, seconds after the constellation epoch.
    pub at_s: f64,
    /// Seconds of traffic.
    pub duration_s: f64,
    /// Seconds after the traffic stops for the last packets to arrive.
    pub drain_s: f64,
    /// The flows (`src` and `dst` index `gateways`).
    pub flows: Vec<FlowSpec>,
    /// ISL capacity, bits per second.
    pub isl_bps: f64,
    /// GSL capacity, bits per second.
    pub gsl_bps: f64,
    /// Frames that may wait for a link's transmitter.
    pub queue_frames: usize,
    /// Route step (a table epoch each), ms: the agent's default is 100.
    pub step_ms: u64,
    /// How long before activation an epoch is computed, ms (agent: 100).
    pub lead_ms: u64,
    /// A progress line on stderr every virtual second.
    pub progress: bool,
    /// Keep every ping's send time and RTT in the report.
    pub record_pings: bool,
    /// Put the map of link load in the report (`--svg`).
    pub map: bool,
    /// Scheduled failures and repairs: seconds after the start, and the
    /// event (ISLs and satellites). At its instant the element goes dark
    /// (or comes back) and every node applies the event at once, as
    /// with a planned outage in the failures file.
    pub failures: Vec<(f64, FailureEvent)>,
    /// Keep the send time and RTT of these flows' pings (indices into
    /// `flows`), as `record_pings` does for all.
    pub chart_flows: Vec<usize>,
    /// When nodes build the satellites' node labels into their tables.
    pub sat_labels: SatLabels,
    /// How nodes build the tables of each install.
    pub install: install::InstallPath,
}

impl Options {
    /// Defaults for everything but the constellation, gateways and flows.
    pub fn new(preset: Preset, stations: GroundStations, gateways: Vec<u32>) -> Self {
        Options {
            preset,
            stations,
            gateways,
            at_s: 0.0,
            duration_s: 10.0,
            drain_s: 1.0,
            flows: Vec::new(),
            isl_bps: 20e9,
            gsl_bps: 10e9,
            queue_frames: 1024,
            step_ms: 100,
            lead_ms: 100,
            progress: false,
            record_pings: false,
            map: false,
            failures: Vec::new(),
            chart_flows: Vec::new(),
            sat_labels: SatLabels::default(),
            install: install::InstallPath::default(),
        }
    }
}

/// Why a run could not be done.
#[derive(Debug, thiserror::Error)]
pub enum EmulateError {
    /// The options do not make sense.
    #[error("{0}")]
    Options(String),
    /// Geometry.
    #[error(transparent)]
    Geometry(#[from] meshplane_control::Error),
    /// A node's configuration or tables.
    #[error(transparent)]
    Control(#[from] ControlError),
}

/// Unordered pairs of `n` gateways (`i < j`), all of them or `k` spread
/// evenly over the list of all.
pub fn pairs(n: u32, k: Option<usize>) -> Vec<(u32, u32)> {
    let all: Vec<(u32, u32)> = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .collect();
    match k {
        Some(k) if k < all.len() => (0..k).map(|i| all[i * all.len() / k]).collect(),
        _ => all,
    }
}

/// Publications kept: the ones in force at each node, and those a ping
/// still in flight was sent under.
const KEEP_PUBLICATIONS: usize = 8;

/// Room a frame buffer keeps (after the headroom) beyond the longest LAN
/// frame of the run: what the tunnel appends at the tail (ESP padding,
/// trailer and ICV: 21 bytes at most), with margin. Buffers no larger
/// than a run's frames need keep the frames in flight on fewer cache
/// lines and pages.
const TAIL_ROOM: usize = 128;

struct FlowState {
    spec: FlowSpec,
    src_node: NodeId,
    dst_node: NodeId,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    /// The Poisson gaps' generator state.
    rng: u64,
    next_seq: u32,
    sent: u64,
    received: u64,
    replies: u64,
    dropped: u64,
    reordered: u64,
    max_fwd: Option<u32>,
    max_back: Option<u32>,
    one_way: Samples,
    rtt: Samples,
    rtt_err_ns: Option<u64>,
    /// Pings answered and not yet back: (seq, the RTT of the routes of
    /// the request's send time and of the reply's).
    expected: std::collections::VecDeque<(u32, Option<u64>)>,
    path: Option<u64>,
    path_changes: u64,
    hops: u16,
}

struct Emulator {
    n_sats: usize,
    step_ns: u64,
    end_ns: u64,
    traffic_end_ns: u64,
    sched: Scheduler,
    plan: LabelPlan,
    failures: Failures,
    pubs: Vec<Publication>,
    epochs: u64,
    sat_labels: SatLabels,
    nodes: Vec<Node>,
    links: Vec<Link>,
    /// Where each link leads: its receiving node, or [`LAN`] for a
    /// gateway's LAN port (the node's `port_peer`, by link index).
    link_peer: Vec<u32>,
    /// Frames from each gateway's LAN host, waiting to enter (index = node).
    lan_in: Vec<Vec<(HeapFrame, Meta)>>,
    flows: Vec<FlowState>,
    events: Events,
    batch: Batch<HeapFrame>,
    metas: Vec<Meta>,
    out: Vec<(HeapFrame, Meta, Verdict)>,
    pool: Vec<HeapFrame>,
    /// Room of a frame buffer: the run's longest LAN frame and
    /// [`TAIL_ROOM`].
    frame_room: usize,
    scratch: Vec<u8>,
    drops: DropCounts,
    packet_hops: u64,
    pings: Vec<(u32, u64, u64)>,
    /// Per flow: its pings are kept (`record_pings` or `chart_flows`).
    record: Vec<bool>,
    /// The scheduled failures, in virtual ns.
    fail_events: Vec<(u64, FailureEvent)>,
    /// What is dark now (the links and satellites themselves).
    dark: Failures,
    progress: bool,
    wall: Instant,
}

/// Runs the emulation `o` describes.
pub fn run(o: &Options) -> Result<Report, EmulateError> {
    let setup = Instant::now();
    let mut em = Emulator::new(o)?;
    let setup_s = setup.elapsed().as_secs_f64();
    em.wall = Instant::now();
    em.run()?;
    let wall_s = em.wall.elapsed().as_secs_f64();
    Ok(em.report(o, setup_s, wall_s))
}

/// splitmix64's increment.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// splitmix64's output for state `x` (the state advanced by [`GOLDEN`],
/// mixed).
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(GOLDEN);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The next number of the splitmix64 generator whose state is `state`,
/// which it advances.
pub(crate) fn next_random(state: &mut u64) -> u64 {
    let z = splitmix(*state);
    *state = state.wrapping_add(GOLDEN);
    z
}

impl Emulator {
    fn new(o: &Options) -> Result<Self, EmulateError> {
        let seconds = |x: f64, zero_ok: bool| x.is_finite() && (x > 0.0 || (zero_ok && x == 0.0));
        if !seconds(o.duration_s, false) || !seconds(o.drain_s, true) || !seconds(o.at_s, true) {
            return Err(EmulateError::Options(
                "duration, drain and start must be non-negative numbers of seconds".into(),
            ));
        }
        if o.gateways.len() < 2 {
            return Err(EmulateError::Options("at least two gateways".into()));
        }
        if o.step_ms == 0 || o.queue_frames == 0 || !(o.isl_bps > 0.0 && o.gsl_bps > 0.0) {
            return Err(EmulateError::Options(
                "step, queue and link capacities must be positive".into(),
            ));
        }
        // The emulated gateways only, renumbered: ground stations never
        // relay, so the paths between them are those of the whole set.
        let mut sub = GroundStations::default();
        for (i, &g) in o.gateways.iter().enumerate() {
            let mut s = o
                .stations
                .stations
                .get(g as usize)
                .cloned()
                .ok_or_else(|| EmulateError::Options(format!("no ground station {g}")))?;
            s.gid = i as u32;
            sub.stations.push(s);
        }
        let n_gw = sub.len();
        let engine = Engine::new(Constellation::preset(o.preset), sub.clone())?;
        let n_sats = engine.constellation().len();
        let plan = *engine.label_plan();
        let step_ns = o.step_ms * 1_000_000;
        let mut sched = Scheduler::new(
            engine,
            ScheduleConfig {
                lead_ns: o.lead_ms * 1_000_000,
                step_ns,
                start_s: o.at_s,
            },
        );
        let traffic_end_ns = (o.duration_s * 1e9) as u64;
        let end_ns = traffic_end_ns + (o.drain_s * 1e9) as u64;

        // Every link any node has during the run: its ports.
        let failures = Failures::new();
        let n_nodes = n_sats + n_gw;
        let mut neighbours: node::Neighbours = vec![BTreeSet::new(); n_nodes];
        for k in 0..=end_ns / step_ns + 2 {
            let t = o.at_s + (k * step_ns) as f64 / 1e9;
            let topo = sched.engine_mut().topology(t, &failures)?;
            node::add_neighbours(&mut neighbours, &topo, n_sats, n_gw);
        }
        let peers: Vec<u32> = (0..n_gw as u32).collect();
        let mut nodes = Vec::with_capacity(n_nodes);
        for (id, nb) in neighbours.iter().enumerate() {
            nodes.push(if id < n_sats {
                Node::satellite(id as NodeId, n_sats, nb, &sub)?
            } else {
                Node::gateway((id - n_sats) as u32, n_sats, nb, &peers, &sub)?
            });
        }
        for n in &mut nodes {
            n.set_sat_labels(o.sat_labels);
            n.set_install_path(o.install);
        }
        let mut links = Vec::new();
        let mut link_peer = Vec::new();
        for i in 0..nodes.len() {
            nodes[i].link_base = links.len() as u32;
            for p in 0..nodes[i].port_peer.len() {
                let me = nodes[i].id;
                let peer = nodes[i].port_peer[p];
                link_peer.push(peer);
                if peer == LAN {
                    links.push(Link::new(me, me, LAN_PORT, 1.0, 1));
                    continue;
                }
                let to_port = nodes[peer as usize]
                    .port_of
                    .get(&me)
                    .copied()
                    .ok_or_else(|| {
                        EmulateError::Options(format!("node {peer} has no port toward {me}"))
                    })?;
                let isl = (me as usize) < n_sats && (peer as usize) < n_sats;
                let bps = if isl { o.isl_bps } else { o.gsl_bps };
                links.push(Link::new(me, peer, to_port, bps, o.queue_frames));
            }
        }

        let mut events = Events::default();
        events.at(0, Event::Control);
        let mut fail_events = Vec::with_capacity(o.failures.len());
        for (i, &(t, ev)) in o.failures.iter().enumerate() {
            if !(t.is_finite() && t >= 0.0) {
                return Err(EmulateError::Options(format!(
                    "failure {ev:?} at {t} s: want a time from 0 s"
                )));
            }
            match ev {
                FailureEvent::IslDown(a, b) | FailureEvent::IslUp(a, b)
                    if (a as usize) < n_sats && (b as usize) < n_sats && a != b => {}
                FailureEvent::SatelliteDown(s) | FailureEvent::SatelliteUp(s)
                    if (s as usize) < n_sats => {}
                _ => {
                    return Err(EmulateError::Options(format!(
                        "failure {ev:?}: ISLs and satellites of the constellation (0 to {}) only",
                        n_sats - 1
                    )))
                }
            }
            let at = (t * 1e9) as u64;
            fail_events.push((at, ev));
            events.at(at, Event::Fail(i as u32));
        }
        let mut flows = Vec::with_capacity(o.flows.len());
        for (i, f) in o.flows.iter().enumerate() {
            if f.src == f.dst || f.src as usize >= n_gw || f.dst as usize >= n_gw {
                return Err(EmulateError::Options(format!(
                    "flow {i}: gateways {} -> {} (of {n_gw})",
                    f.src, f.dst
                )));
            }
            if !(f.rate_pps.is_finite() && f.rate_pps > 0.0) {
                return Err(EmulateError::Options(format!(
                    "flow {i}: rate must be positive"
                )));
            }
            if f.dscp > 63 {
                return Err(EmulateError::Options(format!(
                    "flow {i}: DSCP {} (0 to 63)",
                    f.dscp
                )));
            }
            let period_ns = ((1e9 / f.rate_pps) as u64).max(1);
            // Flows start at spread phases within their first period.
            events.at(splitmix(i as u64) % period_ns, Event::Send(i as u32));
            flows.push(FlowState {
                spec: *f,
                src_node: (n_sats as u32) + f.src,
                dst_node: (n_sats as u32) + f.dst,
                src_ip: traffic::host_addr(f.src),
                dst_ip: traffic::host_addr(f.dst),
                rng: splitmix(i as u64 ^ 0x5eed),
                next_seq: 0,
                sent: 0,
                received: 0,
                replies: 0,
                dropped: 0,
                reordered: 0,
                max_fwd: None,
                max_back: None,
                one_way: Samples::default(),
                rtt: Samples::default(),
                rtt_err_ns: None,
                expected: std::collections::VecDeque::new(),
                path: None,
                path_changes: 0,
                hops: 0,
            });
        }
        if o.progress {
            events.at(1_000_000_000, Event::Progress);
        }
        let frame_room = o
            .flows
            .iter()
            .map(|f| traffic::max_frame_len(f.size))
            .max()
            .unwrap_or(0)
            + TAIL_ROOM;
        Ok(Emulator {
            n_sats,
            step_ns,
            end_ns,
            traffic_end_ns,
            sched,
            plan,
            failures,
            pubs: Vec::new(),
            epochs: 0,
            sat_labels: o.sat_labels,
            lan_in: (0..nodes.len()).map(|_| Vec::new()).collect(),
            nodes,
            links,
            link_peer,
            flows,
            events,
            batch: Batch::new(),
            metas: Vec::with_capacity(BURST),
            out: Vec::with_capacity(BURST),
            pool: Vec::new(),
            frame_room,
            scratch: Vec::with_capacity(frame_room),
            drops: DropCounts::new(),
            packet_hops: 0,
            pings: Vec::new(),
            fail_events,
            dark: Failures::new(),
            record: (0..o.flows.len())
                .map(|f| o.record_pings || o.chart_flows.contains(&f))
                .collect(),
            progress: o.progress,
            wall: Instant::now(),
        })
    }

    fn run(&mut self) -> Result<(), EmulateError> {
        while let Some((now, ev)) = self.events.pop_until(self.end_ns) {
            match ev {
                Event::Control => self.control(now)?,
                Event::Send(f) => self.send(now, f as usize)?,
                Event::Lan(n) => self.lan(now, n as usize)?,
                Event::Arrive(l) => self.arrive(now, l as usize)?,
                Event::Fail(i) => self.fail(now, i as usize)?,
                Event::Progress => {
                    self.progress_line(now);
                    if now + 1_000_000_000 <= self.end_ns {
                        self.events.at(now + 1_000_000_000, Event::Progress);
                    }
                }
            }
        }
        if self.progress && !self.end_ns.is_multiple_of(1_000_000_000) {
            self.progress_line(self.end_ns);
        }
        Ok(())
    }

    fn progress_line(&self, now: u64) {
        let (mut sent, mut recv, mut replies, mut dropped) = (0, 0, 0, 0);
        for f in &self.flows {
            sent += f.sent;
            recv += f.received;
            replies += f.replies;
            dropped += f.dropped;
        }
        let wall = self.wall.elapsed().as_secs_f64();
        let sim = now as f64 / 1e9;
        eprintln!(
            "emulate: t {sim:.1}/{:.1} s  sent {sent}  received {recv}  replies {replies}  dropped {dropped}  packet-hops {}  wall {wall:.1} s ({:.2} wall s per s)",
            self.end_ns as f64 / 1e9,
            self.packet_hops,
            if sim > 0.0 { wall / sim } else { 0.0 }
        );
    }

    /// Drives the schedule; keeps each publication from when it is
    /// computed (satellites install it early).
    fn control(&mut self, now: u64) -> Result<(), EmulateError> {
        for _ in 0..16 {
            let r = self.sched.tick(now)?;
            if let Some(p) = self.sched.pending().cloned() {
                self.remember(p);
            }
            if let Some(p) = r {
                self.remember(p);
            }
            if self.sched.next_wakeup_ns() > now {
                break;
            }
        }
        let next = self.sched.next_wakeup_ns().max(now + 1);
        if next <= self.end_ns {
            self.events.at(next, Event::Control);
        }
        Ok(())
    }

    /// A scheduled failure or repair: the element goes dark (or comes
    /// back) now, and every node applies the event at once (the
    /// schedule's recomputation; what it had computed ahead without the
    /// event is forgotten, and the tables in force follow).
    fn fail(&mut self, now: u64, i: usize) -> Result<(), EmulateError> {
        let Some(&(_, ev)) = self.fail_events.get(i) else {
            return Ok(());
        };
        match ev {
            FailureEvent::IslDown(a, b) => self.dark.fail_isl(a, b),
            FailureEvent::IslUp(a, b) => self.dark.restore_isl(a, b),
            FailureEvent::SatelliteDown(s) => self.dark.fail_satellite(s),
            FailureEvent::SatelliteUp(s) => self.dark.restore_satellite(s),
            FailureEvent::GslDown(..) | FailureEvent::GslUp(..) => {}
        }
        let ahead = self.sched.pending().map(|p| (p.epoch, p.activate_at_ns));
        let p = self.sched.fail_at(now, now, ev)?;
        if self.sched.pending().map(|p| (p.epoch, p.activate_at_ns)) != ahead {
            // Computed ahead without the event: no node installs it.
            self.pubs.retain(|q| q.activate_at_ns <= now);
        }
        if let Some(p) = p {
            self.remember(p);
        }
        self.failures = self.sched.failures().clone();
        self.events.at(now, Event::Control);
        Ok(())
    }

    /// True if link `l` is dark: a cut ISL, or a satellite at either end
    /// that is down.
    fn dark(&self, l: usize) -> bool {
        if self.dark.is_empty() {
            return false;
        }
        let (a, b) = (self.links[l].from, self.links[l].to);
        let sat = |x: u32| (x as usize) < self.n_sats;
        (sat(a) && self.dark.satellite_down(a))
            || (sat(b) && self.dark.satellite_down(b))
            || (sat(a) && sat(b) && self.dark.isl_down(a, b))
    }

    fn remember(&mut self, p: Publication) {
        if self
            .pubs
            .iter()
            .any(|q| q.epoch == p.epoch && q.activate_at_ns == p.activate_at_ns)
        {
            return;
        }
        self.epochs += 1;
        self.pubs.push(p);
        if self.pubs.len() > KEEP_PUBLICATIONS {
            self.pubs.remove(0);
        }
    }

    /// The publication in force at `t_ns` (activated by then).
    fn active_at(&self, t_ns: u64) -> Option<usize> {
        self.pubs.iter().rposition(|p| p.activate_at_ns <= t_ns)
    }

    fn frame(&mut self) -> HeapFrame {
        let mut f = self
            .pool
            .pop()
            .unwrap_or_else(|| HeapFrame::with_room(self.frame_room));
        f.reset_from(&self.scratch);
        f
    }

    fn send(&mut self, now: u64, i: usize) -> Result<(), EmulateError> {
        let f = &mut self.flows[i];
        let seq = f.next_seq;
        f.next_seq = f.next_seq.wrapping_add(1);
        f.sent += 1;
        let (src, len) = (f.src_node, traffic::frame_len(f.spec.size, seq));
        let p = Payload {
            flow: i as u32,
            seq,
            sent_ns: now,
            kind: match f.spec.kind {
                FlowKind::Ping => kind::REQUEST,
                FlowKind::Oneway => kind::DATA,
            },
        };
        traffic::build(
            &mut self.scratch,
            len,
            node::mac(src, LAN, 1),
            node::mac(src, LAN, 2),
            f.src_ip,
            f.dst_ip,
            f.spec.dscp,
            &p,
        );
        let next = now + f.spec.arrivals.gap_ns(f.spec.rate_pps, &mut f.rng);
        if next < self.traffic_end_ns {
            self.events.at(next, Event::Send(i as u32));
        }
        let frame = self.frame();
        self.enter_gateway(now, src, frame, i as u32);
        Ok(())
    }

    /// A frame from a gateway's LAN host enters the gateway now.
    fn enter_gateway(&mut self, now: u64, gw: NodeId, frame: HeapFrame, flow: u32) {
        let q = &mut self.lan_in[gw as usize];
        if q.is_empty() {
            self.events.at(now, Event::Lan(gw));
        }
        q.push((
            frame,
            Meta {
                flow,
                ..Meta::default()
            },
        ));
    }

    fn lan(&mut self, now: u64, n: usize) -> Result<(), EmulateError> {
        let mut q = std::mem::take(&mut self.lan_in[n]);
        while !q.is_empty() {
            let take = q.len().min(BURST);
            for (f, m) in q.drain(..take) {
                let _ = self.batch.push(f);
                self.metas.push(m);
            }
            self.process(now, n, LAN_PORT)?;
        }
        // Frames answered while these were handled went to the queue anew.
        let again = std::mem::replace(&mut self.lan_in[n], q);
        for x in again {
            self.lan_in[n].push(x);
        }
        if !self.lan_in[n].is_empty() {
            self.events.at(now, Event::Lan(n as u32));
        }
        Ok(())
    }

    fn arrive(&mut self, now: u64, l: usize) -> Result<(), EmulateError> {
        let (to, port) = (self.links[l].to as usize, self.links[l].to_port);
        if self.dark(l) {
            // What was on the link when it went dark is lost with it.
            let from = self.links[l].from;
            while self.links[l]
                .in_flight
                .front()
                .is_some_and(|f| f.arrive_ns <= now)
            {
                if let Some(x) = self.links[l].in_flight.pop_front() {
                    self.drop_frame(from, "link_down", x.frame, x.meta);
                }
            }
            if let Some(f) = self.links[l].in_flight.front() {
                self.events
                    .at(f.arrive_ns.max(now), Event::Arrive(l as u32));
            }
            return Ok(());
        }
        while self.links[l]
            .in_flight
            .front()
            .is_some_and(|f| f.arrive_ns <= now)
        {
            while self.batch.len() < BURST {
                match self.links[l].in_flight.front() {
                    Some(f) if f.arrive_ns <= now => {}
                    _ => break,
                }
                if let Some(x) = self.links[l].in_flight.pop_front() {
                    let _ = self.batch.push(x.frame);
                    self.metas.push(x.meta);
                }
            }
            self.process(now, to, port)?;
        }
        if let Some(f) = self.links[l].in_flight.front() {
            self.events
                .at(f.arrive_ns.max(now), Event::Arrive(l as u32));
        }
        Ok(())
    }

    /// Runs the batch through node `n`'s stages, as received on `port`,
    /// and sends each frame where its verdict says.
    fn process(&mut self, now: u64, n: usize, port: u16) -> Result<(), EmulateError> {
        let id = self.nodes[n].id;
        for m in &mut self.metas {
            m.visit(id);
        }
        self.packet_hops += self.batch.len() as u64;
        let need_sat = self.sat_labels == SatLabels::OnDemand
            && self
                .batch
                .frames()
                .iter()
                .any(|f| sat_labels::needs_sat_labels(f.data(), &self.plan));
        let tables = self.nodes[n].tables(
            &self.pubs,
            now,
            self.step_ns,
            &self.plan,
            &self.failures,
            need_sat,
        )?;
        match tables {
            Some(t) => {
                self.batch.set_rx_port(port);
                stage::process(&mut self.batch, t);
            }
            None => self
                .batch
                .set_all(Verdict::Drop(crate::drop_reason::DropReason::NoRoute)),
        }
        let mut verdicts = [Verdict::Input; BURST];
        let nv = self.batch.len();
        verdicts[..nv].copy_from_slice(self.batch.verdicts());
        for ((f, m), v) in self
            .batch
            .frames_vec_mut()
            .drain(..)
            .zip(self.metas.drain(..))
            .zip(verdicts)
        {
            self.out.push((f, m, v));
        }
        let mut out = std::mem::take(&mut self.out);
        for (f, m, v) in out.drain(..) {
            self.forward(now, n, f, m, v);
        }
        self.out = out;
        Ok(())
    }

    fn drop_frame(&mut self, node: NodeId, reason: &'static str, f: HeapFrame, m: Meta) {
        *self.drops.entry((node, reason)).or_default() += 1;
        if let Some(fl) = self.flows.get_mut(m.flow as usize) {
            fl.dropped += 1;
        }
        self.pool.push(f);
    }

    fn forward(&mut self, now: u64, n: usize, f: HeapFrame, m: Meta, v: Verdict) {
        let id = self.nodes[n].id;
        let port = match v {
            Verdict::Tx(p) => p,
            Verdict::Drop(r) => return self.drop_frame(id, r.name(), f, m),
            Verdict::Punt => return self.drop_frame(id, "punt", f, m),
            _ => return self.drop_frame(id, "unfinished", f, m),
        };
        if usize::from(port) >= self.nodes[n].port_peer.len() {
            return self.drop_frame(id, "no_port", f, m);
        }
        let l = self.nodes[n].link_base as usize + usize::from(port);
        if self.link_peer[l] == LAN {
            return self.host_receives(now, n, f, m);
        }
        if self.dark(l) {
            return self.drop_frame(id, "link_down", f, m);
        }
        let Some(delay) = self.delay(now, l) else {
            return self.drop_frame(id, "no_link", f, m);
        };
        match self.links[l].send(now, delay, f, m) {
            Sent::First(at) => self.events.at(at, Event::Arrive(l as u32)),
            Sent::Queued => {}
            Sent::TailDrop(f, m) => self.drop_frame(id, "queue_full", f, m),
        }
    }

    /// The propagation delay of link `l` for a frame sent at `now`: its
    /// length in the geometry of the epoch in force (or of the one before,
    /// for a link that has just gone out of range while old-epoch packets
    /// drain over it; or, from a satellite that has installed the next
    /// epoch's tables half a step early, of that epoch: a packet labelled
    /// two epochs before, still in flight, follows that epoch's tree, which
    /// the label block they share leads it onto, and that tree may use a
    /// link that the geometry samples only from that epoch on).
    fn delay(&mut self, now: u64, l: usize) -> Option<u64> {
        let i = self.active_at(now)?;
        let epoch = (self.pubs[i].epoch, self.pubs[i].activate_at_ns);
        if let Some(d) = self.links[l].delay_for(epoch) {
            return Some(d);
        }
        let (a, b) = (self.links[l].from, self.links[l].to);
        let early = (a as usize) < self.n_sats;
        let len = self.pubs[i]
            .topology
            .link_length(a, b)
            .or_else(|| {
                i.checked_sub(1)
                    .and_then(|j| self.pubs[j].topology.link_length(a, b))
            })
            .or_else(|| {
                let next = self.pubs.get(i + 1)?;
                (early && early_install_ns(next.activate_at_ns, self.step_ns) <= now)
                    .then(|| next.topology.link_length(a, b))?
            })?;
        let d = (len / SPEED_OF_LIGHT_M_S * 1e9).round() as u64;
        self.links[l].set_delay(epoch, d);
        Some(d)
    }

    /// The one-way delay of the shortest path from `src` to `dst`
    /// (gateway nodes) in the epoch in force at `t_ns`, as `meshplane
    /// routes` gives it for that epoch's geometry (half its RTT).
    fn routes_one_way_ns(&self, t_ns: u64, src: NodeId, dst: NodeId) -> Option<f64> {
        let p = &self.pubs[self.active_at(t_ns)?];
        let gid = (dst as usize).checked_sub(self.n_sats)?;
        let d = *p.spts.get(gid)?.dist.get(src as usize)?;
        d.is_finite().then(|| d / SPEED_OF_LIGHT_M_S * 1e9)
    }

    /// A frame a gateway delivered to its LAN host.
    fn host_receives(&mut self, now: u64, n: usize, f: HeapFrame, m: Meta) {
        let id = self.nodes[n].id;
        let me = traffic::host_addr(id - self.n_sats as u32);
        let Some((_, p)) = traffic::parse(f.data(), me) else {
            return self.drop_frame(id, "host_refused", f, m);
        };
        let flow = p.flow as usize;
        if flow >= self.flows.len() {
            return self.drop_frame(id, "host_refused", f, m);
        }
        let delay = now.saturating_sub(p.sent_ns);
        if p.kind == kind::REPLY {
            let fl = &mut self.flows[flow];
            while fl.expected.front().is_some_and(|&(s, _)| s < p.seq) {
                fl.expected.pop_front();
            }
            let expected = match fl.expected.front() {
                Some(&(s, e)) if s == p.seq => {
                    fl.expected.pop_front();
                    e
                }
                _ => None,
            };
            fl.replies += 1;
            fl.rtt.push(delay);
            if fl.max_back.is_some_and(|s| p.seq < s) {
                fl.reordered += 1;
            }
            fl.max_back = fl.max_back.max(Some(p.seq));
            if let Some(e) = expected {
                fl.rtt_err_ns = fl.rtt_err_ns.max(Some(delay.abs_diff(e)));
            }
            if self.record.get(flow) == Some(&true) {
                self.pings.push((p.flow, p.sent_ns, delay));
            }
            self.pool.push(f);
            return;
        }
        let fl = &mut self.flows[flow];
        fl.received += 1;
        fl.one_way.push(delay);
        if fl.max_fwd.is_some_and(|s| p.seq < s) {
            fl.reordered += 1;
        }
        fl.max_fwd = fl.max_fwd.max(Some(p.seq));
        if fl.path.is_some_and(|h| h != m.path) {
            fl.path_changes += 1;
        }
        fl.path = Some(m.path);
        fl.hops = m.hops;
        if p.kind != kind::REQUEST {
            self.pool.push(f);
            return;
        }
        // The host answers at once, with a packet of the same size. The
        // RTT to expect: the routes of the request's send time one way, of
        // now (the reply's) the other (they differ when a path changes in
        // between).
        let (src_ip, dst_ip, a, b) = (fl.dst_ip, fl.src_ip, fl.src_node, fl.dst_node);
        let there = self.routes_one_way_ns(p.sent_ns, a, b);
        let back = self.routes_one_way_ns(now, b, a);
        let expected = there.zip(back).map(|(x, y)| (x + y).round() as u64);
        self.flows[flow].expected.push_back((p.seq, expected));
        let len = f.len();
        self.pool.push(f);
        let dscp = self.flows[flow].spec.dscp;
        traffic::build(
            &mut self.scratch,
            len,
            node::mac(id, LAN, 1),
            node::mac(id, LAN, 2),
            src_ip,
            dst_ip,
            dscp,
            &Payload {
                kind: kind::REPLY,
                ..p
            },
        );
        let reply = self.frame();
        self.enter_gateway(now, id, reply, p.flow);
    }

    fn report(&mut self, o: &Options, setup_s: f64, wall_s: f64) -> Report {
        let name = |gw: u32| {
            let gid = o.gateways[gw as usize];
            (
                gid,
                o.stations
                    .stations
                    .get(gid as usize)
                    .map(|s| s.name.clone())
                    .unwrap_or_default(),
            )
        };
        let mut t = Totals {
            flows: self.flows.len(),
            ..Totals::default()
        };
        let mut flows = Vec::with_capacity(self.flows.len());
        for f in &mut self.flows {
            let ((sg, sn), (dg, dn)) = (name(f.spec.src), name(f.spec.dst));
            let lost = match f.spec.kind {
                FlowKind::Ping => f.sent.saturating_sub(f.replies),
                FlowKind::Oneway => f.sent.saturating_sub(f.received),
            };
            t.sent += f.sent;
            t.received += f.received;
            t.replies += f.replies;
            t.lost += lost;
            flows.push(FlowReport {
                src_gid: sg,
                dst_gid: dg,
                src: sn,
                dst: dn,
                kind: f.spec.kind,
                rate_pps: f.spec.rate_pps,
                arrivals: f.spec.arrivals,
                dscp: f.spec.dscp,
                sent: f.sent,
                received: f.received,
                replies: f.replies,
                lost,
                dropped: f.dropped,
                reordered: f.reordered,
                one_way_ms: f.one_way.summary(),
                rtt_ms: f.rtt.summary(),
                rtt_vs_routes_max_ms: f.rtt_err_ns.map(|n| n as f64 / 1e6),
                path_changes: f.path_changes,
                hops: f.hops,
            });
        }
        // Node ids as `meshplane routes` prints them: a gateway by its
        // gid in the station file.
        let n_sats = self.n_sats as u32;
        let routes_id = |id: u32| match id.checked_sub(n_sats) {
            Some(g) => n_sats + name(g).0,
            None => id,
        };
        let node_name = |id: u32| match id.checked_sub(n_sats) {
            Some(g) => name(g).1,
            None => format!("sat{id}"),
        };
        let drops: Vec<DropReport> = self
            .drops
            .iter()
            .map(|(&(node, reason), &count)| DropReport {
                node: routes_id(node),
                name: node_name(node),
                reason: reason.to_string(),
                count,
            })
            .collect();
        t.dropped = drops.iter().map(|d| d.count).sum();
        let links = self
            .links
            .iter()
            .filter(|l| l.frames > 0 || l.tail_drops > 0)
            .map(|l| LinkReport {
                from: routes_id(l.from),
                to: routes_id(l.to),
                frames: l.frames,
                bytes: l.bytes,
                tail_drops: l.tail_drops,
                max_queue_frames: l.max_waiting,
                max_queue_ms: l.max_wait_ns as f64 / 1e6,
                utilisation: l.utilisation(o.duration_s),
            })
            .collect();
        let map = o.map.then(|| self.map(o));
        t.packet_hops = self.packet_hops;
        t.installs = self.nodes.iter().map(|n| n.installs).sum();
        t.epochs = self.epochs;
        t.events = self.events.handled;
        t.sim_s = self.end_ns as f64 / 1e9;
        t.setup_s = setup_s;
        t.wall_s = wall_s;
        t.wall_per_sim_s = wall_s / t.sim_s.max(1e-9);
        t.packet_hops_per_s = self.packet_hops as f64 / wall_s.max(1e-9);
        Report {
            constellation: o.preset.name().to_string(),
            at_s: o.at_s,
            duration_s: o.duration_s,
            satellites: self.n_sats,
            gateways: o.gateways.clone(),
            step_ms: o.step_ms,
            totals: t,
            flows,
            drops,
            links,
            pings: std::mem::take(&mut self.pings),
            map,
        }
    }

    /// Every link that carried a frame, with its ends where the last
    /// epoch's geometry puts them, and the gateways.
    fn map(&self, o: &Options) -> svg::Map {
        let station = |gw: usize| {
            let s = o
                .gateways
                .get(gw)
                .and_then(|&gid| o.stations.stations.get(gid as usize))?;
            let place = svg::MapNode {
                lat: s.latitude_deg,
                lon: s.longitude_deg,
            };
            Some((s.name.clone(), place))
        };
        let topo = self.pubs.last().map(|p| &p.topology);
        let at = |id: NodeId| -> Option<svg::MapNode> {
            match (id as usize).checked_sub(self.n_sats) {
                Some(gw) => station(gw).map(|(_, place)| place),
                None => topo?.sat_pos.get(id as usize).map(|&p| svg::lat_lon(p)),
            }
        };
        let links = self
            .links
            .iter()
            .filter(|l| l.frames > 0 && l.from != l.to)
            .filter_map(|l| {
                Some(svg::MapLink {
                    from: at(l.from)?,
                    to: at(l.to)?,
                    utilisation: l.utilisation(o.duration_s),
                })
            })
            .collect();
        let gateways = (0..o.gateways.len()).filter_map(station).collect();
        svg::Map { links, gateways }
    }
}

/// Flows between every pair of `pairs` (indices into the gateways): one
/// each, all alike.
pub fn flows_for(
    pairs: &[(u32, u32)],
    rate_pps: f64,
    size: FrameSize,
    kind: FlowKind,
) -> Vec<FlowSpec> {
    pairs
        .iter()
        .map(|&(src, dst)| FlowSpec {
            src,
            dst,
            rate_pps,
            size,
            kind,
            arrivals: traffic::Arrivals::Cbr,
            dscp: 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_all_unordered_ones_or_an_even_sample() {
        assert_eq!(pairs(3, None), [(0, 1), (0, 2), (1, 2)]);
        assert_eq!(pairs(100, None).len(), 4950);
        let s = pairs(100, Some(10));
        assert_eq!(s.len(), 10);
        assert_eq!(s[0], (0, 1));
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(pairs(3, Some(10)).len(), 3);
    }
}
