//! `GET /openapi.json` (issue 12): every endpoint the router mounts is in the document
//! with its method, and a few of its shapes are the real ones.

#[allow(dead_code)] // the helpers this file does not use
mod common;

use common::TestServer;
use serde_json::Value;
use std::collections::BTreeSet;

/// The document as the server serves it (no key).
async fn served() -> Value {
    let (server, _key) = TestServer::simple().await;
    let r = server
        .send(server.request(reqwest::Method::GET, "/openapi.json"), None)
        .await;
    r.expect(200);
    assert_eq!(r.header("content-type"), "application/json");
    r.body
}

/// The (method, path) pairs of the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut pairs = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            pairs.insert((method.to_uppercase(), path.clone()));
        }
    }
    pairs
}

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "no {method} {path} in the document");
    op
}

fn parameter<'a>(op: &'a Value, name: &str) -> &'a Value {
    op["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no parameter {name} in {op}"))
}

/// Follows a `$ref` of the document's components.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

#[tokio::test]
async fn every_route_of_the_router_is_in_the_document_and_nothing_else() {
    let doc = served().await;
    assert_eq!(doc["openapi"], "3.1.0");
    let routed: BTreeSet<(String, String)> = headcount_server::endpoints()
        .into_iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    // Every endpoint of docs/api.md, and /openapi.json itself.
    assert_eq!(routed.len(), 12, "{routed:?}");
    let documented = documented(&doc);
    let missing: Vec<_> = routed.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from /openapi.json: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");
}

#[tokio::test]
async fn data_series_names_its_parameters_and_answers() {
    let doc = served().await;
    let op = operation(&doc, "get", "/segments/data_series");
    let segment_id = parameter(op, "segment_id");
    assert_eq!(segment_id["in"], "query");
    assert_eq!(segment_id["required"], true);
    let length = parameter(op, "length");
    assert_eq!(length["required"], true);
    assert_eq!(length["schema"]["minimum"], 1);
    assert_eq!(length["schema"]["maximum"], 100);
    let ending_at = parameter(op, "ending_at");
    assert_eq!(ending_at["required"], false);
    assert_eq!(op["security"][0]["bearer"], serde_json::json!([]));
    // The answer: message and data, each point a date and an integer.
    let ok = resolve(
        &doc,
        &op["responses"]["200"]["content"]["application/json"]["schema"],
    );
    let point = resolve(&doc, &ok["properties"]["data"]["items"]);
    assert_eq!(point["properties"]["time"]["format"], "date");
    assert_eq!(point["properties"]["size"]["type"], "integer");
    for status in ["400", "401", "403", "429", "500", "503"] {
        assert!(op["responses"][status].is_object(), "no {status} in {op}");
    }
    for header in [
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
    ] {
        assert!(
            op["responses"]["200"]["headers"][header].is_object(),
            "no {header} on the 200"
        );
    }
}

#[tokio::test]
async fn the_429_carries_retry_after_and_the_window_headers() {
    let doc = served().await;
    for (method, path) in [("get", "/segments/list"), ("post", "/users/track")] {
        let op = operation(&doc, method, path);
        let limited = &op["responses"]["429"];
        assert_eq!(
            limited["headers"]["Retry-After"]["required"], true,
            "{path}"
        );
        assert!(
            limited["headers"]["X-RateLimit-Reset"].is_object(),
            "{path}"
        );
        let body = resolve(&doc, &limited["content"]["application/json"]["schema"]);
        assert_eq!(body["required"], serde_json::json!(["message"]));
    }
    // The track bucket is named on track, the export bucket elsewhere.
    let track = operation(&doc, "post", "/users/track");
    let limit = track["responses"]["201"]["headers"]["X-RateLimit-Limit"]["description"]
        .as_str()
        .expect("a description");
    assert!(limit.contains("track bucket"), "{limit}");
    // And Idempotency-Key is a header of track and delete.
    for path in ["/users/track", "/users/delete"] {
        let key = parameter(operation(&doc, "post", path), "Idempotency-Key");
        assert_eq!(key["in"], "header");
        assert!(operation(&doc, "post", path)["responses"]["422"].is_object());
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn the_public_endpoints_need_no_key_and_bodies_refuse_unknown_fields() {
    let doc = served().await;
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        let op = operation(&doc, "get", path);
        assert!(op.get("security").is_none(), "{path} needs no key");
        assert!(op["responses"]["401"].is_null(), "{path}");
    }
    let create = operation(&doc, "post", "/segments/create");
    let body = resolve(
        &doc,
        &create["requestBody"]["content"]["application/json"]["schema"],
    );
    assert_eq!(body["additionalProperties"], false);
    assert_eq!(body["required"], serde_json::json!(["name", "filter"]));
    assert!(create["responses"]["413"].is_object());
    // The filter is the filter language, recursively, and create's 201 links to the
    // operations that take the new segment's id.
    let filter = resolve(&doc, &body["properties"]["filter"]);
    let kinds: Vec<&str> = filter["oneOf"]
        .as_array()
        .expect("the kinds of node")
        .iter()
        .filter_map(|k| k["required"][0].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "all",
            "any",
            "not",
            "attribute",
            "event",
            "purchase",
            "in_segment",
            "random_bucket"
        ]
    );
    let links = &create["responses"]["201"]["links"];
    assert_eq!(
        links["data_series"]["parameters"]["segment_id"],
        "$response.body#/segment_id"
    );
}
