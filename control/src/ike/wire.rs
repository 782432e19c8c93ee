//! IKEv2 messages on the wire (RFC 7296 §3): the header, the generic
//! payload chain, and the payloads this implementation reads and writes.
//!
//! Parsing never panics: every length is checked against the bytes that
//! are there, and a payload that does not fit, or a chain longer than
//! [`MAX_PAYLOADS`], is refused. An unknown payload with the critical bit
//! set is reported ([`Malformed::UnsupportedCritical`]) so that the
//! caller can answer UNSUPPORTED_CRITICAL_PAYLOAD; an unknown one without
//! it is skipped, as §2.5 says.

use super::proposal::Proposal;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Length of the IKE header.
pub const HEADER_LEN: usize = 28;
/// Length of the generic payload header.
pub const PAYLOAD_HEADER_LEN: usize = 4;
/// Most payloads one message may carry (outer and inner together).
pub const MAX_PAYLOADS: usize = 64;
/// The version byte: major 2, minor 0.
pub const VERSION: u8 = 0x20;

/// Exchange types (RFC 7296 §3.1).
pub mod exchange {
    /// IKE_SA_INIT.
    pub const IKE_SA_INIT: u8 = 34;
    /// IKE_AUTH.
    pub const IKE_AUTH: u8 = 35;
    /// CREATE_CHILD_SA.
    pub const CREATE_CHILD_SA: u8 = 36;
    /// INFORMATIONAL.
    pub const INFORMATIONAL: u8 = 37;
}

/// Header flags.
pub mod flags {
    /// Sent by the original initiator of the IKE SA.
    pub const INITIATOR: u8 = 0x08;
    /// Version: the sender could speak a higher major version.
    pub const VERSION: u8 = 0x10;
    /// A response.
    pub const RESPONSE: u8 = 0x20;
}

/// Payload types (RFC 7296 §3.2).
pub mod payload {
    /// No next payload.
    pub const NONE: u8 = 0;
    /// Security Association.
    pub const SA: u8 = 33;
    /// Key Exchange.
    pub const KE: u8 = 34;
    /// Identification - Initiator.
    pub const IDI: u8 = 35;
    /// Identification - Responder.
    pub const IDR: u8 = 36;
    /// Certificate.
    pub const CERT: u8 = 37;
    /// Certificate Request.
    pub const CERTREQ: u8 = 38;
    /// Authentication.
    pub const AUTH: u8 = 39;
    /// Nonce.
    pub const NONCE: u8 = 40;
    /// Notify.
    pub const NOTIFY: u8 = 41;
    /// Delete.
    pub const DELETE: u8 = 42;
    /// Vendor ID.
    pub const VENDOR: u8 = 43;
    /// Traffic Selector - Initiator.
    pub const TSI: u8 = 44;
    /// Traffic Selector - Responder.
    pub const TSR: u8 = 45;
    /// Encrypted and Authenticated.
    pub const SK: u8 = 46;
    /// Configuration.
    pub const CP: u8 = 47;
    /// EAP.
    pub const EAP: u8 = 48;
    /// Encrypted and Authenticated Fragment (RFC 7383).
    pub const SKF: u8 = 53;

    /// Types this implementation knows (reads, or skips knowingly).
    pub fn known(t: u8) -> bool {
        matches!(t, 33..=48 | 53)
    }
}

/// Notify message types (RFC 7296 §3.10.1 and IANA).
pub mod notify {
    /// UNSUPPORTED_CRITICAL_PAYLOAD.
    pub const UNSUPPORTED_CRITICAL_PAYLOAD: u16 = 1;
    /// INVALID_IKE_SPI.
    pub const INVALID_IKE_SPI: u16 = 4;
    /// INVALID_MAJOR_VERSION.
    pub const INVALID_MAJOR_VERSION: u16 = 5;
    /// INVALID_SYNTAX.
    pub const INVALID_SYNTAX: u16 = 7;
    /// INVALID_MESSAGE_ID.
    pub const INVALID_MESSAGE_ID: u16 = 9;
    /// INVALID_SPI.
    pub const INVALID_SPI: u16 = 11;
    /// NO_PROPOSAL_CHOSEN.
    pub const NO_PROPOSAL_CHOSEN: u16 = 14;
    /// INVALID_KE_PAYLOAD.
    pub const INVALID_KE_PAYLOAD: u16 = 17;
    /// AUTHENTICATION_FAILED.
    pub const AUTHENTICATION_FAILED: u16 = 24;
    /// SINGLE_PAIR_REQUIRED.
    pub const SINGLE_PAIR_REQUIRED: u16 = 34;
    /// NO_ADDITIONAL_SAS.
    pub const NO_ADDITIONAL_SAS: u16 = 35;
    /// INTERNAL_ADDRESS_FAILURE.
    pub const INTERNAL_ADDRESS_FAILURE: u16 = 36;
    /// FAILED_CP_REQUIRED.
    pub const FAILED_CP_REQUIRED: u16 = 37;
    /// TS_UNACCEPTABLE.
    pub const TS_UNACCEPTABLE: u16 = 38;
    /// INVALID_SELECTORS.
    pub const INVALID_SELECTORS: u16 = 39;
    /// TEMPORARY_FAILURE.
    pub const TEMPORARY_FAILURE: u16 = 43;
    /// CHILD_SA_NOT_FOUND.
    pub const CHILD_SA_NOT_FOUND: u16 = 44;
    /// INITIAL_CONTACT.
    pub const INITIAL_CONTACT: u16 = 16384;
    /// SET_WINDOW_SIZE.
    pub const SET_WINDOW_SIZE: u16 = 16385;
    /// NAT_DETECTION_SOURCE_IP.
    pub const NAT_DETECTION_SOURCE_IP: u16 = 16388;
    /// NAT_DETECTION_DESTINATION_IP.
    pub const NAT_DETECTION_DESTINATION_IP: u16 = 16389;
    /// COOKIE.
    pub const COOKIE: u16 = 16390;
    /// USE_TRANSPORT_MODE.
    pub const USE_TRANSPORT_MODE: u16 = 16391;
    /// REKEY_SA.
    pub const REKEY_SA: u16 = 16393;
    /// ESP_TFC_PADDING_NOT_SUPPORTED.
    pub const ESP_TFC_PADDING_NOT_SUPPORTED: u16 = 16394;
    /// SIGNATURE_HASH_ALGORITHMS (RFC 7427).
    pub const SIGNATURE_HASH_ALGORITHMS: u16 = 16431;

    /// Error types are below 16384 (RFC 7296 §3.10.1).
    pub fn is_error(t: u16) -> bool {
        t < 16384
    }
}

/// Protocol ids of SA, Notify and Delete payloads.
pub mod protocol {
    /// IKE.
    pub const IKE: u8 = 1;
    /// AH.
    pub const AH: u8 = 2;
    /// ESP.
    pub const ESP: u8 = 3;
}

/// Why a message could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Shorter than a header, or than a length field says.
    #[error("truncated")]
    Truncated,
    /// A length field that is impossible (below its header, or past the
    /// message), or trailing bytes.
    #[error("bad length")]
    BadLength,
    /// A major version other than 2.
    #[error("major version {0}")]
    BadVersion(u8),
    /// More than [`MAX_PAYLOADS`] payloads.
    #[error("too many payloads")]
    TooManyPayloads,
    /// An unknown payload type with the critical bit set.
    #[error("unsupported critical payload {0}")]
    UnsupportedCritical(u8),
    /// A payload's body is not what its type says it must be.
    #[error("invalid syntax in payload {0}")]
    Syntax(u8),
}

/// The IKE header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Initiator's SPI.
    pub spi_i: u64,
    /// Responder's SPI (0 in the first IKE_SA_INIT request).
    pub spi_r: u64,
    /// Type of the first payload.
    pub next: u8,
    /// The version byte.
    pub version: u8,
    /// Exchange type.
    pub exchange: u8,
    /// Flags.
    pub flags: u8,
    /// Message ID.
    pub mid: u32,
    /// Length of the whole message.
    pub length: u32,
}

impl Header {
    /// Reads and checks the header of `b`: the major version, and that
    /// the length field equals the datagram's length.
    pub fn parse(b: &[u8]) -> Result<Header, Malformed> {
        let h = b.get(..HEADER_LEN).ok_or(Malformed::Truncated)?;
        let h = Header {
            spi_i: u64::from_be_bytes(arr8(&h[0..8])),
            spi_r: u64::from_be_bytes(arr8(&h[8..16])),
            next: h[16],
            version: h[17],
            exchange: h[18],
            flags: h[19],
            mid: u32::from_be_bytes([h[20], h[21], h[22], h[23]]),
            length: u32::from_be_bytes([h[24], h[25], h[26], h[27]]),
        };
        if h.version >> 4 != 2 {
            return Err(Malformed::BadVersion(h.version >> 4));
        }
        let len = usize::try_from(h.length).map_err(|_| Malformed::BadLength)?;
        if len < HEADER_LEN {
            return Err(Malformed::BadLength);
        }
        if len > b.len() {
            return Err(Malformed::Truncated);
        }
        if len < b.len() {
            return Err(Malformed::BadLength);
        }
        Ok(h)
    }

    /// A response.
    pub fn is_response(&self) -> bool {
        self.flags & flags::RESPONSE != 0
    }

    /// Sent by the original initiator.
    pub fn from_initiator(&self) -> bool {
        self.flags & flags::INITIATOR != 0
    }

    /// The header's 28 bytes.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.spi_i.to_be_bytes());
        out.extend_from_slice(&self.spi_r.to_be_bytes());
        out.extend_from_slice(&[self.next, self.version, self.exchange, self.flags]);
        out.extend_from_slice(&self.mid.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }
}

fn arr8(b: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    a
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// One payload of a chain, its body borrowed from the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawPayload<'a> {
    /// Payload type.
    pub ty: u8,
    /// The critical bit.
    pub critical: bool,
    /// The body, after the generic header.
    pub body: &'a [u8],
}

/// Where the SK payload sits in a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SkAt {
    /// Type of the first payload inside.
    pub inner_first: u8,
    /// Offset of the SK body (IV onwards) in the message; everything
    /// before it is the associated data (RFC 5282 §5.1).
    pub body_at: usize,
}

/// Walks a payload chain that starts with type `first` over `b`. An SK
/// payload ends the chain (its next-payload field names the first inner
/// payload) and must be the last bytes. Unknown non-critical payloads are
/// skipped; an unknown critical one is an error.
pub fn walk(
    first: u8,
    b: &[u8],
    base: usize,
) -> Result<(Vec<RawPayload<'_>>, Option<SkAt>), Malformed> {
    let mut out = Vec::new();
    let mut ty = first;
    let mut at = 0usize;
    while ty != payload::NONE {
        if out.len() >= MAX_PAYLOADS {
            return Err(Malformed::TooManyPayloads);
        }
        let h = b
            .get(at..at + PAYLOAD_HEADER_LEN)
            .ok_or(Malformed::Truncated)?;
        let next = h[0];
        let critical = h[1] & 0x80 != 0;
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if len < PAYLOAD_HEADER_LEN {
            return Err(Malformed::BadLength);
        }
        let body = b
            .get(at + PAYLOAD_HEADER_LEN..at + len)
            .ok_or(Malformed::BadLength)?;
        if ty == payload::SK {
            if at + len != b.len() {
                return Err(Malformed::BadLength);
            }
            return Ok((
                out,
                Some(SkAt {
                    inner_first: next,
                    body_at: base + at + PAYLOAD_HEADER_LEN,
                }),
            ));
        }
        if payload::known(ty) {
            out.push(RawPayload { ty, critical, body });
        } else if critical {
            return Err(Malformed::UnsupportedCritical(ty));
        }
        at += len;
        ty = next;
    }
    if at != b.len() {
        return Err(Malformed::BadLength);
    }
    Ok((out, None))
}

/// A Notify payload (RFC 7296 §3.10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify {
    /// Protocol id (0 when no SPI).
    pub protocol: u8,
    /// SPI, possibly empty.
    pub spi: Vec<u8>,
    /// Notify message type.
    pub ty: u16,
    /// Notification data.
    pub data: Vec<u8>,
}

impl Notify {
    /// A notify without SPI.
    pub fn new(ty: u16, data: &[u8]) -> Notify {
        Notify {
            protocol: 0,
            spi: Vec::new(),
            ty,
            data: data.to_vec(),
        }
    }

    fn parse(b: &[u8]) -> Option<Notify> {
        let spi_len = usize::from(*b.get(1)?);
        Some(Notify {
            protocol: *b.first()?,
            ty: be16(b, 2)?,
            spi: b.get(4..4 + spi_len)?.to_vec(),
            data: b.get(4 + spi_len..)?.to_vec(),
        })
    }

    /// The body.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.protocol, self.spi.len() as u8];
        v.extend_from_slice(&self.ty.to_be_bytes());
        v.extend_from_slice(&self.spi);
        v.extend_from_slice(&self.data);
        v
    }
}

/// A Delete payload (RFC 7296 §3.11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delete {
    /// Protocol id: IKE (no SPIs) or ESP (4-byte SPIs).
    pub protocol: u8,
    /// The SPIs (ESP: the sender's inbound SPIs).
    pub spis: Vec<u32>,
}

impl Delete {
    fn parse(b: &[u8]) -> Option<Delete> {
        let protocol = *b.first()?;
        let spi_len = usize::from(*b.get(1)?);
        let n = usize::from(be16(b, 2)?);
        let rest = b.get(4..)?;
        if rest.len() != n * spi_len {
            return None;
        }
        let spis = match (protocol, spi_len) {
            (protocol::IKE, 0) => Vec::new(),
            (protocol::IKE, 8) => Vec::new(),
            (protocol::ESP | protocol::AH, 4) => rest
                .chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            _ => return None,
        };
        Some(Delete { protocol, spis })
    }

    /// The body.
    pub fn encode(&self) -> Vec<u8> {
        let spi_len = if self.protocol == protocol::IKE { 0 } else { 4 };
        let mut v = vec![self.protocol, spi_len];
        v.extend_from_slice(&(self.spis.len() as u16).to_be_bytes());
        for s in &self.spis {
            v.extend_from_slice(&s.to_be_bytes());
        }
        v
    }
}

/// An identity (RFC 7296 §3.5).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    /// ID Type.
    pub ty: u8,
    /// Identification Data.
    pub data: Vec<u8>,
}

impl Identity {
    /// ID_IPV4_ADDR.
    pub const IPV4: u8 = 1;
    /// ID_FQDN.
    pub const FQDN: u8 = 2;
    /// ID_RFC822_ADDR.
    pub const RFC822: u8 = 3;
    /// ID_IPV6_ADDR.
    pub const IPV6: u8 = 5;
    /// ID_DER_ASN1_DN: the DER of an X.500 distinguished name.
    pub const DER_ASN1_DN: u8 = 9;
    /// ID_KEY_ID.
    pub const KEY_ID: u8 = 11;

    /// An FQDN identity.
    pub fn fqdn(name: &str) -> Identity {
        Identity {
            ty: Identity::FQDN,
            data: name.as_bytes().to_vec(),
        }
    }

    /// An e-mail address identity (ID_RFC822_ADDR).
    pub fn rfc822(addr: &str) -> Identity {
        Identity {
            ty: Identity::RFC822,
            data: addr.as_bytes().to_vec(),
        }
    }

    /// A distinguished name identity (ID_DER_ASN1_DN) from the DER of
    /// the Name.
    pub fn dn(der: &[u8]) -> Identity {
        Identity {
            ty: Identity::DER_ASN1_DN,
            data: der.to_vec(),
        }
    }

    /// An address identity.
    pub fn addr(a: IpAddr) -> Identity {
        match a {
            IpAddr::V4(a) => Identity {
                ty: Identity::IPV4,
                data: a.octets().to_vec(),
            },
            IpAddr::V6(a) => Identity {
                ty: Identity::IPV6,
                data: a.octets().to_vec(),
            },
        }
    }

    fn parse(b: &[u8]) -> Option<Identity> {
        Some(Identity {
            ty: *b.first()?,
            data: b.get(4..)?.to_vec(),
        })
    }

    /// The body: type, three reserved bytes, data (what AUTH covers as
    /// RestOfInitIDPayload / RestOfRespIDPayload).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.ty, 0, 0, 0];
        v.extend_from_slice(&self.data);
        v
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.ty, self.data.len()) {
            (Identity::IPV4, 4) => write!(
                f,
                "{}",
                Ipv4Addr::new(self.data[0], self.data[1], self.data[2], self.data[3])
            ),
            (Identity::IPV6, 16) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&self.data);
                write!(f, "{}", Ipv6Addr::from(a))
            }
            (Identity::FQDN | Identity::RFC822, _) => {
                f.write_str(&String::from_utf8_lossy(&self.data))
            }
            (Identity::DER_ASN1_DN, _) => {
                use x509_parser::prelude::FromDer;
                match x509_parser::prelude::X509Name::from_der(&self.data) {
                    Ok((_, n)) => write!(f, "{n}"),
                    Err(_) => write!(f, "dn:{} bytes", self.data.len()),
                }
            }
            _ => write!(f, "id{}:{} bytes", self.ty, self.data.len()),
        }
    }
}

/// A traffic selector (RFC 7296 §3.13.1): an address range, a port range
/// and an IP protocol (0 = any).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    /// IP protocol, 0 for any.
    pub proto: u8,
    /// First port.
    pub start_port: u16,
    /// Last port.
    pub end_port: u16,
    /// First address.
    pub start: IpAddr,
    /// Last address (same family as `start`).
    pub end: IpAddr,
}

/// TS_IPV4_ADDR_RANGE.
pub const TS_IPV4: u8 = 7;
/// TS_IPV6_ADDR_RANGE.
pub const TS_IPV6: u8 = 8;

impl TrafficSelector {
    /// Every port and protocol of `prefix/len`.
    pub fn prefix(prefix: IpAddr, len: u8) -> TrafficSelector {
        let (start, end) = match prefix {
            IpAddr::V4(a) => {
                let len = u32::from(len.min(32));
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                let s = u32::from(a) & mask;
                (
                    IpAddr::V4(Ipv4Addr::from(s)),
                    IpAddr::V4(Ipv4Addr::from(s | !mask)),
                )
            }
            IpAddr::V6(a) => {
                let len = u32::from(len.min(128));
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                let s = u128::from(a) & mask;
                (
                    IpAddr::V6(Ipv6Addr::from(s)),
                    IpAddr::V6(Ipv6Addr::from(s | !mask)),
                )
            }
        };
        TrafficSelector {
            proto: 0,
            start_port: 0,
            end_port: 65535,
            start,
            end,
        }
    }

    /// The part of `self` that is also in `other`, if any.
    pub fn intersect(&self, other: &TrafficSelector) -> Option<TrafficSelector> {
        let proto = match (self.proto, other.proto) {
            (0, p) | (p, 0) => p,
            (a, b) if a == b => a,
            _ => return None,
        };
        let start_port = self.start_port.max(other.start_port);
        let end_port = self.end_port.min(other.end_port);
        if start_port > end_port {
            return None;
        }
        let (start, end) = match (self.start, self.end, other.start, other.end) {
            (IpAddr::V4(a), IpAddr::V4(b), IpAddr::V4(c), IpAddr::V4(d)) => {
                let s = u32::from(a).max(u32::from(c));
                let e = u32::from(b).min(u32::from(d));
                if s > e {
                    return None;
                }
                (IpAddr::V4(s.into()), IpAddr::V4(e.into()))
            }
            (IpAddr::V6(a), IpAddr::V6(b), IpAddr::V6(c), IpAddr::V6(d)) => {
                let s = u128::from(a).max(u128::from(c));
                let e = u128::from(b).min(u128::from(d));
                if s > e {
                    return None;
                }
                (IpAddr::V6(s.into()), IpAddr::V6(e.into()))
            }
            _ => return None,
        };
        Some(TrafficSelector {
            proto,
            start_port,
            end_port,
            start,
            end,
        })
    }

    /// Whether `self` lies within `other`.
    pub fn within(&self, other: &TrafficSelector) -> bool {
        self.intersect(other).as_ref() == Some(self)
    }

    fn parse_list(b: &[u8]) -> Option<Vec<TrafficSelector>> {
        let n = usize::from(*b.first()?);
        let mut at = 4;
        let mut v = Vec::with_capacity(n.min(16));
        for _ in 0..n {
            let ty = *b.get(at)?;
            let proto = *b.get(at + 1)?;
            let len = usize::from(be16(b, at + 2)?);
            let sp = be16(b, at + 4)?;
            let ep = be16(b, at + 6)?;
            let alen = match ty {
                TS_IPV4 => 4,
                TS_IPV6 => 16,
                _ => {
                    // Unknown selector types are skipped (RFC 7296 §3.13.1).
                    if len < 8 {
                        return None;
                    }
                    b.get(at..at + len)?;
                    at += len;
                    continue;
                }
            };
            if len != 8 + 2 * alen {
                return None;
            }
            let a = b.get(at + 8..at + 8 + alen)?;
            let e = b.get(at + 8 + alen..at + 8 + 2 * alen)?;
            let (start, end) = if alen == 4 {
                (
                    IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
                    IpAddr::V4(Ipv4Addr::new(e[0], e[1], e[2], e[3])),
                )
            } else {
                let mut x = [0u8; 16];
                let mut y = [0u8; 16];
                x.copy_from_slice(a);
                y.copy_from_slice(e);
                (IpAddr::V6(x.into()), IpAddr::V6(y.into()))
            };
            v.push(TrafficSelector {
                proto,
                start_port: sp,
                end_port: ep,
                start,
                end,
            });
            at += len;
        }
        if at != b.len() {
            return None;
        }
        Some(v)
    }

    /// A TSi/TSr body.
    pub fn encode_list(list: &[TrafficSelector]) -> Vec<u8> {
        let mut v = vec![list.len() as u8, 0, 0, 0];
        for ts in list {
            let (ty, len) = match ts.start {
                IpAddr::V4(_) => (TS_IPV4, 16u16),
                IpAddr::V6(_) => (TS_IPV6, 40u16),
            };
            v.extend_from_slice(&[ty, ts.proto]);
            v.extend_from_slice(&len.to_be_bytes());
            v.extend_from_slice(&ts.start_port.to_be_bytes());
            v.extend_from_slice(&ts.end_port.to_be_bytes());
            for a in [ts.start, ts.end] {
                match a {
                    IpAddr::V4(a) => v.extend_from_slice(&a.octets()),
                    IpAddr::V6(a) => v.extend_from_slice(&a.octets()),
                }
            }
        }
        v
    }
}

impl std::fmt::Display for TrafficSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.start, self.end)?;
        if self.proto != 0 || self.start_port != 0 || self.end_port != 65535 {
            write!(f, "[{}/{}-{}]", self.proto, self.start_port, self.end_port)?;
        }
        Ok(())
    }
}

/// The payloads of one message (outer and decrypted inner together),
/// decoded. Singletons that appear twice are refused.
#[derive(Clone, Debug, Default)]
pub struct Payloads {
    /// SA.
    pub sa: Option<Vec<Proposal>>,
    /// KE: group and key exchange data.
    pub ke: Option<(u16, Vec<u8>)>,
    /// Nonce.
    pub nonce: Option<Vec<u8>>,
    /// IDi.
    pub idi: Option<Identity>,
    /// IDr.
    pub idr: Option<Identity>,
    /// AUTH: method and data.
    pub auth: Option<(u8, Vec<u8>)>,
    /// TSi.
    pub tsi: Option<Vec<TrafficSelector>>,
    /// TSr.
    pub tsr: Option<Vec<TrafficSelector>>,
    /// CERT payloads: encoding and data, in order.
    pub certs: Vec<(u8, Vec<u8>)>,
    /// CERTREQ payloads: encoding and data, in order.
    pub certreqs: Vec<(u8, Vec<u8>)>,
    /// Notifies, in order.
    pub notifies: Vec<Notify>,
    /// Deletes, in order.
    pub deletes: Vec<Delete>,
    /// Payload types seen (for "empty" checks), in order.
    pub types: Vec<u8>,
}

impl Payloads {
    /// Decodes the payloads of a chain.
    pub fn decode(list: &[RawPayload<'_>]) -> Result<Payloads, Malformed> {
        let mut p = Payloads::default();
        for r in list {
            let bad = Malformed::Syntax(r.ty);
            p.types.push(r.ty);
            fn once<T>(
                slot: &mut Option<T>,
                v: Option<T>,
                bad: Malformed,
            ) -> Result<(), Malformed> {
                if slot.is_some() {
                    return Err(bad);
                }
                *slot = Some(v.ok_or(bad)?);
                Ok(())
            }
            match r.ty {
                payload::SA => once(&mut p.sa, Proposal::parse_sa(r.body), bad)?,
                payload::KE => {
                    let v = (|| {
                        let g = be16(r.body, 0)?;
                        let d = r.body.get(4..)?;
                        (!d.is_empty()).then(|| (g, d.to_vec()))
                    })();
                    once(&mut p.ke, v, bad)?
                }
                payload::NONCE => {
                    let ok = (16..=256).contains(&r.body.len());
                    once(&mut p.nonce, ok.then(|| r.body.to_vec()), bad)?
                }
                payload::IDI => once(&mut p.idi, Identity::parse(r.body), bad)?,
                payload::IDR => once(&mut p.idr, Identity::parse(r.body), bad)?,
                payload::AUTH => {
                    let v = (r.body.len() > 4).then(|| (r.body[0], r.body[4..].to_vec()));
                    once(&mut p.auth, v, bad)?
                }
                payload::TSI => once(&mut p.tsi, TrafficSelector::parse_list(r.body), bad)?,
                payload::TSR => once(&mut p.tsr, TrafficSelector::parse_list(r.body), bad)?,
                payload::CERT | payload::CERTREQ => {
                    let (&enc, data) = r.body.split_first().ok_or(bad)?;
                    let v = (enc, data.to_vec());
                    if r.ty == payload::CERT {
                        p.certs.push(v);
                    } else {
                        p.certreqs.push(v);
                    }
                }
                payload::NOTIFY => p.notifies.push(Notify::parse(r.body).ok_or(bad)?),
                payload::DELETE => p.deletes.push(Delete::parse(r.body).ok_or(bad)?),
                _ => {}
            }
        }
        Ok(p)
    }

    /// The first notify of type `ty`.
    pub fn notify(&self, ty: u16) -> Option<&Notify> {
        self.notifies.iter().find(|n| n.ty == ty)
    }

    /// The first error notify, if any.
    pub fn error(&self) -> Option<u16> {
        self.notifies
            .iter()
            .map(|n| n.ty)
            .find(|&t| notify::is_error(t))
    }
}

/// Payloads to send, in order: (type, body).
#[derive(Clone, Debug, Default)]
pub struct Builder {
    list: Vec<(u8, Vec<u8>)>,
}

impl Builder {
    /// An empty list.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Appends a payload.
    pub fn push(&mut self, ty: u8, body: Vec<u8>) -> &mut Builder {
        self.list.push((ty, body));
        self
    }

    /// Appends a notify.
    pub fn notify(&mut self, n: &Notify) -> &mut Builder {
        self.push(payload::NOTIFY, n.encode())
    }

    /// The first payload's type.
    pub fn first(&self) -> u8 {
        self.list.first().map_or(payload::NONE, |p| p.0)
    }

    /// The chained payloads' bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for (i, (_, body)) in self.list.iter().enumerate() {
            let next = self.list.get(i + 1).map_or(payload::NONE, |p| p.0);
            v.push(next);
            v.push(0);
            v.extend_from_slice(&((body.len() + PAYLOAD_HEADER_LEN) as u16).to_be_bytes());
            v.extend_from_slice(body);
        }
        v
    }
}

/// An unencrypted message: header and payloads.
pub fn plain_message(mut h: Header, b: &Builder) -> Vec<u8> {
    let body = b.encode();
    h.next = b.first();
    h.version = VERSION;
    h.length = (HEADER_LEN + body.len()) as u32;
    let mut v = Vec::with_capacity(h.length as usize);
    h.write(&mut v);
    v.extend_from_slice(&body);
    v
}
