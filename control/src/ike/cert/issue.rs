//! Issuing the credentials certificate authentication needs: a
//! constellation CA (self-signed) and one certificate per gateway signed by
//! it, with rcgen (the rustls project's certificate generator: it builds
//! the extensions IKE needs and signs with aws-lc-rs, the crypto this
//! crate already uses). Pure: no file is read or written; the caller
//! stores the PEM (`meshplane keys --ike-ca`).
//!
//! A gateway's certificate names it in the subject (CN) and as a dNSName
//! of the subjectAltName, so the gateway authenticates as ID_FQDN `name`
//! (or as ID_DER_ASN1_DN, its subject); key usage digitalSignature, and
//! extended key usage id-kp-ipsecIKE. The CA's is a CA with path length 0
//! that may sign certificates (keyCertSign, cRLSign).

use super::SigAlg;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use zeroize::{Zeroize, Zeroizing};

/// The organisation every certificate names.
pub const ORGANIZATION: &str = "meshplane constellation";

/// Why issuing failed.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// rcgen refused (a name that is no valid dNSName, say).
    #[error("rcgen: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A validity time out of range.
    #[error("validity time {0} out of range")]
    Time(u64),
}

/// The CA: its certificate and its private key (zeroized on drop).
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    cert: rcgen::Certificate,
}

impl Drop for Ca {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("key", &"[secret]").finish()
    }
}

/// A gateway's certificate and private key (PKCS#8).
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key, PEM ("PRIVATE KEY", PKCS#8).
    pub key_pem: Zeroizing<String>,
    /// The private key, PKCS#8 DER.
    pub key_der: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("cert_der", &self.cert_der.len())
            .field("key", &"[secret]")
            .finish()
    }
}

/// PKCS#8 DER as PEM ("PRIVATE KEY"), written straight into wiped memory
/// (rcgen's own PEM leaves a copy behind).
fn private_key_pem(der: &[u8]) -> Zeroizing<String> {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    // Room for all of it: a String that grew would leave its old buffer
    // unwiped.
    let mut s = Zeroizing::new(String::with_capacity(128 + 2 * der.len()));
    s.push_str("-----BEGIN PRIVATE KEY-----\n");
    for (i, c) in der.chunks(3).enumerate() {
        if i > 0 && i % 16 == 0 {
            s.push('\n');
        }
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                s.push(char::from(B64[(n >> (18 - 6 * k)) as usize & 63]));
            } else {
                s.push('=');
            }
        }
    }
    s.push_str("\n-----END PRIVATE KEY-----\n");
    s
}

fn at(unix_secs: u64) -> Result<time::OffsetDateTime, IssueError> {
    i64::try_from(unix_secs)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .ok_or(IssueError::Time(unix_secs))
}

fn key(alg: SigAlg) -> Result<KeyPair, IssueError> {
    Ok(KeyPair::generate_for(match alg {
        SigAlg::EcdsaP256Sha256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        SigAlg::Ed25519 => &rcgen::PKCS_ED25519,
    })?)
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, cn);
    dn
}

/// A new CA named `cn`, valid from `not_before` to `not_after` (Unix
/// seconds), with a fresh key of `alg`.
pub fn ca(cn: &str, alg: SigAlg, not_before: u64, not_after: u64) -> Result<Ca, IssueError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = at(not_before)?;
    params.not_after = at(not_after)?;
    let key = key(alg)?;
    let cert = params.self_signed(&key)?;
    Ok(Ca { params, key, cert })
}

impl Ca {
    /// The CA's certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA's certificate, DER.
    pub fn cert_der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// The CA's private key, PEM (PKCS#8), to keep offline.
    pub fn key_pem(&self) -> Zeroizing<String> {
        private_key_pem(self.key.serialized_der())
    }

    /// A certificate for gateway `gateway` (a DNS name: its ID_FQDN) with
    /// a fresh key of `alg`, valid from `not_before` to `not_after`.
    pub fn issue(
        &self,
        gateway: &str,
        alg: SigAlg,
        not_before: u64,
        not_after: u64,
    ) -> Result<Issued, IssueError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(gateway);
        params.subject_alt_names = vec![SanType::DnsName(gateway.try_into()?)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::Other(vec![
            1, 3, 6, 1, 5, 5, 7, 3, 17,
        ])];
        params.use_authority_key_identifier_extension = true;
        params.not_before = at(not_before)?;
        params.not_after = at(not_after)?;
        let mut key = key(alg)?;
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        let issued = Issued {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: private_key_pem(key.serialized_der()),
            key_der: Zeroizing::new(key.serialize_der()),
        };
        key.zeroize();
        Ok(issued)
    }
}
