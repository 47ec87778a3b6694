//! `envoy.config.cluster.v3` and `envoy.config.endpoint.v3`.

use envoy_types::pb::envoy::config::cluster::v3::{
    circuit_breakers::Thresholds, cluster, CircuitBreakers, Cluster,
};
use envoy_types::pb::envoy::config::core::v3::{Address, Locality};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};

use super::{ads_config_source, seconds, u32_value};

/// Istio's mesh default `connectTimeout`.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: i64 = 10;

/// An EDS cluster fed over ADS, with `service_name` = the cluster name (Istio's `maybeApplyEdsConfig`).
pub fn eds_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ads_config_source()),
            service_name: name.to_owned(),
        }),
        connect_timeout: Some(seconds(DEFAULT_CONNECT_TIMEOUT_SECS)),
        ..Default::default()
    }
}

/// A cluster whose endpoints are inline (STATIC for IPs, STRICT_DNS for host names).
pub fn inline_cluster(
    name: &str,
    kind: cluster::DiscoveryType,
    assignment: ClusterLoadAssignment,
) -> Cluster {
    Cluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(kind as i32)),
        load_assignment: Some(assignment),
        connect_timeout: Some(seconds(DEFAULT_CONNECT_TIMEOUT_SECS)),
        ..Default::default()
    }
}

/// Istio raises Envoy's circuit-breaker defaults (1024) to "unlimited" unless a DestinationRule says otherwise.
pub fn circuit_breakers(
    max_connections: u32,
    max_pending_requests: u32,
    max_requests: u32,
    max_retries: u32,
) -> CircuitBreakers {
    CircuitBreakers {
        thresholds: vec![Thresholds {
            max_connections: Some(u32_value(max_connections)),
            max_pending_requests: Some(u32_value(max_pending_requests)),
            max_requests: Some(u32_value(max_requests)),
            max_retries: Some(u32_value(max_retries)),
            track_remaining: true,
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub fn cluster_load_assignment(
    cluster_name: &str,
    endpoints: Vec<LocalityLbEndpoints>,
) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: cluster_name.to_owned(),
        endpoints,
        ..Default::default()
    }
}

pub fn locality_lb_endpoints(
    locality: Option<Locality>,
    lb_endpoints: Vec<LbEndpoint>,
    weight: Option<u32>,
) -> LocalityLbEndpoints {
    LocalityLbEndpoints {
        locality,
        lb_endpoints,
        load_balancing_weight: weight.map(u32_value),
        ..Default::default()
    }
}

pub fn lb_endpoint(address: Address, weight: Option<u32>) -> LbEndpoint {
    LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
            address: Some(address),
            ..Default::default()
        })),
        load_balancing_weight: weight.map(u32_value),
        ..Default::default()
    }
}

/// `region/zone/subzone`, any suffix optional.
pub fn locality(text: &str) -> Locality {
    let mut parts = text.splitn(3, '/');
    Locality {
        region: parts.next().unwrap_or_default().to_owned(),
        zone: parts.next().unwrap_or_default().to_owned(),
        sub_zone: parts.next().unwrap_or_default().to_owned(),
    }
}
