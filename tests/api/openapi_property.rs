//! A property test of `/openapi.json` against the app that serves it, in
//! the manner of schemathesis (which CI cannot install): for every
//! documented operation it generates requests from the document itself,
//! boundary values of each parameter's schema (0, the bounds and one past
//! them, values outside int64, empty, blank and over-long strings, every
//! enum value and a word outside the enum, missing required parameters),
//! the others held at a valid value, with valid credentials, and a real
//! sample body where the operation takes one. Each answer must be a status
//! the operation documents, with a Content-Type and a body that its
//! documented content allows. A request the document allows must not be
//! refused as malformed (400, or a path the router does not find); one it
//! forbids must be refused (400, 401, 403, or not routed), not looked up
//! or accepted. Every path also answers an undocumented method 405 with
//! `Allow`, and every operation documents the 431 of over-large headers.
//!
//! A valid value is the document's own example where it gives one (a
//! parameter whose `pattern` a plain word does not match must: a pattern
//! cannot be inverted here), a fixed past time for `format: date-time`,
//! else its enum's first value or a plain one of its type.
//!
//! Values come from the schemas, not from chance: the cases are the same
//! on every run (the few random strings come from a fixed seed), so a
//! failure names a request that can be sent again.

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use rstest_reuse::apply;
use serde_json::{json, Value};

use crate::helpers::*;

const SEED: u64 = 23;
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Follows `$ref`s within `doc`.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => resolve(
            doc,
            doc.pointer(reference.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("{reference} does not resolve")),
        ),
        None => value,
    }
}

/// The JSON-schema keywords utoipa writes, checked against `value`;
/// every mismatch is pushed onto `errors`, naming where it is.
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    let mut fail = |why: String| errors.push(format!("{at}: {why} ({value})"));
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            other => other.as_str().into_iter().collect(),
        };
        if !types.iter().any(|t| is_type(value, t)) {
            fail(format!("is not of type {types:?}"));
            return;
        }
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(value) {
            fail(format!("is not one of {options:?}"));
        }
    }
    if let Some(n) = value.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|min| n < min) {
            fail(format!("is below minimum {}", schema["minimum"]));
        }
        if schema["maximum"].as_f64().is_some_and(|max| n > max) {
            fail(format!("is above maximum {}", schema["maximum"]));
        }
        let int64 = value.is_i64() || (value.is_u64() && value.as_u64() <= Some(i64::MAX as u64));
        if schema["format"] == "int64" && !int64 {
            fail("is outside int64".into());
        }
    }
    if let Some(text) = value.as_str() {
        let length = text.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|min| length < min) {
            fail(format!("is shorter than {}", schema["minLength"]));
        }
        if schema["maxLength"].as_u64().is_some_and(|max| length > max) {
            fail(format!("is longer than {}", schema["maxLength"]));
        }
        if let Some(pattern) = schema["pattern"].as_str() {
            let regex = regex::Regex::new(pattern).expect("a pattern regex reads");
            if !regex.is_match(text) {
                fail(format!("does not match /{pattern}/"));
            }
        }
        let formatted = match schema["format"].as_str() {
            Some("uuid") => uuid::Uuid::parse_str(text).is_ok(),
            Some("date-time") => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
            Some("date") => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok(),
            _ => true,
        };
        if !formatted {
            fail(format!("is not a {}", schema["format"]));
        }
    }
    if let Some(object) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten() {
            if !object.contains_key(name.as_str().unwrap_or_default()) {
                fail(format!("lacks required {name}"));
            }
        }
        let properties = schema["properties"].as_object();
        for (name, field) in object {
            let inner = format!("{at}.{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(property) => validate(doc, property, field, &inner, errors),
                None => match &schema["additionalProperties"] {
                    Value::Bool(false) => errors.push(format!("{inner} is not in the schema")),
                    extra if extra.is_object() => validate(doc, extra, field, &inner, errors),
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, item) in list.iter().enumerate() {
            validate(doc, items, item, &format!("{at}[{i}]"), errors);
        }
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        validate(doc, part, value, at, errors);
    }
    for (keyword, exactly_one) in [("oneOf", true), ("anyOf", false)] {
        if let Some(branches) = schema[keyword].as_array() {
            let passing = branches
                .iter()
                .filter(|branch| conforms(doc, branch, value))
                .count();
            if passing == 0 || (exactly_one && passing > 1) {
                errors.push(format!(
                    "{at}: {passing} branches of its {keyword} match ({value})"
                ));
            }
        }
    }
}

fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

fn conforms(doc: &Value, schema: &Value, value: &Value) -> bool {
    let mut errors = Vec::new();
    validate(doc, schema, value, "", &mut errors);
    errors.is_empty()
}

/// A parameter's text as the JSON value its schema speaks of: a number or
/// a boolean where the schema takes one and the text reads as one, else
/// the text as a string (so a number past u64, or a word where a number
/// goes, fails the schema's type).
fn typed(doc: &Value, schema: &Value, text: &str) -> Value {
    let schema = resolve(doc, schema);
    let types = schema["type"].to_string();
    if types.contains("integer") {
        if let Ok(n) = text.parse::<i64>() {
            return json!(n);
        }
        if let Ok(n) = text.parse::<u64>() {
            return json!(n);
        }
    }
    if types.contains("boolean") {
        if let Ok(b) = text.parse::<bool>() {
            return json!(b);
        }
    }
    json!(text)
}

/// One documented parameter.
#[derive(Clone)]
struct Parameter {
    name: String,
    place: String,
    required: bool,
    schema: Value,
    /// The document's example value, the parameter's or its schema's.
    example: Option<String>,
}

fn parameters(doc: &Value, operation: &Value) -> Vec<Parameter> {
    operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let p = resolve(doc, p);
            Parameter {
                name: p["name"].as_str().unwrap_or_default().to_owned(),
                place: p["in"].as_str().unwrap_or_default().to_owned(),
                required: p["required"] == true,
                schema: p["schema"].clone(),
                example: [&p["example"], &resolve(doc, &p["schema"])["example"]]
                    .into_iter()
                    .find_map(|e| e.as_str().map(str::to_owned)),
            }
        })
        .collect()
}

/// A value of `parameter` the document allows, and that reaches past
/// authentication where the name says whose it is.
fn valid_value(doc: &Value, parameter: &Parameter) -> String {
    let known = match parameter.name.as_str() {
        "storeId" => Some(REDO_STORE_ID),
        "version" => Some(SHOPIFY_API_VERSION),
        "store" => Some("acme"),
        "X-Shopify-Shop-Domain" => Some(SHOP),
        "tenant-id" => Some(CARRIYO_TENANT),
        _ => None,
    };
    if let Some(known) = known {
        return known.to_owned();
    }
    if let Some(example) = &parameter.example {
        return example.clone();
    }
    let schema = effective(doc, &parameter.schema);
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.as_str().map_or(first.to_string(), str::to_owned);
    }
    let types = schema["type"].to_string();
    if types.contains("integer") {
        let low = schema["minimum"].as_i64().unwrap_or(1).max(1);
        return low.to_string();
    }
    if types.contains("boolean") {
        return "true".into();
    }
    if schema["format"] == "uuid" {
        return uuid::Uuid::now_v7().to_string();
    }
    if schema["format"] == "date-time" {
        return "2026-11-20T10:00:00Z".into();
    }
    // A pattern cannot be inverted here: one the plain value does not
    // match needs an example in the document.
    if let Some(pattern) = schema["pattern"].as_str() {
        let regex = regex::Regex::new(pattern).expect("a pattern regex reads");
        assert!(
            regex.is_match(PLAIN),
            "{} {} has a pattern {PLAIN:?} does not match, and no example: give one",
            parameter.place,
            parameter.name
        );
    }
    PLAIN.into()
}

/// The valid value of a string with no example, enum or format.
const PLAIN: &str = "a1";

/// The schema that says what a value is: a nullable `oneOf` is its
/// non-null branch.
fn effective<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    let schema = resolve(doc, schema);
    match schema["oneOf"].as_array() {
        Some(branches) => branches
            .iter()
            .map(|b| resolve(doc, b))
            .find(|b| b["type"] != "null")
            .unwrap_or(schema),
        None => schema,
    }
}

/// The boundary values of a parameter's schema, each as sent (`None`:
/// left out).
fn boundary_values(doc: &Value, parameter: &Parameter, rng: &mut StdRng) -> Vec<Option<String>> {
    let schema = effective(doc, &parameter.schema);
    let mut values: Vec<String> = Vec::new();
    let types = schema["type"].to_string();
    if types.contains("integer") || types.contains("number") {
        values.extend(["0", "1", "-1", "1.5", "abc"].map(String::from));
        for bound in ["minimum", "maximum"] {
            if let Some(n) = schema[bound].as_i64() {
                values.extend([n - 1, n, n.saturating_add(1)].map(|v| v.to_string()));
            }
        }
        values.extend([
            i64::MAX.to_string(),
            (i64::MAX as u64 + 1).to_string(),
            u64::MAX.to_string(),
            "18446744073709551616".into(),
        ]);
    } else if types.contains("boolean") {
        values.extend(["true", "false", "", "maybe"].map(String::from));
    } else {
        values.extend(["", " ", "x", "0"].map(String::from));
        for option in schema["enum"].as_array().into_iter().flatten() {
            values.push(option.as_str().unwrap_or_default().to_owned());
        }
        values.push("no-such-word".into());
        values.push("Z".repeat(2000));
        if schema["format"] == "uuid" {
            values.push(uuid::Uuid::now_v7().to_string());
        }
        let random: String = (0..rng.gen_range(1..40))
            .map(|_| char::from(rng.gen_range(b'a'..=b'z')))
            .collect();
        values.push(random);
    }
    let mut all: Vec<Option<String>> = values.into_iter().map(Some).collect();
    if parameter.place != "path" {
        all.push(None);
    }
    all
}

/// A path segment or query value, percent-encoded where it must be.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A real body for each operation that takes one, from the samples.
fn sample_body(operation_id: &str) -> Value {
    match operation_id {
        "shopify_webhook" => sample("shopify", "fulfillment_event_create"),
        "shopify_create_fulfillment_event" => sample("shopify", "rest_event_create"),
        "shopify_graphql" => sample("shopify", "graphql_fulfillment_event_create"),
        "carriyo_webhook" | "carriyo_order_shipment_status_update" => {
            sample("carriyo", "shipment_in_transit")
        }
        "redo_create_order" => sample("redo", "create_order"),
        "redo_create_fulfillment" => sample("redo", "create_fulfillment"),
        "redo_update_shipment_status" => sample("redo", "shipment_status"),
        // One body that is a delivery for each defined provider: their
        // fields do not overlap.
        "defined_provider_webhook" => {
            let mut both = sample("aftership", "tracking_update_in_transit");
            let easypost = sample("easypost", "tracker_updated_in_transit");
            for (key, value) in easypost.as_object().expect("an object") {
                both[key] = value.clone();
            }
            both
        }
        other => panic!("no sample body for {other}: add one"),
    }
}

/// One generated request and what the document says of it.
struct Case {
    values: Vec<(Parameter, Option<String>)>,
    body: Option<Value>,
    /// Whether every part of it is what the document allows.
    allowed: bool,
    what: String,
}

/// Sends a case and returns the failures it shows.
async fn check(
    app: &TestApp,
    doc: &Value,
    method: &str,
    path: &str,
    operation: &Value,
    case: &Case,
) -> Vec<String> {
    let mut url_path = path.to_owned();
    let mut query = Vec::new();
    let mut headers = Vec::new();
    for (parameter, value) in &case.values {
        let Some(value) = value else { continue };
        match parameter.place.as_str() {
            "path" => {
                url_path = url_path.replace(&format!("{{{}}}", parameter.name), &encode(value))
            }
            "query" => query.push(format!("{}={}", parameter.name, encode(value))),
            "header" => headers.push((parameter.name.clone(), value.clone())),
            other => panic!("parameter in {other}"),
        }
    }
    let mut url = app.url(&url_path);
    if !query.is_empty() {
        url = format!("{url}?{}", query.join("&"));
    }
    let method_name = method.to_uppercase();
    let mut request = app
        .client
        .request(Method::from_bytes(method_name.as_bytes()).unwrap(), &url);
    let body = case
        .body
        .as_ref()
        .map(|b| serde_json::to_vec(b).expect("json"));
    for requirement in operation["security"].as_array().into_iter().flatten() {
        for scheme in requirement
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            request = match scheme.as_str() {
                "admin_bearer" => request.bearer_auth(ADMIN_TOKEN),
                "redo_bearer" => request.bearer_auth(REDO_TOKEN),
                "shopify_access_token" => {
                    request.header("X-Shopify-Access-Token", SHOPIFY_ACCESS_TOKEN)
                }
                "shopify_hmac" => request.header(
                    "X-Shopify-Hmac-Sha256",
                    shopify_signature(SHOPIFY_SECRET, body.as_deref().unwrap_or_default()),
                ),
                "carriyo_api_key" => request.header("x-api-key", CARRIYO_KEY),
                "carriyo_tenant" => request.header("tenant-id", CARRIYO_TENANT),
                // The route reads the header of the provider its path names.
                "aftership_credential" => request.header(
                    "aftership-hmac-sha256",
                    shopify_signature(AFTERSHIP_SECRET, body.as_deref().unwrap_or_default()),
                ),
                "easypost_credential" => request.header(
                    "X-Hmac-Signature",
                    format!(
                        "hmac-sha256-hex={}",
                        hex::encode(hmac_sha256(
                            EASYPOST_SECRET.as_bytes(),
                            body.as_deref().unwrap_or_default()
                        ))
                    ),
                ),
                other => panic!("unknown security scheme {other}"),
            };
        }
    }
    for (name, value) in headers {
        request = request.header(name, value);
    }
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(body);
    }
    let at = format!("{method_name} {url_path} ({})", case.what);
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let text = response.text().await.unwrap_or_default();
    let mut failures = Vec::new();
    let not_routed = (status == 404 && text.contains("no route for")) || status == 405;
    if case.allowed && (status == 400 || not_routed) {
        failures.push(format!(
            "{at}: the document allows it, the server refused it: {status} {text}"
        ));
    }
    // A path segment outside its enum names nothing there: 404.
    let outside_path_enum = case.values.iter().any(|(p, value)| {
        p.place == "path"
            && value.as_ref().is_some_and(|v| {
                resolve(doc, &p.schema)["enum"]
                    .as_array()
                    .is_some_and(|names| !names.iter().any(|n| n == v.as_str()))
            })
    });
    let refused =
        matches!(status, 400 | 401 | 403) || not_routed || (status == 404 && outside_path_enum);
    if !case.allowed && !refused {
        failures.push(format!(
            "{at}: the document forbids it, the server did not refuse it: {status} {text}"
        ));
    }
    if not_routed {
        return failures;
    }
    let Some(documented) = operation["responses"].get(status.to_string()) else {
        failures.push(format!(
            "{at}: answered {status}, which it does not document: {text}"
        ));
        return failures;
    };
    failures.extend(
        answer_failures(
            doc,
            resolve(doc, documented),
            content_type.as_deref(),
            &text,
        )
        .into_iter()
        .map(|f| format!("{at}: {status}: {f}")),
    );
    failures
}

/// What is wrong with an answer against its documented response.
fn answer_failures(
    doc: &Value,
    documented: &Value,
    content_type: Option<&str>,
    text: &str,
) -> Vec<String> {
    let Some(content) = documented["content"].as_object() else {
        return if text.is_empty() {
            Vec::new()
        } else {
            vec![format!("documents no body but has one: {text}")]
        };
    };
    let Some(content_type) = content_type else {
        return vec![format!(
            "has no Content-Type; documented: {:?}",
            content.keys().collect::<Vec<_>>()
        )];
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let Some(media) = content
        .iter()
        .find(|(name, _)| name.split(';').next().unwrap_or_default().trim() == essence)
        .map(|(_, media)| media)
    else {
        return vec![format!(
            "Content-Type {content_type} is not among {:?}",
            content.keys().collect::<Vec<_>>()
        )];
    };
    if essence != "application/json" {
        return Vec::new();
    }
    let Ok(body) = serde_json::from_str::<Value>(text) else {
        return vec![format!("is not JSON: {text:?}")];
    };
    let mut errors = Vec::new();
    validate(doc, &media["schema"], &body, "body", &mut errors);
    errors
}

/// The cases of one operation: for each parameter its boundary values,
/// the others valid; and all valid, with the sample body where one is
/// taken.
fn cases(doc: &Value, operation: &Value, rng: &mut StdRng) -> Vec<Case> {
    let parameters = parameters(doc, operation);
    let body = operation
        .get("requestBody")
        .map(|_| sample_body(operation["operationId"].as_str().unwrap_or_default()));
    let mut body_errors = Vec::new();
    if let Some(body) = &body {
        let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
        validate(doc, schema, body, "body", &mut body_errors);
    }
    let body_allowed = body_errors.is_empty();
    let body_note = if body_allowed {
        String::new()
    } else {
        format!("; the sample body is not what the document allows: {body_errors:?}")
    };
    let valid: Vec<(Parameter, Option<String>)> = parameters
        .iter()
        .map(|p| (p.clone(), Some(valid_value(doc, p))))
        .collect();
    let mut all = vec![Case {
        values: valid.clone(),
        body: body.clone(),
        allowed: body_allowed,
        what: format!("every value valid{body_note}"),
    }];
    for (i, parameter) in parameters.iter().enumerate() {
        for value in boundary_values(doc, parameter, rng) {
            let allowed = body_allowed
                && match &value {
                    None => !parameter.required,
                    Some(text) => {
                        conforms(doc, &parameter.schema, &typed(doc, &parameter.schema, text))
                    }
                };
            let mut values = valid.clone();
            values[i].1 = value.clone();
            let shown = value.as_deref().map_or("left out".into(), |v| {
                let short: String = v.chars().take(24).collect();
                format!("{short:?}{}", if v.len() > 24 { "…" } else { "" })
            });
            all.push(Case {
                values,
                body: body.clone(),
                allowed,
                what: format!(
                    "{} {} = {shown}{body_note}",
                    parameter.place, parameter.name
                ),
            });
        }
    }
    all
}

/// `path` with every `{parameter}` filled with 1.
fn filled(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some((head, tail)) = rest.split_once('{') {
        out.push_str(head);
        out.push('1');
        rest = tail.split_once('}').map_or("", |(_, after)| after);
    }
    out.push_str(rest);
    out
}

async fn served_document(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Every operation's generated cases against the live app: 0 failures.
#[apply(backends)]
#[tokio::test]
async fn generated_requests_are_answered_as_the_document_says(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = served_document(&app).await;
    let mut rng = StdRng::seed_from_u64(SEED);
    let (mut sent, mut failures) = (0, Vec::new());
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            for case in cases(&doc, operation, &mut rng) {
                failures.extend(check(&app, &doc, method, path, operation, &case).await);
                sent += 1;
            }
        }
    }
    assert!(sent > 500, "only {sent} cases");
    assert!(
        failures.is_empty(),
        "{} failures of {sent} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    app.stop().await;
}

/// Every documented path answers a method it does not serve 405, with
/// `Allow` naming exactly the methods the document lists for it.
#[apply(backends)]
#[tokio::test]
async fn an_undocumented_method_on_a_documented_path_is_405_with_allow(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = served_document(&app).await;
    let mut failures = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let documented: BTreeSet<String> = METHODS
            .iter()
            .filter(|m| item.get(**m).is_some())
            .map(|m| m.to_uppercase())
            .collect();
        let url = app.url(&filled(path));
        for method in ["GET", "PUT", "POST", "DELETE", "PATCH", "TRACE", "OPTIONS"] {
            if documented.contains(method) {
                continue;
            }
            let response = app
                .client
                .request(Method::from_bytes(method.as_bytes()).unwrap(), &url)
                .send()
                .await
                .expect("request sent");
            let allow: BTreeSet<String> = response
                .headers()
                .get("allow")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .split(',')
                .map(|m| m.trim().to_owned())
                .filter(|m| !m.is_empty())
                .collect();
            if response.status() != 405 || allow != documented {
                failures.push(format!(
                    "{method} {path}: {} with Allow {allow:?}; documented {documented:?}",
                    response.status()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    app.stop().await;
}

/// Headers past the HTTP layer's limit get 431, which every operation
/// documents, with no body.
#[apply(backends)]
#[tokio::test]
async fn over_large_headers_get_the_documented_431(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = served_document(&app).await;
    // The server closes the connection after a 431: never reuse one.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("a client");
    let mut failures = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let mut request = client.request(
                Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                app.url(&filled(path)),
            );
            for i in 0..100 {
                request = request.header(format!("x-filler-{i}"), "1");
            }
            let response = request.send().await.expect("request sent");
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            match operation["responses"].get("431") {
                Some(documented) if status == 431 => failures.extend(
                    answer_failures(&doc, resolve(&doc, documented), None, &text)
                        .into_iter()
                        .map(|f| format!("{method} {path}: {f}")),
                ),
                Some(_) => failures.push(format!("{method} {path}: {status}, not 431")),
                None => failures.push(format!("{method} {path}: 431 is not documented")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    app.stop().await;
}
