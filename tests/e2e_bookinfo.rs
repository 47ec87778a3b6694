//! Istio's "Intelligent Routing" tasks on Bookinfo, end to end: the stand-in apps behind real Envoy
//! sidecars and a real ingress gateway, every Envoy configured by Switchyard, each step applied with
//! `switchyard apply -f` and Istio's own sample files, in State-of-the-World and in Delta mode, over
//! plaintext and over mutual TLS (`demo --mtls`: every Envoy bound to its own certificate).
//!
//! The demo topology uses fixed loopback addresses (pods 127.0.N.x, the gateway on 127.0.0.1:8080), so
//! the tests take turns.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::browser::Browser;
use switchyard::certs::{self, Authority, Subject, Validity};
use switchyard::control_plane::{fingerprint, read_mesh};
use switchyard::demo::{Demo, DemoError, DemoOptions, DemoProxy};
use switchyard::envoy::{find_or_install, XdsMode};
use switchyard::xds::snapshot::aggregate_version;
use switchyard::xds::status::Mode;
use switchyard::xds::ResourceType;
use tokio::sync::Mutex;
use tokio::time::Instant;

static TOPOLOGY: Mutex<()> = Mutex::const_new(());

const SYNC_DEADLINE: Duration = Duration::from_secs(10);
/// How many times a proxy was measured catching up with a change (`/metrics`).
const CONVERGENCE_COUNT: &str = "switchyard_proxy_convergence_time_count";
const STARS: &str = "glyphicon glyphicon-star";
const REVIEWS_UNAVAILABLE: &str = "Sorry, product reviews are currently unavailable for this book.";
const RATINGS_UNAVAILABLE: &str = "Ratings service is currently unavailable";

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/istio-bookinfo")
}

/// A private copy of every file in `config/` (whatever its extension: the loader decides what is a spec).
fn config_copy() -> tempfile::TempDir {
    let config = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, config.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    config
}

fn envoy() -> PathBuf {
    find_or_install(None).unwrap_or_else(|e| {
        panic!("the end-to-end suite needs a real Envoy and none could be found or installed: {e}")
    })
}

/// A running demo over a private copy of `config/`.
struct Bookinfo {
    demo: Demo,
    config: tempfile::TempDir,
    gateway: String,
}

/// How the Envoys reach Switchyard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Plaintext,
    MutualTls,
}

impl Bookinfo {
    async fn start(mode: XdsMode, transport: Transport) -> Bookinfo {
        let config = config_copy();
        let mut options = DemoOptions::new(config.path(), envoy());
        options.mode = mode;
        options.xds = "127.0.0.1:0".parse().unwrap();
        // `apply --wait` asks it whether every Envoy acknowledged each change.
        options.admin = Some("127.0.0.1:0".parse().unwrap());
        options.mtls = transport == Transport::MutualTls;
        let demo = Demo::start(options).await.unwrap();
        if transport == Transport::MutualTls {
            // Every Envoy really came over TLS, with a certificate Switchyard accepted.
            for proxy in demo.proxies() {
                let handshakes = proxy
                    .process
                    .stat("cluster.xds_cluster.ssl.handshake")
                    .await
                    .unwrap()
                    .unwrap_or(0);
                assert!(handshakes >= 1, "{} did not connect over TLS", proxy.name);
            }
        }
        let gateway = demo
            .productpage_url()
            .trim_end_matches("/productpage")
            .to_string();
        Bookinfo {
            demo,
            config,
            gateway,
        }
    }

    /// `switchyard apply -f <sample> --wait`, then checks that all seven Envoys run the result.
    async fn apply(&self, sample: &str) {
        self.kubectl_like("apply", sample).await;
    }

    async fn delete(&self, sample: &str) {
        self.kubectl_like("delete", sample).await;
    }

    async fn kubectl_like(&self, verb: &str, sample: &str) {
        let mut status = self.demo.control_plane().status();
        let admin_addr = self.demo.control_plane().admin_addr().unwrap();
        let admin = admin_addr.to_string();
        let converged = support::metrics::scrape(admin_addr)
            .await
            .value(CONVERGENCE_COUNT);
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args([verb, "-f"])
            .arg(samples().join(sample))
            .arg("--config")
            .arg(self.config.path())
            .args(["--admin", &admin, "--wait", "--timeout", "10s"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "switchyard {verb} -f {sample} --wait failed:\n{}{stderr}",
            String::from_utf8_lossy(&output.stdout),
        );
        // The server accepted it and every Envoy it affects acknowledged it before `--wait` returned.
        assert!(
            stderr.contains("Accepted by the running Switchyard")
                && stderr.contains("acknowledged the change"),
            "{stderr}"
        );
        eprintln!(
            "{verb} {sample} --wait took {:?}: {}",
            started.elapsed(),
            stderr.trim().replace('\n', " / ")
        );
        // Each Envoy the change concerned is measured once, from the change to its last ACK of it: real Envoys
        // ask for endpoints after new clusters and acknowledge in their own order, and still converge.
        let affected: f64 = stderr
            .lines()
            .find_map(|l| l.strip_prefix("All ")?.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("how many proxies the change affected: {stderr}"));
        support::metrics::wait_for(admin_addr, "convergence", SYNC_DEADLINE, |scrape| {
            scrape.value(CONVERGENCE_COUNT) >= converged + affected
        })
        .await;
        let applied_at = Instant::now();
        // By content, not by revision: a late re-read of the files as they were before the command gets a
        // new revision too, and waiting for "any new revision" would then check the Envoys against the old
        // configuration.
        let resolved = read_mesh(&[self.config.path().to_path_buf()])
            .unwrap_or_else(|e| panic!("{verb} -f {sample} left an invalid directory: {e:#?}"));
        let expected = fingerprint(&resolved.mesh);
        let accepted = tokio::time::timeout(
            SYNC_DEADLINE,
            status.wait_for(|s| {
                s.is_current()
                    && s.accepted_fingerprint.as_ref().map(|f| f.get()) == Some(expected.as_str())
            }),
        )
        .await
        .is_ok();
        assert!(
            accepted,
            "{sample} was not accepted (expected fingerprint {expected}): {:?}",
            *status.borrow()
        );
        self.wait_all_in_sync().await;
        eprintln!(
            "{verb} {sample}: all Envoys in sync after {:?}",
            applied_at.elapsed()
        );
    }

    /// Every Envoy's config dump carries the route configuration versions Switchyard serves it now.
    async fn wait_all_in_sync(&self) {
        let generation = self.demo.control_plane().cache().current();
        let deadline = Instant::now() + SYNC_DEADLINE;
        for proxy in self.demo.proxies() {
            let status = self
                .demo
                .control_plane()
                .registry()
                .latest_by_node_id(&proxy.node_id)
                .unwrap_or_else(|| panic!("{} is not connected", proxy.name));
            let snapshot = generation.snapshot_for(&status.node()).unwrap();
            let routes = snapshot.all(ResourceType::Route);
            let sotw = status.mode == Mode::Sotw;
            // SotW versions a response (all route configurations at once); Delta versions each resource.
            // Envoy records a SotW response's version only on the route configurations whose content it
            // changed, so "every route configuration carries the latest response version" holds only while a
            // proxy has exactly one (Bookinfo's sidecars: port 9080; the gateway: its one server port). A
            // topology with more would make this check wrong, not flaky: fail here first.
            if sotw {
                assert_eq!(
                    routes.len(),
                    1,
                    "{}: the SotW version check assumes one route configuration per proxy, got {:?}",
                    proxy.name,
                    routes.iter().map(|r| &r.name).collect::<Vec<_>>()
                );
            }
            let response_version = aggregate_version(routes.iter().map(|r| r.as_ref()));
            let expected: BTreeMap<String, String> = routes
                .iter()
                .map(|r| {
                    let version = if sotw {
                        response_version.clone()
                    } else {
                        r.version.clone()
                    };
                    (r.name.clone(), version)
                })
                .collect();
            let mut seen = BTreeMap::new();
            while Instant::now() < deadline {
                seen = route_versions(&proxy.process.config_dump(false).await.unwrap());
                if seen == expected {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(
                seen, expected,
                "{} did not get the new routes in time",
                proxy.name
            );
        }
    }

    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    /// A browser session logged in as `user` (productpage keeps it in its session cookie).
    async fn login(&self, user: &str) -> reqwest::Client {
        let client = self.client();
        let response = client
            .post(format!("{}/login", self.gateway))
            .header("Referer", format!("{}/productpage", self.gateway))
            .form(&[("username", user), ("passwd", "password")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 302, "login as {user}");
        client
    }

    async fn page(&self, client: &reqwest::Client) -> Page {
        let started = Instant::now();
        let response = client
            .get(format!("{}/productpage", self.gateway))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let html = response.text().await.unwrap();
        assert!(html.contains("<title>Simple Bookstore App</title>"));
        Page {
            html,
            took: started.elapsed(),
        }
    }

    /// A counter of the productpage sidecar (the caller of reviews).
    async fn productpage_stat(&self, name: &str) -> u64 {
        let proxy = self.demo.proxy("productpage-v1").unwrap();
        proxy.process.stat(name).await.unwrap().unwrap_or(0)
    }
}

struct Page {
    html: String,
    took: Duration,
}

impl Page {
    fn stars(&self) -> usize {
        self.html.matches(STARS).count()
    }
    /// Filled stars sit in a container coloured like the real template's (`text-black-500` for reviews-v2,
    /// `text-red-500` for reviews-v3).
    fn stars_in(&self, color: &str) -> bool {
        self.stars() > 0 && self.html.contains(&format!("gap-x-1 text-{color}-500"))
    }
    fn black(&self) -> bool {
        self.stars_in("black")
    }
    fn red(&self) -> bool {
        self.stars_in("red")
    }
    fn served_by(&self) -> Option<&str> {
        let start = self.html.find("Reviews served by:")?;
        let rest = &self.html[start..];
        let dd = rest.find("<dd>")? + 4;
        let end = rest[dd..].find("</dd>")?;
        Some(&rest[dd..dd + end])
    }
}

fn route_versions(dump: &serde_json::Value) -> BTreeMap<String, String> {
    dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["dynamic_route_configs"].as_array().into_iter().flatten())
        .filter_map(|r| {
            Some((
                r["route_config"]["name"].as_str()?.to_string(),
                r["version_info"].as_str()?.to_string(),
            ))
        })
        .collect()
}

async fn request_routing(mode: XdsMode, transport: Transport) {
    let _turn = TOPOLOGY.lock().await;
    let bookinfo = Bookinfo::start(mode, transport).await;

    bookinfo.apply("virtual-service-all-v1.yaml").await;
    let anonymous = bookinfo.client();
    let jason = bookinfo.login("jason").await;
    for client in [&anonymous, &jason] {
        for _ in 0..5 {
            let page = bookinfo.page(client).await;
            assert_eq!(page.stars(), 0, "all-v1: no stars for anyone");
            assert_eq!(page.served_by(), Some("reviews-v1"));
        }
    }

    bookinfo.apply("virtual-service-reviews-test-v2.yaml").await;
    for _ in 0..5 {
        let page = bookinfo.page(&jason).await;
        assert!(page.black(), "reviews-test-v2: jason sees black stars");
        assert_eq!(page.served_by(), Some("reviews-v2"));
        assert!(page.html.contains(">jason<"), "the navbar shows jason");
    }
    // What productpage's sidecar runs, as `switchyard proxy-config` reads it from that Envoy.
    let routes = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["proxy-config", "routes", "productpage-v1", "--config"])
        .arg(bookinfo.config.path())
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout);
    assert!(
        routes
            .lines()
            .any(|l| l.contains("reviews.default.svc.cluster.local:9080")
                && l.contains("(+1 header)")
                && l.ends_with("reviews.default")),
        "{routes}"
    );
    let tom = bookinfo.login("tom").await;
    for client in [&anonymous, &tom] {
        for _ in 0..5 {
            let page = bookinfo.page(client).await;
            assert_eq!(page.stars(), 0, "reviews-test-v2: no stars for others");
        }
    }

    bookinfo.delete("virtual-service-all-v1.yaml").await;
    bookinfo.demo.shutdown().await;
}

async fn fault_injection(mode: XdsMode, transport: Transport) {
    let _turn = TOPOLOGY.lock().await;
    let bookinfo = Bookinfo::start(mode, transport).await;
    bookinfo.apply("virtual-service-all-v1.yaml").await;
    bookinfo.apply("virtual-service-reviews-test-v2.yaml").await;
    let anonymous = bookinfo.client();
    let jason = bookinfo.login("jason").await;

    // A 7 s delay on jason's calls to ratings: reviews-v2 would wait 10 s, but productpage gives up on
    // reviews after 3 s and one retry, so the page arrives after about 6 s with the reviews error.
    bookinfo
        .apply("virtual-service-ratings-test-delay.yaml")
        .await;
    let page = bookinfo.page(&jason).await;
    eprintln!("ratings-test-delay: jason's page took {:?}", page.took);
    assert!(
        page.took >= Duration::from_secs(5) && page.took <= Duration::from_secs(8),
        "jason's page took {:?}",
        page.took
    );
    assert!(page.html.contains(REVIEWS_UNAVAILABLE));
    let page = bookinfo.page(&anonymous).await;
    assert!(
        page.took < Duration::from_secs(2),
        "others are not delayed: {:?}",
        page.took
    );
    assert!(!page.html.contains(REVIEWS_UNAVAILABLE));

    // An HTTP 500 abort for jason: the page arrives at once, each review without its rating.
    bookinfo
        .apply("virtual-service-ratings-test-abort.yaml")
        .await;
    let page = bookinfo.page(&jason).await;
    assert!(
        page.took < Duration::from_secs(2),
        "abort is immediate: {:?}",
        page.took
    );
    assert!(page.html.contains(RATINGS_UNAVAILABLE));
    assert_eq!(page.served_by(), Some("reviews-v2"));
    let page = bookinfo.page(&anonymous).await;
    assert!(!page.html.contains(RATINGS_UNAVAILABLE));

    bookinfo.delete("virtual-service-all-v1.yaml").await;
    bookinfo.demo.shutdown().await;
}

async fn traffic_shifting(mode: XdsMode, transport: Transport) {
    let _turn = TOPOLOGY.lock().await;
    let bookinfo = Bookinfo::start(mode, transport).await;
    let client = bookinfo.client();

    bookinfo.apply("virtual-service-all-v1.yaml").await;
    for _ in 0..20 {
        assert_eq!(bookinfo.page(&client).await.stars(), 0, "all-v1: no stars");
    }

    bookinfo.apply("virtual-service-reviews-50-v3.yaml").await;
    let v1 = "cluster.outbound|9080|v1|reviews.default.svc.cluster.local.upstream_rq_total";
    let v3 = "cluster.outbound|9080|v3|reviews.default.svc.cluster.local.upstream_rq_total";
    let (v1_before, v3_before) = (
        bookinfo.productpage_stat(v1).await,
        bookinfo.productpage_stat(v3).await,
    );
    let (mut red, mut none) = (0u64, 0u64);
    for _ in 0..100 {
        let page = bookinfo.page(&client).await;
        assert!(!page.black(), "reviews-50-v3 never gives black stars");
        match page.served_by() {
            Some("reviews-v3") => {
                assert!(page.red());
                red += 1;
            }
            Some("reviews-v1") => {
                assert_eq!(page.stars(), 0);
                none += 1;
            }
            other => panic!("unexpected reviews instance {other:?}"),
        }
    }
    eprintln!("reviews-50-v3: red stars in {red} of 100 pages, none in {none}");
    assert!(
        (35..=65).contains(&red),
        "red stars in {red} of 100 requests"
    );
    // The caller's sidecar counted exactly what the pages showed.
    assert_eq!(bookinfo.productpage_stat(v3).await - v3_before, red);
    assert_eq!(bookinfo.productpage_stat(v1).await - v1_before, none);

    bookinfo.apply("virtual-service-reviews-v3.yaml").await;
    for _ in 0..30 {
        let page = bookinfo.page(&client).await;
        assert!(page.red(), "reviews-v3: red stars every time");
        assert_eq!(page.served_by(), Some("reviews-v3"));
    }

    bookinfo.delete("virtual-service-all-v1.yaml").await;
    bookinfo.demo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_routing_sotw() {
    request_routing(XdsMode::Sotw, Transport::Plaintext).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_routing_mtls_sotw() {
    request_routing(XdsMode::Sotw, Transport::MutualTls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_routing_delta() {
    request_routing(XdsMode::Delta, Transport::Plaintext).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_routing_mtls_delta() {
    request_routing(XdsMode::Delta, Transport::MutualTls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_sotw() {
    fault_injection(XdsMode::Sotw, Transport::Plaintext).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_mtls_sotw() {
    fault_injection(XdsMode::Sotw, Transport::MutualTls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_delta() {
    fault_injection(XdsMode::Delta, Transport::Plaintext).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_mtls_delta() {
    fault_injection(XdsMode::Delta, Transport::MutualTls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_shifting_sotw() {
    traffic_shifting(XdsMode::Sotw, Transport::Plaintext).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_shifting_mtls_sotw() {
    traffic_shifting(XdsMode::Sotw, Transport::MutualTls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_shifting_delta() {
    traffic_shifting(XdsMode::Delta, Transport::Plaintext).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_shifting_mtls_delta() {
    traffic_shifting(XdsMode::Delta, Transport::MutualTls).await;
}

/// What a person sees of the product page, measured in the browser: each filled star's rendered colour and
/// box, where the details and reviews columns sit, and who served the reviews.
const RENDERED: &str = r#"
    const box = (e) => { const r = e.getBoundingClientRect(); return {left: r.left, top: r.top, width: r.width, height: r.height}; };
    const stars = [...document.querySelectorAll('svg[data-star="filled"]')].map((s) => {
        const style = getComputedStyle(s);
        return Object.assign(box(s), {color: style.color, fill: style.fill});
    });
    return {
        stars: stars,
        details: box(document.getElementById('details')),
        reviews: box(document.getElementById('reviews')),
        served_by: (document.querySelector('#reviews dd') || {}).textContent,
    };
"#;

/// The stars as a person sees them, in a real headless Chromium, through the real gateway: black for
/// reviews-v2 (as jason, signed in through the page's own dialog), red for reviews-v3, each star a 20 px icon
/// in a row, details and reviews side by side. Without the page's stylesheet the first star is as wide as the
/// page and red stars render black.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stars_in_a_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let _turn = TOPOLOGY.lock().await;
    let bookinfo = Bookinfo::start(XdsMode::Sotw, Transport::Plaintext).await;
    let productpage = format!("{}/productpage", bookinfo.gateway);
    bookinfo.apply("virtual-service-all-v1.yaml").await;
    bookinfo.apply("virtual-service-reviews-test-v2.yaml").await;

    browser.goto(&productpage).await;
    browser.click(&browser.find("nav button").await).await;
    browser
        .type_into(&browser.find("input[name=username]").await, "jason")
        .await;
    browser
        .click(&browser.find("form button[type=submit]").await)
        .await;
    browser
        .wait_for("const u = document.getElementById('signed-in-user'); return u && u.textContent === 'jason';")
        .await;
    let black = browser.execute(RENDERED, serde_json::json!([])).await;
    check_rendered(&black, "reviews-v2", "rgb(0, 0, 0)");

    bookinfo.apply("virtual-service-reviews-v3.yaml").await;
    browser.goto(&productpage).await;
    let red = browser.execute(RENDERED, serde_json::json!([])).await;
    check_rendered(&red, "reviews-v3", "rgb(239, 68, 68)");

    browser.quit().await;
    bookinfo.demo.shutdown().await;
}

/// Nine filled stars (Reviewer1 5, Reviewer2 4) of `color`, 20 px square, in rows; details left of reviews.
fn check_rendered(page: &serde_json::Value, served_by: &str, color: &str) {
    eprintln!("{served_by} as rendered: {page}");
    assert_eq!(page["served_by"], served_by, "{page}");
    let stars = page["stars"].as_array().unwrap();
    assert_eq!(stars.len(), 9, "{page}");
    for star in stars {
        assert_eq!(star["color"], color, "a star's colour: {star}");
        assert_eq!(star["fill"], color, "a star's fill: {star}");
        assert_eq!(star["width"], 20.0, "a star's width: {star}");
        assert_eq!(star["height"], 20.0, "a star's height: {star}");
    }
    // The first review's five stars side by side, a small gap apart.
    for pair in stars[..5].windows(2) {
        assert_eq!(pair[0]["top"], pair[1]["top"], "{page}");
        let gap = pair[1]["left"].as_f64().unwrap() - pair[0]["left"].as_f64().unwrap();
        assert!((20.0..=30.0).contains(&gap), "stars {gap} px apart: {page}");
    }
    // Two columns, as in the real page.
    let (details, reviews) = (&page["details"], &page["reviews"]);
    assert_eq!(details["top"], reviews["top"], "{page}");
    assert!(
        details["left"].as_f64().unwrap() + details["width"].as_f64().unwrap()
            <= reviews["left"].as_f64().unwrap(),
        "{page}"
    );
}

/// Switchyard's stream id for a proxy and the Envoy's count of xDS connections: either changes on a
/// reconnect.
async fn connection(demo: &Demo, proxy: &DemoProxy) -> (u64, Option<u64>) {
    let stream = demo
        .control_plane()
        .registry()
        .latest_by_node_id(&proxy.node_id)
        .unwrap()
        .stream;
    let connections = proxy
        .process
        .stat("cluster.xds_cluster.upstream_cx_total")
        .await
        .unwrap();
    (stream, connections)
}

/// Switchyard's server certificate rotates while the seven Envoys are connected over mutual TLS: none of
/// them reconnects (same stream, no new xDS connection), and all of them get the next change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_server_certificate_loses_no_update() {
    let _turn = TOPOLOGY.lock().await;
    let bookinfo = Bookinfo::start(XdsMode::Sotw, Transport::MutualTls).await;
    let control_plane = bookinfo.demo.control_plane();
    let tls = control_plane.tls().expect("the demo runs with TLS");
    let mut before = BTreeMap::new();
    for proxy in bookinfo.demo.proxies() {
        before.insert(proxy.name.clone(), connection(&bookinfo.demo, proxy).await);
    }
    let old_certificate = tls.certificate();

    let certs_dir = bookinfo.demo.certs_dir().unwrap();
    let rotated_at = Instant::now();
    Authority::open(certs_dir)
        .unwrap()
        .issue_into(
            &certs_dir.server(),
            &Subject::Server(certs::default_server_names()),
            Validity::days(1),
        )
        .unwrap();
    let deadline = Instant::now() + SYNC_DEADLINE;
    // Accepted once; a reading between the key's and the certificate's rename may be rejected first.
    while tls.counters().reloads().0 < 1 {
        assert!(
            Instant::now() < deadline,
            "the rotated certificate was not loaded: reloads {:?}",
            tls.counters().reloads()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_ne!(tls.certificate(), old_certificate);
    eprintln!(
        "server certificate reloaded after {:?}",
        rotated_at.elapsed()
    );

    bookinfo.apply("virtual-service-all-v1.yaml").await;
    let page = bookinfo.page(&bookinfo.client()).await;
    assert_eq!(page.served_by(), Some("reviews-v1"));
    for proxy in bookinfo.demo.proxies() {
        assert_eq!(
            before[&proxy.name],
            connection(&bookinfo.demo, proxy).await,
            "{} reconnected across the rotation",
            proxy.name
        );
        assert_eq!(
            proxy
                .process
                .stat("control_plane.connected_state")
                .await
                .unwrap(),
            Some(1)
        );
    }
    bookinfo.demo.shutdown().await;
}

/// A process as `/proc/<pid>/stat` describes it.
#[derive(Debug)]
struct Proc {
    pid: u32,
    ppid: u32,
    comm: String,
    state: char,
}

fn proc_stat(pid: u32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may itself contain parentheses and spaces.
    let (head, tail) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_string();
    let mut fields = tail.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some(Proc {
        pid,
        ppid,
        comm,
        state,
    })
}

/// Every live (not zombie) process matching `filter`.
fn processes(filter: impl Fn(&Proc) -> bool) -> Vec<Proc> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(proc_stat)
        .filter(|p| p.state != 'Z' && filter(p))
        .collect()
}

/// Whether the process carries `marker` (`KEY=VALUE`) in its environment, which children inherit: it finds
/// a demo's Envoys even after they were orphaned and re-parented.
fn has_env(pid: u32, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()))
        .unwrap_or(false)
}

/// Kills what a failed test left behind, then says what it was.
fn kill_all(survivors: &[Proc]) -> String {
    for p in survivors {
        let _ = Command::new("kill")
            .args(["-KILL", &p.pid.to_string()])
            .status();
    }
    format!("{survivors:?}")
}

/// `switchyard demo` told to stop while it is still starting its Envoys: none of them may outlive it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_demo_starts_leaves_no_envoy() {
    let _turn = TOPOLOGY.lock().await;
    let config = config_copy();
    let logs = tempfile::tempdir().unwrap();
    let marker = format!(
        "SWITCHYARD_E2E_DEMO={}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    );
    let (key, value) = marker.split_once('=').unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("demo")
        .arg("--config")
        .arg(config.path())
        .args(["--xds", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--envoy"])
        .arg(envoy())
        .env(key, value)
        .stdout(std::fs::File::create(logs.path().join("stdout")).unwrap())
        .stderr(std::fs::File::create(logs.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let demo_pid = demo.id();
    let output = || {
        let read = |name: &str| std::fs::read_to_string(logs.path().join(name)).unwrap_or_default();
        format!(
            "--- demo stdout ---\n{}--- demo stderr ---\n{}",
            read("stdout"),
            read("stderr")
        )
    };
    let ours = |p: &Proc| p.comm == "envoy" && has_env(p.pid, &marker);

    // As soon as the first Envoy runs, well before all seven are up and in sync.
    let deadline = Instant::now() + SYNC_DEADLINE;
    while processes(|p| p.ppid == demo_pid && ours(p)).is_empty() {
        if Instant::now() >= deadline {
            let _ = demo.kill();
            panic!("the demo started no Envoy in time\n{}", output());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started_up = output().contains("Bookinfo is up");
    let status = Command::new("kill")
        .args(["-TERM", &demo_pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let exit = loop {
        if let Some(exit) = demo.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() >= deadline + SYNC_DEADLINE {
            let _ = demo.kill();
            let _ = demo.wait();
            panic!("the demo did not stop on SIGTERM\n{}", output());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The demo reaps each Envoy before it exits, so anything still running now was orphaned.
    let survivors = processes(ours);
    assert!(
        survivors.is_empty(),
        "Envoys outlived the demo: {}\n{}",
        kill_all(&survivors),
        output()
    );
    assert!(
        exit.success(),
        "the demo exited with {exit:?} (interrupted while starting: {})\n{}",
        !started_up,
        output()
    );
    eprintln!(
        "demo stopped on SIGTERM {} it was up",
        if started_up { "after" } else { "before" }
    );
}

/// `Demo::start` failing after some Envoys are running (a workload that is not Bookinfo's, last in
/// order) stops those Envoys before it returns the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_that_fails_midway_leaves_no_envoy() {
    let _turn = TOPOLOGY.lock().await;
    let config = config_copy();
    std::fs::write(
        config.path().join("zz-stranger.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: zz-stranger\nspec:\n  \
         address: 127.0.7.1\n  labels:\n    app: stranger\n  ports:\n    http: 9080\n",
    )
    .unwrap();
    let mut options = DemoOptions::new(config.path(), envoy());
    options.xds = "127.0.0.1:0".parse().unwrap();
    options.admin = None;
    let me = std::process::id();
    let result = Demo::start(options).await;
    let survivors = processes(|p| p.ppid == me && p.comm == "envoy");
    match result {
        Err(DemoError::NotBookinfo { workload, .. }) => assert_eq!(workload, "zz-stranger"),
        Err(other) => panic!("failed for another reason: {other}"),
        Ok(_) => panic!("a workload that is not Bookinfo's was started"),
    }
    assert!(
        survivors.is_empty(),
        "Envoys outlived the failed start: {}",
        kill_all(&survivors)
    );
}

/// Requests the product page over and over until stopped or dropped, as a few people refreshing would.
struct Traffic {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stopping: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Traffic {
    /// Requests at a time: enough for a few hundred requests in a few seconds on a busy machine.
    const CONCURRENCY: usize = 4;

    fn start(client: reqwest::Client, gateway: &str) -> Traffic {
        let url = format!("{gateway}/productpage");
        let stopping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..Self::CONCURRENCY)
            .map(|_| {
                let (client, url, stop) = (client.clone(), url.clone(), stopping.clone());
                tokio::spawn(async move {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        // Errors count as traffic too; the view under test is what measures them.
                        let _ = client.get(&url).send().await.map(|r| r.bytes());
                    }
                })
            })
            .collect();
        Traffic { tasks, stopping }
    }

    /// Stops after the requests in flight have been answered: every Envoy on their way has counted them then.
    async fn stop(mut self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        for task in self.tasks.drain(..) {
            task.await.unwrap();
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Bookinfo {
    /// `switchyard top -o json --once`, finding the Envoys through Switchyard's admin endpoint.
    async fn top(&self, args: &[&str]) -> serde_json::Value {
        let admin = self.demo.control_plane().admin_addr().unwrap().to_string();
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        command.arg("top").args(args).args([
            "-o",
            "json",
            "--once",
            "--interval",
            "3",
            "--admin",
            &admin,
        ]);
        let output = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "switchyard top failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

fn top_row<'a>(
    top: &'a serde_json::Value,
    list: &str,
    key: &str,
    value: &str,
) -> &'a serde_json::Value {
    top[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[key] == value)
        .unwrap_or_else(|| panic!("no {list} row with {key} = {value} in {top:#}"))
}

/// `switchyard top` while traffic flows: the 50/50 reviews split shows as two shares near one half, every
/// proxy is reachable and in sync, and the aborts injected for jason show on reviews-v2's sidecar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_shows_the_split_and_the_injected_faults() {
    let _turn = TOPOLOGY.lock().await;
    let bookinfo = Bookinfo::start(XdsMode::Sotw, Transport::Plaintext).await;
    bookinfo.apply("virtual-service-all-v1.yaml").await;
    bookinfo.apply("virtual-service-reviews-50-v3.yaml").await;

    let traffic = Traffic::start(bookinfo.client(), &bookinfo.gateway);
    let top = bookinfo.top(&["reviews"]).await;
    drop(traffic);
    eprintln!("top reviews under reviews-50-v3: {}", top["services"]);
    let services = top["services"].as_array().unwrap();
    assert!(
        services
            .iter()
            .all(|r| r["service"] == "reviews.default.svc.cluster.local"),
        "`top reviews` shows reviews only: {top:#}"
    );
    for subset in ["v1", "v3"] {
        let row = top_row(&top, "services", "subset", subset);
        let share = row["share"].as_f64().unwrap();
        assert!(
            (0.3..=0.7).contains(&share),
            "{subset}'s share is {share}: {top:#}"
        );
        assert!(row["requests"].as_u64().unwrap() >= 5, "{top:#}");
        assert_eq!(row["success_rate"].as_f64(), Some(1.0), "{top:#}");
    }
    let proxies = top["proxies"].as_array().unwrap();
    assert_eq!(proxies.len(), 7, "{top:#}");
    for p in proxies {
        assert_eq!(p["reachable"], true, "{p}");
        assert_eq!(p["sync"], "SYNCED", "{p}");
    }

    // jason goes to reviews-v2, whose calls to ratings are aborted with HTTP 500.
    bookinfo.apply("virtual-service-reviews-test-v2.yaml").await;
    bookinfo
        .apply("virtual-service-ratings-test-abort.yaml")
        .await;
    let traffic = Traffic::start(bookinfo.login("jason").await, &bookinfo.gateway);
    let top = bookinfo.top(&[]).await;
    drop(traffic);
    eprintln!("top under ratings-test-abort: {}", top["proxies"]);
    let reviews_v2 = top_row(&top, "proxies", "proxy", "reviews-v2.default");
    assert!(
        reviews_v2["aborts_injected"].as_u64().unwrap() >= 1,
        "no aborts on reviews-v2: {top:#}"
    );
    let productpage = top_row(&top, "proxies", "proxy", "productpage-v1.default");
    assert_eq!(productpage["aborts_injected"], 0, "{top:#}");

    bookinfo.delete("virtual-service-all-v1.yaml").await;
    bookinfo.demo.shutdown().await;
}

/// The dashboard's edges from one service (`arguments[0]`) to its subsets, as rendered: per subset the share
/// shown, the requests counted and how much of its bar is filled.
const EDGES: &str = r#"
    const out = {};
    for (const edge of document.querySelectorAll('#services li.edge')) {
        if (edge.dataset.service !== arguments[0]) continue;
        const width = (selector) => edge.querySelector(selector).getBoundingClientRect().width;
        out[edge.dataset.subset] = {
            share: edge.querySelector('.share').textContent,
            requests: Number(edge.querySelector('.requests').textContent),
            filled: width('.fill') / width('.bar'),
        };
    }
    return out;
"#;

/// The dashboard's proxies table: how many are SYNCED, whether the figures run, and one proxy's (`arguments[0]`)
/// row.
const PROXIES: &str = r#"
    const rows = [...document.querySelectorAll('#proxies tbody tr[data-proxy]')];
    const row = rows.find((r) => r.dataset.proxy === arguments[0]);
    const cells = row ? row.querySelectorAll('td') : [];
    return {
        rows: rows.length,
        synced: rows.filter((r) => r.dataset.sync === 'SYNCED').length,
        window: document.getElementById('window').textContent,
        live: document.getElementById('live').dataset.state,
        aborts: row ? Number(cells[3].textContent) : null,
        aborts_marked: row ? cells[3].classList.contains('fault') : null,
        faults: document.getElementById('faults').hidden ? null : document.getElementById('faults').textContent,
    };
"#;

/// What the page says about the spec: the rejection banner and the diagnostics listed.
const CONFIG: &str = r#"
    const banner = document.getElementById('rejected');
    return {
        banner: banner.hidden ? null : banner.querySelector('p').textContent,
        banner_errors: banner.hidden ? [] : [...banner.querySelectorAll('li')].map((d) => d.textContent),
        summary: document.getElementById('config-summary').textContent,
        diagnostics: [...document.querySelectorAll('#diagnostics li')].map((d) => d.textContent),
    };
"#;

impl Bookinfo {
    /// Requests to reviews v1 and v3 counted by their caller, productpage's sidecar.
    async fn reviews_requests(&self) -> (u64, u64) {
        let counter = |subset| {
            format!("cluster.outbound|9080|{subset}|reviews.default.svc.cluster.local.upstream_rq_total")
        };
        (
            self.productpage_stat(&counter("v1")).await,
            self.productpage_stat(&counter("v3")).await,
        )
    }

    /// The aborts a workload's sidecar injected, over its HTTP connection managers.
    async fn aborts_injected(&self, workload: &str) -> u64 {
        let proxy = self.demo.proxy(workload).unwrap();
        let stats = proxy.process.stats().await.unwrap();
        stats
            .iter()
            .filter(|(name, _)| name.ends_with(".fault.aborts_injected"))
            .map(|(_, value)| value)
            .sum()
    }
}

/// A screenshot as PNG, of the browser's whole 1280 px wide window, and not blank.
fn check_png(png: &[u8], path: &Path) {
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert_eq!(width, 1280, "{}", path.display());
    assert!(
        png.len() > 20_000,
        "{} is nearly empty: {} bytes",
        path.display(),
        png.len()
    );
    eprintln!("screenshot: {} ({} bytes)", path.display(), png.len());
}

/// The README's traffic-shifting and fault-injection steps under steady traffic, watched on the dashboard at
/// the admin address in a real headless Chromium, loaded once and never reloaded: every change arrives by
/// itself. Under reviews-50-v3 both subsets show about half, and once the traffic stops the page shows exactly
/// what productpage's sidecar counted (its window reaches back to before the traffic began); under reviews-v3,
/// v3 reaches 100%; under ratings-test-abort, reviews-v2's row shows exactly the aborts its sidecar counted;
/// a broken spec file shows as a REJECTED revision, with the revision still served and the diagnostic.
/// Screenshots of each step are left in the target directory (`dashboard/*.png`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let _turn = TOPOLOGY.lock().await;
    let started = Instant::now();
    let bookinfo = Bookinfo::start(XdsMode::Sotw, Transport::Plaintext).await;
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let screenshot = |name: &str| {
        let path = shots.join(name);
        let browser = &browser;
        async move {
            let png = browser.screenshot(&path).await;
            check_png(&png, &path);
        }
    };
    let reviews = serde_json::json!(["reviews.default.svc.cluster.local"]);
    bookinfo.apply("virtual-service-all-v1.yaml").await;
    bookinfo.apply("virtual-service-reviews-50-v3.yaml").await;

    let admin = bookinfo.demo.control_plane().admin_addr().unwrap();
    browser.goto(&format!("http://{admin}/")).await;
    browser
        .wait_until(
            "seven proxies in sync and the figures running",
            PROXIES,
            serde_json::json!(["reviews-v2.default"]),
            |page| {
                (page["synced"] == 7 && page["window"] != "" && page["live"] == "live")
                    .then_some(())
            },
        )
        .await;

    // 50/50: both subsets near one half while the traffic runs.
    let before = bookinfo.reviews_requests().await;
    let traffic = Traffic::start(bookinfo.client(), &bookinfo.gateway);
    let running = browser
        .wait_until(
            "both reviews subsets to carry traffic",
            EDGES,
            reviews.clone(),
            |edges| {
                let requests = |subset: &str| edges[subset]["requests"].as_u64().unwrap_or(0);
                // 60 calls or more: a share outside 30-70% is then a wrong split, not chance.
                (requests("v1") >= 30 && requests("v3") >= 30).then(|| edges.clone())
            },
        )
        .await;
    screenshot("reviews-50-v3.png").await;
    eprintln!("the dashboard under reviews-50-v3, traffic running: {running}");
    for subset in ["v1", "v3"] {
        let edge = &running[subset];
        let share: f64 = edge["share"]
            .as_str()
            .unwrap()
            .trim_end_matches('%')
            .parse()
            .unwrap();
        assert!((30.0..=70.0).contains(&share), "{subset}: {running}");
        let filled = edge["filled"].as_f64().unwrap();
        assert!(
            (filled * 100.0 - share).abs() <= 2.0,
            "{subset}'s bar: {running}"
        );
    }
    traffic.stop().await;
    let after = bookinfo.reviews_requests().await;
    let (v1, v3) = (after.0 - before.0, after.1 - before.1);
    let shown = browser
        .wait_until(
            &format!("the page to show the counters' {v1} and {v3} requests"),
            EDGES,
            reviews.clone(),
            |edges| {
                (edges["v1"]["requests"] == v1 && edges["v3"]["requests"] == v3)
                    .then(|| edges.clone())
            },
        )
        .await;
    let share = |n: u64| format!("{}%", (n as f64 / (v1 + v3) as f64 * 100.0).round());
    assert_eq!(shown["v1"]["share"], share(v1), "{shown}");
    assert_eq!(shown["v3"]["share"], share(v3), "{shown}");
    eprintln!(
        "after the traffic: productpage's sidecar counted v1 {v1}, v3 {v3}; the page shows {shown}"
    );

    // 100% v3, under traffic.
    let traffic = Traffic::start(bookinfo.client(), &bookinfo.gateway);
    bookinfo.apply("virtual-service-reviews-v3.yaml").await;
    let all_v3 = browser
        .wait_until("v3 to reach 100%", EDGES, reviews.clone(), |edges| {
            (edges["v3"]["share"] == "100%").then(|| edges.clone())
        })
        .await;
    screenshot("reviews-v3.png").await;
    traffic.stop().await;
    eprintln!("the dashboard under reviews-v3: {all_v3}");

    // jason's calls to ratings aborted by reviews-v2's sidecar.
    bookinfo.apply("virtual-service-reviews-test-v2.yaml").await;
    bookinfo
        .apply("virtual-service-ratings-test-abort.yaml")
        .await;
    let reviews_v2 = serde_json::json!(["reviews-v2.default"]);
    let before = bookinfo.aborts_injected("reviews-v2").await;
    let traffic = Traffic::start(bookinfo.login("jason").await, &bookinfo.gateway);
    browser
        .wait_until("reviews-v2's aborts", PROXIES, reviews_v2.clone(), |page| {
            (page["aborts"].as_u64() >= Some(5) && page["aborts_marked"] == true).then_some(())
        })
        .await;
    browser
        .execute(
            "document.getElementById('proxies').scrollIntoView()",
            serde_json::json!([]),
        )
        .await;
    screenshot("ratings-test-abort.png").await;
    browser
        .execute("window.scrollTo(0, 0)", serde_json::json!([]))
        .await;
    traffic.stop().await;
    let aborts = bookinfo.aborts_injected("reviews-v2").await - before;
    let shown = browser
        .wait_until(
            &format!("the page to show the {aborts} aborts reviews-v2's sidecar counted"),
            PROXIES,
            reviews_v2,
            |page| (page["aborts"] == aborts).then(|| page.clone()),
        )
        .await;
    // Aborted calls reach no cluster: the page says above the picture who injected them.
    assert_eq!(
        shown["faults"],
        format!("Faults injected in the window: {aborts} aborts by reviews-v2.default."),
        "{shown}"
    );
    eprintln!("reviews-v2's sidecar injected {aborts} aborts; the page shows as many");

    // A broken file: the revision is rejected, the last good one still served, the file and line named.
    let served = bookinfo
        .demo
        .control_plane()
        .status()
        .borrow()
        .accepted_revision
        .unwrap();
    std::fs::write(
        bookinfo.config.path().join("broken.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: broken\nspec:\n  hosts: [ratings]\n  http:\n  - route:\n    - destination:\n        host: ratings\n        subset: v9\n",
    )
    .unwrap();
    let config = browser
        .wait_until(
            "the rejected revision",
            CONFIG,
            serde_json::json!([]),
            |page| page["banner"].as_str().is_some().then(|| page.clone()),
        )
        .await;
    screenshot("rejected.png").await;
    eprintln!("the dashboard with a broken file: {config}");
    let status = bookinfo.demo.control_plane().status().borrow().clone();
    assert_eq!(status.accepted_revision, Some(served));
    let errors = status.errors.len();
    assert_eq!(
        config["banner"],
        format!(
            "Revision {} REJECTED ({errors} error{}): proxies keep revision {served}.",
            status.revision,
            if errors == 1 { "" } else { "s" }
        )
    );
    let diagnostics = config["diagnostics"].as_array().unwrap();
    assert!(
        diagnostics.iter().any(|d| {
            let d = d.as_str().unwrap();
            d.contains("broken.yaml:11") && d.contains("spec.http[0].route[0].destination.subset")
        }),
        "{config}"
    );
    // The banner lists the errors that rejected it.
    assert_eq!(
        config["banner_errors"].as_array().unwrap().len(),
        errors,
        "{config}"
    );

    browser.quit().await;
    bookinfo.demo.shutdown().await;
    eprintln!("the dashboard test took {:?}", started.elapsed());
}
