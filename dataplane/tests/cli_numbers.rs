//! Numbers from outside, at the edge of their range, through the real
//! binary: each is refused where it enters, naming the flag (or the
//! config line) and what is allowed; none panics, aborts or wraps.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");

fn tmp_dir(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cli-numbers-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir
}

fn meshplane(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run meshplane")
}

/// A refusal: exit `code`, stderr naming every one of `what`, no panic.
fn refused(out: &Output, code: i32, what: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for w in what {
        assert!(err.contains(w), "no {w:?} in:\n{err}");
    }
}

fn satellite(dir: &Path, node_extra: &str) -> PathBuf {
    let path = dir.join("sat.toml");
    let text = format!(
        r#"
[node]
name = "sat-numbers-{pid}"
role = "satellite"
{node_extra}

[io]
backend = "dpdk"
eal_args = ["--no-telemetry", "--log-level=notice"]

[[ports]]
name = "isl6"
mac = "02:00:00:00:00:01"
dpdk = "net_null_n0,copy=1"
"#,
        pid = std::process::id()
    );
    std::fs::write(&path, text).expect("config");
    path
}

#[test]
fn run_seconds_out_of_range_is_refused_not_a_panic() {
    let dir = tmp_dir("seconds");
    let cfg = satellite(&dir, "");
    let cfg = cfg.to_str().expect("utf-8 path");
    for bad in ["1e20", "-1", "NaN", "inf"] {
        let out = meshplane(&["run", "--config", cfg, &format!("--seconds={bad}")]);
        refused(&out, 2, &["--seconds", "from 0 to 1e9"]);
    }
    let out = meshplane(&[
        "run",
        "--config",
        cfg,
        "--stats-every-ms",
        "18446744073709551615",
    ]);
    refused(&out, 2, &["--stats-every-ms", "10..=1000000000000"]);
    let out = meshplane(&["run", "--config", cfg, "--until-idle-ms", "0"]);
    refused(&out, 2, &["--until-idle-ms", "1..=1000000000000"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cores_the_host_does_not_have_are_refused_by_check_config_and_run() {
    let dir = tmp_dir("cores");
    let cfg = satellite(&dir, "cores = [0, 1024]");
    let cfg = cfg.to_str().expect("utf-8 path");
    for cmd in ["check-config", "run"] {
        let out = meshplane(&[cmd, "--config", cfg]);
        refused(
            &out,
            1,
            &[
                "sat.toml:",
                "[node] cores entry = 1024 is out of range: want 0 to 1023",
            ],
        );
    }
    // A core below the mask's size that this host does not have.
    let cfg = satellite(&dir, "cores = [1000]");
    let cfg = cfg.to_str().expect("utf-8 path");
    let present = std::fs::read_to_string("/sys/devices/system/cpu/present").expect("cpus");
    let out = meshplane(&["check-config", "--config", cfg]);
    refused(
        &out,
        1,
        &[
            "core 1000: this host has ",
            &format!("CPUs ({})", present.trim()),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn routes_backups_out_of_range_is_refused_not_wrapped() {
    let out = meshplane(&[
        "routes",
        "--from",
        "Tokyo",
        "--to",
        "London",
        "--backups",
        "18446744073709551615",
    ]);
    refused(&out, 2, &["--backups", "0..=64"]);
    let out = meshplane(&[
        "routes",
        "--from",
        "Tokyo",
        "--to",
        "London",
        "--backups",
        "64",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn demo_counts_beyond_memory_are_refused() {
    let out = meshplane(&["demo", "--count", "100000000"]);
    refused(&out, 2, &["--count", "1..=1000000"]);
    let out = meshplane(&["demo", "--loops", "18446744073709551615"]);
    refused(&out, 2, &["--loops", "1..=100"]);
}

/// `gen --count 100000000` under a 1 GiB address-space limit: the old
/// generator built the whole capture in memory and aborted; the capture
/// is now written as it is generated, in a process that stays small.
#[test]
fn gen_streams_a_capture_larger_than_memory() {
    let dir = tmp_dir("gen");
    let out = dir.join("big.pcap");
    let mut child = Command::new("prlimit")
        .arg(format!("--as={}", 1u64 << 30))
        .arg("--")
        .arg(BIN)
        .args(["gen", "--count", "100000000", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit is part of util-linux");
    let deadline = Instant::now() + Duration::from_secs(30);
    let want = 64u64 << 20;
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!("gen ended early ({st}):\n{err}");
        }
        let len = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        if len >= want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {len} bytes written in 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
