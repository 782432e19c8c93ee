//! `meshplane routes` as a standalone program, until the subcommand is wired
//! into the main binary: `cargo run --release --example routes -- --help`.

use clap::Parser;
use meshplane::cli::routes::{run, RoutesArgs};

#[derive(Parser, Debug)]
#[command(name = "routes", about = "Paths and RTTs between ground stations")]
struct Cli {
    #[command(flatten)]
    args: RoutesArgs,
}

fn main() -> anyhow::Result<()> {
    run(&Cli::parse().args)
}
