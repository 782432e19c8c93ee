//! The environment abstraction layer: one initialisation per process.

use std::ffi::{c_char, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use super::error::{rte_errno, strerror, DpdkError};

/// Set by the first `EalBuilder::init`, successful or not: DPDK's
/// `rte_eal_init` may not be called again in the same process.
static STARTED: AtomicBool = AtomicBool::new(false);
/// The handle of the successful initialisation.
static EAL: OnceLock<Eal> = OnceLock::new();

/// How EAL backs its memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryMode {
    /// Hugepages when some are free and hugetlbfs is mounted, else `--no-huge`.
    Auto,
    /// 2 MiB/1 GiB hugepages through hugetlbfs, `--in-memory`: no hugepage
    /// or config files, so nothing is shared with (or left for) another process.
    Hugepages,
    /// Ordinary anonymous memory: `--no-huge -m N --no-shconf`. Fine for
    /// virtual devices; physical NICs need hugepages (IOVA as PA).
    NoHuge,
}

/// Builds the EAL argument list from a node's configuration and
/// initialises EAL.
#[derive(Clone, Debug)]
pub struct EalBuilder {
    cores: Vec<usize>,
    vdevs: Vec<String>,
    pci: Vec<String>,
    extra: Vec<String>,
    file_prefix: String,
    memory: MemoryMode,
    no_huge_mb: u32,
    log_level: Option<String>,
}

impl Default for EalBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl EalBuilder {
    /// Defaults: the first CPU this process may run on, no devices,
    /// `--file-prefix meshplane`, memory `Auto` with 512 MiB when without hugepages.
    pub fn new() -> Self {
        EalBuilder {
            cores: Vec::new(),
            vdevs: Vec::new(),
            pci: Vec::new(),
            extra: Vec::new(),
            file_prefix: "meshplane".into(),
            memory: MemoryMode::Auto,
            no_huge_mb: 512,
            log_level: None,
        }
    }

    /// The lcores EAL may use (`-l`); the first is the main lcore, on which
    /// the calling thread is pinned.
    pub fn cores(mut self, cores: &[usize]) -> Self {
        self.cores = cores.to_vec();
        self
    }

    /// Adds a virtual device (`--vdev`), e.g. `net_ring0`,
    /// `net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap`, `net_af_xdp0,iface=veth0`.
    pub fn vdev(mut self, spec: impl Into<String>) -> Self {
        self.vdevs.push(spec.into());
        self
    }

    /// Allows a PCI device (`-a 0000:01:00.0`). Without any, PCI is not
    /// scanned at all (`--no-pci`).
    pub fn pci(mut self, addr: impl Into<String>) -> Self {
        self.pci.push(addr.into());
        self
    }

    /// Appends raw EAL arguments (the config's `eal_args`), after ours.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra.extend(args.into_iter().map(Into::into));
        self
    }

    /// The per-node `--file-prefix`, so that several processes coexist on
    /// one host without sharing hugepage files or runtime config.
    pub fn file_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.file_prefix = prefix.into();
        self
    }

    /// Chooses hugepages, `--no-huge`, or automatic detection.
    pub fn memory(mut self, mode: MemoryMode) -> Self {
        self.memory = mode;
        self
    }

    /// Memory (MiB) EAL reserves when running without hugepages (`-m`).
    pub fn no_huge_memory_mb(mut self, mb: u32) -> Self {
        self.no_huge_mb = mb;
        self
    }

    /// EAL log level (`--log-level`), e.g. `notice` or `lib.eal:debug`.
    pub fn log_level(mut self, level: impl Into<String>) -> Self {
        self.log_level = Some(level.into());
        self
    }

    /// The memory mode `init` would use now (resolves `Auto`).
    pub fn resolved_memory(&self) -> MemoryMode {
        match self.memory {
            MemoryMode::Auto if hugepages_available() => MemoryMode::Hugepages,
            MemoryMode::Auto => MemoryMode::NoHuge,
            m => m,
        }
    }

    /// The argument vector `init` hands to `rte_eal_init` (argv[0] included).
    pub fn to_args(&self) -> Vec<String> {
        self.args_for(self.resolved_memory())
    }

    fn args_for(&self, mode: MemoryMode) -> Vec<String> {
        let mut a = vec!["meshplane".to_string()];
        let cores = if self.cores.is_empty() {
            vec![first_allowed_cpu()]
        } else {
            self.cores.clone()
        };
        let list: Vec<String> = cores.iter().map(|c| c.to_string()).collect();
        a.push("-l".into());
        a.push(list.join(","));
        a.push(format!("--file-prefix={}", self.file_prefix));
        match mode {
            MemoryMode::NoHuge => {
                a.push("--no-huge".into());
                a.push("-m".into());
                a.push(self.no_huge_mb.to_string());
                // Without hugepage files there is nothing to share with a
                // secondary process; --in-memory does not combine with --no-huge.
                a.push("--no-shconf".into());
            }
            _ => {
                // No hugepage files or shared config: nothing is left behind
                // in hugetlbfs or the runtime dir if the process dies, and
                // nodes on one host cannot collide.
                a.push("--in-memory".into());
            }
        }
        if self.pci.is_empty() {
            a.push("--no-pci".into());
        }
        for p in &self.pci {
            a.push("-a".into());
            a.push(p.clone());
        }
        for v in &self.vdevs {
            a.push(format!("--vdev={v}"));
        }
        if let Some(l) = &self.log_level {
            a.push(format!("--log-level={l}"));
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    /// Initialises EAL. The calling thread becomes the main lcore (pinned to
    /// the first core). A second call in the same process, even after a
    /// failed first one, returns `DpdkError::AlreadyInitialised`.
    pub fn init(self) -> Result<Eal, DpdkError> {
        let mode = self.resolved_memory();
        let args = self.args_for(mode);
        // Validate before claiming the once-per-process slot.
        let cargs = args
            .iter()
            .map(|s| CString::new(s.as_str()).map_err(|_| DpdkError::Nul(s.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        // A vdev whose files are missing would only be logged by EAL and
        // left out; say which file now.
        for spec in &self.vdevs {
            if let Some(reason) = super::node::device_files_problem(spec) {
                return Err(DpdkError::DeviceFiles {
                    device: super::ethdev::device_name(spec).to_string(),
                    reason,
                });
            }
        }
        if STARTED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::AlreadyInitialised);
        }
        match mode {
            MemoryMode::NoHuge => tracing::warn!(
                mb = self.no_huge_mb,
                "DPDK EAL without hugepages (--no-huge -m {}): fine for virtual devices, \
                 slower and unusable with physical NICs; reserve hugepages (scripts/setup) \
                 to use them",
                self.no_huge_mb
            ),
            _ => tracing::info!(
                prefix = %self.file_prefix,
                "DPDK EAL with hugepages (--file-prefix {})",
                self.file_prefix
            ),
        }
        tracing::debug!(args = %args.join(" "), "rte_eal_init");
        // EAL may keep pointers into argv (it reorders it and keeps some
        // strings); the vector lives for the rest of the process.
        let argv: &'static mut [*mut c_char] = Box::leak(
            cargs
                .into_iter()
                .map(CString::into_raw)
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        let argc = argv.len() as i32;
        // SAFETY: argv holds argc valid NUL-terminated strings that are never
        // freed; STARTED guarantees this is the only rte_eal_init call in the process.
        let ret = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            let errno = rte_errno();
            return Err(DpdkError::EalInit {
                errno,
                msg: strerror(errno),
                args: args.join(" "),
            });
        }
        remove_empty_runtime_dir();
        // SAFETY: EAL is initialised; plain getter.
        let main_lcore = unsafe { dpdk_sys::rte_get_main_lcore() };
        let eal = Eal {
            memory: mode,
            main_lcore,
        };
        let _ = EAL.set(eal);
        Ok(eal)
    }
}

/// Proof that EAL is initialised in this process; everything that needs EAL
/// takes one. EAL is never torn down (mbufs may be alive until exit), so
/// the handle is `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eal {
    memory: MemoryMode,
    main_lcore: u32,
}

impl Eal {
    /// The handle, if `EalBuilder::init` has succeeded in this process.
    pub fn get() -> Option<Eal> {
        EAL.get().copied()
    }

    /// Which memory EAL runs on (`Hugepages` or `NoHuge`, never `Auto`).
    pub fn memory(&self) -> MemoryMode {
        self.memory
    }

    /// The main lcore (the thread that called `init`).
    pub fn main_lcore(&self) -> u32 {
        self.main_lcore
    }

    /// The calling thread's lcore id, `None` for a thread EAL does not know
    /// (such threads use the mempools without a per-lcore cache).
    pub fn lcore_id(&self) -> Option<u32> {
        // SAFETY: reads a thread-local; EAL is initialised.
        let id = unsafe { dpdk_sys::shim_rte_lcore_id() };
        (id != dpdk_sys::LCORE_ID_ANY).then_some(id)
    }

    /// Probes a virtual device after initialisation (EAL hotplug), e.g.
    /// `net_pcap3,rx_pcap=in.pcap`: the same string `--vdev` takes. The
    /// device goes away when the returned guard is dropped, which only the
    /// `EthDev` owning it does, after closing the port.
    pub(crate) fn add_vdev(&self, spec: &str) -> Result<Vdev, DpdkError> {
        let (name, args) = match spec.split_once(',') {
            Some((n, a)) => (n.trim(), a),
            None => (spec.trim(), ""),
        };
        if let Some(reason) = super::node::device_files_problem(spec) {
            return Err(DpdkError::DeviceFiles {
                device: name.to_string(),
                reason,
            });
        }
        let bus = c"vdev";
        let cname = CString::new(name).map_err(|_| DpdkError::Nul(name.into()))?;
        let cargs = CString::new(args).map_err(|_| DpdkError::Nul(args.into()))?;
        // SAFETY: EAL is initialised; three valid C strings that DPDK copies.
        let ret =
            unsafe { dpdk_sys::rte_eal_hotplug_add(bus.as_ptr(), cname.as_ptr(), cargs.as_ptr()) };
        super::error::check(|| format!("probing vdev {spec:?}"), ret)?;
        Ok(Vdev {
            name: name.to_string(),
        })
    }

    /// Makes the calling thread (spawned outside EAL, e.g. a worker the
    /// runtime pins itself) an EAL lcore, so that it gets an lcore id and
    /// its own mempool cache. Returns the lcore id; registering an already
    /// registered thread returns its id. The thread stays registered until
    /// it ends or calls `unregister_thread`.
    pub fn register_thread(&self) -> Result<u32, DpdkError> {
        if let Some(id) = self.lcore_id() {
            return Ok(id);
        }
        // SAFETY: EAL is initialised; registers the calling thread only.
        let ret = unsafe { dpdk_sys::rte_thread_register() };
        if ret != 0 {
            return Err(super::error::from_errno("rte_thread_register".into()));
        }
        self.lcore_id()
            .ok_or_else(|| DpdkError::Config("thread registered without an lcore id".into()))
    }

    /// Releases the calling thread's lcore (see `register_thread`). Call it
    /// only after the thread's last mempool operation: its lcore id, and
    /// the mempool caches that go with it, may pass to another thread.
    pub fn unregister_thread(&self) {
        if self.lcore_id().is_some() && self.lcore_id() != Some(self.main_lcore) {
            // SAFETY: EAL is initialised; the calling thread is a registered
            // non-main lcore.
            unsafe { dpdk_sys::rte_thread_unregister() };
        }
    }

    /// Number of ethdevs EAL probed.
    pub fn port_count(&self) -> u16 {
        // SAFETY: EAL is initialised; plain getter.
        unsafe { dpdk_sys::rte_eth_dev_count_avail() }
    }
}

/// A virtual device probed after EAL initialisation; removed on drop.
#[derive(Debug)]
pub(crate) struct Vdev {
    name: String,
}

impl Drop for Vdev {
    fn drop(&mut self) {
        let Ok(cname) = CString::new(self.name.as_str()) else {
            return;
        };
        // SAFETY: valid C strings; only EthDev's Inner owns a Vdev and drops
        // it after stopping and closing the port, when no queue is polled.
        let ret = unsafe { dpdk_sys::rte_eal_hotplug_remove(c"vdev".as_ptr(), cname.as_ptr()) };
        if ret < 0 {
            tracing::debug!(vdev = %self.name, errno = -ret, "vdev removal failed");
        }
    }
}

/// True when hugepages are reserved and free (`/proc/meminfo`
/// `HugePages_Free` > 0) and a hugetlbfs is mounted.
pub fn hugepages_available() -> bool {
    use crate::file_read::{read_text, SYSTEM_LIMIT};
    use std::path::Path;
    let free = read_text(Path::new("/proc/meminfo"), SYSTEM_LIMIT)
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("HugePages_Free:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    let mounted = read_text(Path::new("/proc/mounts"), SYSTEM_LIMIT)
        .map(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs"))
        })
        .unwrap_or(false);
    free > 0 && mounted
}

/// Without shared config EAL leaves its runtime directory
/// (`/var/run/dpdk/<prefix>`) empty; remove it so per-process prefixes do
/// not pile up. A directory with anything in it is kept.
fn remove_empty_runtime_dir() {
    // SAFETY: EAL is initialised; returns a pointer to a static string.
    let p = unsafe { dpdk_sys::rte_eal_get_runtime_dir() };
    if p.is_null() {
        return;
    }
    // SAFETY: non-null NUL-terminated static string.
    let dir = unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned();
    let _ = std::fs::remove_dir(dir);
}

/// The lowest-numbered CPU in this thread's affinity mask (0 if unknown).
fn first_allowed_cpu() -> usize {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most
    // size_of::<cpu_set_t>() bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            for cpu in 0..libc::CPU_SETSIZE as usize {
                if libc::CPU_ISSET(cpu, &set) {
                    return cpu;
                }
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_huge_args() {
        let a = EalBuilder::new()
            .cores(&[1, 2])
            .vdev("net_null0")
            .file_prefix("node-a")
            .memory(MemoryMode::NoHuge)
            .no_huge_memory_mb(64)
            .args(["--log-level=notice"])
            .to_args();
        assert_eq!(
            a,
            [
                "meshplane",
                "-l",
                "1,2",
                "--file-prefix=node-a",
                "--no-huge",
                "-m",
                "64",
                "--no-shconf",
                "--no-pci",
                "--vdev=net_null0",
                "--log-level=notice"
            ]
        );
    }

    #[test]
    fn hugepage_args_keep_prefix_and_pci() {
        let a = EalBuilder::new()
            .cores(&[0])
            .pci("0000:01:00.0")
            .memory(MemoryMode::Hugepages)
            .to_args();
        assert!(a.contains(&"--file-prefix=meshplane".to_string()));
        assert!(a.contains(&"--in-memory".to_string()));
        assert!(!a.contains(&"--no-huge".to_string()));
        assert!(!a.contains(&"--no-pci".to_string()));
        assert!(a.windows(2).any(|w| w[0] == "-a" && w[1] == "0000:01:00.0"));
    }
}
