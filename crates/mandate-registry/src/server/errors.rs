//! Registry failures and refusals in the one error shape of every Mandate API.

use axum::http::StatusCode;
use mandate_verifier::http::ApiError;

use super::authorizer::WriteDenied;
use crate::error::{report, Error};

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        match &error {
            Error::UnknownKind(_)
            | Error::InvalidValue { .. }
            | Error::InvalidName { .. }
            | Error::TooLong { .. } => ApiError::bad_request("invalid_value", error.to_string()),
            Error::NotLiftable { .. } => ApiError::bad_request("not_liftable", error.to_string()),
            _ => {
                tracing::error!(error = %report(&error), "registry request failed");
                ApiError::internal()
            }
        }
    }
}

impl From<WriteDenied> for ApiError {
    fn from(denied: WriteDenied) -> ApiError {
        match denied {
            WriteDenied::Unauthenticated(message) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
            }
            WriteDenied::Forbidden(message) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            WriteDenied::Unavailable(message) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
        }
    }
}
