//! Request ids: every answer names its request in `X-Request-Id`, and every
//! error body in `requestId` too, beside the provider's own keys, so an ops
//! person can find a refused delivery in the logs. A client's own id is
//! kept when it is printable ASCII of at most 128 bytes.
//!
//! Ids are made and echoed at the HTTP edge, before any storage: these
//! run on the embedded backend only.

use reqwest::header::HeaderValue;
use reqwest::{RequestBuilder, Response};
use serde_json::{json, Value};

use crate::helpers::*;

const HEADER: &str = "x-request-id";

/// The answer's `X-Request-Id`; panics when it has none.
fn request_id(response: &Response) -> String {
    response
        .headers()
        .get(HEADER)
        .unwrap_or_else(|| panic!("no {HEADER} on {}", response.status()))
        .to_str()
        .expect("a printable id")
        .to_owned()
}

/// Sends `request`; answers its status, its `X-Request-Id` and its body.
async fn send(request: RequestBuilder) -> (u16, String, Value) {
    let response = request.send().await.expect("request sent");
    let id = request_id(&response);
    let status = response.status().as_u16();
    (status, id, response.json().await.unwrap_or(Value::Null))
}

fn is_generated(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 7)
}

#[tokio::test]
async fn a_success_and_a_no_route_answer_carry_a_generated_id_each() {
    let app = spawn_app(Backend::Memory).await;
    let (status, first, _) = send(app.client.get(app.url("/health"))).await;
    assert_eq!(status, 200);
    let (_, second, _) = send(app.client.get(app.url("/health"))).await;
    assert!(
        is_generated(&first) && is_generated(&second),
        "{first} {second}"
    );
    assert_ne!(first, second, "each request has its own id");
    let (status, id, body) = send(app.client.get(app.url("/no/such/path"))).await;
    assert_eq!(status, 404);
    assert_eq!(body["requestId"], id.as_str(), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_providers_401_names_in_its_own_shape_the_id_its_header_carries() {
    let app = spawn_app(Backend::Memory).await;
    let mut delivery = ShopifyDelivery::new(
        "fulfillment_events/create",
        &sample("shopify", "fulfillment_event_create"),
    );
    delivery.secret = "not-the-shops-secret";
    let (status, id, body) = send(shopify_request(&app.client, &app.address, &delivery)).await;
    assert_eq!(status, 401, "{body}");
    assert!(is_generated(&id), "{id}");
    assert_eq!(body["requestId"], id.as_str(), "{body}");
    assert!(
        body["errors"].is_string(),
        "Shopify's own key stays: {body}"
    );

    let carriyo = app
        .client
        .post(app.url("/webhooks/carriyo"))
        .json(&json!({}));
    let (status, id, body) = send(carriyo).await;
    assert_eq!(status, 403, "Carriyo answers a missing key so: {body}");
    assert_eq!(body["requestId"], id.as_str(), "{body}");
    assert_eq!(body["status"], "403", "Carriyo's own keys stay: {body}");

    let redo = app
        .client
        .post(app.url(&redo_path(REDO_STORE_ID, "/orders")))
        .json(&json!({}));
    let (status, id, body) = send(redo).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["requestId"], id.as_str(), "{body}");
    assert!(body["error"].is_string(), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn an_ops_401_names_the_id_its_header_carries() {
    let app = spawn_app(Backend::Memory).await;
    let (status, id, body) = send(app.client.get(app.url("/api/v1/stats"))).await;
    assert_eq!(status, 401);
    assert!(is_generated(&id), "{id}");
    assert_eq!(
        body,
        json!({
            "error": "header Authorization is missing; send Authorization: Bearer <admin token>",
            "requestId": id,
        })
    );
    app.stop().await;
}

#[tokio::test]
async fn a_supplied_id_is_echoed_in_the_header_and_the_error_body() {
    let app = spawn_app(Backend::Memory).await;
    let supplied = "shopify-retry 7/ABC~!";
    let (status, id, _) = send(app.client.get(app.url("/health")).header(HEADER, supplied)).await;
    assert_eq!((status, id.as_str()), (200, supplied));
    let longest = "x".repeat(128);
    let (status, id, body) = send(
        app.client
            .get(app.url("/api/v1/backlog"))
            .bearer_auth("not-an-admin-token")
            .header(HEADER, &longest),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(id, longest);
    assert_eq!(body["requestId"], longest.as_str(), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_supplied_id_that_is_too_long_empty_or_not_ascii_is_replaced() {
    let app = spawn_app(Backend::Memory).await;
    let too_long = HeaderValue::from_str(&"x".repeat(129)).unwrap();
    let empty = HeaderValue::from_static("");
    let not_ascii = HeaderValue::from_bytes("café".as_bytes()).unwrap();
    for bad in [too_long, empty, not_ascii] {
        let (status, id, body) = send(
            app.client
                .get(app.url("/api/v1/stats"))
                .header(HEADER, bad.clone()),
        )
        .await;
        assert_eq!(status, 401);
        assert!(is_generated(&id), "{bad:?} was kept as {id}");
        assert_eq!(body["requestId"], id.as_str(), "{body}");
    }
    app.stop().await;
}
