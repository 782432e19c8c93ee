//! The emulated Starlink-550 mesh between London and New York, end to end,
//! as a user runs it: `scripts/mesh up` (one namespace and one meshplane
//! process per node, AF_XDP on veth pairs), `ping` across it, a capture on
//! an ISL read by tshark, a UDP stream over the scheduled path changes,
//! an ISL cut on the active path, and `scripts/mesh down`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs `scripts/mesh` with this test's state directory, namespace prefix
/// and binary.
struct Mesh {
    dir: PathBuf,
    prefix: String,
}

impl Mesh {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mp-mesh-{tag}-{}", std::process::id()));
        Mesh {
            dir,
            prefix: format!("mt{}-", std::process::id() % 10000),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("bash");
        c.arg(repo().join("scripts/mesh"))
            .args(args)
            .env("MESHPLANE_MESH_DIR", &self.dir)
            .env("MESHPLANE_MESH_PREFIX", &self.prefix)
            .env("MESHPLANE_BIN", env!("CARGO_BIN_EXE_meshplane"))
            .env("MESHPLANE_SKIP_SETUP", "1");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).output().expect("scripts/mesh runs");
        eprintln!(
            "$ scripts/mesh {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        let _ = self.cmd(&["down"]).output();
    }
}

fn leftovers(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(String::from)
        .collect()
}

#[test]
fn ping_crosses_the_emulated_starlink_mesh_encrypted_and_label_switched() {
    let m = Mesh::new("e2e");
    // 9.0 s into the constellation's day London -> New York changes path
    // at 9.5 s and 15.2 s; the emulated clock runs at real time.
    let up = m.run(&[
        "up",
        "--constellation",
        "starlink-550",
        "--from",
        "London",
        "--to",
        "New-York-Newark",
        "--at",
        "9",
        "--window",
        "30",
    ]);
    assert!(up.status.success(), "mesh up failed");

    // 1. ping, host behind London -> host behind New York.
    let ping = m.run(&["ping", "-c", "5", "-i", "0.2", "-W", "2"]);
    assert!(ping.status.success(), "ping across the mesh failed");

    // 1b. The host found its gateway by ARP (no static entry), and the
    // gateway answers a ping to its LAN address.
    let hosts = std::fs::read_to_string(m.dir.join("hosts.tsv")).expect("hosts.tsv");
    let h: Vec<&str> = hosts
        .lines()
        .next()
        .expect("a host")
        .split_whitespace()
        .collect();
    let (host, gw_mac, gw_addr) = (h[0], h[6].to_lowercase(), h[7]);
    let neigh = m.run(&["exec", host, "ip", "neigh", "show", gw_addr]);
    let neigh = String::from_utf8_lossy(&neigh.stdout).to_lowercase();
    assert!(
        neigh.contains(&gw_mac) && !neigh.contains("permanent"),
        "the host did not learn its gateway by ARP: {neigh}"
    );
    let ping_gw = m.run(&[
        "exec", host, "ping", "-c", "3", "-i", "0.2", "-W", "2", gw_addr,
    ]);
    assert!(
        ping_gw.status.success(),
        "the gateway's LAN address did not answer"
    );

    // 1c. An LSP trace from gateway A names the satellites of the active
    // path, in order, then B as the egress; on the first link tshark reads
    // the probes as MPLS echo.
    trace_names_the_active_path(&m);

    // 1d. Gateway A pings a satellite's node address over its node label.
    let far_sat = active_path(&m.dir)
        .and_then(|p| p.get(p.len().saturating_sub(2)).cloned())
        .expect("a satellite on the path");
    let sock = m.dir.join("sock/gw0.sock");
    let ping_sat = Command::new(env!("CARGO_BIN_EXE_meshplane"))
        .args(["ctl", "--socket"])
        .arg(&sock)
        .args([
            "ping",
            "--to",
            &far_sat,
            "--count",
            "3",
            "--interval-ms",
            "100",
        ])
        .output()
        .expect("meshplane ctl");
    let text = String::from_utf8_lossy(&ping_sat.stdout);
    eprintln!(
        "$ meshplane ctl ping --to {far_sat}\n{text}{}",
        String::from_utf8_lossy(&ping_sat.stderr)
    );
    assert!(ping_sat.status.success(), "the satellite did not answer");
    assert!(text.contains("3 packets transmitted, 3 received"), "{text}");
    assert!(text.contains(&format!("({far_sat})")), "{text}");

    // 2. On an ISL: ESP inside MPLS, never the inner plaintext. The
    // capture and its pings take about two seconds: on one path.
    wait_out_path_change(&m.dir, 2.5);
    let (a, b) = active_isl(&m.dir).expect("the active path crosses an ISL");
    let isl = [format!("sat{a}"), format!("sat{b}")];
    let cap = m.dir.join("isl.pcap");
    let mut dump = m
        .cmd(&[
            "capture",
            &isl[0],
            &isl[1],
            cap.to_str().expect("path"),
            "-U",
        ])
        .spawn()
        .expect("scripts/mesh capture");
    std::thread::sleep(Duration::from_millis(500));
    let ping = m.run(&["ping", "-c", "20", "-i", "0.05", "-W", "2"]);
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-INT", &dump.id().to_string()])
        .status();
    let _ = dump.wait();
    assert!(ping.status.success());
    let fields = Command::new("tshark")
        .arg("-r")
        .arg(&cap)
        .args(["-T", "fields", "-e", "frame.protocols", "-e", "mpls.label"])
        .output()
        .expect("tshark");
    let text = String::from_utf8_lossy(&fields.stdout);
    let frames: Vec<&str> = text.lines().collect();
    eprintln!("{} frames on {} - {}", frames.len(), isl[0], isl[1]);
    // The requests cross it; the replies may take the reverse tree.
    assert!(
        frames.len() >= 20,
        "the pings did not cross {} - {}",
        isl[0],
        isl[1]
    );
    for f in &frames {
        eprintln!("  {f}");
        assert!(f.starts_with("eth:ethertype:mpls:ip:esp"), "{f}");
        assert!(!f.contains("icmp"), "plaintext on the ISL: {f}");
    }

    // 3. A UDP stream at a fixed rate over a path change: no loss.
    // Start a second before the next change, wherever start-up left us.
    let now = constellation_time(&m.dir).expect("clock");
    let next = path_changes(&m.dir)
        .into_iter()
        .find(|&c| c > now + 1.5)
        .expect("a path change ahead in the window");
    std::thread::sleep(Duration::from_secs_f64(next - 1.0 - now));
    let t0 = constellation_time(&m.dir).expect("clock");
    let stream = m.run(&["stream", "--pps", "1000", "--count", "6000"]);
    let t1 = constellation_time(&m.dir).expect("clock");
    let crossed: Vec<f64> = path_changes(&m.dir)
        .into_iter()
        .filter(|&c| c > t0 && c < t1)
        .collect();
    eprintln!("UDP stream from t = {t0:.1} s to {t1:.1} s, path changes at {crossed:?}");
    assert!(!crossed.is_empty(), "the stream crossed no path change");
    let report = String::from_utf8_lossy(&stream.stdout);
    assert!(
        report.contains("sent 6000, received 6000 distinct, lost 0"),
        "{report}"
    );
    assert!(stream.status.success());

    // 4. Cut an ISL of the active path: traffic resumes within a step.
    wait_out_path_change(&m.dir, 2.5);
    let isl = active_isl(&m.dir).expect("the active path crosses an ISL");
    let cut = m.run(&["fail-isl", &isl.0.to_string(), &isl.1.to_string()]);
    assert!(cut.status.success());
    let ping = m.run(&["ping", "-c", "100", "-i", "0.02", "-W", "1"]);
    let text = String::from_utf8_lossy(&ping.stdout);
    let received: u32 = text
        .split(", ")
        .find_map(|p| p.strip_suffix(" received")?.parse().ok())
        .expect("ping summary");
    eprintln!(
        "ISL {}-{} cut: {} of 100 pings answered ({} lost while rerouting)",
        isl.0,
        isl.1,
        received,
        100 - received
    );
    // One control step is 100 ms = 5 pings; allow for the round trip.
    assert!(received >= 90, "traffic did not resume within a step");
    let status = m.run(&["status"]);
    assert!(status.status.success(), "a node stopped");

    // 5. down leaves nothing.
    let down = m.run(&["down"]);
    assert!(down.status.success());
    assert!(leftovers(&m.prefix).is_empty(), "namespaces left behind");
}

/// Runs `scripts/mesh trace --json` on one path (retried once if a path
/// change fell inside it) and checks it against the plan, with a capture
/// of the first link read by tshark.
fn trace_names_the_active_path(m: &Mesh) {
    for attempt in 0..2 {
        wait_out_path_change(&m.dir, 2.5);
        let Some(path) = active_path(&m.dir) else {
            panic!("no active path in the plan");
        };
        let cap = m.dir.join(format!("trace{attempt}.pcap"));
        let mut dump = m
            // Immediate mode: the probes take milliseconds, and a capture
            // stopped within the kernel's block timeout would lose them.
            .cmd(&[
                "capture",
                &path[0],
                &path[1],
                cap.to_str().expect("path"),
                "-U",
                "--immediate-mode",
            ])
            .spawn()
            .expect("scripts/mesh capture");
        // The trace takes milliseconds: start it once tcpdump listens
        // (it creates its file then).
        for _ in 0..100 {
            if cap.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        let out = m.run(&["trace", "--json"]);
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill")
            .args(["-INT", &dump.id().to_string()])
            .status();
        let _ = dump.wait();
        if active_path(&m.dir).as_ref() != Some(&path) {
            eprintln!("the path changed during the trace: again");
            continue;
        }
        assert!(out.status.success(), "lsp-trace failed");
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("lsp-trace --json prints JSON");
        let hops = v["hops"].as_array().expect("hops");
        let names: Vec<String> = hops
            .iter()
            .map(|h| h["node"].as_str().unwrap_or("?").to_string())
            .collect();
        let want: Vec<String> = path[1..path.len() - 1].to_vec();
        let sats: Vec<String> = names
            .iter()
            .filter(|n| n.starts_with("sat"))
            .cloned()
            .collect();
        eprintln!("lsp-trace: {names:?}, the plan's satellites: {want:?}");
        assert_eq!(sats, want, "lsp-trace does not name the active path");
        let last = hops.last().expect("a hop");
        assert_eq!(last["return_code"], 3, "the last hop is the egress: {last}");
        assert_eq!(hops.len(), want.len() + 1, "{names:?}");
        assert!(hops.iter().all(|h| h["rtt_us"].as_f64().is_some()));

        let fields = Command::new("tshark")
            .arg("-r")
            .arg(&cap)
            .args([
                "-Y",
                "mpls-echo",
                "-T",
                "fields",
                "-e",
                "mpls_echo.msg_type",
            ])
            .output()
            .expect("tshark");
        let types = String::from_utf8_lossy(&fields.stdout);
        eprintln!(
            "MPLS echo on {} - {}: {:?}",
            path[0],
            path[1],
            types.lines().collect::<Vec<_>>()
        );
        assert!(
            types.lines().any(|t| t.trim() == "1"),
            "no echo request decoded"
        );
        assert!(
            types.lines().any(|t| t.trim() == "2"),
            "no echo reply decoded"
        );
        return;
    }
    panic!("the path changed during every trace");
}

/// The path active now (node names, gateway first), from the plan.
fn active_path(dir: &Path) -> Option<Vec<String>> {
    let t = constellation_time(dir)?;
    let plan = std::fs::read_to_string(dir.join("plan.txt")).ok()?;
    let mut active = None;
    for l in plan.lines().filter(|l| l.trim_start().starts_with("t =")) {
        let rest = l.trim_start().strip_prefix("t =")?.trim_start();
        let (at, path) = rest.split_once(" s ")?;
        if at.trim().parse::<f64>().ok()? <= t {
            active = Some(path.trim().to_string());
        }
    }
    Some(active?.split(" -> ").map(String::from).collect())
}

/// Constellation time now, from the clock anchor every node shares.
fn constellation_time(dir: &Path) -> Option<f64> {
    let cfg = std::fs::read_to_string(dir.join("nodes/gw0.toml")).ok()?;
    let field = |k: &str| {
        cfg.lines().find_map(|l| {
            l.strip_prefix(k)?
                .trim()
                .strip_prefix('=')?
                .trim()
                .parse::<f64>()
                .ok()
        })
    };
    let (anchor_ms, start_s) = (field("anchor_unix_ms")?, field("start_s")?);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis() as f64;
    Some(start_s + (now_ms - anchor_ms) / 1000.0)
}

/// Times at which the planned path changes.
fn path_changes(dir: &Path) -> Vec<f64> {
    let plan = std::fs::read_to_string(dir.join("plan.txt")).unwrap_or_default();
    plan.lines()
        .filter_map(|l| {
            l.trim_start()
                .strip_prefix("t =")?
                .split(" s ")
                .next()?
                .trim()
                .parse()
                .ok()
        })
        .collect()
}

/// If a planned path change falls within the next `secs` seconds, waits
/// until just after it, so that one path carries what follows however
/// long start-up took on a busy machine.
fn wait_out_path_change(dir: &Path, secs: f64) {
    let Some(now) = constellation_time(dir) else {
        return;
    };
    if let Some(c) = path_changes(dir)
        .into_iter()
        .find(|&c| c > now && c < now + secs)
    {
        eprintln!("constellation time {now:.1} s: waiting out the path change at {c:.1} s");
        std::thread::sleep(Duration::from_secs_f64(c - now + 0.3));
    }
}

/// An ISL of the path active now, from the plan and the shared clock.
fn active_isl(dir: &Path) -> Option<(u32, u32)> {
    let t = constellation_time(dir)?;
    let plan = std::fs::read_to_string(dir.join("plan.txt")).ok()?;
    let mut active = None;
    for l in plan.lines().filter(|l| l.trim_start().starts_with("t =")) {
        let rest = l.trim_start().strip_prefix("t =")?.trim_start();
        let (at, path) = rest.split_once(" s ")?;
        if at.trim().parse::<f64>().ok()? <= t {
            active = Some(path.trim().to_string());
        }
    }
    let nodes: Vec<&str> = active.as_deref()?.split(" -> ").collect();
    eprintln!("constellation time {t:.1} s, active path {nodes:?}");
    nodes.windows(2).find_map(|w| {
        let a = w[0].strip_prefix("sat")?.parse().ok()?;
        let b = w[1].strip_prefix("sat")?.parse().ok()?;
        Some((a, b))
    })
}
