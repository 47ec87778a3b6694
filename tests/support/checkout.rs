//! A scratch checkout for the CLI tests that edit a spec directory (`apply`, `delete`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

pub const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/istio-bookinfo");

/// A scratch checkout: `<tmp>/main/config` (a copy of the repository's) and `<tmp>/shared/istio-bookinfo` (the
/// samples), so commands run from `<tmp>/main` read exactly as in the Istio tasks.
pub struct Checkout {
    _tmp: tempfile::TempDir,
    pub main: PathBuf,
}

impl Checkout {
    pub fn new() -> Checkout {
        let tmp = tempfile::tempdir().unwrap();
        let main = tmp.path().join("main");
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
            &main.join("config"),
        );
        copy_dir(
            Path::new(SAMPLES),
            &tmp.path().join("shared/istio-bookinfo"),
        );
        Checkout { _tmp: tmp, main }
    }

    pub fn config(&self) -> PathBuf {
        self.main.join("config")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::cargo_bin("switchyard")
            .unwrap()
            .current_dir(&self.main)
            .args(args)
            .output()
            .unwrap()
    }

    /// Writes `text` to `<main>/<name>` and returns the path as a command-line argument.
    pub fn write_arg(&self, name: &str, text: &str) -> String {
        self.write(name, text).to_string_lossy().into_owned()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.main.join(name);
        fs::write(&path, text).unwrap();
        path
    }

    /// Every file of the spec directory (hidden ones included), byte for byte.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fs::read_dir(self.config())
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let bytes = fs::read(&path).unwrap();
                (path, bytes)
            })
            .collect()
    }

    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.config().join(name)).unwrap()
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// The text of an Istio sample file.
pub fn sample_text(name: &str) -> String {
    fs::read_to_string(Path::new(SAMPLES).join(name)).unwrap()
}

/// The path of an Istio sample file, as a command-line argument.
pub fn sample_path(name: &str) -> String {
    format!("{SAMPLES}/{name}")
}

/// Runs a command expecting a refusal: exit status 1, `expected` in stderr, not a byte of the directory changed.
pub fn assert_refused(checkout: &Checkout, args: &[&str], expected: &[&str]) {
    let before = checkout.snapshot();
    let out = checkout.run(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    for text in expected {
        assert!(err.contains(text), "{args:?}: expected {text:?} in:\n{err}");
    }
    assert_eq!(stdout(&out), "", "{args:?}");
    assert_eq!(
        checkout.snapshot(),
        before,
        "{args:?} changed the spec directory"
    );
}
