//! Carriyo's HTTP edge: the authentication schemes a store may configure,
//! Carriyo's error body and status codes, times sent without an offset,
//! and the order endpoint's answer in Carriyo's order shape.

use base64::Engine;
use serde_json::{json, Value};

use rstest_reuse::apply;

use crate::helpers::*;

/// Stores beside acme, one per scheme: a key in a header of its own
/// name, HTTP Basic, a bearer token; and zones for local times.
const STORES: [(&str, &str); 12] = [
    ("SHIPGATE__STORES__GAMMA__CARRIYO__TENANT_ID", "GAMMA"),
    ("SHIPGATE__STORES__GAMMA__CARRIYO__API_KEYS", "gamma-key"),
    (
        "SHIPGATE__STORES__GAMMA__CARRIYO__API_KEY_HEADER",
        "X-Carriyo-Secret",
    ),
    ("SHIPGATE__STORES__GAMMA__CARRIYO__TIME_ZONE", "Asia/Dubai"),
    ("SHIPGATE__STORES__DELTA__CARRIYO__TENANT_ID", "DELTA"),
    (
        "SHIPGATE__STORES__DELTA__CARRIYO__BASIC_AUTH",
        "carriyo:delta-pass",
    ),
    (
        "SHIPGATE__STORES__DELTA__CARRIYO__TIME_ZONE",
        "America/New_York",
    ),
    ("SHIPGATE__STORES__EPSILON__CARRIYO__TENANT_ID", "EPSILON"),
    (
        "SHIPGATE__STORES__EPSILON__CARRIYO__BEARER_TOKENS",
        "epsilon-token-new,epsilon-token-old",
    ),
    ("SHIPGATE__STORES__ACME__CARRIYO__TIME_ZONE", "UTC"),
    ("SHIPGATE__STORES__BETA__CARRIYO__TIME_ZONE", "UTC"),
    ("SHIPGATE__SERVER__BODY_LIMIT", "256KiB"),
];

const LOCAL_ORDER: &str = "ORD-3001";
const LOCAL_SHIPMENT: &str = "ORD-3001-1";

fn basic(credentials: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

/// A Carriyo request with exactly `headers` besides Carriyo's own.
async fn post(app: &TestApp, path: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url(path))
        .header("Content-Type", "application/json")
        .header("event-id", format!("evt-{}", uuid::Uuid::now_v7()))
        .header("trigger", "in_transit")
        .header("webhook-id", "ACCOUNT_w1234-5678-abcd")
        .body(serde_json::to_vec(body).unwrap());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The local-time sample for `tenant`'s shipment `reference`.
fn shipment_of(tenant: &str, reference: &str) -> Value {
    let mut body = sample("carriyo", "shipment_local_time");
    body["tenant"] = json!(tenant);
    body["references"]["partner_shipment_reference"] = json!(reference);
    body["update_date"] = json!("2026-11-22T09:30:00Z");
    body
}

/// Carriyo's error body (https://carriyo.com/docs/api/conventions/): the
/// status as a string, a timestamp with its offset, errors as strings.
fn assert_carriyo_error(answer: &Value, status: u16, named: &[&str]) {
    let keys: Vec<&str> = answer
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {answer}"))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["errors", "requestId", "status", "timestamp"],
        "{answer}"
    );
    assert_eq!(answer["status"], json!(status.to_string()), "{answer}");
    let timestamp = answer["timestamp"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_str(timestamp, "%Y-%m-%dT%H:%M:%S%.3f%:z").is_ok()
            && timestamp.ends_with("+00:00"),
        "{timestamp}"
    );
    let errors = answer["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{answer}");
    let message = errors[0].as_str().unwrap();
    for part in named {
        assert!(message.contains(part), "{message:?} should name {part:?}");
    }
}

#[apply(backends)]
#[tokio::test]
async fn each_store_authenticates_carriyo_in_its_own_scheme(backend: Backend) {
    let app = spawn_app_with(backend, &STORES).await;
    let webhook = "/webhooks/carriyo";
    // The default form: x-api-key, unchanged.
    let acme = shipment_of("ACME", "S-ACME");
    assert_eq!(
        post(&app, webhook, &acme, &[("x-api-key", CARRIYO_KEY)])
            .await
            .0,
        200
    );
    // A key in a header the store names (any case).
    let gamma = shipment_of("GAMMA", "S-GAMMA");
    let (status, _) = post(&app, webhook, &gamma, &[("x-carriyo-secret", "gamma-key")]).await;
    assert_eq!(status, 200);
    // HTTP Basic.
    let delta = shipment_of("DELTA", "S-DELTA");
    let auth = basic("carriyo:delta-pass");
    assert_eq!(
        post(&app, webhook, &delta, &[("Authorization", &auth)])
            .await
            .0,
        200
    );
    // A bearer token (either while one is rotated), with no tenant named:
    // the token finds the store.
    let mut epsilon = shipment_of("EPSILON", "S-EPSILON");
    epsilon.as_object_mut().unwrap().remove("tenant");
    let (status, _) = post(
        &app,
        webhook,
        &epsilon,
        &[("Authorization", "Bearer epsilon-token-old")],
    )
    .await;
    assert_eq!(status, 200);
    for (store, reference) in [
        ("acme", "S-ACME"),
        ("gamma", "S-GAMMA"),
        ("delta", "S-DELTA"),
        ("epsilon", "S-EPSILON"),
    ] {
        app.wait_for_fulfillment((store, LOCAL_ORDER, reference), |f| {
            f["status"] == "in_transit"
        })
        .await;
    }
    // The order endpoint takes the tenant's scheme too.
    let mut update = shipment_of("EPSILON", "S-EPSILON");
    update["post_shipping_info"]["status"] = json!("out_for_delivery");
    update["update_date"] = json!("2026-11-23T08:00:00Z");
    let (status, order) = post(
        &app,
        "/orders/shipment-status-update",
        &update,
        &[
            ("tenant-id", "EPSILON"),
            ("Authorization", "Bearer epsilon-token-new"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["tenant"], "EPSILON");
    app.stop().await;
}

/// A refused request: what it is, its path, body and headers, and the
/// status and words its answer must have.
type Refusal<'a> = (
    &'a str,
    &'a str,
    &'a Value,
    Vec<(&'a str, &'a str)>,
    u16,
    Vec<&'a str>,
);

#[apply(backends)]
#[tokio::test]
async fn refusals_answer_carriyos_error_body_with_its_status_codes(backend: Backend) {
    let app = spawn_app_with(backend, &STORES).await;
    let webhook = "/webhooks/carriyo";
    let order = "/orders/shipment-status-update";
    let acme = shipment_of("ACME", "S-ACME");
    let gamma = shipment_of("GAMMA", "S-GAMMA");
    let delta = shipment_of("DELTA", "S-DELTA");
    let epsilon = shipment_of("EPSILON", "S-EPSILON");
    let mut nobody = shipment_of("ACME", "S-NOBODY");
    nobody.as_object_mut().unwrap().remove("tenant");
    let wrong_basic = basic("carriyo:not-it");
    let cases: Vec<Refusal> = vec![
        (
            "wrong x-api-key",
            webhook,
            &acme,
            vec![("x-api-key", "nope")],
            403,
            vec!["x-api-key", "ACME"],
        ),
        (
            "missing x-api-key",
            webhook,
            &acme,
            vec![],
            403,
            vec!["x-api-key", "missing"],
        ),
        (
            "the key in x-api-key where the store names another header",
            webhook,
            &gamma,
            vec![("x-api-key", "gamma-key")],
            403,
            vec!["x-carriyo-secret", "missing"],
        ),
        (
            "another tenant's key",
            webhook,
            &gamma,
            vec![("x-carriyo-secret", CARRIYO_KEY)],
            403,
            vec!["x-carriyo-secret", "GAMMA"],
        ),
        (
            "unknown tenant-id",
            webhook,
            &acme,
            vec![("tenant-id", "NOPE"), ("x-api-key", CARRIYO_KEY)],
            403,
            vec!["tenant-id", "NOPE"],
        ),
        (
            "no tenant and no credential anyone takes",
            webhook,
            &nobody,
            vec![("x-api-key", "nope")],
            403,
            vec![
                "tenant-id",
                "x-api-key",
                "x-carriyo-secret",
                "Authorization",
            ],
        ),
        (
            "order endpoint without tenant-id",
            order,
            &acme,
            vec![("x-api-key", CARRIYO_KEY)],
            403,
            vec!["tenant-id"],
        ),
        (
            "order endpoint with a wrong key",
            order,
            &acme,
            vec![("tenant-id", "ACME"), ("x-api-key", "nope")],
            403,
            vec!["x-api-key"],
        ),
        (
            "wrong Basic credentials",
            webhook,
            &delta,
            vec![("Authorization", &wrong_basic)],
            401,
            vec!["Basic", "DELTA"],
        ),
        (
            "missing Basic credentials",
            webhook,
            &delta,
            vec![],
            401,
            vec!["Authorization", "missing"],
        ),
        (
            "wrong bearer token",
            webhook,
            &epsilon,
            vec![("Authorization", "Bearer nope")],
            401,
            vec!["bearer token", "EPSILON"],
        ),
        (
            "Basic where the store takes Bearer",
            webhook,
            &epsilon,
            vec![("Authorization", "Basic ZXBzaWxvbi10b2tlbi1uZXc=")],
            401,
            vec!["`Bearer ...`"],
        ),
    ];
    let refused = cases.len();
    for (name, path, body, headers, status, named) in cases {
        let (got, answer) = post(&app, path, body, &headers).await;
        assert_eq!(got, status, "{name}: {answer}");
        assert_carriyo_error(&answer, status, &named);
    }
    // A malformed body is 400 in the same shape.
    let mut bad = acme.clone();
    bad["update_date"] = json!("22/11/2026 09:30");
    let (status, answer) = post(&app, webhook, &bad, &[("x-api-key", CARRIYO_KEY)]).await;
    assert_eq!(status, 400);
    assert_carriyo_error(&answer, 400, &["update_date", "22/11/2026 09:30"]);

    let stats = app.stats("carriyo").await;
    assert_eq!(stats["accepted"], 0, "nothing is stored");
    assert_eq!(stats["unauthorized"], refused);
    let (_, events) = app.admin_get("/api/v1/events?provider=carriyo").await;
    assert_eq!(events["events"], json!([]));
    app.stop().await;
}

/// A shipment of `tenant` at the wall-clock time `local`, authenticated
/// for that tenant's store.
async fn post_at(app: &TestApp, tenant: &str, reference: &str, local: &str) {
    let mut body = sample("carriyo", "shipment_local_time");
    body["tenant"] = json!(tenant);
    body["references"]["partner_shipment_reference"] = json!(reference);
    body["update_date"] = json!(local);
    let auth = basic("carriyo:delta-pass");
    let credentials: (&str, &str) = match tenant {
        "ACME" => ("x-api-key", CARRIYO_KEY),
        "GAMMA" => ("x-carriyo-secret", "gamma-key"),
        _ => ("Authorization", &auth),
    };
    let (status, answer) = post(app, "/webhooks/carriyo", &body, &[credentials]).await;
    assert_eq!(status, 200, "{tenant} {local}: {answer}");
}

#[apply(backends)]
#[tokio::test]
async fn times_without_an_offset_are_read_in_the_stores_time_zone(backend: Backend) {
    let app = spawn_app_with(backend, &STORES).await;
    // The sample as Carriyo sends it, no offsets: in Dubai (UTC+4) and in
    // a store left at the default, UTC.
    post_at(&app, "GAMMA", LOCAL_SHIPMENT, "2026-11-22T09:30:00").await;
    post_at(&app, "ACME", LOCAL_SHIPMENT, "2026-11-22T09:30:00").await;
    let dubai = app
        .wait_for_fulfillment(("gamma", LOCAL_ORDER, LOCAL_SHIPMENT), |f| {
            f["status"] == "in_transit"
        })
        .await;
    assert_eq!(
        dubai["trackingHistory"][0]["datetime"],
        "2026-11-22T05:30:00.000Z"
    );
    assert_eq!(
        dubai["estimatedDeliveryDate"], "2026-11-25",
        "the date as written"
    );
    let utc = app
        .wait_for_fulfillment(("acme", LOCAL_ORDER, LOCAL_SHIPMENT), |f| {
            f["status"] == "in_transit"
        })
        .await;
    assert_eq!(
        utc["trackingHistory"][0]["datetime"],
        "2026-11-22T09:30:00.000Z"
    );
    // New York's daylight-saving changes: 01:30 on 2026-11-01 happens
    // twice (the earlier, EDT, is taken); 02:30 on 2026-03-08 does not
    // happen (moved forward by the gap: 03:30 EDT). An offset wins.
    for (reference, local, expected) in [
        ("NY-1", "2026-11-01T01:30:00", "2026-11-01T05:30:00.000Z"),
        ("NY-2", "2026-03-08T02:30:00", "2026-03-08T07:30:00.000Z"),
        (
            "NY-3",
            "2026-07-01 12:00:00.250",
            "2026-07-01T16:00:00.250Z",
        ),
        (
            "NY-4",
            "2026-07-01T12:00:00+04:00",
            "2026-07-01T08:00:00.000Z",
        ),
    ] {
        post_at(&app, "DELTA", reference, local).await;
        let f = app
            .wait_for_fulfillment(("delta", LOCAL_ORDER, reference), |f| {
                f["status"] == "in_transit"
            })
            .await;
        assert_eq!(f["trackingHistory"][0]["datetime"], expected, "{local}");
    }
    app.stop().await;
}

/// Carriyo's order statuses (https://carriyo.com/docs/api/orders/order-object/).
const ORDER_STATUSES: [&str; 7] = [
    "open",
    "partially_allocated",
    "allocated",
    "processing",
    "fulfilled",
    "cancelled",
    "closed",
];

/// The order object's fields this gateway answers, with Carriyo's types
/// (https://carriyo.com/docs/api/orders/operation/order-shipment-status-update/).
fn assert_carriyo_order(order: &Value) {
    for field in [
        "tenant",
        "order_id",
        "partner_order_reference",
        "order_date",
        "status",
    ] {
        assert!(order[field].is_string(), "{field}: {order}");
    }
    assert!(
        chrono::DateTime::parse_from_rfc3339(order["order_date"].as_str().unwrap()).is_ok()
            && order["order_date"].as_str().unwrap().ends_with("+00:00"),
        "responses always carry the offset: {order}"
    );
    assert!(
        ORDER_STATUSES.contains(&order["status"].as_str().unwrap()),
        "{order}"
    );
    for shipment in order["shipments"].as_array().unwrap() {
        assert!(
            shipment["partner_shipment_reference"].is_string(),
            "{shipment}"
        );
        assert!(shipment["update_date"]
            .as_str()
            .unwrap()
            .ends_with("+00:00"));
    }
}

#[apply(backends)]
#[tokio::test]
async fn the_order_endpoint_answers_carriyos_order_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    // An order a Redo-style client created, then Carriyo's updates for it.
    let mut create = sample("redo", "create_order");
    create["orderId"] = json!("ORD-1001");
    let (status, created) = app.redo_post("/orders", &create).await;
    assert_eq!(status, 200, "{created}");
    let update = CarriyoDelivery::status_update(&sample("carriyo", "shipment_status_update"));
    let response = app.post_carriyo_status_update(&update).await;
    assert_eq!(response.status(), 200);
    let order: Value = response.json().await.unwrap();
    assert_carriyo_order(&order);
    assert_eq!(order["tenant"], CARRIYO_TENANT);
    assert_eq!(
        order["order_id"], created["orderId"],
        "the id the order got here"
    );
    assert_eq!(order["partner_order_reference"], "ORD-1001");
    assert_eq!(order["order_date"], "2026-11-20T14:05:00.000+00:00");
    assert_eq!(order["status"], "processing");
    assert_eq!(order["shipments"][0]["status"], "out_for_delivery");
    assert_eq!(order["shipments"][0]["delivered_at"], Value::Null);

    let mut delivered = sample("carriyo", "shipment_delivered");
    delivered["tenant"] = json!(CARRIYO_TENANT);
    let response = app
        .post_carriyo_status_update(&CarriyoDelivery::status_update(&delivered))
        .await;
    let order: Value = response.json().await.unwrap();
    assert_carriyo_order(&order);
    assert_eq!(order["status"], "closed", "every shipment delivered");
    assert_eq!(
        order["shipments"][0]["delivered_at"],
        "2026-11-23T10:21:07.000+00:00"
    );
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn without_a_tenant_a_key_in_a_named_header_finds_its_store(backend: Backend) {
    let app = spawn_app_with(backend, &STORES).await;
    let mut body = shipment_of("GAMMA", "S-GAMMA");
    body.as_object_mut().unwrap().remove("tenant");
    // No tenant named: the custom header's key finds gamma, not acme.
    let (status, _) = post(
        &app,
        "/webhooks/carriyo",
        &body,
        &[("x-carriyo-secret", "gamma-key")],
    )
    .await;
    assert_eq!(status, 200);
    app.wait_for_fulfillment(("gamma", LOCAL_ORDER, "S-GAMMA"), |f| {
        f["status"] == "in_transit"
    })
    .await;
    assert_eq!(app.fulfillment("acme", LOCAL_ORDER, "S-GAMMA").await, None);
    app.stop().await;
}
