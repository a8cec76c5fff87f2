//! `POST /segments/preview`: the size a filter would have, today and over the last 30
//! completed days, computed by the engine from the filter without storing anything.

use super::segments::{check_refs, read_fields};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonObject;
use crate::sizes::last_completed_days;
use crate::state::{AppState, now, read};
use axum::extract::State;
use axum::{Extension, Json};
use headcount_model::{Day, SegmentId, Timestamp};
use serde_json::{Map, Value, json};

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

/// `POST /segments/preview`.
pub async fn preview(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    let p = compute(&state, &caller, &body).await?;
    let data: Vec<Value> = p
        .days
        .iter()
        .map(|(day, size)| json!({ "time": day.to_string(), "size": size }))
        .collect();
    Ok(Json(json!({
        "message": "success",
        "live_size": p.live_size,
        "as_of": p.as_of.to_string(),
        "data": data,
        "warnings": p.warnings,
    })))
}
