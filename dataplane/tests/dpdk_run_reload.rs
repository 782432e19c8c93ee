//! `SIGHUP` reloads a running node's tables from its file, as an operator
//! does it: the satellite forwards a capture replayed without end
//! (`net_pcap` `infinite_rx`); the file is edited to send label 1002 out
//! of the other port and the node is sent SIGHUP: the new epoch shows in
//! the stats and traffic moves. A broken edit is refused with the file,
//! line and reason in the log, the old tables stay, traffic keeps flowing.
//! Runs the real binary (EAL initialises once per process).
#![cfg(feature = "dpdk")]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meshplane::chain::{default_chain, run_chain};
use meshplane::gen::{generate, FrameSize, GenSpec};
use meshplane::io::pcap::CaptureWriter;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");

fn config(name: &str, input: &Path, out_port: &str) -> String {
    format!(
        r#"
[node]
name = "{name}"
role = "satellite"
idle = "adaptive"

[io]
backend = "dpdk"
eal_args = ["--no-telemetry", "--log-level=notice"]

[[ports]]
name = "gsl-a"
mac = "02:00:00:00:01:01"
dpdk = "net_pcap_hup0,rx_pcap={},infinite_rx=1,tx_pcap=/dev/null"

[[ports]]
name = "gsl-b"
mac = "02:00:00:00:01:02"
dpdk = "net_null_hup1,copy=1"

[[lfib]]
label = 1002
action = "swap"
out_label = 1003
port = "{out_port}"
next_hop_mac = "02:00:00:00:0b:02"
"#,
        input.display()
    )
}

fn stats(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn port_tx(v: &Value, port: usize) -> u64 {
    v["total"]["ports"][port]["tx_packets"]
        .as_u64()
        .unwrap_or(0)
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill {sig}");
}

/// Waits until the stats file satisfies `cond`.
fn wait_for(path: &Path, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = stats(path) {
            if cond(&v) {
                return v;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_reloads_tables_and_refuses_a_broken_file() {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dpdk-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let hops = default_chain().expect("chain");
    let traffic = generate(&GenSpec {
        count: 256,
        size: FrameSize::Fixed(128),
        flows: 8,
        ..GenSpec::default()
    })
    .expect("traffic");
    let labelled = run_chain(&hops[..1], traffic, 1).expect("gateway A");
    let input = dir.join("gsl-a-in.pcap");
    let mut w = CaptureWriter::create(&input).expect("create");
    for p in &labelled.outputs[0] {
        w.write(p.ts, &p.data).expect("write");
    }
    w.finish().expect("finish");

    let name = format!("sat-hup-{}", std::process::id());
    let cfg_path = dir.join("sat.toml");
    std::fs::write(&cfg_path, config(&name, &input, "gsl-b")).expect("config");
    let json = dir.join("stats.json");
    let child = Command::new(BIN)
        .args([
            "run",
            "--quiet",
            "--stats-every-ms",
            "100",
            "--seconds",
            "60",
            "--config",
        ])
        .arg(&cfg_path)
        .arg("--stats-json")
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start meshplane run");

    let v = wait_for(&json, "traffic on gsl-b", |v| port_tx(v, 1) > 1000);
    assert_eq!(v["table_epoch"], 1);
    assert_eq!(port_tx(&v, 0), 0, "nothing goes back out of gsl-a yet");

    // Edit: label 1002 now leaves on gsl-a.
    std::fs::write(&cfg_path, config(&name, &input, "gsl-a")).expect("config v2");
    signal(&child, "-HUP");
    let v = wait_for(&json, "epoch 2 carrying traffic on gsl-a", |v| {
        v["table_epoch"] == 2 && port_tx(v, 0) > 1000
    });
    let b_after = port_tx(&v, 1);

    // A broken edit: refused, epoch 2 stays, traffic keeps going to gsl-a.
    std::fs::write(&cfg_path, config(&name, &input, "gsl-z")).expect("broken config");
    signal(&child, "-HUP");
    std::thread::sleep(Duration::from_millis(400));
    let a_before = port_tx(&stats(&json).expect("stats"), 0);
    let v = wait_for(&json, "more traffic on gsl-a", |v| {
        port_tx(v, 0) > a_before + 1000
    });
    assert_eq!(v["table_epoch"], 2, "the broken file was not installed");
    // gsl-b got nothing more once epoch 2 was in (allow the burst in flight).
    assert!(
        port_tx(&v, 1) <= b_after + 32,
        "gsl-b kept receiving after the reload"
    );

    signal(&child, "-INT");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {}\n{stderr}", out.status);
    assert!(
        stderr.contains("tables reloaded") && stderr.contains("epoch 1 -> 2"),
        "{stderr}"
    );
    let refused = stderr
        .lines()
        .find(|l| l.contains("reload refused"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{stderr}"));
    assert!(
        refused.contains("keeping epoch 2")
            && refused.contains("sat.toml:")
            && refused.contains("unknown port \"gsl-z\""),
        "{refused}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
