use super::*;
use crate::notice::{Message, MessageType, UDP_PORT};
use crate::signing::stand_in::{Keys, NodeSigner};
use proptest::prelude::*;

const T0: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;
const KEYS: Keys = Keys::new(0x5eed);

type F = Flooder<NodeSigner, Keys>;

fn flooder(me: NodeId, cfg: FloodConfig) -> F {
    Flooder::new(me, cfg, NodeSigner::new(&KEYS, me), KEYS)
}

/// Node 1 with neighbours 2 and 3 up (at T0 - 1 s), outputs drained.
fn node1(cfg: FloodConfig) -> F {
    let mut f = flooder(1, cfg);
    assert!(f.neighbor_up(T0 - 1000 * MS, 2));
    assert!(f.neighbor_up(T0 - 1000 * MS, 3));
    drain(&mut f);
    f
}

fn link(x: NodeId, y: NodeId) -> Link {
    Link::new(x, y).expect("distinct ends")
}

/// A notice of `origin` about its link to `peer`, correctly signed.
fn notice(origin: NodeId, peer: NodeId, up: bool, seq: u64, time: u64) -> Notice {
    Notice::signed(
        origin,
        link(origin, peer),
        up,
        seq,
        time,
        &NodeSigner::new(&KEYS, origin),
    )
}

fn msg(sender: NodeId, ns: &[Notice]) -> Vec<u8> {
    encode_notices(sender, MessageType::Notices, ns).expect("encode")
}

fn sync_msg(sender: NodeId, ns: &[Notice]) -> Vec<u8> {
    encode_notices(sender, MessageType::Sync, ns).expect("encode")
}

fn drain(f: &mut F) -> (Vec<Transmit>, Vec<Event>) {
    let t = std::iter::from_fn(|| f.poll_transmit()).collect();
    let e = std::iter::from_fn(|| f.poll_event()).collect();
    (t, e)
}

/// (to, type, ids) of each datagram.
fn decoded(ts: &[Transmit]) -> Vec<(NodeId, MessageType, Vec<NoticeId>)> {
    ts.iter()
        .map(|t| {
            let m = Message::parse(&t.payload).expect("own output parses");
            let ids = match m.msg_type() {
                MessageType::Acks => m.acks().map(|a| a.expect("ack")).collect(),
                _ => m.notices().map(|n| n.expect("notice").id()).collect(),
            };
            (t.to, m.msg_type(), ids)
        })
        .collect()
}

fn sent_notices_to(ts: &[Transmit], to: NodeId) -> Vec<NoticeId> {
    decoded(ts)
        .into_iter()
        .filter(|(t, ty, _)| *t == to && *ty != MessageType::Acks)
        .flat_map(|(_, _, ids)| ids)
        .collect()
}

fn acks_to(ts: &[Transmit], to: NodeId) -> Vec<NoticeId> {
    decoded(ts)
        .into_iter()
        .filter(|(t, ty, _)| *t == to && *ty == MessageType::Acks)
        .flat_map(|(_, _, ids)| ids)
        .collect()
}

#[test]
fn port_is_the_documented_local_choice() {
    assert_eq!(UDP_PORT, 7784);
}

#[test]
fn a_new_notice_goes_to_every_neighbour_but_its_sender_and_is_acked() {
    let mut f = node1(FloodConfig::default());
    let n = notice(2, 9, false, 1, T0);
    f.receive(T0 + MS, 2, &msg(2, &[n]));
    let (ts, ev) = drain(&mut f);
    assert_eq!(acks_to(&ts, 2), vec![n.id()]);
    assert_eq!(sent_notices_to(&ts, 2), vec![]);
    assert_eq!(sent_notices_to(&ts, 3), vec![n.id()]);
    assert!(ev.is_empty());
    assert_eq!(f.notice(2, link(2, 9)), Some(&n));
    assert_eq!(f.counters().accepted, 1);
    assert_eq!(f.unacknowledged(3), 1);
}

#[test]
fn duplicates_are_acked_not_reflooded() {
    let mut f = node1(FloodConfig::default());
    let n = notice(2, 9, false, 1, T0);
    f.receive(T0 + MS, 2, &msg(2, &[n]));
    drain(&mut f);
    // The same notice again from 2, and from 3 (which also counts as 3's ack).
    f.receive(T0 + 2 * MS, 2, &msg(2, &[n]));
    f.receive(T0 + 2 * MS, 3, &msg(3, &[n]));
    let (ts, _) = drain(&mut f);
    assert_eq!(acks_to(&ts, 2), vec![n.id()]);
    assert_eq!(acks_to(&ts, 3), vec![n.id()]);
    assert!(sent_notices_to(&ts, 2).is_empty() && sent_notices_to(&ts, 3).is_empty());
    assert_eq!(f.counters().duplicate, 2);
    assert_eq!(f.counters().accepted, 1);
    assert_eq!(f.unacknowledged(3), 0);
}

#[test]
fn stale_notices_are_acked_ignored_and_answered_with_the_newer() {
    let mut f = node1(FloodConfig::default());
    let newer = notice(2, 9, true, 5, T0 + MS);
    let older = notice(2, 9, false, 4, T0);
    f.receive(T0 + 2 * MS, 2, &msg(2, &[newer]));
    drain(&mut f);
    f.receive(T0 + 3 * MS, 3, &msg(3, &[older]));
    let (ts, _) = drain(&mut f);
    assert_eq!(f.counters().stale, 1);
    assert_eq!(f.notice(2, link(2, 9)), Some(&newer));
    assert_eq!(acks_to(&ts, 3), vec![older.id()]);
    let back = decoded(&ts);
    assert!(back.contains(&(3, MessageType::Sync, vec![newer.id()])));
}

#[test]
fn forged_and_malformed_notices_are_refused_without_ack() {
    let mut f = node1(FloodConfig::default());
    // Signed by 3 but claiming origin 2.
    let mut forged = notice(2, 9, false, 1, T0);
    forged.signature = NodeSigner::new(&KEYS, 3).sign(&forged.signed_bytes());
    // Right key, but a field changed after signing.
    let mut tampered = notice(2, 9, false, 1, T0);
    tampered.up = true;
    f.receive(T0 + MS, 2, &msg(2, &[forged, tampered]));
    let (ts, _) = drain(&mut f);
    assert!(ts.is_empty());
    assert_eq!(f.counters().bad_signature, 2);
    assert_eq!(f.notice(2, link(2, 9)), None);

    let mut bad = msg(2, &[notice(2, 9, false, 1, T0)]);
    bad[8 + 2] = 7; // state
    f.receive(T0 + MS, 2, &bad);
    f.receive(T0 + MS, 2, &[1, 2, 3]);
    assert_eq!(f.counters().malformed, 2);
    assert!(drain(&mut f).0.is_empty());
}

#[test]
fn only_up_neighbours_speaking_for_themselves_are_heard() {
    let mut f = node1(FloodConfig::default());
    let n = notice(4, 9, false, 1, T0);
    f.receive(T0, 4, &msg(4, &[n]));
    assert_eq!(f.counters().not_neighbor, 1);
    f.receive(T0, 2, &msg(3, &[n]));
    assert_eq!(f.counters().sender_mismatch, 1);
    f.neighbor_down(T0, 2);
    f.receive(T0, 2, &msg(2, &[n]));
    assert_eq!(f.counters().not_neighbor, 2);
    assert_eq!(f.notices().count(), 0);
    assert!(!f.neighbor_up(T0, 1), "not its own neighbour");
}

#[test]
fn unacknowledged_sends_back_off_then_give_up() {
    let cfg = FloodConfig {
        max_attempts: 6,
        ..FloodConfig::default()
    };
    let mut f = node1(cfg);
    f.neighbor_down(T0, 3);
    let n = f.originate(T0, link(1, 2), false).expect("own link");
    let mut sends = vec![];
    let mut now = T0;
    let (ts, _) = drain(&mut f);
    if !sent_notices_to(&ts, 2).is_empty() {
        sends.push(now);
    }
    while let Some(t) = f.next_timeout() {
        if t >= n.apply_at_ns(cfg.flood_bound_ns) + 1000 * MS {
            break;
        }
        now = t;
        f.poll(now);
        let (ts, _) = drain(&mut f);
        if !sent_notices_to(&ts, 2).is_empty() {
            sends.push(now);
        }
    }
    let gaps: Vec<u64> = sends.windows(2).map(|w| (w[1] - w[0]) / MS).collect();
    assert_eq!(gaps, vec![20, 40, 80, 160, 320]);
    assert_eq!(f.counters().retransmits, 5);
    assert_eq!(f.counters().gave_up, 1);
    assert_eq!(f.unacknowledged(2), 0);
}

#[test]
fn an_ack_stops_retransmission() {
    let mut f = node1(FloodConfig::default());
    let n = f.originate(T0, link(1, 2), false).expect("own link");
    let (ts, _) = drain(&mut f);
    assert_eq!(sent_notices_to(&ts, 2), vec![n.id()]);
    assert_eq!(sent_notices_to(&ts, 3), vec![n.id()]);
    f.receive(T0 + 5 * MS, 2, &encode_acks(2, &[n.id()]).expect("ack"));
    // 3 acks a different sequence number: not this notice.
    let mut other = n.id();
    other.seq -= 1;
    f.receive(T0 + 5 * MS, 3, &encode_acks(3, &[other]).expect("ack"));
    f.poll(T0 + 20 * MS);
    let (ts, _) = drain(&mut f);
    assert_eq!(sent_notices_to(&ts, 2), vec![]);
    assert_eq!(sent_notices_to(&ts, 3), vec![n.id()]);
    f.receive(T0 + 25 * MS, 3, &encode_acks(3, &[n.id()]).expect("ack"));
    assert_eq!(f.unacknowledged(2) + f.unacknowledged(3), 0);
    // What is left to wait for is the apply instant.
    assert_eq!(f.next_timeout(), Some(T0 + 200 * MS));
}

#[test]
fn a_neighbour_going_down_ends_its_retransmissions() {
    let mut f = node1(FloodConfig::default());
    f.originate(T0, link(1, 2), false).expect("own link");
    drain(&mut f);
    f.neighbor_down(T0 + MS, 3);
    f.neighbor_down(T0 + MS, 2);
    f.poll(T0 + 20 * MS);
    assert!(drain(&mut f).0.is_empty());
    assert_eq!(f.unacknowledged(3), 0);
}

#[test]
fn each_neighbour_is_rate_limited() {
    let cfg = FloodConfig {
        rate_per_s: 10,
        rate_burst: 3,
        ..FloodConfig::default()
    };
    let mut f = node1(cfg);
    let ns: Vec<Notice> = (0..5).map(|i| notice(2, 10 + i, false, 1, T0)).collect();
    for n in &ns {
        f.receive(T0, 2, &msg(2, &[*n]));
    }
    assert_eq!(f.counters().accepted, 3);
    assert_eq!(f.counters().rate_limited, 2);
    // The other neighbour has its own bucket.
    f.receive(T0, 3, &msg(3, &[notice(3, 10, false, 1, T0)]));
    assert_eq!(f.counters().accepted, 4);
    // 100 ms later neighbour 2 has earned one record again.
    f.receive(T0 + 100 * MS, 2, &msg(2, &ns[3..5]));
    assert_eq!(f.counters().rate_limited, 3);
    f.receive(T0 + 100 * MS, 2, &msg(2, &ns[3..4]));
    assert_eq!(f.counters().accepted, 5);
}

#[test]
fn a_neighbour_that_comes_up_is_sent_every_notice_held() {
    let mut f = node1(FloodConfig::default());
    let a = notice(2, 9, false, 1, T0);
    let b = notice(3, 8, false, 1, T0);
    f.receive(T0 + MS, 2, &msg(2, &[a]));
    f.receive(T0 + MS, 3, &msg(3, &[b]));
    let own = f.originate(T0 + MS, link(1, 7), false).expect("own link");
    drain(&mut f);
    assert!(f.neighbor_up(T0 + 10 * MS, 4));
    let (ts, _) = drain(&mut f);
    let got = decoded(&ts);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, 4);
    assert_eq!(got[0].1, MessageType::Sync);
    let mut ids = got[0].2.clone();
    ids.sort();
    let mut want = vec![a.id(), b.id(), own.id()];
    want.sort();
    assert_eq!(ids, want);
    // Retransmitted like any send until acked.
    f.poll(T0 + 30 * MS);
    let (ts, _) = drain(&mut f);
    assert_eq!(sent_notices_to(&ts, 4).len(), 3);
    f.receive(T0 + 31 * MS, 4, &encode_acks(4, &want).expect("acks"));
    assert_eq!(f.unacknowledged(4), 0);
}

#[test]
fn a_healed_link_resynchronises_both_sides() {
    // 1 and 2 each learnt a notice while their link was down.
    let mut one = node1(FloodConfig::default());
    let mut two = flooder(2, FloodConfig::default());
    one.neighbor_down(T0, 2);
    let x = one.originate(T0, link(1, 3), false).expect("own");
    let y = two.originate(T0, link(2, 4), false).expect("own");
    drain(&mut one);
    drain(&mut two);
    let now = T0 + 50 * MS;
    one.neighbor_up(now, 2);
    two.neighbor_up(now, 1);
    // Exchange until quiet.
    for _ in 0..4 {
        let (a, _) = drain(&mut one);
        let (b, _) = drain(&mut two);
        for t in a {
            two.receive(now, 1, &t.payload);
        }
        for t in b {
            one.receive(now, 2, &t.payload);
        }
    }
    assert_eq!(one.notice(2, link(2, 4)), Some(&y));
    assert_eq!(two.notice(1, link(1, 3)), Some(&x));
    assert_eq!(one.unacknowledged(2) + two.unacknowledged(1), 0);
    assert_eq!(one.counters().skew_late + two.counters().skew_late, 0);
}

#[test]
fn notices_apply_at_origination_plus_the_bound_in_order() {
    let mut f = node1(FloodConfig::default());
    let own = f.originate(T0, link(1, 2), false).expect("own");
    let early = notice(3, 9, false, 1, T0 - 50 * MS);
    f.receive(T0 + MS, 3, &msg(3, &[early]));
    f.receive(
        T0 + 2 * MS,
        2,
        &encode_acks(2, &[own.id(), early.id()]).expect("ack"),
    );
    f.receive(T0 + 2 * MS, 3, &encode_acks(3, &[own.id()]).expect("ack"));
    drain(&mut f);
    assert_eq!(f.next_timeout(), Some(T0 + 150 * MS));
    f.poll(T0 + 149 * MS);
    assert!(drain(&mut f).1.is_empty());
    // Polled late: both come out, in order of their instants.
    f.poll(T0 + 300 * MS);
    let (_, ev) = drain(&mut f);
    assert_eq!(
        ev,
        vec![
            Event::Apply {
                notice: early,
                at_ns: T0 + 150 * MS
            },
            Event::Apply {
                notice: own,
                at_ns: T0 + 200 * MS
            },
        ]
    );
    // Once only.
    f.poll(T0 + 400 * MS);
    assert!(drain(&mut f).1.is_empty());
}

#[test]
fn a_newer_notice_replaces_one_not_yet_applied() {
    let mut f = node1(FloodConfig::default());
    let down = notice(2, 9, false, 1, T0);
    let up = notice(2, 9, true, 2, T0 + 10 * MS);
    f.receive(T0 + MS, 2, &msg(2, &[down]));
    f.receive(T0 + 11 * MS, 2, &msg(2, &[up]));
    f.poll(T0 + 300 * MS);
    let (_, ev) = drain(&mut f);
    assert_eq!(
        ev,
        vec![Event::Apply {
            notice: up,
            at_ns: T0 + 210 * MS
        }]
    );
}

#[test]
fn clock_skew_is_reported() {
    let mut f = node1(FloodConfig::default());
    // Stamped 300 ms ahead of this node's clock.
    let ahead = notice(2, 9, false, 1, T0 + 300 * MS);
    f.receive(T0, 2, &msg(2, &[ahead]));
    let (_, ev) = drain(&mut f);
    assert_eq!(
        ev,
        vec![Event::ClockSkew {
            from: 2,
            notice: ahead.id(),
            kind: SkewKind::Ahead,
            by_ns: 300 * MS
        }]
    );
    // Still applied at its instant on this clock.
    assert_eq!(f.next_timeout(), Some(T0 + 20 * MS));
    // Flooded, but 500 ms past its apply instant: reported, applied at once.
    let late = notice(3, 8, false, 1, T0 - 700 * MS);
    f.receive(T0, 3, &msg(3, &[late]));
    let (_, ev) = drain(&mut f);
    assert_eq!(
        ev,
        vec![
            Event::ClockSkew {
                from: 3,
                notice: late.id(),
                kind: SkewKind::Late,
                by_ns: 500 * MS
            },
            Event::Apply {
                notice: late,
                at_ns: T0 - 500 * MS
            }
        ]
    );
    // Within the bound either way: nothing to report.
    f.receive(T0, 2, &msg(2, &[notice(2, 7, false, 1, T0 + 150 * MS)]));
    f.receive(T0, 2, &msg(2, &[notice(2, 6, false, 1, T0 - 350 * MS)]));
    // Old on purpose (a sync): not a clock problem.
    f.receive(
        T0,
        3,
        &sync_msg(3, &[notice(3, 7, false, 1, T0 - 60_000 * MS)]),
    );
    let (_, ev) = drain(&mut f);
    assert!(
        ev.iter().all(|e| matches!(e, Event::Apply { .. })),
        "{ev:?}"
    );
    assert_eq!(f.counters().skew_ahead, 1);
    assert_eq!(f.counters().skew_late, 1);
}

#[test]
fn the_table_is_bounded_and_own_notices_take_precedence() {
    let cfg = FloodConfig {
        max_notices: 2,
        ..FloodConfig::default()
    };
    let mut f = node1(cfg);
    let a = notice(2, 9, false, 1, T0);
    let b = notice(2, 8, false, 1, T0 + MS);
    let c = notice(3, 9, false, 1, T0);
    f.receive(T0 + MS, 2, &msg(2, &[a, b]));
    f.receive(T0 + MS, 3, &msg(3, &[c]));
    assert_eq!(f.counters().table_full, 1);
    assert_eq!(f.notice(3, link(3, 9)), None);
    // Refused for want of room: not acked, so the sender tries again later.
    let (ts, _) = drain(&mut f);
    assert!(acks_to(&ts, 3).is_empty());
    // A newer notice for a held slot still fits.
    let a2 = notice(2, 9, true, 2, T0 + 2 * MS);
    f.receive(T0 + 2 * MS, 2, &msg(2, &[a2]));
    assert_eq!(f.notice(2, link(2, 9)), Some(&a2));
    // The node's own notice displaces the one of another origin applied first.
    f.originate(T0 + 3 * MS, link(1, 2), false)
        .expect("room made");
    assert_eq!(f.notices().count(), 2);
    assert_eq!(f.notice(2, link(2, 8)), None);
    assert!(f.notice(1, link(1, 2)).is_some());
    assert_eq!(
        f.originate(T0, link(4, 5), true),
        Err(OriginateError::NotOwnLink)
    );
}

#[test]
fn retransmit_queues_are_bounded() {
    let cfg = FloodConfig {
        max_pending_per_neighbor: 2,
        ..FloodConfig::default()
    };
    let mut f = node1(cfg);
    let ns: Vec<Notice> = (0..3).map(|i| notice(2, 10 + i, false, 1, T0)).collect();
    f.receive(T0, 2, &msg(2, &ns));
    assert_eq!(f.unacknowledged(3), 2);
    assert_eq!(f.counters().queue_full, 1);
}

#[test]
fn old_notices_are_forgotten_and_not_taken_again() {
    let cfg = FloodConfig {
        max_age_ns: 10_000 * MS,
        ..FloodConfig::default()
    };
    let mut f = node1(cfg);
    let n = notice(2, 9, true, 1, T0);
    f.receive(T0, 2, &msg(2, &[n]));
    f.receive(T0 + MS, 3, &encode_acks(3, &[n.id()]).expect("ack"));
    f.poll(T0 + 200 * MS);
    assert_eq!(f.next_timeout(), Some(T0 + 10_200 * MS));
    f.poll(T0 + 10_200 * MS);
    assert_eq!(f.notices().count(), 0);
    assert_eq!(f.next_timeout(), None);
    // A replay of it is out of the window: acked, not taken.
    drain(&mut f);
    f.receive(T0 + 10_300 * MS, 2, &msg(2, &[n]));
    let (ts, ev) = drain(&mut f);
    assert_eq!(f.counters().out_of_window, 1);
    assert_eq!(acks_to(&ts, 2), vec![n.id()]);
    assert!(ev.is_empty() && f.notices().count() == 0);
}

#[test]
fn own_down_notices_are_refreshed_before_they_age_out() {
    let cfg = FloodConfig {
        max_age_ns: 10_000 * MS,
        refresh_ns: 4_000 * MS,
        ..FloodConfig::default()
    };
    let mut f = node1(cfg);
    let n = f.originate(T0, link(1, 2), false).expect("own");
    let up = f.originate(T0, link(1, 3), true).expect("own");
    assert!(up.seq > n.seq);
    f.receive(
        T0 + MS,
        3,
        &encode_acks(3, &[n.id(), up.id()]).expect("ack"),
    );
    f.receive(
        T0 + MS,
        2,
        &encode_acks(2, &[n.id(), up.id()]).expect("ack"),
    );
    f.poll(T0 + 200 * MS);
    drain(&mut f);
    assert_eq!(f.next_timeout(), Some(T0 + 4_000 * MS));
    f.poll(T0 + 4_000 * MS);
    let again = f.notice(1, link(1, 2)).copied().expect("held");
    assert!(again.seq > up.seq && !again.up);
    assert_eq!(again.origin_time_ns, T0 + 4_000 * MS);
    let (ts, _) = drain(&mut f);
    assert_eq!(sent_notices_to(&ts, 3), vec![again.id()]);
}

#[test]
fn a_restarted_node_learns_its_own_earlier_sequence() {
    let mut f = node1(FloodConfig::default());
    // Before a restart it said seq = T0 + 5 s (a clock since stepped back).
    let before = notice(1, 2, false, T0 + 5_000 * MS, T0);
    f.receive(T0, 2, &msg(2, &[before]));
    let now = f.originate(T0 + MS, link(1, 2), true).expect("own");
    assert!(now.seq > before.seq);
    assert_eq!(f.notice(1, link(1, 2)), Some(&now));
}

#[test]
fn outputs_are_bounded_when_not_taken() {
    let cfg = FloodConfig {
        max_queued: 2,
        ..FloodConfig::default()
    };
    let mut f = node1(cfg);
    for i in 0..3 {
        f.receive(T0, 2, &msg(2, &[notice(2, 10 + i, false, 1, T0)]));
    }
    assert_eq!(std::iter::from_fn(|| f.poll_transmit()).count(), 2);
    assert!(f.counters().output_full >= 4);
}

proptest! {
    #[test]
    fn arbitrary_datagrams_never_panic_the_flooder(
        datagrams in proptest::collection::vec(
            (0u32..4, proptest::collection::vec(any::<u8>(), 0..400)), 0..20),
        valid_prefix in any::<bool>(),
    ) {
        let mut f = node1(FloodConfig::default());
        let mut now = T0;
        for (from, mut bytes) in datagrams {
            if valid_prefix && bytes.len() >= 8 {
                // A valid envelope from the neighbour in front of the noise.
                let t = 1 + bytes[1] % 3;
                bytes[..8].copy_from_slice(&[1, t, 0, 1, 0, 0, 0, from as u8]);
                let len = Message::parse(&bytes).map_or(0, |_| bytes.len());
                prop_assert!(len == 0 || len == bytes.len());
            }
            f.receive(now, from, &bytes);
            now += MS;
            f.poll(now);
            while f.poll_transmit().is_some() {}
            while f.poll_event().is_some() {}
        }
        prop_assert!(f.notices().count() <= f.config().max_notices);
    }
}
