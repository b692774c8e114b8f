//! Redo-style paths under `/v2.2/stores/{storeId}`: create, read and
//! delete orders, create fulfillments, post shipment statuses. Every call carries
//! `Authorization: Bearer` for the store `{storeId}` names. Tracking
//! updates are recorded, then applied before the answer, because Redo
//! answers with the fulfillment as the update left it.

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{
    admit, count_claim, read_json_body, within_limit, IngestError, RedoError, RedoErrorBody,
};
use crate::app::AppState;
use crate::canonical::{CanonicalEvent, FulfillmentKey, Provider};
use crate::domain::{Fulfillment, Order};
use crate::fulfillment::{CreateError, FulfillmentView};
use crate::providers::known;
use crate::providers::redo::{self as adapter, CreateOrderRequest};
use crate::storage::{OrderFulfillment, StorageError, Versioned};

/// Registers the Redo-style paths, Redo's own under the `/v2.2` base.
pub fn routes(cfg: &mut ServiceConfig) {
    // Statuses are most of a client's calls; see `ingest::routes`.
    cfg.service(shipment_status)
        .service(create_order)
        .service(get_order)
        .service(delete_order)
        .service(create_fulfillment);
}

/// `/stores/{storeId}`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
struct StorePath {
    /// The store's Redo id (`stores.<name>.redo.store_id`).
    #[param(min_length = 1)]
    store_id: String,
}

/// `/stores/{storeId}/orders/{orderId}`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
struct OrderPath {
    /// The store's Redo id (`stores.<name>.redo.store_id`).
    #[param(min_length = 1)]
    store_id: String,
    /// The client's `orderId`, or the id the gateway gave the order.
    #[param(min_length = 1)]
    order_id: String,
}

/// `/stores/{storeId}/orders/{orderId}/fulfillments/{fulfillmentId}`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
struct FulfillmentPath {
    /// The store's Redo id (`stores.<name>.redo.store_id`).
    #[param(min_length = 1)]
    store_id: String,
    /// The client's `orderId`, or the id the gateway gave the order.
    #[param(min_length = 1)]
    order_id: String,
    #[param(min_length = 1)]
    fulfillment_id: String,
}

/// `orders-api-create-order-response`: our id for the order, and the
/// client's.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CreateOrderResponse {
    order_id: String,
    external_order_id: String,
}

/// `orders-api-delete-order-response`: which order was deleted, by both
/// its ids.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct DeleteOrderResponse {
    /// Always true.
    success: bool,
    order_id: String,
    external_order_id: String,
}

/// `orders-api-fulfillment-response`.
#[derive(Debug, Serialize, ToSchema)]
struct FulfillmentResponse {
    /// Always true.
    success: bool,
    fulfillment: FulfillmentView,
}

/// `orders-api-get-order-response`: the order as created, with its
/// fulfillments.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = GetOrderResponse)]
struct OrderAnswer {
    #[serde(flatten)]
    order: CreateOrderRequest,
    fulfillments: Vec<FulfillmentView>,
}

/// `POST /orders`: stores the order under a new id of ours; answers 200
/// `{orderId, externalOrderId}`, or 409 when the client's id is taken.
#[utoipa::path(
    operation_id = "redo_create_order",
    tag = "redo",
    summary = "Create an order (Redo's shape)",
    params(StorePath),
    request_body(content = CreateOrderRequest),
    responses(
        (status = 200, description = "Created", body = CreateOrderResponse),
        (status = 400, description = "A field is missing or malformed (named by its path)", body = RedoErrorBody),
        (status = 401, description = "Unknown storeId, or the bearer token is not the store's", body = RedoErrorBody),
        (status = 409, description = "An order with this orderId exists", body = RedoErrorBody),
        (status = 413, description = "The body is over server.body_limit", body = RedoErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = RedoErrorBody),
        (status = 503, description = "Storage unreachable or too slow; whether it was stored is unknown, a retry is safe", body = RedoErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("redo_bearer" = [])),
)]
#[post("/v2.2/stores/{storeId}/orders")]
async fn create_order(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<StorePath>,
    payload: web::Payload,
) -> Result<HttpResponse, RedoError> {
    let store = authorize(&state, &req, &path.store_id).await?;
    let body = read_json_body(&req, payload, &state.settings.server).await?;
    let new = adapter::parse_create_order(&body)?;
    let order = Order {
        store,
        id: new_object_id(),
        external_id: new.request.order_id.clone(),
        created_at: new.created_at,
        body: serde_json::to_value(&new.request).map_err(|e| {
            IngestError::Storage(StorageError::Corrupt(format!(
                "order {} does not serialize: {e}",
                new.request.order_id
            )))
        })?,
    };
    if !state.storage.create_order(&order).await? {
        return Err(IngestError::Conflict(format!(
            "an order with orderId '{}' exists already",
            order.external_id
        ))
        .into());
    }
    Ok(HttpResponse::Ok().json(CreateOrderResponse {
        order_id: order.id,
        external_order_id: order.external_id,
    }))
}

/// `GET /orders/{orderId}` (our id or the client's): the order as created
/// plus its fulfillments.
#[utoipa::path(
    operation_id = "redo_get_order",
    tag = "redo",
    summary = "Read an order with its fulfillments (Redo's shape)",
    params(OrderPath),
    responses(
        (status = 200, description = "The order as created, with its fulfillments", body = OrderAnswer),
        (status = 401, description = "Unknown storeId, or the bearer token is not the store's", body = RedoErrorBody),
        (status = 404, description = "No such order", body = RedoErrorBody),
        (status = 503, description = "Storage unreachable, retry later", body = RedoErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("redo_bearer" = [])),
)]
#[get("/v2.2/stores/{storeId}/orders/{orderId}")]
async fn get_order(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<OrderPath>,
) -> Result<HttpResponse, RedoError> {
    let store = authorize(&state, &req, &path.store_id).await?;
    let order = find_order(&state, &store, &path.order_id).await?;
    let fulfillments = state
        .storage
        .fulfillments_of_order(&store, &order.external_id)
        .await?;
    Ok(HttpResponse::Ok().json(OrderAnswer {
        order: stored_request(&order)?,
        fulfillments: fulfillments.iter().map(FulfillmentView::redo).collect(),
    }))
}

/// `DELETE /orders/{orderId}` (our id or the client's): deletes the order,
/// as Redo's "Order delete" does; 404 for an order that does not exist
/// (or no longer does). The order's fulfillments and their tracking stay,
/// readable on the ops API: Redo's schema deletes the order and says
/// nothing of the tracking news shipgate accepted for its reference, from
/// whichever provider. Through the Redo paths they go with their order:
/// reading it, creating a fulfillment of it or posting a status to one
/// answer 404 until an order with that `orderId` is created again, which
/// finds them under its reference.
#[utoipa::path(
    operation_id = "redo_delete_order",
    tag = "redo",
    summary = "Delete an order (Redo's shape)",
    description = "Deletes the order under both its ids. Its fulfillments and their tracking history \
        are kept (the ops API reads them); the Redo paths answer 404 for the order until it is \
        created again.",
    params(OrderPath),
    responses(
        (status = 200, description = "Deleted", body = DeleteOrderResponse),
        (status = 401, description = "Unknown storeId, or the bearer token is not the store's", body = RedoErrorBody),
        (status = 404, description = "No such order", body = RedoErrorBody),
        (status = 503, description = "Storage unreachable or too slow; whether it was deleted is unknown, a retry is safe", body = RedoErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("redo_bearer" = [])),
)]
#[delete("/v2.2/stores/{storeId}/orders/{orderId}")]
async fn delete_order(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<OrderPath>,
) -> Result<HttpResponse, RedoError> {
    let store = authorize(&state, &req, &path.store_id).await?;
    let order = state
        .storage
        .delete_order(&store, &path.order_id)
        .await?
        .ok_or_else(|| order_not_found(&path.order_id))?;
    tracing::info!(%store, order = %order.external_id, "Redo order deleted");
    Ok(HttpResponse::Ok().json(DeleteOrderResponse {
        success: true,
        order_id: order.id,
        external_order_id: order.external_id,
    }))
}

/// `POST /orders/{orderId}/fulfillments`: creates the fulfillment (409 if
/// its id is taken on the order); with `useDummyTracking`, its initial
/// tracking is recorded and applied like any shipment status.
#[utoipa::path(
    operation_id = "redo_create_fulfillment",
    tag = "redo",
    summary = "Create a fulfillment of an order (Redo's shape)",
    params(OrderPath),
    request_body(content = adapter::CreateFulfillmentBody),
    responses(
        (status = 200, description = "Created", body = FulfillmentResponse),
        (status = 400, description = "A field is missing or malformed, or a line item is not the order's", body = RedoErrorBody),
        (status = 401, description = "Unknown storeId, or the bearer token is not the store's", body = RedoErrorBody),
        (status = 404, description = "No such order", body = RedoErrorBody),
        (status = 409, description = "The order has a fulfillment with this fulfillmentId", body = RedoErrorBody),
        (status = 413, description = "The body is over server.body_limit", body = RedoErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = RedoErrorBody),
        (status = 503, description = "Storage unreachable or too slow; whether it was stored is unknown, a retry is safe", body = RedoErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("redo_bearer" = [])),
)]
#[post("/v2.2/stores/{storeId}/orders/{orderId}/fulfillments")]
async fn create_fulfillment(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<OrderPath>,
    payload: web::Payload,
) -> Result<HttpResponse, RedoError> {
    let store = authorize(&state, &req, &path.store_id).await?;
    let body = read_json_body(&req, payload, &state.settings.server).await?;
    let request = adapter::parse_create_fulfillment(&body)?;
    let order = find_order(&state, &store, &path.order_id).await?;
    let line_items = adapter::fulfilled_line_items(&stored_request(&order)?, &request.line_items)?;
    let key = FulfillmentKey {
        store,
        order_ref: order.external_id,
        fulfillment_ref: request.fulfillment_id.unwrap_or_else(new_object_id),
    };
    // Admitted before the fulfillment is created, so a refused update
    // leaves nothing behind.
    let initial = request
        .initial_tracking
        .map(|update| {
            admit(
                &state,
                adapter::observe(&state.maps.redo, key.clone(), update, None),
            )
        })
        .transpose()?;
    let mut fulfillment = Fulfillment::new(key.clone(), Utc::now());
    fulfillment.line_items = line_items;
    if let Some(tracking) = request.tracking {
        fulfillment.carrier = known(Some(tracking.carrier));
        fulfillment.tracking_number = known(Some(tracking.code));
    }
    state.core.create(&fulfillment).await.map_err(|e| match e {
        CreateError::Exists(key) => IngestError::Conflict(format!(
            "fulfillment '{}' exists already on order '{}'",
            key.fulfillment_ref, key.order_ref
        )),
        CreateError::Storage(e) => e.into(),
    })?;
    let fulfillment = match initial {
        Some(event) => {
            let current = state
                .storage
                .fulfillment(&key)
                .await?
                .ok_or_else(|| fulfillment_not_found(&key))?;
            record_and_apply(&state, event, current).await?
        }
        None => fulfillment,
    };
    Ok(fulfillment_answer(&fulfillment))
}

/// `POST /orders/{orderId}/fulfillments/{fulfillmentId}/shipment-status`:
/// a status or an event for a fulfillment that exists, applied before the
/// answer. A duplicate (same Idempotency-Key, or same content) answers the
/// same 200 with the fulfillment as it is, and changes nothing.
#[utoipa::path(
    operation_id = "redo_update_shipment_status",
    tag = "redo",
    summary = "Post a shipment status or event (Redo's shape)",
    description = "A status (every one but `unknown`) or an event (stalled_in_transit, delayed, \
        arriving_early), applied before the answer. A repeat (same Idempotency-Key, or same content) \
        answers the fulfillment as it is and changes nothing.",
    params(
        FulfillmentPath,
        ("Idempotency-Key" = Option<String>, Header, max_length = 255,
            description = "The client's id for this update: a retry with it is not applied twice; at most 255 bytes"),
    ),
    request_body(content = adapter::TrackingBody),
    responses(
        (status = 200, description = "The fulfillment after the update", body = FulfillmentResponse),
        (status = 400, description = "A field is missing or malformed (named by its path)", body = RedoErrorBody),
        (status = 401, description = "Unknown storeId, or the bearer token is not the store's", body = RedoErrorBody),
        (status = 404, description = "No such order or fulfillment", body = RedoErrorBody),
        (status = 413, description = "The body is over server.body_limit", body = RedoErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = RedoErrorBody),
        (status = 503, description = "Storage unreachable or too slow; whether it was recorded is unknown, a retry is safe", body = RedoErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(("redo_bearer" = [])),
)]
#[post("/v2.2/stores/{storeId}/orders/{orderId}/fulfillments/{fulfillmentId}/shipment-status")]
async fn shipment_status(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<FulfillmentPath>,
    payload: web::Payload,
) -> Result<HttpResponse, RedoError> {
    let store = authorize(&state, &req, &path.store_id).await?;
    let body = read_json_body(&req, payload, &state.settings.server).await?;
    let update = adapter::parse_shipment_status(&body)?;
    let delivery_id = adapter::idempotency_key(req.headers())?;
    let current = match state
        .storage
        .order_fulfillment(&store, &path.order_id, &path.fulfillment_id)
        .await?
    {
        OrderFulfillment::Found(current) => *current,
        OrderFulfillment::NoFulfillment(key) => return Err(fulfillment_not_found(&key).into()),
        OrderFulfillment::NoOrder => return Err(order_not_found(&path.order_id).into()),
    };
    let key = current.value.key.clone();
    let event = admit(
        &state,
        adapter::observe(&state.maps.redo, key, update, delivery_id),
    )?;
    let fulfillment = record_and_apply(&state, event, current).await?;
    Ok(fulfillment_answer(&fulfillment))
}

/// The name of the store `storeId` names, if the bearer token is one of
/// its tokens and the store is within its limit.
async fn authorize(
    state: &AppState,
    req: &HttpRequest,
    store_id: &str,
) -> Result<String, IngestError> {
    let store = state.stores.redo_by_store_id(store_id).ok_or_else(|| {
        IngestError::Unauthorized(format!(
            "storeId '{store_id}' in the path is not a Redo store configured here"
        ))
    })?;
    adapter::verify_bearer(req.headers(), &store.settings.api_tokens, store_id)?;
    within_limit(state, &store.name, Provider::Redo).await?;
    Ok(store.name.clone())
}

/// The store's order by our id or the client's; 404 when neither.
async fn find_order(state: &AppState, store: &str, order_id: &str) -> Result<Order, IngestError> {
    state
        .storage
        .order(store, order_id)
        .await?
        .ok_or_else(|| order_not_found(order_id))
}

fn order_not_found(order_id: &str) -> IngestError {
    IngestError::NotFound(format!("order '{order_id}' not found"))
}

/// The create request an order was stored from.
fn stored_request(order: &Order) -> Result<CreateOrderRequest, IngestError> {
    serde_json::from_value(order.body.clone()).map_err(|e| {
        IngestError::Storage(StorageError::Corrupt(format!(
            "order {} does not read back: {e}",
            order.id
        )))
    })
}

/// Records an admitted update to `current` (the fulfillment as just
/// read, which saves reading it again) and applies it before the answer,
/// in one storage step. A duplicate is not applied again: the answer is
/// the fulfillment as it is.
async fn record_and_apply(
    state: &AppState,
    event: CanonicalEvent,
    current: Versioned<Fulfillment>,
) -> Result<Fulfillment, IngestError> {
    let (claim, fulfillment) = state.core.record_over(&event, current).await?;
    count_claim(state, &event, claim);
    Ok(fulfillment)
}

fn fulfillment_not_found(key: &FulfillmentKey) -> IngestError {
    IngestError::NotFound(format!(
        "fulfillment '{}' not found on order '{}'",
        key.fulfillment_ref, key.order_ref
    ))
}

/// `orders-api-fulfillment-response`.
fn fulfillment_answer(fulfillment: &Fulfillment) -> HttpResponse {
    HttpResponse::Ok().json(FulfillmentResponse {
        success: true,
        fulfillment: FulfillmentView::redo(fulfillment),
    })
}

/// A new id shaped like Redo's (a MongoDB ObjectId: 24 hex digits, the
/// first 8 the creation second), so clients that keep Redo ids take ours.
fn new_object_id() -> String {
    let seconds = Utc::now().timestamp() as u32;
    format!("{seconds:08x}{}", hex::encode(rand::random::<[u8; 8]>()))
}
