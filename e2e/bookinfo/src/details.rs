//! details v1 (Ruby WEBrick): a fixed book record under `/details/<id>`.

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use serde::Serialize;

/// Field order is the Ruby hash's insertion order, which is what `to_json` emits.
#[derive(Serialize)]
struct Book {
    id: i64,
    author: &'static str,
    year: u32,
    #[serde(rename = "type")]
    kind: &'static str,
    pages: u32,
    publisher: &'static str,
    language: &'static str,
    #[serde(rename = "ISBN-10")]
    isbn_10: &'static str,
    #[serde(rename = "ISBN-13")]
    isbn_13: &'static str,
}

pub(crate) fn router() -> Router {
    Router::new()
        .route("/health", get(health))
        // WEBrick's `mount_proc '/details'` answers every method on the mount point and below it.
        .route("/details", any(details))
        .route("/details/{*rest}", any(details))
}

async fn health() -> Response {
    json(
        StatusCode::OK,
        r#"{"status":"Details is healthy"}"#.to_owned(),
    )
}

async fn details(uri: Uri) -> Response {
    // Ruby's `String#split('/')` drops trailing empty fields, so `/details/0/` still means id 0.
    let last = uri
        .path()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    match ruby_integer(last) {
        Some(id) => {
            let book = Book {
                id,
                author: "William Shakespeare",
                year: 1595,
                kind: "paperback",
                pages: 200,
                publisher: "PublisherA",
                language: "English",
                isbn_10: "1234567890",
                isbn_13: "123-1234567890",
            };
            match serde_json::to_string(&book) {
                Ok(body) => json(StatusCode::OK, body),
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
        None => json(
            StatusCode::BAD_REQUEST,
            r#"{"error":"please provide numeric product id"}"#.to_owned(),
        ),
    }
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Ruby's `Integer(String)`: surrounding whitespace, a sign, `0x`/`0b`/`0o`/`0d`/leading-`0` radix prefixes
/// and single underscores between digits are accepted; anything else raises.
fn ruby_integer(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, text) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = text.to_ascii_lowercase();
    let (radix, digits) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest)
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest)
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest)
    } else if let Some(rest) = lower.strip_prefix("0d") {
        (10, rest)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let cleaned: String = digits.chars().filter(|c| *c != '_').collect();
    if !cleaned.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i64::from_str_radix(&cleaned, radix).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruby_integer_follows_kernel_integer() {
        assert_eq!(ruby_integer("0"), Some(0));
        assert_eq!(ruby_integer(" 12 "), Some(12));
        assert_eq!(ruby_integer("-3"), Some(-3));
        assert_eq!(ruby_integer("010"), Some(8));
        assert_eq!(ruby_integer("0x1A"), Some(26));
        assert_eq!(ruby_integer("1_000"), Some(1000));
        assert_eq!(ruby_integer("details"), None);
        assert_eq!(ruby_integer("12abc"), None);
        assert_eq!(ruby_integer("09"), None);
        assert_eq!(ruby_integer(""), None);
        assert_eq!(ruby_integer("1__0"), None);
    }
}
