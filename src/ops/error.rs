//! The ops API's one error type, mapped to status codes in one place and
//! answered as `{"error": "...", "requestId": "..."}`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::{RequestId, RETRY_AFTER_SECS};
use crate::storage::StorageError;

/// Why an ops request was not answered as asked.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("{0}")]
    Unauthorized(String),
    /// The token sees the data but its role may not act on it.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A change (a replay) that timed out may still land, so the answer
    /// does not claim nothing changed.
    #[error("{0}; whether a change took effect is unknown, retry later")]
    Storage(#[from] StorageError),
}

impl OpsError {
    /// A query string that does not parse.
    pub fn query(error: impl std::fmt::Display) -> Self {
        Self::Invalid(format!("query: {error}"))
    }
}

/// The ops API's error body: `{"error": "message"}`, as Redo's.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpsErrorBody {
    pub error: String,
    /// This answer's `X-Request-Id`, to find the request in the gateway's logs.
    #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub request_id: Option<RequestId>,
}

impl ResponseError for OpsError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Storage(StorageError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Storage(StorageError::Corrupt(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut response = HttpResponse::build(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
        }
        response.json(OpsErrorBody {
            error: self.to_string(),
            request_id: RequestId::current(),
        })
    }
}
