//! Carriyo's paths: the shipment webhook, and the order endpoint
//! `POST /orders/shipment-status-update`.

use actix_web::http::header::{ContentType, HeaderMap};
use actix_web::{post, web, HttpRequest, HttpResponse};
use chrono::{NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{
    admit, admit_json_body, carriyo_timestamp, record, record_event, within_limit, Acknowledgement,
    CarriyoError, CarriyoErrorBody, IngestError, StoreRef,
};
use crate::app::AppState;
use crate::canonical::{Observation, Provider, ShipmentStatus};
use crate::config::CarriyoSettings;
use crate::domain::{Fulfillment, Order};
use crate::providers::{carriyo as adapter, carriyo_auth};

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
        shipment's `tenant`, else the one whose credentials were sent. Recorded and answered at once; applied \
        asynchronously. A repeat (same event-id, or same content) gets the same 200.",
    params(
        ("tenant-id" = Option<String>, Header, description = "The Carriyo tenant; optional here"),
        ("event-id" = Option<String>, Header, max_length = 255,
            description = "The same on every retry: the dedup key; at most 255 bytes"),
        ("trigger" = Option<String>, Header, description = "What triggered the webhook; the status is read from the body"),
    ),
    request_body(content = adapter::Shipment, description = "Carriyo's shipment object (only the fields shown are read)"),
    responses(
        (status = 200, description = "Recorded (or recorded before)", body = Acknowledgement),
        (status = 400, description = "A header or field is missing or malformed; nothing stored", body = CarriyoErrorBody),
        (status = 401, description = "The tenant takes Basic or Bearer, and the Authorization header is missing or not one of its credentials; nothing stored", body = CarriyoErrorBody),
        (status = 403, description = "The tenant is unknown, or its key header is missing or wrong; nothing stored", body = CarriyoErrorBody),
        (status = 413, description = "The body is over server.body_limit", body = CarriyoErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = CarriyoErrorBody),
        (status = 503, description = "Storage unreachable or too slow; whether it was recorded is unknown, a retry is safe", body = CarriyoErrorBody,
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
    let pending = admit_json_body(&req, &state.settings.server)?;
    let headers = req.headers();
    admit_before_body(&state, headers)?;
    let body = pending.read(payload).await?;
    let store = match adapter::webhook_tenant(headers, &body)? {
        Some(tenant) => store_of_tenant(&state, &tenant)?,
        None => state
            .stores
            .carriyo_by_credentials(headers)
            .ok_or_else(|| {
                IngestError::Forbidden(format!(
                    "the request names no tenant (header {} or field `tenant`) and carries no \
                     credential of a Carriyo tenant configured here (headers {})",
                    adapter::TENANT_HEADER,
                    carriyo_auth::credential_headers(state.stores.carriyo_schemes())
                ))
            })?,
    };
    carriyo_auth::verify_credentials(&store.settings.auth, &store.settings.tenant_id, headers)?;
    within_limit(&state, &store.name, Provider::Carriyo).await?;
    let observation = parse(store, &state, headers, &body)?;
    let recorded = record(&state, observation).await?;
    Ok(recorded.acknowledgement())
}

/// What the headers alone can refuse, before the body is buffered: a
/// `tenant-id` that is not a tenant here, or its credentials missing or
/// wrong; without `tenant-id`, a request that carries no credential of any
/// tenant here (whatever tenant its body names, it would be refused).
fn admit_before_body(state: &AppState, headers: &HeaderMap) -> Result<(), IngestError> {
    if let Some(id) = adapter::tenant_header_if_sent(headers)? {
        let store = store_of_tenant(state, &adapter::Tenant::Header(id))?;
        carriyo_auth::verify_credentials(&store.settings.auth, &store.settings.tenant_id, headers)?;
        return Ok(());
    }
    if state.stores.carriyo_by_credentials(headers).is_some() {
        return Ok(());
    }
    let all = carriyo_auth::credential_headers(state.stores.carriyo_schemes());
    let sent: Vec<&str> = all
        .split(", ")
        .filter(|name| headers.contains_key(*name))
        .collect();
    let message = if sent.is_empty() {
        format!(
            "credentials are missing: the request sends none of the headers {all} and names no \
             tenant in header {}; refused before its body was read",
            adapter::TENANT_HEADER
        )
    } else {
        format!(
            "header {} carries no credential of a Carriyo tenant configured here (they take \
             headers {all}), and header {} names no tenant; refused before its body was read",
            sent.join(", "),
            adapter::TENANT_HEADER
        )
    };
    // A Basic or bearer credential that is no one's is a 401, as Carriyo's
    // API answers; a missing or unknown key is its 403.
    if headers.contains_key(carriyo_auth::AUTHORIZATION_HEADER) {
        Err(IngestError::Unauthorized(message))
    } else {
        Err(IngestError::Forbidden(message))
    }
}

/// The shipment as an observation for `store`, its times read in the
/// store's zone.
fn parse(
    store: &StoreRef<CarriyoSettings>,
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Observation, IngestError> {
    Ok(adapter::parse_shipment(
        &store.name,
        store.settings.time_zone,
        &state.maps.carriyo,
        headers,
        body,
    )?)
}

/// `POST /orders/shipment-status-update` (headers `tenant-id` and the
/// tenant's credentials, body: the shipment). The order matches when the
/// store already knows its `partner_order_reference`: a fulfillment of it
/// exists or a Redo-style client created it. No match: 200 with an empty
/// body and nothing recorded, as Carriyo does. A match is recorded,
/// applied before answering (a duplicate is not applied again), and
/// answered 200 with the order as it is now, in the fields of Carriyo's
/// order object that shipgate knows
/// (https://carriyo.com/docs/api/orders/operation/order-shipment-status-update/),
/// plus `shipments`, shipgate's own (Carriyo's clients tolerate new fields):
///
/// ```json
/// {"tenant": "ACME", "order_id": "ORD-1001", "partner_order_reference": "ORD-1001",
///  "order_date": "2026-11-20T08:00:00.000+00:00", "status": "processing",
///  "shipments": [{"partner_shipment_reference": "ORD-1001-1",
///                 "status": "out_for_delivery", "carrier": "ARAMEX",
///                 "tracking_no": "44012345678",
///                 "estimated_delivery_date": "2026-11-24",
///                 "delivered_at": null,
///                 "update_date": "2026-11-23T05:58:41.123+00:00"}]}
/// ```
///
/// `order_id` is the id a Redo-style client's order got, else the
/// reference; `order_date` that order's creation, else its first
/// shipment's. `shipments` holds every fulfillment of the order, by
/// reference; their `status` is the canonical one and `update_date` when
/// shipgate last changed them. Times carry their offset, as Carriyo's
/// answers do (https://carriyo.com/docs/api/conventions/).
#[utoipa::path(
    operation_id = "carriyo_order_shipment_status_update",
    tag = "carriyo",
    summary = "Update an order's shipment status (Carriyo's order endpoint shape)",
    description = "Recorded and applied before the answer when the store knows the order; otherwise \
        200 with an empty text/plain body and nothing recorded, as Carriyo does.",
    request_body(content = adapter::Shipment, description = "Carriyo's shipment object (only the fields shown are read)"),
    responses(
        (status = 200, description = "The order as it is now; an empty text/plain body when no order matches",
            content((OrderAnswer = "application/json"), (String = "text/plain"))),
        (status = 400, description = "A header or field is missing or malformed; nothing stored", body = CarriyoErrorBody),
        (status = 401, description = "The tenant takes Basic or Bearer, and the Authorization header is missing or not one of its credentials; nothing stored", body = CarriyoErrorBody),
        (status = 403, description = "tenant-id is missing or unknown, or the tenant's key header is missing or wrong; nothing stored", body = CarriyoErrorBody),
        (status = 413, description = "The body is over server.body_limit", body = CarriyoErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = CarriyoErrorBody),
        (status = 503, description = "Storage unreachable or too slow; whether it was recorded is unknown, a retry is safe", body = CarriyoErrorBody,
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
    let pending = admit_json_body(&req, &state.settings.server)?;
    let headers = req.headers();
    let store = authenticate_order_call(&state, headers)?;
    within_limit(&state, &store.name, Provider::Carriyo).await?;
    let body = pending.read(payload).await?;
    let event = admit(&state, parse(store, &state, headers, &body)?)?;
    let key = &event.key;
    let order = state.storage.order(&key.store, &key.order_ref).await?;
    if order.is_none()
        && state
            .storage
            .fulfillments_of_order(&key.store, &key.order_ref)
            .await?
            .is_empty()
    {
        tracing::info!(
            store = %store.name,
            order = %key.order_ref,
            "Carriyo status update for an order this store does not know; nothing recorded"
        );
        // Empty, as Carriyo's; typed, so that the answer says what it is.
        return Ok(HttpResponse::Ok()
            .content_type(ContentType::plaintext())
            .finish());
    }
    let recorded = record_event(&state, event).await?;
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
        order.as_ref(),
        &fulfillments,
    )))
}

/// The `tenant-id` header is required here, and the tenant's credentials.
fn authenticate_order_call<'s>(
    state: &'s AppState,
    headers: &HeaderMap,
) -> Result<&'s StoreRef<CarriyoSettings>, IngestError> {
    let tenant = adapter::Tenant::Header(adapter::tenant_header(headers)?);
    let store = store_of_tenant(state, &tenant)?;
    carriyo_auth::verify_credentials(&store.settings.auth, &store.settings.tenant_id, headers)?;
    Ok(store)
}

/// The store of a named tenant; an unknown tenant is refused with where it
/// was named, as Carriyo should not retry it.
fn store_of_tenant<'s>(
    state: &'s AppState,
    tenant: &adapter::Tenant<'_>,
) -> Result<&'s StoreRef<CarriyoSettings>, IngestError> {
    state.stores.carriyo_by_tenant(tenant.id()).ok_or_else(|| {
        IngestError::Forbidden(format!("{tenant} is not a Carriyo tenant configured here"))
    })
}

/// The order as the order endpoint answers it: the fields of Carriyo's
/// order object that shipgate knows, plus `shipments`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CarriyoOrder)]
struct OrderAnswer<'a> {
    tenant: &'a str,
    /// The id a Redo-style client's order got here, else the reference.
    order_id: &'a str,
    partner_order_reference: &'a str,
    /// When the order was created here, else its first shipment was.
    order_date: String,
    /// One of Carriyo's order statuses; see [`order_status`].
    #[schema(example = "processing")]
    status: &'static str,
    shipments: Vec<ShipmentAnswer<'a>>,
}

/// One fulfillment of the order, in the answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CarriyoOrderShipment)]
struct ShipmentAnswer<'a> {
    partner_shipment_reference: &'a str,
    /// The canonical status.
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
        order: Option<&'a Order>,
        fulfillments: &'a [Fulfillment],
    ) -> Self {
        let created = order
            .map(|o| o.created_at)
            .or_else(|| fulfillments.iter().map(|f| f.created_at).min())
            .unwrap_or_else(Utc::now);
        Self {
            tenant: &store.tenant_id,
            order_id: order.map_or(order_ref, |o| o.id.as_str()),
            partner_order_reference: order_ref,
            order_date: carriyo_timestamp(created),
            status: order_status(fulfillments),
            shipments: fulfillments
                .iter()
                .map(|f| ShipmentAnswer {
                    partner_shipment_reference: &f.key.fulfillment_ref,
                    status: f.status.as_str(),
                    carrier: f.carrier.as_deref(),
                    tracking_no: f.tracking_number.as_deref(),
                    estimated_delivery_date: f.estimated_delivery_date,
                    delivered_at: f.delivered_at.map(carriyo_timestamp),
                    update_date: carriyo_timestamp(f.updated_at),
                })
                .collect(),
        }
    }
}

/// The order's status in Carriyo's words
/// (https://carriyo.com/docs/api/orders/order-object/), from what shipgate
/// knows, its shipments: `open` with none; `closed` when each is delivered
/// or cancelled and one at least delivered (Carriyo closes the line items
/// of a delivered shipment); `cancelled` when all are; else `processing`
/// (being picked, packed or shipped).
fn order_status(fulfillments: &[Fulfillment]) -> &'static str {
    let all = |wanted: &[ShipmentStatus]| fulfillments.iter().all(|f| wanted.contains(&f.status));
    if fulfillments.is_empty() {
        "open"
    } else if all(&[ShipmentStatus::Cancelled]) {
        "cancelled"
    } else if all(&[ShipmentStatus::Delivered, ShipmentStatus::Cancelled]) {
        "closed"
    } else {
        "processing"
    }
}
