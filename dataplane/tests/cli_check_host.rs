//! `meshplane check-host` on this host, as a user runs it before a
//! deployment: without a configuration, with a DPDK node on virtual
//! devices, and with an AF_XDP node whose ports name a veth that exists
//! and an interface that does not. The lines a user reads (hugepages,
//! memlock, the interfaces) say what the host has, a missing interface is
//! a FAIL with the command that fixes it, and only that makes the exit
//! status non-zero.

mod common;

use common::Lab;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The line of check `what` (its second column).
    fn line(&self, what: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| {
                l.get(6..)
                    .is_some_and(|r| r.starts_with(&format!("{what} ")))
            })
            .unwrap_or_else(|| panic!("no {what:?} line in:\n{}", self.stdout))
    }
}

fn check_host(config: Option<&Path>) -> Run {
    let mut c = Command::new(BIN);
    c.arg("check-host");
    if let Some(p) = config {
        c.arg("--config").arg(p);
    }
    let out = c.output().expect("run meshplane");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn tmp_dir(tag: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("check-host-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

fn sys(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// What the hugepages and memlock lines must say on this host.
fn host_lines_are_right(r: &Run) {
    // 2 MiB pages: the counts sysfs has (reserved is stable; free moves
    // with other DPDK processes on the host, so only its form is checked).
    let nr = sys("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages").expect("2M pages");
    let line = r.line("hugepages 2M");
    assert!(line.contains(&format!("{nr} reserved, ")), "{line}");
    assert!(line.contains(" free (free/reserved: node0 "), "{line}");
    if line.contains(" 0 free") {
        assert!(
            line.starts_with("warn") && line.contains("fix: dpdk-hugepages.py"),
            "{line}"
        );
    } else {
        assert!(line.starts_with("ok "), "{line}");
        assert!(!line.contains("fix:"), "{line}");
    }
    // The memlock limit as the process has it (/proc/self/limits is what
    // getrlimit returns), and root locks without limit.
    let limits = sys("/proc/self/limits").expect("limits");
    let soft: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .expect("memlock soft limit");
    let line = r.line("memlock");
    let want = if soft >= 1 << 20 {
        format!(
            "RLIMIT_MEMLOCK soft {:.1} MiB",
            soft as f64 / f64::from(1u32 << 20)
        )
    } else {
        format!("RLIMIT_MEMLOCK soft {} KiB", soft >> 10)
    };
    assert!(line.contains(&want), "{line} (want {want})");
    let root = sys("/proc/self/status").is_some_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    });
    if root {
        assert!(
            line.starts_with("ok ") && line.contains("(CAP_IPC_LOCK: not limited)"),
            "{line}"
        );
    }
    let mounted = sys("/proc/mounts").is_some_and(|m| m.contains(" hugetlbfs "));
    assert_eq!(
        r.line("hugetlbfs").starts_with("ok "),
        mounted,
        "{}",
        r.stdout
    );
}

#[test]
fn the_host_alone_and_a_dpdk_node_on_vdevs_pass_and_say_what_they_found() {
    let r = check_host(None);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    host_lines_are_right(&r);
    let last = r.stdout.lines().last().unwrap_or_default();
    assert!(last.contains(" checks: 0 FAIL, "), "{}", r.stdout);

    let dir = tmp_dir("dpdk");
    let cfg = dir.join("sat.toml");
    std::fs::write(
        &cfg,
        r#"
[node]
name = "sat-check"
role = "satellite"
cores = [0]

[io]
backend = "dpdk"

[[ports]]
name = "isl0"
mac = "02:00:00:00:00:01"
dpdk = "net_null0,copy=1"

[[ports]]
name = "isl1"
mac = "02:00:00:00:00:02"
dpdk = "net_ring1"
"#,
    )
    .expect("config");
    let r = check_host(Some(&cfg));
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    host_lines_are_right(&r);
    let l = r.line("vdev isl0");
    assert!(
        l.starts_with("ok ")
            && l.contains("net_null0: driver net_null (")
            && l.contains("librte_net_null.so)"),
        "{l}"
    );
    assert!(
        r.line("vdev isl1").contains("net_ring1: driver net_ring"),
        "{}",
        r.stdout
    );
    let l = r.line("cores 0");
    assert!(l.contains("online ") && l.contains("isolated "), "{l}");

    // A vdev no driver has, and a PCI address this host lacks: needed, so FAIL.
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg)
            .expect("config")
            .replace("net_ring1", "net_rnig1")
            .replace("net_null0,copy=1", "0000:7e:1f.7"),
    )
    .expect("config");
    let r = check_host(Some(&cfg));
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    let l = r.line("vdev isl1");
    assert!(
        l.starts_with("FAIL")
            && l.contains("net_rnig1: no DPDK virtual device driver has this name")
            && l.contains("fix: name one of: ")
            && l.contains("net_ring"),
        "{l}"
    );
    let l = r.line("pci isl0");
    assert!(
        l.starts_with("FAIL")
            && l.contains("no PCI device 0000:7e:1f.7 on this host")
            && l.contains("fix: dpdk-devbind.py -s"),
        "{l}"
    );
    // The node drives a PCI device: without IOMMU groups that fails too.
    let fails = r.stdout.lines().filter(|l| l.starts_with("FAIL")).count();
    let iommu = r.line("iommu");
    assert_eq!(
        fails,
        if iommu.starts_with("FAIL") { 3 } else { 2 },
        "{}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains(&format!("meshplane: error: {fails} check(s) failed")),
        "{}",
        r.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_afxdp_node_passes_on_its_veth_and_fails_on_a_missing_interface_with_the_fix() {
    let Some(lab) = Lab::new("chk", &[("02:00:00:00:0d:01", "02:00:00:00:0d:02", 1500)]) else {
        return;
    };
    let veth = lab.links[0].inner.clone();
    let missing = format!("nochk{}", std::process::id() % 100_000);
    let dir = tmp_dir("afxdp");
    let cfg = dir.join("gw.toml");
    let write = |second: &str| {
        std::fs::write(
            &cfg,
            format!(
                r#"
[node]
name = "gw-check"
role = "satellite"

[io]
backend = "afxdp"

[[ports]]
name = "isl0"
mac = "02:00:00:00:0d:01"
iface = "{veth}"
{second}"#
            ),
        )
        .expect("config");
    };

    write("");
    let r = check_host(Some(&cfg));
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    host_lines_are_right(&r);
    let l = r.line("iface isl0");
    assert!(
        l.starts_with("ok ")
            && l.contains(&format!(
                "{veth}: up, link up, driver veth, 1 RX queue(s), AF_XDP copy mode"
            )),
        "{l}"
    );
    assert!(
        r.line("memlock").contains("the UMEMs lock 24.5 MiB"),
        "{}",
        r.stdout
    );

    write(&format!(
        "\n[[ports]]\nname = \"isl1\"\nmac = \"02:00:00:00:0d:03\"\niface = \"{missing}\"\n"
    ));
    let r = check_host(Some(&cfg));
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(r.line("iface isl0").starts_with("ok "), "{}", r.stdout);
    let l = r.line("iface isl1");
    assert!(
        l.starts_with("FAIL")
            && l.contains(&format!("interface \"{missing}\" does not exist"))
            && l.contains("fix: ip -br link lists this host's interfaces")
            && l.contains(&format!("ip link add {missing} type veth")),
        "{l}"
    );
    assert!(r.stdout.contains(": 1 FAIL, "), "{}", r.stdout);
    assert!(
        r.stderr.trim_end().ends_with(
            "meshplane: error: 1 check(s) failed: this host lacks what the node needs (the FAIL lines say what to run)"
        ),
        "{}",
        r.stderr
    );

    // The interface down: still runs (a warning with the fix), exit 0.
    write("");
    assert!(common::ip(&["link", "set", &veth, "down"]));
    let r = check_host(Some(&cfg));
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    let l = r.line("iface isl0");
    assert!(
        l.starts_with("warn")
            && l.contains(&format!("{veth}: down"))
            && l.ends_with(&format!("fix: ip link set {veth} up")),
        "{l}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
