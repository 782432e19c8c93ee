//! SA payloads (RFC 7296 §3.3): proposals and transforms, what this
//! implementation offers, and how one proposal is chosen.
//!
//! The algorithms are those of the issue: ENCR_AES_GCM_16 with 128- and
//! 256-bit keys (RFC 5282 for IKE, RFC 4106 for ESP), PRF_HMAC_SHA2_256
//! and _384, Diffie-Hellman groups 31 (Curve25519), 19 and 20 (NIST P-256,
//! P-384), and ESN. An AEAD proposal has no integrity transform; one that
//! has one (other than NONE) is not chosen.

use super::crypto::{Group, Prf};

/// Transform types.
pub mod transform {
    /// Encryption algorithm.
    pub const ENCR: u8 = 1;
    /// Pseudorandom function.
    pub const PRF: u8 = 2;
    /// Integrity algorithm.
    pub const INTEG: u8 = 3;
    /// Diffie-Hellman group (key exchange method).
    pub const DH: u8 = 4;
    /// Extended sequence numbers.
    pub const ESN: u8 = 5;
    /// ENCR_AES_GCM_16.
    pub const ENCR_AES_GCM_16: u16 = 20;
    /// The Key Length attribute type, TV format (RFC 7296 §3.3.5).
    pub const ATTR_KEY_LENGTH: u16 = 0x800e;
}

/// One proposal of an SA payload, as read or to be written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proposal {
    /// Proposal number (1 for the first).
    pub num: u8,
    /// Protocol id (IKE or ESP).
    pub protocol: u8,
    /// The sender's SPI (8 bytes for IKE rekeys, 4 for ESP, else empty).
    pub spi: Vec<u8>,
    /// ENCR transforms: (id, key length in bits, 0 when none given).
    pub encr: Vec<(u16, u16)>,
    /// PRF transforms.
    pub prf: Vec<u16>,
    /// INTEG transforms.
    pub integ: Vec<u16>,
    /// DH transforms.
    pub dh: Vec<u16>,
    /// ESN transforms.
    pub esn: Vec<u16>,
}

impl Proposal {
    /// Reads an SA payload's body: its proposals, in order. Transforms
    /// with attributes other than a key length are left out (§3.3.6: an
    /// unknown attribute makes the transform unacceptable).
    pub fn parse_sa(b: &[u8]) -> Option<Vec<Proposal>> {
        let mut v = Vec::new();
        let mut at = 0;
        loop {
            let last = *b.get(at)?;
            let len = usize::from(u16::from_be_bytes([*b.get(at + 2)?, *b.get(at + 3)?]));
            let p = b.get(at..at + len)?;
            if len < 8 || v.len() >= 32 {
                return None;
            }
            v.push(Proposal::parse_one(p)?);
            at += len;
            match last {
                0 => break,
                2 => continue,
                _ => return None,
            }
        }
        (at == b.len()).then_some(v)
    }

    fn parse_one(p: &[u8]) -> Option<Proposal> {
        let mut out = Proposal {
            num: p[4],
            protocol: p[5],
            ..Default::default()
        };
        let spi_len = usize::from(p[6]);
        let n = usize::from(p[7]);
        out.spi = p.get(8..8 + spi_len)?.to_vec();
        let mut at = 8 + spi_len;
        for i in 0..n {
            let last = *p.get(at)?;
            let len = usize::from(u16::from_be_bytes([*p.get(at + 2)?, *p.get(at + 3)?]));
            let t = p.get(at..at + len)?;
            if len < 8 || (last == 0) != (i + 1 == n) || (last != 0 && last != 3) {
                return None;
            }
            let ty = t[4];
            let id = u16::from_be_bytes([t[6], t[7]]);
            let mut keylen = 0u16;
            let mut ok = true;
            let mut a = 8;
            while a < len {
                let at_ty = u16::from_be_bytes([*t.get(a)?, *t.get(a + 1)?]);
                if at_ty & 0x8000 != 0 {
                    let val = u16::from_be_bytes([*t.get(a + 2)?, *t.get(a + 3)?]);
                    if at_ty == transform::ATTR_KEY_LENGTH {
                        keylen = val;
                    } else {
                        ok = false;
                    }
                    a += 4;
                } else {
                    let l = usize::from(u16::from_be_bytes([*t.get(a + 2)?, *t.get(a + 3)?]));
                    t.get(a + 4..a + 4 + l)?;
                    ok = false;
                    a += 4 + l;
                }
            }
            if a != len {
                return None;
            }
            if ok {
                match ty {
                    transform::ENCR => out.encr.push((id, keylen)),
                    transform::PRF => out.prf.push(id),
                    transform::INTEG => out.integ.push(id),
                    transform::DH => out.dh.push(id),
                    transform::ESN => out.esn.push(id),
                    _ => {}
                }
            }
            at += len;
        }
        (at == p.len()).then_some(out)
    }

    fn transforms(&self) -> Vec<(u8, u16, u16)> {
        let mut t = Vec::new();
        t.extend(self.encr.iter().map(|&(id, kl)| (transform::ENCR, id, kl)));
        t.extend(self.prf.iter().map(|&id| (transform::PRF, id, 0)));
        t.extend(self.integ.iter().map(|&id| (transform::INTEG, id, 0)));
        t.extend(self.dh.iter().map(|&id| (transform::DH, id, 0)));
        t.extend(self.esn.iter().map(|&id| (transform::ESN, id, 0)));
        t
    }

    /// An SA payload's body holding `props`, numbered from 1 unless they
    /// carry their own numbers.
    pub fn encode_sa(props: &[Proposal]) -> Vec<u8> {
        let mut v = Vec::new();
        for (i, p) in props.iter().enumerate() {
            let ts = p.transforms();
            let mut body = Vec::new();
            for (j, &(ty, id, kl)) in ts.iter().enumerate() {
                let len: u16 = if kl != 0 { 12 } else { 8 };
                body.push(if j + 1 == ts.len() { 0 } else { 3 });
                body.push(0);
                body.extend_from_slice(&len.to_be_bytes());
                body.extend_from_slice(&[ty, 0]);
                body.extend_from_slice(&id.to_be_bytes());
                if kl != 0 {
                    body.extend_from_slice(&transform::ATTR_KEY_LENGTH.to_be_bytes());
                    body.extend_from_slice(&kl.to_be_bytes());
                }
            }
            let len = (8 + p.spi.len() + body.len()) as u16;
            v.push(if i + 1 == props.len() { 0 } else { 2 });
            v.push(0);
            v.extend_from_slice(&len.to_be_bytes());
            let num = if p.num == 0 { (i + 1) as u8 } else { p.num };
            v.extend_from_slice(&[num, p.protocol, p.spi.len() as u8, ts.len() as u8]);
            v.extend_from_slice(&p.spi);
            v.extend_from_slice(&body);
        }
        v
    }
}

/// An AES-GCM-16 key length: 128 or 256 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum AesGcm {
    /// AES-128-GCM, 16-byte ICV.
    Aes128,
    /// AES-256-GCM, 16-byte ICV.
    Aes256,
}

impl AesGcm {
    /// Key length in bits, as the Key Length attribute carries it.
    pub fn bits(self) -> u16 {
        match self {
            AesGcm::Aes128 => 128,
            AesGcm::Aes256 => 256,
        }
    }

    /// Key length in bytes (without the 4-byte salt).
    pub fn key_len(self) -> usize {
        usize::from(self.bits() / 8)
    }

    fn from_bits(b: u16) -> Option<AesGcm> {
        match b {
            128 => Some(AesGcm::Aes128),
            256 => Some(AesGcm::Aes256),
            _ => None,
        }
    }
}

/// The algorithms of an IKE SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct IkeSuite {
    /// Encryption of the SK payload.
    pub encr: AesGcm,
    /// PRF.
    pub prf: Prf,
    /// Diffie-Hellman group.
    pub dh: Group,
}

/// The algorithms of a Child SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ChildSuite {
    /// ESP encryption.
    pub encr: AesGcm,
    /// Extended sequence numbers.
    pub esn: bool,
    /// The Diffie-Hellman group of the exchange that made it, when it
    /// had one (PFS in CREATE_CHILD_SA).
    pub dh: Option<Group>,
}

/// What a node offers and accepts, in order of preference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// Encryption key lengths.
    pub encr: Vec<AesGcm>,
    /// PRFs (IKE only).
    pub prf: Vec<Prf>,
    /// Groups (IKE; for Child SAs the PFS groups of CREATE_CHILD_SA,
    /// empty for none).
    pub dh: Vec<Group>,
    /// ESN values offered (Child only), preferred first: `[true, false]`
    /// offers ESN and accepts a peer that has only 32-bit sequence
    /// numbers.
    pub esn: Vec<bool>,
}

impl Offer {
    /// Everything this implementation speaks for an IKE SA, strongest
    /// PRF and X25519 first.
    pub fn ike_default() -> Offer {
        Offer {
            encr: vec![AesGcm::Aes256, AesGcm::Aes128],
            prf: vec![Prf::HmacSha256, Prf::HmacSha384],
            dh: vec![Group::X25519, Group::P256, Group::P384],
            esn: vec![],
        }
    }

    /// ESP with AES-GCM, ESN preferred, no PFS.
    pub fn child_default() -> Offer {
        Offer {
            encr: vec![AesGcm::Aes256, AesGcm::Aes128],
            prf: vec![],
            dh: vec![],
            esn: vec![true, false],
        }
    }

    /// One proposal carrying every transform of the offer.
    pub fn proposal(&self, protocol: u8, spi: Vec<u8>, with_dh: bool) -> Proposal {
        Proposal {
            num: 1,
            protocol,
            spi,
            encr: self
                .encr
                .iter()
                .map(|e| (transform::ENCR_AES_GCM_16, e.bits()))
                .collect(),
            prf: self.prf.iter().map(|p| p.id()).collect(),
            integ: vec![],
            dh: if with_dh {
                self.dh.iter().map(|g| g.id()).collect()
            } else {
                vec![]
            },
            esn: self.esn.iter().map(|&e| u16::from(e)).collect(),
        }
    }

    /// The first of `props` (the peer's order) of which every transform
    /// type holds something this offer accepts, and the choice made in
    /// it: as responder. `need_dh` asks for a DH transform (IKE_SA_INIT,
    /// IKE rekey, or PFS wanted); without it a proposal that has DH
    /// transforms is still taken when the offer has none of them only if
    /// NONE (0) is among them.
    pub fn choose_ike(&self, props: &[Proposal]) -> Option<(Proposal, IkeSuite)> {
        for p in props {
            if p.protocol != super::wire::protocol::IKE || !integ_ok(p) {
                continue;
            }
            let encr = pick(&self.encr, &p.encr, |e, &(id, kl)| {
                id == transform::ENCR_AES_GCM_16 && AesGcm::from_bits(kl) == Some(*e)
            });
            let prf = pick(&self.prf, &p.prf, |x, &id| x.id() == id);
            let dh = pick(&self.dh, &p.dh, |x, &id| x.id() == id);
            if let (Some(encr), Some(prf), Some(dh)) = (encr, prf, dh) {
                let suite = IkeSuite { encr, prf, dh };
                return Some((ike_reply(p.num, p.spi.clone(), suite), suite));
            }
        }
        None
    }

    /// As [`Offer::choose_ike`] for ESP. `want_dh` is the group of the
    /// peer's KE payload in a CREATE_CHILD_SA (None when it sent none).
    pub fn choose_child(
        &self,
        props: &[Proposal],
        want_dh: Option<u16>,
    ) -> Option<(Proposal, ChildSuite)> {
        for p in props {
            if p.protocol != super::wire::protocol::ESP || !integ_ok(p) || p.spi.len() != 4 {
                continue;
            }
            let encr = pick(&self.encr, &p.encr, |e, &(id, kl)| {
                id == transform::ENCR_AES_GCM_16 && AesGcm::from_bits(kl) == Some(*e)
            });
            // A peer that sends no ESN transform means "no ESN".
            let esn = if p.esn.is_empty() {
                self.esn.contains(&false).then_some(false)
            } else {
                pick(&self.esn, &p.esn, |e, &id| u16::from(*e) == id)
            };
            let dh = match want_dh {
                None if p.dh.is_empty() || p.dh.contains(&0) => Some(None),
                None => None,
                Some(g) => {
                    if p.dh.contains(&g) {
                        Group::from_id(g).filter(|x| self.dh.contains(x)).map(Some)
                    } else {
                        None
                    }
                }
            };
            if let (Some(encr), Some(esn), Some(dh)) = (encr, esn, dh) {
                let suite = ChildSuite { encr, esn, dh };
                return Some((child_reply(p.num, Vec::new(), suite), suite));
            }
        }
        None
    }
}

fn integ_ok(p: &Proposal) -> bool {
    p.integ.iter().all(|&i| i == 0)
}

/// The first of `ours` (our preference) that `theirs` holds.
fn pick<A: Copy, B>(ours: &[A], theirs: &[B], eq: impl Fn(&A, &B) -> bool) -> Option<A> {
    ours.iter()
        .copied()
        .find(|a| theirs.iter().any(|b| eq(a, b)))
}

/// The single-transform proposal a responder sends back for an IKE SA.
pub fn ike_reply(num: u8, spi: Vec<u8>, s: IkeSuite) -> Proposal {
    Proposal {
        num,
        protocol: super::wire::protocol::IKE,
        spi,
        encr: vec![(transform::ENCR_AES_GCM_16, s.encr.bits())],
        prf: vec![s.prf.id()],
        integ: vec![],
        dh: vec![s.dh.id()],
        esn: vec![],
    }
}

/// The single-transform proposal a responder sends back for ESP.
pub fn child_reply(num: u8, spi: Vec<u8>, s: ChildSuite) -> Proposal {
    Proposal {
        num,
        protocol: super::wire::protocol::ESP,
        spi,
        encr: vec![(transform::ENCR_AES_GCM_16, s.encr.bits())],
        prf: vec![],
        integ: vec![],
        dh: s.dh.map(|g| vec![g.id()]).unwrap_or_default(),
        esn: vec![u16::from(s.esn)],
    }
}

/// Checks a responder's IKE answer against what was offered: one
/// proposal, one transform of each type, each one offered.
pub fn accept_ike(offer: &Offer, props: &[Proposal]) -> Option<IkeSuite> {
    let [p] = props else { return None };
    if p.encr.len() != 1 || p.prf.len() != 1 || p.dh.len() != 1 || !integ_ok(p) || p.integ.len() > 1
    {
        return None;
    }
    let (chosen, suite) = offer.choose_ike(props)?;
    (chosen.encr == p.encr).then_some(suite)
}

/// Checks a responder's ESP answer against the offer; `dh` is the group
/// of the KE sent (PFS) if any.
pub fn accept_child(
    offer: &Offer,
    props: &[Proposal],
    dh: Option<u16>,
) -> Option<(ChildSuite, u32)> {
    let [p] = props else { return None };
    if p.encr.len() != 1 || p.esn.len() > 1 || p.dh.len() > 1 || p.spi.len() != 4 {
        return None;
    }
    let (_, suite) = offer.choose_child(props, dh)?;
    let spi = u32::from_be_bytes([p.spi[0], p.spi[1], p.spi[2], p.spi[3]]);
    Some((suite, spi))
}
