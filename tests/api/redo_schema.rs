//! Redo's answers against its published schema
//! (`@redotech/redo-api-schema` 2.2.693): the fulfillment shape's
//! properties and required keys, written out here, checked on every
//! answer that carries a fulfillment; and the delete-order answers,
//! checked against the schema as the vendored document states it.

use serde_json::{json, Value};

use rstest_reuse::apply;

use crate::helpers::*;
use crate::redo::{
    create_untracked_fulfillment, fulfillments_path, status_path, FULFILLMENT, ORDER, STATUSES,
};

/// `orders-api-fulfillment.schema`, written out: its properties, which of
/// them are required, and the same for its line items, tracking events and
/// tracking locations.
const FULFILLMENT_PROPERTIES: [&str; 9] = [
    "id",
    "createdAt",
    "lineItems",
    "trackingCompany",
    "trackingNumber",
    "status",
    "estimatedDeliveryDate",
    "deliveredAt",
    "trackingHistory",
];
const FULFILLMENT_REQUIRED: [&str; 5] =
    ["id", "createdAt", "lineItems", "status", "trackingHistory"];
const LINE_ITEM_PROPERTIES: [&str; 6] =
    ["id", "quantity", "title", "productId", "variantId", "sku"];
const LINE_ITEM_REQUIRED: [&str; 4] = ["id", "quantity", "title", "productId"];
const TRACKING_EVENT_PROPERTIES: [&str; 4] = ["message", "status", "datetime", "location"];
const TRACKING_EVENT_REQUIRED: [&str; 3] = ["message", "status", "datetime"];
const LOCATION_PROPERTIES: [&str; 4] = ["city", "state", "country", "postalCode"];

/// Panics with what is wrong unless `object` has every required key and
/// no key outside `properties`.
fn assert_keys(what: &str, object: &Value, properties: &[&str], required: &[&str]) {
    let map = object
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not an object: {object}"));
    for key in required {
        assert!(
            map.contains_key(*key),
            "{what} lacks required `{key}`: {object}"
        );
    }
    for key in map.keys() {
        assert!(
            properties.contains(&key.as_str()),
            "{what} has `{key}`, not in the schema"
        );
    }
}

fn is_date_time(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

fn is_string_or_null(value: Option<&Value>) -> bool {
    value.is_none_or(|v| v.is_string() || v.is_null())
}

/// Checks a fulfillment against `orders-api-fulfillment.schema`.
fn assert_redo_fulfillment(f: &Value) {
    assert_keys(
        "fulfillment",
        f,
        &FULFILLMENT_PROPERTIES,
        &FULFILLMENT_REQUIRED,
    );
    assert!(f["id"].is_string(), "{f}");
    assert!(is_date_time(&f["createdAt"]), "createdAt: {f}");
    assert!(
        STATUSES.contains(&f["status"].as_str().unwrap_or_default()),
        "status: {f}"
    );
    for key in ["trackingCompany", "trackingNumber"] {
        assert!(is_string_or_null(f.get(key)), "{key}: {f}");
    }
    let eta = &f["estimatedDeliveryDate"];
    assert!(
        eta.is_null()
            || eta.as_str().is_some_and(
                |d| d.len() == 10 && chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok()
            ),
        "estimatedDeliveryDate is not YYYY-MM-DD: {eta}"
    );
    assert!(
        f["deliveredAt"].is_null() || is_date_time(&f["deliveredAt"]),
        "{f}"
    );
    for item in f["lineItems"].as_array().expect("lineItems is an array") {
        assert_keys(
            "line item",
            item,
            &LINE_ITEM_PROPERTIES,
            &LINE_ITEM_REQUIRED,
        );
        assert!(
            item["id"].is_string() && item["title"].is_string() && item["productId"].is_string()
        );
        let quantity = item["quantity"].as_u64().expect("quantity is an integer");
        assert!((1..=1000).contains(&quantity), "quantity {quantity}");
        assert!(is_string_or_null(item.get("variantId")) && is_string_or_null(item.get("sku")));
    }
    for event in f["trackingHistory"]
        .as_array()
        .expect("trackingHistory is an array")
    {
        assert_keys(
            "tracking event",
            event,
            &TRACKING_EVENT_PROPERTIES,
            &TRACKING_EVENT_REQUIRED,
        );
        assert!(
            event["message"].is_string() && event["status"].is_string(),
            "{event}"
        );
        assert!(is_date_time(&event["datetime"]), "{event}");
        if let Some(location) = event.get("location") {
            assert_keys("location", location, &LOCATION_PROPERTIES, &[]);
        }
    }
}

/// Checks `orders-api-fulfillment-response.schema`: `success` is `true`.
fn assert_fulfillment_response(answer: &Value) {
    assert_keys(
        "response",
        answer,
        &["success", "fulfillment"],
        &["success", "fulfillment"],
    );
    assert_eq!(answer["success"], json!(true));
    assert_redo_fulfillment(&answer["fulfillment"]);
}

#[apply(backends)]
#[tokio::test]
async fn answers_hold_what_redos_schema_requires(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, created) = app
        .redo_post("/orders", &sample("redo", "create_order"))
        .await;
    assert_keys(
        "create-order response",
        &created,
        &["orderId", "externalOrderId"],
        &["orderId", "externalOrderId"],
    );
    assert!(created["orderId"].is_string() && created["externalOrderId"].is_string());

    let untracked = create_untracked_fulfillment(&app, "F-plain").await;
    assert_redo_fulfillment(&untracked);
    let (_, with_tracking) = app
        .redo_post(
            &fulfillments_path(ORDER),
            &sample("redo", "create_fulfillment"),
        )
        .await;
    assert_fulfillment_response(&with_tracking);
    let (_, moved) = app
        .redo_post(
            &status_path(FULFILLMENT),
            &sample("redo", "shipment_status"),
        )
        .await;
    assert_fulfillment_response(&moved);
    let delivered = json!({"status": "delivered", "datetime": "2026-11-24T15:00:00Z"});
    let (_, delivered) = app.redo_post(&status_path(FULFILLMENT), &delivered).await;
    assert_fulfillment_response(&delivered);
    assert_eq!(
        delivered["fulfillment"]["deliveredAt"],
        "2026-11-24T15:00:00.000Z"
    );

    let (_, order) = app.redo_get(&format!("/orders/{ORDER}")).await;
    for key in ["orderId", "createdAt", "lineItems", "fulfillments"] {
        assert!(order.get(key).is_some(), "get-order lacks `{key}`: {order}");
    }
    let fulfillments = order["fulfillments"].as_array().unwrap();
    assert_eq!(fulfillments.len(), 2);
    fulfillments.iter().for_each(assert_redo_fulfillment);
    app.stop().await;
}

/// Redo's published document, as vendored in `tests/fixtures`.
fn published() -> Value {
    let path = format!(
        "{}/tests/fixtures/redo-api-schema-2.2.693-openapi.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The JSON schema the document gives the answer `status` of `method
/// path`, its `$ref` followed.
fn response_schema(doc: &Value, method: &str, path: &str, status: &str) -> Value {
    let response = &doc["paths"][path][method]["responses"][status];
    let schema = &response["content"]["application/json"]["schema"];
    let reference = schema["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{method} {path} {status}: no schema: {response}"));
    let name = reference.trim_start_matches("#/components/schemas/");
    doc["components"]["schemas"][name].clone()
}

/// Panics unless `answer` is valid against `schema`, an object schema of
/// scalar properties as the delete-order answers are: its required keys,
/// and every property's type.
fn assert_valid(what: &str, answer: &Value, schema: &Value) {
    assert_eq!(schema["type"], "object", "{what}: {schema}");
    let object = answer
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not an object: {answer}"));
    for key in schema["required"].as_array().unwrap() {
        let key = key.as_str().unwrap();
        assert!(object.contains_key(key), "{what} lacks `{key}`: {answer}");
    }
    for (key, property) in schema["properties"].as_object().unwrap() {
        let Some(value) = object.get(key) else {
            continue;
        };
        let fits = match property["type"].as_str().unwrap() {
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            other => panic!("{what}: `{key}` has type {other}, not a scalar"),
        };
        assert!(
            fits,
            "{what}: `{key}` is not a {}: {answer}",
            property["type"]
        );
    }
}

#[apply(backends)]
#[tokio::test]
async fn delete_order_answers_are_valid_against_redos_schema(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = published();
    let path = "/stores/{storeId}/orders/{orderId}";
    let (_, created) = app
        .redo_post("/orders", &sample("redo", "create_order"))
        .await;
    create_untracked_fulfillment(&app, "F-plain").await;

    let (status, deleted) =
        TestApp::send_for_json(app.redo(reqwest::Method::DELETE, &format!("/orders/{ORDER}")))
            .await;
    assert_eq!(status, 200, "{deleted}");
    assert_valid(
        "delete-order answer",
        &deleted,
        &response_schema(&doc, "delete", path, "200"),
    );
    assert_eq!(
        deleted,
        json!({"success": true, "orderId": created["orderId"], "externalOrderId": ORDER})
    );

    let error = response_schema(&doc, "delete", path, "404");
    let (status, missing) =
        TestApp::send_for_json(app.redo(reqwest::Method::DELETE, &format!("/orders/{ORDER}")))
            .await;
    assert_eq!(status, 404, "deleted already: {missing}");
    assert_valid("404 answer", &missing, &error);
    let unauthorized = app
        .client
        .delete(app.url(&redo_path(REDO_STORE_ID, "/orders/R-404")))
        .bearer_auth("not-a-token");
    let (status, refused) = TestApp::send_for_json(unauthorized).await;
    assert_eq!(status, 401, "{refused}");
    assert_valid(
        "401 answer",
        &refused,
        &response_schema(&doc, "delete", path, "401"),
    );
    app.stop().await;
}
