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
use crate::canonical::{FulfillmentKey, Observation, Provider};

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
/// the order reference and the status may be absent.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CarriyoShipment)]
pub struct Shipment {
    shipment_id: Option<String>,
    references: References,
    carrier_account: Option<CarrierAccount>,
    post_shipping_info: PostShippingInfo,
    update_date: Option<String>,
    promised_delivery_date: Option<String>,
}

/// Which order and shipment of the merchant's the shipment is.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CarriyoReferences)]
pub struct References {
    partner_order_reference: String,
    /// Carriyo defaults it to the order reference.
    partner_shipment_reference: Option<String>,
}

/// The carrier that carries the shipment.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CarriyoCarrierAccount)]
pub struct CarrierAccount {
    carrier: Option<String>,
}

/// The shipment's tracking: its status word and tracking number.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CarriyoPostShippingInfo)]
pub struct PostShippingInfo {
    status: String,
    tracking_no: Option<String>,
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
    let fulfillment_ref =
        known(shipment.references.partner_shipment_reference).unwrap_or_else(|| order_ref.clone());
    let status = known(Some(shipment.post_shipping_info.status))
        .ok_or_else(|| Rejection::Invalid("field `post_shipping_info.status` is empty".into()))?;
    let occurred_at =
        parse_optional_local_time("update_date", shipment.update_date.as_deref(), zone)?;
    let estimated_delivery = parse_local_eta(
        "promised_delivery_date",
        shipment.promised_delivery_date.as_deref(),
    )?;
    let shipment_id = known(shipment.shipment_id);
    let delivery_id = delivery_id(
        headers,
        shipment_id.as_deref(),
        &status,
        shipment.update_date.as_deref(),
    )?;
    Ok(Observation {
        provider: Provider::Carriyo,
        key: FulfillmentKey {
            store: store.to_owned(),
            order_ref,
            fulfillment_ref,
        },
        carrier: shipment.carrier_account.and_then(|a| known(a.carrier)),
        tracking_number: known(shipment.post_shipping_info.tracking_no),
        kind: map.kind(SHIPMENT_WORDS, &status),
        raw_status: status,
        message: None,
        occurred_at,
        estimated_delivery,
        location: None,
        source_id: shipment_id,
        delivery_id,
    })
}

/// PROVIDERS.md: the `event-id` header (the same on every retry); else the
/// shipment id with its status and update time; else none, and the content
/// fingerprint alone dedups.
fn delivery_id(
    headers: &HeaderMap,
    shipment_id: Option<&str>,
    status: &str,
    update_date: Option<&str>,
) -> Result<Option<String>, Rejection> {
    if let Some(event_id) = header(headers, EVENT_ID_HEADER)? {
        return Ok(Some(format!("event:{event_id}")));
    }
    Ok(shipment_id.map(|id| {
        format!(
            "shipment:{id}:{}:{}",
            status.to_ascii_lowercase(),
            update_date.map_or("", str::trim)
        )
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
            Some("shipment:SHP-77A1:delivered:2026-11-23T10:21:07.000Z")
        );
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
