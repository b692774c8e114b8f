//! Shopify's paths: the webhook endpoint, and the REST-shaped events API.
//!
//! The REST API answers from the fulfillment's history, so a client reads
//! its own writes: a create or delete is applied before it is answered.
//! Webhook-delivered events of the same fulfillment show in it too.

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{
    read_json_body, record, Acknowledgement, IngestError, Recorded, ShopifyError, ShopifyErrorBody,
};
use crate::app::AppState;
use crate::canonical::{EventId, FulfillmentKey, Provider};
use crate::domain::{Fulfillment, HistoryEntry};
use crate::providers::shopify as adapter;
use crate::storage::Claim;

/// The sequence the REST API numbers the events it creates from.
const EVENT_SEQUENCE: &str = "shopify:fulfillment_event";

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
/// applies it.
#[utoipa::path(
    operation_id = "shopify_webhook",
    tag = "shopify",
    summary = "Receive a Shopify webhook delivery",
    description = "Topics fulfillment_events/create, fulfillment_events/delete, fulfillments/create and \
        fulfillments/update. Verified, recorded, answered at once; applied asynchronously. A repeat \
        (same event id, or same content) gets the same 200.",
    params(
        ("X-Shopify-Topic" = inline(adapter::Topic), Header, description = "The webhook topic; picks the body's shape"),
        ("X-Shopify-Shop-Domain" = String, Header, description = "The shop, e.g. acme.myshopify.com"),
        ("X-Shopify-Event-Id" = Option<String>, Header, description = "Shared by every delivery of one change: the dedup key with the topic"),
        ("X-Shopify-Webhook-Id" = Option<String>, Header, description = "Unique per delivery: the dedup key without an event id"),
    ),
    request_body(content = adapter::WebhookBody, description = "The REST resource of the topic"),
    responses(
        (status = 200, description = "Recorded (or recorded before)", body = Acknowledgement),
        (status = 400, description = "A header or field is missing or malformed; nothing stored", body = ShopifyErrorBody),
        (status = 401, description = "Unknown shop, or the HMAC matches none of its secrets; nothing stored", body = ShopifyErrorBody),
        (status = 413, description = "The body is over server.body_limit", body = ShopifyErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ShopifyErrorBody),
        (status = 503, description = "Storage unreachable; nothing recorded, retry later", body = ShopifyErrorBody,
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
    let body = read_json_body(&req, payload, state.settings.server.body_limit).await?;
    let headers = req.headers();
    let domain = adapter::shop_domain(headers)?;
    let store = state.stores.shopify_by_domain(domain).ok_or_else(|| {
        IngestError::Unauthorized(format!(
            "header X-Shopify-Shop-Domain '{domain}' is not a shop configured here"
        ))
    })?;
    adapter::verify_webhook(headers, &body, &store.settings.webhook_secrets)?;
    let observation = adapter::parse_webhook(&store.name, &state.maps.shopify, headers, &body)?;
    let recorded = record(&state, observation).await?;
    Ok(recorded.acknowledgement())
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
        (status = 201, description = "The event, applied", body = OneEvent),
        (status = 400, description = "A path id or a field is malformed; nothing stored", body = ShopifyErrorBody),
        (status = 401, description = "The access token is missing or not a store's", body = ShopifyErrorBody),
        (status = 404, description = "The API version does not exist", body = ShopifyErrorBody),
        (status = 409, description = "The event repeats one deleted since, or was deleted before it came", body = ShopifyErrorBody),
        (status = 413, description = "The body is over server.body_limit", body = ShopifyErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ShopifyErrorBody),
        (status = 503, description = "Storage unreachable; nothing recorded, retry later", body = ShopifyErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("shopify_access_token" = [])),
)]
#[post("/admin/api/{version}/orders/{order_id}/fulfillments/{fulfillment_id}/events.json")]
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
    )?;
    let body = read_json_body(&req, payload, state.settings.server.body_limit).await?;
    let id = state.storage.next_in_sequence(EVENT_SEQUENCE).await?;
    let observation = adapter::parse_rest_event(
        call.store(),
        &state.maps.shopify,
        call.order_id,
        call.fulfillment_id,
        id,
        &body,
    )?;
    let recorded = record(&state, observation).await?;
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
        (status = 200, description = "The fulfillment's Shopify events", body = EventList),
        (status = 400, description = "A path id is not a positive integer", body = ShopifyErrorBody),
        (status = 401, description = "The access token is missing or not a store's", body = ShopifyErrorBody),
        (status = 404, description = "Unknown API version or fulfillment", body = ShopifyErrorBody),
        (status = 503, description = "Storage unreachable, retry later", body = ShopifyErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("shopify_access_token" = [])),
)]
#[get("/admin/api/{version}/orders/{order_id}/fulfillments/{fulfillment_id}/events.json")]
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
    )?;
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
        (status = 200, description = "The event", body = OneEvent),
        (status = 400, description = "A path id is not a positive integer", body = ShopifyErrorBody),
        (status = 401, description = "The access token is missing or not a store's", body = ShopifyErrorBody),
        (status = 404, description = "Unknown API version, fulfillment or event", body = ShopifyErrorBody),
        (status = 503, description = "Storage unreachable, retry later", body = ShopifyErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("shopify_access_token" = [])),
)]
#[get(
    "/admin/api/{version}/orders/{order_id}/fulfillments/{fulfillment_id}/events/{event_id}.json"
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
        (status = 200, description = "Deleted: `{}`", body = Deleted),
        (status = 400, description = "A path id is not a positive integer", body = ShopifyErrorBody),
        (status = 401, description = "The access token is missing or not a store's", body = ShopifyErrorBody),
        (status = 404, description = "Unknown API version, fulfillment or event", body = ShopifyErrorBody),
        (status = 503, description = "Storage unreachable; nothing recorded, retry later", body = ShopifyErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("shopify_access_token" = [])),
)]
#[delete(
    "/admin/api/{version}/orders/{order_id}/fulfillments/{fulfillment_id}/events/{event_id}.json"
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

/// The topics the webhook takes, as the document's enum: any other is
/// refused, so the document must not allow it.
impl utoipa::PartialSchema for adapter::Topic {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(adapter::Topic::ALL.map(adapter::Topic::as_str)))
            .into()
    }
}

impl ToSchema for adapter::Topic {}

/// A REST call admitted for one fulfillment of the caller's store.
struct EventsCall {
    order_id: u64,
    fulfillment_id: u64,
    key: FulfillmentKey,
}

impl EventsCall {
    /// Finds the caller's store by its access token, then reads the path.
    fn admit(
        state: &AppState,
        req: &HttpRequest,
        version: &str,
        order_id: &str,
        fulfillment_id: &str,
    ) -> Result<Self, IngestError> {
        let token = adapter::access_token(req.headers())?;
        let store = state.stores.shopify_by_access_token(token).ok_or_else(|| {
            IngestError::Unauthorized(format!(
                "header {} is not an access token of any store configured here",
                adapter::ACCESS_TOKEN_HEADER
            ))
        })?;
        if !is_api_version(version) {
            return Err(IngestError::NotFound(format!(
                "API version '{version}' does not exist: use `unstable` or a quarterly \
                 version from 2020-01 on, such as 2025-10"
            )));
        }
        let order_id = path_id("order_id", order_id)?;
        let fulfillment_id = path_id("fulfillment_id", fulfillment_id)?;
        Ok(Self {
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
        )?;
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

/// Why a recorded create cannot be shown: its event is not (or no longer)
/// in the fulfillment's history.
fn not_shown(recorded: &Recorded, id: u64) -> IngestError {
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

/// Shopify's API versions: `unstable`, or a quarterly release (January,
/// April, July, October) from 2020-01 on.
fn is_api_version(version: &str) -> bool {
    if version == "unstable" {
        return true;
    }
    let Some((year, month)) = version.split_once('-') else {
        return false;
    };
    year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && year.parse::<u16>().is_ok_and(|y| y >= 2020)
        && matches!(month, "01" | "04" | "07" | "10")
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

/// Times as Shopify writes them: seconds and a numeric offset.
fn shopify_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// The path of the events collection. Ids are read as text, so that a bad
/// one is refused with its name by [`path_id`].
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct EventsPathParams {
    /// `unstable` or a quarterly version from 2020-01 on, such as 2025-10.
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
    /// `unstable` or a quarterly version from 2020-01 on, such as 2025-10.
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
    happened_at: String,
    /// Only the date is kept (the carrier's local day), so only the date
    /// is answered.
    estimated_delivery_at: Option<NaiveDate>,
    city: Option<&'a str>,
    province: Option<&'a str>,
    country: Option<&'a str>,
    zip: Option<&'a str>,
    address1: Option<&'a str>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    /// Shopify's id for the shop, which the gateway is never told.
    shop_id: Option<u64>,
    created_at: String,
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
            estimated_delivery_at: entry.estimated_delivery,
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
    fn api_versions_are_unstable_or_quarterly_from_2020() {
        for good in ["unstable", "2020-01", "2021-04", "2025-07", "2026-10"] {
            assert!(is_api_version(good), "{good}");
        }
        for bad in [
            "2019-10",
            "2024-05",
            "2024-1",
            "+202-01",
            "latest",
            "2024-04-01",
            "",
        ] {
            assert!(!is_api_version(bad), "{bad}");
        }
    }

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
