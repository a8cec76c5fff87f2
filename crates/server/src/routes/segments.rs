//! `/segments/*`: the catalog (list, details, create, update, archive) and the
//! `data_series` export.

use crate::auth::Caller;
use crate::catalog::{Definition, SegmentEntry};
use crate::error::{ApiError, ApiResult, UNKNOWN_SEGMENT};
use crate::extract::{JsonObject, Params};
use crate::jobs;
use crate::sizes::{Sizer, series_in_memory};
use crate::state::{AppState, now, read, write};
use crate::warnings;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use headcount_model::datetime;
use headcount_model::day::{FIRST_DAY, series_days};
use headcount_model::describe::describe;
use headcount_model::limits::check_workspace_patterns;
use headcount_model::{Day, Filter, SegmentId, Timestamp, WorkspaceId};
use headcount_store::Segment;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Segments per page of `/segments/list`.
pub const PAGE_SIZE: usize = 100;
/// Most days a `data_series` request may ask for.
pub const MAX_LENGTH: u32 = 100;

/// The `/segments/*` routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/segments/list", get(list))
        .route("/segments/details", get(details))
        .route("/segments/data_series", get(data_series))
        .route("/segments/create", post(create))
        .route("/segments/update", post(update))
        .route("/segments/archive", post(archive))
        .route("/segments/preview", post(super::preview::preview))
}

fn segment_id(text: Option<&str>) -> ApiResult<SegmentId> {
    text.and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| ApiError::bad(UNKNOWN_SEGMENT))
}

fn find(state: &AppState, caller: &Caller, id: SegmentId) -> ApiResult<SegmentEntry> {
    read(&state.catalog)
        .segment_in(caller.workspace, id)
        .cloned()
        .ok_or_else(|| ApiError::bad(UNKNOWN_SEGMENT))
}

async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let page = match params.get("page") {
        None | Some("") => 0,
        Some(p) => p
            .parse::<usize>()
            .map_err(|_| ApiError::bad("page must be a non-negative integer"))?,
    };
    let descending = match params.get("sort_direction") {
        None | Some("") | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(ApiError::bad("sort_direction must be asc or desc")),
    };
    let catalog = read(&state.catalog);
    let live = catalog
        .segments_of(caller.workspace)
        .filter(|e| e.segment.archived_at.is_none());
    let ordered: Vec<&SegmentEntry> = if descending {
        live.rev().collect()
    } else {
        live.collect()
    };
    let segments: Vec<Value> = ordered
        .into_iter()
        .skip(page.saturating_mul(PAGE_SIZE))
        .take(PAGE_SIZE)
        .map(|e| {
            json!({
                "id": e.segment.id.to_string(),
                "name": e.segment.name,
                "analytics_tracking_enabled": e.segment.analytics_tracking_enabled,
                "tags": e.segment.tags,
            })
        })
        .collect();
    Ok(Json(json!({ "message": "success", "segments": segments })))
}

async fn details(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let id = segment_id(params.get("segment_id"))?;
    let entry = find(&state, &caller, id)?;
    let shared = state.clone();
    let ws = caller.workspace;
    let looked_up = entry.clone();
    let (description, error, warnings, last) = tokio::task::spawn_blocking(move || {
        let store = shared.store.as_ref();
        let catalog = read(&shared.catalog);
        let names = |r| catalog.segment_in(ws, r).map(|e| e.segment.name.clone());
        // A failing segment may have no filter to describe: its `error` says why.
        let description = catalog
            .stored_filter(id, store)
            .map(|filter| describe(&filter, &names))
            .unwrap_or_default();
        let filter = catalog.stored_filter(id, store);
        let error = catalog.failure(&looked_up, store);
        drop(catalog);
        let warnings = match filter.ok() {
            Some(filter) => warnings::unknown_names(&filter, &read(&shared.index(ws))),
            None => Vec::new(),
        };
        Ok::<_, ApiError>((description, error, warnings, store.last_computed_at(id)?))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let s = &entry.segment;
    let mut body = json!({
        "message": "success",
        "created_at": s.created_at.to_string(),
        "updated_at": s.updated_at.to_string(),
        "name": s.name,
        "description": description,
        "text_description": s.text_description,
        "tags": s.tags,
        "teams": s.teams,
        "last_computed_at": last.map(|t| t.to_string()),
        "warnings": warnings,
    });
    if let (Some(error), Some(fields)) = (error, body.as_object_mut()) {
        fields.insert("error".into(), Value::String(error));
    }
    Ok(Json(body))
}

/// The 400 of a `data_series` of a segment that cannot be computed.
fn cannot_compute(why: String) -> ApiError {
    ApiError::bad(format!(
        "segment_id names a segment that cannot be computed: {why}; \
         update its filter (POST /segments/update) to one that can be"
    ))
}

async fn data_series(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Params,
) -> ApiResult<Response> {
    let id = segment_id(params.get("segment_id"))?;
    let length = match params.get("length").map(|l| l.trim().parse::<u32>()) {
        Some(Ok(n)) if (1..=MAX_LENGTH).contains(&n) => n,
        _ => {
            return Err(ApiError::bad(format!(
                "length must be an integer from 1 to {MAX_LENGTH}"
            )));
        }
    };
    let now = now();
    let ending_at = match params.get("ending_at") {
        None | Some("") => now,
        Some(text) => match datetime::parse_checked(text) {
            Ok(written) => {
                let ending_at = written.resolve(&caller.tz).min(now);
                let days = series_days(ending_at, length, &caller.tz);
                if let Some(first) = days.first()
                    && *first < FIRST_DAY
                {
                    return Err(ApiError::bad(format!(
                        "ending_at \"{text}\" {}: a series of {length} days ending then would begin on {first}",
                        datetime::DateTimeError::Range
                    )));
                }
                ending_at
            }
            Err(e) => {
                // Every refusal names the accepted forms (the form errors already do).
                let forms = match e {
                    datetime::DateTimeError::Empty | datetime::DateTimeError::Form => String::new(),
                    _ => format!("; expected {}", datetime::ACCEPTED_FORMS),
                };
                let reason = e.to_string();
                // "2026-13-01 is not a date…" names the value once when it is the whole text.
                let reason = reason
                    .strip_prefix(text)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .unwrap_or(&reason);
                return Err(ApiError::bad(format!(
                    "ending_at \"{text}\" {reason}{forms}"
                )));
            }
        },
    };
    let days = series_days(ending_at, length, &caller.tz);
    let points = series_points(&state, &caller, id, &days, now).await?;
    Ok(render_series(&points))
}

/// The points of `data_series` for `days` (oldest first) of segment `id` of the
/// caller's workspace, as of `now`: stored sizes, missing completed days computed and
/// stored, and the live size for a day that has not ended. Shared with the console.
pub(crate) async fn series_points(
    state: &AppState,
    caller: &Caller,
    id: SegmentId,
    days: &[Day],
    now: Timestamp,
) -> ApiResult<Vec<(Day, u64)>> {
    let (generation, unloaded) = {
        let catalog = read(&state.catalog);
        let entry = catalog
            .segment_in(caller.workspace, id)
            .ok_or_else(|| ApiError::bad(UNKNOWN_SEGMENT))?;
        // Unloaded (archived) filters are read from the store on a blocking thread.
        let unloaded = matches!(entry.definition, Definition::Unloaded { .. });
        if !unloaded && let Some(why) = catalog.failure(entry, state.store.as_ref()) {
            return Err(cannot_compute(why));
        }
        (catalog.generation(), unloaded)
    };
    let today = Day::containing(now, &caller.tz);
    let index = state.index(caller.workspace);
    // The common case answers here, on the runtime: stored days and a live size that
    // is still valid, all in memory. Anything to compute or read goes to a blocking thread.
    let in_memory = index
        .try_read()
        .ok()
        .filter(|_| !unloaded)
        .and_then(|index| {
            let live = match days.last() {
                Some(last) if *last >= today => {
                    Some(state.cached_live_size(id, &index, generation, now)?)
                }
                _ => None,
            };
            series_in_memory(state.store.as_ref(), id, days, today, live)
        });
    if let Some(points) = in_memory {
        return Ok(points);
    }
    let shared = state.clone();
    let caller = caller.clone();
    let days = days.to_vec();
    tokio::task::spawn_blocking(move || series_blocking(&shared, &caller, id, &days, now))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// [`series_points`] off the async runtime, computing what is missing: blocking.
pub(crate) fn series_blocking(
    state: &AppState,
    caller: &Caller,
    id: SegmentId,
    days: &[Day],
    now: Timestamp,
) -> ApiResult<Vec<(Day, u64)>> {
    // The plan is read under the segment's size lock, so that sizes computed with a
    // filter that an update has just replaced are stored before the update clears
    // the history, never after (see `Shared::size_lock`).
    let lock = state.size_lock(id);
    let _held = read(&lock);
    let (plan, generation) = {
        let catalog = read(&state.catalog);
        let entry = catalog
            .segment_in(caller.workspace, id)
            .ok_or_else(|| ApiError::bad(UNKNOWN_SEGMENT))?;
        let plan = catalog
            .segment_plan(entry, state.store.as_ref())
            .map_err(|_| {
                cannot_compute(
                    catalog
                        .failure(entry, state.store.as_ref())
                        .unwrap_or_default(),
                )
            })?;
        (plan, catalog.generation())
    };
    let index = state.index(caller.workspace);
    let index = read(&index);
    Ok(Sizer {
        store: state.store.as_ref(),
        index: &index,
        plan: &plan,
        segment: id,
        tz: &caller.tz,
        now,
    }
    .series(days, &mut || {
        state.live_size(id, &index, generation, now, &caller.tz, || {
            index.size(&plan, now, &caller.tz)
        })
    })?)
}

/// The body of a `data_series` answer,
/// `{"message":"success","data":[{"time":"YYYY-MM-DD","size":N},…]}`, written directly:
/// every field is a day or an integer, so nothing needs escaping.
fn render_series(points: &[(Day, u64)]) -> Response {
    let mut body = Vec::with_capacity(32 + points.len() * 36);
    body.extend_from_slice(br#"{"message":"success","data":["#);
    for (n, (day, size)) in points.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(br#"{"time":""#);
        day.push_iso(&mut body);
        body.extend_from_slice(br#"","size":"#);
        body.extend_from_slice(itoa::Buffer::new().format(*size).as_bytes());
        body.push(b'}');
    }
    body.extend_from_slice(b"]}");
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The editable fields of a segment, as read from a create or update body.
pub(crate) struct Fields {
    name: Option<String>,
    pub(crate) filter: Option<(Value, Filter)>,
    description: Option<String>,
    tags: Option<Vec<String>>,
    teams: Option<Vec<String>>,
    analytics: Option<bool>,
}

const FIELDS: [&str; 6] = [
    "name",
    "filter",
    "description",
    "tags",
    "teams",
    "analytics_tracking_enabled",
];

fn string_list(value: &Value, field: &str) -> ApiResult<Vec<String>> {
    let bad = || ApiError::bad(format!("{field} must be an array of strings"));
    value
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
        .collect()
}

pub(crate) fn read_fields(body: &Map<String, Value>, extra: &[&str]) -> ApiResult<Fields> {
    if let Some(unknown) = body
        .keys()
        .find(|k| !FIELDS.contains(&k.as_str()) && !extra.contains(&k.as_str()))
    {
        let mut known: Vec<&str> = extra.to_vec();
        known.extend(FIELDS);
        return Err(ApiError::bad(format!(
            "unknown field \"{unknown}\"; expected: {}",
            known.join(", ")
        )));
    }
    let name = match body.get("name") {
        None => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(_) => return Err(ApiError::bad("name must be a non-empty string")),
    };
    let filter = match body.get("filter") {
        None => None,
        Some(json) => Some((
            json.clone(),
            Filter::parse(json, "filter").map_err(|e| ApiError::bad(e.to_string()))?,
        )),
    };
    let description = match body.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::bad("description must be a string")),
    };
    let analytics = match body.get("analytics_tracking_enabled") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(ApiError::bad(
                "analytics_tracking_enabled must be a boolean",
            ));
        }
    };
    Ok(Fields {
        name,
        filter,
        description,
        tags: body
            .get("tags")
            .filter(|v| !v.is_null())
            .map(|v| string_list(v, "tags"))
            .transpose()?,
        teams: body
            .get("teams")
            .filter(|v| !v.is_null())
            .map(|v| string_list(v, "teams"))
            .transpose()?,
        analytics,
    })
}

/// Checks the `in_segment` references of a filter for segment `own` of workspace
/// `caller`: each must name a live segment of the workspace, and none may lead back.
pub(crate) fn check_refs(
    state: &AppState,
    caller: &Caller,
    filter: &Filter,
    own: SegmentId,
) -> ApiResult<()> {
    let catalog = read(&state.catalog);
    for (target, path) in filter.segment_refs() {
        match catalog.segment_in(caller.workspace, target) {
            Some(e) if e.segment.archived_at.is_none() => {}
            _ => {
                return Err(ApiError::bad(format!(
                    "{path}: no live segment {target} in this workspace"
                )));
            }
        }
        if catalog.reaches(&Filter::InSegment(target), own) {
            return Err(ApiError::bad(format!(
                "{path}: segment {target} refers back to this segment, which would make a cycle"
            )));
        }
    }
    Ok(())
}

/// Checks what `filter`, as the new filter of segment `own`, would cost: the limits
/// of a plan (for it and every live segment that refers to it) and the workspace's
/// budget of `matches` patterns.
fn check_costs(
    state: &AppState,
    caller: &Caller,
    own: SegmentId,
    filter: &Arc<Filter>,
) -> ApiResult<()> {
    let catalog = read(&state.catalog);
    catalog
        .check_plan_limits(own, filter)
        .map_err(ApiError::bad)?;
    let mut patterns = catalog.live_patterns(caller.workspace, own);
    patterns.extend(filter.patterns().into_iter().cloned());
    check_workspace_patterns(&patterns).map_err(|e| ApiError::bad(format!("filter: {e}")))
}

/// Warnings about the attribute, event and product names of `filter` that no fact of
/// workspace `ws` carries yet (see [`warnings::unknown_names`]).
async fn name_warnings(
    state: &AppState,
    ws: WorkspaceId,
    filter: Arc<Filter>,
) -> ApiResult<Vec<String>> {
    let index = state.index(ws);
    tokio::task::spawn_blocking(move || warnings::unknown_names(&filter, &read(&index)))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Adds `"warnings"` to a create or update answer when there is any.
fn with_warnings(mut answer: Value, warnings: Vec<String>) -> Value {
    if let (false, Some(object)) = (warnings.is_empty(), answer.as_object_mut()) {
        object.insert("warnings".into(), json!(warnings));
    }
    answer
}

async fn save(state: &AppState, entry: SegmentEntry, is_new: bool) -> ApiResult<()> {
    let store = state.store.clone();
    let segment = entry.segment.clone();
    tokio::task::spawn_blocking(move || {
        if is_new {
            store.insert_segment(&segment)
        } else {
            store.update_segment(&segment)
        }
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    write(&state.catalog).put_segment(entry);
    Ok(())
}

pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonObject(body): JsonObject,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let fields = read_fields(&body, &[])?;
    let name = fields
        .name
        .ok_or_else(|| ApiError::bad("name is required: a non-empty string"))?;
    let (filter_json, filter) = fields
        .filter
        .ok_or_else(|| ApiError::bad("filter is required: a filter node (see docs/api.md)"))?;
    let id = SegmentId::new_random();
    // Held until the catalog holds the new segment (see `Shared::segment_writes`).
    let _writing = state.segment_writes.lock().await;
    check_refs(&state, &caller, &filter, id)?;
    let filter = Arc::new(filter);
    check_costs(&state, &caller, id, &filter)?;
    let at = now();
    let segment = Segment {
        id,
        workspace: caller.workspace,
        name,
        filter: filter_json,
        text_description: fields.description.unwrap_or_default(),
        tags: fields.tags.unwrap_or_default(),
        teams: fields.teams.unwrap_or_default(),
        analytics_tracking_enabled: fields.analytics.unwrap_or(false),
        created_at: at,
        updated_at: at,
        archived_at: None,
    };
    let warnings = name_warnings(&state, caller.workspace, filter.clone()).await?;
    let definition = Definition::Parsed(filter);
    save(
        &state,
        SegmentEntry {
            segment,
            definition,
        },
        true,
    )
    .await?;
    jobs::backfill(&state, vec![id]);
    Ok((
        StatusCode::CREATED,
        Json(with_warnings(
            json!({ "message": "success", "segment_id": id.to_string() }),
            warnings,
        )),
    ))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let id = segment_id(body.get("segment_id").and_then(Value::as_str))?;
    let fields = read_fields(&body, &["segment_id"])?;
    // Held until the catalog holds the change (see `Shared::segment_writes`): the
    // reference and cycle checks see every change saved before this one.
    let writing = state.segment_writes.lock().await;
    let mut entry = find(&state, &caller, id)?;
    if entry.segment.archived_at.is_some() {
        return Err(ApiError::bad(
            "segment_id names an archived segment, which cannot be updated",
        ));
    }
    let filter_changed = match fields.filter {
        Some((json, filter)) if json != entry.segment.filter => {
            check_refs(&state, &caller, &filter, id)?;
            let filter = Arc::new(filter);
            check_costs(&state, &caller, id, &filter)?;
            entry.segment.filter = json;
            entry.definition = Definition::Parsed(filter);
            true
        }
        _ => false,
    };
    let s = &mut entry.segment;
    s.name = fields.name.unwrap_or(s.name.clone());
    s.text_description = fields.description.unwrap_or(s.text_description.clone());
    s.tags = fields.tags.unwrap_or(s.tags.clone());
    s.teams = fields.teams.unwrap_or(s.teams.clone());
    s.analytics_tracking_enabled = fields.analytics.unwrap_or(s.analytics_tracking_enabled);
    s.updated_at = now();
    let warnings = match entry.filter().cloned() {
        Some(filter) => name_warnings(&state, caller.workspace, filter).await?,
        None => Vec::new(),
    };
    save(&state, entry, false).await?;
    drop(writing);
    if filter_changed {
        let mut changed = vec![id];
        changed.extend(read(&state.catalog).dependants(id));
        jobs::recompute(&state, changed).await?;
    }
    Ok(Json(with_warnings(
        json!({ "message": "success" }),
        warnings,
    )))
}

pub(crate) async fn archive(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    if let Some(unknown) = body.keys().find(|k| k.as_str() != "segment_id") {
        return Err(ApiError::bad(format!(
            "unknown field \"{unknown}\"; expected: segment_id"
        )));
    }
    let id = segment_id(body.get("segment_id").and_then(Value::as_str))?;
    // A segment being referenced by a concurrent create or update is archived before
    // or after that change, never in the middle of its checks.
    let _writing = state.segment_writes.lock().await;
    let mut entry = find(&state, &caller, id)?;
    if entry.segment.archived_at.is_none() {
        let at = now();
        entry.segment.archived_at = Some(at);
        entry.segment.updated_at = at;
        save(&state, entry, false).await?;
    }
    Ok(Json(json!({ "message": "success" })))
}
