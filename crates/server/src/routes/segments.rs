//! `/segments/*`: the catalog (list, details, create, update, archive) and the
//! `data_series` export.

use crate::auth::Caller;
use crate::catalog::{Definition, SegmentEntry};
use crate::error::{ApiError, ApiResult, UNKNOWN_SEGMENT};
use crate::extract::{JsonObject, Params};
use crate::jobs;
use crate::openapi::Message;
use crate::routes::{Endpoint, get, post};
use crate::sizes::{Sizer, series_in_memory};
use crate::state::{AppState, now, read, write};
use crate::warnings;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use headcount_model::datetime;
use headcount_model::day::{FIRST_DAY, series_days};
use headcount_model::describe::describe;
use headcount_model::limits::check_workspace_patterns;
use headcount_model::{Day, Filter, SegmentId, Timestamp, WorkspaceId};
use headcount_service::counting::{Counting, segment_filters};
use headcount_store::Segment;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use utoipa::ToSchema;

/// Segments per page of `/segments/list`.
pub const PAGE_SIZE: usize = 100;
/// Most days a `data_series` request may ask for.
pub const MAX_LENGTH: u32 = 100;

/// The `/segments/*` endpoints.
pub fn endpoints() -> Vec<Endpoint> {
    vec![
        get("/segments/list", list),
        get("/segments/details", details),
        get("/segments/data_series", data_series),
        post("/segments/create", create),
        post("/segments/update", update),
        post("/segments/archive", archive),
        post("/segments/preview", super::preview::preview),
    ]
}

/// The answer of `/segments/list`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListAnswer {
    /// `"success"`.
    pub message: String,
    /// The page's live segments.
    pub segments: Vec<ListedSegment>,
}

/// A segment as `/segments/list` lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListedSegment {
    /// The segment's API identifier.
    pub id: String,
    /// Its name.
    pub name: String,
    /// As set on create or update (`false` by default).
    pub analytics_tracking_enabled: bool,
    /// Its tags.
    pub tags: Vec<String>,
}

/// The answer of `/segments/details`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DetailsAnswer {
    /// `"success"`.
    pub message: String,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    /// When it last changed (RFC 3339, UTC).
    pub updated_at: String,
    /// Its name.
    pub name: String,
    /// An English sentence generated from the filter (`""` for a failing segment whose
    /// filter does not parse).
    pub description: String,
    /// The description a person wrote (`""` when none).
    pub text_description: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its teams.
    pub teams: Vec<String>,
    /// When its newest stored size was computed, or `null` before any.
    pub last_computed_at: Option<String>,
    /// The filter's names that no fact carries yet.
    pub warnings: Vec<String>,
    /// Present only for a segment that cannot be computed: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub error: Option<String>,
}

/// The answer of `/segments/data_series` (written by `render_series`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesAnswer {
    /// `"success"`.
    pub message: String,
    /// One point per day, oldest first.
    pub data: Vec<SeriesPoint>,
}

/// One day of a series.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesPoint {
    /// The day, `YYYY-MM-DD`, in the workspace's time zone.
    #[schema(format = Date)]
    pub time: String,
    /// Members at the end of that day (or now, for today).
    pub size: u64,
}

/// The body of `/segments/create` (read field by field by `read_fields`, for messages
/// that name the field; unknown fields are a 400).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Active French users", "tags": ["geo"],
    "filter": {"all": [{"attribute": "country", "op": "eq", "value": "FR"},
                       {"event": "session_start", "op": "gte", "value": 1, "within_days": 7}]}}))]
#[allow(dead_code)] // a schema only
pub struct CreateBody {
    /// The segment's name: a non-empty string.
    #[schema(min_length = 1)]
    name: String,
    /// A filter node (docs/segments.md): `{"attribute": …, "op": …, "value": …}`,
    /// `{"event": …}`, `{"purchase": …}`, `{"all": […]}`, `{"any": […]}`,
    /// `{"not": …}`, `{"in_segment": "<id>"}`.
    #[schema(value_type = crate::openapi::FilterNode)]
    filter: Value,
    /// Free text (`text_description` in details).
    description: Option<String>,
    /// Tags.
    tags: Option<Vec<String>>,
    /// Teams.
    teams: Option<Vec<String>>,
    /// Kept and returned as is (`false` by default).
    analytics_tracking_enabled: Option<bool>,
}

/// The body of `/segments/update`: the segment and any fields of create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a schema only
pub struct UpdateBody {
    /// The segment's API identifier.
    #[schema(format = "uuid")]
    segment_id: String,
    /// A new name: a non-empty string.
    #[schema(min_length = 1, nullable = false)]
    name: Option<String>,
    /// A new filter node.
    #[schema(value_type = crate::openapi::FilterNode, required = false)]
    filter: Option<Value>,
    /// A new description.
    description: Option<String>,
    /// New tags.
    tags: Option<Vec<String>>,
    /// New teams.
    teams: Option<Vec<String>>,
    /// A new value.
    analytics_tracking_enabled: Option<bool>,
}

/// The body of `/segments/archive`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a schema only
pub struct ArchiveBody {
    /// The segment's API identifier.
    #[schema(format = "uuid")]
    segment_id: String,
}

/// The answer of `/segments/create`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedAnswer {
    /// `"success"`.
    pub message: String,
    /// The new segment's API identifier.
    pub segment_id: String,
    /// The filter's names that no fact carries yet; absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub warnings: Option<Vec<String>>,
}

/// The answer of `/segments/update`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdatedAnswer {
    /// `"success"`.
    pub message: String,
    /// The filter's names that no fact carries yet; absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub warnings: Option<Vec<String>>,
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

/// `GET /segments/list`.
#[utoipa::path(
    get,
    path = "/segments/list",
    tag = "segments",
    description = "The workspace's live segments, 100 a page. Permission `segments.list`.",
    params(
        ("page" = Option<u64>, Query, description = "0-based page of 100 segments; a page past the end is empty."),
        ("sort_direction" = Option<String>, Query, pattern = "^(asc|desc)?$",
            description = "`asc` (the default: oldest created first) or `desc`."),
    ),
    responses(
        (status = 200, description = "A page of live segments.", body = ListAnswer),
        (status = 400, description = "`page must be a non-negative integer`, `sort_direction must be asc or desc`, or a parameter given twice.", body = Message),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Params,
) -> ApiResult<Json<ListAnswer>> {
    let page = match params.get("page")? {
        None | Some("") => 0,
        Some(p) => p
            .parse::<usize>()
            .map_err(|_| ApiError::bad("page must be a non-negative integer"))?,
    };
    let descending = match params.get("sort_direction")? {
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
    let segments = ordered
        .into_iter()
        .skip(page.saturating_mul(PAGE_SIZE))
        .take(PAGE_SIZE)
        .map(|e| ListedSegment {
            id: e.segment.id.to_string(),
            name: e.segment.name.clone(),
            analytics_tracking_enabled: e.segment.analytics_tracking_enabled,
            tags: e.segment.tags.clone(),
        })
        .collect();
    Ok(Json(ListAnswer {
        message: "success".into(),
        segments,
    }))
}

/// `GET /segments/details`.
#[utoipa::path(
    get,
    path = "/segments/details",
    tag = "segments",
    description = "A segment's details, archived or not. Permission `segments.details`.",
    params(
        ("segment_id" = String, Query, format = "uuid", description = "The segment's API identifier."),
    ),
    responses(
        (status = 200, description = "The segment (with `error` when it cannot be computed).", body = DetailsAnswer),
        (status = 400, description = "`segment_id must be a string of the Segment api identifier` (missing, malformed, unknown or another workspace's), or a parameter given twice.", body = Message),
    )
)]
pub(crate) async fn details(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Params,
) -> ApiResult<Json<DetailsAnswer>> {
    let id = segment_id(params.get("segment_id")?)?;
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
    let s = entry.segment;
    Ok(Json(DetailsAnswer {
        message: "success".into(),
        created_at: s.created_at.to_string(),
        updated_at: s.updated_at.to_string(),
        name: s.name,
        description,
        text_description: s.text_description,
        tags: s.tags,
        teams: s.teams,
        last_computed_at: last.map(|t| t.to_string()),
        warnings,
        error,
    }))
}

/// The 400 of a `data_series` of a segment that cannot be computed.
fn cannot_compute(why: String) -> ApiError {
    ApiError::bad(format!(
        "segment_id names a segment that cannot be computed: {why}; \
         update its filter (POST /segments/update) to one that can be"
    ))
}

/// `GET /segments/data_series`.
#[utoipa::path(
    get,
    path = "/segments/data_series",
    tag = "segments",
    description = "A daily series of a segment's size, oldest first; exact sizes. \
        Permission `segments.data_series`.",
    params(
        ("segment_id" = String, Query, format = "uuid", description = "The segment's API identifier."),
        ("length" = u32, Query, minimum = 1, maximum = 100, description = "How many days to return: 1 to 100."),
        ("ending_at" = Option<String>, Query, example = "2022-12-15T10:00:00Z",
            description = "ISO-8601 date or datetime (lenient, see docs/api.md); the last point is the day \
                that contains the instant just before it. Default and upper bound: the moment of the request."),
    ),
    responses(
        (status = 200, description = "Exactly `length` points, oldest first.", body = SeriesAnswer),
        (status = 400, description = "`segment_id must be …`, `length must be an integer from 1 to 100`, \
            `ending_at \"…\" …` (unreadable, or out of the supported range), a segment that cannot be computed, \
            or a parameter given twice.", body = Message),
    )
)]
pub(crate) async fn data_series(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Params,
) -> ApiResult<Response> {
    let id = segment_id(params.get("segment_id")?)?;
    let length = match params.get("length")?.map(|l| l.trim().parse::<u32>()) {
        Some(Ok(n)) if (1..=MAX_LENGTH).contains(&n) => n,
        _ => {
            return Err(ApiError::bad(format!(
                "length must be an integer from 1 to {MAX_LENGTH}"
            )));
        }
    };
    let now = now();
    let ending_at = match params.get("ending_at")? {
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
    let store = state.store.as_ref();
    if let Some(ch) = state.engines.clickhouse_of(store, caller.workspace)? {
        // ClickHouse: no live-size cache (the index does not see its facts).
        let filters = segment_filters(&read(&state.catalog), store, id)
            .map_err(|e| cannot_compute(e.to_string()))?;
        let sizer = Sizer {
            store,
            counting: Counting::ClickHouse {
                ch,
                workspace: caller.workspace,
                filters: &filters,
            },
            segment: id,
            tz: &caller.tz,
            now,
        };
        return Ok(sizer.series(days, &mut || sizer.counting.size_at(now, &caller.tz))?);
    }
    Ok(Sizer {
        store,
        counting: Counting::Memory {
            index: &index,
            plan: &plan,
        },
        segment: id,
        tz: &caller.tz,
        now,
    }
    .series(days, &mut || {
        Ok(
            state.live_size(id, &index, generation, now, &caller.tz, || {
                index.size(&plan, now, &caller.tz)
            }),
        )
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

/// The `"warnings"` of a create or update answer: absent when there is none.
fn some_warnings(warnings: Vec<String>) -> Option<Vec<String>> {
    (!warnings.is_empty()).then_some(warnings)
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

/// `POST /segments/create`.
#[utoipa::path(
    post,
    path = "/segments/create",
    tag = "segments",
    description = "Creates a segment and computes its history in the background. Permission `segments.create`.",
    request_body(content = CreateBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created, with warnings about names no fact carries yet.", body = CreatedAnswer),
        (status = 400, description = "A bad body: malformed JSON, a key twice, an unknown field, a missing or bad \
            `name` or `filter` (naming the path of the bad node), a reference to no live segment, a limit exceeded.", body = Message),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonObject(body): JsonObject,
) -> ApiResult<(StatusCode, Json<CreatedAnswer>)> {
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
        Json(CreatedAnswer {
            message: "success".into(),
            segment_id: id.to_string(),
            warnings: some_warnings(warnings),
        }),
    ))
}

/// `POST /segments/update`.
#[utoipa::path(
    post,
    path = "/segments/update",
    tag = "segments",
    description = "Changes the fields sent; a new filter recomputes the history of the segment and of \
        those that refer to it. Permission `segments.update`.",
    request_body(content = UpdateBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated, with warnings as for create.", body = UpdatedAnswer),
        (status = 400, description = "A bad body as for create, an unknown or archived segment, a cycle of \
            `in_segment`, a dependant pushed beyond a limit.", body = Message),
    )
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<UpdatedAnswer>> {
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
    Ok(Json(UpdatedAnswer {
        message: "success".into(),
        warnings: some_warnings(warnings),
    }))
}

/// `POST /segments/archive`.
#[utoipa::path(
    post,
    path = "/segments/archive",
    tag = "segments",
    description = "Archives a segment (twice succeeds). Permission `segments.archive`.",
    request_body(content = ArchiveBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Archived: `{\"message\":\"success\"}`.", body = Message),
        (status = 400, description = "A bad body, an unknown field, an unknown segment.", body = Message),
    )
)]
pub(crate) async fn archive(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Message>> {
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
    // Off the runtime: releasing the store's cache waits for its connection.
    let forgetting = state.clone();
    tokio::task::spawn_blocking(move || forgetting.forget_segment(id))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(Message {
        message: "success".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_written_series_is_the_documented_series_answer() {
        let points = [(Day::ymd(2022, 12, 9), 123), (Day::ymd(2022, 12, 10), 0)];
        let written = axum::body::to_bytes(render_series(&points).into_body(), usize::MAX)
            .await
            .expect("the body");
        let documented = SeriesAnswer {
            message: "success".into(),
            data: points
                .iter()
                .map(|(day, size)| SeriesPoint {
                    time: day.to_string(),
                    size: *size,
                })
                .collect(),
        };
        assert_eq!(
            std::str::from_utf8(&written).expect("UTF-8"),
            serde_json::to_string(&documented).expect("JSON")
        );
    }
}
