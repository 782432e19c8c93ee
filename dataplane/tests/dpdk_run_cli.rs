//! `meshplane run` over DPDK, as a user runs it: a node configuration with
//! `[io] backend = "dpdk"` whose ports name their devices. Each run is its
//! own process (EAL initialises once per process).
//!
//! - The satellite of the embedded chain, ports on `net_pcap`, forwards
//!   gateway A's output byte-identical to the heap backend.
//! - Two workers (two cores, two queues per port) over `net_null` ports.
#![cfg(feature = "dpdk")]

use std::path::Path;
use std::process::Command;

use meshplane::chain::{default_chain, run_chain};
use meshplane::gen::{generate, FrameSize, GenSpec};
use meshplane::io::pcap::{read_file, CaptureWriter};

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");

fn run(config: &Path, extra: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(config)
        .args(extra)
        .output()
        .expect("start meshplane");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "meshplane run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

const SAT_PORTS_AND_LFIB: &str = r#"
[[lfib]]
label = 1002
action = "swap"
out_label = 1003
port = "gsl-b"
next_hop_mac = "02:00:00:00:0b:02"

[[lfib]]
label = 2001
action = "swap"
out_label = 1001
port = "gsl-a"
next_hop_mac = "02:00:00:00:0a:02"
"#;

#[test]
fn run_forwards_over_the_devices_the_config_names() {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dpdk-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");

    let hops = default_chain().expect("embedded chain");
    let input = generate(&GenSpec {
        count: 2000,
        size: FrameSize::Imix,
        flows: 32,
        ..GenSpec::default()
    })
    .expect("traffic");
    let heap = run_chain(&hops, input, 1).expect("heap chain");
    let sat_in = dir.join("gsl-a-in.pcap");
    let mut w = CaptureWriter::create(&sat_in).expect("create");
    for p in &heap.outputs[0] {
        w.write(p.ts, &p.data).expect("write");
    }
    w.finish().expect("finish");
    let empty = dir.join("empty.pcap");
    CaptureWriter::create(&empty)
        .expect("empty")
        .finish()
        .expect("finish");
    let out_b = dir.join("gsl-b-out.pcap");

    let config = dir.join("sat-1.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[node]
name = "sat-1-run-{pid}"
role = "satellite"

[io]
backend = "dpdk"
eal_args = ["--no-telemetry", "--log-level=notice"]

[[ports]]
name = "gsl-a"
mac = "02:00:00:00:01:01"
dpdk = "net_pcap0,rx_pcap={inp},tx_pcap={out_a}"

[[ports]]
name = "gsl-b"
mac = "02:00:00:00:01:02"
dpdk = "net_pcap1,rx_pcap={empty},tx_pcap={out_b}"
{SAT_PORTS_AND_LFIB}"#,
            pid = std::process::id(),
            inp = sat_in.display(),
            out_a = dir.join("gsl-a-out.pcap").display(),
            empty = empty.display(),
            out_b = out_b.display(),
        ),
    )
    .expect("write config");
    let report = run(&config, &["--until-idle-ms", "300", "--seconds", "30"]);
    let n = heap.outputs[0].len();
    assert!(
        report.contains(&format!("{n} packets in, {n} out, 0 dropped")),
        "{report}"
    );
    let (out, _) = read_file(&out_b).expect("read output");
    let got: Vec<&[u8]> = out.iter().map(|p| p.data.as_slice()).collect();
    let want: Vec<&[u8]> = heap.outputs[1].iter().map(|p| p.data.as_slice()).collect();
    assert_eq!(got, want, "output differs from the heap backend's");

    // Two workers on two cores: each polls its own queue of both ports.
    let cores: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .take(2)
        .collect();
    if cores.len() < 2 {
        eprintln!("two-worker run skipped: this process may use only {cores:?}");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    // net_null hands out 64-byte frames of zeros, which the node drops as
    // not addressed to it and counts; nothing may be lost without a count.
    let config2 = dir.join("null.toml");
    std::fs::write(
        &config2,
        format!(
            r#"
[node]
name = "null-run-{pid}"
role = "satellite"
cores = [{c0}, {c1}]
idle = "adaptive"

[io]
backend = "dpdk"
eal_args = ["--no-telemetry", "--log-level=notice"]

[[ports]]
name = "gsl-a"
mac = "02:00:00:00:01:01"
dpdk = "net_null0,copy=1"

[[ports]]
name = "gsl-b"
mac = "02:00:00:00:01:02"
dpdk = "net_null1,copy=1"
{SAT_PORTS_AND_LFIB}"#,
            pid = std::process::id(),
            c0 = cores[0],
            c1 = cores[1],
        ),
    )
    .expect("write config");
    let json = dir.join("null-stats.json");
    let json_arg = json.display().to_string();
    let report = run(
        &config2,
        &["--seconds", "0.5", "--quiet", "--stats-json", &json_arg],
    );
    assert!(report.starts_with("2 worker(s)"), "{report}");
    let first = report.lines().nth(1).unwrap_or_default();
    // "node X: N packets in, 0 out, N dropped ..."
    let words: Vec<&str> = first.split_whitespace().collect();
    let rx: u64 = words.get(2).and_then(|w| w.parse().ok()).unwrap_or(0);
    assert!(rx > 0, "{report}");
    assert!(
        first.contains(&format!("{rx} packets in, 0 out, {rx} dropped")),
        "{report}"
    );
    // Both workers carried traffic, and per worker, per port and per
    // device the counters add up exactly.
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("stats json")).expect("json");
    let n = |v: &serde_json::Value| v.as_u64().expect("a count");
    let workers = v["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 2);
    let mut sum = 0;
    for w in workers {
        let got = n(&w["stats"]["rx_packets"]);
        assert!(got > 0, "worker {} carried nothing", w["index"]);
        assert_eq!(n(&w["stats"]["drops_total"]), got);
        sum += got;
    }
    assert_eq!(sum, rx);
    for port in 0..2 {
        let workers_rx: u64 = workers
            .iter()
            .map(|w| n(&w["stats"]["ports"][port]["rx_packets"]))
            .sum();
        assert_eq!(
            n(&v["devices"][port]["rx_packets"]),
            workers_rx,
            "port {port}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
