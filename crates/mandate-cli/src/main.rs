//! `mandate`: capability tokens for AI agents, from the command line.
//!
//! This binary only parses flags, reads inputs, calls the library crates and
//! prints. Exit codes: 0 success or allow, 1 deny, 2 any error (bad flags,
//! bad input, a token that cannot be trusted).

mod args;
mod commands;
mod demo;
mod output;
mod revocation;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    init_tracing(cli.verbose);
    match commands::run(cli.command) {
        Ok(outcome) => ExitCode::from(outcome as u8),
        Err(err) => {
            // `{:#}` prints every cause on one line: "reading key: No such file".
            eprintln!("error: {err:#}");
            ExitCode::from(commands::Outcome::Error as u8)
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MANDATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
