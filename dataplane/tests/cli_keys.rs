//! `meshplane keys` as an operator runs it: one key per node, readable by
//! its owner only, and a trust file holding every node's public key; an
//! existing set is not overwritten without --force.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");

#[test]
fn keys_writes_private_keys_and_a_trust_file_and_keeps_an_existing_set() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = |extra: &[&str]| {
        Command::new(BIN)
            .args([
                "keys",
                "--constellation",
                "starlink-550",
                "--nodes",
                "0-2,1590",
                "--out-dir",
            ])
            .arg(&dir)
            .args(extra)
            .output()
            .expect("meshplane keys")
    };
    let out = run(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trust = std::fs::read_to_string(dir.join("trust")).expect("trust file");
    let ids: Vec<&str> = trust
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["0", "1", "2", "1590"]);
    for id in ["0", "1", "2", "1590"] {
        let key = dir.join(format!("node-{id}.key"));
        let mode = std::fs::metadata(&key)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }
    // A second run would replace every node's key: refused, files kept.
    let again = run(&[]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("trust")).expect("trust"),
        trust
    );
    let forced = run(&["--force"]);
    assert!(forced.status.success());
    assert_ne!(
        std::fs::read_to_string(dir.join("trust")).expect("trust"),
        trust
    );
    // Ids the constellation does not have.
    let bad = Command::new(BIN)
        .args(["keys", "--nodes", "99999", "--out-dir"])
        .arg(dir.join("x"))
        .output()
        .expect("meshplane keys");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a node id below 1684"));
    let _ = std::fs::remove_dir_all(&dir);
}
