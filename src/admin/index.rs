//! `/`: the dashboard. A static page, its stylesheet and a small script, all written here and served by the
//! admin endpoint itself (no CDN, no build step); the script draws what `/debug/traffic` and `/debug/config`
//! answer and asks again every second, so the page updates without a reload. The same guard as every other
//! route decides who may load them.
//!
//! The page shows names from proxies and spec files; the script only ever sets text, and the content security
//! policy allows nothing but this origin's script and style, so a name like `<script>` stays a name.

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub async fn page() -> impl IntoResponse {
    asset("text/html; charset=utf-8", PAGE)
}

pub async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            // A new build serves a new script: never run an old one against a new endpoint.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
