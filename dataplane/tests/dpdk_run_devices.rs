//! What `meshplane run` says about devices in the node's configuration
//! that do not work as written: a `net_pcap` whose `rx_pcap` file is
//! missing (named, before EAL starts), a device its driver refuses at
//! probe time (given to EAL, failed to probe), and a `net_null` whose RX
//! side generates frames the node would poll and drop at line rate.
#![cfg(feature = "dpdk")]

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");

fn tmp_dir(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("run-devices-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir
}

/// Runs a one-port satellite on `device` for a fifth of a second; exit
/// code and stderr.
fn run_on(tag: &str, device: &str) -> (Option<i32>, String) {
    let dir = tmp_dir(tag);
    let cfg = dir.join("sat.toml");
    let text = format!(
        r#"
[node]
name = "sat-dev-{tag}-{pid}"
role = "satellite"
idle = "adaptive"

[io]
backend = "dpdk"
eal_args = ["--no-telemetry", "--log-level=notice"]

[[ports]]
name = "isl6"
mac = "02:00:00:00:00:01"
dpdk = "{device}"
"#,
        pid = std::process::id()
    );
    std::fs::write(&cfg, text).expect("config");
    let out = Command::new(BIN)
        .args(["run", "--quiet", "--seconds", "0.2", "--config"])
        .arg(&cfg)
        .env_remove("RUST_LOG")
        .output()
        .expect("run meshplane");
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_rx_pcap_file_is_named() {
    let missing = tmp_dir("missing-in").join("no-such.pcap");
    let out = tmp_dir("missing-out").join("out.pcap");
    let device = format!(
        "net_pcap_m0,rx_pcap={},tx_pcap={}",
        missing.display(),
        out.display()
    );
    let (code, err) = run_on("m", &device);
    assert_eq!(code, Some(1), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains("device net_pcap_m0: rx_pcap file"), "{err}");
    assert!(last.contains(&missing.display().to_string()), "{err}");
    assert!(last.contains("No such file"), "{err}");
    assert!(!err.contains("was it passed to EAL"), "{err}");
}

#[test]
fn a_device_that_fails_to_probe_is_said_to_have_failed() {
    // An interface that does not exist: net_pcap refuses it at probe time.
    let (code, err) = run_on("p", "net_pcap_p0,iface=mp-no-such-if0");
    assert_eq!(code, Some(1), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.contains("device net_pcap_p0 was given to EAL but failed to probe"),
        "{err}"
    );
    assert!(!err.contains("was it passed to EAL"), "{err}");
}

#[test]
fn a_null_device_that_generates_frames_is_warned_about() {
    let (code, err) = run_on("n", "net_null_w0");
    assert_eq!(code, Some(0), "{err}");
    let warned: Vec<&str> = err.lines().filter(|l| l.contains("no-rx=1")).collect();
    assert_eq!(warned.len(), 1, "{err}");
    assert!(warned[0].contains("WARN"), "{err}");
    assert!(
        warned[0].contains(r#"write dpdk = "net_null_w0,no-rx=1""#),
        "{err}"
    );

    let (code, err) = run_on("q", "net_null_w1,no-rx=1");
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("no-rx"), "{err}");
    assert!(!err.contains("generates frames"), "{err}");
}
