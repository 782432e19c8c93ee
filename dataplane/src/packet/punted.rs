//! A punted frame: what the data plane hands the control thread, exactly
//! as it arrived, starting at the Ethernet header.
//!
//! [`PuntedFrame::parse`] reads the Ethernet header, skips up to two
//! 802.1Q / 802.1ad tags, then takes either ARP, IPv4, or an MPLS label
//! stack (at most [`MAX_LABELS`] entries, through the one with S=1)
//! followed by IPv4. The IPv4 header is checked (version, lengths,
//! header checksum) so that services can trust it; ARP is left to
//! [`super::arp::ArpPacket::new_checked`]. Every refusal is a
//! [`PuntError`]; nothing here panics or allocates.

use super::ethernet::{self, ethertype};
use super::ipv4::Ipv4Packet;
use super::mpls::{self, MplsEntry};
use super::vlan;
use super::Error;

/// Most label stack entries a punted frame may carry in front of IPv4.
pub const MAX_LABELS: usize = 8;

/// Why a punted frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PuntError {
    /// The frame ends inside a header (Ethernet, tag, label, IPv4 header
    /// or the IPv4 total length).
    #[error("truncated")]
    Truncated,
    /// More than two VLAN tags.
    #[error("more than two VLAN tags")]
    TooManyTags,
    /// An EtherType other than ARP, IPv4 or MPLS (after any tags).
    #[error("ethertype {0:#06x} is not ARP, IPv4 or MPLS")]
    BadEthertype(u16),
    /// More than [`MAX_LABELS`] label stack entries without S=1.
    #[error("more than {MAX_LABELS} labels")]
    TooManyLabels,
    /// The packet after the Ethernet header or label stack is not IPv4.
    #[error("IP version {0}")]
    BadIpVersion(u8),
    /// IHL below 5, or a total length below the header length.
    #[error("bad IPv4 header or total length")]
    BadIpLength,
    /// The IPv4 header checksum is wrong.
    #[error("bad IPv4 header checksum")]
    BadChecksum,
}

/// What follows the link layer and label stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L3Kind {
    /// An ARP packet (never behind labels).
    Arp,
    /// An IPv4 packet whose header was checked.
    Ipv4,
}

/// A parsed punted frame; borrows the frame's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PuntedFrame<'a> {
    frame: &'a [u8],
    /// Destination MAC address.
    pub dst_mac: [u8; 6],
    /// Source MAC address.
    pub src_mac: [u8; 6],
    /// Ethernet header plus tags, in bytes (14, 18 or 22).
    pub l2_len: usize,
    /// VIDs of the outer and inner tags, if present.
    pub vlans: [Option<u16>; 2],
    labels: [MplsEntry; MAX_LABELS],
    label_count: usize,
    /// Offset of the ARP or IPv4 header in the frame.
    pub l3_offset: usize,
    /// Whether ARP or IPv4 starts at `l3_offset`.
    pub kind: L3Kind,
}

impl<'a> PuntedFrame<'a> {
    /// Parses `frame` (see the module documentation).
    pub fn parse(frame: &'a [u8]) -> Result<Self, PuntError> {
        let l2 = vlan::parse_l2(frame).map_err(|e| match e {
            Error::Truncated => PuntError::Truncated,
            Error::Malformed => PuntError::TooManyTags,
        })?;
        let eth = ethernet::EthernetFrame::new_unchecked(frame);
        let mut p = PuntedFrame {
            frame,
            dst_mac: eth.dst(),
            src_mac: eth.src(),
            l2_len: l2.header_len,
            vlans: l2.vlans,
            labels: [MplsEntry(0); MAX_LABELS],
            label_count: 0,
            l3_offset: l2.header_len,
            kind: L3Kind::Ipv4,
        };
        match l2.ethertype {
            ethertype::ARP => {
                p.kind = L3Kind::Arp;
                return Ok(p);
            }
            ethertype::IPV4 => {}
            ethertype::MPLS => {
                let rest = frame.get(l2.header_len..).unwrap_or(&[]);
                let mut bos = false;
                for (slot, e) in p.labels.iter_mut().zip(mpls::label_stack(rest)) {
                    let e = e.map_err(|_| PuntError::Truncated)?;
                    *slot = e;
                    p.label_count += 1;
                    bos = e.bos();
                }
                if !bos {
                    // The walk stops at the end of the array or of the
                    // buffer: tell which.
                    return Err(if rest.len() > MAX_LABELS * mpls::ENTRY_LEN {
                        PuntError::TooManyLabels
                    } else {
                        PuntError::Truncated
                    });
                }
                p.l3_offset += p.label_count * mpls::ENTRY_LEN;
            }
            other => return Err(PuntError::BadEthertype(other)),
        }
        let l3 = frame.get(p.l3_offset..).unwrap_or(&[]);
        let first = *l3.first().ok_or(PuntError::Truncated)?;
        if first >> 4 != 4 {
            return Err(PuntError::BadIpVersion(first >> 4));
        }
        let ip = Ipv4Packet::new_checked(l3).map_err(|e| match e {
            Error::Truncated => PuntError::Truncated,
            Error::Malformed => PuntError::BadIpLength,
        })?;
        if !ip.verify_checksum() {
            return Err(PuntError::BadChecksum);
        }
        Ok(p)
    }

    /// The label stack entries as received, top first (empty for a frame
    /// that came unlabelled).
    pub fn labels(&self) -> &[MplsEntry] {
        self.labels.get(..self.label_count).unwrap_or(&[])
    }

    /// True if the frame came with an MPLS label stack.
    pub fn is_labelled(&self) -> bool {
        self.label_count > 0
    }

    /// The whole frame.
    pub fn frame(&self) -> &'a [u8] {
        self.frame
    }

    /// The link-layer header (Ethernet and tags).
    pub fn l2_header(&self) -> &'a [u8] {
        self.frame.get(..self.l2_len).unwrap_or(&[])
    }

    /// The ARP or IPv4 bytes: for IPv4 up to its total length (Ethernet
    /// padding excluded), for ARP to the end of the frame.
    pub fn l3(&self) -> &'a [u8] {
        let rest = self.frame.get(self.l3_offset..).unwrap_or(&[]);
        match self.kind {
            L3Kind::Arp => rest,
            L3Kind::Ipv4 => {
                let total = usize::from(Ipv4Packet::new_unchecked(rest).total_len());
                rest.get(..total).unwrap_or(&[])
            }
        }
    }

    /// The IPv4 packet, when the kind is IPv4 (its header checked).
    pub fn ipv4(&self) -> Option<Ipv4Packet<&'a [u8]>> {
        match self.kind {
            L3Kind::Ipv4 => Some(Ipv4Packet::new_unchecked(self.l3())),
            L3Kind::Arp => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{arp, ipv4, udp};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    const DST: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
    const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

    fn ip_udp(pad: usize) -> Vec<u8> {
        let mut p = vec![0u8; 20 + 8 + 4];
        ipv4::write_header(
            &mut p,
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(127, 0, 0, 1),
            ipv4::protocol::UDP,
            12,
            1,
            0,
            0,
        )
        .unwrap();
        udp::write_header(&mut p[20..], 1, 3503, 4).unwrap();
        p.resize(p.len() + pad, 0);
        p
    }

    fn frame(tags: &[u16], labels: &[u32], l3_type: u16, l3: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&DST);
        f.extend_from_slice(&SRC);
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
        for (i, &l) in labels.iter().enumerate() {
            f.extend_from_slice(&MplsEntry::new(l, 0, i + 1 == labels.len(), 1).to_bytes());
        }
        f.extend_from_slice(l3);
        f
    }

    #[test]
    fn plain_tagged_and_labelled() {
        let ip = ip_udp(0);
        let f = frame(&[], &[], ethertype::IPV4, &ip);
        let p = PuntedFrame::parse(&f).unwrap();
        assert_eq!((p.dst_mac, p.src_mac), (DST, SRC));
        assert_eq!((p.l2_len, p.l3_offset, p.kind), (14, 14, L3Kind::Ipv4));
        assert!(p.labels().is_empty() && !p.is_labelled());
        assert_eq!(p.l3(), &ip[..]);
        assert_eq!(p.ipv4().unwrap().dst_addr(), Ipv4Addr::LOCALHOST);

        let f = frame(&[100, 200], &[1000, 16], ethertype::IPV4, &ip_udp(6));
        let p = PuntedFrame::parse(&f).unwrap();
        assert_eq!(p.vlans, [Some(100), Some(200)]);
        assert_eq!((p.l2_len, p.l3_offset), (22, 30));
        assert_eq!(
            p.labels().iter().map(|e| e.label()).collect::<Vec<_>>(),
            [1000, 16]
        );
        assert!(p.labels()[1].bos());
        // Ethernet padding after the IP packet is not part of it.
        assert_eq!(p.l3(), &ip[..]);
        assert_eq!(p.l2_header(), &f[..22]);
        assert_eq!(p.frame(), &f[..]);

        let mut a = vec![0u8; 46];
        arp::write_packet(
            &mut a,
            1,
            (SRC, Ipv4Addr::new(10, 0, 0, 2)),
            ([0; 6], Ipv4Addr::new(10, 0, 0, 1)),
        )
        .unwrap();
        let f = frame(&[7], &[], ethertype::ARP, &a);
        let p = PuntedFrame::parse(&f).unwrap();
        assert_eq!((p.kind, p.l3_offset), (L3Kind::Arp, 18));
        assert_eq!(p.l3().len(), 46);
        assert!(p.ipv4().is_none());
    }

    #[test]
    fn refusals() {
        let ip = ip_udp(0);
        let parse = |f: &[u8]| PuntedFrame::parse(f).map(|p| p.l3_offset);
        assert_eq!(
            parse(&frame(&[1, 2, 3], &[], ethertype::IPV4, &ip)),
            Err(PuntError::TooManyTags)
        );
        assert_eq!(
            parse(&frame(&[], &[], ethertype::IPV6, &ip)),
            Err(PuntError::BadEthertype(0x86dd))
        );
        let nine = [16u32; 9];
        assert_eq!(
            parse(&frame(&[], &nine, ethertype::IPV4, &ip)),
            Err(PuntError::TooManyLabels)
        );
        let eight = [16u32; 8];
        assert!(parse(&frame(&[], &eight, ethertype::IPV4, &ip)).is_ok());
        let mut v6 = ip.clone();
        v6[0] = 0x60;
        assert_eq!(
            parse(&frame(&[], &[16], ethertype::IPV4, &v6)),
            Err(PuntError::BadIpVersion(6))
        );
        let mut bad = ip.clone();
        bad[0] = 0x44;
        assert_eq!(
            parse(&frame(&[], &[], ethertype::IPV4, &bad)),
            Err(PuntError::BadIpLength)
        );
        let mut bad = ip.clone();
        bad[8] ^= 1; // TTL, checksum not updated
        assert_eq!(
            parse(&frame(&[], &[], ethertype::IPV4, &bad)),
            Err(PuntError::BadChecksum)
        );
        // No bottom of stack before the end of the frame.
        let mut f = frame(&[], &[], ethertype::MPLS, &[]);
        f.extend_from_slice(&MplsEntry::new(16, 0, false, 1).to_bytes());
        assert_eq!(parse(&f), Err(PuntError::Truncated));
    }

    #[test]
    fn truncated_at_every_length() {
        for f in [
            frame(&[5], &[1000, 16], ethertype::IPV4, &ip_udp(0)),
            frame(&[], &[], ethertype::IPV4, &ip_udp(0)),
        ] {
            for n in 0..f.len() {
                let r = PuntedFrame::parse(&f[..n]);
                assert!(r.is_err(), "len {n}: {r:?}");
                // Only the length can be what is wrong: the IP header's
                // checksum is checked after its length.
                assert_eq!(r, Err(PuntError::Truncated), "len {n}");
            }
            assert!(PuntedFrame::parse(&f).is_ok());
        }
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(p) = PuntedFrame::parse(&data) {
                prop_assert!(p.l3_offset <= data.len());
                prop_assert!(p.labels().len() <= MAX_LABELS);
                prop_assert_eq!(p.l3_offset, p.l2_len + 4 * p.labels().len());
                if let Some(ip) = p.ipv4() {
                    prop_assert!(ip.verify_checksum());
                    prop_assert_eq!(p.l3().len(), usize::from(ip.total_len()));
                }
            }
        }

        #[test]
        fn mutated_frames_never_panic(
            tags in proptest::collection::vec(0u16..4096, 0..3),
            labels in proptest::collection::vec(16u32..1000, 0..10),
            cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8,
        ) {
            let f = frame(&tags, &labels, ethertype::IPV4, &ip_udp(2));
            let ok = PuntedFrame::parse(&f);
            prop_assert_eq!(ok.is_ok(), tags.len() <= 2 && labels.len() <= MAX_LABELS);
            let _ = PuntedFrame::parse(&f[..cut.index(f.len())]);
            let mut g = f.clone();
            g[flip.index(f.len())] ^= 1 << bit;
            let _ = PuntedFrame::parse(&g);
        }
    }
}
