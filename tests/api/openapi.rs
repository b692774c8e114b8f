//! `/openapi.json` against the app that serves it.
//!
//! Why these checks are enough to say the document lists every route the
//! app serves and nothing else: the app has one route table
//! (`routes` in `src/app.rs`), and each handler is registered there through
//! `utoipa-actix-web`, which takes the operation's method and path from the
//! handler's actix route attribute, the same one actix serves; so each
//! served route has its operation and each operation its route, by
//! construction (a unit test in `src/app.rs` calls every documented
//! operation on the table itself and checks the path it matched). What
//! construction alone cannot show is checked here: every documented
//! operation really reaches a handler of the live app (it is not the
//! fallback's `no route for ...` 404, nor a 405), what that handler
//! answers is one of the operation's documented statuses, in its
//! documented shape, a path the document does not list is the fallback's
//! 404, and a method it does not list on a path it does is 405.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use rstest_reuse::apply;

use crate::helpers::*;

/// The document as the app serves it, without credentials.
async fn served_document(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    response.json().await.unwrap()
}

/// Every `(METHOD, path, operation)` of a document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if [
                "get", "put", "post", "delete", "options", "head", "patch", "trace",
            ]
            .contains(&method.as_str())
            {
                all.push((method.to_uppercase(), path.clone(), operation.clone()));
            }
        }
    }
    all
}

/// Follows `$ref`s (`#/components/...`) within `doc`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            let target = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{reference} does not resolve"));
            resolve(doc, target)
        }
        None => schema,
    }
}

/// The names an object schema requires, `allOf` parts merged, and the
/// non-null branch of a nullable `oneOf` taken.
fn required(doc: &Value, schema: &Value) -> BTreeSet<String> {
    let schema = resolve(doc, schema);
    let mut names: BTreeSet<String> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        names.extend(required(doc, part));
    }
    if let Some(branch) = non_null_branch(schema) {
        names.extend(required(doc, branch));
    }
    names
}

fn non_null_branch(schema: &Value) -> Option<&Value> {
    let branches = schema["oneOf"].as_array()?;
    let real: Vec<&Value> = branches.iter().filter(|b| b["type"] != "null").collect();
    (real.len() == 1).then(|| real[0])
}

/// A property's schema, looked up through `$ref`, `allOf` and nullability.
fn property<'a>(doc: &'a Value, schema: &'a Value, name: &str) -> Option<&'a Value> {
    let schema = resolve(doc, schema);
    if let Some(found) = schema["properties"].get(name) {
        return Some(found);
    }
    schema["allOf"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(non_null_branch(schema))
        .find_map(|part| property(doc, part, name))
}

/// The JSON schema of a response (or request body) object.
fn json_schema(content_holder: &Value) -> &Value {
    &content_holder["content"]["application/json"]["schema"]
}

/// The path with every `{parameter}` filled with `value`, but
/// `{provider}`, an enum, with one of its values.
fn concrete(path: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').unwrap() + open;
        out.push_str(match &rest[open..=close] {
            "{provider}" => "aftership",
            _ => value,
        });
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The error shape each tag's paths answer in.
fn error_schema_of(tag: &str) -> &'static str {
    match tag {
        "shopify" => "#/components/schemas/ShopifyErrorBody",
        "carriyo" => "#/components/schemas/CarriyoErrorBody",
        "redo" => "#/components/schemas/RedoErrorBody",
        "providers" => "#/components/schemas/DefinedErrorBody",
        "ops" => "#/components/schemas/OpsErrorBody",
        other => panic!("unexpected tag {other}"),
    }
}

#[apply(backends)]
#[tokio::test]
async fn the_document_is_openapi_3_1_with_unique_operations_and_resolving_references(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let doc = served_document(&app).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "shipgate");
    let ops = operations(&doc);
    assert!(ops.len() >= 20, "only {} operations", ops.len());
    let ids: Vec<&str> = ops
        .iter()
        .map(|(_, _, op)| op["operationId"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate operationId in {ids:?}");
    let text = doc.to_string();
    let mut rest = text.as_str();
    let mut references = 0;
    while let Some(at) = rest.find("\"$ref\":\"") {
        let start = at + "\"$ref\":\"".len();
        let end = rest[start..].find('"').unwrap() + start;
        resolve(&doc, &json!({ "$ref": &rest[start..end] }));
        references += 1;
        rest = &rest[end..];
    }
    assert!(references > 50, "only {references} references");
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for (method, path, op) in &ops {
        for requirement in op["security"].as_array().into_iter().flatten() {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(
                    schemes.contains_key(scheme),
                    "{method} {path} names an undefined security scheme {scheme}"
                );
            }
        }
    }
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn every_operation_documents_a_success_and_its_errors_in_its_providers_shape(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let doc = served_document(&app).await;
    for (method, path, op) in operations(&doc) {
        let at = format!("{method} {path}");
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{at} documents no 2xx"
        );
        let tag = op["tags"][0].as_str().unwrap();
        for (status, response) in responses {
            // 431 is the HTTP layer's, answered with no body before any handler.
            if status.starts_with('2') || status == "431" || path == "/ready" {
                continue;
            }
            assert_eq!(
                json_schema(resolve(&doc, response))["$ref"],
                error_schema_of(tag),
                "{at} answers {status} in another shape than its provider's"
            );
        }
        let statuses: BTreeSet<&str> = responses.keys().map(String::as_str).collect();
        if op.get("security").is_some() {
            assert!(
                statuses.contains("401"),
                "{at} is secured but documents no 401"
            );
        }
        if op.get("requestBody").is_some() {
            assert_eq!(op["requestBody"]["required"], true, "{at}");
            for status in ["400", "413", "415", "503"] {
                assert!(
                    statuses.contains(status),
                    "{at} takes a body but documents no {status}"
                );
            }
        }
        // Every provider path is under its store's limits, and one that
        // takes a body reads it within server.body_timeout.
        if tag != "ops" {
            let limited = resolve(&doc, responses.get("429").unwrap_or(&Value::Null));
            assert!(
                limited["headers"].get("Retry-After").is_some(),
                "{at}: its 429 documents no Retry-After: {limited}"
            );
            if op.get("requestBody").is_some() {
                assert!(
                    statuses.contains("408"),
                    "{at} takes a body but documents no 408"
                );
            }
        }
    }
    app.stop().await;
}

/// Sends every documented operation to the live app without credentials
/// (with an empty JSON object where a body is taken) and holds the answer
/// to the document.
#[apply(backends)]
#[tokio::test]
async fn every_documented_operation_is_served_and_answers_as_documented(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = served_document(&app).await;
    let mut answered: BTreeMap<String, u16> = BTreeMap::new();
    for (method, path, op) in operations(&doc) {
        let at = format!("{method} {path}");
        let url = app.url(&concrete(&path, "1"));
        let mut request = app
            .client
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
        if op.get("requestBody").is_some() {
            request = request.json(&json!({}));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            !(status == 404
                && body["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("no route for"))),
            "{at} is documented but not served: {body}"
        );
        assert_ne!(
            status, 405,
            "{at} is documented but its method is not served"
        );
        let documented = &op["responses"][status.to_string()];
        assert!(
            documented.is_object(),
            "{at} answered {status}, which it does not document: {body}"
        );
        let schema = json_schema(documented);
        if !schema.is_null() && status >= 400 {
            for field in required(&doc, schema) {
                assert!(
                    body.get(&field).is_some(),
                    "{at} answered {status} without `{field}`, which the document requires: {body}"
                );
            }
        }
        if op.get("security").is_some() {
            // Carriyo answers a missing key or tenant-id 403, as its API does.
            assert!(
                matches!(status, 401 | 403),
                "{at} answered without credentials: {status} {body}"
            );
        }
        answered.insert(at, status);
    }
    assert!(answered.len() >= 20, "{answered:?}");
    app.stop().await;
}

#[apply(backends)]
#[tokio::test]
async fn an_undocumented_path_is_404_and_an_undocumented_method_405(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = served_document(&app).await;
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    for (method, path, status, allow) in [
        ("GET", "/webhooks/shopify", 405, "POST"),
        ("PUT", "/v2.2/stores/{storeId}/orders", 405, "POST"),
        ("GET", "/api/v1/no-such-thing", 404, ""),
        ("POST", "/openapi.json", 405, "GET"),
        ("TRACE", "/health", 405, "GET"),
    ] {
        assert!(!documented.contains(&(method.to_owned(), path.to_owned())));
        let response = app
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(&concrete(path, "1")),
            )
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        let allowed = response.headers().get("allow").map(|v| v.to_str().unwrap());
        assert_eq!(allowed, (status == 405).then_some(allow), "{method} {path}");
        let body: Value = response.json().await.unwrap();
        let error = body["error"].as_str().unwrap();
        let expected = if status == 405 {
            "method "
        } else {
            "no route for"
        };
        assert!(error.starts_with(expected), "{method} {path}: {body}");
    }
    app.stop().await;
}

/// Redo's published document, `@redotech/redo-api-schema` 2.2.693, as
/// vendored in tests/fixtures (its paths are under the server's `/v2.2`).
fn redo_published() -> Value {
    let path = format!(
        "{}/tests/fixtures/redo-api-schema-2.2.693-openapi.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The names of a path's `{parameters}`, in order.
fn path_parameters(path: &str) -> Vec<&str> {
    path.split('{')
        .skip(1)
        .map(|p| p.split('}').next().unwrap())
        .collect()
}

#[apply(backends)]
#[tokio::test]
async fn the_redo_paths_agree_with_redos_published_schema(backend: Backend) {
    let app = spawn_app(backend).await;
    let ours = served_document(&app).await;
    let redo = redo_published();
    assert_eq!(redo["servers"][0]["url"], "https://api.getredo.com/v2.2");
    let redo_paths = [
        ("post", "/stores/{storeId}/orders"),
        ("get", "/stores/{storeId}/orders/{orderId}"),
        ("delete", "/stores/{storeId}/orders/{orderId}"),
        ("post", "/stores/{storeId}/orders/{orderId}/fulfillments"),
        (
            "post",
            "/stores/{storeId}/orders/{orderId}/fulfillments/{fulfillmentId}/shipment-status",
        ),
    ];
    let served_redo: BTreeSet<(String, String)> = operations(&ours)
        .into_iter()
        .filter(|(_, path, _)| path.starts_with("/v2.2/"))
        .map(|(method, path, _)| (method.to_lowercase(), path))
        .collect();
    let expected: BTreeSet<(String, String)> = redo_paths
        .iter()
        .map(|(m, p)| (m.to_string(), format!("/v2.2{p}")))
        .collect();
    assert_eq!(served_redo, expected, "the Redo-shaped operations served");
    for (method, path) in redo_paths {
        let at = format!("{} /v2.2{path}", method.to_uppercase());
        let theirs = &redo["paths"][path][method];
        let mine = &ours["paths"][format!("/v2.2{path}")][method];
        assert!(theirs.is_object(), "Redo's document has no {at}");
        assert_eq!(
            path_parameters(path),
            path_parameters(&format!("/v2.2{path}"))
        );
        if theirs.get("requestBody").is_some() {
            let expected = required(&redo, json_schema(&theirs["requestBody"]));
            assert!(!expected.is_empty(), "{at}");
            assert_eq!(
                required(&ours, json_schema(&mine["requestBody"])),
                expected,
                "{at}: the request body's required fields"
            );
        }
        let (their_ok, my_ok) = (&theirs["responses"]["200"], &mine["responses"]["200"]);
        let expected = required(&redo, json_schema(their_ok));
        assert!(!expected.is_empty(), "{at}");
        assert_eq!(
            required(&ours, json_schema(my_ok)),
            expected,
            "{at}: the success answer's required fields"
        );
        let fulfillment = |doc: &Value, ok: &Value| -> Option<BTreeSet<String>> {
            let schema = json_schema(ok);
            let one = property(doc, schema, "fulfillment").map(|f| required(doc, f));
            let many = property(doc, schema, "fulfillments")
                .map(|list| required(doc, &resolve(doc, list)["items"]));
            one.or(many)
        };
        let expected = fulfillment(&redo, their_ok);
        assert!(
            expected
                .as_ref()
                .is_none_or(|f| f.contains("trackingHistory")),
            "{at}: {expected:?}"
        );
        assert_eq!(
            fulfillment(&ours, my_ok),
            expected,
            "{at}: the fulfillment object's required fields"
        );
        for (status, response) in theirs["responses"].as_object().unwrap() {
            if status == "200" || status == "default" {
                continue;
            }
            assert!(
                mine["responses"][status].is_object(),
                "{at}: Redo documents {status}, we do not"
            );
            assert_eq!(
                required(&ours, json_schema(&mine["responses"][status])),
                required(&redo, json_schema(response)),
                "{at}: the {status} error's required fields"
            );
        }
    }
    app.stop().await;
}
