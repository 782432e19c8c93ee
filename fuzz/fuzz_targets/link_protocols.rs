//! The node's link protocols over what a neighbour (or an attacker on the
//! link) can send: BFD control packets into a session, in every state it
//! can be in, and flooding datagrams into a flooder whose neighbours are
//! up, with notices signed by real Ed25519 keys mutated by the input.
//! Nothing may panic, a session's state stays one of the four, a forged
//! notice is never applied, and the flooder's state stays bounded.
//!
//! The first input byte chooses what the rest feeds: bit 0 BFD or
//! flooding; bits 1-2 the session's state before (BFD), or whether the
//! input is xored over a valid signed notice (flooding).
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshplane::control::keys::{NodeKey, TrustStore};
use meshplane_control::bfd::{Session, SessionConfig, State};
use meshplane_control::flood::{Event, FloodConfig, Flooder};
use meshplane_control::notice::{encode_notices, Link, MessageType, Notice};
use std::sync::OnceLock;

const T0: u64 = 1_700_000_000_000_000_000;

struct Keys {
    origin: NodeKey,
    trust: TrustStore,
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let (origin, _) = NodeKey::generate().expect("key");
        let (me, _) = NodeKey::generate().expect("key");
        let mut trust = TrustStore::default();
        trust.insert(2, origin.public());
        trust.insert(1, me.public());
        Keys { origin, trust }
    })
}

fn bfd(mode: u8, data: &[u8]) {
    let mut s = Session::new(SessionConfig::default(), 7, 11, T0);
    // A valid Down packet from the remote first, to reach Init or Up.
    let mut hello = [0u8; 24];
    hello[0] = 0x20;
    hello[2] = 3;
    hello[3] = 24;
    hello[7] = 9;
    hello[19] = 10;
    let steps = match mode & 3 {
        0 => 0,
        1 => 1,
        _ => 2,
    };
    let mut now = T0;
    for i in 0..steps {
        hello[1] = if i == 0 { 1 << 6 } else { 2 << 6 };
        if i > 0 {
            hello[11] = 7;
        }
        now += 1_000_000;
        let _ = s.receive(now, &hello);
        let _ = s.poll(now);
    }
    if mode & 3 == 3 {
        s.set_admin_down(now, true);
    }
    // The input, cut into packets by its own length bytes.
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (pkt, more) = tail.split_at(n);
        now += u64::from(len) * 100_000;
        let _ = s.receive(now, pkt);
        let p = s.poll(now);
        if let Some(out) = p.send {
            assert!(out.bytes().len() >= 24);
        }
        assert!(matches!(
            s.state(),
            State::AdminDown | State::Down | State::Init | State::Up
        ));
        rest = more;
    }
    let _ = s.next_timeout_ns();
}

fn flood(mode: u8, data: &[u8]) {
    let k = keys();
    let mut f = Flooder::new(1, FloodConfig::default(), &k.origin, &k.trust);
    f.neighbor_up(T0, 2);
    f.neighbor_up(T0, 3);
    let bytes = if mode & 2 != 0 {
        let link = Link::new(2, 5).expect("link");
        let n = Notice::signed(2, link, false, 42, T0, &k.origin);
        let mut v = encode_notices(2, MessageType::Notices, &[n]).expect("encode");
        for (b, x) in v.iter_mut().zip(data) {
            *b ^= x;
        }
        v
    } else {
        data.to_vec()
    };
    let from = if mode & 4 != 0 { 3 } else { 2 };
    f.receive(T0 + 1_000_000, from, &bytes);
    f.poll(T0 + 1_000_000_000);
    while f.poll_transmit().is_some() {}
    while let Some(e) = f.poll_event() {
        if let Event::Apply { notice, .. } = e {
            // Only what its origin signed is applied.
            assert!(notice.verify(&k.trust), "a forged notice was applied");
        }
    }
    assert!(f.notices().count() <= f.config().max_notices);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        bfd(mode >> 1, rest);
    } else {
        flood(mode >> 1, rest);
    }
});
