//! The services as a neighbour, a remote node and an operator see them:
//! frames in, frames and packets out, parsed back with the same views.

use super::lsp::{MAX_ECHOES, MAX_PROBES, REQUEST_DST};
use super::ping;
use super::*;
use crate::packet::arp::{self as arp_pkt, ArpPacket};
use crate::packet::ethernet::ethertype;
use crate::packet::icmp::{self as icmp_pkt, IcmpPacket};
use crate::packet::mpls::MplsEntry;
use crate::packet::mpls_echo::{
    self, build_request, fec_type, push_tlv, reply_mode, return_code, tlv_type, Ipv4PrefixSid,
    MplsEcho, NtpTimestamp,
};
use crate::packet::udp::{self, UdpPacket};
use proptest::prelude::*;
use std::time::Duration;

const LAN_MAC: Mac = [0x02, 0, 0, 0, 0x0a, 0x01];
const ISL_MAC: Mac = [0x02, 0, 0, 0, 0x0a, 0x02];
const HOST_MAC: Mac = [0x02, 0, 0, 0, 0x0b, 0x10];
const PEER_MAC: Mac = [0x02, 0, 0, 0, 0x0c, 0x01];

/// Gateway A: node address, a tunnel address, a LAN port and an ISL port.
const NODE: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 1);
const TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 254, 0, 1);
const LAN: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
/// Gateway B, the egress the probes target.
const REMOTE: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 2);

/// 2023-11-14T22:13:20Z.
const T0: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;

fn gw_a() -> NodeInfo {
    NodeInfo {
        name: "gw-a".into(),
        id: Some(1),
        addresses: vec![NODE, TUNNEL],
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

fn probes() -> LspProbes {
    LspProbes::new(NODE, 0x5eed)
}

/// [`handle`] with `lsp` as the node's LSP initiator (and an ICMP one
/// with no ping running).
fn handle_lsp(
    frame: &[u8],
    port: PortId,
    node: &NodeInfo,
    now_ns: u64,
    lsp: &mut LspProbes,
) -> Result<Option<Outgoing>, Ignored> {
    let mut p = Probes {
        lsp: std::mem::replace(lsp, LspProbes::new(NODE, 0)),
        icmp: IcmpProbes::new(0),
    };
    let r = handle(frame, port, node, now_ns, &mut p);
    *lsp = p.lsp;
    r
}

/// An Ethernet frame: addresses, 802.1Q tags, label stack (label, TTL),
/// then `l3` with `l3_type` (MPLS if there are labels).
fn eth(dst: Mac, src: Mac, tags: &[u16], labels: &[(u32, u8)], l3_type: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    for &t in tags {
        f.extend_from_slice(&ethertype::VLAN.to_be_bytes());
        f.extend_from_slice(&t.to_be_bytes());
    }
    let et = if labels.is_empty() {
        l3_type
    } else {
        ethertype::MPLS
    };
    f.extend_from_slice(&et.to_be_bytes());
    for (i, &(l, ttl)) in labels.iter().enumerate() {
        f.extend_from_slice(&MplsEntry::new(l, 0, i + 1 == labels.len(), ttl).to_bytes());
    }
    f.extend_from_slice(l3);
    f
}

fn ip(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_packet(
        Ipv4Spec {
            src,
            dst,
            protocol: proto,
            ttl: 64,
            ident: 0x4242,
            dscp_ecn: 0,
            router_alert: false,
        },
        payload,
    )
    .unwrap()
}

fn ping(src: Ipv4Addr, dst: Ipv4Addr, seq: u16) -> Vec<u8> {
    ip(
        src,
        dst,
        1,
        &icmp_pkt::echo_request(0x77, seq, b"meshplane ping data"),
    )
}

fn arp_request(sender: (Mac, Ipv4Addr), target: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0u8; arp_pkt::PACKET_LEN];
    arp_pkt::write_packet(&mut a, arp_pkt::op::REQUEST, sender, ([0; 6], target)).unwrap();
    a
}

/// An LSP echo request IPv4 packet as another initiator would send it.
fn lsp_request(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    echo: &[u8],
    router_alert: bool,
) -> Vec<u8> {
    let mut d = vec![0u8; 8 + echo.len()];
    udp::write_header(&mut d, sport, mpls_echo::UDP_PORT, echo.len()).unwrap();
    d[8..].copy_from_slice(echo);
    UdpPacket::new_unchecked(&mut d[..]).fill_checksum_v4(src, dst);
    ipv4_packet(
        Ipv4Spec {
            src,
            dst,
            protocol: 17,
            ttl: 1,
            ident: 1,
            dscp_ecn: 0,
            router_alert,
        },
        &d,
    )
    .unwrap()
}

fn echo_to(target: Ipv4Addr, mode: u8) -> Vec<u8> {
    build_request(
        0xabcd_0001,
        3,
        NtpTimestamp::from_unix_ns(T0),
        mode,
        Ipv4PrefixSid::node(target),
    )
}

/// Checks what a service built parses back with valid checksums, and
/// returns the IPv4 packet it carries (None for ARP).
fn check_outgoing(o: &Outgoing) -> Option<Vec<u8>> {
    let ip = match o {
        Outgoing::Frame { frame, .. } => {
            assert!(frame.len() >= 60, "padded to the Ethernet minimum");
            let p = PuntedFrame::parse(frame).expect("our frame parses");
            assert!(!super::is_group_or_zero(&p.dst_mac));
            if p.kind == crate::packet::punted::L3Kind::Arp {
                ArpPacket::new_checked(p.l3()).expect("ARP parses");
                return None;
            }
            p.l3().to_vec()
        }
        Outgoing::Remote { dst, packet } => {
            let p = Ipv4Packet::new_checked(&packet[..]).expect("IPv4 parses");
            assert_eq!(p.dst_addr(), *dst);
            assert_eq!(usize::from(p.total_len()), packet.len());
            packet.clone()
        }
    };
    let p = Ipv4Packet::new_checked(&ip[..]).unwrap();
    assert!(p.verify_checksum(), "IPv4 header checksum");
    match p.protocol() {
        1 => assert!(IcmpPacket::new_checked(p.payload())
            .unwrap()
            .verify_checksum()),
        17 => {
            let u = UdpPacket::new_checked(p.payload()).unwrap();
            assert_ne!(u.checksum(), 0, "we always fill the UDP checksum");
            assert!(u.verify_checksum_v4(p.src_addr(), p.dst_addr()));
            MplsEcho::new_checked(u.payload()).expect("echo parses");
        }
        other => panic!("protocol {other}"),
    }
    Some(ip)
}

fn run(frame: &[u8], port: PortId) -> Result<Option<Outgoing>, Ignored> {
    handle_lsp(frame, port, &gw_a(), T0, &mut probes())
}

// ---------------------------------------------------------------- ARP

#[test]
fn arp_request_for_the_port_address_is_answered_from_the_port_mac() {
    let req = arp_request((HOST_MAC, HOST), LAN);
    let f = eth([0xff; 6], HOST_MAC, &[], &[], ethertype::ARP, &req);
    let Ok(Some(o @ Outgoing::Frame { port: 0, .. })) = run(&f, 0) else {
        panic!("no reply on port 0");
    };
    check_outgoing(&o);
    let Outgoing::Frame { frame, .. } = o else {
        unreachable!()
    };
    let p = PuntedFrame::parse(&frame).unwrap();
    assert_eq!((p.dst_mac, p.src_mac), (HOST_MAC, LAN_MAC));
    let a = ArpPacket::new_checked(p.l3()).unwrap();
    assert_eq!(a.operation(), arp_pkt::op::REPLY);
    assert_eq!((a.sender_mac(), a.sender_ip()), (LAN_MAC, LAN));
    assert_eq!((a.target_mac(), a.target_ip()), (HOST_MAC, HOST));
    // A unicast refresh to the port's MAC is answered too.
    let f = eth(LAN_MAC, HOST_MAC, &[], &[], ethertype::ARP, &req);
    assert!(matches!(run(&f, 0), Ok(Some(Outgoing::Frame { .. }))));
}

#[test]
fn arp_reply_keeps_the_vlan_tags() {
    let req = arp_request((HOST_MAC, HOST), LAN);
    let f = eth([0xff; 6], HOST_MAC, &[10, 20], &[], ethertype::ARP, &req);
    let Ok(Some(Outgoing::Frame { frame, .. })) = run(&f, 0) else {
        panic!()
    };
    let p = PuntedFrame::parse(&frame).unwrap();
    assert_eq!(p.vlans, [Some(10), Some(20)]);
    assert_eq!(&frame[12..22], &f[12..22]);
}

#[test]
fn arp_probe_is_answered_like_linux() {
    // RFC 5227 probe: sender address 0.0.0.0, asking about our address.
    let req = arp_request((HOST_MAC, Ipv4Addr::UNSPECIFIED), LAN);
    let f = eth([0xff; 6], HOST_MAC, &[], &[], ethertype::ARP, &req);
    let Ok(Some(Outgoing::Frame { frame, .. })) = run(&f, 0) else {
        panic!("probes are answered")
    };
    let p = PuntedFrame::parse(&frame).unwrap();
    assert_eq!(p.dst_mac, HOST_MAC, "unicast to the prober");
    let a = ArpPacket::new_checked(p.l3()).unwrap();
    assert_eq!((a.sender_mac(), a.sender_ip()), (LAN_MAC, LAN));
    assert_eq!(a.target_ip(), Ipv4Addr::UNSPECIFIED);
}

#[test]
fn arp_ignores_announcements_other_targets_and_bad_senders() {
    let frame = |dst: Mac, sender: (Mac, Ipv4Addr), target| {
        eth(
            dst,
            HOST_MAC,
            &[],
            &[],
            ethertype::ARP,
            &arp_request(sender, target),
        )
    };
    let b = [0xff; 6];
    let ok = (HOST_MAC, HOST);
    // Gratuitous, even of our own address (a conflict is not ours to solve here).
    assert_eq!(
        run(&frame(b, (HOST_MAC, HOST), HOST), 0),
        Err(Ignored::NotForUs)
    );
    assert_eq!(
        run(&frame(b, (HOST_MAC, LAN), LAN), 0),
        Err(Ignored::NotForUs)
    );
    // Another host, the node address, and the LAN address asked on the ISL port.
    assert_eq!(
        run(&frame(b, ok, Ipv4Addr::new(192, 168, 1, 2)), 0),
        Err(Ignored::NotForUs)
    );
    assert_eq!(run(&frame(b, ok, NODE), 0), Err(Ignored::NotForUs));
    assert_eq!(run(&frame(b, ok, LAN), 1), Err(Ignored::NotForUs));
    // A unicast frame for another station.
    assert_eq!(run(&frame(PEER_MAC, ok, LAN), 0), Err(Ignored::NotForUs));
    // Group or zero sender MAC, in the ARP or Ethernet header.
    assert_eq!(
        run(&frame(b, ([0xff; 6], HOST), LAN), 0),
        Err(Ignored::BadSource)
    );
    assert_eq!(
        run(&frame(b, ([0; 6], HOST), LAN), 0),
        Err(Ignored::BadSource)
    );
    assert_eq!(
        run(&frame(b, ([1, 0, 0x5e, 0, 0, 1], HOST), LAN), 0),
        Err(Ignored::BadSource)
    );
    let mut f = frame(b, ok, LAN);
    f[6] = 0x01;
    assert_eq!(run(&f, 0), Err(Ignored::BadSource));
    // Martian sender addresses.
    for s in [
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::LOCALHOST,
    ] {
        assert_eq!(
            run(&frame(b, (HOST_MAC, s), LAN), 0),
            Err(Ignored::BadSource),
            "{s}"
        );
    }
    // A reply is not a question; another protocol type is not ours.
    let mut a = arp_request(ok, LAN);
    a[7] = 2;
    assert_eq!(
        run(&eth(b, HOST_MAC, &[], &[], ethertype::ARP, &a), 0),
        Err(Ignored::Unsupported)
    );
    let mut a = arp_request(ok, LAN);
    a[2] = 0x86;
    assert_eq!(
        run(&eth(b, HOST_MAC, &[], &[], ethertype::ARP, &a), 0),
        Err(Ignored::Unsupported)
    );
    assert_eq!(
        run(&eth(b, HOST_MAC, &[], &[], ethertype::ARP, &a[..20]), 0),
        Err(Ignored::Truncated)
    );
    // A port that does not exist.
    assert_eq!(run(&frame(b, ok, LAN), 9), Err(Ignored::UnknownPort));
}

// ---------------------------------------------------------------- ICMP

#[test]
fn echo_from_a_lan_host_gets_a_frame_back() {
    let f = eth(
        LAN_MAC,
        HOST_MAC,
        &[],
        &[],
        ethertype::IPV4,
        &ping(HOST, LAN, 5),
    );
    let o = run(&f, 0).unwrap().unwrap();
    let ip = check_outgoing(&o).unwrap();
    let Outgoing::Frame { port, frame } = o else {
        panic!("{o:?}")
    };
    assert_eq!(port, 0);
    let p = PuntedFrame::parse(&frame).unwrap();
    assert_eq!(
        (p.dst_mac, p.src_mac, p.is_labelled()),
        (HOST_MAC, LAN_MAC, false)
    );
    let r = Ipv4Packet::new_checked(&ip[..]).unwrap();
    assert_eq!((r.src_addr(), r.dst_addr(), r.ttl()), (LAN, HOST, 64));
    let icmp = IcmpPacket::new_checked(r.payload()).unwrap();
    assert_eq!(icmp.msg_type(), icmp_pkt::msg_type::ECHO_REPLY);
    assert_eq!((icmp.echo_ident(), icmp.echo_seq()), (0x77, 5));
    assert_eq!(icmp.payload(), b"meshplane ping data");
}

#[test]
fn echo_across_the_mesh_gets_a_packet_for_the_sender() {
    let f = eth(
        ISL_MAC,
        PEER_MAC,
        &[],
        &[(1001, 60)],
        0,
        &ping(REMOTE, NODE, 1),
    );
    let o = run(&f, 1).unwrap().unwrap();
    let ip = check_outgoing(&o).unwrap();
    assert!(matches!(o, Outgoing::Remote { dst, .. } if dst == REMOTE));
    let r = Ipv4Packet::new_checked(&ip[..]).unwrap();
    assert_eq!((r.src_addr(), r.dst_addr()), (NODE, REMOTE));
}

#[test]
fn echo_to_any_node_or_port_address_comes_from_that_address() {
    for (dst, port) in [(NODE, 0), (TUNNEL, 0), (LAN, 0), (NODE, 1)] {
        let f = eth(
            [LAN_MAC, ISL_MAC][usize::from(port)],
            HOST_MAC,
            &[3],
            &[],
            ethertype::IPV4,
            &ping(HOST, dst, 1),
        );
        let o = run(&f, port).unwrap().unwrap();
        let ip = check_outgoing(&o).unwrap();
        assert_eq!(Ipv4Packet::new_checked(&ip[..]).unwrap().src_addr(), dst);
        let Outgoing::Frame { port: p, frame } = o else {
            panic!()
        };
        assert_eq!(p, port);
        assert_eq!(PuntedFrame::parse(&frame).unwrap().vlans, [Some(3), None]);
    }
}

#[test]
fn echo_refusals_are_each_counted_as_their_reason() {
    let good = ping(HOST, LAN, 1);
    let lan = |l3: &[u8]| eth(LAN_MAC, HOST_MAC, &[], &[], ethertype::IPV4, l3);
    assert!(run(&lan(&good), 0).is_ok());

    let refix = |mut p: Vec<u8>| {
        Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
        p
    };
    let mut frag = good.clone();
    frag[6] = 0x20; // MF
    assert_eq!(run(&lan(&refix(frag)), 0), Err(Ignored::Fragment));
    let mut frag = good.clone();
    frag[7] = 0x01; // offset 8
    assert_eq!(run(&lan(&refix(frag)), 0), Err(Ignored::Fragment));

    let mut bad_ip = good.clone();
    bad_ip[8] ^= 1;
    assert_eq!(run(&lan(&bad_ip), 0), Err(Ignored::BadChecksum));
    let mut bad_icmp = good.clone();
    *bad_icmp.last_mut().unwrap() ^= 1;
    assert_eq!(run(&lan(&bad_icmp), 0), Err(Ignored::BadChecksum));

    let opts = ipv4_packet(
        Ipv4Spec {
            src: HOST,
            dst: LAN,
            protocol: 1,
            ttl: 64,
            ident: 0,
            dscp_ecn: 0,
            router_alert: true,
        },
        &icmp_pkt::echo_request(1, 1, &[]),
    )
    .unwrap();
    assert_eq!(run(&lan(&opts), 0), Err(Ignored::IpOptions));

    for dst in [
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(192, 168, 1, 255),
        Ipv4Addr::new(224, 0, 0, 1),
    ] {
        assert_eq!(
            run(&lan(&ping(HOST, dst, 1)), 0),
            Err(Ignored::Broadcast),
            "{dst}"
        );
    }
    let bcast = eth([0xff; 6], HOST_MAC, &[], &[], ethertype::IPV4, &good);
    assert_eq!(run(&bcast, 0), Err(Ignored::Broadcast));
    let other = eth(PEER_MAC, HOST_MAC, &[], &[], ethertype::IPV4, &good);
    assert_eq!(run(&other, 0), Err(Ignored::NotForUs));
    // Port 1's MAC on port 0.
    let wrong_port = eth(ISL_MAC, HOST_MAC, &[], &[], ethertype::IPV4, &good);
    assert_eq!(run(&wrong_port, 0), Err(Ignored::NotForUs));
    assert_eq!(
        run(&lan(&ping(HOST, Ipv4Addr::new(192, 168, 1, 2), 1)), 0),
        Err(Ignored::NotForUs)
    );
    assert_eq!(
        run(&lan(&ping(HOST, Ipv4Addr::LOCALHOST, 1)), 0),
        Err(Ignored::NotForUs)
    );
    for src in [
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::LOCALHOST,
        Ipv4Addr::new(224, 0, 0, 5),
        Ipv4Addr::new(240, 0, 0, 1),
    ] {
        assert_eq!(
            run(&lan(&ping(src, LAN, 1)), 0),
            Err(Ignored::BadSource),
            "{src}"
        );
    }

    let mut reply = icmp_pkt::echo_request(1, 1, b"x");
    reply[0] = icmp_pkt::msg_type::ECHO_REPLY;
    IcmpPacket::new_unchecked(&mut reply[..]).fill_checksum();
    assert_eq!(
        run(&lan(&ip(HOST, LAN, 1, &reply)), 0),
        Err(Ignored::Unsupported)
    );
    assert_eq!(
        run(&lan(&ip(HOST, LAN, 1, &[8, 0, 0])), 0),
        Err(Ignored::Truncated)
    );
    assert_eq!(
        run(&lan(&ip(HOST, LAN, 6, &[0; 20])), 0),
        Err(Ignored::Unsupported)
    );
    // IPv6, and IPv4 behind labels cut short.
    let v6 = eth(LAN_MAC, HOST_MAC, &[], &[], ethertype::IPV6, &[0x60; 40]);
    assert_eq!(run(&v6, 0), Err(Ignored::Unsupported));
    let cut = eth(ISL_MAC, PEER_MAC, &[], &[(1001, 60)], 0, &good[..30]);
    assert_eq!(run(&cut, 1), Err(Ignored::Truncated));
}

// ---------------------------------------------------------------- LSP responder

/// The reply a node gives to `frame`, as an echo reply (with its IPv4
/// source and UDP destination port).
fn lsp_answer(frame: &[u8], port: PortId, node: &NodeInfo) -> (Ipv4Addr, u16, Vec<u8>, Vec<u8>) {
    let o = handle_lsp(frame, port, node, T0 + 5 * MS, &mut probes())
        .unwrap()
        .unwrap();
    let ip = check_outgoing(&o).unwrap();
    let Outgoing::Remote { dst, .. } = o else {
        panic!("LSP replies are remote: {o:?}")
    };
    let p = Ipv4Packet::new_checked(&ip[..]).unwrap();
    assert_eq!(p.dst_addr(), dst);
    let u = UdpPacket::new_checked(p.payload()).unwrap();
    assert_eq!(u.src_port(), mpls_echo::UDP_PORT);
    (p.src_addr(), u.dst_port(), u.payload().to_vec(), ip.clone())
}

#[test]
fn lsp_egress_transit_and_unknown_fec_return_codes() {
    let echo = echo_to(NODE, reply_mode::UDP);
    // Egress: our own label (TTL left or not) over 127/8 or our address.
    for (dst, ttl) in [
        (REQUEST_DST, 1),
        (Ipv4Addr::new(127, 1, 2, 3), 9),
        (NODE, 1),
    ] {
        let f = eth(
            ISL_MAC,
            PEER_MAC,
            &[],
            &[(1001, ttl)],
            0,
            &lsp_request(REMOTE, dst, 50000, &echo, true),
        );
        let (_, _, m, _) = lsp_answer(&f, 1, &gw_a());
        let r = MplsEcho::new_checked(&m[..]).unwrap();
        assert_eq!(
            (r.return_code(), r.return_subcode()),
            (return_code::EGRESS, 1),
            "{dst}"
        );
    }
    // Transit: someone else's FEC, the label's TTL expired here.
    let other = echo_to(REMOTE, reply_mode::UDP);
    let f = eth(
        ISL_MAC,
        PEER_MAC,
        &[],
        &[(1002, 1)],
        0,
        &lsp_request(NODE, REQUEST_DST, 50000, &other, true),
    );
    let mut sat = gw_a();
    sat.addresses = vec![Ipv4Addr::new(10, 255, 1, 1)];
    let (_, _, m, _) = lsp_answer(&f, 1, &sat);
    let r = MplsEcho::new_checked(&m[..]).unwrap();
    assert_eq!(
        (r.return_code(), r.return_subcode()),
        (return_code::LABEL_SWITCHED, 1)
    );
    // Unlabelled, for someone else's FEC: no mapping.
    let f = eth(
        LAN_MAC,
        HOST_MAC,
        &[],
        &[],
        ethertype::IPV4,
        &lsp_request(HOST, REQUEST_DST, 50000, &other, true),
    );
    let (_, _, m, _) = lsp_answer(&f, 0, &gw_a());
    assert_eq!(
        MplsEcho::new_checked(&m[..]).unwrap().return_code(),
        return_code::NO_MAPPING
    );
}

#[test]
fn lsp_reply_carries_what_rfc_8029_asks_and_our_node_id() {
    let echo = echo_to(NODE, reply_mode::UDP);
    let req = lsp_request(REMOTE, REQUEST_DST, 50123, &echo, true);
    let f = eth(ISL_MAC, PEER_MAC, &[], &[(1001, 1)], 0, &req);
    let (src, dport, m, ip) = lsp_answer(&f, 1, &gw_a());
    assert_eq!(src, NODE, "from the node address");
    assert_eq!(dport, 50123, "to the request's source port");
    let p = Ipv4Packet::new_checked(&ip[..]).unwrap();
    assert_eq!((p.dst_addr(), p.ttl(), p.options().len()), (REMOTE, 255, 0));
    let r = MplsEcho::new_checked(&m[..]).unwrap();
    let q = MplsEcho::new_checked(&echo[..]).unwrap();
    assert_eq!(r.msg_type(), mpls_echo::msg_type::REPLY);
    assert_eq!(r.sender_handle(), q.sender_handle());
    assert_eq!(r.sequence(), q.sequence());
    assert_eq!(r.timestamp_sent(), q.timestamp_sent());
    assert_eq!(
        r.timestamp_received(),
        NtpTimestamp::from_unix_ns(T0 + 5 * MS)
    );
    assert_eq!(r.node_id(), Some(1));
    let fec: Vec<_> = r.target_fec_stack().unwrap().collect();
    assert_eq!(
        Ipv4PrefixSid::parse(fec[0].unwrap().value),
        Ok(Ipv4PrefixSid::node(NODE))
    );
    // No id: no vendor TLV.
    let mut anon = gw_a();
    anon.id = None;
    let (_, _, m, _) = lsp_answer(&f, 1, &anon);
    let r = MplsEcho::new_checked(&m[..]).unwrap();
    assert_eq!(r.node_id(), None);
    assert_eq!(r.tlvs().count(), 1);
    // Reply mode 3: the reply carries Router Alert.
    let f = eth(
        ISL_MAC,
        PEER_MAC,
        &[],
        &[(1001, 1)],
        0,
        &lsp_request(REMOTE, REQUEST_DST, 1, &echo_to(NODE, 3), true),
    );
    let (_, _, _, ip) = lsp_answer(&f, 1, &gw_a());
    assert_eq!(
        Ipv4Packet::new_checked(&ip[..]).unwrap().options(),
        &[0x94, 4, 0, 0]
    );
    // A request without Router Alert is answered too.
    let f = eth(
        ISL_MAC,
        PEER_MAC,
        &[],
        &[(1001, 1)],
        0,
        &lsp_request(REMOTE, REQUEST_DST, 1, &echo, false),
    );
    lsp_answer(&f, 1, &gw_a());
}

#[test]
fn lsp_requests_we_cannot_read_get_codes_1_and_2() {
    let labelled = |echo: &[u8]| {
        eth(
            ISL_MAC,
            PEER_MAC,
            &[],
            &[(1001, 1)],
            0,
            &lsp_request(REMOTE, REQUEST_DST, 7, echo, true),
        )
    };
    let code = |echo: &[u8]| {
        let (_, _, m, _) = lsp_answer(&labelled(echo), 1, &gw_a());
        let r = MplsEcho::new_checked(&m[..]).unwrap();
        let errored: Vec<u8> = r
            .tlvs()
            .filter_map(|t| t.ok())
            .find(|t| t.ty == tlv_type::ERRORED_TLVS)
            .map(|t| t.value.to_vec())
            .unwrap_or_default();
        (r.return_code(), errored)
    };
    let good = echo_to(NODE, reply_mode::UDP);
    // An unknown mandatory TLV (Downstream Detailed Mapping, 20) comes back in Errored TLVs.
    let mut m = good.clone();
    push_tlv(&mut m, 20, &[1, 2, 3, 4, 5]).unwrap();
    let mut want = Vec::new();
    push_tlv(&mut want, 20, &[1, 2, 3, 4, 5]).unwrap();
    assert_eq!(code(&m), (return_code::TLV_NOT_UNDERSTOOD, want));
    // Optional unknown TLVs and Pad are skipped.
    let mut m = good.clone();
    push_tlv(&mut m, 40000, &[9; 3]).unwrap();
    push_tlv(&mut m, tlv_type::PAD, &[0; 8]).unwrap();
    assert_eq!(code(&m).0, return_code::EGRESS);
    // An unknown FEC type (LDP IPv4 prefix, 1).
    let mut m = good[..mpls_echo::HEADER_LEN].to_vec();
    let mut fec = Vec::new();
    push_tlv(&mut fec, 1, &[10, 255, 0, 1, 32]).unwrap();
    push_tlv(&mut m, tlv_type::TARGET_FEC_STACK, &fec).unwrap();
    assert_eq!(code(&m).0, return_code::TLV_NOT_UNDERSTOOD);
    // No Target FEC Stack, a cut TLV, a bad prefix length: malformed.
    assert_eq!(
        code(&good[..mpls_echo::HEADER_LEN]).0,
        return_code::MALFORMED
    );
    assert_eq!(code(&good[..good.len() - 1]).0, return_code::MALFORMED);
    let mut m = good.clone();
    m[44] = 33;
    assert_eq!(code(&m).0, return_code::MALFORMED);
    let mut m = good.clone();
    m[mpls_echo::HEADER_LEN + 5] = fec_type::IPV4_IGP_PREFIX_SID as u8 + 1;
    assert_eq!(code(&m).0, return_code::TLV_NOT_UNDERSTOOD);
}

#[test]
fn lsp_requests_that_are_not_answered() {
    let echo = echo_to(NODE, reply_mode::UDP);
    let labelled = |l3: &[u8], ttl| eth(ISL_MAC, PEER_MAC, &[], &[(1001, ttl)], 0, l3);
    let go = |l3: &[u8], ttl| run(&labelled(l3, ttl), 1);
    assert!(go(&lsp_request(REMOTE, REQUEST_DST, 7, &echo, true), 1).is_ok());
    assert_eq!(
        go(
            &lsp_request(
                REMOTE,
                REQUEST_DST,
                7,
                &echo_to(NODE, reply_mode::NO_REPLY),
                true
            ),
            1
        ),
        Err(Ignored::NoReplyRequested)
    );
    assert_eq!(
        go(
            &lsp_request(
                REMOTE,
                REQUEST_DST,
                7,
                &echo_to(NODE, reply_mode::CONTROL_CHANNEL),
                true
            ),
            1
        ),
        Err(Ignored::Unsupported)
    );
    // T flag: only when the TTL expired.
    let mut t = echo.clone();
    t[3] |= mpls_echo::flags::TTL_EXPIRED_ONLY as u8;
    assert!(go(&lsp_request(REMOTE, REQUEST_DST, 7, &t, true), 1).is_ok());
    assert_eq!(
        go(&lsp_request(REMOTE, REQUEST_DST, 7, &t, true), 5),
        Err(Ignored::NoReplyRequested)
    );
    // Somebody else's address, a martian source, a bad UDP checksum.
    assert_eq!(
        go(&lsp_request(REMOTE, REMOTE, 7, &echo, true), 1),
        Err(Ignored::NotForUs)
    );
    assert_eq!(
        go(
            &lsp_request(Ipv4Addr::UNSPECIFIED, REQUEST_DST, 7, &echo, true),
            1
        ),
        Err(Ignored::BadSource)
    );
    let mut bad = lsp_request(REMOTE, REQUEST_DST, 7, &echo, true);
    *bad.last_mut().unwrap() ^= 1;
    assert_eq!(go(&bad, 1), Err(Ignored::BadChecksum));
    // Options other than Router Alert.
    let mut rr = lsp_request(REMOTE, REQUEST_DST, 7, &echo, true);
    rr[20] = 0x07; // record route
    Ipv4Packet::new_unchecked(&mut rr[..]).fill_checksum();
    assert_eq!(go(&rr, 1), Err(Ignored::IpOptions));
    // Other UDP ports, another version, a cut header.
    let mut other_port = lsp_request(REMOTE, REQUEST_DST, 7, &echo, true);
    other_port[24 + 2..24 + 4].copy_from_slice(&3504u16.to_be_bytes());
    let mut u = UdpPacket::new_unchecked(&mut other_port[24..]);
    u.fill_checksum_v4(REMOTE, REQUEST_DST);
    assert_eq!(go(&other_port, 1), Err(Ignored::Unsupported));
    let mut v2 = echo.clone();
    v2[1] = 2;
    assert_eq!(
        go(&lsp_request(REMOTE, REQUEST_DST, 7, &v2, true), 1),
        Err(Ignored::Unsupported)
    );
    assert_eq!(
        go(&lsp_request(REMOTE, REQUEST_DST, 7, &echo[..31], true), 1),
        Err(Ignored::Truncated)
    );
    // A node without an address cannot answer.
    let mut mute = gw_a();
    mute.addresses.clear();
    let f = labelled(&lsp_request(REMOTE, REQUEST_DST, 7, &echo, true), 1);
    assert_eq!(
        handle_lsp(&f, 1, &mute, T0, &mut probes()),
        Err(Ignored::NoAddress)
    );
}

#[test]
fn router_alert_option_parsing() {
    assert!(only_router_alert(&[]));
    assert!(only_router_alert(&[0x94, 4, 0, 0]));
    assert!(only_router_alert(&[1, 1, 0x94, 4, 0, 0, 0, 7, 7]));
    assert!(!only_router_alert(&[0x94, 4, 0]));
    assert!(!only_router_alert(&[0x94, 6, 0, 0, 0, 0]));
    assert!(!only_router_alert(&[7, 7, 4, 0]));
}

// ---------------------------------------------------------------- LSP initiator

#[test]
fn echo_requests_are_what_rfc_8029_asks() {
    let mut lsp = probes();
    let (_, out) = lsp
        .start_trace(T0, REMOTE, 3, Duration::from_secs(2))
        .unwrap();
    assert_eq!(
        out.iter().map(|e| e.mpls_ttl).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let mut handles = Vec::new();
    for (i, e) in out.iter().enumerate() {
        let p = Ipv4Packet::new_checked(&e.packet[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(
            (p.src_addr(), p.dst_addr(), p.ttl()),
            (NODE, REQUEST_DST, 1)
        );
        assert_eq!(p.options(), &[0x94, 0x04, 0, 0], "Router Alert (RFC 2113)");
        assert_eq!(p.protocol(), 17);
        let u = UdpPacket::new_checked(p.payload()).unwrap();
        assert!(u.checksum() != 0 && u.verify_checksum_v4(NODE, REQUEST_DST));
        assert_eq!(u.dst_port(), 3503);
        assert!(u.src_port() >= 49152);
        let m = MplsEcho::new_checked(u.payload()).unwrap();
        assert_eq!(m.msg_type(), mpls_echo::msg_type::REQUEST);
        assert_eq!(m.reply_mode(), reply_mode::UDP);
        assert_eq!(m.sequence(), i as u32 + 1);
        assert_eq!(m.timestamp_sent(), NtpTimestamp::from_unix_ns(T0));
        let fec: Vec<_> = m.target_fec_stack().unwrap().collect();
        assert_eq!(fec.len(), 1);
        assert_eq!(fec[0].unwrap().ty, fec_type::IPV4_IGP_PREFIX_SID);
        assert_eq!(
            Ipv4PrefixSid::parse(fec[0].unwrap().value),
            Ok(Ipv4PrefixSid::node(REMOTE))
        );
        handles.push(m.sender_handle());
    }
    assert!(
        handles.windows(2).all(|w| w[0] == w[1]),
        "one handle per probe"
    );
    let (_, ping) = lsp
        .start_ping(T0, REMOTE, 2, Duration::from_secs(2))
        .unwrap();
    assert!(ping.iter().all(|e| e.mpls_ttl == 255));
    let h2 = MplsEcho::new_unchecked(&ping[0].packet[24 + 8..]).sender_handle();
    assert_ne!(h2, handles[0]);
}

#[test]
fn probes_are_bounded() {
    let mut lsp = probes();
    let t = Duration::from_secs(1);
    assert_eq!(
        lsp.start_ping(T0, REMOTE, 0, t).unwrap_err(),
        ProbeError::BadCount
    );
    assert_eq!(
        lsp.start_ping(T0, REMOTE, MAX_ECHOES as u16 + 1, t)
            .unwrap_err(),
        ProbeError::BadCount
    );
    assert_eq!(
        lsp.start_trace(T0, REMOTE, 0, t).unwrap_err(),
        ProbeError::BadCount
    );
    assert_eq!(
        lsp.start_trace(T0, Ipv4Addr::LOCALHOST, 3, t).unwrap_err(),
        ProbeError::BadTarget(Ipv4Addr::LOCALHOST)
    );
    assert_eq!(
        lsp.start_trace(T0, REMOTE, MAX_ECHOES as u8, t)
            .unwrap()
            .1
            .len(),
        MAX_ECHOES
    );
    for _ in 1..MAX_PROBES {
        lsp.start_ping(T0, REMOTE, 1, t).unwrap();
    }
    assert_eq!(lsp.outstanding(), MAX_PROBES);
    assert_eq!(
        lsp.start_ping(T0, REMOTE, 1, t).unwrap_err(),
        ProbeError::TooManyProbes
    );
    assert_eq!(lsp.stats().refused, 5);
    assert_eq!(lsp.next_deadline(), Some(T0 + 1_000_000_000));
    assert!(lsp.poll(T0 + 999_999_999).is_empty());
    let done = lsp.poll(T0 + 1_000_000_000);
    assert_eq!(done.len(), MAX_PROBES);
    assert!(done
        .iter()
        .all(|d| d.timed_out && d.hops.iter().all(|h| h.address.is_none())));
    assert_eq!(lsp.outstanding(), 0);
    assert!(lsp.start_ping(T0, REMOTE, 1, t).is_ok());
}

/// A node of the fake path: its info, and the label other nodes reach it by.
struct PathNode {
    info: NodeInfo,
    label: u32,
}

fn path_node(name: &str, id: u32, addr: Ipv4Addr, label: u32) -> PathNode {
    PathNode {
        info: NodeInfo {
            name: name.into(),
            id: Some(id),
            addresses: vec![addr],
            ports: vec![PortInfo {
                mac: [0x02, 0, 0, 0, id as u8, 1],
                address: None,
                address6: None,
            }],
        },
        label,
    }
}

/// gw-a -> sat1 -> sat2 -> sat3 -> gw-b.
fn path() -> Vec<PathNode> {
    vec![
        path_node("sat1", 101, Ipv4Addr::new(10, 255, 1, 1), 2101),
        path_node("sat2", 102, Ipv4Addr::new(10, 255, 1, 2), 2102),
        path_node("sat3", 103, Ipv4Addr::new(10, 255, 1, 3), 2103),
        path_node("gw-b", 2, REMOTE, 1002),
    ]
}

const GW_A_LABEL: u32 = 1001;

/// Sends `echoes` down the fake path as the data plane would: the label
/// of gw-b with the echo's MPLS TTL, decremented per hop, punted where it
/// expires or at gw-b; each reply comes back labelled to gw-a, one
/// millisecond per hop each way. `silent` hops do not answer. Returns
/// how many replies gw-a's services took.
fn walk(lsp: &mut LspProbes, echoes: &[EchoToSend], silent: &[usize], start: u64) -> usize {
    let nodes = path();
    let gw_b_label = nodes[3].label;
    let mut taken = 0;
    for e in echoes {
        let hop = usize::from(e.mpls_ttl).min(nodes.len()); // 1-based
        if silent.contains(&hop) {
            continue;
        }
        let n = &nodes[hop - 1];
        let ttl_left = e.mpls_ttl - (hop as u8 - 1);
        let f = eth(
            n.info.ports[0].mac,
            PEER_MAC,
            &[],
            &[(gw_b_label, ttl_left)],
            0,
            &e.packet,
        );
        let arrive = start + hop as u64 * MS;
        let out = handle_lsp(
            &f,
            0,
            &n.info,
            arrive,
            &mut LspProbes::new(n.info.addresses[0], 9),
        );
        let Ok(Some(Outgoing::Remote { dst, packet })) = out else {
            panic!("{} did not answer: {out:?}", n.info.name)
        };
        assert_eq!(dst, NODE);
        let back = eth(ISL_MAC, PEER_MAC, &[], &[(GW_A_LABEL, 64)], 0, &packet);
        let r = handle_lsp(&back, 1, &gw_a(), arrive + hop as u64 * MS, lsp);
        assert_eq!(r, Ok(None), "gw-a takes the reply");
        taken += 1;
    }
    taken
}

#[test]
fn trace_over_three_satellites_names_each_hop_and_the_egress() {
    let mut lsp = probes();
    let (id, echoes) = lsp
        .start_trace(T0, REMOTE, 6, Duration::from_secs(2))
        .unwrap();
    assert_eq!(walk(&mut lsp, &echoes, &[], T0), 6);
    let done = lsp.poll(T0 + 20 * MS);
    assert_eq!(done.len(), 1);
    let d = &done[0];
    assert_eq!(
        (d.id, d.kind, d.target, d.timed_out),
        (id, ProbeKind::Trace, REMOTE, false)
    );
    assert!(d.reached_egress());
    let hops: Vec<_> = d
        .hops
        .iter()
        .map(|h| (h.ttl, h.return_code, h.node_id, h.address, h.rtt_ns))
        .collect();
    assert_eq!(
        hops,
        [
            (
                1,
                Some(8),
                Some(101),
                Some(Ipv4Addr::new(10, 255, 1, 1)),
                Some(2 * MS)
            ),
            (
                2,
                Some(8),
                Some(102),
                Some(Ipv4Addr::new(10, 255, 1, 2)),
                Some(4 * MS)
            ),
            (
                3,
                Some(8),
                Some(103),
                Some(Ipv4Addr::new(10, 255, 1, 3)),
                Some(6 * MS)
            ),
            (4, Some(3), Some(2), Some(REMOTE), Some(8 * MS)),
        ]
    );
    assert!(d.hops.iter().all(|h| h.return_subcode == Some(1)));
    assert_eq!(lsp.stats().completed, 1);
    assert_eq!(lsp.outstanding(), 0);
}

#[test]
fn trace_completes_as_soon_as_the_egress_and_every_hop_before_it_answered() {
    let mut lsp = probes();
    let (_, echoes) = lsp
        .start_trace(T0, REMOTE, 8, Duration::from_secs(2))
        .unwrap();
    // Only TTLs 1..=4 arrive before the poll.
    walk(&mut lsp, &echoes[..4], &[], T0);
    let done = lsp.poll(T0 + 10 * MS);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].hops.len(), 4);
    assert!(!done[0].timed_out);
    // The egress answers for TTLs 5..=8 arrive after: late, not unknown.
    walk_expect_stray(&mut lsp, &echoes[4..]);
    assert_eq!(lsp.stats().late, 4);
    assert_eq!(lsp.stats().unknown, 0);
}

/// Like `walk`, for replies gw-a must refuse.
fn walk_expect_stray(lsp: &mut LspProbes, echoes: &[EchoToSend]) {
    let nodes = path();
    for e in echoes {
        let n = &nodes[3];
        let f = eth(
            n.info.ports[0].mac,
            PEER_MAC,
            &[],
            &[(n.label, 2)],
            0,
            &e.packet,
        );
        let Ok(Some(Outgoing::Remote { packet, .. })) =
            handle_lsp(&f, 0, &n.info, T0, &mut probes())
        else {
            panic!()
        };
        let back = eth(ISL_MAC, PEER_MAC, &[], &[(GW_A_LABEL, 64)], 0, &packet);
        assert_eq!(
            handle_lsp(&back, 1, &gw_a(), T0 + 30 * MS, lsp),
            Err(Ignored::StrayReply)
        );
    }
}

#[test]
fn trace_with_a_silent_hop_waits_for_its_timeout() {
    let mut lsp = probes();
    let (_, echoes) = lsp
        .start_trace(T0, REMOTE, 4, Duration::from_secs(1))
        .unwrap();
    assert_eq!(walk(&mut lsp, &echoes, &[2], T0), 3);
    assert!(lsp.poll(T0 + 500 * MS).is_empty(), "hop 2 may still answer");
    let done = lsp.poll(T0 + 1000 * MS);
    assert_eq!(done.len(), 1);
    let d = &done[0];
    assert!(d.timed_out && d.reached_egress());
    let codes: Vec<_> = d.hops.iter().map(|h| (h.ttl, h.return_code)).collect();
    assert_eq!(codes, [(1, Some(8)), (2, None), (3, Some(8)), (4, Some(3))]);
    assert_eq!(d.hops[1].address, None);
    assert_eq!(d.hops[1].rtt_ns, None);
    assert_eq!(lsp.stats().timed_out, 1);
    // An egress that never answers: every hop to max_hops, no egress.
    let (_, echoes) = lsp
        .start_trace(T0, REMOTE, 5, Duration::from_secs(1))
        .unwrap();
    walk(&mut lsp, &echoes, &[4], T0);
    let d = lsp.poll(T0 + 2000 * MS).pop().unwrap();
    assert!(d.timed_out && !d.reached_egress());
    assert_eq!(d.hops.len(), 5);
    assert_eq!(d.hops.iter().filter(|h| h.address.is_some()).count(), 3);
}

#[test]
fn ping_answered_by_the_egress_and_ping_that_times_out() {
    let mut lsp = probes();
    let (id, echoes) = lsp
        .start_ping(T0, REMOTE, 3, Duration::from_secs(1))
        .unwrap();
    assert_eq!(walk(&mut lsp, &echoes[..2], &[], T0), 2);
    assert!(lsp.poll(T0 + 100 * MS).is_empty());
    walk(&mut lsp, &echoes[2..], &[], T0 + 50 * MS);
    let d = lsp.poll(T0 + 100 * MS).pop().unwrap();
    assert_eq!((d.id, d.kind, d.timed_out), (id, ProbeKind::Ping, false));
    assert_eq!(d.hops.iter().map(|h| h.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(d
        .hops
        .iter()
        .all(|h| h.is_egress() && h.node_id == Some(2) && h.ttl == 255));
    assert_eq!(d.hops[2].rtt_ns, Some(58 * MS));

    let (_, echoes) = lsp
        .start_ping(T0, REMOTE, 2, Duration::from_secs(1))
        .unwrap();
    walk(&mut lsp, &echoes, &[4], T0);
    let d = lsp.poll(T0 + 1000 * MS).pop().unwrap();
    assert!(d.timed_out && d.hops.iter().all(|h| h.rtt_ns.is_none()));
}

#[test]
fn stray_duplicate_late_and_forged_replies_are_counted() {
    let mut lsp = probes();
    let (_, echoes) = lsp
        .start_ping(T0, REMOTE, 1, Duration::from_secs(1))
        .unwrap();
    let egress = &path()[3];
    let f = eth(
        egress.info.ports[0].mac,
        PEER_MAC,
        &[],
        &[(egress.label, 255)],
        0,
        &echoes[0].packet,
    );
    let Ok(Some(Outgoing::Remote { packet, .. })) =
        handle_lsp(&f, 0, &egress.info, T0, &mut probes())
    else {
        panic!()
    };
    // Forged: right handle, wrong UDP destination port.
    let rewrite = |packet: &[u8], f: &dyn Fn(&mut Vec<u8>)| {
        let p = Ipv4Packet::new_checked(packet).unwrap();
        let u = UdpPacket::new_checked(p.payload()).unwrap();
        let (sport, dport) = (u.src_port(), u.dst_port());
        let mut m = u.payload().to_vec();
        f(&mut m);
        let mut d = vec![0u8; 8 + m.len()];
        udp::write_header(&mut d, sport, dport, m.len()).unwrap();
        d[8..].copy_from_slice(&m);
        (p.src_addr(), p.dst_addr(), d)
    };
    let wrap = |src, dst, mut d: Vec<u8>, dport: Option<u16>| {
        if let Some(dp) = dport {
            d[2..4].copy_from_slice(&dp.to_be_bytes());
        }
        UdpPacket::new_unchecked(&mut d[..]).fill_checksum_v4(src, dst);
        ip(src, dst, 17, &d)
    };
    let (s, d, u) = rewrite(&packet, &|_| {});
    assert_eq!(
        lsp.on_reply(T0, &wrap(s, d, u.clone(), Some(1234))),
        Err(StrayReply::Forged)
    );
    // Forged: another FEC echoed, a sequence never sent, another destination.
    let (s2, d2, u2) = rewrite(&packet, &|m| m[mpls_echo::HEADER_LEN + 11] ^= 1);
    assert_eq!(
        lsp.on_reply(T0, &wrap(s2, d2, u2, None)),
        Err(StrayReply::Forged)
    );
    let (s3, d3, u3) = rewrite(&packet, &|m| m[15] = 9);
    assert_eq!(
        lsp.on_reply(T0, &wrap(s3, d3, u3, None)),
        Err(StrayReply::Forged)
    );
    assert_eq!(
        lsp.on_reply(T0, &wrap(s, TUNNEL, u.clone(), None)),
        Err(StrayReply::Forged)
    );
    // Unknown handle, not a reply, malformed.
    let (s4, d4, u4) = rewrite(&packet, &|m| m[8] ^= 0x80);
    assert_eq!(
        lsp.on_reply(T0, &wrap(s4, d4, u4, None)),
        Err(StrayReply::UnknownHandle)
    );
    let (s5, d5, u5) = rewrite(&packet, &|m| m[4] = 1);
    assert_eq!(
        lsp.on_reply(T0, &wrap(s5, d5, u5, None)),
        Err(StrayReply::NotAReply)
    );
    assert_eq!(lsp.on_reply(T0, &packet[..30]), Err(StrayReply::Malformed));
    assert_eq!(
        lsp.on_reply(T0, &ping(REMOTE, NODE, 1)),
        Err(StrayReply::NotAReply)
    );
    // The real one, then its duplicate.
    assert!(lsp.on_reply(T0 + MS, &packet).is_ok());
    assert_eq!(lsp.on_reply(T0 + MS, &packet), Err(StrayReply::Duplicate));
    // After the probe is done: late.
    assert_eq!(lsp.poll(T0 + 2 * MS).len(), 1);
    assert_eq!(lsp.on_reply(T0 + 3 * MS, &packet), Err(StrayReply::Late));
    // Past the deadline before a poll: late too.
    let (_, echoes) = lsp
        .start_ping(T0, REMOTE, 1, Duration::from_secs(1))
        .unwrap();
    let f = eth(
        egress.info.ports[0].mac,
        PEER_MAC,
        &[],
        &[(egress.label, 255)],
        0,
        &echoes[0].packet,
    );
    let Ok(Some(Outgoing::Remote { packet, .. })) =
        handle_lsp(&f, 0, &egress.info, T0, &mut probes())
    else {
        panic!()
    };
    assert_eq!(lsp.on_reply(T0 + 1000 * MS, &packet), Err(StrayReply::Late));
    let s = lsp.stats();
    assert_eq!(
        (
            s.replies,
            s.forged,
            s.unknown,
            s.not_a_reply,
            s.malformed,
            s.duplicate,
            s.late
        ),
        (1, 4, 1, 2, 1, 1, 2)
    );
}

// ---------------------------------------------------------------- ICMP initiator

const ICMP_SEED: u64 = 0x1c3b_5eed_0000_0001;
const MILLI: Duration = Duration::from_millis(1);

fn pinger() -> IcmpProbes {
    IcmpProbes::new(ICMP_SEED)
}

/// gw-b's services' answer to `echo` (an echo request gw-a sent it over
/// its label): the echo reply, an IPv4 packet for gw-a.
fn gw_b_answers(echo: &Outgoing) -> Vec<u8> {
    let Outgoing::Remote { dst, packet } = echo else {
        panic!("{echo:?}")
    };
    assert_eq!(*dst, REMOTE);
    let gw_b = &path()[3];
    let f = eth(
        gw_b.info.ports[0].mac,
        PEER_MAC,
        &[],
        &[(gw_b.label, 62)],
        0,
        packet,
    );
    let mut theirs = Probes::new(REMOTE, 1, 2);
    match handle(&f, 0, &gw_b.info, T0, &mut theirs) {
        Ok(Some(o @ Outgoing::Remote { dst: NODE, .. })) => {
            let Outgoing::Remote { packet, .. } = o else {
                unreachable!()
            };
            packet
        }
        other => panic!("gw-b did not answer: {other:?}"),
    }
}

/// The reply as it reaches gw-a: under its own label.
fn to_gw_a(reply: &[u8]) -> Vec<u8> {
    eth(ISL_MAC, PEER_MAC, &[], &[(GW_A_LABEL, 64)], 0, reply)
}

/// The echo request in `o`: IPv4 header fields and the ICMP message.
fn echo_of(o: &Outgoing) -> (Ipv4Addr, Ipv4Addr, u8, u16, u16, Vec<u8>) {
    let ip = check_outgoing(o).expect("an IPv4 packet");
    let p = Ipv4Packet::new_checked(&ip[..]).unwrap();
    assert!(p.options().is_empty() && !p.is_fragment());
    let m = IcmpPacket::new_checked(p.payload()).unwrap();
    assert_eq!(
        (m.msg_type(), m.code()),
        (icmp_pkt::msg_type::ECHO_REQUEST, 0)
    );
    (
        p.src_addr(),
        p.dst_addr(),
        p.ttl(),
        m.echo_ident(),
        m.echo_seq(),
        m.payload().to_vec(),
    )
}

#[test]
fn icmp_echo_requests_are_what_ping_sends() {
    let mut icmp = pinger();
    let (id, first) = icmp
        .start(T0, NODE, REMOTE, 2, 56, 10 * MILLI, Duration::from_secs(1))
        .unwrap();
    assert_eq!(first.len(), 1, "the first echo goes at once");
    let (src, dst, ttl, ident, seq, data) = echo_of(&first[0]);
    assert_eq!((src, dst, ttl, seq), (NODE, REMOTE, ping::REQUEST_TTL, 1));
    assert_eq!(data.len(), 56);
    // The data after the cookie counts up, as ping's pattern does.
    assert_eq!(data[8..12], [8, 9, 10, 11]);
    let next = icmp.poll(T0 + 10 * MS).send;
    let (.., ident2, seq2, data2) = echo_of(&next[0]);
    assert_eq!((ident2, seq2), (ident, 2), "one identifier per ping");
    assert_eq!(data2, data);
    // Another ping, another identifier and cookie; another seed, others again.
    let (id2, other) = icmp
        .start(T0, NODE, REMOTE, 1, 56, 10 * MILLI, Duration::from_secs(1))
        .unwrap();
    assert_ne!(id2, id);
    let (.., ident3, _, data3) = echo_of(&other[0]);
    assert_ne!(ident3, ident);
    assert_ne!(data3[..8], data[..8]);
    let (_, theirs) = IcmpProbes::new(ICMP_SEED ^ 0xffff_0000_ffff)
        .start(T0, NODE, REMOTE, 1, 56, 10 * MILLI, Duration::from_secs(1))
        .unwrap();
    let (.., ident4, _, data4) = echo_of(&theirs[0]);
    assert_ne!(ident4, ident);
    assert_ne!(data4[..8], data[..8]);
    // Sizes at the bounds; short data carries the start of the cookie.
    for size in [0u16, 3, ping::MAX_SIZE] {
        let (_, o) = icmp
            .start(T0, TUNNEL, REMOTE, 1, size, 10 * MILLI, MILLI)
            .unwrap();
        let (src, .., data) = echo_of(&o[0]);
        assert_eq!((src, data.len()), (TUNNEL, usize::from(size)));
    }
}

#[test]
fn icmp_echoes_are_paced_by_poll() {
    let mut icmp = pinger();
    let wait = Duration::from_millis(100);
    let (_, first) = icmp
        .start(T0, NODE, REMOTE, 3, 8, 10 * MILLI, wait)
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(icmp.next_timer(), Some(T0 + 10 * MS));
    assert_eq!(icmp.poll(T0 + 9 * MS), PingPoll::default(), "not yet due");
    let p = icmp.poll(T0 + 10 * MS);
    assert_eq!(p.send.len(), 1);
    assert_eq!(echo_of(&p.send[0]).4, 2);
    assert!(icmp.poll(T0 + 10 * MS).send.is_empty(), "each echo once");
    // A late poll sends the third echo late, never two at once, and the
    // interval counts from when it went.
    let p = icmp.poll(T0 + 35 * MS);
    assert_eq!(p.send.len(), 1);
    assert_eq!(echo_of(&p.send[0]).4, 3);
    assert!(icmp.poll(T0 + 60 * MS).send.is_empty(), "count reached");
    // Every echo sent: the next timer is the first wait to end.
    assert_eq!(icmp.next_timer(), Some(T0 + 100 * MS));
    assert!(
        icmp.poll(T0 + 134 * MS).done.is_empty(),
        "echo 3 may still come"
    );
    let done = icmp.poll(T0 + 135 * MS).done;
    assert_eq!(done.len(), 1);
    let d = &done[0];
    assert_eq!((d.transmitted(), d.received(), d.timed_out), (3, 0, true));
    assert_eq!(
        d.echoes.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(icmp.next_timer(), None);
    assert_eq!(
        (
            icmp.stats().sent,
            icmp.stats().timed_out,
            icmp.outstanding()
        ),
        (3, 1, 0)
    );
}

#[test]
fn icmp_replies_through_handle_are_matched_and_timed_from_the_send_time() {
    let mut probes = Probes::new(NODE, 0x5eed, ICMP_SEED);
    let (id, first) = probes
        .icmp
        .start(T0, NODE, REMOTE, 3, 56, 10 * MILLI, Duration::from_secs(1))
        .unwrap();
    let mut sent = vec![(T0, first[0].clone())];
    for k in 1..3u64 {
        let p = probes.icmp.poll(T0 + k * 10 * MS);
        sent.push((T0 + k * 10 * MS, p.send[0].clone()));
    }
    // Replies come back in another order, each 3 ms + seq after its echo.
    for (i, (at, echo)) in sent.iter().enumerate().rev() {
        let f = to_gw_a(&gw_b_answers(echo));
        let now = at + (3 + i as u64) * MS;
        assert_eq!(handle(&f, 1, &gw_a(), now, &mut probes), Ok(None));
    }
    let p = probes.icmp.poll(T0 + 30 * MS);
    assert!(p.send.is_empty());
    let d = &p.done[0];
    assert_eq!((d.id, d.target, d.source, d.size), (id, REMOTE, NODE, 56));
    assert!(!d.timed_out && d.duplicates == 0);
    assert_eq!(
        d.echoes,
        (1..=3u16)
            .map(|seq| PingEcho {
                seq,
                address: Some(REMOTE),
                rtt_ns: Some((2 + u64::from(seq)) * MS),
                ttl: Some(64),
                bytes: Some(64),
            })
            .collect::<Vec<_>>()
    );
    let s = probes.icmp.stats();
    assert_eq!((s.started, s.sent, s.replies, s.completed), (1, 3, 3, 1));
    // The LSP initiator saw none of it.
    assert_eq!(*probes.lsp.stats(), LspStats::default());
}

#[test]
fn icmp_duplicate_late_unknown_and_forged_replies_are_counted() {
    let mut icmp = pinger();
    let (_, first) = icmp
        .start(T0, NODE, REMOTE, 2, 16, 10 * MILLI, Duration::from_secs(1))
        .unwrap();
    let reply = gw_b_answers(&first[0]);
    // Rebuilds `reply` with its ICMP message changed by `f` (checksums
    // filled again), from `src` to `dst`.
    let remake = |src: Ipv4Addr, dst: Ipv4Addr, f: &dyn Fn(&mut Vec<u8>)| {
        let p = Ipv4Packet::new_checked(&reply[..]).unwrap();
        let mut m = p.payload().to_vec();
        f(&mut m);
        IcmpPacket::new_unchecked(&mut m[..]).fill_checksum();
        ip(src, dst, 1, &m)
    };
    let same = |_: &mut Vec<u8>| {};
    let cases: [(Vec<u8>, StrayEchoReply); 9] = [
        // Another source, another destination, a sequence not sent (yet),
        // other data.
        (remake(TUNNEL, NODE, &same), StrayEchoReply::Forged),
        (remake(REMOTE, TUNNEL, &same), StrayEchoReply::Forged),
        (remake(REMOTE, NODE, &|m| m[7] = 2), StrayEchoReply::Forged),
        (remake(REMOTE, NODE, &|m| m[8] ^= 1), StrayEchoReply::Forged),
        // Another identifier.
        (
            remake(REMOTE, NODE, &|m| m[4] ^= 0x80),
            StrayEchoReply::UnknownIdent,
        ),
        // An echo request, an ICMP error, UDP; cut short, bad checksum.
        (
            remake(REMOTE, NODE, &|m| m[0] = 8),
            StrayEchoReply::NotAReply,
        ),
        (
            remake(REMOTE, NODE, &|m| m[1] = 1),
            StrayEchoReply::NotAReply,
        ),
        (ip(REMOTE, NODE, 17, &[0; 16]), StrayEchoReply::NotAReply),
        (reply[..30].to_vec(), StrayEchoReply::Malformed),
    ];
    for (i, (pkt, want)) in cases.iter().enumerate() {
        assert_eq!(icmp.on_reply(T0 + MS, pkt), Err(*want), "case {i}");
    }
    let mut bad = reply.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert_eq!(icmp.on_reply(T0 + MS, &bad), Err(StrayEchoReply::Malformed));
    // The real one, then its duplicate; through handle, a stray reply.
    assert!(icmp.on_reply(T0 + MS, &reply).is_ok());
    assert_eq!(
        icmp.on_reply(T0 + MS, &reply),
        Err(StrayEchoReply::Duplicate)
    );
    let mut probes = Probes {
        lsp: probes(),
        icmp,
    };
    assert_eq!(
        handle(&to_gw_a(&reply), 1, &gw_a(), T0 + 2 * MS, &mut probes),
        Err(Ignored::StrayReply)
    );
    let mut icmp = probes.icmp;
    // Echo 2, answered after its wait: late.
    let second = icmp.poll(T0 + 10 * MS).send;
    let reply2 = gw_b_answers(&second[0]);
    assert_eq!(
        icmp.on_reply(T0 + 1010 * MS, &reply2),
        Err(StrayEchoReply::Late)
    );
    let d = icmp.poll(T0 + 1010 * MS).done.pop().expect("done");
    assert_eq!((d.received(), d.duplicates, d.timed_out), (1, 2, true));
    // After the ping ended: late, not unknown.
    assert_eq!(
        icmp.on_reply(T0 + 2000 * MS, &reply),
        Err(StrayEchoReply::Late)
    );
    let s = icmp.stats();
    assert_eq!(
        (
            s.replies,
            s.forged,
            s.unknown,
            s.not_a_reply,
            s.malformed,
            s.duplicate,
            s.late
        ),
        (1, 4, 1, 3, 2, 2, 2)
    );
}

#[test]
fn icmp_echo_reply_to_a_node_address_is_a_stray_without_a_ping() {
    let mut reply = icmp_pkt::echo_request(7, 1, b"x");
    reply[0] = icmp_pkt::msg_type::ECHO_REPLY;
    IcmpPacket::new_unchecked(&mut reply[..]).fill_checksum();
    for dst in [NODE, TUNNEL] {
        let f = to_gw_a(&ip(REMOTE, dst, 1, &reply));
        assert_eq!(
            handle(&f, 1, &gw_a(), T0, &mut running_probes()),
            Err(Ignored::StrayReply),
            "{dst}"
        );
    }
    // To a port address: the node never pings from one.
    let f = to_gw_a(&ip(REMOTE, LAN, 1, &reply));
    assert_eq!(
        handle(&f, 1, &gw_a(), T0, &mut running_probes()),
        Err(Ignored::Unsupported)
    );
}

#[test]
fn icmp_pings_are_bounded() {
    let mut icmp = pinger();
    let t = Duration::from_secs(1);
    let mut start = |count, size, interval, src, dst| {
        icmp.start(T0, src, dst, count, size, interval, t)
            .map(|(id, _)| id)
    };
    let i = 10 * MILLI;
    assert_eq!(start(0, 56, i, NODE, REMOTE), Err(PingError::BadCount));
    assert_eq!(
        start(ping::MAX_ECHOES + 1, 56, i, NODE, REMOTE),
        Err(PingError::BadCount)
    );
    assert_eq!(
        start(1, ping::MAX_SIZE + 1, i, NODE, REMOTE),
        Err(PingError::BadSize)
    );
    for bad in [9 * MILLI, Duration::ZERO, ping::MAX_INTERVAL + MILLI] {
        assert_eq!(start(1, 56, bad, NODE, REMOTE), Err(PingError::BadInterval));
    }
    for bad in [
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::LOCALHOST,
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::BROADCAST,
    ] {
        assert_eq!(start(1, 56, i, NODE, bad), Err(PingError::BadTarget(bad)));
        assert_eq!(start(1, 56, i, bad, REMOTE), Err(PingError::BadSource(bad)));
    }
    assert!(start(
        ping::MAX_ECHOES,
        ping::MAX_SIZE,
        ping::MAX_INTERVAL,
        NODE,
        REMOTE
    )
    .is_ok());
    assert_eq!(icmp.stats().refused, 3 + 3 + 8);
    // At most MAX_PINGS at once, whatever else comes.
    let mut icmp = pinger();
    let mut replies = Vec::new();
    for _ in 0..ping::MAX_PINGS {
        let (_, first) = icmp.start(T0, NODE, REMOTE, 1, 8, i, t).unwrap();
        replies.push(gw_b_answers(&first[0]));
    }
    assert_eq!(
        icmp.start(T0, NODE, REMOTE, 1, 8, i, t),
        Err(PingError::TooManyPings)
    );
    assert_eq!(icmp.outstanding(), ping::MAX_PINGS);
    let done = icmp.poll(T0 + 1000 * MS).done;
    assert_eq!(done.len(), ping::MAX_PINGS);
    assert!(done.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(icmp.outstanding(), 0);
    // The recently finished are remembered, up to MAX_PINGS of them: one
    // more ping pushes the oldest out, whose late reply is then unknown.
    let (_, first) = icmp.start(T0, NODE, REMOTE, 1, 8, i, t).unwrap();
    let last = gw_b_answers(&first[0]);
    assert_eq!(icmp.poll(T0 + 2000 * MS).done.len(), 1);
    assert_eq!(icmp.on_reply(T0, &replies[1]), Err(StrayEchoReply::Late));
    assert_eq!(icmp.on_reply(T0, &last), Err(StrayEchoReply::Late));
    assert_eq!(
        icmp.on_reply(T0, &replies[0]),
        Err(StrayEchoReply::UnknownIdent)
    );
}

/// What a proptest does to an ICMP initiator.
#[derive(Clone, Debug)]
enum PingOp {
    Start {
        count: u16,
        size: u16,
        interval_ms: u64,
        timeout_ms: u64,
    },
    Poll(u64),
    /// gw-b's answer to the `n`th echo sent so far, `flip`ped at a byte.
    Answer {
        n: prop::sample::Index,
        flip: Option<(prop::sample::Index, u8)>,
        after_ms: u64,
    },
    Garbage(Vec<u8>),
}

fn ping_op() -> impl Strategy<Value = PingOp> {
    prop_oneof![
        (0u16..=110, 0u16..=1410, 0u64..=12_000, 0u64..=3000).prop_map(
            |(count, size, interval_ms, timeout_ms)| PingOp::Start {
                count,
                size,
                interval_ms,
                timeout_ms
            }
        ),
        (0u64..=3000).prop_map(PingOp::Poll),
        (
            any::<prop::sample::Index>(),
            proptest::option::of((any::<prop::sample::Index>(), 1u8..=255)),
            0u64..=2000
        )
            .prop_map(|(n, flip, after_ms)| PingOp::Answer { n, flip, after_ms }),
        proptest::collection::vec(any::<u8>(), 0..80).prop_map(PingOp::Garbage),
    ]
}

proptest! {
    #[test]
    fn icmp_pings_stay_bounded_and_consistent_whatever_happens(
        ops in proptest::collection::vec(ping_op(), 1..60),
    ) {
        let mut icmp = pinger();
        let mut now = T0;
        // (ping, seq, packet) of every echo handed out.
        let mut sent: Vec<(ProbeId, u16, Outgoing)> = Vec::new();
        let mut counts = std::collections::HashMap::new();
        let mut done = Vec::new();
        let take = |sent: &mut Vec<(ProbeId, u16, Outgoing)>, id, o: Outgoing| {
            let (src, dst, ttl, _, seq, _) = echo_of(&o);
            assert_eq!((src, dst, ttl), (NODE, REMOTE, 64));
            sent.push((id, seq, o));
        };
        for op in ops {
            match op {
                PingOp::Start { count, size, interval_ms, timeout_ms } => {
                    let room = icmp.outstanding() < ping::MAX_PINGS;
                    let r = icmp.start(
                        now, NODE, REMOTE, count, size,
                        Duration::from_millis(interval_ms), Duration::from_millis(timeout_ms),
                    );
                    let valid = (1..=ping::MAX_ECHOES).contains(&count)
                        && size <= ping::MAX_SIZE
                        && (10..=10_000).contains(&interval_ms);
                    prop_assert_eq!(r.is_ok(), valid && room);
                    if let Ok((id, first)) = r {
                        prop_assert_eq!(first.len(), 1);
                        counts.insert(id, count);
                        for o in first {
                            let (.., data) = echo_of(&o);
                            prop_assert_eq!(data.len(), usize::from(size));
                            take(&mut sent, id, o);
                        }
                    }
                }
                PingOp::Poll(ms) => {
                    now += ms * MS;
                    let before = icmp.outstanding();
                    let p = icmp.poll(now);
                    prop_assert!(p.send.len() <= before, "one echo per ping and poll");
                    for o in p.send {
                        // Which ping: the one whose identifier it carries.
                        let ident = echo_of(&o).3;
                        let id = sent
                            .iter()
                            .find(|(_, _, s)| echo_of(s).3 == ident)
                            .map(|(id, ..)| *id)
                            .expect("a running ping's echo");
                        take(&mut sent, id, o);
                    }
                    done.extend(p.done);
                }
                PingOp::Answer { n, flip, after_ms } => {
                    if sent.is_empty() {
                        continue;
                    }
                    let (_, _, echo) = &sent[n.index(sent.len())];
                    let mut reply = gw_b_answers(echo);
                    if let Some((at, x)) = flip {
                        let i = at.index(reply.len());
                        reply[i] ^= x;
                    }
                    let _ = icmp.on_reply(now + after_ms * MS, &reply);
                }
                PingOp::Garbage(g) => {
                    prop_assert!(icmp.on_reply(now, &g).is_err());
                }
            }
            prop_assert!(icmp.outstanding() <= ping::MAX_PINGS);
        }
        // Everything ends: once all are sent and every wait is over.
        let mut late_sends = 0;
        for _ in 0..=ping::MAX_ECHOES {
            now += 10_000 * MS;
            let p = icmp.poll(now);
            late_sends += p.send.len();
            done.extend(p.done);
        }
        prop_assert_eq!(icmp.outstanding(), 0);
        prop_assert_eq!(done.len(), counts.len());
        let s = *icmp.stats();
        prop_assert_eq!(s.started as usize, counts.len());
        prop_assert_eq!(s.completed + s.timed_out, s.started);
        prop_assert_eq!(s.sent as usize, sent.len() + late_sends);
        let mut received = 0;
        for d in &done {
            let count = counts[&d.id];
            prop_assert_eq!(d.transmitted(), usize::from(count));
            let seqs: Vec<u16> = d.echoes.iter().map(|e| e.seq).collect();
            prop_assert_eq!(seqs, (1..=count).collect::<Vec<_>>());
            prop_assert_eq!(d.timed_out, d.received() < d.transmitted());
            for e in &d.echoes {
                prop_assert_eq!(e.rtt_ns.is_some(), e.address == Some(REMOTE));
            }
            received += d.received();
        }
        prop_assert_eq!(s.replies as usize, received);
    }

    #[test]
    fn every_icmp_echo_is_answered_by_the_responder_and_matched(
        count in 1u16..=5, size in 0u16..=ping::MAX_SIZE, rtt_ms in 0u64..999,
    ) {
        let mut icmp = pinger();
        let (_, first) = icmp
            .start(T0, NODE, REMOTE, count, size, 10 * MILLI, Duration::from_secs(1))
            .unwrap();
        let mut echoes = first;
        for k in 1..u64::from(count) {
            echoes.extend(icmp.poll(T0 + k * 10 * MS).send);
        }
        prop_assert_eq!(echoes.len(), usize::from(count));
        for (k, e) in echoes.iter().enumerate() {
            let reply = gw_b_answers(e);
            let at = T0 + k as u64 * 10 * MS + rtt_ms * MS;
            prop_assert!(icmp.on_reply(at, &reply).is_ok());
        }
        let d = icmp.poll(T0 + 10_000 * MS).done.pop().unwrap();
        prop_assert_eq!(d.received(), usize::from(count));
        prop_assert!(d.echoes.iter().all(|e| e.rtt_ns == Some(rtt_ms * MS)
            && e.bytes == Some(size + 8)));
    }
}

#[test]
fn ignored_names_are_distinct_and_in_counter_order() {
    let names: std::collections::HashSet<_> = Ignored::ALL.iter().map(|r| r.name()).collect();
    assert_eq!(names.len(), Ignored::COUNT);
    for (i, r) in Ignored::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
        assert_eq!(r.to_string(), r.name());
    }
    let mut c = IgnoredCounters::default();
    c.bump(Ignored::NotForUs);
    c.bump(Ignored::NotForUs);
    c.bump(Ignored::Broadcast);
    assert_eq!((c.get(Ignored::NotForUs), c.total()), (2, 3));
}

// ---------------------------------------------------------------- never panic

/// One valid frame of every kind the services answer or consume.
fn valid_frames() -> Vec<(Vec<u8>, PortId)> {
    let mut lsp = probes();
    let (_, echoes) = lsp.start_ping(T0, NODE, 1, Duration::from_secs(1)).unwrap();
    let req_frame = eth(ISL_MAC, PEER_MAC, &[], &[(1001, 1)], 0, &echoes[0].packet);
    let Ok(Some(Outgoing::Remote { packet: reply, .. })) = run(&req_frame, 1) else {
        panic!()
    };
    let mut frames = vec![
        (
            eth(
                [0xff; 6],
                HOST_MAC,
                &[5],
                &[],
                ethertype::ARP,
                &arp_request((HOST_MAC, HOST), LAN),
            ),
            0,
        ),
        (
            eth(
                LAN_MAC,
                HOST_MAC,
                &[],
                &[],
                ethertype::IPV4,
                &ping(HOST, LAN, 1),
            ),
            0,
        ),
        (
            eth(
                ISL_MAC,
                PEER_MAC,
                &[7, 8],
                &[(16, 3), (1001, 60)],
                0,
                &ping(REMOTE, NODE, 2),
            ),
            1,
        ),
        (req_frame, 1),
        (eth(ISL_MAC, PEER_MAC, &[], &[(1001, 64)], 0, &reply), 1),
    ];
    // gw-b's answers to the two echoes `running()`'s ICMP ping sent.
    let (_, _, echoes) = running();
    for echo in &echoes {
        let reply = gw_b_answers(echo);
        frames.push((
            eth(ISL_MAC, PEER_MAC, &[], &[(GW_A_LABEL, 64)], 0, &reply),
            1,
        ));
    }
    frames
}

/// gw-a's initiators as every never-panic case starts them: an LSP ping
/// of itself (the reply in `valid_frames` matches it) and an ICMP ping of
/// gw-b (3 echoes, 10 ms apart, 1 s wait) that has sent two echoes,
/// and those two.
fn running() -> (LspProbes, IcmpProbes, Vec<Outgoing>) {
    let mut lsp = probes();
    let _ = lsp.start_ping(T0, NODE, 1, Duration::from_secs(1));
    let mut icmp = pinger();
    let (_, mut echoes) = icmp
        .start(T0, NODE, REMOTE, 3, 56, 10 * MILLI, Duration::from_secs(1))
        .unwrap();
    echoes.extend(icmp.poll(T0 + 10 * MS).send);
    (lsp, icmp, echoes)
}

fn running_probes() -> Probes {
    let (lsp, icmp, _) = running();
    Probes { lsp, icmp }
}

/// `handle` on `frame`: never a panic, and anything it builds parses back.
fn handle_checked(frame: &[u8], port: PortId, probes: &mut Probes) {
    if let Ok(Some(o)) = handle(frame, port, &gw_a(), T0, probes) {
        check_outgoing(&o);
    }
}

#[test]
fn valid_frames_are_answered_and_every_truncation_is_refused() {
    for (i, (f, port)) in valid_frames().into_iter().enumerate() {
        let r = handle(&f, port, &gw_a(), T0, &mut running_probes());
        assert!(r.is_ok(), "frame {i}: {r:?}");
        if let Ok(Some(o)) = &r {
            check_outgoing(o);
        }
        for n in 0..f.len() {
            let r = handle_lsp(&f[..n], port, &gw_a(), T0, &mut probes());
            // ARP frames have no length field: a cut inside the 28 bytes
            // is truncated, but Ethernet padding may go.
            if !(i == 0 && n >= 18 + 28) {
                assert!(r.is_err(), "frame {i} cut at {n}: {r:?}");
            }
        }
    }
}

proptest! {
    #[test]
    fn handle_never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..200), port in 0u16..3) {
        let mut p = running_probes();
        let _ = p.lsp.start_trace(T0, REMOTE, 4, Duration::from_secs(1));
        handle_checked(&data, port, &mut p);
        let _ = p.lsp.on_reply(T0, &data);
        let _ = p.icmp.on_reply(T0, &data);
        let _ = p.lsp.poll(T0);
        let _ = p.icmp.poll(T0);
    }

    #[test]
    fn handle_never_panics_on_mutated_valid_frames(
        which in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let frames = valid_frames();
        let (f, port) = &frames[which.index(frames.len())];
        let mut g = f.clone();
        for (i, x) in &flips {
            let at = i.index(g.len());
            g[at] ^= x;
        }
        let mut p = running_probes();
        handle_checked(&g, *port, &mut p);
        handle_checked(&g[..cut.index(g.len() + 1)], *port, &mut p);
        // A mutation after the label stack: also through the initiators.
        if let Ok(f) = PuntedFrame::parse(&g) {
            let _ = p.lsp.on_reply(T0, f.l3());
            let _ = p.icmp.on_reply(T0, f.l3());
        }
        // Whatever came back, the ping ends and its result holds.
        let mut done = Vec::new();
        for k in 1..=4u64 {
            done.extend(p.icmp.poll(T0 + k * 2000 * MS).done);
        }
        prop_assert_eq!(done.len(), 1);
        prop_assert_eq!(p.icmp.outstanding(), 0);
        prop_assert_eq!(done[0].transmitted(), 3);
        prop_assert!(done[0].received() <= 2, "only two echoes were answerable");
    }

    #[test]
    fn every_reply_parses_back_with_valid_checksums(
        seq in any::<u16>(), data in proptest::collection::vec(any::<u8>(), 0..600),
        handle_v in any::<u32>(), eseq in any::<u32>(), sport in any::<u16>(),
        tags in proptest::collection::vec(0u16..4096, 0..3), ttl in 1u8..=255,
        extra in proptest::collection::vec((any::<u16>(), proptest::collection::vec(any::<u8>(), 0..12)), 0..4),
        now in any::<u64>(),
    ) {
        let echo_ping = ip(HOST, LAN, 1, &icmp_pkt::echo_request(seq, seq, &data));
        let f = eth(LAN_MAC, HOST_MAC, &tags, &[], ethertype::IPV4, &echo_ping);
        let o = handle_lsp(&f, 0, &gw_a(), now, &mut probes()).unwrap().unwrap();
        let ipb = check_outgoing(&o).unwrap();
        let r = Ipv4Packet::new_checked(&ipb[..]).unwrap();
        let icmp = IcmpPacket::new_checked(r.payload()).unwrap();
        prop_assert_eq!(icmp.payload(), &data[..]);

        let mut m = build_request(handle_v, eseq, NtpTimestamp::from_unix_ns(now), reply_mode::UDP, Ipv4PrefixSid::node(NODE));
        for (t, v) in &extra {
            push_tlv(&mut m, *t, v).unwrap();
        }
        let f = eth(ISL_MAC, PEER_MAC, &tags, &[(1001, ttl)], 0, &lsp_request(REMOTE, REQUEST_DST, sport, &m, true));
        let o = handle_lsp(&f, 1, &gw_a(), now, &mut probes()).unwrap().unwrap();
        let ipb = check_outgoing(&o).unwrap();
        let r = Ipv4Packet::new_checked(&ipb[..]).unwrap();
        let u = UdpPacket::new_checked(r.payload()).unwrap();
        prop_assert_eq!(u.dst_port(), sport);
        let rep = MplsEcho::new_checked(u.payload()).unwrap();
        prop_assert_eq!((rep.sender_handle(), rep.sequence()), (handle_v, eseq));
        let code = rep.return_code();
        prop_assert!(code == return_code::EGRESS || code == return_code::TLV_NOT_UNDERSTOOD || code == return_code::MALFORMED, "{}", code);
    }
}

// ---------------------------------------------------------------- tshark

/// Wireshark must read our echo request and reply as MPLS echo: written
/// to a pcap as they go on the wire (Ethernet, MPLS, IPv4, UDP 3503) and
/// decoded by `tshark -V`.
#[test]
fn tshark_decodes_our_echo_request_and_reply() {
    use crate::io::pcap::CaptureWriter;

    let mut lsp = probes();
    let (_, echoes) = lsp
        .start_trace(T0, REMOTE, 1, Duration::from_secs(1))
        .unwrap();
    let req = &echoes[0];
    let handle_v = MplsEcho::new_unchecked(&req.packet[24 + 8..]).sender_handle();
    let egress = &path()[3];
    let req_frame = eth(
        egress.info.ports[0].mac,
        ISL_MAC,
        &[],
        &[(egress.label, req.mpls_ttl)],
        0,
        &req.packet,
    );
    let Ok(Some(Outgoing::Remote { packet, .. })) =
        handle_lsp(&req_frame, 0, &egress.info, T0 + MS, &mut probes())
    else {
        panic!()
    };
    let reply_frame = eth(
        ISL_MAC,
        egress.info.ports[0].mac,
        &[],
        &[(GW_A_LABEL, 64)],
        0,
        &packet,
    );

    let dir = std::env::temp_dir().join(format!("meshplane-lsp-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lsp.pcap");
    let mut w = CaptureWriter::create(&file).unwrap();
    w.write(Duration::from_nanos(T0), &req_frame).unwrap();
    w.write(Duration::from_nanos(T0 + MS), &reply_frame)
        .unwrap();
    w.finish().unwrap();

    let out = std::process::Command::new("tshark")
        .arg("-r")
        .arg(&file)
        .arg("-V")
        .output()
        .expect("tshark must be installed (Debian package tshark, scripts/setup): this test checks that Wireshark decodes our MPLS echo");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "Multiprotocol Label Switching Echo",
        "Message Type: MPLS Echo Request (1)",
        "Message Type: MPLS Echo Reply (2)",
        "Reply Mode: Reply via an IPv4/IPv6 UDP packet (2)",
        &format!("Sender's Handle: 0x{handle_v:08x}"),
        "Sequence Number: 1",
        "Target FEC Stack",
        "IPv4 IGP-Prefix Segment ID (34)",
        "IPv4 Prefix: 10.255.0.2",
        "Prefix Length: 32",
        "Return Code: Replying router is an egress for the FEC at stack depth",
        "Return Subcode: 1",
        "Vendor Private",
        "Vendor Id: Example Enterprise Number for Documentation Use (32473)",
        "Router Alert",
        "MPLS Label: 1002",
        "Source Port: 3503",
        "Destination Port: 3503",
    ] {
        assert!(text.contains(want), "tshark output lacks {want:?}:\n{text}");
    }
    for bad in ["Malformed", "Unknown TLV", "Invalid"] {
        assert!(!text.contains(bad), "tshark says {bad:?}:\n{text}");
    }
    assert_eq!(
        text.matches("Multiprotocol Label Switching Echo").count(),
        2
    );
}
