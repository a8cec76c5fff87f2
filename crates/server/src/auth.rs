//! Authentication, permissions, IP allow-lists and rate limits: one middleware in
//! front of every endpoint, so that each handler starts from a known caller.

use crate::error::ApiError;
use crate::metrics::KeyRejection;
use crate::ratelimit::{Bucket, Window};
use crate::state::{AppState, read};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use headcount_model::WorkspaceId;
use headcount_service::limits::UNAVAILABLE_RETRY_AFTER;
use headcount_store::{Permission, TRACK_WINDOW_SECS};
use jiff::tz::TimeZone;
use std::net::SocketAddr;

/// The authenticated caller, put in the request's extensions for handlers.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's workspace.
    pub workspace: WorkspaceId,
    /// The workspace's time zone.
    pub tz: TimeZone,
}

/// What an endpoint requires: a permission and a rate-limit bucket.
pub fn requirement(path: &str) -> Option<(Permission, Bucket)> {
    Some(match path {
        "/segments/list" => (Permission::SegmentsList, Bucket::Export),
        "/segments/details" => (Permission::SegmentsDetails, Bucket::Export),
        "/segments/data_series" => (Permission::SegmentsDataSeries, Bucket::Export),
        "/segments/create" => (Permission::SegmentsCreate, Bucket::Export),
        "/segments/update" => (Permission::SegmentsUpdate, Bucket::Export),
        "/segments/archive" => (Permission::SegmentsArchive, Bucket::Export),
        "/segments/preview" => (Permission::SegmentsCreate, Bucket::Export),
        "/users/track" => (Permission::UsersTrack, Bucket::Track),
        "/users/delete" => (Permission::UsersDelete, Bucket::Export),
        _ => return None,
    })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

fn set_window_headers(response: &mut Response, window: Option<Window>) {
    let headers = response.headers_mut();
    let values = match window {
        Some(w) => [w.limit.into(), w.remaining.into(), w.reset.into()],
        None => [
            HeaderValue::from_static(""),
            HeaderValue::from_static(""),
            HeaderValue::from_static(""),
        ],
    };
    let [limit, remaining, reset] = values;
    headers.insert("x-ratelimit-limit", limit);
    headers.insert("x-ratelimit-remaining", remaining);
    headers.insert("x-ratelimit-reset", reset);
}

fn epoch_seconds() -> u64 {
    crate::state::now().as_second().max(0) as u64
}

/// The middleware: refuses with 401/403/429, or runs the handler with a [`Caller`];
/// either way the answer carries the `X-RateLimit-*` headers.
pub async fn guard(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some((permission, bucket)) = requirement(request.uri().path()) else {
        return next.run(request).await;
    };
    let sent = bearer(request.headers()).unwrap_or("").to_string();
    let checked = {
        let catalog = read(&state.catalog);
        catalog.authenticate(&sent).and_then(|key| {
            let ws = catalog.workspace(key.workspace)?;
            let limit = match bucket {
                Bucket::Export => (ws.workspace.export_limit, 3600),
                Bucket::Track => (ws.workspace.track_limit, TRACK_WINDOW_SECS),
            };
            let allowed_ip =
                key.allow_ips.is_empty() || key.allow_ips.iter().any(|net| net.contains(peer.ip()));
            let permitted = key.permissions.contains(&permission);
            Some((
                Caller {
                    workspace: key.workspace,
                    tz: ws.tz.clone(),
                },
                limit,
                allowed_ip,
                permitted,
            ))
        })
    };
    let Some((caller, (limit, window_secs), allowed_ip, permitted)) = checked else {
        let reason = crate::observe::rejection_of(&read(&state.catalog), &sent);
        state.metrics.key_rejected(reason);
        let mut response = ApiError::InvalidKey(sent).into_response();
        set_window_headers(&mut response, None);
        return response;
    };
    let key = (caller.workspace, bucket);
    let now = epoch_seconds();
    let refusal = if !allowed_ip {
        state.metrics.key_rejected(KeyRejection::Ip);
        Some(ApiError::Forbidden(format!(
            "the address {} is not allowed to use this API key",
            peer.ip()
        )))
    } else if !permitted {
        state.metrics.key_rejected(KeyRejection::Permission);
        Some(ApiError::Forbidden(format!(
            "this API key lacks the permission {permission}"
        )))
    } else {
        None
    };
    if let Some(refusal) = refusal {
        let mut response = refusal.into_response();
        // Unreachable counters: the refusal stands, without the window.
        let window = state
            .counter
            .count(key, limit, window_secs, now, false)
            .await;
        set_window_headers(&mut response, window.ok());
        return response;
    }
    let window = match state
        .counter
        .count(key, limit, window_secs, now, true)
        .await
    {
        Ok(window) => window,
        Err(e) => {
            tracing::warn!(error = %e, "refusing a request: the rate-limit counters are unreachable");
            let mut response = ApiError::CountersUnavailable {
                retry_after: UNAVAILABLE_RETRY_AFTER,
            }
            .into_response();
            set_window_headers(&mut response, None);
            return response;
        }
    };
    let mut response = if window.exceeded {
        state.metrics.rate_limited(bucket.as_str());
        ApiError::RateLimited {
            retry_after: window.reset.saturating_sub(now).max(1),
        }
        .into_response()
    } else {
        request.extensions_mut().insert(caller);
        next.run(request).await
    };
    set_window_headers(&mut response, Some(window));
    response
}
