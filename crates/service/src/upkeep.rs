//! The server's housekeeping besides daily sizes: picking up changes of workspaces,
//! keys and segments made by other processes (`headcount workspaces|keys …`), and
//! saving rate-limit windows so that a restart inside a window goes on counting.

use crate::catalog::Catalog;
use crate::ratelimit::Bucket;
use crate::state::{AppState, write};
use headcount_store::{RateWindow, StoreError};
use std::time::Duration;

/// How often the store's catalog version is read.
pub const CATALOG_POLL: Duration = Duration::from_millis(250);

/// How often changed rate-limit windows are saved.
pub const SAVE_WINDOWS_EVERY: Duration = Duration::from_secs(1);

/// Polls `Store::catalog_version` and reloads the catalog whenever it moves (and once
/// at the start, for changes made while the server was loading). Runs until aborted.
pub async fn watch_catalog(state: AppState) {
    let mut seen: Option<u64> = None;
    let mut failed: Option<u64> = None;
    loop {
        let store = state.store.clone();
        let version = match tokio::task::spawn_blocking(move || store.catalog_version()).await {
            Ok(Ok(version)) => version,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the catalog version");
                tokio::time::sleep(CATALOG_POLL).await;
                continue;
            }
            Err(_) => return,
        };
        if seen != Some(version) {
            match reload(&state).await {
                Ok(loaded) => {
                    seen = Some(loaded);
                    failed = None;
                }
                Err(e) => {
                    // Logged once per version; tried again at every poll.
                    if failed != Some(version) {
                        tracing::error!(error = %e, "cannot reload the catalog");
                        failed = Some(version);
                    }
                }
            }
        }
        tokio::time::sleep(CATALOG_POLL).await;
    }
}

/// Reads the catalog again and swaps it in; returns the version read, which is at
/// most that of the catalog loaded (a change in between is picked up at the next poll).
async fn reload(state: &AppState) -> Result<u64, StoreError> {
    // Segment changes of this server hold this lock from the store to the catalog:
    // holding it here, the catalog read cannot miss one that the catalog then holds.
    let _segments = state.segment_writes.lock().await;
    let store = state.store.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let version = store.catalog_version()?;
        Ok::<_, StoreError>((version, Catalog::load(store.as_ref())?))
    })
    .await
    .map_err(|e| StoreError::Corrupt(format!("catalog reload: {e}")))??;
    let (version, fresh) = loaded;
    let segments_changed = write(&state.catalog).refresh(fresh);
    tracing::debug!(version, segments_changed, "catalog reloaded");
    Ok(version)
}

/// Puts back the rate-limit windows saved by the last run.
pub fn restore_windows(state: &AppState) -> Result<(), StoreError> {
    for saved in state.store.rate_windows()? {
        if let Some(bucket) = Bucket::from_name(&saved.bucket) {
            state
                .limiter
                .restore((saved.workspace, bucket), saved.window_start, saved.count);
        }
    }
    Ok(())
}

/// Saves the windows changed since the last save; runs on a blocking thread.
pub async fn save_windows(state: &AppState) {
    let changed: Vec<RateWindow> = state
        .limiter
        .unsaved()
        .into_iter()
        .map(|((workspace, bucket), window_start, count)| RateWindow {
            workspace,
            bucket: bucket.as_str().to_string(),
            window_start,
            count,
        })
        .collect();
    if changed.is_empty() {
        return;
    }
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.put_rate_windows(&changed)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot save rate-limit windows"),
        Err(e) => tracing::warn!(error = %e, "cannot save rate-limit windows"),
    }
}

/// Saves changed rate-limit windows every [`SAVE_WINDOWS_EVERY`]. Runs until aborted.
pub async fn save_windows_every(state: AppState) {
    let mut every = tokio::time::interval(SAVE_WINDOWS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        save_windows(&state).await;
    }
}
