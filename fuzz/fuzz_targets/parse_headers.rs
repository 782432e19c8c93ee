//! Every header view over arbitrary bytes: checked constructors, every
//! accessor and setter, and the invariants a checked view promises.

#![no_main]

use libfuzzer_sys::fuzz_target;
use meshplane::packet::{checksum, esp, ethernet, ipv4, ipv6, mpls, udp, vlan};
use std::net::{Ipv4Addr, Ipv6Addr};

fuzz_target!(|data: &[u8]| {
    // Views over the raw input, then over every suffix a stage could reach
    // after an L2 header, a tag or a label stack.
    let mut offsets = vec![0usize];
    if let Ok(l2) = vlan::parse_l2(data) {
        assert!(l2.header_len <= data.len());
        assert!(matches!(l2.header_len, 14 | 18 | 22));
        offsets.push(l2.header_len);
    }
    if let Ok(n) = mpls::stack_len(data) {
        assert!(n <= data.len() && n % mpls::ENTRY_LEN == 0 && n > 0);
        offsets.push(n);
    }
    offsets.push(data.len().min(1));
    for off in offsets {
        views(&data[off..]);
    }
});

fn views(data: &[u8]) {
    ethernet_view(data);
    vlan_view(data);
    mpls_view(data);
    ipv4_view(data);
    ipv6_view(data);
    udp_view(data);
    esp_view(data);
    let _ = checksum::internet_checksum(data);
    let _ = checksum::ones_sum(data);
}

fn ethernet_view(data: &[u8]) {
    let checked = ethernet::EthernetFrame::new_checked(data);
    assert_eq!(checked.is_ok(), data.len() >= ethernet::HEADER_LEN);
    let mut f = ethernet::EthernetFrame::new_unchecked(data.to_vec());
    let _ = (f.dst(), f.src(), f.ethertype(), f.payload());
    f.set_dst([1; 6]);
    f.set_src([2; 6]);
    f.set_ethertype(0x0800);
    let _ = f.payload_mut();
    if checked.is_ok() {
        assert_eq!(f.payload().len(), data.len() - ethernet::HEADER_LEN);
        assert_eq!((f.dst(), f.src(), f.ethertype()), ([1; 6], [2; 6], 0x0800));
    }
}

fn vlan_view(data: &[u8]) {
    let checked = vlan::VlanTag::new_checked(data).is_ok();
    let mut t = vlan::VlanTag::new_unchecked(data.to_vec());
    let (pcp, dei, vid, et) = (t.pcp(), t.dei(), t.vid(), t.inner_ethertype());
    assert!(pcp < 8 && vid <= vlan::MAX_VID);
    let _ = t.payload();
    t.set_vid(vid.wrapping_add(1));
    t.set_pcp(pcp.wrapping_add(1));
    t.set_dei(!dei);
    t.set_inner_ethertype(et);
    let _ = t.payload_mut();
    if checked {
        assert_eq!(t.vid(), vid.wrapping_add(1) & vlan::MAX_VID);
        assert_eq!(t.pcp(), pcp.wrapping_add(1) & 7);
        assert_eq!(t.dei(), !dei);
        assert_eq!(t.inner_ethertype(), et);
    }
}

fn mpls_view(data: &[u8]) {
    let mut total = 0;
    let mut it = mpls::label_stack(data);
    let mut ended_ok = false;
    for e in it.by_ref() {
        match e {
            Ok(e) => {
                total += mpls::ENTRY_LEN;
                assert!(e.label() <= mpls::MAX_LABEL && e.tc() < 8);
                assert_eq!(mpls::MplsEntry::from_bytes(e.to_bytes()), e);
                assert_eq!(mpls::MplsEntry::new(e.label(), e.tc(), e.bos(), e.ttl()), e);
                let f = e
                    .with_label(e.label() ^ 1)
                    .with_ttl(!e.ttl())
                    .with_bos(!e.bos());
                assert_eq!(f.tc(), e.tc());
                ended_ok = e.bos();
            }
            Err(_) => assert!(!ended_ok),
        }
    }
    assert_eq!(it.remainder().len() + total, data.len());
    assert_eq!(mpls::stack_len(data).ok(), ended_ok.then_some(total));
}

fn ipv4_view(data: &[u8]) {
    let checked = ipv4::Ipv4Packet::new_checked(data).is_ok();
    let mut p = ipv4::Ipv4Packet::new_unchecked(data.to_vec());
    let _ = (
        p.version(),
        p.dscp_ecn(),
        p.ident(),
        p.dont_frag(),
        p.more_frags(),
    );
    let _ = (p.frag_offset(), p.is_fragment(), p.protocol(), p.checksum());
    let _ = (p.src_addr(), p.dst_addr(), p.options());
    let (hl, tl, ttl, valid) = (
        p.header_len(),
        usize::from(p.total_len()),
        p.ttl(),
        p.verify_checksum(),
    );
    if checked {
        assert_eq!(p.version(), 4);
        assert!(hl >= ipv4::MIN_HEADER_LEN && hl <= tl && tl <= data.len());
        assert_eq!(p.payload().len(), tl - hl);
        assert_eq!(p.options().len(), hl - ipv4::MIN_HEADER_LEN);
    }
    // The incremental update agrees with a full recompute whenever the
    // header arrived with a valid checksum.
    let dec = p.decrement_ttl_incremental();
    assert_eq!(dec, data.len() >= ipv4::MIN_HEADER_LEN && ttl > 1);
    if dec && valid {
        let inc = p.checksum();
        p.fill_checksum();
        assert_eq!(inc, p.checksum());
        assert!(p.verify_checksum());
    }
    // Same on a header made valid first, which random bytes rarely are.
    let mut q = ipv4::Ipv4Packet::new_unchecked(data.to_vec());
    q.fill_checksum();
    if q.verify_checksum() && q.decrement_ttl_incremental() {
        let inc = q.checksum();
        q.fill_checksum();
        assert_eq!(inc, q.checksum());
    }
    p.set_ttl(1);
    p.set_total_len(0);
    p.set_src_addr(Ipv4Addr::BROADCAST);
    p.set_dst_addr(Ipv4Addr::LOCALHOST);
    p.set_protocol(ipv4::protocol::ESP);
    p.set_ident(7);
    p.set_dscp_ecn(0xb8);
    p.set_dont_frag(true);
    p.fill_checksum();
    let _ = p.payload_mut();
    assert!(!p.decrement_ttl_incremental());
    let mut out = vec![0u8; data.len().min(64)];
    let r = ipv4::write_header(
        &mut out,
        Ipv4Addr::LOCALHOST,
        Ipv4Addr::BROADCAST,
        17,
        data.len(),
        64,
        1,
        0,
    );
    assert_eq!(r.is_ok(), out.len() >= 20 && data.len() <= 65535 - 20);
}

fn ipv6_view(data: &[u8]) {
    let checked = ipv6::Ipv6Packet::new_checked(data).is_ok();
    let mut p = ipv6::Ipv6Packet::new_unchecked(data.to_vec());
    let _ = (
        p.version(),
        p.traffic_class(),
        p.flow_label(),
        p.next_header(),
    );
    let _ = (p.hop_limit(), p.src_addr(), p.dst_addr());
    if checked {
        assert_eq!(p.version(), 6);
        assert_eq!(p.payload().len(), usize::from(p.payload_len()));
    }
    assert!(p.flow_label() <= 0xf_ffff);
    let hl = p.hop_limit();
    assert_eq!(
        p.decrement_hop_limit(),
        data.len() >= ipv6::HEADER_LEN && hl > 1
    );
    p.set_traffic_class(1);
    p.set_flow_label(u32::MAX);
    p.set_payload_len(0);
    p.set_next_header(59);
    p.set_src_addr(Ipv6Addr::LOCALHOST);
    p.set_dst_addr(Ipv6Addr::UNSPECIFIED);
    let _ = p.payload_mut();
    if data.len() >= ipv6::HEADER_LEN {
        assert_eq!((p.traffic_class(), p.flow_label()), (1, 0xf_ffff));
    }
}

fn udp_view(data: &[u8]) {
    let checked = udp::UdpPacket::new_checked(data).is_ok();
    let mut p = udp::UdpPacket::new_unchecked(data.to_vec());
    let _ = (p.src_port(), p.dst_port(), p.checksum(), p.is_empty());
    if checked {
        assert_eq!(p.payload().len(), usize::from(p.len()) - udp::HEADER_LEN);
    }
    let (a4, b4) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let (a6, b6) = (Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
    let _ = (p.verify_checksum_v4(a4, b4), p.verify_checksum_v6(a6, b6));
    p.fill_checksum_v4(a4, b4);
    if checked {
        assert!(p.verify_checksum_v4(a4, b4));
    }
    p.fill_checksum_v6(a6, b6);
    if checked {
        assert!(p.verify_checksum_v6(a6, b6));
    }
    p.set_src_port(1);
    p.set_dst_port(2);
    p.set_len(3);
    p.set_checksum(4);
    let _ = p.payload_mut();
}

fn esp_view(data: &[u8]) {
    let checked = esp::EspPacket::new_checked(data).is_ok();
    assert_eq!(checked, data.len() >= esp::MIN_LEN);
    let mut p = esp::EspPacket::new_unchecked(data.to_vec());
    let _ = (p.spi(), p.seq(), p.iv(), p.header_bytes(), p.icv());
    if checked {
        assert_eq!(
            p.ciphertext().len(),
            data.len() - esp::MIN_LEN + esp::TRAILER_LEN
        );
        assert_eq!(p.icv().len(), esp::ICV_LEN);
    }
    if let Ok(t) = esp::read_trailer(p.ciphertext()) {
        assert_eq!(
            t.payload_len + t.pad_len + esp::TRAILER_LEN,
            p.ciphertext().len()
        );
    }
    let _ = esp::read_trailer(data);
    p.set_spi(1);
    p.set_seq(2);
    p.set_iv([3; 8]);
    let s = p.sections_mut();
    assert_eq!(
        s.header.len() + s.iv.len() + s.ciphertext.len() + s.icv.len(),
        data.len()
    );
    let pad = esp::pad_len(data.len());
    assert!(pad < 4 && (data.len() + pad + esp::TRAILER_LEN) % 4 == 0);
}
