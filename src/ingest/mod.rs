//! The HTTP edge for providers: reads and bounds bodies, finds the store,
//! hands bytes and headers to the provider's adapter, and records what it
//! makes of them with one atomic claim + append. Each provider's file here
//! holds only its routes and answers.

mod carriyo;
mod defined;
mod error;
mod redo;
mod refusals;
mod shopify;
mod shopify_graphql;
mod stores;

pub use defined::{DefinedWebhookAnswer, IgnoredEvent};
pub use error::{
    carriyo_timestamp, CarriyoError, CarriyoErrorBody, DefinedError, DefinedErrorBody, ErrorBody,
    IngestError, ProviderError, RedoError, RedoErrorBody, ShopifyError, ShopifyErrorBody,
    ShopifyErrors,
};
pub use refusals::{RefusalTally, FLUSH_EVERY};
pub use shopify::{IgnoredTopic, WebhookAnswer};
pub use stores::{StoreDirectory, StoreRef};

use std::future::Future;
use std::time::Duration;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::CONTENT_TYPE;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse};
use chrono::Utc;
use futures_util::StreamExt;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::app::AppState;
use crate::canonical::{CanonicalEvent, FromTheFuture, Observation, Provider};
use crate::config::ServerSettings;
use crate::storage::{Admission, Claim, Outcome};

/// Registers every provider path, each with its OpenAPI operation. actix
/// tries routes in the order added, and each path with a `{segment}` costs
/// a regex match whether it matches or not: the static webhook paths, most
/// of the traffic, go first.
pub fn routes(cfg: &mut ServiceConfig) {
    shopify::webhook_routes(cfg);
    carriyo::routes(cfg);
    redo::routes(cfg);
    defined::routes(cfg);
    shopify::rest_routes(cfg);
    shopify_graphql::routes(cfg);
}

/// Reads a JSON body within the server's size and time limits, once the
/// headers are admitted (see [`admit_json_body`]).
pub async fn read_json_body(
    req: &HttpRequest,
    payload: web::Payload,
    server: &ServerSettings,
) -> Result<Bytes, IngestError> {
    admit_json_body(req, server)?.read(payload).await
}

/// A request whose headers admit a JSON body that has not been read yet:
/// whatever can be refused without the body (route, store, credentials,
/// media type, declared size) is refused before a byte of it is buffered.
#[derive(Debug)]
pub struct PendingBody {
    declared: Option<usize>,
    limit: usize,
    timeout: Duration,
}

/// Checks the headers that announce the body: `Content-Type` is JSON and
/// `Content-Length`, when sent, is within `server.body_limit`.
pub fn admit_json_body(
    req: &HttpRequest,
    server: &ServerSettings,
) -> Result<PendingBody, IngestError> {
    match req.headers().get(CONTENT_TYPE).map(|v| v.to_str()) {
        None => {
            return Err(IngestError::UnsupportedMediaType(
                "header Content-Type is missing; send application/json".into(),
            ))
        }
        Some(Ok(v)) if is_json(v) => {}
        Some(v) => {
            return Err(IngestError::UnsupportedMediaType(format!(
                "header Content-Type '{}' is not application/json",
                v.unwrap_or("(unreadable)")
            )))
        }
    }
    let limit = server.body_limit;
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(IngestError::TooLarge { limit });
    }
    Ok(PendingBody {
        declared,
        limit,
        timeout: server.body_timeout,
    })
}

impl PendingBody {
    /// Reads the body: 413 past the limit, 408 when it has not all
    /// arrived within the timeout, so a stalled sender frees its buffer.
    pub async fn read(self, mut payload: web::Payload) -> Result<Bytes, IngestError> {
        let Self {
            declared,
            limit,
            timeout,
        } = self;
        let read = async move {
            let mut body = BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    IngestError::Invalid(format!("the body could not be read: {e}"))
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(IngestError::TooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body.freeze())
        };
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| IngestError::BodyTimeout { limit: timeout })?
    }
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Takes a token from `store`'s bucket for `provider` when the store has
/// `[stores.NAME.limits]`, after the request is authenticated (so only
/// the store's own credentials spend its tokens) and before its body is
/// parsed. No limit, no storage call; storage unreachable is the 503 it
/// always is, never an unlimited pass.
pub async fn within_limit(
    state: &AppState,
    store: &str,
    provider: Provider,
) -> Result<(), IngestError> {
    let Some(limit) = state.stores.limit(store) else {
        return Ok(());
    };
    match state.storage.take_token(store, provider, limit).await? {
        Admission::Admitted => Ok(()),
        Admission::Limited { retry_after } => Err(IngestError::Limited {
            store: store.to_owned(),
            provider,
            limit: *limit,
            retry_after,
        }),
    }
}

/// An event recorded in the log, or recognised as already recorded.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub event: CanonicalEvent,
    pub claim: Claim,
}

impl Recorded {
    /// Whether this delivery was seen before.
    pub fn is_duplicate(&self) -> bool {
        matches!(self.claim, Claim::Duplicate { .. })
    }

    /// The id of the event that holds this news: ours, or the original's.
    pub fn event_id(&self) -> crate::canonical::EventId {
        match self.claim {
            Claim::Accepted => self.event.id,
            Claim::Duplicate { original } => original,
        }
    }
}

/// Completes an observation into an event received now; 400 naming the
/// field when it is dated further ahead than `core.max_clock_skew`.
pub fn admit(state: &AppState, observation: Observation) -> Result<CanonicalEvent, FromTheFuture> {
    CanonicalEvent::from_observation(observation, Utc::now(), state.settings.core.max_clock_skew)
}

/// Completes an observation into an event and records it: dedup claim and
/// log append in one atomic step.
pub async fn record(state: &AppState, observation: Observation) -> Result<Recorded, IngestError> {
    record_event(state, admit(state, observation)?).await
}

/// Records an admitted event: dedup claim and log append in one atomic
/// step.
#[tracing::instrument(level = "debug", skip_all, fields(provider = %event.provider, fulfillment = %event.key))]
pub async fn record_event(
    state: &AppState,
    event: CanonicalEvent,
) -> Result<Recorded, IngestError> {
    let claim = state.storage.claim_and_append(&event).await?;
    count_claim(state, &event, claim);
    Ok(Recorded { event, claim })
}

/// Counts how offering `event` to the log went, on the metrics.
pub fn count_claim(state: &AppState, event: &CanonicalEvent, claim: Claim) {
    state.metrics.count_recorded(event, claim);
    if let Claim::Duplicate { original } = claim {
        tracing::debug!(provider = %event.provider, %original, "duplicate delivery");
    }
}

/// The answer to a webhook delivery: the same 200 for a first delivery
/// and a duplicate (so the provider stops retrying), saying which it was.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Acknowledgement {
    /// Always true: the delivery is recorded (now or before).
    pub accepted: bool,
    pub duplicate: bool,
    /// The event that holds this news: the new one, or the original's.
    pub event_id: crate::canonical::EventId,
}

impl Recorded {
    /// The acknowledgement of this delivery, as a 200.
    pub fn acknowledgement(&self) -> HttpResponse {
        HttpResponse::Ok().json(self.acknowledgement_body())
    }

    /// What the acknowledgement says.
    pub fn acknowledgement_body(&self) -> Acknowledgement {
        Acknowledgement {
            accepted: true,
            duplicate: self.is_duplicate(),
            event_id: self.event_id(),
        }
    }
}

/// What the answer to a refused request carries for [`count_refusals`],
/// which has the application's state that rendering an error lacks.
#[derive(Debug, Clone, Copy)]
struct Refusal {
    provider: Provider,
    /// How the stats count it, if they do.
    outcome: Option<Outcome>,
    /// Whether storage failed, which the metrics count.
    storage_failed: bool,
}

/// Counts each request a provider path refused, in the stats and the
/// metrics, before it is answered: the one place ingest's refusals are
/// counted and logged. For `App::wrap_fn`; an answer that is not a
/// refusal passes through untouched.
pub fn count_refusals<S, B>(
    req: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let answer = service.call(req);
    async move {
        let response = answer.await?;
        let refusal = response.response().extensions().get::<Refusal>().copied();
        if let Some(refusal) = refusal {
            if let Some(state) = response.request().app_data::<web::Data<AppState>>() {
                let error = response.response().error().map(ToString::to_string);
                refusal.count(state, &error.unwrap_or_default());
            }
        }
        Ok(response)
    }
}

impl Refusal {
    /// Counting never changes the answer, nor writes to storage: the
    /// stats get the tally in batches.
    fn count(self, state: &AppState, error: &str) {
        let Self {
            provider,
            outcome,
            storage_failed,
        } = self;
        if let Some(outcome) = outcome {
            tracing::info!(%provider, outcome = outcome.as_str(), error, "request refused");
            state.metrics.count_webhook(provider, outcome);
            state.refusals.add(provider, outcome);
        } else if storage_failed {
            state.metrics.count_storage_error("ingest");
            tracing::warn!(%provider, error, "request failed");
        } else {
            tracing::debug!(%provider, error, "request answered with an error");
        }
    }
}
