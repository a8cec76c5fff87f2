//! What operators see of the server: a request id, a log line and metrics for every
//! request, and `GET /metrics` (see [`crate::metrics`]).
//!
//! `/metrics` needs no key (Prometheus scrapers send none): it is served on the API's
//! address unless [`Config::metrics_on_api`](crate::Config) is false, when
//! `serve --metrics-listen` serves it on an address of its own instead.

use crate::metrics::{IndexFigures, KeyRejection};
use crate::state::{AppState, now, read};
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use headcount_model::WorkspaceId;
use headcount_store::keys;
use std::time::Instant;
use tracing::Instrument;

/// The header that carries a request's id, both ways.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming request id kept; longer ones are replaced.
pub const REQUEST_ID_MAX: usize = 64;

/// The route template a request matched, handed from [`mark_route`] to [`observe`].
#[derive(Debug, Clone)]
struct Route(MatchedPath);

/// An incoming id worth keeping: 1 to 64 characters, letters, digits and `-_.:+/=@`
/// only (so it can neither forge a log field nor carry a secret of any length).
pub fn sane_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= REQUEST_ID_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=@".contains(&b))
}

/// A new request id: 16 random bytes in hex.
pub fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness: a time-based id is still unique enough to find a line.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = nanos.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Puts the matched route template in the response, for [`observe`] (a route layer:
/// it runs only for requests that matched a route).
pub async fn mark_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(Route(route));
    }
    response
}

/// The outermost middleware: gives the request an id (the caller's `X-Request-Id` if
/// sane, else a new one), runs it in a `request` span carrying that id, returns the
/// id as `X-Request-Id`, writes one log line (method, route, path, status, latency;
/// never a header, so never the key) and counts it in the metrics.
pub async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane_request_id(v))
        .map(str::to_string)
        .unwrap_or_else(new_request_id);
    if let Ok(value) = HeaderValue::from_str(&id) {
        request.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let span = tracing::info_span!("request", request_id = %id, %method);
    let mut response = next.run(request).instrument(span.clone()).await;
    let latency = started.elapsed();
    let route = response
        .extensions()
        .get::<Route>()
        .map(|r| r.0.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let status = response.status().as_u16();
    state
        .metrics
        .http_request(&route, method.as_str(), status, latency);
    span.in_scope(|| {
        tracing::info!(
            request_id = %id,
            %method,
            %route,
            %path,
            status,
            latency_ms = latency.as_secs_f64() * 1000.0,
            "request"
        )
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    response
}

/// Whether `secret` is the secret of a revoked key (else it is unknown).
pub fn rejection_of(catalog: &crate::catalog::Catalog, secret: &str) -> KeyRejection {
    let revoked = catalog.key(keys::public_id(secret)).is_some_and(|key| {
        key.revoked_at.is_some() && keys::hashes_equal(&key.hash, &keys::hash_secret(secret))
    });
    if revoked {
        KeyRejection::Revoked
    } else {
        KeyRejection::Unknown
    }
}

/// `GET /metrics`: the exposition, in Prometheus' text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = tokio::task::spawn_blocking(move || render(&state))
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The exposition of `state` now (reads every index: blocking).
pub fn render(state: &AppState) -> String {
    let workspaces: Vec<(WorkspaceId, String)> = read(&state.catalog)
        .workspaces()
        .map(|e| (e.workspace.id, e.workspace.name.clone()))
        .collect();
    let indexes: Vec<(WorkspaceId, String, IndexFigures)> = workspaces
        .into_iter()
        .map(|(id, name)| {
            let figures = read(&state.indexes).get(&id).cloned().map(|index| {
                let index = read(&index);
                IndexFigures {
                    users: index.user_count(),
                    facts: index.event_count(),
                    bytes: index.heap_bytes(),
                }
            });
            (id, name, figures.unwrap_or_default())
        })
        .collect();
    state.metrics.render(&indexes, now())
}

/// A router that serves `/metrics` alone (for `serve --metrics-listen`); anything
/// else is 404.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { crate::error::ApiError::NotFound })
        .with_state(state)
}

/// Serves [`metrics_router`] on `listener` until the process ends.
pub async fn serve_metrics(
    state: AppState,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    axum::serve(listener, metrics_router(state)).await
}
