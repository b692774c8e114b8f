//! Hostile inputs (issue 23): news dated in the future or outside the
//! years RFC 3339 can write, ids of any length, the Authorization scheme
//! in any case, REST creates that are refused, and configurations that
//! share a credential between stores or hide one in a URL. Each is
//! refused with the field, header or key at fault, on every provider.

use chrono::{Duration, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use rstest_reuse::apply;

use crate::helpers::*;

const SHOPIFY_ORDER: &str = "450789469";
const SHOPIFY_FULFILLMENT: u64 = 255_858_046;
const CARRIYO_ORDER: &str = "ORD-1001";
const CARRIYO_SHIPMENT: &str = "ORD-1001-1";
const REDO_ORDER: &str = "R-2001";
const REDO_FULFILLMENT: &str = "F-2001-1";

/// A status dated so far ahead that, accepted, it would outrank every
/// real status until then.
const FAR_FUTURE: &str = "2099-01-01T00:00:00Z";
/// Year -1 in UTC, which chrono reads and RFC 3339 cannot write.
const BEFORE_YEAR_ZERO: &str = "0000-01-01T00:00:00+23:59";
/// Year 10000 in UTC.
const AFTER_YEAR_9999: &str = "9999-12-31T23:59:59-00:01";

/// Now plus `minutes`, as a provider writes it.
fn in_minutes(minutes: i64) -> String {
    (Utc::now() + Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The one message of an error body in any provider's shape: Shopify's
/// `errors` string, Carriyo's `errors` list, Redo's and the ops API's
/// `error`.
fn message(answer: &Value) -> String {
    let text = match (&answer["errors"], &answer["error"]) {
        (Value::String(text), _) | (_, Value::String(text)) => Some(text.clone()),
        (Value::Array(list), _) => list.first().and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    text.unwrap_or_else(|| panic!("no error message in {answer}"))
}

/// Asserts a 400 whose message names every one of `named`.
fn assert_refused(what: &str, (status, answer): (u16, Value), named: &[&str]) {
    assert_eq!(status, 400, "{what}: {answer}");
    let text = message(&answer);
    for part in named {
        assert!(text.contains(part), "{what}: {text:?} should name {part:?}");
    }
}

/// Asserts Shopify's REST 422, `{"errors": {field: [messages]}}`, for
/// `field`.
fn assert_unprocessable(what: &str, (status, answer): (u16, Value), field: &str) {
    assert_eq!(status, 422, "{what}: {answer}");
    let messages = answer["errors"][field].as_array();
    assert!(
        messages.is_some_and(|m| !m.is_empty()),
        "{what}: {answer} should name `{field}`"
    );
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn shopify_webhook(app: &TestApp, body: &Value) -> (u16, Value) {
    answer(
        app.post_shopify(&ShopifyDelivery::new("fulfillment_events/create", body))
            .await,
    )
    .await
}

async fn shopify_rest_create(app: &TestApp, body: &Value) -> (u16, Value) {
    TestApp::send_for_json(
        app.shopify_rest(
            Method::POST,
            &shopify_events_path(SHOPIFY_ORDER, &SHOPIFY_FULFILLMENT.to_string()),
            Some(SHOPIFY_ACCESS_TOKEN),
        )
        .json(body),
    )
    .await
}

/// The REST sample with another `happened_at`.
fn rest_body(happened_at: &str) -> Value {
    let mut body = sample("shopify", "rest_event_create");
    body["event"]["happened_at"] = json!(happened_at);
    body
}

/// The in-transit Carriyo sample with another `update_date`.
fn carriyo_shipment(update_date: &str) -> Value {
    let mut body = sample("carriyo", "shipment_in_transit");
    body["update_date"] = json!(update_date);
    body
}

async fn carriyo_webhook(app: &TestApp, delivery: &CarriyoDelivery) -> (u16, Value) {
    answer(app.post_carriyo_webhook(delivery).await).await
}

/// The Redo status sample with another `datetime`.
fn redo_status(datetime: &str) -> Value {
    let mut body = sample("redo", "shipment_status");
    body["datetime"] = json!(datetime);
    body
}

/// Creates the Redo sample order.
async fn create_redo_order(app: &TestApp) {
    let (status, body) = app
        .redo_post("/orders", &sample("redo", "create_order"))
        .await;
    assert_eq!(status, 200, "{body}");
}

fn redo_status_path(fulfillment: &str) -> String {
    format!("/orders/{REDO_ORDER}/fulfillments/{fulfillment}/shipment-status")
}

fn redo_fulfillments_path() -> String {
    format!("/orders/{REDO_ORDER}/fulfillments")
}

#[apply(backends)]
#[tokio::test]
async fn news_dated_past_the_clock_skew_is_refused_naming_its_field_on_every_provider(
    backend: Backend,
) {
    let app = spawn_app(backend).await;

    // Shopify's webhook: the far-future status is refused, so a real
    // later one still moves the fulfillment.
    let future = shopify_event_body(SHOPIFY_FULFILLMENT, 9001, "in_transit", FAR_FUTURE);
    assert_refused(
        "Shopify webhook",
        shopify_webhook(&app, &future).await,
        &["`happened_at`", "2099-01-01T00:00:00Z", "1h"],
    );
    let soon = shopify_event_body(SHOPIFY_FULFILLMENT, 9002, "in_transit", &in_minutes(30));
    assert_eq!(shopify_webhook(&app, &soon).await.0, 200, "within the skew");
    let delivered = shopify_event_body(SHOPIFY_FULFILLMENT, 9003, "delivered", &in_minutes(45));
    assert_eq!(shopify_webhook(&app, &delivered).await.0, 200);
    let key = ("acme", SHOPIFY_ORDER, &*SHOPIFY_FULFILLMENT.to_string());
    let f = app
        .wait_for_fulfillment((key.0, key.1, key.2), |f| f["status"] == "delivered")
        .await;
    assert_eq!(TestApp::history_words(&f), ["in_transit", "delivered"]);

    // Shopify's REST create.
    assert_unprocessable(
        "Shopify REST create",
        shopify_rest_create(&app, &rest_body(FAR_FUTURE)).await,
        "happened_at",
    );

    // Carriyo's webhook and its order endpoint (for an order it knows).
    let mut delivery = CarriyoDelivery::webhook(&carriyo_shipment(FAR_FUTURE));
    assert_refused(
        "Carriyo webhook",
        carriyo_webhook(&app, &delivery).await,
        &["`update_date`"],
    );
    delivery = CarriyoDelivery::webhook(&carriyo_shipment(&in_minutes(-60)));
    assert_eq!(carriyo_webhook(&app, &delivery).await.0, 200);
    app.wait_for_fulfillment(("acme", CARRIYO_ORDER, CARRIYO_SHIPMENT), |_| true)
        .await;
    let update = CarriyoDelivery::status_update(&carriyo_shipment(FAR_FUTURE));
    assert_refused(
        "Carriyo status update",
        answer(app.post_carriyo_status_update(&update).await).await,
        &["`update_date`"],
    );

    // Redo: a refused initial tracking creates no fulfillment.
    create_redo_order(&app).await;
    let mut create = sample("redo", "create_fulfillment");
    create["initialTracking"]["datetime"] = json!(FAR_FUTURE);
    assert_refused(
        "Redo create fulfillment",
        app.redo_post(&redo_fulfillments_path(), &create).await,
        &["`initialTracking.datetime`"],
    );
    let (status, body) = app
        .redo_post(
            &redo_fulfillments_path(),
            &sample("redo", "create_fulfillment"),
        )
        .await;
    assert_eq!(status, 200, "nothing was left by the refusal: {body}");
    assert_refused(
        "Redo shipment status",
        app.redo_post(
            &redo_status_path(REDO_FULFILLMENT),
            &redo_status(FAR_FUTURE),
        )
        .await,
        &["`datetime`"],
    );

    // An ETA far ahead is no news time: accepted.
    let mut far_eta = shopify_event_body(SHOPIFY_FULFILLMENT, 9004, "delayed", &in_minutes(50));
    far_eta["estimated_delivery_at"] = json!(FAR_FUTURE);
    assert_eq!(shopify_webhook(&app, &far_eta).await.0, 200);
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn the_clock_skew_is_configurable(backend: Backend) {
    let app = spawn_app_with(backend, &[("SHIPGATE__CORE__MAX_CLOCK_SKEW", "5m")]).await;
    let ahead = shopify_event_body(SHOPIFY_FULFILLMENT, 9101, "in_transit", &in_minutes(30));
    assert_refused(
        "30 minutes ahead with a 5m skew",
        shopify_webhook(&app, &ahead).await,
        &["`happened_at`", "5m"],
    );
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn times_outside_the_years_0000_to_9999_in_utc_are_refused_naming_the_field(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    create_redo_order(&app).await;
    let (status, body) = app
        .redo_post(
            &redo_fulfillments_path(),
            &sample("redo", "create_fulfillment"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for time in [BEFORE_YEAR_ZERO, AFTER_YEAR_9999] {
        let event = shopify_event_body(SHOPIFY_FULFILLMENT, 9201, "in_transit", time);
        assert_refused(
            "Shopify webhook",
            shopify_webhook(&app, &event).await,
            &["`happened_at`", time],
        );
        assert_unprocessable(
            "Shopify REST create",
            shopify_rest_create(&app, &rest_body(time)).await,
            "happened_at",
        );
        let delivery = CarriyoDelivery::webhook(&carriyo_shipment(time));
        assert_refused(
            "Carriyo webhook",
            carriyo_webhook(&app, &delivery).await,
            &["`update_date`"],
        );
        assert_refused(
            "Redo shipment status",
            app.redo_post(&redo_status_path(REDO_FULFILLMENT), &redo_status(time))
                .await,
            &["`datetime`"],
        );
        let mut order = sample("redo", "create_order");
        order["orderId"] = json!("R-YEAR");
        order["createdAt"] = json!(time);
        assert_refused(
            "Redo create order",
            app.redo_post("/orders", &order).await,
            &["`createdAt`"],
        );
    }
    // Year 0000 itself is a year RFC 3339 writes.
    let mut order = sample("redo", "create_order");
    order["orderId"] = json!("R-YEAR-0");
    order["createdAt"] = json!("0000-01-01T00:00:00Z");
    assert_eq!(app.redo_post("/orders", &order).await.0, 200);
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn refused_rest_creates_use_up_no_event_ids(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, first) = shopify_rest_create(&app, &rest_body(&in_minutes(-90))).await;
    assert_eq!(status, 201, "{first}");
    let first = first["fulfillment_event"]["id"].as_u64().expect("an id");
    let mut unknown_shape = rest_body(&in_minutes(-80));
    unknown_shape["event"]["status"] = json!(42);
    for refused in [
        rest_body(FAR_FUTURE),
        rest_body(BEFORE_YEAR_ZERO),
        rest_body("yesterday"),
        unknown_shape,
    ] {
        // Shopify's REST API answers a field it refuses with 422.
        assert_eq!(
            shopify_rest_create(&app, &refused).await.0,
            422,
            "{refused}"
        );
    }
    let (status, next) = shopify_rest_create(&app, &rest_body(&in_minutes(-70))).await;
    assert_eq!(status, 201, "{next}");
    assert_eq!(
        next["fulfillment_event"]["id"].as_u64(),
        Some(first + 1),
        "the refusals took no id"
    );
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn ids_longer_than_255_bytes_are_refused_naming_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let longest = "f".repeat(255);
    let too_long = "f".repeat(256);

    // Redo: the 200,000-character fulfillmentId, then the longest
    // allowed, which stays addressable.
    create_redo_order(&app).await;
    let create =
        |id: &str| json!({"fulfillmentId": id, "lineItems": [{"id": "li-1", "quantity": 1}]});
    assert_refused(
        "Redo fulfillmentId",
        app.redo_post(&redo_fulfillments_path(), &create(&"f".repeat(200_000)))
            .await,
        &["`fulfillmentId`", "200000 bytes", "255"],
    );
    let (status, body) = app
        .redo_post(&redo_fulfillments_path(), &create(&longest))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .redo_post(&redo_status_path(&longest), &redo_status(&in_minutes(-5)))
        .await;
    assert_eq!(status, 200, "the longest id is addressable: {body}");
    assert_eq!(body["fulfillment"]["status"], "in_transit", "{body}");
    let mut order = sample("redo", "create_order");
    order["orderId"] = json!(too_long);
    assert_refused(
        "Redo orderId",
        app.redo_post("/orders", &order).await,
        &["`orderId`"],
    );
    let keyed = TestApp::send_for_json(
        app.redo(Method::POST, &redo_status_path(&longest))
            .header("Idempotency-Key", &too_long)
            .json(&redo_status(&in_minutes(-4))),
    )
    .await;
    assert_refused("Redo Idempotency-Key", keyed, &["Idempotency-Key"]);

    // Carriyo: references, the shipment id and the event-id header.
    for (path, field) in [
        (
            &["references", "partner_order_reference"][..],
            "`references.partner_order_reference`",
        ),
        (
            &["references", "partner_shipment_reference"][..],
            "`references.partner_shipment_reference`",
        ),
        (&["shipment_id"][..], "`shipment_id`"),
        (
            &["post_shipping_info", "tracking_no"][..],
            "`post_shipping_info.tracking_no`",
        ),
    ] {
        let mut shipment = carriyo_shipment(&in_minutes(-3));
        let mut slot = &mut shipment;
        for part in path {
            slot = &mut slot[*part];
        }
        *slot = json!(too_long);
        let delivery = CarriyoDelivery::webhook(&shipment);
        assert_refused("Carriyo", carriyo_webhook(&app, &delivery).await, &[field]);
    }
    let mut delivery = CarriyoDelivery::webhook(&carriyo_shipment(&in_minutes(-3)));
    delivery.event_id = Some(too_long.clone());
    assert_refused(
        "Carriyo event-id",
        carriyo_webhook(&app, &delivery).await,
        &["header event-id"],
    );

    // Shopify: the event id header (its body's ids are integers).
    let body = shopify_event_body(SHOPIFY_FULFILLMENT, 9301, "in_transit", &in_minutes(-2));
    let mut webhook = ShopifyDelivery::new("fulfillment_events/create", &body);
    webhook.event_id = Some(too_long.clone());
    assert_refused(
        "Shopify X-Shopify-Event-Id",
        answer(app.post_shopify(&webhook).await).await,
        &["X-Shopify-Event-Id"],
    );

    // Nothing refused reached a fulfillment.
    assert!(app
        .fulfillment("acme", CARRIYO_ORDER, CARRIYO_SHIPMENT)
        .await
        .is_none());
    assert!(app
        .fulfillment("acme", SHOPIFY_ORDER, &SHOPIFY_FULFILLMENT.to_string())
        .await
        .is_none());
    app.stop().await;
}

/// A store whose Carriyo webhook authenticates with a bearer token.
const BEARER_STORE: [(&str, &str); 2] = [
    ("SHIPGATE__STORES__ZETA__CARRIYO__TENANT_ID", "ZETA"),
    (
        "SHIPGATE__STORES__ZETA__CARRIYO__BEARER_TOKENS",
        "zeta-token",
    ),
];

#[apply(backends)]
#[tokio::test]
async fn the_authorization_scheme_is_read_in_any_case_on_every_route(backend: Backend) {
    let app = spawn_app_with(backend, &BEARER_STORE).await;
    let ops = |value: Option<String>| {
        let request = app.client.get(app.url("/api/v1/stats"));
        let request = match value {
            Some(value) => request.header("Authorization", value),
            None => request,
        };
        TestApp::send_for_json(request)
    };
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let (status, body) = ops(Some(format!("{scheme} {ADMIN_TOKEN}"))).await;
        assert_eq!(status, 200, "ops API, {scheme}: {body}");
    }
    let (status, body) = ops(Some(format!("Basic {ADMIN_TOKEN}"))).await;
    assert_eq!(status, 401, "{body}");
    let text = message(&body);
    assert!(
        text.contains("not of the form") && !text.contains("missing"),
        "another scheme is not a missing header: {text}"
    );
    let (status, body) = ops(Some("bearer not-the-token".into())).await;
    assert_eq!(status, 401, "{body}");
    assert!(message(&body).contains("not an admin token"), "{body}");
    let (status, body) = ops(None).await;
    assert_eq!(status, 401, "{body}");
    assert!(message(&body).contains("missing"), "{body}");

    // Redo: the same parser.
    create_redo_order(&app).await;
    for scheme in ["bearer", "BEARER"] {
        let request = app
            .client
            .get(app.url(&redo_path(REDO_STORE_ID, &format!("/orders/{REDO_ORDER}"))))
            .header("Authorization", format!("{scheme} {REDO_TOKEN}"));
        let (status, body) = TestApp::send_for_json(request).await;
        assert_eq!(status, 200, "Redo, {scheme}: {body}");
    }

    // Carriyo's bearer scheme.
    let mut shipment = carriyo_shipment(&in_minutes(-10));
    shipment["tenant"] = json!("ZETA");
    let request = app
        .client
        .post(app.url("/webhooks/carriyo"))
        .header("Content-Type", "application/json")
        .header("event-id", "evt-zeta-1")
        .header("Authorization", "bearer zeta-token")
        .json(&shipment);
    let (status, body) = answer(request.send().await.expect("sent")).await;
    assert_eq!(status, 200, "Carriyo, bearer: {body}");
    app.stop().await;
}

// ---- configurations, through `check-config` -------------------------------

/// Runs `shipgate check-config` on `config` with only `env`.
async fn check_config(config: &str, env: &[(String, String)]) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!(
        "shipgate-hostile-{}",
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let file = dir.join("prod.toml");
    std::fs::write(&file, config).expect("the config is written");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_shipgate"))
        .args([
            "check-config",
            "--config",
            file.to_str().expect("a UTF-8 path"),
        ])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("the binary runs");
    let _ = std::fs::remove_dir_all(dir);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[apply(backends)]
#[tokio::test]
async fn check_config_refuses_shared_or_blank_credentials_and_urls_with_userinfo(backend: Backend) {
    let storage = backend.env();
    let north = "[stores.acme]\nenabled = false\n\
        [stores.north.shopify]\nshop_domain = \"north.myshopify.com\"\n\
        webhook_secrets = [\"north-secret\"]\naccess_tokens = [\"north-token\"]\n";
    // Each config plants one mistake: check-config stops at a store whose
    // required key it had to take out.
    for (planted, expected) in [
        (
            "[stores.south.shopify]\nshop_domain = \"south.myshopify.com\"\n\
             webhook_secrets = [\"south-secret\"]\naccess_tokens = [\"north-token\"]\n",
            &[
                "config key `stores.south.shopify.access_tokens`",
                "store `north` (`stores.north.shopify.access_tokens`)",
            ][..],
        ),
        (
            "[stores.south.carriyo]\ntenant_id = \"SOUTH\"\nbearer_tokens = [\"north-token\"]\n",
            &[
                "config key `stores.south.carriyo.bearer_tokens`",
                "store `north` (`stores.north.shopify.access_tokens`)",
            ][..],
        ),
        (
            "[stores.south.redo]\nstore_id = \"s1\"\napi_tokens = [\"   \"]\n",
            &[
                "config key `stores.south.redo.api_tokens`",
                "empty or only whitespace",
            ][..],
        ),
        (
            "[[automations]]\nname = \"notify\"\non = [\"delivered\"]\n\
             url = \"https://user:pw@hooks.example.com/x\"\n",
            &["automation rule `notify`: `url` carries user:password@"][..],
        ),
    ] {
        let (ok, report) = check_config(&format!("{north}{planted}"), &storage).await;
        assert!(!ok, "{planted}: {report}");
        for part in expected {
            assert!(report.contains(part), "missing «{part}» in:\n{report}");
        }
        for secret in ["north-token", "north-secret"] {
            assert!(!report.contains(secret), "a secret was printed:\n{report}");
        }
    }

    // Each store with its own credentials, and a plain URL: valid.
    let fixed = format!(
        "{north}[stores.south.carriyo]\ntenant_id = \"SOUTH\"\nbearer_tokens = [\"south-token\"]\n\
         [[automations]]\nname = \"notify\"\non = [\"delivered\"]\n\
         url = \"https://hooks.example.com/x\"\nbearer_token = \"hook-token\"\n"
    );
    let (ok, report) = check_config(&fixed, &storage).await;
    assert!(ok, "{report}");
}
