//! IPv6 fixed header (RFC 8200 §3). Extension headers are payload here.

use super::{Error, Result};
use std::net::Ipv6Addr;
use zerocopy::network_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// Largest payload length the 16-bit field can hold (no jumbograms).
pub const MAX_PAYLOAD_LEN: usize = u16::MAX as usize;

const FLOW_LABEL_MASK: u32 = 0x000f_ffff;

/// Wire layout of the IPv6 fixed header.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct Ipv6Header {
    /// Version (4 bits), traffic class (8 bits), flow label (20 bits).
    pub ver_tc_flow: U32,
    /// Length of everything after the fixed header, in bytes.
    pub payload_len: U16,
    /// Protocol or extension header that follows.
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
}

header_view! {
    /// A view of an IPv6 packet over a byte buffer.
    Ipv6Packet => Ipv6Header
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buf`, checking version 6 and 40 + payload length <= buffer
    /// length. The buffer may be longer (Ethernet padding); `payload` ends
    /// at the payload length.
    #[inline]
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        let (h, _) = Ipv6Header::ref_from_prefix(b).map_err(|_| Error::Truncated)?;
        if h.ver_tc_flow.get() >> 28 != 6 {
            return Err(Error::Malformed);
        }
        if HEADER_LEN + usize::from(h.payload_len.get()) > b.len() {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer: buf })
    }

    #[inline]
    fn ver_tc_flow(&self) -> u32 {
        self.header().map_or(0, |h| h.ver_tc_flow.get())
    }

    /// Version field (6 for a checked view).
    #[inline]
    pub fn version(&self) -> u8 {
        (self.ver_tc_flow() >> 28) as u8
    }

    /// Traffic class (DSCP and ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & FLOW_LABEL_MASK
    }

    /// Payload length field, in bytes.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        self.header().map_or(0, |h| h.payload_len.get())
    }

    /// Next header (protocol or extension header).
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.header().map_or(0, |h| h.next_header)
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.header().map_or(0, |h| h.hop_limit)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.header().map_or([0; 16], |h| h.src))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.header().map_or([0; 16], |h| h.dst))
    }

    /// Payload: bytes `40..40 + payload_len` (Ethernet padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        self.buffer.as_ref().get(HEADER_LEN..end).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    #[inline]
    fn update_ver_tc_flow(&mut self, mask: u32, bits: u32) {
        if let Some(h) = self.header_mut() {
            h.ver_tc_flow
                .set((h.ver_tc_flow.get() & !mask) | (bits & mask));
        }
    }

    /// Sets the traffic class.
    #[inline]
    pub fn set_traffic_class(&mut self, tc: u8) {
        self.update_ver_tc_flow(0x0ff0_0000, u32::from(tc) << 20);
    }

    /// Sets the flow label (only the low 20 bits are used).
    #[inline]
    pub fn set_flow_label(&mut self, flow: u32) {
        self.update_ver_tc_flow(FLOW_LABEL_MASK, flow);
    }

    /// Sets the payload length field.
    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        if let Some(h) = self.header_mut() {
            h.payload_len.set(len);
        }
    }

    /// Sets the next header field.
    #[inline]
    pub fn set_next_header(&mut self, next_header: u8) {
        if let Some(h) = self.header_mut() {
            h.next_header = next_header;
        }
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        if let Some(h) = self.header_mut() {
            h.hop_limit = hop_limit;
        }
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        if let Some(h) = self.header_mut() {
            h.src = addr.octets();
        }
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        if let Some(h) = self.header_mut() {
            h.dst = addr.octets();
        }
    }

    /// Decrements the hop limit. Returns false, changing nothing, if it is
    /// 0 or 1: the packet must not be forwarded.
    #[inline]
    pub fn decrement_hop_limit(&mut self) -> bool {
        match self.header_mut() {
            Some(h) if h.hop_limit > 1 => {
                h.hop_limit -= 1;
                true
            }
            _ => false,
        }
    }

    /// Payload (`40..40 + payload_len`), writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..end)
            .unwrap_or(&mut [])
    }
}

/// Writes a 40-byte header (flow label 0) at buf[..40].
///
/// Err(Truncated) if `buf` is shorter than 40 bytes, Err(Malformed) if
/// `payload_len` exceeds 65535.
#[inline]
pub fn write_header(
    buf: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    payload_len: usize,
    hop_limit: u8,
    traffic_class: u8,
) -> Result<()> {
    let len = u16::try_from(payload_len).map_err(|_| Error::Malformed)?;
    Ipv6Header {
        ver_tc_flow: U32::new(6 << 28 | u32::from(traffic_class) << 20),
        payload_len: U16::new(len),
        next_header,
        hop_limit,
        src: src.octets(),
        dst: dst.octets(),
    }
    .write_to_prefix(buf)
    .map_err(|_| Error::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Captured ICMPv6 echo request header: fe80::1 -> ff02::1, TC 0xb8,
    // flow label 0x12345, payload 8 bytes, hop limit 64.
    const CAPTURED: [u8; 40] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x08, 0x3a, 0x40, // ver/tc/flow, len, nh, hl
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // src
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // dst
    ];

    fn captured_packet() -> Vec<u8> {
        let mut p = CAPTURED.to_vec();
        p.extend_from_slice(&[0x80, 0, 0x12, 0x34, 0, 1, 0, 1]);
        p
    }

    #[test]
    fn known_layout() {
        assert_eq!(core::mem::size_of::<Ipv6Header>(), HEADER_LEN);
        let buf = captured_packet();
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), 58);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "fe80::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "ff02::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload(), &buf[40..]);
    }

    #[test]
    fn setters_reproduce_capture() {
        let mut b = [0u8; 40];
        write_header(
            &mut b,
            "fe80::1".parse().unwrap(),
            "ff02::1".parse().unwrap(),
            58,
            8,
            64,
            0xb8,
        )
        .unwrap();
        let mut p = Ipv6Packet::new_unchecked(&mut b[..]);
        p.set_flow_label(0x12345);
        assert_eq!(b, CAPTURED);
    }

    #[test]
    fn rejects_bad_fields() {
        let mut b = captured_packet();
        b[0] = 0x4b;
        assert_eq!(Ipv6Packet::new_checked(&b[..]), Err(Error::Malformed));
        b[0] = 0x6b;
        b[5] = 9; // payload length beyond the buffer
        assert_eq!(Ipv6Packet::new_checked(&b[..]), Err(Error::Truncated));
        let mut h = [0u8; 40];
        let a = Ipv6Addr::LOCALHOST;
        assert_eq!(
            write_header(&mut h, a, a, 17, 65536, 64, 0),
            Err(Error::Malformed)
        );
        assert_eq!(
            write_header(&mut h[..39], a, a, 17, 0, 64, 0),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn hop_limit_decrement_refuses_expiry() {
        let mut b = captured_packet();
        let mut p = Ipv6Packet::new_checked(&mut b[..]).unwrap();
        p.set_hop_limit(2);
        assert!(p.decrement_hop_limit());
        assert_eq!(p.hop_limit(), 1);
        assert!(!p.decrement_hop_limit());
        assert_eq!(p.hop_limit(), 1);
        p.set_hop_limit(0);
        assert!(!p.decrement_hop_limit());
    }

    #[test]
    fn truncated_at_every_length() {
        let buf = captured_packet();
        for n in 0..buf.len() {
            assert!(Ipv6Packet::new_checked(&buf[..n]).is_err(), "len {n}");
            let mut short = buf[..n].to_vec();
            let mut p = Ipv6Packet::new_unchecked(&mut short[..]);
            let _ = (
                p.version(),
                p.flow_label(),
                p.payload_len(),
                p.src_addr(),
                p.payload(),
            );
            p.set_flow_label(1);
            p.set_hop_limit(1);
            p.decrement_hop_limit();
            let _ = p.payload_mut();
        }
    }

    proptest! {
        #[test]
        fn build_parse_round_trip(
            src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), nh in any::<u8>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64), pad in 0usize..16,
            hl in any::<u8>(), tc in any::<u8>(), flow in 0u32..=FLOW_LABEL_MASK,
        ) {
            let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            let mut buf = vec![0u8; HEADER_LEN + payload.len() + pad];
            write_header(&mut buf, src, dst, nh, payload.len(), hl, tc).unwrap();
            buf[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(&payload);
            let mut p = Ipv6Packet::new_checked(&mut buf[..]).unwrap();
            p.set_flow_label(flow);
            prop_assert_eq!(p.version(), 6);
            prop_assert_eq!(p.src_addr(), src);
            prop_assert_eq!(p.dst_addr(), dst);
            prop_assert_eq!(p.next_header(), nh);
            prop_assert_eq!(p.hop_limit(), hl);
            prop_assert_eq!(p.traffic_class(), tc);
            prop_assert_eq!(p.flow_label(), flow);
            prop_assert_eq!(usize::from(p.payload_len()), payload.len());
            prop_assert_eq!(p.payload(), &payload[..]);

            let mut q = Ipv6Packet::new_unchecked(vec![0x60u8; HEADER_LEN]);
            q.set_traffic_class(0);
            q.set_flow_label(0);
            q.set_src_addr(src);
            q.set_dst_addr(dst);
            q.set_next_header(nh);
            q.set_hop_limit(hl);
            q.set_traffic_class(tc);
            q.set_flow_label(flow);
            q.set_payload_len(payload.len() as u16);
            prop_assert_eq!(&q.into_inner()[..], &buf[..HEADER_LEN]);
        }
    }
}
