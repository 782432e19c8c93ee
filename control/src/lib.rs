//! Constellation geometry -> topology -> routes -> labels -> per-node tables.
//!
//! A pure library: it parses the text it is given and computes; it does no
//! I/O of its own and knows nothing of packets. The pipeline, one module per
//! concept:
//!
//! * [`time`]: UTC instants and sidereal time;
//! * [`tle`]: TLE parsing and Hypatia-style Walker TLE generation;
//! * [`constellation`]: presets, Walker parameters, satellite ids (plane-major);
//! * [`propagate`]: SGP4 (WGS72, AFSPC mode), TEME -> Earth-fixed;
//! * [`ground`]: ground-station CSV, geodetic -> Earth-fixed (WGS72);
//! * [`topology`]: +Grid ISLs, GSLs, administrative failures;
//! * [`routing`]: shortest-path trees, paths, link-disjoint backups, one
//!   node's first hops toward every satellite;
//! * [`labels`], [`tables`]: gateway and satellite node labels in alternating
//!   blocks, FEC and LFIB;
//! * [`snapshot`]: all of the above at one instant;
//! * [`repair`]: one node's precomputed repairs for the failure of each of
//!   its links (loop-free alternates and node-label stacks), and a
//!   reference walk that checks them;
//! * [`schedule`]: when to compute and publish tables (a state machine);
//! * [`bfd`]: link liveness, one BFD session (RFC 5880) as a sans-IO
//!   state machine;
//! * [`ike`]: IKEv2 between gateways (RFC 7296), a sans-IO endpoint
//!   that negotiates the data plane's ESP SAs;
//! * [`notice`], [`signing`]: signed link-state notices on the wire, and who
//!   signs and verifies them;
//! * [`flood`]: reliable flooding of notices between neighbours (a sans-IO
//!   state machine), and [`flood_sim`], its discrete-event simulation over
//!   a topology.
//!
//! Node ids: satellites `0..N`, ground station `gid` is node `N + gid`.
//! RTTs are `2 * path length / c`, as in Hypatia.

#![warn(missing_docs)]

pub mod bfd;
pub mod constellation;
pub mod flood;
pub mod flood_sim;
pub mod ground;
pub mod ike;
pub mod labels;
pub mod notice;
pub mod propagate;
pub mod repair;
pub mod routing;
pub mod schedule;
pub mod signing;
pub mod snapshot;
pub mod tables;
pub mod time;
pub mod tle;
pub mod topology;

pub use constellation::{Constellation, Preset};
pub use ground::GroundStations;
pub use snapshot::{Engine, Snapshot};
pub use topology::{Failures, NodeId};

/// Any error of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// TLE input.
    #[error(transparent)]
    Tle(#[from] tle::TleError),
    /// Constellation definition.
    #[error(transparent)]
    Constellation(#[from] constellation::ConstellationError),
    /// Propagation.
    #[error(transparent)]
    Propagate(#[from] propagate::PropagateError),
    /// Ground stations.
    #[error(transparent)]
    Ground(#[from] ground::GroundError),
    /// Labels.
    #[error(transparent)]
    Label(#[from] labels::LabelError),
    /// Repairs.
    #[error(transparent)]
    Repair(#[from] repair::RepairError),
}
