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

use crate::mesh::{GatewayRef, Mesh, ResourceKey, RouteScope, Service, VirtualService, Workload};
use crate::translate;
use crate::xds::{Encoded, Layer};

/// The shared part of one generation. Immutable once built.
#[derive(Debug)]
pub struct SharedResources {
    /// Per service host, its encoded outbound clusters and endpoints: what the next generation reuses (all of
    /// it, the same allocation, when the services and DestinationRules are).
    by_host: Arc<BTreeMap<String, Arc<HostResources>>>,
    /// Per workload (`namespace/name`), the Sidecar resource that applies to it ([`Mesh::egress_scope_for`]).
    egress_of: Arc<BTreeMap<String, Option<String>>>,
    /// Per Sidecar resource that applies to some workload (`None`: no Sidecar, every service), what its
    /// sidecars reach.
    views: BTreeMap<Option<String>, View>,
    /// Per route scope, its route configurations by port.
    routes: BTreeMap<RouteScope, Arc<ScopeRoutes>>,
    /// Per route scope, how many workloads are in it: a scope whose last workload went is dropped, without
    /// working out every workload's scope again.
    scope_members: Arc<BTreeMap<RouteScope, usize>>,
    /// What route scopes are projected on ([`Mesh::source_label_keys`]).
    label_keys: BTreeSet<String>,
}

/// The outbound clusters and endpoints of the services a class of sidecars reaches, and their ports.
#[derive(Debug, Clone)]
pub struct View {
    pub clusters: Arc<Layer>,
    pub endpoints: Arc<Layer>,
    /// One outbound listener and route configuration each.
    pub outbound_ports: Arc<BTreeSet<u32>>,
}

/// Shared by every generation whose service and DestinationRule of the host are the same (`Arc`: a change
/// to one host copies 1,000 pointers, not 1,000 pairs of lists).
#[derive(Debug)]
struct HostResources {
    clusters: Vec<Arc<Encoded>>,
    endpoints: Vec<Arc<Encoded>>,
}

/// Shared by every generation that keeps the scope's configurations (`Arc`, as [`HostResources`]).
#[derive(Debug)]
struct ScopeRoutes {
    by_port: BTreeMap<u32, Arc<Encoded>>,
    layer: Arc<Layer>,
}

/// What a build may reuse: the previous generation's mesh and shared resources.
pub struct Previous<'a> {
    pub mesh: &'a Mesh,
    pub shared: &'a SharedResources,
    /// The workloads added, removed or changed since `mesh` (by key): [`crate::mesh::changed_keys`] of the two meshes.
    pub changed_workloads: &'a [&'a str],
}

impl SharedResources {
    /// Translates what `mesh` shares, reusing from `previous` what did not change.
    pub fn build(mesh: &Mesh, previous: Option<Previous<'_>>) -> SharedResources {
        let label_keys = mesh.source_label_keys();

        // Services translated again (not reused): only views reaching one of them can differ.
        let mut rebuilt = Vec::new();
        let by_host = match previous.as_ref() {
            // The very services and DestinationRules of the previous mesh (a VirtualService change): every
            // host is unchanged, without comparing each host's endpoints and policies.
            Some(p) if same_hosts(p.mesh, mesh) => p.shared.by_host.clone(),
            _ => Arc::new(
                mesh.services
                    .iter()
                    .map(|(host, service)| {
                        let kept = previous
                            .as_ref()
                            .filter(|p| {
                                p.mesh.services.get(host) == Some(service)
                                    && p.mesh.destination_rules.get(host)
                                        == mesh.destination_rules.get(host)
                            })
                            .and_then(|p| p.shared.by_host.get(host));
                        let resources = kept.cloned().unwrap_or_else(|| {
                            rebuilt.push(service);
                            Arc::new(HostResources::translate(mesh, service))
                        });
                        (host.clone(), resources)
                    })
                    .collect(),
            ),
        };
        // Every workload's egress view and route scope: a sidecar is a workload, so these are all there are.
        let sidecars_unchanged = previous
            .as_ref()
            .is_some_and(|p| p.mesh.sidecars == mesh.sidecars);
        // Whether the Sidecar resource `key` (`None`: none) is the one of `old`: compared by value only when the
        // Sidecars are not all the same (a weight shift then compares none of a scoped mesh's thousand, for
        // every view and every scope).
        let same_sidecar = |old: &Mesh, key: Option<&str>| {
            key.is_none_or(|k| sidecars_unchanged || old.sidecars.get(k) == mesh.sidecars.get(k))
        };
        // The very workloads of the last reading (the resolver shares them when no WorkloadEntry changed) and
        // the same Sidecars: every answer stands, and so does every route scope.
        let same_workloads = previous
            .as_ref()
            .filter(|p| sidecars_unchanged && Arc::ptr_eq(&p.mesh.workloads, &mesh.workloads));
        let egress_of = match same_workloads {
            Some(p) => p.shared.egress_of.clone(),
            None => Arc::new(egress_per_workload(
                mesh,
                previous.as_ref(),
                sidecars_unchanged,
            )),
        };
        let scope_members = route_scope_members(
            mesh,
            &egress_of,
            &label_keys,
            previous
                .as_ref()
                .filter(|p| sidecars_unchanged && p.shared.label_keys == label_keys),
        );
        let scopes = scope_members.keys();
        let egresses: BTreeSet<Option<String>> = std::iter::once(None)
            .chain(scopes.clone().map(|s| s.egress.clone()))
            .collect();
        // A view depends on its Sidecar resource, which services it reaches and their resources. With its
        // Sidecar unchanged, none of the services that appeared, disappeared or changed namespace reached (in
        // the mesh each is in) and none of the services it reaches rebuilt, the previous view stands, without a
        // walk over every service: a new service reached by no one leaves every view as it was.
        let moved = previous.as_ref().map(|p| moved_services(p.mesh, mesh));
        let mut views = BTreeMap::new();
        let mut reused_views = BTreeSet::new();
        for egress in egresses {
            let key = egress.as_deref();
            let before = previous.as_ref().and_then(|p| p.shared.views.get(&egress));
            let still = before.filter(|_| {
                previous.as_ref().is_some_and(|p| same_sidecar(p.mesh, key))
                    && moved
                        .as_ref()
                        .is_some_and(|moved| !moved.iter().any(|(m, s)| m.reaches(key, s)))
                    && !rebuilt.iter().any(|s| mesh.reaches(key, s))
            });
            if let Some(view) = still {
                views.insert(egress.clone(), view.clone());
                reused_views.insert(egress);
                continue;
            }
            let reached: Vec<&HostResources> = mesh
                .services
                .iter()
                .filter(|(_, service)| mesh.reaches(key, service))
                .filter_map(|(host, _)| by_host.get(host).map(|h| &**h))
                .collect();
            let view = View {
                clusters: Layer::succeed(
                    before.map(|v| &v.clusters),
                    reached.iter().flat_map(|h| h.clusters.iter().cloned()),
                ),
                endpoints: Layer::succeed(
                    before.map(|v| &v.endpoints),
                    reached.iter().flat_map(|h| h.endpoints.iter().cloned()),
                ),
                outbound_ports: Arc::new(translate::outbound_ports(mesh, key)),
            };
            views.insert(egress, view);
        }

        // Route configurations: one per port for each scope. A port's configuration is kept when the hosts it
        // routes are the same and none of them is dirty.
        let dirty = previous
            .as_ref()
            .map(|p| dirty_hosts(p.mesh, mesh))
            .unwrap_or_default();
        let hosts_on_port = |m: &Mesh, port: u32, egress: Option<&str>| -> Vec<String> {
            m.services
                .values()
                .filter(|s| s.port(port).is_some() && m.reaches(egress, s))
                .map(|s| s.hostname.clone())
                .collect()
        };
        // Whether a port's configuration may be kept depends on the port and the Sidecar, not on the rest of the
        // scope: decided once for each, however many scopes share them.
        let mut clean: BTreeMap<(Option<String>, u32), bool> = BTreeMap::new();
        let mut is_clean = |old_mesh: &Mesh, egress: Option<&str>, port: u32| -> bool {
            let key = egress.map(str::to_owned);
            let view_reused = reused_views.contains(&key);
            *clean.entry((key, port)).or_insert_with(|| {
                if view_reused {
                    // The same services on the port as before: only a dirty one among them matters.
                    return !dirty.iter().any(|h| {
                        mesh.services
                            .get(h)
                            .is_some_and(|s| s.port(port).is_some() && mesh.reaches(egress, s))
                    });
                }
                let hosts = hosts_on_port(mesh, port, egress);
                !hosts.iter().any(|h| dirty.contains(h))
                    && hosts == hosts_on_port(old_mesh, port, egress)
            })
        };
        let mut routes = BTreeMap::new();
        for scope in scopes {
            let egress = scope.egress.as_deref();
            let ports = views
                .get(&scope.egress)
                .map(|v| v.outbound_ports.clone())
                .unwrap_or_default();
            let kept = previous
                .as_ref()
                .filter(|p| p.shared.label_keys == label_keys && same_sidecar(p.mesh, egress))
                .and_then(|p| Some((p.mesh, p.shared.routes.get(scope)?)));
            // Every port the scope had, each clean: the scope's very configurations and layer stand.
            if let Some((old_mesh, k)) = kept {
                if k.by_port.keys().eq(ports.iter())
                    && ports.iter().all(|&port| is_clean(old_mesh, egress, port))
                {
                    routes.insert(scope.clone(), k.clone());
                    continue;
                }
            }
            let by_port: BTreeMap<u32, Arc<Encoded>> = ports
                .iter()
                .map(|&port| {
                    let reused = kept
                        .filter(|(old_mesh, _)| is_clean(old_mesh, egress, port))
                        .and_then(|(_, k)| k.by_port.get(&port));
                    let encoded = match reused {
                        Some(r) => r.clone(),
                        None => {
                            Arc::new(Encoded::route(&translate::sidecar_route(mesh, scope, port)))
                        }
                    };
                    (port, encoded)
                })
                .collect();
            // Succeeds the scope's previous layer even when its configurations could not be reused (its Sidecar
            // changed): a rebuild that comes out the same is then the same layer, and nothing to push.
            let before = previous
                .as_ref()
                .and_then(|p| p.shared.routes.get(scope))
                .map(|k| &k.layer);
            let layer = Layer::succeed(before, by_port.values().cloned());
            routes.insert(scope.clone(), Arc::new(ScopeRoutes { by_port, layer }));
        }

        SharedResources {
            by_host,
            egress_of,
            views,
            routes,
            scope_members,
            label_keys,
        }
    }

    /// What the sidecars under the Sidecar resource `egress` reach (`None`: every service).
    pub fn view(&self, egress: Option<&str>) -> Option<&View> {
        self.views.get(&egress.map(str::to_owned))
    }

    /// The `Sidecar` resource that applies to workload `namespace/name`, as [`Mesh::egress_scope_for`] said
    /// when this generation was built; `None` for a workload the mesh does not have.
    pub fn egress_of(&self, namespace: &str, name: &str) -> Option<Option<&str>> {
        self.egress_of
            .get(&format!("{namespace}/{name}"))
            .map(Option::as_deref)
    }

    /// [`SharedResources::egress_of`] by workload key (`namespace/name`).
    pub fn egress_by_key(&self, workload: &str) -> Option<Option<&str>> {
        self.egress_of.get(workload).map(Option::as_deref)
    }

    /// Whether every workload has the same Sidecar resource here as in `other`.
    pub fn same_egress(&self, other: &SharedResources) -> bool {
        self.egress_of == other.egress_of
    }

    /// The route scope of a sidecar.
    pub fn scope_of(&self, sidecar: &crate::mesh::Sidecar) -> RouteScope {
        RouteScope::new(
            &sidecar.namespace,
            &sidecar.labels,
            &self.label_keys,
            sidecar.egress.as_deref(),
        )
    }

    /// Every route scope that has route configurations.
    #[cfg(test)]
    pub(crate) fn route_scopes(&self) -> Vec<&RouteScope> {
        self.routes.keys().collect()
    }

    /// The route configurations of `scope`, if some workload of the mesh is in it.
    pub fn routes(&self, scope: &RouteScope) -> Option<&Arc<Layer>> {
        self.routes.get(scope).map(|r| &r.layer)
    }

    /// The layers of `previous` this generation no longer serves (by id), for a sidecar that is the same proxy
    /// in both; `None` when that cannot say which sidecars changed (the labels route scopes are projected on
    /// are others, so a sidecar's scope may be another one even though its old scope's layer stands).
    pub fn replaced_since(&self, previous: &SharedResources) -> Option<BTreeSet<u64>> {
        if self.label_keys != previous.label_keys {
            return None;
        }
        let mut replaced = BTreeSet::new();
        for (egress, before) in &previous.views {
            match self.views.get(egress) {
                Some(now) if now.outbound_ports == before.outbound_ports => {
                    for (now, before) in [
                        (&now.clusters, &before.clusters),
                        (&now.endpoints, &before.endpoints),
                    ] {
                        if !Arc::ptr_eq(now, before) {
                            replaced.insert(before.id());
                        }
                    }
                }
                // Gone, or reaching other ports: its sidecars' own listeners are others too.
                _ => replaced.extend([before.clusters.id(), before.endpoints.id()]),
            }
        }
        for (scope, before) in &previous.routes {
            let stands = self
                .routes
                .get(scope)
                .is_some_and(|now| Arc::ptr_eq(&now.layer, &before.layer));
            if !stands {
                replaced.insert(before.layer.id());
            }
        }
        Some(replaced)
    }
}

impl HostResources {
    fn translate(mesh: &Mesh, service: &Service) -> HostResources {
        HostResources {
            clusters: translate::service_clusters(mesh, service)
                .iter()
                .map(|c| Arc::new(Encoded::cluster(c)))
                .collect(),
            endpoints: translate::service_endpoints(mesh, service)
                .iter()
                .map(|e| Arc::new(Encoded::endpoint(e)))
                .collect(),
        }
    }
}

/// Per workload, the Sidecar resource that applies to it. Which one applies depends on the workload's namespace
/// and labels and on the Sidecar resources: with those unchanged, the previous generation's answer stands.
fn egress_per_workload(
    mesh: &Mesh,
    previous: Option<&Previous<'_>>,
    sidecars_unchanged: bool,
) -> BTreeMap<String, Option<String>> {
    // Built only if some workload's answer is not known already.
    let index = std::cell::OnceCell::new();
    let scope_for = |w: &Workload| {
        index
            .get_or_init(|| mesh.egress_index())
            .scope_for(&w.namespace, &w.labels)
            .map(str::to_owned)
    };
    // The same Sidecars: every workload but the changed ones is the very one it was, and keeps its answer.
    if let Some(p) = previous.filter(|_| sidecars_unchanged) {
        let mut egress_of = (*p.shared.egress_of).clone();
        for key in p.changed_workloads {
            match mesh.workloads.get(*key) {
                Some(w) => egress_of.insert((*key).to_owned(), scope_for(w)),
                None => egress_of.remove(*key),
            };
        }
        return egress_of;
    }
    mesh.workloads
        .iter()
        .map(|(key, w)| (key.clone(), scope_for(w)))
        .collect()
}

/// How many workloads each route scope has. Patched from `previous` (given only when the Sidecars and the
/// label keys are the same, so that every unchanged workload is in the scope it was in) for the workloads that
/// changed; otherwise counted from every workload.
fn route_scope_members(
    mesh: &Mesh,
    egress_of: &BTreeMap<String, Option<String>>,
    label_keys: &BTreeSet<String>,
    previous: Option<&Previous<'_>>,
) -> Arc<BTreeMap<RouteScope, usize>> {
    let scope_of = |key: &str, w: &Workload, egress_of: &BTreeMap<String, Option<String>>| {
        let egress = egress_of.get(key).and_then(Option::as_deref);
        RouteScope::new(&w.namespace, &w.labels, label_keys, egress)
    };
    let Some(p) = previous else {
        let mut members = BTreeMap::new();
        for (key, w) in mesh.workloads.iter() {
            *members.entry(scope_of(key, w, egress_of)).or_insert(0) += 1;
        }
        return Arc::new(members);
    };
    if p.changed_workloads.is_empty() {
        return p.shared.scope_members.clone();
    }
    let mut members = (*p.shared.scope_members).clone();
    for key in p.changed_workloads {
        if let Some(was) = p.mesh.workloads.get(*key) {
            let scope = scope_of(key, was, &p.shared.egress_of);
            if let Some(count) = members.get_mut(&scope) {
                *count -= 1;
                if *count == 0 {
                    members.remove(&scope);
                }
            }
        }
        if let Some(is) = mesh.workloads.get(*key) {
            *members.entry(scope_of(key, is, egress_of)).or_insert(0) += 1;
        }
    }
    Arc::new(members)
}

/// The services whose presence differs between `old` and `new` (added, removed, or moved to another
/// namespace), each with the mesh it is in: a Sidecar's view changes its membership only through them.
fn moved_services<'m>(old: &'m Mesh, new: &'m Mesh) -> Vec<(&'m Mesh, &'m Service)> {
    if Arc::ptr_eq(&old.services, &new.services) {
        return Vec::new();
    }
    let mut moved = Vec::new();
    for (host, before) in old.services.iter() {
        match new.services.get(host) {
            Some(after) if after.namespace == before.namespace => {}
            Some(after) => moved.extend([(old, &**before), (new, &**after)]),
            None => moved.push((old, &**before)),
        }
    }
    for (host, after) in new.services.iter() {
        if !old.services.contains_key(host) {
            moved.push((new, &**after));
        }
    }
    moved
}

/// Whether `old` and `new` have the very same services and DestinationRules (the same allocations).
fn same_hosts(old: &Mesh, new: &Mesh) -> bool {
    Arc::ptr_eq(&old.services, &new.services)
        && Arc::ptr_eq(&old.destination_rules, &new.destination_rules)
}

/// The hosts whose outbound virtual hosts may differ between `old` and `new`: a host whose service or
/// DestinationRule changed, the hosts of a VirtualService that changed, and the hosts of any VirtualService
/// that routes to, or mirrors, a changed host (its routes carry that host's ports and hash policies).
fn dirty_hosts(old: &Mesh, new: &Mesh) -> BTreeSet<String> {
    let mut changed: BTreeSet<String> = BTreeSet::new();
    // The very same services and DestinationRules (a VirtualService change): no host compared.
    if !same_hosts(old, new) {
        for host in old.services.keys().chain(new.services.keys()) {
            if old.services.get(host) != new.services.get(host)
                || old.destination_rules.get(host) != new.destination_rules.get(host)
            {
                changed.insert(host.clone());
            }
        }
    }
    if !Arc::ptr_eq(&old.destination_rules, &new.destination_rules) {
        for host in old
            .destination_rules
            .keys()
            .chain(new.destination_rules.keys())
        {
            if old.destination_rules.get(host) != new.destination_rules.get(host) {
                changed.insert(host.clone());
            }
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
        if vs.referenced_hosts().any(|h| changed.contains(h)) {
            dirty.extend(vs.hosts.iter().cloned());
        }
    }
    dirty
}
