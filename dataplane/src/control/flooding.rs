//! The node's side of link-state flooding: a [`Flooder`] (sans-IO, in
//! `meshplane_control::flood`) driven over the node's links, with the
//! node's Ed25519 key and the constellation's trust file.
//!
//! Neighbours are the constellation nodes whose BFD sessions are Up; a
//! link that BFD reports down (or back up, after the hold-down) is
//! announced by a notice the node originates; every notice, heard or
//! its own, is handed back when its apply instant (origination time plus
//! the flood bound) comes, the same instant at every node. Notices travel
//! as UDP datagrams to port [`notice::UDP_PORT`] over the same single-hop
//! links as BFD (unlabelled IPv4 between node addresses, TTL 255).
//!
//! Time is Unix nanoseconds: apply instants are wall-clock times that
//! every node shares.

use super::bfd::{BfdSessions, LinkEvent};
use super::keys::{KeyError, NodeKey, TrustStore};
use crate::config::FloodConfig;
use crate::frame::PortId;
use meshplane_control::flood::{self, Counters, Event, Flooder, SkewKind};
use meshplane_control::notice::{self, Link, Notice};
use meshplane_control::schedule::FailureEvent;
use meshplane_control::NodeId;
use std::collections::BTreeSet;

/// A notice known to the node, for the operator (`ctl show failures`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NoticeView {
    /// The node that originated it.
    pub origin: NodeId,
    /// The link's ends.
    pub link: (NodeId, NodeId),
    /// Up or down.
    pub up: bool,
    /// Its sequence number.
    pub seq: u64,
    /// When it was originated (Unix ns).
    pub origin_time_ns: u64,
    /// When it applies (Unix ns).
    pub apply_at_ns: u64,
}

/// What `ctl show failures` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FloodView {
    /// The node's neighbours (BFD Up).
    pub neighbors: Vec<NodeId>,
    /// Notices known, by apply time.
    pub notices: Vec<NoticeView>,
    /// Notices applied.
    pub applied: u64,
    /// Notices whose time disagreed with this node's clock.
    pub clock_skew: u64,
    /// The flooder's counters.
    pub counters: Counters,
    /// The flood bound, ms.
    pub bound_ms: u32,
}

/// The node's flooding.
pub struct Flooding {
    flooder: Flooder<NodeKey, TrustStore>,
    me: NodeId,
    n_sats: u32,
    bound_ms: u32,
    neighbors: BTreeSet<NodeId>,
    applied: u64,
    clock_skew: u64,
}

impl Flooding {
    /// Flooding for node `me` of a constellation of `n_sats` satellites,
    /// with the key and trust file `cfg` names.
    pub fn new(cfg: &FloodConfig, me: NodeId, n_sats: u32) -> Result<Flooding, KeyError> {
        let key = NodeKey::read(&cfg.key)?;
        let trust = TrustStore::read(&cfg.trust)?;
        if trust.key(me) != Some(&key.public()) {
            tracing::warn!(
                node = me,
                "the trust file does not hold this node's public key: its neighbours will refuse its notices"
            );
        }
        let fc = flood::FloodConfig {
            flood_bound_ns: u64::from(cfg.bound_ms) * 1_000_000,
            ..flood::FloodConfig::default()
        };
        Ok(Flooding {
            flooder: Flooder::new(me, fc, key, trust),
            me,
            n_sats,
            bound_ms: cfg.bound_ms,
            neighbors: BTreeSet::new(),
            applied: 0,
            clock_skew: 0,
        })
    }

    /// Takes a flooding datagram from neighbour `from`.
    pub fn receive(&mut self, now_ns: u64, from: NodeId, payload: &[u8]) {
        self.flooder.receive(now_ns, from, payload);
    }

    /// One round at Unix time `now_ns`: follows the BFD sessions (who is
    /// a neighbour), announces the node's own `links` events (ISLs and
    /// links to ground stations), runs
    /// the timers, sends what is due through `send`; returns the failure
    /// events whose instant has come, each with that instant (Unix ns).
    pub fn round(
        &mut self,
        now_ns: u64,
        bfd: &mut BfdSessions,
        links: &[LinkEvent],
        mut send: impl FnMut(PortId, Vec<u8>),
    ) -> Vec<(FailureEvent, u64)> {
        let up: BTreeSet<NodeId> = bfd.up_neighbors().collect();
        for &n in up.difference(&self.neighbors) {
            self.flooder.neighbor_up(now_ns, n);
        }
        for &n in self.neighbors.difference(&up) {
            self.flooder.neighbor_down(now_ns, n);
        }
        self.neighbors = up;
        for e in links {
            let Some(peer) = e.peer_node else { continue };
            if FailureEvent::of_link(self.me, peer, e.up, self.n_sats).is_none() {
                // Two ground stations: no link of the constellation's.
                continue;
            }
            let Some(link) = Link::new(self.me, peer) else {
                continue;
            };
            match self.flooder.originate(now_ns, link, e.up) {
                Ok(n) => tracing::warn!(
                    link = %format_args!("{}-{}", link.a(), link.b()),
                    state = if e.up { "up" } else { "down" },
                    seq = n.seq,
                    apply_in_ms = self.bound_ms,
                    "notice originated"
                ),
                Err(err) => tracing::error!(?link, "notice not originated: {err}"),
            }
        }
        self.flooder.poll(now_ns);
        while let Some(t) = self.flooder.poll_transmit() {
            if let Some((port, f)) = bfd.frame_to_neighbor(t.to, notice::UDP_PORT, &t.payload) {
                send(port, f);
            }
        }
        let mut out = Vec::new();
        while let Some(ev) = self.flooder.poll_event() {
            match ev {
                Event::Apply { notice, at_ns } => {
                    self.applied += 1;
                    log_apply(&notice, at_ns, now_ns);
                    out.extend(notice.failure_event(self.n_sats).map(|ev| (ev, at_ns)));
                }
                Event::ClockSkew {
                    from,
                    notice,
                    kind,
                    by_ns,
                } => {
                    self.clock_skew += 1;
                    tracing::warn!(
                        from,
                        origin = notice.origin,
                        by_ms = by_ns as f64 / 1e6,
                        "a notice's time disagrees with this node's clock by more than the flood bound ({}): check the clocks",
                        match kind {
                            SkewKind::Ahead => "it is ahead",
                            SkewKind::Late => "it came after its instant",
                        }
                    );
                }
            }
        }
        out
    }

    /// When [`Flooding::round`] next has timers due (Unix ns).
    pub fn next_timeout_ns(&self) -> u64 {
        self.flooder.next_timeout().unwrap_or(u64::MAX)
    }

    /// The node's view for the operator.
    pub fn view(&self) -> FloodView {
        let bound = u64::from(self.bound_ms) * 1_000_000;
        let mut notices: Vec<NoticeView> = self
            .flooder
            .notices()
            .map(|n| NoticeView {
                origin: n.origin,
                link: (n.link.a(), n.link.b()),
                up: n.up,
                seq: n.seq,
                origin_time_ns: n.origin_time_ns,
                apply_at_ns: n.apply_at_ns(bound),
            })
            .collect();
        notices.sort_by_key(|n| (n.apply_at_ns, n.origin));
        FloodView {
            neighbors: self.neighbors.iter().copied().collect(),
            notices,
            applied: self.applied,
            clock_skew: self.clock_skew,
            counters: *self.flooder.counters(),
            bound_ms: self.bound_ms,
        }
    }
}

fn log_apply(n: &Notice, at_ns: u64, now_ns: u64) {
    tracing::info!(
        origin = n.origin,
        link = %format_args!("{}-{}", n.link.a(), n.link.b()),
        state = if n.up { "up" } else { "down" },
        seq = n.seq,
        late_ms = now_ns.saturating_sub(at_ns) as f64 / 1e6,
        "notice applied"
    );
}
