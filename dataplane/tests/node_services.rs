//! The node's own packets end to end over the embedded chain (gateway A,
//! sat-1, gateway B on memory links), each node with its workers' punt
//! and inject queues and its service loop, driven round by round: a LAN
//! host resolves its gateway by ARP and pings it, an LSP trace from A
//! names sat-1 and then B, an LSP ping reaches B, the gateways ping each
//! other (ICMP echo over their labels, paced), and a flood of pings is
//! policed to the configured rate.

use crossbeam::channel::{bounded, Receiver, Sender};
use meshplane::chain::default_chain;
use meshplane::config::{NodeConfig, NodeRouteConfig};
use meshplane::control::address_book::AddressBook;
use meshplane::control::service_loop::{node_info, ServiceLoop, ServiceStats};
use meshplane::control::{OamKind, OamRequest, OamResult};
use meshplane::drop_reason::DropReason;
use meshplane::frame::{Frame, HeapFrame};
use meshplane::io::memory::MemoryPort;
use meshplane::runtime::Channels;
use meshplane::tables::Tables;
use meshplane::worker::Worker;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

struct Node {
    worker: Worker<MemoryPort>,
    tables: Tables,
    services: ServiceLoop,
    oam: Sender<OamRequest>,
}

impl Node {
    fn new(cfg: &NodeConfig, ports: Vec<MemoryPort>) -> Node {
        let tables = Tables::from_config(cfg, 1).expect("tables");
        let channels = Arc::new(Channels::new(1, cfg.punt));
        let mut worker = Worker::new(ports);
        worker.set_punt_path(channels.path(0).expect("worker 0"));
        let (oam, rx): (Sender<OamRequest>, Receiver<OamRequest>) = bounded(4);
        let services = ServiceLoop::new(
            channels,
            node_info(&cfg.name, None, &tables),
            AddressBook::empty(),
            Some(rx),
            Arc::new(ServiceStats::default()),
        );
        Node {
            worker,
            tables,
            services,
            oam,
        }
    }
}

struct Chain {
    nodes: Vec<Node>,
    host_a: MemoryPort,
    now: u64,
}

impl Chain {
    fn new() -> Chain {
        Chain::with_gw_a(|_| {})
    }

    /// The embedded chain, gateway A's configuration changed by `edit`.
    fn with_gw_a(edit: impl FnOnce(&mut NodeConfig)) -> Chain {
        let mut hops = default_chain().expect("embedded configs");
        edit(&mut hops[0].node);
        let mut sat = hops[1].node.clone();
        // sat-1's own packets toward the gateways take their labels (the
        // control plane fills these in from the constellation).
        sat.node_routes = vec![
            NodeRouteConfig {
                address: Ipv4Addr::new(192, 0, 2, 1),
                label: 2001,
            },
            NodeRouteConfig {
                address: Ipv4Addr::new(192, 0, 2, 2),
                label: 1002,
            },
        ];
        let (a_lan, host_a) = MemoryPort::pair(256);
        let (a_up, sat_a) = MemoryPort::pair(256);
        let (sat_b, b_up) = MemoryPort::pair(256);
        let (b_lan, _host_b) = MemoryPort::pair(256);
        Chain {
            nodes: vec![
                Node::new(&hops[0].node, vec![a_lan, a_up]),
                Node::new(&sat, vec![sat_a, sat_b]),
                Node::new(&hops[2].node, vec![b_up, b_lan]),
            ],
            host_a,
            now: 1_800_000_000_000_000_000,
        }
    }

    /// One round of every node: poll, serve, poll again (the injects).
    fn step(&mut self) {
        self.now += 100_000;
        for n in &mut self.nodes {
            n.worker.poll(&n.tables);
            n.services.round(&n.tables, self.now);
            n.worker.poll(&n.tables);
        }
    }

    /// Asks node `i` for a probe and steps until it answers.
    fn probe(&mut self, i: usize, kind: OamKind, to: &str) -> OamResult {
        self.probe_rounds(i, kind, to).0
    }

    /// Asks node `i` for a probe (3 echoes 10 ms apart, 50 ms wait, 56
    /// data bytes; 8 hops) and steps until it answers; also returns the
    /// rounds that took.
    fn probe_rounds(&mut self, i: usize, kind: OamKind, to: &str) -> (OamResult, usize) {
        let (tx, rx) = bounded(1);
        self.nodes[i]
            .oam
            .send(OamRequest {
                kind,
                to: to.into(),
                count: 3,
                max_hops: 8,
                timeout: Duration::from_millis(50),
                interval: INTERVAL,
                size: 56,
                reply: tx,
            })
            .expect("request");
        for round in 1..=10_000 {
            self.step();
            if let Ok(r) = rx.try_recv() {
                return (r, round);
            }
        }
        panic!("no answer to {kind:?} {to}");
    }
}

/// Between a ping's echoes.
const INTERVAL: Duration = Duration::from_millis(10);
/// Virtual time per round (`Chain::step`).
const ROUND: Duration = Duration::from_micros(100);

const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0x0a, 0xaa];
const GW_A_LAN: [u8; 6] = [2, 0, 0, 0, 0x0a, 1];

fn arp_request(target: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend(HOST_MAC);
    f.extend([0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend(HOST_MAC);
    f.extend([10, 1, 0, 9]);
    f.extend([0; 6]);
    f.extend(target);
    f
}

fn checksum(b: &[u8]) -> u16 {
    meshplane::packet::checksum::internet_checksum(b)
}

fn ping(dst_mac: [u8; 6], dst: [u8; 4], seq: u16) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34];
    icmp.extend(seq.to_be_bytes());
    icmp.extend(b"meshplane ping payload");
    let c = checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = 20 + icmp.len();
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, 1, 0, 0, 10, 1, 0, 9];
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip.extend(dst);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = dst_mac.to_vec();
    f.extend(HOST_MAC);
    f.extend([0x08, 0x00]);
    f.extend(ip);
    f.extend(icmp);
    f
}

fn received(p: &MemoryPort) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| p.rx_ring().pop())
        .map(|f| f.data().to_vec())
        .collect()
}

#[test]
fn a_lan_host_resolves_its_gateway_by_arp_and_pings_it() {
    let mut c = Chain::new();
    let tx = c.host_a.tx_ring().clone();
    tx.push(HeapFrame::from_bytes(&arp_request([10, 1, 0, 1])))
        .expect("room");
    // A request for an address the gateway does not have: no answer.
    tx.push(HeapFrame::from_bytes(&arp_request([10, 1, 0, 77])))
        .expect("room");
    c.step();
    let got = received(&c.host_a);
    assert_eq!(got.len(), 1, "one ARP reply");
    let r = &got[0];
    assert_eq!(&r[..6], &HOST_MAC, "to the asking host");
    assert_eq!(&r[12..14], &[0x08, 0x06]);
    assert_eq!(&r[20..22], &[0, 2], "an ARP reply");
    assert_eq!(&r[22..28], &GW_A_LAN, "with the LAN port's MAC");
    assert_eq!(&r[28..32], &[10, 1, 0, 1]);

    for seq in 1..=3 {
        tx.push(HeapFrame::from_bytes(&ping(GW_A_LAN, [10, 1, 0, 1], seq)))
            .expect("room");
    }
    c.step();
    let got = received(&c.host_a);
    assert_eq!(got.len(), 3, "three echo replies");
    for (i, r) in got.iter().enumerate() {
        assert_eq!(&r[..6], &HOST_MAC);
        assert_eq!(&r[6..12], &GW_A_LAN);
        let ip = &r[14..];
        assert_eq!(checksum(&ip[..20]), 0, "IPv4 checksum");
        assert_eq!(&ip[12..16], &[10, 1, 0, 1], "from the address pinged");
        assert_eq!(&ip[16..20], &[10, 1, 0, 9]);
        let icmp = &ip[20..];
        assert_eq!(icmp[0], 0, "echo reply");
        assert_eq!(checksum(icmp), 0, "ICMP checksum");
        assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), i as u16 + 1);
        assert!(icmp.ends_with(b"meshplane ping payload"));
    }
    assert_eq!(c.nodes[0].worker.stats.ports[0].punt_packets, 4 + 1);
    assert_eq!(c.nodes[0].worker.stats.ports[0].inject_packets, 4);
}

#[test]
fn lsp_trace_from_a_names_sat_1_then_b_and_lsp_ping_reaches_b() {
    let mut c = Chain::new();
    let r = c.probe(0, OamKind::Trace, "192.0.2.2");
    assert_eq!(r.error, None, "{r:?}");
    let hops: Vec<(u8, Option<Ipv4Addr>, Option<u8>)> = r
        .hops
        .iter()
        .map(|h| (h.ttl, h.address, h.return_code))
        .collect();
    assert_eq!(
        hops,
        [
            (1, Some(Ipv4Addr::new(192, 0, 2, 11)), Some(8)),
            (2, Some(Ipv4Addr::new(192, 0, 2, 2)), Some(3)),
        ],
        "sat-1 switches the label, B is the egress"
    );
    assert!(r.hops.iter().all(|h| h.rtt_us.is_some()));

    let r = c.probe(0, OamKind::Ping, "192.0.2.2");
    assert_eq!(r.error, None, "{r:?}");
    assert_eq!(r.hops.len(), 3);
    assert!(r.hops.iter().all(|h| h.return_code == Some(3)));

    // And from B back to A.
    let r = c.probe(2, OamKind::Trace, "192.0.2.1");
    assert_eq!(r.error, None, "{r:?}");
    assert_eq!(r.hops.len(), 2);

    // No route: said at once.
    let r = c.probe(0, OamKind::Ping, "198.51.100.7");
    assert!(r.error.is_some_and(|e| e.contains("no label route")));
}

#[test]
fn a_flood_of_pings_is_policed_and_nothing_else_is_lost() {
    let mut c = Chain::new();
    let tx = c.host_a.tx_ring().clone();
    let rate = u64::from(meshplane::config::PuntConfig::default().icmp_pps);
    // The policer runs on the workers' clock: the real one.
    let start = std::time::Instant::now();
    for round in 0..200u16 {
        for k in 0..10 {
            let _ = tx.push(HeapFrame::from_bytes(&ping(
                GW_A_LAN,
                [10, 1, 0, 1],
                round * 10 + k,
            )));
        }
        c.step();
    }
    let elapsed = start.elapsed().as_secs_f64();
    c.step();
    let replies = received(&c.host_a).len() as u64;
    let st = &c.nodes[0].worker.stats;
    let policed = st.drops.get(DropReason::PuntPoliced);
    let full = st.drops.get(DropReason::PuntFull);
    assert_eq!(
        replies + policed + full,
        2000,
        "every ping answered or counted"
    );
    // The bucket's burst (a tenth of a second's worth) plus the rate.
    let burst = rate / 10;
    let bound = burst + (rate as f64 * elapsed).ceil() as u64 + 1;
    assert!(
        replies <= bound,
        "{replies} replies > {bound} in {elapsed:.3} s"
    );
    assert!(replies >= burst, "{replies} replies, burst {burst}");
    assert!(policed > 0, "a flood is policed");
}

#[test]
fn the_gateways_ping_each_other_over_their_labels_as_ping_does() {
    let mut c = Chain::new();
    let a_sent = c.nodes[0].worker.stats.ports[1].inject_packets;
    let (r, rounds) = c.probe_rounds(0, OamKind::IcmpPing, "192.0.2.2");
    assert_eq!(r.error, None, "{r:?}");
    let echoes: Vec<(Option<u32>, Option<Ipv4Addr>, Option<u32>)> =
        r.hops.iter().map(|h| (h.seq, h.address, h.bytes)).collect();
    let b = Some(Ipv4Addr::new(192, 0, 2, 2));
    assert_eq!(
        echoes,
        [
            (Some(1), b, Some(64)),
            (Some(2), b, Some(64)),
            (Some(3), b, Some(64))
        ],
        "3 of 3 answered by gw-b, 56 data bytes each"
    );
    assert!(r.hops.iter().all(|h| h.rtt_us.is_some_and(|us| us > 0.0)));
    assert!(r
        .hops
        .iter()
        .all(|h| h.ttl == 64 && h.return_code.is_none()));
    // Paced: the third echo left two intervals after the first.
    let elapsed = ROUND * rounds as u32;
    assert!(elapsed >= 2 * INTERVAL, "{rounds} rounds");
    assert!(
        elapsed < 2 * INTERVAL + Duration::from_millis(5),
        "{rounds} rounds"
    );
    // Out of gw-a's uplink, as labelled frames (no other traffic here).
    assert_eq!(c.nodes[0].worker.stats.ports[1].inject_packets - a_sent, 3);
    // gw-b answered each echo and took none of them for a probe of its own.
    let (b_counters, _) = c.nodes[2].services.counters();
    assert_eq!((b_counters.answered, b_counters.ignored), (3, 0));
    let (a_counters, _) = c.nodes[0].services.counters();
    assert_eq!((a_counters.probe_replies, a_counters.ignored), (3, 0));

    // And from gw-b back to gw-a's tunnel address.
    let r = c.probe(2, OamKind::IcmpPing, "192.0.2.1");
    assert_eq!(r.error, None, "{r:?}");
    assert_eq!(r.hops.len(), 3);
    assert!(r
        .hops
        .iter()
        .all(|h| h.address == Some(Ipv4Addr::new(192, 0, 2, 1)) && h.rtt_us.is_some()));
}

#[test]
fn a_ping_without_a_label_route_is_refused_at_once() {
    let mut c = Chain::new();
    // Nowhere in the tables.
    let (r, rounds) = c.probe_rounds(0, OamKind::IcmpPing, "198.51.100.7");
    assert_eq!(rounds, 1, "refused in the first round");
    assert!(r.hops.is_empty());
    let e = r.error.expect("an error");
    assert_eq!(
        e,
        "no label route to 198.51.100.7 (198.51.100.7) in this node's tables"
    );
    // sat-1's node address: answered when it arrives, but gw-a has no
    // label toward a satellite (yet), and says so.
    let (r, rounds) = c.probe_rounds(0, OamKind::IcmpPing, "192.0.2.11");
    assert_eq!(rounds, 1);
    assert!(
        r.error
            .as_deref()
            .is_some_and(|e| e.starts_with("no label route to 192.0.2.11")),
        "{r:?}"
    );
    // The node's own address, and a name with no address book behind it.
    let r = c.probe(0, OamKind::IcmpPing, "192.0.2.1");
    assert!(
        r.error
            .as_deref()
            .is_some_and(|e| e.contains("this node's own address")),
        "{r:?}"
    );
    let r = c.probe(0, OamKind::IcmpPing, "London");
    assert!(r.error.is_some_and(|e| e.contains("give an address")));
    // Nothing was sent for any of them.
    assert_eq!(c.nodes[0].worker.stats.ports[1].inject_packets, 0);
}

/// A UDP packet from host A to a host behind B, as host A sends it.
fn udp_from_host(ttl: u8, df: bool, ip_len: usize) -> Vec<u8> {
    let mut ip = vec![0u8; ip_len];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[6] = if df { 0x40 } else { 0 };
    ip[8] = ttl;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 1, 0, 9]);
    ip[16..20].copy_from_slice(&[10, 2, 0, 5]);
    let c = checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip[20..22].copy_from_slice(&4000u16.to_be_bytes());
    ip[22..24].copy_from_slice(&9u16.to_be_bytes());
    ip[24..26].copy_from_slice(&((ip_len - 20) as u16).to_be_bytes());
    let mut f = GW_A_LAN.to_vec();
    f.extend(HOST_MAC);
    f.extend([0x08, 0x00]);
    f.extend(ip);
    f
}

/// Gateway A with an uplink of `mtu` (Ethernet payload, as iproute2
/// counts it).
fn uplink_mtu(mtu: u16) -> impl FnOnce(&mut NodeConfig) {
    move |a: &mut NodeConfig| {
        let up = a.port_index("up0").expect("up0");
        a.ports[usize::from(up)].mtu = mtu;
    }
}

/// The tunnel MTU over a 1500-byte uplink: 1500 less one label (4), the
/// outer IPv4 header (20), ESP header and IV (16), the ICV (16) and the
/// trailer (2), padded to four bytes.
const TUNNEL_MTU_1500: usize = 1442;

#[test]
fn a_lan_host_hears_of_its_packets_dropped_for_ttl_and_size() {
    let mut c = Chain::with_gw_a(uplink_mtu(1500));
    let tx = c.host_a.tx_ring().clone();
    let expired = udp_from_host(1, false, 60);
    let big = udp_from_host(64, true, TUNNEL_MTU_1500 + 1);
    let big_no_df = udp_from_host(64, false, TUNNEL_MTU_1500 + 1);
    let fits = udp_from_host(64, true, TUNNEL_MTU_1500);
    for f in [&expired, &big, &big_no_df, &fits] {
        tx.push(HeapFrame::from_bytes(f)).expect("room");
    }
    c.step();
    // The packet that fits left A's uplink as a frame of exactly the
    // uplink's MTU plus the Ethernet header.
    assert_eq!(c.nodes[0].worker.stats.ports[1].tx_packets, 1);
    assert_eq!(c.nodes[0].worker.stats.ports[1].tx_bytes, 1500 + 14);
    let got = received(&c.host_a);
    assert_eq!(
        got.len(),
        2,
        "time exceeded and fragmentation needed, nothing for no DF"
    );
    for (r, sent, (kind, code)) in [(&got[0], &expired, (11, 0)), (&got[1], &big, (3, 4))] {
        assert_eq!(&r[..6], &HOST_MAC, "to the sender");
        assert_eq!(&r[6..12], &GW_A_LAN);
        let ip = &r[14..];
        assert_eq!(checksum(&ip[..20]), 0);
        assert_eq!(&ip[12..16], &[10, 1, 0, 1], "from the LAN port's address");
        assert_eq!(&ip[16..20], &[10, 1, 0, 9]);
        let icmp = &ip[20..];
        assert_eq!((icmp[0], icmp[1]), (kind, code));
        assert_eq!(checksum(icmp), 0, "ICMP checksum");
        assert_eq!(
            &icmp[8..28],
            &sent[14..34],
            "the dropped packet's header, quoted"
        );
        if kind == 3 {
            assert_eq!(
                usize::from(u16::from_be_bytes([icmp[6], icmp[7]])),
                TUNNEL_MTU_1500,
                "the usable MTU: the uplink's, less the tunnel"
            );
        }
    }
    let st = &c.nodes[0].worker.stats;
    assert_eq!(st.drops.get(DropReason::TtlExpired), 1);
    assert_eq!(
        st.drops.get(DropReason::TooBig),
        2,
        "still counted as drops"
    );
}

#[test]
fn a_full_sized_lan_packet_crosses_the_default_backbone_links() {
    // Default port MTUs: 1500 on the LAN, 1580 on the uplink and the
    // satellite's links, which carries a 1500-byte packet and its tunnel.
    let mut c = Chain::new();
    let tx = c.host_a.tx_ring().clone();
    tx.push(HeapFrame::from_bytes(&udp_from_host(64, true, 1500)))
        .expect("room");
    c.step();
    assert!(
        received(&c.host_a).is_empty(),
        "no error for a packet that fits"
    );
    let a = &c.nodes[0].worker.stats;
    assert_eq!(a.ports[1].tx_packets, 1);
    assert_eq!(a.ports[1].tx_bytes, 14 + 4 + 20 + 16 + 1500 + 2 + 2 + 16);
    assert_eq!(
        c.nodes[1].worker.stats.ports[1].tx_packets, 1,
        "sat-1 forwards it"
    );
    assert_eq!(
        c.nodes[2].worker.stats.ports[1].tx_packets, 1,
        "B delivers it"
    );
    assert_eq!(c.nodes[2].worker.stats.ports[1].tx_bytes, 14 + 1500);
}

#[test]
fn a_satellite_drops_a_frame_longer_than_its_out_link_as_too_big() {
    // sat-1's link toward B is narrower than A's uplink.
    let mut hops = default_chain().expect("embedded configs");
    let sat = &mut hops[1].node;
    let out = sat.ports.len() - 1;
    sat.ports[out].mtu = 1400;
    let t = Tables::from_config(sat, 1).expect("tables");
    let (sat_a, a_side) = MemoryPort::pair(16);
    let (sat_b, b_side) = MemoryPort::pair(16);
    let mut w = Worker::new(vec![sat_a, sat_b]);
    let mut c = Chain::new();
    let tx = c.host_a.tx_ring().clone();
    for len in [1342, 1343] {
        // Labelled frames of 14 + 1400 and 14 + 1401 bytes off A's uplink.
        tx.push(HeapFrame::from_bytes(&udp_from_host(64, false, len)))
            .expect("room");
    }
    let a = &mut c.nodes[0];
    a.worker.poll(&a.tables);
    let frames: Vec<Vec<u8>> = received(&c.nodes[1].worker.ports()[0]);
    assert_eq!(
        frames.iter().map(Vec::len).collect::<Vec<_>>(),
        [1414, 1418]
    );
    for f in &frames {
        a_side
            .tx_ring()
            .push(HeapFrame::from_bytes(f))
            .expect("room");
    }
    w.poll(&t);
    assert_eq!(received(&b_side).len(), 1, "only the frame that fits");
    assert_eq!(w.stats.drops.get(DropReason::TooBig), 1);
}

/// A UDP packet from host A (fd00:1::9) to a host behind B, as host A
/// sends it.
fn udp6_from_host(hop_limit: u8, ip_len: usize) -> Vec<u8> {
    let mut ip = vec![0u8; ip_len];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&((ip_len - 40) as u16).to_be_bytes());
    ip[6] = 17;
    ip[7] = hop_limit;
    ip[8..24].copy_from_slice(&HOST_A6.octets());
    ip[24..40].copy_from_slice(&"fd00:2::5".parse::<Ipv6Addr>().expect("v6").octets());
    ip[40..42].copy_from_slice(&4000u16.to_be_bytes());
    ip[42..44].copy_from_slice(&9u16.to_be_bytes());
    ip[44..46].copy_from_slice(&((ip_len - 40) as u16).to_be_bytes());
    let mut f = GW_A_LAN.to_vec();
    f.extend(HOST_MAC);
    f.extend([0x86, 0xdd]);
    f.extend(ip);
    f
}

const HOST_A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 9);

/// The ICMPv6 checksum of `icmp` between `src` and `dst`, computed here
/// from RFC 8200 §8.1's pseudo-header: 0 over a correct message.
fn icmp6_checksum(src: &[u8], dst: &[u8], icmp: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(src);
    add(dst);
    add(&(icmp.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(icmp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[test]
fn a_lan_host_hears_of_its_ipv6_packets_dropped_for_hop_limit_and_size() {
    let mut c = Chain::with_gw_a(uplink_mtu(1500));
    let tx = c.host_a.tx_ring().clone();
    let expired = udp6_from_host(1, 80);
    let big = udp6_from_host(64, TUNNEL_MTU_1500 + 1);
    for f in [&expired, &big] {
        tx.push(HeapFrame::from_bytes(f)).expect("room");
    }
    c.step();
    let got = received(&c.host_a);
    assert_eq!(got.len(), 2, "time exceeded and packet too big");
    let gw6: Ipv6Addr = "fd00:1::1".parse().expect("v6");
    for (r, sent, kind) in [(&got[0], &expired, 3u8), (&got[1], &big, 2u8)] {
        assert_eq!(&r[..6], &HOST_MAC, "to the sender");
        assert_eq!(&r[6..12], &GW_A_LAN);
        assert_eq!(&r[12..14], &[0x86, 0xdd]);
        let ip = &r[14..];
        assert_eq!(ip[0] >> 4, 6);
        assert_eq!(ip[6], 58, "ICMPv6");
        assert_eq!(&ip[8..24], &gw6.octets(), "from the LAN port's address");
        assert_eq!(&ip[24..40], &HOST_A6.octets());
        let icmp = &ip[40..];
        assert_eq!(
            usize::from(u16::from_be_bytes([ip[4], ip[5]])),
            icmp.len(),
            "payload length"
        );
        assert!(ip.len() <= 1280, "within the minimum MTU");
        assert_eq!((icmp[0], icmp[1]), (kind, 0));
        assert_eq!(icmp6_checksum(&ip[8..24], &ip[24..40], icmp), 0, "checksum");
        let quoted = &icmp[8..];
        assert_eq!(&quoted[..40], &sent[14..54], "the packet's header as sent");
        if kind == 2 {
            assert_eq!(
                u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]) as usize,
                TUNNEL_MTU_1500,
                "the usable MTU: the uplink's, less the tunnel"
            );
            assert_eq!(quoted.len(), 1280 - 48, "as much as fits");
        } else {
            assert_eq!(quoted, &sent[14..], "the whole packet");
        }
    }
    let st = &c.nodes[0].worker.stats;
    assert_eq!(st.drops.get(DropReason::TtlExpired), 1);
    assert_eq!(st.drops.get(DropReason::TooBig), 1);
}
