//! Carriyo's shipments as fulfillments: a return (`entity_type` REVERSE)
//! is one of its own, marked `direction: "return"` in the view and the
//! feed; a shipment without a `partner_shipment_reference` is keyed by its
//! `shipment_id`; a reason code becomes the history message; a new
//! promised delivery date moves the ETA while the status word stays.
//! Automations and directions are in `automations.rs`.

use serde_json::{json, Value};

use rstest_reuse::apply;

use crate::helpers::*;
use crate::redo::{create_untracked_fulfillment, ORDER as REDO_ORDER};

const ORDER: &str = "ORD-1001";
const SHIPMENT: &str = "ORD-1001-1";
const RETURN: &str = "ORD-1001-R1";

async fn post(app: &TestApp, delivery: &CarriyoDelivery) {
    let response = app.post_carriyo_webhook(delivery).await;
    assert_eq!(response.status(), 200);
}

/// The feed's events for `fulfillment`, newest first.
async fn feed_of(app: &TestApp, fulfillment: &str) -> Vec<Value> {
    let (status, body) = app.admin_get("/api/v1/events?provider=carriyo").await;
    assert_eq!(status, 200, "{body}");
    body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["key"]["fulfillment_ref"] == fulfillment)
        .cloned()
        .collect()
}

#[apply(backends)]
#[tokio::test]
async fn a_reverse_shipment_is_a_fulfillment_of_its_own_marked_return(backend: Backend) {
    let app = spawn_app(backend).await;
    let forward = sample("carriyo", "shipment_in_transit");
    post(&app, &CarriyoDelivery::webhook(&forward)).await;
    let back = sample("carriyo", "shipment_return_delivered");
    post(&app, &CarriyoDelivery::webhook(&back)).await;
    let ret = app
        .wait_for_fulfillment(("acme", ORDER, RETURN), |f| f["status"] == "delivered")
        .await;
    assert_eq!(ret["direction"], "return");
    assert_eq!(ret["trackingNumber"], "44012399871");
    assert_eq!(TestApp::history_words(&ret), ["delivered"]);
    app.wait_until_applied().await;
    let f = app
        .fulfillment("acme", ORDER, SHIPMENT)
        .await
        .expect("the forward shipment");
    assert_eq!(f["direction"], "forward");
    assert_eq!(
        (f["status"].as_str(), f["deliveredAt"].as_str()),
        (Some("in_transit"), None),
        "the return's delivered is not the forward shipment's"
    );
    assert_eq!(TestApp::history_words(&f), ["in_transit"]);
    let returned = feed_of(&app, RETURN).await;
    assert_eq!(returned.len(), 1, "{returned:?}");
    assert_eq!(returned[0]["direction"], "return");
    let sent = feed_of(&app, SHIPMENT).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["direction"], "forward");
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn shopify_and_redo_fulfillments_are_forward(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = sample("shopify", "fulfillment_event_create");
    let response = app
        .post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &body))
        .await;
    assert_eq!(response.status(), 200);
    let shopify = app
        .wait_for_fulfillment(("acme", "450789469", "255858046"), |f| {
            !TestApp::history_words(f).is_empty()
        })
        .await;
    assert_eq!(shopify["direction"], "forward");
    let (status, answer) = app
        .redo_post("/orders", &sample("redo", "create_order"))
        .await;
    assert_eq!(status, 200, "{answer}");
    let created = create_untracked_fulfillment(&app, "F-DIR-1").await;
    assert!(
        created.get("direction").is_none(),
        "Redo's shape has no direction: {created}"
    );
    let redo = app
        .fulfillment("acme", REDO_ORDER, "F-DIR-1")
        .await
        .expect("created");
    assert_eq!(redo["direction"], "forward");
    let (_, feed) = app.admin_get("/api/v1/events?provider=shopify").await;
    assert_eq!(feed["events"][0]["direction"], "forward", "{feed}");
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn shipments_without_a_shipment_reference_never_share_a_fulfillment(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = sample("carriyo", "shipment_without_shipment_reference");
    let mut second = first.clone();
    second["shipment_id"] = json!("SHP-88B4");
    second["post_shipping_info"]["status"] = json!("in_transit");
    second["post_shipping_info"]["tracking_no"] = json!("44012355502");
    for body in [&first, &second] {
        post(&app, &CarriyoDelivery::webhook(body)).await;
    }
    let one = app
        .wait_for_fulfillment(("acme", "ORD-2002", "SHP-88B3"), |f| {
            f["status"] == "pre_transit"
        })
        .await;
    let two = app
        .wait_for_fulfillment(("acme", "ORD-2002", "SHP-88B4"), |f| {
            f["status"] == "in_transit"
        })
        .await;
    assert_eq!(TestApp::history_words(&one), ["pre_transit"]);
    assert_eq!(one["trackingNumber"], "44012355501");
    assert_eq!(TestApp::history_words(&two), ["in_transit"]);
    assert_eq!(two["trackingNumber"], "44012355502");
    assert_eq!(
        app.fulfillment("acme", "ORD-2002", "ORD-2002").await,
        None,
        "no fulfillment keyed by the order reference"
    );
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn the_reason_code_and_its_words_become_the_history_message(backend: Backend) {
    let app = spawn_app(backend).await;
    post(
        &app,
        &CarriyoDelivery::webhook(&sample("carriyo", "shipment_in_transit")),
    )
    .await;
    post(
        &app,
        &CarriyoDelivery::webhook(&sample("carriyo", "shipment_failed_delivery_attempt")),
    )
    .await;
    let f = app
        .wait_for_fulfillment(("acme", ORDER, SHIPMENT), |f| {
            TestApp::history_words(f).len() == 2
        })
        .await;
    let attempt = &f["trackingHistory"][1];
    assert_eq!(attempt["rawStatus"], "failed_delivery_attempt");
    assert_eq!(attempt["kind"], "event");
    assert_eq!(
        attempt["message"],
        "Customer was not available for the delivery (customer_not_available)"
    );
    assert_eq!(f["trackingHistory"][0]["message"], "");
    assert_eq!(f["status"], "in_transit");
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_new_promised_delivery_date_moves_the_eta_with_the_status_word_unchanged(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    post(
        &app,
        &CarriyoDelivery::webhook(&sample("carriyo", "shipment_in_transit")),
    )
    .await;
    app.wait_for_fulfillment(("acme", ORDER, SHIPMENT), |f| {
        f["estimatedDeliveryDate"] == "2026-11-24"
    })
    .await;
    let moved = sample("carriyo", "shipment_promised_delivery_update");
    let mut delivery = CarriyoDelivery::webhook(&moved);
    delivery.trigger = "promised_delivery_update".into();
    post(&app, &delivery).await;
    let f = app
        .wait_for_fulfillment(("acme", ORDER, SHIPMENT), |f| {
            f["estimatedDeliveryDate"] == "2026-11-26"
        })
        .await;
    assert_eq!(f["status"], "in_transit");
    assert_eq!(TestApp::history_words(&f), ["in_transit", "in_transit"]);
    // Without an event-id, the same update time with yet another date is
    // still news, not a resend.
    let mut again = moved.clone();
    again["promised_delivery_date"] = json!("2026-11-28T18:00:00.000Z");
    let mut delivery = CarriyoDelivery::webhook(&again);
    delivery.event_id = None;
    delivery.trigger = "promised_delivery_update".into();
    let response = app.post_carriyo_webhook(&delivery).await;
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["duplicate"], false, "{answer}");
    let f = app
        .wait_for_fulfillment(("acme", ORDER, SHIPMENT), |f| {
            f["estimatedDeliveryDate"] == "2026-11-28"
        })
        .await;
    assert_eq!(f["status"], "in_transit");
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn an_unknown_entity_type_or_a_return_without_its_own_reference_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut sideways = sample("carriyo", "shipment_return_delivered");
    sideways["entity_type"] = json!("SIDEWAYS");
    let mut anonymous = sample("carriyo", "shipment_return_delivered");
    anonymous["references"]
        .as_object_mut()
        .unwrap()
        .remove("partner_shipment_reference");
    anonymous.as_object_mut().unwrap().remove("shipment_id");
    let cases: [(&Value, &[&str]); 2] = [
        (&sideways, &["entity_type", "SIDEWAYS"]),
        (&anonymous, &["partner_shipment_reference", "shipment_id"]),
    ];
    for (body, named) in cases {
        let response = app
            .post_carriyo_webhook(&CarriyoDelivery::webhook(body))
            .await;
        assert_eq!(response.status(), 400, "{named:?}");
        // The whole answer, whatever shape Carriyo's errors take.
        let answer = response.text().await.unwrap();
        for part in named {
            assert!(answer.contains(part), "{answer} should name {part}");
        }
    }
    assert_eq!(app.stats("carriyo").await["accepted"], 0, "nothing stored");
    assert_eq!(app.fulfillment("acme", ORDER, ORDER).await, None);
    app.stop().await;
}
