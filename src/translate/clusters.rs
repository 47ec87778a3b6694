//! CDS: one cluster per service port plus one per DestinationRule subset, and the sidecar's inbound clusters.

use envoy_types::pb::envoy::config::cluster::v3::{
    cluster::{self, CommonLbConfig, LbPolicy, MaglevLbConfig, RingHashLbConfig},
    Cluster, OutlierDetection as EnvoyOutlier,
};
use envoy_types::pb::envoy::config::core::v3::HttpProtocolOptions as CommonHttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options, HttpProtocolOptions,
};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::UInt64Value;
use envoy_types::util::pack_any;

use super::build;
use super::endpoints;
use crate::mesh::names::ClusterName;
use crate::mesh::{
    ConnectionPool, ConsistentHash, HashAlgorithm, LoadBalancer, Mesh, OutlierDetection,
    PolicySettings, Resolution, Service, Sidecar,
};

/// The outbound clusters of one service.
pub(super) fn outbound(mesh: &Mesh, service: &Service) -> Vec<Cluster> {
    mesh.outbound_clusters_of(service)
        .map(|oc| {
            let (service, port, subset) = (oc.service, oc.port, oc.subset);
            let name = oc.name();
            let policy = mesh.policy_for(&service.hostname, subset, port.number);
            let mut c = match service.resolution {
                Resolution::Static => build::eds_cluster(&name),
                Resolution::Dns => {
                    let assignment = endpoints::assignment(&name, service, port, subset, mesh);
                    let mut c =
                        build::inline_cluster(&name, cluster::DiscoveryType::StrictDns, assignment);
                    // Istio's default for DNS clusters: IPv4 only.
                    c.dns_lookup_family = cluster::DnsLookupFamily::V4Only as i32;
                    c
                }
            };
            apply_policy(&mut c, &policy);
            let config = match oc.rule {
                Some(dr) => dr.meta.istio_config_path(),
                None => service.meta.istio_config_path(),
            };
            // Istio stamps `config` (the DestinationRule) and `services`; one key only, see build::route's
            // note on maps. Without a DestinationRule the ServiceEntry is named instead.
            c.metadata = Some(build::istio_metadata(&config));
            c
        })
        .collect()
}

/// `inbound|<port>||`: to the app behind this sidecar, at `SWITCHYARD_APP_IP` (the pod's "localhost").
pub(super) fn inbound(sidecar: &Sidecar, inbound: &[(u32, &Service)]) -> Vec<Cluster> {
    inbound
        .iter()
        .map(|&(port, service)| {
            let name = ClusterName::inbound(port).to_string();
            let assignment = build::cluster_load_assignment(
                &name,
                vec![build::locality_lb_endpoints(
                    None,
                    vec![build::lb_endpoint(
                        build::socket_address(&sidecar.app_ip, port),
                        None,
                    )],
                    None,
                )],
            );
            let mut c = build::inline_cluster(&name, cluster::DiscoveryType::Static, assignment);
            c.circuit_breakers = Some(build::circuit_breakers(
                u32::MAX,
                u32::MAX,
                u32::MAX,
                u32::MAX,
            ));
            c.metadata = Some(build::istio_metadata(&service.meta.istio_config_path()));
            c
        })
        .collect()
}

fn apply_policy(c: &mut Cluster, policy: &PolicySettings) {
    let PolicySettings {
        load_balancer,
        connection_pool: pool,
        outlier_detection: outlier,
    } = policy;
    // Istio's default algorithm is LEAST_REQUEST (`defaultLBAlgorithm`), not Envoy's ROUND_ROBIN.
    c.lb_policy = LbPolicy::LeastRequest as i32;
    match load_balancer {
        None | Some(LoadBalancer::LeastRequest) => {}
        Some(LoadBalancer::RoundRobin) => c.lb_policy = LbPolicy::RoundRobin as i32,
        Some(LoadBalancer::Random) => c.lb_policy = LbPolicy::Random as i32,
        // Rejected in mesh; kept exhaustive so a new variant must be decided here.
        Some(LoadBalancer::Passthrough) => {}
        // The key is the route's hash policy (`routes::hash`); the cluster takes the algorithm.
        Some(LoadBalancer::ConsistentHash(ConsistentHash { key: _, algorithm })) => {
            match *algorithm {
                HashAlgorithm::RingHash { minimum_ring_size } => {
                    c.lb_policy = LbPolicy::RingHash as i32;
                    c.lb_config = Some(cluster::LbConfig::RingHashLbConfig(RingHashLbConfig {
                        minimum_ring_size: minimum_ring_size.map(|value| UInt64Value { value }),
                        ..Default::default()
                    }));
                }
                HashAlgorithm::Maglev { table_size } => {
                    c.lb_policy = LbPolicy::Maglev as i32;
                    c.lb_config = Some(cluster::LbConfig::MaglevLbConfig(MaglevLbConfig {
                        table_size: table_size.map(|value| UInt64Value { value }),
                    }));
                }
            }
        }
    }
    connection_pool(c, &pool.clone().unwrap_or_default());
    if let Some(o) = outlier {
        outlier_detection(c, o);
    }
}

fn connection_pool(c: &mut Cluster, pool: &ConnectionPool) {
    let ConnectionPool {
        max_connections,
        connect_timeout,
        max_connection_duration,
        http1_max_pending_requests,
        http2_max_requests,
        max_requests_per_connection,
        max_retries,
        idle_timeout,
    } = *pool;
    c.circuit_breakers = Some(build::circuit_breakers(
        max_connections.unwrap_or(u32::MAX),
        http1_max_pending_requests.unwrap_or(u32::MAX),
        http2_max_requests.unwrap_or(u32::MAX),
        max_retries.unwrap_or(u32::MAX),
    ));
    if let Some(t) = connect_timeout {
        c.connect_timeout = Some(build::duration(t));
    }
    if idle_timeout.is_some()
        || max_connection_duration.is_some()
        || max_requests_per_connection.is_some()
    {
        let options = HttpProtocolOptions {
            common_http_protocol_options: Some(CommonHttpProtocolOptions {
                idle_timeout: idle_timeout.map(build::duration),
                max_connection_duration: max_connection_duration.map(build::duration),
                max_requests_per_connection: max_requests_per_connection.map(build::u32_value),
                ..Default::default()
            }),
            // Required by Envoy; Bookinfo speaks HTTP/1.1 upstream.
            upstream_protocol_options: Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                http_protocol_options::ExplicitHttpConfig {
                    protocol_config: Some(http_protocol_options::explicit_http_config::ProtocolConfig::HttpProtocolOptions(
                        Default::default(),
                    )),
                },
            )),
            ..Default::default()
        };
        // One entry: envoy-types' maps encode in random order (docs/architecture.md, "Determinism").
        #[allow(clippy::disallowed_types)]
        let single = std::collections::HashMap::from([(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_owned(),
            pack_any(options),
        )]);
        c.typed_extension_protocol_options = single;
    }
}

/// Istio's `applyOutlierDetection`: consecutive 5xx enforced at 100%, success-rate ejection off.
fn outlier_detection(c: &mut Cluster, o: &OutlierDetection) {
    let OutlierDetection {
        consecutive_5xx_errors,
        consecutive_gateway_errors,
        interval,
        base_ejection_time,
        max_ejection_percent,
        min_health_percent,
    } = *o;
    let mut out = EnvoyOutlier {
        enforcing_success_rate: Some(build::u32_value(0)),
        ..Default::default()
    };
    match consecutive_5xx_errors {
        Some(n) if n > 0 => {
            out.consecutive_5xx = Some(build::u32_value(n));
            out.enforcing_consecutive_5xx = Some(build::u32_value(100));
        }
        Some(_) => out.enforcing_consecutive_5xx = Some(build::u32_value(0)),
        None => {}
    }
    if let Some(n) = consecutive_gateway_errors {
        out.consecutive_gateway_failure = Some(build::u32_value(n));
        out.enforcing_consecutive_gateway_failure =
            Some(build::u32_value(if n > 0 { 100 } else { 0 }));
    }
    out.interval = interval.map(build::duration);
    out.base_ejection_time = base_ejection_time.map(build::duration);
    // Istio leaves 0 unset (Envoy's default of 10%) rather than forbidding ejection.
    out.max_ejection_percent = max_ejection_percent
        .filter(|p| *p > 0)
        .map(build::u32_value);
    // Istio sets the panic threshold whenever outlier detection is on, 0 when unset: Envoy's default of 50%
    // would route to ejected hosts in services with few endpoints.
    c.common_lb_config
        .get_or_insert_with(CommonLbConfig::default)
        .healthy_panic_threshold = Some(Percent {
        value: f64::from(min_health_percent.unwrap_or(0)),
    });
    c.outlier_detection = Some(out);
}
