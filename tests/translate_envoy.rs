//! Real Envoy accepts what `translate` produces: every proxy of every golden case is loaded by
//! `envoy --mode validate`, which runs the proto constraint checks and builds listeners, routes and clusters.
//!
//! RDS and EDS content cannot be static in a bootstrap, so the bootstrap carries each route configuration
//! inline in its listener's connection manager and each ClusterLoadAssignment as the `load_assignment` of a
//! static twin cluster; the EDS clusters themselves stay as translated, with ADS configured.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use support::golden;

use envoy_types::pb::envoy::config::bootstrap::v3::{bootstrap, Bootstrap};
use envoy_types::pb::envoy::config::cluster::v3::cluster;
use envoy_types::pb::envoy::config::core::v3::{
    api_config_source, grpc_service, ApiConfigSource, ApiVersion, GrpcService,
};
use envoy_types::pb::envoy::config::listener::v3::filter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use envoy_types::util::pack_any;
use prost::Message;
use prost_reflect::{DynamicMessage, SerializeOptions};
use serde::Deserialize;
use switchyard::mesh::{self, Proxy};
use switchyard::translate::{self, build, Resources};

/// The resources as one static bootstrap (see the module comment).
fn bootstrap(r: &Resources, node: envoy_types::pb::envoy::config::core::v3::Node) -> Bootstrap {
    let mut listeners = r.listeners.clone();
    for l in &mut listeners {
        for chain in &mut l.filter_chains {
            for f in &mut chain.filters {
                let Some(filter::ConfigType::TypedConfig(any)) = &mut f.config_type else {
                    continue;
                };
                let mut hcm = HttpConnectionManager::decode(any.value.as_slice()).expect("hcm");
                if let Some(RouteSpecifier::Rds(rds)) = &hcm.route_specifier {
                    let config = r
                        .routes
                        .iter()
                        .find(|rc| rc.name == rds.route_config_name)
                        .expect("route config")
                        .clone();
                    hcm.route_specifier = Some(RouteSpecifier::RouteConfig(config));
                }
                *any = pack_any(hcm);
            }
        }
    }
    let mut clusters = r.clusters.clone();
    for cla in &r.endpoints {
        let mut twin = build::inline_cluster(
            &format!("eds-check|{}", cla.cluster_name),
            cluster::DiscoveryType::Static,
            cla.clone(),
        );
        twin.load_assignment.as_mut().expect("cla").cluster_name = twin.name.clone();
        clusters.push(twin);
    }
    let mut xds = build::inline_cluster(
        "xds",
        cluster::DiscoveryType::Static,
        build::cluster_load_assignment(
            "xds",
            vec![build::locality_lb_endpoints(
                None,
                vec![build::lb_endpoint(
                    build::socket_address("127.0.0.1", 15010),
                    None,
                )],
                None,
            )],
        ),
    );
    xds.typed_extension_protocol_options = std::iter::once((
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_owned(),
        pack_any(envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions {
            upstream_protocol_options: Some(envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::ExplicitHttpConfig {
                    protocol_config: Some(envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(Default::default())),
                },
            )),
            ..Default::default()
        }),
    ))
    .collect();
    clusters.push(xds);
    Bootstrap {
        node: Some(node),
        static_resources: Some(bootstrap::StaticResources {
            listeners,
            clusters,
            ..Default::default()
        }),
        dynamic_resources: Some(bootstrap::DynamicResources {
            ads_config: Some(ApiConfigSource {
                api_type: api_config_source::ApiType::Grpc as i32,
                transport_api_version: ApiVersion::V3 as i32,
                grpc_services: vec![GrpcService {
                    target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                        grpc_service::EnvoyGrpc {
                            cluster_name: "xds".to_owned(),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The runtime layers of the bootstrap Switchyard writes for real proxies (they raise RE2's program-size
/// limit, which route regexes rely on).
fn switchyard_runtime() -> serde_json::Value {
    let options = switchyard::envoy::BootstrapOptions {
        node: switchyard::envoy::NodeIdentity::new(
            "sidecar~127.0.0.1~x.default~default.svc.cluster.local",
            "x.default",
            serde_json::Map::new(),
        ),
        admin: "127.0.0.1:0".parse().expect("addr"),
        xds: "127.0.0.1:15010".parse().expect("addr"),
        mode: switchyard::envoy::XdsMode::Sotw,
        tls: None,
    };
    options.to_value()["layered_runtime"].clone()
}

fn to_json(b: &Bootstrap) -> String {
    let desc = golden::pool()
        .get_message_by_name("envoy.config.bootstrap.v3.Bootstrap")
        .expect("Bootstrap descriptor");
    let msg = DynamicMessage::decode(desc, b.encode_to_vec().as_slice()).expect("decode bootstrap");
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::new(&mut out);
    msg.serialize_with_options(
        &mut ser,
        &SerializeOptions::new().use_proto_field_name(true),
    )
    .expect("json");
    let mut value: serde_json::Value = serde_json::from_slice(&out).expect("bootstrap json");
    value["layered_runtime"] = switchyard_runtime();
    value.to_string()
}

#[derive(Deserialize)]
struct Case {
    inputs: Vec<String>,
    proxies: String,
}

#[test]
fn envoy_accepts_every_golden_proxy() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = golden::golden_dir().join("translate");
    let mut cases: Vec<_> = fs::read_dir(&root)
        .expect("cases")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("case.yaml").is_file())
        .collect();
    cases.sort();
    let mut failures = Vec::new();
    let mut checked = 0;
    for dir in cases {
        let case: Case =
            serde_yaml::from_str(&fs::read_to_string(dir.join("case.yaml")).expect("case"))
                .expect("case yaml");
        let config = golden::load_inputs(&dir, &case.inputs);
        let resolved = mesh::resolve(&config).expect("resolve");
        let proxies: std::collections::BTreeMap<String, serde_yaml::Value> =
            serde_yaml::from_str(&fs::read_to_string(dir.join(&case.proxies)).expect("proxies"))
                .expect("proxies yaml");
        for (name, node) in &proxies {
            let node = golden::node_from_yaml(node);
            let proxy = Proxy::identify(&resolved.mesh, &node).expect("identify");
            let resources = translate::translate(&resolved.mesh, &proxy);
            let label = format!(
                "{}-{name}",
                dir.file_name().expect("name").to_string_lossy()
            );
            checked += 1;
            failures.extend(envoy_rejects(tmp.path(), &label, &resources, node));
        }
    }
    assert_all_accepted(checked, &failures);
}

/// Writes the resources as one bootstrap and runs `envoy --mode validate` on it; Envoy's complaint if it rejects
/// them.
fn envoy_rejects(
    tmp: &Path,
    label: &str,
    resources: &Resources,
    node: envoy_types::pb::envoy::config::core::v3::Node,
) -> Option<String> {
    let path = tmp.join(format!("{label}.json"));
    fs::write(&path, to_json(&bootstrap(resources, node))).expect("write bootstrap");
    support::envoy::validate(&path)
}

/// Fails naming every configuration Envoy rejected.
fn assert_all_accepted(checked: usize, failures: &[String]) {
    assert!(checked > 0);
    assert!(
        failures.is_empty(),
        "Envoy rejected {} of {checked} configs:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The node of every proxy a mesh can serve: a sidecar per WorkloadEntry, a router per Gateway selector.
fn nodes_of(mesh: &mesh::Mesh) -> Vec<(String, serde_yaml::Value)> {
    let mut out = Vec::new();
    for w in mesh.workloads.values() {
        let yaml = format!(
            "id: sidecar~127.0.1.1~{name}.{ns}~{ns}.svc.cluster.local\ncluster: {name}.{ns}\nmetadata: {{NAMESPACE: {ns}, WORKLOAD_NAME: {name}, INTERCEPTION_MODE: NONE}}\n",
            name = w.name,
            ns = w.namespace
        );
        out.push((
            format!("{}.{}", w.name, w.namespace),
            serde_yaml::from_str(&yaml).expect("node"),
        ));
    }
    for (i, (key, gateway)) in mesh.gateways.iter().enumerate() {
        let ns = key.split('/').next().unwrap_or("default");
        let mut node: serde_yaml::Value = serde_yaml::from_str(&format!(
            "id: router~127.0.9.1~gateway-{i}.{ns}~{ns}.svc.cluster.local\ncluster: gateway-{i}.{ns}\nmetadata: {{NAMESPACE: {ns}, WORKLOAD_NAME: gateway-{i}}}\n"
        ))
        .expect("node");
        node["metadata"]["LABELS"] = serde_yaml::to_value(&gateway.selector).expect("labels");
        out.push((format!("gateway-{i}"), node));
    }
    out
}

/// Every mesh the `translate` fuzz target kept that validates (docs/fuzzing.md): Envoy accepts what each of its
/// proxies is given. `SWITCHYARD_FUZZ_CORPUS=DIR` checks a whole corpus instead of the kept set.
#[test]
fn envoy_accepts_what_fuzzed_meshes_translate_to() {
    let dir = std::env::var_os("SWITCHYARD_FUZZ_CORPUS").map_or_else(
        || golden::manifest_dir().join("tests/fuzz/translate"),
        PathBuf::from,
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut inputs: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("fuzz inputs")
        .flatten()
        .map(|e| e.path())
        .collect();
    inputs.sort();
    let (mut meshes, mut checked, mut failures) = (0, 0, Vec::new());
    for input in &inputs {
        let text = String::from_utf8_lossy(&fs::read(input).expect("read")).into_owned();
        let Ok(config) = switchyard::spec::load_str(input, &text) else {
            continue;
        };
        let Ok(resolved) = mesh::resolve(&config) else {
            continue;
        };
        meshes += 1;
        eprintln!("{}: resolves", input.display());
        for (name, node) in nodes_of(&resolved.mesh) {
            let node = golden::node_from_yaml(&node);
            let Ok(proxy) = Proxy::identify(&resolved.mesh, &node) else {
                continue;
            };
            let resources = translate::translate(&resolved.mesh, &proxy);
            let label = format!(
                "{}-{name}",
                input.file_name().expect("name").to_string_lossy()
            );
            checked += 1;
            failures.extend(envoy_rejects(tmp.path(), &label, &resources, node));
        }
    }
    eprintln!(
        "{meshes} meshes of {} inputs, {checked} proxies validated by Envoy",
        inputs.len()
    );
    assert_all_accepted(checked, &failures);
}
