//! Property tests over generated meshes: no panics on well-typed input, every route's cluster exists,
//! weights keep their ratios, identical input gives identical bytes, and every snapshot is consistent.

#[path = "support/golden.rs"]
mod golden;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::route::v3::{route, route_action::ClusterSpecifier};
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
use proptest::prelude::*;
use switchyard::mesh::{self, Mesh, Proxy};
use switchyard::spec;
use switchyard::translate::{self, Resources};

const VERSIONS: &[&str] = &["v1", "v2", "v3"];

#[derive(Debug, Clone)]
struct Svc {
    ports: Vec<u32>,
    versions: Vec<usize>,
    subsets: Vec<usize>,
    vs: Option<Vec<Http>>,
}

#[derive(Debug, Clone)]
struct Http {
    header: Option<String>,
    prefix: Option<String>,
    source_app: Option<usize>,
    dests: Vec<(usize, Option<usize>, i64)>,
    timeout: Option<&'static str>,
    delay: Option<(&'static str, f64)>,
    attempts: Option<u32>,
}

fn http(n_services: usize) -> impl Strategy<Value = Http> {
    (
        proptest::option::of("[a-z]{1,6}"),
        proptest::option::of("/[a-z]{0,5}"),
        proptest::option::of(0..n_services),
        proptest::collection::vec(
            (0..n_services, proptest::option::of(0..3usize), -5i64..100),
            1..4,
        ),
        proptest::option::of(prop_oneof![
            Just("1s"),
            Just("250ms"),
            Just("0s"),
            Just("1m30s"),
            Just("bogus")
        ]),
        proptest::option::of((
            prop_oneof![Just("7s"), Just("0.5s"), Just("x")],
            -10.0f64..120.0,
        )),
        proptest::option::of(0u32..4),
    )
        .prop_map(
            |(header, prefix, source_app, dests, timeout, delay, attempts)| Http {
                header,
                prefix,
                source_app,
                dests,
                timeout,
                delay,
                attempts,
            },
        )
}

fn services() -> impl Strategy<Value = Vec<Svc>> {
    (1usize..4).prop_flat_map(|n| {
        proptest::collection::vec(
            (
                prop_oneof![Just(vec![9080]), Just(vec![9080, 8080]), Just(vec![8080])],
                proptest::collection::vec(0..3usize, 0..3),
                prop_oneof![3 => Just(vec![0, 1, 2]), 1 => proptest::collection::vec(0..3usize, 0..3)],
                proptest::option::of(proptest::collection::vec(http(n), 1..4)),
            )
                .prop_map(|(ports, versions, subsets, vs)| Svc {
                    ports,
                    versions,
                    subsets,
                    vs,
                }),
            n,
        )
    })
}

fn yaml(services: &[Svc]) -> String {
    let mut y = String::new();
    let mut n = 0;
    for (i, s) in services.iter().enumerate() {
        let ports: String = s
            .ports
            .iter()
            .map(|p| format!("  - {{number: {p}, name: http-{p}, protocol: HTTP}}\n"))
            .collect();
        let _ = write!(y, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: s{i}}}\nspec:\n  hosts: [s{i}.default.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n{ports}  workloadSelector: {{labels: {{app: s{i}}}}}\n");
        for v in BTreeSet::<usize>::from_iter(s.versions.iter().copied()) {
            n += 1;
            let _ = write!(y, "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: s{i}-{}}}\nspec:\n  address: 127.0.{n}.1\n  labels: {{app: s{i}, version: {}}}\n", VERSIONS[v], VERSIONS[v]);
        }
        let subsets = BTreeSet::<usize>::from_iter(s.subsets.iter().copied());
        if !subsets.is_empty() {
            let list: String = subsets
                .iter()
                .map(|v| {
                    format!(
                        "  - {{name: {0}, labels: {{version: {0}}}}}\n",
                        VERSIONS[*v]
                    )
                })
                .collect();
            let _ = write!(y, "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: s{i}}}\nspec:\n  host: s{i}\n  subsets:\n{list}");
        }
        if let Some(routes) = &s.vs {
            let _ = write!(y, "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: s{i}}}\nspec:\n  hosts: [s{i}]\n  http:\n");
            for h in routes {
                let mut m = String::new();
                if let Some(v) = &h.header {
                    let _ = write!(m, "headers: {{end-user: {{exact: {v}}}}}, ");
                }
                if let Some(p) = &h.prefix {
                    let _ = write!(m, "uri: {{prefix: '{p}'}}, ");
                }
                if let Some(a) = h.source_app {
                    let _ = write!(m, "sourceLabels: {{app: s{a}}}, ");
                }
                if !m.is_empty() {
                    let _ = write!(
                        y,
                        "  - match: [{{{}}}]\n    route:\n",
                        m.trim_end_matches(", ")
                    );
                } else {
                    y.push_str("  - route:\n");
                }
                for (host, subset, weight) in &h.dests {
                    let subset = subset
                        .map(|v| format!(", subset: {}", VERSIONS[v]))
                        .unwrap_or_default();
                    let _ = write!(
                        y,
                        "    - destination: {{host: s{host}{subset}}}\n      weight: {weight}\n"
                    );
                }
                if let Some(t) = h.timeout {
                    let _ = writeln!(y, "    timeout: {t}");
                }
                if let Some((d, p)) = h.delay {
                    let _ = writeln!(
                        y,
                        "    fault: {{delay: {{fixedDelay: {d}, percentage: {{value: {p}}}}}}}"
                    );
                }
                if let Some(a) = h.attempts {
                    let _ = writeln!(
                        y,
                        "    retries: {{attempts: {a}, perTryTimeout: 2s, retryOn: '5xx,503'}}"
                    );
                }
            }
        }
    }
    y
}

fn sidecar_nodes(mesh: &Mesh) -> Vec<Node> {
    let s = |v: &str| Value {
        kind: Some(Kind::StringValue(v.to_owned())),
    };
    let mut nodes: Vec<Node> = mesh
        .workloads
        .values()
        .map(|w| Node {
            id: format!(
                "sidecar~{}~{}.{}~{}.svc.cluster.local",
                w.address, w.name, w.namespace, w.namespace
            ),
            metadata: Some(Struct {
                fields: [("SWITCHYARD_OUTBOUND_IP".to_owned(), s("127.0.200.3"))]
                    .into_iter()
                    .collect(),
            }),
            ..Default::default()
        })
        .collect();
    nodes.push(Node {
        id: "router~127.0.0.1~gw.default~default.svc.cluster.local".into(),
        ..Default::default()
    });
    nodes
}

fn route_clusters(r: &Resources) -> Vec<(String, Vec<String>, Vec<u32>)> {
    let mut out = Vec::new();
    for rc in &r.routes {
        for vh in &rc.virtual_hosts {
            for rt in &vh.routes {
                if let Some(route::Action::Route(a)) = &rt.action {
                    match &a.cluster_specifier {
                        Some(ClusterSpecifier::Cluster(c)) => {
                            out.push((vh.name.clone(), vec![c.clone()], vec![]))
                        }
                        Some(ClusterSpecifier::WeightedClusters(w)) => out.push((
                            vh.name.clone(),
                            w.clusters.iter().map(|c| c.name.clone()).collect(),
                            w.clusters
                                .iter()
                                .map(|c| c.weight.as_ref().map_or(0, |w| w.value))
                                .collect(),
                        )),
                        _ => {}
                    }
                }
            }
        }
    }
    out
}

/// `filter_metadata.istio.config`, the source object Istio stamps on routes and clusters.
fn istio_config(m: Option<&envoy_types::pb::envoy::config::core::v3::Metadata>) -> Option<String> {
    match m?
        .filter_metadata
        .get("istio")?
        .fields
        .get("config")?
        .kind
        .as_ref()?
    {
        Kind::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

#[test]
fn check_consistent_reports_missing_routes_and_endpoints() {
    let fixtures = golden::golden_dir().join("fixtures");
    let config = golden::load_inputs(&fixtures, &["bookinfo-mesh.yaml".into()]);
    let resolved = mesh::resolve(&config).expect("resolve");
    let node = Node {
        id: "sidecar~127.0.1.1~productpage-v1.default~default.svc.cluster.local".into(),
        ..Default::default()
    };
    let mut r = translate::translate(
        &resolved.mesh,
        &Proxy::identify(&resolved.mesh, &node).expect("identify"),
    );
    assert_eq!(r.check_consistent(), Ok(()));
    r.routes.clear();
    r.endpoints.retain(|e| !e.cluster_name.contains("reviews"));
    let problems = r.check_consistent().expect_err("inconsistent");
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 2, "{text:#?}");
    assert!(text[0].contains("route configuration `9080`"), "{text:#?}");
    assert!(
        text[1].contains("outbound|9080||reviews.default.svc.cluster.local"),
        "{text:#?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn generated_meshes_translate_soundly(services in services()) {
        let text = yaml(&services);
        let config = spec::load_str("gen.yaml", &text).expect("generated YAML is well-typed");
        let first = mesh::resolve(&config);
        let second = mesh::resolve(&config);
        let (Ok(resolved), Ok(again)) = (first, second) else { return Ok(()) };
        prop_assert_eq!(&resolved.mesh, &again.mesh);
        for node in sidecar_nodes(&resolved.mesh) {
            let proxy = Proxy::identify(&resolved.mesh, &node).expect("generated node identifies");
            let r = translate::translate(&resolved.mesh, &proxy);
            prop_assert_eq!(golden::encode_all(&r), golden::encode_all(&translate::translate(&again.mesh, &proxy)));
            prop_assert!(r.check_consistent().is_ok(), "{:?}", r.check_consistent());
            for c in &r.clusters {
                prop_assert!(istio_config(c.metadata.as_ref()).is_some(), "cluster {} has no istio.config", c.name);
            }
            for rc in r.routes.iter().filter(|rc| !rc.name.starts_with("inbound|")) {
                for rt in rc.virtual_hosts.iter().flat_map(|v| &v.routes) {
                    let config = istio_config(rt.metadata.as_ref());
                    prop_assert!(config.is_some_and(|c| c.starts_with("/apis/networking.istio.io/v1/namespaces/")), "route {} in {}", rt.name, rc.name);
                }
            }
            let clusters: BTreeSet<&str> = r.clusters.iter().map(|c| c.name.as_str()).collect();
            for (vhost, names, weights) in route_clusters(&r) {
                for n in &names {
                    prop_assert!(clusters.contains(n.as_str()), "{vhost} routes to missing cluster {n}");
                }
                prop_assert!(weights.iter().all(|w| *w > 0), "{vhost}: zero weight kept: {weights:?}");
            }
        }
    }

    #[test]
    fn weights_keep_their_ratios(weights in proptest::collection::vec(0i64..1000, 2..4)) {
        let dests: String = weights
            .iter()
            .enumerate()
            .map(|(i, w)| format!("    - destination: {{host: reviews, subset: {}}}\n      weight: {w}\n", VERSIONS[i]))
            .collect();
        let vs = format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n{dests}");
        let fixtures = golden::golden_dir().join("fixtures");
        let base = golden::load_inputs(&fixtures, &["bookinfo-mesh.yaml".into(), "istio:destination-rule-all.yaml".into()]);
        let config = base.overlay(spec::load_str("vs.yaml", &vs).expect("load"));
        let positive: Vec<(usize, u32)> =
            weights.iter().enumerate().filter(|(_, w)| **w > 0).map(|(i, w)| (i, u32::try_from(*w).expect("small"))).collect();
        let resolved = match mesh::resolve(&config) {
            Ok(r) => r,
            Err(d) => {
                prop_assert!(positive.is_empty(), "only all-zero weights may fail: {d:?}");
                return Ok(());
            }
        };
        let node = Node { id: "sidecar~127.0.1.1~productpage-v1.default~default.svc.cluster.local".into(), ..Default::default() };
        let r = translate::translate(&resolved.mesh, &Proxy::identify(&resolved.mesh, &node).expect("identify"));
        let (_, names, got) = route_clusters(&r)
            .into_iter()
            .find(|(v, _, _)| v == "reviews.default.svc.cluster.local:9080")
            .expect("reviews route");
        let expected_names: Vec<String> =
            positive.iter().map(|(i, _)| format!("outbound|9080|{}|reviews.default.svc.cluster.local", VERSIONS[*i])).collect();
        prop_assert_eq!(names, expected_names);
        if positive.len() > 1 {
            let want: Vec<u32> = positive.iter().map(|(_, w)| *w).collect();
            // Same values, so every ratio w_i / w_j is kept exactly.
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn loading_arbitrary_text_never_panics(text in "(apiVersion: networking.istio.io/v1\nkind: (VirtualService|Gateway|DestinationRule)\nmetadata: \\{name: [a-z]{1,3}\\}\nspec: )?[ -~\n]{0,80}") {
        if let Ok(config) = spec::load_str("fuzz.yaml", &text) {
            let _ = mesh::resolve(&config);
        }
    }
}
