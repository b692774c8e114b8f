//! Automations across gateway processes on one Redis: deliveries survive
//! a gateway killed while sending them, and a derived event fires once
//! however many gateways watch for it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::faults::{deployment_env, Gateway};
use crate::helpers::redis_server::RedisServer;
use crate::helpers::*;

const LEASE_TTL: Duration = Duration::from_secs(2);

/// A config file with one rule sending `on` to `url`.
fn rules_file(on: &[&str], url: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shipgate-rules-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("a directory for the rules");
    let file = dir.join("rules.toml");
    std::fs::write(
        &file,
        format!("[[automations]]\nname = \"subscriber\"\non = {on:?}\nurl = \"{url}\"\n"),
    )
    .expect("the rules are written");
    file
}

/// The environment of the gateways: one deployment, quick retries.
fn gateway_env(redis: &RedisServer, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = deployment_env(redis_env(&redis.url()), LEASE_TTL);
    let fast = [
        ("SHIPGATE__DELIVERY__ALLOW_PRIVATE_TARGETS", "true"),
        ("SHIPGATE__DELIVERY__RETRY_SCHEDULE", "200ms,500ms,1s,2s"),
        ("SHIPGATE__DELIVERY__TIMEOUT", "5s"),
    ];
    env.extend(
        fast.iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    env
}

async fn post(gateway: &Gateway, fulfillment: u64, id: u64, status: &str, at: &str) {
    let body = shopify_event_body(fulfillment, id, status, at);
    let response = gateway
        .app
        .post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &body))
        .await;
    assert_eq!(response.status(), 200);
}

/// Waits until `receiver` got every (fulfillment, trigger) in `expected`.
async fn wait_for_all(receiver: &Receiver, expected: &BTreeSet<(String, String)>) -> Vec<Received> {
    let deadline = Instant::now() + 2 * PATIENCE;
    loop {
        let received = receiver.received();
        let got: BTreeSet<(String, String)> = received
            .iter()
            .map(|r| (r.fulfillment().to_owned(), r.trigger().to_owned()))
            .collect();
        if expected.is_subset(&got) {
            return received;
        }
        assert!(
            Instant::now() < deadline,
            "never received {:?}",
            expected.difference(&got).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_killed_mid_delivery_then_restarted_loses_no_delivery_and_keeps_each_webhook_id()
{
    let redis = RedisServer::start(false);
    let receiver = Receiver::start().await;
    receiver
        .answer_usually(Answer::After(Duration::from_millis(150)))
        .await;
    let rules = rules_file(&["in_transit", "delivered"], &receiver.url());
    let env = gateway_env(&redis, &[]);
    let first = Gateway::start_with_config(&env, &rules).await;
    let fulfillments = 1..=8u64;
    let mut expected = BTreeSet::new();
    for f in fulfillments.clone() {
        post(
            &first,
            8000 + f,
            f * 10,
            "in_transit",
            "2026-11-21T08:00:00Z",
        )
        .await;
        post(
            &first,
            8000 + f,
            f * 10 + 1,
            "delivered",
            "2026-11-21T09:00:00Z",
        )
        .await;
        for trigger in ["in_transit", "delivered"] {
            expected.insert(((8000 + f).to_string(), trigger.to_owned()));
        }
    }
    receiver.wait_for(3).await;
    first.kill().await;
    let sent_before_the_kill = receiver.received().len();
    assert!(
        sent_before_the_kill < expected.len(),
        "the kill came too late to interrupt anything"
    );

    let second = Gateway::start_with_config(&env, &rules).await;
    let received = wait_for_all(&receiver, &expected).await;
    let mut ids: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for r in &received {
        ids.entry((r.fulfillment().to_owned(), r.trigger().to_owned()))
            .or_default()
            .insert(r.header("webhook-id").to_owned());
    }
    for (delivery, seen) in &ids {
        assert_eq!(
            seen.len(),
            1,
            "{delivery:?} came under several ids: {seen:?}"
        );
    }
    for f in fulfillments {
        let f = (8000 + f).to_string();
        let first_of = |trigger: &str| {
            received
                .iter()
                .position(|r| r.fulfillment() == f && r.trigger() == trigger)
        };
        assert!(
            first_of("in_transit") < first_of("delivered"),
            "fulfillment {f}: in order"
        );
    }
    let (status, dead) = second.app.admin_get("/api/v1/dead-letters").await;
    assert_eq!(status, 200);
    assert_eq!(dead["dead_letters"], serde_json::json!([]));
    second.stop().await;
    receiver.stop().await;
}

/// Posts an in_transit update for each of six fulfillments from `first`
/// on, to the gateways in turn.
async fn post_round(gateways: &[&Gateway], first: u64) {
    for (i, f) in (first..first + 6).enumerate() {
        let gateway = gateways[i % gateways.len()];
        post(gateway, f, f, "in_transit", "2026-11-21T08:00:00Z").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_fire_each_stall_once() {
    let redis = RedisServer::start(false);
    let receiver = Receiver::start().await;
    let rules = rules_file(&["stalled_in_transit"], &receiver.url());
    let env = gateway_env(&redis, &[("SHIPGATE__CORE__STALL_AFTER", "1s")]);
    let one = Gateway::start_with_config(&env, &rules).await;
    let two = Gateway::start_with_config(&env, &rules).await;
    let stalls = |first: u64| -> BTreeSet<(String, String)> {
        (first..first + 6)
            .map(|f| (f.to_string(), "stalled_in_transit".to_owned()))
            .collect()
    };
    post_round(&[&one, &two], 8101).await;
    wait_for_all(&receiver, &stalls(8101)).await;
    // A second round stalls a full stall_after later: by the time it has
    // fired, both gateways have scanned again past the first round.
    post_round(&[&one, &two], 8201).await;
    wait_for_all(&receiver, &stalls(8201)).await;
    // A delivery may be sent twice while a lease moves (at least once),
    // but a stall fired twice would be two deliveries: two webhook-ids.
    let received = receiver.received();
    let fired: BTreeSet<(&str, &str)> = received
        .iter()
        .map(|r| (r.fulfillment(), r.header("webhook-id")))
        .collect();
    assert_eq!(fired.len(), 12, "{fired:?}");
    one.stop().await;
    two.stop().await;
    receiver.stop().await;
}
