//! Command-line subcommands of the `meshplane` binary.

pub mod routes;
