//! Ethernet devices and their queues.

use std::ffi::CString;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::eal::{Eal, Vdev};
use super::error::{check, DpdkError};
use super::mbuf::Mbuf;
use super::mempool::Mempool;
use crate::drop_reason::DropReason;
use crate::frame::{Batch, Frame, Verdict, BURST};
use crate::io::Port;

/// Ethernet header without a VLAN tag: what DPDK's MTU leaves out.
const ETHER_HDR_LEN: usize = 14;

/// The device name in a device string: `net_pcap0,rx_pcap=a.pcap` -> `net_pcap0`.
pub fn device_name(spec: &str) -> &str {
    spec.split(',').next().unwrap_or(spec).trim()
}

/// How to configure an ethdev.
#[derive(Clone, Debug)]
pub struct EthDevConfig {
    /// RX queues (one per worker polling the port).
    pub rx_queues: u16,
    /// TX queues (one per worker sending on the port).
    pub tx_queues: u16,
    /// RX descriptors per queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// TX descriptors per queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// Receive frames for any destination MAC.
    pub promiscuous: bool,
    /// Spread RX over the queues by IP/UDP hash when the device can.
    pub rss: bool,
    /// Largest frame received (`IoConfig::max_frame`); longer frames, and
    /// frames the device chained over several mbufs, are dropped as
    /// `oversize`. Above the default, the device's MTU is raised to match.
    pub max_frame: usize,
}

impl Default for EthDevConfig {
    fn default() -> Self {
        EthDevConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            promiscuous: true,
            rss: true,
            max_frame: crate::config::IoConfig::default().max_frame(),
        }
    }
}

/// Link state (`rte_eth_link_get_nowait`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkStatus {
    /// Link is up.
    pub up: bool,
    /// Speed in Mbit/s (0 when unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Port counters (`rte_eth_stats_get`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames received.
    pub ipackets: u64,
    /// Frames sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Frames the NIC dropped because RX queues were full.
    pub imissed: u64,
    /// Erroneous frames received.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX failures for lack of mbufs.
    pub rx_nombuf: u64,
}

struct Inner {
    port: u16,
    name: String,
    rx_queues: u16,
    tx_queues: u16,
    taken: Vec<AtomicBool>,
    /// Started (queues may be taken) or stopped.
    started: AtomicBool,
    _pool: Mempool,
    /// A hotplugged device, removed after the port is closed (field drops
    /// run after `Drop::drop`).
    _vdev: Option<Vdev>,
    /// Largest frame received before it counts as `oversize`.
    max_frame: usize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // SAFETY: no DpdkPort is left (each holds an Arc to us), so no
        // thread polls the port; stop then close release its queues.
        unsafe {
            let _ = dpdk_sys::rte_eth_dev_stop(self.port);
            let _ = dpdk_sys::rte_eth_dev_close(self.port);
        }
    }
}

/// One configured and started ethdev. Stopped and closed when it and every
/// `DpdkPort` taken from it are dropped (closing flushes e.g. `net_pcap`'s
/// output file).
pub struct EthDev {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EthDev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EthDev")
            .field("port", &self.inner.port)
            .field("name", &self.inner.name)
            .field("rx_queues", &self.inner.rx_queues)
            .field("tx_queues", &self.inner.tx_queues)
            .finish()
    }
}

/// The DPDK port id of a device name (`rte_eth_dev_get_port_by_name`).
pub fn port_by_name(_eal: &Eal, name: &str) -> Result<u16, DpdkError> {
    let c = CString::new(name).map_err(|_| DpdkError::Nul(name.into()))?;
    let mut id = 0u16;
    // SAFETY: valid C string and out pointer; EAL is initialised.
    let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
    if ret != 0 {
        return Err(DpdkError::NoSuchPort(name.into()));
    }
    Ok(id)
}

impl EthDev {
    /// Finds the device named by `spec` (a vdev string or PCI address; only
    /// the name before the first comma counts), configures its queues with
    /// RX buffers from `pool`, and starts it.
    pub fn open(
        eal: &Eal,
        spec: &str,
        cfg: &EthDevConfig,
        pool: &Mempool,
    ) -> Result<Self, DpdkError> {
        Self::open_with(eal, spec, cfg, pool, None)
    }

    /// Probes the virtual device `spec` now (EAL hotplug; the same string
    /// `--vdev` takes, e.g. `net_pcap3,rx_pcap=in.pcap`) and opens it as
    /// `open` does. The device is removed again when the port is closed.
    pub fn hotplug(
        eal: &Eal,
        spec: &str,
        cfg: &EthDevConfig,
        pool: &Mempool,
    ) -> Result<Self, DpdkError> {
        let vdev = eal.add_vdev(spec)?;
        Self::open_with(eal, spec, cfg, pool, Some(vdev))
    }

    fn open_with(
        eal: &Eal,
        spec: &str,
        cfg: &EthDevConfig,
        pool: &Mempool,
        vdev: Option<Vdev>,
    ) -> Result<Self, DpdkError> {
        let name = device_name(spec);
        let port = port_by_name(eal, name)?;
        if cfg.rx_queues == 0 || cfg.tx_queues == 0 {
            return Err(DpdkError::Config(format!(
                "port {name}: needs at least one RX and one TX queue"
            )));
        }
        let ctx = |what: &str| format!("port {name} ({port}): {what}");

        // SAFETY: rte_eth_dev_info is plain data; zeroed is a valid value and
        // rte_eth_dev_info_get fills it for a valid port id.
        let mut info: dpdk_sys::rte_eth_dev_info = unsafe { std::mem::zeroed() };
        // SAFETY: valid port id and out pointer.
        check(|| ctx("dev_info_get"), unsafe {
            dpdk_sys::rte_eth_dev_info_get(port, &mut info)
        })?;
        if cfg.rx_queues > info.max_rx_queues || cfg.tx_queues > info.max_tx_queues {
            return Err(DpdkError::Config(format!(
                "port {name}: {} RX / {} TX queues requested, device allows {} / {}",
                cfg.rx_queues, cfg.tx_queues, info.max_rx_queues, info.max_tx_queues
            )));
        }

        let mut conf = dpdk_sys::rte_eth_conf::default();
        if cfg.rss && cfg.rx_queues > 1 {
            let wanted = (dpdk_sys::RTE_ETH_RSS_IP | dpdk_sys::RTE_ETH_RSS_UDP) as u64;
            let hf = wanted & info.flow_type_rss_offloads;
            if hf != 0 {
                conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_hf = hf;
                conf.rx_adv_conf.rss_conf.rss_key = std::ptr::null_mut();
                tracing::debug!(port = name, rss_hf = hf, "RSS on IP/UDP");
            } else {
                tracing::warn!(
                    port = name,
                    queues = cfg.rx_queues,
                    "device cannot hash IP/UDP (flow_type_rss_offloads {:#x}): no RSS, \
                     frames are not spread over the RX queues",
                    info.flow_type_rss_offloads
                );
            }
        }
        // Jumbo frames: the device's MTU (the frame without its Ethernet
        // header) must admit the largest frame; the default config keeps
        // the device's own default.
        if cfg.max_frame > EthDevConfig::default().max_frame {
            let mtu = cfg.max_frame - ETHER_HDR_LEN;
            if mtu > usize::from(info.max_mtu) || cfg.max_frame > info.max_rx_pktlen as usize {
                return Err(DpdkError::Config(format!(
                    "port {name}: frames of {} B ([io] mtu) need a device MTU of {mtu}; \
                     this device takes at most MTU {} and {} B frames",
                    cfg.max_frame, info.max_mtu, info.max_rx_pktlen
                )));
            }
            let room = usize::from(pool.data_room());
            if room < dpdk_sys::RTE_PKTMBUF_HEADROOM as usize + cfg.max_frame {
                return Err(DpdkError::Config(format!(
                    "port {name}: frames of {} B do not fit the {} B data room of pool {:?}",
                    cfg.max_frame,
                    pool.data_room(),
                    pool.name()
                )));
            }
            conf.rxmode.mtu = mtu as u32;
        }
        // SAFETY: valid port id; conf is a fully initialised rte_eth_conf
        // that DPDK copies.
        check(|| ctx("configure"), unsafe {
            dpdk_sys::rte_eth_dev_configure(port, cfg.rx_queues, cfg.tx_queues, &conf)
        })?;

        let (mut nrx, mut ntx) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: valid port id and out pointers.
        check(|| ctx("adjust descriptors"), unsafe {
            dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(port, &mut nrx, &mut ntx)
        })?;
        // SAFETY: valid port id.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(port) };
        let socket = if socket < 0 {
            dpdk_sys::SOCKET_ID_ANY
        } else {
            socket
        };
        for q in 0..cfg.rx_queues {
            // SAFETY: configured port, q < rx_queues, a null rxconf selects
            // the device defaults, and the pool lives until process exit.
            check(|| ctx(&format!("rx queue {q} setup")), unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    port,
                    q,
                    nrx,
                    socket as u32,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            })?;
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: configured port, q < tx_queues, null txconf = defaults.
            check(|| ctx(&format!("tx queue {q} setup")), unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(port, q, ntx, socket as u32, std::ptr::null())
            })?;
        }
        // SAFETY: all queues are set up.
        check(|| ctx("start"), unsafe {
            dpdk_sys::rte_eth_dev_start(port)
        })?;
        let dev = EthDev {
            inner: Arc::new(Inner {
                port,
                name: name.into(),
                rx_queues: cfg.rx_queues,
                tx_queues: cfg.tx_queues,
                started: AtomicBool::new(true),
                taken: (0..cfg.rx_queues.max(cfg.tx_queues))
                    .map(|_| AtomicBool::new(false))
                    .collect(),
                _pool: pool.clone(),
                _vdev: vdev,
                max_frame: cfg.max_frame,
            }),
        };
        if cfg.promiscuous {
            // SAFETY: valid started port.
            let ret = unsafe { dpdk_sys::rte_eth_promiscuous_enable(port) };
            if ret == -(libc::ENOTSUP) {
                tracing::debug!(port = name, "no promiscuous mode on this device");
            } else {
                check(|| ctx("promiscuous_enable"), ret)?;
            }
        }
        tracing::info!(
            port = name,
            id = port,
            rx_queues = cfg.rx_queues,
            tx_queues = cfg.tx_queues,
            rx_desc = nrx,
            tx_desc = ntx,
            driver = %driver_name(&info),
            "DPDK port started"
        );
        Ok(dev)
    }

    /// DPDK port id.
    pub fn port_id(&self) -> u16 {
        self.inner.port
    }

    /// Device name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<[u8; 6], DpdkError> {
        let mut a = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid port id and out pointer.
        check(
            || format!("port {}: macaddr_get", self.inner.name),
            unsafe { dpdk_sys::rte_eth_macaddr_get(self.inner.port, &mut a) },
        )?;
        Ok(a.addr_bytes)
    }

    /// Whether promiscuous mode is on.
    pub fn promiscuous(&self) -> bool {
        // SAFETY: valid port id.
        unsafe { dpdk_sys::rte_eth_promiscuous_get(self.inner.port) == 1 }
    }

    /// Link state, without waiting for negotiation.
    pub fn link(&self) -> Result<LinkStatus, DpdkError> {
        let mut l = dpdk_sys::rte_eth_link::default();
        // SAFETY: valid port id and out pointer.
        check(
            || format!("port {}: link_get_nowait", self.inner.name),
            unsafe { dpdk_sys::rte_eth_link_get_nowait(self.inner.port, &mut l) },
        )?;
        Ok(LinkStatus {
            up: l.link_status() as u32 == dpdk_sys::RTE_ETH_LINK_UP,
            speed_mbps: l.link_speed,
            full_duplex: l.link_duplex() as u32 == dpdk_sys::RTE_ETH_LINK_FULL_DUPLEX,
        })
    }

    /// Counters, including `imissed`, `ierrors` and `rx_nombuf`.
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        // SAFETY: plain data, zero is valid.
        let mut s: dpdk_sys::rte_eth_stats = unsafe { std::mem::zeroed() };
        // SAFETY: valid port id and out pointer.
        check(|| format!("port {}: stats_get", self.inner.name), unsafe {
            dpdk_sys::rte_eth_stats_get(self.inner.port, &mut s)
        })?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Takes RX/TX queue pair `queue` for one poller. Each queue has at most
    /// one owner at a time; it is released when the `DpdkPort` is dropped.
    pub fn queue(&self, queue: u16) -> Result<DpdkPort, DpdkError> {
        let i = &self.inner;
        if queue >= i.rx_queues || queue >= i.tx_queues {
            return Err(DpdkError::BadQueue {
                port: i.port,
                queue,
                count: i.rx_queues.min(i.tx_queues),
            });
        }
        if !i.started.load(Ordering::Acquire) {
            return Err(DpdkError::Config(format!(
                "port {}: stopped; start it before taking queues",
                i.name
            )));
        }
        if i.taken[queue as usize].swap(true, Ordering::AcqRel) {
            return Err(DpdkError::QueueTaken {
                port: i.port,
                queue,
            });
        }
        Ok(DpdkPort {
            port: i.port,
            queue,
            max_frame: i.max_frame,
            dev: Arc::clone(&self.inner),
            _not_sync: PhantomData,
        })
    }

    /// Stops the device (frames stop flowing, the link goes down). Needs
    /// every queue back: a PMD must not be polled while it stops.
    pub fn stop(&mut self) -> Result<(), DpdkError> {
        let i = &self.inner;
        if i.taken.iter().any(|t| t.load(Ordering::Acquire)) {
            return Err(DpdkError::Config(format!(
                "port {}: cannot stop while its queues are in use",
                i.name
            )));
        }
        if i.started.swap(false, Ordering::AcqRel) {
            // SAFETY: valid port id; no queue is polled (checked above, and
            // &mut self keeps new ones from being taken meanwhile).
            check(|| format!("port {}: stop", i.name), unsafe {
                dpdk_sys::rte_eth_dev_stop(i.port)
            })?;
        }
        Ok(())
    }

    /// Starts the device again after `stop`.
    pub fn start(&mut self) -> Result<(), DpdkError> {
        let i = &self.inner;
        if !i.started.load(Ordering::Acquire) {
            // SAFETY: valid, configured, stopped port.
            check(|| format!("port {}: start", i.name), unsafe {
                dpdk_sys::rte_eth_dev_start(i.port)
            })?;
            i.started.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Whether the device is started.
    pub fn is_started(&self) -> bool {
        self.inner.started.load(Ordering::Acquire)
    }

    /// Stops and closes the device now (also done on drop). Fails if a
    /// `DpdkPort` of it is still alive.
    pub fn close(self) -> Result<(), DpdkError> {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => {
                drop(inner);
                Ok(())
            }
            Err(inner) => Err(DpdkError::Config(format!(
                "port {}: cannot close while its queues are in use",
                inner.name
            ))),
        }
    }
}

fn driver_name(info: &dpdk_sys::rte_eth_dev_info) -> String {
    if info.driver_name.is_null() {
        return "?".into();
    }
    // SAFETY: driver_name is a static NUL-terminated string owned by the driver.
    unsafe { std::ffi::CStr::from_ptr(info.driver_name) }
        .to_string_lossy()
        .into_owned()
}

/// One RX/TX queue pair of a started ethdev: what a worker polls.
/// `Send` (hand it to the worker's thread), not `Sync`.
pub struct DpdkPort {
    port: u16,
    queue: u16,
    max_frame: usize,
    dev: Arc<Inner>,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl std::fmt::Debug for DpdkPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkPort")
            .field("port", &self.port)
            .field("queue", &self.queue)
            .field("name", &self.dev.name)
            .finish()
    }
}

impl Drop for DpdkPort {
    fn drop(&mut self) {
        self.dev.taken[self.queue as usize].store(false, Ordering::Release);
    }
}

impl DpdkPort {
    /// DPDK port id.
    pub fn port_id(&self) -> u16 {
        self.port
    }
    /// Queue index.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }
}

impl DpdkPort {
    /// `rx_burst` taking at most `max` frames.
    #[inline]
    pub fn rx_burst_max(&mut self, batch: &mut Batch<Mbuf>, max: usize) -> usize {
        self.rx_into(batch, max).0
    }

    /// `rx_burst_counted` taking at most `max` frames: how many, and their
    /// bytes (whole frames, every segment).
    #[inline]
    pub fn rx_burst_max_counted(&mut self, batch: &mut Batch<Mbuf>, max: usize) -> (usize, u64) {
        self.rx_into(batch, max)
    }

    /// Receives at most `max` frames into `batch`; returns how many and
    /// their bytes (the walk over the new mbufs reads their length anyway).
    #[inline(always)]
    fn rx_into(&mut self, batch: &mut Batch<Mbuf>, max: usize) -> (usize, u64) {
        let room = batch.room().min(max);
        let v = batch.frames_vec_mut();
        let old = v.len();
        let spare = v.spare_capacity_mut();
        let n = room.min(spare.len()).min(BURST);
        if n == 0 {
            return (0, 0);
        }
        // SAFETY: spare has at least n slots; Mbuf is repr(transparent) over
        // a non-null rte_mbuf pointer, the layout the PMD writes; this
        // DpdkPort is the queue's only poller (EthDev::queue) and the queue
        // index is within the configured range.
        let got = unsafe {
            dpdk_sys::shim_rte_eth_rx_burst(
                self.port,
                self.queue,
                spare.as_mut_ptr().cast::<*mut dpdk_sys::rte_mbuf>(),
                n as u16,
            )
        } as usize;
        // SAFETY: the PMD initialised `got` <= n slots with owned mbufs.
        unsafe { v.set_len(old + got) };
        // Stages see one contiguous segment (`Frame::data`). A frame longer
        // than the configured MTU admits, or one a PMD chained over several
        // mbufs (net_pcap with a frame beyond the data room), is dropped and
        // counted as `oversize`; its bytes count whole (`pkt_len`). The same
        // walk, which reads each mbuf header anyway, asks for each frame's
        // first data line: a NIC wrote it by DMA, and the stages read it
        // right after this burst (as DPDK's l3fwd prefetches ahead of
        // processing). No branch per frame.
        let mut over = false;
        let mut bytes = 0u64;
        for f in &batch.frames()[old..] {
            over |= oversize(f, self.max_frame);
            bytes += f.pkt_len() as u64;
            prefetch(f.data().as_ptr());
        }
        if old == 0 {
            // The common case: one fill over the new frames' verdicts.
            batch.set_all(Verdict::Input);
        } else {
            for (_, verdict) in batch.iter_mut().skip(old) {
                *verdict = Verdict::Input;
            }
        }
        if over {
            bytes += drop_oversize(batch, old, self.max_frame);
        }
        (got, bytes)
    }
}

/// Hints the CPU to bring the cache line at `p` into L1 (`rte_prefetch0`).
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, even on a bad address,
    // and SSE is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A frame the stages must not see: chained, or longer than `max_frame`.
#[inline(always)]
fn oversize(f: &Mbuf, max_frame: usize) -> bool {
    (f.segments() != 1) | (f.pkt_len() > max_frame)
}

/// Marks the frames from `from` on that are `oversize` as dropped, and
/// returns the bytes their chains hold beyond their `pkt_len` (the received
/// bytes count whole frames).
#[cold]
fn drop_oversize(batch: &mut Batch<Mbuf>, from: usize, max_frame: usize) -> u64 {
    let mut extra = 0u64;
    for (f, verdict) in batch.iter_mut().skip(from) {
        if oversize(f, max_frame) {
            *verdict = Verdict::Drop(DropReason::Oversize);
            extra += f.chain_len().saturating_sub(f.pkt_len()) as u64;
        }
    }
    extra
}

impl Port for DpdkPort {
    type Frame = Mbuf;

    #[inline]
    fn rx_burst(&mut self, batch: &mut Batch<Mbuf>) -> usize {
        self.rx_burst_max(batch, BURST)
    }

    #[inline]
    fn rx_burst_counted(&mut self, batch: &mut Batch<Mbuf>) -> (usize, u64) {
        self.rx_into(batch, BURST)
    }

    #[inline]
    fn frame_from(&mut self, bytes: &[u8]) -> Option<Mbuf> {
        crate::io::filled(self.dev._pool.alloc()?, bytes)
    }

    fn tx_burst(&mut self, batch: &mut Batch<Mbuf>) -> usize {
        let v = batch.frames_vec_mut();
        let n = v.len().min(u16::MAX as usize);
        if n == 0 {
            return 0;
        }
        // SAFETY: v holds n owned mbufs laid out as rte_mbuf pointers; the
        // PMD takes ownership of the first `sent` and only reads the array;
        // single poller of this queue, index in range.
        let sent = unsafe {
            dpdk_sys::shim_rte_eth_tx_burst(
                self.port,
                self.queue,
                v.as_mut_ptr().cast::<*mut dpdk_sys::rte_mbuf>(),
                n as u16,
            )
        } as usize;
        // The PMD owns the sent mbufs now: remove them without freeing.
        if sent == v.len() {
            // SAFETY: all the batch's mbufs were handed to the PMD; shrinking the
            // length forgets them without running Mbuf's destructor.
            unsafe { v.set_len(0) };
        } else {
            for m in batch.consume_front(sent) {
                let _ = m.into_raw();
            }
        }
        sent
    }
}
