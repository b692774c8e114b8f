//! What the storage tests build on: every name they take from shipgate
//! (in one `use` block, so that a move inside the crate is mended here
//! alone), opening a storage on a backend, and small events, fulfillments
//! and deliveries.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use rstest_reuse::{self, template};
pub use shipgate::canonical::{
    CanonicalEvent, Direction, EventKind, FulfillmentKey, Observation, Pairing, Provider,
    ShipmentStatus,
};
pub use shipgate::config::Settings;
pub use shipgate::domain::{
    Applied, Attempt, Delivery, DeliveryFilter, DeliveryState, Fulfillment, HistoryChange, Order,
    OutboxWrite, Requeued, Settlement, StallWatch, Trigger,
};
pub use shipgate::storage::{
    Batched, Claim, EventFilter, EventLog, Feed, FulfillmentWrite, Fulfillments, LogEntry, Orders,
    Outbox, Outcome, Sequences, Storage, StorageError,
};

use crate::helpers::{redis_env, test_env, Backend, PATIENCE};

/// The Redis backends, for what the Redis backend does its own way in
/// both of its modes: `#[apply(redis_backends)]` makes one test on a
/// single Redis and one on a Cluster.
#[template]
#[rstest::rstest]
#[case::redis(Backend::Redis)]
#[case::cluster(Backend::RedisCluster)]
pub fn redis_backends(#[case] backend: Backend) {}

/// Settings for a storage on the backend whose settings `store` holds,
/// plus `extra`.
pub fn settings(store: Vec<(String, String)>, extra: &[(&str, &str)]) -> Settings {
    let mut env = test_env();
    env.extend(store);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::load_with_env(None, env).expect("test settings load")
}

/// Settings for a storage on the Redis at `url`, under a fresh key prefix.
pub fn redis_settings(url: &str, extra: &[(&str, &str)]) -> Settings {
    settings(redis_env(url), extra)
}

/// Opens the storage `settings` choose, as the app does.
pub async fn open(settings: &Settings) -> Arc<dyn Storage> {
    shipgate::storage::open(settings)
        .await
        .expect("the storage opens")
}

/// A storage on `backend` (under a fresh key prefix) with `extra` settings.
pub async fn storage_on(backend: Backend, extra: &[(&str, &str)]) -> Arc<dyn Storage> {
    open(&settings(backend.env(), extra)).await
}

/// A storage of 4 partitions on `backend`.
pub async fn small_storage(backend: Backend) -> Arc<dyn Storage> {
    storage_on(backend, &[("SHIPGATE__STORAGE__PARTITIONS", "4")]).await
}

pub fn key(fulfillment: &str) -> FulfillmentKey {
    FulfillmentKey {
        store: "acme".into(),
        order_ref: "1001".into(),
        fulfillment_ref: fulfillment.into(),
    }
}

/// An in_transit update of `fulfillment` that happened at `minute`.
pub fn event(fulfillment: &str, minute: u32, delivery: Option<&str>) -> CanonicalEvent {
    CanonicalEvent::from_observation(
        Observation {
            provider: Provider::Shopify,
            key: key(fulfillment),
            direction: Direction::Forward,
            carrier: None,
            tracking_number: None,
            kind: EventKind::Status(ShipmentStatus::InTransit),
            raw_status: "in_transit".into(),
            message: None,
            occurred_at: Utc.with_ymd_and_hms(2026, 11, 21, 8, minute, 0).single(),
            estimated_delivery: None,
            location: None,
            source_id: None,
            delivery_id: delivery.map(str::to_owned),
        },
        Utc::now(),
    )
}

pub async fn accept(storage: &Arc<dyn Storage>, event: &CanonicalEvent) {
    assert_eq!(
        storage.claim_and_append(event).await.expect("claimed"),
        Claim::Accepted,
        "{}",
        event.id
    );
}

pub async fn backlog_total(storage: &Arc<dyn Storage>) -> u64 {
    storage.backlog().await.expect("backlog").iter().sum()
}

/// Stores `fulfillment` as new, asserting the create took.
pub async fn create(
    storage: &Arc<dyn Storage>,
    fulfillment: &str,
    now: DateTime<Utc>,
) -> Fulfillment {
    let created = Fulfillment::new(key(fulfillment), now);
    assert!(storage
        .compare_and_set_fulfillment(None, &created)
        .await
        .unwrap());
    created
}

/// `current` after applying `e`, and the history change to write.
pub fn applied(current: &Fulfillment, e: &CanonicalEvent) -> (Fulfillment, HistoryChange) {
    let mut value = current.clone();
    match value.apply(e, Utc::now()) {
        Applied::Recorded(effects) => (value, effects.history),
        other => panic!("{} was not recorded: {other:?}", e.id),
    }
}

/// Acknowledges `entries`, as a worker does once they are applied.
pub async fn acknowledge(storage: &Arc<dyn Storage>, entries: &[LogEntry]) {
    let positions: Vec<_> = entries.iter().map(|e| e.position.clone()).collect();
    storage.acknowledge(&positions).await.expect("acknowledged");
}

pub fn ids(entries: &[LogEntry]) -> Vec<String> {
    entries.iter().map(|e| e.event.id.to_string()).collect()
}

pub fn event_ids(events: &[&CanonicalEvent]) -> Vec<String> {
    events.iter().map(|e| e.id.to_string()).collect()
}

/// A delivery of `fulfillment`, fresh and due at `now`.
pub fn pending_delivery(fulfillment: FulfillmentKey, now: DateTime<Utc>) -> Delivery {
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

/// A storage of one partition whose feed holds three events, on the
/// backend whose settings `store` holds, with its partition leased to
/// worker "w"; and its settings.
pub async fn one_partition_feed_of_three(
    store: Vec<(String, String)>,
) -> (Settings, Arc<dyn Storage>, Vec<u32>) {
    let settings = settings(
        store,
        &[
            ("SHIPGATE__STORAGE__PARTITIONS", "1"),
            ("SHIPGATE__STORAGE__RECENT_EVENTS", "3"),
        ],
    );
    let storage = open(&settings).await;
    let partitions = storage
        .lease_partitions("w", std::time::Duration::from_secs(10))
        .await
        .unwrap();
    (settings, storage, partitions)
}

/// Leases for `worker` until it holds all `n` partitions, once another
/// worker's lease has run out; panics after [`PATIENCE`].
pub async fn lease_all(storage: &Arc<dyn Storage>, worker: &str, n: usize) -> Vec<u32> {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let held = storage
            .lease_partitions(worker, std::time::Duration::from_secs(10))
            .await
            .unwrap();
        if held.len() == n {
            return held;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{worker} never held all {n} partitions: {held:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
