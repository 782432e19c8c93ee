//! One AF_XDP socket: UMEM registration (or sharing), its four rings and
//! the bind to an interface queue.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::error::AfXdpError;
use super::ring::Ring;
use super::umem::Umem;

/// How a socket binds: the kernel copies frames, or the NIC DMAs straight
/// into the UMEM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindMode {
    /// `XDP_ZEROCOPY`: the driver uses the UMEM directly.
    ZeroCopy,
    /// `XDP_COPY`: the kernel copies between skbs/XDP buffers and the UMEM.
    Copy,
}

impl std::fmt::Display for BindMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BindMode::ZeroCopy => "zero-copy",
            BindMode::Copy => "copy",
        })
    }
}

/// Entries of a socket's rings (each a power of two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingSizes {
    /// RX ring (and fill ring) entries.
    pub rx: u32,
    /// TX ring (and completion ring) entries.
    pub tx: u32,
}

impl Default for RingSizes {
    fn default() -> Self {
        // Large enough to ride out a descheduled poller on a shared machine.
        RingSizes { rx: 4096, tx: 4096 }
    }
}

/// The kernel's counters of one socket (`XDP_STATISTICS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Frames dropped for reasons other than those below.
    pub rx_dropped: u64,
    /// RX descriptors the kernel found invalid.
    pub rx_invalid_descs: u64,
    /// TX descriptors the kernel found invalid.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame arrived.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the TX ring was found empty on a wakeup.
    pub tx_ring_empty_descs: u64,
}

/// A bound AF_XDP socket with its rings.
pub struct Xsk {
    pub(crate) rx: Ring<libc::xdp_desc>,
    pub(crate) tx: Ring<libc::xdp_desc>,
    pub(crate) fill: Ring<u64>,
    pub(crate) comp: Ring<u64>,
    // Declared last: the rings are unmapped before the socket closes.
    fd: OwnedFd,
}

fn setsockopt<T>(fd: RawFd, opt: libc::c_int, v: &T, what: &str) -> Result<(), AfXdpError> {
    // SAFETY: v points to a live T of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            opt,
            v as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(AfXdpError::last_os(what));
    }
    Ok(())
}

/// The current RLIMIT_MEMLOCK soft limit (`u64::MAX` = unlimited).
pub fn memlock_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: r is a valid out-parameter.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) } != 0 {
        return 0;
    }
    if r.rlim_cur == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        r.rlim_cur
    }
}

/// Raises RLIMIT_MEMLOCK so that `need` more bytes can be locked:
/// unlimited where allowed, else up to the hard limit.
pub fn raise_memlock(need: u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: r is a valid out-parameter.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) } != 0
        || r.rlim_cur == libc::RLIM_INFINITY
    {
        return;
    }
    let inf = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain value arguments.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &inf) } == 0 {
        tracing::debug!("raised RLIMIT_MEMLOCK to unlimited for the UMEM");
        return;
    }
    if r.rlim_cur < r.rlim_max {
        let hard = libc::rlimit {
            rlim_cur: r.rlim_max,
            rlim_max: r.rlim_max,
        };
        // SAFETY: plain value arguments.
        unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &hard) };
    }
    if memlock_limit() < need {
        tracing::debug!(
            "RLIMIT_MEMLOCK stays at {} bytes (the UMEM needs {need})",
            memlock_limit()
        );
    }
}

/// Reads the counters of the AF_XDP socket `fd` (zero if it cannot).
fn stats_of(fd: RawFd) -> XskStats {
    // SAFETY: all-zero is a valid xdp_statistics (plain integers).
    let mut s: libc::xdp_statistics = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::xdp_statistics>() as libc::socklen_t;
    // SAFETY: s/len are valid out-parameters of the size given.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libc::XDP_STATISTICS,
            &mut s as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    if r != 0 {
        return XskStats::default();
    }
    XskStats {
        rx_dropped: s.rx_dropped,
        rx_invalid_descs: s.rx_invalid_descs,
        tx_invalid_descs: s.tx_invalid_descs,
        rx_ring_full: s.rx_ring_full,
        rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
        tx_ring_empty_descs: s.tx_ring_empty_descs,
    }
}

/// A descriptor of an AF_XDP socket kept to read its counters from any
/// thread while a worker owns the socket.
#[derive(Debug)]
pub struct XskStatsHandle(OwnedFd);

impl XskStatsHandle {
    /// The kernel's counters for the socket.
    pub fn stats(&self) -> XskStats {
        stats_of(self.0.as_raw_fd())
    }
}

impl Xsk {
    /// Opens a socket on `ifindex` queue `queue`. The first socket of a
    /// UMEM (`share_with` = None) registers it and binds in `mode`; the
    /// others share it through the first one's descriptor and inherit its
    /// mode (the kernel allows no mode flags with `XDP_SHARED_UMEM`).
    pub fn open(
        umem: &Umem,
        share_with: Option<RawFd>,
        iface: &str,
        ifindex: u32,
        queue: u32,
        sizes: RingSizes,
        mode: BindMode,
    ) -> Result<Xsk, AfXdpError> {
        let at = format!("{iface} queue {queue}");
        // SAFETY: plain socket(2) call; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(AfXdpError::last_os(format!(
                "{at}: creating an AF_XDP socket"
            )));
        }
        // SAFETY: a fresh descriptor only we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let f = fd.as_raw_fd();

        if share_with.is_none() {
            let need = umem.registered_len();
            raise_memlock(need);
            let reg = libc::xdp_umem_reg {
                addr: umem.area() as u64,
                len: need,
                chunk_size: umem.chunk_size() as u32,
                headroom: 0,
                flags: 0,
                tx_metadata_len: 0,
            };
            if let Err(e) = setsockopt(f, libc::XDP_UMEM_REG, &reg, "registering the UMEM") {
                return Err(match e {
                    AfXdpError::Sys { source, .. }
                        if matches!(source.raw_os_error(), Some(libc::ENOBUFS | libc::ENOMEM)) =>
                    {
                        AfXdpError::Memlock {
                            need,
                            limit: memlock_limit(),
                        }
                    }
                    e => e,
                });
            }
        }
        setsockopt(
            f,
            libc::XDP_UMEM_FILL_RING,
            &sizes.rx,
            "sizing the fill ring",
        )?;
        setsockopt(
            f,
            libc::XDP_UMEM_COMPLETION_RING,
            &sizes.tx,
            "sizing the completion ring",
        )?;
        setsockopt(f, libc::XDP_RX_RING, &sizes.rx, "sizing the RX ring")?;
        setsockopt(f, libc::XDP_TX_RING, &sizes.tx, "sizing the TX ring")?;

        // SAFETY: all-zero is a valid xdp_mmap_offsets (plain integers).
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: off/len are valid out-parameters of the size given.
        let r = unsafe {
            libc::getsockopt(
                f,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                &mut off as *mut _ as *mut libc::c_void,
                &mut len,
            )
        };
        if r != 0 {
            return Err(AfXdpError::last_os(format!("{at}: XDP_MMAP_OFFSETS")));
        }
        if len as usize != std::mem::size_of::<libc::xdp_mmap_offsets>() {
            return Err(AfXdpError::Config(format!(
                "{at}: the kernel predates ring flags (XDP_MMAP_OFFSETS v1); AF_XDP needs Linux >= 5.4"
            )));
        }
        let fill = Ring::map(f, &off.fr, sizes.rx, libc::XDP_UMEM_PGOFF_FILL_RING, "fill")?;
        let comp = Ring::map(
            f,
            &off.cr,
            sizes.tx,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
            "completion",
        )?;
        let rx = Ring::map(f, &off.rx, sizes.rx, libc::XDP_PGOFF_RX_RING as u64, "RX")?;
        let tx = Ring::map(f, &off.tx, sizes.tx, libc::XDP_PGOFF_TX_RING as u64, "TX")?;

        let (flags, shared_fd) = match share_with {
            Some(owner) => (libc::XDP_SHARED_UMEM, owner as u32),
            None => (
                libc::XDP_USE_NEED_WAKEUP
                    | match mode {
                        BindMode::ZeroCopy => libc::XDP_ZEROCOPY,
                        BindMode::Copy => libc::XDP_COPY,
                    }
                    // Packets longer than a chunk span several (Linux >=
                    // 6.6); the sockets that share the UMEM inherit it.
                    | if umem.jumbo_slots() > 0 {
                        libc::XDP_USE_SG
                    } else {
                        0
                    },
                0,
            ),
        };
        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: shared_fd,
        };
        // SAFETY: sa is a valid sockaddr_xdp of the size passed.
        let r = unsafe {
            libc::bind(
                f,
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(AfXdpError::last_os(format!(
                "{at}: binding the AF_XDP socket ({})",
                if share_with.is_some() {
                    "sharing the UMEM".to_string()
                } else {
                    format!("{mode} mode")
                }
            )));
        }
        Ok(Xsk {
            rx,
            tx,
            fill,
            comp,
            fd,
        })
    }

    /// The socket's descriptor.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The socket's descriptor, borrowed (to wait on it).
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.fd)
    }

    /// Whether the kernel bound this socket in zero-copy mode (`XDP_OPTIONS`).
    pub fn zero_copy(&self) -> bool {
        let mut o = libc::xdp_options { flags: 0 };
        let mut len = std::mem::size_of::<libc::xdp_options>() as libc::socklen_t;
        // SAFETY: o/len are valid out-parameters of the size given.
        let r = unsafe {
            libc::getsockopt(
                self.fd(),
                libc::SOL_XDP,
                libc::XDP_OPTIONS,
                &mut o as *mut _ as *mut libc::c_void,
                &mut len,
            )
        };
        r == 0 && o.flags & libc::XDP_OPTIONS_ZEROCOPY != 0
    }

    /// The kernel's counters for this socket.
    pub fn stats(&self) -> XskStats {
        stats_of(self.fd())
    }

    /// A second descriptor of this socket, to read its counters from
    /// another thread (the socket stays open until both are closed).
    pub fn stats_handle(&self) -> Result<XskStatsHandle, AfXdpError> {
        self.fd
            .try_clone()
            .map(XskStatsHandle)
            .map_err(|e| AfXdpError::from_io("duplicating an AF_XDP socket", e))
    }

    /// Tells the kernel to process the TX ring (copy mode sends from here).
    #[inline]
    pub fn kick_tx(&self) {
        // SAFETY: a zero-length sendto on our own socket; errors (EAGAIN,
        // EBUSY, ENOBUFS while the device is busy) only mean "try later".
        unsafe {
            libc::sendto(
                self.fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
    }

    /// Wakes the kernel to refill from the fill ring (need-wakeup mode).
    #[inline]
    pub fn kick_rx(&self) {
        // SAFETY: a zero-length, non-blocking recvfrom on our own socket.
        unsafe {
            libc::recvfrom(
                self.fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    }
}
