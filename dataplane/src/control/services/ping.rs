//! ICMP echo from the node itself (`meshplane ctl ping`): the initiator
//! side of RFC 792 echo, as `ping` runs it, over the mesh's labels.
//!
//! [`IcmpProbes`] holds at most [`MAX_PINGS`] pings of at most
//! [`MAX_ECHOES`] echoes each. Starting one returns the first echo
//! request; [`IcmpProbes::poll`] paces the others, each due `interval`
//! after the previous one went out. Every echo request is an
//! IPv4 packet from the ping's source (the node address), TTL
//! [`REQUEST_TTL`], ICMP echo with the ping's identifier, sequence
//! numbers 1, 2, ... and `size` bytes of data, checksums filled, handed
//! back as [`Outgoing::Remote`]: the caller labels it toward the target
//! as data would go.
//!
//! Replies are fed to [`IcmpProbes::on_reply`] (the services route echo
//! replies to a node address there), matched by identifier and sequence
//! number, from the target to the source, with the data sent; the
//! round-trip time is measured from the stored send time, never from the
//! packet. Each echo waits `timeout` for its reply; a ping ends when its
//! last echo has been sent and every echo is answered or past its wait,
//! and [`IcmpProbes::poll`] hands it back once ([`PingDone`]). What
//! matches no echo is counted by why ([`IcmpStats`]): duplicates, late
//! replies (also for a recently finished ping), unknown identifiers,
//! forgeries.
//!
//! Identifiers are a bijection of a ping counter mixed with a seed, and
//! the data starts with a per-ping cookie derived from it: pass a random
//! seed so that an off-path host can neither guess an identifier nor
//! answer an echo it never saw.

use super::{is_bad_source, Ipv4Spec, Outgoing, ProbeId};
use crate::packet::icmp::{self, msg_type, IcmpPacket};
use crate::packet::ipv4::{protocol, Ipv4Packet};
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Most pings running at once.
pub const MAX_PINGS: usize = 64;

/// Most echoes in one ping.
pub const MAX_ECHOES: u16 = 100;

/// Most data bytes in one echo (so that a labelled echo fits the mesh's
/// MTU with room to spare).
pub const MAX_SIZE: u16 = 1400;

/// Data bytes of an echo unless told (as `ping`: 64 ICMP bytes).
pub const DEFAULT_SIZE: u16 = 56;

/// Shortest time between two echoes of a ping.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Longest time between two echoes of a ping.
pub const MAX_INTERVAL: Duration = Duration::from_secs(10);

/// IP TTL of echo requests.
pub const REQUEST_TTL: u8 = 64;

/// Length of the cookie at the start of an echo's data (shorter data
/// carries its first bytes).
const COOKIE_LEN: usize = 8;

/// Why a ping could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PingError {
    /// [`MAX_PINGS`] pings are running.
    #[error("{MAX_PINGS} pings are already running")]
    TooManyPings,
    /// A count of 0 or above [`MAX_ECHOES`].
    #[error("count must be 1 to {MAX_ECHOES}")]
    BadCount,
    /// A size above [`MAX_SIZE`].
    #[error("size must be 0 to {MAX_SIZE} bytes")]
    BadSize,
    /// An interval outside [`MIN_INTERVAL`]..=[`MAX_INTERVAL`].
    #[error("interval must be {} ms to {} ms", MIN_INTERVAL.as_millis(), MAX_INTERVAL.as_millis())]
    BadInterval,
    /// The target is not a unicast address (unspecified, loopback,
    /// multicast, broadcast).
    #[error("{0} cannot be pinged: not a unicast address")]
    BadTarget(Ipv4Addr),
    /// The source is not an address replies can come back to.
    #[error("{0} cannot send echoes: not a unicast address")]
    BadSource(Ipv4Addr),
}

/// Why a packet given to [`IcmpProbes::on_reply`] matched no echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StrayEchoReply {
    /// Not a well-formed IPv4/ICMP packet (or a bad checksum, or a
    /// fragment).
    #[error("malformed")]
    Malformed,
    /// Not an ICMP echo reply.
    #[error("not an echo reply")]
    NotAReply,
    /// No running or recent ping has its identifier.
    #[error("unknown identifier")]
    UnknownIdent,
    /// The identifier matches but not the rest: a sequence number not
    /// sent, another source or destination, other data.
    #[error("does not match its ping")]
    Forged,
    /// For an echo past its wait, or a ping already finished.
    #[error("late")]
    Late,
    /// For an echo already answered.
    #[error("duplicate")]
    Duplicate,
}

/// What the initiator has seen, for counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IcmpStats {
    /// Pings started.
    pub started: u64,
    /// Pings refused ([`PingError`]).
    pub refused: u64,
    /// Pings finished with every echo answered.
    pub completed: u64,
    /// Pings finished with some echo unanswered.
    pub timed_out: u64,
    /// Echo requests handed out to send.
    pub sent: u64,
    /// Replies matched to an echo.
    pub replies: u64,
    /// [`StrayEchoReply::Malformed`].
    pub malformed: u64,
    /// [`StrayEchoReply::NotAReply`].
    pub not_a_reply: u64,
    /// [`StrayEchoReply::UnknownIdent`].
    pub unknown: u64,
    /// [`StrayEchoReply::Forged`].
    pub forged: u64,
    /// [`StrayEchoReply::Late`].
    pub late: u64,
    /// [`StrayEchoReply::Duplicate`].
    pub duplicate: u64,
}

/// One echo's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PingEcho {
    /// Its sequence number (1, 2, ...).
    pub seq: u16,
    /// Who replied (the target), if it was answered.
    pub address: Option<Ipv4Addr>,
    /// Round-trip time from the send time to the reply's arrival.
    pub rtt_ns: Option<u64>,
    /// The reply's IP TTL as received.
    pub ttl: Option<u8>,
    /// The reply's ICMP length (header and data) in bytes.
    pub bytes: Option<u16>,
}

/// A finished ping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PingDone {
    /// The ping.
    pub id: ProbeId,
    /// The address pinged.
    pub target: Ipv4Addr,
    /// The address the echoes came from.
    pub source: Ipv4Addr,
    /// Data bytes per echo.
    pub size: u16,
    /// Per echo sent, by sequence number.
    pub echoes: Vec<PingEcho>,
    /// Replies to an echo already answered.
    pub duplicates: u32,
    /// True if some echo was not answered within its wait.
    pub timed_out: bool,
}

impl PingDone {
    /// Echoes sent.
    pub fn transmitted(&self) -> usize {
        self.echoes.len()
    }

    /// Echoes answered.
    pub fn received(&self) -> usize {
        self.echoes.iter().filter(|e| e.rtt_ns.is_some()).count()
    }
}

/// What [`IcmpProbes::poll`] hands back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PingPoll {
    /// Echo requests now due, to send in this order.
    pub send: Vec<Outgoing>,
    /// Pings that finished.
    pub done: Vec<PingDone>,
}

#[derive(Clone, Copy, Debug)]
struct Reply {
    rtt_ns: u64,
    ttl: u8,
    bytes: u16,
}

#[derive(Clone, Debug)]
struct Echo {
    seq: u16,
    sent_ns: u64,
    reply: Option<Reply>,
}

#[derive(Clone, Debug)]
struct Ping {
    id: ProbeId,
    ident: u16,
    cookie: [u8; COOKIE_LEN],
    source: Ipv4Addr,
    target: Ipv4Addr,
    count: u16,
    size: u16,
    interval_ns: u64,
    timeout_ns: u64,
    /// When the next echo is due (meaningless once all are sent).
    next_send_ns: u64,
    /// The echoes sent so far, by sequence number.
    echoes: Vec<Echo>,
    duplicates: u32,
}

impl Ping {
    fn all_sent(&self) -> bool {
        self.echoes.len() >= usize::from(self.count)
    }

    /// Every echo sent, and each answered or past its wait at `now_ns`.
    fn finished(&self, now_ns: u64) -> bool {
        self.all_sent()
            && self
                .echoes
                .iter()
                .all(|e| e.reply.is_some() || now_ns >= e.sent_ns.saturating_add(self.timeout_ns))
    }

    /// The data of every echo of this ping: the cookie, then bytes
    /// counting up (as `ping`'s pattern does after its timestamp).
    fn data(&self) -> Vec<u8> {
        (0..usize::from(self.size))
            .map(|i| match self.cookie.get(i) {
                Some(&c) => c,
                None => i as u8,
            })
            .collect()
    }

    /// The next echo request, recorded as sent at `now_ns`.
    fn send_next(&mut self, now_ns: u64) -> Outgoing {
        // At most MAX_ECHOES (100) echoes: the sequence fits.
        let seq = self.echoes.len() as u16 + 1;
        let msg = icmp::echo_request(self.ident, seq, &self.data());
        let spec = Ipv4Spec {
            src: self.source,
            dst: self.target,
            protocol: protocol::ICMP,
            ttl: REQUEST_TTL,
            ident: seq,
            dscp_ecn: 0,
            router_alert: false,
        };
        // At most 20 + 8 + MAX_SIZE bytes: always fits.
        let packet = super::ipv4_packet(spec, &msg).unwrap_or_default();
        self.echoes.push(Echo {
            seq,
            sent_ns: now_ns,
            reply: None,
        });
        self.next_send_ns = now_ns.saturating_add(self.interval_ns);
        Outgoing::Remote {
            dst: self.target,
            packet,
        }
    }

    fn finish(self) -> PingDone {
        let echoes: Vec<PingEcho> = self
            .echoes
            .iter()
            .map(|e| PingEcho {
                seq: e.seq,
                address: e.reply.map(|_| self.target),
                rtt_ns: e.reply.map(|r| r.rtt_ns),
                ttl: e.reply.map(|r| r.ttl),
                bytes: e.reply.map(|r| r.bytes),
            })
            .collect();
        let timed_out = echoes.iter().any(|e| e.rtt_ns.is_none());
        PingDone {
            id: self.id,
            target: self.target,
            source: self.source,
            size: self.size,
            echoes,
            duplicates: self.duplicates,
            timed_out,
        }
    }
}

/// The ICMP echo initiator: running pings, bounded.
#[derive(Clone, Debug)]
pub struct IcmpProbes {
    seed: u64,
    next: u64,
    pings: Vec<Ping>,
    /// Identifiers of recently finished pings, so that their late
    /// replies count as late rather than unknown.
    recent: VecDeque<u16>,
    stats: IcmpStats,
}

/// A 64-bit mix (splitmix64's finaliser): a bijection.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl IcmpProbes {
    /// An initiator whose identifiers and data cookies derive from `seed`:
    /// pass a random value.
    pub fn new(seed: u64) -> Self {
        IcmpProbes {
            seed,
            next: 0,
            pings: Vec::with_capacity(MAX_PINGS),
            recent: VecDeque::with_capacity(MAX_PINGS),
            stats: IcmpStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &IcmpStats {
        &self.stats
    }

    /// Pings running.
    pub fn outstanding(&self) -> usize {
        self.pings.len()
    }

    /// When to call [`IcmpProbes::poll`] next at the latest: the earliest
    /// echo due or wait ending of a running ping.
    pub fn next_timer(&self) -> Option<u64> {
        self.pings
            .iter()
            .filter_map(|p| {
                if !p.all_sent() {
                    return Some(p.next_send_ns);
                }
                p.echoes
                    .iter()
                    .filter(|e| e.reply.is_none())
                    .map(|e| e.sent_ns.saturating_add(p.timeout_ns))
                    .min()
            })
            .min()
    }

    /// Starts a ping of `target` from `source`: `count` echoes of `size`
    /// data bytes, one every `interval`, each waiting `timeout` for its
    /// reply. Returns the ping and what to send now (the first echo).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &mut self,
        now_ns: u64,
        source: Ipv4Addr,
        target: Ipv4Addr,
        count: u16,
        size: u16,
        interval: Duration,
        timeout: Duration,
    ) -> Result<(ProbeId, Vec<Outgoing>), PingError> {
        // Unspecified, loopback, multicast, broadcast and reserved
        // addresses neither send nor answer echoes.
        let unicast = |a: Ipv4Addr| !is_bad_source(a);
        let refused = if self.pings.len() >= MAX_PINGS {
            Some(PingError::TooManyPings)
        } else if count == 0 || count > MAX_ECHOES {
            Some(PingError::BadCount)
        } else if size > MAX_SIZE {
            Some(PingError::BadSize)
        } else if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
            Some(PingError::BadInterval)
        } else if !unicast(target) {
            Some(PingError::BadTarget(target))
        } else if !unicast(source) {
            Some(PingError::BadSource(source))
        } else {
            None
        };
        if let Some(e) = refused {
            self.stats.refused += 1;
            return Err(e);
        }
        let (id, ident) = self.fresh_ident();
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let mut ping = Ping {
            id,
            ident,
            cookie: mix(self.seed ^ mix(id.0)).to_be_bytes(),
            source,
            target,
            count,
            size,
            interval_ns: nanos(interval),
            timeout_ns: nanos(timeout),
            next_send_ns: now_ns,
            echoes: Vec::with_capacity(usize::from(count)),
            duplicates: 0,
        };
        let first = ping.send_next(now_ns);
        self.pings.push(ping);
        self.stats.started += 1;
        self.stats.sent += 1;
        Ok((id, vec![first]))
    }

    /// The next ping id and an identifier no running ping has.
    fn fresh_ident(&mut self) -> (ProbeId, u16) {
        loop {
            let n = self.next;
            self.next = self.next.wrapping_add(1);
            // Odd multiplier and xor: a bijection on u16, so identifiers
            // repeat only after 65536 pings.
            let ident = (n as u16).wrapping_mul(0x9e37) ^ (self.seed as u16);
            if !self.pings.iter().any(|p| p.ident == ident) {
                return (ProbeId(n), ident);
            }
        }
    }

    /// Matches an echo reply (`packet` from its IPv4 header) received at
    /// `now_ns` to an echo sent and records it; returns its ping. Every
    /// refusal is counted in [`IcmpStats`].
    pub fn on_reply(&mut self, now_ns: u64, packet: &[u8]) -> Result<ProbeId, StrayEchoReply> {
        let r = self.match_reply(now_ns, packet);
        let s = &mut self.stats;
        match r {
            Ok(_) => s.replies += 1,
            Err(StrayEchoReply::Malformed) => s.malformed += 1,
            Err(StrayEchoReply::NotAReply) => s.not_a_reply += 1,
            Err(StrayEchoReply::UnknownIdent) => s.unknown += 1,
            Err(StrayEchoReply::Forged) => s.forged += 1,
            Err(StrayEchoReply::Late) => s.late += 1,
            Err(StrayEchoReply::Duplicate) => s.duplicate += 1,
        }
        r
    }

    fn match_reply(&mut self, now_ns: u64, packet: &[u8]) -> Result<ProbeId, StrayEchoReply> {
        let ip = Ipv4Packet::new_checked(packet).map_err(|_| StrayEchoReply::Malformed)?;
        if !ip.verify_checksum() || ip.is_fragment() {
            return Err(StrayEchoReply::Malformed);
        }
        if ip.protocol() != protocol::ICMP {
            return Err(StrayEchoReply::NotAReply);
        }
        let m = IcmpPacket::new_checked(ip.payload()).map_err(|_| StrayEchoReply::Malformed)?;
        if !m.verify_checksum() {
            return Err(StrayEchoReply::Malformed);
        }
        if m.msg_type() != msg_type::ECHO_REPLY || m.code() != 0 {
            return Err(StrayEchoReply::NotAReply);
        }
        let ident = m.echo_ident();
        let Some(ping) = self.pings.iter_mut().find(|p| p.ident == ident) else {
            return Err(if self.recent.contains(&ident) {
                StrayEchoReply::Late
            } else {
                StrayEchoReply::UnknownIdent
            });
        };
        if ip.src_addr() != ping.target || ip.dst_addr() != ping.source {
            return Err(StrayEchoReply::Forged);
        }
        let seq = m.echo_seq();
        let Some(i) = ping.echoes.iter().position(|e| e.seq == seq) else {
            return Err(StrayEchoReply::Forged);
        };
        if m.payload() != ping.data() {
            return Err(StrayEchoReply::Forged);
        }
        let (timeout_ns, e) = (ping.timeout_ns, &mut ping.echoes[i]);
        if now_ns >= e.sent_ns.saturating_add(timeout_ns) {
            return Err(StrayEchoReply::Late);
        }
        if e.reply.is_some() {
            ping.duplicates = ping.duplicates.saturating_add(1);
            return Err(StrayEchoReply::Duplicate);
        }
        e.reply = Some(Reply {
            rtt_ns: now_ns.saturating_sub(e.sent_ns),
            ttl: ip.ttl(),
            // At most the 65535 bytes of an IPv4 packet.
            bytes: ip.payload().len() as u16,
        });
        Ok(ping.id)
    }

    /// At `now_ns`: the echoes now due (at most one per ping and call,
    /// each `interval` after the previous one went out), and the pings
    /// that finished, each handed back once.
    pub fn poll(&mut self, now_ns: u64) -> PingPoll {
        let mut out = PingPoll::default();
        for p in &mut self.pings {
            if !p.all_sent() && now_ns >= p.next_send_ns {
                out.send.push(p.send_next(now_ns));
                self.stats.sent += 1;
            }
        }
        let mut i = 0;
        while i < self.pings.len() {
            if self.pings[i].finished(now_ns) {
                let p = self.pings.swap_remove(i);
                if self.recent.len() >= MAX_PINGS {
                    self.recent.pop_front();
                }
                self.recent.push_back(p.ident);
                let d = p.finish();
                if d.timed_out {
                    self.stats.timed_out += 1;
                } else {
                    self.stats.completed += 1;
                }
                out.done.push(d);
            } else {
                i += 1;
            }
        }
        out.done.sort_by_key(|d| d.id);
        out
    }
}
