//! DPDK backend: safe wrappers over `dpdk-sys`.
//!
//! - [`Eal`]: the environment abstraction layer, initialised once per process
//!   through [`EalBuilder`] (hugepages when reserved, else `--no-huge`).
//! - [`Mempool`]: a pool of packet buffers; [`Mbuf`]: one owned buffer that
//!   implements [`Frame`](crate::frame::Frame) and returns to its pool on drop.
//! - [`EthDev`]: one configured ethdev (queues, RSS, promiscuous mode, link,
//!   stats); [`DpdkPort`]: one of its RX/TX queue pairs, implementing
//!   [`Port`](crate::io::Port) for a worker.
//! - [`DpdkBackend`]: a node's devices for the runtime
//!   ([`Backend`](crate::runtime::Backend)).
//!
//! This module (with `io::afxdp`) is the only place in the data plane with
//! `unsafe`; every block states why it is sound.

mod backend;
mod eal;
mod error;
mod ethdev;
mod mbuf;
mod mempool;
mod node;
mod replay;

pub use backend::{
    default_buffers, node_data_room, pool_size, preloaded_buffers, ring_buffers, DpdkBackend,
    MBUFS_PER_QUEUE,
};
pub use eal::{hugepages_available, Eal, EalBuilder, MemoryMode};
pub use error::DpdkError;
pub use ethdev::{
    device_name, port_by_name, DpdkPort, EthDev, EthDevConfig, LinkStatus, PortStats,
};
pub use mbuf::{free_batch, Mbuf};
pub use mempool::Mempool;
pub use node::NodePorts;
pub use replay::{replay_dpdk, DpdkReplayError};
