//! The ops surface: the admin API under `/api/v1` and the health checks.

mod api;
mod health;

use actix_web::web;

/// Registers the ops paths.
pub fn routes(cfg: &mut web::ServiceConfig) {
    health::routes(cfg);
    api::routes(cfg);
}
