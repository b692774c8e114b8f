//! The dashboard in a real browser: headless Chromium driven through
//! chromedriver (Debian's `chromium` and `chromium-driver`) against a
//! running gateway. It signs in, posts real sample webhooks, and checks
//! what the page shows: counts, the live feed and its paging, a
//! fulfillment's timeline, the unmapped words, and an automation delivery
//! that a refusing subscriber turns into a dead letter, replayed from the
//! page once the subscriber is back. A screenshot of the last state is
//! saved to `target/tmp/dashboard.png`.

#[path = "../helpers/mod.rs"]
mod helpers;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use helpers::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long the page may take to show something (it polls every 2 s).
const PATIENCE: Duration = Duration::from_secs(20);
/// The automation rule the scenario's subscriber gets deliveries from.
const RULE: &str = "tell-ops";

/// A chromedriver of our own on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Self {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: the dashboard test drives Debian's headless Chromium. \
                 Install both with: apt-get update && apt-get install -y chromium chromium-driver"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "chromedriver did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn open_browser(driver: &Driver, profile: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1400,2200",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("chromedriver opens a Chromium session")
}

/// The text of the first element matching `css`, if there is one.
async fn text_of(browser: &Client, css: &str) -> Option<String> {
    let element = browser.find(Locator::Css(css)).await.ok()?;
    element.text().await.ok()
}

/// Waits until the text at `css` satisfies `done`; answers it.
async fn wait_for_text(browser: &Client, css: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = text_of(browser, css).await;
        if let Some(text) = text.as_deref().filter(|t| done(t)) {
            return text.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page never showed the expected text at `{css}`; last seen: {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `css` matches a number of elements that satisfies `done`.
async fn wait_for_count(browser: &Client, css: &str, done: impl Fn(usize) -> bool) -> usize {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let count = browser
            .find_all(Locator::Css(css))
            .await
            .map_or(0, |all| all.len());
        if done(count) {
            return count;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page never had the expected number of `{css}`; last count: {count}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn type_into(browser: &Client, css: &str, text: &str) {
    let input = browser.find(Locator::Css(css)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

/// Clicks `css` as a person would, after scrolling it to the middle of
/// its scrolling box (chromedriver's own scrolling can leave an element
/// of a scrolled table under another row).
async fn click(browser: &Client, css: &str) {
    let element = browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}` to click: {e}"));
    browser
        .execute(
            "arguments[0].scrollIntoView({block: 'center'})",
            vec![serde_json::to_value(&element).unwrap()],
        )
        .await
        .unwrap();
    element.click().await.unwrap();
}

/// The Carriyo in-transit sample for `shipment`, at second `second`.
fn carriyo(shipment: &str, status: &str, second: u32) -> Value {
    let mut body = sample("carriyo", "shipment_in_transit");
    body["references"]["partner_shipment_reference"] = json!(shipment);
    body["post_shipping_info"]["status"] = json!(status);
    body["update_date"] = json!(format!(
        "2026-11-21T12:{:02}:{:02}Z",
        second / 60,
        second % 60
    ));
    body
}

/// Everything the page is checked for, in the order a person would go.
async fn scenario(browser: Client, app: Arc<TestApp>, receiver: Arc<Receiver>) {
    browser.goto(&app.url("/dashboard")).await.unwrap();

    // A wrong token is refused, with the API's reason.
    type_into(&browser, "#token", "not-a-token").await;
    click(&browser, "#signin-submit").await;
    wait_for_text(&browser, "#signin-error", |t| {
        t.contains("not an admin token")
    })
    .await;
    type_into(&browser, "#token", ADMIN_TOKEN).await;
    click(&browser, "#signin-submit").await;
    wait_for_text(&browser, "#count-shopify-accepted", |t| t == "0").await;
    // Data-defined providers get their rows from the stats, as built-ins do.
    wait_for_text(&browser, "#count-easypost-accepted", |t| t == "0").await;
    wait_for_text(&browser, "#dead-letters tbody", |t| t.starts_with("none")).await;
    wait_for_count(
        &browser,
        &format!("#deliveries-rule option[value={RULE}]"),
        |n| n == 1,
    )
    .await;

    // Real deliveries: Shopify accepted, resent, forged; Carriyo in transit,
    // delivered, and a word no status map knows.
    let shopify_event = ShopifyDelivery::new(
        "fulfillment_events/create",
        &sample("shopify", "fulfillment_event_create"),
    );
    assert_eq!(app.post_shopify(&shopify_event).await.status(), 200);
    assert_eq!(app.post_shopify(&shopify_event).await.status(), 200);
    let forged = ShopifyDelivery {
        secret: "forged",
        ..ShopifyDelivery::new(
            "fulfillment_events/create",
            &sample("shopify", "fulfillment_event_create"),
        )
    };
    assert_eq!(app.post_shopify(&forged).await.status(), 401);
    let mut hostile = sample("shopify", "fulfillment_event_create");
    hostile["id"] = json!(944956500);
    hostile["message"] = json!("<img src=x onerror=\"document.title='owned'\">");
    let hostile = ShopifyDelivery::new("fulfillment_events/create", &hostile);
    assert_eq!(app.post_shopify(&hostile).await.status(), 200);
    for delivery in [
        carriyo("ORD-1001-1", "in_transit", 1),
        carriyo("ORD-1001-1", "delivered", 2),
        carriyo("ORD-1001-1", "teleported", 3),
    ] {
        let response = app
            .post_carriyo_webhook(&CarriyoDelivery::webhook(&delivery))
            .await;
        assert_eq!(response.status(), 200);
    }

    // The counts table follows /api/v1/stats.
    for (cell, value) in [
        ("#count-shopify-accepted", "2"),
        ("#count-shopify-duplicate", "1"),
        ("#count-shopify-unauthorized", "1"),
        ("#count-carriyo-accepted", "3"),
        ("#count-carriyo-unmapped", "1"),
        ("#count-redo-accepted", "0"),
    ] {
        wait_for_text(&browser, cell, |t| t == value).await;
    }
    wait_for_count(&browser, "#chart rect[data-outcome=accepted]", |n| n >= 1).await;

    // The live feed: five accepted events, newest first, data shown as text.
    wait_for_count(&browser, "#events tbody tr", |n| n == 5).await;
    let first = text_of(&browser, "#events tbody tr:first-child")
        .await
        .unwrap();
    assert!(
        first.contains("carriyo") && first.contains("teleported"),
        "{first}"
    );
    let hostile_row = text_of(&browser, "#events tbody tr[data-provider=shopify]")
        .await
        .unwrap();
    assert!(hostile_row.contains("<img src=x onerror="), "{hostile_row}");
    assert_eq!(
        browser
            .find_all(Locator::Css("#events img"))
            .await
            .unwrap()
            .len(),
        0,
        "a message is never turned into markup"
    );
    assert_eq!(browser.title().await.unwrap(), "shipgate dashboard");

    // Paging: sixty more arrive live; a fresh load shows a page of fifty
    // and "Load older" brings the rest without reloading.
    for second in 0..60 {
        let mut shipment = carriyo("ORD-1001-2", "in_transit", 100 + second);
        shipment["post_shipping_info"]["tracking_no"] = json!("44099999999");
        let delivery = CarriyoDelivery::webhook(&shipment);
        assert_eq!(app.post_carriyo_webhook(&delivery).await.status(), 200);
    }
    wait_for_count(&browser, "#events tbody tr", |n| n == 65).await;
    browser.refresh().await.unwrap();
    wait_for_count(&browser, "#events tbody tr", |n| n == 50).await;
    wait_for_text(&browser, "#events-count", |t| t == "50 shown").await;
    click(&browser, "#events-more").await;
    wait_for_count(&browser, "#events tbody tr", |n| n == 65).await;
    wait_for_text(&browser, "#events-count", |t| t == "65 shown (all)").await;
    let oldest = text_of(&browser, "#events tbody tr:last-child")
        .await
        .unwrap();
    assert!(
        oldest.contains("Departed USPS"),
        "the oldest is the first Shopify event: {oldest}"
    );
    wait_for_text(&browser, "#count-carriyo-accepted", |t| t == "63").await;

    // A fulfillment's timeline, opened from the feed.
    let applied = app
        .wait_for_fulfillment(("acme", "ORD-1001", "ORD-1001-1"), |f| {
            TestApp::history_words(f).len() == 3
        })
        .await;
    click(
        &browser,
        "#events tr[data-fulfillment=\"acme/ORD-1001/ORD-1001-1\"] button.link",
    )
    .await;
    wait_for_text(&browser, "#f-status", |t| t == "delivered").await;
    assert_eq!(
        text_of(&browser, "#f-key").await.unwrap(),
        "acme / ORD-1001 / ORD-1001-1"
    );
    assert_eq!(
        text_of(&browser, "#f-eta").await.unwrap(),
        applied["estimatedDeliveryDate"].as_str().unwrap()
    );
    assert_eq!(
        text_of(&browser, "#f-tracking").await.unwrap(),
        "44012345678"
    );
    let mut shown = Vec::new();
    for entry in browser
        .find_all(Locator::Css("#f-timeline li"))
        .await
        .unwrap()
    {
        shown.push((
            entry.attr("data-status").await.unwrap().unwrap_or_default(),
            entry.attr("data-kind").await.unwrap().unwrap_or_default(),
        ));
    }
    let expected: Vec<(String, String)> = applied["trackingHistory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["status"].as_str().unwrap().to_owned(),
                h["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(shown, expected, "the timeline shows the history in order");
    assert!(
        shown.contains(&("delivered".into(), "status".into())),
        "{shown:?}"
    );
    let unmapped_entry = text_of(&browser, "#f-timeline li.kind-unmapped")
        .await
        .unwrap();
    assert!(unmapped_entry.contains("teleported"), "{unmapped_entry}");

    // The same fulfillment, found by its tracking number.
    click(
        &browser,
        "#events tr[data-fulfillment=\"acme/450789469/255858046\"] button.link",
    )
    .await;
    wait_for_text(&browser, "#f-key", |t| t.starts_with("acme / 450789469")).await;
    type_into(&browser, "#lookup-tracking", "44012345678").await;
    click(&browser, "#lookup-submit").await;
    wait_for_text(&browser, "#f-key", |t| t == "acme / ORD-1001 / ORD-1001-1").await;

    // The unknown word, with how often it came.
    let word = wait_for_text(&browser, "#unmapped tr[data-word=teleported]", |t| {
        t.contains("carriyo")
    })
    .await;
    assert!(word.ends_with('1'), "{word}");

    dead_letter_replayed_from_the_page(&browser, &app, &receiver).await;
}

/// A shipment out for delivery fires the rule; the subscriber refuses
/// every attempt, so the page shows a dead letter; once the subscriber is
/// back, the letter's Replay button gets it delivered.
async fn dead_letter_replayed_from_the_page(browser: &Client, app: &TestApp, receiver: &Receiver) {
    receiver.answer_usually(Answer::Status(503)).await;
    let out = carriyo("ORD-1001-3", "out_for_delivery", 200);
    let response = app
        .post_carriyo_webhook(&CarriyoDelivery::webhook(&out))
        .await;
    assert_eq!(response.status(), 200);
    let letter = format!("#dead-letters tbody tr[data-rule={RULE}]");
    let row = wait_for_text(browser, &letter, |t| t.contains("HTTP 503")).await;
    for shown in [
        "acme / ORD-1001 / ORD-1001-3",
        "out_for_delivery",
        "http_status",
    ] {
        assert!(row.contains(shown), "the dead letter shows {shown}: {row}");
    }
    assert_eq!(
        text_of(browser, &format!("{letter} td.attempts"))
            .await
            .unwrap(),
        "3"
    );
    let delivery = format!("#deliveries tbody tr[data-rule={RULE}]");
    wait_for_text(browser, &format!("{delivery} td.state"), |t| t == "dead").await;
    let (status, listed) = app.admin_get("/api/v1/dead-letters").await;
    assert_eq!(status, 200, "{listed}");
    let letters = listed["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{listed}");
    let id = letters[0]["id"].as_str().unwrap();
    let shown_id = browser
        .find(Locator::Css(&letter))
        .await
        .unwrap()
        .attr("data-delivery-id")
        .await
        .unwrap();
    assert_eq!(shown_id.as_deref(), Some(id));
    assert_eq!(receiver.received().len(), 3, "three attempts, all refused");

    receiver.answer_usually(Answer::Status(200)).await;
    click(browser, &format!("{letter} button.replay")).await;
    let message = wait_for_text(browser, "#dead-letters-message", |t| !t.is_empty()).await;
    assert_eq!(message, format!("Delivery {id} ({RULE}) is queued again."));
    wait_for_text(browser, &format!("{delivery} td.state"), |t| {
        t == "delivered"
    })
    .await;
    wait_for_count(browser, "#dead-letters tbody tr[data-delivery-id]", |n| {
        n == 0
    })
    .await;
    assert_eq!(
        text_of(browser, &format!("{delivery} td.attempts"))
            .await
            .unwrap(),
        "4"
    );
    let detail = text_of(browser, &format!("{delivery} td.detail"))
        .await
        .unwrap();
    assert!(detail.starts_with("HTTP 200"), "{detail}");
    let received = receiver.received();
    assert_eq!(received.len(), 4, "the replay sent it once more");
    assert!(
        received.iter().all(|r| r.header("webhook-id") == id),
        "every attempt carries the delivery's webhook-id"
    );
    let (_, listed) = app.admin_get("/api/v1/dead-letters").await;
    assert_eq!(listed["dead_letters"], json!([]));
}

#[tokio::test]
async fn the_dashboard_shows_what_the_gateway_receives() {
    let driver = Driver::start();
    let profile: PathBuf = std::env::temp_dir().join(format!(
        "shipgate-chromium-{}",
        uuid::Uuid::now_v7().simple()
    ));
    let browser = open_browser(&driver, &profile).await;
    let receiver = Arc::new(Receiver::start().await);
    let rule = format!(
        "[[automations]]\nname = \"{RULE}\"\non = [\"out_for_delivery\"]\nurl = \"{}\"\n",
        receiver.url()
    );
    let app = Arc::new(
        spawn_app_with_config(
            Backend::Memory,
            &rule,
            &[
                ("SHIPGATE__DELIVERY__ALLOW_PRIVATE_TARGETS", "true"),
                ("SHIPGATE__DELIVERY__RETRY_SCHEDULE", "100ms,100ms"),
            ],
        )
        .await,
    );
    // The scenario runs in its own task so that, pass or fail, the
    // screenshot is taken and the browser closed.
    let outcome = tokio::spawn(scenario(browser.clone(), app.clone(), receiver.clone())).await;
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join(if outcome.is_ok() {
        "dashboard.png"
    } else {
        "dashboard-failure.png"
    });
    let _ = browser.execute("window.scrollTo(0, 0)", Vec::new()).await;
    match browser.screenshot().await {
        Ok(png) => std::fs::write(&screenshot, png).unwrap(),
        Err(e) => eprintln!("no screenshot: {e}"),
    }
    eprintln!("dashboard screenshot: {}", screenshot.display());
    let _ = browser.close().await;
    drop(driver);
    let _ = std::fs::remove_dir_all(&profile);
    if let Ok(app) = Arc::try_unwrap(app) {
        app.stop().await;
    }
    if let Ok(receiver) = Arc::try_unwrap(receiver) {
        receiver.stop().await;
    }
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}
