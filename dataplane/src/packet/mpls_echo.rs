//! MPLS echo request and reply (LSP ping, RFC 8029), with the Target FEC
//! Stack's IPv4 IGP-Prefix Segment ID sub-TLV (RFC 8287 §5.1), the FEC
//! of this design (a gateway's node label).
//!
//! The message is the payload of a UDP datagram to or from port 3503:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |       Version Number          |         Global Flags          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Message Type |   Reply Mode  |  Return Code  | Return Subcode|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                        Sender's Handle                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                        Sequence Number                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    TimeStamp Sent (seconds)                   |
//! |                  TimeStamp Sent (seconds fraction)            |
//! |                  TimeStamp Received (seconds)                 |
//! |                TimeStamp Received (seconds fraction)          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                            TLVs ...                           |
//! ```
//!
//! A TLV is a 2-byte type, a 2-byte length (of the value, without
//! padding) and the value, zero-padded to a 4-byte boundary; sub-TLVs
//! inside a value have the same form. [`tlvs`] walks either level and
//! never panics: a TLV that claims more bytes than remain, a tail too
//! short for a TLV header, or more than [`MAX_TLVS`] TLVs end the walk
//! with an error.

use super::{Error, Result};
use std::net::Ipv4Addr;
use zerocopy::network_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The well-known UDP port of LSP ping (both directions).
pub const UDP_PORT: u16 = 3503;

/// Length of the fixed header before the TLVs.
pub const HEADER_LEN: usize = 32;

/// The only version number defined (RFC 8029 §3).
pub const VERSION: u16 = 1;

/// Largest number of TLVs (or sub-TLVs in one value) [`tlvs`] walks.
pub const MAX_TLVS: usize = 32;

/// Length of a TLV header (type and length).
pub const TLV_HEADER_LEN: usize = 4;

/// Message types.
pub mod msg_type {
    /// MPLS echo request.
    pub const REQUEST: u8 = 1;
    /// MPLS echo reply.
    pub const REPLY: u8 = 2;
}

/// Reply modes (how the request asks to be answered).
pub mod reply_mode {
    /// Do not reply.
    pub const NO_REPLY: u8 = 1;
    /// Reply with an IPv4/IPv6 UDP packet.
    pub const UDP: u8 = 2;
    /// Reply with an IPv4/IPv6 UDP packet carrying the Router Alert option.
    pub const UDP_ROUTER_ALERT: u8 = 3;
    /// Reply through an application-level control channel.
    pub const CONTROL_CHANNEL: u8 = 4;
}

/// Global flags (RFC 8029 §3, RFC 6425, RFC 6426).
pub mod flags {
    /// V: validate the FEC stack.
    pub const VALIDATE_FEC: u16 = 0x0001;
    /// T: respond only if the TTL expired.
    pub const TTL_EXPIRED_ONLY: u16 = 0x0002;
    /// R: validate the reverse path.
    pub const REVERSE_PATH: u16 = 0x0004;
}

/// Return codes (RFC 8029 §3.1); the subcode is the stack depth they
/// refer to.
pub mod return_code {
    /// No return code.
    pub const NONE: u8 = 0;
    /// Malformed echo request received.
    pub const MALFORMED: u8 = 1;
    /// One or more of the TLVs was not understood.
    pub const TLV_NOT_UNDERSTOOD: u8 = 2;
    /// Replying router is an egress for the FEC at stack-depth (subcode).
    pub const EGRESS: u8 = 3;
    /// Replying router has no mapping for the FEC at stack-depth.
    pub const NO_MAPPING: u8 = 4;
    /// Label switched at stack-depth.
    pub const LABEL_SWITCHED: u8 = 8;
}

/// TLV types.
pub mod tlv_type {
    /// Target FEC Stack (its value is a list of FEC sub-TLVs).
    pub const TARGET_FEC_STACK: u16 = 1;
    /// Pad.
    pub const PAD: u16 = 3;
    /// Errored TLVs (the TLVs a responder did not understand).
    pub const ERRORED_TLVS: u16 = 9;
    /// meshplane's responder node id, in the vendor-private range of
    /// optional TLVs (RFC 8029 §3: 64512-65535, "silently ignored" by a
    /// receiver that does not know them). The value is 8 bytes: the SMI
    /// enterprise number [`super::ENTERPRISE_NUMBER`] that every vendor
    /// TLV starts with, then the 4-byte constellation node id. (The
    /// other vendor range, 31744-32767, holds mandatory TLVs, which an
    /// initiator not knowing them would have to treat as an error.)
    pub const NODE_ID: u16 = 64512;
    /// First type of the optional vendor-private range.
    pub const VENDOR_OPTIONAL_FIRST: u16 = 64512;
    /// First optional type (types below are mandatory: a responder must
    /// understand them or answer "TLV not understood").
    pub const FIRST_OPTIONAL: u16 = 32768;
}

/// FEC sub-TLV types of the Target FEC Stack.
pub mod fec_type {
    /// IPv4 IGP-Prefix Segment ID (RFC 8287 §5.1).
    pub const IPV4_IGP_PREFIX_SID: u16 = 34;
}

/// The SMI private enterprise number at the start of meshplane's vendor
/// TLV: 32473, the number RFC 5612 reserves for documentation, until
/// the project has its own.
pub const ENTERPRISE_NUMBER: u32 = 32473;

/// Seconds from the NTP era 0 epoch (1900-01-01) to the Unix epoch.
pub const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;

/// An NTP 64-bit timestamp: seconds since 1900 (mod 2^32) and a binary
/// fraction of a second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NtpTimestamp {
    /// Seconds since 1900-01-01 00:00 UTC, modulo 2^32 (the era wraps in 2036).
    pub seconds: u32,
    /// Fraction of a second in units of 2^-32 s.
    pub fraction: u32,
}

impl NtpTimestamp {
    /// The timestamp of `unix_ns` nanoseconds after the Unix epoch.
    pub fn from_unix_ns(unix_ns: u64) -> Self {
        let secs = unix_ns / 1_000_000_000 + NTP_UNIX_OFFSET_S;
        let nanos = unix_ns % 1_000_000_000;
        // nanos < 1e9 < 2^30, so nanos << 32 fits in 62 bits.
        let fraction = ((nanos << 32) / 1_000_000_000) as u32;
        NtpTimestamp {
            seconds: secs as u32,
            fraction,
        }
    }

    /// Nanoseconds after the Unix epoch, reading the seconds in the era
    /// that contains the Unix epoch and the 2036 wrap (1968-2104).
    /// Truncates to the nanosecond below.
    pub fn to_unix_ns(self) -> u64 {
        // Seconds from 1968-01-20 (2^31 s before the 2036 wrap) onwards.
        let s = u64::from(self.seconds);
        let ntp_secs = if s >= 1 << 31 { s } else { s + (1 << 32) };
        let unix_s = ntp_secs.saturating_sub(NTP_UNIX_OFFSET_S);
        let nanos = (u64::from(self.fraction) * 1_000_000_000) >> 32;
        unix_s.saturating_mul(1_000_000_000).saturating_add(nanos)
    }
}

/// Wire layout of the fixed echo header.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct EchoHeader {
    /// Version number (1).
    pub version: U16,
    /// Global flags.
    pub flags: U16,
    /// Message type (1 request, 2 reply).
    pub msg_type: u8,
    /// Reply mode.
    pub reply_mode: u8,
    /// Return code.
    pub return_code: u8,
    /// Return subcode.
    pub return_subcode: u8,
    /// Sender's handle (chosen by the initiator, echoed by the responder).
    pub handle: U32,
    /// Sequence number.
    pub seq: U32,
    /// TimeStamp Sent, seconds.
    pub sent_s: U32,
    /// TimeStamp Sent, fraction.
    pub sent_f: U32,
    /// TimeStamp Received, seconds.
    pub rcvd_s: U32,
    /// TimeStamp Received, fraction.
    pub rcvd_f: U32,
}

header_view! {
    /// A view of an MPLS echo request or reply (a UDP payload).
    MplsEcho => EchoHeader
}

impl<T: AsRef<[u8]>> MplsEcho<T> {
    /// Wraps `buf`, checking that it holds the 32-byte header with version
    /// 1 (Err(Malformed) for another version). TLVs are checked as
    /// [`MplsEcho::tlvs`] walks them.
    #[inline]
    pub fn new_checked(buf: T) -> Result<Self> {
        let (h, _) = EchoHeader::ref_from_prefix(buf.as_ref()).map_err(|_| Error::Truncated)?;
        if h.version.get() != VERSION {
            return Err(Error::Malformed);
        }
        Ok(Self { buffer: buf })
    }

    /// Version number.
    #[inline]
    pub fn version(&self) -> u16 {
        self.header().map_or(0, |h| h.version.get())
    }

    /// Global flags.
    #[inline]
    pub fn flags(&self) -> u16 {
        self.header().map_or(0, |h| h.flags.get())
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.header().map_or(0, |h| h.msg_type)
    }

    /// Reply mode.
    #[inline]
    pub fn reply_mode(&self) -> u8 {
        self.header().map_or(0, |h| h.reply_mode)
    }

    /// Return code.
    #[inline]
    pub fn return_code(&self) -> u8 {
        self.header().map_or(0, |h| h.return_code)
    }

    /// Return subcode.
    #[inline]
    pub fn return_subcode(&self) -> u8 {
        self.header().map_or(0, |h| h.return_subcode)
    }

    /// Sender's handle.
    #[inline]
    pub fn sender_handle(&self) -> u32 {
        self.header().map_or(0, |h| h.handle.get())
    }

    /// Sequence number.
    #[inline]
    pub fn sequence(&self) -> u32 {
        self.header().map_or(0, |h| h.seq.get())
    }

    /// TimeStamp Sent.
    #[inline]
    pub fn timestamp_sent(&self) -> NtpTimestamp {
        self.header()
            .map_or(NtpTimestamp::default(), |h| NtpTimestamp {
                seconds: h.sent_s.get(),
                fraction: h.sent_f.get(),
            })
    }

    /// TimeStamp Received.
    #[inline]
    pub fn timestamp_received(&self) -> NtpTimestamp {
        self.header()
            .map_or(NtpTimestamp::default(), |h| NtpTimestamp {
                seconds: h.rcvd_s.get(),
                fraction: h.rcvd_f.get(),
            })
    }

    /// The bytes after the fixed header.
    #[inline]
    pub fn tlv_bytes(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// The TLVs after the fixed header.
    #[inline]
    pub fn tlvs(&self) -> Tlvs<'_> {
        tlvs(self.tlv_bytes())
    }

    /// The first Target FEC Stack's sub-TLVs, if the message has one
    /// before any malformed TLV.
    pub fn target_fec_stack(&self) -> Option<Tlvs<'_>> {
        self.tlvs()
            .map_while(|t| t.ok())
            .find(|t| t.ty == tlv_type::TARGET_FEC_STACK)
            .map(|t| tlvs(t.value))
    }

    /// The node id of meshplane's vendor TLV, if the message carries one
    /// (well formed, with [`ENTERPRISE_NUMBER`]).
    pub fn node_id(&self) -> Option<u32> {
        self.tlvs()
            .map_while(|t| t.ok())
            .filter(|t| t.ty == tlv_type::NODE_ID)
            .find_map(|t| match t.value {
                [a, b, c, d, e, f, g, h]
                    if u32::from_be_bytes([*a, *b, *c, *d]) == ENTERPRISE_NUMBER =>
                {
                    Some(u32::from_be_bytes([*e, *f, *g, *h]))
                }
                _ => None,
            })
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> MplsEcho<T> {
    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, t: u8) {
        if let Some(h) = self.header_mut() {
            h.msg_type = t;
        }
    }

    /// Sets the return code and subcode.
    #[inline]
    pub fn set_return(&mut self, code: u8, subcode: u8) {
        if let Some(h) = self.header_mut() {
            h.return_code = code;
            h.return_subcode = subcode;
        }
    }

    /// Sets TimeStamp Received.
    #[inline]
    pub fn set_timestamp_received(&mut self, ts: NtpTimestamp) {
        if let Some(h) = self.header_mut() {
            h.rcvd_s.set(ts.seconds);
            h.rcvd_f.set(ts.fraction);
        }
    }
}

/// One TLV (or sub-TLV): its type and its value without padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// Type.
    pub ty: u16,
    /// Value (`length` bytes, padding excluded).
    pub value: &'a [u8],
}

impl Tlv<'_> {
    /// True for a type a receiver must understand (below 32768).
    #[inline]
    pub fn is_mandatory(&self) -> bool {
        self.ty < tlv_type::FIRST_OPTIONAL
    }
}

/// Iterator over TLVs (or sub-TLVs): yields each, then `None`; on a tail
/// too short for a TLV header, a length past the end of the buffer, or
/// more than [`MAX_TLVS`] TLVs it yields one `Err` and stops.
#[derive(Clone, Debug)]
pub struct Tlvs<'a> {
    rest: &'a [u8],
    count: usize,
    done: bool,
}

impl<'a> Tlvs<'a> {
    /// The bytes not yet walked.
    #[inline]
    pub fn remainder(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Tlvs<'a> {
    type Item = Result<Tlv<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.rest.is_empty() {
            self.done = true;
            return None;
        }
        self.done = true;
        if self.count >= MAX_TLVS {
            return Some(Err(Error::Malformed));
        }
        let Some((&[t0, t1, l0, l1], after)) = self.rest.split_first_chunk::<TLV_HEADER_LEN>()
        else {
            return Some(Err(Error::Truncated));
        };
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let Some(value) = after.get(..len) else {
            return Some(Err(Error::Truncated));
        };
        // Skip the padding to the next 4-byte boundary, if present (a
        // last TLV may end without it).
        let padded = len.next_multiple_of(4).min(after.len());
        self.rest = after.get(padded..).unwrap_or(&[]);
        self.count += 1;
        self.done = false;
        Some(Ok(Tlv {
            ty: u16::from_be_bytes([t0, t1]),
            value,
        }))
    }
}

impl core::iter::FusedIterator for Tlvs<'_> {}

/// Walks the TLVs (or sub-TLVs) at the start of `buf`.
#[inline]
pub fn tlvs(buf: &[u8]) -> Tlvs<'_> {
    Tlvs {
        rest: buf,
        count: 0,
        done: false,
    }
}

/// Appends one TLV with its zero padding to `out`. Err(Malformed) if the
/// value is longer than the 16-bit length field allows.
pub fn push_tlv(out: &mut Vec<u8>, ty: u16, value: &[u8]) -> Result<()> {
    let len = u16::try_from(value.len()).map_err(|_| Error::Malformed)?;
    out.extend_from_slice(&ty.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
    out.resize(
        out.len() + (value.len().next_multiple_of(4) - value.len()),
        0,
    );
    Ok(())
}

/// The IPv4 IGP-Prefix Segment ID sub-TLV's value (RFC 8287 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4PrefixSid {
    /// The prefix (a gateway's node address for a node label).
    pub prefix: Ipv4Addr,
    /// Prefix length (32 for a node).
    pub prefix_len: u8,
    /// IGP protocol: 0 any, 1 OSPF, 2 IS-IS.
    pub protocol: u8,
}

/// Length of the IPv4 IGP-Prefix Segment ID value.
pub const IPV4_PREFIX_SID_LEN: usize = 8;

impl Ipv4PrefixSid {
    /// The node FEC of `addr`: `addr/32`, protocol 0 ("any IGP").
    pub fn node(addr: Ipv4Addr) -> Self {
        Ipv4PrefixSid {
            prefix: addr,
            prefix_len: 32,
            protocol: 0,
        }
    }

    /// Parses a sub-TLV value: 8 bytes, prefix length at most 32
    /// (Err(Truncated) if shorter, Err(Malformed) if longer or out of
    /// range). The reserved bytes are not checked (RFC 8287: "ignored on
    /// receipt").
    pub fn parse(value: &[u8]) -> Result<Self> {
        let Some((&[a, b, c, d, len, proto], _reserved)) = value.split_first_chunk::<6>() else {
            return Err(Error::Truncated);
        };
        match value.len() {
            n if n < IPV4_PREFIX_SID_LEN => return Err(Error::Truncated),
            IPV4_PREFIX_SID_LEN => {}
            _ => return Err(Error::Malformed),
        }
        if len > 32 {
            return Err(Error::Malformed);
        }
        Ok(Ipv4PrefixSid {
            prefix: Ipv4Addr::new(a, b, c, d),
            prefix_len: len,
            protocol: proto,
        })
    }

    /// The 8-byte value (reserved bytes zero).
    pub fn to_bytes(self) -> [u8; IPV4_PREFIX_SID_LEN] {
        let p = self.prefix.octets();
        [p[0], p[1], p[2], p[3], self.prefix_len, self.protocol, 0, 0]
    }

    /// A Target FEC Stack TLV value holding this one sub-TLV (12 bytes).
    pub fn fec_stack_value(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(TLV_HEADER_LEN + IPV4_PREFIX_SID_LEN);
        // 8 bytes always fit the length field.
        let _ = push_tlv(&mut v, fec_type::IPV4_IGP_PREFIX_SID, &self.to_bytes());
        v
    }
}

/// The fixed-header fields of a message to build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EchoFields {
    /// Global flags.
    pub flags: u16,
    /// Message type.
    pub msg_type: u8,
    /// Reply mode.
    pub reply_mode: u8,
    /// Return code.
    pub return_code: u8,
    /// Return subcode.
    pub return_subcode: u8,
    /// Sender's handle.
    pub handle: u32,
    /// Sequence number.
    pub seq: u32,
    /// TimeStamp Sent.
    pub sent: NtpTimestamp,
    /// TimeStamp Received.
    pub received: NtpTimestamp,
}

/// Writes the 32-byte fixed header (version 1) at the start of `buf`
/// (Err(Truncated) if short).
pub fn write_header(buf: &mut [u8], f: &EchoFields) -> Result<()> {
    EchoHeader {
        version: U16::new(VERSION),
        flags: U16::new(f.flags),
        msg_type: f.msg_type,
        reply_mode: f.reply_mode,
        return_code: f.return_code,
        return_subcode: f.return_subcode,
        handle: U32::new(f.handle),
        seq: U32::new(f.seq),
        sent_s: U32::new(f.sent.seconds),
        sent_f: U32::new(f.sent.fraction),
        rcvd_s: U32::new(f.received.seconds),
        rcvd_f: U32::new(f.received.fraction),
    }
    .write_to_prefix(buf)
    .map_err(|_| Error::Truncated)
}

/// An echo request: `handle`, `seq`, TimeStamp Sent `sent`, the given
/// reply mode, no flags, and a Target FEC Stack holding `fec`.
pub fn build_request(
    handle: u32,
    seq: u32,
    sent: NtpTimestamp,
    reply_mode: u8,
    fec: Ipv4PrefixSid,
) -> Vec<u8> {
    let mut v = vec![0u8; HEADER_LEN];
    let fields = EchoFields {
        msg_type: msg_type::REQUEST,
        reply_mode,
        handle,
        seq,
        sent,
        ..EchoFields::default()
    };
    // The buffer holds the header; the FEC value is 12 bytes.
    let _ = write_header(&mut v, &fields);
    let _ = push_tlv(&mut v, tlv_type::TARGET_FEC_STACK, &fec.fec_stack_value());
    v
}

/// The reply to `request`: its flags, reply mode, sender's handle,
/// sequence number and TimeStamp Sent copied, message type 2, the given
/// return code and subcode, TimeStamp Received `received`, then `tlvs`
/// in order. Err(Malformed) if `request` is not a request or a TLV value
/// is too long, Err(Truncated) if it is shorter than a header.
pub fn build_reply<T: AsRef<[u8]>>(
    request: &MplsEcho<T>,
    received: NtpTimestamp,
    code: u8,
    subcode: u8,
    tlvs: &[(u16, &[u8])],
) -> Result<Vec<u8>> {
    if request.header().is_none() {
        return Err(Error::Truncated);
    }
    if request.msg_type() != msg_type::REQUEST {
        return Err(Error::Malformed);
    }
    let mut v = vec![0u8; HEADER_LEN];
    write_header(
        &mut v,
        &EchoFields {
            flags: request.flags(),
            msg_type: msg_type::REPLY,
            reply_mode: request.reply_mode(),
            return_code: code,
            return_subcode: subcode,
            handle: request.sender_handle(),
            seq: request.sequence(),
            sent: request.timestamp_sent(),
            received,
        },
    )?;
    for (ty, value) in tlvs {
        push_tlv(&mut v, *ty, value)?;
    }
    Ok(v)
}

/// The value of meshplane's node-id vendor TLV ([`tlv_type::NODE_ID`]).
pub fn node_id_value(node_id: u32) -> [u8; 8] {
    let e = ENTERPRISE_NUMBER.to_be_bytes();
    let n = node_id.to_be_bytes();
    [e[0], e[1], e[2], e[3], n[0], n[1], n[2], n[3]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GW: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 2);

    /// An echo request to 10.255.0.2/32, byte by byte from the RFC 8029
    /// §3 header and RFC 8287 §5.1 sub-TLV layouts.
    const REQUEST: [u8; 48] = [
        0x00, 0x01, 0x00, 0x00, // version 1, no flags
        0x01, 0x02, 0x00, 0x00, // request, reply via UDP, return code 0/0
        0xca, 0xfe, 0xf0, 0x0d, // sender's handle
        0x00, 0x00, 0x00, 0x07, // sequence 7
        0xe9, 0x2d, 0x5f, 0x80, 0x80, 0x00, 0x00, 0x00, // sent 3912064896.5
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // received 0
        0x00, 0x01, 0x00, 0x0c, // Target FEC Stack, 12 bytes
        0x00, 0x22, 0x00, 0x08, // IPv4 IGP-Prefix SID, 8 bytes
        10, 255, 0, 2, 32, 0, 0, 0, // 10.255.0.2/32, any IGP, reserved
    ];

    #[test]
    fn known_layout() {
        assert_eq!(core::mem::size_of::<EchoHeader>(), HEADER_LEN);
        let m = MplsEcho::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(m.version(), 1);
        assert_eq!(m.flags(), 0);
        assert_eq!(m.msg_type(), msg_type::REQUEST);
        assert_eq!(m.reply_mode(), reply_mode::UDP);
        assert_eq!((m.return_code(), m.return_subcode()), (0, 0));
        assert_eq!(m.sender_handle(), 0xcafe_f00d);
        assert_eq!(m.sequence(), 7);
        let sent = NtpTimestamp {
            seconds: 0xe92d_5f80,
            fraction: 0x8000_0000,
        };
        assert_eq!(m.timestamp_sent(), sent);
        assert_eq!(m.timestamp_received(), NtpTimestamp::default());
        let all: Vec<_> = m.tlvs().collect();
        assert_eq!(all.len(), 1);
        let fec: Vec<_> = m.target_fec_stack().unwrap().collect();
        assert_eq!(
            fec,
            [Ok(Tlv {
                ty: fec_type::IPV4_IGP_PREFIX_SID,
                value: &REQUEST[40..48]
            })]
        );
        assert_eq!(
            Ipv4PrefixSid::parse(fec[0].unwrap().value),
            Ok(Ipv4PrefixSid::node(GW))
        );
        assert_eq!(m.node_id(), None);
        assert_eq!(
            build_request(
                0xcafe_f00d,
                7,
                sent,
                reply_mode::UDP,
                Ipv4PrefixSid::node(GW)
            ),
            REQUEST
        );
    }

    #[test]
    fn ntp_conversion() {
        // The Unix epoch is NTP second 2208988800 (RFC 5905 §6).
        assert_eq!(
            NtpTimestamp::from_unix_ns(0),
            NtpTimestamp {
                seconds: 2_208_988_800,
                fraction: 0
            }
        );
        // Half a second is fraction 2^31.
        let t = NtpTimestamp::from_unix_ns(1_500_000_000);
        assert_eq!((t.seconds, t.fraction), (2_208_988_801, 1 << 31));
        assert_eq!(t.to_unix_ns(), 1_500_000_000);
        // 2036-02-07 06:28:16 UTC is where era 0 wraps to second 0.
        let wrap_unix_s = (1u64 << 32) - NTP_UNIX_OFFSET_S;
        let t = NtpTimestamp::from_unix_ns(wrap_unix_s * 1_000_000_000 + 250_000_000);
        assert_eq!((t.seconds, t.fraction), (0, 1 << 30));
        assert_eq!(t.to_unix_ns(), wrap_unix_s * 1_000_000_000 + 250_000_000);
        // Conversions are within a nanosecond both ways.
        for ns in [1u64, 999_999_999, 1_700_000_000_123_456_789] {
            let back = NtpTimestamp::from_unix_ns(ns).to_unix_ns();
            assert!(ns - back <= 1, "{ns} {back}");
        }
    }

    #[test]
    fn reply_copies_what_rfc_8029_asks() {
        let req = MplsEcho::new_checked(&REQUEST[..]).unwrap();
        let now = NtpTimestamp {
            seconds: 0xe92d_5f81,
            fraction: 1,
        };
        let fec = Ipv4PrefixSid::node(GW).fec_stack_value();
        let r = build_reply(
            &req,
            now,
            return_code::EGRESS,
            1,
            &[
                (tlv_type::TARGET_FEC_STACK, &fec),
                (tlv_type::NODE_ID, &node_id_value(42)),
            ],
        )
        .unwrap();
        let rep = MplsEcho::new_checked(&r[..]).unwrap();
        assert_eq!(rep.msg_type(), msg_type::REPLY);
        assert_eq!((rep.return_code(), rep.return_subcode()), (3, 1));
        assert_eq!(rep.sender_handle(), req.sender_handle());
        assert_eq!(rep.sequence(), 7);
        assert_eq!(rep.timestamp_sent(), req.timestamp_sent());
        assert_eq!(rep.timestamp_received(), now);
        assert_eq!(rep.node_id(), Some(42));
        assert_eq!(&r[32..48], &REQUEST[32..48]);
        assert_eq!(
            build_reply(&rep, now, 3, 1, &[]),
            Err(Error::Malformed),
            "a reply is not answered"
        );
        // The setters change only their fields.
        let mut m = r.clone();
        let mut v = MplsEcho::new_checked(&mut m[..]).unwrap();
        v.set_msg_type(msg_type::REQUEST);
        v.set_return(0, 0);
        v.set_timestamp_received(NtpTimestamp::default());
        assert_eq!(&m[..48], &REQUEST[..]);
    }

    #[test]
    fn vendor_tlv_needs_our_enterprise_number() {
        let mut m = REQUEST.to_vec();
        let mut value = node_id_value(9);
        value[3] ^= 1;
        push_tlv(&mut m, tlv_type::NODE_ID, &value).unwrap();
        push_tlv(&mut m, tlv_type::NODE_ID, &[0; 4]).unwrap();
        assert_eq!(MplsEcho::new_checked(&m[..]).unwrap().node_id(), None);
        push_tlv(&mut m, tlv_type::NODE_ID, &node_id_value(9)).unwrap();
        assert_eq!(MplsEcho::new_checked(&m[..]).unwrap().node_id(), Some(9));
    }

    #[test]
    fn tlv_walk_refuses_what_does_not_fit() {
        // A length past the end.
        let b = [0, 1, 0, 9, 1, 2, 3, 4];
        assert_eq!(tlvs(&b).collect::<Vec<_>>(), [Err(Error::Truncated)]);
        // A tail too short for a header, after a good TLV.
        let b = [0, 3, 0, 1, 0xaa, 0, 0, 0, 0, 5];
        let v: Vec<_> = tlvs(&b).collect();
        assert_eq!(
            v,
            [
                Ok(Tlv {
                    ty: 3,
                    value: &[0xaa]
                }),
                Err(Error::Truncated)
            ]
        );
        // A last TLV without its padding is still read.
        let b = [0, 3, 0, 1, 0xaa];
        assert_eq!(tlvs(&b).count(), 1);
        assert!(tlvs(&b).all(|t| t.is_ok()));
        // Zero-length TLVs: bounded.
        let b = [0u8; 4 * (MAX_TLVS + 5)];
        let v: Vec<_> = tlvs(&b).collect();
        assert_eq!(v.len(), MAX_TLVS + 1);
        assert_eq!(v.last(), Some(&Err(Error::Malformed)));
        // Fused after an error.
        let mut it = tlvs(&[0, 1]);
        assert!(it.next().is_some());
        assert!(it.next().is_none() && it.next().is_none());
    }

    #[test]
    fn prefix_sid_checks_its_length_and_prefix_length() {
        let v = Ipv4PrefixSid::node(GW).to_bytes();
        for n in 0..v.len() {
            assert_eq!(Ipv4PrefixSid::parse(&v[..n]), Err(Error::Truncated));
        }
        assert_eq!(Ipv4PrefixSid::parse(&[0; 9]), Err(Error::Malformed));
        let mut bad = v;
        bad[4] = 33;
        assert_eq!(Ipv4PrefixSid::parse(&bad), Err(Error::Malformed));
        bad[4] = 24;
        bad[6] = 0xff; // reserved: ignored
        assert_eq!(Ipv4PrefixSid::parse(&bad).unwrap().prefix_len, 24);
        assert!(push_tlv(&mut Vec::new(), 1, &vec![0; 65536]).is_err());
    }

    #[test]
    fn truncated_at_every_length() {
        for n in 0..HEADER_LEN {
            assert_eq!(MplsEcho::new_checked(&REQUEST[..n]), Err(Error::Truncated));
            let mut short = REQUEST[..n].to_vec();
            assert_eq!(
                write_header(&mut short, &EchoFields::default()),
                Err(Error::Truncated)
            );
            let mut m = MplsEcho::new_unchecked(short);
            assert_eq!((m.version(), m.sender_handle(), m.sequence()), (0, 0, 0));
            assert!(m.tlv_bytes().is_empty() && m.tlvs().next().is_none());
            assert!(m.target_fec_stack().is_none() && m.node_id().is_none());
            assert_eq!(
                build_reply(&m, NtpTimestamp::default(), 3, 1, &[]),
                Err(Error::Truncated)
            );
            m.set_msg_type(2);
            m.set_return(3, 1);
            m.set_timestamp_received(NtpTimestamp::default());
        }
        for n in HEADER_LEN + 1..REQUEST.len() {
            let m = MplsEcho::new_checked(&REQUEST[..n]).unwrap();
            let last = m.tlvs().last();
            assert!(
                matches!(last, Some(Err(Error::Truncated))),
                "len {n}: {last:?}"
            );
        }
        let mut v2 = REQUEST;
        v2[1] = 2;
        assert_eq!(MplsEcho::new_checked(&v2[..]), Err(Error::Malformed));
    }

    proptest! {
        #[test]
        fn build_parse_round_trip(
            handle in any::<u32>(), seq in any::<u32>(), ns in any::<u64>(), now in any::<u64>(),
            prefix in any::<[u8; 4]>(), len in 0u8..=32, proto in 0u8..3, code in any::<u8>(),
            sub in any::<u8>(), node in any::<u32>(),
        ) {
            let fec = Ipv4PrefixSid { prefix: prefix.into(), prefix_len: len, protocol: proto };
            let sent = NtpTimestamp::from_unix_ns(ns);
            let m = build_request(handle, seq, sent, reply_mode::UDP, fec);
            let req = MplsEcho::new_checked(&m[..]).unwrap();
            prop_assert_eq!((req.sender_handle(), req.sequence(), req.timestamp_sent()), (handle, seq, sent));
            let got: Vec<_> = req.target_fec_stack().unwrap().collect();
            prop_assert_eq!(got.len(), 1);
            prop_assert_eq!(Ipv4PrefixSid::parse(got[0].unwrap().value), Ok(fec));
            let r = build_reply(&req, NtpTimestamp::from_unix_ns(now), code, sub,
                &[(tlv_type::NODE_ID, &node_id_value(node))]).unwrap();
            let rep = MplsEcho::new_checked(&r[..]).unwrap();
            prop_assert_eq!((rep.msg_type(), rep.return_code(), rep.return_subcode()), (2, code, sub));
            prop_assert_eq!(rep.timestamp_received(), NtpTimestamp::from_unix_ns(now));
            prop_assert_eq!(rep.node_id(), Some(node));
            prop_assert_eq!(rep.tlvs().count(), 1);
        }

        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let m = MplsEcho::new_unchecked(&data[..]);
            let _ = (m.version(), m.flags(), m.msg_type(), m.reply_mode(), m.return_code());
            let _ = (m.return_subcode(), m.sender_handle(), m.sequence(), m.timestamp_sent(), m.timestamp_received());
            let _ = (m.node_id(), m.target_fec_stack().map(|t| t.count()));
            let mut walked = 0;
            for t in tlvs(&data) {
                match t {
                    Ok(t) => { walked += TLV_HEADER_LEN + t.value.len(); let _ = Ipv4PrefixSid::parse(t.value); }
                    Err(_) => break,
                }
            }
            prop_assert!(walked <= data.len());
            prop_assert!(tlvs(&data).count() <= MAX_TLVS + 1);
            let _ = build_reply(&m, NtpTimestamp::default(), 3, 1, &[]);
        }
    }
}
