//! IEEE 802.1Q VLAN tags and 802.1ad (QinQ) double tagging.
//!
//! A tag sits after the Ethernet addresses: the Ethernet header's EtherType
//! field holds the TPID (0x8100 or 0x88A8), and the 4-byte tag viewed here
//! holds the TCI (PCP, DEI, VID) and the EtherType of what follows.

use super::ethernet::{self, ethertype, EthernetHeader};
use super::{Error, Result};
use zerocopy::network_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Length of one VLAN tag after the TPID (TCI + inner EtherType).
pub const TAG_LEN: usize = 4;

/// Largest VLAN identifier (12 bits; 4095 is reserved).
pub const MAX_VID: u16 = 0x0fff;

/// Wire layout of the tag following a TPID.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct VlanHeader {
    /// Tag control information: PCP (3 bits), DEI (1 bit), VID (12 bits).
    pub tci: U16,
    /// EtherType of the payload (or the next TPID).
    pub ethertype: U16,
}

header_view! {
    /// A view of one VLAN tag (the 4 bytes after a TPID) over a byte buffer.
    VlanTag => VlanHeader
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wraps `buf`, checking that it holds a whole tag.
    #[inline]
    pub fn new_checked(buf: T) -> Result<Self> {
        if buf.as_ref().len() < TAG_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer: buf })
    }

    #[inline]
    fn tci(&self) -> u16 {
        self.header().map_or(0, |h| h.tci.get())
    }

    /// Priority code point (802.1p class, 0-7).
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN identifier (12 bits).
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & MAX_VID
    }

    /// EtherType of what follows the tag.
    #[inline]
    pub fn inner_ethertype(&self) -> u16 {
        self.header().map_or(0, |h| h.ethertype.get())
    }

    /// Bytes after the tag.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(TAG_LEN..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    #[inline]
    fn update_tci(&mut self, mask: u16, bits: u16) {
        if let Some(h) = self.header_mut() {
            h.tci.set((h.tci.get() & !mask) | (bits & mask));
        }
    }

    /// Sets the priority code point (only the low 3 bits are used).
    #[inline]
    pub fn set_pcp(&mut self, pcp: u8) {
        self.update_tci(0xe000, u16::from(pcp) << 13);
    }

    /// Sets the drop eligible indicator.
    #[inline]
    pub fn set_dei(&mut self, dei: bool) {
        self.update_tci(0x1000, if dei { 0x1000 } else { 0 });
    }

    /// Sets the VLAN identifier (only the low 12 bits are used).
    #[inline]
    pub fn set_vid(&mut self, vid: u16) {
        self.update_tci(MAX_VID, vid);
    }

    /// Sets the EtherType of what follows the tag.
    #[inline]
    pub fn set_inner_ethertype(&mut self, ethertype: u16) {
        if let Some(h) = self.header_mut() {
            h.ethertype.set(ethertype);
        }
    }

    /// Bytes after the tag, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut().get_mut(TAG_LEN..).unwrap_or(&mut [])
    }
}

/// Writes a 4-byte tag (TCI + inner EtherType) at the start of `buf`
/// (Err(Truncated) if short, Err(Malformed) if `pcp` > 7 or `vid` > 4095).
#[inline]
pub fn write_tag(buf: &mut [u8], pcp: u8, dei: bool, vid: u16, inner_ethertype: u16) -> Result<()> {
    if pcp > 7 || vid > MAX_VID {
        return Err(Error::Malformed);
    }
    let tci = u16::from(pcp) << 13 | u16::from(dei) << 12 | vid;
    VlanHeader {
        tci: U16::new(tci),
        ethertype: U16::new(inner_ethertype),
    }
    .write_to_prefix(buf)
    .map_err(|_| Error::Truncated)
}

/// What `parse_l2` found in front of the L3 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Info {
    /// Bytes of Ethernet header plus VLAN tags (14, 18 or 22).
    pub header_len: usize,
    /// EtherType of the L3 payload, after any tags.
    pub ethertype: u16,
    /// VIDs of the outer (`[0]`) and inner (`[1]`) tags, if present.
    pub vlans: [Option<u16>; 2],
}

#[inline]
fn is_tpid(et: u16) -> bool {
    et == ethertype::VLAN || et == ethertype::QINQ
}

/// Parses the L2 header including up to two VLAN tags: returns (l2 header length, final ethertype, outer vid if any).
///
/// Either TPID (0x8100 or 0x88A8) is accepted at either position. A third
/// tag is `Err(Malformed)`; a buffer that ends inside a tag is
/// `Err(Truncated)`.
#[inline]
pub fn parse_l2(buf: &[u8]) -> Result<L2Info> {
    let (eth, mut rest) = EthernetHeader::ref_from_prefix(buf).map_err(|_| Error::Truncated)?;
    let mut info = L2Info {
        header_len: ethernet::HEADER_LEN,
        ethertype: eth.ethertype.get(),
        vlans: [None; 2],
    };
    for slot in info.vlans.iter_mut() {
        if !is_tpid(info.ethertype) {
            return Ok(info);
        }
        let (tag, after) = VlanHeader::ref_from_prefix(rest).map_err(|_| Error::Truncated)?;
        *slot = Some(tag.tci.get() & MAX_VID);
        info.ethertype = tag.ethertype.get();
        info.header_len += TAG_LEN;
        rest = after;
    }
    if is_tpid(info.ethertype) {
        return Err(Error::Malformed);
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // QinQ frame: S-tag VID 100 (PCP 3), C-tag VID 200 (PCP 5, DEI), IPv4.
    const QINQ_FRAME: [u8; 24] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, // dst
        0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, // src
        0x88, 0xa8, // S-tag TPID
        0x60, 0x64, // PCP 3, DEI 0, VID 100
        0x81, 0x00, // C-tag TPID
        0xb0, 0xc8, // PCP 5, DEI 1, VID 200
        0x08, 0x00, // IPv4
        0x45, 0x00, // start of the IPv4 header
    ];

    #[test]
    fn known_layout() {
        assert_eq!(core::mem::size_of::<VlanHeader>(), TAG_LEN);
        let outer = VlanTag::new_checked(&QINQ_FRAME[14..]).unwrap();
        assert_eq!(outer.pcp(), 3);
        assert!(!outer.dei());
        assert_eq!(outer.vid(), 100);
        assert_eq!(outer.inner_ethertype(), ethertype::VLAN);
        let inner = VlanTag::new_checked(outer.payload()).unwrap();
        assert_eq!(inner.pcp(), 5);
        assert!(inner.dei());
        assert_eq!(inner.vid(), 200);
        assert_eq!(inner.inner_ethertype(), ethertype::IPV4);
        assert_eq!(inner.payload(), &[0x45, 0x00]);
    }

    #[test]
    fn parse_l2_untagged_single_double() {
        let mut plain = [0u8; 16];
        plain[12..14].copy_from_slice(&ethertype::IPV6.to_be_bytes());
        assert_eq!(
            parse_l2(&plain),
            Ok(L2Info {
                header_len: 14,
                ethertype: ethertype::IPV6,
                vlans: [None, None]
            })
        );

        let mut single = [0u8; 18];
        single[12..14].copy_from_slice(&ethertype::VLAN.to_be_bytes());
        single[14..16].copy_from_slice(&0x0ffeu16.to_be_bytes());
        single[16..18].copy_from_slice(&ethertype::MPLS.to_be_bytes());
        assert_eq!(
            parse_l2(&single),
            Ok(L2Info {
                header_len: 18,
                ethertype: ethertype::MPLS,
                vlans: [Some(4094), None]
            })
        );

        assert_eq!(
            parse_l2(&QINQ_FRAME),
            Ok(L2Info {
                header_len: 22,
                ethertype: ethertype::IPV4,
                vlans: [Some(100), Some(200)]
            })
        );
    }

    #[test]
    fn parse_l2_rejects_third_tag() {
        let mut triple = QINQ_FRAME;
        triple[20..22].copy_from_slice(&ethertype::VLAN.to_be_bytes());
        assert_eq!(parse_l2(&triple), Err(Error::Malformed));
    }

    #[test]
    fn truncated_at_every_length() {
        for n in 0..22 {
            assert!(parse_l2(&QINQ_FRAME[..n]).is_err(), "len {n}");
        }
        for n in 0..TAG_LEN {
            let b = &QINQ_FRAME[14..14 + n];
            assert_eq!(VlanTag::new_checked(b), Err(Error::Truncated));
            let mut short = b.to_vec();
            assert_eq!(
                write_tag(&mut short, 0, false, 1, 0x0800),
                Err(Error::Truncated)
            );
            let mut t = VlanTag::new_unchecked(short);
            assert_eq!(
                (t.pcp(), t.dei(), t.vid(), t.inner_ethertype()),
                (0, false, 0, 0)
            );
            t.set_vid(5);
            t.set_pcp(1);
            t.set_dei(true);
            t.set_inner_ethertype(1);
            assert!(t.payload().is_empty() && t.payload_mut().is_empty());
        }
    }

    #[test]
    fn write_tag_rejects_out_of_range() {
        let mut b = [0u8; 4];
        assert_eq!(write_tag(&mut b, 8, false, 1, 0), Err(Error::Malformed));
        assert_eq!(write_tag(&mut b, 0, false, 4096, 0), Err(Error::Malformed));
    }

    proptest! {
        #[test]
        fn build_parse_round_trip(
            pcp in 0u8..8, dei in any::<bool>(), vid in 0u16..4096, et in any::<u16>(),
            pcp2 in 0u8..8, dei2 in any::<bool>(), vid2 in 0u16..4096,
        ) {
            let mut b = [0u8; TAG_LEN];
            write_tag(&mut b, pcp, dei, vid, et).unwrap();
            let t = VlanTag::new_checked(&b[..]).unwrap();
            prop_assert_eq!((t.pcp(), t.dei(), t.vid(), t.inner_ethertype()), (pcp, dei, vid, et));

            // Setters change only their own field.
            let mut t = VlanTag::new_checked(&mut b[..]).unwrap();
            t.set_vid(vid2);
            prop_assert_eq!((t.pcp(), t.dei(), t.vid()), (pcp, dei, vid2));
            t.set_pcp(pcp2);
            prop_assert_eq!((t.pcp(), t.dei(), t.vid()), (pcp2, dei, vid2));
            t.set_dei(dei2);
            prop_assert_eq!((t.pcp(), t.dei(), t.vid(), t.inner_ethertype()), (pcp2, dei2, vid2, et));
        }

        #[test]
        fn parse_l2_round_trip(
            tags in proptest::collection::vec((any::<bool>(), 0u16..4096), 0..3),
            et in prop::sample::select(vec![ethertype::IPV4, ethertype::IPV6, ethertype::MPLS, ethertype::ARP]),
        ) {
            let mut buf = vec![0u8; ethernet::HEADER_LEN + TAG_LEN * tags.len() + 4];
            let first = tags.first().map_or(et, |&(s, _)| if s { ethertype::QINQ } else { ethertype::VLAN });
            ethernet::write_header(&mut buf, [1; 6], [2; 6], first).unwrap();
            for (i, &(_, vid)) in tags.iter().enumerate() {
                let next = tags.get(i + 1).map_or(et, |&(s, _)| if s { ethertype::QINQ } else { ethertype::VLAN });
                write_tag(&mut buf[ethernet::HEADER_LEN + TAG_LEN * i..], 0, false, vid, next).unwrap();
            }
            let info = parse_l2(&buf);
            if tags.len() > 2 {
                prop_assert_eq!(info, Err(Error::Malformed));
            } else {
                let info = info.unwrap();
                prop_assert_eq!(info.header_len, ethernet::HEADER_LEN + TAG_LEN * tags.len());
                prop_assert_eq!(info.ethertype, et);
                for i in 0..2 {
                    prop_assert_eq!(info.vlans[i], tags.get(i).map(|&(_, v)| v));
                }
            }
        }
    }
}
