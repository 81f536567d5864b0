//! The web dashboard: three static files built into the binary (plain
//! HTML, CSS and JavaScript: nothing to build, no Node.js), talking to the
//! API with the token the user pastes. Served with a strict Content
//! Security Policy: only this server's own scripts, styles and API.

use std::sync::Arc;

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use shale_core::Pool;

const INDEX: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const APP_CSS: &str = include_str!("ui/app.css");

fn asset(kind: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, kind),
            (
                CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                 img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (X_FRAME_OPTIONS, "DENY"),
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// `/` and `/ui/…`.
pub fn routes() -> Router<Arc<Pool>> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        // Browsers ask for it; there is none.
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
}
