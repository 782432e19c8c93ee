//! What the `meshplane` command says when it refuses: each cause once,
//! and a demo size the chain cannot carry refused up front with the
//! largest one it can.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run meshplane");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_os_error_is_reported_once() {
    let dir = std::env::temp_dir();
    let dir = dir.to_str().expect("utf-8 temp dir");
    let gw = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/gw-a.toml");
    let out = format!("{dir}/mp-cli-errors-{}.pcap", std::process::id());
    for args in [
        vec!["gen", "--out", dir, "--count", "1"],
        vec!["replay", "--config", gw, "--pcap", dir, "--out", &out],
        vec!["check-config", "--config", dir],
    ] {
        let (code, _, err) = run(&args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        let lower = err.to_lowercase();
        assert_eq!(
            lower.matches("is a directory").count(),
            1,
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    let _ = std::fs::remove_file(&out);
}

#[test]
fn demo_refuses_frames_its_chain_cannot_carry_naming_the_largest() {
    let (code, out, err) = run(&["demo", "--size", "9000", "--count", "10"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(!out.contains("lost or altered"), "ran anyway: {out}");
    let want = "--size 9000: the demo chain carries frames of at most ";
    let at = err.find(want).unwrap_or_else(|| panic!("{err}"));
    let largest: usize = err[at + want.len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in {err}"));
    assert!((1500..9000).contains(&largest), "{err}");

    // The size it names works, and one more byte is refused.
    let ok = largest.to_string();
    let (code, out, err) = run(&["demo", "--size", &ok, "--count", "10"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("10 inner packets delivered byte-for-byte, 0 lost"),
        "{out}"
    );
    let over = (largest + 1).to_string();
    let (code, _, err) = run(&["demo", "--size", &over, "--count", "10"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("at most {largest} bytes")), "{err}");
}
