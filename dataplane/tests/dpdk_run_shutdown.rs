//! Clean shutdown of `meshplane run` under load, as an operator sees it:
//! the node forwards a capture replayed without end (`net_pcap`
//! `infinite_rx`) to a `net_null` uplink; SIGINT stops it; it exits 0,
//! prints its final stats, writes a final `--stats-json` whose counters
//! account for every frame, and every mbuf is back in the pool. Once in
//! run-to-completion, once in pipeline mode (whose queues must drain).
//! Each run is its own process (EAL initialises once per process).
#![cfg(feature = "dpdk")]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use meshplane::chain::DEFAULT_CHAIN;
use meshplane::gen::{generate, FrameSize, GenSpec};
use meshplane::io::pcap::CaptureWriter;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");

fn cores(n: usize) -> Vec<usize> {
    let c: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .take(n)
        .collect();
    assert_eq!(
        c.len(),
        n,
        "this test needs {n} cores; the process may use {c:?}"
    );
    c
}

/// Gateway A's embedded configuration with DPDK devices on its ports.
fn gateway_config(dir: &Path, tag: &str, cores: &[usize], mode: &str) -> PathBuf {
    let lan_in = dir.join("lan-in.pcap");
    let mut w = CaptureWriter::create(&lan_in).expect("create");
    for p in generate(&GenSpec {
        count: 512,
        size: FrameSize::Imix,
        flows: 16,
        ..GenSpec::default()
    })
    .expect("traffic")
    {
        w.write(p.ts, &p.data).expect("write");
    }
    w.finish().expect("finish");
    let text = DEFAULT_CHAIN[0]
        .1
        .replace(
            "name = \"gw-a\"",
            &format!(
                "name = \"gw-a-{tag}-{}\"\ncores = {cores:?}\nmode = \"{mode}\"",
                std::process::id()
            ),
        )
        .replace(
            "name = \"lan0\"",
            &format!(
                "name = \"lan0\"\ndpdk = \"net_pcap_{tag}0,rx_pcap={},infinite_rx=1,tx_pcap=/dev/null\"",
                lan_in.display()
            ),
        )
        .replace(
            "name = \"up0\"",
            &format!("name = \"up0\"\ndpdk = \"net_null_{tag}1,copy=1\""),
        );
    let text = format!(
        "{text}\n[io]\nbackend = \"dpdk\"\neal_args = [\"--no-telemetry\", \"--log-level=notice\"]\n"
    );
    let path = dir.join(format!("gw-a-{tag}.toml"));
    std::fs::write(&path, text).expect("write config");
    path
}

fn json_u64(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}

fn shutdown_under_load(tag: &str, cores: &[usize], mode: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("dpdk-shutdown-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let config = gateway_config(&dir, tag, cores, mode);
    let stats = dir.join("stats.json");
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--stats-json")
        .arg(&stats)
        .args(["--stats-every-ms", "100", "--seconds", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start meshplane run");

    // Wait until it forwards, then let it run under load a little.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sent = std::fs::read_to_string(&stats)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .map(|v| json_u64(&v, &["total", "tx_packets"]))
            .unwrap_or(0);
        if sent > 10_000 {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            child.stderr.take().map(|mut e| e.read_to_string(&mut err));
            panic!("meshplane run ended early ({status}):\n{err}");
        }
        assert!(
            Instant::now() < deadline,
            "node never forwarded 10000 frames"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let sigint = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(sigint.success());
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit status {} after SIGINT\n{stdout}\n{stderr}",
        out.status
    );

    // The final report: every mbuf back.
    let buffers = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("buffers "))
        .unwrap_or_else(|| panic!("no buffer line in the final stats:\n{stdout}"));
    assert!(buffers.contains("(all returned)"), "{buffers}");

    // The final JSON accounts for every frame.
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).expect("stats json")).expect("json");
    assert_eq!(
        v["final"],
        Value::Bool(true),
        "final document written at exit"
    );
    let rx = json_u64(&v, &["total", "rx_packets"]);
    let tx = json_u64(&v, &["total", "tx_packets"]);
    let drops = json_u64(&v, &["total", "drops_total"]);
    assert!(tx > 10_000, "forwarded under load: {tx}");
    assert_eq!(
        rx,
        tx + drops,
        "every received frame sent or counted as dropped"
    );
    let workers = v["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), cores.len());
    let wsum: u64 = workers
        .iter()
        .map(|w| json_u64(w, &["stats", "rx_packets"]))
        .sum();
    assert_eq!(wsum, rx, "workers add up to the total");
    // lan0's device counted exactly what the workers received there; the
    // uplink's device sent exactly what they sent there.
    let dev = v["devices"].as_array().expect("devices");
    let lan_rx = v["total"]["ports"][0]["rx_packets"]
        .as_u64()
        .expect("lan0 rx");
    assert_eq!(json_u64(&dev[0], &["rx_packets"]), lan_rx);
    let up_tx = v["total"]["ports"][1]["tx_packets"]
        .as_u64()
        .expect("up0 tx");
    assert_eq!(json_u64(&dev[1], &["tx_packets"]), up_tx);
    // Every LAN frame was encrypted and sent up; the only drops are the
    // zero-filled frames net_null hands in on the uplink (sent to MAC
    // 00:00:00:00:00:00, not the port's).
    assert_eq!(up_tx, lan_rx, "every LAN frame left encrypted");
    let up_rx = v["total"]["ports"][1]["rx_packets"]
        .as_u64()
        .expect("up0 rx");
    assert_eq!(json_u64(&v, &["total", "drops", "not_for_us"]), up_rx);
    assert_eq!(drops, up_rx);
    assert_eq!(
        json_u64(&v, &["buffers", "available"]),
        json_u64(&v, &["buffers", "size"]),
        "mbufs back in the pool"
    );
    eprintln!("{mode}: {rx} received, {tx} sent, {drops} dropped; {buffers}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigint_under_load_run_to_completion() {
    shutdown_under_load("rtc", &cores(1), "run-to-completion");
}

#[test]
fn sigint_under_load_pipeline_drains_its_queues() {
    shutdown_under_load("pipe", &cores(2), "pipeline");
}
