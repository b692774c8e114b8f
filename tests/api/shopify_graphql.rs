//! The Shopify GraphQL Admin API end to end: `fulfillmentEventCreate` and
//! `fulfillment(id:) { events }`, read back through GraphQL, REST and the
//! ops view, each bad input answered as Shopify answers it.

use reqwest::Method;
use serde_json::{json, Value};

use rstest_reuse::apply;

use crate::helpers::*;
use crate::shopify_rest::oldest_supported_version;

const ORDER: &str = "450789469";
const FULFILLMENT: &str = "255858046";
const FULFILLMENT_GID: &str = "gid://shopify/Fulfillment/255858046";

fn graphql_path() -> String {
    format!("/admin/api/{SHOPIFY_API_VERSION}/graphql.json")
}

/// Posts a GraphQL request with `token`; answers the status and body.
async fn graphql(app: &TestApp, token: Option<&str>, body: &Value) -> (u16, Value) {
    TestApp::send_for_json(
        app.shopify_rest(Method::POST, &graphql_path(), token)
            .json(body),
    )
    .await
}

/// The sample mutation with its input changed by `edit`.
fn create_body(edit: impl FnOnce(&mut Value)) -> Value {
    let mut body = sample("shopify", "graphql_fulfillment_event_create");
    edit(&mut body["variables"]["fulfillmentEvent"]);
    body
}

/// Runs the mutation as acme; answers its payload, which must be there.
async fn create(app: &TestApp, body: &Value) -> Value {
    let (status, answer) = graphql(app, Some(SHOPIFY_ACCESS_TOKEN), body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.get("errors").is_none(), "{answer}");
    answer["data"]["fulfillmentEventCreate"].clone()
}

/// Runs the mutation as acme, expecting no userErrors; answers the event.
async fn created(app: &TestApp, body: &Value) -> Value {
    let payload = create(app, body).await;
    assert_eq!(payload["userErrors"], json!([]), "{payload}");
    payload["fulfillmentEvent"].clone()
}

/// Reads the fulfillment's events through the sample query, with `token`.
async fn events_of(app: &TestApp, token: &str) -> Value {
    let (status, answer) = graphql(
        app,
        Some(token),
        &sample("shopify", "graphql_fulfillment_events"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.get("errors").is_none(), "{answer}");
    answer["data"]["fulfillment"].clone()
}

/// The events' ids of a `fulfillment { events { edges } }` answer.
fn edge_ids(fulfillment: &Value) -> Vec<String> {
    fulfillment["events"]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The number of a `gid://shopify/FulfillmentEvent/N`.
fn number(gid: &Value) -> u64 {
    gid.as_str()
        .and_then(|g| g.strip_prefix("gid://shopify/FulfillmentEvent/"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{gid} is not a FulfillmentEvent id"))
}

/// Makes the acme fulfillment known, as Shopify's fulfillments/create
/// webhook does before any event.
async fn known_fulfillment(app: &TestApp) {
    let body = sample("shopify", "fulfillment_create");
    let response = app
        .post_shopify(&ShopifyDelivery::new("fulfillments/create", &body))
        .await;
    assert_eq!(response.status(), 200);
    app.wait_for_fulfillment(("acme", ORDER, FULFILLMENT), |_| true)
        .await;
}

#[apply(backends)]
#[tokio::test]
async fn a_created_event_is_applied_and_reads_back_through_graphql_and_rest(backend: Backend) {
    let app = spawn_app(backend).await;
    known_fulfillment(&app).await;
    let body = sample("shopify", "graphql_fulfillment_event_create");
    let sent = &body["variables"]["fulfillmentEvent"];
    let event = created(&app, &body).await;
    let id = number(&event["id"]);
    assert_eq!(event["status"], "OUT_FOR_DELIVERY");
    assert_eq!(event["message"], sent["message"]);
    assert_eq!(event["happenedAt"], "2026-11-23T12:45:00Z");
    // The ETA is the full date-time, in UTC, as REST answers it.
    assert_eq!(event["estimatedDeliveryAt"], "2026-11-23T23:00:00Z");

    // No waiting: the create was applied before it was answered, as a
    // REST-created event is.
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(f["status"], "out_for_delivery");
    assert_eq!(f["estimatedDeliveryDate"], "2026-11-23");
    assert_eq!(TestApp::history_words(&f), ["out_for_delivery"]);
    assert_eq!(f["trackingHistory"][0]["rawStatus"], "out_for_delivery");
    assert_eq!(f["trackingHistory"][0]["location"]["city"], "Pittsburgh");
    // Recorded as REST records: in the version that served the call.
    let served = std::cmp::max(SHOPIFY_API_VERSION.to_owned(), oldest_supported_version());
    assert_eq!(f["trackingHistory"][0]["apiVersion"], served.as_str());

    let (status, rest) = TestApp::send_for_json(app.shopify_rest(
        Method::GET,
        &shopify_event_path(ORDER, FULFILLMENT, &id.to_string()),
        Some(SHOPIFY_ACCESS_TOKEN),
    ))
    .await;
    assert_eq!(status, 200, "{rest}");
    let rest = &rest["fulfillment_event"];
    assert_eq!(rest["status"], "out_for_delivery");
    assert_eq!(rest["estimated_delivery_at"], "2026-11-23T23:00:00+00:00");
    assert_eq!(rest["admin_graphql_api_id"], event["id"]);
    for field in [
        "message",
        "city",
        "province",
        "country",
        "zip",
        "latitude",
        "longitude",
    ] {
        assert_eq!(rest[field], sent[field], "{field}");
    }

    let read = events_of(&app, SHOPIFY_ACCESS_TOKEN).await;
    assert_eq!(read["id"], FULFILLMENT_GID);
    let node = &read["events"]["edges"][0]["node"];
    for field in [
        "id",
        "status",
        "happenedAt",
        "estimatedDeliveryAt",
        "message",
    ] {
        assert_eq!(node[field], event[field], "{field}");
    }
    for field in [
        "city",
        "province",
        "country",
        "zip",
        "latitude",
        "longitude",
    ] {
        assert_eq!(node[field], sent[field], "{field}");
    }
    assert_eq!(read["events"]["edges"][0]["cursor"], id.to_string());
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn rest_and_webhook_events_read_back_through_graphql_with_one_numbering(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, rest) = TestApp::send_for_json(
        app.shopify_rest(
            Method::POST,
            &shopify_events_path(ORDER, FULFILLMENT),
            Some(SHOPIFY_ACCESS_TOKEN),
        )
        .json(&sample("shopify", "rest_event_create")),
    )
    .await;
    assert_eq!(status, 201, "{rest}");
    let rest_id = rest["fulfillment_event"]["id"].as_u64().unwrap();
    let webhook = sample("shopify", "fulfillment_event_create");
    let response = app
        .post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &webhook))
        .await;
    assert_eq!(response.status(), 200);
    app.wait_for_fulfillment(("acme", ORDER, FULFILLMENT), |f| {
        TestApp::history_words(f).len() == 2
    })
    .await;
    let graphql_id =
        number(&created(&app, &sample("shopify", "graphql_fulfillment_event_create")).await["id"]);
    assert_eq!(
        graphql_id,
        rest_id + 1,
        "GraphQL numbers its events in the REST API's sequence"
    );

    let read = events_of(&app, SHOPIFY_ACCESS_TOKEN).await;
    let gid = |n: u64| format!("gid://shopify/FulfillmentEvent/{n}");
    let webhook_id = webhook["id"].as_u64().unwrap();
    let mut by_id = [rest_id, graphql_id, webhook_id];
    by_id.sort_unstable();
    assert_eq!(
        edge_ids(&read),
        by_id.iter().map(|n| gid(*n)).collect::<Vec<_>>(),
        "sorted by id by default"
    );
    let rest_node = read["events"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["id"] == gid(rest_id))
        .unwrap();
    assert_eq!(rest_node["node"]["status"], "IN_TRANSIT");

    // Pages, in time order: the webhook's event happened first.
    let page = |arguments: &str| {
        json!({
            "query": format!(
                "query($id: ID!) {{ fulfillment(id: $id) {{ events({arguments}) {{ \
                 nodes {{ id }} pageInfo {{ hasNextPage hasPreviousPage }} }} }} }}"
            ),
            "variables": {"id": FULFILLMENT_GID},
        })
    };
    let in_time = [gid(webhook_id), gid(rest_id), gid(graphql_id)];
    for (arguments, ids, next, previous) in [
        ("first: 2, sortKey: HAPPENED_AT", &in_time[..2], true, false),
        ("last: 1, sortKey: HAPPENED_AT", &in_time[2..], false, true),
        (
            "first: 1, sortKey: HAPPENED_AT, reverse: true",
            &in_time[2..],
            true,
            false,
        ),
    ] {
        let (status, answer) = graphql(&app, Some(SHOPIFY_ACCESS_TOKEN), &page(arguments)).await;
        assert_eq!(status, 200, "{answer}");
        let events = &answer["data"]["fulfillment"]["events"];
        let nodes: Vec<&str> = events["nodes"]
            .as_array()
            .unwrap_or_else(|| panic!("{arguments}: {answer}"))
            .iter()
            .map(|n| n["id"].as_str().unwrap())
            .collect();
        assert_eq!(nodes, ids, "{arguments}");
        assert_eq!(events["pageInfo"]["hasNextPage"], next, "{arguments}");
        assert_eq!(
            events["pageInfo"]["hasPreviousPage"], previous,
            "{arguments}"
        );
    }
    let after = format!("first: 5, after: \"{webhook_id}\", sortKey: HAPPENED_AT");
    let (_, answer) = graphql(&app, Some(SHOPIFY_ACCESS_TOKEN), &page(&after)).await;
    assert_eq!(
        answer["data"]["fulfillment"]["events"]["nodes"],
        json!([{"id": gid(rest_id)}, {"id": gid(graphql_id)}])
    );
    let (_, answer) = graphql(&app, Some(SHOPIFY_ACCESS_TOKEN), &page("sortKey: ID")).await;
    let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("first or last"), "{answer}");
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_repeat_answers_the_original_and_an_older_status_is_stale_as_over_rest(backend: Backend) {
    let app = spawn_app(backend).await;
    known_fulfillment(&app).await;
    let body = sample("shopify", "graphql_fulfillment_event_create");
    let first = created(&app, &body).await;
    let again = created(&app, &body).await;
    assert_eq!(again, first, "a repeat answers the original event");
    let stats = app.stats("shopify").await;
    assert_eq!(stats["duplicate"], 1, "{stats}");

    // The same news through REST is the same event too.
    let sent = &body["variables"]["fulfillmentEvent"];
    let rest_body = json!({"event": {
        "status": "out_for_delivery",
        "happened_at": sent["happenedAt"],
        "estimated_delivery_at": sent["estimatedDeliveryAt"],
        "message": sent["message"],
    }});
    let (status, rest) = TestApp::send_for_json(
        app.shopify_rest(
            Method::POST,
            &shopify_events_path(ORDER, FULFILLMENT),
            Some(SHOPIFY_ACCESS_TOKEN),
        )
        .json(&rest_body),
    )
    .await;
    assert_eq!(status, 201, "{rest}");
    assert_eq!(rest["fulfillment_event"]["id"], number(&first["id"]));

    // An older in-transit, late: kept in the history as stale, the status
    // stays, as when it comes through REST or a webhook.
    let late = created(
        &app,
        &create_body(|e| {
            e["status"] = json!("IN_TRANSIT");
            e["happenedAt"] = json!("2026-11-22T06:30:00-05:00");
            e["message"] = json!("Arrived at USPS Destination Facility");
        }),
    )
    .await;
    assert_eq!(late["status"], "IN_TRANSIT");
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(f["status"], "out_for_delivery", "{f}");
    assert_eq!(
        TestApp::history_words(&f),
        ["in_transit", "out_for_delivery"]
    );
    assert_eq!(f["trackingHistory"][0]["stale"], true, "{f}");
    assert_eq!(f["trackingHistory"][1]["stale"], false, "{f}");
    // An event word leaves the status alone.
    created(
        &app,
        &create_body(|e| {
            e["status"] = json!("DELAYED");
            e["happenedAt"] = json!("2026-11-23T09:00:00-05:00");
        }),
    )
    .await;
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(f["status"], "out_for_delivery", "{f}");
    assert_eq!(f["trackingHistory"][2]["kind"], "event", "{f}");
    assert_eq!(f["trackingHistory"][2]["status"], "delayed", "{f}");
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn bad_input_is_a_user_error_naming_its_field_and_stores_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    known_fulfillment(&app).await;
    let cases: [(&str, &str, Value, &str); 6] = [
        (
            "not a global id",
            "fulfillmentId",
            json!("255858046"),
            "'255858046'",
        ),
        (
            "another kind's global id",
            "fulfillmentId",
            json!("gid://shopify/Order/450789469"),
            "'gid://shopify/Order/450789469'",
        ),
        (
            "unknown fulfillment",
            "fulfillmentId",
            json!("gid://shopify/Fulfillment/999"),
            "gid://shopify/Fulfillment/999",
        ),
        (
            "bad happenedAt",
            "happenedAt",
            json!("22/11/2026"),
            "'22/11/2026'",
        ),
        (
            "bad estimatedDeliveryAt",
            "estimatedDeliveryAt",
            json!("next tuesday"),
            "'next tuesday'",
        ),
        (
            "happenedAt without an offset",
            "happenedAt",
            json!("2026-11-22T06:30:00"),
            "'2026-11-22T06:30:00'",
        ),
    ];
    for (name, field, value, named) in cases {
        let payload = create(
            &app,
            &create_body(|e| {
                e[field] = value;
            }),
        )
        .await;
        assert!(payload["fulfillmentEvent"].is_null(), "{name}: {payload}");
        let errors = payload["userErrors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{name}: {payload}");
        assert_eq!(
            errors[0]["field"],
            json!(["fulfillmentEvent", field]),
            "{name}"
        );
        let message = errors[0]["message"].as_str().unwrap();
        assert!(
            message.contains(named),
            "{name}: {message:?} should name {named:?}"
        );
    }
    let stats = app.stats("shopify").await;
    assert_eq!(
        stats["accepted"], 1,
        "only the fulfillments/create webhook: {stats}"
    );
    // Counted as REST counts its 400s; an unknown fulfillment is not
    // malformed, as REST's 404 is not counted.
    assert_eq!(stats["invalid"], 5, "{stats}");
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(TestApp::history_words(&f), Vec::<String>::new());
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn an_unknown_status_or_a_malformed_query_is_a_graphql_error(backend: Backend) {
    let app = spawn_app(backend).await;
    known_fulfillment(&app).await;
    let unknown_status = create_body(|e| e["status"] = json!("TELEPORTED"));
    let broken = json!({"query": "mutation { fulfillmentEventCreate(fulfillmentEvent: {"});
    let unknown_field = json!({
        "query": "query { fulfillment(id: \"gid://shopify/Fulfillment/255858046\") { trackingColour } }"
    });
    let bad_id = json!({
        "query": "query { fulfillment(id: \"255858046\") { id } }"
    });
    for (name, body, named) in [
        ("unknown status", &unknown_status, "TELEPORTED"),
        ("does not parse", &broken, "line"),
        ("unknown field", &unknown_field, "trackingColour"),
        ("not a global id", &bad_id, "'255858046'"),
    ] {
        let (status, answer) = graphql(&app, Some(SHOPIFY_ACCESS_TOKEN), body).await;
        assert_eq!(status, 200, "{name}: {answer}");
        let errors = answer["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no errors in {answer}"));
        let message = errors[0]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(named) || errors[0].to_string().contains(named),
            "{name}: {answer} should name {named:?}"
        );
        assert!(
            answer["data"].is_null() || answer["data"]["fulfillment"].is_null(),
            "{name}: {answer}"
        );
    }
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(TestApp::history_words(&f), Vec::<String>::new());
    assert_eq!(app.stats("shopify").await["invalid"], 4);
    // An unknown fulfillment is no error to read: it is null, as on Shopify.
    let mut query = sample("shopify", "graphql_fulfillment_events");
    query["variables"]["id"] = json!("gid://shopify/Fulfillment/999");
    let (status, answer) = graphql(&app, Some(SHOPIFY_ACCESS_TOKEN), &query).await;
    assert_eq!(
        (status, answer),
        (200, json!({"data": {"fulfillment": null}}))
    );
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_call_is_refused_as_the_rest_api_refuses_it(backend: Backend) {
    let app = spawn_app(backend).await;
    known_fulfillment(&app).await;
    let good = sample("shopify", "graphql_fulfillment_event_create");
    let send = |path: String, token: Option<&'static str>, body: Vec<u8>| {
        app.shopify_rest(Method::POST, &path, token)
            .header("Content-Type", "application/json")
            .body(body)
    };
    let good_bytes = serde_json::to_vec(&good).unwrap();
    for (name, request, status, named) in [
        (
            "missing token",
            send(graphql_path(), None, good_bytes.clone()),
            401,
            "X-Shopify-Access-Token",
        ),
        (
            "unknown token",
            send(graphql_path(), Some("not-a-token"), good_bytes.clone()),
            401,
            "X-Shopify-Access-Token",
        ),
        (
            "unknown version",
            send(
                graphql_path().replace(SHOPIFY_API_VERSION, "2024-05"),
                Some(SHOPIFY_ACCESS_TOKEN),
                good_bytes.clone(),
            ),
            404,
            "'2024-05'",
        ),
        (
            "a version later than the release candidate",
            send(
                graphql_path().replace(SHOPIFY_API_VERSION, "2099-01"),
                Some(SHOPIFY_ACCESS_TOKEN),
                good_bytes.clone(),
            ),
            404,
            "'2099-01'",
        ),
        (
            "not JSON",
            send(
                graphql_path(),
                Some(SHOPIFY_ACCESS_TOKEN),
                b"{ fulfillment }".to_vec(),
            ),
            400,
            "not valid JSON",
        ),
        (
            "no query",
            send(
                graphql_path(),
                Some(SHOPIFY_ACCESS_TOKEN),
                br#"{"variables": {}}"#.to_vec(),
            ),
            400,
            "query",
        ),
        (
            "variables not an object",
            send(
                graphql_path(),
                Some(SHOPIFY_ACCESS_TOKEN),
                br#"{"query": "query { shop { id } }", "variables": [1]}"#.to_vec(),
            ),
            400,
            "variables",
        ),
    ] {
        let (answered, answer) = TestApp::send_for_json(request).await;
        assert_eq!(answered, status, "{name}: {answer}");
        let message = answer["errors"].as_str().unwrap_or_default();
        assert!(
            message.contains(named),
            "{name}: {message:?} should name {named:?}"
        );
    }
    let stats = app.stats("shopify").await;
    assert_eq!(stats["unauthorized"], 2, "{stats}");
    assert_eq!(
        stats["accepted"], 1,
        "only the fulfillments/create webhook: {stats}"
    );
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(TestApp::history_words(&f), Vec::<String>::new());
    app.stop().await;
}

/// The version a GraphQL answer says served it, from its header.
fn served_version(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("X-Shopify-API-Version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// As REST: a version Shopify no longer supports is served as the oldest
/// supported one, and every answer says which version served it, all but
/// the 404 for a version that is none.
#[apply(backends)]
#[tokio::test]
async fn every_answer_says_which_api_version_served_it_and_an_old_one_falls_forward(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    known_fulfillment(&app).await;
    let oldest = oldest_supported_version();
    let at = |version: &str| graphql_path().replace(SHOPIFY_API_VERSION, version);
    let good = sample("shopify", "graphql_fulfillment_event_create");
    let query = sample("shopify", "graphql_fulfillment_events");
    let unstable = "unstable".to_owned();
    for (name, path, token, body, status, version) in [
        (
            "create",
            at("2020-01"),
            Some(SHOPIFY_ACCESS_TOKEN),
            good.clone(),
            200,
            Some(&oldest),
        ),
        (
            "query",
            at("2020-01"),
            Some(SHOPIFY_ACCESS_TOKEN),
            query.clone(),
            200,
            Some(&oldest),
        ),
        (
            "no token",
            at("2020-01"),
            None,
            query.clone(),
            401,
            Some(&oldest),
        ),
        (
            "no query",
            at("2020-01"),
            Some(SHOPIFY_ACCESS_TOKEN),
            json!({}),
            400,
            Some(&oldest),
        ),
        (
            "unstable",
            at("unstable"),
            Some(SHOPIFY_ACCESS_TOKEN),
            query.clone(),
            200,
            Some(&unstable),
        ),
        (
            "not a version",
            at("2024-05"),
            Some(SHOPIFY_ACCESS_TOKEN),
            query.clone(),
            404,
            None,
        ),
        (
            "not released",
            at("2099-01"),
            Some(SHOPIFY_ACCESS_TOKEN),
            query.clone(),
            404,
            None,
        ),
    ] {
        let response = app
            .shopify_rest(Method::POST, &path, token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{name}");
        assert_eq!(served_version(&response).as_ref(), version, "{name}");
        if status == 200 {
            let answer: Value = response.json().await.unwrap();
            assert!(answer.get("errors").is_none(), "{name}: {answer}");
        }
    }
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(TestApp::history_words(&f), ["out_for_delivery"]);
    assert_eq!(f["trackingHistory"][0]["apiVersion"], oldest.as_str());
    app.stop().await;
}

/// Shopify's FulfillmentEventStatus enum is per version: a status the
/// served version does not define (PICKED_UP outside `unstable`) is a
/// GraphQL error, nothing stored, counted invalid; `unstable` takes it.
#[apply(backends)]
#[tokio::test]
async fn a_status_the_served_version_does_not_define_is_a_graphql_error(backend: Backend) {
    let app = spawn_app(backend).await;
    known_fulfillment(&app).await;
    let picked_up = create_body(|e| e["status"] = json!("PICKED_UP"));
    let (status, answer) = graphql(&app, Some(SHOPIFY_ACCESS_TOKEN), &picked_up).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["data"].is_null(), "{answer}");
    let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
    let served = std::cmp::max(SHOPIFY_API_VERSION.to_owned(), oldest_supported_version());
    assert!(
        message.contains("'status'")
            && message.contains("PICKED_UP")
            && message.contains(&format!("API version {served}"))
            && message.contains("CARRIER_PICKED_UP"),
        "{message:?}"
    );
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(TestApp::history_words(&f), Vec::<String>::new());
    assert_eq!(app.stats("shopify").await["invalid"], 1);

    let (status, answer) = TestApp::send_for_json(
        app.shopify_rest(
            Method::POST,
            &graphql_path().replace(SHOPIFY_API_VERSION, "unstable"),
            Some(SHOPIFY_ACCESS_TOKEN),
        )
        .json(&picked_up),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let payload = &answer["data"]["fulfillmentEventCreate"];
    assert_eq!(payload["userErrors"], json!([]), "{answer}");
    assert_eq!(payload["fulfillmentEvent"]["status"], "PICKED_UP");
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(TestApp::history_words(&f), ["delivered"]);
    assert_eq!(f["trackingHistory"][0]["rawStatus"], "picked_up");
    assert_eq!(f["trackingHistory"][0]["apiVersion"], "unstable");
    app.stop().await;
}

/// An ETA sent as a date alone answers as that day's midnight UTC, as
/// REST answers it.
#[apply(backends)]
#[tokio::test]
async fn an_eta_given_as_a_date_answers_as_its_midnight_utc(backend: Backend) {
    let app = spawn_app(backend).await;
    known_fulfillment(&app).await;
    let event = created(
        &app,
        &create_body(|e| e["estimatedDeliveryAt"] = json!("2026-11-24")),
    )
    .await;
    assert_eq!(event["estimatedDeliveryAt"], "2026-11-24T00:00:00Z");
    let read = events_of(&app, SHOPIFY_ACCESS_TOKEN).await;
    assert_eq!(
        read["events"]["edges"][0]["node"]["estimatedDeliveryAt"],
        "2026-11-24T00:00:00Z"
    );
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(f["estimatedDeliveryDate"], "2026-11-24");
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn an_access_token_only_reaches_its_own_stores_fulfillments(backend: Backend) {
    let app = spawn_app(backend).await;
    known_fulfillment(&app).await;
    created(&app, &sample("shopify", "graphql_fulfillment_event_create")).await;
    let (status, answer) = graphql(
        &app,
        Some(OTHER_SHOPIFY_ACCESS_TOKEN),
        &sample("shopify", "graphql_fulfillment_events"),
    )
    .await;
    assert_eq!(
        (status, answer),
        (200, json!({"data": {"fulfillment": null}}))
    );
    let (status, answer) = graphql(
        &app,
        Some(OTHER_SHOPIFY_ACCESS_TOKEN),
        &sample("shopify", "graphql_fulfillment_event_create"),
    )
    .await;
    assert_eq!(status, 200);
    let payload = &answer["data"]["fulfillmentEventCreate"];
    assert!(payload["fulfillmentEvent"].is_null(), "{answer}");
    assert_eq!(
        payload["userErrors"][0]["field"],
        json!(["fulfillmentEvent", "fulfillmentId"])
    );
    assert_eq!(app.fulfillment("beta", ORDER, FULFILLMENT).await, None);
    let acme = events_of(&app, SHOPIFY_ACCESS_TOKEN).await;
    assert_eq!(edge_ids(&acme).len(), 1);
    app.stop().await;
}

/// Shopify's fulfillment ids are unique, but two orders here may hold the
/// same one (a client's mistake): GraphQL cannot tell which is meant, so it
/// says so, naming both, and changes neither.
#[apply(backends)]
#[tokio::test]
async fn a_fulfillment_id_of_two_orders_is_refused_naming_both(backend: Backend) {
    let app = spawn_app(backend).await;
    for order in [ORDER, "450789470"] {
        let (status, answer) = TestApp::send_for_json(
            app.shopify_rest(
                Method::POST,
                &shopify_events_path(order, FULFILLMENT),
                Some(SHOPIFY_ACCESS_TOKEN),
            )
            .json(&sample("shopify", "rest_event_create")),
        )
        .await;
        assert_eq!(status, 201, "{answer}");
    }
    let payload = create(&app, &sample("shopify", "graphql_fulfillment_event_create")).await;
    assert!(payload["fulfillmentEvent"].is_null(), "{payload}");
    let message = payload["userErrors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("450789469, 450789470"),
        "{message:?} should name both orders"
    );
    let (status, answer) = graphql(
        &app,
        Some(SHOPIFY_ACCESS_TOKEN),
        &sample("shopify", "graphql_fulfillment_events"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(answer["data"]["fulfillment"].is_null(), "{answer}");
    let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("450789469, 450789470"), "{answer}");
    for order in [ORDER, "450789470"] {
        let f = app.fulfillment("acme", order, FULFILLMENT).await.unwrap();
        assert_eq!(TestApp::history_words(&f), ["in_transit"], "{order}");
    }
    app.stop().await;
}

/// Storage unreachable is a 503 with Retry-After in the REST error shape,
/// never a 200 whose `errors` a client could take for "recorded"; when it
/// is back, the same create goes through. Redis only: only a server of the
/// test's own can be stopped.
#[tokio::test]
async fn storage_down_is_a_503_and_nothing_is_lost() {
    let mut redis = redis_server::RedisServer::start(true);
    let env = redis_env(&redis.url());
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with(Backend::Memory, &extra).await;
    known_fulfillment(&app).await;
    let body = sample("shopify", "graphql_fulfillment_event_create");
    redis.stop();
    let response = app
        .shopify_rest(Method::POST, &graphql_path(), Some(SHOPIFY_ACCESS_TOKEN))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert!(response.headers().contains_key("x-shopify-api-version"));
    let answer: Value = response.json().await.unwrap();
    assert!(answer["errors"].as_str().is_some(), "{answer}");
    redis.restart();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let payload = loop {
        let (status, answer) = graphql(&app, Some(SHOPIFY_ACCESS_TOKEN), &body).await;
        if status == 200 {
            break answer["data"]["fulfillmentEventCreate"].clone();
        }
        assert!(
            status == 503 && tokio::time::Instant::now() < deadline,
            "{status}: {answer}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(payload["userErrors"], json!([]), "{payload}");
    assert_eq!(payload["fulfillmentEvent"]["status"], "OUT_FOR_DELIVERY");
    let f = app.fulfillment("acme", ORDER, FULFILLMENT).await.unwrap();
    assert_eq!(TestApp::history_words(&f), ["out_for_delivery"]);
    app.stop().await;
}
