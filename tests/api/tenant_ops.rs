//! Ops tokens scoped to stores and roles (`[[admin.tokens]]`): with two
//! stores holding data, a token for one of them sees that store only on
//! every ops route, as if the other did not exist (404, never 403), and
//! only `operate` may replay.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use rstest_reuse::apply;

use crate::helpers::*;

const READER: &str = "test-acme-reader";
const OPERATOR: &str = "test-acme-operator";
const TRACKING: &str = "44012345678";

/// The tenants' app: the suite's admin token on every store, a `read`
/// token for acme from a file, an `operate` token for acme given by its
/// SHA-256, and automation rules whose receiver is down, so every
/// in-transit update ends as a dead letter.
async fn tenants_app(backend: Backend) -> TestApp {
    let receiver = Receiver::start().await;
    let url = receiver.url();
    receiver.stop().await;
    let dir = std::env::temp_dir().join(format!("shipgate-tokens-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let reader_file = dir.join("reader");
    std::fs::write(&reader_file, format!("{READER}\n")).unwrap();
    let operator_sha256 = hex::encode(Sha256::digest(OPERATOR));
    let config = format!(
        r#"
[[admin.tokens]]
token = "{ADMIN_TOKEN}"
stores = "*"
role = "admin"

[[admin.tokens]]
token = {{ file = "{reader}" }}
stores = ["acme"]
role = "read"

[[admin.tokens]]
token_sha256 = "{operator_sha256}"
stores = ["acme"]
role = "operate"

[[automations]]
name = "down"
on = ["in_transit"]
url = "{url}"

[[automations]]
name = "both-named"
on = ["delivered"]
stores = ["acme", "beta"]
url = "{url}"

[[automations]]
name = "beta-only"
on = ["delivered"]
stores = ["beta"]
url = "{url}"
"#,
        reader = reader_file.display(),
    );
    spawn_app_with_tokens(
        backend,
        &config,
        &[
            ("SHIPGATE__DELIVERY__ALLOW_PRIVATE_TARGETS", "true"),
            ("SHIPGATE__DELIVERY__RETRY_SCHEDULE", "50ms"),
        ],
    )
    .await
}

/// A Shopify fulfillment event for `shop`'s store, signed with `secret`.
async fn post_shopify_event(
    app: &TestApp,
    (shop, secret): (&'static str, &'static str),
    fulfillment: u64,
    id: u64,
    status: &str,
) {
    let body = shopify_event_body(fulfillment, id, status, "2026-11-21T08:00:00Z");
    let delivery = ShopifyDelivery {
        shop,
        secret,
        ..ShopifyDelivery::new("fulfillment_events/create", &body)
    };
    assert_eq!(app.post_shopify(&delivery).await.status(), 200);
}

const ACME: (&str, &str) = (SHOP, SHOPIFY_SECRET);
const BETA: (&str, &str) = (OTHER_SHOP, OTHER_SHOPIFY_SECRET);

/// The same Carriyo shipment (same tracking number) for acme and for
/// beta, each with its own key.
async fn post_carriyo_to_both(app: &TestApp) {
    let mut shipment = sample("carriyo", "shipment_in_transit");
    for (tenant, key) in [
        (CARRIYO_TENANT, CARRIYO_KEY),
        (OTHER_CARRIYO_TENANT, OTHER_CARRIYO_KEY),
    ] {
        shipment["tenant"] = json!(tenant);
        let delivery = CarriyoDelivery {
            api_key: Some(key),
            ..CarriyoDelivery::webhook(&shipment)
        };
        assert_eq!(app.post_carriyo_webhook(&delivery).await.status(), 200);
    }
}

impl TestApp {
    /// GET with `token`; answers status and JSON body.
    async fn get_as(&self, token: &str, path: &str) -> (u16, Value) {
        Self::send_for_json(self.client.get(self.url(path)).bearer_auth(token)).await
    }

    /// POST with `token`; answers status and JSON body.
    async fn post_as(&self, token: &str, path: &str) -> (u16, Value) {
        Self::send_for_json(self.client.post(self.url(path)).bearer_auth(token)).await
    }

    /// Waits until the admin sees `n` dead letters passing `query`.
    async fn dead_letters_eventually(&self, query: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (_, body) = self
                .admin_get(&format!("/api/v1/dead-letters{query}"))
                .await;
            let letters = body["dead_letters"].as_array().cloned().unwrap_or_default();
            if letters.len() == n {
                return letters;
            }
            assert!(Instant::now() < deadline, "dead letters: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The stores named by a listing's entries at `pointer`.
fn stores_of(entries: &Value, pointer: &str) -> BTreeSet<String> {
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[apply(backends)]
#[tokio::test]
async fn a_store_token_reads_its_fulfillments_and_events_only(backend: Backend) {
    let app = tenants_app(backend).await;
    post_shopify_event(&app, ACME, 8001, 1, "in_transit").await;
    post_shopify_event(&app, BETA, 8002, 2, "in_transit").await;
    post_carriyo_to_both(&app).await;
    app.wait_until_applied().await;
    for token in [READER, OPERATOR] {
        let (status, body) = app
            .get_as(
                token,
                "/api/v1/stores/acme/orders/450789469/fulfillments/8001",
            )
            .await;
        assert_eq!(status, 200, "{body}");
        // Beta's fulfillment exists (the admin reads it), yet it is as
        // absent as one that never was: 404 with the same words.
        let beta = "/api/v1/stores/beta/orders/450789469/fulfillments/8002";
        assert_eq!(app.admin_get(beta).await.0, 200);
        let (status, hidden) = app.get_as(token, beta).await;
        assert_eq!(status, 404, "{hidden}");
        let (_, never) = app
            .get_as(
                token,
                "/api/v1/stores/beta/orders/450789469/fulfillments/9999",
            )
            .await;
        let words = |v: &Value| v["error"].as_str().unwrap().replace("8002", "9999");
        assert_eq!(words(&hidden), words(&never));

        let (status, events) = app.get_as(token, "/api/v1/events").await;
        assert_eq!(status, 200, "{events}");
        assert_eq!(events["events"].as_array().unwrap().len(), 2, "{events}");
        assert_eq!(
            stores_of(&events["events"], "/key/store"),
            BTreeSet::from(["acme".to_owned()])
        );
        let (_, asked) = app.get_as(token, "/api/v1/events?store=beta").await;
        assert_eq!(asked["events"], json!([]));

        let lookup = format!("/api/v1/fulfillments?trackingNumber={TRACKING}");
        let (status, found) = app.get_as(token, &lookup).await;
        assert_eq!(status, 200, "{found}");
        assert_eq!(
            stores_of(&found["fulfillments"], "/store"),
            BTreeSet::from(["acme".to_owned()])
        );
    }
    let (_, all) = app.admin_get("/api/v1/events").await;
    assert_eq!(all["events"].as_array().unwrap().len(), 4, "{all}");
    let (_, found) = app
        .admin_get(&format!("/api/v1/fulfillments?trackingNumber={TRACKING}"))
        .await;
    assert_eq!(
        stores_of(&found["fulfillments"], "/store"),
        BTreeSet::from(["acme".to_owned(), "beta".to_owned()])
    );
    let (status, _) = app.get_as("not-a-token", "/api/v1/events").await;
    assert_eq!(status, 401);
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn stats_timeline_and_unmapped_words_count_the_tokens_stores(backend: Backend) {
    let app = tenants_app(backend).await;
    post_shopify_event(&app, ACME, 8101, 1, "acme_word").await;
    post_shopify_event(&app, ACME, 8102, 2, "acme_word").await;
    post_shopify_event(&app, BETA, 8103, 3, "beta_word").await;
    // A refusal belongs to no proven store: the admin's counts only.
    let forged = ShopifyDelivery {
        secret: "not-the-secret",
        ..ShopifyDelivery::new(
            "fulfillment_events/create",
            &shopify_event_body(8101, 4, "in_transit", "2026-11-21T08:00:00Z"),
        )
    };
    assert_eq!(app.post_shopify(&forged).await.status(), 401);
    app.wait_until_applied().await;

    let (status, stats) = app.get_as(READER, "/api/v1/stats").await;
    assert_eq!(status, 200, "{stats}");
    let shopify = &stats["providers"]["shopify"];
    assert_eq!(shopify["accepted"], 2, "{stats}");
    assert_eq!(shopify["unmapped"], 2, "{stats}");
    assert_eq!(shopify["unauthorized"], 0, "{stats}");
    let admin = app.stats("shopify").await;
    assert_eq!(admin["accepted"], 3, "{admin}");
    assert_eq!(admin["unauthorized"], 1, "{admin}");

    let (status, timeline) = app.get_as(READER, "/api/v1/stats/timeline").await;
    assert_eq!(status, 200, "{timeline}");
    let total = |timeline: &Value, outcome: &str| -> u64 {
        timeline["minutes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["providers"]["shopify"][outcome].as_u64().unwrap())
            .sum()
    };
    assert_eq!(total(&timeline, "accepted"), 2, "{timeline}");
    assert_eq!(total(&timeline, "unauthorized"), 0, "{timeline}");
    let (_, everything) = app.admin_get("/api/v1/stats/timeline").await;
    assert_eq!(total(&everything, "accepted"), 3, "{everything}");
    assert_eq!(total(&everything, "unauthorized"), 1, "{everything}");

    let (status, words) = app.get_as(READER, "/api/v1/unmapped").await;
    assert_eq!(status, 200, "{words}");
    assert_eq!(
        words["unmapped"],
        json!([{"provider": "shopify", "word": "acme_word", "count": 2}])
    );
    let (_, all_words) = app.admin_get("/api/v1/unmapped").await;
    assert_eq!(all_words["unmapped"].as_array().unwrap().len(), 2);

    // The backlog is the workers' lag, shared by every store.
    let (status, backlog) = app.get_as(READER, "/api/v1/backlog").await;
    assert_eq!(status, 200, "{backlog}");
    assert_eq!(backlog["total"], 0);
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn automations_deliveries_and_dead_letters_are_cut_to_the_tokens_stores(backend: Backend) {
    let app = tenants_app(backend).await;
    post_shopify_event(&app, ACME, 8201, 1, "in_transit").await;
    post_shopify_event(&app, BETA, 8202, 2, "in_transit").await;
    app.dead_letters_eventually("", 2).await;

    let (status, rules) = app.get_as(READER, "/api/v1/automations").await;
    assert_eq!(status, 200, "{rules}");
    let seen: Vec<(String, Value)> = rules["automations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_owned(), r["stores"].clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("down".to_owned(), json!([])),
            ("both-named".to_owned(), json!(["acme"])),
        ]
    );

    for path in ["/api/v1/deliveries", "/api/v1/dead-letters"] {
        let (status, body) = app.get_as(READER, path).await;
        assert_eq!(status, 200, "{body}");
        let listed = body
            .as_object()
            .and_then(|o| o.values().next())
            .cloned()
            .unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 1, "{path}: {body}");
        assert_eq!(listed[0]["fulfillment"], "8201", "{path}: {body}");
        let (_, asked) = app.get_as(READER, &format!("{path}?store=beta")).await;
        assert_eq!(asked.as_object().unwrap().values().next(), Some(&json!([])));
    }
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn only_operate_replays_and_only_its_stores_dead_letters(backend: Backend) {
    let app = tenants_app(backend).await;
    post_shopify_event(&app, ACME, 8301, 1, "in_transit").await;
    post_shopify_event(&app, ACME, 8302, 2, "in_transit").await;
    post_shopify_event(&app, BETA, 8303, 3, "in_transit").await;
    let letters = app.dead_letters_eventually("", 3).await;
    let id_of = |fulfillment: &str| -> String {
        letters
            .iter()
            .find(|l| l["fulfillment"] == fulfillment)
            .map(|l| l["id"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let (acme_first, beta) = (id_of("8301"), id_of("8303"));

    // A read token sees its store's letter, so 403 tells it nothing new.
    let one = format!("/api/v1/dead-letters/{acme_first}/replay");
    let (status, body) = app.post_as(READER, &one).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("read"), "{body}");
    let (status, body) = app.post_as(READER, "/api/v1/dead-letters/replay").await;
    assert_eq!(status, 403, "{body}");

    // Beta's letter is unknown to acme's operator, as a made-up id is.
    let (status, hidden) = app
        .post_as(OPERATOR, &format!("/api/v1/dead-letters/{beta}/replay"))
        .await;
    assert_eq!(status, 404, "{hidden}");
    let (_, never) = app
        .post_as(OPERATOR, "/api/v1/dead-letters/msg_nope/replay")
        .await;
    assert_eq!(
        hidden["error"].as_str().unwrap().replace(&beta, "msg_nope"),
        never["error"].as_str().unwrap()
    );
    // Even a read token's answer for beta's letter is 404, not 403.
    let (status, _) = app
        .post_as(READER, &format!("/api/v1/dead-letters/{beta}/replay"))
        .await;
    assert_eq!(status, 404);

    let (status, body) = app.post_as(OPERATOR, &one).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replayed"]["id"], acme_first.as_str());
    let (status, bulk) = app.post_as(OPERATOR, "/api/v1/dead-letters/replay").await;
    assert_eq!(status, 200, "{bulk}");
    // The letter replayed above may be dead again already (its receiver
    // is still down); beta's is never among them.
    let ids: Vec<&str> = bulk["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    let acme_second = id_of("8302");
    assert!(ids.contains(&acme_second.as_str()), "{bulk}");
    assert!(
        ids.iter()
            .all(|id| [acme_first.as_str(), acme_second.as_str()].contains(id)),
        "{bulk}"
    );
    // Beta's letter was left as it was: dead, after its one retry.
    let (_, still) = app.admin_get("/api/v1/dead-letters?store=beta").await;
    let still = &still["dead_letters"][0];
    assert_eq!(still["id"], beta.as_str());
    assert_eq!(still["attempts"].as_array().unwrap().len(), 2, "{still}");
    app.stop().await;
}
