//! Shopify webhooks end to end: signatures, every mapping row, the apply
//! rules, dedup, concurrency, and every bad input.

use serde_json::{json, Value};

use rstest_reuse::apply;

use crate::helpers::*;

const ORDER: &str = "450789469";
const FULFILLMENT: &str = "255858046";

fn event_body(fulfillment: u64, id: u64, status: &str, happened_at: &str) -> Value {
    let mut body = sample("shopify", "fulfillment_event_create");
    body["id"] = json!(id);
    body["fulfillment_id"] = json!(fulfillment);
    body["status"] = json!(status);
    body["happened_at"] = json!(happened_at);
    body
}

#[apply(backends)]
#[tokio::test]
async fn a_sample_event_is_applied_and_readable_through_the_api(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = sample("shopify", "fulfillment_event_create");
    let response = app
        .post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &body))
        .await;
    assert_eq!(response.status(), 200);
    let f = app
        .wait_for_fulfillment(("acme", ORDER, FULFILLMENT), |f| {
            f["status"] == "in_transit"
        })
        .await;
    assert_eq!(f["store"], "acme");
    assert_eq!(f["orderId"], ORDER);
    assert_eq!(f["id"], FULFILLMENT);
    let entry = &f["trackingHistory"][0];
    assert_eq!(entry["provider"], "shopify");
    assert_eq!(entry["rawStatus"], "in_transit");
    assert_eq!(entry["kind"], "status");
    assert_eq!(entry["stale"], false);
    assert_eq!(entry["message"], body["message"]);
    assert_eq!(entry["location"]["city"], body["city"]);
    let eta = body["estimated_delivery_at"].as_str().unwrap();
    assert_eq!(f["estimatedDeliveryDate"], eta[..10]);
    app.stop().await;
}

/// PROVIDERS.md's Shopify rows, written out here rather than read from the
/// map file, so that a wrong map fails this test.
const EVENT_ROWS: [(&str, &str, &str); 15] = [
    ("label_purchased", "status", "pre_transit"),
    ("label_printed", "status", "pre_transit"),
    ("confirmed", "status", "pre_transit"),
    ("carrier_picked_up", "status", "in_transit"),
    ("in_transit", "status", "in_transit"),
    ("out_for_delivery", "status", "out_for_delivery"),
    ("ready_for_pickup", "status", "available_for_pickup"),
    (
        "ready_for_recipient_pickup",
        "status",
        "available_for_pickup",
    ),
    ("picked_up", "status", "delivered"),
    ("delivered", "status", "delivered"),
    ("failure", "status", "failure"),
    ("returning_to_sender", "status", "return_to_sender"),
    ("attempted_delivery", "event", "delayed"),
    ("delayed", "event", "delayed"),
    ("buyer_action_required", "event", "delayed"),
];

#[apply(backends)]
#[tokio::test]
async fn every_fulfillment_event_word_maps_as_providers_md_says(backend: Backend) {
    let app = spawn_app(backend).await;
    for (i, (word, kind, canonical)) in EVENT_ROWS.iter().enumerate() {
        let fulfillment = 900_000 + i as u64;
        let body = event_body(fulfillment, 1_000 + i as u64, word, "2026-11-21T09:00:00Z");
        let response = app
            .post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &body))
            .await;
        assert_eq!(response.status(), 200, "{word}");
        let f = app
            .wait_for_fulfillment(("acme", ORDER, &fulfillment.to_string()), |f| {
                f["trackingHistory"]
                    .as_array()
                    .is_some_and(|h| !h.is_empty())
            })
            .await;
        let entry = &f["trackingHistory"][0];
        assert_eq!(
            (entry["kind"].as_str(), entry["status"].as_str()),
            (Some(*kind), Some(*canonical)),
            "{word}"
        );
        let expected_status = if *kind == "status" {
            canonical
        } else {
            "unknown"
        };
        assert_eq!(
            f["status"], *expected_status,
            "{word}: events leave the status alone"
        );
    }
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn fulfillment_status_words_map_when_there_is_no_shipment_status(backend: Backend) {
    let app = spawn_app(backend).await;
    for (i, word) in ["cancelled", "error", "failure"].iter().enumerate() {
        let id = 800_000 + i as u64;
        let mut body = sample("shopify", "fulfillment_create");
        body["id"] = json!(id);
        body["status"] = json!(word);
        body["shipment_status"] = Value::Null;
        let response = app
            .post_shopify(&ShopifyDelivery::new("fulfillments/update", &body))
            .await;
        assert_eq!(response.status(), 200);
        app.wait_for_fulfillment(("acme", ORDER, &id.to_string()), |f| f["status"] == *word)
            .await;
    }
    let body = sample("shopify", "fulfillment_create");
    app.post_shopify(&ShopifyDelivery::new("fulfillments/create", &body))
        .await;
    let f = app
        .wait_for_fulfillment(("acme", ORDER, FULFILLMENT), |f| {
            !f["trackingNumber"].is_null()
        })
        .await;
    assert_eq!(f["trackingCompany"], body["tracking_company"]);
    assert_eq!(
        f["status"], "unknown",
        "a fulfillment without tracking news has no status yet"
    );
    let update = sample("shopify", "fulfillment_update");
    app.post_shopify(&ShopifyDelivery::new("fulfillments/update", &update))
        .await;
    app.wait_for_fulfillment(("acme", ORDER, FULFILLMENT), |f| {
        f["status"] == "out_for_delivery"
    })
    .await;
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn an_event_after_a_status_keeps_the_status_and_its_eta(backend: Backend) {
    let app = spawn_app(backend).await;
    let transit = event_body(1, 11, "in_transit", "2026-11-21T09:00:00Z");
    app.post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &transit))
        .await;
    let mut delayed = event_body(1, 12, "delayed", "2026-11-21T12:00:00Z");
    delayed["estimated_delivery_at"] = json!("2026-11-27T00:00:00-05:00");
    app.post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &delayed))
        .await;
    let f = app
        .wait_for_fulfillment(("acme", ORDER, "1"), |f| {
            f["trackingHistory"].as_array().map(Vec::len) == Some(2)
        })
        .await;
    assert_eq!(f["status"], "in_transit");
    assert_eq!(f["estimatedDeliveryDate"], "2026-11-27");
    assert_eq!(TestApp::history_words(&f), ["in_transit", "delayed"]);
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_late_older_status_cannot_undo_delivered(backend: Backend) {
    let app = spawn_app(backend).await;
    let delivered = event_body(2, 21, "delivered", "2026-11-21T10:00:00Z");
    app.post_shopify(&ShopifyDelivery::new(
        "fulfillment_events/create",
        &delivered,
    ))
    .await;
    app.wait_for_fulfillment(("acme", ORDER, "2"), |f| f["status"] == "delivered")
        .await;
    let late = event_body(2, 22, "in_transit", "2026-11-21T09:00:00Z");
    app.post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &late))
        .await;
    let f = app
        .wait_for_fulfillment(("acme", ORDER, "2"), |f| {
            f["trackingHistory"].as_array().map(Vec::len) == Some(2)
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
async fn the_same_delivery_three_times_applies_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = event_body(3, 31, "in_transit", "2026-11-21T09:00:00Z");
    let delivery = ShopifyDelivery::new("fulfillment_events/create", &body);
    for _ in 0..3 {
        assert_eq!(app.post_shopify(&delivery).await.status(), 200);
    }
    app.wait_until_applied().await;
    let f = app.fulfillment("acme", ORDER, "3").await.expect("applied");
    assert_eq!(TestApp::history_words(&f), ["in_transit"]);
    let stats = app.stats("shopify").await;
    assert_eq!(
        (stats["accepted"].as_u64(), stats["duplicate"].as_u64()),
        (Some(1), Some(2))
    );
    app.stop().await;
}

/// A delivery id is scoped to its fulfillment, on every backend: the
/// same `X-Shopify-Event-Id` on another fulfillment is news, not a repeat.
#[apply(backends)]
#[tokio::test]
async fn an_event_id_reused_on_another_fulfillment_is_applied_to_both(backend: Backend) {
    let app = spawn_app(backend).await;
    let fulfillments: [u64; 2] = [FULFILLMENT.parse().unwrap(), 255858047];
    for (i, fulfillment) in fulfillments.into_iter().enumerate() {
        let body = event_body(
            fulfillment,
            9100 + i as u64,
            "in_transit",
            "2026-11-20T10:00:00-05:00",
        );
        let mut delivery = ShopifyDelivery::new("fulfillment_events/create", &body);
        delivery.event_id = Some("evt-reused".into());
        let answer: Value = app.post_shopify(&delivery).await.json().await.unwrap();
        assert_eq!(answer["duplicate"], false, "{answer}");
    }
    for fulfillment in fulfillments {
        app.wait_for_fulfillment(("acme", ORDER, &*fulfillment.to_string()), |f| {
            f["status"] == "in_transit"
        })
        .await;
    }
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn the_same_content_under_a_new_delivery_id_applies_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = event_body(4, 41, "out_for_delivery", "2026-11-21T09:00:00Z");
    for _ in 0..2 {
        // A fresh Event-Id each time, as a resend under a new id would have.
        let response = app
            .post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &body))
            .await;
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["accepted"], true);
    }
    app.wait_until_applied().await;
    let f = app.fulfillment("acme", ORDER, "4").await.expect("applied");
    assert_eq!(TestApp::history_words(&f), ["out_for_delivery"]);
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn two_hundred_concurrent_updates_to_one_fulfillment_all_land(backend: Backend) {
    let app = spawn_app(backend).await;
    let posts = (0..200u64).map(|i| {
        let app = &app;
        async move {
            let minute = i % 60;
            let body = event_body(
                5,
                5_000 + i,
                "in_transit",
                &format!("2026-11-21T{:02}:{minute:02}:00Z", 8 + i / 60),
            );
            app.post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &body))
                .await
                .status()
        }
    });
    let statuses = futures_util::future::join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    app.wait_until_applied().await;
    let f = app.fulfillment("acme", ORDER, "5").await.expect("applied");
    assert_eq!(f["trackingHistory"].as_array().map(Vec::len), Some(200));
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_word_the_map_does_not_know_is_accepted_as_unmapped(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = event_body(6, 61, "teleported", "2026-11-21T09:00:00Z");
    let response = app
        .post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &body))
        .await;
    assert_eq!(response.status(), 200);
    let f = app
        .wait_for_fulfillment(("acme", ORDER, "6"), |f| {
            !TestApp::history_words(f).is_empty()
        })
        .await;
    assert_eq!(f["status"], "unknown");
    assert_eq!(f["trackingHistory"][0]["kind"], "unmapped");
    assert_eq!(f["trackingHistory"][0]["rawStatus"], "teleported");
    let (_, unmapped) = app.admin_get("/api/v1/unmapped").await;
    assert_eq!(
        unmapped["unmapped"][0],
        json!({"provider": "shopify", "word": "teleported", "count": 1})
    );
    assert_eq!(app.stats("shopify").await["unmapped"], 1);
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_delete_removes_the_event_from_history(backend: Backend) {
    let app = spawn_app(backend).await;
    let transit = event_body(7, 71, "in_transit", "2026-11-21T09:00:00Z");
    let delivered = event_body(7, 72, "delivered", "2026-11-21T15:00:00Z");
    for body in [&transit, &delivered] {
        app.post_shopify(&ShopifyDelivery::new("fulfillment_events/create", body))
            .await;
    }
    app.wait_for_fulfillment(("acme", ORDER, "7"), |f| f["status"] == "delivered")
        .await;
    let delete = json!({"id": 72, "fulfillment_id": 7, "order_id": ORDER.parse::<u64>().unwrap()});
    let response = app
        .post_shopify(&ShopifyDelivery::new("fulfillment_events/delete", &delete))
        .await;
    assert_eq!(response.status(), 200);
    let f = app
        .wait_for_fulfillment(("acme", ORDER, "7"), |f| {
            TestApp::history_words(f).len() == 1
        })
        .await;
    assert_eq!(TestApp::history_words(&f), ["in_transit"]);
    assert_eq!(f["status"], "in_transit");
    assert!(f["deliveredAt"].is_null());
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_rotated_out_secret_still_verifies(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = event_body(8, 81, "in_transit", "2026-11-21T09:00:00Z");
    let mut delivery = ShopifyDelivery::new("fulfillment_events/create", &body);
    delivery.secret = SHOPIFY_OLD_SECRET;
    assert_eq!(app.post_shopify(&delivery).await.status(), 200);
    app.stop().await;
}

/// A signature computed outside this code base, with OpenSSL:
/// `printf '%s' "$BODY" | openssl dgst -sha256 -hmac hush-shopify-vector -binary | base64`.
#[apply(backends)]
#[tokio::test]
async fn a_signature_from_an_independent_implementation_verifies(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[(
            "SHIPGATE__STORES__ACME__SHOPIFY__WEBHOOK_SECRETS",
            "hush-shopify-vector",
        )],
    )
    .await;
    let body = r#"{"id":944956391,"fulfillment_id":255858046,"order_id":450789469,"status":"in_transit","happened_at":"2026-11-21T09:30:00-05:00"}"#;
    let send = |signature: &'static str| {
        app.client
            .post(app.url("/webhooks/shopify"))
            .header("Content-Type", "application/json")
            .header("X-Shopify-Hmac-Sha256", signature)
            .header("X-Shopify-Topic", "fulfillment_events/create")
            .header("X-Shopify-Shop-Domain", SHOP)
            .body(body)
            .send()
    };
    assert_eq!(
        send("15auJ9htso5NVfB9I55prvupUTPk6lwiYlNQAuH9OJg=")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        send("25auJ9htso5NVfB9I55prvupUTPk6lwiYlNQAuH9OJg=")
            .await
            .unwrap()
            .status(),
        401
    );
    app.stop().await;
}

/// A bad delivery: its name, the headers it sets, its body, the status it
/// must get and what the error message must name.
type BadCase<'a> = (&'a str, Vec<(&'a str, String)>, Vec<u8>, u16, &'a str);

/// Each bad input: its status, a message naming what is wrong, nothing stored.
#[apply(backends)]
#[tokio::test]
async fn bad_deliveries_are_refused_with_a_reason_and_store_nothing(backend: Backend) {
    let app = spawn_app_with(backend, &[("SHIPGATE__SERVER__BODY_LIMIT", "4KiB")]).await;
    let good = event_body(9, 91, "in_transit", "2026-11-21T09:00:00Z");
    let good_bytes = serde_json::to_vec(&good).unwrap();
    let signed = |body: &[u8]| shopify_signature(SHOPIFY_SECRET, body);
    let mut huge = good.clone();
    huge["message"] = json!("x".repeat(5000));
    let huge = serde_json::to_vec(&huge).unwrap();
    let missing_status = br#"{"id":92,"fulfillment_id":9,"order_id":450789469}"#.to_vec();
    let number_status = br#"{"id":93,"fulfillment_id":9,"order_id":450789469,"status":7}"#.to_vec();
    let bad_date =
        br#"{"id":94,"fulfillment_id":9,"order_id":450789469,"status":"in_transit","happened_at":"21/11/2026"}"#.to_vec();
    let not_json = b"status=in_transit".to_vec();
    let cases: Vec<BadCase> = vec![
        (
            "no signature",
            vec![],
            good_bytes.clone(),
            401,
            "X-Shopify-Hmac-Sha256",
        ),
        (
            "wrong signature",
            vec![("X-Shopify-Hmac-Sha256", signed(b"other"))],
            good_bytes.clone(),
            401,
            "X-Shopify-Hmac-Sha256",
        ),
        (
            "another store's secret",
            vec![(
                "X-Shopify-Hmac-Sha256",
                shopify_signature(OTHER_SHOPIFY_SECRET, &good_bytes),
            )],
            good_bytes.clone(),
            401,
            "X-Shopify-Hmac-Sha256",
        ),
        (
            "unknown shop",
            vec![
                ("X-Shopify-Hmac-Sha256", signed(&good_bytes)),
                ("X-Shopify-Shop-Domain", "evil.myshopify.com".into()),
            ],
            good_bytes.clone(),
            401,
            "evil.myshopify.com",
        ),
        (
            "not JSON",
            vec![("X-Shopify-Hmac-Sha256", signed(&not_json))],
            not_json,
            400,
            "not valid JSON",
        ),
        (
            "missing status",
            vec![("X-Shopify-Hmac-Sha256", signed(&missing_status))],
            missing_status,
            400,
            "status",
        ),
        (
            "number for status",
            vec![("X-Shopify-Hmac-Sha256", signed(&number_status))],
            number_status,
            400,
            "status",
        ),
        (
            "invalid date",
            vec![("X-Shopify-Hmac-Sha256", signed(&bad_date))],
            bad_date,
            400,
            "happened_at",
        ),
        (
            "a topic shipgate does not take, unsigned",
            vec![("X-Shopify-Topic", "orders/create".into())],
            good_bytes.clone(),
            401,
            "X-Shopify-Hmac-Sha256",
        ),
        (
            "a topic shipgate does not take, badly signed",
            vec![
                ("X-Shopify-Hmac-Sha256", signed(b"other")),
                ("X-Shopify-Topic", "app/uninstalled".into()),
            ],
            good_bytes.clone(),
            401,
            "X-Shopify-Hmac-Sha256",
        ),
        (
            "no topic",
            vec![
                ("X-Shopify-Hmac-Sha256", signed(&good_bytes)),
                ("X-Shopify-Topic", " ".into()),
            ],
            good_bytes.clone(),
            400,
            "X-Shopify-Topic",
        ),
        (
            "an API version that is none",
            vec![
                ("X-Shopify-Hmac-Sha256", signed(&good_bytes)),
                ("X-Shopify-API-Version", "latest".into()),
            ],
            good_bytes.clone(),
            400,
            "'latest'",
        ),
        (
            "a Triggered-At that is no time",
            vec![
                ("X-Shopify-Hmac-Sha256", signed(&good_bytes)),
                ("Shopify-Triggered-At", "yesterday".into()),
            ],
            good_bytes.clone(),
            400,
            "X-Shopify-Triggered-At",
        ),
        (
            "over the limit",
            vec![("X-Shopify-Hmac-Sha256", signed(&huge))],
            huge,
            413,
            "body_limit",
        ),
        (
            "wrong content type",
            vec![
                ("X-Shopify-Hmac-Sha256", signed(&good_bytes)),
                ("Content-Type", "text/plain".into()),
            ],
            good_bytes.clone(),
            415,
            "Content-Type",
        ),
    ];
    let mut unauthorized = 0;
    let mut invalid = 0;
    for (name, headers, body, status, named) in cases {
        let mut sent = reqwest::header::HeaderMap::new();
        sent.insert("Content-Type", "application/json".parse().unwrap());
        sent.insert(
            "X-Shopify-Topic",
            "fulfillment_events/create".parse().unwrap(),
        );
        sent.insert("X-Shopify-Shop-Domain", SHOP.parse().unwrap());
        for (k, v) in headers {
            sent.insert(k, v.parse().unwrap());
        }
        let response = app
            .client
            .post(app.url("/webhooks/shopify"))
            .headers(sent)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{name}");
        let answer: Value = response.json().await.unwrap();
        let message = answer["errors"].as_str().unwrap_or_default();
        assert!(
            message.contains(named),
            "{name}: {message:?} should name {named:?}"
        );
        if status == 401 {
            unauthorized += 1
        } else {
            invalid += 1
        }
    }
    let stats = app.stats("shopify").await;
    assert_eq!(stats["accepted"], 0, "nothing is stored");
    assert_eq!(
        stats["ignored"], 0,
        "a badly signed delivery is not ignored"
    );
    assert_eq!(stats["unauthorized"], unauthorized);
    assert_eq!(stats["invalid"], invalid);
    assert_eq!(app.fulfillment("acme", ORDER, "9").await, None);
    let (_, events) = app.admin_get("/api/v1/events").await;
    assert_eq!(events["events"], json!([]));
    app.stop().await;
}

/// Topics shipgate does not take, each with a real-shaped body.
const OTHER_TOPICS: [(&str, &str); 3] = [
    ("orders/create", "orders_create"),
    ("app/uninstalled", "app_uninstalled"),
    ("customers/redact", "customers_redact"),
];

#[apply(backends)]
#[tokio::test]
async fn a_verified_topic_shipgate_does_not_take_is_answered_200_counted_ignored_and_recorded_nowhere(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    for (topic, name) in OTHER_TOPICS {
        let response = app
            .post_shopify(&ShopifyDelivery::new(topic, &sample("shopify", name)))
            .await;
        assert_eq!(response.status(), 200, "{topic}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer, json!({"ignored": true, "topic": topic}));
    }
    let stats = app.stats("shopify").await;
    assert_eq!(stats["ignored"], 3);
    assert_eq!(
        (stats["accepted"].as_u64(), stats["invalid"].as_u64()),
        (Some(0), Some(0))
    );
    let scrape = Scrape::of(&app).await;
    let received = "shipgate_webhooks_received_total";
    for (outcome, n) in [("ignored", 3.0), ("accepted", 0.0), ("invalid", 0.0)] {
        let labels = [("provider", "shopify"), ("outcome", outcome)];
        assert_eq!(scrape.value(received, &labels), n, "{outcome}");
    }
    let (_, events) = app.admin_get("/api/v1/events").await;
    assert_eq!(events["events"], json!([]));
    app.stop().await;
}

/// A sample delivery sent with every header in the newer spelling, without
/// `X-`, signed with `secret`.
async fn post_unprefixed(app: &TestApp, topic: &str, body: &Value, secret: &str) -> u16 {
    let body = serde_json::to_vec(body).unwrap();
    app.client
        .post(app.url("/webhooks/shopify"))
        .header("Content-Type", "application/json")
        .header("Shopify-Hmac-Sha256", shopify_signature(secret, &body))
        .header("Shopify-Topic", topic)
        .header("Shopify-Shop-Domain", SHOP)
        .header("Shopify-API-Version", "2026-01")
        .header("Shopify-Webhook-Id", uuid::Uuid::now_v7().to_string())
        .header("Shopify-Event-Id", uuid::Uuid::now_v7().to_string())
        .header("Shopify-Triggered-At", "2026-11-21T13:16:42Z")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[apply(backends)]
#[tokio::test]
async fn every_header_is_read_in_the_spelling_without_x(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = sample("shopify", "fulfillment_event_create");
    let topic = "fulfillment_events/create";
    assert_eq!(
        post_unprefixed(&app, topic, &body, SHOPIFY_OLD_SECRET).await,
        200
    );
    let f = app
        .wait_for_fulfillment(("acme", ORDER, FULFILLMENT), |f| {
            f["status"] == "in_transit"
        })
        .await;
    assert_eq!(f["trackingHistory"][0]["apiVersion"], "2026-01");
    assert_eq!(
        post_unprefixed(&app, topic, &body, OTHER_SHOPIFY_SECRET).await,
        401
    );
    let other = sample("shopify", "orders_create");
    assert_eq!(
        post_unprefixed(&app, "orders/create", &other, SHOPIFY_SECRET).await,
        200
    );
    let stats = app.stats("shopify").await;
    assert_eq!(
        (
            stats["accepted"].as_u64(),
            stats["unauthorized"].as_u64(),
            stats["ignored"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn the_api_version_is_kept_on_the_history_entry_and_the_triggered_at_dates_a_body_without_a_time(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let body = sample("shopify", "fulfillment_event_create");
    app.post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &body))
        .await;
    let f = app
        .wait_for_fulfillment(("acme", ORDER, FULFILLMENT), |f| {
            f["status"] == "in_transit"
        })
        .await;
    // The helpers send X-Shopify-API-Version: 2025-10.
    assert_eq!(f["trackingHistory"][0]["apiVersion"], "2025-10");
    let mut undated = event_body(10, 101, "delivered", "unused");
    undated.as_object_mut().unwrap().remove("happened_at");
    app.post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &undated))
        .await;
    let f = app
        .wait_for_fulfillment(("acme", ORDER, "10"), |f| f["status"] == "delivered")
        .await;
    // The helpers send X-Shopify-Triggered-At: 2026-11-21T15:00:00Z.
    assert_eq!(
        f["trackingHistory"][0]["datetime"],
        "2026-11-21T15:00:00.000Z"
    );
    // Entries from senders that name no version carry none.
    let carriyo = CarriyoDelivery::webhook(&sample("carriyo", "shipment_in_transit"));
    assert_eq!(app.post_carriyo_webhook(&carriyo).await.status(), 200);
    let f = app
        .wait_for_fulfillment(("acme", "ORD-1001", "ORD-1001-1"), |f| {
            !TestApp::history_words(f).is_empty()
        })
        .await;
    assert!(f["trackingHistory"][0].get("apiVersion").is_none(), "{f}");
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_cancelled_fulfillment_never_stays_in_transit(backend: Backend) {
    let app = spawn_app(backend).await;
    let transit = sample("shopify", "fulfillment_event_create");
    app.post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &transit))
        .await;
    app.wait_for_fulfillment(("acme", ORDER, FULFILLMENT), |f| {
        f["status"] == "in_transit"
    })
    .await;
    let cancelled = sample("shopify", "fulfillment_cancelled");
    assert_eq!(cancelled["shipment_status"], "in_transit");
    let response = app
        .post_shopify(&ShopifyDelivery::new("fulfillments/update", &cancelled))
        .await;
    assert_eq!(response.status(), 200);
    let f = app
        .wait_for_fulfillment(("acme", ORDER, FULFILLMENT), |f| {
            TestApp::history_words(f).len() == 2
        })
        .await;
    assert_eq!(f["status"], "cancelled", "{f}");
    assert_eq!(f["trackingHistory"][1]["rawStatus"], "cancelled");
    for (i, word) in ["failure", "error"].iter().enumerate() {
        let id = 700_000 + i as u64;
        let mut ended = cancelled.clone();
        ended["id"] = json!(id);
        ended["status"] = json!(word);
        app.post_shopify(&ShopifyDelivery::new("fulfillments/create", &ended))
            .await;
        app.wait_for_fulfillment(("acme", ORDER, &id.to_string()), |f| f["status"] == *word)
            .await;
    }
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn one_shipment_change_on_both_topics_is_one_entry_whichever_comes_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let event = sample("shopify", "fulfillment_event_out_for_delivery");
    let update = sample("shopify", "fulfillment_update");
    // The sample pair: one shipment change, seven seconds apart.
    assert_eq!(event["status"], update["shipment_status"]);
    assert_eq!(event["fulfillment_id"], update["id"]);
    // The third pair falls either side of a minute boundary.
    let pairs = [
        (FULFILLMENT, true, None),
        ("255858047", false, None),
        (
            "255858048",
            true,
            Some(("2026-11-23T07:44:58-05:00", "2026-11-23T07:45:03-05:00")),
        ),
    ];
    for (fulfillment, event_first, times) in pairs {
        let mut event = event.clone();
        let mut update = update.clone();
        event["fulfillment_id"] = json!(fulfillment.parse::<u64>().unwrap());
        update["id"] = event["fulfillment_id"].clone();
        if let Some((happened_at, updated_at)) = times {
            event["happened_at"] = json!(happened_at);
            update["updated_at"] = json!(updated_at);
        }
        let event = ShopifyDelivery::new("fulfillment_events/create", &event);
        let update = ShopifyDelivery::new("fulfillments/update", &update);
        let (first, second) = if event_first {
            (&event, &update)
        } else {
            (&update, &event)
        };
        assert_eq!(app.post_shopify(first).await.status(), 200);
        let response = app.post_shopify(second).await;
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["duplicate"], true, "{answer}");
    }
    // Two distinct events of one word in the same minute are both kept.
    let mut second_scan = event.clone();
    second_scan["id"] = json!(944956399);
    second_scan["message"] = json!("Out for Delivery, second truck");
    second_scan["happened_at"] = json!("2026-11-23T07:45:40-05:00");
    let response = app
        .post_shopify(&ShopifyDelivery::new(
            "fulfillment_events/create",
            &second_scan,
        ))
        .await;
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["duplicate"], false, "{answer}");
    app.wait_until_applied().await;
    for (fulfillment, _, _) in pairs {
        let f = app.fulfillment("acme", ORDER, fulfillment).await.unwrap();
        let expected: &[&str] = if fulfillment == FULFILLMENT {
            &["out_for_delivery", "out_for_delivery"]
        } else {
            &["out_for_delivery"]
        };
        assert_eq!(TestApp::history_words(&f), expected, "{f}");
        assert_eq!(f["status"], "out_for_delivery");
    }
    let stats = app.stats("shopify").await;
    assert_eq!(
        (stats["accepted"].as_u64(), stats["duplicate"].as_u64()),
        (Some(4), Some(3))
    );
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn one_shipment_change_on_both_topics_at_once_fires_its_automation_once(backend: Backend) {
    let receiver = Receiver::start().await;
    let rule = format!(
        "[[automations]]\nname = \"delays\"\non = [\"delayed\"]\nurl = \"{}\"\n",
        receiver.url()
    );
    let env = [("SHIPGATE__DELIVERY__ALLOW_PRIVATE_TARGETS", "true")];
    let app = spawn_app_with_config(backend, &rule, &env).await;
    let mut event = sample("shopify", "fulfillment_event_out_for_delivery");
    let mut update = sample("shopify", "fulfillment_update");
    for (i, fulfillment) in (0..5u64).map(|i| (i, 600_000 + i)) {
        // attempted_delivery: an event, which fires every time it is applied.
        event["fulfillment_id"] = json!(fulfillment);
        event["id"] = json!(950_000 + i);
        event["status"] = json!("attempted_delivery");
        update["id"] = json!(fulfillment);
        update["shipment_status"] = json!("attempted_delivery");
        let event = ShopifyDelivery::new("fulfillment_events/create", &event);
        let update = ShopifyDelivery::new("fulfillments/update", &update);
        let (a, b) = futures_util::join!(app.post_shopify(&event), app.post_shopify(&update));
        assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    }
    app.wait_until_applied().await;
    for fulfillment in 600_000..600_005u64 {
        let f = app
            .fulfillment("acme", ORDER, &fulfillment.to_string())
            .await
            .unwrap();
        assert_eq!(TestApp::history_words(&f), ["delayed"], "{f}");
    }
    receiver.wait_for(5).await;
    let (_, deliveries) = app.admin_get("/api/v1/deliveries?rule=delays").await;
    assert_eq!(
        deliveries["deliveries"].as_array().map(Vec::len),
        Some(5),
        "{deliveries}"
    );
    let stats = app.stats("shopify").await;
    assert_eq!(
        (stats["accepted"].as_u64(), stats["duplicate"].as_u64()),
        (Some(5), Some(5))
    );
    app.stop().await;
    receiver.stop().await;
}
