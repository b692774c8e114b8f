//! Shopify: FulfillmentEvent and Fulfillment webhooks, and the body of the
//! REST-shaped events API. Signed with `X-Shopify-Hmac-Sha256` (base64
//! HMAC-SHA256 of the raw body under the app's client secret).

use actix_web::http::header::HeaderMap;
use serde::Deserialize;
use utoipa::ToSchema;

use super::status_map::StatusMap;
use super::{
    header, known, parse_eta, parse_json, parse_optional_time, required_header, verify, Rejection,
};
use crate::canonical::{Direction, EventKind, FulfillmentKey, Location, Observation, Provider};
use crate::config::Secret;

pub const HMAC_HEADER: &str = "X-Shopify-Hmac-Sha256";
pub const SHOP_DOMAIN_HEADER: &str = "X-Shopify-Shop-Domain";
pub const TOPIC_HEADER: &str = "X-Shopify-Topic";
pub const EVENT_ID_HEADER: &str = "X-Shopify-Event-Id";
pub const WEBHOOK_ID_HEADER: &str = "X-Shopify-Webhook-Id";
pub const ACCESS_TOKEN_HEADER: &str = "X-Shopify-Access-Token";

/// The status map table for FulfillmentEvent words.
const EVENT_WORDS: &str = "fulfillment_event";
/// The status map table for Fulfillment.status words.
const FULFILLMENT_WORDS: &str = "fulfillment";

/// The webhook topics shipgate takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    FulfillmentEventCreate,
    FulfillmentEventDelete,
    FulfillmentCreate,
    FulfillmentUpdate,
}

impl Topic {
    /// Every topic, in the order errors list them.
    pub const ALL: [Topic; 4] = [
        Self::FulfillmentEventCreate,
        Self::FulfillmentEventDelete,
        Self::FulfillmentCreate,
        Self::FulfillmentUpdate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FulfillmentEventCreate => "fulfillment_events/create",
            Self::FulfillmentEventDelete => "fulfillment_events/delete",
            Self::FulfillmentCreate => "fulfillments/create",
            Self::FulfillmentUpdate => "fulfillments/update",
        }
    }

    fn parse(value: &str) -> Result<Self, Rejection> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == value)
            .ok_or_else(|| {
                let known: Vec<_> = Self::ALL.iter().map(|t| t.as_str()).collect();
                Rejection::Invalid(format!(
                    "header X-Shopify-Topic '{value}' is not a topic shipgate takes ({})",
                    known.join(", ")
                ))
            })
    }
}

/// The shop a webhook says it is from, to find the store and its secrets.
pub fn shop_domain(headers: &HeaderMap) -> Result<&str, Rejection> {
    required_header(headers, SHOP_DOMAIN_HEADER, Rejection::Unauthorized)
}

/// The REST caller's access token, which picks its store.
pub fn access_token(headers: &HeaderMap) -> Result<&str, Rejection> {
    required_header(headers, ACCESS_TOKEN_HEADER, Rejection::Unauthorized)
}

/// Checks the webhook's signature against every secret of its store.
pub fn verify_webhook(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[Secret],
) -> Result<(), Rejection> {
    let signature = required_header(headers, HMAC_HEADER, Rejection::Unauthorized)?;
    if verify::base64_hmac_matches(secrets, body, signature) {
        Ok(())
    } else {
        Err(Rejection::Unauthorized(
            "header X-Shopify-Hmac-Sha256 does not match the body under any webhook secret of this shop"
                .into(),
        ))
    }
}

/// A FulfillmentEvent as webhooks carry it and REST clients create it.
/// The ids are required of webhooks; REST clients give them in the path.
/// Flat, without `#[serde(flatten)]`, so that parse errors name the field.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ShopifyFulfillmentEvent)]
pub struct FulfillmentEvent {
    pub id: Option<u64>,
    pub fulfillment_id: Option<u64>,
    pub order_id: Option<u64>,
    pub status: String,
    pub message: Option<String>,
    pub happened_at: Option<String>,
    pub estimated_delivery_at: Option<String>,
    pub address1: Option<String>,
    pub city: Option<String>,
    pub province: Option<String>,
    pub country: Option<String>,
    pub zip: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// A webhook's id field, which Shopify always sends.
fn required_id(field: &str, value: Option<u64>) -> Result<u64, Rejection> {
    value.ok_or_else(|| Rejection::Invalid(format!("field `{field}` is missing")))
}

/// What the delete topic needs: which event, of which fulfillment.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ShopifyDeletedEvent)]
pub struct DeletedEvent {
    id: u64,
    fulfillment_id: u64,
    order_id: u64,
    status: Option<String>,
}

/// A Fulfillment resource (`fulfillments/*` topics).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ShopifyFulfillment)]
pub struct Fulfillment {
    id: u64,
    order_id: u64,
    status: String,
    shipment_status: Option<String>,
    tracking_company: Option<String>,
    tracking_number: Option<String>,
    #[serde(default)]
    tracking_numbers: Vec<String>,
    updated_at: Option<String>,
    created_at: Option<String>,
}

/// A webhook body: the REST resource its `X-Shopify-Topic` names. Only the
/// OpenAPI document uses this type: the adapter reads the topic first, then
/// the one shape it names.
#[derive(ToSchema)]
#[schema(as = ShopifyWebhookBody)]
#[serde(untagged)]
pub enum WebhookBody {
    /// `fulfillment_events/create`
    Event(FulfillmentEvent),
    /// `fulfillment_events/delete`
    Deleted(DeletedEvent),
    /// `fulfillments/create`, `fulfillments/update`
    Fulfillment(Fulfillment),
}

/// The body of the REST create call: `{"event": {...}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ShopifyCreateEventRequest)]
pub struct CreateEventRequest {
    pub event: FulfillmentEvent,
}

/// Turns a verified webhook into an observation for `store`.
pub fn parse_webhook(
    store: &str,
    map: &StatusMap,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Observation, Rejection> {
    let topic_name = required_header(headers, TOPIC_HEADER, Rejection::Invalid)?;
    let topic = Topic::parse(topic_name)?;
    let mut obs = match topic {
        Topic::FulfillmentEventCreate => {
            let event: FulfillmentEvent = parse_json(body)?;
            let order_id = required_id("order_id", event.order_id)?;
            let fulfillment_id = required_id("fulfillment_id", event.fulfillment_id)?;
            let id = required_id("id", event.id)?;
            observe_event(store, map, order_id, fulfillment_id, id, event)?
        }
        Topic::FulfillmentEventDelete => {
            let event: DeletedEvent = parse_json(body)?;
            let mut obs = blank(
                store,
                event.order_id,
                event.fulfillment_id,
                EventKind::Retraction,
            );
            obs.raw_status = event.status.unwrap_or_default();
            obs.source_id = Some(event.id.to_string());
            obs
        }
        Topic::FulfillmentCreate | Topic::FulfillmentUpdate => {
            let f: Fulfillment = parse_json(body)?;
            let (kind, word) = match known(f.shipment_status) {
                Some(word) => (map.kind(EVENT_WORDS, &word), word),
                None => (map.kind(FULFILLMENT_WORDS, &f.status), f.status),
            };
            let mut obs = blank(store, f.order_id, f.id, kind);
            obs.raw_status = word;
            obs.carrier = known(f.tracking_company);
            obs.tracking_number = known(f.tracking_number)
                .or_else(|| f.tracking_numbers.into_iter().find(|n| !n.is_empty()));
            obs.occurred_at = match f.updated_at {
                Some(at) => parse_optional_time("updated_at", Some(&at))?,
                None => parse_optional_time("created_at", f.created_at.as_deref())?,
            };
            obs
        }
    };
    obs.delivery_id = Some(delivery_id(headers, topic, body_id(&obs, topic))?);
    Ok(obs)
}

/// Turns a REST create request into an observation; `id` is the new
/// event's id, assigned by the caller.
pub fn parse_rest_event(
    store: &str,
    map: &StatusMap,
    order_id: u64,
    fulfillment_id: u64,
    id: u64,
    body: &[u8],
) -> Result<Observation, Rejection> {
    let CreateEventRequest { event } = parse_json(body)?;
    observe_event(store, map, order_id, fulfillment_id, id, event)
}

/// The retraction of a REST-created event (`DELETE .../events/{id}.json`).
pub fn rest_retraction(store: &str, order_id: u64, fulfillment_id: u64, id: u64) -> Observation {
    let mut obs = blank(store, order_id, fulfillment_id, EventKind::Retraction);
    obs.source_id = Some(id.to_string());
    obs
}

fn observe_event(
    store: &str,
    map: &StatusMap,
    order_id: u64,
    fulfillment_id: u64,
    id: u64,
    details: FulfillmentEvent,
) -> Result<Observation, Rejection> {
    let kind = map.kind(EVENT_WORDS, &details.status);
    let mut obs = blank(store, order_id, fulfillment_id, kind);
    obs.raw_status = details.status;
    obs.source_id = Some(id.to_string());
    obs.message = known(details.message);
    obs.occurred_at = parse_optional_time("happened_at", details.happened_at.as_deref())?;
    obs.estimated_delivery = parse_eta(
        "estimated_delivery_at",
        details.estimated_delivery_at.as_deref(),
    )?;
    obs.location = Location {
        address1: known(details.address1),
        city: known(details.city),
        state: known(details.province),
        country: known(details.country),
        postal_code: known(details.zip),
        latitude: details.latitude,
        longitude: details.longitude,
    }
    .non_empty();
    Ok(obs)
}

/// The key of a Shopify fulfillment: webhooks and the REST API name it by
/// the same two integers, so both land on one fulfillment.
pub fn fulfillment_key(store: &str, order_id: u64, fulfillment_id: u64) -> FulfillmentKey {
    FulfillmentKey {
        store: store.to_owned(),
        order_ref: order_id.to_string(),
        fulfillment_ref: fulfillment_id.to_string(),
    }
}

fn blank(store: &str, order_id: u64, fulfillment_id: u64, kind: EventKind) -> Observation {
    Observation {
        provider: Provider::Shopify,
        key: fulfillment_key(store, order_id, fulfillment_id),
        direction: Direction::Forward,
        carrier: None,
        tracking_number: None,
        kind,
        raw_status: String::new(),
        message: None,
        occurred_at: None,
        estimated_delivery: None,
        location: None,
        source_id: None,
        delivery_id: None,
    }
}

fn body_id(obs: &Observation, topic: Topic) -> String {
    match topic {
        Topic::FulfillmentCreate | Topic::FulfillmentUpdate => obs.key.fulfillment_ref.clone(),
        Topic::FulfillmentEventCreate | Topic::FulfillmentEventDelete => {
            obs.source_id.clone().unwrap_or_default()
        }
    }
}

/// Shopify's guidance: dedup on (Event-Id, topic); else the delivery's
/// Webhook-Id; else the topic and the resource id.
fn delivery_id(headers: &HeaderMap, topic: Topic, body_id: String) -> Result<String, Rejection> {
    if let Some(event_id) = header(headers, EVENT_ID_HEADER)? {
        return Ok(format!("event:{event_id}:{}", topic.as_str()));
    }
    if let Some(webhook_id) = header(headers, WEBHOOK_ID_HEADER)? {
        return Ok(format!("webhook:{webhook_id}"));
    }
    Ok(format!("resource:{}:{body_id}", topic.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::ShipmentStatus;
    use crate::providers::status_map::StatusMaps;
    use crate::providers::test_support::{headers, sample};

    #[test]
    fn a_fulfillment_event_becomes_a_status_with_its_location_and_eta() {
        let maps = StatusMaps::load(None).unwrap();
        let h = headers(&[
            (TOPIC_HEADER, "fulfillment_events/create"),
            (EVENT_ID_HEADER, "e-1"),
        ]);
        let obs = parse_webhook(
            "acme",
            &maps.shopify,
            &h,
            &sample("shopify", "fulfillment_event_create.json"),
        )
        .unwrap();
        assert_eq!(obs.kind, EventKind::Status(ShipmentStatus::InTransit));
        assert_eq!(obs.key.order_ref, "450789469");
        assert_eq!(obs.key.fulfillment_ref, "255858046");
        assert!(obs.occurred_at.is_some() && obs.estimated_delivery.is_some());
        assert!(obs.location.is_some());
        assert_eq!(
            obs.delivery_id.as_deref(),
            Some("event:e-1:fulfillment_events/create")
        );
    }

    #[test]
    fn without_an_event_id_the_webhook_id_then_the_resource_id_dedup() {
        let maps = StatusMaps::load(None).unwrap();
        let body = sample("shopify", "fulfillment_event_create.json");
        let h = headers(&[
            (TOPIC_HEADER, "fulfillment_events/create"),
            (WEBHOOK_ID_HEADER, "w-9"),
        ]);
        let obs = parse_webhook("acme", &maps.shopify, &h, &body).unwrap();
        assert_eq!(obs.delivery_id.as_deref(), Some("webhook:w-9"));
        let h = headers(&[(TOPIC_HEADER, "fulfillment_events/create")]);
        let obs = parse_webhook("acme", &maps.shopify, &h, &body).unwrap();
        let source = obs.source_id.clone().unwrap();
        assert_eq!(
            obs.delivery_id,
            Some(format!("resource:fulfillment_events/create:{source}"))
        );
    }

    #[test]
    fn a_fulfillment_without_shipment_status_carries_details_only() {
        let maps = StatusMaps::load(None).unwrap();
        let h = headers(&[(TOPIC_HEADER, "fulfillments/create")]);
        let obs = parse_webhook(
            "acme",
            &maps.shopify,
            &h,
            &sample("shopify", "fulfillment_create.json"),
        )
        .unwrap();
        assert_eq!(obs.kind, EventKind::Details);
        assert!(obs.carrier.is_some() && obs.tracking_number.is_some());
        let h = headers(&[(TOPIC_HEADER, "fulfillments/update")]);
        let obs = parse_webhook(
            "acme",
            &maps.shopify,
            &h,
            &sample("shopify", "fulfillment_update.json"),
        )
        .unwrap();
        assert_eq!(obs.kind, EventKind::Status(ShipmentStatus::OutForDelivery));
    }

    #[test]
    fn a_delete_needs_only_the_ids() {
        let maps = StatusMaps::load(None).unwrap();
        let h = headers(&[(TOPIC_HEADER, "fulfillment_events/delete")]);
        let body = br#"{"id": 944956395, "fulfillment_id": 255858046, "order_id": 450789469}"#;
        let obs = parse_webhook("acme", &maps.shopify, &h, body).unwrap();
        assert_eq!(obs.kind, EventKind::Retraction);
        assert_eq!(obs.source_id.as_deref(), Some("944956395"));
    }

    #[test]
    fn unknown_topics_and_bad_fields_are_named() {
        let maps = StatusMaps::load(None).unwrap();
        let h = headers(&[(TOPIC_HEADER, "orders/create")]);
        let err = parse_webhook("acme", &maps.shopify, &h, b"{}").unwrap_err();
        assert!(err.to_string().contains("orders/create"), "{err}");
        let h = headers(&[(TOPIC_HEADER, "fulfillment_events/create")]);
        let body = br#"{"id":1,"fulfillment_id":2,"order_id":3,"status":"in_transit","happened_at":"yesterday"}"#;
        let err = parse_webhook("acme", &maps.shopify, &h, body).unwrap_err();
        assert!(err.to_string().contains("happened_at"), "{err}");
        let body =
            br#"{"id":1,"fulfillment_id":2,"order_id":3,"status":"in_transit","latitude":"north"}"#;
        let err = parse_webhook("acme", &maps.shopify, &h, body).unwrap_err();
        assert!(err.to_string().contains("`latitude`"), "{err}");
        let body = br#"{"fulfillment_id":2,"order_id":3,"status":"in_transit"}"#;
        let err = parse_webhook("acme", &maps.shopify, &h, body).unwrap_err();
        assert!(err.to_string().contains("`id` is missing"), "{err}");
    }
}
