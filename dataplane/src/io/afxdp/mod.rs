//! AF_XDP backend, on `libc` and the `bpf(2)` system call alone.
//!
//! - [`Umem`]: the frame area a worker's sockets share with the kernel;
//!   [`UmemFrame`]: one frame of it, implementing [`Frame`](crate::frame::Frame)
//!   with 256 bytes of headroom, returned to the UMEM on drop.
//! - [`Xsk`]: one socket with its fill, completion, RX and TX rings, bound
//!   to an interface queue in zero-copy or copy mode.
//! - [`XdpAttachment`]: the hand-assembled redirect program
//!   (`bpf_redirect_map(xsks_map, rx_queue_index, XDP_PASS)`), its XSKMAP,
//!   and the BPF link that attaches it natively (generic as fallback) and
//!   detaches it when closed or when the process exits.
//! - [`AfXdpPort`]: a socket as a worker's [`Port`](crate::io::Port);
//!   [`AfXdpNode`]: every port of a node, one socket per worker and port.
//! - [`AfXdpBackend`]: the node's sockets as a runtime
//!   [`Backend`](crate::runtime::Backend) for `meshplane run`.
//!
//! This module (with `io::dpdk`) is the only place in the data plane with
//! `unsafe`; every block states why it is sound.

mod backend;
mod bpf;
mod error;
mod ethtool;
mod node;
mod port;
mod ring;
mod socket;
mod umem;

pub use backend::AfXdpBackend;
pub use bpf::{load_xdp_program, redirect_program, BpfInsn, XdpAttachMode, XdpAttachment};
pub use error::AfXdpError;
pub use ethtool::{driver_name, memlock_limits};
pub use node::{ifindex, rx_queues, AfXdpNode, MAX_FRAME};
pub use port::AfXdpPort;
pub use socket::{
    memlock_limit, raise_memlock, BindMode, RingSizes, Xsk, XskStats, XskStatsHandle,
};
pub use umem::{chunk_size_for, Umem, UmemFrame, FRAME_SIZE, MAX_CHUNK, RX_HEADROOM};
