//! The middleware's refusals as HTTP responses, in the one JSON error shape
//! (`{"error": {"code", "message"}}`, [`ErrorBody`]), with the headers a
//! refusal needs: `WWW-Authenticate` on 401, `Retry-After` on 503.
//!
//! A message must never carry internal detail or a token.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::pool::{PoolError, RETRY_AFTER_SECS};
use crate::{ErrorBody, ErrorDetail};

/// One refusal.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// `WWW-Authenticate` value (401 only).
    challenge: Option<HeaderValue>,
    /// `Retry-After` seconds (503 only).
    retry_after: Option<u64>,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
            challenge: None,
            retry_after: None,
        }
    }

    /// 401 with the `challenge` naming the realm (and `error=` for a token or
    /// proof that was presented and refused).
    pub(crate) fn unauthorized(
        challenge: HeaderValue,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Refusal {
            challenge: Some(challenge),
            ..Refusal::new(StatusCode::UNAUTHORIZED, code, message)
        }
    }

    /// 500 `internal`, saying nothing more.
    pub(crate) fn internal() -> Self {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl From<PoolError> for Refusal {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Failed => Refusal::internal(),
            // Load says nothing about the token: fail closed, retryably.
            _ => Refusal {
                retry_after: Some(RETRY_AFTER_SECS),
                ..Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    error.code(),
                    error.to_string(),
                )
            },
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(challenge) = self.challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
