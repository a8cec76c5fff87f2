//! `/users/*`: ingestion (`track`) and deletion (`delete`).

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{BodyBytes, JsonObject};
use crate::idempotency::Remember;
use crate::ingest::{TrackOptions, read_track, read_track_arrays};
use crate::state::{AppState, now};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Extension, Json, Router};
use headcount_model::UserKey;
use serde_json::{Value, json};

/// The `/users/*` routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users/track", post(track))
        .route("/users/delete", post(delete))
}

async fn track(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    remember: Option<Extension<Remember>>,
    BodyBytes(body): BodyBytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let options = TrackOptions {
        max_objects: Some(state.config.max_track_objects),
        allow_attribute_time: false,
        now: now(),
    };
    // The common body (the three arrays) is read without a JSON tree; anything else,
    // malformed bodies included, is read and refused like every other endpoint's body.
    let fast = std::str::from_utf8(&body)
        .ok()
        .and_then(|text| read_track_arrays(text, &options));
    let track = match fast {
        Some(track) => track,
        None => read_track(&JsonObject::parse(&body)?.0, &options),
    }
    .map_err(ApiError::BadRequest)?;
    if track.valid_objects() == 0 && !track.errors.is_empty() {
        let mut body = track.response();
        body["message"] = "no valid objects: every object was rejected".into();
        return Ok((StatusCode::BAD_REQUEST, Json(body)));
    }
    let response = track.response();
    let facts = track.facts;
    let counts = crate::metrics::FactCounts::of(&facts);
    let index = state.index(caller.workspace);
    // An answer to remember for an Idempotency-Key is committed with the facts.
    let record = match &remember {
        Some(Extension(remember)) => Some(remember.record(
            StatusCode::CREATED,
            serde_json::to_vec(&response).map_err(|e| ApiError::Internal(e.to_string()))?,
        )),
        None => None,
    };
    state
        .writer
        .append_remembering(caller.workspace, index, facts, record)
        .await
        .map_err(ApiError::Internal)?;
    state.metrics.facts_ingested(counts);
    if let Some(Extension(remember)) = remember {
        remember.mark_stored();
    }
    Ok((StatusCode::CREATED, Json(response)))
}

/// Makes a user key from an id of one namespace.
type MakeUser = fn(String) -> UserKey;

fn users_to_delete(body: &serde_json::Map<String, Value>) -> ApiResult<Vec<UserKey>> {
    if let Some(unknown) = body
        .keys()
        .find(|k| !["external_ids", "user_aliases", "braze_ids"].contains(&k.as_str()))
    {
        return Err(ApiError::bad(format!(
            "unknown field \"{unknown}\"; expected external_ids, user_aliases and/or braze_ids"
        )));
    }
    let mut users = Vec::new();
    let list = |key: &str| -> ApiResult<Vec<Value>> {
        match body.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items.clone()),
            Some(_) => Err(ApiError::bad(format!("{key} must be an array"))),
        }
    };
    let ids: [(&str, MakeUser); 2] = [
        ("external_ids", UserKey::External),
        ("braze_ids", UserKey::Braze),
    ];
    for (key, make) in ids {
        for (i, id) in list(key)?.iter().enumerate() {
            match id.as_str() {
                Some(s) if !s.is_empty() => users.push(make(s.to_string())),
                _ => {
                    return Err(ApiError::bad(format!(
                        "{key}[{i}] must be a non-empty string"
                    )));
                }
            }
        }
    }
    for (i, alias) in list("user_aliases")?.iter().enumerate() {
        let field = |k: &str| {
            alias
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        match (field("alias_name"), field("alias_label")) {
            (Some(name), Some(label)) => users.push(UserKey::Alias { name, label }),
            _ => {
                return Err(ApiError::bad(format!(
                    "user_aliases[{i}] must be an object with non-empty alias_name and alias_label"
                )));
            }
        }
    }
    if users.is_empty() {
        return Err(ApiError::bad(
            "external_ids, user_aliases or braze_ids must name at least one user",
        ));
    }
    if users.len() > 50 {
        return Err(ApiError::bad("at most 50 users may be deleted per request"));
    }
    Ok(users)
}

async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonObject(body): JsonObject,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let users = users_to_delete(&body)?;
    // Through the writer, as deletion entries of the fact log: ordered with every
    // track of the same users, and counted from the index in that order.
    let index = state.index(caller.workspace);
    let deleted = state
        .writer
        .delete(caller.workspace, index, users)
        .await
        .map_err(ApiError::Internal)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "message": "success", "deleted": deleted })),
    ))
}
