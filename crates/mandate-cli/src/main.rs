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
use mandate_core::keys::looks_like_private_key;

/// mimalloc instead of glibc's malloc, for the binary only (libraries leave
/// the choice to whoever links them). Under load `mandate serve` spent about
/// a quarter of its CPU in glibc's malloc and free, and glibc's per-thread
/// arenas let its memory creep; see benches/load/README.md for the figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return flag_error(&error),
    };
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

/// Prints clap's message for bad flags (or the help and version it was asked
/// for) and returns its exit code. clap quotes the argument it could not
/// take, whole or in part (it splits at `=`): a private key pasted as
/// `--tls-key -----BEGIN…` or as a stray argument would be printed. When
/// any argument reads as a private key, the message is one line naming
/// only the kind of error.
fn flag_error(error: &clap::Error) -> ExitCode {
    let code = ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
    let secret_given = std::env::args_os()
        .skip(1)
        .any(|arg| looks_like_private_key(&arg.to_string_lossy()));
    if !error.use_stderr() || !secret_given {
        // Help, version, or nothing to hide: clap prints it, in colour.
        let _ = error.print();
    } else {
        eprintln!(
            "error: {} (an argument that reads as a private key is not shown; see `mandate --help`)",
            error
                .kind()
                .as_str()
                .unwrap_or("the arguments could not be parsed")
        );
    }
    code
}

/// The log level of `-v` flags, unless `MANDATE_LOG` says otherwise.
fn log_level(verbose: u8) -> &'static str {
    match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    }
}
