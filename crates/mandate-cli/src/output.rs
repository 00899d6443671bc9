//! How reports and decisions look on the terminal and in `--json`, and how
//! they reach stdout.
//!
//! Names (principal, agents, task, chain) are printed through
//! [`display_name`]: every non-ASCII character shows as `\u{XXXX}`, so a
//! Cyrillic `а` never passes for a Latin `a` on the terminal. JSON output
//! keeps the exact strings; JSON escaping is unambiguous already.

/// Writes a line to stdout. A closed pipe (`mandate ... | head -1`) is not an
/// error — the rest of the output is dropped and the command keeps its exit
/// code — but any other write error (a full disk) is.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// As [`say!`], without the newline.
macro_rules! say_raw {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(&format!($($arg)*))
    };
}

pub(crate) use {say, say_raw};

/// Writes `text` to stdout, treating a closed pipe as success.
pub fn write_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use mandate_core::{display_label, display_name, Inspection, SignatureStatus};
use mandate_verifier::Decision;

use crate::outcome::Outcome;

pub fn inspection_text(report: &Inspection) -> String {
    let mut out = String::new();
    let none = || "(none)".to_string();
    let signature = match &report.signature {
        SignatureStatus::NotChecked => "not checked (give --root-pub to verify)".to_string(),
        SignatureStatus::Valid => "valid".to_string(),
        SignatureStatus::Invalid { reason } => format!("INVALID: {reason}"),
    };
    let _ = writeln!(out, "signature:  {signature}");
    let _ = writeln!(
        out,
        "root key:   {}",
        report
            .root_key_id
            .map_or_else(|| "no key id".to_string(), |id| format!("key id {id}"))
    );
    let _ = writeln!(
        out,
        "principal:  {}",
        report.principal.as_deref().map_or_else(none, display_name)
    );
    for agent in &report.agents {
        let key = if agent.key.is_empty() {
            "no key: bearer token".to_string()
        } else {
            agent.key.clone()
        };
        let _ = writeln!(out, "agent:      {} ({key})", display_name(&agent.name));
    }
    let _ = writeln!(
        out,
        "task:       {}",
        report.task.as_deref().map_or_else(none, display_name)
    );
    match &report.chain_error {
        Some(error) => {
            let _ = writeln!(out, "chain:      BROKEN: {error}");
        }
        None => {
            let _ = writeln!(out, "chain:      {}", display_chain(&report.chain));
        }
    }
    let _ = writeln!(out, "rights:     {}", report.rights.join(", "));
    let _ = writeln!(
        out,
        "issued:     {}",
        report.issued_at.clone().unwrap_or_else(none)
    );
    let remaining = match report.expires_in_seconds {
        Some(s) if s >= 0 => format!(
            " (in {})",
            humantime::format_duration(std::time::Duration::from_secs(s.unsigned_abs()))
        ),
        Some(s) => format!(
            " (EXPIRED {} ago)",
            humantime::format_duration(std::time::Duration::from_secs(s.unsigned_abs()))
        ),
        None => String::new(),
    };
    if report.effective_expires_at != report.expires_at {
        let _ = writeln!(
            out,
            "expires:    {} (mandate), narrowed to {}{remaining}",
            report.expires_at.clone().unwrap_or_else(none),
            report.effective_expires_at.clone().unwrap_or_else(none)
        );
    } else {
        let _ = writeln!(
            out,
            "expires:    {}{remaining}",
            report.expires_at.clone().unwrap_or_else(none)
        );
    }
    let _ = writeln!(out, "token id:   {}", report.token_id);
    let _ = writeln!(out, "root id:    {}", report.root_id);
    for block in &report.blocks {
        let title = if block.index == 0 {
            "authority block".to_string()
        } else {
            format!("block {}", block.index)
        };
        let signer = block
            .signed_by
            .as_ref()
            .map(|k| format!(", signed by {k}"))
            .unwrap_or_default();
        let _ = writeln!(out, "\n{title} (id {}{signer}):", block.id);
        for line in block.source.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    out
}

pub fn decision_text(decision: &Decision) -> String {
    let verdict = if decision.allowed { "ALLOW" } else { "DENY" };
    let mut out = format!(
        "{verdict}: {} acting for {} via {} — {} {} {}\n",
        display_label(&decision.agent),
        display_label(&decision.principal),
        display_chain(&decision.chain),
        decision.service,
        decision.operation,
        decision.resource,
    );
    let _ = writeln!(
        out,
        "task {}, token {}",
        display_label(&decision.task),
        decision.token_id
    );
    let _ = writeln!(out, "reason: {}", decision.reason);
    out
}

/// The chain of agent names, escaped, joined with arrows.
fn display_chain(chain: &[String]) -> String {
    chain
        .iter()
        .map(|name| display_label(name))
        .collect::<Vec<_>>()
        .join(" → ")
}

/// Prints the token, or writes it to `out` atomically: a failed command
/// never leaves a partial file behind.
pub(crate) fn emit_token(token: &str, out: Option<&Path>) -> Result<Outcome> {
    match out {
        None => say!("{token}")?,
        Some(path) => write_atomically(path, token)?,
    }
    Ok(Outcome::Ok)
}

fn write_atomically(path: &Path, contents: &str) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{contents}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    file.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
