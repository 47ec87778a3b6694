//! Gateway virtual hosts: every host a VirtualService shares with a server gets one, and VirtualServices that
//! meet on a host are merged as Istio merges them (namespace/name order, catch-all routes last).

mod support;

use support::golden;
use support::simulate::{simulate, Call, Destination, Miss};
use switchyard::mesh::{self, Proxy};
use switchyard::spec;
use switchyard::translate::{self, Resources};

const GATEWAY: &str = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: gw\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 8080, name: http, protocol: HTTP}\n    hosts: [a.com, b.com]\n";

fn vs(name: &str, body: &str) -> String {
    format!("---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\nspec:\n  gateways: [gw]\n{body}")
}

/// The ingress gateway's resources for the Bookinfo mesh plus `yaml`.
fn gateway_resources(yaml: &str) -> Resources {
    let fixtures = golden::golden_dir().join("fixtures");
    let config = golden::load_inputs(&fixtures, &["bookinfo-mesh.yaml".to_owned()])
        .overlay(spec::load_str("test.yaml", yaml).expect("test input loads"));
    let resolved = mesh::resolve(&config).expect("resolve");
    let proxies: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(fixtures.join("bookinfo-proxies.yaml")).expect("proxies"),
    )
    .expect("yaml");
    let node = golden::node_from_yaml(&proxies["istio-ingressgateway"]);
    let r = translate::translate(
        &resolved.mesh,
        &Proxy::identify(&resolved.mesh, &node).expect("identify"),
    );
    r.check_consistent().expect("consistent");
    r
}

fn get(r: &Resources, host: &str, path: &str) -> Result<Destination, Miss> {
    simulate(
        r,
        &Call {
            ip: "127.0.0.1",
            port: 8080,
            host,
            path,
            headers: &[],
        },
    )
    .map(|hit| hit.destination)
}

fn cluster(service: &str) -> Destination {
    Destination::Cluster(format!(
        "outbound|9080||{service}.default.svc.cluster.local"
    ))
}

fn domains(r: &Resources) -> Vec<(String, Vec<String>)> {
    let config = r
        .routes
        .iter()
        .find(|c| c.name == "http.8080")
        .unwrap_or_else(|| {
            panic!(
                "no route config http.8080: {:?}",
                r.routes.iter().map(|c| &c.name).collect::<Vec<_>>()
            )
        });
    config
        .virtual_hosts
        .iter()
        .map(|v| (v.name.clone(), v.domains.clone()))
        .collect()
}

#[test]
fn a_wildcard_virtual_service_gets_every_server_host() {
    let yaml = format!(
        "{GATEWAY}{}",
        vs(
            "all",
            "  hosts: ['*']\n  http:\n  - route:\n    - destination: {host: productpage}\n"
        )
    );
    let r = gateway_resources(&yaml);
    assert_eq!(
        domains(&r),
        vec![
            ("a.com:8080".to_owned(), vec!["a.com".to_owned()]),
            ("b.com:8080".to_owned(), vec!["b.com".to_owned()]),
        ]
    );
    assert_eq!(get(&r, "a.com", "/x"), Ok(cluster("productpage")));
    assert_eq!(get(&r, "b.com", "/x"), Ok(cluster("productpage")));
    assert_eq!(get(&r, "c.com", "/x"), Err(Miss::VirtualHost));
}

#[test]
fn virtual_services_meeting_on_a_host_are_merged_in_name_order_with_catch_alls_last() {
    // `a-catchall` sorts first and ends in a catch-all; `b-wild`'s specific route still wins on a.com, and b.com
    // gets `b-wild` alone.
    let yaml = format!(
        "{GATEWAY}{}{}",
        vs(
            "b-wild",
            "  hosts: ['*']\n  http:\n  - match:\n    - uri: {prefix: /special}\n    route:\n    - destination: {host: details}\n"
        ),
        vs(
            "a-catchall",
            "  hosts: [a.com]\n  http:\n  - match:\n    - uri: {prefix: /reviews}\n    route:\n    - destination: {host: reviews}\n  - route:\n    - destination: {host: productpage}\n"
        ),
    );
    let r = gateway_resources(&yaml);
    assert_eq!(get(&r, "a.com", "/special"), Ok(cluster("details")));
    assert_eq!(get(&r, "a.com", "/reviews/1"), Ok(cluster("reviews")));
    assert_eq!(get(&r, "a.com", "/other"), Ok(cluster("productpage")));
    assert_eq!(get(&r, "b.com", "/special"), Ok(cluster("details")));
    assert_eq!(get(&r, "b.com", "/other"), Err(Miss::Route));

    let config = r
        .routes
        .iter()
        .find(|c| c.name == "http.8080")
        .expect("http.8080");
    let a = config
        .virtual_hosts
        .iter()
        .find(|v| v.name == "a.com:8080")
        .expect("a.com vhost");
    let paths: Vec<String> = a
        .routes
        .iter()
        .map(|route| {
            format!(
                "{:?}",
                route
                    .r#match
                    .as_ref()
                    .and_then(|m| m.path_specifier.clone())
            )
        })
        .collect();
    assert_eq!(
        paths.len(),
        3,
        "each VirtualService contributes once: {paths:?}"
    );
}

#[test]
fn the_same_host_in_two_gateway_virtual_services_is_merged_not_an_error() {
    let yaml = format!(
        "{GATEWAY}{}{}",
        vs(
            "first",
            "  hosts: [a.com]\n  http:\n  - match:\n    - uri: {prefix: /one}\n    route:\n    - destination: {host: details}\n"
        ),
        vs(
            "second",
            "  hosts: [a.com]\n  http:\n  - match:\n    - uri: {prefix: /two}\n    route:\n    - destination: {host: reviews}\n"
        ),
    );
    let r = gateway_resources(&yaml);
    assert_eq!(get(&r, "a.com", "/one"), Ok(cluster("details")));
    assert_eq!(get(&r, "a.com", "/two"), Ok(cluster("reviews")));
}
