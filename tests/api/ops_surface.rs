//! The ops surface around the admin API: `/metrics`, the dashboard's own
//! routes, and the binary's integrator tools (`check-config`, `sign`,
//! `send-sample`) run as a user runs them.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};

use rstest_reuse::apply;

use crate::helpers::*;

impl Scrape {
    fn webhooks(&self, provider: &str, outcome: &str) -> f64 {
        self.value(
            "shipgate_webhooks_received_total",
            &[("provider", provider), ("outcome", outcome)],
        )
    }
}

fn carriyo_shipment(status: &str, message_seed: &str) -> Value {
    let mut body = sample("carriyo", "shipment_in_transit");
    body["post_shipping_info"]["status"] = json!(status);
    body["update_date"] = json!(format!("2026-11-21T11:{message_seed}:00Z"));
    body
}

#[apply(backends)]
#[tokio::test]
async fn webhook_counters_move_by_exactly_what_was_sent(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = Scrape::of(&app).await;
    for provider in ["shopify", "carriyo", "redo"] {
        for outcome in [
            "accepted",
            "duplicate",
            "unauthorized",
            "invalid",
            "unmapped",
        ] {
            assert_eq!(
                before.webhooks(provider, outcome),
                0.0,
                "{provider} {outcome}"
            );
        }
    }

    // Shopify: two new events, one resent, one with a wrong signature,
    // one that is not JSON.
    let first = ShopifyDelivery::new(
        "fulfillment_events/create",
        &sample("shopify", "fulfillment_event_create"),
    );
    let mut delivered = sample("shopify", "fulfillment_event_delivered");
    delivered["id"] = json!(944956399);
    let second = ShopifyDelivery::new("fulfillment_events/create", &delivered);
    for delivery in [&first, &second, &first] {
        assert_eq!(app.post_shopify(delivery).await.status(), 200);
    }
    let forged = ShopifyDelivery {
        secret: "not-the-secret",
        ..ShopifyDelivery::new(
            "fulfillment_events/create",
            &sample("shopify", "fulfillment_event_create"),
        )
    };
    assert_eq!(app.post_shopify(&forged).await.status(), 401);
    let garbled = ShopifyDelivery {
        body: b"{not json".to_vec(),
        ..ShopifyDelivery::new("fulfillment_events/create", &json!({}))
    };
    assert_eq!(app.post_shopify(&garbled).await.status(), 400);

    // Carriyo: a word no status map knows (accepted, and unmapped).
    let unknown = CarriyoDelivery::webhook(&carriyo_shipment("teleported", "01"));
    assert_eq!(app.post_carriyo_webhook(&unknown).await.status(), 200);

    // Redo: nothing.
    app.wait_until_applied().await;
    let after = Scrape::of(&app).await;
    let expected = [
        ("shopify", "accepted", 2.0),
        ("shopify", "duplicate", 1.0),
        ("shopify", "unauthorized", 1.0),
        ("shopify", "invalid", 1.0),
        ("carriyo", "accepted", 1.0),
        ("carriyo", "unmapped", 1.0),
    ];
    for provider in ["shopify", "carriyo", "redo"] {
        for outcome in [
            "accepted",
            "duplicate",
            "unauthorized",
            "invalid",
            "unmapped",
        ] {
            let want = expected
                .iter()
                .find(|(p, o, _)| *p == provider && *o == outcome)
                .map_or(0.0, |(_, _, n)| *n);
            let moved = after.webhooks(provider, outcome) - before.webhooks(provider, outcome);
            assert_eq!(moved, want, "{provider} {outcome}");
            let stats = app.stats(provider).await;
            assert_eq!(
                stats[outcome].as_f64(),
                Some(want),
                "/api/v1/stats agrees: {provider} {outcome}"
            );
        }
    }

    // Latency by route pattern: five requests reached the Shopify webhook,
    // three answered 200.
    let requests = |status| {
        after.value(
            "shipgate_http_request_duration_seconds_count",
            &[
                ("method", "POST"),
                ("route", "/webhooks/shopify"),
                ("status", status),
            ],
        )
    };
    assert_eq!(
        (requests("200"), requests("401"), requests("400")),
        (3.0, 1.0, 1.0)
    );
    // Each event the worker applied was timed once.
    let applied = |provider| {
        after.value(
            "shipgate_apply_duration_seconds_count",
            &[("provider", provider)],
        )
    };
    assert_eq!((applied("shopify"), applied("carriyo")), (2.0, 1.0));
    assert_eq!(
        after.value(
            "shipgate_apply_lag_seconds_count",
            &[("provider", "shopify")]
        ),
        2.0
    );
    // Gauges read from storage at scrape time.
    assert_eq!(
        after.value("shipgate_unmapped_words", &[("provider", "carriyo")]),
        1.0
    );
    assert_eq!(
        after.value("shipgate_unmapped_words", &[("provider", "shopify")]),
        0.0
    );
    let partitions: Vec<f64> = (0..16)
        .map(|p| {
            after.value(
                "shipgate_event_log_backlog",
                &[("partition", &p.to_string())],
            )
        })
        .collect();
    assert_eq!(partitions, vec![0.0; 16], "the log is drained");
    assert!(
        after
            .0
            .keys()
            .any(|k| k.starts_with("shipgate_event_log_backlog{partition=\"15\"}")),
        "every partition has a series"
    );
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn the_backlog_gauge_has_one_series_per_configured_partition(backend: Backend) {
    let app = spawn_app_with(backend, &[("SHIPGATE__STORAGE__PARTITIONS", "3")]).await;
    let scrape = Scrape::of(&app).await;
    let series: Vec<&String> = scrape
        .0
        .keys()
        .filter(|k| k.starts_with("shipgate_event_log_backlog{"))
        .collect();
    assert_eq!(series.len(), 3, "{series:?}");
    assert_eq!(
        scrape.value("shipgate_event_log_backlog", &[("partition", "2")]),
        0.0
    );
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn workers_linger_so_a_trickle_is_applied_in_few_rounds(backend: Backend) {
    let linger = std::time::Duration::from_millis(300);
    let app = spawn_app_with(backend, &[("SHIPGATE__WORKER__LINGER", "300ms")]).await;
    let started = std::time::Instant::now();
    for i in 0..20u64 {
        let at = format!("2026-11-21T10:00:{i:02}Z");
        let body = shopify_event_body(7001, 9_000_000 + i, "in_transit", &at);
        let delivery = ShopifyDelivery::new("fulfillment_events/create", &body);
        assert!(app.post_shopify(&delivery).await.status().is_success());
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let trickle = started.elapsed();
    app.wait_until_applied().await;
    let scrape = Scrape::of(&app).await;
    assert_eq!(
        scrape.value("shipgate_worker_batch_entries_sum", &[]),
        20.0,
        "every entry is applied in some round"
    );
    // One round may catch the first entry as it arrives; after that a
    // round begins at most once per linger until the trickle has drained.
    let rounds = scrape.value("shipgate_worker_batch_entries_count", &[]);
    let most = (trickle.as_secs_f64() / linger.as_secs_f64()).ceil() + 2.0;
    assert!(
        rounds <= most,
        "{rounds} rounds for a {trickle:?} trickle; with a {linger:?} linger at most {most}"
    );
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn the_timeline_counts_outcomes_in_the_current_minute(backend: Backend) {
    let app = spawn_app(backend).await;
    let delivery = CarriyoDelivery::webhook(&carriyo_shipment("in_transit", "02"));
    assert_eq!(app.post_carriyo_webhook(&delivery).await.status(), 200);
    assert_eq!(app.post_carriyo_webhook(&delivery).await.status(), 200);
    let (status, body) = app.admin_get("/api/v1/stats/timeline?minutes=5").await;
    assert_eq!(status, 200, "{body}");
    let minutes = body["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 5);
    let total = |outcome: &str| -> u64 {
        minutes
            .iter()
            .map(|m| m["providers"]["carriyo"][outcome].as_u64().unwrap())
            .sum()
    };
    assert_eq!((total("accepted"), total("duplicate")), (1, 1));
    assert_eq!(minutes[4]["providers"]["shopify"]["accepted"], 0);
    let (status, body) = app.admin_get("/api/v1/stats/timeline?minutes=0").await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("`minutes`"),
        "{body}"
    );
    let anonymous = app
        .client
        .get(app.url("/api/v1/stats/timeline"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_tracking_number_finds_its_fulfillment(backend: Backend) {
    let app = spawn_app(backend).await;
    let delivery = CarriyoDelivery::webhook(&carriyo_shipment("in_transit", "03"));
    assert_eq!(app.post_carriyo_webhook(&delivery).await.status(), 200);
    let (status, body) = app
        .admin_get("/api/v1/fulfillments?trackingNumber=44012345678")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["fulfillments"],
        json!([{
            "store": "acme",
            "orderId": "ORD-1001",
            "fulfillmentId": "ORD-1001-1",
            "provider": "carriyo",
            "lastSeenAt": body["fulfillments"][0]["lastSeenAt"],
        }])
    );
    let (_, none) = app
        .admin_get("/api/v1/fulfillments?trackingNumber=NOPE")
        .await;
    assert_eq!(none["fulfillments"], json!([]));
    let (status, body) = app.admin_get("/api/v1/fulfillments").await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("trackingNumber"),
        "{body}"
    );
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn the_dashboard_is_served_with_a_strict_content_security_policy(backend: Backend) {
    let app = spawn_app(backend).await;
    for (path, kind) in [
        ("/dashboard", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/app.css", "text/css"),
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    let script = app
        .client
        .get(app.url("/dashboard/app.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!script.contains("innerHTML"), "data never becomes markup");
    app.stop().await;
}

// ---- the binary's tools ----------------------------------------------------

const BINARY: &str = env!("CARGO_BIN_EXE_shipgate");

/// Runs the binary with only `env` in its environment.
async fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
    let mut command = tokio::process::Command::new(BINARY);
    command.args(args).env_clear().envs(env.iter().copied());
    command.stdin(if stdin.is_some() {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    });
    command.stdout(std::process::Stdio::piped());
    command.stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("the binary runs");
    if let Some(input) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).await.unwrap();
    }
    child.wait_with_output().await.unwrap()
}

/// `env` as the pairs [`run`] takes.
fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("shipgate-{name}-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[apply(backends)]
#[tokio::test]
async fn check_config_names_every_planted_mistake_and_where_it_is(backend: Backend) {
    // Whichever backend the deployment names, the check finds the same.
    let storage = backend.env();
    let dir = scratch_dir("check-config");
    let maps = dir.join("maps");
    let map = maps.join("carriyo/status_map.toml");
    write(
        &map,
        "[shipment]\nbooked = \"status:pre_transit\"\nlost = \"status:vanished\"\n\
         in_transit = \"status:in_transit\"\nshipped = \"in_transit\"\n",
    );
    let config = dir.join("prod.toml");
    write(
        &config,
        &format!(
            "[server]\nport = \"eighty\"\nhots = \"0.0.0.0\"\n\n[storage]\npartitions = 0\n\n\
             [status_maps]\ndir = \"{}\"\n",
            maps.display()
        ),
    );
    let mut env = pairs(&storage);
    env.push(("SHIPGATE__WORKER__BATCH_SIZE", "0"));
    let output = run(
        &["check-config", "--config", config.to_str().unwrap()],
        &env,
        None,
    )
    .await;
    assert!(!output.status.success());
    let report = String::from_utf8(output.stderr).unwrap();
    let config_name = config.display().to_string();
    let map_name = map.display().to_string();
    for expected in [
        format!("config key `server.port` (in {config_name}): invalid type: string \"eighty\""),
        format!("config key `server.hots` (in {config_name}): unknown field `hots`"),
        format!("config key `storage.partitions` (in {config_name}): must be between 1 and 1024"),
        "config key `worker.batch_size` (set by SHIPGATE__WORKER__BATCH_SIZE): must be at least 1"
            .to_owned(),
        format!("{map_name}:3: [shipment] lost: 'status:vanished' names no status"),
        format!("{map_name}:5: [shipment] shipped: 'in_transit' is not \"status:<word>\""),
        "6 problem(s) found".to_owned(),
    ] {
        assert!(
            report.contains(&expected),
            "missing «{expected}» in:\n{report}"
        );
    }

    // Fixed, the same files pass.
    write(&map, "[shipment]\nbooked = \"status:pre_transit\"\n");
    write(
        &config,
        &format!("[status_maps]\ndir = \"{}\"\n", maps.display()),
    );
    let output = run(
        &["check-config", "--config", config.to_str().unwrap()],
        &pairs(&storage),
        None,
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8(output.stdout).unwrap().contains("valid"));
    let _ = std::fs::remove_dir_all(dir);
}

#[apply(backends)]
#[tokio::test]
async fn check_config_finds_a_status_map_missing_a_table_and_a_store_missing_a_key(
    backend: Backend,
) {
    let storage = backend.env();
    let dir = scratch_dir("check-config-tables");
    let maps = dir.join("maps");
    write(
        &maps.join("redo/status_map.toml"),
        "[shipments]\ndelivered = \"status:delivered\"\n",
    );
    let config = dir.join("stores.toml");
    write(
        &config,
        &format!(
            "[stores.north.carriyo]\ntenant_id = \"NORTH\"\n\n[status_maps]\ndir = \"{}\"\n",
            maps.display()
        ),
    );
    let output = run(
        &["check-config", "--config", config.to_str().unwrap()],
        &pairs(&storage),
        None,
    )
    .await;
    assert!(!output.status.success());
    let report = String::from_utf8(output.stderr).unwrap();
    assert!(
        report.contains("config key `stores.north.carriyo`") && report.contains("api_keys"),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "{}:1: the table [shipment] is missing",
            maps.join("redo/status_map.toml").display()
        )),
        "{report}"
    );
    assert!(report.contains("2 problem(s) found"), "{report}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Parses `sign`'s output into header pairs.
fn headers_of(output: &Output) -> Vec<(String, String)> {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| {
            let (name, value) = line.split_once(": ").unwrap();
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

async fn post_signed(
    app: &TestApp,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, Value) {
    let mut request = app.client.post(app.url(path)).body(body.to_vec());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    TestApp::send_for_json(request).await
}

#[apply(backends)]
#[tokio::test]
async fn sign_output_is_accepted_by_the_gateway_for_each_provider(backend: Backend) {
    let app = spawn_app(backend).await;
    let dir = scratch_dir("sign");

    // Shopify, body on standard input.
    let body = serde_json::to_vec(&sample("shopify", "fulfillment_event_create")).unwrap();
    let output = run(
        &["sign", "shopify", "--secret", SHOPIFY_SECRET],
        &[],
        Some(&body),
    )
    .await;
    let headers = headers_of(&output);
    assert!(
        headers.iter().any(|(n, _)| n == "X-Shopify-Hmac-Sha256"),
        "{headers:?}"
    );
    let (status, answer) = post_signed(&app, "/webhooks/shopify", &headers, &body).await;
    assert_eq!(
        (status, &answer["accepted"]),
        (200, &json!(true)),
        "{answer}"
    );
    app.wait_for_fulfillment(("acme", "450789469", "255858046"), |f| {
        f["status"] == "in_transit"
    })
    .await;
    // The same output with another body is refused: it is a signature.
    let (status, _) = post_signed(&app, "/webhooks/shopify", &headers, b"{\"id\":1}").await;
    assert_eq!(status, 401);

    // Carriyo, body from a file; the secret from the environment.
    let file = dir.join("shipment.json");
    std::fs::write(
        &file,
        serde_json::to_vec(&sample("carriyo", "shipment_in_transit")).unwrap(),
    )
    .unwrap();
    let output = run(
        &["sign", "carriyo", "--body", file.to_str().unwrap()],
        &[("SHIPGATE_SIGN_SECRET", CARRIYO_KEY)],
        None,
    )
    .await;
    let headers = headers_of(&output);
    assert!(
        headers.contains(&("tenant-id".into(), CARRIYO_TENANT.into())),
        "{headers:?}"
    );
    let body = std::fs::read(&file).unwrap();
    let (status, answer) = post_signed(&app, "/webhooks/carriyo", &headers, &body).await;
    assert_eq!(
        (status, &answer["accepted"]),
        (200, &json!(true)),
        "{answer}"
    );

    // Redo.
    let body = serde_json::to_vec(&sample("redo", "create_order")).unwrap();
    let output = run(&["sign", "redo", "--secret", REDO_TOKEN], &[], Some(&body)).await;
    let headers = headers_of(&output);
    let (status, answer) =
        post_signed(&app, &redo_path(REDO_STORE_ID, "/orders"), &headers, &body).await;
    assert_eq!(
        (status, &answer["externalOrderId"]),
        (200, &json!("R-2001")),
        "{answer}"
    );

    let output = run(&["sign", "dhl", "--secret", "x"], &[], Some(b"{}")).await;
    assert!(!output.status.success());
    assert!(String::from_utf8(output.stderr)
        .unwrap()
        .contains("'dhl' is not a provider"));
    app.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[apply(backends)]
#[tokio::test]
async fn send_sample_posts_a_built_in_sample_to_a_running_gateway(backend: Backend) {
    let app = spawn_app(backend).await;
    let output = run(
        &[
            "send-sample",
            "carriyo",
            "shipment_delivered",
            "--url",
            &app.address,
            "--secret",
            CARRIYO_KEY,
        ],
        &[],
        None,
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8(output.stdout).unwrap().contains("200 OK"));
    app.wait_for_fulfillment(("acme", "ORD-1001", "ORD-1001-1"), |f| {
        f["status"] == "delivered"
    })
    .await;

    let output = run(
        &[
            "send-sample",
            "carriyo",
            "shipment_delivered",
            "--url",
            &app.address,
            "--secret",
            "wrong",
        ],
        &[],
        None,
    )
    .await;
    assert!(!output.status.success(), "a refusal fails the command");
    // A wrong Carriyo key is 403, as Carriyo's API answers it.
    assert!(String::from_utf8(output.stdout).unwrap().contains("403"));

    let output = run(
        &[
            "send-sample",
            "redo",
            "nope",
            "--url",
            &app.address,
            "--secret",
            REDO_TOKEN,
        ],
        &[],
        None,
    )
    .await;
    assert!(!output.status.success());
    assert!(
        String::from_utf8(output.stderr)
            .unwrap()
            .contains("known: create_order"),
        "an unknown sample lists the known ones"
    );
    app.stop().await;
}

/// Polls the deliveries of fulfillment `fulfillment` until one is in
/// `state`; answers it.
async fn wait_for_delivery(app: &TestApp, fulfillment: u64, state: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, body) = app
            .admin_get(&format!("/api/v1/deliveries?fulfillment={fulfillment}"))
            .await;
        assert_eq!(status, 200, "{body}");
        if let Some(found) = body["deliveries"]
            .as_array()
            .and_then(|all| all.iter().find(|d| d["state"] == state))
        {
            return found.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no delivery of {fulfillment} got to {state}: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[apply(backends)]
#[tokio::test]
async fn delivery_counters_move_by_exactly_the_attempts_made(backend: Backend) {
    let receiver = Receiver::start().await;
    let rules = format!(
        "[[automations]]\nname = \"tell-ops\"\non = [\"out_for_delivery\"]\nurl = \"{}\"\n",
        receiver.url()
    );
    let app = spawn_app_with_config(
        backend,
        &rules,
        &[
            ("SHIPGATE__DELIVERY__ALLOW_PRIVATE_TARGETS", "true"),
            ("SHIPGATE__DELIVERY__RETRY_SCHEDULE", "50ms"),
        ],
    )
    .await;
    let deliveries = |scrape: &Scrape, outcome: &str| {
        scrape.value(
            "shipgate_deliveries_total",
            &[("rule", "tell-ops"), ("outcome", outcome)],
        )
    };
    let dead_letters = |scrape: &Scrape| {
        scrape.value(
            "shipgate_dead_letters_total",
            &[("rule", "tell-ops"), ("reason", "http_status")],
        )
    };
    let before = Scrape::of(&app).await;
    for outcome in ["delivered", "failed", "dead"] {
        assert!(
            before.0.contains_key(&format!(
                "shipgate_deliveries_total{{rule=\"tell-ops\",outcome=\"{outcome}\"}}"
            )),
            "the {outcome} series is there before any attempt"
        );
        assert_eq!(deliveries(&before, outcome), 0.0);
    }

    // One delivery refused once, then delivered on its retry.
    receiver.answer_next(&[Answer::Status(500)]).await;
    let at = "2026-11-21T09:00:00Z";
    let body = shopify_event_body(8101, 1, "out_for_delivery", at);
    let response = app
        .post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &body))
        .await;
    assert_eq!(response.status(), 200);
    wait_for_delivery(&app, 8101, "delivered").await;

    // One refused on both attempts: a dead letter; replayed, delivered.
    receiver.answer_usually(Answer::Status(503)).await;
    let body = shopify_event_body(8102, 2, "out_for_delivery", at);
    let response = app
        .post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &body))
        .await;
    assert_eq!(response.status(), 200);
    let dead = wait_for_delivery(&app, 8102, "dead").await;
    let middle = Scrape::of(&app).await;
    assert_eq!(
        deliveries(&middle, "delivered") - deliveries(&before, "delivered"),
        1.0
    );
    assert_eq!(
        deliveries(&middle, "failed") - deliveries(&before, "failed"),
        2.0
    );
    assert_eq!(
        deliveries(&middle, "dead") - deliveries(&before, "dead"),
        1.0
    );
    assert_eq!(dead_letters(&middle) - dead_letters(&before), 1.0);

    receiver.answer_usually(Answer::Status(200)).await;
    let id = dead["id"].as_str().unwrap();
    let (status, body) = app
        .admin_post(&format!("/api/v1/dead-letters/{id}/replay"))
        .await;
    assert_eq!(status, 200, "{body}");
    wait_for_delivery(&app, 8102, "delivered").await;
    let after = Scrape::of(&app).await;
    assert_eq!(
        deliveries(&after, "delivered") - deliveries(&before, "delivered"),
        2.0
    );
    assert_eq!(
        deliveries(&after, "failed") - deliveries(&before, "failed"),
        2.0
    );
    assert_eq!(
        deliveries(&after, "dead") - deliveries(&before, "dead"),
        1.0
    );
    assert_eq!(dead_letters(&after) - dead_letters(&before), 1.0);
    assert_eq!(
        receiver.received().len(),
        5,
        "the attempts the counters count"
    );
    app.stop().await;
    receiver.stop().await;
}

/// The nice values of this process's threads named `name`, from /proc
/// (Linux keeps a nice value per thread).
#[cfg(target_os = "linux")]
fn thread_nice_values(name: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[open + 1..close] != name {
            continue;
        }
        // Fields after the name start at the third, the state; the nice
        // value is the nineteenth.
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        found.push(fields[16].parse().unwrap());
    }
    found
}

#[cfg(target_os = "linux")]
#[apply(backends)]
#[tokio::test]
async fn the_workers_apply_and_deliver_from_threads_at_the_configured_nice_value(backend: Backend) {
    let receiver = Receiver::start().await;
    let rules = format!(
        "[[automations]]\nname = \"on-transit\"\non = [\"in_transit\"]\nurl = \"{}\"\n",
        receiver.url()
    );
    // 13: no other test's app runs at it (the default is 10).
    let app = spawn_app_with_config(
        backend,
        &rules,
        &[
            ("SHIPGATE__WORKER__NICE", "13"),
            ("SHIPGATE__DELIVERY__ALLOW_PRIVATE_TARGETS", "true"),
        ],
    )
    .await;
    let at_13 = |name| thread_nice_values(name).contains(&13);
    for name in ["shipgate-worker", "shipgate-outbox"] {
        assert!(
            at_13(name),
            "a {name} thread at nice 13: {:?}",
            thread_nice_values(name)
        );
    }
    let body = sample("shopify", "fulfillment_event_create");
    let response = app
        .post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &body))
        .await;
    assert_eq!(response.status(), 200);
    app.wait_for_fulfillment(("acme", "450789469", "255858046"), |f| {
        f["status"] == "in_transit"
    })
    .await;
    receiver.wait_for(1).await;
    app.stop().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while at_13("shipgate-worker") || at_13("shipgate-outbox") {
        assert!(
            std::time::Instant::now() < deadline,
            "the threads end when the app stops"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    receiver.stop().await;
}
