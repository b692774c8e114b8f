//! Carriyo: shipment webhooks and the body of `POST
//! /orders/shipment-status-update`, both the shipment object with no
//! wrapper. Authenticated as [`super::carriyo_auth`] says; the tenant comes
//! from the `tenant-id` header or the shipment's own `tenant`.

use std::fmt;

use actix_web::http::header::HeaderMap;
use chrono_tz::Tz;
use serde::Deserialize;
use utoipa::ToSchema;

use super::status_map::StatusMap;
use super::{
    header, known, parse_json, parse_local_eta, parse_optional_local_time, required_header,
    Rejection,
};
use crate::canonical::{Direction, FulfillmentKey, Observation, Provider};

/// The header Carriyo's key comes in unless the store names another.
pub use crate::config::DEFAULT_CARRIYO_KEY_HEADER as API_KEY_HEADER;
/// Names the tenant, and so the store; required on the order endpoint.
pub const TENANT_HEADER: &str = "tenant-id";
/// Carriyo's idempotency key: the same on every retry of one webhook.
pub const EVENT_ID_HEADER: &str = "event-id";

/// The status map table for `post_shipping_info.status` words.
const SHIPMENT_WORDS: &str = "shipment";

/// The `tenant-id` header, which the order endpoint requires; Carriyo
/// answers a missing one 403.
pub fn tenant_header(headers: &HeaderMap) -> Result<&str, Rejection> {
    required_header(headers, TENANT_HEADER, Rejection::Forbidden)
}

/// Which tenant a webhook names, and where it named it, so that an unknown
/// one is refused with the place to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenant<'a> {
    Header(&'a str),
    Body(String),
}

impl Tenant<'_> {
    /// The tenant id as sent.
    pub fn id(&self) -> &str {
        match self {
            Self::Header(id) => id,
            Self::Body(id) => id,
        }
    }
}

impl fmt::Display for Tenant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(id) => write!(f, "header {TENANT_HEADER} '{id}'"),
            Self::Body(id) => write!(f, "field `tenant` '{id}'"),
        }
    }
}

/// Only the shipment's tenant, read before the key is checked.
#[derive(Debug, Deserialize)]
struct TenantOfShipment {
    tenant: Option<String>,
}

/// The tenant a webhook names: the `tenant-id` header, else the shipment's
/// top-level `tenant`. `None` leaves the key to pick the store. A body that
/// does not parse names no tenant here; its faults are reported by
/// [`parse_shipment`] once the key is checked.
pub fn webhook_tenant<'a>(
    headers: &'a HeaderMap,
    body: &[u8],
) -> Result<Option<Tenant<'a>>, Rejection> {
    if let Some(id) = header(headers, TENANT_HEADER)? {
        return Ok(Some(Tenant::Header(id)));
    }
    Ok(serde_json::from_slice::<TenantOfShipment>(body)
        .ok()
        .and_then(|s| known(s.tenant))
        .map(Tenant::Body))
}

/// The parts of Carriyo's shipment object shipgate reads; everything but
/// the order reference and the status may be absent. Where each sits is
/// Carriyo's shipment object
/// (<https://developer.carriyo.com/developer-portal/api-reference/shipping/shipment-object/>):
/// `promised_delivery_date` at the top level, beside `update_date`, as the
/// update-delivery-promise answer shows it, not under `delivery`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CarriyoShipment)]
pub struct Shipment {
    shipment_id: Option<String>,
    /// Absent means FORWARD, Carriyo's own default.
    entity_type: Option<EntityType>,
    references: References,
    carrier_account: Option<CarrierAccount>,
    post_shipping_info: PostShippingInfo,
    update_date: Option<String>,
    promised_delivery_date: Option<String>,
}

/// Which way the shipment goes, in Carriyo's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
#[schema(as = CarriyoEntityType)]
pub enum EntityType {
    /// Merchant to customer.
    Forward,
    /// A customer return, customer to merchant: its `delivered` means back
    /// at the warehouse.
    Reverse,
}

impl From<EntityType> for Direction {
    fn from(entity: EntityType) -> Self {
        match entity {
            EntityType::Forward => Direction::Forward,
            EntityType::Reverse => Direction::Return,
        }
    }
}

/// Which order and shipment of the merchant's the shipment is.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CarriyoReferences)]
pub struct References {
    partner_order_reference: String,
    /// Carriyo copies the order reference into it when the merchant gives
    /// none; absent here, the shipment id keys the fulfillment instead.
    partner_shipment_reference: Option<String>,
}

/// The carrier that carries the shipment.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CarriyoCarrierAccount)]
pub struct CarrierAccount {
    carrier: Option<String>,
}

/// The shipment's tracking: its status word, tracking number, and the
/// reason Carriyo gives for an exceptional status (a failed attempt, a
/// delay, a cancellation) or on its own as a reason-code trigger. Where
/// the reason sits is a judgement: Carriyo's reason-code pages
/// (<https://carriyo.com/docs/reference/reason-codes/>) list the codes
/// "alongside the status code" without showing the field, so shipgate
/// reads them beside `status`, the word they qualify.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CarriyoPostShippingInfo)]
pub struct PostShippingInfo {
    status: String,
    tracking_no: Option<String>,
    /// A standard or merchant-defined code, e.g. `customer_not_available`.
    reason_code: Option<String>,
    /// The code's words, e.g. "Customer was not available for the delivery".
    reason_description: Option<String>,
}

impl PostShippingInfo {
    /// The history entry's message: the reason in words with its code, so
    /// a person reads it and a script still finds the code.
    fn reason(&self) -> Option<String> {
        let code = known(self.reason_code.clone());
        match (known(self.reason_description.clone()), code) {
            (Some(words), Some(code)) => Some(format!("{words} ({code})")),
            (words, code) => words.or(code),
        }
    }
}

/// Turns an authenticated shipment into an observation for `store`. The
/// status word is the body's `post_shipping_info.status`, never the
/// `trigger` header, which may name a metadata change instead of a status.
/// Times without an offset are read in the store's `zone`.
pub fn parse_shipment(
    store: &str,
    zone: Tz,
    map: &StatusMap,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Observation, Rejection> {
    let shipment: Shipment = parse_json(body)?;
    let order_ref = known(Some(shipment.references.partner_order_reference)).ok_or_else(|| {
        Rejection::Invalid("field `references.partner_order_reference` is empty".into())
    })?;
    let shipment_id = known(shipment.shipment_id);
    let direction = shipment
        .entity_type
        .map_or(Direction::Forward, Direction::from);
    let shipment_ref = known(shipment.references.partner_shipment_reference);
    if direction == Direction::Return && shipment_ref.is_none() && shipment_id.is_none() {
        return Err(Rejection::Invalid(
            "a REVERSE shipment needs `references.partner_shipment_reference` or `shipment_id`: \
             keyed by its order reference alone, the return would be taken for the order's \
             forward shipment"
                .into(),
        ));
    }
    let fulfillment_ref = fulfillment_ref(shipment_ref, shipment_id.as_deref(), &order_ref);
    let info = &shipment.post_shipping_info;
    let status = known(Some(info.status.clone()))
        .ok_or_else(|| Rejection::Invalid("field `post_shipping_info.status` is empty".into()))?;
    let message = info.reason();
    let occurred_at =
        parse_optional_local_time("update_date", shipment.update_date.as_deref(), zone)?;
    let estimated_delivery = parse_local_eta(
        "promised_delivery_date",
        shipment.promised_delivery_date.as_deref(),
    )?;
    let delivery_id = delivery_id(
        headers,
        shipment_id.as_deref(),
        [
            Some(status.to_ascii_lowercase()),
            shipment.update_date.as_deref().map(|d| d.trim().to_owned()),
            shipment
                .promised_delivery_date
                .as_deref()
                .map(|d| d.trim().to_owned()),
            known(info.reason_code.clone()),
        ],
    )?;
    Ok(Observation {
        provider: Provider::Carriyo,
        key: FulfillmentKey {
            store: store.to_owned(),
            order_ref,
            fulfillment_ref,
        },
        direction,
        carrier: shipment.carrier_account.and_then(|a| known(a.carrier)),
        tracking_number: known(shipment.post_shipping_info.tracking_no),
        kind: map.kind(SHIPMENT_WORDS, &status),
        raw_status: status,
        message,
        occurred_at,
        estimated_delivery,
        location: None,
        source_id: shipment_id,
        delivery_id,
    })
}

/// Which fulfillment a shipment is: the merchant's
/// `partner_shipment_reference`; else Carriyo's own `shipment_id`, unique
/// per shipment, so that two shipments of one order (a split, or a return
/// beside its forward shipment) never share a fulfillment; else, with
/// neither (the order endpoint's minimal body), the order reference, which
/// is what Carriyo copies into a shipment reference the merchant left out
/// (<https://carriyo.docs.stoplight.io/carriyo-shipment-api/models/references-request>).
fn fulfillment_ref(
    shipment_ref: Option<String>,
    shipment_id: Option<&str>,
    order_ref: &str,
) -> String {
    shipment_ref
        .or_else(|| shipment_id.map(str::to_owned))
        .unwrap_or_else(|| order_ref.to_owned())
}

/// PROVIDERS.md: the `event-id` header (the same on every retry); else the
/// shipment id with its status and update time, to which shipgate adds the
/// promised delivery date and reason code, so that a metadata or
/// reason-code webhook that changes only those is not taken for a resend;
/// else none, and the content fingerprint alone dedups.
fn delivery_id(
    headers: &HeaderMap,
    shipment_id: Option<&str>,
    news: [Option<String>; 4],
) -> Result<Option<String>, Rejection> {
    if let Some(event_id) = header(headers, EVENT_ID_HEADER)? {
        return Ok(Some(format!("event:{event_id}")));
    }
    Ok(shipment_id.map(|id| {
        let parts: Vec<String> = news.into_iter().map(Option::unwrap_or_default).collect();
        format!("shipment:{id}:{}", parts.join(":"))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{EventKind, ShipmentStatus};
    use crate::providers::status_map::StatusMaps;
    use crate::providers::test_support::{headers, sample};

    #[test]
    fn a_sample_shipment_becomes_a_status_with_its_details() {
        let maps = StatusMaps::load(None).unwrap();
        let h = headers(&[
            (EVENT_ID_HEADER, "e-1"),
            ("trigger", "default_label_update"),
        ]);
        let obs = parse_shipment(
            "acme",
            Tz::UTC,
            &maps.carriyo,
            &h,
            &sample("carriyo", "shipment_in_transit.json"),
        )
        .unwrap();
        assert_eq!(obs.kind, EventKind::Status(ShipmentStatus::InTransit));
        assert_eq!(
            (obs.key.order_ref.as_str(), obs.key.fulfillment_ref.as_str()),
            ("ORD-1001", "ORD-1001-1")
        );
        assert_eq!(obs.carrier.as_deref(), Some("ARAMEX"));
        assert_eq!(obs.tracking_number.as_deref(), Some("44012345678"));
        assert_eq!(obs.occurred_at, "2026-11-21T11:42:18Z".parse().ok());
        assert_eq!(obs.estimated_delivery, "2026-11-24".parse().ok());
        assert_eq!(obs.source_id.as_deref(), Some("SHP-77A1"));
        assert_eq!(obs.delivery_id.as_deref(), Some("event:e-1"));
    }

    #[test]
    fn a_minimal_shipment_defaults_its_reference_and_dedups_by_content() {
        let maps = StatusMaps::load(None).unwrap();
        let body = br#"{"references":{"partner_order_reference":"O-1"},"post_shipping_info":{"status":"booked"}}"#;
        let obs = parse_shipment("acme", Tz::UTC, &maps.carriyo, &HeaderMap::new(), body).unwrap();
        assert_eq!(obs.key.fulfillment_ref, "O-1");
        assert_eq!(obs.kind, EventKind::Status(ShipmentStatus::PreTransit));
        assert_eq!(
            (obs.carrier, obs.occurred_at, obs.delivery_id),
            (None, None, None)
        );
    }

    #[test]
    fn without_an_event_id_the_shipment_status_and_time_dedup() {
        let maps = StatusMaps::load(None).unwrap();
        let obs = parse_shipment(
            "acme",
            Tz::UTC,
            &maps.carriyo,
            &HeaderMap::new(),
            &sample("carriyo", "shipment_delivered.json"),
        )
        .unwrap();
        assert_eq!(
            obs.delivery_id.as_deref(),
            Some("shipment:SHP-77A1:delivered:2026-11-23T10:21:07.000Z:2026-11-24T18:00:00.000Z:")
        );
        let moved = parse_shipment(
            "acme",
            Tz::UTC,
            &maps.carriyo,
            &HeaderMap::new(),
            &sample("carriyo", "shipment_promised_delivery_update.json"),
        )
        .unwrap();
        assert_ne!(moved.delivery_id, obs.delivery_id);
    }

    fn observe(name: &str) -> Observation {
        let maps = StatusMaps::load(None).unwrap();
        parse_shipment(
            "acme",
            Tz::UTC,
            &maps.carriyo,
            &HeaderMap::new(),
            &sample("carriyo", name),
        )
        .unwrap()
    }

    #[test]
    fn a_reverse_shipment_is_a_return_keyed_by_its_own_reference() {
        let obs = observe("shipment_return_delivered.json");
        assert_eq!(obs.direction, Direction::Return);
        assert_eq!(obs.key.fulfillment_ref, "ORD-1001-R1");
        assert_eq!(obs.kind, EventKind::Status(ShipmentStatus::Delivered));
        assert_eq!(
            observe("shipment_in_transit.json").direction,
            Direction::Forward
        );
        let maps = StatusMaps::load(None).unwrap();
        let no_type = br#"{"references":{"partner_order_reference":"O"},"post_shipping_info":{"status":"booked"}}"#;
        let obs =
            parse_shipment("acme", Tz::UTC, &maps.carriyo, &HeaderMap::new(), no_type).unwrap();
        assert_eq!(obs.direction, Direction::Forward, "Carriyo's default");
    }

    #[test]
    fn a_return_with_no_reference_of_its_own_is_refused() {
        let maps = StatusMaps::load(None).unwrap();
        let body = br#"{"entity_type":"REVERSE","references":{"partner_order_reference":"O"},"post_shipping_info":{"status":"booked"}}"#;
        let err =
            parse_shipment("acme", Tz::UTC, &maps.carriyo, &HeaderMap::new(), body).unwrap_err();
        assert!(
            err.to_string().contains("partner_shipment_reference")
                && err.to_string().contains("shipment_id"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_entity_type_is_refused_by_name() {
        let maps = StatusMaps::load(None).unwrap();
        let body = br#"{"entity_type":"SIDEWAYS","references":{"partner_order_reference":"O"},"post_shipping_info":{"status":"booked"}}"#;
        let err =
            parse_shipment("acme", Tz::UTC, &maps.carriyo, &HeaderMap::new(), body).unwrap_err();
        assert!(err.to_string().contains("entity_type"), "{err}");
    }

    #[test]
    fn without_a_shipment_reference_the_shipment_id_keys_the_fulfillment() {
        let obs = observe("shipment_without_shipment_reference.json");
        assert_eq!(
            (obs.key.order_ref.as_str(), obs.key.fulfillment_ref.as_str()),
            ("ORD-2002", "SHP-88B3")
        );
    }

    #[test]
    fn the_reason_becomes_the_message() {
        let obs = observe("shipment_failed_delivery_attempt.json");
        assert_eq!(
            obs.message.as_deref(),
            Some("Customer was not available for the delivery (customer_not_available)")
        );
        let only_code = PostShippingInfo {
            status: "delayed".into(),
            tracking_no: None,
            reason_code: Some("bad_weather_conditions".into()),
            reason_description: Some(" ".into()),
        };
        assert_eq!(
            only_code.reason().as_deref(),
            Some("bad_weather_conditions")
        );
        assert_eq!(observe("shipment_in_transit.json").message, None);
    }

    #[test]
    fn the_tenant_comes_from_the_header_then_the_body() {
        let body = sample("carriyo", "shipment_in_transit.json");
        let h = headers(&[(TENANT_HEADER, "BETA")]);
        assert_eq!(
            webhook_tenant(&h, &body).unwrap(),
            Some(Tenant::Header("BETA"))
        );
        let none = HeaderMap::new();
        assert_eq!(
            webhook_tenant(&none, &body).unwrap(),
            Some(Tenant::Body("ACME".into()))
        );
        assert_eq!(webhook_tenant(&none, b"not json").unwrap(), None);
        assert_eq!(Tenant::Body("X".into()).to_string(), "field `tenant` 'X'");
    }

    #[test]
    fn empty_references_and_statuses_are_named() {
        let maps = StatusMaps::load(None).unwrap();
        let body = br#"{"references":{"partner_order_reference":" "},"post_shipping_info":{"status":"booked"}}"#;
        let err =
            parse_shipment("acme", Tz::UTC, &maps.carriyo, &HeaderMap::new(), body).unwrap_err();
        assert!(
            err.to_string()
                .contains("references.partner_order_reference"),
            "{err}"
        );
        let body =
            br#"{"references":{"partner_order_reference":"O"},"post_shipping_info":{"status":""}}"#;
        let err =
            parse_shipment("acme", Tz::UTC, &maps.carriyo, &HeaderMap::new(), body).unwrap_err();
        assert!(
            err.to_string().contains("post_shipping_info.status"),
            "{err}"
        );
    }
}
