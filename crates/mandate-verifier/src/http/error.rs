//! The one error shape of every Mandate HTTP API.
//!
//! Every refusal is `{"error": {"code", "message"}}` ([`ErrorBody`]) with a
//! 4xx or 5xx status: the authorization API, the proxy endpoint, the
//! registry, the operations endpoints and the middleware all answer through
//! [`ApiError`], so a client parses one shape. Internal detail is logged by
//! whoever builds the error, never sent: a 500 says only "internal error".

use axum::extract::rejection::{BytesRejection, FailedToBufferBody, JsonRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::pool::{PoolError, RETRY_AFTER_SECS};
use crate::{ErrorBody, ErrorDetail};

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Sent as `Retry-After` (seconds) when the refusal is about load.
    retry_after: Option<u64>,
    /// Sent as `WWW-Authenticate` on a 401.
    challenge: Option<HeaderValue>,
}

impl ApiError {
    /// An error with `status`, a stable machine-readable `code` and a
    /// message for people.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            challenge: None,
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 500. The cause must already be logged; the client learns nothing of it.
    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// 503 with `Retry-After`: the server cannot answer now, and says nothing
    /// about the request.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message).retry_after(RETRY_AFTER_SECS)
    }

    /// Adds `Retry-After: seconds`.
    #[must_use]
    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    /// Adds a `WWW-Authenticate` challenge (RFC 9110 §11.6.1), as a 401 must.
    #[must_use]
    pub fn challenge(mut self, value: HeaderValue) -> ApiError {
        self.challenge = Some(value);
        self
    }

    /// The status sent.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code sent.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message sent.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(challenge) = self.challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

impl From<PoolError> for ApiError {
    fn from(error: PoolError) -> ApiError {
        match error {
            PoolError::Failed => ApiError::internal(),
            // Overload and deadline say nothing about the caller: fail closed
            // with a retryable answer.
            _ => ApiError::unavailable(error.code(), error.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        // axum answers 422 for well-formed JSON of the wrong shape; these APIs
        // answer 400 for every malformed body, 413 only when the body limit was
        // hit, and 415 for a missing JSON content type. A body that could not be
        // read for another reason (the client went away mid-upload) is a 400:
        // matching the variant, not the status, keeps that distinction explicit.
        let (status, code) = match &rejection {
            JsonRejection::BytesRejection(BytesRejection::FailedToBufferBody(
                FailedToBufferBody::LengthLimitError(_),
            )) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            JsonRejection::BytesRejection(_) => (StatusCode::BAD_REQUEST, "body_unreadable"),
            JsonRejection::MissingJsonContentType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            _ => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "request body larger than this endpoint accepts (its limit is in bytes, see the API document)".to_owned()
        } else {
            rejection.body_text()
        };
        ApiError::new(status, code, message)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::bad_request("bad_request", rejection.body_text())
    }
}

/// The fallback for unknown routes: a JSON 404.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// The fallback for a known route called with another method: a JSON 405.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}
