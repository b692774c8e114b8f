//! Shopify's paths: the webhook endpoint, and the REST-shaped events API.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::{read_json_body, record, refuse, ErrorShape, IngestError, ProviderError};
use crate::app::AppState;
use crate::canonical::Provider;
use crate::providers::shopify as adapter;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/shopify", web::post().to(webhook));
}

/// `POST /webhooks/shopify`: verify, record, answer 200 at once; a worker
/// applies it.
async fn webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ProviderError> {
    let outcome = async {
        let body = read_json_body(&req, payload, state.settings.server.body_limit).await?;
        let headers = req.headers();
        let domain = adapter::shop_domain(headers)?;
        let store = state.stores.shopify_by_domain(domain).ok_or_else(|| {
            IngestError::Unauthorized(format!(
                "header X-Shopify-Shop-Domain '{domain}' is not a shop configured here"
            ))
        })?;
        adapter::verify_webhook(headers, &body, &store.settings.webhook_secrets)?;
        let observation = adapter::parse_webhook(&store.name, &state.maps.shopify, headers, &body)?;
        let recorded = record(&state, observation).await?;
        Ok::<_, IngestError>(HttpResponse::Ok().json(json!({
            "accepted": true,
            "duplicate": recorded.is_duplicate(),
            "event_id": recorded.event_id(),
        })))
    }
    .await;
    match outcome {
        Ok(response) => Ok(response),
        Err(e) => Err(refuse(&state, Provider::Shopify, ErrorShape::Shopify, e).await),
    }
}
