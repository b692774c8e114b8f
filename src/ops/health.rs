//! `/health` says the process answers; `/ready` says it can do its job,
//! which means touching storage for real.

use actix_web::http::header;
use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::app::AppState;
use crate::http::RETRY_AFTER_SECS;

/// Registers `/health` and `/ready`.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(health).service(ready);
}

/// The answer of `/health`.
#[derive(Debug, Serialize, ToSchema)]
struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// The answer of `/ready`.
#[derive(Debug, Serialize, ToSchema)]
struct Readiness {
    /// `ready` or `not ready`.
    status: &'static str,
    /// `ok`, or why storage could not be reached.
    storage: String,
}

/// The process answers.
#[utoipa::path(
    operation_id = "health",
    tag = "ops",
    responses((status = 200, description = "The process answers", body = Health)),
)]
#[get("/health")]
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// The gateway can do its job: storage answered a real round trip.
#[utoipa::path(
    operation_id = "ready",
    tag = "ops",
    responses(
        (status = 200, description = "Storage answers", body = Readiness),
        (status = 503, description = "Storage does not answer", body = Readiness,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
)]
#[get("/ready")]
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    match state.storage.ping().await {
        Ok(()) => HttpResponse::Ok().json(Readiness {
            status: "ready",
            storage: "ok".into(),
        }),
        Err(e) => HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS))
            .json(Readiness {
                status: "not ready",
                storage: e.to_string(),
            }),
    }
}
