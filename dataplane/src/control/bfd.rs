//! The node's BFD sessions (RFC 5880 asynchronous mode, RFC 5881 single
//! hop): one per link toward a constellation node (ports `isl<ID>` /
//! `gsl<ID>`), and one per `[[bfd.peer]]`.
//!
//! The state machine is [`meshplane_control::bfd::Session`]; this module
//! is its transport: it recognises BFD among punted frames, checks what
//! RFC 5881 leaves to the transport (unlabelled IPv4/UDP to port 3784,
//! TTL 255 as RFC 5082 asks, the session's peer on the port it arrived
//! on, the UDP checksum), and builds the frames each session sends
//! (source port fixed per session in 49152..65535, DSCP CS6, TTL 255).
//! It reports each link that goes down, and each that comes back after
//! it has stayed Up for the hold-down time, as a [`LinkEvent`].
//!
//! Time is monotonic nanoseconds chosen by the caller.

use crate::config::{node_address, BfdConfig, Mac, NodeConfig};
use crate::frame::PortId;
use crate::packet::ethernet::{self, ethertype};
use crate::packet::ipv4::{self, protocol};
use crate::packet::punted::{L3Kind, PuntedFrame};
use crate::packet::udp::{self, UdpPacket};
use meshplane_control::bfd::{
    self, AuthKey, Refused, Session, SessionConfig, SessionInfo, State, StateChange,
};
use std::net::Ipv4Addr;

/// DSCP CS6 (network control), as routers send BFD.
const TOS_CS6: u8 = 0xc0;

/// A link that went down, or came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkEvent {
    /// The port.
    pub port: PortId,
    /// Its name.
    pub port_name: String,
    /// The constellation node at the other end, if it is one.
    pub peer_node: Option<u32>,
    /// The peer's address.
    pub peer: Ipv4Addr,
    /// Up (after the hold-down) or down.
    pub up: bool,
    /// The session's diagnostic (why it went down).
    pub diag: u8,
}

/// Why a punted BFD frame went to no session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BfdIgnored {
    /// It came with a label stack (single-hop BFD never does).
    Labelled,
    /// The IP TTL was not 255 (RFC 5881 §5).
    Ttl,
    /// A bad UDP header or checksum.
    Udp,
    /// No session to that source on that port.
    NoSession,
    /// The session refused it.
    Refused(Refused),
}

impl BfdIgnored {
    /// A short name for counters.
    pub fn name(self) -> &'static str {
        match self {
            BfdIgnored::Labelled => "labelled",
            BfdIgnored::Ttl => "ttl_not_255",
            BfdIgnored::Udp => "bad_udp",
            BfdIgnored::NoSession => "no_session",
            BfdIgnored::Refused(r) => r.name(),
        }
    }
}

/// One session as the operator sees it (`meshplane ctl show bfd`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BfdSessionView {
    /// The port.
    pub port: String,
    /// The peer's address.
    pub peer: Ipv4Addr,
    /// The constellation node at the other end.
    pub peer_node: Option<u32>,
    /// The source address.
    pub local: Ipv4Addr,
    /// Whether a link-down was reported and not yet taken back.
    pub reported_down: bool,
    /// No peer MAC known yet (nothing can be sent).
    pub no_peer_mac: bool,
    /// The session.
    pub session: SessionInfo,
}

/// Counters of the transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BfdCounters {
    /// Frames taken as BFD.
    pub received: u64,
    /// Of those, refused before a session: labelled.
    pub labelled: u64,
    /// ... TTL not 255.
    pub ttl: u64,
    /// ... bad UDP.
    pub bad_udp: u64,
    /// ... no session.
    pub no_session: u64,
    /// Packets not sent: no peer MAC known.
    pub no_peer_mac: u64,
    /// Link events reported.
    pub events: u64,
}

struct Link {
    port: PortId,
    port_name: String,
    port_mac: Mac,
    local: Ipv4Addr,
    peer: Ipv4Addr,
    peer_node: Option<u32>,
    /// Configured peer MAC, else learnt from its packets.
    peer_mac: Option<Mac>,
    src_port: u16,
    ident: u16,
    session: Session,
    reported_down: bool,
    pending_down: bool,
    up_since: Option<u64>,
}

/// The node's BFD sessions.
pub struct BfdSessions {
    links: Vec<Link>,
    hold_down_ns: u64,
    counters: BfdCounters,
}

/// The constellation node a control-plane port leads to (`isl<ID>`,
/// `gsl<ID>`, [`meshplane_control::tables::port_name`]).
pub fn port_peer(name: &str) -> Option<u32> {
    let id = name
        .strip_prefix("isl")
        .or_else(|| name.strip_prefix("gsl"))?;
    if id.is_empty() || id.len() > 10 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

/// True for a punted frame that is BFD's: IPv4, UDP to port 3784 (any
/// labels or tags; the driver refuses what single hop does not allow).
pub fn is_bfd(frame: &[u8]) -> bool {
    is_udp_to(frame, bfd::UDP_PORT)
}

/// True for a punted IPv4 frame carrying UDP to `port`.
pub fn is_udp_to(frame: &[u8], port: u16) -> bool {
    let Ok(p) = PuntedFrame::parse(frame) else {
        return false;
    };
    let Some(ip) = p.ipv4() else {
        return false;
    };
    if ip.protocol() != protocol::UDP {
        return false;
    }
    UdpPacket::new_checked(ip.payload()).is_ok_and(|u| u.dst_port() == port)
}

impl BfdSessions {
    /// The sessions `cfg` asks for: with `[bfd] links`, one on every port
    /// toward a constellation node (when the node has `[control]` with a
    /// `node_prefix` and an address), and one per `[[bfd.peer]]`.
    /// `seed` draws the discriminators and jitter; `now_ns` starts them.
    pub fn new(cfg: &NodeConfig, seed: u64, now_ns: u64) -> BfdSessions {
        let b = &cfg.bfd;
        let session_cfg = session_config(b);
        let mut rng = seed | 1;
        let mut links = Vec::new();
        let own = cfg.node_address();
        let prefix = cfg.control.as_ref().and_then(|c| c.node_prefix);
        let mut add = |port: usize, local: Ipv4Addr, peer: Ipv4Addr, node: Option<u32>| {
            let p = &cfg.ports[port];
            let r = bfd::xorshift(&mut rng);
            let discr = ((r as u32) & 0xffff_0000) | (links.len() as u32 + 1);
            links.push(Link {
                port: port as PortId,
                port_name: p.name.clone(),
                port_mac: p.mac,
                local,
                peer,
                peer_node: node,
                peer_mac: p.peer_mac,
                src_port: 49152 + (discr as u16 & 0x3fff),
                ident: (r >> 32) as u16,
                session: Session::new(session_cfg.clone(), discr, bfd::xorshift(&mut rng), now_ns),
                reported_down: false,
                pending_down: false,
                up_since: None,
            });
        };
        if b.links && cfg.control.is_some() {
            if let (Some(own), Some(prefix)) = (own, prefix) {
                for (i, p) in cfg.ports.iter().enumerate() {
                    let Some(node) = port_peer(&p.name) else {
                        continue;
                    };
                    if let Some(peer) = node_address(prefix, node) {
                        add(i, own, peer, Some(node));
                    }
                }
            }
        }
        for peer in &b.peers {
            let Some(i) = cfg.ports.iter().position(|p| p.name == peer.port) else {
                continue;
            };
            let local = peer.local.or(cfg.ports[i].address.map(|(a, _)| a)).or(own);
            if let Some(local) = local {
                add(i, local, peer.address, None);
            }
        }
        BfdSessions {
            links,
            hold_down_ns: u64::from(b.hold_down_ms) * 1_000_000,
            counters: BfdCounters::default(),
        }
    }

    /// True if there is no session.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// The transport's counters.
    pub fn counters(&self) -> BfdCounters {
        self.counters
    }

    /// Every session, for the operator.
    pub fn view(&self) -> Vec<BfdSessionView> {
        self.links
            .iter()
            .map(|l| BfdSessionView {
                port: l.port_name.clone(),
                peer: l.peer,
                peer_node: l.peer_node,
                local: l.local,
                reported_down: l.reported_down,
                no_peer_mac: l.peer_mac.is_none(),
                session: l.session.info(),
            })
            .collect()
    }

    /// Takes one punted BFD frame that arrived on `port` (see [`is_bfd`]).
    /// A state change is followed at the next [`BfdSessions::poll`].
    pub fn receive(&mut self, now_ns: u64, port: PortId, frame: &[u8]) -> Result<(), BfdIgnored> {
        self.counters.received += 1;
        let r = self.receive_inner(now_ns, port, frame);
        match r {
            Err(BfdIgnored::Labelled) => self.counters.labelled += 1,
            Err(BfdIgnored::Ttl) => self.counters.ttl += 1,
            Err(BfdIgnored::Udp) => self.counters.bad_udp += 1,
            Err(BfdIgnored::NoSession) => self.counters.no_session += 1,
            _ => {}
        }
        r
    }

    fn receive_inner(&mut self, now_ns: u64, port: PortId, frame: &[u8]) -> Result<(), BfdIgnored> {
        let (i, payload, src_mac) = self.datagram(port, frame, bfd::UDP_PORT)?;
        let link = &mut self.links[i];
        let change = link
            .session
            .receive(now_ns, payload)
            .map_err(BfdIgnored::Refused)?;
        if link.peer_mac.is_none() && src_mac[0] & 1 == 0 && src_mac != [0; 6] {
            link.peer_mac = Some(src_mac);
        }
        if let Some(c) = change {
            log_change(link, c);
            link.note(now_ns, c);
        }
        Ok(())
    }

    /// The checks single hop asks of any datagram on the node's links
    /// (unlabelled IPv4/UDP to `dst_port`, TTL 255, UDP checksum, the
    /// source a session's peer on the port it arrived on): the session's
    /// index, the UDP payload and the source MAC.
    fn datagram<'a>(
        &self,
        port: PortId,
        frame: &'a [u8],
        dst_port: u16,
    ) -> Result<(usize, &'a [u8], [u8; 6]), BfdIgnored> {
        let p = PuntedFrame::parse(frame).map_err(|_| BfdIgnored::Udp)?;
        if p.is_labelled() {
            return Err(BfdIgnored::Labelled);
        }
        let ip = match (p.kind, p.ipv4()) {
            (L3Kind::Ipv4, Some(ip)) => ip,
            _ => return Err(BfdIgnored::Udp),
        };
        if ip.ttl() != bfd::TTL {
            return Err(BfdIgnored::Ttl);
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let u = UdpPacket::new_checked(ip.payload()).map_err(|_| BfdIgnored::Udp)?;
        if u.dst_port() != dst_port || !u.verify_checksum_v4(src, dst) {
            return Err(BfdIgnored::Udp);
        }
        let i = self
            .links
            .iter()
            .position(|l| l.port == port && l.peer == src && l.local == dst)
            .ok_or(BfdIgnored::NoSession)?;
        // The payload as a slice of the frame (the views borrow locals).
        let at = p.l3_offset + ip.header_len();
        let payload = frame
            .get(at + udp::HEADER_LEN..at + usize::from(u.len()))
            .ok_or(BfdIgnored::Udp)?;
        Ok((i, payload, p.src_mac))
    }

    /// The constellation neighbour that sent `frame` (a UDP datagram to
    /// `dst_port` over a link with a BFD session, checked as BFD's own
    /// packets are), and the datagram's payload.
    pub fn neighbor_datagram<'a>(
        &self,
        port: PortId,
        frame: &'a [u8],
        dst_port: u16,
    ) -> Result<(u32, &'a [u8]), BfdIgnored> {
        let (i, payload, _) = self.datagram(port, frame, dst_port)?;
        let node = self.links[i].peer_node.ok_or(BfdIgnored::NoSession)?;
        Ok((node, payload))
    }

    /// The frame carrying `payload` in a UDP datagram to `dst_port` of
    /// neighbour `node`, over its link, and the port; None without a
    /// session to it or its MAC.
    pub fn frame_to_neighbor(
        &mut self,
        node: u32,
        dst_port: u16,
        payload: &[u8],
    ) -> Option<(PortId, Vec<u8>)> {
        let link = self.links.iter_mut().find(|l| l.peer_node == Some(node))?;
        let f = link.frame(dst_port, payload)?;
        Some((link.port, f))
    }

    /// The constellation neighbours whose sessions are Up.
    pub fn up_neighbors(&self) -> impl Iterator<Item = u32> + '_ {
        self.links
            .iter()
            .filter(|l| l.session.state() == State::Up)
            .filter_map(|l| l.peer_node)
    }

    /// Runs every session's timers at `now_ns`: frames to send go to
    /// `send` (port, Ethernet frame); links that went down or came back
    /// are returned.
    pub fn poll(&mut self, now_ns: u64, mut send: impl FnMut(PortId, Vec<u8>)) -> Vec<LinkEvent> {
        let mut events = Vec::new();
        for link in &mut self.links {
            let out = link.session.poll(now_ns);
            if let Some(c) = out.change {
                log_change(link, c);
                link.note(now_ns, c);
            }
            if let Some(p) = out.send {
                match link.frame(bfd::UDP_PORT, p.bytes()) {
                    Some(f) => send(link.port, f),
                    None => self.counters.no_peer_mac += 1,
                }
            }
            if let Some(up) = link.due(now_ns, self.hold_down_ns) {
                events.push(LinkEvent {
                    port: link.port,
                    port_name: link.port_name.clone(),
                    peer_node: link.peer_node,
                    peer: link.peer,
                    up,
                    diag: link.session.info().diag,
                });
            }
        }
        self.counters.events += events.len() as u64;
        events
    }

    /// When [`BfdSessions::poll`] next has something to do.
    pub fn next_timeout_ns(&self) -> u64 {
        self.links
            .iter()
            .map(|l| {
                let hold = match (l.reported_down, l.up_since) {
                    (true, Some(t)) => t.saturating_add(self.hold_down_ns),
                    _ => u64::MAX,
                };
                l.session.next_timeout_ns().min(hold)
            })
            .min()
            .unwrap_or(u64::MAX)
    }
}

impl Link {
    /// Follows a state change for the link events: a session that
    /// leaves Up is a link down (a session still coming up is not).
    fn note(&mut self, now_ns: u64, c: StateChange) {
        if c.from == State::Up && !self.reported_down {
            self.pending_down = true;
        }
        self.up_since = (c.to == State::Up).then_some(now_ns);
    }

    /// A link event due now: down at once, up once a reported-down
    /// session has been Up for the hold-down.
    fn due(&mut self, now_ns: u64, hold_ns: u64) -> Option<bool> {
        if std::mem::take(&mut self.pending_down) {
            self.reported_down = true;
            return Some(false);
        }
        match self.up_since {
            Some(t) if self.reported_down && now_ns >= t.saturating_add(hold_ns) => {
                self.reported_down = false;
                Some(true)
            }
            _ => None,
        }
    }

    /// The Ethernet frame carrying `payload` to UDP port `dst_port` of
    /// the peer, or None without a peer MAC.
    fn frame(&mut self, dst_port: u16, payload: &[u8]) -> Option<Vec<u8>> {
        let mac = self.peer_mac?;
        let l4 = udp::HEADER_LEN + payload.len();
        let mut f = vec![0u8; ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + l4];
        f[..6].copy_from_slice(&mac);
        f[6..12].copy_from_slice(&self.port_mac);
        f[12..14].copy_from_slice(&ethertype::IPV4.to_be_bytes());
        self.ident = self.ident.wrapping_add(1);
        let ip = &mut f[ethernet::HEADER_LEN..];
        ipv4::write_header(
            ip,
            self.local,
            self.peer,
            protocol::UDP,
            l4,
            bfd::TTL,
            self.ident,
            TOS_CS6,
        )
        .ok()?;
        let d = &mut ip[ipv4::MIN_HEADER_LEN..];
        udp::write_header(d, self.src_port, dst_port, payload.len()).ok()?;
        d[udp::HEADER_LEN..].copy_from_slice(payload);
        UdpPacket::new_unchecked(&mut d[..]).fill_checksum_v4(self.local, self.peer);
        Some(f)
    }
}

fn log_change(l: &Link, c: StateChange) {
    let diag = bfd::diag::name(c.diag);
    if c.to == State::Up || c.from == State::Up {
        tracing::info!(port = %l.port_name, peer = %l.peer, from = %c.from, to = %c.to, diag, "BFD session");
    } else {
        tracing::debug!(port = %l.port_name, peer = %l.peer, from = %c.from, to = %c.to, diag, "BFD session");
    }
}

fn session_config(b: &BfdConfig) -> SessionConfig {
    SessionConfig {
        desired_min_tx_us: b.desired_min_tx_us,
        required_min_rx_us: b.required_min_rx_us,
        detect_mult: b.detect_mult,
        auth: b.auth.as_ref().and_then(|(id, k)| AuthKey::new(*id, k)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    /// Satellite `me` with one port toward satellite `peer`.
    fn node(me: u32, peer: u32) -> NodeConfig {
        let text = format!(
            "[node]\nname = \"sat{me}\"\nrole = \"satellite\"\n\n\
             [[ports]]\nname = \"isl{peer}\"\nmac = \"02:00:00:00:00:{me:02x}\"\npeer_mac = \"02:00:00:00:00:{peer:02x}\"\n\n\
             [control]\nconstellation = \"starlink-550\"\nnode = \"sat:{me}\"\nnode_prefix = \"100.64.0.0/10\"\n\n\
             [bfd]\nhold_down_ms = 100\n"
        );
        NodeConfig::parse(&text, "sat.toml").expect("config")
    }

    /// Runs both ends 1 ms at a time for `ms`, delivering frames when
    /// `link` says so; returns the link events of each end.
    fn run(
        a: &mut BfdSessions,
        b: &mut BfdSessions,
        now: &mut u64,
        ms: u64,
        link: bool,
    ) -> (Vec<LinkEvent>, Vec<LinkEvent>) {
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        for _ in 0..ms {
            *now += MS;
            let (mut fa, mut fb) = (Vec::new(), Vec::new());
            ea.extend(a.poll(*now, |p, f| fa.push((p, f))));
            eb.extend(b.poll(*now, |p, f| fb.push((p, f))));
            if link {
                for (_, f) in fa {
                    let _ = b.receive(*now, 0, &f);
                }
                for (_, f) in fb {
                    let _ = a.receive(*now, 0, &f);
                }
            }
        }
        (ea, eb)
    }

    #[test]
    fn two_satellites_bring_their_link_up_and_report_it_down_and_back() {
        let mut a = BfdSessions::new(&node(5, 6), 1, 0);
        let mut b = BfdSessions::new(&node(6, 5), 2, 0);
        assert_eq!(a.view().len(), 1);
        assert_eq!(a.view()[0].peer, Ipv4Addr::new(100, 64, 0, 7));
        assert_eq!(a.view()[0].peer_node, Some(6));
        let mut now = 0;
        let (ea, eb) = run(&mut a, &mut b, &mut now, 3000, true);
        assert!(ea.is_empty() && eb.is_empty(), "coming up is no event");
        assert_eq!(a.up_neighbors().collect::<Vec<_>>(), [6]);
        assert_eq!(b.up_neighbors().collect::<Vec<_>>(), [5]);
        // Dark: both report the link down within the detection time.
        let (ea, eb) = run(&mut a, &mut b, &mut now, 40, false);
        assert_eq!(ea.len(), 1, "{ea:?}");
        assert!(!ea[0].up && ea[0].peer_node == Some(6));
        assert_eq!(eb.len(), 1);
        // Back: up, announced after the hold-down (100 ms here).
        let (ea, _) = run(&mut a, &mut b, &mut now, 3000, true);
        assert_eq!(ea.len(), 1);
        assert!(ea[0].up);
        assert_eq!(a.counters().no_session, 0);
    }

    #[test]
    fn what_single_hop_forbids_is_refused_by_reason() {
        let mut a = BfdSessions::new(&node(5, 6), 1, 0);
        let mut b = BfdSessions::new(&node(6, 5), 2, 0);
        let mut frames = Vec::new();
        b.poll(0, |_, f| frames.push(f));
        let good = frames.pop().expect("a first packet");
        assert!(is_bfd(&good));
        assert!(a.receive(MS, 0, &good).is_ok());
        // TTL 254: one hop further than a neighbour can be.
        let mut f = good.clone();
        f[14 + 8] = 254;
        let sum = crate::packet::checksum::internet_checksum(&{
            let mut h = f[14..34].to_vec();
            h[10] = 0;
            h[11] = 0;
            h
        });
        f[24..26].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(a.receive(MS, 0, &f), Err(BfdIgnored::Ttl));
        // Another port, another source: no session.
        assert_eq!(a.receive(MS, 1, &good), Err(BfdIgnored::NoSession));
        // A corrupted UDP checksum.
        let mut f = good.clone();
        let last = f.len() - 1;
        f[last] ^= 0x55;
        assert_eq!(a.receive(MS, 0, &f), Err(BfdIgnored::Udp));
        let c = a.counters();
        assert_eq!((c.ttl, c.no_session, c.bad_udp), (1, 1, 1));
    }

    proptest! {
        #[test]
        fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), port in 0u16..3) {
            let mut a = BfdSessions::new(&node(5, 6), 1, 0);
            let _ = is_bfd(&bytes);
            let _ = a.receive(MS, port, &bytes);
            let _ = a.neighbor_datagram(port, &bytes, 7784);
            let _ = a.poll(2 * MS, |_, _| {});
        }
    }
}
