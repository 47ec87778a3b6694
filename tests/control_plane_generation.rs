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

/// Bookinfo's config/ plus extra documents, written to a file of their own.
fn bookinfo_with(extra: &str) -> (tempfile::TempDir, std::sync::Arc<switchyard::mesh::Mesh>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("extra.yaml");
    std::fs::write(&file, extra).unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mesh = read_mesh(&[config, file]).expect("valid").mesh;
    (dir, mesh)
}

/// reviews-v1 may only reach ratings (Istio's `Sidecar` with `egress.hosts`); everyone else sees the mesh.
const RATINGS_ONLY: &str = "\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: reviews-v1, namespace: default}
spec:
  workloadSelector: {labels: {app: reviews, version: v1}}
  egress:
  - hosts: [./ratings.default.svc.cluster.local]
";

const REVIEWS_V2_ONLY: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v2}
";

#[test]
fn a_sidecar_resource_limits_what_its_workloads_see() {
    let (_dir, mesh) = bookinfo_with(RATINGS_ONLY);
    let generation = MeshGeneration::new(mesh.clone());
    let scoped = generation
        .snapshot_for(&sidecar_node(&mesh, "reviews-v1"))
        .unwrap();
    let outbound: Vec<String> = scoped
        .all(ResourceType::Cluster)
        .into_iter()
        .map(|c| c.name.clone())
        .filter(|n| n.starts_with("outbound|"))
        .collect();
    assert!(!outbound.is_empty());
    assert!(
        outbound
            .iter()
            .all(|n| n.ends_with("|ratings.default.svc.cluster.local")),
        "{outbound:?}"
    );
    assert!(scoped
        .all(ResourceType::Endpoint)
        .iter()
        .all(|e| e.name.ends_with("|ratings.default.svc.cluster.local")));
    // The same check the translation itself gives (goldens and Envoy validation use `translate`).
    let proxy =
        switchyard::mesh::Proxy::identify(&mesh, &sidecar_node(&mesh, "reviews-v1")).unwrap();
    let translated = switchyard::translate::translate(&mesh, &proxy);
    assert_eq!(translated.clusters.len(), scoped.len(ResourceType::Cluster));
    assert!(translated.check_consistent().is_ok());
    let route = &translated.routes[0];
    let domains: Vec<&str> = route
        .virtual_hosts
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(domains, ["ratings.default.svc.cluster.local:9080"]);

    // reviews-v2 has no Sidecar that selects it: it sees every service.
    let open = generation
        .snapshot_for(&sidecar_node(&mesh, "reviews-v2"))
        .unwrap();
    assert!(open.contains(
        ResourceType::Cluster,
        "outbound|9080|v1|details.default.svc.cluster.local"
    ));
}

/// A VirtualService for ratings (which reviews-v1's Sidecar admits) that sends some traffic to details.
const RATINGS_TO_DETAILS: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - route:
    - destination: {host: ratings, subset: v1}
      weight: 90
    - destination: {host: details}
      weight: 10
";

/// And details, now seen through the VirtualService above, sends some of its traffic to reviews.
const DETAILS_TO_REVIEWS: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details}
spec:
  hosts: [details]
  http:
  - route:
    - destination: {host: details}
      weight: 90
    - destination: {host: reviews}
      weight: 10
";

#[test]
fn a_sidecar_scope_includes_the_destinations_of_the_virtual_services_it_admits() {
    // Istio infers these: a route the sidecar is given must find its clusters. A destination seen this way
    // is routed by its own VirtualService, so that one's destinations follow (found by the property test).
    let (_dir, mesh) = bookinfo_with(&format!(
        "{RATINGS_ONLY}---\n{RATINGS_TO_DETAILS}---\n{DETAILS_TO_REVIEWS}"
    ));
    let proxy =
        switchyard::mesh::Proxy::identify(&mesh, &sidecar_node(&mesh, "reviews-v1")).unwrap();
    let translated = switchyard::translate::translate(&mesh, &proxy);
    translated.check_consistent().unwrap();
    let generation = MeshGeneration::new(mesh.clone());
    let scoped = generation
        .snapshot_for(&sidecar_node(&mesh, "reviews-v1"))
        .unwrap();
    assert!(scoped.contains(
        ResourceType::Cluster,
        "outbound|9080||details.default.svc.cluster.local"
    ));
    assert!(scoped.contains(
        ResourceType::Cluster,
        "outbound|9080||reviews.default.svc.cluster.local"
    ));
    // Still not what no admitted route leads to.
    assert!(!scoped.contains(
        ResourceType::Cluster,
        "outbound|9080||productpage.default.svc.cluster.local"
    ));
}

#[test]
fn a_change_to_one_host_pushes_nothing_to_a_proxy_that_cannot_see_it() {
    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
    use switchyard::xds::sotw::SotwStream;

    let (_a, before) = bookinfo_with(RATINGS_ONLY);
    let (_b, after) = bookinfo_with(&format!("{RATINGS_ONLY}---\n{REVIEWS_V2_ONLY}"));
    let old = MeshGeneration::new(before.clone());
    // A stream per proxy, subscribed to everything of the old generation and up to date with it.
    let mut streams: Vec<(&str, SotwStream)> = Vec::new();
    for name in ["reviews-v1", "productpage-v1"] {
        let snapshot = old.snapshot_for(&sidecar_node(&before, name)).unwrap();
        let mut stream = SotwStream::default();
        for t in ResourceType::ALL {
            let names = if t.is_wildcard() {
                Vec::new()
            } else {
                snapshot.all(t).iter().map(|r| r.name.clone()).collect()
            };
            let step = stream.on_request(
                &DiscoveryRequest {
                    type_url: t.type_url().into(),
                    resource_names: names,
                    ..Default::default()
                },
                Some(&snapshot),
            );
            assert_eq!(step.responses.len(), 1, "{name} {t}");
        }
        streams.push((name, stream));
    }

    // The reviews VirtualService changes: the route configuration of every proxy that reaches reviews.
    let new = MeshGeneration::succeed(after.clone(), &old);
    for (name, stream) in &mut streams {
        let snapshot = new.snapshot_for(&sidecar_node(&after, name)).unwrap();
        let step = stream.on_snapshot(&snapshot);
        let pushed: Vec<&str> = step
            .responses
            .iter()
            .map(|r| r.type_url.rsplit('.').next().unwrap_or(""))
            .collect();
        match *name {
            "reviews-v1" => assert!(pushed.is_empty(), "{name} cannot reach reviews: {pushed:?}"),
            _ => assert_eq!(pushed, ["RouteConfiguration"], "{name}"),
        }
    }
}

/// A stream acts on a new generation only when its proxy's snapshot is another allocation
/// (`xds::server`): a proxy the change does not touch must keep the very same snapshot, or ten thousand streams
/// each compare everything they hold on every change.
#[test]
fn a_proxy_the_change_does_not_touch_keeps_the_same_snapshot() {
    let (_a, before) = bookinfo_with(RATINGS_ONLY);
    let (_b, after) = bookinfo_with(&format!("{RATINGS_ONLY}---\n{REVIEWS_V2_ONLY}"));
    let old = MeshGeneration::new(before.clone());
    // Held as streams hold them: a generation keeps a translation only while a stream holds its snapshot.
    let held: Vec<_> = ["reviews-v1", "productpage-v1"]
        .into_iter()
        .map(|name| old.snapshot_for(&sidecar_node(&before, name)).unwrap())
        .collect();
    let new = MeshGeneration::succeed(after.clone(), &old);
    let untouched = new
        .snapshot_for(&sidecar_node(&after, "reviews-v1"))
        .unwrap();
    let touched = new
        .snapshot_for(&sidecar_node(&after, "productpage-v1"))
        .unwrap();
    assert!(
        Arc::ptr_eq(&held[0], &untouched),
        "reviews-v1 cannot reach reviews, yet got another snapshot"
    );
    assert!(!Arc::ptr_eq(&held[1], &touched));
    // And a generation that changes nothing at all changes no snapshot.
    let same = MeshGeneration::succeed(after.clone(), &new);
    let again = same
        .snapshot_for(&sidecar_node(&after, "productpage-v1"))
        .unwrap();
    assert!(Arc::ptr_eq(&touched, &again));
}

#[test]
fn shared_layers_are_one_allocation_across_proxies_and_generations() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mesh = read_mesh(&[config]).expect("config/ is valid").mesh;
    let (_dir, changed) = bookinfo_with(REVIEWS_V2_ONLY);
    let first = MeshGeneration::new(mesh.clone());
    let a = first
        .snapshot_for(&sidecar_node(&mesh, "reviews-v1"))
        .unwrap();
    let b = first
        .snapshot_for(&sidecar_node(&mesh, "ratings-v1"))
        .unwrap();
    for t in [
        ResourceType::Cluster,
        ResourceType::Endpoint,
        ResourceType::Route,
    ] {
        assert!(Arc::ptr_eq(&a.layers(t)[0], &b.layers(t)[0]), "{t}");
    }
    // A VirtualService change keeps clusters, endpoints and the proxies' own listeners as they were.
    let second = MeshGeneration::succeed(changed.clone(), &first);
    let a2 = second
        .snapshot_for(&sidecar_node(&changed, "reviews-v1"))
        .unwrap();
    for t in [
        ResourceType::Cluster,
        ResourceType::Endpoint,
        ResourceType::Listener,
    ] {
        let (x, y) = (a.layers(t), a2.layers(t));
        assert!(
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| Arc::ptr_eq(x, y)),
            "{t} layers were rebuilt"
        );
    }
    assert!(!Arc::ptr_eq(
        &a.layers(ResourceType::Route)[0],
        &a2.layers(ResourceType::Route)[0]
    ));
}
