//! `[io] buffers` as a user meets it: `meshplane run` over DPDK's
//! `net_pcap` with `infinite_rx=1` keeps the whole capture in mbufs. With
//! a 10,000-frame capture the default pool is too small, and the run says
//! so before DPDK's own "Invalid argument", naming the port, the capture
//! and how many buffers to set; with that many set, the node runs and its
//! pool has exactly that size. Each run is its own process (EAL
//! initialises once per process).
#![cfg(feature = "dpdk")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use meshplane::gen::{generate, FrameSize, GenSpec};
use meshplane::io::pcap::CaptureWriter;

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");

fn config(dir: &Path, capture: &Path, buffers: Option<u32>) -> PathBuf {
    let path = dir.join(format!("sat-{}.toml", buffers.unwrap_or(0)));
    let line = buffers.map_or(String::new(), |b| format!("buffers = {b}"));
    std::fs::write(
        &path,
        format!(
            r#"
[node]
name = "sat-buf-{pid}"
role = "satellite"

[io]
backend = "dpdk"
eal_args = ["--no-telemetry", "--log-level=notice"]
{line}

[[ports]]
name = "lan0"
mac = "02:00:00:00:01:01"
dpdk = "net_pcap0,rx_pcap={cap},infinite_rx=1"
"#,
            pid = std::process::id(),
            cap = capture.display(),
        ),
    )
    .expect("write config");
    path
}

fn run(config: &Path, json: &Path) -> Output {
    Command::new(BIN)
        .args(["run", "--quiet", "--seconds", "0.3", "--config"])
        .arg(config)
        .arg("--stats-json")
        .arg(json)
        .env("NO_COLOR", "1")
        .output()
        .expect("start meshplane")
}

/// The number after `>= ` in the error.
fn wanted(err: &str) -> u32 {
    err.split("set [io] buffers >= ")
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no buffer count in: {err}"))
}

#[test]
fn infinite_rx_of_a_large_capture_names_the_buffers_it_needs_and_runs_with_them() {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dpdk-buffers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let capture = dir.join("in.pcap");
    let frames = generate(&GenSpec {
        count: 10_000,
        size: FrameSize::Fixed(64),
        flows: 16,
        ..GenSpec::default()
    })
    .expect("traffic");
    let mut w = CaptureWriter::create(&capture).expect("create");
    for p in &frames {
        w.write(p.ts, &p.data).expect("write");
    }
    w.finish().expect("finish");
    let json = dir.join("stats.json");

    // The default pool: refused, saying why and how many.
    let out = run(&config(&dir, &capture, None), &json);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("meshplane: error:"))
        .unwrap_or_else(|| panic!("no error line:\n{err}"));
    let want = format!(
        "port lan0 (net_pcap0): infinite_rx keeps all 10000 frames of {} in mbufs, but [io] \
         buffers is 8191 (the default): set [io] buffers >= ",
        capture.display()
    );
    assert!(line.contains(&want), "{line}");
    assert!(!err.contains("Invalid argument"), "{err}");
    let need = wanted(line);
    assert!((10_000..20_000).contains(&need), "{line}");

    // One short of it: still refused, with the same count.
    let out = run(&config(&dir, &capture, Some(need - 1)), &json);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "but [io] buffers is {}: set [io] buffers >= {need}",
            need - 1
        )),
        "{err}"
    );

    // As many as it says: the node runs, replaying the capture, over a
    // pool of that size.
    let out = run(&config(&dir, &capture, Some(need)), &json);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("buffers"), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("stats json")).expect("json");
    assert_eq!(v["buffers"]["size"].as_u64(), Some(u64::from(need)), "{v}");
    let rx = v["devices"][0]["rx_packets"].as_u64().expect("device rx");
    assert!(rx > 10_000, "infinite_rx replayed only {rx} frames");
    let _ = std::fs::remove_dir_all(&dir);
}
