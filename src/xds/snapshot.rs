//! Immutable, versioned sets of encoded resources: what one proxy should see.
//!
//! Each resource is encoded once and versioned by a hash of its bytes, so identical input yields identical
//! versions across restarts and a proxy reconnecting with `initial_resource_versions` is sent only what changed.
//!
//! A snapshot is made of [`Layer`]s, per type, and layers are shared: every sidecar of a mesh holds the same
//! `Arc` of the outbound clusters and endpoints, and every sidecar of a route scope the same route
//! configurations; only what really differs per proxy (its listeners, its inbound clusters) is a layer of its
//! own. A layer that did not change between two generations is the same `Arc` in both, which is how a stream
//! knows, without looking at a single resource, that it owes its proxy nothing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use envoy_types::pb::envoy::config::cluster::v3::{
    cluster::{ClusterDiscoveryType, DiscoveryType},
    Cluster,
};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use sha2::{Digest, Sha256};

use super::names::{NameSet, WeakNameSet};
use super::resource_type::{PerType, ResourceType};

/// One resource, encoded once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub name: String,
    /// Hash of the encoded bytes.
    pub version: String,
    pub any: Any,
    /// For an EDS cluster, the name its endpoints are requested under.
    pub eds_service: Option<String>,
    /// A large resource's response entries, encoded once for every response that carries it
    /// (`super::outgoing`).
    pub shared_entries: SharedEntries,
}

/// The `resources` entries of a resource in a SotW and in a Delta response, each encoded when first sent.
/// Derived from the resource alone: equal whenever the resources are.
#[derive(Clone, Default)]
pub struct SharedEntries {
    pub(super) sotw: std::sync::OnceLock<bytes::Bytes>,
    pub(super) delta: std::sync::OnceLock<bytes::Bytes>,
}

impl PartialEq for SharedEntries {
    fn eq(&self, _: &SharedEntries) -> bool {
        true
    }
}

impl Eq for SharedEntries {}

impl std::fmt::Debug for SharedEntries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedEntries")
            .field("sotw", &self.sotw.get().map(bytes::Bytes::len))
            .field("delta", &self.delta.get().map(bytes::Bytes::len))
            .finish()
    }
}

impl Encoded {
    pub fn new<M: Message + Name>(name: impl Into<String>, message: &M) -> Encoded {
        let value = message.encode_to_vec();
        Encoded {
            name: name.into(),
            version: short_hash(|h| h.update(&value)),
            any: Any {
                type_url: M::type_url(),
                value,
            },
            eds_service: None,
            shared_entries: SharedEntries::default(),
        }
    }

    pub fn cluster(cluster: &Cluster) -> Encoded {
        let eds_service = match cluster.cluster_discovery_type {
            Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Eds as i32 => Some(
                cluster
                    .eds_cluster_config
                    .as_ref()
                    .map(|c| c.service_name.clone())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| cluster.name.clone()),
            ),
            _ => None,
        };
        Encoded {
            eds_service,
            ..Encoded::new(&cluster.name, cluster)
        }
    }

    pub fn endpoint(assignment: &ClusterLoadAssignment) -> Encoded {
        Encoded::new(&assignment.cluster_name, assignment)
    }

    pub fn listener(listener: &Listener) -> Encoded {
        Encoded::new(&listener.name, listener)
    }

    pub fn route(route: &RouteConfiguration) -> Encoded {
        Encoded::new(&route.name, route)
    }
}

/// Hex of the first 8 bytes of a SHA-256: collisions are irrelevant at this scale, and short versions keep
/// Envoy's config dumps and our logs readable.
fn short_hash(feed: impl FnOnce(&mut Sha256)) -> String {
    let mut hasher = Sha256::new();
    feed(&mut hasher);
    let digest = hasher.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The version of a set of resources: a hash over their names and versions, so it changes exactly when
/// one of them changes, appears or disappears.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A memo: whatever a panicking holder left is still a valid memo.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn aggregate_version<'a>(resources: impl IntoIterator<Item = &'a Encoded>) -> String {
    short_hash(|h| {
        for r in resources {
            h.update(r.name.as_bytes());
            h.update([0]);
            h.update(r.version.as_bytes());
            h.update([b'\n']);
        }
    })
}

/// Process-wide layer identities: a stream remembers which layers it last sent by id, without keeping them
/// alive. Never reused, so an id can't be mistaken for a later layer's.
static NEXT_LAYER_ID: AtomicU64 = AtomicU64::new(1);

/// Resources of one type, by name, shared by every proxy that sees them. Immutable once built.
#[derive(Debug)]
pub struct Layer {
    id: u64,
    resources: BTreeMap<String, Arc<Encoded>>,
    /// `aggregate_version` of all of `resources`, computed once.
    version: String,
    /// What changed from the layer this one replaced, when it was built as its successor.
    change: Option<LayerChange>,
    /// The versions of explicit subscriptions' selections from this layer, per interned name set. Every
    /// sidecar of a scope subscribes to the same names, so the first stream to answer from a new layer hashes
    /// the selection and the others look it up: without it, a change costs every stream a walk over every
    /// name it subscribes to.
    selections: Mutex<Vec<(WeakNameSet, String)>>,
}

/// Memoised selections kept per layer: a few name sets per scope are usual; beyond that the oldest goes.
const SELECTIONS_KEPT: usize = 32;

/// The difference between a layer and the one it replaced in the previous generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerChange {
    /// The id of the replaced layer.
    pub from: u64,
    /// Names added or whose version changed, in name order.
    pub changed: Vec<String>,
    /// Names that disappeared, in name order.
    pub removed: Vec<String>,
}

impl Layer {
    pub fn new(resources: impl IntoIterator<Item = Arc<Encoded>>) -> Layer {
        let resources: BTreeMap<String, Arc<Encoded>> =
            resources.into_iter().map(|r| (r.name.clone(), r)).collect();
        Layer {
            id: NEXT_LAYER_ID.fetch_add(1, Ordering::Relaxed),
            version: aggregate_version(resources.values().map(|r| r.as_ref())),
            resources,
            change: None,
            selections: Mutex::default(),
        }
    }

    /// The layer to publish in place of `previous`: `previous` itself when nothing differs (so streams see at
    /// once that they owe nothing), else a new layer that knows what changed.
    pub fn succeed(
        previous: Option<&Arc<Layer>>,
        resources: impl IntoIterator<Item = Arc<Encoded>>,
    ) -> Arc<Layer> {
        let mut next = Layer::new(resources);
        let Some(previous) = previous else {
            return Arc::new(next);
        };
        if previous.version == next.version {
            return previous.clone();
        }
        let changed = next
            .resources
            .values()
            .filter(|r| previous.get(&r.name).is_none_or(|p| p.version != r.version))
            .map(|r| r.name.clone())
            .collect();
        let removed = previous
            .resources
            .keys()
            .filter(|name| !next.resources.contains_key(*name))
            .cloned()
            .collect();
        next.change = Some(LayerChange {
            from: previous.id,
            changed,
            removed,
        });
        Arc::new(next)
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Encoded>> {
        self.resources.get(name)
    }

    pub fn resources(&self) -> &BTreeMap<String, Arc<Encoded>> {
        &self.resources
    }

    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// What changed since the layer with id `from`, if this layer directly replaced it.
    /// `aggregate_version` of the resources of this layer that `names` names, in name order.
    pub fn selection_version(&self, names: &NameSet) -> String {
        if let Some((_, version)) = lock(&self.selections)
            .iter()
            .find(|(set, _)| set.refers_to(names))
        {
            return version.clone();
        }
        // Hashed outside the lock; two streams racing compute the same value.
        let version =
            aggregate_version(names.iter().filter_map(|n| self.get(n)).map(|r| r.as_ref()));
        let mut selections = lock(&self.selections);
        selections.retain(|(set, _)| set.is_alive());
        if selections.len() >= SELECTIONS_KEPT {
            selections.remove(0);
        }
        selections.push((names.downgrade(), version.clone()));
        version
    }

    pub fn change_since(&self, from: u64) -> Option<&LayerChange> {
        self.change.as_ref().filter(|c| c.from == from)
    }
}

/// Everything one proxy should see: per type, layers whose names do not overlap.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    layers: PerType<Vec<Arc<Layer>>>,
    /// Its generation cannot tell which changes concern it (a gateway's routes depend on every
    /// VirtualService): its stream looks again on every generation ([`super::Reach`]).
    volatile: bool,
    /// Whom it was made for, as its generation names it (a sidecar's workload): a generation may replace the
    /// snapshots of some subjects whatever layers they hold ([`super::Replaced::subjects`]).
    subject: Option<u64>,
}

impl Snapshot {
    pub fn builder() -> SnapshotBuilder<'static> {
        SnapshotBuilder {
            resources: PerType::default(),
            interner: None,
        }
    }

    /// A snapshot of these layers. Their names must not overlap within a type.
    pub fn from_layers(layers: PerType<Vec<Arc<Layer>>>) -> Snapshot {
        Snapshot {
            layers,
            volatile: false,
            subject: None,
        }
    }

    /// This snapshot, made for `subject` (see [`Snapshot::subject`]).
    pub fn with_subject(mut self, subject: u64) -> Snapshot {
        self.subject = Some(subject);
        self
    }

    pub fn subject(&self) -> Option<u64> {
        self.subject
    }

    /// This snapshot, looked up again on every generation (see [`Snapshot::volatile`]).
    pub fn marked_volatile(mut self) -> Snapshot {
        self.volatile = true;
        self
    }

    /// Whether its stream looks it up again on every generation, whatever the generation says it replaced.
    pub fn volatile(&self) -> bool {
        self.volatile
    }

    pub fn layers(&self, t: ResourceType) -> &[Arc<Layer>] {
        &self.layers[t]
    }

    /// Whether this snapshot is made of exactly these layers (the same allocations, in the same order): then
    /// it serves exactly what a snapshot of them would, and can stand in for one.
    pub fn is_made_of(&self, layers: &PerType<Vec<Arc<Layer>>>) -> bool {
        ResourceType::ALL.into_iter().all(|t| {
            let (mine, theirs) = (&self.layers[t], &layers[t]);
            mine.len() == theirs.len() && mine.iter().zip(theirs).all(|(a, b)| Arc::ptr_eq(a, b))
        })
    }

    pub fn get(&self, t: ResourceType, name: &str) -> Option<&Arc<Encoded>> {
        self.layers[t].iter().find_map(|l| l.get(name))
    }

    pub fn contains(&self, t: ResourceType, name: &str) -> bool {
        self.get(t, name).is_some()
    }

    /// Every resource of type `t`, in name order.
    pub fn all(&self, t: ResourceType) -> Vec<&Arc<Encoded>> {
        let layers = &self.layers[t];
        let mut all: Vec<&Arc<Encoded>> =
            layers.iter().flat_map(|l| l.resources.values()).collect();
        if layers.len() > 1 {
            all.sort_by(|a, b| a.name.cmp(&b.name));
        }
        all
    }

    pub fn len(&self, t: ResourceType) -> usize {
        self.layers[t].iter().map(|l| l.len()).sum()
    }

    /// The version of all resources of type `t`, from the layers' own versions: no resource is looked at.
    pub fn version(&self, t: ResourceType) -> String {
        match self.layers[t].as_slice() {
            [] => aggregate_version([]),
            [one] => one.version.clone(),
            several => short_hash(|h| {
                for l in several {
                    h.update(l.version.as_bytes());
                    h.update([b'\n']);
                }
            }),
        }
    }

    /// The EDS service name of a cluster, if it takes its endpoints from EDS.
    pub fn eds_name_of_cluster(&self, cluster: &str) -> Option<&str> {
        self.get(ResourceType::Cluster, cluster)
            .and_then(|c| c.eds_service.as_deref())
    }

    /// Resource name → version, per type: for status pages and tests.
    pub fn listing(&self) -> BTreeMap<ResourceType, BTreeMap<String, String>> {
        ResourceType::ALL
            .into_iter()
            .map(|t| {
                let names = self
                    .all(t)
                    .into_iter()
                    .map(|r| (r.name.clone(), r.version.clone()))
                    .collect();
                (t, names)
            })
            .collect()
    }
}

impl PartialEq for Snapshot {
    /// Equal content, whatever the layering.
    fn eq(&self, other: &Snapshot) -> bool {
        ResourceType::ALL.into_iter().all(|t| {
            let (a, b) = (self.all(t), other.all(t));
            a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x == y)
        })
    }
}

/// Shares encoded resources between snapshots built by hand: proxies whose resources are the same bytes
/// hold the same `Arc`.
#[derive(Debug, Default)]
pub struct Interner {
    seen: BTreeMap<(ResourceType, String, String), Arc<Encoded>>,
}

impl Interner {
    pub fn intern(&mut self, t: ResourceType, encoded: Encoded) -> Arc<Encoded> {
        let key = (t, encoded.name.clone(), encoded.version.clone());
        self.seen
            .entry(key)
            .or_insert_with(|| Arc::new(encoded))
            .clone()
    }

    /// How many distinct resources are held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Builds a snapshot of one layer per type, for tests and hand-made configurations.
pub struct SnapshotBuilder<'a> {
    resources: PerType<BTreeMap<String, Arc<Encoded>>>,
    interner: Option<&'a mut Interner>,
}

impl<'a> SnapshotBuilder<'a> {
    pub fn with_interner(interner: &'a mut Interner) -> SnapshotBuilder<'a> {
        SnapshotBuilder {
            resources: PerType::default(),
            interner: Some(interner),
        }
    }

    fn insert(&mut self, t: ResourceType, encoded: Encoded) {
        let arc = match self.interner.as_deref_mut() {
            Some(interner) => interner.intern(t, encoded),
            None => Arc::new(encoded),
        };
        // A later resource of the same name replaces an earlier one.
        self.resources[t].insert(arc.name.clone(), arc);
    }

    pub fn cluster(mut self, cluster: &Cluster) -> Self {
        self.insert(ResourceType::Cluster, Encoded::cluster(cluster));
        self
    }

    pub fn endpoint(mut self, assignment: &ClusterLoadAssignment) -> Self {
        self.insert(ResourceType::Endpoint, Encoded::endpoint(assignment));
        self
    }

    pub fn listener(mut self, listener: &Listener) -> Self {
        self.insert(ResourceType::Listener, Encoded::listener(listener));
        self
    }

    pub fn route(mut self, route: &RouteConfiguration) -> Self {
        self.insert(ResourceType::Route, Encoded::route(route));
        self
    }

    pub fn build(self) -> Snapshot {
        let mut resources = self.resources;
        Snapshot::from_layers(PerType::from_fn(|t| {
            let list = std::mem::take(&mut resources[t]);
            if list.is_empty() {
                Vec::new()
            } else {
                vec![Arc::new(Layer::new(list.into_values()))]
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(name: &str, timeout_secs: i64) -> Cluster {
        Cluster {
            name: name.into(),
            connect_timeout: Some(envoy_types::pb::google::protobuf::Duration {
                seconds: timeout_secs,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn versions_are_content_hashes() {
        let a = Encoded::new("c", &cluster("c", 1));
        let b = Encoded::new("c", &cluster("c", 1));
        let c = Encoded::new("c", &cluster("c", 2));
        assert_eq!(a.version, b.version);
        assert_ne!(a.version, c.version);
        assert_eq!(a.version.len(), 16);
        assert_ne!(aggregate_version([&a]), aggregate_version([&c]));
        assert_ne!(aggregate_version([&a]), aggregate_version([]));
    }

    #[test]
    fn interner_shares_identical_resources() {
        let mut interner = Interner::default();
        let one = SnapshotBuilder::with_interner(&mut interner)
            .cluster(&cluster("c", 1))
            .build();
        let two = SnapshotBuilder::with_interner(&mut interner)
            .cluster(&cluster("c", 1))
            .build();
        let a = one.get(ResourceType::Cluster, "c").unwrap();
        let b = two.get(ResourceType::Cluster, "c").unwrap();
        assert!(Arc::ptr_eq(a, b));
        assert_eq!(interner.len(), 1);
    }
}
