//! Two workers over DPDK, each with its own queue of every port, both
//! forwarding: `net_pcap` ports with two RX and two TX queues (one capture
//! file each), so the split per queue is known exactly, as RSS would make
//! it. Each worker must carry its queue's traffic, each output file must
//! hold exactly its queue's frames, byte-identical and in order, and the
//! final counters must add up to what was sent. Runs the real binary (EAL
//! initialises once per process).
#![cfg(feature = "dpdk")]

use std::path::Path;
use std::process::Command;

use meshplane::chain::{default_chain, run_chain};
use meshplane::gen::{generate, FrameSize, GenSpec};
use meshplane::io::pcap::{read_file, CaptureWriter};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");

fn write(path: &Path, frames: &[&meshplane::io::pcap::CapturedPacket]) {
    let mut w = CaptureWriter::create(path).expect("create");
    for p in frames {
        w.write(p.ts, &p.data).expect("write");
    }
    w.finish().expect("finish");
}

#[test]
fn two_workers_forward_their_own_queues_and_counters_add_up() {
    let cores: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .take(2)
        .collect();
    assert_eq!(
        cores.len(),
        2,
        "this test needs two cores; the process may use {cores:?}"
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("dpdk-two-queues-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");

    // Gateway A's output is the satellite's input; the heap backend says
    // what the satellite must send for it.
    let hops = default_chain().expect("chain");
    let input = generate(&GenSpec {
        count: 3000,
        size: FrameSize::Imix,
        flows: 32,
        ..GenSpec::default()
    })
    .expect("traffic");
    let heap = run_chain(&hops[..2], input, 1).expect("heap chain");
    let (sat_in, sat_out) = (&heap.outputs[0], &heap.outputs[1]);
    assert_eq!(sat_in.len(), sat_out.len());
    // Queue 0 gets 2/3 of the frames, queue 1 the rest.
    let q = |i: usize| usize::from(i % 3 == 2);
    let split = |v: &[meshplane::io::pcap::CapturedPacket], want: usize| -> Vec<Vec<u8>> {
        v.iter()
            .enumerate()
            .filter(|(i, _)| q(*i) == want)
            .map(|(_, p)| p.data.clone())
            .collect()
    };
    for want in 0..2 {
        let frames: Vec<_> = sat_in
            .iter()
            .enumerate()
            .filter(|(i, _)| q(*i) == want)
            .map(|(_, p)| p)
            .collect();
        write(&dir.join(format!("in{want}.pcap")), &frames);
    }
    write(&dir.join("empty.pcap"), &[]);

    let d = |f: &str| dir.join(f).display().to_string();
    let config = dir.join("sat.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[node]
name = "sat-2q-{pid}"
role = "satellite"
cores = [{c0}, {c1}]

[io]
backend = "dpdk"
eal_args = ["--no-telemetry", "--log-level=notice"]

[[ports]]
name = "gsl-a"
mac = "02:00:00:00:01:01"
dpdk = "net_pcap_2q0,rx_pcap={in0},rx_pcap={in1},tx_pcap=/dev/null,tx_pcap=/dev/null"

[[ports]]
name = "gsl-b"
mac = "02:00:00:00:01:02"
dpdk = "net_pcap_2q1,rx_pcap={empty},rx_pcap={empty},tx_pcap={out0},tx_pcap={out1}"

[[lfib]]
label = 1002
action = "swap"
out_label = 1003
port = "gsl-b"
next_hop_mac = "02:00:00:00:0b:02"
"#,
            pid = std::process::id(),
            c0 = cores[0],
            c1 = cores[1],
            in0 = d("in0.pcap"),
            in1 = d("in1.pcap"),
            empty = d("empty.pcap"),
            out0 = d("out0.pcap"),
            out1 = d("out1.pcap"),
        ),
    )
    .expect("config");
    let json = dir.join("stats.json");
    let out = Command::new(BIN)
        .args([
            "run",
            "--quiet",
            "--until-idle-ms",
            "300",
            "--seconds",
            "30",
            "--config",
        ])
        .arg(&config)
        .arg("--stats-json")
        .arg(&json)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("json");
    let n = |v: &Value| v.as_u64().expect("a count");
    for w in 0..2 {
        let want = split(sat_out, w);
        let (got, _) = read_file(&dir.join(format!("out{w}.pcap"))).expect("output");
        let got: Vec<Vec<u8>> = got.into_iter().map(|p| p.data).collect();
        assert_eq!(got.len(), want.len(), "queue {w}: frames out");
        assert!(
            got == want,
            "queue {w}: output differs from the heap backend's"
        );
        let stats = &v["workers"][w]["stats"];
        assert_eq!(
            n(&stats["rx_packets"]),
            want.len() as u64,
            "worker {w} received"
        );
        assert_eq!(
            n(&stats["ports"][1]["tx_packets"]),
            want.len() as u64,
            "worker {w} sent"
        );
        assert_eq!(n(&stats["drops_total"]), 0);
    }
    let total = &v["total"];
    assert_eq!(n(&total["rx_packets"]), sat_in.len() as u64);
    assert_eq!(n(&total["tx_packets"]), sat_in.len() as u64);
    assert_eq!(n(&v["devices"][0]["rx_packets"]), sat_in.len() as u64);
    assert_eq!(n(&v["devices"][1]["tx_packets"]), sat_in.len() as u64);
    assert!(stdout.contains("(all returned)"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
