//! Operator files that are not files, as a hostile or careless operator
//! makes them: the running node's configuration replaced by a FIFO, by a
//! link to `/dev/zero` or by a huge file, then `SIGHUP`; a failure file
//! that is `/dev/zero`. The node refuses each with a clear message, keeps
//! its stats going, stays small and stops at the first `SIGINT`. Runs the
//! real binary over DPDK `net_null` ports (EAL initialises once per
//! process).
#![cfg(feature = "dpdk")]

mod common;

use common::Proc;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");

fn tmp_dir(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("run-files-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir
}

fn satellite(tag: &str, extra: &str) -> String {
    format!(
        r#"
[node]
name = "sat-files-{tag}-{pid}"
role = "satellite"
idle = "adaptive"

[io]
backend = "dpdk"
eal_args = ["--no-telemetry", "--log-level=notice"]

[[ports]]
name = "isl6"
mac = "02:00:00:00:00:01"
dpdk = "net_null_f{tag}0,copy=1"
{extra}
"#,
        pid = std::process::id()
    )
}

fn start(cfg: &Path, json: &Path, seconds: u32) -> Proc {
    let mut c = Command::new(BIN);
    c.args(["run", "--quiet", "--stats-every-ms", "100", "--seconds"])
        .arg(seconds.to_string())
        .arg("--config")
        .arg(cfg)
        .arg("--stats-json")
        .arg(json);
    Proc::spawn(c)
}

fn signal(p: &Proc, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &p.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill {sig}");
}

/// Resident set of process `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Waits until the stats file is rewritten after `since` (the supervisor
/// is alive and publishing).
fn stats_after(json: &Path, since: std::time::SystemTime) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = std::fs::metadata(json).and_then(|m| m.modified());
        if m.is_ok_and(|m| m > since) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "stats file not rewritten since {since:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The running node's config becomes a FIFO (nobody writes it), then
/// SIGHUP: refused at once, stats keep coming, one SIGINT stops it.
#[test]
fn a_config_replaced_by_a_fifo_is_refused_and_sigint_still_stops_the_node() {
    let dir = tmp_dir("fifo");
    let cfg = dir.join("sat.toml");
    std::fs::write(&cfg, satellite("q", "")).expect("config");
    let json = dir.join("stats.json");
    let mut p = start(&cfg, &json, 120);
    p.wait_for("running", Duration::from_secs(30));
    stats_after(&json, std::time::SystemTime::UNIX_EPOCH);

    std::fs::remove_file(&cfg).expect("rm config");
    let ok = Command::new("mkfifo").arg(&cfg).status().expect("mkfifo");
    assert!(ok.success(), "mkfifo");
    signal(&p, "-HUP");
    p.wait_for("reload refused", Duration::from_secs(5));
    let refused = p.seen.last().cloned().unwrap_or_default();
    assert!(
        refused.contains("sat.toml") && refused.contains("is a FIFO, not a regular file"),
        "{refused}"
    );
    stats_after(&json, std::time::SystemTime::now());

    signal(&p, "-INT");
    let t = Instant::now();
    let (out, _) = p.finish(Duration::from_secs(10));
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(out.contains("worker(s)"), "final report: {out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The config becomes a link to /dev/zero, then a 5 GiB (sparse) file:
/// each SIGHUP is refused without reading it, and the process stays small.
#[test]
fn a_config_replaced_by_dev_zero_or_a_huge_file_is_refused_without_reading_it() {
    let dir = tmp_dir("zero");
    let cfg = dir.join("sat.toml");
    std::fs::write(&cfg, satellite("z", "")).expect("config");
    let json = dir.join("stats.json");
    let mut p = start(&cfg, &json, 120);
    p.wait_for("running", Duration::from_secs(30));
    stats_after(&json, std::time::SystemTime::UNIX_EPOCH);
    let before = rss_kib(p.child.id());

    std::fs::remove_file(&cfg).expect("rm config");
    std::os::unix::fs::symlink("/dev/zero", &cfg).expect("symlink");
    signal(&p, "-HUP");
    p.wait_for("reload refused", Duration::from_secs(5));
    let refused = p.seen.last().cloned().unwrap_or_default();
    assert!(
        refused.contains("is a character device, not a regular file"),
        "{refused}"
    );

    std::fs::remove_file(&cfg).expect("rm link");
    let f = std::fs::File::create(&cfg).expect("create");
    f.set_len(5 << 30).expect("sparse file");
    signal(&p, "-HUP");
    p.wait_for("reload refused", Duration::from_secs(5));
    let refused = p.seen.last().cloned().unwrap_or_default();
    assert!(
        refused.contains("larger than the limit of 4 MiB"),
        "{refused}"
    );
    let after = rss_kib(p.child.id());
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );

    signal(&p, "-INT");
    let _ = p.finish(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `[control] failures_file = "/dev/zero"`: reported once, no events, the
/// run ends on time and the process stays small.
#[test]
fn a_failure_file_that_is_dev_zero_is_reported_and_not_read() {
    let dir = tmp_dir("failures");
    let cfg = dir.join("sat.toml");
    std::fs::write(
        &cfg,
        satellite(
            "c",
            "[control]\nconstellation = \"kuiper-630\"\nnode = \"sat:5\"\nfailures_file = \"/dev/zero\"\n",
        ),
    )
    .expect("config");
    let json = dir.join("stats.json");
    let mut p = start(&cfg, &json, 4);
    p.wait_for("failure file not read", Duration::from_secs(30));
    let line = p.seen.last().cloned().unwrap_or_default();
    assert!(
        line.contains("/dev/zero") && line.contains("is a character device, not a regular file"),
        "{line}"
    );
    let rss = rss_kib(p.child.id());
    assert!(rss < 1 << 20, "RSS {rss} KiB");
    let (_, err) = p.finish(Duration::from_secs(30));
    assert_eq!(
        err.matches("failure file not read").count(),
        1,
        "reported once:\n{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `check-config` on what is not a configuration file fails at once,
/// naming the file and what it is.
#[test]
fn check_config_refuses_devices_and_fifos_at_once() {
    let dir = tmp_dir("check");
    let fifo = dir.join("fifo.toml");
    let ok = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(ok.success(), "mkfifo");
    for (path, what) in [
        (
            Path::new("/dev/zero"),
            "is a character device, not a regular file",
        ),
        (fifo.as_path(), "is a FIFO, not a regular file"),
    ] {
        let t = Instant::now();
        let mut c = Command::new(BIN);
        c.args(["check-config", "--config"]).arg(path);
        let p = Proc::spawn(c);
        let mut p = p;
        p.wait_for(what, Duration::from_secs(5));
        assert!(t.elapsed() < Duration::from_secs(5));
        let line = p.seen.last().cloned().unwrap_or_default();
        assert!(line.contains(&path.display().to_string()), "{line}");
        let st = p.child.wait().expect("wait");
        assert_eq!(st.code(), Some(1));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
