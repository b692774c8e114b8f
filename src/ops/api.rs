//! The admin API, `/api/v1`, behind the admin bearer tokens: what ops
//! people and the dashboard read.

use std::collections::BTreeMap;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::AppState;
use crate::canonical::{EventId, FulfillmentKey, Provider};
use crate::fulfillment::automations::{
    Delivery, DeliveryFilter, DeliveryState, FailureReason, Requeued,
};
use crate::fulfillment::FulfillmentView;
use crate::ingest::{ErrorShape, IngestError, ProviderError};
use crate::providers::verify::secret_matches;
use crate::storage::{EventFilter, Outcome};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .route(
                "/stores/{store}/orders/{order}/fulfillments/{fulfillment}",
                web::get().to(fulfillment),
            )
            .route("/events", web::get().to(events))
            .route("/stats", web::get().to(stats))
            .route("/unmapped", web::get().to(unmapped))
            .route("/backlog", web::get().to(backlog))
            .route("/automations", web::get().to(automations))
            .route("/deliveries", web::get().to(deliveries))
            .route("/dead-letters", web::get().to(dead_letters))
            .route("/dead-letters/replay", web::post().to(replay_dead_letters))
            .route(
                "/dead-letters/{id}/replay",
                web::post().to(replay_dead_letter),
            ),
    );
}

type ApiResult = Result<HttpResponse, ProviderError>;

/// Ops answers use the `{"error": ...}` shape, like Redo's.
pub(super) fn api_error(error: IngestError) -> ProviderError {
    ProviderError {
        shape: ErrorShape::Redo,
        error,
    }
}

/// Admits a request that carries one of the admin tokens.
pub fn require_admin(req: &HttpRequest, state: &AppState) -> Result<(), ProviderError> {
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if secret_matches(&state.settings.admin.tokens, token.trim()) => Ok(()),
        Some(_) => Err(api_error(IngestError::Unauthorized(
            "header Authorization carries a token that is not an admin token".into(),
        ))),
        None => Err(api_error(IngestError::Unauthorized(
            "header Authorization is missing; send Authorization: Bearer <admin token>".into(),
        ))),
    }
}

async fn fulfillment(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> ApiResult {
    require_admin(&req, &state)?;
    let (store, order_ref, fulfillment_ref) = path.into_inner();
    let key = FulfillmentKey {
        store,
        order_ref,
        fulfillment_ref,
    };
    match state
        .core
        .get(&key)
        .await
        .map_err(|e| api_error(e.into()))?
    {
        Some(f) => Ok(HttpResponse::Ok().json(FulfillmentView::ops(&f))),
        None => Err(api_error(IngestError::NotFound(format!(
            "no fulfillment {key} is known"
        )))),
    }
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    provider: Option<String>,
    store: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
}

async fn events(state: web::Data<AppState>, req: HttpRequest) -> ApiResult {
    require_admin(&req, &state)?;
    let query = web::Query::<EventsQuery>::from_query(req.query_string())
        .map_err(|e| api_error(IngestError::Invalid(format!("query: {e}"))))?
        .into_inner();
    let provider = query_word::<Provider>("provider", query.provider)?;
    let before = query
        .before
        .filter(|b| !b.is_empty())
        .map(|b| {
            b.parse::<EventId>().map_err(|_| {
                api_error(IngestError::Invalid(format!(
                    "query `before`: '{b}' is not an event id"
                )))
            })
        })
        .transpose()?;
    let limit = checked_limit(query.limit)?;
    let filter = EventFilter {
        provider,
        store: query.store.filter(|s| !s.is_empty()),
        before,
        limit,
    };
    let events = state
        .storage
        .recent_events(&filter)
        .await
        .map_err(|e| api_error(e.into()))?;
    Ok(HttpResponse::Ok().json(json!({ "events": events })))
}

async fn stats(state: web::Data<AppState>, req: HttpRequest) -> ApiResult {
    require_admin(&req, &state)?;
    let counted = state
        .storage
        .stats()
        .await
        .map_err(|e| api_error(e.into()))?;
    // Every provider and outcome appears, zeros included, so a dashboard
    // or script never has to guess whether a key is missing or zero.
    let providers: BTreeMap<&str, BTreeMap<&str, u64>> = Provider::ALL
        .into_iter()
        .map(|p| {
            let counts = Outcome::ALL
                .into_iter()
                .map(|o| {
                    let n = counted
                        .get(&p)
                        .and_then(|c| c.get(&o))
                        .copied()
                        .unwrap_or(0);
                    (o.as_str(), n)
                })
                .collect();
            (p.as_str(), counts)
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "providers": providers })))
}

async fn unmapped(state: web::Data<AppState>, req: HttpRequest) -> ApiResult {
    require_admin(&req, &state)?;
    let words = state
        .storage
        .unmapped_words()
        .await
        .map_err(|e| api_error(e.into()))?;
    Ok(HttpResponse::Ok().json(json!({ "unmapped": words })))
}

/// Entries waiting in each partition of the event log: how far the
/// workers are behind.
async fn backlog(state: web::Data<AppState>, req: HttpRequest) -> ApiResult {
    require_admin(&req, &state)?;
    let partitions = state
        .storage
        .backlog()
        .await
        .map_err(|e| api_error(e.into()))?;
    let total: u64 = partitions.iter().sum();
    Ok(HttpResponse::Ok().json(json!({ "partitions": partitions, "total": total })))
}

/// A query parameter parsed as a word of the API (a provider, a state, a
/// reason); empty counts as absent.
fn query_word<T>(name: &str, value: Option<String>) -> Result<Option<T>, ProviderError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value
        .filter(|v| !v.is_empty())
        .map(|v| v.parse::<T>())
        .transpose()
        .map_err(|e| api_error(IngestError::Invalid(format!("query `{name}`: {e}"))))
}

/// The `limit` of a listing, within bounds.
fn checked_limit(limit: Option<usize>) -> Result<usize, ProviderError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(api_error(IngestError::Invalid(format!(
            "query `limit`: {limit} is not between 1 and {MAX_LIMIT}"
        ))));
    }
    Ok(limit)
}

/// The automation rules; secrets are only said to be set.
async fn automations(state: web::Data<AppState>, req: HttpRequest) -> ApiResult {
    require_admin(&req, &state)?;
    let rules: Vec<_> = state
        .automations
        .rules()
        .all()
        .iter()
        .map(|rule| {
            json!({
                "name": rule.name,
                "on": rule.on,
                "stores": rule.stores,
                "url": rule.display_url(),
                "bearer_token": rule.bearer_token.is_some(),
                "signed": rule.signing_secret.is_some(),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "automations": rules })))
}

/// Filters for deliveries and dead letters.
#[derive(Debug, Deserialize)]
struct DeliveryQuery {
    rule: Option<String>,
    store: Option<String>,
    order: Option<String>,
    /// The provider's fulfillment reference.
    fulfillment: Option<String>,
    state: Option<String>,
    reason: Option<String>,
    limit: Option<usize>,
    /// Replay even a delivered message.
    force: Option<bool>,
}

impl DeliveryQuery {
    fn read(req: &HttpRequest) -> Result<Self, ProviderError> {
        Ok(web::Query::<Self>::from_query(req.query_string())
            .map_err(|e| api_error(IngestError::Invalid(format!("query: {e}"))))?
            .into_inner())
    }

    /// The filter it asks for; dead-letter paths always mean state dead.
    fn filter(self, dead_letters: bool) -> Result<DeliveryFilter, ProviderError> {
        let state = if dead_letters {
            Some(DeliveryState::Dead)
        } else {
            query_word::<DeliveryState>("state", self.state)?
        };
        let text = |v: Option<String>| v.filter(|v| !v.is_empty());
        Ok(DeliveryFilter {
            rule: text(self.rule),
            store: text(self.store),
            order_ref: text(self.order),
            fulfillment_ref: text(self.fulfillment),
            state,
            reason: query_word::<FailureReason>("reason", self.reason)?,
            limit: checked_limit(self.limit)?,
        })
    }
}

/// A delivery as ops read it.
#[derive(Serialize)]
struct DeliveryView<'a> {
    id: &'a str,
    rule: &'a str,
    store: &'a str,
    order: &'a str,
    fulfillment: &'a str,
    trigger: &'static str,
    state: DeliveryState,
    /// A dead letter's reason: why its last attempt failed.
    reason: Option<FailureReason>,
    created_at: chrono::DateTime<chrono::Utc>,
    next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    attempts: &'a [crate::fulfillment::automations::Attempt],
    payload: serde_json::Value,
}

impl<'a> From<&'a Delivery> for DeliveryView<'a> {
    fn from(d: &'a Delivery) -> Self {
        Self {
            id: &d.id,
            rule: &d.rule,
            store: &d.fulfillment.store,
            order: &d.fulfillment.order_ref,
            fulfillment: &d.fulfillment.fulfillment_ref,
            trigger: d.trigger.as_str(),
            state: d.state,
            reason: (d.state == DeliveryState::Dead)
                .then(|| d.last_failure())
                .flatten(),
            created_at: d.created_at,
            next_attempt_at: d.next_attempt_at,
            attempts: &d.attempts,
            payload: serde_json::from_str(&d.body).unwrap_or(serde_json::Value::Null),
        }
    }
}

async fn list_deliveries(
    state: &AppState,
    req: &HttpRequest,
    dead_letters: bool,
) -> Result<Vec<Delivery>, ProviderError> {
    require_admin(req, state)?;
    let filter = DeliveryQuery::read(req)?.filter(dead_letters)?;
    state
        .automations
        .storage()
        .deliveries(&filter)
        .await
        .map_err(|e| api_error(e.into()))
}

/// `GET /api/v1/deliveries?rule=&store=&order=&fulfillment=&state=&reason=&limit=`,
/// newest first.
async fn deliveries(state: web::Data<AppState>, req: HttpRequest) -> ApiResult {
    let found = list_deliveries(&state, &req, false).await?;
    let views: Vec<DeliveryView> = found.iter().map(DeliveryView::from).collect();
    Ok(HttpResponse::Ok().json(json!({ "deliveries": views })))
}

/// `GET /api/v1/dead-letters?reason=&rule=&...`, newest first.
async fn dead_letters(state: web::Data<AppState>, req: HttpRequest) -> ApiResult {
    let found = list_deliveries(&state, &req, true).await?;
    let views: Vec<DeliveryView> = found.iter().map(DeliveryView::from).collect();
    Ok(HttpResponse::Ok().json(json!({ "dead_letters": views })))
}

/// `POST /api/v1/dead-letters/{id}/replay[?force=true]`: sends a dead
/// letter again, with its `webhook-id`. A delivered message is refused
/// unless forced, so a replay clicked twice does not notify twice.
async fn replay_dead_letter(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> ApiResult {
    require_admin(&req, &state)?;
    let force = DeliveryQuery::read(&req)?.force.unwrap_or(false);
    let id = id.into_inner();
    match state
        .automations
        .replay(&id, force)
        .await
        .map_err(|e| api_error(e.into()))?
    {
        Requeued::Queued(d) => {
            Ok(HttpResponse::Ok().json(json!({ "replayed": DeliveryView::from(&*d) })))
        }
        Requeued::AlreadyDelivered => Err(api_error(IngestError::Conflict(format!(
            "delivery {id} was delivered already; add ?force=true to send it again"
        )))),
        Requeued::AlreadyPending => Err(api_error(IngestError::Conflict(format!(
            "delivery {id} is queued for delivery already"
        )))),
        Requeued::NotFound => Err(api_error(IngestError::NotFound(format!(
            "no delivery {id} is known"
        )))),
    }
}

/// `POST /api/v1/dead-letters/replay?reason=&rule=&...`: sends every
/// matching dead letter again, paced by `delivery.replay_pace`.
async fn replay_dead_letters(state: web::Data<AppState>, req: HttpRequest) -> ApiResult {
    require_admin(&req, &state)?;
    let filter = DeliveryQuery::read(&req)?.filter(true)?;
    let ids = state
        .automations
        .replay_dead_letters(&filter)
        .await
        .map_err(|e| api_error(e.into()))?;
    Ok(HttpResponse::Ok().json(json!({ "replayed": ids.len(), "ids": ids })))
}
