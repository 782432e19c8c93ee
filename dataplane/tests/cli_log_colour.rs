//! Log lines carry ANSI colours only on a terminal and never with
//! `NO_COLOR` set: a log file (`scripts/mesh`, `2>node.log`) is plain text.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");
const GW: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/gw-a.toml");

/// A capture of one frame recorded shorter than sent, which `replay`
/// warns about (a log line on every run).
fn truncated_capture(tag: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir();
    let pcap = dir.join(format!("mp-colour-{tag}-{}.pcap", std::process::id()));
    let out = dir.join(format!("mp-colour-{tag}-{}-out.pcap", std::process::id()));
    // pcap header (magic, version 2.4, zone, sigfigs, snaplen, Ethernet),
    // then one record of 60 bytes captured from 100 sent.
    let mut b = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    for v in [0u32, 0, 65_535, 1, 0, 0, 60, 100] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&[0u8; 60]);
    std::fs::write(&pcap, b).expect("write capture");
    (pcap, out)
}

fn replay_args<'a>(pcap: &'a Path, out: &'a Path) -> [&'a str; 7] {
    [
        "replay",
        "--config",
        GW,
        "--pcap",
        pcap.to_str().expect("utf-8 temp dir"),
        "--out",
        out.to_str().expect("utf-8 temp dir"),
    ]
}

#[test]
fn a_log_written_to_a_file_has_no_escapes() {
    let (pcap, out) = truncated_capture("file");
    let log = pcap.with_extension("log");
    let file = std::fs::File::create(&log).expect("log file");
    let status = Command::new(BIN)
        .args(replay_args(&pcap, &out))
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(file)
        .status()
        .expect("run meshplane");
    assert!(status.success());
    let text = std::fs::read(&log).expect("read log");
    let shown = String::from_utf8_lossy(&text);
    assert!(shown.contains("WARN"), "no log line: {shown}");
    assert!(shown.contains("shorter than sent"), "{shown}");
    assert!(!text.contains(&0x1b), "escapes in a log file: {shown:?}");
    for f in [pcap, out, log] {
        let _ = std::fs::remove_file(f);
    }
}

/// `replay` on a terminal (`script` gives it one), with `NO_COLOR` as
/// given; what the terminal showed, or `None` without `script`.
fn on_a_terminal(no_color: Option<&str>) -> Option<Vec<u8>> {
    let (pcap, out) = truncated_capture(if no_color.is_some() { "nc" } else { "tty" });
    let line = std::iter::once(BIN)
        .chain(replay_args(&pcap, &out))
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &format!("{line} >/dev/null"), "/dev/null"])
        .stdin(Stdio::null())
        .env_remove("NO_COLOR");
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    let shown = cmd.output().ok().filter(|o| o.status.success());
    let _ = std::fs::remove_file(pcap);
    let _ = std::fs::remove_file(out);
    shown.map(|o| o.stdout)
}

#[test]
fn a_terminal_gets_colours_unless_no_color_is_set() {
    let Some(coloured) = on_a_terminal(None) else {
        eprintln!("SKIPPED: no `script` to give the command a terminal");
        return;
    };
    let shown = String::from_utf8_lossy(&coloured);
    assert!(shown.contains("shorter than sent"), "{shown}");
    assert!(
        coloured.contains(&0x1b),
        "no colour on a terminal: {shown:?}"
    );
    let plain = on_a_terminal(Some("1")).expect("script ran before");
    let shown = String::from_utf8_lossy(&plain);
    assert!(shown.contains("shorter than sent"), "{shown}");
    assert!(!plain.contains(&0x1b), "colour despite NO_COLOR: {shown:?}");
}
