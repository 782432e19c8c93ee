//! MPLS label stack entries (RFC 3032 §2.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                Label                  | TC  |S|       TTL     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::{Error, Result};
use zerocopy::network_endian::U32;
use zerocopy::{FromBytes, IntoBytes};

/// Length of one label stack entry.
pub const ENTRY_LEN: usize = 4;

/// Largest label value (20 bits).
pub const MAX_LABEL: u32 = (1 << 20) - 1;

/// Reserved label values (RFC 3032 §2.1, RFC 7274); 0-15 are reserved.
pub mod reserved {
    /// IPv4 Explicit NULL.
    pub const IPV4_EXPLICIT_NULL: u32 = 0;
    /// Router Alert.
    pub const ROUTER_ALERT: u32 = 1;
    /// IPv6 Explicit NULL.
    pub const IPV6_EXPLICIT_NULL: u32 = 2;
    /// Implicit NULL (signalled only, never on the wire).
    pub const IMPLICIT_NULL: u32 = 3;
    /// First label value free for ordinary use.
    pub const FIRST_UNRESERVED: u32 = 16;
}

const LABEL_SHIFT: u32 = 12;
const TC_SHIFT: u32 = 9;
const TC_MASK: u32 = 0x7;
const BOS_BIT: u32 = 1 << 8;
const TTL_MASK: u32 = 0xff;

/// One label stack entry, held as the host-order value of its 32 wire bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MplsEntry(pub u32);

impl MplsEntry {
    /// Builds an entry; `label` is masked to 20 bits and `tc` to 3 bits.
    #[inline]
    pub fn new(label: u32, tc: u8, bos: bool, ttl: u8) -> Self {
        MplsEntry(
            (label & MAX_LABEL) << LABEL_SHIFT
                | (u32::from(tc) & TC_MASK) << TC_SHIFT
                | if bos { BOS_BIT } else { 0 }
                | u32::from(ttl),
        )
    }

    /// Label value (20 bits).
    #[inline]
    pub fn label(self) -> u32 {
        self.0 >> LABEL_SHIFT
    }

    /// Traffic class (3 bits, formerly EXP).
    #[inline]
    pub fn tc(self) -> u8 {
        ((self.0 >> TC_SHIFT) & TC_MASK) as u8
    }

    /// Bottom-of-stack bit (S).
    #[inline]
    pub fn bos(self) -> bool {
        self.0 & BOS_BIT != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(self) -> u8 {
        (self.0 & TTL_MASK) as u8
    }

    /// The same entry with another label (masked to 20 bits).
    #[inline]
    pub fn with_label(self, label: u32) -> Self {
        MplsEntry((self.0 & !(MAX_LABEL << LABEL_SHIFT)) | (label & MAX_LABEL) << LABEL_SHIFT)
    }

    /// The same entry with another traffic class (masked to 3 bits).
    #[inline]
    pub fn with_tc(self, tc: u8) -> Self {
        MplsEntry((self.0 & !(TC_MASK << TC_SHIFT)) | (u32::from(tc) & TC_MASK) << TC_SHIFT)
    }

    /// The same entry with another TTL.
    #[inline]
    pub fn with_ttl(self, ttl: u8) -> Self {
        MplsEntry((self.0 & !TTL_MASK) | u32::from(ttl))
    }

    /// The same entry with the bottom-of-stack bit set or cleared.
    #[inline]
    pub fn with_bos(self, bos: bool) -> Self {
        MplsEntry((self.0 & !BOS_BIT) | if bos { BOS_BIT } else { 0 })
    }

    /// Reads the entry at the start of `buf` (Err(Truncated) if short).
    #[inline]
    pub fn read(buf: &[u8]) -> Result<Self> {
        U32::read_from_prefix(buf)
            .map(|(v, _)| MplsEntry(v.get()))
            .map_err(|_| Error::Truncated)
    }

    /// Writes the entry at the start of `buf` (Err(Truncated) if short).
    #[inline]
    pub fn write(self, buf: &mut [u8]) -> Result<()> {
        U32::new(self.0)
            .write_to_prefix(buf)
            .map_err(|_| Error::Truncated)
    }

    /// The 4 wire bytes.
    #[inline]
    pub fn to_bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }

    /// The entry from its 4 wire bytes.
    #[inline]
    pub fn from_bytes(bytes: [u8; 4]) -> Self {
        MplsEntry(u32::from_be_bytes(bytes))
    }
}

/// Iterator over a label stack, stopping after the entry with S=1; yields Err(Truncated) if the buffer ends first.
#[derive(Debug, Clone)]
pub struct LabelStack<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> LabelStack<'a> {
    /// Bytes after the entries yielded so far (the payload once the
    /// bottom of the stack has been yielded).
    #[inline]
    pub fn remainder(&self) -> &'a [u8] {
        self.rest
    }
}

impl Iterator for LabelStack<'_> {
    type Item = Result<MplsEntry>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match MplsEntry::read(self.rest) {
            Ok(e) => {
                self.rest = self.rest.get(ENTRY_LEN..).unwrap_or(&[]);
                self.done = e.bos();
                Some(Ok(e))
            }
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }
}

impl core::iter::FusedIterator for LabelStack<'_> {}

/// Iterates over the label stack at the start of `buf`.
#[inline]
pub fn label_stack(buf: &[u8]) -> LabelStack<'_> {
    LabelStack {
        rest: buf,
        done: false,
    }
}

/// Length in bytes of the stack at the start of buf (through S=1).
#[inline]
pub fn stack_len(buf: &[u8]) -> Result<usize> {
    let mut len = 0;
    for e in label_stack(buf) {
        e?;
        len += ENTRY_LEN;
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_entry() {
        // Label 1000 (0x003E8), TC 0, S=1, TTL 255: 00 3E 81 FF.
        let bytes = [0x00, 0x3e, 0x81, 0xff];
        let e = MplsEntry::read(&bytes).unwrap();
        assert_eq!(e, MplsEntry(0x003e_81ff));
        assert_eq!((e.label(), e.tc(), e.bos(), e.ttl()), (1000, 0, true, 255));
        assert_eq!(MplsEntry::new(0x003e8, 0, true, 255).to_bytes(), bytes);

        // Max label, TC 7, S=0, TTL 64: FF FF FE 40.
        let e = MplsEntry::new(MAX_LABEL, 7, false, 64);
        assert_eq!(e.to_bytes(), [0xff, 0xff, 0xfe, 0x40]);
        assert_eq!(MplsEntry::from_bytes(e.to_bytes()), e);
    }

    #[test]
    fn with_changes_one_field() {
        let e = MplsEntry::new(16, 5, false, 64);
        assert_eq!(
            e.with_label(MAX_LABEL),
            MplsEntry::new(MAX_LABEL, 5, false, 64)
        );
        assert_eq!(e.with_ttl(1), MplsEntry::new(16, 5, false, 1));
        assert_eq!(e.with_bos(true), MplsEntry::new(16, 5, true, 64));
        assert_eq!(e.with_bos(true).with_bos(false), e);
        assert_eq!(e.with_tc(2), MplsEntry::new(16, 2, false, 64));
        // Out-of-range inputs are masked, not spilled into other fields.
        assert_eq!(
            MplsEntry::new(1 << 20 | 7, 0xff, false, 0),
            MplsEntry::new(7, 7, false, 0)
        );
        assert_eq!(e.with_label(u32::MAX).tc(), 5);
    }

    #[test]
    fn stack_walk() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&MplsEntry::new(100, 0, false, 64).to_bytes());
        buf.extend_from_slice(&MplsEntry::new(200, 1, false, 63).to_bytes());
        buf.extend_from_slice(&MplsEntry::new(300, 2, true, 62).to_bytes());
        buf.extend_from_slice(&[0x45, 0x00]);
        let mut it = label_stack(&buf);
        let labels: Vec<u32> = it.by_ref().map(|e| e.unwrap().label()).collect();
        assert_eq!(labels, [100, 200, 300]);
        assert_eq!(it.remainder(), &[0x45, 0x00]);
        assert_eq!(stack_len(&buf), Ok(12));
    }

    #[test]
    fn truncated_at_every_length() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&MplsEntry::new(100, 0, false, 64).to_bytes());
        buf.extend_from_slice(&MplsEntry::new(300, 2, true, 62).to_bytes());
        for n in 0..buf.len() {
            assert_eq!(stack_len(&buf[..n]), Err(Error::Truncated), "len {n}");
            let items: Vec<_> = label_stack(&buf[..n]).collect();
            assert_eq!(items.last(), Some(&Err(Error::Truncated)));
            assert!(items[..items.len() - 1].iter().all(|e| e.is_ok()));
        }
        for n in 0..ENTRY_LEN {
            assert_eq!(MplsEntry::read(&buf[..n]), Err(Error::Truncated));
            let mut short = [0u8; ENTRY_LEN];
            assert_eq!(MplsEntry(1).write(&mut short[..n]), Err(Error::Truncated));
        }
    }

    proptest! {
        #[test]
        fn build_parse_round_trip(label in 0..=MAX_LABEL, tc in 0u8..8, bos in any::<bool>(), ttl in any::<u8>()) {
            let e = MplsEntry::new(label, tc, bos, ttl);
            prop_assert_eq!((e.label(), e.tc(), e.bos(), e.ttl()), (label, tc, bos, ttl));
            let mut b = [0u8; 6];
            e.write(&mut b[1..]).unwrap();
            prop_assert_eq!(MplsEntry::read(&b[1..]), Ok(e));
            prop_assert_eq!(&b[1..5], &e.to_bytes()[..]);
        }

        #[test]
        fn stack_round_trip(labels in proptest::collection::vec(0..=MAX_LABEL, 1..8), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let mut buf = Vec::new();
            for (i, &l) in labels.iter().enumerate() {
                buf.extend_from_slice(&MplsEntry::new(l, 0, i + 1 == labels.len(), 64).to_bytes());
            }
            buf.extend_from_slice(&tail);
            let got: Vec<u32> = label_stack(&buf).map(|e| e.unwrap().label()).collect();
            prop_assert_eq!(got, labels.clone());
            prop_assert_eq!(stack_len(&buf), Ok(labels.len() * ENTRY_LEN));
        }
    }
}
