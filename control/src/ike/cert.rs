//! Authentication by digital signature (RFC 7427, AUTH method 14) with
//! X.509 certificates under one constellation CA.
//!
//! * Signature algorithms: ECDSA with SHA-256 on P-256 (the AUTH data is
//!   the DER `Ecdsa-Sig-Value`) and Ed25519 (RFC 8420, "Identity" hash),
//!   signed and verified with aws-lc-rs.
//! * The peer's certificate (first CERT payload, encoding 4; further ones
//!   are taken as intermediates) is validated up to the configured CA by
//!   rustls-webpki: the signatures along the path, validity at the wall
//!   clock the caller gave, basic constraints and name constraints, and an
//!   extended key usage, if there is one, that includes id-kp-ipsecIKE
//!   (RFC 4945 §5.1.3.12). x509-parser reads what webpki does not expose:
//!   the key usage (digitalSignature or nonRepudiation when present, RFC
//!   4945 §5.1.3.2), the subject and subjectAltName the peer's IKE identity
//!   must be found in, the CA's own validity and constraints, and the CA's
//!   SubjectPublicKeyInfo whose SHA-1 our CERTREQ carries.
//! * Identities: ID_DER_ASN1_DN matches the subject, ID_FQDN a dNSName,
//!   ID_RFC822_ADDR an rfc822Name, ID_IPV4/6_ADDR an iPAddress of the
//!   subjectAltName.
//!
//! The private key is read from PKCS#8 through buffers that are wiped
//! after use; aws-lc keeps it in memory it cleanses when freed.
//! [`issue`] makes a CA and gateway certificates (rcgen).

use super::wire::Identity;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, KeyPair as _};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime,
};
use std::time::Duration;
use webpki::aws_lc_rs as algs;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Name};
use zeroize::Zeroize;

pub mod issue;

/// AUTH method: Digital Signature (RFC 7427 §3).
pub const AUTH_DIGITAL_SIGNATURE: u8 = 14;
/// CERT / CERTREQ encoding: X.509 Certificate - Signature.
pub const X509_SIGNATURE: u8 = 4;

/// Hash algorithm identifiers of the SIGNATURE_HASH_ALGORITHMS notify
/// (RFC 7427 §4, RFC 8420 §2).
pub mod hash {
    /// SHA1.
    pub const SHA1: u16 = 1;
    /// SHA2-256.
    pub const SHA2_256: u16 = 2;
    /// SHA2-384.
    pub const SHA2_384: u16 = 3;
    /// SHA2-512.
    pub const SHA2_512: u16 = 4;
    /// Identity (the whole message to the signature, as Ed25519 needs).
    pub const IDENTITY: u16 = 5;
}

/// The hashes we announce: those of the signature algorithms we verify.
pub const ANNOUNCED: [u16; 2] = [hash::SHA2_256, hash::IDENTITY];

/// At most this many certificates of one message are looked at.
pub const MAX_CERTS: usize = 4;

// AlgorithmIdentifier DER of RFC 7427 Appendix A.3.1 and RFC 8420 §2.
const ALG_ECDSA_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
const ALG_ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
// id-kp-ipsecIKE, 1.3.6.1.5.5.7.3.17 (RFC 4945), the OID's content octets.
const EKU_IPSEC_IKE: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x11];
/// Algorithms accepted for signatures on certificates along the path.
static PATH_ALGS: &[&dyn SignatureVerificationAlgorithm] = &[
    algs::ECDSA_P256_SHA256,
    algs::ECDSA_P384_SHA384,
    algs::ECDSA_P256_SHA384,
    algs::ECDSA_P384_SHA256,
    algs::ED25519,
];

/// A signature algorithm of the AUTH payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigAlg {
    /// ECDSA on P-256 with SHA-256.
    EcdsaP256Sha256,
    /// Ed25519 (RFC 8420).
    Ed25519,
}

impl SigAlg {
    /// The AlgorithmIdentifier (DER) the AUTH data starts with.
    pub fn algorithm_identifier(self) -> &'static [u8] {
        match self {
            SigAlg::EcdsaP256Sha256 => ALG_ECDSA_SHA256,
            SigAlg::Ed25519 => ALG_ED25519,
        }
    }

    /// The hash it needs the peer to have announced.
    pub fn hash(self) -> u16 {
        match self {
            SigAlg::EcdsaP256Sha256 => hash::SHA2_256,
            SigAlg::Ed25519 => hash::IDENTITY,
        }
    }

    fn from_identifier(b: &[u8]) -> Option<SigAlg> {
        [SigAlg::EcdsaP256Sha256, SigAlg::Ed25519]
            .into_iter()
            .find(|a| a.algorithm_identifier() == b)
    }

    fn verifier(self) -> &'static dyn SignatureVerificationAlgorithm {
        match self {
            SigAlg::EcdsaP256Sha256 => algs::ECDSA_P256_SHA256,
            SigAlg::Ed25519 => algs::ED25519,
        }
    }
}

/// Why credentials were not accepted, or a peer's certificate or
/// signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// No PEM block of the expected kind.
    #[error("no {0} in PEM")]
    Pem(&'static str),
    /// The DER does not parse as an X.509 certificate.
    #[error("certificate does not parse")]
    Parse,
    /// The private key is neither a P-256 ECDSA nor an Ed25519 PKCS#8 key.
    #[error("private key is neither P-256 ECDSA nor Ed25519 (PKCS#8)")]
    Key,
    /// The private key is not the certificate's.
    #[error("private key does not match the certificate")]
    KeyMismatch,
    /// The CA certificate is no CA (basic constraints, key usage).
    #[error("CA certificate may not sign certificates")]
    NotCa,
    /// The peer sent no certificate (of encoding 4).
    #[error("no X.509 certificate from the peer")]
    Missing,
    /// The path to the CA does not validate (webpki's reason).
    #[error("certificate path: {0:?}")]
    Path(webpki::Error),
    /// The CA is not valid at this time.
    #[error("CA certificate not valid now")]
    CaNotValid,
    /// The certificate's key usage does not allow signatures.
    #[error("key usage does not allow signatures")]
    KeyUsage,
    /// The IKE identity is not the certificate's.
    #[error("identity {0} is not in the certificate")]
    Identity(String),
    /// The AUTH payload is not of method 14.
    #[error("AUTH method {0} where 14 (digital signature) was expected")]
    Method(u8),
    /// An AlgorithmIdentifier we do not verify, or a malformed AUTH.
    #[error("signature algorithm not supported")]
    Algorithm,
    /// The signature does not verify with the certificate's key.
    #[error("signature does not verify")]
    Signature,
    /// The peer did not announce the hash our key signs with (RFC 7427
    /// §4), so it could not verify our AUTH.
    #[error("peer does not announce hash {0} for our signature")]
    HashNotAnnounced(u16),
    /// No wall-clock time was given to check validity periods against.
    #[error("no wall-clock time to check validity against")]
    NoTime,
}

enum SigningKey {
    Ecdsa(sig::EcdsaKeyPair),
    Ed25519(sig::Ed25519KeyPair),
}

/// Our certificate and private key, and the constellation CA that peers'
/// certificates must chain to.
pub struct Credentials {
    cert: Vec<u8>,
    key: SigningKey,
    ca: Vec<u8>,
    ca_keyid: [u8; 20],
    subject: String,
    certreq: bool,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("subject", &self.subject)
            .field("algorithm", &self.algorithm())
            .field("key", &"[secret]")
            .finish()
    }
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], c)) => Ok(c),
        _ => Err(CertError::Parse),
    }
}

fn sha1(b: &[u8]) -> [u8; 20] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, b);
    let mut out = [0u8; 20];
    out.copy_from_slice(d.as_ref());
    out
}

fn unix(t: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(t))
}

impl Credentials {
    /// From PEM: our certificate, our PKCS#8 private key ("PRIVATE KEY"),
    /// the CA's certificate.
    pub fn from_pem(cert: &[u8], key: &[u8], ca: &[u8]) -> Result<Credentials, CertError> {
        let cert =
            CertificateDer::from_pem_slice(cert).map_err(|_| CertError::Pem("CERTIFICATE"))?;
        let ca = CertificateDer::from_pem_slice(ca).map_err(|_| CertError::Pem("CERTIFICATE"))?;
        let mut key =
            PrivateKeyDer::from_pem_slice(key).map_err(|_| CertError::Pem("PRIVATE KEY"))?;
        let r = match &key {
            PrivateKeyDer::Pkcs8(k) => {
                Credentials::from_der(cert.to_vec(), k.secret_pkcs8_der(), ca.to_vec())
            }
            _ => Err(CertError::Key),
        };
        // The decoded key is not wiped on drop by itself.
        key.zeroize();
        r
    }

    /// From DER: our certificate, our PKCS#8 private key, the CA's
    /// certificate. The key must be the certificate's, the CA a CA that
    /// issued it.
    pub fn from_der(cert: Vec<u8>, pkcs8: &[u8], ca: Vec<u8>) -> Result<Credentials, CertError> {
        let key = if let Ok(k) =
            sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8)
        {
            SigningKey::Ecdsa(k)
        } else if let Ok(k) = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8) {
            SigningKey::Ed25519(k)
        } else {
            return Err(CertError::Key);
        };
        let public = match &key {
            SigningKey::Ecdsa(k) => k.public_key().as_ref().to_vec(),
            SigningKey::Ed25519(k) => k.public_key().as_ref().to_vec(),
        };
        let x = parse(&cert)?;
        if x.public_key().subject_public_key.data.as_ref() != public.as_slice() {
            return Err(CertError::KeyMismatch);
        }
        let c = parse(&ca)?;
        let is_ca = c
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|b| b.value.ca);
        let may_sign = match c.key_usage() {
            Ok(Some(ku)) => ku.value.key_cert_sign(),
            Ok(None) => true,
            Err(_) => false,
        };
        if !is_ca || !may_sign {
            return Err(CertError::NotCa);
        }
        // Issued by this CA: the path validates at the start of our
        // certificate's validity.
        let at = u64::try_from(x.validity().not_before.timestamp()).unwrap_or(0);
        {
            let ca_der = CertificateDer::from(ca.as_slice());
            let anchor = webpki::anchor_from_trusted_cert(&ca_der).map_err(CertError::Path)?;
            let ee_der = CertificateDer::from(cert.as_slice());
            let ee = webpki::EndEntityCert::try_from(&ee_der).map_err(CertError::Path)?;
            ee.verify_for_usage(
                PATH_ALGS,
                &[anchor],
                &[],
                unix(at),
                webpki::KeyUsage::required_if_present(EKU_IPSEC_IKE),
                None,
                None,
            )
            .map_err(CertError::Path)?;
        }
        let subject = x.subject().to_string();
        let ca_keyid = sha1(c.public_key().raw);
        Ok(Credentials {
            cert,
            key,
            ca,
            ca_keyid,
            subject,
            certreq: true,
        })
    }

    /// Sends no CERTREQ (for a peer known to have our certificate, or one
    /// that objects to them); our CERT is sent in any case.
    pub fn without_certreq(mut self) -> Credentials {
        self.certreq = false;
        self
    }

    /// Whether CERTREQ payloads are sent.
    pub fn sends_certreq(&self) -> bool {
        self.certreq
    }

    /// Our signature algorithm.
    pub fn algorithm(&self) -> SigAlg {
        match self.key {
            SigningKey::Ecdsa(_) => SigAlg::EcdsaP256Sha256,
            SigningKey::Ed25519(_) => SigAlg::Ed25519,
        }
    }

    /// Our certificate (DER), what the CERT payload carries.
    pub fn certificate(&self) -> &[u8] {
        &self.cert
    }

    /// The CA's certificate (DER).
    pub fn ca(&self) -> &[u8] {
        &self.ca
    }

    /// The SHA-1 hash of the CA's SubjectPublicKeyInfo: what our CERTREQ
    /// names (RFC 7296 §3.7).
    pub fn ca_keyid(&self) -> [u8; 20] {
        self.ca_keyid
    }

    /// Our certificate's subject, for logs.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Whether `id` names our certificate (a configuration check).
    pub fn covers(&self, id: &Identity) -> bool {
        parse(&self.cert).is_ok_and(|x| covers(&x, id))
    }

    /// The AUTH data (after method and reserved bytes): the length of the
    /// AlgorithmIdentifier, the AlgorithmIdentifier, the signature of
    /// `octets`. `peer_hashes` are those the peer announced.
    pub fn sign(&self, octets: &[u8], peer_hashes: &[u16]) -> Result<Vec<u8>, CertError> {
        let alg = self.algorithm();
        if !peer_hashes.contains(&alg.hash()) {
            return Err(CertError::HashNotAnnounced(alg.hash()));
        }
        let id = alg.algorithm_identifier();
        let mut v = vec![id.len() as u8];
        v.extend_from_slice(id);
        match &self.key {
            SigningKey::Ecdsa(k) => {
                let s = k
                    .sign(&SystemRandom::new(), octets)
                    .map_err(|_| CertError::Key)?;
                v.extend_from_slice(s.as_ref());
            }
            SigningKey::Ed25519(k) => v.extend_from_slice(k.sign(octets).as_ref()),
        }
        Ok(v)
    }

    /// Validates the peer's certificates (CERT payloads: encoding, data)
    /// up to our CA at `unix_secs`, and that `id` is in the first one.
    pub fn verify_peer(
        &self,
        certs: &[(u8, Vec<u8>)],
        id: &Identity,
        unix_secs: Option<u64>,
    ) -> Result<(), CertError> {
        let t = unix_secs.ok_or(CertError::NoTime)?;
        let mut x509 = certs
            .iter()
            .filter(|(enc, _)| *enc == X509_SIGNATURE)
            .take(MAX_CERTS)
            .map(|(_, d)| CertificateDer::from(d.as_slice()));
        let ee_der = x509.next().ok_or(CertError::Missing)?;
        let intermediates: Vec<CertificateDer<'_>> = x509.collect();
        let c = parse(&self.ca)?;
        let ts = i64::try_from(t).unwrap_or(i64::MAX);
        let v = c.validity();
        if ts < v.not_before.timestamp() || ts > v.not_after.timestamp() {
            return Err(CertError::CaNotValid);
        }
        let ca_der = CertificateDer::from(self.ca.as_slice());
        let anchor: TrustAnchor<'_> =
            webpki::anchor_from_trusted_cert(&ca_der).map_err(CertError::Path)?;
        let ee = webpki::EndEntityCert::try_from(&ee_der).map_err(CertError::Path)?;
        ee.verify_for_usage(
            PATH_ALGS,
            &[anchor],
            &intermediates,
            unix(t),
            webpki::KeyUsage::required_if_present(EKU_IPSEC_IKE),
            None,
            None,
        )
        .map_err(CertError::Path)?;
        let x = parse(ee_der.as_ref())?;
        match x.key_usage() {
            Ok(None) => {}
            Ok(Some(ku)) if ku.value.digital_signature() || ku.value.non_repudiation() => {}
            _ => return Err(CertError::KeyUsage),
        }
        if !covers(&x, id) {
            return Err(CertError::Identity(id.to_string()));
        }
        Ok(())
    }

    /// Verifies the peer's AUTH data (after method and reserved bytes)
    /// over `octets` with the key of its certificate (the first of
    /// `certs`, already validated by [`Credentials::verify_peer`]).
    pub fn verify_auth(
        certs: &[(u8, Vec<u8>)],
        method: u8,
        data: &[u8],
        octets: &[u8],
    ) -> Result<SigAlg, CertError> {
        if method != AUTH_DIGITAL_SIGNATURE {
            return Err(CertError::Method(method));
        }
        let n = usize::from(*data.first().ok_or(CertError::Algorithm)?);
        let id = data.get(1..1 + n).ok_or(CertError::Algorithm)?;
        let signature = &data[1 + n..];
        let alg = SigAlg::from_identifier(id).ok_or(CertError::Algorithm)?;
        let ee_der = certs
            .iter()
            .find(|(enc, _)| *enc == X509_SIGNATURE)
            .map(|(_, d)| CertificateDer::from(d.as_slice()))
            .ok_or(CertError::Missing)?;
        let ee = webpki::EndEntityCert::try_from(&ee_der).map_err(CertError::Path)?;
        ee.verify_signature(alg.verifier(), octets, signature)
            .map_err(|_| CertError::Signature)?;
        Ok(alg)
    }
}

/// Whether the certificate names `id` (subject for a DN, subjectAltName
/// otherwise).
fn covers(x: &X509Certificate<'_>, id: &Identity) -> bool {
    if id.ty == Identity::DER_ASN1_DN {
        return dn_eq(x.subject(), &id.data);
    }
    let Ok(Some(san)) = x.subject_alternative_name() else {
        return false;
    };
    san.value.general_names.iter().any(|g| match (id.ty, g) {
        (Identity::FQDN, GeneralName::DNSName(n)) => n.as_bytes().eq_ignore_ascii_case(&id.data),
        (Identity::RFC822, GeneralName::RFC822Name(n)) => {
            n.as_bytes().eq_ignore_ascii_case(&id.data)
        }
        (Identity::IPV4 | Identity::IPV6, GeneralName::IPAddress(a)) => *a == id.data.as_slice(),
        _ => false,
    })
}

/// A DN in an identity against the certificate's subject: the same DER,
/// or the same attributes in the same order with the same string values
/// (another string type, say PrintableString for UTF8String, is the same
/// name).
fn dn_eq(subject: &X509Name<'_>, der: &[u8]) -> bool {
    if subject.as_raw() == der {
        return true;
    }
    let Ok((rest, other)) = X509Name::from_der(der) else {
        return false;
    };
    if !rest.is_empty() {
        return false;
    }
    let a: Vec<_> = subject.iter_attributes().collect();
    let b: Vec<_> = other.iter_attributes().collect();
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            x.attr_type() == y.attr_type()
                && matches!((x.as_str(), y.as_str()), (Ok(s), Ok(t)) if s == t)
        })
}

/// The CERTREQ body naming the CAs of `keyids` (encoding 4, SHA-1 hashes
/// of their SubjectPublicKeyInfo).
pub fn certreq_body(keyids: &[[u8; 20]]) -> Vec<u8> {
    let mut v = vec![X509_SIGNATURE];
    for k in keyids {
        v.extend_from_slice(k);
    }
    v
}

/// The CA hashes of a CERTREQ payload (its encoding and data): none for
/// another encoding than 4, or a length that is not a multiple of 20.
pub fn certreq_keyids(encoding: u8, data: &[u8]) -> Vec<[u8; 20]> {
    if encoding != X509_SIGNATURE || !data.len().is_multiple_of(20) {
        return Vec::new();
    }
    data.chunks_exact(20)
        .map(|c| {
            let mut k = [0u8; 20];
            k.copy_from_slice(c);
            k
        })
        .collect()
}

/// The hashes of a SIGNATURE_HASH_ALGORITHMS notify's data.
pub fn parse_hashes(data: &[u8]) -> Vec<u16> {
    data.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

/// The SIGNATURE_HASH_ALGORITHMS data we send.
pub fn announced_hashes() -> Vec<u8> {
    ANNOUNCED.iter().flat_map(|h| h.to_be_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every identity type against a certificate that carries a name of
    /// each kind.
    #[test]
    fn identities_are_found_where_rfc_4945_puts_them() {
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "gw0.mesh");
        p.subject_alt_names = vec![
            rcgen::SanType::DnsName("gw0.mesh".try_into().expect("dns")),
            rcgen::SanType::Rfc822Name("ops@gw0.mesh".try_into().expect("mail")),
            rcgen::SanType::IpAddress("10.0.0.1".parse().expect("ip")),
            rcgen::SanType::IpAddress("fd00::1".parse().expect("ip")),
        ];
        let key = rcgen::KeyPair::generate().expect("key");
        let der = p.self_signed(&key).expect("cert").der().to_vec();
        let x = parse(&der).expect("parse");
        let subject = x.subject().as_raw().to_vec();
        for (id, want) in [
            (Identity::fqdn("gw0.mesh"), true),
            (Identity::fqdn("GW0.Mesh"), true),
            (Identity::fqdn("gw1.mesh"), false),
            (Identity::rfc822("ops@gw0.mesh"), true),
            (Identity::rfc822("gw0.mesh"), false),
            (Identity::addr("10.0.0.1".parse().expect("ip")), true),
            (Identity::addr("fd00::1".parse().expect("ip")), true),
            (Identity::addr("10.0.0.2".parse().expect("ip")), false),
            (Identity::dn(&subject), true),
            (Identity::dn(&subject[..subject.len() - 1]), false),
            (
                Identity {
                    ty: Identity::KEY_ID,
                    data: b"gw0.mesh".to_vec(),
                },
                false,
            ),
        ] {
            assert_eq!(covers(&x, &id), want, "{id}");
        }
        // The same DN with a PrintableString CN (as another implementation
        // may encode a configured DN) is the same name.
        let mut q = rcgen::CertificateParams::default();
        q.distinguished_name = rcgen::DistinguishedName::new();
        q.distinguished_name.push(
            rcgen::DnType::CommonName,
            rcgen::DnValue::PrintableString("gw0.mesh".try_into().expect("printable")),
        );
        let other = q.self_signed(&key).expect("cert").der().to_vec();
        let y = parse(&other).expect("parse");
        assert_ne!(y.subject().as_raw(), subject.as_slice());
        assert!(covers(&x, &Identity::dn(y.subject().as_raw())));
    }

    #[test]
    fn certreq_and_hash_payloads_parse_only_what_they_should() {
        let k = [7u8; 20];
        let body = certreq_body(&[k, k]);
        assert_eq!(certreq_keyids(body[0], &body[1..]), vec![k, k]);
        assert!(certreq_keyids(4, &body[2..]).is_empty());
        assert!(certreq_keyids(1, &body[1..]).is_empty());
        assert_eq!(parse_hashes(&announced_hashes()), ANNOUNCED.to_vec());
        assert_eq!(parse_hashes(&[0, 2, 0]), vec![2]);
        for bad in [&[][..], &[12][..], &[0xff, 1, 2][..]] {
            assert_eq!(
                Credentials::verify_auth(&[], 14, bad, b"x"),
                Err(CertError::Algorithm)
            );
        }
        assert_eq!(
            Credentials::verify_auth(&[], 2, &[], b"x"),
            Err(CertError::Method(2))
        );
    }
}
