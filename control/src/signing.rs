//! Who signs and who checks notices, as two traits, so that this crate
//! carries no cryptography of its own: the data plane implements them with
//! Ed25519 (each node's own key to sign, its neighbours' and every other
//! node's public keys to verify).
//!
//! What is signed is exactly the encoded notice record without its
//! signature ([`crate::notice::Notice::signed_bytes`]).

use crate::topology::NodeId;

/// Length of a signature (Ed25519).
pub const SIGNATURE_LEN: usize = 64;

/// Signs notices with the node's own key.
pub trait NoticeSigner {
    /// The signature of `msg`.
    fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN];
}

/// Checks notices against their origin's key.
pub trait NoticeVerifier {
    /// True if `sig` is `origin`'s signature of `msg` (false for an origin
    /// whose key is unknown).
    fn verify(&self, origin: NodeId, msg: &[u8], sig: &[u8; SIGNATURE_LEN]) -> bool;
}

impl<T: NoticeSigner + ?Sized> NoticeSigner for &T {
    fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        (**self).sign(msg)
    }
}

impl<T: NoticeSigner + ?Sized> NoticeSigner for Box<T> {
    fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        (**self).sign(msg)
    }
}

impl<T: NoticeVerifier + ?Sized> NoticeVerifier for &T {
    fn verify(&self, origin: NodeId, msg: &[u8], sig: &[u8; SIGNATURE_LEN]) -> bool {
        (**self).verify(origin, msg, sig)
    }
}

impl<T: NoticeVerifier + ?Sized> NoticeVerifier for Box<T> {
    fn verify(&self, origin: NodeId, msg: &[u8], sig: &[u8; SIGNATURE_LEN]) -> bool {
        (**self).verify(origin, msg, sig)
    }
}

/// A stand-in for tests only: a keyed hash (SipHash with per-node keys
/// derived from one shared secret). It is NOT a signature: anyone holding
/// the secret can "sign" for every node. Production uses Ed25519.
#[cfg(test)]
pub(crate) mod stand_in {
    use super::{NoticeSigner, NoticeVerifier, SIGNATURE_LEN};
    use crate::topology::NodeId;
    use std::hash::{DefaultHasher, Hash, Hasher};

    /// The shared secret every node's test key derives from.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Keys(u64);

    impl Keys {
        pub(crate) const fn new(secret: u64) -> Self {
            Self(secret)
        }

        fn mac(&self, node: NodeId, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
            let mut out = [0; SIGNATURE_LEN];
            for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
                let mut h = DefaultHasher::new();
                (self.0, node, i, msg).hash(&mut h);
                chunk.copy_from_slice(&h.finish().to_be_bytes());
            }
            out
        }
    }

    /// Signs as one node.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct NodeSigner {
        keys: Keys,
        node: NodeId,
    }

    impl NodeSigner {
        pub(crate) fn new(keys: &Keys, node: NodeId) -> Self {
            Self { keys: *keys, node }
        }
    }

    impl NoticeSigner for NodeSigner {
        fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
            self.keys.mac(self.node, msg)
        }
    }

    impl NoticeVerifier for Keys {
        fn verify(&self, origin: NodeId, msg: &[u8], sig: &[u8; SIGNATURE_LEN]) -> bool {
            self.mac(origin, msg) == *sig
        }
    }
}
