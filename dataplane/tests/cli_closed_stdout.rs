//! A command whose reader goes away (`meshplane routes ... | head`) ends
//! quietly with status 0, as Unix tools do, instead of panicking with
//! "failed printing to stdout".

use std::io::Read;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");

/// Runs `args` with a stdout whose reader is already closed; status and
/// stderr.
fn with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(BIN)
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run meshplane");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_quiet(args: &[&str], (code, err): (Option<i32>, String)) {
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
    assert_eq!(err, "", "{args:?}");
    assert_eq!(code, Some(0), "{args:?}: {err}");
}

#[test]
fn commands_end_quietly_when_their_reader_has_gone() {
    let dir = std::env::temp_dir().join(format!("mp-closed-stdout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pcap = dir.join("in.pcap");
    let pcap = pcap.to_str().expect("utf-8 temp dir");
    let out = dir.join("out.pcap");
    let out = out.to_str().expect("utf-8 temp dir");
    let plan = dir.join("plan");
    let plan = plan.to_str().expect("utf-8 temp dir");
    let gw = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/gw-a.toml");
    assert_eq!(
        Command::new(BIN)
            .args(["gen", "--out", pcap, "--count", "10"])
            .output()
            .expect("gen")
            .status
            .code(),
        Some(0)
    );
    for args in [
        vec!["gen", "--out", pcap, "--count", "10"],
        vec!["check-config", "--config", gw],
        vec!["replay", "--config", gw, "--pcap", pcap, "--out", out],
        vec!["demo", "--count", "10"],
        vec!["routes", "--from", "0", "--to", "5"],
        vec!["routes", "--all", "--csv"],
        vec![
            "mesh-plan",
            "--from",
            "0",
            "--to",
            "5",
            "--window",
            "2",
            "--out-dir",
            plan,
        ],
    ] {
        assert_quiet(&args, with_closed_stdout(&args));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_series_piped_into_head_ends_quietly() {
    // The reader takes the first bytes and closes, as `head -c` does.
    let args = [
        "routes",
        "--from",
        "0",
        "--to",
        "5",
        "--series",
        "--json",
        "--duration-s",
        "20",
    ];
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run meshplane");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).expect("first bytes");
    assert_eq!(first[0], b'[', "{}", String::from_utf8_lossy(&first));
    drop(stdout);
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_quiet(&args, (out.status.code(), err));
}
