//! The three Istio Bookinfo tasks, asserted as behaviour on the translated config of the proxy that routes each
//! call (productpage's sidecar calls reviews; the reviews sidecars call ratings; the gateway takes client traffic).

mod support;

use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use support::simulate::{simulate, Call, Destination, Miss};
use support::{golden, simulate};
use switchyard::mesh::{self, Proxy};
use switchyard::translate::{self, Resources};

const REVIEWS: &str = "reviews.default.svc.cluster.local";
const RATINGS: &str = "ratings.default.svc.cluster.local";

/// Resources for the proxy `proxy` (a name from bookinfo-proxies.yaml) with the base mesh plus Istio `samples`.
fn resources(samples: &[&str], proxy: &str) -> Resources {
    let mut inputs = vec![
        "bookinfo-mesh.yaml".to_owned(),
        "istio:destination-rule-all.yaml".into(),
        "istio:bookinfo-gateway.yaml".into(),
    ];
    inputs.extend(samples.iter().map(|s| format!("istio:{s}")));
    let fixtures = golden::golden_dir().join("fixtures");
    let resolved = mesh::resolve(&golden::load_inputs(&fixtures, &inputs)).expect("resolve");
    let proxies: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(fixtures.join("bookinfo-proxies.yaml")).expect("proxies"),
    )
    .expect("yaml");
    let node = golden::node_from_yaml(&proxies[proxy]);
    let r = translate::translate(
        &resolved.mesh,
        &Proxy::identify(&resolved.mesh, &node).expect("identify"),
    );
    r.check_consistent().expect("consistent");
    r
}

/// An outbound call from workload `n` (1..6): apps send to their sidecar's outbound IP, `127.0.N.3:9080`.
fn call(r: &Resources, n: u8, host: &str, headers: &[(&str, &str)]) -> Result<simulate::Hit, Miss> {
    let ip = format!("127.0.{n}.3");
    simulate(
        r,
        &Call {
            ip: &ip,
            port: 9080,
            host,
            path: "/reviews/0",
            headers,
        },
    )
}

fn cluster(port: u32, subset: &str, host: &str) -> Destination {
    Destination::Cluster(format!("outbound|{port}|{subset}|{host}"))
}

const JASON: &[(&str, &str)] = &[("end-user", "jason")];

#[test]
fn without_routing_rules_services_use_the_default_route() {
    let r = resources(&[], "productpage-v1");
    let hit = call(&r, 1, "reviews:9080", &[]).expect("hit");
    assert_eq!(
        (hit.route.as_str(), hit.destination),
        ("default", cluster(9080, "", REVIEWS))
    );
    assert_eq!(
        hit.timeout_seconds,
        Some(0),
        "Istio disables Envoy's 15 s default timeout"
    );
}

#[test]
fn host_forms_and_unknown_hosts() {
    let r = resources(&["virtual-service-all-v1.yaml"], "productpage-v1");
    for host in [
        "reviews",
        "reviews:9080",
        "reviews.default",
        "reviews.default.svc",
        "reviews.default.svc.cluster.local:9080",
        "reviews.default.svc.cluster.local.",
    ] {
        assert_eq!(
            call(&r, 1, host, &[]).expect(host).virtual_host,
            format!("{REVIEWS}:9080"),
            "{host}"
        );
    }
    assert_eq!(call(&r, 1, "example.com", &[]), Err(Miss::VirtualHost));
}

#[test]
fn request_routing_all_v1() {
    let r = resources(&["virtual-service-all-v1.yaml"], "productpage-v1");
    assert_eq!(
        call(&r, 1, "reviews:9080", JASON).expect("hit").destination,
        cluster(9080, "v1", REVIEWS)
    );
    assert_eq!(
        call(&r, 1, "details:9080", &[]).expect("hit").destination,
        cluster(9080, "v1", "details.default.svc.cluster.local")
    );
}

#[test]
fn request_routing_jason_to_v2() {
    let r = resources(
        &[
            "virtual-service-all-v1.yaml",
            "virtual-service-reviews-test-v2.yaml",
        ],
        "productpage-v1",
    );
    assert_eq!(
        call(&r, 1, "reviews:9080", JASON).expect("hit").destination,
        cluster(9080, "v2", REVIEWS)
    );
    assert_eq!(
        call(&r, 1, "reviews:9080", &[("end-user", "mallory")])
            .expect("hit")
            .destination,
        cluster(9080, "v1", REVIEWS)
    );
    assert_eq!(
        call(&r, 1, "reviews:9080", &[]).expect("hit").destination,
        cluster(9080, "v1", REVIEWS)
    );
}

#[test]
fn delay_fault_for_jason_is_injected_by_the_reviews_sidecar() {
    let inputs = [
        "virtual-service-all-v1.yaml",
        "virtual-service-reviews-test-v2.yaml",
        "virtual-service-ratings-test-delay.yaml",
    ];
    let r = resources(&inputs, "reviews-v2");
    let hit = call(&r, 4, "ratings:9080", JASON).expect("hit");
    assert_eq!(hit.destination, cluster(9080, "v1", RATINGS));
    let delay = hit.fault.and_then(|f| f.delay).expect("delay");
    assert_eq!(
        delay.percentage.map(|p| (p.numerator, p.denominator)),
        Some((1_000_000, 2))
    );
    assert!(
        matches!(delay.fault_delay_secifier, Some(FaultDelaySecifier::FixedDelay(d)) if d.seconds == 7)
    );
    assert_eq!(call(&r, 4, "ratings:9080", &[]).expect("hit").fault, None);
}

#[test]
fn abort_fault_for_jason() {
    let inputs = [
        "virtual-service-all-v1.yaml",
        "virtual-service-reviews-test-v2.yaml",
        "virtual-service-ratings-test-abort.yaml",
    ];
    let r = resources(&inputs, "reviews-v2");
    let abort = call(&r, 4, "ratings:9080", JASON)
        .expect("hit")
        .fault
        .and_then(|f| f.abort)
        .expect("abort");
    assert_eq!(abort.error_type, Some(ErrorType::HttpStatus(500)));
    assert_eq!(
        call(&r, 4, "ratings:9080", &[("end-user", "other")])
            .expect("hit")
            .fault,
        None
    );
}

#[test]
fn traffic_shifting_50_50_then_all_v3() {
    let r = resources(
        &[
            "virtual-service-all-v1.yaml",
            "virtual-service-reviews-50-v3.yaml",
        ],
        "productpage-v1",
    );
    assert_eq!(
        call(&r, 1, "reviews:9080", &[]).expect("hit").destination,
        Destination::Weighted(vec![
            (format!("outbound|9080|v1|{REVIEWS}"), 50),
            (format!("outbound|9080|v3|{REVIEWS}"), 50)
        ])
    );
    let r = resources(
        &[
            "virtual-service-all-v1.yaml",
            "virtual-service-reviews-v3.yaml",
        ],
        "productpage-v1",
    );
    assert_eq!(
        call(&r, 1, "reviews:9080", &[]).expect("hit").destination,
        cluster(9080, "v3", REVIEWS)
    );
}

#[test]
fn the_gateway_routes_bookinfo_paths_to_productpage_and_404s_the_rest() {
    let r = resources(&["virtual-service-all-v1.yaml"], "istio-ingressgateway");
    let gw = |path: &'static str| {
        simulate(
            &r,
            &Call {
                ip: "127.0.0.1",
                port: 8080,
                host: "localhost:8080",
                path,
                headers: &[],
            },
        )
    };
    for path in [
        "/productpage",
        "/static/img/izzy.png",
        "/login",
        "/logout",
        "/api/v1/products/0/reviews",
    ] {
        assert_eq!(
            gw(path).expect(path).destination,
            cluster(9080, "", "productpage.default.svc.cluster.local"),
            "{path}"
        );
    }
    assert_eq!(gw("/productpage/x"), Err(Miss::Route));
    assert_eq!(gw("/"), Err(Miss::Route));
}

#[test]
fn inbound_listener_sends_to_the_local_app() {
    let r = resources(&[], "reviews-v3");
    let hit = simulate(
        &r,
        &Call {
            ip: "127.0.5.1",
            port: 9080,
            host: "reviews:9080",
            path: "/reviews/0",
            headers: &[],
        },
    )
    .expect("hit");
    assert_eq!(
        hit.destination,
        Destination::Cluster("inbound|9080||".into())
    );
    let inbound = r
        .clusters
        .iter()
        .find(|c| c.name == "inbound|9080||")
        .expect("inbound cluster");
    let rendered = golden::render(std::slice::from_ref(inbound));
    assert!(rendered.contains("address: 127.0.5.2"), "{rendered}");
}
