//! AES-GCM implementations behind one `Aead` trait, the process's choice
//! of implementation and, for the fallback, the per-size choice.
//!
//! Where meshplane is built with the `ipsec-mb` feature (the default) and
//! intel-ipsec-mb has an AES-NI code path for the CPU, every SA uses it
//! (`super::ipsec_mb`): it is the library DPDK's own `crypto_aesni_gcm`
//! runs, and the fastest of all below at every size. Otherwise, or with
//! `MESHPLANE_AEAD=fallback` in the environment, SAs use `SizedGcm`. The
//! choice is made once per process (`backend`) and `meshplane run` logs it.
//!
//! Measured on the same buffers (in-place seal/open, detached 16-byte tag,
//! RFC 4106 nonce and 8-byte AAD, AES-128, Zen 4, `target-cpu=native`;
//! ns per call, seal / open; `stage-bench` prints the first two columns
//! again on any host):
//!
//! | body bytes | `aes-gcm`   | `aws-lc-rs` | `ring`      |
//! |-----------:|------------:|------------:|------------:|
//! |         64 |   45 /  54  |   63 /  59  |   61 /  69  |
//! |         96 |   61 /  65  |   64 /  61  |   63 /  70  |
//! |        512 |  257 / 245  |  101 / 100  |   90 /  95  |
//! |       1420 |  658 / 654  |  148 / 146  |  185 / 173  |
//!
//! RustCrypto's `aes-gcm` has almost no fixed cost per call but runs at
//! about 2.2 GB/s (AES-NI, no VAES in `aes` 0.8); AWS-LC carries ~60 ns per
//! call (EVP dispatch) and reaches ~9.6 GB/s with its VAES/AVX-512 code,
//! 4.4x `aes-gcm` at 1420 B. `ring` is slower than AWS-LC on large packets
//! and does not wipe its keys, so it is not used. `SizedGcm` takes
//! `aes-gcm` for short bodies and AWS-LC from `SEAL_LARGE_FROM` /
//! `OPEN_LARGE_FROM` bytes on. Both produce the same bytes (RFC 4106
//! vectors for each, and a cross-check over every length up to 1600 B, in
//! the tests), so a packet's size never changes its wire form.
//!
//! Key hygiene: `aes-gcm` is built with its `zeroize` feature (round keys and
//! GHASH key wiped on drop). AWS-LC keeps the expanded key inside an
//! `EVP_AEAD_CTX` allocated with `OPENSSL_malloc`; `EVP_AEAD_CTX_free` ends
//! in `OPENSSL_free`, which `OPENSSL_cleanse`s the whole allocation before
//! releasing it. The raw key bytes are never kept by either.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit};
use aws_lc_rs::aead as lc;

use crate::config::AeadAlg;

/// Nonce length (salt || IV, RFC 4106 §4).
pub const NONCE_LEN: usize = 12;
/// ICV length (RFC 4106 uses the full 16-byte tag here).
pub const TAG_LEN: usize = 16;

/// Body length (bytes encrypted) from which `SizedGcm` seals with AWS-LC.
/// Below it `aes-gcm`'s lower fixed cost wins (measured crossover 96 B).
pub const SEAL_LARGE_FROM: usize = 96;
/// Body length from which `SizedGcm` opens with AWS-LC (its open costs less
/// than its seal on short inputs; measured crossover 64..80 B).
pub const OPEN_LARGE_FROM: usize = 72;

/// An AEAD with a 12-byte nonce and a detached 16-byte tag, in place.
pub trait Aead: Send + Sync {
    /// Encrypts `buf` in place and returns the tag; `None` only for inputs
    /// beyond GCM's limit (64 GiB), which no frame reaches.
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_LEN]>;

    /// Verifies `tag` and decrypts `buf` in place. On `false` the frame is
    /// forged and `buf` holds unspecified bytes.
    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> bool;
}

/// The AES-GCM implementation every SA of this process uses.
pub enum Backend {
    /// intel-ipsec-mb's direct API.
    #[cfg(feature = "ipsec-mb")]
    IpsecMb(&'static super::ipsec_mb::Library),
    /// `SizedGcm` (RustCrypto and AWS-LC), and why the library is not used.
    Fallback(String),
}

impl Backend {
    /// One line for the log: which implementation, and why.
    pub fn describe(&self) -> String {
        match self {
            #[cfg(feature = "ipsec-mb")]
            Backend::IpsecMb(lib) => lib.description.clone(),
            Backend::Fallback(why) => {
                format!("RustCrypto aes-gcm below {SEAL_LARGE_FROM} B, AWS-LC above ({why})")
            }
        }
    }
}

/// The environment variable that forces the fallback (`fallback`) or the
/// automatic choice (`auto`, the default).
pub const BACKEND_ENV: &str = "MESHPLANE_AEAD";

/// The process's implementation, chosen on first use.
pub fn backend() -> &'static Backend {
    static CHOSEN: std::sync::OnceLock<Backend> = std::sync::OnceLock::new();
    CHOSEN.get_or_init(|| {
        let asked = std::env::var(BACKEND_ENV).unwrap_or_default();
        match asked.as_str() {
            "fallback" => return Backend::Fallback(format!("{BACKEND_ENV}=fallback")),
            "" | "auto" => {}
            other => {
                tracing::warn!(
                    "{BACKEND_ENV}={other:?} is neither `auto` nor `fallback`; using auto"
                )
            }
        }
        #[cfg(feature = "ipsec-mb")]
        {
            match super::ipsec_mb::library() {
                Ok(lib) => Backend::IpsecMb(lib),
                Err(why) => Backend::Fallback(why.to_string()),
            }
        }
        #[cfg(not(feature = "ipsec-mb"))]
        {
            Backend::Fallback("built without the `ipsec-mb` feature".into())
        }
    })
}

/// AES-GCM through whichever implementation `backend` chose.
pub enum ChosenGcm {
    /// intel-ipsec-mb.
    #[cfg(feature = "ipsec-mb")]
    IpsecMb(super::ipsec_mb::IpsecMbGcm),
    /// The per-size fallback.
    Sized(SizedGcm),
}

impl ChosenGcm {
    /// Expands `key` (16 or 32 bytes as `alg` says) for the process's
    /// implementation.
    pub fn new(alg: AeadAlg, key: &[u8]) -> Result<Self, BadKey> {
        match backend() {
            #[cfg(feature = "ipsec-mb")]
            Backend::IpsecMb(lib) => Ok(ChosenGcm::IpsecMb(super::ipsec_mb::IpsecMbGcm::new(
                lib, alg, key,
            )?)),
            Backend::Fallback(_) => Ok(ChosenGcm::Sized(SizedGcm::new(alg, key)?)),
        }
    }
}

impl Aead for ChosenGcm {
    #[inline]
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        match self {
            #[cfg(feature = "ipsec-mb")]
            ChosenGcm::IpsecMb(g) => g.seal(nonce, aad, buf),
            ChosenGcm::Sized(g) => g.seal(nonce, aad, buf),
        }
    }

    #[inline]
    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> bool {
        match self {
            #[cfg(feature = "ipsec-mb")]
            ChosenGcm::IpsecMb(g) => g.open(nonce, aad, buf, tag),
            ChosenGcm::Sized(g) => g.open(nonce, aad, buf, tag),
        }
    }
}

/// A key had the wrong length for its algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("AES-GCM key of {got} bytes does not match {alg:?}")]
pub struct BadKey {
    /// Algorithm asked for.
    pub alg: AeadAlg,
    /// Bytes given.
    pub got: usize,
}

enum RcCipher {
    A128(Box<Aes128Gcm>),
    A256(Box<Aes256Gcm>),
}

/// RustCrypto `aes-gcm`: cheapest per call, the choice for small packets.
/// Its key schedule is zeroized on drop.
pub struct RustCryptoGcm(RcCipher);

impl RustCryptoGcm {
    /// Expands `key` (16 or 32 bytes as `alg` says).
    pub fn new(alg: AeadAlg, key: &[u8]) -> Result<Self, BadKey> {
        let bad = BadKey {
            alg,
            got: key.len(),
        };
        Ok(RustCryptoGcm(match alg {
            AeadAlg::Aes128Gcm => {
                RcCipher::A128(Box::new(Aes128Gcm::new_from_slice(key).map_err(|_| bad)?))
            }
            AeadAlg::Aes256Gcm => {
                RcCipher::A256(Box::new(Aes256Gcm::new_from_slice(key).map_err(|_| bad)?))
            }
        }))
    }
}

impl Aead for RustCryptoGcm {
    #[inline]
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        let n = aes_gcm::Nonce::from_slice(nonce);
        match &self.0 {
            RcCipher::A128(c) => c.encrypt_in_place_detached(n, aad, buf),
            RcCipher::A256(c) => c.encrypt_in_place_detached(n, aad, buf),
        }
        .ok()
        .map(Into::into)
    }

    #[inline]
    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> bool {
        let n = aes_gcm::Nonce::from_slice(nonce);
        let t = aes_gcm::Tag::from_slice(tag);
        match &self.0 {
            RcCipher::A128(c) => c.decrypt_in_place_detached(n, aad, buf, t),
            RcCipher::A256(c) => c.decrypt_in_place_detached(n, aad, buf, t),
        }
        .is_ok()
    }
}

/// AWS-LC through `aws-lc-rs`: ~60 ns fixed cost, ~4x `aes-gcm`'s rate on
/// large packets. Its key lives in C memory that is cleansed when freed.
pub struct AwsLcGcm(lc::LessSafeKey);

impl AwsLcGcm {
    /// Expands `key` (16 or 32 bytes as `alg` says).
    pub fn new(alg: AeadAlg, key: &[u8]) -> Result<Self, BadKey> {
        let bad = BadKey {
            alg,
            got: key.len(),
        };
        let a = match alg {
            AeadAlg::Aes128Gcm => &lc::AES_128_GCM,
            AeadAlg::Aes256Gcm => &lc::AES_256_GCM,
        };
        if key.len() != alg.key_len() {
            return Err(bad);
        }
        let k = lc::UnboundKey::new(a, key).map_err(|_| bad)?;
        Ok(AwsLcGcm(lc::LessSafeKey::new(k)))
    }
}

impl Aead for AwsLcGcm {
    #[inline]
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        let n = lc::Nonce::assume_unique_for_key(*nonce);
        let tag = self
            .0
            .seal_in_place_separate_tag(n, lc::Aad::from(aad), buf)
            .ok()?;
        tag.as_ref().try_into().ok()
    }

    #[inline]
    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> bool {
        let n = lc::Nonce::assume_unique_for_key(*nonce);
        self.0
            .open_in_place_separate_tag(n, lc::Aad::from(aad), tag, buf)
            .is_ok()
    }
}

/// AES-GCM that picks the implementation per call by length: `aes-gcm`
/// for short bodies, AWS-LC from `SEAL_LARGE_FROM` / `OPEN_LARGE_FROM` on.
pub struct SizedGcm {
    small: RustCryptoGcm,
    large: AwsLcGcm,
}

impl SizedGcm {
    /// Both implementations over the same key.
    pub fn new(alg: AeadAlg, key: &[u8]) -> Result<Self, BadKey> {
        Ok(SizedGcm {
            small: RustCryptoGcm::new(alg, key)?,
            large: AwsLcGcm::new(alg, key)?,
        })
    }
}

impl Aead for SizedGcm {
    #[inline]
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        if buf.len() < SEAL_LARGE_FROM {
            self.small.seal(nonce, aad, buf)
        } else {
            self.large.seal(nonce, aad, buf)
        }
    }

    #[inline]
    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> bool {
        if buf.len() < OPEN_LARGE_FROM {
            self.small.open(nonce, aad, buf, tag)
        } else {
            self.large.open(nonce, aad, buf, tag)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(alg: AeadAlg) -> (RustCryptoGcm, AwsLcGcm) {
        let key: Vec<u8> = (0..alg.key_len() as u8)
            .map(|i| i.wrapping_mul(37) ^ 0x5a)
            .collect();
        (
            RustCryptoGcm::new(alg, &key).expect("key"),
            AwsLcGcm::new(alg, &key).expect("key"),
        )
    }

    /// Whichever implementation a packet's size selects, the wire bytes are
    /// the same and the other side opens them.
    #[test]
    fn implementations_agree_at_every_length() {
        for alg in [AeadAlg::Aes128Gcm, AeadAlg::Aes256Gcm] {
            let (rc, lc) = both(alg);
            let sized = SizedGcm::new(
                alg,
                &(0..alg.key_len() as u8)
                    .map(|i| i.wrapping_mul(37) ^ 0x5a)
                    .collect::<Vec<_>>(),
            )
            .expect("key");
            for len in 0..=1600usize {
                let nonce: [u8; NONCE_LEN] = std::array::from_fn(|i| (i * 7 + len) as u8);
                let aad = (len as u64).to_be_bytes();
                let plain: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
                let (mut a, mut b, mut c) = (plain.clone(), plain.clone(), plain.clone());
                let ta = rc.seal(&nonce, &aad, &mut a).expect("seal");
                let tb = lc.seal(&nonce, &aad, &mut b).expect("seal");
                let tc = sized.seal(&nonce, &aad, &mut c).expect("seal");
                assert_eq!(a, b, "{alg:?} {len}: ciphertext differs");
                assert_eq!(ta, tb, "{alg:?} {len}: tag differs");
                assert_eq!((&a, ta), (&c, tc), "{alg:?} {len}: sized differs");
                assert!(lc.open(&nonce, &aad, &mut a, &ta), "{alg:?} {len}");
                assert!(rc.open(&nonce, &aad, &mut b, &tb), "{alg:?} {len}");
                assert!(sized.open(&nonce, &aad, &mut c, &tc), "{alg:?} {len}");
                assert_eq!(a, plain);
                assert_eq!(b, plain);
                assert_eq!(c, plain);
            }
        }
    }

    #[test]
    fn forged_tags_and_aad_are_rejected_by_both() {
        let (rc, lc) = both(AeadAlg::Aes128Gcm);
        let impls: [&dyn Aead; 2] = [&rc, &lc];
        for len in [
            0usize,
            48,
            OPEN_LARGE_FROM,
            SEAL_LARGE_FROM - 1,
            SEAL_LARGE_FROM,
            1408,
        ] {
            let nonce = [9u8; NONCE_LEN];
            let mut ct = vec![0x42u8; len];
            let tag = rc.seal(&nonce, b"spi+seq!", &mut ct).expect("seal");
            for a in impls {
                let mut bad = tag;
                bad[15] ^= 1;
                assert!(!a.open(&nonce, b"spi+seq!", &mut ct.clone(), &bad), "{len}");
                assert!(!a.open(&nonce, b"spi+seq?", &mut ct.clone(), &tag), "{len}");
                if len > 0 {
                    let mut c = ct.clone();
                    c[len - 1] ^= 0x80;
                    assert!(!a.open(&nonce, b"spi+seq!", &mut c, &tag), "{len}");
                }
            }
        }
    }

    #[test]
    fn wrong_key_length_is_an_error() {
        assert!(RustCryptoGcm::new(AeadAlg::Aes128Gcm, &[0; 32]).is_err());
        assert!(AwsLcGcm::new(AeadAlg::Aes128Gcm, &[0; 32]).is_err());
        assert!(AwsLcGcm::new(AeadAlg::Aes256Gcm, &[0; 16]).is_err());
        assert_eq!(
            SizedGcm::new(AeadAlg::Aes256Gcm, &[0; 20]).err(),
            Some(BadKey {
                alg: AeadAlg::Aes256Gcm,
                got: 20
            })
        );
    }
}
