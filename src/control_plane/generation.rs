//! One accepted configuration as the xDS server sees it: which snapshot each proxy gets.
//!
//! What proxies share ([`SharedResources`]) is built with the generation, off the async workers. What is a
//! proxy's own (its listeners and inbound clusters; a gateway's routes) is built on first demand, outside any
//! lock that other streams wait on, and carried over from the previous generation when what it is built from
//! did not change. A proxy's snapshot is its own layers over the shared ones, so ten thousand sidecars hold
//! one copy of the mesh's clusters, endpoints and route configurations between them.
//!
//! A proxy's own translation lives exactly as long as a stream holds its snapshot: the generation keeps only
//! weak references to it ([`Kept`]), and forgets the entry when the last stream of that identity ends
//! ([`Generation::release`]). A client claiming a new identity on every stream therefore leaves nothing behind.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::time::Instant;

use super::shared::{Previous, SharedResources, View};
use crate::mesh::{changed_keys, Mesh, Proxy, Router, Sidecar};
use crate::translate::{self, InboundIndex, Resources};
use crate::xds::{Encoded, Generation, Layer, PerType, Reach, Replaced, ResourceType, Snapshot};

#[derive(Debug)]
pub struct MeshGeneration {
    mesh: Arc<Mesh>,
    shared: SharedResources,
    /// Per workload (`namespace/name`): the ports it serves, each with the host of the service exposing it.
    inbound: Arc<InboundPorts>,
    /// Per proxy identity, its own resources and its snapshot, while some stream holds them.
    own: Mutex<BTreeMap<Arc<Proxy>, Kept>>,
    /// The previous generation's `own`, taken over when it was replaced: an entry whose inputs are unchanged
    /// is reused rather than translated again.
    inherited: Mutex<BTreeMap<Arc<Proxy>, Kept>>,
    /// When the pipeline accepted the reading this generation serves (see [`Generation::accepted_at`]).
    accepted_at: Option<Instant>,
    /// Who the node of each stream is, by the node's address (a stream passes the same allocation on every
    /// call, and the entry holds it, so the address cannot be reused while the entry lives), so that ten
    /// thousand streams looking up their snapshots after a change do not each read their node's metadata again.
    /// One map for every generation, handed from each to the next, so a stream that ends releases its entry
    /// whichever generation it last saw ([`Generation::release`]).
    identities: Arc<Mutex<BTreeMap<usize, StreamIdentity>>>,
    /// This generation, and the one it was built from.
    id: u64,
    previous_id: Option<u64>,
    /// The first generation of the line since which nothing identification reads changed (see `build`): an
    /// identity confirmed by it or a later one, up to this one, holds here without a check.
    identities_since: u64,
    /// What of the previous generation this one replaced ([`Generation::reach_after`]); `None`: every stream
    /// may be concerned.
    replaced: Option<Replaced>,
}

/// A stream's node (held, so its address stays its own), the proxy it is, and the generation that last
/// confirmed it: a stream may skip generations (the cache keeps only the latest, and rings only the streams a
/// generation concerns), so "unchanged since" vouches only for identities confirmed since.
#[derive(Debug)]
struct StreamIdentity {
    node: Arc<Node>,
    proxy: Arc<Proxy>,
    verified_in: u64,
}

/// Generation ids, for [`StreamIdentity::verified_in`]; nothing outside the process sees them.
static NEXT_GENERATION_ID: AtomicU64 = AtomicU64::new(1);

/// One proxy's own resources, what they were built from, and the snapshot they make with the shared ones.
#[derive(Debug, Clone)]
struct Own {
    inputs: OwnInputs,
    clusters: Arc<Layer>,
    listeners: Arc<Layer>,
    /// A gateway's route configurations (a sidecar's come from its route scope).
    routes: Option<Arc<Layer>>,
    snapshot: Arc<Snapshot>,
}

/// What a generation remembers of an [`Own`]: weak references, so the streams holding the snapshot decide how
/// long the translation lives. The snapshot holds the layers, so while it is alive they are too.
#[derive(Debug)]
struct Kept {
    inputs: OwnInputs,
    clusters: Weak<Layer>,
    listeners: Weak<Layer>,
    routes: Option<Weak<Layer>>,
    snapshot: Weak<Snapshot>,
}

impl Kept {
    fn of(own: &Own) -> Kept {
        Kept {
            inputs: own.inputs.clone(),
            clusters: Arc::downgrade(&own.clusters),
            listeners: Arc::downgrade(&own.listeners),
            routes: own.routes.as_ref().map(Arc::downgrade),
            snapshot: Arc::downgrade(&own.snapshot),
        }
    }

    /// The translation, if a stream still holds it.
    fn upgrade(&self) -> Option<Own> {
        Some(Own {
            inputs: self.inputs.clone(),
            clusters: self.clusters.upgrade()?,
            listeners: self.listeners.upgrade()?,
            routes: match &self.routes {
                Some(routes) => Some(routes.upgrade()?),
                None => None,
            },
            snapshot: self.snapshot.upgrade()?,
        })
    }

    fn is_held(&self) -> bool {
        self.snapshot.strong_count() > 0
    }
}

/// What a proxy's own resources are built from, besides its identity.
#[derive(Debug, Clone)]
enum OwnInputs {
    Sidecar {
        inbound: Arc<Vec<(u32, String)>>,
        outbound_ports: Arc<BTreeSet<u32>>,
    },
    /// A gateway's resources depend on Gateways and VirtualServices throughout: always rebuilt (there are few
    /// gateways), and kept as the same layers when the bytes did not change.
    Router,
}

impl PartialEq for OwnInputs {
    /// A workload's inbound ports compare by address: they are another allocation exactly when they, or a
    /// service exposing them, changed ([`inbound_ports`]); the services are what the inbound resources are
    /// translated from.
    fn eq(&self, other: &OwnInputs) -> bool {
        match (self, other) {
            (
                OwnInputs::Sidecar {
                    inbound,
                    outbound_ports,
                },
                OwnInputs::Sidecar {
                    inbound: other_inbound,
                    outbound_ports: other_outbound,
                },
            ) => Arc::ptr_eq(inbound, other_inbound) && outbound_ports == other_outbound,
            (OwnInputs::Router, OwnInputs::Router) => true,
            _ => false,
        }
    }
}

impl MeshGeneration {
    /// Translates what every proxy shares. CPU work proportional to the mesh: run it off the async workers.
    pub fn new(mesh: Arc<Mesh>) -> MeshGeneration {
        MeshGeneration::build(mesh, None)
    }

    /// Like [`MeshGeneration::new`], reusing from `previous` whatever did not change, and taking over its
    /// per-proxy resources.
    pub fn succeed(mesh: Arc<Mesh>, previous: &MeshGeneration) -> MeshGeneration {
        MeshGeneration::build(mesh, Some(previous))
    }

    fn build(mesh: Arc<Mesh>, previous: Option<&MeshGeneration>) -> MeshGeneration {
        // The workloads added, removed or changed: what most of the per-workload work below is limited to.
        let changed: Vec<&str> = previous
            .map(|p| changed_keys(&p.mesh.workloads, &mesh.workloads))
            .unwrap_or_default();
        let shared = SharedResources::build(
            &mesh,
            previous.map(|p| Previous {
                mesh: &p.mesh,
                shared: &p.shared,
                changed_workloads: &changed,
            }),
        );
        let (inbound, inbound_affected) = inbound_ports(
            &mesh,
            previous.map(|p| (&*p.mesh, &p.inbound, &changed[..])),
        );
        // Only what a connected proxy still holds is worth carrying over: what the previous generation built,
        // and what it inherited that no stream looked up since (streams a generation does not concern don't).
        let mut inherited = BTreeMap::new();
        if let Some(p) = previous {
            let (carried, built) = (
                std::mem::take(&mut *lock(&p.inherited)),
                std::mem::take(&mut *lock(&p.own)),
            );
            // The smaller map into the larger (after a change at scale, a few built among thousands carried);
            // what was built wins, it is newer.
            inherited = if built.len() >= carried.len() {
                let mut built = built;
                for (proxy, kept) in carried {
                    built.entry(proxy).or_insert(kept);
                }
                built
            } else {
                let mut carried = carried;
                carried.extend(built);
                carried
            };
        }
        inherited.retain(|_, kept| kept.is_held());
        // A node is the same proxy as long as the workloads, the Gateways and which Sidecar resource applies to
        // each workload are (`Proxy::identify_with` reads nothing else of the mesh). When one of them changed
        // (a WorkloadEntry added or removed), each remembered identity is checked on its next use instead.
        let identities_hold = previous.is_some_and(|p| {
            p.mesh.workloads == mesh.workloads
                && p.mesh.gateways == mesh.gateways
                && p.shared.same_egress(&shared)
        });
        let id = NEXT_GENERATION_ID.fetch_add(1, Ordering::Relaxed);
        // A sidecar whose workload is the same proxy, with the same inbound ports, has the same own layers (its
        // view's outbound ports are compared with its layers): it can get another snapshot only if it holds a
        // replaced shared layer. The sidecars of the other workloads are named by their workload. A gateway's
        // snapshot is volatile: looked up again on every generation.
        let replaced = previous.and_then(|p| {
            let layers = shared.replaced_since(&p.shared)?;
            let subjects = if identities_hold && Arc::ptr_eq(&p.inbound, &inbound) {
                BTreeSet::new()
            } else {
                // Under the same Sidecars, a workload that did not change has the Sidecar it had: only the
                // changed ones and those whose inbound ports were worked out again can be subjects.
                let candidates = (p.mesh.sidecars == mesh.sidecars).then(|| {
                    changed
                        .iter()
                        .copied()
                        .chain(inbound_affected.iter().flatten().map(String::as_str))
                });
                changed_workloads(p, &mesh, &shared, &inbound, candidates)
            };
            Some(Replaced { layers, subjects })
        });
        let identities: Arc<Mutex<BTreeMap<usize, StreamIdentity>>> =
            previous.map(|p| p.identities.clone()).unwrap_or_default();
        // A running stream holds its node: an entry that is the node's only holder belongs to a stream that
        // ended without releasing it (its task ended abnormally).
        lock(&identities).retain(|_, entry| Arc::strong_count(&entry.node) > 1);
        MeshGeneration {
            mesh,
            shared,
            inbound,
            own: Mutex::default(),
            inherited: Mutex::new(inherited),
            accepted_at: None,
            identities,
            id,
            previous_id: previous.map(|p| p.id),
            identities_since: match previous {
                Some(p) if identities_hold => p.identities_since,
                _ => id,
            },
            replaced,
        }
    }

    /// Marks when the reading this generation serves was accepted, so that streams can measure how long their
    /// proxies take to catch up with it.
    pub fn with_accepted_at(mut self, at: Instant) -> MeshGeneration {
        self.accepted_at = Some(at);
        self
    }

    pub fn mesh(&self) -> &Arc<Mesh> {
        &self.mesh
    }

    fn own(&self, proxy: &Arc<Proxy>) -> Result<Own, String> {
        if let Some(own) = lock(&self.own).get(&**proxy).and_then(Kept::upgrade) {
            return Ok(own);
        }
        let inherited = lock(&self.inherited)
            .remove(&**proxy)
            .and_then(|kept| kept.upgrade());
        // Built outside the locks: other streams never wait for this proxy's translation.
        let own = self.build_own(proxy, inherited.as_ref())?;
        let mut kept = lock(&self.own);
        // Another stream of the same proxy may have built it meanwhile: everyone shares the first.
        if let Some(first) = kept.get(&**proxy).and_then(Kept::upgrade) {
            return Ok(first);
        }
        kept.insert(proxy.clone(), Kept::of(&own));
        Ok(own)
    }

    fn build_own(&self, proxy: &Proxy, inherited: Option<&Own>) -> Result<Own, String> {
        let (inputs, resources) = match proxy {
            Proxy::Sidecar(sidecar) => {
                let view = self.view_of(sidecar)?;
                let inputs = OwnInputs::Sidecar {
                    inbound: self.inbound_of(sidecar),
                    outbound_ports: view.outbound_ports.clone(),
                };
                match inherited.filter(|i| i.inputs == inputs) {
                    Some(kept) => {
                        return self.own_from_layers(
                            proxy,
                            inputs,
                            kept.clusters.clone(),
                            kept.listeners.clone(),
                            None,
                            inherited,
                        )
                    }
                    None => {
                        let resources = self.sidecar_resources(sidecar, &inputs);
                        (inputs, resources)
                    }
                }
            }
            Proxy::Router(router) => (OwnInputs::Router, self.router_resources(router)),
        };
        let Resources {
            clusters,
            endpoints: _,
            listeners,
            routes,
        } = resources;
        let clusters = Layer::succeed(
            inherited.map(|i| &i.clusters),
            clusters.iter().map(|c| Arc::new(Encoded::cluster(c))),
        );
        let listeners = Layer::succeed(
            inherited.map(|i| &i.listeners),
            listeners.iter().map(|l| Arc::new(Encoded::listener(l))),
        );
        let routes = match proxy {
            Proxy::Sidecar(_) => None,
            Proxy::Router(_) => Some(Layer::succeed(
                inherited.and_then(|i| i.routes.as_ref()),
                routes.iter().map(|r| Arc::new(Encoded::route(r))),
            )),
        };
        self.own_from_layers(proxy, inputs, clusters, listeners, routes, inherited)
    }

    /// The proxy's snapshot: its own layers over the shared ones of its view and route scope. When those are
    /// the very layers of the snapshot it had (`inherited`), that snapshot itself, so the proxy's stream sees
    /// that nothing changed without looking at a single resource.
    fn own_from_layers(
        &self,
        proxy: &Proxy,
        inputs: OwnInputs,
        clusters: Arc<Layer>,
        listeners: Arc<Layer>,
        routes: Option<Arc<Layer>>,
        inherited: Option<&Own>,
    ) -> Result<Own, String> {
        let (shared, route_layer) = match (proxy, &routes) {
            (Proxy::Sidecar(sidecar), None) => {
                let scope = self.shared.scope_of(sidecar);
                let routes = self.shared.routes(&scope).cloned().ok_or_else(|| {
                    // Every workload's scope is built with the generation; a sidecar is a workload.
                    format!(
                        "no route configurations for the scope of {}",
                        sidecar.workload
                    )
                })?;
                (self.view_of(sidecar)?, routes)
            }
            (_, own) => {
                // A gateway reaches every service, and has routes of its own.
                let every = self.shared.view(None).ok_or("no view of every service")?;
                let routes = own.clone().unwrap_or_else(|| Arc::new(Layer::new([])));
                (every, routes)
            }
        };
        let mut layers: PerType<Vec<Arc<Layer>>> = PerType::default();
        layers[ResourceType::Cluster] = vec![shared.clusters.clone(), clusters.clone()];
        layers[ResourceType::Endpoint] = vec![shared.endpoints.clone()];
        layers[ResourceType::Listener] = vec![listeners.clone()];
        layers[ResourceType::Route] = vec![route_layer];
        let snapshot = match inherited {
            Some(previous) if previous.snapshot.is_made_of(&layers) => previous.snapshot.clone(),
            _ => match proxy {
                Proxy::Sidecar(sidecar) => Arc::new(
                    Snapshot::from_layers(layers).with_subject(subject_of(&sidecar.workload_key())),
                ),
                // Its routes come from every Gateway and VirtualService: no list of replaced layers covers it.
                Proxy::Router(_) => Arc::new(Snapshot::from_layers(layers).marked_volatile()),
            },
        };
        Ok(Own {
            inputs,
            clusters,
            listeners,
            routes,
            snapshot,
        })
    }

    /// The proxy a stream's `node` is: as found before if that holds in this generation (confirmed here, or
    /// by the previous generation with nothing identification reads changed since, or checked now); else
    /// [`MeshGeneration::identify`]'s answer, remembered.
    fn identity_of_stream(&self, node: &Arc<Node>) -> Result<Arc<Proxy>, String> {
        let key = Arc::as_ptr(node) as usize;
        if let Some(entry) = lock(&self.identities).get_mut(&key) {
            let holds = (self.identities_since..=self.id).contains(&entry.verified_in)
                || self.still_is(&entry.proxy);
            if holds {
                entry.verified_in = entry.verified_in.max(self.id);
                return Ok(entry.proxy.clone());
            }
        }
        let proxy = Arc::new(self.identify(node)?);
        lock(&self.identities).insert(
            key,
            StreamIdentity {
                node: node.clone(),
                proxy: proxy.clone(),
                verified_in: self.id,
            },
        );
        Ok(proxy)
    }

    /// Whether a proxy identified in an earlier generation is the same proxy in this one: a sidecar's workload
    /// is here with the same labels and the same `Sidecar` resource (the rest of a sidecar's identity comes from
    /// its node). A gateway is identified again (its Gateways may have changed; there are few gateways).
    fn still_is(&self, proxy: &Proxy) -> bool {
        match proxy {
            Proxy::Sidecar(sidecar) => {
                self.mesh
                    .workloads
                    .get(&sidecar.workload_key())
                    .is_some_and(|w| w.labels == sidecar.labels)
                    && self.shared.egress_of(&sidecar.namespace, &sidecar.workload)
                        == Some(sidecar.egress.as_deref())
            }
            Proxy::Router(_) => false,
        }
    }

    /// The proxy `node` is, with the `Sidecar` resource of each workload as the shared resources decided it.
    fn identify(&self, node: &Node) -> Result<Proxy, String> {
        Proxy::identify_with(&self.mesh, node, |namespace, name, labels| {
            match self.shared.egress_of(namespace, name) {
                Some(egress) => egress.map(str::to_owned),
                None => self
                    .mesh
                    .egress_scope_for(namespace, labels)
                    .map(str::to_owned),
            }
        })
        .map_err(|e| e.to_string())
    }

    fn view_of(&self, sidecar: &Sidecar) -> Result<&View, String> {
        self.shared.view(sidecar.egress.as_deref()).ok_or_else(|| {
            // Every workload's Sidecar resource has a view; a sidecar is a workload.
            format!("no view for the Sidecar resource of {}", sidecar.workload)
        })
    }

    fn inbound_of(&self, sidecar: &Sidecar) -> Arc<Vec<(u32, String)>> {
        self.inbound
            .get(&sidecar.workload_key())
            .cloned()
            .unwrap_or_default()
    }

    fn sidecar_resources(&self, sidecar: &Sidecar, inputs: &OwnInputs) -> Resources {
        let OwnInputs::Sidecar {
            inbound,
            outbound_ports,
        } = inputs
        else {
            return Resources::default();
        };
        let inbound: Vec<_> = inbound
            .iter()
            .filter_map(|(port, host)| self.mesh.services.get(host).map(|s| (*port, &**s)))
            .collect();
        translate::sidecar_own(sidecar, &inbound, outbound_ports)
    }

    fn router_resources(&self, router: &Router) -> Resources {
        translate::router_own(&self.mesh, router)
    }
}

/// Each workload's inbound ports and the host of the service that exposes each (`namespace/name` ->), as the
/// sidecar's own listeners and inbound clusters are built from them.
type InboundPorts = BTreeMap<String, Arc<Vec<(u32, String)>>>;

/// The inbound ports of every workload. They depend on the workloads and the services alone: with both the
/// very ones of the previous generation (a VirtualService or DestinationRule change), its ports are these;
/// else each workload whose ports came out the same, exposed by unchanged services, keeps the previous
/// allocation, so that a proxy's inputs compare equal by address (and differ when a service they are
/// translated from changed).
/// Each workload's inbound ports, with the service of each. From `previous`, only the workloads whose ports
/// may differ are worked out again: those added, removed or changed, and those a changed service exposes (as it
/// was or is). They are returned too (`None`: every workload was worked out).
fn inbound_ports(
    mesh: &Mesh,
    previous: Option<(&Mesh, &Arc<InboundPorts>, &[&str])>,
) -> (Arc<InboundPorts>, Option<BTreeSet<String>>) {
    let Some((before, ports, changed_workloads)) = previous else {
        let index = InboundIndex::new(mesh, |_| true);
        let ports = mesh
            .workloads
            .keys()
            .map(|key| (key.clone(), Arc::new(index.owned_ports_of(key))))
            .collect();
        return (Arc::new(ports), None);
    };
    if Arc::ptr_eq(&before.workloads, &mesh.workloads)
        && Arc::ptr_eq(&before.services, &mesh.services)
    {
        return (ports.clone(), Some(BTreeSet::new()));
    }
    // The services that are not what they were, compared once rather than once per workload exposing them.
    let changed_services: Vec<&str> = changed_keys(&before.services, &mesh.services);
    let exposed_by_a_changed_service = changed_services
        .iter()
        .flat_map(|host| [before.services.get(*host), mesh.services.get(*host)])
        .flatten()
        .flat_map(|service| &service.endpoints)
        .filter_map(|endpoint| endpoint.workload.as_deref());
    let affected: BTreeSet<String> = changed_workloads
        .iter()
        .copied()
        .chain(exposed_by_a_changed_service)
        .map(str::to_owned)
        .collect();
    let index = InboundIndex::new(mesh, |workload| affected.contains(workload));
    let mut next = (**ports).clone();
    for key in &affected {
        if !mesh.workloads.contains_key(key) {
            next.remove(key);
            continue;
        }
        let now = index.owned_ports_of(key);
        // The same ports, each exposed by the same (unchanged) service: the same allocation, so that the
        // sidecar's own resources are kept.
        let kept = ports.get(key).filter(|was| {
            ***was == now
                && !now
                    .iter()
                    .any(|(_, host)| changed_services.contains(&host.as_str()))
        });
        next.insert(key.clone(), kept.cloned().unwrap_or_else(|| Arc::new(now)));
    }
    (Arc::new(next), Some(affected))
}

/// The subject of a sidecar's snapshot ([`Snapshot::subject`]): its workload (`namespace/name`), hashed. Two
/// workloads with the same hash only ring each other's streams for nothing.
fn subject_of(workload: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    workload.hash(&mut hasher);
    hasher.finish()
}

/// The subjects of the workloads whose sidecars may be other proxies than in `previous`, or have other own
/// resources: WorkloadEntries added, removed or changed, another `Sidecar` resource applying, other inbound ports
/// (or services exposing them). Everything else of a sidecar's snapshot is in the shared layers.
fn changed_workloads<'k>(
    previous: &MeshGeneration,
    mesh: &Mesh,
    shared: &SharedResources,
    inbound: &InboundPorts,
    candidates: Option<impl Iterator<Item = &'k str>>,
) -> BTreeSet<u64> {
    let (before, now) = (&previous.mesh.workloads, &mesh.workloads);
    let differs = |key: &str| match (before.get(key), now.get(key)) {
        (None, None) => false,
        (Some(_), None) | (None, Some(_)) => true,
        (Some(was), Some(is)) => {
            let ports_changed = match (previous.inbound.get(key), inbound.get(key)) {
                (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
                (a, b) => a.is_some() != b.is_some(),
            };
            was != is
                || previous.shared.egress_by_key(key) != shared.egress_by_key(key)
                || ports_changed
        }
    };
    match candidates {
        Some(keys) => keys.filter(|key| differs(key)).map(subject_of).collect(),
        None => before
            .keys()
            .chain(now.keys())
            .map(String::as_str)
            .filter(|key| differs(key))
            .map(subject_of)
            .collect(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain memo data: whatever a panicking holder left behind is still valid.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Generation for MeshGeneration {
    fn snapshot_for(&self, node: &Node) -> Result<Arc<Snapshot>, String> {
        let proxy = Arc::new(self.identify(node)?);
        Ok(self.own(&proxy)?.snapshot)
    }

    fn snapshot_for_stream(&self, node: &Arc<Node>) -> Result<Arc<Snapshot>, String> {
        let proxy = self.identity_of_stream(node)?;
        Ok(self.own(&proxy)?.snapshot)
    }

    fn release(&self, node: &Arc<Node>) {
        let known = lock(&self.identities).remove(&(Arc::as_ptr(node) as usize));
        let proxy = match known {
            Some(entry) => entry.proxy,
            None => match self.identify(node) {
                Ok(proxy) => Arc::new(proxy),
                Err(_) => return,
            },
        };
        for map in [&self.own, &self.inherited] {
            let mut map = lock(map);
            if map.get(&*proxy).is_some_and(|kept| !kept.is_held()) {
                map.remove(&*proxy);
            }
        }
    }

    fn translations_held(&self) -> usize {
        lock(&self.own).len() + lock(&self.inherited).len()
    }

    fn accepted_at(&self) -> Option<Instant> {
        self.accepted_at
    }

    fn reach_after(&self, previous: &dyn Generation) -> Reach<'_> {
        match &self.replaced {
            Some(replaced) if self.previous_id.is_some() && previous.id() == self.previous_id => {
                Reach::Holding(replaced)
            }
            _ => Reach::Every,
        }
    }

    fn id(&self) -> Option<u64> {
        Some(self.id)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::control_plane::read_mesh;

    fn bookinfo() -> Arc<Mesh> {
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        read_mesh(&[config]).expect("config/ is valid").mesh
    }

    /// A sidecar's node as Envoy presents it, by its Istio-style id alone.
    fn node(mesh: &Mesh, workload: &str) -> Node {
        let w = &mesh.workloads[&format!("default/{workload}")];
        Node {
            id: format!(
                "sidecar~{}~{}.{}~{}.svc.cluster.local",
                w.address, w.name, w.namespace, w.namespace
            ),
            ..Node::default()
        }
    }

    /// `mesh` with one workload labelled `tier: backend` besides its own labels.
    fn with_tier_label(mesh: &Mesh, workload: &str) -> Arc<Mesh> {
        let mut relabelled = mesh.clone();
        if let Some(w) = Arc::make_mut(&mut relabelled.workloads).get_mut(workload) {
            Arc::make_mut(w)
                .labels
                .insert("tier".into(), "backend".into());
        }
        Arc::new(relabelled)
    }

    fn known(generation: &MeshGeneration, node: &Arc<Node>) -> Option<Arc<Proxy>> {
        lock(&generation.identities)
            .get(&(Arc::as_ptr(node) as usize))
            .map(|entry| entry.proxy.clone())
    }

    #[test]
    fn a_stream_is_identified_once_across_generations_and_forgotten_when_it_ends() {
        let mesh = bookinfo();
        let reviews = Arc::new(node(&mesh, "reviews-v1"));
        let first = MeshGeneration::new(mesh.clone());
        let held = first.snapshot_for_stream(&reviews).unwrap();
        let proxy = known(&first, &reviews).expect("remembered");
        // The same mesh again: the next generation knows the stream's node without identifying it again.
        let second = MeshGeneration::succeed(mesh.clone(), &first);
        assert!(Arc::ptr_eq(
            &known(&second, &reviews).expect("taken over"),
            &proxy
        ));
        assert!(Arc::ptr_eq(
            &second.snapshot_for_stream(&reviews).unwrap(),
            &held
        ));
        // Another stream of the same node is another entry, and neither is mistaken for the other.
        let again = Arc::new((*reviews).clone());
        assert!(Arc::ptr_eq(
            &second.snapshot_for_stream(&again).unwrap(),
            &held
        ));
        assert_eq!(lock(&second.identities).len(), 2);
        // A stream that ends takes its entry along; the translation stays while the other holds it.
        second.release(&reviews);
        assert!(known(&second, &reviews).is_none());
        assert_eq!(second.translations_held(), 1);
        drop(held);
        second.release(&again);
        assert!(lock(&second.identities).is_empty());
        assert_eq!(second.translations_held(), 0);
    }

    /// A stream may end on any generation, and an ended stream whose task never released its entry (it ended
    /// abnormally) holds its node no more: either way the next generation does not keep the entry.
    #[test]
    fn an_ended_stream_is_forgotten_whichever_generation_it_last_saw() {
        let mesh = bookinfo();
        let reviews = Arc::new(node(&mesh, "reviews-v1"));
        let ratings = Arc::new(node(&mesh, "ratings-v1"));
        let first = MeshGeneration::new(mesh.clone());
        let held = [&reviews, &ratings].map(|n| first.snapshot_for_stream(n).unwrap());
        let second = MeshGeneration::succeed(mesh.clone(), &first);
        // reviews' stream ends before it saw `second`, and releases from `first`.
        first.release(&reviews);
        assert!(known(&second, &reviews).is_none());
        // ratings' stream goes without a word.
        drop(held);
        drop(ratings);
        let third = MeshGeneration::succeed(mesh.clone(), &second);
        assert!(lock(&third.identities).is_empty());
    }

    /// A stream that skipped a generation in which its workload changed must not be vouched for by a later
    /// generation in which nothing identification reads changed.
    #[test]
    fn a_stream_that_skipped_a_change_to_its_workload_is_identified_again() {
        let mesh = bookinfo();
        let reviews = Arc::new(node(&mesh, "reviews-v1"));
        let first = MeshGeneration::new(mesh.clone());
        let _held = first.snapshot_for_stream(&reviews).unwrap();
        let relabelled = with_tier_label(&mesh, "default/reviews-v1");
        // The stream does not look at `second` (it was busy writing to its proxy)...
        let second = MeshGeneration::succeed(relabelled.clone(), &first);
        // ...and `third` changes nothing identification reads.
        let third = MeshGeneration::succeed(relabelled, &second);
        assert_eq!(
            third.identities_since, second.id,
            "nothing identification reads changed since second"
        );
        let Proxy::Sidecar(sidecar) = &*third.identity_of_stream(&reviews).unwrap() else {
            panic!("a sidecar");
        };
        assert_eq!(
            sidecar.labels.get("tier").map(String::as_str),
            Some("backend")
        );
    }

    #[test]
    fn after_a_change_to_the_workloads_a_remembered_identity_is_used_only_if_it_still_holds() {
        let mesh = bookinfo();
        let reviews = Arc::new(node(&mesh, "reviews-v1"));
        let ratings = Arc::new(node(&mesh, "ratings-v1"));
        let first = MeshGeneration::new(mesh.clone());
        let _held = [&reviews, &ratings].map(|n| first.snapshot_for_stream(n).unwrap());
        let remembered = known(&first, &ratings).unwrap();
        // reviews-v1 gains a label; ratings-v1 is untouched.
        let relabelled = with_tier_label(&mesh, "default/reviews-v1");
        let second = MeshGeneration::succeed(relabelled, &first);
        assert_eq!(second.identities_since, second.id);
        let Proxy::Sidecar(sidecar) = &*second.identity_of_stream(&reviews).unwrap() else {
            panic!("a sidecar");
        };
        assert_eq!(
            sidecar.labels.get("tier").map(String::as_str),
            Some("backend")
        );
        assert!(Arc::ptr_eq(
            &second.identity_of_stream(&ratings).unwrap(),
            &remembered
        ));
    }

    /// What a published generation tells the cache: a gateway looks on every generation; the same mesh again
    /// replaces nothing; a relabelled workload replaces its own sidecar's snapshot.
    #[test]
    fn a_generation_names_the_layers_and_the_workloads_it_replaced() {
        let mesh = bookinfo();
        let reviews = Arc::new(node(&mesh, "reviews-v1"));
        let gateway = Arc::new(Node {
            id: "router~127.0.0.1~ingress.istio-system~istio-system.svc.cluster.local".into(),
            ..Node::default()
        });
        let first = MeshGeneration::new(mesh.clone());
        let held = first.snapshot_for_stream(&reviews).unwrap();
        assert!(!held.volatile());
        assert_eq!(held.subject(), Some(subject_of("default/reviews-v1")));
        assert!(first.snapshot_for_stream(&gateway).unwrap().volatile());
        let second = MeshGeneration::succeed(mesh.clone(), &first);
        assert!(
            matches!(second.reach_after(&first), Reach::Holding(replaced) if *replaced == Replaced::default())
        );
        // Published after some other generation than the one it was built from: it cannot say.
        assert!(matches!(second.reach_after(&second), Reach::Every));
        // A relabelled workload: its sidecar may be another proxy; the others are the ones they were.
        let third = MeshGeneration::succeed(with_tier_label(&mesh, "default/reviews-v1"), &second);
        let Reach::Holding(replaced) = third.reach_after(&second) else {
            panic!("the other sidecars are the proxies they were");
        };
        assert_eq!(
            replaced.subjects,
            BTreeSet::from([subject_of("default/reviews-v1")])
        );
    }

    /// The route scopes of a generation built from another are worked out for the changed workloads only: a
    /// scope whose last workload went must go too, and one a new workload needs must come.
    #[test]
    fn route_scopes_follow_the_workloads_added_and_removed() {
        let mesh = bookinfo();
        let mut with_visitor = (*mesh).clone();
        let mut visitor = (*mesh.workloads["default/reviews-v1"]).clone();
        visitor.namespace = "visitors".into();
        Arc::make_mut(&mut with_visitor.workloads)
            .insert("visitors/reviews-v1".into(), Arc::new(visitor));
        let with_visitor = Arc::new(with_visitor);
        let scopes = |g: &MeshGeneration| -> Vec<crate::mesh::RouteScope> {
            g.shared.route_scopes().into_iter().cloned().collect()
        };
        let first = MeshGeneration::new(mesh.clone());
        let arrived = MeshGeneration::succeed(with_visitor.clone(), &first);
        assert_eq!(scopes(&arrived), scopes(&MeshGeneration::new(with_visitor)));
        assert_eq!(scopes(&arrived).len(), scopes(&first).len() + 1);
        let left = MeshGeneration::succeed(mesh.clone(), &arrived);
        assert_eq!(scopes(&left), scopes(&first));
    }

    /// A proxy's own resources read the services exposing its ports (their names are stamped on the inbound
    /// clusters): a ServiceEntry renamed with the same hosts and ports must not leave the old name there.
    #[test]
    fn a_sidecar_kept_across_a_change_to_the_service_it_exposes_is_translated_again() {
        let mesh = bookinfo();
        let reviews = Arc::new(node(&mesh, "reviews-v1"));
        let first = MeshGeneration::new(mesh.clone());
        let _held = first.snapshot_for_stream(&reviews).unwrap();
        let mut renamed = (*mesh).clone();
        for service in Arc::make_mut(&mut renamed.services).values_mut() {
            if service.hostname.starts_with("reviews.") {
                Arc::make_mut(service).meta.resource.name = "reviews-renamed".into();
            }
        }
        let renamed = Arc::new(renamed);
        let second = MeshGeneration::succeed(renamed.clone(), &first);
        let scratch = MeshGeneration::new(renamed);
        assert_eq!(
            *second.snapshot_for_stream(&reviews).unwrap(),
            *scratch.snapshot_for(&reviews).unwrap()
        );
    }
}
