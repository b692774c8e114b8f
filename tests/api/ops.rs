//! The ops API: admin auth, events paging, stats shape, health checks.

use serde_json::{json, Value};

use rstest_reuse::apply;

use crate::helpers::*;

#[apply(backends)]
#[tokio::test]
async fn the_admin_api_needs_an_admin_token(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in [
        "/api/v1/stats",
        "/api/v1/events",
        "/api/v1/unmapped",
        "/api/v1/backlog",
    ] {
        let none = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(none.status(), 401, "{path}");
        let body: Value = none.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("Authorization"),
            "{body}"
        );
        let wrong = app
            .client
            .get(app.url(path))
            .bearer_auth(REDO_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path}");
    }
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn health_and_ready_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn stats_list_every_provider_and_outcome(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, stats) = app.admin_get("/api/v1/stats").await;
    assert_eq!(status, 200);
    let zero = json!({"accepted": 0, "duplicate": 0, "unauthorized": 0, "invalid": 0,
        "unmapped": 0, "ignored": 0, "limited": 0});
    assert_eq!(
        stats,
        json!({"providers": {"shopify": zero, "carriyo": zero, "redo": zero,
            "aftership": zero, "easypost": zero}})
    );
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn recent_events_come_newest_first_and_page_with_before(backend: Backend) {
    let app = spawn_app(backend).await;
    for i in 0..5u64 {
        let mut body = sample("shopify", "fulfillment_event_create");
        body["id"] = json!(70 + i);
        body["happened_at"] = json!(format!("2026-11-21T0{i}:00:00Z"));
        app.post_shopify(&ShopifyDelivery::new("fulfillment_events/create", &body))
            .await;
    }
    let (_, first) = app
        .admin_get("/api/v1/events?provider=shopify&limit=3")
        .await;
    let page: Vec<String> = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["source_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(page, ["74", "73", "72"]);
    let last = first["events"][2]["id"].as_str().unwrap();
    let (_, second) = app
        .admin_get(&format!("/api/v1/events?limit=3&before={last}"))
        .await;
    let page: Vec<String> = second["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["source_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(page, ["71", "70"]);
    let (_, other) = app.admin_get("/api/v1/events?provider=carriyo").await;
    assert_eq!(other["events"], json!([]));
    let (status, bad) = app.admin_get("/api/v1/events?provider=fedex").await;
    assert_eq!(status, 400);
    assert!(bad["error"].as_str().unwrap().contains("fedex"));
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn unknown_paths_answer_json_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("/nope"));
    app.stop().await;
}
