//! The hard-coded timeouts behind the fault-injection task, on tokio's paused clock: time only moves
//! when every task is waiting, so "3 s" costs nothing and is measured exactly.

mod common;

use std::time::Duration;

use common::{browser, get_text, Action, Bookinfo, FILLED_STAR};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn hanging_reviews_fails_after_two_three_second_attempts() {
    let app = Bookinfo::start().await;
    app.sidecar.route("reviews", Action::Hang);
    let started = Instant::now();
    let (status, html) = get_text(&browser(), &app.url("/productpage")).await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200);
    assert!(html.contains("Error fetching product reviews"));
    assert!(html.contains("Sorry, product reviews are currently unavailable for this book."));
    assert!(html.contains("Book Details"));
    assert_eq!(app.sidecar.seen("reviews").len(), 2);
    assert!(
        elapsed >= Duration::from_secs(6) && elapsed < Duration::from_millis(6_500),
        "took {elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn delayed_ratings_with_v2_trips_productpage_not_reviews() {
    // virtual-service-ratings-test-delay: ratings is slow (longer than everyone waits) for jason, and
    // reviews v2 would wait 10 s, but productpage gives up on reviews after 2 × 3 s.
    let app = Bookinfo::start().await;
    app.reviews_to(2);
    app.sidecar.route("ratings", Action::Hang);
    let started = Instant::now();
    let (_, html) = get_text(&browser(), &app.url("/productpage")).await;
    let elapsed = started.elapsed();
    assert!(html.contains("Sorry, product reviews are currently unavailable for this book."));
    assert_eq!(app.sidecar.seen("reviews").len(), 2);
    assert!(
        elapsed >= Duration::from_secs(6) && elapsed < Duration::from_millis(6_500),
        "took {elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn delayed_ratings_with_v3_degrades_to_ratings_unavailable() {
    // reviews v3 waits only 2.5 s for ratings, inside productpage's 3 s.
    let app = Bookinfo::start().await;
    app.reviews_to(3);
    app.sidecar.route("ratings", Action::Hang);
    let started = Instant::now();
    let (_, html) = get_text(&browser(), &app.url("/productpage")).await;
    let elapsed = started.elapsed();
    assert_eq!(
        html.matches("Ratings service is currently unavailable")
            .count(),
        2
    );
    assert_eq!(html.matches(FILLED_STAR).count(), 0);
    assert_eq!(app.sidecar.seen("reviews").len(), 1);
    assert!(
        elapsed >= Duration::from_millis(2_500) && elapsed < Duration::from_secs(3),
        "took {elapsed:?}"
    );
}
