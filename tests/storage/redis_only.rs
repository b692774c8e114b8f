//! What only the Redis backend has to prove: on one throwaway Redis, that
//! a failed append claims nothing, the log's trimming, a log or group that
//! Redis lost, a log an older version deleted from, and reconnecting; on
//! Redis and on a Cluster (`#[apply(redis_backends)]`), where it does
//! differently from the memory backend: applies that read no history, and
//! fair shares of the partitions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rstest_reuse::apply;

use crate::fixtures::*;
use crate::helpers::redis_server::{shared_redis_url, RedisServer};
use crate::helpers::*;

/// A raw connection to the binary's shared Redis, to look at keys or
/// break them.
async fn raw_connection() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(shared_redis_url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

/// The key of partition `partition`'s log under `settings`' prefix.
fn log_key(settings: &Settings, partition: u32) -> String {
    format!("{0}:{{{0}:p{partition}}}:log", settings.storage.key_prefix)
}

/// A storage of 4 partitions on the shared Redis whose log for `e` is a
/// plain string, so that appending to it fails; with a connection of its
/// own to mend it and that log's key.
async fn storage_whose_log_breaks(
    e: &CanonicalEvent,
) -> (Arc<dyn Storage>, redis::aio::MultiplexedConnection, String) {
    use redis::AsyncCommands;
    let settings = redis_settings(
        &shared_redis_url(),
        &[("SHIPGATE__STORAGE__PARTITIONS", "4")],
    );
    let storage = open(&settings).await;
    let log = log_key(&settings, e.key.partition(4));
    let mut raw = raw_connection().await;
    let () = raw.del(&log).await.unwrap();
    let () = raw.set(&log, "not a stream").await.unwrap();
    (storage, raw, log)
}

/// One partition whose feed holds three events, leased to worker "w",
/// and a raw connection to look at its log.
struct OneSmallFeed {
    storage: Arc<dyn Storage>,
    partitions: Vec<u32>,
    raw: redis::aio::MultiplexedConnection,
    log: String,
}

async fn one_small_feed() -> OneSmallFeed {
    let store = crate::helpers::redis_env(&shared_redis_url());
    let (settings, storage, partitions) = one_partition_feed_of_three(store).await;
    OneSmallFeed {
        storage,
        partitions,
        raw: raw_connection().await,
        log: log_key(&settings, 0),
    }
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
    assert_eq!(
        storage.orders_of_fulfillment("acme", "f1").await.unwrap(),
        ["1001"],
        "and its order under its reference"
    );
}

#[tokio::test]
async fn the_feed_shows_the_newest_up_to_its_cap_and_applied_entries_are_trimmed() {
    use redis::AsyncCommands;
    let OneSmallFeed {
        storage,
        partitions,
        mut raw,
        log,
    } = one_small_feed().await;
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
async fn applied_entries_are_acknowledged_even_if_redis_lost_the_log_and_its_group() {
    use redis::AsyncCommands;
    let OneSmallFeed {
        storage,
        partitions,
        mut raw,
        log,
    } = one_small_feed().await;
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
    } = one_small_feed().await;
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
    let settings = redis_settings(&redis.url(), &[]);
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
    let deadline = std::time::Instant::now() + PATIENCE;
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
    let storage = open(&redis_settings(&redis.url(), &[])).await;
    accept(&storage, &event("f1", 0, None)).await;
    redis.stop();
    // It answers rather than waiting for Redis to come back, which here
    // would be never; the bound leaves room for a busy machine.
    let started = std::time::Instant::now();
    assert!(matches!(
        storage.claim_and_append(&event("f1", 1, None)).await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    redis.restart();
    let deadline = std::time::Instant::now() + PATIENCE;
    while storage.ping().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    accept(&storage, &event("f1", 2, None)).await;
    assert_eq!(backlog_total(&storage).await, 2, "the durable log survived");
}

// The memory backend hands an apply the whole fulfillment, history and
// all; Redis saves the round trip with a summary.
#[apply(redis_backends)]
#[tokio::test]
async fn an_apply_reads_no_history_and_writes_only_its_own_entry(backend: Backend) {
    let storage = small_storage(backend).await;
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

// The memory backend serves one process, whose one worker holds every
// partition; Redis shares them out among a deployment's workers.
#[apply(redis_backends)]
#[tokio::test]
async fn a_second_worker_gets_a_fair_share_and_no_partition_has_two_holders(backend: Backend) {
    let storage = small_storage(backend).await;
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
async fn a_rate_limit_bucket_is_one_key_that_expires_once_full_again() {
    use redis::AsyncCommands;
    let settings = redis_settings(&shared_redis_url(), &[]);
    let storage = open(&settings).await;
    let limit = RateLimit {
        rate: 5.0,
        interval: Duration::from_millis(200),
        burst: 2,
    };
    for _ in 0..2 {
        let admitted = storage
            .take_token("acme", Provider::Carriyo, &limit)
            .await
            .unwrap();
        assert_eq!(admitted, Admission::Admitted);
    }
    let prefix = &settings.storage.key_prefix;
    let bucket = format!(r#"{prefix}:{{{prefix}:limit:["acme","carriyo"]}}"#);
    let mut raw = raw_connection().await;
    let ttl: i64 = raw.pttl(&bucket).await.unwrap();
    assert!((1..=401).contains(&ttl), "the bucket's PTTL is {ttl}");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while raw.exists::<_, bool>(&bucket).await.unwrap() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bucket never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
