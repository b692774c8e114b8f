//! Per-store ingest limits (`[stores.NAME.limits]`): each store's burst
//! per provider, then 429 with `Retry-After` in the provider's own error
//! shape and nothing recorded; other stores untouched; one bucket shared
//! by every gateway on one Redis; Redis down is 503, never a pass; and
//! refusals counted without a storage write each.

use std::time::Duration;

use reqwest::Response;
use serde_json::{json, Value};

use rstest_reuse::apply;

use crate::helpers::redis_server::{shared_cluster, shared_redis_url, RedisServer};
use crate::helpers::*;

const SHOPIFY_ORDER: &str = "450789469";
const CARRIYO_ORDER: &str = "ORD-1001";
const REDO_ORDER: &str = "R-2001";
const REDO_FULFILLMENT: &str = "F-2001-1";

/// A burst of 3 and then one token every 1000 s: nothing refills while a
/// test runs. Store beta gets a burst of 1 of its own.
const LIMITS: [(&str, &str); 4] = [
    ("SHIPGATE__STORES__ACME__LIMITS__RATE", "0.001"),
    ("SHIPGATE__STORES__ACME__LIMITS__BURST", "3"),
    ("SHIPGATE__STORES__BETA__LIMITS__RATE", "0.001"),
    ("SHIPGATE__STORES__BETA__LIMITS__BURST", "1"),
];

fn shopify_delivery(fulfillment: u64) -> ShopifyDelivery<'static> {
    let body = shopify_event_body(
        fulfillment,
        fulfillment,
        "in_transit",
        "2026-11-21T10:00:00Z",
    );
    ShopifyDelivery::new("fulfillment_events/create", &body)
}

fn carriyo_delivery(shipment: &str) -> CarriyoDelivery {
    let mut body = sample("carriyo", "shipment_in_transit");
    body["references"]["partner_shipment_reference"] = json!(shipment);
    CarriyoDelivery::webhook(&body)
}

/// The answer's `Retry-After` in seconds; panics unless it is one.
fn retry_after(response: &Response) -> u64 {
    let header = response
        .headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("a {} without Retry-After", response.status()));
    header.to_str().unwrap().parse().unwrap()
}

/// A 429 with a Retry-After that tells the sender to wait for the next
/// token (1000 s away), and its body.
async fn limited(response: Response) -> Value {
    assert_eq!(response.status(), 429);
    let wait = retry_after(&response);
    assert!((990..=1000).contains(&wait), "Retry-After: {wait}");
    response.json().await.unwrap()
}

/// Waits until `/api/v1/stats` counts `n` refusals `outcome` of `provider`
/// (the counts reach storage in batches).
async fn wait_for_count(app: &TestApp, provider: &str, outcome: &str, n: u64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let stats = app.stats(provider).await;
        if stats[outcome] == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{provider} {outcome} never reached {n}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[apply(backends)]
#[tokio::test]
async fn each_provider_gets_the_burst_then_429_in_its_own_shape_and_nothing_is_recorded(
    backend: Backend,
) {
    let app = spawn_app_with(backend, &LIMITS).await;

    // Shopify: three webhooks, then a fourth refused.
    for fulfillment in 1001..=1003 {
        let response = app.post_shopify(&shopify_delivery(fulfillment)).await;
        assert_eq!(response.status(), 200, "delivery {fulfillment}");
    }
    let body = limited(app.post_shopify(&shopify_delivery(1004)).await).await;
    let message = body["errors"]
        .as_str()
        .expect("Shopify's {\"errors\": \"…\"}");
    assert!(
        message.contains("stores.acme.limits: 0.001 requests a second, burst 3")
            && message.contains("nothing was recorded"),
        "{message}"
    );

    // Carriyo: its bucket is the store's own, not Shopify's.
    for shipment in ["LIM-1", "LIM-2", "LIM-3"] {
        let response = app.post_carriyo_webhook(&carriyo_delivery(shipment)).await;
        assert_eq!(response.status(), 200, "shipment {shipment}");
    }
    let body = limited(app.post_carriyo_webhook(&carriyo_delivery("LIM-4")).await).await;
    assert_eq!(body["status"], "429", "Carriyo's error shape: {body}");
    assert!(body["timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with("+00:00")));
    let errors = body["errors"].as_array().expect("Carriyo's errors list");
    assert!(errors[0].as_str().unwrap().contains("stores.acme.limits"));

    // Redo: every authenticated call takes a token.
    let (status, _) = app
        .redo_post("/orders", &sample("redo", "create_order"))
        .await;
    assert_eq!(status, 200);
    let fulfillments = format!("/orders/{REDO_ORDER}/fulfillments");
    let (status, _) = app
        .redo_post(&fulfillments, &sample("redo", "create_fulfillment"))
        .await;
    assert_eq!(status, 200);
    let shipment_status = format!("{fulfillments}/{REDO_FULFILLMENT}/shipment-status");
    let (status, _) = app
        .redo_post(&shipment_status, &sample("redo", "shipment_status"))
        .await;
    assert_eq!(status, 200);
    let response = app
        .redo(reqwest::Method::POST, &shipment_status)
        .json(&sample("redo", "shipment_event"))
        .send()
        .await
        .unwrap();
    let body = limited(response).await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("stores.acme.limits"),
        "Redo's {{\"error\": \"…\"}}: {body}"
    );

    // Nothing refused was recorded; what was admitted was.
    app.wait_until_applied().await;
    for f in ["1001", "1002", "1003"] {
        assert!(app.fulfillment("acme", SHOPIFY_ORDER, f).await.is_some());
    }
    assert_eq!(app.fulfillment("acme", SHOPIFY_ORDER, "1004").await, None);
    assert!(app
        .fulfillment("acme", CARRIYO_ORDER, "LIM-3")
        .await
        .is_some());
    assert_eq!(app.fulfillment("acme", CARRIYO_ORDER, "LIM-4").await, None);
    let redo = app
        .fulfillment("acme", REDO_ORDER, REDO_FULFILLMENT)
        .await
        .expect("the Redo fulfillment");
    assert_eq!(
        TestApp::history_words(&redo),
        ["pre_transit", "in_transit"],
        "the refused `delayed` is not in the history"
    );

    // Counted as limited, in the stats and the metrics.
    for provider in ["shopify", "carriyo", "redo"] {
        wait_for_count(&app, provider, "limited", 1).await;
    }
    let scrape = Scrape::of(&app).await;
    for provider in ["shopify", "carriyo", "redo"] {
        let labels = [("provider", provider), ("outcome", "limited")];
        assert_eq!(
            scrape.value("shipgate_webhooks_received_total", &labels),
            1.0,
            "{provider}"
        );
    }
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn another_store_keeps_its_own_bucket(backend: Backend) {
    let app = spawn_app_with(backend, &LIMITS).await;
    for fulfillment in 2001..=2003 {
        let response = app.post_shopify(&shopify_delivery(fulfillment)).await;
        assert_eq!(response.status(), 200);
    }
    limited(app.post_shopify(&shopify_delivery(2004)).await).await;

    // Beta's burst of one is whole though acme's is spent, and then its own
    // is spent while acme's stays as it was.
    let mut beta = shopify_delivery(3001);
    (beta.shop, beta.secret) = (OTHER_SHOP, OTHER_SHOPIFY_SECRET);
    assert_eq!(app.post_shopify(&beta).await.status(), 200);
    let mut beta = shopify_delivery(3002);
    (beta.shop, beta.secret) = (OTHER_SHOP, OTHER_SHOPIFY_SECRET);
    let body = limited(app.post_shopify(&beta).await).await;
    assert!(body["errors"]
        .as_str()
        .unwrap()
        .contains("stores.beta.limits"));
    app.wait_for_fulfillment(("beta", SHOPIFY_ORDER, "3001"), |_| true)
        .await;

    // A store without limits is never refused.
    let app_without = spawn_app(backend).await;
    for fulfillment in 4001..=4010 {
        let response = app_without
            .post_shopify(&shopify_delivery(fulfillment))
            .await;
        assert_eq!(response.status(), 200);
    }
    app.stop().await;
    app_without.stop().await;
}

#[rstest::rstest]
#[case::redis(Backend::Redis)]
#[case::cluster(Backend::RedisCluster)]
#[tokio::test]
async fn two_gateways_on_one_redis_share_the_bucket(#[case] backend: Backend) {
    let url = match backend {
        Backend::Redis => shared_redis_url(),
        _ => shared_cluster().url(),
    };
    let mut env = match backend {
        Backend::Redis => redis_env(&url),
        _ => cluster_env(&url),
    };
    env.extend(LIMITS.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // Both on the memory default, then moved onto the same Redis and prefix.
    let first = spawn_app_with(Backend::Memory, &env).await;
    let second = spawn_app_with(Backend::Memory, &env).await;

    assert_eq!(
        first.post_shopify(&shopify_delivery(5001)).await.status(),
        200
    );
    assert_eq!(
        second.post_shopify(&shopify_delivery(5002)).await.status(),
        200
    );
    assert_eq!(
        first.post_shopify(&shopify_delivery(5003)).await.status(),
        200
    );
    // The burst of 3 is spent across both: each refuses the next.
    limited(second.post_shopify(&shopify_delivery(5004)).await).await;
    limited(first.post_shopify(&shopify_delivery(5005)).await).await;
    first.wait_until_applied().await;
    assert_eq!(first.fulfillment("acme", SHOPIFY_ORDER, "5004").await, None);
    assert_eq!(first.fulfillment("acme", SHOPIFY_ORDER, "5005").await, None);
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn redis_down_is_503_never_an_unlimited_pass() {
    let mut redis = RedisServer::start(false);
    let mut env = redis_env(&redis.url());
    env.extend(LIMITS.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with(Backend::Memory, &env).await;
    for fulfillment in 6001..=6003 {
        assert_eq!(
            app.post_shopify(&shopify_delivery(fulfillment))
                .await
                .status(),
            200
        );
    }
    limited(app.post_shopify(&shopify_delivery(6004)).await).await;

    redis.stop();
    let refused = app.post_shopify(&shopify_delivery(6005)).await;
    assert_eq!(refused.status(), 503);
    assert!(retry_after(&refused) >= 1);
    let body: Value = refused.json().await.unwrap();
    assert!(body["errors"].as_str().is_some(), "Shopify's shape: {body}");
    let response = app
        .redo(reqwest::Method::GET, &format!("/orders/{REDO_ORDER}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        503,
        "a Redo call is not let through either"
    );
    app.stop().await;
}

#[tokio::test]
async fn refusals_are_counted_without_a_storage_write_each() {
    let redis = RedisServer::start(false);
    let env = redis_env(&redis.url());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with(Backend::Memory, &env).await;

    const FLOOD: u64 = 60;
    for fulfillment in 0..FLOOD {
        let mut forged = shopify_delivery(7000 + fulfillment);
        forged.secret = "not-the-secret";
        assert_eq!(app.post_shopify(&forged).await.status(), 401);
    }
    // The gateway that refused them counts them at once; another on the
    // same Redis sees them once they are flushed.
    assert_eq!(app.stats("shopify").await["unauthorized"], FLOOD);
    let other = spawn_app_with(Backend::Memory, &env).await;
    wait_for_count(&other, "shopify", "unauthorized", FLOOD).await;

    // They reached the stats in a few batched writes, not one per request.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await
        .unwrap();
    let hincrby = info
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_hincrby:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse::<u64>().unwrap());
    assert!(
        (1..=FLOOD / 6).contains(&hincrby),
        "{hincrby} HINCRBY calls for {FLOOD} refusals:\n{info}"
    );
    app.stop().await;
    other.stop().await;
}
