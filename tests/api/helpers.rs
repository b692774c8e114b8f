//! `spawn_app()` and what tests need to talk to the app as providers do:
//! real-shaped samples, real signatures.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use shipgate::app::Application;
use shipgate::config::Settings;
use tokio_util::sync::CancellationToken;

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const SHOP: &str = "acme.myshopify.com";
pub const SHOPIFY_SECRET: &str = "test-shopify-secret";
pub const SHOPIFY_OLD_SECRET: &str = "test-shopify-old-secret";
pub const SHOPIFY_ACCESS_TOKEN: &str = "test-shopify-access-token";
pub const CARRIYO_TENANT: &str = "ACME";
pub const CARRIYO_KEY: &str = "test-carriyo-key";
pub const REDO_STORE_ID: &str = "64e5a8a1af49a89df37e4ee7";
pub const REDO_TOKEN: &str = "test-redo-token";
/// A second store, to check that one store's credentials do not open another's.
pub const OTHER_SHOP: &str = "beta.myshopify.com";
pub const OTHER_SHOPIFY_SECRET: &str = "test-beta-shopify-secret";
pub const OTHER_SHOPIFY_ACCESS_TOKEN: &str = "test-beta-access-token";
pub const OTHER_CARRIYO_TENANT: &str = "BETA";
pub const OTHER_CARRIYO_KEY: &str = "test-beta-carriyo-key";
pub const OTHER_REDO_STORE_ID: &str = "75f6b9b2bf5ab9aef48f5ff8";
pub const OTHER_REDO_TOKEN: &str = "test-beta-redo-token";

/// A running application and a client for it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The environment every test app gets: port 0, test credentials, two stores.
pub fn test_env() -> Vec<(String, String)> {
    let pairs = [
        ("SHIPGATE__SERVER__PORT", "0"),
        ("SHIPGATE__ADMIN__TOKENS", ADMIN_TOKEN),
        (
            "SHIPGATE__STORES__ACME__SHOPIFY__WEBHOOK_SECRETS",
            &format!("{SHOPIFY_SECRET},{SHOPIFY_OLD_SECRET}"),
        ),
        (
            "SHIPGATE__STORES__ACME__SHOPIFY__ACCESS_TOKENS",
            SHOPIFY_ACCESS_TOKEN,
        ),
        ("SHIPGATE__STORES__ACME__CARRIYO__API_KEYS", CARRIYO_KEY),
        ("SHIPGATE__STORES__ACME__REDO__API_TOKENS", REDO_TOKEN),
        ("SHIPGATE__STORES__BETA__SHOPIFY__SHOP_DOMAIN", OTHER_SHOP),
        (
            "SHIPGATE__STORES__BETA__SHOPIFY__WEBHOOK_SECRETS",
            OTHER_SHOPIFY_SECRET,
        ),
        (
            "SHIPGATE__STORES__BETA__SHOPIFY__ACCESS_TOKENS",
            OTHER_SHOPIFY_ACCESS_TOKEN,
        ),
        (
            "SHIPGATE__STORES__BETA__CARRIYO__TENANT_ID",
            OTHER_CARRIYO_TENANT,
        ),
        (
            "SHIPGATE__STORES__BETA__CARRIYO__API_KEYS",
            OTHER_CARRIYO_KEY,
        ),
        (
            "SHIPGATE__STORES__BETA__REDO__STORE_ID",
            OTHER_REDO_STORE_ID,
        ),
        ("SHIPGATE__STORES__BETA__REDO__API_TOKENS", OTHER_REDO_TOKEN),
        ("SHIPGATE__TELEMETRY__FILTER", "warn"),
    ];
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Starts the app with the test environment.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the app with the test environment plus `extra` settings.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let mut env = test_env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let settings = Settings::load_with_env(None, env).expect("test settings load");
    shipgate::telemetry::init(&settings.telemetry);
    let app = Application::build(settings).await.expect("the app starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        shutdown,
        server,
    }
}

/// A sample payload from `providers/<provider>/samples/<name>.json`.
pub fn sample(provider: &str, name: &str) -> Value {
    let path = format!(
        "{}/providers/{provider}/samples/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Shopify's signature: base64 of HMAC-SHA256 of the raw body.
pub fn shopify_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// One Shopify webhook delivery, as Shopify sends it.
pub struct ShopifyDelivery<'a> {
    pub topic: &'a str,
    pub body: Vec<u8>,
    pub event_id: Option<String>,
    pub shop: &'a str,
    pub secret: &'a str,
}

impl<'a> ShopifyDelivery<'a> {
    /// A delivery of `body` on `topic`, signed for the acme store.
    pub fn new(topic: &'a str, body: &Value) -> Self {
        Self {
            topic,
            body: serde_json::to_vec(body).expect("json"),
            event_id: Some(format!("evt-{}", uuid::Uuid::now_v7())),
            shop: SHOP,
            secret: SHOPIFY_SECRET,
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Posts a Shopify webhook delivery with a real signature.
    pub async fn post_shopify(&self, delivery: &ShopifyDelivery<'_>) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url("/webhooks/shopify"))
            .header("Content-Type", "application/json")
            .header(
                "X-Shopify-Hmac-Sha256",
                shopify_signature(delivery.secret, &delivery.body),
            )
            .header("X-Shopify-Topic", delivery.topic)
            .header("X-Shopify-Shop-Domain", delivery.shop)
            .header("X-Shopify-API-Version", "2025-10")
            .header("X-Shopify-Webhook-Id", uuid::Uuid::now_v7().to_string())
            .header("X-Shopify-Triggered-At", "2026-11-21T15:00:00Z")
            .body(delivery.body.clone());
        if let Some(event_id) = &delivery.event_id {
            request = request.header("X-Shopify-Event-Id", event_id);
        }
        request.send().await.expect("request sent")
    }

    /// GET with the admin token; answers status and JSON body.
    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A fulfillment through the ops API, or `None` if it is not known.
    pub async fn fulfillment(&self, store: &str, order: &str, fulfillment: &str) -> Option<Value> {
        let (status, body) = self
            .admin_get(&format!(
                "/api/v1/stores/{store}/orders/{order}/fulfillments/{fulfillment}"
            ))
            .await;
        match status {
            200 => Some(body),
            404 => None,
            other => panic!("unexpected {other} reading a fulfillment: {body}"),
        }
    }

    /// Waits until the fulfillment satisfies `done` (applies are
    /// asynchronous); panics with the last state seen after 10 s.
    pub async fn wait_for_fulfillment(
        &self,
        (store, order, fulfillment): (&str, &str, &str),
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let current = self.fulfillment(store, order, fulfillment).await;
            if let Some(f) = current.as_ref().filter(|f| done(f)) {
                return f.clone();
            }
            if tokio::time::Instant::now() > deadline {
                panic!("fulfillment {store}/{order}/{fulfillment} never got there; last seen: {current:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every event accepted so far is applied: the log drains.
    pub async fn wait_until_applied(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (_, stats) = self.admin_get("/api/v1/backlog").await;
            if stats["total"] == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the log never drained: {stats}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// This provider's counters from `/api/v1/stats`.
    pub async fn stats(&self, provider: &str) -> Value {
        let (status, body) = self.admin_get("/api/v1/stats").await;
        assert_eq!(status, 200, "{body}");
        body["providers"][provider].clone()
    }

    /// The statuses of a fulfillment's history, in order.
    pub fn history_words(fulfillment: &Value) -> Vec<String> {
        fulfillment["trackingHistory"]
            .as_array()
            .map(|h| {
                h.iter()
                    .map(|e| e["status"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stops the app gracefully and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
    }
}
