//! DestinationRule policies merge as Istio's `MergeSubsetTrafficPolicy` does, the merged policy becomes the
//! cluster (and route hash policy) fields Istio would set, DNS ServiceEntries get the endpoints Istio gives them,
//! and every connection manager accepts WebSocket upgrades.

mod support;

use std::fs;
use std::sync::Arc;
use support::golden;

use envoy_types::pb::envoy::config::cluster::v3::{cluster::LbPolicy, Cluster};
use envoy_types::pb::envoy::config::listener::v3::filter;
use envoy_types::pb::envoy::config::route::v3::route;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use prost::Message;
use switchyard::mesh::{self, LoadBalancer, Mesh, Proxy};
use switchyard::spec;
use switchyard::translate;

const REVIEWS: &str = "reviews.default.svc.cluster.local";

fn mesh_with(yaml: &str) -> Arc<Mesh> {
    let fixtures = golden::golden_dir().join("fixtures");
    let base = spec::load_str(
        "mesh.yaml",
        &fs::read_to_string(fixtures.join("bookinfo-mesh.yaml")).expect("fixture"),
    )
    .expect("fixture loads");
    let config = base.overlay(spec::load_str("test.yaml", yaml).expect("test input loads"));
    mesh::resolve(&config).expect("resolves").mesh
}

/// The DestinationRule used by every test here: rule-wide ROUND_ROBIN + outlier detection, a rule port-level
/// block for 9080 with RANDOM only, and subsets with and without their own policies.
const DR: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection:
      consecutive5xxErrors: 5
      maxEjectionPercent: 0
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {simple: RANDOM}
      outlierDetection:
        consecutive5xxErrors: 3
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      connectionPool:
        tcp: {maxConnections: 9}
  - name: v3
    labels: {version: v3}
    trafficPolicy:
      loadBalancer: {simple: LEAST_REQUEST}
      portLevelSettings:
      - port: {number: 9080}
        connectionPool:
          tcp: {maxConnections: 7}
"#;

#[test]
fn rule_port_level_replaces_the_rule_settings_as_a_whole() {
    let mesh = mesh_with(DR);
    let p = mesh.policy_for(REVIEWS, None, 9080);
    assert_eq!(p.load_balancer, Some(LoadBalancer::Random));
    let o = p.outlier_detection.expect("port-level outlier detection");
    assert_eq!(o.consecutive_5xx_errors, Some(3));
    // Not inherited from the rule level.
    assert_eq!(o.max_ejection_percent, None);
    assert_eq!(p.connection_pool, None);
}

#[test]
fn subset_settings_override_the_rule_port_level_field_by_field() {
    let mesh = mesh_with(DR);
    let p = mesh.policy_for(REVIEWS, Some("v2"), 9080);
    // The rule's port-level block is the base (it used to be ignored when the subset had a policy)...
    assert_eq!(p.load_balancer, Some(LoadBalancer::Random));
    assert_eq!(
        p.outlier_detection.and_then(|o| o.consecutive_5xx_errors),
        Some(3)
    );
    // ...and the subset's own field wins.
    assert_eq!(p.connection_pool.and_then(|c| c.max_connections), Some(9));
    // A subset without a policy gets exactly the base.
    assert_eq!(
        mesh.policy_for(REVIEWS, Some("v1"), 9080),
        mesh.policy_for(REVIEWS, None, 9080)
    );
}

#[test]
fn subset_port_level_replaces_everything_below_it() {
    let mesh = mesh_with(DR);
    let p = mesh.policy_for(REVIEWS, Some("v3"), 9080);
    assert_eq!(p.connection_pool.and_then(|c| c.max_connections), Some(7));
    // Neither the subset's own loadBalancer nor the rule's outlier detection survives.
    assert_eq!(p.load_balancer, None);
    assert_eq!(p.outlier_detection, None);
}

fn resources(mesh: &Mesh, proxy: &str) -> translate::Resources {
    let fixtures = golden::golden_dir().join("fixtures");
    let proxies: serde_yaml::Value = serde_yaml::from_str(
        &fs::read_to_string(fixtures.join("bookinfo-proxies.yaml")).expect("proxies"),
    )
    .expect("yaml");
    let node = golden::node_from_yaml(&proxies[proxy]);
    translate::translate(mesh, &Proxy::identify(mesh, &node).expect("identify"))
}

fn clusters(mesh: &Mesh) -> Vec<Cluster> {
    resources(mesh, "productpage-v1").clusters
}

fn named<'a>(clusters: &'a [Cluster], name: &str) -> &'a Cluster {
    clusters
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no cluster {name}"))
}

#[test]
fn outlier_detection_sets_the_panic_threshold_and_leaves_zero_max_ejection_unset() {
    let mesh = mesh_with(DR);
    let all = clusters(&mesh);
    let v2 = named(&all, &format!("outbound|9080|v2|{REVIEWS}"));
    assert_eq!(v2.lb_policy, LbPolicy::Random as i32);
    let threshold = v2
        .common_lb_config
        .as_ref()
        .and_then(|c| c.healthy_panic_threshold.as_ref())
        .expect("healthy_panic_threshold with outlier detection");
    assert_eq!(threshold.value, 0.0);
    let o = v2.outlier_detection.as_ref().expect("outlier detection");
    assert_eq!(o.consecutive_5xx.as_ref().map(|v| v.value), Some(3));
    assert_eq!(o.max_ejection_percent, None);

    let v3 = named(&all, &format!("outbound|9080|v3|{REVIEWS}"));
    assert!(v3.outlier_detection.is_none());
    assert!(v3.common_lb_config.is_none());
}

#[test]
fn zero_max_ejection_percent_is_left_to_envoy() {
    let mesh = mesh_with(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: ratings
spec:
  host: ratings
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 1
      maxEjectionPercent: 0
      minHealthPercent: 30
"#,
    );
    let all = clusters(&mesh);
    let c = named(&all, "outbound|9080||ratings.default.svc.cluster.local");
    let o = c.outlier_detection.as_ref().expect("outlier detection");
    assert_eq!(o.max_ejection_percent, None);
    assert_eq!(
        c.common_lb_config
            .as_ref()
            .and_then(|c| c.healthy_panic_threshold.as_ref())
            .map(|p| p.value),
        Some(30.0)
    );
}

#[test]
fn dns_service_entry_without_endpoints_resolves_each_host() {
    let mesh = mesh_with(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: external
spec:
  hosts: [api.example.com, www.example.com]
  location: MESH_EXTERNAL
  ports:
  - {number: 8443, name: http, protocol: HTTP, targetPort: 443}
  - {number: 80, name: http-plain, protocol: HTTP}
  resolution: DNS
"#,
    );
    let all = clusters(&mesh);
    for (host, port, target) in [
        ("api.example.com", 8443, 443),
        ("api.example.com", 80, 80),
        ("www.example.com", 8443, 443),
    ] {
        let c = named(&all, &format!("outbound|{port}||{host}"));
        let cla = c.load_assignment.as_ref().expect("inline endpoints");
        let addresses: Vec<(String, u32)> = cla
            .endpoints
            .iter()
            .flat_map(|l| &l.lb_endpoints)
            .filter_map(|e| match &e.host_identifier {
                Some(envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier::Endpoint(ep)) => {
                    match ep.address.as_ref()?.address.as_ref()? {
                        envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(s) => {
                            match s.port_specifier {
                                Some(envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(p)) => Some((s.address.clone(), p)),
                                _ => None,
                            }
                        }
                        _ => None,
                    }
                }
                _ => None,
            })
            .collect();
        assert_eq!(addresses, [(host.to_owned(), target)], "{}", c.name);
    }
}

#[test]
fn consistent_hash_routes_drop_the_previous_hosts_retry_predicate() {
    let mesh = mesh_with(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: ratings
spec:
  host: ratings
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
"#,
    );
    let r = resources(&mesh, "reviews-v2");
    let routes: Vec<_> = r
        .routes
        .iter()
        .flat_map(|rc| &rc.virtual_hosts)
        .filter(|vh| vh.name.starts_with("ratings.default.svc.cluster.local:"))
        .flat_map(|vh| &vh.routes)
        .collect();
    assert!(!routes.is_empty());
    for route in routes {
        let Some(route::Action::Route(action)) = &route.action else {
            panic!("not a route action: {route:?}");
        };
        assert_eq!(action.hash_policy.len(), 1, "{route:?}");
        let retry = action.retry_policy.as_ref().expect("default retry policy");
        assert!(retry.retry_host_predicate.is_empty(), "{retry:?}");
    }
    // Without consistent hashing the default policy keeps it.
    let details = r
        .routes
        .iter()
        .flat_map(|rc| &rc.virtual_hosts)
        .find(|vh| vh.name.starts_with("details.default.svc.cluster.local:"))
        .expect("details vhost");
    let Some(route::Action::Route(action)) = &details.routes[0].action else {
        panic!("not a route action");
    };
    assert_eq!(
        action
            .retry_policy
            .as_ref()
            .expect("retry policy")
            .retry_host_predicate
            .len(),
        1
    );
}

#[test]
fn every_connection_manager_accepts_websocket_upgrades() {
    let gateway = fs::read_to_string(golden::istio_samples_dir().join("bookinfo-gateway.yaml"))
        .expect("samples");
    let mesh = mesh_with(&gateway);
    for proxy in ["productpage-v1", "istio-ingressgateway"] {
        let r = resources(&mesh, proxy);
        let mut seen = 0;
        for l in &r.listeners {
            for chain in &l.filter_chains {
                for f in &chain.filters {
                    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
                        continue;
                    };
                    let hcm = HttpConnectionManager::decode(any.value.as_slice()).expect("hcm");
                    let upgrades: Vec<&str> = hcm
                        .upgrade_configs
                        .iter()
                        .map(|u| u.upgrade_type.as_str())
                        .collect();
                    assert_eq!(upgrades, ["websocket"], "{proxy} {}", l.name);
                    seen += 1;
                }
            }
        }
        assert!(seen > 0, "{proxy} has no connection manager");
    }
}
