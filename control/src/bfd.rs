//! BFD (RFC 5880) in asynchronous mode: one session's state machine,
//! sans-IO, and the control packet's wire format.
//!
//! A [`Session`] takes time (`now_ns`, any monotonic nanosecond scale)
//! and received control packets (the UDP payload, RFC 5881 port 3784),
//! and gives back control packets to send and state changes. The caller
//! owns the socket or the punt/inject path, checks what belongs to the
//! transport (the TTL of 255 that RFC 5881 §5 and RFC 5082 ask for, the
//! source address, the port a single-hop session is bound to) and
//! demultiplexes to the session; everything from the BFD header on is
//! checked here, as RFC 5880 §6.8.6 says.
//!
//! What is implemented: the three-way handshake (Down, Init, Up) and
//! AdminDown; the detection time; transmission jitter (§6.8.7); the
//! Poll Sequence that changes of the timers start (§6.8.3), with a slow
//! transmit interval (one second) while the session is not Up; and
//! Meticulous Keyed SHA1 authentication (§6.7.4). Demand mode and the
//! Echo function are not: a remote that asks for demand mode is still
//! sent periodic packets, and echo packets are never asked for (Required
//! Min Echo RX Interval is zero).

use sha1::{Digest, Sha1};

/// The BFD version this module speaks.
pub const VERSION: u8 = 1;
/// UDP destination port of single-hop control packets (RFC 5881 §4).
pub const UDP_PORT: u16 = 3784;
/// The IP TTL (hop limit) single-hop packets are sent with and must
/// arrive with (RFC 5881 §5, the GTSM of RFC 5082).
pub const TTL: u8 = 255;
/// Length of the mandatory section of a control packet.
pub const HEADER_LEN: usize = 24;
/// Length of a Keyed / Meticulous Keyed SHA1 authentication section.
pub const SHA1_AUTH_LEN: usize = 28;
/// Longest control packet this module sends.
pub const MAX_PACKET: usize = HEADER_LEN + SHA1_AUTH_LEN;
/// Authentication type of Meticulous Keyed SHA1 (RFC 5880 §4.1).
pub const AUTH_METICULOUS_KEYED_SHA1: u8 = 5;
/// The transmit interval while the session is not Up (RFC 5880 §6.8.3:
/// not less than one second), in microseconds.
pub const SLOW_TX_US: u32 = 1_000_000;

/// Session state (RFC 5880 §4.1, the `Sta` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum State {
    /// Held down by the operator.
    AdminDown,
    /// Down.
    Down,
    /// The remote is heard, the three-way handshake is under way.
    Init,
    /// Up.
    Up,
}

impl State {
    fn from_bits(b: u8) -> State {
        match b & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    fn bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// The state's name as RFC 5880 writes it.
    pub fn name(self) -> &'static str {
        match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Diagnostic codes (RFC 5880 §4.1, the `Diag` field).
pub mod diag {
    /// No diagnostic.
    pub const NONE: u8 = 0;
    /// Control Detection Time Expired.
    pub const DETECT_EXPIRED: u8 = 1;
    /// Neighbor Signaled Session Down.
    pub const NEIGHBOR_DOWN: u8 = 3;
    /// Administratively Down.
    pub const ADMIN_DOWN: u8 = 7;

    /// A diagnostic's meaning.
    pub fn name(d: u8) -> &'static str {
        match d {
            0 => "none",
            1 => "control detection time expired",
            2 => "echo function failed",
            3 => "neighbor signaled session down",
            4 => "forwarding plane reset",
            5 => "path down",
            6 => "concatenated path down",
            7 => "administratively down",
            8 => "reverse concatenated path down",
            _ => "reserved",
        }
    }
}

/// Why a received control packet was discarded (RFC 5880 §6.8.6), each
/// counted by the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Refused {
    /// Shorter than its mandatory section or than its Length field.
    #[error("truncated")]
    Truncated,
    /// A version other than 1.
    #[error("version {0}")]
    BadVersion(u8),
    /// The Length field is below the minimum for the A bit.
    #[error("bad length field")]
    BadLength,
    /// Detect Mult is zero.
    #[error("detect multiplier 0")]
    ZeroDetectMult,
    /// The Multipoint bit is set.
    #[error("multipoint bit set")]
    Multipoint,
    /// My Discriminator is zero.
    #[error("my discriminator 0")]
    ZeroMyDiscr,
    /// Your Discriminator is zero from a sender that is not Down.
    #[error("your discriminator 0 from a sender not Down")]
    ZeroYourDiscr,
    /// Your Discriminator is not this session's.
    #[error("your discriminator is not this session's")]
    WrongDiscr,
    /// Authentication present without being configured, or missing when
    /// it is.
    #[error("authentication present where not configured, or missing")]
    AuthMismatch,
    /// Another authentication type or key id, or a bad auth length.
    #[error("authentication type, key id or length")]
    AuthType,
    /// An authentication sequence number outside the window (a replay).
    #[error("authentication sequence number out of window")]
    AuthSequence,
    /// The digest is wrong.
    #[error("authentication digest")]
    AuthDigest,
    /// The session is AdminDown: packets are discarded.
    #[error("session is administratively down")]
    AdminDown,
}

impl Refused {
    /// Every reason, in counter order.
    pub const ALL: [Refused; 13] = [
        Refused::Truncated,
        Refused::BadVersion(0),
        Refused::BadLength,
        Refused::ZeroDetectMult,
        Refused::Multipoint,
        Refused::ZeroMyDiscr,
        Refused::ZeroYourDiscr,
        Refused::WrongDiscr,
        Refused::AuthMismatch,
        Refused::AuthType,
        Refused::AuthSequence,
        Refused::AuthDigest,
        Refused::AdminDown,
    ];

    /// Index into a counter array.
    pub fn index(self) -> usize {
        match self {
            Refused::Truncated => 0,
            Refused::BadVersion(_) => 1,
            Refused::BadLength => 2,
            Refused::ZeroDetectMult => 3,
            Refused::Multipoint => 4,
            Refused::ZeroMyDiscr => 5,
            Refused::ZeroYourDiscr => 6,
            Refused::WrongDiscr => 7,
            Refused::AuthMismatch => 8,
            Refused::AuthType => 9,
            Refused::AuthSequence => 10,
            Refused::AuthDigest => 11,
            Refused::AdminDown => 12,
        }
    }

    /// A short name for counters.
    pub fn name(self) -> &'static str {
        match self {
            Refused::Truncated => "truncated",
            Refused::BadVersion(_) => "bad_version",
            Refused::BadLength => "bad_length",
            Refused::ZeroDetectMult => "zero_detect_mult",
            Refused::Multipoint => "multipoint",
            Refused::ZeroMyDiscr => "zero_my_discr",
            Refused::ZeroYourDiscr => "zero_your_discr",
            Refused::WrongDiscr => "wrong_discr",
            Refused::AuthMismatch => "auth_mismatch",
            Refused::AuthType => "auth_type",
            Refused::AuthSequence => "auth_sequence",
            Refused::AuthDigest => "auth_digest",
            Refused::AdminDown => "admin_down",
        }
    }
}

/// The authentication section of a received packet (SHA1 types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sha1Auth {
    /// Auth Type (4 keyed, 5 meticulous keyed).
    pub auth_type: u8,
    /// Auth Key ID.
    pub key_id: u8,
    /// Sequence Number.
    pub seq: u32,
}

/// A control packet's fields (RFC 5880 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlPacket {
    /// Diagnostic code.
    pub diag: u8,
    /// Sender's state.
    pub state: State,
    /// Poll bit.
    pub poll: bool,
    /// Final bit.
    pub final_: bool,
    /// Control Plane Independent bit.
    pub cpi: bool,
    /// Demand bit.
    pub demand: bool,
    /// Detect Mult.
    pub detect_mult: u8,
    /// My Discriminator.
    pub my_discr: u32,
    /// Your Discriminator.
    pub your_discr: u32,
    /// Desired Min TX Interval, microseconds.
    pub desired_min_tx_us: u32,
    /// Required Min RX Interval, microseconds.
    pub required_min_rx_us: u32,
    /// Required Min Echo RX Interval, microseconds.
    pub required_min_echo_rx_us: u32,
    /// The SHA1 authentication section, when the A bit is set and the
    /// section is one (other types are refused by [`ControlPacket::parse`]
    /// only when a session checks them; see [`Refused::AuthType`]).
    pub auth: Option<Sha1Auth>,
    /// The A bit was set.
    pub auth_present: bool,
    /// The packet's length (the Length field).
    pub length: usize,
}

fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.first_chunk::<4>())
        .map_or(0, |s| u32::from_be_bytes(*s))
}

impl ControlPacket {
    /// Parses and checks what RFC 5880 §6.8.6 checks before a session is
    /// chosen (version, lengths, detect mult, multipoint, my
    /// discriminator). Never panics.
    pub fn parse(b: &[u8]) -> Result<ControlPacket, Refused> {
        let h = b.get(..HEADER_LEN).ok_or(Refused::Truncated)?;
        let version = h[0] >> 5;
        if version != VERSION {
            return Err(Refused::BadVersion(version));
        }
        let flags = h[1];
        let auth_present = flags & 0x04 != 0;
        let length = usize::from(h[3]);
        if length < HEADER_LEN || (auth_present && length < HEADER_LEN + 2) {
            return Err(Refused::BadLength);
        }
        if length > b.len() {
            return Err(Refused::Truncated);
        }
        if h[2] == 0 {
            return Err(Refused::ZeroDetectMult);
        }
        if flags & 0x01 != 0 {
            return Err(Refused::Multipoint);
        }
        let my_discr = be32(h, 4);
        if my_discr == 0 {
            return Err(Refused::ZeroMyDiscr);
        }
        let auth = if auth_present {
            let a = &b[HEADER_LEN..length];
            // Type, length, key id, reserved, sequence, digest.
            match (a.first(), a.get(1)) {
                (Some(&t), Some(&l)) if (t == 4 || t == 5) && usize::from(l) == SHA1_AUTH_LEN => {
                    if a.len() < SHA1_AUTH_LEN {
                        return Err(Refused::BadLength);
                    }
                    Some(Sha1Auth {
                        auth_type: t,
                        key_id: a[2],
                        seq: be32(a, 4),
                    })
                }
                _ => None,
            }
        } else {
            None
        };
        Ok(ControlPacket {
            diag: h[0] & 0x1f,
            state: State::from_bits(flags >> 6),
            poll: flags & 0x20 != 0,
            final_: flags & 0x10 != 0,
            cpi: flags & 0x08 != 0,
            demand: flags & 0x02 != 0,
            detect_mult: h[2],
            my_discr,
            your_discr: be32(h, 8),
            desired_min_tx_us: be32(h, 12),
            required_min_rx_us: be32(h, 16),
            required_min_echo_rx_us: be32(h, 20),
            auth,
            auth_present,
            length,
        })
    }

    /// Writes the mandatory section into `out` (at least
    /// [`HEADER_LEN`] bytes), with the A bit and Length for an
    /// authentication section of `auth_len` bytes that the caller adds.
    fn write_header(&self, out: &mut [u8], auth_len: usize) {
        let flags = self.state.bits() << 6
            | u8::from(self.poll) << 5
            | u8::from(self.final_) << 4
            | u8::from(self.cpi) << 3
            | u8::from(auth_len > 0) << 2
            | u8::from(self.demand) << 1;
        out[0] = VERSION << 5 | (self.diag & 0x1f);
        out[1] = flags;
        out[2] = self.detect_mult;
        out[3] = (HEADER_LEN + auth_len) as u8;
        out[4..8].copy_from_slice(&self.my_discr.to_be_bytes());
        out[8..12].copy_from_slice(&self.your_discr.to_be_bytes());
        out[12..16].copy_from_slice(&self.desired_min_tx_us.to_be_bytes());
        out[16..20].copy_from_slice(&self.required_min_rx_us.to_be_bytes());
        out[20..24].copy_from_slice(&self.required_min_echo_rx_us.to_be_bytes());
    }
}

/// A control packet to send: the UDP payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    buf: [u8; MAX_PACKET],
    len: u8,
}

impl Packet {
    /// The packet's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

/// A key for Meticulous Keyed SHA1 (RFC 5880 §6.7.4): up to 20 bytes,
/// zero-padded; wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthKey {
    /// Auth Key ID.
    pub key_id: u8,
    key: [u8; 20],
}

impl AuthKey {
    /// A key of 1 to 20 bytes; None otherwise.
    pub fn new(key_id: u8, key: &[u8]) -> Option<AuthKey> {
        if key.is_empty() || key.len() > 20 {
            return None;
        }
        let mut k = [0u8; 20];
        k[..key.len()].copy_from_slice(key);
        Some(AuthKey { key_id, key: k })
    }

    /// SHA1 over `packet` with its digest field holding the key.
    fn digest(&self, packet: &[u8]) -> [u8; 20] {
        let at = HEADER_LEN + 8;
        let mut h = Sha1::new();
        h.update(&packet[..at]);
        h.update(self.key);
        h.update(&packet[at + 20..]);
        h.finalize().into()
    }
}

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthKey {{ key_id: {}, key: <secret> }}", self.key_id)
    }
}

impl Drop for AuthKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

/// A session's timers and authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Desired Min TX Interval once Up, microseconds (default 10 ms).
    pub desired_min_tx_us: u32,
    /// Required Min RX Interval, microseconds (default 10 ms).
    pub required_min_rx_us: u32,
    /// Detect Mult (default 3).
    pub detect_mult: u8,
    /// Meticulous Keyed SHA1, when set.
    pub auth: Option<AuthKey>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            desired_min_tx_us: 10_000,
            required_min_rx_us: 10_000,
            detect_mult: 3,
            auth: None,
        }
    }
}

/// A change of a session's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateChange {
    /// The state before.
    pub from: State,
    /// The state now.
    pub to: State,
    /// The local diagnostic (why it went down).
    pub diag: u8,
}

/// What [`Session::poll`] hands back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Poll {
    /// A control packet to send now.
    pub send: Option<Packet>,
    /// The state changed (the detection time ran out).
    pub change: Option<StateChange>,
}

/// What a session has counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionCounters {
    /// Control packets sent.
    pub sent: u64,
    /// Control packets accepted.
    pub received: u64,
    /// Control packets discarded, by [`Refused::index`].
    pub refused: [u64; 13],
    /// Times the session came Up.
    pub up: u64,
    /// Times it went from Up (or Init) to Down.
    pub down: u64,
}

impl SessionCounters {
    /// All discarded packets.
    pub fn refused_total(&self) -> u64 {
        self.refused.iter().sum()
    }
}

/// A view of a session for operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionInfo {
    /// Local state.
    pub state: State,
    /// The remote's last state.
    pub remote_state: State,
    /// Local discriminator.
    pub local_discr: u32,
    /// The remote's discriminator (0: not heard).
    pub remote_discr: u32,
    /// Local diagnostic.
    pub diag: u8,
    /// The transmit interval in use, microseconds (before jitter).
    pub tx_interval_us: u64,
    /// The detection time in use, microseconds (0: none running).
    pub detect_time_us: u64,
    /// The remote's Required Min RX Interval, microseconds.
    pub remote_min_rx_us: u32,
    /// The remote's Desired Min TX Interval, microseconds.
    pub remote_min_tx_us: u32,
    /// The remote's Detect Mult.
    pub remote_detect_mult: u8,
    /// Counters.
    pub counters: SessionCounters,
}

/// One BFD session (RFC 5880 §6.8.1 state variables and the rules
/// around them).
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    state: State,
    remote_state: State,
    local_discr: u32,
    remote_discr: u32,
    diag: u8,
    /// Desired Min TX we advertise now (slow while not Up).
    desired_tx_us: u32,
    /// The values a Poll Sequence announces; the TX interval follows
    /// only when it ends (for an increase).
    polling: bool,
    /// Desired TX the transmit interval currently uses.
    tx_basis_us: u32,
    remote_min_rx_us: u32,
    remote_min_tx_us: u32,
    remote_detect_mult: u8,
    /// Answer a Poll with a Final at the next poll().
    send_final: bool,
    /// Send at the next poll() (a state change).
    send_now: bool,
    next_tx_ns: u64,
    /// When the detection time runs out (Init/Up only).
    detect_at_ns: Option<u64>,
    /// The detection time last computed, ns.
    detect_ns: u64,
    xmit_seq: u32,
    rcv_seq: Option<u32>,
    rng: u64,
    counters: SessionCounters,
}

impl Session {
    /// A session in state Down with discriminator `local_discr`
    /// (nonzero, unique on the node), its jitter and first
    /// authentication sequence number drawn from `seed`, transmitting
    /// from `now_ns`.
    pub fn new(cfg: SessionConfig, local_discr: u32, seed: u64, now_ns: u64) -> Session {
        let mut rng = seed | 1;
        let xmit_seq = xorshift(&mut rng) as u32;
        Session {
            cfg,
            state: State::Down,
            remote_state: State::Down,
            local_discr: local_discr.max(1),
            remote_discr: 0,
            diag: diag::NONE,
            desired_tx_us: SLOW_TX_US,
            polling: false,
            tx_basis_us: SLOW_TX_US,
            remote_min_rx_us: 1,
            remote_min_tx_us: 0,
            remote_detect_mult: 0,
            send_final: false,
            send_now: true,
            next_tx_ns: now_ns,
            detect_at_ns: None,
            detect_ns: 0,
            xmit_seq,
            rcv_seq: None,
            rng,
            counters: SessionCounters::default(),
        }
    }

    /// The local state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The local discriminator.
    pub fn local_discr(&self) -> u32 {
        self.local_discr
    }

    /// What the session has counted.
    pub fn counters(&self) -> &SessionCounters {
        &self.counters
    }

    /// The session as an operator sees it.
    pub fn info(&self) -> SessionInfo {
        SessionInfo {
            state: self.state,
            remote_state: self.remote_state,
            local_discr: self.local_discr,
            remote_discr: self.remote_discr,
            diag: self.diag,
            tx_interval_us: self.tx_interval_ns() / 1000,
            detect_time_us: if self.detect_at_ns.is_some() {
                self.detect_ns / 1000
            } else {
                0
            },
            remote_min_rx_us: self.remote_min_rx_us,
            remote_min_tx_us: self.remote_min_tx_us,
            remote_detect_mult: self.remote_detect_mult,
            counters: self.counters,
        }
    }

    /// Takes the session administratively down (`true`, diagnostic 7,
    /// the remote is told) or back to Down to start again (`false`).
    pub fn set_admin_down(&mut self, now_ns: u64, down: bool) -> Option<StateChange> {
        let to = if down { State::AdminDown } else { State::Down };
        if (self.state == State::AdminDown) == down {
            return None;
        }
        let d = if down { diag::ADMIN_DOWN } else { diag::NONE };
        let c = self.go(to, d, now_ns);
        if !down {
            self.remote_discr = 0;
        }
        Some(c)
    }

    /// Handles one received control packet (the UDP payload). On
    /// success the state may have changed; call [`Session::poll`] next:
    /// a change or a Poll is answered at once.
    pub fn receive(&mut self, now_ns: u64, b: &[u8]) -> Result<Option<StateChange>, Refused> {
        let r = self.check(b);
        let p = match r {
            Ok(p) => p,
            Err(e) => {
                self.counters.refused[e.index()] += 1;
                return Err(e);
            }
        };
        self.counters.received += 1;
        self.remote_discr = p.my_discr;
        self.remote_state = p.state;
        self.remote_min_rx_us = p.required_min_rx_us;
        self.remote_min_tx_us = p.desired_min_tx_us;
        self.remote_detect_mult = p.detect_mult;
        if p.final_ && self.polling {
            self.polling = false;
            self.tx_basis_us = self.desired_tx_us;
        }
        if p.poll {
            self.send_final = true;
        }
        // Detection time (§6.8.4): the remote's multiplier times the
        // slower of what we can receive and what it will send.
        let interval = u64::from(self.cfg.required_min_rx_us.max(p.desired_min_tx_us));
        self.detect_ns = u64::from(p.detect_mult) * interval * 1000;
        let change = match (self.state, p.state) {
            (State::AdminDown, _) => return Ok(None),
            (s, State::AdminDown) if s != State::Down => {
                Some(self.go(State::Down, diag::NEIGHBOR_DOWN, now_ns))
            }
            (State::Down, State::Down) => Some(self.go(State::Init, diag::NONE, now_ns)),
            (State::Down, State::Init) => Some(self.go(State::Up, diag::NONE, now_ns)),
            (State::Init, State::Init | State::Up) => Some(self.go(State::Up, diag::NONE, now_ns)),
            (State::Up, State::Down) => Some(self.go(State::Down, diag::NEIGHBOR_DOWN, now_ns)),
            _ => None,
        };
        if matches!(self.state, State::Init | State::Up) {
            self.detect_at_ns = Some(now_ns.saturating_add(self.detect_ns));
        }
        self.reschedule(now_ns);
        Ok(change)
    }

    /// The checks of §6.8.6 that need the session, and authentication.
    fn check(&mut self, b: &[u8]) -> Result<ControlPacket, Refused> {
        let p = ControlPacket::parse(b)?;
        if p.your_discr == 0 {
            // The sender's state: only a Down (or AdminDown) sender may
            // not know us yet.
            if !matches!(p.state, State::Down | State::AdminDown) {
                return Err(Refused::ZeroYourDiscr);
            }
        } else if p.your_discr != self.local_discr {
            return Err(Refused::WrongDiscr);
        }
        match (&self.cfg.auth, p.auth_present) {
            (None, false) => {}
            (Some(key), true) => {
                let a = p.auth.ok_or(Refused::AuthType)?;
                if a.auth_type != AUTH_METICULOUS_KEYED_SHA1 || a.key_id != key.key_id {
                    return Err(Refused::AuthType);
                }
                if let Some(last) = self.rcv_seq {
                    // Meticulous: strictly newer, within 3 x Detect Mult.
                    let ahead = a.seq.wrapping_sub(last);
                    if ahead == 0 || ahead > 3 * u32::from(p.detect_mult) {
                        return Err(Refused::AuthSequence);
                    }
                }
                let packet = &b[..p.length];
                let at = HEADER_LEN + 8;
                let got = packet.get(at..at + 20).ok_or(Refused::Truncated)?;
                if !ct_eq(got, &key.digest(packet)) {
                    return Err(Refused::AuthDigest);
                }
                self.rcv_seq = Some(a.seq);
            }
            _ => return Err(Refused::AuthMismatch),
        }
        if self.state == State::AdminDown {
            return Err(Refused::AdminDown);
        }
        Ok(p)
    }

    /// Moves to `to` with diagnostic `d`; timers follow the state.
    fn go(&mut self, to: State, d: u8, now_ns: u64) -> StateChange {
        let from = self.state;
        self.state = to;
        self.diag = d;
        self.send_now = true;
        match to {
            State::Up => {
                self.counters.up += 1;
                self.diag = diag::NONE;
                self.set_desired_tx(self.cfg.desired_min_tx_us.max(1));
            }
            State::Init => {
                self.detect_at_ns = Some(now_ns.saturating_add(self.detect_ns));
            }
            State::Down | State::AdminDown => {
                if matches!(from, State::Up | State::Init) {
                    self.counters.down += 1;
                }
                self.detect_at_ns = None;
                self.set_desired_tx(SLOW_TX_US);
                // The slow rate applies at once: nobody detects on it.
                self.tx_basis_us = SLOW_TX_US;
            }
        }
        StateChange { from, to, diag: d }
    }

    /// A new Desired Min TX: a Poll Sequence announces it; a decrease
    /// applies at once, an increase when the sequence ends (§6.8.3).
    fn set_desired_tx(&mut self, us: u32) {
        if us == self.desired_tx_us {
            return;
        }
        self.desired_tx_us = us;
        self.polling = true;
        if us < self.tx_basis_us {
            self.tx_basis_us = us;
        }
    }

    /// Brings the next periodic packet forward when the interval has
    /// become shorter than what is left of the current one (the remote
    /// lowered its Required Min RX, or we came Up): the remote detects on
    /// the new interval at once.
    fn reschedule(&mut self, now_ns: u64) {
        let at = now_ns.saturating_add(self.tx_interval_ns());
        if at < self.next_tx_ns {
            self.next_tx_ns = now_ns.saturating_add(self.jittered_interval());
        }
    }

    /// The transmit interval before jitter: the slower of our desired
    /// and the remote's required minimum (§6.8.7).
    fn tx_interval_ns(&self) -> u64 {
        u64::from(self.tx_basis_us.max(self.remote_min_rx_us)) * 1000
    }

    /// The next time [`Session::poll`] has something to do.
    pub fn next_timeout_ns(&self) -> u64 {
        if self.send_now || self.send_final {
            return 0;
        }
        let tx = if self.may_send() {
            self.next_tx_ns
        } else {
            u64::MAX
        };
        tx.min(self.detect_at_ns.unwrap_or(u64::MAX))
    }

    /// A remote Required Min RX of zero asks for no packets (§6.8.7).
    fn may_send(&self) -> bool {
        self.remote_min_rx_us != 0
    }

    /// Runs the timers at `now_ns`: the detection time, then a packet if
    /// one is due (periodic, a Final, or after a state change).
    pub fn poll(&mut self, now_ns: u64) -> Poll {
        let mut out = Poll::default();
        if let Some(at) = self.detect_at_ns {
            if now_ns >= at && matches!(self.state, State::Init | State::Up) {
                out.change = Some(self.go(State::Down, diag::DETECT_EXPIRED, now_ns));
                self.remote_discr = 0;
                self.remote_state = State::Down;
                self.rcv_seq = None;
                // Back to the slow rate the remote may expect of a new
                // session.
                self.remote_min_rx_us = 1;
            }
        }
        let fin = std::mem::take(&mut self.send_final);
        let due = self.send_now || now_ns >= self.next_tx_ns;
        if !self.may_send() && !fin {
            return out;
        }
        if fin || due {
            out.send = Some(self.build(fin));
            if due {
                self.send_now = false;
                self.next_tx_ns = now_ns.saturating_add(self.jittered_interval());
            }
        }
        out
    }

    /// The interval to the next periodic packet: 75-100 % of the
    /// transmit interval, 75-90 % with a Detect Mult of 1 (§6.8.7).
    fn jittered_interval(&mut self) -> u64 {
        let i = self.tx_interval_ns();
        let span = if self.cfg.detect_mult == 1 { 15 } else { 25 };
        let pct = 75 + xorshift(&mut self.rng) % (span + 1);
        i / 100 * pct
    }

    /// A control packet for now; `fin` answers a Poll (and then carries
    /// no Poll itself).
    fn build(&mut self, fin: bool) -> Packet {
        let p = ControlPacket {
            diag: self.diag,
            state: self.state,
            poll: self.polling && !fin,
            final_: fin,
            cpi: false,
            demand: false,
            detect_mult: self.cfg.detect_mult.max(1),
            my_discr: self.local_discr,
            your_discr: self.remote_discr,
            desired_min_tx_us: self.desired_tx_us,
            required_min_rx_us: self.cfg.required_min_rx_us,
            required_min_echo_rx_us: 0,
            auth: None,
            auth_present: self.cfg.auth.is_some(),
            length: HEADER_LEN,
        };
        let mut out = Packet {
            buf: [0; MAX_PACKET],
            len: HEADER_LEN as u8,
        };
        match &self.cfg.auth {
            None => p.write_header(&mut out.buf, 0),
            Some(key) => {
                p.write_header(&mut out.buf, SHA1_AUTH_LEN);
                self.xmit_seq = self.xmit_seq.wrapping_add(1);
                let a = &mut out.buf[HEADER_LEN..];
                a[0] = AUTH_METICULOUS_KEYED_SHA1;
                a[1] = SHA1_AUTH_LEN as u8;
                a[2] = key.key_id;
                a[3] = 0;
                a[4..8].copy_from_slice(&self.xmit_seq.to_be_bytes());
                let d = key.digest(&out.buf);
                out.buf[HEADER_LEN + 8..].copy_from_slice(&d);
                out.len = MAX_PACKET as u8;
            }
        }
        self.counters.sent += 1;
        out
    }
}

/// The next number of a xorshift64 sequence in `s` (nonzero): jitter and
/// discriminators, which need spread, not secrecy (the seed does).
pub fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Compares two digests in time independent of where they differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
