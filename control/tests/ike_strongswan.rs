//! IKEv2 interop with strongSwan: charon (with kernel-libipsec, its
//! userspace ESP, since this kernel's XFRM has no AES-GCM) runs in a
//! network namespace at the far end of a veth pair; the test drives
//! `meshplane_control::ike::Ike` over UDP sockets on ports 500 and 4500 in
//! its own namespace, as initiator and as responder, and checks with
//! `swanctl --list-sas` that charon holds the SAs with the SPIs this side
//! computed. The keys are checked end to end: an ICMP echo request sealed
//! with the Child SA's outbound key (ESP in UDP, RFC 3948) goes through
//! charon's TUN device to the namespace's kernel, whose echo reply comes
//! back sealed by charon and must open with the inbound key.
//!
//! It lives in control/ because it tests control's endpoint and needs
//! nothing of the data plane (ESP is sealed here with aws-lc-rs); control's
//! library opens no socket, its tests may. The namespace helper is the
//! data plane tests' one. `scripts/setup` installs strongSwan; without it
//! the test fails and says so.

#[path = "../../dataplane/tests/common/charon.rs"]
mod charon;
#[path = "../../dataplane/tests/common/mod.rs"]
mod common;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use charon::Charon;
use common::{ip, Lab};
use meshplane_control::ike::cert::issue;
use meshplane_control::ike::{
    AesGcm, Auth, ChildReason, ChildSa, Config, Credentials, Dropped, Event, Group, Identity, Ike,
    Lifetime, Offer, PeerConfig, Prf, Reason, SaId, SigAlg, SystemRng, TrafficSelector,
};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

const OUR_IP: &str = "10.66.0.1";
const CHARON_IP: &str = "10.66.0.2";
const OUR_NET: &str = "10.77.1.0";
const CHARON_NET: &str = "10.77.2.0";
const OUR_NET6: &str = "fd00:77:1::";
const CHARON_NET6: &str = "fd00:77:2::";
const OUR_HOST: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);
const CHARON_HOST: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 1);
const PSK: &str = "meshplane interop psk";

/// The connections this test loads into charon.
trait Load {
    fn load(&self, ike: &str, esp: &str);
    fn load_certs(&self, ca: &str, cert: &str, key: &str, ike: &str, esp: &str);
}

impl Load for Charon {
    fn load(&self, ike: &str, esp: &str) {
        self.load_conf(&format!(
            r#"connections {{
  mesh {{
    version = 2
    local_addrs = {CHARON_IP}
    remote_addrs = {OUR_IP}
    proposals = {ike}
    encap = yes
    rekey_time = 0
    reauth_time = 0
    dpd_delay = 0
    local {{
      auth = psk
      id = charon.test
    }}
    remote {{
      auth = psk
      id = meshplane.test
    }}
    children {{
      net {{
        local_ts = {CHARON_NET}/24, {CHARON_NET6}/48
        remote_ts = {OUR_NET}/24, {OUR_NET6}/48
        esp_proposals = {esp}
        mode = tunnel
        rekey_time = 0
        start_action = none
      }}
    }}
  }}
}}
secrets {{
  ike-mesh {{
    id-1 = charon.test
    id-2 = meshplane.test
    secret = "{PSK}"
  }}
}}
"#
        ));
    }

    /// Certificate authentication (`auth = pubkey`): charon's certificate
    /// and key and the CA go into swanctl's x509, private and x509ca
    /// directories; the connection "mesh" replaces the PSK one.
    fn load_certs(&self, ca: &str, cert: &str, key: &str, ike: &str, esp: &str) {
        let sw = self.dir.join("swanctl");
        for d in ["x509", "x509ca", "private"] {
            let _ = std::fs::remove_dir_all(sw.join(d));
            std::fs::create_dir_all(sw.join(d)).expect("swanctl dir");
        }
        std::fs::write(sw.join("x509ca/ca.pem"), ca).expect("ca");
        std::fs::write(sw.join("x509/charon.pem"), cert).expect("cert");
        let kp = sw.join("private/charon.key");
        std::fs::write(&kp, key).expect("key");
        std::fs::set_permissions(&kp, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        self.load_conf(&format!(
            r#"connections {{
  mesh {{
    version = 2
    local_addrs = {CHARON_IP}
    remote_addrs = {OUR_IP}
    proposals = {ike}
    encap = yes
    rekey_time = 0
    reauth_time = 0
    dpd_delay = 0
    send_certreq = yes
    send_cert = always
    local {{
      auth = pubkey
      certs = charon.pem
      id = charon.test
    }}
    remote {{
      auth = pubkey
      cacerts = ca.pem
      id = meshplane.test
    }}
    children {{
      net {{
        local_ts = {CHARON_NET}/24, {CHARON_NET6}/48
        remote_ts = {OUR_NET}/24, {OUR_NET6}/48
        esp_proposals = {esp}
        mode = tunnel
        rekey_time = 0
        start_action = none
      }}
    }}
  }}
}}
"#
        ));
    }
}

/// Our end: the endpoint and its two sockets.
struct Node {
    ike: Ike<SystemRng>,
    s500: UdpSocket,
    s4500: UdpSocket,
    t0: Instant,
    events: Vec<Event>,
    esp: Vec<Vec<u8>>,
    seq: HashMap<u32, u32>,
}

fn now_ns(t0: Instant) -> u64 {
    t0.elapsed().as_nanos() as u64
}

impl Node {
    fn new(ike: Offer, child: Offer) -> Node {
        let s500 = UdpSocket::bind((OUR_IP, 500)).expect("bind 500");
        let s4500 = UdpSocket::bind((OUR_IP, 4500)).expect("bind 4500");
        s500.set_nonblocking(true).expect("nonblocking");
        s4500.set_nonblocking(true).expect("nonblocking");
        let peer = PeerConfig {
            name: "charon".into(),
            local: sa(OUR_IP, 500),
            remote: sa(CHARON_IP, 500),
            local_id: Identity::fqdn("meshplane.test"),
            remote_id: Identity::fqdn("charon.test"),
            auth: Auth::Psk(meshplane_control::ike::crypto::Secret::new(
                PSK.as_bytes().to_vec(),
            )),
            ike,
            child,
            local_ts: vec![
                TrafficSelector::prefix(OUR_NET.parse().expect("ip"), 24),
                TrafficSelector::prefix(OUR_NET6.parse().expect("ip"), 48),
            ],
            remote_ts: vec![
                TrafficSelector::prefix(CHARON_NET.parse().expect("ip"), 24),
                TrafficSelector::prefix(CHARON_NET6.parse().expect("ip"), 48),
            ],
            lifetime: Lifetime::default(),
            force_encap: true,
        };
        let cfg = Config {
            peers: vec![peer],
            retransmit_initial_ns: 250_000_000,
            ..Config::default()
        };
        Node {
            ike: Ike::new(cfg, SystemRng),
            s500,
            s4500,
            t0: Instant::now(),
            events: vec![],
            esp: vec![],
            seq: HashMap::new(),
        }
    }

    /// Authenticates with `auth` from now on, checking certificates at
    /// the system's wall clock.
    fn set_auth(&mut self, auth: Auth) {
        self.ike.config_mut().peers[0].auth = auth;
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let now = self.now();
        self.ike.set_wall_clock(now, unix);
    }

    fn set_offers(&mut self, ike: Offer, child: Offer) {
        let p = &mut self.ike.config_mut().peers[0];
        p.ike = ike;
        p.child = child;
    }

    fn now(&self) -> u64 {
        now_ns(self.t0)
    }

    /// One round: send, receive, timers. True if anything happened.
    fn step(&mut self) -> bool {
        let mut busy = false;
        while let Some(t) = self.ike.poll_transmit() {
            busy = true;
            let s = if t.src.port() == 4500 {
                &self.s4500
            } else {
                &self.s500
            };
            s.send_to(&t.bytes, t.dst).expect("send");
        }
        let mut buf = [0u8; 4096];
        for port in [500u16, 4500] {
            loop {
                let s = if port == 4500 {
                    &self.s4500
                } else {
                    &self.s500
                };
                let Ok((n, from)) = s.recv_from(&mut buf) else {
                    break;
                };
                busy = true;
                let b = &buf[..n];
                if port == 4500 && n > 4 && b[..4] != [0; 4] {
                    self.esp.push(b.to_vec());
                    continue;
                }
                let now = self.now();
                let _ = self.ike.on_datagram(now, from, sa(OUR_IP, port), b);
            }
        }
        let now = self.now();
        if self.ike.next_timeout().is_some_and(|t| t <= now) {
            self.ike.on_timeout(now);
        }
        while let Some(e) = self.ike.poll_event() {
            busy = true;
            self.events.push(e);
        }
        busy
    }

    /// Runs until an event satisfies `pred` (looking at events from
    /// index `from` on); returns it.
    fn wait(
        &mut self,
        ch: &Charon,
        what: &str,
        from: usize,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> Event {
        let t = Instant::now();
        loop {
            if let Some(e) = self.events[from..].iter().find(|e| pred(e)) {
                return e.clone();
            }
            if !self.step() {
                std::thread::sleep(Duration::from_millis(2));
            }
            if t.elapsed() > Duration::from_secs(10) {
                panic!(
                    "no {what} within 10 s; events: {:#?}\ncounters: {:?}\ncharon:\n{}",
                    &self.events[from..],
                    self.ike.counters(),
                    ch.log()
                );
            }
        }
    }

    /// Serves the exchange while a swanctl command runs; its stdout.
    fn serve(&mut self, ch: &Charon, mut c: Child, what: &str) -> String {
        let t = Instant::now();
        loop {
            if let Some(st) = c.try_wait().expect("wait") {
                let out = c.wait_with_output().expect("output");
                assert!(
                    st.success(),
                    "swanctl {what}: {}{}\ncounters: {:?}\ncharon:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    self.ike.counters(),
                    ch.log()
                );
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            if !self.step() {
                std::thread::sleep(Duration::from_millis(2));
            }
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "swanctl {what} hangs:\n{}",
                ch.log()
            );
        }
    }

    /// Keeps serving for `d` (to let the peer finish an exchange).
    fn settle(&mut self, d: Duration) {
        let t = Instant::now();
        while t.elapsed() < d {
            if !self.step() {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }

    /// A ping through the Child SA: an echo request sealed with `c`'s
    /// outbound key must come back as an echo reply that opens with its
    /// inbound key.
    fn ping(&mut self, ch: &Charon, c: &ChildSa, id: u16) {
        let seq = self.seq.entry(c.spi_out).or_insert(0);
        *seq += 1;
        let inner = icmp_echo(OUR_HOST, CHARON_HOST, id, *seq as u16);
        let pkt = esp_seal(c, *seq, &inner);
        self.esp.clear();
        self.s4500.send_to(&pkt, c.remote).expect("send esp");
        let t = Instant::now();
        loop {
            self.step();
            for p in std::mem::take(&mut self.esp) {
                if let Some(ip) = esp_open(c, &p) {
                    // IPv4, ICMP echo reply from the far host to ours.
                    if ip.len() >= 28
                        && ip[9] == 1
                        && ip[12..16] == CHARON_HOST.octets()
                        && ip[16..20] == OUR_HOST.octets()
                        && ip[20] == 0
                        && u16::from_be_bytes([ip[24], ip[25]]) == id
                    {
                        return;
                    }
                }
            }
            if t.elapsed() > Duration::from_secs(5) {
                panic!(
                    "no echo reply through Child SA in {:08x} out {:08x}\ncharon:\n{}",
                    c.spi_in,
                    c.spi_out,
                    ch.log()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("ip"), port)
}

fn csum(b: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in b.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn icmp_echo(src: Ipv4Addr, dst: Ipv4Addr, id: u16, seq: u16) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(b"meshplane ike interop ping 0123");
    let c = csum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let len = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 1, 0, 0];
    ip[2..4].copy_from_slice(&len.to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&icmp);
    ip
}

fn aead(k: &meshplane_control::ike::GcmKey) -> LessSafeKey {
    let alg = if k.key().len() == 16 {
        &AES_128_GCM
    } else {
        &AES_256_GCM
    };
    LessSafeKey::new(UnboundKey::new(alg, k.key()).expect("key"))
}

fn nonce(k: &meshplane_control::ike::GcmKey, iv: &[u8]) -> Nonce {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&k.salt());
    n[4..].copy_from_slice(iv);
    Nonce::assume_unique_for_key(n)
}

/// RFC 4303 tunnel-mode ESP with AES-GCM (RFC 4106), 32-bit sequence
/// numbers (charon's libipsec has no ESN).
fn esp_seal(c: &ChildSa, seq: u32, inner: &[u8]) -> Vec<u8> {
    assert!(!c.suite.esn, "libipsec does not do ESN");
    let mut pt = inner.to_vec();
    let pad = (4 - (inner.len() + 2) % 4) % 4;
    pt.extend((1..=pad).map(|i| i as u8));
    pt.push(pad as u8);
    pt.push(4); // next header: IPv4
    let mut hdr = c.spi_out.to_be_bytes().to_vec();
    hdr.extend_from_slice(&seq.to_be_bytes());
    let iv = u64::from(seq).to_be_bytes();
    aead(&c.key_out)
        .seal_in_place_append_tag(nonce(&c.key_out, &iv), Aad::from(&hdr), &mut pt)
        .expect("seal");
    let mut out = hdr;
    out.extend_from_slice(&iv);
    out.extend_from_slice(&pt);
    out
}

fn esp_open(c: &ChildSa, p: &[u8]) -> Option<Vec<u8>> {
    if p.len() < 8 + 8 + 16 + 2 || p[..4] != c.spi_in.to_be_bytes() {
        return None;
    }
    let mut ct = p[16..].to_vec();
    let n = aead(&c.key_in)
        .open_in_place(nonce(&c.key_in, &p[8..16]), Aad::from(&p[..8]), &mut ct)
        .ok()?
        .len();
    ct.truncate(n);
    let next = *ct.last()?;
    let pad = usize::from(ct[ct.len() - 2]);
    if next != 4 || pad + 2 > ct.len() {
        return None;
    }
    ct.truncate(ct.len() - 2 - pad);
    Some(ct)
}

fn child_up(e: &Event) -> Option<&ChildSa> {
    match e {
        Event::ChildUp(c) => Some(c),
        _ => None,
    }
}

/// The IKE SA handle and SPIs of an IkeUp.
fn ike_up(e: &Event) -> (SaId, u64, u64) {
    match e {
        Event::IkeUp {
            sa, spi_i, spi_r, ..
        } => (*sa, *spi_i, *spi_r),
        _ => unreachable!(),
    }
}

/// `swanctl --list-sas` shows the IKE SA established with these SPIs and
/// the Child SA installed with these ESP SPIs (its inbound is our
/// outbound).
fn check_listed(ch: &Charon, spi_i: u64, spi_r: u64, c: &ChildSa, algs: &str) {
    let l = ch.swanctl(&["--list-sas"]);
    let (si, sr) = (format!("{spi_i:016x}_i"), format!("{spi_r:016x}_r"));
    assert!(
        l.lines()
            .any(|x| x.contains("ESTABLISHED") && x.contains(&si) && x.contains(&sr)),
        "IKE SA {spi_i:016x}_i {spi_r:016x}_r not established in charon:\n{l}"
    );
    assert!(l.contains(algs), "charon's algorithms are not {algs}:\n{l}");
    assert!(
        l.contains("INSTALLED, TUNNEL-in-UDP"),
        "no installed Child SA:\n{l}"
    );
    // Both families of selectors, as charon sees them.
    for ts in [
        format!("{CHARON_NET}/24"),
        format!("{CHARON_NET6}/48"),
        format!("{OUR_NET}/24"),
        format!("{OUR_NET6}/48"),
    ] {
        assert!(l.contains(&ts), "charon's Child SA lacks {ts}:\n{l}");
    }
    assert_eq!(c.ts_local.len(), 2, "{:?}", c.ts_local);
    assert_eq!(c.ts_remote.len(), 2, "{:?}", c.ts_remote);
    let has = |dir: &str, spi: u32| {
        l.lines()
            .any(|x| x.trim_start().starts_with(dir) && x.contains(&format!("{spi:08x}")))
    };
    assert!(
        has("in ", c.spi_out) && has("out ", c.spi_in),
        "charon's Child SA is not in {:08x} / out {:08x}:\n{l}",
        c.spi_out,
        c.spi_in
    );
}

/// Both roles with certificates of `alg` under a CA of `alg`: the IKE SA
/// comes up (charon's log names the RFC 7427 scheme `scheme` both ways),
/// the Child SA carries a ping, and charon, given a certificate from
/// another CA, is refused.
fn certificates(ch: &Charon, n: &mut Node, alg: SigAlg, scheme: &str) {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let (from, to) = (unix - 3600, unix + 86_400);
    let ca = issue::ca("meshplane interop CA", alg, from, to).expect("ca");
    let ours = ca.issue("meshplane.test", alg, from, to).expect("ours");
    let theirs = ca.issue("charon.test", alg, from, to).expect("theirs");
    let creds = Credentials::from_pem(
        ours.cert_pem.as_bytes(),
        ours.key_pem.as_bytes(),
        ca.cert_pem().as_bytes(),
    )
    .expect("credentials");
    n.set_auth(Auth::Cert(Arc::new(creds)));
    ch.load_certs(
        &ca.cert_pem(),
        &theirs.cert_pem,
        &theirs.key_pem,
        "aes128gcm16-prfsha256-x25519",
        "aes128gcm16",
    );
    let algs = "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519";
    let log_from = ch.log().len();

    // meshplane initiates.
    let from = n.events.len();
    let id = n.ike.initiate(n.now(), "charon").expect("initiate");
    let c = child_up(&n.wait(ch, "Child SA (certificates)", from, |e| {
        child_up(e).is_some()
    }))
    .cloned()
    .expect("child");
    let (_, spi_i, spi_r) = ike_up(&n.wait(ch, "IKE SA (certificates)", from, |e| {
        matches!(e, Event::IkeUp { .. })
    }));
    check_listed(ch, spi_i, spi_r, &c, algs);
    n.ping(ch, &c, 500);
    let log = ch.log()[log_from..].to_string();
    for who in ["meshplane.test", "charon.test"] {
        let line = log.lines().find(|l| {
            l.contains(&format!("authentication of '{who}'"))
                && l.contains(scheme)
                && l.contains("successful")
        });
        let line = line.unwrap_or_else(|| {
            panic!("charon does not log {who}'s authentication with {scheme}:\n{log}")
        });
        eprintln!("charon: {}", line.trim());
    }
    let from = n.events.len();
    n.ike.delete_ike(n.now(), id).expect("delete ike");
    n.wait(ch, "IKE SA deleted", from, |e| {
        matches!(e, Event::IkeDown { .. })
    });

    // charon initiates.
    let from = n.events.len();
    let r = ch.swanctl_bg(&[
        "--initiate",
        "--ike",
        "mesh",
        "--child",
        "net",
        "--timeout",
        "10",
    ]);
    n.serve(ch, r, "--initiate (certificates)");
    let e = n.wait(ch, "IKE SA from charon (certificates)", from, |e| {
        matches!(e, Event::IkeUp { .. })
    });
    assert!(matches!(
        e,
        Event::IkeUp {
            initiator: false,
            ..
        }
    ));
    let (id, spi_i, spi_r) = ike_up(&e);
    let c = child_up(
        &n.wait(ch, "Child SA from charon (certificates)", from, |e| {
            child_up(e).is_some()
        }),
    )
    .cloned()
    .expect("child");
    check_listed(ch, spi_i, spi_r, &c, algs);
    n.ping(ch, &c, 501);
    let from = n.events.len();
    n.ike.delete_ike(n.now(), id).expect("delete ike");
    n.wait(ch, "IKE SA deleted", from, |e| {
        matches!(e, Event::IkeDown { .. })
    });

    // charon with a certificate from another CA (same name): refused.
    let other = issue::ca("another CA", alg, unix - 3600, to).expect("other ca");
    let fake = other
        .issue("charon.test", alg, unix - 3600, to)
        .expect("fake");
    // charon still trusts our CA; only its own certificate is another's.
    ch.load_certs(
        &ca.cert_pem(),
        &fake.cert_pem,
        &fake.key_pem,
        "aes128gcm16-prfsha256-x25519",
        "aes128gcm16",
    );
    let bad = n.ike.counters().dropped(Dropped::BadCertificate);
    let from = n.events.len();
    n.ike.initiate(n.now(), "charon").expect("initiate");
    n.wait(ch, "IKE SA refused", from, |e| {
        matches!(
            e,
            Event::IkeDown {
                reason: Reason::AuthFailed,
                ..
            }
        )
    });
    assert_eq!(n.ike.counters().dropped(Dropped::BadCertificate), bad + 1);
    n.settle(Duration::from_millis(50));
    let l = ch.swanctl(&["--list-sas"]);
    assert!(!l.contains("ESTABLISHED"), "charon still has an SA:\n{l}");
}

fn offer_ike(encr: AesGcm, prf: Prf, dh: Group) -> Offer {
    Offer {
        encr: vec![encr],
        prf: vec![prf],
        dh: vec![dh],
        esn: vec![],
    }
}

fn offer_child(encr: AesGcm) -> Offer {
    Offer {
        encr: vec![encr],
        prf: vec![],
        dh: vec![Group::X25519],
        esn: vec![true, false],
    }
}

#[test]
fn strongswan_interop() {
    let started = Instant::now();
    let lab = Lab::new("ike", &[("02:00:00:00:1c:01", "02:00:00:00:1c:02", 1500)])
        .expect("network namespaces are needed (run as root)");
    let l = &lab.links[0];
    assert!(ip(&[
        "addr",
        "add",
        &format!("{OUR_IP}/24"),
        "dev",
        &l.inner
    ]));
    assert!(ip(&[
        "-n",
        &l.ns,
        "addr",
        "add",
        &format!("{CHARON_IP}/24"),
        "dev",
        &l.outer
    ]));
    assert!(ip(&[
        "-n",
        &l.ns,
        "addr",
        "add",
        &format!("{CHARON_HOST}/32"),
        "dev",
        "lo"
    ]));
    for k in [
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
        "net.ipv6.conf.lo.disable_ipv6=0",
    ] {
        let _ = Command::new("ip")
            .args(["netns", "exec", &l.ns, "sysctl", "-qw", k])
            .status();
    }
    // An address in each of charon's selectors: it routes the peer's
    // selectors into its TUN device from them.
    assert!(ip(&[
        "-n",
        &l.ns,
        "addr",
        "add",
        &format!("{CHARON_NET6}1/128"),
        "dev",
        "lo"
    ]));
    let dir = std::env::temp_dir().join(format!("mp-ike-strongswan-{}", std::process::id()));
    let ch = Charon::start(&l.ns, &dir);
    ch.load(
        "aes128gcm16-prfsha256-x25519, aes256gcm16-prfsha384-ecp384, aes128gcm16-prfsha256-ecp256",
        "aes128gcm16-x25519, aes128gcm16, aes256gcm16",
    );
    let mut n = Node::new(
        offer_ike(AesGcm::Aes128, Prf::HmacSha256, Group::X25519),
        offer_child(AesGcm::Aes128),
    );

    // 1. meshplane initiates, with each IKE proposal in turn.
    let variants = [
        (
            AesGcm::Aes128,
            Prf::HmacSha256,
            Group::X25519,
            "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519",
        ),
        (
            AesGcm::Aes256,
            Prf::HmacSha384,
            Group::P384,
            "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384",
        ),
        (
            AesGcm::Aes128,
            Prf::HmacSha256,
            Group::P256,
            "AES_GCM_16-128/PRF_HMAC_SHA2_256/ECP_256",
        ),
    ];
    for (k, &(encr, prf, dh, algs)) in variants.iter().enumerate() {
        n.set_offers(offer_ike(encr, prf, dh), offer_child(encr));
        let from = n.events.len();
        let id = n.ike.initiate(n.now(), "charon").expect("initiate");
        let c = n.wait(&ch, "Child SA", from, |e| child_up(e).is_some());
        let c = child_up(&c).cloned().expect("child");
        let (_, spi_i, spi_r) =
            ike_up(&n.wait(&ch, "IKE SA", from, |e| matches!(e, Event::IkeUp { .. })));
        assert!(c.encap && c.esn_refused && !c.suite.esn, "{c:?}");
        assert_eq!(c.suite.encr, encr);
        check_listed(&ch, spi_i, spi_r, &c, algs);
        n.ping(&ch, &c, 100 + k as u16);
        if k == 0 {
            // Liveness check answered.
            n.ike.check_liveness(n.now(), id).expect("liveness");
            n.settle(Duration::from_millis(100));
            assert_eq!(n.ike.sas().len(), 1);
            // Rekey the Child SA with PFS, then without.
            let mut cur = c.clone();
            for pfs in [true, false] {
                let from = n.events.len();
                n.ike
                    .rekey_child(n.now(), id, cur.spi_in, pfs)
                    .expect("rekey child");
                let e = n.wait(&ch, "rekeyed Child SA", from, |e| child_up(e).is_some());
                let new = child_up(&e).cloned().expect("child");
                assert_eq!(new.rekey_of, Some(cur.spi_in));
                assert_eq!(new.suite.dh, pfs.then_some(Group::X25519));
                let old = cur.spi_in;
                n.wait(&ch, "old Child SA deleted", from, |e| {
                    matches!(e, Event::ChildDown { spi_in, reason: ChildReason::Deleted, .. } if *spi_in == old)
                });
                n.settle(Duration::from_millis(50));
                check_listed(&ch, spi_i, spi_r, &new, algs);
                n.ping(&ch, &new, 200 + u16::from(pfs));
                cur = new;
            }
            // Rekey the IKE SA: the Child SA stays and still carries.
            let from = n.events.len();
            n.ike.rekey_ike(n.now(), id).expect("rekey ike");
            let e = n.wait(&ch, "rekeyed IKE SA", from, |e| {
                matches!(
                    e,
                    Event::IkeUp {
                        rekey_of: Some(_),
                        ..
                    }
                )
            });
            let (id2, spi_i2, spi_r2) = ike_up(&e);
            n.settle(Duration::from_millis(100));
            assert_eq!(
                n.ike.sas().len(),
                1,
                "old IKE SA deleted: {:?}",
                n.ike.sas()
            );
            check_listed(&ch, spi_i2, spi_r2, &cur, algs);
            n.ping(&ch, &cur, 300);
            // Delete the Child SA, then the IKE SA.
            let from = n.events.len();
            n.ike
                .delete_child(n.now(), id2, cur.spi_in)
                .expect("delete child");
            n.settle(Duration::from_millis(100));
            assert!(n.events[from..]
                .iter()
                .any(|e| matches!(e, Event::ChildDown { .. })));
            let l = ch.swanctl(&["--list-sas"]);
            assert!(
                l.contains("ESTABLISHED") && !l.contains("INSTALLED"),
                "child still in charon:\n{l}"
            );
            n.ike.delete_ike(n.now(), id2).expect("delete ike");
            n.wait(&ch, "IKE SA deleted", from, |e| {
                matches!(
                    e,
                    Event::IkeDown {
                        reason: Reason::Deleted,
                        ..
                    }
                )
            });
        } else {
            let from = n.events.len();
            n.ike.delete_ike(n.now(), id).expect("delete ike");
            n.wait(&ch, "IKE SA deleted", from, |e| {
                matches!(
                    e,
                    Event::IkeDown {
                        reason: Reason::Deleted,
                        ..
                    }
                )
            });
        }
        let l = ch.swanctl(&["--list-sas"]);
        assert!(!l.contains("ESTABLISHED"), "charon still has an SA:\n{l}");
    }

    // 2. charon initiates. This side takes only P-256, so charon's X25519
    // KE is answered with INVALID_KE_PAYLOAD and it retries.
    n.set_offers(
        offer_ike(AesGcm::Aes128, Prf::HmacSha256, Group::P256),
        offer_child(AesGcm::Aes128),
    );
    let from = n.events.len();
    let invalid_ke = n.ike.counters().invalid_ke_sent;
    let c = ch.swanctl_bg(&[
        "--initiate",
        "--ike",
        "mesh",
        "--child",
        "net",
        "--timeout",
        "10",
    ]);
    n.serve(&ch, c, "--initiate");
    let e = n.wait(&ch, "IKE SA from charon", from, |e| {
        matches!(e, Event::IkeUp { .. })
    });
    let (id, spi_i, spi_r) = ike_up(&e);
    assert!(matches!(
        e,
        Event::IkeUp {
            initiator: false,
            ..
        }
    ));
    assert_eq!(n.ike.counters().invalid_ke_sent, invalid_ke + 1);
    let c = child_up(&n.wait(&ch, "Child SA from charon", from, |e| child_up(e).is_some()))
        .cloned()
        .expect("child");
    // charon (libipsec) offers no ESN; this side says so.
    assert!(c.encap && c.esn_refused && !c.suite.esn, "{c:?}");
    let algs = "AES_GCM_16-128/PRF_HMAC_SHA2_256/ECP_256";
    check_listed(&ch, spi_i, spi_r, &c, algs);
    n.ping(&ch, &c, 400);

    // charon rekeys the Child SA (with PFS: its first ESP proposal has
    // X25519), then the IKE SA.
    let from = n.events.len();
    let r = ch.swanctl_bg(&["--rekey", "--child", "net"]);
    n.serve(&ch, r, "--rekey --child");
    let e = n.wait(&ch, "Child SA rekeyed by charon", from, |e| {
        child_up(e).is_some()
    });
    let c2 = child_up(&e).cloned().expect("child");
    assert_eq!(c2.rekey_of, Some(c.spi_in));
    assert_eq!(c2.suite.dh, Some(Group::X25519));
    n.wait(&ch, "old Child SA deleted by charon", from, |e| {
        matches!(e, Event::ChildDown { spi_in, reason: ChildReason::PeerDeleted, .. } if *spi_in == c.spi_in)
    });
    check_listed(&ch, spi_i, spi_r, &c2, algs);
    n.ping(&ch, &c2, 401);
    let from = n.events.len();
    let r = ch.swanctl_bg(&["--rekey", "--ike", "mesh"]);
    n.serve(&ch, r, "--rekey --ike");
    let e = n.wait(
        &ch,
        "IKE SA rekeyed by charon",
        from,
        |e| matches!(e, Event::IkeUp { rekey_of: Some(old), .. } if *old == id),
    );
    let (id2, spi_i2, spi_r2) = ike_up(&e);
    n.settle(Duration::from_millis(200));
    check_listed(&ch, spi_i2, spi_r2, &c2, algs);
    n.ping(&ch, &c2, 402);

    // This side, the original responder, rekeys both.
    let from = n.events.len();
    n.ike
        .rekey_child(n.now(), id2, c2.spi_in, true)
        .expect("rekey child");
    let c3 = child_up(&n.wait(&ch, "Child SA rekeyed by us", from, |e| {
        child_up(e).is_some()
    }))
    .cloned()
    .expect("child");
    n.ike.rekey_ike(n.now(), id2).expect("rekey ike");
    let (_, spi_i3, spi_r3) = ike_up(&n.wait(&ch, "IKE SA rekeyed by us", from, |e| {
        matches!(e, Event::IkeUp { .. })
    }));
    n.settle(Duration::from_millis(200));
    check_listed(&ch, spi_i3, spi_r3, &c3, algs);
    n.ping(&ch, &c3, 403);

    // charon deletes the Child SA, then the IKE SA.
    let from = n.events.len();
    let r = ch.swanctl_bg(&["--terminate", "--child", "net", "--timeout", "10"]);
    n.serve(&ch, r, "--terminate --child");
    n.wait(&ch, "Child SA deleted by charon", from, |e| {
        matches!(e, Event::ChildDown { spi_in, reason: ChildReason::PeerDeleted, .. } if *spi_in == c3.spi_in)
    });
    assert!(
        n.ike.sas().iter().all(|s| s.children.is_empty()),
        "{:?}",
        n.ike.sas()
    );
    let from = n.events.len();
    let r = ch.swanctl_bg(&["--terminate", "--ike", "mesh", "--timeout", "10"]);
    n.serve(&ch, r, "--terminate");
    n.wait(&ch, "IKE SA deleted by charon", from, |e| {
        matches!(
            e,
            Event::IkeDown {
                reason: Reason::PeerDeleted,
                ..
            }
        )
    });
    assert!(n.ike.sas().iter().all(|s| s.state == "rekeyed"));
    let l = ch.swanctl(&["--list-sas"]);
    assert!(!l.contains("ESTABLISHED"), "charon still has an SA:\n{l}");

    // 3. Certificates (RFC 7427): a CA and both ends' certificates from
    // meshplane's generator, with ECDSA P-256 and with Ed25519 keys;
    // meshplane initiates, then charon.
    n.set_offers(
        offer_ike(AesGcm::Aes128, Prf::HmacSha256, Group::X25519),
        offer_child(AesGcm::Aes128),
    );
    certificates(
        &ch,
        &mut n,
        SigAlg::EcdsaP256Sha256,
        "ECDSA_WITH_SHA256_DER",
    );
    certificates(&ch, &mut n, SigAlg::Ed25519, "ED25519");

    let c = n.ike.counters();
    eprintln!("counters: {c:?}");
    assert_eq!(c.dropped(meshplane_control::ike::Dropped::BadIcv), 0);
    // One refused certificate per algorithm, no other.
    assert_eq!(
        c.dropped(meshplane_control::ike::Dropped::BadCertificate),
        2
    );
    eprintln!("strongSwan interop done in {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(60));
    drop(ch);
    drop(lab);
}
