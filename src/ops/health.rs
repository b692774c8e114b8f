//! `/health` says the process answers; `/ready` says it can do its job,
//! which means touching storage for real.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::ingest::RETRY_AFTER_SECS;
use crate::routes::Routes;

/// Registers `/health` and `/ready`.
pub fn routes(routes: &mut Routes) {
    routes.add(__path_health, health).add(__path_ready, ready);
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
    get,
    path = "/health",
    operation_id = "health",
    tag = "ops",
    responses((status = 200, description = "The process answers", body = Health)),
)]
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// The gateway can do its job: storage answered a real round trip.
#[utoipa::path(
    get,
    path = "/ready",
    operation_id = "ready",
    tag = "ops",
    responses(
        (status = 200, description = "Storage answers", body = Readiness),
        (status = 503, description = "Storage does not answer", body = Readiness,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
)]
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    match state.storage.ping().await {
        Ok(()) => HttpResponse::Ok().json(Readiness {
            status: "ready",
            storage: "ok".into(),
        }),
        Err(e) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", RETRY_AFTER_SECS.to_string()))
            .json(Readiness {
                status: "not ready",
                storage: e.to_string(),
            }),
    }
}
