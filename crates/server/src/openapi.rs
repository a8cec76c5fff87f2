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
    components(schemas(Message, AccessDenied))
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
    // Answered before the key is looked at: no rate-limit headers.
    let mut loading = answer(
        "The server is still loading its data: retry shortly.",
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
