//! A partner port facing strongSwan, as an operator deploys it: `meshplane
//! run` (AF_XDP on veth pairs) with a LAN host behind it in one network
//! namespace and charon (kernel-libipsec, its userspace ESP, since this
//! kernel's XFRM has no AES-GCM) in another, reached over the gateway's
//! partner port. The gateway negotiates the SAs by IKEv2 with a pre-shared
//! key, as initiator and then as responder; ESP travels in UDP on port 4500
//! (RFC 3948), which kernel-libipsec needs. The host pings the partner's
//! network and the partner pings back, a UDP stream goes each way; a
//! 1000 pps ping stream crosses
//! charon's Child SA rekeys (every 5 s) and its IKE SA rekey (20 s)
//! without a loss; tshark decodes the exchanges and the ESP on the
//! partner link; the gateway that stops deletes its IKE SA at charon.

#[path = "common/charon.rs"]
mod charon;
mod common;

use charon::Charon;
use common::{capture, stop_capture, tshark, Lab, Proc};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");
const LAN_MAC: &str = "02:00:00:00:0c:01";
const HOST_MAC: &str = "02:00:00:00:0c:aa";
const PARTNER_MAC: &str = "02:00:00:00:0c:02";
const CHARON_MAC: &str = "02:00:00:00:0d:01";
const GW_TUNNEL: &str = "198.51.100.1";
const CHARON_TUNNEL: &str = "198.51.100.7";
const HOST: &str = "10.1.0.2";
const PARTNER_HOST: &str = "10.2.0.1";
/// The pre-shared key, in hex (`psk_file`; charon's `secret = 0x...`).
const PSK_HEX: &str = "6d657368706c616e6520706172746e657220707362";
/// How long the ping stream runs across the rekeys, seconds.
const STREAM_S: u64 = 60;

fn run(ns: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    eprintln!(
        "[{ns}] $ {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn must(ns: &str, args: &[&str]) {
    assert!(run(ns, args).status.success(), "{args:?} failed in {ns}");
}

fn config(dir: &Path, lab: &Lab, initiate: bool) -> PathBuf {
    let psk = dir.join("partner.psk");
    std::fs::write(&psk, format!("{PSK_HEX}\n")).expect("psk");
    std::fs::set_permissions(&psk, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let (lan, partner) = (&lab.links[0], &lab.links[1]);
    let text = format!(
        r#"[node]
name = "gw-partner"
role = "gateway"
idle = "adaptive"

[io]
backend = "afxdp"

[[ports]]
name = "lan0"
mac = "{LAN_MAC}"
iface = "{lan_if}"
address = "10.1.0.1/16"

# Toward the partner: plain ESP (in UDP), no label.
[[ports]]
name = "partner0"
mac = "{PARTNER_MAC}"
iface = "{partner_if}"
address = "{GW_TUNNEL}/24"

[ike]
address = "{GW_TUNNEL}"
identity = "meshplane.test"
psk_file = "{psk}"
# kernel-libipsec has no extended sequence numbers.
esp_proposals = ["aes128gcm16-noesn"]

[[ike.peer]]
address = "{CHARON_TUNNEL}"
identity = "charon.test"
initiate = {initiate}
udp_encap = true

[[fec]]
prefix = "10.2.0.0/16"
peer = "{CHARON_TUNNEL}"
port = "partner0"
next_hop_mac = "{CHARON_MAC}"

[[deliver]]
prefix = "10.1.0.0/16"
port = "lan0"
next_hop_mac = "{HOST_MAC}"
"#,
        lan_if = lan.inner,
        partner_if = partner.inner,
        psk = psk.display(),
    );
    let p = dir.join(format!("gw-{initiate}.toml"));
    std::fs::write(&p, text).expect("config");
    p
}

/// charon's connection: PSK, ESP in UDP, Child SA rekeyed every 5 s and
/// the IKE SA every 20 s (with PFS), no DPD.
fn load(ch: &Charon) {
    ch.load_conf(&format!(
        r#"connections {{
  partner {{
    version = 2
    local_addrs = {CHARON_TUNNEL}
    remote_addrs = {GW_TUNNEL}
    proposals = aes128gcm16-prfsha256-x25519
    encap = yes
    rekey_time = 20s
    over_time = 10s
    rand_time = 0
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
        local_ts = 10.2.0.0/16
        remote_ts = 10.1.0.0/16
        esp_proposals = aes128gcm16
        mode = tunnel
        rekey_time = 5s
        life_time = 10s
        rand_time = 0
        start_action = none
      }}
    }}
  }}
}}
secrets {{
  ike-partner {{
    id-1 = charon.test
    id-2 = meshplane.test
    secret = 0x{PSK_HEX}
  }}
}}
"#
    ));
}

/// Waits until charon lists an established IKE SA with an installed
/// Child SA; its `--list-sas`.
fn wait_established(ch: &Charon, within: Duration) -> String {
    let t = Instant::now();
    loop {
        let l = ch.swanctl(&["--list-sas"]);
        if l.contains("ESTABLISHED") && l.contains("INSTALLED") {
            return l;
        }
        assert!(
            t.elapsed() < within,
            "no SA with the gateway after {within:?}:\n{l}\n{}",
            ch.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The gateway's `meshplane ctl --json show ike`.
fn show_ike(dir: &Path) -> serde_json::Value {
    let o = Command::new(BIN)
        .args(["ctl", "--json", "--socket"])
        .arg(dir.join("gw.sock"))
        .args(["show", "ike"])
        .output()
        .expect("meshplane ctl");
    serde_json::from_slice(&o.stdout).unwrap_or_default()
}

/// The gateway's IKE counters.
fn ike_counters(dir: &Path) -> serde_json::Value {
    show_ike(dir)["counters"].clone()
}

/// Waits until the gateway's `show ike` has a current Child SA (its
/// outbound SA carries the partner's FEC).
fn wait_current(dir: &Path) {
    let t = Instant::now();
    loop {
        let v = show_ike(dir);
        let current = v["children"]
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c["state"] == "current"));
        if current {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no current Child SA: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_node(cfg: &Path, dir: &Path) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--config"])
        .arg(cfg)
        .args(["--seconds", "300", "--socket"])
        .arg(dir.join("gw.sock"));
    let mut node = Proc::spawn(cmd);
    node.wait_for("running node=", Duration::from_secs(60));
    node
}

/// Stops the node as an operator does (SIGTERM) and waits for it.
fn stop_node(node: Proc) -> String {
    let _ = Command::new("kill")
        .args(["-TERM", &node.child.id().to_string()])
        .status();
    let (_, log) = node.finish(Duration::from_secs(10));
    log
}

fn ping_ok(ns: &str, args: &[&str], dst: &str) -> String {
    let mut a = vec!["ping"];
    a.extend_from_slice(args);
    a.push(dst);
    let out = run(ns, &a);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "ping {dst} failed: {text}");
    text
}

/// UDP datagrams to `dst` port 9 sent from namespace `ns` (by bash's
/// `/dev/udp`, a socket per datagram so that the far kernel's port
/// unreachable errors stop none), about 1000 a second, each carrying its
/// number; captured where they arrive (`rx_ns`, `rx_if`), the distinct
/// numbers received.
fn udp_stream(ns: &str, dst: &str, count: u32, rx_ns: &str, rx_if: &str, file: &Path) -> usize {
    let cap = capture(rx_ns, rx_if, file);
    let script = format!(
        "for ((i=1;i<={count};i++)); do printf 'mp%08d' $i >/dev/udp/{dst}/9; ((i%10)) || sleep 0.01; done"
    );
    let sent = run(ns, &["bash", "-c", &script]);
    assert!(sent.status.success(), "sending the UDP stream failed");
    std::thread::sleep(Duration::from_millis(500));
    stop_capture(cap);
    let rows = tshark(file, &["-Y", "udp.dstport == 9"], &["udp.payload"]);
    rows.iter()
        .filter_map(|r| r.first())
        .filter(|p| !p.is_empty())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// The "N packets transmitted, M received" counts of a ping summary.
fn ping_counts(summary: &str) -> (u64, u64) {
    let l = summary
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_default();
    let n: Vec<u64> = l
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (
        n.first().copied().unwrap_or(0),
        n.get(1).copied().unwrap_or(0),
    )
}

#[test]
fn a_partner_port_keyed_by_ikev2_with_strongswan_carries_traffic_across_rekeys() {
    let Some(lab) = Lab::new(
        "pt",
        &[(LAN_MAC, HOST_MAC, 1500), (PARTNER_MAC, CHARON_MAC, 1600)],
    ) else {
        panic!("network namespaces are needed (root and iproute2; scripts/setup)");
    };
    let (host_ns, charon_ns) = (lab.links[0].ns.clone(), lab.links[1].ns.clone());
    let (host_if, charon_if) = (lab.links[0].outer.clone(), lab.links[1].outer.clone());
    must(
        &host_ns,
        &["ip", "addr", "add", &format!("{HOST}/16"), "dev", &host_if],
    );
    must(
        &host_ns,
        &["ip", "route", "add", "10.2.0.0/16", "via", "10.1.0.1"],
    );
    must(
        &charon_ns,
        &[
            "ip",
            "addr",
            "add",
            &format!("{CHARON_TUNNEL}/24"),
            "dev",
            &charon_if,
        ],
    );
    // The partner's own network: an address of its namespace, answered by
    // its kernel once charon's TUN device has taken the packet in.
    must(
        &charon_ns,
        &[
            "ip",
            "addr",
            "add",
            &format!("{PARTNER_HOST}/32"),
            "dev",
            "lo",
        ],
    );
    for (ns, i) in [(&host_ns, &host_if), (&charon_ns, &charon_if)] {
        let _ = run(ns, &["ethtool", "-K", i, "tx", "off", "rx", "off"]);
    }
    let _ = Command::new("ethtool")
        .args(["-K", &lab.links[0].inner, "tx", "off", "rx", "off"])
        .status();
    let _ = Command::new("ethtool")
        .args(["-K", &lab.links[1].inner, "tx", "off", "rx", "off"])
        .status();

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("meshplane-partner-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let ch = Charon::start(&charon_ns, &dir.join("charon"));
    load(&ch);
    let wire = dir.join("partner-link.pcap");
    let cap = capture(&charon_ns, &charon_if, &wire);

    // 1. The gateway initiates.
    let node = start_node(&config(&dir, &lab, true), &dir);
    let t0 = Instant::now();
    let sas = wait_established(&ch, Duration::from_secs(20));
    eprintln!("established after {:?}:\n{sas}", t0.elapsed());
    assert!(sas.contains("AES_GCM_16-128"), "{sas}");
    ping_ok(&host_ns, &["-c", "5", "-i", "0.2", "-W", "2"], PARTNER_HOST);
    ping_ok(
        &charon_ns,
        &["-c", "5", "-i", "0.2", "-W", "2", "-I", PARTNER_HOST],
        HOST,
    );

    // 1b. A UDP stream each way through the tunnel: nothing lost.
    let n = 3000;
    let got = udp_stream(
        &host_ns,
        PARTNER_HOST,
        n,
        &charon_ns,
        "ipsec0",
        &dir.join("udp-out.pcap"),
    );
    eprintln!("UDP host -> partner: {n} sent, {got} received");
    assert_eq!(got, n as usize, "UDP to the partner lost");
    let got = udp_stream(
        &charon_ns,
        HOST,
        n,
        &host_ns,
        &host_if,
        &dir.join("udp-back.pcap"),
    );
    eprintln!("UDP partner -> host: {n} sent, {got} received");
    assert_eq!(got, n as usize, "UDP from the partner lost");

    // 2. A 1000 pps stream across charon's rekeys: nothing lost.
    let before = ike_counters(&dir);
    let summary = ping_ok(
        &host_ns,
        &[
            "-q",
            "-i",
            "0.001",
            "-c",
            &(STREAM_S * 1000).to_string(),
            "-W",
            "2",
        ],
        PARTNER_HOST,
    );
    let after = ike_counters(&dir);
    let grew = |k: &str| after[k].as_u64().unwrap_or(0) - before[k].as_u64().unwrap_or(0);
    let (sent, got) = ping_counts(&summary);
    eprintln!(
        "stream: {sent} sent, {got} received; the gateway installed {} Child SAs and switched {} times",
        grew("child_up"),
        grew("switches")
    );
    assert_eq!(sent, STREAM_S * 1000, "{summary}");
    if got != sent {
        let log = stop_node(node);
        panic!(
            "lost across the rekeys: {summary}\ngateway's log:\n{}\ncharon's log:\n{}",
            log.lines()
                .filter(|l| l.contains("IKE") || l.contains("WARN"))
                .collect::<Vec<_>>()
                .join("\n"),
            ch.log()
        );
    }
    // A Child SA rekey every 5 s of the stream.
    let rekeys = STREAM_S / 5 - 1;
    assert!(grew("child_up") >= rekeys, "{before} -> {after}");
    assert!(grew("switches") >= rekeys, "{before} -> {after}");

    // 3. The gateway stops: charon holds no SA with it within 3 s.
    let log = stop_node(node);
    assert!(log.contains("its IKE SAs deleted"), "{log}");
    // charon rekeyed the IKE SA every 20 s (with a new Diffie-Hellman
    // exchange, as IKE SA rekeys always are).
    let ike_rekeys = log
        .lines()
        .filter(|l| l.contains("IKE SA up") && l.contains("rekey=true"))
        .count() as u64;
    eprintln!("IKE SA rekeys: {ike_rekeys}");
    assert!(
        ike_rekeys >= STREAM_S / 20,
        "{ike_rekeys} IKE SA rekeys in {STREAM_S} s"
    );
    let t = Instant::now();
    loop {
        let l = ch.swanctl(&["--list-sas"]);
        if !l.contains("ESTABLISHED") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "charon still holds:\n{l}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // 4. charon initiates; the gateway answers.
    let node = start_node(&config(&dir, &lab, false), &dir);
    let init = ch.swanctl_bg(&["--initiate", "--child", "net", "--timeout", "20"]);
    let out = init.wait_with_output().expect("swanctl --initiate");
    assert!(
        out.status.success(),
        "charon could not initiate: {}{}",
        String::from_utf8_lossy(&out.stdout),
        ch.log()
    );
    wait_established(&ch, Duration::from_secs(10));
    // A first Child SA the peer asked for carries the gateway's traffic
    // once the peer is seen using it, or after the drain window (2 s).
    wait_current(&dir);
    eprintln!("{}", ch.swanctl(&["--list-sas"]));
    ping_ok(&host_ns, &["-c", "5", "-i", "0.2", "-W", "2"], PARTNER_HOST);
    ping_ok(
        &charon_ns,
        &["-c", "5", "-i", "0.2", "-W", "2", "-I", PARTNER_HOST],
        HOST,
    );
    stop_node(node);
    stop_capture(cap);

    // 5. tshark reads the exchanges and ESP in UDP on the partner link.
    let rows = tshark(&wire, &[], &["frame.protocols", "isakmp.exchangetype"]);
    let has = |p: &str| rows.iter().any(|r| r[0].contains(p));
    assert!(has("isakmp"), "no IKE on the partner link");
    assert!(has("udpencap:esp"), "no ESP in UDP on the partner link");
    let exchanges: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter_map(|r| r.get(1))
        .map(String::as_str)
        .collect();
    eprintln!("IKE exchange types seen: {exchanges:?}");
    for x in ["34", "35", "36", "37"] {
        assert!(
            exchanges.contains(x),
            "exchange type {x} not seen: {exchanges:?}"
        );
    }
    assert!(
        rows.iter().all(|r| !r[0].contains("mpls")),
        "a label on the partner link"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
