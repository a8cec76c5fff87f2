//! Request extractors whose every failure is the API's own JSON error.

use crate::error::ApiError;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use bytes::Bytes;
use serde_json::{Map, Value};

/// A request body as bytes; an over-limit body is answered with 413 in the API's
/// error shape.
pub struct BodyBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for BodyBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(BodyBytes)
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::bad(format!("the request body could not be read: {e}"))
                }
            })
    }
}

/// A JSON object body. Malformed JSON, a key named twice in an object, a non-object
/// and an over-limit body are answered with 400 or 413 in the API's error shape.
pub struct JsonObject(pub Map<String, Value>);

impl JsonObject {
    /// Reads a body's bytes as a JSON object.
    pub fn parse(bytes: &[u8]) -> Result<JsonObject, ApiError> {
        match crate::json::parse(bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(ApiError::bad("the request body must be a JSON object")),
            Err(e) => Err(ApiError::bad(e.message())),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let BodyBytes(bytes) = BodyBytes::from_request(req, state).await?;
        JsonObject::parse(&bytes)
    }
}

/// Query parameters in the order given; unknown names are simply ignored, a known one
/// given twice is a 400 ([`Params::get`]).
pub struct Params(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let pairs = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        Ok(Params(pairs))
    }
}

impl Params {
    /// A parameter's value, if present; a 400 naming it when it is given more than
    /// once (which one was meant would be a guess).
    pub fn get(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self.0.iter().filter(|(n, _)| n == name).map(|(_, v)| v);
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::bad(format!(
                "{name} is given more than once in the query; give it once"
            )));
        }
        Ok(first.map(String::as_str))
    }
}
