//! Providers as data: AfterShip and EasyPost, each only a
//! `providers/NAME/provider.toml` with its map and samples, serve
//! `POST /webhooks/{provider}/{store}`. Every delivery here is signed as
//! the provider's documentation says (computed here with `hmac`, never
//! with the gateway's verifier), and read back through the public API.

use base64::Engine;
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use rstest_reuse::apply;

use crate::helpers::*;

const AFTERSHIP_TRACKING: &str = "9400111206213859496473";
const AFTERSHIP_ORDER: &str = "5281036583073";
const AFTERSHIP_ID: &str = "q4w8e2r6t0y3u7i1o5p9a2s6d0f4g8h3";
const EASYPOST_TRACKING: &str = "9434636208303341652278";
const EASYPOST_ORDER: &str = "shp_5d2a7e9c1b4f4e0a8c6d3b1f7e2a9c40";
const EASYPOST_TRACKER: &str = "trk_8c1f4b2e9a7d4c35b06e2f1a9d3c7b84";

/// The acme store takes both, with the secrets each account shows.
const BOTH: [(&str, &str); 3] = [
    (
        "SHIPGATE__STORES__ACME__PROVIDERS__AFTERSHIP__SECRETS",
        AFTERSHIP_SECRET,
    ),
    (
        "SHIPGATE__STORES__ACME__PROVIDERS__AFTERSHIP__TIME_ZONE",
        "America/New_York",
    ),
    (
        "SHIPGATE__STORES__ACME__PROVIDERS__EASYPOST__SECRETS",
        EASYPOST_SECRET,
    ),
];

/// AfterShip: `aftership-hmac-sha256` is the standard base64 of
/// HMAC-SHA256 of the raw body, keyed with the secret as typed
/// (aftership.com/docs/tracking/webhook/webhook-signature).
fn aftership_signature(secret: &str, body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret.as_bytes(), body))
}

/// EasyPost: `X-Hmac-Signature` is `hmac-sha256-hex=` and the hex
/// HMAC-SHA256 of the raw body keyed with the NFKD form of the secret, as
/// its client libraries' validate_webhook computes it.
fn easypost_signature(secret: &str, body: &[u8]) -> String {
    let key: String = secret.nfkd().collect();
    format!(
        "hmac-sha256-hex={}",
        hex::encode(hmac_sha256(key.as_bytes(), body))
    )
}

/// A shipped sample's bytes exactly as stored.
fn raw_sample(provider: &str, name: &str) -> Vec<u8> {
    let path = format!(
        "{}/providers/{provider}/samples/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

impl TestApp {
    /// Posts `body` to `/webhooks/{provider}/{store}` with one header.
    async fn post_defined(
        &self,
        provider: &str,
        store: &str,
        header: (&str, &str),
        body: &[u8],
    ) -> (u16, Value) {
        Self::send_for_json(
            self.client
                .post(self.url(&format!("/webhooks/{provider}/{store}")))
                .header("content-type", "application/json")
                .header(header.0, header.1)
                .body(body.to_vec()),
        )
        .await
    }

    async fn post_aftership(&self, body: &[u8]) -> (u16, Value) {
        let signature = aftership_signature(AFTERSHIP_SECRET, body);
        self.post_defined(
            "aftership",
            "acme",
            ("aftership-hmac-sha256", &signature),
            body,
        )
        .await
    }

    async fn post_easypost(&self, body: &[u8]) -> (u16, Value) {
        let signature = easypost_signature(EASYPOST_SECRET, body);
        self.post_defined("easypost", "acme", ("X-Hmac-Signature", &signature), body)
            .await
    }
}

#[test]
fn the_signatures_match_the_published_vectors() {
    // helper R's SIGNING.md: A1 and E1, and EasyPost's own fixture (E3).
    let a1 = br#"{"event":"tracking_update","event_id":"00000000-0000-4000-8000-000000000000"}"#;
    assert_eq!(
        aftership_signature(AFTERSHIP_SECRET, a1),
        "pNLk89PnIyopWWxxefu302CF4lQVQ/8apqSGeWGbnAo="
    );
    let e1 = br#"{"id":"evt_1","object":"Event","description":"tracker.updated"}"#;
    assert_eq!(
        easypost_signature(EASYPOST_SECRET, e1),
        "hmac-sha256-hex=3bb74b4a0d24bf1912bdc4880496fbb2164d5b90ebb8bf18fc5503abe4cda103"
    );
    assert_eq!(
        easypost_signature("s\u{e9}cret", &easypost_fixture()),
        "hmac-sha256-hex=38f3f53c103713df81616a0a186d77141957323ec21d5fe9363db93840f527db"
    );
}

/// EasyPost's client libraries' shared webhook fixture, byte for byte.
fn easypost_fixture() -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/easypost-event-body.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[apply(backends)]
#[tokio::test]
async fn aftership_samples_become_the_fulfillments_history(backend: Backend) {
    let app = spawn_app_with(backend, &BOTH).await;
    for name in [
        "tracking_update_in_transit",
        "edd_revise",
        "edd_revise_range",
        "tracking_update_out_for_delivery",
        "tracking_update_attempt_fail_local_time",
        "tracking_update_delivered",
    ] {
        let (status, body) = app.post_aftership(&raw_sample("aftership", name)).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["duplicate"], false, "{name}: {body}");
    }
    let key = ("acme", AFTERSHIP_ORDER, AFTERSHIP_ID);
    let f = app
        .wait_for_fulfillment(key, |f| f["status"] == "delivered")
        .await;
    assert_eq!(f["trackingNumber"], AFTERSHIP_TRACKING);
    assert_eq!(f["trackingCompany"], "usps");
    assert_eq!(f["trackingHistory"][0]["provider"], "aftership");
    assert_eq!(
        TestApp::history_words(&f),
        [
            "in_transit",
            "in_transit",
            "in_transit",
            "out_for_delivery",
            "delayed",
            "delivered"
        ]
    );
    // The attempt's checkpoint time has no offset: New York's, the store's zone.
    let history = f["trackingHistory"].as_array().unwrap();
    let attempt = history.iter().find(|e| e["status"] == "delayed").unwrap();
    assert_eq!(attempt["datetime"], "2026-12-03T19:31:00.000Z", "{attempt}");
    let (status, found) = app
        .admin_get(&format!(
            "/api/v1/fulfillments?trackingNumber={AFTERSHIP_TRACKING}"
        ))
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["fulfillments"][0]["provider"], "aftership", "{found}");
    assert_eq!(found["fulfillments"][0]["fulfillmentId"], AFTERSHIP_ID);
    let (status, again) = app
        .post_aftership(&raw_sample("aftership", "tracking_update_delivered"))
        .await;
    assert_eq!(
        (status, &again["duplicate"]),
        (200, &Value::Bool(true)),
        "{again}"
    );
    let stats = app.stats("aftership").await;
    assert_eq!(
        (stats["accepted"].as_u64(), stats["duplicate"].as_u64()),
        (Some(6), Some(1)),
        "{stats}"
    );
    let scrape = Scrape::of(&app).await;
    let received = |outcome| {
        scrape.value(
            "shipgate_webhooks_received_total",
            &[("provider", "aftership"), ("outcome", outcome)],
        )
    };
    assert_eq!((received("accepted"), received("duplicate")), (6.0, 1.0));
    let (_, feed) = app.admin_get("/api/v1/events?provider=aftership").await;
    assert_eq!(feed["events"].as_array().map(Vec::len), Some(6), "{feed}");
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn easypost_tracker_events_are_taken_and_other_events_ignored(backend: Backend) {
    let app = spawn_app_with(backend, &BOTH).await;
    for name in [
        "tracker_created_pre_transit",
        "tracker_updated_in_transit",
        "tracker_updated_out_for_delivery",
        "tracker_updated_delivered",
    ] {
        let (status, body) = app.post_easypost(&raw_sample("easypost", name)).await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    let (status, ignored) = app
        .post_easypost(&raw_sample("easypost", "batch_created_ignored"))
        .await;
    assert_eq!(status, 200, "{ignored}");
    assert_eq!(ignored["ignored"], true, "{ignored}");
    assert_eq!(ignored["event_type"], "batch.created", "{ignored}");
    let f = app
        .wait_for_fulfillment(("acme", EASYPOST_ORDER, EASYPOST_TRACKER), |f| {
            f["status"] == "delivered"
        })
        .await;
    assert_eq!(
        TestApp::history_words(&f),
        ["pre_transit", "in_transit", "out_for_delivery", "delivered"]
    );
    assert_eq!(f["trackingNumber"], EASYPOST_TRACKING);
    let (_, found) = app
        .admin_get(&format!(
            "/api/v1/fulfillments?trackingNumber={EASYPOST_TRACKING}"
        ))
        .await;
    assert_eq!(found["fulfillments"][0]["provider"], "easypost", "{found}");
    let (status, again) = app
        .post_easypost(&raw_sample("easypost", "tracker_updated_delivered"))
        .await;
    assert_eq!(
        (status, &again["duplicate"]),
        (200, &Value::Bool(true)),
        "{again}"
    );
    app.wait_until_applied().await;
    let stats = app.stats("easypost").await;
    assert_eq!(
        (
            stats["accepted"].as_u64(),
            stats["duplicate"].as_u64(),
            stats["ignored"].as_u64()
        ),
        (Some(4), Some(1), Some(1)),
        "{stats}"
    );
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn easyposts_own_fixture_verifies_with_an_nfkd_secret(backend: Backend) {
    // The secret configured precomposed, as EasyPost's fixtures write it.
    let app = spawn_app_with(
        backend,
        &[(
            "SHIPGATE__STORES__ACME__PROVIDERS__EASYPOST__SECRETS",
            "s\u{e9}cret",
        )],
    )
    .await;
    let body = easypost_fixture();
    let published =
        "hmac-sha256-hex=38f3f53c103713df81616a0a186d77141957323ec21d5fe9363db93840f527db";
    let (status, answer) = app
        .post_defined("easypost", "acme", ("X-Hmac-Signature", published), &body)
        .await;
    assert_eq!(status, 200, "{answer}");
    let unnormalised = format!(
        "hmac-sha256-hex={}",
        hex::encode(hmac_sha256("s\u{e9}cret".as_bytes(), &body))
    );
    let (status, _) = app
        .post_defined(
            "easypost",
            "acme",
            ("X-Hmac-Signature", &unnormalised),
            &body,
        )
        .await;
    assert_eq!(status, 401, "a key that is not NFKD does not verify");
    app.wait_for_fulfillment(("acme", "1", "trk_1"), |f| f["status"] == "in_transit")
        .await;
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn bad_deliveries_are_refused_and_nothing_is_stored(backend: Backend) {
    let app = spawn_app_with(backend, &BOTH).await;
    let body = raw_sample("easypost", "tracker_updated_in_transit");
    let signature = easypost_signature(EASYPOST_SECRET, &body);
    let header = ("X-Hmac-Signature", signature.as_str());
    let (status, answer) = app.post_defined("parcelpost", "acme", header, &body).await;
    assert_eq!(status, 404, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("parcelpost"),
        "{answer}"
    );
    // beta has not enabled EasyPost, and no store "nowhere" exists: the
    // same answer as a wrong signature.
    let (beta, beta_answer) = app.post_defined("easypost", "beta", header, &body).await;
    let (nowhere, nowhere_answer) = app.post_defined("easypost", "nowhere", header, &body).await;
    let wrong = easypost_signature("not-the-secret", &body);
    let (forged, forged_answer) = app
        .post_defined("easypost", "acme", ("X-Hmac-Signature", &wrong), &body)
        .await;
    assert_eq!((beta, nowhere, forged), (401, 401, 401));
    assert_eq!(beta_answer["error"], forged_answer["error"]);
    assert_eq!(nowhere_answer["error"], forged_answer["error"]);
    let (missing, _) = app
        .post_defined("easypost", "acme", ("X-Other", "x"), &body)
        .await;
    assert_eq!(missing, 401);
    let mut without_id: Value = serde_json::from_slice(&body).unwrap();
    without_id["result"].as_object_mut().unwrap().remove("id");
    let (status, answer) = app.post_easypost(without_id.to_string().as_bytes()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("/result/id"),
        "{answer}"
    );
    let stats = app.stats("easypost").await;
    assert_eq!(
        (
            stats["accepted"].as_u64(),
            stats["unauthorized"].as_u64(),
            stats["invalid"].as_u64()
        ),
        (Some(0), Some(4), Some(1)),
        "{stats}"
    );
    let (_, found) = app
        .admin_get(&format!(
            "/api/v1/fulfillments?trackingNumber={EASYPOST_TRACKING}"
        ))
        .await;
    assert_eq!(found["fulfillments"], serde_json::json!([]));
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn an_aftership_delivered_fires_the_automation(backend: Backend) {
    let receiver = Receiver::start().await;
    let rule = format!(
        "[[automations]]\nname = \"tell-customer\"\non = [\"delivered\"]\nurl = \"{}\"\n",
        receiver.url()
    );
    let mut env = BOTH.to_vec();
    env.push(("SHIPGATE__DELIVERY__ALLOW_PRIVATE_TARGETS", "true"));
    let app = spawn_app_with_config(backend, &rule, &env).await;
    let (status, _) = app
        .post_aftership(&raw_sample("aftership", "tracking_update_delivered"))
        .await;
    assert_eq!(status, 200);
    let received = receiver.wait_for(1).await;
    assert_eq!(triggers(&received), ["delivered"]);
    assert_eq!(received[0].fulfillment(), AFTERSHIP_ID);
    app.stop().await;
}

/// A providers folder with one sender defined in it, and nothing else.
struct ProvidersFolder(std::path::PathBuf);

impl ProvidersFolder {
    fn new() -> Self {
        let root = std::env::temp_dir().join(format!(
            "shipgate-providers-{}",
            uuid::Uuid::now_v7().simple()
        ));
        let dir = root.join("parcelpost");
        std::fs::create_dir_all(dir.join("samples")).unwrap();
        std::fs::write(
            dir.join("provider.toml"),
            r#"name = "parcelpost"
status = [{ table = "parcel", pointer = "/parcel/state" }]

[auth]
scheme = "bearer"

[delivery_id]
header = "x-delivery"

[fields]
order_id = "/order"
fulfillment_id = "/parcel/id"
tracking_number = "/parcel/barcode"
occurred_at = "/parcel/scans/~latest/at"

[answer]
status = 202
body = '{"ok":true}'
"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("status_map.toml"),
            "[parcel]\nsorted = \"status:in_transit\"\nhanded_over = \"status:delivered\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("samples/handed_over.json"), PARCELPOST_BODY).unwrap();
        Self(root)
    }
}

impl Drop for ProvidersFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const PARCELPOST_BODY: &str = r#"{"order":"PP-1","parcel":{"id":"PP-1-A","barcode":"PP123","state":"handed_over","scans":[{"at":"2026-11-20T09:00:00Z"},{"at":"2026-11-21T10:00:00Z"}]}}"#;

#[apply(backends)]
#[tokio::test]
async fn a_third_provider_from_a_folder_ingests_with_no_code(backend: Backend) {
    let folder = ProvidersFolder::new();
    let dir = folder.0.display().to_string();
    let app = spawn_app_with(
        backend,
        &[
            ("SHIPGATE__PROVIDERS__DIR", &dir),
            (
                "SHIPGATE__STORES__ACME__PROVIDERS__PARCELPOST__SECRETS",
                "pp-token",
            ),
        ],
    )
    .await;
    let send = |token: &str| {
        app.client
            .post(app.url("/webhooks/parcelpost/acme"))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .header("x-delivery", "d-1")
            .body(PARCELPOST_BODY)
            .send()
    };
    let refused = send("wrong").await.unwrap();
    assert_eq!(refused.status(), 401);
    let taken = send("pp-token").await.unwrap();
    assert_eq!(taken.status(), 202);
    assert_eq!(taken.text().await.unwrap(), r#"{"ok":true}"#);
    let f = app
        .wait_for_fulfillment(("acme", "PP-1", "PP-1-A"), |f| f["status"] == "delivered")
        .await;
    assert_eq!(f["trackingHistory"][0]["provider"], "parcelpost");
    assert_eq!(f["trackingNumber"], "PP123");
    assert_eq!(send("pp-token").await.unwrap().status(), 202);
    let stats = app.stats("parcelpost").await;
    assert_eq!(
        (stats["accepted"].as_u64(), stats["duplicate"].as_u64()),
        (Some(1), Some(1)),
        "{stats}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_document_has_one_operation_and_every_provider_name() {
    let app = spawn_app_with(Backend::Memory, &BOTH).await;
    let (status, document) = TestApp::send_for_json(app.client.get(app.url("/openapi.json"))).await;
    assert_eq!(status, 200);
    let operation = &document["paths"]["/webhooks/{provider}/{store}"]["post"];
    assert_eq!(
        operation["operationId"], "defined_provider_webhook",
        "{operation}"
    );
    let names = &document["components"]["schemas"]["Provider"]["enum"];
    for name in ["shopify", "carriyo", "redo", "aftership", "easypost"] {
        assert!(
            names.as_array().unwrap().iter().any(|n| n == name),
            "{names}"
        );
    }
    let route_names = &document["components"]["schemas"]["DefinedName"]["enum"];
    assert_eq!(route_names, &serde_json::json!(["aftership", "easypost"]));
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(
        schemes["aftership_credential"]["name"],
        "aftership-hmac-sha256"
    );
    assert_eq!(schemes["easypost_credential"]["name"], "x-hmac-signature");
    app.stop().await;
}

/// Runs `shipgate check-config` with `providers.dir` set to `dir`.
fn check_config(dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_shipgate"))
        .arg("check-config")
        .env("SHIPGATE__PROVIDERS__DIR", dir)
        .output()
        .expect("shipgate runs")
}

#[test]
fn check_config_shows_what_each_sample_becomes() {
    let folder = ProvidersFolder::new();
    let output = check_config(&folder.0);
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{report}");
    let line = report
        .lines()
        .find(|l| l.contains("parcelpost/samples/handed_over.json"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        line.contains("order PP-1")
            && line.contains("fulfillment PP-1-A")
            && line.contains("status delivered")
            && line.contains("2026-11-21T10:00:00"),
        "{line}"
    );
    let ignored = report
        .lines()
        .find(|l| l.contains("easypost/samples/batch_created_ignored.json"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        ignored.contains("ignored: event type 'batch.created'"),
        "{ignored}"
    );
}

#[test]
fn check_config_names_the_pointer_that_never_matches_with_file_and_line() {
    let folder = ProvidersFolder::new();
    let definition = folder.0.join("parcelpost/provider.toml");
    let text = std::fs::read_to_string(&definition).unwrap();
    std::fs::write(
        &definition,
        text.replace("/parcel/barcode", "/parcel/barcod"),
    )
    .unwrap();
    let output = check_config(&folder.0);
    assert!(!output.status.success());
    let report = String::from_utf8(output.stderr).unwrap();
    assert!(
        report.contains(&format!(
            "{}:13: key `fields.tracking_number`",
            definition.display()
        )) && report.contains("/parcel/barcod"),
        "{report}"
    );
}

#[tokio::test]
async fn a_store_naming_an_undefined_provider_does_not_start() {
    let mut env = test_env();
    env.push((
        "SHIPGATE__STORES__ACME__PROVIDERS__PARCELPOST__SECRETS".into(),
        "x".into(),
    ));
    let settings = shipgate::config::Settings::load_with_env(None, env).unwrap();
    let refused = shipgate::app::Application::build(settings)
        .await
        .err()
        .unwrap();
    let text = refused.to_string();
    assert!(
        text.contains("stores.acme.providers.parcelpost") && text.contains("aftership"),
        "{text}"
    );
}

#[test]
fn sign_prints_the_header_a_shipped_definition_names() {
    let body = format!(
        "{}/providers/aftership/samples/tracking_update_delivered.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_shipgate"))
        .args([
            "sign",
            "aftership",
            "--secret",
            AFTERSHIP_SECRET,
            "--body",
            &body,
        ])
        .output()
        .expect("shipgate runs");
    let printed = String::from_utf8(output.stdout).unwrap();
    let expected = aftership_signature(
        AFTERSHIP_SECRET,
        &raw_sample("aftership", "tracking_update_delivered"),
    );
    assert!(
        printed.contains(&format!("aftership-hmac-sha256: {expected}")),
        "{printed}"
    );
}

#[apply(backends)]
#[tokio::test]
async fn a_store_over_its_limit_gets_429_from_a_defined_provider_and_nothing_is_recorded(
    backend: Backend,
) {
    let mut env = BOTH.to_vec();
    env.extend([
        ("SHIPGATE__STORES__ACME__LIMITS__RATE", "0.001"),
        ("SHIPGATE__STORES__ACME__LIMITS__BURST", "1"),
    ]);
    let app = spawn_app_with(backend, &env).await;
    let (first, _) = app
        .post_aftership(&raw_sample("aftership", "tracking_update_in_transit"))
        .await;
    assert_eq!(first, 200);
    let body = raw_sample("aftership", "tracking_update_delivered");
    let response = app
        .client
        .post(app.url("/webhooks/aftership/acme"))
        .header("content-type", "application/json")
        .header(
            "aftership-hmac-sha256",
            aftership_signature(AFTERSHIP_SECRET, &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let answer: Value = response.json().await.unwrap();
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("stores.acme.limits"),
        "{answer}"
    );
    app.wait_until_applied().await;
    let f = app
        .fulfillment("acme", AFTERSHIP_ORDER, AFTERSHIP_ID)
        .await
        .expect("the first delivery");
    assert_eq!(f["status"], "in_transit");
    assert_eq!(app.stats("aftership").await["limited"], 1);
    app.stop().await;
}
