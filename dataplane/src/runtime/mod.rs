//! The runtime: starts a node's workers on their cores, publishes its
//! tables, collects its statistics and stops it cleanly, over any backend.
//!
//! - [`Backend`]: what a backend offers the runtime (each worker's queue
//!   of every port, thread hooks, device counters); implemented by DPDK
//!   (`io::dpdk::DpdkBackend`) and by in-process rings ([`MemoryBackend`]).
//! - [`Layout`]: which threads run on which cores, run-to-completion or
//!   pipeline ([`pipeline`]).
//! - [`TableStore`]: the table snapshot workers load once per burst and
//!   anyone publishes into; [`ConfigReloader`] republishes from the file.
//! - [`StatsHub`]: per-worker counters published without touching the hot
//!   path; [`NodeSnapshot`] renders them as a table or JSON, [`metrics`]
//!   as Prometheus text.
//! - [`Signals`]: `SIGINT`/`SIGTERM` stop, `SIGHUP` reload.
//! - [`control_thread`]: a node with `[control]` computes its own routes
//!   on a thread of its own and publishes them into the same store.
//! - [`lifetimes`]: the SAs' time limits, and each lifetime level an SA
//!   reaches logged once, from the supervising thread.
//! - [`run`]: starts the threads, supervises, stops, drains, reports;
//!   before the workers stop, the node's last words ([`Farewell`]).

#![warn(missing_docs)]

mod backend;
pub mod control_thread;
mod farewell;
mod hub;
pub mod idle;
mod layout;
pub mod lifetimes;
mod memory;
pub mod metrics;
pub mod pipeline;
mod reload;
mod report;
mod run;
mod run_to_completion;
mod signals;
mod snapshot;
mod stats_slot;
mod table_store;

pub use backend::{Backend, BufferPool, DeviceCounters};
pub use farewell::{Farewell, FAREWELL_MAX};
pub use hub::{StatsHub, WorkerInfo, WorkerRole};
pub use layout::{Layout, LayoutError};
pub use memory::{MemoryBackend, MemoryBackendError};
pub use metrics::MetricsServer;
pub use reload::{serve_reloads, ConfigReloader, ReloadError, RELOAD_POLL};
pub use report::{write_json, StatsReporter};
pub use run::{run, Channels, RunOptions, RunSummary, RuntimeError, TICK};
pub use signals::Signals;
pub use snapshot::{NodeSnapshot, WorkerSnapshot};
pub use stats_slot::{Published, SlotWriter, StatsSlot, PUBLISH_EVERY};
pub use table_store::TableStore;
