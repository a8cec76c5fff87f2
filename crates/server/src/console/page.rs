//! The console's page shell (head, header with the sign-out control, main), its
//! security headers, and the error page.

use super::session::Visitor;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use headcount_store::Permission;
use maud::{DOCTYPE, Markup, html};

/// The console's Content-Security-Policy: nothing from elsewhere, no inline script.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A whole page: `title`, the header (with the workspace and `Sign out` when signed
/// in) and `body`.
pub fn shell(title: &str, visitor: Option<&Visitor>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · headcount" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console" { "headcount" }
                    @if let Some(v) = visitor {
                        nav aria-label="Console" {
                            a href="/console" { "Segments" }
                            @if v.may(Permission::SegmentsCreate) {
                                a href="/console/segments/new" { "New segment" }
                            }
                        }
                        span.who {
                            "Workspace " strong { (v.workspace_name) }
                            " · key " code { (v.key_id) }
                        }
                        form.signout method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(v.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

/// An HTML answer with the console's headers: never cached, never framed, no
/// script or style from anywhere else.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// An error page: what went wrong, and the way back.
pub fn error(
    status: StatusCode,
    title: &str,
    message: &str,
    visitor: Option<&Visitor>,
) -> Response {
    let body = html! {
        h1 { (title) }
        p.error role="alert" { (message) }
        p { a href="/console" { "Back to the segments" } }
    };
    respond(status, shell(title, visitor, body))
}

/// A page for a failure of headcount's own (logged, never shown).
pub fn internal(cause: impl std::fmt::Display, visitor: Option<&Visitor>) -> Response {
    tracing::error!(%cause, "console: internal error");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "headcount could not answer this page; the cause is in the server's log.",
        visitor,
    )
}

/// A signed change with its sign: "+12", "−3", "0".
pub fn change(delta: i64) -> String {
    match delta {
        0 => "0".into(),
        d if d > 0 => format!("+{d}"),
        d => format!("\u{2212}{}", d.unsigned_abs()),
    }
}
