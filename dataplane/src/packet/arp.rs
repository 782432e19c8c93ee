//! ARP for IPv4 over Ethernet (RFC 826).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Hardware type (1)         |     Protocol type (0x0800)    |
//! | HW len (6)    | Proto len (4) |          Operation            |
//! |            Sender hardware address (6) ...                    |
//! |  ... SHA      |  Sender protocol address (4) ...              |
//! |  ... SPA      |  Target hardware address (6) ...              |
//! |            ... THA            |  Target protocol address (4)  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::{Error, Result};
use std::net::Ipv4Addr;
use zerocopy::network_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Length of an Ethernet/IPv4 ARP packet (without Ethernet padding).
pub const PACKET_LEN: usize = 28;

/// Hardware type Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;

/// Protocol type IPv4 (the IPv4 EtherType).
pub const PTYPE_IPV4: u16 = 0x0800;

/// ARP operation codes.
pub mod op {
    /// Request (who has the target protocol address?).
    pub const REQUEST: u16 = 1;
    /// Reply (the sender has the sender protocol address).
    pub const REPLY: u16 = 2;
}

/// Wire layout of an Ethernet/IPv4 ARP packet.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct ArpHeader {
    /// Hardware type (1 = Ethernet).
    pub htype: U16,
    /// Protocol type (0x0800 = IPv4).
    pub ptype: U16,
    /// Hardware address length (6).
    pub hlen: u8,
    /// Protocol address length (4).
    pub plen: u8,
    /// Operation (1 request, 2 reply).
    pub oper: U16,
    /// Sender hardware address.
    pub sha: [u8; 6],
    /// Sender protocol address.
    pub spa: [u8; 4],
    /// Target hardware address.
    pub tha: [u8; 6],
    /// Target protocol address.
    pub tpa: [u8; 4],
}

header_view! {
    /// A view of an Ethernet/IPv4 ARP packet over a byte buffer.
    ArpPacket => ArpHeader
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buf`, checking that it holds 28 bytes of ARP for IPv4 over
    /// Ethernet (hardware type 1, protocol 0x0800, lengths 6 and 4).
    /// Longer buffers (Ethernet padding) are accepted.
    #[inline]
    pub fn new_checked(buf: T) -> Result<Self> {
        let (h, _) = ArpHeader::ref_from_prefix(buf.as_ref()).map_err(|_| Error::Truncated)?;
        if h.htype.get() != HTYPE_ETHERNET
            || h.ptype.get() != PTYPE_IPV4
            || h.hlen != 6
            || h.plen != 4
        {
            return Err(Error::Malformed);
        }
        Ok(Self { buffer: buf })
    }

    /// Operation (1 request, 2 reply).
    #[inline]
    pub fn operation(&self) -> u16 {
        self.header().map_or(0, |h| h.oper.get())
    }

    /// Sender hardware (MAC) address.
    #[inline]
    pub fn sender_mac(&self) -> [u8; 6] {
        self.header().map_or([0; 6], |h| h.sha)
    }

    /// Sender protocol (IPv4) address.
    #[inline]
    pub fn sender_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.header().map_or([0; 4], |h| h.spa))
    }

    /// Target hardware (MAC) address.
    #[inline]
    pub fn target_mac(&self) -> [u8; 6] {
        self.header().map_or([0; 6], |h| h.tha)
    }

    /// Target protocol (IPv4) address.
    #[inline]
    pub fn target_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.header().map_or([0; 4], |h| h.tpa))
    }

    /// True for a request whose sender and target addresses are equal
    /// (a gratuitous ARP / RFC 5227 announcement).
    #[inline]
    pub fn is_gratuitous(&self) -> bool {
        self.header().is_some_and(|h| h.spa == h.tpa)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets the operation.
    #[inline]
    pub fn set_operation(&mut self, oper: u16) {
        if let Some(h) = self.header_mut() {
            h.oper.set(oper);
        }
    }

    /// Sets the sender MAC and IPv4 address.
    #[inline]
    pub fn set_sender(&mut self, mac: [u8; 6], ip: Ipv4Addr) {
        if let Some(h) = self.header_mut() {
            h.sha = mac;
            h.spa = ip.octets();
        }
    }

    /// Sets the target MAC and IPv4 address.
    #[inline]
    pub fn set_target(&mut self, mac: [u8; 6], ip: Ipv4Addr) {
        if let Some(h) = self.header_mut() {
            h.tha = mac;
            h.tpa = ip.octets();
        }
    }
}

/// Writes a 28-byte Ethernet/IPv4 ARP packet at the start of `buf`
/// (Err(Truncated) if short).
#[inline]
pub fn write_packet(
    buf: &mut [u8],
    oper: u16,
    sender: ([u8; 6], Ipv4Addr),
    target: ([u8; 6], Ipv4Addr),
) -> Result<()> {
    ArpHeader {
        htype: U16::new(HTYPE_ETHERNET),
        ptype: U16::new(PTYPE_IPV4),
        hlen: 6,
        plen: 4,
        oper: U16::new(oper),
        sha: sender.0,
        spa: sender.1.octets(),
        tha: target.0,
        tpa: target.1.octets(),
    }
    .write_to_prefix(buf)
    .map_err(|_| Error::Truncated)
}

/// Writes at the start of `buf` the reply to `request` from `our_mac`:
/// the sender becomes `our_mac` with the address the request asked for,
/// the target is the requester's MAC and address (RFC 826, "swap the
/// sender and target fields"). Err(Malformed) if `request` is not a
/// request, Err(Truncated) if `buf` is short.
#[inline]
pub fn write_reply<T: AsRef<[u8]>>(
    buf: &mut [u8],
    request: &ArpPacket<T>,
    our_mac: [u8; 6],
) -> Result<()> {
    if request.operation() != op::REQUEST {
        return Err(Error::Malformed);
    }
    write_packet(
        buf,
        op::REPLY,
        (our_mac, request.target_ip()),
        (request.sender_mac(), request.sender_ip()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // "Who has 192.168.1.1? Tell 192.168.1.10" from 52:54:00:12:34:56,
    // as a capture shows it after the Ethernet header.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // Ethernet, IPv4, 6, 4, request
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 192, 168, 1, 10, // sender
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 168, 1, 1, // target
    ];

    #[test]
    fn known_layout() {
        assert_eq!(core::mem::size_of::<ArpHeader>(), PACKET_LEN);
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.operation(), op::REQUEST);
        assert_eq!(p.sender_mac(), [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(p.sender_ip(), Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(p.target_mac(), [0; 6]);
        assert_eq!(p.target_ip(), Ipv4Addr::new(192, 168, 1, 1));
        assert!(!p.is_gratuitous());
        let mut b = [0u8; PACKET_LEN];
        write_packet(
            &mut b,
            op::REQUEST,
            (p.sender_mac(), p.sender_ip()),
            ([0; 6], p.target_ip()),
        )
        .unwrap();
        assert_eq!(b, REQUEST);
    }

    #[test]
    fn reply_swaps_sender_and_target() {
        let req = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        let ours = [0x02, 0, 0, 0, 0, 1];
        // Padded to the Ethernet minimum: the view ignores the tail.
        let mut b = [0xeeu8; 46];
        write_reply(&mut b, &req, ours).unwrap();
        let r = ArpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(r.operation(), op::REPLY);
        assert_eq!(
            (r.sender_mac(), r.sender_ip()),
            (ours, Ipv4Addr::new(192, 168, 1, 1))
        );
        assert_eq!(
            (r.target_mac(), r.target_ip()),
            (req.sender_mac(), req.sender_ip())
        );
        // A reply is not answered.
        assert_eq!(write_reply(&mut [0u8; 28], &r, ours), Err(Error::Malformed));
    }

    #[test]
    fn rejects_other_hardware_and_protocols() {
        for (i, v) in [(1, 6), (3, 0x86), (4, 8), (5, 16)] {
            let mut b = REQUEST;
            b[i] = v;
            assert_eq!(
                ArpPacket::new_checked(&b[..]),
                Err(Error::Malformed),
                "byte {i}"
            );
        }
    }

    #[test]
    fn truncated_at_every_length() {
        for n in 0..PACKET_LEN {
            assert_eq!(ArpPacket::new_checked(&REQUEST[..n]), Err(Error::Truncated));
            let mut short = REQUEST[..n].to_vec();
            assert_eq!(
                write_packet(
                    &mut short,
                    1,
                    ([0; 6], Ipv4Addr::UNSPECIFIED),
                    ([0; 6], Ipv4Addr::UNSPECIFIED)
                ),
                Err(Error::Truncated)
            );
            let mut p = ArpPacket::new_unchecked(short);
            assert_eq!(
                (p.operation(), p.sender_mac(), p.target_ip()),
                (0, [0; 6], Ipv4Addr::UNSPECIFIED)
            );
            assert!(!p.is_gratuitous());
            p.set_operation(2);
            p.set_sender([1; 6], Ipv4Addr::LOCALHOST);
            p.set_target([1; 6], Ipv4Addr::LOCALHOST);
        }
    }

    proptest! {
        #[test]
        fn build_parse_round_trip(
            oper in any::<u16>(), sha in any::<[u8; 6]>(), spa in any::<[u8; 4]>(),
            tha in any::<[u8; 6]>(), tpa in any::<[u8; 4]>(), pad in 0usize..20,
        ) {
            let mut b = vec![0u8; PACKET_LEN + pad];
            write_packet(&mut b, oper, (sha, spa.into()), (tha, tpa.into())).unwrap();
            let p = ArpPacket::new_checked(&b[..]).unwrap();
            prop_assert_eq!(p.operation(), oper);
            prop_assert_eq!((p.sender_mac(), p.sender_ip()), (sha, Ipv4Addr::from(spa)));
            prop_assert_eq!((p.target_mac(), p.target_ip()), (tha, Ipv4Addr::from(tpa)));
            prop_assert_eq!(p.is_gratuitous(), spa == tpa);
            // An all-zero buffer is not Ethernet/IPv4 ARP.
            prop_assert_eq!(ArpPacket::new_checked(&[0u8; PACKET_LEN][..]).err(), Some(Error::Malformed));
            // The setters write the same bytes as `write_packet`.
            let mut v = vec![0u8; PACKET_LEN];
            write_packet(&mut v, 0, ([0; 6], Ipv4Addr::UNSPECIFIED), ([0; 6], Ipv4Addr::UNSPECIFIED)).unwrap();
            let mut q = ArpPacket::new_checked(v).unwrap();
            q.set_operation(oper);
            q.set_sender(sha, spa.into());
            q.set_target(tha, tpa.into());
            prop_assert_eq!(&q.into_inner()[..], &b[..PACKET_LEN]);
        }

        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let checked = ArpPacket::new_checked(&data[..]).is_ok();
            prop_assert!(!checked || data.len() >= PACKET_LEN);
            let p = ArpPacket::new_unchecked(&data[..]);
            let _ = (p.operation(), p.sender_mac(), p.sender_ip(), p.target_mac(), p.target_ip(), p.is_gratuitous());
            let mut out = [0u8; PACKET_LEN];
            let r = write_reply(&mut out, &p, [2; 6]);
            prop_assert_eq!(r.is_ok(), data.len() >= PACKET_LEN && p.operation() == op::REQUEST);
        }
    }
}
