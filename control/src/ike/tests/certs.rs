//! Certificate authentication (RFC 7427) between two endpoints in
//! process: both signature algorithms in both roles, CERTREQ or none, and
//! every refusal (another CA, an expired certificate, an identity the
//! certificate does not name, a changed signature, hostile CERT and AUTH
//! payloads).

use super::super::cert::{self, issue, CertError, Credentials, SigAlg};
use super::*;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// The wall-clock time of these tests (2027-01-15).
const NOW: u64 = 1_800_000_000;
const DAY: u64 = 86_400;

fn gw(ip: &str) -> String {
    format!("gw-{ip}")
}

fn new_ca(alg: SigAlg) -> issue::Ca {
    issue::ca("meshplane test CA", alg, NOW - 10 * DAY, NOW + 3650 * DAY).expect("ca")
}

fn alg(k: usize) -> SigAlg {
    [SigAlg::EcdsaP256Sha256, SigAlg::Ed25519][k]
}

/// One CA per algorithm, made once.
fn cas() -> &'static [issue::Ca; 2] {
    static CAS: OnceLock<[issue::Ca; 2]> = OnceLock::new();
    CAS.get_or_init(|| [new_ca(alg(0)), new_ca(alg(1))])
}

fn ecdsa_ca() -> &'static issue::Ca {
    &cas()[0]
}

/// Fresh credentials for the gateway at `ip` under `ca`, valid from
/// `from` to `to`.
fn fresh(ca: &issue::Ca, ip: &str, alg: SigAlg, from: u64, to: u64) -> Arc<Credentials> {
    let i = ca.issue(&gw(ip), alg, from, to).expect("issue");
    Arc::new(
        Credentials::from_pem(
            i.cert_pem.as_bytes(),
            i.key_pem.as_bytes(),
            ca.cert_pem().as_bytes(),
        )
        .expect("credentials"),
    )
}

/// Credentials for `ip` under the ECDSA CA with the same key on every
/// call (key generation is random; the scripted runs below must see the
/// same certificates each time).
fn pinned(ip: &str) -> Arc<Credentials> {
    static PINNED: OnceLock<std::sync::Mutex<HashMap<String, Arc<Credentials>>>> = OnceLock::new();
    let m = PINNED.get_or_init(Default::default);
    let mut m = m.lock().expect("lock");
    m.entry(ip.to_string())
        .or_insert_with(|| fresh(ecdsa_ca(), ip, alg(0), NOW - DAY, NOW + DAY))
        .clone()
}

/// Two ends authenticating with `ca` and `cb`.
fn cert_pair(ca: Arc<Credentials>, cb: Arc<Credentials>, seed: u64) -> (End, End) {
    let (mut a, mut b) = pair(Offer::ike_default(), Offer::child_default(), seed);
    a.config_mut().peers[0].auth = Auth::Cert(ca);
    b.config_mut().peers[0].auth = Auth::Cert(cb);
    a.set_wall_clock(0, NOW);
    b.set_wall_clock(0, NOW);
    (a, b)
}

/// A datagram: whether the initiator sent it, its bytes.
type Datagram = (bool, Vec<u8>);

/// Runs `x` initiating to `y` (whose peer entry is named `name`),
/// recording every datagram: (from x, bytes).
fn exchange(x: &mut End, y: &mut End, name: &str) -> (Vec<Event>, Vec<Event>, Vec<Datagram>) {
    x.initiate(0, name).expect("initiate");
    let (mut ex, mut ey, mut log) = (vec![], vec![], vec![]);
    for _ in 0..50 {
        let mut moved = false;
        while let Some(t) = x.poll_transmit() {
            moved = true;
            log.push((true, t.bytes.clone()));
            let _ = y.on_datagram(0, t.src, t.dst, &t.bytes);
        }
        while let Some(t) = y.poll_transmit() {
            moved = true;
            log.push((false, t.bytes.clone()));
            let _ = x.on_datagram(0, t.src, t.dst, &t.bytes);
        }
        while let Some(e) = x.poll_event() {
            ex.push(e);
        }
        while let Some(e) = y.poll_event() {
            ey.push(e);
        }
        if !moved {
            break;
        }
    }
    (ex, ey, log)
}

/// The payloads of an unencrypted message.
fn plain_payloads(msg: &[u8]) -> wire::Payloads {
    let h = Header::parse(msg).expect("header");
    let (list, _) = wire::walk(h.next, &msg[wire::HEADER_LEN..], wire::HEADER_LEN).expect("walk");
    wire::Payloads::decode(&list).expect("decode")
}

/// The inner payloads of an SK message sealed by `sender`.
fn inner_payloads(sender: &End, msg: &[u8]) -> wire::Payloads {
    let h = Header::parse(msg).expect("header");
    let spi = if h.from_initiator() { h.spi_i } else { h.spi_r };
    let key = sender.sealing_key(spi).expect("key");
    let (_, sk) = wire::walk(h.next, &msg[wire::HEADER_LEN..], wire::HEADER_LEN).expect("walk");
    let sk = sk.expect("sk");
    let plain = crypto::open_message(msg, sk, &key).expect("open");
    let (list, _) = wire::walk(sk.inner_first, &plain, 0).expect("inner");
    wire::Payloads::decode(&list).expect("decode")
}

fn is_up(ev: &[Event]) -> bool {
    ev.iter().any(|e| matches!(e, Event::IkeUp { .. }))
        && ev.iter().any(|e| matches!(e, Event::ChildUp(_)))
}

fn auth_failed(ev: &[Event]) -> bool {
    ev.iter().any(|e| {
        matches!(
            e,
            Event::IkeDown {
                reason: Reason::AuthFailed,
                ..
            }
        )
    })
}

#[test]
fn both_algorithms_in_both_roles_establish() {
    for (ka, kb) in [(0, 0), (1, 1), (0, 1), (1, 0)] {
        // a's key of one algorithm, b's of the other, both under the CA
        // of a's algorithm.
        let issuer = &cas()[ka];
        let ca = fresh(issuer, A, alg(ka), NOW - DAY, NOW + DAY);
        let cb = fresh(issuer, B, alg(kb), NOW - DAY, NOW + DAY);
        for a_initiates in [true, false] {
            let (mut a, mut b) = cert_pair(ca.clone(), cb.clone(), 40 + ka as u64);
            let (ex, ey, log) = if a_initiates {
                exchange(&mut a, &mut b, "b")
            } else {
                exchange(&mut b, &mut a, "a")
            };
            assert!(
                is_up(&ex) && is_up(&ey),
                "{ka}/{kb} {a_initiates}: {ex:?} {ey:?}"
            );
            agree(&children(&ex)[0], &children(&ey)[0]);
            // IKE_SA_INIT both ways announces SHA2-256 and Identity; the
            // response asks for our CA's certificate.
            let init_i = plain_payloads(&log[0].1);
            let init_r = plain_payloads(&log[1].1);
            for p in [&init_i, &init_r] {
                let n = p
                    .notify(wire::notify::SIGNATURE_HASH_ALGORITHMS)
                    .expect("hashes");
                assert_eq!(cert::parse_hashes(&n.data), vec![2, 5]);
            }
            assert!(init_i.certreqs.is_empty());
            assert_eq!(init_r.certreqs.len(), 1);
            assert_eq!(init_r.certreqs[0].0, cert::X509_SIGNATURE);
            assert_eq!(
                cert::certreq_keyids(init_r.certreqs[0].0, &init_r.certreqs[0].1),
                vec![ca.ca_keyid()]
            );
            // IKE_AUTH: the initiator's CERT and CERTREQ, the
            // responder's CERT; AUTH method 14 with the key's algorithm.
            let (xi, yr) = if a_initiates { (&a, &b) } else { (&b, &a) };
            let (ci, cr) = if a_initiates { (&ca, &cb) } else { (&cb, &ca) };
            let auth_i = inner_payloads(xi, &log[2].1);
            let auth_r = inner_payloads(yr, &log[3].1);
            assert_eq!(auth_i.certs, vec![(4, ci.certificate().to_vec())]);
            assert_eq!(auth_i.certreqs.len(), 1);
            assert_eq!(auth_r.certs, vec![(4, cr.certificate().to_vec())]);
            for (p, c) in [(&auth_i, ci), (&auth_r, cr)] {
                let (m, d) = p.auth.as_ref().expect("auth");
                assert_eq!(*m, 14);
                let id = c.algorithm().algorithm_identifier();
                assert_eq!(usize::from(d[0]), id.len());
                assert_eq!(&d[1..1 + id.len()], id);
            }
        }
    }
}

#[test]
fn certreq_may_be_absent_both_ways() {
    let ca = ecdsa_ca();
    let certs = |ip| {
        let i = ca
            .issue(&gw(ip), alg(1), NOW - DAY, NOW + DAY)
            .expect("issue");
        let c = Credentials::from_der(i.cert_der.clone(), &i.key_der, ca.cert_der());
        Arc::new(c.expect("credentials").without_certreq())
    };
    let (a, b) = (certs(A), certs(B));
    let (mut x, mut y) = cert_pair(a, b, 3);
    let (ex, ey, log) = exchange(&mut x, &mut y, "b");
    assert!(is_up(&ex) && is_up(&ey), "{ex:?} {ey:?}");
    assert!(plain_payloads(&log[1].1).certreqs.is_empty());
    let auth_i = inner_payloads(&x, &log[2].1);
    assert!(auth_i.certreqs.is_empty());
    // Certificates are sent all the same: the peer has no other source.
    assert_eq!(auth_i.certs.len(), 1);
    assert_eq!(inner_payloads(&y, &log[3].1).certs.len(), 1);
}

#[test]
fn distinguished_name_identities() {
    let ca = ecdsa_ca();
    let a = fresh(ca, A, SigAlg::EcdsaP256Sha256, NOW - DAY, NOW + DAY);
    let b = fresh(ca, B, SigAlg::EcdsaP256Sha256, NOW - DAY, NOW + DAY);
    let subject = |c: &Credentials| {
        let (_, x) = x509_parser::parse_x509_certificate(c.certificate()).expect("x509");
        x.subject().as_raw().to_vec()
    };
    let (da, db) = (Identity::dn(&subject(&a)), Identity::dn(&subject(&b)));
    assert!(a.covers(&da) && !a.covers(&db));
    assert_eq!(
        da.to_string(),
        format!("O=meshplane constellation, CN={}", gw(A))
    );
    let (mut x, mut y) = cert_pair(a, b, 4);
    x.config_mut().peers[0].local_id = da.clone();
    x.config_mut().peers[0].remote_id = db.clone();
    y.config_mut().peers[0].local_id = db;
    y.config_mut().peers[0].remote_id = da;
    let (ex, ey, _) = exchange(&mut x, &mut y, "b");
    assert!(is_up(&ex) && is_up(&ey), "{ex:?} {ey:?}");
}

#[test]
fn certificate_of_another_ca_is_refused() {
    // a's certificate is from another CA than the one b trusts, and the
    // other way round.
    let other = new_ca(SigAlg::EcdsaP256Sha256);
    let a = fresh(&other, A, SigAlg::EcdsaP256Sha256, NOW - DAY, NOW + DAY);
    let b = fresh(ecdsa_ca(), B, SigAlg::EcdsaP256Sha256, NOW - DAY, NOW + DAY);
    let (mut x, mut y) = cert_pair(a, b, 5);
    let (ex, ey, _) = exchange(&mut x, &mut y, "b");
    assert!(auth_failed(&ex), "{ex:?}");
    assert!(!is_up(&ey));
    assert_eq!(y.counters().dropped(Dropped::BadCertificate), 1);
    assert!(x.sas().is_empty() && y.sas().is_empty());
    // The check itself says why.
    let c = fresh(ecdsa_ca(), A, SigAlg::EcdsaP256Sha256, NOW - DAY, NOW + DAY);
    let theirs = fresh(&other, B, SigAlg::EcdsaP256Sha256, NOW - DAY, NOW + DAY);
    let e = c
        .verify_peer(
            &[(4, theirs.certificate().to_vec())],
            &Identity::fqdn(&gw(B)),
            Some(NOW),
        )
        .expect_err("other CA");
    assert!(matches!(e, CertError::Path(_)), "{e:?}");
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused() {
    let ca = ecdsa_ca();
    for (from, to) in [(NOW - 9 * DAY, NOW - DAY), (NOW + DAY, NOW + 9 * DAY)] {
        let a = fresh(ca, A, SigAlg::EcdsaP256Sha256, NOW - DAY, NOW + DAY);
        let b = fresh(ca, B, SigAlg::Ed25519, from, to);
        // b, the responder, shows the bad certificate: a refuses it.
        let (mut x, mut y) = cert_pair(a, b, 6);
        let (ex, _, _) = exchange(&mut x, &mut y, "b");
        assert!(auth_failed(&ex), "{ex:?}");
        assert_eq!(x.counters().dropped(Dropped::BadCertificate), 1);
    }
    // The same certificate is good at a time within its validity: the
    // wall clock the caller gives is what counts, extrapolated.
    let a = fresh(ca, A, SigAlg::EcdsaP256Sha256, NOW - DAY, NOW + 30 * DAY);
    let b = fresh(ca, B, SigAlg::Ed25519, NOW + DAY, NOW + 9 * DAY);
    let (mut x, mut y) = cert_pair(a, b, 7);
    x.set_wall_clock(0, NOW - 2 * DAY);
    assert_eq!(x.wall_clock(3 * DAY * 1_000_000_000), Some(NOW + DAY));
    x.set_wall_clock(0, NOW + 2 * DAY);
    y.set_wall_clock(0, NOW + 2 * DAY);
    let (ex, ey, _) = exchange(&mut x, &mut y, "b");
    assert!(is_up(&ex) && is_up(&ey), "{ex:?}");
}

#[test]
fn without_a_wall_clock_certificates_are_refused() {
    let (mut x, mut y) = pair(Offer::ike_default(), Offer::child_default(), 8);
    x.config_mut().peers[0].auth = Auth::Cert(pinned(A));
    y.config_mut().peers[0].auth = Auth::Cert(pinned(B));
    x.set_wall_clock(0, NOW);
    assert_eq!(y.wall_clock(0), None);
    let (ex, _, _) = exchange(&mut x, &mut y, "b");
    assert!(auth_failed(&ex), "{ex:?}");
    assert_eq!(y.counters().dropped(Dropped::BadCertificate), 1);
}

#[test]
fn identity_the_certificate_does_not_name_is_refused() {
    let ca = ecdsa_ca();
    let a = fresh(ca, A, SigAlg::EcdsaP256Sha256, NOW - DAY, NOW + DAY);
    let b = fresh(ca, B, SigAlg::EcdsaP256Sha256, NOW - DAY, NOW + DAY);
    let (mut x, mut y) = cert_pair(a, b, 9);
    // b claims to be gw-evil (and a expects that name), but b's
    // certificate names gw-10.0.0.2.
    let evil = Identity::fqdn("gw-evil");
    y.config_mut().peers[0].local_id = evil.clone();
    x.config_mut().peers[0].remote_id = evil;
    let (ex, _, _) = exchange(&mut x, &mut y, "b");
    assert!(auth_failed(&ex), "{ex:?}");
    assert_eq!(x.counters().dropped(Dropped::BadCertificate), 1);
    // Other identity types: an e-mail or an address the certificate does
    // not carry.
    let c = fresh(ca, B, SigAlg::EcdsaP256Sha256, NOW - DAY, NOW + DAY);
    assert!(c.covers(&Identity::fqdn(&gw(B).to_uppercase())));
    assert!(!c.covers(&Identity::rfc822(&gw(B))));
    assert!(!c.covers(&Identity::addr(B.parse().expect("ip"))));
    assert!(!c.covers(&Identity::dn(b"\x30\x00")));
}

/// Runs an IKE_AUTH request, changed by `f` (payload type, body) and
/// sealed again, into a responder that has answered IKE_SA_INIT; the
/// responder's verdict.
fn tampered_auth(seed: u64, f: &mut dyn FnMut(u8, &mut Vec<u8>)) -> (Result<(), Dropped>, End) {
    let run_to = |k: usize| {
        let (mut x, mut y) = cert_pair(pinned(A), pinned(B), seed);
        x.initiate(0, "b").expect("initiate");
        let mut log = vec![];
        for _ in 0..4 {
            while let Some(t) = x.poll_transmit() {
                if log.len() < k {
                    let _ = y.on_datagram(0, t.src, t.dst, &t.bytes);
                }
                log.push(t);
            }
            while let Some(t) = y.poll_transmit() {
                if log.len() < k {
                    let _ = x.on_datagram(0, t.src, t.dst, &t.bytes);
                }
                log.push(t);
            }
        }
        (x, y, log)
    };
    let (x, _, log) = run_to(3);
    let req = &log[2];
    let h = Header::parse(&req.bytes).expect("header");
    let key = x.sealing_key(h.spi_i).expect("key");
    let m = reseal(&req.bytes, &key, |first, plain| {
        let Ok((list, _)) = wire::walk(*first, plain, 0) else {
            return;
        };
        let mut b = wire::Builder::new();
        for r in &list {
            let mut body = r.body.to_vec();
            f(r.ty, &mut body);
            b.push(r.ty, body);
        }
        *first = b.first();
        *plain = b.encode();
    })
    .expect("reseal");
    let (_, mut y, _) = run_to(2);
    let r = y.on_datagram(0, req.src, req.dst, &m);
    (r, y)
}

#[test]
fn tampered_auth_is_refused() {
    let (r, _) = tampered_auth(10, &mut |_, _| {});
    assert_eq!(r, Ok(()), "unchanged, the request is accepted");
    // A bit of the signature flipped.
    let (r, y) = tampered_auth(10, &mut |ty, body| {
        if ty == wire::payload::AUTH {
            let n = body.len();
            body[n - 3] ^= 1;
        }
    });
    assert_eq!(r, Err(Dropped::AuthFailed));
    assert!(y.sas().is_empty());
    // Another AlgorithmIdentifier (Ed25519 over an ECDSA key).
    let (r, _) = tampered_auth(10, &mut |ty, body| {
        if ty == wire::payload::AUTH {
            let mut v = vec![14, 0, 0, 0, 7];
            v.extend_from_slice(&[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70]);
            v.extend_from_slice(&body[4 + 13..]);
            *body = v;
        }
    });
    assert_eq!(r, Err(Dropped::AuthFailed));
    // The PSK method with a certificate configured.
    let (r, _) = tampered_auth(10, &mut |ty, body| {
        if ty == wire::payload::AUTH {
            body[0] = 2;
        }
    });
    assert_eq!(r, Err(Dropped::AuthFailed));
    // The certificate changed in one byte: its signature breaks.
    let (r, _) = tampered_auth(10, &mut |ty, body| {
        if ty == wire::payload::CERT {
            let n = body.len();
            body[n - 40] ^= 0x10;
        }
    });
    assert_eq!(r, Err(Dropped::BadCertificate));
}

#[test]
fn credentials_are_checked_when_made() {
    let ca = ecdsa_ca();
    let i = ca
        .issue(&gw(A), SigAlg::EcdsaP256Sha256, NOW - DAY, NOW + DAY)
        .expect("issue");
    let j = ca
        .issue(&gw(B), SigAlg::Ed25519, NOW - DAY, NOW + DAY)
        .expect("issue");
    // Another certificate's key.
    assert_eq!(
        Credentials::from_der(i.cert_der.clone(), &j.key_der, ca.cert_der()).err(),
        Some(CertError::KeyMismatch)
    );
    // A gateway certificate as the CA.
    assert_eq!(
        Credentials::from_der(i.cert_der.clone(), &i.key_der, j.cert_der.clone()).err(),
        Some(CertError::NotCa)
    );
    // Another CA.
    let other = new_ca(SigAlg::Ed25519);
    assert!(matches!(
        Credentials::from_der(i.cert_der.clone(), &i.key_der, other.cert_der()),
        Err(CertError::Path(_))
    ));
    assert_eq!(
        Credentials::from_pem(b"junk", i.key_pem.as_bytes(), ca.cert_pem().as_bytes()).err(),
        Some(CertError::Pem("CERTIFICATE"))
    );
    // The key's PEM is its PKCS#8, in 64-column lines.
    for k in [&i, &j] {
        use rustls_pki_types::pem::PemObject;
        let d = rustls_pki_types::PrivateKeyDer::from_pem_slice(k.key_pem.as_bytes()).expect("pem");
        assert_eq!(d.secret_der(), k.key_der.as_slice());
        assert!(k.key_pem.lines().all(|l| l.len() <= 64));
    }
    let c = Credentials::from_der(i.cert_der.clone(), &i.key_der, ca.cert_der()).expect("ok");
    // Secrets do not print.
    let dbg = format!("{c:?} {i:?} {ca:?}");
    assert!(dbg.contains("[secret]"), "{dbg}");
    assert!(!dbg.contains("PRIVATE"), "{dbg}");
    // A peer that announces no hash we sign with gets no signature.
    assert_eq!(
        c.sign(b"octets", &[cert::hash::SHA2_384]).err(),
        Some(CertError::HashNotAnnounced(2))
    );
    assert!(c.sign(b"octets", &cert::ANNOUNCED).is_ok());
    // The CERTREQ names the SHA-1 of the CA's SubjectPublicKeyInfo.
    let (_, x) = x509_parser::parse_x509_certificate(c.ca()).expect("ca");
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        x.public_key().raw,
    );
    assert_eq!(&c.ca_keyid()[..], d.as_ref());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the CERT, CERTREQ and AUTH payloads of an IKE_AUTH
    /// request hold, the responder neither panics nor accepts it.
    #[test]
    fn hostile_cert_and_auth_payloads_are_refused(
        cert_bytes in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..400)),
        auth_bytes in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
        certreq in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..4),
    ) {
        let changes = cert_bytes.is_some() || auth_bytes.is_some() || !flips.is_empty();
        let (r, y) = tampered_auth(11, &mut |ty, body| {
            match ty {
                wire::payload::CERT => {
                    if let Some(c) = &cert_bytes {
                        *body = c.clone();
                    }
                    for (at, x) in &flips {
                        if !body.is_empty() && *x != 0 {
                            let i = usize::from(*at) % body.len();
                            body[i] ^= x;
                        }
                    }
                }
                wire::payload::AUTH => {
                    if let Some(a) = &auth_bytes {
                        *body = a.clone();
                    }
                }
                wire::payload::CERTREQ => {
                    if let Some(c) = &certreq {
                        *body = c.clone();
                    }
                }
                _ => {}
            }
        });
        let flipped = flips.iter().any(|(_, x)| *x != 0);
        if changes && (cert_bytes.is_some() || auth_bytes.is_some() || flipped) {
            // Refused: a malformed message is dropped (the SA stays
            // half-open until it times out), a well-formed one that does
            // not verify ends the SA.
            prop_assert!(r.is_err(), "accepted");
            prop_assert!(y.sas().iter().all(|s| s.state == "half_open"), "{:?}", y.sas());
        }
    }
}

#[test]
fn no_signature_with_a_hash_the_peer_did_not_announce() {
    // An Ed25519 initiator whose responder announces SHA2-256 only: the
    // initiator's signature needs Identity, so it sends no IKE_AUTH and
    // gives up.
    let ca = &cas()[1];
    let a = fresh(ca, A, alg(1), NOW - DAY, NOW + DAY);
    let b = fresh(ca, B, alg(1), NOW - DAY, NOW + DAY);
    let (mut x, mut y) = cert_pair(a, b, 12);
    x.initiate(0, "b").expect("initiate");
    let t = x.poll_transmit().expect("IKE_SA_INIT");
    y.on_datagram(0, t.src, t.dst, &t.bytes).expect("answered");
    let r = y.poll_transmit().expect("response");
    let h = Header::parse(&r.bytes).expect("header");
    let (list, _) =
        wire::walk(h.next, &r.bytes[wire::HEADER_LEN..], wire::HEADER_LEN).expect("walk");
    let mut b = wire::Builder::new();
    let mut replaced = false;
    for p in &list {
        let mut body = p.body.to_vec();
        if p.ty == wire::payload::NOTIFY {
            let mut n = wire::Payloads::decode(std::slice::from_ref(p))
                .expect("notify")
                .notifies
                .remove(0);
            if n.ty == wire::notify::SIGNATURE_HASH_ALGORITHMS {
                n.data = cert::hash::SHA2_256.to_be_bytes().to_vec();
                body = n.encode();
                replaced = true;
            }
        }
        b.push(p.ty, body);
    }
    assert!(replaced);
    let m = wire::plain_message(h, &b);
    let _ = x.on_datagram(0, r.src, r.dst, &m);
    let mut ev = vec![];
    while let Some(e) = x.poll_event() {
        ev.push(e);
    }
    assert!(
        ev.iter().any(|e| matches!(
            e,
            Event::IkeDown {
                reason: Reason::NoProposal,
                ..
            }
        )),
        "{ev:?}"
    );
    assert!(x.poll_transmit().is_none(), "an IKE_AUTH was sent");
    assert!(x.sas().is_empty());
}
