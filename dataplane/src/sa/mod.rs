//! Security associations: RFC 4106 AES-GCM keys, outbound sequence numbers,
//! inbound anti-replay state and each SA's lifetime. Key material is
//! zeroized on drop and never printed.

pub mod aead;
#[cfg(feature = "ipsec-mb")]
pub mod ipsec_mb;
pub mod lifetime;
pub mod replay;

use crate::config::{AeadAlg, SaConfig, SaDir};
use aead::{Aead, ChosenGcm};
use lifetime::SaLife;
pub use lifetime::{Lifetime, Limits};
use replay::ReplayWindow;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use zeroize::Zeroizing;

/// An SA could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SaError {
    /// Key plus salt have the wrong length for the algorithm.
    #[error("SA {spi}: key material has {got} bytes, {alg:?} needs {want}")]
    KeyLength {
        /// SPI.
        spi: u32,
        /// Algorithm.
        alg: AeadAlg,
        /// Bytes given.
        got: usize,
        /// Bytes needed.
        want: usize,
    },
}

/// AES-GCM as RFC 4106 uses it: a key, a 4-byte salt, the 8-byte IV carried
/// in the packet, nonce = salt || IV, 16-byte ICV. The implementation is
/// the process's (`aead::backend`).
pub struct Gcm {
    aead: ChosenGcm,
    salt: Zeroizing<[u8; 4]>,
}

impl Gcm {
    /// Builds the cipher from key bytes followed by the 4-byte salt.
    pub fn new(alg: AeadAlg, spi: u32, key_and_salt: &[u8]) -> Result<Gcm, SaError> {
        let want = alg.key_len() + 4;
        let err = || SaError::KeyLength {
            spi,
            alg,
            got: key_and_salt.len(),
            want,
        };
        if key_and_salt.len() != want {
            return Err(err());
        }
        let (key, salt) = key_and_salt.split_at(alg.key_len());
        let aead = ChosenGcm::new(alg, key).map_err(|_| err())?;
        let mut s = Zeroizing::new([0u8; 4]);
        s.copy_from_slice(salt);
        Ok(Gcm { aead, salt: s })
    }

    /// The GCM nonce of a packet: salt || IV. The batch paths build it a
    /// pass ahead of the AEAD call (see `stage::esp`).
    #[inline]
    pub fn nonce(&self, iv: [u8; 8]) -> [u8; aead::NONCE_LEN] {
        let mut n = [0u8; aead::NONCE_LEN];
        n[..4].copy_from_slice(&*self.salt);
        n[4..].copy_from_slice(&iv);
        n
    }

    /// Encrypts `buf` in place and returns the ICV; `None` if the AEAD
    /// refused the input, when `buf` may still be plaintext and must not
    /// be sent.
    #[inline]
    pub fn seal(&self, iv: [u8; 8], aad: &[u8], buf: &mut [u8]) -> Option<[u8; 16]> {
        self.aead.seal(&self.nonce(iv), aad, buf)
    }

    /// Verifies the ICV and decrypts `buf` in place; false if forged.
    #[inline]
    pub fn open(&self, iv: [u8; 8], aad: &[u8], buf: &mut [u8], icv: &[u8; 16]) -> bool {
        self.aead.open(&self.nonce(iv), aad, buf, icv)
    }

    /// `seal` with the nonce already built (`nonce`).
    #[inline]
    pub fn seal_with(
        &self,
        nonce: &[u8; aead::NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Option<[u8; 16]> {
        self.aead.seal(nonce, aad, buf)
    }

    /// `open` with the nonce already built (`nonce`).
    #[inline]
    pub fn open_with(
        &self,
        nonce: &[u8; aead::NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        icv: &[u8; 16],
    ) -> bool {
        self.aead.open(nonce, aad, buf, icv)
    }
}

/// An outbound SA: encrypts under `gcm`, numbers packets from 1.
pub struct SaOut {
    /// SPI written in every packet.
    pub spi: u32,
    /// Outer source address.
    pub tunnel_src: Ipv4Addr,
    /// Outer destination address.
    pub tunnel_dst: Ipv4Addr,
    /// Extended (64-bit) sequence numbers.
    pub esn: bool,
    /// ESP in UDP, port 4500 at both ends (RFC 3948).
    pub udp_encap: bool,
    /// The cipher.
    pub gcm: Gcm,
    /// Its lifetime: what it has sealed and the limits it has reached.
    pub life: SaLife,
    seq: AtomicU64,
}

impl SaOut {
    /// The next sequence number, or `None` once the space is exhausted
    /// (2^32-1 without ESN): the SA must then be rekeyed, never wrapped.
    #[inline]
    pub fn next_seq(&self) -> Option<u64> {
        let s = self.seq.fetch_add(1, Relaxed).wrapping_add(1);
        self.life.note_seq(s);
        let limit = if self.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        (s != 0 && s <= limit).then_some(s)
    }

    /// Reserves `n` consecutive sequence numbers with one atomic add (a
    /// batch's worth, instead of one locked add per packet). Numbers past
    /// the SA's space come out of the block as `None`, as from `next_seq`.
    #[inline]
    pub fn reserve_seq(&self, n: u64) -> SeqBlock {
        let n = n.max(1);
        let next = self.seq.fetch_add(n, Relaxed).wrapping_add(1);
        self.life.note_seq(next.saturating_add(n - 1));
        SeqBlock {
            next,
            left: n,
            esn: self.esn,
        }
    }

    /// Sequence numbers used (or reserved) so far.
    pub fn sent(&self) -> u64 {
        self.seq.load(Relaxed)
    }

    /// Starts numbering after `last` (for tests and rekey hand-over).
    pub fn set_last_seq(&self, last: u64) {
        self.seq.store(last, Relaxed);
    }
}

/// Consecutive sequence numbers reserved from one outbound SA.
#[derive(Clone, Copy, Debug, Default)]
pub struct SeqBlock {
    next: u64,
    left: u64,
    esn: bool,
}

impl SeqBlock {
    /// True when every reserved number has been handed out.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.left == 0
    }

    /// The next reserved number: `None` when the block is used up, or for a
    /// number beyond the SA's space (2^32-1 without ESN; never 0).
    #[inline]
    pub fn take(&mut self) -> Option<u64> {
        if self.left == 0 {
            return None;
        }
        let s = self.next;
        self.next = s.wrapping_add(1);
        self.left -= 1;
        let limit = if self.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        (s != 0 && s <= limit).then_some(s)
    }
}

/// An inbound SA: verifies and decrypts, rejects replays.
pub struct SaIn {
    /// SPI looked up from the packet.
    pub spi: u32,
    /// Expected outer source.
    pub tunnel_src: Ipv4Addr,
    /// Expected outer destination (this gateway).
    pub tunnel_dst: Ipv4Addr,
    /// Extended (64-bit) sequence numbers.
    pub esn: bool,
    /// The cipher.
    pub gcm: Gcm,
    /// Anti-replay window.
    pub window: ReplayWindow,
    /// Its lifetime: what it has authenticated and the limits it has
    /// reached.
    pub life: SaLife,
}

/// An SA of either direction, built from configuration (short-lived: it is
/// moved into an `Arc` at once, so the size difference does not matter).
#[allow(clippy::large_enum_variant)]
pub enum Sa {
    /// Encrypting.
    Out(SaOut),
    /// Decrypting.
    In(SaIn),
}

impl Sa {
    /// Builds an SA from its configuration.
    pub fn from_config(c: &SaConfig) -> Result<Sa, SaError> {
        let gcm = Gcm::new(c.aead, c.spi, &c.key)?;
        Ok(match c.dir {
            SaDir::Out => Sa::Out(SaOut {
                spi: c.spi,
                tunnel_src: c.tunnel_src,
                tunnel_dst: c.tunnel_dst,
                esn: c.esn,
                udp_encap: c.udp_encap,
                gcm,
                life: SaLife::new(&c.lifetime, !c.esn),
                seq: AtomicU64::new(0),
            }),
            SaDir::In => Sa::In(SaIn {
                spi: c.spi,
                tunnel_src: c.tunnel_src,
                tunnel_dst: c.tunnel_dst,
                esn: c.esn,
                gcm,
                window: ReplayWindow::new(),
                life: SaLife::new(&c.lifetime, false),
            }),
        })
    }
}

/// Builds the AAD for an ESP packet: SPI || seq, or SPI || seq_hi || seq_lo
/// with ESN (RFC 4106 §5). Returns the buffer and the length used.
#[inline]
pub fn aad(spi: u32, seq: u64, esn: bool) -> ([u8; 12], usize) {
    let mut a = [0u8; 12];
    a[..4].copy_from_slice(&spi.to_be_bytes());
    if esn {
        a[4..12].copy_from_slice(&seq.to_be_bytes());
        (a, 12)
    } else {
        a[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        (a, 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AeadAlg;

    fn sa_out(esn: bool) -> SaOut {
        SaOut {
            spi: 1,
            tunnel_src: Ipv4Addr::LOCALHOST,
            tunnel_dst: Ipv4Addr::LOCALHOST,
            esn,
            udp_encap: false,
            gcm: Gcm::new(AeadAlg::Aes128Gcm, 1, &[7; 20]).expect("key"),
            life: SaLife::new(&Lifetime::NONE, !esn),
            seq: AtomicU64::new(0),
        }
    }

    #[test]
    fn reserved_blocks_count_on_and_stop_at_the_end_of_the_space() {
        let sa = sa_out(false);
        let mut a = sa.reserve_seq(3);
        let mut b = sa.reserve_seq(2);
        assert_eq!(
            [a.take(), a.take(), a.take(), a.take()],
            [Some(1), Some(2), Some(3), None]
        );
        assert_eq!([b.take(), b.take()], [Some(4), Some(5)]);
        assert_eq!(sa.next_seq(), Some(6));
        sa.set_last_seq(u64::from(u32::MAX) - 2);
        let mut c = sa.reserve_seq(4);
        assert_eq!(
            [c.take(), c.take(), c.take(), c.take()],
            [
                Some(u64::from(u32::MAX) - 1),
                Some(u64::from(u32::MAX)),
                None,
                None
            ]
        );
        let esn = sa_out(true);
        esn.set_last_seq(u64::from(u32::MAX));
        assert_eq!(esn.reserve_seq(1).take(), Some(1 << 32));
        esn.set_last_seq(u64::MAX - 1);
        let mut d = esn.reserve_seq(2);
        assert_eq!(
            [d.take(), d.take()],
            [Some(u64::MAX), None],
            "0 is never used"
        );
    }
}
