//! The dashboard at `/dashboard`: one page of HTML, CSS and vanilla
//! JavaScript compiled into the binary, so there is no front-end build and
//! nothing to deploy beside the gateway. The page signs in with an admin
//! token and reads everything from `/api/v1`; the assets themselves hold no
//! data and need no token.

use actix_web::http::header;
use actix_web::{get, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const APP_CSS: &str = include_str!("dashboard/app.css");

/// Only the page's own files may run or style it, and nothing may frame
/// it: data shown on it can never become markup or script.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Registers the page and its assets.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(index).service(script).service(stylesheet);
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        // Assets change with the binary: revalidate rather than go stale
        // across an upgrade.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// The dashboard page; it asks for an admin token and reads `/api/v1`.
#[utoipa::path(
    operation_id = "dashboard",
    tag = "ops",
    responses((status = 200, description = "The page", body = String, content_type = "text/html; charset=utf-8")),
)]
#[get("/dashboard")]
async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// The dashboard's script.
#[utoipa::path(
    operation_id = "dashboard_script",
    tag = "ops",
    responses((status = 200, description = "The script", body = String, content_type = "text/javascript; charset=utf-8")),
)]
#[get("/dashboard/app.js")]
async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// The dashboard's stylesheet.
#[utoipa::path(
    operation_id = "dashboard_stylesheet",
    tag = "ops",
    responses((status = 200, description = "The stylesheet", body = String, content_type = "text/css; charset=utf-8")),
)]
#[get("/dashboard/app.css")]
async fn stylesheet() -> HttpResponse {
    asset("text/css; charset=utf-8", APP_CSS)
}
