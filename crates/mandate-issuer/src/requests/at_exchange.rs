//! A token exchange the issuance policy answers with `ask`: the task waits
//! for a person, and the agent collects its first mandate once approved.
//!
//! **Defer.** [`Negotiator::defer`] stores the task the exchange would open
//! (open, holding no right, no mandate minted) and a pending
//! [`RightRequest`] for the rights asked, expiring after the request
//! lifetime (never after the task's deadline). The token endpoint answers
//! `approval_required` naming the request, the task, when the request
//! expires and how often to poll ([`PendingApproval`]). The request is the
//! same kind an agent makes during a task: its principal, or a member of an
//! approver group, sees it in `GET /v1/requests` and approves or denies it.
//! A denial, or the request's expiry (seen by whoever reads it first, or by
//! the sweep), closes the waiting task — by `denied` or `expired` — with
//! nothing to revoke, since it never minted.
//!
//! **Collect.** The agent holds no mandate yet, so it proves itself with an
//! actor token signed by the task's agent key and bound (`sth`) to the
//! request id instead of a subject token, sent with the approval grant
//! ([`APPROVAL_GRANT_TYPE`], in the manner of RFC 8628's device grant):
//! `authorization_pending` while nobody decided (optionally waiting on the
//! [`super::DecisionSignal`], at most [`super::MAX_WAIT`]), `access_denied`
//! once denied, `expired_token` once expired, and once granted the task's
//! first mandate. The first mandate is handed out once: the task's mandate
//! counter moves from zero by a compare-and-swap, so two collections race
//! to one winner; afterwards the agent refreshes the task like any other.
//! A request made during a task (whose task has minted mandates already)
//! cannot be collected this way.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mandate_core::{fingerprint, AgentKey, Right};

use super::negotiator::{blocking, right_text, unavailable};
use super::{Negotiator, RequestError, RequestState, RightRequest, MAX_WAIT};
use crate::events::IssuerEvent;
use crate::issuer::{Issued, TaskError};
use crate::oauth::{ErrorCode, PendingApproval, Refusal};
use crate::tasks::{Task, TaskState};

/// The grant type an agent collects an approved exchange with.
pub const APPROVAL_GRANT_TYPE: &str = "urn:mandate:params:oauth:grant-type:approval";

/// Seconds between polls that do not wait, as told to agents.
pub const POLL_INTERVAL: u64 = 5;

/// The most attempts at a change racing another.
const ATTEMPTS: usize = 8;

fn pending_of(request: &RightRequest, now: SystemTime) -> PendingApproval {
    PendingApproval {
        request_id: request.id.clone(),
        task_id: request.task.clone(),
        expires_in: request
            .expires_at
            .duration_since(now)
            .unwrap_or_default()
            .as_secs(),
        interval: POLL_INTERVAL,
    }
}

/// A refusal of the token endpoint for a request-side failure.
fn refusal(error: RequestError) -> Refusal {
    match error {
        RequestError::Unavailable(why) | RequestError::Task(TaskError::Unavailable(why)) => {
            Refusal::new(ErrorCode::TemporarilyUnavailable, why)
        }
        RequestError::Internal | RequestError::Task(TaskError::Internal) => Refusal::internal(),
        RequestError::NotFound => Refusal::grant("no such request"),
        error @ (RequestError::TooMany | RequestError::TooManyForPrincipal) => {
            Refusal::new(ErrorCode::TemporarilyUnavailable, error.to_string())
        }
        RequestError::Task(TaskError::Closed(by)) => {
            Refusal::grant(format!("the request's task is closed ({by})"))
        }
        other => Refusal::grant(other.to_string()),
    }
}

impl Negotiator {
    /// Stores `task` (from [`crate::issuer::Exchanged::Ask`]) and a pending
    /// request for `rights` on it; the refusal to send is `approval_required`
    /// naming both. Blocking.
    ///
    /// # Errors
    /// `temporarily_unavailable` when a store failed; then nothing the agent
    /// could collect was stored.
    pub fn defer(
        &self,
        task: &Task,
        rights: Vec<Right>,
        policy_reason: String,
        now: SystemTime,
    ) -> Result<Refusal, Refusal> {
        // Held until the request is stored (dropped at the end of this call).
        let _admitted = self
            .room_for(&task.principal, &task.id, now)
            .map_err(refusal)?;
        let request = RightRequest {
            id: format!("req-{}", uuid::Uuid::new_v4()),
            task: task.id.clone(),
            principal: task.principal.clone(),
            agent: task.agent.clone(),
            rights,
            reason: if task.description.is_empty() {
                "open a task".to_owned()
            } else {
                format!("open a task: {}", task.description)
            },
            policy_reason,
            state: RequestState::Pending,
            created: now,
            expires_at: (now + self.options.request_ttl).min(task.deadline),
            decided_by: None,
        };
        self.issuer.tasks().create(task).map_err(|error| {
            tracing::error!(%error, "storing a task waiting for approval failed");
            Refusal::new(
                ErrorCode::TemporarilyUnavailable,
                "the task store is unavailable",
            )
        })?;
        self.store
            .create(&request)
            .map_err(|error| refusal(unavailable(error)))?;
        self.issuer.events().record(&IssuerEvent::RightRequested {
            request: request.id.clone(),
            task: request.task.clone(),
            principal: request.principal.clone(),
            agent: request.agent.clone(),
            rights: right_text(&request.rights),
            reason: request.reason.clone(),
        });
        self.decided(&request, "pending_approval", "policy", None);
        Ok(Refusal::new(
            ErrorCode::ApprovalRequired,
            format!(
                "{}; request {} waits for the principal or an approver; collect the \
                 mandate with grant_type {APPROVAL_GRANT_TYPE}",
                request.policy_reason, request.id
            ),
        )
        .with_pending(pending_of(&request, now)))
    }

    /// Closes the task an exchange left waiting on `request` once the
    /// request can no longer be granted (denied, or expired): the task never
    /// held a right, and must not stay open holding nothing until its
    /// deadline. A task that minted already (the request was made during
    /// it) is left alone. Blocking; a failure is logged, and the deadline
    /// sweep closes the task in the end.
    pub(super) fn end_waiting_task(&self, request: &RightRequest) {
        let by = match request.state {
            RequestState::Denied => "denied",
            RequestState::Expired => "expired",
            RequestState::Pending | RequestState::Granted => return,
        };
        if let Err(error) = self.issuer.close_unminted(&request.task, by) {
            tracing::warn!(request = %request.id, task = %request.task, %error, "closing a task left waiting failed");
        }
    }

    /// The request `id`, checked to be collectable by the agent behind
    /// `actor_token` (bound to `id`). Blocking.
    fn for_collector(
        &self,
        id: &str,
        actor_token: &str,
        now: SystemTime,
    ) -> Result<RightRequest, Refusal> {
        let request = self.load(id).map_err(refusal)?;
        let task = self
            .issuer
            .load(&request.task)
            .map_err(|e| refusal(e.into()))?;
        // The agent is known before the actor token is spent: a token any
        // stranger signed with a key of their own is refused without
        // taking a place in the replay memory.
        self.issuer
            .actors()
            .verify_for(actor_token, id, now, |actor| {
                if task.agent_key != actor.key || task.agent != actor.name {
                    return Err(Refusal::grant(
                        "only the agent the task was asked for may collect it",
                    ));
                }
                Ok(())
            })?;
        Ok(request)
    }

    /// The first mandate of a granted request's task, once. Blocking.
    fn first_mandate(&self, request: &RightRequest, now: SystemTime) -> Result<Issued, Refusal> {
        // A lost second step of the approval is redone here.
        let mut task = self
            .add_rights(&request.task, &request.rights)
            .map_err(refusal)?;
        for _ in 0..ATTEMPTS {
            if task.mandates != 0 {
                return Err(Refusal::grant(
                    "this task's first mandate was collected already (refresh the task), \
                     or the request was made during the task",
                ));
            }
            if task.state == TaskState::Closed {
                return Err(Refusal::grant("the request's task is closed"));
            }
            if now >= task.deadline {
                return Err(Refusal::grant("the request's task reached its deadline"));
            }
            if let Some(denial) = self.issuer.revocations().holder(
                &task.principal,
                &task.id,
                &task.agent,
                AgentKey::from(task.agent_key),
            ) {
                return Err(Refusal::new(ErrorCode::AccessDenied, denial.to_string()));
            }
            let issued = self
                .issuer
                .mint_for(&task, now)
                .map_err(|()| Refusal::internal())?;
            let mut next = task.clone();
            next.mandates = 1;
            let swapped = self.issuer.tasks().replace(&task, &next).map_err(|error| {
                tracing::error!(%error, "task store failed");
                Refusal::new(
                    ErrorCode::TemporarilyUnavailable,
                    "the task store is unavailable",
                )
            })?;
            if swapped {
                self.issuer.events().record(&IssuerEvent::TaskOpened {
                    task: task.id.clone(),
                    principal: task.principal.clone(),
                    agent: task.agent.clone(),
                    rights: right_text(&task.rights),
                    deadline: task.deadline,
                    mandate: fingerprint(&issued.token),
                    token_id: issued.token_id.clone(),
                    expires_at: issued.expires_at,
                    identity_issuer: task
                        .identity
                        .as_ref()
                        .map(|i| i.issuer.clone())
                        .unwrap_or_default(),
                });
                return Ok(issued);
            }
            task = self
                .issuer
                .load(&request.task)
                .map_err(|e| refusal(e.into()))?;
        }
        Err(Refusal::new(
            ErrorCode::TemporarilyUnavailable,
            "the task is changing too often; retry",
        ))
    }

    /// The approval grant: the outcome of the exchange request `id`, waiting
    /// up to `wait` (at most [`MAX_WAIT`]) while nobody decided; once
    /// granted, the task's first mandate.
    ///
    /// # Errors
    /// `authorization_pending` (with the request), `access_denied`,
    /// `expired_token`, `invalid_grant` (actor token, request, task),
    /// `temporarily_unavailable`.
    pub async fn collect(
        self: &Arc<Self>,
        id: String,
        actor_token: String,
        wait: Duration,
    ) -> Result<Issued, Refusal> {
        // Subscribed before the first read: no decision after it is missed.
        let mut changes = self.signal.subscribe();
        let until = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        let this = Arc::clone(self);
        let mut request =
            blocking(move || Ok(this.for_collector(&id, &actor_token, SystemTime::now())))
                .await
                .map_err(refusal)??;
        loop {
            let this = Arc::clone(self);
            let id = request.id.clone();
            request = blocking(move || this.settle(&id, SystemTime::now()))
                .await
                .map_err(refusal)?;
            let now = tokio::time::Instant::now();
            if request.state != RequestState::Pending || now >= until {
                break;
            }
            let to_expiry = request
                .expires_at
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            match tokio::time::timeout_at(until.min(now + to_expiry), changes.changed()).await {
                Ok(Ok(())) | Err(_) => {}
                Ok(Err(_)) => break,
            }
        }
        match request.state {
            RequestState::Pending => Err(Refusal::new(
                ErrorCode::AuthorizationPending,
                format!("request {} waits for approval", request.id),
            )
            .with_pending(pending_of(&request, SystemTime::now()))),
            RequestState::Denied => Err(Refusal::new(
                ErrorCode::AccessDenied,
                format!(
                    "request {} was denied by {}",
                    request.id,
                    request.decided_by.as_deref().unwrap_or("an approver")
                ),
            )),
            RequestState::Expired => Err(Refusal::new(
                ErrorCode::ExpiredToken,
                format!("request {} expired before anyone decided it", request.id),
            )),
            RequestState::Granted => {
                let this = Arc::clone(self);
                blocking(move || Ok(this.first_mandate(&request, SystemTime::now())))
                    .await
                    .map_err(refusal)?
            }
        }
    }
}
