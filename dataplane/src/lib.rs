//! meshplane: the packet data plane of a LEO optical-mesh backbone.
//!
//! Frames flow `rx_burst -> stages -> tx_burst` in batches of up to 32
//! (`frame::Batch`). Stages are generic over `frame::Frame`, implemented by
//! every I/O backend's buffer, and never copy a payload.

// Operator files are read through `file_read` only (see clippy.toml).
#![deny(clippy::disallowed_methods)]
// Output through `out!`/`outln!`: a closed stdout ends quietly.
#![deny(clippy::disallowed_macros)]

pub mod chain;
pub mod cli;
pub mod config;
pub mod control;
pub mod drop_reason;
pub mod emulate;
pub mod file_read;
pub mod frame;
pub mod gen;
pub mod io;
pub mod mesh;
pub mod packet;
pub mod reference;
pub mod replay;
pub mod runtime;
pub mod sa;
pub mod stage;
pub mod tables;
pub mod worker;
pub mod world_map;
