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
    /// Capacity one: a pending notification already says "something changed", so further events while
    /// one is pending are dropped and a storm of them cannot grow memory.
    events: mpsc::Receiver<()>,
    debounce: Duration,
    // Kept alive for as long as we want events.
    _watcher: notify::RecommendedWatcher,
}

impl DirectoryWatcher {
    pub fn new(dir: &Path, debounce: Duration) -> Result<DirectoryWatcher, WatchError> {
        DirectoryWatcher::watching(&[dir], RecursiveMode::Recursive, debounce)
    }

    /// Watches the directories that hold `files` (not their subdirectories): files are replaced by a
    /// rename, or (a Kubernetes secret) through a symlink swapped in their directory, which a watch on
    /// the file itself would miss.
    pub fn parents_of(files: &[&Path], debounce: Duration) -> Result<DirectoryWatcher, WatchError> {
        let mut dirs: Vec<&Path> = files
            .iter()
            .map(|f| match f.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        DirectoryWatcher::watching(&dirs, RecursiveMode::NonRecursive, debounce)
    }

    fn watching(
        dirs: &[&Path],
        mode: RecursiveMode,
        debounce: Duration,
    ) -> Result<DirectoryWatcher, WatchError> {
        let watch_error = |dir: &Path| {
            let path = dir.to_path_buf();
            move |source| WatchError::Watch { path, source }
        };
        let first = dirs.first().copied().unwrap_or(Path::new("."));
        let (tx, events) = mpsc::channel(1);
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
                    // Full: a notification is already pending, which is all this one would say. Closed:
                    // the watcher is being dropped.
                    let _ = tx.try_send(());
                }
            })
            .map_err(watch_error(first))?;
        for dir in dirs {
            watcher.watch(dir, mode).map_err(watch_error(dir))?;
        }
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
}
