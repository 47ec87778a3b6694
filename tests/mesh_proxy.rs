//! `Proxy::identify`: the node contract of docs/proxy-identity.md.

mod support;

use std::collections::BTreeSet;
use support::golden;

use switchyard::mesh::{self, IdentityError, Mesh, Proxy};

fn mesh() -> std::sync::Arc<Mesh> {
    let config = golden::load_inputs(
        &golden::golden_dir().join("fixtures"),
        &[
            "bookinfo-mesh.yaml".into(),
            "istio:destination-rule-all.yaml".into(),
            "istio:bookinfo-gateway.yaml".into(),
        ],
    );
    mesh::resolve(&config).expect("resolve").mesh
}

fn identify(yaml: &str) -> Result<Proxy, IdentityError> {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).expect("yaml");
    Proxy::identify(&mesh(), &golden::node_from_yaml(&value))
}

const REVIEWS_V2: &str = "id: sidecar~127.0.4.1~reviews-v2.default~default.svc.cluster.local\ncluster: reviews.default\nmetadata:\n  NAMESPACE: default\n  WORKLOAD_NAME: reviews-v2\n  LABELS: {app: reviews, version: v2}\n  INSTANCE_IPS: 127.0.4.1\n  INTERCEPTION_MODE: NONE\n  SWITCHYARD_APP_IP: 127.0.4.2\n  SWITCHYARD_OUTBOUND_IP: 127.0.4.3\n";

#[test]
fn sidecar_maps_to_its_workload_entry() {
    let Proxy::Sidecar(s) = identify(REVIEWS_V2).expect("identify") else {
        panic!("not a sidecar")
    };
    assert_eq!(
        (s.namespace.as_str(), s.workload.as_str()),
        ("default", "reviews-v2")
    );
    assert_eq!(
        (s.ip.as_str(), s.app_ip.as_str(), s.outbound_ip.as_str()),
        ("127.0.4.1", "127.0.4.2", "127.0.4.3")
    );
    assert_eq!(s.labels.get("version").map(String::as_str), Some("v2"));
}

#[test]
fn labels_come_from_the_workload_entry_not_the_node() {
    let lying = REVIEWS_V2.replace("version: v2", "version: v3");
    let Proxy::Sidecar(s) = identify(&lying).expect("identify") else {
        panic!("not a sidecar")
    };
    assert_eq!(s.labels.get("version").map(String::as_str), Some("v2"));
}

#[test]
fn the_node_id_is_the_fallback_for_missing_metadata() {
    let Proxy::Sidecar(s) =
        identify("id: sidecar~127.0.3.1~reviews-v1.default~default.svc.cluster.local\n")
            .expect("identify")
    else {
        panic!("not a sidecar")
    };
    assert_eq!(
        (s.workload.as_str(), s.ip.as_str(), s.app_ip.as_str()),
        ("reviews-v1", "127.0.3.1", "127.0.0.1")
    );
}

#[test]
fn router_serves_the_gateways_its_labels_select() {
    let yaml = "id: router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local\nmetadata:\n  LABELS: {istio: ingressgateway, app: istio-ingressgateway}\n";
    let Proxy::Router(r) = identify(yaml).expect("identify") else {
        panic!("not a router")
    };
    assert_eq!(r.gateways, vec!["default/bookinfo-gateway".to_owned()]);
    assert_eq!(
        (r.namespace.as_str(), r.ip.as_str()),
        ("istio-system", "127.0.0.1")
    );
    let other =
        identify(&yaml.replace("istio: ingressgateway", "istio: egressgateway")).expect("identify");
    let Proxy::Router(r) = other else {
        panic!("not a router")
    };
    assert!(r.gateways.is_empty());
}

#[test]
fn unknown_workload_is_an_error() {
    let e = identify(&REVIEWS_V2.replace("WORKLOAD_NAME: reviews-v2", "WORKLOAD_NAME: reviews-v9"))
        .expect_err("unknown");
    assert_eq!(
        e,
        IdentityError::UnknownWorkload {
            namespace: "default".into(),
            name: "reviews-v9".into()
        }
    );
}

#[test]
fn malformed_nodes_are_errors() {
    assert!(matches!(
        identify("id: reviews\n"),
        Err(IdentityError::BadNodeId(_))
    ));
    assert!(
        matches!(identify("id: waypoint~1.2.3.4~a.b~b.svc.cluster.local\n"), Err(IdentityError::UnknownNodeType(t)) if t == "waypoint")
    );
    let e = identify(&REVIEWS_V2.replace(
        "SWITCHYARD_APP_IP: 127.0.4.2",
        "SWITCHYARD_APP_IP: localhost",
    ))
    .expect_err("bad ip");
    assert!(
        matches!(
            e,
            IdentityError::BadMetadata {
                key: "SWITCHYARD_APP_IP",
                ..
            }
        ),
        "{e}"
    );
    let e = identify(&REVIEWS_V2.replace("INTERCEPTION_MODE: NONE", "INTERCEPTION_MODE: REDIRECT"))
        .expect_err("redirect");
    assert!(
        matches!(
            e,
            IdentityError::BadMetadata {
                key: "INTERCEPTION_MODE",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn identical_nodes_are_one_proxy_class() {
    let a = identify(REVIEWS_V2).expect("a");
    let b = identify(REVIEWS_V2).expect("b");
    let c = identify(&REVIEWS_V2.replace("127.0.4.3", "127.0.9.3")).expect("c");
    let classes: BTreeSet<Proxy> = [a.clone(), b, c].into_iter().collect();
    assert_eq!(classes.len(), 2);
    assert!(classes.contains(&a));
}
