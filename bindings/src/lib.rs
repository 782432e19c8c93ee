//! Raw bindings to the system DPDK (>= 22.11).
//!
//! Generated at build time by bindgen over an allowlisted set of DPDK headers
//! (EAL, lcore, errno, ethdev, mbuf, mempool, ring, Ethernet/IP/UDP headers).
//! DPDK's fast path is made of `static inline` functions that have no symbol
//! to link to; the `shim_*` functions are out-of-line copies of those,
//! compiled from `src/c/shim.c` with DPDK's own compiler flags.
//!
//! Everything here is `unsafe` and mirrors the C API one to one; the safe
//! layer is `meshplane::io::dpdk`.

#![allow(non_upper_case_globals)]
#![allow(non_camel_case_types)]
#![allow(non_snake_case)]
#![allow(dead_code)]
#![allow(clippy::all)]
#![allow(missing_docs)]
#![allow(rustdoc::all)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
