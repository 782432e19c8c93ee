//! Network-namespace labs for the AF_XDP tests: veth pairs whose one end
//! stays in the test's namespace (for the node under test) and whose other
//! end sits in a namespace of its own (a host, a link peer). Everything is
//! removed on drop, also when a test fails; names carry the process id and
//! a per-test tag so tests run side by side.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs `ip ARGS`, true on success.
pub fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn must(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ip link show dev IFACE` mentions an XDP program.
pub fn has_xdp(iface: &str) -> bool {
    let out = Command::new("ip")
        .args(["link", "show", "dev", iface])
        .output()
        .expect("run ip");
    let s = String::from_utf8_lossy(&out.stdout);
    s.contains(" xdp") || s.contains("prog/xdp")
}

/// Whether an XDP program stays on `iface` for 2 s: a link closed in this
/// process may live on a moment longer in a child forked meanwhile (until
/// its exec closes the descriptor).
pub fn xdp_stays(iface: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while has_xdp(iface) {
        if Instant::now() > deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// One veth pair: `inner` in this namespace, `outer` in namespace `ns`.
#[derive(Clone, Debug)]
pub struct Link {
    /// The end the node under test uses (in the test's namespace).
    pub inner: String,
    /// The far end, inside `ns`.
    pub outer: String,
    /// The namespace of the far end.
    pub ns: String,
}

/// Namespaces and veth pairs, deleted on drop.
pub struct Lab {
    pub links: Vec<Link>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for l in &self.links {
            let _ = ip(&["link", "del", &l.inner]);
            let _ = ip(&["netns", "del", &l.ns]);
        }
    }
}

impl Lab {
    /// One pair per `(inner MAC, outer MAC, MTU)`, the outer end in a
    /// namespace of its own; IPv6 off everywhere so no stray neighbour
    /// discovery reaches the node or the captures. None (with a loud
    /// message) where namespaces cannot be made.
    pub fn new(tag: &str, pairs: &[(&str, &str, u32)]) -> Option<Lab> {
        let pid = std::process::id() % 100_000;
        let mut lab = Lab { links: vec![] };
        for (i, (mac_in, mac_out, mtu)) in pairs.iter().enumerate() {
            let l = Link {
                inner: format!("{tag}{pid}g{i}"),
                outer: format!("{tag}{pid}h{i}"),
                ns: format!("mp-{tag}-{pid}-{i}"),
            };
            if !ip(&["netns", "add", &l.ns]) {
                eprintln!(
                    "SKIPPED: cannot create network namespace {} (needs root and iproute2)",
                    l.ns
                );
                return None;
            }
            lab.links.push(l.clone());
            must(&[
                "link", "add", &l.inner, "type", "veth", "peer", "name", &l.outer, "netns", &l.ns,
            ]);
            let mtu = mtu.to_string();
            must(&["link", "set", &l.inner, "address", mac_in, "mtu", &mtu]);
            sysctl(None, &format!("net.ipv6.conf.{}.disable_ipv6=1", l.inner));
            must(&["link", "set", &l.inner, "up"]);
            must(&[
                "-n", &l.ns, "link", "set", &l.outer, "address", mac_out, "mtu", &mtu,
            ]);
            sysctl(
                Some(&l.ns),
                &format!("net.ipv6.conf.{}.disable_ipv6=1", l.outer),
            );
            must(&["-n", &l.ns, "link", "set", &l.outer, "up"]);
            must(&["-n", &l.ns, "link", "set", "lo", "up"]);
        }
        Some(lab)
    }
}

fn sysctl(ns: Option<&str>, kv: &str) {
    let mut c = match ns {
        Some(n) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", n, "sysctl", "-qw", kv]);
            c
        }
        None => {
            let mut c = Command::new("sysctl");
            c.args(["-qw", kv]);
            c
        }
    };
    let _ = c.status();
}

/// A child process killed on drop; its stderr lines arrive on `lines`.
pub struct Proc {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Spawns `cmd` with stdout piped and stderr read line by line (logs
    /// without colour codes, so that lines match as printed).
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        let err = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: vec![],
        }
    }

    /// Waits for a stderr line containing `what`; panics with what was
    /// seen after `timeout` or if the process ends first.
    pub fn wait_for(&mut self, what: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let hit = l.contains(what);
                    self.seen.push(l);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no {what:?} on stderr within {timeout:?}:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the process to end (at most `timeout`); returns its stdout
    /// and all of its stderr; panics if it failed or hung.
    pub fn finish(mut self, timeout: Duration) -> (String, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                let mut out = String::new();
                if let Some(mut o) = self.child.stdout.take() {
                    use std::io::Read;
                    let _ = o.read_to_string(&mut out);
                }
                // Collect the rest of stderr (the reader ends with the pipe).
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(500)) {
                    self.seen.push(l);
                }
                let err = self.seen.join("\n");
                assert!(st.success(), "process failed ({st}):\n{out}\n{err}");
                return (out, err);
            }
            assert!(
                Instant::now() < deadline,
                "process still running after {timeout:?}:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGINT (tcpdump writes out its capture and exits).
    pub fn interrupt(&self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
    }
}

/// `tcpdump -w FILE` of what arrives on `iface` in namespace `ns`,
/// running once it says it listens.
pub fn capture(ns: &str, iface: &str, file: &Path) -> Proc {
    let mut c = Command::new("ip");
    c.args([
        "netns", "exec", ns, "tcpdump", "-i", iface, "-Q", "in", "-n", "-U", "-w",
    ])
    .arg(file);
    let mut p = Proc::spawn(c);
    p.wait_for("listening on", Duration::from_secs(10));
    p
}

/// Ends a capture and waits until tcpdump has written it.
pub fn stop_capture(p: Proc) {
    p.interrupt();
    let _ = p.finish(Duration::from_secs(10));
}

/// `tcpreplay` of `file` out of `iface` in namespace `ns`.
pub fn replay_into(ns: &str, iface: &str, file: &Path) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "tcpreplay", "-q", "-t", "-i", iface])
        .arg(file)
        .output()
        .expect("tcpreplay is installed by scripts/setup");
    assert!(
        out.status.success(),
        "tcpreplay: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// tshark field extraction, one Vec per packet.
pub fn tshark(file: &Path, extra: &[&str], fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(file)
        .args(extra)
        .args(["-T", "fields", "-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark is installed by scripts/setup");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

/// tshark options that decrypt and verify one ESP SA (RFC 4106, 16-byte ICV).
pub fn esp_sa(src: &str, dst: &str, spi: u32, key: &str) -> Vec<String> {
    vec![
        "-o".into(),
        "esp.enable_encryption_decode:TRUE".into(),
        "-o".into(),
        "esp.enable_authentication_check:TRUE".into(),
        "-o".into(),
        format!(
            "uat:esp_sa:\"IPv4\",\"{src}\",\"{dst}\",\"0x{spi:08x}\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"{key}\",\"NULL\",\"\""
        ),
    ]
}
