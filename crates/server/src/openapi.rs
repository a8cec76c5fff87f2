//! `GET /openapi.json`: the API's OpenAPI 3.1 document, generated from the handlers'
//! `#[utoipa::path]` annotations and the `ToSchema` types of their bodies, then given
//! what every authenticated endpoint shares in one place: the bearer scheme, the
//! `X-RateLimit-*` headers, and the 401, 403, 413, 429, 500 and 503 answers (the
//! endpoints and their buckets are [`crate::auth::requirement`]'s).

use crate::auth;
use crate::ratelimit::Bucket;
use crate::routes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::OnceLock;
use utoipa::{OpenApi, ToSchema};

/// An answer that is only a message: `{"message":"success"}`, or what is wrong (every
/// error of the API has this shape; a few add fields of their own).
#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    /// `"success"`, or what is wrong, naming the field.
    pub message: String,
}

/// The 403: `{"message":"Access Denied","reason":"…"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessDenied {
    /// Always `"Access Denied"`.
    pub message: String,
    /// Why: the permission the key lacks, or the address that is not allowed.
    pub reason: String,
}

/// A node of the filter language (docs/segments.md), for the document: its schema is
/// [`filter_schema`] (the parser is `headcount_model::Filter::parse`).
pub struct FilterNode;

impl utoipa::PartialSchema for FilterNode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        // Replaced by `filter_schema` in `document`.
        utoipa::openapi::ObjectBuilder::new().build().into()
    }
}

impl ToSchema for FilterNode {}

/// The schema of a [`FilterNode`]: one of the kinds of node, each an object with its
/// own keys (an unknown key is refused). The nodes inside `all`, `any` and `not` are
/// described one level deep (a leaf, or any object): a recursive schema is beyond what
/// schema-driven test generators handle reliably, and the document must not refuse
/// what the server accepts.
fn filter_schema() -> Value {
    let cmp = json!({ "type": "string", "enum": ["eq", "ne", "gt", "gte", "lt", "lte"] });
    let days = json!({ "type": "integer", "minimum": 1, "maximum": 3650 });
    let name = json!({ "type": "string", "minLength": 1 });
    let one = |key: &str, properties: Value, required: &[&str]| {
        let mut required: Vec<&str> = required.to_vec();
        required.insert(0, key);
        json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        })
    };
    let leaves = [
        one(
            "attribute",
            json!({
                "attribute": name,
                "op": { "type": "string", "enum": [
                    "exists", "not_exists", "eq", "ne", "gt", "gte", "lt", "lte", "in",
                    "not_in", "contains", "starts_with", "matches", "within_last_days",
                    "more_than_days_ago"] },
                "value": {},
            }),
            &["op"],
        ),
        one(
            "event",
            json!({
                "event": name, "op": cmp, "value": { "type": "integer" }, "within_days": days,
            }),
            &["op", "value"],
        ),
        one(
            "purchase",
            json!({
                "purchase": name, "op": cmp, "value": { "type": "integer" }, "within_days": days,
            }),
            &["op", "value"],
        ),
        one(
            "in_segment",
            json!({ "in_segment": { "type": "string", "format": "uuid" } }),
            &[],
        ),
        one(
            "random_bucket",
            json!({ "random_bucket": {
                "type": "object",
                "properties": { "op": cmp, "value": { "type": "integer" } },
                "required": ["op", "value"],
                "additionalProperties": false,
            } }),
            &[],
        ),
    ];
    let mut inner: Vec<Value> = leaves.to_vec();
    inner.push(json!({
        "type": "object",
        "description": "Any other filter node, `all`, `any` and `not` included.",
    }));
    let node = json!({ "anyOf": inner });
    let mut kinds = vec![
        one(
            "all",
            json!({ "all": { "type": "array", "items": node } }),
            &[],
        ),
        one(
            "any",
            json!({ "any": { "type": "array", "items": node } }),
            &[],
        ),
        one("not", json!({ "not": node }), &[]),
    ];
    kinds.extend(leaves);
    json!({
        "description": "A filter node (docs/segments.md); a bad one is a 400 naming its path.",
        "oneOf": kinds,
    })
}

/// The generated part of the document: every path of the API, its parameters, bodies
/// and own answers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "headcount",
        description = "headcount's Braze-compatible REST API: segment exports and \
            management, ingestion and deletion. The human-readable description, with \
            every behaviour, is docs/api.md."
    ),
    paths(
        crate::healthz,
        crate::readyz,
        openapi_json,
        routes::segments::list,
        routes::segments::details,
        routes::segments::data_series,
        routes::segments::create,
        routes::segments::update,
        routes::segments::archive,
        routes::preview::preview,
        routes::users::track,
        routes::users::delete,
    ),
    components(schemas(Message, AccessDenied, FilterNode))
)]
pub struct ApiDoc;

/// A response object of the document that carries a JSON body of schema `schema`.
fn answer(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    })
}

/// The `X-RateLimit-*` headers of an authenticated answer.
fn window_headers(bucket: Bucket) -> Value {
    let bucket = match bucket {
        Bucket::Export => "the export bucket (`--export-rate-limit`, per clock hour)",
        Bucket::Track => "the track bucket (`--track-rate-limit`, per 3-second window)",
    };
    // Empty on a 401 (no workspace, no window), an integer otherwise.
    let number = json!({ "type": "string", "pattern": "^[0-9]*$" });
    json!({
        "X-RateLimit-Limit": {
            "description": format!("Requests allowed per window of {bucket}; empty on a 401."),
            "schema": number,
        },
        "X-RateLimit-Remaining": {
            "description": "Requests left in the window after this one; empty on a 401.",
            "schema": number,
        },
        "X-RateLimit-Reset": {
            "description": "UTC epoch seconds of the end of the window; empty on a 401.",
            "schema": number,
        },
    })
}

/// Adds what every endpoint with a key shares to its operation `op`: the bearer
/// scheme, the answers of the guard, and the rate-limit headers on every answer.
fn add_common(op: &mut Value, bucket: Bucket, has_body: bool) {
    op["security"] = json!([{ "bearer": [] }]);
    let responses = &mut op["responses"];
    responses["401"] = answer(
        "No key, or an unknown or revoked key: `Invalid API key: <the key sent>`.",
        "Message",
    );
    responses["403"] = answer(
        "The key lacks the endpoint's permission, or the client address is not allowed.",
        "AccessDenied",
    );
    if has_body {
        responses["413"] = answer(
            "The body is over 4 MB (`Connection: close`: the rest is not read).",
            "Message",
        );
    }
    let mut limited = answer(
        "The rate limit of the window is spent: `API Rate Limit Exceeded`.",
        "Message",
    );
    limited["headers"] = json!({
        "Retry-After": {
            "description": "Seconds until the window resets.",
            "required": true,
            "schema": { "type": "string", "pattern": "^[0-9]+$" },
        }
    });
    responses["429"] = limited;
    responses["500"] = answer(
        "A failure of headcount's, logged with its cause: `Internal Server Error`.",
        "Message",
    );
    let headers = window_headers(bucket);
    if let Some(all) = responses.as_object_mut() {
        for answer in all.values_mut() {
            let own = answer["headers"].as_object().cloned().unwrap_or_default();
            let mut merged = headers.as_object().cloned().unwrap_or_default();
            merged.extend(own);
            answer["headers"] = Value::Object(merged);
        }
    }
    // While loading, answered before the key is looked at (no rate-limit headers).
    let mut loading = answer(
        "Retry shortly: the server is still loading its data, or what the request needs \
         cannot be reached (the PostgreSQL database, the Redis of the rate limits, the \
         workspace's ClickHouse); nothing was applied. The message says which.",
        "Message",
    );
    loading["headers"] = json!({
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "required": true,
            "schema": { "type": "string", "pattern": "^[0-9]+$" },
        }
    });
    responses["503"] = loading;
}

/// Links from the answers that name a segment to the operations that take one, so
/// that a client (or a schema-driven test) can follow a create to its details, series,
/// update and archive.
fn add_links(doc: &mut Value) {
    let from = "$response.body#/segment_id";
    let links = json!({
        "details": {
            "operationId": "details",
            "parameters": { "segment_id": from },
        },
        "data_series": {
            "operationId": "data_series",
            "parameters": { "segment_id": from, "length": 7 },
        },
        "update": {
            "operationId": "update",
            "requestBody": { "segment_id": from, "name": "renamed" },
        },
        "archive": {
            "operationId": "archive",
            "requestBody": { "segment_id": from },
        },
    });
    let created = &mut doc["paths"]["/segments/create"]["post"]["responses"]["201"];
    if created.is_object() {
        created["links"] = links;
    }
}

/// The whole document, as JSON.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
    doc["components"]["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key made with `headcount keys create`, as `Authorization: Bearer <key>`.",
        }
    });
    doc["components"]["schemas"]["FilterNode"] = filter_schema();
    // What a derive cannot say: a track body sends at least one of its arrays.
    let track = &mut doc["components"]["schemas"]["TrackBody"];
    if track.is_object() {
        track["anyOf"] = json!([
            { "required": ["attributes"] },
            { "required": ["events"] },
            { "required": ["purchases"] },
        ]);
    }
    add_links(&mut doc);
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some((_, bucket)) = auth::requirement(path) else {
                continue;
            };
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                add_common(op, bucket, method == "post");
            }
        }
    }
    doc
}

/// The document's bytes, made once.
fn document_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| serde_json::to_vec(&document()).unwrap_or_default())
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    description = "This document: every endpoint, parameter, body, answer and error. No key needed.",
    responses((status = 200, description = "The OpenAPI 3.1 document.", body = Object))
)]
pub async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_bytes(),
    )
        .into_response()
}
