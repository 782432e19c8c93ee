//! Command-line subcommands of the `meshplane` binary.

#![warn(missing_docs)]

pub mod check_host;
pub mod ctl;
pub mod emulate;
pub mod keys;
pub mod mesh;
pub mod mesh_delays;
pub mod routes;
pub mod stdout;
