//! The product page as the Istio tasks look at it: title, details, stars per reviews version, login.

mod common;

use common::{browser, get_text, Bookinfo, FILLED_STAR};

#[tokio::test]
async fn page_has_title_details_and_no_stars_with_reviews_v1() {
    let app = Bookinfo::start().await;
    let (status, html) = get_text(&browser(), &app.url("/productpage")).await;
    assert_eq!(status, 200);
    assert!(html.contains("<title>Simple Bookstore App</title>"));
    assert!(html.contains("The Comedy of Errors"));
    assert!(html.contains("Book Details"));
    for row in [
        "Type:</th><td>paperback</td>",
        "Pages:</th><td>200</td>",
        "Publisher:</th><td>PublisherA</td>",
        "Language:</th><td>English</td>",
        "ISBN-10:</th><td>1234567890</td>",
        "ISBN-13:</th><td>123-1234567890</td>",
    ] {
        assert!(html.contains(row), "missing {row}");
    }
    assert!(html.contains("Book Reviews"));
    assert!(html.contains("An extremely entertaining play by Shakespeare."));
    assert!(html.contains("Reviewer2"));
    assert!(html.contains("Reviews served by:</dt><dd>reviews-v1</dd>"));
    assert_eq!(html.matches(FILLED_STAR).count(), 0);
    assert!(!html.contains("Ratings service is currently unavailable"));
    assert!(
        app.sidecar.seen("ratings").is_empty(),
        "v1 must not call ratings"
    );
    assert_eq!(app.sidecar.seen("details").len(), 1);
    assert_eq!(app.sidecar.seen("details")[0].path, "/details/0");
    assert_eq!(
        app.sidecar.seen("reviews")[0].headers.get("host").unwrap(),
        &format!("reviews:{}", app.sidecar.addr.port())
    );
}

#[tokio::test]
async fn reviews_v2_shows_black_stars() {
    let app = Bookinfo::start().await;
    app.reviews_to(2);
    let (_, html) = get_text(&browser(), &app.url("/productpage")).await;
    assert_eq!(html.matches(FILLED_STAR).count(), 5 + 4);
    assert_eq!(html.matches("data-star=\"empty\"").count(), 1);
    assert_eq!(html.matches("text-black-500").count(), 2);
    assert!(!html.contains("text-red-500\">"));
    assert!(html.contains("Reviews served by:</dt><dd>reviews-v2</dd>"));
    assert_eq!(app.sidecar.seen("ratings")[0].path, "/ratings/0");
}

#[tokio::test]
async fn reviews_v3_shows_red_stars() {
    let app = Bookinfo::start().await;
    app.reviews_to(3);
    let (_, html) = get_text(&browser(), &app.url("/productpage")).await;
    assert_eq!(html.matches(FILLED_STAR).count(), 5 + 4);
    assert_eq!(html.matches("flex gap-x-1 text-red-500").count(), 2);
    assert!(!html.contains("text-black-500"));
    assert!(html.contains("Reviews served by:</dt><dd>reviews-v3</dd>"));
}

#[tokio::test]
async fn login_puts_end_user_on_reviews_and_ratings_and_logout_removes_it() {
    let app = Bookinfo::start().await;
    app.reviews_to(2);
    let browser = browser();
    let page = app.url("/productpage");

    let response = browser
        .post(app.url("/login"))
        .header("referer", &page)
        .form(&[("username", "jason"), ("passwd", "anything")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 302);
    assert_eq!(response.headers().get("location").unwrap(), page.as_str());
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(set_cookie.starts_with("session="), "{set_cookie}");
    assert!(
        !set_cookie.contains("jason"),
        "the cookie is encoded, not a plain user name"
    );

    // A client-supplied end-user must not override (or stand in for) the session.
    let html = browser
        .get(&page)
        .header("end-user", "mallory")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(">jason</span>"));
    assert!(html.contains("Sign out"));
    assert!(html.contains("href=\"logout\""));
    assert_eq!(html.matches(common::FILLED_STAR).count(), 9);
    let reviews = app.sidecar.seen("reviews");
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].headers.get("end-user").unwrap(), "jason");
    assert!(
        reviews[0].headers.get("cookie").is_some(),
        "cookie is forwarded"
    );
    let details = app.sidecar.seen("details");
    assert_eq!(details[0].headers.get("end-user").unwrap(), "jason");
    let ratings = app.sidecar.seen("ratings");
    assert_eq!(ratings.len(), 1);
    assert_eq!(ratings[0].headers.get("end-user").unwrap(), "jason");

    let response = browser
        .get(app.url("/logout"))
        .header("referer", &page)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 302);
    assert_eq!(response.headers().get("location").unwrap(), page.as_str());

    app.sidecar.forget();
    let html = browser
        .get(&page)
        .header("end-user", "jason")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Sign in"));
    assert!(!html.contains("Sign out"));
    assert!(html.contains("name=\"username\""));
    assert!(html.contains("name=\"passwd\""));
    assert!(app.sidecar.seen("reviews")[0]
        .headers
        .get("end-user")
        .is_none());
    assert!(app.sidecar.seen("ratings")[0]
        .headers
        .get("end-user")
        .is_none());
}

#[tokio::test]
async fn tracing_headers_arrive_unchanged_at_reviews_and_ratings() {
    let app = Bookinfo::start().await;
    app.reviews_to(3);
    let sent = [
        ("x-request-id", "34eeb41d-d267-9e49-8b84-dde403fc5b72"),
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-sampled", "1"),
        (
            "sw8",
            "1-MTIz-NDU2-0-c2Vydmlj-aW5zdA==-L2FwaQ==-ZXhhbXBsZQ==",
        ),
        ("user-agent", "bookinfo-test"),
    ];
    let mut request = browser().get(app.url("/productpage"));
    for (name, value) in sent {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status().as_u16(), 200);
    for host in ["details", "reviews", "ratings"] {
        let seen = &app.sidecar.seen(host)[0];
        for (name, value) in sent {
            assert_eq!(
                seen.headers.get(name).map(|v| v.to_str().unwrap()),
                Some(value),
                "{name} at {host}"
            );
        }
    }
}

#[tokio::test]
async fn details_failure_shows_the_details_error_only() {
    let app = Bookinfo::start().await;
    app.sidecar.route("details", common::Action::Status(555));
    let (status, html) = get_text(&browser(), &app.url("/productpage")).await;
    assert_eq!(status, 200);
    assert!(html.contains("Error fetching product details"));
    assert!(html.contains("Sorry, product details are currently unavailable for this book."));
    assert!(!html.contains("Book Details"));
    assert!(html.contains("Book Reviews"));
    assert_eq!(
        app.sidecar.seen("details").len(),
        1,
        "details is not retried"
    );
}

#[tokio::test]
async fn ratings_failure_shows_ratings_unavailable_per_review() {
    let app = Bookinfo::start().await;
    app.reviews_to(2);
    app.sidecar.route("ratings", common::Action::Status(500));
    let (_, html) = get_text(&browser(), &app.url("/productpage")).await;
    assert_eq!(
        html.matches("Ratings service is currently unavailable")
            .count(),
        2
    );
    assert_eq!(html.matches(FILLED_STAR).count(), 0);
    assert!(html.contains("Book Reviews"));
    assert!(!html.contains("Error fetching product reviews"));
    assert_eq!(
        app.sidecar.seen("ratings").len(),
        1,
        "reviews does not retry ratings"
    );
}

#[tokio::test]
async fn failing_reviews_is_tried_twice_then_reported() {
    let app = Bookinfo::start().await;
    app.sidecar.route("reviews", common::Action::Status(503));
    let (_, html) = get_text(&browser(), &app.url("/productpage")).await;
    assert!(html.contains("<p class=\"text-2xl text-red-500\">Error fetching product reviews</p>"));
    assert!(html.contains("Sorry, product reviews are currently unavailable for this book."));
    assert!(!html.contains("Book Reviews"));
    assert!(html.contains("Book Details"));
    assert_eq!(app.sidecar.seen("reviews").len(), 2);
}

#[tokio::test]
async fn index_and_health() {
    let app = Bookinfo::start().await;
    let client = browser();
    for path in ["/", "/index.html"] {
        let (status, html) = get_text(&client, &app.url(path)).await;
        assert_eq!(status, 200);
        assert!(html.contains("href=\"/productpage?u=normal\""));
        assert!(html.contains("href=\"/productpage?u=test\""));
        assert!(html.contains("http://reviews:"));
    }
    assert_eq!(
        get_text(&client, &app.url("/health")).await,
        (200, "Product page is healthy".to_owned())
    );
}
