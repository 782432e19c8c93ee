//! The runtime over the memory backend (rings as port queues), with real
//! worker threads, real table publications and the real stages:
//!
//! - 1000 table publications alternating two route sets under a continuous
//!   feed lose no frame and misroute none;
//! - two workers on two cores both carry traffic and the counters add up
//!   exactly to what was sent (and dropped);
//! - pipeline mode (I/O core + crypto core) encrypts and decrypts exactly
//!   what run-to-completion does, byte for byte and in order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use meshplane::chain::{default_chain, run_chain};
use meshplane::config::{Idle, Mode, NodeConfig};
use meshplane::drop_reason::DropReason;
use meshplane::frame::{Frame, HeapFrame};
use meshplane::gen::{generate, FrameSize, GenSpec};
use meshplane::io::memory::Ring;
use meshplane::runtime::{
    run, Layout, MemoryBackend, RunOptions, RunSummary, StatsHub, TableStore,
};
use meshplane::tables::Tables;

/// A node running on its own supervising thread, and its rings.
struct Running {
    stop: Arc<AtomicBool>,
    store: Arc<TableStore>,
    hub: Arc<StatsHub>,
    /// `rx[queue][port]`: push here to send into the node.
    rx: Vec<Vec<Ring>>,
    /// `tx[queue][port]`: pop here to see what the node sent.
    tx: Vec<Vec<Ring>>,
    handle: thread::JoinHandle<RunSummary>,
}

impl Running {
    fn stop(self) -> RunSummary {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("supervisor")
    }
}

fn start(cfg: &NodeConfig, cores: &[usize], mode: Mode, idle: Idle, cap: usize) -> Running {
    let layout = Layout::new(cores, mode).expect("layout");
    let mut backend = MemoryBackend::new(cfg.ports.len(), layout.queues(), cap);
    let rings = |f: &dyn Fn(usize, usize) -> Ring| -> Vec<Vec<Ring>> {
        (0..layout.queues())
            .map(|q| (0..cfg.ports.len()).map(|p| f(p, q)).collect())
            .collect()
    };
    let rx = rings(&|p, q| backend.rx_ring(p, q));
    let tx = rings(&|p, q| backend.tx_ring(p, q));
    let tables = Tables::from_config(cfg, 1).expect("tables");
    let store = Arc::new(TableStore::new(tables));
    let names = cfg.ports.iter().map(|p| p.name.clone()).collect();
    let hub = Arc::new(StatsHub::new(
        &cfg.name,
        mode,
        names,
        layout.threads().to_vec(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let (s, st, h) = (stop.clone(), store.clone(), hub.clone());
    let opts = RunOptions {
        idle,
        ..RunOptions::default()
    };
    let handle = thread::Builder::new()
        .name("supervisor".into())
        .spawn(move || run(&mut backend, &layout, &st, &h, &s, &opts, |_| {}).expect("run"))
        .expect("spawn");
    Running {
        stop,
        store,
        hub,
        rx,
        tx,
        handle,
    }
}

/// Pushes `f` into `ring`, waiting while it is full.
fn push(ring: &Ring, mut f: HeapFrame) {
    loop {
        match ring.push(f) {
            Ok(()) => return,
            Err(back) => {
                f = back;
                thread::yield_now();
            }
        }
    }
}

const PORT_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];

/// A labelled frame: Ethernet (MPLS) | label, S=1, TTL 64 | sequence number.
fn mpls_frame(label: u32, seq: u64) -> HeapFrame {
    HeapFrame::from_bytes(&mpls_frame_bytes(label, seq))
}

fn mpls_frame_bytes(label: u32, seq: u64) -> [u8; 60] {
    let mut b = [0u8; 60];
    b[..6].copy_from_slice(&PORT_MAC);
    b[6..12].copy_from_slice(&[2, 0, 0, 0, 0xaa, 0xaa]);
    b[12..14].copy_from_slice(&0x8847u16.to_be_bytes());
    b[14..18].copy_from_slice(&((label << 12) | (1 << 8) | 64).to_be_bytes());
    b[18..26].copy_from_slice(&seq.to_be_bytes());
    b
}

/// (label, sequence number) of a frame `mpls_frame` built, after a swap.
fn parse(f: &[u8]) -> (u32, u64) {
    let entry = u32::from_be_bytes([f[14], f[15], f[16], f[17]]);
    let seq = u64::from_be_bytes(f[18..26].try_into().expect("8 bytes"));
    (entry >> 12, seq)
}

/// A satellite with ports `in`, `a`, `b`. Labels 100..116 are swapped to
/// `base + label` and sent on `port`.
fn satellite(name: &str, base: u32, port: &str) -> NodeConfig {
    let mut t = format!(
        "[node]\nname = \"{name}\"\nrole = \"satellite\"\n\
         [[ports]]\nname = \"in\"\nmac = \"02:00:00:00:01:01\"\n\
         [[ports]]\nname = \"a\"\nmac = \"02:00:00:00:01:0a\"\n\
         [[ports]]\nname = \"b\"\nmac = \"02:00:00:00:01:0b\"\n"
    );
    for l in 100..116 {
        t += &format!(
            "[[lfib]]\nlabel = {l}\naction = \"swap\"\nout_label = {}\nport = \"{port}\"\n\
             next_hop_mac = \"02:00:00:00:02:02\"\n",
            base + l
        );
    }
    NodeConfig::parse(&t, name).expect("satellite config")
}

#[test]
fn thousand_publications_under_load_lose_and_misroute_nothing() {
    let set_a = satellite("sat", 10_000, "a");
    let set_b = satellite("sat", 20_000, "b");
    let node = start(&set_a, &[], Mode::RunToCompletion, Idle::Busy, 8192);
    // This thread is the traffic generator, the sink and the publisher in
    // one loop (two busy threads in all, the worker and this one): it keeps
    // up to WINDOW frames in flight, collects what comes out, and publishes
    // the next route set as soon as a frame fed after the previous
    // publication has left on that set's port, so that every one of the
    // 1000 publications is crossed by traffic.
    const WINDOW: u64 = 256;
    let rx = node.rx[0][0].clone();
    let outs = [(1u8, node.tx[0][1].clone()), (2u8, node.tx[0][2].clone())];
    let mut got: Vec<(u8, u32, u64)> = Vec::new();
    // Per output port, 1 + the highest sequence number seen there.
    let mut newest = [0u64; 3];
    let mut seq = 0u64;
    let mut published = 0u32;
    let mut waiting: Option<(usize, u64)> = None;
    let mut recycled: Vec<HeapFrame> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        while seq - (got.len() as u64) < WINDOW {
            let f = recycled.pop().map_or_else(
                || mpls_frame(100 + (seq % 16) as u32, seq),
                |mut f| {
                    f.reset_from(mpls_frame_bytes(100 + (seq % 16) as u32, seq).as_slice());
                    f
                },
            );
            if rx.push(f).is_err() {
                break;
            }
            seq += 1;
        }
        for (port, ring) in &outs {
            while let Some(f) = ring.pop() {
                let (label, s) = parse(f.data());
                got.push((*port, label, s));
                let n = &mut newest[usize::from(*port)];
                *n = (*n).max(s + 1);
                recycled.push(f);
            }
        }
        match waiting {
            Some((port, mark)) if newest[port] > mark => {
                waiting = None;
                published += 1;
            }
            Some(_) => {}
            None if published < 1000 => {
                let (cfg, port) = if published.is_multiple_of(2) {
                    (&set_b, 2)
                } else {
                    (&set_a, 1)
                };
                node.store
                    .publish(Tables::from_config(cfg, 0).expect("tables"));
                waiting = Some((port, seq));
            }
            None => break,
        }
        assert!(
            Instant::now() < deadline,
            "stuck after {published} publications"
        );
    }
    // Everything fed comes out.
    let sent = seq;
    while (got.len() as u64) < sent && Instant::now() < deadline {
        for (port, ring) in &outs {
            while let Some(f) = ring.pop() {
                let (label, s) = parse(f.data());
                got.push((*port, label, s));
            }
        }
    }
    let final_epoch = node.store.epoch();
    let summary = node.stop();
    let total = &summary.snapshot.total;
    assert_eq!(final_epoch, 1001, "1000 publications after epoch 1");
    assert_eq!(summary.snapshot.table_epoch, 1001);
    assert_eq!(total.rx_packets(), sent);
    assert_eq!(total.drops.total(), 0, "drops: {:?}", total.drops);
    assert_eq!(total.tx_packets(), sent);
    assert_eq!(got.len() as u64, sent, "frames out");
    let mut seen = vec![false; sent as usize];
    let mut misrouted = 0u64;
    let mut switches = 0u64;
    let mut last_port = 0u8;
    let mut by_seq = got.clone();
    by_seq.sort_by_key(|g| g.2);
    for &(port, label, seq) in &by_seq {
        let input = 100 + (seq % 16) as u32;
        let ok = (port == 1 && label == 10_000 + input) || (port == 2 && label == 20_000 + input);
        if !ok {
            misrouted += 1;
        }
        assert!(!seen[seq as usize], "frame {seq} twice");
        seen[seq as usize] = true;
        if port != last_port {
            switches += 1;
            last_port = port;
        }
    }
    let lost = seen.iter().filter(|s| !**s).count();
    assert_eq!(lost, 0, "lost frames");
    assert_eq!(misrouted, 0, "misrouted frames");
    // The publications really interleaved with the traffic.
    assert!(
        switches >= 1000,
        "only {switches} route changes seen in {sent} frames"
    );
    let on_a = got.iter().filter(|g| g.0 == 1).count();
    assert!(
        on_a > 0 && on_a < got.len(),
        "both route sets carried traffic"
    );
    eprintln!(
        "{sent} frames, 1000 publications, {switches} route changes seen, 0 lost, 0 misrouted"
    );
}

/// Cores this process may run on (the first two), or the reason it cannot.
fn two_cores() -> Vec<usize> {
    let cores: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .take(2)
        .collect();
    assert!(
        cores.len() == 2,
        "this test needs two cores; the process may use {cores:?}"
    );
    cores
}

#[test]
fn two_pinned_workers_carry_traffic_and_counters_add_up() {
    let cores = two_cores();
    let hops = default_chain().expect("chain");
    let sat = &hops[1].node;
    let node = start(sat, &cores, Mode::RunToCompletion, Idle::Busy, 8192);
    // Worker q gets 3000 + 1000 q good frames (label 1002 -> gsl-b), 100
    // with an unknown label (no route) and 50 truncated (malformed), as
    // RSS would spread flows over two queues.
    let mut sent = [0u64; 2];
    let mut expect_ok = [0u64; 2];
    let feeders: Vec<_> = (0..2)
        .map(|q| {
            let ring = node.rx[q][0].clone();
            let good = 3000 + 1000 * q as u64;
            thread::spawn(move || {
                for i in 0..good {
                    push(&ring, mpls_frame(1002, i));
                }
                for i in 0..100 {
                    push(&ring, mpls_frame(4000, i));
                }
                for _ in 0..50 {
                    push(&ring, HeapFrame::from_bytes(&[2, 0, 0, 0, 1, 1, 2, 0]));
                }
            })
        })
        .collect();
    for q in 0..2 {
        expect_ok[q] = 3000 + 1000 * q as u64;
        sent[q] = expect_ok[q] + 150;
    }
    for f in feeders {
        f.join().expect("feeder");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.hub.snapshot().total.rx_packets() < sent.iter().sum::<u64>()
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(20));
    }
    let tx = node.tx.clone();
    let summary = node.stop();
    let snap = &summary.snapshot;
    for q in 0..2 {
        let w = &snap.workers[q].stats;
        assert_eq!(snap.workers[q].info.core, Some(cores[q]));
        assert_eq!(w.rx_packets(), sent[q], "worker {q} received");
        assert_eq!(w.ports[1].tx_packets, expect_ok[q], "worker {q} sent");
        assert_eq!(w.drops.get(DropReason::NoRoute), 100);
        assert_eq!(w.drops.get(DropReason::Malformed), 50);
        assert_eq!(w.drops.total(), 150);
        assert_eq!(
            tx[q][1].len() as u64,
            expect_ok[q],
            "frames in worker {q}'s TX ring"
        );
        assert!(
            w.latency.len() == expect_ok[q],
            "one latency sample per frame sent"
        );
    }
    let t = &snap.total;
    assert_eq!(t.rx_packets(), sent.iter().sum::<u64>());
    assert_eq!(t.tx_packets() + t.drops.total(), t.rx_packets());
    assert_eq!(t.ports[0].rx_packets, sent.iter().sum::<u64>());
    assert_eq!(t.ports[1].tx_packets, expect_ok.iter().sum::<u64>());
    let out: u64 = tx.iter().map(|q| q[1].len() as u64).sum();
    assert_eq!(out, t.tx_packets());
}

/// Feeds `input` into port `rx` of a one-queue node and returns what it
/// sends on port `tx`, in order.
fn through(node: Running, input: &[Vec<u8>], rx: usize, tx: usize) -> (Vec<Vec<u8>>, RunSummary) {
    let ring = node.rx[0][rx].clone();
    let out = node.tx[0][tx].clone();
    let n = input.len();
    let frames: Vec<HeapFrame> = input.iter().map(|d| HeapFrame::from_bytes(d)).collect();
    let feeder = thread::spawn(move || {
        for f in frames {
            push(&ring, f);
        }
    });
    let mut got = Vec::with_capacity(n);
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < n && Instant::now() < deadline {
        match out.pop() {
            Some(f) => got.push(f.data().to_vec()),
            None => thread::yield_now(),
        }
    }
    feeder.join().expect("feeder");
    (got, node.stop())
}

#[test]
fn pipeline_mode_matches_run_to_completion_byte_for_byte() {
    let hops = default_chain().expect("chain");
    let input = generate(&GenSpec {
        count: 3000,
        size: FrameSize::Imix,
        flows: 32,
        ..GenSpec::default()
    })
    .expect("traffic");
    let heap = run_chain(&hops, input.clone(), 1).expect("heap chain");
    let data = |v: &[meshplane::io::pcap::CapturedPacket]| -> Vec<Vec<u8>> {
        v.iter().map(|p| p.data.clone()).collect()
    };
    // Gateway A encrypts on the crypto core; gateway B decrypts there.
    for (hop, feed, want) in [
        (&hops[0], data(&input), data(&heap.outputs[0])),
        (&hops[2], data(&heap.outputs[1]), data(&heap.outputs[2])),
    ] {
        let node = start(&hop.node, &[], Mode::Pipeline, Idle::Adaptive, 4096);
        let (got, summary) = through(node, &feed, hop.rx_port, hop.tx_port);
        assert_eq!(got.len(), want.len(), "{}: frames out", hop.node.name);
        assert!(
            got == want,
            "{}: pipeline output differs (order or bytes)",
            hop.node.name
        );
        let snap = &summary.snapshot;
        assert_eq!(snap.workers.len(), 2, "an I/O and a crypto thread");
        assert_eq!(snap.total.rx_packets(), feed.len() as u64);
        assert_eq!(snap.total.drops.total(), 0);
    }
}

/// A backend whose crypto thread (index 1) cannot start.
struct CryptoCannotStart(MemoryBackend);

#[derive(Debug, thiserror::Error)]
#[error("thread {0} refused")]
struct Refused(usize);

impl meshplane::runtime::Backend for CryptoCannotStart {
    type Port = meshplane::io::memory::MemoryPort;
    type Error = Refused;
    fn name(&self) -> &'static str {
        "memory-refusing"
    }
    fn port_count(&self) -> usize {
        self.0.port_count()
    }
    fn worker_ports(&self, w: usize) -> Result<Vec<Self::Port>, Refused> {
        self.0.worker_ports(w).map_err(|_| Refused(w))
    }
    fn thread_start(&self, w: usize) -> Result<(), Refused> {
        if w == 1 {
            Err(Refused(w))
        } else {
            Ok(())
        }
    }
}

#[test]
fn a_crypto_thread_that_cannot_start_fails_the_run_without_hanging() {
    use meshplane::runtime::Backend;
    let hops = default_chain().expect("chain");
    let cfg = &hops[0].node;
    let layout = Layout::new(&[], Mode::Pipeline).expect("layout");
    let inner = MemoryBackend::new(cfg.ports.len(), 1, 1024);
    let rx = inner.rx_ring(0, 0);
    for p in generate(&GenSpec {
        count: 200,
        ..GenSpec::default()
    })
    .expect("traffic")
    {
        let _ = rx.push(HeapFrame::from_bytes(&p.data));
    }
    let mut backend = CryptoCannotStart(inner);
    assert_eq!(backend.name(), "memory-refusing");
    let store = TableStore::new(Tables::from_config(cfg, 1).expect("tables"));
    let names = cfg.ports.iter().map(|p| p.name.clone()).collect();
    let hub = StatsHub::new(&cfg.name, Mode::Pipeline, names, layout.threads().to_vec());
    let stop = AtomicBool::new(false);
    let opts = RunOptions {
        duration: Some(Duration::from_secs(10)),
        ..RunOptions::default()
    };
    let t0 = Instant::now();
    let err =
        run(&mut backend, &layout, &store, &hub, &stop, &opts, |_| {}).expect_err("the run fails");
    assert!(err.to_string().contains("thread 1 refused"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5), "stopped promptly");
}
