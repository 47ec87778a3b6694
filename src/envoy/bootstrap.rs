//! The bootstrap Envoy starts from: who it is, where its admin listens, and how it reaches Switchyard.
//! Everything else (listeners, routes, clusters, endpoints) comes over ADS.
//!
//! envoy-types has no serde support, so the bootstrap is rendered as a JSON value in Envoy's own field names
//! and written out as YAML.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde_json::{json, Value};

use super::error::EnvoyError;
use super::node::NodeIdentity;

/// The static cluster through which Envoy reaches the xDS server.
pub const XDS_CLUSTER: &str = "xds_cluster";

/// Which ADS flavour Envoy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdsMode {
    /// State of the World: every response carries the full set of resources of its type.
    #[default]
    Sotw,
    /// Incremental: responses carry only what changed, plus removals.
    Delta,
}

impl XdsMode {
    fn api_type(self) -> &'static str {
        match self {
            XdsMode::Sotw => "GRPC",
            XdsMode::Delta => "DELTA_GRPC",
        }
    }
}

impl fmt::Display for XdsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdsMode::Sotw => "sotw",
            XdsMode::Delta => "delta",
        })
    }
}

impl FromStr for XdsMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sotw" => Ok(XdsMode::Sotw),
            "delta" => Ok(XdsMode::Delta),
            other => Err(format!(
                "unknown xDS mode {other:?} (expected \"sotw\" or \"delta\")"
            )),
        }
    }
}

/// Everything that differs between two Switchyard bootstraps.
#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapOptions {
    pub node: NodeIdentity,
    /// Envoy's admin listener; port 0 lets the OS choose (see `EnvoyProcess::admin_address`).
    pub admin: SocketAddr,
    /// The xDS server.
    pub xds: SocketAddr,
    pub mode: XdsMode,
    /// `None`: plaintext xDS.
    pub tls: Option<XdsClientTls>,
}

/// How Envoy reaches Switchyard over mutual TLS: its own certificate and key (the identity Switchyard
/// checks its node against), and the CA and name it expects of Switchyard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdsClientTls {
    pub cert_chain: PathBuf,
    pub key: PathBuf,
    pub root_cert: PathBuf,
    /// Sent as SNI and required among the DNS SANs of Switchyard's certificate.
    pub server_name: String,
}

impl XdsClientTls {
    /// The xDS cluster's `transport_socket`. Envoy reads the files once, at start.
    fn transport_socket(&self) -> Value {
        let path = |p: &PathBuf| json!({ "filename": p.display().to_string() });
        json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": self.server_name,
                "common_tls_context": {
                    // gRPC: Switchyard's TLS listener speaks HTTP/2 only.
                    "alpn_protocols": ["h2"],
                    "tls_certificates": [ {
                        "certificate_chain": path(&self.cert_chain),
                        "private_key": path(&self.key),
                    } ],
                    "validation_context": {
                        "trusted_ca": path(&self.root_cert),
                        // Without a SAN matcher Envoy accepts any certificate the CA signed, a proxy's too.
                        "match_typed_subject_alt_names": [
                            { "san_type": "DNS", "matcher": { "exact": self.server_name } },
                        ],
                    },
                },
            },
        })
    }
}

impl BootstrapOptions {
    /// The bootstrap as a JSON value in Envoy's field names.
    pub fn to_value(&self) -> Value {
        let BootstrapOptions {
            node,
            admin,
            xds,
            mode,
            tls,
        } = self;
        let ads_source = json!({ "resource_api_version": "V3", "ads": {} });
        json!({
            "node": {
                "id": node.id,
                "cluster": node.cluster,
                "metadata": node.metadata,
            },
            "admin": { "address": socket_address(*admin) },
            "dynamic_resources": {
                "ads_config": {
                    "api_type": mode.api_type(),
                    "transport_api_version": "V3",
                    "grpc_services": [ { "envoy_grpc": { "cluster_name": XDS_CLUSTER } } ],
                },
                "lds_config": ads_source,
                "cds_config": ads_source,
            },
            "static_resources": { "clusters": [ xds_cluster(*xds, tls.as_ref()) ] },
            "layered_runtime": layered_runtime(),
            "stats_config": stats_config(),
        })
    }

    /// The bootstrap as YAML, ready for `envoy -c bootstrap.yaml`.
    pub fn to_yaml(&self) -> Result<String, EnvoyError> {
        Ok(serde_yaml::to_string(&self.to_value())?)
    }
}

/// The tag rules Istio's bootstraps carry, so that Envoy's Prometheus output names a cluster in a label
/// (`envoy_cluster_upstream_rq_total{cluster_name="outbound|9080|v1|reviews.default.svc.cluster.local"}`) as an
/// Istio user's dashboards expect. Envoy's own default rules cut a cluster name at its first dot and fold the rest
/// into the metric name, so they are off, as in Istio. `/stats` keeps the full names either way.
fn stats_config() -> Value {
    // Each regex's first capture group is removed from the name, its second is the tag's value.
    // Addresses in listener and HTTP connection manager prefixes: IPv4 (`127.0.4.1_9080`) or IPv6 (`[__1]_9080`).
    const ADDRESS: &str = r"(?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*)";
    let tag = |name: &str, regex: String| json!({ "tag_name": name, "regex": regex });
    json!({
        "use_all_default_tags": false,
        "stats_tags": [
            // A service's cluster name holds dots: take it up to `.svc.cluster.local`, else to the first dot.
            tag("cluster_name", r"^cluster\.((.+?(\..+?\.svc\.cluster\.local)?)\.)".to_string()),
            tag("tcp_prefix", r"^tcp\.((.*?)\.)\w+?$".to_string()),
            tag("response_code", r"_rq(_(\d{3}))$".to_string()),
            tag("response_code_class", r"_rq(_(\dxx))$".to_string()),
            tag(
                "http_conn_manager_listener_prefix",
                format!(r"^listener(?=\.).*?\.http\.(({ADDRESS})\.)"),
            ),
            tag("http_conn_manager_prefix", format!(r"^http\.(({ADDRESS})\.)")),
            tag("listener_address", format!(r"^listener\.(({ADDRESS})\.)")),
        ],
    })
}

fn socket_address(addr: SocketAddr) -> Value {
    json!({ "socket_address": { "address": addr.ip().to_string(), "port_value": addr.port() } })
}

/// Istio's bootstrap raises RE2's program-size limits (Envoy's default of 100 rejects ordinary route regexes
/// such as `/reviews/[a-z0-9-]{1,64}`); the admin layer keeps `/runtime_modify` working as without a
/// `layered_runtime`.
fn layered_runtime() -> Value {
    json!({
        "layers": [
            {
                "name": "global config",
                "static_layer": {
                    "re2.max_program_size.error_level": 32768,
                    "re2.max_program_size.warn_level": 1000,
                },
            },
            { "name": "admin", "admin_layer": {} },
        ],
    })
}

fn xds_cluster(xds: SocketAddr, tls: Option<&XdsClientTls>) -> Value {
    let mut cluster = json!({
        "name": XDS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        // gRPC needs HTTP/2 upstream; without it Envoy fails silently (only upstream_cx_protocol_error rises).
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {
                    "http2_protocol_options": {
                        // Notices a control plane that vanished without closing the connection.
                        "connection_keepalive": { "interval": "30s", "timeout": "5s" },
                    },
                },
            },
        },
        "upstream_connection_options": { "tcp_keepalive": { "keepalive_time": 300 } },
        "load_assignment": {
            "cluster_name": XDS_CLUSTER,
            "endpoints": [ { "lb_endpoints": [ { "endpoint": { "address": socket_address(xds) } } ] } ],
        },
    });
    if let (Some(tls), Some(fields)) = (tls, cluster.as_object_mut()) {
        fields.insert("transport_socket".into(), tls.transport_socket());
    }
    cluster
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn options(mode: XdsMode) -> BootstrapOptions {
        let mut metadata = Map::new();
        metadata.insert("NAMESPACE".into(), json!("default"));
        metadata.insert(
            "LABELS".into(),
            json!({ "app": "ratings", "version": "v1" }),
        );
        BootstrapOptions {
            node: NodeIdentity::new(
                "sidecar~127.0.6.1~ratings-v1.default~default.svc.cluster.local",
                "ratings.default",
                metadata,
            ),
            admin: "127.0.6.1:15000".parse().unwrap(),
            xds: "127.0.0.1:15010".parse().unwrap(),
            mode,
            tls: None,
        }
    }

    fn rendered(mode: XdsMode) -> Value {
        let yaml = options(mode).to_yaml().unwrap();
        serde_yaml::from_str(&yaml).unwrap()
    }

    #[test]
    fn node_and_admin_round_trip_through_yaml() {
        let b = rendered(XdsMode::Sotw);
        assert_eq!(
            b["node"]["id"],
            "sidecar~127.0.6.1~ratings-v1.default~default.svc.cluster.local"
        );
        assert_eq!(b["node"]["cluster"], "ratings.default");
        assert_eq!(b["node"]["metadata"]["LABELS"]["version"], "v1");
        assert_eq!(b["node"]["metadata"]["NAMESPACE"], "default");
        assert_eq!(
            b["admin"]["address"]["socket_address"]["address"],
            "127.0.6.1"
        );
        assert_eq!(b["admin"]["address"]["socket_address"]["port_value"], 15000);
    }

    #[test]
    fn ads_config_per_mode() {
        for (mode, api_type) in [(XdsMode::Sotw, "GRPC"), (XdsMode::Delta, "DELTA_GRPC")] {
            let b = rendered(mode);
            let ads = &b["dynamic_resources"]["ads_config"];
            assert_eq!(ads["api_type"], api_type);
            assert_eq!(ads["transport_api_version"], "V3");
            assert_eq!(
                ads["grpc_services"][0]["envoy_grpc"]["cluster_name"],
                XDS_CLUSTER
            );
            for source in ["lds_config", "cds_config"] {
                assert_eq!(
                    b["dynamic_resources"][source],
                    json!({ "resource_api_version": "V3", "ads": {} })
                );
            }
        }
    }

    #[test]
    fn xds_cluster_is_static_http2_to_the_server() {
        let b = rendered(XdsMode::Delta);
        let clusters = b["static_resources"]["clusters"].as_array().unwrap();
        assert_eq!(clusters.len(), 1);
        let c = &clusters[0];
        assert_eq!(c["name"], XDS_CLUSTER);
        assert_eq!(c["type"], "STATIC");
        let options = &c["typed_extension_protocol_options"]
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        assert_eq!(
            options["@type"],
            "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        );
        assert!(options["explicit_http_config"]["http2_protocol_options"].is_object());
        let endpoint = &c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
            ["address"]["socket_address"];
        assert_eq!(endpoint["address"], "127.0.0.1");
        assert_eq!(endpoint["port_value"], 15010);
        assert_eq!(c["load_assignment"]["cluster_name"], XDS_CLUSTER);
    }

    #[test]
    fn mutual_tls_puts_the_proxys_certificate_and_the_ca_on_the_xds_cluster() {
        let plain = rendered(XdsMode::Sotw);
        assert!(plain["static_resources"]["clusters"][0]
            .get("transport_socket")
            .is_none());
        let mut with_tls = options(XdsMode::Sotw);
        with_tls.tls = Some(XdsClientTls {
            cert_chain: "/certs/ratings-v1.default/cert-chain.pem".into(),
            key: "/certs/ratings-v1.default/key.pem".into(),
            root_cert: "/certs/ratings-v1.default/root-cert.pem".into(),
            server_name: "switchyard".into(),
        });
        let b: Value = serde_yaml::from_str(&with_tls.to_yaml().unwrap()).unwrap();
        let socket = &b["static_resources"]["clusters"][0]["transport_socket"];
        assert_eq!(socket["name"], "envoy.transport_sockets.tls");
        let context = &socket["typed_config"];
        assert_eq!(
            context["@type"],
            "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
        );
        assert_eq!(context["sni"], "switchyard");
        let common = &context["common_tls_context"];
        assert_eq!(common["alpn_protocols"], json!(["h2"]));
        assert_eq!(
            common["tls_certificates"][0]["private_key"]["filename"],
            "/certs/ratings-v1.default/key.pem"
        );
        assert_eq!(
            common["validation_context"]["trusted_ca"]["filename"],
            "/certs/ratings-v1.default/root-cert.pem"
        );
        assert_eq!(
            common["validation_context"]["match_typed_subject_alt_names"][0]["matcher"]["exact"],
            "switchyard"
        );
    }

    #[test]
    fn nothing_but_the_six_sections() {
        let b = rendered(XdsMode::Sotw);
        let keys: Vec<&str> = b.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "admin",
                "dynamic_resources",
                "layered_runtime",
                "node",
                "static_resources",
                "stats_config"
            ]
        );
    }

    #[test]
    fn runtime_raises_re2_program_size_as_istio_does() {
        let b = rendered(XdsMode::Sotw);
        let layers = b["layered_runtime"]["layers"].as_array().unwrap();
        let static_layer = &layers[0]["static_layer"];
        assert_eq!(static_layer["re2.max_program_size.error_level"], 32768);
        assert_eq!(static_layer["re2.max_program_size.warn_level"], 1000);
        assert!(layers[1]["admin_layer"].is_object());
    }

    #[test]
    fn mode_parses_and_prints() {
        for mode in [XdsMode::Sotw, XdsMode::Delta] {
            assert_eq!(mode.to_string().parse::<XdsMode>().unwrap(), mode);
        }
        assert!("grpc"
            .parse::<XdsMode>()
            .unwrap_err()
            .contains("\"sotw\" or \"delta\""));
    }
}
