//! One accepted configuration as the xDS server sees it: which snapshot each proxy gets.
//!
//! Translation runs at most once per proxy identity per generation, on first demand, and identical
//! resources across proxies share one encoded copy.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use envoy_types::pb::envoy::config::core::v3::Node;

use crate::mesh::{Mesh, Proxy};
use crate::translate::{self, Resources};
use crate::xds::{Generation, Interner, Snapshot, SnapshotBuilder};

#[derive(Debug)]
pub struct MeshGeneration {
    mesh: Arc<Mesh>,
    memo: Mutex<Memo>,
}

#[derive(Debug, Default)]
struct Memo {
    snapshots: BTreeMap<Proxy, Arc<Snapshot>>,
    interner: Interner,
}

impl MeshGeneration {
    pub fn new(mesh: Arc<Mesh>) -> MeshGeneration {
        MeshGeneration {
            mesh,
            memo: Mutex::default(),
        }
    }

    pub fn mesh(&self) -> &Arc<Mesh> {
        &self.mesh
    }

    fn memo(&self) -> MutexGuard<'_, Memo> {
        // The memo is a cache: whatever a panicking holder left behind is still valid.
        self.memo.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Generation for MeshGeneration {
    fn snapshot_for(&self, node: &Node) -> Result<Arc<Snapshot>, String> {
        let proxy = Proxy::identify(&self.mesh, node).map_err(|e| e.to_string())?;
        let mut memo = self.memo();
        if let Some(snapshot) = memo.snapshots.get(&proxy) {
            return Ok(snapshot.clone());
        }
        let resources = translate::translate(&self.mesh, &proxy);
        let snapshot = Arc::new(snapshot_of(&resources, &mut memo.interner));
        memo.snapshots.insert(proxy, snapshot.clone());
        Ok(snapshot)
    }
}

/// Encodes translated resources into a snapshot.
pub fn snapshot_of(resources: &Resources, interner: &mut Interner) -> Snapshot {
    let Resources {
        clusters,
        endpoints,
        listeners,
        routes,
    } = resources;
    let mut builder = SnapshotBuilder::with_interner(interner);
    for c in clusters {
        builder = builder.cluster(c);
    }
    for e in endpoints {
        builder = builder.endpoint(e);
    }
    for l in listeners {
        builder = builder.listener(l);
    }
    for r in routes {
        builder = builder.route(r);
    }
    builder.build()
}
