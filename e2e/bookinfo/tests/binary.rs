//! The `bookinfo` binary: flags, environment overrides, and errors at startup.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bookinfo::{AppConfig, Service};
use common::{browser, get_text, spawn, Action, Sidecar};

/// Kills the child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn bookinfo() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bookinfo"));
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    command
}

/// Polls `url` until it answers, failing after a deadline.
async fn wait_healthy(url: &str) -> String {
    let client = browser();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = client.get(url).send().await {
            return response.text().await.unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn productpage_binary_reaches_upstreams_through_the_outbound_address() {
    let sidecar = Sidecar::start().await;
    let port = sidecar.addr.port();
    let config = |service, version: &str| {
        let mut config = AppConfig::new(
            service,
            version,
            format!("{service}-{version}"),
            sidecar.addr,
        );
        config.upstreams = bookinfo::Upstreams::on_port(port);
        config
    };
    let (details, _d) = spawn(config(Service::Details, "v1")).await;
    let (reviews, _r) = spawn(config(Service::Reviews, "v3")).await;
    let (ratings, _s) = spawn(config(Service::Ratings, "v1")).await;
    sidecar.route("details", Action::Forward(details));
    sidecar.route("reviews", Action::Forward(reviews));
    sidecar.route("ratings", Action::Forward(ratings));

    let listen = free_addr();
    let child = bookinfo()
        .args(["--service", "productpage", "--version", "v1"])
        .args(["--listen", &listen.to_string()])
        .args(["--outbound", &sidecar.addr.to_string()])
        .args(["--pod-name", "productpage-v1"])
        .env("DETAILS_SERVICE_PORT", port.to_string())
        .env("REVIEWS_SERVICE_PORT", port.to_string())
        .env("RATINGS_SERVICE_PORT", port.to_string())
        .spawn()
        .unwrap();
    let _running = Running(child);
    let base = format!("http://{listen}");
    assert_eq!(
        wait_healthy(&format!("{base}/health")).await,
        "Product page is healthy"
    );

    let (status, html) = get_text(&browser(), &format!("{base}/productpage")).await;
    assert_eq!(status, 200);
    assert_eq!(html.matches("glyphicon glyphicon-star").count(), 9);
    assert_eq!(html.matches("text-red-500\">").count(), 2);
    assert_eq!(
        sidecar.seen("details")[0].headers.get("host").unwrap(),
        &format!("details:{port}")
    );
}

#[tokio::test]
async fn reviews_binary_reports_its_pod_name() {
    let listen = free_addr();
    let child = bookinfo()
        .args(["--service", "reviews", "--version", "v1"])
        .args(["--listen", &listen.to_string()])
        .args(["--outbound", "127.0.0.1:9"])
        .args(["--pod-name", "reviews-v1-abc12"])
        .env("CLUSTER_NAME", "east")
        .spawn()
        .unwrap();
    let _running = Running(child);
    wait_healthy(&format!("http://{listen}/health")).await;
    let (_, body) = get_text(&browser(), &format!("http://{listen}/reviews/0")).await;
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["podname"], "reviews-v1-abc12");
    assert_eq!(body["clustername"], "east");
}

#[test]
fn unknown_service_and_version_are_rejected_with_a_reason() {
    let output = bookinfo()
        .args([
            "--service",
            "catalog",
            "--listen",
            "127.0.0.1:0",
            "--outbound",
            "127.0.0.1:9",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown service \"catalog\""), "{stderr}");

    let output = bookinfo()
        .args(["--service", "ratings", "--version", "v2"])
        .args(["--listen", "127.0.0.1:0", "--outbound", "127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ratings has no version \"v2\"; this stand-in implements v1"),
        "{stderr}"
    );
}
