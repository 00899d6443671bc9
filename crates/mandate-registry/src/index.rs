//! The in-memory revocation state that a verifier consults on every call.
//!
//! [`RevocationIndex`] folds the log, in sequence order, into hash maps keyed by the revoked
//! value, so [`RevocationIndex::check`] costs a handful of hash lookups however long the log
//! is. [`SharedIndex`] wraps it for concurrent use and adds freshness: a verifier must not
//! trust revocation state it has not heard confirmed recently, so a check against an index
//! that was never synced, or whose last heartbeat is older than the staleness bound, is
//! denied (fail closed).
//!
//! Every change that can turn an allowed subject into a denied one (an entry applied, a
//! reset, a lost confirmation) moves the index's change counter, which calls in flight
//! watch ([`SharedIndex::subscribe_changes`], `changes.rs`).
//!
//! This module does no I/O and never reads the clock itself: callers pass `Instant`s, so
//! freshness is testable without sleeping. It must never skip an entry: applying out of
//! order is an error, not a guess.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use std::borrow::Cow;

use crate::change_counter::Changes;
use crate::entry::{canonical_agent, RevocationEntry, MAX_TOKEN_ID_BYTES};
use crate::error::{Error, Result};
use crate::kind::RevocationKind;
use crate::value_table::{Found, ReasonTable, ValueTable};

/// One agent in a token's delegation chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentRef<'a> {
    /// The agent's name.
    pub name: &'a str,
    /// The agent's public key in its string form (for example `ed25519/<hex>`).
    pub public_key: &'a str,
}

/// What a verifier knows about a (verified) token, in the terms revocation entries use.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The revocation id of every block in the token, authority block first.
    pub revocation_ids: &'a [Vec<u8>],
    /// The principal the token acts for.
    pub principal: &'a str,
    /// The task the token was minted for.
    pub task: &'a str,
    /// Every agent in the delegation chain.
    pub agents: &'a [AgentRef<'a>],
}

/// Revocation state folded from the log.
///
/// Each kind keeps a compact table of the values in force (`value_table.rs`): the
/// value, the sequence number and the reason of the entry that revoked it, which is
/// what a denial names. Who wrote an entry and when are not kept; they are in the log.
#[derive(Default, Clone)]
pub struct RevocationIndex {
    last_seq: u64,
    /// Decoded block revocation ids.
    token_ids: ValueTable,
    principals: ValueTable,
    /// Agent names and public-key strings share one table: an entry matches either.
    agents: ValueTable,
    tasks: ValueTable,
    reasons: ReasonTable,
}

impl std::fmt::Debug for RevocationIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Counts, not contents: an index may hold millions of entries.
        f.debug_struct("RevocationIndex")
            .field("last_seq", &self.last_seq)
            .field("token_ids", &self.token_ids.len())
            .field("principals", &self.principals.len())
            .field("agents", &self.agents.len())
            .field("tasks", &self.tasks.len())
            .finish()
    }
}

/// The revocation in force that matches a subject: what a denial names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked<'a> {
    /// What matched.
    pub kind: RevocationKind,
    /// The revoked value, as its entry spelled it.
    pub value: Cow<'a, str>,
    /// The entry's sequence number.
    pub seq: u64,
    /// The operator's reason.
    pub reason: &'a str,
}

impl RevocationIndex {
    /// An empty index (nothing applied, `last_seq() == 0`).
    pub fn new() -> Self {
        Self::default()
    }

    /// The sequence number of the last applied entry (0 when none).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// How many revocations are in force (lifted ones excluded).
    pub fn active_len(&self) -> usize {
        self.token_ids.len() + self.principals.len() + self.agents.len() + self.tasks.len()
    }

    /// Makes room for `additional` more entries of `kind` whose values are about
    /// `value_len` bytes long, so that loading a log of known size does not grow the
    /// tables step by step. A hint: applying more than reserved still works.
    pub fn reserve(&mut self, kind: RevocationKind, additional: usize, value_len: usize) {
        let (table, value_len) = match kind {
            RevocationKind::TokenId => (&mut self.token_ids, value_len / 2),
            RevocationKind::Principal => (&mut self.principals, value_len),
            RevocationKind::Agent => (&mut self.agents, value_len),
            RevocationKind::Task => (&mut self.tasks, value_len),
        };
        table.reserve(additional, value_len);
    }

    /// Applies the next log entry. Entries must arrive in order with no gap.
    ///
    /// A lift removes the active revocation of the same kind and value, if any. When a
    /// value is revoked twice, the first (earliest) entry is kept as the reported reason.
    ///
    /// # Errors
    /// [`Error::SeqGap`] unless `entry.seq == last_seq() + 1`; the validation errors of
    /// [`RevocationEntry::validate`]; [`Error::IndexFull`]. On error the index is
    /// unchanged.
    pub fn apply(&mut self, entry: &RevocationEntry) -> Result<()> {
        let expected = self.last_seq.saturating_add(1);
        if entry.seq != expected {
            return Err(Error::SeqGap {
                expected,
                got: entry.seq,
            });
        }
        entry.validate()?;
        match entry.kind {
            RevocationKind::TokenId => {
                // Decoded on the stack: `validate` bounds the length.
                let mut buffer = [0u8; MAX_TOKEN_ID_BYTES];
                let invalid = Error::InvalidValue {
                    kind: RevocationKind::TokenId,
                    problem: "token id must be lowercase hex",
                };
                let Some(bytes) = buffer.get_mut(..entry.value.len() / 2) else {
                    return Err(invalid);
                };
                if hex::decode_to_slice(&entry.value, &mut *bytes).is_err() {
                    return Err(invalid);
                }
                let reason = self.reasons.intern(&entry.reason)?;
                self.token_ids
                    .insert_first(bytes, None, entry.seq, reason)?;
            }
            RevocationKind::Task => {
                let reason = self.reasons.intern(&entry.reason)?;
                self.tasks
                    .insert_first(entry.value.as_bytes(), None, entry.seq, reason)?;
            }
            RevocationKind::Principal | RevocationKind::Agent => {
                let (table, key) = if entry.kind == RevocationKind::Principal {
                    (&mut self.principals, Cow::Borrowed(entry.value.as_str()))
                } else {
                    // Entries written before agent keys were canonicalised on the way in
                    // may carry uppercase hex; tokens print keys in lowercase.
                    (&mut self.agents, canonical_agent(&entry.value))
                };
                if entry.lifted {
                    table.remove(key.as_bytes());
                } else {
                    let reason = self.reasons.intern(&entry.reason)?;
                    let spelling = matches!(key, Cow::Owned(_)).then_some(entry.value.as_str());
                    table.insert_first(key.as_bytes(), spelling, entry.seq, reason)?;
                }
            }
        }
        self.last_seq = entry.seq;
        Ok(())
    }

    /// The revocation that denies `subject`, if any.
    ///
    /// Checked in this order: any block's revocation id, the task, the principal, then
    /// each agent by name and by key. A child token carries all of its parent's block ids,
    /// so revoking a parent's id revokes every token delegated from it, while revoking the
    /// child's own last block id leaves the parent valid.
    pub fn check(&self, subject: &Subject<'_>) -> Option<Revoked<'_>> {
        if !self.token_ids.is_empty() {
            for id in subject.revocation_ids {
                if let Some(found) = self.token_ids.get(id) {
                    return Some(self.revoked(RevocationKind::TokenId, found));
                }
            }
        }
        if let Some(found) = self.tasks.get(subject.task.as_bytes()) {
            return Some(self.revoked(RevocationKind::Task, found));
        }
        if let Some(found) = self.principals.get(subject.principal.as_bytes()) {
            return Some(self.revoked(RevocationKind::Principal, found));
        }
        if !self.agents.is_empty() {
            for agent in subject.agents {
                if let Some(found) = self
                    .agents
                    .get(agent.name.as_bytes())
                    .or_else(|| self.agents.get(agent.public_key.as_bytes()))
                {
                    return Some(self.revoked(RevocationKind::Agent, found));
                }
            }
        }
        None
    }

    fn revoked<'a>(&'a self, kind: RevocationKind, found: Found<'a>) -> Revoked<'a> {
        let value = match (found.spelling, kind) {
            (Some(spelling), _) => Cow::Borrowed(spelling),
            // Token ids are kept decoded; entries spell them in lowercase hex.
            (None, RevocationKind::TokenId) => Cow::Owned(hex::encode(found.key)),
            // Text values were stored from a `&str`, whole.
            (None, _) => String::from_utf8_lossy(found.key),
        };
        Revoked {
            kind,
            value,
            seq: found.seq,
            reason: self.reasons.get(found.reason),
        }
    }
}

/// Why [`SharedIndex::check`] refused a subject.
///
/// This is a decision, not a failure of this crate, so it is separate from [`Error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// A revocation entry in force matches the subject.
    #[error("revoked: {kind} {value:?} (seq {seq}): {reason}")]
    Revoked {
        /// What matched.
        kind: RevocationKind,
        /// The revoked value that matched.
        value: String,
        /// The entry's sequence number.
        seq: u64,
        /// The operator's reason.
        reason: String,
    },
    /// The index has not been confirmed current within the staleness bound.
    #[error("revocation state stale ({})", describe_stale(*.since, *.bound))]
    Stale {
        /// Time since the last heartbeat, or `None` when the index was never synced.
        since: Option<Duration>,
        /// The configured staleness bound.
        bound: Duration,
    },
}

/// Why a stale index is stale, without the "revocation state stale" prefix.
pub fn describe_stale(since: Option<Duration>, bound: Duration) -> String {
    match since {
        Some(since) => format!("last confirmed {since:?} ago, bound {bound:?}"),
        None => "never synced".to_owned(),
    }
}

impl From<&RevocationEntry> for Denied {
    fn from(entry: &RevocationEntry) -> Self {
        Denied::Revoked {
            kind: entry.kind,
            value: entry.value.clone(),
            seq: entry.seq,
            reason: entry.reason.clone(),
        }
    }
}

impl From<Revoked<'_>> for Denied {
    fn from(revoked: Revoked<'_>) -> Self {
        Denied::Revoked {
            kind: revoked.kind,
            value: revoked.value.into_owned(),
            seq: revoked.seq,
            reason: revoked.reason.to_owned(),
        }
    }
}

#[derive(Debug, Default)]
struct SharedState {
    index: RevocationIndex,
    last_heartbeat: Option<Instant>,
    /// The epoch of the log the index was built from, once known.
    epoch: Option<String>,
}

/// A [`RevocationIndex`] shared between the subscriber that feeds it and the verifiers
/// that read it, with a freshness deadline. Cloning is cheap and shares the state.
#[derive(Debug, Clone)]
pub struct SharedIndex {
    state: Arc<RwLock<SharedState>>,
    staleness_bound: Duration,
    /// Moves on every change a check could see; see `changes.rs`.
    pub(crate) changes: Arc<Changes>,
}

impl SharedIndex {
    /// An empty, never-synced index: every check is [`Denied::Stale`] until the first
    /// [`SharedIndex::mark_fresh`].
    pub fn new(staleness_bound: Duration) -> Self {
        Self {
            state: Arc::default(),
            staleness_bound,
            changes: Arc::default(),
        }
    }

    // A panic while holding the lock cannot leave the index half-updated, because
    // `RevocationIndex::apply` validates before it mutates; so poisoning is recovered.
    fn read(&self) -> RwLockReadGuard<'_, SharedState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, SharedState> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The configured staleness bound.
    pub fn staleness_bound(&self) -> Duration {
        self.staleness_bound
    }

    /// The sequence number of the last applied entry.
    pub fn last_seq(&self) -> u64 {
        self.read().index.last_seq()
    }

    /// When the index was last confirmed current, if ever.
    pub fn last_heartbeat(&self) -> Option<Instant> {
        self.read().last_heartbeat
    }

    /// Applies the next entry; see [`RevocationIndex::apply`].
    ///
    /// # Errors
    /// As [`RevocationIndex::apply`].
    pub fn apply(&self, entry: &RevocationEntry) -> Result<()> {
        self.write().index.apply(entry)?;
        self.changes.bump();
        Ok(())
    }

    /// Applies consecutive entries under one lock, in order; for loading a log page by
    /// page. Stops at the first entry that cannot be applied: those before it stay
    /// applied, it and those after it are not.
    ///
    /// # Errors
    /// As [`RevocationIndex::apply`], for the first entry refused.
    pub fn apply_all(&self, entries: &[RevocationEntry]) -> Result<()> {
        let mut state = self.write();
        let applied = entries
            .iter()
            .try_for_each(|entry| state.index.apply(entry));
        drop(state);
        self.changes.bump();
        applied
    }

    /// The epoch of the log this index holds entries of, if it has been recorded
    /// (see [`SharedIndex::adopt_epoch`]).
    pub fn epoch(&self) -> Option<String> {
        self.read().epoch.clone()
    }

    /// Binds this index to the log `epoch` before entries of that log are applied.
    ///
    /// Succeeds when the index already holds `epoch`, or holds no epoch and no entries
    /// (it then records `epoch`). Anything else means the entries held come from
    /// another log, or from a log that cannot be identified, and must not be extended
    /// with entries of this one: the caller should [`SharedIndex::reset`] and resync
    /// from seq 0.
    ///
    /// # Errors
    /// [`Error::LogChanged`]; the index is then unchanged.
    pub fn adopt_epoch(&self, epoch: &str) -> Result<()> {
        let mut state = self.write();
        match &state.epoch {
            Some(held) if held == epoch => Ok(()),
            None if state.index.last_seq() == 0 => {
                state.epoch = Some(epoch.to_owned());
                Ok(())
            }
            held => Err(Error::LogChanged {
                held: held.clone(),
                registry: epoch.to_owned(),
            }),
        }
    }

    /// Empties the index and forgets its epoch and its freshness: it is never-synced
    /// again, so every check is [`Denied::Stale`] until it has been rebuilt from seq 0
    /// and confirmed.
    pub fn reset(&self) {
        let mut state = self.write();
        state.index = RevocationIndex::new();
        state.last_heartbeat = None;
        state.epoch = None;
        drop(state);
        self.changes.bump();
    }

    /// Forgets the last confirmation, keeping the entries: every check is
    /// [`Denied::Stale`] until the next [`SharedIndex::mark_fresh`]. For an owner that
    /// can no longer vouch for the index (an entry it could not apply).
    pub fn mark_stale(&self) {
        self.write().last_heartbeat = None;
        self.changes.bump();
    }

    /// Records that the registry confirmed this index current at `at`. Never moves the
    /// heartbeat backwards.
    pub fn mark_fresh(&self, at: Instant) {
        let mut state = self.write();
        if state.last_heartbeat.is_none_or(|last| at > last) {
            state.last_heartbeat = Some(at);
        }
    }

    /// Whether the index counts as current at `now`.
    ///
    /// # Errors
    /// [`Denied::Stale`] when it does not.
    pub fn freshness(&self, now: Instant) -> Result<(), Denied> {
        stale_check(self.read().last_heartbeat, self.staleness_bound, now)
    }

    /// Decides whether `subject` may proceed at `now`: denied if revoked, and denied if
    /// the index is stale (fail closed). A revocation is reported in preference to
    /// staleness because it is the more specific reason.
    ///
    /// # Errors
    /// [`Denied::Revoked`] or [`Denied::Stale`].
    pub fn check(&self, subject: &Subject<'_>, now: Instant) -> Result<(), Denied> {
        let state = self.read();
        if let Some(entry) = state.index.check(subject) {
            return Err(Denied::from(entry));
        }
        stale_check(state.last_heartbeat, self.staleness_bound, now)
    }

    /// Runs `f` with read access to the index (for inspection, counts, tests).
    pub fn with_index<R>(&self, f: impl FnOnce(&RevocationIndex) -> R) -> R {
        f(&self.read().index)
    }
}

fn stale_check(last: Option<Instant>, bound: Duration, now: Instant) -> Result<(), Denied> {
    match last {
        None => Err(Denied::Stale { since: None, bound }),
        Some(last) => {
            let since = now.saturating_duration_since(last);
            if since > bound {
                Err(Denied::Stale {
                    since: Some(since),
                    bound,
                })
            } else {
                Ok(())
            }
        }
    }
}
