//! [`Negotiator`]: asking for more rights during a task, deciding, waiting.
//!
//! **Ask.** The agent presents the task's current mandate and a proof of
//! possession by the task's agent key over (`mandate-issuer`, `request`,
//! `/v1/tasks/{id}`), exactly as a refresh does. Rights the task holds
//! already are dropped; the issuance policy decides the rest
//! ([`crate::policy::IssuancePolicy::decide_request`]):
//! - grant: the task's record gains the granted rights (compare-and-swap)
//!   and a mandate of the task's rights is minted, never past the deadline;
//! - deny: a refusal with the policy's reason, nothing stored or minted;
//! - ask: a pending [`RightRequest`] is stored, expiring after the request
//!   lifetime (never after the task's deadline).
//!
//! **Decide.** The task's principal, or a member of a configured approver
//! group, authenticated by an identity token verified exactly as a subject
//! token at exchange, approves or denies. The request's swap from pending
//! is the decision: of two concurrent approvals, or an approval and a
//! denial, one swap lands and the other caller is told the request is
//! decided. An approval then adds the rights to the task's record; if that
//! step is lost (a crash), the agent's next poll adds them before minting.
//!
//! **Poll.** The agent reads its request with the same mandate and a proof
//! for `poll`, optionally waiting (at most [`MAX_WAIT`]) on the
//! [`DecisionSignal`], never in a sleep loop. A granted request yields a
//! fresh mandate of the task's rights on every poll by the task's agent
//! with a fresh proof, so an answer lost in transit costs nothing: the grant
//! is re-fetchable, and a refresh returns the same rights.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mandate_core::Right;

use super::admission::{
    Admission, Admitted, Crowded, MAX_PENDING_PER_PRINCIPAL, MAX_PENDING_PER_TASK,
};
use super::{DecisionSignal, RequestState, RequestStore, RightRequest, StoreError};
use crate::events::IssuerEvent;
use crate::idp::{Identity, TokenTimes};
use crate::issuer::{Issued, Issuer, TaskError, TaskOperation};
use crate::oauth::ErrorCode;
use crate::policy::{Outcome, RequestInput};
use crate::tasks::{Task, TaskState};

/// How long a request waits for a person by default.
pub const DEFAULT_REQUEST_TTL: Duration = Duration::from_secs(15 * 60);
/// The longest one poll waits.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// The longest reason an agent may give, in bytes.
pub const MAX_REASON: usize = 1024;
/// The most rights one request names.
pub const MAX_RIGHTS: usize = 64;
/// The most requests one listing returns.
pub const MAX_LISTED: usize = 200;
/// How many times a change racing another is retried.
const ATTEMPTS: usize = 8;

/// The negotiator's tunables.
#[derive(Debug, Clone)]
pub struct NegotiatorOptions {
    /// How long a pending request may wait for a person (default 15 min).
    pub request_ttl: Duration,
    /// Members of these groups (the identity provider's groups claim) may
    /// decide any task's requests; a task's principal may always decide its own.
    pub approver_groups: Vec<String>,
}

impl Default for NegotiatorOptions {
    fn default() -> NegotiatorOptions {
        NegotiatorOptions {
            request_ttl: DEFAULT_REQUEST_TTL,
            approver_groups: Vec::new(),
        }
    }
}

/// Why a request could not be made, read or decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The task side: the agent's mandate or proof, the task's state.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// A malformed or pointless request (400).
    #[error("{0}")]
    Invalid(String),
    /// The issuance policy refused (403); nothing was stored or minted.
    #[error("{reason}")]
    Refused {
        /// The request's id, as the audit trail names it.
        request: String,
        /// The policy's reason.
        reason: String,
    },
    /// The approver's identity token is missing or invalid (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// The approver may not decide this request (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such request (404).
    #[error("no such request")]
    NotFound,
    /// Decided already (409).
    #[error("the request is {} already", .0.as_str())]
    Decided(RequestState),
    /// Nobody decided before its expiry (409).
    #[error("the request expired before anyone decided it")]
    Expired,
    /// The task has too many requests waiting (429).
    #[error("this task has {} requests waiting already", MAX_PENDING_PER_TASK)]
    TooMany,
    /// The principal has too many requests waiting, over all their tasks (429).
    #[error(
        "{} requests for this principal wait for a person already; decide some first",
        MAX_PENDING_PER_PRINCIPAL
    )]
    TooManyForPrincipal,
    /// A store or the identity provider is unavailable; logged (503).
    #[error("{0}")]
    Unavailable(String),
    /// Something failed inside the issuer; logged (500).
    #[error("internal error")]
    Internal,
}

pub(super) fn unavailable(error: StoreError) -> RequestError {
    tracing::error!(%error, "request store failed");
    RequestError::Unavailable("the request store is unavailable".into())
}

fn task_store_unavailable(error: crate::tasks::StoreError) -> RequestError {
    tracing::error!(%error, "task store failed");
    RequestError::Unavailable("the task store is unavailable".into())
}

/// A person deciding requests for more rights: the identity of their
/// own sign-in, and when they signed in.
#[derive(Debug, Clone)]
pub struct Approver {
    /// Who they are.
    pub identity: Identity,
    /// The identity token's `iat`.
    pub signed_in: Option<SystemTime>,
}

impl Approver {
    /// Whether they signed in after `at`: in a later whole second (an
    /// identity token's `iat` is in whole seconds, so a sign-in in the same
    /// second as `at` may have come before it). A token that states no
    /// `iat` never counts as fresh.
    pub fn signed_in_after(&self, at: SystemTime) -> bool {
        let secs = |t: SystemTime| t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs());
        match (self.signed_in.map(secs), secs(at)) {
            (Some(Ok(signed_in)), Ok(at)) => signed_in > at,
            _ => false,
        }
    }
}

/// What an ask came to.
#[derive(Debug)]
pub enum Asked {
    /// The policy granted: a mandate with the added rights.
    Granted {
        /// The request as decided (not stored: nobody waits on it), its
        /// rights those granted.
        request: RightRequest,
        /// The mandate.
        issued: Issued,
    },
    /// A person must decide; poll the request.
    Pending(RightRequest),
}

/// A request as its agent reads it, with a mandate once granted.
#[derive(Debug)]
pub struct Polled {
    /// The request, in its state now.
    pub request: RightRequest,
    /// A fresh mandate of the task's rights, when granted.
    pub issued: Option<Issued>,
}

/// Runs a store-bound step off the async runtime.
pub(super) async fn blocking<T: Send + 'static>(
    step: impl FnOnce() -> Result<T, RequestError> + Send + 'static,
) -> Result<T, RequestError> {
    tokio::task::spawn_blocking(step)
        .await
        .map_err(|_| RequestError::Internal)?
}

/// Requests for more rights: asked by agents, decided by the policy or by
/// people, waited on by agents.
pub struct Negotiator {
    pub(super) issuer: Arc<Issuer>,
    pub(super) store: Arc<dyn RequestStore>,
    pub(super) signal: DecisionSignal,
    pub(super) options: NegotiatorOptions,
    /// Counts waiting requests and admits new ones, one at a time.
    admission: Admission,
}

impl std::fmt::Debug for Negotiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Negotiator")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Negotiator {
    /// Requests of `issuer`'s tasks, stored in `store`.
    pub fn new(
        issuer: Arc<Issuer>,
        store: Arc<dyn RequestStore>,
        options: NegotiatorOptions,
    ) -> Negotiator {
        Negotiator {
            issuer,
            store,
            signal: DecisionSignal::new(),
            options,
            admission: Admission::default(),
        }
    }

    /// The options.
    pub fn options(&self) -> &NegotiatorOptions {
        &self.options
    }

    /// The request store.
    pub fn store(&self) -> &Arc<dyn RequestStore> {
        &self.store
    }

    pub(super) fn decided(
        &self,
        request: &RightRequest,
        outcome: &'static str,
        by: &str,
        token_id: Option<String>,
    ) {
        self.issuer.events().record(&IssuerEvent::RequestDecided {
            request: request.id.clone(),
            task: request.task.clone(),
            principal: request.principal.clone(),
            agent: request.agent.clone(),
            outcome,
            by: by.to_owned(),
            token_id,
        });
    }

    pub(super) fn load(&self, id: &str) -> Result<RightRequest, RequestError> {
        self.store
            .get(id)
            .map_err(unavailable)?
            .ok_or(RequestError::NotFound)
    }

    /// Asks for `rights` on `task_id` (see the module documentation).
    /// Blocking: call it off the async runtime, or use [`Negotiator::ask`].
    ///
    /// # Errors
    /// [`RequestError`]; nothing is minted on a refusal.
    pub fn ask_blocking(
        &self,
        task_id: &str,
        token: &str,
        proof: &str,
        rights: &[Right],
        reason: &str,
        now: SystemTime,
    ) -> Result<Asked, RequestError> {
        if rights.is_empty() {
            return Err(RequestError::Invalid("ask for at least one right".into()));
        }
        if rights.len() > MAX_RIGHTS {
            return Err(RequestError::Invalid(format!(
                "ask for at most {MAX_RIGHTS} rights at once"
            )));
        }
        if reason.len() > MAX_REASON {
            return Err(RequestError::Invalid(format!(
                "the reason is longer than {MAX_REASON} bytes"
            )));
        }
        let task = self
            .issuer
            .authenticate(task_id, token, proof, TaskOperation::Request, now)?;
        open_at(&task, now)?;
        let mut wanted: Vec<Right> = rights
            .iter()
            .filter(|r| !task.rights.contains(r))
            .cloned()
            .collect();
        wanted.sort();
        wanted.dedup();
        if wanted.is_empty() {
            return Err(RequestError::Invalid(
                "the task holds every right asked for already".into(),
            ));
        }
        let outcome = self.issuer.policy().decide_request(&RequestInput {
            principal: &task.principal,
            identity: task.identity.as_ref(),
            task: &task.id,
            agent: &task.agent,
            agent_key: &task.agent_key,
            held: &task.rights,
            rights: &wanted,
            reason,
            description: &task.description,
            time_left: task.deadline.duration_since(now).unwrap_or_default(),
            now,
        });
        // Held until the request is stored (dropped at the end of this call).
        let _admitted = match outcome {
            Outcome::Ask { .. } => Some(self.room_for(&task.principal, &task.id, now)?),
            _ => None,
        };
        let request = RightRequest {
            id: format!("req-{}", uuid::Uuid::new_v4()),
            task: task.id.clone(),
            principal: task.principal.clone(),
            agent: task.agent.clone(),
            rights: wanted,
            reason: reason.to_owned(),
            policy_reason: String::new(),
            state: RequestState::Pending,
            created: now,
            // An approval after the deadline could grant nothing.
            expires_at: (now + self.options.request_ttl).min(task.deadline),
            decided_by: None,
        };
        self.issuer.events().record(&IssuerEvent::RightRequested {
            request: request.id.clone(),
            task: request.task.clone(),
            principal: request.principal.clone(),
            agent: request.agent.clone(),
            rights: right_text(&request.rights),
            reason: request.reason.clone(),
        });
        match outcome {
            Outcome::Deny { reason } => {
                self.decided(&request, "refused", "policy", None);
                Err(RequestError::Refused {
                    request: request.id,
                    reason,
                })
            }
            Outcome::Allow { rights, .. } => {
                let task = self.add_rights(&task.id, &rights)?;
                let issued = self.issuer.reissue(task, token, now)?;
                let request = RightRequest {
                    rights,
                    state: RequestState::Granted,
                    decided_by: Some("policy".into()),
                    ..request
                };
                self.decided(&request, "granted", "policy", Some(issued.token_id.clone()));
                Ok(Asked::Granted { request, issued })
            }
            Outcome::Ask { reason } => {
                let request = RightRequest {
                    policy_reason: reason,
                    ..request
                };
                self.store.create(&request).map_err(unavailable)?;
                self.decided(&request, "pending_approval", "policy", None);
                Ok(Asked::Pending(request))
            }
        }
    }

    /// [`Negotiator::ask_blocking`] off the async runtime; a task this call
    /// found past its deadline is closed and revoked before the refusal.
    ///
    /// # Errors
    /// As [`Negotiator::ask_blocking`].
    pub async fn ask(
        self: &Arc<Self>,
        task_id: String,
        token: String,
        proof: String,
        rights: Vec<Right>,
        reason: String,
    ) -> Result<Asked, RequestError> {
        let this = Arc::clone(self);
        let task = task_id.clone();
        let result = blocking(move || {
            this.ask_blocking(&task, &token, &proof, &rights, &reason, SystemTime::now())
        })
        .await;
        self.revoke_if_overdue(&task_id, result).await
    }

    async fn revoke_if_overdue<T>(
        &self,
        task: &str,
        result: Result<T, RequestError>,
    ) -> Result<T, RequestError> {
        if let Err(RequestError::Task(TaskError::PastDeadline)) = &result {
            // This call closed the task: its revocation is written before
            // the answer (a failure is logged; the sweeper does not retry a
            // closed task, closing it again does).
            let _ = self.issuer.revoke(task, "deadline").await;
        }
        result
    }

    /// Adds `rights` to the task's record (a no-op when it holds them).
    pub(super) fn add_rights(&self, task_id: &str, rights: &[Right]) -> Result<Task, RequestError> {
        for _ in 0..ATTEMPTS {
            let task = self.issuer.load(task_id)?;
            if task.state == TaskState::Closed {
                return Err(TaskError::Closed(
                    task.closed_by.clone().unwrap_or_else(|| "closed".into()),
                )
                .into());
            }
            let mut next = task.clone();
            next.rights.extend(rights.iter().cloned());
            next.rights.sort();
            next.rights.dedup();
            if next.rights == task.rights {
                return Ok(task);
            }
            if self
                .issuer
                .tasks()
                .replace(&task, &next)
                .map_err(task_store_unavailable)?
            {
                return Ok(next);
            }
        }
        Err(RequestError::Unavailable(
            "the task is changing too often; retry".into(),
        ))
    }

    /// Swaps up to `limit` pending requests past their expiry to expired,
    /// as reading each would; returns how many. The deadline sweep calls it,
    /// so a request nobody reads still ends. Blocking.
    ///
    /// # Errors
    /// [`RequestError::Unavailable`] when the store fails.
    pub fn expire_overdue(&self, now: SystemTime, limit: usize) -> Result<usize, RequestError> {
        let overdue = self
            .store
            .find(
                &|r| r.state == RequestState::Pending && r.state_at(now) == RequestState::Expired,
                limit,
            )
            .map_err(unavailable)?;
        let mut expired = 0;
        for request in overdue {
            if self.settle(&request.id, now)?.state == RequestState::Expired {
                expired += 1;
            }
        }
        Ok(expired)
    }

    /// The request `id` at `now`, swapped to expired first when it is
    /// pending past its expiry.
    pub(super) fn settle(&self, id: &str, now: SystemTime) -> Result<RightRequest, RequestError> {
        let mut request = self.load(id)?;
        for _ in 0..ATTEMPTS {
            if request.state != RequestState::Pending
                || request.state_at(now) == RequestState::Pending
            {
                return Ok(request);
            }
            let expired = RightRequest {
                state: RequestState::Expired,
                decided_by: Some("expiry".into()),
                ..request.clone()
            };
            if self
                .store
                .replace(&request, &expired)
                .map_err(unavailable)?
            {
                self.decided(&expired, "expired", "expiry", None);
                self.end_waiting_task(&expired);
                self.signal.notify();
                return Ok(expired);
            }
            request = self.load(id)?;
        }
        Err(RequestError::Unavailable(
            "the request is changing too often; retry".into(),
        ))
    }

    /// The request `id`, for its task's agent (mandate and a proof for
    /// `poll`). Blocking.
    fn for_agent(
        &self,
        id: &str,
        token: &str,
        proof: &str,
        now: SystemTime,
    ) -> Result<RightRequest, RequestError> {
        let request = self.load(id)?;
        self.issuer
            .authenticate(&request.task, token, proof, TaskOperation::Poll, now)?;
        Ok(request)
    }

    /// A mandate for a granted request: the task's rights (the request's
    /// added first if an approval's second step was lost). Blocking.
    fn deliver(
        &self,
        request: &RightRequest,
        token: &str,
        now: SystemTime,
    ) -> Result<Issued, RequestError> {
        let task = self.add_rights(&request.task, &request.rights)?;
        Ok(self.issuer.reissue(task, token, now)?)
    }

    /// Reads the request `id` as its task's agent, waiting up to `wait`
    /// (at most [`MAX_WAIT`]) while it is pending; a granted request comes
    /// with a fresh mandate.
    ///
    /// # Errors
    /// [`RequestError`].
    pub async fn poll(
        self: &Arc<Self>,
        id: String,
        token: String,
        proof: String,
        wait: Duration,
    ) -> Result<Polled, RequestError> {
        // Subscribed before the first read: no decision after it is missed.
        let mut changes = self.signal.subscribe();
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        let this = Arc::clone(self);
        let token = Arc::<str>::from(token);
        let agent_token = Arc::clone(&token);
        let mut request =
            blocking(move || this.for_agent(&id, &agent_token, &proof, SystemTime::now())).await?;
        loop {
            let this = Arc::clone(self);
            let id = request.id.clone();
            request = blocking(move || this.settle(&id, SystemTime::now())).await?;
            let now = tokio::time::Instant::now();
            if request.state != RequestState::Pending || now >= deadline {
                break;
            }
            let to_expiry = request
                .expires_at
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            let until = deadline.min(now + to_expiry);
            match tokio::time::timeout_at(until, changes.changed()).await {
                // A decision (perhaps of another request), the expiry or
                // the wait's end: read again.
                Ok(Ok(())) | Err(_) => {}
                // The signal is gone: the issuer is shutting down.
                Ok(Err(_)) => break,
            }
        }
        if request.state != RequestState::Granted {
            return Ok(Polled {
                request,
                issued: None,
            });
        }
        let this = Arc::clone(self);
        let granted = request.clone();
        let result = blocking(move || this.deliver(&granted, &token, SystemTime::now())).await;
        let issued = self.revoke_if_overdue(&request.task, result).await?;
        Ok(Polled {
            request,
            issued: Some(issued),
        })
    }

    /// Verifies an approver's identity token exactly as a subject token is
    /// verified at exchange, and refuses one that was exchanged with this
    /// issuer: that token was given to an agent, and an agent must not
    /// approve (nor see) requests for more rights it or its peers made.
    ///
    /// # Errors
    /// [`RequestError::Unauthenticated`], [`RequestError::Forbidden`] for a
    /// token handed to an agent, or [`RequestError::Unavailable`] when the
    /// identity provider's keys cannot be loaded.
    pub async fn approver(&self, id_token: &str) -> Result<Approver, RequestError> {
        let now = SystemTime::now();
        let identity = self
            .issuer
            .idps()
            .verify(id_token, now)
            .await
            .map_err(|refusal| match refusal.code {
                ErrorCode::TemporarilyUnavailable => RequestError::Unavailable(refusal.description),
                _ => RequestError::Unauthenticated(refusal.description),
            })?;
        if self.issuer.handed_to_agent(id_token, now) {
            return Err(RequestError::Forbidden(
                "this identity token was given to an agent (exchanged for a mandate): \
                 it cannot list, approve or deny requests; sign in again"
                    .into(),
            ));
        }
        Ok(Approver {
            signed_in: TokenTimes::of_verified(id_token).issued_at,
            identity,
        })
    }

    /// Whether one more request of `principal` on `task` may wait for a
    /// person ([`Admission::admit`] on this negotiator's store): hold what it
    /// returns until that request is stored. Blocking.
    ///
    /// # Errors
    /// [`RequestError::TooMany`], [`RequestError::TooManyForPrincipal`],
    /// or [`RequestError::Unavailable`].
    pub(super) fn room_for(
        &self,
        principal: &str,
        task: &str,
        now: SystemTime,
    ) -> Result<Admitted<'_>, RequestError> {
        self.admission
            .admit(&*self.store, principal, task, now)
            .map_err(|crowded| match crowded {
                Crowded::Task => RequestError::TooMany,
                Crowded::Principal => RequestError::TooManyForPrincipal,
                Crowded::Unreadable(error) => unavailable(error),
            })
    }

    /// Whether `who` may see and decide `request`: its task's principal, or
    /// a member of an approver group.
    pub fn may_decide(&self, who: &Identity, request: &RightRequest) -> bool {
        who.principal == request.principal
            || who
                .groups
                .iter()
                .any(|g| self.options.approver_groups.contains(g))
    }

    /// The requests `who` may decide, in `state` at `now` (all states when
    /// `None`), oldest first, at most [`MAX_LISTED`]. Blocking.
    ///
    /// # Errors
    /// [`RequestError::Unavailable`].
    pub fn list(
        &self,
        who: &Identity,
        state: Option<RequestState>,
        now: SystemTime,
    ) -> Result<Vec<RightRequest>, RequestError> {
        let found = self
            .store
            .find(
                &|r: &RightRequest| {
                    self.may_decide(who, r) && state.is_none_or(|s| r.state_at(now) == s)
                },
                MAX_LISTED,
            )
            .map_err(unavailable)?;
        Ok(found
            .into_iter()
            .map(|r| RightRequest {
                state: r.state_at(now),
                ..r
            })
            .collect())
    }

    /// Approves (`approve`) or denies the request `id` as `who`. Blocking.
    ///
    /// # Errors
    /// [`RequestError::Forbidden`] for someone who may not decide it,
    /// [`RequestError::Decided`] when another decision landed first,
    /// [`RequestError::Expired`], or a closed task (approval only).
    pub fn decide(
        &self,
        id: &str,
        who: &Approver,
        approve: bool,
        now: SystemTime,
    ) -> Result<RightRequest, RequestError> {
        let request = self.settle(id, now)?;
        if !self.may_decide(&who.identity, &request) {
            return Err(RequestError::Forbidden(
                "only the task's principal or a member of an approver group may decide this request"
                    .into(),
            ));
        }
        if approve
            && request.state == RequestState::Pending
            && !who.signed_in_after(request.created)
        {
            // Whatever login an agent was handed predates its request.
            return Err(RequestError::Forbidden(
                "an approval needs a sign-in made after the request; this identity token \
                 is not newer than the request: sign in again"
                    .into(),
            ));
        }
        self.decide_by(request, &who.identity.principal, approve, now)
    }

    /// As [`Negotiator::decide`], for an operator whose mandate the server
    /// judged (`requests:approve` or `requests:deny`,
    /// [`crate::server::operators`]); `operator` names them in the record.
    /// Blocking.
    ///
    /// # Errors
    /// As [`Negotiator::decide`], except [`RequestError::Forbidden`].
    pub fn decide_as_operator(
        &self,
        id: &str,
        operator: &str,
        approve: bool,
        now: SystemTime,
    ) -> Result<RightRequest, RequestError> {
        let request = self.settle(id, now)?;
        self.decide_by(request, operator, approve, now)
    }

    /// Swaps `request` from pending to the decision of `by`.
    fn decide_by(
        &self,
        mut request: RightRequest,
        by: &str,
        approve: bool,
        now: SystemTime,
    ) -> Result<RightRequest, RequestError> {
        let id = request.id.clone();
        for _ in 0..ATTEMPTS {
            match request.state {
                RequestState::Pending => {}
                RequestState::Expired => return Err(RequestError::Expired),
                decided => return Err(RequestError::Decided(decided)),
            }
            if approve {
                open_at(&self.issuer.load(&request.task)?, now)?;
            }
            let next = RightRequest {
                state: if approve {
                    RequestState::Granted
                } else {
                    RequestState::Denied
                },
                decided_by: Some(by.to_owned()),
                ..request.clone()
            };
            if self.store.replace(&request, &next).map_err(unavailable)? {
                if approve {
                    // The swap above is the decision; the task's record
                    // follows, and a lost step is redone at delivery.
                    if let Err(error) = self.add_rights(&next.task, &next.rights) {
                        tracing::warn!(request = %next.id, %error, "adding approved rights to the task failed; retried at delivery");
                    }
                }
                let outcome = if approve { "approved" } else { "rejected" };
                self.decided(&next, outcome, by, None);
                self.end_waiting_task(&next);
                self.signal.notify();
                return Ok(next);
            }
            request = self.settle(&id, now)?;
        }
        Err(RequestError::Unavailable(
            "the request is changing too often; retry".into(),
        ))
    }
}

/// Refuses a closed task or one past its deadline (the sweeper closes it).
fn open_at(task: &Task, now: SystemTime) -> Result<(), RequestError> {
    if task.state == TaskState::Closed {
        return Err(
            TaskError::Closed(task.closed_by.clone().unwrap_or_else(|| "closed".into())).into(),
        );
    }
    if now >= task.deadline {
        return Err(TaskError::Closed("deadline".into()).into());
    }
    Ok(())
}

pub(super) fn right_text(rights: &[Right]) -> Vec<String> {
    rights
        .iter()
        .map(|r| format!("{}:{}", r.service, r.operation))
        .collect()
}
