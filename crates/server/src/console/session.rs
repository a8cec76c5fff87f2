//! Console sessions: a random id in an `HttpOnly`, `SameSite=Strict` cookie, mapped on
//! the server to the id of the key that signed in (never its secret), with a CSRF
//! token for the session's forms. Every request looks the key up again, so a revoked
//! key's session stops working at once, and its permissions apply as in the API.

use super::page;
use crate::auth::Caller;
use crate::ratelimit::Bucket;
use crate::state::{AppState, read};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use headcount_store::Permission;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "hc_session";
/// The cookie of the sign-in form's CSRF token (before there is a session).
pub const SIGN_IN_COOKIE: &str = "hc_sign_in";
/// How long a session lasts after sign-in.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Most sessions held at once; the oldest goes first beyond.
pub const MAX_SESSIONS: usize = 10_000;

/// A random token: 32 bytes from the system's generator, as 64 hex digits.
pub fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares two tokens in time independent of where they differ.
pub fn tokens_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[derive(Debug, Clone)]
struct Session {
    key_id: String,
    csrf: String,
    started: Instant,
}

/// Every live session of one server, in memory: a restart signs everyone out.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session for key `key_id`: its id and CSRF token.
    pub fn start(&self, key_id: &str) -> Option<(String, String)> {
        let id = random_token()?;
        let csrf = random_token()?;
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.started.elapsed() < LIFETIME);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.started)
                .map(|(id, _)| id.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                key_id: key_id.to_string(),
                csrf: csrf.clone(),
                started: Instant::now(),
            },
        );
        Some((id, csrf))
    }

    /// The key id and CSRF token of a live session.
    fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(id) {
            Some(s) if s.started.elapsed() < LIFETIME => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Whether the request came through a TLS-terminating proxy (`X-Forwarded-Proto:
/// https`): then cookies are `Secure`. headcount itself serves plain HTTP.
pub fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value for the console's path; `None` as value clears the cookie.
pub fn set_cookie(name: &str, value: Option<&str>, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = match value {
        Some(v) => format!("{name}={v}; Path=/console; HttpOnly; SameSite=Strict{secure}"),
        None => format!("{name}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The signed-in person behind a console request.
#[derive(Debug, Clone)]
pub struct Visitor {
    /// The key's workspace, as the API's handlers see it.
    pub caller: Caller,
    /// The workspace's name.
    pub workspace_name: String,
    /// The key's public id.
    pub key_id: String,
    /// The key's label.
    pub key_name: String,
    /// What the key may do.
    pub permissions: Vec<Permission>,
    /// The session's CSRF token, carried by every form.
    pub csrf: String,
    /// The session id.
    pub session: String,
}

impl Visitor {
    /// Whether the key has a permission.
    pub fn may(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    /// A 403 page unless the key has `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), Response> {
        if self.may(permission) {
            return Ok(());
        }
        Err(page::error(
            StatusCode::FORBIDDEN,
            "Access denied",
            &format!("This API key lacks the permission {permission}."),
            Some(self),
        ))
    }

    /// A 403 page unless `sent` is the session's CSRF token.
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), Response> {
        match sent {
            Some(sent) if tokens_equal(sent, &self.csrf) => Ok(()),
            _ => Err(page::error(
                StatusCode::FORBIDDEN,
                "Form expired",
                "The form's CSRF token is missing or wrong. Reload the page and try again.",
                Some(self),
            )),
        }
    }
}

/// Why a request has no [`Visitor`].
pub enum Refusal {
    /// No session, or one that ended: sign in.
    SignedOut,
    /// Signed in, but refused (address not allowed, rate limit): this page.
    Page(Response),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::SignedOut => Redirect::to("/console").into_response(),
            Refusal::Page(page) => page,
        }
    }
}

/// The sessions of this router.
pub fn sessions(parts: &Parts) -> Arc<Sessions> {
    parts
        .extensions
        .get::<Arc<Sessions>>()
        .cloned()
        .unwrap_or_default()
}

/// The visitor of a request: its session's key, still live, from an allowed address,
/// within the workspace's export rate limit (each console request counts as one).
pub async fn visitor(state: &AppState, parts: &Parts) -> Result<Visitor, Refusal> {
    let sessions = sessions(parts);
    let id = cookie(&parts.headers, SESSION_COOKIE).ok_or(Refusal::SignedOut)?;
    let session = sessions.get(id).ok_or(Refusal::SignedOut)?;
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (visitor, limit, allowed) = {
        let catalog = read(&state.catalog);
        let key = catalog
            .key(&session.key_id)
            .filter(|k| k.revoked_at.is_none());
        let Some(key) = key else {
            sessions.end(id);
            return Err(Refusal::SignedOut);
        };
        let ws = catalog.workspace(key.workspace).ok_or(Refusal::SignedOut)?;
        let allowed = key.allow_ips.is_empty()
            || peer.is_some_and(|ip| key.allow_ips.iter().any(|net| net.contains(ip)));
        let visitor = Visitor {
            caller: Caller {
                workspace: key.workspace,
                tz: ws.tz.clone(),
            },
            workspace_name: ws.workspace.name.clone(),
            key_id: key.id.clone(),
            key_name: key.name.clone(),
            permissions: key.permissions.clone(),
            csrf: session.csrf.clone(),
            session: id.to_string(),
        };
        (visitor, ws.workspace.export_limit, allowed)
    };
    if !allowed {
        let address = peer.map_or("unknown".to_string(), |ip| ip.to_string());
        return Err(Refusal::Page(page::error(
            StatusCode::FORBIDDEN,
            "Access denied",
            &format!("The address {address} is not allowed to use this API key."),
            None,
        )));
    }
    let now = crate::state::now().as_second().max(0) as u64;
    let key = (visitor.caller.workspace, Bucket::Export);
    let window = match state.counter.count(key, limit, 3600, now, true).await {
        Ok(window) => window,
        Err(e) => {
            tracing::warn!(error = %e, "refusing a console page: the rate-limit counters are unreachable");
            let mut page = page::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
                "The rate-limit counters cannot be reached. Try again shortly.",
                Some(&visitor),
            );
            page.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(headcount_service::limits::UNAVAILABLE_RETRY_AFTER),
            );
            return Err(Refusal::Page(page));
        }
    };
    if window.exceeded {
        let mut page = page::error(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit reached",
            "This workspace has used its export requests for this hour. Try again later.",
            Some(&visitor),
        );
        let retry = window.reset.saturating_sub(now).max(1);
        page.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry));
        return Err(Refusal::Page(page));
    }
    Ok(visitor)
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Refusal> {
        visitor(state, parts).await
    }
}
