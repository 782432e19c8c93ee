//! IPv4 header (RFC 791).

use super::checksum;
use super::{Error, Result};
use std::net::Ipv4Addr;
use zerocopy::network_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// Largest total length the 16-bit field can hold.
pub const MAX_TOTAL_LEN: usize = u16::MAX as usize;

/// IP protocol numbers the data plane dispatches on.
pub mod protocol {
    /// Internet Control Message Protocol.
    pub const ICMP: u8 = 1;
    /// IPv4 in IPv4 (RFC 2003).
    pub const IPV4: u8 = 4;
    /// Transmission Control Protocol.
    pub const TCP: u8 = 6;
    /// User Datagram Protocol.
    pub const UDP: u8 = 17;
    /// IPv6 in IPv4 (RFC 4213).
    pub const IPV6: u8 = 41;
    /// Encapsulating Security Payload (RFC 4303).
    pub const ESP: u8 = 50;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// Wire layout of the fixed 20-byte IPv4 header.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct Ipv4Header {
    /// Version (high nibble) and header length in 32-bit words (low nibble).
    pub ver_ihl: u8,
    /// DSCP (high 6 bits) and ECN (low 2 bits), formerly TOS.
    pub tos: u8,
    /// Header plus payload length in bytes.
    pub total_len: U16,
    /// Identification (for fragment reassembly).
    pub id: U16,
    /// Flags (reserved, DF, MF) and fragment offset in 8-byte units.
    pub flags_frag: U16,
    /// Time to live.
    pub ttl: u8,
    /// Protocol of the payload.
    pub protocol: u8,
    /// Header checksum.
    pub checksum: U16,
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
}

header_view! {
    /// A view of an IPv4 packet over a byte buffer.
    Ipv4Packet => Ipv4Header
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buf`, checking version 4, IHL >= 5 and
    /// header length <= total length <= buffer length. The buffer may be
    /// longer than the total length (Ethernet padding); `payload` ends at
    /// the total length.
    #[inline]
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        let (h, _) = Ipv4Header::ref_from_prefix(b).map_err(|_| Error::Truncated)?;
        let ihl = usize::from(h.ver_ihl & 0x0f) * 4;
        let total = usize::from(h.total_len.get());
        if h.ver_ihl >> 4 != 4 || ihl < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if ihl > b.len() {
            return Err(Error::Truncated);
        }
        if total < ihl {
            return Err(Error::Malformed);
        }
        if total > b.len() {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer: buf })
    }

    /// Version field (4 for a checked view).
    #[inline]
    pub fn version(&self) -> u8 {
        self.header().map_or(0, |h| h.ver_ihl >> 4)
    }

    /// Header length in bytes (IHL * 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.header()
            .map_or(0, |h| usize::from(h.ver_ihl & 0x0f) * 4)
    }

    /// DSCP and ECN byte (formerly TOS).
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.header().map_or(0, |h| h.tos)
    }

    /// Total length field: header plus payload, in bytes.
    #[inline]
    pub fn total_len(&self) -> u16 {
        self.header().map_or(0, |h| h.total_len.get())
    }

    /// Identification field.
    #[inline]
    pub fn ident(&self) -> u16 {
        self.header().map_or(0, |h| h.id.get())
    }

    #[inline]
    fn flags_frag(&self) -> u16 {
        self.header().map_or(0, |h| h.flags_frag.get())
    }

    /// Don't Fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_frag() & FLAG_DF != 0
    }

    /// More Fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_frag() & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field's 8-byte units times 8).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_frag() & FRAG_OFFSET_MASK) << 3
    }

    /// True if this packet is a fragment (MF set or a non-zero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_frag() & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.header().map_or(0, |h| h.ttl)
    }

    /// Protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.header().map_or(0, |h| h.protocol)
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.header().map_or(0, |h| h.checksum.get())
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.header().map_or([0; 4], |h| h.src))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.header().map_or([0; 4], |h| h.dst))
    }

    /// Option bytes (between the fixed header and `header_len`).
    #[inline]
    pub fn options(&self) -> &[u8] {
        let hl = self.header_len();
        self.buffer.as_ref().get(MIN_HEADER_LEN..hl).unwrap_or(&[])
    }

    /// Payload: bytes `header_len..total_len` (Ethernet padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let (hl, tl) = (self.header_len(), usize::from(self.total_len()));
        self.buffer.as_ref().get(hl..tl).unwrap_or(&[])
    }

    /// True if the header checksum (options included) is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let hl = self.header_len();
        let b = self.buffer.as_ref();
        match b.first_chunk::<MIN_HEADER_LEN>() {
            // The option-less header (nearly every packet): five 32-bit
            // words, no loop.
            Some(h) if hl == MIN_HEADER_LEN => checksum::sum20_is_valid(h),
            _ => match b.get(..hl) {
                Some(h) if hl >= MIN_HEADER_LEN => checksum::internet_checksum(h) == 0,
                _ => false,
            },
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the TTL (the checksum is not updated; see `fill_checksum` and
    /// `decrement_ttl_incremental`).
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        if let Some(h) = self.header_mut() {
            h.ttl = ttl;
        }
    }

    /// Sets the total length field (checksum not updated).
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        if let Some(h) = self.header_mut() {
            h.total_len.set(len);
        }
    }

    /// Sets the source address (checksum not updated).
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        if let Some(h) = self.header_mut() {
            h.src = addr.octets();
        }
    }

    /// Sets the destination address (checksum not updated).
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        if let Some(h) = self.header_mut() {
            h.dst = addr.octets();
        }
    }

    /// Sets the protocol field (checksum not updated).
    #[inline]
    pub fn set_protocol(&mut self, protocol: u8) {
        if let Some(h) = self.header_mut() {
            h.protocol = protocol;
        }
    }

    /// Sets the identification field (checksum not updated).
    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        if let Some(h) = self.header_mut() {
            h.id.set(ident);
        }
    }

    /// Sets the DSCP/ECN byte (checksum not updated).
    #[inline]
    pub fn set_dscp_ecn(&mut self, dscp_ecn: u8) {
        if let Some(h) = self.header_mut() {
            h.tos = dscp_ecn;
        }
    }

    /// Sets or clears Don't Fragment (checksum not updated).
    #[inline]
    pub fn set_dont_frag(&mut self, df: bool) {
        if let Some(h) = self.header_mut() {
            let v = h.flags_frag.get() & !FLAG_DF;
            h.flags_frag.set(if df { v | FLAG_DF } else { v });
        }
    }

    /// Sets the checksum field to `csum` as given.
    #[inline]
    pub fn set_checksum(&mut self, csum: u16) {
        if let Some(h) = self.header_mut() {
            h.checksum.set(csum);
        }
    }

    /// Computes the header checksum (options included) and stores it; does
    /// nothing if the buffer is shorter than the header length.
    #[inline]
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        if hl < MIN_HEADER_LEN || self.buffer.as_ref().len() < hl {
            return;
        }
        self.set_checksum(0);
        if let Some(h) = self.buffer.as_ref().get(..hl) {
            let c = checksum::internet_checksum(h);
            self.set_checksum(c);
        }
    }

    /// Payload (`header_len..total_len`), writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), usize::from(self.total_len()));
        self.buffer.as_mut().get_mut(hl..tl).unwrap_or(&mut [])
    }

    /// Decrements the TTL and patches the checksum incrementally
    /// (RFC 1624). Returns false, changing nothing, if the TTL is 0 or 1:
    /// the packet must not be forwarded.
    #[inline]
    pub fn decrement_ttl_incremental(&mut self) -> bool {
        let Some(h) = self.header_mut() else {
            return false;
        };
        if h.ttl <= 1 {
            return false;
        }
        // TTL shares its 16-bit checksum word with the protocol.
        let old_word = u16::from_be_bytes([h.ttl, h.protocol]);
        h.ttl -= 1;
        let new_word = u16::from_be_bytes([h.ttl, h.protocol]);
        let c = checksum::incremental_update(h.checksum.get(), old_word, new_word);
        h.checksum.set(c);
        true
    }
}

/// Writes a 20-byte option-less header with checksum at buf[..20]. total_len = 20 + payload_len.
///
/// Flags and fragment offset are zero (DF clear; see `set_dont_frag`).
/// Err(Truncated) if `buf` is shorter than 20 bytes, Err(Malformed) if the
/// total length would exceed 65535.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn write_header(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    payload_len: usize,
    ttl: u8,
    ident: u16,
    dscp_ecn: u8,
) -> Result<()> {
    let total = payload_len
        .checked_add(MIN_HEADER_LEN)
        .filter(|&t| t <= MAX_TOTAL_LEN)
        .ok_or(Error::Malformed)? as u16;
    let (h, _) = Ipv4Header::mut_from_prefix(buf).map_err(|_| Error::Truncated)?;
    let (s, d) = (src.octets(), dst.octets());
    // The checksum is summed from the field values, not read back from
    // the header just written: loads spanning those narrower stores cannot
    // be forwarded from the store buffer and wait for them to retire.
    let sum = u32::from(u16::from_be_bytes([0x45, dscp_ecn]))
        + u32::from(total)
        + u32::from(ident)
        + u32::from(u16::from_be_bytes([ttl, protocol]))
        + checksum::pseudo_header_v4(src, dst, 0, 0);
    *h = Ipv4Header {
        ver_ihl: 0x45,
        tos: dscp_ecn,
        total_len: U16::new(total),
        id: U16::new(ident),
        flags_frag: U16::new(0),
        ttl,
        protocol,
        checksum: U16::new(!checksum::fold(sum)),
        src: s,
        dst: d,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // IPv4 header of a captured packet (the classic example, 172.16.10.99 ->
    // 172.16.10.12, TCP, DF), checksum 0xb1e6.
    const CAPTURED: [u8; 20] = [
        0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0xb1, 0xe6, 0xac, 0x10, 0x0a,
        0x63, 0xac, 0x10, 0x0a, 0x0c,
    ];

    fn captured_packet() -> Vec<u8> {
        let mut p = CAPTURED.to_vec();
        p.resize(0x3c, 0xaa);
        p
    }

    #[test]
    fn known_layout() {
        assert_eq!(core::mem::size_of::<Ipv4Header>(), MIN_HEADER_LEN);
        let buf = captured_packet();
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.dscp_ecn(), 0);
        assert_eq!(p.total_len(), 60);
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), protocol::TCP);
        assert_eq!(p.checksum(), 0xb1e6);
        assert_eq!(p.src_addr(), Ipv4Addr::new(172, 16, 10, 99));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(172, 16, 10, 12));
        assert!(p.options().is_empty());
        assert_eq!(p.payload().len(), 40);
        assert!(p.verify_checksum());
    }

    #[test]
    fn fill_checksum_leaves_a_header_longer_than_its_buffer_alone() {
        // IHL 15 (60 bytes of header) over a 20-byte buffer.
        let mut buf = CAPTURED;
        buf[0] = 0x4f;
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.fill_checksum();
        assert_eq!(p.checksum(), 0xb1e6);
    }

    #[test]
    fn fill_checksum_reproduces_capture() {
        let mut buf = captured_packet();
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        p.set_checksum(0);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert_eq!(p.checksum(), 0xb1e6);
    }

    #[test]
    fn write_header_reproduces_capture_fields() {
        let mut buf = [0u8; 20];
        write_header(
            &mut buf,
            Ipv4Addr::new(172, 16, 10, 99),
            Ipv4Addr::new(172, 16, 10, 12),
            protocol::TCP,
            40,
            64,
            0x1c46,
            0,
        )
        .unwrap();
        let mut want = CAPTURED;
        // The capture has DF set; write_header leaves flags clear.
        want[6] = 0;
        want[10..12].copy_from_slice(&[0, 0]);
        let c = checksum::internet_checksum(&want);
        want[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(buf, want);
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.set_dont_frag(true);
        p.fill_checksum();
        assert_eq!(buf, CAPTURED);
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        // A 20-byte header with an 8-byte payload in a 46-byte minimum frame.
        let mut buf = [0u8; 46];
        write_header(
            &mut buf,
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::BROADCAST,
            protocol::UDP,
            8,
            1,
            0,
            0,
        )
        .unwrap();
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn options_and_fragments() {
        let mut buf = [0u8; 28];
        buf[..20].copy_from_slice(&CAPTURED);
        buf[0] = 0x46; // IHL 6: one option word
        buf[2..4].copy_from_slice(&28u16.to_be_bytes());
        buf[6..8].copy_from_slice(&(0x2000u16 | 3).to_be_bytes()); // MF, offset 3*8
        buf[20..24].copy_from_slice(&[0x94, 0x04, 0x00, 0x00]); // router alert
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(p.payload().len(), 4);
        assert!(p.more_frags() && !p.dont_frag());
        assert_eq!(p.frag_offset(), 24);
        assert!(p.is_fragment());
    }

    #[test]
    fn rejects_bad_fields() {
        let mut b = captured_packet();
        b[0] = 0x65; // version 6
        assert_eq!(Ipv4Packet::new_checked(&b[..]), Err(Error::Malformed));
        b[0] = 0x44; // IHL 4
        assert_eq!(Ipv4Packet::new_checked(&b[..]), Err(Error::Malformed));
        b[0] = 0x4f; // IHL 15 = 60 bytes <= 60 total: fine
        assert!(Ipv4Packet::new_checked(&b[..]).is_ok());
        b[0] = 0x45;
        b[2..4].copy_from_slice(&19u16.to_be_bytes()); // total < header
        assert_eq!(Ipv4Packet::new_checked(&b[..]), Err(Error::Malformed));
        b[2..4].copy_from_slice(&61u16.to_be_bytes()); // total > buffer
        assert_eq!(Ipv4Packet::new_checked(&b[..]), Err(Error::Truncated));
    }

    #[test]
    fn write_header_limits() {
        let mut buf = [0u8; 20];
        let (a, b) = (Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST);
        assert!(write_header(&mut buf, a, b, 17, 65535 - 20, 64, 0, 0).is_ok());
        assert_eq!(
            write_header(&mut buf, a, b, 17, 65535 - 19, 64, 0, 0),
            Err(Error::Malformed)
        );
        assert_eq!(
            write_header(&mut buf, a, b, 17, usize::MAX, 64, 0, 0),
            Err(Error::Malformed)
        );
        assert_eq!(
            write_header(&mut buf[..19], a, b, 17, 0, 64, 0, 0),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn ttl_decrement_refuses_expiry() {
        let mut p = Ipv4Packet::new_checked(captured_packet()).unwrap();
        for ttl in [0u8, 1] {
            p.set_ttl(ttl);
            p.fill_checksum();
            let before = p.clone();
            assert!(!p.decrement_ttl_incremental());
            assert_eq!(p, before);
        }
        p.set_ttl(2);
        p.fill_checksum();
        assert!(p.decrement_ttl_incremental());
        assert_eq!(p.ttl(), 1);
        assert!(p.verify_checksum());
    }

    #[test]
    fn truncated_at_every_length() {
        let buf = captured_packet();
        for n in 0..buf.len() {
            assert!(Ipv4Packet::new_checked(&buf[..n]).is_err(), "len {n}");
            // Unchecked views over every prefix answer without panicking.
            let mut short = buf[..n].to_vec();
            let mut p = Ipv4Packet::new_unchecked(&mut short[..]);
            let _ = (
                p.version(),
                p.header_len(),
                p.total_len(),
                p.ttl(),
                p.src_addr(),
            );
            let _ = (
                p.options(),
                p.payload(),
                p.verify_checksum(),
                p.frag_offset(),
            );
            p.decrement_ttl_incremental();
            p.fill_checksum();
            p.set_src_addr(Ipv4Addr::BROADCAST);
            let _ = p.payload_mut();
        }
    }

    proptest! {
        #[test]
        fn build_parse_round_trip(
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), proto in any::<u8>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64), pad in 0usize..16,
            ttl in any::<u8>(), ident in any::<u16>(), tos in any::<u8>(),
        ) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let mut buf = vec![0u8; MIN_HEADER_LEN + payload.len() + pad];
            write_header(&mut buf, src, dst, proto, payload.len(), ttl, ident, tos).unwrap();
            buf[MIN_HEADER_LEN..MIN_HEADER_LEN + payload.len()].copy_from_slice(&payload);
            let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(p.src_addr(), src);
            prop_assert_eq!(p.dst_addr(), dst);
            prop_assert_eq!(p.protocol(), proto);
            prop_assert_eq!(p.ttl(), ttl);
            prop_assert_eq!(p.ident(), ident);
            prop_assert_eq!(p.dscp_ecn(), tos);
            prop_assert_eq!(usize::from(p.total_len()), MIN_HEADER_LEN + payload.len());
            prop_assert_eq!(p.payload(), &payload[..]);
            prop_assert!(p.verify_checksum());
            prop_assert!(!p.is_fragment() && !p.dont_frag());

            // Setters followed by fill_checksum give the same header.
            let mut q = Ipv4Packet::new_unchecked(vec![0u8; MIN_HEADER_LEN]);
            q.header_mut().unwrap().ver_ihl = 0x45;
            q.set_src_addr(src);
            q.set_dst_addr(dst);
            q.set_protocol(proto);
            q.set_ttl(ttl);
            q.set_ident(ident);
            q.set_dscp_ecn(tos);
            q.set_total_len((MIN_HEADER_LEN + payload.len()) as u16);
            q.fill_checksum();
            prop_assert_eq!(&q.into_inner()[..], &buf[..MIN_HEADER_LEN]);
        }

        #[test]
        fn incremental_ttl_equals_full_recompute(
            header in any::<[u8; 20]>(), ttl in 2u8..=255, options in 0usize..=10,
        ) {
            let mut buf = header.to_vec();
            buf.resize(MIN_HEADER_LEN + options * 4, 0x01);
            buf[0] = 0x45 + options as u8;
            let total = buf.len() as u16;
            buf[2..4].copy_from_slice(&total.to_be_bytes());
            let mut p = Ipv4Packet::new_checked(buf).unwrap();
            p.set_ttl(ttl);
            p.fill_checksum();
            prop_assert!(p.decrement_ttl_incremental());
            let incremental = p.checksum();
            p.fill_checksum();
            prop_assert_eq!(incremental, p.checksum());
            prop_assert_eq!(p.ttl(), ttl - 1);
            prop_assert!(p.verify_checksum());
        }
    }
}
