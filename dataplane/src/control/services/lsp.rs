//! LSP ping and traceroute (RFC 8029 subset) over this design's FEC, a
//! gateway's node label named by the RFC 8287 IPv4 IGP-Prefix SID of the
//! gateway address.
//!
//! # Responder
//!
//! A UDP packet to port 3503 carrying an MPLS echo request reaches the
//! services either with a label whose TTL expired at this node (the
//! caller punts those: traceroute through a transit node) or addressed
//! to 127/8 or a node address under the node's own label (the egress).
//! It is answered with an echo reply to the request's IP source, from
//! the node address, UDP source port 3503, destination port the
//! request's source port, IP TTL 255 (RFC 8029 §4.5); sender's handle,
//! sequence number and TimeStamp Sent copied, TimeStamp Received the
//! caller's `now`, the Target FEC Stack echoed. The reply is
//! [`Outgoing::Remote`]: the caller labels it toward the initiator.
//!
//! The return code follows from the Target FEC (the first sub-TLV of
//! the Target FEC Stack, stack depth 1):
//!
//! - the FEC is `a/32` with `a` one of [`NodeInfo::addresses`]: this node
//!   owns the node label, it is the egress: **3** "Replying router is an
//!   egress for the FEC at stack-depth", subcode 1;
//! - otherwise, if the frame came with a label stack, the node would have
//!   switched it (its TTL expired here): **8** "Label switched at
//!   stack-depth", subcode 1;
//! - otherwise (unlabelled, not our FEC): **4** "no mapping for the FEC at
//!   stack-depth", subcode 1.
//!
//! A request whose TLVs are cut short, that has no Target FEC Stack, or
//! whose prefix SID is malformed is answered with **1** (malformed); one
//! with a mandatory TLV (type below 32768) or FEC sub-TLV the node does
//! not know gets **2** with the TLVs in an Errored TLVs TLV (RFC 8029 §3).
//! Not answered: reply mode 1 "do not reply", the T flag ("respond only
//! if TTL expired") on a packet whose TTL did not expire, reply mode 4
//! (no control channel here), IP options other than Router Alert.
//!
//! The reply names its node: the IP source is the node address, and when
//! the node has a constellation id the reply carries the vendor TLV
//! [`mpls_echo::tlv_type::NODE_ID`] (type 64512, optional vendor-private
//! range, so other initiators skip it; value = enterprise number 32473
//! then the 4-byte node id).
//!
//! # Initiator
//!
//! [`LspProbes`] holds at most [`MAX_PROBES`] outstanding pings and
//! traces of at most [`MAX_ECHOES`] echoes each. Starting one returns
//! every echo request to send at once ([`EchoToSend`]: the IPv4 packet
//! and the MPLS TTL to push the target's label with); replies are fed to
//! [`LspProbes::on_reply`], matched by sender's handle and sequence
//! number, and timed from the stored send time (never the packet's
//! timestamps); [`LspProbes::poll`] hands back finished probes.

use super::{is_bad_source, only_router_alert, Ignored, Ipv4Spec, NodeInfo, Outgoing};
use crate::packet::ipv4::{protocol, Ipv4Packet};
use crate::packet::mpls_echo::{
    self, build_reply, build_request, fec_type, flags, msg_type, node_id_value, push_tlv,
    reply_mode, return_code, tlv_type, tlvs, Ipv4PrefixSid, MplsEcho, NtpTimestamp, UDP_PORT,
};
use crate::packet::punted::PuntedFrame;
use crate::packet::udp::{self, UdpPacket};
use crate::packet::Error;
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Most probes outstanding at once.
pub const MAX_PROBES: usize = 64;

/// Most echoes in one probe (a ping's count, a trace's hops).
pub const MAX_ECHOES: usize = 64;

/// IP TTL of echo replies (RFC 8029 §4.5).
pub const REPLY_TTL: u8 = 255;

/// MPLS TTL a ping's echoes are sent with.
pub const PING_MPLS_TTL: u8 = 255;

/// IP destination of echo requests (RFC 8029 §4.3: an address in 127/8,
/// so a packet that leaves the LSP is never forwarded as IP).
pub const REQUEST_DST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// DSCP/ECN byte of requests and replies: CS6, network control.
pub const OAM_DSCP_ECN: u8 = 0xc0;

/// First UDP source port of probes (the dynamic range, RFC 6335).
pub const FIRST_SOURCE_PORT: u16 = 49152;

// -------------------------------------------------------------------
// Responder
// -------------------------------------------------------------------

/// Handles a punted UDP packet: an echo request to port 3503 is
/// answered, an echo reply from port 3503 goes to `lsp`'s probes.
pub(super) fn on_udp(
    p: &PuntedFrame<'_>,
    node: &NodeInfo,
    now_ns: u64,
    lsp: &mut LspProbes,
) -> Result<Option<Outgoing>, Ignored> {
    let ip = p.ipv4().ok_or(Ignored::Malformed)?;
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let u = UdpPacket::new_checked(ip.payload())?;
    if !u.verify_checksum_v4(src, dst) {
        return Err(Ignored::BadChecksum);
    }
    let (to_lsp, from_lsp) = (u.dst_port() == UDP_PORT, u.src_port() == UDP_PORT);
    if !to_lsp && !from_lsp {
        return Err(Ignored::Unsupported);
    }
    let echo = MplsEcho::new_checked(u.payload()).map_err(|e| match e {
        Error::Truncated => Ignored::Truncated,
        // Another version.
        Error::Malformed => Ignored::Unsupported,
    })?;
    match echo.msg_type() {
        msg_type::REQUEST if to_lsp => respond(p, &u, &echo, node, now_ns),
        msg_type::REPLY if from_lsp => match lsp.on_reply(now_ns, p.l3()) {
            Ok(_) => Ok(None),
            Err(_) => Err(Ignored::StrayReply),
        },
        _ => Err(Ignored::Unsupported),
    }
}

/// What the responder concluded from a request's TLVs.
struct Verdict<'a> {
    code: u8,
    subcode: u8,
    /// The Target FEC Stack's value, echoed in the reply.
    fec: Option<&'a [u8]>,
    /// TLVs not understood (each with header and padding), for an
    /// Errored TLVs TLV.
    errored: Vec<u8>,
}

/// Reads a request's TLVs and decides the return code (see the module
/// documentation).
fn check_request<'a>(echo: &MplsEcho<&'a [u8]>, node: &NodeInfo, labelled: bool) -> Verdict<'a> {
    let tlv_bytes: &'a [u8] = echo
        .clone()
        .into_inner()
        .get(mpls_echo::HEADER_LEN..)
        .unwrap_or(&[]);
    let mut v = Verdict {
        code: return_code::MALFORMED,
        subcode: 0,
        fec: None,
        errored: Vec::new(),
    };
    for t in tlvs(tlv_bytes) {
        let Ok(t) = t else {
            return v;
        };
        match t.ty {
            tlv_type::TARGET_FEC_STACK => {
                v.fec.get_or_insert(t.value);
            }
            tlv_type::PAD => {}
            _ if t.is_mandatory() => {
                // Bounded by the request's own size.
                let _ = push_tlv(&mut v.errored, t.ty, t.value);
            }
            _ => {}
        }
    }
    let Some(fec) = v.fec else {
        return v;
    };
    if !v.errored.is_empty() {
        v.code = return_code::TLV_NOT_UNDERSTOOD;
        return v;
    }
    match tlvs(fec).next() {
        Some(Ok(sub)) if sub.ty == fec_type::IPV4_IGP_PREFIX_SID => {
            if let Ok(sid) = Ipv4PrefixSid::parse(sub.value) {
                v.subcode = 1;
                v.code = if sid.prefix_len == 32 && node.addresses.contains(&sid.prefix) {
                    return_code::EGRESS
                } else if labelled {
                    return_code::LABEL_SWITCHED
                } else {
                    return_code::NO_MAPPING
                };
            }
        }
        Some(Ok(_)) => {
            v.code = return_code::TLV_NOT_UNDERSTOOD;
            let _ = push_tlv(&mut v.errored, tlv_type::TARGET_FEC_STACK, fec);
        }
        _ => {}
    }
    v
}

/// Answers an echo request.
fn respond(
    p: &PuntedFrame<'_>,
    u: &UdpPacket<&[u8]>,
    echo: &MplsEcho<&[u8]>,
    node: &NodeInfo,
    now_ns: u64,
) -> Result<Option<Outgoing>, Ignored> {
    let ip = p.ipv4().ok_or(Ignored::Malformed)?;
    if !only_router_alert(ip.options()) {
        return Err(Ignored::IpOptions);
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if !dst.is_loopback() && !node.owns(dst) {
        return Err(Ignored::NotForUs);
    }
    if is_bad_source(src) {
        return Err(Ignored::BadSource);
    }
    let router_alert = match echo.reply_mode() {
        reply_mode::NO_REPLY => return Err(Ignored::NoReplyRequested),
        reply_mode::UDP => false,
        reply_mode::UDP_ROUTER_ALERT => true,
        _ => return Err(Ignored::Unsupported),
    };
    let ttl_expired = p.labels().first().is_some_and(|e| e.ttl() <= 1);
    if echo.flags() & flags::TTL_EXPIRED_ONLY != 0 && !ttl_expired {
        return Err(Ignored::NoReplyRequested);
    }
    let from = node.node_address().ok_or(Ignored::NoAddress)?;
    let v = check_request(echo, node, p.is_labelled());
    let id_value = node.id.map(node_id_value);
    let mut out: Vec<(u16, &[u8])> = Vec::with_capacity(3);
    if let Some(fec) = v.fec {
        out.push((tlv_type::TARGET_FEC_STACK, fec));
    }
    if !v.errored.is_empty() {
        out.push((tlv_type::ERRORED_TLVS, &v.errored));
    }
    if let Some(id) = &id_value {
        out.push((tlv_type::NODE_ID, id));
    }
    let msg = build_reply(
        echo,
        NtpTimestamp::from_unix_ns(now_ns),
        v.code,
        v.subcode,
        &out,
    )?;
    let packet = udp_packet(
        Ipv4Spec {
            src: from,
            dst: src,
            protocol: protocol::UDP,
            ttl: REPLY_TTL,
            ident: 0,
            dscp_ecn: OAM_DSCP_ECN,
            router_alert,
        },
        UDP_PORT,
        u.src_port(),
        &msg,
    )
    .ok_or(Ignored::Malformed)?;
    Ok(Some(Outgoing::Remote { dst: src, packet }))
}

/// An IPv4/UDP packet with both checksums filled; `None` if too long.
fn udp_packet(spec: Ipv4Spec, sport: u16, dport: u16, payload: &[u8]) -> Option<Vec<u8>> {
    let mut d = vec![0u8; udp::HEADER_LEN + payload.len()];
    udp::write_header(&mut d, sport, dport, payload.len()).ok()?;
    d.get_mut(udp::HEADER_LEN..)?.copy_from_slice(payload);
    UdpPacket::new_unchecked(&mut d[..]).fill_checksum_v4(spec.src, spec.dst);
    super::ipv4_packet(spec, &d)
}

// -------------------------------------------------------------------
// Initiator
// -------------------------------------------------------------------

/// Names one probe (a ping or a trace).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeId(pub u64);

/// A ping (every echo to the egress) or a trace (one echo per TTL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// Echoes with MPLS TTL 255, answered by the egress.
    Ping,
    /// One echo per MPLS TTL 1..=max_hops, answered where it expires.
    Trace,
}

/// An echo request to send: the caller pushes the target's label with
/// `mpls_ttl` in front of `packet` and sends it as data to the target
/// would go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoToSend {
    /// TTL of the label the caller pushes.
    pub mpls_ttl: u8,
    /// The IPv4 packet, from its IP header: node address -> 127.0.0.1,
    /// IP TTL 1, Router Alert, UDP to port 3503, the echo request.
    pub packet: Vec<u8>,
}

/// One echo's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop {
    /// MPLS TTL it was sent with (the hop number in a trace).
    pub ttl: u8,
    /// Its sequence number.
    pub seq: u32,
    /// The replier's address (the reply's IP source), if it answered.
    pub address: Option<Ipv4Addr>,
    /// The replier's constellation node id, if its reply carried one.
    pub node_id: Option<u32>,
    /// Round-trip time from the send time to the reply's arrival.
    pub rtt_ns: Option<u64>,
    /// The reply's return code.
    pub return_code: Option<u8>,
    /// The reply's return subcode.
    pub return_subcode: Option<u8>,
}

impl Hop {
    /// True if the replier said it is the egress for the FEC.
    pub fn is_egress(&self) -> bool {
        self.return_code == Some(return_code::EGRESS)
    }
}

/// A finished probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeDone {
    /// The probe.
    pub id: ProbeId,
    /// Ping or trace.
    pub kind: ProbeKind,
    /// The egress gateway probed.
    pub target: Ipv4Addr,
    /// Per echo, by TTL then sequence; a trace stops at the first hop
    /// that answered as the egress.
    pub hops: Vec<Hop>,
    /// True if it ended at its deadline rather than with every answer
    /// it waited for.
    pub timed_out: bool,
}

impl ProbeDone {
    /// True if some hop answered as the egress for the FEC.
    pub fn reached_egress(&self) -> bool {
        self.hops.iter().any(Hop::is_egress)
    }
}

/// Why a probe could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// [`MAX_PROBES`] probes are outstanding.
    #[error("{MAX_PROBES} probes are already outstanding")]
    TooManyProbes,
    /// A count or hop limit of 0 or above [`MAX_ECHOES`].
    #[error("count or hops must be 1 to {MAX_ECHOES}")]
    BadCount,
    /// The target cannot be a node FEC (unspecified, loopback, group).
    #[error("{0} is not a node address")]
    BadTarget(Ipv4Addr),
}

/// Why a packet given to [`LspProbes::on_reply`] matched no echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StrayReply {
    /// Not a well-formed IPv4/UDP/MPLS echo packet (or a bad checksum).
    #[error("malformed")]
    Malformed,
    /// Not an echo reply from port 3503.
    #[error("not an echo reply")]
    NotAReply,
    /// No outstanding or recent probe has its sender's handle.
    #[error("unknown sender's handle")]
    UnknownHandle,
    /// The handle matches but not the rest: a sequence number never sent,
    /// another UDP port or IP destination, or another FEC echoed.
    #[error("does not match its probe")]
    Forged,
    /// For a probe past its deadline or already finished.
    #[error("late")]
    Late,
    /// For an echo already answered.
    #[error("duplicate")]
    Duplicate,
}

/// What the initiator has seen, for counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LspStats {
    /// Probes started.
    pub started: u64,
    /// Probes refused ([`ProbeError`]).
    pub refused: u64,
    /// Probes finished with every answer they waited for.
    pub completed: u64,
    /// Probes finished at their deadline.
    pub timed_out: u64,
    /// Replies matched to an echo.
    pub replies: u64,
    /// [`StrayReply::Malformed`].
    pub malformed: u64,
    /// [`StrayReply::NotAReply`].
    pub not_a_reply: u64,
    /// [`StrayReply::UnknownHandle`].
    pub unknown: u64,
    /// [`StrayReply::Forged`].
    pub forged: u64,
    /// [`StrayReply::Late`].
    pub late: u64,
    /// [`StrayReply::Duplicate`].
    pub duplicate: u64,
}

#[derive(Clone, Copy, Debug)]
struct Reply {
    address: Ipv4Addr,
    node_id: Option<u32>,
    rtt_ns: u64,
    code: u8,
    subcode: u8,
}

#[derive(Clone, Debug)]
struct Echo {
    ttl: u8,
    seq: u32,
    reply: Option<Reply>,
}

#[derive(Clone, Debug)]
struct Probe {
    id: ProbeId,
    handle: u32,
    kind: ProbeKind,
    target: Ipv4Addr,
    sport: u16,
    sent_ns: u64,
    deadline_ns: u64,
    /// In TTL (trace) or sequence (ping) order; sequence numbers 1, 2, ...
    echoes: Vec<Echo>,
}

impl Probe {
    /// Everything it waits for has come: every echo answered, or (a
    /// trace) an egress answer with every lower TTL answered.
    fn complete(&self) -> bool {
        match self.kind {
            ProbeKind::Ping => self.echoes.iter().all(|e| e.reply.is_some()),
            ProbeKind::Trace => {
                for e in &self.echoes {
                    match e.reply {
                        None => return false,
                        Some(r) if r.code == return_code::EGRESS => return true,
                        Some(_) => {}
                    }
                }
                true
            }
        }
    }

    fn finish(self, timed_out: bool) -> ProbeDone {
        let mut hops: Vec<Hop> = self
            .echoes
            .iter()
            .map(|e| Hop {
                ttl: e.ttl,
                seq: e.seq,
                address: e.reply.map(|r| r.address),
                node_id: e.reply.and_then(|r| r.node_id),
                rtt_ns: e.reply.map(|r| r.rtt_ns),
                return_code: e.reply.map(|r| r.code),
                return_subcode: e.reply.map(|r| r.subcode),
            })
            .collect();
        hops.sort_by_key(|h| (h.ttl, h.seq));
        if self.kind == ProbeKind::Trace {
            if let Some(i) = hops.iter().position(Hop::is_egress) {
                hops.truncate(i + 1);
            }
        }
        ProbeDone {
            id: self.id,
            kind: self.kind,
            target: self.target,
            hops,
            timed_out,
        }
    }
}

/// The LSP ping / trace initiator: outstanding probes, bounded.
#[derive(Clone, Debug)]
pub struct LspProbes {
    source: Ipv4Addr,
    seed: u32,
    next: u64,
    probes: Vec<Probe>,
    /// Handles of recently finished probes, so their late replies count
    /// as late rather than unknown.
    recent: VecDeque<u32>,
    stats: LspStats,
}

impl LspProbes {
    /// An initiator sending from `source` (the node address). Sender's
    /// handles are a bijection of a probe counter mixed with
    /// `handle_seed`: pass a random value so that an off-path host cannot
    /// guess them.
    pub fn new(source: Ipv4Addr, handle_seed: u32) -> Self {
        LspProbes {
            source,
            seed: handle_seed,
            next: 0,
            probes: Vec::with_capacity(MAX_PROBES),
            recent: VecDeque::with_capacity(MAX_PROBES),
            stats: LspStats::default(),
        }
    }

    /// The address echo requests are sent from (replies come back to it).
    pub fn source(&self) -> Ipv4Addr {
        self.source
    }

    /// Counters.
    pub fn stats(&self) -> &LspStats {
        &self.stats
    }

    /// Probes outstanding.
    pub fn outstanding(&self) -> usize {
        self.probes.len()
    }

    /// The earliest deadline of an outstanding probe: when to call
    /// [`LspProbes::poll`] next at the latest.
    pub fn next_deadline(&self) -> Option<u64> {
        self.probes.iter().map(|p| p.deadline_ns).min()
    }

    /// Starts a ping of `target` (an egress gateway's address): `count`
    /// echoes with MPLS TTL 255, all sent now, the probe ending when all
    /// are answered or at `now_ns + timeout`.
    pub fn start_ping(
        &mut self,
        now_ns: u64,
        target: Ipv4Addr,
        count: u16,
        timeout: Duration,
    ) -> Result<(ProbeId, Vec<EchoToSend>), ProbeError> {
        let n = usize::from(count);
        self.start(now_ns, ProbeKind::Ping, target, n, timeout, |_| {
            PING_MPLS_TTL
        })
    }

    /// Starts a trace toward `target`: one echo per MPLS TTL
    /// 1..=`max_hops`, all sent now (sequence number = TTL), the probe
    /// ending when the egress and every hop before it answered, or at
    /// `now_ns + timeout`.
    pub fn start_trace(
        &mut self,
        now_ns: u64,
        target: Ipv4Addr,
        max_hops: u8,
        timeout: Duration,
    ) -> Result<(ProbeId, Vec<EchoToSend>), ProbeError> {
        let n = usize::from(max_hops);
        self.start(now_ns, ProbeKind::Trace, target, n, timeout, |i| {
            // i < MAX_ECHOES <= 255.
            u8::try_from(i + 1).unwrap_or(u8::MAX)
        })
    }

    fn start(
        &mut self,
        now_ns: u64,
        kind: ProbeKind,
        target: Ipv4Addr,
        count: usize,
        timeout: Duration,
        ttl_of: impl Fn(usize) -> u8,
    ) -> Result<(ProbeId, Vec<EchoToSend>), ProbeError> {
        let refused = if self.probes.len() >= MAX_PROBES {
            Some(ProbeError::TooManyProbes)
        } else if count == 0 || count > MAX_ECHOES {
            Some(ProbeError::BadCount)
        } else if target.is_unspecified()
            || target.is_loopback()
            || target.is_multicast()
            || target.is_broadcast()
        {
            Some(ProbeError::BadTarget(target))
        } else {
            None
        };
        if let Some(e) = refused {
            self.stats.refused += 1;
            return Err(e);
        }
        let (id, handle) = self.fresh_handle();
        let sport = FIRST_SOURCE_PORT + (id.0 % u64::from(u16::MAX - FIRST_SOURCE_PORT + 1)) as u16;
        let timeout_ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        let sent = NtpTimestamp::from_unix_ns(now_ns);
        let fec = Ipv4PrefixSid::node(target);
        let mut echoes = Vec::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let seq = i as u32 + 1;
            let ttl = ttl_of(i);
            let msg = build_request(handle, seq, sent, reply_mode::UDP, fec);
            let spec = Ipv4Spec {
                src: self.source,
                dst: REQUEST_DST,
                protocol: protocol::UDP,
                ttl: 1,
                ident: seq as u16,
                dscp_ecn: OAM_DSCP_ECN,
                router_alert: true,
            };
            // A 44-byte request always fits.
            let packet = udp_packet(spec, sport, UDP_PORT, &msg).unwrap_or_default();
            out.push(EchoToSend {
                mpls_ttl: ttl,
                packet,
            });
            echoes.push(Echo {
                ttl,
                seq,
                reply: None,
            });
        }
        self.probes.push(Probe {
            id,
            handle,
            kind,
            target,
            sport,
            sent_ns: now_ns,
            deadline_ns: now_ns.saturating_add(timeout_ns),
            echoes,
        });
        self.stats.started += 1;
        Ok((id, out))
    }

    /// The next probe id and a sender's handle no outstanding probe has.
    fn fresh_handle(&mut self) -> (ProbeId, u32) {
        loop {
            let n = self.next;
            self.next = self.next.wrapping_add(1);
            // Odd multiplier and xor: a bijection on u32, so handles
            // repeat only after 2^32 probes.
            let h = (n as u32).wrapping_mul(0x9e37_79b1) ^ self.seed;
            if !self.probes.iter().any(|p| p.handle == h) {
                return (ProbeId(n), h);
            }
        }
    }

    /// Matches an echo reply (`packet` from its IPv4 header) received at
    /// `now_ns` to an outstanding echo and records it; returns its probe.
    /// Every refusal is counted in [`LspStats`].
    pub fn on_reply(&mut self, now_ns: u64, packet: &[u8]) -> Result<ProbeId, StrayReply> {
        let r = self.match_reply(now_ns, packet);
        let s = &mut self.stats;
        match r {
            Ok(_) => s.replies += 1,
            Err(StrayReply::Malformed) => s.malformed += 1,
            Err(StrayReply::NotAReply) => s.not_a_reply += 1,
            Err(StrayReply::UnknownHandle) => s.unknown += 1,
            Err(StrayReply::Forged) => s.forged += 1,
            Err(StrayReply::Late) => s.late += 1,
            Err(StrayReply::Duplicate) => s.duplicate += 1,
        }
        r
    }

    fn match_reply(&mut self, now_ns: u64, packet: &[u8]) -> Result<ProbeId, StrayReply> {
        let ip = Ipv4Packet::new_checked(packet).map_err(|_| StrayReply::Malformed)?;
        if !ip.verify_checksum() || ip.is_fragment() {
            return Err(StrayReply::Malformed);
        }
        if ip.protocol() != protocol::UDP {
            return Err(StrayReply::NotAReply);
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let u = UdpPacket::new_checked(ip.payload()).map_err(|_| StrayReply::Malformed)?;
        if !u.verify_checksum_v4(src, dst) {
            return Err(StrayReply::Malformed);
        }
        if u.src_port() != UDP_PORT {
            return Err(StrayReply::NotAReply);
        }
        let echo = MplsEcho::new_checked(u.payload()).map_err(|_| StrayReply::Malformed)?;
        if echo.msg_type() != msg_type::REPLY {
            return Err(StrayReply::NotAReply);
        }
        let handle = echo.sender_handle();
        let Some(probe) = self.probes.iter_mut().find(|p| p.handle == handle) else {
            return Err(if self.recent.contains(&handle) {
                StrayReply::Late
            } else {
                StrayReply::UnknownHandle
            });
        };
        if u.dst_port() != probe.sport || dst != self.source {
            return Err(StrayReply::Forged);
        }
        // A reply need not echo the FEC; one that does must echo ours.
        if let Some(mut fec) = echo.target_fec_stack() {
            let ours = matches!(fec.next(), Some(Ok(t))
                if t.ty == fec_type::IPV4_IGP_PREFIX_SID
                    && Ipv4PrefixSid::parse(t.value) == Ok(Ipv4PrefixSid::node(probe.target)));
            if !ours {
                return Err(StrayReply::Forged);
            }
        }
        let seq = echo.sequence();
        let Some(e) = probe.echoes.iter_mut().find(|e| e.seq == seq) else {
            return Err(StrayReply::Forged);
        };
        if now_ns >= probe.deadline_ns {
            return Err(StrayReply::Late);
        }
        if e.reply.is_some() {
            return Err(StrayReply::Duplicate);
        }
        e.reply = Some(Reply {
            address: src,
            node_id: echo.node_id(),
            rtt_ns: now_ns.saturating_sub(probe.sent_ns),
            code: echo.return_code(),
            subcode: echo.return_subcode(),
        });
        Ok(probe.id)
    }

    /// Finished probes at `now_ns`: those with every answer they wait
    /// for, and those past their deadline. Each is handed back once.
    pub fn poll(&mut self, now_ns: u64) -> Vec<ProbeDone> {
        let mut done = Vec::new();
        let mut i = 0;
        while i < self.probes.len() {
            let p = &self.probes[i];
            let complete = p.complete();
            if complete || now_ns >= p.deadline_ns {
                let p = self.probes.swap_remove(i);
                if self.recent.len() >= MAX_PROBES {
                    self.recent.pop_front();
                }
                self.recent.push_back(p.handle);
                if complete {
                    self.stats.completed += 1;
                } else {
                    self.stats.timed_out += 1;
                }
                done.push(p.finish(!complete));
            } else {
                i += 1;
            }
        }
        done.sort_by_key(|d| d.id);
        done
    }
}
