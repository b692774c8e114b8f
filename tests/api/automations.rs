//! Automations end to end: Shopify updates go in, signed deliveries come
//! out at small subscriber servers run by the tests, with retries, order,
//! dead letters, replay, derived events and the target policy.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use rstest_reuse::apply;

use crate::helpers::*;

const ORDER: &str = "450789469";
/// The Standard Webhooks specification's published test secret.
const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SUBSCRIBER_TOKEN: &str = "test-subscriber-token";

/// Settings every test here needs: receivers live on 127.0.0.1, and
/// retries are quick; the timeout is long, so that only a receiver told
/// to stall times out, never one on a busy machine.
const FAST: [(&str, &str); 3] = [
    ("SHIPGATE__DELIVERY__ALLOW_PRIVATE_TARGETS", "true"),
    ("SHIPGATE__DELIVERY__RETRY_SCHEDULE", "100ms,200ms"),
    ("SHIPGATE__DELIVERY__TIMEOUT", "10s"),
];

/// One `[[automations]]` rule.
fn rule(name: &str, on: &[&str], url: &str, extra: &str) -> String {
    format!("[[automations]]\nname = \"{name}\"\non = {on:?}\nurl = \"{url}\"\n{extra}\n")
}

/// Starts the app on `backend` with `rules` and the fast settings plus
/// `extra`.
async fn app_with_rules(backend: Backend, rules: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut env = FAST.to_vec();
    env.extend_from_slice(extra);
    spawn_app_with_config(backend, rules, &env).await
}

/// Posts a Shopify fulfillment event for the acme store.
async fn post_event(app: &TestApp, fulfillment: u64, id: u64, status: &str, at: &str) {
    let body = shopify_event_body(fulfillment, id, status, at);
    post_body(app, &body).await;
}

async fn post_body(app: &TestApp, body: &Value) {
    let response = app
        .post_shopify(&ShopifyDelivery::new("fulfillment_events/create", body))
        .await;
    assert_eq!(response.status(), 200);
}

impl TestApp {
    /// Deliveries through the ops API.
    async fn deliveries(&self, query: &str) -> Vec<Value> {
        let (status, body) = self.admin_get(&format!("/api/v1/deliveries{query}")).await;
        assert_eq!(status, 200, "{body}");
        body["deliveries"].as_array().cloned().unwrap_or_default()
    }

    /// Dead letters through the ops API.
    async fn dead_letters(&self, query: &str) -> Vec<Value> {
        let (status, body) = self
            .admin_get(&format!("/api/v1/dead-letters{query}"))
            .await;
        assert_eq!(status, 200, "{body}");
        body["dead_letters"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until everything accepted is applied and no delivery is
    /// pending any more.
    async fn wait_until_delivered(&self) {
        self.wait_until_applied().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pending = self.deliveries("?state=pending").await;
            if pending.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "still pending: {pending:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for `n` dead letters passing `query`.
    async fn wait_for_dead_letters(&self, query: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let letters = self.dead_letters(query).await;
            if letters.len() >= n {
                return letters;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} dead letters for {query}: {letters:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Standard Webhooks verification written from the specification, apart
/// from the code under test: HMAC-SHA256 keyed with the base64-decoded
/// secret over "id.timestamp.body", base64, prefixed "v1,".
fn standard_webhooks_signature(secret: &str, id: &str, timestamp: &str, body: &str) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine
        .decode(secret.trim_start_matches("whsec_"))
        .expect("a base64 key");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", engine.encode(mac.finalize().into_bytes()))
}

#[apply(backends)]
#[tokio::test]
async fn a_status_change_fires_once_an_event_every_time_and_a_stale_status_never(backend: Backend) {
    let receiver = Receiver::start().await;
    let on = ["in_transit", "out_for_delivery", "delivered", "delayed"];
    let app = app_with_rules(backend, &rule("all", &on, &receiver.url(), ""), &[]).await;
    let f = 7001;
    post_event(&app, f, 1, "in_transit", "2026-11-21T08:00:00Z").await;
    post_event(&app, f, 2, "in_transit", "2026-11-21T09:00:00Z").await;
    post_event(&app, f, 3, "delayed", "2026-11-21T10:00:00Z").await;
    post_event(&app, f, 4, "delayed", "2026-11-21T11:00:00Z").await;
    post_event(&app, f, 5, "delivered", "2026-11-21T13:00:00Z").await;
    // Older than delivered: stale, so it fires nothing although it is a
    // different status.
    post_event(&app, f, 6, "out_for_delivery", "2026-11-21T12:00:00Z").await;
    let fulfillment = app
        .wait_for_fulfillment(("acme", ORDER, "7001"), |f| {
            f["trackingHistory"].as_array().map(Vec::len) == Some(6)
        })
        .await;
    assert_eq!(fulfillment["trackingHistory"][4]["stale"], true);
    app.wait_until_delivered().await;
    let received = receiver.received();
    assert_eq!(
        triggers(&received),
        ["in_transit", "delayed", "delayed", "delivered"]
    );
    // Each payload carries the whole history as it stood, although the
    // Redis backend applies from a summary without it.
    let history_lengths: Vec<usize> = received
        .iter()
        .map(|r| {
            r.json["fulfillment"]["trackingHistory"]
                .as_array()
                .map_or(0, Vec::len)
        })
        .collect();
    assert_eq!(history_lengths, [1, 3, 4, 5]);
    let types: Vec<_> = received.iter().map(|r| r.json["type"].clone()).collect();
    assert_eq!(types, ["status", "event", "event", "status"]);
    let ids: BTreeSet<_> = received.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), 4, "every delivery has its own webhook-id");
    app.stop().await;
    receiver.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_failing_receiver_gets_three_attempts_with_one_webhook_id_and_later_deliveries_wait(
    backend: Backend,
) {
    let receiver = Receiver::start().await;
    receiver
        .answer_next(&[Answer::Status(500), Answer::Status(500)])
        .await;
    let on = ["in_transit", "delivered"];
    let app = app_with_rules(backend, &rule("ordered", &on, &receiver.url(), ""), &[]).await;
    post_event(&app, 7002, 1, "in_transit", "2026-11-21T08:00:00Z").await;
    post_event(&app, 7002, 2, "delivered", "2026-11-21T09:00:00Z").await;
    let received = receiver.wait_for(4).await;
    assert_eq!(
        triggers(&received),
        ["in_transit", "in_transit", "in_transit", "delivered"]
    );
    let first_id = received[0].header("webhook-id");
    assert!(first_id.starts_with("msg_"), "{first_id}");
    assert!(received[..3]
        .iter()
        .all(|r| r.header("webhook-id") == first_id));
    assert_ne!(received[3].header("webhook-id"), first_id);
    assert!(received[3].at > received[2].at);
    // The schedule's waits (100 ms then 200 ms, ±10%) separate the attempts.
    assert!(received[1].at - received[0].at >= Duration::from_millis(85));
    assert!(received[2].at - received[1].at >= Duration::from_millis(175));
    app.wait_until_delivered().await;
    let delivery = &app
        .deliveries("?rule=ordered&state=delivered&fulfillment=7002")
        .await;
    let first = delivery
        .iter()
        .find(|d| d["id"] == first_id)
        .expect("the retried delivery is listed");
    let attempts: Vec<_> = first["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["status"].clone(), a["reason"].clone()))
        .collect();
    assert_eq!(
        attempts,
        [
            (500.into(), "http_status".into()),
            (500.into(), "http_status".into()),
            (200.into(), Value::Null)
        ]
    );
    app.stop().await;
    receiver.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_retrying_fulfillment_does_not_hold_up_another(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.fail_fulfillment("7003").await;
    let app = app_with_rules(
        backend,
        &rule("transit", &["in_transit"], &receiver.url(), ""),
        // A retry later than any wait here: 7004 must not wait for it.
        &[("SHIPGATE__DELIVERY__RETRY_SCHEDULE", "120s,120s")],
    )
    .await;
    post_event(&app, 7003, 1, "in_transit", "2026-11-21T08:00:00Z").await;
    receiver.wait_for(1).await;
    post_event(&app, 7004, 2, "in_transit", "2026-11-21T08:00:00Z").await;
    let received = receiver.wait_for(2).await;
    assert_eq!(
        received[1].fulfillment(),
        "7004",
        "7004 went out while 7003 waited for its retry"
    );
    app.stop().await;
    receiver.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn retry_after_is_honoured(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.answer_next(&[Answer::RetryAfter(503, 1)]).await;
    let app = app_with_rules(
        backend,
        &rule("patient", &["in_transit"], &receiver.url(), ""),
        &[],
    )
    .await;
    post_event(&app, 7005, 1, "in_transit", "2026-11-21T08:00:00Z").await;
    let received = receiver.wait_for(2).await;
    let waited = received[1].at - received[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "the second attempt came after {waited:?}, not after Retry-After: 1"
    );
    app.stop().await;
    receiver.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn deliveries_carry_standard_webhooks_signatures_a_bearer_token_and_the_payload(
    backend: Backend,
) {
    // The verifier here must itself reproduce the specification's
    // published vector before it is trusted with a real delivery.
    assert_eq!(
        standard_webhooks_signature(
            SIGNING_SECRET,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            r#"{"test": 2432232314}"#
        ),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
    let receiver = Receiver::start().await;
    let auth =
        format!("bearer_token = \"{SUBSCRIBER_TOKEN}\"\nsigning_secret = \"{SIGNING_SECRET}\"");
    let app = app_with_rules(
        backend,
        &rule("signed", &["in_transit"], &receiver.url(), &auth),
        &[],
    )
    .await;
    let body = shopify_event_body(7006, 1, "in_transit", "2026-11-21T08:00:00Z");
    post_body(&app, &body).await;
    let received = &receiver.wait_for(1).await[0];
    // Posted to the rule's URL as configured, path and all.
    assert_eq!(received.path, "/hooks");
    assert_eq!(
        received.header("authorization"),
        format!("Bearer {SUBSCRIBER_TOKEN}")
    );
    assert_eq!(received.header("content-type"), "application/json");
    let id = received.header("webhook-id");
    let timestamp = received.header("webhook-timestamp");
    let sent_at: i64 = timestamp.parse().expect("a unix timestamp");
    assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 300);
    assert_eq!(
        received.header("webhook-signature"),
        standard_webhooks_signature(SIGNING_SECRET, id, timestamp, &received.body)
    );
    let payload = &received.json;
    assert_eq!(payload["type"], "status");
    assert_eq!(payload["trigger"], "in_transit");
    assert_eq!(payload["store"], "acme");
    assert_eq!(payload["order"], ORDER);
    assert!(payload["at"].as_str().is_some_and(|at| at.ends_with('Z')));
    let fulfillment = &payload["fulfillment"];
    assert_eq!(fulfillment["id"], "7006");
    assert_eq!(fulfillment["status"], "in_transit");
    assert_eq!(
        fulfillment["trackingHistory"][0]["message"],
        body["message"]
    );
    assert_eq!(payload["event"]["raw_status"], "in_transit");
    assert_eq!(payload["event"]["key"]["fulfillment_ref"], "7006");
    app.stop().await;
    receiver.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_receiver_that_never_answers_ends_as_a_timeout_dead_letter_and_replay_delivers_it(
    backend: Backend,
) {
    let receiver = Receiver::start().await;
    receiver
        .answer_usually(Answer::After(Duration::from_secs(60)))
        .await;
    let app = app_with_rules(
        backend,
        &rule("slow", &["in_transit"], &receiver.url(), ""),
        &[("SHIPGATE__DELIVERY__TIMEOUT", "300ms")],
    )
    .await;
    post_event(&app, 7007, 1, "in_transit", "2026-11-21T08:00:00Z").await;
    let letters = app.wait_for_dead_letters("?reason=timeout", 1).await;
    let letter = &letters[0];
    assert_eq!(letter["reason"], "timeout");
    assert_eq!(letter["state"], "dead");
    let attempts = letter["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{letter}");
    assert!(attempts
        .iter()
        .all(|a| a["reason"] == "timeout" && a["status"].is_null() && a["at"].is_string()));
    assert!(app.dead_letters("?reason=http_status").await.is_empty());
    let id = letter["id"].as_str().unwrap().to_owned();

    receiver.answer_usually(Answer::Status(200)).await;
    let (status, body) = app
        .admin_post(&format!("/api/v1/dead-letters/{id}/replay"))
        .await;
    assert_eq!(status, 200, "{body}");
    let received = receiver.wait_for(4).await;
    assert_eq!(received[3].header("webhook-id"), id);
    app.wait_until_delivered().await;
    assert!(app.dead_letters("").await.is_empty());
    let delivered = app.deliveries("?state=delivered").await;
    assert_eq!(delivered[0]["id"], id.as_str());
    assert_eq!(delivered[0]["attempts"].as_array().unwrap().len(), 4);

    // Replaying what was delivered needs force, and then sends it again
    // under the same webhook-id.
    let (status, body) = app
        .admin_post(&format!("/api/v1/dead-letters/{id}/replay"))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("force=true"),
        "{body}"
    );
    let (status, _) = app
        .admin_post(&format!("/api/v1/dead-letters/{id}/replay?force=true"))
        .await;
    assert_eq!(status, 200);
    let received = receiver.wait_for(5).await;
    assert_eq!(received[4].header("webhook-id"), id);
    let (status, body) = app.admin_post("/api/v1/dead-letters/msg_nope/replay").await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("msg_nope"),
        "{body}"
    );
    app.stop().await;
    receiver.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn bulk_replay_sends_each_matching_dead_letter_once_paced(backend: Backend) {
    let receiver = Receiver::start().await;
    let port = receiver.port();
    let url = receiver.url();
    receiver.stop().await;
    let app = app_with_rules(
        backend,
        &rule("down", &["in_transit"], &url, ""),
        &[
            ("SHIPGATE__DELIVERY__RETRY_SCHEDULE", "50ms"),
            ("SHIPGATE__DELIVERY__REPLAY_PACE", "300ms"),
        ],
    )
    .await;
    post_event(&app, 7008, 1, "in_transit", "2026-11-21T08:00:00Z").await;
    post_event(&app, 7009, 2, "in_transit", "2026-11-21T08:00:00Z").await;
    let letters = app
        .wait_for_dead_letters("?reason=connection_refused", 2)
        .await;
    assert!(letters
        .iter()
        .all(|l| l["attempts"].as_array().unwrap().len() == 2));

    let receiver = Receiver::start_on(port).await;
    let asked = Instant::now();
    let (status, body) = app
        .admin_post("/api/v1/dead-letters/replay?reason=connection_refused&rule=down")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replayed"], 2);
    let (_, again) = app
        .admin_post("/api/v1/dead-letters/replay?reason=connection_refused")
        .await;
    assert_eq!(
        again["replayed"], 0,
        "queued letters are not replayed twice"
    );
    let received = receiver.wait_for(2).await;
    let fulfillments: BTreeSet<_> = received.iter().map(Received::fulfillment).collect();
    assert_eq!(fulfillments, BTreeSet::from(["7008", "7009"]));
    // The second letter is due one pace after the replay began, however
    // late a busy dispatcher sent the first (so not between the two).
    assert!(
        received[1].at - asked >= Duration::from_millis(290),
        "a bulk replay is paced by delivery.replay_pace: the second came {:?} after asking",
        received[1].at - asked
    );
    app.wait_until_delivered().await;
    assert_eq!(receiver.received().len(), 2);
    assert!(app.dead_letters("").await.is_empty());
    app.stop().await;
    receiver.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn eta_moves_fire_arriving_early_and_delayed(backend: Backend) {
    let receiver = Receiver::start().await;
    let on = ["arriving_early", "delayed"];
    let rules = rule("eta", &on, &receiver.url(), "");
    let app = app_with_rules(backend, &rules, &[]).await;
    let eta = |id: u64, at: &str, eta: &str| {
        let mut body = shopify_event_body(7010, id, "in_transit", at);
        body["estimated_delivery_at"] = Value::from(eta);
        body
    };
    post_body(
        &app,
        &eta(1, "2026-11-21T08:00:00Z", "2026-11-24T12:00:00Z"),
    )
    .await;
    post_body(
        &app,
        &eta(2, "2026-11-21T09:00:00Z", "2026-11-27T12:00:00Z"),
    )
    .await;
    post_body(
        &app,
        &eta(3, "2026-11-21T10:00:00Z", "2026-11-22T12:00:00Z"),
    )
    .await;
    post_body(
        &app,
        &eta(4, "2026-11-21T11:00:00Z", "2026-11-22T12:00:00Z"),
    )
    .await;
    app.wait_until_delivered().await;
    let received = receiver.received();
    assert_eq!(triggers(&received), ["delayed", "arriving_early"]);
    assert_eq!(
        received[0].json["fulfillment"]["estimatedDeliveryDate"],
        "2026-11-27"
    );
    assert_eq!(received[0].json["type"], "event");
    app.stop().await;

    let switched_off = app_with_rules(
        backend,
        &rules,
        &[("SHIPGATE__CORE__DERIVE_ETA_EVENTS", "false")],
    )
    .await;
    post_body(
        &switched_off,
        &eta(1, "2026-11-21T08:00:00Z", "2026-11-24T12:00:00Z"),
    )
    .await;
    post_body(
        &switched_off,
        &eta(2, "2026-11-21T09:00:00Z", "2026-11-27T12:00:00Z"),
    )
    .await;
    switched_off.wait_until_delivered().await;
    assert_eq!(receiver.received().len(), 2, "nothing more fired");
    switched_off.stop().await;
    receiver.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_silent_fulfillment_fires_stalled_in_transit_once_per_stall(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = app_with_rules(
        backend,
        &rule("stalls", &["stalled_in_transit"], &receiver.url(), ""),
        &[("SHIPGATE__CORE__STALL_AFTER", "600ms")],
    )
    .await;
    post_event(&app, 7011, 1, "in_transit", "2026-11-21T08:00:00Z").await;
    post_event(&app, 7012, 2, "delivered", "2026-11-21T08:00:00Z").await;
    let first = receiver.wait_for(1).await;
    assert_eq!(first[0].fulfillment(), "7011");
    assert_eq!(first[0].trigger(), "stalled_in_transit");
    assert_eq!(first[0].json["type"], "event");
    assert!(first[0].json["event"].is_null());
    // A fulfillment posted now stalls a full stall_after later: once it
    // has fired, the scanner has looked at 7011 again since its stall.
    post_event(&app, 7021, 4, "in_transit", "2026-11-21T08:00:00Z").await;
    let later = receiver.wait_for(2).await;
    assert_eq!(later[1].fulfillment(), "7021");
    assert_eq!(later.len(), 2, "one stall fires once");

    post_event(&app, 7011, 3, "in_transit", "2026-11-21T09:00:00Z").await;
    let second = receiver.wait_for(3).await;
    assert_eq!(second[2].fulfillment(), "7011");
    post_event(&app, 7022, 5, "in_transit", "2026-11-21T08:00:00Z").await;
    let later = receiver.wait_for(4).await;
    assert_eq!(later[3].fulfillment(), "7022");
    assert_eq!(later.len(), 4);
    app.stop().await;
    receiver.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_rule_with_a_store_filter_ignores_other_stores(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = app_with_rules(
        backend,
        &rule(
            "acme-only",
            &["in_transit"],
            &receiver.url(),
            "stores = [\"acme\"]",
        ),
        &[],
    )
    .await;
    let body = shopify_event_body(7013, 1, "in_transit", "2026-11-21T08:00:00Z");
    let beta = ShopifyDelivery {
        shop: OTHER_SHOP,
        secret: OTHER_SHOPIFY_SECRET,
        ..ShopifyDelivery::new("fulfillment_events/create", &body)
    };
    assert_eq!(app.post_shopify(&beta).await.status(), 200);
    app.wait_for_fulfillment(("beta", ORDER, "7013"), |f| f["status"] == "in_transit")
        .await;
    post_event(&app, 7014, 2, "in_transit", "2026-11-21T08:00:00Z").await;
    app.wait_until_delivered().await;
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].json["store"], "acme");
    assert!(app.deliveries("?store=beta").await.is_empty());
    app.stop().await;
    receiver.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn loopback_targets_are_refused_unless_allowed(backend: Backend) {
    let receiver = Receiver::start().await;
    let by_name = format!("http://localhost:{}/hooks", receiver.port());
    let rules = format!(
        "{}{}",
        rule("literal", &["in_transit"], &receiver.url(), ""),
        rule("named", &["in_transit"], &by_name, "")
    );
    let app = app_with_rules(
        backend,
        &rules,
        &[("SHIPGATE__DELIVERY__ALLOW_PRIVATE_TARGETS", "false")],
    )
    .await;
    post_event(&app, 7015, 1, "in_transit", "2026-11-21T08:00:00Z").await;
    let letters = app.wait_for_dead_letters("?reason=refused_target", 2).await;
    for letter in &letters {
        let attempts = letter["attempts"].as_array().unwrap();
        assert_eq!(
            attempts.len(),
            1,
            "a refused target is not retried: {letter}"
        );
        let detail = attempts[0]["detail"].as_str().unwrap();
        assert!(
            detail.contains("127.0.0.1") || detail.contains("::1"),
            "names the address: {detail}"
        );
        assert!(detail.contains("allow_private_targets"), "{detail}");
    }
    assert!(receiver.received().is_empty(), "nothing reached the target");
    app.stop().await;
    receiver.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn an_unknown_word_in_on_stops_start_up_naming_the_rule(backend: Backend) {
    let dir = std::env::temp_dir().join(format!("shipgate-bad-rule-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        rule(
            "tell-customer",
            &["delayed", "shipped"],
            "https://hooks.example.com/x",
            "",
        ),
    )
    .unwrap();
    let mut gateway = std::process::Command::new(env!("CARGO_BIN_EXE_shipgate"))
        .args(["serve", "--config"])
        .arg(&file)
        .envs(test_env())
        .envs(backend.env())
        .env("SHIPGATE__SERVER__PORT", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the gateway binary runs");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = gateway.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = gateway.kill();
            panic!("the gateway started with an unknown word in `on`");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut gateway.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("tell-customer"), "{stderr}");
    assert!(stderr.contains("'shipped'"), "{stderr}");
}

#[apply(backends)]
#[tokio::test]
async fn a_return_reaching_delivered_fires_only_rules_that_list_returns(backend: Backend) {
    let customer = Receiver::start().await;
    let warehouse = Receiver::start().await;
    let both = Receiver::start().await;
    let rules = [
        rule("tell-customer", &["delivered"], &customer.url(), ""),
        rule(
            "restock",
            &["delivered"],
            &warehouse.url(),
            "directions = [\"return\"]",
        ),
        rule(
            "audit",
            &["delivered"],
            &both.url(),
            "directions = [\"forward\", \"return\"]",
        ),
    ]
    .concat();
    let app = app_with_rules(backend, &rules, &[]).await;
    for name in ["shipment_return_delivered", "shipment_delivered"] {
        let response = app
            .post_carriyo_webhook(&CarriyoDelivery::webhook(&sample("carriyo", name)))
            .await;
        assert_eq!(response.status(), 200, "{name}");
    }
    app.wait_until_delivered().await;
    let fulfillments = |r: &Receiver| -> BTreeSet<String> {
        r.received()
            .iter()
            .map(|d| {
                assert_eq!(d.trigger(), "delivered");
                format!(
                    "{}:{}",
                    d.fulfillment(),
                    d.json["direction"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    assert_eq!(
        fulfillments(&customer),
        BTreeSet::from(["ORD-1001-1:forward".to_owned()]),
        "a return back at the warehouse tells the customer nothing"
    );
    assert_eq!(customer.received().len(), 1);
    assert_eq!(
        fulfillments(&warehouse),
        BTreeSet::from(["ORD-1001-R1:return".to_owned()])
    );
    assert_eq!(warehouse.received().len(), 1);
    assert_eq!(
        fulfillments(&both),
        BTreeSet::from([
            "ORD-1001-1:forward".to_owned(),
            "ORD-1001-R1:return".to_owned()
        ])
    );
    let (_, listed) = app.admin_get("/api/v1/automations").await;
    assert_eq!(
        listed["automations"][1]["directions"],
        serde_json::json!(["return"])
    );
    app.stop().await;
    for receiver in [customer, warehouse, both] {
        receiver.stop().await;
    }
}

#[apply(backends)]
#[tokio::test]
async fn the_ops_api_lists_rules_without_secrets_and_names_bad_filters(backend: Backend) {
    let auth = format!(
        "bearer_token = \"{SUBSCRIBER_TOKEN}\"\nsigning_secret = \"{SIGNING_SECRET}\"\nstores = [\"acme\"]"
    );
    let url = "https://user:hunter2@hooks.example.com/x";
    let app = app_with_rules(
        backend,
        &rule("listed", &["delivered", "delayed"], url, &auth),
        &[],
    )
    .await;
    let (status, body) = app.admin_get("/api/v1/automations").await;
    assert_eq!(status, 200, "{body}");
    let text = body.to_string();
    for secret in [SUBSCRIBER_TOKEN, SIGNING_SECRET, "hunter2"] {
        assert!(!text.contains(secret), "{text}");
    }
    let listed = &body["automations"][0];
    assert_eq!(listed["name"], "listed");
    assert_eq!(listed["on"], serde_json::json!(["delivered", "delayed"]));
    assert_eq!(listed["stores"], serde_json::json!(["acme"]));
    assert_eq!(listed["directions"], serde_json::json!(["forward"]));
    assert_eq!(listed["bearer_token"], true);
    assert_eq!(listed["signed"], true);
    assert_eq!(listed["url"], "https://user:***@hooks.example.com/x");

    let unauthenticated = app
        .client
        .get(app.url("/api/v1/deliveries"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let (status, body) = app.admin_get("/api/v1/deliveries?state=lost").await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("`state`"),
        "{body}"
    );
    let (status, body) = app.admin_get("/api/v1/dead-letters?reason=gremlins").await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("`reason`"),
        "{body}"
    );
    app.stop().await;
}
