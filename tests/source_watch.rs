//! The directory source on its own: what a burst of file operations turns into, as readings of the specs.
//! Waits are on the source's `watch` channel, each with a deadline.

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
