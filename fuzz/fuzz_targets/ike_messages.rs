//! The IKEv2 endpoint (`meshplane_control::ike`) over what a peer or an
//! attacker can send: two seeded endpoints run a script of every exchange
//! (IKE_SA_INIT, IKE_AUTH, Child SA rekey with PFS, IKE SA rekey,
//! liveness, DELETE) with only the first k datagrams delivered, then one
//! end receives the input, raw or xored over one of the script's
//! messages, on port 500 or 4500. Nothing may panic, every refusal is
//! counted, and the ends' SAs stay bounded; both ends then finish or time
//! out.
//!
//! Input: byte 0 chooses k (the state); byte 1 bit 0 the receiving end,
//! bit 1 the port, bit 2 raw or xored, bits 3-7 with byte 2 which
//! message; the rest is the datagram (or the xor mask).
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshplane_control::ike::crypto::Secret;
use meshplane_control::ike::{
    Auth, Config, Identity, Ike, Lifetime, Offer, PeerConfig, SeededRng, TrafficSelector, Transmit,
};
use std::net::SocketAddr;

type End = Ike<SeededRng>;

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("ip"), port)
}

fn peer(name: &str, me: &str, them: &str, lts: &str, rts: &str) -> PeerConfig {
    PeerConfig {
        name: name.into(),
        local: addr(me, 500),
        remote: addr(them, 500),
        local_id: Identity::fqdn(me),
        remote_id: Identity::fqdn(them),
        auth: Auth::Psk(Secret::new(b"fuzz".to_vec())),
        ike: Offer::ike_default(),
        child: Offer {
            dh: vec![meshplane_control::ike::Group::X25519],
            ..Offer::child_default()
        },
        local_ts: vec![TrafficSelector::prefix(lts.parse().expect("ip"), 16)],
        remote_ts: vec![TrafficSelector::prefix(rts.parse().expect("ip"), 16)],
        lifetime: Lifetime::default(),
        force_encap: false,
    }
}

fn step(a: &mut End, b: &mut End, v: &mut Vec<(bool, Transmit)>, k: usize) {
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
}

fn script(k: usize) -> (End, End, Vec<(bool, Transmit)>) {
    let ca = Config {
        peers: vec![peer("b", "10.0.0.1", "10.0.0.2", "10.1.0.0", "10.2.0.0")],
        ..Config::default()
    };
    let cb = Config {
        peers: vec![peer("a", "10.0.0.2", "10.0.0.1", "10.2.0.0", "10.1.0.0")],
        ..Config::default()
    };
    let mut a = Ike::new(ca, SeededRng::new(1));
    let mut b = Ike::new(cb, SeededRng::new(2));
    let mut v = Vec::new();
    let id = a.initiate(0, "b").expect("initiate");
    step(&mut a, &mut b, &mut v, k);
    if let Some(&(spi, _)) = a.sas().first().and_then(|s| s.children.first()) {
        let _ = a.rekey_child(0, id, spi, true);
    }
    step(&mut a, &mut b, &mut v, k);
    let _ = a.rekey_ike(0, id);
    step(&mut a, &mut b, &mut v, k);
    if let Some(x) = b.sas().last().map(|s| s.sa) {
        let _ = b.check_liveness(0, x);
    }
    step(&mut a, &mut b, &mut v, k);
    if let Some(x) = a.sas().last().map(|s| s.sa) {
        let _ = a.delete_ike(0, x);
    }
    step(&mut a, &mut b, &mut v, k);
    (a, b, v)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let k = usize::from(data[0] % 20);
    let to_b = data[1] & 1 != 0;
    let port = if data[1] & 2 != 0 { 4500 } else { 500 };
    let xored = data[1] & 4 != 0;
    let which = usize::from(data[1] >> 3) << 8 | usize::from(data[2]);
    let rest = &data[3..];
    let (mut a, mut b, t) = script(k);
    let (bytes, src, dst) = if xored && !t.is_empty() {
        let (_, m) = &t[which % t.len()];
        let mut x = m.bytes.clone();
        for (i, y) in rest.iter().enumerate() {
            if let Some(b) = x.get_mut(i) {
                *b ^= y;
            }
        }
        (x, m.src, m.dst)
    } else {
        let (s, d) = if to_b {
            ("10.0.0.1", "10.0.0.2")
        } else {
            ("10.0.0.2", "10.0.0.1")
        };
        (rest.to_vec(), addr(s, port), addr(d, port))
    };
    let (before_a, before_b) = (a.counters().dropped_total(), b.counters().dropped_total());
    let r = if to_b {
        b.on_datagram(0, src, dst, &bytes)
    } else {
        a.on_datagram(0, src, dst, &bytes)
    };
    // A refusal is counted, once.
    if r.is_err() {
        let after = if to_b {
            b.counters().dropped_total() - before_b
        } else {
            a.counters().dropped_total() - before_a
        };
        assert_eq!(after, 1);
    }
    let mut v = Vec::new();
    step(&mut a, &mut b, &mut v, usize::MAX);
    a.on_timeout(u64::MAX / 2);
    b.on_timeout(u64::MAX / 2);
    assert!(a.sas().len() <= 3 && b.sas().len() <= 3);
});
