//! A directory of spec files, read again whenever a spec under it changes: the files the watcher names, or all.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::{Source, SpecState};
use crate::mesh::{self, Code, Diagnostic, Resolved, Severity};
use crate::spec::{self, LoadOptions};
use crate::watcher::{Changes, Debounce, DirectoryWatcher, WatchError};

#[derive(Debug, Clone)]
pub struct DirectorySourceOptions {
    /// How long the directory must stay quiet after a change before it is read.
    pub debounce: Duration,
    /// However busy the directory, a change is read at most this long after it was made.
    pub debounce_max: Duration,
    /// When a reading fails, how long to wait for further changes before reporting it: an editor or a
    /// copy may still be writing, and a half-written file is not an error worth reporting.
    pub settle: Duration,
    /// Files larger than this are errors, not read.
    pub max_file_size: u64,
    /// Whether a directory without any resource is a configuration (an empty mesh) rather than an error.
    pub allow_empty: bool,
}

impl Default for DirectorySourceOptions {
    fn default() -> Self {
        DirectorySourceOptions {
            debounce: Duration::from_millis(75),
            debounce_max: Duration::from_secs(1),
            settle: Duration::from_millis(300),
            max_file_size: spec::DEFAULT_MAX_FILE_SIZE,
            allow_empty: false,
        }
    }
}

/// Watches a directory; the watch task stops when the source is dropped.
pub struct DirectorySource {
    dir: PathBuf,
    rx: watch::Receiver<Arc<SpecState>>,
    task: tokio::task::JoinHandle<()>,
}

impl DirectorySource {
    /// Reads and resolves the directory once (so the first state is there before this returns), then
    /// watches it. This blocks for that first reading; async callers run it on a blocking thread.
    pub fn start(
        dir: &Path,
        options: DirectorySourceOptions,
    ) -> Result<DirectorySource, WatchError> {
        let debounce = Debounce {
            quiet: options.debounce,
            max_wait: Some(options.debounce_max),
        };
        let watcher = DirectoryWatcher::new(dir, debounce, spec::is_spec_file)?;
        let reader: SharedReader = Arc::new(Mutex::new(Reader {
            loader: spec::Loader::new(LoadOptions {
                max_file_size: options.max_file_size,
            }),
            resolver: mesh::Resolver::default(),
        }));
        let (tx, rx) = watch::channel(Arc::new(SpecState {
            revision: 1,
            outcome: read_dir(dir, &options, &reader, &Changes::Unknown),
        }));
        let task = tokio::spawn(watch_loop(dir.to_path_buf(), watcher, options, tx, reader));
        Ok(DirectorySource {
            dir: dir.to_path_buf(),
            rx,
            task,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Source for DirectorySource {
    fn subscribe(&self) -> watch::Receiver<Arc<SpecState>> {
        self.rx.clone()
    }
}

impl Drop for DirectorySource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn watch_loop(
    dir: PathBuf,
    mut watcher: DirectoryWatcher,
    options: DirectorySourceOptions,
    tx: watch::Sender<Arc<SpecState>>,
    reader: SharedReader,
) {
    let mut revision = 1;
    while watcher.settled().await {
        let changes = watcher.take_changes();
        let Some(mut outcome) = read_off_thread(&dir, &options, &reader, changes).await else {
            return;
        };
        // An invalid reading is reported only once the directory has stopped changing. Validity, not just
        // loading: a half-written file often parses (a list cut short, a name cut in two) and is only
        // wrong for the mesh as a whole.
        while outcome.is_err() {
            match tokio::time::timeout(options.settle, watcher.settled()).await {
                Err(_quiet) => break,
                Ok(true) => {
                    match read_off_thread(&dir, &options, &reader, watcher.take_changes()).await {
                        Some(o) => outcome = o,
                        None => return,
                    }
                }
                Ok(false) => return,
            }
        }
        revision += 1;
        tracing::debug!(dir = %dir.display(), revision, ok = outcome.is_ok(), "specs re-read");
        tx.send_replace(Arc::new(SpecState { revision, outcome }));
    }
}

type Outcome = Result<Arc<Resolved>, Vec<Diagnostic>>;

/// What the watch loop reads with: a loader that parses again only the files that changed since the last
/// reading, and a resolver that resolves again only what those files' resources affect.
struct Reader {
    loader: spec::Loader,
    resolver: mesh::Resolver,
}

type SharedReader = Arc<Mutex<Reader>>;

/// Reading and resolving a large directory is file I/O and CPU work: it must not hold up the runtime's
/// workers, which also run every xDS stream. `None` when the runtime is shutting down.
async fn read_off_thread(
    dir: &Path,
    options: &DirectorySourceOptions,
    reader: &SharedReader,
    changes: Changes,
) -> Option<Outcome> {
    let (dir, options, reader) = (dir.to_path_buf(), options.clone(), reader.clone());
    match tokio::task::spawn_blocking(move || read_dir(&dir, &options, &reader, &changes)).await {
        Ok(outcome) => Some(outcome),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_cancelled) => None,
    }
}

/// One reading of the directory. A directory without resources is an error unless allowed: it is what a
/// swap half done looks like (`rm -rf spec && mkdir spec`, then the copy), and serving it would withdraw
/// every listener from every proxy. Like any failed reading it is only reported once the directory settles,
/// and the last good configuration stays. The first reading at start is no exception: a server started on
/// an empty directory serves nothing until resources appear (proxies are told there is no configuration),
/// rather than an empty mesh nobody asked for.
/// Files whose text did not change since the last reading are not parsed again (`spec::Loader`), and what their
/// resources resolved to is not resolved again (`mesh::Resolver`).
/// `changes` are what the watcher saw change since the last reading: the files it names, under `dir`, are all
/// that is looked at again (when the loader can patch its last listing with them).
fn read_dir(
    dir: &Path,
    options: &DirectorySourceOptions,
    reader: &SharedReader,
    changes: &Changes,
) -> Outcome {
    // One reading at a time; a panic while parsing leaves nothing worse than files to parse again.
    let mut reader = reader.lock().unwrap_or_else(|e| e.into_inner());
    let Reader { loader, resolver } = &mut *reader;
    let changed: Option<BTreeSet<PathBuf>> = match changes {
        Changes::Files(files) => Some(files.iter().map(|f| dir.join(f)).collect()),
        Changes::Unknown => None,
    };
    let config = loader
        .load_changes(&[dir.to_path_buf()], changed.as_ref())
        .map_err(mesh::load_diagnostics)?;
    if config.is_empty() && !options.allow_empty {
        let mut diagnostics = vec![empty_directory(dir)];
        diagnostics.extend(config.skipped.into_iter().map(Diagnostic::from));
        return Err(diagnostics);
    }
    resolver.resolve(&config).map(Arc::new)
}

fn empty_directory(dir: &Path) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        code: Code::EmptySpecDirectory,
        file: dir.to_path_buf(),
        line: 1,
        resource: None,
        field: String::new(),
        message: "the spec directory holds no resources; serving it would remove every listener, route and \
                  cluster from every proxy, so the last good configuration is kept (start `serve \
                  --allow-empty` if an empty mesh is intended)"
            .into(),
    }
}

/// Reads and resolves spec files or directories once: the whole configuration, or every diagnostic.
pub fn read_mesh(paths: &[PathBuf]) -> Result<Resolved, Vec<Diagnostic>> {
    let config = spec::load_paths(paths).map_err(mesh::load_diagnostics)?;
    mesh::resolve(&config)
}
