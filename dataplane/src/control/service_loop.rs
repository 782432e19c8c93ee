//! The node's service thread: takes what the workers punt, answers it
//! through the services (ARP, ICMP echo, LSP ping), runs the operator's
//! pings (ICMP echo, paced) and LSP pings and traces, and sends through
//! the workers' inject queues.
//! The services are sans-IO; this loop is their only driver here.

use super::address_book::AddressBook;
use super::agent::LinkNews;
use super::armed_repairs::{ArmedRepairs, Fired};
use super::bfd::{self, BfdCounters, BfdSessionView, BfdSessions};
use super::flooding::{FloodView, Flooding};
use super::ike::{IkeDriver, IkeView};
use super::inject::{frame_to_node, CONTROL_MPLS_TTL};
use super::mgmt::{OamHop, OamKind, OamRequest, OamResult};
use super::services::{
    self, ping, IgnoredCounters, NodeInfo, Outgoing, PingDone, PortInfo, ProbeDone, ProbeId, Probes,
};
use crate::runtime::{Channels, TableStore};
use crate::tables::Tables;
use meshplane_control::notice;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Punted frames taken from one worker per round, so that one flooded
/// worker cannot starve the others (the policer bounds the total).
const BUDGET: usize = 64;

/// How long the loop sleeps when a round found nothing to do (the
/// latency of an answer, and the resolution of BFD's timers).
const IDLE_SLEEP: Duration = Duration::from_millis(1);

/// Operator probes waiting at once (more are refused as busy).
const MAX_WAITING: usize = 16;

/// What the service thread has counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceCounters {
    /// Punted frames taken from the workers.
    pub received: u64,
    /// Answers sent (ARP, echo replies, LSP echo replies).
    pub answered: u64,
    /// Echo replies (LSP or ICMP) matched to one of the node's probes.
    pub probe_replies: u64,
    /// Punted frames not answered, by reason (see `ignored_by_reason`).
    pub ignored: u64,
    /// Answers or probes for which the tables have no label route.
    pub no_path: u64,
    /// Frames the inject queue refused (full).
    pub inject_full: u64,
}

/// Counters shared with the management socket.
#[derive(Debug, Default)]
pub struct ServiceStats {
    inner: Mutex<(ServiceCounters, IgnoredCounters)>,
    bfd: Mutex<BfdReply>,
    flood: Mutex<Option<FloodView>>,
    ike: Mutex<Option<IkeView>>,
}

impl ServiceStats {
    /// A copy of the counters and the ignored reasons.
    pub fn read(&self) -> (ServiceCounters, IgnoredCounters) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The BFD sessions as last published.
    pub fn bfd(&self) -> BfdReply {
        self.bfd.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The flooding state as last published (None: no `[flood]`).
    pub fn flood(&self) -> Option<FloodView> {
        self.flood.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The IKE state as last published (None: no `[ike]`).
    pub fn ike(&self) -> Option<IkeView> {
        self.ike.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// `show bfd`: every session and the transport's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BfdReply {
    /// The sessions, in port order.
    pub sessions: Vec<BfdSessionView>,
    /// What the transport counted.
    pub counters: BfdCounters,
    /// Link events the control thread could not take (its queue full).
    pub events_lost: u64,
}

/// How often the BFD view is published for the management socket.
const BFD_PUBLISH_NS: u64 = 100_000_000;

/// Link events waiting for the control thread, at most.
pub const LINK_EVENT_QUEUE: usize = 1024;

/// Which initiator runs a probe (each counts its own ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Running {
    Lsp(ProbeId),
    Icmp(ProbeId),
}

/// A probe the operator is waiting for.
struct Waiting {
    probe: Running,
    to: String,
    reply: crossbeam::channel::Sender<OamResult>,
}

/// The service thread's state.
pub struct ServiceLoop {
    channels: Arc<Channels>,
    node: NodeInfo,
    book: AddressBook,
    probes: Probes,
    oam: Option<crossbeam::channel::Receiver<OamRequest>>,
    waiting: Vec<Waiting>,
    counters: ServiceCounters,
    ignored: IgnoredCounters,
    stats: Arc<ServiceStats>,
    bfd: Option<BfdLinks>,
    /// IKEv2 with the peer gateways (`[ike]`).
    ike: Option<IkeDriver>,
    ike_published_at: Option<u64>,
    /// The monotonic clock BFD and IKE run on.
    started: std::time::Instant,
    /// The node's last words, when it stops.
    farewell: Option<Arc<crate::runtime::Farewell>>,
    /// Repaired tables of each link, published when BFD takes it down.
    armed: Option<Arc<ArmedRepairs>>,
    /// Neighbours whose links BFD took down this round, to repair.
    down_now: Vec<meshplane_control::NodeId>,
}

/// BFD sessions, flooding over them, and where their news goes.
struct BfdLinks {
    sessions: BfdSessions,
    flooding: Option<Flooding>,
    events: Option<crossbeam::channel::Sender<LinkNews>>,
    events_lost: u64,
    published_at: Option<u64>,
    /// A notice datagram came in: what it asks for goes out this round.
    flood_rx: bool,
}

/// What the services know of the node whose tables are `t`.
pub fn node_info(name: &str, id: Option<u32>, t: &Tables) -> NodeInfo {
    NodeInfo {
        name: name.to_string(),
        id,
        addresses: t.own_addrs.clone(),
        ports: t
            .port_macs
            .iter()
            .zip(t.port_addrs.iter().zip(&t.port_addrs6))
            .map(|(&mac, (&address, &address6))| PortInfo {
                mac,
                address,
                address6,
            })
            .collect(),
    }
}

/// Puts the calling thread (the service thread, which runs BFD) ahead of
/// route computation and other work on a busy host: the highest
/// niceness it may take. A BFD session at 10 ms x 3 goes down when its
/// packets wait 30 ms for a core. A real-time policy would be stronger,
/// but the workers that carry BFD's frames would then wait for it.
fn raise_priority() {
    match thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Max) {
        Ok(()) => tracing::debug!("service thread at the highest niceness, for BFD"),
        Err(e) => tracing::warn!(
            "service thread left at normal priority ({e:?}): BFD may flap on a busy host"
        ),
    }
}

/// Unix time in nanoseconds (the services' clock: NTP timestamps).
fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A seed no off-path host can guess, for the probes' sender's handles
/// and identifiers and BFD's discriminators.
pub fn random_seed() -> u64 {
    use aws_lc_rs::rand::SecureRandom;
    let mut b = [0u8; 8];
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut b);
    u64::from_ne_bytes(b)
}

impl ServiceLoop {
    /// A loop serving `node` over `channels`; `oam` brings the management
    /// socket's probe requests; `stats` is where it publishes counters.
    pub fn new(
        channels: Arc<Channels>,
        node: NodeInfo,
        book: AddressBook,
        oam: Option<crossbeam::channel::Receiver<OamRequest>>,
        stats: Arc<ServiceStats>,
    ) -> Self {
        let source = node
            .node_address()
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
        ServiceLoop {
            channels,
            node,
            book,
            probes: Probes::new(source, random_seed() as u32, random_seed()),
            oam,
            waiting: Vec::new(),
            counters: ServiceCounters::default(),
            ignored: IgnoredCounters::default(),
            stats,
            bfd: None,
            ike: None,
            ike_published_at: None,
            started: std::time::Instant::now(),
            farewell: None,
            armed: None,
            down_now: Vec::new(),
        }
    }

    /// Publishes the repaired tables `armed` holds for a link the moment
    /// BFD takes it down, before the control thread hears of it.
    pub fn with_armed_repairs(mut self, armed: Arc<ArmedRepairs>) -> Self {
        self.armed = Some(armed);
        self
    }

    /// Publishes the armed repairs of the links BFD took down this round.
    fn repair_links_down(&mut self, store: &TableStore) {
        let Some(armed) = &self.armed else {
            return;
        };
        for neighbor in std::mem::take(&mut self.down_now) {
            match armed.fire(neighbor, store) {
                Fired::Published(table_epoch) => tracing::warn!(
                    neighbor,
                    table_epoch,
                    "link repaired at once from the armed repairs"
                ),
                Fired::Stale => tracing::debug!(
                    neighbor,
                    "armed repairs were for older tables: the control thread repairs"
                ),
                Fired::NotArmed => {}
            }
        }
    }

    /// Says the node's last words when `farewell` asks (IKE's DELETEs),
    /// before the workers stop.
    pub fn with_farewell(mut self, farewell: Arc<crate::runtime::Farewell>) -> Self {
        self.farewell = Some(farewell);
        self
    }

    /// The node stops: IKE deletes its IKE SAs (an INFORMATIONAL DELETE to
    /// each peer, sent now through worker 0's inject queue). Returns the
    /// DELETEs sent.
    pub fn farewell(&mut self, t: &Tables) -> usize {
        let now = self.mono_ns();
        let Some(ike) = &mut self.ike else {
            return 0;
        };
        let mut out = Vec::new();
        let n = ike.farewell(now, |dst, packet| out.push((dst, packet)));
        for (dst, packet) in out {
            self.send(0, t, Outgoing::Remote { dst, packet }, CONTROL_MPLS_TTL);
        }
        n
    }

    /// Runs IKE too: `driver` negotiates the node's SAs with its peers.
    pub fn with_ike(mut self, driver: IkeDriver) -> Self {
        self.ike = Some(driver);
        self
    }

    /// The IKE driver, if the node has one.
    pub fn ike(&self) -> Option<&IkeDriver> {
        self.ike.as_ref()
    }

    /// Runs `sessions` too; link events go to `events` (the control
    /// thread, which reroutes around a link that went down).
    pub fn with_bfd(
        mut self,
        sessions: BfdSessions,
        flooding: Option<Flooding>,
        events: Option<crossbeam::channel::Sender<LinkNews>>,
    ) -> Self {
        self.bfd = Some(BfdLinks {
            sessions,
            flooding,
            events,
            events_lost: 0,
            published_at: None,
            flood_rx: false,
        });
        self
    }

    /// Nanoseconds on the monotonic clock BFD runs on.
    fn mono_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Runs until `stop`, reading the tables `store` holds.
    pub fn run(mut self, store: &TableStore, stop: &AtomicBool) {
        if self.bfd.is_some() {
            raise_priority();
        }
        // Last words said, and handed to the workers: (said, when).
        let mut said: Option<std::time::Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            let tables = store.load();
            if let Some(f) = self.farewell.clone().filter(|f| f.asked() && !f.is_done()) {
                let at = *said.get_or_insert_with(|| {
                    self.farewell(&tables);
                    std::time::Instant::now()
                });
                // Done once worker 0 took them (or it no longer polls),
                // and no DELETE waits behind an exchange in flight.
                let taken = self
                    .channels
                    .workers
                    .first()
                    .is_none_or(|w| !w.has_inject());
                let waiting = self.ike.as_ref().is_some_and(|i| i.farewell_pending());
                if (taken && !waiting) || at.elapsed() >= crate::runtime::FAREWELL_MAX {
                    f.finish();
                }
            }
            let busy = self.round(&tables, unix_ns());
            drop(tables);
            self.repair_links_down(store);
            self.publish();
            if !busy {
                std::thread::sleep(IDLE_SLEEP);
            }
        }
        // Whoever still waits hears why.
        for w in self.waiting.drain(..) {
            let _ = w.reply.send(OamResult {
                to: w.to,
                hops: Vec::new(),
                error: Some("the node is stopping".into()),
            });
        }
    }

    /// One round at Unix time `now`: punted frames, new probes, finished
    /// probes. True when it found something to do.
    pub fn round(&mut self, t: &Tables, now: u64) -> bool {
        let mut busy = false;
        // Peers' certificates are checked against the round's wall clock.
        let mono = self.mono_ns();
        if let Some(ike) = &mut self.ike {
            ike.set_wall_clock(mono, now / 1_000_000_000);
        }
        for w in 0..self.channels.workers.len() {
            for _ in 0..BUDGET {
                let Some(slot) = self.channels.workers[w].next_punted() else {
                    break;
                };
                busy = true;
                self.counters.received += 1;
                let port = slot.port;
                if slot.error.is_none() && self.ike.is_some() && IkeDriver::is_ike(slot.bytes()) {
                    let now = self.mono_ns();
                    if let Some(ike) = &mut self.ike {
                        ike.receive(now, slot.bytes());
                    }
                    self.channels.workers[w].done(slot);
                    continue;
                }
                if slot.error.is_none() && self.link_frame(port, slot.bytes()) {
                    self.channels.workers[w].done(slot);
                    continue;
                }
                let answer = match slot.error {
                    // A packet the worker dropped at a LAN port: its sender
                    // hears why, from that port's address, as a LAN host
                    // is reached.
                    Some(reason) => self.icmp_error(t, port, reason, slot.bytes()),
                    None => services::handle(slot.bytes(), port, &self.node, now, &mut self.probes),
                };
                self.channels.workers[w].done(slot);
                match answer {
                    Ok(Some(out)) => {
                        self.counters.answered += 1;
                        self.send(w, t, out, CONTROL_MPLS_TTL);
                    }
                    Ok(None) => self.counters.probe_replies += 1,
                    Err(r) => {
                        self.counters.ignored += 1;
                        self.ignored.bump(r);
                        tracing::trace!(port, reason = r.name(), "punted frame not answered");
                    }
                }
            }
        }
        busy |= self.run_bfd(t);
        busy |= self.run_ike(t);
        busy |= self.take_requests(t, now);
        for done in self.probes.lsp.poll(now) {
            busy = true;
            self.finish(done);
        }
        let pings = self.probes.icmp.poll(now);
        for out in pings.send {
            busy = true;
            self.send(0, t, out, CONTROL_MPLS_TTL);
        }
        for done in pings.done {
            busy = true;
            self.finish_ping(done);
        }
        busy
    }

    /// Takes a punted frame that belongs to the node's links (BFD, a
    /// notice datagram); false for any other.
    fn link_frame(&mut self, port: crate::frame::PortId, frame: &[u8]) -> bool {
        let now = self.mono_ns();
        let Some(b) = &mut self.bfd else {
            return false;
        };
        if bfd::is_bfd(frame) {
            if let Err(r) = b.sessions.receive(now, port, frame) {
                tracing::trace!(port, reason = r.name(), "BFD packet refused");
            }
            return true;
        }
        let Some(f) = &mut b.flooding else {
            return false;
        };
        if !bfd::is_udp_to(frame, notice::UDP_PORT) {
            return false;
        }
        match b.sessions.neighbor_datagram(port, frame, notice::UDP_PORT) {
            Ok((from, payload)) => {
                f.receive(unix_ns(), from, payload);
                // Its acks and new notices go out this round.
                b.flood_rx = true;
            }
            Err(r) => tracing::debug!(port, reason = r.name(), "notice datagram refused"),
        }
        true
    }

    /// BFD and flooding timers: packets due go out through worker 0's
    /// inject queue, link news to the control thread. True if anything
    /// was sent.
    fn run_bfd(&mut self, t: &Tables) -> bool {
        let now = self.mono_ns();
        let wall = unix_ns();
        let Some(b) = &mut self.bfd else {
            return false;
        };
        let flood_due = std::mem::take(&mut b.flood_rx)
            || b.flooding
                .as_ref()
                .is_some_and(|f| f.next_timeout_ns() <= wall);
        if b.sessions.next_timeout_ns() > now && !flood_due {
            return false;
        }
        let mut out = Vec::new();
        let events = b.sessions.poll(now, |port, frame| out.push((port, frame)));
        for e in &events {
            tracing::warn!(
                port = %e.port_name,
                peer = %e.peer,
                node = ?e.peer_node,
                diag = meshplane_control::bfd::diag::name(e.diag),
                "link {}",
                if e.up { "up (held up for the hold-down)" } else { "down" }
            );
        }
        if self.armed.is_some() {
            self.down_now
                .extend(events.iter().filter(|e| !e.up).filter_map(|e| e.peer_node));
        }
        let mut news: Vec<LinkNews> = events.iter().cloned().map(LinkNews::Local).collect();
        if let Some(f) = &mut b.flooding {
            let applied = f.round(wall, &mut b.sessions, &events, |port, frame| {
                out.push((port, frame))
            });
            news.extend(applied.into_iter().map(|(ev, at)| LinkNews::Apply(ev, at)));
        }
        if let Some(tx) = &b.events {
            for n in news {
                if tx.try_send(n).is_err() {
                    b.events_lost += 1;
                }
            }
        }
        let busy = !out.is_empty();
        for (port, frame) in out {
            self.send(0, t, Outgoing::Frame { port, frame }, CONTROL_MPLS_TTL);
        }
        busy
    }

    /// IKE's timers, rekeys and SA changes; its datagrams go out through
    /// worker 0's inject queue, labelled toward their peer. True if
    /// anything was done.
    fn run_ike(&mut self, t: &Tables) -> bool {
        let now = self.mono_ns();
        let Some(ike) = &mut self.ike else {
            return false;
        };
        let mut out = Vec::new();
        let busy = ike.poll(now, t, |dst, packet| out.push((dst, packet)));
        for (dst, packet) in out {
            self.send(0, t, Outgoing::Remote { dst, packet }, CONTROL_MPLS_TTL);
        }
        busy
    }

    /// The ICMP error for `packet`, dropped for `reason` on `port`, as a
    /// frame to its sender on the LAN.
    fn icmp_error(
        &mut self,
        t: &Tables,
        port: crate::frame::PortId,
        reason: crate::drop_reason::DropReason,
        packet: &[u8],
    ) -> Result<Option<Outgoing>, services::Ignored> {
        use std::net::IpAddr;
        let own = self.node.port(port);
        let (err, dst) = match packet.first().map(|b| b >> 4) {
            Some(6) => {
                let from = own
                    .and_then(|p| p.address6)
                    .map(|(a, _)| a)
                    .ok_or(services::Ignored::NoAddress)?;
                let err =
                    services::icmp_error::answer_v6(packet, reason, from, t.tunnel_mtu_to(packet))?;
                let dst: [u8; 16] = err
                    .get(24..40)
                    .and_then(|d| d.try_into().ok())
                    .ok_or(services::Ignored::Truncated)?;
                (err, IpAddr::from(dst))
            }
            _ => {
                let from = own
                    .and_then(|p| p.address)
                    .map(|(a, _)| a)
                    .ok_or(services::Ignored::NoAddress)?;
                let err =
                    services::icmp_error::answer(packet, reason, from, t.tunnel_mtu_to(packet))?;
                let dst = std::net::Ipv4Addr::new(err[16], err[17], err[18], err[19]);
                (err, IpAddr::V4(dst))
            }
        };
        match super::inject::frame_to_lan(t, dst, &err) {
            Some((port, frame)) => Ok(Some(Outgoing::Frame { port, frame })),
            None => Err(services::Ignored::NotForUs),
        }
    }

    /// Sends `out` through worker `w`'s inject queue.
    fn send(&mut self, w: usize, t: &Tables, out: Outgoing, mpls_ttl: u8) {
        let (port, frame) = match out {
            Outgoing::Frame { port, frame } => (port, frame),
            Outgoing::Remote { dst, packet } => match frame_to_node(t, dst, mpls_ttl, &packet) {
                Ok(pf) => pf,
                Err(e) => {
                    self.counters.no_path += 1;
                    tracing::debug!("not sent: {e}");
                    return;
                }
            },
        };
        let Some(ch) = self
            .channels
            .workers
            .get(w)
            .or(self.channels.workers.first())
        else {
            return;
        };
        if ch.inject(port, &frame).is_err() {
            self.counters.inject_full += 1;
        }
    }

    /// Starts the probes the management socket asked for.
    fn take_requests(&mut self, t: &Tables, now: u64) -> bool {
        let Some(rx) = &self.oam else {
            return false;
        };
        let mut reqs = Vec::new();
        while let Ok(r) = rx.try_recv() {
            reqs.push(r);
            if reqs.len() >= MAX_WAITING {
                break;
            }
        }
        let busy = !reqs.is_empty();
        for r in reqs {
            self.start(t, now, r);
        }
        busy
    }

    fn start(&mut self, t: &Tables, now: u64, r: OamRequest) {
        let fail = |r: OamRequest, msg: String| {
            let _ = r.reply.send(OamResult {
                to: r.to.clone(),
                hops: Vec::new(),
                error: Some(msg),
            });
        };
        if self.waiting.len() >= MAX_WAITING {
            return fail(r, format!("busy: {MAX_WAITING} probes are running"));
        }
        let target = match self.book.resolve(&r.to) {
            Ok(a) => a,
            Err(e) => return fail(r, e),
        };
        if r.kind == OamKind::IcmpPing && self.node.owns(target) {
            let msg = format!("{} ({target}) is this node's own address", r.to);
            return fail(r, msg);
        }
        if !t.node_routes.contains_key(&target) {
            let msg = format!(
                "no label route to {} ({target}) in this node's tables",
                r.to
            );
            return fail(r, msg);
        }
        let count = u16::try_from(r.count).unwrap_or(u16::MAX);
        let probe = match r.kind {
            OamKind::Ping | OamKind::Trace => {
                let started = if r.kind == OamKind::Ping {
                    self.probes.lsp.start_ping(now, target, count, r.timeout)
                } else {
                    self.probes
                        .lsp
                        .start_trace(now, target, r.max_hops, r.timeout)
                };
                let (id, echoes) = match started {
                    Ok(s) => s,
                    Err(e) => return fail(r, e.to_string()),
                };
                for e in echoes {
                    let out = Outgoing::Remote {
                        dst: target,
                        packet: e.packet,
                    };
                    self.send(0, t, out, e.mpls_ttl);
                }
                Running::Lsp(id)
            }
            OamKind::IcmpPing => {
                let Some(source) = self.node.node_address() else {
                    return fail(r, "this node has no address to ping from".into());
                };
                let started = self
                    .probes
                    .icmp
                    .start(now, source, target, count, r.size, r.interval, r.timeout);
                let (id, first) = match started {
                    Ok(s) => s,
                    Err(e) => return fail(r, e.to_string()),
                };
                for out in first {
                    self.send(0, t, out, CONTROL_MPLS_TTL);
                }
                Running::Icmp(id)
            }
        };
        self.waiting.push(Waiting {
            probe,
            to: r.to,
            reply: r.reply,
        });
    }

    /// The operator waiting for `probe`, if any.
    fn waiter(&mut self, probe: Running) -> Option<Waiting> {
        let i = self.waiting.iter().position(|w| w.probe == probe)?;
        Some(self.waiting.swap_remove(i))
    }

    /// Answers the operator waiting for `done` (an LSP probe).
    fn finish(&mut self, done: ProbeDone) {
        let Some(w) = self.waiter(Running::Lsp(done.id)) else {
            return;
        };
        let hops = done
            .hops
            .iter()
            .map(|h| OamHop {
                ttl: h.ttl,
                seq: None,
                bytes: None,
                address: h.address,
                node: h
                    .node_id
                    .and_then(|id| self.book.name_of_id(id))
                    .or_else(|| h.address.and_then(|a| self.book.name_of(a))),
                rtt_us: h.rtt_ns.map(|ns| ns as f64 / 1000.0),
                return_code: h.return_code,
                meaning: match (h.return_code, h.address) {
                    (Some(3), _) => "egress".into(),
                    (Some(8), _) => "label switched".into(),
                    (Some(c), _) => format!("return code {c}"),
                    (None, _) => "no answer".into(),
                },
            })
            .collect();
        let error = (!done.reached_egress()).then(|| {
            if done.timed_out {
                "the egress did not answer in time".to_string()
            } else {
                "the egress did not answer".to_string()
            }
        });
        let _ = w.reply.send(OamResult {
            to: w.to,
            hops,
            error,
        });
    }

    /// Answers the operator waiting for `done` (an ICMP ping): one hop
    /// per echo sent; an error if none was answered.
    fn finish_ping(&mut self, done: PingDone) {
        let Some(w) = self.waiter(Running::Icmp(done.id)) else {
            return;
        };
        let hops = done
            .echoes
            .iter()
            .map(|e| OamHop {
                ttl: ping::REQUEST_TTL,
                seq: Some(u32::from(e.seq)),
                bytes: e.bytes.map(u32::from),
                address: e.address,
                node: e.address.and_then(|a| self.book.name_of(a)),
                rtt_us: e.rtt_ns.map(|ns| ns as f64 / 1000.0),
                return_code: None,
                meaning: if e.rtt_ns.is_some() {
                    "echo reply"
                } else {
                    "no answer"
                }
                .into(),
            })
            .collect();
        let error = (done.received() == 0).then(|| format!("no echo to {} was answered", w.to));
        let _ = w.reply.send(OamResult {
            to: w.to,
            hops,
            error,
        });
    }

    /// What the loop has counted so far (what it publishes to
    /// [`ServiceStats`] after each round it runs itself).
    pub fn counters(&self) -> (ServiceCounters, IgnoredCounters) {
        (self.counters, self.ignored)
    }

    fn publish(&mut self) {
        if let Ok(mut g) = self.stats.inner.try_lock() {
            *g = (self.counters, self.ignored);
        }
        let now = self.mono_ns();
        if let Some(ike) = &self.ike {
            if self
                .ike_published_at
                .is_none_or(|at| now >= at + BFD_PUBLISH_NS)
            {
                if let Ok(mut g) = self.stats.ike.try_lock() {
                    *g = Some(ike.view());
                    self.ike_published_at = Some(now);
                }
            }
        }
        if let Some(b) = &mut self.bfd {
            if b.published_at.is_some_and(|at| now < at + BFD_PUBLISH_NS) {
                return;
            }
            if let Ok(mut g) = self.stats.bfd.try_lock() {
                *g = BfdReply {
                    sessions: b.sessions.view(),
                    counters: b.sessions.counters(),
                    events_lost: b.events_lost,
                };
                b.published_at = Some(now);
            }
            if let Ok(mut g) = self.stats.flood.try_lock() {
                *g = b.flooding.as_ref().map(Flooding::view);
            }
        }
    }
}
