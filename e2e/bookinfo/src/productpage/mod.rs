//! productpage (Python/Flask): the HTML front end and its JSON API.

mod calls;
mod html;
mod metrics;
mod session;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use crate::{propagation, AppConfig, Error, Upstreams};
use calls::{Calls, Outcome};

struct Productpage {
    calls: Calls,
    upstreams: Upstreams,
}

type Shared = Arc<Productpage>;

pub(crate) fn router(config: &AppConfig) -> Result<Router, Error> {
    let state = Arc::new(Productpage {
        calls: Calls::new(config.outbound, &config.upstreams)?,
        upstreams: config.upstreams.clone(),
    });
    Ok(Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/health", get(health))
        .route("/login", post(login))
        .route("/logout", get(logout))
        .route("/productpage", get(productpage))
        .route("/api/v1/products", get(products))
        .route("/api/v1/products/{id}", get(product))
        .route("/api/v1/products/{id}/reviews", get(product_reviews))
        .route("/api/v1/products/{id}/ratings", get(product_ratings))
        .route("/metrics", get(metrics))
        .route("/static/tailwind/tailwind.css", get(stylesheet))
        .with_state(state))
}

async fn index(State(state): State<Shared>) -> Html<String> {
    Html(html::index(&state.upstreams))
}

/// The page's one stylesheet (`html::head` links it); written for this stand-in, no CDN.
async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        html::STYLESHEET,
    )
        .into_response()
}

async fn health() -> &'static str {
    "Product page is healthy"
}

#[derive(Deserialize)]
struct Login {
    username: Option<String>,
    // `passwd` is sent by the form and ignored: there is no password check.
}

async fn login(headers: HeaderMap, Form(form): Form<Login>) -> Response {
    let cookie = match form.username.as_deref() {
        Some(user) => session::login_cookie(user),
        // `session['user'] = None` renders as logged out.
        None => Some(session::logout_cookie()),
    };
    let mut response = back_to_referrer(&headers);
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

async fn logout(headers: HeaderMap) -> Response {
    let mut response = back_to_referrer(&headers);
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session::logout_cookie());
    response
}

/// `redirect(request.referrer)`. Without a Referer Flask fails; sending the browser to the product page
/// is the useful equivalent.
fn back_to_referrer(headers: &HeaderMap) -> Response {
    let location = headers
        .get(header::REFERER)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("/productpage"));
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

async fn productpage(State(state): State<Shared>, headers: HeaderMap) -> Html<String> {
    let user = session::user(&headers);
    let forward = propagation::productpage(&headers, user.as_deref());
    let product_id = html::PRODUCT.id.to_string();
    // One after the other, like the real page: details first, then reviews.
    let details = state.calls.details(&product_id, &forward).await;
    let reviews = state.calls.reviews(&product_id, &forward).await;
    Html(html::productpage(&html::Page {
        user: user.as_deref(),
        details: &details,
        reviews: &reviews,
    }))
}

async fn products() -> Response {
    // Built by hand so the keys keep the real app's order (id, title, descriptionHtml) and spacing.
    let body = format!(
        "[{{\"id\": {}, \"title\": {}, \"descriptionHtml\": {}}}]",
        html::PRODUCT.id,
        serde_json::Value::from(html::PRODUCT.title),
        serde_json::Value::from(html::PRODUCT.description_html),
    );
    json_response(200, body)
}

async fn product(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let forward = forward_headers(&headers);
    api(state.calls.details(&id, &forward).await)
}

async fn product_reviews(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let forward = forward_headers(&headers);
    api(state.calls.reviews(&id, &forward).await)
}

async fn product_ratings(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let forward = forward_headers(&headers);
    api(state.calls.ratings(&id, &forward).await)
}

fn forward_headers(headers: &HeaderMap) -> HeaderMap {
    propagation::productpage(headers, session::user(headers).as_deref())
}

fn api(outcome: Outcome) -> Response {
    json_response(outcome.status, outcome.raw)
}

fn json_response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn metrics(State(state): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.calls.metrics.render(),
    )
        .into_response()
}
