//! Carriyo end to end: the shipment webhook and the order endpoint, every
//! mapping row, dedup, the apply rules, store selection and bad inputs.

use serde_json::{json, Value};

use rstest_reuse::apply;

use crate::helpers::*;

const ORDER: &str = "ORD-1001";
const SHIPMENT: &str = "ORD-1001-1";

/// The in-transit sample, moved to another shipment, status and time.
fn shipment(reference: &str, status: &str, update_date: &str) -> Value {
    let mut body = sample("carriyo", "shipment_in_transit");
    body["references"]["partner_shipment_reference"] = json!(reference);
    body["post_shipping_info"]["status"] = json!(status);
    body["update_date"] = json!(update_date);
    body
}

fn has_history(f: &Value) -> bool {
    !TestApp::history_words(f).is_empty()
}

#[apply(backends)]
#[tokio::test]
async fn the_samples_in_transit_then_delivered_are_applied(backend: Backend) {
    let app = spawn_app(backend).await;
    let transit = sample("carriyo", "shipment_in_transit");
    let response = app
        .post_carriyo_webhook(&CarriyoDelivery::webhook(&transit))
        .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        (&answer["accepted"], &answer["duplicate"]),
        (&json!(true), &json!(false))
    );
    assert!(answer["event_id"].is_string(), "{answer}");
    let f = app
        .wait_for_fulfillment(("acme", ORDER, SHIPMENT), |f| f["status"] == "in_transit")
        .await;
    assert_eq!(f["trackingCompany"], "ARAMEX");
    assert_eq!(f["trackingNumber"], "44012345678");
    assert_eq!(f["estimatedDeliveryDate"], "2026-11-24");
    let entry = &f["trackingHistory"][0];
    assert_eq!(entry["provider"], "carriyo");
    assert_eq!(entry["rawStatus"], "in_transit");
    assert_eq!(entry["datetime"], "2026-11-21T11:42:18.000Z");
    let delivered = sample("carriyo", "shipment_delivered");
    let response = app
        .post_carriyo_webhook(&CarriyoDelivery::webhook(&delivered))
        .await;
    assert_eq!(response.status(), 200);
    let f = app
        .wait_for_fulfillment(("acme", ORDER, SHIPMENT), |f| f["status"] == "delivered")
        .await;
    assert_eq!(f["deliveredAt"], "2026-11-23T10:21:07.000Z");
    assert_eq!(TestApp::history_words(&f), ["in_transit", "delivered"]);
    app.stop().await;
}

/// PROVIDERS.md's Carriyo rows, written out here rather than read from the
/// map file, so that a wrong map fails this test.
const SHIPMENT_ROWS: [(&str, &str, &str); 22] = [
    ("draft", "status", "pre_transit"),
    ("pending", "status", "pre_transit"),
    ("booked", "status", "pre_transit"),
    ("ready_to_ship", "status", "pre_transit"),
    ("shipped", "status", "in_transit"),
    ("in_transit", "status", "in_transit"),
    ("out_for_delivery", "status", "out_for_delivery"),
    (
        "awaiting_customer_collection",
        "status",
        "available_for_pickup",
    ),
    ("delivered", "status", "delivered"),
    ("delivery_confirmed", "status", "delivered"),
    ("failed_delivery_attempt", "event", "delayed"),
    ("failed_collection_attempt", "event", "delayed"),
    ("delayed", "event", "delayed"),
    ("suspended", "event", "delayed"),
    ("missing", "status", "failure"),
    ("cancelled", "status", "cancelled"),
    ("cancelled_by_carrier", "status", "cancelled"),
    ("error", "status", "error"),
    ("ready_for_return", "status", "return_to_sender"),
    ("return_in_transit", "status", "return_to_sender"),
    ("returned", "status", "return_to_sender"),
    ("return_confirmed", "status", "return_to_sender"),
];

#[apply(backends)]
#[tokio::test]
async fn every_shipment_status_word_maps_as_providers_md_says(backend: Backend) {
    let app = spawn_app(backend).await;
    for (word, _, _) in SHIPMENT_ROWS {
        let body = shipment(&format!("map-{word}"), word, "2026-11-21T09:00:00Z");
        let response = app
            .post_carriyo_webhook(&CarriyoDelivery::webhook(&body))
            .await;
        assert_eq!(response.status(), 200, "{word}");
    }
    for (word, kind, canonical) in SHIPMENT_ROWS {
        let f = app
            .wait_for_fulfillment(("acme", ORDER, &format!("map-{word}")), has_history)
            .await;
        let entry = &f["trackingHistory"][0];
        assert_eq!(
            (entry["kind"].as_str(), entry["status"].as_str()),
            (Some(kind), Some(canonical)),
            "{word}"
        );
        assert_eq!(entry["rawStatus"], word);
        let expected_status = if kind == "status" {
            canonical
        } else {
            "unknown"
        };
        assert_eq!(
            f["status"], expected_status,
            "{word}: events leave the status alone"
        );
    }
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn the_status_comes_from_the_shipment_not_the_trigger_header(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = shipment(SHIPMENT, "in_transit", "2026-11-21T09:00:00Z");
    let mut delivery = CarriyoDelivery::webhook(&body);
    delivery.trigger = "delivered".into();
    assert_eq!(app.post_carriyo_webhook(&delivery).await.status(), 200);
    let f = app
        .wait_for_fulfillment(("acme", ORDER, SHIPMENT), has_history)
        .await;
    assert_eq!(f["status"], "in_transit");
    let mut metadata = CarriyoDelivery::webhook(&body);
    metadata.trigger = "promised_delivery_update".into();
    let response = app.post_carriyo_webhook(&metadata).await;
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["duplicate"], true,
        "a metadata trigger with an unchanged shipment is the same news"
    );
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn the_same_event_id_twice_applies_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let delivery = CarriyoDelivery::webhook(&sample("carriyo", "shipment_in_transit"));
    let first: Value = app
        .post_carriyo_webhook(&delivery)
        .await
        .json()
        .await
        .unwrap();
    let second = app.post_carriyo_webhook(&delivery).await;
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["duplicate"], true);
    assert_eq!(second["event_id"], first["event_id"]);
    app.wait_until_applied().await;
    let f = app
        .fulfillment("acme", ORDER, SHIPMENT)
        .await
        .expect("applied");
    assert_eq!(TestApp::history_words(&f), ["in_transit"]);
    let stats = app.stats("carriyo").await;
    assert_eq!(
        (stats["accepted"].as_u64(), stats["duplicate"].as_u64()),
        (Some(1), Some(1))
    );
    app.stop().await;
}

/// A delivery id is scoped to its fulfillment, on every backend: the
/// same `event-id` on another shipment is news, not a repeat.
#[apply(backends)]
#[tokio::test]
async fn an_event_id_reused_on_another_shipment_is_applied_to_both(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut first =
        CarriyoDelivery::webhook(&shipment(SHIPMENT, "in_transit", "2026-11-20T10:00:00Z"));
    first.event_id = Some("evt-reused".into());
    let mut second = CarriyoDelivery::webhook(&shipment(
        "ORD-1001-2",
        "in_transit",
        "2026-11-20T10:00:00Z",
    ));
    second.event_id = Some("evt-reused".into());
    for delivery in [&first, &second] {
        let answer: Value = app
            .post_carriyo_webhook(delivery)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(answer["duplicate"], false, "{answer}");
    }
    for reference in [SHIPMENT, "ORD-1001-2"] {
        app.wait_for_fulfillment(("acme", ORDER, reference), has_history)
            .await;
    }
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn the_same_content_under_a_new_event_id_applies_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = sample("carriyo", "shipment_in_transit");
    for _ in 0..2 {
        // A fresh event-id each time, as a resend under a new id would have.
        let response = app
            .post_carriyo_webhook(&CarriyoDelivery::webhook(&body))
            .await;
        assert_eq!(response.status(), 200);
    }
    app.wait_until_applied().await;
    let f = app
        .fulfillment("acme", ORDER, SHIPMENT)
        .await
        .expect("applied");
    assert_eq!(TestApp::history_words(&f), ["in_transit"]);
    let stats = app.stats("carriyo").await;
    assert_eq!(
        (stats["accepted"].as_u64(), stats["duplicate"].as_u64()),
        (Some(1), Some(1))
    );
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_word_the_map_does_not_know_is_accepted_as_unmapped(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = shipment(SHIPMENT, "teleported", "2026-11-21T09:00:00Z");
    let response = app
        .post_carriyo_webhook(&CarriyoDelivery::webhook(&body))
        .await;
    assert_eq!(response.status(), 200);
    let f = app
        .wait_for_fulfillment(("acme", ORDER, SHIPMENT), has_history)
        .await;
    assert_eq!(f["status"], "unknown");
    assert_eq!(f["trackingHistory"][0]["kind"], "unmapped");
    assert_eq!(f["trackingHistory"][0]["rawStatus"], "teleported");
    let (_, unmapped) = app.admin_get("/api/v1/unmapped").await;
    assert_eq!(
        unmapped["unmapped"][0],
        json!({"provider": "carriyo", "word": "teleported", "count": 1})
    );
    assert_eq!(app.stats("carriyo").await["unmapped"], 1);
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_late_older_update_cannot_undo_delivered(backend: Backend) {
    let app = spawn_app(backend).await;
    let delivered = shipment(SHIPMENT, "delivered", "2026-11-21T10:00:00Z");
    app.post_carriyo_webhook(&CarriyoDelivery::webhook(&delivered))
        .await;
    app.wait_for_fulfillment(("acme", ORDER, SHIPMENT), |f| f["status"] == "delivered")
        .await;
    let late = shipment(SHIPMENT, "in_transit", "2026-11-21T09:00:00Z");
    app.post_carriyo_webhook(&CarriyoDelivery::webhook(&late))
        .await;
    let f = app
        .wait_for_fulfillment(("acme", ORDER, SHIPMENT), |f| {
            TestApp::history_words(f).len() == 2
        })
        .await;
    assert_eq!(f["status"], "delivered");
    assert_eq!(f["deliveredAt"], "2026-11-21T10:00:00.000Z");
    assert_eq!(TestApp::history_words(&f), ["in_transit", "delivered"]);
    assert_eq!(f["trackingHistory"][0]["stale"], true);
    assert_eq!(f["trackingHistory"][1]["stale"], false);
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn an_update_for_an_order_nobody_knows_answers_empty_and_stores_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = sample("carriyo", "shipment_status_update");
    let response = app
        .post_carriyo_status_update(&CarriyoDelivery::status_update(&body))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "");
    let stats = app.stats("carriyo").await;
    assert_eq!(
        (stats["accepted"].as_u64(), stats["duplicate"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(app.fulfillment("acme", ORDER, SHIPMENT).await, None);
    let (_, events) = app.admin_get("/api/v1/events?provider=carriyo").await;
    assert_eq!(events["events"], json!([]));
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn an_update_for_a_known_order_is_applied_before_the_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let transit = sample("carriyo", "shipment_in_transit");
    app.post_carriyo_webhook(&CarriyoDelivery::webhook(&transit))
        .await;
    app.wait_for_fulfillment(("acme", ORDER, SHIPMENT), |f| f["status"] == "in_transit")
        .await;

    let update = CarriyoDelivery::status_update(&sample("carriyo", "shipment_status_update"));
    let response = app.post_carriyo_status_update(&update).await;
    assert_eq!(response.status(), 200);
    let order: Value = response.json().await.unwrap();
    assert_eq!(
        order,
        json!({
            "tenant": CARRIYO_TENANT,
            "order_id": ORDER,
            "partner_order_reference": ORDER,
            "order_date": order["order_date"],
            "status": "processing",
            "shipments": [{
                "partner_shipment_reference": SHIPMENT,
                "status": "out_for_delivery",
                "carrier": "ARAMEX",
                "tracking_no": "44012345678",
                "estimated_delivery_date": "2026-11-24",
                "delivered_at": null,
                "update_date": order["shipments"][0]["update_date"],
            }],
        })
    );
    let f = app
        .fulfillment("acme", ORDER, SHIPMENT)
        .await
        .expect("stored");
    assert_eq!(f["status"], "out_for_delivery", "applied before the answer");
    let updated = f["updatedAt"].as_str().unwrap().replace('Z', "+00:00");
    assert_eq!(order["shipments"][0]["update_date"], json!(updated));

    let again = app.post_carriyo_status_update(&update).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap(), order);
    let stats = app.stats("carriyo").await;
    assert_eq!(
        (stats["accepted"].as_u64(), stats["duplicate"].as_u64()),
        (Some(2), Some(1))
    );

    let second = shipment("ORD-1001-2", "booked", "2026-11-23T06:00:00Z");
    let order: Value = app
        .post_carriyo_status_update(&CarriyoDelivery::status_update(&second))
        .await
        .json()
        .await
        .unwrap();
    let shipments: Vec<_> = order["shipments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["partner_shipment_reference"].clone(), s["status"].clone()))
        .collect();
    assert_eq!(
        shipments,
        [
            (json!(SHIPMENT), json!("out_for_delivery")),
            (json!("ORD-1001-2"), json!("pre_transit")),
        ]
    );
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn the_tenant_id_header_selects_the_store(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut body = sample("carriyo", "shipment_in_transit");
    body.as_object_mut().unwrap().remove("tenant");
    let mut delivery = CarriyoDelivery::webhook(&body);
    delivery.tenant_id = Some(OTHER_CARRIYO_TENANT);
    delivery.api_key = Some(OTHER_CARRIYO_KEY);
    assert_eq!(app.post_carriyo_webhook(&delivery).await.status(), 200);
    app.wait_for_fulfillment(("beta", ORDER, SHIPMENT), |f| f["status"] == "in_transit")
        .await;
    assert_eq!(app.fulfillment("acme", ORDER, SHIPMENT).await, None);
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn without_a_tenant_the_key_selects_the_store(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut body = sample("carriyo", "shipment_in_transit");
    body.as_object_mut().unwrap().remove("tenant");
    let mut delivery = CarriyoDelivery::webhook(&body);
    delivery.api_key = Some(OTHER_CARRIYO_KEY);
    assert_eq!(app.post_carriyo_webhook(&delivery).await.status(), 200);
    app.wait_for_fulfillment(("beta", ORDER, SHIPMENT), |f| f["status"] == "in_transit")
        .await;
    assert_eq!(app.fulfillment("acme", ORDER, SHIPMENT).await, None);
    app.stop().await;
}

/// Each bad input: its status (403 for a key or tenant, as Carriyo
/// answers), a message naming what is wrong, nothing stored.
#[apply(backends)]
#[tokio::test]
async fn bad_requests_are_refused_with_a_reason_and_store_nothing(backend: Backend) {
    let app = spawn_app_with(backend, &[("SHIPGATE__SERVER__BODY_LIMIT", "4KiB")]).await;
    let good = sample("carriyo", "shipment_in_transit");
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = good.clone();
        change(&mut body);
        CarriyoDelivery::webhook(&body)
    };
    let webhook = "/webhooks/carriyo";
    let order = "/orders/shipment-status-update";
    let mut cases: Vec<(&str, &str, CarriyoDelivery, u16, &[&str])> = Vec::new();
    let mut no_key = CarriyoDelivery::webhook(&good);
    no_key.api_key = None;
    cases.push(("missing x-api-key", webhook, no_key, 403, &["x-api-key"]));
    let mut wrong_key = CarriyoDelivery::webhook(&good);
    wrong_key.api_key = Some("not-a-key");
    cases.push(("wrong key", webhook, wrong_key, 403, &["x-api-key"]));
    let mut other_key = CarriyoDelivery::webhook(&good);
    other_key.tenant_id = Some(CARRIYO_TENANT);
    other_key.api_key = Some(OTHER_CARRIYO_KEY);
    cases.push((
        "another store's key with our tenant-id",
        webhook,
        other_key,
        403,
        &["x-api-key", CARRIYO_TENANT],
    ));
    let mut other_key_order = CarriyoDelivery::status_update(&good);
    other_key_order.api_key = Some(OTHER_CARRIYO_KEY);
    cases.push((
        "another store's key with our tenant-id, order endpoint",
        order,
        other_key_order,
        403,
        &["x-api-key", CARRIYO_TENANT],
    ));
    let mut unknown_tenant = CarriyoDelivery::webhook(&good);
    unknown_tenant.tenant_id = Some("NOPE");
    cases.push((
        "unknown tenant-id",
        webhook,
        unknown_tenant,
        403,
        &["tenant-id", "NOPE"],
    ));
    cases.push((
        "unknown tenant in the body",
        webhook,
        with(&|b| b["tenant"] = json!("NOPE")),
        403,
        &["`tenant`", "NOPE"],
    ));
    let mut no_tenant_order = CarriyoDelivery::status_update(&good);
    no_tenant_order.tenant_id = None;
    cases.push((
        "order endpoint without tenant-id",
        order,
        no_tenant_order,
        403,
        &["tenant-id"],
    ));
    let mut not_json = CarriyoDelivery::webhook(&good);
    not_json.body = b"status=in_transit".to_vec();
    cases.push(("not JSON", webhook, not_json, 400, &["not valid JSON"]));
    cases.push((
        "missing post_shipping_info.status",
        webhook,
        with(&|b| {
            b["post_shipping_info"]
                .as_object_mut()
                .unwrap()
                .remove("status");
        }),
        400,
        &["post_shipping_info", "`status`"],
    ));
    cases.push((
        "a number for the status",
        webhook,
        with(&|b| b["post_shipping_info"]["status"] = json!(7)),
        400,
        &["post_shipping_info.status"],
    ));
    cases.push((
        "missing partner_order_reference",
        webhook,
        with(&|b| {
            b["references"]
                .as_object_mut()
                .unwrap()
                .remove("partner_order_reference");
        }),
        400,
        &["references", "partner_order_reference"],
    ));
    cases.push((
        "invalid update_date",
        webhook,
        with(&|b| b["update_date"] = json!("23/11/2026")),
        400,
        &["update_date", "23/11/2026"],
    ));
    cases.push((
        "over the limit",
        webhook,
        with(&|b| b["custom_attributes"] = json!({"note": "x".repeat(5000)})),
        413,
        &["body_limit"],
    ));
    let mut text = CarriyoDelivery::webhook(&good);
    text.content_type = "text/plain";
    cases.push(("wrong content type", webhook, text, 415, &["Content-Type"]));

    let mut unauthorized = 0;
    let mut invalid = 0;
    for (name, path, delivery, status, named) in cases {
        let response = if path == webhook {
            app.post_carriyo_webhook(&delivery).await
        } else {
            app.post_carriyo_status_update(&delivery).await
        };
        assert_eq!(response.status().as_u16(), status, "{name}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            answer["status"],
            json!(status.to_string()),
            "{name}: {answer}"
        );
        let message = answer["errors"][0].as_str().unwrap_or_default();
        for part in named {
            assert!(
                message.contains(part),
                "{name}: {message:?} should name {part:?}"
            );
        }
        if status == 403 {
            unauthorized += 1
        } else {
            invalid += 1
        }
    }
    let stats = app.stats("carriyo").await;
    assert_eq!(stats["accepted"], 0, "nothing is stored");
    assert_eq!(stats["unauthorized"], unauthorized);
    assert_eq!(stats["invalid"], invalid);
    assert_eq!(app.fulfillment("acme", ORDER, SHIPMENT).await, None);
    let (_, events) = app.admin_get("/api/v1/events").await;
    assert_eq!(events["events"], json!([]));
    app.stop().await;
}
