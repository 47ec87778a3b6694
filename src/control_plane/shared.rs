//! What every proxy of a generation shares, translated and encoded once per generation rather than once per
//! proxy: the outbound clusters and endpoints (the same for every proxy) and the outbound route configurations
//! of each route scope.
//!
//! A generation is built from the one before it: a service whose ServiceEntry and DestinationRule did not
//! change keeps its encoded clusters and endpoints, and a route configuration none of whose hosts changed is
//! kept as it was. A layer with nothing changed is the previous generation's own `Arc`, which streams take as
//! "nothing to push" without looking further. A test builds random sequences of meshes both ways and checks
//! that the incremental build equals the one from scratch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::mesh::{GatewayRef, Mesh, RouteAction, RouteScope, VirtualService};
use crate::spec::ResourceKey;
use crate::translate;
use crate::xds::{Encoded, Layer};

/// The shared part of one generation. Immutable once built.
#[derive(Debug)]
pub struct SharedResources {
    /// Per service host, its encoded outbound clusters and endpoints: what the next generation reuses.
    by_host: BTreeMap<String, HostResources>,
    clusters: Arc<Layer>,
    endpoints: Arc<Layer>,
    /// Per route scope, its route configurations by port.
    routes: BTreeMap<RouteScope, ScopeRoutes>,
    /// What route scopes are projected on ([`Mesh::source_label_keys`]).
    label_keys: BTreeSet<String>,
    /// Every service port: one outbound listener and route configuration each.
    outbound_ports: Arc<BTreeSet<u32>>,
}

#[derive(Debug, Clone)]
struct HostResources {
    clusters: Vec<Arc<Encoded>>,
    endpoints: Vec<Arc<Encoded>>,
}

#[derive(Debug, Clone)]
struct ScopeRoutes {
    by_port: BTreeMap<u32, Arc<Encoded>>,
    layer: Arc<Layer>,
}

/// What a build may reuse: the previous generation's mesh and shared resources.
pub struct Previous<'a> {
    pub mesh: &'a Mesh,
    pub shared: &'a SharedResources,
}

impl SharedResources {
    /// Translates what `mesh` shares, reusing from `previous` what did not change.
    pub fn build(mesh: &Mesh, previous: Option<Previous<'_>>) -> SharedResources {
        let label_keys = mesh.source_label_keys();
        let outbound_ports = Arc::new(translate::outbound_ports(mesh));

        let mut by_host = BTreeMap::new();
        for (host, service) in &mesh.services {
            let reusable = previous.as_ref().and_then(|p| {
                let unchanged = p.mesh.services.get(host) == Some(service)
                    && p.mesh.destination_rules.get(host) == mesh.destination_rules.get(host);
                unchanged.then(|| p.shared.by_host.get(host)).flatten()
            });
            let resources = match reusable {
                Some(kept) => kept.clone(),
                None => HostResources {
                    clusters: translate::service_clusters(mesh, service)
                        .iter()
                        .map(|c| Arc::new(Encoded::cluster(c)))
                        .collect(),
                    endpoints: translate::service_endpoints(mesh, service)
                        .iter()
                        .map(|e| Arc::new(Encoded::endpoint(e)))
                        .collect(),
                },
            };
            by_host.insert(host.clone(), resources);
        }
        let clusters = Layer::succeed(
            previous.as_ref().map(|p| &p.shared.clusters),
            by_host.values().flat_map(|h| h.clusters.iter().cloned()),
        );
        let endpoints = Layer::succeed(
            previous.as_ref().map(|p| &p.shared.endpoints),
            by_host.values().flat_map(|h| h.endpoints.iter().cloned()),
        );

        // Route configurations: one per port for each scope some workload is in.
        let dirty = previous
            .as_ref()
            .map(|p| dirty_hosts(p.mesh, mesh))
            .unwrap_or_default();
        let hosts_on_port = |m: &Mesh, port: u32| -> Vec<String> {
            m.services
                .values()
                .filter(|s| s.port(port).is_some())
                .map(|s| s.hostname.clone())
                .collect()
        };
        let clean_ports: BTreeSet<u32> = match &previous {
            Some(p) => outbound_ports
                .iter()
                .copied()
                .filter(|&port| {
                    let hosts = hosts_on_port(mesh, port);
                    hosts == hosts_on_port(p.mesh, port) && !hosts.iter().any(|h| dirty.contains(h))
                })
                .collect(),
            None => BTreeSet::new(),
        };
        let scopes: BTreeSet<RouteScope> = mesh
            .workloads
            .values()
            .map(|w| RouteScope::new(&w.namespace, &w.labels, &label_keys))
            .collect();
        let mut routes = BTreeMap::new();
        for scope in scopes {
            let kept = previous
                .as_ref()
                .filter(|p| p.shared.label_keys == label_keys)
                .and_then(|p| p.shared.routes.get(&scope));
            let by_port: BTreeMap<u32, Arc<Encoded>> = outbound_ports
                .iter()
                .map(|&port| {
                    let reused = kept
                        .filter(|_| clean_ports.contains(&port))
                        .and_then(|k| k.by_port.get(&port));
                    let encoded = match reused {
                        Some(r) => r.clone(),
                        None => Arc::new(Encoded::route(&translate::sidecar_route(
                            mesh, &scope, port,
                        ))),
                    };
                    (port, encoded)
                })
                .collect();
            let layer = Layer::succeed(kept.map(|k| &k.layer), by_port.values().cloned());
            routes.insert(scope, ScopeRoutes { by_port, layer });
        }

        SharedResources {
            by_host,
            clusters,
            endpoints,
            routes,
            label_keys,
            outbound_ports,
        }
    }

    pub fn clusters(&self) -> &Arc<Layer> {
        &self.clusters
    }

    pub fn endpoints(&self) -> &Arc<Layer> {
        &self.endpoints
    }

    pub fn outbound_ports(&self) -> &Arc<BTreeSet<u32>> {
        &self.outbound_ports
    }

    /// The route scope of a sidecar in `namespace` with `labels`.
    pub fn scope_of(&self, namespace: &str, labels: &crate::mesh::Labels) -> RouteScope {
        RouteScope::new(namespace, labels, &self.label_keys)
    }

    /// The route configurations of `scope`, if some workload of the mesh is in it.
    pub fn routes(&self, scope: &RouteScope) -> Option<&Arc<Layer>> {
        self.routes.get(scope).map(|r| &r.layer)
    }
}

/// The hosts whose outbound virtual hosts may differ between `old` and `new`: a host whose service or
/// DestinationRule changed, the hosts of a VirtualService that changed, and the hosts of any VirtualService
/// that routes to, or mirrors, a changed host (its routes carry that host's ports and hash policies).
fn dirty_hosts(old: &Mesh, new: &Mesh) -> BTreeSet<String> {
    let mut changed: BTreeSet<String> = BTreeSet::new();
    for host in old.services.keys().chain(new.services.keys()) {
        if old.services.get(host) != new.services.get(host)
            || old.destination_rules.get(host) != new.destination_rules.get(host)
        {
            changed.insert(host.clone());
        }
    }
    for host in old
        .destination_rules
        .keys()
        .chain(new.destination_rules.keys())
    {
        if old.destination_rules.get(host) != new.destination_rules.get(host) {
            changed.insert(host.clone());
        }
    }
    // VirtualServices bound to sidecars, by identity: one added, removed or changed dirties its hosts.
    fn sidecar_vs(m: &Mesh) -> BTreeMap<&ResourceKey, &VirtualService> {
        m.virtual_services
            .iter()
            .filter(|vs| vs.gateways.contains(&GatewayRef::Mesh))
            .map(|vs| (&vs.meta.resource, vs))
            .collect()
    }
    let (old_vs, new_vs) = (sidecar_vs(old), sidecar_vs(new));
    let mut dirty = changed.clone();
    for (key, vs) in old_vs.iter().chain(&new_vs) {
        if old_vs.get(key) != new_vs.get(key) {
            dirty.extend(vs.hosts.iter().cloned());
        }
    }
    for vs in old_vs.values().chain(new_vs.values()) {
        if referenced_hosts(vs).any(|h| changed.contains(h)) {
            dirty.extend(vs.hosts.iter().cloned());
        }
    }
    dirty
}

/// Every host a VirtualService's routes send or mirror traffic to.
fn referenced_hosts(vs: &VirtualService) -> impl Iterator<Item = &str> + '_ {
    vs.http.iter().flat_map(|http| {
        let routed = match &http.action {
            RouteAction::Route(destinations) => destinations
                .iter()
                .map(|d| d.destination.host.as_str())
                .collect(),
            RouteAction::Redirect(_) | RouteAction::DirectResponse { .. } => Vec::new(),
        };
        routed
            .into_iter()
            .chain(http.mirrors.iter().map(|m| m.destination.host.as_str()))
    })
}
