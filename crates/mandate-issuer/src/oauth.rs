//! The token endpoint's error shape (RFC 6749 §5.2, RFC 8693 §2.2.2).
//!
//! Every refusal of `POST /oauth2/token` is a [`Refusal`]: an error code, a
//! description for people, and `Cache-Control: no-store`. Malformed or
//! untrusted input is 400 (RFC 6749 §5.2: `invalid_request`,
//! `invalid_grant`, `invalid_scope`, `invalid_target`); a valid request the
//! issuance policy refuses is 403 (`access_denied`, or Mandate's
//! `approval_required` when a person must approve). A refusal is decided
//! before anything is minted or stored. Internal failures are 500 with
//! `server_error`, unavailable stores 503, their detail logged, never sent.

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
}

impl Refusal {
    /// A refusal with `code`.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Refusal {
        Refusal {
            code,
            description: description.into(),
        }
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
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            error: self.code.as_str().to_owned(),
            error_description: self.description,
        };
        let mut response = (self.code.status(), Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
