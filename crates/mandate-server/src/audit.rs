//! The audit trail of a server: its writer (opened from [`AuditSettings`]),
//! the recorder the authorization API and the proxy endpoint call before
//! answering, and the registry store wrapper that records every revocation
//! and lift once it is durable.
//!
//! A decision is recorded with the revocation sequence this server's index
//! had reached and the server's verifier id; a registry write is recorded
//! after the registry made it durable, and a write that cannot be recorded
//! still stands (a revocation must never be lost for want of a record), but
//! the writer then fails, so every decision is refused until it recovers.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use mandate_audit::{
    AuditWriter, DecisionContext, DecisionRecord, Durability, Event, RefusalRecord, RegistryAction,
    RegistryEvent, WriterConfig, WriterKey,
};
use mandate_core::SecretKey;
use mandate_registry::{NewRevocation, RevocationEntry, RevocationStore, SharedIndex};
use mandate_verifier::http::{Answer, DecisionRecorder, RecordError, Recording, Refusal};
use mandate_verifier::Decision;

use crate::settings::AuditSettings;

/// Reads the writer key at `path`, or creates it (0600, with its `.pub`)
/// when the file does not exist.
///
/// # Errors
/// A key that exists but cannot be read (or is open to group or others), or
/// one that cannot be written.
pub fn writer_key(path: &std::path::Path) -> Result<WriterKey> {
    let shown = mandate_core::keys::describe_path(path);
    let secret = if path.exists() {
        SecretKey::read(path).with_context(|| format!("reading audit key {shown}"))?
    } else {
        // A key pasted in place of its path is neither printed nor made
        // into a file name.
        if mandate_core::keys::may_be_key_material(path) {
            anyhow::bail!("the audit key must be a file: {shown} is not");
        }
        let secret = SecretKey::generate();
        secret
            .write_new(path)
            .with_context(|| format!("creating audit key {shown}"))?;
        tracing::info!(path = %path.display(), public = %secret.public(), "created the audit writer key");
        secret
    };
    Ok(WriterKey::new(&secret)?)
}

/// Opens the audit log of `settings` and starts its writer; with a store
/// shared by replicas, the writer serves the merged trail to readers.
///
/// # Errors
/// The store or the key cannot be used.
pub fn open(settings: &AuditSettings) -> Result<AuditWriter> {
    let key = writer_key(&settings.key)?;
    let config = WriterConfig {
        durability: match settings.buffered {
            Some(flush_every) => Durability::Buffered { flush_every },
            None => Durability::Durable,
        },
        ..WriterConfig::default()
    };
    // A PostgreSQL store is read with a client that blocks on a runtime of
    // its own, which it may not do on a thread driving an async runtime
    // (servers open their trail in one): open and start on a plain thread.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let store =
                    crate::audit_store::open_writer(&settings.store, &key.public().to_string())?;
                let writer = AuditWriter::start(store.log, key, config)?;
                Ok(match store.shared {
                    Some(trail) => writer.serving(trail),
                    None => writer,
                })
            })
            .join()
            .unwrap_or_else(|_| {
                Err(anyhow::anyhow!(
                    "opening the audit store: the thread panicked"
                ))
            })
    })
}

/// Records the decisions of one server in its audit log.
#[derive(Debug, Clone)]
pub struct AuditRecorder {
    writer: Arc<AuditWriter>,
    verifier: String,
    index: SharedIndex,
}

impl AuditRecorder {
    /// Records into `writer`, naming this verifier `verifier`; `index` is the
    /// revocation state decisions are made under.
    pub fn new(writer: Arc<AuditWriter>, verifier: String, index: SharedIndex) -> AuditRecorder {
        AuditRecorder {
            writer,
            verifier,
            index,
        }
    }

    fn context(&self, api: &'static str, request_id: &str, token: String) -> DecisionContext {
        DecisionContext {
            api,
            request_id: request_id.to_owned(),
            verifier: self.verifier.clone(),
            revocation_seq: Some(self.index.last_seq()),
            token_fingerprint: token,
        }
    }

    /// Records `decision`, made in this process by a verifier called
    /// directly (through `api`, not over HTTP), for `token` (its text, only
    /// fingerprinted); returns the record's sequence number once durable.
    /// Blocks: call it from a thread that may wait, never an async task.
    ///
    /// # Errors
    /// The writer is failed, full or stopped, or the record's batch could
    /// not be written.
    pub fn record_blocking(
        &self,
        decision: &Decision,
        api: &'static str,
        request_id: &str,
        token: &str,
    ) -> mandate_audit::Result<u64> {
        let context = self.context(api, request_id, mandate_core::fingerprint(token));
        self.writer
            .append_blocking(Event::Decision(DecisionRecord::new(decision, &context)))
    }

    fn append(&self, event: Event) -> Recording {
        // Queued now: the future holds only the wait, not the record.
        let pending = self.writer.submit(event);
        Box::pin(async move {
            pending
                .await
                .map(drop)
                .map_err(|e| RecordError(e.to_string()))
        })
    }
}

impl DecisionRecorder for AuditRecorder {
    fn record_decision(&self, decision: &Decision, answer: &Answer<'_>) -> Recording {
        let context = self.context(
            answer.api,
            answer.request_id,
            answer.token_fingerprint.to_string(),
        );
        self.append(Event::Decision(DecisionRecord::new(decision, &context)))
    }

    fn record_refusal(&self, refusal: &Refusal<'_>, answer: &Answer<'_>) -> Recording {
        let (service, operation, resource) = match refusal.request {
            Some((s, o, r)) => (Some(s.to_owned()), Some(o.to_owned()), Some(r.to_owned())),
            None => (None, None, None),
        };
        self.append(Event::Refusal(RefusalRecord {
            code: refusal.code.to_owned(),
            message: refusal.message.to_owned(),
            token: answer.token_fingerprint.to_string(),
            service,
            operation,
            resource,
            api: answer.api.to_owned(),
            request_id: answer.request_id.to_owned(),
            verifier: self.verifier.clone(),
        }))
    }
}

/// A registry store that records every durable write in the audit log.
pub struct AuditedStore<S> {
    inner: S,
    writer: Arc<AuditWriter>,
}

impl<S> AuditedStore<S> {
    /// Records the writes to `inner` with `writer`.
    pub fn new(inner: S, writer: Arc<AuditWriter>) -> AuditedStore<S> {
        AuditedStore { inner, writer }
    }
}

/// The registry event of a durable entry.
pub fn registry_event(entry: &RevocationEntry) -> RegistryEvent {
    RegistryEvent {
        action: if entry.lifted {
            RegistryAction::Lift
        } else {
            RegistryAction::Revoke
        },
        revocation: entry.seq,
        kind: entry.kind.as_str().to_owned(),
        value: entry.value.clone(),
        reason: entry.reason.clone(),
        by: entry.revoked_by.clone(),
    }
}

impl<S: RevocationStore> RevocationStore for AuditedStore<S> {
    fn append(&self, new: NewRevocation) -> mandate_registry::Result<RevocationEntry> {
        let entry = self.inner.append(new)?;
        // Store calls run on blocking threads (`RegistryState` spawns them),
        // where waiting for the writer is allowed.
        if let Err(error) = self
            .writer
            .append_blocking(Event::Registry(registry_event(&entry)))
        {
            tracing::error!(
                target: "mandate::audit",
                seq = entry.seq,
                %error,
                "revocation recorded in the registry but not in the audit log"
            );
        }
        Ok(entry)
    }

    fn list_after(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> mandate_registry::Result<Vec<RevocationEntry>> {
        self.inner.list_after(after_seq, limit)
    }

    fn current_seq(&self) -> mandate_registry::Result<u64> {
        self.inner.current_seq()
    }

    fn epoch(&self) -> mandate_registry::Result<String> {
        self.inner.epoch()
    }

    fn flush(&self) -> mandate_registry::Result<()> {
        self.inner.flush()
    }

    fn check_writable(&self) -> mandate_registry::Result<()> {
        self.inner.check_writable()
    }
}
