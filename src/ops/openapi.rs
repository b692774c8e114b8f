//! `GET /openapi.json`: the gateway's own OpenAPI 3.1 document. Its
//! operations and schemas are gathered by `utoipa-actix-web` from the same
//! `service` calls that register the routes, each handler's method and path
//! read from its actix route attribute, so the document lists exactly what
//! the app serves, under the paths it serves them; this module adds what
//! no route says: the title, the tags, how each kind of caller
//! authenticates, the answer the HTTP layer gives any operation before a
//! handler runs (431), and the provider paths' answers to a store over its
//! limit (429) and to a body that is too slow (408).

use actix_web::web::{self, Bytes};
use actix_web::{get, HttpResponse};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{Components, InfoBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::PartialSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::canonical::DefinedName;
use crate::providers::defined::Catalog;
use crate::providers::{carriyo, shopify};

/// Registers `GET /openapi.json`.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(openapi_json);
}

/// The document as served: written once, when the app is built.
#[derive(Debug)]
pub struct ServedDocument(Bytes);

impl ServedDocument {
    /// The whole document around `gathered`, the operations and schemas
    /// of the route table, with the data-defined providers of `catalog`.
    pub fn new(gathered: OpenApi, catalog: &Catalog) -> Result<Self, serde_json::Error> {
        let mut document = document(gathered);
        add_defined_providers(&mut document, catalog);
        document.to_json().map(|text| Self(text.into()))
    }
}

/// The document, as served.
#[utoipa::path(
    operation_id = "openapi",
    tag = "ops",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI 3.1 document of this gateway", body = Object,
        content_type = "application/json")),
)]
#[get("/openapi.json")]
async fn openapi_json(document: web::Data<ServedDocument>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document.0.clone())
}

/// The whole document: the route table's operations and the schemas they
/// refer to, with the title, the tags and how each kind of caller
/// authenticates.
pub fn document(gathered: OpenApi) -> OpenApi {
    let mut document = gathered;
    document.info = InfoBuilder::new()
        .title("shipgate")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(env!("CARGO_PKG_DESCRIPTION")))
        .build();
    let components = document.components.get_or_insert_with(Components::new);
    let schemes = [
        (
            "shopify_hmac",
            api_key(
                shopify::HMAC_HEADER,
                "Base64 HMAC-SHA256 of the raw body, keyed with one of the shop's webhook_secrets.",
            ),
        ),
        (
            "shopify_access_token",
            api_key(
                shopify::ACCESS_TOKEN_HEADER,
                "One of the store's shopify.access_tokens.",
            ),
        ),
        (
            "carriyo_api_key",
            api_key(
                carriyo::API_KEY_HEADER,
                "One of the tenant's carriyo.api_keys, in this header unless \
                 carriyo.api_key_header names another; a tenant may use Basic \
                 (carriyo.basic_auth) or Bearer (carriyo.bearer_tokens) instead.",
            ),
        ),
        (
            "carriyo_tenant",
            api_key(
                carriyo::TENANT_HEADER,
                "The tenant's carriyo.tenant_id; the key must be one of its keys.",
            ),
        ),
        (
            "redo_bearer",
            bearer("One of the store's redo.api_tokens, for the storeId in the path."),
        ),
        ("admin_bearer", bearer("One of admin.tokens; answers are cut to the token's stores, and replays need role operate.")),
    ];
    for (name, scheme) in schemes {
        components.add_security_scheme(name, scheme);
    }
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
        (
            "providers",
            "Webhooks of data-defined providers (providers/NAME/provider.toml): AfterShip, \
             EasyPost, and any of providers.dir",
        ),
        ("ops", "Health, metrics, the dashboard and the admin API"),
    ]
    .map(|(name, description)| {
        TagBuilder::new()
            .name(name)
            .description(Some(description))
            .build()
    });
    document.tags = Some(tags.into());
    components.responses.insert(
        HEADERS_TOO_LARGE.into(),
        ResponseBuilder::new()
            .description(
                "The request's headers are over the HTTP layer's limit (more than 96 headers, \
                 or a head over 128 KiB); answered with no body before any handler runs",
            )
            .build()
            .into(),
    );
    if let Some(RefOr::T(Schema::OneOf(shapes))) = components.schemas.get_mut(SHOPIFY_WEBHOOK_BODY)
    {
        // Shopify's resources allow each other's fields, so a real body
        // matches several shapes and `oneOf` would forbid it; the
        // X-Shopify-Topic header, not the body, picks the one read.
        let any = shapes
            .items
            .drain(..)
            .fold(AnyOfBuilder::new(), AnyOfBuilder::item)
            .description(shapes.description.take())
            .build();
        components
            .schemas
            .insert(SHOPIFY_WEBHOOK_BODY.into(), Schema::AnyOf(any).into());
    }
    for (_, provider) in PROVIDERS {
        let (limited, too_slow) = provider_refusals(provider);
        components
            .responses
            .insert(format!("{provider}{OVER_LIMIT}"), limited.into());
        components
            .responses
            .insert(format!("{provider}{BODY_TOO_SLOW}"), too_slow.into());
    }
    for item in document.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            let responses = &mut operation.responses.responses;
            responses.insert(
                "431".into(),
                Ref::from_response_name(HEADERS_TOO_LARGE).into(),
            );
            let tags = operation.tags.iter().flatten();
            let Some(provider) = tags
                .filter_map(|tag| PROVIDERS.iter().find(|(t, _)| t == tag))
                .map(|(_, provider)| provider)
                .next()
            else {
                continue;
            };
            responses.insert(
                "429".into(),
                Ref::from_response_name(format!("{provider}{OVER_LIMIT}")).into(),
            );
            if operation.request_body.is_some() {
                responses.insert(
                    "408".into(),
                    Ref::from_response_name(format!("{provider}{BODY_TOO_SLOW}")).into(),
                );
            }
        }
    }
    document
}

/// The route of the data-defined providers, as the document names it.
const DEFINED_ROUTE: &str = "/webhooks/{provider}/{store}";

/// Adds what only the loaded definitions know: their names, to the
/// `Provider` enum and as the `DefinedName` enum (which the route's
/// `{provider}` refers to), and how each authenticates, as a security
/// scheme the route accepts.
fn add_defined_providers(document: &mut OpenApi, catalog: &Catalog) {
    let components = document.components.get_or_insert_with(Components::new);
    let names = || {
        catalog
            .iter()
            .map(|d| serde_json::Value::from(d.name.as_str()))
    };
    if let Some(RefOr::T(Schema::Object(provider))) = components.schemas.get_mut("Provider") {
        provider
            .enum_values
            .get_or_insert_with(Vec::new)
            .extend(names());
    }
    // A parameter's type is referred to, not gathered: added here.
    let mut defined = <DefinedName as PartialSchema>::schema();
    if let RefOr::T(Schema::Object(object)) = &mut defined {
        object.enum_values = Some(names().collect());
    }
    components.schemas.insert("DefinedName".into(), defined);
    let mut requirements = Vec::new();
    for definition in catalog.iter() {
        let name = format!("{}_credential", definition.name.as_str());
        let description = format!(
            "{}: {} in header {}, checked against the store's \
             [stores.NAME.providers.{}] secrets",
            definition.title,
            definition.auth.scheme(),
            definition.auth.header(),
            definition.name.as_str()
        );
        components.add_security_scheme(&name, api_key(definition.auth.header(), &description));
        requirements.push(SecurityRequirement::new(name, Vec::<String>::new()));
    }
    let operation = document
        .paths
        .paths
        .get_mut(DEFINED_ROUTE)
        .and_then(|item| item.post.as_mut());
    if let Some(operation) = operation {
        operation.security = Some(requirements);
    }
}

/// Each provider's tag and the name its error body's schema starts with
/// (`ShopifyErrorBody`): every path of the tag is limited per store, and
/// reads a body within server.body_timeout when it takes one.
const PROVIDERS: [(&str, &str); 4] = [
    ("shopify", "Shopify"),
    ("carriyo", "Carriyo"),
    ("redo", "Redo"),
    ("providers", "Defined"),
];

/// How a provider's 429 is named in `components/responses`, after it.
const OVER_LIMIT: &str = "TooManyRequests";

/// How a provider's 408 is named in `components/responses`, after it.
const BODY_TOO_SLOW: &str = "RequestTimeout";

/// A provider's 429 and 408, in its error shape.
fn provider_refusals(provider: &str) -> (utoipa::openapi::Response, utoipa::openapi::Response) {
    let content = || {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(format!("{provider}ErrorBody"))))
            .build()
    };
    let retry_after = HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
        )
        .description(Some(
            "Seconds until the store's limit lets a request through",
        ))
        .build();
    let limited = ResponseBuilder::new()
        .description(
            "The store is over its [stores.NAME.limits] for this provider; nothing was \
             recorded, retry after Retry-After",
        )
        .content("application/json", content())
        .header("Retry-After", retry_after)
        .build();
    let too_slow = ResponseBuilder::new()
        .description(
            "The body did not all arrive within server.body_timeout of the headers; nothing \
             was recorded, and the connection is closed",
        )
        .content("application/json", content())
        .build();
    (limited, too_slow)
}

/// The schema of a Shopify webhook's body: one of several topics' shapes.
const SHOPIFY_WEBHOOK_BODY: &str = "ShopifyWebhookBody";

/// The name of the 431 answer in `components/responses`, documented once
/// and referred to by every operation.
const HEADERS_TOO_LARGE: &str = "RequestHeaderFieldsTooLarge";

fn operations_mut(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
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
