//! The endpoints, one module per resource; each module's `endpoints()` is the one table
//! of its methods, paths and handlers, from which its `router()` is mounted and
//! [`crate::endpoints`] lists what the API serves (checked against `/openapi.json`).

pub mod preview;
pub mod segments;
pub mod users;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{self, MethodRouter};

/// Whether `ws`'s engine is ClickHouse, from an async handler: learnt on a blocking
/// thread the first time, since the store blocks (the PostgreSQL store even panics
/// on an async task: a request's connection closed without an answer).
pub(crate) async fn is_clickhouse(
    state: &AppState,
    ws: headcount_model::WorkspaceId,
) -> ApiResult<bool> {
    if let Some(is) = state.engines.known_clickhouse(ws) {
        return Ok(is);
    }
    let shared = state.clone();
    Ok(
        tokio::task::spawn_blocking(move || {
            shared.engines.is_clickhouse(shared.store.as_ref(), ws)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??,
    )
}

/// One endpoint: a method and a path, and the handler mounted there.
pub struct Endpoint {
    /// The HTTP method.
    pub method: Method,
    /// The path, as `/segments/list`.
    pub path: &'static str,
    handler: MethodRouter<AppState>,
}

/// A `GET` [`Endpoint`] (which answers `HEAD` too).
pub fn get<H, T>(path: &'static str, handler: H) -> Endpoint
where
    H: Handler<T, AppState>,
    T: 'static,
{
    Endpoint {
        method: Method::GET,
        path,
        handler: routing::get(handler),
    }
}

/// A `POST` [`Endpoint`].
pub fn post<H, T>(path: &'static str, handler: H) -> Endpoint
where
    H: Handler<T, AppState>,
    T: 'static,
{
    Endpoint {
        method: Method::POST,
        path,
        handler: routing::post(handler),
    }
}

/// A router of `endpoints`.
pub fn mount(endpoints: Vec<Endpoint>) -> Router<AppState> {
    endpoints
        .into_iter()
        .fold(Router::new(), |router, e| router.route(e.path, e.handler))
}

/// The methods and paths of `endpoints`.
pub fn listed(endpoints: &[Endpoint]) -> Vec<(Method, &'static str)> {
    endpoints
        .iter()
        .map(|e| (e.method.clone(), e.path))
        .collect()
}
