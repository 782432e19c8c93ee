//! DPDK backend.
