//! [`Issuer`]: the token exchange, refresh and close flows.
//!
//! **Exchange.** Verify the subject token (identity provider), then the actor
//! token (the agent's key, bound to that subject token), then ask the
//! issuance policy; only after an allow is a task stored and a mandate
//! minted. Every refusal happens before the root key is used. When the
//! policy asks a person, [`Issuer::open`] returns the task to store while
//! the request is decided ([`Exchanged::Ask`]); the token endpoint hands it
//! to [`crate::requests::Negotiator::defer`].
//!
//! **Refresh.** The agent presents the task's current mandate (verified
//! under this issuer's root) and a proof of possession by the task's agent
//! key over (`mandate-issuer`, `refresh`, `/v1/tasks/{id}`). While the task
//! is open and before its deadline, a mandate with the task's stored rights
//! (never the token's, never more) is minted, expiring no later than the
//! deadline; it is returned only if the task record's swap landed while
//! the task was still open, so no mandate is returned after a close.
//!
//! **Close.** The same proof for `close`; the record is swapped to closed
//! (flushed), then the task's revocation is written. A task past its
//! deadline is closed the same way, by whichever request or sweep sees it
//! first.
//!
//! **More rights.** [`crate::requests`] authenticates an agent's request
//! for more rights (and its polls) as a refresh is authenticated, with
//! proofs for `request` and `poll`, and returns a granted request's mandate
//! as a refresh does (`Issuer::reissue`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mandate_core::{
    fingerprint, AgentKey, Proof, PublicKey, Request, ResourcePath, Right, UnverifiedMandate,
};

use crate::actor::ActorVerifier;
use crate::events::{IssuerEvent, IssuerEvents};
use crate::handed::HandedTokens;
use crate::idp::{Identity, IdentityProviders, TokenTimes};
use crate::mint::{mint, MintRequest};
use crate::oauth::{ErrorCode, Refusal};
use crate::policy::{IssuancePolicy, Outcome, PolicyInput};
use crate::remembered::{Full, Remembered};
use crate::revoke::TaskRevoker;
use crate::revoked::Revocations;
use crate::signing::SigningKeys;
use crate::tasks::{StoreError, Task, TaskState, TaskStore};
use mandate_verifier::RevocationDenial;

/// The issuer's tunables.
#[derive(Debug, Clone)]
pub struct IssuerOptions {
    /// This issuer's identifier: actor tokens must name it as `aud`.
    pub issuer_id: String,
    /// Lifetime of each mandate (default 5 minutes); never past the deadline.
    pub mandate_ttl: Duration,
    /// Task lifetime when none is requested, and the bound when the policy
    /// states no `max_ttl` (default 1 hour).
    pub default_task_ttl: Duration,
    /// The longest task, whatever is asked or allowed (default 24 hours).
    pub max_task_ttl: Duration,
    /// Clock skew allowed on tokens (default 30 s).
    pub skew: Duration,
    /// How far a refresh or close proof may be from now (default 30 s).
    pub pop_window: Duration,
}

impl IssuerOptions {
    /// Defaults for an issuer named `issuer_id`.
    pub fn new(issuer_id: impl Into<String>) -> IssuerOptions {
        IssuerOptions {
            issuer_id: issuer_id.into(),
            mandate_ttl: Duration::from_secs(300),
            default_task_ttl: Duration::from_secs(3600),
            max_task_ttl: Duration::from_secs(24 * 3600),
            skew: crate::idp::DEFAULT_SKEW,
            pop_window: Duration::from_secs(30),
        }
    }
}

/// A token exchange request, parsed.
#[derive(Debug, Clone)]
pub struct ExchangeRequest {
    /// The principal's identity token.
    pub subject_token: String,
    /// The agent's actor token ([`crate::actor`]).
    pub actor_token: String,
    /// The rights requested (`scope`), at least one.
    pub rights: Vec<Right>,
    /// Services named by `audience` or `resource`.
    pub audience: Vec<String>,
    /// What the task is for.
    pub description: String,
    /// The task lifetime requested.
    pub ttl: Option<Duration>,
}

/// A minted mandate.
#[derive(Clone)]
pub struct Issued {
    /// The mandate, base64.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Its expiry.
    pub expires_at: SystemTime,
    /// The task.
    pub task: String,
    /// The rights it grants.
    pub rights: Vec<Right>,
    /// The task's deadline.
    pub deadline: SystemTime,
    /// The mandate's token id (hex), as revocations and audit records name it.
    pub token_id: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("token", &fingerprint(&self.token))
            .field("task", &self.task)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// What an exchange came to.
#[derive(Debug)]
pub enum Exchanged {
    /// The policy allowed: the task is stored and this is its first mandate.
    Issued(Issued),
    /// The policy asks a person first.
    Ask {
        /// The task to store while the request is decided: open, holding
        /// no right and no mandate.
        task: Box<Task>,
        /// The rights requested, sorted, for the person to approve.
        rights: Vec<Right>,
        /// The policy's reason.
        reason: String,
    },
}

/// Why a refresh or close was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The mandate or proof is missing, malformed or does not verify (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is not this task's agent (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such task (404).
    #[error("no such task")]
    NotFound,
    /// The task is closed, or reached its deadline (409).
    #[error("task is closed ({0})")]
    Closed(String),
    /// This request found the task past its deadline and closed it (409);
    /// its revocation is still to be written.
    #[error("task reached its deadline and is closed")]
    PastDeadline,
    /// A store or the registry failed; logged (503).
    #[error("{0}")]
    Unavailable(String),
    /// Minting failed; logged (500).
    #[error("internal error")]
    Internal,
}

/// What an operation on a task proves: which operation, for which task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOperation {
    /// A fresh mandate.
    Refresh,
    /// Close the task.
    Close,
    /// Ask for more rights ([`crate::requests`]).
    Request,
    /// Read (and wait for) the outcome of a request for more rights.
    Poll,
}

impl TaskOperation {
    /// `refresh`, `close`, `request` or `poll`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskOperation::Refresh => "refresh",
            TaskOperation::Close => "close",
            TaskOperation::Request => "request",
            TaskOperation::Poll => "poll",
        }
    }

    /// The request a proof for this operation on `task` signs.
    ///
    /// # Errors
    /// A task id that cannot form a resource path.
    pub fn request(self, task: &str, now: SystemTime) -> Result<Request, mandate_core::Error> {
        Ok(Request::new(
            crate::ISSUER_SERVICE,
            self.as_str(),
            ResourcePath::parse(&format!("/v1/tasks/{task}"))?,
            now,
        ))
    }
}

/// The most unexpired proof nonces remembered.
const MAX_NONCES: usize = 100_000;
/// How long an exchanged identity token that states no expiry is
/// remembered (a provider's tokens always state one).
const HANDED_WITHOUT_EXP: Duration = Duration::from_secs(24 * 3600);
/// The most of a refusal's description the audit trail keeps, in bytes.
const MAX_REFUSAL_RECORDED: usize = 512;

/// The issuer.
pub struct Issuer {
    keys: SigningKeys,
    idps: IdentityProviders,
    actors: ActorVerifier,
    policy: IssuancePolicy,
    tasks: Arc<dyn TaskStore>,
    revoker: Arc<dyn TaskRevoker>,
    events: Arc<dyn IssuerEvents>,
    options: IssuerOptions,
    nonces: Remembered<[u8; 16]>,
    revocations: Revocations,
    handed: HandedTokens,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("keys", &self.keys)
            .field("idps", &self.idps)
            .field("policy", &self.policy.name())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn right_text(rights: &[Right]) -> Vec<String> {
    rights
        .iter()
        .map(|r| format!("{}:{}", r.service, r.operation))
        .collect()
}

impl Issuer {
    /// An issuer signing with `keys`: one [`mandate_core::RootKey`], or [`SigningKeys`]
    /// from a rotated key folder.
    #[allow(clippy::too_many_arguments)] // reason: each part is a separate concern the server composes.
    pub fn new(
        keys: impl Into<SigningKeys>,
        idps: IdentityProviders,
        policy: IssuancePolicy,
        tasks: Arc<dyn TaskStore>,
        revoker: Arc<dyn TaskRevoker>,
        events: Arc<dyn IssuerEvents>,
        options: IssuerOptions,
    ) -> Issuer {
        Issuer {
            actors: ActorVerifier::new(options.issuer_id.clone(), options.skew),
            keys: keys.into(),
            idps,
            policy,
            tasks,
            revoker,
            events,
            options,
            nonces: Remembered::new(MAX_NONCES),
            revocations: Revocations::default(),
            handed: HandedTokens::default(),
        }
    }

    /// The same issuer consulting `check` before it mints
    /// (`revoked.rs`): a refresh or request made with a revoked
    /// mandate (its token, principal, task or an agent of its chain) is
    /// refused, and refused while `check` is stale; an exchange for a revoked
    /// principal or agent is refused.
    #[must_use]
    pub fn with_revocations(mut self, check: Arc<dyn mandate_verifier::RevocationCheck>) -> Issuer {
        self.revocations = Revocations::new(check);
        self
    }

    /// The revocation state consulted before minting.
    pub(crate) fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// The options.
    pub fn options(&self) -> &IssuerOptions {
        &self.options
    }

    /// The root keys: the one signing now and every one still trusted.
    pub fn signing_keys(&self) -> &SigningKeys {
        &self.keys
    }

    /// The identity providers principals' tokens are verified against.
    pub fn identity_providers(&self) -> &IdentityProviders {
        &self.idps
    }

    /// The public half of the key signing now, with its id.
    pub fn root_public(&self) -> Option<(Option<u32>, PublicKey)> {
        let root = self.keys.signer(SystemTime::now()).ok()?;
        Some((root.key_id, root.secret.public()))
    }

    /// The task store.
    pub fn tasks(&self) -> &Arc<dyn TaskStore> {
        &self.tasks
    }

    /// The identity providers (approvers of run-time requests are verified
    /// by them exactly as subject tokens are).
    pub(crate) fn idps(&self) -> &IdentityProviders {
        &self.idps
    }

    /// The verifier of actor tokens (the approval grant binds them to a
    /// request id instead of a subject token).
    pub(crate) fn actors(&self) -> &ActorVerifier {
        &self.actors
    }

    /// The issuance policy.
    pub(crate) fn policy(&self) -> &IssuancePolicy {
        &self.policy
    }

    /// Where events go.
    pub(crate) fn events(&self) -> &Arc<dyn IssuerEvents> {
        &self.events
    }

    pub(crate) fn refused(&self, refusal: Refusal, principal: Option<&str>) -> Refusal {
        self.events.record(&IssuerEvent::ExchangeRefused {
            error: refusal.code.as_str(),
            // Anyone may be refused, as often as they like: what the trail
            // keeps of each refusal stays small.
            reason: mandate_core::print::shorten(refusal.description.clone(), MAX_REFUSAL_RECORDED),
            principal: principal.map(str::to_owned),
        });
        refusal
    }

    /// The whole exchange: [`Issuer::identify`] then [`Issuer::grant`].
    ///
    /// # Errors
    /// A [`Refusal`]; nothing was minted or stored.
    pub async fn exchange(
        &self,
        request: &ExchangeRequest,
        now: SystemTime,
    ) -> Result<Issued, Refusal> {
        let identity = self.identify(request, now).await?;
        self.grant(&identity, request, now)
    }

    /// Verifies the subject token (loading provider keys when needed), and
    /// remembers it as handed to an agent: it will not approve requests.
    ///
    /// # Errors
    /// A [`Refusal`].
    pub async fn identify(
        &self,
        request: &ExchangeRequest,
        now: SystemTime,
    ) -> Result<Identity, Refusal> {
        let identity = self
            .idps
            .verify(&request.subject_token, now)
            .await
            .map_err(|r| self.refused(r, None))?;
        let expires = TokenTimes::of_verified(&request.subject_token)
            .expires
            .unwrap_or(now + HANDED_WITHOUT_EXP);
        self.handed
            .remember(&request.subject_token, expires, self.options.skew, now)
            .map_err(|r| self.refused(r, Some(&identity.principal)))?;
        Ok(identity)
    }

    /// Whether `id_token` was exchanged with this issuer (given to an agent)
    /// and has not expired since.
    pub(crate) fn handed_to_agent(&self, id_token: &str, now: SystemTime) -> bool {
        self.handed.contains(id_token, now)
    }

    /// Everything after the identity: the actor token, the policy, the task
    /// and the mandate. CPU-bound and blocking (store writes): call it off
    /// the async runtime. An exchange the policy would have a person approve
    /// is refused with `approval_required` and nothing stored: the token
    /// endpoint uses [`Issuer::open`] and [`crate::requests::Negotiator::defer`]
    /// instead, which store the request.
    ///
    /// # Errors
    /// A [`Refusal`]; nothing was minted or stored.
    pub fn grant(
        &self,
        identity: &Identity,
        request: &ExchangeRequest,
        now: SystemTime,
    ) -> Result<Issued, Refusal> {
        match self.open(identity, request, now)? {
            Exchanged::Issued(issued) => Ok(issued),
            Exchanged::Ask { reason, .. } => Err(self.refused(
                Refusal::new(ErrorCode::ApprovalRequired, reason),
                Some(&identity.principal),
            )),
        }
    }

    /// The actor token, the policy, and on an allow the task and its first
    /// mandate; on an ask, the task to store while a person decides (not
    /// stored here, no mandate minted). Blocking.
    ///
    /// # Errors
    /// A [`Refusal`]; nothing was minted or stored.
    pub fn open(
        &self,
        identity: &Identity,
        request: &ExchangeRequest,
        now: SystemTime,
    ) -> Result<Exchanged, Refusal> {
        let principal = Some(identity.principal.as_str());
        let actor = self
            .actors
            .verify(&request.actor_token, &request.subject_token, now)
            .map_err(|r| self.refused(r, principal))?;
        if let Some(denial) = self.revocations.holder(
            &identity.principal,
            "",
            &actor.name,
            AgentKey::from(actor.key),
        ) {
            return Err(self.refused(
                Refusal::new(ErrorCode::AccessDenied, denial.to_string()),
                principal,
            ));
        }
        if request.rights.is_empty() {
            return Err(self.refused(
                Refusal::new(ErrorCode::InvalidScope, "scope names no right"),
                principal,
            ));
        }
        if let Some(right) = request
            .rights
            .iter()
            .find(|r| !request.audience.is_empty() && !request.audience.contains(&r.service))
        {
            return Err(self.refused(
                Refusal::new(
                    ErrorCode::InvalidTarget,
                    format!(
                        "right {}:{} is for a service the requested audience does not name",
                        right.service, right.operation
                    ),
                ),
                principal,
            ));
        }
        let asked = request.ttl.unwrap_or(self.options.default_task_ttl);
        if asked.is_zero() || asked > self.options.max_task_ttl {
            return Err(self.refused(
                Refusal::request(format!(
                    "requested lifetime must be between 1s and {}",
                    humantime::format_duration(self.options.max_task_ttl)
                )),
                principal,
            ));
        }
        let outcome = self.policy.decide(&PolicyInput {
            identity,
            agent: &actor.name,
            agent_key: &actor.key,
            rights: &request.rights,
            audience: &request.audience,
            ttl: asked,
            description: &request.description,
            now,
        });
        let (rights, max_ttl) = match outcome {
            Outcome::Allow { rights, max_ttl } => (rights, max_ttl),
            Outcome::Deny { reason } => {
                return Err(self.refused(Refusal::new(ErrorCode::AccessDenied, reason), principal))
            }
            Outcome::Ask { reason } => {
                // Nothing granted yet: the task holds no right and has no
                // mandate until a person approves the request for them.
                let ttl = asked
                    .min(self.options.default_task_ttl)
                    .min(self.options.max_task_ttl);
                let mut rights = request.rights.clone();
                rights.sort();
                rights.dedup();
                return Ok(Exchanged::Ask {
                    task: Box::new(Task {
                        id: format!("task-{}", uuid::Uuid::new_v4()),
                        principal: identity.principal.clone(),
                        agent: actor.name.clone(),
                        agent_key: actor.key,
                        rights: Vec::new(),
                        description: request.description.clone(),
                        state: TaskState::Open,
                        created: now,
                        deadline: now + ttl,
                        mandates: 0,
                        closed_by: None,
                        closed_at: None,
                        identity: Some(identity.clone()),
                    }),
                    rights,
                    reason,
                });
            }
        };
        let ttl = asked
            .min(max_ttl.unwrap_or(self.options.default_task_ttl))
            .min(self.options.max_task_ttl);
        if ttl.is_zero() {
            return Err(self.refused(
                Refusal::new(
                    ErrorCode::AccessDenied,
                    "the issuance policy allows no lifetime",
                ),
                principal,
            ));
        }
        let task = Task {
            id: format!("task-{}", uuid::Uuid::new_v4()),
            principal: identity.principal.clone(),
            agent: actor.name.clone(),
            agent_key: actor.key,
            rights,
            description: request.description.clone(),
            state: TaskState::Open,
            created: now,
            deadline: now + ttl,
            mandates: 1,
            closed_by: None,
            closed_at: None,
            identity: Some(identity.clone()),
        };
        let issued = self
            .mint_for(&task, now)
            .map_err(|()| Refusal::internal())?;
        self.tasks.create(&task).map_err(|error| {
            tracing::error!(%error, "storing a new task failed");
            Refusal::new(
                ErrorCode::TemporarilyUnavailable,
                "the task store is unavailable",
            )
        })?;
        self.events.record(&IssuerEvent::TaskOpened {
            task: task.id.clone(),
            principal: task.principal.clone(),
            agent: task.agent.clone(),
            rights: right_text(&task.rights),
            deadline: task.deadline,
            mandate: fingerprint(&issued.token),
            token_id: issued.token_id.clone(),
            expires_at: issued.expires_at,
            identity_issuer: identity.issuer.clone(),
        });
        Ok(Exchanged::Issued(issued))
    }

    pub(crate) fn mint_for(&self, task: &Task, now: SystemTime) -> Result<Issued, ()> {
        let left = task.deadline.duration_since(now).unwrap_or_default();
        // Whole seconds: a mandate's expiry is stored with second precision.
        let ttl = self
            .options
            .mandate_ttl
            .min(Duration::from_secs(left.as_secs()));
        if ttl.is_zero() {
            return Err(());
        }
        let root = self
            .keys
            .signer(now)
            .map_err(|error| tracing::error!(%error, "no root key to sign with"))?;
        let mandate = mint(
            &root,
            &MintRequest {
                principal: task.principal.clone(),
                agent: task.agent.clone(),
                agent_key: Some(task.agent_key),
                task: Some(task.id.clone()),
                rights: task.rights.clone(),
                ttl,
                restrictions: Default::default(),
                now,
            },
        )
        .map_err(|error| tracing::error!(%error, task = %task.id, "minting failed"))?;
        let token = mandate
            .to_base64()
            .map_err(|error| tracing::error!(%error, "encoding a mandate failed"))?;
        Ok(Issued {
            token_id: mandate.token_id_hex(),
            token,
            expires_in: ttl.as_secs(),
            expires_at: now + ttl,
            task: task.id.clone(),
            rights: task.rights.clone(),
            deadline: task.deadline,
        })
    }

    /// Checks that `token` and `proof` come from `task_id`'s agent for `op`.
    pub(crate) fn authenticate(
        &self,
        task_id: &str,
        token: &str,
        proof: &str,
        op: TaskOperation,
        now: SystemTime,
    ) -> Result<Task, TaskError> {
        let unauthenticated = |why: &str| TaskError::Unauthenticated(why.to_owned());
        let mandate = self
            .keys
            .verify(token, now)
            .map_err(|_| unauthenticated("the mandate is not one this issuer signed"))?;
        let proof =
            Proof::parse(proof).map_err(|_| unauthenticated("malformed proof of possession"))?;
        let claims = mandate.claims();
        if claims.task != task_id {
            return Err(TaskError::Forbidden(
                "the mandate is for another task".into(),
            ));
        }
        let task = self.load(task_id)?;
        let holder_key = claims
            .chain
            .as_ref()
            .ok()
            .and_then(|chain| chain.holder().key);
        if holder_key != Some(AgentKey::from(task.agent_key)) {
            return Err(TaskError::Forbidden(
                "only the task's own agent may refresh, close or extend it".into(),
            ));
        }
        let request = op.request(task_id, now).map_err(|_| TaskError::NotFound)?;
        let key = AgentKey::from(task.agent_key)
            .verifying_key()
            .map_err(|_| TaskError::Internal)?;
        proof
            .verify(
                &task.agent,
                &key,
                &mandate.digest_hex(),
                &request,
                self.options.pop_window,
            )
            .map_err(|e| TaskError::Unauthenticated(e.to_string()))?;
        self.spend_nonce(
            proof.nonce,
            millis(now) + 2 * millis_of(self.options.pop_window),
            millis(now),
        )?;
        // Closing only takes authority away: a revoked mandate may still
        // close its task. Everything else may mint, unless the task is
        // closed, which the caller refuses as such.
        if op != TaskOperation::Close && task.state != TaskState::Closed {
            self.revocations
                .presented(&mandate)
                .map_err(|denial| match denial {
                    RevocationDenial::Revoked { .. } => {
                        TaskError::Forbidden(format!("the mandate is {denial}"))
                    }
                    _ => TaskError::Unavailable(format!(
                        "the issuer cannot vouch that this mandate is not revoked: {denial}"
                    )),
                })?;
        }
        Ok(task)
    }

    fn spend_nonce(&self, nonce: [u8; 16], until: u64, now: u64) -> Result<(), TaskError> {
        match self.nonces.insert_new(nonce, until, now) {
            Ok(true) => Ok(()),
            Ok(false) => Err(TaskError::Unauthenticated(
                "proof of possession replayed (nonce already seen)".into(),
            )),
            Err(Full) => Err(TaskError::Unavailable("too many recent requests".into())),
        }
    }

    pub(crate) fn load(&self, id: &str) -> Result<Task, TaskError> {
        self.tasks
            .get(id)
            .map_err(unavailable)?
            .ok_or(TaskError::NotFound)
    }

    /// A fresh mandate for an open task. Blocking (store): call it off the
    /// async runtime.
    ///
    /// # Errors
    /// [`TaskError`]; nothing minted is returned after the task closed.
    /// [`TaskError::PastDeadline`] means this call closed the task: the
    /// caller must then [`Issuer::revoke`] it.
    pub fn refresh(
        &self,
        task_id: &str,
        token: &str,
        proof: &str,
        now: SystemTime,
    ) -> Result<Issued, TaskError> {
        let task = self.authenticate(task_id, token, proof, TaskOperation::Refresh, now)?;
        self.reissue(task, token, now)
    }

    /// A fresh mandate of `task`'s stored rights, for its agent already
    /// authenticated with `token`: what a refresh and a granted request
    /// return. Blocking.
    ///
    /// # Errors
    /// As [`Issuer::refresh`].
    pub(crate) fn reissue(
        &self,
        mut task: Task,
        token: &str,
        now: SystemTime,
    ) -> Result<Issued, TaskError> {
        let task_id = task.id.clone();
        // A few attempts: a concurrent refresh moves the counter; a close
        // ends the loop with a refusal.
        for _ in 0..8 {
            if task.state == TaskState::Closed {
                return Err(TaskError::Closed(
                    task.closed_by.clone().unwrap_or_else(|| "closed".into()),
                ));
            }
            if now >= task.deadline {
                return match self.close_record(&task, "deadline")? {
                    true => Err(TaskError::PastDeadline),
                    false => Err(TaskError::Closed("deadline".into())),
                };
            }
            let issued = self
                .mint_for(&task, now)
                .map_err(|()| TaskError::Internal)?;
            let mut next = task.clone();
            next.mandates += 1;
            if self.tasks.replace(&task, &next).map_err(unavailable)? {
                self.events.record(&IssuerEvent::TaskRefreshed {
                    task: task.id.clone(),
                    principal: task.principal.clone(),
                    agent: task.agent.clone(),
                    // Authenticated above: only its id is read here.
                    previous_token_id: UnverifiedMandate::from_base64(token)
                        .map(|m| m.token_id_hex())
                        .unwrap_or_default(),
                    mandate: fingerprint(&issued.token),
                    token_id: issued.token_id.clone(),
                    expires_at: issued.expires_at,
                });
                return Ok(issued);
            }
            task = self.load(&task_id)?;
        }
        Err(TaskError::Unavailable(
            "the task is changing too often; retry".into(),
        ))
    }

    /// Closes the task at the agent's request (mandate and proof for
    /// `close`). Blocking (store): call it off the async runtime, then
    /// [`Issuer::revoke`]. Closing a closed task succeeds again, so a close
    /// whose revocation failed can be retried.
    ///
    /// # Errors
    /// [`TaskError`].
    pub fn close(
        &self,
        task_id: &str,
        token: &str,
        proof: &str,
        now: SystemTime,
    ) -> Result<Task, TaskError> {
        let task = self.authenticate(task_id, token, proof, TaskOperation::Close, now)?;
        self.close_by(task, "agent")
    }

    /// Closes a task without a proof: for an operator on the issuer's own
    /// machine (`mandate task close --store`). Blocking.
    ///
    /// # Errors
    /// [`TaskError`].
    pub fn close_as_operator(&self, task_id: &str) -> Result<Task, TaskError> {
        let task = self.load(task_id)?;
        self.close_by(task, "operator")
    }

    /// Closes a task at its principal's request: `principal` is who a
    /// verified identity token names (the caller verifies it). Blocking.
    ///
    /// # Errors
    /// [`TaskError::Forbidden`] when the task is someone else's.
    pub fn close_as_principal(&self, task_id: &str, principal: &str) -> Result<Task, TaskError> {
        let task = self.load(task_id)?;
        if task.principal != principal {
            return Err(TaskError::Forbidden(
                "only the task's principal, its agent or an operator may close it".into(),
            ));
        }
        self.close_by(task, "principal")
    }

    fn close_by(&self, mut task: Task, by: &str) -> Result<Task, TaskError> {
        for _ in 0..8 {
            if task.state == TaskState::Closed || self.close_record(&task, by)? {
                return self.load(&task.id);
            }
            task = self.load(&task.id)?;
        }
        Err(TaskError::Unavailable(
            "the task is changing too often; retry".into(),
        ))
    }

    /// Closes a task that never minted (an exchange left waiting for a
    /// person) once it can no longer mint: `by` says why (`denied`,
    /// `expired`). Nothing was minted, so there is nothing to revoke; the
    /// close is reported. `Ok(false)` when the task is closed already or
    /// has minted. Blocking.
    ///
    /// # Errors
    /// [`TaskError`].
    pub(crate) fn close_unminted(
        &self,
        task_id: &str,
        by: &'static str,
    ) -> Result<bool, TaskError> {
        let mut task = self.load(task_id)?;
        for _ in 0..8 {
            if task.state == TaskState::Closed || task.mandates != 0 {
                return Ok(false);
            }
            if self.close_record(&task, by)? {
                self.events.record(&IssuerEvent::TaskClosed {
                    task: task.id.clone(),
                    by,
                });
                return Ok(true);
            }
            task = self.load(task_id)?;
        }
        Err(TaskError::Unavailable(
            "the task is changing too often; retry".into(),
        ))
    }

    /// Swaps `task` to closed; `Ok(false)` when it changed meanwhile.
    fn close_record(&self, task: &Task, by: &str) -> Result<bool, TaskError> {
        let mut closed = task.clone();
        closed.state = TaskState::Closed;
        closed.closed_by = Some(by.to_owned());
        closed.closed_at = Some(SystemTime::now());
        self.tasks.replace(task, &closed).map_err(unavailable)
    }

    /// Writes the revocation of a closed task and reports the close.
    ///
    /// # Errors
    /// [`TaskError::Unavailable`] when the registry did not take it (logged;
    /// the task stays closed and closing again retries).
    pub async fn revoke(&self, task_id: &str, by: &'static str) -> Result<(), TaskError> {
        let reason = format!("task closed ({by})");
        self.revoker
            .revoke_task(task_id, &reason)
            .await
            .map_err(|error| {
                tracing::error!(task = task_id, %error, "writing a task revocation failed");
                TaskError::Unavailable(
                    "the revocation registry did not take the task's revocation; close again"
                        .into(),
                )
            })?;
        self.events.record(&IssuerEvent::TaskClosed {
            task: task_id.to_owned(),
            by,
        });
        Ok(())
    }

    /// Closes up to `limit` open tasks past their deadline (blocking);
    /// returns their ids, to [`Issuer::revoke`] each.
    ///
    /// # Errors
    /// [`TaskError::Unavailable`].
    pub fn close_overdue(&self, now: SystemTime, limit: usize) -> Result<Vec<String>, TaskError> {
        let mut closed = Vec::new();
        for task in self.tasks.overdue(now, limit).map_err(unavailable)? {
            if self.close_record(&task, "deadline")? {
                closed.push(task.id);
            }
        }
        Ok(closed)
    }
}

fn unavailable(error: StoreError) -> TaskError {
    tracing::error!(%error, "task store failed");
    TaskError::Unavailable("the task store is unavailable".into())
}

fn millis_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
