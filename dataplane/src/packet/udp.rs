//! UDP header (RFC 768) and its checksum over the IPv4 / IPv6 pseudo-header.

use super::checksum;
use super::ipv4::protocol;
use super::{Error, Result};
use std::net::{Ipv4Addr, Ipv6Addr};
use zerocopy::network_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// Wire layout of the UDP header.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct UdpHeader {
    /// Source port.
    pub src_port: U16,
    /// Destination port.
    pub dst_port: U16,
    /// Header plus payload length in bytes.
    pub len: U16,
    /// Checksum (0 = none, IPv4 only).
    pub checksum: U16,
}

header_view! {
    /// A view of a UDP datagram over a byte buffer.
    UdpPacket => UdpHeader
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buf`, checking 8 <= length field <= buffer length. The buffer
    /// may be longer; `payload` ends at the length field.
    #[inline]
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        let (h, _) = UdpHeader::ref_from_prefix(b).map_err(|_| Error::Truncated)?;
        let len = usize::from(h.len.get());
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len > b.len() {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer: buf })
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        self.header().map_or(0, |h| h.src_port.get())
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        self.header().map_or(0, |h| h.dst_port.get())
    }

    /// Length field: header plus payload, in bytes.
    #[inline]
    pub fn len(&self) -> u16 {
        self.header().map_or(0, |h| h.len.get())
    }

    /// True if the length field says there is no payload.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.header().map_or(0, |h| h.checksum.get())
    }

    /// Payload: bytes `8..len`.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let end = usize::from(self.len());
        self.buffer.as_ref().get(HEADER_LEN..end).unwrap_or(&[])
    }

    /// The datagram as the length field delimits it, if the buffer holds it.
    #[inline]
    fn datagram(&self) -> Option<&[u8]> {
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            return None;
        }
        self.buffer.as_ref().get(..len)
    }

    /// True if the sum over pseudo-header and datagram checks out.
    #[inline]
    fn verify_with(&self, pseudo: u32) -> bool {
        match self.datagram() {
            Some(d) => {
                checksum::combine(&[checksum::fold(pseudo), checksum::ones_sum(d)]) == 0xffff
            }
            None => false,
        }
    }

    /// True if the checksum is correct for an IPv4 pseudo-header, or is 0
    /// (checksum not used, allowed over IPv4).
    #[inline]
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.datagram().is_some() && self.checksum() == 0 {
            return true;
        }
        self.verify_with(checksum::pseudo_header_v4(
            src,
            dst,
            protocol::UDP,
            self.len(),
        ))
    }

    /// True if the checksum is correct for an IPv6 pseudo-header. A zero
    /// checksum is rejected (mandatory over IPv6, RFC 8200 §8.1).
    #[inline]
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        if self.checksum() == 0 {
            return false;
        }
        self.verify_with(checksum::pseudo_header_v6(
            src,
            dst,
            protocol::UDP,
            u32::from(self.len()),
        ))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port (checksum not updated).
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        if let Some(h) = self.header_mut() {
            h.src_port.set(port);
        }
    }

    /// Sets the destination port (checksum not updated).
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        if let Some(h) = self.header_mut() {
            h.dst_port.set(port);
        }
    }

    /// Sets the length field (checksum not updated).
    #[inline]
    pub fn set_len(&mut self, len: u16) {
        if let Some(h) = self.header_mut() {
            h.len.set(len);
        }
    }

    /// Sets the checksum field to `csum` as given.
    #[inline]
    pub fn set_checksum(&mut self, csum: u16) {
        if let Some(h) = self.header_mut() {
            h.checksum.set(csum);
        }
    }

    /// Payload (`8..len`), writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..end)
            .unwrap_or(&mut [])
    }

    #[inline]
    fn fill_with(&mut self, pseudo: u32) {
        if self.datagram().is_none() {
            return;
        }
        self.set_checksum(0);
        let Some(d) = self.datagram() else {
            return;
        };
        let c = !checksum::combine(&[checksum::fold(pseudo), checksum::ones_sum(d)]);
        // A computed 0 is sent as 0xffff: 0 means "no checksum".
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// Computes the checksum over the IPv4 pseudo-header and the datagram
    /// (`..len`) and stores it. Does nothing if the buffer is shorter
    /// than the length field.
    #[inline]
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let pseudo = checksum::pseudo_header_v4(src, dst, protocol::UDP, self.len());
        self.fill_with(pseudo);
    }

    /// Computes the checksum over the IPv6 pseudo-header and the datagram
    /// (`..len`) and stores it. Does nothing if the buffer is shorter
    /// than the length field.
    #[inline]
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        let pseudo = checksum::pseudo_header_v6(src, dst, protocol::UDP, u32::from(self.len()));
        self.fill_with(pseudo);
    }
}

/// Writes an 8-byte header with checksum 0 at buf[..8]; length = 8 + payload_len.
///
/// Err(Truncated) if `buf` is shorter than 8 bytes, Err(Malformed) if the
/// length would exceed 65535.
#[inline]
pub fn write_header(
    buf: &mut [u8],
    src_port: u16,
    dst_port: u16,
    payload_len: usize,
) -> Result<()> {
    let len = payload_len
        .checked_add(HEADER_LEN)
        .and_then(|l| u16::try_from(l).ok())
        .ok_or(Error::Malformed)?;
    UdpHeader {
        src_port: U16::new(src_port),
        dst_port: U16::new(dst_port),
        len: U16::new(len),
        checksum: U16::new(0),
    }
    .write_to_prefix(buf)
    .map_err(|_| Error::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_checksum_leaves_a_datagram_longer_than_its_buffer_alone() {
        // Length field 100 over a 12-byte buffer, checksum 0x1234.
        let mut buf = [0, 1, 0, 2, 0, 100, 0x12, 0x34, 9, 9, 9, 9];
        let mut u = UdpPacket::new_unchecked(&mut buf[..]);
        u.fill_checksum_v4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST);
        assert_eq!(u.checksum(), 0x1234);
        u.fill_checksum_v6(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST);
        assert_eq!(u.checksum(), 0x1234);
    }
    use proptest::prelude::*;

    // DNS query 192.168.1.10:53000 -> 192.168.1.1:53 for "example.com" A;
    // its UDP checksum is 0xcb68.
    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);

    fn dns_query() -> Vec<u8> {
        let mut d = vec![0xcf, 0x08, 0x00, 0x35, 0x00, 0x25, 0x00, 0x00];
        d.extend_from_slice(&[0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
        d.extend_from_slice(b"\x07example\x03com\x00");
        d.extend_from_slice(&[0x00, 0x01, 0x00, 0x01]);
        d
    }

    /// Checksum computed the slow way, straight from RFC 768.
    fn reference_v4(d: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        let mut ph = Vec::new();
        ph.extend_from_slice(&src.octets());
        ph.extend_from_slice(&dst.octets());
        ph.extend_from_slice(&[0, 17]);
        ph.extend_from_slice(&(d.len() as u16).to_be_bytes());
        ph.extend_from_slice(d);
        match checksum::internet_checksum(&ph) {
            0 => 0xffff,
            c => c,
        }
    }

    #[test]
    fn known_layout() {
        assert_eq!(core::mem::size_of::<UdpHeader>(), HEADER_LEN);
        let mut d = dns_query();
        assert_eq!(d.len(), 0x25);
        let mut p = UdpPacket::new_checked(&mut d[..]).unwrap();
        assert_eq!(p.src_port(), 53000);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 37);
        assert_eq!(p.payload().len(), 29);
        assert!(p.verify_checksum_v4(SRC, DST)); // 0 = unused over IPv4
        assert!(!p.verify_checksum_v6(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST));
        p.fill_checksum_v4(SRC, DST);
        assert_eq!(p.checksum(), 0xcb68);
        assert_eq!(p.checksum(), reference_v4(&dns_query(), SRC, DST));
        assert!(p.verify_checksum_v4(SRC, DST));
        assert!(!p.verify_checksum_v4(SRC, Ipv4Addr::new(192, 168, 1, 2)));
        p.payload_mut()[0] ^= 1;
        assert!(!p.verify_checksum_v4(SRC, DST));
    }

    #[test]
    fn zero_checksum_is_sent_as_ffff() {
        // Choose a source port that makes the computed checksum 0.
        let mut d = vec![0u8; 8];
        write_header(&mut d, 0, 0, 0).unwrap();
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let mut p = UdpPacket::new_checked(&mut d[..]).unwrap();
        p.fill_checksum_v4(a, b);
        let sport = p.checksum(); // sum + !sum = 0xffff, so the checksum becomes 0
        p.set_src_port(sport);
        p.fill_checksum_v4(a, b);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum_v4(a, b));
    }

    #[test]
    fn rejects_bad_fields() {
        let d = dns_query();
        let mut b = d.clone();
        b[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(UdpPacket::new_checked(&b[..]), Err(Error::Malformed));
        b[4..6].copy_from_slice(&38u16.to_be_bytes());
        assert_eq!(UdpPacket::new_checked(&b[..]), Err(Error::Truncated));
        let mut h = [0u8; 8];
        assert_eq!(write_header(&mut h, 1, 2, 65535 - 7), Err(Error::Malformed));
        assert_eq!(
            write_header(&mut h, 1, 2, usize::MAX),
            Err(Error::Malformed)
        );
        assert_eq!(write_header(&mut h[..7], 1, 2, 0), Err(Error::Truncated));
        // Trailing bytes past the length field are neither payload nor summed.
        let mut padded = d.clone();
        padded.extend_from_slice(&[0xee; 5]);
        let mut p = UdpPacket::new_checked(&mut padded[..]).unwrap();
        assert_eq!(p.payload().len(), 29);
        p.fill_checksum_v4(SRC, DST);
        assert_eq!(p.checksum(), reference_v4(&d, SRC, DST));
    }

    #[test]
    fn truncated_at_every_length() {
        let d = dns_query();
        for n in 0..d.len() {
            assert!(UdpPacket::new_checked(&d[..n]).is_err(), "len {n}");
            let mut short = d[..n].to_vec();
            let mut p = UdpPacket::new_unchecked(&mut short[..]);
            let _ = (p.src_port(), p.len(), p.payload(), p.is_empty());
            assert!(!p.verify_checksum_v6(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST));
            p.fill_checksum_v4(SRC, DST);
            p.fill_checksum_v6(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST);
            let _ = p.payload_mut();
        }
    }

    proptest! {
        #[test]
        fn build_parse_round_trip_v4(
            sport in any::<u16>(), dport in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64), pad in 0usize..8,
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
        ) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let mut buf = vec![0u8; HEADER_LEN + payload.len() + pad];
            write_header(&mut buf, sport, dport, payload.len()).unwrap();
            let mut p = UdpPacket::new_checked(&mut buf[..]).unwrap();
            p.payload_mut().copy_from_slice(&payload);
            p.fill_checksum_v4(src, dst);
            prop_assert_eq!(p.src_port(), sport);
            prop_assert_eq!(p.dst_port(), dport);
            prop_assert_eq!(usize::from(p.len()), HEADER_LEN + payload.len());
            prop_assert_eq!(p.payload(), &payload[..]);
            prop_assert!(p.verify_checksum_v4(src, dst));
            let c = p.checksum();
            let d = &p.into_inner()[..HEADER_LEN + payload.len()];
            let mut zeroed = d.to_vec();
            zeroed[6..8].copy_from_slice(&[0, 0]);
            prop_assert_eq!(c, reference_v4(&zeroed, src, dst));
        }

        #[test]
        fn build_parse_round_trip_v6(
            sport in any::<u16>(), dport in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), flip in any::<prop::sample::Index>(),
        ) {
            let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            let mut buf = vec![0u8; HEADER_LEN + payload.len()];
            write_header(&mut buf, sport, dport, payload.len()).unwrap();
            buf[HEADER_LEN..].copy_from_slice(&payload);
            let mut p = UdpPacket::new_checked(&mut buf[..]).unwrap();
            p.fill_checksum_v6(src, dst);
            prop_assert!(p.checksum() != 0);
            prop_assert!(p.verify_checksum_v6(src, dst));
            // Any single-bit change in the datagram is caught.
            let mut bad = p.into_inner().to_vec();
            // (Not the length field: that changes what is summed.)
            let i = match flip.index(bad.len() - 2) {
                i if i >= 4 => i + 2,
                i => i,
            };
            bad[i] ^= 0x10;
            let q = UdpPacket::new_unchecked(&bad[..]);
            prop_assert!(!q.verify_checksum_v6(src, dst));
        }
    }
}
