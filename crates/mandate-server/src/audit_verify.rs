//! `mandate audit verify` on a whole store: every writer's log checked on
//! its own ([`mandate_audit::verify_with_witnesses`]), each against the key
//! the store names for it (which must be a pinned one when keys are pinned),
//! heads kept outside the store matched to their writer's log, and a log's
//! places in a shared trail checked against its sequence.
//!
//! This module only judges; the binary prints the verdict.

use anyhow::{bail, Result};
use mandate_audit::integrity::{parse_hash, Hash};
use mandate_audit::{Tampered, Verified};
use mandate_core::{fingerprint, PublicKey};

use crate::audit_store::AuditStore;

/// A head kept outside the store (from a writer's `audit head signed` log
/// lines): the record at `seq` has `hash`, in `writer`'s log (a writer's
/// fingerprint as records name it) or, when `None`, in the store's one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// The writer, as records name it (`sha256:…`).
    pub writer: Option<String>,
    /// The record.
    pub seq: u64,
    /// Its hash.
    pub hash: Hash,
}

impl std::str::FromStr for Witness {
    type Err = String;

    /// `[WRITER:]SEQ:HASH`, HASH 64 hex digits.
    fn from_str(text: &str) -> Result<Witness, String> {
        let wrong = || format!("{text}: expected [WRITER:]SEQ:HASH (64 hex digits)");
        let mut parts = text.rsplitn(3, ':');
        let (Some(hash), Some(seq)) = (parts.next(), parts.next()) else {
            return Err(wrong());
        };
        let (Ok(seq), Some(hash)) = (seq.parse::<u64>(), parse_hash(hash)) else {
            return Err(wrong());
        };
        Ok(Witness {
            writer: parts.next().map(str::to_owned),
            seq,
            hash,
        })
    }
}

/// One writer's log that verified.
#[derive(Debug, Clone)]
pub struct IntactLog {
    /// `writer <fingerprint>: ` when the store names the writer, else empty:
    /// how lines about this log begin.
    pub label: String,
    /// What was checked.
    pub verified: Verified,
}

/// What verifying a store found: the logs that verified, in order, and the
/// first tampering, after which nothing more was checked.
#[derive(Debug, Clone)]
pub struct StoreVerdict {
    /// The logs checked and found intact.
    pub intact: Vec<IntactLog>,
    /// The first thing found tampered with, as a line (without `TAMPERED: `).
    pub tampered: Option<String>,
    /// Whether the store holds (or may hold) several writers' logs.
    pub shared: bool,
}

/// Verifies every writer's log in `store`; with `pinned`, only heads signed
/// by those keys are accepted.
///
/// # Errors
/// The store cannot be read, or (with several writers) a witness does not
/// name its writer.
pub fn verify_store(
    store: &AuditStore,
    pinned: &[PublicKey],
    witnesses: &[Witness],
) -> Result<StoreVerdict> {
    let logs = store.logs()?;
    if logs.len() > 1 && witnesses.iter().any(|w| w.writer.is_none()) {
        bail!("--expect-head: this store holds the logs of {} writers; name the writer (WRITER:SEQ:HASH, WRITER as records name it)", logs.len());
    }
    let mut verdict = StoreVerdict {
        intact: Vec::new(),
        tampered: None,
        shared: logs.len() > 1 || matches!(store, AuditStore::Shared(_)),
    };
    // A head kept outside names a writer whose log is gone: the whole log
    // was deleted.
    let named: Vec<String> = logs
        .iter()
        .filter_map(|stored| stored.writer.as_deref().map(fingerprint))
        .collect();
    if verdict.shared {
        if let Some(orphan) = witnesses
            .iter()
            .filter_map(|w| w.writer.as_ref())
            .find(|writer| !named.contains(writer))
        {
            verdict.tampered = Some(format!(
                "writer {orphan}: its log is missing, but a head kept outside names it"
            ));
            return Ok(verdict);
        }
    }
    for stored in &logs {
        let named = stored.writer.as_deref().map(fingerprint);
        let label = named
            .as_deref()
            .map_or_else(String::new, |writer| format!("writer {writer}: "));
        let own: Vec<PublicKey> = match &stored.writer {
            // The store names the log's writer: its heads must be signed by
            // that key, which must be a given one when keys are pinned (a
            // log whose writer was changed to another pinned key is caught).
            Some(writer) => {
                let Ok(key) = writer.parse::<PublicKey>() else {
                    verdict.tampered = Some(format!(
                        "the store names a writer key that does not read: {writer}"
                    ));
                    return Ok(verdict);
                };
                if !pinned.is_empty() && !pinned.contains(&key) {
                    verdict.tampered = Some(format!(
                        "{label}the store names writer key {writer}, not a given writer key"
                    ));
                    return Ok(verdict);
                }
                vec![key]
            }
            None => pinned.to_vec(),
        };
        let expected: Vec<_> = witnesses
            .iter()
            .filter(|w| w.writer.is_none() || w.writer == named)
            .map(|w| (w.seq, w.hash))
            .collect();
        let checked =
            match mandate_audit::verify_with_witnesses(stored.log.as_ref(), &own, &expected) {
                // A row that does not read as what the writer stored (a head
                // replaced by garbage) was edited.
                Err(mandate_audit::Error::Corrupt { seq, message }) => {
                    verdict.tampered = Some(format!("{label}record #{seq}: unreadable: {message}"));
                    return Ok(verdict);
                }
                other => other?,
            };
        let checked = checked.and_then(|verified| match stored.out_of_trail_order {
            Some(seq) => Err(Tampered {
                seq,
                problem: format!(
                    "out of place in the trail: its position comes before record #{}'s (positions reordered)",
                    seq.saturating_sub(1)
                ),
            }),
            None => Ok(verified),
        });
        match checked {
            Ok(verified) => verdict.intact.push(IntactLog { label, verified }),
            Err(tampered) => {
                verdict.tampered = Some(format!("{label}{tampered}"));
                return Ok(verdict);
            }
        }
    }
    Ok(verdict)
}
