//! What an IKE_SA_INIT flood costs a responder, and what a whole
//! handshake costs, per Diffie-Hellman group; against the baseline of the
//! same run: answering an IKE_SA_INIT with a COOKIE (RFC 7296 §2.6, an
//! HMAC and no state), which is what the endpoint does once
//! `cookie_threshold` half-open SAs exist.
//!
//! `cargo bench -p meshplane-control --bench ike [-- N]` answers N
//! (default 400) distinct IKE_SA_INIT requests per case and runs N/4 whole
//! handshakes (IKE_SA_INIT, IKE_AUTH with PSK and one Child SA, both ends)
//! per group, on the calling thread.

use meshplane_control::ike::crypto::Secret;
use meshplane_control::ike::{
    Auth, Config, Group, Identity, Ike, Lifetime, Offer, PeerConfig, SeededRng, TrafficSelector,
    Transmit,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn addr(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("ip"), 500)
}

fn peer(me: &str, them: &str, dh: Group) -> PeerConfig {
    let (l, r) = if me == "10.0.0.1" {
        ("10.1.0.0", "10.2.0.0")
    } else {
        ("10.2.0.0", "10.1.0.0")
    };
    PeerConfig {
        name: them.into(),
        local: addr(me),
        remote: addr(them),
        local_id: Identity::fqdn(me),
        remote_id: Identity::fqdn(them),
        auth: Auth::Psk(Secret::new(b"bench".to_vec())),
        ike: Offer {
            dh: vec![dh],
            ..Offer::ike_default()
        },
        child: Offer::child_default(),
        local_ts: vec![TrafficSelector::prefix(l.parse().expect("ip"), 16)],
        remote_ts: vec![TrafficSelector::prefix(r.parse().expect("ip"), 16)],
        lifetime: Lifetime::default(),
        force_encap: false,
    }
}

fn end(me: &str, them: &str, dh: Group, seed: u64, n: usize, cookies: bool) -> Ike<SeededRng> {
    let cfg = Config {
        peers: vec![peer(me, them, dh)],
        cookie_threshold: if cookies { 0 } else { usize::MAX },
        max_half_open: n + 1,
        max_sas: n + 1,
        ..Config::default()
    };
    Ike::new(cfg, SeededRng::new(seed))
}

fn requests(n: usize, dh: Group) -> Vec<Transmit> {
    (0..n)
        .map(|i| {
            let mut x = end("10.0.0.1", "10.0.0.2", dh, 1000 + i as u64, 1, false);
            x.initiate(0, "10.0.0.2").expect("initiate");
            x.poll_transmit().expect("request")
        })
        .collect()
}

fn answer_all(reqs: &[Transmit], dh: Group, cookies: bool) -> Duration {
    let mut r = end("10.0.0.2", "10.0.0.1", dh, 7, reqs.len(), cookies);
    let t = Instant::now();
    for q in reqs {
        let _ = r.on_datagram(0, q.src, q.dst, &q.bytes);
        let a = r.poll_transmit().expect("answer");
        std::hint::black_box(a);
    }
    let d = t.elapsed();
    assert_eq!(r.sas().len(), if cookies { 0 } else { reqs.len() });
    d
}

fn handshakes(n: usize, dh: Group) -> Duration {
    let t = Instant::now();
    for i in 0..n {
        let mut a = end("10.0.0.1", "10.0.0.2", dh, 2 * i as u64, 4, false);
        let mut b = end("10.0.0.2", "10.0.0.1", dh, 2 * i as u64 + 1, 4, false);
        a.initiate(0, "10.0.0.2").expect("initiate");
        let mut children = 0;
        for _ in 0..8 {
            while let Some(x) = a.poll_transmit() {
                let _ = b.on_datagram(0, x.src, x.dst, &x.bytes);
            }
            while let Some(x) = b.poll_transmit() {
                let _ = a.on_datagram(0, x.src, x.dst, &x.bytes);
            }
            while let Some(e) = a.poll_event() {
                children += usize::from(matches!(e, meshplane_control::ike::Event::ChildUp(_)));
            }
        }
        assert_eq!(children, 1);
    }
    t.elapsed()
}

fn us(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(400);
    let groups = [Group::X25519, Group::P256, Group::P384];
    let base_reqs = requests(n, Group::X25519);
    let cookie = us(answer_all(&base_reqs, Group::X25519, true), n);
    println!("IKE_SA_INIT answered, {n} distinct requests per case");
    println!("{:<28} {:>10} {:>12}", "case", "us/request", "x cookie");
    println!(
        "{:<28} {:>10.1} {:>12.1}",
        "COOKIE (stateless)", cookie, 1.0
    );
    for g in groups {
        let reqs = requests(n, g);
        let full = us(answer_all(&reqs, g, false), n);
        println!(
            "{:<28} {:>10.1} {:>12.1}",
            format!("full answer, group {}", g.id()),
            full,
            full / cookie
        );
    }
    let m = (n / 4).max(1);
    println!("\nwhole handshakes (both ends, IKE_SA_INIT + IKE_AUTH + Child SA), {m} per group");
    println!("{:<28} {:>10} {:>12}", "group", "us/handshake", "x cookie");
    for g in groups {
        let h = us(handshakes(m, g), m);
        println!("{:<28} {:>10.1} {:>12.1}", g.id(), h, h / cookie);
    }
}
