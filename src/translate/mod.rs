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

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::cluster::v3::{cluster::ClusterDiscoveryType, Cluster};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::{filter, Listener};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use prost::Message;

use crate::mesh::{Mesh, Proxy};

/// Everything one proxy gets, each list sorted by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub clusters: Vec<Cluster>,
    pub endpoints: Vec<ClusterLoadAssignment>,
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
}

pub fn translate(mesh: &Mesh, proxy: &Proxy) -> Resources {
    let (listeners, routes) = match proxy {
        Proxy::Sidecar(sidecar) => (
            listeners::sidecar(mesh, sidecar),
            routes::sidecar(mesh, sidecar),
        ),
        Proxy::Router(router) => (
            listeners::router(mesh, router),
            routes::router(mesh, router),
        ),
    };
    let mut clusters = clusters::outbound(mesh);
    if let Proxy::Sidecar(sidecar) = proxy {
        clusters.extend(clusters::inbound(mesh, sidecar));
    }
    let endpoints = endpoints::outbound(mesh);
    order::sorted(Resources {
        clusters,
        endpoints,
        listeners,
        routes,
    })
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
