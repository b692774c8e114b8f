//! The admin API, `/api/v1`, behind the admin bearer tokens: what ops
//! people and the dashboard read.

use std::collections::BTreeMap;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::canonical::{EventId, FulfillmentKey, Provider};
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
            .route("/backlog", web::get().to(backlog)),
    );
}

type ApiResult = Result<HttpResponse, ProviderError>;

fn api_error(error: IngestError) -> ProviderError {
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
    let provider = query
        .provider
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<Provider>())
        .transpose()
        .map_err(|e| api_error(IngestError::Invalid(format!("query `provider`: {e}"))))?;
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
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(api_error(IngestError::Invalid(format!(
            "query `limit`: {limit} is not between 1 and {MAX_LIMIT}"
        ))));
    }
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
