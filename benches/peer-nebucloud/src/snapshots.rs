//! One nebucloud snapshot per node id, holding exactly what that proxy held from Switchyard.
//!
//! nebucloud keys snapshots by `NodeHash::from_id(node.id)` (an FNV-1a hash of the node id, taken from the
//! stream's first request; `xds-server`'s `services/ads.rs`), not by cluster: one snapshot per node id gives
//! each simulated proxy its own resources. Two ids with the same hash would share one snapshot, so that is
//! refused. A resource the proxies share (same type, name and bytes) is one `Arc` in every snapshot that holds
//! it, as a nebucloud user building snapshots from shared translations would have it.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::bail;
use prost_types::Any;
use xds_cache::{Cache, ShardedCache, Snapshot};
use xds_core::{BoxResource, NodeHash, Resource, TypeUrl};

use crate::recording::Held;

/// Every snapshot's version: each node has one snapshot for the life of the process.
pub const VERSION: &str = "1";

/// A resource as Switchyard encoded it, handed to nebucloud as is.
#[derive(Debug)]
pub struct Recorded {
    name: String,
    any: Any,
}

impl Recorded {
    pub fn new(name: String, any: Any) -> Recorded {
        Recorded { name, any }
    }
}

impl Resource for Recorded {
    fn type_url(&self) -> &str {
        &self.any.type_url
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn encode(&self) -> Result<Any, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.any.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Interns resources so that equal ones are one allocation.
#[derive(Default)]
struct Interner {
    by_name: BTreeMap<(String, String), Vec<Arc<Recorded>>>,
}

impl Interner {
    fn intern(&mut self, type_url: &str, name: String, any: Any) -> BoxResource {
        let versions = self
            .by_name
            .entry((type_url.to_string(), name.clone()))
            .or_default();
        if let Some(same) = versions.iter().find(|r| r.any == any) {
            return same.clone();
        }
        let resource = Arc::new(Recorded::new(name, any));
        versions.push(resource.clone());
        resource
    }
}

/// Fills a cache with one snapshot per node id.
pub struct Snapshots {
    cache: ShardedCache,
    interner: Interner,
    /// `NodeHash` -> the node id it was set for.
    ids: BTreeMap<u64, String>,
}

impl Snapshots {
    pub fn new() -> Snapshots {
        Snapshots {
            cache: ShardedCache::new(),
            interner: Interner::default(),
            ids: BTreeMap::new(),
        }
    }

    /// Sets node `id`'s snapshot to `held`.
    pub fn add(&mut self, id: String, held: Held) -> anyhow::Result<()> {
        let hash = NodeHash::from_id(&id);
        if let Some(other) = self.ids.insert(hash.as_u64(), id.clone()) {
            bail!("node ids {other} and {id} have the same NodeHash: nebucloud would serve them one snapshot");
        }
        let mut snapshot = Snapshot::builder().version(VERSION);
        for (type_url, resources) in held {
            let resources: Vec<BoxResource> = resources
                .into_iter()
                .map(|(name, any)| self.interner.intern(&type_url, name, any))
                .collect();
            snapshot = snapshot.resources(TypeUrl::new(type_url), resources);
        }
        self.cache.set_snapshot(hash, snapshot.build());
        Ok(())
    }

    pub fn nodes(&self) -> usize {
        self.ids.len()
    }

    /// Distinct resources held, and their encoded bytes.
    pub fn distinct(&self) -> (usize, usize) {
        let all = self.interner.by_name.values().flatten();
        all.fold((0, 0), |(n, bytes), r| (n + 1, bytes + r.any.value.len()))
    }

    pub fn into_cache(self) -> ShardedCache {
        self.cache
    }
}

impl Default for Snapshots {
    fn default() -> Snapshots {
        Snapshots::new()
    }
}
