//! The token endpoint's error shape (RFC 6749 §5.2, RFC 8693 §2.2.2).
//!
//! Every refusal of `POST /oauth2/token` is a [`Refusal`]: an error code, a
//! description for people, and `Cache-Control: no-store`. Malformed or
//! untrusted input is 400 (RFC 6749 §5.2: `invalid_request`,
//! `invalid_grant`, `invalid_scope`, `invalid_target`); a valid request the
//! issuance policy refuses is 403 (`access_denied`, or Mandate's
//! `approval_required` when a person must approve). A refusal is decided
//! before anything is minted; the one exception is `approval_required`,
//! which stores the task waiting for approval and the request a person
//! decides, and names them ([`PendingApproval`]) so the agent can collect
//! the mandate with the approval grant (RFC 8628 style: `authorization_pending`
//! while nobody decided, `access_denied`, `expired_token`). Internal
//! failures are 500 with `server_error`, unavailable stores 503, their
//! detail logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An RFC 6749 §5.2 error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Missing, repeated or malformed parameter, unsupported token type,
    /// oversized token.
    InvalidRequest,
    /// The subject or actor token is invalid, expired, not for us, replayed.
    InvalidGrant,
    /// The requested rights are malformed or none could be granted.
    InvalidScope,
    /// The requested audience or resource is not acceptable.
    InvalidTarget,
    /// A grant type other than token exchange.
    UnsupportedGrantType,
    /// The issuance policy refused (`access_denied`, RFC 6749 §4.1.2.1).
    AccessDenied,
    /// The issuance policy needs a person's approval before granting
    /// (Mandate's extension code `approval_required`).
    ApprovalRequired,
    /// The approval a collecting agent waits for is still pending
    /// (RFC 8628 §3.5).
    AuthorizationPending,
    /// The request expired before anyone decided it (RFC 8628 §3.5).
    ExpiredToken,
    /// Something failed inside the issuer.
    ServerError,
    /// The issuer cannot answer now (a store or the revocation registry is
    /// unreachable).
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ApprovalRequired => "approval_required",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::ExpiredToken => "expired_token",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            ErrorCode::AccessDenied | ErrorCode::ApprovalRequired => StatusCode::FORBIDDEN,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A refused token request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct Refusal {
    /// The error code.
    pub code: ErrorCode,
    /// Why, for people (`error_description`). Never contains a token.
    pub description: String,
    /// The request a person must decide, when one was stored
    /// (`approval_required`, `authorization_pending`).
    pub pending: Option<PendingApproval>,
}

/// Where an agent collects a mandate that waits for a person's approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingApproval {
    /// The request the task's principal or an approver decides.
    pub request_id: String,
    /// The task that opens once it is approved.
    pub task_id: String,
    /// Seconds until the request expires undecided.
    pub expires_in: u64,
    /// Seconds an agent should wait between polls that do not wait.
    pub interval: u64,
}

impl Refusal {
    /// A refusal with `code`.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Refusal {
        Refusal {
            code,
            description: description.into(),
            pending: None,
        }
    }

    /// The same refusal naming the request a person must decide.
    #[must_use]
    pub fn with_pending(mut self, pending: PendingApproval) -> Refusal {
        self.pending = Some(pending);
        self
    }

    /// `invalid_request`.
    pub fn request(description: impl Into<String>) -> Refusal {
        Refusal::new(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_grant`.
    pub fn grant(description: impl Into<String>) -> Refusal {
        Refusal::new(ErrorCode::InvalidGrant, description)
    }

    /// `server_error`; the cause must already be logged.
    pub fn internal() -> Refusal {
        Refusal::new(ErrorCode::ServerError, "internal error")
    }

    /// The HTTP status this refusal is sent with.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
}

/// The JSON body of a refusal.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ErrorResponse {
    /// The code.
    pub error: String,
    /// The description.
    pub error_description: String,
    /// The request waiting for a person (`approval_required`,
    /// `authorization_pending`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The task that opens once the request is approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Seconds until the request expires undecided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// Seconds between polls that do not wait (RFC 8628 `interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let pending = self.pending;
        let body = ErrorResponse {
            error: self.code.as_str().to_owned(),
            error_description: self.description,
            request_id: pending.as_ref().map(|p| p.request_id.clone()),
            task_id: pending.as_ref().map(|p| p.task_id.clone()),
            expires_in: pending.as_ref().map(|p| p.expires_in),
            interval: pending.as_ref().map(|p| p.interval),
        };
        let mut response = (self.code.status(), Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
