//! Pure translation of a `Mesh` into the Envoy resources one proxy should see.
//!
//! No `Result`: everything that can be wrong was reported by `mesh::resolve`. No logging, clocks, randomness or
//! `HashMap` iteration: the same mesh and proxy give identical resources, which golden tests and content-hash
//! versions rely on. Names follow Istio's (see `mesh::names`) so a config dump reads like Istio's.

pub mod build;
mod clusters;
mod endpoints;
mod listeners;
mod order;
mod routes;

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::cluster::v3::{cluster::ClusterDiscoveryType, Cluster};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::{filter, Listener};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use prost::Message;

use crate::mesh::{Mesh, Proxy, RouteScope, Router, Service, Sidecar};

/// Everything one proxy gets, each list sorted by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub clusters: Vec<Cluster>,
    pub endpoints: Vec<ClusterLoadAssignment>,
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
}

/// Everything `proxy` gets: what every proxy shares plus what is its own. The xDS server builds the same from
/// its parts ([`service_clusters`], [`service_endpoints`], [`sidecar_routes`], [`sidecar_own`],
/// [`router_own`]) so that shared parts are translated once, not once per proxy.
pub fn translate(mesh: &Mesh, proxy: &Proxy) -> Resources {
    // A gateway reaches every service; a sidecar those its Sidecar resource admits.
    let egress = match proxy {
        Proxy::Sidecar(sidecar) => sidecar.egress.as_deref(),
        Proxy::Router(_) => None,
    };
    let mut clusters: Vec<Cluster> = Vec::new();
    let mut endpoints = Vec::new();
    for service in mesh.services.values().filter(|s| mesh.reaches(egress, s)) {
        clusters.extend(clusters::outbound(mesh, service));
        endpoints.extend(endpoints::outbound(mesh, service));
    }
    let own = match proxy {
        Proxy::Sidecar(sidecar) => {
            let inbound = inbound_ports(mesh, sidecar);
            let mut own = sidecar_own(sidecar, &inbound, &outbound_ports(mesh, egress));
            let keys = mesh.source_label_keys();
            own.routes = sidecar_routes(
                mesh,
                &RouteScope::new(&sidecar.namespace, &sidecar.labels, &keys, egress),
            );
            own
        }
        Proxy::Router(router) => router_own(mesh, router),
    };
    clusters.extend(own.clusters);
    order::sorted(Resources {
        clusters,
        endpoints,
        listeners: own.listeners,
        routes: own.routes,
    })
}

/// The outbound clusters of one service, by name: the same for every proxy, and dependent on nothing but
/// the service and its DestinationRule.
pub fn service_clusters(mesh: &Mesh, service: &Service) -> Vec<Cluster> {
    let mut clusters = clusters::outbound(mesh, service);
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    clusters
}

/// The endpoints of one service's EDS clusters, by name; like [`service_clusters`], shared by every proxy.
pub fn service_endpoints(mesh: &Mesh, service: &Service) -> Vec<ClusterLoadAssignment> {
    let mut endpoints = endpoints::outbound(mesh, service);
    endpoints.sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
    endpoints
}

/// The outbound route configurations of every sidecar in `scope`, one per service port.
pub fn sidecar_routes(mesh: &Mesh, scope: &RouteScope) -> Vec<RouteConfiguration> {
    outbound_ports(mesh, scope.egress.as_deref())
        .into_iter()
        .map(|port| sidecar_route(mesh, scope, port))
        .collect()
}

/// The outbound route configuration for `port` of every sidecar in `scope`.
pub fn sidecar_route(mesh: &Mesh, scope: &RouteScope, port: u32) -> RouteConfiguration {
    let mut route = routes::sidecar(mesh, scope, port);
    order::sort_virtual_hosts(&mut route);
    route
}

/// A sidecar's own resources: its inbound and outbound listeners and its inbound clusters. `inbound` is
/// [`inbound_ports`] (or the same from an [`InboundIndex`]), `outbound_ports` is [`outbound_ports`].
pub fn sidecar_own(
    sidecar: &Sidecar,
    inbound: &[(u32, &Service)],
    outbound_ports: &BTreeSet<u32>,
) -> Resources {
    order::sorted(Resources {
        clusters: clusters::inbound(sidecar, inbound),
        listeners: listeners::sidecar(sidecar, inbound, outbound_ports),
        ..Resources::default()
    })
}

/// A gateway's own resources: its listeners and route configurations.
pub fn router_own(mesh: &Mesh, router: &Router) -> Resources {
    order::sorted(Resources {
        listeners: listeners::router(mesh, router),
        routes: routes::router(mesh, router),
        ..Resources::default()
    })
}

/// Every port of the services a sidecar under the Sidecar resource `egress` reaches: it has an outbound
/// listener and a route configuration for each.
pub fn outbound_ports(mesh: &Mesh, egress: Option<&str>) -> BTreeSet<u32> {
    mesh.services
        .values()
        .filter(|s| mesh.reaches(egress, s))
        .flat_map(|s| s.ports.iter().map(|p| p.number))
        .collect()
}

/// The ports a sidecar's workload serves, each with the first service (by host) that exposes it.
pub fn inbound_ports<'m>(mesh: &'m Mesh, sidecar: &Sidecar) -> Vec<(u32, &'m Service)> {
    let me = format!("{}/{}", sidecar.namespace, sidecar.workload);
    InboundIndex::new(mesh, |workload| workload == me)
        .ports_of(&me)
        .to_vec()
}

/// [`inbound_ports`] for many workloads at once: one pass over the mesh instead of one per proxy.
#[derive(Debug, Default)]
pub struct InboundIndex<'m> {
    by_workload: BTreeMap<&'m str, Vec<(u32, &'m Service)>>,
}

impl<'m> InboundIndex<'m> {
    /// The ports of the workloads (`namespace/name`) that `wanted` accepts.
    pub fn new(mesh: &'m Mesh, wanted: impl Fn(&str) -> bool) -> InboundIndex<'m> {
        let mut by_workload: BTreeMap<&'m str, Vec<(u32, &'m Service)>> = BTreeMap::new();
        // Services in host order, so the first service exposing a port keeps it.
        for service in mesh.services.values() {
            for endpoint in &service.endpoints {
                let Some(workload) = endpoint.workload.as_deref().filter(|w| wanted(w)) else {
                    continue;
                };
                let ports = by_workload.entry(workload).or_default();
                for port in &service.ports {
                    let p = endpoint.port_for(port);
                    if !ports.iter().any(|(seen, _)| *seen == p) {
                        ports.push((p, service));
                    }
                }
            }
        }
        for ports in by_workload.values_mut() {
            ports.sort_by_key(|(p, _)| *p);
        }
        InboundIndex { by_workload }
    }

    /// The ports of the workload `namespace/name`.
    pub fn ports_of(&self, workload: &str) -> &[(u32, &'m Service)] {
        self.by_workload
            .get(workload)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// [`InboundIndex::ports_of`], each port with its service's host.
    pub fn owned_ports_of(&self, workload: &str) -> Vec<(u32, String)> {
        self.ports_of(workload)
            .iter()
            .map(|(port, service)| (*port, service.hostname.clone()))
            .collect()
    }
}

/// A reference from one resource to another that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Inconsistency {
    #[error(
        "listener `{listener}` uses route configuration `{route}`, which is not in the snapshot"
    )]
    MissingRoute { listener: String, route: String },
    #[error(
        "cluster `{cluster}` uses EDS service `{service}`, which has no ClusterLoadAssignment"
    )]
    MissingEndpoints { cluster: String, service: String },
    #[error("listener `{0}` has a connection manager that cannot be decoded")]
    UndecodableListener(String),
}

impl Resources {
    /// go-control-plane's `Consistent()`: every RDS name a listener uses and every EDS service a cluster uses
    /// exists. Cheap enough to assert in every test.
    pub fn check_consistent(&self) -> Result<(), Vec<Inconsistency>> {
        let route_names: BTreeSet<&str> = self.routes.iter().map(|r| r.name.as_str()).collect();
        let eds_names: BTreeSet<&str> = self
            .endpoints
            .iter()
            .map(|e| e.cluster_name.as_str())
            .collect();
        let mut problems = Vec::new();
        for listener in &self.listeners {
            for chain in &listener.filter_chains {
                for f in &chain.filters {
                    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
                        continue;
                    };
                    if any.type_url != <HttpConnectionManager as prost::Name>::type_url() {
                        continue;
                    }
                    let Ok(hcm) = HttpConnectionManager::decode(any.value.as_slice()) else {
                        problems.push(Inconsistency::UndecodableListener(listener.name.clone()));
                        continue;
                    };
                    if let Some(RouteSpecifier::Rds(rds)) = &hcm.route_specifier {
                        if !route_names.contains(rds.route_config_name.as_str()) {
                            problems.push(Inconsistency::MissingRoute {
                                listener: listener.name.clone(),
                                route: rds.route_config_name.clone(),
                            });
                        }
                    }
                }
            }
        }
        for cluster in &self.clusters {
            let is_eds = matches!(cluster.cluster_discovery_type, Some(ClusterDiscoveryType::Type(t)) if t == envoy_types::pb::envoy::config::cluster::v3::cluster::DiscoveryType::Eds as i32);
            if !is_eds {
                continue;
            }
            let service = cluster
                .eds_cluster_config
                .as_ref()
                .map(|c| c.service_name.as_str())
                .filter(|s| !s.is_empty())
                .unwrap_or(cluster.name.as_str());
            if !eds_names.contains(service) {
                problems.push(Inconsistency::MissingEndpoints {
                    cluster: cluster.name.clone(),
                    service: service.to_owned(),
                });
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}
