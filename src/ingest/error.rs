//! The ingest boundary's one error type, mapped to status codes in one
//! place, and answered in the calling provider's own error shape.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::canonical::Provider;
use crate::providers::Rejection;
use crate::storage::StorageError;

/// Seconds a client is told to wait when storage is down.
pub const RETRY_AFTER_SECS: u32 = 5;

/// Why a request to a provider path was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the body is larger than server.body_limit ({limit} bytes)")]
    TooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}; nothing was recorded, retry later")]
    Storage(#[from] StorageError),
}

impl From<Rejection> for IngestError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::Unauthorized(m) => Self::Unauthorized(m),
            Rejection::Invalid(m) => Self::Invalid(m),
        }
    }
}

impl IngestError {
    /// The one mapping from error to HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Storage(StorageError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Storage(StorageError::Corrupt(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether this counts as an unauthorized request in the stats.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Self::Unauthorized(_))
    }

    /// Whether this counts as an invalid request in the stats.
    pub fn is_invalid(&self) -> bool {
        matches!(
            self,
            Self::Invalid(_) | Self::TooLarge { .. } | Self::UnsupportedMediaType(_)
        )
    }
}

/// Whose error shape an answer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{"errors": "message"}`
    Shopify,
    /// `{"errors": [{"code": ..., "message": ...}]}`
    Carriyo,
    /// `{"error": "message"}`, also used by the ops API.
    Redo,
}

impl ErrorShape {
    /// The shape a provider's own paths answer errors in.
    pub fn of(provider: Provider) -> Self {
        match provider {
            Provider::Shopify => Self::Shopify,
            Provider::Carriyo => Self::Carriyo,
            Provider::Redo => Self::Redo,
        }
    }
}

/// Shopify's error body: `{"errors": "message"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShopifyErrorBody {
    pub errors: String,
}

/// Carriyo's error body: `{"errors": [{"code": ..., "message": ...}]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CarriyoErrorBody {
    pub errors: Vec<CarriyoErrorDetail>,
}

/// One error of a Carriyo error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct CarriyoErrorDetail {
    /// The HTTP status's reason phrase, such as `Bad Request`.
    pub code: String,
    pub message: String,
}

/// Redo's error body, which the ops API uses too: `{"error": "message"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RedoErrorBody {
    pub error: String,
}

/// An [`IngestError`] answered in a provider's shape.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ProviderError {
    pub shape: ErrorShape,
    pub error: IngestError,
}

impl ResponseError for ProviderError {
    fn status_code(&self) -> StatusCode {
        self.error.status()
    }

    fn error_response(&self) -> HttpResponse {
        let message = self.error.to_string();
        let mut response = HttpResponse::build(self.status_code());
        if self.status_code() == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()));
        }
        match self.shape {
            ErrorShape::Shopify => response.json(ShopifyErrorBody { errors: message }),
            ErrorShape::Redo => response.json(RedoErrorBody { error: message }),
            ErrorShape::Carriyo => response.json(CarriyoErrorBody {
                errors: vec![CarriyoErrorDetail {
                    code: self
                        .status_code()
                        .canonical_reason()
                        .unwrap_or("error")
                        .to_owned(),
                    message,
                }],
            }),
        }
    }
}
