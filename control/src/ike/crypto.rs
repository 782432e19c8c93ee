//! The cryptography of IKEv2, over aws-lc-rs: the PRFs and prf+
//! (RFC 7296 §2.13), SKEYSEED and the IKE SA keys (§2.14, §2.18), Child
//! SA key material (§2.17), the PSK AUTH value (§2.15), the SK payload
//! with AES-GCM (RFC 5282), ECDH for groups 19, 20 and 31 (RFC 5903,
//! RFC 8031), and the randomness every SPI, nonce, private key and IV is
//! drawn from ([`Rng`]).
//!
//! Secrets are held in [`Secret`]: wiped on drop, never printed.

use aws_lc_rs::{aead, agreement, digest, hmac};
use zeroize::Zeroize;

/// Bytes that must not leak: zeroized on drop, `Debug` shows only the
/// length.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Takes ownership of `v`.
    pub fn new(v: Vec<u8>) -> Secret {
        Secret(v)
    }

    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// Where SPIs, nonces, DH private keys, IVs and cookie secrets come from.
/// [`SystemRng`] in a node; [`SeededRng`] in tests and the emulator, so a
/// run repeats exactly.
pub trait Rng {
    /// Fills `out` with random bytes.
    fn fill(&mut self, out: &mut [u8]);
}

/// The operating system's generator, through aws-lc-rs.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRng;

impl Rng for SystemRng {
    fn fill(&mut self, out: &mut [u8]) {
        // aws-lc's generator does not fail once initialised; a failure
        // here would leave zeros, which a caller notices as a repeated SPI.
        let _ = aws_lc_rs::rand::fill(out);
    }
}

/// A deterministic generator (SplitMix64) for tests and simulation. Not
/// for keys that protect anything.
#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    /// A generator that starts from `seed`.
    pub fn new(seed: u64) -> SeededRng {
        SeededRng(seed)
    }
}

impl Rng for SeededRng {
    fn fill(&mut self, out: &mut [u8]) {
        for c in out.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            c.copy_from_slice(&z.to_be_bytes()[..c.len()]);
        }
    }
}

impl<R: Rng + ?Sized> Rng for &mut R {
    fn fill(&mut self, out: &mut [u8]) {
        (**self).fill(out)
    }
}

impl Rng for Box<dyn Rng + Send> {
    fn fill(&mut self, out: &mut [u8]) {
        (**self).fill(out)
    }
}

/// A pseudorandom function (RFC 7296 §3.3.2, transform type 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Prf {
    /// PRF_HMAC_SHA2_256 (RFC 4868), id 5.
    HmacSha256,
    /// PRF_HMAC_SHA2_384 (RFC 4868), id 6.
    HmacSha384,
}

impl Prf {
    /// Transform id.
    pub fn id(self) -> u16 {
        match self {
            Prf::HmacSha256 => 5,
            Prf::HmacSha384 => 6,
        }
    }

    /// From a transform id.
    pub fn from_id(id: u16) -> Option<Prf> {
        match id {
            5 => Some(Prf::HmacSha256),
            6 => Some(Prf::HmacSha384),
            _ => None,
        }
    }

    /// Output (and preferred key) length in bytes.
    pub fn out_len(self) -> usize {
        match self {
            Prf::HmacSha256 => 32,
            Prf::HmacSha384 => 48,
        }
    }

    fn alg(self) -> hmac::Algorithm {
        match self {
            Prf::HmacSha256 => hmac::HMAC_SHA256,
            Prf::HmacSha384 => hmac::HMAC_SHA384,
        }
    }

    /// prf(key, data): HMAC.
    pub fn prf(self, key: &[u8], data: &[&[u8]]) -> Secret {
        let k = hmac::Key::new(self.alg(), key);
        let mut c = hmac::Context::with_key(&k);
        for d in data {
            c.update(d);
        }
        Secret(c.sign().as_ref().to_vec())
    }

    /// prf+(key, seed) truncated to `len` bytes (RFC 7296 §2.13):
    /// T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n). At most 255
    /// blocks; longer requests are cut there.
    pub fn prf_plus(self, key: &[u8], seed: &[&[u8]], len: usize) -> Secret {
        let k = hmac::Key::new(self.alg(), key);
        let mut out = Vec::with_capacity(len + self.out_len());
        let mut t: Vec<u8> = Vec::new();
        let mut n = 1u8;
        while out.len() < len {
            let mut c = hmac::Context::with_key(&k);
            c.update(&t);
            for s in seed {
                c.update(s);
            }
            c.update(&[n]);
            t.zeroize();
            t = c.sign().as_ref().to_vec();
            out.extend_from_slice(&t);
            if n == 255 {
                break;
            }
            n += 1;
        }
        t.zeroize();
        out.truncate(len);
        Secret(out)
    }
}

/// A Diffie-Hellman group (transform type 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Group {
    /// 256-bit random ECP group (NIST P-256), id 19.
    P256,
    /// 384-bit random ECP group (NIST P-384), id 20.
    P384,
    /// Curve25519, id 31.
    X25519,
}

impl Group {
    /// Transform id.
    pub fn id(self) -> u16 {
        match self {
            Group::P256 => 19,
            Group::P384 => 20,
            Group::X25519 => 31,
        }
    }

    /// From a transform id.
    pub fn from_id(id: u16) -> Option<Group> {
        match id {
            19 => Some(Group::P256),
            20 => Some(Group::P384),
            31 => Some(Group::X25519),
            _ => None,
        }
    }

    /// Length of the KE payload's key exchange data.
    pub fn public_len(self) -> usize {
        match self {
            Group::P256 => 64,
            Group::P384 => 96,
            Group::X25519 => 32,
        }
    }

    fn private_len(self) -> usize {
        match self {
            Group::P256 | Group::X25519 => 32,
            Group::P384 => 48,
        }
    }

    fn alg(self) -> &'static agreement::Algorithm {
        match self {
            Group::P256 => &agreement::ECDH_P256,
            Group::P384 => &agreement::ECDH_P384,
            Group::X25519 => &agreement::X25519,
        }
    }
}

/// An ephemeral key pair: the private key is built from bytes drawn from
/// the caller's [`Rng`] (aws-lc-rs takes raw private keys for all three
/// groups: a big-endian scalar for P-256/P-384, the 32 raw bytes for
/// X25519), so a seeded run repeats exactly.
pub struct KeyPair {
    group: Group,
    private: agreement::PrivateKey,
    public: Vec<u8>,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPair({:?})", self.group)
    }
}

/// A peer's key exchange data that is not a valid public value of its
/// group (wrong length, not on the curve, or a low-order X25519 point).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid Diffie-Hellman public value")]
pub struct InvalidPublic;

impl KeyPair {
    /// A fresh key pair of `group`.
    pub fn generate(group: Group, rng: &mut dyn Rng) -> KeyPair {
        let mut b = vec![0u8; group.private_len()];
        loop {
            rng.fill(&mut b);
            // A scalar of zero or beyond the order is refused; draw again.
            if let Ok(private) = agreement::PrivateKey::from_private_key(group.alg(), &b) {
                if let Ok(p) = private.compute_public_key() {
                    b.zeroize();
                    let p = p.as_ref();
                    // ECP groups: the KE payload carries x | y without the
                    // 0x04 of the uncompressed SEC1 form (RFC 5903 §7).
                    let public = match group {
                        Group::X25519 => p.to_vec(),
                        _ => p.get(1..).unwrap_or_default().to_vec(),
                    };
                    return KeyPair {
                        group,
                        private,
                        public,
                    };
                }
            }
        }
    }

    /// The group.
    pub fn group(&self) -> Group {
        self.group
    }

    /// The public value as the KE payload carries it.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// g^ir: the shared secret with the peer's public value (for ECP
    /// groups the x coordinate, RFC 5903 §7).
    pub fn agree(&self, peer: &[u8]) -> Result<Secret, InvalidPublic> {
        if peer.len() != self.group.public_len() {
            return Err(InvalidPublic);
        }
        let mut sec1;
        let bytes: &[u8] = match self.group {
            Group::X25519 => peer,
            _ => {
                sec1 = Vec::with_capacity(peer.len() + 1);
                sec1.push(4);
                sec1.extend_from_slice(peer);
                &sec1
            }
        };
        let pk = agreement::UnparsedPublicKey::new(self.group.alg(), bytes);
        let s = agreement::agree(&self.private, pk, InvalidPublic, |s| Ok(s.to_vec()))?;
        // RFC 8031 §2: an all-zero X25519 result is a low-order point.
        if s.iter().all(|&b| b == 0) {
            return Err(InvalidPublic);
        }
        Ok(Secret(s))
    }
}

/// An AES-GCM key with its 4-byte salt (RFC 4106 §8.1, RFC 5282 §7.1):
/// the key material's first `key_len` bytes are the key, the next 4 the
/// salt. Zeroized on drop; `Debug` prints neither.
#[derive(Clone, PartialEq, Eq)]
pub struct GcmKey {
    key_and_salt: Secret,
}

impl GcmKey {
    /// From `key_len + 4` bytes of key material.
    pub fn new(key_and_salt: Secret) -> GcmKey {
        GcmKey { key_and_salt }
    }

    /// The AES key.
    pub fn key(&self) -> &[u8] {
        let b = self.key_and_salt.expose();
        &b[..b.len().saturating_sub(4)]
    }

    /// The 4-byte salt: the implicit first part of every nonce.
    pub fn salt(&self) -> [u8; 4] {
        let b = self.key_and_salt.expose();
        let mut s = [0u8; 4];
        if b.len() >= 4 {
            s.copy_from_slice(&b[b.len() - 4..]);
        }
        s
    }

    fn aead(&self) -> Option<aead::LessSafeKey> {
        let alg = match self.key().len() {
            16 => &aead::AES_128_GCM,
            32 => &aead::AES_256_GCM,
            _ => return None,
        };
        aead::UnboundKey::new(alg, self.key())
            .ok()
            .map(aead::LessSafeKey::new)
    }

    fn nonce(&self, iv: &[u8; 8]) -> aead::Nonce {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&self.salt());
        n[4..].copy_from_slice(iv);
        aead::Nonce::assume_unique_for_key(n)
    }

    /// Seals `in_out` in place with explicit IV `iv`, appending the
    /// 16-byte ICV.
    pub fn seal(&self, iv: &[u8; 8], aad: &[u8], in_out: &mut Vec<u8>) -> bool {
        match self.aead() {
            Some(k) => k
                .seal_in_place_append_tag(self.nonce(iv), aead::Aad::from(aad), in_out)
                .is_ok(),
            None => false,
        }
    }

    /// Opens ciphertext + ICV in place; returns the plaintext length.
    pub fn open(&self, iv: &[u8; 8], aad: &[u8], in_out: &mut [u8]) -> Option<usize> {
        let k = self.aead()?;
        k.open_in_place(self.nonce(iv), aead::Aad::from(aad), in_out)
            .ok()
            .map(|p| p.len())
    }
}

impl std::fmt::Debug for GcmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GcmKey({} bits)", self.key().len() * 8)
    }
}

/// The keys of an IKE SA (RFC 7296 §2.14). With AES-GCM there are no
/// SK_ai/SK_ar.
#[derive(Clone, Debug)]
pub struct IkeKeys {
    /// The PRF negotiated.
    pub prf: Prf,
    /// SK_d: Child SA and rekey key material derive from it.
    pub sk_d: Secret,
    /// SK_ei: protects what the original initiator sends.
    pub sk_ei: GcmKey,
    /// SK_er: protects what the original responder sends.
    pub sk_er: GcmKey,
    /// SK_pi: in the initiator's AUTH.
    pub sk_pi: Secret,
    /// SK_pr: in the responder's AUTH.
    pub sk_pr: Secret,
}

impl IkeKeys {
    /// SKEYSEED and {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi |
    /// SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
    ///
    /// A new IKE SA: SKEYSEED = prf(Ni | Nr, g^ir). A rekeyed one
    /// (`old` = (PRF of the old SA, its SK_d)): SKEYSEED = prf(SK_d (old),
    /// g^ir (new) | Ni | Nr) (§2.18, with the old SA's PRF).
    #[allow(clippy::too_many_arguments)]
    pub fn derive(
        prf: Prf,
        key_len: usize,
        shared: &Secret,
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
        old: Option<(Prf, &Secret)>,
    ) -> IkeKeys {
        let skeyseed = match old {
            None => {
                let mut k = Vec::with_capacity(ni.len() + nr.len());
                k.extend_from_slice(ni);
                k.extend_from_slice(nr);
                let s = prf.prf(&k, &[shared.expose()]);
                k.zeroize();
                s
            }
            Some((old_prf, sk_d)) => old_prf.prf(sk_d.expose(), &[shared.expose(), ni, nr]),
        };
        let pl = prf.out_len();
        let el = key_len + 4;
        let km = prf.prf_plus(
            skeyseed.expose(),
            &[ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()],
            pl + 2 * el + 2 * pl,
        );
        let b = km.expose();
        let part = |from: usize, len: usize| Secret(b[from..from + len].to_vec());
        IkeKeys {
            prf,
            sk_d: part(0, pl),
            sk_ei: GcmKey::new(part(pl, el)),
            sk_er: GcmKey::new(part(pl + el, el)),
            sk_pi: part(pl + 2 * el, pl),
            sk_pr: part(pl + 2 * el + pl, pl),
        }
    }

    /// Child SA keys (§2.17): KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr),
    /// taken as the initiator-to-responder key and salt first, then the
    /// responder-to-initiator ones ("initiator" meaning the initiator of
    /// the exchange that created the Child SA).
    pub fn child_keys(
        &self,
        key_len: usize,
        shared: Option<&Secret>,
        ni: &[u8],
        nr: &[u8],
    ) -> (GcmKey, GcmKey) {
        let el = key_len + 4;
        let g = shared.map_or(&[][..], |s| s.expose());
        let km = self.prf.prf_plus(self.sk_d.expose(), &[g, ni, nr], 2 * el);
        let b = km.expose();
        (
            GcmKey::new(Secret(b[..el].to_vec())),
            GcmKey::new(Secret(b[el..2 * el].to_vec())),
        )
    }
}

/// The pad of the PSK AUTH computation (RFC 7296 §2.15).
pub const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// AUTH for a pre-shared key: prf(prf(PSK, "Key Pad for IKEv2"),
/// `<SignedOctets>`), where SignedOctets = RealMessage | Nonce of the peer
/// | prf(SK_p, RestOfIDPayload).
pub fn psk_auth(
    prf: Prf,
    psk: &[u8],
    message: &[u8],
    peer_nonce: &[u8],
    sk_p: &Secret,
    id_body: &[u8],
) -> Secret {
    let maced_id = prf.prf(sk_p.expose(), &[id_body]);
    let k = prf.prf(psk, &[KEY_PAD]);
    prf.prf(k.expose(), &[message, peer_nonce, maced_id.expose()])
}

/// The octets an AUTH signs (RFC 7296 §2.15): the sender's first
/// message, the peer's nonce, prf(SK_p, RestOfIDPayload).
pub fn signed_octets(
    prf: Prf,
    message: &[u8],
    peer_nonce: &[u8],
    sk_p: &Secret,
    id_body: &[u8],
) -> Vec<u8> {
    let maced_id = prf.prf(sk_p.expose(), &[id_body]);
    let mut v = Vec::with_capacity(message.len() + peer_nonce.len() + maced_id.len());
    v.extend_from_slice(message);
    v.extend_from_slice(peer_nonce);
    v.extend_from_slice(maced_id.expose());
    v
}

/// Constant-time comparison.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// NAT_DETECTION_*_IP data: SHA-1(SPIi | SPIr | IP | port) (§2.23).
pub fn nat_hash(spi_i: u64, spi_r: u64, addr: std::net::SocketAddr) -> Vec<u8> {
    let mut c = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    c.update(&spi_i.to_be_bytes());
    c.update(&spi_r.to_be_bytes());
    match addr.ip() {
        std::net::IpAddr::V4(a) => c.update(&a.octets()),
        std::net::IpAddr::V6(a) => c.update(&a.octets()),
    }
    c.update(&addr.port().to_be_bytes());
    c.finish().as_ref().to_vec()
}

/// A keyed hash for stateless cookies (§2.6).
pub fn cookie(secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    Prf::HmacSha256.prf(secret, parts).expose().to_vec()
}

/// An SK message (RFC 7296 §3.14 with RFC 5282): header, then the SK
/// payload holding an 8-byte IV, the inner payloads with a zero pad
/// length byte, encrypted, and the 16-byte ICV. The associated data is
/// everything before the IV.
pub fn seal_message(
    mut h: super::wire::Header,
    inner: &super::wire::Builder,
    key: &GcmKey,
    rng: &mut dyn Rng,
) -> Vec<u8> {
    use super::wire::{payload, HEADER_LEN, PAYLOAD_HEADER_LEN, VERSION};
    let mut plain = inner.encode();
    plain.push(0); // pad length: AES-GCM needs no padding
    let sk_len = PAYLOAD_HEADER_LEN + 8 + plain.len() + 16;
    h.next = payload::SK;
    h.version = VERSION;
    h.length = (HEADER_LEN + sk_len) as u32;
    let mut v = Vec::with_capacity(HEADER_LEN + sk_len);
    h.write(&mut v);
    v.push(inner.first());
    v.push(0);
    v.extend_from_slice(&(sk_len as u16).to_be_bytes());
    let mut iv = [0u8; 8];
    rng.fill(&mut iv);
    let aad = v.clone();
    v.extend_from_slice(&iv);
    if !key.seal(&iv, &aad, &mut plain) {
        plain.clear();
    }
    v.extend_from_slice(&plain);
    plain.zeroize();
    v
}

/// Opens the SK payload at `sk` of `msg`: the inner payloads' bytes, or
/// None when the ICV does not verify or the lengths are wrong.
pub fn open_message(msg: &[u8], sk: super::wire::SkAt, key: &GcmKey) -> Option<Vec<u8>> {
    let aad = msg.get(..sk.body_at)?;
    let body = msg.get(sk.body_at..)?;
    if body.len() < 8 + 1 + 16 {
        return None;
    }
    let mut iv = [0u8; 8];
    iv.copy_from_slice(&body[..8]);
    let mut ct = body[8..].to_vec();
    let n = key.open(&iv, aad, &mut ct)?;
    ct.truncate(n);
    let pad = usize::from(*ct.last()?);
    if pad + 1 > ct.len() {
        ct.zeroize();
        return None;
    }
    ct.truncate(ct.len() - pad - 1);
    Some(ct)
}
