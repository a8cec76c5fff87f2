//! The accept loop: at most `max_connections` connections at a time, each served by
//! hyper (HTTP/1.1) and closed when its client is idle or slow past the timeouts.
//!
//! At the cap, no further connection is accepted until one closes: new clients wait in
//! the listen backlog (and are served in turn), so that the open files stay bounded
//! and every idle connection makes room after the idle timeout at most.

use crate::activity::{Activity, Timeouts, Tracked, TrackedBody};
use crate::http_errors::JsonErrors;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// Limits of the connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The timeouts of each connection.
    pub timeouts: Timeouts,
    /// Most connections open at once.
    pub max_connections: usize,
}

/// Largest connection cap (the semaphore counts in `u32`).
const MAX_CAP: usize = 1 << 24;

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting,
/// lets the requests in flight finish and closes every connection.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let cap = limits.max_connections.clamp(1, MAX_CAP);
    let permits = Arc::new(Semaphore::new(cap));
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most often: wait for some to be released.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let router = router.clone();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            connection(stream, peer, router, limits.timeouts, stopping).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit until it is closed.
    let _all = permits.acquire_many(cap as u32).await;
    Ok(())
}

/// Serves one connection until it ends, times out, or has finished its request after
/// the shutdown began.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    timeouts: Timeouts,
    mut stopping: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::default());
    let io = TokioIo::new(JsonErrors::new(Tracked::new(stream, activity.clone())));
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let router = router.clone();
        let activity = requests.clone();
        async move {
            let _handling = activity.request();
            let (mut parts, body) = request.into_parts();
            parts.extensions.insert(ConnectInfo(peer));
            let body = Body::new(TrackedBody::new(body, activity.clone()));
            router
                .oneshot(Request::from_parts(parts, body))
                .await
                .map_err(|never: Infallible| never)
        }
    });
    let mut conn = pin!(hyper::server::conn::http1::Builder::new().serve_connection(io, service));
    let mut shutting_down = *stopping.borrow();
    if shutting_down {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let deadline = activity.deadline(&timeouts);
        // While a request is handled there is no deadline: look again after a while.
        let wake = deadline.unwrap_or_else(|| tokio::time::Instant::now() + timeouts.idle);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            changed = stopping.changed(), if !shutting_down => {
                shutting_down = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep_until(wake) => {
                if let Some(deadline) = activity.deadline(&timeouts)
                    && deadline <= tokio::time::Instant::now()
                {
                    tracing::debug!(%peer, "connection timed out");
                    return;
                }
            }
        }
    }
}
