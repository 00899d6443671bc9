//! A client of the issuer's HTTP API: what `mandate task open|refresh|close`
//! and agents written in Rust call.
//!
//! [`IssuerClient::open`] reads the issuer's identifier from its metadata,
//! signs the actor token with the agent's key for that identifier and the
//! subject token, and exchanges. Refresh and close sign a proof of
//! possession for that one operation on that one task, and so do asking for
//! more rights ([`IssuerClient::ask`]) and reading the outcome
//! ([`IssuerClient::poll`]). The agent's private key never leaves the
//! process. An approver lists and decides requests with an identity token
//! ([`IssuerClient::requests`], [`IssuerClient::decide`]).

use std::time::{Duration, SystemTime};

use mandate_core::{Proof, Right, SecretKey, UnverifiedMandate};

use crate::issuer::TaskOperation;
use crate::oauth::ErrorResponse;
use crate::server::requests::{AskBody, RequestList, RequestStatus};
use crate::server::tasks::Closed;
use crate::server::token::TokenResponse;
use crate::server::Metadata;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The issuer refused (4xx/5xx), with its code and message.
    #[error("issuer refused ({status}): {code}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The error code (`invalid_grant`, `task_closed`, ...).
        code: String,
        /// Its description.
        message: String,
    },
    /// A person must approve the exchange first; collect the mandate with
    /// [`IssuerClient::collect`].
    #[error("{code}: {message} (request {request_id}, expires in {expires_in}s)")]
    ApprovalPending {
        /// `approval_required` (the exchange) or `authorization_pending`
        /// (a collection while nobody decided).
        code: String,
        /// The issuer's description.
        message: String,
        /// The request to collect.
        request_id: String,
        /// The task it opens.
        task_id: String,
        /// Seconds until the request expires undecided.
        expires_in: u64,
    },
    /// The issuer could not be reached or answered something unreadable.
    #[error("issuer unreachable or unreadable: {0}")]
    Transport(String),
    /// A local input is unusable.
    #[error("{0}")]
    Invalid(String),
}

/// What an agent asks for when opening a task.
#[derive(Debug, Clone)]
pub struct OpenRequest {
    /// The principal's identity token.
    pub subject_token: String,
    /// The agent's name.
    pub agent: String,
    /// Rights requested.
    pub rights: Vec<Right>,
    /// Services (`audience`).
    pub audience: Vec<String>,
    /// What the task is for.
    pub description: String,
    /// Task lifetime requested.
    pub ttl: Option<Duration>,
}

/// An issuer's base URL and an HTTP client.
#[derive(Debug, Clone)]
pub struct IssuerClient {
    base: String,
    http: reqwest::Client,
}

fn transport(error: reqwest::Error) -> ClientError {
    ClientError::Transport(error.to_string())
}

/// Sends `request` and reads the answer as `T`, or the refusal.
async fn answer<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
) -> Result<T, ClientError> {
    let response = request.send().await.map_err(transport)?;
    if !response.status().is_success() {
        return Err(refused(response).await);
    }
    response.json().await.map_err(transport)
}

async fn refused(response: reqwest::Response) -> ClientError {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    if let Ok(oauth) = serde_json::from_str::<ErrorResponse>(&text) {
        if let (Some(request_id), Some(task_id)) = (oauth.request_id, oauth.task_id) {
            return ClientError::ApprovalPending {
                code: oauth.error,
                message: oauth.error_description,
                request_id,
                task_id,
                expires_in: oauth.expires_in.unwrap_or(0),
            };
        }
        return ClientError::Refused {
            status,
            code: oauth.error,
            message: oauth.error_description,
        };
    }
    if let Ok(api) = serde_json::from_str::<mandate_verifier::ErrorBody>(&text) {
        return ClientError::Refused {
            status,
            code: api.error.code,
            message: api.error.message,
        };
    }
    ClientError::Refused {
        status,
        code: "unknown".into(),
        message: text.chars().take(200).collect(),
    }
}

impl IssuerClient {
    /// A client of the issuer at `base` (`http://127.0.0.1:7800`).
    ///
    /// # Errors
    /// [`ClientError::Transport`] when no HTTP client can be built.
    pub fn new(base: &str) -> Result<IssuerClient, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(mandate_verifier::http::CLIENT_POOL_IDLE)
            .build()
            .map_err(transport)?;
        Ok(IssuerClient {
            base: base.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// The issuer's metadata.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn metadata(&self) -> Result<Metadata, ClientError> {
        answer(self.http.get(format!(
            "{}/.well-known/oauth-authorization-server",
            self.base
        )))
        .await
    }

    /// Exchanges the subject token for a task's first mandate.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn open(
        &self,
        key: &SecretKey,
        request: &OpenRequest,
    ) -> Result<TokenResponse, ClientError> {
        let issuer_id = self.metadata().await?.issuer;
        let actor = crate::actor::sign(
            key,
            &request.agent,
            &issuer_id,
            &request.subject_token,
            SystemTime::now(),
        );
        let scope = request
            .rights
            .iter()
            .map(|r| format!("{}:{}", r.service, r.operation))
            .collect::<Vec<_>>()
            .join(" ");
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", crate::server::token::GRANT_TYPE.into()),
            ("subject_token", request.subject_token.clone()),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:jwt".into(),
            ),
            ("actor_token", actor),
            ("actor_token_type", crate::ACTOR_TOKEN_TYPE.into()),
            ("requested_token_type", crate::MANDATE_TOKEN_TYPE.into()),
            ("scope", scope),
            ("task_description", request.description.clone()),
        ];
        for service in &request.audience {
            form.push(("audience", service.clone()));
        }
        if let Some(ttl) = request.ttl {
            form.push(("requested_ttl", ttl.as_secs().to_string()));
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        answer(
            self.http
                .post(format!("{}/oauth2/token", self.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
        )
        .await
    }

    /// Collects the first mandate of an exchange a person had to approve
    /// (`request_id` from [`ClientError::ApprovalPending`]), waiting up to
    /// `wait` (the issuer caps one call at 60 s) for the decision.
    ///
    /// # Errors
    /// [`ClientError::ApprovalPending`] while nobody decided, or a refusal
    /// (`access_denied`, `expired_token`, `invalid_grant`).
    pub async fn collect(
        &self,
        key: &SecretKey,
        agent: &str,
        request_id: &str,
        wait: Duration,
    ) -> Result<TokenResponse, ClientError> {
        let issuer_id = self.metadata().await?.issuer;
        // Bound to the request id: the agent holds no subject token it may
        // still use, and no mandate yet.
        let actor = crate::actor::sign(key, agent, &issuer_id, request_id, SystemTime::now());
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", crate::requests::APPROVAL_GRANT_TYPE)
            .append_pair("request_id", request_id)
            .append_pair("actor_token", &actor)
            .append_pair("actor_token_type", crate::ACTOR_TOKEN_TYPE)
            .append_pair("wait", &wait.as_secs().to_string())
            .finish();
        answer(
            self.http
                .post(format!("{}/oauth2/token", self.base))
                .header("content-type", "application/x-www-form-urlencoded")
                // The issuer waits at most a minute before answering.
                .timeout(Duration::from_secs(90))
                .body(body),
        )
        .await
    }

    async fn task_call<T: serde::de::DeserializeOwned>(
        &self,
        op: TaskOperation,
        task: &str,
        token: &str,
        key: &SecretKey,
    ) -> Result<T, ClientError> {
        let digest = UnverifiedMandate::from_base64(token)
            .map_err(|e| ClientError::Invalid(e.to_string()))?
            .digest_hex();
        let now = SystemTime::now();
        let request = op
            .request(task, now)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let proof = Proof::sign(key, &digest, &request, now);
        answer(
            self.http
                .post(format!("{}/v1/tasks/{task}/{}", self.base, op.as_str()))
                .header("authorization", format!("Mandate {}", token.trim()))
                .header(crate::server::tasks::POP_HEADER, proof.to_text()),
        )
        .await
    }

    /// A fresh mandate for `task`, presenting its current one.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn refresh(
        &self,
        task: &str,
        token: &str,
        key: &SecretKey,
    ) -> Result<TokenResponse, ClientError> {
        self.task_call(TaskOperation::Refresh, task, token, key)
            .await
    }

    /// Closes `task`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn close(
        &self,
        task: &str,
        token: &str,
        key: &SecretKey,
    ) -> Result<Closed, ClientError> {
        self.task_call(TaskOperation::Close, task, token, key).await
    }

    /// Closes `task` as its principal, with an identity token from one of
    /// the issuer's identity providers.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn close_as_principal(
        &self,
        task: &str,
        id_token: &str,
    ) -> Result<Closed, ClientError> {
        answer(
            self.http
                .post(format!("{}/v1/tasks/{task}/close", self.base))
                .header("authorization", format!("Bearer {}", id_token.trim())),
        )
        .await
    }

    /// Closes `task` as an operator: `token` grants `tasks:close`, and
    /// `key` (its acting agent's) signs the proof.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn close_as_operator(
        &self,
        task: &str,
        token: &str,
        key: &SecretKey,
    ) -> Result<Closed, ClientError> {
        let digest = UnverifiedMandate::from_base64(token)
            .map_err(|e| ClientError::Invalid(e.to_string()))?
            .digest_hex();
        let now = SystemTime::now();
        let request = crate::server::close::operator_request(task, now)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let proof = Proof::sign(key, &digest, &request, now);
        answer(
            self.http
                .post(format!("{}/v1/tasks/{task}/close", self.base))
                .header("authorization", format!("Mandate {}", token.trim()))
                .header(crate::server::tasks::POP_HEADER, proof.to_text()),
        )
        .await
    }

    /// A proof by `key` for `op` on `task`, over `token`.
    fn proof(
        op: TaskOperation,
        task: &str,
        token: &str,
        key: &SecretKey,
    ) -> Result<String, ClientError> {
        let digest = UnverifiedMandate::from_base64(token.trim())
            .map_err(|e| ClientError::Invalid(e.to_string()))?
            .digest_hex();
        let now = SystemTime::now();
        let request = op
            .request(task, now)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        Ok(Proof::sign(key, &digest, &request, now).to_text())
    }

    /// Asks for more `rights` on `task` with `reason`: granted at once (with
    /// a mandate), or pending a person's decision.
    ///
    /// # Errors
    /// [`ClientError`]; a policy refusal is [`ClientError::Refused`] with
    /// code `request_refused`.
    pub async fn ask(
        &self,
        task: &str,
        token: &str,
        key: &SecretKey,
        rights: &[Right],
        reason: &str,
    ) -> Result<RequestStatus, ClientError> {
        let proof = Self::proof(TaskOperation::Request, task, token, key)?;
        let body = AskBody {
            rights: rights
                .iter()
                .map(|r| format!("{}:{}", r.service, r.operation))
                .collect(),
            reason: reason.to_owned(),
        };
        answer(
            self.http
                .post(format!("{}/v1/tasks/{task}/requests", self.base))
                .header("authorization", format!("Mandate {}", token.trim()))
                .header(crate::server::tasks::POP_HEADER, proof)
                .json(&body),
        )
        .await
    }

    /// Reads request `id` of `task` as its agent, the issuer waiting up to
    /// `wait` (it caps the wait at 60 s) for a decision.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn poll(
        &self,
        id: &str,
        task: &str,
        token: &str,
        key: &SecretKey,
        wait: Duration,
    ) -> Result<RequestStatus, ClientError> {
        let proof = Self::proof(TaskOperation::Poll, task, token, key)?;
        answer(
            self.http
                .get(format!("{}/v1/requests/{id}", self.base))
                .query(&[("wait", format!("{}s", wait.as_secs()))])
                .header("authorization", format!("Mandate {}", token.trim()))
                .header(crate::server::tasks::POP_HEADER, proof)
                // The issuer answers within the wait, and the client's own
                // timeout must not cut the long poll short.
                .timeout(wait + Duration::from_secs(30)),
        )
        .await
    }

    /// The requests the holder of `id_token` may decide, in `state`
    /// (`pending`, `granted`, `denied`, `expired` or `all`).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn requests(&self, id_token: &str, state: &str) -> Result<RequestList, ClientError> {
        answer(
            self.http
                .get(format!("{}/v1/requests", self.base))
                .query(&[("state", state)])
                .bearer_auth(id_token.trim()),
        )
        .await
    }

    /// Approves (`approve`) or denies request `id` as the holder of
    /// `id_token`.
    ///
    /// # Errors
    /// [`ClientError`]; a request decided already is refused with code
    /// `request_decided`, an expired one with `request_expired`.
    pub async fn decide(
        &self,
        id_token: &str,
        id: &str,
        approve: bool,
    ) -> Result<RequestStatus, ClientError> {
        let verb = if approve { "approve" } else { "deny" };
        answer(
            self.http
                .post(format!("{}/v1/requests/{id}/{verb}", self.base))
                .bearer_auth(id_token.trim()),
        )
        .await
    }

    /// Approves (`approve`) or denies request `id` as an operator: `token`
    /// grants `requests:approve` (or `requests:deny`), and `key` (its acting
    /// agent's) signs the proof.
    ///
    /// # Errors
    /// As [`IssuerClient::decide`]; `unavailable` while the issuer cannot
    /// vouch that the mandate is not revoked.
    pub async fn decide_as_operator(
        &self,
        id: &str,
        approve: bool,
        token: &str,
        key: &SecretKey,
    ) -> Result<RequestStatus, ClientError> {
        let token = token.trim();
        let digest = UnverifiedMandate::from_base64(token)
            .map_err(|e| ClientError::Invalid(e.to_string()))?
            .digest_hex();
        let now = SystemTime::now();
        let request = crate::server::operators::decision_request(id, approve, now)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let proof = Proof::sign(key, &digest, &request, now);
        let verb = if approve { "approve" } else { "deny" };
        answer(
            self.http
                .post(format!("{}/v1/requests/{id}/{verb}", self.base))
                .header("authorization", format!("Mandate {token}"))
                .header(crate::server::tasks::POP_HEADER, proof.to_text()),
        )
        .await
    }
}
