//! The Shopify REST-shaped FulfillmentEvent API end to end: create, list,
//! get and delete, applied before answering, per store by access token,
//! and every bad input.

use chrono::{DateTime, FixedOffset};
use reqwest::Method;
use serde_json::{json, Value};

use rstest_reuse::apply;

use crate::helpers::*;

const ORDER: &str = "450789469";
const FULFILLMENT: &str = "255858046";

/// The sample create body with another status and time.
fn event_body(status: &str, happened_at: &str) -> Value {
    let mut body = sample("shopify", "rest_event_create");
    body["event"]["status"] = json!(status);
    body["event"]["happened_at"] = json!(happened_at);
    body
}

/// Creates an event on the acme fulfillment with `token`.
async fn create(app: &TestApp, token: &str, body: &Value) -> (u16, Value) {
    TestApp::send_for_json(
        app.shopify_rest(
            Method::POST,
            &shopify_events_path(ORDER, FULFILLMENT),
            Some(token),
        )
        .json(body),
    )
    .await
}

/// Creates an event on the acme fulfillment, expecting a 201; answers it.
async fn created(app: &TestApp, body: &Value) -> Value {
    let (status, answer) = create(app, SHOPIFY_ACCESS_TOKEN, body).await;
    assert_eq!(status, 201, "{answer}");
    answer["fulfillment_event"].clone()
}

async fn list(app: &TestApp, token: &str) -> (u16, Value) {
    TestApp::send_for_json(app.shopify_rest(
        Method::GET,
        &shopify_events_path(ORDER, FULFILLMENT),
        Some(token),
    ))
    .await
}

async fn one(app: &TestApp, method: Method, token: &str, id: &Value) -> (u16, Value) {
    TestApp::send_for_json(app.shopify_rest(
        method,
        &shopify_event_path(ORDER, FULFILLMENT, &id.to_string()),
        Some(token),
    ))
    .await
}

fn ids(list: &Value) -> Vec<u64> {
    list["fulfillment_events"]
        .as_array()
        .map(|events| events.iter().filter_map(|e| e["id"].as_u64()).collect())
        .unwrap_or_default()
}

fn instant(value: &Value) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{value} is not an RFC 3339 time: {e}"))
}

#[apply(backends)]
#[tokio::test]
async fn a_created_event_is_applied_before_the_answer_and_readable_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = sample("shopify", "rest_event_create");
    let sent = &body["event"];
    let event = created(&app, &body).await;

    let id = event["id"].as_u64().expect("an integer id");
    assert_eq!(event["order_id"], json!(450789469));
    assert_eq!(event["fulfillment_id"], json!(255858046));
    for field in ["status", "message", "city", "province", "country", "zip"] {
        assert_eq!(event[field], sent[field], "{field}");
    }
    assert_eq!(
        instant(&event["happened_at"]),
        instant(&sent["happened_at"])
    );
    // A time, as Shopify answers it, and the one that was sent.
    assert_eq!(
        instant(&event["estimated_delivery_at"]),
        instant(&sent["estimated_delivery_at"])
    );
    assert_eq!(
        event["admin_graphql_api_id"],
        format!("gid://shopify/FulfillmentEvent/{id}")
    );
    assert!(event["shop_id"].is_null() && event["address1"].is_null());
    assert_eq!(event["created_at"], event["updated_at"]);
    instant(&event["created_at"]);

    // No waiting: the create was applied before it was answered.
    let f = app
        .fulfillment("acme", ORDER, FULFILLMENT)
        .await
        .expect("the fulfillment exists at once");
    assert_eq!(f["status"], "in_transit");
    assert_eq!(f["estimatedDeliveryDate"], "2026-11-23");
    assert_eq!(TestApp::history_words(&f), ["in_transit"]);

    let (status, listed) = list(&app, SHOPIFY_ACCESS_TOKEN).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["fulfillment_events"], json!([event.clone()]));
    let (status, got) = one(&app, Method::GET, SHOPIFY_ACCESS_TOKEN, &event["id"]).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["fulfillment_event"], event);
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn each_create_gets_its_own_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = created(&app, &event_body("in_transit", "2026-11-22T06:30:00-05:00")).await;
    let second = created(&app, &event_body("delivered", "2026-11-22T16:30:00-05:00")).await;
    assert_ne!(first["id"], second["id"]);
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(f["status"], "delivered");
    let (_, listed) = list(&app, SHOPIFY_ACCESS_TOKEN).await;
    assert_eq!(
        ids(&listed),
        [
            first["id"].as_u64().unwrap(),
            second["id"].as_u64().unwrap()
        ]
    );
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn webhook_events_of_the_same_fulfillment_show_in_the_list(backend: Backend) {
    let app = spawn_app(backend).await;
    let rest = created(&app, &sample("shopify", "rest_event_create")).await;
    let webhook = sample("shopify", "fulfillment_event_create");
    let response = app
        .post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &webhook))
        .await;
    assert_eq!(response.status(), 200);
    app.wait_for_fulfillment(("acme", ORDER, FULFILLMENT), |f| {
        TestApp::history_words(f).len() == 2
    })
    .await;

    let (_, listed) = list(&app, SHOPIFY_ACCESS_TOKEN).await;
    // The webhook's event happened first.
    assert_eq!(
        ids(&listed),
        [
            webhook["id"].as_u64().unwrap(),
            rest["id"].as_u64().unwrap()
        ]
    );
    let (status, got) = one(&app, Method::GET, SHOPIFY_ACCESS_TOKEN, &webhook["id"]).await;
    assert_eq!(status, 200, "{got}");
    let got = &got["fulfillment_event"];
    for field in ["status", "message", "city", "latitude", "longitude"] {
        assert_eq!(got[field], webhook[field], "{field}");
    }
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_deleted_event_leaves_the_list_the_get_and_the_history(backend: Backend) {
    let app = spawn_app(backend).await;
    let transit = created(&app, &event_body("in_transit", "2026-11-22T06:30:00-05:00")).await;
    let delivered = created(&app, &event_body("delivered", "2026-11-22T16:30:00-05:00")).await;

    let (status, answer) = one(&app, Method::DELETE, SHOPIFY_ACCESS_TOKEN, &delivered["id"]).await;
    assert_eq!((status, answer), (200, json!({})));

    let (status, answer) = one(&app, Method::GET, SHOPIFY_ACCESS_TOKEN, &delivered["id"]).await;
    assert_eq!(status, 404);
    let message = answer["errors"].as_str().unwrap_or_default();
    assert!(
        message.contains(&delivered["id"].to_string()),
        "{message:?} should name the event"
    );
    let (_, listed) = list(&app, SHOPIFY_ACCESS_TOKEN).await;
    assert_eq!(ids(&listed), [transit["id"].as_u64().unwrap()]);
    // No waiting: the delete was applied before it was answered.
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(TestApp::history_words(&f), ["in_transit"]);
    assert_eq!(f["status"], "in_transit");
    assert!(f["deliveredAt"].is_null());

    let (status, answer) = one(&app, Method::DELETE, SHOPIFY_ACCESS_TOKEN, &delivered["id"]).await;
    assert_eq!(status, 404, "deleting again: {answer}");
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_repeated_create_answers_the_original_event(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = sample("shopify", "rest_event_create");
    let first = created(&app, &body).await;
    let again = created(&app, &body).await;
    assert_eq!(again, first);
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(TestApp::history_words(&f), ["in_transit"]);
    let (_, listed) = list(&app, SHOPIFY_ACCESS_TOKEN).await;
    assert_eq!(ids(&listed), [first["id"].as_u64().unwrap()]);
    let stats = app.stats("shopify").await;
    assert_eq!(
        (stats["accepted"].as_u64(), stats["duplicate"].as_u64()),
        (Some(1), Some(1))
    );
    app.stop().await;
}

/// The content fingerprint still holds the deleted event's claim, so the
/// same content again is a repeat of an event that is gone: 409, not a 201
/// for an event that cannot be read back.
#[apply(backends)]
#[tokio::test]
async fn recreating_a_deleted_event_unchanged_is_a_conflict(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = sample("shopify", "rest_event_create");
    let first = created(&app, &body).await;
    let (status, _) = one(&app, Method::DELETE, SHOPIFY_ACCESS_TOKEN, &first["id"]).await;
    assert_eq!(status, 200);
    let (status, answer) = create(&app, SHOPIFY_ACCESS_TOKEN, &body).await;
    assert_eq!(status, 409, "{answer}");
    let message = answer["errors"].as_str().unwrap_or_default();
    assert!(message.contains("deleted"), "{message:?}");
    let (_, listed) = list(&app, SHOPIFY_ACCESS_TOKEN).await;
    assert_eq!(listed["fulfillment_events"], json!([]));
    let mut changed = body.clone();
    changed["event"]["message"] = json!("Arrived again");
    created(&app, &changed).await;
    app.stop().await;
}

/// Shopify's REST API refuses a status word its version does not define
/// with 422 `{"errors": {"status": ["is not included in the list"]}}`.
#[apply(backends)]
#[tokio::test]
async fn a_status_word_shopify_does_not_define_is_a_422_in_shopifys_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, answer) = create(
        &app,
        SHOPIFY_ACCESS_TOKEN,
        &event_body("teleported", "2026-11-22T06:30:00-05:00"),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    let fields = answer["errors"].as_object().expect("errors by field");
    assert_eq!(fields.keys().collect::<Vec<_>>(), ["status"]);
    let message = fields["status"][0].as_str().unwrap();
    assert!(
        message.starts_with("is not included in the list") && message.contains("'teleported'"),
        "{message}"
    );
    // A word of the Customer API only: in `unstable`, not in a stable version.
    let picked_up = event_body("picked_up", "2026-11-22T16:30:00-05:00");
    let (status, answer) = create(&app, SHOPIFY_ACCESS_TOKEN, &picked_up).await;
    assert_eq!(status, 422, "{answer}");
    let unstable = shopify_events_path(ORDER, FULFILLMENT).replace(SHOPIFY_API_VERSION, "unstable");
    let (status, answer) = TestApp::send_for_json(
        app.shopify_rest(Method::POST, &unstable, Some(SHOPIFY_ACCESS_TOKEN))
            .json(&picked_up),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(TestApp::history_words(&f), ["delivered"]);
    assert_eq!(f["trackingHistory"][0]["apiVersion"], "unstable");
    let stats = app.stats("shopify").await;
    assert_eq!(
        (
            stats["accepted"].as_u64(),
            stats["invalid"].as_u64(),
            stats["unmapped"].as_u64()
        ),
        (Some(1), Some(2), Some(0))
    );
    app.stop().await;
}

/// The version Shopify serves a call to an unsupported one with today:
/// the oldest of the four stable versions released in the last year.
pub(crate) fn oldest_supported_version() -> String {
    use chrono::Datelike;
    let today = chrono::Utc::now().date_naive();
    let quarters = today.year() * 4 + today.month0() as i32 / 3 - 3;
    format!("{}-{:02}", quarters / 4, quarters % 4 * 3 + 1)
}

#[apply(backends)]
#[tokio::test]
async fn every_answer_says_which_api_version_served_it_and_an_old_one_falls_forward(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let events = shopify_events_path(ORDER, FULFILLMENT);
    let body = sample("shopify", "rest_event_create");
    let version_of = |response: &reqwest::Response| {
        response
            .headers()
            .get("X-Shopify-API-Version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let send = |method: Method, path: String, token: Option<&'static str>, body: Option<Value>| {
        let request = app.shopify_rest(method, &path, token);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        async move { request.send().await.unwrap() }
    };
    let oldest = oldest_supported_version();
    let old_path = events.replace(SHOPIFY_API_VERSION, "2020-01");
    let served = send(
        Method::GET,
        events.clone(),
        Some(SHOPIFY_ACCESS_TOKEN),
        None,
    )
    .await;
    assert_eq!(served.status(), 404, "no event yet");
    let expected = std::cmp::max(SHOPIFY_API_VERSION.to_owned(), oldest.clone());
    assert_eq!(version_of(&served).as_deref(), Some(expected.as_str()));
    let mut blank = body.clone();
    blank["event"]["status"] = json!("");
    for (method, path, token, body, status, version) in [
        (
            Method::POST,
            old_path.clone(),
            Some(SHOPIFY_ACCESS_TOKEN),
            Some(body.clone()),
            201,
            &oldest,
        ),
        (
            Method::GET,
            old_path.clone(),
            Some(SHOPIFY_ACCESS_TOKEN),
            None,
            200,
            &oldest,
        ),
        (Method::GET, old_path.clone(), None, None, 401, &oldest),
        (
            Method::POST,
            old_path.clone(),
            Some(SHOPIFY_ACCESS_TOKEN),
            Some(blank),
            422,
            &oldest,
        ),
        (
            Method::GET,
            events.replace(SHOPIFY_API_VERSION, "unstable"),
            Some(SHOPIFY_ACCESS_TOKEN),
            None,
            200,
            &"unstable".to_owned(),
        ),
    ] {
        let at = format!("{method} {path}");
        let response = send(method, path, token, body).await;
        assert_eq!(response.status().as_u16(), status, "{at}");
        assert_eq!(version_of(&response).as_ref(), Some(version), "{at}");
    }
    let (_, listed) = list(&app, SHOPIFY_ACCESS_TOKEN).await;
    assert_eq!(
        ids(&listed).len(),
        1,
        "the old version's create landed: {listed}"
    );
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(f["trackingHistory"][0]["apiVersion"], oldest.as_str());
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn every_time_field_is_a_date_time_even_for_an_eta_known_only_as_a_date(backend: Backend) {
    let app = spawn_app(backend).await;
    let with_time = sample("shopify", "fulfillment_event_create");
    let mut date_only = sample("shopify", "fulfillment_event_delivered");
    date_only["estimated_delivery_at"] = json!("2026-11-23");
    for body in [&with_time, &date_only] {
        let response = app
            .post_shopify(&ShopifyDelivery::new("fulfillment_events/create", body))
            .await;
        assert_eq!(response.status(), 200);
    }
    app.wait_for_fulfillment(("acme", ORDER, FULFILLMENT), |f| {
        TestApp::history_words(f).len() == 2
    })
    .await;
    let (status, listed) = list(&app, SHOPIFY_ACCESS_TOKEN).await;
    assert_eq!(status, 200, "{listed}");
    let events = listed["fulfillment_events"].as_array().unwrap();
    assert_eq!(
        instant(&events[0]["estimated_delivery_at"]),
        instant(&with_time["estimated_delivery_at"])
    );
    assert_eq!(
        events[1]["estimated_delivery_at"],
        "2026-11-23T00:00:00+00:00"
    );
    for event in events {
        for field in [
            "happened_at",
            "created_at",
            "updated_at",
            "estimated_delivery_at",
        ] {
            instant(&event[field]);
        }
    }
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn an_access_token_only_reaches_its_own_store(backend: Backend) {
    let app = spawn_app(backend).await;
    let acme = created(&app, &sample("shopify", "rest_event_create")).await;

    let (status, answer) = list(&app, OTHER_SHOPIFY_ACCESS_TOKEN).await;
    assert_eq!(status, 404, "beta cannot list acme's events: {answer}");
    let (status, _) = one(&app, Method::GET, OTHER_SHOPIFY_ACCESS_TOKEN, &acme["id"]).await;
    assert_eq!(status, 404, "beta cannot read acme's event");
    let (status, _) = one(
        &app,
        Method::DELETE,
        OTHER_SHOPIFY_ACCESS_TOKEN,
        &acme["id"],
    )
    .await;
    assert_eq!(status, 404, "beta cannot delete acme's event");

    let delivered = event_body("delivered", "2026-11-22T16:30:00-05:00");
    let (status, beta) = create(&app, OTHER_SHOPIFY_ACCESS_TOKEN, &delivered).await;
    assert_eq!(status, 201, "{beta}");
    let beta_f = app.fulfillment("beta", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(beta_f["status"], "delivered");

    let acme_f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(acme_f["status"], "in_transit", "beta's write stays in beta");
    let (_, listed) = list(&app, SHOPIFY_ACCESS_TOKEN).await;
    assert_eq!(ids(&listed), [acme["id"].as_u64().unwrap()]);
    app.stop().await;
}

/// One bad request: what is sent, and the status and words expected back.
struct BadCase {
    name: &'static str,
    method: Method,
    path: String,
    token: Option<&'static str>,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    named: &'static str,
}

/// Each bad request: its status, a message naming what is wrong, nothing stored.
#[apply(backends)]
#[tokio::test]
async fn bad_requests_are_refused_with_a_reason_and_store_nothing(backend: Backend) {
    let app = spawn_app_with(backend, &[("SHIPGATE__SERVER__BODY_LIMIT", "4KiB")]).await;
    let events = shopify_events_path(ORDER, FULFILLMENT);
    let good = serde_json::to_vec(&sample("shopify", "rest_event_create")).unwrap();
    let mut huge = sample("shopify", "rest_event_create");
    huge["event"]["message"] = json!("x".repeat(5000));
    let case = |name, token, body: &[u8], status, named| BadCase {
        name,
        method: Method::POST,
        path: events.clone(),
        token,
        content_type: "application/json",
        body: body.to_vec(),
        status,
        named,
    };
    let token = Some(SHOPIFY_ACCESS_TOKEN);
    let cases = [
        case("missing token", None, &good, 401, "X-Shopify-Access-Token"),
        case(
            "unknown token",
            Some("not-a-token"),
            &good,
            401,
            "X-Shopify-Access-Token",
        ),
        BadCase {
            path: events.replace(SHOPIFY_API_VERSION, "2024-05"),
            ..case("bad version", token, &good, 404, "'2024-05'")
        },
        BadCase {
            path: events.replace(ORDER, "abc"),
            ..case("non-integer order_id", token, &good, 400, "order_id 'abc'")
        },
        BadCase {
            path: events.replace(FULFILLMENT, "0"),
            ..case(
                "zero fulfillment_id",
                token,
                &good,
                400,
                "fulfillment_id '0'",
            )
        },
        BadCase {
            method: Method::GET,
            path: shopify_event_path(ORDER, FULFILLMENT, "first"),
            ..case("non-integer event_id", token, b"", 400, "event_id 'first'")
        },
        BadCase {
            method: Method::GET,
            ..case(
                "unknown fulfillment",
                token,
                b"",
                404,
                "fulfillment 255858046",
            )
        },
        case(
            "missing event",
            token,
            br#"{"status": "in_transit"}"#,
            400,
            "`event`",
        ),
        case(
            "blank status",
            token,
            br#"{"event": {"status": " "}}"#,
            422,
            "status",
        ),
        case(
            "missing status",
            token,
            br#"{"event": {"message": "hello"}}"#,
            422,
            "status",
        ),
        case(
            "number for status",
            token,
            br#"{"event": {"status": 7}}"#,
            422,
            "status",
        ),
        case(
            "invalid happened_at",
            token,
            br#"{"event": {"status": "in_transit", "happened_at": "22/11/2026"}}"#,
            422,
            "happened_at",
        ),
        case(
            "invalid estimated_delivery_at",
            token,
            br#"{"event": {"status": "in_transit", "estimated_delivery_at": "soon"}}"#,
            422,
            "estimated_delivery_at",
        ),
        case(
            "not JSON",
            token,
            b"status=in_transit",
            400,
            "not valid JSON",
        ),
        BadCase {
            content_type: "text/plain",
            ..case("wrong Content-Type", token, &good, 415, "Content-Type")
        },
        case(
            "over the limit",
            token,
            &serde_json::to_vec(&huge).unwrap(),
            413,
            "body_limit",
        ),
    ];
    let (mut unauthorized, mut invalid) = (0, 0);
    for case in cases {
        let request = app
            .shopify_rest(case.method, &case.path, case.token)
            .header("Content-Type", case.content_type)
            .body(case.body);
        let (status, answer) = TestApp::send_for_json(request).await;
        assert_eq!(status, case.status, "{}: {answer}", case.name);
        if status == 422 {
            // Shopify's shape: the field, with its messages.
            let messages = answer["errors"][case.named].as_array();
            assert!(
                messages.is_some_and(|m| m.len() == 1 && m[0].is_string()),
                "{}: {answer} should name field {:?}",
                case.name,
                case.named
            );
        } else {
            let message = answer["errors"].as_str().unwrap_or_default();
            assert!(
                message.contains(case.named),
                "{}: {message:?} should name {:?}",
                case.name,
                case.named
            );
        }
        match status {
            401 => unauthorized += 1,
            400 | 413 | 415 | 422 => invalid += 1,
            _ => {}
        }
    }
    let stats = app.stats("shopify").await;
    assert_eq!(stats["accepted"], 0, "nothing is stored");
    assert_eq!(stats["unauthorized"], unauthorized);
    assert_eq!(stats["invalid"], invalid);
    assert_eq!(app.fulfillment("acme", ORDER, FULFILLMENT).await, None);
    let (_, recent) = app.admin_get("/api/v1/events").await;
    assert_eq!(recent["events"], json!([]));
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn an_inline_create_between_two_webhooks_is_built_on(backend: Backend) {
    // The worker applies the webhooks; the REST create applies inline in
    // between, and the second webhook must build on that change, not on
    // the state the worker itself last wrote.
    let app = spawn_app(backend).await;
    let mut transit = sample("shopify", "fulfillment_event_create");
    transit["status"] = json!("in_transit");
    transit["happened_at"] = json!("2026-11-22T06:30:00-05:00");
    let response = app
        .post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &transit))
        .await;
    assert_eq!(response.status(), 200);
    app.wait_for_fulfillment(("acme", ORDER, FULFILLMENT), |f| {
        TestApp::history_words(f).len() == 1
    })
    .await;
    created(&app, &event_body("delivered", "2026-11-22T16:30:00-05:00")).await;
    let mut delayed = transit.clone();
    delayed["id"] = json!(transit["id"].as_u64().unwrap_or_default() + 1);
    delayed["status"] = json!("delayed");
    delayed["happened_at"] = json!("2026-11-22T18:00:00-05:00");
    let response = app
        .post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &delayed))
        .await;
    assert_eq!(response.status(), 200);
    let f = app
        .wait_for_fulfillment(("acme", ORDER, FULFILLMENT), |f| {
            TestApp::history_words(f).len() == 3
        })
        .await;
    assert_eq!(
        TestApp::history_words(&f),
        ["in_transit", "delivered", "delayed"]
    );
    assert_eq!(f["status"], "delivered", "{f}");
    assert_eq!(f["deliveredAt"], "2026-11-22T21:30:00.000Z", "{f}");
    app.stop().await;
}
