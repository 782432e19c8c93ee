//! Command-line subcommands of the `meshplane` binary.

pub mod mesh;
pub mod routes;
