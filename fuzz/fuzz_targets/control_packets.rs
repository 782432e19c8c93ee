//! The node's services over what the punt path can deliver: arbitrary
//! bytes as a punted frame (`services::handle`) and as an echo reply
//! (`LspProbes::on_reply`, `IcmpProbes::on_reply`), and valid frames and
//! replies with the input xored over them. Nothing may panic, every
//! packet the services build must parse back with valid checksums, and
//! the initiators' state stays bounded.
//!
//! The first input byte chooses: bits 0-1 the receiving port, bit 2
//! whether the input's length replaces the template's, bits 3-7 what the
//! rest feeds (raw frame, raw reply, or one template mutated).
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshplane::control::services::{handle, IcmpProbes, NodeInfo, Outgoing, PortInfo, Probes};
use meshplane::packet::arp;
use meshplane::packet::icmp::{self, IcmpPacket};
use meshplane::packet::ipv4::Ipv4Packet;
use meshplane::packet::mpls::MplsEntry;
use meshplane::packet::mpls_echo::MplsEcho;
use meshplane::packet::punted::{L3Kind, PuntedFrame};
use meshplane::packet::udp::UdpPacket;
use std::net::Ipv4Addr;
use std::sync::OnceLock;
use std::time::Duration;

const NODE: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 1);
const REMOTE: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 2);
const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const LAN: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
const LAN_MAC: [u8; 6] = [2, 0, 0, 0, 0x0a, 1];
const ISL_MAC: [u8; 6] = [2, 0, 0, 0, 0x0a, 2];
const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0x0b, 1];
const T0: u64 = 1_700_000_000_000_000_000;

fn node(addr: Ipv4Addr, id: u32) -> NodeInfo {
    NodeInfo {
        name: "fuzz".into(),
        id: Some(id),
        addresses: vec![addr],
        ports: vec![
            PortInfo {
                mac: LAN_MAC,
                address: Some((LAN, 24)),
                address6: None,
            },
            PortInfo {
                mac: ISL_MAC,
                address: None,
                address6: None,
            },
        ],
    }
}

/// The initiators every input starts from: an LSP ping and trace toward
/// REMOTE, and an ICMP ping of REMOTE that has sent two of its three
/// echoes, with the same handles, identifiers and ports every time; and
/// the echo requests they sent (LSP first).
fn probes() -> (Probes, Vec<Vec<u8>>) {
    let mut p = Probes::new(NODE, 0x5eed, 0x1c3b_5eed);
    let t = Duration::from_secs(1);
    let mut sent: Vec<Vec<u8>> = Vec::new();
    if let Ok((_, e)) = p.lsp.start_ping(T0, REMOTE, 2, t) {
        sent.extend(e.into_iter().map(|e| e.packet));
    }
    if let Ok((_, e)) = p.lsp.start_trace(T0, REMOTE, 4, t) {
        sent.extend(e.into_iter().map(|e| e.packet));
    }
    let ten_ms = Duration::from_millis(10);
    let mut echoes = Vec::new();
    if let Ok((_, e)) = p.icmp.start(T0, NODE, REMOTE, 3, 24, ten_ms, t) {
        echoes.extend(e);
    }
    echoes.extend(p.icmp.poll(T0 + 10_000_000).send);
    for e in echoes {
        if let Outgoing::Remote { packet, .. } = e {
            sent.push(packet);
        }
    }
    (p, sent)
}

fn eth(dst: [u8; 6], labels: &[(u32, u8)], ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&HOST_MAC);
    let et = if labels.is_empty() { ethertype } else { 0x8847 };
    f.extend_from_slice(&et.to_be_bytes());
    for (i, &(l, ttl)) in labels.iter().enumerate() {
        f.extend_from_slice(&MplsEntry::new(l, 0, i + 1 == labels.len(), ttl).to_bytes());
    }
    f.extend_from_slice(l3);
    f
}

fn ping(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let m = icmp::echo_request(1, 2, b"fuzz");
    let mut p = vec![0u8; 20 + m.len()];
    meshplane::packet::ipv4::write_header(&mut p, src, dst, 1, m.len(), 64, 0, 0).unwrap();
    p[20..].copy_from_slice(&m);
    p
}

struct Templates {
    /// Frames gw-a's services answer or consume.
    frames: Vec<(Vec<u8>, u16)>,
    /// Echo replies to the initiator's probes (IPv4 packets).
    replies: Vec<Vec<u8>>,
}

fn templates() -> &'static Templates {
    static T: OnceLock<Templates> = OnceLock::new();
    T.get_or_init(|| {
        let (_, sent) = probes();
        // Replies from the egress gateway, as IPv4 packets to gw-a.
        let gw_b = node(REMOTE, 2);
        let mut replies = Vec::new();
        for p in &sent {
            let f = eth(LAN_MAC, &[(1002, 1)], 0, p);
            let mut scratch = Probes::new(REMOTE, 1, 2);
            if let Ok(Some(Outgoing::Remote { packet, .. })) =
                handle(&f, 0, &gw_b, T0, &mut scratch)
            {
                replies.push(packet);
            }
        }
        assert_eq!(replies.len(), sent.len(), "the egress answers every echo");
        let mut a = vec![0u8; arp::PACKET_LEN];
        arp::write_packet(&mut a, arp::op::REQUEST, (HOST_MAC, HOST), ([0; 6], LAN)).unwrap();
        let mut frames = vec![
            (eth([0xff; 6], &[], 0x0806, &a), 0),
            (eth(LAN_MAC, &[], 0x0800, &ping(HOST, LAN)), 0),
            (
                eth(ISL_MAC, &[(16, 4), (1001, 60)], 0, &ping(REMOTE, NODE)),
                1,
            ),
            // A trace's and a ping's echo for REMOTE, expiring here (transit).
            (eth(ISL_MAC, &[(1002, 1)], 0, &sent[2]), 1),
            (eth(ISL_MAC, &[(1001, 1)], 0, &sent[0]), 1),
        ];
        frames.extend(
            replies
                .iter()
                .map(|r| (eth(ISL_MAC, &[(1001, 64)], 0, r), 1)),
        );
        Templates { frames, replies }
    })
}

/// Whatever the services built parses back with valid checksums.
fn check(out: Result<Option<Outgoing>, meshplane::control::services::Ignored>) {
    let Ok(Some(o)) = out else {
        return;
    };
    let ip = match &o {
        Outgoing::Frame { frame, .. } => {
            assert!(frame.len() >= 60);
            let p = PuntedFrame::parse(frame).expect("a built frame parses");
            if p.kind == L3Kind::Arp {
                arp::ArpPacket::new_checked(p.l3()).expect("a built ARP parses");
                return;
            }
            p.l3().to_vec()
        }
        Outgoing::Remote { dst, packet } => {
            let p = Ipv4Packet::new_checked(&packet[..]).expect("a built packet parses");
            assert_eq!(p.dst_addr(), *dst);
            packet.clone()
        }
    };
    let p = Ipv4Packet::new_checked(&ip[..]).expect("IPv4");
    assert!(p.verify_checksum());
    match p.protocol() {
        1 => assert!(IcmpPacket::new_checked(p.payload())
            .expect("ICMP")
            .verify_checksum()),
        17 => {
            let u = UdpPacket::new_checked(p.payload()).expect("UDP");
            assert!(u.checksum() != 0 && u.verify_checksum_v4(p.src_addr(), p.dst_addr()));
            MplsEcho::new_checked(u.payload()).expect("MPLS echo");
        }
        other => panic!("built protocol {other}"),
    }
}

/// `template` with `data` xored over it; `data`'s length if `resize`.
fn mutate(template: &[u8], data: &[u8], resize: bool) -> Vec<u8> {
    let mut v = template.to_vec();
    if resize {
        v.resize(data.len(), 0);
    }
    for (b, d) in v.iter_mut().zip(data) {
        *b ^= d;
    }
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let t = templates();
    let gw_a = node(NODE, 1);
    let (mut p, _) = probes();
    let port = u16::from(sel & 3);
    let resize = sel & 4 != 0;
    let choice = usize::from(sel >> 3);
    match choice {
        0 => check(handle(rest, port, &gw_a, T0, &mut p)),
        1 => {
            let _ = p.lsp.on_reply(T0, rest);
            let _ = p.icmp.on_reply(T0, rest);
            // A dropped packet's ICMP error: at most 576 bytes, checksums good.
            for r in [
                meshplane::drop_reason::DropReason::TtlExpired,
                meshplane::drop_reason::DropReason::TooBig,
            ] {
                if let Ok(e) = meshplane::control::services::icmp_error::answer(
                    rest,
                    r,
                    std::net::Ipv4Addr::new(10, 1, 0, 1),
                    1500,
                ) {
                    assert!(e.len() <= meshplane::control::services::icmp_error::MAX_ERROR_LEN);
                    assert_eq!(meshplane::packet::checksum::internet_checksum(&e[..20]), 0);
                    assert_eq!(meshplane::packet::checksum::internet_checksum(&e[20..]), 0);
                }
            }
        }
        c if c - 2 < t.frames.len() => {
            let (f, fp) = &t.frames[c - 2];
            let g = mutate(f, rest, resize);
            // The right port most of the time, the input's otherwise.
            let port = if sel & 1 == 0 { *fp } else { port };
            check(handle(&g, port, &gw_a, T0, &mut p));
        }
        c => {
            let r = &t.replies[(c - 2 - t.frames.len()) % t.replies.len()];
            let m = mutate(r, rest, resize);
            let _ = p.lsp.on_reply(T0 + 1, &m);
            let _ = p.icmp.on_reply(T0 + 1, &m);
        }
    }
    // The initiators' state stays bounded and consistent.
    let lsp = &mut p.lsp;
    let before = lsp.outstanding();
    let done = lsp.poll(T0 + 2_000_000_000);
    assert_eq!(done.len(), before);
    assert_eq!(lsp.outstanding(), 0);
    for d in done {
        assert!(d.hops.len() <= 64);
        assert!(d
            .hops
            .windows(2)
            .all(|w| (w[0].ttl, w[0].seq) <= (w[1].ttl, w[1].seq)));
    }
    let icmp: &mut IcmpProbes = &mut p.icmp;
    assert_eq!(icmp.outstanding(), 1);
    // The third echo, then the end of every wait.
    let third = icmp.poll(T0 + 20_000_000);
    assert_eq!(third.send.len(), 1);
    let done = icmp.poll(T0 + 2_000_000_000).done;
    assert_eq!((done.len(), icmp.outstanding()), (1, 0));
    let d = &done[0];
    assert_eq!(d.transmitted(), 3);
    assert!(d.received() <= 2, "the third echo was never answered");
    assert!(d.echoes.iter().map(|e| e.seq).eq(1..=3));
});
