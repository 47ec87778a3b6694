//! The directory source on its own: what a burst of file operations turns into, as readings of the specs.
//! Waits are on the source's `watch` channel, each with a deadline.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use switchyard::source::{DirectorySource, DirectorySourceOptions, Source, SpecState};
use tokio::sync::watch;

const DEADLINE: Duration = Duration::from_secs(10);

fn config_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
    for entry in std::fs::read_dir(config).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

async fn next_state(
    rx: &mut watch::Receiver<Arc<SpecState>>,
    after_revision: u64,
) -> Arc<SpecState> {
    match tokio::time::timeout(DEADLINE, rx.wait_for(|s| s.revision > after_revision)).await {
        Ok(Ok(s)) => s.clone(),
        Ok(Err(_)) => panic!("the source stopped"),
        Err(_) => panic!("no reading after revision {after_revision}"),
    }
}

fn virtual_service(name: &str, subset: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\nspec:\n  \
         hosts:\n  - {name}\n  http:\n  - route:\n    - destination:\n        host: {name}\n        \
         subset: {subset}\n"
    )
}

fn virtual_service_names(state: &SpecState) -> Vec<String> {
    let resolved = state
        .outcome
        .as_ref()
        .unwrap_or_else(|e| panic!("reading {} failed: {e:#?}", state.revision));
    let mut names: Vec<String> = resolved
        .mesh
        .virtual_services
        .iter()
        .map(|vs| vs.meta.resource.name.clone())
        .collect();
    names.sort();
    names
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn first_reading_is_there_on_start() {
    let dir = config_copy();
    let source = DirectorySource::start(dir.path(), DirectorySourceOptions::default()).unwrap();
    let state = source.subscribe().borrow().clone();
    assert_eq!(state.revision, 1);
    assert_eq!(virtual_service_names(&state), ["bookinfo"]);
    assert_eq!(source.dir(), dir.path());
}

#[tokio::test]
async fn a_burst_of_changes_is_one_reading() {
    let dir = config_copy();
    let options = DirectorySourceOptions {
        debounce: Duration::from_millis(200),
        ..Default::default()
    };
    let source = DirectorySource::start(dir.path(), options).unwrap();
    let mut rx = source.subscribe();

    // Several files written back to back (far quicker than the debounce): one reading with all of them.
    for name in ["reviews", "ratings", "details"] {
        write(
            &dir.path().join(format!("vs-{name}.yaml")),
            &virtual_service(name, "v1"),
        );
    }
    let state = next_state(&mut rx, 1).await;
    assert_eq!(state.revision, 2);
    assert_eq!(
        virtual_service_names(&state),
        ["bookinfo", "details", "ratings", "reviews"]
    );

    // Readings are in order, so if the burst had been read twice this one would not be revision 3.
    std::fs::remove_file(dir.path().join("vs-details.yaml")).unwrap();
    let state = next_state(&mut rx, 2).await;
    assert_eq!(state.revision, 3);
    assert_eq!(
        virtual_service_names(&state),
        ["bookinfo", "ratings", "reviews"]
    );
}

#[tokio::test]
async fn rename_over_is_one_reading_of_the_new_content() {
    let dir = config_copy();
    let source = DirectorySource::start(dir.path(), DirectorySourceOptions::default()).unwrap();
    let mut rx = source.subscribe();
    let target = dir.path().join("bookinfo-gateway.yaml");
    let text = std::fs::read_to_string(&target)
        .unwrap()
        .replace("name: bookinfo\n", "name: bookinfo-renamed\n");
    assert!(text.contains("bookinfo-renamed"));

    let tmp = dir.path().join(".bookinfo-gateway.yaml.save");
    write(&tmp, &text);
    std::fs::rename(&tmp, &target).unwrap();
    let state = next_state(&mut rx, 1).await;
    assert_eq!(virtual_service_names(&state), ["bookinfo-renamed"]);

    write(
        &dir.path().join("marker.yaml"),
        &virtual_service("marker", "v1"),
    );
    let state = next_state(&mut rx, state.revision).await;
    assert_eq!(state.revision, 3, "the rename was read more than once");
}

#[tokio::test]
async fn a_broken_file_is_reported_once_the_directory_is_quiet() {
    let dir = config_copy();
    let options = DirectorySourceOptions {
        debounce: Duration::from_millis(50),
        settle: Duration::from_millis(200),
        ..Default::default()
    };
    let source = DirectorySource::start(dir.path(), options).unwrap();
    let mut rx = source.subscribe();
    let broken = dir.path().join("broken.yaml");
    write(&broken, "kind: [unclosed\n");
    let state = next_state(&mut rx, 1).await;
    let errors = state
        .outcome
        .as_ref()
        .expect_err("a broken file fails the reading");
    assert!(
        errors.iter().any(|d| d.file == broken && d.is_error()),
        "{errors:#?}"
    );

    std::fs::remove_file(&broken).unwrap();
    let state = next_state(&mut rx, state.revision).await;
    assert_eq!(virtual_service_names(&state), ["bookinfo"]);
}

#[tokio::test]
async fn dropping_the_source_stops_it() {
    let dir = config_copy();
    let source = DirectorySource::start(dir.path(), DirectorySourceOptions::default()).unwrap();
    let mut rx = source.subscribe();
    drop(source);
    // The watch task owned the sender: once it is gone, waiting ends instead of hanging.
    let ended = tokio::time::timeout(DEADLINE, async { while rx.changed().await.is_ok() {} }).await;
    assert!(ended.is_ok(), "the source kept running after drop");
}

// ---- The spec directory swapped, emptied, kept busy (docs/bad-input.md) ----

use support::spec_dir::{yaml_files, ConfigMapMount, ScratchSpec};

/// Waits for a reading that passes `check`, skipping the ones that do not (a swap may be read half-done).
async fn reading_where(
    rx: &mut watch::Receiver<Arc<SpecState>>,
    what: &str,
    deadline: Duration,
    check: impl Fn(&SpecState) -> bool,
) -> Arc<SpecState> {
    let outcome = tokio::time::timeout(deadline, rx.wait_for(|s| check(s)))
        .await
        .map(|r| r.map(|s| s.clone()));
    match outcome {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => panic!("the source stopped while waiting for {what}"),
        Err(_) => {
            let last = rx.borrow().clone();
            panic!(
                "no reading with {what} within {deadline:?}; the last was revision {}: {:#?}",
                last.revision,
                last.outcome
                    .as_ref()
                    .map(|r| r.warnings.len())
                    .map_err(|e| e
                        .iter()
                        .filter(|d| d.is_error())
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>())
            )
        }
    }
}

/// Whether a reading is valid and serves the marker `name` (see [`marker`]).
fn serves_marker(state: &SpecState, name: &str) -> bool {
    state
        .outcome
        .as_ref()
        .is_ok_and(|r| r.mesh.services.contains_key(&format!("{name}.example")))
}

/// A ServiceEntry for `<name>.example`: valid on its own, so the reading that carries it is valid.
fn marker(name: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {name}\nspec:\n  \
         hosts:\n  - {name}.example\n  ports:\n  - number: 80\n    name: http\n    protocol: HTTP\n  \
         resolution: DNS\n"
    )
}

fn start(dir: &Path) -> (DirectorySource, watch::Receiver<Arc<SpecState>>) {
    let source = DirectorySource::start(dir, DirectorySourceOptions::default()).unwrap();
    let rx = source.subscribe();
    assert!(rx.borrow().outcome.is_ok());
    (source, rx)
}

#[tokio::test]
async fn the_directory_removed_and_recreated_is_read_again() {
    let spec = ScratchSpec::new();
    let (_source, mut rx) = start(&spec.dir());
    std::fs::remove_dir_all(spec.dir()).unwrap();
    std::fs::create_dir(spec.dir()).unwrap();
    support::checkout::copy_dir(&support::spec_dir::repo_config(), &spec.dir());
    write(&spec.path("marker.yaml"), &marker("restored"));
    reading_where(&mut rx, "the restored files", DEADLINE, |s| {
        serves_marker(s, "restored")
    })
    .await;
    // Still watched: a later edit in the new directory is read too.
    write(&spec.path("later.yaml"), &marker("later"));
    reading_where(&mut rx, "a later edit", DEADLINE, |s| {
        serves_marker(s, "later")
    })
    .await;
}

#[tokio::test]
async fn a_directory_renamed_over_the_old_one_is_read() {
    let spec = ScratchSpec::new();
    let (_source, mut rx) = start(&spec.dir());
    let new = spec.beside("spec.new");
    support::checkout::copy_dir(&spec.dir(), &new);
    write(&new.join("marker.yaml"), &marker("swapped"));
    std::fs::rename(spec.dir(), spec.beside("spec.old")).unwrap();
    std::fs::rename(&new, spec.dir()).unwrap();
    reading_where(&mut rx, "the swapped-in directory", DEADLINE, |s| {
        serves_marker(s, "swapped")
    })
    .await;
    write(&spec.path("later.yaml"), &marker("later"));
    reading_where(&mut rx, "a later edit", DEADLINE, |s| {
        serves_marker(s, "later")
    })
    .await;
    // The old directory is no longer what is served: editing it changes nothing.
    write(
        &spec.beside("spec.old").join("stale.yaml"),
        &marker("stale"),
    );
    write(&spec.path("last.yaml"), &marker("last"));
    let state = reading_where(&mut rx, "the last edit", DEADLINE, |s| {
        serves_marker(s, "last")
    })
    .await;
    assert!(!serves_marker(&state, "stale"));
}

#[tokio::test]
async fn a_configmap_data_symlink_swap_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let files = yaml_files(&support::spec_dir::repo_config());
    let mut mount = ConfigMapMount::new(&tmp.path().join("spec"), &files);
    let (_source, mut rx) = start(&mount.dir);
    let mut next = files.clone();
    next.push(("marker.yaml".into(), marker("first-update")));
    mount.update(&next);
    reading_where(&mut rx, "the first update", DEADLINE, |s| {
        serves_marker(s, "first-update")
    })
    .await;
    next.pop();
    next.push(("other.yaml".into(), marker("second-update")));
    mount.update(&next);
    let state = reading_where(&mut rx, "the second update", DEADLINE, |s| {
        serves_marker(s, "second-update")
    })
    .await;
    assert!(!serves_marker(&state, "first-update"));
    // Files are read once, through their `..data` symlinks, never from the hidden data directories.
    let resolved = state.outcome.as_ref().unwrap();
    assert!(
        resolved.warnings.iter().all(|w| w.code != "SY0104"),
        "{:#?}",
        resolved.warnings
    );
}

/// A directory moved out of the spec directory (`mv`, a file manager's "move to trash") takes its specs with
/// it, even named like a file: the move names only the directory, and what was below it is what was listed.
#[tokio::test]
async fn a_directory_moved_out_takes_its_specs_with_it() {
    let spec = ScratchSpec::new();
    for (sub, name) in [("team.d", "team"), ("extra.yaml", "extra")] {
        std::fs::create_dir(spec.path(sub)).unwrap();
        write(&spec.path(sub).join("marker.yaml"), &marker(name));
    }
    let (_source, mut rx) = start(&spec.dir());
    assert!(serves_marker(&rx.borrow(), "team") && serves_marker(&rx.borrow(), "extra"));
    // One at a time: each move alone must lead to a reading without it.
    std::fs::rename(spec.path("team.d"), spec.beside("team.d")).unwrap();
    reading_where(&mut rx, "the first directory gone", DEADLINE, |s| {
        s.outcome.is_ok() && !serves_marker(s, "team") && serves_marker(s, "extra")
    })
    .await;
    std::fs::rename(spec.path("extra.yaml"), spec.beside("extra.yaml")).unwrap();
    reading_where(&mut rx, "the second directory gone", DEADLINE, |s| {
        s.outcome.is_ok() && !serves_marker(s, "extra")
    })
    .await;
    // And the next edit is read as usual.
    write(&spec.path("later.yaml"), &marker("later"));
    let state = reading_where(&mut rx, "a later edit", DEADLINE, |s| {
        serves_marker(s, "later")
    })
    .await;
    assert!(!serves_marker(&state, "team") && !serves_marker(&state, "extra"));
}

fn remove_every_spec_file(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
}

/// A directory emptied (a swap half done, a clumsy `rm`) would withdraw every listener from every proxy: the
/// reading is an error, so the last good configuration stays, unless an empty mesh was asked for.
#[tokio::test]
async fn an_emptied_directory_is_an_error_unless_allowed() {
    let spec = ScratchSpec::new();
    let (_source, mut rx) = start(&spec.dir());
    remove_every_spec_file(&spec.dir());
    let state = reading_where(&mut rx, "the empty-directory error", DEADLINE, |s| {
        s.outcome.is_err()
    })
    .await;
    let errors = state.outcome.as_ref().unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].code, "SY0006");
    assert_eq!(errors[0].file, spec.dir());
    assert!(
        errors[0].to_string().contains("--allow-empty"),
        "{}",
        errors[0]
    );

    let spec = ScratchSpec::new();
    let options = DirectorySourceOptions {
        allow_empty: true,
        ..Default::default()
    };
    let source = DirectorySource::start(&spec.dir(), options).unwrap();
    let mut rx = source.subscribe();
    remove_every_spec_file(&spec.dir());
    let state = reading_where(&mut rx, "an empty mesh", DEADLINE, |s| {
        s.outcome.as_ref().is_ok_and(|r| r.mesh.services.is_empty())
    })
    .await;
    assert!(state.outcome.is_ok());
}

/// Appends to `path` every 50 ms until dropped.
struct BusyWriter {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BusyWriter {
    fn start(path: PathBuf, mut text: impl FnMut(u32) -> String + Send + 'static) -> BusyWriter {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut i = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                std::fs::write(&path, text(i)).unwrap();
                i += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        BusyWriter {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for BusyWriter {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How long a test waits for a change in a busy directory: well beyond the one-second bound (the machine is
/// shared), well short of "never", which is what an unbounded debounce gives.
const BUSY_DEADLINE: Duration = Duration::from_secs(5);

/// A source whose quiet period (500 ms) is ten times the busy writer's period, so that on a loaded machine a
/// writer that stalls now and then still never lets an unbounded debounce end; the bound stays 1 s.
fn start_busy(dir: &Path) -> (DirectorySource, watch::Receiver<Arc<SpecState>>) {
    let options = DirectorySourceOptions {
        debounce: Duration::from_millis(500),
        debounce_max: Duration::from_secs(1),
        ..Default::default()
    };
    let source = DirectorySource::start(dir, options).unwrap();
    let rx = source.subscribe();
    (source, rx)
}

#[tokio::test]
async fn a_busy_log_file_does_not_hold_back_an_edit() {
    let spec = ScratchSpec::new();
    let (_source, mut rx) = start_busy(&spec.dir());
    let mut log = String::new();
    let _busy = BusyWriter::start(spec.path("notes.log"), move |i| {
        log.push_str(&format!("line {i}\n"));
        log.clone()
    });
    write(&spec.path("marker.yaml"), &marker("edited"));
    reading_where(&mut rx, "the edit", BUSY_DEADLINE, |s| {
        serves_marker(s, "edited")
    })
    .await;
}

#[tokio::test]
async fn a_busy_spec_file_does_not_hold_back_an_edit_beyond_the_bound() {
    let spec = ScratchSpec::new();
    let (_source, mut rx) = start_busy(&spec.dir());
    let _busy = BusyWriter::start(spec.path("busy.yaml"), |i| {
        format!("# rewrite {i}\n{}", marker("busy"))
    });
    write(&spec.path("marker.yaml"), &marker("edited"));
    reading_where(&mut rx, "the edit", BUSY_DEADLINE, |s| {
        serves_marker(s, "edited")
    })
    .await;
}

/// 40,000 levels of nesting are an error at once (they used to hold the reader for seconds, quadratic in
/// the depth); fixing the file is served.
#[tokio::test]
async fn deeply_nested_yaml_is_rejected_and_a_later_edit_served() {
    let spec = ScratchSpec::new();
    let (_source, mut rx) = start(&spec.dir());
    let deep = spec.path("deep.yaml");
    write(&deep, &format!("a: {}\n", "[".repeat(40_000)));
    let state = reading_where(&mut rx, "the nesting error", DEADLINE, |s| {
        s.outcome.is_err()
    })
    .await;
    let errors = state.outcome.as_ref().unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.file == deep && e.message.contains("nested")),
        "{errors:#?}"
    );
    write(&deep, &marker("fixed"));
    reading_where(&mut rx, "the fixed file", DEADLINE, |s| {
        serves_marker(s, "fixed")
    })
    .await;
}

/// A FIFO named like a spec used to block the reader for good: later edits were never applied. It is skipped,
/// named in the warnings, and edits go on being served.
#[tokio::test]
async fn a_fifo_is_skipped_and_later_edits_are_served() {
    let spec = ScratchSpec::new();
    let (_source, mut rx) = start(&spec.dir());
    let fifo = spec.path("x.yaml");
    support::spec_dir::mkfifo(&fifo);
    write(&spec.path("marker.yaml"), &marker("after-fifo"));
    let state = reading_where(&mut rx, "the edit after the FIFO", DEADLINE, |s| {
        serves_marker(s, "after-fifo")
    })
    .await;
    let warnings = &state.outcome.as_ref().unwrap().warnings;
    assert!(
        warnings
            .iter()
            .any(|w| w.file == fifo && w.code == "SY0005"),
        "{warnings:#?}"
    );
}
