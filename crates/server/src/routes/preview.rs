//! `POST /segments/preview`: the size a filter would have, today and over the last 30
//! completed days, computed by the engine from the filter without storing anything.

use super::segments::{SeriesPoint, check_refs, read_fields};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonObject;
use crate::openapi::Message;
use crate::sizes::last_completed_days;
use crate::state::{AppState, now, read};
use axum::extract::State;
use axum::{Extension, Json};
use headcount_model::{Day, SegmentId, Timestamp};
use headcount_service::counting::{Counting, Filters};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use utoipa::ToSchema;

/// Completed days in a preview.
pub const PREVIEW_DAYS: u32 = 30;

/// What a preview answers.
#[derive(Debug, Clone)]
pub struct Preview {
    /// The instant of the live size.
    pub as_of: Timestamp,
    /// The size as of `as_of`.
    pub live_size: u64,
    /// The size at the end of each of the last [`PREVIEW_DAYS`] completed days, oldest first.
    pub days: Vec<(Day, u64)>,
    /// The attribute, event and product names of the filter that no fact carries yet,
    /// as create and update warn about them.
    pub warnings: Vec<String>,
}

/// Validates `body` as a create body would be (`filter` required, the other fields of
/// create allowed and checked) and sizes its filter in the caller's workspace.
pub async fn compute(
    state: &AppState,
    caller: &Caller,
    body: &Map<String, Value>,
) -> ApiResult<Preview> {
    let fields = read_fields(body, &[])?;
    let (_, filter) = fields
        .filter
        .ok_or_else(|| ApiError::bad("filter is required: a filter node (see docs/api.md)"))?;
    // A fresh id: no live segment can refer to it, so only unknown or archived
    // references are refused, as on create.
    check_refs(state, caller, &filter, SegmentId::new_random())?;
    let plan = read(&state.catalog)
        .plan(&filter)
        .map_err(|e| ApiError::bad(format!("filter: {e}")))?;
    let index = state.index(caller.workspace);
    let tz = caller.tz.clone();
    if super::is_clickhouse(state, caller.workspace).await? {
        let filters = {
            let catalog = read(&state.catalog);
            let store = state.store.as_ref();
            Filters::collect(Arc::new(filter.clone()), &|id| {
                catalog.stored_filter(id, store).ok()
            })
        };
        let shared = state.clone();
        let ws = caller.workspace;
        return tokio::task::spawn_blocking(move || {
            let as_of = now();
            let days = last_completed_days(as_of, PREVIEW_DAYS, &tz);
            let Some(ch) = shared.engines.clickhouse_of(shared.store.as_ref(), ws)? else {
                return Err(ApiError::Internal("the engine changed".into()));
            };
            let counting = Counting::ClickHouse {
                ch,
                workspace: ws,
                filters: &filters,
            };
            let sizes = counting.day_sizes(&days, &tz)?;
            Ok(Preview {
                as_of,
                live_size: counting.size_at(as_of, &tz)?,
                days: days.into_iter().zip(sizes).collect(),
                // The index does not see a ClickHouse workspace's names.
                warnings: Vec::new(),
            })
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    tokio::task::spawn_blocking(move || {
        let index = read(&index);
        let as_of = now();
        let days = last_completed_days(as_of, PREVIEW_DAYS, &tz);
        let sizes = index.sizes(&plan, &days, &tz);
        Preview {
            as_of,
            live_size: index.size(&plan, as_of, &tz),
            days: days.into_iter().zip(sizes).collect(),
            warnings: crate::warnings::unknown_names(&filter, &index),
        }
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))
}

/// The body of `/segments/preview`: a create body whose `filter` alone is required
/// (read by `read_fields`, as create's).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"filter": {"attribute": "country", "op": "eq", "value": "FR"}}))]
#[allow(dead_code)] // a schema only
pub struct PreviewBody {
    /// The filter node to size.
    #[schema(value_type = crate::openapi::FilterNode)]
    filter: Value,
    /// Checked as on create, unused.
    #[schema(min_length = 1, nullable = false)]
    name: Option<String>,
    /// Checked as on create, unused.
    description: Option<String>,
    /// Checked as on create, unused.
    tags: Option<Vec<String>>,
    /// Checked as on create, unused.
    teams: Option<Vec<String>>,
    /// Checked as on create, unused.
    analytics_tracking_enabled: Option<bool>,
}

/// The answer of `/segments/preview`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewAnswer {
    /// `"success"`.
    pub message: String,
    /// The size as of `as_of`.
    pub live_size: u64,
    /// The instant of `live_size` (RFC 3339, UTC).
    pub as_of: String,
    /// The sizes of the last 30 completed days, oldest first.
    pub data: Vec<SeriesPoint>,
    /// The filter's names that no fact carries yet (`[]` when none).
    pub warnings: Vec<String>,
}

/// `POST /segments/preview`.
#[utoipa::path(
    post,
    path = "/segments/preview",
    tag = "segments",
    description = "The size a filter would have, today and over the last 30 completed days, stored nowhere. \
        Permission `segments.create`.",
    request_body(content = PreviewBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The sizes.", body = PreviewAnswer),
        (status = 400, description = "A bad body, refused as create's.", body = Message),
    )
)]
pub async fn preview(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<PreviewAnswer>> {
    let p = compute(&state, &caller, &body).await?;
    Ok(Json(PreviewAnswer {
        message: "success".into(),
        live_size: p.live_size,
        as_of: p.as_of.to_string(),
        data: p
            .days
            .iter()
            .map(|(day, size)| SeriesPoint {
                time: day.to_string(),
                size: *size,
            })
            .collect(),
        warnings: p.warnings,
    }))
}
