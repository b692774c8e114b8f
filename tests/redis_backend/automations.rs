//! Automations across gateway processes on one Redis: deliveries survive
//! a gateway killed while sending them, and a derived event fires once
//! however many gateways watch for it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::faults::{deployment_env, Gateway};
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
    let deadline = Instant::now() + Duration::from_secs(60);
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
    receiver.answer_usually(Answer::After(Duration::from_millis(150)));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_fire_each_stall_once() {
    let redis = RedisServer::start(false);
    let receiver = Receiver::start().await;
    let rules = rules_file(&["stalled_in_transit"], &receiver.url());
    let env = gateway_env(&redis, &[("SHIPGATE__CORE__STALL_AFTER", "1s")]);
    let one = Gateway::start_with_config(&env, &rules).await;
    let two = Gateway::start_with_config(&env, &rules).await;
    let stalled: BTreeSet<String> = (1..=6u64).map(|f| (8100 + f).to_string()).collect();
    for (i, f) in (1..=6u64).enumerate() {
        let gateway = if i % 2 == 0 { &one } else { &two };
        post(gateway, 8100 + f, f, "in_transit", "2026-11-21T08:00:00Z").await;
    }
    let expected = stalled
        .iter()
        .map(|f| (f.clone(), "stalled_in_transit".to_owned()))
        .collect();
    wait_for_all(&receiver, &expected).await;
    // Several scans of both gateways later, still one each.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A delivery may be sent twice while a lease moves (at least once),
    // but a stall fired twice would be two deliveries: two webhook-ids.
    let received = receiver.received();
    let fired: BTreeSet<(&str, &str)> = received
        .iter()
        .map(|r| (r.fulfillment(), r.header("webhook-id")))
        .collect();
    assert_eq!(fired.len(), stalled.len(), "{fired:?}");
    one.stop().await;
    two.stop().await;
    receiver.stop().await;
}

/// The Redis backend on the binary's shared Redis, under a fresh prefix.
async fn storage() -> shipgate::storage::redis::RedisStorage {
    let mut env = test_env();
    env.extend(redis_env(&shared_redis_url()));
    let settings =
        shipgate::config::Settings::load_with_env(None, env).expect("test settings load");
    shipgate::storage::redis::RedisStorage::connect(&settings.storage)
        .await
        .expect("the Redis backend opens")
}

/// A delivery of `fulfillment`, fresh and due at `now`.
pub(crate) fn pending_delivery(
    fulfillment: shipgate::canonical::FulfillmentKey,
    now: chrono::DateTime<chrono::Utc>,
) -> shipgate::domain::Delivery {
    use shipgate::canonical::ShipmentStatus;
    use shipgate::domain::{Delivery, DeliveryState, Trigger};
    Delivery {
        id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
        rule: "r".into(),
        fulfillment,
        trigger: Trigger::Status(ShipmentStatus::InTransit),
        created_at: now,
        state: DeliveryState::Pending,
        next_attempt_at: Some(now),
        attempts: Vec::new(),
        round_start: 0,
        body: "{}".into(),
    }
}

#[tokio::test]
async fn the_outbox_is_written_only_with_its_state_and_delivered_messages_are_forgotten() {
    use chrono::Utc;
    use shipgate::canonical::FulfillmentKey;
    use shipgate::domain::{
        Attempt, DeliveryFilter, OutboxWrite, Requeued, Settlement, StallWatch,
    };
    use shipgate::domain::{Fulfillment, HistoryChange};
    use shipgate::storage::{Fulfillments, Outbox};

    let storage = storage().await;
    let now = Utc::now();
    let key = FulfillmentKey {
        store: "acme".into(),
        order_ref: "1001".into(),
        fulfillment_ref: "f1".into(),
    };
    let delivery = pending_delivery(key.clone(), now);
    let until = now - chrono::Duration::seconds(1);
    let fired = OutboxWrite {
        deliveries: vec![delivery.clone()],
        stall: Some(StallWatch::Until(until)),
    };
    let fulfillment = Fulfillment::new(key.clone(), now);
    let all = DeliveryFilter {
        limit: 10,
        ..DeliveryFilter::default()
    };
    let partitions: Vec<u32> = (0..16).collect();

    let moved = storage
        .compare_and_set_with_outbox(Some(7), &fulfillment, &HistoryChange::default(), &fired)
        .await
        .unwrap();
    assert!(!moved);
    assert!(
        storage.deliveries(&all).await.unwrap().is_empty(),
        "nothing without the state"
    );
    assert!(storage
        .stalled(&partitions, now, 10)
        .await
        .unwrap()
        .is_empty());

    assert!(storage
        .compare_and_set_with_outbox(None, &fulfillment, &HistoryChange::default(), &fired)
        .await
        .unwrap());
    assert_eq!(
        storage.deliveries(&all).await.unwrap(),
        std::slice::from_ref(&delivery)
    );
    let (due, _) = storage
        .due_deliveries(&partitions, now, &BTreeSet::new(), 10)
        .await
        .unwrap();
    assert_eq!(due, std::slice::from_ref(&delivery));
    let stalled = storage.stalled(&partitions, now, 10).await.unwrap();
    assert_eq!(stalled.len(), 1);
    assert_eq!(stalled[0].0, key);
    assert_eq!(stalled[0].1.timestamp_millis(), until.timestamp_millis());

    let mut delivered = delivery.clone();
    let attempt = Attempt {
        at: now,
        status: Some(200),
        reason: None,
        detail: None,
    };
    delivered.settle(attempt, Settlement::Delivered);
    storage.settle_delivery(&delivered, now).await.unwrap();
    let (due, next) = storage
        .due_deliveries(&partitions, now, &BTreeSet::new(), 10)
        .await
        .unwrap();
    assert!(due.is_empty() && next.is_none());
    storage
        .forget_delivered(now - chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(
        storage.delivery(&delivery.id).await.unwrap(),
        Some(delivered)
    );
    storage
        .forget_delivered(now + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(storage.delivery(&delivery.id).await.unwrap(), None);
    assert!(storage.deliveries(&all).await.unwrap().is_empty());
    assert_eq!(
        storage
            .requeue_delivery(&delivery.id, true, now)
            .await
            .unwrap(),
        Requeued::NotFound
    );
}
