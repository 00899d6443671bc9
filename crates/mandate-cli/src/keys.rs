//! `mandate keys rotate|list|retire|prune`: the issuer's root keys in a key
//! folder (`mandate_issuer::keyring`). Prints key ids, public keys and
//! validity only — never a private key.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _, Result};
use mandate_issuer::keyring::{signing_entry, KeyDir, KeyEntry};
use mandate_server::issuer::IssuerConfig;
use mandate_server::ServerConfig;

use crate::args::{
    KeyFolderArgs, KeysCommand, KeysListArgs, KeysPruneArgs, KeysRetireArgs, KeysRotateArgs,
};
use crate::input::bounded_duration;
use crate::outcome::Outcome;
use crate::output::say;

/// The longest `--activate-in` and `--overlap`.
const LONGEST: Duration = Duration::from_secs(366 * 24 * 3600);

/// `mandate keys ...`.
pub fn run(command: KeysCommand) -> Result<Outcome> {
    match command {
        KeysCommand::Rotate(args) => rotate(&args),
        KeysCommand::List(args) => list(&args),
        KeysCommand::Retire(args) => retire(&args),
        KeysCommand::Prune(args) => prune(&args),
    }
}

/// The folder `--dir` names, or the `key_dir` of `--config`.
fn folder(args: &KeyFolderArgs) -> Result<PathBuf> {
    if let Some(dir) = &args.dir {
        return Ok(dir.clone());
    }
    let Some(path) = &args.config else {
        bail!("give --dir DIR or --config FILE");
    };
    // An issuer's own file, or a server's with an [issuer] section.
    let key_dir = match IssuerConfig::from_file(path) {
        Ok(config) => config.key_dir,
        Err(_) => ServerConfig::from_file(path)?
            .issuer
            .and_then(|issuer| issuer.key_dir),
    };
    key_dir.with_context(|| format!("{} names no key_dir", path.display()))
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn rotate(args: &KeysRotateArgs) -> Result<Outcome> {
    let activate_in =
        bounded_duration("--activate-in", &args.activate_in, Duration::ZERO, LONGEST)?;
    let overlap = bounded_duration("--overlap", &args.overlap, Duration::ZERO, LONGEST)?;
    let path = folder(&args.folder)?;
    let dir = KeyDir::new(&path);
    let entry = dir
        .rotate(SystemTime::now(), activate_in, overlap)
        .with_context(|| format!("rotating the keys of {}", path.display()))?;
    tracing::info!(kid = entry.kid, dir = %path.display(), "root key added");
    say!(
        "kid {} {} signs from {}",
        entry.kid,
        entry.public_key,
        time(entry.not_before)
    )?;
    Ok(Outcome::Ok)
}

/// What a key is doing at `now`.
fn status(entry: &KeyEntry, signing: Option<u32>, now: SystemTime) -> &'static str {
    if !entry.is_trusted(now) {
        "retired"
    } else if signing == Some(entry.kid) {
        "signing"
    } else if entry.not_before > now {
        "next"
    } else {
        "overlap"
    }
}

fn list(args: &KeysListArgs) -> Result<Outcome> {
    let path = folder(&args.folder)?;
    let dir = KeyDir::new(&path);
    let entries = dir
        .entries()
        .with_context(|| format!("reading the keys of {}", path.display()))?;
    let now = SystemTime::now();
    let signing = signing_entry(&entries, now).map(|e| e.kid);
    if args.json {
        let keys: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                let mut value = serde_json::to_value(e).unwrap_or_default();
                value["status"] = status(e, signing, now).into();
                value
            })
            .collect();
        say!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "keys": keys }))?
        )?;
        return Ok(Outcome::Ok);
    }
    if entries.is_empty() {
        say!(
            "no keys in {} (run `mandate keys rotate --dir {}`)",
            path.display(),
            path.display()
        )?;
        return Ok(Outcome::Ok);
    }
    for e in &entries {
        say!(
            "kid {:<4} {:<8} {} from {} until {}",
            e.kid,
            status(e, signing, now),
            e.public_key,
            time(e.not_before),
            e.not_after.map_or_else(|| "(no end)".to_owned(), time)
        )?;
    }
    Ok(Outcome::Ok)
}

fn retire(args: &KeysRetireArgs) -> Result<Outcome> {
    let at = match &args.at {
        Some(text) => humantime::parse_rfc3339_weak(text).with_context(|| {
            format!("invalid time `{text}` (expected RFC 3339, e.g. 2026-11-28T10:00:00Z)")
        })?,
        None => SystemTime::now(),
    };
    let path = folder(&args.folder)?;
    let dir = KeyDir::new(&path);
    let entry = dir
        .retire(args.kid, at)
        .with_context(|| format!("retiring key {} of {}", args.kid, path.display()))?;
    say!(
        "kid {} trusted until {}",
        entry.kid,
        entry.not_after.map_or_else(|| "(no end)".to_owned(), time)
    )?;
    Ok(Outcome::Ok)
}

fn prune(args: &KeysPruneArgs) -> Result<Outcome> {
    let path = folder(&args.folder)?;
    let dir = KeyDir::new(&path);
    let pruned = dir
        .prune(SystemTime::now())
        .with_context(|| format!("pruning the keys of {}", path.display()))?;
    if pruned.is_empty() {
        say!("no retired keys past their overlap in {}", path.display())?;
    }
    for entry in &pruned {
        tracing::info!(kid = entry.kid, dir = %path.display(), "retired root key removed");
        say!(
            "kid {} removed (retired {})",
            entry.kid,
            entry.not_after.map_or_else(|| "(no end)".to_owned(), time)
        )?;
    }
    Ok(Outcome::Ok)
}
