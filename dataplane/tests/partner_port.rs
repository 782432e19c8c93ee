//! A partner port as a user meets it over pcap files: a FEC without a
//! label sends plain RFC 4303 tunnel-mode ESP out of its port, in UDP to
//! port 4500 (RFC 3948) when the SA says so, toward an IPsec gateway
//! outside the mesh; tshark (Wireshark's own UDP-encapsulation and RFC
//! 4106 code) decodes and verifies every packet, and a second meshplane
//! gateway standing for the partner decrypts them and sends its own back
//! the same way, which the first takes in and delivers to its LAN.

mod common;

use common::{esp_sa, tshark};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");
const KEY_OUT: &str = "00112233445566778899aabbccddeeff 01020304";
const KEY_BACK: &str = "f0e0d0c0b0a090807060504030201000 0a0b0c0d";

fn tmpdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("meshplane-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

fn meshplane(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run meshplane");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "meshplane {args:?} failed:\n{text}");
    text
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A gateway with a LAN (`lan_net`/16 delivered to a host) and a partner
/// port toward `far_net`/16: one SA out, one SA in.
#[allow(clippy::too_many_arguments)]
fn gateway(
    name: &str,
    mac: u8,
    peer_mac: u8,
    me: &str,
    peer: &str,
    lan_net: &str,
    far_net: &str,
    (spi_out, key_out): (u32, &str),
    (spi_in, key_in): (u32, &str),
    udp: bool,
) -> String {
    format!(
        r#"[node]
name = "{name}"
role = "gateway"

[[ports]]
name = "lan0"
mac = "02:00:00:00:{mac:02x}:01"

# Toward an IPsec gateway outside the mesh: plain ESP, no label.
[[ports]]
name = "partner0"
mac = "02:00:00:00:{mac:02x}:02"

[[sa]]
spi = {spi_out}
dir = "out"
aead = "aes-128-gcm"
key = "{key_out}"
tunnel_src = "{me}"
tunnel_dst = "{peer}"
esn = false
udp_encap = {udp}

[[sa]]
spi = {spi_in}
dir = "in"
aead = "aes-128-gcm"
key = "{key_in}"
tunnel_src = "{peer}"
tunnel_dst = "{me}"
esn = false
udp_encap = {udp}

[[fec]]
prefix = "{far_net}/16"
sa = {spi_out}
port = "partner0"
next_hop_mac = "02:00:00:00:{peer_mac:02x}:02"

[[deliver]]
prefix = "{lan_net}/16"
port = "lan0"
next_hop_mac = "02:00:00:00:{mac:02x}:99"
"#
    )
}

/// `meshplane gen`: `n` IMIX frames from `src` to `dst` (prefixes), to
/// the gateway's LAN MAC `mac`, into `out`.
fn gen(out: &Path, n: usize, src: &str, dst: &str, mac: &str) {
    meshplane(&[
        "gen",
        "--out",
        s(out),
        "--count",
        &n.to_string(),
        "--size",
        "imix",
        "--src",
        src,
        "--dst",
        dst,
        "--dst-mac",
        mac,
    ]);
}

/// `meshplane replay` of `input` through the gateway of `config`, the
/// capture arriving on `rx_port`; what it sends in `out`; its report.
fn replay(config: &Path, input: &Path, out: &Path, rx_port: &str) -> String {
    meshplane(&[
        "replay",
        "--config",
        s(config),
        "--pcap",
        s(input),
        "--out",
        s(out),
        "--rx-port",
        rx_port,
    ])
}

fn partner_round_trip(udp: bool) {
    let d = tmpdir(if udp { "partner-udp" } else { "partner-esp" });
    let (a_addr, p_addr) = ("203.0.113.1", "198.51.100.7");
    let a = d.join("a.toml");
    let p = d.join("p.toml");
    std::fs::write(
        &a,
        gateway(
            "gw-a",
            0x0a,
            0x0b,
            a_addr,
            p_addr,
            "10.1.0.0",
            "10.2.0.0",
            (0x2001, KEY_OUT),
            (0x2002, KEY_BACK),
            udp,
        ),
    )
    .expect("write");
    std::fs::write(
        &p,
        gateway(
            "partner",
            0x0b,
            0x0a,
            p_addr,
            a_addr,
            "10.2.0.0",
            "10.1.0.0",
            (0x2002, KEY_BACK),
            (0x2001, KEY_OUT),
            udp,
        ),
    )
    .expect("write");
    let n = 50;
    let (lan_a, lan_p) = (d.join("lan-a.pcap"), d.join("lan-p.pcap"));
    gen(&lan_a, n, "10.1.0.2/31", "10.2.0.2/31", "02:00:00:00:0a:01");
    gen(&lan_p, n, "10.2.0.2/31", "10.1.0.2/31", "02:00:00:00:0b:01");

    // Out: A's LAN -> A's partner port, plain ESP (in UDP) only.
    let wire_a = d.join("wire-a.pcap");
    let r = replay(&a, &lan_a, &wire_a, "lan0");
    assert!(r.contains("50 packets in, 50 out, 0 dropped"), "{r}");
    let sa = esp_sa(
        a_addr,
        p_addr,
        0x2001,
        &format!("0x{}", KEY_OUT.replace(' ', "")),
    );
    let extra: Vec<&str> = sa.iter().map(String::as_str).collect();
    let rows = tshark(
        &wire_a,
        &extra,
        &[
            "frame.protocols",
            "udp.srcport",
            "udp.dstport",
            "esp.spi",
            "esp.icv_good",
            "esp.protocol",
        ],
    );
    assert_eq!(rows.len(), n);
    for r in &rows {
        let want = if udp {
            "eth:ethertype:ip:udp:udpencap:esp:ip:udp"
        } else {
            "eth:ethertype:ip:esp:ip:udp"
        };
        assert!(r[0].starts_with(want), "{r:?}");
        assert!(!r[0].contains("mpls"), "a label on the partner port: {r:?}");
        if udp {
            // The outer UDP header's ports (the inner packet's follow).
            let outer = |f: &str| f.split(',').next().unwrap_or_default().to_string();
            assert_eq!(
                (outer(&r[1]), outer(&r[2])),
                ("4500".into(), "4500".into()),
                "{r:?}"
            );
        }
        assert_eq!(r[3], "0x00002001");
        assert_eq!(r[4], "1", "ICV not verified: {r:?}");
        assert_eq!(r[5], "0x04", "next header IPv4");
    }

    // The partner takes them in on its partner port and delivers them.
    let lan_p_out = d.join("p-lan.pcap");
    let r = replay(&p, &wire_a, &lan_p_out, "partner0");
    assert!(r.contains("50 packets in, 50 out, 0 dropped"), "{r}");

    // Back: the partner's LAN -> its partner port -> A, delivered on A's LAN.
    let wire_p = d.join("wire-p.pcap");
    replay(&p, &lan_p, &wire_p, "lan0");
    let lan_a_out = d.join("a-lan.pcap");
    let r = replay(&a, &wire_p, &lan_a_out, "partner0");
    assert!(r.contains("50 packets in, 50 out, 0 dropped"), "{r}");
    let rows = tshark(&lan_a_out, &[], &["eth.dst", "ip.src", "ip.dst"]);
    assert_eq!(rows.len(), n);
    for r in &rows {
        assert_eq!(r[0], "02:00:00:00:0a:99");
        assert!(
            r[1].starts_with("10.2.0.") && r[2].starts_with("10.1.0."),
            "{r:?}"
        );
    }
}

#[test]
fn a_partner_port_carries_esp_in_udp_both_ways_and_tshark_verifies_it() {
    partner_round_trip(true);
}

#[test]
fn a_partner_port_carries_plain_esp_both_ways() {
    partner_round_trip(false);
}
