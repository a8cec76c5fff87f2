//! `/users/*`: ingestion (`track`) and deletion (`delete`).

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{BodyBytes, JsonObject};
use crate::idempotency::Remember;
use crate::ingest::{TrackOptions, read_track, read_track_arrays};
use crate::openapi::Message;
use crate::routes::{Endpoint, post};
use crate::state::{AppState, now};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use headcount_model::UserKey;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// The `/users/*` endpoints.
pub fn endpoints() -> Vec<Endpoint> {
    vec![post("/users/track", track), post("/users/delete", delete)]
}

/// The body of `/users/track` (read by `ingest::read_track`, which checks each object).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "attributes": [{"external_id": "ada", "country": "FR", "plan": "pro", "devices": ["ios"]}],
    "events": [{"external_id": "ada", "name": "session_start", "time": "2026-11-28T09:30:00Z",
                "properties": {"screen": "home"}}],
    "purchases": [{"user_alias": {"alias_name": "a@x.io", "alias_label": "email"},
                   "product_id": "sku-1", "currency": "USD", "price": 9.99, "quantity": 1,
                   "time": "2026-11-28T09:31:00Z"}]}))]
#[allow(dead_code)] // a schema only
pub struct TrackBody {
    /// Attribute objects: a user (`external_id`, `user_alias` or `braze_id`) and custom
    /// attributes (string, number, boolean, array of strings, or null to unset).
    #[schema(value_type = Option<Vec<Object>>)]
    attributes: Option<Vec<Map<String, Value>>>,
    /// Event objects: a user, `name`, `time`, optional `properties` and `app_id`.
    #[schema(value_type = Option<Vec<Object>>)]
    events: Option<Vec<Map<String, Value>>>,
    /// Purchase objects: a user, `product_id`, `currency`, `price`, optional `quantity`
    /// (1–100) and `time`.
    #[schema(value_type = Option<Vec<Object>>)]
    purchases: Option<Vec<Map<String, Value>>>,
    /// Accepted and ignored, as Braze's.
    #[schema(value_type = Option<Object>)]
    partner: Option<Value>,
}

/// The answer of `/users/track` (made by `ingest::Track::response`): a count for each
/// array sent, and the objects refused.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrackAnswer {
    /// `"success"`; on a 400, what is wrong.
    pub message: String,
    /// Valid attribute objects, when `attributes` was sent.
    pub attributes_processed: Option<u64>,
    /// Valid event objects, when `events` was sent.
    pub events_processed: Option<u64>,
    /// Valid purchase objects, when `purchases` was sent.
    pub purchases_processed: Option<u64>,
    /// The objects refused, when any.
    pub errors: Option<Vec<ObjectRefused>>,
}

/// One object refused by `/users/track`, in Braze's shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ObjectRefused {
    /// Why, naming the field.
    #[serde(rename = "type")]
    pub kind: String,
    /// `attributes`, `events` or `purchases`.
    pub input_array: String,
    /// The object's index in its array.
    pub index: u64,
}

/// The body of `/users/delete`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"external_ids": ["ada"],
    "user_aliases": [{"alias_name": "a@x.io", "alias_label": "email"}]}))]
#[allow(dead_code)] // a schema only
pub struct DeleteBody {
    /// External ids: non-empty strings.
    external_ids: Option<Vec<String>>,
    /// Aliases.
    user_aliases: Option<Vec<Alias>>,
    /// Braze ids: non-empty strings.
    braze_ids: Option<Vec<String>>,
}

/// A user alias.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // a schema only
pub struct Alias {
    /// The alias: a non-empty string.
    alias_name: String,
    /// Its label: a non-empty string.
    alias_label: String,
}

/// The answer of `/users/delete`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteAnswer {
    /// `"success"`.
    pub message: String,
    /// Users that existed when the deletion was applied.
    pub deleted: u64,
}

/// `POST /users/track`.
#[utoipa::path(
    post,
    path = "/users/track",
    tag = "users",
    description = "Records attributes, events and purchases; a 201 is durable. Permission `users.track`, \
        the track bucket. At most 75 objects per array (`serve --max-track-objects`).",
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, pattern = "^[ -~]+$",
            description = "A Structured Field String (or a bare value) of 1 to 255 printable ASCII characters: \
                a repeat within 24 hours gets the first answer and applies nothing."),
    ),
    request_body(content = TrackBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Stored (durably), with any objects refused in `errors`.", body = TrackAnswer,
            headers(("Idempotent-Replayed" = String, description = "`true` on a repeat of an Idempotency-Key."))),
        (status = 400, description = "A bad body (malformed JSON, a key twice, an unknown field, no array, an array \
            over the limit), a bad Idempotency-Key, or every object refused (`errors` then lists them).", body = TrackAnswer),
        (status = 409, description = "A request with this Idempotency-Key is still being processed.", body = Message),
        (status = 422, description = "This Idempotency-Key was used with another body or endpoint.", body = Message),
    )
)]
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
    if super::is_clickhouse(&state, caller.workspace).await? {
        // ClickHouse holds the facts: 201 once it acknowledged them. An
        // Idempotency-Key's answer is remembered by the middleware after this.
        clickhouse_write(&state, caller.workspace, facts).await?;
        return Ok((StatusCode::CREATED, Json(response)));
    }
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
        .await?;
    state.metrics.facts_ingested(counts);
    if let Some(Extension(remember)) = remember {
        remember.mark_stored();
    }
    Ok((StatusCode::CREATED, Json(response)))
}

/// Makes a user key from an id of one namespace.
type MakeUser = fn(String) -> UserKey;

fn users_to_delete(body: &Map<String, Value>) -> ApiResult<Vec<UserKey>> {
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

/// `POST /users/delete`.
#[utoipa::path(
    post,
    path = "/users/delete",
    tag = "users",
    description = "Deletes users (at most 50 a request), durably when answered. Permission `users.delete`, \
        the export bucket.",
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, pattern = "^[ -~]+$",
            description = "As for `/users/track`."),
    ),
    request_body(content = DeleteBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Deleted.", body = DeleteAnswer,
            headers(("Idempotent-Replayed" = String, description = "`true` on a repeat of an Idempotency-Key."))),
        (status = 400, description = "A bad body, an unknown field, no user, over 50 users, a bad Idempotency-Key.", body = Message),
        (status = 409, description = "A request with this Idempotency-Key is still being processed.", body = Message),
        (status = 422, description = "This Idempotency-Key was used with another body or endpoint.", body = Message),
    )
)]
async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonObject(body): JsonObject,
) -> ApiResult<(StatusCode, Json<DeleteAnswer>)> {
    let users = users_to_delete(&body)?;
    if super::is_clickhouse(&state, caller.workspace).await? {
        let time = now();
        let count = users.len() as u64;
        let facts = users
            .into_iter()
            .map(|user| {
                let kind = headcount_model::FactKind::Deletion;
                (user, headcount_model::Fact { time, kind })
            })
            .collect();
        clickhouse_write(&state, caller.workspace, facts).await?;
        // Whether each user existed is not asked of ClickHouse: every user named counts.
        return Ok((
            StatusCode::ACCEPTED,
            Json(DeleteAnswer {
                message: "success".into(),
                deleted: count,
            }),
        ));
    }
    // Through the writer, as deletion entries of the fact log: ordered with every
    // track of the same users, and counted from the index in that order.
    let index = state.index(caller.workspace);
    let deleted = state.writer.delete(caller.workspace, index, users).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DeleteAnswer {
            message: "success".into(),
            deleted: deleted as u64,
        }),
    ))
}

/// Writes facts of a ClickHouse workspace to ClickHouse (off the runtime); returns
/// once it acknowledged them, or a 503 when it did not.
async fn clickhouse_write(
    state: &AppState,
    ws: headcount_model::WorkspaceId,
    facts: Vec<(UserKey, headcount_model::Fact)>,
) -> ApiResult<()> {
    let shared = state.clone();
    tokio::task::spawn_blocking(move || {
        let engines = &shared.engines;
        match engines.clickhouse_of(shared.store.as_ref(), ws)? {
            Some(ch) => engines.insert(ch, ws, &facts),
            None => Ok(()),
        }
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(ApiError::from)
}
