//! `/health` says the process answers; `/ready` says it can do its job,
//! which means touching storage for real.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::app::AppState;
use crate::ingest::RETRY_AFTER_SECS;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready));
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    match state.storage.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ready", "storage": "ok" })),
        Err(e) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", RETRY_AFTER_SECS.to_string()))
            .json(json!({ "status": "not ready", "storage": e.to_string() })),
    }
}
