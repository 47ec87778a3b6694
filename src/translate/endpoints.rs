//! EDS: one ClusterLoadAssignment per EDS cluster; a subset's endpoints are the service's endpoints whose labels
//! include the subset's labels (`endpoint_builder.go`).

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LbEndpoint};

use super::build;
use crate::mesh::{labels_match, Endpoint, Labels, Mesh, Resolution, Service, ServicePort};

type HostPort<'a> = (&'a str, u32, Option<u32>);

/// The endpoints of one service's EDS clusters.
pub(super) fn outbound(mesh: &Mesh, service: &Service) -> Vec<ClusterLoadAssignment> {
    mesh.outbound_clusters_of(service)
        .filter(|oc| oc.service.resolution == Resolution::Static)
        .map(|oc| assignment(&oc.name(), oc.service, oc.port, oc.subset, mesh))
        .collect()
}

/// Endpoints grouped by locality (in locality order, endpoints by address), each group weighted by the sum of
/// its endpoints' weights as Istio does.
pub(super) fn assignment(
    name: &str,
    service: &Service,
    port: &ServicePort,
    subset: Option<&str>,
    mesh: &Mesh,
) -> ClusterLoadAssignment {
    let empty = Labels::new();
    let selector = subset
        .and_then(|s| {
            mesh.destination_rules
                .get(&service.hostname)
                .and_then(|dr| dr.subset(s))
        })
        .map_or(&empty, |s| &s.labels);
    // locality → (address, port, weight)
    let mut by_locality: BTreeMap<&str, Vec<HostPort<'_>>> = BTreeMap::new();
    for e in &service.endpoints {
        let Endpoint {
            address,
            labels,
            weight,
            locality,
            // Read by `port_for`; the WorkloadEntry names the proxy whose inbound ports it serves (`inbound_ports`).
            ports: _,
            workload: _,
        } = e;
        if labels_match(selector, labels) {
            by_locality
                .entry(locality.as_deref().unwrap_or(""))
                .or_default()
                .push((address.as_str(), e.port_for(port), *weight));
        }
    }
    let groups = by_locality
        .into_iter()
        .map(|(locality, mut list)| {
            list.sort();
            let total: u32 = list
                .iter()
                .map(|(_, _, w)| w.unwrap_or(1))
                .fold(0u32, u32::saturating_add);
            let lb: Vec<LbEndpoint> = list
                .into_iter()
                .map(|(address, p, weight)| {
                    build::lb_endpoint(build::socket_address(address, p), weight)
                })
                .collect();
            let locality = (!locality.is_empty()).then(|| build::locality(locality));
            build::locality_lb_endpoints(locality, lb, Some(total))
        })
        .collect();
    build::cluster_load_assignment(name, groups)
}
