//! productpage's calls to details, reviews and ratings, with the real app's timeouts, attempts and
//! fallback error bodies.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::Value;

use super::metrics::Metrics;
use crate::{outbound, Error, Service, Upstreams};

/// `requests.get(..., timeout=3.0)`: 3 s to connect and 3 s per read.
const TIMEOUT: Duration = Duration::from_secs(3);

const DETAILS_ERROR: &str = "Sorry, product details are currently unavailable for this book.";
const REVIEWS_ERROR: &str = "Sorry, product reviews are currently unavailable for this book.";
const RATINGS_ERROR: &str = "Sorry, product ratings are currently unavailable for this book.";

/// What productpage got from one upstream: its status and JSON, or the error object that replaces it.
pub(crate) struct Outcome {
    pub status: u16,
    /// The JSON text to hand back from the API routes (the upstream's own bytes on success, so key order
    /// survives).
    pub raw: String,
    pub json: Value,
}

impl Outcome {
    fn failed(status: u16, message: &str) -> Self {
        let json = serde_json::json!({ "error": message });
        // Python's `json.dumps` spacing.
        let raw = format!("{{\"error\": {}}}", Value::from(message));
        Self { status, raw, json }
    }
}

pub(crate) struct Calls {
    client: reqwest::Client,
    details: String,
    reviews: String,
    ratings: String,
    pub metrics: Metrics,
}

impl Calls {
    pub(crate) fn new(outbound: SocketAddr, upstreams: &Upstreams) -> Result<Self, Error> {
        let client = outbound::client(
            Service::Productpage,
            outbound,
            &[&upstreams.details, &upstreams.reviews, &upstreams.ratings],
            TIMEOUT,
        )?;
        Ok(Self {
            client,
            details: upstreams.details.url("/details"),
            reviews: upstreams.reviews.url("/reviews"),
            ratings: upstreams.ratings.url("/ratings"),
            metrics: Metrics::default(),
        })
    }

    pub(crate) async fn details(&self, product_id: &str, headers: &HeaderMap) -> Outcome {
        let url = format!("{}/{product_id}", self.details);
        let outcome = match self.attempt(&url, headers).await {
            Ok(outcome) => outcome,
            Err(status) => Outcome::failed(status, DETAILS_ERROR),
        };
        self.metrics.record("details", outcome.status);
        outcome
    }

    /// Two attempts, retried on anything but a 200: "Do not remove. Bug introduced explicitly for
    /// illustration in fault injection task". A hanging reviews therefore costs about 6 s.
    pub(crate) async fn reviews(&self, product_id: &str, headers: &HeaderMap) -> Outcome {
        let url = format!("{}/{product_id}", self.reviews);
        let mut last_status = 500;
        for _ in 0..2 {
            match self.attempt(&url, headers).await {
                Ok(outcome) => {
                    self.metrics.record("reviews", outcome.status);
                    return outcome;
                }
                Err(status) => last_status = status,
            }
        }
        self.metrics.record("reviews", last_status);
        Outcome::failed(last_status, REVIEWS_ERROR)
    }

    pub(crate) async fn ratings(&self, product_id: &str, headers: &HeaderMap) -> Outcome {
        let url = format!("{}/{product_id}", self.ratings);
        let outcome = match self.attempt(&url, headers).await {
            Ok(outcome) => outcome,
            Err(status) => Outcome::failed(status, RATINGS_ERROR),
        };
        self.metrics.record("ratings", outcome.status);
        outcome
    }

    /// One GET; `Err(status)` is the code to report: the upstream's, or 500 when there was no answer.
    async fn attempt(&self, url: &str, headers: &HeaderMap) -> Result<Outcome, u16> {
        let answer = outbound::get(&self.client, url, headers.clone())
            .await
            .map_err(|err| {
                tracing::warn!(%url, error = %err, "upstream call failed");
                500u16
            })?;
        if answer.status != 200 {
            tracing::warn!(%url, status = answer.status, "upstream answered with an error");
            return Err(answer.status);
        }
        // The real app would raise on a 200 that is not JSON, which Flask turns into a 500.
        let json = serde_json::from_str(&answer.body).map_err(|_| 500u16)?;
        Ok(Outcome {
            status: 200,
            raw: answer.body,
            json,
        })
    }
}
