//! Redo-style API: the bodies of create-order, create-fulfillment and
//! shipment-status as Redo's published OpenAPI document
//! (`@redotech/redo-api-schema`, `lib/openapi.yaml`) defines them, and the
//! `Authorization: Bearer` check. Redo's words are the canonical vocabulary
//! itself; they still go through the status map, so an override applies
//! here as everywhere.

use std::ops::RangeInclusive;

use actix_web::http::header::HeaderMap;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use super::status_map::StatusMap;
use super::{
    header, known, parse_eta, parse_json, parse_optional_time, parse_time, required_header, verify,
    Rejection,
};
use crate::canonical::{
    AutomationEvent, Direction, FulfillmentKey, Location, Observation, Provider, ShipmentStatus,
};
use crate::config::Secret;
use crate::domain::LineItem;

/// Carries `Bearer <token>`, one of the store's `api_tokens`.
pub const AUTHORIZATION_HEADER: &str = "Authorization";
/// A client's id for one shipment-status delivery, so a retry is not
/// applied twice.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// The status map table for Redo's words.
const SHIPMENT_WORDS: &str = "shipment";
/// How many units one line item may hold, per the schema.
const QUANTITY_RANGE: RangeInclusive<u32> = 1..=1000;
/// The longest `imageUrl` the schema allows, in characters.
const IMAGE_URL_MAX_CHARS: usize = 2048;

/// Checks `Authorization: Bearer <token>` against every token of the store
/// `store_id` names (several are live while one is rotated).
pub fn verify_bearer(
    headers: &HeaderMap,
    tokens: &[Secret],
    store_id: &str,
) -> Result<(), Rejection> {
    let value = required_header(headers, AUTHORIZATION_HEADER, Rejection::Unauthorized)?;
    let token = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| {
            Rejection::Unauthorized(
                "header Authorization is not of the form `Bearer <token>`".into(),
            )
        })?;
    if verify::secret_matches(tokens, token) {
        Ok(())
    } else {
        Err(Rejection::Unauthorized(format!(
            "header Authorization carries a bearer token that is not a token of store {store_id}"
        )))
    }
}

/// The client's `Idempotency-Key`: Redo's delivery id when sent; without
/// it the content fingerprint alone dedups.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Rejection> {
    Ok(header(headers, IDEMPOTENCY_KEY_HEADER)?.map(str::to_owned))
}

/// A line item's quantity: the schema bounds it to 1..=1000, so a value
/// outside cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Quantity(u32);

impl PartialSchema for Quantity {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(*QUANTITY_RANGE.start()))
            .maximum(Some(*QUANTITY_RANGE.end()))
            .into()
    }
}

impl ToSchema for Quantity {}

impl TryFrom<u32> for Quantity {
    type Error = String;
    fn try_from(n: u32) -> Result<Self, Self::Error> {
        if QUANTITY_RANGE.contains(&n) {
            Ok(Self(n))
        } else {
            Err(format!(
                "quantity {n} is outside {}..={}",
                QUANTITY_RANGE.start(),
                QUANTITY_RANGE.end()
            ))
        }
    }
}

impl From<Quantity> for u32 {
    fn from(q: Quantity) -> Self {
        q.0
    }
}

/// A money amount: a decimal in the order's currency (79.99, not cents),
/// never negative. Kept as the number sent, so it is answered back alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Number", into = "serde_json::Number")]
pub struct Amount(serde_json::Number);

impl PartialSchema for Amount {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .minimum(Some(0))
            .into()
    }
}

impl ToSchema for Amount {}

impl TryFrom<serde_json::Number> for Amount {
    type Error = String;
    fn try_from(n: serde_json::Number) -> Result<Self, Self::Error> {
        if n.as_f64().is_some_and(|v| v >= 0.0) {
            Ok(Self(n))
        } else {
            Err(format!(
                "{n} is negative; amounts are decimals of at least 0"
            ))
        }
    }
}

impl From<Amount> for serde_json::Number {
    fn from(a: Amount) -> Self {
        a.0
    }
}

/// A product image URL of at most 2048 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageUrl(String);

impl PartialSchema for ImageUrl {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(IMAGE_URL_MAX_CHARS))
            .into()
    }
}

impl ToSchema for ImageUrl {}

impl TryFrom<String> for ImageUrl {
    type Error = String;
    fn try_from(url: String) -> Result<Self, Self::Error> {
        let chars = url.chars().count();
        if chars <= IMAGE_URL_MAX_CHARS {
            Ok(Self(url))
        } else {
            Err(format!(
                "the URL has {chars} characters; at most {IMAGE_URL_MAX_CHARS} are allowed"
            ))
        }
    }
}

impl From<ImageUrl> for String {
    fn from(url: ImageUrl) -> Self {
        url.0
    }
}

/// `orders-api-create-order-request`: also what get-order answers back,
/// so it serializes to the same shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrderRequest {
    pub order_id: String,
    pub created_at: String,
    pub line_items: Vec<OrderLineItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<Customer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipping: Option<Shipping>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_price: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtotal_price: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_tax: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_discount: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing_address: Option<Address>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
}

/// `orders-api-line-item`: fulfillments copy title, product, variant and
/// SKU from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderLineItem {
    pub id: String,
    pub product_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant_id: Option<String>,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    pub quantity: Quantity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<ImageUrl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discount: Option<Amount>,
}

/// `orders-api-customer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
}

/// `orders-api-shipping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Shipping {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

/// `orders-api-shipping-address` and `orders-api-billing-address`, which
/// are the same (note `province`, where tracking locations say `state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address2: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub province: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
}

/// A create-order request that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    pub created_at: DateTime<Utc>,
    pub request: CreateOrderRequest,
}

/// Parses and checks a create-order body.
pub fn parse_create_order(body: &[u8]) -> Result<NewOrder, Rejection> {
    let request: CreateOrderRequest = parse_json(body)?;
    if request.order_id.trim().is_empty() {
        return Err(Rejection::Invalid("field `orderId` is empty".into()));
    }
    require_line_items(&request.line_items)?;
    let created_at = parse_time("createdAt", &request.created_at)?;
    Ok(NewOrder {
        created_at,
        request,
    })
}

/// `orders-api-create-fulfillment-request` as sent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CreateFulfillmentRequest)]
pub struct CreateFulfillmentBody {
    fulfillment_id: Option<String>,
    line_items: Vec<FulfilledItem>,
    tracking: Option<Tracking>,
    #[serde(default)]
    use_dummy_tracking: bool,
    initial_tracking: Option<TrackingBody>,
}

/// One line item to fulfill: which of the order's items, how many.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
pub struct FulfilledItem {
    pub id: String,
    pub quantity: Quantity,
}

/// The shipment's carrier and tracking number.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
pub struct Tracking {
    pub carrier: String,
    pub code: String,
}

/// A create-fulfillment request that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFulfillment {
    /// The client's id for the fulfillment; the gateway makes one if absent.
    pub fulfillment_id: Option<String>,
    pub line_items: Vec<FulfilledItem>,
    pub tracking: Option<Tracking>,
    /// The dummy tracker's first update: only with `useDummyTracking`
    /// (the schema says `initialTracking` is ignored otherwise), and
    /// `pre_transit` when the client gave none.
    pub initial_tracking: Option<TrackingUpdate>,
}

/// Parses and checks a create-fulfillment body. `initialTracking` is
/// checked even when it will be ignored, as the schema still constrains it.
pub fn parse_create_fulfillment(body: &[u8]) -> Result<NewFulfillment, Rejection> {
    let request: CreateFulfillmentBody = parse_json(body)?;
    require_line_items(&request.line_items)?;
    let initial = request
        .initial_tracking
        .map(|t| t.check("initialTracking.", &initial_tracking_words()))
        .transpose()?;
    let initial_tracking = request.use_dummy_tracking.then(|| {
        initial.unwrap_or_else(|| TrackingUpdate::bare(ShipmentStatus::PreTransit.as_str()))
    });
    Ok(NewFulfillment {
        fulfillment_id: known(request.fulfillment_id),
        line_items: request.line_items,
        tracking: request.tracking,
        initial_tracking,
    })
}

/// The fulfillment's line items: each requested one must be an item of
/// the order, whose title, product, variant and SKU it takes.
pub fn fulfilled_line_items(
    order: &CreateOrderRequest,
    requested: &[FulfilledItem],
) -> Result<Vec<LineItem>, Rejection> {
    requested
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let ordered = order
                .line_items
                .iter()
                .find(|o| o.id == item.id)
                .ok_or_else(|| {
                    let ids: Vec<&str> = order.line_items.iter().map(|o| o.id.as_str()).collect();
                    Rejection::Invalid(format!(
                        "field `lineItems[{i}].id`: '{}' is not a line item of order {} ({})",
                        item.id,
                        order.order_id,
                        ids.join(", ")
                    ))
                })?;
            Ok(LineItem {
                id: item.id.clone(),
                quantity: item.quantity.into(),
                title: Some(ordered.title.clone()),
                product_id: Some(ordered.product_id.clone()),
                variant_id: ordered.variant_id.clone(),
                sku: ordered.sku.clone(),
            })
        })
        .collect()
}

/// `orders-api-update-fulfillment-status-request`, and the same fields in
/// create-fulfillment's `initialTracking`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = TrackingUpdateRequest)]
pub struct TrackingBody {
    status: String,
    estimated_delivery_date: Option<String>,
    message: Option<String>,
    datetime: Option<String>,
    location: Option<TrackingLocation>,
}

/// `orders-api-tracking-location`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackingLocation {
    city: Option<String>,
    state: Option<String>,
    country: Option<String>,
    postal_code: Option<String>,
}

/// A tracking update that passed every check: an allowed word, and its
/// parsed time, ETA and location.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackingUpdate {
    word: String,
    message: Option<String>,
    occurred_at: Option<DateTime<Utc>>,
    estimated_delivery: Option<NaiveDate>,
    location: Option<Location>,
}

impl TrackingUpdate {
    fn bare(word: &str) -> Self {
        Self {
            word: word.to_owned(),
            message: None,
            occurred_at: None,
            estimated_delivery: None,
            location: None,
        }
    }
}

impl TrackingBody {
    /// Checks the word against `allowed` and parses the rest; `prefix`
    /// makes field paths (`initialTracking.datetime`).
    fn check(self, prefix: &str, allowed: &[&str]) -> Result<TrackingUpdate, Rejection> {
        if !allowed.contains(&self.status.as_str()) {
            return Err(Rejection::Invalid(format!(
                "field `{prefix}status`: '{}' is not one of {}",
                self.status,
                allowed.join(", ")
            )));
        }
        Ok(TrackingUpdate {
            message: known(self.message),
            occurred_at: parse_optional_time(
                &format!("{prefix}datetime"),
                self.datetime.as_deref(),
            )?,
            estimated_delivery: parse_eta(
                &format!("{prefix}estimatedDeliveryDate"),
                self.estimated_delivery_date.as_deref(),
            )?,
            location: self.location.and_then(|l| {
                Location {
                    city: known(l.city),
                    state: known(l.state),
                    country: known(l.country),
                    postal_code: known(l.postal_code),
                    ..Location::default()
                }
                .non_empty()
            }),
            word: self.status,
        })
    }
}

/// Parses and checks a shipment-status body.
pub fn parse_shipment_status(body: &[u8]) -> Result<TrackingUpdate, Rejection> {
    let request: TrackingBody = parse_json(body)?;
    request.check("", &shipment_status_words())
}

/// The observation a checked update makes for fulfillment `key`, its word
/// mapped through the status map; `delivery_id` is the Idempotency-Key.
pub fn observe(
    map: &StatusMap,
    key: FulfillmentKey,
    update: TrackingUpdate,
    delivery_id: Option<String>,
) -> Observation {
    Observation {
        provider: Provider::Redo,
        key,
        direction: Direction::Forward,
        carrier: None,
        tracking_number: None,
        kind: map.kind(SHIPMENT_WORDS, &update.word),
        raw_status: update.word,
        message: update.message,
        occurred_at: update.occurred_at,
        estimated_delivery: update.estimated_delivery,
        location: update.location,
        source_id: None,
        delivery_id,
    }
}

fn require_line_items<T>(items: &[T]) -> Result<(), Rejection> {
    if items.is_empty() {
        Err(Rejection::Invalid(
            "field `lineItems`: at least one line item is required".into(),
        ))
    } else {
        Ok(())
    }
}

/// What shipment-status takes: every status but `unknown`, and the events.
fn shipment_status_words() -> Vec<&'static str> {
    ShipmentStatus::ALL
        .into_iter()
        .filter(|s| *s != ShipmentStatus::Unknown)
        .map(ShipmentStatus::as_str)
        .chain(
            AutomationEvent::ALL
                .into_iter()
                .map(AutomationEvent::as_str),
        )
        .collect()
}

/// What `initialTracking.status` takes: the statuses, `unknown` included,
/// and no events.
fn initial_tracking_words() -> Vec<&'static str> {
    ShipmentStatus::ALL
        .into_iter()
        .map(ShipmentStatus::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::sample;

    #[test]
    fn a_created_order_serializes_back_to_what_was_sent() {
        let order = parse_create_order(&sample("redo", "create_order.json")).unwrap();
        let sent: serde_json::Value =
            serde_json::from_slice(&sample("redo", "create_order.json")).unwrap();
        assert_eq!(serde_json::to_value(&order.request).unwrap(), sent);
    }

    #[test]
    fn initial_tracking_counts_only_with_dummy_tracking() {
        let mut body: serde_json::Value =
            serde_json::from_slice(&sample("redo", "create_fulfillment.json")).unwrap();
        let with = parse_create_fulfillment(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            with.initial_tracking.map(|t| t.word).as_deref(),
            Some("pre_transit")
        );
        body["useDummyTracking"] = false.into();
        let without = parse_create_fulfillment(body.to_string().as_bytes()).unwrap();
        assert_eq!(without.initial_tracking, None);
        body["useDummyTracking"] = true.into();
        body["initialTracking"]["status"] = "delayed".into();
        let err = parse_create_fulfillment(body.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("initialTracking.status"), "{err}");
    }

    #[test]
    fn amounts_and_image_urls_are_bounded_by_their_path() {
        let mut body: serde_json::Value =
            serde_json::from_slice(&sample("redo", "create_order.json")).unwrap();
        body["lineItems"][1]["price"] = (-1.0).into();
        let err = parse_create_order(body.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("lineItems[1].price"), "{err}");
        body["lineItems"][1]["price"] = 1.into();
        body["lineItems"][0]["imageUrl"] = "x".repeat(2049).into();
        let err = parse_create_order(body.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("lineItems[0].imageUrl"), "{err}");
    }
}
