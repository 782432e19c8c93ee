//! The node's side of the control plane: which constellation node it is,
//! how computed routes become its tables, the clock they follow, the
//! failure events it hears of, and the agent that decides when to install;
//! and the services that answer the node's own punted packets (ARP, ICMP
//! echo, LSP ping), sans-IO; and the transport of the node's BFD
//! sessions ([`bfd`]), which tell the agent of links that go down.
//!
//! Every node computes the routes of the whole constellation itself (from
//! the same ephemeris and clock as every other node) and installs only its
//! own tables: there is no central process.
//!
//! [`mgmt`] is the node's management socket (`meshplane ctl`).

#![warn(missing_docs)]

pub mod address_book;
pub mod agent;
pub mod armed_repairs;
pub mod bfd;
pub mod channel;
pub mod clock;
pub mod failures;
pub mod flooding;
pub mod ike;
pub mod inject;
pub mod install;
pub mod keys;
pub mod mgmt;
pub mod service_loop;
pub mod services;

pub use agent::{ControlAgent, Install, InstallReason, LinkNews};
pub use clock::GeometryClock;
pub use failures::FailureFeed;
pub use install::{
    route_changes, Compiled, InstallCounts, NextHops, PublicationInstaller, RouteChange,
    RouteInstaller,
};
pub use mgmt::{MgmtError, MgmtNode, MgmtOptions, MgmtServer, OamKind, OamRequest, OamResult};

/// Why the control plane of a node could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The node has no `[control]` section.
    #[error("node {0:?} has no [control] section")]
    NotConfigured(String),
    /// The geometry library refused its input.
    #[error(transparent)]
    Geometry(#[from] meshplane_control::Error),
    /// A ground-station file could not be read.
    #[error("{path}: {msg}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        msg: String,
    },
    /// Something in the node's configuration does not fit the constellation.
    #[error("{0}")]
    Config(String),
    /// The computed tables could not be built.
    #[error("building tables: {0}")]
    Tables(#[from] crate::tables::TableError),
}
