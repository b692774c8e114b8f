//! The ops surface: the admin API under `/api/v1`, the health checks, the
//! Prometheus metrics, the OpenAPI document, and the dashboard with the
//! routes only it needs (per-minute timeline, search by tracking number).

mod api;
mod dashboard;
mod health;
mod lookup;
pub mod metrics;
pub mod openapi;
mod timeline;

use crate::routes::Routes;

/// Registers the ops paths.
pub fn routes(routes: &mut Routes) {
    health::routes(routes);
    metrics::routes(routes);
    dashboard::routes(routes);
    timeline::routes(routes);
    lookup::routes(routes);
    openapi::routes(routes);
    api::routes(routes);
}
