//! Turns the file system events under a directory into "the directory settled after a change".
//!
//! Every event counts, whatever the file: editors save by writing a temporary file and renaming it over
//! the original, so the interesting event is often on a name we do not care about. What to read is the
//! loader's business; this only says when to read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch {}: {source}", path.display())]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
}

/// Watches a directory tree; `settled` resolves once a burst of changes has been quiet for the debounce.
pub struct DirectoryWatcher {
    events: mpsc::UnboundedReceiver<()>,
    debounce: Duration,
    // Kept alive for as long as we want events.
    _watcher: notify::RecommendedWatcher,
}

impl DirectoryWatcher {
    pub fn new(dir: &Path, debounce: Duration) -> Result<DirectoryWatcher, WatchError> {
        let (tx, events) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Access events (open, read, close without write) change nothing.
                let relevant = match &event {
                    Ok(e) => !matches!(
                        e.kind,
                        notify::EventKind::Access(notify::event::AccessKind::Open(_))
                            | notify::EventKind::Access(notify::event::AccessKind::Read)
                            | notify::EventKind::Access(notify::event::AccessKind::Close(
                                notify::event::AccessMode::Read
                            ))
                    ),
                    // An error (for example an overflowed inotify queue) may hide changes: reload.
                    Err(_) => true,
                };
                if relevant {
                    let _ = tx.send(());
                }
            })
            .map_err(|source| WatchError::Watch {
                path: dir.to_path_buf(),
                source,
            })?;
        watcher
            .watch(dir, RecursiveMode::Recursive)
            .map_err(|source| WatchError::Watch {
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(DirectoryWatcher {
            events,
            debounce,
            _watcher: watcher,
        })
    }

    /// Waits for the next change, then for the directory to stay quiet for the debounce period.
    /// Returns `false` if the watcher stopped.
    pub async fn settled(&mut self) -> bool {
        if self.events.recv().await.is_none() {
            return false;
        }
        self.quiet_for(self.debounce).await
    }

    /// Waits until no event has arrived for `period`; `false` if the watcher stopped.
    pub async fn quiet_for(&mut self, period: Duration) -> bool {
        loop {
            match tokio::time::timeout(period, self.events.recv()).await {
                Err(_elapsed) => return true,
                Ok(Some(())) => continue,
                Ok(None) => return false,
            }
        }
    }

    /// True if an event is already waiting (used to tell a half-written file from a broken one).
    pub fn has_pending(&mut self) -> bool {
        !self.events.is_empty()
    }
}
