//! Talking to the app as each provider does: the test stores' credentials,
//! real-shaped samples, real signatures, and request builders for
//! Shopify's webhooks and REST API, Carriyo's webhooks and order endpoint,
//! and the Redo-style API.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::app::TestApp;

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
/// The acme store's AfterShip webhook secret.
pub const AFTERSHIP_SECRET: &str = "aftership-test-secret";
/// The acme store's EasyPost webhook secret.
pub const EASYPOST_SECRET: &str = "easypost-test-secret";

/// A sample payload from `providers/<provider>/samples/<name>.json`.
pub fn sample(provider: &str, name: &str) -> Value {
    let path = format!(
        "{}/providers/{provider}/samples/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// HMAC-SHA256 of `body` keyed with `key`, as every signing sender
/// computes it.
pub fn hmac_sha256(key: &[u8], body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
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

/// A Shopify webhook delivery to the gateway at `address`, with a real
/// signature; sending it may fail (fault tests kill gateways).
pub fn shopify_request(
    client: &reqwest::Client,
    address: &str,
    delivery: &ShopifyDelivery<'_>,
) -> reqwest::RequestBuilder {
    let mut request = client
        .post(format!("{address}/webhooks/shopify"))
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
    request
}

/// A Shopify `fulfillment_events/create` body from the sample, for
/// fulfillment `fulfillment`, event `id`, with `status` at `happened_at`.
pub fn shopify_event_body(fulfillment: u64, id: u64, status: &str, happened_at: &str) -> Value {
    let mut body = sample("shopify", "fulfillment_event_create");
    body["id"] = serde_json::json!(id);
    body["fulfillment_id"] = serde_json::json!(fulfillment);
    body["status"] = serde_json::json!(status);
    body["happened_at"] = serde_json::json!(happened_at);
    body
}

impl TestApp {
    /// Posts a Shopify webhook delivery with a real signature.
    pub async fn post_shopify(&self, delivery: &ShopifyDelivery<'_>) -> reqwest::Response {
        shopify_request(&self.client, &self.address, delivery)
            .send()
            .await
            .expect("request sent")
    }
}

/// One Carriyo request, as Carriyo sends it: the shipment with its headers.
pub struct CarriyoDelivery {
    pub body: Vec<u8>,
    /// `event-id`, the same on every retry of one webhook.
    pub event_id: Option<String>,
    /// `trigger`: the status, or a metadata trigger.
    pub trigger: String,
    pub api_key: Option<&'static str>,
    pub tenant_id: Option<&'static str>,
    pub content_type: &'static str,
}

impl CarriyoDelivery {
    /// A webhook delivery of `shipment` for the acme store: a fresh
    /// event-id, the status as trigger, no tenant-id header.
    pub fn webhook(shipment: &Value) -> Self {
        Self {
            body: serde_json::to_vec(shipment).expect("json"),
            event_id: Some(format!("evt-{}", uuid::Uuid::now_v7())),
            trigger: shipment["post_shipping_info"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            api_key: Some(CARRIYO_KEY),
            tenant_id: None,
            content_type: "application/json",
        }
    }

    /// A call to the order endpoint with `shipment`, for the acme store.
    pub fn status_update(shipment: &Value) -> Self {
        Self {
            event_id: None,
            tenant_id: Some(CARRIYO_TENANT),
            ..Self::webhook(shipment)
        }
    }
}

impl TestApp {
    async fn post_carriyo(&self, path: &str, delivery: &CarriyoDelivery) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(path))
            .header("Content-Type", delivery.content_type)
            .header("trigger", &delivery.trigger)
            .header("webhook-id", "ACCOUNT_w1234-5678-abcd")
            .body(delivery.body.clone());
        if let Some(event_id) = &delivery.event_id {
            request = request.header("event-id", event_id);
        }
        if let Some(key) = delivery.api_key {
            request = request.header("x-api-key", key);
        }
        if let Some(tenant) = delivery.tenant_id {
            request = request.header("tenant-id", tenant);
        }
        request.send().await.expect("request sent")
    }

    /// Posts a Carriyo shipment webhook.
    pub async fn post_carriyo_webhook(&self, delivery: &CarriyoDelivery) -> reqwest::Response {
        self.post_carriyo("/webhooks/carriyo", delivery).await
    }

    /// Posts to Carriyo's order endpoint, `/orders/shipment-status-update`.
    pub async fn post_carriyo_status_update(
        &self,
        delivery: &CarriyoDelivery,
    ) -> reqwest::Response {
        self.post_carriyo("/orders/shipment-status-update", delivery)
            .await
    }
}

/// The Shopify REST API version the tests call.
pub const SHOPIFY_API_VERSION: &str = "2025-10";

/// The Shopify REST path of a fulfillment's events.
pub fn shopify_events_path(order: &str, fulfillment: &str) -> String {
    format!(
        "/admin/api/{SHOPIFY_API_VERSION}/orders/{order}/fulfillments/{fulfillment}/events.json"
    )
}

/// The Shopify REST path of one event of a fulfillment.
pub fn shopify_event_path(order: &str, fulfillment: &str, event: &str) -> String {
    format!(
        "/admin/api/{SHOPIFY_API_VERSION}/orders/{order}/fulfillments/{fulfillment}/events/{event}.json"
    )
}

impl TestApp {
    /// A Shopify REST request carrying `token` as its access token, or none.
    pub fn shopify_rest(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let request = self.client.request(method, self.url(path));
        match token {
            Some(token) => request.header("X-Shopify-Access-Token", token),
            None => request,
        }
    }
}

/// A path under the Redo-style base of store `store_id`.
pub fn redo_path(store_id: &str, path: &str) -> String {
    format!("/v2.2/stores/{store_id}{path}")
}

impl TestApp {
    /// A Redo-style request to the acme store, with its bearer token.
    pub fn redo(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(&redo_path(REDO_STORE_ID, path)))
            .bearer_auth(REDO_TOKEN)
    }

    /// POSTs `body` as JSON to a Redo-style path of the acme store.
    pub async fn redo_post(&self, path: &str, body: &Value) -> (u16, Value) {
        Self::send_for_json(self.redo(reqwest::Method::POST, path).json(body)).await
    }

    /// GETs a Redo-style path of the acme store.
    pub async fn redo_get(&self, path: &str) -> (u16, Value) {
        Self::send_for_json(self.redo(reqwest::Method::GET, path)).await
    }
}
