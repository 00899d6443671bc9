//! `POST /oauth2/token`: the token exchange (RFC 8693 §2.1), form-encoded.
//!
//! Parameters: `grant_type` (token exchange), `subject_token` with
//! `subject_token_type` (`...:id_token` or `...:jwt`), `actor_token` with
//! `actor_token_type` ([`crate::ACTOR_TOKEN_TYPE`]), `scope` (space-separated
//! `service:operation` rights), `audience` and `resource` (services; may
//! repeat), optional `requested_token_type` (must be the mandate type), and
//! Mandate's `task_description` and `requested_ttl` (seconds). Every other
//! parameter may appear once; a repeat is `invalid_request`.
//!
//! When the issuance policy asks a person, the answer is 403
//! `approval_required` with `request_id`, `task_id`, `expires_in` and
//! `interval`; the agent then collects the mandate with
//! `grant_type=`[`APPROVAL_GRANT_TYPE`], `request_id`, an `actor_token`
//! bound to the request id (its `sth` is the hash of the id) with its
//! `actor_token_type`, and optionally `wait` (seconds, at most 60): 400
//! `authorization_pending` until someone decides, 403 `access_denied`, 400
//! `expired_token`, or the task's first mandate (once).

use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mandate_core::Right;

use super::IssuerState;
use crate::issuer::{ExchangeRequest, Exchanged};
use crate::oauth::{ErrorCode, Refusal};
pub use crate::requests::APPROVAL_GRANT_TYPE;
use crate::requests::MAX_WAIT;

/// The token-exchange grant type.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// Subject token types accepted.
pub const SUBJECT_TOKEN_TYPES: &[&str] = &[
    "urn:ietf:params:oauth:token-type:id_token",
    "urn:ietf:params:oauth:token-type:jwt",
];
/// The longest task description.
pub const MAX_DESCRIPTION: usize = 1024;
/// The most rights or services one request names.
pub const MAX_LIST: usize = 64;

/// A successful exchange (RFC 8693 §2.2.1).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct TokenResponse {
    /// The mandate.
    pub access_token: String,
    /// [`crate::MANDATE_TOKEN_TYPE`].
    pub issued_token_type: String,
    /// `N_A`: a mandate is not an OAuth access token.
    pub token_type: String,
    /// Seconds until the mandate expires.
    pub expires_in: u64,
    /// The rights granted (space-separated), which may be fewer than asked.
    pub scope: String,
    /// The task the mandate belongs to.
    pub task_id: String,
}

impl TokenResponse {
    pub(crate) fn from_issued(issued: crate::Issued) -> TokenResponse {
        TokenResponse {
            access_token: issued.token,
            issued_token_type: crate::MANDATE_TOKEN_TYPE.into(),
            token_type: "N_A".into(),
            expires_in: issued.expires_in,
            scope: issued
                .rights
                .iter()
                .map(|r| format!("{}:{}", r.service, r.operation))
                .collect::<Vec<_>>()
                .join(" "),
            task_id: issued.task,
        }
    }
}

pub(crate) fn no_store(body: TokenResponse) -> Response {
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The handler.
pub async fn exchange(
    State(state): State<IssuerState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match run(&state, &headers, &body).await {
        Ok(response) => no_store(response),
        Err(refusal) => refusal.into_response(),
    }
}

async fn run(
    state: &IssuerState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<TokenResponse, Refusal> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
        .unwrap_or(false);
    if !form {
        return Err(Refusal::request(
            "the token endpoint takes application/x-www-form-urlencoded",
        ));
    }
    let request = match parse_grant(body)? {
        Grant::Exchange(request) => request,
        Grant::Approval {
            request_id,
            actor_token,
            wait,
        } => {
            let issued = state
                .negotiator
                .collect(request_id, actor_token, wait)
                .await?;
            return Ok(TokenResponse::from_issued(issued));
        }
    };
    let now = SystemTime::now();
    let issuer = state.issuer.clone();
    let negotiator = state.negotiator.clone();
    let identity = issuer.identify(&request, now).await?;
    let issued = tokio::task::spawn_blocking(move || {
        let principal = identity.principal.clone();
        match issuer.open(&identity, &request, now)? {
            Exchanged::Issued(issued) => Ok(issued),
            Exchanged::Ask {
                task,
                rights,
                reason,
            } => {
                let refusal = negotiator.defer(&task, rights, reason, now)?;
                Err(issuer.refused(refusal, Some(&principal)))
            }
        }
    })
    .await
    .map_err(|_| Refusal::internal())??;
    Ok(TokenResponse::from_issued(issued))
}

/// A parsed token request.
#[derive(Debug)]
pub enum Grant {
    /// A token exchange.
    Exchange(ExchangeRequest),
    /// Collecting an exchange a person approved.
    Approval {
        /// The request.
        request_id: String,
        /// The agent's actor token, bound to the request id.
        actor_token: String,
        /// How long to wait for a decision.
        wait: Duration,
    },
}

/// Parses the form of either grant.
///
/// # Errors
/// As [`parse`].
pub fn parse_grant(body: &[u8]) -> Result<Grant, Refusal> {
    let mut grant = None;
    for (key, value) in url::form_urlencoded::parse(body) {
        if key == "grant_type" {
            if grant.is_some() {
                return Err(Refusal::request("parameter `grant_type` is repeated"));
            }
            grant = Some(value.into_owned());
        }
    }
    if grant.as_deref() != Some(APPROVAL_GRANT_TYPE) {
        return parse(body).map(Grant::Exchange);
    }
    let mut single: std::collections::HashMap<String, String> = Default::default();
    for (key, value) in url::form_urlencoded::parse(body) {
        if single.insert(key.to_string(), value.to_string()).is_some() {
            return Err(Refusal::request(format!("parameter `{key}` is repeated")));
        }
    }
    let need = |name: &str| {
        single
            .get(name)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| Refusal::request(format!("missing parameter `{name}`")))
    };
    if need("actor_token_type")? != crate::ACTOR_TOKEN_TYPE {
        return Err(Refusal::request(format!(
            "actor_token_type must be {}",
            crate::ACTOR_TOKEN_TYPE
        )));
    }
    let request_id = need("request_id")?;
    if request_id.len() > 64 {
        return Err(Refusal::request("request_id is too long"));
    }
    let wait = match single.get("wait") {
        None => Duration::ZERO,
        Some(text) => {
            let secs = text
                .trim()
                .parse::<u64>()
                .map_err(|_| Refusal::request("wait must be a number of seconds"))?;
            Duration::from_secs(secs).min(MAX_WAIT)
        }
    };
    Ok(Grant::Approval {
        request_id,
        actor_token: need("actor_token")?,
        wait,
    })
}

/// Parses the form.
///
/// # Errors
/// `invalid_request`, `unsupported_grant_type`, `invalid_scope`.
pub fn parse(body: &[u8]) -> Result<ExchangeRequest, Refusal> {
    let mut single: std::collections::HashMap<String, String> = Default::default();
    let mut services: Vec<String> = Vec::new();
    for (key, value) in url::form_urlencoded::parse(body) {
        match key.as_ref() {
            "audience" | "resource" => {
                if services.len() >= MAX_LIST {
                    return Err(Refusal::request("too many audience or resource values"));
                }
                let service = value.trim();
                mandate_core::check_name("service", service)
                    .map_err(|e| Refusal::new(ErrorCode::InvalidTarget, format!("{key}: {e}")))?;
                if !services.iter().any(|s| s == service) {
                    services.push(service.to_owned());
                }
            }
            _ => {
                if single.insert(key.to_string(), value.to_string()).is_some() {
                    return Err(Refusal::request(format!("parameter `{key}` is repeated")));
                }
            }
        }
    }
    let take = |name: &str| single.get(name).map(String::as_str);
    let need = |name: &str| {
        take(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Refusal::request(format!("missing parameter `{name}`")))
    };
    let grant = need("grant_type")?;
    if grant != GRANT_TYPE {
        return Err(Refusal::new(
            ErrorCode::UnsupportedGrantType,
            "only token exchange is supported",
        ));
    }
    let subject_type = need("subject_token_type")?;
    if !SUBJECT_TOKEN_TYPES.contains(&subject_type) {
        return Err(Refusal::request(
            "subject_token_type must be an ID token or a JWT",
        ));
    }
    let actor_type = need("actor_token_type")?;
    if actor_type != crate::ACTOR_TOKEN_TYPE {
        return Err(Refusal::request(format!(
            "actor_token_type must be {}",
            crate::ACTOR_TOKEN_TYPE
        )));
    }
    if let Some(wanted) = take("requested_token_type") {
        if wanted != crate::MANDATE_TOKEN_TYPE {
            return Err(Refusal::request(format!(
                "this issuer issues only {}",
                crate::MANDATE_TOKEN_TYPE
            )));
        }
    }
    let scope = need("scope")?;
    let mut rights = Vec::new();
    for item in scope.split(' ').filter(|s| !s.is_empty()) {
        if rights.len() >= MAX_LIST {
            return Err(Refusal::new(
                ErrorCode::InvalidScope,
                "too many rights in scope",
            ));
        }
        let right: Right = item
            .parse()
            .map_err(|e| Refusal::new(ErrorCode::InvalidScope, format!("{e}")))?;
        rights.push(right);
    }
    let description = take("task_description").unwrap_or("").to_owned();
    if description.len() > MAX_DESCRIPTION {
        return Err(Refusal::request(format!(
            "task_description is longer than {MAX_DESCRIPTION} bytes"
        )));
    }
    let ttl = match take("requested_ttl") {
        None => None,
        Some(text) => Some(Duration::from_secs(text.trim().parse::<u64>().map_err(
            |_| Refusal::request("requested_ttl must be a number of seconds"),
        )?)),
    };
    Ok(ExchangeRequest {
        subject_token: need("subject_token")?.to_owned(),
        actor_token: need("actor_token")?.to_owned(),
        rights,
        audience: services,
        description,
        ttl,
    })
}
