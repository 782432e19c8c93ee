//! Security associations: RFC 4106 AES-GCM keys, outbound sequence numbers
//! and inbound anti-replay state. Key material is zeroized on drop and never
//! printed.

pub mod aead;
pub mod replay;

use crate::config::{AeadAlg, SaConfig, SaDir};
use aead::{Aead, SizedGcm};
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
/// chosen per packet size (`aead::SizedGcm`).
pub struct Gcm {
    aead: SizedGcm,
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
        let aead = SizedGcm::new(alg, key).map_err(|_| err())?;
        let mut s = Zeroizing::new([0u8; 4]);
        s.copy_from_slice(salt);
        Ok(Gcm { aead, salt: s })
    }

    #[inline]
    fn nonce(&self, iv: [u8; 8]) -> [u8; aead::NONCE_LEN] {
        let mut n = [0u8; aead::NONCE_LEN];
        n[..4].copy_from_slice(&*self.salt);
        n[4..].copy_from_slice(&iv);
        n
    }

    /// Encrypts `buf` in place and returns the ICV.
    #[inline]
    pub fn seal(&self, iv: [u8; 8], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        // Encryption only fails for inputs beyond GCM's 64 GiB limit, which
        // a frame cannot reach; a zero tag would then fail verification.
        self.aead
            .seal(&self.nonce(iv), aad, buf)
            .unwrap_or([0u8; 16])
    }

    /// Verifies the ICV and decrypts `buf` in place; false if forged.
    #[inline]
    pub fn open(&self, iv: [u8; 8], aad: &[u8], buf: &mut [u8], icv: &[u8; 16]) -> bool {
        self.aead.open(&self.nonce(iv), aad, buf, icv)
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
    /// The cipher.
    pub gcm: Gcm,
    seq: AtomicU64,
}

impl SaOut {
    /// The next sequence number, or `None` once the space is exhausted
    /// (2^32-1 without ESN): the SA must then be rekeyed, never wrapped.
    #[inline]
    pub fn next_seq(&self) -> Option<u64> {
        let s = self.seq.fetch_add(1, Relaxed).wrapping_add(1);
        let limit = if self.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        (s != 0 && s <= limit).then_some(s)
    }

    /// Sequence numbers used so far.
    pub fn sent(&self) -> u64 {
        self.seq.load(Relaxed)
    }

    /// Starts numbering after `last` (for tests and rekey hand-over).
    pub fn set_last_seq(&self, last: u64) {
        self.seq.store(last, Relaxed);
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
                gcm,
                seq: AtomicU64::new(0),
            }),
            SaDir::In => Sa::In(SaIn {
                spi: c.spi,
                tunnel_src: c.tunnel_src,
                tunnel_dst: c.tunnel_dst,
                esn: c.esn,
                gcm,
                window: ReplayWindow::new(),
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
