//! Tests of the IKEv2 endpoint: known answers for the PRFs, whole
//! exchanges between two endpoints in process (every algorithm, both
//! roles, rekeys, deletes, losses), and hostile input.

use super::crypto::{self, KeyPair, Secret};
use super::wire::{self, Header, Identity, TrafficSelector};
use super::*;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const A: &str = "10.0.0.1";
const B: &str = "10.0.0.2";
const MS: u64 = 1_000_000;

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("ip"), port)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn peer(name: &str, me: &str, them: &str, psk: &[u8], ike: Offer, child: Offer) -> PeerConfig {
    let (lts, rts) = if me == A {
        ("10.1.0.0", "10.2.0.0")
    } else {
        ("10.2.0.0", "10.1.0.0")
    };
    PeerConfig {
        name: name.into(),
        local: sa(me, 500),
        remote: sa(them, 500),
        local_id: Identity::fqdn(&format!("gw-{me}")),
        remote_id: Identity::fqdn(&format!("gw-{them}")),
        auth: Auth::Psk(Secret::new(psk.to_vec())),
        ike,
        child,
        local_ts: vec![
            TrafficSelector::prefix(lts.parse().expect("ip"), 16),
            TrafficSelector::prefix(
                IpAddr::V6(Ipv6Addr::new(0xfd00, u16::from(me == A), 0, 0, 0, 0, 0, 0)),
                48,
            ),
        ],
        remote_ts: vec![
            TrafficSelector::prefix(rts.parse().expect("ip"), 16),
            TrafficSelector::prefix(
                IpAddr::V6(Ipv6Addr::new(0xfd00, u16::from(me != A), 0, 0, 0, 0, 0, 0)),
                48,
            ),
        ],
        lifetime: Lifetime {
            soft_secs: 3000,
            hard_secs: 3600,
            ..Lifetime::default()
        },
        force_encap: false,
    }
}

type End = Ike<SeededRng>;

fn pair(ike: Offer, child: Offer, seed: u64) -> (End, End) {
    let a = Config {
        peers: vec![peer("b", A, B, b"secret", ike.clone(), child.clone())],
        ..Config::default()
    };
    let b = Config {
        peers: vec![peer("a", B, A, b"secret", ike, child)],
        ..Config::default()
    };
    (
        Ike::new(a, SeededRng::new(seed)),
        Ike::new(b, SeededRng::new(seed ^ 0xffff)),
    )
}

/// Moves every datagram between the two ends until both are quiet;
/// returns the events of each. `drop` decides, by running count, which
/// datagrams are lost.
fn run(
    a: &mut End,
    b: &mut End,
    now: u64,
    drop: &mut dyn FnMut(usize) -> bool,
) -> (Vec<Event>, Vec<Event>) {
    let (mut ea, mut eb) = (vec![], vec![]);
    let mut n = 0;
    for _ in 0..200 {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            moved = true;
            n += 1;
            if !drop(n) {
                let _ = b.on_datagram(now, t.src, t.dst, &t.bytes);
            }
        }
        while let Some(t) = b.poll_transmit() {
            moved = true;
            n += 1;
            if !drop(n) {
                let _ = a.on_datagram(now, t.src, t.dst, &t.bytes);
            }
        }
        while let Some(e) = a.poll_event() {
            ea.push(e);
        }
        while let Some(e) = b.poll_event() {
            eb.push(e);
        }
        if !moved {
            break;
        }
    }
    (ea, eb)
}

fn no_loss(_: usize) -> bool {
    false
}

fn children(ev: &[Event]) -> Vec<ChildSa> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ChildUp(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

fn ike_up(ev: &[Event]) -> Vec<(SaId, u64, u64, Option<SaId>)> {
    ev.iter()
        .filter_map(|e| match e {
            Event::IkeUp {
                sa,
                spi_i,
                spi_r,
                rekey_of,
                ..
            } => Some((*sa, *spi_i, *spi_r, *rekey_of)),
            _ => None,
        })
        .collect()
}

fn downs(ev: &[Event]) -> Vec<(u32, ChildReason)> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ChildDown { spi_in, reason, .. } => Some((*spi_in, *reason)),
            _ => None,
        })
        .collect()
}

/// The two halves of a Child SA agree: each one's outbound key is the
/// other's inbound key, SPIs cross.
fn agree(x: &ChildSa, y: &ChildSa) {
    assert_eq!(x.spi_in, y.spi_out);
    assert_eq!(x.spi_out, y.spi_in);
    assert_eq!(x.key_out, y.key_in);
    assert_eq!(x.key_in, y.key_out);
    assert_ne!(x.key_in, x.key_out);
    assert_eq!(x.suite, y.suite);
}

fn establish(a: &mut End, b: &mut End) -> (SaId, SaId, ChildSa, ChildSa) {
    let id = a.initiate(0, "b").expect("initiate");
    let (ea, eb) = run(a, b, 0, &mut no_loss);
    let ua = ike_up(&ea);
    let ub = ike_up(&eb);
    assert_eq!(ua.len(), 1, "initiator up: {ea:?}");
    assert_eq!(ub.len(), 1, "responder up: {eb:?}");
    assert_eq!(ua[0].0, id);
    assert_eq!((ua[0].1, ua[0].2), (ub[0].1, ub[0].2));
    let (ca, cb) = (children(&ea), children(&eb));
    assert_eq!((ca.len(), cb.len()), (1, 1), "{ea:?} {eb:?}");
    agree(&ca[0], &cb[0]);
    (id, ub[0].0, ca[0].clone(), cb[0].clone())
}

// ------------------------------------------------------ known answers

/// RFC 4868 §2.7.1, test cases 1 and 2 (PRF-HMAC-SHA-256, -384).
#[test]
fn prf_known_answers() {
    let key = [0x0bu8; 20];
    let out = Prf::HmacSha256.prf(&key, &[b"Hi There"]);
    assert_eq!(
        out.expose(),
        hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7").as_slice()
    );
    let out = Prf::HmacSha384.prf(&key, &[b"Hi There"]);
    assert_eq!(
        out.expose(),
        hex("afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6").as_slice()
    );
    let out = Prf::HmacSha256.prf(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
    assert_eq!(
        out.expose(),
        hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843").as_slice()
    );
}

/// prf+ is T1 | T2 | ... with Tn = prf(K, Tn-1 | S | n), checked block
/// by block against the PRF itself.
#[test]
fn prf_plus_is_the_chain_of_rfc_7296() {
    for prf in [Prf::HmacSha256, Prf::HmacSha384] {
        let k = b"key";
        let s = b"seed";
        let out = prf.prf_plus(k, &[s], 3 * prf.out_len() - 5);
        let t1 = prf.prf(k, &[s, &[1]]);
        let t2 = prf.prf(k, &[t1.expose(), s, &[2]]);
        let t3 = prf.prf(k, &[t2.expose(), s, &[3]]);
        let mut want = t1.expose().to_vec();
        want.extend_from_slice(t2.expose());
        want.extend_from_slice(t3.expose());
        want.truncate(3 * prf.out_len() - 5);
        assert_eq!(out.expose(), want.as_slice());
    }
}

/// SKEYSEED and the key split of RFC 7296 §2.14, and the key/salt split
/// of RFC 5282 / RFC 4106, computed by hand.
#[test]
fn ike_key_derivation_splits_as_the_rfc_says() {
    let shared = Secret::new(vec![7; 32]);
    let (ni, nr) = ([1u8; 32], [2u8; 32]);
    let keys =
        crypto::IkeKeys::derive(Prf::HmacSha256, 16, &shared, &ni, &nr, 0x1111, 0x2222, None);
    let mut nn = ni.to_vec();
    nn.extend_from_slice(&nr);
    let skeyseed = Prf::HmacSha256.prf(&nn, &[&[7; 32]]);
    let km = Prf::HmacSha256.prf_plus(
        skeyseed.expose(),
        &[&ni, &nr, &0x1111u64.to_be_bytes(), &0x2222u64.to_be_bytes()],
        32 + 20 + 20 + 32 + 32,
    );
    let km = km.expose();
    assert_eq!(keys.sk_d.expose(), &km[..32]);
    assert_eq!(keys.sk_ei.key(), &km[32..48]);
    assert_eq!(keys.sk_ei.salt(), km[48..52]);
    assert_eq!(keys.sk_er.key(), &km[52..68]);
    assert_eq!(keys.sk_er.salt(), km[68..72]);
    assert_eq!(keys.sk_pi.expose(), &km[72..104]);
    assert_eq!(keys.sk_pr.expose(), &km[104..136]);
    let (i2r, r2i) = keys.child_keys(32, None, &ni, &nr);
    let km = Prf::HmacSha256.prf_plus(keys.sk_d.expose(), &[&ni, &nr], 72);
    assert_eq!(i2r.key(), &km.expose()[..32]);
    assert_eq!(i2r.salt(), km.expose()[32..36]);
    assert_eq!(r2i.key(), &km.expose()[36..68]);
    assert_eq!(r2i.salt(), km.expose()[68..72]);
    assert_eq!(format!("{i2r:?}"), "GcmKey(256 bits)");
}

/// Secrets never print their bytes.
#[test]
fn secrets_do_not_print() {
    let s = Secret::new(vec![0xab; 16]);
    assert_eq!(format!("{s:?}"), "Secret(16 bytes)");
    let k = crypto::GcmKey::new(Secret::new(vec![0xab; 20]));
    assert!(!format!("{k:?}").contains("171"));
}

/// ECDH from given private bytes, for every group: both sides agree, and
/// invalid public values are refused.
#[test]
fn ecdh_all_groups_from_seeded_bytes() {
    for g in [Group::X25519, Group::P256, Group::P384] {
        let mut r1 = SeededRng::new(1);
        let mut r2 = SeededRng::new(2);
        let a = KeyPair::generate(g, &mut r1);
        let b = KeyPair::generate(g, &mut r2);
        assert_eq!(a.public().len(), g.public_len());
        let again = KeyPair::generate(g, &mut SeededRng::new(1));
        assert_eq!(a.public(), again.public(), "{g:?} repeats from a seed");
        let s1 = a.agree(b.public()).expect("agree");
        let s2 = b.agree(a.public()).expect("agree");
        assert_eq!(s1, s2);
        assert!(a.agree(&b.public()[1..]).is_err());
        assert!(
            a.agree(&vec![0; g.public_len()]).is_err(),
            "{g:?} zero point"
        );
        if g != Group::X25519 {
            let mut off = b.public().to_vec();
            off[5] ^= 1;
            assert!(a.agree(&off).is_err(), "{g:?} point off the curve");
        }
    }
}

// --------------------------------------------------- whole exchanges

#[test]
fn every_suite_establishes_and_keys_agree() {
    let mut seed = 1;
    for encr in [AesGcm::Aes128, AesGcm::Aes256] {
        for prf in [Prf::HmacSha256, Prf::HmacSha384] {
            for dh in [Group::X25519, Group::P256, Group::P384] {
                for initiator_is_a in [true, false] {
                    seed += 1;
                    let ike = Offer {
                        encr: vec![encr],
                        prf: vec![prf],
                        dh: vec![dh],
                        esn: vec![],
                    };
                    let child = Offer {
                        encr: vec![encr],
                        dh: vec![dh],
                        ..Offer::child_default()
                    };
                    let (mut a, mut b) = pair(ike, child, seed);
                    let (x, y) = if initiator_is_a {
                        (&mut a, &mut b)
                    } else {
                        (&mut b, &mut a)
                    };
                    let peer = if initiator_is_a { "b" } else { "a" };
                    let id = x.initiate(0, peer).expect("initiate");
                    let (ex, ey) = run(x, y, 0, &mut no_loss);
                    let (cx, cy) = (children(&ex), children(&ey));
                    assert_eq!(
                        (cx.len(), cy.len()),
                        (1, 1),
                        "{encr:?} {prf:?} {dh:?}: {ex:?} {ey:?}"
                    );
                    agree(&cx[0], &cy[0]);
                    assert!(cx[0].suite.esn);
                    assert_eq!(cx[0].suite.encr, encr);
                    assert_eq!(cx[0].key_in.key().len(), encr.key_len());
                    let yid = ike_up(&ey)[0].0;
                    // Rekey the Child SA with PFS from the responder side,
                    // then the IKE SA from the initiator side.
                    x.rekey_child(MS, id, cx[0].spi_in, true).ok();
                    let _ = yid;
                    let (ex, ey) = run(x, y, MS, &mut no_loss);
                    let (nx, ny) = (children(&ex), children(&ey));
                    assert_eq!((nx.len(), ny.len()), (1, 1));
                    agree(&nx[0], &ny[0]);
                    assert_eq!(nx[0].suite.dh, Some(dh));
                    assert_eq!(nx[0].rekey_of, Some(cx[0].spi_in));
                    assert_eq!(ny[0].rekey_of, Some(cy[0].spi_in));
                    x.rekey_ike(2 * MS, id).expect("rekey ike");
                    let (ex, ey) = run(x, y, 2 * MS, &mut no_loss);
                    let (ux, uy) = (ike_up(&ex), ike_up(&ey));
                    assert_eq!((ux.len(), uy.len()), (1, 1), "{ex:?} {ey:?}");
                    assert_eq!(ux[0].3, Some(id));
                    assert_eq!((ux[0].1, ux[0].2), (uy[0].1, uy[0].2));
                    assert_eq!(x.sas().len(), 1);
                }
            }
        }
    }
}

#[test]
fn child_rekey_and_deletes_both_ways() {
    let (mut a, mut b) = pair(Offer::ike_default(), Offer::child_default(), 7);
    let (ida, idb, ca, cb) = establish(&mut a, &mut b);
    // The responder rekeys the Child SA (no PFS).
    b.rekey_child(MS, idb, cb.spi_in, false).expect("rekey");
    let (ea, eb) = run(&mut a, &mut b, MS, &mut no_loss);
    let (na, nb) = (children(&ea), children(&eb));
    assert_eq!((na.len(), nb.len()), (1, 1));
    agree(&na[0], &nb[0]);
    assert_eq!(nb[0].rekey_of, Some(cb.spi_in));
    assert_eq!(na[0].rekey_of, Some(ca.spi_in));
    assert_eq!(downs(&ea), vec![(ca.spi_in, ChildReason::PeerDeleted)]);
    assert_eq!(downs(&eb), vec![(cb.spi_in, ChildReason::Deleted)]);
    assert_ne!(na[0].key_in, ca.key_in);
    // The responder rekeys the IKE SA; the Child SA moves over and can
    // still be deleted through the new IKE SA.
    b.rekey_ike(2 * MS, idb).expect("rekey ike");
    let (ea, eb) = run(&mut a, &mut b, 2 * MS, &mut no_loss);
    let (ua, ub) = (ike_up(&ea), ike_up(&eb));
    assert_eq!((ua.len(), ub.len()), (1, 1), "{ea:?} {eb:?}");
    assert_eq!(ua[0].3, Some(ida));
    assert!(
        downs(&ea).is_empty() && downs(&eb).is_empty(),
        "children survive an IKE rekey"
    );
    // The old SA answers a retransmitted DELETE for a while, then goes.
    assert_eq!(
        a.sas().iter().filter(|s| s.state == "established").count(),
        1
    );
    a.on_timeout(2 * MS + 4000 * MS);
    assert!(a.poll_event().is_none(), "no second report of the old SA");
    assert_eq!(a.sas().len(), 1);
    assert_eq!(b.sas().len(), 1);
    assert_eq!(a.sas()[0].children, vec![(na[0].spi_in, na[0].spi_out)]);
    let new_a = ua[0].0;
    a.delete_child(3 * MS, new_a, na[0].spi_in).expect("delete");
    let (ea, eb) = run(&mut a, &mut b, 3 * MS, &mut no_loss);
    assert_eq!(downs(&ea), vec![(na[0].spi_in, ChildReason::Deleted)]);
    assert_eq!(downs(&eb), vec![(nb[0].spi_in, ChildReason::PeerDeleted)]);
    // Liveness, then delete the IKE SA.
    a.check_liveness(4 * MS, new_a).expect("liveness");
    let (ea, _) = run(&mut a, &mut b, 4 * MS, &mut no_loss);
    assert!(ea.is_empty());
    a.delete_ike(5 * MS, new_a).expect("delete");
    let (ea, eb) = run(&mut a, &mut b, 5 * MS, &mut no_loss);
    assert!(
        matches!(
            ea.last(),
            Some(Event::IkeDown {
                reason: Reason::Deleted,
                ..
            })
        ),
        "{ea:?}"
    );
    assert!(
        matches!(
            eb.last(),
            Some(Event::IkeDown {
                reason: Reason::PeerDeleted,
                ..
            })
        ),
        "{eb:?}"
    );
    assert!(a.sas().is_empty());
}

#[test]
fn ipv6_selectors_are_narrowed_by_the_responder() {
    let (mut a, mut b) = pair(Offer::ike_default(), Offer::child_default(), 9);
    // b only carries 10.1.5.0/24 of a's side and none of the IPv6 range.
    b.config_mut().peers[0].remote_ts =
        vec![TrafficSelector::prefix("10.1.5.0".parse().expect("ip"), 24)];
    let (_, _, ca, cb) = establish(&mut a, &mut b);
    assert_eq!(
        ca.ts_local,
        vec![TrafficSelector::prefix("10.1.5.0".parse().expect("ip"), 24)]
    );
    assert_eq!(cb.ts_remote, ca.ts_local);
    assert_eq!(
        ca.ts_remote.len(),
        2,
        "the responder's side stays both families"
    );
}

#[test]
fn esn_refused_is_reported() {
    let child_no_esn = Offer {
        esn: vec![false],
        ..Offer::child_default()
    };
    let (mut a, mut b) = pair(Offer::ike_default(), Offer::child_default(), 11);
    b.config_mut().peers[0].child = child_no_esn;
    let (_, _, ca, cb) = establish(&mut a, &mut b);
    assert!(!ca.suite.esn && !cb.suite.esn);
    assert!(ca.esn_refused, "a offered ESN first");
    assert!(!cb.esn_refused, "b never offered it");
    // The other way round: b (responder) prefers ESN, a offers none.
    let (mut a, mut b) = pair(Offer::ike_default(), Offer::child_default(), 11);
    a.config_mut().peers[0].child.esn = vec![false];
    let (_, _, ca, cb) = establish(&mut a, &mut b);
    assert!(!ca.esn_refused && cb.esn_refused && !cb.suite.esn);
}

#[test]
fn invalid_ke_makes_the_initiator_retry_with_the_responders_group() {
    let (mut a, mut b) = pair(Offer::ike_default(), Offer::child_default(), 12);
    b.config_mut().peers[0].ike.dh = vec![Group::P384];
    let id = a.initiate(0, "b").expect("init");
    let (ea, _) = run(&mut a, &mut b, 0, &mut no_loss);
    assert_eq!(children(&ea).len(), 1, "{ea:?}");
    assert_eq!(b.counters().invalid_ke_sent, 1);
    assert_eq!(a.counters().init_restarts, 1);
    let _ = id;
    match ea.iter().find(|e| matches!(e, Event::IkeUp { .. })) {
        Some(Event::IkeUp { suite, .. }) => assert_eq!(suite.dh, Group::P384),
        _ => unreachable!(),
    }
}

#[test]
fn cookies_under_load_and_half_open_bound() {
    let (mut a, mut b) = pair(Offer::ike_default(), Offer::child_default(), 13);
    {
        let c = b.config_mut();
        c.cookie_threshold = 2;
        c.max_half_open = 4;
    }
    // A flood of IKE_SA_INIT from a's address that never continues.
    for i in 0..10u64 {
        let mut x = Ike::new(a.config().clone(), SeededRng::new(100 + i));
        x.initiate(0, "b").expect("init");
        let t = x.poll_transmit().expect("init");
        let _ = b.on_datagram(0, t.src, t.dst, &t.bytes);
    }
    assert_eq!(
        b.sas().len(),
        2,
        "half-open SAs stop at the cookie threshold"
    );
    assert_eq!(b.counters().cookies_sent, 8);
    assert_eq!(b.counters().dropped(Dropped::CookieRequired), 8);
    while b.poll_transmit().is_some() {}
    // A real initiator returns the cookie and gets through.
    let (_, _, _, _) = establish(&mut a, &mut b);
    assert_eq!(a.counters().init_restarts, 1);
    // Half-open SAs expire.
    b.on_timeout(31_000 * MS);
    assert_eq!(b.counters().half_open_expired, 2);
    assert_eq!(b.sas().len(), 1);
}

#[test]
fn wrong_psk_fails_authentication_both_ways() {
    let (mut a, mut b) = pair(Offer::ike_default(), Offer::child_default(), 14);
    b.config_mut().peers[0].auth = Auth::Psk(Secret::new(b"other".to_vec()));
    a.initiate(0, "b").expect("init");
    let (ea, eb) = run(&mut a, &mut b, 0, &mut no_loss);
    assert!(
        matches!(
            ea.last(),
            Some(Event::IkeDown {
                reason: Reason::AuthFailed,
                ..
            })
        ),
        "{ea:?}"
    );
    assert!(eb.is_empty());
    assert_eq!(b.counters().dropped(Dropped::AuthFailed), 1);
    assert!(a.sas().is_empty() && b.sas().is_empty());
}

#[test]
fn retransmission_with_backoff_then_give_up() {
    let (mut a, mut b) = pair(Offer::ike_default(), Offer::child_default(), 15);
    a.initiate(0, "b").expect("init");
    let first = a.poll_transmit().expect("sent");
    let mut now = 0;
    let mut gaps = vec![];
    let mut sends = 1;
    while let Some(t) = a.next_timeout() {
        gaps.push(t - now);
        now = t;
        a.on_timeout(now);
        if let Some(x) = a.poll_transmit() {
            assert_eq!(
                x.bytes, first.bytes,
                "a retransmission is the same datagram"
            );
            sends += 1;
        }
    }
    assert_eq!(sends, 6);
    assert_eq!(
        gaps,
        vec![
            500 * MS,
            1000 * MS,
            2000 * MS,
            4000 * MS,
            8000 * MS,
            16000 * MS
        ]
    );
    assert!(matches!(
        a.poll_event(),
        Some(Event::IkeDown {
            reason: Reason::Timeout,
            ..
        })
    ));
    assert_eq!(a.counters().retransmits, 5);
    let _ = &mut b;
}

#[test]
fn lost_messages_are_retransmitted_and_responses_resent() {
    // Lose each datagram of the first exchange in turn.
    for lose in 1..=4 {
        let (mut a, mut b) = pair(
            Offer::ike_default(),
            Offer::child_default(),
            20 + lose as u64,
        );
        a.initiate(0, "b").expect("init");
        let mut n = 0;
        let (mut ea, mut eb) = run(&mut a, &mut b, 0, &mut |i| {
            n = i;
            i == lose
        });
        for _ in 0..5 {
            if let Some(now) = a.next_timeout().filter(|&t| t < 10_000 * MS) {
                a.on_timeout(now);
                let (x, y) = run(&mut a, &mut b, now, &mut no_loss);
                ea.extend(x);
                eb.extend(y);
            }
        }
        assert_eq!(children(&ea).len(), 1, "lost #{lose}: {ea:?}");
        assert_eq!(children(&eb).len(), 1, "lost #{lose}: {eb:?}");
        agree(&children(&ea)[0], &children(&eb)[0]);
        if lose % 2 == 0 {
            assert_eq!(b.counters().responses_resent, 1, "lost response #{lose}");
        }
    }
}

#[test]
fn replayed_and_future_requests_are_counted() {
    let (mut a, mut b) = pair(Offer::ike_default(), Offer::child_default(), 30);
    let (ida, _, ca, _) = establish(&mut a, &mut b);
    a.check_liveness(MS, ida).expect("live");
    let req = a.poll_transmit().expect("req");
    b.on_datagram(MS, req.src, req.dst, &req.bytes)
        .expect("first");
    let resp = b.poll_transmit().expect("resp");
    // The same request again: the response is sent again.
    b.on_datagram(MS, req.src, req.dst, &req.bytes)
        .expect("again");
    assert_eq!(b.poll_transmit().expect("resent").bytes, resp.bytes);
    a.on_datagram(MS, resp.src, resp.dst, &resp.bytes)
        .expect("resp");
    // The response again: no request outstanding.
    assert_eq!(
        a.on_datagram(MS, resp.src, resp.dst, &resp.bytes),
        Err(Dropped::UnexpectedResponse)
    );
    // An old request (the IKE_AUTH, mid 1) after a newer one.
    a.delete_child(2 * MS, ida, ca.spi_in).expect("del");
    let del = a.poll_transmit().expect("del");
    b.on_datagram(2 * MS, del.src, del.dst, &del.bytes)
        .expect("del");
    assert_eq!(
        b.on_datagram(2 * MS, req.src, req.dst, &req.bytes),
        Err(Dropped::OldMessageId)
    );
    // A future message id.
    let mut fut = del.bytes.clone();
    fut[23] = fut[23].wrapping_add(5);
    assert_eq!(
        b.on_datagram(2 * MS, del.src, del.dst, &fut),
        Err(Dropped::FutureMessageId)
    );
    // A changed byte in the ciphertext.
    let mut bad = del.bytes.clone();
    bad[23] = bad[23].wrapping_add(1);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        b.on_datagram(2 * MS, del.src, del.dst, &bad),
        Err(Dropped::BadIcv)
    );
    assert_eq!(b.counters().dropped(Dropped::BadIcv), 1);
}

#[test]
fn unsupported_critical_payload_is_answered() {
    let (mut a, mut b) = pair(Offer::ike_default(), Offer::child_default(), 31);
    a.initiate(0, "b").expect("init");
    let t = a.poll_transmit().expect("init");
    // Append a critical payload of unknown type 200 to the chain.
    let mut m = t.bytes.clone();
    let h = Header::parse(&m).expect("header");
    let mut at = wire::HEADER_LEN;
    let mut ty = h.next;
    loop {
        let next = m[at];
        let len = usize::from(u16::from_be_bytes([m[at + 2], m[at + 3]]));
        if next == 0 {
            m[at] = 200;
            break;
        }
        ty = next;
        at += len;
    }
    let _ = ty;
    m.extend_from_slice(&[0, 0x80, 0, 4]);
    let len = m.len() as u32;
    m[24..28].copy_from_slice(&len.to_be_bytes());
    assert_eq!(
        b.on_datagram(0, t.src, t.dst, &m),
        Err(Dropped::UnsupportedCritical)
    );
    let r = b.poll_transmit().expect("answer");
    let h = Header::parse(&r.bytes).expect("header");
    let (list, _) = wire::walk(h.next, &r.bytes[28..], 28).expect("walk");
    let p = wire::Payloads::decode(&list).expect("decode");
    assert_eq!(
        p.notify(wire::notify::UNSUPPORTED_CRITICAL_PAYLOAD)
            .map(|n| n.data.clone()),
        Some(vec![200])
    );
}

#[test]
fn nat_t_moves_to_4500_with_the_marker() {
    let (mut a, mut b) = pair(Offer::ike_default(), Offer::child_default(), 32);
    a.config_mut().peers[0].force_encap = true;
    b.config_mut().peers[0].force_encap = true;
    a.initiate(0, "b").expect("init");
    let (ea, eb) = run(&mut a, &mut b, 0, &mut no_loss);
    let (ca, cb) = (children(&ea), children(&eb));
    assert_eq!((ca.len(), cb.len()), (1, 1), "{ea:?} {eb:?}");
    assert!(ca[0].encap && cb[0].encap);
    assert_eq!(ca[0].local.port(), 4500);
    assert_eq!(cb[0].remote.port(), 4500);
    // ESP on 4500 is not IKE.
    assert_eq!(
        b.on_datagram(0, sa(A, 4500), sa(B, 4500), &[1, 2, 3, 4, 5]),
        Err(Dropped::NotIke)
    );
}

#[test]
fn invalid_dh_public_value_is_counted() {
    let (mut a, mut b) = pair(Offer::ike_default(), Offer::child_default(), 33);
    a.initiate(0, "b").expect("init");
    let t = a.poll_transmit().expect("init");
    let h = Header::parse(&t.bytes).expect("h");
    let (list, _) = wire::walk(h.next, &t.bytes[28..], 28).expect("walk");
    let ke = list.iter().find(|p| p.ty == wire::payload::KE).expect("ke");
    let off = ke.body.as_ptr() as usize - t.bytes.as_ptr() as usize;
    let mut m = t.bytes.clone();
    for x in &mut m[off + 4..off + 4 + 32] {
        *x = 0;
    }
    assert_eq!(
        b.on_datagram(0, t.src, t.dst, &m),
        Err(Dropped::InvalidDhPublic)
    );
    assert!(b.sas().is_empty());
}

// ------------------------------------------------------- hostile input

/// Runs a script of every exchange (IKE_SA_INIT, IKE_AUTH, Child SA
/// rekey with PFS, IKE SA rekey, liveness, DELETE) between two seeded
/// ends, delivering only the first `k` datagrams; returns both ends (at
/// the state the k-th datagram left them in) and every datagram made,
/// with whether it went to `b`. The same seed gives the same datagrams up
/// to the k-th, so the full transcript's messages fit the ends' state.
fn script(seed: u64, k: usize) -> (End, End, Vec<(bool, Transmit)>) {
    let (mut a, mut b) = pair(Offer::ike_default(), Offer::child_default(), seed);
    let mut v = Vec::new();
    let step = |a: &mut End, b: &mut End, v: &mut Vec<(bool, Transmit)>| {
        for _ in 0..20 {
            let mut moved = false;
            while let Some(t) = a.poll_transmit() {
                moved = true;
                if v.len() < k {
                    let _ = b.on_datagram(0, t.src, t.dst, &t.bytes);
                }
                v.push((true, t));
            }
            while let Some(t) = b.poll_transmit() {
                moved = true;
                if v.len() < k {
                    let _ = a.on_datagram(0, t.src, t.dst, &t.bytes);
                }
                v.push((false, t));
            }
            while a.poll_event().is_some() || b.poll_event().is_some() {}
            if !moved {
                break;
            }
        }
    };
    let id = a.initiate(0, "b").expect("init");
    step(&mut a, &mut b, &mut v);
    if let Some(&(spi, _)) = a.sas().first().and_then(|s| s.children.first()) {
        let _ = a.rekey_child(0, id, spi, true);
    }
    step(&mut a, &mut b, &mut v);
    let _ = a.rekey_ike(0, id);
    step(&mut a, &mut b, &mut v);
    let id2 = a.sas().last().map_or(id, |s| s.sa);
    let _ = b.sas().last().map(|s| s.sa).map(|x| b.check_liveness(0, x));
    step(&mut a, &mut b, &mut v);
    let _ = a.delete_ike(0, id2);
    step(&mut a, &mut b, &mut v);
    (a, b, v)
}

#[test]
fn the_script_covers_every_exchange() {
    let (a, b, v) = script(6, usize::MAX);
    let exchanges: std::collections::BTreeSet<u8> = v
        .iter()
        .map(|(_, t)| Header::parse(&t.bytes).expect("h").exchange)
        .collect();
    assert_eq!(
        exchanges.into_iter().collect::<Vec<_>>(),
        vec![34, 35, 36, 37]
    );
    assert!(v.len() >= 14, "{}", v.len());
    assert!(a.sas().is_empty(), "{:?}", a.sas());
    assert!(b.sas().iter().all(|s| s.state == "rekeyed"));
}

/// `msg` (an SK message) with its inner payloads decrypted, changed by
/// `f` (which also gets the first inner payload type), and sealed again
/// with `key`: what a peer holding the keys could send.
fn reseal(
    msg: &[u8],
    key: &crypto::GcmKey,
    f: impl FnOnce(&mut u8, &mut Vec<u8>),
) -> Option<Vec<u8>> {
    let h = Header::parse(msg).ok()?;
    let (_, sk) = wire::walk(h.next, &msg[wire::HEADER_LEN..], wire::HEADER_LEN).ok()?;
    let sk = sk?;
    let mut plain = crypto::open_message(msg, sk, key)?;
    let mut first = sk.inner_first;
    f(&mut first, &mut plain);
    plain.push(0);
    let sk_len = 4 + 8 + plain.len() + 16;
    let mut v = msg[..wire::HEADER_LEN].to_vec();
    v[24..28].copy_from_slice(&((wire::HEADER_LEN + sk_len) as u32).to_be_bytes());
    v.push(first);
    v.push(0);
    v.extend_from_slice(&(sk_len as u16).to_be_bytes());
    let aad = v.clone();
    let iv = [9u8; 8];
    v.extend_from_slice(&iv);
    if !key.seal(&iv, &aad, &mut plain) {
        return None;
    }
    v.extend_from_slice(&plain);
    Some(v)
}

/// The sender's sealing key for message `i` of the script.
fn key_of(seed: u64, i: usize, t: &Transmit, to_b: bool) -> Option<crypto::GcmKey> {
    let h = Header::parse(&t.bytes).ok()?;
    let sender_spi = if h.from_initiator() { h.spi_i } else { h.spi_r };
    let (a, b, _) = script(seed, i + 1);
    if to_b {
        a.sealing_key(sender_spi)
    } else {
        b.sealing_key(sender_spi)
    }
}

#[test]
fn resealed_messages_are_accepted_unchanged() {
    let (_, _, t) = script(6, usize::MAX);
    let mut n = 0;
    for (i, (to_b, m)) in t.iter().enumerate() {
        let Some(key) = key_of(6, i, m, *to_b) else {
            continue;
        };
        let Some(x) = reseal(&m.bytes, &key, |_, _| {}) else {
            continue;
        };
        let (mut a, mut b, _) = script(6, i);
        let r = if *to_b {
            b.on_datagram(0, m.src, m.dst, &x)
        } else {
            a.on_datagram(0, m.src, m.dst, &x)
        };
        assert_eq!(r, Ok(()), "message {i}");
        n += 1;
    }
    assert!(n >= 10, "{n} resealed");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), k in 0usize..20, port in prop::sample::select(vec![500u16, 4500])) {
        let (mut a, mut b, _) = script(5, k);
        let _ = b.on_datagram(0, sa(A, port), sa(B, port), &bytes);
        let _ = a.on_datagram(0, sa(B, port), sa(A, port), &bytes);
        // A header that names a live SA, then garbage.
        for s in a.sas().iter().chain(b.sas().iter()) {
            let mut m = Vec::new();
            m.extend_from_slice(&s.spi_i.to_be_bytes());
            m.extend_from_slice(&s.spi_r.to_be_bytes());
            m.extend_from_slice(&bytes);
            let _ = b.on_datagram(0, sa(A, 500), sa(B, 500), &m);
            let _ = a.on_datagram(0, sa(B, 500), sa(A, 500), &m);
        }
        while a.poll_transmit().is_some() || b.poll_transmit().is_some() {}
        prop_assert!(a.sas().len() <= 2 && b.sas().len() <= 3);
    }

    #[test]
    fn mutated_messages_never_panic(which in 0usize..40, k in 0usize..20, edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..4), cut in proptest::option::of(any::<u16>())) {
        let (_, _, t) = script(6, usize::MAX);
        let (to_b, msg) = &t[which % t.len()];
        let mut m = msg.bytes.clone();
        for (at, x) in edits {
            let i = usize::from(at) % m.len();
            m[i] ^= x;
        }
        if let Some(c) = cut {
            m.truncate(usize::from(c) % (m.len() + 1));
        }
        let (mut a, mut b, _) = script(6, k);
        if *to_b {
            let _ = b.on_datagram(0, msg.src, msg.dst, &m);
        } else {
            let _ = a.on_datagram(0, msg.src, msg.dst, &m);
        }
        // Whatever happened, the ends still finish an exchange or time out.
        let _ = run(&mut a, &mut b, 0, &mut no_loss);
        a.on_timeout(u64::MAX / 2);
        b.on_timeout(u64::MAX / 2);
    }

    /// Authenticated but hostile: a decrypted message changed and sealed
    /// again with the right key, into the end at the state it was meant
    /// for.
    #[test]
    fn mutated_authenticated_messages_never_panic(which in 0usize..40, edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..4), cut in proptest::option::of(any::<u16>()), first in proptest::option::of(any::<u8>())) {
        let (_, _, t) = script(7, usize::MAX);
        let i = which % t.len();
        let (to_b, m) = &t[i];
        let Some(key) = key_of(7, i, m, *to_b) else { return Ok(()) };
        let x = reseal(&m.bytes, &key, |f, p| {
            if let Some(x) = first {
                *f = x;
            }
            for (at, x) in edits {
                if !p.is_empty() {
                    let j = usize::from(at) % p.len();
                    p[j] ^= x;
                }
            }
            if let Some(c) = cut {
                p.truncate(usize::from(c) % (p.len() + 1));
            }
        });
        let Some(x) = x else { return Ok(()) };
        let (mut a, mut b, _) = script(7, i);
        let r = if *to_b { b.on_datagram(0, m.src, m.dst, &x) } else { a.on_datagram(0, m.src, m.dst, &x) };
        prop_assert_ne!(r, Err(Dropped::BadIcv));
        let _ = run(&mut a, &mut b, 0, &mut no_loss);
        a.on_timeout(u64::MAX / 2);
        b.on_timeout(u64::MAX / 2);
        prop_assert!(a.sas().len() <= 3 && b.sas().len() <= 3);
    }

    #[test]
    fn selector_intersection_is_within_both(a in any::<u32>(), al in 0u8..33, b in any::<u32>(), bl in 0u8..33) {
        let x = TrafficSelector::prefix(IpAddr::V4(Ipv4Addr::from(a)), al);
        let y = TrafficSelector::prefix(IpAddr::V4(Ipv4Addr::from(b)), bl);
        if let Some(z) = x.intersect(&y) {
            prop_assert!(z.within(&x) && z.within(&y));
        }
        let body = TrafficSelector::encode_list(&[x, y]);
        prop_assert_eq!(wire::Payloads::decode(&[wire::RawPayload { ty: wire::payload::TSI, critical: false, body: &body }]).expect("tsi").tsi, Some(vec![x, y]));
    }
}

#[test]
fn simultaneous_ike_rekeys_are_refused_and_the_sa_survives() {
    let (mut a, mut b) = pair(Offer::ike_default(), Offer::child_default(), 40);
    let (ida, idb, ca, cb) = establish(&mut a, &mut b);
    a.rekey_ike(MS, ida).expect("rekey");
    b.rekey_ike(MS, idb).expect("rekey");
    let (ea, eb) = run(&mut a, &mut b, MS, &mut no_loss);
    assert!(
        ike_up(&ea).is_empty() && ike_up(&eb).is_empty(),
        "{ea:?} {eb:?}"
    );
    // Both still hold the one IKE SA and its Child SA; a retry goes through.
    assert_eq!(a.sas()[0].children, vec![(ca.spi_in, ca.spi_out)]);
    assert_eq!(b.sas()[0].children, vec![(cb.spi_in, cb.spi_out)]);
    a.rekey_ike(2 * MS, ida).expect("rekey");
    let (ea, eb) = run(&mut a, &mut b, 2 * MS, &mut no_loss);
    assert_eq!((ike_up(&ea).len(), ike_up(&eb).len()), (1, 1));
}

#[test]
fn a_silent_peer_ends_the_ike_sa_and_its_children() {
    let (mut a, mut b) = pair(Offer::ike_default(), Offer::child_default(), 41);
    let (ida, _, ca, _) = establish(&mut a, &mut b);
    a.check_liveness(0, ida).expect("live");
    let mut now = 0;
    while let Some(t) = a.next_timeout() {
        now = t;
        a.on_timeout(now);
        while a.poll_transmit().is_some() {}
    }
    let ev: Vec<Event> = std::iter::from_fn(|| a.poll_event()).collect();
    assert_eq!(downs(&ev), vec![(ca.spi_in, ChildReason::IkeGone)]);
    assert!(matches!(
        ev.last(),
        Some(Event::IkeDown {
            reason: Reason::Timeout,
            ..
        })
    ));
    assert!(now >= 31_000 * MS, "every try made: {now}");
    assert!(a.sas().is_empty());
}

#[test]
fn operations_queue_behind_the_outstanding_request() {
    let (mut a, mut b) = pair(Offer::ike_default(), Offer::child_default(), 42);
    let (ida, _, ca, _) = establish(&mut a, &mut b);
    a.rekey_child(MS, ida, ca.spi_in, false).expect("rekey");
    a.check_liveness(MS, ida).expect("live");
    a.rekey_ike(MS, ida).expect("rekey ike");
    // One request on the wire at a time (window size 1).
    let t = a.poll_transmit().expect("the rekey");
    assert!(a.poll_transmit().is_none());
    b.on_datagram(MS, t.src, t.dst, &t.bytes).expect("rekey");
    let (mut ea, _) = run(&mut a, &mut b, MS, &mut no_loss);
    // Nothing was sent yet for the queued ones: run them out.
    for _ in 0..4 {
        let (x, _) = run(&mut a, &mut b, MS, &mut no_loss);
        ea.extend(x);
    }
    assert_eq!(children(&ea).len(), 1);
    assert_eq!(ike_up(&ea).len(), 1, "{ea:?}");
    // One goes on the wire, sixteen wait.
    for _ in 0..17 {
        a.check_liveness(MS, ike_up(&ea)[0].0).expect("queued");
    }
    assert_eq!(a.check_liveness(MS, ike_up(&ea)[0].0), Err(ApiError::Busy));
    assert_eq!(
        a.rekey_child(MS, ike_up(&ea)[0].0, 1, false),
        Err(ApiError::NoChild)
    );
}

/// Both ends rekey the same Child SA at once (their soft lifetimes are
/// the same): of the two new SAs one survives at both ends, and the old
/// one goes (RFC 7296 §2.8.1).
#[test]
fn simultaneous_child_rekeys_leave_one_sa() {
    for seed in 50..60 {
        let (mut a, mut b) = pair(Offer::ike_default(), Offer::child_default(), seed);
        let (ida, idb, ca, cb) = establish(&mut a, &mut b);
        a.rekey_child(MS, ida, ca.spi_in, seed % 2 == 0)
            .expect("rekey");
        b.rekey_child(MS, idb, cb.spi_in, false).expect("rekey");
        let (mut ea, mut eb) = run(&mut a, &mut b, MS, &mut no_loss);
        for _ in 0..3 {
            let (x, y) = run(&mut a, &mut b, MS, &mut no_loss);
            ea.extend(x);
            eb.extend(y);
        }
        assert_eq!((children(&ea).len(), children(&eb).len()), (2, 2), "{ea:?}");
        let (ka, kb) = (&a.sas()[0].children, &b.sas()[0].children);
        assert_eq!(ka.len(), 1, "seed {seed}: {ka:?} {ea:?}");
        assert_eq!(kb.as_slice(), &[(ka[0].1, ka[0].0)], "seed {seed}");
        assert!(ka[0].0 != ca.spi_in);
        // The survivor's keys agree.
        let sa_ = children(&ea)
            .into_iter()
            .find(|c| c.spi_in == ka[0].0)
            .expect("a's");
        let sb = children(&eb)
            .into_iter()
            .find(|c| c.spi_in == kb[0].0)
            .expect("b's");
        agree(&sa_, &sb);
    }
}
mod certs;
