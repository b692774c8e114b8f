//! `GET /api/v1/fulfillments?trackingNumber=...`: which fulfillments a
//! tracking number belongs to, for the dashboard's search. Fulfillments are
//! kept by store, order and fulfillment reference only, so this reads the
//! recent events (`storage.recent_events` of them), newest first.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::api::{api_error, require_admin};
use crate::app::AppState;
use crate::canonical::{FulfillmentKey, Provider};
use crate::ingest::{IngestError, ProviderError};
use crate::storage::EventFilter;

/// Events read per storage call while searching.
const PAGE: usize = 1000;

/// Registers the search; before the `/api/v1` scope, which would
/// otherwise answer 404 for it.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/fulfillments", web::get().to(by_tracking_number));
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrackingQuery {
    tracking_number: String,
}

/// A fulfillment a tracking number was seen on.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Match {
    store: String,
    order_id: String,
    fulfillment_id: String,
    provider: Provider,
    last_seen_at: DateTime<Utc>,
}

async fn by_tracking_number(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ProviderError> {
    require_admin(&req, &state)?;
    let query = web::Query::<TrackingQuery>::from_query(req.query_string())
        .map_err(|e| api_error(IngestError::Invalid(format!("query: {e}"))))?;
    let wanted = query.tracking_number.trim();
    if wanted.is_empty() {
        return Err(api_error(IngestError::Invalid(
            "query `trackingNumber` is empty".into(),
        )));
    }
    let mut found: BTreeMap<FulfillmentKey, Match> = BTreeMap::new();
    let mut filter = EventFilter {
        limit: PAGE,
        ..EventFilter::default()
    };
    loop {
        let page = state
            .storage
            .recent_events(&filter)
            .await
            .map_err(|e| api_error(e.into()))?;
        for event in &page {
            if event.tracking_number.as_deref() == Some(wanted) {
                // Newest first: the first sighting is the latest.
                found.entry(event.key.clone()).or_insert_with(|| Match {
                    store: event.key.store.clone(),
                    order_id: event.key.order_ref.clone(),
                    fulfillment_id: event.key.fulfillment_ref.clone(),
                    provider: event.provider,
                    last_seen_at: event.received_at,
                });
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE => filter.before = Some(last.id),
            _ => break,
        }
    }
    let mut matches: Vec<Match> = found.into_values().collect();
    matches.sort_by_key(|m| std::cmp::Reverse(m.last_seen_at));
    Ok(HttpResponse::Ok().json(json!({ "fulfillments": matches })))
}
