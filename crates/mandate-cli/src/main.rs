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
use mandate_core::keys::may_be_key_material;

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
/// take: a private key pasted as `--tls-key -----BEGIN…` or as a stray
/// argument would be printed whole, so any argument that may be key
/// material is left out of the message.
fn flag_error(error: &clap::Error) -> ExitCode {
    let code = ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
    let text = error.render().to_string();
    let hidden: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned())
        .filter(|arg| may_be_key_material(std::path::Path::new(arg)))
        .collect();
    let shown = without(&text, &hidden);
    if !error.use_stderr() || shown == text {
        // Help, version, or nothing to hide: clap prints it, in colour.
        let _ = error.print();
    } else {
        eprint!("{shown}");
    }
    code
}

/// `text` with every argument of `hidden`, and each long line of one, replaced.
fn without(text: &str, hidden: &[String]) -> String {
    const NOT_SHOWN: &str = "(an argument that may be key material, not shown)";
    let mut text = text.to_owned();
    for arg in hidden {
        text = text.replace(arg.as_str(), NOT_SHOWN);
        for line in arg.lines().map(str::trim).filter(|line| line.len() >= 16) {
            text = text.replace(line, NOT_SHOWN);
        }
    }
    text
}

/// The log level of `-v` flags, unless `MANDATE_LOG` says otherwise.
fn log_level(verbose: u8) -> &'static str {
    match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    }
}
