//! The dashboard at `/dashboard`: one page of HTML, CSS and vanilla
//! JavaScript compiled into the binary, so there is no front-end build and
//! nothing to deploy beside the gateway. The page signs in with an admin
//! token and reads everything from `/api/v1`; the assets themselves hold no
//! data and need no token.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const APP_CSS: &str = include_str!("dashboard/app.css");

/// Only the page's own files may run or style it, and nothing may frame
/// it: data shown on it can never become markup or script.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Registers the page and its assets.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/dashboard", web::get().to(index))
        .route("/dashboard/app.js", web::get().to(script))
        .route("/dashboard/app.css", web::get().to(stylesheet));
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

async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn stylesheet() -> HttpResponse {
    asset("text/css; charset=utf-8", APP_CSS)
}
