//! ICMP for IPv4 (RFC 792): the common header, and echo request / reply.
//!
//! The view covers one ICMP message exactly (the IPv4 payload): the
//! checksum is the Internet checksum of the whole message.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |     Code      |          Checksum             |
//! |           Identifier          |        Sequence Number        |  (echo)
//! |     Data ...
//! ```

use super::checksum;
use super::{Error, Result};
use zerocopy::network_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Length of the ICMP header (type, code, checksum, 4 bytes of
/// type-specific fields).
pub const HEADER_LEN: usize = 8;

/// ICMP message types the node handles.
pub mod msg_type {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
}

/// Wire layout of the ICMP header, with the echo fields.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct IcmpHeader {
    /// Message type.
    pub msg_type: u8,
    /// Message code.
    pub code: u8,
    /// Internet checksum of the whole message.
    pub checksum: U16,
    /// Echo identifier (other types: first half of the rest of the header).
    pub ident: U16,
    /// Echo sequence number (other types: second half).
    pub seq: U16,
}

header_view! {
    /// A view of an ICMPv4 message over a byte buffer.
    IcmpPacket => IcmpHeader
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wraps `buf`, checking that it holds the 8-byte header. The whole
    /// buffer is the message (checksum and payload cover all of it).
    #[inline]
    pub fn new_checked(buf: T) -> Result<Self> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer: buf })
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.header().map_or(0, |h| h.msg_type)
    }

    /// Message code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.header().map_or(0, |h| h.code)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.header().map_or(0, |h| h.checksum.get())
    }

    /// Echo identifier.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        self.header().map_or(0, |h| h.ident.get())
    }

    /// Echo sequence number.
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        self.header().map_or(0, |h| h.seq.get())
    }

    /// Bytes after the 8-byte header (the echo data).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// True if the buffer holds a header and the checksum over the whole
    /// message is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let b = self.buffer.as_ref();
        b.len() >= HEADER_LEN && checksum::internet_checksum(b) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Sets the message type (checksum not updated).
    #[inline]
    pub fn set_msg_type(&mut self, t: u8) {
        if let Some(h) = self.header_mut() {
            h.msg_type = t;
        }
    }

    /// Sets the message code (checksum not updated).
    #[inline]
    pub fn set_code(&mut self, code: u8) {
        if let Some(h) = self.header_mut() {
            h.code = code;
        }
    }

    /// Sets the echo identifier (checksum not updated).
    #[inline]
    pub fn set_echo_ident(&mut self, ident: u16) {
        if let Some(h) = self.header_mut() {
            h.ident.set(ident);
        }
    }

    /// Sets the echo sequence number (checksum not updated).
    #[inline]
    pub fn set_echo_seq(&mut self, seq: u16) {
        if let Some(h) = self.header_mut() {
            h.seq.set(seq);
        }
    }

    /// Sets the checksum field to `csum` as given.
    #[inline]
    pub fn set_checksum(&mut self, csum: u16) {
        if let Some(h) = self.header_mut() {
            h.checksum.set(csum);
        }
    }

    /// Computes the checksum over the whole message and stores it; does
    /// nothing on a buffer shorter than the header.
    #[inline]
    pub fn fill_checksum(&mut self) {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return;
        }
        self.set_checksum(0);
        let c = checksum::internet_checksum(self.buffer.as_ref());
        self.set_checksum(c);
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

/// Writes an echo message (`msg_type` ECHO_REQUEST or ECHO_REPLY, code 0)
/// with `data` and its checksum at the start of `buf`; returns its length
/// (8 + data). Err(Truncated) if `buf` is short, Err(Malformed) for any
/// other type.
#[inline]
pub fn write_echo(
    buf: &mut [u8],
    msg_type: u8,
    ident: u16,
    seq: u16,
    data: &[u8],
) -> Result<usize> {
    if msg_type != msg_type::ECHO_REQUEST && msg_type != msg_type::ECHO_REPLY {
        return Err(Error::Malformed);
    }
    let len = HEADER_LEN + data.len();
    let msg = buf.get_mut(..len).ok_or(Error::Truncated)?;
    let (h, rest) = IcmpHeader::mut_from_prefix(msg).map_err(|_| Error::Truncated)?;
    *h = IcmpHeader {
        msg_type,
        code: 0,
        checksum: U16::new(0),
        ident: U16::new(ident),
        seq: U16::new(seq),
    };
    rest.copy_from_slice(data);
    let mut p = IcmpPacket::new_unchecked(msg);
    p.fill_checksum();
    Ok(len)
}

/// An echo request message with `data`, checksum filled.
pub fn echo_request(ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; HEADER_LEN + data.len()];
    // The buffer is sized for the message and the type is an echo type.
    let _ = write_echo(&mut v, msg_type::ECHO_REQUEST, ident, seq, data);
    v
}

/// The echo reply to `request` (an echo request, checksum not checked
/// here): same identifier, sequence number and data, fresh checksum.
/// Err(Malformed) if `request` is not an echo request, Err(Truncated) if
/// it is shorter than a header.
pub fn echo_reply<T: AsRef<[u8]>>(request: &IcmpPacket<T>) -> Result<Vec<u8>> {
    if request.buffer.as_ref().len() < HEADER_LEN {
        return Err(Error::Truncated);
    }
    if request.msg_type() != msg_type::ECHO_REQUEST || request.code() != 0 {
        return Err(Error::Malformed);
    }
    let data = request.payload();
    let mut v = vec![0u8; HEADER_LEN + data.len()];
    write_echo(
        &mut v,
        msg_type::ECHO_REPLY,
        request.echo_ident(),
        request.echo_seq(),
        data,
    )?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Linux `ping -c1` echo request: id 0x1234, seq 1, 8 bytes of data
    // (checksum computed by hand: 0xffff - (0x0800 + 0x1234 + 0x0001 +
    // 0x0001 + 0x0203 + 0x0405 + 0x0607), folded).
    fn linux_like() -> Vec<u8> {
        let mut m = vec![0x08, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01];
        m.extend_from_slice(&[0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]);
        let sum: u32 = 0x0800 + 0x1234 + 0x0001 + 0x0001 + 0x0203 + 0x0405 + 0x0607;
        let c = !((sum & 0xffff) + (sum >> 16)) as u16;
        m[2..4].copy_from_slice(&c.to_be_bytes());
        m
    }

    #[test]
    fn known_layout() {
        assert_eq!(core::mem::size_of::<IcmpHeader>(), HEADER_LEN);
        let m = linux_like();
        let p = IcmpPacket::new_checked(&m[..]).unwrap();
        assert_eq!(p.msg_type(), msg_type::ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq(), 1);
        assert_eq!(p.payload(), &[0, 1, 2, 3, 4, 5, 6, 7]);
        assert!(p.verify_checksum());
        assert_eq!(echo_request(0x1234, 1, &[0, 1, 2, 3, 4, 5, 6, 7]), m);
    }

    #[test]
    fn reply_keeps_id_seq_data_with_a_fresh_checksum() {
        let m = linux_like();
        let req = IcmpPacket::new_checked(&m[..]).unwrap();
        let r = echo_reply(&req).unwrap();
        let rep = IcmpPacket::new_checked(&r[..]).unwrap();
        assert_eq!(rep.msg_type(), msg_type::ECHO_REPLY);
        assert_eq!((rep.echo_ident(), rep.echo_seq()), (0x1234, 1));
        assert_eq!(rep.payload(), req.payload());
        assert!(rep.verify_checksum());
        // Type 8 -> 0 changes the first word by 0x0800.
        assert_eq!(rep.checksum(), req.checksum().wrapping_add(0x0800));
        assert_eq!(echo_reply(&rep), Err(Error::Malformed));
    }

    #[test]
    fn write_echo_checks_type_and_room() {
        let mut b = [0u8; 10];
        assert_eq!(write_echo(&mut b, 3, 0, 0, &[]), Err(Error::Malformed));
        assert_eq!(write_echo(&mut b, 8, 0, 0, &[0; 3]), Err(Error::Truncated));
        assert_eq!(write_echo(&mut b, 0, 0, 0, &[0; 2]), Ok(10));
    }

    #[test]
    fn truncated_at_every_length() {
        let m = linux_like();
        for n in 0..HEADER_LEN {
            assert_eq!(IcmpPacket::new_checked(&m[..n]), Err(Error::Truncated));
            let mut p = IcmpPacket::new_unchecked(m[..n].to_vec());
            assert_eq!((p.msg_type(), p.echo_ident(), p.echo_seq()), (0, 0, 0));
            assert!(!p.verify_checksum() && p.payload().is_empty());
            assert_eq!(echo_reply(&p), Err(Error::Truncated));
            p.set_msg_type(1);
            p.set_code(1);
            p.set_echo_ident(1);
            p.set_echo_seq(1);
            p.fill_checksum();
            assert!(p.payload_mut().is_empty());
        }
    }

    proptest! {
        #[test]
        fn build_parse_round_trip(
            ident in any::<u16>(), seq in any::<u16>(),
            data in proptest::collection::vec(any::<u8>(), 0..100), flip in any::<prop::sample::Index>(),
        ) {
            let m = echo_request(ident, seq, &data);
            let p = IcmpPacket::new_checked(&m[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!((p.msg_type(), p.code(), p.echo_ident(), p.echo_seq()), (8, 0, ident, seq));
            prop_assert_eq!(p.payload(), &data[..]);
            let r = echo_reply(&p).unwrap();
            let q = IcmpPacket::new_checked(&r[..]).unwrap();
            prop_assert!(q.verify_checksum());
            prop_assert_eq!((q.msg_type(), q.echo_ident(), q.echo_seq()), (0, ident, seq));
            // A flipped bit anywhere is caught by the checksum.
            let mut bad = m.clone();
            bad[flip.index(m.len())] ^= 0x04;
            prop_assert!(!IcmpPacket::new_unchecked(&bad[..]).verify_checksum());
        }

        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let checked = IcmpPacket::new_checked(&data[..]).is_ok();
            prop_assert_eq!(checked, data.len() >= HEADER_LEN);
            let mut p = IcmpPacket::new_unchecked(data.clone());
            let _ = (p.msg_type(), p.code(), p.checksum(), p.echo_ident(), p.echo_seq(), p.payload());
            let _ = p.verify_checksum();
            if let Ok(r) = echo_reply(&p) {
                prop_assert!(IcmpPacket::new_unchecked(&r[..]).verify_checksum());
                prop_assert_eq!(&r[HEADER_LEN..], p.payload());
            }
            p.fill_checksum();
            prop_assert_eq!(p.verify_checksum(), checked);
            p.set_msg_type(1);
            p.set_code(2);
            p.set_echo_ident(3);
            p.set_echo_seq(4);
            let _ = p.payload_mut();
        }
    }
}
