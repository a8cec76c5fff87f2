//! headcount's Braze-compatible HTTP API.
//!
//! [`app`] builds the whole router (used by `headcount serve` and by the tests
//! alike); [`serve`] loads the indexes in the background and runs it with the daily
//! schedule until SIGINT or SIGTERM. Until the indexes are loaded, `/healthz` answers
//! 200, `/readyz` 503 with the progress, and the API 503 with `Retry-After`. Every
//! failure is an [`error::ApiError`], rendered once into Braze's JSON shape.

pub mod activity;
pub mod auth;
pub mod connections;
pub mod console;
pub mod error;
pub mod extract;
pub mod http_errors;
pub mod idempotency;
pub mod observe;
pub mod openapi;
pub mod routes;

// The service's modules, under their old paths: the HTTP code and its tests name them
// as `crate::catalog`, `headcount_server::state` and so on.
pub use headcount_service::{AppState, Config, Shared};
pub use headcount_service::{
    catalog, checkpoints, ingest, jobs, json, loading, metrics, purge, ratelimit, sizes, state,
    upkeep, warnings, writer,
};

use axum::extract::State;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::Method;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use error::ApiError;
use serde_json::json;
use tokio::net::TcpListener;

/// Largest request body accepted (413 beyond).
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Seconds a client is asked to wait (`Retry-After`) while the indexes load.
pub const LOADING_RETRY_AFTER: u64 = 2;

/// The whole API as a router.
pub fn app(state: AppState) -> Router {
    let api = routes::mount(routes::segments::endpoints())
        .merge(routes::mount(routes::users::endpoints()).route_layer(
            middleware::from_fn_with_state(state.clone(), idempotency::layer),
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::guard))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_ready));
    let mut router = routes::mount(public_endpoints());
    // No key: scrapers send none (an operator who wants it private serves it on
    // another address with `serve --metrics-listen`; see docs/operations.md).
    if state.config.metrics_on_api {
        router = router.route("/metrics", axum::routing::get(observe::metrics));
    }
    router
        .merge(api)
        .merge(
            console::router()
                .route_layer(middleware::from_fn_with_state(state.clone(), require_ready)),
        )
        .route_layer(middleware::from_fn(observe::mark_route))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(single_headers))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .with_state(state)
}

/// The endpoints that need no key.
fn public_endpoints() -> Vec<routes::Endpoint> {
    vec![
        routes::get("/healthz", healthz),
        routes::get("/readyz", readyz),
        routes::get("/openapi.json", openapi::openapi_json),
    ]
}

/// Every endpoint of the API (the console's HTML pages aside), as mounted by [`app`]:
/// what `/openapi.json` must describe.
pub fn endpoints() -> Vec<(Method, &'static str)> {
    [
        public_endpoints(),
        routes::segments::endpoints(),
        routes::users::endpoints(),
    ]
    .iter()
    .flat_map(|e| routes::listed(e))
    .collect()
}

/// `{"message":"success","status":"up"}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `"success"`.
    pub message: String,
    /// Always `"up"`.
    pub status: String,
}

/// The progress of loading, in the 503 of `/readyz`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct LoadingProgress {
    /// `"loading"`, or `"loading failed: see the server's log"`.
    pub message: String,
    /// Workspaces to load.
    pub workspaces: Option<u64>,
    /// Workspaces loaded so far.
    pub workspaces_loaded: Option<u64>,
    /// Workspaces loaded from a checkpoint.
    pub from_checkpoints: Option<u64>,
    /// Facts applied from the store so far.
    pub facts_replayed: Option<u64>,
    /// The node's name (`serve --node-name`), when it has one.
    pub node: Option<String>,
}

/// 200 as soon as the process serves, loading or not.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "meta",
    description = "A liveness check: 200 as soon as the process listens, loading or not. No key.",
    responses((status = 200, description = "The process serves.", body = Health))
)]
async fn healthz() -> Json<Health> {
    Json(Health {
        message: "success".into(),
        status: "up".into(),
    })
}

/// 200 once every index is loaded; 503 with the progress until then.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "meta",
    description = "A readiness check: 200 once every workspace's index is loaded. No key.",
    responses(
        (status = 200, description = "Every index is loaded: `{\"message\":\"ready\",\"node\":\"…\"}` (`node` when the node has a name).", body = openapi::Message),
        (status = 503, description = "Still loading (or loading failed), with the progress.", body = LoadingProgress,
            headers(("Retry-After" = String, description = "Seconds to wait before retrying."))),
    )
)]
async fn readyz(State(state): State<AppState>) -> Response {
    let (message, mut body) = match state.loading.phase() {
        loading::Phase::Ready => {
            let mut body = json!({ "message": "ready" });
            name_node(&mut body, &state.config.node_name);
            return Json(body).into_response();
        }
        loading::Phase::Loading => ("loading", state.loading.progress()),
        loading::Phase::Failed(_) => ("loading failed: see the server's log", json!({})),
    };
    if let Some(fields) = body.as_object_mut() {
        fields.insert("message".into(), json!(message));
    }
    name_node(&mut body, &state.config.node_name);
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(LOADING_RETRY_AFTER));
    response
}

/// Adds the node's name to a `/readyz` body (`serve` always has one; a state built
/// without a name, as tests do, answers without it).
fn name_node(body: &mut serde_json::Value, node: &str) {
    if let (Some(fields), false) = (body.as_object_mut(), node.is_empty()) {
        fields.insert("node".into(), json!(node));
    }
}

/// Every API request waits for the indexes: 503 with `Retry-After` until they are
/// loaded.
async fn require_ready(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !state.loading.is_ready() {
        return ApiError::Loading {
            retry_after: LOADING_RETRY_AFTER,
        }
        .into_response();
    }
    next.run(request).await
}

/// Refuses a request with two `Authorization` headers, with a 400 naming it: which
/// key counts would be a guess. (Repeated `Content-Length`s never get here: hyper
/// refuses different ones and reads equal ones as one, as RFC 9110 allows.)
async fn single_headers(request: Request, next: Next) -> Response {
    if request
        .headers()
        .get_all(header::AUTHORIZATION)
        .iter()
        .nth(1)
        .is_some()
    {
        return ApiError::bad(
            "the request has the header Authorization more than once; send it once",
        )
        .into_response();
    }
    next.run(request).await
}

/// Loads the indexes in the background ([`Shared::start_loading`]) and serves the
/// API on `listener` meanwhile, with the daily schedule and checkpoints, until SIGINT
/// or SIGTERM, or until loading fails (an error then).
pub async fn serve(state: AppState, listener: TcpListener) -> std::io::Result<()> {
    Shared::start_loading(&state);
    let watched = state.clone();
    let stop = async move {
        tokio::select! {
            () = shutdown_signal() => {},
            () = watched.loading.wait_failed() => {},
        }
    };
    serve_until(state.clone(), listener, stop).await?;
    match state.loading.phase() {
        loading::Phase::Failed(e) => Err(std::io::Error::other(format!(
            "loading the indexes failed: {e}"
        ))),
        _ => Ok(()),
    }
}

/// Serves the API on `listener`, with the daily schedule, the checkpoint schedule (both
/// start once the state is ready), the catalog watch and the saving of rate-limit
/// windows, until `shutdown` completes; requests in flight finish first, then the
/// rate-limit windows are saved and every index changed since its last checkpoint is
/// checkpointed. Connections are limited as `Config` says (see [`connections`]).
/// Loading is the caller's: [`Shared::load`] before, or [`Shared::start_loading`].
pub async fn serve_until(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let schedule = tokio::spawn(jobs::schedule(state.clone()));
    let checkpointing = tokio::spawn(checkpoints::schedule(state.clone()));
    let catalog = tokio::spawn(upkeep::watch_catalog(state.clone()));
    let windows = tokio::spawn(upkeep::save_windows_every(state.clone()));
    let limits = connections::Limits {
        timeouts: activity::Timeouts {
            header_read: state.config.header_read_timeout,
            idle: state.config.idle_timeout,
        },
        max_connections: state.config.max_connections,
    };
    let result = connections::serve(listener, app(state.clone()), limits, shutdown).await;
    schedule.abort();
    checkpointing.abort();
    catalog.abort();
    windows.abort();
    // Every request has finished: the last counts of the windows are saved.
    upkeep::save_windows(&state).await;
    if state.checkpoints.is_some() && state.loading.is_ready() {
        tracing::info!("writing checkpoints before exit");
        let _ =
            tokio::task::spawn_blocking(move || checkpoints::checkpoint_due(&state, true)).await;
    }
    result
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
