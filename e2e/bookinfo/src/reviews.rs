//! reviews (Java/JAX-RS): two fixed reviews; v2 and v3 add star ratings fetched from ratings.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use serde_json::Value;

use crate::{outbound, propagation, AppConfig, Error, Service};

const UNAVAILABLE: &str = "Ratings service is currently unavailable";

/// How v2/v3 reach ratings; v1 has none (`ENABLE_RATINGS=false`).
struct Ratings {
    client: reqwest::Client,
    /// `http://ratings:9080/ratings`
    base_url: String,
    color: &'static str,
}

struct Reviews {
    podname: String,
    clustername: String,
    ratings: Option<Ratings>,
}

#[derive(Serialize)]
struct Body<'a> {
    id: String,
    podname: &'a str,
    clustername: &'a str,
    reviews: [Review; 2],
}

#[derive(Serialize)]
struct Review {
    reviewer: &'static str,
    text: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rating: Option<Rating>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Rating {
    Stars { stars: i64, color: &'static str },
    Error { error: &'static str },
}

pub(crate) fn router(config: &AppConfig) -> Result<Router, Error> {
    let ratings = match config.version.as_str() {
        "v1" => None,
        version => {
            let color = if version == "v3" { "red" } else { "black" };
            // The real code: `star_color.equals("black") ? 10000 : 2500` for connect and receive.
            let timeout = if color == "black" {
                Duration::from_millis(10_000)
            } else {
                Duration::from_millis(2_500)
            };
            let upstream = &config.upstreams.ratings;
            Some(Ratings {
                client: outbound::client(Service::Reviews, config.outbound, &[upstream], timeout)?,
                base_url: upstream.url("/ratings"),
                color,
            })
        }
    };
    let state = Arc::new(Reviews {
        podname: config.pod_name.clone(),
        clustername: config
            .cluster_name
            .clone()
            .unwrap_or_else(|| "null".to_owned()),
        ratings,
    });
    Ok(Router::new()
        .route("/health", get(health))
        .route("/reviews/{product_id}", get(reviews))
        .with_state(state))
}

async fn health() -> Response {
    json(r#"{"status": "Reviews is healthy"}"#.to_owned())
}

async fn reviews(
    State(state): State<Arc<Reviews>>,
    Path(product_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    // JAX-RS answers 404 when an `int` path parameter does not parse.
    let Ok(product_id) = product_id.parse::<i32>() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let product_id = product_id.to_string();
    let ratings = match &state.ratings {
        None => None,
        Some(ratings) => Some((
            fetch_stars(ratings, &product_id, &headers).await,
            ratings.color,
        )),
    };
    let rating = |reviewer: &str| {
        ratings.as_ref().map(|(stars, color)| {
            match stars
                .as_ref()
                .and_then(|stars| stars.get(reviewer).and_then(Value::as_i64))
            {
                Some(stars) => Rating::Stars { stars, color },
                None => Rating::Error { error: UNAVAILABLE },
            }
        })
    };
    let body = Body {
        id: product_id.clone(),
        podname: &state.podname,
        clustername: &state.clustername,
        reviews: [
            Review {
                reviewer: "Reviewer1",
                text: "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!",
                rating: rating("Reviewer1"),
            },
            Review {
                reviewer: "Reviewer2",
                text: "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.",
                rating: rating("Reviewer2"),
            },
        ],
    };
    match serde_json::to_string(&body) {
        Ok(body) => json(body),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The `ratings` object of a 200 answer; `None` on any failure, which turns each rating into the error.
async fn fetch_stars(
    ratings: &Ratings,
    product_id: &str,
    incoming: &HeaderMap,
) -> Option<serde_json::Map<String, Value>> {
    let url = format!("{}/{product_id}", ratings.base_url);
    let answer = match outbound::get(&ratings.client, &url, propagation::reviews(incoming)).await {
        Ok(answer) => answer,
        Err(err) => {
            tracing::warn!(%url, error = %err, "ratings call failed");
            return None;
        }
    };
    if answer.status != 200 {
        tracing::warn!(%url, status = answer.status, "ratings answered with an error");
        return None;
    }
    match serde_json::from_str::<Value>(&answer.body) {
        Ok(Value::Object(mut body)) => match body.remove("ratings") {
            Some(Value::Object(stars)) => Some(stars),
            _ => None,
        },
        _ => None,
    }
}

fn json(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
