//! The command line as a user drives it: `meshplane gen` and `meshplane
//! replay` through gateway A, satellite 1 and gateway B over pcap files,
//! with tshark (Wireshark's own RFC 4106 implementation) reading and
//! decrypting what the gateways send.

use meshplane::chain::{forwarded, inner_ip};
use meshplane::io::pcap::read_file;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");
const CONFIGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs");
const KEY_A_TO_B: &str = "0x4c80cdefbb5d10da906ac73c3613a6342e443b68";

fn tmpdir(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("meshplane-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn meshplane(args: &[&str]) -> std::process::Output {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run meshplane");
    assert!(
        out.status.success(),
        "meshplane {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// tshark field extraction, one Vec per packet.
fn tshark(file: &Path, extra: &[&str], fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(file)
        .args(extra)
        .args(["-T", "fields", "-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark is installed by scripts/setup");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

fn esp_sa(src: &str, dst: &str, spi: u32, key: &str) -> Vec<String> {
    vec![
        "-o".into(),
        "esp.enable_encryption_decode:TRUE".into(),
        "-o".into(),
        "esp.enable_authentication_check:TRUE".into(),
        "-o".into(),
        format!(
            "uat:esp_sa:\"IPv4\",\"{src}\",\"{dst}\",\"0x{spi:08x}\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"{key}\",\"NULL\",\"\""
        ),
    ]
}

#[test]
fn chain_over_pcap_files_decodes_in_tshark_and_returns_every_packet() {
    let d = tmpdir("chain");
    let n = 300;
    let input = d.join("in.pcap");
    meshplane(&[
        "gen",
        "--out",
        s(&input),
        "--count",
        &n.to_string(),
        "--size",
        "imix",
        "--flows",
        "8",
    ]);
    let gw_a = d.join("gw-a.pcap");
    let sat = d.join("sat.pcap");
    let gw_b = d.join("gw-b.pcap");
    let cfg = |n: &str| format!("{CONFIGS}/{n}.toml");
    let out = meshplane(&[
        "replay",
        "--config",
        &cfg("gw-a"),
        "--pcap",
        s(&input),
        "--out",
        s(&gw_a),
        "--rx-port",
        "lan0",
    ]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("300 packets in, 300 out, 0 dropped"),
        "{report}"
    );
    meshplane(&[
        "replay",
        "--config",
        &cfg("sat-1"),
        "--pcap",
        s(&gw_a),
        "--out",
        s(&sat),
    ]);
    meshplane(&[
        "replay",
        "--config",
        &cfg("gw-b"),
        "--pcap",
        s(&sat),
        "--out",
        s(&gw_b),
    ]);

    // Gateway A's uplink: MPLS label 1002 (S=1, TTL 64) / IPv4 192.0.2.1 ->
    // 192.0.2.2 / ESP SPI 0x1001, sequence 1..n; Wireshark verifies every
    // ICV and finds the inner UDP packets to 10.2.0.0/16.
    let sa = esp_sa("192.0.2.1", "192.0.2.2", 0x1001, KEY_A_TO_B);
    let extra: Vec<&str> = sa.iter().map(String::as_str).collect();
    let rows = tshark(
        &gw_a,
        &extra,
        &[
            "mpls.label",
            "mpls.bottom",
            "mpls.ttl",
            "esp.spi",
            "esp.sequence",
            "esp.icv_good",
            "ip.dst",
            "udp.dstport",
        ],
    );
    assert_eq!(rows.len(), n);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[0], "1002");
        assert_eq!(r[1], "1");
        assert_eq!(r[2], "64");
        assert_eq!(r[3], "0x00001001");
        assert_eq!(r[4], (i + 1).to_string());
        assert_eq!(r[5], "1", "Wireshark rejects the ICV of packet {}", i + 1);
        assert!(r[6].starts_with("192.0.2.2,10.2.0."), "{r:?}");
        assert_eq!(r[7], "9");
    }
    // The satellite swapped 1002 -> 1003 and decremented the TTL.
    let rows = tshark(&sat, &[], &["mpls.label", "mpls.ttl", "eth.dst", "esp.spi"]);
    assert_eq!(rows.len(), n);
    assert!(rows.iter().all(|r| r[0] == "1003"
        && r[1] == "63"
        && r[2] == "02:00:00:00:0b:02"
        && r[3] == "0x00001001"));

    // Gateway B delivers every inner packet byte-for-byte, in order.
    let (a, _) = read_file(&input).unwrap();
    let (b, _) = read_file(&gw_b).unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        // Each gateway forwarded it once: TTL less 2.
        let sent = inner_ip(&x.data).and_then(|p| forwarded(p, 2));
        assert_eq!(sent.as_deref(), inner_ip(&y.data));
        assert_eq!(&y.data[..6], &[2, 0, 0, 0, 0x0b, 0xaa], "to host B's MAC");
    }
    let rows = tshark(&gw_b, &[], &["ip.src", "ip.dst", "udp.checksum.status"]);
    assert!(rows
        .iter()
        .all(|r| r[0] == "10.1.0.1" && r[1].starts_with("10.2.0.")));
}

#[test]
fn aes_256_tunnel_verifies_in_tshark_and_pcapng_input_is_accepted() {
    let d = tmpdir("aes256");
    let key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f cafebabe";
    let cfg = d.join("gw.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[node]
name = "gw-256"
role = "gateway"
[[ports]]
name = "lan0"
mac = "02:00:00:00:00:01"
[[ports]]
name = "up0"
mac = "02:00:00:00:00:02"
[[sa]]
spi = 777
dir = "out"
aead = "aes-256-gcm"
key = "{key}"
tunnel_src = "198.51.100.1"
tunnel_dst = "198.51.100.2"
[[fec]]
prefix = "10.2.0.0/16"
sa = 777
label = 5000
port = "up0"
next_hop_mac = "02:00:00:00:00:10"
"#
        ),
    )
    .unwrap();
    let input = d.join("in.pcap");
    let ng = d.join("in.pcapng");
    meshplane(&[
        "gen",
        "--out",
        s(&input),
        "--count",
        "50",
        "--size",
        "1420",
        "--dst-mac",
        "02:00:00:00:00:01",
    ]);
    let st = Command::new("tshark")
        .arg("-r")
        .arg(&input)
        .args(["-F", "pcapng", "-w"])
        .arg(&ng)
        .status()
        .unwrap();
    assert!(st.success());
    let out = d.join("out.pcap");
    meshplane(&[
        "replay",
        "--config",
        s(&cfg),
        "--pcap",
        s(&ng),
        "--out",
        s(&out),
        "--per-port",
    ]);
    assert!(d.join("out-up0.pcap").exists(), "per-port file");
    let sa = esp_sa(
        "198.51.100.1",
        "198.51.100.2",
        777,
        &format!("0x{}", key.replace(' ', "")),
    );
    let extra: Vec<&str> = sa.iter().map(String::as_str).collect();
    let rows = tshark(
        &out,
        &extra,
        &[
            "mpls.label",
            "esp.spi",
            "esp.icv_good",
            "esp.pad_len",
            "esp.protocol",
        ],
    );
    assert_eq!(rows.len(), 50);
    for r in rows {
        assert_eq!(r[0], "5000");
        assert_eq!(r[1], "0x00000309");
        assert_eq!(r[2], "1");
        assert_eq!(r[4], "0x04", "next header IPv4");
    }
}

#[test]
fn broken_inputs_get_clear_errors() {
    let d = tmpdir("errors");
    // Config error: file, line, problem.
    let cfg = d.join("bad.toml");
    std::fs::write(&cfg, "[node]\nname = \"x\"\nrole = \"gateway\"\n[[ports]]\nname = \"lan0\"\nmac = \"02:00:00:00:01\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config", s(&cfg)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:6:") && err.contains("not a MAC address"),
        "{err}"
    );

    // Corrupt capture: named, with what is wrong; no panic.
    let good = d.join("in.pcap");
    meshplane(&["gen", "--out", s(&good), "--count", "10"]);
    let mut bytes = std::fs::read(&good).unwrap();
    bytes.truncate(bytes.len() - 7);
    let bad = d.join("cut.pcap");
    std::fs::write(&bad, &bytes).unwrap();
    let gw = format!("{CONFIGS}/gw-a.toml");
    let out = Command::new(BIN)
        .args([
            "replay",
            "--config",
            &gw,
            "--pcap",
            s(&bad),
            "--out",
            s(&d.join("o.pcap")),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cut.pcap") && err.contains("packet 10"),
        "{err}"
    );

    std::fs::write(d.join("junk.pcap"), b"this is not a capture file").unwrap();
    let out = Command::new(BIN)
        .args([
            "replay",
            "--config",
            &gw,
            "--pcap",
            s(&d.join("junk.pcap")),
            "--out",
            s(&d.join("o.pcap")),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a pcap or pcapng file"));

    // A link type other than Ethernet is refused by name.
    let raw = d.join("raw.pcap");
    let mut hdr = vec![];
    hdr.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    hdr.extend_from_slice(&2u16.to_le_bytes());
    hdr.extend_from_slice(&4u16.to_le_bytes());
    hdr.extend_from_slice(&[0; 8]);
    hdr.extend_from_slice(&65535u32.to_le_bytes());
    hdr.extend_from_slice(&101u32.to_le_bytes()); // LINKTYPE_RAW
    std::fs::write(&raw, &hdr).unwrap();
    let out = Command::new(BIN)
        .args([
            "replay",
            "--config",
            &gw,
            "--pcap",
            s(&raw),
            "--out",
            s(&d.join("o.pcap")),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("link type") && err.contains("Ethernet"),
        "{err}"
    );
}

#[test]
fn demo_runs_the_embedded_chain() {
    let out = meshplane(&["demo", "--count", "2000"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2000 inner packets delivered byte-for-byte, 0 lost or altered"),
        "{text}"
    );
    assert!(
        text.contains("node sat-1: 2000 packets in, 2000 out, 0 dropped"),
        "{text}"
    );
}
