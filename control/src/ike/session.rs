//! The IKEv2 endpoint: every IKE SA of a node, as initiator and as
//! responder, fed by datagrams and time (see the module docs of
//! [`crate::ike`]).

use super::cert::{self, Credentials};
use super::crypto::{self, GcmKey, Group, IkeKeys, KeyPair, Rng, Secret};
use super::proposal::{self, ChildSuite, IkeSuite, Offer, Proposal};
use super::wire::{
    self, exchange, flags, notify, payload, protocol, Builder, Delete, Header, Identity, Malformed,
    Notify, Payloads, TrafficSelector,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

/// A local handle of an IKE SA (not an SPI: a rekeyed SA gets a new one).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct SaId(pub u64);

impl std::fmt::Display for SaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ike#{}", self.0)
    }
}

/// How a node proves who it is, and how it checks its peer (the same way
/// at both ends: the AUTH computation and check are chosen per variant in
/// `auth_value` and `check_auth` in this module).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Auth {
    /// A pre-shared key (RFC 7296 §2.15, AUTH method 2), the same at both
    /// ends.
    Psk(Secret),
    /// Digital signatures (RFC 7427, AUTH method 14) with our certificate
    /// and key; the peer's certificate must chain to the CA of these
    /// credentials at the wall-clock time given by
    /// [`Ike::set_wall_clock`], and name the peer's identity.
    Cert(Arc<Credentials>),
}

/// Lifetimes a Child SA is to be given by the data plane; zero means no
/// limit. The soft limits ask for a rekey ([`Ike::rekey_child`]), the
/// hard ones expire the SA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lifetime {
    /// Soft limit, seconds.
    pub soft_secs: u64,
    /// Hard limit, seconds.
    pub hard_secs: u64,
    /// Soft limit, bytes.
    pub soft_bytes: u64,
    /// Hard limit, bytes.
    pub hard_bytes: u64,
    /// Soft limit, packets.
    pub soft_packets: u64,
    /// Hard limit, packets.
    pub hard_packets: u64,
}

/// One peer: where it is, who it is, how both authenticate, what is
/// proposed, and which traffic its Child SA carries.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// A name for events and `show`.
    pub name: String,
    /// Our address and IKE port (500) toward this peer.
    pub local: SocketAddr,
    /// The peer's address and IKE port. As responder, a request from
    /// this address uses this peer; an unspecified address matches any.
    pub remote: SocketAddr,
    /// Our identity.
    pub local_id: Identity,
    /// The identity the peer must prove.
    pub remote_id: Identity,
    /// Credentials.
    pub auth: Auth,
    /// IKE SA algorithms.
    pub ike: Offer,
    /// Child SA algorithms (its `dh` are the PFS groups of rekeys).
    pub child: Offer,
    /// Our side's traffic (TSi when we initiate).
    pub local_ts: Vec<TrafficSelector>,
    /// The peer's side's traffic.
    pub remote_ts: Vec<TrafficSelector>,
    /// Lifetimes handed to the data plane with each Child SA.
    pub lifetime: Lifetime,
    /// Encapsulate in UDP 4500 even without a NAT (RFC 3948), as a
    /// partner whose ESP must travel in UDP needs.
    pub force_encap: bool,
}

/// Timers and bounds of the endpoint.
#[derive(Clone, Debug)]
pub struct Config {
    /// The peers.
    pub peers: Vec<PeerConfig>,
    /// First retransmission interval of a request (default 500 ms); it
    /// doubles with each retransmission.
    pub retransmit_initial_ns: u64,
    /// Sends of one request before the IKE SA is given up (default 6).
    pub retransmit_tries: u32,
    /// Half-open SAs (IKE_SA_INIT answered, IKE_AUTH not yet) beyond
    /// which a COOKIE is asked for (default 8).
    pub cookie_threshold: usize,
    /// Half-open SAs beyond which IKE_SA_INIT is dropped (default 256).
    pub max_half_open: usize,
    /// How long a half-open SA is kept (default 30 s), and how long an IKE
    /// SA replaced by a rekey waits for the peer's DELETE.
    pub half_open_timeout_ns: u64,
    /// Most IKE SAs in all (default 1024).
    pub max_sas: usize,
    /// Most operations queued on one IKE SA behind its outstanding
    /// request (window size 1; default 16).
    pub max_queued_ops: usize,
    /// Most datagrams and events waiting to be taken (default 1024); the
    /// oldest are dropped beyond.
    pub max_queued: usize,
    /// The NAT-T port (4500).
    pub natt_port: u16,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            peers: Vec::new(),
            retransmit_initial_ns: 500_000_000,
            retransmit_tries: 6,
            cookie_threshold: 8,
            max_half_open: 256,
            half_open_timeout_ns: 30_000_000_000,
            max_sas: 1024,
            max_queued_ops: 16,
            max_queued: 1024,
            natt_port: 4500,
        }
    }
}

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Our address and port.
    pub src: SocketAddr,
    /// The peer's.
    pub dst: SocketAddr,
    /// The UDP payload (with the non-ESP marker on the NAT-T port).
    pub bytes: Vec<u8>,
}

/// What the data plane needs to install one Child SA (tunnel-mode ESP,
/// AES-GCM-16, RFC 4106).
#[derive(Clone, Debug)]
pub struct ChildSa {
    /// The IKE SA it belongs to.
    pub ike: SaId,
    /// The peer's name.
    pub peer: String,
    /// SPI of inbound ESP (ours).
    pub spi_in: u32,
    /// SPI of outbound ESP (the peer's).
    pub spi_out: u32,
    /// Key and salt for inbound ESP.
    pub key_in: GcmKey,
    /// Key and salt for outbound ESP.
    pub key_out: GcmKey,
    /// Algorithms; `suite.esn` false means 32-bit sequence numbers.
    pub suite: ChildSuite,
    /// ESN was offered by this node but the peer chose none.
    pub esn_refused: bool,
    /// Our side's selectors (narrowed).
    pub ts_local: Vec<TrafficSelector>,
    /// The peer's side's selectors (narrowed).
    pub ts_remote: Vec<TrafficSelector>,
    /// Lifetimes to apply.
    pub lifetime: Lifetime,
    /// The inbound SPI of the Child SA this one replaces (a rekey); the
    /// old one is deleted by a later [`Event::ChildDown`].
    pub rekey_of: Option<u32>,
    /// Our tunnel endpoint.
    pub local: SocketAddr,
    /// The peer's tunnel endpoint.
    pub remote: SocketAddr,
    /// ESP travels in UDP (RFC 3948) between `local` and `remote`.
    pub encap: bool,
}

/// Why an IKE SA ended or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Reason {
    /// Deleted by us.
    Deleted,
    /// Deleted by the peer.
    PeerDeleted,
    /// A request was not answered after every retransmission.
    Timeout,
    /// No proposal acceptable to both.
    NoProposal,
    /// Authentication failed (either way).
    AuthFailed,
    /// Traffic selectors unacceptable.
    TsUnacceptable,
    /// The peer answered with another error notify (its type).
    PeerError(u16),
    /// The peer's answer was not acceptable (missing or wrong payloads).
    BadResponse,
}

/// Why a Child SA ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChildReason {
    /// Deleted by us (after a rekey, or asked for).
    Deleted,
    /// Deleted by the peer.
    PeerDeleted,
    /// Its IKE SA ended.
    IkeGone,
}

/// What happened, for the caller to act on.
#[derive(Clone, Debug)]
pub enum Event {
    /// An IKE SA is established (or one replaced another: `rekey_of`).
    IkeUp {
        /// Its handle.
        sa: SaId,
        /// Peer name.
        peer: String,
        /// Initiator SPI.
        spi_i: u64,
        /// Responder SPI.
        spi_r: u64,
        /// Algorithms.
        suite: IkeSuite,
        /// We were the initiator of the exchange that made it.
        initiator: bool,
        /// The SA it replaces (a rekey; its Child SAs moved over).
        rekey_of: Option<SaId>,
    },
    /// A Child SA is negotiated: install it.
    ChildUp(ChildSa),
    /// A Child SA is gone: remove it.
    ChildDown {
        /// Its IKE SA.
        sa: SaId,
        /// Inbound SPI.
        spi_in: u32,
        /// Outbound SPI.
        spi_out: u32,
        /// Why.
        reason: ChildReason,
    },
    /// An IKE SA ended (its Child SAs were reported down first).
    IkeDown {
        /// Its handle.
        sa: SaId,
        /// Why.
        reason: Reason,
    },
    /// Negotiating a Child SA failed; the IKE SA stays.
    ChildFailed {
        /// The IKE SA.
        sa: SaId,
        /// Why.
        reason: Reason,
    },
}

/// Why a datagram was dropped; each counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Dropped {
    /// Shorter than a header or a length says.
    #[error("truncated")]
    Truncated,
    /// A length field that does not add up.
    #[error("bad length")]
    BadLength,
    /// Not IKE version 2.
    #[error("bad version")]
    BadVersion,
    /// Too many payloads.
    #[error("too many payloads")]
    TooManyPayloads,
    /// A payload's body is malformed, or a required one is missing.
    #[error("invalid syntax")]
    Syntax,
    /// An unknown payload marked critical (answered with
    /// UNSUPPORTED_CRITICAL_PAYLOAD when it was a request).
    #[error("unsupported critical payload")]
    UnsupportedCritical,
    /// On the NAT-T port without the non-ESP marker: ESP, for the data
    /// plane (NAT-keepalives are taken silently).
    #[error("not IKE")]
    NotIke,
    /// No IKE SA has this SPI.
    #[error("unknown SPI")]
    UnknownSpi,
    /// An exchange or a message this SA's state does not expect.
    #[error("unexpected exchange")]
    UnexpectedExchange,
    /// A response to no outstanding request.
    #[error("unexpected response")]
    UnexpectedResponse,
    /// The SK payload's ICV does not verify.
    #[error("bad ICV")]
    BadIcv,
    /// A Diffie-Hellman public value not valid in its group.
    #[error("invalid DH public value")]
    InvalidDhPublic,
    /// A request with an old message ID (not the last one, which is
    /// answered again).
    #[error("old message ID")]
    OldMessageId,
    /// A request beyond the window.
    #[error("message ID beyond window")]
    FutureMessageId,
    /// IKE_SA_INIT refused: too many half-open or total SAs.
    #[error("too many SAs")]
    Overload,
    /// IKE_SA_INIT without a valid cookie while under load (answered
    /// with a COOKIE).
    #[error("cookie required")]
    CookieRequired,
    /// IKE_SA_INIT from an address no peer is configured for.
    #[error("no peer")]
    NoPeer,
    /// The peer's AUTH did not verify, or its identity is not the one
    /// configured.
    #[error("authentication failed")]
    AuthFailed,
    /// The peer's certificate was refused: none, not from our CA, not
    /// valid now, a usage that forbids IKE signatures, or not naming the
    /// peer's identity (answered with AUTHENTICATION_FAILED).
    #[error("certificate refused")]
    BadCertificate,
    /// Nothing acceptable in the peer's SA payload, or a KE of another
    /// group (answered with NO_PROPOSAL_CHOSEN / INVALID_KE_PAYLOAD).
    #[error("no proposal chosen")]
    NoProposal,
}

impl Dropped {
    /// Every reason, in counter order.
    pub const ALL: [Dropped; 20] = [
        Dropped::Truncated,
        Dropped::BadLength,
        Dropped::BadVersion,
        Dropped::TooManyPayloads,
        Dropped::Syntax,
        Dropped::UnsupportedCritical,
        Dropped::NotIke,
        Dropped::UnknownSpi,
        Dropped::UnexpectedExchange,
        Dropped::UnexpectedResponse,
        Dropped::BadIcv,
        Dropped::InvalidDhPublic,
        Dropped::OldMessageId,
        Dropped::FutureMessageId,
        Dropped::Overload,
        Dropped::CookieRequired,
        Dropped::NoPeer,
        Dropped::AuthFailed,
        Dropped::NoProposal,
        Dropped::BadCertificate,
    ];

    /// Index into [`Counters::dropped`].
    pub fn index(self) -> usize {
        Dropped::ALL.iter().position(|&d| d == self).unwrap_or(0)
    }

    /// A short name for counters.
    pub fn name(self) -> &'static str {
        match self {
            Dropped::Truncated => "truncated",
            Dropped::BadLength => "bad_length",
            Dropped::BadVersion => "bad_version",
            Dropped::TooManyPayloads => "too_many_payloads",
            Dropped::Syntax => "syntax",
            Dropped::UnsupportedCritical => "unsupported_critical",
            Dropped::NotIke => "not_ike",
            Dropped::UnknownSpi => "unknown_spi",
            Dropped::UnexpectedExchange => "unexpected_exchange",
            Dropped::UnexpectedResponse => "unexpected_response",
            Dropped::BadIcv => "bad_icv",
            Dropped::InvalidDhPublic => "invalid_dh_public",
            Dropped::OldMessageId => "old_message_id",
            Dropped::FutureMessageId => "future_message_id",
            Dropped::Overload => "overload",
            Dropped::CookieRequired => "cookie_required",
            Dropped::NoPeer => "no_peer",
            Dropped::AuthFailed => "auth_failed",
            Dropped::NoProposal => "no_proposal",
            Dropped::BadCertificate => "bad_certificate",
        }
    }
}

impl From<Malformed> for Dropped {
    fn from(m: Malformed) -> Dropped {
        match m {
            Malformed::Truncated => Dropped::Truncated,
            Malformed::BadLength => Dropped::BadLength,
            Malformed::BadVersion(_) => Dropped::BadVersion,
            Malformed::TooManyPayloads => Dropped::TooManyPayloads,
            Malformed::UnsupportedCritical(_) => Dropped::UnsupportedCritical,
            Malformed::Syntax(_) => Dropped::Syntax,
        }
    }
}

/// The endpoint's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams dropped, by [`Dropped::index`].
    pub dropped: [u64; 20],
    /// Requests we retransmitted.
    pub retransmits: u64,
    /// Responses sent again for a retransmitted request.
    pub responses_resent: u64,
    /// COOKIE notifies sent.
    pub cookies_sent: u64,
    /// INVALID_KE_PAYLOAD answers sent.
    pub invalid_ke_sent: u64,
    /// IKE_SA_INIT restarts after a COOKIE or INVALID_KE_PAYLOAD.
    pub init_restarts: u64,
    /// Half-open SAs that expired.
    pub half_open_expired: u64,
    /// Datagrams or events dropped because the caller did not take them.
    pub queue_overflow: u64,
    /// IKE SAs established (rekeys included).
    pub ike_up: u64,
    /// Child SAs established (rekeys included).
    pub child_up: u64,
}

impl Counters {
    /// Datagrams dropped for `r`.
    pub fn dropped(&self, r: Dropped) -> u64 {
        self.dropped[r.index()]
    }

    /// Datagrams dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

/// Misuse of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// No peer of that name.
    #[error("no such peer")]
    NoPeer,
    /// No IKE SA with that handle, or it is not established.
    #[error("no established IKE SA")]
    NoSa,
    /// No Child SA with that inbound SPI.
    #[error("no such Child SA")]
    NoChild,
    /// Too many operations queued, or too many SAs.
    #[error("too many operations queued or SAs held")]
    Busy,
}

/// A summary of an IKE SA, for `show ike`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaInfo {
    /// Handle.
    pub sa: SaId,
    /// Peer name.
    pub peer: String,
    /// State name.
    pub state: &'static str,
    /// Initiator SPI.
    pub spi_i: u64,
    /// Responder SPI.
    pub spi_r: u64,
    /// Whether we are the original initiator.
    pub initiator: bool,
    /// (inbound, outbound) SPIs of its Child SAs.
    pub children: Vec<(u32, u32)>,
    /// Operations (rekeys, deletes) waiting for the exchange in flight.
    pub ops_queued: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    /// Initiator: IKE_SA_INIT sent.
    InitSent,
    /// Initiator: IKE_AUTH sent.
    AuthSent,
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH (half-open).
    HalfOpen,
    /// Established.
    Up,
    /// Replaced by a rekey: waits for (or sends) the DELETE.
    Rekeyed,
}

impl St {
    fn name(self) -> &'static str {
        match self {
            St::InitSent => "init_sent",
            St::AuthSent => "auth_sent",
            St::HalfOpen => "half_open",
            St::Up => "established",
            St::Rekeyed => "rekeyed",
        }
    }
}

#[derive(Debug)]
struct Child {
    spi_in: u32,
    spi_out: u32,
}

#[derive(Debug)]
enum Pending {
    Init,
    Auth {
        spi_in: u32,
    },
    Child {
        rekey_of: Option<u32>,
        spi_in: u32,
        ni: Vec<u8>,
        dh: Option<KeyPair>,
        pfs: bool,
    },
    RekeyIke {
        spi: u64,
        ni: Vec<u8>,
        dh: KeyPair,
    },
    DeleteChild,
    DeleteIke,
    Liveness,
}

#[derive(Debug)]
struct Out {
    mid: u32,
    datagram: Vec<u8>,
    tries: u32,
    next_ns: u64,
    interval_ns: u64,
    pending: Pending,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    RekeyChild { spi_in: u32, pfs: bool },
    RekeyIke,
    DeleteChild { spi_in: u32 },
    DeleteIke,
    Liveness,
}

#[derive(Debug)]
struct Sa {
    peer: usize,
    initiator: bool,
    st: St,
    spi_i: u64,
    spi_r: u64,
    local: SocketAddr,
    remote: SocketAddr,
    encap: bool,
    suite: Option<IkeSuite>,
    keys: Option<IkeKeys>,
    group: Group,
    dh: Option<KeyPair>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    init_i: Vec<u8>,
    init_r: Vec<u8>,
    cookie: Option<Vec<u8>>,
    my_mid: u32,
    peer_mid: u32,
    out: Option<Out>,
    ops: VecDeque<Op>,
    last_resp: Option<(u32, Vec<u8>)>,
    children: Vec<Child>,
    deadline_ns: Option<u64>,
    /// Rekeys of one Child SA by both ends at once (§2.8.1): (old inbound
    /// SPI, inbound SPI of the SA the peer's exchange made, the lowest
    /// nonce of the peer's exchange).
    collisions: Vec<(u32, u32, Vec<u8>)>,
    /// The hashes the peer announced in SIGNATURE_HASH_ALGORITHMS.
    peer_hashes: Vec<u16>,
}

impl Sa {
    fn our_spi(&self) -> u64 {
        if self.initiator {
            self.spi_i
        } else {
            self.spi_r
        }
    }

    fn send_key(&self) -> Option<&GcmKey> {
        let k = self.keys.as_ref()?;
        Some(if self.initiator { &k.sk_ei } else { &k.sk_er })
    }

    fn recv_key(&self) -> Option<&GcmKey> {
        let k = self.keys.as_ref()?;
        Some(if self.initiator { &k.sk_er } else { &k.sk_ei })
    }
}

/// An IKEv2 endpoint: all IKE SAs of one node.
pub struct Ike<R: Rng> {
    cfg: Config,
    rng: R,
    sas: BTreeMap<SaId, Sa>,
    by_spi: HashMap<u64, SaId>,
    half_open: HashMap<(SocketAddr, u64), SaId>,
    next_id: u64,
    cookie_secret: Secret,
    tx: VecDeque<Transmit>,
    events: VecDeque<Event>,
    counters: Counters,
    /// (now_ns, Unix seconds) of the last [`Ike::set_wall_clock`].
    wall: Option<(u64, u64)>,
}

impl<R: Rng> std::fmt::Debug for Ike<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ike")
            .field("sas", &self.sas.len())
            .field("counters", &self.counters)
            .finish()
    }
}

const NONCE_LEN: usize = 32;

/// A payload the message must carry.
fn required<T>(r: Option<T>) -> Result<T, Dropped> {
    r.ok_or(Dropped::Syntax)
}

fn narrow(peer: &[TrafficSelector], ours: &[TrafficSelector]) -> Vec<TrafficSelector> {
    let mut v = Vec::new();
    for p in peer {
        for o in ours {
            if let Some(x) = p.intersect(o) {
                if !v.contains(&x) {
                    v.push(x);
                }
            }
        }
    }
    v
}

fn within_all(got: &[TrafficSelector], asked: &[TrafficSelector]) -> bool {
    !got.is_empty() && got.iter().all(|g| asked.iter().any(|a| g.within(a)))
}

impl<R: Rng> Ike<R> {
    /// An endpoint with no SA, drawing randomness from `rng`.
    pub fn new(cfg: Config, mut rng: R) -> Ike<R> {
        let mut s = vec![0u8; 32];
        rng.fill(&mut s);
        Ike {
            cfg,
            rng,
            sas: BTreeMap::new(),
            by_spi: HashMap::new(),
            half_open: HashMap::new(),
            next_id: 1,
            cookie_secret: Secret::new(s),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
            wall: None,
        }
    }

    /// Tells the endpoint the wall-clock time (Unix seconds) at `now_ns`
    /// of its monotonic scale; certificates are checked against it,
    /// extrapolated with `now_ns`. Without it, certificate authentication
    /// fails. Call it again when the wall clock is stepped.
    pub fn set_wall_clock(&mut self, now_ns: u64, unix_secs: u64) {
        self.wall = Some((now_ns, unix_secs));
    }

    /// The wall-clock time at `now_ns`, if one was given.
    pub fn wall_clock(&self, now_ns: u64) -> Option<u64> {
        let (at, unix) = self.wall?;
        Some(if now_ns >= at {
            unix.saturating_add((now_ns - at) / 1_000_000_000)
        } else {
            unix.saturating_sub((at - now_ns) / 1_000_000_000)
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The configuration, to change: peers and offers apply to exchanges
    /// started afterwards; a peer's index must not change while it has
    /// SAs (append, or edit in place).
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.cfg
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// A summary of every IKE SA.
    pub fn sas(&self) -> Vec<SaInfo> {
        self.sas
            .iter()
            .map(|(&id, sa)| SaInfo {
                sa: id,
                peer: self.cfg.peers[sa.peer].name.clone(),
                state: sa.st.name(),
                spi_i: sa.spi_i,
                spi_r: sa.spi_r,
                initiator: sa.initiator,
                children: sa.children.iter().map(|c| (c.spi_in, c.spi_out)).collect(),
                ops_queued: sa.ops.len(),
            })
            .collect()
    }

    /// The key this end seals with on the IKE SA whose SPI (ours) is
    /// `our_spi`: for tests that forge authenticated messages.
    #[cfg(test)]
    pub(crate) fn sealing_key(&self, our_spi: u64) -> Option<GcmKey> {
        let id = self.by_spi.get(&our_spi)?;
        self.sas.get(id)?.send_key().cloned()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.tx.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Ike::on_timeout`] is next to be called, if ever.
    pub fn next_timeout(&self) -> Option<u64> {
        self.sas
            .values()
            .flat_map(|sa| [sa.out.as_ref().map(|o| o.next_ns), sa.deadline_ns])
            .flatten()
            .min()
    }

    fn event(&mut self, e: Event) {
        if self.events.len() >= self.cfg.max_queued {
            self.events.pop_front();
            self.counters.queue_overflow += 1;
        }
        self.events.push_back(e);
    }

    fn emit(&mut self, src: SocketAddr, dst: SocketAddr, bytes: Vec<u8>) {
        if self.tx.len() >= self.cfg.max_queued {
            self.tx.pop_front();
            self.counters.queue_overflow += 1;
        }
        self.tx.push_back(Transmit { src, dst, bytes });
    }

    fn datagram(&self, sa: &Sa, msg: Vec<u8>) -> Vec<u8> {
        if sa.encap {
            let mut v = Vec::with_capacity(msg.len() + 4);
            v.extend_from_slice(&[0; 4]);
            v.extend_from_slice(&msg);
            v
        } else {
            msg
        }
    }

    fn fresh_spi(&mut self) -> u64 {
        loop {
            let mut b = [0u8; 8];
            self.rng.fill(&mut b);
            let s = u64::from_be_bytes(b);
            if s != 0 && !self.by_spi.contains_key(&s) {
                return s;
            }
        }
    }

    fn fresh_child_spi(&mut self) -> u32 {
        loop {
            let mut b = [0u8; 4];
            self.rng.fill(&mut b);
            let s = u32::from_be_bytes(b);
            let used = self
                .sas
                .values()
                .any(|sa| sa.children.iter().any(|c| c.spi_in == s));
            if s >= 256 && !used {
                return s;
            }
        }
    }

    fn nonce(&mut self) -> Vec<u8> {
        let mut n = vec![0u8; NONCE_LEN];
        self.rng.fill(&mut n);
        n
    }

    fn new_id(&mut self) -> SaId {
        let id = SaId(self.next_id);
        self.next_id += 1;
        id
    }

    // ---------------------------------------------------------------- API

    /// Starts an IKE SA (and its first Child SA) with the peer named
    /// `peer`.
    pub fn initiate(&mut self, now_ns: u64, peer: &str) -> Result<SaId, ApiError> {
        let p = self
            .cfg
            .peers
            .iter()
            .position(|p| p.name == peer)
            .ok_or(ApiError::NoPeer)?;
        let group = *self.cfg.peers[p].ike.dh.first().ok_or(ApiError::NoPeer)?;
        if self.sas.len() >= self.cfg.max_sas {
            return Err(ApiError::Busy);
        }
        let spi_i = self.fresh_spi();
        let id = self.new_id();
        let ni = self.nonce();
        let dh = KeyPair::generate(group, &mut self.rng);
        let pc = &self.cfg.peers[p];
        let sa = Sa {
            peer: p,
            initiator: true,
            st: St::InitSent,
            spi_i,
            spi_r: 0,
            local: pc.local,
            remote: pc.remote,
            encap: false,
            suite: None,
            keys: None,
            group,
            dh: Some(dh),
            ni,
            nr: Vec::new(),
            init_i: Vec::new(),
            init_r: Vec::new(),
            cookie: None,
            my_mid: 0,
            peer_mid: 0,
            out: None,
            ops: VecDeque::new(),
            last_resp: None,
            children: Vec::new(),
            deadline_ns: None,
            collisions: Vec::new(),
            peer_hashes: Vec::new(),
        };
        self.by_spi.insert(spi_i, id);
        self.sas.insert(id, sa);
        self.send_init(now_ns, id);
        Ok(id)
    }

    fn queue_op(&mut self, now_ns: u64, sa: SaId, op: Op) -> Result<(), ApiError> {
        let max = self.cfg.max_queued_ops;
        let s = self.sas.get_mut(&sa).ok_or(ApiError::NoSa)?;
        if s.st != St::Up {
            return Err(ApiError::NoSa);
        }
        if let Op::RekeyChild { spi_in, .. } | Op::DeleteChild { spi_in } = op {
            if !s.children.iter().any(|c| c.spi_in == spi_in) {
                return Err(ApiError::NoChild);
            }
        }
        if s.ops.len() >= max {
            return Err(ApiError::Busy);
        }
        s.ops.push_back(op);
        self.pump(now_ns, sa);
        Ok(())
    }

    /// Rekeys the Child SA whose inbound SPI is `spi_in` (CREATE_CHILD_SA
    /// with REKEY_SA), with a new Diffie-Hellman exchange when `pfs` (the
    /// first group of the peer's child offer). The new SA comes as
    /// [`Event::ChildUp`] with `rekey_of`, then the old one is deleted.
    pub fn rekey_child(
        &mut self,
        now_ns: u64,
        sa: SaId,
        spi_in: u32,
        pfs: bool,
    ) -> Result<(), ApiError> {
        self.queue_op(now_ns, sa, Op::RekeyChild { spi_in, pfs })
    }

    /// Rekeys the IKE SA (CREATE_CHILD_SA with a new KE); its Child SAs
    /// move to the new one, the old one is deleted.
    pub fn rekey_ike(&mut self, now_ns: u64, sa: SaId) -> Result<(), ApiError> {
        self.queue_op(now_ns, sa, Op::RekeyIke)
    }

    /// Deletes one Child SA (INFORMATIONAL with DELETE).
    pub fn delete_child(&mut self, now_ns: u64, sa: SaId, spi_in: u32) -> Result<(), ApiError> {
        self.queue_op(now_ns, sa, Op::DeleteChild { spi_in })
    }

    /// Deletes the IKE SA and with it its Child SAs.
    pub fn delete_ike(&mut self, now_ns: u64, sa: SaId) -> Result<(), ApiError> {
        self.queue_op(now_ns, sa, Op::DeleteIke)
    }

    /// Sends an empty INFORMATIONAL request: a liveness check. An IKE SA
    /// whose peer does not answer ends with [`Reason::Timeout`].
    pub fn check_liveness(&mut self, now_ns: u64, sa: SaId) -> Result<(), ApiError> {
        self.queue_op(now_ns, sa, Op::Liveness)
    }

    /// Retransmits what is due, gives up on what has had every try,
    /// expires half-open SAs.
    pub fn on_timeout(&mut self, now_ns: u64) {
        let ids: Vec<SaId> = self.sas.keys().copied().collect();
        for id in ids {
            let Some(sa) = self.sas.get_mut(&id) else {
                continue;
            };
            if sa.deadline_ns.is_some_and(|d| d <= now_ns) {
                if sa.st == St::HalfOpen {
                    self.counters.half_open_expired += 1;
                }
                let quiet = matches!(sa.st, St::HalfOpen | St::Rekeyed);
                self.remove(id, if quiet { None } else { Some(Reason::Timeout) });
                continue;
            }
            let Some(out) = sa.out.as_mut() else { continue };
            if out.next_ns > now_ns {
                continue;
            }
            if out.tries >= self.cfg.retransmit_tries {
                self.remove(id, Some(Reason::Timeout));
                continue;
            }
            out.tries += 1;
            out.interval_ns = out.interval_ns.saturating_mul(2);
            out.next_ns = now_ns.saturating_add(out.interval_ns);
            let d = out.datagram.clone();
            let (src, dst) = (sa.local, sa.remote);
            self.counters.retransmits += 1;
            self.emit(src, dst, d);
        }
    }

    /// Removes an SA; reports its Child SAs and (unless `reason` is None)
    /// the IKE SA down.
    fn remove(&mut self, id: SaId, reason: Option<Reason>) {
        let Some(sa) = self.sas.remove(&id) else {
            return;
        };
        self.by_spi.remove(&sa.our_spi());
        self.half_open.retain(|_, v| *v != id);
        for c in &sa.children {
            self.event(Event::ChildDown {
                sa: id,
                spi_in: c.spi_in,
                spi_out: c.spi_out,
                reason: ChildReason::IkeGone,
            });
        }
        if let Some(reason) = reason {
            self.event(Event::IkeDown { sa: id, reason });
        }
    }

    // ------------------------------------------------------- sending

    fn send_init(&mut self, now_ns: u64, id: SaId) {
        let Some(sa) = self.sas.get(&id) else { return };
        let pc = &self.cfg.peers[sa.peer];
        let mut b = Builder::new();
        if let Some(c) = &sa.cookie {
            b.notify(&Notify::new(notify::COOKIE, c));
        }
        let dh = sa
            .dh
            .as_ref()
            .map(|d| d.public().to_vec())
            .unwrap_or_default();
        b.push(
            payload::SA,
            Proposal::encode_sa(&[pc.ike.proposal(protocol::IKE, vec![], true)]),
        );
        b.push(payload::KE, ke_body(sa.group, &dh));
        b.push(payload::NONCE, sa.ni.clone());
        b.notify(&Notify::new(
            notify::NAT_DETECTION_SOURCE_IP,
            &crypto::nat_hash(sa.spi_i, 0, sa.local),
        ));
        b.notify(&Notify::new(
            notify::NAT_DETECTION_DESTINATION_IP,
            &crypto::nat_hash(sa.spi_i, 0, sa.remote),
        ));
        if matches!(pc.auth, Auth::Cert(_)) {
            b.notify(&Notify::new(
                notify::SIGNATURE_HASH_ALGORITHMS,
                &cert::announced_hashes(),
            ));
        }
        let h = Header {
            spi_i: sa.spi_i,
            spi_r: 0,
            next: 0,
            version: 0,
            exchange: exchange::IKE_SA_INIT,
            flags: flags::INITIATOR,
            mid: 0,
            length: 0,
        };
        let msg = wire::plain_message(h, &b);
        let sa = self.sas.get_mut(&id).expect("present");
        sa.init_i = msg.clone();
        self.start_request(now_ns, id, 0, msg, Pending::Init);
    }

    fn start_request(&mut self, now_ns: u64, id: SaId, mid: u32, msg: Vec<u8>, pending: Pending) {
        let Some(sa) = self.sas.get(&id) else { return };
        let d = self.datagram(sa, msg);
        let (src, dst) = (sa.local, sa.remote);
        let interval = self.cfg.retransmit_initial_ns;
        let sa = self.sas.get_mut(&id).expect("present");
        sa.out = Some(Out {
            mid,
            datagram: d.clone(),
            tries: 1,
            next_ns: now_ns.saturating_add(interval),
            interval_ns: interval,
            pending,
        });
        self.emit(src, dst, d);
    }

    fn header(sa: &Sa, ex: u8, response: bool, mid: u32) -> Header {
        let mut f = 0;
        if sa.initiator {
            f |= flags::INITIATOR;
        }
        if response {
            f |= flags::RESPONSE;
        }
        Header {
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            next: 0,
            version: wire::VERSION,
            exchange: ex,
            flags: f,
            mid,
            length: 0,
        }
    }

    fn seal(&mut self, id: SaId, ex: u8, response: bool, mid: u32, b: &Builder) -> Option<Vec<u8>> {
        let sa = self.sas.get(&id)?;
        let h = Self::header(sa, ex, response, mid);
        let key = sa.send_key()?;
        Some(crypto::seal_message(h, b, key, &mut self.rng))
    }

    /// Sends an encrypted request on `id`.
    fn request(&mut self, now_ns: u64, id: SaId, ex: u8, b: &Builder, pending: Pending) {
        let Some(mid) = self.sas.get(&id).map(|s| s.my_mid) else {
            return;
        };
        if let Some(msg) = self.seal(id, ex, false, mid, b) {
            self.start_request(now_ns, id, mid, msg, pending);
        }
    }

    /// Sends an encrypted response on `id` and keeps it for a retransmitted
    /// request.
    fn respond(&mut self, id: SaId, ex: u8, mid: u32, b: &Builder) {
        let Some(msg) = self.seal(id, ex, true, mid, b) else {
            return;
        };
        let Some(sa) = self.sas.get(&id) else { return };
        let d = self.datagram(sa, msg);
        let (src, dst) = (sa.local, sa.remote);
        if let Some(sa) = self.sas.get_mut(&id) {
            sa.last_resp = Some((mid, d.clone()));
            sa.peer_mid = mid.wrapping_add(1);
        }
        self.emit(src, dst, d);
    }

    /// Starts the next queued operation when no request is outstanding.
    fn pump(&mut self, now_ns: u64, id: SaId) {
        loop {
            let Some(sa) = self.sas.get_mut(&id) else {
                return;
            };
            if sa.out.is_some() || !matches!(sa.st, St::Up | St::Rekeyed) {
                return;
            }
            let Some(op) = sa.ops.pop_front() else { return };
            if sa.st == St::Rekeyed && op != Op::DeleteIke {
                continue;
            }
            match op {
                Op::RekeyChild { spi_in, pfs } => {
                    if sa.children.iter().any(|c| c.spi_in == spi_in) {
                        self.send_create_child(now_ns, id, Some(spi_in), pfs, None);
                        return;
                    }
                }
                Op::RekeyIke => {
                    self.send_rekey_ike(now_ns, id, None);
                    return;
                }
                Op::DeleteChild { spi_in } => {
                    if let Some(i) = sa.children.iter().position(|c| c.spi_in == spi_in) {
                        let c = sa.children.remove(i);
                        let mut b = Builder::new();
                        b.push(
                            payload::DELETE,
                            Delete {
                                protocol: protocol::ESP,
                                spis: vec![spi_in],
                            }
                            .encode(),
                        );
                        self.event(Event::ChildDown {
                            sa: id,
                            spi_in: c.spi_in,
                            spi_out: c.spi_out,
                            reason: ChildReason::Deleted,
                        });
                        self.request(
                            now_ns,
                            id,
                            exchange::INFORMATIONAL,
                            &b,
                            Pending::DeleteChild,
                        );
                        return;
                    }
                }
                Op::DeleteIke => {
                    let mut b = Builder::new();
                    b.push(
                        payload::DELETE,
                        Delete {
                            protocol: protocol::IKE,
                            spis: vec![],
                        }
                        .encode(),
                    );
                    self.request(now_ns, id, exchange::INFORMATIONAL, &b, Pending::DeleteIke);
                    return;
                }
                Op::Liveness => {
                    self.request(
                        now_ns,
                        id,
                        exchange::INFORMATIONAL,
                        &Builder::new(),
                        Pending::Liveness,
                    );
                    return;
                }
            }
        }
    }

    fn send_create_child(
        &mut self,
        now_ns: u64,
        id: SaId,
        rekey_of: Option<u32>,
        pfs: bool,
        group: Option<Group>,
    ) {
        let Some(sa) = self.sas.get(&id) else { return };
        let pc = &self.cfg.peers[sa.peer];
        let group = if pfs {
            group.or_else(|| pc.child.dh.first().copied())
        } else {
            None
        };
        let child = pc.child.clone();
        let (lts, rts) = (pc.local_ts.clone(), pc.remote_ts.clone());
        let spi_in = self.fresh_child_spi();
        let ni = self.nonce();
        let dh = group.map(|g| KeyPair::generate(g, &mut self.rng));
        let mut b = Builder::new();
        if let Some(old) = rekey_of {
            b.notify(&Notify {
                protocol: protocol::ESP,
                spi: old.to_be_bytes().to_vec(),
                ty: notify::REKEY_SA,
                data: vec![],
            });
        }
        let mut prop = child.proposal(protocol::ESP, spi_in.to_be_bytes().to_vec(), pfs);
        if let Some(g) = group {
            // The group of the KE sent first, the rest after it.
            prop.dh.retain(|&x| x != g.id());
            prop.dh.insert(0, g.id());
        }
        b.push(payload::SA, Proposal::encode_sa(&[prop]));
        b.push(payload::NONCE, ni.clone());
        if let (Some(g), Some(k)) = (group, &dh) {
            b.push(payload::KE, ke_body(g, k.public()));
        }
        // A rekey asks for the configured selectors again; the responder
        // narrows them as it did the first time.
        b.push(payload::TSI, TrafficSelector::encode_list(&lts));
        b.push(payload::TSR, TrafficSelector::encode_list(&rts));
        self.request(
            now_ns,
            id,
            exchange::CREATE_CHILD_SA,
            &b,
            Pending::Child {
                rekey_of,
                spi_in,
                ni,
                dh,
                pfs,
            },
        );
    }

    fn send_rekey_ike(&mut self, now_ns: u64, id: SaId, group: Option<Group>) {
        let Some(sa) = self.sas.get(&id) else { return };
        let pc = &self.cfg.peers[sa.peer];
        let Some(g) = group.or(sa.suite.map(|s| s.dh)) else {
            return;
        };
        let mut prop = pc.ike.proposal(protocol::IKE, vec![], true);
        prop.dh.retain(|&x| x != g.id());
        prop.dh.insert(0, g.id());
        let spi = self.fresh_spi();
        prop.spi = spi.to_be_bytes().to_vec();
        let ni = self.nonce();
        let dh = KeyPair::generate(g, &mut self.rng);
        let mut b = Builder::new();
        b.push(payload::SA, Proposal::encode_sa(&[prop]));
        b.push(payload::NONCE, ni.clone());
        b.push(payload::KE, ke_body(g, dh.public()));
        self.request(
            now_ns,
            id,
            exchange::CREATE_CHILD_SA,
            &b,
            Pending::RekeyIke { spi, ni, dh },
        );
    }

    // ------------------------------------------------------- receiving

    /// Handles one UDP datagram that arrived from `src` at `dst` (ports
    /// 500 or the NAT-T port). Every refusal is counted.
    pub fn on_datagram(
        &mut self,
        now_ns: u64,
        src: SocketAddr,
        dst: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), Dropped> {
        let r = self.datagram_inner(now_ns, src, dst, bytes);
        if let Err(d) = r {
            self.counters.dropped[d.index()] += 1;
        }
        r
    }

    fn datagram_inner(
        &mut self,
        now_ns: u64,
        src: SocketAddr,
        dst: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), Dropped> {
        let natt = dst.port() == self.cfg.natt_port;
        if natt && bytes == [0xff] {
            // A NAT-keepalive (RFC 3948 §2.3): nothing to do.
            return Ok(());
        }
        let msg = if natt {
            match bytes.get(..4) {
                Some([0, 0, 0, 0]) => &bytes[4..],
                _ => return Err(Dropped::NotIke),
            }
        } else {
            bytes
        };
        let h = Header::parse(msg)?;
        if h.exchange == exchange::IKE_SA_INIT && !h.is_response() {
            if h.spi_r != 0 || h.mid != 0 || !h.from_initiator() {
                return Err(Dropped::UnexpectedExchange);
            }
            return self.responder_init(now_ns, src, dst, natt, &h, msg);
        }
        let ours = if h.from_initiator() { h.spi_r } else { h.spi_i };
        let id = *self.by_spi.get(&ours).ok_or(Dropped::UnknownSpi)?;
        let sa = self.sas.get(&id).ok_or(Dropped::UnknownSpi)?;
        // The I flag says who sent it: the peer is the initiator exactly
        // when we are not.
        if h.from_initiator() == sa.initiator || h.spi_i != sa.spi_i {
            return Err(Dropped::UnknownSpi);
        }
        if h.exchange == exchange::IKE_SA_INIT {
            // A response to our IKE_SA_INIT.
            if sa.st != St::InitSent || h.mid != 0 {
                return Err(Dropped::UnexpectedResponse);
            }
            return self.init_response(now_ns, id, &h, msg);
        }
        if h.spi_r != sa.spi_r || sa.keys.is_none() {
            return Err(Dropped::UnknownSpi);
        }
        if h.is_response() {
            match &sa.out {
                Some(o) if o.mid == h.mid => {}
                _ => return Err(Dropped::UnexpectedResponse),
            }
        } else if h.mid != sa.peer_mid {
            if let Some((m, d)) = &sa.last_resp {
                if *m == h.mid {
                    // The peer did not get our answer: send it again.
                    let (src_, dst_, d) = (sa.local, sa.remote, d.clone());
                    self.counters.responses_resent += 1;
                    self.emit(src_, dst_, d);
                    return Ok(());
                }
            }
            return Err(if h.mid < sa.peer_mid {
                Dropped::OldMessageId
            } else {
                Dropped::FutureMessageId
            });
        }
        let (outer, sk) = wire::walk(h.next, &msg[wire::HEADER_LEN..], wire::HEADER_LEN)
            .map_err(Dropped::from)?;
        let sk = sk.ok_or(Dropped::Syntax)?;
        let key = sa.recv_key().ok_or(Dropped::UnknownSpi)?;
        let plain = crypto::open_message(msg, sk, key).ok_or(Dropped::BadIcv)?;
        let inner = wire::walk(sk.inner_first, &plain, 0);
        let inner = match inner {
            Ok((list, None)) => list,
            Ok((_, Some(_))) => return Err(Dropped::Syntax),
            Err(Malformed::UnsupportedCritical(t)) => {
                if !h.is_response() {
                    let mut b = Builder::new();
                    b.notify(&Notify::new(notify::UNSUPPORTED_CRITICAL_PAYLOAD, &[t]));
                    self.respond(id, h.exchange, h.mid, &b);
                }
                return Err(Dropped::UnsupportedCritical);
            }
            Err(e) => return Err(e.into()),
        };
        let mut all = outer;
        all.extend(inner);
        let p = match Payloads::decode(&all) {
            Ok(p) => p,
            Err(e) => {
                if !h.is_response() {
                    let mut b = Builder::new();
                    b.notify(&Notify::new(notify::INVALID_SYNTAX, &[]));
                    self.respond(id, h.exchange, h.mid, &b);
                }
                return Err(e.into());
            }
        };
        // Authenticated: follow the peer to its address and port (NAT-T).
        if let Some(sa) = self.sas.get_mut(&id) {
            if sa.remote != src || sa.local != dst {
                sa.remote = src;
                sa.local = dst;
                sa.encap |= natt;
            }
        }
        let st = self.sas.get(&id).map(|s| s.st);
        if h.is_response() {
            let Some(out) = self.sas.get_mut(&id).and_then(|s| s.out.take()) else {
                return Err(Dropped::UnexpectedResponse);
            };
            if let Some(s) = self.sas.get_mut(&id) {
                s.my_mid = s.my_mid.wrapping_add(1);
            }
            let r = self.on_response(now_ns, id, &h, p, out.pending);
            self.pump(now_ns, id);
            r
        } else {
            let r = match (h.exchange, st) {
                (exchange::IKE_AUTH, Some(St::HalfOpen)) => self.auth_request(now_ns, id, &h, p),
                (exchange::CREATE_CHILD_SA, Some(St::Up)) => {
                    self.create_child_request(now_ns, id, &h, p)
                }
                (exchange::CREATE_CHILD_SA, Some(St::Rekeyed)) => {
                    let mut b = Builder::new();
                    b.notify(&Notify::new(notify::TEMPORARY_FAILURE, &[]));
                    self.respond(id, h.exchange, h.mid, &b);
                    Ok(())
                }
                (exchange::INFORMATIONAL, Some(St::Up | St::Rekeyed)) => {
                    self.info_request(now_ns, id, &h, p)
                }
                _ => Err(Dropped::UnexpectedExchange),
            };
            self.pump(now_ns, id);
            r
        }
    }

    fn plain_reply(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        natt: bool,
        h: &Header,
        spi_r: u64,
        b: &Builder,
    ) -> Vec<u8> {
        let rh = Header {
            spi_i: h.spi_i,
            spi_r,
            next: 0,
            version: wire::VERSION,
            exchange: h.exchange,
            flags: flags::RESPONSE,
            mid: h.mid,
            length: 0,
        };
        let msg = wire::plain_message(rh, b);
        let mut d = Vec::new();
        if natt {
            d.extend_from_slice(&[0; 4]);
        }
        d.extend_from_slice(&msg);
        self.emit(dst, src, d);
        msg
    }

    fn responder_init(
        &mut self,
        now_ns: u64,
        src: SocketAddr,
        dst: SocketAddr,
        natt: bool,
        h: &Header,
        msg: &[u8],
    ) -> Result<(), Dropped> {
        // A retransmitted request: answer again.
        if let Some(id) = self.half_open.get(&(src, h.spi_i)) {
            if let Some(sa) = self.sas.get(id) {
                if sa.init_i == msg {
                    if let Some((_, d)) = &sa.last_resp {
                        let d = d.clone();
                        let (a, b) = (sa.local, sa.remote);
                        self.counters.responses_resent += 1;
                        self.emit(a, b, d);
                        return Ok(());
                    }
                }
            }
            return Err(Dropped::OldMessageId);
        }
        let (list, sk) = match wire::walk(h.next, &msg[wire::HEADER_LEN..], wire::HEADER_LEN) {
            Ok(x) => x,
            Err(Malformed::UnsupportedCritical(t)) => {
                let mut b = Builder::new();
                b.notify(&Notify::new(notify::UNSUPPORTED_CRITICAL_PAYLOAD, &[t]));
                self.plain_reply(src, dst, natt, h, 0, &b);
                return Err(Dropped::UnsupportedCritical);
            }
            Err(e) => return Err(e.into()),
        };
        if sk.is_some() {
            return Err(Dropped::Syntax);
        }
        let p = Payloads::decode(&list)?;
        let peer = self
            .cfg
            .peers
            .iter()
            .position(|pc| pc.remote.ip() == src.ip() || pc.remote.ip().is_unspecified())
            .ok_or(Dropped::NoPeer)?;
        let half_open = self.half_open.len();
        if half_open >= self.cfg.max_half_open || self.sas.len() >= self.cfg.max_sas {
            return Err(Dropped::Overload);
        }
        let ni = required(p.nonce.clone())?;
        if half_open >= self.cfg.cookie_threshold {
            let ip = match src.ip() {
                std::net::IpAddr::V4(a) => a.octets().to_vec(),
                std::net::IpAddr::V6(a) => a.octets().to_vec(),
            };
            let want = crypto::cookie(
                self.cookie_secret.expose(),
                &[&ni, &ip, &h.spi_i.to_be_bytes()],
            );
            let first_is_cookie = p.notifies.first().is_some_and(|n| n.ty == notify::COOKIE)
                && p.types.first() == Some(&payload::NOTIFY);
            let ok = first_is_cookie
                && p.notify(notify::COOKIE)
                    .is_some_and(|n| crypto::ct_eq(&n.data, &want));
            if !ok {
                let mut b = Builder::new();
                b.notify(&Notify::new(notify::COOKIE, &want));
                self.plain_reply(src, dst, natt, h, 0, &b);
                self.counters.cookies_sent += 1;
                return Err(Dropped::CookieRequired);
            }
        }
        let props = required(p.sa.as_ref())?;
        let (ke_group, ke_data) = required(p.ke.clone())?;
        let offer = self.cfg.peers[peer].ike.clone();
        let Some((mut reply, suite)) = offer.choose_ike(props) else {
            let mut b = Builder::new();
            b.notify(&Notify::new(notify::NO_PROPOSAL_CHOSEN, &[]));
            self.plain_reply(src, dst, natt, h, 0, &b);
            return Err(Dropped::NoProposal);
        };
        if ke_group != suite.dh.id() {
            let mut b = Builder::new();
            b.notify(&Notify::new(
                notify::INVALID_KE_PAYLOAD,
                &suite.dh.id().to_be_bytes(),
            ));
            self.plain_reply(src, dst, natt, h, 0, &b);
            self.counters.invalid_ke_sent += 1;
            return Err(Dropped::NoProposal);
        }
        let dh = KeyPair::generate(suite.dh, &mut self.rng);
        let shared = dh.agree(&ke_data).map_err(|_| Dropped::InvalidDhPublic)?;
        let spi_r = self.fresh_spi();
        let nr = self.nonce();
        let keys = IkeKeys::derive(
            suite.prf,
            suite.encr.key_len(),
            &shared,
            &ni,
            &nr,
            h.spi_i,
            spi_r,
            None,
        );
        reply.spi.clear();
        let mut b = Builder::new();
        b.push(payload::SA, Proposal::encode_sa(&[reply]));
        b.push(payload::KE, ke_body(suite.dh, dh.public()));
        b.push(payload::NONCE, nr.clone());
        let force = self.cfg.peers[peer].force_encap;
        // The responder does not move by itself: it follows the peer to
        // the NAT-T port when an authenticated message arrives there.
        let encap = natt;
        if p.notify(notify::NAT_DETECTION_SOURCE_IP).is_some() {
            // With force_encap our source hash is made not to match, so
            // the peer moves to the NAT-T port (RFC 3948 without a NAT).
            let mut ours = crypto::nat_hash(h.spi_i, spi_r, dst);
            if force {
                ours[0] ^= 0xff;
            }
            b.notify(&Notify::new(notify::NAT_DETECTION_SOURCE_IP, &ours));
            b.notify(&Notify::new(
                notify::NAT_DETECTION_DESTINATION_IP,
                &crypto::nat_hash(h.spi_i, spi_r, src),
            ));
        }
        let peer_hashes = p
            .notify(notify::SIGNATURE_HASH_ALGORITHMS)
            .map(|n| cert::parse_hashes(&n.data))
            .unwrap_or_default();
        if let Auth::Cert(c) = &self.cfg.peers[peer].auth {
            // RFC 7296 §3.7: name our CA, so that the initiator sends its
            // certificate; RFC 7427 §4: answer the hashes with ours.
            if c.sends_certreq() {
                b.push(payload::CERTREQ, cert::certreq_body(&[c.ca_keyid()]));
            }
            if p.notify(notify::SIGNATURE_HASH_ALGORITHMS).is_some() {
                b.notify(&Notify::new(
                    notify::SIGNATURE_HASH_ALGORITHMS,
                    &cert::announced_hashes(),
                ));
            }
        }
        let mut rh = *h;
        rh.spi_r = spi_r;
        let resp = self.plain_reply(src, dst, natt, &rh, spi_r, &b);
        let id = self.new_id();
        let mut d = Vec::new();
        if natt {
            d.extend_from_slice(&[0; 4]);
        }
        d.extend_from_slice(&resp);
        let sa = Sa {
            peer,
            initiator: false,
            st: St::HalfOpen,
            spi_i: h.spi_i,
            spi_r,
            local: dst,
            remote: src,
            encap,
            suite: Some(suite),
            keys: Some(keys),
            group: suite.dh,
            dh: None,
            ni,
            nr,
            init_i: msg.to_vec(),
            init_r: resp,
            cookie: None,
            my_mid: 0,
            peer_mid: 1,
            out: None,
            ops: VecDeque::new(),
            last_resp: Some((0, d)),
            children: Vec::new(),
            deadline_ns: Some(now_ns.saturating_add(self.cfg.half_open_timeout_ns)),
            collisions: Vec::new(),
            peer_hashes,
        };
        self.by_spi.insert(spi_r, id);
        self.half_open.insert((src, h.spi_i), id);
        self.sas.insert(id, sa);
        Ok(())
    }

    fn fail(&mut self, id: SaId, reason: Reason) {
        self.remove(id, Some(reason));
    }

    fn init_response(
        &mut self,
        now_ns: u64,
        id: SaId,
        h: &Header,
        msg: &[u8],
    ) -> Result<(), Dropped> {
        let (list, sk) = wire::walk(h.next, &msg[wire::HEADER_LEN..], wire::HEADER_LEN)?;
        if sk.is_some() {
            return Err(Dropped::Syntax);
        }
        let p = Payloads::decode(&list)?;
        let sa = self.sas.get_mut(&id).ok_or(Dropped::UnknownSpi)?;
        let offer = self.cfg.peers[sa.peer].ike.clone();
        if let Some(c) = p.notify(notify::COOKIE) {
            if c.data.is_empty() || c.data.len() > 64 || sa.cookie.is_some() {
                return Err(Dropped::Syntax);
            }
            sa.cookie = Some(c.data.clone());
            self.counters.init_restarts += 1;
            self.send_init(now_ns, id);
            return Ok(());
        }
        if let Some(n) = p.notify(notify::INVALID_KE_PAYLOAD) {
            let g = (n.data.len() == 2)
                .then(|| u16::from_be_bytes([n.data[0], n.data[1]]))
                .and_then(Group::from_id)
                .filter(|g| offer.dh.contains(g) && *g != sa.group);
            let Some(g) = g else {
                self.fail(id, Reason::NoProposal);
                return Ok(());
            };
            sa.group = g;
            sa.dh = Some(KeyPair::generate(g, &mut self.rng));
            self.counters.init_restarts += 1;
            self.send_init(now_ns, id);
            return Ok(());
        }
        if let Some(e) = p.error() {
            let r = if e == notify::NO_PROPOSAL_CHOSEN {
                Reason::NoProposal
            } else {
                Reason::PeerError(e)
            };
            self.fail(id, r);
            return Ok(());
        }
        if h.spi_r == 0 {
            return Err(Dropped::Syntax);
        }
        let props = required(p.sa.as_ref())?;
        let Some(suite) = proposal::accept_ike(&offer, props) else {
            self.fail(id, Reason::BadResponse);
            return Ok(());
        };
        let (g, data) = required(p.ke.as_ref())?;
        let nr = required(p.nonce.clone())?;
        if *g != suite.dh.id() || suite.dh != sa.group {
            self.fail(id, Reason::BadResponse);
            return Ok(());
        }
        let shared = sa
            .dh
            .as_ref()
            .ok_or(Dropped::UnexpectedResponse)?
            .agree(data)
            .map_err(|_| Dropped::InvalidDhPublic)?;
        sa.spi_r = h.spi_r;
        sa.nr = nr;
        sa.peer_hashes = p
            .notify(notify::SIGNATURE_HASH_ALGORITHMS)
            .map(|n| cert::parse_hashes(&n.data))
            .unwrap_or_default();
        sa.suite = Some(suite);
        sa.dh = None;
        sa.init_r = msg.to_vec();
        sa.keys = Some(IkeKeys::derive(
            suite.prf,
            suite.encr.key_len(),
            &shared,
            &sa.ni,
            &sa.nr,
            sa.spi_i,
            sa.spi_r,
            None,
        ));
        // NAT detection (§2.23): a responder whose hashes do not match
        // ours, or our wish to encapsulate, moves us to the NAT-T port.
        let pc = &self.cfg.peers[sa.peer];
        let mut nat = false;
        if let Some(n) = p.notify(notify::NAT_DETECTION_DESTINATION_IP) {
            nat |= n.data != crypto::nat_hash(sa.spi_i, sa.spi_r, sa.local);
        }
        if p.notify(notify::NAT_DETECTION_SOURCE_IP).is_some() {
            let want = crypto::nat_hash(sa.spi_i, sa.spi_r, sa.remote);
            nat |= !p
                .notifies
                .iter()
                .any(|n| n.ty == notify::NAT_DETECTION_SOURCE_IP && n.data == want);
        }
        let has_natd = p.notify(notify::NAT_DETECTION_SOURCE_IP).is_some();
        if has_natd && (nat || pc.force_encap) {
            sa.encap = true;
            sa.local.set_port(self.cfg.natt_port);
            sa.remote.set_port(self.cfg.natt_port);
        }
        sa.out = None;
        sa.my_mid = 1;
        sa.st = St::AuthSent;
        // IKE_AUTH: IDi, [CERT], [CERTREQ], [IDr], AUTH, SA, TSi, TSr.
        let pc = &self.cfg.peers[sa.peer];
        let idi = pc.local_id.encode();
        let keys = sa.keys.as_ref().ok_or(Dropped::UnexpectedResponse)?;
        let auth = match auth_value(
            &pc.auth,
            suite.prf,
            &sa.init_i,
            &sa.nr,
            &keys.sk_pi,
            &idi,
            &sa.peer_hashes,
        ) {
            Ok(a) => a,
            Err(_) => {
                // The responder announced no hash our key signs with: it
                // could not verify us.
                self.fail(id, Reason::NoProposal);
                return Ok(());
            }
        };
        let child = pc.child.clone();
        let (lts, rts) = (pc.local_ts.clone(), pc.remote_ts.clone());
        let idr = pc.remote_id.encode();
        let ours = pc.auth.clone();
        let spi_in = self.fresh_child_spi();
        let mut b = Builder::new();
        b.push(payload::IDI, idi);
        if let Auth::Cert(c) = &ours {
            b.push(payload::CERT, cert_body(c));
            if c.sends_certreq() {
                b.push(payload::CERTREQ, cert::certreq_body(&[c.ca_keyid()]));
            }
        }
        b.push(payload::IDR, idr);
        b.push(payload::AUTH, auth);
        b.push(
            payload::SA,
            Proposal::encode_sa(&[child.proposal(
                protocol::ESP,
                spi_in.to_be_bytes().to_vec(),
                false,
            )]),
        );
        b.push(payload::TSI, TrafficSelector::encode_list(&lts));
        b.push(payload::TSR, TrafficSelector::encode_list(&rts));
        self.request(now_ns, id, exchange::IKE_AUTH, &b, Pending::Auth { spi_in });
        Ok(())
    }

    fn auth_request(
        &mut self,
        now_ns: u64,
        id: SaId,
        h: &Header,
        p: Payloads,
    ) -> Result<(), Dropped> {
        let unix = self.wall_clock(now_ns);
        let sa = self.sas.get(&id).ok_or(Dropped::UnknownSpi)?;
        let pc = self.cfg.peers[sa.peer].clone();
        let suite = sa.suite.ok_or(Dropped::UnknownSpi)?;
        let idi = required(p.idi.as_ref())?;
        let auth = required(p.auth.as_ref())?;
        let keys = sa.keys.as_ref().ok_or(Dropped::UnknownSpi)?;
        let idr = pc.local_id.encode();
        let checked = if *idi != pc.remote_id || p.idr.as_ref().is_some_and(|r| *r != pc.local_id) {
            Err(Dropped::AuthFailed)
        } else {
            let peer = Signed {
                prf: suite.prf,
                msg: &sa.init_i,
                nonce: &sa.nr,
                sk_p: &keys.sk_pi,
                id: idi,
            };
            check_auth(&pc.auth, &peer, auth.0, &auth.1, &p, unix)
        };
        // Ours, unless the initiator announced no hash our key signs with.
        let ours = checked.and_then(|()| {
            auth_value(
                &pc.auth,
                suite.prf,
                &sa.init_r,
                &sa.ni,
                &keys.sk_pr,
                &idr,
                &sa.peer_hashes,
            )
            .map_err(|_| Dropped::NoProposal)
        });
        let ours = match ours {
            Ok(a) => a,
            Err(e) => {
                let mut b = Builder::new();
                b.notify(&Notify::new(notify::AUTHENTICATION_FAILED, &[]));
                self.respond(id, h.exchange, h.mid, &b);
                self.remove(id, None);
                return Err(e);
            }
        };
        let (ni, nr) = (sa.ni.clone(), sa.nr.clone());
        let (spi_i, spi_r) = (sa.spi_i, sa.spi_r);
        let mut b = Builder::new();
        b.push(payload::IDR, idr);
        if let Auth::Cert(c) = &pc.auth {
            b.push(payload::CERT, cert_body(c));
        }
        b.push(payload::AUTH, ours);
        // The Child SA: no DH in IKE_AUTH (its keys come from SK_d and the
        // IKE_SA_INIT nonces).
        let child = self.negotiate_child(&pc, &p, None, true);
        match &child {
            Ok(c) => {
                b.push(
                    payload::SA,
                    Proposal::encode_sa(std::slice::from_ref(&c.reply)),
                );
                b.push(payload::TSI, TrafficSelector::encode_list(&c.tsi));
                b.push(payload::TSR, TrafficSelector::encode_list(&c.tsr));
            }
            Err(n) => {
                b.notify(&Notify::new(*n, &[]));
            }
        }
        self.respond(id, h.exchange, h.mid, &b);
        let sa = self.sas.get_mut(&id).ok_or(Dropped::UnknownSpi)?;
        sa.st = St::Up;
        sa.deadline_ns = None;
        self.half_open.retain(|_, v| *v != id);
        self.counters.ike_up += 1;
        self.event(Event::IkeUp {
            sa: id,
            peer: pc.name.clone(),
            spi_i,
            spi_r,
            suite,
            initiator: false,
            rekey_of: None,
        });
        match child {
            Ok(c) => {
                let k = NewChild {
                    suite: c.suite,
                    spi_in: c.spi_in,
                    spi_out: c.spi_out,
                    ts_local: c.tsr,
                    ts_remote: c.tsi,
                    rekey_of: None,
                    esn_refused: !c.suite.esn && pc.child.esn.first() == Some(&true),
                };
                self.install_child(id, &pc, k, None, &ni, &nr, false);
            }
            Err(n) => self.event(Event::ChildFailed {
                sa: id,
                reason: child_reason(n),
            }),
        }
        Ok(())
    }

    /// Chooses a Child SA proposal and narrows the selectors as responder
    /// of the exchange; the error is the notify to answer with.
    fn negotiate_child(
        &mut self,
        pc: &PeerConfig,
        p: &Payloads,
        ke_group: Option<u16>,
        in_auth: bool,
    ) -> Result<Negotiated, u16> {
        if p.notify(notify::USE_TRANSPORT_MODE).is_some() {
            return Err(notify::NO_PROPOSAL_CHOSEN);
        }
        let mut props = p.sa.clone().ok_or(notify::INVALID_SYNTAX)?;
        if in_auth {
            for pr in &mut props {
                pr.dh.clear();
            }
        }
        let (tsi, tsr) = match (&p.tsi, &p.tsr) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err(notify::INVALID_SYNTAX),
        };
        let Some((mut reply, suite)) = pc.child.choose_child(&props, ke_group) else {
            return Err(notify::NO_PROPOSAL_CHOSEN);
        };
        let spi_out = props
            .iter()
            .find(|x| x.num == reply.num && x.protocol == protocol::ESP)
            .and_then(|x| x.spi.get(..4))
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
            .ok_or(notify::INVALID_SYNTAX)?;
        let ntsi = narrow(tsi, &pc.remote_ts);
        let ntsr = narrow(tsr, &pc.local_ts);
        if ntsi.is_empty() || ntsr.is_empty() {
            return Err(notify::TS_UNACCEPTABLE);
        }
        let spi_in = self.fresh_child_spi();
        reply.spi = spi_in.to_be_bytes().to_vec();
        Ok(Negotiated {
            reply,
            tsi: ntsi,
            tsr: ntsr,
            suite,
            spi_in,
            spi_out,
        })
    }

    /// Records a Child SA and reports it. `we_initiated`: we sent the
    /// request of the exchange that made it, so our nonce is Ni.
    #[allow(clippy::too_many_arguments)]
    fn install_child(
        &mut self,
        id: SaId,
        pc: &PeerConfig,
        c: NewChild,
        shared: Option<&Secret>,
        ni: &[u8],
        nr: &[u8],
        we_initiated: bool,
    ) {
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        let Some(keys) = sa.keys.as_ref() else { return };
        let (i2r, r2i) = keys.child_keys(c.suite.encr.key_len(), shared, ni, nr);
        let (key_out, key_in) = if we_initiated { (i2r, r2i) } else { (r2i, i2r) };
        sa.children.push(Child {
            spi_in: c.spi_in,
            spi_out: c.spi_out,
        });
        let info = ChildSa {
            ike: id,
            peer: pc.name.clone(),
            spi_in: c.spi_in,
            spi_out: c.spi_out,
            key_in,
            key_out,
            suite: c.suite,
            esn_refused: c.esn_refused,
            ts_local: c.ts_local,
            ts_remote: c.ts_remote,
            lifetime: pc.lifetime,
            rekey_of: c.rekey_of,
            local: sa.local,
            remote: sa.remote,
            encap: sa.encap,
        };
        self.counters.child_up += 1;
        self.event(Event::ChildUp(info));
    }

    fn on_response(
        &mut self,
        now_ns: u64,
        id: SaId,
        _h: &Header,
        p: Payloads,
        pending: Pending,
    ) -> Result<(), Dropped> {
        let Some(sa) = self.sas.get(&id) else {
            return Err(Dropped::UnknownSpi);
        };
        let pc = self.cfg.peers[sa.peer].clone();
        match pending {
            Pending::Init => Err(Dropped::UnexpectedResponse),
            Pending::Auth { spi_in } => self.auth_response(now_ns, id, &pc, p, spi_in),
            Pending::Child {
                rekey_of,
                spi_in,
                ni,
                dh,
                pfs,
            } => {
                if let Some(n) = p.notify(notify::INVALID_KE_PAYLOAD) {
                    let g = (n.data.len() == 2)
                        .then(|| u16::from_be_bytes([n.data[0], n.data[1]]))
                        .and_then(Group::from_id)
                        .filter(|g| {
                            pc.child.dh.contains(g) && dh.as_ref().map(|d| d.group()) != Some(*g)
                        });
                    if let Some(g) = g {
                        self.counters.init_restarts += 1;
                        self.send_create_child(now_ns, id, rekey_of, pfs, Some(g));
                        return Ok(());
                    }
                }
                if let Some(e) = p.error() {
                    self.event(Event::ChildFailed {
                        sa: id,
                        reason: child_reason(e),
                    });
                    return Ok(());
                }
                let got_ke = p.ke.as_ref().map(|k| k.0);
                let want_ke = dh.as_ref().map(|d| d.group().id());
                let ok =
                    p.sa.as_ref()
                        .and_then(|props| proposal::accept_child(&pc.child, props, want_ke));
                let (Some((suite, spi_out)), Some(nr), Some(tsi), Some(tsr)) =
                    (ok, p.nonce.as_ref(), p.tsi.as_ref(), p.tsr.as_ref())
                else {
                    self.event(Event::ChildFailed {
                        sa: id,
                        reason: Reason::BadResponse,
                    });
                    return Ok(());
                };
                if got_ke != want_ke
                    || !within_all(tsi, &pc.local_ts)
                    || !within_all(tsr, &pc.remote_ts)
                {
                    self.event(Event::ChildFailed {
                        sa: id,
                        reason: Reason::BadResponse,
                    });
                    return Ok(());
                }
                let shared = match (&dh, &p.ke) {
                    (Some(k), Some((_, data))) => {
                        Some(k.agree(data).map_err(|_| Dropped::InvalidDhPublic)?)
                    }
                    _ => None,
                };
                let c = NewChild {
                    suite,
                    spi_in,
                    spi_out,
                    ts_local: tsi.clone(),
                    ts_remote: tsr.clone(),
                    rekey_of,
                    esn_refused: !suite.esn && pc.child.esn.first() == Some(&true),
                };
                self.install_child(id, &pc, c, shared.as_ref(), &ni, nr, true);
                if let (Some(old), Some(sa)) = (rekey_of, self.sas.get_mut(&id)) {
                    // After a collision the SA made with the lowest of the
                    // four nonces is redundant: its maker deletes it, and the
                    // maker of the other deletes the old one (§2.8.1).
                    let ours_redundant = match sa.collisions.iter().position(|c| c.0 == old) {
                        Some(i) => {
                            let (_, _, theirs) = sa.collisions.remove(i);
                            ni.clone().min(nr.clone()) < theirs
                        }
                        None => false,
                    };
                    let victim = if ours_redundant { spi_in } else { old };
                    sa.ops.push_front(Op::DeleteChild { spi_in: victim });
                }
                Ok(())
            }
            Pending::RekeyIke { spi, ni, dh } => {
                if let Some(n) = p.notify(notify::INVALID_KE_PAYLOAD) {
                    let g = (n.data.len() == 2)
                        .then(|| u16::from_be_bytes([n.data[0], n.data[1]]))
                        .and_then(Group::from_id)
                        .filter(|g| pc.ike.dh.contains(g) && dh.group() != *g);
                    if let Some(g) = g {
                        self.counters.init_restarts += 1;
                        self.send_rekey_ike(now_ns, id, Some(g));
                        return Ok(());
                    }
                }
                if p.error().is_some() {
                    // TEMPORARY_FAILURE (a collision) or a refusal: the old
                    // SA stays; the caller may try again.
                    return Ok(());
                }
                let ok = p.sa.as_ref().and_then(|props| {
                    let s = proposal::accept_ike(&pc.ike, props)?;
                    let spi = props.first()?.spi.get(..8)?;
                    Some((s, u64::from_be_bytes(spi.try_into().ok()?)))
                });
                let (Some((suite, peer_spi)), Some(nr), Some((g, data))) =
                    (ok, p.nonce.as_ref(), p.ke.as_ref())
                else {
                    return Err(Dropped::Syntax);
                };
                if *g != dh.group().id() || suite.dh != dh.group() || peer_spi == 0 {
                    return Err(Dropped::Syntax);
                }
                let shared = dh.agree(data).map_err(|_| Dropped::InvalidDhPublic)?;
                self.replace_ike(now_ns, id, suite, &shared, true, spi, peer_spi, &ni, nr);
                Ok(())
            }
            Pending::DeleteChild | Pending::Liveness => Ok(()),
            Pending::DeleteIke => {
                let st = self.sas.get(&id).map(|s| s.st);
                if st == Some(St::Rekeyed) {
                    self.remove(id, None);
                } else {
                    self.remove(id, Some(Reason::Deleted));
                }
                Ok(())
            }
        }
    }

    fn auth_response(
        &mut self,
        now_ns: u64,
        id: SaId,
        pc: &PeerConfig,
        p: Payloads,
        spi_in: u32,
    ) -> Result<(), Dropped> {
        let Some(sa) = self.sas.get(&id) else {
            return Err(Dropped::UnknownSpi);
        };
        let suite = sa.suite.ok_or(Dropped::UnknownSpi)?;
        let Some((method, auth)) = p.auth.as_ref() else {
            let r = match p.error() {
                Some(notify::AUTHENTICATION_FAILED) => Reason::AuthFailed,
                Some(e) => Reason::PeerError(e),
                None => Reason::BadResponse,
            };
            self.fail(id, r);
            return Ok(());
        };
        let idr = required(p.idr.as_ref())?;
        let keys = sa.keys.as_ref().ok_or(Dropped::UnknownSpi)?;
        let checked = if *idr != pc.remote_id {
            Err(Dropped::AuthFailed)
        } else {
            let peer = Signed {
                prf: suite.prf,
                msg: &sa.init_r,
                nonce: &sa.ni,
                sk_p: &keys.sk_pr,
                id: idr,
            };
            check_auth(&pc.auth, &peer, *method, auth, &p, self.wall_clock(now_ns))
        };
        if let Err(e) = checked {
            // The responder believes the SA is up: tell it (§2.21.2), once
            // (the SA is gone here, nothing retransmits).
            let mut b = Builder::new();
            b.notify(&Notify::new(notify::AUTHENTICATION_FAILED, &[]));
            let mid = self.sas.get(&id).map_or(0, |s| s.my_mid);
            if let Some(msg) = self.seal(id, exchange::INFORMATIONAL, false, mid, &b) {
                if let Some(sa) = self.sas.get(&id) {
                    let d = self.datagram(sa, msg);
                    let (src, dst) = (sa.local, sa.remote);
                    self.emit(src, dst, d);
                }
            }
            self.fail(id, Reason::AuthFailed);
            return Err(e);
        }
        let (ni, nr) = (sa.ni.clone(), sa.nr.clone());
        let (spi_i, spi_r) = (sa.spi_i, sa.spi_r);
        if let Some(sa) = self.sas.get_mut(&id) {
            sa.st = St::Up;
            sa.init_i.clear();
            sa.init_r.clear();
        }
        self.counters.ike_up += 1;
        self.event(Event::IkeUp {
            sa: id,
            peer: pc.name.clone(),
            spi_i,
            spi_r,
            suite,
            initiator: true,
            rekey_of: None,
        });
        let ok =
            p.sa.as_ref()
                .and_then(|props| proposal::accept_child(&pc.child, props, None));
        match (ok, p.tsi.as_ref(), p.tsr.as_ref()) {
            (Some((cs, spi_out)), Some(tsi), Some(tsr))
                if within_all(tsi, &pc.local_ts) && within_all(tsr, &pc.remote_ts) =>
            {
                let c = NewChild {
                    suite: cs,
                    spi_in,
                    spi_out,
                    ts_local: tsi.clone(),
                    ts_remote: tsr.clone(),
                    rekey_of: None,
                    esn_refused: !cs.esn && pc.child.esn.first() == Some(&true),
                };
                self.install_child(id, pc, c, None, &ni, &nr, true);
            }
            _ => {
                let reason = p.error().map_or(Reason::BadResponse, child_reason);
                self.event(Event::ChildFailed { sa: id, reason });
            }
        }
        Ok(())
    }

    /// A new IKE SA replaces `old` (a rekey): Child SAs move over, the old
    /// one waits for its DELETE (sent by the initiator of the rekey).
    #[allow(clippy::too_many_arguments)]
    fn replace_ike(
        &mut self,
        now_ns: u64,
        old: SaId,
        suite: IkeSuite,
        shared: &Secret,
        we_initiated: bool,
        our_spi: u64,
        peer_spi: u64,
        ni: &[u8],
        nr: &[u8],
    ) {
        let Some(o) = self.sas.get_mut(&old) else {
            return;
        };
        let Some(ok) = o.keys.as_ref() else { return };
        let (spi_i, spi_r) = if we_initiated {
            (our_spi, peer_spi)
        } else {
            (peer_spi, our_spi)
        };
        let keys = IkeKeys::derive(
            suite.prf,
            suite.encr.key_len(),
            shared,
            ni,
            nr,
            spi_i,
            spi_r,
            Some((ok.prf, &ok.sk_d)),
        );
        let children = std::mem::take(&mut o.children);
        let ops: VecDeque<Op> = o.ops.drain(..).filter(|op| *op != Op::DeleteIke).collect();
        o.st = St::Rekeyed;
        o.deadline_ns = Some(now_ns.saturating_add(self.cfg.half_open_timeout_ns));
        if we_initiated {
            o.ops.push_front(Op::DeleteIke);
        }
        let sa = Sa {
            peer: o.peer,
            initiator: we_initiated,
            st: St::Up,
            spi_i,
            spi_r,
            local: o.local,
            remote: o.remote,
            encap: o.encap,
            suite: Some(suite),
            keys: Some(keys),
            group: suite.dh,
            dh: None,
            ni: Vec::new(),
            nr: Vec::new(),
            init_i: Vec::new(),
            init_r: Vec::new(),
            cookie: None,
            my_mid: 0,
            peer_mid: 0,
            out: None,
            ops,
            last_resp: None,
            children,
            deadline_ns: None,
            collisions: Vec::new(),
            peer_hashes: Vec::new(),
        };
        let peer = self.cfg.peers[sa.peer].name.clone();
        let id = self.new_id();
        self.by_spi.insert(our_spi, id);
        self.sas.insert(id, sa);
        self.counters.ike_up += 1;
        self.event(Event::IkeUp {
            sa: id,
            peer,
            spi_i,
            spi_r,
            suite,
            initiator: we_initiated,
            rekey_of: Some(old),
        });
        self.pump(now_ns, old);
    }

    fn create_child_request(
        &mut self,
        now_ns: u64,
        id: SaId,
        h: &Header,
        p: Payloads,
    ) -> Result<(), Dropped> {
        let Some(sa) = self.sas.get(&id) else {
            return Err(Dropped::UnknownSpi);
        };
        let pc = self.cfg.peers[sa.peer].clone();
        let reply_err = |this: &mut Self, n: u16, data: &[u8]| {
            let mut b = Builder::new();
            b.notify(&Notify::new(n, data));
            this.respond(id, h.exchange, h.mid, &b);
        };
        // Our own request outstanding on this SA is a collision; RFC 7296
        // §2.25 lets us refuse with TEMPORARY_FAILURE (the peer retries).
        let busy = matches!(
            sa.out.as_ref().map(|o| &o.pending),
            Some(Pending::RekeyIke { .. } | Pending::Child { .. })
        );
        let Some(props) = p.sa.as_ref() else {
            reply_err(self, notify::INVALID_SYNTAX, &[]);
            return Err(Dropped::Syntax);
        };
        let Some(ni) = p.nonce.clone() else {
            reply_err(self, notify::INVALID_SYNTAX, &[]);
            return Err(Dropped::Syntax);
        };
        if props.first().is_some_and(|x| x.protocol == protocol::IKE) {
            // Rekeying the IKE SA.
            if busy {
                reply_err(self, notify::TEMPORARY_FAILURE, &[]);
                return Ok(());
            }
            let Some((mut reply, suite)) = pc.ike.choose_ike(props) else {
                reply_err(self, notify::NO_PROPOSAL_CHOSEN, &[]);
                return Err(Dropped::NoProposal);
            };
            let peer_spi = props
                .iter()
                .find(|x| x.num == reply.num)
                .and_then(|x| x.spi.get(..8))
                .and_then(|s| s.try_into().ok())
                .map(u64::from_be_bytes)
                .filter(|&s| s != 0);
            let Some(peer_spi) = peer_spi else {
                reply_err(self, notify::INVALID_SYNTAX, &[]);
                return Err(Dropped::Syntax);
            };
            let Some((g, data)) = p.ke.as_ref() else {
                reply_err(self, notify::INVALID_SYNTAX, &[]);
                return Err(Dropped::Syntax);
            };
            if *g != suite.dh.id() {
                reply_err(
                    self,
                    notify::INVALID_KE_PAYLOAD,
                    &suite.dh.id().to_be_bytes(),
                );
                self.counters.invalid_ke_sent += 1;
                return Err(Dropped::NoProposal);
            }
            let dh = KeyPair::generate(suite.dh, &mut self.rng);
            let shared = dh.agree(data).map_err(|_| Dropped::InvalidDhPublic)?;
            let our_spi = self.fresh_spi();
            reply.spi = our_spi.to_be_bytes().to_vec();
            let nr = self.nonce();
            let mut b = Builder::new();
            b.push(payload::SA, Proposal::encode_sa(&[reply]));
            b.push(payload::NONCE, nr.clone());
            b.push(payload::KE, ke_body(suite.dh, dh.public()));
            self.respond(id, h.exchange, h.mid, &b);
            self.replace_ike(
                now_ns, id, suite, &shared, false, our_spi, peer_spi, &ni, &nr,
            );
            return Ok(());
        }
        // A Child SA, new or rekeyed; not while we rekey the IKE SA
        // (§2.25.2: the peer retries on the new one).
        if matches!(
            sa.out.as_ref().map(|o| &o.pending),
            Some(Pending::RekeyIke { .. })
        ) {
            reply_err(self, notify::TEMPORARY_FAILURE, &[]);
            return Ok(());
        }
        let rekey_of = match p.notify(notify::REKEY_SA) {
            Some(n) if n.protocol == protocol::ESP && n.spi.len() == 4 => {
                let spi = u32::from_be_bytes([n.spi[0], n.spi[1], n.spi[2], n.spi[3]]);
                match sa.children.iter().find(|c| c.spi_out == spi) {
                    Some(c) => Some(c.spi_in),
                    None => {
                        let mut b = Builder::new();
                        b.notify(&Notify {
                            protocol: protocol::ESP,
                            spi: n.spi.clone(),
                            ty: notify::CHILD_SA_NOT_FOUND,
                            data: vec![],
                        });
                        self.respond(id, h.exchange, h.mid, &b);
                        return Ok(());
                    }
                }
            }
            Some(_) => {
                reply_err(self, notify::INVALID_SYNTAX, &[]);
                return Err(Dropped::Syntax);
            }
            None => None,
        };
        let ke_group = p.ke.as_ref().map(|k| k.0);
        let c = match self.negotiate_child(&pc, &p, ke_group, false) {
            Ok(c) => c,
            Err(n) => {
                // A proposal we could take with another group: ask for it.
                if n == notify::NO_PROPOSAL_CHOSEN && ke_group.is_some() {
                    let other = pc
                        .child
                        .dh
                        .iter()
                        .find(|g| pc.child.choose_child(props, Some(g.id())).is_some());
                    if let Some(g) = other {
                        reply_err(self, notify::INVALID_KE_PAYLOAD, &g.id().to_be_bytes());
                        self.counters.invalid_ke_sent += 1;
                        return Err(Dropped::NoProposal);
                    }
                }
                reply_err(self, n, &[]);
                return Ok(());
            }
        };
        let (shared, our_ke) = match (c.suite.dh, p.ke.as_ref()) {
            (Some(g), Some((_, data))) => {
                let dh = KeyPair::generate(g, &mut self.rng);
                let s = dh.agree(data).map_err(|_| Dropped::InvalidDhPublic)?;
                (Some(s), Some(ke_body(g, dh.public())))
            }
            _ => (None, None),
        };
        let nr = self.nonce();
        let mut b = Builder::new();
        b.push(
            payload::SA,
            Proposal::encode_sa(std::slice::from_ref(&c.reply)),
        );
        b.push(payload::NONCE, nr.clone());
        if let Some(k) = our_ke {
            b.push(payload::KE, k);
        }
        b.push(payload::TSI, TrafficSelector::encode_list(&c.tsi));
        b.push(payload::TSR, TrafficSelector::encode_list(&c.tsr));
        self.respond(id, h.exchange, h.mid, &b);
        let k = NewChild {
            suite: c.suite,
            spi_in: c.spi_in,
            spi_out: c.spi_out,
            ts_local: c.tsr,
            ts_remote: c.tsi,
            rekey_of,
            esn_refused: !c.suite.esn && pc.child.esn.first() == Some(&true),
        };
        let new_in = k.spi_in;
        self.install_child(id, &pc, k, shared.as_ref(), &ni, &nr, false);
        // Our own rekey of the same Child SA is under way: remember the
        // peer's exchange, to keep one of the two new SAs (§2.8.1).
        if let (Some(old), Some(sa)) = (rekey_of, self.sas.get_mut(&id)) {
            let ours = matches!(
                sa.out.as_ref().map(|o| &o.pending),
                Some(Pending::Child { rekey_of: Some(x), .. }) if *x == old
            );
            if ours && sa.collisions.len() < 16 {
                sa.collisions
                    .push((old, new_in, ni.clone().min(nr.clone())));
            }
        }
        Ok(())
    }

    fn info_request(
        &mut self,
        now_ns: u64,
        id: SaId,
        h: &Header,
        p: Payloads,
    ) -> Result<(), Dropped> {
        let mut b = Builder::new();
        let mut delete_ike = false;
        let mut gone = Vec::new();
        if let Some(sa) = self.sas.get_mut(&id) {
            for d in &p.deletes {
                match d.protocol {
                    protocol::IKE => delete_ike = true,
                    protocol::ESP => {
                        let mut ours = Vec::new();
                        for spi in &d.spis {
                            if let Some(i) = sa.children.iter().position(|c| c.spi_out == *spi) {
                                let c = sa.children.remove(i);
                                ours.push(c.spi_in);
                                gone.push(c);
                            }
                        }
                        if !ours.is_empty() {
                            b.push(
                                payload::DELETE,
                                Delete {
                                    protocol: protocol::ESP,
                                    spis: ours,
                                }
                                .encode(),
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
        if delete_ike {
            b = Builder::new();
        }
        self.respond(id, h.exchange, h.mid, &b);
        for c in gone {
            self.event(Event::ChildDown {
                sa: id,
                spi_in: c.spi_in,
                spi_out: c.spi_out,
                reason: ChildReason::PeerDeleted,
            });
        }
        if delete_ike {
            let rekeyed = self.sas.get(&id).is_some_and(|s| s.st == St::Rekeyed);
            // Keep answering a retransmitted DELETE for a moment: the SA
            // lingers (Rekeyed, no children) until its deadline.
            if let Some(sa) = self.sas.get_mut(&id) {
                let children = std::mem::take(&mut sa.children);
                sa.st = St::Rekeyed;
                sa.out = None;
                sa.ops.clear();
                sa.deadline_ns =
                    Some(now_ns.saturating_add(self.cfg.retransmit_initial_ns.saturating_mul(8)));
                for c in children {
                    self.event(Event::ChildDown {
                        sa: id,
                        spi_in: c.spi_in,
                        spi_out: c.spi_out,
                        reason: ChildReason::IkeGone,
                    });
                }
            }
            if !rekeyed {
                self.event(Event::IkeDown {
                    sa: id,
                    reason: Reason::PeerDeleted,
                });
            }
        }
        Ok(())
    }
}

struct Negotiated {
    reply: Proposal,
    tsi: Vec<TrafficSelector>,
    tsr: Vec<TrafficSelector>,
    suite: ChildSuite,
    spi_in: u32,
    spi_out: u32,
}

struct NewChild {
    suite: ChildSuite,
    spi_in: u32,
    spi_out: u32,
    ts_local: Vec<TrafficSelector>,
    ts_remote: Vec<TrafficSelector>,
    rekey_of: Option<u32>,
    esn_refused: bool,
}

fn ke_body(g: Group, data: &[u8]) -> Vec<u8> {
    let mut v = g.id().to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(data);
    v
}

fn auth_method(a: &Auth) -> u8 {
    match a {
        Auth::Psk(_) => 2,
        Auth::Cert(_) => cert::AUTH_DIGITAL_SIGNATURE,
    }
}

/// The CERT payload's body with our certificate.
fn cert_body(c: &Credentials) -> Vec<u8> {
    let mut v = vec![cert::X509_SIGNATURE];
    v.extend_from_slice(c.certificate());
    v
}

/// The AUTH payload's body (method, reserved, data) for our credentials;
/// `peer_hashes` are those the peer announced (RFC 7427 §4). Fails when
/// none of them is the one our signature needs.
fn auth_value(
    a: &Auth,
    prf: crypto::Prf,
    msg: &[u8],
    nonce: &[u8],
    sk_p: &Secret,
    id_body: &[u8],
    peer_hashes: &[u16],
) -> Result<Vec<u8>, cert::CertError> {
    let mut v = vec![auth_method(a), 0, 0, 0];
    match a {
        Auth::Psk(k) => {
            let data = crypto::psk_auth(prf, k.expose(), msg, nonce, sk_p, id_body);
            v.extend_from_slice(data.expose());
        }
        Auth::Cert(c) => {
            let octets = crypto::signed_octets(prf, msg, nonce, sk_p, id_body);
            v.extend_from_slice(&c.sign(&octets, peer_hashes)?);
        }
    }
    Ok(v)
}

/// What the peer's AUTH covers: its first message, our nonce, its
/// identity under its SK_p.
struct Signed<'a> {
    prf: crypto::Prf,
    msg: &'a [u8],
    nonce: &'a [u8],
    sk_p: &'a Secret,
    id: &'a Identity,
}

/// Checks the peer's AUTH payload (method, data) the way our credentials
/// say: the PSK's MAC, or the peer's certificate (CERT payloads of `p`,
/// validated at the wall-clock time `unix`) and its signature.
fn check_auth(
    a: &Auth,
    s: &Signed<'_>,
    method: u8,
    data: &[u8],
    p: &Payloads,
    unix: Option<u64>,
) -> Result<(), Dropped> {
    let id_body = s.id.encode();
    match a {
        Auth::Psk(k) => {
            let want = crypto::psk_auth(s.prf, k.expose(), s.msg, s.nonce, s.sk_p, &id_body);
            if method == auth_method(a) && crypto::ct_eq(data, want.expose()) {
                Ok(())
            } else {
                Err(Dropped::AuthFailed)
            }
        }
        Auth::Cert(c) => {
            c.verify_peer(&p.certs, s.id, unix)
                .map_err(|_| Dropped::BadCertificate)?;
            let octets = crypto::signed_octets(s.prf, s.msg, s.nonce, s.sk_p, &id_body);
            Credentials::verify_auth(&p.certs, method, data, &octets)
                .map(|_| ())
                .map_err(|_| Dropped::AuthFailed)
        }
    }
}

fn child_reason(n: u16) -> Reason {
    match n {
        notify::NO_PROPOSAL_CHOSEN => Reason::NoProposal,
        notify::TS_UNACCEPTABLE => Reason::TsUnacceptable,
        notify::AUTHENTICATION_FAILED => Reason::AuthFailed,
        e => Reason::PeerError(e),
    }
}
