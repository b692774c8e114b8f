//! Shopify's paths: the webhook endpoint, and the REST-shaped events API.
//!
//! The REST API answers from the fulfillment's history, so a client reads
//! its own writes: a create or delete is applied before it is answered.
//! Webhook-delivered events of the same fulfillment show in it too. Every
//! answer of it says in `X-Shopify-API-Version` which version served it.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{from_fn, Next};
use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{
    admit, admit_json_body, read_json_body, record, record_event, within_limit, Acknowledgement,
    IngestError, Recorded, ShopifyError, ShopifyErrorBody, StoreRef,
};
use crate::app::AppState;
use crate::canonical::{CanonicalEvent, EventId, FromTheFuture, FulfillmentKey, Provider};
use crate::config::ShopifySettings;
use crate::domain::{Fulfillment, HistoryEntry};
use crate::providers::shopify::{self as adapter, ApiVersion, VersionError, Webhook};
use crate::storage::{Claim, Outcome};

/// The sequence the REST and GraphQL APIs number the events they create
/// from, so both read each other's events by the same ids.
pub(crate) const EVENT_SEQUENCE: &str = "shopify:fulfillment_event";

/// `{version}`, `{order_id}`, `{fulfillment_id}` as sent.
type EventsPath = web::Path<EventsPathParams>;
/// `{version}`, `{order_id}`, `{fulfillment_id}`, `{event_id}` as sent.
type EventPath = web::Path<EventPathParams>;

/// Registers the webhook endpoint.
pub fn webhook_routes(cfg: &mut ServiceConfig) {
    cfg.service(webhook);
}

/// Registers the REST-shaped events API.
pub fn rest_routes(cfg: &mut ServiceConfig) {
    cfg.service(create_event)
        .service(list_events)
        .service(get_event)
        .service(delete_event);
}

/// `POST /webhooks/shopify`: verify, record, answer 200 at once; a worker
/// applies it. A topic shipgate does not take is answered 200 too, once
/// verified, and counted as ignored.
#[utoipa::path(
    operation_id = "shopify_webhook",
    tag = "shopify",
    summary = "Receive a Shopify webhook delivery",
    description = "Topics fulfillment_events/create, fulfillment_events/delete, fulfillments/create and \
        fulfillments/update. Verified, recorded, answered at once; applied asynchronously. A repeat \
        (same event id, same content, or the same shipment change from the other topic) gets the \
        same 200. A verified delivery of any other topic is answered 200, recorded nowhere and \
        counted as `ignored`. Every header is also read without its `X-` (`Shopify-Hmac-Sha256`, …).",
    params(
        ("X-Shopify-Topic" = String, Header, pattern = r"\S", example = "fulfillment_events/create",
            description = "The webhook topic; picks the body's shape. shipgate records \
            fulfillment_events/create, fulfillment_events/delete, fulfillments/create and fulfillments/update; \
            a verified delivery of any other topic is answered 200 `{\"ignored\": true, \"topic\": …}`. \
            A blank one is missing (400)"),
        ("X-Shopify-Shop-Domain" = String, Header, description = "The shop, e.g. acme.myshopify.com"),
        ("X-Shopify-Event-Id" = Option<String>, Header, max_length = 255,
            description = "Shared by every delivery of one change: the dedup key with the topic; at most 255 bytes"),
        ("X-Shopify-Webhook-Id" = Option<String>, Header, max_length = 255,
            description = "Unique per delivery: the dedup key without an event id; at most 255 bytes"),
        ("X-Shopify-API-Version" = Option<String>, Header, pattern = r"^\s*(unstable|2019-(04|07|10)|(20[2-9][0-9]|2[1-9][0-9]{2}|[3-9][0-9]{3})-(01|04|07|10))?\s*$", example = "2026-10",
            description = "The version the body is written in: `unstable` or a quarterly one from 2019-04 \
            (e.g. 2026-10); kept on the history entry as apiVersion. A blank one is read as absent"),
        ("X-Shopify-Triggered-At" = Option<String>, Header, pattern = r"^\s*([0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))?\s*$",
            example = "2026-11-20T10:00:00Z",
            description = "When Shopify triggered the delivery, an RFC 3339 date-time in the years 0000 to 9999: \
            the event's time when the body gives none. A blank one is read as absent"),
    ),
    request_body(content = adapter::WebhookBody, description = "The REST resource of the topic"),
    responses(
        (status = 200, description = "Recorded (or recorded before), or a topic shipgate does not take, ignored", body = WebhookAnswer),
        (status = 400, description = "A header or field is missing or malformed; nothing stored", body = ShopifyErrorBody),
        (status = 401, description = "Unknown shop, or the HMAC matches none of its secrets; nothing stored", body = ShopifyErrorBody),
        (status = 413, description = "The body is over server.body_limit", body = ShopifyErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ShopifyErrorBody),
        (status = 503, description = "Storage unreachable or too slow; whether it was recorded is unknown, a retry is safe", body = ShopifyErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("shopify_hmac" = [])),
)]
#[post("/webhooks/shopify")]
async fn webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ShopifyError> {
    let pending = admit_json_body(&req, &state.settings.server)?;
    let headers = req.headers();
    let domain = adapter::shop_domain(headers)?;
    let store = state.stores.shopify_by_domain(domain).ok_or_else(|| {
        IngestError::Unauthorized(format!(
            "header X-Shopify-Shop-Domain '{domain}' is not a shop configured here"
        ))
    })?;
    let body = pending.read(payload).await?;
    adapter::verify_webhook(headers, &body, &store.settings.webhook_secrets)?;
    within_limit(&state, &store.name, Provider::Shopify).await?;
    match adapter::parse_webhook(&store.name, &state.maps.shopify, headers, &body)? {
        Webhook::Observed(update) => Ok(record_update(&state, update).await?.acknowledgement()),
        Webhook::Ignored { topic } => Ok(ignore(&state, topic).await),
    }
}

/// What `POST /webhooks/shopify` answers 200 with. Only the OpenAPI
/// document uses this type.
#[derive(ToSchema)]
#[schema(as = ShopifyWebhookAnswer)]
#[serde(untagged)]
pub enum WebhookAnswer {
    Recorded(Acknowledgement),
    Ignored(IgnoredTopic),
}

/// The answer to a delivery of a topic shipgate does not take.
#[derive(Debug, Serialize, ToSchema)]
pub struct IgnoredTopic {
    /// Always true: nothing was recorded, and nothing needs to be retried.
    pub ignored: bool,
    pub topic: String,
}

/// Answers a verified delivery of a topic shipgate does not take with 200
/// (Shopify retries a failing subscription and then removes it), and
/// counts it; counting is best effort and never changes the answer.
async fn ignore(state: &AppState, topic: String) -> HttpResponse {
    tracing::info!(provider = %Provider::Shopify, %topic, "topic ignored");
    state
        .metrics
        .count_webhook(Provider::Shopify, Outcome::Ignored);
    state.refusals.add(Provider::Shopify, Outcome::Ignored);
    HttpResponse::Ok().json(IgnoredTopic {
        ignored: true,
        topic,
    })
}

/// Completes an update into an event received now, with what Shopify
/// said beside the observation; refused as [`admit`] refuses.
fn admit_update(
    state: &AppState,
    update: adapter::Update,
) -> Result<CanonicalEvent, FromTheFuture> {
    let adapter::Update {
        observation,
        api_version,
        estimated_delivery_at,
        pairing,
    } = update;
    let mut event = admit(state, observation)?;
    event.api_version = api_version.map(|v| v.to_string());
    event.estimated_delivery_at = estimated_delivery_at;
    event.dedup_key.pairing = pairing;
    Ok(event)
}

/// Records an update with what Shopify said beside the observation; the
/// webhook and GraphQL paths record through it.
pub(crate) async fn record_update(
    state: &AppState,
    update: adapter::Update,
) -> Result<Recorded, IngestError> {
    let event = admit_update(state, update)?;
    record_event(state, event).await
}

/// `POST .../events.json`: records the new event and applies it before
/// answering 201 with it; a repeat of an earlier event answers that one.
#[utoipa::path(
    operation_id = "shopify_create_fulfillment_event",
    tag = "shopify",
    summary = "Create a fulfillment event (Shopify REST shape)",
    params(EventsPathParams),
    request_body(content = adapter::CreateEventRequest),
    responses(
        (status = 201, description = "The event, applied", body = OneEvent,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 400, description = "A path id or a field is malformed; nothing stored", body = ShopifyErrorBody,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 401, description = "The access token is missing or not a store's", body = ShopifyErrorBody,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 404, description = "The API version does not exist, or is later than the release candidate", body = ShopifyErrorBody),
        (status = 409, description = "The event repeats one deleted since, or was deleted before it came", body = ShopifyErrorBody,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 413, description = "The body is over server.body_limit", body = ShopifyErrorBody,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 415, description = "Content-Type is not application/json", body = ShopifyErrorBody,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 422, description = "A field of the event is missing or invalid, or its status is not a word of the served API version; \
            Shopify's shape, the field with its messages: {\"errors\": {\"status\": [\"is not included in the list\"]}}; nothing stored", body = ShopifyErrorBody,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 503, description = "Storage unreachable or too slow; whether it was recorded is unknown, a retry is safe", body = ShopifyErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"), ("X-Shopify-API-Version" = String, description = "The version that served the call"))),
    ),
    security(("shopify_access_token" = [])),
)]
#[post(
    "/admin/api/{version}/orders/{order_id}/fulfillments/{fulfillment_id}/events.json",
    wrap = "from_fn(served_version_header)"
)]
async fn create_event(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: EventsPath,
    payload: web::Payload,
) -> Result<HttpResponse, ShopifyError> {
    let path = path.into_inner();
    let call = EventsCall::admit(
        &state,
        &req,
        &path.version,
        &path.order_id,
        &path.fulfillment_id,
    )
    .await?;
    let body = read_json_body(&req, payload, &state.settings.server).await?;
    let update = adapter::parse_rest_event(
        call.store(),
        &state.maps.shopify,
        call.version,
        call.order_id,
        call.fulfillment_id,
        &body,
    )?;
    // A REST field Shopify refuses is a 422 naming it.
    let mut event = admit_update(&state, update).map_err(|e| IngestError::Unprocessable {
        field: e.field.to_string(),
        message: format!("is invalid: {e}"),
    })?;
    // Numbered only once every check passed, so a refusal uses up no id.
    let id = state.storage.next_in_sequence(EVENT_SEQUENCE).await?;
    event.source_id = Some(id.to_string());
    let recorded = record_event(&state, event).await?;
    if recorded.claim == Claim::Accepted {
        state.core.apply(&recorded.event).await?;
    }
    let fulfillment = state.core.get(&call.key).await?;
    let created = fulfillment
        .as_ref()
        .and_then(|f| call.event_by_our_id(f, recorded.event_id()))
        .ok_or_else(|| not_shown(&recorded, id))?;
    Ok(HttpResponse::Created().json(OneEvent {
        fulfillment_event: created,
    }))
}

/// `GET .../events.json`: the fulfillment's Shopify events, oldest first.
#[utoipa::path(
    operation_id = "shopify_list_fulfillment_events",
    tag = "shopify",
    summary = "List a fulfillment's events (Shopify REST shape), oldest first",
    params(EventsPathParams),
    responses(
        (status = 200, description = "The fulfillment's Shopify events", body = EventList,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 400, description = "A path id is not a positive integer", body = ShopifyErrorBody,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 401, description = "The access token is missing or not a store's", body = ShopifyErrorBody,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 404, description = "Unknown API version or fulfillment", body = ShopifyErrorBody,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 503, description = "Storage unreachable, retry later", body = ShopifyErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"), ("X-Shopify-API-Version" = String, description = "The version that served the call"))),
    ),
    security(("shopify_access_token" = [])),
)]
#[get(
    "/admin/api/{version}/orders/{order_id}/fulfillments/{fulfillment_id}/events.json",
    wrap = "from_fn(served_version_header)"
)]
async fn list_events(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: EventsPath,
) -> Result<HttpResponse, ShopifyError> {
    let path = path.into_inner();
    let call = EventsCall::admit(
        &state,
        &req,
        &path.version,
        &path.order_id,
        &path.fulfillment_id,
    )
    .await?;
    let fulfillment = call.fulfillment(&state).await?;
    let events: Vec<RestEvent> = call.events(&fulfillment).collect();
    Ok(HttpResponse::Ok().json(EventList {
        fulfillment_events: events,
    }))
}

/// `GET .../events/{event_id}.json`.
#[utoipa::path(
    operation_id = "shopify_get_fulfillment_event",
    tag = "shopify",
    summary = "Read one fulfillment event (Shopify REST shape)",
    params(EventPathParams),
    responses(
        (status = 200, description = "The event", body = OneEvent,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 400, description = "A path id is not a positive integer", body = ShopifyErrorBody,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 401, description = "The access token is missing or not a store's", body = ShopifyErrorBody,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 404, description = "Unknown API version, fulfillment or event", body = ShopifyErrorBody,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 503, description = "Storage unreachable, retry later", body = ShopifyErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"), ("X-Shopify-API-Version" = String, description = "The version that served the call"))),
    ),
    security(("shopify_access_token" = [])),
)]
#[get(
    "/admin/api/{version}/orders/{order_id}/fulfillments/{fulfillment_id}/events/{event_id}.json",
    wrap = "from_fn(served_version_header)"
)]
async fn get_event(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: EventPath,
) -> Result<HttpResponse, ShopifyError> {
    let (call, event_id, fulfillment) =
        EventsCall::admit_event(&state, &req, path.into_inner()).await?;
    let event = call.event(&fulfillment, event_id)?;
    Ok(HttpResponse::Ok().json(OneEvent {
        fulfillment_event: event,
    }))
}

/// `DELETE .../events/{event_id}.json`: records the retraction and applies
/// it before answering `{}`, so the event is gone from the next read.
#[utoipa::path(
    operation_id = "shopify_delete_fulfillment_event",
    tag = "shopify",
    summary = "Delete a fulfillment event (Shopify REST shape)",
    params(EventPathParams),
    responses(
        (status = 200, description = "Deleted: `{}`", body = Deleted,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 400, description = "A path id is not a positive integer", body = ShopifyErrorBody,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 401, description = "The access token is missing or not a store's", body = ShopifyErrorBody,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 404, description = "Unknown API version, fulfillment or event", body = ShopifyErrorBody,
            headers(("X-Shopify-API-Version" = String, description = "The version that served the call"))),
        (status = 503, description = "Storage unreachable or too slow; whether it was recorded is unknown, a retry is safe", body = ShopifyErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"), ("X-Shopify-API-Version" = String, description = "The version that served the call"))),
    ),
    security(("shopify_access_token" = [])),
)]
#[delete(
    "/admin/api/{version}/orders/{order_id}/fulfillments/{fulfillment_id}/events/{event_id}.json",
    wrap = "from_fn(served_version_header)"
)]
async fn delete_event(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: EventPath,
) -> Result<HttpResponse, ShopifyError> {
    let (call, event_id, fulfillment) =
        EventsCall::admit_event(&state, &req, path.into_inner()).await?;
    call.event(&fulfillment, event_id)?;
    let retraction =
        adapter::rest_retraction(call.store(), call.order_id, call.fulfillment_id, event_id);
    let recorded = record(&state, retraction).await?;
    if !recorded.is_duplicate() {
        state.core.apply(&recorded.event).await?;
    }
    Ok(HttpResponse::Ok().json(Deleted {}))
}

/// A REST call admitted for one fulfillment of the caller's store.
struct EventsCall {
    /// The version that serves the call.
    version: ApiVersion,
    order_id: u64,
    fulfillment_id: u64,
    key: FulfillmentKey,
}

impl EventsCall {
    /// Finds the caller's store by its access token, takes a token from
    /// its limit, then reads the path.
    async fn admit(
        state: &AppState,
        req: &HttpRequest,
        version: &str,
        order_id: &str,
        fulfillment_id: &str,
    ) -> Result<Self, IngestError> {
        let (store, version) = admit_store(state, req, version).await?;
        let order_id = path_id("order_id", order_id)?;
        let fulfillment_id = path_id("fulfillment_id", fulfillment_id)?;
        Ok(Self {
            version,
            order_id,
            fulfillment_id,
            key: adapter::fulfillment_key(&store.name, order_id, fulfillment_id),
        })
    }

    /// [`EventsCall::admit`] for a path that names one event: the call,
    /// the event's id, and the fulfillment it must belong to.
    async fn admit_event(
        state: &AppState,
        req: &HttpRequest,
        path: EventPathParams,
    ) -> Result<(Self, u64, Fulfillment), IngestError> {
        let call = Self::admit(
            state,
            req,
            &path.version,
            &path.order_id,
            &path.fulfillment_id,
        )
        .await?;
        let event_id = path_id("event_id", &path.event_id)?;
        let fulfillment = call.fulfillment(state).await?;
        Ok((call, event_id, fulfillment))
    }

    fn store(&self) -> &str {
        &self.key.store
    }

    /// The fulfillment, or 404 when no event has named it yet.
    async fn fulfillment(&self, state: &AppState) -> Result<Fulfillment, IngestError> {
        state.core.get(&self.key).await?.ok_or_else(|| {
            IngestError::NotFound(format!(
                "fulfillment {} of order {} is not known here",
                self.fulfillment_id, self.order_id
            ))
        })
    }

    /// The fulfillment's events in Shopify's shape, in history order.
    fn events<'a>(&'a self, f: &'a Fulfillment) -> impl Iterator<Item = RestEvent<'a>> {
        f.history.iter().filter_map(|h| RestEvent::of(self, h))
    }

    /// One event by its Shopify id, or 404.
    fn event<'a>(&'a self, f: &'a Fulfillment, id: u64) -> Result<RestEvent<'a>, IngestError> {
        self.events(f).find(|e| e.id == id).ok_or_else(|| {
            IngestError::NotFound(format!(
                "fulfillment event {id} is not an event of fulfillment {} of order {}",
                self.fulfillment_id, self.order_id
            ))
        })
    }

    /// The event we recorded under `id`, in Shopify's shape.
    fn event_by_our_id<'a>(&'a self, f: &'a Fulfillment, id: EventId) -> Option<RestEvent<'a>> {
        f.history
            .iter()
            .find(|h| h.event_id == id)
            .and_then(|h| RestEvent::of(self, h))
    }
}

/// The store of an Admin API call (REST or GraphQL), by its access token,
/// and the version that serves it (see [`ApiVersion::served`]): both APIs
/// admit a call the same way, so they serve the same versions.
pub(crate) async fn admit_store<'s>(
    state: &'s AppState,
    req: &HttpRequest,
    version: &str,
) -> Result<(&'s StoreRef<ShopifySettings>, ApiVersion), IngestError> {
    let token = adapter::access_token(req.headers())?;
    let store = state.stores.shopify_by_access_token(token).ok_or_else(|| {
        IngestError::Unauthorized(format!(
            "header {} is not an access token of any store configured here",
            adapter::ACCESS_TOKEN_HEADER
        ))
    })?;
    within_limit(state, &store.name, Provider::Shopify).await?;
    let version = served_version(version).map_err(|e| IngestError::NotFound(e.to_string()))?;
    Ok((store, version))
}

/// Why a recorded create cannot be shown: its event is not (or no longer)
/// in the fulfillment's history.
pub(crate) fn not_shown(recorded: &Recorded, id: u64) -> IngestError {
    IngestError::Conflict(match recorded.claim {
        Claim::Duplicate { original } => format!(
            "this event repeats event {original}, recorded earlier for this fulfillment, \
             which was deleted since or is still being applied; nothing new was recorded"
        ),
        Claim::Accepted => format!(
            "fulfillment event {id} was recorded, but a delete of event {id} had come first"
        ),
    })
}

/// The version that serves a call to the path's `version` today.
fn served_version(version: &str) -> Result<ApiVersion, VersionError> {
    ApiVersion::served(version, Utc::now().date_naive())
}

/// Shopify's header naming the version that served a call.
const API_VERSION: HeaderName = HeaderName::from_static("x-shopify-api-version");

/// Adds `X-Shopify-API-Version` to every answer of the REST and GraphQL
/// APIs, errors included: the version that served the call, which for an unsupported
/// one is the oldest supported, as Shopify says it. A path whose version
/// is none (a 404) gets none.
pub(crate) async fn served_version_header(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let served = req
        .match_info()
        .get("version")
        .and_then(|v| served_version(v).ok());
    let mut response = next.call(req).await?;
    if let Some(version) = served {
        if let Ok(value) = HeaderValue::from_str(&version.to_string()) {
            response.headers_mut().insert(API_VERSION, value);
        }
    }
    Ok(response)
}

/// A Shopify id from a path segment: a positive integer within int64, as
/// Shopify's ids are (its REST reference gives them `format: int64`).
fn path_id(segment: &str, value: &str) -> Result<u64, IngestError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .map(|id| id.unsigned_abs())
        .ok_or_else(|| {
            IngestError::Invalid(format!(
                "path segment {segment} '{value}' is not a positive integer of at most {}",
                i64::MAX
            ))
        })
}

/// An entry's ETA as the date-time the REST and GraphQL APIs answer: as
/// the provider gave it, or, known only as a date (sent as one, or
/// recorded before times were kept), that day's midnight UTC.
pub(crate) fn eta_time(entry: &HistoryEntry) -> Option<DateTime<Utc>> {
    entry.estimated_delivery_at.or_else(|| {
        entry
            .estimated_delivery
            .map(|day| day.and_time(NaiveTime::MIN).and_utc())
    })
}

/// Times as Shopify writes them: seconds and a numeric offset.
fn shopify_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// The path of the events collection. Ids are read as text, so that a bad
/// one is refused with its name by [`path_id`].
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct EventsPathParams {
    /// `unstable` or a quarterly version such as 2026-10; one Shopify no
    /// longer supports is served as the oldest supported one.
    #[param(min_length = 1)]
    version: String,
    #[param(value_type = i64, minimum = 1)]
    order_id: String,
    #[param(value_type = i64, minimum = 1)]
    fulfillment_id: String,
}

/// The path of one event.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct EventPathParams {
    /// `unstable` or a quarterly version such as 2026-10; one Shopify no
    /// longer supports is served as the oldest supported one.
    #[param(min_length = 1)]
    version: String,
    #[param(value_type = i64, minimum = 1)]
    order_id: String,
    #[param(value_type = i64, minimum = 1)]
    fulfillment_id: String,
    #[param(value_type = i64, minimum = 1)]
    event_id: String,
}

/// Shopify's answer to a delete: `{}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ShopifyDeleted)]
struct Deleted {}

/// Shopify's answer with one event: `{"fulfillment_event": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ShopifyOneEvent)]
struct OneEvent<'a> {
    fulfillment_event: RestEvent<'a>,
}

/// Shopify's answer with a list: `{"fulfillment_events": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ShopifyEventList)]
struct EventList<'a> {
    fulfillment_events: Vec<RestEvent<'a>>,
}

/// Shopify's FulfillmentEvent resource, made from a history entry; fields
/// in Shopify's order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ShopifyFulfillmentEventResource)]
struct RestEvent<'a> {
    id: u64,
    fulfillment_id: u64,
    order_id: u64,
    /// Shopify's own word, as sent.
    status: &'a str,
    message: Option<&'a str>,
    #[schema(format = DateTime)]
    happened_at: String,
    /// As the provider gave it; an ETA known only as a date (recorded
    /// before times were kept, or sent as one) is that day's midnight UTC.
    #[schema(value_type = Option<String>, format = DateTime)]
    estimated_delivery_at: Option<String>,
    city: Option<&'a str>,
    province: Option<&'a str>,
    country: Option<&'a str>,
    zip: Option<&'a str>,
    address1: Option<&'a str>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    /// Shopify's id for the shop, which the gateway is never told.
    shop_id: Option<u64>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    admin_graphql_api_id: String,
}

impl<'a> RestEvent<'a> {
    /// The entry as a FulfillmentEvent; `None` unless it is a Shopify event
    /// with a Shopify id.
    fn of(call: &EventsCall, entry: &'a HistoryEntry) -> Option<Self> {
        if entry.provider != Provider::Shopify {
            return None;
        }
        let id: u64 = entry.source_id.as_deref()?.parse().ok()?;
        let location = entry.location.as_ref();
        Some(Self {
            id,
            fulfillment_id: call.fulfillment_id,
            order_id: call.order_id,
            status: &entry.raw_status,
            message: entry.message.as_deref(),
            happened_at: shopify_time(entry.occurred_at),
            estimated_delivery_at: eta_time(entry).map(shopify_time),
            city: location.and_then(|l| l.city.as_deref()),
            province: location.and_then(|l| l.state.as_deref()),
            country: location.and_then(|l| l.country.as_deref()),
            zip: location.and_then(|l| l.postal_code.as_deref()),
            address1: location.and_then(|l| l.address1.as_deref()),
            latitude: location.and_then(|l| l.latitude),
            longitude: location.and_then(|l| l.longitude),
            shop_id: None,
            created_at: shopify_time(entry.received_at),
            updated_at: shopify_time(entry.received_at),
            admin_graphql_api_id: format!("gid://shopify/FulfillmentEvent/{id}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_ids_are_positive_integers_named_in_errors() {
        assert_eq!(path_id("order_id", "450789469").ok(), Some(450789469));
        for bad in ["0", "-1", "abc", "1.5", "", "9223372036854775808"] {
            let err = path_id("order_id", bad).unwrap_err().to_string();
            assert!(
                err.contains("order_id") && err.contains(&format!("'{bad}'")),
                "{err}"
            );
        }
    }
}
