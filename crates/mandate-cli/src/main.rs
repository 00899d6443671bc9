//! `mandate`: capability tokens for AI agents, from the command line.
//!
//! This binary only parses flags, reads inputs, calls the library crates and
//! prints. Exit codes: 0 success or allow, 1 deny, 2 any error (bad flags,
//! bad input, a token that cannot be trusted).

mod args;
mod audit;
mod commands;
mod demo;
mod input;
mod issuer;
mod keys;
mod outcome;
mod output;
mod revocation;

use std::process::ExitCode;

use clap::Parser as _;

/// mimalloc instead of glibc's malloc, for the binary only (libraries leave
/// the choice to whoever links them). Under load `mandate serve` spent about
/// a quarter of its CPU in glibc's malloc and free, and glibc's per-thread
/// arenas let its memory creep; see benches/load/README.md for the figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    // Servers install their own subscriber, in the format their configuration asks for.
    if !cli.command.is_server() {
        mandate_server::logging::init(mandate_server::LogFormat::Text, log_level(cli.verbose));
    }
    match commands::run(cli.command, cli.verbose) {
        Ok(outcome) => ExitCode::from(outcome as u8),
        Err(err) => {
            // `{:#}` prints every cause on one line: "reading key: No such file".
            eprintln!("error: {err:#}");
            ExitCode::from(outcome::Outcome::Error as u8)
        }
    }
}

/// The log level of `-v` flags, unless `MANDATE_LOG` says otherwise.
fn log_level(verbose: u8) -> &'static str {
    match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    }
}
