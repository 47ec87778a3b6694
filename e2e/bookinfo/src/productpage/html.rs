//! productpage's two HTML pages, shaped after the real Tailwind templates.
//!
//! Markers other code looks for:
//! - each filled star is `<svg id="glyphicon glyphicon-star" data-star="filled" ...>` inside
//!   `<div class="flex gap-x-1 text-{color}-500">` (`text-black-500` for v2, `text-red-500` for v3);
//!   outline stars are `<svg data-star="empty" ...>` and do not contain `glyphicon`;
//! - `Ratings service is currently unavailable`, `Error fetching product details`,
//!   `Error fetching product reviews`, `Reviews served by: <podname>`.

use std::fmt::Write;

use serde_json::Value;

use super::calls::Outcome;
use crate::Upstreams;

pub(crate) const TITLE: &str = "Simple Bookstore App";

/// Served at `/static/tailwind/tailwind.css`: a rule for every class these pages use (a test checks it).
pub(crate) const STYLESHEET: &str = include_str!("static/tailwind.css");

pub(crate) struct Product {
    pub id: u32,
    pub title: &'static str,
    /// Trusted HTML, rendered unescaped like the template's `| safe`.
    pub description_html: &'static str,
}

pub(crate) const PRODUCT: Product = Product {
    id: 0,
    title: "The Comedy of Errors",
    description_html: "<a href=\"https://en.wikipedia.org/wiki/The_Comedy_of_Errors\">Wikipedia Summary</a>: The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his shortest and one of his most farcical comedies, with a major part of the humour coming from slapstick and mistaken identity, in addition to puns and word play.",
};

const FILLED_STAR: &str = r#"<svg id="glyphicon glyphicon-star" data-star="filled" class="h-5 w-5" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="currentColor" aria-hidden="true"><path d="M12 2l3.09 6.26L22 9.27l-5 4.87 1.18 6.88L12 17.77l-6.18 3.25L7 14.14 2 9.27l6.91-1.01L12 2z"/></svg>"#;
const EMPTY_STAR: &str = r#"<svg data-star="empty" class="h-5 w-5" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.5" aria-hidden="true"><path d="M12 2l3.09 6.26L22 9.27l-5 4.87 1.18 6.88L12 17.77l-6.18 3.25L7 14.14 2 9.27l6.91-1.01L12 2z"/></svg>"#;

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// How Jinja prints `{{ value.key }}`: strings bare, numbers as written, missing as nothing.
fn field(value: &Value, key: &str) -> String {
    match value.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => escape(text),
        Some(other) => escape(&other.to_string()),
    }
}

fn head(out: &mut String) {
    out.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1.0\">\n\
         <title>{TITLE}</title>\n\
         <link rel=\"stylesheet\" href=\"static/tailwind/tailwind.css\">\n</head>\n"
    ));
}

/// `GET /` and `/index.html`: the service tree and the two request links.
pub(crate) fn index(upstreams: &Upstreams) -> String {
    let mut out = String::new();
    head(&mut out);
    let row = |name: &str, endpoint: &str, children: &str| {
        format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(name),
            escape(endpoint),
            escape(children)
        )
    };
    out.push_str(
        "<body class=\"bg-gray-50\">\n<div class=\"container mx-auto p-6\">\n\
         <h3 class=\"text-2xl\">Hello! This is a simple bookstore application consisting of three services as shown below</h3>\n\
         <table class=\"table-auto\">\n<thead><tr><th>name</th><th>endpoint</th><th>children</th></tr></thead>\n<tbody>\n",
    );
    out.push_str(&row(
        "productpage",
        "details",
        &format!(
            "{}, {}",
            upstreams.details.url(""),
            upstreams.reviews.url("")
        ),
    ));
    out.push_str(&row("details", &upstreams.details.url("/details"), ""));
    out.push_str(&row(
        "reviews",
        &upstreams.reviews.url("/reviews"),
        &upstreams.ratings.url(""),
    ));
    out.push_str(&row("ratings", &upstreams.ratings.url("/ratings"), ""));
    out.push_str(
        "</tbody>\n</table>\n\
         <h4 class=\"text-xl\">Click on one of the links below to auto generate a request to the backend as a real user or a tester</h4>\n\
         <p><a href=\"/productpage?u=normal\">Normal user</a></p>\n\
         <p><a href=\"/productpage?u=test\">Test user</a></p>\n\
         </div>\n</body>\n</html>\n",
    );
    out
}

pub(crate) struct Page<'a> {
    pub user: Option<&'a str>,
    pub details: &'a Outcome,
    pub reviews: &'a Outcome,
}

/// `GET /productpage`.
pub(crate) fn productpage(page: &Page<'_>) -> String {
    let mut out = String::new();
    head(&mut out);
    out.push_str("<body class=\"bg-gray-50\">\n");
    navbar(&mut out, page.user);
    out.push_str(&format!(
        "<main class=\"container mx-auto p-6\">\n\
         <div class=\"mb-6\">\n<h1 class=\"text-3xl font-bold\" data-product-id=\"{}\">{}</h1>\n\
         <p class=\"mt-2\">{}</p>\n</div>\n<div class=\"grid grid-cols-2 gap-8\">\n",
        PRODUCT.id,
        escape(PRODUCT.title),
        PRODUCT.description_html
    ));
    details(&mut out, page.details);
    reviews(&mut out, page.reviews);
    out.push_str("</div>\n</main>\n</body>\n</html>\n");
    out
}

fn navbar(out: &mut String, user: Option<&str>) {
    out.push_str(
        "<nav class=\"bg-gray-800 text-white\">\n<div class=\"container mx-auto flex justify-between p-4\">\n\
         <a href=\"#\" class=\"text-xl font-bold\">BookInfo Sample</a>\n",
    );
    match user.filter(|user| !user.is_empty()) {
        Some(user) => {
            let _ = writeln!(
                out,
                "<div class=\"flex gap-x-4\"><span id=\"signed-in-user\">{}</span>\
                 <a href=\"logout\" class=\"underline\">Sign out</a></div>",
                escape(user)
            );
        }
        None => out.push_str(
            "<button type=\"button\" class=\"rounded bg-blue-600 px-4 py-2\" \
             onclick=\"document.getElementById('login-dialog').showModal()\">Sign in</button>\n\
             <dialog id=\"login-dialog\" class=\"rounded p-6\">\n\
             <form method=\"post\" action=\"login\" class=\"flex flex-col gap-y-3\">\n\
             <label>User Name <input type=\"text\" name=\"username\" class=\"border\"></label>\n\
             <label>Password <input type=\"password\" name=\"passwd\" class=\"border\"></label>\n\
             <button type=\"submit\" class=\"rounded bg-blue-600 px-4 py-2 text-white\">Sign in</button>\n\
             </form>\n</dialog>\n",
        ),
    }
    out.push_str("</div>\n</nav>\n");
}

fn error_block(out: &mut String, heading: &str, body: &Value) {
    let _ = write!(
        out,
        "<p class=\"text-2xl text-red-500\">{heading}</p>\n<p class=\"text-red-500\">{}</p>\n",
        field(body, "error")
    );
}

fn details(out: &mut String, outcome: &Outcome) {
    out.push_str("<section id=\"details\">\n");
    if outcome.status != 200 {
        error_block(out, "Error fetching product details", &outcome.json);
    } else {
        out.push_str(
            "<h4 class=\"text-2xl font-bold\">Book Details</h4>\n<table class=\"table-auto\">\n<tbody>\n",
        );
        for (label, key) in [
            ("Type", "type"),
            ("Pages", "pages"),
            ("Publisher", "publisher"),
            ("Language", "language"),
            ("ISBN-10", "ISBN-10"),
            ("ISBN-13", "ISBN-13"),
        ] {
            let _ = writeln!(
                out,
                "<tr><th class=\"pr-4 text-left\">{label}:</th><td>{}</td></tr>",
                field(&outcome.json, key)
            );
        }
        out.push_str("</tbody>\n</table>\n");
    }
    out.push_str("</section>\n");
}

fn reviews(out: &mut String, outcome: &Outcome) {
    out.push_str("<section id=\"reviews\">\n");
    if outcome.status != 200 {
        error_block(out, "Error fetching product reviews", &outcome.json);
        out.push_str("</section>\n");
        return;
    }
    out.push_str("<h4 class=\"text-2xl font-bold\">Book Reviews</h4>\n");
    let list = outcome.json.get("reviews").and_then(Value::as_array);
    for review in list.into_iter().flatten() {
        out.push_str("<blockquote class=\"my-4 border-l-4 pl-4\">\n");
        if let Some(rating) = review.get("rating") {
            rating_block(out, rating);
        }
        let _ = write!(
            out,
            "<p class=\"italic\">{}</p>\n<small class=\"text-gray-600\">{}</small>\n</blockquote>\n",
            field(review, "text"),
            field(review, "reviewer")
        );
    }
    let _ = write!(
        out,
        "<dl class=\"text-sm text-gray-600\"><dt>Reviews served by:</dt><dd>{}",
        field(&outcome.json, "podname")
    );
    let cluster = field(&outcome.json, "clustername");
    if cluster != "null" {
        let _ = write!(out, " on cluster {cluster}");
    }
    out.push_str("</dd></dl>\n</section>\n");
}

/// Jinja's `{% if review.rating.stars %}` treats 0 like absent, then falls through to the error check.
fn rating_block(out: &mut String, rating: &Value) {
    let stars = rating
        .get("stars")
        .and_then(Value::as_i64)
        .filter(|stars| *stars != 0);
    if let Some(stars) = stars {
        let filled = stars.clamp(0, 5) as usize;
        let _ = write!(
            out,
            "<div class=\"flex gap-x-1 text-{}-500\">",
            field(rating, "color")
        );
        out.push_str(&FILLED_STAR.repeat(filled));
        out.push_str(&EMPTY_STAR.repeat(5 - filled));
        out.push_str("</div>\n");
    } else if rating.get("error").is_some_and(|error| !error.is_null()) {
        out.push_str("<p class=\"text-red-500\">Ratings service is currently unavailable</p>\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(json: Value) -> Outcome {
        Outcome {
            status: 200,
            raw: json.to_string(),
            json,
        }
    }

    #[test]
    fn stars_carry_color_and_marker() {
        let details = ok(json!({"type": "paperback"}));
        let reviews = ok(json!({
            "podname": "reviews-v3", "clustername": "null",
            "reviews": [
                {"reviewer": "Reviewer1", "text": "a", "rating": {"stars": 5, "color": "red"}},
                {"reviewer": "Reviewer2", "text": "b", "rating": {"stars": 4, "color": "red"}}
            ]
        }));
        let html = productpage(&Page {
            user: None,
            details: &details,
            reviews: &reviews,
        });
        assert_eq!(html.matches("glyphicon glyphicon-star").count(), 9);
        assert_eq!(html.matches("data-star=\"empty\"").count(), 1);
        assert_eq!(html.matches("text-red-500\">").count(), 2);
        assert!(html.contains("Reviews served by:</dt><dd>reviews-v3</dd>"));
        assert!(html.contains("Sign in"));
    }

    /// Every class any page uses, in every state, has a rule in the stylesheet.
    #[test]
    fn the_stylesheet_styles_every_class_the_pages_use() {
        let details = ok(json!({"type": "paperback"}));
        let stars = |color: &str| {
            ok(json!({"podname": "reviews-v2", "reviews": [
                {"reviewer": "R", "text": "a", "rating": {"stars": 4, "color": color}},
                {"reviewer": "S", "text": "b", "rating": {"error": "x"}}
            ]}))
        };
        let failed = Outcome {
            status: 503,
            raw: String::new(),
            json: json!({"error": "x"}),
        };
        let mut pages = vec![index(&crate::Upstreams::default())];
        for user in [None, Some("jason")] {
            for (details, reviews) in [
                (&details, &stars("black")),
                (&details, &stars("red")),
                (&failed, &failed),
            ] {
                pages.push(productpage(&Page {
                    user,
                    details,
                    reviews,
                }));
            }
        }
        let mut classes = std::collections::BTreeSet::new();
        for page in &pages {
            for attribute in page.split("class=\"").skip(1) {
                let value = attribute.split('"').next().unwrap_or_default();
                classes.extend(value.split_whitespace().map(str::to_owned));
            }
        }
        assert!(classes.contains("text-black-500") && classes.contains("h-5"));
        let missing: Vec<&String> = classes
            .iter()
            .filter(|class| !STYLESHEET.contains(&format!(".{class} {{")))
            .collect();
        assert!(missing.is_empty(), "no rule for {missing:?}");
    }

    #[test]
    fn user_name_is_escaped() {
        let details = ok(json!({}));
        let reviews = ok(json!({"reviews": []}));
        let html = productpage(&Page {
            user: Some("<script>"),
            details: &details,
            reviews: &reviews,
        });
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("Sign out"));
    }
}
