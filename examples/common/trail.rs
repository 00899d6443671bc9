//! The audit trail a scenario leaves, kept the way a server keeps it: each
//! service records every decision it makes through the real audit writer
//! (`mandate_server::audit`, as `mandate serve --audit-store` does) into a
//! log in a temporary folder, and the scenario prints its trail read back
//! from that store, as `mandate audit --store` shows it, never from memory.
//!
//! The folder outlives the scenario's run (it lives as long as the
//! [`StoredTrail`]), so that `mandate audit --store` can read the same
//! records afterwards and the printed trail can be checked against it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use mandate_audit::{AuditLog, AuditWriter, DecisionRecord, Event, Filter, LogTrail, Record};
use mandate_registry::SharedIndex;
use mandate_server::audit::AuditRecorder;
use mandate_server::config::AuditSettings;
use mandate_verifier::Decision;

/// How long closing the log may take before the scenario gives up.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// An audit log in a temporary folder, open for writing.
pub struct AuditTrail {
    folder: tempfile::TempDir,
    writer: Arc<AuditWriter>,
}

/// A scenario's trail once its log is closed: the records read back from
/// the store and the lines printed from them.
pub struct StoredTrail {
    /// Keeps the folder until the trail is dropped.
    _folder: tempfile::TempDir,
    /// The audit store, as `mandate audit --store` takes it.
    pub store: PathBuf,
    /// Every record, read back from the store, oldest first.
    pub records: Vec<Record>,
    /// The trail exactly as the scenario printed it, one record a line.
    pub printed: Vec<String>,
}

impl AuditTrail {
    /// A fresh, durable audit log (every record on disk before the decision
    /// it records is returned) with its own writer key.
    ///
    /// # Errors
    /// The folder, the store or the writer key cannot be made.
    pub fn open() -> Result<AuditTrail> {
        let folder = tempfile::tempdir().context("creating the audit folder")?;
        let writer = mandate_server::audit::open(&AuditSettings {
            store: folder.path().join("audit").into(),
            key: folder.path().join("audit.key"),
            buffered: None,
            verifier_id: "scenario".into(),
        })
        .context("opening the scenario's audit log")?;
        Ok(AuditTrail {
            folder,
            writer: Arc::new(writer),
        })
    }

    /// The writer, for a registry store that records its revocations.
    pub fn writer(&self) -> Arc<AuditWriter> {
        Arc::clone(&self.writer)
    }

    /// The recorder of the service `verifier`, deciding under the
    /// revocation state `revocations`.
    pub fn recorder(&self, verifier: &str, revocations: SharedIndex) -> AuditRecorder {
        AuditRecorder::new(Arc::clone(&self.writer), verifier.into(), revocations)
    }

    /// Closes the log (signing its head), then reads every record back from
    /// the store folder as `mandate audit --store` does, prints them under
    /// `heading`, and checks the log as `mandate audit verify` does.
    ///
    /// Every service and registry recording into the log must have been
    /// dropped first: the store is opened afresh, as another reader would.
    ///
    /// # Errors
    /// The log cannot be closed, read or verified, or something still holds it.
    pub fn read_back(self, heading: &str) -> Result<StoredTrail> {
        let AuditTrail { folder, writer } = self;
        writer
            .close_blocking()
            .context("closing the scenario's audit log")?;
        let log = writer.log();
        drop(writer);
        release(log)?;

        let store = folder.path().join("audit");
        let log =
            mandate_audit::store::open_existing(&store).context("reading the audit store back")?;
        let records = mandate_audit::query_all(&LogTrail(log.clone()), &Filter::default(), None)?;
        println!("{heading} (mandate audit --store {}):", store.display());
        let printed: Vec<String> = records.iter().map(|r| format!("   {r}")).collect();
        for line in &printed {
            println!("{line}");
        }
        match mandate_audit::verify(&*log, &[])? {
            Ok(verified) => println!(
                "   the log verifies (mandate audit verify): {} record(s), {} signed head(s)",
                verified.records, verified.heads
            ),
            Err(tampered) => bail!("the scenario's audit log does not verify: {tampered}"),
        }
        Ok(StoredTrail {
            _folder: folder,
            store,
            records,
            printed,
        })
    }
}

impl StoredTrail {
    /// The decision records, oldest first.
    pub fn decisions(&self) -> Vec<&DecisionRecord> {
        self.records
            .iter()
            .filter_map(|record| match &record.event {
                Event::Decision(decision) => Some(decision),
                _ => None,
            })
            .collect()
    }

    /// Fails the scenario unless the trail holds exactly one decision record
    /// for each of `decisions`, in that order, naming the same principal,
    /// agent, task, call and outcome.
    pub fn expect_recorded(&self, decisions: &[&Decision]) -> Result<()> {
        let records = self.decisions();
        ensure!(
            records.len() == decisions.len(),
            "the trail holds {} decision(s), the scenario made {}",
            records.len(),
            decisions.len()
        );
        for (record, decision) in records.iter().zip(decisions) {
            ensure!(
                record.principal == decision.principal
                    && record.agent == decision.agent
                    && record.task == decision.task
                    && record.service == decision.service
                    && record.operation == decision.operation
                    && record.resource == decision.resource
                    && record.token_id == decision.token_id
                    && (record.decision == mandate_audit::Outcome::Allow) == decision.allowed,
                "the record `{record}` is not the decision {decision:?}"
            );
        }
        Ok(())
    }
}

/// Waits (bounded) until `log` is the last handle on the store: the writer's
/// thread lets go of it just after acknowledging the close, and the store
/// can be opened again only once every handle is gone.
fn release(log: Arc<dyn AuditLog>) -> Result<()> {
    let deadline = Instant::now() + CLOSE_TIMEOUT;
    while Arc::strong_count(&log) > 1 {
        if Instant::now() > deadline {
            bail!("something still holds the audit log: drop every service before reading it back");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}
