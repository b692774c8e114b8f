//! The ops surface: the admin API under `/api/v1`, the health checks, the
//! Prometheus metrics, and the dashboard with the routes only it needs
//! (per-minute timeline, search by tracking number).

mod api;
mod dashboard;
mod health;
mod lookup;
pub mod metrics;
mod timeline;

use actix_web::web;

/// Registers the ops paths.
pub fn routes(cfg: &mut web::ServiceConfig) {
    health::routes(cfg);
    metrics::routes(cfg);
    dashboard::routes(cfg);
    // Before the `/api/v1` scope, which would otherwise answer 404 for them.
    timeline::routes(cfg);
    lookup::routes(cfg);
    api::routes(cfg);
}
