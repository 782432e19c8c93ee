//! AES-GCM through intel-ipsec-mb (`ipsec_mb_sys::gcm`) behind the `Aead`
//! trait: the library's encrypt and decrypt, with the checks that are
//! ours (an untouched tag on seal, the tag comparison on open).

pub use ipsec_mb_sys::gcm::{library, Library};

use super::aead::{Aead, BadKey, NONCE_LEN, TAG_LEN};
use crate::config::AeadAlg;
use ipsec_mb_sys::gcm::GcmKey;

/// AES-GCM (128 or 256) through intel-ipsec-mb, for one key.
pub struct IpsecMbGcm(GcmKey);

impl IpsecMbGcm {
    /// Expands `key` (16 or 32 bytes as `alg` says) with the library's code
    /// for this CPU.
    pub fn new(lib: &Library, alg: AeadAlg, key: &[u8]) -> Result<Self, BadKey> {
        let bad = BadKey {
            alg,
            got: key.len(),
        };
        if key.len() != alg.key_len() {
            return Err(bad);
        }
        GcmKey::new(lib, key).map(IpsecMbGcm).ok_or(bad)
    }
}

impl Aead for IpsecMbGcm {
    #[inline]
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        // The library refuses inputs it does not take by returning without
        // writing; an untouched (zero) tag then means `buf` is still
        // plaintext, and the caller must not send it. A genuine all-zero
        // tag (odds 2^-128) costs one frame.
        let mut tag = [0u8; TAG_LEN];
        self.0.encrypt(nonce, aad, buf, &mut tag);
        (tag != [0u8; TAG_LEN]).then_some(tag)
    }

    #[inline]
    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> bool {
        // The library computes the tag; comparing it is ours. Start from the
        // complement of the received tag, so a call that writes nothing can
        // never match.
        let mut computed = tag.map(|b| !b);
        self.0.decrypt(nonce, aad, buf, &mut computed);
        let diff = computed
            .iter()
            .zip(tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sa::aead::{AwsLcGcm, RustCryptoGcm};
    use proptest::prelude::*;

    fn lib() -> &'static Library {
        library().expect("intel-ipsec-mb has an AES-NI path on the project's machines")
    }

    fn alg_of(k: usize) -> AeadAlg {
        if k == 16 {
            AeadAlg::Aes128Gcm
        } else {
            AeadAlg::Aes256Gcm
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// For any key, nonce, AAD and length up to a jumbo frame, the
        /// library's ciphertext and tag are the fallback's, and open()
        /// refuses every single-bit flip of ciphertext, tag or AAD.
        #[test]
        fn agrees_with_the_fallback_and_refuses_every_flip(
            key in prop_oneof![
                proptest::collection::vec(any::<u8>(), 16),
                proptest::collection::vec(any::<u8>(), 32)
            ],
            nonce in any::<[u8; NONCE_LEN]>(),
            aad in prop_oneof![
                proptest::collection::vec(any::<u8>(), 8),
                proptest::collection::vec(any::<u8>(), 12),
                proptest::collection::vec(any::<u8>(), 0..40)
            ],
            len in prop_oneof![0usize..200, 0usize..=9000],
            seed in any::<u8>(),
        ) {
            let alg = alg_of(key.len());
            let imb = IpsecMbGcm::new(lib(), alg, &key).expect("key");
            let fallback: Box<dyn Aead> = if len % 2 == 0 {
                Box::new(RustCryptoGcm::new(alg, &key).expect("key"))
            } else {
                Box::new(AwsLcGcm::new(alg, &key).expect("key"))
            };
            let plain: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed) ^ seed).collect();
            let (mut a, mut b) = (plain.clone(), plain.clone());
            let ta = imb.seal(&nonce, &aad, &mut a).expect("seal");
            let tb = fallback.seal(&nonce, &aad, &mut b).expect("seal");
            prop_assert_eq!(&a, &b, "ciphertext");
            prop_assert_eq!(ta, tb, "tag");

            let mut c = a.clone();
            prop_assert!(imb.open(&nonce, &aad, &mut c, &ta));
            prop_assert_eq!(&c, &plain);
            for bit in 0..len * 8 {
                let mut c = a.clone();
                c[bit / 8] ^= 1 << (bit % 8);
                prop_assert!(!imb.open(&nonce, &aad, &mut c, &ta), "ciphertext bit {}", bit);
            }
            for bit in 0..TAG_LEN * 8 {
                let mut t = ta;
                t[bit / 8] ^= 1 << (bit % 8);
                prop_assert!(!imb.open(&nonce, &aad, &mut a.clone(), &t), "tag bit {}", bit);
            }
            for bit in 0..aad.len() * 8 {
                let mut d = aad.clone();
                d[bit / 8] ^= 1 << (bit % 8);
                prop_assert!(!imb.open(&nonce, &d, &mut a.clone(), &ta), "AAD bit {}", bit);
            }
        }
    }

    #[test]
    fn wrong_key_length_is_an_error() {
        assert!(IpsecMbGcm::new(lib(), AeadAlg::Aes128Gcm, &[0; 32]).is_err());
        assert!(IpsecMbGcm::new(lib(), AeadAlg::Aes256Gcm, &[0; 16]).is_err());
    }

    #[test]
    fn the_library_describes_its_code_path() {
        let d = &lib().description;
        assert!(d.starts_with("intel-ipsec-mb 1."), "{d}");
    }
}
