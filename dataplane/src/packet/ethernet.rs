//! Ethernet II frame header (IEEE 802.3 with an EtherType).

use super::{Error, Result};
use zerocopy::network_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Length of the Ethernet header (no FCS, no VLAN tag).
pub const HEADER_LEN: usize = 14;

/// EtherType values the data plane dispatches on.
pub mod ethertype {
    /// Internet Protocol version 4.
    pub const IPV4: u16 = 0x0800;
    /// Internet Protocol version 6.
    pub const IPV6: u16 = 0x86DD;
    /// MPLS unicast (RFC 3032).
    pub const MPLS: u16 = 0x8847;
    /// IEEE 802.1Q VLAN tag (C-tag).
    pub const VLAN: u16 = 0x8100;
    /// IEEE 802.1ad service tag (S-tag, QinQ).
    pub const QINQ: u16 = 0x88A8;
    /// Address Resolution Protocol.
    pub const ARP: u16 = 0x0806;
}

/// Wire layout of the Ethernet header.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct EthernetHeader {
    /// Destination MAC address.
    pub dst: [u8; 6],
    /// Source MAC address.
    pub src: [u8; 6],
    /// EtherType of the payload (or a VLAN TPID).
    pub ethertype: U16,
}

header_view! {
    /// A view of an Ethernet frame over a byte buffer.
    EthernetFrame => EthernetHeader
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buf`, checking that it holds a whole header.
    #[inline]
    pub fn new_checked(buf: T) -> Result<Self> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer: buf })
    }

    /// Destination MAC address.
    #[inline]
    pub fn dst(&self) -> [u8; 6] {
        self.header().map_or([0; 6], |h| h.dst)
    }

    /// Source MAC address.
    #[inline]
    pub fn src(&self) -> [u8; 6] {
        self.header().map_or([0; 6], |h| h.src)
    }

    /// EtherType (or VLAN TPID) field.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        self.header().map_or(0, |h| h.ethertype.get())
    }

    /// Bytes after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC address.
    #[inline]
    pub fn set_dst(&mut self, dst: [u8; 6]) {
        if let Some(h) = self.header_mut() {
            h.dst = dst;
        }
    }

    /// Sets the source MAC address.
    #[inline]
    pub fn set_src(&mut self, src: [u8; 6]) {
        if let Some(h) = self.header_mut() {
            h.src = src;
        }
    }

    /// Sets the EtherType field.
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: u16) {
        if let Some(h) = self.header_mut() {
            h.ethertype.set(ethertype);
        }
    }

    /// Bytes after the header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..)
            .unwrap_or(&mut [])
    }
}

/// Writes a 14-byte Ethernet header at the start of `buf` (Err(Truncated) if short).
#[inline]
pub fn write_header(buf: &mut [u8], dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Result<()> {
    EthernetHeader {
        dst,
        src,
        ethertype: U16::new(ethertype),
    }
    .write_to_prefix(buf)
    .map_err(|_| Error::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Broadcast ARP request header as captured on a LAN.
    const ARP_FRAME: [u8; 16] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // src
        0x08, 0x06, // ARP
        0x00, 0x01, // first payload bytes (hardware type)
    ];

    #[test]
    fn known_layout() {
        assert_eq!(core::mem::size_of::<EthernetHeader>(), HEADER_LEN);
        let f = EthernetFrame::new_checked(&ARP_FRAME[..]).unwrap();
        assert_eq!(f.dst(), [0xff; 6]);
        assert_eq!(f.src(), [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(f.ethertype(), ethertype::ARP);
        assert_eq!(f.payload(), &[0x00, 0x01]);
    }

    #[test]
    fn setters_write_wire_bytes() {
        let mut buf = [0u8; 16];
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_dst([0xff; 6]);
        f.set_src([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        f.set_ethertype(ethertype::ARP);
        f.payload_mut().copy_from_slice(&[0x00, 0x01]);
        assert_eq!(buf, ARP_FRAME);
    }

    #[test]
    fn truncated_at_every_length() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&ARP_FRAME[..n]),
                Err(Error::Truncated)
            );
            let mut short = ARP_FRAME[..n].to_vec();
            assert_eq!(
                write_header(&mut short, [1; 6], [2; 6], 3),
                Err(Error::Truncated)
            );
            // Unchecked views over short buffers answer without panicking.
            let mut f = EthernetFrame::new_unchecked(short);
            assert_eq!(f.ethertype(), 0);
            assert_eq!(f.dst(), [0; 6]);
            assert!(f.payload().is_empty());
            f.set_ethertype(1);
            f.set_dst([1; 6]);
            assert!(f.payload_mut().is_empty());
        }
        assert!(EthernetFrame::new_checked(&ARP_FRAME[..HEADER_LEN]).is_ok());
    }

    proptest! {
        #[test]
        fn build_parse_round_trip(
            dst in any::<[u8; 6]>(),
            src in any::<[u8; 6]>(),
            et in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut buf = vec![0u8; HEADER_LEN + payload.len()];
            write_header(&mut buf, dst, src, et).unwrap();
            buf[HEADER_LEN..].copy_from_slice(&payload);
            let f = EthernetFrame::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(f.dst(), dst);
            prop_assert_eq!(f.src(), src);
            prop_assert_eq!(f.ethertype(), et);
            prop_assert_eq!(f.payload(), &payload[..]);
            let mut g = EthernetFrame::new_unchecked(vec![0u8; HEADER_LEN]);
            g.set_dst(dst);
            g.set_src(src);
            g.set_ethertype(et);
            prop_assert_eq!(&g.into_inner()[..], &buf[..HEADER_LEN]);
        }
    }
}
