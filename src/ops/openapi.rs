//! `GET /openapi.json`: the gateway's own OpenAPI 3.1 document, written
//! from the route table (see [`crate::routes`]) so that it lists exactly
//! what the app serves, with each operation's bodies and errors as the
//! handlers' `#[utoipa::path]` attributes and types declare them.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder};

use crate::providers::{carriyo, shopify};
use crate::routes::{self, Routes};

/// Registers `GET /openapi.json`.
pub fn routes(routes: &mut Routes) {
    routes.add(__path_openapi_json, openapi_json);
}

/// The document, as served.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "ops",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI 3.1 document of this gateway", body = Object,
        content_type = "application/json")),
)]
async fn openapi_json() -> HttpResponse {
    static SERVED: OnceLock<String> = OnceLock::new();
    let text = SERVED.get_or_init(|| {
        document()
            .to_json()
            .unwrap_or_else(|e| format!(r#"{{"error": "the document does not serialize: {e}"}}"#))
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .body(text.as_str())
}

/// The whole document: every operation of the route table, the schemas
/// they refer to, and how each kind of caller authenticates.
pub fn document() -> OpenApi {
    let described = routes::describe();
    let mut schemas = described.schemas;
    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    schemas.dedup_by(|a, b| a.0 == b.0);
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            "shopify_hmac",
            api_key(
                shopify::HMAC_HEADER,
                "Base64 HMAC-SHA256 of the raw body, keyed with one of the shop's webhook_secrets.",
            ),
        )
        .security_scheme(
            "shopify_access_token",
            api_key(
                shopify::ACCESS_TOKEN_HEADER,
                "One of the store's shopify.access_tokens.",
            ),
        )
        .security_scheme(
            "carriyo_api_key",
            api_key(
                carriyo::API_KEY_HEADER,
                "One of the tenant's carriyo.api_keys.",
            ),
        )
        .security_scheme(
            "carriyo_tenant",
            api_key(
                carriyo::TENANT_HEADER,
                "The tenant's carriyo.tenant_id; the key must be one of its keys.",
            ),
        )
        .security_scheme(
            "redo_bearer",
            bearer("One of the store's redo.api_tokens, for the storeId in the path."),
        )
        .security_scheme("admin_bearer", bearer("One of admin.tokens."))
        .build();
    let tags = [
        (
            "shopify",
            "Shopify webhooks and the REST-shaped fulfillment events API",
        ),
        (
            "carriyo",
            "Carriyo shipment webhooks and the order endpoint",
        ),
        (
            "redo",
            "Redo-style orders, fulfillments and shipment statuses (Redo API 2.2)",
        ),
        ("ops", "Health, metrics, the dashboard and the admin API"),
    ]
    .map(|(name, description)| {
        TagBuilder::new()
            .name(name)
            .description(Some(description))
            .build()
    });
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("shipgate")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(env!("CARGO_PKG_DESCRIPTION")))
                .build(),
        )
        .paths(described.paths)
        .components(Some(components))
        .tags(Some(tags))
        .build()
}

fn api_key(header: &str, description: &str) -> SecurityScheme {
    SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
        header,
        description,
    )))
}

fn bearer(description: &str) -> SecurityScheme {
    SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(description))
            .build(),
    )
}
