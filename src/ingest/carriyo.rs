//! Carriyo's paths: the shipment webhook, and the order endpoint
//! `POST /orders/shipment-status-update`.

use actix_web::http::header::HeaderMap;
use actix_web::{post, web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{
    read_json_body, record, Acknowledgement, CarriyoError, CarriyoErrorBody, IngestError, StoreRef,
};
use crate::app::AppState;
use crate::canonical::FulfillmentKey;
use crate::config::CarriyoSettings;
use crate::domain::Fulfillment;
use crate::fulfillment::timestamp;
use crate::providers::carriyo as adapter;

/// Registers Carriyo's two paths.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(webhook).service(shipment_status_update);
}

/// `POST /webhooks/carriyo`: authenticate, record, answer 200 at once
/// (Carriyo waits 30 s at most); a worker applies it.
#[utoipa::path(
    operation_id = "carriyo_webhook",
    tag = "carriyo",
    summary = "Receive a Carriyo shipment webhook",
    description = "The body is Carriyo's shipment object. The tenant is the tenant-id header, else the \
        shipment's `tenant`, else the one whose key was sent. Recorded and answered at once; applied \
        asynchronously. A repeat (same event-id, or same content) gets the same 200.",
    params(
        ("tenant-id" = Option<String>, Header, description = "The Carriyo tenant; optional here"),
        ("event-id" = Option<String>, Header, description = "The same on every retry: the dedup key"),
        ("trigger" = Option<String>, Header, description = "What triggered the webhook; the status is read from the body"),
    ),
    request_body(content = adapter::Shipment, description = "Carriyo's shipment object (only the fields shown are read)"),
    responses(
        (status = 200, description = "Recorded (or recorded before)", body = Acknowledgement),
        (status = 400, description = "A header or field is missing or malformed; nothing stored", body = CarriyoErrorBody),
        (status = 401, description = "The key is missing, or not a key of the tenant; nothing stored", body = CarriyoErrorBody),
        (status = 413, description = "The body is over server.body_limit", body = CarriyoErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = CarriyoErrorBody),
        (status = 503, description = "Storage unreachable; nothing recorded, retry later", body = CarriyoErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("carriyo_api_key" = [])),
)]
#[post("/webhooks/carriyo")]
async fn webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, CarriyoError> {
    let body = read_json_body(&req, payload, state.settings.server.body_limit).await?;
    let headers = req.headers();
    let key = adapter::api_key(headers)?;
    let store = match adapter::webhook_tenant(headers, &body)? {
        Some(tenant) => store_of_tenant(&state, &tenant)?,
        None => state.stores.carriyo_by_key(key).ok_or_else(|| {
            IngestError::Unauthorized(format!(
                "header {} is not an API key of any Carriyo tenant configured here",
                adapter::API_KEY_HEADER
            ))
        })?,
    };
    adapter::verify_key(key, &store.settings)?;
    let observation = adapter::parse_shipment(&store.name, &state.maps.carriyo, headers, &body)?;
    let recorded = record(&state, observation).await?;
    Ok(recorded.acknowledgement())
}

/// `POST /orders/shipment-status-update` (headers `x-api-key` and
/// `tenant-id`, body: the shipment). The order matches when the store
/// already knows its `partner_order_reference`: a fulfillment of it exists
/// or a Redo-style client created it. No match: 200 with an empty body and
/// nothing recorded, as Carriyo does. A match is recorded, applied before
/// answering (a duplicate is not applied again), and answered 200 with the
/// order as it is now, in Carriyo's snake_case style:
///
/// ```json
/// {"tenant": "ACME", "partner_order_reference": "ORD-1001", "status": "open",
///  "shipments": [{"partner_shipment_reference": "ORD-1001-1",
///                 "status": "out_for_delivery", "carrier": "ARAMEX",
///                 "tracking_no": "44012345678",
///                 "estimated_delivery_date": "2026-11-24",
///                 "delivered_at": null,
///                 "update_date": "2026-11-23T05:58:41.123Z"}]}
/// ```
///
/// `shipments` holds every fulfillment of the order, by reference; their
/// `status` is the canonical one and `update_date` when shipgate last
/// changed them. The order's own `status` is always `open`: shipgate tracks
/// shipments, not order lifecycles.
#[utoipa::path(
    operation_id = "carriyo_order_shipment_status_update",
    tag = "carriyo",
    summary = "Update an order's shipment status (Carriyo's order endpoint shape)",
    description = "Recorded and applied before the answer when the store knows the order; otherwise \
        200 with an empty body and nothing recorded, as Carriyo does.",
    request_body(content = adapter::Shipment, description = "Carriyo's shipment object (only the fields shown are read)"),
    responses(
        (status = 200, description = "The order as it is now; an empty body when no order matches", body = OrderAnswer),
        (status = 400, description = "A header or field is missing or malformed; nothing stored", body = CarriyoErrorBody),
        (status = 401, description = "The key or tenant-id is missing, or the key is not the tenant's; nothing stored", body = CarriyoErrorBody),
        (status = 413, description = "The body is over server.body_limit", body = CarriyoErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = CarriyoErrorBody),
        (status = 503, description = "Storage unreachable; nothing recorded, retry later", body = CarriyoErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("carriyo_api_key" = [], "carriyo_tenant" = [])),
)]
#[post("/orders/shipment-status-update")]
async fn shipment_status_update(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, CarriyoError> {
    let body = read_json_body(&req, payload, state.settings.server.body_limit).await?;
    let headers = req.headers();
    let store = authenticate_order_call(&state, headers)?;
    let observation = adapter::parse_shipment(&store.name, &state.maps.carriyo, headers, &body)?;
    if !order_is_known(&state, &observation.key).await? {
        tracing::info!(
            store = %store.name,
            order = %observation.key.order_ref,
            "Carriyo status update for an order this store does not know; nothing recorded"
        );
        return Ok(HttpResponse::Ok().finish());
    }
    let recorded = record(&state, observation).await?;
    if !recorded.is_duplicate() {
        state.core.apply(&recorded.event).await?;
    }
    let fulfillments = state
        .storage
        .fulfillments_of_order(&store.name, &recorded.event.key.order_ref)
        .await?;
    Ok(HttpResponse::Ok().json(OrderAnswer::new(
        &store.settings,
        &recorded.event.key.order_ref,
        &fulfillments,
    )))
}

/// Both headers are required here; the key must be one of the tenant's.
fn authenticate_order_call<'s>(
    state: &'s AppState,
    headers: &HeaderMap,
) -> Result<&'s StoreRef<CarriyoSettings>, IngestError> {
    let key = adapter::api_key(headers)?;
    let tenant = adapter::Tenant::Header(adapter::tenant_header(headers)?);
    let store = store_of_tenant(state, &tenant)?;
    adapter::verify_key(key, &store.settings)?;
    Ok(store)
}

/// The store of a named tenant; an unknown tenant is refused with where it
/// was named, as Carriyo should not retry it.
fn store_of_tenant<'s>(
    state: &'s AppState,
    tenant: &adapter::Tenant<'_>,
) -> Result<&'s StoreRef<CarriyoSettings>, IngestError> {
    state.stores.carriyo_by_tenant(tenant.id()).ok_or_else(|| {
        IngestError::Unauthorized(format!("{tenant} is not a Carriyo tenant configured here"))
    })
}

/// Whether the store knows this order: some fulfillment of it, or an order
/// a Redo-style client created under that id.
async fn order_is_known(state: &AppState, key: &FulfillmentKey) -> Result<bool, IngestError> {
    let fulfillments = state
        .storage
        .fulfillments_of_order(&key.store, &key.order_ref)
        .await?;
    if !fulfillments.is_empty() {
        return Ok(true);
    }
    Ok(state
        .storage
        .order(&key.store, &key.order_ref)
        .await?
        .is_some())
}

/// The order as the order endpoint answers it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CarriyoOrder)]
struct OrderAnswer<'a> {
    tenant: &'a str,
    partner_order_reference: &'a str,
    status: &'static str,
    shipments: Vec<ShipmentAnswer<'a>>,
}

/// One fulfillment of the order, in the answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CarriyoOrderShipment)]
struct ShipmentAnswer<'a> {
    partner_shipment_reference: &'a str,
    status: &'static str,
    carrier: Option<&'a str>,
    tracking_no: Option<&'a str>,
    estimated_delivery_date: Option<NaiveDate>,
    delivered_at: Option<String>,
    update_date: String,
}

impl<'a> OrderAnswer<'a> {
    fn new(
        store: &'a CarriyoSettings,
        order_ref: &'a str,
        fulfillments: &'a [Fulfillment],
    ) -> Self {
        Self {
            tenant: &store.tenant_id,
            partner_order_reference: order_ref,
            status: "open",
            shipments: fulfillments
                .iter()
                .map(|f| ShipmentAnswer {
                    partner_shipment_reference: &f.key.fulfillment_ref,
                    status: f.status.as_str(),
                    carrier: f.carrier.as_deref(),
                    tracking_no: f.tracking_number.as_deref(),
                    estimated_delivery_date: f.estimated_delivery_date,
                    delivered_at: f.delivered_at.map(timestamp),
                    update_date: timestamp(f.updated_at),
                })
                .collect(),
        }
    }
}
