//! The ops surface: the admin API under `/api/v1`, the health checks, the
//! Prometheus metrics, the OpenAPI document, and the dashboard with the
//! routes only it needs (per-minute timeline, search by tracking number).

mod admin;
mod api;
mod dashboard;
mod error;
mod health;
mod lookup;
pub mod metrics;
pub mod openapi;
mod timeline;

pub use admin::Admin;
pub use error::{OpsError, OpsErrorBody};

use utoipa_actix_web::service_config::ServiceConfig;

/// Registers the ops paths, each with its OpenAPI operation.
pub fn routes(cfg: &mut ServiceConfig) {
    health::routes(cfg);
    metrics::routes(cfg);
    dashboard::routes(cfg);
    timeline::routes(cfg);
    lookup::routes(cfg);
    openapi::routes(cfg);
    api::routes(cfg);
}
