//! `POST /webhooks/{provider}/{store}`: the one route of every
//! data-defined provider. Such senders name no store in their payload, so
//! the URL a merchant registers with them does.

use actix_web::http::StatusCode;
use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{
    admit_json_body, record, within_limit, Acknowledgement, DefinedError, DefinedErrorBody,
    IngestError,
};
use crate::app::AppState;
use crate::canonical::DefinedName;
use crate::config::Secret;
use crate::providers::defined::{Definition, Reading};
use crate::storage::Outcome;

/// Registers the route.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(webhook);
}

/// The provider and the store a delivery is for.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct DeliveryPath {
    /// A data-defined provider's name (its provider.toml's `name`).
    #[param(value_type = DefinedName)]
    provider: String,
    /// The store's name in config, `[stores.NAME]`.
    #[param(min_length = 1)]
    store: String,
}

/// The answer to a delivery of an event type the definition does not take.
#[derive(Debug, Serialize, ToSchema)]
pub struct IgnoredEvent {
    /// Always true: nothing was recorded, and nothing needs to be retried.
    pub ignored: bool,
    /// The word at the definition's `event_type.pointer`.
    pub event_type: String,
}

/// What a data-defined provider's route answers 2xx with, unless its
/// definition's `[answer]` sets a body. Only the OpenAPI document uses it.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum DefinedWebhookAnswer {
    Recorded(Acknowledgement),
    Ignored(IgnoredEvent),
}

#[utoipa::path(
    operation_id = "defined_provider_webhook",
    tag = "providers",
    summary = "Receive a webhook from a data-defined provider (AfterShip, EasyPost, or one of providers.dir)",
    description = "The provider's providers/NAME/provider.toml says how it authenticates (HMAC-SHA256 of the \
        raw body, a token in a header, Basic or Bearer, against the store's \
        `[stores.NAME.providers.PROVIDER] secrets`), where its delivery id and each canonical field are \
        (JSON Pointers), and what it expects back: 200 with the acknowledgement unless its `[answer]` says \
        otherwise. Recorded and answered at once; applied asynchronously. A repeat (same delivery id, or same \
        content) gets the same answer. An event type the definition does not take is answered 200 \
        `{\"ignored\": true, \"event_type\": …}` and not recorded.",
    params(DeliveryPath),
    request_body(content = Object, description = "The provider's own webhook body"),
    responses(
        (status = 200, description = "Recorded (or recorded before), or an event type ignored", body = DefinedWebhookAnswer),
        (status = 400, description = "The body is not JSON, or a required field's pointers reach nothing (the answer names them); nothing stored", body = DefinedErrorBody),
        (status = 401, description = "The store is unknown, has not enabled this provider, or the credential is missing or wrong (one answer for all three); nothing stored", body = DefinedErrorBody),
        (status = 404, description = "No provider of this name is defined", body = DefinedErrorBody),
        (status = 413, description = "The body is over server.body_limit", body = DefinedErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = DefinedErrorBody),
        (status = 503, description = "Storage unreachable or too slow; whether it was recorded is unknown, a retry is safe", body = DefinedErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
)]
#[post("/webhooks/{provider}/{store}")]
async fn webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<DeliveryPath>,
    payload: web::Payload,
) -> Result<HttpResponse, DefinedError> {
    let Some(definition) = state.catalog.get(&path.provider) else {
        return Err(DefinedError {
            provider: None,
            error: IngestError::NotFound(format!(
                "no provider '{}' is defined here (providers.dir)",
                path.provider
            )),
        });
    };
    let provider = definition.provider();
    let refuse = |e: IngestError| DefinedError::of(provider, e);
    let pending = admit_json_body(&req, &state.settings.server).map_err(refuse)?;
    let headers = req.headers();
    // A store that does not exist or has not enabled the provider is
    // checked against no secret: the same answer as a wrong credential.
    let store = state.stores.defined(definition.name.as_str(), &path.store);
    let secrets: &[Secret] = store.map_or(&[], |s| &s.settings.secrets);
    let verify = |body: &[u8]| definition.auth.verify(secrets, headers, body);
    // A credential that is not made from the body is refused before a
    // byte of the body is read.
    let signs_body = definition.auth.signs_body();
    if !signs_body {
        verify(&[]).map_err(|r| refuse(r.into()))?;
    }
    let body = pending.read(payload).await.map_err(refuse)?;
    if signs_body {
        verify(&body).map_err(|r| refuse(r.into()))?;
    }
    let store = store.ok_or_else(|| refuse(definition.auth.refusal().into()))?;
    within_limit(&state, &store.name, provider)
        .await
        .map_err(refuse)?;
    match definition
        .read(&store.name, store.settings.time_zone, headers, &body)
        .map_err(|r| refuse(r.into()))?
    {
        Reading::News(observation) => {
            let recorded = record(&state, *observation).await.map_err(refuse)?;
            Ok(answer(definition, recorded.acknowledgement_body()))
        }
        Reading::Ignored { event_type } => {
            tracing::info!(%provider, %event_type, "event type ignored");
            state.metrics.count_webhook(provider, Outcome::Ignored);
            state.refusals.add(provider, Outcome::Ignored);
            Ok(HttpResponse::Ok().json(IgnoredEvent {
                ignored: true,
                event_type,
            }))
        }
    }
}

/// The definition's `[answer]`, or the acknowledgement with its status.
fn answer(definition: &Definition, acknowledgement: Acknowledgement) -> HttpResponse {
    let status = StatusCode::from_u16(definition.answer.status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    match &definition.answer.body {
        Some(body) => response
            .content_type(definition.answer.content_type.as_str())
            .body(body.clone()),
        None => response.json(acknowledgement),
    }
}
