//! Bad input lands in its own drop counter, never panics, and costs no
//! other packet: forged tags, unknown SPIs, replays, expired TTLs, truncated
//! frames. Plus the ESP round trip over arbitrary inner packets.

use meshplane::chain::{default_chain, forwarded, inner_ip, Hop};
use meshplane::drop_reason::DropReason;
use meshplane::gen::{generate, FrameSize, GenSpec};
use meshplane::io::pcap::CapturedPacket;
use meshplane::replay::{replay_to_memory, ReplayOptions, ReplayReport};
use proptest::prelude::*;
use std::time::Duration;

fn hops() -> Vec<Hop> {
    default_chain().expect("embedded configs parse")
}

fn run(hop: &Hop, input: Vec<CapturedPacket>) -> (ReplayReport, Vec<CapturedPacket>) {
    let opts = ReplayOptions {
        loops: 1,
        rx_port: hop.rx_port,
    };
    let (r, mut out) = replay_to_memory(&hop.node, input.into(), &opts).expect("replay runs");
    (r, std::mem::take(&mut out[hop.tx_port]))
}

fn traffic(n: u64, size: FrameSize) -> Vec<CapturedPacket> {
    generate(&GenSpec {
        count: n,
        size,
        ..GenSpec::default()
    })
    .expect("generate")
}

/// Frames as they arrive at gateway B (after gw-a and sat-1).
fn at_gw_b(n: u64) -> (Vec<CapturedPacket>, Vec<CapturedPacket>) {
    let h = hops();
    let input = traffic(n, FrameSize::Fixed(128));
    let (_, a) = run(&h[0], input.clone());
    let (_, s) = run(&h[1], a);
    (input, s)
}

fn pkt(data: Vec<u8>) -> CapturedPacket {
    CapturedPacket {
        ts: Duration::ZERO,
        data,
    }
}

#[test]
fn forged_tag_wrong_spi_and_replay_each_have_a_counter() {
    let h = hops();
    let (input, arriving) = at_gw_b(8);
    // Ethernet 14 + MPLS 4 + IPv4 20 = ESP header offset.
    let esp = 14 + 4 + 20;
    let mut forged = arriving[0].data.clone();
    let last = forged.len() - 1;
    forged[last] ^= 0x01; // ICV
    let mut forged_ct = arriving[1].data.clone();
    forged_ct[esp + 16 + 3] ^= 0x80; // ciphertext
    let mut wrong_spi = arriving[2].data.clone();
    wrong_spi[esp + 3] ^= 0x55;
    let mut stream = vec![pkt(forged), pkt(forged_ct), pkt(wrong_spi)];
    // Good packets 3..8, then 3 and 4 replayed.
    for p in &arriving[3..] {
        stream.push(p.clone());
    }
    stream.push(arriving[3].clone());
    stream.push(arriving[4].clone());
    let (r, out) = run(&h[2], stream);
    let d = r.drops();
    assert_eq!(d.get(DropReason::AuthFailed), 2, "{}", r.render());
    assert_eq!(d.get(DropReason::UnknownSpi), 1, "{}", r.render());
    assert_eq!(d.get(DropReason::Replay), 2, "{}", r.render());
    assert_eq!(d.total(), 5);
    assert_eq!(out.len(), 5);
    for (o, i) in out.iter().zip(&input[3..]) {
        let sent = inner_ip(&i.data).and_then(|p| forwarded(p, 2));
        assert_eq!(inner_ip(&o.data), sent.as_deref());
    }
    // The forged packets did not advance the window: the genuine copies of
    // packets 1 and 2 are still accepted.
    let (r, out) = run(&h[2], vec![arriving[0].clone(), arriving[1].clone()]);
    assert_eq!(out.len(), 2, "{}", r.render());
}

#[test]
fn ttl_expires_at_the_satellite() {
    let h = hops();
    let input = traffic(4, FrameSize::Fixed(64));
    let (_, mut a) = run(&h[0], input);
    a[1].data[14 + 3] = 1; // MPLS TTL 1
    a[2].data[14 + 3] = 0;
    let (r, out) = run(&h[1], a);
    assert_eq!(r.drops().get(DropReason::TtlExpired), 2, "{}", r.render());
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].data[14 + 3], 63, "swap decrements the TTL");
}

#[test]
fn unknown_label_and_unknown_prefix_are_no_route() {
    let h = hops();
    let input = traffic(2, FrameSize::Fixed(64));
    let (_, mut a) = run(&h[0], input);
    a[0].data[14] = 0xff; // label 0xff...
    let (r, out) = run(&h[1], a);
    assert_eq!(r.drops().get(DropReason::NoRoute), 1);
    assert_eq!(out.len(), 1);

    let stray = generate(&GenSpec {
        count: 3,
        dst: "172.16.0.0/12".parse().unwrap(),
        ..GenSpec::default()
    })
    .unwrap();
    let (r, out) = run(&h[0], stray);
    assert_eq!(r.drops().get(DropReason::NoRoute), 3);
    assert!(out.is_empty());
}

#[test]
fn every_truncation_of_every_hop_is_dropped_without_panic() {
    let h = hops();
    let input = traffic(1, FrameSize::Fixed(128));
    let (_, a) = run(&h[0], input.clone());
    let (_, s) = run(&h[1], a.clone());
    for (hop, frame) in [(&h[0], &input[0]), (&h[2], &s[0])] {
        let mut stream: Vec<CapturedPacket> = (0..frame.data.len())
            .map(|n| pkt(frame.data[..n].to_vec()))
            .collect();
        // A whole frame at the end still goes through.
        stream.push(frame.clone());
        let (r, out) = run(hop, stream);
        assert_eq!(out.len(), 1, "node {}: {}", hop.node.name, r.render());
        assert_eq!(r.drops().total(), frame.data.len() as u64);
        assert_eq!(
            r.drops().get(DropReason::Malformed),
            frame.data.len() as u64
        );
    }
    // A satellite switches on the label alone (as any LSR does): it drops
    // frames too short for Ethernet + a label entry and forwards the rest,
    // which the egress gateway then drops as malformed.
    let stream: Vec<CapturedPacket> = (0..=a[0].data.len())
        .map(|n| pkt(a[0].data[..n].to_vec()))
        .collect();
    let (r, fwd) = run(&h[1], stream);
    assert_eq!(r.drops().get(DropReason::Malformed), 18, "{}", r.render());
    let (r, out) = run(&h[2], fwd);
    assert_eq!(out.len(), 1, "{}", r.render());
    assert_eq!(r.drops().total(), r.drops().get(DropReason::Malformed));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Any inner packet, IPv4 or IPv6, of any size the LAN MTU (1500)
    /// allows, comes out of the chain
    /// exactly as it went in, less one TTL per gateway.
    #[test]
    fn chain_round_trip_is_exact(size in 64usize..=1518, v6 in any::<bool>(), flows in 1u32..50) {
        let spec = GenSpec {
            count: 3,
            size: FrameSize::Fixed(size),
            flows,
            dst: if v6 { "fd00:2::/32".parse().unwrap() } else { "10.2.0.0/16".parse().unwrap() },
            src: if v6 { "fd00:1::/32".parse().unwrap() } else { "10.1.0.0/16".parse().unwrap() },
            ..GenSpec::default()
        };
        let input = generate(&spec).unwrap();
        let h = hops();
        let (_, a) = run(&h[0], input.clone());
        let (_, s) = run(&h[1], a);
        let (r, out) = run(&h[2], s);
        prop_assert_eq!(out.len(), 3, "{}", r.render());
        for (o, i) in out.iter().zip(&input) {
            let sent = inner_ip(&i.data).and_then(|p| forwarded(p, 2));
            prop_assert_eq!(inner_ip(&o.data), sent.as_deref());
        }
    }

    /// Arbitrary bytes into any node: counted, never a panic.
    #[test]
    fn arbitrary_frames_never_panic(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..40)) {
        for hop in hops() {
            let n = frames.len() as u64;
            let (r, _) = run(&hop, frames.iter().cloned().map(pkt).collect());
            prop_assert_eq!(r.packets_in(), n);
            prop_assert_eq!(r.packets_out() + r.drops().total(), n);
        }
    }
}

#[test]
fn right_spi_between_wrong_endpoints_is_unknown_spi() {
    let h = hops();
    let (_, arriving) = at_gw_b(2);
    let mut spoofed = arriving[0].data.clone();
    // Outer source 192.0.2.1 -> 192.0.2.9 (checksum fixed up as a sender would).
    let ip = 14 + 4;
    spoofed[ip + 15] = 9;
    spoofed[ip + 10] = 0;
    spoofed[ip + 11] = 0;
    let c = meshplane::packet::checksum::internet_checksum(&spoofed[ip..ip + 20]);
    spoofed[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
    let (r, out) = run(&h[2], vec![pkt(spoofed), arriving[1].clone()]);
    assert_eq!(r.drops().get(DropReason::UnknownSpi), 1, "{}", r.render());
    assert_eq!(out.len(), 1);
}

#[test]
fn authentic_packet_with_wrong_padding_is_malformed() {
    // RFC 4303 §2.4: the receiver checks the default padding 1, 2, 3, ...
    // A sender with the key that gets it wrong is refused, and counted.
    let h = hops();
    // 130 B on the wire: a 112 B inner packet, so 2 bytes of padding.
    let (_, a) = run(&h[0], traffic(4, FrameSize::Fixed(130)));
    let (_, mut arriving) = run(&h[1], a);
    let sa = h[2]
        .node
        .sa
        .iter()
        .find(|s| s.dir == meshplane::config::SaDir::In)
        .expect("gw-b decrypts");
    let gcm = meshplane::sa::Gcm::new(sa.aead, sa.spi, &sa.key).expect("key");
    let esp = 14 + 4 + 20;
    let d = &mut arriving[0].data;
    let spi = u32::from_be_bytes(d[esp..esp + 4].try_into().expect("spi"));
    let seq = u32::from_be_bytes(d[esp + 4..esp + 8].try_into().expect("seq"));
    let iv: [u8; 8] = d[esp + 8..esp + 16].try_into().expect("iv");
    let (aad, n) = meshplane::sa::aad(spi, u64::from(seq), false);
    let end = d.len() - 16;
    let icv: [u8; 16] = d[end..].try_into().expect("icv");
    let (body, tag) = d[esp + 16..].split_at_mut(end - esp - 16);
    assert!(gcm.open(iv, &aad[..n], body, &icv), "gw-a's packet opens");
    let pad = usize::from(body[body.len() - 2]);
    assert_eq!(pad, 2, "the inner packet length was chosen for 2 pad bytes");
    let last_pad = body.len() - 3;
    body[last_pad] = 0xee;
    let new_tag = gcm.seal(iv, &aad[..n], body).expect("seal");
    tag.copy_from_slice(&new_tag);

    let (r, out) = run(&h[2], arriving);
    assert_eq!(r.drops().get(DropReason::Malformed), 1, "{}", r.render());
    assert_eq!(r.drops().total(), 1, "{}", r.render());
    assert_eq!(out.len(), 3, "the other packets are delivered");
}

/// An inner IPv4/UDP packet from `src` to `dst` with a valid checksum.
fn inner_v4(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut p = vec![0u8; 28];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&28u16.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    let c = meshplane::packet::checksum::internet_checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

/// A tunnel packet genuinely sealed under gateway A's SA (right key, new
/// sequence numbers) is still refused when its inner source is not one of
/// gateway A's prefixes: the peer may not speak for other networks
/// (RFC 4301 §5.2, inbound policy).
#[test]
fn a_tunnel_packet_from_outside_the_peers_prefixes_is_refused() {
    let h = hops();
    let gw_b = &h[2].node;
    let sa = gw_b
        .sa
        .iter()
        .find(|s| s.spi == 4097)
        .expect("gw-b's inbound SA from gw-a");
    let frame = |seq: u64, src: [u8; 4]| {
        let mut f = vec![2, 0, 0, 0, 0x0b, 0x02, 2, 0, 0, 0, 0x01, 0x02, 0x88, 0x47];
        f.extend(((1003u32 << 12) | (1 << 8) | 63).to_be_bytes());
        f.extend(meshplane::reference::tunnel_packet(
            sa,
            seq,
            &inner_v4(src, [10, 2, 0, 5]),
            4,
        ));
        pkt(f)
    };
    let (r, out) = run(
        &h[2],
        vec![
            frame(1, [8, 8, 8, 8]),
            frame(2, [10, 1, 0, 7]),
            frame(3, [10, 3, 0, 1]),
        ],
    );
    assert_eq!(
        r.drops().get(DropReason::PolicyMismatch),
        2,
        "{}",
        r.render()
    );
    assert_eq!(out.len(), 1, "{}", r.render());
    assert_eq!(&out[0].data[14 + 12..14 + 16], &[10, 1, 0, 7]);
}

/// What a LAN port takes (1500 by default) crosses the default backbone
/// links whole; what enters the tunnel must fit the uplink once
/// tunnelled: over an uplink of 1500, a 1442-byte packet leaves in a frame
/// of exactly 1514 B, and one byte more is refused as too big. Frames
/// longer than the LAN port's MTU are `oversize` where they arrive.
#[test]
fn packets_over_the_mtu_are_refused_at_the_tunnel_edge() {
    let mut h = hops();
    // Wire sizes with the FCS: 1518 B holds a 1500 B IP packet; 1523 B
    // frames exceed the LAN port's 1518-byte limit (a VLAN tag's room).
    let full = traffic(2, FrameSize::Fixed(1518));
    let (r, out) = run(
        &h[0],
        [full.clone(), traffic(1, FrameSize::Fixed(1523))].concat(),
    );
    assert_eq!(r.drops().get(DropReason::Oversize), 1, "{}", r.render());
    assert_eq!(out.len(), 2, "{}", r.render());
    let up = h[0].node.port_index("up0").expect("up0");
    let up_mtu = usize::from(h[0].node.ports[usize::from(up)].mtu);
    assert!(out.iter().all(|o| o.data.len() - 14 <= up_mtu));
    let (_, s) = run(&h[1], out);
    let (r, out) = run(&h[2], s);
    assert_eq!(out.len(), 2, "{}", r.render());

    h[0].node.ports[usize::from(up)].mtu = 1500;
    // 1442 B packets: 1460 B frames with the FCS.
    let fits = traffic(2, FrameSize::Fixed(1460));
    let over = traffic(2, FrameSize::Fixed(1461));
    let (r, out) = run(&h[0], [fits, over].concat());
    assert_eq!(r.drops().get(DropReason::TooBig), 2, "{}", r.render());
    assert_eq!(out.len(), 2);
    assert!(
        out.iter().all(|o| o.data.len() == 1514),
        "{} B",
        out[0].data.len()
    );
}
