//! `GET /api/v1/fulfillments?trackingNumber=...`: which fulfillments a
//! tracking number belongs to, for the dashboard's search. Fulfillments are
//! kept by store, order and fulfillment reference only, so this reads the
//! recent events (`storage.recent_events` of them), newest first.

use std::collections::BTreeMap;

use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::admin::Admin;
use super::error::{OpsError, OpsErrorBody};
use crate::app::AppState;
use crate::canonical::{FulfillmentKey, Provider};
use crate::storage::EventFilter;

/// Events read per storage call while searching.
const PAGE: usize = 1000;

/// Registers the search.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(by_tracking_number);
}

/// The tracking number searched for.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct TrackingQuery {
    /// Not blank: at least one character other than white space.
    #[param(min_length = 1, pattern = r"\S")]
    tracking_number: String,
}

/// The search's answer.
#[derive(Debug, Serialize, ToSchema)]
struct TrackingMatches {
    /// Most recently seen first.
    fulfillments: Vec<Match>,
}

/// A fulfillment a tracking number was seen on.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = TrackingMatch)]
struct Match {
    store: String,
    order_id: String,
    fulfillment_id: String,
    provider: Provider,
    last_seen_at: DateTime<Utc>,
}

/// Which fulfillments a tracking number was seen on, among the events the
/// storage keeps of the token's stores.
#[utoipa::path(
    operation_id = "ops_find_by_tracking_number",
    tag = "ops",
    summary = "Find fulfillments by tracking number",
    params(TrackingQuery),
    responses(
        (status = 200, description = "The fulfillments, most recently seen first", body = TrackingMatches),
        (status = 400, description = "`trackingNumber` is missing or empty", body = OpsErrorBody),
        (status = 401, description = "The admin token is missing or wrong", body = OpsErrorBody),
        (status = 503, description = "Storage unreachable, retry later", body = OpsErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("admin_bearer" = [])),
)]
#[get("/api/v1/fulfillments")]
async fn by_tracking_number(
    admin: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, OpsError> {
    let query =
        web::Query::<TrackingQuery>::from_query(req.query_string()).map_err(OpsError::query)?;
    let wanted = query.tracking_number.trim();
    if wanted.is_empty() {
        return Err(OpsError::Invalid("query `trackingNumber` is empty".into()));
    }
    let mut found: BTreeMap<FulfillmentKey, Match> = BTreeMap::new();
    let mut filter = EventFilter {
        scope: admin.scope(),
        limit: PAGE,
        ..EventFilter::default()
    };
    loop {
        let page = state.storage.recent_events(&filter).await?;
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
    Ok(HttpResponse::Ok().json(TrackingMatches {
        fulfillments: matches,
    }))
}
