//! What the xDS server serves: a generation, which says which snapshot each node gets, and which streams a
//! newer one concerns.

use std::collections::BTreeSet;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::time::Instant;

use super::snapshot::Snapshot;

/// One configuration generation: answers which snapshot a given node should see.
pub trait Generation: Send + Sync + 'static {
    /// The snapshot for `node`, or why this node cannot be served (for example an identity that matches no
    /// workload). An error is retried on the next generation.
    fn snapshot_for(&self, node: &Node) -> Result<Arc<Snapshot>, String>;

    /// [`Generation::snapshot_for`] for the node of a stream, which passes the same allocation on every call of
    /// its life: a generation may remember who that node is by its address, rather than reading its metadata
    /// again each time ten thousand streams look up their snapshots after a change.
    fn snapshot_for_stream(&self, node: &Arc<Node>) -> Result<Arc<Snapshot>, String> {
        self.snapshot_for(node)
    }

    /// The last stream serving `node` may have ended and dropped its snapshot: forget whatever was kept for
    /// this node alone, unless another stream still holds it. Without this, every identity a client ever
    /// claimed would stay translated until the next configuration change.
    fn release(&self, _node: &Arc<Node>) {}

    /// How many per-proxy translations this generation holds (for `/metrics` and tests).
    fn translations_held(&self) -> usize {
        0
    }

    /// When the configuration change this generation serves was accepted: streams measure from it how long
    /// their proxy took to acknowledge the change (`switchyard_proxy_convergence_time`). `None`: not measured.
    fn accepted_at(&self) -> Option<Instant> {
        None
    }

    /// Which streams this generation concerns, published in place of `previous`: [`Reach::Every`] unless it
    /// knows what it replaced of that very generation.
    fn reach_after(&self, _previous: &dyn Generation) -> Reach<'_> {
        Reach::Every
    }

    /// Tells generations apart for [`Generation::reach_after`]; `None`: not told apart.
    fn id(&self) -> Option<u64> {
        None
    }
}

/// The same snapshot for every node: for tests and hand-built configurations.
#[derive(Debug, Clone)]
pub struct Uniform(pub Arc<Snapshot>);

impl Generation for Uniform {
    fn snapshot_for(&self, _node: &Node) -> Result<Arc<Snapshot>, String> {
        Ok(self.0.clone())
    }
}

/// Before any configuration has been accepted, no proxy can be identified.
#[derive(Debug)]
pub struct NoConfig;

impl Generation for NoConfig {
    fn snapshot_for(&self, _node: &Node) -> Result<Arc<Snapshot>, String> {
        Err("no valid configuration has been loaded yet".to_string())
    }
}

/// Which streams a generation concerns, against the generation it replaces.
#[derive(Debug, Clone, Copy)]
pub enum Reach<'a> {
    /// Every stream looks its snapshot up again.
    Every,
    /// The streams holding what it replaced, and those whose snapshot is [volatile](Snapshot::volatile) or who
    /// have none. Every other stream's snapshot is the one it would look up.
    Holding(&'a Replaced),
}

/// What a generation replaced of the one before it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replaced {
    /// Layers (by [`Layer::id`](super::Layer::id)) it no longer serves.
    pub layers: BTreeSet<u64>,
    /// Subjects ([`Snapshot::subject`]) whose snapshot may be another one, whatever layers they hold.
    pub subjects: BTreeSet<u64>,
}
