//! Where streams get their snapshots: a `watch` of the current generation, which maps a node to the
//! snapshot of its proxy class.
//!
//! `watch` keeps only the latest value, so a slow stream can never fall behind by more than one
//! generation and nothing queues up: when it looks again it sees the newest state.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::sync::watch;
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

/// The publishing side of the cache. Cloning shares it.
#[derive(Clone)]
pub struct Cache {
    tx: Arc<watch::Sender<Arc<dyn Generation>>>,
}

impl Cache {
    pub fn new(initial: Arc<dyn Generation>) -> Cache {
        let (tx, _rx) = watch::channel(initial);
        Cache { tx: Arc::new(tx) }
    }

    /// A cache that serves one snapshot to every node.
    pub fn uniform(snapshot: Snapshot) -> Cache {
        Cache::new(Arc::new(Uniform(Arc::new(snapshot))))
    }

    /// Publishes a new generation; every stream re-evaluates what it owes its proxy.
    pub fn publish(&self, generation: Arc<dyn Generation>) {
        self.tx.send_replace(generation);
    }

    pub fn set_uniform(&self, snapshot: Snapshot) {
        self.publish(Arc::new(Uniform(Arc::new(snapshot))));
    }

    pub fn current(&self) -> Arc<dyn Generation> {
        self.tx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<dyn Generation>> {
        self.tx.subscribe()
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").finish_non_exhaustive()
    }
}
