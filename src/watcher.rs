//! Turns the file system events under a directory into "the directory settled after a change".
//!
//! What to read is the loader's business; this only says when to read. Two rules keep that honest:
//!
//! - **The path, not the inode.** A spec directory is replaced whole (`rm -rf spec && mkdir spec`, `mv spec.new
//!   spec`, a symlink renamed over `spec`): a watch on the directory itself would keep watching the old one.
//!   The directory's parent is watched too, and when an event names the spec directory, its watch is set up
//!   again on whatever the path now is.
//! - **Only changes that can matter.** A log file written every 50 ms next to the specs must not keep the
//!   directory from ever settling: an event on a regular file that is not a spec (by the caller's rule) is
//!   ignored. Directories and symlinks always count (a Kubernetes ConfigMap update is a `..data` symlink
//!   renamed over the old one), and so does a vanished path that may have been one of them.
//!
//! And a burst is bounded: however busy the directory, `settled` returns at most `max_wait` after the first
//! change of the burst (Istio bounds its debounce the same way, `PILOT_DEBOUNCE_MAX`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, RemoveKind};
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch {}: {source}", path.display())]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
    #[error("cannot watch {}: {source}", path.display())]
    Path {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// When a burst of changes counts as settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Debounce {
    /// The burst is over once no event has arrived for this long.
    pub quiet: Duration,
    /// At most this long after the burst's first event, even if events keep coming. `None`: no bound.
    pub max_wait: Option<Duration>,
}

/// Which files of a watched tree are worth a reading, by name.
pub type IsRelevantFile = fn(&Path) -> bool;

/// What changed in a watched tree since the changes were last taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// Only these paths, relative to the tree's root: files relevant by name, and paths gone without the
    /// events saying what they were (a directory moved out of the tree is one).
    Files(BTreeSet<PathBuf>),
    /// Something else, or something the events cannot say (a directory, a symlink, the root itself, a lost
    /// event): every path must be looked at again.
    Unknown,
}

impl Default for Changes {
    fn default() -> Changes {
        Changes::Files(BTreeSet::new())
    }
}

impl Changes {
    fn file(&mut self, path: PathBuf) {
        if let Changes::Files(files) = self {
            files.insert(path);
        }
    }
}

/// How many changed files are remembered before the changes are taken as [`Changes::Unknown`]: memory for a
/// storm of events stays bounded, and past this many, listing everything again costs little more.
const MAX_CHANGED_FILES: usize = 1024;

/// Watches a directory tree (or the directories of some files); `settled` resolves once a burst of changes
/// has been quiet for the debounce, or has gone on for its maximum.
pub struct DirectoryWatcher {
    /// Capacity one: a pending notification already says "something changed", so further events while
    /// one is pending are dropped and a storm of them cannot grow memory.
    events: mpsc::Receiver<()>,
    debounce: Debounce,
    /// The watched tree's root, for a tree (not for `parents_of`).
    root: Option<PathBuf>,
    /// Set by an event on the root itself: its watch is to be set up again on what the path now is.
    rearm: Arc<AtomicBool>,
    /// What changed since last taken ([`DirectoryWatcher::take_changes`]).
    changes: Arc<Mutex<Changes>>,
    /// A change arrived and [`DirectoryWatcher::settled`] has not returned for it yet.
    burst_pending: bool,
    watcher: notify::RecommendedWatcher,
}

impl DirectoryWatcher {
    /// Watches the tree at `dir` by its path; changes to files count when `is_relevant` says so by name.
    pub fn new(
        dir: &Path,
        debounce: Debounce,
        is_relevant: IsRelevantFile,
    ) -> Result<DirectoryWatcher, WatchError> {
        // Absolute, so the paths of the parent's events and of the tree's compare; symlinks are not
        // resolved, since the path is what is watched.
        let root = std::path::absolute(dir).map_err(|source| WatchError::Path {
            path: dir.to_path_buf(),
            source,
        })?;
        let parent = root
            .parent()
            .map_or_else(|| root.clone(), Path::to_path_buf);
        let rearm = Arc::new(AtomicBool::new(false));
        let changes = Arc::new(Mutex::new(Changes::default()));
        let filter = {
            let (root, rearm, changes) = (root.clone(), rearm.clone(), changes.clone());
            move |event: &notify::Event| {
                let mut changes = lock(&changes);
                let counts = tree_event_counts(event, &root, &rearm, is_relevant, &mut changes);
                if matches!(&*changes, Changes::Files(files) if files.len() > MAX_CHANGED_FILES) {
                    *changes = Changes::Unknown;
                }
                counts
            }
        };
        let (events, mut watcher) = DirectoryWatcher::notify(filter, &root, changes.clone())?;
        watcher
            .watch(&parent, RecursiveMode::NonRecursive)
            .map_err(watch_error(&parent))?;
        watcher
            .watch(&root, RecursiveMode::Recursive)
            .map_err(watch_error(&root))?;
        Ok(DirectoryWatcher {
            events,
            debounce,
            root: Some(root),
            rearm,
            changes,
            burst_pending: false,
            watcher,
        })
    }

    /// Watches the directories that hold `files` (not their subdirectories): files are replaced by a
    /// rename, or (a Kubernetes secret) through a symlink swapped in their directory, which a watch on
    /// the file itself would miss. Every change in those directories counts.
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
        let first = dirs.first().copied().unwrap_or(Path::new("."));
        // Which files changed is not told: whoever watches these reads them all again.
        let changes = Arc::new(Mutex::new(Changes::Unknown));
        let (events, mut watcher) =
            DirectoryWatcher::notify(|_: &notify::Event| true, first, changes.clone())?;
        for dir in &dirs {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(watch_error(dir))?;
        }
        Ok(DirectoryWatcher {
            events,
            debounce: Debounce {
                quiet: debounce,
                max_wait: None,
            },
            root: None,
            rearm: Arc::new(AtomicBool::new(false)),
            changes,
            burst_pending: false,
            watcher,
        })
    }

    /// A notify watcher whose events `counts` accepts become notifications on the returned channel.
    fn notify(
        counts: impl Fn(&notify::Event) -> bool + Send + 'static,
        path_for_errors: &Path,
        changes: Arc<Mutex<Changes>>,
    ) -> Result<(mpsc::Receiver<()>, notify::RecommendedWatcher), WatchError> {
        let (tx, events) = mpsc::channel(1);
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let relevant = match &event {
                Ok(e) => !is_read_only_access(&e.kind) && counts(e),
                // An error (for example an overflowed inotify queue) may hide changes: reload everything.
                Err(_) => {
                    *lock(&changes) = Changes::Unknown;
                    true
                }
            };
            if relevant {
                // Full: a notification is already pending, which is all this one would say. Closed:
                // the watcher is being dropped.
                let _ = tx.try_send(());
            }
        })
        .map_err(watch_error(path_for_errors))?;
        Ok((events, watcher))
    }

    /// What changed since the last call (or since the watch began), recorded before the notification that
    /// made [`DirectoryWatcher::settled`] return: take it after that, before reading.
    pub fn take_changes(&self) -> Changes {
        if self.root.is_none() {
            // Watching the directories of some files, not a tree: nothing is recorded, so nothing is known.
            return Changes::Unknown;
        }
        std::mem::take(&mut *lock(&self.changes))
    }

    /// Waits for the next change, then for the directory to stay quiet for the debounce period, at most
    /// the debounce's maximum after that first change. Returns `false` if the watcher stopped.
    /// Cancel-safe: a burst whose first event was taken by a call given up on (a caller's timeout) is still
    /// waited for by the next call, not lost until another change.
    pub async fn settled(&mut self) -> bool {
        if !self.burst_pending {
            if self.next_event().await.is_none() {
                return false;
            }
            self.burst_pending = true;
        }
        let deadline = self.debounce.max_wait.map(|max| Instant::now() + max);
        let settled = self.quiet_until(self.debounce.quiet, deadline).await;
        self.burst_pending = false;
        settled
    }

    /// Waits until no event has arrived for `period`; `false` if the watcher stopped.
    pub async fn quiet_for(&mut self, period: Duration) -> bool {
        self.quiet_until(period, None).await
    }

    async fn quiet_until(&mut self, period: Duration, deadline: Option<Instant>) -> bool {
        loop {
            let wait = deadline.map_or(period, |d| {
                period.min(d.saturating_duration_since(Instant::now()))
            });
            if wait.is_zero() {
                return true;
            }
            match tokio::time::timeout(wait, self.next_event()).await {
                Err(_elapsed) => return true,
                Ok(Some(())) => continue,
                Ok(None) => return false,
            }
        }
    }

    async fn next_event(&mut self) -> Option<()> {
        let event = self.events.recv().await;
        self.rearm_if_replaced();
        event
    }

    /// After an event on the root itself: the path may now be another directory (re-created, renamed
    /// over, a symlink swapped), so the tree's watch is set up again on the path. Done before the reading
    /// the event leads to, so nothing written into the new directory after that reading is missed.
    fn rearm_if_replaced(&mut self) {
        let Some(root) = &self.root else { return };
        if !self.rearm.swap(false, Ordering::SeqCst) {
            return;
        }
        // The old watches, if any are left (a directory renamed away is still watched under its old name).
        let _ = self.watcher.unwatch(root);
        if let Err(e) = self.watcher.watch(root, RecursiveMode::Recursive) {
            // Not there (yet): its creation is an event on the parent, which comes back here.
            tracing::debug!(dir = %root.display(), "spec directory not watchable for now: {e}");
        }
    }
}

fn lock(changes: &Mutex<Changes>) -> MutexGuard<'_, Changes> {
    // Plain data: whatever a panicking holder left is still a set of paths.
    changes.lock().unwrap_or_else(|e| e.into_inner())
}

fn watch_error(dir: &Path) -> impl FnOnce(notify::Error) -> WatchError {
    let path = dir.to_path_buf();
    move |source| WatchError::Watch { path, source }
}

/// Access events (open, read, close without write) change nothing.
fn is_read_only_access(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Access(AccessKind::Open(_))
            | EventKind::Access(AccessKind::Read)
            | EventKind::Access(AccessKind::Close(AccessMode::Read))
    )
}

/// Whether an event under (or on) the watched tree's root is worth a reading; an event on the root itself
/// also asks for the root's watch to be set up again. What it changed goes into `changes`.
fn tree_event_counts(
    event: &notify::Event,
    root: &Path,
    rearm: &AtomicBool,
    is_relevant: IsRelevantFile,
    changes: &mut Changes,
) -> bool {
    if event.paths.is_empty() || event.need_rescan() {
        rearm.store(true, Ordering::SeqCst);
        *changes = Changes::Unknown;
        return true;
    }
    let mut counts = false;
    for path in &event.paths {
        if path == root {
            rearm.store(true, Ordering::SeqCst);
            *changes = Changes::Unknown;
            counts = true;
        } else if let Ok(relative) = path.strip_prefix(root) {
            match path_counts(path, &event.kind, is_relevant) {
                Counts::No => {}
                Counts::AsFile => {
                    changes.file(relative.to_path_buf());
                    counts = true;
                }
                Counts::AsMore => {
                    *changes = Changes::Unknown;
                    counts = true;
                }
            }
        }
        // Anything else is a sibling of the root in its parent: not ours.
    }
    counts
}

/// Whether a change to a path inside the tree matters, and how much it may have changed.
enum Counts {
    No,
    /// A spec file by name, or a path gone that may have been a directory: that path (whoever listed the
    /// tree knows what was there).
    AsFile,
    /// A directory, a symlink, or what may have been one: anything below it.
    AsMore,
}

/// A change to `path` inside the tree matters unless it is known to be a file that is not a spec.
fn path_counts(path: &Path, kind: &EventKind, is_relevant: IsRelevantFile) -> Counts {
    if is_relevant(path) {
        return Counts::AsFile;
    }
    match std::fs::symlink_metadata(path) {
        // A directory may hold specs; a symlink may lead to some (`..data`).
        Ok(m) if m.is_dir() || m.is_symlink() => Counts::AsMore,
        Ok(_) => Counts::No,
        // Gone, as the event says: a directory, or a file that is not a spec.
        Err(_) => match kind {
            EventKind::Create(CreateKind::Folder) | EventKind::Remove(RemoveKind::Folder) => {
                Counts::AsMore
            }
            EventKind::Create(CreateKind::File) | EventKind::Remove(RemoveKind::File) => Counts::No,
            // Gone without the event saying what it was (moved away: `mv team.d /elsewhere`): it counts,
            // by name, unless hidden (no hidden entry is listed, nor anything below one).
            _ if is_hidden(path) => Counts::No,
            _ => Counts::AsFile,
        },
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name.as_encoded_bytes().starts_with(b"."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(path: &Path) -> bool {
        path.extension().is_some_and(|e| e == "yaml")
    }

    #[test]
    fn only_changes_that_can_matter_count() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("spec");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("notes.log"), "").unwrap();
        std::os::unix::fs::symlink("sub", root.join("..data")).unwrap();
        let rearm = AtomicBool::new(false);
        let modify = EventKind::Modify(notify::event::ModifyKind::Any);
        let event = |kind: EventKind, path: PathBuf| notify::Event::new(kind).add_path(path);
        let changes = std::cell::RefCell::new(Changes::default());
        let counts = |e: &notify::Event| {
            tree_event_counts(e, &root, &rearm, yaml, &mut changes.borrow_mut())
        };
        assert!(counts(&event(modify, root.join("a.yaml"))));
        assert!(!counts(&event(modify, root.join("notes.log"))));
        assert!(counts(&event(modify, root.join("sub/b.yaml"))));
        // Moved away, whatever it was: named, for whoever listed the tree to say what was there; a hidden
        // entry held nothing listed.
        let moved_away = EventKind::Modify(notify::event::ModifyKind::Name(
            notify::event::RenameMode::From,
        ));
        assert!(counts(&event(moved_away, root.join("team.d"))));
        assert!(!counts(&event(moved_away, root.join(".a.yaml.tmp"))));
        // The spec files and the path moved away, relative to the root; then a directory: anything below it
        // may have changed.
        assert_eq!(
            *changes.borrow(),
            Changes::Files(BTreeSet::from([
                "a.yaml".into(),
                "sub/b.yaml".into(),
                "team.d".into()
            ]))
        );
        assert!(counts(&event(modify, root.join("sub"))));
        assert_eq!(*changes.borrow(), Changes::Unknown);
        assert!(counts(&event(modify, root.join("..data"))));
        assert!(!counts(&event(
            EventKind::Remove(RemoveKind::File),
            root.join("4913")
        )));
        assert!(counts(&event(
            EventKind::Remove(RemoveKind::Folder),
            root.join("gone.d")
        )));
        assert!(!counts(&event(modify, tmp.path().join("sibling.yaml"))));
        assert!(!rearm.load(Ordering::SeqCst));
        assert!(counts(&event(
            EventKind::Create(CreateKind::Folder),
            root.clone()
        )));
        assert!(rearm.load(Ordering::SeqCst));
    }

    /// A caller that stops waiting for a burst to settle (the directory source gives an invalid reading a
    /// settle period) must not lose the burst: the next wait settles it without another change.
    #[tokio::test]
    async fn a_burst_given_up_on_is_settled_by_the_next_wait() {
        let tmp = tempfile::tempdir().unwrap();
        let debounce = Debounce {
            quiet: Duration::from_millis(400),
            max_wait: None,
        };
        let mut watcher = DirectoryWatcher::new(tmp.path(), debounce, yaml).unwrap();
        std::fs::write(tmp.path().join("a.yaml"), "a").unwrap();
        // Long enough for the event to arrive, not for the burst to go quiet.
        let given_up = tokio::time::timeout(Duration::from_millis(150), watcher.settled()).await;
        assert!(given_up.is_err(), "settled before its quiet period");
        let settled = tokio::time::timeout(Duration::from_secs(5), watcher.settled()).await;
        assert_eq!(settled, Ok(true), "the burst was lost");
        assert_eq!(
            watcher.take_changes(),
            Changes::Files(BTreeSet::from(["a.yaml".into()]))
        );
    }
}
