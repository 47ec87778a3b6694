//! Where specs come from. Only a directory today; a Kubernetes source (CRDs through kube-rs) would be a
//! second implementation of [`Source`] and change nothing after it.

mod directory;
mod watcher;

pub use directory::{DirectorySource, DirectorySourceOptions};
pub use watcher::{DirectoryWatcher, WatchError};

use std::sync::Arc;

use tokio::sync::watch;

use crate::mesh::Diagnostic;
use crate::spec;

/// One reading of the specs: the whole configuration, or why it could not be read. All or nothing: a
/// reading with any error carries no configuration at all.
#[derive(Debug, Clone)]
pub struct SpecState {
    /// Increases with every reading.
    pub revision: u64,
    pub outcome: Result<Arc<spec::Config>, Vec<Diagnostic>>,
}

/// A source publishes every reading of the specs; the latest one wins.
pub trait Source: Send + Sync + 'static {
    fn subscribe(&self) -> watch::Receiver<Arc<SpecState>>;
}
