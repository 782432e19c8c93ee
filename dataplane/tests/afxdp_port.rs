//! The AF_XDP backend in-process, on veth pairs: a satellite node's
//! workers forward frames that another AF_XDP socket sends, across its two
//! ports through one shared UMEM (no copy), and every frame comes back;
//! misconfigurations fail with errors that say what to do; nothing stays
//! attached once the sockets are gone.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{has_xdp, ip, xdp_stays};
use meshplane::config::NodeConfig;
use meshplane::drop_reason::DropReason;
use meshplane::frame::{Batch, Frame};
use meshplane::io::afxdp::{AfXdpError, AfXdpNode, AfXdpPort, BindMode, XdpAttachMode};
use meshplane::io::Port;
use meshplane::tables::Tables;
use meshplane::worker::Worker;

/// Interfaces (veth pairs, a bridge) in this namespace, deleted on drop.
struct Links(Vec<String>);

impl Drop for Links {
    fn drop(&mut self) {
        for v in &self.0 {
            let _ = ip(&["link", "del", v]);
        }
    }
}

/// `n` pairs `{tag}{pid}{i}a <-> {tag}{pid}{i}b`, up, IPv6 off; None (with
/// a loud message) where veths cannot be made.
fn veths(tag: &str, n: usize) -> Option<(Links, Vec<(String, String)>)> {
    veths_with_queues(tag, n, 1)
}

/// As `veths`, each end with `q` RX and TX queues.
fn veths_with_queues(tag: &str, n: usize, q: u32) -> Option<(Links, Vec<(String, String)>)> {
    // Room for frames past the default MTU (the oversize case).
    veths_with(tag, n, q, 2000)
}

/// As `veths_with_queues`, each end's MTU `mtu`.
fn veths_with(tag: &str, n: usize, q: u32, mtu: u32) -> Option<(Links, Vec<(String, String)>)> {
    let mtu = mtu.to_string();
    let pid = std::process::id() % 100_000;
    let mut guard = Links(vec![]);
    let mut pairs = vec![];
    for i in 0..n {
        let (a, b) = (format!("{tag}{pid}{i}a"), format!("{tag}{pid}{i}b"));
        let q = q.to_string();
        if !ip(&[
            "link",
            "add",
            &a,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &b,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
        ]) {
            eprintln!("SKIPPED: cannot create veth pair {a} (needs root and iproute2)");
            return None;
        }
        guard.0.push(a.clone());
        for d in [&a, &b] {
            let _ = Command::new("sysctl")
                .args(["-qw", &format!("net.ipv6.conf.{d}.disable_ipv6=1")])
                .status();
            assert!(ip(&["link", "set", d, "mtu", &mtu]));
            assert!(ip(&["link", "set", d, "up"]));
        }
        pairs.push((a, b));
    }
    Some((guard, pairs))
}

fn node(text: &str) -> NodeConfig {
    NodeConfig::parse(text, "test.toml").expect("config")
}

/// A frame labelled `label` (TTL 64) to the satellite's gsl-a port.
fn labelled(f: &mut impl Frame, label: u32, i: u32) {
    labelled_len(f, label, i, 60)
}

/// As `labelled`, `len` bytes long.
fn labelled_len(f: &mut impl Frame, label: u32, i: u32, len: usize) {
    let mut b = Vec::with_capacity(len.max(60));
    b.extend_from_slice(&[0x02, 0, 0, 0, 0x01, 0x01]);
    b.extend_from_slice(&[0x02, 0, 0, 0, 0x0a, 0x02]);
    b.extend_from_slice(&[0x88, 0x47]);
    b.extend_from_slice(&((label << 12) | (1 << 8) | 64).to_be_bytes());
    // A minimal IPv4 header (transit does not look inside) and the index.
    b.extend_from_slice(&[0x45, 0, 0, 42, 0, 0, 0, 0, 64, 17, 0, 0]);
    b.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
    b.extend_from_slice(&i.to_be_bytes());
    b.resize(len, 0);
    assert!(f.append(b.len()));
    f.data_mut().copy_from_slice(&b);
}

#[test]
fn satellite_forwards_across_ports_in_one_umem_and_every_frame_returns() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let Some((_guard, pairs)) = veths("xp", 2) else {
        return;
    };
    let ((a_node, a_far), (b_node, b_far)) = (&pairs[0], &pairs[1]);
    let sat = node(&format!(
        r#"
[node]
name = "sat"
role = "satellite"
[io]
backend = "afxdp"
[[ports]]
name = "gsl-a"
mac = "02:00:00:00:01:01"
iface = "{a_node}"
rx_ring = 1024
tx_ring = 1024
[[ports]]
name = "gsl-b"
mac = "02:00:00:00:01:02"
iface = "{b_node}"
rx_ring = 1024
tx_ring = 1024
[[lfib]]
label = 1002
action = "swap"
out_label = 1003
port = "gsl-b"
next_hop_mac = "02:00:00:00:0b:02"
"#
    ));
    let far = |name: &str, iface: &str| {
        node(&format!(
            "[node]\nname = \"{name}\"\nrole = \"satellite\"\n[[ports]]\nname = \"p\"\nmac = \"02:00:00:00:0f:0f\"\niface = \"{iface}\"\nmode = \"copy\"\n"
        ))
    };
    let tables = Tables::from_config(&sat, 1).expect("tables");
    let mut ports = AfXdpNode::open(&sat, 1)
        .expect("open the satellite")
        .into_workers();
    let sat_ports = ports.pop().expect("one worker");
    assert!(
        sat_ports[0].umem().same(sat_ports[1].umem()),
        "one UMEM per worker"
    );
    assert_eq!(sat_ports[0].mode(), BindMode::Copy, "veth has no zero-copy");
    let umem = sat_ports[0].umem().clone();
    let mut worker = Worker::new(sat_ports);
    assert!(has_xdp(a_node) && has_xdp(b_node));

    let mut gen = AfXdpNode::open(&far("gen", a_far), 1)
        .expect("open the sender")
        .into_workers()
        .remove(0)
        .remove(0);
    let mut sink = AfXdpNode::open(&far("sink", b_far), 1)
        .expect("open the receiver")
        .into_workers()
        .remove(0)
        .remove(0);

    // Labelled frames; every 21st with a label the LFIB lacks, every 53rd
    // 1700 B long: longer than the default [io] mtu (1500) admits (1598 B)
    // but inside a UMEM chunk, so it reaches the port and must be counted.
    const TOTAL: u32 = 2140;
    let kind = |i: u32| match (i % 53, i % 21) {
        (52, _) => 2,
        (_, 20) => 1,
        _ => 0,
    };
    let count = |k: u32| (0..TOTAL).filter(|&i| kind(i) == k).count() as u32;
    let (good, bad, over) = (count(0), count(1), count(2));
    let mut sent = 0u32;
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut out = Batch::new();
    let mut rx = Batch::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (got.len() as u32) < good && Instant::now() < deadline {
        while sent < TOTAL && out.room() > 0 {
            let Some(mut f) = gen.alloc() else { break };
            match kind(sent) {
                0 => labelled(&mut f, 1002, sent),
                1 => labelled(&mut f, 999, sent),
                _ => labelled_len(&mut f, 1002, sent, 1700),
            }
            let _ = out.push(f);
            sent += 1;
        }
        gen.tx_burst(&mut out);
        gen.rx_burst(&mut rx); // reaps completions, kicks TX
        rx.clear();
        worker.poll(&tables);
        sink.rx_burst(&mut rx);
        for (f, _) in std::iter::from_fn(|| rx.pop()) {
            got.push(f.data().to_vec());
        }
    }
    assert_eq!(got.len() as u32, good, "frames forwarded (sent {sent})");
    for f in &got {
        assert_eq!(&f[..6], &[2, 0, 0, 0, 0x0b, 0x02], "next hop MAC");
        assert_eq!(&f[6..12], &[2, 0, 0, 0, 0x01, 0x02], "gsl-b's MAC");
        let e = u32::from_be_bytes([f[14], f[15], f[16], f[17]]);
        assert_eq!(e >> 12, 1003, "swapped label");
        assert_eq!(e & 0xff, 63, "TTL decremented");
    }
    // The last frames may still be on their way through the sender.
    let settle = Instant::now() + Duration::from_secs(2);
    while worker.stats.ports[0].rx_packets < u64::from(TOTAL) && Instant::now() < settle {
        gen.tx_burst(&mut out);
        gen.rx_burst(&mut rx);
        rx.clear();
        worker.poll(&tables);
    }
    let s = &worker.stats;
    assert_eq!(s.ports[0].rx_packets, u64::from(TOTAL));
    assert_eq!(s.ports[1].tx_packets, u64::from(good));
    assert_eq!(
        s.drops.get(DropReason::NoRoute),
        u64::from(bad),
        "unknown labels counted"
    );
    assert_eq!(
        s.drops.get(DropReason::Oversize),
        u64::from(over),
        "long frames counted"
    );
    assert_eq!(s.drops.total(), u64::from(bad + over));
    assert!(
        worker.ports().iter().all(|p| p.copied() == 0),
        "RX -> TX without a copy"
    );
    // Two sockets and our clone hold the UMEM; no frame is left outside a ring.
    assert_eq!(umem.references(), 3, "frames leaked");
    let ports: Vec<AfXdpPort> = worker.into_ports();
    drop(ports);
    assert_eq!(umem.references(), 1);
    assert!(
        !xdp_stays(a_node) && !xdp_stays(b_node),
        "the program goes with the sockets"
    );
    drop((gen, sink));
    assert!(!xdp_stays(a_far) && !xdp_stays(b_far));
}

/// A satellite (`[io] mtu = io_mtu`) swapping label 1002 to 1003 from
/// gsl-a to gsl-b, on veths of MTU `veth_mtu`, with meshplane's own ports
/// (copy mode) at the far ends as sender and receiver.
struct Rig {
    _links: Links,
    /// The satellite's two interfaces.
    ifaces: [String; 2],
    tables: Tables,
    worker: Worker<AfXdpPort>,
    gen: AfXdpPort,
    sink: AfXdpPort,
}

fn rig(tag: &str, veth_mtu: u32, io_mtu: u16) -> Option<Rig> {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let (links, pairs) = veths_with(tag, 2, 1, veth_mtu)?;
    let ((a_node, a_far), (b_node, b_far)) = (&pairs[0], &pairs[1]);
    let sat = node(&format!(
        r#"
[node]
name = "sat"
role = "satellite"
[io]
backend = "afxdp"
mtu = {io_mtu}
[[ports]]
name = "gsl-a"
mac = "02:00:00:00:01:01"
iface = "{a_node}"
rx_ring = 512
tx_ring = 512
[[ports]]
name = "gsl-b"
mac = "02:00:00:00:01:02"
iface = "{b_node}"
rx_ring = 512
tx_ring = 512
[[lfib]]
label = 1002
action = "swap"
out_label = 1003
port = "gsl-b"
next_hop_mac = "02:00:00:00:0b:02"
"#
    ));
    let far = |name: &str, iface: &str| {
        let text = format!(
            "[node]\nname = \"{name}\"\nrole = \"satellite\"\n[io]\nmtu = {io_mtu}\n[[ports]]\nname = \"p\"\nmac = \"02:00:00:00:0f:0f\"\niface = \"{iface}\"\nmode = \"copy\"\nrx_ring = 512\ntx_ring = 512\n"
        );
        AfXdpNode::open(&node(&text), 1)
            .expect("open a far end")
            .into_workers()
            .remove(0)
            .remove(0)
    };
    let tables = Tables::from_config(&sat, 1).expect("tables");
    let sat_ports = AfXdpNode::open(&sat, 1)
        .expect("open the satellite")
        .into_workers()
        .pop()
        .expect("one worker");
    assert!(sat_ports[0].umem().same(sat_ports[1].umem()));
    Some(Rig {
        ifaces: [a_node.clone(), b_node.clone()],
        _links: links,
        tables,
        worker: Worker::new(sat_ports),
        gen: far("gen", a_far),
        sink: far("sink", b_far),
    })
}

#[test]
fn satellite_forwards_jumbo_frames_over_multi_buffer_af_xdp_byte_for_byte() {
    // veth's MTU above the ports', so that the too-long frames reach them.
    let Some(Rig {
        _links,
        tables,
        mut worker,
        mut gen,
        mut sink,
        ifaces: _,
    }) = rig("xg", 9300, 9000)
    else {
        return;
    };
    let umem = worker.ports()[0].umem().clone();
    assert_eq!(umem.chunk_size(), 4096, "page chunks");
    assert!(umem.jumbo_slots() > 0, "and jumbo slots for 9098 B frames");

    // Links of mtu 9080 (9000 + 80): the largest untagged frame a port
    // sends is 9094 B. Mixed in one stream: small frames, frames of one
    // page and a bit, the largest, and every 7th 9200 B (past the 9098 B a
    // port receives, inside veth's MTU: counted as oversize, whole).
    const TOTAL: u32 = 400;
    const LONG: usize = 9200;
    let len_of = |i: u32| match i % 7 {
        6 => LONG,
        0 => 64,
        1 => 4097,
        2 => 1514,
        _ => 9094,
    };
    let over = (0..TOTAL).filter(|&i| len_of(i) == LONG).count() as u32;
    let good = TOTAL - over;
    let mut sent = 0u32;
    let mut want: std::collections::HashMap<u32, Vec<u8>> = Default::default();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut out = Batch::new();
    let mut rx = Batch::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (got.len() as u32) < good && Instant::now() < deadline {
        while sent < TOTAL && out.room() > 0 {
            let len = len_of(sent);
            let Some(mut f) = gen.alloc_len(len) else {
                break;
            };
            labelled_len(&mut f, 1002, sent, len);
            for (k, b) in f.data_mut()[42..].iter_mut().enumerate() {
                *b = (k as u32).wrapping_mul(31).wrapping_add(sent) as u8;
            }
            if len != LONG {
                want.insert(sent, f.data().to_vec());
            }
            let _ = out.push(f);
            sent += 1;
        }
        gen.tx_burst(&mut out);
        gen.rx_burst(&mut rx);
        rx.clear();
        worker.poll(&tables);
        sink.rx_burst(&mut rx);
        for (f, _) in std::iter::from_fn(|| rx.pop()) {
            got.push(f.data().to_vec());
        }
    }
    assert_eq!(got.len() as u32, good, "frames forwarded (sent {sent})");
    let index = |f: &[u8]| u32::from_be_bytes([f[38], f[39], f[40], f[41]]);
    let mut seen = std::collections::HashSet::new();
    for g in &got {
        let i = index(g);
        let w = want.get(&i).expect("a frame that was sent");
        assert!(seen.insert(i), "each frame once");
        assert_eq!(g.len(), w.len(), "whole frame {i}");
        assert_eq!(&g[..6], &[2, 0, 0, 0, 0x0b, 0x02], "next hop MAC");
        let e = u32::from_be_bytes([g[14], g[15], g[16], g[17]]);
        assert_eq!((e >> 12, e & 0xff), (1003, 63), "swapped label, TTL");
        assert_eq!(
            (18..g.len()).find(|&k| g[k] != w[k]),
            None,
            "payload byte for byte"
        );
    }
    let settle = Instant::now() + Duration::from_secs(2);
    while worker.stats.ports[0].rx_packets < u64::from(TOTAL) && Instant::now() < settle {
        gen.tx_burst(&mut out);
        worker.poll(&tables);
    }
    let s = &worker.stats;
    assert_eq!(s.ports[0].rx_packets, u64::from(TOTAL));
    let bytes: u64 = (0..TOTAL).map(|i| len_of(i) as u64).sum();
    assert_eq!(
        s.ports[0].rx_bytes, bytes,
        "received bytes count whole frames"
    );
    assert_eq!(s.ports[1].tx_packets, u64::from(good));
    assert_eq!(s.drops.get(DropReason::Oversize), u64::from(over));
    // Every slot and chunk comes back once the kernel is done.
    drop(worker);
    drop((gen, sink));
    let settle = Instant::now() + Duration::from_secs(2);
    while umem.references() > 1 && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        umem.free_jumbo(),
        umem.jumbo_slots(),
        "every jumbo slot returned"
    );
}

#[test]
fn satellite_forwards_frames_of_the_largest_af_xdp_mtu_byte_for_byte() {
    // veth's MTU above [io] mtu, so that the too-long frames reach the port.
    let Some(Rig {
        _links,
        tables,
        mut worker,
        mut gen,
        mut sink,
        ifaces,
    }) = rig("xj", 4000, 3710)
    else {
        return;
    };
    let umem = worker.ports()[0].umem().clone();
    assert_eq!(umem.chunk_size(), 4096, "chunks for 3808 B frames");
    // veth refuses native XDP at this MTU (more than one page per packet
    // for a program without frags): generic XDP, which copies into a chunk.
    assert_eq!(worker.ports()[0].xdp_mode(), XdpAttachMode::Generic);

    // 3710 B IP packets under one label: 3728 B frames, the most [io] mtu
    // 3710 admits with Ethernet and one label. Every 7th frame 3830 B: past
    // the 3808 B the node admits but inside a chunk (3840 B after the
    // kernel's headroom), so it reaches the port and is counted as oversize.
    const TOTAL: u32 = 600;
    const GOOD: usize = 14 + 4 + 3710;
    const LONG: usize = 3830;
    let long = |i: u32| i % 7 == 6;
    let over = (0..TOTAL).filter(|&i| long(i)).count() as u32;
    let good = TOTAL - over;
    let mut sent = 0u32;
    let mut want: Vec<Vec<u8>> = Vec::new();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut out = Batch::new();
    let mut rx = Batch::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (got.len() as u32) < good && Instant::now() < deadline {
        while sent < TOTAL && out.room() > 0 {
            let Some(mut f) = gen.alloc() else { break };
            let len = if long(sent) { LONG } else { GOOD };
            labelled_len(&mut f, 1002, sent, len);
            // A payload pattern that differs per frame and per byte.
            for (k, b) in f.data_mut()[42..].iter_mut().enumerate() {
                *b = (k as u32).wrapping_mul(31).wrapping_add(sent) as u8;
            }
            if !long(sent) {
                want.push(f.data().to_vec());
            }
            let _ = out.push(f);
            sent += 1;
        }
        gen.tx_burst(&mut out);
        gen.rx_burst(&mut rx);
        rx.clear();
        worker.poll(&tables);
        sink.rx_burst(&mut rx);
        for (f, _) in std::iter::from_fn(|| rx.pop()) {
            got.push(f.data().to_vec());
        }
    }
    assert_eq!(got.len() as u32, good, "frames forwarded (sent {sent})");
    // veth may reorder across CPUs' backlogs: match frames by their index.
    let index = |f: &[u8]| u32::from_be_bytes([f[38], f[39], f[40], f[41]]);
    let want: std::collections::HashMap<u32, Vec<u8>> =
        want.into_iter().map(|f| (index(&f), f)).collect();
    let mut seen = std::collections::HashSet::new();
    for g in &got {
        let w = want.get(&index(g)).expect("a frame that was sent");
        assert!(seen.insert(index(g)), "each frame once");
        assert_eq!(g.len(), GOOD, "whole frame");
        assert_eq!(&g[..6], &[2, 0, 0, 0, 0x0b, 0x02], "next hop MAC");
        assert_eq!(&g[6..12], &[2, 0, 0, 0, 0x01, 0x02], "gsl-b's MAC");
        let e = u32::from_be_bytes([g[14], g[15], g[16], g[17]]);
        assert_eq!(e >> 12, 1003, "swapped label");
        assert_eq!(e & 0xff, 63, "TTL decremented");
        assert_eq!(&g[12..14], &w[12..14]);
        assert_eq!(
            (18..GOOD).find(|&k| g[k] != w[k]),
            None,
            "payload byte for byte"
        );
    }
    let settle = Instant::now() + Duration::from_secs(2);
    while worker.stats.ports[0].rx_packets < u64::from(TOTAL) && Instant::now() < settle {
        gen.tx_burst(&mut out);
        gen.rx_burst(&mut rx);
        rx.clear();
        worker.poll(&tables);
    }
    let s = &worker.stats;
    assert_eq!(s.ports[0].rx_packets, u64::from(TOTAL));
    assert_eq!(s.ports[1].tx_packets, u64::from(good));
    assert_eq!(
        s.drops.get(DropReason::Oversize),
        u64::from(over),
        "3830 B frames counted as oversize"
    );
    assert_eq!(s.drops.total(), u64::from(over));
    assert!(worker.ports().iter().all(|p| p.copied() == 0));
    assert_eq!(umem.references(), 3, "frames leaked");
    drop(worker.into_ports());
    drop((gen, sink));
    assert!(!xdp_stays(&ifaces[0]) && !xdp_stays(&ifaces[1]));
}

fn open_err(text: &str) -> AfXdpError {
    AfXdpNode::open(&node(text), 1).expect_err("must fail")
}

#[test]
fn misconfigurations_say_what_to_do() {
    let Some((_guard, pairs)) = veths("xe", 1) else {
        return;
    };
    let (a, _) = &pairs[0];
    let port = |extra: &str| {
        format!(
            "[node]\nname = \"n\"\nrole = \"satellite\"\n[io]\nbackend = \"afxdp\"\n[[ports]]\nname = \"p\"\nmac = \"02:00:00:00:0f:0f\"\n{extra}\n"
        )
    };

    let e = open_err(&port("iface = \"nosuch0\""));
    assert!(
        e.to_string().contains("no network interface \"nosuch0\""),
        "{e}"
    );

    let e = open_err(&port(&format!("iface = \"{a}\"\nqueues = [3]")));
    assert!(
        e.to_string()
            .contains("no RX queue 3 (the interface has 1)"),
        "{e}"
    );
    assert!(!xdp_stays(a));

    let e = open_err(&port(&format!("iface = \"{a}\"\nmode = \"zerocopy\"")));
    assert!(
        e.to_string().contains("does not support AF_XDP zero-copy"),
        "{e}"
    );
    assert!(e.to_string().contains("mode = \"auto\" or \"copy\""), "{e}");
    assert!(!xdp_stays(a), "a failed open leaves nothing attached");

    let held = AfXdpNode::open(&node(&port(&format!("iface = \"{a}\""))), 1).expect("first");
    let e = open_err(&port(&format!("iface = \"{a}\"")));
    assert!(
        e.to_string().contains("another XDP program is attached"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(&format!("ip link set dev {a} xdp off")),
        "{e}"
    );
    drop(held);
    assert!(!xdp_stays(a));

    // A driver without native XDP (a bridge): generic XDP and copy mode,
    // unless zero-copy was demanded.
    let bridge = format!("xe{}d", std::process::id() % 100_000);
    assert!(ip(&["link", "add", &bridge, "type", "bridge"]));
    let _bridge = Links(vec![bridge.clone()]);
    assert!(ip(&["link", "set", &bridge, "up"]));
    let e = open_err(&port(&format!("iface = \"{bridge}\"\nmode = \"zerocopy\"")));
    assert!(
        e.to_string()
            .contains("the driver has no native XDP support"),
        "{e}"
    );
    assert!(
        e.to_string().contains("use mode = \"auto\" or \"copy\""),
        "{e}"
    );
    let n =
        AfXdpNode::open(&node(&port(&format!("iface = \"{bridge}\""))), 1).expect("generic XDP");
    let p = &n.workers()[0][0];
    assert_eq!(
        (p.xdp_mode(), p.mode()),
        (XdpAttachMode::Generic, BindMode::Copy)
    );
    drop(n);
    assert!(!xdp_stays(&bridge));

    // The command line names the problem and the file.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("afxdp-err-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let cfg = dir.join("n.toml");
    std::fs::write(&cfg, port("iface = \"nosuch0\"")).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_meshplane"))
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--seconds", "1"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("node n over AF_XDP: no network interface \"nosuch0\""),
        "{err}"
    );
    // Without privileges, and without the right to lock the UMEM: the
    // same binary under util-linux's setpriv/prlimit.
    std::fs::write(&cfg, port(&format!("iface = \"{a}\""))).expect("write");
    let limited = |pre: &[&str]| {
        let out = Command::new(pre[0])
            .args(&pre[1..])
            .arg(env!("CARGO_BIN_EXE_meshplane"))
            .args(["run", "--config"])
            .arg(&cfg)
            .args(["--seconds", "0.2"])
            .output()
            .expect("setpriv and prlimit come with util-linux");
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = limited(&["setpriv", "--inh-caps=-all", "--bounding-set=-all"]);
    assert!(
        err.contains("permission denied; AF_XDP needs root, or CAP_NET_ADMIN"),
        "{err}"
    );
    let err = limited(&[
        "prlimit",
        "--memlock=65536:65536",
        "setpriv",
        "--bounding-set=-all,+net_admin,+net_raw,+bpf,+sys_admin",
    ]);
    assert!(err.contains("RLIMIT_MEMLOCK is 65536 bytes and could not be raised; raise it (`ulimit -l unlimited`"), "{err}");
    assert!(!xdp_stays(a), "a failed run leaves nothing attached");
    std::fs::write(&cfg, port("")).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_meshplane"))
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("n.toml:7: port \"p\": [io] backend = \"afxdp\" needs the port's interface"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn auto_backend_falls_back_to_af_xdp_and_says_why() {
    let Some((_guard, pairs)) = veths("xa", 1) else {
        return;
    };
    let (a, _) = &pairs[0];
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("afxdp-auto-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let run = |port: &str| {
        let cfg = dir.join("auto.toml");
        std::fs::write(
            &cfg,
            format!(
                "[node]\nname = \"auto-{}\"\nrole = \"satellite\"\n[io]\nbackend = \"auto\"\neal_args = [\"--no-telemetry\"]\n[[ports]]\nname = \"p\"\nmac = \"02:00:00:00:0f:0f\"\n{port}\n",
                std::process::id()
            ),
        )
        .expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_meshplane"))
            .env("NO_COLOR", "1")
            .args(["run", "--config"])
            .arg(&cfg)
            .args(["--seconds", "0.3"])
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        assert!(err.contains("backend=\"afxdp\""), "{err}");
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("1 worker(s)"),
            "{err}"
        );
        assert!(!xdp_stays(a));
        err
    };
    let err = run(&format!("iface = \"{a}\""));
    assert!(
        err.contains("backend auto: port \"p\" names no `dpdk` device; falling back to AF_XDP"),
        "{err}"
    );
    if cfg!(feature = "dpdk") {
        let err = run(&format!(
            "iface = \"{a}\"\ndpdk = \"net_af_xdp0,iface=nosuch0\""
        ));
        let line = err
            .lines()
            .find(|l| l.contains("backend auto: DPDK failed"))
            .unwrap_or_else(|| panic!("no reason given:\n{err}"));
        assert!(line.ends_with("falling back to AF_XDP"), "{line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn each_worker_polls_its_own_queue_with_its_own_umem() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let Some((_guard, pairs)) = veths_with_queues("xq", 2, 2) else {
        return;
    };
    let ((a_node, a_far), (b_node, b_far)) = (&pairs[0], &pairs[1]);
    let sat = node(&format!(
        r#"
[node]
name = "sat"
role = "satellite"
[[ports]]
name = "gsl-a"
mac = "02:00:00:00:01:01"
iface = "{a_node}"
rx_ring = 512
tx_ring = 512
[[ports]]
name = "gsl-b"
mac = "02:00:00:00:01:02"
iface = "{b_node}"
queues = [1, 0]
rx_ring = 512
tx_ring = 512
[[lfib]]
label = 1002
action = "swap"
out_label = 1003
port = "gsl-b"
next_hop_mac = "02:00:00:00:0b:02"
"#
    ));
    let far = |name: &str, iface: &str| {
        node(&format!(
            "[node]\nname = \"{name}\"\nrole = \"satellite\"\n[[ports]]\nname = \"p\"\nmac = \"02:00:00:00:0f:0f\"\niface = \"{iface}\"\nrx_ring = 512\ntx_ring = 512\n"
        ))
    };
    let tables = Tables::from_config(&sat, 1).expect("tables");
    let node = AfXdpNode::open(&sat, 2).expect("open the satellite");
    let w = node.workers();
    assert_eq!(w.len(), 2);
    assert_eq!(
        (w[0][0].queue(), w[0][1].queue()),
        (0, 1),
        "worker 0's queues"
    );
    assert_eq!(
        (w[1][0].queue(), w[1][1].queue()),
        (1, 0),
        "worker 1's queues"
    );
    assert!(w[0][0].umem().same(w[0][1].umem()) && !w[0][0].umem().same(w[1][0].umem()));
    let mut workers: Vec<Worker<AfXdpPort>> =
        node.into_workers().into_iter().map(Worker::new).collect();
    // One sender per queue of the far end: a veth delivers what leaves on
    // TX queue q on the peer's RX queue q.
    let mut gens: Vec<AfXdpPort> = AfXdpNode::open(&far("gen", a_far), 2)
        .expect("senders")
        .into_workers()
        .into_iter()
        .flatten()
        .collect();
    let mut sinks: Vec<AfXdpPort> = AfXdpNode::open(&far("sink", b_far), 2)
        .expect("receivers")
        .into_workers()
        .into_iter()
        .flatten()
        .collect();
    const N: u32 = 500;
    let mut sent = [0u32; 2];
    let mut got = 0u32;
    let mut b = Batch::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got < 2 * N && Instant::now() < deadline {
        for (q, g) in gens.iter_mut().enumerate() {
            while sent[q] < N && b.room() > 0 {
                let Some(mut f) = g.alloc() else { break };
                labelled(&mut f, 1002, sent[q]);
                let _ = b.push(f);
                sent[q] += 1;
            }
            let _ = g.tx_burst(&mut b);
            sent[q] -= b.len() as u32;
            b.clear();
            g.rx_burst(&mut b);
            b.clear();
        }
        for w in workers.iter_mut() {
            w.poll(&tables);
        }
        for s in sinks.iter_mut() {
            got += s.rx_burst(&mut b) as u32;
            b.clear();
        }
    }
    assert_eq!(got, 2 * N, "frames through both workers");
    for (i, w) in workers.iter().enumerate() {
        assert_eq!(
            w.stats.ports[0].rx_packets,
            u64::from(N),
            "worker {i} received its queue's frames"
        );
        assert_eq!(
            w.stats.ports[1].tx_packets,
            u64::from(N),
            "worker {i} sent them"
        );
    }
}

#[test]
fn a_killed_node_leaves_no_xdp_program_behind() {
    let Some((_guard, pairs)) = veths("xk", 1) else {
        return;
    };
    let (a, _) = &pairs[0];
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("afxdp-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let cfg = dir.join("k.toml");
    std::fs::write(
        &cfg,
        format!(
            "[node]\nname = \"k\"\nrole = \"satellite\"\n[io]\nbackend = \"afxdp\"\n[[ports]]\nname = \"p\"\nmac = \"02:00:00:00:0f:0f\"\niface = \"{a}\"\n"
        ),
    )
    .expect("write");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshplane"));
    cmd.args(["run", "--config"]).arg(&cfg);
    let mut node = common::Proc::spawn(cmd);
    node.wait_for("running node=", Duration::from_secs(30));
    assert!(has_xdp(a));
    // SIGKILL: no destructor runs; the kernel closes the BPF link.
    node.child.kill().expect("kill");
    let _ = node.child.wait();
    assert!(!xdp_stays(a), "the XDP program outlived its process");
    let _ = std::fs::remove_dir_all(&dir);
}
