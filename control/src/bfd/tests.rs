use super::*;
use proptest::prelude::*;

const MS: u64 = 1_000_000;

/// Two sessions wired back to back, stepped 1 ms at a time; `cut`
/// decides per direction whether packets are lost.
struct Pair {
    a: Session,
    b: Session,
    now: u64,
    a_to_b: bool,
    b_to_a: bool,
    changes_a: Vec<(u64, StateChange)>,
    changes_b: Vec<(u64, StateChange)>,
}

impl Pair {
    fn new(ca: SessionConfig, cb: SessionConfig) -> Pair {
        Pair {
            a: Session::new(ca, 0x1111, 1, 0),
            b: Session::new(cb, 0x2222, 2, 500 * MS),
            now: 0,
            a_to_b: true,
            b_to_a: true,
            changes_a: Vec::new(),
            changes_b: Vec::new(),
        }
    }

    fn step(&mut self) {
        self.now += MS;
        let now = self.now;
        let pa = self.a.poll(now);
        let pb = self.b.poll(now);
        if let Some(c) = pa.change {
            self.changes_a.push((now, c));
        }
        if let Some(c) = pb.change {
            self.changes_b.push((now, c));
        }
        if let (Some(p), true) = (pa.send, self.a_to_b) {
            if let Ok(Some(c)) = self.b.receive(now, p.bytes()) {
                self.changes_b.push((now, c));
            }
        }
        if let (Some(p), true) = (pb.send, self.b_to_a) {
            if let Ok(Some(c)) = self.a.receive(now, p.bytes()) {
                self.changes_a.push((now, c));
            }
        }
    }

    fn run_ms(&mut self, ms: u64) {
        for _ in 0..ms {
            self.step();
        }
    }

    fn run_until(&mut self, limit_ms: u64, mut f: impl FnMut(&Pair) -> bool) -> bool {
        for _ in 0..limit_ms {
            if f(self) {
                return true;
            }
            self.step();
        }
        f(self)
    }
}

fn up_pair(ca: SessionConfig, cb: SessionConfig) -> Pair {
    let mut p = Pair::new(ca, cb);
    assert!(
        p.run_until(5_000, |p| p.a.state() == State::Up
            && p.b.state() == State::Up),
        "no three-way handshake: {:?} {:?}",
        p.a.info(),
        p.b.info()
    );
    // Let the Poll Sequences that the fast timers start finish.
    p.run_ms(100);
    p
}

#[test]
fn a_pair_comes_up_through_init_and_runs_at_the_fast_rate() {
    let mut p = up_pair(SessionConfig::default(), SessionConfig::default());
    // A heard B's Down first: Down -> Init -> Up; B: Down -> Up.
    let a: Vec<_> = p.changes_a.iter().map(|(_, c)| c.to).collect();
    let b: Vec<_> = p.changes_b.iter().map(|(_, c)| c.to).collect();
    assert!(
        a == [State::Init, State::Up] || a == [State::Up],
        "A went {a:?}"
    );
    assert!(
        b == [State::Init, State::Up] || b == [State::Up],
        "B went {b:?}"
    );
    let i = p.a.info();
    assert_eq!(i.tx_interval_us, 10_000);
    assert_eq!(i.detect_time_us, 30_000);
    assert_eq!(i.remote_discr, 0x2222);
    // Packets over one second: 100 at 10 ms less jitter (75-100 %).
    let before = p.a.counters().sent;
    p.run_ms(1000);
    let sent = p.a.counters().sent - before;
    assert!((100..=134).contains(&sent), "{sent} packets a second");
    assert_eq!(p.a.counters().refused_total(), 0);
    assert_eq!(p.b.counters().refused_total(), 0);
}

#[test]
fn silence_takes_the_session_down_within_the_detection_time() {
    let mut p = up_pair(SessionConfig::default(), SessionConfig::default());
    p.b_to_a = false;
    let cut = p.now;
    assert!(p.run_until(100, |p| p.a.state() == State::Down));
    let (at, c) = *p.changes_a.last().expect("a change");
    assert_eq!(c.from, State::Up);
    assert_eq!(c.diag, diag::DETECT_EXPIRED);
    let took = at - cut;
    // The last packet came at most one interval before the cut.
    assert!(took <= 30 * MS + MS, "down after {} ms", took / MS);
    assert!(took >= 20 * MS, "down too early: {} ms", took / MS);
    // B hears A's Down and follows (neighbor signaled down).
    p.run_ms(20);
    assert_eq!(p.b.state(), State::Down);
    assert_eq!(p.changes_b.last().expect("b").1.diag, diag::NEIGHBOR_DOWN);
    assert_eq!(p.a.info().remote_discr, 0);
    // Restored: both come back up.
    p.b_to_a = true;
    assert!(p.run_until(5_000, |p| p.a.state() == State::Up
        && p.b.state() == State::Up));
    assert_eq!(p.a.counters().up, 2);
}

#[test]
fn admin_down_is_signalled_and_the_remote_goes_down() {
    let mut p = up_pair(SessionConfig::default(), SessionConfig::default());
    let c = p.b.set_admin_down(p.now, true).expect("change");
    assert_eq!(c.to, State::AdminDown);
    p.run_ms(5);
    assert_eq!(p.a.state(), State::Down);
    assert_eq!(p.changes_a.last().expect("a").1.diag, diag::NEIGHBOR_DOWN);
    // AdminDown discards what it receives and stays so.
    p.run_ms(3_000);
    assert_eq!(p.b.state(), State::AdminDown);
    assert_eq!(p.a.state(), State::Down);
    assert!(p.b.counters().refused[Refused::AdminDown.index()] > 0);
    p.b.set_admin_down(p.now, false);
    assert!(p.run_until(5_000, |p| p.a.state() == State::Up
        && p.b.state() == State::Up));
}

#[test]
fn slower_remote_sets_the_pace_and_the_detection_time() {
    let slow = SessionConfig {
        desired_min_tx_us: 50_000,
        required_min_rx_us: 40_000,
        detect_mult: 5,
        auth: None,
    };
    let p = up_pair(SessionConfig::default(), slow);
    let a = p.a.info();
    // A sends no faster than B can take; detects on B's 50 ms x 5.
    assert_eq!(a.tx_interval_us, 40_000);
    assert_eq!(a.detect_time_us, 250_000);
    let b = p.b.info();
    assert_eq!(b.tx_interval_us, 50_000);
    // B: A's multiplier (3) x max(B's 40 ms, A's 10 ms).
    assert_eq!(b.detect_time_us, 120_000);
}

#[test]
fn a_poll_is_answered_with_a_final_that_carries_no_poll() {
    let mut s = Session::new(SessionConfig::default(), 7, 3, 0);
    let mut remote = ControlPacket {
        diag: 0,
        state: State::Down,
        poll: true,
        final_: false,
        cpi: false,
        demand: false,
        detect_mult: 3,
        my_discr: 9,
        your_discr: 0,
        desired_min_tx_us: 1_000_000,
        required_min_rx_us: 10_000,
        required_min_echo_rx_us: 0,
        auth: None,
        auth_present: false,
        length: HEADER_LEN,
    };
    let mut buf = [0u8; HEADER_LEN];
    remote.write_header(&mut buf, 0);
    let _ = s.poll(0);
    assert_eq!(
        s.receive(MS, &buf).expect("accepted").map(|c| c.to),
        Some(State::Init)
    );
    let out = s.poll(MS).send.expect("an answer at once");
    let got = ControlPacket::parse(out.bytes()).expect("parse");
    assert!(got.final_ && !got.poll);
    assert_eq!(got.state, State::Init);
    assert_eq!(got.your_discr, 9);
    // Up: the fast rate is announced with Poll until the remote's Final.
    remote.state = State::Init;
    remote.poll = false;
    remote.your_discr = 7;
    remote.write_header(&mut buf, 0);
    assert_eq!(
        s.receive(2 * MS, &buf).expect("ok").map(|c| c.to),
        Some(State::Up)
    );
    let got = ControlPacket::parse(s.poll(2 * MS).send.expect("sent").bytes()).expect("p");
    assert!(got.poll && !got.final_);
    assert_eq!(got.state, State::Up);
    assert_eq!(got.desired_min_tx_us, 10_000);
    remote.final_ = true;
    remote.write_header(&mut buf, 0);
    s.receive(3 * MS, &buf).expect("ok");
    let next = s.next_timeout_ns();
    let got = ControlPacket::parse(s.poll(next).send.expect("sent").bytes()).expect("p");
    assert!(!got.poll, "the sequence ended");
}

#[test]
fn the_wire_layout_is_rfc_5880s() {
    let mut s = Session::new(SessionConfig::default(), 0x01020304, 5, 0);
    let p = s.poll(0).send.expect("first packet at once");
    let b = p.bytes();
    assert_eq!(b.len(), 24);
    assert_eq!(b[0], 0x20, "version 1, diag 0");
    assert_eq!(b[1] >> 6, 1, "state Down");
    assert_eq!(b[2], 3, "detect mult");
    assert_eq!(b[3], 24, "length");
    assert_eq!(&b[4..8], &[1, 2, 3, 4]);
    assert_eq!(&b[8..12], &[0, 0, 0, 0]);
    assert_eq!(u32::from_be_bytes([b[12], b[13], b[14], b[15]]), SLOW_TX_US);
    assert_eq!(u32::from_be_bytes([b[16], b[17], b[18], b[19]]), 10_000);
    assert_eq!(&b[20..24], &[0, 0, 0, 0]);
    // Down: slow rate, one second less jitter.
    let next = s.next_timeout_ns();
    assert!((750 * MS..=1000 * MS).contains(&next), "{next}");
}

fn keyed(key: &[u8], id: u8) -> SessionConfig {
    SessionConfig {
        auth: AuthKey::new(id, key),
        ..SessionConfig::default()
    }
}

#[test]
fn meticulous_keyed_sha1_brings_a_pair_up_and_refuses_forgeries_and_replays() {
    let mut p = up_pair(keyed(b"constellation", 1), keyed(b"constellation", 1));
    assert_eq!(p.a.counters().refused_total(), 0);
    // A packet of B's, captured and replayed to A.
    let captured = loop {
        p.now += MS;
        if let Some(x) = p.b.poll(p.now).send {
            break x;
        }
    };
    assert!(p.a.receive(p.now, captured.bytes()).is_ok());
    assert_eq!(
        p.a.receive(p.now, captured.bytes()),
        Err(Refused::AuthSequence)
    );
    // A bit flipped anywhere in the packet fails the digest (or an
    // earlier check), never passes.
    for bit in 0..captured.bytes().len() * 8 {
        let mut f = captured.bytes().to_vec();
        f[bit / 8] ^= 1 << (bit % 8);
        assert!(p.a.receive(p.now, &f).is_err(), "bit {bit} accepted");
    }
    // Another key: every packet refused, the session goes down.
    let mut q = Pair::new(keyed(b"constellation", 1), keyed(b"other", 1));
    q.run_ms(3_000);
    assert_ne!(q.a.state(), State::Up);
    assert!(q.a.counters().refused[Refused::AuthDigest.index()] > 0);
    // Another key id; and auth on one side only.
    let mut q = Pair::new(keyed(b"constellation", 1), keyed(b"constellation", 2));
    q.run_ms(3_000);
    assert!(q.a.counters().refused[Refused::AuthType.index()] > 0);
    let mut q = Pair::new(keyed(b"constellation", 1), SessionConfig::default());
    q.run_ms(3_000);
    assert!(q.a.counters().refused[Refused::AuthMismatch.index()] > 0);
    assert!(q.b.counters().refused[Refused::AuthMismatch.index()] > 0);
    assert_ne!(q.b.state(), State::Up);
}

/// A Down packet from discriminator 9 that knows no Your Discriminator,
/// asks for no interval at all (zeros) and detects at 3 x.
fn down_from_9() -> [u8; 24] {
    let mut b = [0u8; 24];
    b[0] = 0x20;
    b[1] = 0x40;
    b[2] = 3;
    b[3] = 24;
    b[7] = 9;
    b
}

#[test]
fn header_checks_refuse_by_reason() {
    let mut s = Session::new(SessionConfig::default(), 7, 3, 0);
    let good = down_from_9();
    assert!(ControlPacket::parse(&good).is_ok());
    let case = |f: &dyn Fn(&mut [u8; 24])| {
        let mut b = good;
        f(&mut b);
        b
    };
    let cases: [([u8; 24], Refused); 7] = [
        (case(&|b| b[0] = 0x40), Refused::BadVersion(2)),
        (case(&|b| b[3] = 23), Refused::BadLength),
        (case(&|b| b[3] = 25), Refused::Truncated),
        (case(&|b| b[2] = 0), Refused::ZeroDetectMult),
        (case(&|b| b[1] |= 1), Refused::Multipoint),
        (case(&|b| b[7] = 0), Refused::ZeroMyDiscr),
        (case(&|b| b[11] = 8), Refused::WrongDiscr),
    ];
    for (b, want) in cases {
        assert_eq!(s.receive(0, &b), Err(want));
    }
    assert_eq!(s.receive(0, &good[..23]), Err(Refused::Truncated));
    assert_eq!(
        s.receive(0, &case(&|b| b[1] |= 4)),
        Err(Refused::BadLength),
        "A bit with 24 bytes"
    );
    // Up: a zero Your Discriminator is refused.
    let mut p = up_pair(SessionConfig::default(), SessionConfig::default());
    let mut b = good;
    b[1] = 0xc0;
    assert_eq!(p.a.receive(p.now, &b), Err(Refused::ZeroYourDiscr));
    let total: u64 = s.counters().refused_total();
    assert_eq!(total, 9);
}

#[test]
fn a_remote_that_lowers_its_required_rx_is_sent_to_at_the_new_rate_at_once() {
    // As FRR does: one second both ways while not Up, 10 ms once Up.
    let mut s = Session::new(SessionConfig::default(), 7, 3, 0);
    let mut b = [0u8; 24];
    let mut remote = |state: u8, rx_us: u32, your: u32, poll: bool| {
        b[0] = 0x20;
        b[1] = state << 6 | u8::from(poll) << 5;
        b[2] = 3;
        b[3] = 24;
        b[4..8].copy_from_slice(&9u32.to_be_bytes());
        b[8..12].copy_from_slice(&your.to_be_bytes());
        b[12..16].copy_from_slice(&rx_us.to_be_bytes());
        b[16..20].copy_from_slice(&rx_us.to_be_bytes());
        b
    };
    let _ = s.poll(0);
    s.receive(MS, &remote(1, 1_000_000, 0, false))
        .expect("Down");
    assert_eq!(s.state(), State::Init);
    let _ = s.poll(MS);
    // Paced by the remote's one second now.
    assert!(s.next_timeout_ns() >= 750 * MS);
    s.receive(2 * MS, &remote(3, 10_000, 7, true))
        .expect("Up with Poll");
    assert_eq!(s.state(), State::Up);
    let _ = s.poll(2 * MS); // the state change and the Final
    let next = s.next_timeout_ns();
    assert!(next <= 12 * MS, "next packet at {} ms", next / MS);
}

#[test]
fn a_remote_that_asks_for_nothing_gets_nothing_periodic() {
    let mut s = Session::new(SessionConfig::default(), 7, 3, 0);
    let _ = s.poll(0);
    // Required Min RX 0: "send me nothing" (§6.8.7).
    let b = down_from_9();
    s.receive(MS, &b).expect("ok");
    let _ = s.poll(MS); // the Init announcement is still sent
    for t in 2..3_000 {
        if t % 5 == 0 {
            s.receive(t * MS, &b).expect("ok");
        }
        assert!(s.poll(t * MS).send.is_none(), "sent at {t} ms");
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80), state in 0u8..4) {
        let _ = ControlPacket::parse(&bytes);
        let mut s = Session::new(keyed(b"k", 1), 7, 3, 0);
        if state == 0 { s.set_admin_down(0, true); }
        let _ = s.receive(1, &bytes);
        let _ = s.poll(2);
        let mut s = Session::new(SessionConfig::default(), 7, 3, 0);
        let _ = s.receive(1, &bytes);
        let _ = s.poll(u64::MAX);
        let _ = s.next_timeout_ns();
    }

    #[test]
    fn jitter_stays_within_75_to_100_percent(seed in any::<u64>(), mult in 1u8..6) {
        let cfg = SessionConfig { detect_mult: mult, ..SessionConfig::default() };
        let mut s = Session::new(cfg, 7, seed, 0);
        let mut now = 0;
        let _ = s.poll(now);
        for _ in 0..20 {
            let next = s.next_timeout_ns();
            let gap = next - now;
            let hi = if mult == 1 { 900 } else { 1000 };
            prop_assert!((750 * MS..=hi * MS).contains(&gap), "{gap}");
            now = next;
            prop_assert!(s.poll(now).send.is_some());
        }
    }
}
