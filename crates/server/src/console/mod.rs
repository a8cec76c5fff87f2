//! The console: a few server-rendered pages at `/console`, on the API's port, where a
//! person signs in with an API key, sees every segment's size and trend, opens one for
//! its 100-day chart, and creates, edits or archives segments.
//!
//! It reuses the API's own code paths (the catalog, `data_series`'s series, create,
//! update, archive and preview) and follows the key's permissions exactly as the API
//! does. One module per page; `session` holds sign-in, cookies and CSRF; `chart` the
//! SVG; `assets` the stylesheet and the small script (copy buttons), built in.

// A refusal here is a whole page (a `Response`), built once per request on its way
// out: boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

pub mod chart;
pub mod edit;
pub mod form;
pub mod jsonview;
pub mod list;
pub mod page;
pub mod segment;
pub mod session;
pub mod signin;

use crate::state::AppState;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use session::Sessions;
use std::sync::Arc;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The console's routes, with their own session store.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(list::home))
        .route("/console/sign-in", post(signin::sign_in))
        .route("/console/sign-out", post(signin::sign_out))
        .route(
            "/console/segments/new",
            get(edit::new_form).post(edit::create),
        )
        .route("/console/segments/{id}", get(segment::show))
        .route(
            "/console/segments/{id}/edit",
            get(edit::edit_form).post(edit::update),
        )
        .route(
            "/console/segments/{id}/archive",
            get(edit::confirm_archive).post(edit::archive),
        )
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .layer(Extension(Arc::new(Sessions::default())))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}
