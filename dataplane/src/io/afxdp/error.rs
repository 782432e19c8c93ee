//! Errors of the AF_XDP backend, each saying what to do about it.

use std::io;

/// What went wrong in the AF_XDP backend.
#[derive(Debug, thiserror::Error)]
pub enum AfXdpError {
    /// No network interface has this name.
    #[error("no network interface {0:?} (`ip link show` lists them; is it in another network namespace?)")]
    NoSuchInterface(String),
    /// The process lacks a capability AF_XDP needs.
    #[error(
        "{what}: permission denied; AF_XDP needs root, or CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF \
         and CAP_IPC_LOCK (e.g. `setcap cap_net_admin,cap_net_raw,cap_bpf,cap_ipc_lock+ep meshplane`)"
    )]
    Permission {
        /// The operation that was refused.
        what: String,
    },
    /// The UMEM cannot be locked in memory under the current RLIMIT_MEMLOCK.
    #[error(
        "registering {need} bytes of UMEM: RLIMIT_MEMLOCK is {limit} bytes and could not be raised; \
         raise it (`ulimit -l unlimited`, or LimitMEMLOCK=infinity in a systemd unit), grant \
         CAP_IPC_LOCK, or use smaller rings"
    )]
    Memlock {
        /// Bytes the UMEM needs locked.
        need: u64,
        /// The soft limit in force (`u64::MAX` = unlimited).
        limit: u64,
    },
    /// Zero-copy was asked for, but the driver has no native XDP.
    #[error(
        "{iface}: the driver has no native XDP support ({msg}), which mode = \"zerocopy\" needs; \
         use mode = \"auto\" or \"copy\" to run in generic (SKB) XDP with copies"
    )]
    NoNativeXdp {
        /// Interface name.
        iface: String,
        /// What the kernel said.
        msg: String,
    },
    /// Zero-copy was asked for, but the driver cannot bind a socket in it.
    #[error(
        "{iface} queue {queue}: the driver does not support AF_XDP zero-copy ({msg}); \
         use mode = \"auto\" or \"copy\""
    )]
    NoZeroCopy {
        /// Interface name.
        iface: String,
        /// Queue id.
        queue: u32,
        /// What the kernel said.
        msg: String,
    },
    /// Another XDP program is already attached to the interface.
    #[error(
        "{iface}: another XDP program is attached ({msg}); remove it first \
         (`ip link set dev {iface} xdp off`, or stop the process that holds it)"
    )]
    XdpBusy {
        /// Interface name.
        iface: String,
        /// What the kernel said.
        msg: String,
    },
    /// The kernel refused the redirect program; the verifier log says why.
    #[error("loading the XDP redirect program: {source}; verifier log:\n{log}")]
    ProgLoad {
        /// The error of `BPF_PROG_LOAD`.
        source: io::Error,
        /// The verifier's log (may be empty).
        log: String,
    },
    /// A queue the configuration names does not exist on the interface.
    #[error("{iface}: no RX queue {queue} (the interface has {count}); check `queues`")]
    BadQueue {
        /// Interface name.
        iface: String,
        /// Requested queue.
        queue: u32,
        /// RX queues the interface has.
        count: u32,
    },
    /// The configuration cannot be used as given.
    #[error("invalid AF_XDP configuration: {0}")]
    Config(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// The call, and on what.
        what: String,
        /// The OS error.
        source: io::Error,
    },
}

impl AfXdpError {
    /// Wraps the last OS error for `what`, recognising a refusal for lack
    /// of privileges.
    pub(crate) fn last_os(what: impl Into<String>) -> Self {
        Self::from_io(what, io::Error::last_os_error())
    }

    /// Wraps `source` for `what`, recognising a refusal for lack of privileges.
    pub(crate) fn from_io(what: impl Into<String>, source: io::Error) -> Self {
        let what = what.into();
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => AfXdpError::Permission { what },
            _ => AfXdpError::Sys { what, source },
        }
    }
}
