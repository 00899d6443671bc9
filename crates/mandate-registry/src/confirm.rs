//! A write an operator can trust: retried while the registry is busy, then
//! confirmed by the verifiers that applied it.
//!
//! `mandate revoke` reports "applied by K of N connected verifiers"; this is
//! that logic, for any client. A 503 (the registry could not judge the write
//! mandate now) is retried with a short backoff; any other refusal is final.
//! After the write, the registry's status is polled until every connected
//! verifier applied the entry or the wait ends. The revocation is recorded
//! once the write returns: a status that cannot be read is reported, never
//! turned into a failed write.

use std::time::{Duration, Instant};

use crate::client::{RegistryAuth, RegistryClient};
use crate::entry::RevocationEntry;
use crate::error::{Error, Result};
use crate::kind::RevocationKind;

/// Attempts of a write refused with 503 before giving up.
const ATTEMPTS: u32 = 3;
/// Backoff unit between attempts (200 ms, then 400 ms).
const BACKOFF: Duration = Duration::from_millis(200);
/// Interval between status polls while waiting for verifiers.
const POLL: Duration = Duration::from_millis(20);

/// Revoke, or lift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// Record a revocation.
    Revoke,
    /// Lift earlier revocations of the same kind and value.
    Lift,
}

/// How far a recorded entry has spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Connected verifiers that applied it.
    pub by: usize,
    /// Connected verifiers.
    pub of: usize,
}

/// What [`write_confirmed`] did.
#[derive(Debug)]
pub struct Confirmed {
    /// The recorded entry.
    pub entry: RevocationEntry,
    /// How many connected verifiers applied it by the end of the wait, or why
    /// the registry's status could not be read (the entry is recorded either way).
    pub applied: Result<Applied>,
}

/// Writes one entry with `auth` (a mandate granting `registry:revoke`),
/// retrying while the registry answers 503, then waits up to `wait` for the
/// connected verifiers to apply it, reading the status with the client's own
/// read credentials.
///
/// # Errors
/// The write's error: refused (400/401/403), unreachable, or still 503 after
/// the retries.
pub async fn write_confirmed(
    client: &RegistryClient,
    auth: &RegistryAuth,
    write: WriteKind,
    kind: RevocationKind,
    value: &str,
    reason: &str,
    wait: Duration,
) -> Result<Confirmed> {
    let mut attempt = 0;
    let entry = loop {
        attempt += 1;
        let written = match write {
            WriteKind::Revoke => client.revoke(auth, kind, value, reason).await,
            WriteKind::Lift => client.lift(auth, kind, value, reason).await,
        };
        match written {
            Err(Error::Api { status: 503, .. }) if attempt < ATTEMPTS => {
                tokio::time::sleep(BACKOFF * attempt).await;
            }
            other => break other?,
        }
    };
    let deadline = Instant::now() + wait;
    let applied = loop {
        match client.status(Some(entry.seq)).await {
            Ok(status) if status.applied_by >= status.subscribers || Instant::now() >= deadline => {
                break Ok(Applied {
                    by: status.applied_by,
                    of: status.subscribers,
                });
            }
            Ok(_) => tokio::time::sleep(POLL).await,
            Err(error) => break Err(error),
        }
    };
    Ok(Confirmed { entry, applied })
}
