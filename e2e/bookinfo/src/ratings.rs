//! ratings v1 (Node): fixed ratings per product, replaceable in memory by POST.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

/// Ratings POSTed per product id, as the v1 service keeps them (in memory, lost on restart).
type Stored = Arc<Mutex<BTreeMap<i64, Value>>>;

pub(crate) fn router() -> Router {
    // The Node dispatcher matches `^/ratings/[0-9]*` as a prefix regex, so routing is done by hand.
    Router::new()
        .fallback(dispatch)
        .with_state(Stored::default())
}

async fn dispatch(
    State(stored): State<Stored>,
    method: Method,
    uri: Uri,
    body: String,
) -> Response {
    let path = uri.path();
    if path == "/health" && method == Method::GET {
        return json(StatusCode::OK, json!({"status": "Ratings is healthy"}));
    }
    if !path.starts_with("/ratings/") || !(method == Method::GET || method == Method::POST) {
        return StatusCode::NOT_FOUND.into_response();
    }
    // The real code parses the last `/` field of the raw URL (query included) with `parseInt`.
    let raw = uri.path_and_query().map(|pq| pq.as_str()).unwrap_or(path);
    let last = raw.rsplit('/').next().unwrap_or("");
    let Some(id) = parse_int(last) else {
        return json(
            StatusCode::BAD_REQUEST,
            json!({"error": "please provide numeric product ID"}),
        );
    };
    let mut stored = stored.lock().unwrap_or_else(PoisonError::into_inner);
    if method == Method::POST {
        let Ok(ratings) = serde_json::from_str::<Value>(&body) else {
            return json(
                StatusCode::BAD_REQUEST,
                json!({"error": "please provide valid ratings JSON"}),
            );
        };
        stored.insert(id, json!({"id": id, "ratings": ratings}));
    }
    let answer = stored
        .get(&id)
        .cloned()
        .unwrap_or_else(|| json!({"id": id, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}));
    json(StatusCode::OK, answer)
}

fn json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// JavaScript's `parseInt(text)` without a radix: leading whitespace, a sign, `0x` for hex, then the
/// longest run of digits; `None` where it yields `NaN`.
fn parse_int(text: &str) -> Option<i64> {
    let text = text.trim_start();
    let (negative, text) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, text) = match text.get(..2) {
        Some("0x") | Some("0X") => (16, &text[2..]),
        _ => (10, text),
    };
    let end = text
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(text.len());
    let magnitude = i64::from_str_radix(&text[..end], radix).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_int_follows_javascript() {
        assert_eq!(parse_int("0"), Some(0));
        assert_eq!(parse_int("12abc"), Some(12));
        assert_eq!(parse_int("7?x=1"), Some(7));
        assert_eq!(parse_int("0x1f"), Some(31));
        assert_eq!(parse_int("-4"), Some(-4));
        assert_eq!(parse_int("abc"), None);
        assert_eq!(parse_int(""), None);
    }
}
