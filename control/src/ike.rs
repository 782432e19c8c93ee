//! IKEv2 (RFC 7296) between gateways: a sans-IO endpoint that negotiates
//! the ESP Child SAs the data plane installs.
//!
//! An [`Ike`] holds every IKE SA of one node, as initiator and as
//! responder. It takes time (`now_ns`, any monotonic nanosecond scale)
//! and the UDP payloads that arrived on ports 500 and 4500, and gives
//! back datagrams to send, a deadline, and events; it opens no socket and
//! reads no clock. Its randomness (SPIs, nonces, Diffie-Hellman private
//! keys, IVs, the cookie secret) comes from the [`Rng`] it is given:
//! [`SystemRng`] in a node, [`SeededRng`] where a run must repeat.
//!
//! ```text
//! with certificates:      ike.set_wall_clock(now, unix_secs)   (once, and when stepped)
//! to start:               ike.initiate(now, "peer")
//! on a datagram:          ike.on_datagram(now, src, dst, bytes)
//! at ike.next_timeout():  ike.on_timeout(now)
//! to rekey / delete:      ike.rekey_child(now, sa, spi_in, pfs) / ike.rekey_ike(now, sa)
//!                         ike.delete_child(now, sa, spi_in) / ike.delete_ike(now, sa)
//!                         ike.check_liveness(now, sa)
//! after any call:         send every ike.poll_transmit(), handle every ike.poll_event()
//! ```
//!
//! What is implemented:
//!
//! * IKE_SA_INIT and IKE_AUTH with one Child SA; authentication ([`Auth`])
//!   by pre-shared key (§2.15, AUTH method 2) or by digital signature
//!   (RFC 7427, AUTH method 14) with X.509 certificates under one
//!   constellation CA ([`cert`]): ECDSA P-256 with SHA-256 and Ed25519
//!   (RFC 8420), CERT payloads (encoding 4) sent always, CERTREQ (the
//!   SHA-1 of the CA's SubjectPublicKeyInfo) in the IKE_SA_INIT response
//!   and the IKE_AUTH request, SIGNATURE_HASH_ALGORITHMS (SHA2-256 and
//!   Identity) announced in IKE_SA_INIT and honoured (no signature the
//!   peer did not announce a hash for); the peer's certificate validated
//!   up to the CA at the wall-clock time the caller gives
//!   ([`Ike::set_wall_clock`]; validity, basic and name constraints, key
//!   usage, EKU id-kp-ipsecIKE if any) and matched to its ID
//!   (ID_DER_ASN1_DN against the subject; ID_FQDN, ID_RFC822_ADDR and
//!   addresses against the subjectAltName). An initiator that refuses the
//!   responder's AUTH says so in an INFORMATIONAL (§2.21.2).
//!   [`cert::issue`] makes the CA and the gateways' certificates;
//! * algorithms ([`proposal`]): ENCR_AES_GCM_16 with 128- and 256-bit
//!   keys for the IKE SA (RFC 5282) and ESP (RFC 4106), PRF_HMAC_SHA2_256
//!   and _384, groups 31 (X25519), 19 (P-256) and 20 (P-384), ESN (offered
//!   first; a peer that has only 32-bit sequence numbers is accepted and
//!   [`ChildSa::esn_refused`] says so);
//! * tunnel-mode Child SAs with IPv4 and IPv6 range selectors, narrowed
//!   to the configured ones as responder and checked as initiator;
//! * CREATE_CHILD_SA: rekeying a Child SA (optionally with PFS) and the
//!   IKE SA (new KE, §2.18; Child SAs move to the new IKE SA), as
//!   initiator and responder; new Child SAs from the peer; both ends
//!   rekeying one Child SA at once (as equal lifetimes make likely) keep
//!   the SA not made with the lowest nonce (§2.8.1); an IKE SA rekey that
//!   collides with another rekey is answered TEMPORARY_FAILURE (§2.25)
//!   and the caller tries again;
//! * INFORMATIONAL: DELETE of Child SAs and of the IKE SA, empty requests
//!   (liveness checks) answered and sent;
//! * message IDs with a window of one: one request outstanding per IKE
//!   SA, further operations queued; requests retransmitted at an interval
//!   doubling from [`Config::retransmit_initial_ns`] until
//!   [`Config::retransmit_tries`] sends, then the IKE SA ends
//!   ([`Reason::Timeout`]); the last response is sent again for a
//!   retransmitted request, older and future message IDs are dropped and
//!   counted;
//! * INVALID_KE_PAYLOAD (answered, and followed by a retry as initiator),
//!   and COOKIE (§2.6): beyond [`Config::cookie_threshold`] half-open
//!   SAs the responder asks for a cookie, statelessly (an HMAC of the
//!   initiator's nonce, address and SPI under a secret of the endpoint),
//!   and beyond [`Config::max_half_open`] drops IKE_SA_INIT;
//! * NAT traversal (§2.23, RFC 3948): NAT detection, the move to port
//!   4500 with the non-ESP marker, and [`PeerConfig::force_encap`] for a
//!   partner whose ESP must travel in UDP;
//! * hostile input: parsing never panics, every length is checked, an
//!   unknown critical payload is answered with UNSUPPORTED_CRITICAL_PAYLOAD,
//!   and every dropped datagram is counted by reason ([`Dropped`]); state
//!   is bounded (SAs, half-open SAs, queued operations, queued datagrams
//!   and events).
//!
//! Not implemented: EAP, configuration payloads, certificate revocation
//! (CRL, OCSP), HTTP_CERT_LOOKUP, RSA and the older signature methods (1,
//! 9-11), more than one trusted CA per peer, IKE fragmentation
//! (RFC 7383), MOBIKE, transport mode, more than one Child SA in one
//! request, the §2.8.2 resolution of simultaneous IKE SA rekeys (refused
//! instead, see above), rotation of the cookie secret, and lifetimes
//! acted on by the endpoint itself (they are handed to the caller with
//! each [`ChildSa`]; the caller rekeys).
//!
//! Secrets ([`crypto::Secret`], [`crypto::GcmKey`]) are zeroized on drop
//! and print only their length; a certificate's private key is read
//! through zeroized buffers and held by aws-lc, which cleanses it when
//! freed ([`Credentials`] prints only its subject).

pub mod cert;
pub mod crypto;
pub mod proposal;
mod session;
pub mod wire;

#[cfg(test)]
mod tests;

pub use cert::{CertError, Credentials, SigAlg};
pub use crypto::{GcmKey, Group, Prf, Rng, SeededRng, SystemRng};
pub use proposal::{AesGcm, ChildSuite, IkeSuite, Offer};
pub use session::{
    ApiError, Auth, ChildReason, ChildSa, Config, Counters, Dropped, Event, Ike, Lifetime,
    PeerConfig, Reason, SaId, SaInfo, Transmit,
};
pub use wire::{Identity, TrafficSelector};
