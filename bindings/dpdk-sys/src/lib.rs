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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbuf_layout_matches_the_headers() {
        // Two cache lines, as DPDK 22.11 lays the mbuf out; the fast-path
        // fields the safe layer reads directly must be where C has them.
        assert_eq!(std::mem::size_of::<rte_mbuf>(), 128);
        assert_eq!(std::mem::align_of::<rte_mbuf>(), 64);
        assert_eq!(std::mem::offset_of!(rte_mbuf, buf_addr), 0);
        assert_eq!(std::mem::offset_of!(rte_mbuf, data_off), 16);
        assert_eq!(std::mem::offset_of!(rte_mbuf, pkt_len), 36);
        assert_eq!(std::mem::offset_of!(rte_mbuf, data_len), 40);
        assert_eq!(std::mem::offset_of!(rte_mbuf, next), 64);
        assert_eq!(RTE_PKTMBUF_HEADROOM, 128);
    }

    #[test]
    fn shim_links_and_runs_without_eal() {
        // A thread EAL does not know has no lcore id; rte_errno starts at 0.
        // SAFETY: both read thread-local variables and need no EAL.
        unsafe {
            assert_eq!(shim_rte_lcore_id(), LCORE_ID_ANY);
            assert_eq!(shim_rte_errno(), 0);
        }
    }
}
