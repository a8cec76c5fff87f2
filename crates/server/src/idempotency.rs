//! `Idempotency-Key` on `/users/track` and `/users/delete`, as the IETF httpapi draft
//! "The Idempotency-Key HTTP Header Field" describes: the first answer to a key is
//! remembered durably for 24 hours per workspace, and a repeat gets it back instead of
//! being applied again.
//!
//! One middleware, after authentication and the rate limit (a repeat is counted), in
//! front of the handlers:
//!
//! - no header: the request goes on untouched;
//! - a bad header: 400 naming `Idempotency-Key`;
//! - the key is being processed by an earlier request: 409;
//! - a remembered answer to the same endpoint and body (a SHA-256 fingerprint): that
//!   answer, status and body, with `Idempotent-Replayed: true`; to another: 422;
//! - otherwise the handler runs, and its answer, when 2xx or 4xx, is remembered before
//!   it is sent. `/users/track` commits it in the same transaction as its facts (see
//!   [`Remember`]); others (`/users/delete`) right after the handler, in a transaction of
//!   its own. A 5xx is not remembered: nothing was applied, and the client may retry.
//!
//! The handler runs in a task of its own, so a client that hangs up does not stop it
//! half-way: its answer is still remembered, and the key stays claimed until then.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::BodyBytes;
use crate::state::{AppState, now};
use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use headcount_model::{Timestamp, WorkspaceId};
use headcount_service::idempotency::InFlight;
use headcount_store::{IDEMPOTENCY_WINDOW_MICROS, IdempotencyRecord, digest};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The response header set on a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";
/// The longest key accepted, in characters.
pub const MAX_KEY_LEN: usize = 255;

/// Put in a request's extensions when it carries a new `Idempotency-Key`: a handler
/// that commits facts can commit its answer in the same transaction
/// ([`Remember::record`], then [`Remember::mark_stored`]); otherwise the middleware
/// remembers it after the handler.
#[derive(Debug, Clone)]
pub struct Remember {
    workspace: WorkspaceId,
    key: String,
    fingerprint: [u8; 32],
    stored: Arc<AtomicBool>,
}

impl Remember {
    /// The record of an answer to this request.
    pub fn record(&self, status: StatusCode, body: Vec<u8>) -> IdempotencyRecord {
        IdempotencyRecord {
            workspace: self.workspace,
            key: self.key.clone(),
            fingerprint: self.fingerprint,
            status: status.as_u16(),
            body,
            created_at: now(),
        }
    }

    /// Says that the answer's record is durable (committed by the handler).
    pub fn mark_stored(&self) {
        self.stored.store(true, Ordering::Release);
    }

    fn is_stored(&self) -> bool {
        self.stored.load(Ordering::Acquire)
    }
}

/// Reads the header: absent (`Ok(None)`), a key, or why it is refused. The draft makes
/// it a Structured Field String (`"…"`); a bare value is accepted too.
pub fn parse_key(headers: &HeaderMap) -> Result<Option<String>, String> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("Idempotency-Key must be given once".into());
    }
    let bytes = value.as_bytes();
    let printable = |b: &u8| (0x20..=0x7e).contains(b);
    if !bytes.iter().all(printable) {
        return Err("Idempotency-Key must be printable ASCII".into());
    }
    // Printable ASCII: valid UTF-8.
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_matches(' ');
    let key = match text.strip_prefix('"') {
        Some(rest) => unquote(rest)?,
        None => text.to_string(),
    };
    if key.is_empty() {
        return Err("Idempotency-Key must not be empty".into());
    }
    if key.len() > MAX_KEY_LEN {
        return Err(format!(
            "Idempotency-Key must be at most {MAX_KEY_LEN} characters, not {}",
            key.len()
        ));
    }
    Ok(Some(key))
}

/// The rest of a Structured Field String after its opening quote.
fn unquote(rest: &str) -> Result<String, String> {
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('"' | '\\')) => out.push(escaped),
                _ => return Err("Idempotency-Key has a bad escape (only \\\" and \\\\)".into()),
            },
            '"' if chars.as_str().is_empty() => return Ok(out),
            '"' => return Err("Idempotency-Key has characters after its closing quote".into()),
            c => out.push(c),
        }
    }
    Err("Idempotency-Key lacks its closing quote".into())
}

/// SHA-256 of the endpoint and the request body: what a repeat must match.
pub fn fingerprint(path: &str, body: &[u8]) -> [u8; 32] {
    digest::sha256(&[path.as_bytes(), b"\n", body])
}

/// The middleware (see the module's documentation).
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let key = match parse_key(request.headers()) {
        Ok(Some(key)) => key,
        Ok(None) => return next.run(request).await,
        Err(message) => return ApiError::BadRequest(message).into_response(),
    };
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        // Not authenticated: nothing to scope the key to (the guard answers first).
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    // Read under the same body limit as the handlers (its setting is an extension).
    let mut limited = Request::new(body);
    *limited.extensions_mut() = parts.extensions.clone();
    let bytes = match BodyBytes::from_request(limited, &()).await {
        Ok(BodyBytes(bytes)) => bytes,
        Err(e) => return e.into_response(),
    };
    let remember = Remember {
        workspace: caller.workspace,
        fingerprint: fingerprint(parts.uri.path(), &bytes),
        key,
        stored: Arc::new(AtomicBool::new(false)),
    };
    let Some(claim) = InFlight::claim(&state, caller.workspace, &remember.key) else {
        return ApiError::Conflict(
            "a request with this Idempotency-Key is still being processed; retry later".into(),
        )
        .into_response();
    };
    let request = Request::from_parts(parts, Body::from(bytes));
    // A task of its own: a client hanging up does not stop it between applying and
    // remembering.
    let task = tokio::spawn(async move {
        let answer = process(&state, &remember, request, next).await;
        drop(claim);
        answer
    });
    match task.await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => e.into_response(),
        Err(e) => ApiError::Internal(format!("an idempotent request failed: {e}")).into_response(),
    }
}

async fn process(
    state: &AppState,
    remember: &Remember,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let at = now();
    let since =
        Timestamp::from_microsecond(at.as_microsecond() - IDEMPOTENCY_WINDOW_MICROS).unwrap_or(at);
    let purge = state.idempotency.purge_due(at);
    let store = state.store.clone();
    let (workspace, key) = (remember.workspace, remember.key.clone());
    let found = tokio::task::spawn_blocking(move || {
        if purge && let Err(e) = store.purge_idempotency_records(since) {
            tracing::warn!(error = %e, "cannot purge expired idempotency keys");
        }
        store.idempotency_record(workspace, &key, since)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    if let Some(first) = found {
        if first.fingerprint != remember.fingerprint {
            return Err(ApiError::Unprocessable(
                "this Idempotency-Key was already used in the last 24 hours with another \
                 request (a different body or endpoint); use a new key for a new request"
                    .into(),
            ));
        }
        return Ok(replay(first));
    }
    request.extensions_mut().insert(remember.clone());
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_success() || status.is_client_error()) || remember.is_stored() {
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::Internal(format!("reading an answer to remember: {e}")))?;
    let record = remember.record(status, bytes.to_vec());
    let store = state.store.clone();
    let stored = tokio::task::spawn_blocking(move || store.put_idempotency_record(&record)).await;
    match stored {
        Ok(Ok(())) => {}
        // The answer is true; only its memory failed: a repeat is applied again.
        Ok(Err(e)) => tracing::error!(error = %e, "cannot remember an idempotent answer"),
        Err(e) => tracing::error!(error = %e, "cannot remember an idempotent answer"),
    }
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// The remembered answer, as it was first sent.
fn replay(first: IdempotencyRecord) -> Response {
    let status = StatusCode::from_u16(first.status).unwrap_or(StatusCode::OK);
    let mut response = (status, first.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(value: &[u8]) -> Result<Option<String>, String> {
        let mut headers = HeaderMap::new();
        headers.insert(
            HEADER,
            HeaderValue::from_bytes(value).expect("a header value"),
        );
        parse_key(&headers)
    }

    #[test]
    fn keys_are_read_quoted_or_bare_and_bad_ones_say_why() {
        assert_eq!(parse_key(&HeaderMap::new()), Ok(None));
        assert_eq!(key(b"abc-123"), Ok(Some("abc-123".into())));
        assert_eq!(key(br#""8e03978e-40d5""#), Ok(Some("8e03978e-40d5".into())));
        assert_eq!(key(br#""a\"b\\c""#), Ok(Some(r#"a"b\c"#.into())));
        assert_eq!(
            key(b"a key with spaces"),
            Ok(Some("a key with spaces".into()))
        );
        for (bad, why) in [
            (&b""[..], "must not be empty"),
            (b"\"\"", "must not be empty"),
            (b"\"open", "closing quote"),
            (b"\"a\"b", "after its closing quote"),
            (br#""a\n""#, "bad escape"),
            (b"caf\xc3\xa9", "printable ASCII"),
            (b"tab\there", "printable ASCII"),
        ] {
            let got = key(bad).expect_err("refused");
            assert!(
                got.contains("Idempotency-Key") && got.contains(why),
                "{bad:?}: {got}"
            );
        }
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert!(key(long.as_bytes()).is_err());
        assert!(key("k".repeat(MAX_KEY_LEN).as_bytes()).is_ok());
        let mut twice = HeaderMap::new();
        twice.append(HEADER, HeaderValue::from_static("a"));
        twice.append(HEADER, HeaderValue::from_static("b"));
        assert!(parse_key(&twice).is_err_and(|e| e.contains("once")));
    }

    #[test]
    fn the_fingerprint_covers_the_endpoint_and_the_body() {
        let track = fingerprint("/users/track", b"{}");
        assert_eq!(track, fingerprint("/users/track", b"{}"));
        assert_ne!(track, fingerprint("/users/delete", b"{}"));
        assert_ne!(track, fingerprint("/users/track", b"{ }"));
    }
}
