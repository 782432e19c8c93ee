//! Gateways that negotiate their SAs with IKEv2, in-band, over the
//! embedded chain (gateway A, sat-1, gateway B on memory links), each node
//! with its worker, its punt and inject queues, its service loop and, on
//! the gateways, an IKE driver whose SAs are merged into the tables the
//! node publishes (as the static runtime's publisher does), driven round
//! by round. The gateways' files hold no key: `[ike]` instead of `[[sa]]`,
//! and FECs that name their peer.
//!
//! What a user would check: the IKE exchange crosses sat-1 labelled like
//! data; both gateways install the Child SAs; a UDP stream from host A
//! reaches host B under the negotiated SPIs; a rekey forced under the
//! stream by a small soft packet limit loses nothing and switches SPIs;
//! hostile IKE datagrams are counted and change nothing.

use meshplane::chain::default_chain;
use meshplane::config::{IkeCredentials, NodeConfig, NodeRouteConfig};
use meshplane::control::address_book::AddressBook;
use meshplane::control::ike::{IkeDriver, IkeShare};
use meshplane::control::service_loop::{node_info, ServiceLoop, ServiceStats};
use meshplane::drop_reason::DropReason;
use meshplane::frame::{Frame, HeapFrame};
use meshplane::io::memory::MemoryPort;
use meshplane::runtime::Channels;
use meshplane::tables::{SaStore, Tables};
use meshplane::worker::Worker;
use meshplane_control::ike::crypto::Secret;
use meshplane_control::ike::{Auth, Credentials, SeededRng};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const GW_A: &str = include_str!("../configs/gw-a.toml");
const GW_B: &str = include_str!("../configs/gw-b.toml");

/// The file without its `[[sa]]` tables, FECs naming `peer` instead of
/// an SA, and `ike` appended.
fn ike_config(text: &str, spi: &str, peer: &str, ike: &str) -> NodeConfig {
    let mut out = String::new();
    let mut in_sa = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_sa = line.trim() == "[[sa]]";
        }
        if in_sa {
            continue;
        }
        if line.trim() == format!("sa = {spi}") {
            out.push_str(&format!("peer = \"{peer}\"\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(ike);
    NodeConfig::parse(&out, "gw.toml").expect("config with [ike]")
}

fn ike_section(
    me: &str,
    id: &str,
    creds: &str,
    peer: &str,
    peer_id: &str,
    initiate: bool,
    life: &str,
) -> String {
    format!(
        "\n[ike]\naddress = \"{me}\"\nidentity = \"{id}\"\n{creds}\n\
         drain_ms = 30\n{life}\n\n[[ike.peer]]\naddress = \"{peer}\"\nidentity = \"{peer_id}\"\n\
         initiate = {initiate}\n"
    )
}

/// The `[ike]` credential keys: a PSK file (the test hands the key to
/// the driver itself), or the certificate `cert` issued into `dir`.
fn creds(certs: Option<(&Path, &str)>) -> String {
    match certs {
        None => "psk_file = \"/nonexistent/psk\"".to_string(),
        Some((dir, cert)) => format!(
            "certificate = \"{}\"\nprivate_key = \"{}\"\nca = \"{}\"",
            dir.join(format!("{cert}.pem")).display(),
            dir.join(format!("{cert}.key")).display(),
            dir.join("ca.pem").display()
        ),
    }
}

/// What the node's driver authenticates with: the test's PSK, or the
/// certificate, key and CA the file names, read as they are (no check
/// that the certificate names the identity the gateway claims: a peer
/// that lies is what some tests need).
fn auth_of(cfg: &NodeConfig) -> Auth {
    match &cfg.ike.as_ref().expect("[ike]").credentials {
        IkeCredentials::Psk(_) => Auth::Psk(Secret::new(
            b"a pre-shared key of the two gateways".to_vec(),
        )),
        IkeCredentials::Certificate {
            certificate,
            private_key,
            ca,
        } => {
            let read = |p: &Path| std::fs::read(p).expect("credential file");
            Auth::Cert(Arc::new(
                Credentials::from_pem(&read(certificate), &read(private_key), &read(ca))
                    .expect("credentials"),
            ))
        }
    }
}

struct Node {
    cfg: NodeConfig,
    worker: Worker<MemoryPort>,
    tables: Tables,
    sas: SaStore,
    services: ServiceLoop,
    share: Option<Arc<IkeShare>>,
    seen: u64,
    publications: u64,
}

impl Node {
    fn new(cfg: &NodeConfig, ports: Vec<MemoryPort>, seed: u64) -> Node {
        let mut sas = SaStore::default();
        let tables = Tables::from_config_with(cfg, 1, &mut sas).expect("tables");
        let channels = Arc::new(Channels::new(1, cfg.punt));
        let mut worker = Worker::new(ports);
        worker.set_punt_path(channels.path(0).expect("worker 0"));
        let mut services = ServiceLoop::new(
            channels,
            node_info(&cfg.name, None, &tables),
            AddressBook::empty(),
            None,
            Arc::new(ServiceStats::default()),
        );
        let share = cfg.ike.as_ref().map(|_| Arc::new(IkeShare::default()));
        if let Some(share) = &share {
            let d = IkeDriver::new(
                cfg,
                &auth_of(cfg),
                Box::new(SeededRng::new(seed)),
                share.clone(),
            )
            .expect("driver");
            services = services.with_ike(d);
        }
        Node {
            cfg: cfg.clone(),
            worker,
            tables,
            sas,
            services,
            share,
            seen: 0,
            publications: 0,
        }
    }

    /// What the node's publisher does: the tables again, with IKE's SAs,
    /// when they changed.
    fn publish(&mut self) {
        let Some(share) = &self.share else { return };
        if let Some(neg) = share.take_newer(&mut self.seen) {
            let cfg = neg.apply(&self.cfg);
            self.tables = Tables::from_config_with(&cfg, self.tables.epoch + 1, &mut self.sas)
                .expect("tables with negotiated SAs");
            self.publications += 1;
        }
    }

    fn ike(&self) -> &IkeDriver {
        self.services.ike().expect("an IKE driver")
    }

    /// The Child SA whose outbound SA carries the traffic: (in, out).
    fn current(&self) -> Option<(u32, u32)> {
        self.ike()
            .view()
            .children
            .iter()
            .find(|c| c.state == "current")
            .map(|c| (c.spi_in, c.spi_out))
    }
}

/// A frame seen on gateway A's uplink.
struct Seen {
    from_a: bool,
    bytes: Vec<u8>,
}

struct Chain {
    nodes: Vec<Node>,
    host_a: MemoryPort,
    host_b: MemoryPort,
    /// Gateway A's uplink and sat-1's port toward it, tapped.
    tap_a: MemoryPort,
    tap_sat: MemoryPort,
    wire: Vec<Seen>,
    /// The stream's sequence numbers host B received so far.
    got: Vec<u32>,
    /// IKE datagrams on gateway A's uplink are lost (a silent peer).
    silent: bool,
    now: u64,
}

impl Chain {
    fn new(life: &str) -> Chain {
        Chain::with(life, None)
    }

    /// The chain, its gateways authenticating with certificates from
    /// `dir` when given (gw-b with the one issued to `b_cert`).
    fn with(life: &str, certs: Option<(&Path, &str)>) -> Chain {
        let hops = default_chain().expect("embedded configs");
        let a = ike_config(
            GW_A,
            "4097",
            "192.0.2.2",
            &ike_section(
                "192.0.2.1",
                "gw-a",
                &creds(certs.map(|(d, _)| (d, "gw-a"))),
                "192.0.2.2",
                "gw-b",
                true,
                life,
            ),
        );
        let b = ike_config(
            GW_B,
            "4098",
            "192.0.2.1",
            &ike_section(
                "192.0.2.2",
                "gw-b",
                &creds(certs),
                "192.0.2.1",
                "gw-a",
                false,
                life,
            ),
        );
        assert!(a.sa.is_empty() && b.sa.is_empty(), "no key in either file");
        let mut sat = hops[1].node.clone();
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
        let (a_lan, host_a) = MemoryPort::pair(1024);
        let (a_up, tap_a) = MemoryPort::pair(1024);
        let (tap_sat, sat_a) = MemoryPort::pair(1024);
        let (sat_b, b_up) = MemoryPort::pair(1024);
        let (b_lan, host_b) = MemoryPort::pair(1024);
        Chain {
            nodes: vec![
                Node::new(&a, vec![a_lan, a_up], 1),
                Node::new(&sat, vec![sat_a, sat_b], 2),
                Node::new(&b, vec![b_up, b_lan], 3),
            ],
            host_a,
            host_b,
            tap_a,
            tap_sat,
            wire: Vec::new(),
            got: Vec::new(),
            silent: false,
            now: 1_800_000_000_000_000_000,
        }
    }

    /// Moves what crossed gateway A's uplink, recording it.
    fn carry(&mut self) {
        while let Some(f) = self.tap_a.rx_ring().pop() {
            if self.silent && ike_frame(f.data()).is_some() {
                continue;
            }
            self.wire.push(Seen {
                from_a: true,
                bytes: f.data().to_vec(),
            });
            self.tap_sat.tx_ring().push(f).expect("room toward sat-1");
        }
        while let Some(f) = self.tap_sat.rx_ring().pop() {
            if self.silent && ike_frame(f.data()).is_some() {
                continue;
            }
            self.wire.push(Seen {
                from_a: false,
                bytes: f.data().to_vec(),
            });
            self.tap_a.tx_ring().push(f).expect("room toward gw-a");
        }
    }

    /// One round of every node: poll, serve, poll again (the injects),
    /// publish.
    fn step(&mut self) {
        self.now += 100_000;
        for i in 0..self.nodes.len() {
            let n = &mut self.nodes[i];
            n.worker.poll(&n.tables);
            n.services.round(&n.tables, self.now);
            n.worker.poll(&n.tables);
            n.publish();
            self.carry();
        }
        let got = delivered(&self.host_b);
        self.got.extend(got);
    }

    /// Steps until both gateways use a Child SA whose SPIs match.
    fn establish(&mut self) -> (u32, u32) {
        for _ in 0..20_000 {
            self.step();
            if let (Some(a), Some(b)) = (self.nodes[0].current(), self.nodes[2].current()) {
                if a.0 == b.1 && a.1 == b.0 {
                    // One more round each: the last publication.
                    self.step();
                    return a;
                }
            }
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        panic!(
            "no Child SA: gw-a {:?}, gw-b {:?}",
            self.nodes[0].ike().view(),
            self.nodes[2].ike().view()
        );
    }
}

const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0x0a, 0xaa];
const GW_A_LAN: [u8; 6] = [2, 0, 0, 0, 0x0a, 1];

fn checksum(b: &[u8]) -> u16 {
    meshplane::packet::checksum::internet_checksum(b)
}

/// A UDP packet from host A (10.1.0.9) to host B (10.2.0.5) carrying
/// sequence number `seq`, as host A sends it.
fn udp_from_host(seq: u32) -> Vec<u8> {
    let ip_len = 20 + 8 + 32;
    let mut ip = vec![0u8; ip_len];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 1, 0, 9]);
    ip[16..20].copy_from_slice(&[10, 2, 0, 5]);
    let c = checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip[20..22].copy_from_slice(&4000u16.to_be_bytes());
    ip[22..24].copy_from_slice(&9u16.to_be_bytes());
    ip[24..26].copy_from_slice(&((ip_len - 20) as u16).to_be_bytes());
    ip[28..32].copy_from_slice(&seq.to_be_bytes());
    let mut f = GW_A_LAN.to_vec();
    f.extend(HOST_MAC);
    f.extend([0x08, 0x00]);
    f.extend(ip);
    f
}

/// The sequence numbers of the stream's packets host B received.
fn delivered(host_b: &MemoryPort) -> Vec<u32> {
    std::iter::from_fn(|| host_b.rx_ring().pop())
        .filter_map(|f| {
            let d = f.data();
            (d.len() >= 14 + 32
                && d[12..14] == [0x08, 0x00]
                && d[14 + 16..14 + 20] == [10, 2, 0, 5])
            .then(|| u32::from_be_bytes([d[14 + 28], d[14 + 29], d[14 + 30], d[14 + 31]]))
        })
        .collect()
}

/// The ESP SPI of a frame from gateway A (one label, outer IPv4, ESP).
fn esp_spi(f: &[u8]) -> Option<u32> {
    let ip = 14 + 4;
    (f.get(12..14)? == [0x88, 0x47] && *f.get(ip + 9)? == 50)
        .then(|| u32::from_be_bytes(f[ip + 20..ip + 24].try_into().expect("4 bytes")))
}

/// The UDP destination port and label of a labelled IKE frame.
fn ike_frame(f: &[u8]) -> Option<(u32, u16)> {
    let ip = 14 + 4;
    if f.get(12..14)? != [0x88, 0x47] || *f.get(ip + 9)? != 17 {
        return None;
    }
    let label = u32::from_be_bytes(f[14..18].try_into().expect("4 bytes")) >> 12;
    let port = u16::from_be_bytes([*f.get(ip + 22)?, *f.get(ip + 23)?]);
    (port == 500 || port == 4500).then_some((label, port))
}

fn drops(n: &Node, r: DropReason) -> u64 {
    n.worker.stats.drops.get(r)
}

#[test]
fn the_gateways_negotiate_their_sas_in_band_and_carry_a_stream_under_them() {
    let mut c = Chain::new("");
    // Before any SA: the FEC's packets drop as sa_pending.
    let tx = c.host_a.tx_ring().clone();
    for s in 0..3 {
        tx.push(HeapFrame::from_bytes(&udp_from_host(s)))
            .expect("room");
    }
    c.step();
    assert_eq!(drops(&c.nodes[0], DropReason::SaPending), 3);
    assert!(std::mem::take(&mut c.got).is_empty());

    let (spi_in, spi_out) = c.establish();
    // The exchange crossed sat-1 labelled as data: toward gw-b under its
    // label (1002), back under gw-a's (1001 after sat-1's swap of 2001).
    let ike: Vec<(bool, u32, u16)> = c
        .wire
        .iter()
        .filter_map(|s| ike_frame(&s.bytes).map(|(l, p)| (s.from_a, l, p)))
        .collect();
    assert!(
        ike.iter().filter(|x| x.0).count() >= 2,
        "IKE_SA_INIT and IKE_AUTH: {ike:?}"
    );
    assert!(
        ike.iter().filter(|x| !x.0).count() >= 2,
        "and their answers: {ike:?}"
    );
    assert!(
        ike.iter()
            .all(|&(a, l, p)| p == 500 && l == if a { 1002 } else { 1001 }),
        "{ike:?}"
    );
    // Both gateways hold the pair, with ESN.
    let b = c.nodes[2].current().expect("gw-b's Child SA");
    assert_eq!((b.0, b.1), (spi_out, spi_in));
    assert!(c.nodes[0].tables.sa_in.contains_key(&spi_in));
    assert!(c.nodes[2].tables.sa_in.contains_key(&spi_out));
    assert!(c.nodes[0]
        .tables
        .sa_out
        .iter()
        .any(|s| s.spi == spi_out && s.esn));

    // A stream from host A reaches host B, encrypted under the negotiated
    // SPI.
    let first_wire = c.wire.len();
    for s in 0..200u32 {
        tx.push(HeapFrame::from_bytes(&udp_from_host(1000 + s)))
            .expect("room");
        if s % 8 == 7 {
            c.step();
        }
    }
    for _ in 0..4 {
        c.step();
    }
    let got = std::mem::take(&mut c.got);
    assert_eq!(
        got,
        (1000..1200).collect::<Vec<u32>>(),
        "every packet, in order"
    );
    let spis: BTreeSet<u32> = c.wire[first_wire..]
        .iter()
        .filter(|s| s.from_a)
        .filter_map(|s| esp_spi(&s.bytes))
        .collect();
    assert_eq!(
        spis,
        BTreeSet::from([spi_out]),
        "the negotiated SPI on the wire"
    );
    for r in [
        DropReason::AuthFailed,
        DropReason::Replay,
        DropReason::UnknownSpi,
        DropReason::PolicyMismatch,
    ] {
        assert_eq!(drops(&c.nodes[2], r), 0, "{r:?} at gw-b");
    }
    assert_eq!(
        drops(&c.nodes[0], DropReason::SaPending),
        3,
        "only before the SA"
    );
    // The lifetime defaults: an hour, rekeyed at 90 %.
    let sa = c.nodes[0]
        .tables
        .sa_out
        .iter()
        .find(|s| s.spi == spi_out)
        .expect("sa");
    assert_eq!(sa.life.lifetime().hard.seconds, Some(3600));
    assert_eq!(sa.life.lifetime().soft.seconds, Some(3240));

    // What `meshplane ctl show ike` shows of it.
    let view = c.nodes[0]
        .ike()
        .view()
        .with_lifetimes(&c.nodes[0].tables, std::time::Instant::now());
    let text = meshplane::cli::ctl::render_ike(&Some(view));
    assert!(
        text.contains("192.0.2.2") && text.contains("established"),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.contains(&spi_out.to_string()))
        .unwrap_or_else(|| panic!("no Child SA row in\n{text}"));
    assert!(
        row.contains("current") && (row.contains("3240 s") || row.contains("3239 s")),
        "{text}"
    );
    assert!(text.contains("Child SAs up 1"), "{text}");
}

#[test]
fn a_rekey_forced_under_a_stream_switches_spis_and_loses_nothing() {
    // Every Child SA asks for a rekey after 150 packets.
    let mut c = Chain::new("lifetime = { soft_packets = 150, hard_packets = 1000000 }");
    let (_, first_out) = c.establish();
    let tx = c.host_a.tx_ring().clone();
    let first_wire = c.wire.len();
    let total = 1200u32;
    for s in 0..total {
        tx.push(HeapFrame::from_bytes(&udp_from_host(s)))
            .expect("room");
        if s % 4 == 3 {
            c.step();
        }
    }
    // Let the last rekeys and drains finish.
    for _ in 0..400 {
        c.step();
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
    let got = std::mem::take(&mut c.got);
    assert_eq!(
        got,
        (0..total).collect::<Vec<u32>>(),
        "nothing lost or reordered"
    );
    let spis: Vec<u32> = c.wire[first_wire..]
        .iter()
        .filter(|s| s.from_a)
        .filter_map(|s| esp_spi(&s.bytes))
        .collect();
    let mut changes = vec![spis[0]];
    for &s in &spis {
        if Some(&s) != changes.last() {
            changes.push(s);
        }
    }
    assert_eq!(changes[0], first_out);
    assert!(
        changes.len() >= 4,
        "several rekeys under the stream: {changes:?}"
    );
    let distinct: BTreeSet<u32> = changes.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        changes.len(),
        "never back to an old SA: {changes:?}"
    );
    for r in [
        DropReason::AuthFailed,
        DropReason::Replay,
        DropReason::UnknownSpi,
        DropReason::SaExpired,
    ] {
        assert_eq!(drops(&c.nodes[2], r), 0, "{r:?} at gw-b");
    }
    assert_eq!(drops(&c.nodes[0], DropReason::SaPending), 0);
    let a = c.nodes[0].ike().counters();
    let b = c.nodes[2].ike().counters();
    eprintln!("SPIs on the wire: {changes:?}\ngw-a {a:?}\ngw-b {b:?}");
    assert!(a.rekeys_asked + b.rekeys_asked >= 3, "{a:?} {b:?}");
    assert!(a.switches >= 4 && b.switches >= 4, "{a:?} {b:?}");
    // Replaced inbound SAs drained away: each gateway holds one pair.
    let (ai, ao) = c.nodes[0].current().expect("a");
    let (bi, bo) = c.nodes[2].current().expect("b");
    assert_eq!((ai, ao), (bo, bi));
    assert_eq!(c.nodes[0].tables.sa_in.len(), 1, "old inbound SAs removed");
    assert_eq!(c.nodes[2].tables.sa_in.len(), 1, "old inbound SAs removed");
    assert_eq!(c.nodes[0].tables.sa_out.len(), 1);
    assert_eq!(*changes.last().expect("spi"), ao);
}

/// An IPv4/UDP frame from host A's LAN to gateway A's tunnel address.
fn udp_to_gw_a(src: [u8; 4], dport: u16, payload: &[u8], good_checksum: bool) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let mut ip = vec![0u8; 20 + udp_len];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&[192, 0, 2, 1]);
    let c = checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip[20..22].copy_from_slice(&500u16.to_be_bytes());
    ip[22..24].copy_from_slice(&dport.to_be_bytes());
    ip[24..26].copy_from_slice(&(udp_len as u16).to_be_bytes());
    ip[28..].copy_from_slice(payload);
    if !good_checksum {
        // Not zero (no checksum), and not right.
        ip[26..28].copy_from_slice(&0x1234u16.to_be_bytes());
    }
    let mut f = GW_A_LAN.to_vec();
    f.extend(HOST_MAC);
    f.extend([0x08, 0x00]);
    f.extend(ip);
    f
}

#[test]
fn hostile_ike_datagrams_are_counted_and_change_nothing() {
    let mut c = Chain::new("");
    let (spi_in, spi_out) = c.establish();
    let before = c.nodes[0].ike().counters();
    let (_, _, spi_i, spi_r) = c.nodes[0].ike().view().ike_sas[0].clone();
    let tx = c.host_a.tx_ring().clone();
    let mut hostile = Vec::new();
    // A truncated IKE header.
    hostile.push(udp_to_gw_a([192, 0, 2, 2], 500, &[0u8; 10], true));
    // A UDP checksum that is wrong.
    hostile.push(udp_to_gw_a([192, 0, 2, 2], 500, &[0u8; 40], false));
    // An IKE_SA_INIT from an address no peer has.
    let mut init = vec![0u8; 28];
    init[0..8].copy_from_slice(&7u64.to_be_bytes());
    init[16] = 0; // no payload
    init[17] = 0x20;
    init[18] = 34;
    init[19] = 0x08;
    init[24..28].copy_from_slice(&28u32.to_be_bytes());
    hostile.push(udp_to_gw_a([10, 1, 0, 9], 500, &init, true));
    // Requests on the established IKE SA, as from gw-b, whose ICV cannot
    // verify (message ID 0 is the one expected, the others beyond).
    for mid in 0u32..4 {
        let mut m = vec![0u8; 28 + 4 + 8 + 16 + 16];
        m[0..8].copy_from_slice(&spi_i.to_be_bytes());
        m[8..16].copy_from_slice(&spi_r.to_be_bytes());
        m[16] = 46;
        m[17] = 0x20;
        m[18] = 37;
        m[19] = 0;
        m[20..24].copy_from_slice(&mid.to_be_bytes());
        let len = m.len() as u32;
        m[24..28].copy_from_slice(&len.to_be_bytes());
        m[28] = 0;
        m[30..32].copy_from_slice(&((len - 28) as u16).to_be_bytes());
        for (i, b) in m[32..].iter_mut().enumerate() {
            *b = i as u8;
        }
        hostile.push(udp_to_gw_a([192, 0, 2, 2], 500, &m, true));
    }
    for f in &hostile {
        tx.push(HeapFrame::from_bytes(f)).expect("room");
    }
    for _ in 0..5 {
        c.step();
    }
    let after = c.nodes[0].ike().counters();
    assert_eq!(after.received - before.received, hostile.len() as u64);
    assert_eq!(after.refused("bad_checksum"), 1, "{after:?}");
    assert_eq!(after.refused("truncated"), 1, "{after:?}");
    assert_eq!(after.refused("no_peer"), 1, "{after:?}");
    assert_eq!(after.refused("bad_icv"), 1, "{after:?}");
    assert_eq!(after.refused("future_message_id"), 3, "{after:?}");
    assert_eq!(
        after.refused_total() - before.refused_total(),
        hostile.len() as u64
    );
    // Nothing changed: the same SAs, and traffic still flows on them.
    assert_eq!(c.nodes[0].current(), Some((spi_in, spi_out)));
    assert_eq!(after.child_up, before.child_up);
    let first_wire = c.wire.len();
    for s in 0..20 {
        tx.push(HeapFrame::from_bytes(&udp_from_host(s)))
            .expect("room");
    }
    for _ in 0..3 {
        c.step();
    }
    assert_eq!(std::mem::take(&mut c.got), (0..20).collect::<Vec<u32>>());
    assert!(c.wire[first_wire..]
        .iter()
        .filter_map(|s| esp_spi(&s.bytes))
        .all(|s| s == spi_out));
}

#[test]
fn past_the_hard_limit_with_a_silent_peer_traffic_drops_as_sa_expired_and_resumes_when_it_answers()
{
    let mut c = Chain::new("lifetime = { soft_packets = 100, hard_packets = 200 }");
    let (_, first_out) = c.establish();
    // From now on no IKE datagram crosses: the rekeys both ends ask for
    // at 100 packets go unanswered.
    c.silent = true;
    let tx = c.host_a.tx_ring().clone();
    for s in 0..300u32 {
        tx.push(HeapFrame::from_bytes(&udp_from_host(s)))
            .expect("room");
        if s % 4 == 3 {
            c.step();
        }
    }
    c.step();
    let got = std::mem::take(&mut c.got);
    // A packet limit is checked once per run of frames: within a batch.
    assert!((200..=232).contains(&got.len()), "{}", got.len());
    assert_eq!(got, (0..got.len() as u32).collect::<Vec<u32>>());
    let expired = drops(&c.nodes[0], DropReason::SaExpired);
    assert_eq!(
        expired as usize + got.len(),
        300,
        "the rest dropped as sa_expired at gw-a"
    );
    assert_eq!(
        c.nodes[0].current().map(|x| x.1),
        Some(first_out),
        "no new SA"
    );

    // The peer answers again: the retransmitted rekeys complete, and the
    // stream resumes under a new SA.
    c.silent = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        c.step();
        let a = c.nodes[0].current();
        let b = c.nodes[2].current();
        if let (Some(a), Some(b)) = (a, b) {
            if a.1 != first_out && a.0 == b.1 && a.1 == b.0 {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no rekey after the peer came back"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    for _ in 0..5 {
        c.step();
    }
    let (_, new_out) = c.nodes[0].current().expect("current");
    eprintln!(
        "after the silence: gw-a {:?}\ngw-b {:?}",
        c.nodes[0].ike().counters(),
        c.nodes[2].ike().counters()
    );
    let first_wire = c.wire.len();
    for s in 1000..1050u32 {
        tx.push(HeapFrame::from_bytes(&udp_from_host(s)))
            .expect("room");
        if s % 4 == 3 {
            c.step();
        }
    }
    for _ in 0..4 {
        c.step();
    }
    assert_eq!(
        std::mem::take(&mut c.got),
        (1000..1050).collect::<Vec<u32>>()
    );
    assert!(c.wire[first_wire..]
        .iter()
        .filter(|s| s.from_a)
        .filter_map(|s| esp_spi(&s.bytes))
        .all(|s| s == new_out));
    assert_eq!(
        drops(&c.nodes[0], DropReason::SaExpired),
        expired,
        "no more"
    );
    assert_eq!(drops(&c.nodes[2], DropReason::UnknownSpi), 0);
    assert_eq!(drops(&c.nodes[2], DropReason::AuthFailed), 0);
}

#[test]
fn a_peer_that_restarted_is_noticed_by_liveness_checks_and_the_sas_are_made_again() {
    let mut c = Chain::new("liveness_ms = 50\nretransmit_ms = 20\nretransmit_tries = 3");
    let (_, first_out) = c.establish();
    // gw-b restarts: a fresh process on the same ports, with no SA.
    let old = c.nodes.remove(2);
    let cfg = old.cfg.clone();
    let ports = old.worker.into_ports();
    c.nodes.insert(2, Node::new(&cfg, ports, 33));
    assert_eq!(c.nodes[2].current(), None);
    // gw-a's liveness check goes unanswered (gw-b knows no such IKE SA),
    // its IKE SA ends, and it initiates again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        c.step();
        if let (Some(a), Some(b)) = (c.nodes[0].current(), c.nodes[2].current()) {
            if a.1 != first_out && a.0 == b.1 && a.1 == b.0 {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not made again: gw-a {:?}",
            c.nodes[0].ike().view()
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    for _ in 0..3 {
        c.step();
    }
    let tx = c.host_a.tx_ring().clone();
    c.got.clear();
    for s in 0..40u32 {
        tx.push(HeapFrame::from_bytes(&udp_from_host(s)))
            .expect("room");
        if s % 4 == 3 {
            c.step();
        }
    }
    for _ in 0..4 {
        c.step();
    }
    assert_eq!(std::mem::take(&mut c.got), (0..40).collect::<Vec<u32>>());
}

/// A CA and certificates for gw-a, gw-b and gw-c, as `meshplane keys
/// --ike-ca` issues them, valid at the chain's clock.
fn issue_certificates(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    meshplane::cli::keys::write_ike_credentials(
        &dir,
        &["gw-a".into(), "gw-b".into(), "gw-c".into()],
        meshplane_control::ike::SigAlg::EcdsaP256Sha256,
        1_800_000_000,
        30,
        false,
    )
    .expect("issue");
    dir
}

/// The IKE_AUTH request's size on the wire (from gw-a, the second IKE
/// datagram it sent).
fn ike_auth_len(c: &Chain) -> usize {
    c.wire
        .iter()
        .filter(|s| s.from_a && ike_frame(&s.bytes).is_some())
        .nth(1)
        .map_or(0, |s| s.bytes.len())
}

#[test]
fn gateways_with_certificates_negotiate_and_carry_a_stream() {
    let dir = issue_certificates("ike-node-certs");
    let mut c = Chain::with("", Some((&dir, "gw-b")));
    let (spi_in, spi_out) = c.establish();
    for n in [&c.nodes[0], &c.nodes[2]] {
        let sas = n.ike().view().ike_sas;
        assert!(
            sas.iter().any(|s| s.1 == "established"),
            "{sas:?} at {}",
            n.cfg.name
        );
    }
    // The IKE_AUTH request carries gw-a's certificate (hundreds of bytes
    // more than a PSK's AUTH).
    let mut psk = Chain::new("");
    psk.establish();
    assert!(
        ike_auth_len(&c) > ike_auth_len(&psk) + 300,
        "IKE_AUTH with a certificate {} B, with a PSK {} B",
        ike_auth_len(&c),
        ike_auth_len(&psk)
    );
    let tx = c.host_a.tx_ring().clone();
    let first_wire = c.wire.len();
    for s in 0..64u32 {
        tx.push(HeapFrame::from_bytes(&udp_from_host(s)))
            .expect("room");
        if s % 8 == 7 {
            c.step();
        }
    }
    for _ in 0..4 {
        c.step();
    }
    assert_eq!(std::mem::take(&mut c.got), (0..64).collect::<Vec<u32>>());
    let spis: BTreeSet<u32> = c.wire[first_wire..]
        .iter()
        .filter(|s| s.from_a)
        .filter_map(|s| esp_spi(&s.bytes))
        .collect();
    assert_eq!(spis, BTreeSet::from([spi_out]));
    assert!(c.nodes[0].tables.sa_in.contains_key(&spi_in));
    let refused = c.nodes[0].ike().counters().refused_total();
    assert_eq!(refused, 0, "{:?}", c.nodes[0].ike().counters());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_peer_whose_certificate_names_another_gateway_is_refused() {
    let dir = issue_certificates("ike-node-impostor");
    // gw-b claims to be gw-b with gw-c's certificate (and key), both of
    // the same CA.
    let mut c = Chain::with("", Some((&dir, "gw-c")));
    let tx = c.host_a.tx_ring().clone();
    for _ in 0..3000 {
        c.step();
    }
    let gw_a = &c.nodes[0];
    assert!(gw_a.current().is_none(), "{:?}", gw_a.ike().view());
    assert!(gw_a.tables.sa_in.is_empty() && gw_a.tables.sa_out.is_empty());
    let a = c.nodes[0].ike().counters();
    assert!(a.refused("bad_certificate") >= 1, "{a:?}");
    // And its FEC still drops, counted.
    tx.push(HeapFrame::from_bytes(&udp_from_host(7)))
        .expect("room");
    c.step();
    assert_eq!(drops(&c.nodes[0], DropReason::SaPending), 1);
    assert!(c.got.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_gateway_that_stops_deletes_its_ike_sa_and_the_peer_removes_its_sas_at_once() {
    let mut c = Chain::new("");
    c.establish();
    assert!(!c.nodes[2].tables.sa_in.is_empty());
    // gw-b says its last words: one DELETE, to gw-a.
    let b = &mut c.nodes[2];
    assert_eq!(b.services.farewell(&b.tables), 1);
    assert_eq!(c.nodes[2].ike().counters().farewells, 1);
    // A few rounds (no liveness check, no retransmission is due): gw-a
    // removed the IKE SA and its Child SAs, and its FEC is pending again.
    for _ in 0..20 {
        c.step();
    }
    let a = &c.nodes[0];
    let view = a.ike().view();
    assert!(view.children.is_empty(), "{view:?}");
    assert!(
        !view.ike_sas.iter().any(|s| s.1 == "established"),
        "{view:?}"
    );
    assert!(a.tables.sa_in.is_empty() && a.tables.sa_out.is_empty());
    let tx = c.host_a.tx_ring().clone();
    tx.push(HeapFrame::from_bytes(&udp_from_host(1)))
        .expect("room");
    c.step();
    assert_eq!(drops(&c.nodes[0], DropReason::SaPending), 1);
}

#[test]
fn a_delete_asked_while_a_rekey_is_in_flight_leaves_when_it_is_answered() {
    // gw-a asks for a rekey after 150 packets; it is told to stop while
    // that CREATE_CHILD_SA waits for its answer.
    let mut c = Chain::new("lifetime = { soft_packets = 150, hard_packets = 1000000 }");
    c.establish();
    let tx = c.host_a.tx_ring().clone();
    let mut s = 0u32;
    while c.nodes[0].ike().counters().rekeys_asked == 0 {
        assert!(s < 1000, "no rekey asked after {s} packets");
        tx.push(HeapFrame::from_bytes(&udp_from_host(s)))
            .expect("room");
        s += 1;
        c.step();
    }
    let a = &mut c.nodes[0];
    assert_eq!(a.services.farewell(&a.tables), 1, "one IKE SA deleted");
    let ike = c.nodes[0].ike();
    assert!(
        ike.farewell_pending(),
        "the DELETE waits behind the rekey: {:?}",
        ike.endpoint().sas()
    );
    // The answer comes, then the DELETE goes, and gw-b removes its SAs.
    for _ in 0..20 {
        c.step();
    }
    assert!(!c.nodes[0].ike().farewell_pending());
    let view = c.nodes[2].ike().view();
    assert!(
        !view.ike_sas.iter().any(|s| s.1 == "established"),
        "{view:?}"
    );
    // Only the Child SA the rekey replaced may still drain its inbound
    // frames; nothing is sent any more.
    assert!(
        view.children.iter().all(|c| c.state == "draining"),
        "{view:?}"
    );
    assert!(c.nodes[2].tables.sa_out.is_empty());
}
