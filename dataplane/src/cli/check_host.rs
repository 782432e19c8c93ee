//! `meshplane check-host [--config NODE.toml]`: whether this host can run
//! a node, one line per check in the manner of `dpdk-hugepages.py -s` and
//! `dpdk-devbind.py -s`: status (`ok`, `warn`, `FAIL`), the check, what it
//! found and, where something is amiss, what to run to fix it.
//!
//! Without a configuration it checks the host (hugepages by size and NUMA
//! node, hugetlbfs, isolated CPUs, IOMMU, bpffs, the memlock limit); with
//! one it also checks what the node names: its cores, its PCI devices and
//! their drivers and NUMA nodes, its vdevs, its AF_XDP interfaces. Only a
//! `FAIL` (something the configuration needs and the host lacks) makes
//! the exit status non-zero.
//!
//! The checks read `/sys` and `/proc` below a root directory ([`Host`]),
//! so a test can point them at a fake tree.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::config::{NodeConfig, XdpMode};
use crate::file_read::{read_text, SYSTEM_LIMIT};

/// Arguments of `check-host`.
#[derive(clap::Args, Debug)]
pub struct CheckHostArgs {
    /// The node's TOML file: also check the cores, devices and interfaces
    /// it names.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// As a deployment wants it.
    Ok,
    /// Works, but not as a deployment wants it (or cannot tell).
    Warn,
    /// Something the configuration needs is missing.
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// One check's line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// ok, warn or FAIL.
    pub status: Status,
    /// What was checked (`hugepages 2M`, `iface lan0`, ...).
    pub what: String,
    /// What the host has.
    pub found: String,
    /// What to run to fix it, when not ok.
    pub fix: Option<String>,
}

impl Check {
    fn new(status: Status, what: impl Into<String>, found: impl Into<String>) -> Check {
        Check {
            status,
            what: what.into(),
            found: found.into(),
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Check {
        if self.status != Status::Ok {
            self.fix = Some(fix.into());
        }
        self
    }

    /// The line printed: `STATUS  WHAT  FOUND  fix: FIX`.
    pub fn line(&self) -> String {
        let mut l = format!(
            "{:<4}  {:<20}  {}",
            self.status.label(),
            self.what,
            self.found
        );
        if let Some(f) = &self.fix {
            l.push_str("  fix: ");
            l.push_str(f);
        }
        l
    }
}

/// A host's `/sys` and `/proc`, below `root` (`/` for this host).
#[derive(Clone, Debug)]
pub struct Host {
    root: PathBuf,
}

/// One hugepage size: its pages in total and free, host-wide and per node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageSize {
    /// Page size in KiB.
    pub kib: u64,
    /// Pages reserved.
    pub total: u64,
    /// Pages free.
    pub free: u64,
    /// Per NUMA node: (node, reserved, free).
    pub nodes: Vec<(u32, u64, u64)>,
}

/// Drivers whose AF_XDP sockets bind in zero-copy mode.
const ZEROCOPY_DRIVERS: &[&str] = &[
    "i40e",
    "ice",
    "ixgbe",
    "igc",
    "igb",
    "mlx5_core",
    "stmmac",
    "virtio_net",
];

/// Kernel drivers under which DPDK drives a PCI device.
const DPDK_DRIVERS: &[&str] = &["vfio-pci", "uio_pci_generic", "igb_uio"];

/// Kernel drivers that DPDK's PMD uses in place (bifurcated).
const BIFURCATED: &[&str] = &["mlx5_core", "mlx4_core"];

/// Virtual devices by name prefix, and the PMD library that drives them.
const VDEVS: &[(&str, &str)] = &[
    ("net_af_packet", "net_af_packet"),
    ("eth_af_packet", "net_af_packet"),
    ("net_af_xdp", "net_af_xdp"),
    ("net_bonding", "net_bond"),
    ("net_failsafe", "net_failsafe"),
    ("net_memif", "net_memif"),
    ("net_null", "net_null"),
    ("eth_null", "net_null"),
    ("net_pcap", "net_pcap"),
    ("eth_pcap", "net_pcap"),
    ("net_ring", "net_ring"),
    ("eth_ring", "net_ring"),
    ("net_softnic", "net_softnic"),
    ("net_tap", "net_tap"),
    ("net_tun", "net_tap"),
    ("net_vhost", "net_vhost"),
    ("eth_vhost", "net_vhost"),
    ("net_virtio_user", "net_virtio"),
];

/// A CPU list as the kernel writes it (`0-3,8,10-11`); `None` if malformed.
pub fn parse_cpu_list(s: &str) -> Option<BTreeSet<usize>> {
    let mut out = BTreeSet::new();
    let s = s.trim();
    if s.is_empty() || s == "(null)" {
        return Some(out);
    }
    for part in s.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 1 << 16 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(part.parse().ok()?);
            }
        }
    }
    Some(out)
}

/// A CPU set as a list (`0-1,4`), `none` when empty.
pub fn cpu_list(set: &BTreeSet<usize>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut it = set.iter().copied().peekable();
    while let Some(a) = it.next() {
        let mut b = a;
        while it.peek() == Some(&(b + 1)) {
            b += 1;
            it.next();
        }
        parts.push(if a == b {
            a.to_string()
        } else {
            format!("{a}-{b}")
        });
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(",")
    }
}

/// A hex CPU mask as in `/proc/irq/default_smp_affinity` (`ff`,
/// `00000000,000000ff`).
fn parse_cpu_mask(s: &str) -> Option<BTreeSet<usize>> {
    let mut out = BTreeSet::new();
    let words: Vec<&str> = s.trim().split(',').collect();
    for (i, w) in words.iter().rev().enumerate() {
        let v = u32::from_str_radix(w.trim(), 16).ok()?;
        for bit in 0..32 {
            if v & (1 << bit) != 0 {
                out.insert(i * 32 + bit);
            }
        }
    }
    Some(out)
}

fn size_name(kib: u64) -> String {
    if kib >= 1 << 20 && kib.is_multiple_of(1 << 20) {
        format!("{}G", kib >> 20)
    } else if kib >= 1 << 10 && kib.is_multiple_of(1 << 10) {
        format!("{}M", kib >> 10)
    } else {
        format!("{kib}K")
    }
}

fn bytes(n: u64) -> String {
    if n == u64::MAX {
        "unlimited".into()
    } else if n >= 1 << 30 {
        format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30))
    } else if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20))
    } else {
        format!("{} KiB", n >> 10)
    }
}

/// A PCI address with its domain (`03:00.0` -> `0000:03:00.0`).
pub fn pci_address(s: &str) -> String {
    let s = s.trim();
    if s.matches(':').count() == 1 {
        format!("0000:{s}")
    } else {
        s.to_string()
    }
}

/// The device name in a device string: `net_pcap0,rx_pcap=a.pcap` -> `net_pcap0`.
fn device_name(spec: &str) -> &str {
    spec.split(',').next().unwrap_or(spec).trim()
}

/// Whether a port's `dpdk` string names a virtual device (else a PCI address).
pub fn is_vdev(spec: &str) -> bool {
    spec.starts_with("net_") || spec.starts_with("eth_")
}

impl Host {
    /// The host whose `/sys` and `/proc` are below `root`.
    pub fn new(root: impl Into<PathBuf>) -> Host {
        Host { root: root.into() }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    fn read(&self, rel: &str) -> Option<String> {
        read_text(&self.path(rel), SYSTEM_LIMIT)
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn num(&self, rel: &str) -> Option<u64> {
        self.read(rel)?.parse().ok()
    }

    fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// Entry names of a directory, sorted (empty if it cannot be read).
    fn list(&self, rel: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path(rel))
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The last component of a symlink's target (a driver's name).
    fn link_name(&self, rel: &str) -> Option<String> {
        let t = std::fs::read_link(self.path(rel)).ok()?;
        Some(t.file_name()?.to_string_lossy().into_owned())
    }

    /// `/proc/mounts` entries of file system type `fstype`: (mount point, options).
    fn mounts(&self, fstype: &str) -> Vec<(String, String)> {
        let Some(m) = self.read("proc/mounts") else {
            return vec![];
        };
        m.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 4 && f[2] == fstype).then(|| (f[1].to_string(), f[3].to_string()))
            })
            .collect()
    }

    fn cpus(&self, rel: &str) -> Option<BTreeSet<usize>> {
        parse_cpu_list(&self.read(rel)?)
    }

    /// Hugepages by size (`/sys/kernel/mm/hugepages`) and NUMA node
    /// (`/sys/devices/system/node/node*/hugepages`).
    pub fn page_sizes(&self) -> Vec<PageSize> {
        let kib = |name: &str| -> Option<u64> {
            name.strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()
        };
        let mut sizes: Vec<PageSize> = Vec::new();
        for d in self.list("sys/kernel/mm/hugepages") {
            let Some(k) = kib(&d) else { continue };
            let base = format!("sys/kernel/mm/hugepages/{d}");
            sizes.push(PageSize {
                kib: k,
                total: self.num(&format!("{base}/nr_hugepages")).unwrap_or(0),
                free: self.num(&format!("{base}/free_hugepages")).unwrap_or(0),
                nodes: vec![],
            });
        }
        for n in self.list("sys/devices/system/node") {
            let Some(id) = n.strip_prefix("node").and_then(|i| i.parse::<u32>().ok()) else {
                continue;
            };
            for d in self.list(&format!("sys/devices/system/node/{n}/hugepages")) {
                let Some(k) = kib(&d) else { continue };
                let base = format!("sys/devices/system/node/{n}/hugepages/{d}");
                let t = self.num(&format!("{base}/nr_hugepages")).unwrap_or(0);
                let f = self.num(&format!("{base}/free_hugepages")).unwrap_or(0);
                if let Some(s) = sizes.iter_mut().find(|s| s.kib == k) {
                    s.nodes.push((id, t, f));
                }
            }
        }
        sizes.sort_by_key(|s| s.kib);
        sizes
    }

    /// One line per hugepage size. `need`: the node drives PCI devices
    /// (DMA memory must be on hugepages); without that, DPDK falls back
    /// to `--no-huge` and a missing page size is a warning.
    pub fn hugepages(&self, need: bool) -> Vec<Check> {
        let sizes = self.page_sizes();
        if sizes.is_empty() {
            let st = if need { Status::Fail } else { Status::Warn };
            return vec![Check::new(
                st,
                "hugepages",
                "no /sys/kernel/mm/hugepages: this kernel has no hugetlb support",
            )
            .fix("use a kernel built with CONFIG_HUGETLBFS")];
        }
        let any_free = sizes.iter().any(|s| s.free > 0);
        sizes
            .iter()
            .map(|s| {
                let mut found = format!("{} reserved, {} free", s.total, s.free);
                if !s.nodes.is_empty() {
                    let per: Vec<String> = s
                        .nodes
                        .iter()
                        .map(|(n, t, f)| format!("node{n} {f}/{t}"))
                        .collect();
                    found.push_str(&format!(" (free/reserved: {})", per.join(", ")));
                }
                let gib = s.total.saturating_mul(s.kib) >> 20;
                if gib > 0 {
                    found.push_str(&format!(", {gib} GiB"));
                }
                let st = if s.free > 0 {
                    Status::Ok
                } else if need && !any_free {
                    Status::Fail
                } else {
                    Status::Warn
                };
                let name = size_name(s.kib);
                let fix = if s.kib >= 1 << 20 {
                    format!(
                        "add \"default_hugepagesz={name} hugepagesz={name} hugepages=4\" to the \
                         kernel command line (1 GiB pages are reserved at boot), or \
                         dpdk-hugepages.py -p {name} --reserve 4G"
                    )
                } else {
                    format!("dpdk-hugepages.py -p {name} --reserve 1G")
                };
                Check::new(st, format!("hugepages {name}"), found).fix(fix)
            })
            .collect()
    }

    /// hugetlbfs mounted (`/proc/mounts`).
    pub fn hugetlbfs(&self, need: bool) -> Check {
        let m = self.mounts("hugetlbfs");
        if m.is_empty() {
            let st = if need { Status::Fail } else { Status::Warn };
            return Check::new(
                st,
                "hugetlbfs",
                "not mounted: DPDK runs without hugepages (--no-huge)",
            )
            .fix("dpdk-hugepages.py --mount (or: mount -t hugetlbfs nodev /dev/hugepages)");
        }
        let found: Vec<String> = m
            .iter()
            .map(|(at, opts)| {
                let size = opts
                    .split(',')
                    .find_map(|o| o.strip_prefix("pagesize="))
                    .unwrap_or("default");
                format!("{at} (pagesize {size})")
            })
            .collect();
        Check::new(
            Status::Ok,
            "hugetlbfs",
            format!("mounted at {}", found.join(", ")),
        )
    }

    /// The worker cores: present, isolated from the scheduler
    /// (`isolcpus`), without the tick (`nohz_full`), and spared by IRQs
    /// (`irqaffinity`).
    pub fn cores(&self, cores: &[usize]) -> Vec<Check> {
        let online = self
            .cpus("sys/devices/system/cpu/online")
            .unwrap_or_default();
        let isolated = self
            .cpus("sys/devices/system/cpu/isolated")
            .unwrap_or_default();
        let nohz = self
            .cpus("sys/devices/system/cpu/nohz_full")
            .unwrap_or_default();
        let state = format!(
            "online {}, isolated {}, nohz_full {}",
            cpu_list(&online),
            cpu_list(&isolated),
            cpu_list(&nohz)
        );
        if cores.is_empty() {
            let st = if isolated.is_empty() {
                Status::Warn
            } else {
                Status::Ok
            };
            return vec![Check::new(
                st,
                "cpus",
                format!("{state}; the node names no [node] cores (one worker, not pinned)"),
            )
            .fix(
                "name worker cores in [node] cores and isolate them: isolcpus=, nohz_full=, \
                 irqaffinity= on the kernel command line",
            )];
        }
        let want: BTreeSet<usize> = cores.iter().copied().collect();
        let what = format!("cores {}", cpu_list(&want));
        let missing: BTreeSet<usize> = want.difference(&online).copied().collect();
        if !missing.is_empty() {
            return vec![Check::new(
                Status::Fail,
                what,
                format!(
                    "core(s) {} not online on this host ({state})",
                    cpu_list(&missing)
                ),
            )
            .fix(format!(
                "name cores from {} in [node] cores",
                cpu_list(&online)
            ))];
        }
        let others: BTreeSet<usize> = online.difference(&want).copied().collect();
        let housekeeping = if others.is_empty() {
            "a core left for the kernel".to_string()
        } else {
            cpu_list(&others)
        };
        let list = cpu_list(&want);
        let mut out = Vec::new();
        let not_iso: BTreeSet<usize> = want.difference(&isolated).copied().collect();
        let not_nohz: BTreeSet<usize> = want.difference(&nohz).copied().collect();
        let st = if not_iso.is_empty() && not_nohz.is_empty() {
            Status::Ok
        } else {
            Status::Warn
        };
        let mut found = state;
        if !not_iso.is_empty() {
            found.push_str(&format!("; {} not isolated", cpu_list(&not_iso)));
        }
        if !not_nohz.is_empty() {
            found.push_str(&format!("; {} not nohz_full", cpu_list(&not_nohz)));
        }
        out.push(Check::new(st, what, found).fix(format!(
            "add \"isolcpus={list} nohz_full={list} irqaffinity={housekeeping}\" to the kernel \
             command line and reboot"
        )));
        if let Some(mask) = self
            .read("proc/irq/default_smp_affinity")
            .and_then(|m| parse_cpu_mask(&m))
        {
            let hit: BTreeSet<usize> = want.intersection(&mask).copied().collect();
            let found = format!("default IRQ affinity {}", cpu_list(&mask));
            out.push(if hit.is_empty() {
                Check::new(
                    Status::Ok,
                    "irq affinity",
                    format!("{found}: spares the workers"),
                )
            } else {
                Check::new(
                    Status::Warn,
                    "irq affinity",
                    format!("{found}: includes worker core(s) {}", cpu_list(&hit)),
                )
                .fix(format!(
                    "add \"irqaffinity={housekeeping}\" to the kernel command line"
                ))
            });
        }
        out
    }

    /// IOMMU groups (`/sys/kernel/iommu_groups`), which vfio-pci needs.
    pub fn iommu(&self, need: bool) -> Check {
        let groups = self.list("sys/kernel/iommu_groups").len();
        if groups > 0 {
            return Check::new(Status::Ok, "iommu", format!("{groups} IOMMU groups"));
        }
        let noiommu = self
            .read("sys/module/vfio/parameters/enable_unsafe_noiommu_mode")
            .is_some_and(|v| v == "Y" || v == "1");
        if noiommu {
            return Check::new(
                Status::Warn,
                "iommu",
                "no IOMMU groups; vfio runs in unsafe no-IOMMU mode (devices may DMA anywhere)",
            )
            .fix("enable VT-d/AMD-Vi in the firmware and add \"intel_iommu=on iommu=pt\" (or amd_iommu=on) to the kernel command line");
        }
        let st = if need { Status::Fail } else { Status::Warn };
        Check::new(
            st,
            "iommu",
            "no IOMMU groups: vfio-pci cannot take a device",
        )
        .fix(
            "enable VT-d/AMD-Vi in the firmware and add \"intel_iommu=on iommu=pt\" (or \
             amd_iommu=on) to the kernel command line; without an IOMMU: modprobe vfio \
             enable_unsafe_noiommu_mode=1",
        )
    }

    /// A PCI device a port names: present, bound to a driver DPDK can use,
    /// its NUMA node, and whether the worker cores and free hugepages are
    /// on that node.
    pub fn pci(&self, port: &str, spec: &str, cores: &[usize]) -> Vec<Check> {
        let addr = pci_address(device_name(spec));
        let what = format!("pci {port}");
        let dev = format!("sys/bus/pci/devices/{addr}");
        if !self.exists(&dev) {
            return vec![Check::new(
                Status::Fail,
                what,
                format!("no PCI device {addr} on this host"),
            )
            .fix("dpdk-devbind.py -s lists the network devices; name one by its PCI address")];
        }
        let driver = self.link_name(&format!("{dev}/driver"));
        let numa = self
            .read(&format!("{dev}/numa_node"))
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(-1);
        let group = self.link_name(&format!("{dev}/iommu_group"));
        let ifaces = self.list(&format!("{dev}/net"));
        let mut found = format!(
            "{addr} driver {}, NUMA node {}, IOMMU group {}",
            driver.as_deref().unwrap_or("none"),
            if numa < 0 {
                "none".to_string()
            } else {
                numa.to_string()
            },
            group.as_deref().unwrap_or("none")
        );
        if !ifaces.is_empty() {
            found.push_str(&format!(", if={}", ifaces.join(",")));
        }
        let bind = format!("modprobe vfio-pci && dpdk-devbind.py -b vfio-pci {addr}");
        let mut out = vec![match driver.as_deref() {
            Some(d) if DPDK_DRIVERS.contains(&d) => Check::new(Status::Ok, what, found),
            Some(d) if BIFURCATED.contains(&d) => Check::new(
                Status::Ok,
                what,
                format!("{found} (DPDK's PMD drives it beside the kernel driver)"),
            ),
            Some(_) => {
                let down = ifaces
                    .iter()
                    .map(|i| format!("ip link set {i} down && "))
                    .collect::<String>();
                Check::new(
                    Status::Fail,
                    what,
                    format!("{found}: a kernel driver holds it, DPDK cannot"),
                )
                .fix(format!("{down}{bind}"))
            }
            None => Check::new(Status::Fail, what, format!("{found}: no driver bound")).fix(bind),
        }];
        if numa >= 0 {
            let node = format!("sys/devices/system/node/node{numa}");
            let node_cpus = self.cpus(&format!("{node}/cpulist")).unwrap_or_default();
            let off: BTreeSet<usize> = cores
                .iter()
                .copied()
                .filter(|c| !node_cpus.contains(c))
                .collect();
            let free: u64 = self
                .page_sizes()
                .iter()
                .flat_map(|s| s.nodes.iter())
                .filter(|(n, _, _)| i64::from(*n) == numa)
                .map(|(_, _, f)| f)
                .sum();
            let mut issues = Vec::new();
            if !off.is_empty() {
                issues.push(format!(
                    "worker core(s) {} are not on node {numa} (its CPUs: {})",
                    cpu_list(&off),
                    cpu_list(&node_cpus)
                ));
            }
            if free == 0 {
                issues.push(format!(
                    "no free hugepages on node {numa}: the mbufs would sit on another node"
                ));
            }
            let what = format!("numa {port}");
            out.push(if issues.is_empty() {
                Check::new(
                    Status::Ok,
                    what,
                    format!("workers and {free} free hugepages on the NIC's node {numa}"),
                )
            } else {
                Check::new(Status::Warn, what, issues.join("; ")).fix(format!(
                    "name cores from {} in [node] cores (the mempool follows the first \
                     worker's node); reserve pages there: dpdk-hugepages.py -p 2M -n {numa} \
                     --reserve 1G",
                    cpu_list(&node_cpus)
                ))
            });
        }
        out
    }

    /// Directories where DPDK's shared build keeps its PMDs.
    fn pmd_dirs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for base in ["usr/lib", "usr/local/lib", "usr/lib64", "usr/local/lib64"] {
            let mut cands = vec![format!("{base}/dpdk")];
            for d in self.list(base) {
                cands.push(format!("{base}/{d}/dpdk"));
            }
            for c in cands {
                for p in self.list(&c) {
                    if p.starts_with("pmds-") {
                        out.push(self.path(&format!("{c}/{p}")));
                    }
                }
            }
        }
        out
    }

    /// A virtual device a port names: a driver DPDK has, its library
    /// installed, and the files or interface it names present.
    pub fn vdev(&self, port: &str, spec: &str) -> Vec<Check> {
        let name = device_name(spec);
        let what = format!("vdev {port}");
        let known: Vec<&str> = VDEVS
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| p.starts_with("net_"))
            .collect();
        let Some((prefix, lib)) = VDEVS
            .iter()
            .filter(|(p, _)| name.starts_with(p))
            .max_by_key(|(p, _)| p.len())
        else {
            return vec![Check::new(
                Status::Fail,
                what,
                format!("{name}: no DPDK virtual device driver has this name"),
            )
            .fix(format!("name one of: {}", known.join(", ")))];
        };
        let dirs = self.pmd_dirs();
        let file = format!("librte_{lib}.so");
        let mut out = vec![if dirs.is_empty() {
            Check::new(
                Status::Warn,
                what,
                format!("{name}: driver {prefix}; no DPDK plugin directory found (a static build carries its PMDs)"),
            )
            .fix("apt install dpdk (Debian: the PMDs in /usr/lib/<arch>/dpdk/pmds-*)")
        } else if let Some(d) = dirs.iter().find(|d| d.join(&file).exists()) {
            Check::new(
                Status::Ok,
                what,
                format!("{name}: driver {prefix} ({})", d.join(&file).display()),
            )
        } else {
            Check::new(
                Status::Fail,
                what,
                format!(
                    "{name}: driver {prefix}, but {file} is not in {}",
                    dirs[0].display()
                ),
            )
            .fix("apt install dpdk (it ships the PMDs)")
        }];
        for kv in spec.split(',').skip(1) {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let v = v.trim();
            if k.trim() == "rx_pcap" && !Path::new(v).is_file() {
                out.push(
                    Check::new(
                        Status::Fail,
                        format!("vdev {port}"),
                        format!("{name}: rx_pcap {v} is not a file"),
                    )
                    .fix("name an existing capture (meshplane gen --out FILE writes one)"),
                );
            }
        }
        out
    }

    /// bpffs mounted at /sys/fs/bpf (DPDK's net_af_xdp through libxdp
    /// pins there; meshplane's own AF_XDP backend does not need it).
    pub fn bpffs(&self) -> Check {
        let m = self.mounts("bpf");
        if m.is_empty() {
            return Check::new(Status::Warn, "bpffs", "not mounted")
                .fix("mount -t bpf bpf /sys/fs/bpf");
        }
        let at: Vec<&str> = m.iter().map(|(a, _)| a.as_str()).collect();
        Check::new(Status::Ok, "bpffs", format!("mounted at {}", at.join(", ")))
    }

    /// Whether this process holds `CAP_IPC_LOCK` (locks memory beyond
    /// RLIMIT_MEMLOCK), from `/proc/self/status`.
    pub fn ipc_lock(&self) -> bool {
        const CAP_IPC_LOCK: u32 = 14;
        self.read("proc/self/status")
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapEff:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
    }

    /// An interface a port binds AF_XDP to (directly or through DPDK's
    /// net_af_xdp): present, up, its driver (`driver`: what the kernel
    /// said, else the sysfs device link) and zero-copy, the queues named.
    pub fn interface(
        &self,
        port: &str,
        iface: &str,
        driver: Option<String>,
        queues: &[u32],
        mode: XdpMode,
    ) -> Vec<Check> {
        let what = format!("iface {port}");
        let dir = format!("sys/class/net/{iface}");
        if iface.contains('/') || iface.is_empty() || !self.exists(&dir) {
            return vec![Check::new(
                Status::Fail,
                what,
                format!("interface {iface:?} does not exist"),
            )
            .fix(format!(
                "ip -br link lists this host's interfaces: name one in [[ports]] iface, or \
                 create it (ip link add {iface} type veth peer name {iface}p && ip link set \
                 {iface} up)"
            ))];
        }
        let flags = self
            .read(&format!("{dir}/flags"))
            .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0);
        let up = flags & 1 != 0;
        let oper = self
            .read(&format!("{dir}/operstate"))
            .unwrap_or_else(|| "unknown".into());
        let driver = driver.or_else(|| self.link_name(&format!("{dir}/device/driver")));
        let rx: Vec<u32> = self
            .list(&format!("{dir}/queues"))
            .iter()
            .filter_map(|q| q.strip_prefix("rx-")?.parse().ok())
            .collect();
        let zc = driver
            .as_deref()
            .is_some_and(|d| ZEROCOPY_DRIVERS.contains(&d));
        let found = format!(
            "{iface}: {}, link {oper}, driver {}, {} RX queue(s), AF_XDP {}",
            if up { "up" } else { "down" },
            driver.as_deref().unwrap_or("unknown"),
            rx.len(),
            if zc {
                "zero-copy"
            } else {
                "copy mode (no zero-copy on this driver)"
            }
        );
        let mut out = Vec::new();
        let missing: Vec<u32> = queues
            .iter()
            .copied()
            .filter(|q| !rx.is_empty() && !rx.contains(q))
            .collect();
        if !missing.is_empty() {
            let want = queues.iter().max().map_or(1, |m| m + 1);
            out.push(
                Check::new(
                    Status::Fail,
                    what,
                    format!("{found}; queue(s) {missing:?} missing"),
                )
                .fix(format!("ethtool -L {iface} combined {want}")),
            );
        } else if mode == XdpMode::Zerocopy && !zc {
            out.push(
                Check::new(
                    Status::Fail,
                    what,
                    format!("{found}; the port asks for mode = \"zerocopy\""),
                )
                .fix("set mode = \"auto\" (zero-copy where the driver has it) or \"copy\""),
            );
        } else if !up {
            out.push(Check::new(Status::Warn, what, found).fix(format!("ip link set {iface} up")));
        } else {
            out.push(Check::new(Status::Ok, what, found));
        }
        out
    }
}

/// The memlock limit against what the node locks: the AF_XDP UMEMs
/// (`need` bytes; root and `CAP_IPC_LOCK` lock without limit, and
/// meshplane raises the soft limit up to the hard one itself).
pub fn memlock(limits: Option<(u64, u64)>, ipc_lock: bool, need: u64) -> Check {
    let Some((soft, hard)) = limits else {
        return Check::new(Status::Warn, "memlock", "RLIMIT_MEMLOCK cannot be read");
    };
    let mut found = format!("RLIMIT_MEMLOCK soft {}, hard {}", bytes(soft), bytes(hard));
    if need > 0 {
        found.push_str(&format!("; the UMEMs lock {}", bytes(need)));
    }
    let fix = "ulimit -l unlimited (systemd: LimitMEMLOCK=infinity), or run with CAP_IPC_LOCK";
    if ipc_lock {
        found.push_str(" (CAP_IPC_LOCK: not limited)");
        return Check::new(Status::Ok, "memlock", found);
    }
    if soft >= need.max(64 << 20) {
        return Check::new(Status::Ok, "memlock", found);
    }
    if hard >= need && need > 0 {
        found.push_str(" (meshplane raises the soft limit to the hard one)");
        return Check::new(Status::Ok, "memlock", found);
    }
    let st = if need > 0 { Status::Fail } else { Status::Warn };
    Check::new(st, "memlock", found).fix(fix)
}

/// Every check for this host and, with `cfg`, for what the node names.
pub fn checks(host: &Host, cfg: Option<&NodeConfig>, limits: Option<(u64, u64)>) -> Vec<Check> {
    let backend = cfg.map_or("", |c| c.io.backend.as_str());
    let dpdk = matches!(backend, "dpdk" | "auto");
    let afxdp = matches!(backend, "afxdp" | "auto");
    let ports = cfg.map_or(&[][..], |c| c.ports.as_slice());
    let cores = cfg.map_or(&[][..], |c| c.cores.as_slice());
    let need_pci = dpdk
        && ports
            .iter()
            .any(|p| p.dpdk.as_deref().is_some_and(|d| !is_vdev(d)));
    let mut out = host.hugepages(need_pci);
    // AF_XDP UMEM chunks grow with the ports' MTUs, up to a page (jumbo
    // frames go to slots beside them, a few MiB more).
    let chunk = cfg.map_or(crate::io::afxdp::FRAME_SIZE, |c| {
        crate::io::afxdp::chunk_size_for(c.max_frame()).min(crate::io::afxdp::MAX_CHUNK)
    }) as u64;
    out.push(host.hugetlbfs(need_pci));
    out.extend(host.cores(cores));
    out.push(host.iommu(need_pci));
    let workers = cores.len().max(1);
    let mut umem = 0u64;
    for p in ports {
        if dpdk {
            if let Some(spec) = p.dpdk.as_deref() {
                if is_vdev(spec) {
                    out.extend(host.vdev(&p.name, spec));
                    if device_name(spec).starts_with("net_af_xdp") {
                        if let Some(i) = spec.split(',').find_map(|kv| kv.strip_prefix("iface=")) {
                            out.extend(host.interface(
                                &p.name,
                                i,
                                crate::io::afxdp::driver_name(i),
                                &[],
                                XdpMode::Auto,
                            ));
                        }
                    }
                } else {
                    out.extend(host.pci(&p.name, spec, cores));
                }
            }
        }
        if afxdp {
            if let Some(iface) = p.iface.as_deref() {
                let queues: Vec<u32> = match &p.afxdp.queues {
                    Some(q) => q.iter().copied().take(workers).collect(),
                    None => (0..workers as u32).collect(),
                };
                out.extend(host.interface(
                    &p.name,
                    iface,
                    crate::io::afxdp::driver_name(iface),
                    &queues,
                    p.afxdp.mode,
                ));
                let frames = u64::from(2 * p.afxdp.rx_ring + p.afxdp.tx_ring) + 256;
                umem += frames * chunk * workers as u64;
            } else if backend == "afxdp" {
                out.push(
                    Check::new(
                        Status::Fail,
                        format!("iface {}", p.name),
                        "the port names no iface for AF_XDP",
                    )
                    .fix("add iface = \"IF\" to the port"),
                );
            }
        }
    }
    if let Some(b) = cfg.and_then(|c| c.io.buffers) {
        if afxdp {
            umem = u64::from(b) * chunk;
        }
    }
    out.push(host.bpffs());
    out.push(memlock(limits, host.ipc_lock(), umem));
    out
}

/// Runs `check-host`: prints every check, fails when something the
/// configuration needs is missing.
pub fn run(a: &CheckHostArgs) -> Result<()> {
    let cfg = match &a.config {
        Some(p) => Some(NodeConfig::load(p)?),
        None => None,
    };
    let host = Host::new("/");
    let all = checks(&host, cfg.as_ref(), crate::io::afxdp::memlock_limits());
    for c in &all {
        crate::outln!("{}", c.line())?;
    }
    let fails = all.iter().filter(|c| c.status == Status::Fail).count();
    let warns = all.iter().filter(|c| c.status == Status::Warn).count();
    let of = match &a.config {
        Some(p) => format!(" for {}", p.display()),
        None => String::new(),
    };
    crate::outln!("{} checks{of}: {fails} FAIL, {warns} warn", all.len())?;
    if fails > 0 {
        bail!("{fails} check(s) failed: this host lacks what the node needs (the FAIL lines say what to run)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake root: files with contents, symlinks with targets.
    struct Tree(PathBuf);

    impl Tree {
        fn new(tag: &str) -> Tree {
            let d = std::env::temp_dir().join(format!("mp-host-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).expect("tmp");
            Tree(d)
        }
        fn file(&self, rel: &str, text: &str) -> &Tree {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("dirs");
            std::fs::write(p, text).expect("write");
            self
        }
        fn link(&self, rel: &str, target: &str) -> &Tree {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("dirs");
            std::os::unix::fs::symlink(target, p).expect("symlink");
            self
        }
        fn host(&self) -> Host {
            Host::new(&self.0)
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn cpu_lists_and_masks_read_as_the_kernel_writes_them() {
        let s = parse_cpu_list("0-3,8,10-11\n").expect("list");
        assert_eq!(cpu_list(&s), "0-3,8,10-11");
        assert_eq!(parse_cpu_list(""), Some(BTreeSet::new()));
        assert_eq!(parse_cpu_list("(null)"), Some(BTreeSet::new()));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        let m = parse_cpu_mask("00000001,0000000f").expect("mask");
        assert_eq!(cpu_list(&m), "0-3,32");
        assert_eq!(pci_address("03:00.0"), "0000:03:00.0");
    }

    #[test]
    fn hugepages_by_size_and_node_and_what_a_pci_node_needs() {
        let t = Tree::new("huge");
        t.file(
            "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
            "1024\n",
        )
        .file(
            "sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
            "0\n",
        )
        .file(
            "sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages",
            "0\n",
        )
        .file(
            "sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages",
            "0\n",
        )
        .file(
            "sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages",
            "512",
        )
        .file(
            "sys/devices/system/node/node0/hugepages/hugepages-2048kB/free_hugepages",
            "0",
        )
        .file(
            "sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages",
            "512",
        )
        .file(
            "sys/devices/system/node/node1/hugepages/hugepages-2048kB/free_hugepages",
            "0",
        );
        let h = t.host();
        let lines: Vec<String> = h.hugepages(true).iter().map(Check::line).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("FAIL  hugepages 2M")
                && lines[0].contains(
                    "1024 reserved, 0 free (free/reserved: node0 0/512, node1 0/512), 2 GiB"
                )
                && lines[0].ends_with("fix: dpdk-hugepages.py -p 2M --reserve 1G"),
            "{lines:?}"
        );
        assert!(lines[1].starts_with("FAIL  hugepages 1G"), "{lines:?}");
        // Without PCI devices DPDK runs --no-huge: only a warning.
        assert!(h.hugepages(false).iter().all(|c| c.status == Status::Warn));
        let c = h.hugetlbfs(true);
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.line().contains("fix: dpdk-hugepages.py --mount"),
            "{}",
            c.line()
        );
    }

    #[test]
    fn a_pci_device_its_driver_numa_node_and_the_cores_beside_it() {
        let t = Tree::new("pci");
        let dev = "sys/bus/pci/devices/0000:03:00.0";
        t.file(&format!("{dev}/numa_node"), "1\n")
            .link(
                &format!("{dev}/driver"),
                "../../../../bus/pci/drivers/ixgbe",
            )
            .link(
                &format!("{dev}/iommu_group"),
                "../../../../kernel/iommu_groups/12",
            )
            .file(&format!("{dev}/net/enp3s0f0/ifindex"), "4")
            .file("sys/kernel/iommu_groups/12/type", "DMA")
            .file("sys/devices/system/node/node0/cpulist", "0-3")
            .file("sys/devices/system/node/node1/cpulist", "4-7")
            .file("sys/devices/system/cpu/online", "0-7")
            .file("sys/devices/system/cpu/isolated", "4-7")
            .file("sys/devices/system/cpu/nohz_full", "4-7")
            .file("proc/irq/default_smp_affinity", "0f");
        let h = t.host();
        let c = h.pci("lan0", "03:00.0", &[2, 3]);
        assert_eq!(c[0].status, Status::Fail, "{c:?}");
        assert!(
            c[0].line().contains(
                "0000:03:00.0 driver ixgbe, NUMA node 1, IOMMU group 12, if=enp3s0f0: a kernel \
                 driver holds it"
            ) && c[0].line().ends_with(
                "fix: ip link set enp3s0f0 down && modprobe vfio-pci && dpdk-devbind.py -b \
                 vfio-pci 0000:03:00.0"
            ),
            "{}",
            c[0].line()
        );
        assert_eq!(c[1].status, Status::Warn);
        assert!(
            c[1].found
                .contains("worker core(s) 2-3 are not on node 1 (its CPUs: 4-7)"),
            "{}",
            c[1].line()
        );
        let cores = h.cores(&[4, 5]);
        assert_eq!(cores[0].status, Status::Ok, "{cores:?}");
        assert_eq!(
            cores[1].line(),
            "ok    irq affinity          default IRQ affinity 0-3: spares the workers"
        );
        let cores = h.cores(&[3, 9]);
        assert_eq!(cores[0].status, Status::Fail);
        assert!(
            cores[0].line().contains("core(s) 9 not online"),
            "{cores:?}"
        );
        assert_eq!(h.iommu(true).status, Status::Ok);

        t.link(
            "sys/bus/pci/devices/0000:04:00.0/driver",
            "../../../../bus/pci/drivers/vfio-pci",
        );
        let c = h.pci("up0", "0000:04:00.0", &[]);
        assert_eq!(c[0].status, Status::Ok, "{c:?}");
        let c = h.pci("up1", "0000:05:00.0", &[]);
        assert!(c[0].line().contains("no PCI device 0000:05:00.0"), "{c:?}");
    }

    #[test]
    fn memlock_fails_only_when_the_umem_cannot_be_locked() {
        let mib = 1 << 20;
        let need = 48 * mib;
        assert_eq!(
            memlock(Some((8 * mib, 8 * mib)), false, need).status,
            Status::Fail
        );
        let c = memlock(Some((8 * mib, 8 * mib)), false, need);
        assert!(
            c.line()
                .contains("RLIMIT_MEMLOCK soft 8.0 MiB, hard 8.0 MiB; the UMEMs lock 48.0 MiB")
                && c.line().contains("fix: ulimit -l unlimited"),
            "{}",
            c.line()
        );
        assert_eq!(
            memlock(Some((8 * mib, u64::MAX)), false, need).status,
            Status::Ok
        );
        assert_eq!(
            memlock(Some((8 * mib, 8 * mib)), true, need).status,
            Status::Ok
        );
        assert_eq!(
            memlock(Some((8 * mib, 8 * mib)), false, 0).status,
            Status::Warn
        );
    }
}
