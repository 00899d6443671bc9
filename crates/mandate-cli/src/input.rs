//! Values read from the command line: token arguments (`TOKEN`, `@FILE` or
//! `-`) and bounded durations.

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use mandate_core::UnverifiedMandate;

/// Reads a token argument: the token itself, `@FILE`, or `-` for stdin.
pub fn read_token(arg: &str) -> Result<UnverifiedMandate> {
    Ok(UnverifiedMandate::from_base64(&read_token_text(arg)?)?)
}

/// The text of a token argument, unparsed. A file or stdin is read only up
/// to the longest token accepted; one that holds nothing but spaces is
/// refused here, before it is sent anywhere as a missing token.
pub fn read_token_text(arg: &str) -> Result<String> {
    let (text, source) = if arg == "-" {
        let text = mandate_core::read_token_text(std::io::stdin())
            .context("reading the token from stdin")?;
        (text, " (stdin)".to_owned())
    } else if let Some(path) = arg.strip_prefix('@') {
        let text = std::fs::File::open(path)
            .and_then(mandate_core::read_token_text)
            .with_context(|| format!("reading token file {path}"))?;
        (text, format!(" (token file {path})"))
    } else {
        (arg.to_string(), String::new())
    };
    if text.trim().is_empty() {
        bail!("malformed token: empty token{source}");
    }
    Ok(text)
}

/// Parses a human duration such as `90s`, `10m` or `2h`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    humantime::parse_duration(text)
        .with_context(|| format!("invalid duration `{text}` (examples: 90s, 10m, 2h)"))
}

/// A duration flag that must stay within sane bounds; the error names the
/// bound that was crossed.
pub fn bounded_duration(flag: &str, text: &str, min: Duration, max: Duration) -> Result<Duration> {
    let value = parse_duration(text)?;
    if value < min {
        bail!(
            "{flag} {text} is too short: the minimum is {}",
            humantime::format_duration(min)
        );
    }
    if value > max {
        bail!(
            "{flag} {text} is too long: the maximum is {}",
            humantime::format_duration(max)
        );
    }
    Ok(value)
}

/// The widest `--pop-window`: a proof is a signature over one request, and a
/// window of hours would let a captured proof be replayed long after the
/// replay cache forgot its nonce.
pub const POP_WINDOW_MAX: Duration = mandate_server::config::bounds::POP_WINDOW.1;
/// The narrowest `--pop-window`: below a second, clock skew alone denies.
pub const POP_WINDOW_MIN: Duration = mandate_server::config::bounds::POP_WINDOW.0;

/// Parses `--pop-window`.
pub fn pop_window(text: &str) -> Result<Duration> {
    bounded_duration("--pop-window", text, POP_WINDOW_MIN, POP_WINDOW_MAX)
}
