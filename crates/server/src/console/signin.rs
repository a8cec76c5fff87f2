//! Signing in with an API key, and out.

use super::form::FormData;
use super::page;
use super::session::{
    self, Refusal, SESSION_COOKIE, SIGN_IN_COOKIE, cookie, over_tls, set_cookie, tokens_equal,
};
use crate::extract::BodyBytes;
use crate::state::{AppState, read};
use axum::extract::{ConnectInfo, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use std::net::SocketAddr;

/// The sign-in page, with a fresh CSRF token in its form and in a cookie.
pub fn sign_in_form(headers: &HeaderMap, status: StatusCode, problem: Option<&str>) -> Response {
    let Some(token) = session::random_token() else {
        return page::internal("no random token for the sign-in form", None);
    };
    let body = html! {
        section.signin {
            h1 { "Sign in" }
            p { "Paste an API key of your workspace (made with " code { "headcount keys create" } "). "
                "What you can see and do here is what the key may do in the API." }
            @if let Some(problem) = problem {
                p.error #sign-in-error role="alert" { (problem) }
            }
            form method="post" action="/console/sign-in" {
                input type="hidden" name="csrf" value=(token);
                div.field {
                    label for="key" { "API key" }
                    input #key name="key" type="password" autocomplete="off" spellcheck="false"
                        required autofocus aria-describedby=[problem.map(|_| "sign-in-error")];
                }
                div.actions { button.primary type="submit" { "Sign in" } }
            }
        }
    };
    let mut response = page::respond(status, page::shell("Sign in", None, body));
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SIGN_IN_COOKIE, Some(&token), over_tls(headers)),
    );
    response
}

/// `POST /console/sign-in`: checks the form's token and the key, then starts a session.
pub async fn sign_in(
    State(state): State<AppState>,
    parts: Parts,
    BodyBytes(body): BodyBytes,
) -> Response {
    let form = FormData::parse(&body);
    let expected = cookie(&parts.headers, SIGN_IN_COOKIE);
    match (expected, form.get("csrf")) {
        (Some(expected), Some(sent)) if tokens_equal(expected, sent) => {}
        _ => {
            return page::error(
                StatusCode::FORBIDDEN,
                "Form expired",
                "The sign-in form's CSRF token is missing or wrong. Open the sign-in page again.",
                None,
            );
        }
    }
    let secret = form.text("key").trim();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let found = {
        let catalog = read(&state.catalog);
        catalog.authenticate(secret).map(|key| {
            let allowed = key.allow_ips.is_empty()
                || peer.is_some_and(|ip| key.allow_ips.iter().any(|n| n.contains(ip)));
            (key.id.clone(), allowed)
        })
    };
    let Some((key_id, allowed)) = found else {
        return sign_in_form(
            &parts.headers,
            StatusCode::UNAUTHORIZED,
            Some("That API key is unknown or revoked."),
        );
    };
    if !allowed {
        return sign_in_form(
            &parts.headers,
            StatusCode::FORBIDDEN,
            Some("Your address is not allowed to use this API key."),
        );
    }
    let sessions = session::sessions(&parts);
    let Some((id, _)) = sessions.start(&key_id) else {
        return page::internal("no random token for a session", None);
    };
    let tls = over_tls(&parts.headers);
    let mut response = Redirect::to("/console").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, Some(&id), tls),
    );
    headers.append(header::SET_COOKIE, set_cookie(SIGN_IN_COOKIE, None, tls));
    response
}

/// `POST /console/sign-out`: ends the session and clears its cookie.
pub async fn sign_out(
    State(state): State<AppState>,
    parts: Parts,
    BodyBytes(body): BodyBytes,
) -> Response {
    let visitor = match session::visitor(&state, &parts).await {
        Ok(v) => v,
        Err(Refusal::SignedOut) => return Redirect::to("/console").into_response(),
        Err(Refusal::Page(page)) => return page,
    };
    if let Err(refused) = visitor.check_csrf(FormData::parse(&body).get("csrf")) {
        return refused;
    }
    session::sessions(&parts).end(&visitor.session);
    let mut response = Redirect::to("/console").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, None, over_tls(&parts.headers)),
    );
    response
}
