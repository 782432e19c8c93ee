//! BFD interop with FRR's bfdd (RFC 5880 / 5881): a meshplane node over
//! AF_XDP and bfdd, each at one end of a veth pair, bring a session up;
//! cutting the link takes both sides down within the detection time,
//! healing it brings both back; tshark reads what meshplane sends as BFD.
//!
//! bfdd (with zebra, which tells it of interfaces) runs in the far end's
//! network namespace, started by the test; `scripts/setup` installs FRR.

mod common;

use common::{Lab, Proc};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");
const NODE_MAC: &str = "02:00:00:00:b0:01";
const FRR_MAC: &str = "02:00:00:00:b0:02";
const NODE_IP: &str = "10.9.0.1";
const FRR_IP: &str = "10.9.0.2";
const FRR_DIR: &str = "/usr/lib/frr";

/// zebra and bfdd in namespace `ns`, their files in `dir`; killed on drop.
struct Frr {
    dir: PathBuf,
    ns: String,
}

impl Drop for Frr {
    fn drop(&mut self) {
        for d in ["bfdd", "zebra"] {
            if let Ok(pid) = std::fs::read_to_string(self.dir.join(format!("{d}.pid"))) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Frr {
    /// Starts zebra, then bfdd with one peer on `iface`.
    fn start(ns: &str, iface: &str, dir: &Path) -> Frr {
        std::fs::create_dir_all(dir).expect("frr dir");
        std::fs::write(dir.join("zebra.conf"), "").expect("zebra.conf");
        std::fs::write(
            dir.join("bfdd.conf"),
            format!(
                "bfd\n peer {NODE_IP} local-address {FRR_IP} interface {iface}\n  receive-interval 10\n  transmit-interval 10\n  detect-multiplier 3\n !\n!\n"
            ),
        )
        .expect("bfdd.conf");
        // The daemons run as the frr user (vtysh's group is frrvty).
        let ok = Command::new("chown")
            .args(["-R", "frr:frr"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "chown frr: is FRR installed (scripts/setup)?");
        let frr = Frr {
            dir: dir.to_path_buf(),
            ns: ns.to_string(),
        };
        for d in ["zebra", "bfdd"] {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns])
                .arg(format!("{FRR_DIR}/{d}"))
                .arg("-d")
                .arg("-f")
                .arg(dir.join(format!("{d}.conf")))
                .arg("-i")
                .arg(dir.join(format!("{d}.pid")))
                .arg("-z")
                .arg(dir.join("zserv.api"))
                .arg("--vty_socket")
                .arg(dir)
                .arg("--log")
                .arg(format!("file:{}", dir.join(format!("{d}.log")).display()));
            if d == "bfdd" {
                c.arg("--bfdctl").arg(dir.join("bfdd.sock"));
            }
            let out = c.output().unwrap_or_else(|e| panic!("start {d}: {e}"));
            assert!(
                out.status.success(),
                "{d}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // zebra first: bfdd learns the interface from it.
            std::thread::sleep(Duration::from_millis(300));
        }
        frr
    }

    /// bfdd's view of the peer (`show bfd peers json`).
    fn peer(&self) -> Option<Value> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "vtysh", "--vty_socket"])
            .arg(&self.dir)
            .args(["-c", "show bfd peers json"])
            .output()
            .ok()?;
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        v.as_array()?.iter().find(|p| p["peer"] == NODE_IP).cloned()
    }

    fn status(&self) -> String {
        self.peer()
            .and_then(|p| p["status"].as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

fn node_config(dir: &Path, iface: &str, socket: &Path) -> PathBuf {
    let path = dir.join("node.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[node]
name = "bfd-frr"
role = "satellite"
idle = "adaptive"
socket = "{socket}"

[io]
backend = "afxdp"

[[ports]]
name = "lan0"
mac = "{NODE_MAC}"
iface = "{iface}"
mode = "copy"
address = "{NODE_IP}/24"
peer_mac = "{FRR_MAC}"

[bfd]
desired_min_tx_ms = 10
required_min_rx_ms = 10
detect_mult = 3

[[bfd.peer]]
port = "lan0"
address = "{FRR_IP}"
"#,
            socket = socket.display()
        ),
    )
    .expect("write config");
    path
}

/// `meshplane ctl --json show WHAT`.
fn show(socket: &Path, what: &str) -> Value {
    let out = Command::new(BIN)
        .args(["ctl", "--json", "--socket"])
        .arg(socket)
        .args(["show", what])
        .output()
        .expect("ctl");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// `meshplane ctl show bfd`, the first session.
fn ours(socket: &Path) -> Value {
    show(socket, "bfd")["sessions"][0].clone()
}

/// Polls `f` until it holds or `limit` passes.
fn wait_ok(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while !f() {
        if t0.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// The node's log lines so far.
fn drain(p: &mut Proc) -> String {
    while let Ok(l) = p.lines.try_recv() {
        p.seen.push(l);
    }
    p.seen.join("\n")
}

fn wait(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    t0.elapsed()
}

#[test]
fn meshplane_and_frr_bfdd_bring_a_session_up_detect_a_cut_and_recover() {
    if !Path::new(FRR_DIR).join("bfdd").exists() {
        panic!("FRR's bfdd is missing: run scripts/setup (it installs the frr package)");
    }
    let Some(lab) = Lab::new("bfd", &[(NODE_MAC, FRR_MAC, 1500)]) else {
        return;
    };
    let link = &lab.links[0];
    assert!(common::ip(&[
        "-n",
        &link.ns,
        "addr",
        "add",
        &format!("{FRR_IP}/24"),
        "dev",
        &link.outer
    ]));
    // A kernel socket's UDP checksum is left to the NIC (offload); a veth
    // delivers it unfilled to XDP. Have the kernel fill it, as a NIC would.
    let ok = Command::new("ip")
        .args([
            "netns",
            "exec",
            &link.ns,
            "ethtool",
            "-K",
            &link.outer,
            "tx",
            "off",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "ethtool -K {} tx off", link.outer);
    let pid = std::process::id();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bfd-frr-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    // The far end of the veth pair down or up: the link cut or healed.
    let set_far_end = |state: &str| {
        assert!(common::ip(&[
            "-n",
            &link.ns,
            "link",
            "set",
            &link.outer,
            state
        ]));
    };
    let cap_file = dir.join("bfd.pcap");
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        &link.ns,
        "tcpdump",
        "-i",
        &link.outer,
        "-n",
        "-U",
        "-w",
    ])
    .arg(&cap_file)
    .arg("udp port 3784");
    let mut cap = Proc::spawn(c);
    cap.wait_for("listening on", Duration::from_secs(10));

    // FRR's daemons run as the frr user: their files live where it can
    // reach them whatever the checkout's parents allow.
    let frr = Frr::start(
        &link.ns,
        &link.outer,
        &std::env::temp_dir().join(format!("meshplane-bfd-frr-{pid}")),
    );
    let socket = dir.join("node.sock");
    let cfg = node_config(&dir, &link.inner, &socket);
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--quiet", "--seconds", "120", "--config"])
        .arg(&cfg);
    let mut node = Proc::spawn(cmd);
    node.wait_for("running node=", Duration::from_secs(60));

    // Up on both sides; FRR goes through its slow start (one second).
    let up = wait_ok(Duration::from_secs(20), || {
        ours(&socket)["session"]["state"] == "Up"
    });
    assert!(
        up,
        "no session up at meshplane: ours {}\n{}\n{}\nbfdd {:?}\nnode log:\n{}",
        show(&socket, "bfd"),
        show(&socket, "drops"),
        show(&socket, "status"),
        frr.peer(),
        drain(&mut node)
    );
    wait("session up at bfdd", Duration::from_secs(10), || {
        frr.status() == "up"
    });
    // Both at the fast timers once the Poll Sequences end.
    std::thread::sleep(Duration::from_millis(500));
    let s = ours(&socket);
    assert_eq!(s["session"]["tx_interval_us"], 10_000, "{s}");
    assert_eq!(s["session"]["detect_time_us"], 30_000, "{s}");
    assert_eq!(s["session"]["remote_detect_mult"], 3, "{s}");
    let p = frr.peer().expect("bfdd's peer");
    assert_eq!(p["remote-id"], s["session"]["local_discr"], "{p}");
    assert_eq!(p["id"], s["session"]["remote_discr"], "{p}");
    assert_eq!(p["remote-transmit-interval"], 10, "{p}");
    assert_eq!(p["remote-receive-interval"], 10, "{p}");

    // Steady: a second of 10 ms packets both ways, nothing refused.
    let before = ours(&socket)["session"]["counters"].clone();
    std::thread::sleep(Duration::from_secs(1));
    let after = ours(&socket)["session"]["counters"].clone();
    let got = after["received"].as_u64().unwrap_or(0) - before["received"].as_u64().unwrap_or(0);
    assert!(
        (50..=200).contains(&got),
        "{got} packets from bfdd in a second"
    );
    let refused: u64 = after["refused"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).sum())
        .unwrap_or(u64::MAX);
    assert_eq!(refused, 0, "{after}");

    // Cut the link at the far end: both sides go down, each on its own
    // detection time (3 x 10 ms; the slack is the polling of ctl and
    // vtysh, and the scheduler of a shared 2-core machine).
    set_far_end("down");
    let ours_down = wait("down at meshplane", Duration::from_secs(2), || {
        ours(&socket)["session"]["state"] == "Down"
    });
    let theirs_down = wait("down at bfdd", Duration::from_secs(2), || {
        frr.status() == "down"
    });
    let s = ours(&socket);
    assert_eq!(s["session"]["diag"], 1, "detection time expired: {s}");
    assert_eq!(s["reported_down"], true, "{s}");
    let p = frr.peer().expect("peer");
    assert_eq!(p["diagnostic"], "control detection time expired", "{p}");
    eprintln!("down seen after {ours_down:?} (meshplane), {theirs_down:?} (bfdd)");
    assert!(ours_down < Duration::from_millis(400), "{ours_down:?}");
    node.wait_for("link down", Duration::from_secs(2));

    // Heal: both come back, and the link is announced up after the
    // hold-down (one second).
    set_far_end("up");
    wait("up again at meshplane", Duration::from_secs(20), || {
        ours(&socket)["session"]["state"] == "Up"
    });
    wait("up again at bfdd", Duration::from_secs(10), || {
        frr.status() == "up"
    });
    node.wait_for("link up", Duration::from_secs(5));
    // Up at the start and again after the cut (a session that flaps in
    // between on a loaded host counts more).
    let log = drain(&mut node);
    let c = ours(&socket)["session"]["counters"].clone();
    assert!(
        c["up"].as_u64() >= Some(2) && c["down"].as_u64() >= Some(1),
        "{c}\n{log}"
    );

    // The text view an operator reads.
    let out = Command::new(BIN)
        .args(["ctl", "--socket"])
        .arg(&socket)
        .args(["show", "bfd"])
        .output()
        .expect("ctl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("lan0") && text.contains(FRR_IP) && text.contains("Up"),
        "{text}"
    );

    node.interrupt();
    let _ = node.finish(Duration::from_secs(20));
    common::stop_capture(cap);
    drop(frr);

    // tshark decodes both directions as BFD control packets, with the
    // TTL of 255 that single hop asks for.
    let rows = common::tshark(
        &cap_file,
        &["-Y", "bfd"],
        &["ip.src", "ip.ttl", "bfd.sta", "bfd.detect_time_multiplier"],
    );
    let from = |src: &str| rows.iter().filter(|r| r[0] == src).count();
    assert!(from(NODE_IP) > 50, "{} from meshplane", from(NODE_IP));
    assert!(from(FRR_IP) > 50, "{} from bfdd", from(FRR_IP));
    assert!(
        rows.iter()
            .filter(|r| r[0] == NODE_IP)
            .all(|r| r[1] == "255" && r[3] == "3"),
        "{rows:?}"
    );
    // meshplane's states on the wire: Down, Init or Up (0x1..0x3).
    let states: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter(|r| r[0] == NODE_IP)
        .map(|r| r[2].as_str())
        .collect();
    assert!(states.contains("0x03"), "{states:?}");
}
