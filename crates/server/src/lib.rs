//! headcount's Braze-compatible HTTP API.
//!
//! [`app`] builds the whole router (used by `headcount serve` and by the tests
//! alike); [`serve`] runs it with the daily schedule until SIGINT or SIGTERM. Every
//! failure is an [`error::ApiError`], rendered once into Braze's JSON shape.

pub mod activity;
pub mod auth;
pub mod catalog;
pub mod connections;
pub mod console;
pub mod error;
pub mod extract;
pub mod http_errors;
pub mod idempotency;
pub mod ingest;
pub mod jobs;
pub mod json;
pub mod purge;
pub mod ratelimit;
pub mod routes;
pub mod sizes;
pub mod state;
pub mod upkeep;
pub mod warnings;
pub mod writer;

pub use state::{AppState, Config, Shared};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use error::ApiError;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Largest request body accepted (413 beyond).
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// The whole API as a router.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .merge(routes::segments::router())
        .merge(
            routes::users::router().route_layer(middleware::from_fn_with_state(
                state.clone(),
                idempotency::layer,
            )),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::guard));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(api)
        .merge(console::router())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(single_headers))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

async fn healthz() -> Json<Value> {
    Json(json!({ "message": "success", "status": "ready" }))
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

/// One log line per request: method, path, status, latency. Never headers (the key).
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        %method,
        %path,
        status = response.status().as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// Serves the API on `listener`, with the daily schedule, until SIGINT or SIGTERM.
pub async fn serve(state: AppState, listener: TcpListener) -> std::io::Result<()> {
    serve_until(state, listener, shutdown_signal()).await
}

/// Serves the API on `listener`, with the daily schedule, the catalog watch and the
/// saving of rate-limit windows, until `shutdown` completes; requests in flight finish
/// first, then the rate-limit windows are saved. Connections are limited as `Config`
/// says (see [`connections`]).
pub async fn serve_until(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let schedule = tokio::spawn(jobs::schedule(state.clone()));
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
    catalog.abort();
    windows.abort();
    // Every request has finished: the last counts of the windows are saved.
    upkeep::save_windows(&state).await;
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
