//! The propagation delay of every link of an emulated mesh, from the
//! geometry the nodes use: the one-way delay of each ISL or GSL at the
//! constellation time of each update, and the delay line that holds each
//! direction's frames for it.
//!
//! Pure: the link table and the geometry in, delays and release times
//! out. `meshplane mesh-delays` does the I/O (the frames, the clock).

use meshplane_control::routing::SPEED_OF_LIGHT_M_S;
use meshplane_control::topology::Topology;
use meshplane_control::NodeId;
use std::collections::VecDeque;

/// One link of `links.tsv`: its two nodes and their interfaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshLink {
    /// Node ids of both ends.
    pub nodes: [NodeId; 2],
    /// Node names of both ends (`sat{ID}`, `gw{GID}`).
    pub names: [String; 2],
    /// Each node's interface on the link (`v{A}-{B}`); its peer in the
    /// links namespace is `w` + this.
    pub ifaces: [String; 2],
}

/// The node id of a node name: `sat{ID}` is satellite `ID`, `gw{GID}` is
/// `n_sats + GID`.
pub fn node_id(name: &str, n_sats: usize) -> Option<NodeId> {
    if let Some(id) = name.strip_prefix("sat") {
        let id: NodeId = id.parse().ok()?;
        return ((id as usize) < n_sats).then_some(id);
    }
    let gid: NodeId = name.strip_prefix("gw")?.parse().ok()?;
    NodeId::try_from(n_sats).ok()?.checked_add(gid)
}

/// Parses `links.tsv` (`node_a node_b iface_a iface_b mac_a mac_b`).
pub fn parse_links(text: &str, n_sats: usize) -> Result<Vec<MeshLink>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f.len() < 4 {
            return Err(format!(
                "line {}: want `node_a node_b iface_a iface_b ...`, got {line:?}",
                i + 1
            ));
        }
        let id = |n: &str| {
            node_id(n, n_sats).ok_or_else(|| {
                format!(
                    "line {}: {n:?} is not a node name (sat0..sat{}, gw0, ...)",
                    i + 1,
                    n_sats.saturating_sub(1)
                )
            })
        };
        out.push(MeshLink {
            nodes: [id(f[0])?, id(f[1])?],
            names: [f[0].to_string(), f[1].to_string()],
            ifaces: [f[2].to_string(), f[3].to_string()],
        });
    }
    Ok(out)
}

/// The one-way propagation delay of `length_m` metres, nanoseconds.
pub fn one_way_ns(length_m: f64) -> u64 {
    (length_m / SPEED_OF_LIGHT_M_S * 1e9).round() as u64
}

/// Every link's one-way delay, kept across updates: a link out of range
/// at some instant (no length in that topology) keeps its last delay
/// (no route uses it then), one never in range yet has none.
#[derive(Clone, Debug)]
pub struct LinkDelays {
    links: Vec<[NodeId; 2]>,
    delays_ns: Vec<Option<u64>>,
}

impl LinkDelays {
    /// No delay known yet for `links`.
    pub fn new(links: impl IntoIterator<Item = [NodeId; 2]>) -> Self {
        let links: Vec<[NodeId; 2]> = links.into_iter().collect();
        let delays_ns = vec![None; links.len()];
        LinkDelays { links, delays_ns }
    }

    /// Takes every link's delay from `topo`; returns how many changed.
    pub fn update(&mut self, topo: &Topology) -> usize {
        let mut changed = 0;
        for (l, d) in self.links.iter().zip(self.delays_ns.iter_mut()) {
            if let Some(len) = topo.link_length(l[0], l[1]) {
                let new = Some(one_way_ns(len));
                if *d != new {
                    changed += 1;
                    *d = new;
                }
            }
        }
        changed
    }

    /// Link `i`'s one-way delay, if it has been in range.
    pub fn get(&self, i: usize) -> Option<u64> {
        self.delays_ns.get(i).copied().flatten()
    }

    /// Every link's delay, in the order of the links.
    pub fn delays_ns(&self) -> &[Option<u64>] {
        &self.delays_ns
    }
}

/// When the delays change: one update every `period_ns` of wall time
/// from the shared clock anchor, each taking the geometry at the middle
/// of its period (the delay it holds is then off by at most half a
/// period's drift, either way).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateClock {
    /// The nodes' anchor (Unix ns): geometry time `start_s` then.
    pub anchor_unix_ns: u64,
    /// Geometry time at the anchor, seconds after the constellation epoch.
    pub start_s: f64,
    /// Geometry seconds per wall second.
    pub time_scale: f64,
    /// Wall nanoseconds between updates.
    pub period_ns: u64,
}

/// Fewest wall nanoseconds between two updates (a fast time scale makes
/// the control step short in wall time).
pub const MIN_PERIOD_NS: u64 = 10_000_000;

impl UpdateClock {
    /// Updates once per control step of `step_ms` geometry ms, at most one
    /// per [`MIN_PERIOD_NS`] of wall time.
    pub fn new(anchor_unix_ns: u64, start_s: f64, time_scale: f64, step_ms: u64) -> Self {
        let scale = if time_scale.is_finite() && time_scale > 0.0 {
            time_scale
        } else {
            1.0
        };
        let wall = (step_ms as f64 * 1e6 / scale) as u64;
        UpdateClock {
            anchor_unix_ns,
            start_s,
            time_scale: scale,
            period_ns: wall.max(MIN_PERIOD_NS),
        }
    }

    /// Geometry time (s) at Unix time `unix_ns`, as a node's clock reads
    /// it (`start_s` before the anchor).
    pub fn geometry_s(&self, unix_ns: u64) -> f64 {
        let wall = unix_ns.saturating_sub(self.anchor_unix_ns);
        self.start_s + wall as f64 * self.time_scale / 1e9
    }

    /// The first update that starts at or after `unix_ns`: its start (Unix
    /// ns) and the geometry time (s) its delays are computed for.
    pub fn next_after(&self, unix_ns: u64) -> (u64, f64) {
        let since = unix_ns.saturating_sub(self.anchor_unix_ns);
        let k = since.div_ceil(self.period_ns);
        let at = self.anchor_unix_ns + k * self.period_ns;
        (at, self.geometry_s(at + self.period_ns / 2))
    }
}

/// One direction of a link: frames in arrival order, each released once
/// its delay has passed. First in, first out, as on a fibre or a laser
/// beam: a frame whose delay came out shorter than its predecessor's (the
/// link shortened by a few microseconds between them) waits for it.
#[derive(Debug, Default)]
pub struct DelayLine<T> {
    held: VecDeque<(u64, T)>,
}

impl<T> DelayLine<T> {
    /// An empty line.
    pub fn new() -> Self {
        DelayLine {
            held: VecDeque::new(),
        }
    }

    /// `frame` arrived at `now_ns`: it leaves at `now_ns + delay_ns`.
    pub fn push(&mut self, now_ns: u64, delay_ns: u64, frame: T) {
        self.held
            .push_back((now_ns.saturating_add(delay_ns), frame));
    }

    /// When the first frame is due, if any is held.
    pub fn next_due(&self) -> Option<u64> {
        self.held.front().map(|&(t, _)| t)
    }

    /// The first frame, if it is due at `now_ns`, with its due time.
    pub fn pop_due(&mut self, now_ns: u64) -> Option<(u64, T)> {
        if self.next_due()? <= now_ns {
            self.held.pop_front()
        } else {
            None
        }
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// How late a timer wakes this process, on average (an exponentially
/// weighted mean, each sample capped): the delay lines wake that much
/// before a frame is due and send what is due within it, so frames leave
/// on time on average rather than late by the host's wake-up latency.
#[derive(Clone, Copy, Debug, Default)]
pub struct WakeLateness {
    mean_ns: u64,
}

/// Largest wake-up lateness sample taken (a preempted wake says nothing
/// about the next one).
pub const MAX_LATENESS_SAMPLE_NS: u64 = 200_000;

impl WakeLateness {
    /// A timer meant for `target_ns` woke at `now_ns`.
    pub fn observe(&mut self, target_ns: u64, now_ns: u64) {
        let late = now_ns.saturating_sub(target_ns).min(MAX_LATENESS_SAMPLE_NS);
        // mean += (late - mean) / 16
        self.mean_ns = (self.mean_ns * 15 + late) / 16;
    }

    /// How early to aim.
    pub fn early_ns(&self) -> u64 {
        self.mean_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshplane_control::{Constellation, Engine, Failures, GroundStations, Preset};

    #[test]
    fn node_names_and_the_link_table() {
        let n = 1584;
        assert_eq!(node_id("sat0", n), Some(0));
        assert_eq!(node_id("sat1583", n), Some(1583));
        assert_eq!(node_id("sat1584", n), None);
        assert_eq!(node_id("gw0", n), Some(1584));
        assert_eq!(node_id("gw3", n), Some(1587));
        assert_eq!(node_id("host0", n), None);
        let t = "sat5 sat6 v5-6 v6-5 02:00:05:00:06:01 02:00:06:00:05:01\n\n\
                 gw1 sat6 v1585-6 v6-1585 x y\n";
        let l = parse_links(t, n).expect("links");
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].nodes, [1585, 6]);
        assert_eq!(l[1].ifaces, ["v1585-6".to_string(), "v6-1585".to_string()]);
        let e = parse_links("sat5 moon v5-x v-5\n", n).expect_err("bad node");
        assert!(e.contains("line 1") && e.contains("moon"), "{e}");
        assert!(parse_links("sat5 sat6\n", n).is_err());
    }

    /// The delays of the links of London -> New York's path add up to the
    /// path's own one-way delay (what `meshplane routes` prints: 42.8 ms
    /// RTT at t = 0), and each link's delay is its length at light speed.
    #[test]
    fn the_links_of_a_path_add_up_to_its_delay() {
        let stations = GroundStations::top100();
        let a = stations.find("London").expect("London");
        let b = stations.find("New-York-Newark").expect("New York");
        let mut engine =
            Engine::new(Constellation::preset(Preset::Starlink550), stations).expect("engine");
        let topo = engine.topology(0.0, &Failures::new()).expect("topology");
        let path = engine
            .tree(&topo, b)
            .path_from(topo.gs_node(a))
            .expect("a path");
        let links: Vec<[NodeId; 2]> = path.nodes.windows(2).map(|w| [w[0], w[1]]).collect();
        let mut d = LinkDelays::new(links.iter().copied());
        assert_eq!(d.update(&topo), links.len());
        assert_eq!(d.update(&topo), 0, "the same geometry changes nothing");
        let sum: u64 = (0..links.len()).map(|i| d.get(i).expect("in range")).sum();
        let want = path.length_m / SPEED_OF_LIGHT_M_S * 1e9;
        assert!(
            (sum as f64 - want).abs() <= links.len() as f64,
            "{sum} ns vs {want} ns"
        );
        let rtt_ms = 2.0 * sum as f64 / 1e6;
        assert!((42.7..42.9).contains(&rtt_ms), "RTT {rtt_ms} ms");
        for (i, l) in links.iter().enumerate() {
            let len = topo.link_length(l[0], l[1]).expect("length");
            assert_eq!(d.get(i), Some(one_way_ns(len)));
            // An ISL or GSL is hundreds to a few thousand km: 0.5 to 20 ms.
            assert!((500_000..20_000_000).contains(&one_way_ns(len)), "{len} m");
        }
    }

    /// A GSL out of range keeps its last delay; one in range follows the
    /// geometry as it moves.
    #[test]
    fn a_link_out_of_range_keeps_its_last_delay() {
        let stations = GroundStations::top100();
        let a = stations.find("London").expect("London");
        let engine =
            Engine::new(Constellation::preset(Preset::Starlink550), stations).expect("engine");
        let none = Failures::new();
        let t0 = engine.topology(0.0, &none).expect("topology");
        let gs = t0.gs_node(a);
        let (sats, _) = t0.gsl_of(a as usize);
        let sat = *sats.first().expect("a satellite in view of London");
        let mut d = LinkDelays::new([[gs, sat], [sat, gs]]);
        d.update(&t0);
        let first = d.get(0).expect("in range");
        assert_eq!(d.get(1), Some(first), "both directions alike");
        // A satellite at 550 km passes within minutes.
        let mut t = 0.0;
        let gone = loop {
            t += 10.0;
            assert!(t < 1200.0, "sat{sat} never left London's view");
            let topo = engine.topology(t, &none).expect("topology");
            if topo.link_length(gs, sat).is_none() {
                break topo;
            }
            d.update(&topo);
        };
        let last = d.get(0).expect("in range before");
        assert_ne!(last, first, "the link's length changed as it moved");
        assert_eq!(d.update(&gone), 0);
        assert_eq!(d.get(0), Some(last), "out of range keeps the last delay");
        let never = LinkDelays::new([[gs, gs + 1]]);
        assert_eq!(never.get(0), None);
    }

    #[test]
    fn updates_follow_the_nodes_clock() {
        let anchor = 1_000_000_000_000;
        let c = UpdateClock::new(anchor, 3.0, 1.0, 100);
        assert_eq!(c.period_ns, 100_000_000);
        assert_eq!(c.geometry_s(anchor - 5), 3.0, "before the anchor");
        assert!((c.geometry_s(anchor + 1_500_000_000) - 4.5).abs() < 1e-9);
        // The update after 1.23 s starts at 1.3 s, for the geometry of 1.35 s.
        let (at, t) = c.next_after(anchor + 1_230_000_000);
        assert_eq!(at, anchor + 1_300_000_000);
        assert!((t - 4.35).abs() < 1e-9, "{t}");
        assert_eq!(c.next_after(at).0, at, "an update due now is next");
        // Ten times faster: a 100 ms step is 10 ms of wall time, the floor.
        let fast = UpdateClock::new(anchor, 0.0, 10.0, 100);
        assert_eq!(fast.period_ns, MIN_PERIOD_NS);
        let faster = UpdateClock::new(anchor, 0.0, 1000.0, 100);
        assert_eq!(faster.period_ns, MIN_PERIOD_NS);
        let (_, t) = faster.next_after(anchor);
        assert!((t - 5.0).abs() < 1e-9, "{t}");
    }

    #[test]
    fn wake_lateness_is_a_capped_running_mean() {
        let mut w = WakeLateness::default();
        assert_eq!(w.early_ns(), 0);
        for _ in 0..200 {
            w.observe(1_000, 41_000);
        }
        let e = w.early_ns();
        assert!((39_000..=40_000).contains(&e), "{e}");
        // One wake a second late (the host was busy) moves it a little.
        w.observe(0, 1_000_000_000);
        assert!(w.early_ns() < e + MAX_LATENESS_SAMPLE_NS / 16 + 1);
        // Early wakes count as on time.
        for _ in 0..200 {
            w.observe(5_000, 1_000);
        }
        assert!(w.early_ns() < 100, "{}", w.early_ns());
    }

    #[test]
    fn a_delay_line_keeps_order_and_releases_on_time() {
        let mut l = DelayLine::new();
        assert_eq!(l.next_due(), None);
        l.push(1_000, 500, 'a');
        // The link shortened by 2 ns: the second frame waits for the first.
        l.push(1_001, 497, 'b');
        l.push(1_002, 500, 'c');
        assert_eq!(l.len(), 3);
        assert_eq!(l.pop_due(1_499), None);
        assert_eq!(l.pop_due(1_500), Some((1_500, 'a')));
        assert_eq!(l.pop_due(1_500), Some((1_498, 'b')));
        assert_eq!(l.pop_due(1_501), None);
        assert_eq!(l.next_due(), Some(1_502));
        assert_eq!(l.pop_due(2_000), Some((1_502, 'c')));
        assert!(l.is_empty());
    }
}
