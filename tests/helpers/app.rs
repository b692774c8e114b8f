//! The application under test: the backends it runs on, its test
//! configuration, `spawn_app` and [`TestApp`], a running app with a client.

use std::path::Path;
use std::time::Duration;

use rstest_reuse::{self, template};
use serde_json::Value;
use shipgate::app::Application;
use shipgate::config::Settings;
use tokio_util::sync::CancellationToken;

use super::providers::*;
use super::redis_server::{shared_cluster, shared_redis_url};
use super::PATIENCE;

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Where an app (or a storage) keeps its data. Every black-box test and
/// every storage contract test runs once on each, through [`backends`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded backend.
    Memory,
    /// A throwaway redis-server started once per test binary, or
    /// `REDIS_URL` when set.
    Redis,
    /// A throwaway three-node Redis Cluster started once per test binary.
    RedisCluster,
}

impl Backend {
    /// Settings that put an app on this backend: on Redis, the binary's
    /// shared Redis (or Cluster) under a key prefix of the app's own, so
    /// that tests never see each other's data.
    pub fn env(self) -> Vec<(String, String)> {
        match self {
            Backend::Memory => Vec::new(),
            Backend::Redis => redis_env(&shared_redis_url()),
            Backend::RedisCluster => cluster_env(&shared_cluster().url()),
        }
    }
}

/// The backends a test runs on: `#[apply(backends)]` over a test taking
/// `backend: Backend` makes one test per backend, named after it
/// (`some_test::case_2_redis`).
#[template]
#[rstest::rstest]
#[case::memory(Backend::Memory)]
#[case::redis(Backend::Redis)]
#[case::cluster(Backend::RedisCluster)]
pub fn backends(#[case] backend: Backend) {}

/// Settings for the Redis backend at `url`, under a fresh key prefix.
pub fn redis_env(url: &str) -> Vec<(String, String)> {
    vec![
        ("SHIPGATE__STORAGE__BACKEND".into(), "redis".into()),
        ("SHIPGATE__STORAGE__REDIS_URL".into(), url.into()),
        (
            "SHIPGATE__STORAGE__KEY_PREFIX".into(),
            format!("test-{}", uuid::Uuid::now_v7().simple()),
        ),
    ]
}

/// Settings for the Redis backend on the Cluster whose nodes `urls` names.
pub fn cluster_env(urls: &str) -> Vec<(String, String)> {
    let mut env = redis_env(urls);
    env.push(("SHIPGATE__STORAGE__REDIS_CLUSTER".into(), "true".into()));
    env
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
        (
            "SHIPGATE__STORES__ACME__PROVIDERS__AFTERSHIP__SECRETS",
            AFTERSHIP_SECRET,
        ),
        (
            "SHIPGATE__STORES__ACME__PROVIDERS__EASYPOST__SECRETS",
            EASYPOST_SECRET,
        ),
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

/// A running application and a client for it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Starts the app on `backend` with the test environment.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// Starts the app on `backend` with the test environment plus `extra`
/// settings.
pub async fn spawn_app_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    start(backend, None, extra).await
}

/// Starts the app on `backend` with the test environment, `config` (TOML,
/// for what the environment cannot say, such as `[[automations]]`)
/// layered over the defaults, and `extra` settings.
pub async fn spawn_app_with_config(
    backend: Backend,
    config: &str,
    extra: &[(&str, &str)],
) -> TestApp {
    let file = write_config(config);
    start(backend, Some(&file), extra).await
}

/// Writes `config` to a fresh file for the app to layer over the defaults.
fn write_config(config: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("shipgate-test-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("a directory for the test config");
    let file = dir.join("test.toml");
    std::fs::write(&file, config).expect("the test config is written");
    file
}

/// Starts the app on `backend` with `config` (TOML) declaring its own
/// `[[admin.tokens]]`, and `extra` settings: the test environment's admin
/// token is left out, as a list in the environment would replace them.
pub async fn spawn_app_with_tokens(
    backend: Backend,
    config: &str,
    extra: &[(&str, &str)],
) -> TestApp {
    let file = write_config(config);
    let env = test_env()
        .into_iter()
        .filter(|(k, _)| k != "SHIPGATE__ADMIN__TOKENS")
        .collect();
    start_with(env, backend, Some(&file), extra).await
}

async fn start(backend: Backend, config: Option<&Path>, extra: &[(&str, &str)]) -> TestApp {
    start_with(test_env(), backend, config, extra).await
}

async fn start_with(
    mut env: Vec<(String, String)>,
    backend: Backend,
    config: Option<&Path>,
    extra: &[(&str, &str)],
) -> TestApp {
    env.extend(backend.env());
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let settings = Settings::load_with_env(config, env).expect("test settings load");
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

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// GET with the admin token; answers status and JSON body.
    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        Self::send_for_json(self.client.get(self.url(path)).bearer_auth(ADMIN_TOKEN)).await
    }

    /// POST with the admin token; answers status and JSON body.
    pub async fn admin_post(&self, path: &str) -> (u16, Value) {
        Self::send_for_json(self.client.post(self.url(path)).bearer_auth(ADMIN_TOKEN)).await
    }

    /// Sends a request; answers its status and JSON body (`Null` if none).
    pub async fn send_for_json(request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("request sent");
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
    /// asynchronous); panics with the last state seen after [`PATIENCE`].
    pub async fn wait_for_fulfillment(
        &self,
        (store, order, fulfillment): (&str, &str, &str),
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
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
        let deadline = tokio::time::Instant::now() + PATIENCE;
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
