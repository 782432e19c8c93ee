//! `[io] buffers` over AF_XDP: `meshplane run` on a veth sizes its UMEM
//! from the port's rings by default and from `[io] buffers` when set, and
//! the stats the user reads (`--stats-json`) show that size.

mod common;

use common::Lab;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");

fn config(dir: &Path, iface: &str, buffers: Option<u32>) -> PathBuf {
    let path = dir.join(format!("gw-{}.toml", buffers.unwrap_or(0)));
    let line = buffers.map_or(String::new(), |b| format!("buffers = {b}"));
    std::fs::write(
        &path,
        format!(
            r#"
[node]
name = "buf-xdp-{pid}"
role = "satellite"
idle = "adaptive"

[io]
backend = "afxdp"
{line}

[[ports]]
name = "isl0"
mac = "02:00:00:00:0c:01"
iface = "{iface}"
"#,
            pid = std::process::id(),
        ),
    )
    .expect("write config");
    path
}

/// Runs the node briefly; the UMEM size its stats report, and stderr.
fn umem_size(config: &Path, json: &Path) -> (u64, String) {
    let out = Command::new(BIN)
        .args(["run", "--quiet", "--seconds", "0.3", "--config"])
        .arg(config)
        .arg("--stats-json")
        .arg(json)
        .env("NO_COLOR", "1")
        .output()
        .expect("start meshplane");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).expect("stats json")).expect("json");
    let size = v["buffers"]["size"]
        .as_u64()
        .unwrap_or_else(|| panic!("no buffers in {v}"));
    (size, err)
}

#[test]
fn the_umem_follows_io_buffers_and_defaults_to_what_the_rings_hold() {
    let Some(lab) = Lab::new("buf", &[("02:00:00:00:0c:01", "02:00:00:00:0c:02", 1500)]) else {
        return;
    };
    let iface = lab.links[0].inner.clone();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("afxdp-buffers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let json = dir.join("stats.json");

    // Default rings of 4096: fill and RX full, TX full, 8 bursts in flight.
    let (size, err) = umem_size(&config(&dir, &iface, None), &json);
    assert_eq!(size, 2 * 4096 + 4096 + 8 * 32, "{err}");
    assert!(err.contains("UMEM 12544 frames"), "{err}");

    let (size, err) = umem_size(&config(&dir, &iface, Some(20000)), &json);
    assert_eq!(size, 20000, "{err}");
    assert!(err.contains("UMEM 20000 frames"), "{err}");
    assert!(!err.contains("may run dry"), "{err}");

    // Fewer than the rings hold: runs, and says what that risks.
    let (size, err) = umem_size(&config(&dir, &iface, Some(2048)), &json);
    assert_eq!(size, 2048, "{err}");
    assert!(
        err.contains("[io] buffers 2048 gives each of 1 worker(s) 2048 UMEM frames, fewer than its rings hold (12544)"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
