//! SA lifetimes as an operator meets them, with small limits on the
//! embedded gateways' tunnel A -> B (SA 4097):
//!
//! - past the soft packet limit a rekey is requested, and reported once;
//! - past the hard packet limit the SA's traffic is dropped as
//!   `sa_expired` (within one batch of the limit) and its counts stop;
//! - the inbound end counts what authenticated, the same packets and
//!   bytes the outbound end sealed, and expires the same way;
//! - a hard time limit expires the SA of a running node, which logs the
//!   soft and the hard limit once each;
//! - `meshplane replay` reports both in its log and the drops in its report.

use meshplane::chain::{default_chain, Hop};
use meshplane::config::{Idle, Mode, NodeConfig, SaDir};
use meshplane::drop_reason::DropReason;
use meshplane::frame::{Batch, Frame, HeapFrame, Verdict, BURST};
use meshplane::gen::{generate, FrameSize, GenSpec};
use meshplane::runtime::lifetimes::sweep;
use meshplane::runtime::{run, Layout, MemoryBackend, RunOptions, StatsHub, TableStore};
use meshplane::sa::{Lifetime, Limits};
use meshplane::stage;
use meshplane::tables::Tables;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");

/// ESP overhead around the encrypted body: Ethernet, label, outer IPv4,
/// SPI and sequence number, IV; and the ICV behind it.
const HEAD: usize = 14 + 4 + 20 + 8 + 8;
const ICV: usize = 16;

fn hops() -> Vec<Hop> {
    default_chain().expect("embedded configs parse")
}

/// Node `hop` with `lifetime` on its SA `spi` in direction `dir`.
fn with_lifetime(hop: &Hop, spi: u32, dir: SaDir, lifetime: Lifetime) -> NodeConfig {
    let mut cfg = hop.node.clone();
    let sa = cfg
        .sa
        .iter_mut()
        .find(|s| s.spi == spi && s.dir == dir)
        .expect("the SA");
    sa.lifetime = lifetime;
    cfg
}

fn packets(soft: Option<u64>, hard: Option<u64>) -> Lifetime {
    Lifetime {
        soft: Limits {
            packets: soft,
            ..Limits::NONE
        },
        hard: Limits {
            packets: hard,
            ..Limits::NONE
        },
    }
}

fn traffic(n: u64) -> Vec<Vec<u8>> {
    generate(&GenSpec {
        count: n,
        size: FrameSize::Fixed(128),
        ..GenSpec::default()
    })
    .expect("generate")
    .into_iter()
    .map(|p| p.data)
    .collect()
}

/// Every frame through the stages in batches of 32, as a worker takes
/// them from port `rx`: the frame sent, or why it was dropped.
fn through(t: &Tables, rx: usize, frames: &[Vec<u8>]) -> Vec<Result<Vec<u8>, DropReason>> {
    let mut out = Vec::with_capacity(frames.len());
    for chunk in frames.chunks(BURST) {
        let mut b: Batch<HeapFrame> = Batch::new();
        b.set_rx_port(rx as u16);
        for f in chunk {
            b.push(HeapFrame::from_bytes(f)).expect("room in the batch");
        }
        stage::process(&mut b, t);
        for (f, v) in b.frames().iter().zip(b.verdicts()) {
            out.push(match v {
                Verdict::Tx(_) => Ok(f.data().to_vec()),
                Verdict::Drop(r) => Err(*r),
                other => panic!("unfinished verdict {other:?}"),
            });
        }
    }
    out
}

fn sent(r: &[Result<Vec<u8>, DropReason>]) -> Vec<Vec<u8>> {
    r.iter().filter_map(|x| x.as_ref().ok().cloned()).collect()
}

#[test]
fn past_the_hard_packet_limit_the_tunnel_drops_as_sa_expired_and_its_counts_stop() {
    let h = hops();
    let cfg = with_lifetime(&h[0], 4097, SaDir::Out, packets(Some(50), Some(100)));
    let t = Tables::from_config(&cfg, 1).expect("tables");
    let sa = t.sa_out.iter().find(|s| s.spi == 4097).expect("SA 4097");

    let r = through(&t, h[0].rx_port, &traffic(200));
    let out = sent(&r);
    // The run that crosses the limit finishes; the next does not start.
    assert!(
        (100..100 + BURST).contains(&out.len()),
        "{} sent for a hard limit of 100",
        out.len()
    );
    assert!(
        r[..out.len()].iter().all(Result::is_ok),
        "what was sent came first"
    );
    assert!(
        r[out.len()..]
            .iter()
            .all(|x| *x == Err(DropReason::SaExpired)),
        "then everything is sa_expired"
    );
    let bytes: usize = out.iter().map(|f| f.len() - HEAD - ICV).sum();
    assert_eq!(sa.life.packets(), out.len() as u64);
    assert_eq!(sa.life.bytes(), bytes as u64, "the encrypted bodies");
    assert_eq!(
        sa.sent(),
        out.len() as u64,
        "no sequence number taken since"
    );

    // More traffic: all dropped, nothing counted, no number used.
    let again = through(&t, h[0].rx_port, &traffic(64));
    assert!(again.iter().all(|x| *x == Err(DropReason::SaExpired)));
    assert_eq!(sa.life.packets(), out.len() as u64);
    assert_eq!(sa.sent(), out.len() as u64);

    // The soft limit asked for a rekey, the hard one expired the SA; each
    // is reported once.
    let now = Instant::now();
    let events = sweep(&t, now);
    let lines: Vec<String> = events.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("SA 4097: soft lifetime reached (packets); rekey requested"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("SA 4097: hard lifetime reached (packets)"),
        "{lines:?}"
    );
    assert!(sweep(&t, now).is_empty(), "reported once");
}

#[test]
fn an_expired_sa_stops_only_its_own_traffic_in_mixed_batches() {
    let h = hops();
    // A second tunnel from gateway A, to 10.3.0.0/16, that expires after
    // 10 packets; batches alternate between the two tunnels.
    let mut cfg = h[0].node.clone();
    let mut second = cfg.sa[0].clone();
    assert_eq!((second.spi, second.dir), (4097, SaDir::Out));
    second.spi = 4099;
    second.tunnel_dst = "192.0.2.3".parse().expect("address");
    second.lifetime = packets(None, Some(10));
    cfg.sa.push(second);
    let mut fec = cfg.fec[0].clone();
    fec.prefix = meshplane::config::Prefix::parse_network("10.3.0.0/16").expect("prefix");
    fec.sa = 4099;
    cfg.fec.push(fec);
    let t = Tables::from_config(&cfg, 1).expect("tables");
    let to = |dst: &str| {
        generate(&GenSpec {
            count: 96,
            size: FrameSize::Fixed(128),
            dst: meshplane::config::Prefix::parse_network(dst).expect("prefix"),
            ..GenSpec::default()
        })
        .expect("generate")
    };
    let (b, c) = (to("10.2.0.0/16"), to("10.3.0.0/16"));
    let mixed: Vec<Vec<u8>> = b
        .iter()
        .zip(&c)
        .flat_map(|(x, y)| [x.data.clone(), y.data.clone()])
        .collect();
    let r = through(&t, h[0].rx_port, &mixed);
    let spi_of = |f: &Vec<u8>| u32::from_be_bytes([f[38], f[39], f[40], f[41]]);
    let on = |spi: u32| sent(&r).iter().filter(|f| spi_of(f) == spi).count();
    assert_eq!(on(4097), 96, "the other tunnel loses nothing");
    let (b_sa, c_sa) = (&t.sa_out[0], &t.sa_out[1]);
    assert_eq!((b_sa.spi, c_sa.spi), (4097, 4099));
    assert_eq!(b_sa.life.packets(), 96);
    assert!((10..10 + BURST).contains(&on(4099)), "{}", on(4099));
    assert_eq!(c_sa.life.packets(), on(4099) as u64);
    assert_eq!(
        r.iter()
            .filter(|x| **x == Err(DropReason::SaExpired))
            .count(),
        96 - on(4099)
    );
}

#[test]
fn interleaved_tunnels_are_each_counted_at_both_ends() {
    let h = hops();
    // A second tunnel A -> B (SPI 4099, its own key) for 10.3.0.0/16.
    let key = |sa: &mut meshplane::config::SaConfig| {
        let mut k = sa.key.to_vec();
        k[0] ^= 0x5a;
        sa.key = k.into();
        sa.spi = 4099;
    };
    let mut a = h[0].node.clone();
    let mut second = a.sa[0].clone();
    key(&mut second);
    a.sa.push(second);
    let mut fec = a.fec[0].clone();
    fec.prefix = meshplane::config::Prefix::parse_network("10.3.0.0/16").expect("prefix");
    fec.sa = 4099;
    a.fec.push(fec);
    let mut b = h[2].node.clone();
    let i =
        b.sa.iter()
            .position(|s| s.spi == 4097 && s.dir == SaDir::In)
            .expect("in");
    let mut second = b.sa[i].clone();
    key(&mut second);
    b.sa.push(second);
    let mut deliver = b.deliver[0].clone();
    deliver.prefix = meshplane::config::Prefix::parse_network("10.3.0.0/16").expect("prefix");
    b.deliver.push(deliver);

    let (ta, ts, tb) = (
        Tables::from_config(&a, 1).expect("gw-a"),
        Tables::from_config(&h[1].node, 1).expect("sat-1"),
        Tables::from_config(&b, 1).expect("gw-b"),
    );
    // Frames of different sizes on each, so that their bytes differ.
    let to = |dst: &str, n: u64, size: usize| {
        generate(&GenSpec {
            count: n,
            size: FrameSize::Fixed(size),
            dst: meshplane::config::Prefix::parse_network(dst).expect("prefix"),
            ..GenSpec::default()
        })
        .expect("generate")
    };
    // Runs of 1, 2 and 3 frames on alternating tunnels.
    let (x, y) = (to("10.2.0.0/16", 60, 160), to("10.3.0.0/16", 30, 130));
    let mut mixed = Vec::new();
    let (mut xi, mut yi) = (x.iter(), y.iter());
    for run in [1usize, 2, 3].iter().cycle().take(30) {
        mixed.extend(xi.by_ref().take(*run).map(|p| p.data.clone()));
        mixed.extend(yi.by_ref().take(1).map(|p| p.data.clone()));
    }
    mixed.extend(xi.map(|p| p.data.clone()));
    assert_eq!(mixed.len(), 90);
    let arriving = sent(&through(
        &ts,
        h[1].rx_port,
        &sent(&through(&ta, h[0].rx_port, &mixed)),
    ));
    assert_eq!(arriving.len(), 90);
    assert_eq!(sent(&through(&tb, h[2].rx_port, &arriving)).len(), 90);
    for (spi, n) in [(4097, 60), (4099, 30)] {
        let out = ta.sa_out.iter().find(|s| s.spi == spi).expect("out");
        let inb = &tb.sa_in.get(&spi).expect("in").sa;
        assert_eq!(out.life.packets(), n, "SA {spi} out");
        assert_eq!(
            (inb.life.packets(), inb.life.bytes()),
            (out.life.packets(), out.life.bytes()),
            "SA {spi}: both ends"
        );
    }
}

#[test]
fn past_the_soft_limit_traffic_flows_and_the_rekey_request_comes_once() {
    let h = hops();
    let cfg = with_lifetime(&h[0], 4097, SaDir::Out, packets(Some(40), None));
    let t = Tables::from_config(&cfg, 1).expect("tables");
    let sa = t.sa_out.iter().find(|s| s.spi == 4097).expect("SA 4097");
    let mut requests = 0;
    for _ in 0..10 {
        let r = through(&t, h[0].rx_port, &traffic(32));
        assert!(r.iter().all(Result::is_ok), "a soft limit drops nothing");
        requests += sweep(&t, Instant::now()).len();
    }
    assert_eq!(requests, 1, "one rekey request");
    assert!(sa.life.rekey_requested() && !sa.life.expired());
    assert_eq!(sa.life.packets(), 320);
}

#[test]
fn both_ends_count_the_same_and_the_inbound_end_expires_too() {
    let h = hops();
    let a = Tables::from_config(&h[0].node, 1).expect("gw-a");
    let s = Tables::from_config(&h[1].node, 1).expect("sat-1");
    let arriving = sent(&through(
        &s,
        h[1].rx_port,
        &sent(&through(&a, h[0].rx_port, &traffic(100))),
    ));
    assert_eq!(arriving.len(), 100);

    // Without limits: every packet delivered, and gateway B's inbound SA
    // counts what gateway A's outbound SA sealed.
    let b = Tables::from_config(&h[2].node, 1).expect("gw-b");
    let delivered = sent(&through(&b, h[2].rx_port, &arriving));
    assert_eq!(delivered.len(), 100);
    let out = a.sa_out.iter().find(|x| x.spi == 4097).expect("out");
    let inb = &b.sa_in.get(&4097).expect("in").sa;
    assert_eq!(
        (inb.life.packets(), inb.life.bytes()),
        (out.life.packets(), out.life.bytes())
    );
    assert_eq!(inb.life.packets(), 100);

    // A forged frame authenticates nothing and counts nothing; past its
    // hard limit the inbound SA drops what still arrives as sa_expired.
    let cfg = with_lifetime(&h[2], 4097, SaDir::In, packets(None, Some(40)));
    let b = Tables::from_config(&cfg, 1).expect("gw-b");
    let mut frames = arriving.clone();
    let last = frames[0].len() - 1;
    frames[0][last] ^= 1;
    let r = through(&b, h[2].rx_port, &frames);
    assert_eq!(r[0], Err(DropReason::AuthFailed));
    let ok = r.iter().filter(|x| x.is_ok()).count();
    assert!(
        (40..40 + BURST).contains(&ok),
        "{ok} delivered for a limit of 40"
    );
    assert!(r[1..=ok].iter().all(Result::is_ok));
    assert!(r[ok + 1..].iter().all(|x| *x == Err(DropReason::SaExpired)));
    let inb = &b.sa_in.get(&4097).expect("in").sa;
    assert_eq!(inb.life.packets(), ok as u64);
    assert!(inb.life.expired());
    let events = sweep(&b, Instant::now());
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].spi, events[0].dir, events[0].hard),
        (4097, "in", true)
    );
}

/// Log lines of this test process (every thread), for the tests that
/// read what a node logged.
fn log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        #[derive(Clone)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                if let Ok(mut v) = self.0.lock() {
                    v.extend_from_slice(b);
                }
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(buf.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        buf
    })
}

fn log_lines_with(s: &str) -> Vec<String> {
    let bytes = log().lock().map(|b| b.clone()).unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| l.contains(s))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_running_node_logs_the_rekey_request_once_and_expires_the_sa_by_its_age() {
    log();
    let h = hops();
    let mut cfg = with_lifetime(&h[0], 4097, SaDir::Out, packets(Some(50), None));
    cfg.sa
        .iter_mut()
        .find(|s| s.spi == 4097 && s.dir == SaDir::Out)
        .expect("SA")
        .lifetime
        .hard
        .seconds = Some(3);
    let layout = Layout::new(&[], Mode::RunToCompletion).expect("layout");
    let mut backend = MemoryBackend::new(cfg.ports.len(), layout.queues(), 4096);
    let (rx, tx) = (h[0].rx_port, h[0].tx_port);
    let input = backend.rx_ring(rx, 0);
    let output = backend.tx_ring(tx, 0);
    let store = Arc::new(TableStore::new(
        Tables::from_config(&cfg, 1).expect("tables"),
    ));
    let names = cfg.ports.iter().map(|p| p.name.clone()).collect();
    let hub = Arc::new(StatsHub::new(
        &cfg.name,
        Mode::RunToCompletion,
        names,
        layout.threads().to_vec(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let (st, hb, sp) = (store.clone(), hub.clone(), stop.clone());
    let node = thread::spawn(move || {
        let opts = RunOptions {
            idle: Idle::Busy,
            ..RunOptions::default()
        };
        run(&mut backend, &layout, &st, &hb, &sp, &opts, |_| {}).expect("run")
    });
    let installed = store.load().sa_out[0].life.installed();
    let feed = |n: u64| {
        for f in traffic(n) {
            let mut f = HeapFrame::from_bytes(&f);
            while let Err(back) = input.push(f) {
                f = back;
                thread::yield_now();
            }
        }
    };
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "waited for {what}");
            thread::sleep(Duration::from_millis(5));
        }
    };

    feed(100);
    let mut out = 0;
    wait("100 frames through", &|| output.len() + out >= 100);
    while output.pop().is_some() {
        out += 1;
    }
    assert_eq!(out, 100, "a soft limit drops nothing");
    wait("the rekey request", &|| {
        !log_lines_with("SA 4097: soft lifetime reached (packets); rekey requested").is_empty()
    });
    assert!(
        Instant::now() < installed + Duration::from_secs(3),
        "too slow a host for this test"
    );

    // Three seconds after it was installed the SA expires.
    wait("the expiry", &|| {
        !log_lines_with("SA 4097: hard lifetime reached (seconds)").is_empty()
    });
    assert!(Instant::now() >= installed + Duration::from_secs(3));
    feed(40);
    wait("40 more frames", &|| {
        hub.snapshot().total.rx_packets() >= 140
    });
    stop.store(true, Ordering::Relaxed);
    let summary = node.join().expect("node");
    assert_eq!(output.len(), 0, "nothing sent on an expired SA");
    let drops = &summary.snapshot.total.drops;
    assert_eq!(drops.get(DropReason::SaExpired), 40);
    assert_eq!(drops.total(), 40);
    assert_eq!(store.load().sa_out[0].life.packets(), 100);

    let soft = log_lines_with("SA 4097: soft lifetime reached");
    let hard = log_lines_with("SA 4097: hard lifetime reached");
    assert_eq!(soft.len(), 1, "{soft:?}");
    assert_eq!(hard.len(), 1, "{hard:?}");
    assert!(
        soft[0].contains("WARN") && soft[0].contains("no key exchange"),
        "{soft:?}"
    );
    assert!(
        hard[0].contains("ERROR") && hard[0].contains("sa_expired"),
        "{hard:?}"
    );
}

#[test]
fn replay_logs_both_limits_and_counts_the_drops() {
    let dir = std::env::temp_dir().join(format!("mp-sa-lifetimes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let text = include_str!("../configs/gw-a.toml").replacen(
        "esn = false\n",
        "esn = false\nlifetime = { soft_packets = 100, hard_packets = 150 }\n",
        1,
    );
    let cfg = dir.join("gw-a.toml");
    std::fs::write(&cfg, text).expect("config");
    let input = dir.join("in.pcap");
    let out = dir.join("out.pcap");
    let gen = std::process::Command::new(BIN)
        .args(["gen", "--count", "300", "--out"])
        .arg(&input)
        .output()
        .expect("gen");
    assert!(gen.status.success());
    let r = std::process::Command::new(BIN)
        .arg("replay")
        .arg("--config")
        .arg(&cfg)
        .arg("--pcap")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .args(["--rx-port", "lan0", "--io", "pcap"])
        .env("NO_COLOR", "1")
        .output()
        .expect("replay");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr),
    );
    assert!(r.status.success(), "{stdout}\n{stderr}");
    let soft: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("SA 4097: soft lifetime reached (packets); rekey requested"))
        .collect();
    let hard: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("SA 4097: hard lifetime reached (packets)"))
        .collect();
    assert_eq!((soft.len(), hard.len()), (1, 1), "{stderr}");
    let expired: u64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("drop sa_expired"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sa_expired line in\n{stdout}"));
    assert!(
        (300 - 150 - BURST as u64..=150).contains(&expired),
        "{expired} dropped of 300 for a hard limit of 150"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
