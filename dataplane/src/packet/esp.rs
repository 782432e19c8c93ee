//! ESP packet layout (RFC 4303) as carried with AES-GCM (RFC 4106).
//!
//! ```text
//! | SPI (4) | seq (4) | IV (8) | ciphertext: payload | pad | pad len | next hdr | ICV (16) |
//! ```
//!
//! This module only locates the fields; the AEAD is applied elsewhere.

use super::{Error, Result};
use zerocopy::network_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Length of SPI + sequence number.
pub const HEADER_LEN: usize = 8;
/// Length of the explicit IV (RFC 4106 §3.1).
pub const IV_LEN: usize = 8;
/// Length of the integrity check value (16-byte GCM tag).
pub const ICV_LEN: usize = 16;
/// Length of pad length + next header.
pub const TRAILER_LEN: usize = 2;
/// Smallest ESP packet: header, IV, trailer and ICV around an empty payload.
pub const MIN_LEN: usize = HEADER_LEN + IV_LEN + TRAILER_LEN + ICV_LEN;

/// Wire layout of the ESP header.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct EspHeader {
    /// Security parameters index.
    pub spi: U32,
    /// Sequence number (low 32 bits with ESN).
    pub seq: U32,
}

header_view! {
    /// A view of an ESP packet (from the SPI to the end of the ICV) over a
    /// byte buffer.
    EspPacket => EspHeader
}

/// The parts of an ESP packet borrowed at once, as an in-place AEAD needs
/// them: AAD and nonce read-only, ciphertext and tag writable.
#[derive(Debug)]
pub struct EspSections<'a> {
    /// SPI and sequence number (the AAD without ESN).
    pub header: &'a [u8],
    /// Explicit IV.
    pub iv: &'a [u8],
    /// Encrypted payload, padding, pad length and next header.
    pub ciphertext: &'a mut [u8],
    /// Integrity check value.
    pub icv: &'a mut [u8],
}

impl<T: AsRef<[u8]>> EspPacket<T> {
    /// Wraps `buf`, checking that it holds at least header, IV, trailer
    /// and ICV (`MIN_LEN` bytes). The ICV is taken from the end of `buf`.
    #[inline]
    pub fn new_checked(buf: T) -> Result<Self> {
        if buf.as_ref().len() < MIN_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer: buf })
    }

    /// Security parameters index.
    #[inline]
    pub fn spi(&self) -> u32 {
        self.header().map_or(0, |h| h.spi.get())
    }

    /// Sequence number (low 32 bits).
    #[inline]
    pub fn seq(&self) -> u32 {
        self.header().map_or(0, |h| h.seq.get())
    }

    /// Explicit IV.
    #[inline]
    pub fn iv(&self) -> [u8; IV_LEN] {
        self.buffer
            .as_ref()
            .get(HEADER_LEN..)
            .and_then(|b| <[u8; IV_LEN]>::read_from_prefix(b).ok())
            .map_or([0; IV_LEN], |(iv, _)| iv)
    }

    /// SPI and sequence number bytes (the AAD without ESN).
    #[inline]
    pub fn header_bytes(&self) -> &[u8] {
        self.buffer.as_ref().get(..HEADER_LEN).unwrap_or(&[])
    }

    /// Encrypted part: from after the IV to before the ICV.
    #[inline]
    pub fn ciphertext(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = b.len().saturating_sub(ICV_LEN);
        b.get(HEADER_LEN + IV_LEN..end).unwrap_or(&[])
    }

    /// Integrity check value: the last `ICV_LEN` bytes.
    #[inline]
    pub fn icv(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN + IV_LEN + ICV_LEN {
            return &[];
        }
        b.get(b.len() - ICV_LEN..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EspPacket<T> {
    /// Sets the security parameters index.
    #[inline]
    pub fn set_spi(&mut self, spi: u32) {
        if let Some(h) = self.header_mut() {
            h.spi.set(spi);
        }
    }

    /// Sets the sequence number (low 32 bits).
    #[inline]
    pub fn set_seq(&mut self, seq: u32) {
        if let Some(h) = self.header_mut() {
            h.seq.set(seq);
        }
    }

    /// Sets the explicit IV.
    #[inline]
    pub fn set_iv(&mut self, iv: [u8; IV_LEN]) {
        if let Some(b) = self
            .buffer
            .as_mut()
            .get_mut(HEADER_LEN..HEADER_LEN + IV_LEN)
        {
            b.copy_from_slice(&iv);
        }
    }

    /// Header, IV, ciphertext and ICV borrowed together. On a buffer
    /// shorter than `MIN_LEN` (unchecked view) the missing parts are empty.
    #[inline]
    pub fn sections_mut(&mut self) -> EspSections<'_> {
        let b = self.buffer.as_mut();
        let (header, rest) = b.split_at_mut(HEADER_LEN.min(b.len()));
        let (iv, rest) = rest.split_at_mut(IV_LEN.min(rest.len()));
        let icv_at = rest.len().saturating_sub(ICV_LEN);
        let (ciphertext, icv) = rest.split_at_mut(icv_at);
        EspSections {
            header,
            iv,
            ciphertext,
            icv,
        }
    }
}

/// Writes SPI and sequence number at buf[..8] (Err(Truncated) if short).
#[inline]
pub fn write_header(buf: &mut [u8], spi: u32, seq: u32) -> Result<()> {
    EspHeader {
        spi: U32::new(spi),
        seq: U32::new(seq),
    }
    .write_to_prefix(buf)
    .map_err(|_| Error::Truncated)
}

/// Padding for a payload so that payload+pad+2 is a multiple of 4 (RFC 4303 §2.4 with a 4-byte-aligned cipher block such as GCM).
#[inline]
pub fn pad_len(payload_len: usize) -> usize {
    payload_len.wrapping_add(TRAILER_LEN).wrapping_neg() % 4
}

/// Bytes on the wire for an ESP packet carrying `payload_len` bytes:
/// header, IV, payload, padding, trailer and ICV.
#[inline]
pub fn encapsulated_len(payload_len: usize) -> usize {
    HEADER_LEN + IV_LEN + payload_len + pad_len(payload_len) + TRAILER_LEN + ICV_LEN
}

/// What the trailer of a decrypted ESP payload says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Length of the inner payload (before the padding).
    pub payload_len: usize,
    /// Number of padding bytes.
    pub pad_len: usize,
    /// Protocol of the inner payload (4 = IPv4, 41 = IPv6).
    pub next_header: u8,
}

/// Writes padding 1, 2, 3, ... (RFC 4303 §2.4 default), the pad length and
/// the next header at the start of `buf` (`pad_len + 2` bytes).
/// Err(Malformed) if `pad_len` > 255, Err(Truncated) if `buf` is short.
#[inline]
pub fn write_trailer(buf: &mut [u8], pad_len: usize, next_header: u8) -> Result<()> {
    let pad = u8::try_from(pad_len).map_err(|_| Error::Malformed)?;
    let t = buf
        .get_mut(..pad_len + TRAILER_LEN)
        .ok_or(Error::Truncated)?;
    for (i, b) in t[..pad_len].iter_mut().enumerate() {
        *b = (i + 1) as u8;
    }
    t[pad_len] = pad;
    t[pad_len + 1] = next_header;
    Ok(())
}

/// Reads the trailer at the end of a decrypted payload (`plaintext` ends
/// with the next-header byte). Err(Truncated) if shorter than the trailer
/// claims, Err(Malformed) if the padding is not 1, 2, 3, ...
#[inline]
pub fn read_trailer(plaintext: &[u8]) -> Result<Trailer> {
    let n = plaintext.len();
    let [pad, next_header] = match plaintext.get(n.wrapping_sub(TRAILER_LEN)..) {
        Some(&[p, nh]) => [p, nh],
        _ => return Err(Error::Truncated),
    };
    let pad_len = usize::from(pad);
    let payload_len = n
        .checked_sub(TRAILER_LEN + pad_len)
        .ok_or(Error::Truncated)?;
    let padding = plaintext
        .get(payload_len..payload_len + pad_len)
        .ok_or(Error::Truncated)?;
    if padding
        .iter()
        .enumerate()
        .any(|(i, &b)| usize::from(b) != i + 1)
    {
        return Err(Error::Malformed);
    }
    Ok(Trailer {
        payload_len,
        pad_len,
        next_header,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Hand-built packet: SPI 0x00004321, seq 0x0000000a, IV
    // 0xcafebabefacedbad, 4 bytes of ciphertext incl. trailer, 16-byte ICV.
    fn sample() -> Vec<u8> {
        let mut p = vec![0x00, 0x00, 0x43, 0x21, 0x00, 0x00, 0x00, 0x0a];
        p.extend_from_slice(&[0xca, 0xfe, 0xba, 0xbe, 0xfa, 0xce, 0xdb, 0xad]);
        p.extend_from_slice(&[0x11, 0x22, 0x33, 0x44]);
        p.extend_from_slice(&[0xee; ICV_LEN]);
        p
    }

    #[test]
    fn known_layout() {
        assert_eq!(core::mem::size_of::<EspHeader>(), HEADER_LEN);
        let b = sample();
        let p = EspPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.spi(), 0x4321);
        assert_eq!(p.seq(), 10);
        assert_eq!(p.iv(), [0xca, 0xfe, 0xba, 0xbe, 0xfa, 0xce, 0xdb, 0xad]);
        assert_eq!(p.header_bytes(), &b[..8]);
        assert_eq!(p.ciphertext(), &[0x11, 0x22, 0x33, 0x44]);
        assert_eq!(p.icv(), &[0xee; ICV_LEN]);
    }

    #[test]
    fn setters_and_sections() {
        let mut b = vec![0u8; sample().len()];
        write_header(&mut b, 0x4321, 10).unwrap();
        let mut p = EspPacket::new_checked(&mut b[..]).unwrap();
        p.set_iv([0xca, 0xfe, 0xba, 0xbe, 0xfa, 0xce, 0xdb, 0xad]);
        let s = p.sections_mut();
        assert_eq!(s.header, &[0, 0, 0x43, 0x21, 0, 0, 0, 0x0a]);
        assert_eq!(s.iv.len(), IV_LEN);
        s.ciphertext.copy_from_slice(&[0x11, 0x22, 0x33, 0x44]);
        s.icv.fill(0xee);
        assert_eq!(b, sample());
        let mut p = EspPacket::new_checked(&mut b[..]).unwrap();
        p.set_spi(1);
        p.set_seq(u32::MAX);
        assert_eq!((p.spi(), p.seq()), (1, u32::MAX));
    }

    #[test]
    fn pad_len_aligns_to_four() {
        assert_eq!(pad_len(0), 2);
        assert_eq!(pad_len(1), 1);
        assert_eq!(pad_len(2), 0);
        assert_eq!(pad_len(3), 3);
        assert_eq!(pad_len(1400), 2);
        assert_eq!(pad_len(usize::MAX), 3);
        assert_eq!(
            encapsulated_len(2),
            HEADER_LEN + IV_LEN + 2 + TRAILER_LEN + ICV_LEN
        );
    }

    #[test]
    fn trailer_known_bytes() {
        let mut b = [0u8; 7];
        b[0..2].copy_from_slice(&[0xab, 0xcd]);
        write_trailer(&mut b[2..], 3, 4).unwrap();
        assert_eq!(b, [0xab, 0xcd, 1, 2, 3, 3, 4]);
        assert_eq!(
            read_trailer(&b),
            Ok(Trailer {
                payload_len: 2,
                pad_len: 3,
                next_header: 4
            })
        );
        b[3] = 9;
        assert_eq!(read_trailer(&b), Err(Error::Malformed));
        assert_eq!(read_trailer(&[0, 4, 4]), Err(Error::Truncated));
        assert_eq!(
            write_trailer(&mut [0u8; 300], 256, 4),
            Err(Error::Malformed)
        );
        assert_eq!(write_trailer(&mut [0u8; 4], 3, 4), Err(Error::Truncated));
    }

    #[test]
    fn truncated_at_every_length() {
        let b = sample();
        for n in 0..MIN_LEN {
            assert_eq!(
                EspPacket::new_checked(&b[..n]),
                Err(Error::Truncated),
                "len {n}"
            );
            let mut short = b[..n].to_vec();
            assert_eq!(read_trailer(&short[..n.min(1)]), Err(Error::Truncated));
            let mut p = EspPacket::new_unchecked(&mut short[..]);
            let _ = (
                p.spi(),
                p.seq(),
                p.iv(),
                p.ciphertext(),
                p.icv(),
                p.header_bytes(),
            );
            p.set_iv([1; 8]);
            p.set_seq(1);
            let s = p.sections_mut();
            assert_eq!(
                s.header.len() + s.iv.len() + s.ciphertext.len() + s.icv.len(),
                n
            );
            if n < HEADER_LEN {
                assert_eq!(write_header(&mut short, 1, 2), Err(Error::Truncated));
            }
        }
        assert!(EspPacket::new_checked(&b[..MIN_LEN]).is_ok());
    }

    proptest! {
        #[test]
        fn build_parse_round_trip(
            spi in any::<u32>(), seq in any::<u32>(), iv in any::<[u8; 8]>(),
            payload in proptest::collection::vec(any::<u8>(), 0..80), nh in any::<u8>(),
            icv in any::<[u8; 16]>(),
        ) {
            let pad = pad_len(payload.len());
            prop_assert!(pad < 4);
            prop_assert_eq!((payload.len() + pad + TRAILER_LEN) % 4, 0);
            let mut buf = vec![0u8; encapsulated_len(payload.len())];
            write_header(&mut buf, spi, seq).unwrap();
            let mut p = EspPacket::new_checked(&mut buf[..]).unwrap();
            p.set_iv(iv);
            let s = p.sections_mut();
            s.ciphertext[..payload.len()].copy_from_slice(&payload);
            write_trailer(&mut s.ciphertext[payload.len()..], pad, nh).unwrap();
            s.icv.copy_from_slice(&icv);

            let p = EspPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!((p.spi(), p.seq(), p.iv()), (spi, seq, iv));
            prop_assert_eq!(p.icv(), &icv[..]);
            let t = read_trailer(p.ciphertext()).unwrap();
            prop_assert_eq!(t, Trailer { payload_len: payload.len(), pad_len: pad, next_header: nh });
            prop_assert_eq!(&p.ciphertext()[..t.payload_len], &payload[..]);
        }
    }
}
