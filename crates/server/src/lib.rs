//! headcount's Braze-compatible HTTP API.
//!
//! [`app`] builds the whole router (used by `headcount serve` and by the tests
//! alike); [`serve`] runs it with the daily schedule until SIGINT or SIGTERM. Every
//! failure is an [`error::ApiError`], rendered once into Braze's JSON shape.

pub mod auth;
pub mod catalog;
pub mod console;
pub mod error;
pub mod extract;
pub mod ingest;
pub mod jobs;
pub mod ratelimit;
pub mod routes;
pub mod sizes;
pub mod state;
pub mod writer;

pub use state::{AppState, Config, Shared};

use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use error::ApiError;
use serde_json::{Value, json};
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// Largest request body accepted (413 beyond).
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// The whole API as a router.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .merge(routes::segments::router())
        .merge(routes::users::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::guard));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(api)
        .merge(console::router())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

async fn healthz() -> Json<Value> {
    Json(json!({ "message": "success", "status": "ready" }))
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

/// Serves the API on `listener`, with the daily schedule, until `shutdown` completes;
/// requests in flight finish first.
pub async fn serve_until(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let schedule = tokio::spawn(jobs::schedule(state.clone()));
    let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await;
    schedule.abort();
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
