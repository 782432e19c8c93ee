//! Results of a run: per flow and in total, drops by node and reason, the
//! links that queued or dropped; as a JSON document (schema in README.md,
//! "meshplane emulate").

use serde::Serialize;
use std::collections::BTreeMap;

/// Delay samples of one flow, in units of 100 ns.
#[derive(Clone, Debug, Default)]
pub struct Samples(Vec<u32>);

impl Samples {
    /// Adds a delay.
    #[inline]
    pub fn push(&mut self, ns: u64) {
        self.0.push(u32::try_from(ns / 100).unwrap_or(u32::MAX));
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `{min, p50, p99, max}` in ms (None without samples).
    pub fn summary(&mut self) -> Option<Summary> {
        if self.0.is_empty() {
            return None;
        }
        self.0.sort_unstable();
        let v = &self.0;
        let q = |f: f64| {
            let i = ((v.len() as f64 * f).ceil() as usize).clamp(1, v.len()) - 1;
            f64::from(v[i]) / 1e4
        };
        Some(Summary {
            min: f64::from(v[0]) / 1e4,
            p50: q(0.50),
            p99: q(0.99),
            max: f64::from(v[v.len() - 1]) / 1e4,
        })
    }
}

/// A delay distribution, milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Smallest.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// One flow's results.
#[derive(Clone, Debug, Serialize)]
pub struct FlowReport {
    /// Source gateway (ground-station id in the station file).
    pub src_gid: u32,
    /// Destination gateway.
    pub dst_gid: u32,
    /// Source name.
    pub src: String,
    /// Destination name.
    pub dst: String,
    /// `ping` or `oneway`.
    pub kind: super::traffic::FlowKind,
    /// Packets per second (the mean, for Poisson arrivals).
    pub rate_pps: f64,
    /// `cbr` or `poisson`.
    pub arrivals: super::traffic::Arrivals,
    /// DSCP of its packets.
    pub dscp: u8,
    /// Packets the source sent (requests, for a ping flow).
    pub sent: u64,
    /// Of those, received by the destination's host.
    pub received: u64,
    /// Responses back at the source (ping flows).
    pub replies: u64,
    /// Packets lost in either direction: `sent - received` plus, for a
    /// ping flow, `received - replies`.
    pub lost: u64,
    /// Packets of the flow dropped by some node or link (every loss is
    /// one, once nothing is in flight).
    pub dropped: u64,
    /// Arrivals with a lower sequence number than one before them (both
    /// directions).
    pub reordered: u64,
    /// One-way delay source -> destination.
    pub one_way_ms: Option<Summary>,
    /// Round-trip time (ping flows).
    pub rtt_ms: Option<Summary>,
    /// Largest difference between a ping's RTT and what `meshplane routes`
    /// gives for it: the shortest path's one-way delay at the request's
    /// send time plus that of the way back at the reply's (the geometry
    /// of the epochs in force then); serialisation and queueing included.
    pub rtt_vs_routes_max_ms: Option<f64>,
    /// Times the source -> destination packets arrived over another path
    /// than the packet before.
    pub path_changes: u64,
    /// Nodes the last packet crossed (gateways included).
    pub hops: u16,
}

/// Drops at one node for one reason.
#[derive(Clone, Debug, Serialize)]
pub struct DropReport {
    /// Node id, as `meshplane routes` numbers them (a gateway is
    /// satellites + its gid in the station file).
    pub node: u32,
    /// `sat<ID>` or the gateway's name.
    pub name: String,
    /// A data-plane drop reason (`no_route`, `ttl_expired`, ...), or
    /// `queue_full` (tail drop on the node's link), `no_link` (sent on a
    /// link the geometry no longer has), `punt` (a frame for the node itself).
    pub reason: String,
    /// Frames.
    pub count: u64,
}

/// A link that queued or dropped.
#[derive(Clone, Debug, Serialize)]
pub struct LinkReport {
    /// Sending node (numbered as in [`DropReport::node`]).
    pub from: u32,
    /// Receiving node.
    pub to: u32,
    /// Frames sent.
    pub frames: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Tail drops.
    pub tail_drops: u64,
    /// Most frames waiting at once.
    pub max_queue_frames: usize,
    /// Longest wait for the transmitter, ms.
    pub max_queue_ms: f64,
    /// Mean share of the link's capacity used over the traffic's
    /// duration (frames and their 24 bytes of wire overhead; above 1 when
    /// a queue drained after the traffic stopped).
    pub utilisation: f64,
}

/// Totals of a run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    /// Flows.
    pub flows: usize,
    /// Packets sent by sources (requests and one-way data).
    pub sent: u64,
    /// Received by destinations.
    pub received: u64,
    /// Ping responses back at their sources.
    pub replies: u64,
    /// Lost in either direction.
    pub lost: u64,
    /// Drops counted at nodes and links (all frames).
    pub dropped: u64,
    /// Frames handled by a node (each node a frame passes through once).
    pub packet_hops: u64,
    /// Node table installs.
    pub installs: u64,
    /// Table epochs published.
    pub epochs: u64,
    /// Events handled.
    pub events: u64,
    /// Wall-clock seconds to set the nodes up (before the first event).
    pub setup_s: f64,
    /// Virtual seconds run (traffic and drain).
    pub sim_s: f64,
    /// Wall-clock seconds of the event loop.
    pub wall_s: f64,
    /// Wall seconds per virtual second.
    pub wall_per_sim_s: f64,
    /// Packet-hops per wall second.
    pub packet_hops_per_s: f64,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Constellation preset.
    pub constellation: String,
    /// Geometry time at the start, seconds after the constellation epoch.
    pub at_s: f64,
    /// Seconds of traffic.
    pub duration_s: f64,
    /// Satellites.
    pub satellites: usize,
    /// Gateway gids.
    pub gateways: Vec<u32>,
    /// Route step, ms (a table epoch each).
    pub step_ms: u64,
    /// Totals.
    pub totals: Totals,
    /// Every flow.
    pub flows: Vec<FlowReport>,
    /// Drops by node and reason.
    pub drops: Vec<DropReport>,
    /// Links with tail drops or a queue.
    pub links: Vec<LinkReport>,
    /// With `record_pings`: every ping as (flow index, send time ns, RTT ns).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pings: Vec<(u32, u64, u64)>,
    /// With `map`: the links' load where they were, for `--svg`.
    #[serde(skip)]
    pub map: Option<super::svg::Map>,
}

/// Drops keyed by node and reason.
pub type DropCounts = BTreeMap<(u32, &'static str), u64>;
