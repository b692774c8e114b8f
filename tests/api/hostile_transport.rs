//! Hostile transport: senders that stall mid-body or keep connections
//! open, an environment proxy that would carry deliveries past the
//! private-target check, a storage that stalls past its command timeout,
//! and values meant to forge log lines. Requests here are written on raw
//! sockets where the test must control what is sent and when.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rstest_reuse::apply;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::helpers::redis_server::RedisServer;
use crate::helpers::*;

/// The port of an app's address.
fn port_of(app: &TestApp) -> u16 {
    app.address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the app's port")
}

/// Opens a connection and sends a POST's head with `headers` and a
/// `Content-Length` of `length`, then `sent` bytes of the body, and no more.
async fn stalled_post(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    length: usize,
    sent: usize,
) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the app accepts a connection");
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("head sent");
    let mut body = vec![b' '; sent];
    if let Some(first) = body.first_mut() {
        *first = b'{';
    }
    stream
        .write_all(&body)
        .await
        .expect("part of the body sent");
    stream
}

/// An answer read off a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Value,
}

/// Whether the server closes `stream` (within [`PATIENCE`]) once it has
/// answered on it, sending nothing more.
async fn is_closed(stream: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 1];
    matches!(
        tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// Reads one answer within [`PATIENCE`].
async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_string();
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if buffer.len() >= end + 4 + length {
                    let body = buffer[end + 4..end + 4 + length].to_vec();
                    return (head, body);
                }
            }
            let n = stream.read(&mut chunk).await.expect("the connection reads");
            assert!(n > 0, "closed without a whole answer: {buffer:?}");
            buffer.extend_from_slice(&chunk[..n]);
        }
    };
    let (head, body) = tokio::time::timeout(PATIENCE, read)
        .await
        .expect("an answer within the test's patience");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    Answer {
        status,
        head,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    }
}

#[apply(backends)]
#[tokio::test]
async fn a_body_that_stalls_is_answered_408_in_the_providers_shape_and_its_connection_closed(
    backend: Backend,
) {
    let app = spawn_app_with(backend, &[("SHIPGATE__SERVER__BODY_TIMEOUT", "1s")]).await;
    let port = port_of(&app);
    let started = Instant::now();
    let mut shopify = Vec::new();
    for _ in 0..5 {
        let headers = [
            ("X-Shopify-Shop-Domain", SHOP),
            ("X-Shopify-Topic", "fulfillment_events/create"),
            ("X-Shopify-Hmac-Sha256", "c2lnbmF0dXJl"),
        ];
        shopify.push(stalled_post(port, "/webhooks/shopify", &headers, 200_000, 150_000).await);
    }
    let headers = [("x-api-key", CARRIYO_KEY), ("tenant-id", CARRIYO_TENANT)];
    let mut carriyo = stalled_post(port, "/webhooks/carriyo", &headers, 2_000, 10).await;
    for stream in &mut shopify {
        let answer = read_answer(stream).await;
        assert_eq!(answer.status, 408, "{answer:?}");
        let message = answer.body["errors"].as_str().unwrap_or_default();
        assert!(message.contains("server.body_timeout"), "{answer:?}");
        assert!(
            is_closed(stream).await,
            "the connection stays open: {answer:?}"
        );
        assert!(
            answer
                .head
                .to_ascii_lowercase()
                .contains("connection: close"),
            "the answer says the connection closes: {answer:?}"
        );
    }
    let answer = read_answer(&mut carriyo).await;
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(answer.body["status"], "408", "Carriyo's shape: {answer:?}");
    assert!(
        is_closed(&mut carriyo).await,
        "the connection stays open: {answer:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "answered before the deadline"
    );
    // Nothing of them was recorded.
    let (_, events) = app.admin_get("/api/v1/events").await;
    assert_eq!(events["events"], json!([]), "{events}");
    app.stop().await;
}

/// A request refused from its headers: path, what is wrong, headers,
/// declared length, the status and a word the answer must have.
type EarlyRefusal<'a> = (
    &'a str,
    &'a str,
    Vec<(&'a str, &'a str)>,
    usize,
    u16,
    &'a str,
);

#[apply(backends)]
#[tokio::test]
async fn what_the_headers_can_refuse_is_refused_before_the_body_is_sent(backend: Backend) {
    // A deadline longer than the test's patience: an answer that waits for
    // the body never comes in time.
    let app = spawn_app_with(backend, &[("SHIPGATE__SERVER__BODY_TIMEOUT", "10m")]).await;
    let port = port_of(&app);
    let shopify = |shop| {
        vec![
            ("X-Shopify-Shop-Domain", shop),
            ("X-Shopify-Topic", "fulfillment_events/create"),
            ("X-Shopify-Hmac-Sha256", "c2lnbmF0dXJl"),
        ]
    };
    let wrong_token = "Bearer not-a-token";
    let redo_path = redo_path(REDO_STORE_ID, "/orders");
    let rest_path = shopify_events_path("450789469", "255858046");
    let cases: Vec<EarlyRefusal> = vec![
        (
            "/webhooks/shopify",
            "a body over the limit",
            shopify(SHOP),
            10 << 20,
            413,
            "body_limit",
        ),
        (
            "/webhooks/shopify",
            "an unknown shop",
            shopify("nope.myshopify.com"),
            100,
            401,
            "nope.myshopify.com",
        ),
        (
            "/webhooks/carriyo",
            "an unknown tenant",
            vec![("tenant-id", "NOPE"), ("x-api-key", CARRIYO_KEY)],
            100,
            403,
            "NOPE",
        ),
        (
            "/webhooks/carriyo",
            "a wrong key",
            vec![("tenant-id", CARRIYO_TENANT), ("x-api-key", "wrong")],
            100,
            403,
            "x-api-key",
        ),
        (
            "/webhooks/carriyo",
            "no tenant and no one's key",
            vec![("x-api-key", "wrong")],
            100,
            403,
            "credential",
        ),
        (
            "/orders/shipment-status-update",
            "an unknown tenant",
            vec![("tenant-id", "NOPE"), ("x-api-key", CARRIYO_KEY)],
            100,
            403,
            "NOPE",
        ),
        (
            redo_path.as_str(),
            "a wrong token",
            vec![("Authorization", wrong_token)],
            100,
            401,
            "token",
        ),
        (
            rest_path.as_str(),
            "a wrong token",
            vec![("X-Shopify-Access-Token", "nope")],
            100,
            401,
            "X-Shopify-Access-Token",
        ),
    ];
    for (path, what, headers, length, status, named) in cases {
        let mut stream = stalled_post(port, path, &headers, length, 0).await;
        let answer = read_answer(&mut stream).await;
        assert_eq!(answer.status, status, "{path} with {what}: {answer:?}");
        assert!(
            answer.body.to_string().contains(named),
            "{path} with {what} names {named}: {answer:?}"
        );
    }
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_connection_past_server_max_connections_waits_until_one_is_freed(backend: Backend) {
    // One connection per HTTP thread: the threads are one per CPU.
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let app = spawn_app_with(
        backend,
        &[
            ("SHIPGATE__SERVER__BODY_TIMEOUT", "1s"),
            ("SHIPGATE__SERVER__MAX_CONNECTIONS", "1"),
        ],
    )
    .await;
    let port = port_of(&app);
    let headers = [("X-Shopify-Shop-Domain", SHOP)];
    // No connection is freed before a deadline that starts after this.
    let stalled_from = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..threads {
        stalled.push(stalled_post(port, "/webhooks/shopify", &headers, 1_000, 10).await);
    }
    let health = tokio::spawn({
        let (client, url) = (app.client.clone(), app.url("/health"));
        async move {
            let response = client.get(url).send().await.expect("health answers");
            (response.status().as_u16(), Instant::now())
        }
    });
    let answer = read_answer(&mut stalled[0]).await;
    assert_eq!(answer.status, 408, "{answer:?}");
    let (status, answered) = health.await.expect("the health check ran");
    assert_eq!(status, 200);
    assert!(
        answered >= stalled_from + Duration::from_secs(1),
        "/health was served while every connection was taken"
    );
    app.stop().await;
}

/// A stand-in HTTP proxy: answers every request 200 and keeps each
/// request's head, so a test can see what went through it.
struct RecordingProxy {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl RecordingProxy {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a proxy port");
        let port = listener.local_addr().expect("its address").port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        tokio::spawn({
            let (heads, connections, stop) = (heads.clone(), connections.clone(), stop.clone());
            async move {
                loop {
                    let mut stream = tokio::select! {
                        _ = stop.cancelled() => return,
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => stream,
                            Err(_) => return,
                        },
                    };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let heads = heads.clone();
                    tokio::spawn(async move {
                        let mut buffer = vec![0u8; 65536];
                        let n = stream.read(&mut buffer).await.unwrap_or(0);
                        let text = String::from_utf8_lossy(&buffer[..n]);
                        let head = text.split("\r\n\r\n").next().unwrap_or("").to_owned();
                        heads.lock().expect("the heads").push(head);
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                            .await;
                    });
                }
            }
        });
        Self {
            port,
            heads,
            connections,
            stop,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("the heads").clone()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// An automation rule for in-transit statuses to `url`.
fn rule(name: &str, url: &str) -> String {
    format!("[[automations]]\nname = \"{name}\"\non = [\"in_transit\"]\nurl = \"{url}\"\n")
}

/// The dead letters of `reason`, once there are `n` of them.
async fn wait_for_dead_letters(app: &TestApp, reason: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = app
            .admin_get(&format!("/api/v1/dead-letters?reason={reason}"))
            .await;
        assert_eq!(status, 200, "{body}");
        let letters = body["dead_letters"].as_array().cloned().unwrap_or_default();
        if letters.len() >= n {
            return letters;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} dead letters ({reason}): {letters:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Posts an in-transit Shopify event for fulfillment `fulfillment`.
async fn post_in_transit(app: &TestApp, fulfillment: u64) {
    let body = shopify_event_body(fulfillment, 1, "in_transit", "2026-11-21T08:00:00Z");
    let response = app
        .post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &body))
        .await;
    assert_eq!(response.status(), 200);
}

#[apply(backends)]
#[tokio::test]
async fn an_environment_proxy_does_not_carry_deliveries_past_the_target_check(backend: Backend) {
    let proxy = RecordingProxy::start().await;
    let receiver = Receiver::start().await;
    let config = rule(
        "local",
        &format!("http://localhost:{}/hooks", receiver.port()),
    );
    let mut env = backend.env();
    env.extend(
        [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
        ]
        .map(|name| (name.to_owned(), proxy.url())),
    );
    env.push(("NO_PROXY".into(), String::new()));
    env.push((
        "SHIPGATE__DELIVERY__ALLOW_PRIVATE_TARGETS".into(),
        "false".into(),
    ));
    let gateway = Serve::start(&env, Some(&config), "info").await;
    post_in_transit(&gateway.app, 7101).await;
    let letters = wait_for_dead_letters(&gateway.app, "refused_target", 1).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(
        proxy.connections.load(Ordering::SeqCst),
        0,
        "{:?}",
        proxy.heads()
    );
    assert!(receiver.received().is_empty());
    gateway.stop().await;
    receiver.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_configured_proxy_carries_deliveries_but_never_to_a_private_target(backend: Backend) {
    let proxy = RecordingProxy::start().await;
    let receiver = Receiver::start().await;
    // A public address written as such: the proxy, not a resolver here,
    // would reach it (this one answers in its place).
    let public = "http://93.184.215.14/hooks";
    let config = [
        rule(
            "by-name",
            &format!("http://localhost:{}/hooks", receiver.port()),
        ),
        rule("literal", &receiver.url()),
        rule("public", public),
    ]
    .concat();
    let proxy_url = proxy.url();
    let app = spawn_app_with_config(
        backend,
        &config,
        &[
            ("SHIPGATE__DELIVERY__PROXY", &proxy_url),
            ("SHIPGATE__DELIVERY__ALLOW_PRIVATE_TARGETS", "false"),
            ("SHIPGATE__DELIVERY__RETRY_SCHEDULE", "100ms"),
        ],
    )
    .await;
    post_in_transit(&app, 7102).await;
    let letters = wait_for_dead_letters(&app, "refused_target", 2).await;
    for letter in &letters {
        let detail = letter["attempts"][0]["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("127.0.0.1") || detail.contains("::1"),
            "names the private address: {letter}"
        );
    }
    let deadline = Instant::now() + PATIENCE;
    while proxy.heads().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the public delivery never reached the proxy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let heads = proxy.heads();
    assert!(
        heads
            .iter()
            .all(|h| h.starts_with(&format!("POST {public} "))),
        "only the public target went through the proxy: {heads:?}"
    );
    assert!(receiver.received().is_empty());
    app.stop().await;
    receiver.stop().await;
}

#[tokio::test]
async fn a_503_while_redis_stalls_says_the_outcome_is_unknown_and_its_retry_lands_once() {
    let redis = RedisServer::start(false);
    let env = redis_env(&redis.url());
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with(Backend::Memory, &extra).await;
    let message = "stalled storage";
    let mut body = shopify_event_body(7103, 1, "in_transit", "2026-11-21T08:00:00Z");
    body["message"] = json!(message);
    let delivery = ShopifyDelivery::new("fulfillment_events/create", &body);
    let refused = {
        let _paused = redis.pause();
        app.post_shopify(&delivery).await
    };
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let answer: Value = refused.json().await.expect("a JSON error");
    let text = answer["errors"].as_str().unwrap_or_default();
    assert!(
        text.contains("unknown") && text.contains("retry"),
        "the answer says the outcome is unknown and a retry is safe: {answer}"
    );
    assert!(!text.contains("nothing was recorded"), "{answer}");
    // The provider's retry: the same delivery, once storage answers again.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let retried = app.post_shopify(&delivery).await;
        if retried.status() == 200 {
            break;
        }
        assert_eq!(retried.status(), 503);
        assert!(Instant::now() < deadline, "storage never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.wait_until_applied().await;
    let fulfillment = app
        .wait_for_fulfillment(("acme", "450789469", "7103"), |f| {
            f["status"] == "in_transit"
        })
        .await;
    let entries: Vec<&Value> = fulfillment["trackingHistory"]
        .as_array()
        .expect("a history")
        .iter()
        .filter(|e| e["message"] == message)
        .collect();
    assert_eq!(entries.len(), 1, "applied exactly once: {fulfillment}");
    app.stop().await;
}

/// A `shipgate serve` process with its output in a file, for what only a
/// process shows (its environment, its log lines).
struct Serve {
    app: TestApp,
    log: PathBuf,
}

impl Serve {
    /// Starts one with the test environment plus `env`, `config` (TOML)
    /// layered over the defaults, human log lines at `filter`, and waits
    /// until it is ready.
    async fn start(env: &[(String, String)], config: Option<&str>, filter: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let name = format!("shipgate-serve-{}-{port}", std::process::id());
        let log = std::env::temp_dir().join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).expect("a log file");
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_shipgate"));
        command.arg("serve").env_remove("RUST_LOG");
        if let Some(config) = config {
            let file = std::env::temp_dir().join(format!("{name}.toml"));
            std::fs::write(&file, config).expect("the config is written");
            command.arg("--config").arg(file);
        }
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("SHIPGATE__")) {
            command.env_remove(key);
        }
        let mut child = command
            .envs(test_env())
            .envs(env.iter().cloned())
            .env("SHIPGATE__SERVER__PORT", port.to_string())
            .env("SHIPGATE__TELEMETRY__FORMAT", "human")
            .env("SHIPGATE__TELEMETRY__FILTER", filter)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(log_file.try_clone().expect("a log file"))
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .expect("the shipgate binary starts");
        let shutdown = CancellationToken::new();
        let server = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                tokio::select! {
                    _ = shutdown.cancelled() => child.kill().await?,
                    _ = child.wait() => {}
                }
                child.wait().await.map(drop)
            }
        });
        let serve = Self {
            app: TestApp {
                address: format!("http://127.0.0.1:{port}"),
                client: reqwest::Client::builder()
                    .no_proxy()
                    .build()
                    .expect("a client"),
                shutdown,
                server,
            },
            log,
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            let ready = serve.app.client.get(serve.app.url("/ready")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return serve;
            }
            assert!(
                Instant::now() < deadline,
                "shipgate serve never got ready: {}",
                serve.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything it has written so far.
    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn stop(self) {
        self.app.stop().await;
        let _ = std::fs::remove_file(&self.log);
    }
}

#[apply(backends)]
#[tokio::test]
async fn a_newline_in_a_refused_field_cannot_forge_a_log_line(backend: Backend) {
    let gateway = Serve::start(&backend.env(), None, "info").await;
    let forged_at = "2026-12-06T03:00:00.000000Z";
    let forged = |field: &str| format!("{field}\n{forged_at} ERROR shipgate: FORGED\r\u{1b}[2K");
    // An unknown tenant in the body: refused.
    let mut shipment = sample("carriyo", "shipment_in_transit");
    shipment["tenant"] = json!(forged("NOPE"));
    let response = gateway
        .app
        .post_carriyo_webhook(&CarriyoDelivery::webhook(&shipment))
        .await;
    assert_eq!(response.status(), 403);
    // An order no one knows on the order endpoint: nothing recorded.
    let mut shipment = sample("carriyo", "shipment_in_transit");
    shipment["references"]["partner_order_reference"] = json!(forged("ORD-X"));
    let response = gateway
        .app
        .post_carriyo_status_update(&CarriyoDelivery::status_update(&shipment))
        .await;
    assert_eq!(response.status(), 200);
    let deadline = Instant::now() + PATIENCE;
    while gateway.output().matches("FORGED").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "not both logged: {}",
            gateway.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let output = gateway.output();
    for line in output.lines().filter(|l| l.contains("FORGED")) {
        assert!(
            !line.starts_with(forged_at),
            "a forged line: {line:?}\n{output}"
        );
        assert!(
            line.contains(&format!(r"\n{forged_at}")),
            "escaped: {line:?}"
        );
    }
    assert!(
        !output.contains('\r') && !output.contains('\u{1b}'),
        "{output:?}"
    );
    gateway.stop().await;
}
