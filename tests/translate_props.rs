//! Property tests over generated meshes: no panics on well-typed input, every route's cluster exists,
//! weights keep their ratios, identical input gives identical bytes, and every snapshot is consistent.

mod support;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use support::golden;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::route::v3::{route, route_action::ClusterSpecifier};
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
use proptest::prelude::*;
use switchyard::mesh::{self, Mesh, Proxy};
use switchyard::spec;
use switchyard::translate::{self, Resources};

const VERSIONS: &[&str] = &["v1", "v2", "v3"];

/// A wrong value placed in one generated route; the mesh must then fail to resolve with `code`.
#[derive(Debug, Clone, Copy)]
enum Bad {
    Timeout,
    DelayDuration,
    DelayPercentage,
    NegativeWeight,
    WeightAboveInt32,
}

impl Bad {
    fn code(self) -> &'static str {
        match self {
            Bad::Timeout | Bad::DelayDuration => "SY0106",
            Bad::DelayPercentage => "SY0109",
            Bad::NegativeWeight | Bad::WeightAboveInt32 => "SY0103",
        }
    }
}

/// Traffic policy settings with values up to the type's limits, so that clamping or overflow shows up.
#[derive(Debug, Clone)]
struct Policy {
    lb: Option<&'static str>,
    max_connections: Option<u32>,
    connect_timeout: Option<&'static str>,
    pending: Option<u32>,
    max_retries: Option<u32>,
    idle_timeout: Option<&'static str>,
    consecutive_5xx: Option<u32>,
    interval: Option<&'static str>,
    base_ejection: Option<&'static str>,
    max_ejection_percent: Option<u32>,
}

#[derive(Debug, Clone)]
struct Svc {
    ports: Vec<u32>,
    versions: Vec<usize>,
    subsets: Vec<usize>,
    policy: Option<Policy>,
    /// (index into `ports`, settings) for `portLevelSettings`.
    port_policy: Option<(usize, Policy)>,
    /// Settings of the first subset.
    subset_policy: Option<Policy>,
    vs: Option<Vec<Http>>,
    /// A `Sidecar` for the service's workloads reaching only these services (by index, modulo their count).
    egress: Option<Vec<usize>>,
}

#[derive(Debug, Clone)]
struct Http {
    header: Option<String>,
    prefix: Option<String>,
    source_app: Option<usize>,
    /// (target service, subset choice among the target's subsets, weight).
    dests: Vec<(usize, Option<usize>, u32)>,
    timeout: Option<&'static str>,
    delay: Option<(&'static str, f64)>,
    attempts: Option<u32>,
    bad: Option<Bad>,
}

/// Positive durations, up to ten years (well inside protobuf's Duration range).
fn positive_duration() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("1s"),
        Just("250ms"),
        Just("1m30s"),
        Just("0.5s"),
        Just("1h"),
        Just("87600h"),
        Just("999999us"),
    ]
}

/// Counts from 1 to `u32::MAX`, big ones as likely as small ones.
fn count() -> impl Strategy<Value = u32> {
    prop_oneof![1u32..100, (u32::MAX - 1000)..=u32::MAX, 1u32..=u32::MAX]
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        proptest::option::of(prop_oneof![
            Just("{simple: ROUND_ROBIN}"),
            Just("{simple: RANDOM}"),
            Just("{simple: LEAST_REQUEST}"),
            Just("{consistentHash: {httpHeaderName: x-user}}"),
            Just("{consistentHash: {useSourceIp: true, maglev: {tableSize: 65537}}}"),
        ]),
        proptest::option::of(count()),
        proptest::option::of(positive_duration()),
        proptest::option::of(count()),
        proptest::option::of(count()),
        proptest::option::of(positive_duration()),
        proptest::option::of(count()),
        proptest::option::of(positive_duration()),
        proptest::option::of(positive_duration()),
        proptest::option::of(0u32..=100),
    )
        .prop_map(
            |(
                lb,
                max_connections,
                connect_timeout,
                pending,
                max_retries,
                idle_timeout,
                consecutive_5xx,
                interval,
                base_ejection,
                max_ejection_percent,
            )| Policy {
                lb,
                max_connections,
                connect_timeout,
                pending,
                max_retries,
                idle_timeout,
                consecutive_5xx,
                interval,
                base_ejection,
                max_ejection_percent,
            },
        )
}

/// The settings as a YAML flow mapping without braces (so port-level settings can add `port`).
fn policy_fields(p: &Policy) -> String {
    let mut fields = Vec::new();
    if let Some(lb) = p.lb {
        fields.push(format!("loadBalancer: {lb}"));
    }
    let mut tcp = Vec::new();
    if let Some(n) = p.max_connections {
        tcp.push(format!("maxConnections: {n}"));
    }
    if let Some(t) = p.connect_timeout {
        tcp.push(format!("connectTimeout: {t}"));
    }
    let mut http = Vec::new();
    if let Some(n) = p.pending {
        http.push(format!("http1MaxPendingRequests: {n}"));
    }
    if let Some(n) = p.max_retries {
        http.push(format!("maxRetries: {n}"));
    }
    if let Some(t) = p.idle_timeout {
        http.push(format!("idleTimeout: {t}"));
    }
    let mut pool = Vec::new();
    if !tcp.is_empty() {
        pool.push(format!("tcp: {{{}}}", tcp.join(", ")));
    }
    if !http.is_empty() {
        pool.push(format!("http: {{{}}}", http.join(", ")));
    }
    if !pool.is_empty() {
        fields.push(format!("connectionPool: {{{}}}", pool.join(", ")));
    }
    let mut outlier = Vec::new();
    if let Some(n) = p.consecutive_5xx {
        outlier.push(format!("consecutive5xxErrors: {n}"));
    }
    if let Some(t) = p.interval {
        outlier.push(format!("interval: {t}"));
    }
    if let Some(t) = p.base_ejection {
        outlier.push(format!("baseEjectionTime: {t}"));
    }
    if let Some(n) = p.max_ejection_percent {
        outlier.push(format!("maxEjectionPercent: {n}"));
    }
    if !outlier.is_empty() {
        fields.push(format!("outlierDetection: {{{}}}", outlier.join(", ")));
    }
    fields.join(", ")
}

fn http(n_services: usize) -> impl Strategy<Value = Http> {
    // Up to three destinations whose weights, each below i32::MAX, still sum within Envoy's uint32.
    let weight = prop_oneof![0u32..100, (u32::MAX / 3 - 1000)..=(u32::MAX / 3)];
    (
        proptest::option::of("[a-z]{1,6}"),
        proptest::option::of("/[a-z]{0,5}"),
        proptest::option::of(0..n_services),
        proptest::collection::vec(
            (0..n_services, proptest::option::of(0..3usize), weight),
            1..4,
        ),
        proptest::option::of(prop_oneof![Just("0s"), positive_duration()]),
        proptest::option::of((positive_duration(), 0.0f64..=100.0)),
        proptest::option::of(0u32..4),
        prop_oneof![
            12 => Just(None),
            1 => prop_oneof![
                Just(Bad::Timeout),
                Just(Bad::DelayDuration),
                Just(Bad::DelayPercentage),
                Just(Bad::NegativeWeight),
                Just(Bad::WeightAboveInt32),
            ]
            .prop_map(Some),
        ],
    )
        .prop_map(
            |(header, prefix, source_app, mut dests, timeout, delay, attempts, bad)| {
                // All-zero weights over several destinations are invalid (SY0103); keep one routable.
                if dests.len() > 1 && dests.iter().all(|d| d.2 == 0) {
                    dests[0].2 = 1;
                }
                Http {
                    header,
                    prefix,
                    source_app,
                    dests,
                    timeout,
                    delay,
                    attempts,
                    bad,
                }
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
                proptest::option::of(policy()),
                proptest::option::of((0..2usize, policy())),
                proptest::option::of(policy()),
                proptest::option::of(proptest::collection::vec(http(n), 1..4)),
                prop_oneof![
                    2 => Just(None),
                    1 => proptest::collection::vec(0..n, 1..3).prop_map(Some),
                ],
            )
                .prop_map(
                    |(ports, versions, subsets, policy, port_policy, subset_policy, vs, egress)| Svc {
                        port_policy: port_policy.map(|(i, p)| (i % ports.len(), p)),
                        ports,
                        versions,
                        subsets,
                        policy,
                        subset_policy,
                        vs,
                        egress,
                    },
                ),
            n,
        )
    })
}

/// The first wrong value placed in the generated meshes, if any.
fn first_bad(services: &[Svc]) -> Option<Bad> {
    services
        .iter()
        .filter_map(|s| s.vs.as_ref())
        .flatten()
        .find_map(|h| h.bad)
}

fn yaml(services: &[Svc]) -> String {
    let mut y = String::new();
    let mut n = 0;
    let subsets_of = |s: &Svc| -> Vec<usize> {
        BTreeSet::<usize>::from_iter(s.subsets.iter().copied())
            .into_iter()
            .collect()
    };
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
        let subsets = subsets_of(s);
        if !subsets.is_empty() || s.policy.is_some() || s.port_policy.is_some() {
            let list: String = subsets
                .iter()
                .enumerate()
                .map(|(k, v)| {
                    let policy = match (&s.subset_policy, k) {
                        (Some(p), 0) => format!(", trafficPolicy: {{{}}}", policy_fields(p)),
                        _ => String::new(),
                    };
                    format!(
                        "  - {{name: {0}, labels: {{version: {0}}}{policy}}}\n",
                        VERSIONS[*v]
                    )
                })
                .collect();
            let mut policy = s.policy.as_ref().map(policy_fields).unwrap_or_default();
            if let Some((port, p)) = &s.port_policy {
                let sep = if policy.is_empty() { "" } else { ", " };
                let _ = write!(
                    policy,
                    "{sep}portLevelSettings: [{{port: {{number: {}}}, {}}}]",
                    s.ports[*port],
                    policy_fields(p)
                );
            }
            let _ = write!(y, "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: s{i}}}\nspec:\n  host: s{i}\n  trafficPolicy: {{{policy}}}\n  subsets:{}\n{list}", if list.is_empty() { " []" } else { "" });
        }
        if let Some(reach) = &s.egress {
            let hosts: Vec<String> = reach
                .iter()
                .map(|j| format!("./s{}.default.svc.cluster.local", j % services.len()))
                .collect();
            let _ = write!(y, "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: s{i}}}\nspec:\n  workloadSelector: {{labels: {{app: s{i}}}}}\n  egress:\n  - hosts: [{}]\n", hosts.join(", "));
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
                for (k, (host, subset, weight)) in h.dests.iter().enumerate() {
                    let target = &services[*host];
                    let target_subsets = subsets_of(target);
                    let subset = subset
                        .filter(|_| !target_subsets.is_empty())
                        .map(|c| {
                            format!(
                                ", subset: {}",
                                VERSIONS[target_subsets[c % target_subsets.len()]]
                            )
                        })
                        .unwrap_or_default();
                    // A service with several ports needs the destination to name one (IST0112).
                    let port = match target.ports.as_slice() {
                        [_] => String::new(),
                        ports => format!(", port: {{number: {}}}", ports[k % ports.len()]),
                    };
                    let weight: i64 = match (h.bad, k) {
                        (Some(Bad::NegativeWeight), 0) => -5,
                        (Some(Bad::WeightAboveInt32), 0) => i64::from(i32::MAX) + 1,
                        _ => i64::from(*weight),
                    };
                    let _ = write!(
                        y,
                        "    - destination: {{host: s{host}{subset}{port}}}\n      weight: {weight}\n"
                    );
                }
                let timeout = match h.bad {
                    Some(Bad::Timeout) => Some("bogus"),
                    _ => h.timeout,
                };
                if let Some(t) = timeout {
                    let _ = writeln!(y, "    timeout: {t}");
                }
                let delay = match (h.bad, h.delay) {
                    (Some(Bad::DelayDuration), _) => Some(("x", 50.0)),
                    (Some(Bad::DelayPercentage), _) => Some(("1s", 100.5)),
                    (_, d) => d,
                };
                if let Some((d, p)) = delay {
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

/// The settings that apply to the subset-less cluster of `port`: port-level ones replace the rule's as a whole.
fn effective_policy(s: &Svc, port: u32) -> Option<&Policy> {
    match &s.port_policy {
        Some((i, p)) if s.ports[*i] == port => Some(p),
        _ => s.policy.as_ref(),
    }
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
        // Every generated mesh is valid except for the one wrong value a case may carry, so a failing resolve is
        // never silently skipped: it must be that value's diagnostic.
        let (resolved, again) = match (first, second, first_bad(&services)) {
            (Ok(a), Ok(b), None) => (a, b),
            (Err(d), _, Some(bad)) => {
                prop_assert!(d.iter().any(|d| d.code == bad.code()), "{bad:?} not reported as {}: {d:#?}", bad.code());
                return Ok(());
            }
            (Ok(_), _, Some(bad)) => {
                prop_assert!(false, "{bad:?} resolved without an error:\n{text}");
                unreachable!()
            }
            (Err(d), _, None) | (_, Err(d), None) => {
                prop_assert!(false, "a valid generated mesh failed to resolve: {d:#?}\n{text}");
                unreachable!()
            }
        };
        prop_assert_eq!(&resolved.mesh, &again.mesh);
        for node in sidecar_nodes(&resolved.mesh) {
            let proxy = Proxy::identify(&resolved.mesh, &node).expect("generated node identifies");
            let r = translate::translate(&resolved.mesh, &proxy);
            prop_assert_eq!(golden::encode_all(&r), golden::encode_all(&translate::translate(&again.mesh, &proxy)));
            prop_assert!(r.check_consistent().is_ok(), "{:?}", r.check_consistent());
            for c in &r.clusters {
                prop_assert!(istio_config(c.metadata.as_ref()).is_some(), "cluster {} has no istio.config", c.name);
            }
            for (i, s) in services.iter().enumerate() {
                for port in &s.ports {
                    let name = format!("outbound|{port}||s{i}.default.svc.cluster.local");
                    let Some(c) = r.clusters.iter().find(|c| c.name == name) else { continue };
                    let p = effective_policy(s, *port);
                    let thresholds = c.circuit_breakers.as_ref().and_then(|b| b.thresholds.first());
                    let got = thresholds.and_then(|t| t.max_connections.as_ref()).map(|v| v.value);
                    let want = p.and_then(|p| p.max_connections).unwrap_or(u32::MAX);
                    prop_assert_eq!(got, Some(want), "{} max_connections", name);
                    let got = thresholds.and_then(|t| t.max_retries.as_ref()).map(|v| v.value);
                    let want = p.and_then(|p| p.max_retries).unwrap_or(u32::MAX);
                    prop_assert_eq!(got, Some(want), "{} max_retries", name);
                    let ejection = c.outlier_detection.as_ref().and_then(|o| o.max_ejection_percent.as_ref()).map(|v| v.value);
                    prop_assert!(ejection.is_none_or(|v| v <= 100), "{} max_ejection_percent {:?}", name, ejection);
                    if let Some(t) = p.and_then(|p| p.connect_timeout) {
                        let want = mesh::duration::parse(t).expect("generated duration");
                        let got = c.connect_timeout.as_ref().expect("connect_timeout");
                        prop_assert_eq!((got.seconds, got.nanos), (i64::try_from(want.as_secs()).expect("small"), i32::try_from(want.subsec_nanos()).expect("small")), "{} connect_timeout", name);
                    }
                }
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
    fn weights_keep_their_ratios(weights in proptest::collection::vec(prop_oneof![0i64..1000, (i64::from(i32::MAX) - 1000)..=i64::from(i32::MAX)], 2..4)) {
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
            weights.iter().enumerate().filter(|(_, w)| **w > 0).map(|(i, w)| (i, u32::try_from(*w).expect("within int32"))).collect();
        let resolved = match mesh::resolve(&config) {
            Ok(r) => r,
            Err(d) => {
                // Each weight fits Istio's int32, but three large ones overflow Envoy's uint32 sum (SY0103).
                let sum: u64 = positive.iter().map(|(_, w)| u64::from(*w)).sum();
                prop_assert!(positive.is_empty() || sum > u64::from(u32::MAX), "only all-zero weights or an overflowing sum may fail: {d:?}");
                prop_assert!(d.iter().filter(|d| d.is_error()).all(|d| d.code == "SY0103"), "{d:?}");
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

/// `services` as one file per resource, named after it: a change to one resource leaves every other resource's
/// origin (file and line) as it was, as when a user edits one file of a directory.
fn files(services: &[Svc]) -> Vec<(String, String)> {
    yaml(services)
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|doc| {
            let field = |key: &str| {
                doc.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .unwrap_or("")
                    .trim()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
            };
            (
                format!("{}-{}.yaml", field("kind:"), field("metadata:")),
                doc.to_owned(),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Each generation is built from the one before, reusing what did not change (the resolver's shared mesh
    /// parts, each stream's remembered identity, kept snapshots); a proxy must nevertheless get exactly what a
    /// generation built from nothing gives it. As in the server: the meshes are read from a directory where only
    /// the changed files change, each generation is published to a cache, each proxy's stream keeps one node and
    /// the snapshot it last got, looks again only when the cache rings it, and may be busy and look at a later
    /// generation only. A stream the cache did not ring must hold what it would look up.
    #[test]
    fn generations_built_incrementally_equal_generations_built_from_scratch(
        base in services(),
        changes in proptest::collection::vec(
            (any::<prop::sample::Index>(), services(), 0..7usize, proptest::collection::vec(any::<bool>(), 0..24)),
            1..6,
        ),
    ) {
        use std::collections::BTreeMap;
        use std::sync::Arc;
        use switchyard::control_plane::MeshGeneration;
        use switchyard::xds::{Cache, CacheWatch, Generation, Snapshot};

        /// A stream: its node (one allocation for the stream's life), its watch on the cache, whether it was
        /// rung and has not looked since, and what it holds.
        struct Stream {
            node: Arc<Node>,
            watch: CacheWatch,
            owed: bool,
            held: Option<Arc<Snapshot>>,
        }

        let dir = tempfile::tempdir().unwrap();
        let mut loader = spec::Loader::new(spec::LoadOptions::default());
        let mut resolver = mesh::Resolver::default();
        let mut current = base;
        let Some(mesh) = read_services(dir.path(), &mut loader, &mut resolver, &current) else { return Ok(()) };
        let mut incremental = Arc::new(MeshGeneration::new(mesh.clone()));
        let cache = Cache::new(incremental.clone());
        let mut streams: BTreeMap<String, Stream> = BTreeMap::new();
        let connect = |streams: &mut BTreeMap<String, Stream>, mesh: &Mesh| {
            for node in sidecar_nodes(mesh) {
                streams.entry(node.id.clone()).or_insert_with(|| Stream {
                    node: Arc::new(node),
                    watch: cache.watch(),
                    owed: true,
                    held: None,
                });
            }
        };
        connect(&mut streams, &mesh);
        let mut scratch = MeshGeneration::new(mesh.clone());
        // First every stream looks up its snapshot, then come the changes.
        let steps = std::iter::once(None).chain(changes.into_iter().map(Some));
        for (k, step) in steps.enumerate() {
            let mut looks = Vec::new();
            if let Some((index, fresh, part, busy)) = step {
                change_service(&mut current, index, fresh, part);
                let Some(mesh) = read_services(dir.path(), &mut loader, &mut resolver, &current) else { continue };
                incremental = Arc::new(MeshGeneration::succeed(mesh.clone(), &incremental));
                cache.publish(incremental.clone());
                scratch = MeshGeneration::new(mesh.clone());
                connect(&mut streams, &mesh);
                looks = busy;
            }
            let generation = cache.current();
            for (i, (id, stream)) in streams.iter_mut().enumerate() {
                stream.owed |= stream.watch.take_ring();
                let expected = scratch.snapshot_for(&stream.node);
                // Some streams are busy and look at a later generation only.
                if stream.owed && looks.get(i).copied().unwrap_or(true) {
                    let found = generation.snapshot_for_stream(&stream.node);
                    stream.watch.hold(&generation, found.as_ref().ok().map(|s| &**s));
                    stream.owed = false;
                    match (&found, &expected) {
                        (Ok(a), Ok(b)) => prop_assert!(a == b, "change {k}, {id}: {:#?}\n!=\n{:#?}", a.listing(), b.listing()),
                        (a, b) => prop_assert_eq!(a.as_ref().err(), b.as_ref().err(), "change {}, {}", k, id),
                    }
                    stream.held = found.ok();
                } else if !stream.owed {
                    match (&stream.held, &expected) {
                        (Some(a), Ok(b)) => prop_assert!(a == b, "change {k}, {id}, not rung: {:#?}\n!=\n{:#?}", a.listing(), b.listing()),
                        (None, Err(_)) => {}
                        (a, b) => prop_assert!(false, "change {k}, {id}, not rung: holds {:?}, would get {:?}", a.is_some(), b.as_ref().err()),
                    }
                }
            }
        }
    }
}

/// Changes one service of `services` after another drawn at random: only its VirtualService (what changes most),
/// only its policies (its DestinationRule), only its Sidecar, only its workloads (their versions), or all of it;
/// or adds a service (with its workloads, policies and Sidecar), or removes the last one. Some draws are invalid
/// on purpose (a route to a removed service).
fn change_service(
    services: &mut Vec<Svc>,
    index: prop::sample::Index,
    fresh: Vec<Svc>,
    part: usize,
) {
    let i = index.index(services.len());
    let fresh = fresh[i % fresh.len()].clone();
    if part == 5 {
        services.push(fresh);
        return;
    }
    if part == 6 {
        if services.len() > 1 {
            services.pop();
        }
        return;
    }
    let service = &mut services[i];
    match part {
        0 => service.vs = fresh.vs,
        1 => {
            service.policy = fresh.policy;
            service.subset_policy = fresh.subset_policy;
        }
        2 => service.egress = fresh.egress,
        3 => service.versions = fresh.versions,
        _ => *service = fresh,
    }
}

/// Whether every route leads to a service the case has (`yaml` cannot write one that does not).
fn routes_in_range(services: &[Svc]) -> bool {
    !services
        .iter()
        .filter_map(|s| s.vs.as_ref())
        .flatten()
        .flat_map(|h| &h.dests)
        .any(|(target, _, _)| *target >= services.len())
}

/// `services` written into `dir` and read back as the server reads its directory, or `None` if that is not a
/// valid mesh.
fn read_services(
    dir: &std::path::Path,
    loader: &mut spec::Loader,
    resolver: &mut mesh::Resolver,
    services: &[Svc],
) -> Option<std::sync::Arc<Mesh>> {
    if !routes_in_range(services) {
        return None;
    }
    let changed = write_services(dir, services);
    let config = loader
        .load_changes(&[dir.to_path_buf()], Some(&changed))
        .ok()?;
    resolver.resolve(&config).ok().map(|r| r.mesh)
}

/// Writes `services` into `dir` as [`files`] has them, removing the files of resources that are gone; a file
/// whose text is unchanged is left alone, as when a user edits one file.
/// Returns the paths written or removed, as the directory watcher would name them.
fn write_services(dir: &std::path::Path, services: &[Svc]) -> BTreeSet<std::path::PathBuf> {
    let (mut wanted, mut changed) = (BTreeSet::new(), BTreeSet::new());
    for (name, doc) in files(services) {
        let path = dir.join(&name);
        if std::fs::read_to_string(&path).ok() != Some(doc.clone()) {
            std::fs::write(&path, doc).unwrap();
            changed.insert(path);
        }
        wanted.insert(name);
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if !wanted.contains(entry.file_name().to_string_lossy().as_ref()) {
            std::fs::remove_file(entry.path()).unwrap();
            changed.insert(entry.path());
        }
    }
    changed
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// A loader told which files changed patches its last listing, and a resolver reuses what the previous
    /// reading resolved when a step's resources are the very ones it had; every reading must nevertheless
    /// resolve exactly as the directory read and resolved from nothing does: the same mesh, or the same
    /// diagnostics, in order.
    #[test]
    fn readings_resolved_in_turn_equal_readings_resolved_from_scratch(
        base in services(),
        changes in proptest::collection::vec((any::<prop::sample::Index>(), services(), 0..7usize), 1..6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut loader = spec::Loader::new(spec::LoadOptions::default());
        let mut resolver = mesh::Resolver::default();
        let mut current = base;
        for (k, change) in std::iter::once(None).chain(changes.into_iter().map(Some)).enumerate() {
            if let Some((index, fresh, part)) = change {
                change_service(&mut current, index, fresh, part);
            }
            if !routes_in_range(&current) {
                continue;
            }
            // Told what changed, as the directory watcher tells it; from scratch, listed and read whole.
            let changed = write_services(dir.path(), &current);
            let paths = [dir.path().to_path_buf()];
            let (config, scratch_config) = (loader.load_changes(&paths, Some(&changed)), spec::load_paths(&paths));
            prop_assert_eq!(config.is_ok(), scratch_config.is_ok(), "reading {}", k);
            let (Ok(config), Ok(scratch_config)) = (config, scratch_config) else { continue };
            let (incremental, scratch) = (resolver.resolve(&config), mesh::resolve(&scratch_config));
            match (incremental, scratch) {
                (Ok(a), Ok(b)) => {
                    prop_assert!(a.mesh == b.mesh, "reading {k}: the meshes differ");
                    prop_assert_eq!(a.warnings, b.warnings, "reading {}", k);
                }
                (a, b) => prop_assert_eq!(a.err(), b.err(), "reading {}", k),
            }
        }
    }
}
