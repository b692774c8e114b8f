//! The storage contract, on every backend: claims and their dedup,
//! compare-and-set, orders, leases and their fair shares, reclaiming a
//! dead worker's entries, reading and acknowledging the log, the merged
//! read views, stats and the outbox, through the `Storage` trait.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use rstest_reuse::apply;

use crate::fixtures::*;
use crate::helpers::redis_server::RedisServer;
use crate::helpers::*;

#[apply(backends)]
#[tokio::test]
async fn a_claim_is_taken_once_by_delivery_id_or_by_content(backend: Backend) {
    let storage = small_storage(backend).await;
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

/// `event` with a pairing: `mark` written once it is appended, `watch`
/// making it a duplicate of whichever event marked one of them.
fn paired(mut event: CanonicalEvent, mark: &str, watch: &[&str]) -> CanonicalEvent {
    event.dedup_key.pairing = Pairing {
        mark: Some(mark.into()),
        watch: watch.iter().map(|w| w.to_string()).collect(),
    };
    event
}

#[apply(backends)]
#[tokio::test]
async fn a_pairing_mark_makes_a_watcher_a_duplicate_but_two_markers_are_both_kept(
    backend: Backend,
) {
    let storage = small_storage(backend).await;
    let event_side = paired(event("f1", 0, Some("e1")), "pair:e:m", &["pair:u:m"]);
    accept(&storage, &event_side).await;
    // Another event of the same side marks the same key: not a duplicate.
    accept(
        &storage,
        &paired(event("f1", 1, Some("e2")), "pair:e:m", &["pair:u:m"]),
    )
    .await;
    let update_side = paired(event("f1", 2, Some("u1")), "pair:u:m", &["pair:e:m"]);
    assert!(
        matches!(
            storage.claim_and_append(&update_side).await.unwrap(),
            Claim::Duplicate { .. }
        ),
        "the update side watches the event side's mark"
    );
    // The duplicate claimed and marked nothing: its delivery id is free,
    // and nothing watching its mark is refused.
    accept(&storage, &event("f1", 3, Some("u1"))).await;
    accept(
        &storage,
        &paired(event("f1", 4, Some("e3")), "pair:e:n", &["pair:u:m"]),
    )
    .await;
    // Marks are per fulfillment.
    accept(
        &storage,
        &paired(event("f2", 2, Some("u1")), "pair:u:m", &["pair:e:m"]),
    )
    .await;
    assert_eq!(backlog_total(&storage).await, 5);
}

#[apply(backends)]
#[tokio::test]
async fn dedup_keys_expire_after_the_dedup_ttl(backend: Backend) {
    let storage = storage_on(backend, &[("SHIPGATE__STORAGE__DEDUP_TTL", "300ms")]).await;
    let first = event("f1", 0, Some("d1"));
    accept(&storage, &first).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    accept(&storage, &event("f1", 0, Some("d1"))).await;
    assert_eq!(backlog_total(&storage).await, 2);
}

#[apply(backends)]
#[tokio::test]
async fn unmapped_words_are_counted_with_the_claim_across_partitions(backend: Backend) {
    let storage = small_storage(backend).await;
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

#[apply(backends)]
#[tokio::test]
async fn refused_requests_are_counted_beside_the_claims(backend: Backend) {
    let storage = small_storage(backend).await;
    let mut refused = Stats::new();
    refused
        .entry(Provider::Carriyo)
        .or_default()
        .insert(Outcome::Unauthorized, 3);
    refused
        .entry(Provider::Redo)
        .or_default()
        .insert(Outcome::Limited, 2);
    storage.count_refusals(&refused).await.unwrap();
    storage.count_refusals(&refused).await.unwrap();
    storage.count_refusals(&Stats::new()).await.unwrap();
    accept(&storage, &event("f1", 0, None)).await;
    let stats = storage.stats().await.unwrap();
    assert_eq!(stats[&Provider::Carriyo][&Outcome::Unauthorized], 6);
    assert_eq!(stats[&Provider::Redo][&Outcome::Limited], 4);
    assert_eq!(stats[&Provider::Shopify][&Outcome::Accepted], 1);
}

#[apply(backends)]
#[tokio::test]
async fn counts_words_and_the_feed_are_kept_by_store_too(backend: Backend) {
    let storage = small_storage(backend).await;
    let beta = |fulfillment: &str, minute| {
        let mut e = event(fulfillment, minute, None);
        e.key.store = "beta".into();
        e
    };
    accept(&storage, &event("f1", 0, None)).await;
    let mut unmapped = beta("f2", 0);
    unmapped.kind = EventKind::Unmapped;
    unmapped.raw_status = "teleported".into();
    accept(&storage, &unmapped).await;
    let again = beta("f3", 1);
    accept(&storage, &again).await;
    assert!(matches!(
        storage.claim_and_append(&again).await.unwrap(),
        Claim::Duplicate { .. }
    ));
    let refused = Stats::from([(
        Provider::Shopify,
        std::collections::BTreeMap::from([(Outcome::Unauthorized, 1)]),
    )]);
    storage.count_refusals(&refused).await.unwrap();
    let only =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|s| s.to_string()).collect() };
    let acme = storage.store_stats(&only(&["acme"])).await.unwrap();
    assert_eq!(
        acme[&Provider::Shopify],
        std::collections::BTreeMap::from([(Outcome::Accepted, 1)])
    );
    let beta_counts = storage.store_stats(&only(&["beta"])).await.unwrap();
    assert_eq!(
        beta_counts[&Provider::Shopify],
        std::collections::BTreeMap::from([
            (Outcome::Accepted, 2),
            (Outcome::Duplicate, 1),
            (Outcome::Unmapped, 1)
        ])
    );
    let both = storage.store_stats(&only(&["acme", "beta"])).await.unwrap();
    assert_eq!(both[&Provider::Shopify][&Outcome::Accepted], 3);
    assert!(
        !both[&Provider::Shopify].contains_key(&Outcome::Unauthorized),
        "a refusal belongs to no store"
    );
    let words = storage
        .store_unmapped_words(&only(&["beta"]))
        .await
        .unwrap();
    assert_eq!(
        words
            .iter()
            .map(|w| (w.word.as_str(), w.count))
            .collect::<Vec<_>>(),
        [("teleported", 1)]
    );
    assert!(storage
        .store_unmapped_words(&only(&["acme"]))
        .await
        .unwrap()
        .is_empty());
    let recent = storage
        .recent_events(&EventFilter {
            scope: Some(only(&["acme"])),
            limit: 10,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        recent
            .iter()
            .map(|e| e.key.store.as_str())
            .collect::<Vec<_>>(),
        ["acme"]
    );
}

#[apply(backends)]
#[tokio::test]
async fn a_bucket_admits_its_burst_then_refuses_until_a_token_comes_back(backend: Backend) {
    let storage = small_storage(backend).await;
    // A token every 50 ms: the refusal says when the next one comes.
    let limit = RateLimit {
        rate: 20.0,
        interval: Duration::from_millis(50),
        burst: 3,
    };
    let take = |store: &'static str, provider| {
        let storage = storage.clone();
        async move { storage.take_token(store, provider, &limit).await.unwrap() }
    };
    for _ in 0..3 {
        assert_eq!(take("acme", Provider::Shopify).await, Admission::Admitted);
    }
    let Admission::Limited { retry_after } = take("acme", Provider::Shopify).await else {
        panic!("the fourth request of a burst of 3 was admitted");
    };
    assert!(
        !retry_after.is_zero() && retry_after <= limit.interval,
        "{retry_after:?}"
    );
    // Another provider of the store, and another store, have buckets of
    // their own.
    assert_eq!(take("acme", Provider::Carriyo).await, Admission::Admitted);
    assert_eq!(take("beta", Provider::Shopify).await, Admission::Admitted);
    // A refusal takes nothing: the bucket refills at its rate.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while take("acme", Provider::Shopify).await != Admission::Admitted {
        assert!(tokio::time::Instant::now() < deadline, "no token came back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[apply(backends)]
#[tokio::test]
async fn a_slow_bucket_stays_empty_between_requests(backend: Backend) {
    let storage = small_storage(backend).await;
    let limit = RateLimit {
        rate: 1.0 / 3600.0,
        interval: Duration::from_secs(3600),
        burst: 1,
    };
    let take = || storage.take_token("acme", Provider::Redo, &limit);
    assert_eq!(take().await.unwrap(), Admission::Admitted);
    for _ in 0..3 {
        let Admission::Limited { retry_after } = take().await.unwrap() else {
            panic!("a bucket of one admitted a second request within the hour");
        };
        assert!(retry_after > Duration::from_secs(3500), "{retry_after:?}");
    }
}

#[apply(backends)]
#[tokio::test]
async fn compare_and_set_refuses_a_version_that_moved_on(backend: Backend) {
    let storage = small_storage(backend).await;
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

#[apply(backends)]
#[tokio::test]
async fn a_claim_and_its_write_go_together_and_a_duplicate_writes_nothing(backend: Backend) {
    let storage = small_storage(backend).await;
    let now = Utc::now();
    let created = create(&storage, "f1", now).await;
    // The write fires a delivery, whose keys come before the claim's.
    let first = event("f1", 10, Some("d1"));
    let (value, change) = applied(&created, &first);
    let delivery = pending_delivery(key("f1"), now);
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

#[apply(backends)]
#[tokio::test]
async fn a_batch_of_compare_and_sets_writes_those_whose_version_held(backend: Backend) {
    // On Redis, a server of its own that forgets its scripts (as after a
    // restart, or SCRIPT FLUSH) before the batch, which must load them and
    // go again; the flush would pull the scripts from under other tests.
    let own_redis = (backend == Backend::Redis).then(|| RedisServer::start(false));
    let partitions_4 = [("SHIPGATE__STORAGE__PARTITIONS", "4")];
    let storage = match &own_redis {
        Some(redis) => open(&redis_settings(&redis.url(), &partitions_4)).await,
        None => storage_on(backend, &partitions_4).await,
    };
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
    if let Some(redis) = &own_redis {
        let client = redis::Client::open(redis.url()).unwrap();
        let mut raw = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async::<()>(&mut raw)
            .await
            .unwrap();
    }
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
    let delivery = pending_delivery(key("f3"), now);
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

#[apply(backends)]
#[tokio::test]
async fn an_orders_fulfillments_are_listed_by_reference(backend: Backend) {
    let storage = small_storage(backend).await;
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

#[apply(backends)]
#[tokio::test]
async fn a_fulfillment_reference_lists_its_orders_within_its_store(backend: Backend) {
    let storage = small_storage(backend).await;
    for (store, order) in [("acme", "2002"), ("acme", "1001"), ("beta", "3003")] {
        let created = Fulfillment::new(
            FulfillmentKey {
                store: store.into(),
                order_ref: order.into(),
                fulfillment_ref: "f1".into(),
            },
            Utc::now(),
        );
        assert!(storage
            .compare_and_set_fulfillment(None, &created)
            .await
            .unwrap());
    }
    create(&storage, "f2", Utc::now()).await;
    let orders = |fulfillment: &'static str| {
        let storage = storage.clone();
        async move {
            storage
                .orders_of_fulfillment("acme", fulfillment)
                .await
                .unwrap()
        }
    };
    assert_eq!(orders("f1").await, ["1001", "2002"]);
    assert_eq!(orders("f2").await, ["1001"]);
    assert!(orders("f9").await.is_empty());
}

#[apply(backends)]
#[tokio::test]
async fn an_order_is_found_by_either_id_and_neither_id_is_taken_twice(backend: Backend) {
    let storage = small_storage(backend).await;
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

#[apply(backends)]
#[tokio::test]
async fn an_order_is_deleted_under_both_ids_once_and_may_be_created_again(backend: Backend) {
    let storage = small_storage(backend).await;
    let order = Order {
        store: "acme".into(),
        id: "ord_1".into(),
        external_id: "R-1".into(),
        created_at: Utc::now(),
        body: serde_json::json!({"orderId": "R-1"}),
    };
    assert!(storage.create_order(&order).await.unwrap());
    assert_eq!(storage.delete_order("beta", "R-1").await.unwrap(), None);
    assert_eq!(
        storage.delete_order("acme", "R-1").await.unwrap(),
        Some(order.clone())
    );
    for id in ["ord_1", "R-1"] {
        assert_eq!(storage.order("acme", id).await.unwrap(), None);
        assert_eq!(storage.delete_order("acme", id).await.unwrap(), None);
    }
    let again = Order {
        id: "ord_2".into(),
        ..order.clone()
    };
    assert!(storage.create_order(&again).await.unwrap());
    assert_eq!(
        storage.delete_order("acme", "ord_2").await.unwrap(),
        Some(again)
    );
    assert_eq!(storage.order("acme", "R-1").await.unwrap(), None);
}

#[apply(backends)]
#[tokio::test]
async fn a_dead_workers_partitions_are_taken_once_its_lease_expires(backend: Backend) {
    let storage = small_storage(backend).await;
    // Long enough that the heir's first try always comes within it.
    let short = Duration::from_secs(2);
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
    assert_eq!(lease_all(&storage, "heir", 4).await, [0, 1, 2, 3]);
}

#[apply(backends)]
#[tokio::test]
async fn released_partitions_are_taken_at_once(backend: Backend) {
    let storage = small_storage(backend).await;
    let ttl = Duration::from_secs(10);
    assert_eq!(storage.lease_partitions("a", ttl).await.unwrap().len(), 4);
    storage.release_partitions("a").await.unwrap();
    assert_eq!(
        storage.lease_partitions("b", ttl).await.unwrap(),
        [0, 1, 2, 3]
    );
}

#[apply(backends)]
#[tokio::test]
async fn entries_a_dead_worker_never_acknowledged_are_read_again_in_order(backend: Backend) {
    let storage = small_storage(backend).await;
    let wait = Duration::from_millis(50);
    let partitions = storage
        .lease_partitions("dying", Duration::from_secs(2))
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
    let partitions = lease_all(&storage, "heir", 4).await;
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

#[apply(backends)]
#[tokio::test]
async fn an_idle_read_waits_for_new_entries_then_returns_them(backend: Backend) {
    let storage = small_storage(backend).await;
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

#[apply(backends)]
#[tokio::test]
async fn recent_events_merge_every_partition_newest_first(backend: Backend) {
    let storage = small_storage(backend).await;
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

#[apply(backends)]
#[tokio::test]
async fn trimming_the_log_never_drops_an_entry_still_pending(backend: Backend) {
    let (_, storage, partitions) = one_partition_feed_of_three(backend.env()).await;
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

#[apply(backends)]
#[tokio::test]
async fn reads_fill_their_batch_from_busy_and_quiet_partitions_alike_in_order(backend: Backend) {
    let storage = small_storage(backend).await;
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

#[apply(backends)]
#[tokio::test]
async fn the_outbox_is_written_only_with_its_state_and_delivered_messages_are_forgotten(
    backend: Backend,
) {
    let storage = storage_on(backend, &[]).await;
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

/// A delivery id is a duplicate only for its own fulfillment: the scope a
/// claim can take atomically with the append on a Cluster, kept by every
/// backend.
#[apply(backends)]
#[tokio::test]
async fn a_delivery_id_is_a_duplicate_only_for_its_own_fulfillment(backend: Backend) {
    let storage = small_storage(backend).await;
    let first = event("f1", 0, Some("d1"));
    accept(&storage, &first).await;
    accept(&storage, &event("f2", 0, Some("d1"))).await;
    let again = storage
        .claim_and_append(&event("f1", 1, Some("d1")))
        .await
        .expect("claimed");
    assert_eq!(again, Claim::Duplicate { original: first.id });
    assert_eq!(backlog_total(&storage).await, 2);
}
