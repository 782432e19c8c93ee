//! `meshplane replay --io dpdk` against `--io pcap`, as a user compares
//! them: the same capture through gateway A over both backends must give
//! byte-identical output and the same report, for frames from 64 B to
//! jumbo size, frames beyond the configured MTU, records no backend can
//! carry, snap-length captures and pcapng files with several sections and
//! interfaces. Every run is its own process (EAL initialises once per
//! process).
#![cfg(feature = "dpdk")]

use std::path::{Path, PathBuf};
use std::process::Command;

use meshplane::gen::{generate, FrameSize, GenSpec};
use meshplane::io::pcap::{read_file, CaptureWriter, CapturedPacket};

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");
const GW_A: &str = include_str!("../configs/gw-a.toml");

fn tmpdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("dpdk-replay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

/// Gateway A's configuration with `[io] mtu` (when given), under a node
/// name of its own (EAL's file prefix follows it).
fn gw_a(dir: &Path, tag: &str, mtu: Option<u16>) -> PathBuf {
    let io = match mtu {
        Some(m) => format!("\n[io]\nmtu = {m}\n"),
        None => String::new(),
    };
    let text = GW_A.replacen(
        "name = \"gw-a\"\nrole = \"gateway\"\n",
        &format!(
            "name = \"gw-a-{tag}-{}\"\nrole = \"gateway\"\n{io}",
            std::process::id()
        ),
        1,
    );
    assert_ne!(text, GW_A, "gateway A's [node] section changed");
    let path = dir.join(format!("gw-a-{tag}.toml"));
    std::fs::write(&path, text).expect("write config");
    path
}

/// Runs `meshplane replay` over `io`; returns the report (stdout) and the
/// frames written.
fn replay(config: &Path, input: &Path, io: &str) -> (String, Vec<Vec<u8>>) {
    let out_file = input.with_extension(format!("{io}.out.pcap"));
    let out = Command::new(BIN)
        .args(["replay", "--rx-port", "lan0", "--io", io, "--config"])
        .arg(config)
        .arg("--pcap")
        .arg(input)
        .arg("--out")
        .arg(&out_file)
        .output()
        .expect("start meshplane");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "meshplane replay --io {io} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (frames, _) = read_file(&out_file).expect("read output");
    (stdout, frames.into_iter().map(|p| p.data).collect())
}

/// The report without its timing figures: the counts of the first line,
/// then every port, drop and skip line.
fn counts(report: &str) -> Vec<String> {
    let mut v = Vec::new();
    for l in report.lines() {
        if l.starts_with("node ") {
            v.push(l.split(" in ").next().unwrap_or(l).to_string());
        } else if !l.trim_start().starts_with("latency") {
            v.push(l.to_string());
        }
    }
    v
}

fn frame(size: usize, i: u64) -> CapturedPacket {
    let mut p = generate(&GenSpec {
        count: i + 1,
        size: FrameSize::Fixed(size.min(9014) + 4),
        ..GenSpec::default()
    })
    .expect("traffic")
    .pop()
    .expect("one frame");
    // Beyond what `gen` makes: padding after the IP packet, which the
    // frame-size checks see and the stages never read.
    p.data.resize(size, 0);
    p
}

fn write_pcap(path: &Path, pkts: &[CapturedPacket]) {
    let mut w = CaptureWriter::create(path).expect("create");
    for p in pkts {
        w.write(p.ts, &p.data).expect("write");
    }
    w.finish().expect("finish");
}

/// Compares both backends on `input` under `config`; returns the report.
fn both_agree(config: &Path, input: &Path) -> (String, Vec<Vec<u8>>) {
    let (pcap_report, pcap_out) = replay(config, input, "pcap");
    let (dpdk_report, dpdk_out) = replay(config, input, "dpdk");
    assert_eq!(
        counts(&dpdk_report),
        counts(&pcap_report),
        "reports differ:\n--io dpdk\n{dpdk_report}\n--io pcap\n{pcap_report}"
    );
    assert_eq!(
        dpdk_out.len(),
        pcap_out.len(),
        "{dpdk_report}\n{pcap_report}"
    );
    assert!(
        dpdk_out == pcap_out,
        "--io dpdk output differs from --io pcap's"
    );
    (pcap_report, pcap_out)
}

#[test]
fn jumbo_frames_replay_alike_over_dpdk_and_pcap_and_oversize_is_counted() {
    let dir = tmpdir("jumbo");
    // 64 B to jumbo; 9018 B is the largest frame a LAN port of mtu 9000
    // admits (9000 + Ethernet + a VLAN tag); 9098 and 9099 exceed it;
    // 70000 no backend holds.
    let sizes = [
        64usize, 128, 1514, 1598, 1599, 2049, 4000, 9014, 9018, 9098, 9099, 64, 70_000,
    ];
    let pkts: Vec<CapturedPacket> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| frame(n, i as u64))
        .collect();
    // A file with a record over 65535 B needs a larger snap length than
    // CaptureWriter writes: build it by hand.
    let input = dir.join("in.pcap");
    let mut b = Vec::new();
    for w in [0xa1b2_3c4du32, 0x0004_0002, 0, 0, 262_144, 1] {
        b.extend_from_slice(&w.to_le_bytes());
    }
    for (i, p) in pkts.iter().enumerate() {
        for w in [
            1_700_000_000,
            i as u32,
            p.data.len() as u32,
            p.data.len() as u32,
        ] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(&p.data);
    }
    std::fs::write(&input, b).expect("write input");

    let cfg = gw_a(&dir, "jumbo", Some(9000));
    let (report, out) = both_agree(&cfg, &input);
    // Every frame up to 9018 B is encrypted and sent (the uplink's default
    // mtu, 9080, has room for the tunnel); 9098 and 9099 are dropped as
    // oversize (and their bytes count as received); 70000 is skipped.
    let admitted: Vec<usize> = sizes.iter().copied().filter(|&n| n <= 9018).collect();
    assert_eq!(out.len(), admitted.len(), "{report}");
    assert!(
        report.contains("12 packets in, 10 out, 2 dropped"),
        "{report}"
    );
    assert!(report.contains("drop oversize       2"), "{report}");
    let rx_bytes: usize = sizes.iter().filter(|&&n| n <= 65_535).sum();
    assert!(
        report.contains(&format!("rx         12 pkts {rx_bytes:>12} B")),
        "{report}"
    );
    assert!(
        report.contains("skipped 1 records longer than 65535 B"),
        "{report}"
    );

    // The default MTU (1500) admits frames up to 1518 B on both backends,
    // and the uplink (1580 by default) carries each of them tunnelled.
    let cfg = gw_a(&dir, "mtu1500", None);
    let (report, out) = both_agree(&cfg, &input);
    let over = sizes.iter().filter(|&&n| n > 1518 && n <= 65_535).count();
    assert_eq!(out.len(), 12 - over, "{report}");
    assert!(
        report.contains(&format!("drop oversize       {over}")),
        "{report}"
    );
    assert!(!report.contains("drop too_big"), "{report}");

    // An uplink of 1500: the tunnel through it carries IP packets of up to
    // 1442 B, so the 1514 B frame (a 1500 B packet) is too big for it.
    let text = std::fs::read_to_string(&cfg).expect("config");
    let narrow = text.replacen("name = \"up0\"\n", "name = \"up0\"\nmtu = 1500\n", 1);
    assert_ne!(narrow, text, "gateway A's up0 port changed");
    let cfg = dir.join("gw-a-narrow.toml");
    std::fs::write(&cfg, narrow).expect("write config");
    let (report, out) = both_agree(&cfg, &input);
    assert_eq!(out.len(), 12 - over - 1, "{report}");
    assert!(report.contains("drop too_big        1"), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_snap_length_capture_replays_as_captured_over_both_backends() {
    let dir = tmpdir("snap");
    let full = dir.join("full.pcap");
    let pkts: Vec<CapturedPacket> = (0..20).map(|i| frame(64 + 50 * i, i as u64)).collect();
    write_pcap(&full, &pkts);
    // What `tcpdump -s 64` would have captured of the same traffic.
    let snap = dir.join("snap.pcap");
    let st = Command::new("editcap")
        .args(["-F", "pcap", "-s", "64"])
        .arg(&full)
        .arg(&snap)
        .status()
        .expect("editcap");
    assert!(st.success());
    let cfg = gw_a(&dir, "snap", None);
    let (report, _) = both_agree(&cfg, &snap);
    assert!(report.contains("20 packets in"), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A pcapng block: type, length, body, length, in the section's byte order.
fn block(out: &mut Vec<u8>, be: bool, kind: u32, body: &[u8]) {
    let w = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let pad = (4 - body.len() % 4) % 4;
    let len = (12 + body.len() + pad) as u32;
    out.extend_from_slice(&w(kind));
    out.extend_from_slice(&w(len));
    out.extend_from_slice(body);
    out.extend(std::iter::repeat_n(0, pad));
    out.extend_from_slice(&w(len));
}

/// A pcapng file of `sections`, each in its byte order, with `ifaces`
/// Ethernet interfaces (alternating nanosecond and microsecond
/// timestamps); the packets are spread over the interfaces in turn.
fn pcapng(sections: &[(bool, u32, &[CapturedPacket])]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(be, ifaces, pkts) in sections {
        let w32 = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let w16 = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut shb = Vec::new();
        shb.extend_from_slice(&w32(0x1a2b_3c4d));
        shb.extend_from_slice(&w16(1));
        shb.extend_from_slice(&w16(0));
        shb.extend_from_slice(&u64::MAX.to_le_bytes());
        block(&mut out, be, 0x0a0d_0d0a, &shb);
        for i in 0..ifaces {
            let mut idb = Vec::new();
            idb.extend_from_slice(&w16(1));
            idb.extend_from_slice(&w16(0));
            idb.extend_from_slice(&w32(0));
            let resol = if i % 2 == 0 { 9 } else { 6 };
            idb.extend_from_slice(&w16(9));
            idb.extend_from_slice(&w16(1));
            idb.extend_from_slice(&[resol, 0, 0, 0]);
            idb.extend_from_slice(&[0; 4]);
            block(&mut out, be, 1, &idb);
        }
        for (k, p) in pkts.iter().enumerate() {
            let iface = k as u32 % ifaces;
            let mut epb = Vec::new();
            epb.extend_from_slice(&w32(iface));
            epb.extend_from_slice(&w32(0));
            epb.extend_from_slice(&w32(1_000 + k as u32));
            epb.extend_from_slice(&w32(p.data.len() as u32));
            epb.extend_from_slice(&w32(p.data.len() as u32));
            epb.extend_from_slice(&p.data);
            epb.extend(std::iter::repeat_n(0, (4 - p.data.len() % 4) % 4));
            block(&mut out, be, 6, &epb);
        }
    }
    out
}

#[test]
fn a_multi_section_multi_interface_pcapng_replays_every_packet_over_dpdk() {
    let dir = tmpdir("pcapng");
    let pkts: Vec<CapturedPacket> = (0..30).map(|i| frame(64 + 40 * i, i as u64)).collect();
    let input = dir.join("in.pcapng");
    std::fs::write(
        &input,
        pcapng(&[
            (false, 2, &pkts[..10]),
            (true, 3, &pkts[10..20]),
            (false, 1, &pkts[20..]),
        ]),
    )
    .expect("write input");
    let (read, info) = read_file(&input).expect("meshplane reads it");
    assert!(info.pcapng);
    assert_eq!(read.len(), 30);
    let cfg = gw_a(&dir, "pcapng", None);
    let (report, out) = both_agree(&cfg, &input);
    assert!(report.contains("30 packets in, 30 out"), "{report}");
    assert_eq!(out.len(), 30);
    let _ = std::fs::remove_dir_all(&dir);
}
