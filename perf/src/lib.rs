//! Traffic generation, the replay throughput harness (`meshplane-bench`)
//! and micro-benchmarks.
//!
//! The harness: [`traffic`] holds the test frames, [`scenario`] names what
//! runs (a node role of the embedded chain), [`link`] is the tester's side
//! of the DUT's ports per backend, [`trial`] runs one measurement,
//! [`crypto`] the AEAD-alone baseline, [`measure`] puts a scenario's
//! measurements together, [`report`] and [`svg`] present them.

pub mod cputime;
pub mod crypto;
pub mod link;
pub mod link_afxdp;
#[cfg(feature = "dpdk")]
pub mod link_dpdk;
pub mod measure;
pub mod report;
pub mod scenario;
pub mod svg;
pub mod traffic;
pub mod trial;
