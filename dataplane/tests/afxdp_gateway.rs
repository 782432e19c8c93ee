//! Gateway A as a user deploys it on a host without DPDK NICs: `meshplane
//! run` with `[io] backend = "afxdp"` between two network namespaces over
//! veth pairs. `tcpreplay` sends LAN traffic (from `meshplane gen`) into
//! its LAN port and ESP+MPLS traffic (built by gateway B and the
//! satellite) into its uplink; `tcpdump` captures what reaches each far
//! end, and tshark decodes and decrypts the uplink capture.
//!
//! The same node with `backend = "dpdk"` over DPDK's `net_af_xdp` on the
//! same veths, and in pipeline mode (frames of the UMEM crossing to the
//! crypto core and back), puts the same frames on the wire. After each run no XDP
//! program is left on the interfaces; the namespaces and veths go on drop.

mod common;

use common::{capture, esp_sa, replay_into, stop_capture, tshark, xdp_stays, Lab, Proc};
use meshplane::chain::{forwarded, inner_ip};
use meshplane::io::pcap::read_file;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");
const CONFIGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs");
const KEY_A_TO_B: &str = "0x4c80cdefbb5d10da906ac73c3613a6342e443b68";

const LAN_MAC: &str = "02:00:00:00:0a:01";
const UP_MAC: &str = "02:00:00:00:0a:02";
const HOST_A_MAC: &str = "02:00:00:00:0a:aa";
const SAT_MAC: &str = "02:00:00:00:01:01";
const FWD: usize = 200;
const REV: usize = 100;

fn meshplane(args: &[&str]) -> String {
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
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

/// The traffic of a run and what the heap backend makes of it.
struct Traffic {
    /// LAN traffic to 10.2.0.0/16, addressed to the LAN port.
    fwd: PathBuf,
    /// ESP+MPLS (label 1001) from gateway B via the satellite.
    rev: PathBuf,
    /// The LAN packets gateway B encrypted (what `rev` must decrypt to).
    rev_plain: PathBuf,
    /// Gateway A's output for `fwd` and `rev` through `meshplane replay`.
    fwd_ref: PathBuf,
    rev_ref: PathBuf,
}

fn traffic(dir: &Path) -> Traffic {
    let t = Traffic {
        fwd: dir.join("fwd.pcap"),
        rev: dir.join("rev.pcap"),
        rev_plain: dir.join("rev-plain.pcap"),
        fwd_ref: dir.join("fwd-ref.pcap"),
        rev_ref: dir.join("rev-ref.pcap"),
    };
    let cfg = |n: &str| format!("{CONFIGS}/{n}.toml");
    meshplane(&[
        "gen",
        "--out",
        s(&t.fwd),
        "--count",
        &FWD.to_string(),
        "--size",
        "imix",
        "--flows",
        "8",
        "--dst-mac",
        LAN_MAC,
        "--src-mac",
        HOST_A_MAC,
    ]);
    meshplane(&[
        "gen",
        "--out",
        s(&t.rev_plain),
        "--count",
        &REV.to_string(),
        "--size",
        "imix",
        "--flows",
        "8",
        "--dst",
        "10.1.0.0/16",
        "--src",
        "10.2.0.0/16",
        "--dst-mac",
        "02:00:00:00:0b:01",
        "--src-mac",
        "02:00:00:00:0b:aa",
    ]);
    let b_up = dir.join("gw-b-up.pcap");
    meshplane(&[
        "replay",
        "--config",
        &cfg("gw-b"),
        "--pcap",
        s(&t.rev_plain),
        "--out",
        s(&b_up),
        "--rx-port",
        "lan0",
    ]);
    meshplane(&[
        "replay",
        "--config",
        &cfg("sat-1"),
        "--pcap",
        s(&b_up),
        "--out",
        s(&t.rev),
        "--rx-port",
        "gsl-b",
    ]);
    meshplane(&[
        "replay",
        "--config",
        &cfg("gw-a"),
        "--pcap",
        s(&t.fwd),
        "--out",
        s(&t.fwd_ref),
        "--rx-port",
        "lan0",
    ]);
    meshplane(&[
        "replay",
        "--config",
        &cfg("gw-a"),
        "--pcap",
        s(&t.rev),
        "--out",
        s(&t.rev_ref),
        "--rx-port",
        "up0",
    ]);
    t
}

/// Gateway A's embedded configuration with `[io]` and each port's device.
fn config(dir: &Path, name: &str, io: &str, lan: &str, up: &str) -> PathBuf {
    let base = std::fs::read_to_string(format!("{CONFIGS}/gw-a.toml")).expect("gw-a.toml");
    let text = base
        .replacen("name = \"gw-a\"", &format!("name = \"{name}\""), 1)
        .replacen(
            "role = \"gateway\"",
            &format!("role = \"gateway\"\n\n[io]\n{io}"),
            1,
        )
        .replacen(
            &format!("mac = \"{LAN_MAC}\""),
            &format!("mac = \"{LAN_MAC}\"\n{lan}"),
            1,
        )
        .replacen(
            &format!("mac = \"{UP_MAC}\""),
            &format!("mac = \"{UP_MAC}\"\n{up}"),
            1,
        );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write config");
    path
}

/// The lab: LAN pair (host A's side in its namespace) and uplink pair
/// (the satellite's side), the uplink with room for the ESP overhead.
fn lab(tag: &str) -> Option<Lab> {
    Lab::new(tag, &[(LAN_MAC, HOST_A_MAC, 1500), (UP_MAC, SAT_MAC, 2000)])
}

/// Runs the node of `config` on the lab, replays both directions and
/// returns (uplink capture, LAN capture, the node's report).
fn run_gateway(
    lab: &Lab,
    config: &Path,
    t: &Traffic,
    dir: &Path,
    label: &str,
) -> (PathBuf, PathBuf, String) {
    let (lan, up) = (&lab.links[0], &lab.links[1]);
    let up_cap = dir.join(format!("up-{label}.pcap"));
    let lan_cap = dir.join(format!("lan-{label}.pcap"));
    let cap_up = capture(&up.ns, &up.outer, &up_cap);
    let cap_lan = capture(&lan.ns, &lan.outer, &lan_cap);
    let mut cmd = Command::new(BIN);
    cmd.args([
        "run",
        "--config",
        s(config),
        "--until-idle-ms",
        "1500",
        "--seconds",
        "60",
    ]);
    let mut node = Proc::spawn(cmd);
    node.wait_for("running node=", Duration::from_secs(60));
    replay_into(&lan.ns, &lan.outer, &t.fwd);
    replay_into(&up.ns, &up.outer, &t.rev);
    let (report, log) = node.finish(Duration::from_secs(90));
    stop_capture(cap_up);
    stop_capture(cap_lan);
    for l in &lab.links {
        assert!(
            !xdp_stays(&l.inner),
            "{label}: an XDP program is left on {}",
            l.inner
        );
    }
    (up_cap, lan_cap, format!("{report}\n{log}"))
}

fn frames(p: &Path) -> Vec<Vec<u8>> {
    read_file(p)
        .expect("read capture")
        .0
        .into_iter()
        .map(|p| p.data)
        .collect()
}

#[test]
fn gateway_on_af_xdp_encrypts_uplink_traffic_and_decrypts_lan_traffic() {
    let Some(lab) = lab("xg") else { return };
    let dir = tmpdir("afxdp-gw");
    let t = traffic(&dir);
    let (lan, up) = (&lab.links[0], &lab.links[1]);
    let cfg = config(
        &dir,
        &format!("gw-a-xg{}", std::process::id()),
        "backend = \"afxdp\"",
        &format!("iface = \"{}\"", lan.inner),
        &format!("iface = \"{}\"", up.inner),
    );
    let (up_cap, lan_cap, report) = run_gateway(&lab, &cfg, &t, &dir, "afxdp");
    let total = FWD + REV;
    assert!(
        report.contains(&format!("{total} packets in, {total} out, 0 dropped")),
        "{report}"
    );
    assert!(
        report.contains("(all returned)"),
        "UMEM frames lost:\n{report}"
    );
    for (port, rx, tx) in [("lan0", FWD, REV), ("up0", REV, FWD)] {
        let dev = format!(
            "dev  {port:<8} ipackets {rx} opackets {tx} imissed 0 ierrors 0 oerrors 0 rx_nombuf 0"
        );
        assert!(report.contains(&dev), "{dev}:\n{report}");
    }
    assert!(
        report.contains("copy mode"),
        "the log says how sockets bound:\n{report}"
    );

    // Uplink: MPLS 1002 (S=1, TTL 64) / IPv4 192.0.2.1 -> 192.0.2.2 / ESP
    // SPI 0x1001, sequence 1..n; tshark verifies every ICV and finds the
    // inner UDP packets to 10.2.0.0/16.
    let sa = esp_sa("192.0.2.1", "192.0.2.2", 0x1001, KEY_A_TO_B);
    let extra: Vec<&str> = sa.iter().map(String::as_str).collect();
    let rows = tshark(
        &up_cap,
        &extra,
        &[
            "eth.src",
            "eth.dst",
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
    assert_eq!(rows.len(), FWD, "frames on the uplink");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[0], UP_MAC);
        assert_eq!(r[1], SAT_MAC);
        assert_eq!(r[2], "1002");
        assert_eq!(r[3], "1");
        assert_eq!(r[4], "64");
        assert_eq!(r[5], "0x00001001");
        assert_eq!(r[6], (i + 1).to_string());
        assert_eq!(r[7], "1", "tshark rejects the ICV of packet {}", i + 1);
        assert!(r[8].starts_with("192.0.2.2,10.2.0."), "{r:?}");
        assert_eq!(r[9], "9");
    }
    assert_eq!(
        frames(&up_cap),
        frames(&t.fwd_ref),
        "uplink frames differ from `meshplane replay`'s"
    );

    // LAN: every packet gateway B encrypted arrives decrypted, in order,
    // addressed to host A.
    let sent = frames(&t.rev_plain);
    let got = frames(&lan_cap);
    assert_eq!(got.len(), REV, "frames on the LAN");
    for (a, b) in sent.iter().zip(&got) {
        // Both gateways forwarded it: TTL less 2.
        let a = inner_ip(a).and_then(|p| forwarded(p, 2));
        assert_eq!(a.as_deref(), inner_ip(b));
        assert_eq!(&b[..6], &[2, 0, 0, 0, 0x0a, 0xaa], "to host A's MAC");
    }
    let rows = tshark(
        &lan_cap,
        &[],
        &["ip.src", "ip.dst", "mpls.label", "esp.spi"],
    );
    assert!(
        rows.iter().all(|r| r[0] == "10.2.0.1"
            && r[1].starts_with("10.1.0.")
            && r[2].is_empty()
            && r[3].is_empty()),
        "{rows:?}"
    );
    assert_eq!(frames(&lan_cap), frames(&t.rev_ref));
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_net_af_xdp_on_the_same_veths_sends_the_same_frames() {
    let Some(lab) = lab("xd") else { return };
    let dir = tmpdir("afxdp-dpdk");
    let t = traffic(&dir);
    let (lan, up) = (&lab.links[0], &lab.links[1]);
    let pid = std::process::id();
    let cfg = config(
        &dir,
        &format!("gw-a-xa{pid}"),
        "backend = \"afxdp\"",
        &format!("iface = \"{}\"", lan.inner),
        &format!("iface = \"{}\"", up.inner),
    );
    let (up_x, lan_x, _) = run_gateway(&lab, &cfg, &t, &dir, "afxdp");
    let cfg = config(
        &dir,
        &format!("gw-a-xd{pid}"),
        "backend = \"dpdk\"\neal_args = [\"--no-telemetry\", \"--log-level=notice\"]",
        &format!(
            "dpdk = \"net_af_xdp0,iface={},start_queue=0,queue_count=1\"",
            lan.inner
        ),
        &format!(
            "dpdk = \"net_af_xdp1,iface={},start_queue=0,queue_count=1\"",
            up.inner
        ),
    );
    let (up_d, lan_d, report) = run_gateway(&lab, &cfg, &t, &dir, "dpdk");
    let total = FWD + REV;
    assert!(
        report.contains(&format!("{total} packets in, {total} out, 0 dropped")),
        "{report}"
    );
    assert_eq!(frames(&up_x).len(), FWD);
    assert_eq!(
        frames(&up_x),
        frames(&up_d),
        "uplink frames: AF_XDP vs DPDK net_af_xdp"
    );
    assert_eq!(frames(&lan_x).len(), REV);
    assert_eq!(
        frames(&lan_x),
        frames(&lan_d),
        "LAN frames: AF_XDP vs DPDK net_af_xdp"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gateway_in_pipeline_mode_on_af_xdp_sends_the_same_frames() {
    let cores: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .take(2)
        .collect();
    if cores.len() < 2 {
        eprintln!("SKIPPED: pipeline mode needs two cores, this process may use {cores:?}");
        return;
    }
    let Some(lab) = lab("xp") else { return };
    let dir = tmpdir("afxdp-pipe");
    let t = traffic(&dir);
    let (lan, up) = (&lab.links[0], &lab.links[1]);
    let cfg = config(
        &dir,
        &format!("gw-a-xp{}", std::process::id()),
        "backend = \"afxdp\"",
        &format!("iface = \"{}\"", lan.inner),
        &format!("iface = \"{}\"", up.inner),
    );
    // The I/O core polls the sockets, the other runs the AEAD: frames of
    // the UMEM cross threads and come back to be sent.
    let text = std::fs::read_to_string(&cfg).expect("config");
    let text = text.replacen(
        "role = \"gateway\"\n",
        &format!(
            "role = \"gateway\"\nmode = \"pipeline\"\ncores = [{}, {}]\n",
            cores[0], cores[1]
        ),
        1,
    );
    std::fs::write(&cfg, text).expect("write config");
    let (up_cap, lan_cap, report) = run_gateway(&lab, &cfg, &t, &dir, "pipeline");
    let total = FWD + REV;
    assert!(
        report.contains(&format!("{total} packets in, {total} out, 0 dropped")),
        "{report}"
    );
    assert!(
        report.contains("(all returned)"),
        "UMEM frames lost:\n{report}"
    );
    assert_eq!(frames(&up_cap), frames(&t.fwd_ref), "uplink frames");
    assert_eq!(frames(&lan_cap), frames(&t.rev_ref), "LAN frames");
    let _ = std::fs::remove_dir_all(&dir);
}
