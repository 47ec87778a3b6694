//! Hand-built Envoy resources: a listener whose route sends everything to one EDS cluster.

use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::{
    address, config_source, socket_address, Address, AggregatedConfigSource, ApiVersion,
    ConfigSource, SocketAddress,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::{
    route, route_action, route_match, Route, RouteAction, RouteConfiguration, RouteMatch,
    VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::google::protobuf::Duration;
use envoy_types::util::pack_any;
use switchyard::xds::Snapshot;

fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

pub fn socket(ip: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port as u32)),
            ..Default::default()
        })),
    }
}

pub fn eds_cluster(name: &str, connect_timeout_ms: i32) -> Cluster {
    Cluster {
        name: name.to_string(),
        connect_timeout: Some(Duration {
            seconds: i64::from(connect_timeout_ms / 1000),
            nanos: (connect_timeout_ms % 1000) * 1_000_000,
        }),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ads()),
            service_name: name.to_string(),
        }),
        ..Default::default()
    }
}

pub fn assignment(cluster: &str, endpoints: &[(&str, u16)]) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: cluster.to_string(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: endpoints
                .iter()
                .map(|(ip, port)| LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(socket(ip, *port)),
                        ..Default::default()
                    })),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub fn http_listener(name: &str, ip: &str, port: u16, route_config: &str) -> Listener {
    let hcm = HttpConnectionManager {
        stat_prefix: name.to_string(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: route_config.to_string(),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".to_string(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
                Router::default(),
            ))),
            ..Default::default()
        }],
        ..Default::default()
    };
    Listener {
        name: name.to_string(),
        address: Some(socket(ip, port)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".to_string(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub fn route_to(name: &str, cluster: &str) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_string(),
        virtual_hosts: vec![VirtualHost {
            name: "all".to_string(),
            domains: vec!["*".to_string()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_string())),
                    ..Default::default()
                }),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                        cluster.to_string(),
                    )),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Two EDS clusters `a` and `b`, their endpoints, and a listener on `listen` routing to `route_target`.
pub struct Fixture {
    pub listen: (String, u16),
    pub a_endpoints: Vec<(String, u16)>,
    pub b_endpoints: Vec<(String, u16)>,
    pub route_target: String,
    pub a_timeout_ms: i32,
}

impl Default for Fixture {
    fn default() -> Fixture {
        Fixture {
            listen: ("127.0.0.1".to_string(), 10000),
            a_endpoints: vec![("127.0.0.1".to_string(), 9000)],
            b_endpoints: vec![("127.0.0.1".to_string(), 9001)],
            route_target: "a".to_string(),
            a_timeout_ms: 1000,
        }
    }
}

impl Fixture {
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_builder().build()
    }

    pub fn snapshot_builder(&self) -> switchyard::xds::SnapshotBuilder<'static> {
        Snapshot::builder()
            .cluster(&eds_cluster("a", self.a_timeout_ms))
            .cluster(&eds_cluster("b", 1000))
            .endpoint(&assignment("a", &as_refs(&self.a_endpoints)))
            .endpoint(&assignment("b", &as_refs(&self.b_endpoints)))
            .listener(&http_listener(
                "main",
                &self.listen.0,
                self.listen.1,
                "main",
            ))
            .route(&route_to("main", &self.route_target))
    }
}

fn as_refs(endpoints: &[(String, u16)]) -> Vec<(&str, u16)> {
    endpoints
        .iter()
        .map(|(ip, port)| (ip.as_str(), *port))
        .collect()
}
