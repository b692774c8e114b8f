//! The Redis backend's scripts and edge cases, through the `Storage`
//! trait against a real throwaway Redis: claims, compare-and-set, orders,
//! leases and their fair shares, reclaiming a dead worker's entries, the
//! merged read views, and starting while Redis is down.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use shipgate::canonical::{
    CanonicalEvent, EventKind, FulfillmentKey, Observation, Provider, ShipmentStatus,
};
use shipgate::config::{Settings, StorageSettings};
use shipgate::domain::OutboxWrite;
use shipgate::domain::{Applied, Fulfillment, HistoryChange, Order};
use shipgate::storage::redis::RedisStorage;
use shipgate::storage::{
    Batched, Claim, EventFilter, EventLog, Feed, FulfillmentWrite, Fulfillments, LogEntry, Orders,
    Outbox, Outcome, Sequences, Storage, StorageError,
};

use crate::helpers::*;

/// Storage settings on the Redis at `url`, under a fresh key prefix.
fn settings(url: &str, extra: &[(&str, &str)]) -> StorageSettings {
    let mut env = test_env();
    env.extend(redis_env(url));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::load_with_env(None, env)
        .expect("test settings load")
        .storage
}

async fn open(settings: &StorageSettings) -> RedisStorage {
    RedisStorage::connect(settings)
        .await
        .expect("the Redis backend opens")
}

/// A storage of 4 partitions on the binary's shared Redis.
async fn small_storage() -> RedisStorage {
    open(&settings(
        &shared_redis_url(),
        &[("SHIPGATE__STORAGE__PARTITIONS", "4")],
    ))
    .await
}

fn key(fulfillment: &str) -> FulfillmentKey {
    FulfillmentKey {
        store: "acme".into(),
        order_ref: "1001".into(),
        fulfillment_ref: fulfillment.into(),
    }
}

/// An in_transit update of `fulfillment` that happened at `minute`.
fn event(fulfillment: &str, minute: u32, delivery: Option<&str>) -> CanonicalEvent {
    CanonicalEvent::from_observation(
        Observation {
            provider: Provider::Shopify,
            key: key(fulfillment),
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

async fn accept(storage: &RedisStorage, event: &CanonicalEvent) {
    assert_eq!(
        storage.claim_and_append(event).await.expect("claimed"),
        Claim::Accepted,
        "{}",
        event.id
    );
}

async fn backlog_total(storage: &RedisStorage) -> u64 {
    storage.backlog().await.expect("backlog").iter().sum()
}

/// Stores `fulfillment` as new, asserting the create took.
async fn create(storage: &RedisStorage, fulfillment: &str, now: DateTime<Utc>) -> Fulfillment {
    let created = Fulfillment::new(key(fulfillment), now);
    assert!(storage
        .compare_and_set_fulfillment(None, &created)
        .await
        .unwrap());
    created
}

/// A storage of 4 partitions on the shared Redis whose log for `e` is a
/// plain string, so that appending to it fails; with a connection of its
/// own to mend it and that log's key.
async fn storage_whose_log_breaks(
    e: &CanonicalEvent,
) -> (RedisStorage, redis::aio::MultiplexedConnection, String) {
    use redis::AsyncCommands;
    let settings = settings(
        &shared_redis_url(),
        &[("SHIPGATE__STORAGE__PARTITIONS", "4")],
    );
    let storage = open(&settings).await;
    let log = format!(
        "{0}:{{{0}:p{1}}}:log",
        settings.key_prefix,
        e.key.partition(4)
    );
    let client = redis::Client::open(shared_redis_url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let () = raw.del(&log).await.unwrap();
    let () = raw.set(&log, "not a stream").await.unwrap();
    (storage, raw, log)
}

/// Acknowledges `entries`, as a worker does once they are applied.
async fn acknowledge(storage: &RedisStorage, entries: &[LogEntry]) {
    let positions: Vec<_> = entries.iter().map(|e| e.position.clone()).collect();
    storage.acknowledge(&positions).await.expect("acknowledged");
}

fn ids(entries: &[LogEntry]) -> Vec<String> {
    entries.iter().map(|e| e.event.id.to_string()).collect()
}

fn event_ids(events: &[&CanonicalEvent]) -> Vec<String> {
    events.iter().map(|e| e.id.to_string()).collect()
}

#[tokio::test]
async fn a_claim_is_taken_once_by_delivery_id_or_by_content() {
    let storage = small_storage().await;
    let first = event("f1", 0, Some("d1"));
    accept(&storage, &first).await;
    let same_delivery_again = first.clone();
    let same_content_new_delivery = event("f1", 0, Some("d2"));
    let new_content_same_delivery = event("f1", 1, Some("d1"));
    for repeat in [
        same_delivery_again,
        same_content_new_delivery,
        new_content_same_delivery,
    ] {
        assert_eq!(
            storage.claim_and_append(&repeat).await.unwrap(),
            Claim::Duplicate { original: first.id }
        );
    }
    assert_eq!(backlog_total(&storage).await, 1);
    // The content duplicate claimed nothing: its delivery id is free.
    accept(&storage, &event("f1", 2, Some("d2"))).await;
    let stats = storage.stats().await.unwrap();
    assert_eq!(stats[&Provider::Shopify][&Outcome::Accepted], 2);
    assert_eq!(stats[&Provider::Shopify][&Outcome::Duplicate], 3);
    let recent = storage
        .recent_events(&EventFilter {
            limit: 10,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(recent[1..], [first]);
}

#[tokio::test]
async fn a_failed_append_claims_nothing_so_the_retry_is_recorded() {
    use redis::AsyncCommands;
    let e = event("f1", 0, Some("d1"));
    let (storage, mut raw, log) = storage_whose_log_breaks(&e).await;
    let refused = storage.claim_and_append(&e).await;
    assert!(
        matches!(refused, Err(StorageError::Corrupt(_))),
        "{refused:?}"
    );
    let () = raw.del(&log).await.unwrap();
    accept(&storage, &e).await;
    assert_eq!(backlog_total(&storage).await, 1);
}

#[tokio::test]
async fn a_delivery_id_is_a_duplicate_only_for_its_own_fulfillment() {
    let storage = small_storage().await;
    accept(&storage, &event("f1", 0, Some("d1"))).await;
    accept(&storage, &event("f2", 0, Some("d1"))).await;
    assert_eq!(backlog_total(&storage).await, 2);
}

#[tokio::test]
async fn dedup_keys_expire_after_the_dedup_ttl() {
    let storage = open(&settings(
        &shared_redis_url(),
        &[("SHIPGATE__STORAGE__DEDUP_TTL", "300ms")],
    ))
    .await;
    let first = event("f1", 0, Some("d1"));
    accept(&storage, &first).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    accept(&storage, &event("f1", 0, Some("d1"))).await;
    assert_eq!(backlog_total(&storage).await, 2);
}

#[tokio::test]
async fn unmapped_words_are_counted_with_the_claim_across_partitions() {
    let storage = small_storage().await;
    for fulfillment in ["f1", "f2", "f3", "f4", "f5"] {
        let mut unmapped = event(fulfillment, 0, None);
        unmapped.kind = EventKind::Unmapped;
        unmapped.raw_status = "teleported".into();
        accept(&storage, &unmapped).await;
    }
    let partitions: std::collections::BTreeSet<u32> = ["f1", "f2", "f3", "f4", "f5"]
        .iter()
        .map(|f| key(f).partition(4))
        .collect();
    assert!(partitions.len() > 1, "the words must span partitions");
    let words = storage.unmapped_words().await.unwrap();
    assert_eq!(words.len(), 1, "{words:?}");
    assert_eq!(
        (words[0].provider, words[0].word.as_str(), words[0].count),
        (Provider::Shopify, "teleported", 5)
    );
    let stats = storage.stats().await.unwrap();
    assert_eq!(stats[&Provider::Shopify][&Outcome::Unmapped], 5);
}

#[tokio::test]
async fn refused_requests_are_counted_beside_the_claims() {
    let storage = small_storage().await;
    storage
        .count(Provider::Carriyo, Outcome::Unauthorized)
        .await
        .unwrap();
    accept(&storage, &event("f1", 0, None)).await;
    let stats = storage.stats().await.unwrap();
    assert_eq!(stats[&Provider::Carriyo][&Outcome::Unauthorized], 1);
    assert_eq!(stats[&Provider::Shopify][&Outcome::Accepted], 1);
}

#[tokio::test]
async fn compare_and_set_refuses_a_version_that_moved_on() {
    let storage = small_storage().await;
    let created = create(&storage, "f1", Utc::now()).await;
    assert!(
        !storage
            .compare_and_set_fulfillment(None, &created)
            .await
            .unwrap(),
        "a second create must lose"
    );
    let mut first_update = created.clone();
    first_update.carrier = Some("UPS".into());
    let mut rival_update = created.clone();
    rival_update.carrier = Some("FedEx".into());
    assert!(storage
        .compare_and_set_fulfillment(Some(1), &first_update)
        .await
        .unwrap());
    assert!(!storage
        .compare_and_set_fulfillment(Some(1), &rival_update)
        .await
        .unwrap());
    let stored = storage.fulfillment(&key("f1")).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.value, first_update);
    assert!(storage.fulfillment(&key("f9")).await.unwrap().is_none());
}

/// `current` after applying `e`, and the history change to write.
fn applied(current: &Fulfillment, e: &CanonicalEvent) -> (Fulfillment, HistoryChange) {
    let mut value = current.clone();
    match value.apply(e, Utc::now()) {
        Applied::Recorded(effects) => (value, effects.history),
        other => panic!("{} was not recorded: {other:?}", e.id),
    }
}

#[tokio::test]
async fn a_claim_and_its_write_go_together_and_a_duplicate_writes_nothing() {
    use shipgate::domain::DeliveryFilter;
    let storage = small_storage().await;
    let now = Utc::now();
    let created = create(&storage, "f1", now).await;
    // The write fires a delivery, whose keys come before the claim's.
    let first = event("f1", 10, Some("d1"));
    let (value, change) = applied(&created, &first);
    let delivery = crate::automations::pending_delivery(key("f1"), now);
    let firing = OutboxWrite {
        deliveries: vec![delivery.clone()],
        stall: None,
    };
    let write = FulfillmentWrite {
        expected: Some(1),
        value: &value,
        change: &change,
        fired: &firing,
    };
    assert_eq!(
        storage.claim_append_and_set(&first, write).await.unwrap(),
        (Claim::Accepted, true)
    );
    // Sent again, over the version it left: a duplicate writes nothing.
    let again = FulfillmentWrite {
        expected: Some(2),
        ..write
    };
    assert_eq!(
        storage.claim_append_and_set(&first, again).await.unwrap(),
        (Claim::Duplicate { original: first.id }, false)
    );
    // Written over a version that moved on: recorded, not written.
    let second = event("f1", 20, Some("d2"));
    let (stale_value, stale_change) = applied(&created, &second);
    let stale = FulfillmentWrite {
        expected: Some(1),
        value: &stale_value,
        change: &stale_change,
        fired: &OutboxWrite::default(),
    };
    assert_eq!(
        storage.claim_append_and_set(&second, stale).await.unwrap(),
        (Claim::Accepted, false)
    );
    let stored = storage.fulfillment(&key("f1")).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.value.history, value.history);
    assert_eq!(backlog_total(&storage).await, 2, "both updates are logged");
    let stats = storage.stats().await.unwrap();
    assert_eq!(stats[&Provider::Shopify][&Outcome::Accepted], 2);
    assert_eq!(stats[&Provider::Shopify][&Outcome::Duplicate], 1);
    let all = DeliveryFilter {
        limit: 10,
        ..DeliveryFilter::default()
    };
    assert_eq!(
        storage.deliveries(&all).await.unwrap(),
        [delivery],
        "queued once"
    );
}

#[tokio::test]
async fn a_claim_whose_append_fails_writes_nothing_and_a_new_fulfillment_is_listed() {
    use redis::AsyncCommands;
    let e = event("f1", 0, Some("d1"));
    let (storage, mut raw, log) = storage_whose_log_breaks(&e).await;
    let (value, change) = applied(&Fulfillment::new(key("f1"), Utc::now()), &e);
    let write = FulfillmentWrite {
        expected: None,
        value: &value,
        change: &change,
        fired: &OutboxWrite::default(),
    };
    let refused = storage.claim_append_and_set(&e, write).await;
    assert!(
        matches!(refused, Err(StorageError::Corrupt(_))),
        "{refused:?}"
    );
    assert!(
        storage.fulfillment(&key("f1")).await.unwrap().is_none(),
        "nothing written"
    );
    let () = raw.del(&log).await.unwrap();
    assert_eq!(
        storage.claim_append_and_set(&e, write).await.unwrap(),
        (Claim::Accepted, true),
        "the retry is no duplicate"
    );
    let listed = storage.fulfillments_of_order("acme", "1001").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].history, value.history);
}

#[tokio::test]
async fn an_apply_reads_no_history_and_writes_only_its_own_entry() {
    let storage = small_storage().await;
    let mut model = Fulfillment::new(key("f1"), Utc::now());
    let events: Vec<CanonicalEvent> = [30, 10, 20].map(|m| event("f1", m, None)).into();
    // Out of order, then the second one again.
    for e in events.iter().chain([&events[1]]) {
        let current = storage.fulfillment_to_apply(e).await.unwrap();
        let (expected, mut value) = match current {
            Some(v) => (Some(v.version), v.value),
            None => (None, Fulfillment::new(key("f1"), Utc::now())),
        };
        assert!(value.history.is_empty(), "an apply reads no history");
        model.apply(e, Utc::now());
        match value.apply(e, Utc::now()) {
            Applied::Recorded(effects) => assert!(storage
                .compare_and_set_with_outbox(
                    expected,
                    &value,
                    &effects.history,
                    &OutboxWrite::default()
                )
                .await
                .unwrap()),
            Applied::AlreadyApplied => assert_eq!(e.id, events[1].id, "only the repeat"),
            other => panic!("{other:?}"),
        }
    }
    let stored = storage.fulfillment(&key("f1")).await.unwrap().unwrap();
    assert_eq!(stored.version, 3);
    assert_eq!(stored.value.history, model.history, "every entry, in order");
    assert_eq!(stored.value.applied, model.applied);
    assert_eq!(stored.value.status_at, model.status_at);
    let listed = storage.fulfillments_of_order("acme", "1001").await.unwrap();
    assert_eq!(listed[0].history, model.history);
}

#[tokio::test]
async fn a_batch_of_compare_and_sets_writes_those_whose_version_held() {
    use shipgate::domain::{DeliveryFilter, StallWatch};
    // A Redis of its own: the SCRIPT FLUSH below would pull the scripts
    // from under the other tests, between their load and their retry.
    let redis = RedisServer::start(false);
    let storage = open(&settings(
        &redis.url(),
        &[("SHIPGATE__STORAGE__PARTITIONS", "4")],
    ))
    .await;
    let now = Utc::now();
    let names = ["f1", "f2", "f3", "f4", "f5", "f6", "f7"];
    for f in ["f1", "f2", "f3", "f6", "f7"] {
        create(&storage, f, now).await;
    }
    let partitions: Vec<u32> = (0..4).collect();
    let by_partition = |p: u32| names.iter().filter(|f| key(f).partition(4) == p).count();
    assert!(
        partitions.iter().any(|&p| by_partition(p) > 1),
        "some writes share a partition's call"
    );
    // Redis forgot its scripts (a restart, SCRIPT FLUSH): the batch loads
    // them and goes again.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async::<()>(&mut raw)
        .await
        .unwrap();
    let updated: Vec<Fulfillment> = names
        .map(|f| Fulfillment {
            carrier: Some(format!("UPS for {f}")),
            ..Fulfillment::new(key(f), now)
        })
        .into();
    let change = HistoryChange::default();
    let quiet = OutboxWrite::default();
    // f3's write fires a delivery (a call of its own); f5's and f6's set
    // their stall watches; f7's version moved on, so its watch stays unset.
    let until = now - chrono::Duration::seconds(1);
    let watched = OutboxWrite {
        deliveries: Vec::new(),
        stall: Some(StallWatch::Until(until)),
    };
    let delivery = crate::automations::pending_delivery(key("f3"), now);
    let firing = OutboxWrite {
        deliveries: vec![delivery.clone()],
        stall: None,
    };
    let expected = [Some(1), Some(7), Some(1), None, None, Some(1), Some(2)];
    let fired = [
        &quiet, &quiet, &firing, &quiet, &watched, &watched, &watched,
    ];
    let writes: Vec<FulfillmentWrite<'_>> = updated
        .iter()
        .zip(expected)
        .zip(fired)
        .map(|((value, expected), fired)| FulfillmentWrite {
            expected,
            value,
            change: &change,
            fired,
        })
        .collect();
    let written = storage.compare_and_set_many(&writes).await.unwrap();
    assert_eq!(
        written,
        [true, false, true, true, true, true, false],
        "f2's and f7's versions moved on"
    );
    let carriers: Vec<Option<String>> = storage
        .fulfillments_of_order("acme", "1001")
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.carrier)
        .collect();
    let expect = |f: &str| Some(format!("UPS for {f}"));
    assert_eq!(
        carriers,
        [
            expect("f1"),
            None,
            expect("f3"),
            expect("f4"),
            expect("f5"),
            expect("f6"),
            None
        ]
    );
    let all = DeliveryFilter {
        limit: 10,
        ..DeliveryFilter::default()
    };
    assert_eq!(storage.deliveries(&all).await.unwrap(), [delivery]);
    let mut stalled: Vec<FulfillmentKey> = storage
        .stalled(&partitions, now, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    stalled.sort_by(|a, b| a.fulfillment_ref.cmp(&b.fulfillment_ref));
    assert_eq!(stalled, [key("f5"), key("f6")]);
}

#[tokio::test]
async fn an_orders_fulfillments_are_listed_by_reference() {
    let storage = small_storage().await;
    for fulfillment in ["f2", "f1"] {
        create(&storage, fulfillment, Utc::now()).await;
    }
    let listed: Vec<String> = storage
        .fulfillments_of_order("acme", "1001")
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.key.fulfillment_ref)
        .collect();
    assert_eq!(listed, ["f1", "f2"]);
    assert!(storage
        .fulfillments_of_order("acme", "9999")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn an_order_is_found_by_either_id_and_neither_id_is_taken_twice() {
    let storage = small_storage().await;
    let order = Order {
        store: "acme".into(),
        id: "ord_1".into(),
        external_id: "R-1".into(),
        created_at: Utc::now(),
        body: serde_json::json!({"orderId": "R-1"}),
    };
    assert!(storage.create_order(&order).await.unwrap());
    for id in ["ord_1", "R-1"] {
        assert_eq!(
            storage.order("acme", id).await.unwrap(),
            Some(order.clone())
        );
    }
    assert_eq!(storage.order("beta", "R-1").await.unwrap(), None);
    let same_external = Order {
        id: "ord_2".into(),
        ..order.clone()
    };
    let same_ours = Order {
        external_id: "R-2".into(),
        ..order.clone()
    };
    for taken in [same_external, same_ours] {
        assert!(!storage.create_order(&taken).await.unwrap());
    }
    assert_eq!(storage.order("acme", "ord_2").await.unwrap(), None);
    assert_eq!(storage.order("acme", "R-2").await.unwrap(), None);
    assert_eq!(storage.next_in_sequence("orders").await.unwrap(), 1);
    assert_eq!(storage.next_in_sequence("orders").await.unwrap(), 2);
}

#[tokio::test]
async fn a_second_worker_gets_a_fair_share_and_no_partition_has_two_holders() {
    let storage = small_storage().await;
    let ttl = Duration::from_secs(10);
    assert_eq!(
        storage.lease_partitions("a", ttl).await.unwrap(),
        [0, 1, 2, 3]
    );
    assert!(storage.lease_partitions("b", ttl).await.unwrap().is_empty());
    let a = storage.lease_partitions("a", ttl).await.unwrap();
    let b = storage.lease_partitions("b", ttl).await.unwrap();
    assert_eq!((a.len(), b.len()), (2, 2), "a {a:?}, b {b:?}");
    let mut all: Vec<u32> = a.iter().chain(&b).copied().collect();
    all.sort_unstable();
    assert_eq!(all, [0, 1, 2, 3]);
    assert_eq!(storage.lease_partitions("a", ttl).await.unwrap(), a);
}

#[tokio::test]
async fn a_dead_workers_partitions_are_taken_once_its_lease_expires() {
    let storage = small_storage().await;
    let short = Duration::from_millis(300);
    let long = Duration::from_secs(10);
    assert_eq!(
        storage
            .lease_partitions("dying", short)
            .await
            .unwrap()
            .len(),
        4
    );
    assert!(storage
        .lease_partitions("heir", long)
        .await
        .unwrap()
        .is_empty());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        storage.lease_partitions("heir", long).await.unwrap(),
        [0, 1, 2, 3]
    );
}

#[tokio::test]
async fn released_partitions_are_taken_at_once() {
    let storage = small_storage().await;
    let ttl = Duration::from_secs(10);
    assert_eq!(storage.lease_partitions("a", ttl).await.unwrap().len(), 4);
    storage.release_partitions("a").await.unwrap();
    assert_eq!(
        storage.lease_partitions("b", ttl).await.unwrap(),
        [0, 1, 2, 3]
    );
}

#[tokio::test]
async fn entries_a_dead_worker_never_acknowledged_are_read_again_in_order() {
    let storage = small_storage().await;
    let wait = Duration::from_millis(50);
    let partitions = storage
        .lease_partitions("dying", Duration::from_millis(300))
        .await
        .unwrap();
    let events: Vec<CanonicalEvent> = (0..3).map(|minute| event("f1", minute, None)).collect();
    for e in &events {
        accept(&storage, e).await;
    }
    let read = storage
        .read_log("dying", &partitions, 10, wait)
        .await
        .unwrap();
    assert_eq!(ids(&read), event_ids(&events.iter().collect::<Vec<_>>()));
    let later = event("f1", 3, None);
    accept(&storage, &later).await;
    // The first worker dies without acknowledging; its lease runs out.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let partitions = storage
        .lease_partitions("heir", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(partitions, [0, 1, 2, 3]);
    let expected: Vec<&CanonicalEvent> = events.iter().chain([&later]).collect();
    let first_two = storage
        .read_log("heir", &partitions, 2, wait)
        .await
        .unwrap();
    assert_eq!(ids(&first_two), event_ids(&expected[..2]));
    let again = storage
        .read_log("heir", &partitions, 10, wait)
        .await
        .unwrap();
    assert_eq!(
        ids(&again),
        event_ids(&expected),
        "unacknowledged entries come again, before what is new"
    );
    acknowledge(&storage, &first_two).await;
    assert_eq!(backlog_total(&storage).await, 2);
    let rest = storage
        .read_log("heir", &partitions, 10, wait)
        .await
        .unwrap();
    assert_eq!(ids(&rest), event_ids(&expected[2..]));
    acknowledge(&storage, &rest).await;
    assert_eq!(backlog_total(&storage).await, 0);
    assert!(storage
        .read_log("heir", &partitions, 10, wait)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn an_idle_read_waits_for_new_entries_then_returns_them() {
    let storage = small_storage().await;
    let partitions = storage
        .lease_partitions("w", Duration::from_secs(10))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert!(storage
        .read_log("w", &partitions, 10, Duration::from_millis(200))
        .await
        .unwrap()
        .is_empty());
    assert!(started.elapsed() >= Duration::from_millis(200));
    let late = event("f1", 0, None);
    let (read, ()) = tokio::join!(
        storage.read_log("w", &partitions, 10, Duration::from_secs(5)),
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            accept(&storage, &late).await;
        }
    );
    assert_eq!(ids(&read.unwrap()), [late.id.to_string()]);
}

#[tokio::test]
async fn recent_events_merge_every_partition_newest_first() {
    let storage = small_storage().await;
    let events: Vec<CanonicalEvent> = (0..12).map(|i| event(&format!("f{i}"), i, None)).collect();
    for e in &events {
        accept(&storage, e).await;
    }
    let newest_first: Vec<&CanonicalEvent> = events.iter().rev().collect();
    let page = |before, limit| EventFilter {
        before,
        limit,
        ..EventFilter::default()
    };
    let first = storage.recent_events(&page(None, 5)).await.unwrap();
    assert_eq!(
        first.iter().map(|e| e.id.to_string()).collect::<Vec<_>>(),
        event_ids(&newest_first[..5])
    );
    let second = storage
        .recent_events(&page(Some(first[4].id), 100))
        .await
        .unwrap();
    assert_eq!(
        second.iter().map(|e| e.id.to_string()).collect::<Vec<_>>(),
        event_ids(&newest_first[5..])
    );
    let other_provider = EventFilter {
        provider: Some(Provider::Redo),
        ..page(None, 10)
    };
    assert!(storage
        .recent_events(&other_provider)
        .await
        .unwrap()
        .is_empty());
}

/// One partition whose feed holds three events, leased to worker "w",
/// and a raw connection to look at its log.
struct OneSmallFeed {
    storage: RedisStorage,
    partitions: Vec<u32>,
    raw: redis::aio::MultiplexedConnection,
    log: String,
}

async fn one_partition_feed_of_three() -> OneSmallFeed {
    let settings = settings(
        &shared_redis_url(),
        &[
            ("SHIPGATE__STORAGE__PARTITIONS", "1"),
            ("SHIPGATE__STORAGE__RECENT_EVENTS", "3"),
        ],
    );
    let storage = open(&settings).await;
    let partitions = storage
        .lease_partitions("w", Duration::from_secs(10))
        .await
        .unwrap();
    let client = redis::Client::open(shared_redis_url()).unwrap();
    let raw = client.get_multiplexed_async_connection().await.unwrap();
    let log = format!("{0}:{{{0}:p0}}:log", settings.key_prefix);
    OneSmallFeed {
        storage,
        partitions,
        raw,
        log,
    }
}

#[tokio::test]
async fn the_feed_shows_the_newest_up_to_its_cap_and_applied_entries_are_trimmed() {
    use redis::AsyncCommands;
    let OneSmallFeed {
        storage,
        partitions,
        mut raw,
        log,
    } = one_partition_feed_of_three().await;
    let events: Vec<CanonicalEvent> = (0..70).map(|i| event(&format!("f{i}"), 0, None)).collect();
    let mut lengths = Vec::new();
    for e in &events {
        accept(&storage, e).await;
        assert_eq!(
            backlog_total(&storage).await,
            1,
            "accepted, not yet applied"
        );
        let read = storage
            .read_log("w", &partitions, 10, Duration::from_millis(50))
            .await
            .unwrap();
        assert_eq!(ids(&read), [e.id.to_string()]);
        acknowledge(&storage, &read).await;
        assert_eq!(
            backlog_total(&storage).await,
            0,
            "trimming leaves the lag countable"
        );
        lengths.push(raw.xlen::<_, usize>(&log).await.unwrap());
    }
    let recent = storage
        .recent_events(&EventFilter {
            limit: 100,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    let newest: Vec<&CanonicalEvent> = events.iter().rev().take(3).collect();
    assert_eq!(
        recent.iter().map(|e| e.id.to_string()).collect::<Vec<_>>(),
        event_ids(&newest),
        "the newest, no more than the cap, trimmed or not"
    );
    assert!(
        lengths.iter().all(|&n| n <= 2 * 3 + 1),
        "at most two feeds' worth of applied entries: {lengths:?}"
    );
    assert!(lengths.iter().skip(10).all(|&n| n >= 3), "{lengths:?}");
}

#[tokio::test]
async fn trimming_the_log_never_drops_an_entry_still_pending() {
    let OneSmallFeed {
        storage,
        partitions,
        ..
    } = one_partition_feed_of_three().await;
    let held_back: Vec<CanonicalEvent> = (0..2)
        .map(|i| event(&format!("held{i}"), 0, None))
        .collect();
    for e in &held_back {
        accept(&storage, e).await;
    }
    let held_back_ids = event_ids(&held_back.iter().collect::<Vec<_>>());
    // Many feeds' worth applied after two entries a worker never
    // acknowledges (it hangs, or dies holding them).
    for round in 0..20 {
        for i in 0..5 {
            accept(&storage, &event(&format!("r{round}-{i}"), 0, None)).await;
        }
        let read = storage
            .read_log("w", &partitions, 100, Duration::from_millis(50))
            .await
            .unwrap();
        assert_eq!(ids(&read[..2]), held_back_ids, "round {round}");
        acknowledge(&storage, &read[2..]).await;
    }
    assert_eq!(backlog_total(&storage).await, 2);
    let again = storage
        .read_log("w", &partitions, 100, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|e| &e.event).collect::<Vec<_>>(),
        held_back.iter().collect::<Vec<_>>(),
        "still in the log, whole"
    );
}

#[tokio::test]
async fn applied_entries_are_acknowledged_even_if_redis_lost_the_log_and_its_group() {
    use redis::AsyncCommands;
    let OneSmallFeed {
        storage,
        partitions,
        mut raw,
        log,
    } = one_partition_feed_of_three().await;
    let wait = Duration::from_millis(50);
    // Two feeds' worth of acknowledgements, so the second is due a trim.
    for round in 0..2 {
        for i in 0..3 {
            accept(&storage, &event(&format!("f{round}-{i}"), 0, None)).await;
        }
        let read = storage.read_log("w", &partitions, 10, wait).await.unwrap();
        assert_eq!(read.len(), 3);
        if round == 1 {
            let () = raw.del(&log).await.unwrap();
        }
        let positions: Vec<_> = read.iter().map(|e| e.position.clone()).collect();
        storage
            .acknowledge(&positions)
            .await
            .expect("acknowledged, trimming skipped");
    }
    // The log and its group come back with the next read.
    let late = event("late", 0, None);
    accept(&storage, &late).await;
    let read = storage.read_log("w", &partitions, 10, wait).await.unwrap();
    assert_eq!(ids(&read), [late.id.to_string()]);
}

#[tokio::test]
async fn a_log_an_older_version_deleted_from_is_counted_and_drained() {
    use redis::AsyncCommands;
    let OneSmallFeed {
        storage,
        partitions,
        mut raw,
        log,
    } = one_partition_feed_of_three().await;
    for i in 0..3 {
        accept(&storage, &event(&format!("old{i}"), 0, None)).await;
    }
    let read = storage
        .read_log("w", &partitions, 3, Duration::from_millis(50))
        .await
        .unwrap();
    // As older versions acknowledged (delete, then XACK), two of three,
    // the first still pending; then one more arrives.
    let applied: Vec<&str> = read[1..]
        .iter()
        .map(|e| e.position.entry.as_str())
        .collect();
    let _: usize = raw.xdel(&log, &applied).await.unwrap();
    let _: usize = raw.xack(&log, "workers", &applied).await.unwrap();
    accept(&storage, &event("old3", 0, None)).await;
    let groups: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(&log)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        groups[0].get("lag"),
        Some(&redis::Value::Nil),
        "Redis cannot tell the lag here"
    );
    assert_eq!(backlog_total(&storage).await, 2, "one pending, one new");
    let mut applied_after = Vec::new();
    for round in 0..10 {
        accept(&storage, &event(&format!("new{round}"), 0, None)).await;
        let read = storage
            .read_log("w", &partitions, 100, Duration::from_millis(50))
            .await
            .unwrap();
        applied_after.extend(read.iter().map(|e| e.event.key.fulfillment_ref.clone()));
        acknowledge(&storage, &read).await;
    }
    let expected: Vec<String> = ["old0", "old3"]
        .into_iter()
        .map(str::to_owned)
        .chain((0..10).map(|round| format!("new{round}")))
        .collect();
    assert_eq!(applied_after, expected, "every entry left applied once");
    assert_eq!(
        backlog_total(&storage).await,
        0,
        "countable again once the deletions are trimmed away"
    );
}

#[tokio::test]
async fn a_storage_opened_while_redis_is_down_serves_once_redis_is_up() {
    let mut redis = RedisServer::start(false);
    let settings = settings(&redis.url(), &[]);
    redis.stop();
    let storage = open(&settings).await;
    match storage.ping().await {
        Err(StorageError::Unavailable(message)) => {
            assert!(message.contains("storage.redis_url"), "{message}")
        }
        other => panic!("ping with Redis down: {other:?}"),
    }
    assert!(matches!(
        storage.claim_and_append(&event("f1", 0, None)).await,
        Err(StorageError::Unavailable(_))
    ));
    redis.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while storage.ping().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "never connected once Redis was up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    accept(&storage, &event("f1", 0, None)).await;
    let partitions = storage
        .lease_partitions("w", Duration::from_secs(10))
        .await
        .unwrap();
    let read = storage
        .read_log("w", &partitions, 10, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(read.len(), 1, "the consumer groups were made on connecting");
}

#[tokio::test]
async fn a_running_storage_fails_fast_while_redis_is_down_and_recovers() {
    let mut redis = RedisServer::start(true);
    let storage = open(&settings(&redis.url(), &[])).await;
    accept(&storage, &event("f1", 0, None)).await;
    redis.stop();
    let started = std::time::Instant::now();
    assert!(matches!(
        storage.claim_and_append(&event("f1", 1, None)).await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    redis.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while storage.ping().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    accept(&storage, &event("f1", 2, None)).await;
    assert_eq!(backlog_total(&storage).await, 2, "the durable log survived");
}

#[tokio::test]
async fn reads_fill_their_batch_from_busy_and_quiet_partitions_alike_in_order() {
    let storage = small_storage().await;
    let partitions = storage
        .lease_partitions("w", Duration::from_secs(10))
        .await
        .unwrap();
    // One busy fulfillment and seven quiet ones, spread over the partitions.
    let quiet = ["f2", "f3", "f4", "f5", "f6", "f7", "f8"];
    let mut events: Vec<CanonicalEvent> = (0..12).map(|minute| event("f1", minute, None)).collect();
    events.extend(quiet.iter().map(|f| event(f, 0, None)));
    for e in &events {
        accept(&storage, e).await;
    }
    let mut read: Vec<LogEntry> = Vec::new();
    loop {
        let batch = storage
            .read_log("w", &partitions, 5, Duration::from_millis(50))
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        let waiting = events.len() - read.len();
        assert_eq!(
            batch.len(),
            waiting.min(5),
            "a batch is full while entries wait"
        );
        acknowledge(&storage, &batch).await;
        read.extend(batch);
    }
    for f in ["f1"].iter().chain(&quiet) {
        let of = |e: &&CanonicalEvent| e.key.fulfillment_ref == *f;
        let got: Vec<&CanonicalEvent> = read.iter().map(|e| &e.event).filter(of).collect();
        let sent: Vec<&CanonicalEvent> = events.iter().filter(of).collect();
        assert_eq!(
            event_ids(&got),
            event_ids(&sent),
            "fulfillment {f}: once each, in order"
        );
    }
}
