//! Reading the credentials `[ike]` names, when the node starts (and when
//! `check-config` checks them): a pre-shared key, or a certificate, its
//! private key and the CA. A file holding a secret must be the operator's
//! own (no access for group or others); every error names the key and
//! the file, never the secret.

use super::ike::{IkeConfig, IkeCredentials};
use meshplane_control::ike::crypto::Secret;
use meshplane_control::ike::{Auth, Credentials, Identity};
use std::fs::File;
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Why a credential file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("[ike] {key} {path}: {msg}")]
pub struct CredentialError {
    /// The `[ike]` key that names the file.
    pub key: &'static str,
    /// The file.
    pub path: String,
    /// What is wrong.
    pub msg: String,
}

/// Largest PSK file read.
const PSK_LIMIT: u64 = 4096;
/// Largest certificate or key file read.
const PEM_LIMIT: u64 = 64 * 1024;

/// The IKE identity `s` names: an IP address, else an FQDN.
pub fn ike_identity(s: &str) -> Identity {
    match s.parse::<IpAddr>() {
        Ok(a) => Identity::addr(a),
        Err(_) => Identity::fqdn(s),
    }
}

fn error<'a>(key: &'static str, path: &'a Path) -> impl Fn(String) -> CredentialError + 'a {
    move |msg| CredentialError {
        key,
        path: path.display().to_string(),
        msg,
    }
}

/// Opens `path`, a regular file of at most `limit` bytes; a `secret` one
/// must give no access to its group or others.
fn open(
    key: &'static str,
    path: &Path,
    limit: u64,
    secret: Option<&str>,
) -> Result<(File, u64), CredentialError> {
    use std::os::unix::fs::PermissionsExt;
    let err = error(key, path);
    let (f, len) = crate::file_read::open_regular(path).map_err(|e| err(e.to_string()))?;
    if let Some(what) = secret {
        let mode = f
            .metadata()
            .map_err(|e| err(format!("cannot stat: {e}")))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(err(format!(
                "is readable or writable by its group or by others (mode {:04o}): {what} \
                 must be the operator's own (chmod 600)",
                mode & 0o7777
            )));
        }
    }
    if len > limit {
        return Err(err(format!("is larger than {limit} bytes")));
    }
    Ok((f, len))
}

/// Reads the whole of `f` (at most `limit` bytes) into wiped memory.
fn read_all(
    key: &'static str,
    path: &Path,
    f: File,
    len: u64,
    limit: u64,
) -> Result<Zeroizing<Vec<u8>>, CredentialError> {
    // Room for all of it: a buffer that grew would leave its old copy.
    let mut text = Zeroizing::new(Vec::with_capacity(len as usize + 1));
    f.take(limit + 1)
        .read_to_end(&mut text)
        .map_err(|e| error(key, path)(format!("cannot read: {e}")))?;
    Ok(text)
}

/// Reads the pre-shared key from `path`: a regular file of the operator's
/// own (no access for group or others), holding the key in hex (whitespace
/// ignored), at least 16 bytes. The key is zeroized when dropped.
pub fn read_psk(path: &Path) -> Result<Secret, CredentialError> {
    let key = "psk_file";
    let err = error(key, path);
    let (f, len) = open(key, path, PSK_LIMIT, Some("a pre-shared key"))?;
    let text = read_all(key, path, f, len, PSK_LIMIT)?;
    let compact: Zeroizing<Vec<u8>> = Zeroizing::new(
        text.iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect(),
    );
    let secret =
        Zeroizing::new(hex::decode(&*compact).map_err(|_| err("is not a key in hex".to_string()))?);
    if secret.len() < 16 {
        return Err(err(format!(
            "holds {} bytes; a pre-shared key needs at least 16",
            secret.len()
        )));
    }
    Ok(Secret::new(secret.to_vec()))
}

/// Whether `text` holds a PEM block `label`.
fn has_block(text: &[u8], label: &str) -> bool {
    let begin = format!("-----BEGIN {label}-----");
    text.windows(begin.len()).any(|w| w == begin.as_bytes())
}

/// Reads a certificate (`certificate`, `ca`): PEM of anyone's.
fn read_pem(key: &'static str, path: &Path) -> Result<Vec<u8>, CredentialError> {
    let (f, len) = open(key, path, PEM_LIMIT, None)?;
    let text = read_all(key, path, f, len, PEM_LIMIT)?.to_vec();
    if !has_block(&text, "CERTIFICATE") {
        return Err(error(key, path)(
            "holds no PEM \"CERTIFICATE\" block".to_string(),
        ));
    }
    Ok(text)
}

/// Reads this gateway's certificate credentials: `certificate` and `ca`
/// (PEM), `private_key` (PEM, PKCS#8, the operator's own file). The key
/// must be the certificate's, the CA the certificate's issuer, and the
/// certificate must name `identity` (the identity the gateway claims).
pub fn read_certificate(
    certificate: &Path,
    private_key: &Path,
    ca: &Path,
    identity: &str,
) -> Result<Credentials, CredentialError> {
    let cert = read_pem("certificate", certificate)?;
    let ca_pem = read_pem("ca", ca)?;
    let (f, len) = open("private_key", private_key, PEM_LIMIT, Some("a private key"))?;
    let key = read_all("private_key", private_key, f, len, PEM_LIMIT)?;
    if !has_block(&key, "PRIVATE KEY") {
        return Err(error("private_key", private_key)(
            "holds no PEM \"PRIVATE KEY\" block (PKCS#8)".to_string(),
        ));
    }
    use meshplane_control::ike::CertError;
    let creds = Credentials::from_pem(&cert, &key, &ca_pem).map_err(|e| match e {
        CertError::Key | CertError::KeyMismatch => error("private_key", private_key)(e.to_string()),
        CertError::NotCa => error("ca", ca)(e.to_string()),
        CertError::Path(_) => error("certificate", certificate)(format!(
            "{e}: not issued by the CA in {}",
            ca.display()
        )),
        _ => error("certificate", certificate)(e.to_string()),
    })?;
    if !creds.covers(&ike_identity(identity)) {
        return Err(error("certificate", certificate)(format!(
            "does not name this gateway's identity {identity:?} (its subject is {})",
            creds.subject()
        )));
    }
    Ok(creds)
}

/// How the gateway `ike` describes authenticates: its PSK or its
/// certificate, read and checked now.
pub fn read_auth(ike: &IkeConfig) -> Result<Auth, CredentialError> {
    match &ike.credentials {
        IkeCredentials::Psk(path) => Ok(Auth::Psk(read_psk(path)?)),
        IkeCredentials::Certificate {
            certificate,
            private_key,
            ca,
        } => Ok(Auth::Cert(Arc::new(read_certificate(
            certificate,
            private_key,
            ca,
            &ike.identity,
        )?))),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests read back their own files
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn a_psk_file_others_may_read_is_refused() {
        let dir = scratch("psk");
        let path = dir.join("psk");
        std::fs::write(&path, "00112233445566778899aabbccddeeff\n").expect("write");
        chmod(&path, 0o644);
        let e = read_psk(&path).expect_err("world readable");
        assert!(e.to_string().starts_with("[ike] psk_file "), "{e}");
        assert!(e.to_string().contains("mode 0644"), "{e}");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        chmod(&path, 0o600);
        assert_eq!(read_psk(&path).expect("psk").len(), 16);
        std::fs::write(&path, "0011").expect("write");
        assert!(read_psk(&path).is_err(), "too short");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn certificate_credentials_are_checked_and_errors_name_the_file() {
        use meshplane_control::ike::SigAlg;
        let dir = scratch("ike-creds");
        let gws = ["gw-a".to_string(), "gw-b".to_string()];
        crate::cli::keys::write_ike_credentials(
            &dir,
            &gws,
            SigAlg::EcdsaP256Sha256,
            1_800_000_000,
            30,
            false,
        )
        .expect("issue");
        let (cert, key, ca) = (
            dir.join("gw-a.pem"),
            dir.join("gw-a.key"),
            dir.join("ca.pem"),
        );
        let c = read_certificate(&cert, &key, &ca, "gw-a").expect("credentials");
        assert_eq!(c.algorithm(), SigAlg::EcdsaP256Sha256);

        // The key file must be the operator's own.
        chmod(&key, 0o640);
        let e = read_certificate(&cert, &key, &ca, "gw-a").expect_err("group readable");
        assert_eq!(e.key, "private_key");
        assert!(e.to_string().contains("mode 0640"), "{e}");
        assert!(e.to_string().contains(&key.display().to_string()), "{e}");
        chmod(&key, 0o600);

        // Another gateway's key; an identity the certificate does not name.
        let e = read_certificate(&cert, &dir.join("gw-b.key"), &ca, "gw-a").expect_err("key");
        assert_eq!(e.key, "private_key", "{e}");
        assert!(e.msg.contains("does not match"), "{e}");
        let e = read_certificate(&cert, &key, &ca, "gw-b").expect_err("identity");
        assert_eq!(e.key, "certificate", "{e}");
        assert!(e.msg.contains("\"gw-b\""), "{e}");

        // A CA that did not issue it; a CA file that is no certificate;
        // a file that is not there.
        let other = scratch("ike-creds-other");
        crate::cli::keys::write_ike_credentials(
            &other,
            &gws,
            SigAlg::Ed25519,
            1_800_000_000,
            30,
            false,
        )
        .expect("issue");
        let e = read_certificate(&cert, &key, &other.join("ca.pem"), "gw-a").expect_err("ca");
        assert_eq!(e.key, "certificate", "{e}");
        assert!(e.msg.contains("not issued by the CA"), "{e}");
        let e = read_certificate(&cert, &key, &key, "gw-a").expect_err("not a certificate");
        assert_eq!(e.key, "ca", "{e}");
        assert!(e.msg.contains("no PEM"), "{e}");
        let e = read_certificate(&cert, &key, &dir.join("nope.pem"), "gw-a").expect_err("absent");
        assert_eq!(e.key, "ca", "{e}");
        assert!(e.to_string().contains("nope.pem"), "{e}");
        // Nothing of the key in any message.
        let pem = std::fs::read_to_string(&key).expect("key");
        let body = pem.lines().nth(1).expect("base64");
        assert!(!e.to_string().contains(body));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&other);
    }
}
