//! Errors of the DPDK backend.

use std::ffi::CStr;

/// What went wrong in the DPDK backend.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// `rte_eal_init` was already called in this process; EAL cannot be
    /// initialised twice.
    #[error("DPDK EAL is already initialised in this process (it initialises once per process)")]
    AlreadyInitialised,
    /// `rte_eal_init` failed.
    #[error("DPDK EAL initialisation failed: {msg} (rte_errno {errno}); arguments: {args}")]
    EalInit {
        /// `rte_errno` after the call.
        errno: i32,
        /// `rte_strerror(errno)`.
        msg: String,
        /// The arguments EAL was given, space-separated.
        args: String,
    },
    /// A string handed to DPDK contains a NUL byte.
    #[error("argument {0:?} contains a NUL byte")]
    Nul(String),
    /// A DPDK call returned an error.
    #[error("{what}: {msg} (errno {errno})")]
    Call {
        /// Which call, and on what.
        what: String,
        /// The (positive) errno value.
        errno: i32,
        /// `rte_strerror(errno)`.
        msg: String,
    },
    /// No ethdev has this name (a vdev that was not given to EAL, a typo,
    /// or a PCI device not bound to a DPDK driver).
    #[error("no DPDK port named {0:?} (was it passed to EAL as --vdev or -a?)")]
    NoSuchPort(String),
    /// A device was given to EAL but is not there: its driver refused it
    /// at probe time (DPDK logs why, just before).
    #[error(
        "device {0} was given to EAL but failed to probe: see the EAL log lines above for why"
    )]
    NotProbed(String),
    /// A device string names files the driver cannot use, found before
    /// EAL probes it (DPDK would only log it and leave the port out).
    #[error("device {device}: {reason}")]
    DeviceFiles {
        /// The device name (`net_pcap0`).
        device: String,
        /// What is wrong, naming the file.
        reason: String,
    },
    /// A queue index beyond what the port was configured with.
    #[error("port {port}: queue {queue} out of range ({count} configured)")]
    BadQueue {
        /// DPDK port id.
        port: u16,
        /// Requested queue.
        queue: u16,
        /// Queues configured.
        count: u16,
    },
    /// The queue already has an owner; two pollers on one queue would race.
    #[error("port {port}: queue {queue} is already in use")]
    QueueTaken {
        /// DPDK port id.
        port: u16,
        /// Requested queue.
        queue: u16,
    },
    /// The requested configuration is invalid.
    #[error("invalid DPDK configuration: {0}")]
    Config(String),
    /// The mempool has no free mbuf.
    #[error("mempool {0:?} has no free mbuf")]
    NoMbuf(String),
    /// A frame does not fit into one mbuf.
    #[error("frame of {len} bytes does not fit into an mbuf with {room} bytes of room")]
    TooLarge {
        /// Frame length.
        len: usize,
        /// Room in the mbuf.
        room: usize,
    },
}

/// `rte_strerror(errno)` as an owned string.
pub(crate) fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror accepts any value and returns a pointer to a static
    // or thread-local NUL-terminated string, valid until the next call on this thread.
    let p = unsafe { dpdk_sys::rte_strerror(errno) };
    if p.is_null() {
        return format!("error {errno}");
    }
    // SAFETY: non-null NUL-terminated string (see above), copied out at once.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The current `rte_errno`.
pub(crate) fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local integer; no preconditions.
    unsafe { dpdk_sys::shim_rte_errno() }
}

/// Maps a DPDK return value (negative errno on failure) to a result.
pub(crate) fn check(what: impl FnOnce() -> String, ret: i32) -> Result<i32, DpdkError> {
    if ret < 0 {
        let errno = -ret;
        Err(DpdkError::Call {
            what: what(),
            errno,
            msg: strerror(errno),
        })
    } else {
        Ok(ret)
    }
}

/// An error from `rte_errno` (for calls that return NULL or -1).
pub(crate) fn from_errno(what: String) -> DpdkError {
    let errno = rte_errno();
    DpdkError::Call {
        what,
        errno,
        msg: strerror(errno),
    }
}
