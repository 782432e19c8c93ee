//! `meshplane run` with its management socket, as an operator meets it:
//! a node over DPDK `net_null` devices answers `meshplane ctl`, a second
//! node on the same socket path is refused naming the path, and the
//! socket goes away when the node stops.
#![cfg(feature = "dpdk")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");

fn config(dir: &Path, name: &str, socket: &Path) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
[node]
name = "{name}"
role = "satellite"
idle = "adaptive"
socket = "{socket}"

[io]
backend = "dpdk"
eal_args = ["--no-telemetry", "--log-level=notice"]

[[ports]]
name = "gsl-a"
mac = "02:00:00:00:01:01"
dpdk = "net_null0,no-rx=1"

[[ports]]
name = "gsl-b"
mac = "02:00:00:00:01:02"
dpdk = "net_null1,no-rx=1"

[[lfib]]
label = 1002
action = "swap"
out_label = 1003
port = "gsl-b"
next_hop_mac = "02:00:00:00:0b:02"
"#,
            socket = socket.display()
        ),
    )
    .expect("write config");
    path
}

#[test]
fn a_running_node_answers_ctl_refuses_a_second_on_its_path_and_removes_its_socket() {
    let pid = std::process::id();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("mgmt-run-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let socket = dir.join("sock/node.sock");
    let name = format!("mgmt-run-{pid}");
    let cfg = config(&dir, &name, &socket);
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--quiet", "--seconds", "60", "--config"])
        .arg(&cfg);
    let mut node = common::Proc::spawn(cmd);
    node.wait_for("running node=", Duration::from_secs(60));
    assert!(
        node.seen
            .iter()
            .any(|l| l.contains("management socket listening")
                && l.contains(&socket.display().to_string())),
        "{}",
        node.seen.join("\n")
    );

    let ctl = |args: &[&str]| {
        Command::new(BIN)
            .arg("ctl")
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ctl")
    };
    let o = ctl(&["show", "status"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        text.contains(&format!(
            "node        {name} (satellite, run-to-completion)"
        )),
        "{text}"
    );
    assert!(text.contains("next hops   gsl-b"), "{text}");
    let o = ctl(&["--json", "show", "ports"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["ports"][1]["name"], "gsl-b");
    assert_eq!(v["ports"][1]["mac"], "02:00:00:00:01:02");

    // Another node told to use the same path stops before it runs.
    let other = config(&dir, &format!("mgmt-run-2-{pid}"), &dir.join("unused.sock"));
    let o = Command::new(BIN)
        .args(["run", "--quiet", "--seconds", "5", "--config"])
        .arg(&other)
        .arg("--socket")
        .arg(&socket)
        .stdin(Stdio::null())
        .output()
        .expect("run a second node");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "management socket {}: another process is listening there",
            socket.display()
        )),
        "{err}"
    );
    // The first is untouched.
    assert_eq!(ctl(&["show", "drops"]).status.code(), Some(0));

    // SIGTERM: a clean stop takes the socket along.
    let term = Command::new("kill")
        .args(["-TERM", &node.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    let status = node.child.wait().expect("wait");
    assert!(status.success(), "{status}");
    assert!(!socket.exists(), "the socket outlived the node");
    let o = ctl(&["show", "status"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is the node running?"));

    // --no-socket: none at all.
    let o = Command::new(BIN)
        .args([
            "run",
            "--quiet",
            "--seconds",
            "0.2",
            "--no-socket",
            "--config",
        ])
        .arg(&cfg)
        .stdin(Stdio::null())
        .output()
        .expect("run without a socket");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("no management socket"));
    assert!(!socket.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
