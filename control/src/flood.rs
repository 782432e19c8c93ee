//! Reliable flooding of signed link-state notices: a sans-IO state machine.
//!
//! The node's control thread feeds it its neighbours' liveness (from BFD),
//! its own link changes, the datagrams its neighbours sent (UDP port
//! [`crate::notice::UDP_PORT`]) and the time; it gives back datagrams to
//! send, a deadline to be polled at, and events. It reads no clock: every
//! call takes `now`, the node's wall clock in nanoseconds since the Unix
//! epoch (the clock notices are stamped with).
//!
//! ```text
//! on BFD up/down:        f.neighbor_up(now, n) / f.neighbor_down(now, n)
//! on own link change:    f.originate(now, link, up)
//! on datagram from n:    f.receive(now, n, bytes)
//! at f.next_timeout():   f.poll(now)
//! after any call:        send every f.poll_transmit(), handle every f.poll_event()
//! ```
//!
//! Rules:
//!
//! * a notice new to the node (a higher sequence number than any it holds
//!   for the same origin and link) and correctly signed is kept and sent to
//!   every up neighbour except the one it came from;
//! * every received notice that is well formed and not forged is
//!   acknowledged to its sender, duplicates and stale ones included; a
//!   neighbour that sends a stale one gets the newer one back;
//! * a send is retransmitted, at an interval doubling from
//!   [`FloodConfig::retransmit_initial_ns`] up to
//!   [`FloodConfig::retransmit_max_ns`], until it is acknowledged, the
//!   neighbour goes down, or [`FloodConfig::max_attempts`] sends were made;
//! * a neighbour that comes up is sent every notice held (a sync), so a
//!   link that heals re-synchronises both sides;
//! * every node applies a notice at one instant, its origination time plus
//!   [`FloodConfig::flood_bound_ns`] ([`Event::Apply`]), in order of that
//!   instant;
//! * a notice stamped further ahead of the node's clock than the flood
//!   bound, or first flooded to it later than its apply instant plus
//!   [`FloodConfig::late_margin_ns`], is reported ([`Event::ClockSkew`]):
//!   one of the two clocks is off, and the nodes no longer apply at one
//!   instant;
//! * each neighbour may make the node handle at most
//!   [`FloodConfig::rate_per_s`] records a second (with a burst of
//!   [`FloodConfig::rate_burst`]); the excess is dropped and counted;
//! * state is bounded: at most [`FloodConfig::max_notices`] notices (one per
//!   origin and link, the latest), forgotten [`FloodConfig::max_age_ns`]
//!   after their apply instant (older ones are refused, so a forgotten one
//!   cannot be replayed); a node refreshes its own "down" notices every
//!   [`FloodConfig::refresh_ns`] so that a link that stays down is not
//!   forgotten; at most [`FloodConfig::max_neighbors`] neighbours, each
//!   with at most [`FloodConfig::max_pending_per_neighbor`] sends awaiting
//!   an ack; at most [`FloodConfig::max_queued`] datagrams and events
//!   waiting to be taken.
//!
//! A notice that supersedes one not yet applied replaces it: only the
//! latest state of a link is applied. An [`Event::Apply`] of a state the
//! caller already has (a refresh, or the other end's notice about the same
//! change) is a no-op for it.

use crate::notice::{
    encode_acks, encode_notices, Link, Message, MessageType, Notice, NoticeId,
    MAX_ACKS_PER_MESSAGE, MAX_NOTICES_PER_MESSAGE,
};
use crate::signing::{NoticeSigner, NoticeVerifier};
use crate::topology::NodeId;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Timing and bounds of the flooder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloodConfig {
    /// Time from origination to the instant every node applies a notice
    /// (default 200 ms).
    pub flood_bound_ns: u64,
    /// How long after its apply instant a notice may first arrive by
    /// flooding before it is reported as clock skew (default 200 ms).
    pub late_margin_ns: u64,
    /// First retransmission interval (default 20 ms).
    pub retransmit_initial_ns: u64,
    /// Largest retransmission interval (default 320 ms).
    pub retransmit_max_ns: u64,
    /// Sends of one notice to one neighbour before giving up (default 8).
    pub max_attempts: u32,
    /// Records (notices or acks) a second one neighbour may make the node
    /// handle (default 1000).
    pub rate_per_s: u32,
    /// Records one neighbour may send at once after a quiet spell
    /// (default 1024).
    pub rate_burst: u32,
    /// Notices held (default 1024).
    pub max_notices: usize,
    /// Sends awaiting an ack, per neighbour (default 1024).
    pub max_pending_per_neighbor: usize,
    /// Neighbours (default 64).
    pub max_neighbors: usize,
    /// How long after its apply instant a notice is kept, and the age
    /// beyond which one is refused (default 10 min).
    pub max_age_ns: u64,
    /// Interval at which the node re-originates its own "down" notices
    /// (default 5 min; at most half of `max_age_ns`).
    pub refresh_ns: u64,
    /// Datagrams, and events, waiting to be taken (default 4096 each).
    pub max_queued: usize,
}

impl Default for FloodConfig {
    fn default() -> Self {
        Self {
            flood_bound_ns: 200_000_000,
            late_margin_ns: 200_000_000,
            retransmit_initial_ns: 20_000_000,
            retransmit_max_ns: 320_000_000,
            max_attempts: 8,
            rate_per_s: 1000,
            rate_burst: 1024,
            max_notices: 1024,
            max_pending_per_neighbor: 1024,
            max_neighbors: 64,
            max_age_ns: 600_000_000_000,
            refresh_ns: 300_000_000_000,
            max_queued: 4096,
        }
    }
}

/// A datagram to send to a neighbour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The neighbour.
    pub to: NodeId,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

/// Which way a clock is off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkewKind {
    /// The notice's origination time is ahead of this node's clock by more
    /// than the flood bound.
    Ahead,
    /// The notice first reached this node by flooding after its apply
    /// instant plus the late margin.
    Late,
}

/// What the caller acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Apply a link change now: its instant `at_ns` (Unix ns), the same at
    /// every node, has come. Emitted once per notice, in order of `at_ns`
    /// (for a notice that arrived after its instant, at once).
    Apply {
        /// The notice.
        notice: Notice,
        /// Its apply instant.
        at_ns: u64,
    },
    /// A notice whose time disagrees with this node's clock by more than
    /// the flood bound allows.
    ClockSkew {
        /// The neighbour it came from.
        from: NodeId,
        /// The notice.
        notice: NoticeId,
        /// Which way.
        kind: SkewKind,
        /// By how much: how far ahead its origination time is (`Ahead`), or
        /// how long after its apply instant it arrived (`Late`).
        by_ns: u64,
    },
}

/// Why [`Flooder::originate`] did not originate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OriginateError {
    /// The node is not an end of the link.
    #[error("not an end of the link")]
    NotOwnLink,
    /// Every slot holds a notice of this node's own.
    #[error("notice table full")]
    TableFull,
}

/// What the flooder did and refused, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    /// Notices taken in (new or newer), own ones included.
    pub accepted: u64,
    /// Datagrams or records that did not parse.
    pub malformed: u64,
    /// Notices whose signature did not verify.
    pub bad_signature: u64,
    /// Notices older than the one held for the same origin and link.
    pub stale: u64,
    /// Notices already held.
    pub duplicate: u64,
    /// Datagrams dropped by a neighbour's token bucket.
    pub rate_limited: u64,
    /// Datagrams from a node that is not an up neighbour.
    pub not_neighbor: u64,
    /// Datagrams whose envelope names another sender than the neighbour
    /// they came from.
    pub sender_mismatch: u64,
    /// Notices refused because the table was full.
    pub table_full: u64,
    /// Notices refused as older than the maximum age, or too far ahead.
    pub out_of_window: u64,
    /// Sends not queued because a neighbour's retransmit queue was full.
    pub queue_full: u64,
    /// Sends abandoned after the last attempt went unacknowledged.
    pub gave_up: u64,
    /// Neighbours not taken because the neighbour table was full.
    pub neighbor_table_full: u64,
    /// Datagrams or events dropped because the caller had not taken the
    /// earlier ones.
    pub output_full: u64,
    /// Notices ahead of the clock (see [`SkewKind::Ahead`]).
    pub skew_ahead: u64,
    /// Notices that arrived late (see [`SkewKind::Late`]).
    pub skew_late: u64,
    /// Notice records sent.
    pub notices_sent: u64,
    /// Of which retransmissions.
    pub retransmits: u64,
    /// Ack records sent.
    pub acks_sent: u64,
    /// Datagrams sent.
    pub datagrams_sent: u64,
}

type Key = (NodeId, Link);

#[derive(Clone, Copy, Debug)]
struct Entry {
    notice: Notice,
    applied: bool,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    seq: u64,
    sync: bool,
    attempts: u32,
    next_ns: u64,
    interval_ns: u64,
}

/// Token bucket in token-nanoseconds (`tokens * 1e9`), so that refills
/// need no division.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    level: u64,
    last_ns: u64,
}

const NS: u64 = 1_000_000_000;

impl Bucket {
    fn full(now: u64, burst: u32) -> Self {
        Self {
            level: u64::from(burst).saturating_mul(NS),
            last_ns: now,
        }
    }

    fn take(&mut self, now: u64, cost: u64, rate: u32, burst: u32) -> bool {
        let cap = u64::from(burst).saturating_mul(NS);
        let elapsed = now.saturating_sub(self.last_ns);
        self.last_ns = self.last_ns.max(now);
        self.level = self
            .level
            .saturating_add(elapsed.saturating_mul(u64::from(rate)))
            .min(cap);
        let need = cost.saturating_mul(NS);
        if self.level >= need {
            self.level -= need;
            true
        } else {
            false
        }
    }
}

#[derive(Clone, Debug)]
struct Neighbor {
    bucket: Bucket,
    pending: BTreeMap<Key, Pending>,
    acks: Vec<NoticeId>,
}

/// The flooding state machine of one node.
pub struct Flooder<S, V> {
    me: NodeId,
    cfg: FloodConfig,
    signer: S,
    verifier: V,
    table: BTreeMap<Key, Entry>,
    applies: BTreeSet<(u64, Key, u64)>,
    neighbors: BTreeMap<NodeId, Neighbor>,
    last_own_seq: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    counters: Counters,
    /// What [`Flooder::next_timeout`] returns, kept up to date by every
    /// call that changes the state: a node's driver asks at every turn
    /// of its loop, and the walk over every notice and pending send is
    /// then done once per change, not once per turn.
    deadline: Option<u64>,
}

impl<S: NoticeSigner, V: NoticeVerifier> Flooder<S, V> {
    /// The flooder of node `me`, signing with `signer` and checking others'
    /// notices with `verifier`. A `refresh_ns` above half of `max_age_ns` is
    /// lowered to it.
    pub fn new(me: NodeId, mut cfg: FloodConfig, signer: S, verifier: V) -> Self {
        cfg.refresh_ns = cfg.refresh_ns.clamp(1, (cfg.max_age_ns / 2).max(1));
        Self {
            me,
            cfg,
            signer,
            verifier,
            table: BTreeMap::new(),
            applies: BTreeSet::new(),
            neighbors: BTreeMap::new(),
            last_own_seq: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
            deadline: None,
        }
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.me
    }

    /// The configuration in use.
    pub fn config(&self) -> &FloodConfig {
        &self.cfg
    }

    /// What it did and refused so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The neighbours currently up.
    pub fn neighbors(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.neighbors.keys().copied()
    }

    /// The latest notice held from `origin` about `link`.
    pub fn notice(&self, origin: NodeId, link: Link) -> Option<&Notice> {
        self.table.get(&(origin, link)).map(|e| &e.notice)
    }

    /// Every notice held.
    pub fn notices(&self) -> impl Iterator<Item = &Notice> + '_ {
        self.table.values().map(|e| &e.notice)
    }

    /// Sends awaiting an ack from `neighbor` (0 if it is not up).
    pub fn unacknowledged(&self, neighbor: NodeId) -> usize {
        self.neighbors.get(&neighbor).map_or(0, |n| n.pending.len())
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// A neighbour came up (its BFD session did): it is sent every notice
    /// held. False if it could not be taken (the node itself, or the
    /// neighbour table is full); true if it was up already.
    pub fn neighbor_up(&mut self, now: u64, id: NodeId) -> bool {
        if id == self.me {
            return false;
        }
        if self.neighbors.contains_key(&id) {
            return true;
        }
        if self.neighbors.len() >= self.cfg.max_neighbors {
            self.counters.neighbor_table_full += 1;
            return false;
        }
        let mut nb = Neighbor {
            bucket: Bucket::full(now, self.cfg.rate_burst),
            pending: BTreeMap::new(),
            acks: Vec::new(),
        };
        for (key, e) in &self.table {
            schedule(
                &self.cfg,
                &mut self.counters,
                &mut nb,
                *key,
                e.notice.seq,
                true,
                now,
            );
        }
        self.neighbors.insert(id, nb);
        self.flush(now);
        self.deadline = self.compute_deadline();
        true
    }

    /// A neighbour went down: nothing more is sent to or taken from it.
    pub fn neighbor_down(&mut self, _now: u64, id: NodeId) {
        self.neighbors.remove(&id);
        self.deadline = self.compute_deadline();
    }

    /// Originates a notice about one of the node's own links (after its BFD
    /// session went down, or came up and held), floods it, and schedules
    /// its apply instant. Sequence numbers follow the clock, so a node that
    /// restarted supersedes what it said before.
    pub fn originate(&mut self, now: u64, link: Link, up: bool) -> Result<Notice, OriginateError> {
        if !link.has(self.me) {
            return Err(OriginateError::NotOwnLink);
        }
        let key = (self.me, link);
        if !self.table.contains_key(&key) && !self.make_room(now, true) {
            self.counters.table_full += 1;
            // Making room may have forgotten notices that aged out.
            self.deadline = self.compute_deadline();
            return Err(OriginateError::TableFull);
        }
        let seq = self.last_own_seq.saturating_add(1).max(now);
        self.last_own_seq = seq;
        let n = Notice::signed(self.me, link, up, seq, now, &self.signer);
        self.accept(now, n, None, false);
        self.apply_due(now);
        self.flush(now);
        self.deadline = self.compute_deadline();
        Ok(n)
    }

    /// Takes a datagram that arrived from neighbour `from`.
    pub fn receive(&mut self, now: u64, from: NodeId, bytes: &[u8]) {
        if !self.neighbors.contains_key(&from) {
            self.counters.not_neighbor += 1;
            return;
        }
        let msg = match Message::parse(bytes) {
            Ok(m) => m,
            Err(_) => {
                self.counters.malformed += 1;
                return;
            }
        };
        if msg.sender() != from {
            self.counters.sender_mismatch += 1;
            return;
        }
        let (rate, burst) = (self.cfg.rate_per_s, self.cfg.rate_burst);
        let admitted = self
            .neighbors
            .get_mut(&from)
            .is_some_and(|nb| nb.bucket.take(now, msg.len() as u64, rate, burst));
        if !admitted {
            self.counters.rate_limited += 1;
            return;
        }
        match msg.msg_type() {
            MessageType::Acks => {
                for id in msg.acks() {
                    match id {
                        Ok(id) => self.acked(from, id),
                        Err(_) => self.counters.malformed += 1,
                    }
                }
            }
            MessageType::Notices | MessageType::Sync => {
                let sync = msg.msg_type() == MessageType::Sync;
                for n in msg.notices() {
                    match n {
                        Ok(n) => self.received(now, from, n, sync),
                        Err(_) => self.counters.malformed += 1,
                    }
                }
            }
        }
        self.apply_due(now);
        self.flush(now);
        self.deadline = self.compute_deadline();
    }

    /// Advances to `now`: applies what is due, retransmits, forgets what
    /// has aged out, refreshes the node's own "down" notices.
    pub fn poll(&mut self, now: u64) {
        self.apply_due(now);
        self.expire(now);
        self.refresh(now);
        self.flush(now);
        self.deadline = self.compute_deadline();
    }

    /// When [`Flooder::poll`] has something to do next (Unix ns), if ever.
    pub fn next_timeout(&self) -> Option<u64> {
        debug_assert_eq!(self.deadline, self.compute_deadline(), "stale deadline");
        self.deadline
    }

    /// The earliest of the next apply instant, retransmission, expiry and
    /// refresh, walking the whole state.
    fn compute_deadline(&self) -> Option<u64> {
        let apply = self.applies.first().map(|&(t, _, _)| t);
        let sends = self
            .neighbors
            .values()
            .flat_map(|nb| nb.pending.values().map(|p| p.next_ns))
            .min();
        let expiry = self
            .table
            .values()
            .map(|e| {
                e.notice
                    .apply_at_ns(self.cfg.flood_bound_ns)
                    .saturating_add(self.cfg.max_age_ns)
            })
            .min();
        let refresh = self
            .table
            .values()
            .filter(|e| e.notice.origin == self.me && !e.notice.up)
            .map(|e| e.notice.origin_time_ns.saturating_add(self.cfg.refresh_ns))
            .min();
        [apply, sends, expiry, refresh].into_iter().flatten().min()
    }

    fn acked(&mut self, from: NodeId, id: NoticeId) {
        if let Some(nb) = self.neighbors.get_mut(&from) {
            let key = (id.origin, id.link);
            if nb.pending.get(&key).is_some_and(|p| p.seq <= id.seq) {
                nb.pending.remove(&key);
            }
        }
    }

    fn ack(&mut self, to: NodeId, id: NoticeId) {
        if let Some(nb) = self.neighbors.get_mut(&to) {
            if nb.acks.len() < self.cfg.max_pending_per_neighbor {
                nb.acks.push(id);
            }
        }
    }

    fn received(&mut self, now: u64, from: NodeId, n: Notice, sync: bool) {
        let key = (n.origin, n.link);
        let held = self.table.get(&key).map(|e| e.notice.seq);
        match held {
            Some(seq) if seq == n.seq => {
                self.counters.duplicate += 1;
                self.acked(from, n.id());
                self.ack(from, n.id());
                return;
            }
            Some(seq) if seq > n.seq => {
                // The neighbour is behind: ack, and send it ours now (again,
                // if it was on its way: it has evidently not arrived yet).
                self.counters.stale += 1;
                self.ack(from, n.id());
                if let Some(nb) = self.neighbors.get_mut(&from) {
                    schedule(&self.cfg, &mut self.counters, nb, key, seq, true, now);
                }
                return;
            }
            _ => {}
        }
        let apply_at = n.apply_at_ns(self.cfg.flood_bound_ns);
        if apply_at.saturating_add(self.cfg.max_age_ns) <= now
            || n.origin_time_ns > now.saturating_add(self.cfg.max_age_ns)
        {
            self.counters.out_of_window += 1;
            self.ack(from, n.id());
            return;
        }
        if held.is_none() && !self.make_room(now, false) {
            self.counters.table_full += 1;
            return;
        }
        if !n.verify(&self.verifier) {
            self.counters.bad_signature += 1;
            return;
        }
        let ahead = n.origin_time_ns.saturating_sub(now);
        if ahead > self.cfg.flood_bound_ns {
            self.counters.skew_ahead += 1;
            self.event(Event::ClockSkew {
                from,
                notice: n.id(),
                kind: SkewKind::Ahead,
                by_ns: ahead,
            });
        }
        let late = now.saturating_sub(apply_at);
        if !sync && late > self.cfg.late_margin_ns {
            self.counters.skew_late += 1;
            self.event(Event::ClockSkew {
                from,
                notice: n.id(),
                kind: SkewKind::Late,
                by_ns: late,
            });
        }
        if n.origin == self.me {
            // Ours from before a restart, or from a clock that ran ahead.
            self.last_own_seq = self.last_own_seq.max(n.seq);
        }
        self.ack(from, n.id());
        self.accept(now, n, Some(from), sync);
    }

    /// Keeps `n` as the latest for its origin and link (there is room),
    /// schedules its apply instant and its sends.
    fn accept(&mut self, now: u64, n: Notice, from: Option<NodeId>, sync: bool) {
        let key = (n.origin, n.link);
        let bound = self.cfg.flood_bound_ns;
        if let Some(old) = self.table.insert(
            key,
            Entry {
                notice: n,
                applied: false,
            },
        ) {
            if !old.applied {
                self.applies
                    .remove(&(old.notice.apply_at_ns(bound), key, old.notice.seq));
            }
        }
        self.applies.insert((n.apply_at_ns(bound), key, n.seq));
        self.counters.accepted += 1;
        for (&id, nb) in self.neighbors.iter_mut() {
            if Some(id) != from {
                schedule(&self.cfg, &mut self.counters, nb, key, n.seq, sync, now);
            }
        }
    }

    /// Makes room for one more notice: forgets aged-out ones, and for the
    /// node's own notice (`own`), the one of another origin applied
    /// earliest. False if the table is still full.
    fn make_room(&mut self, now: u64, own: bool) -> bool {
        if self.table.len() < self.cfg.max_notices {
            return true;
        }
        self.expire(now);
        if self.table.len() < self.cfg.max_notices {
            return true;
        }
        if !own {
            return false;
        }
        let bound = self.cfg.flood_bound_ns;
        let victim = self
            .table
            .iter()
            .filter(|(_, e)| e.notice.origin != self.me)
            .min_by_key(|(_, e)| e.notice.apply_at_ns(bound))
            .map(|(k, e)| (*k, *e));
        match victim {
            Some((key, e)) => {
                self.table.remove(&key);
                self.applies
                    .remove(&(e.notice.apply_at_ns(bound), key, e.notice.seq));
                true
            }
            None => false,
        }
    }

    fn apply_due(&mut self, now: u64) {
        while let Some(&(at, key, seq)) = self.applies.first() {
            if at > now {
                break;
            }
            self.applies.pop_first();
            if let Some(e) = self.table.get_mut(&key) {
                if e.notice.seq == seq && !e.applied {
                    e.applied = true;
                    let notice = e.notice;
                    self.event(Event::Apply { notice, at_ns: at });
                }
            }
        }
    }

    fn expire(&mut self, now: u64) {
        let (bound, age) = (self.cfg.flood_bound_ns, self.cfg.max_age_ns);
        self.table
            .retain(|_, e| !(e.applied && e.notice.apply_at_ns(bound).saturating_add(age) <= now));
    }

    fn refresh(&mut self, now: u64) {
        let due: Vec<Link> = self
            .table
            .values()
            .filter(|e| {
                e.notice.origin == self.me
                    && !e.notice.up
                    && e.notice.origin_time_ns.saturating_add(self.cfg.refresh_ns) <= now
            })
            .map(|e| e.notice.link)
            .collect();
        for link in due {
            // The slot is held, so this cannot fail for want of room.
            let _ = self.originate(now, link, false);
        }
    }

    fn event(&mut self, ev: Event) {
        if self.events.len() < self.cfg.max_queued {
            self.events.push_back(ev);
        } else {
            self.counters.output_full += 1;
        }
    }

    /// Sends the acks gathered and every send that is due, batched per
    /// neighbour and message type.
    fn flush(&mut self, now: u64) {
        let Self {
            me,
            cfg,
            table,
            neighbors,
            transmits,
            counters,
            ..
        } = self;
        let mut out = |to: NodeId, payload: Option<Vec<u8>>, counters: &mut Counters| {
            let Some(payload) = payload else { return };
            if transmits.len() < cfg.max_queued {
                counters.datagrams_sent += 1;
                transmits.push_back(Transmit { to, payload });
            } else {
                counters.output_full += 1;
            }
        };
        let mut flood = Vec::new();
        let mut sync = Vec::new();
        let mut gone = Vec::new();
        for (&to, nb) in neighbors.iter_mut() {
            for chunk in nb.acks.chunks(MAX_ACKS_PER_MESSAGE) {
                counters.acks_sent += chunk.len() as u64;
                out(to, encode_acks(*me, chunk).ok(), counters);
            }
            nb.acks.clear();
            flood.clear();
            sync.clear();
            gone.clear();
            for (key, p) in nb.pending.iter_mut() {
                if p.next_ns > now {
                    continue;
                }
                let notice = match table.get(key) {
                    Some(e) if e.notice.seq == p.seq => e.notice,
                    _ => {
                        gone.push(*key);
                        continue;
                    }
                };
                if p.attempts >= cfg.max_attempts {
                    counters.gave_up += 1;
                    gone.push(*key);
                    continue;
                }
                if p.attempts > 0 {
                    counters.retransmits += 1;
                }
                p.attempts += 1;
                p.next_ns = now.saturating_add(p.interval_ns);
                p.interval_ns = p
                    .interval_ns
                    .saturating_mul(2)
                    .min(cfg.retransmit_max_ns)
                    .max(1);
                if p.sync {
                    sync.push(notice);
                } else {
                    flood.push(notice);
                }
            }
            for key in &gone {
                nb.pending.remove(key);
            }
            for (kind, list) in [(MessageType::Notices, &flood), (MessageType::Sync, &sync)] {
                for chunk in list.chunks(MAX_NOTICES_PER_MESSAGE) {
                    counters.notices_sent += chunk.len() as u64;
                    out(to, encode_notices(*me, kind, chunk).ok(), counters);
                }
            }
        }
    }
}

/// Queues a send of the notice `key`/`seq` to a neighbour, due now,
/// replacing any earlier send of the same origin and link.
fn schedule(
    cfg: &FloodConfig,
    counters: &mut Counters,
    nb: &mut Neighbor,
    key: Key,
    seq: u64,
    sync: bool,
    now: u64,
) {
    let p = Pending {
        seq,
        sync,
        attempts: 0,
        next_ns: now,
        interval_ns: cfg.retransmit_initial_ns.max(1),
    };
    if let Some(old) = nb.pending.get_mut(&key) {
        *old = p;
    } else if nb.pending.len() < cfg.max_pending_per_neighbor {
        nb.pending.insert(key, p);
    } else {
        counters.queue_full += 1;
    }
}

#[cfg(test)]
mod tests;
