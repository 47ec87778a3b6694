//! Where specs come from. Only a directory today; a Kubernetes source (CRDs through kube-rs) would be a
//! second implementation of [`Source`] and change nothing after it.

mod directory;

pub use crate::watcher::{DirectoryWatcher, WatchError};
pub use directory::{read_mesh, DirectorySource, DirectorySourceOptions};

use std::sync::Arc;

use tokio::sync::watch;

use crate::mesh::{Diagnostic, Resolved};

/// One reading of the specs, already resolved: the whole mesh with its warnings, or why it could not be
/// read or resolved (errors and warnings together). All or nothing: a reading with any error carries no
/// configuration at all. Resolving here, once, is what the source needs anyway (it only reports a failed
/// reading once the directory has settled), and it leaves the pipeline nothing to do but publish.
#[derive(Debug, Clone)]
pub struct SpecState {
    /// Increases with every reading.
    pub revision: u64,
    pub outcome: Result<Arc<Resolved>, Vec<Diagnostic>>,
}

/// A source publishes every reading of the specs; the latest one wins.
pub trait Source: Send + Sync + 'static {
    fn subscribe(&self) -> watch::Receiver<Arc<SpecState>>;
}
