//! A generation translates once per proxy identity and shares identical resources between proxies.

use std::path::Path;
use std::sync::Arc;

use switchyard::control_plane::{read_mesh, MeshGeneration};
use switchyard::envoy::NodeIdentity;
use switchyard::topology;
use switchyard::xds::{Generation, ResourceType};

fn sidecar_node(
    mesh: &switchyard::mesh::Mesh,
    name: &str,
) -> envoy_types::pb::envoy::config::core::v3::Node {
    let (sidecar, _) = topology::sidecar(mesh, "default", name, None, None).unwrap();
    NodeIdentity::sidecar(&sidecar).to_proto()
}

#[test]
fn proxies_share_identical_resources_and_each_proxy_is_translated_once() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mesh = read_mesh(&[config]).expect("config/ is valid").mesh;
    let generation = MeshGeneration::new(mesh.clone());

    let v1 = generation
        .snapshot_for(&sidecar_node(&mesh, "reviews-v1"))
        .unwrap();
    let v2 = generation
        .snapshot_for(&sidecar_node(&mesh, "reviews-v2"))
        .unwrap();
    assert!(!Arc::ptr_eq(&v1, &v2), "two workloads, two snapshots");

    // Both sidecars call the same services: one encoded copy of each cluster and route configuration.
    let cluster = "outbound|9080|v1|ratings.default.svc.cluster.local";
    assert!(Arc::ptr_eq(
        v1.get(ResourceType::Cluster, cluster).unwrap(),
        v2.get(ResourceType::Cluster, cluster).unwrap()
    ));
    assert!(Arc::ptr_eq(
        v1.get(ResourceType::Route, "9080").unwrap(),
        v2.get(ResourceType::Route, "9080").unwrap()
    ));
    // Their inbound listeners differ (each binds its own pod IP).
    let inbound = |s: &switchyard::xds::Snapshot| {
        s.all(ResourceType::Listener)
            .into_iter()
            .map(|r| r.version.clone())
            .collect::<Vec<_>>()
    };
    assert_ne!(inbound(&v1), inbound(&v2));

    // The same proxy asking again (a reconnect) gets the very same snapshot: no second translation.
    let again = generation
        .snapshot_for(&sidecar_node(&mesh, "reviews-v1"))
        .unwrap();
    assert!(Arc::ptr_eq(&v1, &again));
}

#[test]
fn an_unknown_node_is_refused_with_a_reason() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mesh = read_mesh(&[config]).expect("config/ is valid").mesh;
    let generation = MeshGeneration::new(mesh);
    let stranger = envoy_types::pb::envoy::config::core::v3::Node {
        id: "sidecar~127.0.9.1~nobody.default~default.svc.cluster.local".to_string(),
        cluster: "nobody.default".to_string(),
        ..Default::default()
    };
    let error = generation.snapshot_for(&stranger).unwrap_err();
    assert!(error.contains("nobody"), "{error}");
}
