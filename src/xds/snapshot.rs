//! Immutable, versioned sets of encoded resources: what one class of proxies should see.
//!
//! Each resource is encoded once and versioned by a hash of its bytes, so identical input yields identical
//! versions across restarts and a proxy reconnecting with `initial_resource_versions` is sent only what changed.
//! Resources are held behind `Arc`: every proxy whose translation produced the same bytes shares one copy.

use std::collections::BTreeMap;
use std::sync::Arc;

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

use super::resource_type::{PerType, ResourceType};

/// One resource, encoded once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub name: String,
    /// Hash of the encoded bytes.
    pub version: String,
    pub any: Any,
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
        }
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

/// Everything one proxy class should see, per type, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    resources: PerType<BTreeMap<String, Arc<Encoded>>>,
    /// For each cluster, the EDS name its endpoints are requested under (empty for non-EDS clusters).
    eds_names: BTreeMap<String, String>,
}

impl Snapshot {
    pub fn builder() -> SnapshotBuilder<'static> {
        SnapshotBuilder {
            snapshot: Snapshot::default(),
            interner: None,
        }
    }

    pub fn resources(&self, t: ResourceType) -> &BTreeMap<String, Arc<Encoded>> {
        &self.resources[t]
    }

    pub fn get(&self, t: ResourceType, name: &str) -> Option<&Arc<Encoded>> {
        self.resources[t].get(name)
    }

    /// The EDS service name of a cluster, if it takes its endpoints from EDS.
    pub fn eds_name_of_cluster(&self, cluster: &str) -> Option<&str> {
        self.eds_names
            .get(cluster)
            .map(String::as_str)
            .filter(|n| !n.is_empty())
    }
}

/// Shares encoded resources between the snapshots built from one configuration generation: proxies whose
/// translation yields the same bytes hold the same `Arc`.
#[derive(Debug, Default)]
pub struct Interner {
    seen: BTreeMap<(ResourceType, String, String), Arc<Encoded>>,
}

impl Interner {
    fn intern(&mut self, t: ResourceType, encoded: Encoded) -> Arc<Encoded> {
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

pub struct SnapshotBuilder<'a> {
    snapshot: Snapshot,
    interner: Option<&'a mut Interner>,
}

impl<'a> SnapshotBuilder<'a> {
    pub fn with_interner(interner: &'a mut Interner) -> SnapshotBuilder<'a> {
        SnapshotBuilder {
            snapshot: Snapshot::default(),
            interner: Some(interner),
        }
    }

    fn insert(&mut self, t: ResourceType, encoded: Encoded) {
        let arc = match self.interner.as_deref_mut() {
            Some(interner) => interner.intern(t, encoded),
            None => Arc::new(encoded),
        };
        self.snapshot.resources[t].insert(arc.name.clone(), arc);
    }

    pub fn cluster(mut self, cluster: &Cluster) -> Self {
        let eds = match cluster.cluster_discovery_type {
            Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Eds as i32 => cluster
                .eds_cluster_config
                .as_ref()
                .map(|c| c.service_name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| cluster.name.clone()),
            _ => String::new(),
        };
        self.snapshot.eds_names.insert(cluster.name.clone(), eds);
        self.insert(ResourceType::Cluster, Encoded::new(&cluster.name, cluster));
        self
    }

    pub fn endpoint(mut self, assignment: &ClusterLoadAssignment) -> Self {
        self.insert(
            ResourceType::Endpoint,
            Encoded::new(&assignment.cluster_name, assignment),
        );
        self
    }

    pub fn listener(mut self, listener: &Listener) -> Self {
        self.insert(
            ResourceType::Listener,
            Encoded::new(&listener.name, listener),
        );
        self
    }

    pub fn route(mut self, route: &RouteConfiguration) -> Self {
        self.insert(ResourceType::Route, Encoded::new(&route.name, route));
        self
    }

    pub fn build(self) -> Snapshot {
        self.snapshot
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
