//! The node's side of IKEv2: the sans-IO endpoint of
//! `meshplane_control::ike` driven from the service thread, and the SAs it
//! negotiates handed to whoever publishes the node's tables.
//!
//! IKE datagrams (UDP 500 and 4500 to the gateway's tunnel address) arrive
//! punted: under the node's own label, as data to the gateway does, or
//! unlabelled. What the endpoint sends goes out as an IPv4/UDP packet from
//! the tunnel address toward the peer's, labelled as data to that peer is
//! ([`super::inject::frame_to_node`]).
//!
//! The negotiated Child SAs become a [`NegotiatedSas`] snapshot in an
//! [`IkeShare`]; the node's one publisher (the static runtime's reload
//! thread, or a test's loop) merges it into every publication through the
//! same build as static SAs ([`NegotiatedSas::apply`]), so an SA's counts
//! and replay window live on across publications.
//!
//! Make-before-break:
//!
//! * a new Child SA's inbound SA is in the snapshot at once, and the
//!   datagrams of the exchange that made it (the response that lets the
//!   peer send on it, or our DELETE of the SA it replaces) are held until
//!   the tables the service thread reads hold that inbound SA;
//! * the outbound switch is one publication: the peer's FECs name the new
//!   outbound SA instead of the old one. The end whose request made the
//!   SA switches when it is up (the peer installed its inbound before
//!   answering); the other end when it sees the peer use the SA (an
//!   authenticated packet on its inbound SA: the peer installed both
//!   directions together), or when the SA it replaces is deleted (the
//!   asking end installed its inbound before sending that DELETE), or,
//!   for a first Child SA, after `[ike] drain_ms`;
//! * the replaced inbound SA stays for `[ike] drain_ms` after that.
//!
//! A Child SA deleted otherwise drains the same way; one whose IKE SA
//! ended is removed at once.
//! The soft lifetime of a negotiated SA (either direction) asks the
//! endpoint for a rekey ([`Ike::rekey_child`]); the hard one still expires
//! the SA in the data path (`sa_expired`) when no rekey came in time.

use crate::config::ike_credentials::ike_identity as identity;
use crate::config::{AeadAlg, IkeConfig, NodeConfig, SaConfig, SaDir};
use crate::packet::ipv4::{self, Ipv4Packet};
use crate::packet::punted::PuntedFrame;
use crate::packet::udp::{self, UdpPacket};
use crate::tables::Tables;
use meshplane_control::ike::{
    AesGcm, Auth, ChildReason, ChildSa, Config, Dropped, Event, Ike, Lifetime, Offer, PeerConfig,
    Rng, SaId, TrafficSelector, Transmit,
};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The IKE port.
pub const IKE_PORT: u16 = 500;
/// The NAT-T port.
pub const NATT_PORT: u16 = 4500;
/// TTL of the IKE packets the node sends.
const IKE_TTL: u8 = 64;
/// How long datagrams wait for their inbound SA to be published before
/// they go anyway (a publisher that is stuck must not stop IKE).
const HOLD_MAX_NS: u64 = 1_000_000_000;
/// An initiator starts its IKE SA again this long after it ended.
const RETRY_NS: u64 = 1_000_000_000;
/// A rekey that failed is asked for again after this long.
const REKEY_RETRY_NS: u64 = 5_000_000_000;

/// The SAs IKE has negotiated, as the publisher merges them into the
/// node's configuration.
#[derive(Clone, Debug, Default)]
pub struct NegotiatedSas {
    /// Inbound SAs (current, and replaced ones draining) and the outbound
    /// SA in use toward each peer.
    pub sas: Vec<SaConfig>,
    /// Per peer tunnel address: the SPI of the outbound SA its FECs use.
    pub out: HashMap<Ipv4Addr, u32>,
}

impl NegotiatedSas {
    /// `cfg` with these SAs: appended to its `[[sa]]`, and each FEC that
    /// names a peer given that peer's current outbound SA (none yet: the
    /// FEC stays pending).
    pub fn apply(&self, cfg: &NodeConfig) -> NodeConfig {
        let mut c = cfg.clone();
        // A negotiated SPI that a static SA of the same direction has
        // (random SPIs; unlikely) is left out rather than replace it.
        for s in &self.sas {
            if !c.sa.iter().any(|o| o.spi == s.spi && o.dir == s.dir) {
                c.sa.push(s.clone());
            }
        }
        for f in &mut c.fec {
            if let Some(p) = f.peer {
                f.sa = self.out.get(&p).copied().unwrap_or(0);
            }
        }
        c
    }
}

/// Where the driver leaves its SA set for the publisher.
#[derive(Debug, Default)]
pub struct IkeShare {
    current: Mutex<Arc<NegotiatedSas>>,
    generation: AtomicU64,
}

impl IkeShare {
    /// Replaces the set.
    pub fn set(&self, s: NegotiatedSas) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(s);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The set.
    pub fn get(&self) -> Arc<NegotiatedSas> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes so far (starts at 0).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The set, if it changed since `seen` (which is then updated).
    pub fn take_newer(&self, seen: &mut u64) -> Option<Arc<NegotiatedSas>> {
        let g = self.generation();
        (g != *seen).then(|| {
            *seen = g;
            self.get()
        })
    }
}

/// How often a publisher looks for a change in IKE's SAs: the datagrams
/// of an exchange wait for their inbound SA's publication.
pub const PUBLISH_POLL: std::time::Duration = std::time::Duration::from_millis(2);

/// A publisher's side of an [`IkeShare`]: what the node's one publisher
/// (the static runtime's reloader, or the control agent) merges into
/// every configuration it builds tables from, and whether the set changed
/// since it last did.
#[derive(Debug)]
pub struct IkeMerge {
    share: Arc<IkeShare>,
    seen: u64,
}

impl IkeMerge {
    /// Merges the sets `share` holds; the first publication takes the
    /// set in it then.
    pub fn new(share: Arc<IkeShare>) -> IkeMerge {
        IkeMerge {
            share,
            seen: u64::MAX,
        }
    }

    /// Whether the set changed since the last [`IkeMerge::apply`].
    pub fn changed(&self) -> bool {
        self.share.generation() != self.seen
    }

    /// `cfg` with the current set ([`NegotiatedSas::apply`]), which is
    /// then the one seen.
    pub fn apply(&mut self, cfg: &NodeConfig) -> NodeConfig {
        self.seen = self.share.generation();
        self.share.get().apply(cfg)
    }

    /// `cfg` with the current set, which is not taken as seen (tables
    /// built ahead, not published now).
    pub fn peek(&self, cfg: &NodeConfig) -> NodeConfig {
        self.share.get().apply(cfg)
    }
}

/// Why the driver refused a punted datagram before the endpoint saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not a whole IPv4/UDP packet.
    Malformed,
    /// A wrong UDP checksum.
    BadChecksum,
    /// Not to the gateway's tunnel address.
    NotOurAddress,
    /// A fragment.
    Fragment,
}

impl Refused {
    /// Name for counters.
    pub fn name(self) -> &'static str {
        match self {
            Refused::Malformed => "malformed",
            Refused::BadChecksum => "bad_checksum",
            Refused::NotOurAddress => "not_our_address",
            Refused::Fragment => "fragment",
        }
    }
}

/// What the driver counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IkeCounters {
    /// IKE datagrams taken from the punt path.
    pub received: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams that found no label route to their peer.
    pub no_path: u64,
    /// Refusals, by reason (the driver's and the endpoint's).
    pub refused: BTreeMap<String, u64>,
    /// Child SAs installed (rekeys included).
    pub child_up: u64,
    /// Rekeys asked for by a soft lifetime.
    pub rekeys_asked: u64,
    /// Outbound switches to a new Child SA.
    pub switches: u64,
    /// Datagrams released before their inbound SA was seen published.
    pub hold_timeouts: u64,
    /// IKE SAs deleted because the node stopped.
    #[serde(default)]
    pub farewells: u64,
}

impl IkeCounters {
    /// Refusals for `reason`.
    pub fn refused(&self, reason: &str) -> u64 {
        self.refused.get(reason).copied().unwrap_or(0)
    }

    /// Every refusal.
    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }
}

/// One Child SA the node holds.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ChildView {
    /// Peer tunnel address.
    pub peer: Ipv4Addr,
    /// Inbound SPI.
    pub spi_in: u32,
    /// Outbound SPI.
    pub spi_out: u32,
    /// `current` (its outbound SA carries the peer's FECs), `new` (made,
    /// not switched to yet), `draining` (replaced: inbound only, until
    /// its drain window ends).
    pub state: String,
    /// The inbound SPI it replaced.
    pub rekey_of: Option<u32>,
    /// What is left of its soft limits (its outbound SA's when current,
    /// else its inbound SA's; [`IkeView::with_lifetimes`]).
    #[serde(default)]
    pub soft_left: Option<crate::sa::Limits>,
    /// What is left of its hard limits.
    #[serde(default)]
    pub hard_left: Option<crate::sa::Limits>,
}

/// `show ike`: the IKE SAs, the Child SAs and the counters.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct IkeView {
    /// IKE SAs: (peer, state, initiator SPI, responder SPI).
    pub ike_sas: Vec<(String, String, u64, u64)>,
    /// Child SAs.
    pub children: Vec<ChildView>,
    /// Counters.
    pub counters: IkeCounters,
}

impl IkeView {
    /// The view with each Child SA's lifetime left at `now`, read from
    /// the SAs in `t`.
    pub fn with_lifetimes(mut self, t: &Tables, now: std::time::Instant) -> IkeView {
        for c in &mut self.children {
            let out = t.sa_out.iter().find(|s| s.spi == c.spi_out);
            let life = match (c.state.as_str(), out) {
                ("current", Some(o)) => Some(&o.life),
                _ => t.sa_in.get(&c.spi_in).map(|i| &i.sa.life),
            };
            if let Some(l) = life {
                let (soft, hard) = l.left(now);
                c.soft_left = Some(soft);
                c.hard_left = Some(hard);
            }
        }
        self
    }
}

#[derive(Clone, Debug)]
struct Child {
    ike: SaId,
    peer: Ipv4Addr,
    inbound: SaConfig,
    outbound: SaConfig,
    rekey_of: Option<u32>,
    /// Replaced: removed at this time.
    drain_until: Option<u64>,
    /// Order of installation.
    seq: u64,
    /// When it was installed.
    up_at: u64,
}

/// A datagram waiting for an inbound SA to be published.
struct Held {
    tx: Transmit,
    wait_spi: Option<u32>,
    since: u64,
}

/// The node's IKE: endpoint, SAs and counters.
pub struct IkeDriver {
    ike: Ike<Box<dyn Rng + Send>>,
    cfg: IkeConfig,
    share: Arc<IkeShare>,
    children: BTreeMap<u32, Child>,
    /// Per peer: the inbound SPI of the Child SA whose outbound is used.
    current: HashMap<Ipv4Addr, u32>,
    /// Per peer: its IKE SA (established or being made).
    ike_sas: HashMap<Ipv4Addr, SaId>,
    retry_at: HashMap<Ipv4Addr, u64>,
    /// Inbound SPIs whose rekey we asked for, and when.
    asked: HashMap<u32, u64>,
    held: std::collections::VecDeque<Held>,
    counters: IkeCounters,
    ident: u16,
    dirty: bool,
    /// Child SAs installed so far.
    installed: u64,
    /// The datagram being handled is a response (to our request).
    in_response: bool,
    /// When each IKE SA is next checked for liveness.
    liveness_at: HashMap<SaId, u64>,
    /// When the IKE SAs are next looked at for liveness.
    liveness_scan_at: u64,
    /// The node is stopping ([`IkeDriver::farewell`]): no new IKE SA.
    stopping: bool,
}

fn dedup<T: PartialEq + Copy>(it: impl Iterator<Item = T>) -> Vec<T> {
    let mut v = Vec::new();
    for x in it {
        if !v.contains(&x) {
            v.push(x);
        }
    }
    v
}

/// The endpoint's lifetime of a Child SA from the data plane's.
fn ike_lifetime(l: &crate::sa::Lifetime) -> Lifetime {
    Lifetime {
        soft_secs: l.soft.seconds.unwrap_or(0),
        hard_secs: l.hard.seconds.unwrap_or(0),
        soft_bytes: l.soft.bytes.unwrap_or(0),
        hard_bytes: l.hard.bytes.unwrap_or(0),
        soft_packets: l.soft.packets.unwrap_or(0),
        hard_packets: l.hard.packets.unwrap_or(0),
    }
}

/// The data plane's lifetime from the endpoint's (0: none).
fn sa_lifetime(l: &Lifetime) -> crate::sa::Lifetime {
    let some = |v: u64| (v > 0).then_some(v);
    crate::sa::Lifetime {
        soft: crate::sa::Limits {
            packets: some(l.soft_packets),
            bytes: some(l.soft_bytes),
            seconds: some(l.soft_secs),
        },
        hard: crate::sa::Limits {
            packets: some(l.hard_packets),
            bytes: some(l.hard_bytes),
            seconds: some(l.hard_secs),
        },
    }
}

/// The endpoint's configuration for `node`'s `[ike]`, authenticating
/// with `auth` (its PSK or its certificate, [`crate::config::ike_credentials::read_auth`]).
pub fn endpoint_config(node: &NodeConfig, ike: &IkeConfig, auth: &Auth) -> Config {
    let ike_offer = Offer {
        encr: dedup(ike.proposals.iter().map(|p| p.encr)),
        prf: dedup(ike.proposals.iter().map(|p| p.prf)),
        dh: dedup(ike.proposals.iter().map(|p| p.dh)),
        esn: vec![],
    };
    let child_offer = Offer {
        encr: dedup(ike.esp_proposals.iter().map(|p| p.encr)),
        prf: vec![],
        dh: dedup(ike.esp_proposals.iter().filter_map(|p| p.dh)),
        esn: dedup(ike.esp_proposals.iter().map(|p| p.esn)),
    };
    let ts = |prefixes: Vec<crate::config::Prefix>| -> Vec<TrafficSelector> {
        if prefixes.is_empty() {
            return vec![TrafficSelector::prefix(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                0,
            )];
        }
        prefixes
            .iter()
            .map(|p| TrafficSelector::prefix(p.addr, p.len))
            .collect()
    };
    let local_ts = ts(node.deliver.iter().map(|d| d.prefix).collect());
    let peers = ike
        .peers
        .iter()
        .map(|p| PeerConfig {
            name: p.address.to_string(),
            local: SocketAddr::new(IpAddr::V4(ike.address), IKE_PORT),
            remote: SocketAddr::new(IpAddr::V4(p.address), IKE_PORT),
            local_id: identity(&ike.identity),
            remote_id: identity(&p.identity),
            auth: auth.clone(),
            ike: ike_offer.clone(),
            child: child_offer.clone(),
            local_ts: local_ts.clone(),
            remote_ts: ts(node
                .fec
                .iter()
                .filter(|f| f.peer == Some(p.address))
                .map(|f| f.prefix)
                .collect()),
            lifetime: ike_lifetime(&ike.lifetime),
            force_encap: p.udp_encap,
        })
        .collect();
    Config {
        peers,
        retransmit_initial_ns: u64::from(ike.retransmit_ms) * 1_000_000,
        retransmit_tries: ike.retransmit_tries,
        ..Config::default()
    }
}

impl IkeDriver {
    /// A driver for `node` (which has `[ike]`), authenticating with `auth`,
    /// drawing randomness from `rng`, leaving its SAs in `share`.
    pub fn new(
        node: &NodeConfig,
        auth: &Auth,
        rng: Box<dyn Rng + Send>,
        share: Arc<IkeShare>,
    ) -> Option<IkeDriver> {
        let cfg = node.ike.clone()?;
        let ike = Ike::new(endpoint_config(node, &cfg, auth), rng);
        Some(IkeDriver {
            ike,
            cfg,
            share,
            children: BTreeMap::new(),
            current: HashMap::new(),
            ike_sas: HashMap::new(),
            retry_at: HashMap::new(),
            asked: HashMap::new(),
            held: Default::default(),
            counters: IkeCounters::default(),
            ident: 0,
            dirty: false,
            installed: 0,
            in_response: false,
            liveness_at: HashMap::new(),
            liveness_scan_at: 0,
            stopping: false,
        })
    }

    /// Tells the endpoint the wall-clock time (Unix seconds) at `now_ns`,
    /// which peers' certificates are checked against.
    pub fn set_wall_clock(&mut self, now_ns: u64, unix_secs: u64) {
        self.ike.set_wall_clock(now_ns, unix_secs);
    }

    /// The endpoint (for tests and `show`).
    pub fn endpoint(&self) -> &Ike<Box<dyn Rng + Send>> {
        &self.ike
    }

    /// The counters, the endpoint's refusals by reason included.
    pub fn counters(&self) -> IkeCounters {
        let mut c = self.counters.clone();
        let e = self.ike.counters();
        for d in Dropped::ALL {
            let n = e.dropped(d);
            if n > 0 {
                *c.refused.entry(d.name().to_string()).or_default() += n;
            }
        }
        c
    }

    /// What `show ike` shows.
    pub fn view(&self) -> IkeView {
        IkeView {
            ike_sas: self
                .ike
                .sas()
                .into_iter()
                .map(|s| (s.peer, s.state.to_string(), s.spi_i, s.spi_r))
                .collect(),
            children: self
                .children
                .iter()
                .map(|(&spi_in, c)| ChildView {
                    peer: c.peer,
                    spi_in,
                    spi_out: c.outbound.spi,
                    state: if c.drain_until.is_some() {
                        "draining"
                    } else if self.current.get(&c.peer) == Some(&spi_in) {
                        "current"
                    } else {
                        "new"
                    }
                    .to_string(),
                    rekey_of: c.rekey_of,
                    soft_left: None,
                    hard_left: None,
                })
                .collect(),
            counters: self.counters(),
        }
    }

    fn refuse(&mut self, r: Refused) {
        *self
            .counters
            .refused
            .entry(r.name().to_string())
            .or_default() += 1;
    }

    /// True for a punted frame that is IKE: IPv4 UDP to port 500 or 4500.
    pub fn is_ike(frame: &[u8]) -> bool {
        super::bfd::is_udp_to(frame, IKE_PORT) || super::bfd::is_udp_to(frame, NATT_PORT)
    }

    /// Takes one punted IKE frame at `now_ns` (monotonic).
    pub fn receive(&mut self, now_ns: u64, frame: &[u8]) {
        self.counters.received += 1;
        let parsed = (|| {
            let p = PuntedFrame::parse(frame).map_err(|_| Refused::Malformed)?;
            let ip = p.ipv4().ok_or(Refused::Malformed)?;
            if ip.is_fragment() {
                return Err(Refused::Fragment);
            }
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            let u = UdpPacket::new_checked(ip.payload()).map_err(|_| Refused::Malformed)?;
            if u.checksum() != 0 && !u.verify_checksum_v4(src, dst) {
                return Err(Refused::BadChecksum);
            }
            if dst != self.cfg.address {
                return Err(Refused::NotOurAddress);
            }
            Ok((
                SocketAddr::new(IpAddr::V4(src), u.src_port()),
                SocketAddr::new(IpAddr::V4(dst), u.dst_port()),
                u.payload().to_vec(),
            ))
        })();
        match parsed {
            Ok((src, dst, payload)) => {
                // The R flag of the IKE header (after the non-ESP marker
                // on the NAT-T port).
                let at = if dst.port() == NATT_PORT { 4 + 19 } else { 19 };
                self.in_response = payload.get(at).is_some_and(|f| f & 0x20 != 0);
                if let Err(d) = self.ike.on_datagram(now_ns, src, dst, &payload) {
                    tracing::debug!(%src, reason = d.name(), "IKE datagram refused");
                }
                self.after_call(now_ns);
                self.in_response = false;
            }
            Err(r) => {
                tracing::debug!(reason = r.name(), "IKE frame refused");
                self.refuse(r);
            }
        }
    }

    /// Timers, initiations, rekeys asked for by soft lifetimes, drains;
    /// then the datagrams that may leave, as IPv4 packets to their peer
    /// through `send`. `t` is what the workers use now. True if anything
    /// was done.
    pub fn poll(
        &mut self,
        now_ns: u64,
        t: &Tables,
        mut send: impl FnMut(Ipv4Addr, Vec<u8>),
    ) -> bool {
        let mut busy = false;
        if self.ike.next_timeout().is_some_and(|d| d <= now_ns) {
            self.ike.on_timeout(now_ns);
            self.after_call(now_ns);
            busy = true;
        }
        // Initiators keep an IKE SA up.
        for p in self.cfg.peers.clone() {
            if !p.initiate || self.stopping || self.ike_sas.contains_key(&p.address) {
                continue;
            }
            if self.retry_at.get(&p.address).is_some_and(|&at| now_ns < at) {
                continue;
            }
            match self.ike.initiate(now_ns, &p.address.to_string()) {
                Ok(sa) => {
                    tracing::info!(peer = %p.address, %sa, "IKE: initiating");
                    self.ike_sas.insert(p.address, sa);
                }
                Err(e) => {
                    tracing::warn!(peer = %p.address, "IKE: cannot initiate: {e:?}");
                    self.retry_at.insert(p.address, now_ns + RETRY_NS);
                }
            }
            self.after_call(now_ns);
            busy = true;
        }
        busy |= self.rekey_by_lifetime(now_ns, t);
        busy |= self.check_liveness(now_ns);
        busy |= self.switch_when_used(now_ns, t);
        // Drain windows that ended.
        let ended: Vec<u32> = self
            .children
            .iter()
            .filter(|(_, c)| c.drain_until.is_some_and(|u| u <= now_ns))
            .map(|(&s, _)| s)
            .collect();
        for s in ended {
            tracing::info!(spi_in = s, "IKE: replaced inbound SA drained, removed");
            self.children.remove(&s);
            self.dirty = true;
        }
        if std::mem::take(&mut self.dirty) {
            self.share.set(self.snapshot());
            busy = true;
        }
        // Datagrams whose inbound SA the workers have (or that waited long
        // enough), in order.
        while let Some(h) = self.held.front() {
            let ready = h.wait_spi.is_none_or(|s| t.sa_in.contains_key(&s));
            let late = now_ns.saturating_sub(h.since) >= HOLD_MAX_NS;
            if !ready && !late {
                break;
            }
            if !ready {
                self.counters.hold_timeouts += 1;
                tracing::warn!(
                    spi = h.wait_spi,
                    "IKE: inbound SA not published in time; sending anyway"
                );
            }
            let Some(h) = self.held.pop_front() else {
                break;
            };
            busy = true;
            match self.packet(&h.tx) {
                Some((dst, pkt)) => {
                    self.counters.sent += 1;
                    send(dst, pkt);
                }
                None => self.refuse(Refused::Malformed),
            }
        }
        busy
    }

    /// The endpoint's established IKE SAs.
    fn established(&self) -> Vec<SaId> {
        self.ike
            .sas()
            .into_iter()
            .filter(|s| s.state == "established")
            .map(|s| s.sa)
            .collect()
    }

    /// After [`IkeDriver::farewell`]: a DELETE still waits, behind an
    /// exchange in flight or to be sent.
    pub fn farewell_pending(&self) -> bool {
        self.stopping && (!self.held.is_empty() || self.ike.sas().iter().any(|s| s.ops_queued > 0))
    }

    /// The node stops: an INFORMATIONAL DELETE of each established IKE
    /// SA (and with it its Child SAs), so that each peer removes its SAs
    /// at once instead of noticing by liveness checks. Every datagram
    /// waiting goes out now through `send`; returns the IKE SAs deleted.
    /// The DELETE of an IKE SA with an exchange in flight follows its
    /// answer ([`IkeDriver::farewell_pending`] until then). No IKE SA is
    /// initiated after it.
    pub fn farewell(&mut self, now_ns: u64, mut send: impl FnMut(Ipv4Addr, Vec<u8>)) -> usize {
        self.stopping = true;
        let up = self.established();
        let mut deletes = 0;
        for sa in up {
            if self.ike.delete_ike(now_ns, sa).is_ok() {
                deletes += 1;
                self.after_call(now_ns);
            }
        }
        while let Some(h) = self.held.pop_front() {
            match self.packet(&h.tx) {
                Some((dst, pkt)) => {
                    self.counters.sent += 1;
                    send(dst, pkt);
                }
                None => self.refuse(Refused::Malformed),
            }
        }
        self.counters.farewells += deletes as u64;
        tracing::info!(deletes, "IKE: the node stops; its IKE SAs deleted");
        deletes
    }

    /// When [`IkeDriver::poll`] has something to do by time.
    pub fn next_timeout(&self) -> Option<u64> {
        let drains = self.children.values().filter_map(|c| c.drain_until).min();
        [self.ike.next_timeout(), drains]
            .into_iter()
            .flatten()
            .min()
    }

    /// A datagram as an IPv4/UDP packet to its peer.
    fn packet(&mut self, tx: &Transmit) -> Option<(Ipv4Addr, Vec<u8>)> {
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (tx.src.ip(), tx.dst.ip()) else {
            return None;
        };
        let mut u = vec![0u8; udp::HEADER_LEN + tx.bytes.len()];
        udp::write_header(&mut u, tx.src.port(), tx.dst.port(), tx.bytes.len()).ok()?;
        u.get_mut(udp::HEADER_LEN..)?.copy_from_slice(&tx.bytes);
        UdpPacket::new_unchecked(&mut u[..]).fill_checksum_v4(src, dst);
        let mut v = vec![0u8; ipv4::MIN_HEADER_LEN + u.len()];
        self.ident = self.ident.wrapping_add(1);
        ipv4::write_header(
            &mut v,
            src,
            dst,
            ipv4::protocol::UDP,
            u.len(),
            IKE_TTL,
            self.ident,
            0,
        )
        .ok()?;
        v[ipv4::MIN_HEADER_LEN..].copy_from_slice(&u);
        Ipv4Packet::new_unchecked(&mut v[..]).fill_checksum();
        Some((dst, v))
    }

    /// Switches to a Child SA the peer asked for once the peer is seen
    /// using it (its inbound SA authenticated a packet: the peer installed
    /// both directions together), or, for a first Child SA, once
    /// `drain_ms` has passed. Only forward: to an SA newer than the one
    /// in use, and not one that something replaces.
    fn switch_when_used(&mut self, now_ns: u64, t: &Tables) -> bool {
        let drain = u64::from(self.cfg.drain_ms) * 1_000_000;
        let mut to = Vec::new();
        for (&s, c) in &self.children {
            let cur = self.current.get(&c.peer).copied();
            if c.drain_until.is_some() || cur == Some(s) {
                continue;
            }
            if cur
                .and_then(|k| self.children.get(&k))
                .is_some_and(|k| k.seq > c.seq)
            {
                continue;
            }
            if self
                .children
                .values()
                .any(|o| o.rekey_of == Some(s) && o.drain_until.is_none())
            {
                continue;
            }
            let used = t.sa_in.get(&s).is_some_and(|i| i.sa.life.packets() > 0);
            let waited = c.rekey_of.is_none() && now_ns >= c.up_at + drain;
            if used || waited {
                to.push((c.peer, s));
            }
        }
        let busy = !to.is_empty();
        for (p, s) in to {
            self.switch(p, s);
            self.dirty = true;
        }
        busy
    }

    /// Sends a liveness check on each established IKE SA whose interval
    /// has passed (a peer that does not answer ends its IKE SA).
    fn check_liveness(&mut self, now_ns: u64) -> bool {
        if self.cfg.liveness_ms == 0 {
            return false;
        }
        let every = u64::from(self.cfg.liveness_ms) * 1_000_000;
        if now_ns < self.liveness_scan_at {
            return false;
        }
        self.liveness_scan_at = now_ns + every.min(100_000_000);
        let up = self.established();
        self.liveness_at.retain(|sa, _| up.contains(sa));
        let mut busy = false;
        for sa in up {
            let at = *self.liveness_at.entry(sa).or_insert(now_ns + every);
            if now_ns < at {
                continue;
            }
            self.liveness_at.insert(sa, now_ns + every);
            if self.ike.check_liveness(now_ns, sa).is_ok() {
                self.after_call(now_ns);
                busy = true;
            }
        }
        busy
    }

    /// Asks for a rekey of each current Child SA one of whose SAs reached
    /// its soft lifetime.
    fn rekey_by_lifetime(&mut self, now_ns: u64, t: &Tables) -> bool {
        let mut want = Vec::new();
        for (&spi_in, c) in &self.children {
            if c.drain_until.is_some() || self.children.values().any(|o| o.rekey_of == Some(spi_in))
            {
                continue;
            }
            if self
                .asked
                .get(&spi_in)
                .is_some_and(|&at| now_ns < at + REKEY_RETRY_NS)
            {
                continue;
            }
            let out_soft = t
                .sa_out
                .iter()
                .any(|s| s.spi == c.outbound.spi && s.life.rekey_requested());
            let in_soft = t
                .sa_in
                .get(&spi_in)
                .is_some_and(|s| s.sa.life.rekey_requested());
            if out_soft || in_soft {
                want.push((spi_in, c.ike));
            }
        }
        let pfs = self.cfg.esp_proposals.iter().any(|p| p.dh.is_some());
        let busy = !want.is_empty();
        for (spi_in, sa) in want {
            self.asked.insert(spi_in, now_ns);
            match self.ike.rekey_child(now_ns, sa, spi_in, pfs) {
                Ok(()) => {
                    self.counters.rekeys_asked += 1;
                    tracing::info!(spi_in, "IKE: soft lifetime reached, rekeying the Child SA");
                }
                Err(e) => tracing::warn!(spi_in, "IKE: rekey not started: {e:?}"),
            }
            self.after_call(now_ns);
        }
        busy
    }

    /// Takes the endpoint's events and datagrams after any call.
    fn after_call(&mut self, now_ns: u64) {
        let mut wait = None;
        while let Some(ev) = self.ike.poll_event() {
            if let Some(spi) = self.on_event(now_ns, ev) {
                wait = Some(spi);
            }
        }
        while let Some(tx) = self.ike.poll_transmit() {
            self.held.push_back(Held {
                tx,
                wait_spi: wait,
                since: now_ns,
            });
        }
    }

    fn sa_configs(&self, c: &ChildSa) -> Option<(SaConfig, SaConfig)> {
        let (IpAddr::V4(local), IpAddr::V4(remote)) = (c.local.ip(), c.remote.ip()) else {
            return None;
        };
        let aead = match c.suite.encr {
            AesGcm::Aes128 => AeadAlg::Aes128Gcm,
            AesGcm::Aes256 => AeadAlg::Aes256Gcm,
        };
        let lifetime = sa_lifetime(&c.lifetime);
        let mk = |spi: u32, dir: SaDir, key: &meshplane_control::ike::GcmKey| {
            let mut k = zeroize::Zeroizing::new(key.key().to_vec());
            k.extend_from_slice(&key.salt());
            let (tunnel_src, tunnel_dst) = match dir {
                SaDir::Out => (local, remote),
                SaDir::In => (remote, local),
            };
            SaConfig {
                spi,
                dir,
                aead,
                key: k,
                tunnel_src,
                tunnel_dst,
                esn: c.suite.esn,
                udp_encap: c.encap,
                lifetime,
                peer: None,
                negotiated: true,
            }
        };
        Some((
            mk(c.spi_in, SaDir::In, &c.key_in),
            mk(c.spi_out, SaDir::Out, &c.key_out),
        ))
    }

    /// Handles one event; the inbound SPI a new Child SA brought, for the
    /// datagrams of this call to wait for.
    fn on_event(&mut self, now_ns: u64, ev: Event) -> Option<u32> {
        match ev {
            Event::IkeUp {
                sa, peer, rekey_of, ..
            } => {
                tracing::info!(%peer, %sa, rekey = rekey_of.is_some(), "IKE SA up");
                if let Ok(p) = peer.parse::<Ipv4Addr>() {
                    self.ike_sas.insert(p, sa);
                }
                if let Some(old) = rekey_of {
                    for c in self.children.values_mut() {
                        if c.ike == old {
                            c.ike = sa;
                        }
                    }
                }
                None
            }
            Event::IkeDown { sa, reason } => {
                tracing::warn!(%sa, ?reason, "IKE SA down");
                let gone: Vec<Ipv4Addr> = self
                    .ike_sas
                    .iter()
                    .filter(|(_, &s)| s == sa)
                    .map(|(&p, _)| p)
                    .collect();
                for p in gone {
                    self.ike_sas.remove(&p);
                    self.retry_at.insert(p, now_ns + RETRY_NS);
                }
                None
            }
            Event::ChildFailed { sa, reason } => {
                tracing::warn!(%sa, ?reason, "IKE: Child SA not made");
                None
            }
            Event::ChildUp(c) => {
                let Ok(peer) = c.peer.parse::<Ipv4Addr>() else {
                    return None;
                };
                // ESP in UDP is sent from and to port 4500 (RFC 3948); a
                // peer behind a NAT that moved its port is not carried.
                if c.encap && (c.remote.port() != NATT_PORT || c.local.port() != NATT_PORT) {
                    tracing::error!(%peer, port = c.remote.port(), "IKE: the peer's ESP travels in UDP from a port other than 4500, which this data plane does not send to; Child SA not installed");
                    return None;
                }
                let (inbound, outbound) = self.sa_configs(&c)?;
                self.counters.child_up += 1;
                tracing::info!(
                    %peer,
                    spi_in = c.spi_in,
                    spi_out = c.spi_out,
                    esn = c.suite.esn,
                    rekey_of = c.rekey_of,
                    "IKE: Child SA up"
                );
                self.children.insert(
                    c.spi_in,
                    Child {
                        ike: c.ike,
                        peer,
                        inbound,
                        outbound,
                        rekey_of: c.rekey_of,
                        drain_until: None,
                        seq: self.installed,
                        up_at: now_ns,
                    },
                );
                self.installed += 1;
                // A Child SA made by our own request is used at once (the
                // peer answered with its inbound SA in place). One the
                // peer asked for waits until the peer is seen using it
                // (`switch_when_used`), or for its DELETE of the SA it
                // replaces; a first one at most `drain_ms`.
                let switch = match c.rekey_of {
                    None => self.in_response,
                    Some(old) => self.in_response && self.asked.contains_key(&old),
                };
                if switch {
                    self.switch(peer, c.spi_in);
                }
                self.dirty = true;
                Some(c.spi_in)
            }
            Event::ChildDown { spi_in, reason, .. } => {
                let c = self.children.get(&spi_in)?.clone();
                self.asked.remove(&spi_in);
                // Its successor: the SA that replaces it, else the newest
                // of the peer's that nothing replaces.
                let live = |o: &Child| o.peer == c.peer && o.drain_until.is_none();
                let replaced_by_other = |s: u32| {
                    self.children
                        .iter()
                        .any(|(&k, o)| k != spi_in && live(o) && o.rekey_of == Some(s))
                };
                let replacement = self
                    .children
                    .iter()
                    .filter(|(&s, o)| s != spi_in && live(o))
                    .max_by_key(|(&s, o)| {
                        (o.rekey_of == Some(spi_in), !replaced_by_other(s), o.seq)
                    })
                    .map(|(&s, _)| s);
                if self.current.get(&c.peer) == Some(&spi_in) {
                    match replacement {
                        Some(r) => self.switch(c.peer, r),
                        None => {
                            self.current.remove(&c.peer);
                        }
                    }
                }
                // What the peer sent on it until now may still arrive:
                // its inbound SA drains, unless the IKE SA is gone.
                if reason != ChildReason::IkeGone {
                    let until = now_ns + u64::from(self.cfg.drain_ms) * 1_000_000;
                    if let Some(ch) = self.children.get_mut(&spi_in) {
                        ch.drain_until = Some(until);
                    }
                    tracing::info!(
                        spi_in,
                        ?reason,
                        "IKE: Child SA replaced; its inbound SA drains"
                    );
                } else {
                    tracing::info!(spi_in, ?reason, "IKE: Child SA down, removed");
                    self.children.remove(&spi_in);
                }
                self.dirty = true;
                None
            }
        }
    }

    fn switch(&mut self, peer: Ipv4Addr, spi_in: u32) {
        if self.current.insert(peer, spi_in) != Some(spi_in) {
            self.counters.switches += 1;
            tracing::info!(%peer, spi_in, "IKE: outbound traffic switched to the new Child SA");
        }
    }

    /// The SA set to publish.
    fn snapshot(&self) -> NegotiatedSas {
        let mut s = NegotiatedSas::default();
        for (spi_in, c) in &self.children {
            s.sas.push(c.inbound.clone());
            if self.current.get(&c.peer) == Some(spi_in) {
                s.sas.push(c.outbound.clone());
                s.out.insert(c.peer, c.outbound.spi);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{NodeRoute, SA_PENDING};

    const GW: &str = "[node]\nname = \"gw-a\"\nrole = \"gateway\"\n\n\
        [[ports]]\nname = \"lan0\"\nmac = \"02:00:00:00:0a:01\"\naddress = \"10.1.0.1/16\"\n\n\
        [[ports]]\nname = \"up0\"\nmac = \"02:00:00:00:0a:02\"\n\n\
        [[fec]]\nprefix = \"10.2.0.0/16\"\npeer = \"192.0.2.2\"\nlabel = 1002\nport = \"up0\"\n\
        next_hop_mac = \"02:00:00:00:01:01\"\n\n\
        [[deliver]]\nprefix = \"10.1.0.0/16\"\nport = \"lan0\"\nnext_hop_mac = \"02:00:00:00:0a:aa\"\n\n\
        [ike]\naddress = \"192.0.2.1\"\nidentity = \"gw-a\"\npsk_file = \"psk\"\n\n\
        [[ike.peer]]\naddress = \"192.0.2.2\"\nidentity = \"gw-b\"\ninitiate = true\n";

    #[test]
    fn before_any_sa_the_tunnel_address_is_the_nodes_and_the_fec_is_pending() {
        let cfg = NodeConfig::parse(GW, "gw.toml").expect("config");
        let t = Tables::from_config(&cfg, 1).expect("tables");
        // IKE to the tunnel address is punted; ESP to it will be decrypted.
        assert!(t.is_own([192, 0, 2, 1]) && t.is_local([192, 0, 2, 1]));
        assert_eq!(t.fecs[0].sa, SA_PENDING);
        // The node's own packets to the peer take the FEC's label.
        assert_eq!(
            t.node_routes.get(&Ipv4Addr::new(192, 0, 2, 2)),
            Some(&NodeRoute::Fec(0))
        );
        let ip = [0x45u8; 20];
        let (_, f) = super::super::inject::frame_to_node(&t, Ipv4Addr::new(192, 0, 2, 2), 64, &ip)
            .expect("a path before any SA");
        assert_eq!(&f[12..14], &[0x88, 0x47]);

        // With a negotiated pair the FEC uses the outbound SA, and the
        // inbound one admits the peer's prefixes.
        let key = |b: u8| zeroize::Zeroizing::new(vec![b; 20]);
        let sa = |spi, dir, src: [u8; 4], dst: [u8; 4], b| SaConfig {
            spi,
            dir,
            aead: AeadAlg::Aes128Gcm,
            key: key(b),
            tunnel_src: Ipv4Addr::from(src),
            tunnel_dst: Ipv4Addr::from(dst),
            esn: true,
            udp_encap: false,
            lifetime: crate::sa::Lifetime::NONE,
            peer: None,
            negotiated: true,
        };
        let neg = NegotiatedSas {
            sas: vec![
                sa(0x1111, SaDir::In, [192, 0, 2, 2], [192, 0, 2, 1], 1),
                sa(0x2222, SaDir::Out, [192, 0, 2, 1], [192, 0, 2, 2], 2),
            ],
            out: HashMap::from([(Ipv4Addr::new(192, 0, 2, 2), 0x2222)]),
        };
        let t = Tables::from_config(&neg.apply(&cfg), 2).expect("tables");
        let fec = t.fecs[0].sa as usize;
        assert_eq!(t.sa_out[fec].spi, 0x2222);
        assert!(t.negotiated.contains(&0x2222) && t.negotiated.contains(&0x1111));
        let inb = t.sa_in.get(&0x1111).expect("inbound");
        assert!(inb.admits_v4([10, 2, 0, 5]) && !inb.admits_v4([10, 3, 0, 5]));
    }

    #[test]
    fn ike_frames_are_told_apart() {
        let mut f = [0u8; 14 + 28 + 8];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&36u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[16..20].copy_from_slice(&[192, 0, 2, 1]);
        let c = crate::packet::checksum::internet_checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f[14..34].copy_from_slice(&ip);
        f[36..38].copy_from_slice(&500u16.to_be_bytes());
        f[38..40].copy_from_slice(&16u16.to_be_bytes());
        assert!(IkeDriver::is_ike(&f[..50]));
        f[36..38].copy_from_slice(&4500u16.to_be_bytes());
        assert!(IkeDriver::is_ike(&f[..50]));
        f[36..38].copy_from_slice(&3784u16.to_be_bytes());
        assert!(!IkeDriver::is_ike(&f[..50]));
    }
}
