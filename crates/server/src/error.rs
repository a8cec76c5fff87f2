//! The API's one error type and the one table that maps it to Braze-style responses.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use headcount_service::ServiceError;
use headcount_service::counting::{RETRY_AFTER_SECONDS, SizeError};
use headcount_service::writer::WriteError;
use headcount_store::StoreError;
use serde_json::json;

/// Message of a 400 for an unknown segment, or one of another workspace: the same
/// text, so that an id's existence elsewhere is never revealed.
pub const UNKNOWN_SEGMENT: &str = "segment_id must be a string of the Segment api identifier";

/// Everything a request can fail with. Internal causes are logged, never shown.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: a bad or missing parameter, or an unknown id; the message names the field.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no key, or a key that is unknown or revoked (the key as it was sent).
    #[error("invalid API key")]
    InvalidKey(String),
    /// 403: the key lacks the permission, or the client address is not allowed.
    #[error("access denied: {0}")]
    Forbidden(String),
    /// 404: unknown path.
    #[error("not found")]
    NotFound,
    /// 405: known path, wrong method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: a request with the same `Idempotency-Key` is still being processed.
    #[error("{0}")]
    Conflict(String),
    /// 422: an `Idempotency-Key` reused with a different request.
    #[error("{0}")]
    Unprocessable(String),
    /// 413: body over the limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 429: the rate limit is spent; retry after this many seconds.
    #[error("rate limited")]
    RateLimited {
        /// Seconds until the window resets.
        retry_after: u64,
    },
    /// 503: the server is still loading its data; retry after this many seconds.
    #[error("loading")]
    Loading {
        /// Seconds to wait before retrying.
        retry_after: u64,
    },
    /// 503: the shared rate-limit counters (Redis) cannot be reached; retry after
    /// this many seconds.
    #[error("rate-limit counters unavailable")]
    CountersUnavailable {
        /// Seconds to wait before retrying.
        retry_after: u64,
    },
    /// 503: the database cannot be reached (PostgreSQL down or restarting); retry
    /// after this many seconds.
    #[error("store unavailable: {cause}")]
    StoreUnavailable {
        /// Seconds to wait before retrying.
        retry_after: u64,
        /// What failed, logged.
        cause: String,
    },
    /// 503: the workspace's engine (ClickHouse) is unavailable: nothing was applied;
    /// retry after this many seconds. The cause is logged.
    #[error("engine unavailable: {cause}")]
    EngineUnavailable {
        /// Seconds to wait before retrying.
        retry_after: u64,
        /// What failed (logged, not shown).
        cause: String,
    },
    /// 500: a failure of ours, logged with its cause.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Seconds a client is asked to wait while the database cannot be reached.
pub const STORE_RETRY_AFTER: u64 = 1;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => ApiError::StoreUnavailable {
                retry_after: STORE_RETRY_AFTER,
                cause,
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<SizeError> for ApiError {
    fn from(e: SizeError) -> Self {
        match e {
            SizeError::Store(e) => e.into(),
            SizeError::Engine(cause) => ApiError::EngineUnavailable {
                retry_after: RETRY_AFTER_SECONDS,
                cause,
            },
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Store(store) => store.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Unavailable(cause) => ApiError::StoreUnavailable {
                retry_after: STORE_RETRY_AFTER,
                cause,
            },
            WriteError::Failed(cause) => ApiError::Internal(cause),
        }
    }
}

impl ApiError {
    /// A 400 with this message.
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest(message.into())
    }

    fn status_and_body(&self) -> (StatusCode, serde_json::Value) {
        match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, json!({ "message": m })),
            ApiError::InvalidKey(key) => (
                StatusCode::UNAUTHORIZED,
                json!({ "message": format!("Invalid API key: {key}") }),
            ),
            ApiError::Forbidden(reason) => (
                StatusCode::FORBIDDEN,
                json!({ "message": "Access Denied", "reason": reason }),
            ),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                json!({ "message": "Not Found: no such endpoint" }),
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                json!({ "message": "Method Not Allowed for this endpoint" }),
            ),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, json!({ "message": m })),
            ApiError::Unprocessable(m) => {
                (StatusCode::UNPROCESSABLE_ENTITY, json!({ "message": m }))
            }
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "message": "Payload Too Large: the body is over 4 MB" }),
            ),
            ApiError::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                json!({ "message": "API Rate Limit Exceeded" }),
            ),
            ApiError::Loading { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "message": "Service Unavailable: the server is loading its data, retry shortly" }),
            ),
            ApiError::CountersUnavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "message": "Service Unavailable: the rate-limit counters cannot be reached, retry shortly" }),
            ),
            ApiError::StoreUnavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "message": "Service Unavailable: the database cannot be reached, retry shortly" }),
            ),
            ApiError::EngineUnavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "message": "Service Unavailable: the workspace's ClickHouse cannot be reached or refused the request; nothing was applied, retry shortly" }),
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "message": "Internal Server Error" }),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
        }
        if let ApiError::StoreUnavailable { cause, .. } = &self {
            tracing::warn!(%cause, "the database is unavailable");
        }
        if let ApiError::EngineUnavailable { cause, .. } = &self {
            tracing::warn!(%cause, "ClickHouse unavailable");
        }
        let (status, body) = self.status_and_body();
        let mut response = (status, Json(body)).into_response();
        match self {
            ApiError::RateLimited { retry_after }
            | ApiError::Loading { retry_after }
            | ApiError::CountersUnavailable { retry_after }
            | ApiError::StoreUnavailable { retry_after, .. }
            | ApiError::EngineUnavailable { retry_after, .. } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            // The rest of the body is never read: the connection cannot carry another
            // request, and the client must know not to reuse it.
            ApiError::PayloadTooLarge => {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
