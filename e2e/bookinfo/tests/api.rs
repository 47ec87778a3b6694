//! The JSON APIs of all four services, directly and through productpage's `/api/v1` routes.

mod common;

use common::{browser, get_text, Action, Bookinfo};
use serde_json::{json, Value};

const BOOK: &str = r#"{"id":0,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}"#;

#[tokio::test]
async fn details_answers_with_the_ruby_key_order() {
    let app = Bookinfo::start().await;
    let client = browser();
    let base = format!("http://{}", app.details);
    assert_eq!(
        get_text(&client, &format!("{base}/details/0")).await,
        (200, BOOK.to_owned())
    );
    let posted = client
        .post(format!("{base}/details/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status().as_u16(), 200, "any method is served");
    assert!(posted.text().await.unwrap().starts_with(r#"{"id":7,"#));
    assert_eq!(
        get_text(&client, &format!("{base}/details/abc")).await,
        (
            400,
            r#"{"error":"please provide numeric product id"}"#.to_owned()
        )
    );
    assert_eq!(
        get_text(&client, &format!("{base}/health")).await,
        (200, r#"{"status":"Details is healthy"}"#.to_owned())
    );
}

#[tokio::test]
async fn reviews_versions_differ_only_in_ratings() {
    let app = Bookinfo::start().await;
    let client = browser();
    let fetch = |n: usize| {
        let url = format!("http://{}/reviews/0", app.reviews[n - 1]);
        let client = client.clone();
        async move {
            let (status, body) = get_text(&client, &url).await;
            assert_eq!(status, 200);
            serde_json::from_str::<Value>(&body).unwrap()
        }
    };
    let v1 = fetch(1).await;
    assert_eq!(v1["id"], json!("0"));
    assert_eq!(v1["podname"], json!("reviews-v1"));
    assert_eq!(v1["clustername"], json!("null"));
    assert_eq!(v1["reviews"][0]["reviewer"], json!("Reviewer1"));
    assert!(v1["reviews"][0].get("rating").is_none());
    assert!(app.sidecar.seen("ratings").is_empty());

    let v2 = fetch(2).await;
    assert_eq!(
        v2["reviews"][0]["rating"],
        json!({"stars": 5, "color": "black"})
    );
    assert_eq!(
        v2["reviews"][1]["rating"],
        json!({"stars": 4, "color": "black"})
    );
    let v3 = fetch(3).await;
    assert_eq!(
        v3["reviews"][1]["rating"],
        json!({"stars": 4, "color": "red"})
    );

    app.sidecar.route("ratings", Action::Status(503));
    let broken = fetch(3).await;
    assert_eq!(
        broken["reviews"][0]["rating"],
        json!({"error": "Ratings service is currently unavailable"})
    );

    let (status, _) = get_text(&client, &format!("http://{}/reviews/abc", app.reviews[0])).await;
    assert_eq!(status, 404);
    let (status, body) = get_text(&client, &format!("http://{}/health", app.reviews[0])).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"status": "Reviews is healthy"}"#)
    );
}

#[tokio::test]
async fn ratings_serves_defaults_and_stores_posts() {
    let app = Bookinfo::start().await;
    let client = browser();
    let base = format!("http://{}", app.ratings);
    assert_eq!(
        get_text(&client, &format!("{base}/ratings/0")).await,
        (
            200,
            r#"{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}"#.to_owned()
        )
    );
    let posted = client
        .post(format!("{base}/ratings/3"))
        .body(r#"{"Reviewer1":1,"Reviewer2":2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status().as_u16(), 200);
    assert_eq!(
        posted.text().await.unwrap(),
        r#"{"id":3,"ratings":{"Reviewer1":1,"Reviewer2":2}}"#
    );
    assert_eq!(
        get_text(&client, &format!("{base}/ratings/3")).await.1,
        r#"{"id":3,"ratings":{"Reviewer1":1,"Reviewer2":2}}"#
    );
    assert_eq!(
        get_text(&client, &format!("{base}/ratings/x")).await,
        (
            400,
            r#"{"error":"please provide numeric product ID"}"#.to_owned()
        )
    );
    let bad = client
        .post(format!("{base}/ratings/3"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert_eq!(
        bad.text().await.unwrap(),
        r#"{"error":"please provide valid ratings JSON"}"#
    );
    assert_eq!(
        get_text(&client, &format!("{base}/health")).await,
        (200, r#"{"status":"Ratings is healthy"}"#.to_owned())
    );
}

#[tokio::test]
async fn productpage_api_proxies_upstreams() {
    let app = Bookinfo::start().await;
    let client = browser();

    let (status, products) = get_text(&client, &app.url("/api/v1/products")).await;
    assert_eq!(status, 200);
    let products: Value = serde_json::from_str(&products).unwrap();
    assert_eq!(products[0]["id"], json!(0));
    assert_eq!(products[0]["title"], json!("The Comedy of Errors"));
    assert!(products[0]["descriptionHtml"]
        .as_str()
        .unwrap()
        .contains("<b>William Shakespeare's</b> early plays"));

    assert_eq!(
        get_text(&client, &app.url("/api/v1/products/0")).await,
        (200, BOOK.to_owned()),
        "details' bytes pass through, key order included"
    );
    let (status, body) = get_text(&client, &app.url("/api/v1/products/abc")).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"error": "Sorry, product details are currently unavailable for this book."}"#
    );

    let (status, body) = get_text(&client, &app.url("/api/v1/products/0/reviews")).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["podname"],
        json!("reviews-v1")
    );

    let (status, body) = get_text(&client, &app.url("/api/v1/products/0/ratings")).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}"#)
    );

    app.sidecar.route("ratings", Action::Status(503));
    let (status, body) = get_text(&client, &app.url("/api/v1/products/0/ratings")).await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        r#"{"error": "Sorry, product ratings are currently unavailable for this book."}"#
    );
    assert_eq!(
        app.sidecar.seen("ratings").len(),
        2,
        "ratings is not retried"
    );

    let (status, metrics) = get_text(&client, &app.url("/metrics")).await;
    assert_eq!(status, 200);
    assert!(metrics
        .contains("request_result_total{destination_app=\"ratings\",response_code=\"503\"} 1.0"));
    assert!(metrics
        .contains("request_result_total{destination_app=\"details\",response_code=\"400\"} 1.0"));
}
