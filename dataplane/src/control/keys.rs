//! The constellation's notice keys: each node signs the link-state notices
//! it originates with its own Ed25519 key, and checks every other node's
//! against the constellation's trust file (aws-lc-rs).
//!
//! Files (`meshplane keys` writes them):
//! * a node's key: one line, the hex of its PKCS#8 (v2) Ed25519 document;
//!   mode 0600;
//! * the trust file: one line per node, `ID PUBLIC-KEY-HEX` (32 bytes);
//!   `#` starts a comment.
//!
//! Both are read bounded, regular files only ([`crate::file_read`]).

use crate::file_read::{read_text, SYSTEM_LIMIT};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use meshplane_control::signing::{NoticeSigner, NoticeVerifier, SIGNATURE_LEN};
use meshplane_control::NodeId;
use std::collections::HashMap;
use std::path::Path;
use zeroize::Zeroizing;

/// Largest trust file read (64 bytes a line for a constellation of
/// hundreds of thousands of nodes).
pub const TRUST_LIMIT: u64 = 32 << 20;

/// Why a key or trust file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("{path}: {msg}")]
    File {
        /// The file.
        path: String,
        /// Why.
        msg: String,
    },
    /// The contents are not what the format says.
    #[error("{path}:{line}: {msg}")]
    Format {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// The system's random source failed.
    #[error("no random numbers: {0}")]
    Random(String),
}

/// A node's own signing key.
pub struct NodeKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKey {{ public: {} }}", hex::encode(self.public()))
    }
}

impl NodeKey {
    /// A new random key and its PKCS#8 document (hex, to write to the
    /// node's key file).
    pub fn generate() -> Result<(NodeKey, Zeroizing<String>), KeyError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc =
            Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| KeyError::Random(e.to_string()))?;
        let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref())
            .map_err(|e| KeyError::Random(e.to_string()))?;
        Ok((NodeKey { pair }, Zeroizing::new(hex::encode(doc.as_ref()))))
    }

    /// The key in `path` (see the module documentation).
    pub fn read(path: &Path) -> Result<NodeKey, KeyError> {
        let text = Zeroizing::new(read_text(path, SYSTEM_LIMIT).map_err(|e| KeyError::File {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?);
        let bad = |msg: &str| KeyError::Format {
            path: path.display().to_string(),
            line: 1,
            msg: msg.to_string(),
        };
        let der = Zeroizing::new(
            hex::decode(text.trim()).map_err(|_| bad("not hex (a PKCS#8 Ed25519 key)"))?,
        );
        let pair = Ed25519KeyPair::from_pkcs8(&der)
            .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der))
            .map_err(|_| bad("not a PKCS#8 Ed25519 key"))?;
        Ok(NodeKey { pair })
    }

    /// The public key.
    pub fn public(&self) -> [u8; 32] {
        let mut k = [0u8; 32];
        let p = self.pair.public_key().as_ref();
        if p.len() == 32 {
            k.copy_from_slice(p);
        }
        k
    }
}

impl NoticeSigner for NodeKey {
    fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut out = [0u8; SIGNATURE_LEN];
        let s = self.pair.sign(msg);
        if s.as_ref().len() == SIGNATURE_LEN {
            out.copy_from_slice(s.as_ref());
        }
        out
    }
}

/// Every node's public key.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    keys: HashMap<NodeId, [u8; 32]>,
}

impl TrustStore {
    /// The trust file `path` (see the module documentation).
    pub fn read(path: &Path) -> Result<TrustStore, KeyError> {
        let text = read_text(path, TRUST_LIMIT).map_err(|e| KeyError::File {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        TrustStore::parse(&text).map_err(|(line, msg)| KeyError::Format {
            path: path.display().to_string(),
            line,
            msg,
        })
    }

    /// Parses a trust file's text; the error is its line and reason.
    pub fn parse(text: &str) -> Result<TrustStore, (usize, String)> {
        let mut keys = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut w = line.split_whitespace();
            let (Some(id), Some(key), None) = (w.next(), w.next(), w.next()) else {
                return Err((i + 1, "want `ID PUBLIC-KEY-HEX`".into()));
            };
            let id: NodeId = id
                .parse()
                .map_err(|_| (i + 1, format!("{:?} is not a node id", cut(id))))?;
            let mut k = [0u8; 32];
            hex::decode_to_slice(key, &mut k)
                .map_err(|_| (i + 1, "the key is not 32 bytes of hex".to_string()))?;
            if keys.insert(id, k).is_some() {
                return Err((i + 1, format!("node {id} is listed twice")));
            }
        }
        Ok(TrustStore { keys })
    }

    /// Adds (or replaces) `id`'s key.
    pub fn insert(&mut self, id: NodeId, key: [u8; 32]) {
        self.keys.insert(id, key);
    }

    /// Nodes with a key.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no node has a key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// `id`'s key, if known.
    pub fn key(&self, id: NodeId) -> Option<&[u8; 32]> {
        self.keys.get(&id)
    }

    /// The trust file's text, in node order.
    pub fn render(&self) -> String {
        let mut ids: Vec<_> = self.keys.keys().copied().collect();
        ids.sort_unstable();
        let mut out = String::from("# meshplane trust file: node id, Ed25519 public key\n");
        for id in ids {
            out.push_str(&format!("{id} {}\n", hex::encode(self.keys[&id])));
        }
        out
    }
}

impl NoticeVerifier for TrustStore {
    fn verify(&self, origin: NodeId, msg: &[u8], sig: &[u8; SIGNATURE_LEN]) -> bool {
        self.keys
            .get(&origin)
            .is_some_and(|k| UnparsedPublicKey::new(&ED25519, k).verify(msg, sig).is_ok())
    }
}

fn cut(s: &str) -> &str {
    s.get(..s.len().min(24)).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_signed_by_one_node_verifies_as_that_node_only() {
        let (a, _) = NodeKey::generate().expect("key");
        let (b, _) = NodeKey::generate().expect("key");
        let mut trust = TrustStore::default();
        trust.insert(1, a.public());
        trust.insert(2, b.public());
        let msg = b"link 1-2 down";
        let sig = a.sign(msg);
        assert!(trust.verify(1, msg, &sig));
        assert!(!trust.verify(2, msg, &sig), "another origin");
        assert!(!trust.verify(3, msg, &sig), "an unknown origin");
        assert!(!trust.verify(1, b"link 1-2 up", &sig), "another message");
        let mut forged = sig;
        forged[10] ^= 1;
        assert!(!trust.verify(1, msg, &forged));
    }

    #[test]
    fn key_and_trust_files_round_trip_and_bad_lines_are_named() {
        let dir = std::env::temp_dir().join(format!("mp-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (k, doc) = NodeKey::generate().expect("key");
        let kp = dir.join("node.key");
        std::fs::write(&kp, format!("{}\n", doc.as_str())).expect("write");
        let back = NodeKey::read(&kp).expect("read back");
        assert_eq!(back.public(), k.public());
        let mut t = TrustStore::default();
        t.insert(7, k.public());
        let tp = dir.join("trust");
        std::fs::write(&tp, t.render()).expect("write");
        let t2 = TrustStore::read(&tp).expect("trust");
        assert_eq!(t2.key(7), Some(&k.public()));
        let msg = b"x";
        assert!(t2.verify(7, msg, &back.sign(msg)));

        assert_eq!(TrustStore::parse("1 00\n").err().map(|e| e.0), Some(1));
        assert_eq!(
            TrustStore::parse(&format!(
                "# c\n1 {}\n1 {}\n",
                "00".repeat(32),
                "11".repeat(32)
            ))
            .err()
            .map(|e| e.0),
            Some(3)
        );
        assert!(TrustStore::parse("x y z\n").is_err());
        std::fs::write(&kp, "zz").expect("write");
        assert!(NodeKey::read(&kp).is_err());
        std::fs::write(&kp, "00112233").expect("write");
        assert!(NodeKey::read(&kp).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
