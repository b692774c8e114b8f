//! The ingest boundary's one error type, mapped to status codes in one
//! place, and answered in the calling provider's own error shape.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::Refusal;
use crate::canonical::{FromTheFuture, Provider};
use crate::config::RateLimit;
use crate::http::{RequestId, RETRY_AFTER_SECS};
use crate::providers::Rejection;
use crate::storage::{Outcome, StorageError};

/// Why a request to a provider path was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    /// A field the API refuses, answered 422 naming it.
    #[error("field `{field}` {message}")]
    Unprocessable { field: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the body is larger than server.body_limit ({limit} bytes)")]
    TooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error(
        "the body did not arrive within server.body_timeout ({}s after the headers); \
         nothing was recorded",
        limit.as_secs_f64()
    )]
    BodyTimeout { limit: Duration },
    /// A timed-out write may still land once storage catches up, so the
    /// answer cannot say nothing was recorded; a retry is deduplicated.
    #[error(
        "{0}; whether this update was recorded is unknown: retry it as it is, \
         a repeat is recognised and never applied twice"
    )]
    Storage(#[from] StorageError),
    #[error(
        "store '{store}' is over its {provider} limit (stores.{store}.limits: {rate} requests a \
         second, burst {burst}); nothing was recorded, retry after {retry} s",
        rate = limit.rate,
        burst = limit.burst,
        retry = retry_after_secs(*retry_after)
    )]
    Limited {
        store: String,
        provider: Provider,
        limit: RateLimit,
        retry_after: Duration,
    },
}

/// `Retry-After` in whole seconds, rounded up so a retry is not early.
fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl From<FromTheFuture> for IngestError {
    fn from(e: FromTheFuture) -> Self {
        Self::Invalid(e.to_string())
    }
}

impl From<Rejection> for IngestError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::Unauthorized(m) => Self::Unauthorized(m),
            Rejection::Forbidden(m) => Self::Forbidden(m),
            Rejection::Invalid(m) => Self::Invalid(m),
            Rejection::Unprocessable { field, message } => Self::Unprocessable { field, message },
        }
    }
}

impl IngestError {
    /// The one mapping from error to HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Storage(StorageError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Storage(StorageError::Corrupt(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Limited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// How the stats count this refusal: unauthorized, invalid, or not at
    /// all (an unknown fulfillment is the caller's question, not a bad
    /// delivery).
    fn outcome(&self) -> Option<Outcome> {
        match self {
            Self::Unauthorized(_) | Self::Forbidden(_) => Some(Outcome::Unauthorized),
            Self::Invalid(_)
            | Self::Unprocessable { .. }
            | Self::TooLarge { .. }
            | Self::UnsupportedMediaType(_)
            | Self::BodyTimeout { .. } => Some(Outcome::Invalid),
            Self::Limited { .. } => Some(Outcome::Limited),
            Self::NotFound(_) | Self::Conflict(_) | Self::Storage(_) => None,
        }
    }
}

/// A provider's error body: the shape its paths answer every error in,
/// with the request's id as an extra key beside the provider's own.
pub trait ErrorBody: Serialize + 'static {
    /// The provider whose paths answer in this shape.
    const PROVIDER: Provider;

    /// The body of an error answered with `status`.
    fn new(status: StatusCode, message: String, request_id: Option<RequestId>) -> Self;

    /// The body of a 422 refusing field `field`; in words, unless the
    /// provider has a shape for it.
    fn unprocessable(field: &str, message: &str, request_id: Option<RequestId>) -> Self
    where
        Self: Sized,
    {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("field `{field}` {message}"),
            request_id,
        )
    }
}

/// Shopify's error body: `{"errors": "message"}`, or for a 422 the
/// fields at fault, each with its messages:
/// `{"errors": {"status": ["is not included in the list"]}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShopifyErrorBody {
    pub errors: ShopifyErrors,
    /// This answer's `X-Request-Id`, to find the request in the gateway's logs.
    #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub request_id: Option<RequestId>,
}

impl ErrorBody for ShopifyErrorBody {
    const PROVIDER: Provider = Provider::Shopify;

    fn new(_: StatusCode, message: String, request_id: Option<RequestId>) -> Self {
        Self {
            errors: ShopifyErrors::Message(message),
            request_id,
        }
    }

    fn unprocessable(field: &str, message: &str, request_id: Option<RequestId>) -> Self {
        let fields = BTreeMap::from([(field.to_owned(), vec![message.to_owned()])]);
        Self {
            errors: ShopifyErrors::Fields(fields),
            request_id,
        }
    }
}

/// What Shopify's `errors` holds: a message, or messages per field (its
/// REST API's validation errors, answered 422).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ShopifyErrors {
    Message(String),
    Fields(BTreeMap<String, Vec<String>>),
}

/// Carriyo's error body, as its API answers errors
/// (https://carriyo.com/docs/api/conventions/): `{"status": "403",
/// "timestamp": "2025-11-03T09:15:00.000+00:00", "errors": ["..."]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CarriyoErrorBody {
    /// The HTTP status code, as a string.
    #[schema(example = "403")]
    pub status: String,
    /// When the error was answered, with its offset as Carriyo writes it.
    #[schema(example = "2025-11-03T09:15:00.000+00:00")]
    pub timestamp: String,
    /// What is wrong, in words naming the header, field or value.
    pub errors: Vec<String>,
    /// This answer's `X-Request-Id`, to find the request in the gateway's logs.
    #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub request_id: Option<RequestId>,
}

impl ErrorBody for CarriyoErrorBody {
    const PROVIDER: Provider = Provider::Carriyo;

    fn new(status: StatusCode, message: String, request_id: Option<RequestId>) -> Self {
        Self {
            status: status.as_u16().to_string(),
            timestamp: carriyo_timestamp(Utc::now()),
            errors: vec![message],
            request_id,
        }
    }
}

/// A time as Carriyo's API answers it: `yyyy-MM-dd'T'HH:mm:ss.SSSXXX`,
/// written with `+00:00` as its example shows.
pub fn carriyo_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string()
}

/// Redo's error body: `{"error": "message"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RedoErrorBody {
    pub error: String,
    /// This answer's `X-Request-Id`, to find the request in the gateway's logs.
    #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub request_id: Option<RequestId>,
}

impl ErrorBody for RedoErrorBody {
    const PROVIDER: Provider = Provider::Redo;

    fn new(_: StatusCode, message: String, request_id: Option<RequestId>) -> Self {
        Self {
            error: message,
            request_id,
        }
    }
}

/// An [`IngestError`] answered in the error shape `B` of a provider's paths.
#[derive(thiserror::Error)]
#[error("{error}")]
pub struct ProviderError<B> {
    error: IngestError,
    shape: PhantomData<fn() -> B>,
}

/// What Shopify's paths answer errors with.
pub type ShopifyError = ProviderError<ShopifyErrorBody>;
/// What Carriyo's paths answer errors with.
pub type CarriyoError = ProviderError<CarriyoErrorBody>;
/// What the Redo-style paths answer errors with.
pub type RedoError = ProviderError<RedoErrorBody>;

impl<B, E: Into<IngestError>> From<E> for ProviderError<B> {
    fn from(error: E) -> Self {
        Self {
            error: error.into(),
            shape: PhantomData,
        }
    }
}

impl<B> fmt::Debug for ProviderError<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl<B: ErrorBody> ResponseError for ProviderError<B> {
    fn status_code(&self) -> StatusCode {
        self.error.status()
    }

    fn error_response(&self) -> HttpResponse {
        refusal(
            &self.error,
            Some(B::PROVIDER),
            |status, request_id| match &self.error {
                IngestError::Unprocessable { field, message } => {
                    B::unprocessable(field, message, request_id)
                }
                error => B::new(status, error.to_string(), request_id),
            },
        )
    }
}

/// The answer to `error` with the body `body` makes, marked for
/// [`super::count_refusals`] as `provider`'s (none: a provider that does
/// not exist, whose refusals are not counted).
fn refusal<T: Serialize>(
    error: &IngestError,
    provider: Option<Provider>,
    body: impl FnOnce(StatusCode, Option<RequestId>) -> T,
) -> HttpResponse {
    let status = error.status();
    let mut response = HttpResponse::build(status);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
    }
    if matches!(error, IngestError::BodyTimeout { .. }) {
        // The rest of the body may still trickle in: the connection
        // cannot carry another request.
        response.force_close();
    }
    if let IngestError::Limited { retry_after, .. } = error {
        response.insert_header((header::RETRY_AFTER, retry_after_secs(*retry_after)));
    }
    let mut response = response.json(body(status, RequestId::current()));
    if let Some(provider) = provider {
        response.extensions_mut().insert(Refusal {
            provider,
            outcome: error.outcome(),
            storage_failed: matches!(error, IngestError::Storage(_)),
        });
    }
    response
}

/// A data-defined provider's error body: `{"error": "message"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DefinedErrorBody {
    /// What is wrong, naming the header, pointer or value.
    pub error: String,
    /// This answer's `X-Request-Id`, to find the request in the gateway's logs.
    #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub request_id: Option<RequestId>,
}

/// An [`IngestError`] on `POST /webhooks/{provider}/{store}`, counted as
/// the provider's once the provider is known.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct DefinedError {
    pub provider: Option<Provider>,
    pub error: IngestError,
}

impl DefinedError {
    /// `error`, refused on `provider`'s route.
    pub fn of(provider: Provider, error: impl Into<IngestError>) -> Self {
        Self {
            provider: Some(provider),
            error: error.into(),
        }
    }
}

impl ResponseError for DefinedError {
    fn status_code(&self) -> StatusCode {
        self.error.status()
    }

    fn error_response(&self) -> HttpResponse {
        refusal(&self.error, self.provider, |_, request_id| {
            DefinedErrorBody {
                error: self.error.to_string(),
                request_id,
            }
        })
    }
}
