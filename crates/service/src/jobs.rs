//! Background work on daily sizes: backfilling history when a segment is created or
//! its filter changes, and storing each completed day shortly after local midnight.

use crate::counting::{Counting, SizeError, segment_filters};
use crate::error::{ServiceError, ServiceResult};
use crate::leases::{Lease, sizes_lease};
use crate::sizes::{Sizer, last_completed_days};
use crate::state::{AppState, now, read, write};
use headcount_model::{Day, SegmentId, Timestamp, WorkspaceId};
use std::collections::HashMap;

/// Computes (in the background) the missing sizes of the last `backfill_days`
/// completed days of each segment.
pub fn backfill(state: &AppState, segments: Vec<SegmentId>) {
    let state = state.clone();
    state.metrics.backfill_pending(segments.len() as i64);
    tokio::task::spawn_blocking(move || {
        let _one_at_a_time = state.backfills.lock().unwrap_or_else(|p| p.into_inner());
        let days = state.config.backfill_days;
        for id in segments {
            if let Err(e) = fill_segment(&state, id, days) {
                tracing::error!(segment = %id, error = %e, "backfill failed");
            }
            state.metrics.backfill_pending(-1);
        }
    });
}

/// Forgets the stored history of segments whose meaning changed, then backfills it.
pub async fn recompute(state: &AppState, segments: Vec<SegmentId>) -> ServiceResult<()> {
    let store = state.store.clone();
    let ids = segments.clone();
    let shared = state.clone();
    tokio::task::spawn_blocking(move || {
        ids.iter().try_for_each(|id| {
            // Under the segment's size lock: a computation that read the old filter
            // has stored its sizes before this, or reads the new filter after it.
            let lock = shared.size_lock(*id);
            let _held = write(&lock);
            store.clear_sizes(*id)
        })
    })
    .await
    .map_err(|e| ServiceError::Task(e.to_string()))??;
    backfill(state, segments);
    Ok(())
}

/// Stores the sizes of the last `days` completed days of one segment that are not
/// stored yet; returns how many it computed. Under the segment's lease (see
/// `leases.rs`): nothing while another process computes them.
pub fn fill_segment(state: &AppState, id: SegmentId, days: u32) -> Result<usize, SizeError> {
    let Some(_lease) = Lease::take(state, sizes_lease(id))? else {
        tracing::debug!(segment = %id, "daily sizes skipped: another node computes them");
        return Ok(0);
    };
    // Held from reading the plan to storing the sizes (see `Shared::size_lock`).
    let lock = state.size_lock(id);
    let _held = read(&lock);
    let (entry, tz, plan, filters) = {
        let catalog = read(&state.catalog);
        let Some(entry) = catalog.segment_in_any(id).cloned() else {
            return Ok(0);
        };
        let Some(ws) = catalog.workspace(entry.segment.workspace) else {
            return Ok(0);
        };
        let plan = match catalog.segment_plan(&entry, state.store.as_ref()) {
            Ok(plan) => plan,
            Err(e) => {
                // Failing segments are skipped until an update repairs them.
                tracing::warn!(segment = %id, error = %e, "daily sizes skipped: the segment cannot be computed");
                return Ok(0);
            }
        };
        let filters = match state
            .engines
            .clickhouse_of(state.store.as_ref(), entry.segment.workspace)?
        {
            Some(_) => Some(
                segment_filters(&catalog, state.store.as_ref(), id)
                    .map_err(|e| SizeError::Engine(e.to_string()))?,
            ),
            None => None,
        };
        (entry, ws.tz.clone(), plan, filters)
    };
    let ws = entry.segment.workspace;
    let index = state.index(ws);
    let index = read(&index);
    let now = now();
    let counting = match (
        &filters,
        state.engines.clickhouse_of(state.store.as_ref(), ws)?,
    ) {
        (Some(filters), Some(ch)) => Counting::ClickHouse {
            ch,
            workspace: ws,
            filters,
        },
        _ => Counting::Memory {
            index: &index,
            plan: &plan,
        },
    };
    let sizer = Sizer {
        store: state.store.as_ref(),
        counting,
        segment: id,
        tz: &tz,
        now,
    };
    let computed = sizer.fill(&last_completed_days(now, days, &tz), false)?;
    if computed > 0 {
        // One line per computation, on the node that made it (the lease makes it one).
        tracing::info!(segment = %id, days = computed, node = %state.config.node_name, "computed daily sizes");
    }
    Ok(computed)
}

/// Stores every live segment's missing completed days among the last `days`.
/// Records in the metrics, per workspace whose segments all succeeded, the end of the
/// last day completed at the start of the pass.
pub fn fill_all(state: &AppState, days: u32) {
    let started = now();
    let (ids, mut complete): (
        Vec<(WorkspaceId, SegmentId)>,
        HashMap<WorkspaceId, Timestamp>,
    ) = {
        let catalog = read(&state.catalog);
        let ends = catalog
            .workspaces()
            .map(|w| (w.workspace.id, Day::containing(started, &w.tz).start(&w.tz)))
            .collect();
        let ids = catalog
            .workspaces()
            .flat_map(|w| {
                catalog
                    .segments_of(w.workspace.id)
                    .filter(|e| e.segment.archived_at.is_none())
                    .map(|e| (w.workspace.id, e.segment.id))
                    .collect::<Vec<_>>()
            })
            .collect();
        (ids, ends)
    };
    let mut pending = ids.len() as i64;
    state.metrics.daily_pending(pending);
    for (ws, id) in ids {
        match fill_segment(state, id, days) {
            Ok(_) => {}
            Err(e) => {
                complete.remove(&ws);
                tracing::error!(segment = %id, error = %e, "computing daily sizes failed")
            }
        }
        pending -= 1;
        state.metrics.daily_pending(pending);
    }
    for (ws, end) in complete {
        state.metrics.day_stored(ws, end);
    }
}

/// The daily schedule: at start, catch up on the history window; then, every
/// `schedule_every`, store the day that has just completed in each workspace.
pub async fn schedule(state: AppState) {
    state.loading.wait_ready().await;
    let catch_up = state.clone();
    let days = state.config.backfill_days;
    let _ = tokio::task::spawn_blocking(move || fill_all(&catch_up, days)).await;
    let mut tick = tokio::time::interval(state.config.schedule_every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let state = state.clone();
        let _ = tokio::task::spawn_blocking(move || fill_all(&state, 1)).await;
    }
}
