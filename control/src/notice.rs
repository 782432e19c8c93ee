//! Link-state notices and their acknowledgements on the wire.
//!
//! A node that sees one of its links change originates a *notice*: the
//! link, its new state, the origin, a sequence number and the origination
//! time, signed with the origin's key (see [`crate::signing`]). Neighbours
//! exchange notices and acknowledgements in UDP datagrams to port
//! [`UDP_PORT`], one *message* per datagram:
//!
//! ```text
//! message  = envelope | count records of the message type's fixed length
//!
//! envelope (8 bytes, network byte order):
//!  0       1       2               4                               8
//! +-------+-------+---------------+-------------------------------+
//! |version| type  |     count     |        sender node id         |
//! +-------+-------+---------------+-------------------------------+
//!   version 1; type 1 = notices (flooded), 2 = acks, 3 = sync (notices
//!   sent to a neighbour that just came up); 1 <= count <= the type's
//!   maximum; the datagram is exactly 8 + count * record length bytes.
//!
//! notice record (96 bytes); the signature covers bytes 0..32:
//!  0       1       2       3       4               8              12
//! +-------+-------+-------+-------+---------------+---------------+
//! |version| kind  | state | flags |  origin id    |    link a     |
//! +-------+-------+-------+-------+---------------+---------------+
//! 12              16                              24             32
//! +---------------+-------------------------------+---------------+
//! |    link b     |        sequence (u64)         | origination   |
//! +---------------+-------------------------------+ time, Unix ns |
//! 32                                                   (u64)     96
//! +---------------------------------------------------------------+
//! |                  Ed25519 signature (64 bytes)                 |
//! +---------------------------------------------------------------+
//!   version 1; kind 1 = link state; state 0 = down, 1 = up; flags 0;
//!   link a < link b; the origin is one end of the link.
//!
//! ack record (20 bytes): origin id (4) | link a (4) | link b (4) | sequence (8)
//! ```
//!
//! Parsing never panics: every length is checked before a record is read,
//! and anything this version does not define (a version, a type, a kind, a
//! state, a flag) is a typed [`WireError`].

use crate::schedule::FailureEvent;
use crate::signing::{NoticeSigner, NoticeVerifier, SIGNATURE_LEN};
use crate::topology::NodeId;
use zerocopy::network_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// UDP port of the flooding protocol (both directions). A local choice,
/// not an IANA assignment: next to BFD's 3784/3785/4784 in spirit, clear
/// of them and of the well-known ports; the integrator may move it.
pub const UDP_PORT: u16 = 7784;

/// The only version of the envelope and of the notice record.
pub const VERSION: u8 = 1;

/// Length of the envelope.
pub const ENVELOPE_LEN: usize = 8;

/// Length of a notice record.
pub const NOTICE_LEN: usize = 96;

/// Length of the signed part of a notice record (everything before the
/// signature).
pub const SIGNED_LEN: usize = NOTICE_LEN - SIGNATURE_LEN;

/// Length of an ack record.
pub const ACK_LEN: usize = 20;

/// Largest message: fits an IPv6 minimum-MTU datagram with room to spare
/// for a label stack and tunnel headers.
pub const MAX_MESSAGE_LEN: usize = 1200;

/// Most notice records in one message.
pub const MAX_NOTICES_PER_MESSAGE: usize = (MAX_MESSAGE_LEN - ENVELOPE_LEN) / NOTICE_LEN;

/// Most ack records in one message.
pub const MAX_ACKS_PER_MESSAGE: usize = (MAX_MESSAGE_LEN - ENVELOPE_LEN) / ACK_LEN;

/// The only notice kind defined: the state of a link.
pub const KIND_LINK_STATE: u8 = 1;

/// Message types (the envelope's second byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum MessageType {
    /// Notices being flooded.
    Notices = 1,
    /// Acknowledgements of notices received.
    Acks = 2,
    /// Notices sent to bring a neighbour that just came up up to date (they
    /// may be old by design, so their age says nothing about clocks).
    Sync = 3,
}

impl MessageType {
    /// The type of a wire value.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Notices),
            2 => Some(Self::Acks),
            3 => Some(Self::Sync),
            _ => None,
        }
    }

    /// Length of one record of this type.
    pub fn record_len(self) -> usize {
        match self {
            Self::Notices | Self::Sync => NOTICE_LEN,
            Self::Acks => ACK_LEN,
        }
    }

    /// Most records of this type in one message.
    pub fn max_records(self) -> usize {
        match self {
            Self::Notices | Self::Sync => MAX_NOTICES_PER_MESSAGE,
            Self::Acks => MAX_ACKS_PER_MESSAGE,
        }
    }
}

/// Why bytes are not a valid message or record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than the fixed part needs.
    #[error("truncated: {len} bytes, need at least {need}")]
    Truncated {
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The length does not match the record count.
    #[error("length {len} does not match the record count (expected {expected})")]
    Length {
        /// Bytes present.
        len: usize,
        /// Bytes the header announces.
        expected: usize,
    },
    /// Unknown envelope or notice version.
    #[error("unknown version {0}")]
    Version(u8),
    /// Unknown message type.
    #[error("unknown message type {0}")]
    MessageType(u8),
    /// No records, or more than one message may hold.
    #[error("record count {0} out of range")]
    Count(usize),
    /// Unknown notice kind.
    #[error("unknown notice kind {0}")]
    Kind(u8),
    /// A link state other than down (0) or up (1).
    #[error("unknown link state {0}")]
    State(u8),
    /// Flags this version does not define.
    #[error("unknown flags {0:#04x}")]
    Flags(u8),
    /// A link whose ends are not in increasing order.
    #[error("link {a}-{b} is not canonical (a < b)")]
    Link {
        /// First end.
        a: NodeId,
        /// Second end.
        b: NodeId,
    },
    /// A notice whose origin is not an end of its link (a node speaks for
    /// its own links only).
    #[error("origin {origin} is not an end of link {a}-{b}")]
    Origin {
        /// The claimed origin.
        origin: NodeId,
        /// First end.
        a: NodeId,
        /// Second end.
        b: NodeId,
    },
}

/// A link between two nodes, ends in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Link {
    a: NodeId,
    b: NodeId,
}

impl Link {
    /// The link between `x` and `y` (in either order); `None` if `x == y`.
    pub fn new(x: NodeId, y: NodeId) -> Option<Self> {
        (x != y).then(|| Self {
            a: x.min(y),
            b: x.max(y),
        })
    }

    /// The lower end.
    pub fn a(self) -> NodeId {
        self.a
    }

    /// The higher end.
    pub fn b(self) -> NodeId {
        self.b
    }

    /// True if `n` is an end of the link.
    pub fn has(self, n: NodeId) -> bool {
        self.a == n || self.b == n
    }

    fn checked(a: NodeId, b: NodeId) -> Result<Self, WireError> {
        if a < b {
            Ok(Self { a, b })
        } else {
            Err(WireError::Link { a, b })
        }
    }
}

/// What identifies a notice: origin, link and sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NoticeId {
    /// The node that originated it.
    pub origin: NodeId,
    /// The link it is about.
    pub link: Link,
    /// Its sequence number among the origin's notices about the link.
    pub seq: u64,
}

/// A link-state notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Notice {
    /// The node that originated it (an end of `link`).
    pub origin: NodeId,
    /// The link.
    pub link: Link,
    /// The link's new state.
    pub up: bool,
    /// Sequence number: a higher one supersedes a lower one for the same
    /// origin and link.
    pub seq: u64,
    /// When it was originated, nanoseconds since the Unix epoch on the
    /// origin's clock.
    pub origin_time_ns: u64,
    /// The origin's signature over [`Notice::signed_bytes`].
    pub signature: [u8; SIGNATURE_LEN],
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
struct EnvelopeWire {
    version: u8,
    msg_type: u8,
    count: U16,
    sender: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
struct NoticeWire {
    version: u8,
    kind: u8,
    state: u8,
    flags: u8,
    origin: U32,
    a: U32,
    b: U32,
    seq: U64,
    origin_time: U64,
    signature: [u8; SIGNATURE_LEN],
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
struct AckWire {
    origin: U32,
    a: U32,
    b: U32,
    seq: U64,
}

const _: () = assert!(core::mem::size_of::<EnvelopeWire>() == ENVELOPE_LEN);
const _: () = assert!(core::mem::size_of::<NoticeWire>() == NOTICE_LEN);
const _: () = assert!(core::mem::size_of::<AckWire>() == ACK_LEN);

impl Notice {
    /// A notice signed by `signer` (the origin's key).
    pub fn signed(
        origin: NodeId,
        link: Link,
        up: bool,
        seq: u64,
        origin_time_ns: u64,
        signer: &(impl NoticeSigner + ?Sized),
    ) -> Self {
        let mut n = Self {
            origin,
            link,
            up,
            seq,
            origin_time_ns,
            signature: [0; SIGNATURE_LEN],
        };
        n.signature = signer.sign(&n.signed_bytes());
        n
    }

    /// The notice's identity.
    pub fn id(&self) -> NoticeId {
        NoticeId {
            origin: self.origin,
            link: self.link,
            seq: self.seq,
        }
    }

    /// When every node applies it: origination time plus the flood bound.
    pub fn apply_at_ns(&self, flood_bound_ns: u64) -> u64 {
        self.origin_time_ns.saturating_add(flood_bound_ns)
    }

    /// The routing change it asks for, as the schedule takes it, in a
    /// constellation of `n_sats` satellites (node ids from `n_sats` on are
    /// ground stations): an ISL, or a satellite's link to a ground station;
    /// None for a link between two ground stations.
    pub fn failure_event(&self, n_sats: u32) -> Option<FailureEvent> {
        FailureEvent::of_link(self.link.a, self.link.b, self.up, n_sats)
    }

    fn wire(&self) -> NoticeWire {
        NoticeWire {
            version: VERSION,
            kind: KIND_LINK_STATE,
            state: u8::from(self.up),
            flags: 0,
            origin: U32::new(self.origin),
            a: U32::new(self.link.a),
            b: U32::new(self.link.b),
            seq: U64::new(self.seq),
            origin_time: U64::new(self.origin_time_ns),
            signature: self.signature,
        }
    }

    /// The bytes the origin signs: the encoded record without its signature.
    pub fn signed_bytes(&self) -> [u8; SIGNED_LEN] {
        let mut out = [0; SIGNED_LEN];
        out.copy_from_slice(&self.to_bytes()[..SIGNED_LEN]);
        out
    }

    /// The encoded record.
    pub fn to_bytes(&self) -> [u8; NOTICE_LEN] {
        let mut out = [0; NOTICE_LEN];
        out.copy_from_slice(self.wire().as_bytes());
        out
    }

    /// Decodes one record of exactly [`NOTICE_LEN`] bytes (the signature is
    /// not checked here: see [`Notice::verify`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let w = NoticeWire::ref_from_bytes(bytes).map_err(|_| WireError::Length {
            len: bytes.len(),
            expected: NOTICE_LEN,
        })?;
        Self::from_wire(w)
    }

    fn from_wire(w: &NoticeWire) -> Result<Self, WireError> {
        if w.version != VERSION {
            return Err(WireError::Version(w.version));
        }
        if w.kind != KIND_LINK_STATE {
            return Err(WireError::Kind(w.kind));
        }
        let up = match w.state {
            0 => false,
            1 => true,
            s => return Err(WireError::State(s)),
        };
        if w.flags != 0 {
            return Err(WireError::Flags(w.flags));
        }
        let link = Link::checked(w.a.get(), w.b.get())?;
        let origin = w.origin.get();
        if !link.has(origin) {
            return Err(WireError::Origin {
                origin,
                a: link.a,
                b: link.b,
            });
        }
        Ok(Self {
            origin,
            link,
            up,
            seq: w.seq.get(),
            origin_time_ns: w.origin_time.get(),
            signature: w.signature,
        })
    }

    /// True if the signature is the origin's over the signed bytes.
    pub fn verify(&self, verifier: &(impl NoticeVerifier + ?Sized)) -> bool {
        verifier.verify(self.origin, &self.signed_bytes(), &self.signature)
    }
}

impl AckWire {
    fn of(id: &NoticeId) -> Self {
        Self {
            origin: U32::new(id.origin),
            a: U32::new(id.link.a),
            b: U32::new(id.link.b),
            seq: U64::new(id.seq),
        }
    }

    fn id(&self) -> Result<NoticeId, WireError> {
        Ok(NoticeId {
            origin: self.origin.get(),
            link: Link::checked(self.a.get(), self.b.get())?,
            seq: self.seq.get(),
        })
    }
}

/// A parsed message: its envelope, and its records left to decode one by
/// one (a bad record does not spoil the others).
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    sender: NodeId,
    msg_type: MessageType,
    records: &'a [u8],
}

impl<'a> Message<'a> {
    /// Checks the envelope and the total length.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let (env, records) =
            EnvelopeWire::ref_from_prefix(bytes).map_err(|_| WireError::Truncated {
                len: bytes.len(),
                need: ENVELOPE_LEN,
            })?;
        if env.version != VERSION {
            return Err(WireError::Version(env.version));
        }
        let msg_type =
            MessageType::from_u8(env.msg_type).ok_or(WireError::MessageType(env.msg_type))?;
        let count = usize::from(env.count.get());
        if count == 0 || count > msg_type.max_records() {
            return Err(WireError::Count(count));
        }
        let expected = ENVELOPE_LEN + count * msg_type.record_len();
        if bytes.len() != expected {
            return Err(WireError::Length {
                len: bytes.len(),
                expected,
            });
        }
        Ok(Self {
            sender: env.sender.get(),
            msg_type,
            records,
        })
    }

    /// The neighbour that sent it.
    pub fn sender(&self) -> NodeId {
        self.sender
    }

    /// Its type.
    pub fn msg_type(&self) -> MessageType {
        self.msg_type
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len() / self.msg_type.record_len()
    }

    /// True if it has no records (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Its notices, each decoded on its own (none for an ack message).
    pub fn notices(&self) -> impl Iterator<Item = Result<Notice, WireError>> + 'a {
        let recs: &'a [NoticeWire] = match self.msg_type {
            MessageType::Notices | MessageType::Sync => {
                <[NoticeWire]>::ref_from_bytes(self.records).unwrap_or(&[])
            }
            MessageType::Acks => &[],
        };
        recs.iter().map(Notice::from_wire)
    }

    /// Its acknowledged notices (none for a notice message).
    pub fn acks(&self) -> impl Iterator<Item = Result<NoticeId, WireError>> + 'a {
        let recs: &'a [AckWire] = match self.msg_type {
            MessageType::Acks => <[AckWire]>::ref_from_bytes(self.records).unwrap_or(&[]),
            MessageType::Notices | MessageType::Sync => &[],
        };
        recs.iter().map(AckWire::id)
    }
}

fn envelope(sender: NodeId, msg_type: MessageType, count: usize) -> Result<Vec<u8>, WireError> {
    if count == 0 || count > msg_type.max_records() {
        return Err(WireError::Count(count));
    }
    let env = EnvelopeWire {
        version: VERSION,
        msg_type: msg_type as u8,
        count: U16::new(u16::try_from(count).map_err(|_| WireError::Count(count))?),
        sender: U32::new(sender),
    };
    let mut out = Vec::with_capacity(ENVELOPE_LEN + count * msg_type.record_len());
    out.extend_from_slice(env.as_bytes());
    Ok(out)
}

/// Encodes a notices or sync message; an error for an ack type or for a
/// count outside `1..=MAX_NOTICES_PER_MESSAGE`.
pub fn encode_notices(
    sender: NodeId,
    msg_type: MessageType,
    notices: &[Notice],
) -> Result<Vec<u8>, WireError> {
    if msg_type == MessageType::Acks {
        return Err(WireError::MessageType(msg_type as u8));
    }
    let mut out = envelope(sender, msg_type, notices.len())?;
    for n in notices {
        out.extend_from_slice(n.wire().as_bytes());
    }
    Ok(out)
}

/// Encodes an ack message; an error for a count outside
/// `1..=MAX_ACKS_PER_MESSAGE`.
pub fn encode_acks(sender: NodeId, ids: &[NoticeId]) -> Result<Vec<u8>, WireError> {
    let mut out = envelope(sender, MessageType::Acks, ids.len())?;
    for id in ids {
        out.extend_from_slice(AckWire::of(id).as_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::stand_in::{Keys, NodeSigner};
    use proptest::prelude::*;

    fn notice(seq: u64) -> Notice {
        let keys = Keys::new(7);
        Notice::signed(
            3,
            Link::new(9, 3).expect("link"),
            false,
            seq,
            1_700_000_000_000_000_000,
            &NodeSigner::new(&keys, 3),
        )
    }

    #[test]
    fn sizes_and_limits() {
        assert_eq!(SIGNED_LEN, 32);
        assert_eq!(MAX_NOTICES_PER_MESSAGE, 12);
        assert_eq!(MAX_ACKS_PER_MESSAGE, 59);
        const { assert!(ENVELOPE_LEN + MAX_NOTICES_PER_MESSAGE * NOTICE_LEN <= MAX_MESSAGE_LEN) };
    }

    #[test]
    fn notice_layout_is_as_documented() {
        let n = notice(0x0102_0304_0506_0708);
        let b = n.to_bytes();
        assert_eq!(&b[..4], &[1, 1, 0, 0]);
        assert_eq!(&b[4..8], &3u32.to_be_bytes());
        assert_eq!(&b[8..12], &3u32.to_be_bytes());
        assert_eq!(&b[12..16], &9u32.to_be_bytes());
        assert_eq!(&b[16..24], &0x0102_0304_0506_0708u64.to_be_bytes());
        assert_eq!(&b[24..32], &1_700_000_000_000_000_000u64.to_be_bytes());
        assert_eq!(&b[32..], &n.signature);
        assert_eq!(n.signed_bytes(), b[..32]);
        assert_eq!(Notice::from_bytes(&b), Ok(n));
    }

    #[test]
    fn messages_round_trip() {
        let ns = [notice(1), notice(2)];
        let bytes = encode_notices(42, MessageType::Sync, &ns).expect("encode");
        assert_eq!(&bytes[..8], &[1, 3, 0, 2, 0, 0, 0, 42]);
        let m = Message::parse(&bytes).expect("parse");
        assert_eq!(
            (m.sender(), m.msg_type(), m.len()),
            (42, MessageType::Sync, 2)
        );
        let got: Vec<_> = m.notices().collect();
        assert_eq!(got, vec![Ok(ns[0]), Ok(ns[1])]);
        assert_eq!(m.acks().count(), 0);

        let ids = [ns[0].id(), ns[1].id()];
        let bytes = encode_acks(5, &ids).expect("encode");
        assert_eq!(bytes.len(), ENVELOPE_LEN + 2 * ACK_LEN);
        let m = Message::parse(&bytes).expect("parse");
        assert_eq!(m.acks().collect::<Vec<_>>(), vec![Ok(ids[0]), Ok(ids[1])]);
        assert_eq!(m.notices().count(), 0);
    }

    #[test]
    fn encoders_refuse_what_parsers_would() {
        assert_eq!(
            encode_notices(1, MessageType::Notices, &[]),
            Err(WireError::Count(0))
        );
        let many = vec![notice(1); MAX_NOTICES_PER_MESSAGE + 1];
        assert_eq!(
            encode_notices(1, MessageType::Notices, &many),
            Err(WireError::Count(13))
        );
        assert!(encode_notices(1, MessageType::Acks, &many[..1]).is_err());
        assert_eq!(encode_acks(1, &[]), Err(WireError::Count(0)));
    }

    #[test]
    fn typed_errors() {
        let good = encode_notices(1, MessageType::Notices, &[notice(1)]).expect("encode");
        assert!(matches!(
            Message::parse(&good[..5]),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            Message::parse(&good[..good.len() - 1]),
            Err(WireError::Length { .. })
        ));
        let mut b = good.clone();
        b[0] = 2;
        assert_eq!(Message::parse(&b).err(), Some(WireError::Version(2)));
        let mut b = good.clone();
        b[1] = 9;
        assert_eq!(Message::parse(&b).err(), Some(WireError::MessageType(9)));
        let mut b = good.clone();
        b[3] = 0;
        assert_eq!(Message::parse(&b).err(), Some(WireError::Count(0)));

        let rec = |i: usize, v: u8| {
            let mut b = good.clone();
            b[ENVELOPE_LEN + i] = v;
            let m = Message::parse(&b).expect("envelope intact");
            let first = m.notices().next().expect("one record").err();
            first
        };
        assert_eq!(rec(0, 9), Some(WireError::Version(9)));
        assert_eq!(rec(1, 2), Some(WireError::Kind(2)));
        assert_eq!(rec(2, 2), Some(WireError::State(2)));
        assert_eq!(rec(3, 0x80), Some(WireError::Flags(0x80)));
        // Origin 3 on link 3-9: make the origin 4.
        assert!(matches!(rec(7, 4), Some(WireError::Origin { .. })));
        // Link 3-9 -> 10-9, not canonical.
        assert!(matches!(rec(11, 10), Some(WireError::Link { .. })));
    }

    #[test]
    fn failure_events() {
        let mut n = notice(1);
        assert_eq!(n.failure_event(100), Some(FailureEvent::IslDown(3, 9)));
        assert_eq!(n.failure_event(5), Some(FailureEvent::GslDown(3, 4)));
        assert_eq!(n.failure_event(3), None, "two ground stations");
        n.up = true;
        assert_eq!(n.failure_event(100), Some(FailureEvent::IslUp(3, 9)));
        assert_eq!(n.failure_event(9), Some(FailureEvent::GslUp(3, 0)));
        assert_eq!(n.apply_at_ns(5), n.origin_time_ns + 5);
        assert_eq!(Link::new(4, 4), None);
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1300)) {
            if let Ok(m) = Message::parse(&bytes) {
                prop_assert!(!m.is_empty());
                for n in m.notices().flatten() {
                    prop_assert!(n.link.has(n.origin));
                }
                for id in m.acks().flatten() {
                    prop_assert!(id.link.a() < id.link.b());
                }
            }
            let _ = Notice::from_bytes(&bytes);
        }

        #[test]
        fn well_formed_envelopes_with_arbitrary_records_never_panic(
            t in 0u8..5, count in 0u16..70, mut body in proptest::collection::vec(any::<u8>(), 0..1300)
        ) {
            // Mostly the length the header announces, so the records get read.
            if let Some(mt) = MessageType::from_u8(t) {
                body.resize(usize::from(count) * mt.record_len(), 0);
            }
            let mut b = vec![VERSION, t];
            b.extend_from_slice(&count.to_be_bytes());
            b.extend_from_slice(&77u32.to_be_bytes());
            b.extend_from_slice(&body);
            if let Ok(m) = Message::parse(&b) {
                prop_assert_eq!(m.sender(), 77);
                let decoded = m.notices().count() + m.acks().count();
                prop_assert_eq!(decoded, usize::from(count));
            }
        }

        #[test]
        fn notices_round_trip(origin_is_a in any::<bool>(), x in any::<u32>(), y in any::<u32>(),
                              up in any::<bool>(), seq in any::<u64>(), t in any::<u64>(),
                              sig in proptest::collection::vec(any::<u8>(), 64)) {
            prop_assume!(x != y);
            let link = Link::new(x, y).expect("distinct");
            let mut signature = [0; SIGNATURE_LEN];
            signature.copy_from_slice(&sig);
            let n = Notice {
                origin: if origin_is_a { link.a() } else { link.b() },
                link, up, seq, origin_time_ns: t, signature,
            };
            prop_assert_eq!(Notice::from_bytes(&n.to_bytes()), Ok(n));
        }
    }
}
