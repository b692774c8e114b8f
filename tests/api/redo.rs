//! The Redo-style API end to end: orders, fulfillments, shipment statuses
//! and events, dedup, and every bad input, against Redo's published schema
//! (`@redotech/redo-api-schema` 2.2.693), whose facts are written out here.

use serde_json::{json, Value};

use rstest_reuse::apply;

use crate::helpers::*;

pub(crate) const ORDER: &str = "R-2001";
pub(crate) const FULFILLMENT: &str = "F-2001-1";

/// Redo's shipment statuses (`orders-api-fulfillment.schema` status enum).
pub(crate) const STATUSES: [&str; 10] = [
    "pre_transit",
    "unknown",
    "in_transit",
    "out_for_delivery",
    "available_for_pickup",
    "delivered",
    "return_to_sender",
    "failure",
    "cancelled",
    "error",
];
/// Redo's automation events, which never change the status.
const EVENTS: [&str; 3] = ["stalled_in_transit", "delayed", "arriving_early"];

pub(crate) fn fulfillments_path(order: &str) -> String {
    format!("/orders/{order}/fulfillments")
}

pub(crate) fn status_path(fulfillment: &str) -> String {
    format!("/orders/{ORDER}/fulfillments/{fulfillment}/shipment-status")
}

/// Creates the sample order; answers our id for it.
async fn create_sample_order(app: &TestApp) -> String {
    let (status, answer) = app
        .redo_post("/orders", &sample("redo", "create_order"))
        .await;
    assert_eq!(status, 200, "{answer}");
    answer["orderId"].as_str().expect("orderId").to_owned()
}

/// Creates a fulfillment of one shoe with no tracking news yet.
pub(crate) async fn create_untracked_fulfillment(app: &TestApp, id: &str) -> Value {
    let body = json!({"fulfillmentId": id, "lineItems": [{"id": "li-1", "quantity": 1}]});
    let (status, answer) = app.redo_post(&fulfillments_path(ORDER), &body).await;
    assert_eq!(status, 200, "{answer}");
    answer["fulfillment"].clone()
}

fn is_object_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[apply(backends)]
#[tokio::test]
async fn an_order_is_created_and_read_back_by_either_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let order = sample("redo", "create_order");
    let (status, created) = app.redo_post("/orders", &order).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["externalOrderId"], ORDER);
    let ours = created["orderId"].as_str().unwrap();
    assert!(is_object_id(ours), "{ours} is not shaped like Redo's ids");
    let mut expected = order.clone();
    expected["fulfillments"] = json!([]);
    for id in [ORDER, ours] {
        let (status, read) = app.redo_get(&format!("/orders/{id}")).await;
        assert_eq!(status, 200, "{id}: {read}");
        assert_eq!(read, expected, "{id}");
    }
    let (status, _) = TestApp::send_for_json(
        app.client
            .get(app.url(&redo_path(OTHER_REDO_STORE_ID, &format!("/orders/{ORDER}"))))
            .bearer_auth(OTHER_REDO_TOKEN),
    )
    .await;
    assert_eq!(status, 404, "another store does not see acme's orders");
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_fulfillment_goes_from_label_to_in_transit_to_delayed(backend: Backend) {
    let app = spawn_app(backend).await;
    let ours = create_sample_order(&app).await;

    let (status, created) = app
        .redo_post(
            &fulfillments_path(&ours),
            &sample("redo", "create_fulfillment"),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["success"], true);
    let f = &created["fulfillment"];
    assert_eq!(f["id"], FULFILLMENT);
    assert_eq!(f["status"], "pre_transit");
    assert_eq!(f["trackingCompany"], "UPS");
    assert_eq!(f["trackingNumber"], "1Z999AA10123456784");
    assert_eq!(f["estimatedDeliveryDate"], "2026-11-25");
    assert_eq!(
        f["lineItems"],
        json!([{"id": "li-1", "quantity": 1, "title": "Trail Running Shoe - Size 10",
                "productId": "prod-101", "variantId": "var-101-10", "sku": "TRS-101-10"}])
    );
    assert_eq!(
        f["trackingHistory"],
        json!([{"message": "Shipping label created", "status": "pre_transit",
                "datetime": "2026-11-20T16:30:00.000Z",
                "location": {"city": "Columbus", "state": "OH", "country": "US",
                             "postalCode": "43215"}}])
    );

    let (status, moved) = app
        .redo_post(
            &status_path(FULFILLMENT),
            &sample("redo", "shipment_status"),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["success"], true);
    assert_eq!(moved["fulfillment"]["status"], "in_transit");
    // Applied before the answer: the state shows it at once, no waiting.
    let now = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(now["status"], "in_transit");

    let (status, delayed) = app
        .redo_post(&status_path(FULFILLMENT), &sample("redo", "shipment_event"))
        .await;
    assert_eq!(status, 200, "{delayed}");
    let f = &delayed["fulfillment"];
    assert_eq!(
        f["status"], "in_transit",
        "an event leaves the status alone"
    );
    assert_eq!(f["estimatedDeliveryDate"], "2026-11-27");
    assert_eq!(
        TestApp::history_words(f),
        ["pre_transit", "in_transit", "delayed"]
    );
    assert_eq!(
        f["trackingHistory"][2]["message"],
        "Delivery rescheduled: adverse weather in carrier network"
    );

    let (status, order) = app.redo_get(&format!("/orders/{ORDER}")).await;
    assert_eq!(status, 200);
    assert_eq!(order["fulfillments"], json!([f]));
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn initial_tracking_is_ignored_without_dummy_tracking_and_ids_are_generated(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    create_sample_order(&app).await;
    let mut body = sample("redo", "create_fulfillment");
    body.as_object_mut().unwrap().remove("fulfillmentId");
    body["useDummyTracking"] = json!(false);
    let (status, answer) = app.redo_post(&fulfillments_path(ORDER), &body).await;
    assert_eq!(status, 200, "{answer}");
    let f = &answer["fulfillment"];
    let id = f["id"].as_str().unwrap();
    assert!(is_object_id(id), "generated id {id}");
    assert_eq!(f["status"], "unknown");
    assert_eq!(f["trackingHistory"], json!([]));
    assert_eq!(f["trackingCompany"], "UPS");
    assert_eq!(app.stats("redo").await["accepted"], 0);
    assert!(app.fulfillment("acme", ORDER, id).await.is_some());

    body["useDummyTracking"] = json!(true);
    body.as_object_mut().unwrap().remove("initialTracking");
    let (status, answer) = app.redo_post(&fulfillments_path(ORDER), &body).await;
    assert_eq!(status, 200, "{answer}");
    let f = &answer["fulfillment"];
    assert_ne!(f["id"].as_str(), Some(id), "each generated id is new");
    assert_eq!(f["status"], "pre_transit", "the dummy tracker's default");
    assert_eq!(TestApp::history_words(f), ["pre_transit"]);
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn every_redo_word_maps_to_itself(backend: Backend) {
    let app = spawn_app(backend).await;
    create_sample_order(&app).await;
    let shipment_words = STATUSES.iter().filter(|w| **w != "unknown").chain(&EVENTS);
    for (i, word) in shipment_words.enumerate() {
        let id = format!("W-{i}");
        create_untracked_fulfillment(&app, &id).await;
        let body = json!({"status": word, "datetime": "2026-11-21T09:00:00Z"});
        let (status, answer) = app.redo_post(&status_path(&id), &body).await;
        assert_eq!(status, 200, "{word}: {answer}");
        let is_status = STATUSES.contains(word);
        let expected = if is_status { *word } else { "unknown" };
        assert_eq!(
            answer["fulfillment"]["status"], expected,
            "{word}: statuses set it, events leave it"
        );
        assert_eq!(TestApp::history_words(&answer["fulfillment"]), [*word]);
        let f = app.fulfillment("acme", ORDER, &id).await.unwrap();
        let entry = &f["trackingHistory"][0];
        assert_eq!(entry["rawStatus"], *word);
        assert_eq!(entry["kind"], if is_status { "status" } else { "event" });
    }
    for (i, word) in STATUSES.iter().enumerate() {
        let body = json!({
            "fulfillmentId": format!("I-{i}"),
            "lineItems": [{"id": "li-2", "quantity": 2}],
            "useDummyTracking": true,
            "initialTracking": {"status": word},
        });
        let (status, answer) = app.redo_post(&fulfillments_path(ORDER), &body).await;
        assert_eq!(status, 200, "initialTracking {word}: {answer}");
        assert_eq!(answer["fulfillment"]["status"], *word);
        assert_eq!(TestApp::history_words(&answer["fulfillment"]), [*word]);
    }
    app.stop().await;
}

/// An `Idempotency-Key` is scoped to its fulfillment, on every backend:
/// the same key on another fulfillment is news, not a replay.
#[apply(backends)]
#[tokio::test]
async fn an_idempotency_key_reused_on_another_fulfillment_is_applied_to_both(backend: Backend) {
    let app = spawn_app(backend).await;
    create_sample_order(&app).await;
    let second = "F-2001-2";
    for fulfillment in [FULFILLMENT, second] {
        create_untracked_fulfillment(&app, fulfillment).await;
        let (status, answer) = TestApp::send_for_json(
            app.redo(reqwest::Method::POST, &status_path(fulfillment))
                .header("Idempotency-Key", "key-reused")
                .json(&sample("redo", "shipment_status")),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            TestApp::history_words(&answer["fulfillment"]),
            ["in_transit"],
            "{fulfillment}: {answer}"
        );
    }
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn an_idempotency_key_replay_applies_once(backend: Backend) {
    let app = spawn_app(backend).await;
    create_sample_order(&app).await;
    create_untracked_fulfillment(&app, FULFILLMENT).await;
    let update = sample("redo", "shipment_status");
    let send = |body: Value, key: &'static str| {
        TestApp::send_for_json(
            app.redo(reqwest::Method::POST, &status_path(FULFILLMENT))
                .header("Idempotency-Key", key)
                .json(&body),
        )
    };
    let (status, first) = send(update.clone(), "key-1").await;
    assert_eq!(status, 200, "{first}");
    // Replays under the same key, with a later time: only the key can
    // tell they are the same delivery.
    for minute in ["13", "14"] {
        let mut replay = update.clone();
        replay["datetime"] = json!(format!("2026-11-21T09:{minute}:00Z"));
        let (status, answer) = send(replay, "key-1").await;
        assert_eq!(status, 200);
        assert_eq!(answer, first, "a replay answers the fulfillment as it is");
    }
    let mut other = update.clone();
    other["datetime"] = json!("2026-11-21T09:13:00Z");
    let (status, answer) = send(other, "key-2").await;
    assert_eq!(status, 200);
    assert_eq!(TestApp::history_words(&answer["fulfillment"]).len(), 2);
    app.wait_until_applied().await;
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(TestApp::history_words(&f), ["in_transit", "in_transit"]);
    let stats = app.stats("redo").await;
    assert_eq!(
        (stats["accepted"].as_u64(), stats["duplicate"].as_u64()),
        (Some(2), Some(2))
    );
    app.stop().await;
}

/// The messages of a fulfillment's tracking history, in its order.
fn messages(fulfillment: &Value) -> Vec<String> {
    fulfillment["trackingHistory"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|e| e["message"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[apply(backends)]
#[tokio::test]
async fn concurrent_statuses_each_answer_their_own_update_and_apply_once(backend: Backend) {
    const POSTS: usize = 16;
    let app = spawn_app(backend).await;
    create_sample_order(&app).await;
    create_untracked_fulfillment(&app, FULFILLMENT).await;
    // Sent together, most read the fulfillment before another's write
    // lands, so their own write finds the version moved on.
    let posts = (0..POSTS).map(|i| {
        let mut update = sample("redo", "shipment_status");
        update["datetime"] = json!(format!("2026-11-21T09:{:02}:00Z", 10 + i));
        update["message"] = json!(format!("scan {i}"));
        TestApp::send_for_json(
            app.redo(reqwest::Method::POST, &status_path(FULFILLMENT))
                .header("Idempotency-Key", format!("scan-{i}"))
                .json(&update),
        )
    });
    let answers = futures_util::future::join_all(posts).await;
    for (i, (status, answer)) in answers.iter().enumerate() {
        assert_eq!(*status, 200, "{answer}");
        let answered = messages(&answer["fulfillment"]);
        assert!(
            answered.contains(&format!("scan {i}")),
            "post {i} answered without its own update: {answered:?}"
        );
    }
    app.wait_until_applied().await;
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    let each_once: Vec<String> = (0..POSTS).map(|i| format!("scan {i}")).collect();
    assert_eq!(messages(&f), each_once, "each once, in time order");
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn the_same_content_without_a_key_applies_once(backend: Backend) {
    let app = spawn_app(backend).await;
    create_sample_order(&app).await;
    create_untracked_fulfillment(&app, FULFILLMENT).await;
    let update = sample("redo", "shipment_event");
    let (status, first) = app.redo_post(&status_path(FULFILLMENT), &update).await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = app.redo_post(&status_path(FULFILLMENT), &update).await;
    assert_eq!(status, 200);
    assert_eq!(again, first);
    app.wait_until_applied().await;
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(TestApp::history_words(&f), ["delayed"]);
    let stats = app.stats("redo").await;
    assert_eq!(
        (stats["accepted"].as_u64(), stats["duplicate"].as_u64()),
        (Some(1), Some(1))
    );
    app.stop().await;
}

/// The path may name the order by our id or the client's; the Redis
/// backend reads differently for each, and both land on one fulfillment.
#[apply(backends)]
#[tokio::test]
async fn a_status_reaches_its_fulfillment_under_either_order_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let ours = create_sample_order(&app).await;
    create_untracked_fulfillment(&app, FULFILLMENT).await;
    let under = |order: &str| format!("/orders/{order}/fulfillments/{FULFILLMENT}/shipment-status");
    let (status, first) = app
        .redo_post(&under(ORDER), &sample("redo", "shipment_status"))
        .await;
    assert_eq!(status, 200, "{first}");
    let (status, second) = app
        .redo_post(&under(&ours), &sample("redo", "shipment_event"))
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        TestApp::history_words(&second["fulfillment"]),
        ["in_transit", "delayed"],
        "the second answer holds the first update"
    );
    let missing = format!("/orders/{ours}/fulfillments/F-404/shipment-status");
    let (status, answer) = app
        .redo_post(&missing, &sample("redo", "shipment_status"))
        .await;
    assert_eq!(status, 404, "{answer}");
    let message = answer["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("F-404") && message.contains(ORDER),
        "{message:?} should name the fulfillment and the order"
    );
    app.wait_until_applied().await;
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(TestApp::history_words(&f), ["in_transit", "delayed"]);
    assert_eq!(app.stats("redo").await["accepted"], 2);
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn taken_order_and_fulfillment_ids_are_conflicts(backend: Backend) {
    let app = spawn_app(backend).await;
    create_sample_order(&app).await;
    let mut again = sample("redo", "create_order");
    again["customer"]["email"] = json!("someone.else@example.com");
    let (status, answer) = app.redo_post("/orders", &again).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains(ORDER),
        "{answer}"
    );
    let (_, order) = app.redo_get(&format!("/orders/{ORDER}")).await;
    assert_eq!(order["customer"]["email"], "jordan.lee@example.com");

    let body = sample("redo", "create_fulfillment");
    let (status, _) = app.redo_post(&fulfillments_path(ORDER), &body).await;
    assert_eq!(status, 200);
    let mut other = body.clone();
    other["initialTracking"]["datetime"] = json!("2026-11-20T17:00:00Z");
    let (status, answer) = app.redo_post(&fulfillments_path(ORDER), &other).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains(FULFILLMENT),
        "{answer}"
    );
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(TestApp::history_words(&f), ["pre_transit"]);
    assert_eq!(app.stats("redo").await["accepted"], 1);
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn unknown_orders_and_fulfillments_are_not_found_and_store_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    create_sample_order(&app).await;
    let cases = [
        (reqwest::Method::GET, "/orders/R-404".to_owned(), "R-404"),
        (reqwest::Method::POST, fulfillments_path("R-404"), "R-404"),
        (
            reqwest::Method::POST,
            "/orders/R-404/fulfillments/F-1/shipment-status".to_owned(),
            "R-404",
        ),
        (reqwest::Method::POST, status_path("F-404"), "F-404"),
    ];
    for (method, path, named) in cases {
        let mut request = app.redo(method, &path);
        if path.ends_with("shipment-status") {
            request = request.json(&sample("redo", "shipment_status"));
        } else if path.ends_with("fulfillments") {
            request = request.json(&sample("redo", "create_fulfillment"));
        }
        let (status, answer) = TestApp::send_for_json(request).await;
        assert_eq!(status, 404, "{path}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(named),
            "{path}: {message:?} should name {named}"
        );
    }
    assert_eq!(app.fulfillment("acme", ORDER, "F-404").await, None);
    assert_eq!(app.fulfillment("acme", "R-404", FULFILLMENT).await, None);
    assert_eq!(app.stats("redo").await["accepted"], 0);
    let (_, events) = app.admin_get("/api/v1/events").await;
    assert_eq!(events["events"], json!([]));
    app.stop().await;
}

/// One bad request: where it goes, how it is sent, and what must come back.
struct BadRequest {
    name: &'static str,
    path: String,
    store_id: &'static str,
    authorization: Option<String>,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    named: Vec<String>,
}

impl BadRequest {
    /// A request that is right in every way but its body.
    fn body(name: &'static str, path: String, body: Value, named: &[&str]) -> Self {
        Self {
            name,
            path,
            store_id: REDO_STORE_ID,
            authorization: Some(format!("Bearer {REDO_TOKEN}")),
            content_type: "application/json",
            body: serde_json::to_vec(&body).unwrap(),
            status: 400,
            named: named.iter().map(|n| n.to_string()).collect(),
        }
    }
}

/// Each bad input: its status, a message naming the header, field or
/// value at fault, and nothing stored.
#[apply(backends)]
#[tokio::test]
async fn bad_requests_are_refused_with_a_reason_and_store_nothing(backend: Backend) {
    let app = spawn_app_with(backend, &[("SHIPGATE__SERVER__BODY_LIMIT", "4KiB")]).await;
    create_sample_order(&app).await;
    create_untracked_fulfillment(&app, FULFILLMENT).await;
    let status_update = sample("redo", "shipment_status");
    let with = |mut body: Value, pointer: &str, value: Value| {
        *body.pointer_mut(pointer).expect(pointer) = value;
        body
    };
    let bad_fulfillment = with(
        sample("redo", "create_fulfillment"),
        "/fulfillmentId",
        json!("F-BAD"),
    );
    let bad_order = with(sample("redo", "create_order"), "/orderId", json!("R-BAD"));
    let on_status =
        |name, body, named: &[&str]| BadRequest::body(name, status_path(FULFILLMENT), body, named);
    let on_fulfillments =
        |name, body, named: &[&str]| BadRequest::body(name, fulfillments_path(ORDER), body, named);
    let on_orders =
        |name, body, named: &[&str]| BadRequest::body(name, "/orders".to_owned(), body, named);
    let authorized_as = |name, authorization: Option<&str>, named: &str| BadRequest {
        authorization: authorization.map(str::to_owned),
        status: 401,
        named: vec![named.to_owned()],
        ..on_status(name, status_update.clone(), &[])
    };
    let allowed_listed = "pre_transit, in_transit, out_for_delivery, available_for_pickup, \
                          delivered, return_to_sender, failure, cancelled, error, \
                          stalled_in_transit, delayed, arriving_early";
    let cases = vec![
        authorized_as("no bearer", None, "Authorization"),
        authorized_as("wrong bearer", Some("Bearer nope"), "Authorization"),
        authorized_as(
            "not a bearer",
            Some(&format!("Basic {REDO_TOKEN}")),
            "Bearer <token>",
        ),
        authorized_as(
            "another store's token",
            Some(&format!("Bearer {OTHER_REDO_TOKEN}")),
            REDO_STORE_ID,
        ),
        BadRequest {
            store_id: "000000000000000000000000",
            ..authorized_as(
                "unknown storeId",
                Some(&format!("Bearer {REDO_TOKEN}")),
                "000000000000000000000000",
            )
        },
        BadRequest {
            body: b"status=in_transit".to_vec(),
            ..on_status("not JSON", json!({}), &["not valid JSON"])
        },
        on_status(
            "missing status",
            json!({"message": "left the depot"}),
            &["status"],
        ),
        on_status(
            "a number where a string belongs",
            with(status_update.clone(), "/message", json!(5)),
            &["`message`"],
        ),
        on_status(
            "status unknown",
            with(status_update.clone(), "/status", json!("unknown")),
            &["'unknown'", allowed_listed],
        ),
        on_status(
            "a word outside the enum",
            with(status_update.clone(), "/status", json!("warp_speed")),
            &["'warp_speed'", allowed_listed],
        ),
        on_status(
            "invalid datetime",
            with(status_update.clone(), "/datetime", json!("21/11/2026")),
            &["`datetime`", "21/11/2026"],
        ),
        on_status(
            "invalid estimatedDeliveryDate",
            with(
                status_update.clone(),
                "/estimatedDeliveryDate",
                json!("soon"),
            ),
            &["`estimatedDeliveryDate`", "soon"],
        ),
        on_status(
            "a location part that is not a string",
            with(status_update.clone(), "/location/postalCode", json!(43219)),
            &["location.postalCode"],
        ),
        on_fulfillments(
            "empty lineItems",
            with(bad_fulfillment.clone(), "/lineItems", json!([])),
            &["`lineItems`"],
        ),
        on_fulfillments(
            "quantity 0",
            with(bad_fulfillment.clone(), "/lineItems/0/quantity", json!(0)),
            &["lineItems[0].quantity", "0"],
        ),
        on_fulfillments(
            "quantity 1001",
            with(
                bad_fulfillment.clone(),
                "/lineItems/0/quantity",
                json!(1001),
            ),
            &["lineItems[0].quantity", "1001"],
        ),
        on_fulfillments(
            "unknown line item id",
            with(bad_fulfillment.clone(), "/lineItems/0/id", json!("li-9")),
            &["lineItems[0].id", "li-9"],
        ),
        on_fulfillments(
            "an event as initialTracking.status",
            with(
                bad_fulfillment.clone(),
                "/initialTracking/status",
                json!("delayed"),
            ),
            &["initialTracking.status", "'delayed'"],
        ),
        on_fulfillments(
            "invalid initialTracking.datetime",
            with(
                bad_fulfillment.clone(),
                "/initialTracking/datetime",
                json!("yesterday"),
            ),
            &["initialTracking.datetime", "yesterday"],
        ),
        on_fulfillments(
            "tracking without a code",
            with(
                bad_fulfillment.clone(),
                "/tracking",
                json!({"carrier": "UPS"}),
            ),
            &["tracking", "code"],
        ),
        on_orders(
            "order without createdAt",
            {
                let mut body = bad_order.clone();
                body.as_object_mut().unwrap().remove("createdAt");
                body
            },
            &["createdAt"],
        ),
        on_orders(
            "invalid createdAt",
            with(bad_order.clone(), "/createdAt", json!("2026-11-20")),
            &["`createdAt`", "2026-11-20"],
        ),
        on_orders(
            "order without line items",
            with(bad_order.clone(), "/lineItems", json!([])),
            &["`lineItems`"],
        ),
        on_orders(
            "order quantity 0",
            with(bad_order.clone(), "/lineItems/1/quantity", json!(0)),
            &["lineItems[1].quantity"],
        ),
        on_orders(
            "order line item without title",
            {
                let mut body = bad_order.clone();
                body["lineItems"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("title");
                body
            },
            &["lineItems[0]", "title"],
        ),
        on_orders(
            "negative price",
            with(bad_order.clone(), "/totalPrice", json!(-1)),
            &["totalPrice", "-1"],
        ),
        BadRequest {
            status: 413,
            ..on_status(
                "body over the limit",
                with(status_update.clone(), "/message", json!("x".repeat(5000))),
                &["body_limit"],
            )
        },
        BadRequest {
            status: 415,
            content_type: "text/plain",
            ..on_status(
                "wrong Content-Type",
                status_update.clone(),
                &["Content-Type"],
            )
        },
    ];
    let (mut unauthorized, mut invalid) = (0, 0);
    for case in cases {
        let mut request = app
            .client
            .post(app.url(&redo_path(case.store_id, &case.path)))
            .header("Content-Type", case.content_type)
            .body(case.body);
        if let Some(authorization) = &case.authorization {
            request = request.header("Authorization", authorization);
        }
        let (status, answer) = TestApp::send_for_json(request).await;
        let name = case.name;
        assert_eq!(status, case.status, "{name}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        for named in &case.named {
            assert!(
                message.contains(named.as_str()),
                "{name}: {message:?} should name {named:?}"
            );
        }
        if status == 401 {
            unauthorized += 1;
        } else {
            invalid += 1;
        }
    }
    let stats = app.stats("redo").await;
    assert_eq!(stats["accepted"], 0, "nothing is recorded");
    assert_eq!(stats["unauthorized"], unauthorized);
    assert_eq!(stats["invalid"], invalid);
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(
        (
            f["status"].as_str(),
            f["trackingHistory"].as_array().map(Vec::len)
        ),
        (Some("unknown"), Some(0))
    );
    assert_eq!(app.fulfillment("acme", ORDER, "F-BAD").await, None);
    let (status, _) = app.redo_get("/orders/R-BAD").await;
    assert_eq!(status, 404);
    let (_, events) = app.admin_get("/api/v1/events").await;
    assert_eq!(events["events"], json!([]));
    app.stop().await;
}

/// DELETEs an order of the acme store by `id`.
async fn delete_order(app: &TestApp, id: &str) -> (u16, Value) {
    TestApp::send_for_json(app.redo(reqwest::Method::DELETE, &format!("/orders/{id}"))).await
}

/// Deleting an order removes the order, under both its ids, and nothing
/// else: its fulfillments keep their tracking (news accepted is never
/// lost), later news for its reference still applies, and the Redo paths
/// answer 404 for it until an order with its `orderId` is created again,
/// which finds them.
#[apply(backends)]
#[tokio::test]
async fn deleting_an_order_keeps_its_tracking_and_the_redo_paths_answer_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let ours = create_sample_order(&app).await;
    let (status, _) = app
        .redo_post(
            &fulfillments_path(ORDER),
            &sample("redo", "create_fulfillment"),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .redo_post(
            &status_path(FULFILLMENT),
            &sample("redo", "shipment_status"),
        )
        .await;
    assert_eq!(status, 200);

    let (status, deleted) = delete_order(&app, ORDER).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        deleted,
        json!({"success": true, "orderId": ours, "externalOrderId": ORDER})
    );
    for id in [ORDER, ours.as_str()] {
        let (status, answer) = app.redo_get(&format!("/orders/{id}")).await;
        assert_eq!(status, 404, "GET by {id}: {answer}");
        let (status, answer) = delete_order(&app, id).await;
        assert_eq!(status, 404, "DELETE again by {id}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(id), "{answer}");
    }
    let (status, answer) = app
        .redo_post(
            &status_path(FULFILLMENT),
            &json!({"status": "delivered", "datetime": "2026-11-24T15:00:00Z"}),
        )
        .await;
    assert_eq!(status, 404, "{answer}");
    let (status, _) = app
        .redo_post(
            &fulfillments_path(ORDER),
            &json!({"fulfillmentId": "F-new", "lineItems": [{"id": "li-1", "quantity": 1}]}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        app.stats("redo").await["accepted"],
        2,
        "the 404s stored nothing"
    );

    // The tracking stays, on the ops API.
    let kept = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(kept["status"], "in_transit");
    assert_eq!(TestApp::history_words(&kept), ["pre_transit", "in_transit"]);

    // News another provider sends for the reference is accepted and applied.
    let mut carriyo = sample("carriyo", "shipment_in_transit");
    carriyo["references"] =
        json!({"partner_order_reference": ORDER, "partner_shipment_reference": FULFILLMENT});
    carriyo["post_shipping_info"]["status"] = json!("out_for_delivery");
    carriyo["update_date"] = json!("2026-11-22T07:00:00.000Z");
    let response = app
        .post_carriyo_webhook(&CarriyoDelivery::webhook(&carriyo))
        .await;
    assert_eq!(response.status(), 200);
    app.wait_for_fulfillment(("acme", ORDER, FULFILLMENT), |f| {
        f["status"] == "out_for_delivery"
    })
    .await;

    // Created again, the order finds its fulfillment under its reference.
    let again = create_sample_order(&app).await;
    assert_ne!(again, ours, "a new order, with an id of its own");
    let (status, order) = app.redo_get(&format!("/orders/{ORDER}")).await;
    assert_eq!(status, 200);
    let fulfillments = order["fulfillments"].as_array().unwrap();
    assert_eq!(fulfillments.len(), 1, "{order}");
    assert_eq!(fulfillments[0]["id"], FULFILLMENT);
    assert_eq!(fulfillments[0]["status"], "out_for_delivery");
    app.stop().await;
}

/// Deleting is authenticated as every Redo path, by the client's id or
/// ours; a refused or unknown delete removes nothing.
#[apply(backends)]
#[tokio::test]
async fn deleting_needs_the_stores_token_and_an_order_that_exists(backend: Backend) {
    let app = spawn_app(backend).await;
    let ours = create_sample_order(&app).await;
    let path = format!("/orders/{ORDER}");
    let cases = [
        (REDO_STORE_ID, Some("not-a-token"), 401, "bearer token"),
        (REDO_STORE_ID, None, 401, "Authorization"),
        (OTHER_REDO_STORE_ID, Some(REDO_TOKEN), 401, "bearer token"),
        ("000000000000000000000000", Some(REDO_TOKEN), 401, "storeId"),
    ];
    for (store_id, token, status, named) in cases {
        let mut request = app.client.delete(app.url(&redo_path(store_id, &path)));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let (got, answer) = TestApp::send_for_json(request).await;
        assert_eq!(got, status, "{store_id} {token:?}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(named),
            "{answer}"
        );
    }
    let (status, answer) = delete_order(&app, "R-404").await;
    assert_eq!(status, 404);
    assert!(
        answer["error"].as_str().unwrap().contains("R-404"),
        "{answer}"
    );
    assert_eq!(app.redo_get(&path).await.0, 200, "nothing was deleted");
    // Our id deletes it as well as the client's.
    let (status, deleted) = delete_order(&app, &ours).await;
    assert_eq!(status, 200);
    assert_eq!(deleted["externalOrderId"], ORDER);
    assert_eq!(app.redo_get(&path).await.0, 404);
    app.stop().await;
}
