//! Redo-style paths under `/v2.2/stores/{storeId}`: create and read
//! orders, create fulfillments, post shipment statuses. Every call carries
//! `Authorization: Bearer` for the store `{storeId}` names. Tracking
//! updates are recorded, then applied before the answer, because Redo
//! answers with the fulfillment as the update left it.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{answer, read_json_body, record, IngestError, ProviderError};
use crate::app::AppState;
use crate::canonical::{FulfillmentKey, Observation, Provider};
use crate::fulfillment::{CreateError, Fulfillment, FulfillmentView, Order};
use crate::providers::known;
use crate::providers::redo::{self as adapter, CreateOrderRequest};
use crate::storage::StorageError;

/// Registers the Redo-style paths, Redo's own under the `/v2.2` base.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/v2.2/stores/{storeId}/orders",
        web::post().to(create_order),
    )
    .route(
        "/v2.2/stores/{storeId}/orders/{orderId}",
        web::get().to(get_order),
    )
    .route(
        "/v2.2/stores/{storeId}/orders/{orderId}/fulfillments",
        web::post().to(create_fulfillment),
    )
    .route(
        "/v2.2/stores/{storeId}/orders/{orderId}/fulfillments/{fulfillmentId}/shipment-status",
        web::post().to(shipment_status),
    );
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StorePath {
    store_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderPath {
    store_id: String,
    order_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FulfillmentPath {
    store_id: String,
    order_id: String,
    fulfillment_id: String,
}

/// `orders-api-get-order-response`: the order as created, with its
/// fulfillments.
#[derive(Debug, Serialize)]
struct OrderAnswer {
    #[serde(flatten)]
    order: CreateOrderRequest,
    fulfillments: Vec<FulfillmentView>,
}

/// `POST /orders`: stores the order under a new id of ours; answers 200
/// `{orderId, externalOrderId}`, or 409 when the client's id is taken.
async fn create_order(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<StorePath>,
    payload: web::Payload,
) -> Result<HttpResponse, ProviderError> {
    let outcome = async {
        let store = authorize(&state, &req, &path.store_id)?;
        let body = read_json_body(&req, payload, state.settings.server.body_limit).await?;
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
            )));
        }
        Ok(HttpResponse::Ok().json(json!({
            "orderId": order.id,
            "externalOrderId": order.external_id,
        })))
    }
    .await;
    answer(&state, Provider::Redo, outcome).await
}

/// `GET /orders/{orderId}` (our id or the client's): the order as created
/// plus its fulfillments.
async fn get_order(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<OrderPath>,
) -> Result<HttpResponse, ProviderError> {
    let outcome = async {
        let store = authorize(&state, &req, &path.store_id)?;
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
    .await;
    answer(&state, Provider::Redo, outcome).await
}

/// `POST /orders/{orderId}/fulfillments`: creates the fulfillment (409 if
/// its id is taken on the order); with `useDummyTracking`, its initial
/// tracking is recorded and applied like any shipment status.
async fn create_fulfillment(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<OrderPath>,
    payload: web::Payload,
) -> Result<HttpResponse, ProviderError> {
    let outcome = async {
        let store = authorize(&state, &req, &path.store_id)?;
        let body = read_json_body(&req, payload, state.settings.server.body_limit).await?;
        let request = adapter::parse_create_fulfillment(&body)?;
        let order = find_order(&state, &store, &path.order_id).await?;
        let line_items =
            adapter::fulfilled_line_items(&stored_request(&order)?, &request.line_items)?;
        let key = FulfillmentKey {
            store,
            order_ref: order.external_id,
            fulfillment_ref: request.fulfillment_id.unwrap_or_else(new_object_id),
        };
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
        let fulfillment = match request.initial_tracking {
            Some(update) => {
                let observation = adapter::observe(&state.maps.redo, key, update, None);
                record_and_apply(&state, observation).await?
            }
            None => fulfillment,
        };
        Ok(fulfillment_answer(&fulfillment))
    }
    .await;
    answer(&state, Provider::Redo, outcome).await
}

/// `POST /orders/{orderId}/fulfillments/{fulfillmentId}/shipment-status`:
/// a status or an event for a fulfillment that exists, applied before the
/// answer. A duplicate (same Idempotency-Key, or same content) answers the
/// same 200 with the fulfillment as it is, and changes nothing.
async fn shipment_status(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<FulfillmentPath>,
    payload: web::Payload,
) -> Result<HttpResponse, ProviderError> {
    let outcome = async {
        let store = authorize(&state, &req, &path.store_id)?;
        let body = read_json_body(&req, payload, state.settings.server.body_limit).await?;
        let update = adapter::parse_shipment_status(&body)?;
        let delivery_id = adapter::idempotency_key(req.headers())?;
        let order = find_order(&state, &store, &path.order_id).await?;
        let key = FulfillmentKey {
            store,
            order_ref: order.external_id,
            fulfillment_ref: path.fulfillment_id.clone(),
        };
        if state.core.get(&key).await?.is_none() {
            return Err(fulfillment_not_found(&key));
        }
        let observation = adapter::observe(&state.maps.redo, key, update, delivery_id);
        let fulfillment = record_and_apply(&state, observation).await?;
        Ok(fulfillment_answer(&fulfillment))
    }
    .await;
    answer(&state, Provider::Redo, outcome).await
}

/// The name of the store `storeId` names, if the bearer token is one of
/// its tokens.
fn authorize(state: &AppState, req: &HttpRequest, store_id: &str) -> Result<String, IngestError> {
    let store = state.stores.redo_by_store_id(store_id).ok_or_else(|| {
        IngestError::Unauthorized(format!(
            "storeId '{store_id}' in the path is not a Redo store configured here"
        ))
    })?;
    adapter::verify_bearer(req.headers(), &store.settings.api_tokens, store_id)?;
    Ok(store.name.clone())
}

/// The store's order by our id or the client's; 404 when neither.
async fn find_order(state: &AppState, store: &str, order_id: &str) -> Result<Order, IngestError> {
    state
        .storage
        .order(store, order_id)
        .await?
        .ok_or_else(|| IngestError::NotFound(format!("order '{order_id}' not found")))
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

/// Records an update, then applies it before the answer. A duplicate is
/// not applied again: the answer is the fulfillment as it is.
async fn record_and_apply(
    state: &AppState,
    observation: Observation,
) -> Result<Fulfillment, IngestError> {
    let recorded = record(state, observation).await?;
    if !recorded.is_duplicate() {
        return Ok(state.core.apply(&recorded.event).await?.fulfillment);
    }
    let key = &recorded.event.key;
    state
        .core
        .get(key)
        .await?
        .ok_or_else(|| fulfillment_not_found(key))
}

fn fulfillment_not_found(key: &FulfillmentKey) -> IngestError {
    IngestError::NotFound(format!(
        "fulfillment '{}' not found on order '{}'",
        key.fulfillment_ref, key.order_ref
    ))
}

/// `orders-api-fulfillment-response`.
fn fulfillment_answer(fulfillment: &Fulfillment) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "success": true,
        "fulfillment": FulfillmentView::redo(fulfillment),
    }))
}

/// A new id shaped like Redo's (a MongoDB ObjectId: 24 hex digits, the
/// first 8 the creation second), so clients that keep Redo ids take ours.
fn new_object_id() -> String {
    let seconds = Utc::now().timestamp() as u32;
    format!("{seconds:08x}{}", hex::encode(rand::random::<[u8; 8]>()))
}
