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
    env.extend(backend_env());
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

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Posts a Shopify webhook delivery with a real signature.
    pub async fn post_shopify(&self, delivery: &ShopifyDelivery<'_>) -> reqwest::Response {
        shopify_request(&self.client, &self.address, delivery)
            .send()
            .await
            .expect("request sent")
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

    /// Sends a request; answers its status and JSON body (`Null` if none).
    pub async fn send_for_json(request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
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

/// Where a test binary's apps keep their data: each binary running the
/// suite names one as its `BACKEND`.
#[allow(dead_code)] // each binary uses one
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuiteStore {
    Memory,
    Redis,
    RedisCluster,
}

/// Settings that put an app on this test binary's backend
/// (`crate::BACKEND`). On Redis: the binary's shared Redis (or Cluster),
/// under a key prefix of the app's own so that tests never see each
/// other's data.
pub fn backend_env() -> Vec<(String, String)> {
    match crate::BACKEND {
        SuiteStore::Memory => Vec::new(),
        SuiteStore::Redis => redis_env(&shared_redis_url()),
        SuiteStore::RedisCluster => cluster_env(&shared_cluster().url()),
    }
}

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

/// A throwaway three-node Redis Cluster started once for this test binary,
/// which dies with it.
pub fn shared_cluster() -> &'static RedisCluster {
    static SHARED: std::sync::OnceLock<RedisCluster> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| RedisCluster::start(false))
}

/// A Redis Cluster of three primaries, each a [`RedisServer`] of the
/// test's own owning a third of the hash slots.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the nodes (`durable` as for [`RedisServer::start`]), gives
    /// each its slots, joins them and waits until every node sees the
    /// whole Cluster up.
    pub fn start(durable: bool) -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::start_cluster_node(durable))
            .collect();
        let ranges = [(0, 5460), (5461, 10922), (10923, 16383)];
        for (node, (first, last)) in nodes.iter().zip(ranges) {
            node.query::<()>(
                redis::cmd("CLUSTER")
                    .arg("ADDSLOTSRANGE")
                    .arg(first)
                    .arg(last),
            );
        }
        for other in &nodes[1..] {
            nodes[0].query::<()>(
                redis::cmd("CLUSTER")
                    .arg("MEET")
                    .arg("127.0.0.1")
                    .arg(other.port),
            );
        }
        let cluster = Self { nodes };
        cluster.wait_until_up();
        cluster
    }

    /// Waits until every node sees all three nodes and every slot served
    /// (at start, and after a node's restart); panics after 20 s.
    pub fn wait_until_up(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        for node in &self.nodes {
            loop {
                let info: String = node.query(redis::cmd("CLUSTER").arg("INFO"));
                if info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3") {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the test Redis Cluster did not come up: node {} says {info}",
                    node.url()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Every node's URL, comma-separated, as `storage.redis_url` takes
    /// them for a Cluster.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `REDIS_URL` when set; else a throwaway redis-server started once for
/// this test binary, which dies with it.
pub fn shared_redis_url() -> String {
    static SHARED: std::sync::OnceLock<(String, Option<RedisServer>)> = std::sync::OnceLock::new();
    let (url, _server) = SHARED.get_or_init(|| match std::env::var("REDIS_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let server = RedisServer::start(false);
            (server.url(), Some(server))
        }
    });
    url.clone()
}

/// A redis-server of the test's own on a free loopback port. It dies with
/// the test process, files and all (a shell watchdog sees to it even when
/// the test aborts); a test may stop and restart it to play an outage.
pub struct RedisServer {
    port: u16,
    dir: std::path::PathBuf,
    /// Every write fsynced to an append-only file, so a restart loses
    /// nothing; otherwise nothing is saved at all.
    durable: bool,
    /// A node of a Redis Cluster, with its cluster state in `dir`.
    cluster: bool,
    watchdog: Option<std::process::Child>,
}

impl RedisServer {
    /// Starts one; panics, saying how to get one, when redis-server is
    /// not installed.
    pub fn start(durable: bool) -> Self {
        Self::start_with(durable, false)
    }

    /// Starts a node for a [`RedisCluster`], owning no slots yet.
    pub fn start_cluster_node(durable: bool) -> Self {
        Self::start_with(durable, true)
    }

    fn start_with(durable: bool, cluster: bool) -> Self {
        if let Err(e) = std::process::Command::new("redis-server")
            .arg("--version")
            .output()
        {
            panic!(
                "the Redis tests need redis-server ({e}): install it (apt-get install redis-server) \
                 or set REDIS_URL to a Redis the tests may write to"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("shipgate-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let mut server = Self {
            port,
            dir,
            durable,
            cluster,
            watchdog: None,
        };
        server.launch();
        server
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server as an operator would (SHUTDOWN: a durable one
    /// flushes its file first) and waits until it is gone.
    #[allow(dead_code)] // for tests/redis_backend, which shares this file
    pub fn stop(&mut self) {
        self.shutdown("SHUTDOWN");
    }

    /// Starts the server again on the same port, with the same files.
    #[allow(dead_code)] // for tests/redis_backend, which shares this file
    pub fn restart(&mut self) {
        self.launch();
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(self.dir.join("redis.log")).expect("a redis log file");
        let mut args = vec![
            "--port".to_owned(),
            self.port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            self.dir.display().to_string(),
            "--save".into(),
            String::new(),
        ];
        if self.cluster {
            args.extend(["--cluster-enabled".into(), "yes".into()]);
            args.extend(["--cluster-config-file".into(), "nodes.conf".into()]);
        }
        if self.durable {
            args.extend(["--appendonly", "yes", "--appendfsync", "always"].map(String::from));
        } else {
            args.extend(["--appendonly", "no"].map(String::from));
        }
        let watchdog = std::process::Command::new("sh")
            .arg("-c")
            .arg(
                r#"redis-server "$@" & server=$!
while kill -0 "$WATCHED" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 0.2; done
if ! kill -0 "$WATCHED" 2>/dev/null; then
  kill "$server" 2>/dev/null; wait "$server"; rm -rf "$DIR"
fi"#,
            )
            .arg("redis-watchdog")
            .args(&args)
            .env("WATCHED", std::process::id().to_string())
            .env("DIR", &self.dir)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("a redis log file"))
            .stderr(log)
            .spawn()
            .expect("sh starts redis-server");
        self.watchdog = Some(watchdog);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.command("PING").as_deref() != Some("+PONG") {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server on port {} did not start; see {}",
                self.port,
                self.dir.join("redis.log").display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn shutdown(&mut self, command: &str) {
        let _ = self.command(command);
        if let Some(mut watchdog) = self.watchdog.take() {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while matches!(watchdog.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Runs `command` and answers its reply; panics when the server does
    /// not answer, naming the server.
    fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> T {
        let answer = redis::Client::open(self.url())
            .and_then(|client| client.get_connection())
            .and_then(|mut connection| command.query(&mut connection));
        answer.unwrap_or_else(|e| panic!("redis-server {}: {e}", self.url()))
    }

    /// Sends one inline command; the first line of the answer, if any.
    fn command(&self, line: &str) -> Option<String> {
        use std::io::{BufRead, BufReader, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream.write_all(format!("{line}\r\n").as_bytes()).ok()?;
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer).ok()?;
        Some(answer.trim_end().to_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.shutdown("SHUTDOWN NOSAVE");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts the app with the test environment, `config` (TOML, for what the
/// environment cannot say, such as `[[automations]]`) layered over the
/// defaults, and `extra` settings.
pub async fn spawn_app_with_config(config: &str, extra: &[(&str, &str)]) -> TestApp {
    let dir = std::env::temp_dir().join(format!("shipgate-test-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("a directory for the test config");
    let file = dir.join("test.toml");
    std::fs::write(&file, config).expect("the test config is written");
    let mut env = test_env();
    env.extend(backend_env());
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let settings = Settings::load_with_env(Some(&file), env).expect("test settings load");
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
    /// POST with the admin token; answers status and JSON body.
    pub async fn admin_post(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// The words of what a receiver got, in order.
pub fn triggers(received: &[Received]) -> Vec<String> {
    received.iter().map(|r| r.trigger().to_owned()).collect()
}

/// How a [`Receiver`] answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Status(u16),
    /// A status with `Retry-After: <seconds>`.
    RetryAfter(u16, u64),
    /// 200, after this long: a slow receiver, or one that never answers
    /// in time.
    After(Duration),
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: String,
    pub json: Value,
    pub at: std::time::Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn trigger(&self) -> &str {
        self.json["trigger"].as_str().unwrap_or("")
    }

    pub fn fulfillment(&self) -> &str {
        self.json["fulfillment"]["id"].as_str().unwrap_or("")
    }
}

#[derive(Default)]
struct Inbox {
    received: std::sync::Mutex<Vec<Received>>,
    /// Answers for the next requests, in order; then `usual`.
    script: std::sync::Mutex<std::collections::VecDeque<Answer>>,
    usual: std::sync::Mutex<Option<Answer>>,
    /// Fulfillments whose deliveries are always answered 500.
    failing: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// An automation subscriber on 127.0.0.1 that records what it gets and
/// answers as a test tells it.
pub struct Receiver {
    pub port: u16,
    inbox: actix_web::web::Data<Inbox>,
    server: actix_web::dev::ServerHandle,
}

impl Receiver {
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    pub async fn start_on(port: u16) -> Self {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("a receiver port");
        let port = listener.local_addr().expect("an address").port();
        let inbox = actix_web::web::Data::new(Inbox::default());
        let data = inbox.clone();
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(data.clone())
                .default_service(actix_web::web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("the receiver listens")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            port,
            inbox,
            server: handle,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    pub fn answer_next(&self, answers: &[Answer]) {
        self.inbox.script.lock().unwrap().extend(answers);
    }

    pub fn answer_usually(&self, answer: Answer) {
        *self.inbox.usual.lock().unwrap() = Some(answer);
    }

    pub fn fail_fulfillment(&self, fulfillment: &str) {
        self.inbox
            .failing
            .lock()
            .unwrap()
            .insert(fulfillment.to_owned());
    }

    pub fn received(&self) -> Vec<Received> {
        self.inbox.received.lock().unwrap().clone()
    }

    /// Waits until `n` requests came; panics with what came after 10 s.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "expected {n} requests, got {}: {:?}",
                received.len(),
                received.iter().map(Received::trigger).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn stop(self) {
        self.server.stop(false).await;
    }
}

async fn receive(
    inbox: actix_web::web::Data<Inbox>,
    req: actix_web::HttpRequest,
    body: actix_web::web::Bytes,
) -> actix_web::HttpResponse {
    let body = String::from_utf8_lossy(&body).into_owned();
    let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let fulfillment = json["fulfillment"]["id"].as_str().unwrap_or("").to_owned();
    inbox.received.lock().unwrap().push(Received {
        path: req.path().to_owned(),
        headers,
        body,
        json,
        at: std::time::Instant::now(),
    });
    let answer = if inbox.failing.lock().unwrap().contains(&fulfillment) {
        Answer::Status(500)
    } else {
        let scripted = inbox.script.lock().unwrap().pop_front();
        scripted
            .or(*inbox.usual.lock().unwrap())
            .unwrap_or(Answer::Status(200))
    };
    let status = |code| actix_web::http::StatusCode::from_u16(code).expect("a status code");
    match answer {
        Answer::Status(code) => {
            actix_web::HttpResponse::build(status(code)).body("receiver says so")
        }
        Answer::RetryAfter(code, seconds) => actix_web::HttpResponse::build(status(code))
            .insert_header(("Retry-After", seconds.to_string()))
            .finish(),
        Answer::After(delay) => {
            tokio::time::sleep(delay).await;
            actix_web::HttpResponse::Ok().finish()
        }
    }
}

/// One scrape of `/metrics`: every sample by name and labels.
pub struct Scrape(pub std::collections::BTreeMap<String, f64>);

impl Scrape {
    pub async fn of(app: &TestApp) -> Self {
        let response = app.client.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        let text = response.text().await.unwrap();
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').unwrap();
                (series.to_owned(), value.parse::<f64>().unwrap())
            })
            .collect();
        Self(samples)
    }

    /// The value of `name` with exactly `labels` (in any order), 0 if absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        wanted.sort();
        self.0
            .iter()
            .find(|(series, _)| {
                let Some(rest) = series.strip_prefix(name) else {
                    return false;
                };
                let mut have: Vec<String> = rest
                    .trim_start_matches('{')
                    .trim_end_matches('}')
                    .split(',')
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect();
                have.sort();
                (rest.is_empty() || rest.starts_with('{')) && have == wanted
            })
            .map_or(0.0, |(_, v)| *v)
    }
}
