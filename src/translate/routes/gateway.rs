//! Gateways' route configurations: one virtual host per domain, VirtualServices merged in name order.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::route::v3::{
    route_match::PathSpecifier, Route, RouteConfiguration, VirtualHost,
};

use crate::mesh::names::{gateway_route_config_name, virtual_host_name};
use crate::mesh::{GatewayRef, GatewayServer, Mesh, ResourceKey, Router};
use crate::translate::build;

use super::*;

pub(in crate::translate) fn router(mesh: &Mesh, router: &Router) -> Vec<RouteConfiguration> {
    let mut by_port: BTreeMap<u32, Vec<(GatewayRef, &[String])>> = BTreeMap::new();
    for key in &router.gateways {
        if let Some(gateway) = mesh.gateways.get(key) {
            for server in &gateway.servers {
                // The port name only matters to validation until TLS and TCP servers are translated.
                let GatewayServer {
                    port,
                    hosts,
                    port_name: _,
                } = server;
                by_port
                    .entry(*port)
                    .or_default()
                    .push((GatewayRef::Gateway(key.clone()), hosts));
            }
        }
    }
    by_port
        .into_iter()
        .map(|(port, servers)| {
            // One virtual host per domain. VirtualServices whose hosts meet on a domain are merged into it in
            // namespace/name order (Istio's creation-time order), each contributing once, and catch-all routes
            // move behind the others as Istio's `SortVHostRoutes` does, so a later VirtualService is not shadowed.
            let mut vhosts: BTreeMap<String, (VirtualHost, BTreeSet<&ResourceKey>)> =
                BTreeMap::new();
            for (gateway, server_hosts) in &servers {
                let scope = Scope {
                    port,
                    gateway,
                    labels: &router.labels,
                    namespace: &router.namespace,
                };
                for vs in mesh
                    .virtual_services
                    .iter()
                    .filter(|vs| vs.gateways.contains(gateway))
                {
                    let domains = host_intersections(&vs.hosts, server_hosts);
                    if domains.is_empty() {
                        continue;
                    }
                    let routes = vs_routes(mesh, vs, &scope);
                    if routes.is_empty() {
                        continue;
                    }
                    for domain in domains {
                        let name = virtual_host_name(&domain, port);
                        let (vhost, contributors) =
                            vhosts.entry(name.clone()).or_insert_with(|| {
                                (
                                    build::virtual_host(&name, vec![domain], Vec::new()),
                                    BTreeSet::new(),
                                )
                            });
                        if contributors.insert(&vs.meta.resource) {
                            vhost.routes.extend(routes.iter().cloned());
                        }
                    }
                }
            }
            build::route_configuration(
                &gateway_route_config_name(port),
                vhosts
                    .into_values()
                    .map(|(mut vhost, _)| {
                        vhost.routes = catch_alls_last(std::mem::take(&mut vhost.routes));
                        vhost
                    })
                    .collect(),
            )
        })
        .collect()
}

/// Every host a VirtualService's hosts and a server's hosts have in common (for each pair, the more specific
/// of the two), as Istio's `Intersection` of the two host sets.
pub(super) fn host_intersections(vs_hosts: &[String], server_hosts: &[String]) -> BTreeSet<String> {
    let covers = |pattern: &str, host: &str| {
        pattern == "*"
            || pattern == host
            || pattern
                .strip_prefix('*')
                .is_some_and(|suffix| host.ends_with(suffix))
    };
    let mut out = BTreeSet::new();
    for vs_host in vs_hosts {
        for s in server_hosts {
            if covers(s, vs_host) {
                out.insert(vs_host.clone());
            } else if covers(vs_host, s) {
                out.insert(s.clone());
            }
        }
    }
    out
}

/// Istio's `SortVHostRoutes`: catch-all routes after all others, each group in its original order.
pub(super) fn catch_alls_last(routes: Vec<Route>) -> Vec<Route> {
    let (catch_all, specific): (Vec<Route>, Vec<Route>) =
        routes.into_iter().partition(is_catch_all_route);
    specific.into_iter().chain(catch_all).collect()
}

/// Istio's `isCatchAllRoute`: path `/` prefix (or regex `*`) and no header or query parameter condition.
pub(super) fn is_catch_all_route(r: &Route) -> bool {
    let Some(m) = &r.r#match else {
        return false;
    };
    let path_all = match &m.path_specifier {
        Some(PathSpecifier::Prefix(p)) | Some(PathSpecifier::PathSeparatedPrefix(p)) => p == "/",
        Some(PathSpecifier::SafeRegex(re)) => re.regex == "*",
        _ => false,
    };
    path_all
        && m.headers.is_empty()
        && m.query_parameters.is_empty()
        && m.dynamic_metadata.is_empty()
}
